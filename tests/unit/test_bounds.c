/*
 * test_bounds.c - decisions on a small policy folder and lexicon written
 * by the test: verdicts per tier, word boundaries, offsets through invalid
 * UTF-8 and NUL bytes, the size cap, lexicon errors, org refusal templates;
 * every block in order, display names and help in refusals, obligations,
 * redaction of any bytes, the span cap, registry names and help checked;
 * context lowering topic words and the model, never a request.
 */
/* cmocka needs these first, in this order. */
/* clang-format off */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
/* clang-format on */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "bounds/bounds_int.h"
#include "pwb/pwb.h"
#include "util/util.h"

static char dir[] = "/tmp/pwb-test-bounds-XXXXXX";

static void write_file(const char *rel, const char *text, size_t len)
{
	char path[512];
	snprintf(path, sizeof(path), "%s/%s", dir, rel);
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fwrite(text, 1, len, f);
	fclose(f);
}

#define WRITE(rel, lit) write_file(rel, lit, sizeof(lit) - 1)

static int setup(void **state)
{
	(void)state;
	if (!mkdtemp(dir))
		return -1;
	char sub[512];
	const char *subs[] = {"law",	"org",	      "lexicons", "badlex",
			      "ob",	"ob/law",     "ob/org",	  "ob/lexicons",
			      "badreg", "badreg/law", "ctx",	  "badctx"};
	for (size_t i = 0; i < PWB_ARRAY_LEN(subs); i++) {
		snprintf(sub, sizeof(sub), "%s/%s", dir, subs[i]);
		mkdir(sub, 0755);
	}
	WRITE("categories.yaml",
	      "registry: test\n"
	      "attributes:\n  user.age: {type: number}\n"
	      "categories:\n"
	      "  hate: {description: \"Hateful content.\", llama_guard: S10,\n"
	      "         detectors: {lexicon: {threshold: 0.5}, guard: "
	      "{threshold: 0.5}}}\n"
	      "  profanity: {detectors: {lexicon: {threshold: 0.5}}}\n"
	      "  privacy: {detectors: {pii: {threshold: 0.5}}}\n"
	      "dimensions:\n  language: {type: enum, default: en}\n");
	WRITE("law/l.yaml", "tier: law\nid: l\ncategories:\n"
			    "  hate: {permission: forbid, basis: \"Law 1\"}\n");
	WRITE("org/o.yaml",
	      "tier: org\nid: o\njurisdictions: [l]\ncategories:\n"
	      "  profanity: opt_in\n"
	      "  privacy: {permission: forbid, basis: \"no personal data\"}\n"
	      "refusals:\n  en: \"No {category} ({tier}, {source}).\"\n");
	WRITE("lexicons/en.tsv",
	      "# test lexicon\n"
	      "hate\tphrase\t0.9\tvile people\tdehumanising phrase\n"
	      "profanity\tword\t0.9\tass\texpletive\n"
	      "profanity\tword\t0.9\tscheiße\tGerman expletive\n"
	      "hate\tcompound\t0.6\tstink|rot gut+bomb|bombs\tcompound\n");
	WRITE("badlex/x.tsv", "hate\tword\t1.5\tfoo\tbad weight\n"
			      "nosuch\tword\t0.5\tbar\tunknown category\n"
			      "hate\tword\t0.5\n"
			      "hate\tcompound\t0.5\tfoo+\tno heads\n"
			      "hate\tcompound\t0.5\ta+b+c\ttwo pluses\n"
			      "hate\tcompound\t0.5\ta||b+c\tempty word\n");
	/* ob/: names, help, obligations and blocks from three tiers; the
	 * law chain eu <- de, and the org speaks German by default. */
	WRITE("ob/categories.yaml",
	      "registry: test\n"
	      "categories:\n"
	      "  hate:\n"
	      "    name: {en: \"hate speech\", de: \"Hassrede\"}\n"
	      "    detectors: {lexicon: {threshold: 0.5}}\n"
	      "    help:\n"
	      "      eu: {text: {en: \"Root line 1\", de: \"Wurzeltelefon "
	      "1\"}, source: \"https://root.example/\"}\n"
	      "      de:\n"
	      "        - {text: {en: \"Local line 2\", de: \"Ortstelefon "
	      "2\"}, source: \"https://l2.example/\"}\n"
	      "  weapons: {detectors: {lexicon: {threshold: 0.5}}}\n"
	      "  profanity: {name: \"swearing\", detectors: {lexicon: "
	      "{threshold: 0.5}}}\n"
	      "  advice: {detectors: {lexicon: {threshold: 0.5}}}\n"
	      "  advice.health: {name: {en: \"health advice\"}, detectors: "
	      "{lexicon: {threshold: 0.5}}}\n"
	      "dimensions:\n  language: {type: enum, default: en}\n");
	WRITE("ob/law/eu.yaml",
	      "tier: law\nid: eu\ncategories:\n"
	      "  hate: {permission: forbid, basis: \"Root law\"}\n"
	      "obligations:\n"
	      "  disclose_ai: {text: \"An AI answers.\", basis: \"AI law\"}\n");
	WRITE("ob/law/de.yaml", "tier: law\nid: de\nextends: eu\n");
	WRITE("ob/org/o2.yaml",
	      "tier: org\nid: o2\njurisdictions: [de]\ncategories:\n"
	      "  weapons: {permission: forbid, basis: \"Org rule\"}\n"
	      "  profanity: opt_in\n"
	      "dimensions:\n"
	      "  language: {allowed: [de, en, cy], default: de, "
	      "user_adjustable: true}\n"
	      "obligations:\n"
	      "  note: {kind: disclaimer, category: advice, text: \"Not "
	      "professional advice.\"}\n");
	WRITE("ob/lexicons/en.tsv",
	      "hate\tphrase\t0.9\tvile people\tdehumanising phrase\n"
	      "weapons\tword\t0.9\tgrenade\tweapon\n"
	      "profanity\tword\t0.9\tass\texpletive\n"
	      "advice.health\tphrase\t0.9\tmy medication\tmedicine\n");
	/* ctx/: a lexicon with one request (at the threshold alone) and
	 * topic words for hate, and a context lexicon that lowers hate
	 * only. */
	WRITE("ctx/en.tsv",
	      "hate\tphrase\t0.9\tvile people\tdehumanising phrase\n"
	      "hate\tword\t0.3\tvermin\ttopic word\n"
	      "hate\tword\t0.3\tscum\ttopic word\n"
	      "profanity\tword\t0.3\tdamn\tmild expletive\n");
	WRITE("ctx/context.tsv",
	      "# categories, kind, factor, entry, note\n"
	      "hate\tphrase\t0.5\tstop calling\tcounter-speech\n"
	      "hate,profanity\tphrase\t0.4\twould never say\tnegation\n");
	WRITE("badctx/context.tsv",
	      "hate\tphrase\t1\tstop calling\tfactor 1 lowers nothing\n"
	      "nosuch\tphrase\t0.5\tstop calling\tunknown category\n"
	      "hate,\tphrase\t0.5\tstop calling\tempty id\n"
	      "hate\tphrase\t0.5\tstop calling\n");
	/* badreg/: a registry with bad languages, jurisdictions, URLs. */
	WRITE("badreg/categories.yaml",
	      "registry: test\n"
	      "categories:\n"
	      "  hate:\n"
	      "    name: {en: \"hate\", xx: \"bad\"}\n"
	      "    help:\n"
	      "      nowhere: {text: \"x\", source: \"https://x.example/\"}\n"
	      "      fr: {text: {EN: \"y\"}, source: \"ftp://x\"}\n");
	WRITE("badreg/law/l.yaml", "tier: law\nid: l\n");
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	char cmd[600];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	return system(cmd) == 0 ? 0 : -1;
}

