/*
 * test_openai.c - the upstream engine against tests/engine/mock_openai.py,
 * a local OpenAI-compatible server on a real socket: N candidates by `n`
 * and by parallel requests when the endpoint ignores `n`, streaming
 * (every byte to on_text in order, cancelling one candidate), stop
 * strings (applied by the server, and by pwb when the server does not;
 * only the first 4 sent), `n` sent only when above 1, retries on 500 and
 * their count, none on 400, 429 with Retry-After, timeouts, a dead
 * endpoint, malformed JSON, broken event streams, the answer cap, the API
 * key (a missing variable, sent as bearer, never in a message or a log),
 * the guard detector on this engine (also through pwb_bounds, failing
 * closed), threads sharing one engine, and an allocation-failure sweep;
 * and the event stream parser (sse.h) on cases of the format, fed whole,
 * in two pieces split anywhere and byte by byte.
 *
 * The mock's model name chooses how it misbehaves (its header says how);
 * each test adds a tag of its own so that its request count is its own.
 * GET /last on the mock shows what a request sent.
 */
/* cmocka needs these first, in this order. */
/* clang-format off */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
/* clang-format on */

#include <arpa/inet.h>
#include <curl/curl.h>
#include <jansson.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine/sse.h"
#include "mock_upstream.h"
#include "pwb/bounds.h"
#include "pwb/engine.h"
#include "pwb/policy.h"
#include "util/util.h"

#define KEY "sk-test-0123456789abcdef"

static int tag;

/* ---- the mock (mock_upstream.h) ---- */

static int start_mock(void **state)
{
	(void)state;
	return mock_start(KEY) < 0 ? -1 : 0;
}

static int stop_mock(void **state)
{
	(void)state;
	mock_stop();
	return 0;
}

/* The number of chat requests the mock saw for a model. */
static int count(const char *model)
{
	int n = mock_count(model);
	assert_true(n >= 0);
	return n;
}

/* The JSON body of the last chat request the mock saw for a model; the
 * caller's to json_decref(). */
static json_t *last_body(const char *model)
{
	json_t *j = mock_last(model);
	assert_non_null(j);
	return j;
}

/* ---- engines and calls ---- */

static char model[256];
static char url[128];
static char endpoint[160];

/* A model name of the mock's flags with a tag of this call's own. */
static const char *tagged(const char *flags)
{
	snprintf(model, sizeof(model), "%s/t%d", flags, ++tag);
	return model;
}

static pwb_openai_params params_for(const char *flags)
{
	snprintf(url, sizeof(url), "%s", mock_url());
	snprintf(endpoint, sizeof(endpoint), "%s/chat/completions", url);
	pwb_openai_params p = pwb_openai_default_params();
	p.url = url;
	p.model = tagged(flags);
	p.backoff_ms = 1; /* retries are counted here, not timed */
	return p;
}

static pwb_engine *engine_with(const pwb_openai_params *p)
{
	pwb_engine *e = NULL;
	pwb_diag d;
	pwb_diag_init(&d);
	pwb_status st = pwb_engine_openai_new(&e, p, &d);
	if (st)
		fail_msg("new: %s", d.n ? d.entries[0].message : "?");
	pwb_diag_release(&d);
	return e;
}

static pwb_engine *engine(const char *flags)
{
	pwb_openai_params p = params_for(flags);
	return engine_with(&p);
}

static pwb_status gen(pwb_engine *e, const char *prompt,
		      const pwb_gen_params *p, pwb_generation *out, pwb_diag *d)
{
	pwb_chat_msg m[] = {{"system", "Be brief."}, {"user", prompt}};
	return pwb_engine_generate(e, m, 2, p, out, d);
}

/* A call that must fail: its status, and its one message in msg. */
static pwb_status gen_fail(pwb_engine *e, const pwb_gen_params *p, char *msg,
			   size_t size)
{
	pwb_diag d;
	pwb_diag_init(&d);
	pwb_generation g;
	pwb_status st = gen(e, "hello there", p, &g, &d);
	assert_int_not_equal(st, PWB_OK);
	assert_int_equal(g.n, 0);
	assert_int_equal(d.n, 1);
	snprintf(msg, size, "%s", d.entries[0].message);
	pwb_diag_release(&d);
	return st;
}

#define assert_has(s, sub)                                                     \
	do {                                                                   \
		if (!strstr((s), (sub)))                                       \
			fail_msg("'%s' lacks '%s'", (s), (sub));               \
	} while (0)

static void assert_seeded(const pwb_generation *g, uint64_t seed)
{
	for (size_t i = 0; i < g->n; i++) {
		char want[32];
		snprintf(want, sizeof(want), "s%llu ",
			 (unsigned long long)(seed + i));
		if (strncmp(g->cands[i].text, want, strlen(want)))
			fail_msg("candidate %zu: '%s', expected '%s...'", i,
				 g->cands[i].text, want);
		assert_int_equal(g->cands[i].seed, seed + i);
		assert_int_equal(strlen(g->cands[i].text), g->cands[i].len);
	}
}

/* ---- the event stream parser ---- */

