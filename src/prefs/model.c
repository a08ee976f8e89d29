/*
 * model.c - the preference model: population weights w0, per-user sparse
 * deviations Δ_u, FTRL-Proximal updates from pairwise choices, bounded
 * learning, scoring, explanation and reset (docs/prefs.md).
 *
 * The file reads in the order data flows: parameters and the model, the
 * user table, bounds, scoring, updates, then explanation and reset.
 */
#include "prefs/prefs_int.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- parameters and the model ---- */

pwb_prefs_params pwb_prefs_default_params(void)
{
	pwb_prefs_params p = {0};
	p.hash_bits = 18;
	p.max_user_weights = 192;
	p.alpha = 1.0;
	p.user_lr = 0.5;
	p.user_l1 = 0.01;
	p.user_l2 = 1.0;
	p.pop_lr = 0.1;
	p.pop_l1 = 0.0;
	p.pop_l2 = 0.1;
	p.beta = 1.0;
	p.shrink_k = PWB__PREFS_DEFAULT_SHRINK;
	return p;
}

static bool finite_nonneg(double x)
{
	return isfinite(x) && x >= 0;
}

/* The first of the rates and penalties that is out of range, or NULL. */
static const char *bad_rate(const pwb_prefs_params *p)
{
	if (!(p->user_lr > 0) || !isfinite(p->user_lr))
		return "user_lr";
	if (!(p->pop_lr > 0) || !isfinite(p->pop_lr))
		return "pop_lr";
	const struct {
		const char *name;
		double v;
	} nonneg[] = {{"alpha", p->alpha},     {"user_l1", p->user_l1},
		      {"user_l2", p->user_l2}, {"pop_l1", p->pop_l1},
		      {"pop_l2", p->pop_l2},   {"beta", p->beta}};
	for (size_t k = 0; k < PWB_ARRAY_LEN(nonneg); k++)
		if (!finite_nonneg(nonneg[k].v))
			return nonneg[k].name;
	return NULL;
}

#define PARAMS_ERR "preference model parameters: "

/* Whether k is a shrinkage strength: not below 0, INFINITY allowed. */
static bool shrink_ok(double k)
{
	return k >= 0; /* false for NaN */
}

bool pwb__prefs_params_ok(const pwb_prefs_params *p, pwb_diag *diag)
{
	const char *rate;
	if (p->hash_bits < PWB__PREFS_MIN_BITS ||
	    p->hash_bits > PWB__PREFS_MAX_BITS) {
		pwb_diag_add(diag, NULL, 0, 0,
			     PARAMS_ERR "hash_bits %u is not between %u and %u",
			     p->hash_bits, PWB__PREFS_MIN_BITS,
			     PWB__PREFS_MAX_BITS);
		return false;
	}
	if (p->n_categories > PWB_PREFS_MAX_CATEGORIES ||
	    (p->n_categories && !p->categories)) {
		pwb_diag_add(
		    diag, NULL, 0, 0,
		    PARAMS_ERR
		    "n_categories is %zu: at most %d, with their ids in "
		    "categories",
		    p->n_categories, PWB_PREFS_MAX_CATEGORIES);
		return false;
	}
	if (p->n_embed > PWB_PREFS_MAX_EMBED) {
		pwb_diag_add(diag, NULL, 0, 0,
			     PARAMS_ERR "n_embed %zu is over the limit of %d",
			     p->n_embed, PWB_PREFS_MAX_EMBED);
		return false;
	}
	if (p->max_user_weights < 1 ||
	    p->max_user_weights > PWB__PREFS_MAX_USER_WEIGHTS) {
		pwb_diag_add(diag, NULL, 0, 0,
			     PARAMS_ERR
			     "max_user_weights %zu is not between 1 and %u",
			     p->max_user_weights, PWB__PREFS_MAX_USER_WEIGHTS);
		return false;
	}
	if (!shrink_ok(p->shrink_k)) {
		pwb_diag_add(diag, NULL, 0, 0,
			     PARAMS_ERR "shrink_k must be 0 or more (or "
					"infinite)");
		return false;
	}
	if ((rate = bad_rate(p))) {
		pwb_diag_add(
		    diag, NULL, 0, 0,
		    PARAMS_ERR
		    "%s must be a finite number, above 0 for a rate and "
		    "not below 0 otherwise",
		    rate);
		return false;
	}
	for (size_t k = 0; k < p->n_categories; k++) {
		const char *c = p->categories[k];
		if (!c || !*c || strlen(c) > 128) {
			pwb_diag_add(diag, NULL, 0, 0,
				     PARAMS_ERR
				     "category %zu is missing, empty or longer "
				     "than 128 bytes",
				     k + 1);
			return false;
		}
		for (size_t j = 0; j < k; j++)
			if (!strcmp(p->categories[j], c)) {
				pwb_diag_add(diag, NULL, 0, 0,
					     PARAMS_ERR
					     "category '%s' is given twice",
					     c);
				return false;
			}
	}
	return true;
}

