/*
 * datasheet.c - the alignment datasheet (DESIGN §11, docs/report.md):
 * whose feedback the org's models are aligned to, what was blocked by
 * which tier, and how far personal models stray from the population.
 *
 *   raters -> feedback_per_rater -> decisions -> personalisation ->
 *   policies, each from one pwb_store_aggregate() query
 */
#include "pwb/report.h"

#include "report/report_int.h"

#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---- raters ---- */

static int on_role(void *user, const pwb_store_cell *c, size_t n)
{
	(void)n;
	json_t *by = user;
	json_object_set_new(by, c[0].s && *c[0].s ? c[0].s : "unknown",
			    json_pack("{s:I, s:I}", "raters",
				      (json_int_t)c[1].i, "events",
				      (json_int_t)c[2].i));
	return 0;
}

static int on_attrs(void *user, const pwb_store_cell *c, size_t n)
{
	(void)n;
	json_t *list = user;
	json_t *a = c[0].s && *c[0].s ? json_loads(c[0].s, 0, NULL) : NULL;
	if (c[0].s && *c[0].s && !json_is_object(a)) {
		json_decref(a);
		return 0; /* not ours: the store keeps JSON objects */
	}
	json_array_append_new(list, json_pack("{s:o, s:I, s:I}", "attributes",
					      a ? a : json_object(), "raters",
					      (json_int_t)c[1].i, "events",
					      (json_int_t)c[2].i));
	return 0;
}

/* ---- feedback per rater ---- */

static int on_count(void *user, const pwb_store_cell *c, size_t n)
{
	(void)n;
	pwb__counts *v = user;
	return pwb__counts_push(v, c[0].i) ? 1 : 0;
}

/* Gini, top shares and a Lorenz curve of counts ascending (DESIGN §11). */
static json_t *concentration(const pwb__counts *v)
{
	double total = 0, weighted = 0;
	for (size_t i = 0; i < v->n; i++) {
		total += (double)v->v[i];
		weighted += (double)(i + 1) * (double)v->v[i];
	}
	double nn = (double)v->n;
	double gini =
	    v->n && total > 0 ? 2 * weighted / (nn * total) - (nn + 1) / nn : 0;
	json_t *lorenz = json_array();
	json_array_append_new(lorenz, json_pack("[f, f]", 0.0, 0.0));
	double run = 0;
	size_t next = 1, points = v->n < 100 ? v->n : 100;
	for (size_t i = 0; i < v->n && total > 0; i++) {
		run += (double)v->v[i];
		/* a point at each 1/points of the raters */
		if ((i + 1) * points >= next * v->n) {
			json_array_append_new(
			    lorenz, json_pack("[f, f]", (double)(i + 1) / nn,
					      run / total));
			next++;
		}
	}
	json_t *j = json_pack(
	    "{s:I, s:I, s:f, s:f, s:f, s:f, s:I, s:I, s:o}", "raters",
	    (json_int_t)v->n, "events", (json_int_t)total, "gini", gini,
	    "top1_share", pwb__top_share(v, total, 0.01), "top10_share",
	    pwb__top_share(v, total, 0.10), "mean", v->n ? total / nn : 0.0,
	    "median", (json_int_t)(v->n ? v->v[v->n / 2] : 0), "max",
	    (json_int_t)(v->n ? v->v[v->n - 1] : 0), "lorenz", lorenz);
	return j;
}

/* ---- decisions ---- */

typedef struct blocks {
	json_t *by_tier, *by_category, *by_day;
	int64_t total;
} blocks;

static void add_to(json_t *obj, const char *key, int64_t n)
{
	json_t *v = json_object_get(obj, key);
	json_object_set_new(
	    obj, key, json_integer(json_integer_value(v) + (json_int_t)n));
}

static int on_block(void *user, const pwb_store_cell *c, size_t n)
{
	(void)n;
	blocks *b = user;
	const char *tier = c[1].s && *c[1].s ? c[1].s : "unknown";
	const char *cat = c[2].s && *c[2].s ? c[2].s : "unknown";
	char day[16];
	pwb__day_str(c[0].i, day, sizeof(day));
	add_to(b->by_tier, tier, c[3].i);
	add_to(b->by_category, cat, c[3].i);
	b->total += c[3].i;
	json_array_append_new(b->by_day,
			      json_pack("{s:s, s:s, s:s, s:I}", "day", day,
					"tier", tier, "category", cat, "count",
					(json_int_t)c[3].i));
	return 0;
}

