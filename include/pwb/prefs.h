/*
 * pwb/prefs.h - personal preferences: feedback events and the learner.
 *
 * This module reads the feedback users give (pairs and ratings, DESIGN
 * §4.3) and learns from it, per user, which of several candidate responses
 * that user prefers: a pwb_prefs_model holds a population model and one
 * sparse deviation per user, learnt and scored within the user's bounds.
 * It also writes and reads model files and per-user blobs, simulates users,
 * and evaluates the learner on a feedback file (docs/prefs.md).
 *
 * Ownership: objects returned through `**out` are the caller's and are freed
 * with the matching `_free` (a pwb_feedback_reader with pwb_feedback_close();
 * strings and bytes returned through `char **` or `void **` with free()).
 * Pointers returned by getters are borrowed until their parent object is
 * freed, with two exceptions: an event from pwb_feedback_get() lives until
 * the next pwb_feedback_parse() into its set (its strings, until the set is
 * freed), and the strings of an event from pwb_feedback_next() until the
 * next call or pwb_feedback_close(). A model copies its parameters' category
 * ids; features, bounds and results are plain data the caller holds. The
 * module keeps no global state: different objects may be used from
 * different threads at once. A pwb_prefs_model may be read (scored,
 * measured against, explained, saved, packed) from several threads at once
 * while nothing changes it; the pwb_prefs_update_*() calls,
 * pwb_prefs_reset(), pwb_prefs_set_shrink() and pwb_prefs_user_load_mem()
 * change it (they add users or cohorts, grow their tables and use a scratch
 * buffer in the model), so the caller locks: one of them at a
 * time, and no other call on that model meanwhile. A pwb_feedback_set may be
 * read from several threads while nothing appends to it; a
 * pwb_feedback_reader is used by one thread at a time.
 */
#ifndef PWB_PREFS_H
#define PWB_PREFS_H

#include "pwb/common.h"
#include "pwb/policy.h"

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- feedback events (DESIGN §4.3) ----
 *
 * Feedback events are the lines of DESIGN §4.3, as imported into a store
 * and as read by `pwb eval prefs`:
 *
 *   {"user": "u1", "prompt": "...", "chosen": "...", "rejected": "...",
 *    "ts": 17}
 *   {"user": "u1", "prompt": "...", "response": "...", "rating": 4,
 *    "scale": [1, 5], "ts": 18}
 *
 * optional on either: "id" (a string naming the event) and
 * "rater": {"role": "end_user|crowdworker|expert", "attributes": {...}}.
 * Every other key is an error naming the line (docs/prefs.md).
 */

typedef enum pwb_feedback_kind {
	PWB_FEEDBACK_PAIR,  /* chosen is preferred to rejected */
	PWB_FEEDBACK_RATING /* response rated on a scale */
} pwb_feedback_kind;

typedef enum pwb_rater_role {
	PWB_RATER_NONE, /* the line names no rater */
	PWB_RATER_END_USER,
	PWB_RATER_CROWDWORKER,
	PWB_RATER_EXPERT
} pwb_rater_role;

typedef struct pwb_feedback {
	pwb_feedback_kind kind;
	const char *user;	   /* "" when the line names none */
	const char *prompt;	   /* "" when absent */
	const char *chosen;	   /* PAIR: never empty; NULL for a rating */
	const char *rejected;	   /* PAIR: never empty; NULL for a rating */
	const char *response;	   /* RATING: never empty; NULL for a pair */
	double rating;		   /* RATING: scale_lo <= rating <= scale_hi */
	double scale_lo, scale_hi; /* RATING: scale_lo < scale_hi */
	int64_t ts;
	bool has_ts;
	pwb_rater_role rater_role;
	const char *rater_attrs; /* "attributes" as compact JSON, or NULL */
	const char *id;		 /* the event's "id", or NULL */
	int line;		 /* line number in its file (1-based) */
} pwb_feedback;

/* "end_user", "crowdworker", "expert"; "" for PWB_RATER_NONE. */
const char *pwb_rater_role_name(pwb_rater_role r);

/*
 * Streaming, for imports of any size. Strings of an event live until the
 * next call or pwb_feedback_close(). path "-" reads standard input.
 */
typedef struct pwb_feedback_reader pwb_feedback_reader;

