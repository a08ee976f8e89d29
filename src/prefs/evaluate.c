/*
 * evaluate.c - `pwb eval prefs`: a chronological split per user, the
 * learner trained online on the past, pairwise accuracy on the future of
 * (a) the population model, (b) the personalised model and (c) explicit
 * settings alone, with bootstrap confidence intervals over users, the
 * users for whom personalising won, tied or lost, and a learning curve
 * (docs/prefs.md). The shrinkage strength of the personal deviations is
 * chosen first, by cross-validation across users on their training
 * events alone.
 *
 * The file reads in the order data flows: duplicate checks, features of
 * every text, grouping and ordering by user (and their cohorts), training
 * and testing pairs, the bootstrap, then the whole evaluation step by
 * step (run() at the end): the split, the choice of the shrinkage,
 * training, testing, the learning curve.
 */
#include "prefs/prefs_int.h"

#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

const size_t pwb_prefs_curve_points[PWB_PREFS_CURVE_N] = {0,  1,  2, 5,
							  10, 20, 50};

const double pwb_prefs_shrink_grid[PWB_PREFS_SHRINK_GRID_N] = {
    0,	 1,    2,    4,	   8,	 16,	32,    64,    128,     256,
    512, 1024, 2048, 4096, 8192, 16384, 32768, 65536, INFINITY};

pwb_prefs_eval_params pwb_prefs_eval_default_params(void)
{
	pwb_prefs_eval_params p = {0};
	p.model = pwb_prefs_default_params();
	p.test_fraction = 0.3;
	p.min_user_events = 5;
	p.bootstrap = 1000;
	p.seed = 1;
	p.rating_pairs = 8;
	p.shrink_k = -1; /* chosen by cross-validation */
	return p;
}

/* ---- duplicates ---- */

static uint64_t str_hash(uint64_t h, const char *s)
{
	if (!s)
		return pwb__fnv1a(h, "\xff", 1);
	return pwb__fnv1a(h, s, strlen(s) + 1);
}

static bool streq(const char *a, const char *b)
{
	return a == b || (a && b && !strcmp(a, b));
}

static bool same_event(const pwb_feedback *a, const pwb_feedback *b)
{
	if (a->id && b->id)
		return !strcmp(a->id, b->id);
	return a->has_ts == b->has_ts && (!a->has_ts || a->ts == b->ts) &&
	       streq(a->user, b->user) && streq(a->chosen, b->chosen) &&
	       streq(a->rejected, b->rejected) &&
	       streq(a->response, b->response);
}

pwb_status pwb_prefs_check_duplicates(const pwb_feedback_set *set,
				      const char *name, pwb_diag *diag)
{
	size_t n = pwb_feedback_n(set), ns = 16;
	while (ns < 2 * n + 2)
		ns *= 2;
	/* Two tables of event indices + 1: by id, and by user+ts+texts. */
	size_t *by_id = pwb__calloc(ns, sizeof(*by_id));
	size_t *by_key = pwb__calloc(ns, sizeof(*by_key));
	if (!by_id || !by_key) {
		free(by_id);
		free(by_key);
		pwb_diag_add(diag, name, 0, 0, "out of memory");
		return PWB_ENOMEM;
	}
	pwb_status st = PWB_OK;
	for (size_t i = 0; i < n; i++) {
		const pwb_feedback *e = pwb_feedback_get(set, i);
		for (int t = 0; t < 2; t++) {
			size_t *tab = t ? by_key : by_id;
			uint64_t h;
			if (t == 0) {
				if (!e->id)
					continue;
				h = str_hash(PWB__FNV_INIT, e->id);
			} else {
				h = str_hash(PWB__FNV_INIT, e->user);
				h = pwb__fnv1a(h, &e->ts,
					       e->has_ts ? sizeof(e->ts) : 0);
				h = str_hash(h, e->chosen);
				h = str_hash(h, e->rejected);
				h = str_hash(h, e->response);
			}
			size_t k = (size_t)h & (ns - 1);
			bool dup = false;
			while (tab[k]) {
				const pwb_feedback *o =
				    pwb_feedback_get(set, tab[k] - 1);
				bool same = t == 0 ? !strcmp(o->id, e->id)
						   : (same_event(o, e) &&
						      o->has_ts == e->has_ts);
				if (t == 1 && o->id && e->id)
					same = false; /* told apart by id */
				if (same) {
					if (t == 0)
						pwb_diag_add(
						    diag, name, e->line, 0,
						    "duplicate event: 'id' "
						    "'%s' was used on line %d",
						    e->id, o->line);
					else
						pwb_diag_add(
						    diag, name, e->line, 0,
						    "duplicate event: the same "
						    "user, ts and texts as "
						    "line %d",
						    o->line);
					dup = true;
					break;
				}
				k = (k + 1) & (ns - 1);
			}
			if (dup) {
				st = PWB_EPARSE;
				break;
			}
			tab[k] = i + 1;
		}
	}
	free(by_id);
	free(by_key);
	return st;
}

/* ---- features of every text, kept compactly ---- */

typedef struct ctext {
	uint32_t off, n;
	float dims[PWB_PREFS_N_DIMS];
} ctext;

typedef struct pool {
	uint32_t *idx;
	float *val;
	size_t n, cap;
} pool;

static pwb_status pool_add(pool *pl, ctext *t, const pwb_prefs_features *f)
{
	if (pl->n + f->n > UINT32_MAX)
		return PWB_ETOOLARGE;
	if (pl->n + f->n > pl->cap) {
		size_t cap = pl->cap ? pl->cap : 4096;
		while (cap < pl->n + f->n)
			cap *= 2;
		uint32_t *i = pwb__realloc(pl->idx, cap * sizeof(*i));
		if (!i)
			return PWB_ENOMEM;
		pl->idx = i;
		float *v = pwb__realloc(pl->val, cap * sizeof(*v));
		if (!v)
			return PWB_ENOMEM;
		pl->val = v;
		pl->cap = cap;
	}
	t->off = (uint32_t)pl->n;
	t->n = f->n;
	memcpy(t->dims, f->dims, sizeof(t->dims));
	memcpy(pl->idx + pl->n, f->idx, f->n * sizeof(*f->idx));
	memcpy(pl->val + pl->n, f->val, f->n * sizeof(*f->val));
	pl->n += f->n;
	return PWB_OK;
}