pwb_status pwb_prefs_model_new(pwb_prefs_model **out,
			       const pwb_prefs_params *params, pwb_diag *diag)
{
	if (!out) {
		pwb_diag_add(diag, NULL, 0, 0,
			     "no place for the new model (out is NULL)");
		return PWB_EINVAL;
	}
	*out = NULL;
	pwb_prefs_params p = params ? *params : pwb_prefs_default_params();
	if (!pwb__prefs_params_ok(&p, diag))
		return PWB_EINVAL;
	pwb_prefs_model *m = pwb__calloc(1, sizeof(*m));
	if (!m)
		goto fail;
	m->p = p;
	m->p.categories = NULL;
	m->base =
	    PWB__PREFS_CAT0 + (uint32_t)p.n_categories + (uint32_t)p.n_embed;
	m->dim = m->base + ((uint32_t)1 << p.hash_bits);
	if (p.n_categories &&
	    !(m->cat_ids = pwb__calloc(p.n_categories, sizeof(char *))))
		goto fail;
	for (size_t k = 0; k < p.n_categories; k++)
		if (!(m->cat_ids[k] = pwb__strdup(p.categories[k])))
			goto fail;
	m->p.categories = (const char *const *)m->cat_ids;
	m->pop = pwb__calloc(m->dim, sizeof(*m->pop));
	m->n_slots = 16;
	m->slots = pwb__calloc(m->n_slots, sizeof(*m->slots));
	size_t ns = p.max_user_weights + 2 * PWB__PREFS_MAXF;
	m->scratch = pwb__malloc(ns * sizeof(*m->scratch));
	m->scratch_keys = pwb__malloc(ns * sizeof(*m->scratch_keys));
	if (!m->pop || !m->slots || !m->scratch || !m->scratch_keys)
		goto fail;
	*out = m;
	return PWB_OK;
fail:
	pwb_prefs_model_free(m);
	pwb_diag_add(diag, NULL, 0, 0,
		     "out of memory for a preference model of 2^%u buckets",
		     p.hash_bits);
	return PWB_ENOMEM;
}

void pwb__prefs_user_free(pwb__prefs_user *u)
{
	if (!u)
		return;
	free(u->id);
	free(u->e);
	free(u);
}

void pwb_prefs_model_free(pwb_prefs_model *m)
{
	if (!m)
		return;
	for (size_t i = 0; m->slots && i < m->n_slots; i++)
		pwb__prefs_user_free(m->slots[i]);
	free(m->slots);
	for (size_t i = 0; i < m->n_cohorts; i++)
		pwb__prefs_user_free(m->cohorts[i]);
	free(m->cohorts);
	if (m->cat_ids)
		for (size_t k = 0; k < m->p.n_categories; k++)
			free(m->cat_ids[k]);
	free(m->cat_ids);
	free(m->pop);
	free(m->scratch);
	free(m->scratch_keys);
	free(m);
}

const pwb_prefs_params *pwb_prefs_model_params(const pwb_prefs_model *m)
{
	return &m->p;
}

/* ---- the user table ---- */

static size_t slot_of(const pwb_prefs_model *m, const char *id)
{
	uint64_t h = pwb__fnv1a(PWB__FNV_INIT, id, strlen(id));
	size_t mask = m->n_slots - 1, i = (size_t)h & mask;
	while (m->slots[i] && strcmp(m->slots[i]->id, id))
		i = (i + 1) & mask;
	return i;
}

pwb__prefs_user *pwb__prefs_find(const pwb_prefs_model *m, const char *id)
{
	if (!id || !*id)
		return NULL;
	return m->slots[slot_of(m, id)];
}

static bool table_grow(pwb_prefs_model *m)
{
	size_t n = m->n_slots * 2;
	pwb__prefs_user **s = pwb__calloc(n, sizeof(*s));
	if (!s)
		return false;
	pwb__prefs_user **old = m->slots;
	size_t old_n = m->n_slots;
	m->slots = s;
	m->n_slots = n;
	for (size_t i = 0; i < old_n; i++)
		if (old[i])
			m->slots[slot_of(m, old[i]->id)] = old[i];
	free(old);
	return true;
}

