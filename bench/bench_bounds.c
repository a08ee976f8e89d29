/*
 * bench_bounds.c - bounds scan throughput on a mixed corpus of at least
 * 50 MB (DESIGN §13: lexicon + PII at >= 50 % of a bare Vectorscan scan
 * of the same patterns, measured in the same process).
 *
 *   build/bench/bench_bounds [--json] [--mb N] [--model FILE] [--policies DIR]
 *
 * The corpus is built in memory from the shared datasets when they are
 * there (../shared/data: moderation prompts, hh-rlhf dialogues, HateCheck
 * cases), else from generated sentences, mixed with personal data (e-mail
 * addresses, card numbers, IBANs, phone numbers) and split into documents
 * of 200 bytes to 4 KiB. Measured, on the same documents:
 *   bare_vectorscan: hs_scan of the same database, a callback that counts;
 *   lexicon_pii:     pwb_bounds_check without a model;
 *   full:            pwb_bounds_check with the linear model;
 *   linear:          the linear model's scoring alone.
 * Without --model a small model is trained on generated texts first.
 */
#include "bench.h"
#include "bounds/bounds_int.h"
#include "pwb/pwb.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* ---- the corpus ---- */

typedef struct corpus {
	pwb__buf text;
	size_t *start, *len;
	size_t n, cap;
} corpus;

static void add_source(pwb__buf *src, const char *cmd)
{
	FILE *f = popen(cmd, "r");
	if (!f)
		return;
	char buf[65536];
	size_t n;
	while ((n = fread(buf, 1, sizeof(buf), f)) > 0)
		pwb__buf_add(src, buf, n);
	pclose(f);
}

static const char *const generated[] = {
    "The committee met on Tuesday to discuss the new budget for schools. ",
    "Can you help me write a short story about a dragon who loves tea? ",
    "I think the recipe needs more garlic and a little lemon juice. ",
    "Wie viel Zucker braucht man für einen Apfelkuchen mit Streuseln? ",
    "Le train de Paris à Lyon part à huit heures et demie ce matin. ",
    "My doctor said I should rest, but how much ibuprofen should I take? ",
    "What the hell is going on with this damn printer again today? ",
    "Please summarise the attached report in three bullet points. ",
    "He said he would kill them all if they touched his car again. ",
    "Which stocks should I buy to double my savings by next year? ",
};

static const char *const pii[] = {
    "Contact jane.doe@example.org for details. ",
    "Card 4111 1111 1111 1111 expires soon. ",
    "IBAN DE89 3704 0044 0532 0130 00 please. ",
    "Call +44 20 7946 0958 after five. ",
    "Server at 192.168.10.12 is down. ",
};

static void build_corpus(corpus *c, size_t mb, const char *shared)
{
	pwb__buf src;
	pwb__buf_init(&src, 0);
	char cmd[1024];
	snprintf(cmd, sizeof(cmd),
		 "gzip -dc '%s/openai-moderation/samples-1680.jsonl.gz' "
		 "'%s/hh-rlhf/harmless-base_test.jsonl.gz' 2>/dev/null; "
		 "cat '%s/hatecheck/test_suite_cases.csv' 2>/dev/null",
		 shared, shared, shared);
	add_source(&src, cmd);
	if (src.len < 100000)
		for (int r = 0; r < 2000; r++)
			for (size_t i = 0; i < PWB_ARRAY_LEN(generated); i++)
				pwb__buf_adds(&src, generated[i]);
	pwb__buf_init(&c->text, 0);
	size_t want = mb * 1024 * 1024, at = 0;
	unsigned seed = 12345;
	while (c->text.len < want) {
		seed = seed * 1103515245u + 12345u;
		size_t len = 200 + (seed >> 8) % 3900;
		size_t start = c->text.len;
		while (c->text.len - start < len) {
			size_t take = len - (c->text.len - start);
			if (at + take > src.len)
				take = src.len - at;
			pwb__buf_add(&c->text, src.s + at, take);
			at = (at + take) % src.len;
			if ((seed >> 4) % 4 == 0)
				pwb__buf_adds(
				    &c->text,
				    pii[(seed >> 12) % PWB_ARRAY_LEN(pii)]);
			seed = seed * 1103515245u + 12345u;
		}
		if (pwb__grow((void **)&c->start, &c->cap, c->n + 1,
			      sizeof(size_t))) {
			fprintf(stderr, "bench_bounds: out of memory\n");
			exit(1);
		}
		c->start[c->n] = start;
		c->n++;
	}
	c->len = pwb__malloc(c->n * sizeof(size_t));
	for (size_t i = 0; i < c->n; i++)
		c->len[i] = (i + 1 < c->n ? c->start[i + 1] : c->text.len) -
			    c->start[i];
	pwb__buf_release(&src);
}

