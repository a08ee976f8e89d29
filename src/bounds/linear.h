/*
 * linear.h - the `linear` detector: a multi-label logistic model over
 * hashed word 1-2-grams and character 3-5-grams (with words in quotation
 * marks or after a negation as features of their own), its trainer, and its
 * versioned binary file format (magic, version, BLAKE2b checksum).
 */
#ifndef PWB_BOUNDS_LINEAR_H
#define PWB_BOUNDS_LINEAR_H

#include "pwb/common.h"

#include <stdint.h>

typedef struct pwb__linear pwb__linear;

/*
 * Feature sets (linear.c, "features"; recorded in the model file from
 * version 2 on): words in a negation's scope and words inside quotation
 * marks hash to features of their own. 0 is version 1's features.
 */
#define PWB__LIN_NEGATION 0x1u
#define PWB__LIN_QUOTES 0x2u
#define PWB__LIN_FEATURES_KNOWN (PWB__LIN_NEGATION | PWB__LIN_QUOTES)
#define PWB__LIN_DEFAULT_FEATURES 0u

typedef struct pwb__linear_params {
	unsigned hash_bits;    /* feature space is 2^hash_bits; default 18 */
	double l2;	       /* L2 regularisation; default 1e-6 */
	double learning_rate;  /* initial step; default 0.5 */
	unsigned epochs;       /* default 5 */
	double valid_fraction; /* held out for validation; default 0.2 */
	uint64_t seed;	       /* shuffling and the split; default 1 */
	bool class_weights;    /* weight positives by neg/pos; default true */
	/* With a validation split: each label's decision threshold is set
	 * so that at most this share of the validation texts without the
	 * label reach it (then folded into the label's bias, so that 0.5
	 * stays the threshold); 0 (the default): 0.5 as trained. */
	double max_fpr;
	/* The feature set, PWB__LIN_* bits; default PWB__LIN_DEFAULT_FEATURES.
	 * The model is written in the current format version whatever it is. */
	unsigned features;
	/* Called now and then with the fraction done, for a progress bar. */
	void (*progress)(void *user, double done);
	void *progress_user;
} pwb__linear_params;

pwb__linear_params pwb__linear_default_params(void);

/* Per-label results on the held-out validation split. */
typedef struct pwb__linear_label_report {
	size_t n_pos; /* positives in the validation split */
	double precision, recall;
	double threshold; /* the probability, as trained, that became 0.5 */
} pwb__linear_label_report;

typedef struct pwb__linear_report {
	size_t n_train, n_valid;
	pwb__linear_label_report *labels; /* n_labels entries, caller frees */
} pwb__linear_report;

/*
 * Trains a model. labels is an n x n_labels matrix of 0/1 (row i: text i);
 * label_names are the category ids the model will report. report may be
 * NULL; when given, its labels array is the caller's to free().
 */
pwb_status pwb__linear_train(pwb__linear **out, const char *const *texts,
			     const size_t *lens, const uint8_t *labels,
			     size_t n, const char *const *label_names,
			     size_t n_labels, const pwb__linear_params *params,
			     pwb__linear_report *report);

void pwb__linear_free(pwb__linear *m);

size_t pwb__linear_n_labels(const pwb__linear *m);
const char *pwb__linear_label(const pwb__linear *m, size_t i);

/* Scores text: scores[i] = P(label i) in [0, 1]. Texts of any size. */
void pwb__linear_score(const pwb__linear *m, const char *text, size_t len,
		       double *scores);

/*
 * The same, for long texts: the most of the whole text's score and the
 * scores of windows of about `window` bytes that overlap by half (cut at
 * spaces where one is within PWB__LINEAR_WINDOW_SLACK bytes), so that one
 * harmful paragraph in a long text is not diluted by the rest. Texts of at
 * most `window` bytes score as with pwb__linear_score.
 */
#define PWB__LINEAR_WINDOW_SLACK 64
void pwb__linear_score_windows(const pwb__linear *m, const char *text,
			       size_t len, size_t window, double *scores);

/*
 * Saves atomically (a temporary file, fsync, rename): a crash never leaves
 * a half-written model at path. On failure adds one message to diag, with
 * path as its file (line 0).
 */
pwb_status pwb__linear_save(const pwb__linear *m, const char *path,
			    pwb_diag *diag);

/*
 * The bytes of the model file, in memory: *data is the caller's, freed
 * with free(). For models kept elsewhere than in a file (a database row)
 * and for round-trip checks; pwb__linear_load_mem reads them back.
 */
pwb_status pwb__linear_save_mem(const pwb__linear *m, void **data, size_t *len);

/*
 * Loads a model file, or a model from memory. A file of another format, a
 * newer version, a wrong checksum, a truncated body or absurd sizes are
 * refused with PWB_EPARSE; nothing is half-loaded. Every failure adds one
 * message to diag, whose file is path (NULL for a model in memory).
 */
pwb_status pwb__linear_load(pwb__linear **out, const char *path,
			    pwb_diag *diag);
pwb_status pwb__linear_load_mem(pwb__linear **out, const void *data, size_t len,
				pwb_diag *diag);

/*
 * The hashed features of a text, for other modules (the preference
 * learner) to share: calls fn once per feature occurrence with its bucket
 * in [0, 2^hash_bits) and a weight. Text is lowercased (ASCII) and split
 * on non-alphanumeric bytes (UTF-8 sequences count as alphanumeric).
 */
void pwb__hashed_features(const char *text, size_t len, unsigned hash_bits,
			  void (*fn)(void *user, uint32_t bucket, float w),
			  void *user);

/* The same under a feature set (PWB__LIN_*): the features a model with
 * that set scores (pwb__hashed_features is the feature set 0). */
void pwb__linear_features(const char *text, size_t len, unsigned hash_bits,
			  unsigned features,
			  void (*fn)(void *user, uint32_t bucket, float w),
			  void *user);

#endif
