/*
 * pwb/server.h - the HTTP API (DESIGN §9, docs/server.md): an
 * OpenAI-compatible gateway that personalises and bounds every answer,
 * with the endpoints for feedback, a user's bounds and data, decisions,
 * the audit chain, policy reloads, health and metrics.
 *
 * The server is a thin layer over the pipeline: it authenticates each
 * request by its API key (checked against the store's keyed hashes),
 * checks the key's role for the route in one table, and runs the work on
 * a pool of workers while the connection waits suspended, so that the
 * event threads never block on an engine or the store.
 *
 * Ownership and threads: the server borrows the engine, the guard and
 * the store, which must outlive it; it owns the policy, the detectors and
 * the pipeline it builds from the policy folder (one set per reload:
 * requests in flight finish on the set they started with). All calls
 * may come from any thread; pwb_server_stop() from one only.
 */
#ifndef PWB_SERVER_H
#define PWB_SERVER_H

#include "pwb/pipeline.h"

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct pwb_server pwb_server;

typedef struct pwb_server_params {
	/* "HOST:PORT" (IPv4 or a bracketed IPv6 address); port 0 picks a
	 * free one (pwb_server_port). Default "127.0.0.1:8080". */
	const char *listen;
	/* The policy folder (required): loaded at start and at each
	 * reload. */
	const char *policies;
	/* The detectors' options; lexicon_dir NULL: POLICIES/lexicons. */
	pwb_bounds_params bounds;
	/* The pipeline's options: engine and store are required; policy
	 * and bounds are the server's own; prefs is ignored (see
	 * prefs_path). */
	pwb_pipeline_params pipeline;
	/* A population preference model file, loaded for each policy set;
	 * NULL: the zero model. */
	const char *prefs_path;
	/* The model id that /v1/models lists and requests must name.
	 * Default "pwb". */
	const char *model_name;
	size_t threads;		/* event threads; default 2 */
	size_t workers;		/* request workers; default 32 */
	size_t max_body;	/* bytes of a request body; default 8 MiB */
	size_t max_header;	/* bytes of a request's headers; 32 KiB */
	size_t max_connections; /* default 1,024 */
	int deadline_ms;	/* per request; default 120,000 */
	int idle_timeout_s;	/* a connection that sends nothing; 30 */
	size_t key_concurrency; /* requests in flight per key; 16 */
	size_t max_n;		/* the most choices a request may ask
				 * for (the engine's sequences); 4 */
	/* One line per request (JSON, level INFO) and the server's own
	 * events; NULL: none. */
	pwb_log_fn log;
	void *log_user;
} pwb_server_params;

pwb_server_params pwb_server_default_params(void);

/*
 * Loads the policy folder (refused unless it passes `pwb policy check`),
 * builds the detectors and the pipeline, binds the address and starts
 * serving. PWB_EINVAL for bad parameters or an address that cannot be
 * bound, PWB_EPOLICY for a policy folder with errors (all in diag).
 */
pwb_status pwb_server_start(pwb_server **out, const pwb_server_params *p,
			    pwb_diag *diag);

/* The port the server listens on. */
uint16_t pwb_server_port(const pwb_server *s);
/* Whether spec is an address params.listen takes ("HOST:PORT",
 * "[V6]:PORT", ":PORT"; the host a numeric address). */
bool pwb_server_listen_ok(const char *spec);

/*
 * Loads the policy folder again. A set that fails the check is refused
 * (PWB_EPOLICY, every problem in diag) and the old one keeps serving;
 * else new requests use the new set and requests in flight finish on
 * theirs. *version (may be NULL) gets the new set's number (1 at
 * start). Other replicas on the same PostgreSQL store hear of it.
 */
pwb_status pwb_server_reload(pwb_server *s, uint64_t *version,
			     pwb_diag *diag);

/*
 * Graceful stop: no new connections; requests in flight finish (each
 * within its deadline); then the server is freed. NULL is fine.
 */
void pwb_server_stop(pwb_server *s);

#ifdef __cplusplus
}
#endif

#endif
