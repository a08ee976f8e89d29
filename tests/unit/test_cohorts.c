/*
 * test_cohorts.c - cohort priors in the request pipeline (docs/prefs.md,
 * "Cohort priors"; docs/pipeline.md): the org groups users by one request
 * attribute (learning.cohort_attribute), a user who consented to it is
 * scored from their cohort's model, and their feedback is stored with the
 * attribute and teaches the cohort.
 *
 * The pipeline runs over the upstream engine against
 * tests/engine/mock_openai.py (rig.h), whose `replies:` flag makes
 * candidate A the short text SHORT and candidate B the long text LONG, so
 * that the test knows what each alternative says; the store is SQLite.
 *
 * The policy folder: the shipped registry (which declares user.age_band),
 * a law `tc` that requires consent to learn and forbids learning from
 * `health` unless the user consents, a law `tx` that forbids `religion`
 * outright, and orgs grouping by age_band (c-age), by religion (c-faith,
 * under tc alone: valid until a request adds tx) and by health
 * (c-health: only a consent naming health counts).
 *
 * What each test guards: a new member is ranked by their cohort before
 * any feedback of their own (LONG first, where the population puts SHORT
 * first); without consent to be grouped the same request is ranked by
 * the population, score for score; an attribute a law forbids is refused
 * by the check (file:line:col) and, brought by a request's jurisdiction,
 * never used nor stored; a member's feedback teaches the cohort and is
 * stored with the attribute; erasing a member leaves no row with it; a
 * special attribute needs consent that names it; bad values are refused
 * with a message, and ignored without consent.
 */
/* cmocka needs these first, in this order. */
/* clang-format off */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
/* clang-format on */

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "pwb/pwb.h"
#include "rig.h"
#include "util/util.h"

#define SHORT "The cat sat."
#define LONG                                                                   \
	"Once upon a time a kind old dog walked along the quiet river "        \
	"every morning, and every child in the village waved to him!"

/* ---- the policy folder (after rig.h's registry) ---- */

static const rig_file files[] = {
    {"p/law/tc.yaml",
     "tier: law\nid: tc\nname: Test law\n"
     "learning:\n"
     "  forbid_attributes: [health]\n"
     "  requires_consent: true\n"
     "  basis: \"test: health only with consent\"\n",
     "w"},
    {"p/law/tx.yaml",
     "tier: law\nid: tx\nname: Test law that forbids religion\n"
     "learning:\n"
     "  forbid_attributes: [religion]\n"
     "  basis: \"test: never religion\"\n",
     "w"},
    {"p/org/c-age.yaml",
     "tier: org\nid: c-age\njurisdictions: [tc]\ncandidates: 2\n"
     "learning:\n  cohort_attribute: age_band\n",
     "w"},
    {"p/org/c-faith.yaml",
     "tier: org\nid: c-faith\njurisdictions: [tc]\ncandidates: 2\n"
     "learning:\n  cohort_attribute: religion\n",
     "w"},
    {"p/org/c-health.yaml",
     "tier: org\nid: c-health\njurisdictions: [tc]\ncandidates: 2\n"
     "learning:\n  cohort_attribute: health\n",
     "w"},
    {"p/lexicons/en.tsv", "profanity\tword\t0.9\tzebra\tunused\n", "w"},
};

static const rig_params params = {
    .dir_template = "/tmp/pwb-test-cohorts-XXXXXX",
    .tag_prefix = "c",
    .files = files,
    .n_files = PWB_ARRAY_LEN(files),
};

static int setup(void **state)
{
	(void)state;
	return rig_setup(&params);
}

/* ---- helpers ---- */

/* A pipeline whose candidates are A = SHORT and B = LONG. */
static rig *two_texts(void)
{
	const char *texts[] = {SHORT, LONG};
	char flags[1024];
	rig_flag_texts(flags, sizeof(flags), "replies", texts, 2);
	return rig_new(flags, 0);
}

static void set_consent(const char *org, const char *user, const char *json)
{
	pwb_diag d;
	pwb_diag_init(&d);
	rig_ok(pwb_store_user_set_consent(rig_store, org, user, json,
					  (int64_t)time(NULL), &d),
	       &d, "consent");
	pwb_diag_release(&d);
}

/* One request "Tell me a story" with the attribute key=value (key NULL:
 * none), jurisdictions jur (NULL: none); *st gets the status, and d the
 * messages. */