static pwb_status keep_event(void *user, const char *type, const char *data,
			     size_t len)
{
	pwb__buf_addf(user, "[%s:", type);
	pwb__buf_add(user, data, len);
	pwb__buf_addc(user, ']');
	return PWB_OK;
}

/* Parses in, cut at split (and byte by byte when split is 0), into
 * "[type:data]..." with a final status and pending state. */
static void sse_parse(const char *in, size_t len, size_t split, pwb__buf *out,
		      pwb_status *st, bool *pending)
{
	pwb__sse s;
	pwb__sse_init(&s, 64, 128);
	pwb__buf_init(out, 0);
	*st = PWB_OK;
	size_t step = split ? split : 1;
	for (size_t at = 0; at < len && !*st; at += step) {
		if (split && at)
			step = len - at;
		size_t n = step < len - at ? step : len - at;
		*st = pwb__sse_feed(&s, in + at, n, keep_event, out);
	}
	*pending = pwb__sse_pending(&s);
	pwb__sse_release(&s);
}

static void test_sse_parser(void **state)
{
	(void)state;
	static const struct {
		const char *in, *events;
		pwb_status st;
		bool pending;
	} cases[] = {
	    {"data: a\r\ndata: b\r\n\r\n", "[message:a\nb]", 0, 0},
	    {"data: x\r\rdata: y\r\r", "[message:x][message:y]", 0, 0},
	    {": keep-alive\nevent: error\ndata: e\n\ndata: m\n\n",
	     "[error:e][message:m]", 0, 0},
	    {"data\n\ndata:\n\n", "[message:][message:]", 0, 0},
	    {"\xEF\xBB\xBF"
	     "data: bom\n\n",
	     "[message:bom]", 0, 0},
	    {"id: 1\nretry: 5\nfoo: bar\nevent: x\n\n", "", 0, 0},
	    {"data:  two\n\n", "[message: two]", 0, 0},
	    {"data: [DONE]\n\ndata: cut", "[message:[DONE]]", 0, 1},
	    {"data: a\ndata: b\n", "", 0, 1},
	    {"data: 0123456789012345678901234567890123456789012345678901234567"
	     "89\n\n",
	     "", PWB_ETOOLARGE, 1},
	    {"data: 01234567890123456789012345678901234567890123456789\n"
	     "data: 01234567890123456789012345678901234567890123456789\n"
	     "data: 01234567890123456789012345678901234567890123456789\n\n",
	     "", PWB_ETOOLARGE, 1},
	};
	for (size_t i = 0; i < PWB_ARRAY_LEN(cases); i++) {
		size_t len = strlen(cases[i].in);
		for (size_t split = 0; split < len; split++) {
			pwb__buf out;
			pwb_status st;
			bool pending;
			sse_parse(cases[i].in, len, split, &out, &st, &pending);
			if (strcmp(out.s ? out.s : "", cases[i].events) ||
			    st != cases[i].st || pending != cases[i].pending)
				fail_msg("case %zu split %zu: '%s' (status %d, "
					 "pending %d)",
					 i, split, out.s ? out.s : "", st,
					 pending);
			pwb__buf_release(&out);
		}
	}
}

/* ---- candidates ---- */

static void test_n_by_n(void **state)
{
	(void)state;
	for (int stream = 0; stream < 2; stream++) {
		pwb_openai_params op = params_for("plain");
		op.stream = stream;
		pwb_engine *e = engine_with(&op);
		pwb_gen_params p = pwb_gen_default_params();
		p.n = 3;
		p.seed = 40;
		pwb_generation g;
		assert_int_equal(gen(e, "hello there", &p, &g, NULL), PWB_OK);
		assert_int_equal(g.n, 3);
		assert_seeded(&g, 40);
		assert_int_equal(count(op.model), 1);
		for (size_t i = 0; i < 3; i++) {
			/* 12 words: the mock's natural end */
			assert_int_equal(g.cands[i].finish, PWB_FINISH_STOP);
			if (stream)
				assert_int_equal(g.cands[i].tokens, 12);
		}
		assert_int_equal(g.prompt_tokens, 4); /* words, by the mock */
		assert_int_equal(g.completion_tokens, 36);
		assert_true(g.seconds > 0);
		pwb_generation_release(&g);

		p.max_tokens = 5;
		p.n = 1;
		assert_int_equal(gen(e, "hi", &p, &g, NULL), PWB_OK);
		assert_int_equal(g.cands[0].finish, PWB_FINISH_LENGTH);
		assert_int_equal(g.completion_tokens, 5);
		pwb_generation_release(&g);
		pwb_engine_free(e);
	}
}

/* The same texts whether the endpoint honours n or not, by seed. */
static void test_n_ignored(void **state)
{
	(void)state;
	pwb_engine *e = engine("plain");
	pwb_gen_params p = pwb_gen_default_params();
	p.n = 4;
	p.seed = 7;
	pwb_generation want, g;
	assert_int_equal(gen(e, "hello there", &p, &want, NULL), PWB_OK);
	pwb_engine_free(e);

	for (int use_n = 0; use_n < 2; use_n++) {
		pwb_openai_params op = params_for("ignore-n");
		op.use_n = use_n;
		e = engine_with(&op);
		assert_int_equal(gen(e, "hello there", &p, &g, NULL), PWB_OK);
		assert_int_equal(g.n, 4);
		assert_seeded(&g, 7);
		for (size_t i = 0; i < 4; i++)
			assert_string_equal(g.cands[i].text,
					    want.cands[i].text);
		/* n honoured: 1 + 3 more; never honoured: 4 of n = 1 */
		assert_int_equal(count(op.model), 4);
		pwb_generation_release(&g);
		pwb_engine_free(e);
	}
	pwb_generation_release(&want);
}