static void unpack(const pool *pl, const ctext *t, pwb_prefs_features *f)
{
	memcpy(f->dims, t->dims, sizeof(f->dims));
	f->n = t->n;
	memcpy(f->idx, pl->idx + t->off, t->n * sizeof(*f->idx));
	memcpy(f->val, pl->val + t->off, t->n * sizeof(*f->val));
}

/* ---- the evaluation ---- */

typedef struct ev {
	size_t i;      /* index in the set */
	int64_t key;   /* ts, carried forward where missing */
	int32_t user;  /* index of the user, -1 for none */
	bool test;     /* held out */
	bool val;      /* held back to choose the shrinkage */
	uint32_t text; /* first text: chosen or response */
	uint32_t ord;  /* position among the user's training events */
} ev;

typedef struct euser {
	const char *id;
	size_t n;	/* events */
	size_t n_train; /* training events */
	bool evaluated; /* n >= min_user_events */
	bool in_cv;	/* some training events held back for the choice */
	char *cohort;	/* "attribute=value", or NULL */
	size_t first;	/* index of its first event in the sorted order */
	pwb_prefs_bounds bounds;
	bool has_bounds;
	double acc[3]; /* personal, population, explicit */
	size_t n_test; /* test pairs */
	double curve[PWB_PREFS_CURVE_N];
	bool in_curve[PWB_PREFS_CURVE_N];
} euser;

/* A training pair, kept for the learning curve. */
typedef struct tpair {
	int32_t user;
	uint32_t ord;
	uint32_t a, b; /* texts: a preferred */
} tpair;

typedef struct evalctx {
	const pwb_feedback_set *set;
	const pwb_prefs_eval_params *p;
	pwb_prefs_model *m;
	pool pl;
	ctext *texts;
	size_t n_texts;
	ev *evs;
	size_t n;
	euser *users;
	size_t n_users;
	tpair *pairs;
	size_t n_pairs, cap_pairs;
	pwb_prefs_features fa, fb;
	size_t done, total;
	bool train_only;
	size_t n_anon; /* anonymous events, sorted first in evs */
	bool any_eval; /* some user is evaluated */
	double *vals;  /* per-user accuracies, for the bootstrap */
	bool cv;       /* training for the choice of the shrinkage */
	size_t cv_min; /* events for a user to take part in that choice */
	bool cohorts;  /* score members with their cohort's prior */
} evalctx;

static int cmp_ev(const void *x, const void *y)
{
	const ev *a = x, *b = y;
	if (a->user != b->user)
		return a->user < b->user ? -1 : 1;
	if (a->key != b->key)
		return a->key < b->key ? -1 : 1;
	return a->i < b->i ? -1 : a->i > b->i;
}

static int cmp_time(const void *x, const void *y)
{
	const ev *a = *(const ev *const *)x, *b = *(const ev *const *)y;
	if (a->key != b->key)
		return a->key < b->key ? -1 : 1;
	return a->i < b->i ? -1 : a->i > b->i;
}

static void tick(evalctx *c)
{
	c->done++;
	if (c->p->progress && (c->done % 256 == 0 || c->done == c->total))
		c->p->progress(c->p->ctx, c->done, c->total);
}

static double norm_rating(const pwb_feedback *e)
{
	return (e->rating - e->scale_lo) / (e->scale_hi - e->scale_lo);
}

static const pwb_feedback *fb(const evalctx *c, const ev *e)
{
	return pwb_feedback_get(c->set, e->i);
}

static const pwb_prefs_bounds *ubounds(const evalctx *c, int32_t u)
{
	static const pwb_prefs_bounds none;
	return u >= 0 && c->users[u].has_bounds ? &c->users[u].bounds : &none;
}

/* Groups events by user (a string table), carries ts forward, sorts. */
static pwb_status group(evalctx *c, pwb_diag *diag, const char *name)
{
	c->evs = pwb__calloc(c->n ? c->n : 1, sizeof(*c->evs));
	if (!c->evs)
		return PWB_ENOMEM;
	size_t ns = 16;
	while (ns < 2 * c->n + 2)
		ns *= 2;
	int32_t *slots = pwb__malloc(ns * sizeof(*slots));
	if (!slots)
		return PWB_ENOMEM;
	for (size_t k = 0; k < ns; k++)
		slots[k] = -1;
	c->users = pwb__calloc(c->n ? c->n : 1, sizeof(*c->users));
	if (!c->users) {
		free(slots);
		return PWB_ENOMEM;
	}
	int64_t *last = pwb__malloc((c->n ? c->n : 1) * sizeof(*last));
	if (!last) {
		free(slots);
		return PWB_ENOMEM;
	}
	int64_t anon_last = INT64_MIN;
	for (size_t i = 0; i < c->n; i++) {
		const pwb_feedback *e = pwb_feedback_get(c->set, i);
		ev *v = &c->evs[i];
		v->i = i;
		v->user = -1;
		if (e->user && *e->user) {
			if (strlen(e->user) > PWB__PREFS_MAX_USER_ID) {
				pwb_diag_add(diag, name, e->line, 0,
					     "'user' is longer than %u bytes",
					     PWB__PREFS_MAX_USER_ID);
				free(slots);
				free(last);
				return PWB_EPARSE;
			}
			uint64_t h = str_hash(PWB__FNV_INIT, e->user);
			size_t k = (size_t)h & (ns - 1);
			while (slots[k] >= 0 &&
			       strcmp(c->users[slots[k]].id, e->user))
				k = (k + 1) & (ns - 1);
			if (slots[k] < 0) {
				slots[k] = (int32_t)c->n_users;
				c->users[c->n_users].id = e->user;
				last[c->n_users] = INT64_MIN;
				c->n_users++;
			}
			v->user = slots[k];
			c->users[v->user].n++;
			if (e->has_ts)
				last[v->user] = e->ts;
			v->key = last[v->user];
		} else {
			if (e->has_ts)
				anon_last = e->ts;
			v->key = anon_last;
		}
	}
	free(slots);
	free(last);
	qsort(c->evs, c->n, sizeof(*c->evs), cmp_ev);
	/* The anonymous events sort first (user -1). */
	return PWB_OK;
}

