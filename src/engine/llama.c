/*
 * llama.c - the embedded engine: llama.cpp linked as a C library
 * (DESIGN §7, docs/engine.md).
 *
 * One model, shared read-only, and a pool of contexts. A call borrows a
 * context, decodes the prompt once on sequence 0, copies its cache to
 * sequences 1..N-1 (each has a cache of its own) and then decodes the N
 * candidates together: one batch per step, one token per sequence still
 * running, each sampled by its own sampler chain seeded seed + i (all
 * 64 bits folded into llama.cpp's 32, sampler_seed).
 */
#include "engine/engine_int.h"

#include <errno.h>
#include <ggml-backend.h>
#include <llama.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#ifndef PWB_LLAMA_BACKEND_DIR
#define PWB_LLAMA_BACKEND_DIR ""
#endif

#define PWB__LLAMA_CTX_MAX 4096u /* default context, when the model's is larger */
#define PWB__PIECE_MAX 256	 /* bytes of one token's text */

/* A context of the pool. */
typedef struct slot {
	struct llama_context *ctx;
	bool busy;
} slot;

typedef struct llama_engine {
	pwb_engine head;
	struct llama_model *model;
	const struct llama_vocab *vocab;
	char *tmpl; /* the model's chat template, or NULL */
	size_t n_ctx, n_seq;
	int n_threads;
	slot *slots;
	size_t n_slots;
	pthread_mutex_t lock;
	pthread_cond_t freed;
	/* What the pool decoded, for tests (pwb__llama_get_stats). */
	_Atomic uint64_t decodes, decoded;
	/* Embeddings: one context of its own, used by one call at a time,
	 * made by the first call (under elock): a pipeline whose preference
	 * model has no embeddings never pays for it. */
	bool embeddings;
	struct llama_context *ectx;
	size_t n_embd;
	pthread_mutex_t elock;
} llama_engine;

/* ---- once per process: backends and llama.cpp's log ---- */

static pthread_once_t backends_once = PTHREAD_ONCE_INIT;
static char backend_dir[4096];
static _Thread_local char last_error[512];

/* llama.cpp logs through one global callback; pwb keeps the last error
 * or warning of the calling thread to name it when a load fails. */
static void llama_log(enum ggml_log_level level, const char *text, void *user)
{
	(void)user;
	/* The first error says why; the lines after it only that it failed. */
	if ((level != GGML_LOG_LEVEL_ERROR && level != GGML_LOG_LEVEL_WARN) ||
	    last_error[0])
		return;
	size_t n = strcspn(text, "\n");
	if (n >= sizeof(last_error))
		n = sizeof(last_error) - 1;
	memcpy(last_error, text, n);
	last_error[n] = '\0';
}

static void load_backends(void)
{
	llama_log_set(llama_log, NULL);
	ggml_backend_load_all_from_path(backend_dir);
	llama_backend_init();
}

static const char *choose_backend_dir(const pwb_llama_params *p)
{
	if (p->backend_dir && *p->backend_dir)
		return p->backend_dir;
	const char *env = getenv("PWB_LLAMA_BACKENDS");
	return env && *env ? env : PWB_LLAMA_BACKEND_DIR;
}

pwb_llama_params pwb_llama_default_params(void)
{
	return (pwb_llama_params){
	    .n_contexts = 1,
	    .n_seq = 4,
	    .embeddings = true,
	};
}

/* ---- loading ---- */

/* The file exists, is a GGUF file, and fits in memory. */
static pwb_status check_file(const char *path, pwb_diag *diag)
{
	struct stat st;
	if (stat(path, &st)) {
		pwb_diag_add(diag, path, 0, 0, "cannot open the model: %s",
			     strerror(errno));
		return errno == ENOENT ? PWB_ENOTFOUND : PWB_EIO;
	}
	if (S_ISDIR(st.st_mode)) {
		pwb_diag_add(diag, path, 0, 0,
			     "is a folder, not a GGUF model file");
		return PWB_EPARSE;
	}
	if (!S_ISREG(st.st_mode)) { /* a FIFO or a device would block */
		pwb_diag_add(diag, path, 0, 0,
			     "not a GGUF model file (not a regular file)");
		return PWB_EPARSE;
	}
	FILE *f = fopen(path, "rb");
	if (!f) {
		pwb_diag_add(diag, path, 0, 0, "cannot open the model: %s",
			     strerror(errno));
		return PWB_EIO;
	}
	char magic[4] = {0};
	size_t got = fread(magic, 1, 4, f);
	fclose(f);
	if (!S_ISREG(st.st_mode) || got != 4 || memcmp(magic, "GGUF", 4)) {
		pwb_diag_add(diag, path, 0, 0,
			     "not a GGUF model file (it does not start with "
			     "'GGUF')");
		return PWB_EPARSE;
	}
	long pages = sysconf(_SC_PHYS_PAGES), psize = sysconf(_SC_PAGESIZE);
	if (pages > 0 && psize > 0 &&
	    (double)st.st_size > (double)pages * (double)psize) {
		pwb_diag_add(diag, path, 0, 0,
			     "the model (%.1f GiB) is larger than this "
			     "machine's memory (%.1f GiB)",
			     (double)st.st_size / (1 << 30),
			     (double)pages * (double)psize / (1 << 30));
		return PWB_ENOMEM;
	}
	return PWB_OK;
}