/* n is sent only when above 1: some servers refuse the field itself. */
static void test_n_sent_only_above_1(void **state)
{
	(void)state;
	pwb_openai_params op = params_for("plain");
	pwb_engine *e = engine_with(&op);
	pwb_gen_params p = pwb_gen_default_params();
	p.seed = 20;
	pwb_generation g;
	assert_int_equal(gen(e, "hi", &p, &g, NULL), PWB_OK);
	pwb_generation_release(&g);
	json_t *j = last_body(op.model);
	assert_null(json_object_get(j, "n"));
	assert_int_equal(json_integer_value(json_object_get(j, "seed")), 20);
	json_decref(j);
	p.n = 3;
	assert_int_equal(gen(e, "hi", &p, &g, NULL), PWB_OK);
	assert_seeded(&g, 20);
	pwb_generation_release(&g);
	j = last_body(op.model);
	assert_true(json_is_integer(json_object_get(j, "n")));
	assert_int_equal(json_integer_value(json_object_get(j, "n")), 3);
	json_decref(j);
	/* n = 1 again, after a call that sent n. */
	p.n = 1;
	assert_int_equal(gen(e, "hi", &p, &g, NULL), PWB_OK);
	pwb_generation_release(&g);
	j = last_body(op.model);
	assert_null(json_object_get(j, "n"));
	json_decref(j);
	pwb_engine_free(e);
	/* use_n = false: N requests of n = 1, none of them with n. */
	op = params_for("plain");
	op.use_n = false;
	e = engine_with(&op);
	p.n = 3;
	assert_int_equal(gen(e, "hi", &p, &g, NULL), PWB_OK);
	assert_seeded(&g, 20);
	pwb_generation_release(&g);
	assert_int_equal(count(op.model), 3);
	j = last_body(op.model);
	assert_null(json_object_get(j, "n"));
	json_decref(j);
	pwb_engine_free(e);
}

/* ---- streaming ---- */

typedef struct streamed {
	pwb__buf text[PWB_ENGINE_MAX_N];
	size_t calls[PWB_ENGINE_MAX_N];
	size_t cancel_after; /* candidate 1 cancels after this many calls */
} streamed;

static int on_text(void *user, size_t cand, const char *text, size_t len)
{
	streamed *s = user;
	assert_true(cand < PWB_ENGINE_MAX_N);
	assert_true(len > 0);
	pwb__buf_add(&s->text[cand], text, len);
	s->calls[cand]++;
	return cand == 1 && s->cancel_after &&
	       s->calls[cand] >= s->cancel_after;
}

static void streamed_release(streamed *s)
{
	for (size_t i = 0; i < PWB_ENGINE_MAX_N; i++)
		pwb__buf_release(&s->text[i]);
}

static void test_streaming(void **state)
{
	(void)state;
	static const char *const flags[] = {"plain", "plain+crlf+multiline",
					    "ignore-n+crlf", "ignore-stream"};
	for (size_t f = 0; f < PWB_ARRAY_LEN(flags); f++) {
		pwb_engine *e = engine(flags[f]);
		pwb_gen_params p = pwb_gen_default_params();
		streamed s = {0};
		p.n = 3;
		p.on_text = on_text;
		p.on_text_user = &s;
		pwb_generation g;
		assert_int_equal(gen(e, "tell me", &p, &g, NULL), PWB_OK);
		for (size_t i = 0; i < 3; i++) {
			/* Every byte, in order, and nothing else. */
			assert_int_equal(s.text[i].len, g.cands[i].len);
			assert_memory_equal(s.text[i].s, g.cands[i].text,
					    g.cands[i].len);
			/* A piece per token when the endpoint streams. */
			assert_int_equal(
			    s.calls[i],
			    strstr(flags[f], "ignore-stream") ? 1 : 12);
		}
		pwb_generation_release(&g);
		streamed_release(&s);
		pwb_engine_free(e);
	}
}

/* on_text stops candidate 1 after 3 pieces; the others go on. */
static void test_streaming_cancel(void **state)
{
	(void)state;
	pwb_engine *e = engine("plain");
	pwb_gen_params p = pwb_gen_default_params();
	streamed s = {.cancel_after = 3};
	p.n = 3;
	p.on_text = on_text;
	p.on_text_user = &s;
	pwb_generation g;
	assert_int_equal(gen(e, "tell me", &p, &g, NULL), PWB_OK);
	assert_int_equal(g.cands[1].finish, PWB_FINISH_CANCELLED);
	assert_int_equal(s.calls[1], 3);
	assert_int_equal(g.cands[0].finish, PWB_FINISH_STOP);
	assert_int_equal(g.cands[2].finish, PWB_FINISH_STOP);
	assert_int_equal(s.calls[2], 12);
	pwb_generation_release(&g);
	streamed_release(&s);
	pwb_engine_free(e);
}

