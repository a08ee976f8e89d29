/*
 * test_pipeline.c - one request end to end (DESIGN §3.1-3.2,
 * include/pwb/pipeline.h) with the real parts: the embedded engine on the
 * tiny model stories260K.gguf, bounds with lexicons, a SQLite store in a
 * temporary folder.
 *
 * Two policy folders:
 *   - the shipped policies/ (acme-tutor, open-studio) with their
 *     lexicons: prompts refused by law, by the org and by the user's own
 *     setting (also while streaming); personalisation in the loop and a
 *     reset of it; consent; feedback errors, and feedback from several
 *     threads at once; the JSON of a response; bad requests;
 *   - a tiny folder the test writes (the shipped registry, a law file
 *     that forbids nothing, and orgs t-open, t-all, t-some that differ
 *     only in their categories, so that one seed gives them the same
 *     candidates), with a lexicon of the test's own: every common story
 *     word is "profanity" (t-all forbids it: every candidate is blocked)
 *     and the word "little" is "harassment" (t-some forbids it: the
 *     candidates that say it are dropped, and a stream that reaches it is
 *     cut before its sentence).
 *
 * What the model writes is found by asking t-open first, never assumed:
 * each test then asserts what the rails must do with that text.
 *
 * The model is PWB_MODEL, else ../shared/models/stories260K.gguf beside
 * the source tree (PWB_SOURCE_DIR, or found from this file's path); when
 * it is absent every test is skipped with a message saying where it was
 * looked for. Every request has a fixed seed.
 *
 * Three tests fail on bugs found in src/ (each says where, above it):
 * test_reset_back_to_population, test_feedback_concurrent and
 * test_stream_prompt_refused.
 */
/* cmocka needs these first, in this order. */
/* clang-format off */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
/* clang-format on */

#include <ctype.h>
#include <jansson.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "pwb/pwb.h"
#include "store/store_int.h"

#define MAX_TOKENS 48
#define BLOCK_WORD "little" /* the tiny lexicon's harassment word */

static char src_dir[900];
static char model_path[1024];
static bool have_model;
static char tmpdir[] = "/tmp/pwb-test-pipeline-XXXXXX";

/* The parts, made once for every test. */
static pwb_engine *eng;
static pwb_store *store;
static pwb_policy *pol_real, *pol_tiny;
static pwb_bounds *b_real, *b_tiny;
static pwb_pipeline *pl_real, *pl_tiny;

/* ---- the tiny policy folder ---- */

static void write_file(const char *rel, const char *text)
{
	char path[1200];
	snprintf(path, sizeof(path), "%s/%s", tmpdir, rel);
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	assert_int_equal(fclose(f), 0);
}

static void copy_file(const char *from, const char *rel)
{
	FILE *f = fopen(from, "rb");
	assert_non_null(f);
	char path[1200];
	snprintf(path, sizeof(path), "%s/%s", tmpdir, rel);
	FILE *g = fopen(path, "wb");
	assert_non_null(g);
	char buf[8192];
	size_t n;
	while ((n = fread(buf, 1, sizeof(buf), f)))
		assert_int_equal(fwrite(buf, 1, n, g), n);
	fclose(f);
	assert_int_equal(fclose(g), 0);
}

/* The orgs share everything that reaches the system prompt. */
static void write_org(const char *id, const char *categories)
{
	char text[2048], rel[64];
	snprintf(text, sizeof(text),
		 "tier: org\n"
		 "id: %s\n"
		 "jurisdictions: [tl]\n"
		 "candidates: 4\n"
		 "categories:\n%s"
		 "dimensions:\n"
		 "  verbosity: {range: [0.0, 1.0], default: 0.5, "
		 "user_adjustable: true}\n"
		 "system_prompt: \"Tell stories about animals.\"\n",
		 id, categories);
	snprintf(rel, sizeof(rel), "tiny/org/%s.yaml", id);
	write_file(rel, text);
}

static void write_tiny_policies(void)
{
	const char *dirs[] = {"tiny", "tiny/law", "tiny/org", "tiny/lexicons"};
	for (size_t i = 0; i < 4; i++) {
		char p[1200];
		snprintf(p, sizeof(p), "%s/%s", tmpdir, dirs[i]);
		assert_int_equal(mkdir(p, 0755), 0);
	}
	char reg[1200];
	snprintf(reg, sizeof(reg), "%s/policies/categories.yaml", src_dir);
	copy_file(reg, "tiny/categories.yaml");
	write_file("tiny/law/tl.yaml",
		   "tier: law\nid: tl\nname: Test law that forbids nothing\n");
	write_org("t-open",
		  "  profanity: {permission: allow, basis: \"test\"}\n"
		  "  harassment: {permission: allow, basis: \"test\"}\n");
	write_org("t-all",
		  "  profanity: {permission: forbid, basis: \"Test: no common "
		  "words\"}\n"
		  "  harassment: {permission: allow, basis: \"test\"}\n");
	write_org("t-some",
		  "  profanity: {permission: allow, basis: \"test\"}\n"
		  "  harassment: {permission: forbid, basis: \"Test: no "
		  "that word\"}\n");
	write_file("tiny/lexicons/en.tsv",
		   "# The test's lexicon: common story words, and one word.\n"
		   "profanity\tword\t0.9\tthe\tcommon\n"
		   "profanity\tword\t0.9\ta\tcommon\n"
		   "profanity\tword\t0.9\tand\tcommon\n"
		   "profanity\tword\t0.9\tto\tcommon\n"
		   "profanity\tword\t0.9\twas\tcommon\n"
		   "profanity\tword\t0.9\tis\tcommon\n"
		   "profanity\tword\t0.9\tit\tcommon\n"
		   "profanity\tword\t0.9\twe\tcommon\n"
		   "profanity\tword\t0.9\tyou\tcommon\n"
		   "profanity\tword\t0.9\the\tcommon\n"
		   "profanity\tword\t0.9\tshe\tcommon\n"
		   "profanity\tword\t0.9\tthey\tcommon\n"
		   "harassment\tword\t0.9\t" BLOCK_WORD "\tthe test word\n");
}

/* ---- setup ---- */

static void find_paths(void)
{
	const char *env = getenv("PWB_SOURCE_DIR");
	if (env && *env) {
		snprintf(src_dir, sizeof(src_dir), "%s", env);
	} else {
		/* __FILE__ is .../tests/unit/test_pipeline.c when built by
		 * path: three folders up is the source tree. */
		snprintf(src_dir, sizeof(src_dir), "%s", __FILE__);
		for (int up = 0; up < 3; up++) {
			char *slash = strrchr(src_dir, '/');
			if (slash)
				*slash = '\0';
			else
				snprintf(src_dir, sizeof(src_dir), ".");
		}
	}
	env = getenv("PWB_MODEL");
	if (env && *env)
		snprintf(model_path, sizeof(model_path), "%s", env);
	else
		snprintf(model_path, sizeof(model_path),
			 "%s/../shared/models/stories260K.gguf", src_dir);
	struct stat st;
	have_model = !stat(model_path, &st) && S_ISREG(st.st_mode);
}

#define NEED_MODEL()                                                           \
	do {                                                                   \
		if (!have_model) {                                             \
			print_message("skipped: the model %s is absent (set "  \
				      "PWB_MODEL to stories260K.gguf)\n",      \
				      model_path);                             \
			skip();                                                \
		}                                                              \
	} while (0)

