/*
 * pwb/pipeline.h - one request end to end (DESIGN §3.1-3.2,
 * docs/pipeline.md): resolve the user's bounds, check the prompt, build
 * the personalised system prompt, generate N candidates, check each,
 * score the survivors with the user's preference model, pick the best,
 * apply the obligations and record the decision; and the feedback that
 * names one of its alternatives.
 *
 * Ownership and threads: a pipeline borrows its policy, bounds, engine
 * and store, which must outlive it, and owns its preference model (the
 * population model and the users it has loaded). One pipeline serves
 * every thread: pwb_pipeline_chat() and pwb_pipeline_feedback() may run
 * concurrently (the preference model is behind a lock held only for
 * scoring and updates, microseconds). A pwb_response belongs to the caller
 * and is freed with pwb_response_free(); it stays valid after the
 * pipeline is freed.
 */
#ifndef PWB_PIPELINE_H
#define PWB_PIPELINE_H

#include "pwb/bounds.h"
#include "pwb/engine.h"
#include "pwb/policy.h"
#include "pwb/prefs.h"
#include "pwb/store.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct pwb_pipeline pwb_pipeline;

typedef struct pwb_pipeline_params {
	pwb_policy *policy; /* required */
	pwb_bounds *bounds; /* detectors for policy's registry; and */
	pwb_engine *engine; /* an engine: both needed to answer, not for
			     * feedback */
	pwb_store *store;   /* NULL: nothing is recorded or learnt (and
			     * feedback is refused) */
	/*
	 * The population model (e.g. from `pwb prefs train`); the pipeline
	 * takes it over (frees it), also when pwb_pipeline_new fails. NULL:
	 * a model of zeros laid out for the registry's categories, without
	 * embeddings. Feedback must use the layout the request used.
	 */
	pwb_prefs_model *prefs;
	size_t max_tokens;	  /* per candidate; default 256 */
	double temperature;	  /* default 0.8 */
	double top_p;		  /* default 0.95 */
	int timeout_ms;		  /* generation deadline; 0: none */
	size_t stream_hold_bytes; /* streaming: release at most this much
				   * unchecked text at once; default 256 */
	pwb_log_fn log;
	void *log_user;
} pwb_pipeline_params;

pwb_pipeline_params pwb_pipeline_default_params(void);

/* Fails with PWB_EINVAL (no policy) or PWB_ENOMEM. A preference model's
 * categories are matched to the registry's by id. */
pwb_status pwb_pipeline_new(pwb_pipeline **out, const pwb_pipeline_params *p,
			    pwb_diag *diag);
void pwb_pipeline_free(pwb_pipeline *pl);

/*
 * Streaming: called with text that the output rails have passed, in
 * order; the concatenation of every call is the response's content (a
 * block mid-stream: what was passed before it, then the refusal, with
 * `refusal` true). A non-zero return cancels the request.
 */
typedef int (*pwb_pipeline_text_fn)(void *user, const char *text, size_t len,
				    bool refusal);

typedef struct pwb_request {
	const char *org;  /* required */
	const char *user; /* required: the end user */
	const char *const *jurisdictions; /* added to the org's own */
	size_t n_jurisdictions;
	/* Request attributes; NULL: none. With the user's consent, the
	 * one the org groups users by (learning.cohort_attribute) names
	 * their cohort: its value must be 1 to 128 bytes of UTF-8 without
	 * control characters (else PWB_EINVAL). */
	const pwb_attrs *attrs;
	/* The conversation: user and assistant turns, and the app's own
	 * system message if it has one (kept after pwb's). */
	const pwb_chat_msg *msgs;
	size_t n_msgs;
	size_t n;	    /* candidates; 0: the org's `candidates` */
	size_t min_n;	    /* with n 0: at least this many (the org's, or
			     * more: a client asking for more choices) */
	uint64_t seed;	    /* 0: from the clock */
	size_t max_tokens;  /* 0: the pipeline's */
	pwb_pipeline_text_fn on_text; /* non-NULL: stream (one candidate) */
	void *on_text_user;
	/* Polled while the candidates are generated (pwb_gen_params.cancel):
	 * non-zero ends them where they stand (finish "cancelled"); a stream
	 * then releases nothing more. NULL: never. */
	int (*cancel)(void *user);
	void *cancel_user;
} pwb_request;