/* ---- a small model, when none is given ---- */

static pwb__linear *train_small(void)
{
	enum { N = 4000 };
	static const char *const labels[] = {"violent_crimes", "profanity",
					     "specialized_advice.health"};
	const char **texts = malloc(N * sizeof(char *));
	size_t *lens = malloc(N * sizeof(size_t));
	uint8_t *y = calloc(N * 3, 1);
	for (size_t i = 0; i < N; i++) {
		size_t g = i % PWB_ARRAY_LEN(generated);
		texts[i] = generated[g];
		lens[i] = strlen(generated[g]);
		y[i * 3 + 0] = g == 8;
		y[i * 3 + 1] = g == 6;
		y[i * 3 + 2] = g == 5;
	}
	pwb__linear_params lp = pwb__linear_default_params();
	lp.epochs = 2;
	pwb__linear *m = NULL;
	if (pwb__linear_train(&m, texts, lens, y, N, labels, 3, &lp, NULL)) {
		fprintf(stderr, "bench_bounds: training failed\n");
		exit(1);
	}
	free(texts);
	free(lens);
	free(y);
	return m;
}

static int count_match(unsigned id, unsigned long long from,
		       unsigned long long to, unsigned flags, void *user)
{
	(void)id, (void)from, (void)to, (void)flags;
	(*(size_t *)user)++;
	return 0;
}

static pwb_policy *load_policy(const char *dir)
{
	pwb_policy *p = NULL;
	if (pwb_policy_load(&p, dir, NULL, NULL) != PWB_OK) {
		fprintf(stderr, "bench_bounds: %s does not load\n", dir);
		exit(1);
	}
	return p;
}

static double run_check(pwb_bounds *b, const pwb_effective *e, const corpus *c)
{
	double t0 = bench_now_s();
	for (size_t i = 0; i < c->n; i++) {
		pwb_decision *d = NULL;
		if (pwb_bounds_check(&d, b, e, PWB_ROLE_RESPONSE,
				     c->text.s + c->start[i], c->len[i],
				     NULL)) {
			fprintf(stderr, "bench_bounds: check failed\n");
			exit(1);
		}
		pwb_decision_free(d);
	}
	return bench_now_s() - t0;
}

