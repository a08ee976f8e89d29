/*
 * gen.c - what the generating commands (ask, chat) share: the engine
 * options, the population preference model, and the pipeline with its
 * bounds, engine and store, opened in order.
 */
#include "cli/cli.h"
#include "util/util.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* One engine: embedded from a GGUF file, or an upstream endpoint. */
static pwb_status open_one(const cli_engine_opts *o, const char *model,
			   const char *upstream, const char *upstream_model,
			   bool guard, pwb_engine **out, pwb_diag *d)
{
	if (model) {
		pwb_llama_params lp = pwb_llama_default_params();
		lp.model_path = model;
		lp.n_threads = (int)o->threads;
		if (o->seqs > lp.n_seq)
			lp.n_seq = o->seqs;
		lp.n_ctx = o->ctx;
		lp.n_contexts = o->contexts ? o->contexts : 1;
		if (guard) { /* one greedy answer per check */
			lp.n_seq = 1;
			lp.embeddings = false;
		}
		return pwb_engine_llama_new(out, &lp, d);
	}
	pwb_openai_params op = pwb_openai_default_params();
	op.url = upstream;
	op.model = upstream_model;
	op.api_key_env = o->api_key_env;
	op.log = cli_log;
	if (guard)
		op.stream = false;
	return pwb_engine_openai_new(out, &op, d);
}

/* Usage errors of the guard's options, before anything is opened. */
static int guard_usage(cli_args *a, const cli_engine_opts *o)
{
	if (o->guard_model && o->guard_upstream)
		return cli_usage_error(a, "give at most one of --guard-model "
					  "and --guard-upstream");
	if (o->guard_upstream_model && !o->guard_upstream)
		return cli_usage_error(a, "--guard-upstream-model needs "
					  "--guard-upstream URL");
	return CLI_OK;
}

/* The guard's judge when the options name one (usage checked). */
static int open_guard(const cli_engine_opts *o, pwb_engine **guard)
{
	if (!o->guard_model && !o->guard_upstream)
		return CLI_OK;
	pwb_diag d;
	pwb_diag_init(&d);
	pwb_status st = open_one(o, o->guard_model, o->guard_upstream,
				 o->guard_upstream_model, true, guard, &d);
	if (st)
		cli_report(NULL, st, &d);
	pwb_diag_release(&d);
	return st ? CLI_FAIL : CLI_OK;
}

int cli_guard_open(cli_args *a, const cli_engine_opts *o, pwb_engine **guard)
{
	*guard = NULL;
	int rc = guard_usage(a, o);
	return rc ? rc : open_guard(o, guard);
}

int cli_engine_usage(cli_args *a, const cli_engine_opts *o)
{
	if (!!o->model == !!o->upstream)
		return cli_usage_error(a, "give one of --model FILE.gguf and "
					  "--upstream URL");
	if (o->model && !*o->model)
		return cli_usage_error(
		    a, "--model is empty: give a GGUF file (in the README's "
		       "command, scripts/get-model.sh prints it: if it "
		       "failed, its message is above; PWB_MODEL=FILE.gguf "
		       "uses a file already on disk)");
	return guard_usage(a, o);
}

int cli_engine_open(cli_args *a, const cli_engine_opts *o, pwb_engine **out,
		    pwb_engine **guard)
{
	*out = NULL;
	*guard = NULL;
	int rc = cli_engine_usage(a, o);
	if (rc)
		return rc;
	pwb_diag d;
	pwb_diag_init(&d);
	pwb_status st = open_one(o, o->model, o->upstream, o->upstream_model,
				 false, out, &d);
	if (st)
		cli_report(NULL, st, &d);
	pwb_diag_release(&d);
	return st ? CLI_FAIL : open_guard(o, guard);
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

void cli_gen_close(cli_gen *g)
{
	pwb_pipeline_free(g->pipeline);
	pwb_store_free(g->store);
	pwb_bounds_free(g->bounds);
	pwb_engine_free(g->guard_engine);
	pwb_engine_free(g->engine);
	memset(g, 0, sizeof(*g));
}

int cli_gen_served(cli_gen *g)
{
	if (!g->store || g->recorded || !g->policies)
		return CLI_OK;
	g->recorded = true;
	return cli_store_record_policies(g->store, g->policies);
}

int cli_gen_open(cli_args *a, cli_gen_opts *o, cli_gen *g)
{
	memset(g, 0, sizeof(*g));
	if (!o->user)
		return cli_usage_error(a, "--user ID is required");
	/* More threads than cores make llama.cpp's workers wait on each
	 * other: many times slower, never faster. */
	long cores = sysconf(_SC_NPROCESSORS_ONLN);
	if (cores > 0 && o->eo.threads > (size_t)cores) {
		fprintf(stderr,
			"pwb: warning: --threads %zu is more than the %ld "
			"cores here; using %ld\n",
			o->eo.threads, cores, cores);
		o->eo.threads = (size_t)cores;
	}
	/* The embedded engine decodes as many candidates together as the
	 * request or the org asks for. */
	int org_n = pwb_effective_candidates(o->ra.effective);
	o->eo.seqs = o->n ? o->n : (size_t)(org_n > 0 ? org_n : 1);
	int rc = cli_engine_open(a, &o->eo, &g->engine, &g->guard_engine);
	if (rc)
		return rc;
	/* The guard's judge must not fail open: a slow or broken one makes
	 * the check fail, and the request is refused (docs/bounds.md). */
	g->guard = (pwb_engine_guard){.engine = g->guard_engine};
	if (!(g->bounds = cli_bounds_open(&o->ra, o->lexicons, o->detector,
					  &g->guard)))
		return CLI_FAIL;
	if (o->db && !(g->store = cli_store_open(o->db)))
		return CLI_FAIL;
	g->policies = o->ra.policies;
	bool failed;
	pwb_pipeline_params pp = pwb_pipeline_default_params();
	pp.policy = o->ra.policy;
	pp.bounds = g->bounds;
	pp.engine = g->engine;
	pp.store = g->store;
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
	pwb_status st = pwb_pipeline_new(&g->pipeline, &pp, &d);
	if (st)
		cli_report(NULL, st, &d);
	pwb_diag_release(&d);
	return st ? CLI_FAIL : CLI_OK;
}