/* One candidate of a response. */
typedef struct pwb_alternative {
	char id[2];	     /* "A", "B", ... */
	char *content;	     /* as generated (redacted when redact);
			      * NULL when blocked: never kept */
	pwb_verdict verdict; /* the output rails' */
	double score;	     /* the preference score; 0 when blocked */
	pwb_decision *check; /* the output rails' decision */
	const char *finish;  /* "stop", "length", "cancelled" */
} pwb_alternative;

/* What blocked a response: the tier, source, category and basis. */
typedef struct pwb_blocked_by {
	pwb_tier tier;
	const char *source; /* "law:de", "org:acme-tutor", "user" */
	const char *category;
	const char *basis; /* may be NULL */
	const char *file;  /* the rule's file and line; NULL for user */
	int line;
	const char *on; /* "prompt" or "response" */
} pwb_blocked_by;

typedef struct pwb_response {
	char *decision_id;
	pwb_verdict verdict; /* allow, annotate, redact or block */
	char *content;	     /* the answer as the user sees it (with its
			      * obligations), or the refusal */
	char *refusal;	     /* NULL unless blocked */
	bool blocked;
	pwb_blocked_by blocked_by; /* when blocked */
	pwb_alternative *alts;	   /* none when the prompt was blocked */
	size_t n_alts;
	size_t chosen; /* index in alts; SIZE_MAX when blocked */
	char *system_prompt;
	pwb_effective *effective; /* the bounds it was made within */
	pwb_decision *prompt_check; /* the last user turn's */
	size_t history_redacted; /* the other user and system turns the */
	size_t history_withheld; /* input rails redacted, and blocked
				  * (withheld from the model) */
	bool personal;	/* scored with the user's own model */
	bool learns;	/* feedback on it will be learnt from */
	/* The user's cohort (docs/prefs.md, "Cohort priors"):
	 * "ATTRIBUTE=VALUE" when the org groups users by an attribute the
	 * request carries and the user consented to it, else NULL; and
	 * whether that cohort's model counted in the scores (false while
	 * the cohort has learnt nothing, or the user's own evidence is
	 * counted in full). */
	char *cohort;
	bool cohort_prior;
	size_t prompt_tokens, completion_tokens;
	uint64_t seed;	/* candidate i sampled with seed + i */
	double seconds; /* the whole request */
} pwb_response;

void pwb_response_free(pwb_response *r);

/*
 * An allowed alternative as the user would see it were it chosen: its
 * content with the texts of its obligations before and after it (as
 * `content` holds the chosen one's). PWB_EINVAL for a blocked one. *out
 * is freed with free().
 */
pwb_status pwb_alternative_shown(const pwb_alternative *a, char **out);

/*
 * Serves one request. Out-of-bounds prompts and answers are not errors:
 * the response is then a refusal (blocked, with blocked_by). Fails with
 * PWB_ENOTFOUND (unknown org or jurisdiction), PWB_EINVAL (bad request),
 * PWB_EBOUNDS (the user's stored settings lie outside the bounds),
 * PWB_ETOOLARGE (the request does not fit: a message over 4 MiB, or the
 * prompt past the context), PWB_EIO (the engine failed or gave an answer
 * too large to check, or the guard failed: nothing is answered
 * unchecked) or
 * PWB_ENOMEM; diag says why. *out is NULL on failure.
 */
pwb_status pwb_pipeline_chat(pwb_pipeline *pl, const pwb_request *req,
			     pwb_response **out, pwb_diag *diag);

/*
 * The response as the JSON of `pwb ask --json` (docs/pipeline.md):
 * decision_id, verdict, content, chosen, alternatives [{id, content,
 * verdict, score}], blocked_by, refusal, system_prompt, policy_hash,
 * cohort ({id, attribute, value, prior} or null), and more. *out is freed
 * with free().
 */
pwb_status pwb_response_to_json(const pwb_response *r, char **out);

/* The same on one line, without indentation (the server puts it inside
 * its answers as text, so that it is never parsed back). */
pwb_status pwb_response_to_json_compact(const pwb_response *r, char **out);

/* ---- the personalised system prompt ---- */

/*
 * The system prompt for an effective policy: one sentence per dimension
 * from the user's effective values (docs/pipeline.md lists the
 * templates), the obligations that speak to the model, then the org's
 * own `system_prompt`. *out is freed with free().
 */
