/*
 * test_report.c - the alignment datasheet (include/pwb/report.h) on a tiny
 * SQLite store whose every figure is computed by hand here: raters by role
 * and attribute, feedback per rater (Gini, top shares, Lorenz), decisions
 * by verdict, blocks by tier, category and day, the period's bounds, the
 * policy hashes, and personalisation on users with and without a model.
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
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pwb/pwb.h"

#define DAY 86400
#define T0 (20000 * (int64_t)DAY) /* 2024-10-04 */

static char dir[] = "/tmp/pwb-report-XXXXXX";
static pwb_policy *pol;

static void ok(pwb_status st, pwb_diag *d, const char *what)
{
	if (st)
		fail_msg("%s: %s: %s", what, pwb_status_str(st),
			 d && d->n ? d->entries[0].message : "");
}

static void fb(pwb_store *s, const char *user, int64_t ts, const char *role,
	       const char *attrs)
{
	pwb_store_feedback f = {.kind = PWB_STORE_FB_PAIR,
				.user = user,
				.ts = ts,
				.prompt = "p",
				.chosen = "a",
				.rejected = "b",
				.rater_role = role,
				.rater_attrs = attrs};
	pwb_diag d;
	pwb_diag_init(&d);
	ok(pwb_store_feedback_add(s, "acme-tutor", &f, PWB_STORE_TEXTS, ts,
				  NULL, &d),
	   &d, "feedback");
	pwb_diag_release(&d);
}

static void dec(pwb_store *s, const char *id, const char *user, int64_t ts,
		const char *hash, const char *tier, const char *cat)
{
	pwb_store_decision x = {.id = id,
				.user = user,
				.ts = ts,
				.policy_hash = hash,
				.verdict = tier ? "block" : "allow",
				.blocked_tier = tier,
				.blocked_category = cat};
	pwb_diag d;
	pwb_diag_init(&d);
	ok(pwb_store_decision_add(s, "acme-tutor", &x, &d), &d, "decision");
	pwb_diag_release(&d);
}

/* The store: 4 raters with 1, 1, 2 and 6 events (u4's 6 in two roles),
 * one event outside the period; 5 decisions, 3 blocked. */
static pwb_store *fill(void)
{
	char url[128];
	snprintf(url, sizeof(url), "sqlite:%s/r.db", dir);
	pwb_store *s = NULL;
	pwb_diag d;
	pwb_diag_init(&d);
	ok(pwb_store_open(&s, url, NULL, &d), &d, "open");
	pwb_diag_release(&d);
	fb(s, "u1", T0 + 10, "end_user", NULL);
	fb(s, "u2", T0 + 20, "end_user", "{\"age_band\":\"18-24\"}");
	fb(s, "u3", T0 + 30, "end_user", "{\"age_band\":\"18-24\"}");
	fb(s, "u3", T0 + DAY, "end_user", "{\"age_band\":\"18-24\"}");
	for (int i = 0; i < 4; i++)
		fb(s, "u4", T0 + DAY + i, "end_user", NULL);
	fb(s, "u4", T0 + 2 * DAY, "expert", NULL);
	fb(s, "u4", T0 + 2 * DAY + 1, "expert", NULL);
	fb(s, "u5", T0 - 5, "end_user", NULL); /* before the period */
	dec(s, "d1", "u1", T0 + 1, "h1", NULL, NULL);
	dec(s, "d2", "u1", T0 + 2, "h1", "law", "hate");
	dec(s, "d3", "u2", T0 + DAY + 2, "h2", "org", "profanity");
	dec(s, "d4", "u2", T0 + DAY + 3, "h2", "law", "hate");
	dec(s, "d5", "u3", T0 + 3 * DAY, "h2", NULL, NULL);
	dec(s, "d6", "u3", T0 + 9 * DAY, "h3", NULL, NULL); /* after it */
	return s;
}

static json_t *datasheet(pwb_store *s, int64_t since, int64_t until)
{
	pwb_report_params p = {.org = "acme-tutor",
			       .since = since,
			       .until = until,
			       .now = T0 + 30 * DAY,
			       .policy = pol};
	char *text = NULL;
	pwb_diag d;
	pwb_diag_init(&d);
	ok(pwb_report_datasheet(s, &p, &text, &d), &d, "datasheet");
	pwb_diag_release(&d);
	json_error_t e;
	json_t *j = json_loads(text, 0, &e);
	if (!j)
		fail_msg("the datasheet is not JSON: %s", e.text);
	free(text);
	return j;
}