/* The value of the consented attribute in an event's rater attributes,
 * as "attribute=value" (a string as it is, a number or true/false as
 * JSON writes it), or NULL: absent, another kind of value, too long or
 * out of memory (*oom). */
static char *cohort_of(const char *attrs, const char *key, bool *oom)
{
	json_t *o = json_loads(attrs, 0, NULL);
	json_t *v = json_is_object(o) ? json_object_get(o, key) : NULL;
	char *out = NULL, *num = NULL;
	const char *text = NULL;
	if (json_is_string(v))
		text = json_string_value(v);
	else if (json_is_number(v) || json_is_boolean(v))
		text = num = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
	if (text && *text) {
		size_t len = strlen(key) + 1 + strlen(text);
		if (len <= PWB__PREFS_MAX_USER_ID) {
			out = pwb__malloc(len + 1);
			if (out)
				snprintf(out, len + 1, "%s=%s", key, text);
			else
				*oom = true;
		}
	}
	free(num);
	json_decref(o);
	return out;
}

/* Each user's cohort: the first of their events whose rater carries the
 * consented attribute names it. */
static pwb_status find_cohorts(evalctx *c)
{
	const char *key = c->p->cohort_attr;
	if (!key || !*key)
		return PWB_OK;
	for (size_t k = 0; k < c->n; k++) {
		const ev *v = &c->evs[k];
		const pwb_feedback *e = fb(c, v);
		if (v->user < 0 || c->users[v->user].cohort || !e->rater_attrs)
			continue;
		bool oom = false;
		c->users[v->user].cohort = cohort_of(e->rater_attrs, key, &oom);
		if (oom)
			return PWB_ENOMEM;
	}
	c->cohorts = true;
	return PWB_OK;
}

static pwb_status compute_features(evalctx *c, pwb_diag *diag, const char *name)
{
	c->texts = pwb__malloc((2 * c->n + 1) * sizeof(*c->texts));
	if (!c->texts)
		return PWB_ENOMEM;
	for (size_t k = 0; k < c->n; k++) {
		ev *v = &c->evs[k];
		const pwb_feedback *e = fb(c, v);
		const char *t[2] = {
		    e->kind == PWB_FEEDBACK_PAIR ? e->chosen : e->response,
		    e->kind == PWB_FEEDBACK_PAIR ? e->rejected : NULL};
		v->text = (uint32_t)c->n_texts;
		for (int j = 0; j < 2 && t[j]; j++) {
			pwb_status st = pwb_prefs_features_compute(
			    &c->fa, c->m, t[j], strlen(t[j]), NULL, NULL, NULL);
			if (st == PWB_EINVAL) {
				pwb_diag_add(
				    diag, name, e->line, 0, "'%s' is empty",
				    e->kind == PWB_FEEDBACK_RATING ? "response"
				    : j				   ? "rejected"
								   : "chosen");
				return PWB_EPARSE;
			}
			if (st)
				return st;
			st = pool_add(&c->pl, &c->texts[c->n_texts++], &c->fa);
			if (st == PWB_ETOOLARGE)
				pwb_diag_add(diag, name, e->line, 0,
					     "more features in all than a "
					     "32-bit index can hold");
			if (st)
				return st;
		}
		tick(c);
	}
	return PWB_OK;
}

static pwb_status keep_pair(evalctx *c, int32_t u, uint32_t ord, uint32_t a,
			    uint32_t b)
{
	if (c->n_pairs == c->cap_pairs) {
		void *arr = c->pairs;
		if (pwb__grow(&arr, &c->cap_pairs, c->n_pairs + 1,
			      sizeof(*c->pairs)))
			return PWB_ENOMEM;
		c->pairs = arr;
	}
	c->pairs[c->n_pairs++] = (tpair){u, ord, a, b};
	return PWB_OK;
}

static pwb_status train_pair(evalctx *c, int32_t u, uint32_t ord, uint32_t a,
			     uint32_t b, pwb_prefs_eval_result *res)
{
	unpack(&c->pl, &c->texts[a], &c->fa);
	unpack(&c->pl, &c->texts[b], &c->fb);
	const char *id = u >= 0 && c->users[u].evaluated ? c->users[u].id : "";
	pwb_status st =
	    pwb_prefs_update_pair(c->m, id, &c->fa, &c->fb, ubounds(c, u));
	/* A member's choice also teaches their cohort (from a few events
	 * on: a user who trains the population alone counts too). */
	if (!st && u >= 0 && c->users[u].cohort)
		st = pwb_prefs_update_cohort_pair(
		    c->m, c->users[u].cohort, &c->fa, &c->fb, ubounds(c, u));
	if (st)
		return st;
	res->n_train_pairs++;
	if (u >= 0 && c->users[u].evaluated && !c->train_only && !c->cv)
		return keep_pair(c, u, ord, a, b);
	return PWB_OK;
}

/*
 * Ratings of one user become pairs with up to `max` of the user's other
 * ratings in the same part (earlier ones for training, later ones for
 * testing); equal ratings (ties) are dropped.
 */
typedef pwb_status (*pair_fn)(evalctx *c, int32_t u, uint32_t ord, uint32_t a,
			      uint32_t b, void *arg);

static pwb_status rating_pairs(evalctx *c, const ev *list, size_t n, size_t k,
			       bool earlier, size_t max, pair_fn fn, void *arg,
			       size_t *ties)
{
	const pwb_feedback *e = fb(c, &list[k]);
	double r = norm_rating(e);
	size_t made = 0;
	for (size_t step = 1; made < max; step++) {
		size_t j;
		if (earlier) {
			if (step > k)
				break;
			j = k - step;
		} else {
			if (k + step >= n)
				break;
			j = k + step;
		}
		const pwb_feedback *o = fb(c, &list[j]);
		if (o->kind != PWB_FEEDBACK_RATING)
			continue;
		double ro = norm_rating(o);
		if (ro == r) {
			(*ties)++;
			continue;
		}
		uint32_t a = list[k].text, b = list[j].text;
		if (ro > r) {
			uint32_t t = a;
			a = b;
			b = t;
		}
		pwb_status st = fn(c, list[k].user, list[k].ord, a, b, arg);
		if (st)
			return st;
		made++;
	}
	return PWB_OK;
}

static pwb_status train_cb(evalctx *c, int32_t u, uint32_t ord, uint32_t a,
			   uint32_t b, void *arg)
{
	return train_pair(c, u, ord, a, b, arg);
}