/* ---- stop strings ---- */

static void test_stop_strings(void **state)
{
	(void)state;
	/* echo sends the prompt back in pieces of 3 bytes: "STOP" arrives
	 * split ("o S", "TOP"). */
	const char *prompt = "one two STOP three";
	static const char *const flags[] = {"echo", "echo+ignore-stop"};
	static const char *const stops[] = {"STOP"};
	for (size_t f = 0; f < 2; f++) {
		pwb_engine *e = engine(flags[f]);
		pwb_gen_params p = pwb_gen_default_params();
		streamed s = {0};
		p.stop = stops;
		p.n_stop = 1;
		p.on_text = on_text;
		p.on_text_user = &s;
		pwb_generation g;
		assert_int_equal(gen(e, prompt, &p, &g, NULL), PWB_OK);
		assert_string_equal(g.cands[0].text, "one two ");
		assert_int_equal(g.cands[0].finish, PWB_FINISH_STOP);
		/* No byte of the stop string was streamed either. */
		assert_int_equal(s.text[0].len, 8);
		assert_memory_equal(s.text[0].s, "one two ", 8);
		pwb_generation_release(&g);
		streamed_release(&s);
		pwb_engine_free(e);
	}
	/* Only 4 stop strings go to the endpoint (OpenAI's limit); the
	 * fifth is applied here. */
	static const char *const five[] = {"x1", "x2", "x3", "x4", "three"};
	pwb_engine *e = engine("echo");
	pwb_gen_params p = pwb_gen_default_params();
	p.stop = five;
	p.n_stop = 5;
	pwb_generation g;
	assert_int_equal(gen(e, "one two three four", &p, &g, NULL), PWB_OK);
	assert_string_equal(g.cands[0].text, "one two ");
	pwb_generation_release(&g);
	pwb_engine_free(e);
}

/*
 * Only the first 4 stop strings go to the endpoint (OpenAI refuses more);
 * pwb applies all 8 itself. The mock here applies none (ignore-stop) and
 * answers a fixed text, so every cut is pwb's: by the 8th string, then by
 * the 5th, neither of which the endpoint saw.
 */
static void test_stop_strings_past_4(void **state)
{
	(void)state;
	static const struct {
		const char *stops[8];
		const char *text;
	} cases[] = {
	    {{"x1", "x2", "x3", "x4", "five", "x6", "x7", "two"}, "one "},
	    {{"x1", "x2", "x3", "x4", "four", "x6", "x7", "x8"},
	     "one two three "},
	};
	for (int stream = 0; stream < 2; stream++)
		for (size_t k = 0; k < PWB_ARRAY_LEN(cases); k++) {
			pwb_openai_params op =
			    params_for("reply:one%20two%20three%20four%20five+"
				       "ignore-stop");
			op.stream = stream;
			pwb_engine *e = engine_with(&op);
			pwb_gen_params p = pwb_gen_default_params();
			p.stop = cases[k].stops;
			p.n_stop = 8;
			pwb_generation g;
			assert_int_equal(gen(e, "hi", &p, &g, NULL), PWB_OK);
			assert_string_equal(g.cands[0].text, cases[k].text);
			assert_int_equal(g.cands[0].finish, PWB_FINISH_STOP);
			pwb_generation_release(&g);
			json_t *j = last_body(op.model);
			json_t *sent = json_object_get(j, "stop");
			assert_true(json_is_array(sent));
			assert_int_equal(json_array_size(sent), 4);
			for (size_t i = 0; i < 4; i++)
				assert_string_equal(
				    json_string_value(json_array_get(sent, i)),
				    cases[k].stops[i]);
			json_decref(j);
			pwb_engine_free(e);
		}
	/* No stop strings: no "stop" field at all. */
	pwb_openai_params op = params_for("reply:one%20two");
	pwb_engine *e = engine_with(&op);
	pwb_gen_params p = pwb_gen_default_params();
	pwb_generation g;
	assert_int_equal(gen(e, "hi", &p, &g, NULL), PWB_OK);
	assert_string_equal(g.cands[0].text, "one two");
	pwb_generation_release(&g);
	json_t *j = last_body(op.model);
	assert_null(json_object_get(j, "stop"));
	json_decref(j);
	pwb_engine_free(e);
}

/* ---- retries ---- */

static void test_retry_on_500(void **state)
{
	(void)state;
	pwb_engine *e = engine("fail500:2");
	pwb_gen_params p = pwb_gen_default_params();
	pwb_generation g;
	assert_int_equal(gen(e, "hi", &p, &g, NULL), PWB_OK);
	assert_seeded(&g, 1);
	assert_int_equal(count(model), 3); /* two failures, one success */
	pwb_generation_release(&g);
	pwb_engine_free(e);

	/* One failure more than the retries allow. */
	e = engine("fail500:3");
	char msg[1024];
	assert_int_equal(gen_fail(e, &p, msg, sizeof(msg)), PWB_EIO);
	assert_has(msg, endpoint);
	assert_has(msg, "HTTP 500: the mock is down");
	assert_has(msg, "(3 tries)");
	assert_int_equal(count(model), 3);
	pwb_engine_free(e);
}

