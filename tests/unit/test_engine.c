/*
 * test_engine.c - the embedded engine (llama.cpp) on the tiny real model
 * stories260K.gguf (DESIGN §7, include/pwb/engine.h): seeds and
 * determinism, N candidates from one call, decoded together (one
 * llama_decode per step), greedy decoding, max_tokens, stop strings (cut,
 * never included, the earliest wins), streaming (every byte to on_text,
 * in order, per candidate; a cancelled candidate), timeouts, the context
 * limit (never truncated silently, exact at the boundary), bad
 * parameters, sentence embeddings (mean-pooled, checked against each
 * token's own state) and their projection above 256 dimensions (against
 * the formula of docs/engine.md), model files that are missing, not GGUF
 * or truncated, threads sharing a pool of contexts, the plain prompt
 * format and the guard detector on this engine.
 *
 * The hooks of src/engine/engine_int.h that exist for this file count the
 * engine's llama_decode calls and give each token's unpooled state.
 *
 * The model is PWB_MODEL, else ../shared/models/stories260K.gguf beside
 * the source tree (PWB_SOURCE_DIR, or found from this file's path); when
 * it is absent every test is skipped with a message saying where it was
 * looked for. Every sampled call has a fixed seed.
 */
/* cmocka needs these first, in this order. */
/* clang-format off */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
/* clang-format on */

#include <ctype.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine/engine_int.h"
#include "pwb/engine.h"

static char model_path[1024];
static bool have_model;
static pwb_engine *eng; /* shared: one context, 1 thread */
static char tmpdir[] = "/tmp/pwb-test-engine-XXXXXX";

static const pwb_chat_msg story[] = {{"user", "Tell me a story."}};

/* ---- finding the model ---- */

static void find_model(void)
{
	const char *env = getenv("PWB_MODEL");
	if (env && *env) {
		snprintf(model_path, sizeof(model_path), "%s", env);
	} else if ((env = getenv("PWB_SOURCE_DIR")) && *env) {
		snprintf(model_path, sizeof(model_path),
			 "%s/../shared/models/stories260K.gguf", env);
	} else {
		/* __FILE__ is .../tests/unit/test_engine.c when built by
		 * path: three folders up is the source tree. */
		char buf[900];
		snprintf(buf, sizeof(buf), "%s", __FILE__);
		for (int up = 0; up < 3; up++) {
			char *slash = strrchr(buf, '/');
			if (slash)
				*slash = '\0';
			else
				snprintf(buf, sizeof(buf), ".");
		}
		snprintf(model_path, sizeof(model_path),
			 "%s/../shared/models/stories260K.gguf", buf);
	}
	struct stat st;
	have_model = !stat(model_path, &st) && S_ISREG(st.st_mode);
}

#define NEED_MODEL()                                                           \
	do {                                                                   \
		if (!have_model) {                                             \
			print_message("skipped: the model %s is absent (set "  \
				      "PWB_MODEL to stories260K.gguf)\n",      \
				      model_path);                             \
			skip();                                                \
		}                                                              \
	} while (0)

static const char *first_msg(const pwb_diag *d)
{
	return d->n ? d->entries[0].message : "(no message)";
}

static bool diag_has(const pwb_diag *d, const char *word)
{
	for (size_t i = 0; i < d->n; i++)
		if (strstr(d->entries[i].message, word) ||
		    (d->entries[i].file && strstr(d->entries[i].file, word)))
			return true;
	return false;
}

static pwb_engine *new_engine(size_t n_ctx, size_t n_contexts)
{
	pwb_llama_params lp = pwb_llama_default_params();
	lp.model_path = model_path;
	lp.n_threads = 1; /* a tiny model: threads only add waiting */
	lp.n_ctx = n_ctx;
	lp.n_contexts = n_contexts;
	pwb_engine *e = NULL;
	pwb_diag d;
	pwb_diag_init(&d);
	pwb_status st = pwb_engine_llama_new(&e, &lp, &d);
	if (st)
		fail_msg("loading %s: %s: %s", model_path, pwb_status_str(st),
			 first_msg(&d));
	pwb_diag_release(&d);
	return e;
}

static int setup(void **state)
{
	(void)state;
	find_model();
	if (!mkdtemp(tmpdir))
		return -1;
	if (have_model)
		eng = new_engine(0, 1);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	pwb_engine_free(eng);
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	return system(cmd) == 0 ? 0 : -1;
}

static pwb_gen_params params(size_t n, uint64_t seed, size_t max_tokens)
{
	pwb_gen_params p = pwb_gen_default_params();
	p.n = n;
	p.seed = seed;
	p.max_tokens = max_tokens;
	return p;
}

static void generate_ok(pwb_engine *e, const pwb_chat_msg *m, size_t n_m,
			const pwb_gen_params *p, pwb_generation *g)
{
	pwb_diag d;
	pwb_diag_init(&d);
	pwb_status st = pwb_engine_generate(e, m, n_m, p, g, &d);
	if (st)
		fail_msg("generate: %s: %s", pwb_status_str(st), first_msg(&d));
	pwb_diag_release(&d);
	assert_int_equal(g->n, p->n);
	for (size_t i = 0; i < g->n; i++) {
		assert_non_null(g->cands[i].text);
		assert_int_equal(strlen(g->cands[i].text), g->cands[i].len);
	}
}

/* A text of `s` repeated to about `size` bytes (malloc'ed). */
static char *repeated(const char *s, size_t size)
{
	size_t sl = strlen(s), n = size / sl;
	char *t = malloc(n * sl + 1);
	assert_non_null(t);
	for (size_t i = 0; i < n; i++)
		memcpy(t + i * sl, s, sl);
	t[n * sl] = '\0';
	return t;
}

/* ---- seeds, N, greedy, max_tokens ---- */

