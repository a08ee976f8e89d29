/*
 * engine_int.h - what the engines share inside src/engine/: the table of
 * operations each engine fills, parameter checks, the stop-string scanner
 * and the building of candidates; and the embedded engine's projection
 * and the hooks its tests use. Not part of the public API.
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

/* When p->cancel asks: every candidate not done yet ends, cancelled;
 * true then. */
bool pwb__cands_cancel(pwb__cand *c, size_t n, const pwb_gen_params *p);

/* Moves n candidates into out (seed + i each); PWB_ENOMEM on failure. */
pwb_status pwb__cands_to_generation(pwb__cand *c, size_t n,
				    const pwb_gen_params *p,
				    pwb_generation *out);

/* Checks messages and params; a message naming the first problem. */
pwb_status pwb__gen_check(const pwb_engine *e, const pwb_chat_msg *msgs,
			  size_t n_msgs, const pwb_gen_params *p,
			  pwb_diag *diag);

/* ---- the embedded engine (llama.c) ---- */

/*
 * The projection of an embedding of n dimensions to dim (docs/engine.md,
 * "Embeddings"): out[j] = sum over i of v[i] * sign(i, j), then
 * L2-normalised; when n == dim, v itself, normalised. A zero vector gives
 * zeros.
 */
void pwb__llama_project(const float *v, size_t n, float *out, size_t dim);

/*
 * For tests only. What the embedded engine's generation contexts have
 * decoded since it was made: llama_decode calls and the tokens in them
 * (prompts and candidate steps; not embeddings). Counted atomically, so
 * calls on several threads add up. Zeros for another engine.
 */
typedef struct pwb__llama_stats {
	uint64_t decodes;
	uint64_t tokens;
} pwb__llama_stats;

pwb__llama_stats pwb__llama_get_stats(const pwb_engine *e);

/*
 * For tests only. The hidden state of each of the tokens pwb_engine_embed()
 * would embed for text (the start token first), unpooled and not
 * normalised, from a context of its own: *out has *n_tokens * *n_embd
 * floats and is the caller's to free(). PWB_EINVAL for another engine.
 */
pwb_status pwb__llama_token_states(pwb_engine *e, const char *text, size_t len,
				   float **out, size_t *n_tokens,
				   size_t *n_embd);

#endif