static void test_no_retry_on_400(void **state)
{
	(void)state;
	pwb_engine *e = engine("status:400");
	pwb_gen_params p = pwb_gen_default_params();
	char msg[1024];
	assert_int_equal(gen_fail(e, &p, msg, sizeof(msg)), PWB_EIO);
	assert_has(msg, endpoint);
	assert_has(msg, "answered HTTP 400: the mock refuses this");
	assert_int_equal(count(model), 1);
	pwb_engine_free(e);
	/* 404 is no reason to ask again either; 503 is. */
	e = engine("status:404");
	gen_fail(e, &p, msg, sizeof(msg));
	assert_int_equal(count(model), 1);
	pwb_engine_free(e);
	e = engine("status:503");
	gen_fail(e, &p, msg, sizeof(msg));
	assert_int_equal(count(model), 3);
	pwb_engine_free(e);
}

static void test_retry_after(void **state)
{
	(void)state;
	/* The backoff alone would retry within 1 ms; the endpoint asks for
	 * a second. */
	pwb_engine *e = engine("retry-after:1");
	pwb_gen_params p = pwb_gen_default_params();
	pwb_generation g;
	double t0 = pwb__now();
	assert_int_equal(gen(e, "hi", &p, &g, NULL), PWB_OK);
	assert_true(pwb__now() - t0 >= 0.95);
	assert_int_equal(count(model), 2);
	pwb_generation_release(&g);
	pwb_engine_free(e);

	/* A wait past the deadline fails at once, and says why. */
	e = engine("retry-after:5");
	p.timeout_ms = 300;
	char msg[1024];
	t0 = pwb__now();
	assert_int_equal(gen_fail(e, &p, msg, sizeof(msg)), PWB_EIO);
	assert_true(pwb__now() - t0 < 3);
	assert_has(msg, "answered HTTP 429: slow down");
	assert_has(msg, "retry after 5 s, past the 300 ms timeout");
	assert_int_equal(count(model), 1);
	pwb_engine_free(e);
}

/* ---- failures ---- */

static void test_timeout(void **state)
{
	(void)state;
	/* The call's own timeout, then the engine's. */
	for (int i = 0; i < 2; i++) {
		pwb_openai_params op = params_for("slow:3000");
		if (i)
			op.timeout_ms = 300;
		pwb_engine *e = engine_with(&op);
		pwb_gen_params p = pwb_gen_default_params();
		if (!i)
			p.timeout_ms = 300;
		char msg[1024];
		double t0 = pwb__now();
		assert_int_equal(gen_fail(e, &p, msg, sizeof(msg)), PWB_EIO);
		assert_true(pwb__now() - t0 < 2.5);
		assert_has(msg, endpoint);
		assert_has(msg, "timed out after 300 ms");
		pwb_engine_free(e);
	}
}

/* A port nothing listens on. */
static int closed_port(void)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = {.sin_family = AF_INET,
				.sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof(a);
	assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
	close(fd);
	return ntohs(a.sin_port);
}

static void test_dead_endpoint(void **state)
{
	(void)state;
	char dead[128], want[256];
	snprintf(dead, sizeof(dead), "http://127.0.0.1:%d/v1/", closed_port());
	pwb_openai_params op = pwb_openai_default_params();
	op.url = dead;
	op.backoff_ms = 1;
	pwb_engine *e = engine_with(&op);
	pwb_gen_params p = pwb_gen_default_params();
	char msg[1024];
	assert_int_equal(gen_fail(e, &p, msg, sizeof(msg)), PWB_EIO);
	snprintf(want, sizeof(want),
		 "cannot connect to %.*schat/completions: Connection refused "
		 "(3 tries)",
		 (int)strlen(dead), dead);
	assert_string_equal(msg, want);
	pwb_engine_free(e);
}

static void test_malformed(void **state)
{
	(void)state;
	static const struct {
		const char *flags, *says;
	} cases[] = {
	    {"malformed-json", "sent malformed JSON: "},
	    {"sse-garbage", "sent a malformed SSE stream: event 5 is not JSON"},
	    {"sse-cut", "sent a malformed SSE stream: it ended in the middle "
			"of an event"},
	    {"sse-drop", "closed the connection mid-answer"},
	    {"sse-error", "reported an error: the model fell over"},
	    {"no-choices", "answered without choices"},
	    {"huge", "sent more than 16 MiB"},
	};
	for (size_t i = 0; i < PWB_ARRAY_LEN(cases); i++) {
		pwb_engine *e = engine(cases[i].flags);
		pwb_gen_params p = pwb_gen_default_params();
		p.n = 2;
		char msg[1024];
		assert_int_equal(gen_fail(e, &p, msg, sizeof(msg)), PWB_EIO);
		assert_has(msg, endpoint);
		assert_has(msg, cases[i].says);
		/* A broken answer is not asked for again. */
		assert_int_equal(count(model), 1);
		pwb_engine_free(e);
	}
}