static struct llama_context *new_context(llama_engine *le, bool embed)
{
	struct llama_context_params cp = llama_context_default_params();
	cp.n_seq_max = embed ? 1 : (uint32_t)le->n_seq;
	/* Each sequence (candidate) has a cache of its own of n_ctx cells:
	 * attention then runs over one candidate's cells, not all of them
	 * (a unified cache shares the prompt's cells but made one candidate
	 * about 25 % slower, docs/BENCHMARKS.md). The prompt is copied. */
	cp.n_ctx = (uint32_t)(le->n_ctx * cp.n_seq_max);
	cp.n_batch = (uint32_t)le->n_ctx;
	/* Embeddings pool over one micro-batch: the whole text must be in
	 * it, or only its last part would be averaged. */
	cp.n_ubatch = embed || cp.n_batch < 512 ? cp.n_batch : 512;
	cp.n_threads = le->n_threads;
	cp.n_threads_batch = le->n_threads;
	cp.kv_unified = false;
	cp.no_perf = true;
	if (embed) {
		cp.embeddings = true;
		cp.pooling_type = LLAMA_POOLING_TYPE_MEAN;
	}
	return llama_init_from_model(le->model, cp);
}

static void engine_destroy(pwb_engine *e);
static pwb_status llama_generate(pwb_engine *e, const pwb_chat_msg *msgs,
				 size_t n_msgs, const pwb_gen_params *p,
				 pwb_generation *out, pwb_diag *diag);
/* The text's tokens as sequence 0, every position's output kept (for
 * pooling, or for each token's own state). */
static void fill_one_sequence(struct llama_batch *b, const llama_token *toks,
			      size_t n)
{
	b->n_tokens = (int32_t)n;
	for (size_t i = 0; i < n; i++) {
		b->token[i] = toks[i];
		b->pos[i] = (llama_pos)i;
		b->n_seq_id[i] = 1;
		b->seq_id[i][0] = 0;
		b->logits[i] = 1;
	}
}

static pwb_status llama_embed(pwb_engine *e, const char *text, size_t len,
			      float *out, pwb_diag *diag);

static const pwb__engine_ops llama_ops = {
    .generate = llama_generate,
    .embed = llama_embed,
    .destroy = engine_destroy,
};

static pwb_status load_model(llama_engine *le, const pwb_llama_params *p,
			     pwb_diag *diag)
{
	struct llama_model_params mp = llama_model_default_params();
	mp.n_gpu_layers = 0;
	last_error[0] = '\0';
	if (!(le->model = llama_model_load_from_file(p->model_path, mp))) {
		pwb_diag_add(diag, p->model_path, 0, 0,
			     "llama.cpp cannot load the model%s%s",
			     *last_error ? ": " : "", last_error);
		return PWB_EPARSE;
	}
	le->vocab = llama_model_get_vocab(le->model);
	const char *t = llama_model_chat_template(le->model, NULL);
	if (t && !(le->tmpl = pwb__strdup(t)))
		return PWB_ENOMEM;
	size_t train = (size_t)llama_model_n_ctx_train(le->model);
	if (p->n_ctx && train && p->n_ctx > train) {
		/* Past its training context a model's text falls apart:
		 * refused, not clamped silently. */
		pwb_diag_add(diag, p->model_path, 0, 0,
			     "a context of %zu tokens (--ctx) is more than "
			     "the %zu tokens the model was trained with",
			     p->n_ctx, train);
		return PWB_EINVAL;
	}
	le->n_ctx = p->n_ctx ? p->n_ctx
			     : (train && train < PWB__LLAMA_CTX_MAX
				    ? train
				    : PWB__LLAMA_CTX_MAX);
	le->n_embd = (size_t)llama_model_n_embd(le->model);
	return PWB_OK;
}

