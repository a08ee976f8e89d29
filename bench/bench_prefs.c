/*
 * bench_prefs.c - the preference learner against its budgets (DESIGN §13:
 * update <= 5 µs per event, scoring 8 candidates <= 10 µs after features,
 * median per-user model <= 4 KiB).
 *
 *   build/bench/bench_prefs [--json] [--events-1m N]
 *
 * Responses come from the simulator (pwb simulate prefs, seed 1): their
 * features are computed once, then
 *   update_ns        one pwb_prefs_update_pair per event, 1000 users taking
 *                    turns, 200,000 events, each timed (p50, p99);
 *   score8_ns        pwb_prefs_score of 8 candidates for a trained user;
 *   features_mb_s    pwb_prefs_features_compute over the response texts;
 *   bytes_per_user   after 10, 100 and 1000 events (200 users each);
 *   memory_1m_users_bytes  the whole model after 1,000,000 users gave
 *                    --events-1m events each (default 5), as counted by
 *                    pwb_prefs_model_bytes, and the process's resident
 *                    growth.
 * Baselines, in the same process: baseline_dot_ns, the same sparse
 * vectors' dot product with a dense array (what any linear score costs);
 * baseline_scan_mb_s, one pass over the same texts classifying each byte.
 */
#include "bench.h"
#include "prefs/prefs_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static size_t rss_bytes(void)
{
	FILE *f = fopen("/proc/self/statm", "r");
	if (!f)
		return 0;
	unsigned long size = 0, res = 0;
	if (fscanf(f, "%lu %lu", &size, &res) != 2)
		res = 0;
	fclose(f);
	return (size_t)res * (size_t)sysconf(_SC_PAGESIZE);
}

/* ---- texts from the simulator ---- */

typedef struct texts {
	char **s;
	size_t n, cap, bytes;
} texts;

static void add_text(texts *t, const char *s)
{
	if (t->n == t->cap) {
		t->cap = t->cap ? 2 * t->cap : 1024;
		t->s = realloc(t->s, t->cap * sizeof(*t->s));
		if (!t->s)
			exit(1);
	}
	t->s[t->n++] = strdup(s);
	t->bytes += strlen(s);
}

static int collect(void *ctx, const char *line, size_t len)
{
	pwb_feedback_set *s = ctx;
	return pwb_feedback_parse(s, line, len, NULL, 1, NULL) ? -1 : 0;
}

static volatile double sink;