/* ---- the API key ---- */

static pwb__buf logged;

static void keep_log(void *user, pwb_log_level level, const char *msg)
{
	(void)user;
	(void)level;
	pwb__buf_adds(&logged, msg);
	pwb__buf_addc(&logged, '\n');
}

static void test_api_key(void **state)
{
	(void)state;
	pwb_openai_params op = params_for("key");
	pwb_diag d;
	pwb_diag_init(&d);
	pwb_engine *e = NULL;
	/* Missing and empty variables are named. */
	unsetenv("PWB_TEST_NO_SUCH_KEY");
	op.api_key_env = "PWB_TEST_NO_SUCH_KEY";
	assert_int_equal(pwb_engine_openai_new(&e, &op, &d), PWB_EINVAL);
	assert_null(e);
	assert_has(d.entries[0].message, "PWB_TEST_NO_SUCH_KEY");
	assert_has(d.entries[0].message, "not set");
	pwb_diag_clear(&d);
	setenv("PWB_TEST_EMPTY_KEY", "", 1);
	op.api_key_env = "PWB_TEST_EMPTY_KEY";
	assert_int_equal(pwb_engine_openai_new(&e, &op, &d), PWB_EINVAL);
	assert_has(d.entries[0].message, "PWB_TEST_EMPTY_KEY");
	pwb_diag_release(&d);

	/* Without a key the mock refuses; with it, it answers. */
	op.api_key_env = NULL;
	e = engine_with(&op);
	pwb_gen_params p = pwb_gen_default_params();
	char msg[1024];
	assert_int_equal(gen_fail(e, &p, msg, sizeof(msg)), PWB_EIO);
	assert_has(msg, "answered HTTP 401");
	pwb_engine_free(e);
	setenv("PWB_TEST_KEY", KEY, 1);
	op.api_key_env = "PWB_TEST_KEY";
	e = engine_with(&op);
	pwb_generation g;
	assert_int_equal(gen(e, "hi", &p, &g, NULL), PWB_OK);
	pwb_generation_release(&g);
	pwb_engine_free(e);

	/* A wrong key that the endpoint quotes back, on an endpoint that
	 * fails first (a retry is logged): the key is in no message. */
	const char *wrong = "sk-wrong-key-never-to-be-shown";
	setenv("PWB_TEST_KEY", wrong, 1);
	op = params_for("fail500:1+key");
	op.api_key_env = "PWB_TEST_KEY";
	op.log = keep_log;
	pwb__buf_init(&logged, 0);
	e = engine_with(&op);
	assert_int_equal(gen_fail(e, &p, msg, sizeof(msg)), PWB_EIO);
	assert_has(msg, "answered HTTP 401: Incorrect API key provided: "
			"Bearer [key]");
	assert_null(strstr(msg, wrong));
	assert_non_null(logged.s);
	assert_has(logged.s, "HTTP 500");
	assert_has(logged.s, "Bearer [key]");
	assert_null(strstr(logged.s, wrong));
	assert_null(strstr(pwb_engine_name(e), wrong));
	pwb__buf_release(&logged);
	pwb_engine_free(e);

	/* A key shorter than "[key]", and one so long that the quote of
	 * the endpoint's message is cut inside it: no part of either shows. */
	char long_key[401];
	for (size_t i = 0; i < 400; i++)
		long_key[i] = "QWERTYUIOPASDFGHJKLZ"[i % 20];
	long_key[400] = '\0';
	const char *keys[] = {"Zq9", long_key};
	for (size_t i = 0; i < 2; i++) {
		setenv("PWB_TEST_KEY", keys[i], 1);
		op = params_for("key");
		op.api_key_env = "PWB_TEST_KEY";
		e = engine_with(&op);
		assert_int_equal(gen_fail(e, &p, msg, sizeof(msg)), PWB_EIO);
		assert_has(msg, i ? "Bearer [key]" : "Bearer ***");
		assert_null(strstr(msg, i ? "QWERTYUIOP" : "Zq9"));
		pwb_engine_free(e);
	}
	unsetenv("PWB_TEST_KEY");
}

/* ---- parameters ---- */

