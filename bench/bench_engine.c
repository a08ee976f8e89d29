/*
 * bench_engine.c - the embedded engine against a bare libllama loop
 * (DESIGN §13): tokens per second of pwb's engine beside a plain
 * decode-and-sample loop on the same model, threads and tokens; and four
 * candidates decoded in one batch beside four one after another.
 *
 *   build/bench/bench_engine [--json] [--model FILE] [--tokens N]
 *
 * Both loops decode the same prompt (the chat in the plain format, as
 * pwb's engine formats it for a model without a template), with the same
 * context size and threads, and then generate greedily; the bare loop
 * ignores the end of turn, and pwb's candidates are counted by the tokens
 * they generated.
 */
#include "bench.h"
#include "pwb/engine.h"

#include <llama.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define REPEATS 5
#define N_CTX 1024 /* both loops: 4 candidates of 200 tokens fit */

static const char *prompt_text = "Once upon a time, there was a little dog";

/* A bare loop: tokenize, decode the prompt, then sample greedily and
 * decode one token at a time. Returns generated tokens per second. */
static double bare_tokens_s(const char *path, int threads, int n_tokens)
{
	struct llama_model_params mp = llama_model_default_params();
	struct llama_model *m = llama_model_load_from_file(path, mp);
	if (!m)
		return 0;
	const struct llama_vocab *v = llama_model_get_vocab(m);
	struct llama_context_params cp = llama_context_default_params();
	cp.n_ctx = N_CTX;
	cp.n_batch = N_CTX;
	cp.n_threads = cp.n_threads_batch = threads;
	cp.no_perf = true;
	struct llama_context *ctx = llama_init_from_model(m, cp);
	/* The prompt pwb's engine decodes: the same chat, formatted the
	 * same way (this model has no template: the plain format). */
	pwb_chat_msg msg = {"user", prompt_text};
	char *text = NULL;
	if (pwb_engine_plain_prompt(&msg, 1, &text))
		return 0;
	llama_token toks[256];
	int n = llama_tokenize(v, text, (int)strlen(text), toks, 256, true,
			       true);
	free(text);
	struct llama_sampler *s =
	    llama_sampler_chain_init(llama_sampler_chain_default_params());
	llama_sampler_chain_add(s, llama_sampler_init_greedy());
	double best = 0;
	for (int r = 0; r < REPEATS; r++) {
		llama_memory_clear(llama_get_memory(ctx), true);
		double t0 = bench_now_s();
		llama_decode(ctx, llama_batch_get_one(toks, n));
		for (int i = 0; i < n_tokens; i++) {
			llama_token t = llama_sampler_sample(s, ctx, -1);
			char piece[64];
			llama_token_to_piece(v, t, piece, sizeof(piece), 0, false);
			llama_decode(ctx, llama_batch_get_one(&t, 1));
		}
		double tps = n_tokens / (bench_now_s() - t0);
		if (tps > best)
			best = tps;
	}
	llama_sampler_free(s);
	llama_free(ctx);
	llama_model_free(m);
	return best;
}

/* pwb's engine: n candidates per call, `calls` calls in a row. */
static double pwb_tokens_s(pwb_engine *e, size_t n, size_t calls,
			   int n_tokens)
{
	pwb_chat_msg msg = {"user", prompt_text};
	pwb_gen_params p = pwb_gen_default_params();
	p.n = n;
	p.temperature = 0;
	p.max_tokens = (size_t)n_tokens;
	double best = 0;
	for (int r = 0; r < REPEATS; r++) {
		size_t tokens = 0;
		double t0 = bench_now_s();
		for (size_t c = 0; c < calls; c++) {
			pwb_generation g;
			if (pwb_engine_generate(e, &msg, 1, &p, &g, NULL))
				return 0;
			tokens += g.completion_tokens;
			pwb_generation_release(&g);
		}
		double tps = (double)tokens / (bench_now_s() - t0);
		if (tps > best)
			best = tps;
	}
	return best;
}

int main(int argc, char **argv)
{
	const char *path = PWB_SOURCE_DIR "/../shared/models/stories260K.gguf";
	int n_tokens = 200;
	bool json = false;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--json"))
			json = true;
		else if (!strcmp(argv[i], "--model") && i + 1 < argc)
			path = argv[++i];
		else if (!strcmp(argv[i], "--tokens") && i + 1 < argc)
			n_tokens = (int)strtol(argv[++i], NULL, 10);
	}
	if (access(path, R_OK)) {
		fprintf(stderr, "bench_engine: no model at %s (--model FILE)\n",
			path);
		return 1;
	}
	int threads = 2;
	pwb_llama_params lp = pwb_llama_default_params();
	lp.model_path = path;
	lp.n_threads = threads;
	lp.n_ctx = N_CTX;
	lp.embeddings = false;
	pwb_engine *e = NULL;
	pwb_diag d;
	pwb_diag_init(&d);
	if (pwb_engine_llama_new(&e, &lp, &d)) {
		fprintf(stderr, "bench_engine: %s\n",
			d.n ? d.entries[0].message : "cannot load");
		return 1;
	}
	double pwb = pwb_tokens_s(e, 1, 1, n_tokens);
	double bare = bare_tokens_s(path, threads, n_tokens);
	double batched = pwb_tokens_s(e, 4, 1, n_tokens);
	double sequential = pwb_tokens_s(e, 1, 4, n_tokens);
	if (json)
		printf("{\"pwb_tokens_s\": %.0f, \"bare_tokens_s\": %.0f, "
		       "\"ratio\": %.3f, \"batched_n4_tokens_s\": %.0f, "
		       "\"sequential_n4_tokens_s\": %.0f, \"threads\": %d, "
		       "\"tokens\": %d}\n",
		       pwb, bare, bare > 0 ? pwb / bare : 0, batched,
		       sequential, threads, n_tokens);
	else
		printf("pwb %.0f tok/s, bare libllama %.0f tok/s (ratio %.3f); "
		       "4 candidates: batched %.0f tok/s, in a row %.0f "
		       "tok/s\n",
		       pwb, bare, bare > 0 ? pwb / bare : 0, batched,
		       sequential);
	pwb_engine_free(e);
	pwb_diag_release(&d);
	return 0;
}