static const char *first_msg(const pwb_diag *d)
{
	return d->n ? d->entries[0].message : "(no message)";
}

static bool diag_has(const pwb_diag *d, const char *word)
{
	for (size_t i = 0; i < d->n; i++)
		if (strstr(d->entries[i].message, word))
			return true;
	return false;
}

static void ok(pwb_status st, const pwb_diag *d, const char *what)
{
	if (st)
		fail_msg("%s: %s: %s", what, pwb_status_str(st),
			 d ? first_msg(d) : "");
}

static pwb_bounds *bounds_for(pwb_policy *p, const char *lexicons)
{
	pwb_bounds_params bp = pwb_bounds_default_params();
	bp.lexicon_dir = lexicons;
	const char *cache = getenv("PWB_CACHE_DIR");
	bp.cache_dir = cache && *cache ? cache : NULL;
	pwb_bounds *b = NULL;
	pwb_diag d;
	pwb_diag_init(&d);
	ok(pwb_bounds_new(&b, p, &bp, &d), &d, lexicons);
	pwb_diag_release(&d);
	return b;
}

static pwb_pipeline *pipeline_for(pwb_policy *p, pwb_bounds *b, pwb_store *s)
{
	pwb_pipeline_params pp = pwb_pipeline_default_params();
	pp.policy = p;
	pp.bounds = b;
	pp.engine = eng;
	pp.store = s;
	pp.max_tokens = MAX_TOKENS;
	pwb_pipeline *pl = NULL;
	pwb_diag d;
	pwb_diag_init(&d);
	ok(pwb_pipeline_new(&pl, &pp, &d), &d, "pipeline");
	pwb_diag_release(&d);
	return pl;
}

static int setup(void **state)
{
	(void)state;
	find_paths();
	if (!mkdtemp(tmpdir))
		return -1;
	if (!have_model)
		return 0;
	pwb_diag d;
	pwb_diag_init(&d);
	pwb_llama_params lp = pwb_llama_default_params();
	lp.model_path = model_path;
	lp.n_threads = 1; /* a tiny model: threads only add waiting */
	ok(pwb_engine_llama_new(&eng, &lp, &d), &d, model_path);
	char path[1200];
	snprintf(path, sizeof(path), "sqlite:%s/pwb.db", tmpdir);
	ok(pwb_store_open(&store, path, NULL, &d), &d, path);
	snprintf(path, sizeof(path), "%s/policies", src_dir);
	ok(pwb_policy_load(&pol_real, path, NULL, &d), &d, path);
	snprintf(path, sizeof(path), "%s/policies/lexicons", src_dir);
	b_real = bounds_for(pol_real, path);
	write_tiny_policies();
	snprintf(path, sizeof(path), "%s/tiny", tmpdir);
	ok(pwb_policy_load(&pol_tiny, path, NULL, &d), &d, path);
	snprintf(path, sizeof(path), "%s/tiny/lexicons", tmpdir);
	b_tiny = bounds_for(pol_tiny, path);
	pwb_diag_release(&d);
	pl_real = pipeline_for(pol_real, b_real, store);
	pl_tiny = pipeline_for(pol_tiny, b_tiny, store);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	pwb_pipeline_free(pl_real);
	pwb_pipeline_free(pl_tiny);
	pwb_bounds_free(b_real);
	pwb_bounds_free(b_tiny);
	pwb_policy_free(pol_real);
	pwb_policy_free(pol_tiny);
	pwb_store_free(store);
	pwb_engine_free(eng);
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	return system(cmd) == 0 ? 0 : -1;
}

/* ---- requests ---- */

/* One request; max_tokens 0: the pipeline's (MAX_TOKENS). */
static pwb_response *chat_full(pwb_pipeline *pl, const char *org,
			       const char *user, const char *prompt, size_t n,
			       uint64_t seed, size_t max_tokens)
{
	pwb_chat_msg m = {"user", prompt};
	pwb_request req = {.org = org,
			   .user = user,
			   .msgs = &m,
			   .n_msgs = 1,
			   .n = n,
			   .seed = seed,
			   .max_tokens = max_tokens};
	pwb_response *r = NULL;
	pwb_diag d;
	pwb_diag_init(&d);
	pwb_status st = pwb_pipeline_chat(pl, &req, &r, &d);
	if (st)
		fail_msg("chat (%s, %s, '%s'): %s: %s", org, user, prompt,
			 pwb_status_str(st), first_msg(&d));
	pwb_diag_release(&d);
	assert_non_null(r);
	assert_non_null(r->decision_id);
	assert_non_null(r->content);
	assert_non_null(r->effective);
	return r;
}

static pwb_response *chat_n(pwb_pipeline *pl, const char *org, const char *user,
			    const char *prompt, size_t n, uint64_t seed)
{
	return chat_full(pl, org, user, prompt, n, seed, 0);
}

static void set_settings(const char *org, const char *user, const char *json)
{
	pwb_diag d;
	pwb_diag_init(&d);
	ok(pwb_store_user_set_settings(store, org, user, json,
				       (int64_t)time(NULL), &d),
	   &d, "settings");
	pwb_diag_release(&d);
}

static void set_consent(const char *org, const char *user)
{
	pwb_diag d;
	pwb_diag_init(&d);
	ok(pwb_store_user_set_consent(store, org, user, "{\"learning\": true}",
				      (int64_t)time(NULL), &d),
	   &d, "consent");
	pwb_diag_release(&d);
}

static uint64_t fb_count(const char *org)
{
	uint64_t n = 0;
	ok(pwb_store_feedback_count(store, org, NULL, &n, NULL), NULL, "count");
	return n;
}

/* Whether text has word as a whole word, in any case; its offset. */
static bool has_word(const char *text, const char *word, size_t *at)
{
	size_t wl = strlen(word), len = strlen(text);
	for (size_t i = 0; i + wl <= len; i++) {
		if (strncasecmp(text + i, word, wl))
			continue;
		bool before = i == 0 || !isalnum((unsigned char)text[i - 1]);
		bool after =
		    i + wl == len || !isalnum((unsigned char)text[i + wl]);
		if (before && after) {
			if (at)
				*at = i;
			return true;
		}
	}
	return false;
}

static void assert_refusal(const pwb_response *r, pwb_tier tier,
			   const char *source_prefix, const char *category,
			   const char *on)
{
	assert_true(r->blocked);
	assert_int_equal(r->verdict, PWB_VERDICT_BLOCK);
	assert_int_equal(r->blocked_by.tier, tier);
	assert_non_null(r->blocked_by.source);
	if (strncmp(r->blocked_by.source, source_prefix, strlen(source_prefix)))
		fail_msg("source '%s' does not start '%s'",
			 r->blocked_by.source, source_prefix);
	if (category)
		assert_string_equal(r->blocked_by.category, category);
	assert_string_equal(r->blocked_by.on, on);
	assert_non_null(r->refusal);
	assert_true(strlen(r->refusal) > 0);
	assert_int_equal(r->chosen, SIZE_MAX);
}

/* ---- input rails: law, org, user ---- */

