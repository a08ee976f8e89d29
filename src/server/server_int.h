/*
 * server_int.h - what the server's files share: one request's state, the
 * route table's types, the policy sets, the metrics.
 */
#ifndef PWB_SERVER_INT_H
#define PWB_SERVER_INT_H

#include "pwb/server.h"
#include "util/util.h"

#include <jansson.h>
#include <microhttpd.h>
#include <pthread.h>
#include <stdatomic.h>

/* ---- roles ---- */

#define SRV_SERVICE (1u << PWB_KEY_SERVICE)
#define SRV_USER (1u << PWB_KEY_USER)
#define SRV_AUDITOR (1u << PWB_KEY_AUDITOR)
#define SRV_ADMIN (1u << PWB_KEY_ADMIN)
#define SRV_ANY_KEY (SRV_SERVICE | SRV_USER | SRV_AUDITOR | SRV_ADMIN)

/* Whose data a route touches, checked in server.c before its handler. */
typedef enum srv_scope {
	SRV_SCOPE_NONE,	     /* no user's data (or no key at all) */
	SRV_SCOPE_PATH_USER, /* /v1/users/{id}: a user key only its own */
	SRV_SCOPE_BODY_USER, /* the body's "user": a service key names
				one; a user key is itself */
	SRV_SCOPE_DECISION,  /* /v1/decisions/{id}: checked by the handler
				against the stored decision's user */
} srv_scope;

typedef struct srv_req srv_req;

typedef struct srv_route {
	const char *method;
	const char *pattern; /* "{id}" matches one path segment */
	unsigned roles;	     /* 0: no key needed */
	srv_scope scope;
	void (*handler)(srv_req *r);
	const char *name; /* for metrics and logs */
} srv_route;

extern const srv_route pwb__srv_routes[];
extern const size_t pwb__srv_n_routes;

/* ---- one policy set ---- */

typedef struct srv_gen {
	atomic_int refs;
	uint64_t version;
	pwb_policy *policy;
	pwb_bounds *bounds;
	pwb_pipeline *pipeline;
} srv_gen;

/* ---- metrics (metrics.c) ---- */

#define SRV_N_BUCKETS 12
#define SRV_MAX_ROUTES 24
#define SRV_N_STATUS 16
#define SRV_MAX_BLOCK_KEYS 128

typedef struct srv_metrics {
	/* requests by route (the last index: no route) and status */
	atomic_ullong requests[SRV_MAX_ROUTES + 1][SRV_N_STATUS];
	/* latency by route: cumulative-free bucket counts, sum in µs */
	atomic_ullong buckets[SRV_MAX_ROUTES + 1][SRV_N_BUCKETS + 1];
	atomic_ullong sum_us[SRV_MAX_ROUTES + 1];
	atomic_ullong verdicts[4]; /* allow, annotate, redact, block */
	atomic_ullong tokens;	   /* completion tokens generated */
	atomic_ullong gen_us;	   /* time spent in chat requests */
	atomic_ullong store_errors;
	atomic_ullong reloads_ok, reloads_failed;
	atomic_int queued, running; /* worker queue depth, in flight */
	pthread_mutex_t lock;	    /* blocks by tier and category */
	struct {
		char tier[8];
		char category[64];
		unsigned long long n;
	} blocks[SRV_MAX_BLOCK_KEYS];
	size_t n_blocks;
} srv_metrics;

void pwb__srv_metrics_init(srv_metrics *m);
void pwb__srv_metrics_release(srv_metrics *m);
void pwb__srv_metrics_request(srv_metrics *m, int route, unsigned status,
			      double seconds);
void pwb__srv_metrics_response(srv_metrics *m, const pwb_response *resp);
/* The Prometheus text exposition of every metric. */
char *pwb__srv_metrics_text(srv_metrics *m, const pwb_server *s);

/* ---- the server ---- */

typedef struct srv_keyuse {
	char id[40];
	size_t n;
} srv_keyuse;

struct pwb_server {
	pwb_server_params p;
	char *listen, *policies, *lexicon_dir, *prefs_path, *model_name;
	struct MHD_Daemon *mhd;
	uint16_t port;
	pthread_mutex_t lock; /* gen, keyuse, reload */
	pthread_mutex_t reload_lock;
	srv_gen *gen;
	uint64_t next_version;
	srv_keyuse *keyuse;
	size_t n_keyuse, cap_keyuse;
	/* workers */
	pthread_mutex_t qlock;
	pthread_cond_t qcond;
	srv_req **queue;
	size_t qhead, qlen, qcap;
	pthread_t *workers;
	size_t n_workers;
	bool stopping;
	atomic_int open_requests; /* from the first byte to completion */
	atomic_bool draining;
	/* Policy notices this replica sent and has not yet heard back. */
	atomic_int own_notices;
	/* replicas: the store's change notices */
	pwb_store_listener *listener;
	pthread_t listen_thread;
	bool listening;
	srv_metrics metrics;
	double started;	     /* pwb__now() */
	int64_t started_unix;
};

/* ---- one request ---- */

typedef enum srv_phase {
	SRV_NEW,     /* headers and body arriving */
	SRV_QUEUED,  /* with the workers; the connection suspended */
	SRV_READY,   /* a whole response waits to be queued */
	SRV_STREAM,  /* an event stream: the worker writes, MHD reads */
	SRV_QUEUED_RESPONSE, /* handed to MHD */
} srv_phase;