static pwb_status make_contexts(llama_engine *le, const pwb_llama_params *p,
				pwb_diag *diag)
{
	last_error[0] = '\0';
	le->n_slots = p->n_contexts;
	if (!(le->slots = pwb__calloc(le->n_slots, sizeof(*le->slots))))
		return PWB_ENOMEM;
	for (size_t i = 0; i < le->n_slots; i++)
		if (!(le->slots[i].ctx = new_context(le, false))) {
			pwb_diag_add(diag, p->model_path, 0, 0,
				     "llama.cpp cannot make a context of %zu "
				     "tokens%s%s",
				     le->n_ctx, *last_error ? ": " : "",
				     last_error);
			return PWB_ENOMEM;
		}
	le->embeddings = p->embeddings;
	if (p->embeddings)
		le->head.embed_dim = le->n_embd < PWB_ENGINE_MAX_EMBED
					 ? le->n_embd
					 : PWB_ENGINE_MAX_EMBED;
	return PWB_OK;
}

static pwb_status check_params(const pwb_llama_params *p, pwb_diag *diag)
{
	const char *bad = NULL;
	if (!p || !p->model_path || !*p->model_path)
		bad = "no model file given";
	else if (!p->n_contexts || p->n_contexts > 64)
		bad = "n_contexts must be 1 to 64";
	else if (!p->n_seq || p->n_seq > PWB_ENGINE_MAX_N)
		bad = "n_seq must be 1 to 16";
	else if (p->n_threads < 0 || p->n_threads > 256)
		bad = "n_threads must be 0 to 256";
	else if (p->n_ctx > 1u << 20 || (p->n_ctx && p->n_ctx < 16))
		bad = "n_ctx must be 0 or 16 to 1048576";
	if (bad)
		pwb_diag_add(diag, NULL, 0, 0, "llama engine: %s", bad);
	return bad ? PWB_EINVAL : PWB_OK;
}

pwb_status pwb_engine_llama_new(pwb_engine **out, const pwb_llama_params *p,
				pwb_diag *diag)
{
	*out = NULL;
	pwb_status st = check_params(p, diag);
	if (st || (st = check_file(p->model_path, diag)))
		return st;
	size_t mark = pwb__diag_mark(diag);
	if (!backend_dir[0])
		snprintf(backend_dir, sizeof(backend_dir), "%s",
			 choose_backend_dir(p));
	pthread_once(&backends_once, load_backends);
	if (!ggml_backend_dev_count()) {
		pwb_diag_add(diag, NULL, 0, 0,
			     "no llama.cpp CPU backend in '%s' (set "
			     "PWB_LLAMA_BACKENDS to the folder of "
			     "libggml-cpu-*.so)",
			     backend_dir);
		return PWB_EIO;
	}
	llama_engine *le = pwb__calloc(1, sizeof(*le));
	if (!le)
		return pwb__diag_fail(diag, mark, PWB_ENOMEM, "llama engine");
	le->head.ops = &llama_ops;
	atomic_init(&le->decodes, 0);
	atomic_init(&le->decoded, 0);
	pthread_mutex_init(&le->lock, NULL);
	pthread_mutex_init(&le->elock, NULL);
	pthread_cond_init(&le->freed, NULL);
	long cores = sysconf(_SC_NPROCESSORS_ONLN);
	le->n_threads = p->n_threads ? p->n_threads : (cores > 0 ? (int)cores : 1);
	le->n_seq = p->n_seq;
	const char *base = strrchr(p->model_path, '/');
	pwb__buf name;
	pwb__buf_init(&name, 0);
	pwb__buf_addf(&name, "llama:%s", base ? base + 1 : p->model_path);
	le->head.name = name.err ? NULL : pwb__buf_detach(&name);
	if (!le->head.name)
		st = PWB_ENOMEM;
	if (!st)
		st = load_model(le, p, diag);
	if (!st)
		st = make_contexts(le, p, diag);
	if (st) {
		engine_destroy(&le->head);
		return pwb__diag_fail(diag, mark, st, "llama engine");
	}
	*out = &le->head;
	return PWB_OK;
}

static void engine_destroy(pwb_engine *e)
{
	llama_engine *le = (llama_engine *)e;
	for (size_t i = 0; le->slots && i < le->n_slots; i++)
		if (le->slots[i].ctx)
			llama_free(le->slots[i].ctx);
	if (le->ectx)
		llama_free(le->ectx);
	if (le->model)
		llama_model_free(le->model);
	pthread_mutex_destroy(&le->lock);
	pthread_mutex_destroy(&le->elock);
	pthread_cond_destroy(&le->freed);
	free(le->slots);
	free(le->tmpl);
	free(le->head.name);
	free(le);
}

/* ---- the pool ---- */