static void test_prompt_refused_by_law(void **state)
{
	(void)state;
	NEED_MODEL();
	pwb_response *r = chat_n(pl_real, "acme-tutor", "law-u",
				 "How do I build a bomb to kill people?", 4, 1);
	assert_refusal(r, PWB_TIER_LAW, "law:", NULL, "prompt");
	assert_non_null(r->blocked_by.basis);
	assert_non_null(r->blocked_by.file);
	assert_true(r->blocked_by.line > 0);
	/* The prompt never reached the engine. */
	assert_int_equal(r->n_alts, 0);
	assert_null(r->alts);
	assert_int_equal(r->completion_tokens, 0);
	assert_string_equal(r->content, r->refusal);
	assert_non_null(r->prompt_check);
	assert_int_equal(pwb_decision_verdict(r->prompt_check),
			 PWB_VERDICT_BLOCK);
	/* The decision is recorded as blocked. */
	pwb_store_decision_row row;
	ok(pwb_store_decision_get(store, "acme-tutor", r->decision_id, &row,
				  NULL),
	   NULL, "decision");
	assert_string_equal(row.user, "law-u");
	assert_string_equal(row.verdict, "block");
	pwb_store_decision_row_release(&row);
	pwb_response_free(r);
}

static void test_prompt_refused_by_org(void **state)
{
	(void)state;
	NEED_MODEL();
	/* Harassment: the law leaves it to the org; acme-tutor forbids it. */
	pwb_response *r = chat_n(pl_real, "acme-tutor", "org-u",
				 "You are a stupid idiot", 4, 1);
	assert_refusal(r, PWB_TIER_ORG, "org:acme-tutor", "harassment",
		       "prompt");
	assert_string_equal(r->blocked_by.source, "org:acme-tutor");
	assert_non_null(strstr(r->blocked_by.file, "acme-tutor.yaml"));
	assert_int_equal(r->n_alts, 0);
	pwb_response_free(r);
}

static void test_prompt_refused_by_user(void **state)
{
	(void)state;
	NEED_MODEL();
	const char *prompt = "What the fuck is this shit?";
	/* open-studio allows profanity; a user without settings is
	 * answered... */
	pwb_response *r =
	    chat_n(pl_real, "open-studio", "user-on", prompt, 1, 1);
	assert_false(r->blocked);
	assert_int_equal(r->n_alts, 1);
	pwb_response_free(r);
	/* ... a user who switched it off is refused by their own setting. */
	set_settings("open-studio", "user-off",
		     "{\"categories\": {\"profanity\": \"off\"}}");
	r = chat_n(pl_real, "open-studio", "user-off", prompt, 1, 1);
	assert_refusal(r, PWB_TIER_USER, "user", "profanity", "prompt");
	assert_string_equal(r->blocked_by.source, "user");
	assert_null(r->blocked_by.file);
	assert_int_equal(r->n_alts, 0);
	pwb_response_free(r);
}

/* ---- output rails ---- */

static void test_every_candidate_blocked(void **state)
{
	(void)state;
	NEED_MODEL();
	/* A prompt without any of the lexicon's common words. */
	const char *prompt = "Story time, please.";
	pwb_response *open =
	    chat_n(pl_tiny, "t-open", "out-u", prompt, 4, 1000);
	assert_false(open->blocked);
	assert_int_equal(open->n_alts, 4);
	pwb_response *r = chat_n(pl_tiny, "t-all", "out-u", prompt, 4, 1000);
	assert_refusal(r, PWB_TIER_ORG, "org:t-all", "profanity", "response");
	assert_string_equal(r->blocked_by.source, "org:t-all");
	assert_string_equal(r->content, r->refusal);
	assert_int_equal(r->n_alts, 4);
	for (size_t i = 0; i < 4; i++) {
		/* The same candidates as t-open's, each blocked: their
		 * text is not kept. */
		assert_null(r->alts[i].content);
		char *shown = (char *)1;
		assert_int_equal(pwb_alternative_shown(&r->alts[i], &shown),
				 PWB_EINVAL);
		assert_null(shown);
		assert_int_equal(r->alts[i].verdict, PWB_VERDICT_BLOCK);
		assert_true(r->alts[i].score == 0);
		assert_non_null(r->alts[i].check);
	}
	/* No blocked text in the JSON. */
	char *js = NULL;
	assert_int_equal(pwb_response_to_json(r, &js), PWB_OK);
	json_t *j = json_loads(js, 0, NULL);
	assert_non_null(j);
	json_t *alts = json_object_get(j, "alternatives");
	assert_int_equal(json_array_size(alts), 4);
	for (size_t i = 0; i < 4; i++) {
		json_t *c = json_object_get(json_array_get(alts, i), "content");
		assert_true(json_is_null(c));
		assert_null(strstr(js, open->alts[i].content));
	}
	assert_true(json_is_null(json_object_get(j, "chosen")));
	json_decref(j);
	free(js);
	pwb_response_free(r);
	pwb_response_free(open);
}

/* The first seed from 4000 whose 4 candidates, unblocked, say the
 * blocked word in some but not all of them (the model is deterministic
 * for a seed, so this is the same seed on every run of one model). */
static uint64_t seed_with_mix(void)
{
	for (uint64_t seed = 4000; seed < 4300; seed++) {
		pwb_response *open = chat_n(pl_tiny, "t-open", "seed-u",
					    "Tell me a story.", 4, seed);
		size_t n_says = 0;
		for (size_t i = 0; i < 4; i++)
			n_says +=
			    has_word(open->alts[i].content, BLOCK_WORD, NULL);
		pwb_response_free(open);
		if (n_says > 0 && n_says < 4)
			return seed;
	}
	fail_msg("no seed in 4000..4299 gives candidates that say '%s' "
		 "in some but not all of 4",
		 BLOCK_WORD);
	return 0;
}

static void test_some_candidates_blocked(void **state)
{
	(void)state;
	NEED_MODEL();
	const char *prompt = "Tell me a story.";
	const uint64_t seed = seed_with_mix();
	pwb_response *open =
	    chat_n(pl_tiny, "t-open", "some-u", prompt, 4, seed);
	bool says[4];
	for (size_t i = 0; i < 4; i++)
		says[i] = has_word(open->alts[i].content, BLOCK_WORD, NULL);
	pwb_response *r = chat_n(pl_tiny, "t-some", "some-u", prompt, 4, seed);
	assert_false(r->blocked);
	assert_null(r->refusal);
	assert_int_equal(r->n_alts, 4);
	for (size_t i = 0; i < 4; i++) {
		if (says[i])
			assert_null(r->alts[i].content);
		else
			assert_string_equal(r->alts[i].content,
					    open->alts[i].content);
		assert_int_equal(r->alts[i].verdict == PWB_VERDICT_BLOCK,
				 says[i]);
		if (says[i]) {
			const pwb_cat_decision *c =
			    pwb_decision_blocked_by(r->alts[i].check);
			assert_non_null(c);
			assert_string_equal(c->category, "harassment");
			assert_true(r->alts[i].score == 0);
		}
	}
	assert_true(r->chosen < 4);
	assert_false(says[r->chosen]);
	assert_int_not_equal(r->alts[r->chosen].verdict, PWB_VERDICT_BLOCK);
	assert_string_equal(r->content, r->alts[r->chosen].content);
	assert_false(has_word(r->content, BLOCK_WORD, NULL));
	pwb_response_free(r);
	pwb_response_free(open);
}

/* ---- personalisation in the loop ---- */

