/*
 * server.c - the HTTP server on libmicrohttpd: connections, the workers,
 * authentication and the role check of every route (one place), answers
 * and event streams, the policy sets and their reloads, replicas' change
 * notices, and the graceful stop.
 *
 * A request's life: its headers arrive (the route is matched, the key
 * copied); its body arrives (capped); the connection is suspended and the
 * request queued for a worker; the worker checks the key and runs the
 * route's handler, which leaves a whole answer (then the connection is
 * resumed and the answer queued) or writes an event stream (the
 * connection is resumed at the first write and suspended again whenever
 * the reader has caught up with the writer). libmicrohttpd's event
 * threads never wait on the store or an engine.
 */
#include "server/server_int.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

pwb_server_params pwb_server_default_params(void)
{
	return (pwb_server_params){
	    .listen = "127.0.0.1:8080",
	    .bounds = pwb_bounds_default_params(),
	    .pipeline = pwb_pipeline_default_params(),
	    .model_name = "pwb",
	    .threads = 2,
	    .workers = 32,
	    .max_body = 8u << 20,
	    .max_header = 32u << 10,
	    .max_connections = 1024,
	    .deadline_ms = 120000,
	    .idle_timeout_s = 30,
	    .key_concurrency = 16,
	    .max_n = 4,
	};
}

int64_t pwb__srv_now(void)
{
	return (int64_t)time(NULL);
}

#define srv_log(s, lv, ...)                                                    \
	pwb__logf((s)->p.log, (s)->p.log_user, lv, __VA_ARGS__)

/* ---- policy sets ---- */

srv_gen *pwb__srv_gen_get(pwb_server *s)
{
	pthread_mutex_lock(&s->lock);
	srv_gen *g = s->gen;
	atomic_fetch_add(&g->refs, 1);
	pthread_mutex_unlock(&s->lock);
	return g;
}

void pwb__srv_gen_release(srv_gen *g)
{
	if (!g || atomic_fetch_sub(&g->refs, 1) != 1)
		return;
	pwb_pipeline_free(g->pipeline);
	pwb_bounds_free(g->bounds);
	pwb_policy_free(g->policy);
	free(g);
}

/* Loads the policy folder, its detectors and a pipeline over them. A
 * folder with any error is refused: the old set keeps serving. */
static pwb_status gen_build(pwb_server *s, srv_gen **out, pwb_diag *d)
{
	*out = NULL;
	srv_gen *g = pwb__calloc(1, sizeof(*g));
	if (!g)
		return PWB_ENOMEM;
	atomic_init(&g->refs, 1);
	pwb_status st = pwb_policy_load(&g->policy, s->policies, NULL, d);
	if (!st) {
		pwb_bounds_params bp = s->p.bounds;
		bp.lexicon_dir = s->lexicon_dir;
		st = pwb_bounds_new(&g->bounds, g->policy, &bp, d);
	}
	pwb_prefs_model *m = NULL;
	if (!st && s->prefs_path)
		st = pwb_prefs_load(&m, s->prefs_path, d);
	if (!st) {
		pwb_pipeline_params pp = s->p.pipeline;
		pp.policy = g->policy;
		pp.bounds = g->bounds;
		pp.prefs = m; /* taken over, also on failure */
		st = pwb_pipeline_new(&g->pipeline, &pp, d);
	}
	if (st) {
		pwb__srv_gen_release(g);
		return st;
	}
	*out = g;
	return PWB_OK;
}

/* Builds a set and puts it in place; notify: tell the other replicas. */
static pwb_status reload(pwb_server *s, bool notify, uint64_t *version,
			 pwb_diag *d)
{
	pthread_mutex_lock(&s->reload_lock);
	srv_gen *g = NULL;
	pwb_status st = gen_build(s, &g, d);
	if (!st) {
		pthread_mutex_lock(&s->lock);
		g->version = ++s->next_version;
		srv_gen *old = s->gen;
		s->gen = g;
		pthread_mutex_unlock(&s->lock);
		pwb__srv_gen_release(old);
		if (version)
			*version = g->version;
		if (old) /* the first load is no reload */
			atomic_fetch_add(&s->metrics.reloads_ok, 1);
		srv_log(s, PWB_LOG_INFO, "policies: set %llu loaded from %s",
			(unsigned long long)g->version, s->policies);
	} else if (s->gen) {
		atomic_fetch_add(&s->metrics.reloads_failed, 1);
		srv_log(s, PWB_LOG_WARN,
			"policies: reload of %s refused (%s); the set in "
			"force keeps serving",
			s->policies, pwb_status_str(st));
	} /* else the first load: the caller reports it, and nothing starts */
	pthread_mutex_unlock(&s->reload_lock);
	if (!st && notify) {
		/* The other replicas load the same folder when they hear. */
		pwb_diag nd;
		pwb_diag_init(&nd);
		/* Counted before it is sent: this replica's listener hears it
		 * too, and must not load the folder a second time. */
		atomic_fetch_add(&s->own_notices, 1);
		if (pwb_store_notify_policy(s->p.pipeline.store, "*", &nd)) {
			atomic_fetch_sub(&s->own_notices, 1);
			atomic_fetch_add(&s->metrics.store_errors, 1);
		}
		pwb_diag_release(&nd);
	}
	return st;
}

pwb_status pwb_server_reload(pwb_server *s, uint64_t *version, pwb_diag *diag)
{
	return reload(s, true, version, diag);
}

/* Replicas: a reload on another replica reaches this one. Users'
 * settings and models need nothing here: every request reads them from
 * the store. */