static double num(json_t *root, const char *path)
{
	json_t *v = root;
	char buf[256];
	snprintf(buf, sizeof(buf), "%s", path);
	char *save = NULL;
	for (char *k = strtok_r(buf, ".", &save); k;
	     k = strtok_r(NULL, ".", &save))
		v = json_object_get(v, k);
	if (!json_is_number(v))
		fail_msg("%s is not a number", path);
	return json_number_value(v);
}

static void test_datasheet_figures(void **state)
{
	(void)state;
	pwb_store *s = fill();
	json_t *j = datasheet(s, T0, T0 + 5 * DAY);
	assert_string_equal(json_string_value(json_object_get(j, "report")),
			    "datasheet");
	json_t *period = json_object_get(j, "period");
	assert_string_equal(json_string_value(json_object_get(period, "since")),
			    "2024-10-04T00:00:00Z");
	assert_string_equal(json_string_value(json_object_get(period, "until")),
			    "2024-10-09T00:00:00Z");
	/* Raters by role: end users u1..u4 (8 events in the period), the
	 * expert u4 (2). */
	assert_int_equal(num(j, "raters.by_role.end_user.raters"), 4);
	assert_int_equal(num(j, "raters.by_role.end_user.events"), 8);
	assert_int_equal(num(j, "raters.by_role.expert.raters"), 1);
	assert_int_equal(num(j, "raters.by_role.expert.events"), 2);
	/* By attributes: none (u1, u4: 2 raters, 7 events), 18-24 (u2, u3:
	 * 2 raters, 3 events). */
	json_t *attrs =
	    json_object_get(json_object_get(j, "raters"), "by_attributes");
	assert_int_equal(json_array_size(attrs), 2);
	json_t *none = json_array_get(attrs, 0),
	       *band = json_array_get(attrs, 1);
	assert_int_equal(json_object_size(json_object_get(none, "attributes")),
			 0);
	assert_int_equal(json_integer_value(json_object_get(none, "events")),
			 7);
	assert_string_equal(
	    json_string_value(json_object_get(
		json_object_get(band, "attributes"), "age_band")),
	    "18-24");
	assert_int_equal(json_integer_value(json_object_get(band, "raters")),
			 2);
	/* Per rater 1, 1, 2, 6: Gini = 2·(1·1 + 2·1 + 3·2 + 4·6)/(4·10) −
	 * 5/4 = 0.4; the top 1 % and 10 % are one rater: 6/10. */
	assert_int_equal(num(j, "feedback_per_rater.raters"), 4);
	assert_int_equal(num(j, "feedback_per_rater.events"), 10);
	assert_true(fabs(num(j, "feedback_per_rater.gini") - 0.4) < 1e-9);
	assert_true(fabs(num(j, "feedback_per_rater.top1_share") - 0.6) < 1e-9);
	assert_true(fabs(num(j, "feedback_per_rater.top10_share") - 0.6) <
		    1e-9);
	assert_int_equal(num(j, "feedback_per_rater.max"), 6);
	/* The Lorenz curve: (0, 0), then each rater: .25 → .1, .5 → .2,
	 * .75 → .4, 1 → 1. */
	json_t *lorenz =
	    json_object_get(json_object_get(j, "feedback_per_rater"), "lorenz");
	assert_int_equal(json_array_size(lorenz), 5);
	json_t *p3 = json_array_get(lorenz, 3);
	assert_true(fabs(json_real_value(json_array_get(p3, 0)) - 0.75) < 1e-9);
	assert_true(fabs(json_real_value(json_array_get(p3, 1)) - 0.4) < 1e-9);
	/* Decisions d1..d5 (d6 is after the period); blocks 3: law 2 (hate),
	 * org 1 (profanity), on two days. */
	assert_int_equal(num(j, "decisions.by_verdict.allow.decisions"), 2);
	assert_int_equal(num(j, "decisions.by_verdict.block.decisions"), 3);
	assert_int_equal(num(j, "decisions.by_verdict.block.users"), 2);
	assert_int_equal(num(j, "blocks.total"), 3);
	assert_int_equal(num(j, "blocks.by_tier.law"), 2);
	assert_int_equal(num(j, "blocks.by_tier.org"), 1);
	assert_int_equal(num(j, "blocks.by_category.hate"), 2);
	json_t *days = json_object_get(json_object_get(j, "blocks"), "by_day");
	assert_int_equal(json_array_size(days), 3);
	assert_string_equal(
	    json_string_value(json_object_get(json_array_get(days, 0), "day")),
	    "2024-10-04");
	/* Policies: h1 on 2 decisions, h2 on 3, in the order first seen. */
	json_t *seen = json_object_get(json_object_get(j, "policies"), "seen");
	assert_int_equal(json_array_size(seen), 2);
	assert_string_equal(
	    json_string_value(json_object_get(json_array_get(seen, 1), "hash")),
	    "h2");
	assert_int_equal(json_integer_value(json_object_get(
			     json_array_get(seen, 1), "decisions")),
			 3);
	const char *in_force = json_string_value(json_object_get(
	    json_object_get(json_object_get(j, "policies"), "in_force"),
	    "hash"));
	assert_non_null(in_force);
	assert_int_equal(strlen(in_force), 64);
	/* Users: u1..u5 (created by their writes), none with a model. */
	assert_int_equal(num(j, "users.users"), 5);
	assert_int_equal(num(j, "personalisation.users"), 0);
	/* Every figure names its rows. */
	const char *k;
	json_t *v;
	json_object_foreach(j, k, v)
	{
		if (json_is_object(v) && strcmp(k, "period"))
			assert_non_null(json_object_get(v, "rows"));
	}
	json_decref(j);
	pwb_store_free(s);
}