static size_t shortest_allowed(const pwb_response *r)
{
	size_t best = SIZE_MAX;
	for (size_t i = 0; i < r->n_alts; i++)
		if (r->alts[i].verdict != PWB_VERDICT_BLOCK &&
		    (best == SIZE_MAX || strlen(r->alts[i].content) <
					     strlen(r->alts[best].content)))
			best = i;
	return best;
}

/* Pearson's r between the scores and the lengths of the alternatives. */
static double score_length_corr(const pwb_response *r)
{
	double sx = 0, sy = 0, sxx = 0, syy = 0, sxy = 0;
	double n = (double)r->n_alts;
	for (size_t i = 0; i < r->n_alts; i++) {
		double x = r->alts[i].score;
		double y = (double)strlen(r->alts[i].content);
		sx += x;
		sy += y;
		sxx += x * x;
		syy += y * y;
		sxy += x * y;
	}
	double cov = sxy - sx * sy / n;
	double vx = sxx - sx * sx / n, vy = syy - sy * sy / n;
	return vx > 0 && vy > 0 ? cov / sqrt(vx * vy) : 0;
}

static pwb_feedback_result give_choice(const char *org, const char *user,
				       const char *decision, const char *alt)
{
	pwb_feedback_give fb = {.org = org,
				.user = user,
				.decision_id = decision,
				.kind = PWB_FB_CHOOSE,
				.alt = alt};
	pwb_feedback_result res;
	pwb_diag d;
	pwb_diag_init(&d);
	pwb_status st = pwb_pipeline_feedback(pl_real, &fb, &res, &d);
	if (st)
		fail_msg("feedback: %s: %s", pwb_status_str(st), first_msg(&d));
	pwb_diag_release(&d);
	return res;
}

static void test_personalisation_learns_shorter(void **state)
{
	(void)state;
	NEED_MODEL();
	/* 96 tokens: long enough for the candidates' lengths to differ. */
	const size_t mt = 96;
	const char *org = "acme-tutor", *prompt = "Tell me a story.";
	set_consent(org, "pers-a");
	set_consent(org, "pers-b");
	int64_t version = 0;
	for (int round = 0; round < 10; round++) {
		pwb_response *r =
		    chat_full(pl_real, org, "pers-a", prompt, 4,
			      (uint64_t)(10000 + 100 * round), mt);
		assert_false(r->blocked);
		assert_true(r->learns);
		assert_int_equal(r->personal, round > 0);
		size_t s = shortest_allowed(r);
		assert_true(s < r->n_alts);
		size_t allowed = 0;
		for (size_t i = 0; i < r->n_alts; i++)
			allowed += r->alts[i].verdict != PWB_VERDICT_BLOCK;
		pwb_feedback_result res =
		    give_choice(org, "pers-a", r->decision_id, r->alts[s].id);
		assert_false(res.consent_needed);
		assert_int_equal(res.pairs_learnt, allowed - 1);
		/* Every learnt event bumps the user's model version. */
		assert_true(res.model_version > version);
		version = res.model_version;
		pwb_response_free(r);
	}
	pwb_store_user u;
	ok(pwb_store_user_get(store, org, "pers-a", &u, NULL), NULL, "user");
	assert_int_equal(u.model_version, version);
	assert_true(u.model_len > 0);
	pwb_store_user_release(&u);
	/*
	 * Fresh requests. A and B have the same settings, so one seed gives
	 * them the same candidates; B (consent, no feedback) is scored by
	 * the population model, A by their own. A's scores rank the shorter
	 * alternatives higher, and so does A's own part of them (A's score
	 * minus B's): the population also learnt a little from A.
	 */
	const int n_eval = 6;
	double corr_sum = 0, delta_sum = 0;
	int short_chosen = 0, delta_negative = 0;
	for (int k = 0; k < n_eval; k++) {
		uint64_t seed = (uint64_t)(90000 + 100 * k);
		pwb_response *a =
		    chat_full(pl_real, org, "pers-a", prompt, 4, seed, mt);
		pwb_response *b =
		    chat_full(pl_real, org, "pers-b", prompt, 4, seed, mt);
		assert_true(a->personal);
		assert_false(b->personal);
		assert_true(b->learns);
		assert_int_equal(a->n_alts, 4);
		assert_int_equal(b->n_alts, 4);
		double corr = score_length_corr(a);
		pwb_alternative own[4];
		pwb_response delta = *a;
		for (size_t i = 0; i < 4; i++) {
			assert_string_equal(a->alts[i].content,
					    b->alts[i].content);
			own[i] = a->alts[i];
			own[i].score -= b->alts[i].score;
		}
		delta.alts = own;
		double dcorr = score_length_corr(&delta);
		/* The chosen one is no longer than the median. */
		size_t chosen_len = strlen(a->alts[a->chosen].content);
		size_t longer = 0;
		for (size_t i = 0; i < 4; i++)
			longer += strlen(a->alts[i].content) > chosen_len;
		print_message("seed %llu: r(score, length) = %.3f, r(own "
			      "part, length) = %.3f; chosen %zu bytes, %zu of "
			      "4 longer\n",
			      (unsigned long long)seed, corr, dcorr, chosen_len,
			      longer);
		corr_sum += corr;
		delta_sum += dcorr;
		short_chosen += longer >= 2;
		delta_negative += dcorr < 0;
		pwb_response_free(a);
		pwb_response_free(b);
	}
	assert_true(corr_sum / n_eval < 0);
	assert_true(delta_sum / n_eval < 0);
	assert_true(delta_negative >= 4);
	assert_true(short_chosen >= 4);
	/* The learnt preference in words. */
	char *words = NULL;
	pwb_diag d;
	pwb_diag_init(&d);
	ok(pwb_pipeline_explain(pl_real, org, "pers-a", &words, &d), &d,
	   "explain");
	assert_non_null(words);
	print_message("explain: %s\n", words);
	assert_non_null(strstr(words, "shorter"));
	free(words);
	pwb_diag_release(&d);
}

/*
 * A reset brings the user back to the population model: the same scores
 * as a user without feedback, and (pipeline.h) `personal` false.
 * (pwb_prefs_reset keeps the user's entry, without weights: personal is
 * decided by the weights.)
 */
static void test_reset_back_to_population(void **state)
{
	(void)state;
	NEED_MODEL();
	const char *org = "acme-tutor", *prompt = "Tell me a story.";
	set_consent(org, "reset-a");
	set_consent(org, "reset-b");
	pwb_response *r = chat_n(pl_real, org, "reset-a", prompt, 4, 40000);
	pwb_feedback_result res = give_choice(org, "reset-a", r->decision_id,
					      r->alts[shortest_allowed(r)].id);
	assert_true(res.pairs_learnt > 0);
	pwb_response_free(r);
	r = chat_n(pl_real, org, "reset-a", prompt, 4, 40100);
	assert_true(r->personal);
	pwb_response_free(r);
	pwb_diag d;
	pwb_diag_init(&d);
	ok(pwb_pipeline_reset(pl_real, org, "reset-a", &d), &d, "reset");
	char *words = NULL;
	ok(pwb_pipeline_explain(pl_real, org, "reset-a", &words, &d), &d,
	   "explain");
	print_message("explain after the reset: %s\n", words);
	free(words);
	pwb_diag_release(&d);
	pwb_response *a = chat_n(pl_real, org, "reset-a", prompt, 4, 40200);
	pwb_response *b = chat_n(pl_real, org, "reset-b", prompt, 4, 40200);
	assert_false(b->personal);
	for (size_t i = 0; i < 4; i++) {
		assert_string_equal(a->alts[i].content, b->alts[i].content);
		assert_true(fabs(a->alts[i].score - b->alts[i].score) < 1e-9);
	}
	/* Freed first: a failure below must not leak. */
	bool personal = a->personal;
	pwb_response_free(a);
	pwb_response_free(b);
	assert_false(personal);
}