static void *listen_main(void *arg)
{
	pwb_server *s = arg;
	while (!atomic_load(&s->draining)) {
		pwb_store_change ch;
		bool got = false;
		pwb_diag d;
		pwb_diag_init(&d);
		pwb_status st =
		    pwb_store_listener_wait(s->listener, 250, &ch, &got, &d);
		if (st) {
			atomic_fetch_add(&s->metrics.store_errors, 1);
			struct timespec ts = {0, 250 * 1000 * 1000};
			nanosleep(&ts, NULL);
		} else if (got && ch.kind == PWB_CHANGE_POLICY &&
			   atomic_load(&s->own_notices) > 0) {
			atomic_fetch_sub(&s->own_notices, 1); /* our own */
		} else if (got && (ch.kind == PWB_CHANGE_POLICY ||
				   ch.kind == PWB_CHANGE_RESYNC)) {
			/* A resync: a reload's notice may have been lost. */
			if (ch.kind == PWB_CHANGE_RESYNC)
				atomic_store(&s->own_notices, 0);
			pwb_diag_clear(&d);
			reload(s, false, NULL, &d);
		}
		pwb_diag_release(&d);
	}
	return NULL;
}

/* ---- requests ---- */

static void req_release(srv_req *r)
{
	if (!r || atomic_fetch_sub(&r->refs, 1) != 1)
		return;
	pthread_mutex_destroy(&r->mu);
	free(r->arg);
	free(r->auth);
	free(r->q_since);
	free(r->q_until);
	free(r->q_format);
	free(r->resp);
	pwb__buf_release(&r->body);
	pwb__buf_release(&r->out);
	if (r->have_key)
		pwb_store_key_release(&r->key);
	pwb__srv_gen_release(r->gen);
	free(r);
}

/* Matches "{id}" against one segment; *arg gets it. */
static bool route_match(const char *pattern, const char *path, char **arg)
{
	*arg = NULL;
	const char *p = pattern, *u = path;
	while (*p) {
		if (!strncmp(p, "{id}", 4)) {
			size_t n = strcspn(u, "/");
			if (!n) {
				free(*arg);
				*arg = NULL;
				return false;
			}
			free(*arg);
			*arg = pwb__strndup(u, n);
			p += 4;
			u += n;
			continue;
		}
		if (*p != *u) {
			free(*arg);
			*arg = NULL;
			return false;
		}
		p++;
		u++;
	}
	if (*u) {
		free(*arg);
		*arg = NULL;
		return false;
	}
	return true;
}

static void set_answer(srv_req *r, unsigned status, char *body,
		       const char *ctype)
{
	free(r->resp);
	r->resp = body;
	r->resp_len = body ? strlen(body) : 0;
	r->status = status;
	r->ctype = ctype;
}

void pwb__srv_json(srv_req *r, unsigned status, json_t *body)
{
	char *s = body ? json_dumps(body, JSON_COMPACT) : NULL;
	json_decref(body);
	pwb__srv_json_text(r, status, s);
}

void pwb__srv_json_text(srv_req *r, unsigned status, char *s)
{
	if (!s) {
		set_answer(r, 500,
			   pwb__strdup("{\"error\":{\"type\":\"server_error\","
				       "\"message\":\"out of memory\","
				       "\"code\":\"internal_error\"}}"),
			   "application/json");
		return;
	}
	set_answer(r, status, s, "application/json");
}

void pwb__srv_text(srv_req *r, unsigned status, char *text, const char *ctype)
{
	if (!text)
		pwb__srv_json_text(r, status, NULL);
	else
		set_answer(r, status, text, ctype);
}

static void error_v(srv_req *r, unsigned status, const char *type,
		    const char *code, const char *param, const char *fmt,
		    va_list ap)
{
	char msg[2048];
	vsnprintf(msg, sizeof(msg), fmt, ap);
	/* A message cut inside a character stays valid UTF-8. */
	pwb__buf fixed;
	pwb__buf_init(&fixed, 0);
	pwb__utf8_fix(&fixed, msg, strlen(msg), false);
	r->err_code = code;
	pwb__srv_json(r, status,
		      json_pack("{s:{s:s, s:s, s:s, s:s?}}", "error", "type",
				type, "message", fixed.s ? fixed.s : "", "code",
				code, "param", param));
	pwb__buf_release(&fixed);
}

void pwb__srv_error(srv_req *r, unsigned status, const char *type,
		    const char *code, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	error_v(r, status, type, code, NULL, fmt, ap);
	va_end(ap);
}

void pwb__srv_error_at(srv_req *r, unsigned status, const char *type,
		       const char *code, const char *param, const char *fmt,
		       ...)
{
	va_list ap;
	va_start(ap, fmt);
	error_v(r, status, type, code, param, fmt, ap);
	va_end(ap);
}

void pwb__srv_fail(srv_req *r, pwb_status st, const pwb_diag *d,
		   const char *what)
{
	char msg[1536];
	if (d && d->n)
		snprintf(msg, sizeof(msg), "%s", d->entries[0].message);
	else
		snprintf(msg, sizeof(msg), "%s: %s", what ? what : "request",
			 pwb_status_str(st));
	switch (st) {
	case PWB_EINVAL:
	case PWB_EPARSE:
		pwb__srv_error(r, 400, "invalid_request_error",
			       "invalid_request", "%s", msg);
		break;
	case PWB_ENOTFOUND:
		pwb__srv_error(r, 404, "not_found_error", "not_found", "%s",
			       msg);
		break;
	case PWB_EBOUNDS:
		pwb__srv_error(r, 422, "invalid_request_error",
			       "outside_bounds", "%s", msg);
		break;
	case PWB_ETOOLARGE:
		pwb__srv_error(r, 413, "invalid_request_error", "too_large",
			       "%s", msg);
		break;
	case PWB_EPOLICY:
		pwb__srv_error(r, 422, "invalid_request_error",
			       "invalid_policy", "%s", msg);
		break;
	case PWB_EIO:
		if (what && !strcmp(what, "store"))
			pwb__srv_error(r, 503, "server_error",
				       "store_unavailable", "%s", msg);
		else
			pwb__srv_error(r, 502, "upstream_error", "engine_error",
				       "%s", msg);
		break;
	default:
		pwb__srv_error(r, 503, "server_error", "unavailable", "%s",
			       msg);
		break;
	}
}

