/*
 * format.c - preference model files and per-user blobs: writing (to
 * memory or atomically to a file) and reading, with a magic, a version
 * and a BLAKE2b-256 checksum.
 *
 * All integers and floats little-endian:
 *
 *   "PWBPREF\0"                          8 bytes
 *   version, kind                        uint32 (kind 1 model, 2 user,
 *                                        3 an event's features)
 *   hash_bits, n_categories, n_embed     uint32 each
 *   kind 1 (version 2):
 *     max_user_weights                   uint32
 *     alpha, user_lr, user_l1, user_l2,
 *     pop_lr, pop_l1, pop_l2, beta,
 *     shrink_k                           float64 each (shrink_k may be
 *                                        +infinity)
 *     n_categories ids                   uint32 length (1-128) + bytes
 *     population: count                  uint32, then entries
 *     users: count                       uint64, then user records
 *     cohorts: count                     uint64, then user records
 *   kind 1 (version 1, still read): the same without shrink_k (the
 *     default is taken) and without cohorts
 *   kind 2 (version 1): one user record
 *   BLAKE2b-256 of all the above         32 bytes
 *
 * An entry is uint32 index + float32 w, z, n; entries are in strictly
 * increasing index order. A user record is uint32 id length (1-256) +
 * the id, uint64 updates, uint32 count, then entries; users are in
 * increasing bytewise order of id, so that a model has exactly one byte
 * form; cohorts likewise. The population stores only coordinates that
 * have seen a gradient (n > 0). User blobs and event features keep
 * version 1: their layout has not changed.
 */
#include "prefs/prefs_int.h"
#include "util/sealed.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PREF_MAGIC "PWBPREF\0"
#define PREF_MAGIC_LEN 8
#define PREF_VERSION 2u /* of model files; blobs and features: 1 */
#define PREF_KIND_MODEL 1u
#define PREF_KIND_USER 2u
#define PREF_KIND_FEATURES 3u
#define PREF_SUM_LEN PWB__SEAL_LEN
#define PREF_MAX_FILE ((size_t)1 << 34)
#define PREF_ENTRY_LEN 16u

/* ---- writing ---- */

static void w_header(pwb__sealw *w, const pwb_prefs_model *m, uint32_t kind)
{
	pwb__sealw_put(w, PREF_MAGIC, PREF_MAGIC_LEN);
	pwb__sealw_u32(w, kind == PREF_KIND_MODEL ? PREF_VERSION : 1u);
	pwb__sealw_u32(w, kind);
	pwb__sealw_u32(w, m->p.hash_bits);
	pwb__sealw_u32(w, (uint32_t)m->p.n_categories);
	pwb__sealw_u32(w, (uint32_t)m->p.n_embed);
}

static void w_user(pwb__sealw *w, const pwb__prefs_user *u)
{
	size_t len = strlen(u->id);
	pwb__sealw_u32(w, (uint32_t)len);
	pwb__sealw_put(w, u->id, len);
	pwb__sealw_u64(w, u->events);
	pwb__sealw_u32(w, u->n);
	for (uint32_t k = 0; k < u->n; k++) {
		pwb__sealw_u32(w, u->e[k].idx);
		pwb__sealw_f32(w, u->e[k].w);
		pwb__sealw_f32(w, u->e[k].z);
		pwb__sealw_f32(w, u->e[k].n);
	}
}

static int cmp_user(const void *a, const void *b)
{
	const pwb__prefs_user *x = *(const pwb__prefs_user *const *)a;
	const pwb__prefs_user *y = *(const pwb__prefs_user *const *)b;
	return strcmp(x->id, y->id);
}

/* The users sorted by id, so that a model has one byte form whatever the
 * history of its table; NULL when out of memory. */
static const pwb__prefs_user **sorted_users(const pwb_prefs_model *m)
{
	const pwb__prefs_user **v =
	    pwb__malloc((m->n_users ? m->n_users : 1) * sizeof(*v));
	if (!v)
		return NULL;
	size_t n = 0;
	for (size_t i = 0; i < m->n_slots; i++)
		if (m->slots[i])
			v[n++] = m->slots[i];
	qsort(v, n, sizeof(*v), cmp_user);
	return v;
}

/* The model; users NULL writes the population alone (no users). */
/* What a file or blob holds: the model with the users given (sorted),
 * the model alone (users NULL), one user, or an event's features. */