/* ---- consent ---- */

static void test_consent_before_learning(void **state)
{
	(void)state;
	NEED_MODEL();
	/* acme-tutor's law (de, from eu) requires consent to learn. */
	const char *org = "acme-tutor", *user = "consent-u";
	const char *prompt = "Tell me a story.";
	uint64_t before = fb_count(org);
	pwb_response *r = chat_n(pl_real, org, user, prompt, 4, 20000);
	assert_false(r->blocked);
	assert_false(r->learns);
	assert_false(r->personal);
	pwb_feedback_result res =
	    give_choice(org, user, r->decision_id, r->alts[0].id);
	assert_true(res.consent_needed);
	assert_int_equal(res.pairs_learnt, 0);
	assert_int_equal(res.model_version, 0);
	/* Nothing is learnt (pwb.h says "stored, not learnt"; `pwb feedback
	 * give --help` says nothing is stored: the count is not asserted). */
	(void)before;
	pwb_store_user u;
	pwb_status st = pwb_store_user_get(store, org, user, &u, NULL);
	if (!st) {
		assert_int_equal(u.model_len, 0);
		pwb_store_user_release(&u);
	}
	pwb_response_free(r);
	/* With consent it learns. */
	set_consent(org, user);
	r = chat_n(pl_real, org, user, prompt, 4, 20100);
	assert_true(r->learns);
	res = give_choice(org, user, r->decision_id, r->alts[1].id);
	assert_false(res.consent_needed);
	assert_true(res.pairs_learnt > 0);
	assert_true(res.model_version > 0);
	assert_true(fb_count(org) > before);
	pwb_response_free(r);
	r = chat_n(pl_real, org, user, prompt, 4, 20200);
	assert_true(r->personal);
	pwb_response_free(r);
}

/* ---- feedback errors ---- */

static void expect_fb_error(const pwb_feedback_give *fb, pwb_status want,
			    const char *word)
{
	const char *org = fb->org;
	uint64_t before = fb_count(org);
	pwb_feedback_result res;
	pwb_diag d;
	pwb_diag_init(&d);
	pwb_status st = pwb_pipeline_feedback(pl_real, fb, &res, &d);
	if (st != want)
		fail_msg("feedback: want %s, got %s (%s)", pwb_status_str(want),
			 pwb_status_str(st), first_msg(&d));
	if (!diag_has(&d, word))
		fail_msg("the message '%s' does not say '%s'", first_msg(&d),
			 word);
	assert_int_equal(res.pairs_learnt, 0);
	pwb_diag_release(&d);
	assert_int_equal(fb_count(org), before);
}

static void test_feedback_errors(void **state)
{
	(void)state;
	NEED_MODEL();
	const char *org = "acme-tutor";
	set_consent(org, "fbe-u");
	set_consent(org, "fbe-other");
	pwb_response *r =
	    chat_n(pl_real, org, "fbe-u", "Tell me a story.", 4, 30000);
	assert_false(r->blocked);
	pwb_feedback_give fb = {.org = org,
				.user = "fbe-other",
				.decision_id = r->decision_id,
				.kind = PWB_FB_CHOOSE,
				.alt = "A"};
	/* Another user's decision. */
	expect_fb_error(&fb, PWB_ENOTFOUND, "not one of the decisions of user 'fbe-other'");
	/* An alternative the decision does not have. */
	fb.user = "fbe-u";
	fb.alt = "Z";
	expect_fb_error(&fb, PWB_EINVAL, "no alternative 'Z'");
	/* A pair of one alternative with itself; a rating off the scale. */
	fb.kind = PWB_FB_PAIR;
	fb.alt = "A";
	fb.other = "A";
	expect_fb_error(&fb, PWB_EINVAL, "two different");
	fb.kind = PWB_FB_RATING;
	fb.rating = 7;
	expect_fb_error(&fb, PWB_EINVAL, "1 to 5");
	/* No such decision, in this org. */
	fb = (pwb_feedback_give){.org = org,
				 .user = "fbe-u",
				 .decision_id = "dec_000000000000000000000000",
				 .kind = PWB_FB_CHOOSE,
				 .alt = "A"};
	expect_fb_error(&fb, PWB_ENOTFOUND, "dec_000000000000000000000000");
	fb.org = "open-studio";
	fb.decision_id = r->decision_id;
	expect_fb_error(&fb, PWB_ENOTFOUND, r->decision_id);
	/* A blocked decision. */
	pwb_response *blocked =
	    chat_n(pl_real, org, "fbe-u",
		   "How do I build a bomb to kill people?", 4, 1);
	assert_true(blocked->blocked);
	fb.org = org;
	fb.decision_id = blocked->decision_id;
	expect_fb_error(&fb, PWB_EINVAL, "blocked");
	pwb_response_free(blocked);
	/* The right feedback still works after all that. */
	pwb_feedback_result res =
	    give_choice(org, "fbe-u", r->decision_id, "B");
	assert_true(res.pairs_learnt > 0);
	pwb_response_free(r);
	/* Feedback needs a store. */
	pwb_pipeline_params pp = pwb_pipeline_default_params();
	pp.policy = pol_real;
	pp.bounds = b_real;
	pp.engine = eng;
	pwb_pipeline *nostore = NULL;
	ok(pwb_pipeline_new(&nostore, &pp, NULL), NULL, "pipeline");
	pwb_diag d;
	pwb_diag_init(&d);
	assert_int_equal(pwb_pipeline_feedback(nostore, &fb, &res, &d),
			 PWB_EINVAL);
	assert_true(diag_has(&d, "store"));
	pwb_diag_release(&d);
	pwb_pipeline_free(nostore);
}

static void test_feedback_on_blocked_alternative(void **state)
{
	(void)state;
	NEED_MODEL();
	pwb_response *r = chat_n(pl_tiny, "t-some", "fbb-u",
				 "Tell me a story.", 4, seed_with_mix());
	size_t blocked = SIZE_MAX, allowed = SIZE_MAX;
	for (size_t i = 0; i < r->n_alts; i++) {
		if (r->alts[i].verdict == PWB_VERDICT_BLOCK)
			blocked = i;
		else
			allowed = i;
	}
	assert_true(blocked < 4 && allowed < 4);
	uint64_t before = fb_count("t-some");
	pwb_feedback_give fb = {.org = "t-some",
				.user = "fbb-u",
				.decision_id = r->decision_id,
				.kind = PWB_FB_CHOOSE,
				.alt = r->alts[blocked].id};
	pwb_feedback_result res;
	pwb_diag d;
	pwb_diag_init(&d);
	assert_int_equal(pwb_pipeline_feedback(pl_tiny, &fb, &res, &d),
			 PWB_EINVAL);
	assert_true(diag_has(&d, "cannot be chosen"));
	assert_int_equal(fb_count("t-some"), before);
	pwb_diag_clear(&d);
	/* Choosing an allowed one teaches it over the other allowed ones
	 * only (the tiny law needs no consent). */
	fb.alt = r->alts[allowed].id;
	ok(pwb_pipeline_feedback(pl_tiny, &fb, &res, &d), &d, "feedback");
	size_t n_allowed = 0;
	for (size_t i = 0; i < r->n_alts; i++)
		n_allowed += r->alts[i].verdict != PWB_VERDICT_BLOCK;
	assert_int_equal(res.pairs_learnt, n_allowed - 1);
	assert_false(res.consent_needed);
	pwb_diag_release(&d);
	pwb_response_free(r);
}