struct srv_req {
	atomic_int refs;
	pwb_server *srv;
	struct MHD_Connection *conn;
	const srv_route *route;
	int route_index; /* -1: none */
	char *arg;	 /* the {id} of the path, or NULL */
	char *q_since, *q_until, *q_format; /* query arguments, or NULL */
	unsigned early_status; /* set before the body: 400, 404, 405, 413, 431 */
	char *auth;	       /* the bearer key, or NULL */
	pwb__buf body;
	bool too_large;
	size_t dropped; /* body bytes read past the cap */
	double t0;	 /* pwb__now(), monotonic */
	double wall0;	 /* unix time, for the log */
	double deadline; /* pwb__now() seconds */
	/* the key, once checked */
	pwb_store_key key;
	bool have_key;
	char key_hint[17]; /* an unknown key's id, when it has a key's shape */
	bool counted; /* took a slot of the key's concurrency */
	const char *user; /* the user the request acts for, or NULL */
	/* the answer */
	pthread_mutex_t mu;
	srv_phase phase;
	unsigned status;
	char *resp;	  /* JSON or text */
	size_t resp_len;
	const char *ctype;
	int retry_after; /* seconds; 0: none */
	const char *err_code;
	/* an event stream */
	pwb__buf out;
	size_t out_off;
	bool out_done;
	bool reader_waiting;
	bool gone; /* the client went away or the connection ended */
	srv_gen *gen;
	/* for the log line */
	char org[64];
	char decision[64];
};

/* Responses, from a handler on a worker. */
void pwb__srv_json(srv_req *r, unsigned status, json_t *body);
/* The same for a body already made as JSON text (taken over; NULL is
 * out of memory). */
void pwb__srv_json_text(srv_req *r, unsigned status, char *text);
/* An answer of another type (text, taken; NULL: out of memory). */
void pwb__srv_text(srv_req *r, unsigned status, char *text,
		   const char *ctype);
void pwb__srv_error(srv_req *r, unsigned status, const char *type,
		    const char *code, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
/* The same, naming the request's field at fault in "param" (as OpenAI's
 * errors do; NULL elsewhere). */
void pwb__srv_error_at(srv_req *r, unsigned status, const char *type,
		       const char *code, const char *param, const char *fmt,
		       ...) __attribute__((format(printf, 6, 7)));
/* The status, type and code for a library failure, with diag's first
 * message (or what) as the message. */
void pwb__srv_fail(srv_req *r, pwb_status st, const pwb_diag *d,
		   const char *what);
/* The body as JSON: NULL after answering 400 when it is not an object. */
json_t *pwb__srv_body_json(srv_req *r);
/* An id from a path or a body: 1 to 256 bytes of printable UTF-8. */
bool pwb__srv_id_ok(const char *id);
/* The user a chat or feedback acts for (SRV_SCOPE_BODY_USER): a service
 * key names one in "user", a user key is its own (a different "user" is
 * refused). NULL after answering the error. */
const char *pwb__srv_body_user(srv_req *r, json_t *body);

/* An event stream: the first write sends the headers (status 200). */
bool pwb__srv_stream_write(srv_req *r, const char *data, size_t len);
bool pwb__srv_stream_started(srv_req *r);
bool pwb__srv_gone(srv_req *r);

/* The policy set requests start on now (one reference; release it). */
srv_gen *pwb__srv_gen_get(pwb_server *s);
void pwb__srv_gen_release(srv_gen *g);

int64_t pwb__srv_now(void);

/* Handlers (routes.c, chat.c). */
void pwb__srv_chat(srv_req *r);

/* One chat request, parsed, and its streaming state (chat.c). */
typedef struct srv_chat {
	srv_req *r;
	pwb_request req;
	pwb_chat_msg *msgs;
	char **texts; /* message contents joined from parts, owned */
	size_t n_msgs;
	const char *jur[16];
	pwb_attrs *attrs;
	size_t n;	/* choices asked for */
	bool stream, usage_chunk;
	char id[96];
	int64_t created;
	bool stream_failed; /* the client is gone */
	bool sent_role;
} srv_chat;

/* Reads a chat request's body (docs/server.md, "Chat completions") for
 * user into c, whose r is set and the rest zero: c->req is then ready for
 * the pipeline, borrowing from body and user. False after answering the
 * error on c->r (400, 404 or 413). Either way c is released with
 * pwb__srv_chat_release; it needs no connection (tests/fuzz/fuzz_chat.c). */
bool pwb__srv_chat_parse(srv_chat *c, json_t *body, const char *user);
void pwb__srv_chat_release(srv_chat *c);

/* ---- feedback and settings bodies (routes.c) ---- */

/* Reads a feedback body (docs/server.md, "Feedback, bounds, settings,
 * data") into fb, whose org and user the caller sets: its decision_id, one
 * kind with its alternatives, and the rating then borrow from body. Else
 * PWB_EINVAL with the code and message of the 400 in *code and *msg
 * (static strings) and fb unchanged. It needs no connection
 * (tests/fuzz/fuzz_bodies.c). */
pwb_status pwb__srv_feedback_parse(json_t *body, pwb_feedback_give *fb,
				   const char **code, const char **msg);
/* org's effective policy with the settings JSON of `pwb user settings`
 * (NULL: none), as PUT /v1/users/{id}/settings checks a body against the
 * bounds: pwb_settings_parse, then pwb_policy_resolve. Its statuses and
 * diag are theirs (PWB_EBOUNDS: outside the bounds). */
pwb_status pwb__srv_settings_resolve(pwb_effective **e, pwb_policy *p,
				     const char *org, const char *settings,
				     size_t len, pwb_diag *d);

#endif