typedef struct fixture {
	pwb_policy *p;
	pwb_bounds *b;
	pwb_effective *e;
} fixture;

/* The judge of the guard detector in the next open_fixture(), if any. */
static pwb_status (*fixture_guard)(void *, const char *, char **,
				   pwb_diag *);

static void open_fixture(fixture *fx, const pwb_settings *s, size_t cap)
{
	pwb_diag d;
	pwb_diag_init(&d);
	assert_int_equal(pwb_policy_load(&fx->p, dir, NULL, &d), PWB_OK);
	char lex[600];
	snprintf(lex, sizeof(lex), "%s/lexicons", dir);
	pwb_bounds_params bp = pwb_bounds_default_params();
	bp.lexicon_dir = lex;
	if (cap)
		bp.max_text_bytes = cap;
	bp.guard = fixture_guard;
	assert_int_equal(pwb_bounds_new(&fx->b, fx->p, &bp, &d), PWB_OK);
	assert_int_equal(pwb_bounds_n_lexicon_entries(fx->b), 4);
	pwb_resolve_params rp = {"o", NULL, 0, s, NULL};
	assert_int_equal(pwb_policy_resolve(&fx->e, fx->p, &rp, &d), PWB_OK);
	pwb_diag_release(&d);
}

static void close_fixture(fixture *fx)
{
	pwb_effective_free(fx->e);
	pwb_bounds_free(fx->b);
	pwb_policy_free(fx->p);
}

static pwb_decision *check(fixture *fx, const char *text, size_t len)
{
	pwb_decision *d = NULL;
	assert_int_equal(pwb_bounds_check(&d, fx->b, fx->e, PWB_ROLE_PROMPT,
					  text, len, NULL),
			 PWB_OK);
	return d;
}

static const pwb_cat_decision *cat(const pwb_decision *d, const char *id)
{
	for (size_t i = 0; i < pwb_decision_n_categories(d); i++)
		if (!strcmp(pwb_decision_category(d, i)->category, id))
			return pwb_decision_category(d, i);
	fail_msg("no category %s", id);
	return NULL;
}

static void test_tiers_and_refusal(void **state)
{
	(void)state;
	fixture fx;
	open_fixture(&fx, NULL, 0);
	/* Law forbids hate: blocked by law, with the org's template. */
	const char t1[] = "They are VILE\n  people.";
	pwb_decision *d = check(&fx, t1, sizeof(t1) - 1);
	assert_int_equal(pwb_decision_verdict(d), PWB_VERDICT_BLOCK);
	const pwb_cat_decision *c = pwb_decision_blocked_by(d);
	assert_string_equal(c->category, "hate");
	assert_string_equal(c->set_by.source, "law:l");
	assert_string_equal(pwb_decision_refusal(d),
			    "No hate (the law, law:l).");
	assert_int_equal(c->n_spans, 1);
	assert_int_equal(c->spans[0].start, 9);
	assert_int_equal(c->spans[0].end, 22);
	pwb_decision_free(d);
	/* Profanity is opt_in and not turned on: blocked by the user. */
	d = check(&fx, "you ass", 7);
	assert_int_equal(pwb_decision_verdict(d), PWB_VERDICT_BLOCK);
	assert_string_equal(pwb_decision_blocked_by(d)->category, "profanity");
	assert_string_equal(pwb_decision_refusal(d),
			    "No profanity (your own settings, user).");
	pwb_decision_free(d);
	/* Word boundaries: "classic" and "assess" hold no "ass". */
	d = check(&fx, "a classic assessment", 20);
	assert_int_equal(pwb_decision_verdict(d), PWB_VERDICT_ALLOW);
	assert_false(cat(d, "profanity")->detected);
	pwb_decision_free(d);
	/* Personal data only: redacted, not blocked. */
	const char t3[] = "write to jane.doe@example.org now";
	d = check(&fx, t3, sizeof(t3) - 1);
	assert_int_equal(pwb_decision_verdict(d), PWB_VERDICT_REDACT);
	assert_string_equal(pwb_decision_redacted(d), "write to [email] now");
	pwb_decision_free(d);
	close_fixture(&fx);
	/* With profanity turned on, it is allowed. */
	pwb_settings *s;
	pwb_settings_new(&s);
	pwb_settings_set_category(s, "profanity", true);
	open_fixture(&fx, s, 0);
	d = check(&fx, "you ass", 7);
	assert_int_equal(pwb_decision_verdict(d), PWB_VERDICT_ALLOW);
	assert_true(cat(d, "profanity")->detected);
	assert_true(cat(d, "profanity")->active);
	char *json = NULL;
	assert_int_equal(pwb_decision_to_json(d, &json), PWB_OK);
	assert_non_null(strstr(json, "\"verdict\": \"allow\""));
	free(json);
	pwb_decision_free(d);
	close_fixture(&fx);
	pwb_settings_free(s);
}

