/*
 * pwb/engine.h - text generation: an embedded llama.cpp model or any
 * OpenAI-compatible endpoint, behind one interface (DESIGN §7,
 * docs/engine.md).
 *
 * An engine turns a chat (system, user and assistant messages) into N
 * candidate answers, each from its own seed, and, where it can, a text into
 * a sentence embedding. The pipeline, the guard detector and the CLI use
 * only this interface.
 *
 * Ownership and threads: an engine is made once and shared by every
 * thread; pwb_engine_generate() and pwb_engine_embed() may be called from
 * several threads at once. The embedded engine keeps a pool of llama.cpp
 * contexts (pwb_llama_params.n_contexts): a call borrows one for its whole
 * length and waits when all are busy; the model's weights are shared and
 * read-only. The upstream engine makes one libcurl handle per call. What
 * a call returns belongs to the caller (pwb_generation_release()); what it
 * is given (messages, params, stop strings) is only read during the call.
 * pwb_engine_free() must not race with calls in flight.
 */
#ifndef PWB_ENGINE_H
#define PWB_ENGINE_H

#include <stddef.h>
#include <stdint.h>

#include "pwb/common.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct pwb_engine pwb_engine;

/* One chat message. role is "system", "user" or "assistant". */
typedef struct pwb_chat_msg {
	const char *role;
	const char *content;
} pwb_chat_msg;

#define PWB_ENGINE_MAX_N 16	  /* candidates of one call */
#define PWB_ENGINE_MAX_STOP 8	  /* stop strings */
#define PWB_ENGINE_MAX_TOKENS 8192 /* max_tokens */
#define PWB_ENGINE_MAX_EMBED 256   /* dimensions pwb_engine_embed() gives */
#define PWB_ENGINE_MAX_MSGS 256	  /* messages of one chat */
#define PWB_ENGINE_MAX_MSG_BYTES (4u * 1024 * 1024) /* text of one message */

/* Whether role is one a chat message may have: "system", "user" or
 * "assistant". */
bool pwb_chat_role_known(const char *role);

/*
 * Called with each piece of text as it is generated: candidate `cand`,
 * `len` bytes (a piece may end inside a UTF-8 sequence; the next piece
 * continues it). A non-zero return stops that candidate (finish
 * "cancelled"); the others go on. Called on the calling thread.
 */
typedef int (*pwb_engine_text_fn)(void *user, size_t cand, const char *text,
				  size_t len);

typedef struct pwb_gen_params {
	size_t n;	     /* candidates, 1..PWB_ENGINE_MAX_N; default 1 */
	uint64_t seed;	     /* candidate i samples with seed + i; default 1 */
	double temperature;  /* 0: greedy; default 0.8 */
	double top_p;	     /* (0, 1]; default 0.95 */
	size_t max_tokens;   /* per candidate; default 256 */
	const char *const *stop; /* up to PWB_ENGINE_MAX_STOP strings */
	size_t n_stop;
	int timeout_ms; /* for the whole call; 0: none */
	pwb_engine_text_fn on_text; /* NULL: no streaming */
	void *on_text_user;
	/* Polled while the call runs (between decoding steps; at least every
	 * 100 ms while an endpoint is silent): non-zero ends every candidate
	 * where it stands, finish "cancelled", and the call returns what was
	 * generated. NULL: never. Called on the calling thread. */
	int (*cancel)(void *user);
	void *cancel_user;
} pwb_gen_params;

pwb_gen_params pwb_gen_default_params(void);

/* Why a candidate ended. */
typedef enum pwb_finish {
	PWB_FINISH_STOP,      /* end of turn or a stop string */
	PWB_FINISH_LENGTH,    /* max_tokens reached */
	PWB_FINISH_CANCELLED, /* on_text or cancel returned non-zero */
} pwb_finish;

/* "stop", "length", "cancelled". */
const char *pwb_finish_str(pwb_finish f);

typedef struct pwb_candidate {
	char *text; /* NUL-terminated; a stop string is not included */
	size_t len;
	pwb_finish finish;
	size_t tokens; /* generated */
	uint64_t seed;
} pwb_candidate;

typedef struct pwb_generation {
	pwb_candidate *cands;
	size_t n;
	size_t prompt_tokens; /* 0 when the engine does not say */
	size_t completion_tokens;
	double seconds;
} pwb_generation;

void pwb_generation_release(pwb_generation *g);

/*
 * Generates p->n candidates for the chat. Fails, with a message naming the
 * engine, with PWB_EINVAL (bad params or messages), PWB_ETOOLARGE (the
 * prompt and max_tokens do not fit the context: never truncated
 * silently), PWB_EIO (the endpoint is down, timed out, or answered in a
 * way that cannot be read) or PWB_ENOMEM; *out is then empty.
 */