int main(int argc, char **argv)
{
	bool as_json = false;
	size_t events_1m = 5;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--json"))
			as_json = true;
		else if (!strcmp(argv[i], "--events-1m") && i + 1 < argc)
			events_1m = strtoul(argv[++i], NULL, 10);
		else {
			fprintf(stderr, "usage: bench_prefs [--json] "
					"[--events-1m N]\n");
			return 2;
		}
	}
	pwb_feedback_set *set = NULL;
	pwb_feedback_set_new(&set);
	pwb_prefs_sim_params sp = pwb_prefs_sim_default_params();
	sp.users = 100;
	sp.events = 20;
	sp.rating_fraction = 0;
	if (pwb_prefs_simulate(&sp, collect, set, NULL))
		return 1;
	texts t = {0};
	for (size_t i = 0; i < pwb_feedback_n(set); i++) {
		const pwb_feedback *e = pwb_feedback_get(set, i);
		add_text(&t, e->chosen);
		add_text(&t, e->rejected);
	}
	pwb_prefs_model *m = NULL;
	if (pwb_prefs_model_new(&m, NULL, NULL))
		return 1;
	pwb_prefs_features *f = malloc(t.n * sizeof(*f));
	if (!f)
		return 1;

	/* Features, and the byte-scan baseline over the same texts. */
	double best_feat = 0, best_scan = 0;
	for (int rep = 0; rep < 5; rep++) {
		double t0 = bench_now_ns();
		for (size_t i = 0; i < t.n; i++)
			pwb_prefs_features_compute(
			    &f[i], m, t.s[i], strlen(t.s[i]), NULL, NULL, NULL);
		double t1 = bench_now_ns();
		size_t letters = 0;
		for (size_t i = 0; i < t.n; i++)
			for (const char *c = t.s[i]; *c; c++)
				letters += (*c | 32) >= 'a' && (*c | 32) <= 'z';
		double t2 = bench_now_ns();
		sink = (double)letters;
		double fm = (double)t.bytes / ((t1 - t0) * 1e-9) / 1e6;
		double sm = (double)t.bytes / ((t2 - t1) * 1e-9) / 1e6;
		if (fm > best_feat)
			best_feat = fm;
		if (sm > best_scan)
			best_scan = sm;
	}

	/* Updates: 1000 users taking turns over the pairs. */
	const size_t n_up = 200000, n_pairs = t.n / 2;
	double *ns = malloc(n_up * sizeof(*ns));
	double *base = malloc(n_up * sizeof(*base));
	char uid[32];
	for (size_t k = 0; k < n_up; k++) {
		size_t p = (k * 7919) % n_pairs;
		snprintf(uid, sizeof(uid), "user%zu", k % 1000);
		double t0 = bench_now_ns();
		pwb_prefs_update_pair(m, uid, &f[2 * p], &f[2 * p + 1], NULL);
		double t1 = bench_now_ns();
		ns[k] = t1 - t0;
		/* Baseline: the pair's dot products with a dense array. */
		double s = 0;
		t0 = bench_now_ns();
		for (uint32_t j = 0; j < f[2 * p].n; j++)
			s += m->pop[f[2 * p].idx[j]].w * f[2 * p].val[j];
		for (uint32_t j = 0; j < f[2 * p + 1].n; j++)
			s -=
			    m->pop[f[2 * p + 1].idx[j]].w * f[2 * p + 1].val[j];
		t1 = bench_now_ns();
		sink = s;
		base[k] = t1 - t0;
	}
	double up50 = bench_pct(ns, n_up, 0.5),
	       up99 = bench_pct(ns, n_up, 0.99);
	double bd50 = bench_pct(base, n_up, 0.5),
	       bd99 = bench_pct(base, n_up, 0.99);

	/* Scoring 8 candidates for a trained user. */
	const size_t n_sc = 20000;
	pwb_prefs_features *c8 = malloc(8 * sizeof(*c8));
	double scores[8];
	for (size_t k = 0; k < n_sc; k++) {
		for (int j = 0; j < 8; j++)
			c8[j] = f[(k * 8 + (size_t)j) % t.n];
		snprintf(uid, sizeof(uid), "user%zu", k % 1000);
		double t0 = bench_now_ns();
		pwb_prefs_score(m, uid, c8, 8, NULL, PWB_PREFS_PERSONAL,
				scores);
		double t1 = bench_now_ns();
		sink = scores[0];
		ns[k] = t1 - t0;
	}
	double sc50 = bench_pct(ns, n_sc, 0.5),
	       sc99 = bench_pct(ns, n_sc, 0.99);
	pwb_prefs_model_free(m);

	/* Bytes per user after 10, 100 and 1000 events. */
	static const size_t after[3] = {10, 100, 1000};
	double med[3], mx[3];
	for (int q = 0; q < 3; q++) {
		pwb_prefs_model_new(&m, NULL, NULL);
		const size_t nu = 200;
		for (size_t e = 0; e < after[q]; e++)
			for (size_t u = 0; u < nu; u++) {
				size_t p = (e * 131 + u * 7919) % n_pairs;
				snprintf(uid, sizeof(uid), "user%zu", u);
				pwb_prefs_update_pair(m, uid, &f[2 * p],
						      &f[2 * p + 1], NULL);
			}
		for (size_t u = 0; u < nu; u++) {
			snprintf(uid, sizeof(uid), "user%zu", u);
			ns[u] = (double)pwb_prefs_user_bytes(m, uid);
		}
		mx[q] = bench_pct(ns, nu, 1.0);
		med[q] = bench_pct(ns, nu, 0.5);
		pwb_prefs_model_free(m);
	}

	/* A million users. */
	size_t rss0 = rss_bytes();
	pwb_prefs_model_new(&m, NULL, NULL);
	double t0 = bench_now_ns();
	for (size_t e = 0; e < events_1m; e++)
		for (size_t u = 0; u < 1000000; u++) {
			size_t p = (e * 131 + u * 7919) % n_pairs;
			snprintf(uid, sizeof(uid), "user%zu", u);
			pwb_prefs_update_pair(m, uid, &f[2 * p], &f[2 * p + 1],
					      NULL);
		}
	double secs_1m = (bench_now_ns() - t0) * 1e-9;
	size_t model_1m = pwb_prefs_model_bytes(m);
	size_t rss_1m = rss_bytes() - rss0;
	pwb_prefs_model_free(m);

	if (as_json) {
		printf("{\n  \"update_ns\": {\"p50\": %.0f, \"p99\": %.0f},\n",
		       up50, up99);
		printf("  \"baseline_dot_ns\": {\"p50\": %.0f, \"p99\": "
		       "%.0f},\n",
		       bd50, bd99);
		printf("  \"score8_ns\": {\"p50\": %.0f, \"p99\": %.0f},\n",
		       sc50, sc99);
		printf("  \"features_mb_s\": %.1f,\n", best_feat);
		printf("  \"baseline_scan_mb_s\": %.1f,\n", best_scan);
		printf("  \"bytes_per_user\": {");
		for (int q = 0; q < 3; q++)
			printf("%s\"%zu\": {\"median\": %.0f, \"max\": %.0f}",
			       q ? ", " : "", after[q], med[q], mx[q]);
		printf("},\n");
		printf("  \"memory_1m_users_bytes\": %zu,\n", model_1m);
		printf("  \"memory_1m_users_rss_bytes\": %zu,\n", rss_1m);
		printf("  \"events_per_user_1m\": %zu,\n", events_1m);
		printf("  \"seconds_1m\": %.1f\n}\n", secs_1m);
	} else {
		printf("update: p50 %.0f ns, p99 %.0f ns (baseline dot: p50 "
		       "%.0f ns)\n",
		       up50, up99, bd50);
		printf("score 8: p50 %.0f ns, p99 %.0f ns\n", sc50, sc99);
		printf("features: %.1f MB/s (baseline scan %.1f MB/s)\n",
		       best_feat, best_scan);
		for (int q = 0; q < 3; q++)
			printf("bytes per user after %zu events: median %.0f, "
			       "max %.0f\n",
			       after[q], med[q], mx[q]);
		printf("1M users x %zu events: model %zu bytes, rss +%zu "
		       "bytes, %.1f s\n",
		       events_1m, model_1m, rss_1m, secs_1m);
	}
	for (size_t i = 0; i < t.n; i++)
		free(t.s[i]);
	free(t.s);
	free(f);
	free(c8);
	free(ns);
	free(base);
	pwb_feedback_set_free(set);
	return 0;
}
