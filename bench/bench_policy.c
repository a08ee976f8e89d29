/*
 * bench_policy.c - resolve latency, cached and cold (DESIGN §13: cached
 * <= 1 us, cold <= 50 us for 30 categories, 20 dimensions and a 3-file
 * jurisdiction chain).
 *
 *   build/bench/bench_policy [--json] [--iterations N] [--policies DIR]
 *
 * It generates that registry and chain in a temporary folder, and also
 * measures the shipped policies (acme-tutor). The baseline, run in the same
 * process, is the FNV-1a hash of the same request key: the least work any
 * cache lookup must do.
 */
#include "bench.h"
#include "policy/policy_int.h"
#include "pwb/pwb.h"
#include "util/util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define N_CATS 30
#define N_DIMS 20

static void write_file(const char *dir, const char *rel, const char *text)
{
	char path[512];
	snprintf(path, sizeof(path), "%s/%s", dir, rel);
	FILE *f = fopen(path, "w");
	if (!f || fputs(text, f) < 0 || fclose(f) != 0) {
		fprintf(stderr, "bench_policy: cannot write %s\n", path);
		exit(1);
	}
}

/* 30 categories (10 roots with 2 children each), 20 dimensions (15
 * numeric, 5 enum), three law files a <- b <- c and an org under c. */
static void generate(const char *dir)
{
	pwb__buf b;
	char sub[512];
	snprintf(sub, sizeof(sub), "%s/law", dir);
	mkdir(sub, 0755);
	snprintf(sub, sizeof(sub), "%s/org", dir);
	mkdir(sub, 0755);
	pwb__buf_init(&b, 0);
	pwb__buf_adds(&b, "registry: bench\nattributes:\n"
			  "  user.age: {type: number}\n"
			  "  user.age_verified: {type: bool}\n"
			  "  user.country: {type: string}\n"
			  "  user.religion: {type: string, special: true}\n"
			  "categories:\n");
	for (int i = 0; i < N_CATS / 3; i++) {
		pwb__buf_addf(&b, "  c%d: {description: root %d}\n", i, i);
		for (int j = 0; j < 2; j++)
			pwb__buf_addf(&b, "  c%d.k%d: {description: child}\n",
				      i, j);
	}
	pwb__buf_adds(&b, "dimensions:\n");
	for (int i = 0; i < N_DIMS; i++) {
		if (i < 15)
			pwb__buf_addf(
			    &b, "  d%d: {type: number, default: 0.5}\n", i);
		else
			pwb__buf_addf(
			    &b,
			    "  d%d: {type: enum, values: [a, b, c, d], "
			    "default: a}\n",
			    i);
	}
	write_file(dir, "categories.yaml", b.s);
	static const char *const perms[] = {"allow", "opt_out", "opt_in"};
	const char *ids[] = {"a", "b", "c"};
	for (int f = 0; f < 3; f++) {
		pwb__buf_release(&b);
		pwb__buf_addf(&b, "tier: law\nid: %s\n", ids[f]);
		if (f)
			pwb__buf_addf(&b, "extends: %s\n", ids[f - 1]);
		pwb__buf_adds(&b, "categories:\n");
		for (int i = 0; i < N_CATS / 3; i++) {
			/* Each file is stricter than the one it extends. */
			if (i % 3 == 0)
				pwb__buf_addf(&b,
					      "  c%d: {permission: %s, when: "
					      "\"user.age >= 18 && "
					      "user.age_verified\", else: "
					      "forbid, basis: \"rule %d\"}\n",
					      i, perms[f], i);
			else
				pwb__buf_addf(
				    &b,
				    "  c%d.k%d: {permission: %s, basis: "
				    "\"rule %d\"}\n",
				    i, f % 2, perms[f], i);
		}
		pwb__buf_adds(&b, "dimensions:\n");
		for (int i = 0; i < N_DIMS; i++) {
			if (i < 15)
				pwb__buf_addf(&b,
					      "  d%d: {range: [%.1f, %.1f], "
					      "user_adjustable: true}\n",
					      i, 0.1 * f, 1.0 - 0.1 * f);
			else if (f == 0)
				pwb__buf_addf(
				    &b, "  d%d: {allowed: [a, b, c]}\n", i);
		}
		pwb__buf_addf(&b,
			      "obligations:\n  o%d: {kind: disclose_ai}\n"
			      "learning: {forbid_attributes: [religion], "
			      "retention_days: %d}\n",
			      f, 400 - 100 * f);
		char rel[32];
		snprintf(rel, sizeof(rel), "law/%s.yaml", ids[f]);
		write_file(dir, rel, b.s);
	}
	pwb__buf_release(&b);
	pwb__buf_adds(&b, "tier: org\nid: bench\njurisdictions: [c]\n"
			  "candidates: 4\ncategories:\n");
	for (int i = 0; i < N_CATS / 3; i++)
		pwb__buf_addf(&b, "  c%d.k1: {permission: forbid}\n", i);
	pwb__buf_adds(&b, "dimensions:\n");
	for (int i = 0; i < 15; i++)
		pwb__buf_addf(&b, "  d%d: {range: [0.3, 0.7], default: 0.4}\n",
			      i);
	write_file(dir, "org/bench.yaml", b.s);
	pwb__buf_release(&b);
}

