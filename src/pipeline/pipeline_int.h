/*
 * pipeline_int.h - what the pipeline's files share: the pipeline itself,
 * the preference model behind its lock, and the steps each file gives.
 * Not part of the public API.
 */
#ifndef PWB_PIPELINE_INT_H
#define PWB_PIPELINE_INT_H

#include <jansson.h>
#include <pthread.h>

#include "pwb/pipeline.h"
#include "util/util.h"

/* Feedback of one user takes turns on one of these (by a hash of the org
 * and user): their model is read, learnt and written back in order, while
 * other users' feedback shares the store's commits (feedback.c). */
#define PWB__FB_STRIPES 64

struct pwb_pipeline {
	pwb_pipeline_params p;
	pwb_prefs_model *prefs; /* owned; behind lock */
	pthread_mutex_t lock;
	pthread_mutex_t fb_stripe[PWB__FB_STRIPES];
};

/* A user as the store keeps them, for one request. */
typedef struct pwb__user {
	pwb_store_user row; /* zeroed when the store has no such user */
	bool found;
	pwb_settings *settings; /* parsed; NULL when none */
	bool consented;		/* consent JSON says "learning": true */
	/* Consent to be grouped: "cohort": true (any attribute no
	 * learning restriction names), or the attribute's name (that one
	 * only); NULL when not given. */
	bool cohort_any;
	char *cohort_named;
} pwb__user;

/* The longest cohort value, and id ("ATTRIBUTE=VALUE"), in bytes. */
#define PWB__COHORT_VALUE_MAX 128
#define PWB__COHORT_ID_MAX 256

/*
 * The user's cohort for a request (docs/prefs.md, "Cohort priors"):
 * "ATTRIBUTE=VALUE" into id when e groups users by ATTRIBUTE, the user
 * consented to it and attrs carry user.ATTRIBUTE; else id is "". A value
 * that cannot name a cohort (over 128 bytes, empty, not UTF-8, with
 * control characters) fails with PWB_EINVAL, naming the attribute.
 */
pwb_status pwb__cohort_of(const pwb_effective *e, const pwb__user *u,
			  const pwb_attrs *attrs,
			  char id[PWB__COHORT_ID_MAX + 1], pwb_diag *diag);
/* Whether the user consented to be grouped by attr under e. */
bool pwb__cohort_consented(const pwb_effective *e, const pwb__user *u,
			   const char *attr);

/* The response's blocked_by as JSON (null when allowed): tier, source,
 * category, basis, file, line, on; no user content. */
json_t *pwb__blocked_by_json(const pwb_response *r);

pwb_status pwb__user_load(pwb_pipeline *pl, const char *org, const char *user,
			  pwb__user *u, pwb_diag *diag);
void pwb__user_release(pwb__user *u);

/* Resolves the user's effective policy for a request. */
pwb_status pwb__resolve(pwb_pipeline *pl, const pwb_request *req,
			const pwb__user *u, pwb_effective **e,
			pwb_diag *diag);

/* Replaces the user's deviation in the shared model by the stored one
 * (or forgets it when none is stored). Call with pl->lock held. */
pwb_status pwb__user_model_sync(pwb_pipeline *pl, const char *user,
				const pwb__user *u, pwb_diag *diag);

/* The preference bounds of a user for the shared model. */
void pwb__prefs_bounds(const pwb_pipeline *pl, const pwb_effective *e,
		       bool consented, pwb_prefs_bounds *b);

/* The features of one answer for the shared model, from its output
 * check's category scores and (when the model takes them) the engine's
 * embedding. */
pwb_status pwb__features(pwb_pipeline *pl, const char *text, size_t len,
			 const pwb_decision *check, pwb_prefs_features *f,
			 pwb_diag *diag);

/* Streaming: generates one candidate and releases checked text (stream.c). */
pwb_status pwb__stream_generate(pwb_pipeline *pl, const pwb_request *req,
				const pwb_effective *e,
				const pwb_chat_msg *msgs, size_t n_msgs,
				const pwb_gen_params *gp, pwb_response *r,
				pwb_generation *gen, bool *cancelled,
				pwb_diag *diag);

#endif