/*
 * Feedback from several threads at once for one user (pipeline.h: "may
 * run concurrently"): every event is learnt, and the model version counts
 * them all.
 * The threads all start before any writes (the first feedback of a user
 * too); within one process they take turns under the pipeline's lock,
 * each reading the model as stored.
 */
#define FB_THREADS 6

typedef struct fb_job {
	const char *user, *decision;
	pwb_status st;
	char msg[256];
	size_t pairs;
} fb_job;

static void *fb_thread(void *arg)
{
	fb_job *j = arg;
	pwb_feedback_give fb = {.org = "t-open",
				.user = j->user,
				.decision_id = j->decision,
				.kind = PWB_FB_CHOOSE,
				.alt = "A"};
	pwb_feedback_result res;
	pwb_diag d;
	pwb_diag_init(&d);
	j->st = pwb_pipeline_feedback(pl_tiny, &fb, &res, &d);
	snprintf(j->msg, sizeof(j->msg), "%s", first_msg(&d));
	j->pairs = res.pairs_learnt;
	pwb_diag_release(&d);
	return NULL;
}

static void concurrent_feedback(const char *user, bool first_feedback)
{
	char *decisions[FB_THREADS + 1];
	for (size_t k = 0; k <= FB_THREADS; k++) {
		pwb_response *r = chat_full(pl_tiny, "t-open", user, "Hi.", 2,
					    (uint64_t)(50000 + 10 * k), 8);
		assert_false(r->blocked);
		decisions[k] = strdup(r->decision_id);
		pwb_response_free(r);
	}
	int64_t v0 = 0;
	if (!first_feedback) {
		fb_job j = {.user = user, .decision = decisions[FB_THREADS]};
		fb_thread(&j);
		if (j.st)
			fail_msg("feedback: %s", j.msg);
		pwb_store_user u;
		ok(pwb_store_user_get(store, "t-open", user, &u, NULL), NULL,
		   "user");
		v0 = u.model_version;
		pwb_store_user_release(&u);
		assert_true(v0 > 0);
	}
	/* The threads meet: this thread holds the store's write lock (a
	 * transaction with a write in it) while they start, so that each
	 * reads the user and then waits to write, as under load. Whatever
	 * the timing, a correct pipeline learns every event. */
	pwb_diag d;
	pwb_diag_init(&d);
	ok(pwb_store_begin(store, &d), &d, "begin");
	ok(pwb_store_user_set_settings(store, "t-open", "race-lock", "{}",
				       (int64_t)time(NULL), &d),
	   &d, "a write");
	fb_job jobs[FB_THREADS];
	pthread_t th[FB_THREADS];
	for (size_t k = 0; k < FB_THREADS; k++) {
		jobs[k] = (fb_job){.user = user, .decision = decisions[k]};
		assert_int_equal(
		    pthread_create(&th[k], NULL, fb_thread, &jobs[k]), 0);
	}
	struct timespec pause = {0, 300 * 1000 * 1000};
	nanosleep(&pause, NULL);
	ok(pwb_store_commit(store, &d), &d, "commit");
	pwb_diag_release(&d);
	for (size_t k = 0; k < FB_THREADS; k++)
		assert_int_equal(pthread_join(th[k], NULL), 0);
	size_t failed = 0;
	for (size_t k = 0; k < FB_THREADS; k++)
		if (jobs[k].st) {
			failed++;
			print_message("%s: thread %zu: %s: %s\n", user, k,
				      pwb_status_str(jobs[k].st), jobs[k].msg);
		}
	pwb_store_user u;
	ok(pwb_store_user_get(store, "t-open", user, &u, NULL), NULL, "user");
	int64_t v1 = u.model_version;
	pwb_store_user_release(&u);
	for (size_t k = 0; k <= FB_THREADS; k++)
		free(decisions[k]);
	assert_int_equal(failed, 0);
	assert_int_equal(v1, v0 + FB_THREADS);
}

/* Feedback of different users at once: each learnt, and their store
 * writes share commits (the user's model is not held under the
 * pipeline's lock while it is written). */
static void concurrent_users(void)
{
	char *decisions[FB_THREADS];
	char users[FB_THREADS][16];
	for (size_t k = 0; k < FB_THREADS; k++) {
		snprintf(users[k], sizeof(users[k]), "race-u%zu", k);
		pwb_response *r = chat_full(pl_tiny, "t-open", users[k], "Hi.",
					    2, (uint64_t)(60000 + 10 * k), 8);
		assert_false(r->blocked);
		decisions[k] = strdup(r->decision_id);
		pwb_response_free(r);
	}
	/* As above: the threads start while this one holds the write lock,
	 * so that their writes queue together. */
	pwb_diag d;
	pwb_diag_init(&d);
	ok(pwb_store_begin(store, &d), &d, "begin");
	ok(pwb_store_user_set_settings(store, "t-open", "race-lock", "{}",
				       (int64_t)time(NULL), &d),
	   &d, "a write");
	pwb__group_stats before, after;
	pwb__store_group_stats(store, &before);
	fb_job jobs[FB_THREADS];
	pthread_t th[FB_THREADS];
	for (size_t k = 0; k < FB_THREADS; k++) {
		jobs[k] = (fb_job){.user = users[k], .decision = decisions[k]};
		assert_int_equal(
		    pthread_create(&th[k], NULL, fb_thread, &jobs[k]), 0);
	}
	struct timespec pause = {0, 300 * 1000 * 1000};
	nanosleep(&pause, NULL);
	ok(pwb_store_commit(store, &d), &d, "commit");
	pwb_diag_release(&d);
	for (size_t k = 0; k < FB_THREADS; k++)
		assert_int_equal(pthread_join(th[k], NULL), 0);
	pwb__store_group_stats(store, &after);
	for (size_t k = 0; k < FB_THREADS; k++) {
		if (jobs[k].st)
			fail_msg("%s: %s", users[k], jobs[k].msg);
		assert_true(jobs[k].pairs > 0);
		pwb_store_user u;
		ok(pwb_store_user_get(store, "t-open", users[k], &u, NULL),
		   NULL, "user");
		assert_int_equal(u.model_version, 1);
		pwb_store_user_release(&u);
		free(decisions[k]);
	}
	assert_int_equal(after.events - before.events, FB_THREADS);
	assert_true(after.commits - before.commits < FB_THREADS);
}

static void test_feedback_concurrent(void **state)
{
	(void)state;
	NEED_MODEL();
	concurrent_feedback("race-first", true);
	concurrent_feedback("race-later", false);
	concurrent_users();
}

/* ---- streaming ---- */

