/*
 * openai.c - the upstream engine: any OpenAI-compatible endpoint (llama.cpp
 * server, vLLM, Ollama, hosted APIs) over libcurl (DESIGN §7,
 * docs/engine.md, "The upstream engine").
 *
 * A call POSTs {url}/chat/completions, asking for all N candidates with
 * `n`; candidates the endpoint leaves out (many ignore `n`) are then asked
 * for one by one, n = 1 with seed + i, all in the call's one curl multi
 * handle, so that they run in parallel. Answers are read as they arrive:
 * an event stream (sse.h) or one JSON document. Each request is retried
 * with exponential backoff and full jitter on HTTP 429, 5xx and broken
 * connections, but only while it has given no text, since text already
 * streamed to the caller cannot be taken back.
 *
 * The file reads in the order of a call: the engine, a request's body,
 * its answer, its end (success, retry or failure), the loop that drives
 * them, and generate().
 */
#include "engine/engine_int.h"
#include "engine/sse.h"

#include <curl/curl.h>
#include <jansson.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define MAX_ANSWER (16u << 20) /* bytes of one HTTP answer */
#define MAX_ANSWER_TEXT "16 MiB"
#define MAX_URL 2048
#define MAX_MODEL 256
#define MAX_QUOTE 300 /* bytes of an endpoint's own error message quoted */
/* OpenAI refuses more than 4 stop strings; the others are applied here
 * only (every one of them is, whatever the endpoint does). */
#define MAX_SERVER_STOP 4
#define MAX_RETRIES 10
#define MAX_BACKOFF_MS 30000
/* With no deadline, a Retry-After longer than this fails the call rather
 * than hold it for the endpoint's convenience. */
#define MAX_RETRY_AFTER_S 60
/* After every candidate of a stream has its finish reason, how long the
 * usage event and "[DONE]" may take before pwb hangs up. */
#define END_GRACE_S 0.5
#define CHAT_PATH "/chat/completions"
#define BEARER "Authorization: Bearer "

typedef struct oa_engine {
	pwb_engine head;
	char *endpoint; /* {url}/chat/completions: every message names it */
	char *model;
	char *auth;	 /* the Authorization header, or NULL */
	const char *key; /* inside auth; scrubbed from every message */
	int connect_timeout_ms;
	int timeout_ms;
	int retries;
	int backoff_ms;
	bool stream;
	bool use_n;
	pwb_log_fn log;
	void *log_user;
	/* Connections (and resolved names) outlive a call: the next call to
	 * the endpoint reuses one that is idle instead of a new TCP (and TLS)
	 * handshake. libcurl locks the share through share_lock. */
	CURLSH *share;
	pthread_mutex_t share_mu[CURL_LOCK_DATA_LAST];
	bool share_mu_ok;
} oa_engine;

/* ---- messages: never the key, never raw control bytes ---- */

/*
 * Replaces every occurrence of the key in msg (NUL-terminated, in place)
 * with "[key]", or with as many '*' when the key is shorter than that (the
 * text never grows): an endpoint may echo the header it was sent.
 */
static void scrub_key(const oa_engine *e, char *msg)
{
	if (!e->key)
		return;
	size_t kl = strlen(e->key);
	char *at = msg, *hit;
	while ((hit = strstr(at, e->key))) {
		if (kl >= 5) {
			memcpy(hit, "[key]", 5);
			memmove(hit + 5, hit + kl, strlen(hit + kl) + 1);
			at = hit + 5;
		} else {
			memset(hit, '*', kl);
			at = hit + kl;
		}
	}
}

static void oa_log(const oa_engine *e, pwb_log_level level, const char *fmt,
		   ...) __attribute__((format(printf, 3, 4)));
