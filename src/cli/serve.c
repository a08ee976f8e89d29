/*
 * serve.c - `pwb serve`: the OpenAI-compatible gateway (docs/server.md),
 * with its options from the command line and an optional YAML config file
 * whose keys are the same as the options. SIGHUP reloads the policies;
 * SIGTERM and SIGINT stop gracefully.
 */
#include "cli/cli.h"
#include "util/util.h"

#include <errno.h>
#include <libfyaml.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char serve_usage[] =
    "Usage: pwb serve --db URL --policies DIR (--model FILE.gguf | "
    "--upstream URL) [options]\n"
    "\n"
    "Serves the HTTP API (docs/server.md): an OpenAI-compatible\n"
    "POST /v1/chat/completions that personalises and bounds every answer,\n"
    "and the endpoints for feedback, a user's bounds, settings, export and\n"
    "erasure, decisions, the audit chain, policy reloads, /healthz,\n"
    "/readyz and /metrics. Callers authenticate with API keys made by\n"
    "'pwb keys create' (e.g. --org acme-tutor --role service), sent as\n"
    "\"Authorization: Bearer KEY\"; a service key names the end user in\n"
    "the request's \"user\".\n"
    "\n"
    "Options:\n"
    "  --config FILE        read options from a YAML file whose keys are\n"
    "                       the options' names (db: sqlite:pwb.db);\n"
    "                       options on the command line win\n"
    "  --db URL             the store (sqlite:PATH or postgres://...)\n"
    "  --policies DIR       the policy folder, loaded at start and on each\n"
    "                       reload\n"
    "  --listen ADDR        HOST:PORT to listen on (default\n"
    "                       127.0.0.1:8080; port 0 picks a free one)\n" CLI_HELP_ENGINE
    "  --contexts N         embedded: answers generated at once (default 2)\n"
    "  --max-n N            the most candidates a request may ask for\n"
    "                       (1..16, default 4)\n"
    "  --model-name NAME    the model id clients name (default \"pwb\")\n"
    "  --prefs MODEL        the population preference model (from 'pwb\n"
    "                       prefs train'); default: zeros\n"
    "  --lexicons DIR       lexicon folder (default: DIR/lexicons)\n"
    "  --detector FILE      a linear model (from 'pwb bounds train')\n"
    "  --max-tokens N       per candidate: the default, and the most a\n"
    "                       request may ask for (default 256)\n"
    "  --temperature T      sampling temperature (default 0.8)\n"
    "  --http-threads N     event threads (default 2)\n"
    "  --workers N          requests served at once (default 32)\n"
    "  --max-body BYTES     largest request body (default 8388608)\n"
    "  --max-header BYTES   connection memory for the request line and\n"
    "                       headers (default 32768; past it, 431)\n"
    "  --deadline MS        per request (default 120000)\n"
    "  --key-concurrency N  requests in flight per API key (default 16)\n"
    "  --max-connections N  open connections (default 1024)\n"
    "  --idle-timeout S     close a connection silent this long (default "
    "30)\n"
    "  -h, --help           show this help\n"
    "\n"
    "Signals: SIGHUP reloads the policies (a folder with errors is refused\n"
    "and the old one keeps serving); SIGTERM and SIGINT stop accepting,\n"
    "finish the requests in flight and exit 0.\n"
    "\n"
    "Each request is logged as one JSON line on standard error (route,\n"
    "status, time, org, key id, decision; never user content).\n"
    "\n" CLI_HELP_CACHE_ENV CLI_HELP_ENGINE_ENV
    "  PWB_KEY_SECRET       the secret that keys the API keys' hashes\n"
    "\n"
    "Example:\n"
    "  pwb serve --db sqlite:pwb.db --policies policies "
    "--model model.gguf\n"
    "\n"
    "Exit status: 0 after a graceful stop, 1 when it cannot start, 2 on a\n"
    "usage error.\n";

typedef struct serve_opts {
	const char *config, *db, *policies, *listen, *prefs, *lexicons,
	    *detector, *model_name;
	cli_engine_opts eo;
	size_t contexts, max_n, max_tokens, http_threads, workers, max_body,
	    max_header, deadline, key_conc, max_conn, idle;
	double temperature;
} serve_opts;