static void test_same_seed_same_candidates(void **state)
{
	(void)state;
	NEED_MODEL();
	pwb_gen_params p = params(4, 42, 32);
	pwb_generation a, b;
	generate_ok(eng, story, 1, &p, &a);
	generate_ok(eng, story, 1, &p, &b);
	for (size_t i = 0; i < 4; i++) {
		assert_string_equal(a.cands[i].text, b.cands[i].text);
		assert_int_equal(a.cands[i].tokens, b.cands[i].tokens);
		assert_int_equal(a.cands[i].finish, b.cands[i].finish);
		assert_int_equal(a.cands[i].seed, 42 + i);
		assert_int_equal(b.cands[i].seed, 42 + i);
	}
	assert_int_equal(a.prompt_tokens, b.prompt_tokens);
	assert_true(a.prompt_tokens > 0);
	pwb_generation_release(&a);
	pwb_generation_release(&b);
	/* Another seed gives other text. */
	p.seed = 4242;
	generate_ok(eng, story, 1, &p, &b);
	pwb_generation_release(&a);
	p.seed = 42;
	generate_ok(eng, story, 1, &p, &a);
	assert_string_not_equal(a.cands[0].text, b.cands[0].text);
	pwb_generation_release(&a);
	pwb_generation_release(&b);
}

static void test_n_candidates_from_one_call(void **state)
{
	(void)state;
	NEED_MODEL();
	pwb_gen_params p = params(4, 7, 32);
	pwb_generation g;
	generate_ok(eng, story, 1, &p, &g);
	assert_int_equal(g.n, 4);
	size_t distinct = 0, sum = 0;
	for (size_t i = 0; i < 4; i++) {
		bool seen = false;
		for (size_t j = 0; j < i; j++)
			seen |= !strcmp(g.cands[i].text, g.cands[j].text);
		distinct += !seen;
		assert_true(g.cands[i].tokens > 0);
		assert_true(g.cands[i].tokens <= 32);
		sum += g.cands[i].tokens;
	}
	assert_true(distinct >= 2);
	assert_int_equal(g.completion_tokens, sum);
	assert_true(g.seconds >= 0);
	/* Candidate i samples with seed + i: a call of one candidate with
	 * seed 7 + 2 gives candidate 2's text. */
	pwb_gen_params one = params(1, 9, 32);
	pwb_generation h;
	generate_ok(eng, story, 1, &one, &h);
	assert_string_equal(h.cands[0].text, g.cands[2].text);
	pwb_generation_release(&h);
	pwb_generation_release(&g);
}

static void test_greedy_gives_identical_candidates(void **state)
{
	(void)state;
	NEED_MODEL();
	pwb_gen_params p = params(4, 3, 24);
	p.temperature = 0;
	pwb_generation g;
	generate_ok(eng, story, 1, &p, &g);
	assert_true(g.cands[0].len > 0);
	for (size_t i = 1; i < 4; i++) {
		assert_string_equal(g.cands[i].text, g.cands[0].text);
		assert_int_equal(g.cands[i].tokens, g.cands[0].tokens);
	}
	/* The seed does not matter when greedy. */
	pwb_gen_params q = p;
	q.seed = 999;
	q.n = 1;
	pwb_generation h;
	generate_ok(eng, story, 1, &q, &h);
	assert_string_equal(h.cands[0].text, g.cands[0].text);
	pwb_generation_release(&h);
	pwb_generation_release(&g);
}

static void test_max_tokens_respected(void **state)
{
	(void)state;
	NEED_MODEL();
	pwb_gen_params p = params(3, 11, 8);
	pwb_generation g;
	generate_ok(eng, story, 1, &p, &g);
	for (size_t i = 0; i < 3; i++) {
		assert_int_equal(g.cands[i].finish, PWB_FINISH_LENGTH);
		assert_string_equal(pwb_finish_str(g.cands[i].finish),
				    "length");
		assert_int_equal(g.cands[i].tokens, 8);
	}
	assert_int_equal(g.completion_tokens, 24);
	pwb_generation_release(&g);
	/* One token. */
	p = params(1, 11, 1);
	generate_ok(eng, story, 1, &p, &g);
	assert_int_equal(g.cands[0].tokens, 1);
	assert_int_equal(g.cands[0].finish, PWB_FINISH_LENGTH);
	pwb_generation_release(&g);
	assert_string_equal(pwb_finish_str(PWB_FINISH_STOP), "stop");
	assert_string_equal(pwb_finish_str(PWB_FINISH_CANCELLED), "cancelled");
}

/* ---- stop strings ---- */

static void test_stop_string_cuts(void **state)
{
	(void)state;
	NEED_MODEL();
	pwb_gen_params p = params(1, 21, 48);
	pwb_generation full;
	generate_ok(eng, story, 1, &p, &full);
	const char *t = full.cands[0].text;
	size_t len = full.cands[0].len;
	assert_true(len >= 40);
	/* A stop string of 5 printable bytes from the middle of the text
	 * (very likely across a token boundary). */
	size_t at = len / 2;
	char stop[6];
	memcpy(stop, t + at, 5);
	stop[5] = '\0';
	for (size_t i = 0; i < 5; i++)
		if ((unsigned char)stop[i] < 0x20 ||
		    (unsigned char)stop[i] >= 0x7f)
			fail_msg("pick another seed: '%s' is not printable",
				 stop);
	const char *never = "#@never@#";
	/* Another stop string from the end: the earliest in the text wins,
	 * whichever comes first in the list. */
	char later[8];
	memcpy(later, t + len - 6, 6);
	later[6] = '\0';
	size_t cut = (size_t)(strstr(t, stop) - t);
	size_t cut2 = (size_t)(strstr(t, later) - t);
	if (cut2 < cut)
		cut = cut2;
	assert_true(cut > 0);
	const char *stops[] = {never, later, stop};
	pwb_gen_params q = p;
	q.stop = stops;
	q.n_stop = 3;
	pwb_generation g;
	generate_ok(eng, story, 1, &q, &g);
	assert_int_equal(g.cands[0].finish, PWB_FINISH_STOP);
	assert_int_equal(g.cands[0].len, cut);
	assert_memory_equal(g.cands[0].text, t, cut);
	assert_null(strstr(g.cands[0].text, stop));
	assert_null(strstr(g.cands[0].text, later));
	assert_true(g.cands[0].tokens <= full.cands[0].tokens);
	pwb_generation_release(&g);
	/* A stop string that never comes changes nothing. */
	q.stop = &never;
	q.n_stop = 1;
	generate_ok(eng, story, 1, &q, &g);
	assert_string_equal(g.cands[0].text, t);
	assert_int_equal(g.cands[0].finish, full.cands[0].finish);
	pwb_generation_release(&g);
	/* A stop string at the very start gives an empty candidate. */
	char head[4];
	memcpy(head, t, 3);
	head[3] = '\0';
	const char *hs = head;
	q.stop = &hs;
	generate_ok(eng, story, 1, &q, &g);
	assert_int_equal(g.cands[0].len, 0);
	assert_string_equal(g.cands[0].text, "");
	assert_int_equal(g.cands[0].finish, PWB_FINISH_STOP);
	pwb_generation_release(&g);
	pwb_generation_release(&full);
}