static void test_params(void **state)
{
	(void)state;
	static const char *const bad[] = {"ftp://h/v1",	  "127.0.0.1:8080",
					  "http://",	  "http:///v1",
					  "http://h/v 1", ""};
	for (size_t i = 0; i < PWB_ARRAY_LEN(bad); i++) {
		pwb_openai_params op = pwb_openai_default_params();
		op.url = bad[i];
		pwb_engine *e = NULL;
		pwb_diag d;
		pwb_diag_init(&d);
		assert_int_equal(pwb_engine_openai_new(&e, &op, &d),
				 PWB_EINVAL);
		assert_null(e);
		assert_int_equal(d.n, 1);
		pwb_diag_release(&d);
	}
	pwb_openai_params op = pwb_openai_default_params();
	op.url = "HTTPS://api.example.com/v1//";
	pwb_engine *e = engine_with(&op);
	assert_string_equal(pwb_engine_name(e),
			    "openai:HTTPS://api.example.com/v1 (default)");
	/* No embeddings from the upstream engine. */
	assert_int_equal(pwb_engine_embed_dim(e), 0);
	float v[4];
	assert_int_equal(pwb_engine_embed(e, "x", 1, v, NULL), PWB_EINVAL);
	pwb_engine_free(e);

	/* A message that is not UTF-8 is refused before anything is sent. */
	e = engine("plain");
	pwb_gen_params p = pwb_gen_default_params();
	pwb_generation g;
	pwb_diag d;
	pwb_diag_init(&d);
	assert_int_equal(gen(e, "bad \xff byte", &p, &g, &d), PWB_EINVAL);
	assert_has(d.entries[0].message,
		   "message 2 (user) is not valid UTF-8 (line 1, column 5)");
	pwb_diag_clear(&d);
	pwb_chat_msg three[] = {
	    {"user", "hi"}, {"assistant", "caf\xe9"}, {"user", "and?"}};
	assert_int_equal(pwb_engine_generate(e, three, 3, &p, &g, &d),
			 PWB_EINVAL);
	assert_has(d.entries[0].message,
		   "message 2 (assistant) is not valid UTF-8");
	pwb_diag_clear(&d);
	static const char *const stops[] = {"ok", "\xc3("};
	p.stop = stops;
	p.n_stop = 2;
	assert_int_equal(gen(e, "fine", &p, &g, &d), PWB_EINVAL);
	assert_has(d.entries[0].message, "stop string 2 is not valid UTF-8");
	assert_int_equal(count(model), 0);
	pwb_diag_release(&d);
	pwb_engine_free(e);
}

/* ---- the guard detector on this engine ---- */

static void test_guard_fn(void **state)
{
	(void)state;
	static const struct {
		const char *flags, *answer;
	} cases[] = {
	    {"reply:safe", "safe"},
	    {"reply:unsafe%0AS1", "unsafe\nS1"},
	    {"reply:%C2%BFno%20s%C3%A9%3F%20%7B%7D",
	     "\xC2\xBFno s\xC3\xA9? {}"},
	};
	for (size_t i = 0; i < PWB_ARRAY_LEN(cases); i++) {
		pwb_engine *e = engine(cases[i].flags);
		pwb_engine_guard g = {.engine = e};
		char *answer = NULL;
		assert_int_equal(pwb_engine_guard_fn(&g, "judge this", &answer, NULL),
				 PWB_OK);
		assert_string_equal(answer, cases[i].answer);
		free(answer);
		pwb_engine_free(e);
	}
	pwb_engine *e = engine("slow:3000");
	pwb_engine_guard g = {.engine = e, .timeout_ms = 300};
	char *answer = (char *)"untouched";
	assert_int_equal(pwb_engine_guard_fn(&g, "judge this", &answer, NULL),
			 PWB_EIO);
	assert_null(answer);
	pwb_engine_free(e);
}

static char dir[] = "/tmp/pwb-test-openai-XXXXXX";