pwb__prefs_user *pwb__prefs_add(pwb_prefs_model *m, const char *id)
{
	if (!id || !*id || strlen(id) > PWB__PREFS_MAX_USER_ID)
		return NULL;
	size_t i = slot_of(m, id);
	if (m->slots[i])
		return m->slots[i];
	if ((m->n_users + 1) * 2 > m->n_slots) {
		if (!table_grow(m))
			return NULL;
		i = slot_of(m, id);
	}
	pwb__prefs_user *u = pwb__calloc(1, sizeof(*u));
	if (!u || !(u->id = pwb__strdup(id))) {
		free(u);
		return NULL;
	}
	m->slots[i] = u;
	m->n_users++;
	return u;
}

size_t pwb_prefs_n_users(const pwb_prefs_model *m)
{
	return m->n_users;
}

/* ---- cohorts: a small sorted array ---- */

/* The position of id in the cohorts, or where it would go (*found
 * false). */
static size_t cohort_pos(const pwb_prefs_model *m, const char *id, bool *found)
{
	size_t lo = 0, hi = m->n_cohorts;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(m->cohorts[mid]->id, id);
		if (!c) {
			*found = true;
			return mid;
		}
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	*found = false;
	return lo;
}

pwb__prefs_user *pwb__prefs_cohort_find(const pwb_prefs_model *m,
					const char *id)
{
	if (!id || !*id || !m->n_cohorts)
		return NULL;
	bool found;
	size_t i = cohort_pos(m, id, &found);
	return found ? m->cohorts[i] : NULL;
}

pwb__prefs_user *pwb__prefs_cohort_add(pwb_prefs_model *m, const char *id)
{
	if (!id || !*id || strlen(id) > PWB__PREFS_MAX_USER_ID)
		return NULL;
	bool found;
	size_t i = cohort_pos(m, id, &found);
	if (found)
		return m->cohorts[i];
	if (m->n_cohorts >= PWB__PREFS_MAX_COHORTS)
		return NULL;
	if (m->n_cohorts == m->cap_cohorts) {
		void *arr = m->cohorts;
		if (pwb__grow(&arr, &m->cap_cohorts, m->n_cohorts + 1,
			      sizeof(*m->cohorts)))
			return NULL;
		m->cohorts = arr;
	}
	pwb__prefs_user *u = pwb__calloc(1, sizeof(*u));
	if (!u || !(u->id = pwb__strdup(id))) {
		free(u);
		return NULL;
	}
	memmove(m->cohorts + i + 1, m->cohorts + i,
		(m->n_cohorts - i) * sizeof(*m->cohorts));
	m->cohorts[i] = u;
	m->n_cohorts++;
	return u;
}

size_t pwb_prefs_n_cohorts(const pwb_prefs_model *m)
{
	return m->n_cohorts;
}

bool pwb_prefs_has_cohort(const pwb_prefs_model *m, const char *cohort)
{
	return pwb__prefs_cohort_find(m, cohort) != NULL;
}

bool pwb_prefs_has_user(const pwb_prefs_model *m, const char *user)
{
	return pwb__prefs_find(m, user) != NULL;
}

uint64_t pwb_prefs_user_events(const pwb_prefs_model *m, const char *user)
{
	const pwb__prefs_user *u = pwb__prefs_find(m, user);
	return u ? u->events : 0;
}

size_t pwb_prefs_user_nnz(const pwb_prefs_model *m, const char *user)
{
	const pwb__prefs_user *u = pwb__prefs_find(m, user);
	return u ? u->n : 0;
}

static size_t user_bytes(const pwb_prefs_model *m, const pwb__prefs_user *u)
{
	/* The struct, its id, its entries and its share of the table. */
	return sizeof(*u) + strlen(u->id) + 1 + (size_t)u->cap * sizeof(*u->e) +
	       (m->n_users ? m->n_slots * sizeof(*m->slots) / m->n_users : 0);
}

size_t pwb_prefs_user_bytes(const pwb_prefs_model *m, const char *user)
{
	const pwb__prefs_user *u = pwb__prefs_find(m, user);
	return u ? user_bytes(m, u) : 0;
}

size_t pwb_prefs_model_bytes(const pwb_prefs_model *m)
{
	size_t n = sizeof(*m) + (size_t)m->dim * sizeof(*m->pop) +
		   m->n_slots * sizeof(*m->slots);
	for (size_t i = 0; i < m->n_slots; i++) {
		const pwb__prefs_user *u = m->slots[i];
		if (u)
			n += sizeof(*u) + strlen(u->id) + 1 +
			     (size_t)u->cap * sizeof(*u->e);
	}
	n += m->cap_cohorts * sizeof(*m->cohorts);
	for (size_t i = 0; i < m->n_cohorts; i++) {
		const pwb__prefs_user *u = m->cohorts[i];
		n += sizeof(*u) + strlen(u->id) + 1 +
		     (size_t)u->cap * sizeof(*u->e);
	}
	return n;
}