/*
 * Two stop strings that complete in the same token: the earlier match in
 * the text wins, whatever their order in the list (the text never holds
 * the first bytes of a stop string that was matched). Greedy, this model
 * writes " Anna, I'm sorry ..." with the token "or": with the stops
 * {"r", "or"} and {"or", "r"} alike the text is " Anna, I'm s". (An
 * earlier pwb__cand_add() took the first string of the list that matched
 * and gave " Anna, I'm so" for {"r", "or"}.)
 */
typedef struct piece_rec {
	size_t off[64], len[64], n, total;
} piece_rec;

static int on_piece(void *user, size_t cand, const char *text, size_t len)
{
	piece_rec *r = user;
	(void)cand;
	(void)text;
	if (r->n < 64) {
		r->off[r->n] = r->total;
		r->len[r->n++] = len;
	}
	r->total += len;
	return 0;
}

static void test_stop_strings_in_one_token(void **state)
{
	(void)state;
	NEED_MODEL();
	piece_rec pr = {0};
	pwb_gen_params p = params(1, 1, 32);
	p.temperature = 0;
	p.on_text = on_piece;
	p.on_text_user = &pr;
	pwb_generation full;
	generate_ok(eng, story, 1, &p, &full);
	const char *t = full.cands[0].text;
	/* A token of 2+ printable bytes "..xy" where "xy" and "y" first
	 * occur in the text in that token. */
	char y[2] = {0}, xy[3] = {0};
	size_t want = SIZE_MAX;
	for (size_t i = 0; i < pr.n && want == SIZE_MAX; i++) {
		if (pr.len[i] < 2)
			continue;
		size_t end = pr.off[i] + pr.len[i];
		y[0] = t[end - 1];
		xy[0] = t[end - 2];
		xy[1] = t[end - 1];
		if (!isgraph((unsigned char)xy[0]) ||
		    !isgraph((unsigned char)xy[1]))
			continue;
		if ((size_t)(strstr(t, y) - t) == end - 1 &&
		    (size_t)(strstr(t, xy) - t) == end - 2)
			want = end - 2;
	}
	if (want == SIZE_MAX)
		fail_msg("no token fits the test in '%s'", t);
	p.on_text = NULL;
	for (int order = 0; order < 2; order++) {
		const char *stops[2] = {order ? xy : y, order ? y : xy};
		p.stop = stops;
		p.n_stop = 2;
		pwb_generation g;
		generate_ok(eng, story, 1, &p, &g);
		print_message("stops {'%s', '%s'}: '%s'\n", stops[0], stops[1],
			      g.cands[0].text);
		bool right =
		    g.cands[0].len == want && !memcmp(g.cands[0].text, t, want);
		pwb_generation_release(&g);
		if (!right) {
			pwb_generation_release(&full);
			fail_msg("stops {'%s', '%s'}: want the text cut at %zu "
				 "(before '%s')",
				 stops[0], stops[1], want, xy);
		}
	}
	pwb_generation_release(&full);
}

/* ---- streaming ---- */

typedef struct stream_rec {
	char buf[4][4096];
	size_t len[4];
	size_t pieces[4];
	size_t bad_cand;
	size_t cancel_cand; /* SIZE_MAX: none */
} stream_rec;

static int on_text(void *user, size_t cand, const char *text, size_t len)
{
	stream_rec *r = user;
	if (cand >= 4) {
		r->bad_cand++;
		return 0;
	}
	assert_true(len > 0);
	assert_true(r->len[cand] + len < sizeof(r->buf[cand]));
	memcpy(r->buf[cand] + r->len[cand], text, len);
	r->len[cand] += len;
	r->pieces[cand]++;
	return cand == r->cancel_cand;
}

static void test_streaming_every_byte_in_order(void **state)
{
	(void)state;
	NEED_MODEL();
	/* Without stop strings, then with some (held-back bytes that turn
	 * out not to start a stop string must still be sent). */
	const char *stops[] = {"Once upon", "\n\n", "the end"};
	for (int with_stop = 0; with_stop < 2; with_stop++) {
		stream_rec *r = calloc(1, sizeof(*r));
		assert_non_null(r);
		r->cancel_cand = SIZE_MAX;
		pwb_gen_params p = params(4, 31, 40);
		p.on_text = on_text;
		p.on_text_user = r;
		if (with_stop) {
			p.stop = stops;
			p.n_stop = 3;
		}
		pwb_generation g;
		generate_ok(eng, story, 1, &p, &g);
		assert_int_equal(r->bad_cand, 0);
		for (size_t i = 0; i < 4; i++) {
			assert_int_equal(r->len[i], g.cands[i].len);
			assert_memory_equal(r->buf[i], g.cands[i].text,
					    g.cands[i].len);
			if (g.cands[i].tokens >= 10)
				assert_true(r->pieces[i] >= 2);
		}
		/* Streaming changes nothing in what is generated. */
		pwb_gen_params q = p;
		q.on_text = NULL;
		pwb_generation h;
		generate_ok(eng, story, 1, &q, &h);
		for (size_t i = 0; i < 4; i++)
			assert_string_equal(h.cands[i].text, g.cands[i].text);
		pwb_generation_release(&h);
		pwb_generation_release(&g);
		free(r);
	}
}