typedef struct body {
	const pwb_prefs_model *m;
	const pwb__prefs_user **users;
	const pwb__prefs_user *one;
	const pwb_prefs_features *feat[2];
	uint32_t n_feat;
} body;

static void w_features(pwb__sealw *w, const body *b)
{
	w_header(w, b->m, PREF_KIND_FEATURES);
	pwb__sealw_u32(w, b->n_feat);
	for (uint32_t k = 0; k < b->n_feat; k++) {
		const pwb_prefs_features *f = b->feat[k];
		for (int d = 0; d < PWB_PREFS_N_DIMS; d++)
			pwb__sealw_f32(w, f->dims[d]);
		pwb__sealw_u32(w, f->n);
		for (uint32_t i = 0; i < f->n; i++) {
			pwb__sealw_u32(w, f->idx[i]);
			pwb__sealw_f32(w, f->val[i]);
		}
	}
}

static void serialise(pwb__sealw *w, const void *ctx)
{
	const body *b = ctx;
	const pwb_prefs_model *m = b->m;
	if (b->n_feat) {
		w_features(w, b);
		return;
	}
	if (b->one) {
		w_header(w, m, PREF_KIND_USER);
		w_user(w, b->one);
		return;
	}
	const pwb_prefs_params *p = &m->p;
	w_header(w, m, PREF_KIND_MODEL);
	pwb__sealw_u32(w, (uint32_t)p->max_user_weights);
	const double d[9] = {p->alpha,	 p->user_lr, p->user_l1,
			     p->user_l2, p->pop_lr,  p->pop_l1,
			     p->pop_l2,	 p->beta,    p->shrink_k};
	for (int k = 0; k < 9; k++)
		pwb__sealw_f64(w, d[k]);
	for (size_t k = 0; k < p->n_categories; k++) {
		size_t len = strlen(p->categories[k]);
		pwb__sealw_u32(w, (uint32_t)len);
		pwb__sealw_put(w, p->categories[k], len);
	}
	uint32_t nz = 0;
	for (uint32_t i = 0; i < m->dim; i++)
		nz += m->pop[i].n > 0;
	pwb__sealw_u32(w, nz);
	for (uint32_t i = 0; i < m->dim; i++) {
		const pwb__ftrl *f = &m->pop[i];
		if (!(f->n > 0))
			continue;
		pwb__sealw_u32(w, i);
		pwb__sealw_f32(w, f->w);
		pwb__sealw_f32(w, f->z);
		pwb__sealw_f32(w, f->n);
	}
	size_t nu = b->users ? m->n_users : 0;
	pwb__sealw_u64(w, nu);
	for (size_t i = 0; i < nu; i++)
		w_user(w, b->users[i]);
	pwb__sealw_u64(w, m->n_cohorts); /* kept sorted by id */
	for (size_t i = 0; i < m->n_cohorts; i++)
		w_user(w, m->cohorts[i]);
}

/* For calls without a model, or without what to read or write. */
static pwb_status missing(const char *name, pwb_diag *diag, const char *what)
{
	pwb_diag_add(diag, name, 0, 0, "%s", what);
	return PWB_EINVAL;
}

static pwb_status save_mem(const pwb_prefs_model *m, void **data, size_t *len,
			   bool with_users)
{
	*data = NULL;
	*len = 0;
	body b = {m, with_users ? sorted_users(m) : NULL, NULL, {0}, 0};
	if (with_users && !b.users)
		return PWB_ENOMEM;
	pwb_status rc = pwb__sealed_to_mem(serialise, &b, data, len);
	free(b.users);
	return rc;
}

pwb_status pwb_prefs_save_mem(const pwb_prefs_model *m, void **data,
			      size_t *len)
{
	return save_mem(m, data, len, true);
}

pwb_status pwb_prefs_population_save_mem(const pwb_prefs_model *m, void **data,
					 size_t *len)
{
	return save_mem(m, data, len, false);
}

pwb_status pwb_prefs_user_save_mem(const pwb_prefs_model *m, const char *user,
				   void **data, size_t *len)
{
	*data = NULL;
	*len = 0;
	body b = {m, NULL, pwb__prefs_find(m, user), {0}, 0};
	if (!b.one)
		return PWB_ENOTFOUND;
	return pwb__sealed_to_mem(serialise, &b, data, len);
}