int main(int argc, char **argv)
{
	bool json = false;
	size_t mb = 50;
	const char *model = NULL;
	const char *policies = PWB_SOURCE_DIR "/policies";
	const char *shared = PWB_SOURCE_DIR "/../shared/data";
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--json"))
			json = true;
		else if (!strcmp(argv[i], "--mb") && i + 1 < argc)
			mb = strtoul(argv[++i], NULL, 10);
		else if (!strcmp(argv[i], "--model") && i + 1 < argc)
			model = argv[++i];
		else if (!strcmp(argv[i], "--policies") && i + 1 < argc)
			policies = argv[++i];
		else {
			fprintf(stderr, "Usage: bench_bounds [--json] [--mb N] "
					"[--model FILE] [--policies DIR]\n");
			return !strcmp(argv[i], "--help") ? 0 : 2;
		}
	}
	if (mb < 1)
		mb = 1;
	corpus c = {0};
	build_corpus(&c, mb, shared);
	double size_mb = (double)c.text.len / (1024.0 * 1024.0);

	pwb_policy *p = load_policy(policies);
	pwb_effective *e = NULL;
	pwb_resolve_params rp = {.org = "open-studio"};
	if (pwb_policy_resolve(&e, p, &rp, NULL)) {
		fprintf(stderr, "bench_bounds: open-studio does not resolve\n");
		return 1;
	}
	char lexdir[4096];
	snprintf(lexdir, sizeof(lexdir), "%s/lexicons", policies);
	pwb_bounds_params bp = pwb_bounds_default_params();
	bp.lexicon_dir = lexdir;
	/* Compile once for both detector sets (and keep it for next time). */
	bp.cache_dir =
	    getenv("PWB_CACHE_DIR") ? getenv("PWB_CACHE_DIR") : "/tmp";
	pwb_bounds *b = NULL;
	pwb_diag d;
	pwb_diag_init(&d);
	if (pwb_bounds_new(&b, p, &bp, &d)) {
		fprintf(stderr, "bench_bounds: the detectors do not build\n");
		return 1;
	}
	/* Bare Vectorscan: the same database, a counting callback. */
	hs_scratch_t *scratch = NULL;
	hs_clone_scratch(b->scratch.proto, &scratch);
	size_t matches = 0;
	double t0 = bench_now_s();
	for (size_t i = 0; i < c.n; i++)
		hs_scan(b->db, c.text.s + c.start[i], (unsigned)c.len[i], 0,
			scratch, count_match, &matches);
	double bare = bench_now_s() - t0;
	hs_free_scratch(scratch);
	double lexpii = run_check(b, e, &c);

	pwb__linear *m = NULL;
	char tmp[] = "/tmp/pwb-bench-model-XXXXXX";
	if (!model) {
		m = train_small();
		int fd = mkstemp(tmp);
		if (fd >= 0)
			close(fd);
		pwb_diag sd;
		pwb_diag_init(&sd);
		if (pwb__linear_save(m, tmp, &sd)) {
			fprintf(stderr, "bench_bounds: %s\n",
				sd.n ? sd.entries[0].message : "cannot save");
			pwb_diag_release(&sd);
			return 1;
		}
		pwb_diag_release(&sd);
		model = tmp;
	}
	pwb_bounds *bm = NULL;
	bp.model = model;
	if (pwb_bounds_new(&bm, p, &bp, &d)) {
		fprintf(stderr, "bench_bounds: %s does not load\n", model);
		return 1;
	}
	double full = run_check(bm, e, &c);
	double *scores =
	    calloc(pwb__linear_n_labels(bm->model), sizeof(double));
	t0 = bench_now_s();
	for (size_t i = 0; i < c.n; i++)
		pwb__linear_score(bm->model, c.text.s + c.start[i], c.len[i],
				  scores);
	double lin = bench_now_s() - t0;
	if (m)
		unlink(tmp);
	if (json)
		printf("{\"bare_vectorscan_mb_s\": %.1f, \"lexicon_pii_mb_s\": "
		       "%.1f, \"full_mb_s\": %.1f, \"linear_mb_s\": %.1f, "
		       "\"ratio_lexicon_pii_to_bare\": %.3f, \"corpus_mb\": "
		       "%.1f, \"documents\": %zu, \"patterns\": %zu, "
		       "\"matches\": %zu}\n",
		       size_mb / bare, size_mb / lexpii, size_mb / full,
		       size_mb / lin, bare / lexpii, size_mb, c.n,
		       b->n_entries + PWB__PII_N, matches);
	else
		printf("corpus: %.1f MB in %zu documents, %zu patterns, %zu "
		       "raw matches\n"
		       "  bare Vectorscan:   %8.1f MB/s\n"
		       "  lexicon + PII:     %8.1f MB/s (ratio %.3f; budget >= "
		       "0.5)\n"
		       "  full (+ linear):   %8.1f MB/s\n"
		       "  linear alone:      %8.1f MB/s\n",
		       size_mb, c.n, b->n_entries + PWB__PII_N, matches,
		       size_mb / bare, size_mb / lexpii, bare / lexpii,
		       size_mb / full, size_mb / lin);
	free(scores);
	pwb__linear_free(m);
	pwb_bounds_free(bm);
	pwb_bounds_free(b);
	pwb_effective_free(e);
	pwb_policy_free(p);
	pwb_diag_release(&d);
	pwb__buf_release(&c.text);
	free(c.start);
	free(c.len);
	return 0;
}