static pwb_response *ask_st(rig *g, const char *org, const char *user,
			    const char *key, const char *value, const char *jur,
			    pwb_status *st, pwb_diag *d)
{
	pwb_attrs *a = NULL;
	assert_int_equal(pwb_attrs_new(&a), PWB_OK);
	if (key)
		assert_int_equal(pwb_attrs_set_string(a, key, value), PWB_OK);
	pwb_chat_msg m = {"user", "Tell me a story"};
	const char *jurs[1] = {jur};
	pwb_request req = {.org = org,
			   .user = user,
			   .jurisdictions = jur ? jurs : NULL,
			   .n_jurisdictions = jur ? 1 : 0,
			   .attrs = a,
			   .msgs = &m,
			   .n_msgs = 1,
			   .n = 2,
			   .seed = 7};
	pwb_response *r = NULL;
	*st = pwb_pipeline_chat(g->pl, &req, &r, d);
	pwb_attrs_free(a);
	return r;
}

static pwb_response *ask(rig *g, const char *org, const char *user,
			 const char *key, const char *value, const char *jur)
{
	pwb_diag d;
	pwb_diag_init(&d);
	pwb_status st;
	pwb_response *r = ask_st(g, org, user, key, value, jur, &st, &d);
	rig_ok(st, &d, "chat");
	pwb_diag_release(&d);
	assert_non_null(r);
	assert_int_equal(r->n_alts, 2);
	assert_string_equal(r->alts[0].content, SHORT);
	assert_string_equal(r->alts[1].content, LONG);
	return r;
}

static pwb_feedback_result choose(rig *g, const char *org, const char *user,
				  const pwb_response *r, const char *alt)
{
	pwb_feedback_give fb = {.org = org,
				.user = user,
				.decision_id = r->decision_id,
				.kind = PWB_FB_CHOOSE,
				.alt = alt};
	return rig_feedback(g, &fb);
}

/* n members of org with consent to learning and to being grouped by
 * age_band, each asking once with age_band=band and choosing alt. */
static void members_choose(rig *g, const char *prefix, size_t n,
			   const char *band, const char *alt)
{
	for (size_t i = 0; i < n; i++) {
		char user[64];
		snprintf(user, sizeof(user), "%s%zu", prefix, i);
		set_consent("c-age", user,
			    "{\"learning\": true, \"cohort\": \"age_band\"}");
		pwb_response *r =
		    ask(g, "c-age", user, "user.age_band", band, NULL);
		pwb_feedback_result res = choose(g, "c-age", user, r, alt);
		assert_int_equal(res.pairs_learnt, 1);
		assert_true(res.cohort_learnt);
		pwb_response_free(r);
	}
}

/*
 * The population learns from both cohorts: 12 users aged 65+ choose
 * SHORT, 6 aged 18-24 choose LONG, so that the population ranks SHORT
 * first and the young cohort LONG.
 */
static rig *two_cohorts(const char *tag)
{
	rig *g = two_texts();
	char p[32];
	snprintf(p, sizeof(p), "%s-old", tag);
	members_choose(g, p, 12, "65+", "A");
	snprintf(p, sizeof(p), "%s-young", tag);
	members_choose(g, p, 6, "18-24", "B");
	return g;
}

/* The feedback and decisions stored about a user, as exported. */
static char *exported(const char *org, const char *user)
{
	pwb_diag d;
	pwb_diag_init(&d);
	char *json = NULL;
	rig_ok(pwb_store_user_export(rig_store, org, user, &json, &d), &d,
	       "export");
	pwb_diag_release(&d);
	return json;
}

/* ---- the cohort prior ranks a new member ---- */

static void test_new_member_starts_from_cohort(void **state)
{
	(void)state;
	rig *g = two_cohorts("prior");
	/* The population, for a user nobody groups: SHORT first. */
	pwb_response *pop = ask(g, "c-age", "prior-stranger", NULL, NULL, NULL);
	assert_int_equal(pop->chosen, 0);
	assert_false(pop->personal);
	assert_null(pop->cohort);
	/* A new member, who has given no feedback (nor consent to
	 * learning): LONG first, from the cohort's model, and the response
	 * and its JSON say so. */
	set_consent("c-age", "prior-new", "{\"cohort\": true}");
	pwb_response *r =
	    ask(g, "c-age", "prior-new", "user.age_band", "18-24", NULL);
	assert_int_equal(r->chosen, 1);
	assert_false(r->personal);
	assert_false(r->learns);
	assert_non_null(r->cohort);
	assert_string_equal(r->cohort, "age_band=18-24");
	assert_true(r->cohort_prior);
	char *json = NULL;
	assert_int_equal(pwb_response_to_json(r, &json), PWB_OK);
	json_t *j = json_loads(json, 0, NULL);
	json_t *c = json_object_get(j, "cohort");
	assert_string_equal(json_string_value(json_object_get(c, "attribute")),
			    "age_band");
	assert_string_equal(json_string_value(json_object_get(c, "value")),
			    "18-24");
	assert_true(json_is_true(json_object_get(c, "prior")));
	json_decref(j);
	free(json);
	/* A member of the other cohort keeps SHORT first. */
	set_consent("c-age", "prior-old-new", "{\"cohort\": true}");
	pwb_response *o =
	    ask(g, "c-age", "prior-old-new", "user.age_band", "65+", NULL);
	assert_int_equal(o->chosen, 0);
	assert_string_equal(o->cohort, "age_band=65+");
	pwb_response_free(o);
	pwb_response_free(r);
	pwb_response_free(pop);
	rig_free(g);
}