static void test_streaming_cancel_one(void **state)
{
	(void)state;
	NEED_MODEL();
	stream_rec *r = calloc(1, sizeof(*r));
	assert_non_null(r);
	r->cancel_cand = 1;
	pwb_gen_params p = params(3, 41, 24);
	p.on_text = on_text;
	p.on_text_user = r;
	pwb_generation g;
	generate_ok(eng, story, 1, &p, &g);
	assert_int_equal(g.cands[1].finish, PWB_FINISH_CANCELLED);
	assert_string_equal(pwb_finish_str(g.cands[1].finish), "cancelled");
	assert_int_equal(r->pieces[1], 1); /* nothing after the "stop" */
	for (size_t i = 0; i < 3; i += 2) {
		assert_int_not_equal(g.cands[i].finish, PWB_FINISH_CANCELLED);
		assert_int_equal(r->len[i], g.cands[i].len);
		assert_memory_equal(r->buf[i], g.cands[i].text, g.cands[i].len);
	}
	assert_true(g.cands[1].tokens < g.cands[0].tokens ||
		    g.cands[1].tokens < g.cands[2].tokens);
	pwb_generation_release(&g);
	free(r);
}

/* ---- one batch per step ---- */

/*
 * docs/engine.md: the prompt is decoded once, then the N candidates
 * together, one llama_decode per step with one token for each candidate
 * still running. So N candidates cost as many llama_decode calls as one;
 * only the tokens in them grow. A candidate's last token (its
 * max_tokens-th, or the one on which on_text stopped it) is sampled but
 * never decoded.
 */
static void test_candidates_decoded_in_one_batch(void **state)
{
	(void)state;
	NEED_MODEL();
	const size_t steps = 8;
	for (size_t n = 1; n <= 4; n += 3) {
		pwb_gen_params p = params(n, 11, steps);
		pwb__llama_stats before = pwb__llama_get_stats(eng);
		pwb_generation g;
		generate_ok(eng, story, 1, &p, &g);
		pwb__llama_stats after = pwb__llama_get_stats(eng);
		for (size_t i = 0; i < n; i++) {
			assert_int_equal(g.cands[i].finish, PWB_FINISH_LENGTH);
			assert_int_equal(g.cands[i].tokens, steps);
		}
		/* The prompt (far shorter than the context) in one call. */
		assert_int_equal(after.decodes - before.decodes,
				 1 + (steps - 1));
		assert_int_equal(after.tokens - before.tokens,
				 g.prompt_tokens + n * (steps - 1));
		pwb_generation_release(&g);
	}
	/* A candidate that has ended is no longer in the batch: on_text
	 * stops candidate 1 at its first piece, the others go on. */
	stream_rec *r = calloc(1, sizeof(*r));
	assert_non_null(r);
	r->cancel_cand = 1;
	pwb_gen_params p = params(4, 11, steps);
	p.on_text = on_text;
	p.on_text_user = r;
	pwb__llama_stats before = pwb__llama_get_stats(eng);
	pwb_generation g;
	generate_ok(eng, story, 1, &p, &g);
	pwb__llama_stats after = pwb__llama_get_stats(eng);
	assert_int_equal(g.cands[1].finish, PWB_FINISH_CANCELLED);
	size_t decoded = g.cands[1].tokens - 1;
	for (size_t i = 0; i < 4; i++) {
		if (i == 1)
			continue;
		assert_int_equal(g.cands[i].finish, PWB_FINISH_LENGTH);
		decoded += steps - 1;
	}
	assert_int_equal(after.decodes - before.decodes, 1 + (steps - 1));
	assert_int_equal(after.tokens - before.tokens,
			 g.prompt_tokens + decoded);
	pwb_generation_release(&g);
	free(r);
}

/* ---- timeouts ---- */

/* Streams slowly: each piece takes 20 ms. */
static int on_text_slowly(void *user, size_t cand, const char *text, size_t len)
{
	(void)cand;
	(void)text;
	(void)len;
	(*(size_t *)user)++;
	usleep(20 * 1000);
	return 0;
}

/*
 * timeout_ms bounds the whole call; the engine checks it between decoding
 * steps and fails with PWB_EIO naming the engine and the timeout. 200
 * greedy tokens at 20 ms a piece would take 4 s; the deadline of 100 ms
 * has passed by the 6th piece, and the call stops at the step after it
 * (the bound below leaves room).
 */
static void test_timeout_stops_generation(void **state)
{
	(void)state;
	NEED_MODEL();
	size_t pieces = 0;
	pwb_gen_params p = params(1, 5, 200);
	p.temperature = 0; /* greedy on this model does not stop early */
	p.timeout_ms = 100;
	p.on_text = on_text_slowly;
	p.on_text_user = &pieces;
	pwb_diag d;
	pwb_diag_init(&d);
	pwb_generation g;
	pwb_status st = pwb_engine_generate(eng, story, 1, &p, &g, &d);
	if (st != PWB_EIO)
		fail_msg("want EIO after 100 ms, got %s after %zu pieces",
			 pwb_status_str(st), pieces);
	assert_int_equal(g.n, 0);
	assert_null(g.cands);
	assert_true(diag_has(&d, "timed out after 100 ms"));
	assert_true(diag_has(&d, "stories260K"));
	assert_true(pieces >= 1 && pieces <= 10);
	pwb_diag_release(&d);
	/* The context went back to the pool: the next call works. */
	p = params(1, 5, 8);
	generate_ok(eng, story, 1, &p, &g);
	pwb_generation_release(&g);
}

/* ---- the context ---- */

