/*
 * evaluate.c - `pwb eval prefs`: a chronological split per user, the
 * learner trained online on the past, pairwise accuracy on the future of
 * (a) the population model, (b) the personalised model and (c) explicit
 * settings alone, with bootstrap confidence intervals over users and a
 * learning curve (docs/prefs.md).
 *
 * The file reads in the order data flows: duplicate checks, features of
 * every text, grouping and ordering by user, the split, training, testing,
 * the learning curve and the bootstrap.
 */
#include "prefs/prefs_int.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

const size_t pwb_prefs_curve_points[PWB_PREFS_CURVE_N] = {0,  1,  2, 5,
							  10, 20, 50};

pwb_prefs_eval_params pwb_prefs_eval_default_params(void)
{
	pwb_prefs_eval_params p = {0};
	p.model = pwb_prefs_default_params();
	p.test_fraction = 0.3;
	p.min_user_events = 5;
	p.bootstrap = 1000;
	p.seed = 1;
	p.rating_pairs = 8;
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
	uint32_t text; /* first text: chosen or response */
	uint32_t ord;  /* position among the user's training events */
} ev;

typedef struct euser {
	const char *id;
	size_t n;	/* events */
	size_t n_train; /* training events */
	bool evaluated; /* n >= min_user_events */
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
	if (st)
		return st;
	res->n_train_pairs++;
	if (u >= 0 && c->users[u].evaluated && !c->train_only)
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
	for (int k = 0; k < (personal_only ? 1 : 3); k++) {
		double sa, sb;
		pwb_prefs_score(c->m, id, &c->fa, 1, ubounds(c, u), how[k],
				&sa);
		pwb_prefs_score(c->m, id, &c->fb, 1, ubounds(c, u), how[k],
				&sb);
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

/* ---- the whole evaluation ---- */

/* The evaluation, or (train_only) training on every event, everyone
 * personalised, with the model handed out through *model. */
static pwb_status run(pwb_prefs_eval_result *res, const pwb_feedback_set *set,
		      const char *name, const pwb_prefs_eval_params *params,
		      pwb_diag *diag, bool train_only, pwb_prefs_model **model)
{
	if (!res || !set)
		return PWB_EINVAL;
	memset(res, 0, sizeof(*res));
	pwb_prefs_eval_params p =
	    params ? *params : pwb_prefs_eval_default_params();
	if (train_only) {
		p.min_user_events = 1;
	} else if (!(p.test_fraction > 0 && p.test_fraction < 1) ||
		   p.min_user_events < 2 || p.bootstrap > 1000000) {
		return PWB_EINVAL;
	}
	pwb_status st = pwb_prefs_check_duplicates(set, name, diag);
	if (st)
		return st;
	evalctx c = {0};
	c.set = set;
	c.p = &p;
	c.train_only = train_only;
	c.n = pwb_feedback_n(set);
	double *vals = NULL;
	size_t *by_start = NULL, *by_user = NULL;
	ev **order = NULL;
	st = pwb_prefs_model_new(&c.m, &p.model);
	if (st)
		goto out;
	st = PWB_ENOMEM;
	c.evs = pwb__calloc(c.n ? c.n : 1, sizeof(*c.evs));
	order = pwb__malloc((c.n ? c.n : 1) * sizeof(*order));
	if (!c.evs || !order)
		goto out;
	if ((st = group(&c, diag, name)))
		goto out;
	/* Work: features of each event, training, testing. */
	c.total = 3 * c.n;
	if ((st = compute_features(&c, diag, name)))
		goto out;

	/* The split: the last test_fraction of each evaluated user's events
	 * (at least one) are held out. Without any evaluated user, the
	 * anonymous events are split the same way for the population. */
	size_t k = 0;
	bool any_eval = false;
	for (size_t u = 0; u < c.n_users; u++)
		if (c.users[u].n >= p.min_user_events)
			any_eval = true;
	size_t n_anon = 0;
	while (n_anon < c.n && c.evs[n_anon].user < 0)
		n_anon++;
	res->n_anonymous_events = n_anon;
	if (!any_eval && n_anon >= p.min_user_events && !train_only) {
		size_t n_test = (size_t)floor((double)n_anon * p.test_fraction);
		if (!n_test)
			n_test = 1;
		for (size_t j = n_anon - n_test; j < n_anon; j++)
			c.evs[j].test = true;
	}
	for (k = n_anon; k < c.n;) {
		int32_t u = c.evs[k].user;
		euser *eu = &c.users[u];
		eu->first = k;
		eu->evaluated = eu->n >= p.min_user_events;
		size_t n_test = 0;
		if (eu->evaluated && !train_only) {
			n_test = (size_t)floor((double)eu->n * p.test_fraction);
			if (!n_test)
				n_test = 1;
			res->n_users++;
		} else {
			res->n_population_users++;
		}
		eu->n_train = eu->n - n_test;
		for (size_t j = 0; j < eu->n; j++) {
			c.evs[k + j].test = j >= eu->n_train;
			c.evs[k + j].ord = (uint32_t)j;
		}
		if (eu->evaluated && p.user_bounds) {
			eu->has_bounds =
			    p.user_bounds(p.ctx, eu->id, &eu->bounds);
			/* An evaluation replays feedback someone chose to
			 * give for it: taken as given with consent. */
			eu->bounds.consented = true;
		}
		if (eu->has_bounds)
			res->n_users_with_settings++;
		k += eu->n;
	}
	res->n_events = c.n;

	/* Training, in time order over everyone. */
	size_t n_train = 0;
	for (size_t j = 0; j < c.n; j++)
		if (!c.evs[j].test)
			order[n_train++] = &c.evs[j];
	qsort(order, n_train, sizeof(*order), cmp_time);
	for (size_t j = 0; j < n_train; j++) {
		ev *v = order[j];
		const pwb_feedback *e = fb(&c, v);
		if (e->kind == PWB_FEEDBACK_PAIR) {
			st = train_pair(&c, v->user, v->ord, v->text,
					v->text + 1, res);
		} else if (v->user >= 0) {
			/* The user's events are contiguous in c.evs, in
			 * time order; pair with earlier training ones. */
			euser *eu = &c.users[v->user];
			st = rating_pairs(&c, &c.evs[eu->first], v->ord + 1,
					  v->ord, true, p.rating_pairs,
					  train_cb, res, &res->n_ties_dropped);
		} else {
			res->n_unpaired_ratings++;
		}
		if (st)
			goto out;
		tick(&c);
	}

	if (train_only) {
		res->n_users = c.n_users;
		*model = c.m;
		c.m = NULL;
		st = PWB_OK;
		goto out;
	}

	/* Testing, user by user. */
	vals = pwb__calloc(c.n_users + 1, 3 * sizeof(*vals));
	if (!vals) {
		st = PWB_ENOMEM;
		goto out;
	}
	size_t n_eval = 0;
	for (size_t u = 0; u < c.n_users; u++) {
		euser *eu = &c.users[u];
		if (!eu->evaluated)
			continue;
		size_t nt = eu->n - eu->n_train;
		tally t = {0};
		if ((st = test_user(&c, &c.evs[eu->first + eu->n_train], nt,
				    false, &t, &res->n_ties_dropped)))
			goto out;
		for (size_t j = 0; j < nt; j++)
			tick(&c);
		eu->n_test = t.n;
		res->n_test_pairs += t.n;
		if (!t.n)
			continue;
		for (int s = 0; s < 3; s++)
			vals[s * (c.n_users + 1) + n_eval] =
			    t.right[s] / (double)t.n;
		n_eval++;
	}
	res->n_users_tested = n_eval;
	for (int s = 0; s < 3 && !st; s++) {
		pwb_prefs_ci *ci = s == 0   ? &res->personal
				   : s == 1 ? &res->population
					    : &res->explicit_only;
		st = bootstrap(vals + s * (c.n_users + 1), n_eval, p.bootstrap,
			       p.seed + (uint64_t)s, ci);
	}
	if (st)
		goto out;

	/* Anonymous held-out events: the population model alone,
	 * bootstrapped over pairs. */
	if (!any_eval && n_anon) {
		tally t = {0};
		size_t cap = 0;
		double *pv = NULL;
		for (size_t j = 0; j < n_anon; j++) {
			ev *v = &c.evs[j];
			if (!v->test || fb(&c, v)->kind != PWB_FEEDBACK_PAIR)
				continue;
			double before = t.right[1];
			score_pair(&c, -1, v->text, v->text + 1, &t, false);
			void *arr = pv;
			if (pwb__grow(&arr, &cap, t.n, sizeof(double))) {
				free(pv);
				st = PWB_ENOMEM;
				goto out;
			}
			pv = arr;
			pv[t.n - 1] = t.right[1] - before;
			tick(&c);
		}
		res->n_anonymous_test_pairs = t.n;
		st = bootstrap(pv, t.n, p.bootstrap, p.seed + 7,
			       &res->anonymous_population);
		free(pv);
		if (st)
			goto out;
	}

	/* The learning curve: each evaluated user's deviation relearnt from
	 * their first k training events only, against the final population
	 * model, and tested on the same held-out events. The pairs are
	 * indexed by user first (in their order), so that this is linear in
	 * the pairs, not users × pairs. */
	by_start = pwb__calloc(c.n_users + 1, sizeof(*by_start));
	by_user = pwb__malloc((c.n_pairs ? c.n_pairs : 1) * sizeof(*by_user));
	if (!by_start || !by_user) {
		st = PWB_ENOMEM;
		goto out;
	}
	for (size_t pi = 0; pi < c.n_pairs; pi++)
		if (c.pairs[pi].user >= 0)
			by_start[c.pairs[pi].user + 1]++;
	for (size_t u = 0; u < c.n_users; u++)
		by_start[u + 1] += by_start[u];
	for (size_t pi = 0, *fill = by_start; pi < c.n_pairs; pi++)
		if (c.pairs[pi].user >= 0)
			by_user[fill[c.pairs[pi].user]++] = pi;
	/* fill moved each start to the next user's: shift them back. */
	for (size_t u = c.n_users; u > 0; u--)
		by_start[u] = by_start[u - 1];
	by_start[0] = 0;
	for (int q = 0; q < PWB_PREFS_CURVE_N; q++) {
		size_t kk = pwb_prefs_curve_points[q], nu = 0;
		res->curve_k[q] = kk;
		for (size_t u = 0; u < c.n_users; u++) {
			euser *eu = &c.users[u];
			if (!eu->evaluated || !eu->n_test || eu->n_train < kk)
				continue;
			pwb_prefs_reset(c.m, eu->id, NULL);
			for (size_t j = by_start[u]; j < by_start[u + 1]; j++) {
				tpair *tp = &c.pairs[by_user[j]];
				if (tp->ord >= kk)
					continue;
				unpack(&c.pl, &c.texts[tp->a], &c.fa);
				unpack(&c.pl, &c.texts[tp->b], &c.fb);
				if ((st = pwb__prefs_update(
					 c.m, eu->id, &c.fa, &c.fb,
					 ubounds(&c, tp->user), false)))
					goto out;
			}
			size_t nt = eu->n - eu->n_train;
			tally t = {0};
			size_t ties = 0;
			if ((st = test_user(&c, &c.evs[eu->first + eu->n_train],
					    nt, true, &t, &ties)))
				goto out;
			if (t.n)
				vals[nu++] = t.right[0] / (double)t.n;
		}
		if ((st = bootstrap(vals, nu, p.bootstrap,
				    p.seed + 11 + (uint64_t)q, &res->curve[q])))
			goto out;
	}
	if (p.progress)
		p.progress(p.ctx, c.total, c.total);
	st = PWB_OK;
out:
	free(by_start);
	free(by_user);
	free(vals);
	free(order);
	free(c.evs);
	free(c.users);
	free(c.texts);
	free(c.pairs);
	free(c.pl.idx);
	free(c.pl.val);
	pwb_prefs_model_free(c.m);
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
	if (!out)
		return PWB_EINVAL;
	*out = NULL;
	pwb_prefs_eval_result tmp;
	return run(res ? res : &tmp, set, name, p, diag, true, out);
}
