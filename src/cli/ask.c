/*
 * ask.c - `pwb ask`: one request through the pipeline, from the command
 * line (docs/pipeline.md); and the engine options every generating
 * command shares (cli_engine_open).
 */
#include "cli/cli.h"
#include "util/util.h"

#include <stdlib.h>
#include <string.h>

static const char ask_usage[] =
    "Usage: pwb ask --policies DIR --org ID --user ID "
    "(--model FILE.gguf | --upstream URL) [options] PROMPT|-\n"
    "\n"
    "Answers one prompt through the whole pipeline (docs/pipeline.md): the\n"
    "user's bounds are resolved, the prompt is checked, N candidates are\n"
    "generated with the personalised system prompt, each is checked, and\n"
    "the user's preference model picks the best. A prompt or answers out\n"
    "of bounds give the refusal, naming the tier, source, category and\n"
    "basis that bound it. With --db the decision is recorded, so that\n"
    "'pwb feedback give' can name one of its alternatives.\n"
    "\n"
    "Options:\n" CLI_RESOLVE_HELP_POLICY CLI_RESOLVE_HELP_ATTRS
    "  --user ID            the end user\n"
    "  --db URL             the store (sqlite:PATH or postgres://...):\n"
    "                       the user's settings, consent and model, and\n"
    "                       where the decision is recorded\n" CLI_HELP_ENGINE
    "  --prefs MODEL        the population preference model\n"
    "                       (from 'pwb prefs train'); default: zeros\n"
    "  --n N                candidates (1..16; default: the org's)\n"
    "  --seed S             sampling seed (default: the clock)\n"
    "  --max-tokens N       per candidate (default 256)\n"
    "  --temperature T      0 for greedy (default 0.8)\n"
    "  --lexicons DIR       lexicons (default DIR/lexicons)\n"
    "  --detector FILE      a linear detector from 'pwb bounds train'\n"
    "  --json               print the whole decision as JSON\n"
    "  -h, --help           show this help\n"
    "\n"
    "A PROMPT that starts with '-' goes after '--': ... -- '-x'.\n"
    "\n" CLI_HELP_CACHE_ENV CLI_HELP_ENGINE_ENV "\n"
    "Example:\n"
    "  pwb ask --policies policies --org acme-tutor --user u1 "
    "--model stories260K.gguf --n 2 --seed 1 \"Tell me a story\"\n"
    "\n"
    "Exit status: 0 when answered or refused (a refusal is an answer),\n"
    "1 on an error (engine down, bad input), 2 on a usage error.\n";

int cli_engine_open(cli_args *a, const cli_engine_opts *o, pwb_engine **out)
{
	*out = NULL;
	if (!!o->model == !!o->upstream)
		return cli_usage_error(a, "give one of --model FILE.gguf and "
					  "--upstream URL");
	pwb_diag d;
	pwb_diag_init(&d);
	pwb_status st;
	if (o->model) {
		pwb_llama_params lp = pwb_llama_default_params();
		lp.model_path = o->model;
		lp.n_threads = (int)o->threads;
		lp.n_ctx = o->ctx;
		lp.n_contexts = o->contexts ? o->contexts : 1;
		st = pwb_engine_llama_new(out, &lp, &d);
	} else {
		pwb_openai_params op = pwb_openai_default_params();
		op.url = o->upstream;
		op.model = o->upstream_model;
		op.api_key_env = o->api_key_env;
		op.log = cli_log;
		st = pwb_engine_openai_new(out, &op, &d);
	}
	if (st)
		cli_report(NULL, st, &d);
	pwb_diag_release(&d);
	return st ? CLI_FAIL : CLI_OK;
}

pwb_prefs_model *cli_prefs_open(const char *path, bool *failed)
{
	*failed = false;
	if (!path)
		return NULL;
	pwb_prefs_model *m = NULL;
	pwb_diag d;
	pwb_diag_init(&d);
	pwb_status st = pwb_prefs_load(&m, path, &d);
	if (st) {
		cli_report(path, st, &d);
		*failed = true;
	}
	pwb_diag_release(&d);
	return m;
}

/* What `ask` prints without --json: the answer, then where it stands. */
static void print_response(const pwb_response *r)
{
	printf("%s\n", r->content);
	if (r->blocked) {
		const pwb_blocked_by *b = &r->blocked_by;
		fprintf(stderr,
			"pwb: refused on the %s: %s blocked by %s (%s)%s%s\n",
			b->on, b->category, pwb_tier_str(b->tier), b->source,
			b->basis ? ": " : "", b->basis ? b->basis : "");
	}
	fprintf(stderr, "pwb: decision %s, %s", r->decision_id,
		pwb_verdict_str(r->verdict));
	if (r->chosen != SIZE_MAX)
		fprintf(stderr, ", alternative %s of %zu (%s model)",
			r->alts[r->chosen].id, r->n_alts,
			r->personal ? "your" : "population");
	fprintf(stderr, "\n");
}

typedef struct ask_opts {
	cli_resolve ra;
	cli_engine_opts eo;
	const char *user, *db, *prefs, *lexicons, *detector;
	size_t n, max_tokens;
	uint64_t seed;
	double temperature;
	bool json;
} ask_opts;

