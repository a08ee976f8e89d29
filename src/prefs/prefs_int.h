/*
 * prefs_int.h - internals of the preference learner shared by its files
 * (features, model, file format, simulator, evaluation).
 */
#ifndef PWB_PREFS_INT_H
#define PWB_PREFS_INT_H

#include "pwb/pwb.h"
#include "util/util.h"

#include <stdint.h>

#define PWB__PREFS_MIN_BITS 10u
#define PWB__PREFS_MAX_BITS 24u
#define PWB__PREFS_MAX_USER_WEIGHTS 4096u
#define PWB__PREFS_MAX_USER_ID 256u
/* The shrinkage strength k of a model made without cross-validation
 * (docs/prefs.md, "Shrinkage", says how it was chosen). */
#define PWB__PREFS_DEFAULT_SHRINK 8.0
/* Cohorts a model holds, at most (each is one attribute value). */
#define PWB__PREFS_MAX_COHORTS 4096u

/* One coordinate of an FTRL-Proximal model: the weight w, the state z,
 * and n, the square root of the sum of the squared gradients (kept as
 * the root so that an update takes one square root, not two). */
typedef struct pwb__ftrl {
	float w, z, n;
} pwb__ftrl;

/* One non-zero of a user's deviation. Entries are sorted by idx. */
typedef struct pwb__prefs_entry {
	uint32_t idx;
	float w, z, n;
} pwb__prefs_entry;

typedef struct pwb__prefs_user {
	char *id;
	uint64_t events;
	uint32_t n, cap;
	pwb__prefs_entry *e;
} pwb__prefs_user;

struct pwb_prefs_model {
	pwb_prefs_params p;
	char **cat_ids; /* p.categories points here */
	uint32_t base;	/* first hashed index: dims + categories + embed */
	uint32_t dim;	/* base + 2^hash_bits */
	pwb__ftrl *pop; /* dim coordinates */
	/* Users: open addressing on the FNV-1a of the id; slots hold
	 * pointers, NULL when empty. Tombstones are not needed: users are
	 * reset (their entries emptied), never removed. */
	pwb__prefs_user **slots;
	size_t n_slots, n_users;
	/* Cohorts: few, sorted by id (bytewise), found by binary search;
	 * each a deviation like a user's. */
	pwb__prefs_user **cohorts;
	size_t n_cohorts, cap_cohorts;
	/* Room for one update's merged entries (a model is updated by one
	 * thread at a time): max_user_weights + 2 PWB__PREFS_MAXF. */
	pwb__prefs_entry *scratch;
	float *scratch_keys;
};

/* Non-zeros of one feature vector, at most. */
/* The largest magnitude of a feature value (an embedding's; every other
 * feature lies in [0, 1]): larger finite floats would overflow the
 * learner's sums. */
#define PWB__PREFS_MAX_VALUE 1000.0f

#define PWB__PREFS_MAXF                                                        \
	(PWB_PREFS_N_DIMS + PWB_PREFS_MAX_CATEGORIES + PWB_PREFS_MAX_EMBED +   \
	 PWB_PREFS_MAX_NGRAMS)
/* New n-gram coordinates enter a user's deviation with probability
 * 1/2^PWB__PREFS_INCLUSION_BITS (probabilistic feature inclusion). */
#define PWB__PREFS_INCLUSION_BITS 3

/* Index of the first category and embedding feature. */
#define PWB__PREFS_CAT0 ((uint32_t)PWB_PREFS_N_DIMS)
static inline uint32_t pwb__prefs_embed0(const pwb_prefs_model *m)
{
	return PWB__PREFS_CAT0 + (uint32_t)m->p.n_categories;
}

pwb__prefs_user *pwb__prefs_find(const pwb_prefs_model *m, const char *id);
/* Finds or adds the user; NULL when out of memory or the id is too long. */
pwb__prefs_user *pwb__prefs_add(pwb_prefs_model *m, const char *id);
pwb__prefs_user *pwb__prefs_cohort_find(const pwb_prefs_model *m,
					const char *id);
/* Finds or adds the cohort; NULL when out of memory, the id is empty or
 * too long, or the model holds PWB__PREFS_MAX_COHORTS already. */
pwb__prefs_user *pwb__prefs_cohort_add(pwb_prefs_model *m, const char *id);
/* Frees a user (or cohort) record. */
void pwb__prefs_user_free(pwb__prefs_user *u);
/* Whether p is in range (limits in prefs.h); if not, diag (may be NULL)
 * gets the reason. */
bool pwb__prefs_params_ok(const pwb_prefs_params *p, pwb_diag *diag);
/* pwb_prefs_update_pair, optionally leaving w0 as it is (the learning
 * curve of the evaluation replays a user's first events against a fixed
 * population model). */
pwb_status pwb__prefs_update(pwb_prefs_model *m, const char *user,
			     const pwb_prefs_features *chosen,
			     const pwb_prefs_features *rejected,
			     const pwb_prefs_bounds *b, bool update_pop);
/* The measured dimensions of a text alone. */
void pwb__prefs_measure(const char *text, size_t len,
			float dims[PWB_PREFS_N_DIMS]);

/* Whether f is a vector this model can read: at most PWB__PREFS_MAXF
 * entries, indices strictly increasing below m's dimension, values finite
 * and within PWB__PREFS_MAX_VALUE, dimensions in [0, 1]. */
bool pwb__prefs_features_ok(const pwb_prefs_model *m,
			    const pwb_prefs_features *f);

#endif