/* ---- without consent to be grouped: the population, exactly ---- */

static void test_no_cohort_consent_is_population(void **state)
{
	(void)state;
	rig *g = two_cohorts("nocon");
	pwb_response *pop = ask(g, "c-age", "nocon-stranger", NULL, NULL, NULL);
	/* The same request, attribute and all, from users who consented
	 * to learning only, to nothing, or withdrew consent to grouping. */
	const char *consents[] = {"{\"learning\": true}", NULL,
				  "{\"learning\": true, \"cohort\": false}",
				  "{\"cohort\": \"language\"}"};
	for (size_t i = 0; i < PWB_ARRAY_LEN(consents); i++) {
		char user[32];
		snprintf(user, sizeof(user), "nocon-%zu", i);
		if (consents[i])
			set_consent("c-age", user, consents[i]);
		pwb_response *r =
		    ask(g, "c-age", user, "user.age_band", "18-24", NULL);
		assert_null(r->cohort);
		assert_false(r->cohort_prior);
		assert_int_equal(r->chosen, pop->chosen);
		assert_int_equal(r->chosen, 0);
		for (size_t k = 0; k < 2; k++)
			assert_true(r->alts[k].score == pop->alts[k].score);
		pwb_response_free(r);
	}
	/* Consent without the attribute in the request: no cohort either. */
	set_consent("c-age", "nocon-attrless", "{\"cohort\": true}");
	pwb_response *r = ask(g, "c-age", "nocon-attrless", NULL, NULL, NULL);
	assert_null(r->cohort);
	for (size_t k = 0; k < 2; k++)
		assert_true(r->alts[k].score == pop->alts[k].score);
	pwb_response_free(r);
	pwb_response_free(pop);
	rig_free(g);
}

/* ---- a forbidden attribute ---- */

static void write_at(const char *rel, const char *text)
{
	char path[1200];
	snprintf(path, sizeof(path), "%s/%s", rig_dir, rel);
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	assert_int_equal(fclose(f), 0);
}

static void test_forbidden_attribute_refused_by_check(void **state)
{
	(void)state;
	const char *dirs[] = {"bad", "bad/law", "bad/org"};
	for (size_t i = 0; i < PWB_ARRAY_LEN(dirs); i++) {
		char p[1200];
		snprintf(p, sizeof(p), "%s/%s", rig_dir, dirs[i]);
		assert_int_equal(mkdir(p, 0755), 0);
	}
	char reg[1200], to[1200];
	snprintf(reg, sizeof(reg), "%s/p/categories.yaml", rig_dir);
	snprintf(to, sizeof(to), "%s/bad/categories.yaml", rig_dir);
	assert_int_equal(link(reg, to), 0);
	write_at("bad/law/tx.yaml", "tier: law\nid: tx\n"
				    "learning:\n"
				    "  forbid_attributes: [religion]\n"
				    "  basis: \"test: never religion\"\n");
	write_at("bad/org/o.yaml", "tier: org\nid: o\njurisdictions: [tx]\n"
				   "learning:\n"
				   "  cohort_attribute: religion\n");
	char dir[1200];
	snprintf(dir, sizeof(dir), "%s/bad", rig_dir);
	pwb_policy *p = NULL;
	pwb_diag d;
	pwb_diag_init(&d);
	assert_int_equal(pwb_policy_load(&p, dir, NULL, &d), PWB_EPOLICY);
	bool found = false;
	for (size_t i = 0; i < d.n; i++) {
		const pwb_diag_entry *e = &d.entries[i];
		if (!strstr(e->message, "groups users by 'religion'"))
			continue;
		found = true;
		rig_assert_has(e->file, "bad/org/o.yaml");
		assert_int_equal(e->line, 5);
		assert_int_equal(e->col, 21);
		rig_assert_has(e->message, "law:tx");
		rig_assert_has(e->message, "test: never religion");
	}
	if (!found)
		fail_msg("no error names the cohort attribute: %s",
			 rig_first_msg(&d));
	/* Whatever a caller does with the set despite the error, a resolve
	 * of the org never groups by religion. */
	pwb_diag_clear(&d);
	pwb_resolve_params rp = {.org = "o"};
	pwb_effective *e = NULL;
	if (pwb_policy_resolve(&e, p, &rp, &d) == PWB_OK) {
		const pwb_eff_learning *l = pwb_effective_learning(e);
		assert_null(l->cohort_attribute);
		assert_string_equal(l->cohort_refused, "religion");
	}
	pwb_effective_free(e);
	pwb_policy_free(p);
	pwb_diag_release(&d);
}