json_t *pwb__srv_body_json(srv_req *r)
{
	if (!r->body.len) {
		pwb__srv_error(r, 400, "invalid_request_error", "invalid_json",
			       "the request needs a JSON body");
		return NULL;
	}
	json_error_t je;
	json_t *j =
	    json_loadb(r->body.s, r->body.len, JSON_REJECT_DUPLICATES, &je);
	if (!j) {
		pwb__srv_error(r, 400, "invalid_request_error", "invalid_json",
			       "the body is not valid JSON: %s (line %d, "
			       "column %d)",
			       je.text, je.line, je.column);
		return NULL;
	}
	if (!json_is_object(j)) {
		json_decref(j);
		pwb__srv_error(r, 400, "invalid_request_error", "invalid_json",
			       "the body must be a JSON object");
		return NULL;
	}
	return j;
}

/* An id from a path or a body: 1 to 256 bytes, printable, valid UTF-8. */
bool pwb__srv_id_ok(const char *id)
{
	size_t n = id ? strlen(id) : 0;
	int line, col;
	bool nul;
	if (!n || n > 256 || !pwb__utf8_valid(id, n, &line, &col, &nul))
		return false;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)id[i] < 0x20 || id[i] == 0x7f)
			return false;
	return true;
}

const char *pwb__srv_body_user(srv_req *r, json_t *body)
{
	json_t *ju = json_object_get(body, "user");
	if (ju && !json_is_string(ju)) {
		pwb__srv_error_at(r, 400, "invalid_request_error",
				  "invalid_user", "user",
				  "\"user\" must be a string");
		return NULL;
	}
	const char *u = json_string_value(ju);
	if (r->key.role == PWB_KEY_USER) {
		if (u && strcmp(u, r->key.user)) {
			pwb__srv_error(r, 403, "permission_error",
				       "permission_denied",
				       "a user key acts only for its own "
				       "user");
			return NULL;
		}
		return r->key.user;
	}
	if (!u) {
		pwb__srv_error_at(r, 400, "invalid_request_error",
				  "missing_user", "user",
				  "a service key must name the end user in "
				  "\"user\"");
		return NULL;
	}
	if (!pwb__srv_id_ok(u)) {
		pwb__srv_error_at(
		    r, 400, "invalid_request_error", "invalid_user", "user",
		    "\"user\" must be 1 to 256 bytes of printable "
		    "UTF-8");
		return NULL;
	}
	return u;
}

/* ---- keys: who calls, and may they ---- */

static bool key_slot_take(pwb_server *s, srv_req *r)
{
	bool ok = true;
	pthread_mutex_lock(&s->lock);
	srv_keyuse *k = NULL;
	for (size_t i = 0; i < s->n_keyuse && !k; i++)
		if (!strcmp(s->keyuse[i].id, r->key.id))
			k = &s->keyuse[i];
	if (!k) {
		if (pwb__grow((void **)&s->keyuse, &s->cap_keyuse,
			      s->n_keyuse + 1, sizeof(*s->keyuse))) {
			pthread_mutex_unlock(&s->lock);
			return true; /* no table: no limit, not no service */
		}
		k = &s->keyuse[s->n_keyuse++];
		snprintf(k->id, sizeof(k->id), "%s", r->key.id);
		k->n = 0;
	}
	if (k->n >= s->p.key_concurrency)
		ok = false;
	else
		k->n++;
	pthread_mutex_unlock(&s->lock);
	r->counted = ok;
	return ok;
}

static void key_slot_give(pwb_server *s, srv_req *r)
{
	if (!r->counted)
		return;
	pthread_mutex_lock(&s->lock);
	for (size_t i = 0; i < s->n_keyuse; i++)
		if (!strcmp(s->keyuse[i].id, r->key.id)) {
			if (!--s->keyuse[i].n)
				s->keyuse[i] = s->keyuse[--s->n_keyuse];
			break;
		}
	pthread_mutex_unlock(&s->lock);
	r->counted = false;
}

static const char *role_names(unsigned roles, char *buf, size_t n)
{
	buf[0] = 0;
	size_t len = 0;
	for (int k = PWB_KEY_SERVICE; k <= PWB_KEY_ADMIN; k++)
		if (roles & (1u << k))
			len += (size_t)snprintf(
			    buf + len, len < n ? n - len : 0, "%s%s",
			    len ? ", " : "", pwb_key_role_str(k));
	return buf;
}

/* The one place where keys and roles are checked: the key exists and is
 * not revoked, its role may use the route, a user key touches only its
 * own user, and the key has a free slot. */
