/*
 * feedback.c - one feedback event (DESIGN §3.2, docs/pipeline.md):
 *
 *   find_decision -> pairs_of -> learn (one unit of the store's group
 *   commit: the event rows, then the user's model with a compare-and-set
 *   on its version)
 *
 * A choice of alternative X prefers X over every other allowed
 * alternative of the decision; a rating above the middle of its 1-5 scale
 * prefers the rated alternative over the others, below the middle the
 * others over it, and the middle itself teaches nothing.
 */
#include "pipeline/pipeline_int.h"

#include <jansson.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_ALTS PWB_ENGINE_MAX_N
#define CAS_TRIES 5 /* another replica wrote the model: reload, retry */

/* One alternative of a stored decision. */
typedef struct stored_alt {
	char id[8];
	bool allowed;
	pwb_prefs_features f;
	bool has_features;
} stored_alt;

#define PWB__FB_MAX_JUR 32 /* a request's jurisdictions, as recorded */

typedef struct fb_run {
	pwb_pipeline *pl;
	const pwb_feedback_give *fb;
	stored_alt alts[MAX_ALTS];
	size_t n_alts;
	char chosen[8]; /* the alternative the user was served */
	/* The decision's request's own jurisdictions (its detail owns
	 * them) */
	json_t *detail;
	const char *jur[PWB__FB_MAX_JUR];
	size_t n_jur;
	/* The cohort the decision was scored in ("ATTRIBUTE=VALUE", its
	 * detail owns it), or NULL; and the rater attributes stored with
	 * the event ({"ATTRIBUTE": "VALUE"}) when it still applies. */
	const char *cohort;
	char *rater_attrs;
	size_t pair_a[MAX_ALTS], pair_b[MAX_ALTS]; /* a preferred over b */
	size_t n_pairs;
	bool conflict; /* another writer bumped the model's version */
	pwb_diag *diag;
} fb_run;

static pwb_status bad(pwb_diag *diag, const char *fmt, const char *a,
		      const char *b)
{
	pwb_diag_add(diag, NULL, 0, 0, fmt, a, b);
	return PWB_EINVAL;
}

/* Reads one alternative of the decision's detail. */
static pwb_status read_alt(fb_run *fr, json_t *j, stored_alt *a)
{
	const char *id = json_string_value(json_object_get(j, "id"));
	const char *verdict = json_string_value(json_object_get(j, "verdict"));
	const char *b64 = json_string_value(json_object_get(j, "features"));
	if (!id || strlen(id) >= sizeof(a->id) || !verdict)
		return bad(fr->diag, "decision '%s' has a damaged record%s",
			   fr->fb->decision_id, "");
	memcpy(a->id, id, strlen(id) + 1);
	a->allowed = strcmp(verdict, "block") != 0;
	if (!b64 || !a->allowed)
		return PWB_OK;
	size_t cap = strlen(b64), len = 0;
	unsigned char *raw = pwb__malloc(cap ? cap : 1);
	if (!raw)
		return PWB_ENOMEM;
	pwb_prefs_features two[2];
	size_t n = 0;
	pwb_status st = PWB_EPARSE;
	if (!sodium_base642bin(raw, cap, b64, cap, NULL, &len, NULL,
			       sodium_base64_VARIANT_ORIGINAL))
		st = pwb_prefs_features_unpack(fr->pl->prefs, raw, len, two,
					       &n, fr->diag);
	free(raw);
	if (st)
		return bad(fr->diag,
			   "decision '%s' was scored with another preference "
			   "model: give the --prefs model the request used%s",
			   fr->fb->decision_id, "");
	a->f = two[0];
	a->has_features = true;
	return PWB_OK;
}