static void test_context_limit(void **state)
{
	(void)state;
	NEED_MODEL();
	pwb_engine *e = new_engine(512, 1);
	pwb_diag d;
	pwb_diag_init(&d);
	/* A prompt far longer than 512 tokens. */
	char *longp = repeated("Once upon a time there was a cat. ", 8000);
	pwb_chat_msg m = {"user", longp};
	pwb_gen_params p = params(1, 1, 16);
	pwb_generation g;
	pwb_status st = pwb_engine_generate(e, &m, 1, &p, &g, &d);
	assert_int_equal(st, PWB_ETOOLARGE);
	assert_int_equal(g.n, 0);
	assert_null(g.cands);
	assert_true(diag_has(&d, "context of 512 tokens"));
	assert_true(diag_has(&d, "stories260K"));
	pwb_diag_clear(&d);
	/* The boundary: each candidate has a context of its own, so a short
	 * prompt and max_tokens exactly filling it is answered for N = 4;
	 * one token more is refused. */
	p = params(4, 1, 4);
	generate_ok(e, story, 1, &p, &g);
	size_t n_prompt = g.prompt_tokens;
	pwb_generation_release(&g);
	assert_true(n_prompt > 0 && n_prompt < 100);
	size_t fit = 512 - n_prompt;
	p = params(4, 1, fit + 1);
	st = pwb_engine_generate(e, story, 1, &p, &g, &d);
	assert_int_equal(st, PWB_ETOOLARGE);
	assert_true(diag_has(&d, "context of 512 tokens"));
	pwb_diag_clear(&d);
	p = params(4, 1, fit);
	p.temperature = 0; /* greedy on this model does not stop early */
	generate_ok(e, story, 1, &p, &g);
	pwb_generation_release(&g);
	/* The engine is still fine after a refusal. */
	p = params(1, 1, 8);
	generate_ok(e, story, 1, &p, &g);
	pwb_generation_release(&g);
	pwb_diag_release(&d);
	free(longp);
	pwb_engine_free(e);
}

/* ---- bad parameters ---- */

static void expect_einval(const pwb_chat_msg *m, size_t n_m,
			  const pwb_gen_params *p, const char *word)
{
	pwb_diag d;
	pwb_diag_init(&d);
	pwb_generation g;
	pwb_status st = pwb_engine_generate(eng, m, n_m, p, &g, &d);
	if (st != PWB_EINVAL)
		fail_msg("want EINVAL (%s), got %s", word, pwb_status_str(st));
	assert_int_equal(g.n, 0);
	assert_null(g.cands);
	if (!diag_has(&d, word))
		fail_msg("the message '%s' does not say '%s'", first_msg(&d),
			 word);
	pwb_diag_release(&d);
}

static void test_bad_params(void **state)
{
	(void)state;
	NEED_MODEL();
	pwb_gen_params p = params(0, 1, 8);
	expect_einval(story, 1, &p, "n must be");
	p.n = 17;
	expect_einval(story, 1, &p, "n must be");
	/* More than the engine decodes together (n_seq, 4 by default). */
	p.n = 5;
	expect_einval(story, 1, &p, "n_seq");
	p = params(1, 1, 8);
	p.top_p = 0;
	expect_einval(story, 1, &p, "top_p");
	p.top_p = 1.5;
	expect_einval(story, 1, &p, "top_p");
	p = params(1, 1, 8);
	p.temperature = -1;
	expect_einval(story, 1, &p, "temperature");
	p = params(1, 1, 0);
	expect_einval(story, 1, &p, "max_tokens");
	p = params(1, 1, 8);
	const char *empty = "";
	p.stop = &empty;
	p.n_stop = 1;
	expect_einval(story, 1, &p, "stop");
	p = params(1, 1, 8);
	pwb_chat_msg robot[] = {{"user", "Hi."}, {"robot", "Beep."}};
	expect_einval(robot, 2, &p, "robot");
	pwb_chat_msg none = {"user", NULL};
	expect_einval(&none, 1, &p, "no content");
	expect_einval(story, 0, &p, "message");
	pwb_generation g;
	assert_int_equal(pwb_engine_generate(eng, story, 1, NULL, &g, NULL),
			 PWB_EINVAL);
	assert_int_equal(pwb_engine_generate(NULL, story, 1, &p, &g, NULL),
			 PWB_EINVAL);
}

/* ---- embeddings ---- */

static void embed_ok(const char *text, float *v)
{
	pwb_diag d;
	pwb_diag_init(&d);
	pwb_status st = pwb_engine_embed(eng, text, strlen(text), v, &d);
	if (st)
		fail_msg("embed: %s: %s", pwb_status_str(st), first_msg(&d));
	pwb_diag_release(&d);
}

static void test_embeddings(void **state)
{
	(void)state;
	NEED_MODEL();
	size_t dim = pwb_engine_embed_dim(eng);
	assert_int_equal(dim, 64);
	float a[PWB_ENGINE_MAX_EMBED], b[PWB_ENGINE_MAX_EMBED],
	    c[PWB_ENGINE_MAX_EMBED];
	embed_ok("The cat sat on the mat.", a);
	embed_ok("The cat sat on the mat.", b);
	embed_ok("Lily went to the park to play with her dog.", c);
	double na = 0, nc = 0, diff = 0;
	for (size_t i = 0; i < dim; i++) {
		assert_true(isfinite(a[i]));
		na += (double)a[i] * a[i];
		nc += (double)c[i] * c[i];
		diff += fabs((double)a[i] - c[i]);
		assert_true(a[i] == b[i]);
	}
	assert_true(fabs(sqrt(na) - 1) < 1e-4);
	assert_true(fabs(sqrt(nc) - 1) < 1e-4);
	assert_true(diff > 1e-3);
	/* Only len bytes are read. */
	const char *t = "The cat sat on the mat.XXXXXXXX";
	pwb_diag d;
	pwb_diag_init(&d);
	assert_int_equal(pwb_engine_embed(eng, t, 23, b, &d), PWB_OK);
	assert_memory_equal(a, b, dim * sizeof(float));
	/* A text longer than the context is embedded by its first
	 * context-full: no error. */
	char *big = repeated("The dog ran to the big red ball. ", 40000);
	assert_int_equal(pwb_engine_embed(eng, big, strlen(big), b, &d),
			 PWB_OK);
	double nb = 0;
	for (size_t i = 0; i < dim; i++)
		nb += (double)b[i] * b[i];
	assert_true(fabs(sqrt(nb) - 1) < 1e-4);
	free(big);
	assert_int_equal(pwb_engine_embed(eng, NULL, 0, a, &d), PWB_EINVAL);
	pwb_diag_release(&d);
	/* An engine made without embeddings gives none, and says so. */
	pwb_llama_params lp = pwb_llama_default_params();
	lp.model_path = model_path;
	lp.n_threads = 1;
	lp.embeddings = false;
	pwb_engine *e = NULL;
	pwb_diag_init(&d);
	assert_int_equal(pwb_engine_llama_new(&e, &lp, &d), PWB_OK);
	assert_int_equal(pwb_engine_embed_dim(e), 0);
	assert_int_equal(pwb_engine_embed(e, "x", 1, a, &d), PWB_EINVAL);
	assert_true(diag_has(&d, "no embeddings"));
	pwb_diag_release(&d);
	pwb_engine_free(e);
}