static bool authorise(srv_req *r)
{
	pwb_server *s = r->srv;
	const srv_route *rt = r->route;
	if (!rt->roles)
		return true;
	if (!r->auth) {
		pwb__srv_error(r, 401, "authentication_error",
			       "missing_api_key",
			       "give an API key: Authorization: Bearer KEY");
		return false;
	}
	pwb_diag d;
	pwb_diag_init(&d);
	pwb_status st =
	    pwb_store_key_lookup(s->p.pipeline.store, r->auth, &r->key, &d);
	pwb_diag_release(&d);
	if (st == PWB_ENOTFOUND || st == PWB_EINVAL) {
		/* pwb_<16 hex id>_<64 hex>: the id is no secret, and names
		 * the key in the log and the answer. */
		const char *k = r->auth;
		if (strlen(k) == 85 && !strncmp(k, "pwb_", 4) && k[20] == '_')
			snprintf(r->key_hint, sizeof(r->key_hint), "%.16s",
				 k + 4);
		for (char *p = r->key_hint; *p; p++)
			if (!isxdigit((unsigned char)*p))
				r->key_hint[0] = '\0';
		if (r->key_hint[0])
			pwb__srv_error(r, 401, "authentication_error",
				       "invalid_api_key",
				       "the API key %s is unknown or revoked "
				       "(a key made for another database, or "
				       "with another PWB_KEY_SECRET, is "
				       "unknown here)",
				       r->key_hint);
		else
			pwb__srv_error(r, 401, "authentication_error",
				       "invalid_api_key",
				       "the API key is unknown or revoked");
		return false;
	}
	if (st) {
		atomic_fetch_add(&s->metrics.store_errors, 1);
		pwb__srv_error(r, 503, "server_error", "store_unavailable",
			       "the store cannot check the key now; try "
			       "again");
		return false;
	}
	r->have_key = true;
	snprintf(r->org, sizeof(r->org), "%s", r->key.org);
	if (!(rt->roles & (1u << r->key.role))) {
		char names[64];
		pwb__srv_error(r, 403, "permission_error", "permission_denied",
			       "%s %s needs a key of role %s; this one is %s",
			       rt->method, rt->pattern,
			       role_names(rt->roles, names, sizeof(names)),
			       pwb_key_role_str(r->key.role));
		return false;
	}
	if (rt->scope == SRV_SCOPE_PATH_USER) {
		if (!pwb__srv_id_ok(r->arg)) {
			pwb__srv_error_at(r, 400, "invalid_request_error",
					  "invalid_user", "user",
					  "a user id is 1 to 256 bytes of "
					  "printable UTF-8");
			return false;
		}
		if (r->key.role == PWB_KEY_USER &&
		    strcmp(r->arg, r->key.user)) {
			pwb__srv_error(r, 403, "permission_error",
				       "permission_denied",
				       "a user key reaches only its own "
				       "user's data");
			return false;
		}
		r->user = r->arg;
	}
	if (!key_slot_take(s, r)) {
		r->retry_after = 1;
		pwb__srv_error(r, 429, "rate_limit_error", "too_many_requests",
			       "this key has %zu requests in flight, the "
			       "most it may; retry after 1 s",
			       s->p.key_concurrency);
		return false;
	}
	return true;
}

/* ---- answers and streams ---- */

/* The worker is done: the answer is complete, or the stream ends. */
static void req_finish(srv_req *r)
{
	pthread_mutex_lock(&r->mu);
	bool resume = false;
	if (r->phase == SRV_STREAM) {
		r->out_done = true;
		resume = r->reader_waiting;
		r->reader_waiting = false;
	} else {
		if (!r->resp)
			pwb__srv_error(r, 500, "server_error", "internal_error",
				       "no answer was made");
		r->phase = SRV_READY;
		resume = true;
	}
	if (resume)
		MHD_resume_connection(r->conn);
	pthread_mutex_unlock(&r->mu);
}

bool pwb__srv_stream_write(srv_req *r, const char *data, size_t len)
{
	pthread_mutex_lock(&r->mu);
	if (r->gone) {
		pthread_mutex_unlock(&r->mu);
		return false;
	}
	bool resume = false;
	if (r->phase != SRV_STREAM) {
		r->phase = SRV_STREAM;
		r->status = 200;
		resume = true; /* suspended since it was queued */
	}
	pwb__buf_add(&r->out, data, len);
	bool ok = !r->out.err;
	if (r->reader_waiting) {
		r->reader_waiting = false;
		resume = true;
	}
	if (resume)
		MHD_resume_connection(r->conn);
	pthread_mutex_unlock(&r->mu);
	return ok;
}

bool pwb__srv_stream_started(srv_req *r)
{
	pthread_mutex_lock(&r->mu);
	bool started = r->phase == SRV_STREAM;
	pthread_mutex_unlock(&r->mu);
	return started;
}

bool pwb__srv_gone(srv_req *r)
{
	pthread_mutex_lock(&r->mu);
	bool gone = r->gone;
	pthread_mutex_unlock(&r->mu);
	return gone;
}

static ssize_t stream_read(void *cls, uint64_t pos, char *buf, size_t max)
{
	srv_req *r = cls;
	pthread_mutex_lock(&r->mu);
	size_t have = r->out.len - r->out_off;
	if (have) {
		size_t n = have < max ? have : max;
		memcpy(buf, r->out.s + r->out_off, n);
		r->out_off += n;
		if (r->out_off == r->out.len)
			r->out.len = r->out_off = 0;
		pthread_mutex_unlock(&r->mu);
		return (ssize_t)n;
	}
	if (r->out_done) {
		pthread_mutex_unlock(&r->mu);
		return MHD_CONTENT_READER_END_OF_STREAM;
	}
	/* Caught up with the worker: wait, suspended, for its next write. */
	r->reader_waiting = true;
	MHD_suspend_connection(r->conn);
	pthread_mutex_unlock(&r->mu);
	return 0;
}

static void stream_free(void *cls)
{
	srv_req *r = cls;
	pthread_mutex_lock(&r->mu);
	r->gone = true;
	pthread_mutex_unlock(&r->mu);
	req_release(r);
}