pwb_status pwb_prefs_save(const pwb_prefs_model *m, const char *path,
			  pwb_diag *diag)
{
	if (!m || !path || !*path)
		return missing(path, diag,
			       "no model, or no path to save it to");
	body b = {m, sorted_users(m), NULL, {0}, 0};
	if (!b.users) {
		pwb_diag_add(diag, path, 0, 0, "out of memory");
		return PWB_ENOMEM;
	}
	pwb_status rc = pwb__sealed_to_file(path, serialise, &b, diag);
	free(b.users);
	return rc;
}

/* ---- reading ---- */

typedef struct reader {
	const unsigned char *d;
	size_t len, off;
	char why[200];
	/* The checksum does not match. The parse goes on only to tell a
	 * truncated file (its structure ends early) from a corrupt one;
	 * nothing read from it is used. */
	bool bad_sum;
} reader;

#define PREF_CORRUPT "checksum mismatch: the data is corrupt"

/* True, unless the checksum did not match: then the reason. */
static bool r_sum_ok(reader *r)
{
	if (r->bad_sum)
		snprintf(r->why, sizeof(r->why), PREF_CORRUPT);
	return !r->bad_sum;
}

static bool r_need(reader *r, size_t n, const char *what)
{
	if (r->len - r->off >= n)
		return true;
	snprintf(r->why, sizeof(r->why), "truncated: the data ends inside %s",
		 what);
	return false;
}