/* The L2-normalised mean of rows from..to-1 of n_embd-wide states. */
static void normalised_mean(const float *h, size_t from, size_t to,
			    size_t n_embd, double *out)
{
	double norm = 0;
	for (size_t j = 0; j < n_embd; j++) {
		out[j] = 0;
		for (size_t t = from; t < to; t++)
			out[j] += h[t * n_embd + j];
		out[j] /= (double)(to - from);
		norm += out[j] * out[j];
	}
	for (size_t j = 0; j < n_embd; j++)
		out[j] /= sqrt(norm);
}

static double max_diff(const float *a, const double *b, size_t n)
{
	double m = 0;
	for (size_t j = 0; j < n; j++)
		if (fabs(a[j] - b[j]) > m)
			m = fabs(a[j] - b[j]);
	return m;
}

/*
 * engine.h: the embedding is the model's hidden states mean-pooled over
 * the text's tokens, then L2-normalised. The mean is taken here, from
 * each token's own state (a context without pooling, the engine's test
 * hook), and must match pwb_engine_embed(); the first or the last token's
 * state alone is far from it. This model has 64 dimensions: no projection.
 */
static void test_embedding_is_mean_pooled(void **state)
{
	(void)state;
	NEED_MODEL();
	static const char *const texts[] = {
	    "The cat sat on the mat.",
	    "Lily went to the park to play with her dog. They ran and ran "
	    "until the sun went down.",
	};
	for (size_t k = 0; k < PWB_ARRAY_LEN(texts); k++) {
		const char *t = texts[k];
		float *h = NULL;
		size_t n = 0, n_embd = 0;
		assert_int_equal(
		    pwb__llama_token_states(eng, t, strlen(t), &h, &n, &n_embd),
		    PWB_OK);
		assert_int_equal(n_embd, pwb_engine_embed_dim(eng));
		assert_true(n >= 6);
		double mean[64], first[64], last[64];
		assert_true(n_embd <= 64);
		normalised_mean(h, 0, n, n_embd, mean);
		normalised_mean(h, 0, 1, n_embd, first);
		normalised_mean(h, n - 1, n, n_embd, last);
		free(h);
		float got[PWB_ENGINE_MAX_EMBED];
		embed_ok(t, got);
		double dm = max_diff(got, mean, n_embd);
		double df = max_diff(got, first, n_embd);
		double dl = max_diff(got, last, n_embd);
		print_message("'%.20s...': %zu tokens; off the mean by %.2g, "
			      "the first by %.2g, the last by %.2g\n",
			      t, n, dm, df, dl);
		assert_true(dm < 1e-4);
		assert_true(df > 0.05);
		assert_true(dl > 0.05);
	}
}

/* The sign of projection entry (i, j) as docs/engine.md gives it, written
 * out here rather than taken from the engine. */
static double doc_sign(uint64_t i, uint64_t j)
{
	uint64_t x = (i * 0x9E3779B97F4A7C15u) ^ j;
	x ^= x >> 30;
	x *= 0xBF58476D1CE4E5B9u;
	x ^= x >> 27;
	x *= 0x94D049BB133111EBu;
	x ^= x >> 31;
	return (x >> 63) ? 1 : -1;
}

/*
 * A model of more than 256 dimensions (stories260K has 64, so the engine
 * never projects it): pwb__llama_project() gives 256 dimensions,
 * out[j] = sum of v[i] * sign(i, j), L2-normalised (docs/engine.md), the
 * same on every call.
 */