static void test_bytes(void **state)
{
	(void)state;
	fixture fx;
	open_fixture(&fx, NULL, 1024 * 1024);
	/* Empty text. */
	pwb_decision *d = check(&fx, "", 0);
	assert_int_equal(pwb_decision_verdict(d), PWB_VERDICT_ALLOW);
	pwb_decision_free(d);
	/* Invalid UTF-8 and NUL bytes scan as spaces; offsets are the
	 * input's. Latin-1 capitals match lowercase entries. */
	const char t[] = "\xff\xfe\0ass\0 \xc3 SCHEI\xc3\x9f"
			 "E \xe2\x82";
	d = check(&fx, t, sizeof(t) - 1);
	const pwb_cat_decision *c = cat(d, "profanity");
	assert_int_equal(c->n_spans, 2);
	assert_int_equal(c->spans[0].start, 3);
	assert_int_equal(c->spans[0].end, 6);
	assert_int_equal(c->spans[1].start, 10);
	assert_int_equal(c->spans[1].end, 18);
	pwb_decision_free(d);
	/* Mixed scripts around an entry. */
	const char m[] = "日本語 vile people Ελληνικά";
	d = check(&fx, m, sizeof(m) - 1);
	assert_true(cat(d, "hate")->detected);
	pwb_decision_free(d);
	/* The cap: one byte over is refused, exactly the cap is checked. */
	size_t cap = 1024 * 1024;
	char *big = malloc(cap + 1);
	memset(big, 'a', cap + 1);
	memcpy(big + cap - 12, " vile people", 12);
	pwb_diag diag;
	pwb_diag_init(&diag);
	d = NULL;
	assert_int_equal(pwb_bounds_check(&d, fx.b, fx.e, PWB_ROLE_RESPONSE,
					  big, cap + 1, &diag),
			 PWB_ETOOLARGE);
	assert_null(d);
	assert_non_null(strstr(diag.entries[0].message, "the limit is"));
	pwb_diag_release(&diag);
	/* A text of exactly the cap is checked to its last byte: the match
	 * that ends it is found. */
	d = check(&fx, big, cap);
	assert_true(cat(d, "hate")->detected);
	assert_int_equal(cat(d, "hate")->spans[0].end, cap);
	assert_int_equal(pwb_decision_verdict(d), PWB_VERDICT_BLOCK);
	pwb_decision_free(d);
	free(big);
	/* The lexicon score is the noisy-or of the distinct entries seen,
	 * 1 - prod(1 - w): one entry of weight 0.9 scores 0.9, the same
	 * entry twice still 0.9, two entries 1 - 0.1 * 0.1 = 0.99. */
	const char one[] = "you ass", twice[] = "ass, you ass",
		   two[] = "ass, scheiße";
	d = check(&fx, one, sizeof(one) - 1);
	assert_float_equal(cat(d, "profanity")->score, 0.9, 1e-6);
	pwb_decision_free(d);
	d = check(&fx, twice, sizeof(twice) - 1);
	assert_float_equal(cat(d, "profanity")->score, 0.9, 1e-6);
	assert_int_equal(cat(d, "profanity")->n_spans, 2);
	pwb_decision_free(d);
	d = check(&fx, two, sizeof(two) - 1);
	assert_float_equal(cat(d, "profanity")->score, 0.99, 1e-6);
	pwb_decision_free(d);
	close_fixture(&fx);
}

/* A compound matches its parts closed, hyphenated or open, with a
 * linking element, as a whole word only. */
static void test_compound(void **state)
{
	(void)state;
	fixture fx;
	open_fixture(&fx, NULL, 1024 * 1024);
	static const struct {
		const char *text;
		bool hit;
	} cases[] = {
	    {"a stinkbomb", true},     {"two Stink-Bombs", true},
	    {"the stink bomb", true},  {"stinksbomb", true},
	    {"rot gut-bomb", true},    {"rot  gut bombs", true},
	    {"xstinkbomb", false},     {"stinkbombe", false},
	    {"stink", false},	       {"bomb", false},
	    {"stinkenbomb", true},     {"stink--bomb", false},
	};
	for (size_t i = 0; i < PWB_ARRAY_LEN(cases); i++) {
		pwb_decision *d =
		    check(&fx, cases[i].text, strlen(cases[i].text));
		if ((cat(d, "hate")->score > 0) != cases[i].hit)
			fail_msg("'%s': score %g", cases[i].text,
				 cat(d, "hate")->score);
		pwb_decision_free(d);
	}
	close_fixture(&fx);
	bool bad;
	char *re = pwb__lexicon_compound("a b|c.d+e", &bad);
	assert_false(bad);
	assert_string_equal(re, "(a\\s+b|c\\x2ed)(s|n|es|en|e)?(-|\\s+)?(e)");
	free(re);
}

static void test_lexicon_errors(void **state)
{
	(void)state;
	pwb_policy *p = NULL;
	pwb_diag d;
	pwb_diag_init(&d);
	assert_int_equal(pwb_policy_load(&p, dir, NULL, &d), PWB_OK);
	char lex[600];
	snprintf(lex, sizeof(lex), "%s/badlex", dir);
	pwb_bounds_params bp = pwb_bounds_default_params();
	bp.lexicon_dir = lex;
	pwb_bounds *b = (pwb_bounds *)1;
	assert_int_equal(pwb_bounds_new(&b, p, &bp, &d), PWB_EPARSE);
	assert_null(b);
	assert_int_equal(d.n, 6);
	for (size_t i = 3; i < 6; i++) {
		assert_int_equal(d.entries[i].line, (int)i + 1);
		assert_int_equal(d.entries[i].col, 19);
		assert_non_null(strstr(d.entries[i].message,
				       "a compound is MODIFIERS+HEADS"));
	}
	assert_int_equal(d.entries[0].line, 1);
	assert_non_null(strstr(d.entries[0].message, "weight"));
	assert_int_equal(d.entries[1].line, 2);
	assert_non_null(strstr(d.entries[1].message, "unknown category"));
	assert_int_equal(d.entries[2].line, 3);
	assert_non_null(strstr(d.entries[2].message, "5 TAB-separated"));
	assert_non_null(strstr(d.entries[0].file, "badlex/x.tsv"));
	pwb_diag_release(&d);
	pwb_policy_free(p);
}