pwb_status pwb_engine_generate(pwb_engine *e, const pwb_chat_msg *msgs,
			       size_t n_msgs, const pwb_gen_params *p,
			       pwb_generation *out, pwb_diag *diag);

/*
 * The dimension of the sentence embeddings the engine gives, at most
 * PWB_ENGINE_MAX_EMBED; 0 when it gives none.
 */
size_t pwb_engine_embed_dim(const pwb_engine *e);

/*
 * The sentence embedding of text: the model's hidden states mean-pooled
 * over the text's tokens, projected to pwb_engine_embed_dim() dimensions
 * when the model has more (a fixed, seeded projection, docs/engine.md),
 * and L2-normalised. out has pwb_engine_embed_dim() floats. A text longer
 * than the context is embedded by its first context-full of tokens.
 */
pwb_status pwb_engine_embed(pwb_engine *e, const char *text, size_t len,
			    float *out, pwb_diag *diag);

/* "llama:stories260K.gguf", "openai:http://host:8080/v1 (model)". */
const char *pwb_engine_name(const pwb_engine *e);

void pwb_engine_free(pwb_engine *e);

/* ---- the embedded engine: llama.cpp ---- */

typedef struct pwb_llama_params {
	const char *model_path;	  /* a GGUF file */
	const char *backend_dir;  /* libggml-cpu-*.so; NULL: PWB_LLAMA_BACKENDS
				   * from the environment, else the build's */
	int n_threads;		  /* 0: the machine's cores */
	size_t n_ctx;		  /* tokens per candidate (the prompt and
				   * max_tokens); 0: min(model, 4096). Each
				   * of n_seq candidates has a cache this
				   * large */
	size_t n_contexts;	  /* the pool; default 1 */
	size_t n_seq;		  /* sequences per context (the largest N);
				   * default 4 */
	bool embeddings;	  /* give sentence embeddings; default true */
	pwb_log_fn log;		  /* llama.cpp's own log, at DEBUG */
	void *log_user;
} pwb_llama_params;

pwb_llama_params pwb_llama_default_params(void);

/*
 * Loads the model. Fails with PWB_ENOTFOUND (no such file), PWB_EPARSE
 * (not a GGUF model llama.cpp can load: the file is named, and what
 * llama.cpp said), PWB_EIO (no CPU backend found) or PWB_ENOMEM.
 */
pwb_status pwb_engine_llama_new(pwb_engine **out, const pwb_llama_params *p,
				pwb_diag *diag);

/*
 * The prompt format used for a model without a chat template: each
 * message as "<role>: <content>\n\n" (role capitalised), then
 * "Assistant:". Exposed for tests and docs.
 */
pwb_status pwb_engine_plain_prompt(const pwb_chat_msg *msgs, size_t n_msgs,
				   char **out);

/* ---- the upstream engine: an OpenAI-compatible endpoint ---- */

typedef struct pwb_openai_params {
	const char *url;	 /* base URL, e.g. "http://127.0.0.1:8080/v1" */
	const char *model;	 /* the "model" field sent; NULL: "default" */
	const char *api_key_env; /* the environment variable holding the API
				  * key (never logged); NULL: no key */
	int connect_timeout_ms;	 /* default 5000 */
	int timeout_ms;		 /* per call, when gen params give none;
				  * default 120000 */
	int retries;		 /* after the first try; default 2 */
	int backoff_ms;		 /* first backoff; doubles, with jitter;
				  * default 200 */
	bool stream;		 /* ask for SSE; default true */
	bool use_n;		 /* send n; false: N parallel requests of
				  * n = 1. Default true (and falls back when
				  * the endpoint returns fewer choices) */
	pwb_log_fn log;
	void *log_user;
} pwb_openai_params;

pwb_openai_params pwb_openai_default_params(void);

/* Fails with PWB_EINVAL (a URL that is not http(s), a key variable that
 * is not set) or PWB_ENOMEM. Nothing is sent before the first call. */
pwb_status pwb_engine_openai_new(pwb_engine **out, const pwb_openai_params *p,
				 pwb_diag *diag);

/* ---- the guard detector on an engine ---- */

/*
 * For pwb_bounds_params.guard: runs the judge's prompt as one user message
 * on `engine`, greedy, up to `max_tokens`, within `timeout_ms`. Any
 * failure of the engine is a failure of the guard (the check then fails
 * closed). guard_user is a pwb_engine_guard.
 */
typedef struct pwb_engine_guard {
	pwb_engine *engine;
	int timeout_ms;	   /* default 10000 */
	size_t max_tokens; /* default 32 */
} pwb_engine_guard;

pwb_status pwb_engine_guard_fn(void *guard_user, const char *prompt,
			       char **answer, pwb_diag *diag);

#ifdef __cplusplus
}
#endif

#endif