/* Everything ask needs, opened in order; each NULL until opened. */
typedef struct ask_parts {
	pwb_bounds *bounds;
	pwb_engine *engine;
	pwb_store *store;
	pwb_pipeline *pipeline;
	char *prompt;
} ask_parts;

static void parts_release(ask_parts *p)
{
	pwb_pipeline_free(p->pipeline);
	pwb_store_free(p->store);
	pwb_engine_free(p->engine);
	pwb_bounds_free(p->bounds);
	free(p->prompt);
}

static int open_parts(cli_args *a, ask_opts *o, ask_parts *p)
{
	int rc = cli_engine_open(a, &o->eo, &p->engine);
	if (rc)
		return rc;
	if (!(p->bounds = cli_bounds_open(&o->ra, o->lexicons, o->detector)))
		return CLI_FAIL;
	/* The org is checked against the policies (resolved above); the
	 * store records their folder for the commands that come after. */
	if (o->db && (!(p->store = cli_store_open(o->db)) ||
		      cli_store_record_policies(p->store, o->ra.policies)))
		return CLI_FAIL;
	bool failed;
	pwb_pipeline_params pp = pwb_pipeline_default_params();
	pp.policy = o->ra.policy;
	pp.bounds = p->bounds;
	pp.engine = p->engine;
	pp.store = p->store;
	pp.prefs = cli_prefs_open(o->prefs, &failed);
	if (failed)
		return CLI_FAIL;
	if (o->max_tokens)
		pp.max_tokens = o->max_tokens;
	if (o->temperature >= 0)
		pp.temperature = o->temperature;
	pp.log = cli_log;
	pwb_diag d;
	pwb_diag_init(&d);
	pwb_status st = pwb_pipeline_new(&p->pipeline, &pp, &d);
	if (st)
		cli_report(NULL, st, &d);
	pwb_diag_release(&d);
	return st ? CLI_FAIL : CLI_OK;
}

static int ask(ask_opts *o, ask_parts *p)
{
	pwb_chat_msg m = {"user", p->prompt};
	pwb_request req = {
	    .org = o->ra.org,
	    .user = o->user,
	    .jurisdictions = o->ra.jur.v,
	    .n_jurisdictions = o->ra.jur.n,
	    .attrs = o->ra.attrs,
	    .msgs = &m,
	    .n_msgs = 1,
	    .n = o->n,
	    .seed = o->seed,
	};
	pwb_response *r = NULL;
	pwb_diag d;
	pwb_diag_init(&d);
	pwb_status st = pwb_pipeline_chat(p->pipeline, &req, &r, &d);
	int rc = CLI_FAIL;
	char *json = NULL;
	if (st) {
		cli_report(NULL, st, &d);
	} else if (o->json) {
		if (!pwb_response_to_json(r, &json)) {
			printf("%s\n", json);
			rc = CLI_OK;
		}
	} else {
		print_response(r);
		rc = CLI_OK;
	}
	if (!rc && fflush(stdout))
		rc = CLI_FAIL;
	free(json);
	pwb_response_free(r);
	pwb_diag_release(&d);
	return rc;
}

int cli_ask(int argc, char **argv)
{
	ask_opts o = {.temperature = -1};
	cli_list pos = {0};
	cli_args a = {argc, argv, 1, "pwb ask"};
	const cli_spec spec[] = {
	    CLI_RESOLVE_SPEC_NO_SETTINGS(&o.ra),
	    CLI_ENGINE_SPEC(&o.eo),
	    CLI_OPT_STR("user", o.user),
	    CLI_OPT_STR("db", o.db),
	    CLI_OPT_STR("prefs", o.prefs),
	    CLI_OPT_STR("lexicons", o.lexicons),
	    CLI_OPT_STR("detector", o.detector),
	    CLI_OPT_UINT("n", o.n, 1, PWB_ENGINE_MAX_N),
	    CLI_OPT_UINT("seed", o.seed, 0, 1e18),
	    CLI_OPT_UINT("max-tokens", o.max_tokens, 1, PWB_ENGINE_MAX_TOKENS),
	    CLI_OPT_NUM("temperature", o.temperature, 0, 10),
	    CLI_OPT_FLAG("json", o.json),
	};
	int rc = cli_parse(&a, spec, PWB_ARRAY_LEN(spec), ask_usage, &pos);
	if (rc)
		return cli_parsed(rc);
	if (!o.user)
		return cli_usage_error(&a, "--user ID is required");
	if (pos.n != 1)
		return cli_usage_error(&a, "give one PROMPT (quote it) or '-' "
					   "to read it from standard input");
	if ((rc = cli_resolve_run(&o.ra, &a))) {
		cli_resolve_release(&o.ra);
		return rc;
	}
	ask_parts p = {0};
	size_t len;
	if (!strcmp(pos.v[0], "-"))
		p.prompt = cli_read_file("-", PWB_BOUNDS_MAX_TEXT, &len);
	else
		p.prompt = strdup(pos.v[0]);
	rc = p.prompt ? open_parts(&a, &o, &p) : CLI_FAIL;
	if (!rc)
		rc = ask(&o, &p);
	parts_release(&p);
	cli_resolve_release(&o.ra);
	return rc;
}