static int on_verdict(void *user, const pwb_store_cell *c, size_t n)
{
	(void)n;
	json_object_set_new(user, c[0].s ? c[0].s : "unknown",
			    json_pack("{s:I, s:I}", "decisions",
				      (json_int_t)c[1].i, "users",
				      (json_int_t)c[2].i));
	return 0;
}

/* ---- personalisation ---- */

typedef struct stray {
	pwb_prefs_model *m;
	pwb__doubles dist;
	pwb__doubles dim[PWB_PREFS_N_DIMS];
	int64_t unreadable;
	bool oom;
} stray;

/* One user's model: loaded into the scratch model, its deviation from
 * the population (weighted by how much it counts, s_u) measured, then
 * forgotten, so that memory stays one user's. */
static int on_model(void *user, const pwb_store_cell *c, size_t n)
{
	(void)n;
	stray *st = user;
	const char *id = c[0].s;
	if (!id || c[1].null ||
	    pwb_prefs_user_load_mem(st->m, c[1].b, c[1].len, NULL)) {
		st->unreadable++;
		return 0;
	}
	double w = pwb_prefs_user_weight(st->m, id), sum = 0;
	for (int k = 0; k < PWB_PREFS_N_DIMS; k++) {
		double d = w * pwb_prefs_user_dim(st->m, id, k);
		sum += d * d;
		if (pwb__doubles_push(&st->dim[k], fabs(d)))
			st->oom = true;
	}
	if (pwb__doubles_push(&st->dist, sqrt(sum)))
		st->oom = true;
	pwb_prefs_reset(st->m, id, NULL);
	return st->oom;
}

static json_t *spread(pwb__doubles *v)
{
	pwb__doubles_sort(v);
	double mean = 0;
	for (size_t i = 0; i < v->n; i++)
		mean += v->v[i];
	return json_pack(
	    "{s:I, s:f, s:f, s:f, s:f, s:f}", "users", (json_int_t)v->n, "mean",
	    v->n ? mean / (double)v->n : 0.0, "p10", pwb__quantile(v, 0.10),
	    "p50", pwb__quantile(v, 0.50), "p90", pwb__quantile(v, 0.90), "max",
	    v->n ? v->v[v->n - 1] : 0.0);
}

static pwb_status personalisation(pwb_store *s, const pwb_report_params *p,
				  int64_t until, json_t **out, pwb_diag *diag)
{
	stray st = {0};
	pwb_status rc;
	if (p->prefs) {
		void *blob = NULL;
		size_t len = 0;
		rc = pwb_prefs_population_save_mem(p->prefs, &blob, &len);
		if (!rc)
			rc =
			    pwb_prefs_load_mem(&st.m, blob, len, "prefs", diag);
		free(blob);
	} else {
		rc = pwb_pipeline_default_prefs(p->policy, &st.m, diag);
	}
	if (!rc)
		rc = pwb_store_aggregate(s, PWB_AGG_MODELS, p->org, p->since,
					 until, on_model, &st, diag);
	if (!rc && st.oom)
		rc = PWB_ENOMEM;
	if (!rc) {
		json_t *dims = json_object();
		for (int k = 0; k < PWB_PREFS_N_DIMS; k++)
			json_object_set_new(dims, pwb_prefs_dim_name(k),
					    spread(&st.dim[k]));
		json_t *j = spread(&st.dist);
		json_object_set_new(j, "by_dimension", dims);
		json_object_set_new(j, "unreadable",
				    json_integer(st.unreadable));
		json_object_set_new(
		    j, "rows",
		    json_string("users of the org with a model updated in the "
				"period, not erased; distance: the Euclidean "
				"norm of s_u·Δ_u over the style dimensions"));
		*out = j;
	}
	pwb__doubles_release(&st.dist);
	for (int k = 0; k < PWB_PREFS_N_DIMS; k++)
		pwb__doubles_release(&st.dim[k]);
	pwb_prefs_model_free(st.m);
	return rc;
}

/* ---- policies ---- */

static int on_policy(void *user, const pwb_store_cell *c, size_t n)
{
	(void)n;
	char first[32], last[32];
	pwb__time_str(c[1].i, first, sizeof(first));
	pwb__time_str(c[2].i, last, sizeof(last));
	json_array_append_new(user, json_pack("{s:s, s:s, s:s, s:I}", "hash",
					      c[0].s ? c[0].s : "", "first",
					      first, "last", last, "decisions",
					      (json_int_t)c[3].i));
	return 0;
}