typedef struct stream_rec {
	char text[8192]; /* everything passed */
	size_t len;
	size_t pieces;
	size_t first_refusal; /* offset of the first refusal piece, or
			       * SIZE_MAX */
	bool answer_after_refusal;
	bool last_was_refusal;
} stream_rec;

static int on_text(void *user, const char *text, size_t len, bool refusal)
{
	stream_rec *s = user;
	assert_true(s->len + len < sizeof(s->text));
	if (refusal && s->first_refusal == SIZE_MAX)
		s->first_refusal = s->len;
	if (!refusal && s->first_refusal != SIZE_MAX)
		s->answer_after_refusal = true;
	memcpy(s->text + s->len, text, len);
	s->len += len;
	s->text[s->len] = '\0';
	s->pieces++;
	s->last_was_refusal = refusal;
	return 0;
}

static pwb_response *chat_stream(pwb_pipeline *pl, const char *org,
				 const char *user, uint64_t seed, stream_rec *s)
{
	memset(s, 0, sizeof(*s));
	s->first_refusal = SIZE_MAX;
	pwb_chat_msg m = {"user", "Tell me a story."};
	pwb_request req = {.org = org,
			   .user = user,
			   .msgs = &m,
			   .n_msgs = 1,
			   .n = 4, /* a stream serves one candidate anyway */
			   .seed = seed,
			   .on_text = on_text,
			   .on_text_user = s};
	pwb_response *r = NULL;
	pwb_diag d;
	pwb_diag_init(&d);
	pwb_status st = pwb_pipeline_chat(pl, &req, &r, &d);
	if (st)
		fail_msg("stream: %s: %s", pwb_status_str(st), first_msg(&d));
	pwb_diag_release(&d);
	return r;
}

static void test_stream_is_the_content(void **state)
{
	(void)state;
	NEED_MODEL();
	stream_rec *s = malloc(sizeof(*s));
	assert_non_null(s);
	pwb_response *r = chat_stream(pl_tiny, "t-open", "stream-u", 1000, s);
	assert_false(r->blocked);
	assert_int_equal(r->n_alts, 1);
	assert_int_equal(s->first_refusal, SIZE_MAX);
	assert_true(s->pieces >= 2); /* sentence by sentence */
	assert_int_equal(s->len, strlen(r->content));
	assert_string_equal(s->text, r->content);
	/* The same answer as without streaming. */
	pwb_response *q =
	    chat_n(pl_tiny, "t-open", "stream-u", "Tell me a story.", 1, 1000);
	assert_string_equal(q->content, r->content);
	pwb_response_free(q);
	pwb_response_free(r);
	free(s);
}

/* Where the sentence holding the blocked word starts in text (after the
 * last sentence end before the word), or 0 when the word is not there or
 * in the first sentence. */
static size_t late_sentence(const char *full)
{
	size_t at, sentence = 0;
	if (!has_word(full, BLOCK_WORD, &at))
		return 0;
	for (size_t i = 0; i < at; i++)
		if (full[i] == '\n' ||
		    ((full[i] == '.' || full[i] == '!' || full[i] == '?') &&
		     isspace((unsigned char)full[i + 1])))
			sentence = i + 1;
	return sentence;
}

static void test_stream_block_late(void **state)
{
	(void)state;
	NEED_MODEL();
	stream_rec *s = malloc(sizeof(*s));
	assert_non_null(s);
	/* The first seed from 3000 whose unblocked answer says the word
	 * after its first sentence. */
	char *full = NULL;
	size_t sentence = 0;
	uint64_t seed = 3000;
	for (; seed < 3300 && !sentence; seed++) {
		pwb_response *open =
		    chat_stream(pl_tiny, "t-open", "late-u", seed, s);
		if ((sentence = late_sentence(open->content)))
			full = strdup(open->content);
		pwb_response_free(open);
	}
	seed--;
	if (!sentence)
		fail_msg("no seed in 3000..3299 says '%s' after the first "
			 "sentence",
			 BLOCK_WORD);
	/* The same answer where the word is forbidden. */
	pwb_response *r = chat_stream(pl_tiny, "t-some", "late-u", seed, s);
	assert_refusal(r, PWB_TIER_ORG, "org:t-some", "harassment", "response");
	assert_true(s->first_refusal != SIZE_MAX);
	assert_false(s->answer_after_refusal);
	assert_true(s->last_was_refusal);
	size_t released = s->first_refusal;
	/* Text before the word's sentence was released; no byte of that
	 * sentence was. */
	assert_true(released > 0);
	assert_true(released <= sentence);
	assert_memory_equal(s->text, full, released);
	char *head = strndup(s->text, released);
	assert_false(has_word(head, BLOCK_WORD, NULL));
	free(head);
	/* The stream ends with the refusal; it is the content. */
	assert_string_equal(s->text, r->content);
	size_t rl = strlen(r->refusal);
	assert_true(s->len >= rl);
	assert_string_equal(s->text + s->len - rl, r->refusal);
	free(full);
	pwb_response_free(r);
	free(s);
}

/*
 * A prompt refused while streaming: pipeline.h promises that the
 * concatenation of every on_text call is the response's content, and a
 * block reaches the stream as the refusal with `refusal` true.
 */
static void test_stream_prompt_refused(void **state)
{
	(void)state;
	NEED_MODEL();
	stream_rec *s = malloc(sizeof(*s));
	assert_non_null(s);
	memset(s, 0, sizeof(*s));
	s->first_refusal = SIZE_MAX;
	pwb_chat_msg m = {"user", "How do I build a bomb to kill people?"};
	pwb_request req = {.org = "acme-tutor",
			   .user = "stream-law-u",
			   .msgs = &m,
			   .n_msgs = 1,
			   .seed = 1,
			   .on_text = on_text,
			   .on_text_user = s};
	pwb_response *r = NULL;
	pwb_diag d;
	pwb_diag_init(&d);
	ok(pwb_pipeline_chat(pl_real, &req, &r, &d), &d, "stream");
	pwb_diag_release(&d);
	assert_refusal(r, PWB_TIER_LAW, "law:", NULL, "prompt");
	print_message("%zu bytes streamed, content has %zu\n", s->len,
		      strlen(r->content));
	/* Freed first: a failure below must not leak. */
	bool same = !strcmp(s->text, r->content);
	bool refusal_first = s->first_refusal == 0, ends = s->last_was_refusal;
	pwb_response_free(r);
	free(s);
	assert_true(same);
	assert_true(refusal_first);
	assert_true(ends);
}

/* ---- the system prompt ---- */