static size_t count_of(const char *hay, const char *needle)
{
	size_t n = 0;
	for (const char *p = hay; (p = strstr(p, needle)); p++)
		n++;
	return n;
}

/* The page: the figures of the JSON, charts as SVG, no script, and what
 * came from the store escaped. */
static void test_datasheet_html(void **state)
{
	(void)state;
	pwb_store *s = fill();
	json_t *j = datasheet(s, T0, T0 + 5 * DAY);
	json_t *cats =
	    json_object_get(json_object_get(j, "blocks"), "by_category");
	json_object_set_new(cats, "<script>x</script>", json_integer(1));
	char *text = json_dumps(j, 0), *html = NULL;
	pwb_diag d;
	pwb_diag_init(&d);
	ok(pwb_report_html(text, &html, &d), &d, "html");
	assert_non_null(strstr(html, "<!DOCTYPE html>"));
	assert_non_null(strstr(html, "Gini 0.400"));
	assert_non_null(strstr(html, "60.0&#8239;% of the feedback"));
	assert_true(count_of(html, "<svg") >= 4);
	assert_int_equal(count_of(html, "<svg"), count_of(html, "</svg>"));
	assert_null(strstr(html, "<script"));
	assert_non_null(strstr(html, "&lt;script&gt;x&lt;/script&gt;"));
	assert_non_null(strstr(html, "2024-10-04"));
	free(html);
	/* Not a report: refused. */
	assert_int_equal(pwb_report_html("{\"report\": \"nope\"}", &html, &d),
			 PWB_EINVAL);
	assert_int_equal(pwb_report_html("[", &html, &d), PWB_EINVAL);
	assert_null(html);
	pwb_diag_release(&d);
	free(text);
	json_decref(j);
	pwb_store_free(s);
}

/* A period with nothing in it: zeros, no division by zero. */
static void test_datasheet_empty(void **state)
{
	(void)state;
	pwb_store *s = fill();
	json_t *j = datasheet(s, T0 + 100 * DAY, T0 + 101 * DAY);
	assert_int_equal(num(j, "feedback_per_rater.raters"), 0);
	assert_true(num(j, "feedback_per_rater.gini") == 0);
	assert_true(num(j, "feedback_per_rater.top1_share") == 0);
	assert_int_equal(num(j, "blocks.total"), 0);
	assert_int_equal(num(j, "personalisation.users"), 0);
	json_decref(j);
	/* An empty period is refused. */
	pwb_report_params p = {
	    .org = "acme-tutor", .since = T0, .until = T0, .policy = pol};
	char *text = NULL;
	pwb_diag d;
	pwb_diag_init(&d);
	assert_int_equal(pwb_report_datasheet(s, &p, &text, &d), PWB_EINVAL);
	assert_null(text);
	pwb_diag_release(&d);
	pwb_store_free(s);
}