/* Accuracy counts of one user's test pairs, per scorer. */
typedef struct tally {
	double right[3];
	size_t n;
} tally;

static void score_pair(evalctx *c, int32_t u, uint32_t a, uint32_t b, tally *t,
		       bool personal_only)
{
	unpack(&c->pl, &c->texts[a], &c->fa);
	unpack(&c->pl, &c->texts[b], &c->fb);
	static const pwb_prefs_scorer how[3] = {
	    PWB_PREFS_PERSONAL, PWB_PREFS_POPULATION, PWB_PREFS_EXPLICIT};
	const char *id = u >= 0 ? c->users[u].id : NULL;
	const char *co = u >= 0 && c->cohorts ? c->users[u].cohort : NULL;
	for (int k = 0; k < (personal_only ? 1 : 3); k++) {
		double sa, sb;
		pwb_prefs_score_cohort(c->m, id, co, &c->fa, 1, ubounds(c, u),
				       how[k], &sa);
		pwb_prefs_score_cohort(c->m, id, co, &c->fb, 1, ubounds(c, u),
				       how[k], &sb);
		t->right[k] += sa > sb ? 1 : sa == sb ? 0.5 : 0;
	}
	t->n++;
}

typedef struct test_arg {
	tally *t;
	bool personal_only;
} test_arg;

static pwb_status test_cb(evalctx *c, int32_t u, uint32_t ord, uint32_t a,
			  uint32_t b, void *arg)
{
	test_arg *ta = arg;
	score_pair(c, u, a, b, ta->t, ta->personal_only);
	return PWB_OK;
}

/* Scores the test events of list[0..n) (one user's, in time order). */
static pwb_status test_user(evalctx *c, const ev *list, size_t n,
			    bool personal_only, tally *t, size_t *ties)
{
	test_arg ta = {t, personal_only};
	for (size_t k = 0; k < n; k++) {
		const pwb_feedback *e = fb(c, &list[k]);
		if (e->kind == PWB_FEEDBACK_PAIR) {
			score_pair(c, list[k].user, list[k].text,
				   list[k].text + 1, t, personal_only);
			continue;
		}
		pwb_status st =
		    rating_pairs(c, list, n, k, false, 2 * c->p->rating_pairs,
				 test_cb, &ta, ties);
		if (st)
			return st;
	}
	return PWB_OK;
}

/* ---- bootstrap ---- */

static int cmp_double(const void *x, const void *y)
{
	double a = *(const double *)x, b = *(const double *)y;
	return a < b ? -1 : a > b;
}

/* The mean of v[0..n) and a 95 % percentile bootstrap interval. */
static pwb_status bootstrap(const double *v, size_t n, size_t reps,
			    uint64_t seed, pwb_prefs_ci *out)
{
	memset(out, 0, sizeof(*out));
	out->n = n;
	if (!n)
		return PWB_OK;
	double sum = 0;
	for (size_t k = 0; k < n; k++)
		sum += v[k];
	out->mean = sum / (double)n;
	out->lo = out->hi = out->mean;
	if (!reps || n < 2)
		return PWB_OK;
	double *means = pwb__malloc(reps * sizeof(*means));
	if (!means)
		return PWB_ENOMEM;
	uint64_t s = seed;
	for (size_t r = 0; r < reps; r++) {
		double m = 0;
		for (size_t k = 0; k < n; k++)
			m += v[pwb__rng_next(&s) % n];
		means[r] = m / (double)n;
	}
	qsort(means, reps, sizeof(*means), cmp_double);
	out->lo = means[(size_t)(0.025 * (double)(reps - 1))];
	out->hi = means[(size_t)(0.975 * (double)(reps - 1))];
	free(means);
	return PWB_OK;
}

/* ---- the whole evaluation, step by step ---- */

/* Checks the evaluation's parameters; training holds nothing out and
 * personalises every user, whatever their number of events. */
static pwb_status check_params(pwb_prefs_eval_params *p, bool train_only,
			       pwb_diag *diag)
{
	if (train_only) {
		p->min_user_events = 1;
		return PWB_OK;
	}
	if (!(p->test_fraction > 0 && p->test_fraction < 1)) {
		pwb_diag_add(diag, NULL, 0, 0,
			     "evaluation parameters: test_fraction %g is not "
			     "between 0 and 1",
			     p->test_fraction);
		return PWB_EINVAL;
	}
	if (p->min_user_events < 2) {
		pwb_diag_add(diag, NULL, 0, 0,
			     "evaluation parameters: min_user_events %zu is "
			     "below 2",
			     p->min_user_events);
		return PWB_EINVAL;
	}
	if (p->bootstrap > 1000000) {
		pwb_diag_add(diag, NULL, 0, 0,
			     "evaluation parameters: bootstrap %zu is over "
			     "the limit of 1000000 resamples",
			     p->bootstrap);
		return PWB_EINVAL;
	}
	return PWB_OK;
}

/* One user's part of the split, their events from c->evs[k] on: the last
 * test_fraction (at least one) held out when they are evaluated, and their
 * bounds asked for. Returns their number of events. */
static size_t split_user(evalctx *c, size_t k, pwb_prefs_eval_result *res)
{
	const pwb_prefs_eval_params *p = c->p;
	euser *eu = &c->users[c->evs[k].user];
	eu->first = k;
	eu->evaluated = eu->n >= p->min_user_events;
	size_t n_test = 0;
	if (eu->evaluated && !c->train_only) {
		n_test = (size_t)floor((double)eu->n * p->test_fraction);
		if (!n_test)
			n_test = 1;
		res->n_users++;
	} else {
		res->n_population_users++;
	}
	eu->n_train = eu->n - n_test;
	for (size_t j = 0; j < eu->n; j++) {
		c->evs[k + j].test = j >= eu->n_train;
		c->evs[k + j].ord = (uint32_t)j;
	}
	if (eu->evaluated && p->user_bounds) {
		eu->has_bounds = p->user_bounds(p->ctx, eu->id, &eu->bounds);
		/* An evaluation replays feedback someone chose to give for
		 * it: taken as given with consent. */
		eu->bounds.consented = true;
	}
	if (eu->has_bounds)
		res->n_users_with_settings++;
	return eu->n;
}