/* Opens the detectors on the lexicon folder sub (with a model when
 * model is not NULL) for org o. */
static void open_sub(fixture *fx, const char *sub, const char *model)
{
	pwb_diag d;
	pwb_diag_init(&d);
	assert_int_equal(pwb_policy_load(&fx->p, dir, NULL, &d), PWB_OK);
	char lex[600];
	snprintf(lex, sizeof(lex), "%s/%s", dir, sub);
	pwb_bounds_params bp = pwb_bounds_default_params();
	bp.lexicon_dir = lex;
	bp.model = model;
	assert_int_equal(pwb_bounds_new(&fx->b, fx->p, &bp, &d), PWB_OK);
	pwb_resolve_params rp = {"o", NULL, 0, NULL, NULL};
	assert_int_equal(pwb_policy_resolve(&fx->e, fx->p, &rp, &d), PWB_OK);
	pwb_diag_release(&d);
}

/* The span of category c with detector det, or NULL. */
static const pwb_span *span_of(const pwb_cat_decision *c, const char *det)
{
	for (size_t k = 0; k < c->n_spans; k++)
		if (!strcmp(c->spans[k].detector, det))
			return &c->spans[k];
	return NULL;
}

/*
 * Context (docs/bounds.md): a context entry lowers the topic words of
 * the categories it lists by its factor, 1 - (1 - strong)(1 - f * topic),
 * the lowest factor when several match; an entry that reaches the
 * threshold alone is never lowered, nor a category it does not list;
 * the decision shows the factor, the score without it and the span.
 */
static void test_context_lexicon(void **state)
{
	(void)state;
	fixture fx;
	open_sub(&fx, "ctx", NULL);
	/* Two topic words: 1 - 0.7 * 0.7 = 0.51, detected. */
	const char *t = "they are vermin and scum";
	pwb_decision *d = check(&fx, t, strlen(t));
	assert_float_equal(cat(d, "hate")->score, 0.51, 1e-6);
	assert_true(cat(d, "hate")->detected);
	assert_float_equal(cat(d, "hate")->context_factor, 1.0, 0);
	assert_null(span_of(cat(d, "hate"), "context"));
	pwb_decision_free(d);
	/* The same words as counter-speech: 0.5 * 0.51, allowed, and the
	 * decision says why. */
	t = "stop calling them vermin and scum";
	d = check(&fx, t, strlen(t));
	const pwb_cat_decision *h = cat(d, "hate");
	assert_float_equal(h->score, 0.255, 1e-6);
	assert_false(h->detected);
	assert_int_equal(pwb_decision_verdict(d), PWB_VERDICT_ALLOW);
	assert_float_equal(h->context_factor, 0.5, 1e-6);
	assert_float_equal(h->score_without_context, 0.51, 1e-6);
	const pwb_span *sp = span_of(h, "context");
	assert_non_null(sp);
	assert_int_equal(sp->start, 0);
	assert_int_equal(sp->end, 12);
	assert_string_equal(sp->what, "counter-speech");
	char *json = NULL;
	assert_int_equal(pwb_decision_to_json(d, &json), PWB_OK);
	assert_non_null(strstr(json, "\"factor\": 0.5"));
	assert_non_null(strstr(json, "\"detector\": \"context\""));
	free(json);
	pwb_decision_free(d);
	/* A request, at the threshold alone, stays: 1 - 0.1 * (1 - 0.5 *
	 * 0.3) = 0.915, blocked. */
	t = "stop calling them vile people, vermin";
	d = check(&fx, t, strlen(t));
	assert_float_equal(cat(d, "hate")->score, 0.915, 1e-6);
	assert_true(cat(d, "hate")->detected);
	assert_int_equal(pwb_decision_verdict(d), PWB_VERDICT_BLOCK);
	pwb_decision_free(d);
	/* A category the entry does not list keeps its score. */
	t = "stop calling it damn";
	d = check(&fx, t, strlen(t));
	assert_float_equal(cat(d, "profanity")->score, 0.3, 1e-6);
	assert_float_equal(cat(d, "profanity")->context_factor, 1.0, 0);
	pwb_decision_free(d);
	/* Two context entries: the lowest factor counts, not their
	 * product; and a listed category is lowered too. */
	t = "stop calling, I would never say vermin and scum, damn";
	d = check(&fx, t, strlen(t));
	assert_float_equal(cat(d, "hate")->context_factor, 0.4, 1e-6);
	assert_float_equal(cat(d, "hate")->score, 0.204, 1e-6);
	assert_float_equal(cat(d, "profanity")->score, 0.12, 1e-6);
	pwb_decision_free(d);
	/* Context alone scores nothing. */
	t = "stop calling";
	d = check(&fx, t, strlen(t));
	assert_float_equal(cat(d, "hate")->score, 0, 0);
	assert_int_equal(cat(d, "hate")->n_spans, 0);
	pwb_decision_free(d);
	close_fixture(&fx);

	/* Bad context lines: a factor of 1, an unknown category, an empty
	 * id, a missing field. */
	pwb_policy *p = NULL;
	pwb_diag dg;
	pwb_diag_init(&dg);
	assert_int_equal(pwb_policy_load(&p, dir, NULL, &dg), PWB_OK);
	char lex[600];
	snprintf(lex, sizeof(lex), "%s/badctx", dir);
	pwb_bounds_params bp = pwb_bounds_default_params();
	bp.lexicon_dir = lex;
	pwb_bounds *b = NULL;
	assert_int_equal(pwb_bounds_new(&b, p, &bp, &dg), PWB_EPARSE);
	assert_int_equal(dg.n, 4);
	assert_non_null(strstr(dg.entries[0].message, "factor"));
	assert_non_null(strstr(dg.entries[1].message, "unknown category"));
	assert_non_null(strstr(dg.entries[2].message, "category ids"));
	assert_non_null(strstr(dg.entries[3].message, "categories, kind"));
	pwb_diag_release(&dg);
	pwb_policy_free(p);
}