pwb_status pwb_feedback_open(pwb_feedback_reader **out, const char *path,
			     pwb_diag *diag);
/*
 * PWB_OK with *ev filled, or PWB_OK with *done set at the end of the input,
 * or an error reported in diag as file:line: what is wrong (PWB_EPARSE for
 * a bad line, after which the reader can go on with the next one; PWB_EIO
 * or PWB_ENOMEM, after which it cannot).
 */
pwb_status pwb_feedback_next(pwb_feedback_reader *r, pwb_feedback *ev,
			     bool *done, pwb_diag *diag);
/* Bytes consumed so far, and the input's size (0 when unknown: a pipe). */
uint64_t pwb_feedback_bytes_read(const pwb_feedback_reader *r);
uint64_t pwb_feedback_bytes_total(const pwb_feedback_reader *r);
/* The line number of the last line read. */
int pwb_feedback_line(const pwb_feedback_reader *r);
void pwb_feedback_close(pwb_feedback_reader *r);

/*
 * A set of events held in memory, in file order. pwb_feedback_load()
 * reads a whole file: every bad line is reported (up to the diag cap) and
 * the call then fails with PWB_EPARSE and *out NULL. pwb_feedback_set_new()
 * makes an empty one (for pwb_feedback_parse()); it fails only with
 * PWB_ENOMEM.
 */
typedef struct pwb_feedback_set pwb_feedback_set;

pwb_status pwb_feedback_load(pwb_feedback_set **out, const char *path,
			     pwb_diag *diag);
pwb_status pwb_feedback_set_new(pwb_feedback_set **out);
size_t pwb_feedback_n(const pwb_feedback_set *s);
/* The i-th event, or NULL past the end. */
const pwb_feedback *pwb_feedback_get(const pwb_feedback_set *s, size_t i);
void pwb_feedback_set_free(pwb_feedback_set *s);

/*
 * Parses one event (a JSON object of len bytes, e.g. an HTTP body) and
 * appends it to `into`; errors name `file` (may be NULL) and `line`.
 */
pwb_status pwb_feedback_parse(pwb_feedback_set *into, const char *json,
			      size_t len, const char *file, int line,
			      pwb_diag *diag);

/* ---- the preference learner (docs/prefs.md) ----
 *
 * A pwb_prefs_model holds the population model w0 and one sparse
 * deviation per user, Δ_u, over the features φ of a response: measured
 * dimension values, the detectors' category scores, optional engine
 * embeddings and hashed word n-grams. A user's score of a response is
 *
 *   score_u(x) = (w0 + Δ_u)·φ(x) − α Σ_k |d_k(x) − t_k|
 *
 * with t_k the user's explicit targets. Updates (pairwise choices) use
 * FTRL-Proximal; weights on the scores of categories not on for the
 * user are clamped at <= 0 when scoring and never pushed above 0 when
 * learning. When scoring, Δ_u counts by the evidence the user has given:
 * it is weighted by s_u = n_u / (n_u + k), n_u the pairs learnt from the
 * user and k the model's shrink_k (chosen by cross-validation across
 * users when a model is trained from a file), so that a user without
 * events scores exactly as the population. A cohort (a group named by a
 * consented attribute, e.g. "age_band=18-24") may hold a deviation of its
 * own, learnt from its members: a member then scores with
 * w0 + s_u Δ_u + (1 − s_u) s_c Δ_c, starting from the cohort's model.
 */

/* The measured dimensions, each on [0, 1] (formulas in docs/prefs.md).
 * The first seven carry the ids of the registry's numeric dimensions, so
 * that explicit targets set on them in a policy apply. */
typedef enum pwb_prefs_dim {
	PWB_PREFS_VERBOSITY,
	PWB_PREFS_FORMALITY,
	PWB_PREFS_HUMOUR,
	PWB_PREFS_WARMTH,
	PWB_PREFS_DIRECTNESS,
	PWB_PREFS_READING_LEVEL,
	PWB_PREFS_EMOJI,
	PWB_PREFS_LISTS,
	PWB_PREFS_MARKDOWN,
	PWB_PREFS_QUESTIONS,
	PWB_PREFS_HEDGING,
	PWB_PREFS_EXCLAMATION,
	PWB_PREFS_N_DIMS
} pwb_prefs_dim;