static void oa_log(const oa_engine *e, pwb_log_level level, const char *fmt,
		   ...)
{
	if (!e->log)
		return;
	char msg[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	scrub_key(e, msg);
	e->log(e->log_user, level, msg);
}

/*
 * Copies an endpoint's text for quoting: the key scrubbed first (a cut
 * through it would leave part of it), then at most MAX_QUOTE bytes, cut
 * at a character boundary, control bytes as spaces. out has room for
 * MAX_QUOTE + 4 bytes.
 */
static void quote(const oa_engine *e, char *out, const char *s)
{
	size_t kl = e->key ? strlen(e->key) : 0;
	/* A few bytes past the cap, to see whether the cap falls inside a
	 * character. */
	size_t take = strnlen(s, MAX_QUOTE + kl + 4);
	char *t = pwb__strndup(s, take);
	if (!t) {
		memcpy(out, "(not shown)", 12);
		return;
	}
	scrub_key(e, t);
	size_t len = strlen(t), n = len < MAX_QUOTE ? len : MAX_QUOTE;
	bool cut = n < len || s[take];
	while (n < len && n && ((unsigned char)t[n] & 0xC0) == 0x80)
		n--;
	for (size_t i = 0; i < n; i++)
		out[i] =
		    (unsigned char)t[i] < 0x20 || t[i] == 0x7f ? ' ' : t[i];
	memcpy(out + n, cut ? "..." : "", cut ? 4 : 1);
	free(t);
}

/* ---- the engine ---- */

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_rc;

static void curl_init(void)
{
	curl_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

pwb_openai_params pwb_openai_default_params(void)
{
	return (pwb_openai_params){
	    .connect_timeout_ms = 5000,
	    .timeout_ms = 120000,
	    .retries = 2,
	    .backoff_ms = 200,
	    .stream = true,
	    .use_n = true,
	};
}

static bool has_control(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return true;
	return false;
}

static const char *bad_url(const char *url)
{
	if (!url || !*url)
		return "no URL";
	size_t skip = !strncasecmp(url, "http://", 7)	 ? 7
		      : !strncasecmp(url, "https://", 8) ? 8
							 : 0;
	if (!skip)
		return "not an http:// or https:// URL";
	if (!url[skip] || url[skip] == '/')
		return "a URL without a host";
	if (strlen(url) > MAX_URL)
		return "a URL of more than 2048 bytes";
	for (const char *s = url; *s; s++)
		if ((unsigned char)*s <= 0x20 || *s == 0x7f)
			return "a URL with spaces or control characters";
	return NULL;
}

static pwb_status check_params(const pwb_openai_params *p, pwb_diag *diag)
{
	const char *bad = NULL;
	int line, col;
	bool nul;
	if (!p)
		bad = "no params";
	else if (bad_url(p->url))
		bad = bad_url(p->url);
	else if (p->model && (strlen(p->model) > MAX_MODEL || !*p->model ||
			      !pwb__utf8_valid(p->model, strlen(p->model),
					       &line, &col, &nul)))
		bad = "the model must be 1 to 256 bytes of UTF-8";
	else if (p->api_key_env && !*p->api_key_env)
		bad = "api_key_env is empty (NULL: no key)";
	else if (p->connect_timeout_ms < 0 || p->timeout_ms < 0)
		bad = "timeouts must not be negative";
	else if (p->retries < 0 || p->retries > MAX_RETRIES)
		bad = "retries must be 0 to 10";
	else if (p->backoff_ms < 0 || p->backoff_ms > MAX_BACKOFF_MS)
		bad = "backoff_ms must be 0 to 30000";
	if (!bad)
		return PWB_OK;
	if (p && p->url && bad == bad_url(p->url))
		pwb_diag_add(diag, NULL, 0, 0, "openai: '%s' is %s",
			     has_control(p->url) ? "(the URL)" : p->url, bad);
	else
		pwb_diag_add(diag, NULL, 0, 0, "openai: %s", bad);
	return PWB_EINVAL;
}

/* The key is read once, here: a later change of the environment does
 * not reach an engine already made. */
static pwb_status read_key(oa_engine *e, const char *var, pwb_diag *diag)
{
	if (!var)
		return PWB_OK;
	const char *key = getenv(var);
	if (!key || !*key) {
		pwb_diag_add(diag, NULL, 0, 0,
			     "openai: the environment variable %s, which "
			     "should hold the API key, is %s",
			     var, key ? "empty" : "not set");
		return PWB_EINVAL;
	}
	if (has_control(key)) {
		pwb_diag_add(diag, NULL, 0, 0,
			     "openai: the API key in %s has control "
			     "characters",
			     var);
		return PWB_EINVAL;
	}
	pwb__buf b;
	pwb__buf_init(&b, 0);
	pwb__buf_adds(&b, BEARER);
	pwb__buf_adds(&b, key);
	if (!(e->auth = pwb__buf_detach(&b)))
		return PWB_ENOMEM;
	e->key = e->auth + strlen(BEARER);
	return PWB_OK;
}

static void share_lock(CURL *h, curl_lock_data d, curl_lock_access a,
		       void *user)
{
	(void)h;
	(void)a;
	oa_engine *e = user;
	pthread_mutex_lock(&e->share_mu[d]);
}

static void share_unlock(CURL *h, curl_lock_data d, void *user)
{
	(void)h;
	oa_engine *e = user;
	pthread_mutex_unlock(&e->share_mu[d]);
}

static pwb_status share_init(oa_engine *e)
{
	for (int i = 0; i < CURL_LOCK_DATA_LAST; i++)
		pthread_mutex_init(&e->share_mu[i], NULL);
	e->share_mu_ok = true;
	if (!(e->share = curl_share_init()))
		return PWB_ENOMEM;
	CURLSH *s = e->share;
	if (curl_share_setopt(s, CURLSHOPT_LOCKFUNC, share_lock) ||
	    curl_share_setopt(s, CURLSHOPT_UNLOCKFUNC, share_unlock) ||
	    curl_share_setopt(s, CURLSHOPT_USERDATA, e) ||
	    curl_share_setopt(s, CURLSHOPT_SHARE, CURL_LOCK_DATA_CONNECT) ||
	    curl_share_setopt(s, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS))
		return PWB_ENOMEM;
	return PWB_OK;
}

static void oa_destroy(pwb_engine *pe)
{
	oa_engine *e = (oa_engine *)pe;
	if (e->share)
		curl_share_cleanup(e->share);
	if (e->share_mu_ok)
		for (int i = 0; i < CURL_LOCK_DATA_LAST; i++)
			pthread_mutex_destroy(&e->share_mu[i]);
	if (e->auth)
		explicit_bzero(e->auth, strlen(e->auth));
	free(e->auth);
	free(e->endpoint);
	free(e->model);
	free(e->head.name);
	free(e);
}

static pwb_status oa_generate(pwb_engine *pe, const pwb_chat_msg *msgs,
			      size_t n_msgs, const pwb_gen_params *p,
			      pwb_generation *out, pwb_diag *diag);

static const pwb__engine_ops oa_ops = {
    .generate = oa_generate,
    .embed = NULL, /* the upstream engine gives no embeddings */
    .destroy = oa_destroy,
};

static pwb_status set_names(oa_engine *e, const pwb_openai_params *p)
{
	size_t ul = strlen(p->url);
	while (ul && p->url[ul - 1] == '/')
		ul--; /* "http://h/v1/" and "http://h/v1" are the same */
	pwb__buf b;
	pwb__buf_init(&b, 0);
	pwb__buf_add(&b, p->url, ul);
	pwb__buf_adds(&b, CHAT_PATH);
	e->endpoint = pwb__buf_detach(&b);
	pwb__buf_init(&b, 0);
	e->model = pwb__strdup(p->model ? p->model : "default");
	pwb__buf_addf(&b, "openai:%.*s (%s)", (int)ul, p->url,
		      p->model ? p->model : "default");
	e->head.name = pwb__buf_detach(&b);
	return e->endpoint && e->model && e->head.name ? PWB_OK : PWB_ENOMEM;
}

pwb_status pwb_engine_openai_new(pwb_engine **out, const pwb_openai_params *p,
				 pwb_diag *diag)
{
	*out = NULL;
	pwb_status st = check_params(p, diag);
	if (st)
		return st;
	pthread_once(&curl_once, curl_init);
	if (curl_init_rc) {
		pwb_diag_add(diag, NULL, 0, 0, "openai: libcurl failed: %s",
			     curl_easy_strerror(curl_init_rc));
		return PWB_EIO;
	}
	oa_engine *e = pwb__calloc(1, sizeof(*e));
	if (!e)
		return PWB_ENOMEM;
	e->head.ops = &oa_ops;
	e->connect_timeout_ms = p->connect_timeout_ms;
	e->timeout_ms = p->timeout_ms;
	e->retries = p->retries;
	e->backoff_ms = p->backoff_ms;
	e->stream = p->stream;
	e->use_n = p->use_n;
	e->log = p->log;
	e->log_user = p->log_user;
	if (!(st = set_names(e, p)) && !(st = share_init(e)))
		st = read_key(e, p->api_key_env, diag);
	if (st) {
		oa_destroy(&e->head);
		return st;
	}
	*out = &e->head;
	return PWB_OK;
}

/* ---- one call: its requests and candidates ---- */

typedef enum req_state {
	REQ_IDLE,    /* not used */
	REQ_WAITING, /* to start at start_at (a new request, or a retry) */
	REQ_RUNNING, /* in the multi handle */
	REQ_DONE,
} req_state;

struct oa_call;

/* One HTTP request, for candidates first .. first + n - 1. */
typedef struct oa_req {
	struct oa_call *call;
	CURL *easy;
	struct curl_slist *headers;
	char *body;
	size_t first;
	size_t n;
	int tries; /* started so far */
	double start_at;
	req_state state;
	/* The answer being read; cleared before a retry. */
	bool kind_known;
	bool sse;	    /* an event stream, else one JSON document */
	bool sse_done;	    /* "data: [DONE]" arrived */
	bool usage_seen;    /* a stream's usage event arrived */
	double all_done_at; /* when every candidate had finished, or 0 */
	bool stopped_early; /* every candidate was done: we hung up */
	bool too_large;
	bool added; /* text went to a candidate: no retry from here on */
	pwb__sse parser;
	pwb__buf raw; /* a JSON answer, or an error's body */
	size_t received;
	size_t prompt_tokens;
	size_t completion_tokens;
	pwb_status st; /* why the answer cannot be read, and... */
	char why[768]; /* ...the message saying so */
	char errbuf[CURL_ERROR_SIZE];
} oa_req;

typedef struct oa_call {
	oa_engine *e;
	const pwb_gen_params *p;
	json_t *tmpl; /* the body, less n and seed */
	CURLM *multi;
	oa_req req[PWB_ENGINE_MAX_N];
	size_t n_req;
	pwb__cand cand[PWB_ENGINE_MAX_N];
	bool seen[PWB_ENGINE_MAX_N];	 /* a choice for it arrived */
	bool finished[PWB_ENGINE_MAX_N]; /* it came with a finish_reason */
	size_t prompt_tokens;
	size_t completion_tokens;
	bool usage;
	double deadline; /* 0: none */
	int timeout_ms;
	uint64_t rng; /* the jitter of backoffs */
	pwb_status err;
	pwb_diag *diag;
} oa_call;

static pwb_status call_fail(oa_call *c, pwb_status st, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* The first failure of a call is its only message; the rest follow it. */
static pwb_status call_fail(oa_call *c, pwb_status st, const char *fmt, ...)
{
	if (c->err)
		return c->err;
	char msg[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	scrub_key(c->e, msg);
	pwb_diag_add(c->diag, NULL, 0, 0, "%s", msg);
	return c->err = st;
}

static pwb_status req_bad(oa_req *r, pwb_status st, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Why this request's answer cannot be used (the first reason counts). */
static pwb_status req_bad(oa_req *r, pwb_status st, const char *fmt, ...)
{
	if (r->st)
		return r->st;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(r->why, sizeof(r->why), fmt, ap);
	va_end(ap);
	return r->st = st;
}

static pwb_status req_malformed(oa_req *r, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* An answer that breaks the protocol: never retried (asking again would
 * most likely bring the same), always PWB_EIO. */
static pwb_status req_malformed(oa_req *r, const char *fmt, ...)
{
	char what[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	return req_bad(r, PWB_EIO, "%s sent %s: %s", r->call->e->endpoint,
		       r->sse ? "a malformed SSE stream"
			      : "an answer that cannot be read",
		       what);
}

/* ---- the request body ---- */

/* JSON carries UTF-8 only; jansson would refuse the rest without
 * saying why. A message is named by its number and its role ("message 2
 * (user)"), a stop string (role NULL) by its number. */
static bool not_utf8(const char *s, const char *what, size_t i,
		     const char *role, const char *who, pwb_diag *diag)
{
	int line, col;
	bool nul;
	if (pwb__utf8_valid(s, strlen(s), &line, &col, &nul))
		return false;
	pwb_diag_add(diag, NULL, 0, 0,
		     "%s: %s %zu%s%s%s is not valid UTF-8 (line %d, column %d)",
		     who, what, i + 1, role ? " (" : "", role ? role : "",
		     role ? ")" : "", line, col);
	return true;
}

static pwb_status add_messages(json_t *t, const pwb_chat_msg *msgs,
			       size_t n_msgs, const char *who, pwb_diag *diag)
{
	json_t *arr = json_array();
	if (!arr || json_object_set_new(t, "messages", arr))
		return PWB_ENOMEM;
	for (size_t i = 0; i < n_msgs; i++) {
		if (not_utf8(msgs[i].content, "message", i, msgs[i].role, who,
			     diag))
			return PWB_EINVAL;
		json_t *m = json_pack("{s:s, s:s}", "role", msgs[i].role,
				      "content", msgs[i].content);
		if (!m || json_array_append_new(arr, m))
			return PWB_ENOMEM;
	}
	return PWB_OK;
}

/* Everything the requests of a call share; n and seed are set per request. */
static pwb_status make_template(oa_call *c, const pwb_chat_msg *msgs,
				size_t n_msgs)
{
	const pwb_gen_params *p = c->p;
	json_t *t = c->tmpl = json_pack(
	    "{s:s, s:f, s:f, s:I, s:b}", "model", c->e->model, "temperature",
	    p->temperature, "top_p", p->top_p, "max_tokens",
	    (json_int_t)p->max_tokens, "stream", c->e->stream);
	if (!t)
		return PWB_ENOMEM;
	pwb_status st = add_messages(t, msgs, n_msgs, c->e->head.name, c->diag);
	if (st)
		return st;
	if (c->e->stream &&
	    json_object_set_new(t, "stream_options",
				json_pack("{s:b}", "include_usage", 1)))
		return PWB_ENOMEM;
	if (!p->n_stop)
		return PWB_OK;
	json_t *stop = json_array();
	if (!stop || json_object_set_new(t, "stop", stop))
		return PWB_ENOMEM;
	for (size_t i = 0; i < p->n_stop; i++)
		if (not_utf8(p->stop[i], "stop string", i, NULL,
			     c->e->head.name, c->diag))
			return PWB_EINVAL;
	for (size_t i = 0; i < p->n_stop && i < MAX_SERVER_STOP; i++)
		if (json_array_append_new(stop, json_string(p->stop[i])))
			return PWB_ENOMEM;
	return PWB_OK;
}

static char *make_body(oa_call *c, size_t first, size_t n)
{
	/* Seeds are 63 bits in JSON: servers read them as signed. */
	json_int_t seed = (json_int_t)((c->p->seed + first) & INT64_MAX);
	if (json_object_set_new(c->tmpl, "seed", json_integer(seed)))
		return NULL;
	/* n is left out when 1: some servers refuse the field itself. */
	if (n == 1)
		json_object_del(c->tmpl, "n");
	else if (json_object_set_new(c->tmpl, "n", json_integer((json_int_t)n)))
		return NULL;
	char *s = json_dumps(c->tmpl, JSON_COMPACT | JSON_REAL_PRECISION(15));
	if (!s)
		return NULL;
	char *copy = pwb__strdup(s); /* one allocator for what we free */
	free(s);
	return copy;
}

/* ---- the answer: one JSON document or an event stream ---- */

static void take_usage(oa_req *r, json_t *u)
{
	json_t *pt = json_object_get(u, "prompt_tokens");
	json_t *ct = json_object_get(u, "completion_tokens");
	if (json_is_integer(pt) && json_integer_value(pt) >= 0)
		r->prompt_tokens = (size_t)json_integer_value(pt);
	if (json_is_integer(ct) && json_integer_value(ct) >= 0)
		r->completion_tokens = (size_t)json_integer_value(ct);
}

static pwb_finish finish_of(const char *reason)
{
	/* "content_filter", "tool_calls" and the like end the text too. */
	return !strcmp(reason, "length") ? PWB_FINISH_LENGTH : PWB_FINISH_STOP;
}

static void cand_text(oa_call *c, size_t k, const char *s, size_t n)
{
	pwb__cand_add(&c->cand[k], c->p, s, n);
	pwb__cand_flush(&c->cand[k], c->p, k);
}

static void cand_end(oa_call *c, size_t k, pwb_finish f)
{
	pwb__cand *cd = &c->cand[k];
	if (!cd->done) {
		cd->done = true;
		cd->finish = f;
	}
	pwb__cand_flush(cd, c->p, k); /* what was held back for stops */
}

/* choices[pos]: a delta of a stream, or a whole message. */
static pwb_status take_choice(oa_req *r, json_t *o, size_t pos, bool delta)
{
	oa_call *c = r->call;
	if (!json_is_object(o))
		return req_malformed(r, "choice %zu is not an object", pos);
	json_t *ix = json_object_get(o, "index");
	json_int_t k = ix ? (json_is_integer(ix) ? json_integer_value(ix) : -1)
			  : (json_int_t)pos;
	if (k < 0 || (size_t)k >= r->n)
		return PWB_OK; /* not a choice we asked for */
	size_t ci = r->first + (size_t)k;
	c->seen[ci] = true;
	json_t *m = json_object_get(o, delta ? "delta" : "message");
	json_t *text = json_is_object(m) ? json_object_get(m, "content")
					 : json_object_get(o, "text");
	if (text && !json_is_string(text) && !json_is_null(text))
		return req_malformed(
		    r, "choice %zu has content that is not a string",
		    (size_t)k);
	if (json_is_string(text) && json_string_length(text)) {
		/* A delta is about a token; an endpoint that streams past
		 * max_tokens is cut there, finish "length". */
		if (delta && c->cand[ci].tokens >= c->p->max_tokens) {
			cand_end(c, ci, PWB_FINISH_LENGTH);
		} else {
			r->added = true;
			cand_text(c, ci, json_string_value(text),
				  json_string_length(text));
			c->cand[ci].tokens += delta;
		}
	}
	json_t *fr = json_object_get(o, "finish_reason");
	if (json_is_string(fr)) {
		c->finished[ci] = true;
		cand_end(c, ci, finish_of(json_string_value(fr)));
	}
	return PWB_OK;
}

/* The endpoint's own words: {"error": {"message": ...}} (OpenAI, llama.cpp),
 * {"error": "..."} (Ollama), {"message": ...} (vLLM), {"detail": ...}. */
static const char *error_text(json_t *j)
{
	json_t *err = json_object_get(j, "error");
	json_t *m = err;
	if (json_is_object(err))
		m = json_object_get(err, "message");
	else if (!json_is_string(err))
		m = json_object_get(j, "message");
	if (!m)
		m = json_object_get(j, "detail");
	return json_is_string(m) ? json_string_value(m) : NULL;
}

static pwb_status take_answer(oa_req *r, json_t *j, bool delta)
{
	if (!json_is_object(j))
		return req_malformed(r, "%s is not a JSON object",
				     delta ? "an event" : "the answer");
	json_t *err = json_object_get(j, "error");
	if (err && !json_is_null(err)) {
		const char *t = error_text(j);
		char q[MAX_QUOTE + 4];
		quote(r->call->e, q, t ? t : "(no message)");
		return req_bad(r, PWB_EIO, "%s reported an error: %s",
			       r->call->e->endpoint, q);
	}
	json_t *u = json_object_get(j, "usage");
	if (json_is_object(u)) {
		take_usage(r, u);
		r->usage_seen |= delta;
	}
	json_t *ch = json_object_get(j, "choices");
	if (!ch || json_is_null(ch))
		return PWB_OK; /* a stream's usage event; checked at the end */
	if (!json_is_array(ch))
		return req_malformed(r, "choices is not an array");
	for (size_t i = 0; i < json_array_size(ch); i++) {
		pwb_status st = take_choice(r, json_array_get(ch, i), i, delta);
		if (st)
			return st;
	}
	return PWB_OK;
}

static pwb_status on_event(void *user, const char *type, const char *data,
			   size_t len)
{
	oa_req *r = user;
	(void)type; /* OpenAI sends no event names; errors come as data */
	if (len == 6 && !memcmp(data, "[DONE]", 6)) {
		r->sse_done = true;
		return PWB_OK;
	}
	if (r->sse_done)
		return PWB_OK; /* nothing counts after [DONE] */
	json_error_t je;
	json_t *j = json_loadb(data, len, 0, &je);
	if (!j)
		return req_malformed(r, "event %zu is not JSON (%s)",
				     r->parser.events, je.text);
	pwb_status st = take_answer(r, j, true);
	json_decref(j);
	return st;
}

/*
 * True when a stream need not be read to its end: "[DONE]" came (nothing
 * after it counts, and an endpoint may keep the connection open), or
 * every candidate is done and either one was ended here (a stop string
 * the endpoint was not sent or did not apply, or the caller's on_text),
 * so that the endpoint may still be generating, or the usage event, the
 * last before "[DONE]", has come too. Otherwise the stream's own end is
 * near.
 */
static bool req_needs_no_more(oa_req *r)
{
	if (r->sse_done)
		return true;
	bool ended_here = false;
	for (size_t k = r->first; k < r->first + r->n; k++) {
		if (!r->call->cand[k].done)
			return false;
		ended_here |= !r->call->finished[k];
	}
	if (!r->all_done_at)
		r->all_done_at = pwb__now();
	return ended_here || r->usage_seen;
}

/* Decided at the first bytes of the body, once status and type are known:
 * an endpoint may answer JSON to a request for a stream. */
static void decide_kind(oa_req *r)
{
	long status = 0;
	char *type = NULL;
	curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &status);
	curl_easy_getinfo(r->easy, CURLINFO_CONTENT_TYPE, &type);
	r->sse = status / 100 == 2 && type &&
		 !strncasecmp(type, "text/event-stream", 17);
	r->kind_known = true;
}

/* libcurl's write callback; returning less than n ends the transfer. */
static size_t on_body(char *data, size_t size, size_t nmemb, void *user)
{
	oa_req *r = user;
	size_t n = size * nmemb;
	if (n > MAX_ANSWER - r->received) {
		r->too_large = true;
		return 0;
	}
	r->received += n;
	if (!r->kind_known)
		decide_kind(r);
	if (!r->sse) {
		pwb__buf_add(&r->raw, data, n);
		return r->raw.err ? 0 : n;
	}
	if (pwb__sse_feed(&r->parser, data, n, on_event, r))
		return 0;
	if (req_needs_no_more(r)) {
		r->stopped_early = true;
		return 0;
	}
	return n;
}

/* ---- a request's life ---- */

static pwb_status req_init(oa_call *c, oa_req *r, size_t first, size_t n)
{
	oa_engine *e = c->e;
	memset(r, 0, sizeof(*r));
	r->call = c;
	r->first = first;
	r->n = n;
	r->state = REQ_WAITING;
	r->start_at = pwb__now();
	pwb__sse_init(&r->parser, 0, 0);
	pwb__buf_init(&r->raw, 0);
	if (!(r->body = make_body(c, first, n)) ||
	    !(r->easy = curl_easy_init()))
		return PWB_ENOMEM;
	const char *hdrs[] = {
	    "Content-Type: application/json",
	    e->stream ? "Accept: text/event-stream"
		      : "Accept: application/json",
	    "Expect:", /* no 100-continue round trip for large prompts */
	    e->auth,
	};
	for (size_t i = 0; i < PWB_ARRAY_LEN(hdrs) && hdrs[i]; i++) {
		struct curl_slist *l = curl_slist_append(r->headers, hdrs[i]);
		if (!l)
			return PWB_ENOMEM;
		r->headers = l;
	}
	CURL *h = r->easy;
	curl_easy_setopt(h, CURLOPT_URL, e->endpoint);
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, r->headers);
	curl_easy_setopt(h, CURLOPT_POSTFIELDS, r->body);
	curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE,
			 (curl_off_t)strlen(r->body));
	curl_easy_setopt(h, CURLOPT_USERAGENT, "pwb/" PWB_VERSION);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, r);
	curl_easy_setopt(h, CURLOPT_PRIVATE, r);
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, r->errbuf);
	curl_easy_setopt(h, CURLOPT_SHARE, e->share);
	/* Signals are process-wide; calls run on many threads. */
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	return PWB_OK;
}

static void req_release(oa_req *r)
{
	if (r->easy) {
		if (r->state == REQ_RUNNING)
			curl_multi_remove_handle(r->call->multi, r->easy);
		curl_easy_cleanup(r->easy);
	}
	curl_slist_free_all(r->headers);
	free(r->body);
	pwb__sse_release(&r->parser);
	pwb__buf_release(&r->raw);
	memset(r, 0, sizeof(*r));
}

/* Forgets an answer that will be asked for again. */
static void req_clear_answer(oa_req *r)
{
	pwb__sse_release(&r->parser);
	pwb__sse_init(&r->parser, 0, 0);
	pwb__buf_release(&r->raw);
	r->kind_known = r->sse = r->sse_done = r->usage_seen = false;
	r->all_done_at = 0;
	r->stopped_early = r->too_large = false;
	r->received = r->prompt_tokens = r->completion_tokens = 0;
	r->st = PWB_OK;
	r->why[0] = r->errbuf[0] = '\0';
	/* Nothing of these candidates was handed out (else no retry): they
	 * start afresh, also one that ended empty. */
	for (size_t k = r->first; k < r->first + r->n; k++) {
		r->call->seen[k] = r->call->finished[k] = false;
		pwb__cand_release(&r->call->cand[k]);
		pwb__cand_init(&r->call->cand[k]);
	}
}

static double time_left(const oa_call *c)
{
	return c->deadline ? c->deadline - pwb__now() : 1e9;
}

static void req_start(oa_call *c, oa_req *r)
{
	double left = time_left(c);
	long connect = c->e->connect_timeout_ms;
	if (c->deadline) {
		long ms = left > 0.001 ? (long)(left * 1000) : 1;
		curl_easy_setopt(r->easy, CURLOPT_TIMEOUT_MS, ms);
		if (!connect || connect > ms)
			connect = ms;
	}
	curl_easy_setopt(r->easy, CURLOPT_CONNECTTIMEOUT_MS, connect);
	CURLMcode mc = curl_multi_add_handle(c->multi, r->easy);
	if (mc) {
		call_fail(c, PWB_EIO, "%s: libcurl failed: %s", c->e->endpoint,
			  curl_multi_strerror(mc));
		return;
	}
	r->tries++;
	r->state = REQ_RUNNING;
}

/* Adds a request for candidates first .. first + n - 1, to start now. */
static void call_add_req(oa_call *c, size_t first, size_t n)
{
	if (PWB_NEVER(c->n_req >= PWB_ENGINE_MAX_N)) {
		call_fail(c, PWB_EIO, "%s: too many requests", c->e->endpoint);
		return;
	}
	oa_req *r = &c->req[c->n_req++];
	if (req_init(c, r, first, n))
		call_fail(c, PWB_ENOMEM, "%s: out of memory", c->e->endpoint);
}

/* ---- the end of a request: success, retry or failure ---- */

/* The message for a transfer libcurl could not complete; *retry is set
 * for the errors of a connection, which another try may not meet. */
static void transfer_error(oa_call *c, oa_req *r, CURLcode rc, bool *retry)
{
	const char *url = c->e->endpoint;
	const char *what = r->errbuf[0] ? r->errbuf : curl_easy_strerror(rc);
	long os_errno = 0;
	char ebuf[128];
	curl_easy_getinfo(r->easy, CURLINFO_OS_ERRNO, &os_errno);
	*retry = false;
	switch (rc) {
	case CURLE_OPERATION_TIMEDOUT: {
		if (c->deadline && time_left(c) < 0.005) {
			req_bad(r, PWB_EIO, "%s timed out after %d ms", url,
				c->timeout_ms);
			return;
		}
		/* Time is left: it was the connect timeout. */
		*retry = true;
		curl_off_t us = 0;
		curl_easy_getinfo(r->easy, CURLINFO_TOTAL_TIME_T, &us);
		req_bad(r, PWB_EIO,
			"cannot connect to %s: no connection after %ld ms", url,
			(long)(us / 1000));
		return;
	}
	case CURLE_COULDNT_CONNECT:
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_COULDNT_RESOLVE_PROXY:
	case CURLE_SSL_CONNECT_ERROR:
		*retry = true;
		req_bad(r, PWB_EIO, "cannot connect to %s: %s", url,
			os_errno ? strerror_r((int)os_errno, ebuf, sizeof(ebuf))
				 : what);
		return;
	case CURLE_GOT_NOTHING:
	case CURLE_SEND_ERROR:
	case CURLE_RECV_ERROR:
	case CURLE_PARTIAL_FILE:
	case CURLE_HTTP2:
	case CURLE_HTTP2_STREAM:
		*retry = true;
		req_bad(r, PWB_EIO, "%s closed the connection mid-answer: %s",
			url, what);
		return;
	default:
		req_bad(r, PWB_EIO, "request to %s failed: %s", url, what);
	}
}

static void http_error(oa_call *c, oa_req *r, long status, bool *retry)
{
	*retry = status == 429 || status >= 500;
	/* A message with a NUL in it is still quoted, up to the NUL. */
	json_t *j = json_loadb(r->raw.s ? r->raw.s : "", r->raw.len,
			       JSON_ALLOW_NUL, NULL);
	const char *t = error_text(j);
	char q[MAX_QUOTE + 4];
	if (t)
		quote(c->e, q, t);
	req_bad(r, PWB_EIO, "%s answered HTTP %ld%s%s", c->e->endpoint, status,
		t ? ": " : "", t ? q : "");
	json_decref(j);
}

/* Reads a whole JSON answer (the endpoint did not stream). */
static void take_json(oa_call *c, oa_req *r)
{
	json_error_t je;
	json_t *j = json_loadb(r->raw.s ? r->raw.s : "", r->raw.len, 0, &je);
	if (!j) {
		req_bad(r, PWB_EIO,
			"%s sent malformed JSON: %s (line %d, column %d)",
			c->e->endpoint, je.text, je.line, je.column);
		return;
	}
	take_answer(r, j, false);
	json_decref(j);
	if (!r->st && r->n == 1 && !c->cand[r->first].tokens)
		c->cand[r->first].tokens = r->completion_tokens;
}

/* An event stream that ended: complete, or cut? */
static void check_stream_end(oa_call *c, oa_req *r)
{
	const char *cut = NULL;
	if (r->stopped_early || r->st)
		return;
	if (pwb__sse_pending(&r->parser))
		cut = "it ended in the middle of an event";
	for (size_t k = r->first; !cut && k < r->first + r->n; k++)
		if (!r->sse_done && c->seen[k] && !c->cand[k].done)
			cut = "it ended before the answer was complete";
	if (cut)
		req_malformed(r, "%s", cut);
}

/* Every candidate of a stream has its finish reason: the answer is
 * complete, whatever happens to the connection after it. */
static bool req_all_finished(const oa_req *r)
{
	for (size_t k = r->first; k < r->first + r->n; k++)
		if (!r->call->cand[k].done)
			return false;
	return true;
}

/* Reads what the request brought; r->st is then set if it cannot be used,
 * and *retry when asking again may help. */
static void req_judge(oa_call *c, oa_req *r, CURLcode rc, bool *retry)
{
	long status = 0;
	*retry = false;
	curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &status);
	if (!r->kind_known)
		decide_kind(r); /* an empty body */
	if (r->st) {
		/* the stream's events said why */
	} else if (r->too_large) {
		req_bad(r, PWB_EIO, "%s sent more than " MAX_ANSWER_TEXT,
			c->e->endpoint);
	} else if (r->raw.err || (r->sse && r->parser.err == PWB_ENOMEM)) {
		req_bad(r, PWB_ENOMEM, "%s: out of memory", c->e->endpoint);
	} else if (r->sse && r->parser.err) {
		req_malformed(r,
			      "a line of more than %zu bytes or an event of "
			      "more than %zu",
			      r->parser.max_line, r->parser.max_event);
	} else if (rc != CURLE_OK &&
		   !(rc == CURLE_WRITE_ERROR && r->stopped_early) &&
		   !(r->sse && req_all_finished(r))) {
		transfer_error(c, r, rc, retry);
	} else if (status / 100 != 2) {
		http_error(c, r, status, retry);
	} else if (r->sse) {
		check_stream_end(c, r);
	} else {
		take_json(c, r);
	}
	/* Text already handed out cannot be taken back by a second try. */
	if (r->added)
		*retry = false;
}

static uint64_t backoff_ms(oa_call *c, const oa_req *r)
{
	uint64_t cap = (uint64_t)c->e->backoff_ms << (r->tries - 1);
	if (cap > MAX_BACKOFF_MS)
		cap = MAX_BACKOFF_MS;
	/* Full jitter: callers that failed together do not retry together. */
	return pwb__rng_next(&c->rng) % (cap + 1);
}

/* Schedules another try of r after a pause, or fails the call. */
static void req_retry(oa_call *c, oa_req *r)
{
	if (r->tries > c->e->retries) {
		if (r->tries > 1)
			call_fail(c, r->st, "%s (%d tries)", r->why, r->tries);
		else
			call_fail(c, r->st, "%s", r->why);
		return;
	}
	curl_off_t after = -1; /* Retry-After, in seconds */
	curl_easy_getinfo(r->easy, CURLINFO_RETRY_AFTER, &after);
	double wait = after > 0 ? (double)after : backoff_ms(c, r) / 1000.0;
	if (after > 0 && !c->deadline && after > MAX_RETRY_AFTER_S) {
		call_fail(c, r->st, "%s (it asked to retry after %ld s)",
			  r->why, (long)after);
		return;
	}
	if (wait >= time_left(c)) {
		/* Waiting would only end in "timed out": say what happened. */
		if (after > 0)
			call_fail(c, r->st,
				  "%s (it asked to retry after %ld s, past "
				  "the %d ms timeout)",
				  r->why, (long)after, c->timeout_ms);
		else
			call_fail(c, r->st,
				  "%s (no time left to try again within %d ms)",
				  r->why, c->timeout_ms);
		return;
	}
	oa_log(c->e, PWB_LOG_WARN,
	       "%s: %s; trying again in %.0f ms (try %d of %d)",
	       c->e->head.name, r->why, wait * 1000, r->tries + 1,
	       c->e->retries + 1);
	req_clear_answer(r);
	r->state = REQ_WAITING;
	r->start_at = pwb__now() + wait;
}

/* A request that answered: its candidates are taken; those it left out
 * are asked for one by one. */
static void req_succeeded(oa_call *c, oa_req *r)
{
	size_t seen = 0, missing = 0;
	for (size_t k = r->first; k < r->first + r->n; k++)
		seen += c->seen[k] || c->cand[k].done;
	if (!seen) {
		call_fail(c, PWB_EIO, "%s answered without choices",
			  c->e->endpoint);
		return;
	}
	c->usage |= r->prompt_tokens || r->completion_tokens;
	if (r->prompt_tokens > c->prompt_tokens)
		c->prompt_tokens = r->prompt_tokens;
	c->completion_tokens += r->completion_tokens;
	for (size_t k = r->first; k < r->first + r->n; k++) {
		if (c->seen[k] || c->cand[k].done)
			cand_end(c, k, PWB_FINISH_STOP);
		else {
			missing++;
			call_add_req(c, k, 1);
		}
	}
	if (missing)
		oa_log(c->e, PWB_LOG_INFO,
		       "%s: %zu of %zu choices came back (n ignored?); asking "
		       "for the other %zu one by one",
		       c->e->head.name, r->n - missing, r->n, missing);
}

static void req_finished(oa_call *c, oa_req *r, CURLcode rc)
{
	bool retry;
	curl_multi_remove_handle(c->multi, r->easy);
	r->state = REQ_DONE;
	req_judge(c, r, rc, &retry);
	if (!r->st)
		req_succeeded(c, r);
	else if (retry)
		req_retry(c, r);
	else
		call_fail(c, r->st, "%s", r->why);
}

/* ---- the loop ---- */

static void start_due(oa_call *c)
{
	double now = pwb__now();
	for (size_t i = 0; i < c->n_req && !c->err; i++)
		if (c->req[i].state == REQ_WAITING && c->req[i].start_at <= now)
			req_start(c, &c->req[i]);
}

static void collect_finished(oa_call *c)
{
	CURLMsg *m;
	int left;
	while (!c->err && (m = curl_multi_info_read(c->multi, &left))) {
		if (m->msg != CURLMSG_DONE)
			continue;
		char *priv = NULL;
		curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, &priv);
		CURLcode rc = m->data.result; /* m is gone after the removal */
		if (PWB_ALWAYS(priv))
			req_finished(c, (oa_req *)priv, rc);
	}
}