static pwb_status read_detail(fb_run *fr, const char *detail)
{
	json_t *root = detail ? json_loads(detail, 0, NULL) : NULL;
	json_t *alts = json_object_get(root, "alternatives");
	const char *chosen = json_string_value(json_object_get(root, "chosen"));
	pwb_status st = PWB_OK;
	if (!json_is_array(alts) || json_array_size(alts) > MAX_ALTS)
		st = bad(fr->diag, "decision '%s' has a damaged record%s",
			 fr->fb->decision_id, "");
	for (size_t i = 0; !st && i < json_array_size(alts); i++) {
		st = read_alt(fr, json_array_get(alts, i), &fr->alts[i]);
		fr->n_alts = i + 1;
	}
	if (!st && chosen && strlen(chosen) < sizeof(fr->chosen))
		memcpy(fr->chosen, chosen, strlen(chosen) + 1);
	json_t *jur = json_object_get(root, "jurisdictions");
	if (!st && jur && (!json_is_array(jur) ||
			   json_array_size(jur) > PWB__FB_MAX_JUR))
		st = bad(fr->diag, "decision '%s' has a damaged record%s",
			 fr->fb->decision_id, "");
	for (size_t i = 0; !st && i < json_array_size(jur); i++) {
		if (!(fr->jur[i] = json_string_value(json_array_get(jur, i))))
			st = bad(fr->diag,
				 "decision '%s' has a damaged record%s",
				 fr->fb->decision_id, "");
		fr->n_jur = i + 1;
	}
	json_t *co = json_object_get(root, "cohort");
	if (!st && co && !json_is_null(co)) {
		const char *c = json_string_value(co);
		const char *eq = c ? strchr(c, '=') : NULL;
		if (!eq || eq == c || !eq[1] ||
		    strlen(c) > PWB__COHORT_ID_MAX)
			st = bad(fr->diag,
				 "decision '%s' has a damaged record%s",
				 fr->fb->decision_id, "");
		else
			fr->cohort = c;
	}
	fr->detail = root; /* freed with the run: jur points into it */
	return st;
}

/* The decision, checked to be this user's and not blocked. */
static pwb_status find_decision(fb_run *fr)
{
	const pwb_feedback_give *fb = fr->fb;
	pwb_store_decision_row row;
	pwb_status st = pwb_store_decision_get(
	    fr->pl->p.store, fb->org, fb->decision_id, &row, fr->diag);
	if (st)
		return st;
	/* Another user's decision is not found, as one that does not
	 * exist: a user learns nothing of others' decisions from it. */
	if (!row.user || strcmp(row.user, fb->user)) {
		pwb_diag_add(fr->diag, NULL, 0, 0,
			     "decision '%s' is not one of the decisions of "
			     "user '%s'",
			     fb->decision_id, fb->user);
		st = PWB_ENOTFOUND;
	} else if (row.verdict && !strcmp(row.verdict, "block")) {
		st = bad(fr->diag,
			 "decision '%s' was blocked: it has no answer to "
			 "prefer%s",
			 fb->decision_id, "");
	}
	if (!st)
		st = read_detail(fr, row.detail);
	pwb_store_decision_row_release(&row);
	return st;
}

/* Alternative ids are capital letters; a lower-case one names the same. */
static bool same_alt(const char *id, const char *given)
{
	return given[0] && !given[1] &&
	       (id[0] == given[0] || id[0] == given[0] - 'a' + 'A') && !id[1];
}

static pwb_status find_alt(fb_run *fr, const char *id, size_t *out)
{
	for (size_t i = 0; id && i < fr->n_alts; i++)
		if (same_alt(fr->alts[i].id, id)) {
			if (!fr->alts[i].allowed)
				return bad(fr->diag,
					   "alternative '%s' of decision '%s' "
					   "was blocked: it cannot be chosen",
					   id, fr->fb->decision_id);
			*out = i;
			return PWB_OK;
		}
	return bad(fr->diag, "decision '%s' has no alternative '%s'",
		   fr->fb->decision_id, id ? id : "(none)");
}

static void add_pair(fb_run *fr, size_t a, size_t b)
{
	if (a != b && fr->alts[a].has_features && fr->alts[b].has_features) {
		fr->pair_a[fr->n_pairs] = a;
		fr->pair_b[fr->n_pairs++] = b;
	}
}