/* An org that groups by religion under a law that allows it passes the
 * check; a request that adds the law tx (which forbids it) is answered
 * without a cohort, and nothing about religion is stored. */
static void test_forbidden_attribute_never_used(void **state)
{
	(void)state;
	rig *g = two_texts();
	/* The same request without tx: the cohort is used. */
	set_consent("c-faith", "faith-ok",
		    "{\"learning\": true, \"cohort\": \"religion\"}");
	pwb_response *ok =
	    ask(g, "c-faith", "faith-ok", "user.religion", "zeal", NULL);
	assert_non_null(ok->cohort);
	assert_string_equal(ok->cohort, "religion=zeal");
	pwb_response_free(ok);
	for (int i = 0; i < 2; i++) {
		char user[32];
		snprintf(user, sizeof(user), "faith-%d", i);
		set_consent("c-faith", user,
			    "{\"learning\": true, \"cohort\": \"religion\"}");
		pwb_response *r =
		    ask(g, "c-faith", user, "user.religion", "zeal", "tx");
		assert_null(r->cohort);
		assert_false(r->cohort_prior);
		const pwb_eff_learning *l =
		    pwb_effective_learning(r->effective);
		assert_null(l->cohort_attribute);
		assert_string_equal(l->cohort_refused, "religion");
		assert_string_equal(l->cohort_limited_by.source, "law:tx");
		pwb_feedback_result res = choose(g, "c-faith", user, r, "B");
		assert_int_equal(res.pairs_learnt, 1);
		assert_false(res.cohort_learnt);
		pwb_response_free(r);
	}
	/* No stored row of theirs names religion or its value: not the
	 * feedback's rater, not the decision. */
	for (int i = 0; i < 2; i++) {
		char user[32];
		snprintf(user, sizeof(user), "faith-%d", i);
		char *json = exported("c-faith", user);
		rig_assert_lacks(json, "zeal");
		json_t *j = json_loads(json, 0, NULL);
		json_t *fbs = json_object_get(j, "feedback");
		assert_int_equal(json_array_size(fbs), 1);
		char *rows = json_dumps(fbs, 0);
		rig_assert_lacks(rows, "religion");
		free(rows);
		rows = json_dumps(json_object_get(j, "decisions"), 0);
		rig_assert_has(rows, "dec_");
		rig_assert_lacks(rows, "religion");
		free(rows);
		json_decref(j);
		free(json);
	}
	rig_free(g);
}

/* ---- feedback trains the cohort and is stored with the attribute ---- */