/* ---- bounds ---- */

void pwb_prefs_bounds_init(pwb_prefs_bounds *b)
{
	memset(b, 0, sizeof(*b));
}

void pwb_prefs_bounds_from_effective(pwb_prefs_bounds *b,
				     const pwb_prefs_model *m,
				     const pwb_effective *e)
{
	pwb_prefs_bounds_init(b);
	for (size_t k = 0; k < m->p.n_categories; k++) {
		const pwb_eff_category *c =
		    pwb_effective_find_category(e, m->p.categories[k]);
		b->category_on[k] = c && c->active;
	}
	for (int k = 0; k < PWB_PREFS_N_DIMS; k++) {
		const pwb_eff_dimension *d =
		    pwb_effective_find_dimension(e, pwb_prefs_dim_name(k));
		if (!d || !d->numeric || d->value_set_by.tier != PWB_TIER_USER)
			continue;
		b->has_target[k] = true;
		b->target[k] = (float)d->value;
	}
	b->needs_consent = pwb_effective_learning(e)->requires_consent;
}

/* ---- scoring ---- */

static const pwb_prefs_bounds no_bounds; /* nothing on, no targets */

/* Whether coordinate i is the score of a category not on for the user. */
static inline bool clamped(const pwb_prefs_model *m, const pwb_prefs_bounds *b,
			   uint32_t i)
{
	return i >= PWB__PREFS_CAT0 &&
	       i < PWB__PREFS_CAT0 + m->p.n_categories &&
	       !b->category_on[i - PWB__PREFS_CAT0];
}

/* Whether coordinate i is a dimension with an explicit target: the
 * stated preference replaces the learned weight there. */
static inline bool targeted(const pwb_prefs_bounds *b, uint32_t i)
{
	return i < PWB_PREFS_N_DIMS && b->has_target[i];
}

static double penalty(const pwb_prefs_model *m, const pwb_prefs_bounds *b,
		      const pwb_prefs_features *f)
{
	double s = 0;
	for (int k = 0; k < PWB_PREFS_N_DIMS; k++)
		if (b->has_target[k])
			s += fabs((double)f->dims[k] - b->target[k]);
	return m->p.alpha * s;
}

/* How much a deviation counts when scoring: n/(n + k) after n pairs,
 * 0 without any (or with k infinite), 1 with k = 0. */
static double evidence(const pwb_prefs_model *m, const pwb__prefs_user *u)
{
	if (!u || !u->events || isinf(m->p.shrink_k))
		return 0;
	double n = (double)u->events;
	return n / (n + m->p.shrink_k);
}

double pwb_prefs_user_weight(const pwb_prefs_model *m, const char *user)
{
	return evidence(m, pwb__prefs_find(m, user));
}

pwb_status pwb_prefs_set_shrink(pwb_prefs_model *m, double k)
{
	if (!m || !shrink_ok(k))
		return PWB_EINVAL;
	m->p.shrink_k = k;
	return PWB_OK;
}

/* (w0 + s Δ)·x over a sparse x sorted by index, with the clamp; Δ may
 * be NULL (population). The loop of every score and update. */
static double dot1(const pwb_prefs_model *m, const pwb__prefs_user *u,
		   double su, const pwb_prefs_bounds *b, const uint32_t *idx,
		   const float *val, uint32_t n)
{
	double s = 0;
	uint32_t j = 0, un = u ? u->n : 0;
	for (uint32_t k = 0; k < n; k++) {
		uint32_t i = idx[k];
		if (targeted(b, i) || PWB_NEVER(i >= m->dim))
			continue;
		double w = m->pop[i].w;
		while (j < un && u->e[j].idx < i)
			j++;
		if (j < un && u->e[j].idx == i)
			w += su * u->e[j].w;
		if (clamped(m, b, i) && w > 0)
			w = 0;
		s += w * val[k];
	}
	return s;
}

/* (w0 + s_u Δ_u + s_c Δ_c)·x: as dot1(), with a cohort's deviation too. */
static double dot2(const pwb_prefs_model *m, const pwb__prefs_user *u,
		   double su, const pwb__prefs_user *c, double sc,
		   const pwb_prefs_bounds *b, const uint32_t *idx,
		   const float *val, uint32_t n)
{
	double s = 0;
	uint32_t j = 0, h = 0;
	for (uint32_t k = 0; k < n; k++) {
		uint32_t i = idx[k];
		if (targeted(b, i) || PWB_NEVER(i >= m->dim))
			continue;
		double w = m->pop[i].w;
		while (j < u->n && u->e[j].idx < i)
			j++;
		if (j < u->n && u->e[j].idx == i)
			w += su * u->e[j].w;
		while (h < c->n && c->e[h].idx < i)
			h++;
		if (h < c->n && c->e[h].idx == i)
			w += sc * c->e[h].w;
		if (clamped(m, b, i) && w > 0)
			w = 0;
		s += w * val[k];
	}
	return s;
}