static void test_system_prompt_per_user(void **state)
{
	(void)state;
	NEED_MODEL();
	set_settings("t-open", "sys-lo",
		     "{\"dimensions\": {\"verbosity\": 0.1}}");
	set_settings("t-open", "sys-hi",
		     "{\"dimensions\": {\"verbosity\": 0.9}}");
	pwb_response *lo = chat_n(pl_tiny, "t-open", "sys-lo", "Hi.", 1, 5);
	pwb_response *hi = chat_n(pl_tiny, "t-open", "sys-hi", "Hi.", 1, 5);
	assert_non_null(lo->system_prompt);
	assert_non_null(hi->system_prompt);
	assert_string_not_equal(lo->system_prompt, hi->system_prompt);
	const char *few = "Answer in as few words as possible.";
	const char *lng =
	    "Give long, thorough answers that cover every aspect.";
	assert_non_null(strstr(lo->system_prompt, few));
	assert_null(strstr(lo->system_prompt, lng));
	assert_non_null(strstr(hi->system_prompt, lng));
	assert_null(strstr(hi->system_prompt, few));
	/* The org's own text comes last. */
	const char *org = "Tell stories about animals.";
	size_t ol = strlen(org);
	for (int k = 0; k < 2; k++) {
		const char *sp = k ? hi->system_prompt : lo->system_prompt;
		size_t sl = strlen(sp);
		assert_true(sl > ol);
		assert_string_equal(sp + sl - ol, org);
		/* It is what pwb_pipeline_system_prompt() gives. */
		char *again = NULL;
		assert_int_equal(pwb_pipeline_system_prompt(
				     k ? hi->effective : lo->effective, &again),
				 PWB_OK);
		assert_string_equal(again, sp);
		free(again);
	}
	pwb_response_free(lo);
	pwb_response_free(hi);
}

/* ---- the JSON ---- */

static void test_response_json(void **state)
{
	(void)state;
	NEED_MODEL();
	pwb_response *r =
	    chat_n(pl_tiny, "t-some", "json-u", "Tell me a story.", 4, 4000);
	assert_false(r->blocked);
	char *js = NULL;
	assert_int_equal(pwb_response_to_json(r, &js), PWB_OK);
	json_error_t err;
	json_t *j = json_loads(js, 0, &err);
	if (!j)
		fail_msg("not JSON: %s: %s", err.text, js);
	assert_string_equal(
	    json_string_value(json_object_get(j, "decision_id")),
	    r->decision_id);
	assert_string_equal(json_string_value(json_object_get(j, "verdict")),
			    pwb_verdict_str(r->verdict));
	assert_string_equal(json_string_value(json_object_get(j, "content")),
			    r->content);
	assert_string_equal(json_string_value(json_object_get(j, "chosen")),
			    r->alts[r->chosen].id);
	assert_true(json_is_null(json_object_get(j, "blocked_by")));
	assert_true(json_is_null(json_object_get(j, "refusal")));
	assert_string_equal(
	    json_string_value(json_object_get(j, "system_prompt")),
	    r->system_prompt);
	assert_string_equal(
	    json_string_value(json_object_get(j, "policy_hash")),
	    pwb_effective_hash(r->effective));
	json_t *alts = json_object_get(j, "alternatives");
	assert_int_equal(json_array_size(alts), r->n_alts);
	for (size_t i = 0; i < r->n_alts; i++) {
		json_t *a = json_array_get(alts, i);
		assert_string_equal(json_string_value(json_object_get(a, "id")),
				    r->alts[i].id);
		assert_string_equal(
		    json_string_value(json_object_get(a, "verdict")),
		    pwb_verdict_str(r->alts[i].verdict));
		assert_true(json_is_number(json_object_get(a, "score")));
		assert_true(
		    fabs(json_number_value(json_object_get(a, "score")) -
			 r->alts[i].score) < 1e-9);
		json_t *c = json_object_get(a, "content");
		if (r->alts[i].verdict == PWB_VERDICT_BLOCK)
			assert_true(json_is_null(c));
		else
			assert_string_equal(json_string_value(c),
					    r->alts[i].content);
	}
	json_decref(j);
	free(js);
	pwb_response_free(r);
	/* A refusal: blocked_by names the tier, refusal is the text. */
	r = chat_n(pl_real, "acme-tutor", "json-u",
		   "How do I build a bomb to kill people?", 4, 1);
	assert_int_equal(pwb_response_to_json(r, &js), PWB_OK);
	j = json_loads(js, 0, &err);
	assert_non_null(j);
	json_t *bb = json_object_get(j, "blocked_by");
	assert_true(json_is_object(bb));
	assert_string_equal(json_string_value(json_object_get(bb, "tier")),
			    "law");
	assert_string_equal(json_string_value(json_object_get(bb, "on")),
			    "prompt");
	assert_string_equal(json_string_value(json_object_get(bb, "source")),
			    r->blocked_by.source);
	assert_string_equal(json_string_value(json_object_get(j, "refusal")),
			    r->refusal);
	assert_string_equal(json_string_value(json_object_get(j, "verdict")),
			    "block");
	assert_true(json_is_null(json_object_get(j, "chosen")));
	assert_int_equal(json_array_size(json_object_get(j, "alternatives")),
			 0);
	json_decref(j);
	free(js);
	pwb_response_free(r);
}

/* ---- bad requests ---- */

static void test_bad_requests(void **state)
{
	(void)state;
	NEED_MODEL();
	pwb_chat_msg m = {"user", "Tell me a story."};
	pwb_chat_msg sys = {"system", "Be kind."};
	pwb_response *r = (pwb_response *)&m; /* must become NULL */
	pwb_diag d;
	pwb_diag_init(&d);
	pwb_request req = {
	    .org = "acme-tutor", .msgs = &m, .n_msgs = 1, .seed = 1};
	assert_int_equal(pwb_pipeline_chat(pl_real, &req, &r, &d), PWB_EINVAL);
	assert_null(r);
	assert_true(diag_has(&d, "user"));
	pwb_diag_clear(&d);
	req.user = "bad-u";
	req.msgs = &sys;
	assert_int_equal(pwb_pipeline_chat(pl_real, &req, &r, &d), PWB_EINVAL);
	assert_true(diag_has(&d, "user message"));
	pwb_diag_clear(&d);
	req.msgs = &m;
	req.n = 17;
	assert_int_equal(pwb_pipeline_chat(pl_real, &req, &r, &d), PWB_EINVAL);
	pwb_diag_clear(&d);
	req.n = 1;
	req.org = "no-such-org";
	assert_int_equal(pwb_pipeline_chat(pl_real, &req, &r, &d),
			 PWB_ENOTFOUND);
	assert_null(r);
	pwb_diag_clear(&d);
	/* max_tokens past the context (2048 tokens for this model):
	 * refused, never truncated. */
	req.org = "acme-tutor";
	req.n = 4;
	req.max_tokens = 4000;
	assert_int_equal(pwb_pipeline_chat(pl_real, &req, &r, &d),
			 PWB_ETOOLARGE);
	assert_null(r);
	assert_true(diag_has(&d, "context"));
	pwb_diag_release(&d);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_prompt_refused_by_law),
	    cmocka_unit_test(test_prompt_refused_by_org),
	    cmocka_unit_test(test_prompt_refused_by_user),
	    cmocka_unit_test(test_every_candidate_blocked),
	    cmocka_unit_test(test_some_candidates_blocked),
	    cmocka_unit_test(test_personalisation_learns_shorter),
	    cmocka_unit_test(test_reset_back_to_population),
	    cmocka_unit_test(test_consent_before_learning),
	    cmocka_unit_test(test_feedback_errors),
	    cmocka_unit_test(test_feedback_on_blocked_alternative),
	    cmocka_unit_test(test_feedback_concurrent),
	    cmocka_unit_test(test_stream_is_the_content),
	    cmocka_unit_test(test_stream_block_late),
	    cmocka_unit_test(test_stream_prompt_refused),
	    cmocka_unit_test(test_system_prompt_per_user),
	    cmocka_unit_test(test_response_json),
	    cmocka_unit_test(test_bad_requests),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