static enum MHD_Result queue_answer(srv_req *r)
{
	struct MHD_Response *resp;
	if (r->phase == SRV_STREAM) {
		atomic_fetch_add(&r->refs, 1); /* the reader's */
		resp = MHD_create_response_from_callback(
		    MHD_SIZE_UNKNOWN, 16 * 1024, stream_read, r, stream_free);
		if (!resp) {
			req_release(r);
			return MHD_NO;
		}
		MHD_add_response_header(resp, "Content-Type",
					"text/event-stream");
		MHD_add_response_header(resp, "Cache-Control", "no-cache");
		MHD_add_response_header(resp, "X-Accel-Buffering", "no");
	} else {
		resp = MHD_create_response_from_buffer(
		    r->resp_len, r->resp ? r->resp : (char *)"",
		    MHD_RESPMEM_MUST_COPY);
		if (!resp)
			return MHD_NO;
		MHD_add_response_header(resp, "Content-Type",
					r->ctype ? r->ctype
						 : "application/json");
		if (r->retry_after) {
			char v[16];
			snprintf(v, sizeof(v), "%d", r->retry_after);
			MHD_add_response_header(resp, "Retry-After", v);
		}
		if (r->status == 405 && r->route)
			MHD_add_response_header(resp, "Allow",
						r->route->method);
	}
	r->phase = SRV_QUEUED_RESPONSE;
	enum MHD_Result ret = MHD_queue_response(r->conn, r->status, resp);
	MHD_destroy_response(resp);
	return ret;
}

/* ---- workers ---- */

static void run(srv_req *r)
{
	atomic_fetch_add(&r->srv->metrics.running, 1);
	if (authorise(r))
		r->route->handler(r);
	key_slot_give(r->srv, r);
	atomic_fetch_sub(&r->srv->metrics.running, 1);
	req_finish(r);
}

static void *worker_main(void *arg)
{
	pwb_server *s = arg;
	pthread_mutex_lock(&s->qlock);
	for (;;) {
		while (!s->qlen && !s->stopping)
			pthread_cond_wait(&s->qcond, &s->qlock);
		if (!s->qlen)
			break;
		srv_req *r = s->queue[s->qhead];
		s->qhead = (s->qhead + 1) % s->qcap;
		s->qlen--;
		atomic_fetch_sub(&s->metrics.queued, 1);
		pthread_mutex_unlock(&s->qlock);
		run(r);
		req_release(r);
		pthread_mutex_lock(&s->qlock);
	}
	pthread_mutex_unlock(&s->qlock);
	return NULL;
}

static bool enqueue(pwb_server *s, srv_req *r)
{
	pthread_mutex_lock(&s->qlock);
	if (s->qlen == s->qcap) {
		size_t cap = s->qcap ? 2 * s->qcap : 64;
		srv_req **q = pwb__malloc(cap * sizeof(*q));
		if (!q) {
			pthread_mutex_unlock(&s->qlock);
			return false;
		}
		for (size_t i = 0; i < s->qlen; i++)
			q[i] = s->queue[(s->qhead + i) % s->qcap];
		free(s->queue);
		s->queue = q;
		s->qcap = cap;
		s->qhead = 0;
	}
	s->queue[(s->qhead + s->qlen) % s->qcap] = r;
	s->qlen++;
	atomic_fetch_add(&s->metrics.queued, 1);
	pthread_cond_signal(&s->qcond);
	pthread_mutex_unlock(&s->qlock);
	return true;
}

/* ---- libmicrohttpd's callbacks ---- */

/* Counts the Content-Length headers into *cls. */
static enum MHD_Result count_cl(void *cls, enum MHD_ValueKind kind,
				const char *key, const char *value)
{
	(void)kind;
	(void)value;
	if (!strcasecmp(key, "Content-Length"))
		(*(size_t *)cls)++;
	return MHD_YES;
}

/* Adds a header's bytes, as sent ("Key: value\r\n"), to *cls. */
static enum MHD_Result header_bytes(void *cls, enum MHD_ValueKind kind,
				    const char *key, const char *value)
{
	(void)kind;
	*(size_t *)cls += strlen(key) + (value ? strlen(value) : 0) + 4;
	return MHD_YES;
}

static srv_req *req_new(pwb_server *s, struct MHD_Connection *c,
			const char *url, const char *method)
{
	srv_req *r = pwb__calloc(1, sizeof(*r));
	if (!r)
		return NULL;
	atomic_init(&r->refs, 1);
	pthread_mutex_init(&r->mu, NULL);
	r->srv = s;
	r->conn = c;
	r->t0 = pwb__now();
	struct timespec now;
	clock_gettime(CLOCK_REALTIME, &now);
	r->wall0 = (double)now.tv_sec + now.tv_nsec / 1e9;
	r->deadline = r->t0 + s->p.deadline_ms / 1000.0;
	r->route_index = -1;
	pwb__buf_init(&r->body, 0);
	pwb__buf_init(&r->out, 0);
	atomic_fetch_add(&s->open_requests, 1);
	/* The route: by path first, then method (405 names the one). */
	const srv_route *by_path = NULL;
	for (size_t i = 0; i < pwb__srv_n_routes; i++) {
		char *arg = NULL;
		if (!route_match(pwb__srv_routes[i].pattern, url, &arg))
			continue;
		if (!strcmp(pwb__srv_routes[i].method, method)) {
			r->route = &pwb__srv_routes[i];
			r->route_index = (int)i;
			r->arg = arg;
			break;
		}
		free(arg);
		if (!by_path)
			by_path = &pwb__srv_routes[i];
	}
	if (!r->route) {
		r->route = by_path;
		r->early_status = by_path ? 405 : 404;
	}
	const char *auth =
	    MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization");
	if (auth && !strncasecmp(auth, "Bearer ", 7)) {
		auth += 7;
		while (*auth == ' ' || *auth == '\t')
			auth++;
		/* Trailing white space is not part of a header's value
		 * (RFC 9110 §5.5). */
		size_t n = strlen(auth);
		while (n && (auth[n - 1] == ' ' || auth[n - 1] == '\t'))
			n--;
		r->auth = n ? pwb__strndup(auth, n) : NULL;
	}
	/* The query arguments the reports take (read here, on the
	 * connection's own thread). */
	const char *q[3] = {"since", "until", "format"};
	char **to[3] = {&r->q_since, &r->q_until, &r->q_format};
	for (size_t i = 0; i < 3; i++) {
		const char *v =
		    MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, q[i]);
		if (v)
			*to[i] = pwb__strndup(v, strnlen(v, 64));
	}
	/* The request line and headers past --max-header: 431, answered
	 * here as JSON (libmicrohttpd answers on its own, without JSON,
	 * only past twice the cap, its memory limit). */
	size_t head = strlen(method) + strlen(url) + 16;
	MHD_get_connection_values(c, MHD_HEADER_KIND | MHD_GET_ARGUMENT_KIND,
				  header_bytes, &head);
	if (head > s->p.max_header)
		r->early_status = 431;
	/* Two Content-Length headers: refused (a proxy in front that reads
	 * the other one would see another request). */
	size_t n_cl = 0;
	MHD_get_connection_values(c, MHD_HEADER_KIND, count_cl, &n_cl);
	if (n_cl > 1 && !r->early_status)
		r->early_status = 400;
	const char *cl =
	    MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Length");
	if (cl && strtoull(cl, NULL, 10) > s->p.max_body)
		r->too_large = true;
	return r;
}