typedef struct result {
	bench_p50_p99 cached, cold;
	double baseline_ns;
} result;

static pwb_policy *load_or_die(const char *dir, size_t cache)
{
	pwb_policy_params pp = pwb_policy_default_params();
	pp.cache_entries = cache;
	pwb_policy *p = NULL;
	pwb_diag d;
	pwb_diag_init(&d);
	if (pwb_policy_load(&p, dir, &pp, &d) != PWB_OK) {
		char line[2048];
		for (size_t i = 0; i < d.n; i++) {
			pwb_diag_format(&d.entries[i], line, sizeof(line));
			fprintf(stderr, "%s\n", line);
		}
		fprintf(stderr, "bench_policy: %s does not load\n", dir);
		exit(1);
	}
	pwb_diag_release(&d);
	return p;
}

static result measure(const char *dir, const char *org, pwb_settings *s,
		      pwb_attrs *a, size_t iters)
{
	result r;
	double *t = malloc(iters * sizeof(double));
	pwb_resolve_params rp = {org, NULL, 0, s, a};
	pwb_effective *e;
	/* Cold: the cache is off, so every call resolves from the rules. */
	pwb_policy *p = load_or_die(dir, 0);
	for (size_t i = 0; i < iters; i++) {
		double t0 = bench_now_ns();
		pwb_status rc = pwb_policy_resolve(&e, p, &rp, NULL);
		t[i] = bench_now_ns() - t0;
		if (rc) {
			fprintf(stderr, "bench_policy: resolve failed: %s\n",
				pwb_status_str(rc));
			exit(1);
		}
		pwb_effective_free(e);
	}
	r.cold = bench_percentiles(t, iters);
	pwb_policy_free(p);
	p = load_or_die(dir, 4096);
	pwb_policy_resolve(&e, p, &rp, NULL);
	pwb_effective_free(e);
	for (size_t i = 0; i < iters; i++) {
		double t0 = bench_now_ns();
		pwb_policy_resolve(&e, p, &rp, NULL);
		t[i] = bench_now_ns() - t0;
		pwb_effective_free(e);
	}
	r.cached = bench_percentiles(t, iters);
	pwb_policy_free(p);
	/* Baseline: hashing a key of the same inputs. */
	pwb__buf key;
	pwb__buf_init(&key, 0);
	pwb__buf_add(&key, org, strlen(org) + 1);
	pwb__settings_key(s, &key);
	pwb__attrs_key(a, &key);
	volatile uint64_t sink = 0;
	double t0 = bench_now_ns();
	for (size_t i = 0; i < iters; i++)
		sink += pwb__fnv1a(PWB__FNV_INIT + i, key.s, key.len);
	r.baseline_ns = (bench_now_ns() - t0) / (double)iters;
	(void)sink;
	pwb__buf_release(&key);
	free(t);
	return r;
}