/* Context lowers the linear model's score by its factor, per category. */
static void test_context_model(void **state)
{
	(void)state;
	char data[600], model[600];
	snprintf(data, sizeof(data), "%s/ctx-train.jsonl", dir);
	snprintf(model, sizeof(model), "%s/ctx.pwbm", dir);
	FILE *f = fopen(data, "w");
	assert_non_null(f);
	for (int i = 0; i < 300; i++)
		fprintf(f,
			i % 2 ? "{\"text\": \"the zorblax %d are here\", "
				"\"labels\": [\"hate\"]}\n"
			      : "{\"text\": \"the river %d is calm\", "
				"\"labels\": []}\n",
			i);
	fclose(f);
	pwb_policy *p = NULL;
	pwb_labelled_set *set = NULL;
	assert_int_equal(pwb_policy_load(&p, dir, NULL, NULL), PWB_OK);
	assert_int_equal(pwb_labelled_load(&set, data, p, NULL), PWB_OK);
	pwb_bounds_train_params tp = pwb_bounds_train_default_params();
	tp.hash_bits = 14;
	assert_int_equal(pwb_bounds_train(set, "ctx", model, &tp, NULL, NULL),
			 PWB_OK);
	pwb_labelled_free(set);
	pwb_policy_free(p);

	fixture fx;
	open_sub(&fx, "ctx", model);
	const char *t = "stop calling the zorblax here";
	pwb_decision *d = check(&fx, t, strlen(t));
	const pwb_cat_decision *h = cat(d, "hate");
	assert_string_equal(h->detector, "linear");
	assert_true(h->score_without_context >= 0.5);
	assert_float_equal(h->score, 0.5 * h->score_without_context, 1e-9);
	assert_false(h->detected);
	assert_non_null(span_of(h, "context"));
	pwb_decision_free(d);
	/* Without the context the model blocks. */
	t = "call the zorblax here";
	d = check(&fx, t, strlen(t));
	assert_true(cat(d, "hate")->detected);
	assert_float_equal(cat(d, "hate")->context_factor, 1.0, 0);
	pwb_decision_free(d);
	/* In a text longer than the model's window (1,024 bytes), the model
	 * scores the most harmful window, which a frame elsewhere need not
	 * explain: its score is not lowered. */
	char long_text[1600];
	int n = snprintf(long_text, sizeof(long_text), "stop calling");
	while (n < 1500)
		n += snprintf(long_text + n, sizeof(long_text) - (size_t)n,
			      " the zorblax are here");
	d = check(&fx, long_text, strlen(long_text));
	assert_true(cat(d, "hate")->detected);
	assert_float_equal(cat(d, "hate")->context_factor, 1.0, 0);
	pwb_decision_free(d);
	close_fixture(&fx);
}

/* A judge that keeps the prompt it was given and answers guard_answer. */
static char *guard_prompt;
static const char *guard_answer;

static pwb_status judge(void *user, const char *prompt, char **answer,
			pwb_diag *diag)
{
	(void)user;
	free(guard_prompt);
	guard_prompt = strdup(prompt);
	if (!guard_answer) {
		pwb_diag_add(diag, NULL, 0, 0, "judge.example is down");
		return PWB_EIO;
	}
	*answer = strdup(guard_answer);
	return PWB_OK;
}

static void test_guard(void **state)
{
	(void)state;
	fixture fx;
	fixture_guard = judge;
	open_fixture(&fx, NULL, 0);
	fixture_guard = NULL;
	const char *t = "a text no lexicon knows";

	guard_answer = "safe";
	pwb_decision *d = check(&fx, t, strlen(t));
	assert_int_equal(pwb_decision_verdict(d), PWB_VERDICT_ALLOW);
	assert_false(cat(d, "hate")->detected);
	pwb_decision_free(d);
	/* The prompt lists the guard's categories, by code, and the text. */
	assert_non_null(strstr(guard_prompt, "S10: Hateful content.\n"));
	assert_null(strstr(guard_prompt, "profanity"));
	assert_non_null(strstr(guard_prompt, "User: a text no lexicon knows"));
	assert_non_null(strstr(guard_prompt, "'safe' or 'unsafe'"));

	static const char *const unsafe[] = {
	    "unsafe\nS10", " UNSAFE \r\n s9, S10 ", "unsafe", "unsafe\nS99"};
	for (size_t i = 0; i < sizeof(unsafe) / sizeof(unsafe[0]); i++) {
		guard_answer = unsafe[i];
		d = check(&fx, t, strlen(t));
		const pwb_cat_decision *h = cat(d, "hate");
		assert_true(h->detected);
		assert_string_equal(h->detector, "guard");
		assert_true(h->score == 1.0 && h->threshold == 0.5);
		/* hate is forbidden by law l */
		assert_int_equal(pwb_decision_verdict(d), PWB_VERDICT_BLOCK);
		pwb_decision_free(d);
	}

	/* A response is judged as the agent's turn. */
	guard_answer = "safe";
	assert_int_equal(pwb_bounds_check(&d, fx.b, fx.e, PWB_ROLE_RESPONSE, t,
					  strlen(t), NULL),
			 PWB_OK);
	pwb_decision_free(d);
	assert_non_null(strstr(guard_prompt, "Agent: a text"));

	/* An unreadable answer or a failed judge fails the check. */
	pwb_diag dg;
	pwb_diag_init(&dg);
	guard_answer = "I cannot say";
	d = (pwb_decision *)1;
	assert_int_equal(pwb_bounds_check(&d, fx.b, fx.e, PWB_ROLE_PROMPT, t,
					  strlen(t), &dg),
			 PWB_EPARSE);
	assert_null(d);
	char msg[512];
	pwb_diag_format(&dg.entries[0], msg, sizeof(msg));
	assert_non_null(strstr(msg, "answered 'I cannot say'"));
	pwb_diag_clear(&dg);
	guard_answer = NULL;
	assert_int_equal(pwb_bounds_check(&d, fx.b, fx.e, PWB_ROLE_PROMPT, t,
					  strlen(t), &dg),
			 PWB_EIO);
	pwb_diag_format(&dg.entries[0], msg, sizeof(msg));
	/* ... naming the guard, and the judge's own reason. */
	assert_non_null(strstr(msg, "the guard judge failed: judge.example "
				    "is down"));
	pwb_diag_release(&dg);
	free(guard_prompt);
	guard_prompt = NULL;
	close_fixture(&fx);
}