/* The split: each evaluated user's last events are held out. Without any
 * evaluated user, the anonymous events are split the same way for the
 * population. */
static void split(evalctx *c, pwb_prefs_eval_result *res)
{
	const pwb_prefs_eval_params *p = c->p;
	for (size_t u = 0; u < c->n_users; u++)
		if (c->users[u].n >= p->min_user_events)
			c->any_eval = true;
	while (c->n_anon < c->n && c->evs[c->n_anon].user < 0)
		c->n_anon++;
	res->n_anonymous_events = c->n_anon;
	if (!c->any_eval && c->n_anon >= p->min_user_events && !c->train_only) {
		size_t n_test =
		    (size_t)floor((double)c->n_anon * p->test_fraction);
		if (!n_test)
			n_test = 1;
		for (size_t j = c->n_anon - n_test; j < c->n_anon; j++)
			c->evs[j].test = true;
	}
	for (size_t k = c->n_anon; k < c->n;)
		k += split_user(c, k, res);
	res->n_events = c->n;
}

/* Training: every training event of everyone, in time order, one online
 * update each (a rating paired with the user's earlier ones). */
static pwb_status train_all(evalctx *c, pwb_prefs_eval_result *res)
{
	ev **order = pwb__malloc((c->n ? c->n : 1) * sizeof(*order));
	if (!order)
		return PWB_ENOMEM;
	size_t n_train = 0;
	for (size_t j = 0; j < c->n; j++)
		if (!c->evs[j].test && !(c->cv && c->evs[j].val))
			order[n_train++] = &c->evs[j];
	qsort(order, n_train, sizeof(*order), cmp_time);
	pwb_status st = PWB_OK;
	for (size_t j = 0; j < n_train && !st; j++) {
		ev *v = order[j];
		const pwb_feedback *e = fb(c, v);
		if (e->kind == PWB_FEEDBACK_PAIR) {
			st = train_pair(c, v->user, v->ord, v->text,
					v->text + 1, res);
		} else if (v->user >= 0) {
			/* The user's events are contiguous in c->evs, in
			 * time order; pair with earlier training ones. */
			euser *eu = &c->users[v->user];
			st = rating_pairs(c, &c->evs[eu->first], v->ord + 1,
					  v->ord, true, c->p->rating_pairs,
					  train_cb, res, &res->n_ties_dropped);
		} else {
			res->n_unpaired_ratings++;
		}
		if (!st)
			tick(c);
	}
	free(order);
	return st;
}

/* Rows of c->vals, each n_users + 1 long: per tested user, the accuracy
 * of each scorer, personal minus population, and whether that is a win,
 * a tie or a loss (1 or 0). The learning curve reuses the first rows. */
enum {
	ROW_PERSONAL,
	ROW_POPULATION,
	ROW_EXPLICIT,
	ROW_GAIN,
	ROW_WIN,
	ROW_TIE,
	ROW_LOSS,
	N_ROWS
};

/* ---- the choice of the shrinkage, by cross-validation across users ---- */

/* Two accuracies closer than this are a tie: they are sums of halves
 * over the same counts. */
#define TIE_EPS 1e-9

/* Correct orders of one user's held-back pairs, for each k of the grid. */
typedef struct cv_tally {
	double right[PWB_PREFS_SHRINK_GRID_N];
	double loglik[PWB_PREFS_SHRINK_GRID_N];
	size_t n;
} cv_tally;

static pwb_status cv_cb(evalctx *c, int32_t u, uint32_t ord, uint32_t a,
			uint32_t b, void *arg)
{
	(void)ord;
	cv_tally *t = arg;
	unpack(&c->pl, &c->texts[a], &c->fa);
	unpack(&c->pl, &c->texts[b], &c->fb);
	const char *id = c->users[u].id;
	const char *co = c->cohorts ? c->users[u].cohort : NULL;
	for (int g = 0; g < PWB_PREFS_SHRINK_GRID_N; g++) {
		double sa, sb;
		c->m->p.shrink_k = pwb_prefs_shrink_grid[g];
		pwb_prefs_score_cohort(c->m, id, co, &c->fa, 1, ubounds(c, u),
				       PWB_PREFS_PERSONAL, &sa);
		pwb_prefs_score_cohort(c->m, id, co, &c->fb, 1, ubounds(c, u),
				       PWB_PREFS_PERSONAL, &sb);
		t->right[g] += sa > sb ? 1 : sa == sb ? 0.5 : 0;
		/* log σ(sa − sb), computed without overflow */
		double d = sa - sb;
		t->loglik[g] += d > 0 ? -log1p(exp(-d)) : d - log1p(exp(d));
	}
	t->n++;
	return PWB_OK;
}

/* Scores one user's held-back events list[0..n) for every k. */
static pwb_status cv_user(evalctx *c, const ev *list, size_t n, cv_tally *t)
{
	size_t ties = 0;
	for (size_t k = 0; k < n; k++) {
		pwb_status st;
		if (fb(c, &list[k])->kind == PWB_FEEDBACK_PAIR)
			st = cv_cb(c, list[k].user, list[k].ord, list[k].text,
				   list[k].text + 1, t);
		else
			st = rating_pairs(c, list, n, k, false,
					  2 * c->p->rating_pairs, cv_cb, t,
					  &ties);
		if (st)
			return st;
	}
	return PWB_OK;
}

/* Holds back the last test_fraction (at least one) of the training
 * events of each user who has cv_min of them or more; returns the number
 * of such users. */
static size_t hold_back(evalctx *c)
{
	size_t n_cv = 0;
	for (size_t u = 0; u < c->n_users; u++) {
		euser *eu = &c->users[u];
		if (!eu->evaluated || eu->n_train < c->cv_min)
			continue;
		size_t n_val =
		    (size_t)floor((double)eu->n_train * c->p->test_fraction);
		if (!n_val)
			n_val = 1;
		for (size_t j = eu->n_train - n_val; j < eu->n_train; j++)
			c->evs[eu->first + j].val = true;
		eu->in_cv = true;
		n_cv++;
	}
	return n_cv;
}

/* How many standard errors a personalised k must beat the population
 * by, on the held-back events, to be used at all. */
#define CV_Z 2.0

/* The mean over n users of acc[u * G + a] − acc[u * G + b], and the
 * standard error of that mean. */