pwb_status pwb_pipeline_system_prompt(const pwb_effective *e, char **out);

/* ---- feedback (DESIGN §3.2) ---- */

typedef enum pwb_fb_give_kind {
	PWB_FB_CHOOSE, /* the user prefers `alt` over the others */
	PWB_FB_RATING, /* a rating of `alt` (default: the chosen one) */
	PWB_FB_PAIR    /* the user prefers `alt` over `other` */
} pwb_fb_give_kind;

typedef struct pwb_feedback_give {
	const char *org, *user, *decision_id;
	pwb_fb_give_kind kind;
	const char *alt;   /* "A", ...; NULL for a rating of the chosen */
	const char *other; /* PAIR */
	double rating;	   /* RATING, on [1, 5] */
} pwb_feedback_give;

typedef struct pwb_feedback_result {
	size_t pairs_learnt;	 /* 0 when learning is off for the user */
	int64_t model_version;	 /* the user's, after the update */
	bool consent_needed;	 /* learning needs consent the user has not
				  * given: nothing stored, nothing learnt */
	bool cohort_learnt;	 /* the pairs also taught the user's cohort */
} pwb_feedback_result;

/*
 * Checks that the decision exists, belongs to this user, was not blocked
 * and has the alternatives named; stores the event with rater provenance
 * (end_user; and the cohort attribute and value the decision was scored
 * with, while the policy still groups by it and the user still consents);
 * updates the user's model online (and the population model, and that
 * cohort's) within their bounds, and bumps the model version. Fails with
 * PWB_ENOTFOUND (no such decision for this org), PWB_EINVAL (another
 * user's decision, a blocked decision, an unknown alternative, a rating
 * out of range) with the reason in diag; nothing is written then.
 */
pwb_status pwb_pipeline_feedback(pwb_pipeline *pl,
				 const pwb_feedback_give *fb,
				 pwb_feedback_result *res, pwb_diag *diag);

/*
 * The consent JSON the pipeline reads (pwb_store_user_set_consent(),
 * docs/pipeline.md): `old` (NULL, or anything but a JSON object: none)
 * with "learning" set to true or false when learning is 1 or 0 (-1:
 * unchanged), "cohort" set to the attribute named when cohort is
 * non-NULL ("" withdraws it: false), and "ts" to now; its other keys are
 * kept. PWB_EINVAL for a cohort attribute that is not 1 to 64 letters,
 * digits and '_'. *out is freed with free().
 */
pwb_status pwb_consent_update(const char *old, int learning,
			      const char *cohort, int64_t now, char **out);

/*
 * The population preference model a pipeline uses when given none: zero
 * weights over the policy's categories (pwb_prefs_default_params()). User
 * models learnt by such a pipeline load into it (reports read them so).
 */
pwb_status pwb_pipeline_default_prefs(const pwb_policy *pol,
				      pwb_prefs_model **out, pwb_diag *diag);

/*
 * Records a change of the user's consent in the store (learning 1 or 0,
 * -1 unchanged; cohort as pwb_consent_update takes it) and keeps the
 * other key: read, change, compare-and-set, again when another writer
 * came between. *out gets the consent recorded (free()).
 */
pwb_status pwb_consent_record(pwb_store *s, const char *org,
			      const char *user, int learning,
			      const char *cohort, int64_t now, char **out,
			      pwb_diag *diag);

/*
 * Whether a user of org whose effective policy is e may consent to being
 * grouped by attr: only by the attribute the org groups its users by.
 * When not, msg (size bytes) says why: the org groups by another
 * attribute, a higher tier forbids it (naming the source), or the org
 * groups nobody.
 */
bool pwb_consent_cohort_ok(const pwb_effective *e, const char *org,
			   const char *attr, char *msg, size_t size);

/* The user's learned preferences in words (pwb_prefs_explain), and a
 * reset of them (stored). */
pwb_status pwb_pipeline_explain(pwb_pipeline *pl, const char *org,
				const char *user, char **out, pwb_diag *diag);
pwb_status pwb_pipeline_reset(pwb_pipeline *pl, const char *org,
			      const char *user, pwb_diag *diag);

#ifdef __cplusplus
}
#endif

#endif
