/*
 * risks.c - the risk register (DESIGN §11, docs/RISKS.md): for
 * individuals and for society, the benefits and the risks of
 * personalisation, each with the indicators pwb computes from its own
 * store, a traffic light against thresholds, and the policy settings that
 * mitigate it.
 *
 *   the datasheet's figures + two per-user queries -> indicators ->
 *   entries
 */
#include "pwb/report.h"

#include "report/report_int.h"

#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* One indicator's thresholds: for a risk, amber from `amber` up and red
 * from `red` up; for a benefit (higher is better), amber below `amber`
 * and red below `red`. */
typedef struct indicator_def {
	const char *name;
	double amber, red;
	const char *what; /* what it measures, for the page */
} indicator_def;

static const char *status(bool benefit, double v, const indicator_def *d)
{
	if (benefit)
		return v < d->red ? "red" : v < d->amber ? "amber" : "green";
	return v >= d->red ? "red" : v >= d->amber ? "amber" : "green";
}

static json_t *indicator(bool benefit, const indicator_def *d, double v)
{
	return json_pack("{s:s, s:f, s:{s:f, s:f, s:s}, s:s, s:s}", "name",
			 d->name, "value", v, "threshold", "amber", d->amber,
			 "red", d->red, "direction",
			 benefit ? "higher is better" : "lower is better",
			 "status", status(benefit, v, d), "measures", d->what);
}

/* The worst status of an entry's indicators. */
static const char *worst(json_t *inds)
{
	int w = 0;
	size_t i;
	json_t *x;
	json_array_foreach(inds, i, x)
	{
		const char *s = json_string_value(json_object_get(x, "status"));
		int v = s && !strcmp(s, "red") ? 2 : s && !strcmp(s, "amber");
		if (v > w)
			w = v;
	}
	return w == 2 ? "red" : w == 1 ? "amber" : "green";
}

static json_t *entry(const char *id, const char *level, const char *kind,
		     const char *description, json_t *inds,
		     const char *const *mitigations)
{
	json_t *m = json_array();
	for (size_t i = 0; mitigations[i]; i++)
		json_array_append_new(m, json_string(mitigations[i]));
	return json_pack("{s:s, s:s, s:s, s:s, s:s, s:o, s:o}", "id", id,
			 "level", level, "kind", kind, "description",
			 description, "status", worst(inds), "indicators", inds,
			 "mitigations", m);
}

static double at(json_t *j, const char *a, const char *b, const char *c)
{
	json_t *v = json_object_get(j, a);
	if (b)
		v = json_object_get(v, b);
	if (c)
		v = json_object_get(v, c);
	return json_is_number(v) ? json_number_value(v) : 0;
}

static int on_count(void *user, const pwb_store_cell *c, size_t n)
{
	(void)n;
	return pwb__counts_push(user, c[0].i) ? 1 : 0;
}

/* Events per rater in the most and the least active group of raters by
 * consented attributes (groups of at least 5 raters); 1 with fewer than
 * two such groups. */
static double group_ratio(json_t *groups)
{
	double hi = 0, lo = INFINITY;
	size_t i, n = 0;
	json_t *g;
	json_array_foreach(groups, i, g)
	{
		double raters = at(g, "raters", NULL, NULL);
		if (!json_object_size(json_object_get(g, "attributes")) ||
		    raters < 5)
			continue;
		double per = at(g, "events", NULL, NULL) / raters;
		hi = per > hi ? per : hi;
		lo = per < lo ? per : lo;
		n++;
	}
	return n >= 2 && lo > 0 ? hi / lo : 1;
}