/* "verbosity", ...; NULL out of range. */
const char *pwb_prefs_dim_name(int k);
/* The index of a dimension name, or -1. */
int pwb_prefs_dim_find(const char *name);

/* Limits of the feature vector. */
#define PWB_PREFS_MAX_CATEGORIES 64
#define PWB_PREFS_MAX_EMBED 256
#define PWB_PREFS_MAX_NGRAMS 64

/*
 * The features of one response, laid out for one model (its number of
 * categories, embedding size and hash bits): a sparse vector sorted by
 * index, plus the raw dimension values for the target penalty. Plain
 * data, about 3 KiB: callers keep it on the stack or in their own arrays.
 */
typedef struct pwb_prefs_features {
	float dims[PWB_PREFS_N_DIMS];
	uint32_t n;
	uint32_t idx[PWB_PREFS_N_DIMS + PWB_PREFS_MAX_CATEGORIES +
		     PWB_PREFS_MAX_EMBED + PWB_PREFS_MAX_NGRAMS];
	float val[PWB_PREFS_N_DIMS + PWB_PREFS_MAX_CATEGORIES +
		  PWB_PREFS_MAX_EMBED + PWB_PREFS_MAX_NGRAMS];
} pwb_prefs_features;

typedef struct pwb_prefs_model pwb_prefs_model;

typedef struct pwb_prefs_params {
	unsigned hash_bits; /* hashed n-gram space 2^bits; default 18 */
	/* Category ids, in the order of the score arrays callers pass
	 * (e.g. the registry order of pwb_effective_category). */
	const char *const *categories;
	size_t n_categories;	 /* at most PWB_PREFS_MAX_CATEGORIES */
	size_t n_embed;		 /* embedding size, 0: none */
	size_t max_user_weights; /* non-zeros per user; default 192 */
	double alpha;		 /* weight α of the target penalty; 1 */
	/* FTRL-Proximal: per-coordinate rate lr/(beta + sqrt(n)), L1, L2. */
	double user_lr, user_l1, user_l2;
	double pop_lr, pop_l1, pop_l2;
	double beta;
	/* Shrinkage strength k of the user's deviation when scoring:
	 * Δ_u counts n/(n + k) after n pairs; 0 counts it fully from the
	 * first pair, INFINITY never (population only). Default 8. */
	double shrink_k;
} pwb_prefs_params;

pwb_prefs_params pwb_prefs_default_params(void);

/*
 * A model with no users and a population model of zeros; params NULL: the
 * defaults. Fails with PWB_EINVAL, naming the parameter that is out of
 * range (or the category given twice), or PWB_ENOMEM; *out is then NULL.
 */
pwb_status pwb_prefs_model_new(pwb_prefs_model **out,
			       const pwb_prefs_params *params, pwb_diag *diag);
void pwb_prefs_model_free(pwb_prefs_model *m);
/* The model's parameters (its category ids are borrowed from it). */
const pwb_prefs_params *pwb_prefs_model_params(const pwb_prefs_model *m);

/*
 * Measures text and lays its features out for m. cat_scores holds one
 * score in [0, 1] per category of the model (NULL: all 0), e.g. the
 * `score` of each pwb_cat_decision; embed holds n_embed floats (NULL:
 * none). Fails with PWB_EINVAL on an empty text or scores out of range.
 */
pwb_status pwb_prefs_features_compute(pwb_prefs_features *f,
				      const pwb_prefs_model *m,
				      const char *text, size_t len,
				      const double *cat_scores,
				      const float *embed, pwb_diag *diag);

/* What a user's bounds allow the learner: categories that are on,
 * explicit targets, and whether learning from the user needs their
 * consent (a learning restriction's `requires_consent`) and has it.
 * Plain data; init gives "nothing on, no targets, no consent needed". */
typedef struct pwb_prefs_bounds {
	bool category_on[PWB_PREFS_MAX_CATEGORIES];
	bool has_target[PWB_PREFS_N_DIMS];
	float target[PWB_PREFS_N_DIMS];
	bool needs_consent; /* set from the effective policy */
	bool consented;	    /* set by the caller, from the user's consent */
} pwb_prefs_bounds;