/* The score's linear part; a deviation with share 0 is not read, so that
 * a user without evidence scores exactly as the population. */
static double dot(const pwb_prefs_model *m, const pwb__prefs_user *u, double su,
		  const pwb__prefs_user *c, double sc,
		  const pwb_prefs_bounds *b, const uint32_t *idx,
		  const float *val, uint32_t n)
{
	if (su == 0)
		u = NULL;
	if (sc == 0)
		c = NULL;
	if (u && c)
		return dot2(m, u, su, c, sc, b, idx, val, n);
	return u ? dot1(m, u, su, b, idx, val, n)
		 : dot1(m, c, sc, b, idx, val, n);
}

void pwb_prefs_score(const pwb_prefs_model *m, const char *user,
		     const pwb_prefs_features *cands, size_t n,
		     const pwb_prefs_bounds *b, pwb_prefs_scorer how,
		     double *scores)
{
	pwb_prefs_score_cohort(m, user, NULL, cands, n, b, how, scores);
}

void pwb_prefs_score_cohort(const pwb_prefs_model *m, const char *user,
			    const char *cohort, const pwb_prefs_features *cands,
			    size_t n, const pwb_prefs_bounds *b,
			    pwb_prefs_scorer how, double *scores)
{
	if (!b)
		b = &no_bounds;
	const pwb__prefs_user *u = NULL, *co = NULL;
	double su = 0, sc = 0;
	if (how == PWB_PREFS_PERSONAL) {
		u = pwb__prefs_find(m, user);
		co = pwb__prefs_cohort_find(m, cohort);
		su = evidence(m, u);
		sc = (1 - su) * evidence(m, co);
	}
	pwb_prefs_bounds pop_b;
	if (how == PWB_PREFS_POPULATION) {
		/* The population model alone: no targets, same clamp. */
		pop_b = *b;
		memset(pop_b.has_target, 0, sizeof(pop_b.has_target));
		b = &pop_b;
	}
	for (size_t c = 0; c < n; c++) {
		const pwb_prefs_features *f = &cands[c];
		if (f->n > PWB__PREFS_MAXF) { /* not made by features_compute */
			scores[c] = -HUGE_VAL;
			continue;
		}
		double s = 0;
		if (how != PWB_PREFS_EXPLICIT)
			s += dot(m, u, su, co, sc, b, f->idx, f->val, f->n);
		if (how != PWB_PREFS_POPULATION)
			s -= penalty(m, b, f);
		scores[c] = s;
	}
}

/* ---- updates ---- */

static inline void ftrl(float *w, float *z, float *q, double g, double inv_lr,
			double beta, double l1, double l2)
{
	double q0 = *q, q1 = sqrt(q0 * q0 + g * g);
	double sigma = (q1 - q0) * inv_lr;
	double zz = *z + g - sigma * *w;
	*z = (float)zz;
	*q = (float)q1;
	if (fabs(zz) <= l1)
		*w = 0;
	else
		*w = (float)(-(zz - copysign(l1, zz)) /
			     ((beta + q1) * inv_lr + l2));
}

#define MAXF PWB__PREFS_MAXF

/*
 * Whether coordinate i, new to the user, enters Δ_u: every dimension,
 * category and embedding coordinate (but targeted dimensions, which Δ_u
 * does not learn), and an n-gram coordinate with probability 1/8, decided
 * by a hash of the user, the coordinate and the user's event count (uh),
 * so that runs are reproducible.
 */
static inline bool enters(const pwb_prefs_model *m, const pwb_prefs_bounds *b,
			  uint32_t i, uint64_t uh)
{
	if (i < m->base)
		return !targeted(b, i);
	return (pwb__mix64(uh ^ ((uint64_t)i << 20)) >>
		(64 - PWB__PREFS_INCLUSION_BITS)) == 0;
}

bool pwb__prefs_features_ok(const pwb_prefs_model *m,
			    const pwb_prefs_features *f)
{
	if (f->n > MAXF)
		return false;
	for (int k = 0; k < PWB_PREFS_N_DIMS; k++)
		if (!(f->dims[k] >= 0 && f->dims[k] <= 1))
			return false;
	for (uint32_t k = 0; k < f->n; k++)
		if (f->idx[k] >= m->dim || (k && f->idx[k] <= f->idx[k - 1]) ||
		    !(fabsf(f->val[k]) <= PWB__PREFS_MAX_VALUE))
			return false;
	return true;
}