/* The pairs the event teaches (see the top of the file). */
static pwb_status pairs_of(fb_run *fr)
{
	const pwb_feedback_give *fb = fr->fb;
	size_t x = 0, y = 0;
	const char *alt = fb->alt ? fb->alt : fr->chosen;
	pwb_status st = find_alt(fr, alt, &x);
	if (st)
		return st;
	switch (fb->kind) {
	case PWB_FB_PAIR:
		if ((st = find_alt(fr, fb->other, &y)))
			return st;
		if (x == y)
			return bad(fr->diag,
				   "a pair needs two different alternatives, "
				   "not '%s' twice%s",
				   alt, "");
		add_pair(fr, x, y);
		break;
	case PWB_FB_CHOOSE:
		for (size_t i = 0; i < fr->n_alts; i++)
			if (fr->alts[i].allowed)
				add_pair(fr, x, i);
		break;
	case PWB_FB_RATING:
		if (!(fb->rating >= 1 && fb->rating <= 5))
			return bad(fr->diag,
				   "a rating must be from 1 to 5%s%s", "", "");
		for (size_t i = 0; fb->rating != 3 && i < fr->n_alts; i++)
			if (fr->alts[i].allowed) {
				if (fb->rating > 3)
					add_pair(fr, x, i);
				else
					add_pair(fr, i, x);
			}
		break;
	}
	return PWB_OK;
}

/* The event's rows: one per pair (features only: the decision kept no
 * texts), or the rating itself. */
/* The rows of the event: one per pair learnt (with the pair's features),
 * or one without features for a rating that teaches nothing. The caller
 * frees each row's features and the array. */
static pwb_status event_rows(fb_run *fr, int64_t now,
			     pwb_store_feedback **rows, size_t *n)
{
	const pwb_feedback_give *fb = fr->fb;
	size_t want = fr->n_pairs ? fr->n_pairs : 1;
	*n = 0;
	if (!(*rows = pwb__calloc(want, sizeof(**rows))))
		return PWB_ENOMEM;
	for (size_t k = 0; k < want; k++) {
		pwb_store_feedback *row = &(*rows)[k];
		*row = (pwb_store_feedback){
		    .kind = fb->kind == PWB_FB_RATING ? PWB_STORE_FB_RATING
						      : PWB_STORE_FB_PAIR,
		    .user = fb->user,
		    .ts = now,
		    .rating = fb->rating,
		    .scale_lo = 1,
		    .scale_hi = 5,
		    .rater_role = "end_user",
		    .rater_attrs = fr->rater_attrs,
		    .decision_id = fb->decision_id,
		};
		*n = k + 1;
		if (fb->kind == PWB_FB_RATING || !fr->n_pairs)
			return PWB_OK; /* one row; a rating has no pair */
		void *data = NULL;
		size_t len = 0;
		pwb_status st = pwb_prefs_features_pack(
		    fr->pl->prefs, &fr->alts[fr->pair_a[k]].f,
		    &fr->alts[fr->pair_b[k]].f, &data, &len);
		row->features = data;
		row->features_len = len;
		if (st)
			return st;
	}
	return PWB_OK;
}

static void event_rows_free(pwb_store_feedback *rows, size_t n)
{
	for (size_t k = 0; k < n; k++)
		free((void *)rows[k].features);
	free(rows);
}

/*
 * Learns the pairs into the user's model (under pl->lock, which the
 * caller holds and which this releases before the store write and takes
 * again after it), then writes the event rows and the model, with a
 * compare-and-set on its version, as one unit that shares a commit with
 * other users' feedback and decisions. The population and the cohort
 * learn once the event is stored, so that a retried try does not teach
 * them twice.
 */