void pwb_prefs_bounds_init(pwb_prefs_bounds *b);
/*
 * From an effective policy: a category is on when it is active for the
 * user; a dimension has a target when the user set its value
 * (value_set_by.tier is PWB_TIER_USER); consent is needed when the policy's
 * learning restrictions say `requires_consent` (consented stays false:
 * the caller knows the user's consent). Categories are matched by id.
 */
void pwb_prefs_bounds_from_effective(pwb_prefs_bounds *b,
				     const pwb_prefs_model *m,
				     const pwb_effective *e);

/*
 * Learns from one choice: user preferred `chosen` over `rejected`, each
 * as pwb_prefs_features_compute or _unpack made it for this model
 * (anything else is refused with PWB_EINVAL, as is a user id longer than
 * 256 bytes). user NULL or "" updates the population model only. When the
 * bounds need consent the user has not given, nothing is learnt, not even
 * by the population model: PWB_EBOUNDS. Fails with PWB_ENOMEM (the model is
 * then unchanged for that user).
 */
pwb_status pwb_prefs_update_pair(pwb_prefs_model *m, const char *user,
				 const pwb_prefs_features *chosen,
				 const pwb_prefs_features *rejected,
				 const pwb_prefs_bounds *b);

/* As pwb_prefs_update_pair(), but only the user's deviation learns: the
 * population model stays as it is (for a caller that teaches it once the
 * event is stored, with user NULL). */
pwb_status pwb_prefs_update_user_pair(pwb_prefs_model *m, const char *user,
				      const pwb_prefs_features *chosen,
				      const pwb_prefs_features *rejected,
				      const pwb_prefs_bounds *b);

/* As pwb_prefs_update_user_pair(), for a cohort's deviation Δ_c: a choice
 * by one of its members (cohort: an id of 1 to 256 bytes that the caller
 * builds from a consented attribute, e.g. "age_band=18-24"). Neither w0
 * nor any user's deviation changes. PWB_EINVAL without a cohort id,
 * PWB_EBOUNDS without needed consent, PWB_ETOOLARGE for a new cohort
 * past 4096, PWB_ENOMEM. */
pwb_status pwb_prefs_update_cohort_pair(pwb_prefs_model *m, const char *cohort,
					const pwb_prefs_features *chosen,
					const pwb_prefs_features *rejected,
					const pwb_prefs_bounds *b);

/* Which parts of the score to use. */
typedef enum pwb_prefs_scorer {
	PWB_PREFS_PERSONAL,   /* (w0 + s_u Δ_u)·φ − target penalty */
	PWB_PREFS_POPULATION, /* w0·φ */
	PWB_PREFS_EXPLICIT    /* − target penalty only */
} pwb_prefs_scorer;

/* Scores n candidates for user (unknown or NULL: the population model
 * with the bounds' targets) into scores[n]. */
void pwb_prefs_score(const pwb_prefs_model *m, const char *user,
		     const pwb_prefs_features *cands, size_t n,
		     const pwb_prefs_bounds *b, pwb_prefs_scorer how,
		     double *scores);
/* As pwb_prefs_score(), for a member of a cohort: PWB_PREFS_PERSONAL
 * scores (w0 + s_u Δ_u + (1 − s_u) s_c Δ_c)·φ − target penalty, with s_c
 * the cohort's own n/(n + k); a user without events starts from the
 * cohort's model. cohort NULL or unknown: exactly pwb_prefs_score(). */
void pwb_prefs_score_cohort(const pwb_prefs_model *m, const char *user,
			    const char *cohort, const pwb_prefs_features *cands,
			    size_t n, const pwb_prefs_bounds *b,
			    pwb_prefs_scorer how, double *scores);
/* The weight s_u = n/(n + k) the user's deviation has in their score
 * (0 for an unknown user or one without events). */
double pwb_prefs_user_weight(const pwb_prefs_model *m, const char *user);
/* Sets the model's shrinkage strength (k >= 0, or INFINITY); PWB_EINVAL
 * otherwise. */
pwb_status pwb_prefs_set_shrink(pwb_prefs_model *m, double k);
/* Cohorts with a deviation. */
size_t pwb_prefs_n_cohorts(const pwb_prefs_model *m);
bool pwb_prefs_has_cohort(const pwb_prefs_model *m, const char *cohort);