/* x = a − b over sorted sparse vectors; returns its length. */
static uint32_t diff(const pwb_prefs_features *a, const pwb_prefs_features *b,
		     uint32_t *idx, float *val)
{
	uint32_t i = 0, j = 0, n = 0;
	while (i < a->n || j < b->n) {
		uint32_t ia = i < a->n ? a->idx[i] : UINT32_MAX;
		uint32_t ib = j < b->n ? b->idx[j] : UINT32_MAX;
		float v;
		uint32_t k;
		if (ia == ib) {
			k = ia;
			v = a->val[i++] - b->val[j++];
		} else if (ia < ib) {
			k = ia;
			v = a->val[i++];
		} else {
			k = ib;
			v = -b->val[j++];
		}
		if (v != 0) {
			idx[n] = k;
			val[n++] = v;
		}
	}
	return n;
}

/* The k-th smallest of v[0..n) (quickselect; v is reordered). */
static float kth(float *v, size_t n, size_t k)
{
	size_t lo = 0, hi = n - 1;
	while (lo < hi) {
		float piv = v[(lo + hi) / 2];
		size_t i = lo, j = hi;
		while (i <= j) {
			while (v[i] < piv)
				i++;
			while (v[j] > piv)
				j--;
			if (i <= j) {
				float t = v[i];
				v[i] = v[j];
				v[j] = t;
				i++;
				if (j == 0)
					break;
				j--;
			}
		}
		if (k <= j)
			hi = j;
		else if (k >= i)
			lo = i;
		else
			return v[k];
	}
	return v[k];
}

/* How much an entry is worth keeping: dimensions and categories first,
 * then by the magnitude of the weight. */
static float keep_key(const pwb_prefs_model *m, const pwb__prefs_entry *e)
{
	if (e->idx < pwb__prefs_embed0(m))
		return INFINITY;
	return fabsf(e->w);
}

/* Drops the entries with the smallest keys until at most cap remain. */
static uint32_t evict(const pwb_prefs_model *m, pwb__prefs_entry *e, uint32_t n,
		      uint32_t cap, float *keys)
{
	if (n <= cap)
		return n;
	for (uint32_t k = 0; k < n; k++)
		keys[k] = keep_key(m, &e[k]);
	/* Keep the entries above the (n - cap)-th smallest key; among those
	 * equal to it, the ones with the lower index first. */
	float t = kth(keys, n, n - cap - 1);
	uint32_t above = 0;
	for (uint32_t k = 0; k < n; k++)
		if (keep_key(m, &e[k]) > t)
			above++;
	uint32_t ties = cap - above, out = 0;
	for (uint32_t k = 0; k < n; k++) {
		float key = keep_key(m, &e[k]);
		if (key > t || (key == t && ties && ties--))
			e[out++] = e[k];
	}
	return out;
}

static pwb_status update(pwb_prefs_model *m, const char *id, bool is_cohort,
			 const pwb_prefs_features *chosen,
			 const pwb_prefs_features *rejected,
			 const pwb_prefs_bounds *b, bool update_pop);

pwb_status pwb_prefs_update_pair(pwb_prefs_model *m, const char *user,
				 const pwb_prefs_features *chosen,
				 const pwb_prefs_features *rejected,
				 const pwb_prefs_bounds *b)
{
	return pwb__prefs_update(m, user, chosen, rejected, b, true);
}

pwb_status pwb_prefs_update_user_pair(pwb_prefs_model *m, const char *user,
				      const pwb_prefs_features *chosen,
				      const pwb_prefs_features *rejected,
				      const pwb_prefs_bounds *b)
{
	if (!user || !*user)
		return PWB_EINVAL;
	return pwb__prefs_update(m, user, chosen, rejected, b, false);
}

pwb_status pwb_prefs_update_cohort_pair(pwb_prefs_model *m, const char *cohort,
					const pwb_prefs_features *chosen,
					const pwb_prefs_features *rejected,
					const pwb_prefs_bounds *b)
{
	if (!cohort || !*cohort)
		return PWB_EINVAL;
	return update(m, cohort, true, chosen, rejected, b, false);
}

pwb_status pwb__prefs_update(pwb_prefs_model *m, const char *user,
			     const pwb_prefs_features *chosen,
			     const pwb_prefs_features *rejected,
			     const pwb_prefs_bounds *b, bool update_pop)
{
	return update(m, user, false, chosen, rejected, b, update_pop);
}

/* One choice learnt by w0 (update_pop) and by the deviation of the user
 * (or, with is_cohort, of the cohort) named id, if any. */
