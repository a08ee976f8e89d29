/*
 * pwb/prefs.h - personal preferences: feedback events and the learner.
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
#ifndef PWB_PREFS_H
#define PWB_PREFS_H

#include "pwb/common.h"

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- feedback events (DESIGN §4.3) ---- */

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
 * the call then fails with PWB_EPARSE and *out NULL.
 */
typedef struct pwb_feedback_set pwb_feedback_set;

pwb_status pwb_feedback_load(pwb_feedback_set **out, const char *path,
			     pwb_diag *diag);
pwb_status pwb_feedback_set_new(pwb_feedback_set **out);
size_t pwb_feedback_n(const pwb_feedback_set *s);
const pwb_feedback *pwb_feedback_get(const pwb_feedback_set *s, size_t i);
void pwb_feedback_free(pwb_feedback_set *s);

/*
 * Parses one event (a JSON object of len bytes, e.g. an HTTP body) and
 * appends it to `into`; errors name `file` (may be NULL) and `line`.
 */
pwb_status pwb_feedback_parse(pwb_feedback_set *into, const char *json,
			      size_t len, const char *file, int line,
			      pwb_diag *diag);

#ifdef __cplusplus
}
#endif

#endif