static void print_stats(const char *name, bench_p50_p99 s, const char *end)
{
	printf("\"%s\": {\"p50\": %.0f, \"p99\": %.0f}%s", name, s.p50, s.p99,
	       end);
}

int main(int argc, char **argv)
{
	bool json = false;
	size_t iters = 20000;
	const char *policies = PWB_SOURCE_DIR "/policies";
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--json"))
			json = true;
		else if (!strcmp(argv[i], "--iterations") && i + 1 < argc)
			iters = strtoul(argv[++i], NULL, 10);
		else if (!strcmp(argv[i], "--policies") && i + 1 < argc)
			policies = argv[++i];
		else {
			fprintf(stderr,
				"Usage: bench_policy [--json] [--iterations N] "
				"[--policies DIR]\n");
			return !strcmp(argv[i], "--help") ? 0 : 2;
		}
	}
	if (iters < 100)
		iters = 100;
	char dir[] = "/tmp/pwb-bench-policy-XXXXXX";
	if (!mkdtemp(dir)) {
		perror("mkdtemp");
		return 1;
	}
	generate(dir);
	pwb_settings *s;
	pwb_attrs *a;
	pwb_settings_new(&s);
	pwb_attrs_new(&a);
	pwb_attrs_set_number(a, "user.age", 30);
	pwb_attrs_set_bool(a, "user.age_verified", true);
	pwb_attrs_set_string(a, "user.country", "de");
	pwb_settings_set_category(s, "c1", false);
	pwb_settings_set_number(s, "d0", 0.5);
	pwb_settings_set_string(s, "d15", "b");
	result gen = measure(dir, "bench", s, a, iters);
	pwb_settings_free(s);
	pwb_settings_new(&s);
	pwb_settings_set_category(s, "profanity", true);
	pwb_settings_set_number(s, "humour", 0.4);
	pwb_settings_set_string(s, "language", "en");
	pwb_attrs_free(a);
	pwb_attrs_new(&a);
	pwb_attrs_set_number(a, "user.age", 12);
	result shipped = measure(policies, "acme-tutor", s, a, iters);
	pwb_settings_free(s);
	pwb_attrs_free(a);
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "bench_policy: could not remove %s\n", dir);
	if (json) {
		printf("{");
		print_stats("cached_resolve_ns", gen.cached, ", ");
		print_stats("cold_resolve_ns", gen.cold, ", ");
		printf("\"baseline_key_hash_ns\": %.1f, ", gen.baseline_ns);
		printf(
		    "\"generated\": {\"categories\": %d, \"dimensions\": %d, "
		    "\"chain_files\": 3}, ",
		    N_CATS, N_DIMS);
		printf("\"shipped\": {\"org\": \"acme-tutor\", ");
		print_stats("cached_resolve_ns", shipped.cached, ", ");
		print_stats("cold_resolve_ns", shipped.cold, "}, ");
		printf("\"iterations\": %zu}\n", iters);
	} else {
		printf("generated set (%d categories, %d dimensions, 3-file "
		       "chain), %zu iterations\n",
		       N_CATS, N_DIMS, iters);
		printf("  cached resolve: p50 %.0f ns, p99 %.0f ns (budget "
		       "1000)\n",
		       gen.cached.p50, gen.cached.p99);
		printf("  cold resolve:   p50 %.0f ns, p99 %.0f ns (budget "
		       "50000)\n",
		       gen.cold.p50, gen.cold.p99);
		printf("  baseline key hash: %.1f ns\n", gen.baseline_ns);
		printf("shipped set (acme-tutor)\n");
		printf("  cached resolve: p50 %.0f ns, p99 %.0f ns\n",
		       shipped.cached.p50, shipped.cached.p99);
		printf("  cold resolve:   p50 %.0f ns, p99 %.0f ns\n",
		       shipped.cold.p50, shipped.cold.p99);
	}
	return 0;
}