static void early_answer(srv_req *r)
{
	pwb_server *s = r->srv;
	if (r->early_status == 400)
		pwb__srv_error(r, 400, "invalid_request_error",
			       "invalid_request",
			       "more than one Content-Length header");
	else if (r->early_status == 431)
		pwb__srv_error(r, 431, "invalid_request_error",
			       "headers_too_large",
			       "the request line and headers are larger than "
			       "%zu bytes",
			       s->p.max_header);
	else if (r->early_status == 404)
		pwb__srv_error(r, 404, "invalid_request_error", "unknown_url",
			       "no such endpoint; docs/server.md lists them");
	else if (r->early_status == 405)
		pwb__srv_error(r, 405, "invalid_request_error",
			       "method_not_allowed",
			       "this endpoint takes %s only", r->route->method);
	else if (atomic_load(&s->draining)) {
		r->retry_after = 1;
		pwb__srv_error(r, 503, "server_error", "shutting_down",
			       "the server is shutting down; retry on "
			       "another replica");
	} else
		pwb__srv_error(
		    r, 413, "invalid_request_error", "body_too_large",
		    "the request body is larger than %zu bytes", s->p.max_body);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c,
				  const char *url, const char *method,
				  const char *version, const char *upload,
				  size_t *upload_size, void **con_cls)
{
	pwb_server *s = cls;
	srv_req *r = *con_cls;
	if (!r) {
		if (!(r = req_new(s, c, url, method)))
			return MHD_NO;
		*con_cls = r;
		/* An unknown URL or method, a body or headers too large:
		 * answered before any body is read. */
		if (!r->too_large && !r->early_status)
			return MHD_YES;
		/* A Content-Length past the cap, or headers past theirs, are
		 * answered before the body is sent: libmicrohttpd drops the
		 * rest and closes. */
		pthread_mutex_lock(&r->mu);
		early_answer(r);
		enum MHD_Result ret = queue_answer(r);
		pthread_mutex_unlock(&r->mu);
		return ret;
	}
	if (*upload_size) {
		if (!r->too_large && !r->early_status) {
			if (r->body.len + *upload_size > s->p.max_body) {
				r->too_large = true;
				pwb__buf_release(&r->body);
				pwb__buf_init(&r->body, 0);
			} else {
				pwb__buf_add(&r->body, upload, *upload_size);
			}
		}
		/* A chunked body past the cap is read and dropped so that its
		 * 413 can be sent after it, but not without end: past twice
		 * the cap the connection is closed. */
		if (r->too_large &&
		    (r->dropped += *upload_size) > s->p.max_body)
			return MHD_NO;
		*upload_size = 0;
		return MHD_YES;
	}
	pthread_mutex_lock(&r->mu);
	enum MHD_Result ret = MHD_YES;
	if (r->phase == SRV_NEW) {
		if (r->early_status || r->too_large || r->body.err ||
		    atomic_load(&s->draining)) {
			early_answer(r);
			ret = queue_answer(r);
		} else {
			r->phase = SRV_QUEUED;
			MHD_suspend_connection(c);
			atomic_fetch_add(&r->refs, 1); /* the worker's */
			if (!enqueue(s, r)) {
				atomic_fetch_sub(&r->refs, 1);
				MHD_resume_connection(c);
				pwb__srv_error(r, 503, "server_error",
					       "unavailable", "out of memory");
				r->phase = SRV_READY;
			}
		}
	} else if (r->phase == SRV_READY || r->phase == SRV_STREAM) {
		ret = queue_answer(r);
	}
	pthread_mutex_unlock(&r->mu);
	return ret;
}

/* One log line per request, without user content. */
static void log_request(pwb_server *s, srv_req *r, double secs)
{
	if (!s->p.log)
		return;
	json_t *j = json_pack(
	    "{s:f, s:s, s:s, s:i, s:f, s:s?, s:s?, s:s?, s:s?, s:s?}", "ts",
	    r->wall0, "route", r->route ? r->route->pattern : "-", "method",
	    r->route ? r->route->method : "-", "status", (int)r->status, "ms",
	    secs * 1000.0, "org", r->org[0] ? r->org : NULL, "key",
	    r->have_key	     ? r->key.id
	    : r->key_hint[0] ? r->key_hint
			     : NULL,
	    "role", r->have_key ? pwb_key_role_str(r->key.role) : NULL,
	    "decision", r->decision[0] ? r->decision : NULL, "error",
	    r->err_code);
	char *line = j ? json_dumps(j, JSON_COMPACT) : NULL;
	json_decref(j);
	if (line)
		s->p.log(s->p.log_user, PWB_LOG_INFO, line);
	free(line);
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
			 enum MHD_RequestTerminationCode toe)
{
	pwb_server *s = cls;
	srv_req *r = *con_cls;
	if (!r)
		return;
	*con_cls = NULL;
	pthread_mutex_lock(&r->mu);
	r->gone = true;
	if (!r->status)
		r->status = 499; /* the client left before an answer */
	pthread_mutex_unlock(&r->mu);
	double secs = pwb__now() - r->t0;
	pwb__srv_metrics_request(&s->metrics, r->route_index, r->status, secs);
	log_request(s, r, secs);
	atomic_fetch_sub(&s->open_requests, 1);
	req_release(r);
}