#define SERVE_SPEC(o)                                                          \
	CLI_OPT_STR("config", (o)->config), CLI_OPT_STR("db", (o)->db),        \
	    CLI_OPT_STR("policies", (o)->policies),                            \
	    CLI_OPT_STR("listen", (o)->listen), CLI_ENGINE_SPEC(&(o)->eo),     \
	    CLI_OPT_UINT("contexts", (o)->contexts, 1, 64),                    \
	    CLI_OPT_UINT("max-n", (o)->max_n, 1, PWB_ENGINE_MAX_N),            \
	    CLI_OPT_STR("model-name", (o)->model_name),                        \
	    CLI_OPT_STR("prefs", (o)->prefs),                                  \
	    CLI_OPT_STR("lexicons", (o)->lexicons),                            \
	    CLI_OPT_STR("detector", (o)->detector),                            \
	    CLI_OPT_UINT("max-tokens", (o)->max_tokens, 1,                     \
			 PWB_ENGINE_MAX_TOKENS),                               \
	    CLI_OPT_NUM("temperature", (o)->temperature, 0, 10),               \
	    CLI_OPT_UINT("http-threads", (o)->http_threads, 1, 256),           \
	    CLI_OPT_UINT("workers", (o)->workers, 1, 4096),                    \
	    CLI_OPT_UINT("max-body", (o)->max_body, 1024, 1 << 30),            \
	    CLI_OPT_UINT("max-header", (o)->max_header, 4096, 1 << 24),        \
	    CLI_OPT_UINT("deadline", (o)->deadline, 100, 3600000),             \
	    CLI_OPT_UINT("key-concurrency", (o)->key_conc, 1, 100000),         \
	    CLI_OPT_UINT("max-connections", (o)->max_conn, 1, 1000000),        \
	    CLI_OPT_UINT("idle-timeout", (o)->idle, 1, 86400)

/* ---- the config file: its keys become options before the command
 * line's, so that the command line wins ---- */

typedef struct cfg_args {
	char **v;
	size_t n, cap;
	bool failed;
} cfg_args;

static void cfg_push(cfg_args *c, const char *s)
{
	if (c->failed)
		return;
	if (pwb__grow((void **)&c->v, &c->cap, c->n + 2, sizeof(*c->v)) ||
	    !(c->v[c->n] = strdup(s))) {
		c->failed = true;
		return;
	}
	c->v[++c->n] = NULL;
}

static void cfg_release(cfg_args *c)
{
	for (size_t i = 0; i < c->n; i++)
		free(c->v[i]);
	free(c->v);
	memset(c, 0, sizeof(*c));
}

/* The options of the spec as names, for "did you mean". */
static const cli_spec *spec_find(const cli_spec *spec, size_t n,
				 const char *name)
{
	for (size_t i = 0; i < n; i++)
		if (!strcmp(spec[i].name, name))
			return &spec[i];
	return NULL;
}

static int cfg_error(const char *file, struct fy_node *at, const char *fmt,
		     const char *a, const char *b)
{
	/* Scalars know where they start; a caller names a key for the
	 * mapping or list that follows it. */
	struct fy_token *t =
	    at && fy_node_is_scalar(at) ? fy_node_get_scalar_token(at) : NULL;
	const struct fy_mark *m = t ? fy_token_start_mark(t) : NULL;
	fprintf(stderr, "%s:%d:%d: error: ", file, m ? m->line + 1 : 0,
		m ? m->column + 1 : 0);
	fprintf(stderr, fmt, a, b);
	fputc('\n', stderr);
	return CLI_FAIL;
}

/* One value of the config: a scalar, as an option's argument. */
static const char *cfg_scalar(struct fy_node *v, char *buf, size_t n)
{
	size_t len = 0;
	const char *t = fy_node_get_scalar(v, &len);
	if (!t || len >= n || memchr(t, '\0', len))
		return NULL;
	memcpy(buf, t, len);
	buf[len] = 0;
	return buf;
}