static void test_projection_above_256(void **state)
{
	(void)state;
	enum { N = 300, DIM = PWB_ENGINE_MAX_EMBED };
	static float v[N], a[DIM], b[DIM];
	/* By hand from the formula: sign(0, 0): x stays 0, its top bit 0,
	 * so -1. Others worked out once, from the formula in docs/engine.md
	 * (python3, arbitrary-precision integers masked to 64 bits). */
	assert_true(doc_sign(0, 0) == -1);
	assert_true(doc_sign(0, 1) == -1);
	assert_true(doc_sign(1, 0) == 1);
	assert_true(doc_sign(5, 7) == -1);
	/* A one-hot vector picks row i of the projection: 256 signs over
	 * sqrt(256) = 16, exactly. Rows past 256 count as much as the
	 * first ones (no truncation). */
	static const size_t rows[] = {0, 1, 255, 256, 299};
	for (size_t r = 0; r < PWB_ARRAY_LEN(rows); r++) {
		memset(v, 0, sizeof(v));
		v[rows[r]] = 3.5f;
		pwb__llama_project(v, N, a, DIM);
		for (size_t j = 0; j < DIM; j++)
			if (a[j] != (float)(doc_sign(rows[r], j) / 16))
				fail_msg("row %zu, column %zu: %g, want %g",
					 rows[r], j, a[j],
					 doc_sign(rows[r], j) / 16);
	}
	/* Any vector: the formula, normalised; the same on every call. */
	double want[DIM], norm = 0;
	for (size_t i = 0; i < N; i++)
		v[i] = (float)sin(0.37 * (double)i + 1.0) * (float)(1 + i % 7);
	for (size_t j = 0; j < DIM; j++) {
		want[j] = 0;
		for (size_t i = 0; i < N; i++)
			want[j] += v[i] * doc_sign(i, j);
		norm += want[j] * want[j];
	}
	pwb__llama_project(v, N, a, DIM);
	pwb__llama_project(v, N, b, DIM);
	assert_memory_equal(a, b, sizeof(a));
	double got_norm = 0;
	for (size_t j = 0; j < DIM; j++) {
		assert_true(fabs(a[j] - want[j] / sqrt(norm)) < 1e-5);
		got_norm += (double)a[j] * a[j];
	}
	assert_true(fabs(sqrt(got_norm) - 1) < 1e-5);
	/* The zero vector gives zeros, not NaN. */
	memset(v, 0, sizeof(v));
	pwb__llama_project(v, N, a, DIM);
	for (size_t j = 0; j < DIM; j++)
		assert_true(a[j] == 0);
	/* At 256 dimensions or fewer: the vector itself, normalised. */
	float w[4] = {3, 0, -4, 0}, o[4];
	pwb__llama_project(w, 4, o, 4);
	assert_true(fabs(o[0] - 0.6) < 1e-6 && o[1] == 0);
	assert_true(fabs(o[2] + 0.8) < 1e-6 && o[3] == 0);
}

/* ---- model files ---- */

static pwb_status load(const char *path, pwb_diag *d, pwb_engine **e)
{
	pwb_llama_params lp = pwb_llama_default_params();
	lp.model_path = path;
	lp.n_threads = 1;
	*e = (pwb_engine *)&lp; /* must be set to NULL on failure */
	return pwb_engine_llama_new(e, &lp, d);
}

static void write_bytes(const char *path, const void *data, size_t len)
{
	FILE *f = fopen(path, "wb");
	assert_non_null(f);
	assert_int_equal(fwrite(data, 1, len, f), len);
	assert_int_equal(fclose(f), 0);
}

static void test_model_file_errors(void **state)
{
	(void)state;
	NEED_MODEL();
	pwb_diag d;
	pwb_diag_init(&d);
	pwb_engine *e;
	char path[512];
	/* Missing. */
	snprintf(path, sizeof(path), "%s/no-such-model.gguf", tmpdir);
	assert_int_equal(load(path, &d, &e), PWB_ENOTFOUND);
	assert_null(e);
	assert_true(diag_has(&d, "no-such-model.gguf"));
	pwb_diag_clear(&d);
	/* Not GGUF: a text file, an empty file, a folder. */
	snprintf(path, sizeof(path), "%s/story.gguf", tmpdir);
	write_bytes(path, "Once upon a time.\n", 18);
	assert_int_equal(load(path, &d, &e), PWB_EPARSE);
	assert_null(e);
	assert_true(diag_has(&d, "story.gguf"));
	assert_true(diag_has(&d, "GGUF"));
	pwb_diag_clear(&d);
	snprintf(path, sizeof(path), "%s/empty.gguf", tmpdir);
	write_bytes(path, "", 0);
	assert_int_equal(load(path, &d, &e), PWB_EPARSE);
	assert_null(e);
	pwb_diag_clear(&d);
	assert_int_equal(load(tmpdir, &d, &e), PWB_EPARSE);
	assert_null(e);
	assert_true(diag_has(&d, "folder"));
	pwb_diag_clear(&d);
	/* A truncated copy of the real model: its first 1000 bytes (the
	 * magic and part of the header), and its first half. */
	FILE *f = fopen(model_path, "rb");
	assert_non_null(f);
	assert_int_equal(fseek(f, 0, SEEK_END), 0);
	long size = ftell(f);
	assert_true(size > 2000);
	rewind(f);
	char *all = malloc((size_t)size);
	assert_non_null(all);
	assert_int_equal(fread(all, 1, (size_t)size, f), (size_t)size);
	fclose(f);
	size_t cuts[] = {4, 1000, (size_t)size / 2};
	for (size_t i = 0; i < 3; i++) {
		snprintf(path, sizeof(path), "%s/cut%zu.gguf", tmpdir, cuts[i]);
		write_bytes(path, all, cuts[i]);
		pwb_status st = load(path, &d, &e);
		if (st == PWB_OK)
			fail_msg("a copy cut at %zu bytes loaded", cuts[i]);
		assert_null(e);
		assert_true(d.n > 0);
		assert_true(diag_has(&d, path));
		pwb_diag_clear(&d);
	}
	free(all);
	/* Bad parameters. */
	pwb_llama_params lp = pwb_llama_default_params();
	lp.model_path = model_path;
	lp.n_contexts = 0;
	assert_int_equal(pwb_engine_llama_new(&e, &lp, &d), PWB_EINVAL);
	assert_true(diag_has(&d, "n_contexts"));
	lp = pwb_llama_default_params();
	assert_int_equal(pwb_engine_llama_new(&e, &lp, &d), PWB_EINVAL);
	assert_true(diag_has(&d, "no model file"));
	pwb_diag_release(&d);
}

/* ---- threads ---- */

#define N_THREADS 4

typedef struct thread_job {
	pwb_engine *e;
	uint64_t seed;
	pwb_status st;
	char *text[2];
	float emb[PWB_ENGINE_MAX_EMBED];
	pwb_status emb_st;
} thread_job;