/* Users with a deviation, and per-user state. */
size_t pwb_prefs_n_users(const pwb_prefs_model *m);
bool pwb_prefs_has_user(const pwb_prefs_model *m, const char *user);
/* The updates (pairs) learnt from the user, and the non-zeros of Δ_u. */
uint64_t pwb_prefs_user_events(const pwb_prefs_model *m, const char *user);
size_t pwb_prefs_user_nnz(const pwb_prefs_model *m, const char *user);
/* Heap bytes held for the user (entries, id, bookkeeping). */
size_t pwb_prefs_user_bytes(const pwb_prefs_model *m, const char *user);
/* Heap bytes of the whole model. */
size_t pwb_prefs_model_bytes(const pwb_prefs_model *m);

/* The user's learned deviation on dimension k (Δ_u weight), 0 if none. */
double pwb_prefs_user_dim(const pwb_prefs_model *m, const char *user, int k);

/*
 * The deviation in words: "you prefer shorter (−0.42), more formal
 * (+0.31) answers", the strongest first, deviations under 0.05 left out.
 * *out is freed with free(). PWB_ENOTFOUND for an unknown user.
 */
pwb_status pwb_prefs_explain(const pwb_prefs_model *m, const char *user,
			     char **out, pwb_diag *diag);

/* Forgets the user's deviation (they start again at the population
 * model). PWB_ENOTFOUND for an unknown user. */
pwb_status pwb_prefs_reset(pwb_prefs_model *m, const char *user,
			   pwb_diag *diag);

/* ---- model files and blobs ----
 *
 * A model file holds the population model, its shrinkage strength, the
 * cohorts and every user; a user blob one user's deviation (for a
 * database row). Both carry a magic, a version and a BLAKE2b-256
 * checksum; loading refuses anything else with PWB_EPARSE and a reason in
 * diag, and loads nothing on failure. Model files of version 1 (before
 * shrinkage and cohorts) load with the default shrink_k and no cohorts.
 * Saving writes a temporary file and renames it: a crash never leaves a
 * half-written model.
 */
pwb_status pwb_prefs_save(const pwb_prefs_model *m, const char *path,
			  pwb_diag *diag);
pwb_status pwb_prefs_load(pwb_prefs_model **out, const char *path,
			  pwb_diag *diag);
/* A model file's bytes in memory; *data freed with free(). Fails only with
 * PWB_ENOMEM. */
pwb_status pwb_prefs_save_mem(const pwb_prefs_model *m, void **data,
			      size_t *len);
pwb_status pwb_prefs_load_mem(pwb_prefs_model **out, const void *data,
			      size_t len, const char *name, pwb_diag *diag);
/* The population blob: the model without its users (a model file with
 * no users, cohorts kept, which pwb_prefs_load_mem reads); with the users'
 * blobs it rebuilds the whole model. *data freed with free(); fails only with
 * PWB_ENOMEM. */
pwb_status pwb_prefs_population_save_mem(const pwb_prefs_model *m, void **data,
					 size_t *len);
/* One user's blob; *data freed with free(). PWB_ENOTFOUND for an unknown
 * user, else fails only with PWB_ENOMEM. */
pwb_status pwb_prefs_user_save_mem(const pwb_prefs_model *m, const char *user,
				   void **data, size_t *len);
/* Replaces (or adds) the user from a blob made for a model of the same
 * shape (hash bits, categories, embedding size). */
pwb_status pwb_prefs_user_load_mem(pwb_prefs_model *m, const void *data,
				   size_t len, pwb_diag *diag);

/*
 * An event's features as bytes, for a store that keeps no texts (DESIGN
 * §8: "else feature vectors"): the model's feature layout, then one vector
 * (a rating's response, b NULL) or two (a pair's chosen a and rejected
 * b), sealed with a BLAKE2b-256 checksum. *data is freed with free().
 * PWB_EINVAL without m or a, else fails only with PWB_ENOMEM.
 */
pwb_status pwb_prefs_features_pack(const pwb_prefs_model *m,
				   const pwb_prefs_features *a,
				   const pwb_prefs_features *b, void **data,
				   size_t *len);
/* Reads them back for a model of the same layout (else PWB_EPARSE with
 * the reason); *n_out is 1 or 2. Learning from them is then
 * pwb_prefs_update_pair(m, user, &out[0], &out[1], bounds). */