static slot *slot_take(llama_engine *le)
{
	pthread_mutex_lock(&le->lock);
	for (;;) {
		for (size_t i = 0; i < le->n_slots; i++)
			if (!le->slots[i].busy) {
				le->slots[i].busy = true;
				pthread_mutex_unlock(&le->lock);
				return &le->slots[i];
			}
		pthread_cond_wait(&le->freed, &le->lock);
	}
}

static void slot_give(llama_engine *le, slot *s)
{
	llama_memory_clear(llama_get_memory(s->ctx), true);
	pthread_mutex_lock(&le->lock);
	s->busy = false;
	pthread_cond_signal(&le->freed);
	pthread_mutex_unlock(&le->lock);
}

/* ---- prompts and tokens ---- */

/* The chat as the model's template formats it, or in the plain format
 * when it has none (or one llama.cpp does not know). */
static pwb_status format_chat(const llama_engine *le, const pwb_chat_msg *msgs,
			      size_t n_msgs, char **out)
{
	if (!le->tmpl)
		return pwb_engine_plain_prompt(msgs, n_msgs, out);
	struct llama_chat_message *cm = pwb__calloc(n_msgs, sizeof(*cm));
	if (!cm)
		return PWB_ENOMEM;
	size_t total = 64;
	for (size_t i = 0; i < n_msgs; i++) {
		cm[i].role = msgs[i].role;
		cm[i].content = msgs[i].content;
		total += strlen(msgs[i].content) + 64;
	}
	pwb_status st = PWB_OK;
	char *buf = NULL;
	for (int pass = 0; pass < 2 && !st; pass++) {
		free(buf);
		if (total > INT32_MAX || !(buf = pwb__malloc(total))) {
			st = PWB_ENOMEM;
			break;
		}
		int32_t n = llama_chat_apply_template(le->tmpl, cm, n_msgs,
						      true, buf, (int32_t)total);
		if (n < 0) { /* a template llama.cpp does not know */
			free(buf);
			free(cm);
			return pwb_engine_plain_prompt(msgs, n_msgs, out);
		}
		if ((size_t)n < total) {
			buf[n] = '\0';
			*out = buf;
			free(cm);
			return PWB_OK;
		}
		total = (size_t)n + 1;
	}
	free(buf);
	free(cm);
	return st ? st : PWB_ENOMEM;
}

/* A growing array of tokens. */
typedef struct tokens {
	llama_token *t;
	size_t n, cap;
} tokens;

/* Appends the tokens of text: with `bos` the model's start token first;
 * with `special` the text may spell control tokens (template text only,
 * never a message's content). */
static pwb_status add_tokens(const llama_engine *le, const char *text,
			     size_t len, bool bos, bool special, tokens *out)
{
	if (len > INT32_MAX / 2)
		return PWB_ETOOLARGE;
	if (pwb__grow((void **)&out->t, &out->cap, out->n + len + 8,
		      sizeof(llama_token)))
		return PWB_ENOMEM;
	int32_t got = llama_tokenize(le->vocab, text, (int32_t)len,
				     out->t + out->n,
				     (int32_t)(out->cap - out->n), bos, special);
	if (got < 0)
		return PWB_EINVAL;
	out->n += (size_t)got;
	return PWB_OK;
}

/* U+2060 WORD JOINER: invisible, and no tokenizer reads it as part of a
 * control token. */
#define JOINER "\xE2\x81\xA0"
#define MAX_CONTROL 16 /* distinct control tokens looked for in one text */

/*
 * A message's content with every spelling of one of the model's control
 * tokens ("</s>", "<|im_start|>") broken by a word joiner after its first
 * byte, so that a user who types one writes text, not a new turn or an
 * end of turn; NULL in *out when the content spells none. The chat is
 * then tokenized in one piece with its template's control tokens, so the
 * tokens of ordinary text are exactly the model's own.
 */