static int cfg_load(const char *file, const cli_spec *spec, size_t n_spec,
		    cfg_args *out)
{
	/* libfyaml prints a syntax error as FILE:LINE:COL itself. */
	FILE *f = fopen(file, "r");
	if (!f) {
		fprintf(stderr, "%s: error: cannot read the config: %s\n", file,
			strerror(errno));
		return CLI_FAIL;
	}
	fclose(f);
	struct fy_document *doc = fy_document_build_from_file(NULL, file);
	if (!doc) {
		fprintf(stderr, "%s: error: the config is not valid YAML (the "
				"line above says where)\n",
			file);
		return CLI_FAIL;
	}
	int rc = CLI_OK;
	struct fy_node *root = fy_document_root(doc);
	if (!root || !fy_node_is_mapping(root)) {
		rc = cfg_error(file, root,
			       "the config must be a mapping of option: "
			       "value%s%s",
			       "", "");
		goto out;
	}
	const char *names[128];
	size_t nn = 0;
	for (size_t i = 0; i < n_spec && nn < PWB_ARRAY_LEN(names); i++)
		names[nn++] = spec[i].name;
	void *iter = NULL;
	struct fy_node_pair *pair;
	char key[128], val[4096], opt[160];
	while (!rc && (pair = fy_node_mapping_iterate(root, &iter))) {
		struct fy_node *k = fy_node_pair_key(pair);
		struct fy_node *v = fy_node_pair_value(pair);
		if (!k || !fy_node_is_scalar(k) ||
		    !cfg_scalar(k, key, sizeof(key))) {
			rc = cfg_error(file, k, "a key must be an option's "
						"name%s%s",
				       "", "");
			break;
		}
		const cli_spec *sp = spec_find(spec, n_spec, key);
		if (!strcmp(key, "config")) {
			rc = cfg_error(file, k, "'config' names a config file "
						"on the command line only, not "
						"in one%s%s",
				       "", "");
			break;
		}
		if (!sp) {
			pwb__hint h = cli_hint_for(key, names, nn);
			rc = cfg_error(file, k, "unknown key '%s'%s", key,
				       h.text);
			break;
		}
		snprintf(opt, sizeof(opt), "--%s", key);
		bool seq = v && fy_node_is_sequence(v);
		if (!v || fy_node_is_mapping(v) ||
		    (seq && sp->kind != CLI_LIST)) {
			rc = cfg_error(file, k, "'%s' takes %s", key,
				       sp->kind == CLI_FLAG ? "true or false"
							    : "one value");
			break;
		}
		if (seq) {
			void *it2 = NULL;
			struct fy_node *item;
			while ((item = fy_node_sequence_iterate(v, &it2))) {
				if (!fy_node_is_scalar(item) ||
				    !cfg_scalar(item, val, sizeof(val))) {
					rc = cfg_error(file, k,
						       "'%s' lists values%s",
						       key, "");
					break;
				}
				cfg_push(out, opt);
				cfg_push(out, val);
			}
			continue;
		}
		if (!cfg_scalar(v, val, sizeof(val))) {
			rc = cfg_error(file, v, "'%s': a value of at most 4 KiB, "
						"without NUL%s",
				       key, "");
			break;
		}
		char why[600];
		if (!cli_value_ok(sp, val, why, sizeof(why))) {
			rc = cfg_error(file, v, "%s%s", why, "");
			break;
		}
		if (sp->kind == CLI_FLAG) {
			if (strcmp(val, "true") && strcmp(val, "false"))
				rc = cfg_error(file, v,
					       "'%s' takes true or false, not "
					       "'%s'",
					       key, val);
			else if (!strcmp(val, "true"))
				cfg_push(out, opt);
			continue;
		}
		cfg_push(out, opt);
		cfg_push(out, val);
	}
	if (!rc && out->failed) {
		fprintf(stderr, "%s: error: out of memory\n", file);
		rc = CLI_FAIL;
	}
out:
	fy_document_destroy(doc);
	return rc;
}

/* --config FILE (or --config=FILE) among the arguments, or NULL. */
static const char *config_arg(int argc, char **argv)
{
	/* --help shows the help whatever the config says. */
	for (int i = 1; i < argc && strcmp(argv[i], "--"); i++)
		if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help"))
			return NULL;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--"))
			break;
		if (!strcmp(argv[i], "--config") && i + 1 < argc)
			return argv[i + 1];
		if (!strncmp(argv[i], "--config=", 9))
			return argv[i] + 9;
	}
	return NULL;
}

/* ---- running ---- */

static void serve_log(void *user, pwb_log_level level, const char *msg)
{
	(void)user;
	/* Request lines are JSON objects, one a line, for log collectors;
	 * the server's own events read as the other commands' notes. */
	if (msg[0] == '{')
		fprintf(stderr, "%s\n", msg);
	else if (level == PWB_LOG_INFO)
		fprintf(stderr, "pwb: note: %s\n", msg);
	else
		cli_log(NULL, level, msg);
}