static pwb_status learn(fb_run *fr, const pwb__user *u,
			const pwb_prefs_bounds *b, pwb_feedback_result *res)
{
	pwb_pipeline *pl = fr->pl;
	const char *user = fr->fb->user;
	int64_t now = (int64_t)time(NULL);
	pwb_status st = pwb__user_model_sync(pl, user, u, fr->diag);
	for (size_t k = 0; !st && k < fr->n_pairs; k++)
		st = pwb_prefs_update_user_pair(pl->prefs, user,
						&fr->alts[fr->pair_a[k]].f,
						&fr->alts[fr->pair_b[k]].f, b);
	void *blob = NULL;
	size_t len = 0;
	if (!st && fr->n_pairs)
		st = pwb_prefs_user_save_mem(pl->prefs, user, &blob, &len);
	pwb_store_feedback *rows = NULL;
	size_t n_rows = 0;
	if (!st)
		st = event_rows(fr, now, &rows, &n_rows);
	res->model_version = u->row.model_version;
	pwb_store_model_write m = {.user = user,
				   .blob = blob,
				   .len = len,
				   .expect_version = u->row.model_version};
	/* The user's model in memory may now be ahead of the store: the
	 * next sync (of a chat or a retry) reloads it from there. */
	pthread_mutex_unlock(&pl->lock);
	if (!st)
		st = pwb_store_feedback_learn(pl->p.store, fr->fb->org, rows,
					      n_rows, PWB_STORE_FEATURES_ONLY,
					      blob ? &m : NULL, now, fr->diag);
	fr->conflict = m.conflict;
	if (!st && blob)
		res->model_version = m.new_version;
	free(blob);
	event_rows_free(rows, n_rows);
	pthread_mutex_lock(&pl->lock);
	for (size_t k = 0; !st && k < fr->n_pairs; k++)
		pwb_prefs_update_pair(pl->prefs, NULL,
				      &fr->alts[fr->pair_a[k]].f,
				      &fr->alts[fr->pair_b[k]].f, b);
	/* The cohort learns like the population: once the event is
	 * stored, in memory (docs/pipeline.md). */
	for (size_t k = 0; !st && fr->rater_attrs && k < fr->n_pairs; k++)
		if (!pwb_prefs_update_cohort_pair(pl->prefs, fr->cohort,
						  &fr->alts[fr->pair_a[k]].f,
						  &fr->alts[fr->pair_b[k]].f,
						  b))
			res->cohort_learnt = true;
	if (!st)
		res->pairs_learnt = fr->n_pairs;
	return st;
}

/*
 * The rater attributes of the event: the decision's cohort attribute and
 * value, only while the policy (as resolved now) still groups users by
 * that attribute and the user still consents to it. Otherwise none: an
 * attribute not consented to, or forbidden, is never stored.
 */
static pwb_status cohort_now(fb_run *fr, const pwb_effective *e,
			     const pwb__user *u)
{
	free(fr->rater_attrs);
	fr->rater_attrs = NULL;
	if (!fr->cohort)
		return PWB_OK;
	const char *eq = strchr(fr->cohort, '=');
	char attr[PWB__COHORT_ID_MAX + 1];
	memcpy(attr, fr->cohort, (size_t)(eq - fr->cohort));
	attr[eq - fr->cohort] = '\0';
	if (!pwb__cohort_consented(e, u, attr))
		return PWB_OK;
	json_t *j = json_pack("{s:s}", attr, eq + 1);
	fr->rater_attrs = j ? json_dumps(j, JSON_COMPACT) : NULL;
	json_decref(j);
	return fr->rater_attrs ? PWB_OK : PWB_ENOMEM;
}

/* One try, under the lock: the user as stored now, their bounds and
 * consent, and the learning. */
static pwb_status try_learn(fb_run *fr, pwb_feedback_result *res)
{
	pwb_pipeline *pl = fr->pl;
	const pwb_feedback_give *fb = fr->fb;
	pwb__user u;
	pwb_effective *e = NULL;
	pwb_request req = {.org = fb->org,
			   .user = fb->user,
			   .jurisdictions = fr->jur,
			   .n_jurisdictions = fr->n_jur};
	pwb_status st = pwb__user_load(pl, fb->org, fb->user, &u, fr->diag);
	if (!st)
		st = pwb__resolve(pl, &req, &u, &e, fr->diag);
	if (!st) {
		pwb_prefs_bounds b;
		pwb__prefs_bounds(pl, e, u.consented, &b);
		res->consent_needed = b.needs_consent && !b.consented;
		if (!res->consent_needed)
			st = cohort_now(fr, e, &u);
		if (!st && !res->consent_needed)
			st = learn(fr, &u, &b, res);
	}
	pwb_effective_free(e);
	pwb__user_release(&u);
	return st;
}

