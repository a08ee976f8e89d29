/*
 * bench_pipeline.c - what the pipeline adds around generation (DESIGN
 * §13): resolve, input rails, the system prompt, output rails on 4
 * candidates of 1 KB, features and scoring, obligations and the decision
 * record on SQLite, with an engine that answers at once.
 *
 *   build/bench/bench_pipeline [--json] [--requests N] [--db sqlite:PATH]
 *
 * The instant engine is an engine of this file: it returns 4 fixed
 * candidates of about 1 KB without computing anything, so every
 * microsecond measured is the pipeline's. Reported: the whole request,
 * and the same without a store (no decision record), p50 and p99.
 */
#include "bench.h"
#include "engine/engine_int.h"
#include "pwb/pwb.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define N_CANDS 4

static char cands[N_CANDS][1200];

static pwb_status instant_generate(pwb_engine *e, const pwb_chat_msg *msgs,
				   size_t n_msgs, const pwb_gen_params *p,
				   pwb_generation *out, pwb_diag *diag)
{
	(void)e;
	(void)msgs;
	(void)n_msgs;
	(void)diag;
	out->cands = calloc(p->n, sizeof(*out->cands));
	if (!out->cands)
		return PWB_ENOMEM;
	out->n = p->n;
	for (size_t i = 0; i < p->n; i++) {
		out->cands[i].text = strdup(cands[i % N_CANDS]);
		if (!out->cands[i].text)
			return PWB_ENOMEM;
		out->cands[i].len = strlen(out->cands[i].text);
		out->cands[i].tokens = out->cands[i].len / 4;
	}
	return PWB_OK;
}

static void instant_destroy(pwb_engine *e)
{
	(void)e;
}

static const pwb__engine_ops instant_ops = {
    .generate = instant_generate,
    .destroy = instant_destroy,
};

static void make_candidates(void)
{
	static const char *const sentences[] = {
	    "The water cycle moves water between the sea, the air and the "
	    "land. ",
	    "Sunlight warms the oceans, and water evaporates into the air. ",
	    "As the vapour rises it cools and condenses into clouds. ",
	    "When the droplets grow heavy they fall as rain or snow. ",
	    "Rivers carry the water back to the sea, and the cycle begins "
	    "again. ",
	};
	for (int c = 0; c < N_CANDS; c++) {
		size_t len = 0;
		for (int k = c; len + 120 < 1024; k++) {
			const char *s = sentences[k % 5];
			memcpy(cands[c] + len, s, strlen(s));
			len += strlen(s);
		}
		cands[c][len] = '\0';
	}
}

static pwb_bounds *open_bounds(pwb_policy *pol)
{
	pwb_bounds_params bp = pwb_bounds_default_params();
	bp.lexicon_dir = PWB_SOURCE_DIR "/policies/lexicons";
	bp.cache_dir = getenv("PWB_CACHE_DIR");
	pwb_bounds *b = NULL;
	if (pwb_bounds_new(&b, pol, &bp, NULL))
		return NULL;
	return b;
}

/* p50 and p99 in µs of `n` requests on pipeline pl. */
static bench_p50_p99 measure(pwb_pipeline *pl, size_t n)
{
	double *t = calloc(n, sizeof(double));
	pwb_chat_msg m = {"user",
			  "Explain the water cycle to a ten-year-old, please."};
	for (size_t i = 0; t && i < n; i++) {
		pwb_request req = {.org = "acme-tutor",
				   .user = "bench-user",
				   .msgs = &m,
				   .n_msgs = 1,
				   .n = N_CANDS,
				   .seed = i + 1};
		pwb_response *r = NULL;
		double t0 = bench_now_ns();
		pwb_status st = pwb_pipeline_chat(pl, &req, &r, NULL);
		t[i] = (bench_now_ns() - t0) / 1e3;
		if (st || !r || r->blocked) {
			fprintf(stderr, "bench_pipeline: the request failed "
					"(%s)\n",
				st ? pwb_status_str(st) : "blocked");
			exit(1);
		}
		pwb_response_free(r);
	}
	bench_p50_p99 p = t ? bench_percentiles(t, n) : (bench_p50_p99){0, 0};
	free(t);
	return p;
}

static pwb_pipeline *open_pipeline(pwb_policy *pol, pwb_bounds *b,
				   pwb_engine *e, pwb_store *s)
{
	pwb_pipeline_params pp = pwb_pipeline_default_params();
	pp.policy = pol;
	pp.bounds = b;
	pp.engine = e;
	pp.store = s;
	pwb_pipeline *pl = NULL;
	return pwb_pipeline_new(&pl, &pp, NULL) ? NULL : pl;
}

int main(int argc, char **argv)
{
	size_t n = 2000;
	bool json = false;
	char db[512];
	snprintf(db, sizeof(db), "sqlite:/tmp/pwb-bench-pipeline-%d.db",
		 (int)getpid());
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--json"))
			json = true;
		else if (!strcmp(argv[i], "--requests") && i + 1 < argc)
			n = (size_t)strtoul(argv[++i], NULL, 10);
		else if (!strcmp(argv[i], "--db") && i + 1 < argc)
			snprintf(db, sizeof(db), "%s", argv[++i]);
	}
	if (n < 1 || n > 10000000) {
		fprintf(stderr, "bench_pipeline: --requests must be 1 to "
				"10000000\n");
		return 2;
	}
	make_candidates();
	pwb_policy *pol = NULL;
	pwb_policy_params pp = pwb_policy_default_params();
	if (pwb_policy_load(&pol, PWB_SOURCE_DIR "/policies", &pp, NULL)) {
		fprintf(stderr, "bench_pipeline: cannot load the policies\n");
		return 1;
	}
	pwb_bounds *b = open_bounds(pol);
	pwb_engine instant = {.ops = &instant_ops, .name = "instant"};
	pwb_store *s = NULL;
	if (!b || pwb_store_open(&s, db, NULL, NULL)) {
		fprintf(stderr, "bench_pipeline: cannot open bounds or %s\n",
			db);
		return 1;
	}
	pwb_pipeline *with = open_pipeline(pol, b, &instant, s);
	pwb_pipeline *without = open_pipeline(pol, b, &instant, NULL);
	if (!with || !without)
		return 1;
	measure(without, n / 10 + 1); /* warm up */
	bench_p50_p99 nostore = measure(without, n);
	bench_p50_p99 full = measure(with, n);
	if (json)
		printf("{\"overhead_us\": {\"p50\": %.1f, \"p99\": %.1f}, "
		       "\"without_store_us\": {\"p50\": %.1f, \"p99\": %.1f}, "
		       "\"engine\": \"instant\", \"candidates\": %d, "
		       "\"requests\": %zu, \"store\": \"%s\"}\n",
		       full.p50, full.p99, nostore.p50, nostore.p99, N_CANDS, n,
		       db);
	else
		printf("pipeline overhead: p50 %.1f us, p99 %.1f us (%s); "
		       "without a store: p50 %.1f us, p99 %.1f us\n",
		       full.p50, full.p99, db, nostore.p50, nostore.p99);
	pwb_pipeline_free(with);
	pwb_pipeline_free(without);
	pwb_store_free(s);
	pwb_bounds_free(b);
	pwb_policy_free(pol);
	if (!strncmp(db, "sqlite:/tmp/pwb-bench-pipeline-", 31)) {
		static const char *const ext[] = {"", "-wal", "-shm"};
		for (int i = 0; i < 3; i++) {
			char path[600];
			snprintf(path, sizeof(path), "%s%s", db + 7, ext[i]);
			unlink(path);
		}
	}
	return 0;
}