static void test_member_feedback_trains_cohort(void **state)
{
	(void)state;
	rig *g = two_texts();
	set_consent("c-age", "train-new", "{\"cohort\": true}");
	pwb_response *before =
	    ask(g, "c-age", "train-new", "user.age_band", "30-39", NULL);
	assert_string_equal(before->cohort, "age_band=30-39");
	assert_false(before->cohort_prior); /* the cohort knows nothing */
	/* One member chooses LONG, with consent to learning and grouping. */
	set_consent("c-age", "train-m",
		    "{\"learning\": true, \"cohort\": true}");
	pwb_response *r =
	    ask(g, "c-age", "train-m", "user.age_band", "30-39", NULL);
	pwb_feedback_result res = choose(g, "c-age", "train-m", r, "B");
	assert_int_equal(res.pairs_learnt, 1);
	assert_true(res.cohort_learnt);
	/* The stored row carries the rater's consented attribute. */
	char *json = exported("c-age", "train-m");
	json_t *j = json_loads(json, 0, NULL);
	json_t *fbs = json_object_get(j, "feedback");
	assert_int_equal(json_array_size(fbs), 1);
	json_t *rater = json_object_get(json_array_get(fbs, 0), "rater");
	assert_string_equal(json_string_value(json_object_get(rater, "role")),
			    "end_user");
	assert_string_equal(
	    json_string_value(json_object_get(
		json_object_get(rater, "attributes"), "age_band")),
	    "30-39");
	json_decref(j);
	free(json);
	/* The new member now starts from the cohort's model: the score of
	 * LONG over SHORT is higher than the population's. */
	pwb_response *after =
	    ask(g, "c-age", "train-new", "user.age_band", "30-39", NULL);
	pwb_response *pop = ask(g, "c-age", "train-pop", NULL, NULL, NULL);
	assert_true(after->cohort_prior);
	assert_true(after->alts[1].score - after->alts[0].score >
		    pop->alts[1].score - pop->alts[0].score);
	/* Feedback after the user withdrew consent to grouping: stored
	 * without the attribute, and the cohort is not taught. */
	set_consent("c-age", "train-m", "{\"learning\": true}");
	res = choose(g, "c-age", "train-m", r, "B");
	assert_int_equal(res.pairs_learnt, 1);
	assert_false(res.cohort_learnt);
	json = exported("c-age", "train-m");
	j = json_loads(json, 0, NULL);
	fbs = json_object_get(j, "feedback");
	assert_int_equal(json_array_size(fbs), 2);
	size_t with = 0;
	for (size_t i = 0; i < 2; i++) {
		json_t *ra = json_object_get(json_array_get(fbs, i), "rater");
		json_t *at = json_object_get(ra, "attributes");
		with += json_object_get(at, "age_band") != NULL;
	}
	assert_int_equal(with, 1);
	json_decref(j);
	free(json);
	pwb_response_free(pop);
	pwb_response_free(after);
	pwb_response_free(r);
	pwb_response_free(before);
	rig_free(g);
}

/* ---- erasing a member ---- */

static void test_erase_leaves_no_attribute(void **state)
{
	(void)state;
	rig *g = two_texts();
	set_consent("c-age", "erase-m",
		    "{\"learning\": true, \"cohort\": true}");
	pwb_response *r =
	    ask(g, "c-age", "erase-m", "user.age_band", "40-49", NULL);
	choose(g, "c-age", "erase-m", r, "B");
	char *json = exported("c-age", "erase-m");
	rig_assert_has(json, "40-49"); /* in the feedback and the decision */
	free(json);
	pwb_diag d;
	pwb_diag_init(&d);
	rig_ok(pwb_store_user_erase(rig_store, "c-age", "erase-m",
				    (int64_t)time(NULL), NULL, &d),
	       &d, "erase");
	uint64_t n = 1;
	rig_ok(pwb_store_feedback_count(rig_store, "c-age", "erase-m", &n, &d),
	       &d, "count");
	assert_int_equal(n, 0);
	pwb_store_decision_row row;
	assert_int_equal(pwb_store_decision_get(rig_store, "c-age",
						r->decision_id, &row, &d),
			 PWB_ENOTFOUND);
	pwb_diag_release(&d);
	json = exported("c-age", "erase-m");
	rig_assert_lacks(json, "40-49");
	rig_assert_lacks(json, "age_band");
	free(json);
	pwb_response_free(r);
	rig_free(g);
}

/* ---- a special attribute needs consent that names it ---- */

static void test_special_attribute_needs_named_consent(void **state)
{
	(void)state;
	rig *g = two_texts();
	set_consent("c-health", "health-any",
		    "{\"learning\": true, \"cohort\": true}");
	pwb_response *r =
	    ask(g, "c-health", "health-any", "user.health", "asthma", NULL);
	assert_null(r->cohort);
	assert_true(pwb_effective_learning(r->effective)->cohort_named_consent);
	choose(g, "c-health", "health-any", r, "B");
	char *json = exported("c-health", "health-any");
	rig_assert_lacks(json, "asthma");
	free(json);
	pwb_response_free(r);
	set_consent("c-health", "health-named",
		    "{\"learning\": true, \"cohort\": \"health\"}");
	r = ask(g, "c-health", "health-named", "user.health", "asthma", NULL);
	assert_non_null(r->cohort);
	assert_string_equal(r->cohort, "health=asthma");
	pwb_response_free(r);
	rig_free(g);
}

/* ---- values that cannot name a cohort ---- */