/* FNV-1a of the org and the user: which stripe their feedback takes. */
static size_t stripe_of(const pwb_feedback_give *fb)
{
	uint32_t h = 2166136261u;
	for (const char *p = fb->org; *p; p++)
		h = (h ^ (unsigned char)*p) * 16777619u;
	h = (h ^ 0xff) * 16777619u;
	for (const char *p = fb->user; *p; p++)
		h = (h ^ (unsigned char)*p) * 16777619u;
	return h % PWB__FB_STRIPES;
}

pwb_status pwb_pipeline_feedback(pwb_pipeline *pl,
				 const pwb_feedback_give *fb,
				 pwb_feedback_result *res, pwb_diag *diag)
{
	memset(res, 0, sizeof(*res));
	if (!pl->p.store) {
		pwb_diag_add(diag, NULL, 0, 0,
			     "feedback needs a store (--db)");
		return PWB_EINVAL;
	}
	if (!fb || !fb->org || !fb->user || !fb->decision_id) {
		pwb_diag_add(diag, NULL, 0, 0,
			     "feedback needs an org, a user and a decision");
		return PWB_EINVAL;
	}
	fb_run *fr = pwb__calloc(1, sizeof(*fr));
	if (!fr)
		return PWB_ENOMEM;
	*fr = (fb_run){.pl = pl, .fb = fb, .diag = diag};
	pwb_status st = find_decision(fr);
	if (!st)
		st = pairs_of(fr);
	/* The feedback of one user takes turns on their stripe: each reads
	 * the user's model as stored and writes it back. A conflict can then
	 * only come from another process or replica; it is retried. Other
	 * users' feedback runs beside it and shares its commit. */
	pthread_mutex_t *stripe = &pl->fb_stripe[stripe_of(fb)];
	for (int tries = 0; !st; tries++) {
		size_t keep = diag ? diag->n : 0;
		fr->conflict = false;
		pthread_mutex_lock(stripe);
		pthread_mutex_lock(&pl->lock);
		st = try_learn(fr, res);
		pthread_mutex_unlock(&pl->lock);
		pthread_mutex_unlock(stripe);
		if (!fr->conflict || tries + 1 >= CAS_TRIES)
			break;
		pwb__diag_rewind(diag, keep);
		st = PWB_OK;
	}
	json_decref(fr->detail);
	free(fr->rater_attrs);
	free(fr);
	return st;
}

pwb_status pwb_pipeline_explain(pwb_pipeline *pl, const char *org,
				const char *user, char **out, pwb_diag *diag)
{
	pwb__user u;
	pwb_status st = pwb__user_load(pl, org, user, &u, diag);
	pthread_mutex_lock(&pl->lock);
	if (!st)
		st = pwb__user_model_sync(pl, user, &u, diag);
	if (!st)
		st = pwb_prefs_explain(pl->prefs, user, out, diag);
	pthread_mutex_unlock(&pl->lock);
	pwb__user_release(&u);
	return st;
}

pwb_status pwb_pipeline_reset(pwb_pipeline *pl, const char *org,
			      const char *user, pwb_diag *diag)
{
	if (!pl->p.store) {
		pwb_diag_add(diag, NULL, 0, 0, "a reset needs a store (--db)");
		return PWB_EINVAL;
	}
	/* The stored model is not read: a damaged one is reset too. An
	 * empty blob means the population model. */
	pwb__user u;
	pwb_status st = pwb__user_load(pl, org, user, &u, diag);
	if (!st && u.row.model_len)
		st = pwb_store_user_set_model(pl->p.store, org, user, "", 0, -1,
					      NULL, (int64_t)time(NULL), diag);
	pthread_mutex_lock(&pl->lock);
	if (!st && pwb_prefs_has_user(pl->prefs, user))
		st = pwb_prefs_reset(pl->prefs, user, diag);
	pthread_mutex_unlock(&pl->lock);
	pwb__user_release(&u);
	return st;
}