/* ---- blocks, names, help, obligations (the ob/ folder) ---- */

static void open_ob(fixture *fx, const pwb_settings *s)
{
	pwb_diag d;
	pwb_diag_init(&d);
	char sub[600], lex[700];
	snprintf(sub, sizeof(sub), "%s/ob", dir);
	snprintf(lex, sizeof(lex), "%s/lexicons", sub);
	assert_int_equal(pwb_policy_load(&fx->p, sub, NULL, &d), PWB_OK);
	pwb_bounds_params bp = pwb_bounds_default_params();
	bp.lexicon_dir = lex;
	assert_int_equal(pwb_bounds_new(&fx->b, fx->p, &bp, &d), PWB_OK);
	pwb_resolve_params rp = {"o2", NULL, 0, s, NULL};
	assert_int_equal(pwb_policy_resolve(&fx->e, fx->p, &rp, &d), PWB_OK);
	pwb_diag_release(&d);
}

static char *to_json(const pwb_decision *d)
{
	char *json = NULL;
	assert_int_equal(pwb_decision_to_json(d, &json), PWB_OK);
	return json;
}

/* Three tiers block at once: every one is named, law first; the refusal
 * cites the law, by the category's name in the user's language, and
 * gives the help of the jurisdictions in force, the most specific
 * first. */
static void test_blocking_names_help(void **state)
{
	(void)state;
	fixture fx;
	open_ob(&fx, NULL);
	const char t[] = "you ass, a grenade for the vile people";
	pwb_decision *d = check(&fx, t, sizeof(t) - 1);
	assert_int_equal(pwb_decision_verdict(d), PWB_VERDICT_BLOCK);
	assert_int_equal(pwb_decision_n_blocking(d), 3);
	const char *want[] = {"hate", "weapons", "profanity"};
	const pwb_tier tiers[] = {PWB_TIER_LAW, PWB_TIER_ORG, PWB_TIER_USER};
	for (size_t i = 0; i < 3; i++) {
		const pwb_cat_decision *c = pwb_decision_blocking(d, i);
		assert_string_equal(c->category, want[i]);
		assert_int_equal(pwb_cat_decision_block_tier(c), tiers[i]);
	}
	assert_null(pwb_decision_blocking(d, 3));
	assert_ptr_equal(pwb_decision_blocked_by(d),
			 pwb_decision_blocking(d, 0));
	assert_string_equal(
	    pwb_decision_refusal(d),
	    "Dabei kann ich nicht helfen: Die Kategorie „Hassrede“ ist hier "
	    "nicht erlaubt, durch das Gesetz (law:eu): Root law. Das lässt "
	    "sich in den Einstellungen nicht ändern. Hier findest du Hilfe: "
	    "Ortstelefon 2; Wurzeltelefon 1.");
	assert_int_equal(pwb_decision_n_help(d), 2);
	const pwb_dec_help *h = pwb_decision_help(d, 0);
	assert_string_equal(h->category, "hate");
	assert_string_equal(h->jurisdiction, "de");
	assert_string_equal(h->text, "Ortstelefon 2");
	assert_string_equal(h->source, "https://l2.example/");
	assert_string_equal(pwb_decision_help(d, 1)->jurisdiction, "eu");
	char *json = NULL;
	assert_int_equal(pwb_decision_to_json(d, &json), PWB_OK);
	assert_non_null(strstr(json, "\"blocking\": [\n    {\n      \"tier\": "
				     "\"law\",\n      \"source\": "
				     "\"law:eu\",\n      \"category\": "
				     "\"hate\""));
	assert_non_null(strstr(json, "\"source\": \"https://root.example/\""));
	/* org, then user, after it */
	const char *org = strstr(json, "\"tier\": \"org\"");
	assert_non_null(org);
	assert_non_null(strstr(org, "\"tier\": \"user\""));
	free(json);
	pwb_decision_free(d);
	/* The user's own setting alone: the name for every language. */
	d = check(&fx, "you ass", 7);
	assert_string_equal(pwb_decision_refusal(d),
			    "Dabei kann ich nicht helfen: Die Kategorie "
			    "„swearing“ ist hier nicht erlaubt, durch deine "
			    "eigenen Einstellungen (user). Du kannst "
			    "„swearing“ in deinen Einstellungen einschalten.");
	assert_int_equal(pwb_decision_n_help(d), 0);
	pwb_decision_free(d);
	close_fixture(&fx);
	/* Welsh: no wording and no name in it; English instead. */
	pwb_settings *s;
	pwb_settings_new(&s);
	pwb_settings_set_string(s, "language", "cy");
	open_ob(&fx, s);
	d = check(&fx, "the vile people", 15);
	assert_string_equal(
	    pwb_decision_refusal(d),
	    "I can't help with that: the category “hate speech” is not "
	    "allowed here, by the law (law:eu): Root law. This cannot be "
	    "changed in your settings. Help is available: Local line 2; Root "
	    "line 1.");
	pwb_decision_free(d);
	close_fixture(&fx);
	pwb_settings_free(s);
}