static void write_file(const char *rel, const char *text)
{
	char path[512];
	snprintf(path, sizeof(path), "%s/%s", dir, rel);
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

/* The judge through pwb_bounds: safe passes; unsafe blocks; nonsense and a
 * judge that times out fail the check (closed), never let it pass. */
static void test_guard_fails_closed(void **state)
{
	(void)state;
	assert_non_null(mkdtemp(dir));
	char sub[512];
	snprintf(sub, sizeof(sub), "%s/law", dir);
	mkdir(sub, 0755);
	snprintf(sub, sizeof(sub), "%s/org", dir);
	mkdir(sub, 0755);
	write_file("categories.yaml",
		   "registry: test\ncategories:\n"
		   "  hate: {description: \"Hateful content.\", llama_guard: "
		   "S10, detectors: {guard: {threshold: 0.5}}}\n");
	write_file("law/l.yaml",
		   "tier: law\nid: l\ncategories:\n"
		   "  hate: {permission: forbid, basis: \"L\"}\n");
	write_file("org/o.yaml", "tier: org\nid: o\njurisdictions: [l]\n");
	pwb_policy *pol;
	pwb_effective *eff;
	pwb_diag d;
	pwb_diag_init(&d);
	assert_int_equal(pwb_policy_load(&pol, dir, NULL, &d), PWB_OK);
	pwb_resolve_params rp = {"o", NULL, 0, NULL, NULL};
	assert_int_equal(pwb_policy_resolve(&eff, pol, &rp, &d), PWB_OK);

	static const struct {
		const char *flags;
		pwb_status st;
		pwb_verdict v;
	} cases[] = {
	    {"reply:safe", PWB_OK, PWB_VERDICT_ALLOW},
	    {"reply:unsafe%0AS10", PWB_OK, PWB_VERDICT_BLOCK},
	    {"reply:I%20would%20rather%20not%20say", PWB_EPARSE, 0},
	    {"slow:3000", PWB_EIO, 0},
	};
	for (size_t i = 0; i < PWB_ARRAY_LEN(cases); i++) {
		pwb_engine *e = engine(cases[i].flags);
		pwb_engine_guard g = {.engine = e, .timeout_ms = 300};
		pwb_bounds_params bp = pwb_bounds_default_params();
		bp.guard = pwb_engine_guard_fn;
		bp.guard_user = &g;
		pwb_bounds *b;
		assert_int_equal(pwb_bounds_new(&b, pol, &bp, &d), PWB_OK);
		pwb_decision *dec = NULL;
		const char *t = "some text";
		assert_int_equal(pwb_bounds_check(&dec, b, eff, PWB_ROLE_PROMPT,
						  t, strlen(t), &d),
				 cases[i].st);
		if (cases[i].st == PWB_OK)
			assert_int_equal(pwb_decision_verdict(dec), cases[i].v);
		else
			assert_null(dec);
		pwb_decision_free(dec);
		pwb_bounds_free(b);
		pwb_engine_free(e);
		pwb_diag_clear(&d);
	}
	pwb_diag_release(&d);
	pwb_effective_free(eff);
	pwb_policy_free(pol);
	char cmd[600];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	assert_int_equal(system(cmd), 0);
}

/* ---- threads and allocation failures ---- */

typedef struct worker {
	pwb_engine *e;
	uint64_t seed;
	pwb_status st;
	bool seeded;
} worker;

static void *work(void *arg)
{
	worker *w = arg;
	pwb_gen_params p = pwb_gen_default_params();
	p.n = 2;
	p.seed = w->seed;
	pwb_generation g;
	pwb_chat_msg m = {"user", "hi"};
	w->st = pwb_engine_generate(w->e, &m, 1, &p, &g, NULL);
	if (!w->st) {
		char want[32];
		snprintf(want, sizeof(want), "s%llu ",
			 (unsigned long long)w->seed + 1);
		w->seeded =
		    g.n == 2 && !strncmp(g.cands[1].text, want, strlen(want));
		pwb_generation_release(&g);
	}
	return NULL;
}

static void test_threads(void **state)
{
	(void)state;
	pwb_engine *e = engine("ignore-n");
	worker w[6];
	pthread_t t[6];
	for (size_t i = 0; i < 6; i++) {
		w[i] = (worker){.e = e, .seed = 100 * (i + 1)};
		assert_int_equal(pthread_create(&t[i], NULL, work, &w[i]), 0);
	}
	for (size_t i = 0; i < 6; i++) {
		pthread_join(t[i], NULL);
		assert_int_equal(w[i].st, PWB_OK);
		assert_true(w[i].seeded);
	}
	assert_int_equal(count(model), 12);
	pwb_engine_free(e);
}

/* Fails the 1st, 2nd, ... allocation of new + generate: each fails
 * cleanly (ENOMEM, nothing leaked) until one succeeds. */
static void test_alloc_failures(void **state)
{
	(void)state;
	static const char *const stops[] = {"zulu"};
	pwb_openai_params op = params_for("ignore-n");
	setenv("PWB_TEST_KEY", KEY, 1);
	op.api_key_env = "PWB_TEST_KEY";
	bool done = false;
	long at;
	for (at = 1; at < 2000 && !done; at++) {
		pwb__alloc_count = 0;
		pwb__alloc_fail_at = at;
		pwb_engine *e = NULL;
		pwb_status st = pwb_engine_openai_new(&e, &op, NULL);
		if (!st) {
			streamed s = {0};
			pwb_gen_params p = pwb_gen_default_params();
			p.n = 2;
			p.stop = stops;
			p.n_stop = 1;
			p.on_text = on_text;
			p.on_text_user = &s;
			pwb_generation g;
			pwb_chat_msg m = {"user", "hi"};
			st = pwb_engine_generate(e, &m, 1, &p, &g, NULL);
			if (!st)
				pwb_generation_release(&g);
			else
				assert_int_equal(g.n, 0);
			streamed_release(&s);
			pwb_engine_free(e);
		}
		pwb__alloc_fail_at = 0;
		if (st != PWB_OK && st != PWB_ENOMEM)
			fail_msg("allocation %ld: %s", at, pwb_status_str(st));
		done = st == PWB_OK;
	}
	assert_true(done);
	assert_true(at > 5); /* the sweep did reach into the call */
	unsetenv("PWB_TEST_KEY");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_sse_parser),
	    cmocka_unit_test(test_n_by_n),
	    cmocka_unit_test(test_n_ignored),
	    cmocka_unit_test(test_n_sent_only_above_1),
	    cmocka_unit_test(test_streaming),
	    cmocka_unit_test(test_streaming_cancel),
	    cmocka_unit_test(test_stop_strings),
	    cmocka_unit_test(test_stop_strings_past_4),
	    cmocka_unit_test(test_retry_on_500),
	    cmocka_unit_test(test_no_retry_on_400),
	    cmocka_unit_test(test_retry_after),
	    cmocka_unit_test(test_timeout),
	    cmocka_unit_test(test_dead_endpoint),
	    cmocka_unit_test(test_malformed),
	    cmocka_unit_test(test_api_key),
	    cmocka_unit_test(test_params),
	    cmocka_unit_test(test_guard_fn),
	    cmocka_unit_test(test_guard_fails_closed),
	    cmocka_unit_test(test_threads),
	    cmocka_unit_test(test_alloc_failures),
	};
	return cmocka_run_group_tests(tests, start_mock, stop_mock);
}