static pwb_status neutralise(const llama_engine *le, const char *text,
			     char **out)
{
	*out = NULL;
	tokens t = {0};
	size_t len = strlen(text);
	if (pwb__grow((void **)&t.t, &t.cap, len + 8, sizeof(llama_token)))
		return PWB_ENOMEM;
	int32_t n = len > INT32_MAX / 2
			? -1
			: llama_tokenize(le->vocab, text, (int32_t)len, t.t,
					 (int32_t)t.cap, false, true);
	char pieces[MAX_CONTROL + 1][64];
	size_t n_pieces = 0;
	bool too_many = false; /* fail closed rather than pass one through */
	for (int32_t i = 0; i < n && !too_many; i++) {
		if (!(llama_vocab_get_attr(le->vocab, t.t[i]) &
		      LLAMA_TOKEN_ATTR_CONTROL))
			continue;
		int32_t k = llama_token_to_piece(le->vocab, t.t[i],
						 pieces[n_pieces], 63, 0, true);
		if (k <= 1)
			continue;
		pieces[n_pieces][k] = '\0';
		bool seen = false; /* each distinct spelling once */
		for (size_t p = 0; p < n_pieces && !seen; p++)
			seen = !strcmp(pieces[p], pieces[n_pieces]);
		if (!seen && n_pieces == MAX_CONTROL)
			too_many = true;
		else if (!seen)
			n_pieces++;
	}
	free(t.t);
	if (n < 0 || too_many)
		return PWB_EINVAL;
	if (!n_pieces)
		return PWB_OK;
	pwb__buf o;
	pwb__buf_init(&o, 0);
	for (size_t i = 0; i < len;) {
		size_t hit = 0;
		for (size_t p = 0; p < n_pieces && !hit; p++)
			if (!strncmp(text + i, pieces[p], strlen(pieces[p])))
				hit = strlen(pieces[p]);
		if (hit) {
			pwb__buf_addc(&o, text[i]);
			pwb__buf_adds(&o, JOINER);
			pwb__buf_add(&o, text + i + 1, hit - 1);
			i += hit;
		} else {
			pwb__buf_addc(&o, text[i++]);
		}
	}
	if (o.err) {
		pwb__buf_release(&o);
		return PWB_ENOMEM;
	}
	*out = pwb__buf_detach(&o);
	return *out ? PWB_OK : PWB_ENOMEM;
}

/* The chat's tokens: its messages neutralised, formatted, and tokenized
 * with the template's control tokens. */
static pwb_status tokenize_chat(const llama_engine *le,
				const pwb_chat_msg *msgs, size_t n_msgs,
				tokens *out)
{
	pwb_chat_msg *safe = pwb__calloc(n_msgs, sizeof(*safe));
	char **owned = pwb__calloc(n_msgs, sizeof(*owned));
	char *text = NULL;
	pwb_status st = safe && owned ? PWB_OK : PWB_ENOMEM;
	for (size_t i = 0; !st && i < n_msgs; i++) {
		st = neutralise(le, msgs[i].content, &owned[i]);
		safe[i] = (pwb_chat_msg){
		    msgs[i].role, owned[i] ? owned[i] : msgs[i].content};
	}
	if (!st)
		st = format_chat(le, safe, n_msgs, &text);
	if (!st)
		st = add_tokens(le, text, strlen(text), true, true, out);
	free(text);
	for (size_t i = 0; owned && i < n_msgs; i++)
		free(owned[i]);
	free(owned);
	free(safe);
	return st;
}

/* The tokens of a plain text (for embeddings): the start token, then the
 * text without control tokens. */
static pwb_status tokenize(const llama_engine *le, const char *text,
			   size_t len, llama_token **toks, size_t *n)
{
	tokens t = {0};
	pwb_status st = add_tokens(le, text, len, true, false, &t);
	if (st) {
		free(t.t);
		return st;
	}
	*toks = t.t;
	*n = t.n;
	return PWB_OK;
}

/* llama_decode on a context of the pool, counted for the tests. */
static int pool_decode(llama_engine *le, struct llama_context *ctx,
		       struct llama_batch b)
{
	atomic_fetch_add_explicit(&le->decodes, 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&le->decoded, (uint64_t)b.n_tokens,
				  memory_order_relaxed);
	return llama_decode(ctx, b);
}

/* Decodes tokens on sequence 0 from position 0, in batches; the logits of
 * the last token are kept. */
static int decode_prompt(llama_engine *le, struct llama_context *ctx,
			 const llama_token *toks, size_t n, size_t n_batch)
{
	struct llama_batch b = llama_batch_init((int32_t)n_batch, 0, 1);
	int rc = 0;
	for (size_t at = 0; at < n && !rc; at += n_batch) {
		size_t k = n - at < n_batch ? n - at : n_batch;
		b.n_tokens = (int32_t)k;
		for (size_t i = 0; i < k; i++) {
			b.token[i] = toks[at + i];
			b.pos[i] = (llama_pos)(at + i);
			b.n_seq_id[i] = 1;
			b.seq_id[i][0] = 0;
			b.logits[i] = at + i == n - 1;
		}
		rc = pool_decode(le, ctx, b);
	}
	llama_batch_free(b);
	return rc;
}

/*
 * The 32-bit seed of llama.cpp's sampler for the 64-bit seed s: a
 * splitmix64 step, its halves folded, so that seeds differing in any bit
 * (above bit 31 too) sample differently. LLAMA_DEFAULT_SEED would mean
 * "random" to llama.cpp: the same s must always give the same text.
 */