/* Personal models: a user whose model deviates only on verbosity by
 * Δ_u and weight s_u strays |s_u·Δ_u| (over the style dimensions, and
 * on each); one that does not load is counted as unreadable, not a
 * failure. */
static void test_datasheet_personalisation(void **state)
{
	(void)state;
	pwb_store *s = fill();
	pwb_prefs_model *m = NULL;
	pwb_diag d;
	pwb_diag_init(&d);
	ok(pwb_pipeline_default_prefs(pol, &m, &d), &d, "prefs");
	/* A long answer preferred to a short one. */
	static const char longer[] =
	    "The tide rises and falls twice a day because the moon pulls "
	    "the oceans towards it, and the earth turns beneath them; the "
	    "sun adds a smaller pull of its own, so that the highest tides "
	    "come when the two line up.";
	pwb_prefs_features a, b;
	ok(pwb_prefs_features_compute(&a, m, longer, strlen(longer), NULL, NULL,
				      &d),
	   &d, "features");
	ok(pwb_prefs_features_compute(&b, m, "The moon.", 9, NULL, NULL, &d),
	   &d, "features");
	pwb_prefs_bounds bounds;
	pwb_prefs_bounds_init(&bounds);
	bounds.consented = true;
	for (int i = 0; i < 3; i++)
		ok(pwb_prefs_update_user_pair(m, "u2", &a, &b, &bounds), &d,
		   "learn");
	/* The distance over every style dimension, and verbosity's own. */
	double w = pwb_prefs_user_weight(m, "u2"), want = 0;
	for (int k = 0; k < PWB_PREFS_N_DIMS; k++)
		want += pow(w * pwb_prefs_user_dim(m, "u2", k), 2);
	want = sqrt(want);
	double verb =
	    w * fabs(pwb_prefs_user_dim(m, "u2", PWB_PREFS_VERBOSITY));
	assert_true(verb > 0);
	void *blob = NULL;
	size_t len = 0;
	ok(pwb_prefs_user_save_mem(m, "u2", &blob, &len), &d, "save");
	ok(pwb_store_user_set_model(s, "acme-tutor", "u2", blob, len, -1, NULL,
				    T0 + 50, &d),
	   &d, "store the model");
	ok(pwb_store_user_set_model(s, "acme-tutor", "u3", "junk", 4, -1, NULL,
				    T0 + 50, &d),
	   &d, "store junk");
	free(blob);
	json_t *j = datasheet(s, T0, T0 + 5 * DAY);
	assert_int_equal(num(j, "personalisation.users"), 1);
	assert_int_equal(num(j, "personalisation.unreadable"), 1);
	assert_true(fabs(num(j, "personalisation.max") - want) < 1e-6);
	assert_true(fabs(num(j, "personalisation.by_dimension.verbosity.max") -
			 verb) < 1e-6);
	assert_int_equal(num(j, "users.with_model"), 2);
	json_decref(j);
	pwb_prefs_model_free(m);
	pwb_diag_release(&d);
	pwb_store_free(s);
}

/* The indicator of an entry, by names. */
static json_t *ind(json_t *j, const char *entry, const char *name)
{
	size_t i, k;
	json_t *e, *x;
	json_array_foreach(json_object_get(j, "entries"), i, e)
	{
		if (strcmp(json_string_value(json_object_get(e, "id")), entry))
			continue;
		json_array_foreach(json_object_get(e, "indicators"), k, x)
		{
			if (!strcmp(
				json_string_value(json_object_get(x, "name")),
				name))
				return x;
		}
	}
	fail_msg("no indicator %s of %s", name, entry);
	return NULL;
}

static void expect(json_t *j, const char *entry, const char *name, double v,
		   const char *status)
{
	json_t *x = ind(j, entry, name);
	double got = json_number_value(json_object_get(x, "value"));
	if (fabs(got - v) > 1e-6)
		fail_msg("%s.%s: %g, not %g", entry, name, got, v);
	assert_string_equal(json_string_value(json_object_get(x, "status")),
			    status);
}