/* Streams whose every candidate finished END_GRACE_S ago and that sent
 * neither usage nor "[DONE]" nor closed: pwb hangs up, the answers are
 * complete. */
static void hang_up_ended(oa_call *c)
{
	double now = pwb__now();
	for (size_t i = 0; i < c->n_req && !c->err; i++) {
		oa_req *r = &c->req[i];
		if (r->state == REQ_RUNNING && r->all_done_at &&
		    now >= r->all_done_at + END_GRACE_S) {
			r->stopped_early = true;
			req_finished(c, r, CURLE_WRITE_ERROR);
		}
	}
}

/* The caller cancelled: every request ends where it stands. */
static void hang_up_all(oa_call *c)
{
	for (size_t i = 0; i < c->n_req; i++) {
		oa_req *r = &c->req[i];
		if (r->state == REQ_RUNNING)
			curl_multi_remove_handle(c->multi, r->easy);
		if (r->state == REQ_RUNNING || r->state == REQ_WAITING)
			r->state = REQ_DONE;
	}
}

/* How long the loop may sleep: until the next waiting request, a stream's
 * grace or the deadline, and never long (curl's own timers are shorter
 * anyway). */
static int poll_ms(const oa_call *c)
{
	double now = pwb__now(), wake = now + 1.0;
	for (size_t i = 0; i < c->n_req; i++) {
		const oa_req *r = &c->req[i];
		if (r->state == REQ_WAITING && r->start_at < wake)
			wake = r->start_at;
		if (r->state == REQ_RUNNING && r->all_done_at &&
		    r->all_done_at + END_GRACE_S < wake)
			wake = r->all_done_at + END_GRACE_S;
	}
	if (c->deadline && c->deadline < wake)
		wake = c->deadline;
	if (c->p->cancel && now + 0.1 < wake)
		wake = now + 0.1; /* the caller may cancel */
	return wake <= now ? 0 : (int)((wake - now) * 1000) + 1;
}