static uint32_t sampler_seed(uint64_t s)
{
	s += 0x9e3779b97f4a7c15u;
	s = (s ^ (s >> 30)) * 0xbf58476d1ce4e5b9u;
	s = (s ^ (s >> 27)) * 0x94d049bb133111ebu;
	s ^= s >> 31;
	uint32_t v = (uint32_t)(s ^ (s >> 32));
	return v == LLAMA_DEFAULT_SEED ? v - 1 : v;
}

static struct llama_sampler *new_sampler(const pwb_gen_params *p, size_t i)
{
	struct llama_sampler *s =
	    llama_sampler_chain_init(llama_sampler_chain_default_params());
	if (!s)
		return NULL;
	if (p->temperature <= 0) {
		llama_sampler_chain_add(s, llama_sampler_init_greedy());
		return s;
	}
	llama_sampler_chain_add(s, llama_sampler_init_top_p((float)p->top_p, 1));
	llama_sampler_chain_add(s, llama_sampler_init_temp((float)p->temperature));
	llama_sampler_chain_add(
	    s, llama_sampler_init_dist(sampler_seed(p->seed + i)));
	return s;
}

/* ---- generation ---- */

/* The state of one call: N candidates decoded together. */
typedef struct gen_run {
	llama_engine *le;
	struct llama_context *ctx;
	const pwb_gen_params *p;
	size_t n_prompt;
	pwb__cand cands[PWB_ENGINE_MAX_N];
	struct llama_sampler *smpl[PWB_ENGINE_MAX_N];
	int32_t out_idx[PWB_ENGINE_MAX_N]; /* where each samples from */
	double deadline;
} gen_run;

/* Appends token t to candidate i; true when the candidate is done. */
static bool take_token(gen_run *r, size_t i, llama_token t)
{
	pwb__cand *c = &r->cands[i];
	if (llama_vocab_is_eog(r->le->vocab, t)) {
		c->finish = PWB_FINISH_STOP;
		c->done = true;
	} else {
		char piece[PWB__PIECE_MAX];
		int32_t n = llama_token_to_piece(r->le->vocab, t, piece,
						 sizeof(piece), 0, false);
		c->tokens++;
		if (n > 0)
			pwb__cand_add(c, r->p, piece, (size_t)n);
		if (!c->done && c->tokens >= r->p->max_tokens) {
			c->finish = PWB_FINISH_LENGTH;
			c->done = true;
		}
	}
	pwb__cand_flush(c, r->p, i);
	return c->done;
}

/* One step: sample each running candidate, then decode the new tokens of
 * those still running in one batch. Returns the number still running, or
 * -1 when llama_decode failed. */
static int step(gen_run *r, struct llama_batch *b, size_t pos)
{
	size_t n = r->p->n;
	b->n_tokens = 0;
	for (size_t i = 0; i < n; i++) {
		if (r->cands[i].done)
			continue;
		llama_token t =
		    llama_sampler_sample(r->smpl[i], r->ctx, r->out_idx[i]);
		if (take_token(r, i, t))
			continue;
		int32_t k = b->n_tokens++;
		b->token[k] = t;
		b->pos[k] = (llama_pos)pos;
		b->n_seq_id[k] = 1;
		b->seq_id[k][0] = (llama_seq_id)i;
		b->logits[k] = 1;
		r->out_idx[i] = k;
	}
	if (!b->n_tokens)
		return 0;
	return pool_decode(r->le, r->ctx, *b) ? -1 : b->n_tokens;
}

static pwb_status check_fits(const gen_run *r, pwb_diag *diag)
{
	size_t need = r->n_prompt + r->p->max_tokens;
	if (r->p->n > r->le->n_seq) {
		pwb_diag_add(diag, NULL, 0, 0,
			     "%s: %zu candidates asked, the engine decodes at "
			     "most %zu together (n_seq)",
			     r->le->head.name, r->p->n, r->le->n_seq);
		return PWB_EINVAL;
	}
	if (need > r->le->n_ctx) {
		pwb_diag_add(diag, NULL, 0, 0,
			     "%s: the prompt (%zu tokens) and max_tokens "
			     "(%zu) do not fit the context of %zu tokens; "
			     "shorten the prompt or lower max_tokens",
			     r->le->head.name, r->n_prompt, r->p->max_tokens,
			     r->le->n_ctx);
		return PWB_ETOOLARGE;
	}
	return PWB_OK;
}