static int on_users(void *user, const pwb_store_cell *c, size_t n)
{
	(void)n;
	json_object_set_new(user, "users", json_integer(c[0].i));
	json_object_set_new(user, "with_model", json_integer(c[1].i));
	json_object_set_new(user, "erased", json_integer(c[2].i));
	return 0;
}

pwb_status pwb_report_datasheet(pwb_store *s, const pwb_report_params *p,
				char **json, pwb_diag *diag)
{
	*json = NULL;
	json_t *root = NULL;
	pwb_status st = pwb__datasheet(s, p, &root, diag);
	if (!st)
		st = pwb__report_end(root, json);
	json_decref(root);
	return st;
}

pwb_status pwb__datasheet(pwb_store *s, const pwb_report_params *p,
			  json_t **out, pwb_diag *diag)
{
	*out = NULL;
	int64_t until;
	json_t *root = NULL;
	pwb_status st = pwb__report_begin(p, "datasheet", &until, &root, diag);
	if (st)
		return st;
	const char *org = p->org;
	json_t *roles = json_object(), *attrs = json_array();
	json_t *users = json_object();
	pwb__counts per = {0};
	blocks b = {json_object(), json_object(), json_array(), 0};
	json_t *verdicts = json_object(), *pols = json_array();
	json_t *pers = NULL;
	if (!st)
		st = pwb_store_aggregate(s, PWB_AGG_USERS, org, p->since, until,
					 on_users, users, diag);
	if (!st)
		st = pwb_store_aggregate(s, PWB_AGG_RATERS, org, p->since,
					 until, on_role, roles, diag);
	if (!st)
		st = pwb_store_aggregate(s, PWB_AGG_RATER_ATTRS, org, p->since,
					 until, on_attrs, attrs, diag);
	if (!st)
		st = pwb_store_aggregate(s, PWB_AGG_FEEDBACK_PER_RATER, org,
					 p->since, until, on_count, &per, diag);
	if (!st && per.oom)
		st = PWB_ENOMEM;
	if (!st)
		st = pwb_store_aggregate(s, PWB_AGG_VERDICTS, org, p->since,
					 until, on_verdict, verdicts, diag);
	if (!st)
		st = pwb_store_aggregate(s, PWB_AGG_BLOCKS, org, p->since,
					 until, on_block, &b, diag);
	if (!st)
		st = pwb_store_aggregate(s, PWB_AGG_POLICIES, org, p->since,
					 until, on_policy, pols, diag);
	if (!st)
		st = personalisation(s, p, until, &pers, diag);
	if (!st) {
		json_object_set_new(
		    users, "rows",
		    json_string("users of the org created before the end of "
				"the period"));
		json_object_set_new(root, "users", users);
		users = NULL;
		json_object_set_new(
		    root, "raters",
		    json_pack("{s:o, s:o, s:s}", "by_role", roles,
			      "by_attributes", attrs, "rows",
			      "feedback events of the org in the period, by "
			      "rater role and by the attributes the rater "
			      "consented to store"));
		roles = attrs = NULL;
		json_t *fpr = concentration(&per);
		json_object_set_new(fpr, "rows",
				    json_string("feedback events of the org in "
						"the period, by rater"));
		json_object_set_new(root, "feedback_per_rater", fpr);
		json_object_set_new(root, "decisions",
				    json_pack("{s:o, s:s}", "by_verdict",
					      verdicts, "rows",
					      "decisions of the org in the "
					      "period"));
		verdicts = NULL;
		json_object_set_new(
		    root, "blocks",
		    json_pack("{s:I, s:o, s:o, s:o, s:s}", "total",
			      (json_int_t)b.total, "by_tier", b.by_tier,
			      "by_category", b.by_category, "by_day", b.by_day,
			      "rows",
			      "blocked decisions of the org in the period (the "
			      "tier and category that blocked each)"));
		b.by_tier = b.by_category = b.by_day = NULL;
		json_object_set_new(root, "personalisation", pers);
		pers = NULL;
		st = pwb__report_policies(p, root, pols);
		pols = NULL;
	}
	if (!st) {
		*out = root;
		root = NULL;
	}
	json_decref(root);
	json_decref(roles);
	json_decref(attrs);
	json_decref(users);
	json_decref(verdicts);
	json_decref(pols);
	json_decref(pers);
	json_decref(b.by_tier);
	json_decref(b.by_category);
	json_decref(b.by_day);
	pwb__counts_release(&per);
	return st;
}