static uint32_t r_u32(reader *r)
{
	const unsigned char *b = r->d + r->off;
	r->off += 4;
	return (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 |
	       (uint32_t)b[3] << 24;
}

static uint64_t r_u64(reader *r)
{
	uint64_t lo = r_u32(r);
	return lo | (uint64_t)r_u32(r) << 32;
}

static float r_f32(reader *r)
{
	uint32_t v = r_u32(r);
	float f;
	memcpy(&f, &v, 4);
	return f;
}

static double r_f64(reader *r)
{
	uint64_t v = r_u64(r);
	double d;
	memcpy(&d, &v, 8);
	return d;
}

static bool entry_ok(float w, float z, float n)
{
	return isfinite(w) && isfinite(z) && isfinite(n) && n >= 0;
}

/* Reads the header up to the shape; checks magic, version, kind, the
 * checksum (over the whole input) and the shape's limits. */
static bool r_header(reader *r, uint32_t want_kind, uint32_t *bits,
		     uint32_t *nc, uint32_t *ne, uint32_t *version_out)
{
	if (r->len < PREF_MAGIC_LEN ||
	    memcmp(r->d, PREF_MAGIC, PREF_MAGIC_LEN) != 0) {
		snprintf(r->why, sizeof(r->why), "not a pwb preference model");
		return false;
	}
	r->off = PREF_MAGIC_LEN;
	if (!r_need(r, 5 * 4 + PREF_SUM_LEN, "the header"))
		return false;
	/* The checksum first: a damaged version field is damage, not a
	 * file from a newer pwb. */
	r->bad_sum = !pwb__sealed_ok(r->d, r->len);
	uint32_t version = r_u32(r), kind = r_u32(r);
	/* Model files of versions 1 and 2 are read; blobs and features
	 * are still version 1. */
	uint32_t newest = kind == PREF_KIND_MODEL ? PREF_VERSION : 1u;
	bool known = version >= 1 && version <= newest;
	if ((!known || kind != want_kind) && !r_sum_ok(r))
		return false;
	if (!known) {
		snprintf(r->why, sizeof(r->why),
			 "%s version %u; this pwb reads version%s %u",
			 version > newest ? "written by a newer pwb:"
					  : "unknown",
			 (unsigned)version, newest > 1 ? "s 1 to" : "", newest);
		return false;
	}
	*version_out = version;
	if (kind != want_kind) {
		static const char *const kinds[] = {
		    "", "a whole model", "a user blob", "an event's features"};
		snprintf(r->why, sizeof(r->why), "%s, not %s",
			 kind < PWB_ARRAY_LEN(kinds) && kind
			     ? kinds[kind]
			     : "an unknown kind",
			 kinds[want_kind]);
		return false;
	}
	r->len -= PREF_SUM_LEN; /* the body ends at the checksum */
	*bits = r_u32(r);
	*nc = r_u32(r);
	*ne = r_u32(r);
	if (*bits < PWB__PREFS_MIN_BITS || *bits > PWB__PREFS_MAX_BITS ||
	    *nc > PWB_PREFS_MAX_CATEGORIES || *ne > PWB_PREFS_MAX_EMBED) {
		snprintf(r->why, sizeof(r->why),
			 "the feature layout (hash bits %u, %u categories, "
			 "embedding %u) is out of range",
			 (unsigned)*bits, (unsigned)*nc, (unsigned)*ne);
		return false;
	}
	return true;
}

/* Reads one user record into a new user (not yet in any table). */
static bool r_user(reader *r, const pwb_prefs_model *m, pwb__prefs_user **out,
		   bool *oom)
{
	*out = NULL;
	if (!r_need(r, 4, "a user id"))
		return false;
	uint32_t len = r_u32(r);
	if (len < 1 || len > PWB__PREFS_MAX_USER_ID) {
		snprintf(r->why, sizeof(r->why),
			 "a user id of %u bytes, not between 1 and %u",
			 (unsigned)len, PWB__PREFS_MAX_USER_ID);
		return false;
	}
	if (!r_need(r, len + 12, "a user"))
		return false;
	const char *id = (const char *)r->d + r->off;
	if (memchr(id, 0, len)) {
		snprintf(r->why, sizeof(r->why), "a user id holds a NUL byte");
		return false;
	}
	r->off += len;
	uint64_t events = r_u64(r);
	uint32_t n = r_u32(r);
	if (n > m->p.max_user_weights) {
		snprintf(r->why, sizeof(r->why),
			 "a user has %u weights, over the cap of %zu",
			 (unsigned)n, m->p.max_user_weights);
		return false;
	}
	if (!r_need(r, (size_t)n * PREF_ENTRY_LEN, "a user's weights"))
		return false;
	pwb__prefs_user *u = pwb__calloc(1, sizeof(*u));
	if (!u || !(u->id = pwb__strndup(id, len)) ||
	    (n && !(u->e = pwb__malloc((size_t)n * sizeof(*u->e))))) {
		if (u)
			free(u->id);
		free(u);
		*oom = true;
		return false;
	}
	u->events = events;
	u->n = u->cap = n;
	for (uint32_t k = 0; k < n; k++) {
		pwb__prefs_entry *e = &u->e[k];
		e->idx = r_u32(r);
		e->w = r_f32(r);
		e->z = r_f32(r);
		e->n = r_f32(r);
		if (e->idx >= m->dim || (k && e->idx <= u->e[k - 1].idx) ||
		    !entry_ok(e->w, e->z, e->n)) {
			snprintf(r->why, sizeof(r->why),
				 "user weight %u is out of order, out of "
				 "range or not a finite number",
				 (unsigned)k + 1);
			free(u->id);
			free(u->e);
			free(u);
			return false;
		}
	}
	*out = u;
	return true;
}

/* Reads the cohorts of a version 2 model into m: PWB_OK, PWB_EPARSE with
 * the reason in r, or PWB_ENOMEM. */
static pwb_status r_cohorts(reader *r, pwb_prefs_model *m)
{
	if (!r_need(r, 8, "the cohort count"))
		return PWB_EPARSE;
	uint64_t nc = r_u64(r);
	if (nc > PWB__PREFS_MAX_COHORTS || nc > (r->len - r->off) / 16) {
		snprintf(r->why, sizeof(r->why),
			 "%llu cohorts: over the limit of %u or more than "
			 "the data holds",
			 (unsigned long long)nc, PWB__PREFS_MAX_COHORTS);
		return PWB_EPARSE;
	}
	for (uint64_t k = 0; k < nc; k++) {
		pwb__prefs_user *u = NULL;
		bool oom = false;
		if (!r_user(r, m, &u, &oom))
			return oom ? PWB_ENOMEM : PWB_EPARSE;
		if (m->n_cohorts &&
		    strcmp(m->cohorts[m->n_cohorts - 1]->id, u->id) >= 0) {
			snprintf(r->why, sizeof(r->why),
				 "cohort %llu is out of order or repeated "
				 "(cohorts are sorted by id)",
				 (unsigned long long)k + 1);
			pwb__prefs_user_free(u);
			return PWB_EPARSE;
		}
		pwb__prefs_user *slot = pwb__prefs_cohort_add(m, u->id);
		if (!slot) {
			pwb__prefs_user_free(u);
			return PWB_ENOMEM;
		}
		slot->events = u->events;
		slot->n = u->n;
		slot->cap = u->cap;
		slot->e = u->e;
		u->e = NULL;
		pwb__prefs_user_free(u);
	}
	return PWB_OK;
}

static pwb_status fail(reader *r, const char *name, pwb_diag *diag,
		       pwb_status st)
{
	/* With a bad checksum, only "truncated" is worth more than "corrupt":
	 * any other complaint is about bytes that cannot be trusted. */
	if (r->bad_sum && st == PWB_EPARSE &&
	    strncmp(r->why, "truncated", 9) != 0)
		snprintf(r->why, sizeof(r->why), PREF_CORRUPT);
	pwb_diag_add(diag, name, 0, 0, "%s",
		     st == PWB_ENOMEM ? "out of memory"
		     : r->why[0]      ? r->why
				      : pwb_status_str(st));
	return st;
}

pwb_status pwb_prefs_load_mem(pwb_prefs_model **out, const void *data,
			      size_t len, const char *name, pwb_diag *diag)
{
	if (!out || (!data && len))
		return missing(name, diag,
			       "no place for the model, or no data");
	*out = NULL;
	reader r = {.d = data, .len = len};
	uint32_t bits, nc, ne, version;
	if (!r_header(&r, PREF_KIND_MODEL, &bits, &nc, &ne, &version))
		return fail(&r, name, diag, PWB_EPARSE);
	pwb_prefs_params p = pwb_prefs_default_params();
	p.hash_bits = bits;
	p.n_embed = ne;
	p.n_categories = nc;
	/* Version 1 has no shrink_k: the default stands. */
	int nd = version >= 2 ? 9 : 8;
	if (!r_need(&r, 4 + 8 * (size_t)nd, "the parameters"))
		return fail(&r, name, diag, PWB_EPARSE);
	p.max_user_weights = r_u32(&r);
	double *d[9] = {&p.alpha,   &p.user_lr, &p.user_l1,
			&p.user_l2, &p.pop_lr,	&p.pop_l1,
			&p.pop_l2,  &p.beta,	&p.shrink_k};
	for (int k = 0; k < nd; k++)
		*d[k] = r_f64(&r);
	char *cats[PWB_PREFS_MAX_CATEGORIES];
	size_t ncats = 0;
	pwb_prefs_model *m = NULL;
	pwb_status st = PWB_EPARSE;
	for (; ncats < nc; ncats++) {
		if (!r_need(&r, 4, "a category id"))
			goto out;
		uint32_t n = r_u32(&r);
		if (n < 1 || n > 128 || !r_need(&r, n, "a category id")) {
			if (n < 1 || n > 128)
				snprintf(r.why, sizeof(r.why),
					 "category %zu has %u bytes, not "
					 "between 1 and 128",
					 ncats + 1, (unsigned)n);
			goto out;
		}
		const char *c = (const char *)r.d + r.off;
		r.off += n;
		if (memchr(c, 0, n)) {
			snprintf(r.why, sizeof(r.why),
				 "category %zu holds a NUL byte", ncats + 1);
			goto out;
		}
		if (!(cats[ncats] = pwb__strndup(c, n))) {
			st = PWB_ENOMEM;
			goto out;
		}
	}
	p.categories = (const char *const *)cats;
	if (!pwb__prefs_params_ok(&p, NULL)) {
		snprintf(r.why, sizeof(r.why),
			 "the parameters are out of range (or two categories "
			 "are the same)");
		goto out;
	}
	/* The parameters are checked: it fails only for want of memory,
	 * which fail() reports. */
	st = pwb_prefs_model_new(&m, &p, NULL);
	if (st)
		goto out;
	st = PWB_EPARSE;
	if (!r_need(&r, 4, "the population model"))
		goto out;
	uint32_t nz = r_u32(&r);
	if (!r_need(&r, (size_t)nz * PREF_ENTRY_LEN, "the population model"))
		goto out;
	uint32_t prev = 0;
	for (uint32_t k = 0; k < nz; k++) {
		uint32_t i = r_u32(&r);
		float w = r_f32(&r), z = r_f32(&r), n = r_f32(&r);
		/* Only coordinates that saw a gradient are stored. */
		if (i >= m->dim || (k && i <= prev) || !entry_ok(w, z, n) ||
		    !(n > 0)) {
			snprintf(r.why, sizeof(r.why),
				 "population weight %u is out of order, out "
				 "of range or not a finite number",
				 (unsigned)k + 1);
			goto out;
		}
		m->pop[i] = (pwb__ftrl){w, z, n};
		prev = i;
	}
	if (!r_need(&r, 8, "the user count"))
		goto out;
	uint64_t nu = r_u64(&r);
	/* Each user takes at least 16 bytes: no absurd count passes. */
	if (nu > (r.len - r.off) / 16) {
		snprintf(r.why, sizeof(r.why),
			 "truncated: %llu users cannot fit in the data",
			 (unsigned long long)nu);
		goto out;
	}
	const char *prev_id = NULL;
	for (uint64_t k = 0; k < nu; k++) {
		pwb__prefs_user *u = NULL;
		bool oom = false;
		if (!r_user(&r, m, &u, &oom)) {
			st = oom ? PWB_ENOMEM : PWB_EPARSE;
			goto out;
		}
		if (prev_id && strcmp(prev_id, u->id) >= 0) {
			snprintf(r.why, sizeof(r.why),
				 "user %llu is out of order or repeated (users "
				 "are sorted by id)",
				 (unsigned long long)k + 1);
			free(u->id);
			free(u->e);
			free(u);
			goto out;
		}
		pwb__prefs_user *slot = pwb__prefs_add(m, u->id);
		if (!slot) {
			free(u->id);
			free(u->e);
			free(u);
			st = PWB_ENOMEM;
			goto out;
		}
		/* Move the record into the slot's user. */
		free(u->id);
		slot->events = u->events;
		slot->n = u->n;
		slot->cap = u->cap;
		slot->e = u->e;
		free(u);
		prev_id = slot->id;
	}
	if (version >= 2 && (st = r_cohorts(&r, m)))
		goto out;
	st = PWB_EPARSE;
	if (r.off != r.len) {
		snprintf(r.why, sizeof(r.why),
			 "%zu bytes after the last %s before the checksum",
			 r.len - r.off, version >= 2 ? "cohort" : "user");
		goto out;
	}
	if (!r_sum_ok(&r))
		goto out;
	*out = m;
	m = NULL;
	st = PWB_OK;
out:
	for (size_t k = 0; k < ncats; k++)
		free(cats[k]);
	pwb_prefs_model_free(m);
	if (st)
		return fail(&r, name, diag, st);
	return PWB_OK;
}

pwb_status pwb_prefs_load(pwb_prefs_model **out, const char *path,
			  pwb_diag *diag)
{
	if (!out)
		return missing(path, diag, "no place for the model");
	*out = NULL;
	char *data = NULL;
	size_t len = 0;
	pwb_status rc = pwb__read_file(path, PREF_MAX_FILE, &data, &len, diag);
	if (rc)
		return rc;
	rc = pwb_prefs_load_mem(out, data, len, path, diag);
	free(data);
	return rc;
}

pwb_status pwb_prefs_user_load_mem(pwb_prefs_model *m, const void *data,
				   size_t len, pwb_diag *diag)
{
	if (!m || (!data && len))
		return missing(NULL, diag, "no model, or no blob");
	reader r = {.d = data, .len = len};
	uint32_t bits, nc, ne, version;
	if (!r_header(&r, PREF_KIND_USER, &bits, &nc, &ne, &version))
		return fail(&r, NULL, diag, PWB_EPARSE);
	if (bits != m->p.hash_bits || nc != m->p.n_categories ||
	    ne != m->p.n_embed) {
		snprintf(r.why, sizeof(r.why),
			 "the blob was made for another feature layout");
		return fail(&r, NULL, diag, PWB_EPARSE);
	}
	pwb__prefs_user *u = NULL;
	bool oom = false;
	if (!r_user(&r, m, &u, &oom))
		return fail(&r, NULL, diag, oom ? PWB_ENOMEM : PWB_EPARSE);
	if (r.off != r.len || !r_sum_ok(&r)) {
		if (!r.bad_sum)
			snprintf(r.why, sizeof(r.why),
				 "%zu bytes after the user before the checksum",
				 r.len - r.off);
		free(u->id);
		free(u->e);
		free(u);
		return fail(&r, NULL, diag, PWB_EPARSE);
	}
	pwb__prefs_user *slot = pwb__prefs_add(m, u->id);
	if (!slot) {
		free(u->id);
		free(u->e);
		free(u);
		return fail(&r, NULL, diag, PWB_ENOMEM);
	}
	free(slot->e);
	slot->e = u->e;
	slot->n = u->n;
	slot->cap = u->cap;
	slot->events = u->events;
	free(u->id);
	free(u);
	return PWB_OK;
}

/* ---- an event's features, for stores that keep no texts ---- */

pwb_status pwb_prefs_features_pack(const pwb_prefs_model *m,
				   const pwb_prefs_features *a,
				   const pwb_prefs_features *b, void **data,
				   size_t *len)
{
	*data = NULL;
	*len = 0;
	if (!m || !a)
		return PWB_EINVAL;
	body bd = {m, NULL, NULL, {a, b}, b ? 2 : 1};
	return pwb__sealed_to_mem(serialise, &bd, data, len);
}

/* Reads one vector into f, checking it against m's layout. */
static bool r_features(reader *r, const pwb_prefs_model *m,
		       pwb_prefs_features *f)
{
	if (!r_need(r, PWB_PREFS_N_DIMS * 4 + 4, "a feature vector"))
		return false;
	for (int d = 0; d < PWB_PREFS_N_DIMS; d++) {
		f->dims[d] = r_f32(r);
		if (!(f->dims[d] >= 0 && f->dims[d] <= 1)) {
			snprintf(r->why, sizeof(r->why),
				 "dimension %s is %g, outside [0, 1]",
				 pwb_prefs_dim_name(d), (double)f->dims[d]);
			return false;
		}
	}
	uint32_t n = r_u32(r);
	if (n > PWB_ARRAY_LEN(f->idx)) {
		snprintf(r->why, sizeof(r->why),
			 "a vector of %u features, over the limit of %zu",
			 (unsigned)n, PWB_ARRAY_LEN(f->idx));
		return false;
	}
	if (!r_need(r, (size_t)n * 8, "a feature vector"))
		return false;
	f->n = n;
	for (uint32_t i = 0; i < n; i++) {
		f->idx[i] = r_u32(r);
		f->val[i] = r_f32(r);
		if (f->idx[i] >= m->dim || (i && f->idx[i] <= f->idx[i - 1]) ||
		    !(fabsf(f->val[i]) <= PWB__PREFS_MAX_VALUE)) {
			snprintf(r->why, sizeof(r->why),
				 "feature %u is out of order, out of range or "
				 "not a finite number",
				 (unsigned)i + 1);
			return false;
		}
	}
	return true;
}

pwb_status pwb_prefs_features_unpack(const pwb_prefs_model *m, const void *data,
				     size_t len, pwb_prefs_features out[2],
				     size_t *n_out, pwb_diag *diag)
{
	*n_out = 0;
	if (!m || (!data && len))
		return missing(NULL, diag, "no model, or no features");
	reader r = {.d = data, .len = len};
	uint32_t bits, nc, ne, version;
	if (!r_header(&r, PREF_KIND_FEATURES, &bits, &nc, &ne, &version))
		return fail(&r, NULL, diag, PWB_EPARSE);
	if (bits != m->p.hash_bits || nc != m->p.n_categories ||
	    ne != m->p.n_embed) {
		snprintf(r.why, sizeof(r.why),
			 "features laid out for another model (hash bits %u, "
			 "%u categories, embedding %u; this model: %u, %zu, "
			 "%zu)",
			 (unsigned)bits, (unsigned)nc, (unsigned)ne,
			 m->p.hash_bits, m->p.n_categories, m->p.n_embed);
		return fail(&r, NULL, diag, PWB_EPARSE);
	}
	if (!r_need(&r, 4, "the vector count"))
		return fail(&r, NULL, diag, PWB_EPARSE);
	uint32_t k = r_u32(&r);
	if (k < 1 || k > 2) {
		snprintf(r.why, sizeof(r.why),
			 "%u feature vectors; an event has 1 or 2",
			 (unsigned)k);
		return fail(&r, NULL, diag, PWB_EPARSE);
	}
	for (uint32_t i = 0; i < k; i++)
		if (!r_features(&r, m, &out[i]))
			return fail(&r, NULL, diag, PWB_EPARSE);
	if (r.off != r.len) {
		snprintf(r.why, sizeof(r.why),
			 "trailing bytes after the "
			 "features");
		return fail(&r, NULL, diag, PWB_EPARSE);
	}
	if (!r_sum_ok(&r))
		return fail(&r, NULL, diag, PWB_EPARSE);
	*n_out = k;
	return PWB_OK;
}