static void *thread_main(void *arg)
{
	thread_job *j = arg;
	pwb_gen_params p = params(2, j->seed, 24);
	pwb_generation g;
	j->st = pwb_engine_generate(j->e, story, 1, &p, &g, NULL);
	if (!j->st) {
		for (size_t i = 0; i < 2; i++) {
			j->text[i] = g.cands[i].text;
			g.cands[i].text = NULL;
		}
		pwb_generation_release(&g);
	}
	char s[64];
	snprintf(s, sizeof(s), "A story number %llu.",
		 (unsigned long long)j->seed);
	j->emb_st = pwb_engine_embed(j->e, s, strlen(s), j->emb, NULL);
	return NULL;
}

static void test_threads_share_a_pool(void **state)
{
	(void)state;
	NEED_MODEL();
	pwb_engine *e = new_engine(0, 2);
	thread_job ref[N_THREADS], job[N_THREADS];
	memset(ref, 0, sizeof(ref));
	memset(job, 0, sizeof(job));
	/* What each job gives alone, one after another. */
	for (size_t k = 0; k < N_THREADS; k++) {
		ref[k] = (thread_job){.e = e, .seed = 100 * (k + 1)};
		thread_main(&ref[k]);
		assert_int_equal(ref[k].st, PWB_OK);
		assert_int_equal(ref[k].emb_st, PWB_OK);
	}
	/* The same jobs at once, twice as many as contexts. */
	pthread_t th[N_THREADS];
	for (size_t k = 0; k < N_THREADS; k++) {
		job[k] = (thread_job){.e = e, .seed = 100 * (k + 1)};
		assert_int_equal(
		    pthread_create(&th[k], NULL, thread_main, &job[k]), 0);
	}
	for (size_t k = 0; k < N_THREADS; k++)
		assert_int_equal(pthread_join(th[k], NULL), 0);
	for (size_t k = 0; k < N_THREADS; k++) {
		assert_int_equal(job[k].st, PWB_OK);
		assert_int_equal(job[k].emb_st, PWB_OK);
		for (size_t i = 0; i < 2; i++) {
			assert_string_equal(job[k].text[i], ref[k].text[i]);
			free(job[k].text[i]);
			free(ref[k].text[i]);
		}
		assert_memory_equal(job[k].emb, ref[k].emb, 64 * sizeof(float));
	}
	pwb_engine_free(e);
}

/* ---- prompts and the guard ---- */

static void test_plain_prompt_format(void **state)
{
	(void)state;
	pwb_chat_msg m[] = {{"system", "Be kind."},
			    {"user", "Hi!"},
			    {"assistant", "Hello."},
			    {"user", "A story,\nplease."}};
	char *out = NULL;
	assert_int_equal(pwb_engine_plain_prompt(m, 4, &out), PWB_OK);
	assert_string_equal(out, "System: Be kind.\n\n"
				 "User: Hi!\n\n"
				 "Assistant: Hello.\n\n"
				 "User: A story,\nplease.\n\n"
				 "Assistant:");
	free(out);
	assert_int_equal(pwb_engine_plain_prompt(m, 0, &out), PWB_OK);
	assert_string_equal(out, "Assistant:");
	free(out);
}

static void test_guard_on_this_engine(void **state)
{
	(void)state;
	NEED_MODEL();
	pwb_engine_guard g = {.engine = eng, .max_tokens = 6};
	char *a = NULL, *b = NULL;
	assert_int_equal(pwb_engine_guard_fn(&g, "Is this safe?", &a, NULL),
			 PWB_OK);
	assert_int_equal(pwb_engine_guard_fn(&g, "Is this safe?", &b, NULL),
			 PWB_OK);
	assert_non_null(a);
	assert_string_equal(a, b); /* greedy */
	free(a);
	free(b);
	pwb_engine_guard none = {0};
	assert_int_equal(pwb_engine_guard_fn(&none, "x", &a, NULL), PWB_EINVAL);
	assert_null(a);
}

/* A message's content is text, never control tokens: "</s>" (this
 * model's end of sequence) typed by a user is its four characters, not
 * one token that would end the turn. */
static void test_content_has_no_control_tokens(void **state)
{
	(void)state;
	NEED_MODEL();
	pwb_engine *e = new_engine(0, 1);
	pwb_gen_params p = params(1, 1, 1);
	pwb_generation g;
	pwb_chat_msg plain = {"user", "x"}, eos = {"user", "</s>"};
	generate_ok(e, &plain, 1, &p, &g);
	size_t base = g.prompt_tokens;
	pwb_generation_release(&g);
	generate_ok(e, &eos, 1, &p, &g);
	assert_true(g.prompt_tokens >= base + 2);
	pwb_generation_release(&g);
	pwb_engine_free(e);
}

static void test_engine_name(void **state)
{
	(void)state;
	NEED_MODEL();
	assert_string_equal(pwb_engine_name(eng), "llama:stories260K.gguf");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_engine_name),
	    cmocka_unit_test(test_content_has_no_control_tokens),
	    cmocka_unit_test(test_same_seed_same_candidates),
	    cmocka_unit_test(test_n_candidates_from_one_call),
	    cmocka_unit_test(test_greedy_gives_identical_candidates),
	    cmocka_unit_test(test_max_tokens_respected),
	    cmocka_unit_test(test_stop_string_cuts),
	    cmocka_unit_test(test_stop_strings_in_one_token),
	    cmocka_unit_test(test_streaming_every_byte_in_order),
	    cmocka_unit_test(test_streaming_cancel_one),
	    cmocka_unit_test(test_candidates_decoded_in_one_batch),
	    cmocka_unit_test(test_timeout_stops_generation),
	    cmocka_unit_test(test_context_limit),
	    cmocka_unit_test(test_bad_params),
	    cmocka_unit_test(test_embeddings),
	    cmocka_unit_test(test_embedding_is_mean_pooled),
	    cmocka_unit_test(test_projection_above_256),
	    cmocka_unit_test(test_model_file_errors),
	    cmocka_unit_test(test_threads_share_a_pool),
	    cmocka_unit_test(test_plain_prompt_format),
	    cmocka_unit_test(test_guard_on_this_engine),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