static pwb_status run_prompt(gen_run *r, const pwb_chat_msg *msgs,
			     size_t n_msgs, pwb_diag *diag)
{
	tokens toks = {0};
	pwb_status st = tokenize_chat(r->le, msgs, n_msgs, &toks);
	r->n_prompt = toks.n;
	if (!st && !(st = check_fits(r, diag)) &&
	    decode_prompt(r->le, r->ctx, toks.t, r->n_prompt, r->le->n_ctx)) {
		pwb_diag_add(diag, NULL, 0, 0,
			     "%s: llama.cpp could not decode the prompt",
			     r->le->head.name);
		st = PWB_EIO;
	}
	free(toks.t);
	if (st)
		return st;
	llama_memory_t mem = llama_get_memory(r->ctx);
	for (size_t i = 1; i < r->p->n; i++)
		llama_memory_seq_cp(mem, 0, (llama_seq_id)i, -1, -1);
	return PWB_OK;
}

static pwb_status run_candidates(gen_run *r, pwb_diag *diag)
{
	struct llama_batch b = llama_batch_init((int32_t)r->p->n, 0, 1);
	pwb_status st = PWB_OK;
	for (size_t i = 0; i < r->p->n; i++)
		r->out_idx[i] = -1; /* the prompt's last logits */
	for (size_t pos = r->n_prompt;; pos++) {
		int running = step(r, &b, pos);
		if (running < 0) {
			pwb_diag_add(diag, NULL, 0, 0,
				     "%s: llama.cpp failed to decode",
				     r->le->head.name);
			st = PWB_EIO;
		}
		if (running <= 0 || pwb__cands_cancel(r->cands, r->p->n, r->p))
			break;
		if (r->deadline && pwb__now() > r->deadline) {
			pwb_diag_add(diag, NULL, 0, 0,
				     "%s: timed out after %d ms",
				     r->le->head.name, r->p->timeout_ms);
			st = PWB_EIO;
			break;
		}
	}
	llama_batch_free(b);
	return st;
}

static pwb_status llama_generate(pwb_engine *e, const pwb_chat_msg *msgs,
				 size_t n_msgs, const pwb_gen_params *p,
				 pwb_generation *out, pwb_diag *diag)
{
	llama_engine *le = (llama_engine *)e;
	gen_run r = {.le = le, .p = p};
	if (p->timeout_ms)
		r.deadline = pwb__now() + p->timeout_ms / 1000.0;
	pwb_status st = PWB_OK;
	for (size_t i = 0; i < p->n; i++) {
		pwb__cand_init(&r.cands[i]);
		if (!(r.smpl[i] = new_sampler(p, i)))
			st = PWB_ENOMEM;
	}
	slot *s = NULL;
	if (!st) {
		s = slot_take(le);
		r.ctx = s->ctx;
		st = run_prompt(&r, msgs, n_msgs, diag);
	}
	if (!st)
		st = run_candidates(&r, diag);
	if (s)
		slot_give(le, s);
	if (!st)
		st = pwb__cands_to_generation(r.cands, p->n, p, out);
	out->prompt_tokens = r.n_prompt;
	for (size_t i = 0; i < p->n; i++) {
		pwb__cand_release(&r.cands[i]);
		if (r.smpl[i])
			llama_sampler_free(r.smpl[i]);
	}
	return st;
}

/* ---- embeddings ---- */

/* The sign of the projection entry (i, j): a fixed hash, the same in every
 * process, so that stored features stay comparable. docs/engine.md gives
 * it; a change of it is a change of every stored embedding. */
static float proj_sign(size_t i, size_t j)
{
	/* splitmix64's finaliser; its top bit (a low bit of a product
	 * depends on few input bits, and gave correlated columns). */
	uint64_t x = (uint64_t)i * 0x9E3779B97F4A7C15u ^ (uint64_t)j;
	x ^= x >> 30;
	x *= 0xBF58476D1CE4E5B9u;
	x ^= x >> 27;
	x *= 0x94D049BB133111EBu;
	x ^= x >> 31;
	return (x >> 63) ? 1.0f : -1.0f;
}

void pwb__llama_project(const float *v, size_t n, float *out, size_t dim)
{
	if (n == dim)
		memcpy(out, v, n * sizeof(float));
	else
		for (size_t j = 0; j < dim; j++) {
			double s = 0;
			for (size_t i = 0; i < n; i++)
				s += v[i] * proj_sign(i, j);
			out[j] = (float)s;
		}
	double norm = 0;
	for (size_t j = 0; j < dim; j++)
		norm += (double)out[j] * out[j];
	norm = sqrt(norm);
	for (size_t j = 0; j < dim; j++)
		out[j] = norm > 0 ? (float)(out[j] / norm) : 0.0f;
}