/* The register on the tiny store, each value computed by hand. */
static void test_risks(void **state)
{
	(void)state;
	pwb_store *s = fill();
	pwb_report_params p = {.org = "acme-tutor",
			       .since = T0,
			       .until = T0 + 5 * DAY,
			       .now = T0 + 30 * DAY,
			       .policy = pol};
	char *text = NULL;
	pwb_diag d;
	pwb_diag_init(&d);
	ok(pwb_report_risks(s, &p, &text, &d), &d, "risks");
	json_t *j = json_loads(text, 0, NULL);
	free(text);
	assert_non_null(j);
	assert_int_equal(json_array_size(json_object_get(j, "entries")), 7);
	/* No user has a model of their own (0 of 5: red, a benefit
	 * missing); 10 events from 4 raters: 2.5 (amber below 3). */
	expect(j, "efficiency_autonomy", "share_of_users_with_own_model", 0,
	       "red");
	expect(j, "efficiency_autonomy", "feedback_events_per_rater", 2.5,
	       "amber");
	/* Gini 0.4 (green below 0.5); the top 1 %, one rater, 6 of 10. */
	expect(j, "concentration_of_influence", "feedback_gini", 0.4, "green");
	expect(j, "concentration_of_influence", "top1_share", 0.6, "red");
	/* 2 law blocks of 5 decisions: 400 a thousand; nobody blocked by
	 * the law three times. */
	expect(j, "malicious_use_jailbreaking", "law_blocks_per_1000_decisions",
	       400, "red");
	expect(j, "malicious_use_jailbreaking",
	       "users_with_3_or_more_law_blocks", 0, "green");
	/* 3 of 10 events with attributes; acme-tutor keeps no texts and
	 * keeps feedback 180 days. */
	expect(j, "privacy_profiling", "share_of_feedback_with_attributes", 0.3,
	       "green");
	expect(j, "privacy_profiling", "feedback_texts_kept", 0, "green");
	expect(j, "privacy_profiling", "retention_days", 180, "green");
	/* One group of consenting raters (2 raters, under 5): no ratio. */
	expect(j, "unequal_quality", "events_per_rater_ratio_across_groups", 1,
	       "green");
	/* An entry's status is its worst indicator's. */
	size_t i;
	json_t *e;
	json_array_foreach(json_object_get(j, "entries"), i, e)
	{
		const char *id = json_string_value(json_object_get(e, "id"));
		const char *st =
		    json_string_value(json_object_get(e, "status"));
		if (!strcmp(id, "concentration_of_influence") ||
		    !strcmp(id, "efficiency_autonomy"))
			assert_string_equal(st, "red");
		assert_non_null(json_object_get(e, "mitigations"));
		assert_true(json_array_size(json_object_get(e, "mitigations")) >
			    0);
	}
	/* The page. */
	text = json_dumps(j, 0);
	char *html = NULL;
	ok(pwb_report_html(text, &html, &d), &d, "html");
	assert_non_null(strstr(html, "Risk register: acme-tutor"));
	assert_non_null(strstr(html, "concentration_of_influence"));
	free(html);
	free(text);
	json_decref(j);
	pwb_diag_release(&d);
	pwb_store_free(s);
}

static int setup(void **state)
{
	(void)state;
	if (!mkdtemp(dir))
		return -1;
	const char *src = getenv("PWB_SOURCE_DIR");
	char path[4096];
	snprintf(path, sizeof(path), "%s/policies", src ? src : ".");
	pwb_diag d;
	pwb_diag_init(&d);
	pwb_status st = pwb_policy_load(&pol, path, NULL, &d);
	pwb_diag_release(&d);
	return st ? -1 : 0;
}

/* Each test starts from a fresh store file. */
static int fresh(void **state)
{
	(void)state;
	char path[128];
	snprintf(path, sizeof(path), "%s/r.db", dir);
	unlink(path);
	snprintf(path, sizeof(path), "%s/r.db-wal", dir);
	unlink(path);
	snprintf(path, sizeof(path), "%s/r.db-shm", dir);
	unlink(path);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	fresh(NULL);
	rmdir(dir);
	pwb_policy_free(pol);
	return 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup(test_datasheet_figures, fresh),
	    cmocka_unit_test_setup(test_datasheet_empty, fresh),
	    cmocka_unit_test_setup(test_datasheet_html, fresh),
	    cmocka_unit_test_setup(test_datasheet_personalisation, fresh),
	    cmocka_unit_test_setup(test_risks, fresh),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