pwb_status pwb_prefs_features_unpack(const pwb_prefs_model *m, const void *data,
				     size_t len, pwb_prefs_features out[2],
				     size_t *n_out, pwb_diag *diag);

/* ---- simulated users (pwb simulate prefs) ----
 *
 * Users with hidden preference vectors theta over the measured
 * dimensions (theta_k = population mean_k + spread · N(0, 1)), candidate
 * responses built from templates that vary length, register, warmth,
 * humour, hedges, emoji, lists, questions and formatting, and choices
 * drawn by Bradley–Terry: P(a ≻ b) = σ(gain · (theta·d(a) − theta·d(b))).
 * Every run with the same parameters gives the same events.
 */
typedef struct pwb_prefs_sim_params {
	size_t users;		/* default 100 */
	size_t events;		/* per user; default 40 */
	uint64_t seed;		/* default 1 */
	double spread;		/* how much users differ; default 1 */
	double gain;		/* how consistently they choose; default 4 */
	double rating_fraction; /* events that are 1-5 ratings; 0.2 */
	/* Cohorts: 0 (default) none; else user u is in cohort u mod cohorts,
	 * its events carry "rater": {"role": "end_user", "attributes":
	 * {"cohort": "cN"}}, and theta_k gains the cohort's own offset,
	 * cohort_spread · N(0, 1). With 0 the events are those of a run
	 * without this field. */
	size_t cohorts;
	double cohort_spread; /* default 1 */
} pwb_prefs_sim_params;

pwb_prefs_sim_params pwb_prefs_sim_default_params(void);

/*
 * Calls emit once per event with one §4.3 JSON line (without a newline);
 * a non-zero return from emit stops the run with PWB_EIO.
 */
pwb_status pwb_prefs_simulate(const pwb_prefs_sim_params *p,
			      int (*emit)(void *ctx, const char *line,
					  size_t len),
			      void *ctx, pwb_diag *diag);
/* User u's hidden preferences. */
void pwb_prefs_sim_user(const pwb_prefs_sim_params *p, size_t u,
			double theta[PWB_PREFS_N_DIMS]);
/* User u's stated settings as settings JSON (targets on the two of
 * verbosity, formality and humour they care most about); *out is freed
 * with free(). Fails only with PWB_ENOMEM. */
pwb_status pwb_prefs_sim_settings(const pwb_prefs_sim_params *p, size_t u,
				  char **out);

/* ---- evaluation (pwb eval prefs) ----
 *
 * Per user, a chronological split (by ts, then file order): the last
 * test_fraction of each user's events are held out; users with fewer than
 * min_user_events events, and lines without a user, only train the
 * population model. Ratings become pairs within a user (ties dropped).
 * The model learns online from the training events in time order; the
 * held-out pairs are then scored by the personalised model, the
 * population model and the explicit targets alone. Accuracies are
 * averaged per user, then over users, with a 95 % percentile bootstrap
 * over users (seeded: the same data give the same numbers).
 *
 * The shrinkage strength k is chosen before testing, by cross-validation
 * across users: each evaluated user's last test_fraction of their
 * training events is held back, a model learns from the rest, and each
 * k of pwb_prefs_shrink_grid scores the held-back pairs. Personalising
 * must earn its place: unless the k with the best mean per-user
 * log-likelihood beats the population alone (k infinite) by more than
 * two standard errors of the per-user differences, k is infinite; else
 * the largest k within one standard error of the best. The test events
 * are never seen. pwb_prefs_train() chooses k the same way before it
 * learns from every event.
 */
#define PWB_PREFS_SHRINK_GRID_N 19
/* The values of k tried: 0, 1, 2, 4, ..., 65536, INFINITY. */
extern const double pwb_prefs_shrink_grid[PWB_PREFS_SHRINK_GRID_N];
#define PWB_PREFS_CURVE_N 7
/* Training events per user of the learning curve: 0, 1, 2, 5, 10, 20, 50. */
extern const size_t pwb_prefs_curve_points[PWB_PREFS_CURVE_N];