static double paired(const double *acc, size_t n, int a, int b, double *se)
{
	enum { G = PWB_PREFS_SHRINK_GRID_N };
	double m = 0, ss = 0;
	for (size_t u = 0; u < n; u++)
		m += acc[u * G + (size_t)a] - acc[u * G + (size_t)b];
	m /= (double)n;
	for (size_t u = 0; u < n; u++) {
		double x = acc[u * G + (size_t)a] - acc[u * G + (size_t)b] - m;
		ss += x * x;
	}
	*se = n > 1 ? sqrt(ss / (double)(n - 1) / (double)n) : 0;
	return m;
}

/*
 * The k of the grid to use, from the per-user mean log-likelihoods
 * acc[u * G + g] of n users' held-back pairs, log σ(score(preferred) −
 * score(other)) (their means over users go to mean[g]). The
 * log-likelihood, not the accuracy, because it counts how confidently
 * each order is given, not only which: far less noisy on a few events
 * per user, where most orders do not change with k. Personalising must earn its
 * place: unless the best k beats the population alone (k infinite) by
 * more than CV_Z standard errors of the per-user differences, the
 * population it is. Otherwise the largest k whose mean is within one
 * standard error of the best (the "one standard error" rule of model
 * selection): a smaller k moves users further from the population, and
 * is taken only where the held-back events show it is better by more
 * than their noise.
 */
static int pick_k(const double *acc, size_t n, double *mean)
{
	enum { G = PWB_PREFS_SHRINK_GRID_N };
	int best = G - 1;
	for (int g = G - 1; g >= 0; g--) {
		double m = 0;
		for (size_t u = 0; u < n; u++)
			m += acc[u * G + (size_t)g];
		mean[g] = m / (double)n;
		if (mean[g] > mean[best] + TIE_EPS)
			best = g;
	}
	double se;
	double gain = paired(acc, n, best, G - 1, &se);
	if (!(gain > CV_Z * se + TIE_EPS))
		return G - 1;
	for (int g = G - 1; g > best; g--)
		if (paired(acc, n, g, best, &se) >= -se - TIE_EPS)
			return g;
	return best;
}

/*
 * The shrinkage strength: the given one, or the k of the grid chosen by
 * pick_k() from the users' held-back training events (two users or
 * more with a held-back pair; with fewer, the model's default stands),
 * scored by a model of its own learnt from everything else before them.
 * The test events are never seen. Without any user to hold events back
 * from, the model's default stands.
 */
static pwb_status choose_shrink(evalctx *c, pwb_prefs_eval_result *res,
				pwb_diag *diag)
{
	const pwb_prefs_eval_params *p = c->p;
	res->shrink_k = p->shrink_k >= 0 ? p->shrink_k : p->model.shrink_k;
	if (p->shrink_k >= 0)
		return PWB_OK;
	size_t n_cv = hold_back(c);
	if (!n_cv)
		return PWB_OK;
	pwb_prefs_model *full = c->m;
	pwb_prefs_eval_result scratch = {0};
	pwb_status st = pwb_prefs_model_new(&c->m, &p->model, diag);
	double *ll = pwb__calloc(n_cv * PWB_PREFS_SHRINK_GRID_N, sizeof(*ll));
	if (st || !ll) {
		free(ll);
		pwb_prefs_model_free(c->m);
		c->m = full;
		return st ? st : PWB_ENOMEM;
	}
	c->cv = true;
	st = train_all(c, &scratch);
	size_t n_users = 0;
	for (size_t u = 0; u < c->n_users && !st; u++) {
		euser *eu = &c->users[u];
		if (!eu->in_cv)
			continue;
		size_t n_val = 0;
		while (n_val < eu->n_train &&
		       c->evs[eu->first + eu->n_train - 1 - n_val].val)
			n_val++;
		cv_tally t = {{0}, {0}, 0};
		st = cv_user(c, &c->evs[eu->first + eu->n_train - n_val], n_val,
			     &t);
		if (st || !t.n)
			continue;
		for (int g = 0; g < PWB_PREFS_SHRINK_GRID_N; g++) {
			ll[n_users * PWB_PREFS_SHRINK_GRID_N + (size_t)g] =
			    t.loglik[g] / (double)t.n;
			res->cv_accuracy[g] += t.right[g] / (double)t.n;
		}
		n_users++;
	}
	c->cv = false;
	for (size_t k = 0; k < c->n; k++)
		c->evs[k].val = false;
	pwb_prefs_model_free(c->m);
	c->m = full;
	res->cv_n = n_users;
	if (!st && n_users) {
		for (int g = 0; g < PWB_PREFS_SHRINK_GRID_N; g++)
			res->cv_accuracy[g] /= (double)n_users;
		int best = pick_k(ll, n_users, res->cv_log_likelihood);
		/* A standard error over users needs two of them: with one,
		 * the default stands. */
		if (n_users >= 2) {
			res->shrink_k = pwb_prefs_shrink_grid[best];
			res->shrink_by_cv = true;
		}
	}
	free(ll);
	return st;
}

/* Testing, user by user: each evaluated user's numbers go to c->vals,
 * then to the bootstrap. */
static pwb_status test_users(evalctx *c, pwb_prefs_eval_result *res)
{
	size_t row = c->n_users + 1;
	c->vals = pwb__calloc(row, N_ROWS * sizeof(*c->vals));
	if (!c->vals)
		return PWB_ENOMEM;
	pwb_status st;
	size_t n_eval = 0;
	for (size_t u = 0; u < c->n_users; u++) {
		euser *eu = &c->users[u];
		if (!eu->evaluated)
			continue;
		size_t nt = eu->n - eu->n_train;
		tally t = {0};
		if ((st = test_user(c, &c->evs[eu->first + eu->n_train], nt,
				    false, &t, &res->n_ties_dropped)))
			return st;
		for (size_t j = 0; j < nt; j++)
			tick(c);
		eu->n_test = t.n;
		res->n_test_pairs += t.n;
		if (!t.n)
			continue;
		for (int s = 0; s < 3; s++)
			c->vals[s * row + n_eval] = t.right[s] / (double)t.n;
		double gain = (t.right[0] - t.right[1]) / (double)t.n;
		int out = gain > TIE_EPS    ? ROW_WIN
			  : gain < -TIE_EPS ? ROW_LOSS
					    : ROW_TIE;
		c->vals[ROW_GAIN * row + n_eval] = gain;
		c->vals[(size_t)out * row + n_eval] = 1;
		res->wins += out == ROW_WIN;
		res->ties += out == ROW_TIE;
		res->losses += out == ROW_LOSS;
		res->n_users_in_cohorts += eu->cohort != NULL;
		n_eval++;
	}
	res->n_users_tested = n_eval;
	pwb_prefs_ci *ci[N_ROWS] = {
	    &res->personal,  &res->population, &res->explicit_only, &res->gain,
	    &res->win_share, &res->tie_share,  &res->loss_share};
	/* The same seed for every row: each resample draws the same users,
	 * so the intervals of the shares and the gain agree. */
	for (int s = 0; s < N_ROWS; s++)
		if ((st = bootstrap(
			 c->vals + (size_t)s * row, n_eval, c->p->bootstrap,
			 c->p->seed + (uint64_t)(s < 3 ? s : 3), ci[s])))
			return st;
	return PWB_OK;
}