static pwb_status update(pwb_prefs_model *m, const char *id, bool is_cohort,
			 const pwb_prefs_features *chosen,
			 const pwb_prefs_features *rejected,
			 const pwb_prefs_bounds *b, bool update_pop)
{
	if (!m || !chosen || !rejected || !pwb__prefs_features_ok(m, chosen) ||
	    !pwb__prefs_features_ok(m, rejected))
		return PWB_EINVAL;
	if (!b)
		b = &no_bounds;
	if (b->needs_consent && !b->consented)
		return PWB_EBOUNDS; /* learning from them needs their consent */
	uint32_t xi[2 * MAXF];
	float xv[2 * MAXF];
	uint32_t nx = diff(chosen, rejected, xi, xv);
	for (uint32_t k = 0; k < nx; k++)
		if (PWB_NEVER(xi[k] >= m->dim))
			return PWB_EINVAL;
	pwb__prefs_user *u = NULL;
	if (id && *id) {
		if (strlen(id) > PWB__PREFS_MAX_USER_ID)
			return PWB_EINVAL;
		if (is_cohort && !pwb__prefs_cohort_find(m, id) &&
		    m->n_cohorts >= PWB__PREFS_MAX_COHORTS)
			return PWB_ETOOLARGE;
		u = is_cohort ? pwb__prefs_cohort_add(m, id)
			      : pwb__prefs_add(m, id);
		if (!u)
			return PWB_ENOMEM;
	}
	/* Room for the merged entries before anything changes, so that a
	 * failed allocation leaves the model as it was: counted only while
	 * the user's array is below the cap (at the cap, it holds any
	 * result). */
	uint32_t cap = (uint32_t)m->p.max_user_weights;
	pwb__prefs_entry *merged = m->scratch;
	uint64_t uh = 0;
	if (u) {
		uh = pwb__fnv1a(PWB__FNV_INIT, u->id, strlen(u->id)) ^
		     (u->events * 0x9e3779b97f4a7c15ULL);
	}
	if (u && u->cap < cap) {
		uint32_t j = 0, n_new = 0;
		for (uint32_t k = 0; k < nx; k++) {
			uint32_t i = xi[k];
			while (j < u->n && u->e[j].idx < i)
				j++;
			if (!(j < u->n && u->e[j].idx == i))
				n_new += enters(m, b, i, uh);
		}
		size_t need = (size_t)u->n + n_new;
		uint32_t want = need < cap ? (uint32_t)need : cap;
		if (want > u->cap) {
			uint32_t c = (want + 15) & ~15u;
			if (c > cap)
				c = cap;
			pwb__prefs_entry *e =
			    pwb__realloc(u->e, (size_t)c * sizeof(*e));
			if (!e)
				return PWB_ENOMEM;
			u->e = e;
			u->cap = c;
		}
	}

	/* P(chosen ≻ rejected) under the current model, and the gradient of
	 * the log loss: g_i = (p − 1) x_i. Learning uses the deviation in
	 * full (the shrinkage is for scoring only). */
	double s = dot(m, u, 1, NULL, 0, b, xi, xv, nx) -
		   (penalty(m, b, chosen) - penalty(m, b, rejected));
	double p = 1 / (1 + exp(-s));
	double gs = p - 1;

	const pwb_prefs_params *pp = &m->p;
	double inv_pop = 1 / pp->pop_lr, inv_user = 1 / pp->user_lr;
	uint32_t j = 0, out = 0, un = u ? u->n : 0;
	for (uint32_t k = 0; k < nx; k++) {
		uint32_t i = xi[k];
		double g = gs * xv[k];
		pwb__prefs_entry *d = NULL;
		if (u) {
			while (j < un && u->e[j].idx < i)
				merged[out++] = u->e[j++];
			if (j < un && u->e[j].idx == i) {
				merged[out] = u->e[j++];
				d = &merged[out++];
			} else if (enters(m, b, i, uh)) {
				merged[out] = (pwb__prefs_entry){i, 0, 0, 0};
				d = &merged[out++];
			}
		}
		/* Bounded learning: feedback never raises the weight of a
		 * category that is not on for this user, in w0 or in Δ_u
		 * (a step from just below 0 could otherwise end above it). */
		if (clamped(m, b, i) && g < 0)
			continue;
		pwb__ftrl *w0 = &m->pop[i];
		if (update_pop)
			ftrl(&w0->w, &w0->z, &w0->n, g, inv_pop, pp->beta,
			     pp->pop_l1, pp->pop_l2);
		if (d && !targeted(b, i))
			ftrl(&d->w, &d->z, &d->n, g, inv_user, pp->beta,
			     pp->user_l1, pp->user_l2);
	}
	if (u) {
		while (j < un)
			merged[out++] = u->e[j++];
		out = evict(m, merged, out, cap, m->scratch_keys);
		memcpy(u->e, merged, (size_t)out * sizeof(*merged));
		u->n = out;
		u->events++;
	}
	return PWB_OK;
}