typedef struct pwb_prefs_eval_params {
	pwb_prefs_params model;
	double test_fraction;	/* default 0.3 */
	size_t min_user_events; /* default 5 */
	size_t bootstrap;	/* resamples; default 1000 */
	uint64_t seed;		/* default 1 */
	size_t rating_pairs;	/* pairs per rating in training; 8 */
	/* k of the model's shrinkage: below 0 (default −1), chosen by
	 * cross-validation across users; else this k (model.shrink_k is
	 * ignored either way). */
	double shrink_k;
	/* A rater attribute (a key of "attributes") the raters consented to
	 * be grouped by: each value is a cohort with its own deviation, and
	 * a member starts from it. NULL (default): attributes are never
	 * read. */
	const char *cohort_attr;
	/* A user's bounds and explicit targets; NULL, or false: none. */
	bool (*user_bounds)(void *ctx, const char *user, pwb_prefs_bounds *b);
	/* Now and then, the work done of a total, for a progress bar. */
	void (*progress)(void *ctx, size_t done, size_t total);
	void *ctx;
} pwb_prefs_eval_params;

pwb_prefs_eval_params pwb_prefs_eval_default_params(void);

typedef struct pwb_prefs_ci {
	double mean, lo, hi; /* the mean and its 95 % interval */
	size_t n;	     /* users (or pairs) it is over */
} pwb_prefs_ci;

typedef struct pwb_prefs_eval_result {
	size_t n_events;
	size_t n_users;	       /* users with min_user_events or more */
	size_t n_users_tested; /* of those, with a test pair */
	size_t n_users_with_settings;
	size_t n_population_users; /* users with fewer events */
	size_t n_anonymous_events; /* lines without a user */
	size_t n_train_pairs, n_test_pairs, n_ties_dropped;
	size_t n_unpaired_ratings; /* ratings without a user */
	pwb_prefs_ci personal, population, explicit_only;
	size_t curve_k[PWB_PREFS_CURVE_N];
	pwb_prefs_ci curve[PWB_PREFS_CURVE_N];
	/* The population model on the same users at each point. */
	pwb_prefs_ci curve_population[PWB_PREFS_CURVE_N];
	/* Per user tested: personal minus population accuracy (its mean
	 * and interval), and whether personal was above (win), equal (tie)
	 * or below (loss, personalisation hurt): counts, and the shares
	 * with their bootstrap intervals over users. */
	pwb_prefs_ci gain;
	size_t wins, ties, losses;
	pwb_prefs_ci win_share, tie_share, loss_share;
	/* The shrinkage: k used, and whether cross-validation chose it,
	 * over how many users; the mean per-user accuracy of each k of the
	 * grid on the held-back events (cv_n 0: no cross-validation). */
	double shrink_k;
	bool shrink_by_cv;
	size_t cv_n;
	double cv_accuracy[PWB_PREFS_SHRINK_GRID_N];
	double cv_log_likelihood[PWB_PREFS_SHRINK_GRID_N]; /* the criterion */
	/* Cohorts (cohort_attr set): cohorts found, users tested who are in
	 * one, and the learning curve of those users with their cohort's
	 * prior (cohort_curve) against without it (cohort_base), on the
	 * same users at each point. */
	size_t n_cohorts, n_users_in_cohorts;
	pwb_prefs_ci cohort_curve[PWB_PREFS_CURVE_N];
	pwb_prefs_ci cohort_base[PWB_PREFS_CURVE_N];
	/* Without any evaluated user: the last test_fraction of the
	 * anonymous pairs, scored by the population model. */
	size_t n_anonymous_test_pairs;
	pwb_prefs_ci anonymous_population;
} pwb_prefs_eval_result;

/* Duplicate events (the same id, or the same user, ts and texts) are
 * errors naming both lines. */
pwb_status pwb_prefs_check_duplicates(const pwb_feedback_set *set,
				      const char *name, pwb_diag *diag);

pwb_status pwb_prefs_evaluate(pwb_prefs_eval_result *res,
			      const pwb_feedback_set *set, const char *name,
			      const pwb_prefs_eval_params *p, pwb_diag *diag);

/*
 * Trains a new model on every event of set, in time order, exactly as the
 * evaluation trains (ratings paired within a user, every user with a
 * deviation). res (may be NULL) gets the counts of events and pairs.
 */
pwb_status pwb_prefs_train(pwb_prefs_model **out, pwb_prefs_eval_result *res,
			   const pwb_feedback_set *set, const char *name,
			   const pwb_prefs_eval_params *p, pwb_diag *diag);

#ifdef __cplusplus
}
#endif

#endif