static void test_obligations(void **state)
{
	(void)state;
	fixture fx;
	open_ob(&fx, NULL);
	/* Nothing detected: disclose_ai only, in the user's language. */
	pwb_decision *d = check(&fx, "hello", 5);
	assert_int_equal(pwb_decision_verdict(d), PWB_VERDICT_ALLOW);
	assert_int_equal(pwb_decision_n_obligations(d), 1);
	const pwb_dec_obligation *o = pwb_decision_obligation(d, 0);
	assert_string_equal(o->id, "disclose_ai");
	assert_string_equal(o->kind, "disclose_ai");
	assert_null(o->category);
	assert_string_equal(
	    o->text,
	    "Du sprichst mit einem KI-System, nicht mit einem Menschen.");
	assert_string_equal(o->lang, "de");
	assert_int_equal(o->placement, PWB_PLACE_SYSTEM);
	assert_string_equal(o->set_by.source, "law:eu");
	assert_string_equal(o->set_by.basis, "AI law");
	assert_null(pwb_decision_obligation(d, 1));
	pwb_decision_free(d);
	/* A child of the disclaimer's category: annotate, and the
	 * disclaimer in the policy's own words, before the response. */
	d = check(&fx, "about my medication", 19);
	assert_int_equal(pwb_decision_verdict(d), PWB_VERDICT_ANNOTATE);
	assert_int_equal(pwb_decision_n_obligations(d), 2);
	o = pwb_decision_obligation(d, 1);
	assert_string_equal(o->id, "note");
	assert_string_equal(o->kind, "disclaimer");
	assert_string_equal(o->category, "advice");
	assert_string_equal(o->text, "Not professional advice.");
	assert_null(o->lang);
	assert_int_equal(o->placement, PWB_PLACE_PREPEND);
	assert_string_equal(o->set_by.source, "org:o2");
	char *json = to_json(d);
	assert_non_null(strstr(json, "\"obligations\": ["));
	assert_non_null(strstr(json, "\"text\": \"Not professional advice.\""));
	assert_non_null(strstr(json, "\"placement\": \"prepend\""));
	assert_non_null(strstr(json, "\"placement\": \"system\""));
	assert_non_null(strstr(json, "\"lang\": null"));
	free(json);
	pwb_decision_free(d);
	/* A block: the response is the refusal; no disclaimer. */
	d = check(&fx, "my medication for the vile people", 33);
	assert_int_equal(pwb_decision_verdict(d), PWB_VERDICT_BLOCK);
	assert_int_equal(pwb_decision_n_obligations(d), 1);
	assert_string_equal(pwb_decision_obligation(d, 0)->kind, "disclose_ai");
	pwb_decision_free(d);
	close_fixture(&fx);
	/* Welsh: pwb has no wording; the obligation's own text. */
	pwb_settings *s;
	pwb_settings_new(&s);
	pwb_settings_set_string(s, "language", "cy");
	open_ob(&fx, s);
	d = check(&fx, "hello", 5);
	o = pwb_decision_obligation(d, 0);
	assert_string_equal(o->text, "An AI answers.");
	assert_null(o->lang);
	pwb_decision_free(d);
	close_fixture(&fx);
	pwb_settings_free(s);
}

/* Unknown languages, jurisdictions and URLs in the registry's names and
 * help are errors at their place. */
static void test_registry_names_help_errors(void **state)
{
	(void)state;
	char sub[600];
	snprintf(sub, sizeof(sub), "%s/badreg", dir);
	pwb_policy *p = NULL;
	pwb_diag d;
	pwb_diag_init(&d);
	assert_int_equal(pwb_policy_load(&p, sub, NULL, &d), PWB_EPOLICY);
	static const struct {
		int line, col;
		const char *msg;
	} want[] = {
	    {4, 24, "unknown language 'xx' in a category name"},
	    {6, 7, "unknown jurisdiction 'nowhere' in help"},
	    {7, 19, "unknown language 'EN' in a help text"},
	    /* a quoted scalar is placed at its first character inside the
	     * quotes, as everywhere in the policy loader */
	    {7, 38, "source 'ftp://x' must be a URL"},
	};
	assert_int_equal(d.n, PWB_ARRAY_LEN(want));
	for (size_t i = 0; i < PWB_ARRAY_LEN(want); i++) {
		bool found = false;
		for (size_t k = 0; k < d.n && !found; k++)
			found =
			    d.entries[k].line == want[i].line &&
			    d.entries[k].col == want[i].col &&
			    strstr(d.entries[k].message, want[i].msg) &&
			    strstr(d.entries[k].file, "badreg/categories.yaml");
		if (!found)
			fail_msg("no error %d:%d: %s", want[i].line,
				 want[i].col, want[i].msg);
	}
	pwb_diag_release(&d);
	pwb_policy_free(p);
}

/* The redacted text keeps every byte of the input: NUL bytes and invalid
 * UTF-8 around personal data; JSON shows each invalid byte as U+FFFD. */
static void test_redacted_bytes(void **state)
{
	(void)state;
	fixture fx;
	open_fixture(&fx, NULL, 0);
	const char t1[] = "\xff write to jane.doe@example.org";
	pwb_decision *d = check(&fx, t1, sizeof(t1) - 1);
	assert_int_equal(pwb_decision_verdict(d), PWB_VERDICT_REDACT);
	assert_int_equal(pwb_decision_redacted_len(d), 18);
	assert_memory_equal(pwb_decision_redacted(d), "\xff write to [email]",
			    19);
	char *json = to_json(d);
	assert_non_null(
	    strstr(json, "\"redacted\": \"\xef\xbf\xbd write to [email]\""));
	free(json);
	pwb_decision_free(d);
	const char t2[] = "a\0b write to jane.doe@example.org c";
	d = check(&fx, t2, sizeof(t2) - 1);
	assert_int_equal(pwb_decision_verdict(d), PWB_VERDICT_REDACT);
	assert_int_equal(pwb_decision_redacted_len(d), 22);
	assert_memory_equal(pwb_decision_redacted(d), "a\0b write to [email] c",
			    23);
	json = to_json(d);
	assert_non_null(
	    strstr(json, "\"redacted\": \"a\\u0000b write to [email] c\""));
	free(json);
	pwb_decision_free(d);
	/* A cut sequence after it: one U+FFFD per byte. */
	const char t3[] = "mail jane.doe@example.org \xe2\x82!";
	d = check(&fx, t3, sizeof(t3) - 1);
	assert_int_equal(pwb_decision_redacted_len(d), 16);
	json = to_json(d);
	assert_non_null(strstr(
	    json, "\"redacted\": \"mail [email] \xef\xbf\xbd\xef\xbf\xbd!\""));
	free(json);
	pwb_decision_free(d);
	close_fixture(&fx);
}