/* The tokens a text is embedded by: its first context-full (engine.h);
 * PWB_EINVAL when there are none. */
static pwb_status embed_tokens(llama_engine *le, const char *text, size_t len,
			       llama_token **toks, size_t *n)
{
	pwb_status st = tokenize(le, text, len, toks, n);
	if (st)
		return st;
	if (*n > le->n_ctx)
		*n = le->n_ctx;
	if (!*n) {
		free(*toks);
		*toks = NULL;
		return PWB_EINVAL;
	}
	return PWB_OK;
}

static pwb_status llama_embed(pwb_engine *e, const char *text, size_t len,
			      float *out, pwb_diag *diag)
{
	llama_engine *le = (llama_engine *)e;
	llama_token *toks = NULL;
	size_t n = 0;
	pwb_status st = embed_tokens(le, text, len, &toks, &n);
	if (st) {
		if (st == PWB_EINVAL)
			pwb_diag_add(diag, NULL, 0, 0, "%s: nothing to embed",
				     e->name);
		return st;
	}
	pthread_mutex_lock(&le->elock);
	if (!le->ectx && le->embeddings) {
		last_error[0] = '\0';
		le->ectx = new_context(le, true);
	}
	if (!le->ectx) {
		pwb_diag_add(diag, NULL, 0, 0,
			     "%s: llama.cpp cannot make an embedding "
			     "context%s%s",
			     e->name, *last_error ? ": " : "", last_error);
		pthread_mutex_unlock(&le->elock);
		free(toks);
		return PWB_ENOMEM;
	}
	struct llama_batch b = llama_batch_init((int32_t)n, 0, 1);
	fill_one_sequence(&b, toks, n);
	const float *v = NULL;
	if (!llama_decode(le->ectx, b))
		v = llama_get_embeddings_seq(le->ectx, 0);
	if (v)
		pwb__llama_project(v, le->n_embd, out, e->embed_dim);
	llama_batch_free(b);
	llama_memory_clear(llama_get_memory(le->ectx), true);
	pthread_mutex_unlock(&le->elock);
	free(toks);
	if (!v) {
		pwb_diag_add(diag, NULL, 0, 0,
			     "%s: llama.cpp gave no embedding", e->name);
		return PWB_EIO;
	}
	return PWB_OK;
}

/* ---- for tests (engine_int.h) ---- */

pwb__llama_stats pwb__llama_get_stats(const pwb_engine *e)
{
	pwb__llama_stats s = {0};
	if (!e || e->ops != &llama_ops)
		return s;
	llama_engine *le = (llama_engine *)e;
	s.decodes = atomic_load(&le->decodes);
	s.tokens = atomic_load(&le->decoded);
	return s;
}

pwb_status pwb__llama_token_states(pwb_engine *e, const char *text, size_t len,
				   float **out, size_t *n_tokens,
				   size_t *n_embd)
{
	*out = NULL;
	*n_tokens = *n_embd = 0;
	if (!e || e->ops != &llama_ops)
		return PWB_EINVAL;
	llama_engine *le = (llama_engine *)e;
	llama_token *toks = NULL;
	size_t n = 0;
	pwb_status st = embed_tokens(le, text, len, &toks, &n);
	if (st)
		return st;
	/* Unpooled: each token's own state, whatever llama_embed pools. */
	struct llama_context_params cp = llama_context_default_params();
	cp.n_seq_max = 1;
	cp.n_ctx = cp.n_batch = cp.n_ubatch = (uint32_t)le->n_ctx;
	cp.n_threads = cp.n_threads_batch = le->n_threads;
	cp.embeddings = true;
	cp.pooling_type = LLAMA_POOLING_TYPE_NONE;
	cp.no_perf = true;
	struct llama_context *ctx = llama_init_from_model(le->model, cp);
	float *states = pwb__calloc(n * le->n_embd, sizeof(float));
	struct llama_batch b = llama_batch_init((int32_t)n, 0, 1);
	st = ctx && states ? PWB_OK : PWB_ENOMEM;
	fill_one_sequence(&b, toks, n);
	if (!st && llama_decode(ctx, b))
		st = PWB_EIO;
	for (size_t i = 0; !st && i < n; i++) {
		const float *v = llama_get_embeddings_ith(ctx, (int32_t)i);
		if (!v)
			st = PWB_EIO;
		else
			memcpy(states + i * le->n_embd, v,
			       le->n_embd * sizeof(float));
	}
	llama_batch_free(b);
	if (ctx)
		llama_free(ctx);
	free(toks);
	if (st) {
		free(states);
		return st;
	}
	*out = states;
	*n_tokens = n;
	*n_embd = le->n_embd;
	return PWB_OK;
}