static void test_bad_values(void **state)
{
	(void)state;
	rig *g = two_texts();
	set_consent("c-age", "bad-v", "{\"cohort\": true}");
	char huge[300];
	memset(huge, 'x', sizeof(huge) - 1);
	huge[sizeof(huge) - 1] = '\0';
	const char *vals[] = {huge, "18\n24", "18\x7f", "", "\xc2\x85"};
	const char *why[] = {"at most 128 bytes", "control characters",
			     "control characters", "not empty",
			     "control characters"};
	for (size_t i = 0; i < PWB_ARRAY_LEN(vals); i++) {
		pwb_diag d;
		pwb_diag_init(&d);
		pwb_status st;
		pwb_response *r = ask_st(g, "c-age", "bad-v", "user.age_band",
					 vals[i], NULL, &st, &d);
		assert_int_equal(st, PWB_EINVAL);
		assert_null(r);
		rig_assert_has(rig_first_msg(&d), "user.age_band");
		rig_assert_has(rig_first_msg(&d), why[i]);
		pwb_diag_release(&d);
	}
	/* A value of the wrong type is refused by the resolve, naming it. */
	pwb_attrs *a = NULL;
	assert_int_equal(pwb_attrs_new(&a), PWB_OK);
	assert_int_equal(pwb_attrs_set_number(a, "user.age_band", 21), PWB_OK);
	pwb_chat_msg m = {"user", "Tell me a story"};
	pwb_request req = {.org = "c-age",
			   .user = "bad-v",
			   .attrs = a,
			   .msgs = &m,
			   .n_msgs = 1,
			   .n = 2,
			   .seed = 7};
	pwb_response *r = NULL;
	pwb_diag d;
	pwb_diag_init(&d);
	assert_int_not_equal(pwb_pipeline_chat(g->pl, &req, &r, &d), PWB_OK);
	rig_assert_has(rig_first_msg(&d), "user.age_band");
	pwb_diag_release(&d);
	pwb_attrs_free(a);
	/* Without consent to be grouped the value is not read: today's
	 * behaviour, answered. */
	pwb_response *ok =
	    ask(g, "c-age", "bad-none", "user.age_band", huge, NULL);
	assert_null(ok->cohort);
	pwb_response_free(ok);
	rig_free(g);
}

/* ---- the consent JSON ---- */

static void test_consent_update(void **state)
{
	(void)state;
	char *j = NULL;
	/* An old consent keeps its learning; grouping is added. */
	assert_int_equal(pwb_consent_update("{\"learning\": true, \"ts\": 1}",
					    -1, "age_band", 5, &j),
			 PWB_OK);
	json_t *o = json_loads(j, 0, NULL);
	assert_true(json_is_true(json_object_get(o, "learning")));
	assert_string_equal(json_string_value(json_object_get(o, "cohort")),
			    "age_band");
	assert_int_equal(json_integer_value(json_object_get(o, "ts")), 5);
	json_decref(o);
	char *k = NULL;
	/* Withdrawing learning keeps the grouping; "" withdraws it. */
	assert_int_equal(pwb_consent_update(j, 0, NULL, 6, &k), PWB_OK);
	rig_assert_has(k, "\"cohort\":\"age_band\"");
	rig_assert_has(k, "\"learning\":false");
	free(j);
	assert_int_equal(pwb_consent_update(k, -1, "", 7, &j), PWB_OK);
	rig_assert_has(j, "\"cohort\":false");
	free(j);
	free(k);
	/* Not an object: replaced. A bad attribute name: refused. */
	assert_int_equal(pwb_consent_update("[1]", 1, NULL, 8, &j), PWB_OK);
	rig_assert_has(j, "\"learning\":true");
	free(j);
	assert_int_equal(pwb_consent_update(NULL, 1, "age band", 8, &j),
			 PWB_EINVAL);
	assert_null(j);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_new_member_starts_from_cohort),
	    cmocka_unit_test(test_no_cohort_consent_is_population),
	    cmocka_unit_test(test_forbidden_attribute_refused_by_check),
	    cmocka_unit_test(test_forbidden_attribute_never_used),
	    cmocka_unit_test(test_member_feedback_trains_cohort),
	    cmocka_unit_test(test_erase_leaves_no_attribute),
	    cmocka_unit_test(test_special_attribute_needs_named_consent),
	    cmocka_unit_test(test_bad_values),
	    cmocka_unit_test(test_consent_update),
	};
	return cmocka_run_group_tests(tests, setup, rig_teardown);
}