pwb_status pwb_report_risks(pwb_store *s, const pwb_report_params *p,
			    char **json, pwb_diag *diag)
{
	*json = NULL;
	json_t *ds = NULL, *root = NULL;
	pwb__counts per_user = {0}, law = {0};
	int64_t until;
	pwb_status st = pwb__report_begin(p, "risks", &until, &root, diag);
	if (!st)
		st = pwb__datasheet(s, p, &ds, diag);
	if (!st)
		st = pwb_store_aggregate(s, PWB_AGG_DECISIONS_PER_USER, p->org,
					 p->since, until, on_count, &per_user,
					 diag);
	if (!st)
		st = pwb_store_aggregate(s, PWB_AGG_LAW_BLOCKS_PER_USER, p->org,
					 p->since, until, on_count, &law, diag);
	if (!st && (per_user.oom || law.oom))
		st = PWB_ENOMEM;
	if (st)
		goto out;
	pwb_effective *e = NULL;
	pwb_resolve_params rp = {.org = p->org};
	pwb_diag rd;
	pwb_diag_init(&rd);
	const pwb_eff_learning *l = NULL;
	if (!pwb_policy_resolve(&e, p->policy, &rp, &rd))
		l = pwb_effective_learning(e);
	pwb_diag_release(&rd);

	double users = at(ds, "users", "users", NULL);
	double with_model = at(ds, "users", "with_model", NULL);
	double raters = at(ds, "feedback_per_rater", "raters", NULL);
	double events = at(ds, "feedback_per_rater", "events", NULL);
	double decisions = 0;
	json_t *verdicts =
	    json_object_get(json_object_get(ds, "decisions"), "by_verdict");
	const char *k;
	json_t *v;
	json_object_foreach(verdicts, k, v)
	{
		decisions += at(v, "decisions", NULL, NULL);
	}
	double days = (double)(until - p->since) / 86400.0;
	/* Days of data: from the first decision or event in the period,
	 * not from 1970 when --since is not given. */
	json_t *seen = json_object_get(json_object_get(ds, "policies"), "seen");
	if (json_array_size(seen)) {
		int64_t first = 0;
		json_t *f = json_object_get(json_array_get(seen, 0), "first");
		struct tm tm = {0};
		if (json_is_string(f) &&
		    strptime(json_string_value(f), "%Y-%m-%dT%H:%M:%SZ", &tm)) {
			first = (int64_t)timegm(&tm);
			double d = (double)(until - first) / 86400.0;
			if (d < days)
				days = d;
		}
	}
	if (days < 1)
		days = 1;
	pwb__doubles du = {0};
	for (size_t i = 0; i < per_user.n; i++)
		pwb__doubles_push(&du, (double)per_user.v[i] / days);
	pwb__doubles_sort(&du);
	double heavy = pwb__quantile(&du, 0.99);
	pwb__doubles_release(&du);
	size_t repeat = 0;
	for (size_t i = 0; i < law.n; i++)
		repeat += law.v[i] >= 3;

	json_t *entries = json_array();
	static const indicator_def d_model = {
	    "share_of_users_with_own_model", 0.3, 0.1,
	    "users with a model of their own, of all users"};
	static const indicator_def d_events = {
	    "feedback_events_per_rater", 3, 1,
	    "feedback events per rater in the period"};
	json_array_append_new(
	    entries,
	    entry("efficiency_autonomy", "individual", "benefit",
		  "Answers fit each user's own preferences, learnt from "
		  "their feedback and their settings: less steering by hand, "
		  "more say over how the model answers them.",
		  json_pack(
		      "[o, o]",
		      indicator(true, &d_model, users ? with_model / users : 0),
		      indicator(true, &d_events, raters ? events / raters : 0)),
		  (const char *const[]){
		      "settings a user may change (the org's `dimensions` "
		      "ranges and `categories` opt_in/opt_out)",
		      "`learning.requires_consent`: learning with consent",
		      NULL}));

	static const indicator_def d_stray = {
	    "distance_from_population_p90", 0.5, 1.0,
	    "90th percentile of users' distance from the population model"};
	json_array_append_new(
	    entries,
	    entry("echo_chambers", "societal", "risk",
		  "Personal models that drift far from what everyone is "
		  "served can narrow what users see and harden differences "
		  "between groups.",
		  json_pack("[o]",
			    indicator(false, &d_stray,
				      at(ds, "personalisation", "p90", NULL))),
		  (const char *const[]){
		      "`dimensions` ranges in the org file bound how far a "
		      "user's style may move",
		      "categories forbidden or opt_in at the org tier stay "
		      "closed whatever a user learns",
		      "shrinkage (`pwb prefs train`): a user's model counts "
		      "only as far as their evidence goes",
		      NULL}));

	static const indicator_def d_heavy = {
	    "decisions_per_user_per_day_p99", 50, 200,
	    "99th percentile of a user's answers a day"};
	static const indicator_def d_warm = {
	    "warmth_deviation_p90", 0.3, 0.6,
	    "90th percentile of users' learnt warmth beyond the population"};
	json_array_append_new(
	    entries,
	    entry("over_reliance_anthropomorphism", "individual", "risk",
		  "A model tuned to please one user, warm and agreeable, can "
		  "invite over-reliance and being taken for a person.",
		  json_pack("[o, o]", indicator(false, &d_heavy, heavy),
			    indicator(false, &d_warm,
				      at(json_object_get(ds, "personalisation"),
					 "by_dimension", "warmth", "p90"))),
		  (const char *const[]){
		      "`obligations.disclose_ai` (the law files: EU AI Act "
		      "Art. 50(1))",
		      "a `warmth` range in the org file", NULL}));

	double with_attrs = 0;
	size_t i;
	json_t *g;
	json_array_foreach(
	    json_object_get(json_object_get(ds, "raters"), "by_attributes"), i,
	    g)
	{
		if (json_object_size(json_object_get(g, "attributes")))
			with_attrs += at(g, "events", NULL, NULL);
	}
	static const indicator_def d_attrs = {
	    "share_of_feedback_with_attributes", 0.5, 0.9,
	    "feedback events stored with rater attributes, of all events"};
	static const indicator_def d_texts = {
	    "feedback_texts_kept", 0.5, 2,
	    "1 when the org's policy keeps feedback texts, else 0 (kept: "
	    "amber at most)"};
	static const indicator_def d_keep = {
	    "retention_days", 366, 3651,
	    "days feedback is kept (0 or missing: without limit, counted as "
	    "3651)"};
	double keep = l && l->retention_days ? l->retention_days : 3651;
	json_array_append_new(
	    entries,
	    entry("privacy_profiling", "individual", "risk",
		  "Learning from a user builds a profile of them; attributes "
		  "and texts kept with feedback can be misused or leak.",
		  json_pack(
		      "[o, o, o]",
		      indicator(false, &d_attrs,
				events ? with_attrs / events : 0),
		      indicator(false, &d_texts, l && l->store_texts ? 1 : 0),
		      indicator(false, &d_keep, keep)),
		  (const char *const[]){
		      "`learning.store_texts: false`: feature vectors only",
		      "`learning.retention_days` and `pwb store gc`",
		      "`learning.forbid_attributes` and `requires_consent` "
		      "(the law files: GDPR Art. 9)",
		      "`pwb user export` and `pwb user erase`", NULL}));

	static const indicator_def d_law = {
	    "law_blocks_per_1000_decisions", 20, 50,
	    "answers blocked by the law tier per thousand decisions"};
	static const indicator_def d_rep = {
	    "users_with_3_or_more_law_blocks", 1, 10,
	    "users whom the law tier blocked three times or more"};
	double law_blocks = at(ds, "blocks", "by_tier", "law");
	json_array_append_new(
	    entries,
	    entry("malicious_use_jailbreaking", "societal", "risk",
		  "Personal settings and learnt preferences are a lever for "
		  "loosening a model's safeguards; repeated attempts show in "
		  "the blocks.",
		  json_pack(
		      "[o, o]",
		      indicator(false, &d_law,
				decisions ? 1000 * law_blocks / decisions : 0),
		      indicator(false, &d_rep, (double)repeat)),
		  (const char *const[]){
		      "the meet: no lower tier loosens a higher one "
		      "(`pwb policy check`)",
		      "input and output rails on every candidate",
		      "the audit chain (`pwb audit verify`)", NULL}));

	static const indicator_def d_group = {
	    "events_per_rater_ratio_across_groups", 3, 10,
	    "events per rater, most over least active group of consenting "
	    "raters (groups of 5 or more)"};
	json_array_append_new(
	    entries,
	    entry("unequal_quality", "societal", "risk",
		  "Groups that give less feedback are served by models "
		  "learnt mostly from others.",
		  json_pack("[o]", indicator(false, &d_group,
					     group_ratio(json_object_get(
						 json_object_get(ds, "raters"),
						 "by_attributes")))),
		  (const char *const[]){
		      "cohort priors (`learning.cohort_attribute`): a new "
		      "user starts from their group's model",
		      "the datasheet's raters by attribute, reviewed", NULL}));

	static const indicator_def d_gini = {
	    "feedback_gini", 0.5, 0.7, "Gini of feedback events per rater"};
	static const indicator_def d_top = {
	    "top1_share", 0.2, 0.4,
	    "share of feedback from the most active 1 % of raters"};
	json_array_append_new(
	    entries,
	    entry(
		"concentration_of_influence", "societal", "risk",
		"When few raters give most of the feedback, the population "
		"model is aligned to them.",
		json_pack("[o, o]",
			  indicator(false, &d_gini,
				    at(ds, "feedback_per_rater", "gini", NULL)),
			  indicator(false, &d_top,
				    at(ds, "feedback_per_rater", "top1_share",
				       NULL))),
		(const char *const[]){
		    "train the population model on balanced raters (`pwb "
		    "prefs train`)",
		    "each user's model learns from that user alone", NULL}));
	pwb_effective_free(e);
	json_object_set_new(root, "entries", entries);
	json_object_set_new(
	    root, "rows",
	    json_string("the datasheet's rows for the period (docs/report.md), "
			"decisions per user, and the org's effective policy "
			"now"));
	st = pwb__report_end(root, json);
out:
	json_decref(ds);
	json_decref(root);
	pwb__counts_release(&per_user);
	pwb__counts_release(&law);
	return st;
}