/* Past 64 spans in a category, the rest are counted, not listed. */
static void test_spans_omitted(void **state)
{
	(void)state;
	fixture fx;
	open_fixture(&fx, NULL, 0);
	char t[70 * 4 + 1];
	for (int i = 0; i < 70; i++)
		memcpy(t + 4 * i, "ass ", 4);
	t[70 * 4] = '\0';
	pwb_decision *d = check(&fx, t, strlen(t));
	const pwb_cat_decision *c = cat(d, "profanity");
	assert_int_equal(c->n_spans, 64);
	assert_int_equal(c->n_spans_omitted, 6);
	assert_int_equal(c->spans[63].start, 63 * 4);
	assert_int_equal(cat(d, "hate")->n_spans_omitted, 0);
	char *json = to_json(d);
	assert_non_null(strstr(json, "\"spans_omitted\": 6"));
	assert_non_null(strstr(json, "\"spans_omitted\": 0"));
	free(json);
	pwb_decision_free(d);
	close_fixture(&fx);
}

/* ---- allocation failures ---- */

/* A decision as JSON plus its refusal and redacted text: equal strings
 * mean equal decisions. Made with no allocation failing. */
static char *decision_text(const pwb_decision *d)
{
	char *json = NULL;
	assert_int_equal(pwb_decision_to_json(d, &json), PWB_OK);
	const char *ref = pwb_decision_refusal(d);
	const char *red = pwb_decision_redacted(d);
	size_t n = strlen(json) + (ref ? strlen(ref) : 4) +
		   (red ? strlen(red) : 4) + 64;
	char *t = malloc(n);
	assert_non_null(t);
	snprintf(t, n, "%s\nverdict %d\nrefusal %s\nredacted %s", json,
		 (int)pwb_decision_verdict(d), ref ? ref : "NULL",
		 red ? red : "NULL");
	free(json);
	return t;
}

/*
 * Fails the 1st, 2nd, ... allocation of one check of text, until a check
 * runs without reaching the failure point. Each run either succeeds with
 * the decision of an unfailed check, or returns PWB_ENOMEM with no
 * decision and a message; the ASan build checks that nothing leaks.
 * Returns the runs that failed.
 */
static long sweep_check(fixture *fx, const char *text, size_t len,
			pwb_verdict want_verdict)
{
	pwb_decision *d0 = check(fx, text, len);
	assert_int_equal(pwb_decision_verdict(d0), want_verdict);
	char *want = decision_text(d0);
	pwb_decision_free(d0);
	long n_fail = 0;
	bool done = false;
	for (long k = 1; k < 100000 && !done; k++) {
		pwb_diag dg;
		pwb_diag_init(&dg);
		pwb_decision *d = (pwb_decision *)&d; /* must be overwritten */
		pwb__alloc_count = 0;
		pwb__alloc_fail_at = k;
		pwb_status rc = pwb_bounds_check(
		    &d, fx->b, fx->e, PWB_ROLE_PROMPT, text, len, &dg);
		bool reached = pwb__alloc_count >= k;
		pwb__alloc_fail_at = 0;
		if (rc == PWB_OK) {
			if (!d)
				fail_msg("allocation %ld failed: PWB_OK "
					 "without a decision",
					 k);
			char *got = decision_text(d);
			if (strcmp(got, want) != 0)
				fail_msg("allocation %ld failed: the "
					 "decision\n%s\ndiffers from\n%s",
					 k, got, want);
			free(got);
			pwb_decision_free(d);
			done = !reached;
		} else {
			if (rc != PWB_ENOMEM)
				fail_msg("allocation %ld failed: status %s", k,
					 pwb_status_str(rc));
			if (d)
				fail_msg("allocation %ld failed: a decision "
					 "was handed out",
					 k);
			if (dg.n < 1)
				fail_msg("allocation %ld failed: no message",
					 k);
			n_fail++;
		}
		pwb_diag_release(&dg);
	}
	assert_true(done);
	free(want);
	return n_fail;
}

static void test_alloc_failure_sweep(void **state)
{
	(void)state;
	fixture fx;
	fixture_guard = NULL;
	open_fixture(&fx, NULL, 0);
	/* Lexicon matches in two categories and personal data; hate blocks
	 * (law), with the org's refusal. */
	const char t1[] = "They are VILE people, you ass: write to "
			  "jane.doe@example.org or call +49 30 901820";
	long n1 = sweep_check(&fx, t1, sizeof(t1) - 1, PWB_VERDICT_BLOCK);
	/* Personal data alone: a redacted text. */
	const char t2[] = "write to jane.doe@example.org and "
			  "john@example.com now";
	long n2 = sweep_check(&fx, t2, sizeof(t2) - 1, PWB_VERDICT_REDACT);
	assert_true(n1 > 5 && n2 > 5);
	close_fixture(&fx);
	/* Three blocks with help and obligations; an annotation. */
	open_ob(&fx, NULL);
	const char t3[] = "you ass, a grenade for the vile people";
	long n3 = sweep_check(&fx, t3, sizeof(t3) - 1, PWB_VERDICT_BLOCK);
	const char t4[] = "about my medication";
	long n4 = sweep_check(&fx, t4, sizeof(t4) - 1, PWB_VERDICT_ANNOTATE);
	assert_true(n3 > 5 && n4 > 5);
	print_message("allocation sweep: %ld, %ld, %ld and %ld failures "
		      "handled\n",
		      n1, n2, n3, n4);
	close_fixture(&fx);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_tiers_and_refusal),
	    cmocka_unit_test(test_guard),
	    cmocka_unit_test(test_bytes),
	    cmocka_unit_test(test_compound),
	    cmocka_unit_test(test_lexicon_errors),
	    cmocka_unit_test(test_context_lexicon),
	    cmocka_unit_test(test_context_model),
	    cmocka_unit_test(test_blocking_names_help),
	    cmocka_unit_test(test_obligations),
	    cmocka_unit_test(test_registry_names_help_errors),
	    cmocka_unit_test(test_redacted_bytes),
	    cmocka_unit_test(test_spans_omitted),
	    cmocka_unit_test(test_alloc_failure_sweep),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