static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
	pwb_server *s = cls;
	if (!s->p.log)
		return;
	char msg[512];
	vsnprintf(msg, sizeof(msg), fmt, ap);
	size_t n = strlen(msg);
	while (n && (msg[n - 1] == '\n' || msg[n - 1] == '\r'))
		msg[--n] = 0;
	s->p.log(s->p.log_user, PWB_LOG_WARN, msg);
}

/* ---- start and stop ---- */

/* "HOST:PORT", "[V6]:PORT" or ":PORT" into a socket address. */
static bool parse_listen(const char *spec, struct sockaddr_storage *ss,
			 socklen_t *len, bool *v6)
{
	char host[128];
	const char *colon;
	*v6 = false;
	if (spec[0] == '[') {
		const char *end = strchr(spec, ']');
		if (!end || end[1] != ':' ||
		    (size_t)(end - spec - 1) >= sizeof(host))
			return false;
		memcpy(host, spec + 1, (size_t)(end - spec - 1));
		host[end - spec - 1] = 0;
		colon = end + 1;
		*v6 = true;
	} else {
		colon = strrchr(spec, ':');
		if (!colon || (size_t)(colon - spec) >= sizeof(host))
			return false;
		memcpy(host, spec, (size_t)(colon - spec));
		host[colon - spec] = 0;
	}
	char *end;
	errno = 0;
	unsigned long port = strtoul(colon + 1, &end, 10);
	if (errno || *end || end == colon + 1 || port > 65535)
		return false;
	memset(ss, 0, sizeof(*ss));
	if (*v6) {
		struct sockaddr_in6 *a = (struct sockaddr_in6 *)ss;
		a->sin6_family = AF_INET6;
		a->sin6_port = htons((uint16_t)port);
		if (inet_pton(AF_INET6, host, &a->sin6_addr) != 1)
			return false;
		*len = sizeof(*a);
	} else {
		struct sockaddr_in *a = (struct sockaddr_in *)ss;
		a->sin_family = AF_INET;
		a->sin_port = htons((uint16_t)port);
		if (!host[0])
			a->sin_addr.s_addr = htonl(INADDR_ANY);
		else if (inet_pton(AF_INET, host, &a->sin_addr) != 1)
			return false;
		*len = sizeof(*a);
	}
	return true;
}

static void server_free(pwb_server *s)
{
	if (s->listening) {
		atomic_store(&s->draining, true);
		pthread_join(s->listen_thread, NULL);
	}
	pwb_store_listener_free(s->listener);
	pthread_mutex_lock(&s->qlock);
	s->stopping = true;
	pthread_cond_broadcast(&s->qcond);
	pthread_mutex_unlock(&s->qlock);
	for (size_t i = 0; i < s->n_workers; i++)
		pthread_join(s->workers[i], NULL);
	if (s->mhd)
		MHD_stop_daemon(s->mhd);
	pwb__srv_gen_release(s->gen);
	pwb__srv_metrics_release(&s->metrics);
	pthread_mutex_destroy(&s->lock);
	pthread_mutex_destroy(&s->reload_lock);
	pthread_mutex_destroy(&s->qlock);
	pthread_cond_destroy(&s->qcond);
	free(s->workers);
	free(s->queue);
	free(s->keyuse);
	free(s->listen);
	free(s->policies);
	free(s->lexicon_dir);
	free(s->prefs_path);
	free(s->model_name);
	free(s);
}

static pwb_status check_params(const pwb_server_params *p, pwb_diag *diag)
{
	if (!p->policies || !p->pipeline.engine || !p->pipeline.store) {
		pwb_diag_add(diag, NULL, 0, 0,
			     "the server needs a policy folder, an engine and "
			     "a store");
		return PWB_EINVAL;
	}
	if (!p->threads || p->threads > 256 || !p->workers ||
	    p->workers > 4096 || !p->key_concurrency || !p->max_body ||
	    !p->max_n || p->max_n > PWB_ENGINE_MAX_N || p->max_header < 1024 ||
	    !p->max_connections || p->deadline_ms <= 0 ||
	    p->idle_timeout_s <= 0) {
		pwb_diag_add(diag, NULL, 0, 0,
			     "server limits must be positive (threads 1-256, "
			     "workers 1-4096, headers at least 1 KiB)");
		return PWB_EINVAL;
	}
	if (!pwb__srv_id_ok(p->model_name)) {
		pwb_diag_add(diag, NULL, 0, 0,
			     "the model name must be 1 to 256 bytes of "
			     "printable UTF-8");
		return PWB_EINVAL;
	}
	return PWB_OK;
}

bool pwb_server_listen_ok(const char *spec)
{
	struct sockaddr_storage ss;
	socklen_t len;
	bool v6;
	return spec && parse_listen(spec, &ss, &len, &v6);
}