static bool call_busy(const oa_call *c)
{
	for (size_t i = 0; i < c->n_req; i++)
		if (c->req[i].state == REQ_WAITING ||
		    c->req[i].state == REQ_RUNNING)
			return true;
	return false;
}

static pwb_status call_run(oa_call *c)
{
	while (!c->err && call_busy(c)) {
		start_due(c);
		int running;
		CURLMcode mc = curl_multi_perform(c->multi, &running);
		if (mc)
			return call_fail(c, PWB_EIO, "%s: libcurl failed: %s",
					 c->e->endpoint,
					 curl_multi_strerror(mc));
		collect_finished(c);
		hang_up_ended(c);
		if (!c->err && pwb__cands_cancel(c->cand, c->p->n, c->p)) {
			hang_up_all(c);
			break;
		}
		if (c->err || !call_busy(c))
			break;
		if (c->deadline && pwb__now() >= c->deadline)
			return call_fail(c, PWB_EIO, "%s timed out after %d ms",
					 c->e->endpoint, c->timeout_ms);
		mc = curl_multi_poll(c->multi, NULL, 0, poll_ms(c), NULL);
		if (mc)
			return call_fail(c, PWB_EIO, "%s: libcurl failed: %s",
					 c->e->endpoint,
					 curl_multi_strerror(mc));
	}
	return c->err;
}