/* Without any evaluated user, the anonymous held-out pairs: the population
 * model alone, bootstrapped over pairs. */
static pwb_status test_anonymous(evalctx *c, pwb_prefs_eval_result *res)
{
	if (c->any_eval || !c->n_anon)
		return PWB_OK;
	tally t = {0};
	size_t cap = 0;
	double *pv = NULL;
	for (size_t j = 0; j < c->n_anon; j++) {
		ev *v = &c->evs[j];
		if (!v->test || fb(c, v)->kind != PWB_FEEDBACK_PAIR)
			continue;
		double before = t.right[1];
		score_pair(c, -1, v->text, v->text + 1, &t, false);
		void *arr = pv;
		if (pwb__grow(&arr, &cap, t.n, sizeof(double))) {
			free(pv);
			return PWB_ENOMEM;
		}
		pv = arr;
		pv[t.n - 1] = t.right[1] - before;
		tick(c);
	}
	res->n_anonymous_test_pairs = t.n;
	pwb_status st = bootstrap(pv, t.n, c->p->bootstrap, c->p->seed + 7,
				  &res->anonymous_population);
	free(pv);
	return st;
}

/* The kept training pairs indexed by user: user u's, in their order, are
 * by_user[by_start[u] .. by_start[u + 1]), so that the learning curve is
 * linear in the pairs, not users × pairs. */
static pwb_status index_pairs(const evalctx *c, size_t **by_start_out,
			      size_t **by_user_out)
{
	size_t *by_start = pwb__calloc(c->n_users + 1, sizeof(*by_start));
	size_t *by_user =
	    pwb__malloc((c->n_pairs ? c->n_pairs : 1) * sizeof(*by_user));
	if (!by_start || !by_user) {
		free(by_start);
		free(by_user);
		return PWB_ENOMEM;
	}
	for (size_t pi = 0; pi < c->n_pairs; pi++)
		if (c->pairs[pi].user >= 0)
			by_start[c->pairs[pi].user + 1]++;
	for (size_t u = 0; u < c->n_users; u++)
		by_start[u + 1] += by_start[u];
	for (size_t pi = 0, *fill = by_start; pi < c->n_pairs; pi++)
		if (c->pairs[pi].user >= 0)
			by_user[fill[c->pairs[pi].user]++] = pi;
	/* fill moved each start to the next user's: shift them back. */
	for (size_t u = c->n_users; u > 0; u--)
		by_start[u] = by_start[u - 1];
	by_start[0] = 0;
	*by_start_out = by_start;
	*by_user_out = by_user;
	return PWB_OK;
}

/* Point q of the learning curve: each evaluated user with k training
 * events or more gets their deviation relearnt from their first k only,
 * against the final population model, and is tested on the same held-out
 * events, by the personalised and by the population model (rows of
 * c->vals reused); with cohorts, a member is also tested with their
 * cohort's prior and without it. */
static pwb_status curve_point(evalctx *c, int q, const size_t *by_start,
			      const size_t *by_user, pwb_prefs_eval_result *res)
{
	size_t kk = pwb_prefs_curve_points[q], nu = 0, nc = 0;
	size_t row = c->n_users + 1;
	double *v = c->vals;
	res->curve_k[q] = kk;
	pwb_status st;
	bool with_cohorts = c->cohorts;
	for (size_t u = 0; u < c->n_users; u++) {
		euser *eu = &c->users[u];
		if (!eu->evaluated || !eu->n_test || eu->n_train < kk)
			continue;
		pwb_prefs_reset(c->m, eu->id, NULL);
		for (size_t j = by_start[u]; j < by_start[u + 1]; j++) {
			tpair *tp = &c->pairs[by_user[j]];
			if (tp->ord >= kk)
				continue;
			unpack(&c->pl, &c->texts[tp->a], &c->fa);
			unpack(&c->pl, &c->texts[tp->b], &c->fb);
			if ((st = pwb__prefs_update(
				 c->m, eu->id, &c->fa, &c->fb,
				 ubounds(c, tp->user), false)))
				return st;
		}
		const ev *list = &c->evs[eu->first + eu->n_train];
		size_t nt = eu->n - eu->n_train, ties = 0;
		tally t = {0}, tb = {0};
		st = test_user(c, list, nt, false, &t, &ties);
		if (!st && with_cohorts && eu->cohort) {
			c->cohorts = false; /* the same user, without it */
			st = test_user(c, list, nt, true, &tb, &ties);
			c->cohorts = true;
		}
		if (st)
			return st;
		if (!t.n)
			continue;
		v[ROW_PERSONAL * row + nu] = t.right[0] / (double)t.n;
		v[ROW_POPULATION * row + nu] = t.right[1] / (double)t.n;
		nu++;
		if (with_cohorts && eu->cohort) {
			v[ROW_GAIN * row + nc] = t.right[0] / (double)t.n;
			v[ROW_WIN * row + nc] = tb.right[0] / (double)tb.n;
			nc++;
		}
	}
	uint64_t seed = c->p->seed + 11 + (uint64_t)q;
	size_t reps = c->p->bootstrap;
	if ((st = bootstrap(v + ROW_PERSONAL * row, nu, reps, seed,
			    &res->curve[q])) ||
	    (st = bootstrap(v + ROW_POPULATION * row, nu, reps, seed,
			    &res->curve_population[q])) ||
	    (st = bootstrap(v + ROW_GAIN * row, nc, reps, seed,
			    &res->cohort_curve[q])))
		return st;
	return bootstrap(v + ROW_WIN * row, nc, reps, seed,
			 &res->cohort_base[q]);
}