static pwb_status start_daemon(pwb_server *s, pwb_diag *diag)
{
	struct sockaddr_storage ss;
	socklen_t slen;
	bool v6;
	if (!parse_listen(s->listen, &ss, &slen, &v6)) {
		pwb_diag_add(diag, NULL, 0, 0,
			     "--listen '%s' is not HOST:PORT (e.g. "
			     "127.0.0.1:8080, [::1]:8080, :8080)",
			     s->listen);
		return PWB_EINVAL;
	}
	/* The socket is bound here, so that a port in use is one clear
	 * error of ours (libmicrohttpd's own names the wrong port). */
	int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	int one = 1;
	if (fd < 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) ||
	    bind(fd, (struct sockaddr *)&ss, slen) || listen(fd, 1024)) {
		int e = errno;
		if (fd >= 0)
			close(fd);
		pwb_diag_add(diag, NULL, 0, 0, "cannot listen on %s: %s%s",
			     s->listen, strerror(e),
			     e == EADDRINUSE
				 ? " (another process listens there: stop it, "
				   "or give another --listen)"
				 : "");
		return PWB_EIO;
	}
	unsigned flags = MHD_USE_EPOLL_INTERNAL_THREAD |
			 MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG;
	if (v6)
		flags |= MHD_USE_IPv6;
	s->mhd = MHD_start_daemon(
	    flags, 0, NULL, NULL, on_request, s, MHD_OPTION_EXTERNAL_LOGGER,
	    on_mhd_log, s, MHD_OPTION_LISTEN_SOCKET, fd,
	    MHD_OPTION_THREAD_POOL_SIZE, (unsigned)s->p.threads,
	    MHD_OPTION_CONNECTION_LIMIT, (unsigned)s->p.max_connections,
	    MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)s->p.idle_timeout_s,
	    MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)s->p.max_header * 2,
	    MHD_OPTION_NOTIFY_COMPLETED, on_completed, s, MHD_OPTION_END);
	if (!s->mhd) {
		close(fd);
		pwb_diag_add(diag, NULL, 0, 0, "cannot serve on %s: %s",
			     s->listen, strerror(errno ? errno : EINVAL));
		return PWB_EIO;
	}
	const union MHD_DaemonInfo *info =
	    MHD_get_daemon_info(s->mhd, MHD_DAEMON_INFO_BIND_PORT);
	s->port = info ? info->port : 0;
	return PWB_OK;
}

pwb_status pwb_server_start(pwb_server **out, const pwb_server_params *p,
			    pwb_diag *diag)
{
	*out = NULL;
	pwb_status st = check_params(p, diag);
	if (st)
		return st;
	pwb_server *s = pwb__calloc(1, sizeof(*s));
	if (!s)
		return PWB_ENOMEM;
	s->p = *p;
	pthread_mutex_init(&s->lock, NULL);
	pthread_mutex_init(&s->reload_lock, NULL);
	pthread_mutex_init(&s->qlock, NULL);
	pthread_cond_init(&s->qcond, NULL);
	pwb__srv_metrics_init(&s->metrics);
	s->started = pwb__now();
	s->started_unix = pwb__srv_now();
	s->listen = pwb__strdup(p->listen ? p->listen : "127.0.0.1:8080");
	s->policies = pwb__strdup(p->policies);
	s->model_name = pwb__strdup(p->model_name);
	s->prefs_path = p->prefs_path ? pwb__strdup(p->prefs_path) : NULL;
	pwb__buf lex;
	pwb__buf_init(&lex, 0);
	if (p->bounds.lexicon_dir)
		pwb__buf_adds(&lex, p->bounds.lexicon_dir);
	else
		pwb__buf_addf(&lex, "%s/lexicons", p->policies);
	s->lexicon_dir = lex.err ? NULL : pwb__buf_detach(&lex);
	pwb__buf_release(&lex);
	s->p.listen = s->p.policies = s->p.model_name = s->p.prefs_path = NULL;
	if (!s->listen || !s->policies || !s->model_name || !s->lexicon_dir ||
	    (p->prefs_path && !s->prefs_path)) {
		server_free(s);
		return PWB_ENOMEM;
	}
	st = reload(s, false, NULL, diag);
	if (!st && !(s->workers = pwb__calloc(p->workers, sizeof(pthread_t))))
		st = PWB_ENOMEM;
	for (size_t i = 0; !st && i < p->workers; i++) {
		if (pthread_create(&s->workers[i], NULL, worker_main, s)) {
			pwb_diag_add(diag, NULL, 0, 0,
				     "cannot start worker %zu of %zu", i + 1,
				     p->workers);
			st = PWB_ENOMEM;
			break;
		}
		s->n_workers++;
	}
	if (!st && !strcmp(pwb_store_backend(p->pipeline.store), "postgres")) {
		st = pwb_store_listen(&s->listener, p->pipeline.store, diag);
		if (!st) {
			if (pthread_create(&s->listen_thread, NULL, listen_main,
					   s))
				st = PWB_ENOMEM;
			else
				s->listening = true;
		}
	}
	if (!st)
		st = start_daemon(s, diag);
	if (st) {
		server_free(s);
		return st;
	}
	srv_log(s, PWB_LOG_INFO, "listening on %s (port %u)", s->listen,
		(unsigned)s->port);
	*out = s;
	return PWB_OK;
}

uint16_t pwb_server_port(const pwb_server *s)
{
	return s->port;
}

void pwb_server_stop(pwb_server *s)
{
	if (!s)
		return;
	atomic_store(&s->draining, true);
	/* No new connections; those open finish what they asked. */
	if (s->mhd) {
		MHD_socket fd = MHD_quiesce_daemon(s->mhd);
		if (fd != MHD_INVALID_SOCKET)
			close(fd);
	}
	/* Every request started finishes within its deadline; wait that
	 * long and a little more for the last bytes to leave. */
	double until = pwb__now() + s->p.deadline_ms / 1000.0 + 5.0;
	while (atomic_load(&s->open_requests) > 0 && pwb__now() < until) {
		struct timespec ts = {0, 10 * 1000 * 1000};
		nanosleep(&ts, NULL);
	}
	srv_log(s, PWB_LOG_INFO, "stopped (%d requests unfinished)",
		atomic_load(&s->open_requests));
	server_free(s);
}