/* ---- generate ---- */

static pwb_status call_init(oa_call *c, oa_engine *e, const pwb_gen_params *p,
			    pwb_diag *diag)
{
	memset(c, 0, sizeof(*c));
	c->e = e;
	c->p = p;
	c->diag = diag;
	c->timeout_ms = p->timeout_ms ? p->timeout_ms : e->timeout_ms;
	if (c->timeout_ms)
		c->deadline = pwb__now() + c->timeout_ms / 1000.0;
	c->rng = (uint64_t)(pwb__now() * 1e9) ^ (uint64_t)(uintptr_t)c;
	for (size_t i = 0; i < PWB_ENGINE_MAX_N; i++)
		pwb__cand_init(&c->cand[i]);
	return (c->multi = curl_multi_init()) ? PWB_OK : PWB_ENOMEM;
}

static void call_release(oa_call *c)
{
	for (size_t i = 0; i < c->n_req; i++)
		req_release(&c->req[i]);
	if (c->multi)
		curl_multi_cleanup(c->multi);
	json_decref(c->tmpl);
	for (size_t i = 0; i < PWB_ENGINE_MAX_N; i++)
		pwb__cand_release(&c->cand[i]);
}

static pwb_status oa_generate(pwb_engine *pe, const pwb_chat_msg *msgs,
			      size_t n_msgs, const pwb_gen_params *p,
			      pwb_generation *out, pwb_diag *diag)
{
	oa_engine *e = (oa_engine *)pe;
	oa_call c;
	pwb_status st = call_init(&c, e, p, diag);
	if (!st)
		st = make_template(&c, msgs, n_msgs);
	if (st)
		goto out;
	if (e->use_n)
		call_add_req(&c, 0, p->n);
	else
		for (size_t i = 0; i < p->n; i++)
			call_add_req(&c, i, 1);
	if ((st = call_run(&c)))
		goto out;
	if ((st = pwb__cands_to_generation(c.cand, p->n, p, out)))
		goto out;
	/* An endpoint's counts are its word, and a meter downstream bills
	 * them: no more completion tokens than were asked for, and no more
	 * prompt tokens than the prompt has bytes (plus a template's few per
	 * message). */
	size_t prompt_max = 0;
	for (size_t i = 0; i < n_msgs; i++)
		prompt_max += strlen(msgs[i].content) + 16;
	if (c.usage)
		out->completion_tokens = c.completion_tokens;
	if (out->completion_tokens > p->n * p->max_tokens)
		out->completion_tokens = p->n * p->max_tokens;
	out->prompt_tokens = c.prompt_tokens < prompt_max ? c.prompt_tokens
							  : prompt_max;
out:
	call_release(&c);
	return st;
}
