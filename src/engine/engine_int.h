/*
 * engine_int.h - what the engines share inside src/engine/: the table of
 * operations each engine fills, parameter checks, the stop-string scanner
 * and the building of candidates. Not part of the public API.
 */
#ifndef PWB_ENGINE_INT_H
#define PWB_ENGINE_INT_H

#include "pwb/engine.h"
#include "util/util.h"

typedef struct pwb__engine_ops {
	pwb_status (*generate)(pwb_engine *e, const pwb_chat_msg *msgs,
			       size_t n_msgs, const pwb_gen_params *p,
			       pwb_generation *out, pwb_diag *diag);
	pwb_status (*embed)(pwb_engine *e, const char *text, size_t len,
			    float *out, pwb_diag *diag);
	void (*destroy)(pwb_engine *e);
} pwb__engine_ops;

/* The head of every engine; each engine's own struct starts with it. */
struct pwb_engine {
	const pwb__engine_ops *ops;
	char *name;
	size_t embed_dim;
};

/*
 * One candidate's text as it grows, with the stop strings cut off: text is
 * appended with pwb__cand_add(), which returns true once a stop string is
 * complete (the text then ends before it). Streaming hands out only what
 * can no longer be the start of a stop string (pwb__cand_ready()).
 */
typedef struct pwb__cand {
	pwb__buf text;
	size_t sent; /* bytes handed to on_text */
	bool done;
	pwb_finish finish;
	size_t tokens;
} pwb__cand;

void pwb__cand_init(pwb__cand *c);
void pwb__cand_release(pwb__cand *c);
bool pwb__cand_add(pwb__cand *c, const pwb_gen_params *p, const char *s,
		   size_t n);
/*
 * Hands p->on_text the bytes that are safe to send (all of them once the
 * candidate is done); marks the candidate cancelled when on_text asks.
 */
void pwb__cand_flush(pwb__cand *c, const pwb_gen_params *p, size_t index);

/* Moves n candidates into out (seed + i each); PWB_ENOMEM on failure. */
pwb_status pwb__cands_to_generation(pwb__cand *c, size_t n,
				    const pwb_gen_params *p,
				    pwb_generation *out);

/* Checks messages and params; a message naming the first problem. */
pwb_status pwb__gen_check(const pwb_engine *e, const pwb_chat_msg *msgs,
			  size_t n_msgs, const pwb_gen_params *p,
			  pwb_diag *diag);

#endif