/* The learning curve, point by point. */
static pwb_status learning_curve(evalctx *c, pwb_prefs_eval_result *res)
{
	size_t *by_start = NULL, *by_user = NULL;
	pwb_status st = index_pairs(c, &by_start, &by_user);
	for (int q = 0; q < PWB_PREFS_CURVE_N && !st; q++)
		st = curve_point(c, q, by_start, by_user, res);
	free(by_start);
	free(by_user);
	return st;
}

/* Why nothing could be tested, in words, as an error naming the file:
 * an evaluation never ends in a silent zero. */
static pwb_status nothing_tested(const evalctx *c,
				 const pwb_prefs_eval_result *res,
				 size_t test_ties, const char *name,
				 pwb_diag *diag)
{
	size_t most = 0;
	for (size_t u = 0; u < c->n_users; u++)
		if (c->users[u].n > most)
			most = c->users[u].n;
	if (!c->n)
		pwb_diag_add(diag, name, 0, 0,
			     "nothing to evaluate: the file holds no feedback "
			     "events");
	else if (res->n_users && test_ties)
		pwb_diag_add(diag, name, 0, 0,
			     "nothing to evaluate: every held-out rating ties "
			     "with the same user's other held-out ones (%zu "
			     "ties dropped), so no held-out pair is left",
			     test_ties);
	else if (res->n_users)
		pwb_diag_add(diag, name, 0, 0,
			     "nothing to evaluate: the held-out events make no "
			     "pair (a held-out rating pairs only with the same "
			     "user's other held-out ratings)");
	else
		pwb_diag_add(
		    diag, name, 0, 0,
		    "nothing to evaluate: no user has the %zu events a user "
		    "needs to be evaluated (the most is %zu), and %zu "
		    "anonymous events are too few for a population test "
		    "(%zu needed)",
		    c->p->min_user_events, most, c->n_anon,
		    c->p->min_user_events);
	return PWB_ENOTFOUND;
}

/* Frees what an evaluation holds, and its model unless handed out. */
static void evalctx_release(evalctx *c)
{
	free(c->vals);
	free(c->evs);
	for (size_t u = 0; c->users && u < c->n_users; u++)
		free(c->users[u].cohort);
	free(c->users);
	free(c->texts);
	free(c->pairs);
	free(c->pl.idx);
	free(c->pl.val);
	pwb_prefs_model_free(c->m);
}

/* The evaluation, or (train_only) training on every event, everyone
 * personalised, with the model handed out through *model. */
static pwb_status run(pwb_prefs_eval_result *res, const pwb_feedback_set *set,
		      const char *name, const pwb_prefs_eval_params *params,
		      pwb_diag *diag, bool train_only, pwb_prefs_model **model)
{
	if (!res || !set) {
		pwb_diag_add(diag, name, 0, 0,
			     "no feedback, or no place for the results");
		return PWB_EINVAL;
	}
	memset(res, 0, sizeof(*res));
	pwb_prefs_eval_params p =
	    params ? *params : pwb_prefs_eval_default_params();
	/* Training holds nothing out and personalises everyone: the choice
	 * of the shrinkage takes the users an evaluation would test. */
	size_t cv_min =
	    !train_only || p.min_user_events < 2 ? 2 : p.min_user_events;
	pwb_status st = check_params(&p, train_only, diag);
	if (!st)
		st = pwb_prefs_check_duplicates(set, name, diag);
	if (st)
		return st;
	evalctx c = {0};
	c.set = set;
	c.p = &p;
	c.train_only = train_only;
	c.cv_min = cv_min;
	c.n = pwb_feedback_n(set);
	/* Features of each event, training for the choice of the shrinkage
	 * and for the model, testing. */
	c.total = 4 * c.n;
	size_t mark = pwb__diag_mark(diag);
	if ((st = pwb_prefs_model_new(&c.m, &p.model, diag)) ||
	    (st = group(&c, diag, name)) || (st = find_cohorts(&c)) ||
	    (st = compute_features(&c, diag, name)))
		goto out;
	split(&c, res);
	if ((st = choose_shrink(&c, res, diag)))
		goto out;
	c.m->p.shrink_k = res->shrink_k;
	if ((st = train_all(&c, res)))
		goto out;
	res->n_cohorts = pwb_prefs_n_cohorts(c.m);
	if (train_only) {
		res->n_users = c.n_users;
		*model = c.m;
		c.m = NULL;
		goto out;
	}
	size_t train_ties = res->n_ties_dropped;
	if ((st = test_users(&c, res)) || (st = test_anonymous(&c, res)))
		goto out;
	if (!res->n_users_tested && !res->n_anonymous_test_pairs) {
		st = nothing_tested(&c, res, res->n_ties_dropped - train_ties,
				    name, diag);
		goto out;
	}
	if ((st = learning_curve(&c, res)))
		goto out;
	if (p.progress)
		p.progress(p.ctx, c.total, c.total);
out:
	/* A failure without a message of its own (out of memory, mostly)
	 * is named here: none goes without one. */
	if (st && pwb__diag_mark(diag) == mark)
		pwb_diag_add(diag, name, 0, 0, "%s", pwb_status_str(st));
	evalctx_release(&c);
	return st;
}

pwb_status pwb_prefs_evaluate(pwb_prefs_eval_result *res,
			      const pwb_feedback_set *set, const char *name,
			      const pwb_prefs_eval_params *p, pwb_diag *diag)
{
	return run(res, set, name, p, diag, false, NULL);
}

pwb_status pwb_prefs_train(pwb_prefs_model **out, pwb_prefs_eval_result *res,
			   const pwb_feedback_set *set, const char *name,
			   const pwb_prefs_eval_params *p, pwb_diag *diag)
{
	if (!out) {
		pwb_diag_add(diag, name, 0, 0, "no place for the model");
		return PWB_EINVAL;
	}
	*out = NULL;
	pwb_prefs_eval_result tmp;
	return run(res ? res : &tmp, set, name, p, diag, true, out);
}