/* ---- explanation and reset ---- */

double pwb_prefs_user_dim(const pwb_prefs_model *m, const char *user, int k)
{
	const pwb__prefs_user *u = pwb__prefs_find(m, user);
	if (!u || k < 0 || k >= PWB_PREFS_N_DIMS)
		return 0;
	for (uint32_t j = 0; j < u->n && u->e[j].idx <= (uint32_t)k; j++)
		if (u->e[j].idx == (uint32_t)k)
			return u->e[j].w;
	return 0;
}

/* What a positive and a negative weight on each dimension mean: an
 * adjective before "answers", or a phrase with "with" after it. */
static const char *const words[PWB_PREFS_N_DIMS][2] = {
    {"longer", "shorter"},
    {"more formal", "more casual"},
    {"more humorous", "more serious"},
    {"warmer", "more neutral"},
    {"more direct", "more diplomatic"},
    {"more advanced", "simpler"},
    {"more emoji", "fewer emoji"},
    {"more lists", "fewer lists"},
    {"more formatting", "less formatting"},
    {"more questions", "fewer questions"},
    {"more hedging", "less hedging"},
    {"more exclamations", "fewer exclamations"},
};

#define EXPLAIN_MIN 0.05

static void add_item(pwb__buf *buf, int k, double w)
{
	/* U+2212 MINUS SIGN for negative magnitudes. */
	pwb__buf_addf(buf, "%s (%s%.2f)", words[k][w > 0 ? 0 : 1],
		      w > 0 ? "+" : "\xe2\x88\x92", fabs(w));
}

static void add_list(pwb__buf *buf, const int *ks, int n, const double *w)
{
	for (int a = 0; a < n; a++) {
		if (a)
			pwb__buf_adds(buf, a + 1 == n ? " and " : ", ");
		add_item(buf, ks[a], w[ks[a]]);
	}
}

pwb_status pwb_prefs_explain(const pwb_prefs_model *m, const char *user,
			     char **out, pwb_diag *diag)
{
	*out = NULL;
	if (!pwb__prefs_find(m, user)) {
		pwb_diag_add(diag, NULL, 0, 0, "unknown user '%s'",
			     user ? user : "");
		return PWB_ENOTFOUND;
	}
	int order[PWB_PREFS_N_DIMS];
	double w[PWB_PREFS_N_DIMS];
	int n = 0;
	for (int k = 0; k < PWB_PREFS_N_DIMS; k++) {
		w[k] = pwb_prefs_user_dim(m, user, k);
		if (fabs(w[k]) >= EXPLAIN_MIN)
			order[n++] = k;
	}
	for (int a = 1; a < n; a++)
		for (int c = a;
		     c > 0 && fabs(w[order[c]]) > fabs(w[order[c - 1]]); c--) {
			int t = order[c];
			order[c] = order[c - 1];
			order[c - 1] = t;
		}
	/* Adjectives (the first six dimensions) go before "answers", the
	 * rest after "with", each group strongest first. */
	int adj[PWB_PREFS_N_DIMS], with[PWB_PREFS_N_DIMS], na = 0, nw = 0;
	for (int a = 0; a < n; a++) {
		if (order[a] <= PWB_PREFS_READING_LEVEL)
			adj[na++] = order[a];
		else
			with[nw++] = order[a];
	}
	pwb__buf buf;
	pwb__buf_init(&buf, 4096);
	if (!n) {
		pwb__buf_adds(&buf, "no learned preferences yet: answers are "
				    "ranked by the population model");
	} else {
		pwb__buf_adds(&buf, "you prefer ");
		add_list(&buf, adj, na, w);
		pwb__buf_adds(&buf, na ? " answers" : "answers");
		if (nw) {
			pwb__buf_adds(&buf, " with ");
			add_list(&buf, with, nw, w);
		}
	}
	*out = pwb__buf_detach(&buf); /* NULL, and buf released, on failure */
	if (!*out) {
		pwb_diag_add(diag, NULL, 0, 0,
			     "out of memory explaining user '%s'", user);
		return PWB_ENOMEM;
	}
	return PWB_OK;
}

pwb_status pwb_prefs_reset(pwb_prefs_model *m, const char *user, pwb_diag *diag)
{
	pwb__prefs_user *u = pwb__prefs_find(m, user);
	if (!u) {
		pwb_diag_add(diag, NULL, 0, 0, "unknown user '%s'",
			     user ? user : "");
		return PWB_ENOTFOUND;
	}
	free(u->e);
	u->e = NULL;
	u->n = u->cap = 0;
	u->events = 0;
	return PWB_OK;
}