static int run(cli_args *a, serve_opts *o)
{
	int rc;
	if (!o->db || !o->policies)
		return cli_usage_error(a, "--db URL and --policies DIR are "
					  "required");
	if ((rc = cli_engine_usage(a, &o->eo)))
		return rc;
	if (o->listen && !pwb_server_listen_ok(o->listen))
		return cli_usage_error(a,
				       "--listen '%s' is not HOST:PORT (e.g. "
				       "127.0.0.1:8080, [::1]:8080, :8080)",
				       o->listen);
	if ((o->prefs && (rc = cli_check_readable(a, "prefs", o->prefs))) ||
	    (o->detector &&
	     (rc = cli_check_readable(a, "detector", o->detector))))
		return rc;
	long cores = sysconf(_SC_NPROCESSORS_ONLN);
	if (cores > 0 && o->eo.threads > (size_t)cores)
		o->eo.threads = (size_t)cores;
	/* The contexts generate at once: each gets its share of the cores,
	 * for llama.cpp's threads spin and more threads than cores cost
	 * far more than they give. */
	if (!o->eo.threads && cores > 0)
		o->eo.threads = (size_t)cores / o->contexts
				    ? (size_t)cores / o->contexts
				    : 1;
	o->eo.seqs = o->max_n;
	o->eo.contexts = o->contexts;
	/* Signals go to the main thread alone: block them before any
	 * thread starts, then wait for them. */
	sigset_t sigs;
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);
	signal(SIGPIPE, SIG_IGN);

	pwb_engine *engine = NULL, *guard_engine = NULL;
	pwb_store *store = NULL;
	pwb_server *srv = NULL;
	if ((rc = cli_engine_open(a, &o->eo, &engine, &guard_engine)))
		goto out;
	rc = CLI_FAIL;
	if (!(store = cli_store_open(o->db)))
		goto out;
	pwb_engine_guard guard = {.engine = guard_engine};
	pwb_server_params sp = pwb_server_default_params();
	sp.policies = o->policies;
	sp.bounds.lexicon_dir = o->lexicons;
	sp.bounds.model = o->detector;
	sp.bounds.cache_dir = cli_cache_dir();
	sp.bounds.log = cli_log;
	if (guard_engine) {
		sp.bounds.guard = pwb_engine_guard_fn;
		sp.bounds.guard_user = &guard;
	}
	sp.pipeline.engine = engine;
	sp.pipeline.store = store;
	sp.pipeline.log = cli_log;
	if (o->max_tokens)
		sp.pipeline.max_tokens = o->max_tokens;
	if (o->temperature >= 0)
		sp.pipeline.temperature = o->temperature;
	sp.prefs_path = o->prefs;
	if (o->listen)
		sp.listen = o->listen;
	if (o->model_name)
		sp.model_name = o->model_name;
	sp.threads = o->http_threads;
	sp.workers = o->workers;
	sp.max_body = o->max_body;
	sp.max_header = o->max_header;
	sp.deadline_ms = (int)o->deadline;
	sp.key_concurrency = o->key_conc;
	sp.max_connections = o->max_conn;
	sp.idle_timeout_s = (int)o->idle;
	sp.max_n = o->max_n;
	sp.log = serve_log;
	pwb_diag d;
	pwb_diag_init(&d);
	pwb_status st = pwb_server_start(&srv, &sp, &d);
	if (st) {
		cli_report(o->policies, st, &d);
		pwb_diag_release(&d);
		goto out;
	}
	pwb_diag_release(&d);
	if (cli_store_record_policies(store, o->policies))
		goto out;
	printf("pwb serve: listening on %s (port %u)\n",
	       sp.listen, (unsigned)pwb_server_port(srv));
	fflush(stdout);
	for (;;) {
		int sig = 0;
		if (sigwait(&sigs, &sig))
			continue;
		if (sig != SIGHUP)
			break;
		pwb_diag_init(&d);
		uint64_t version = 0;
		st = pwb_server_reload(srv, &version, &d);
		if (st)
			cli_report(o->policies, st, &d);
		else
			fprintf(stderr,
				"pwb: note: policies reloaded (set %llu)\n",
				(unsigned long long)version);
		pwb_diag_release(&d);
	}
	fprintf(stderr, "pwb: note: stopping: finishing the requests in "
			"flight\n");
	rc = CLI_OK;
out:
	pwb_server_stop(srv);
	pwb_store_free(store);
	pwb_engine_free(guard_engine);
	pwb_engine_free(engine);
	return rc;
}

int cli_serve(int argc, char **argv)
{
	serve_opts o = {.temperature = -1,
			.contexts = 2,
			.max_n = 4,
			.http_threads = 2,
			.workers = 32,
			.max_body = 8u << 20,
			.max_header = 32u << 10,
			.deadline = 120000,
			.key_conc = 16,
			.max_conn = 1024,
			.idle = 30};
	const cli_spec spec[] = {SERVE_SPEC(&o)};
	cfg_args cfg = {0};
	const char *config = config_arg(argc, argv);
	int rc = CLI_OK;
	if (config) {
		cfg_push(&cfg, argv[0]);
		if ((rc = cfg_load(config, spec, PWB_ARRAY_LEN(spec), &cfg))) {
			cfg_release(&cfg);
			return rc;
		}
		for (int i = 1; i < argc; i++)
			cfg_push(&cfg, argv[i]);
		if (cfg.failed) {
			cfg_release(&cfg);
			fprintf(stderr, "pwb serve: error: out of memory\n");
			return CLI_FAIL;
		}
	}
	cli_args a = {config ? (int)cfg.n : argc, config ? cfg.v : argv, 1,
		      "pwb serve"};
	rc = cli_parse(&a, spec, PWB_ARRAY_LEN(spec), serve_usage, NULL);
	if (!rc)
		rc = run(&a, &o);
	else
		rc = cli_parsed(rc);
	cfg_release(&cfg);
	return rc;
}
