/*
 * fuzz_bounds.c - libFuzzer target for pwb_bounds_check and, against
 * Vectorscan itself, for where lexicon matches start.
 *
 * Once per process: the shipped registry (PWB_SOURCE_DIR/policies, or
 * ../../policies from the build's tests folder) and a small lexicon
 * written under $TMPDIR with words, phrases and regular expressions of
 * the shapes the shipped lexicons use (alternations, optional groups,
 * \s+, classes, non-ASCII letters), compiled into detectors; and each
 * entry compiled alone with start-of-match tracking, as a reference.
 *
 * Each input is a text. It is checked under the org `open-studio`, and
 * every lexicon match in it (as the scan sees the text) has its start
 * found by pwb__lexicon_start() and by the reference. Beyond memory
 * errors and leaks, the target aborts when: the check fails on a text
 * within the size cap; a span lies outside the text or ends before it
 * starts; a verdict is not one of the four; or a start found differs from
 * the one Vectorscan reports.
 */
#include "../som_ref.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static void die(const char *what)
{
	fprintf(stderr, "fuzz_bounds: %s\n", what);
	abort();
}

static const char lexicon[] =
    "hate\tword\t0.9\tvermin\tdehumanising word\n"
    "hate\tphrase\t0.9\tgo back to\tnote\n"
    "profanity\tword\t0.5\tscheiße\tGerman expletive\n"
    "profanity\tword\t0.5\tass\texpletive\n"
    "profanity\tregex\t0.5\t\\bschei(ß|ss)e?\texpletive\n"
    "hate\tregex\t0.9\tyou(['’]re|\\s+are|r)\\s+(such\\s+|so\\s+|a\\s+)?"
    "(an?\\s+)?(stupid\\s+)?(idiot|moron|waste\\s+of\\s+space)\tinsult\n"
    "violent_crimes\tregex\t0.9\t(how\\s+(to|do\\s+i)|help\\s+me)\\s+"
    "(kill|hurt)\\s+(someone|him|her|my\\s+(boss|ex))\trequest\n"
    "violent_crimes\tregex\t0.6\t(dispose\\s+of|hide)\\s+(a|the)\\s+"
    "(dead\\s+)?body\tconcealing\n"
    "violent_crimes\tregex\t0.5\tk+i+l+l+\\s+(you|u)\tthreat\n"
    "profanity\tregex\t0.4\t[a-z]*fuck[a-z]*\tany form\n"
    "hate\tphrase\t0.8\tsale  race\tspaces\n";

static pwb_policy *policy;
static pwb_effective *eff;
static pwb_bounds *bounds;
static hs_database_t **ref;
static hs_scratch_t *ref_scratch;

static void init(void)
{
	const char *src = getenv("PWB_SOURCE_DIR");
	char pol[1024];
	snprintf(pol, sizeof(pol), "%s/policies", src && *src ? src : "../..");
	const char *tmp = getenv("TMPDIR");
	char dir[1024];
	snprintf(dir, sizeof(dir), "%s/pwb-fuzz-bounds-XXXXXX",
		 tmp && *tmp ? tmp : "/tmp");
	if (!mkdtemp(dir))
		die("mkdtemp failed");
	char path[1100];
	snprintf(path, sizeof(path), "%s/en.tsv", dir);
	FILE *f = fopen(path, "w");
	if (!f || fputs(lexicon, f) < 0 || fclose(f))
		die("cannot write the lexicon");
	pwb_diag d;
	pwb_diag_init(&d);
	if (pwb_policy_load(&policy, pol, NULL, &d))
		die("the shipped policies do not load (set PWB_SOURCE_DIR)");
	pwb_resolve_params rp = {.org = "open-studio"};
	if (pwb_policy_resolve(&eff, policy, &rp, &d))
		die("open-studio does not resolve");
	pwb_bounds_params bp = pwb_bounds_default_params();
	bp.lexicon_dir = dir;
	bp.max_text_bytes = 64 * 1024;
	if (pwb_bounds_new(&bounds, policy, &bp, &d))
		die("the fuzz lexicon does not compile");
	pwb_diag_release(&d);
	unlink(path);
	rmdir(dir);
	ref = calloc(bounds->n_entries, sizeof(*ref));
	for (size_t i = 0; ref && i < bounds->n_entries; i++)
		if (!(ref[i] =
			  som_ref_compile(&bounds->entries[i], &ref_scratch)))
			die("a reference pattern does not compile");
	if (!ref)
		die("out of memory");
}

typedef struct scan {
	const unsigned char *norm;
	size_t len;
	pwb__start_ctx starts;
} scan;

static int on_hit(unsigned id, unsigned long long from, unsigned long long to,
		  unsigned flags, void *user)
{
	(void)from;
	(void)flags;
	scan *s = user;
	if (id >= bounds->n_entries)
		return 0;
	unsigned long long want;
	if (!som_ref_start(ref[id], ref_scratch, (const char *)s->norm, s->len,
			   (size_t)to, &want))
		die("the reference does not see a match the database saw");
	size_t start;
	if (!pwb__lexicon_start(bounds, id, s->norm, (size_t)to, &s->starts,
				&start)) {
		if (s->starts.oom)
			die("out of memory finding a start");
		if (s->starts.searches && s->starts.wide)
			die("a start not found within the budget");
		return 0;
	}
	if (start != want) {
		fprintf(stderr,
			"entry %u ending at %llu: start %zu, "
			"Vectorscan says %llu\n",
			id, to, start, want);
		die("a start differs from Vectorscan's");
	}
	return 0;
}

/* The text as the scan sees it, for inputs that are already so: ASCII
 * lowercased; other inputs are compared only through the check. */
static bool as_scanned(const uint8_t *data, size_t size, unsigned char *out)
{
	for (size_t i = 0; i < size; i++) {
		unsigned char c = data[i];
		if (c == 0 || c >= 0x80)
			return false;
		out[i] = (c >= 'A' && c <= 'Z') ? (unsigned char)(c + 32) : c;
	}
	return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!bounds)
		init();
	pwb_decision *dec = NULL;
	pwb_status st = pwb_bounds_check(&dec, bounds, eff, PWB_ROLE_PROMPT,
					 (const char *)data, size, NULL);
	if (size <= 64 * 1024 && st != PWB_OK)
		die("a check failed on a text within the cap");
	if (dec) {
		int v = (int)pwb_decision_verdict(dec);
		if (v != PWB_VERDICT_ALLOW && v != PWB_VERDICT_BLOCK &&
		    v != PWB_VERDICT_REDACT && v != PWB_VERDICT_ANNOTATE)
			die("a verdict out of range");
		for (size_t c = 0; c < pwb_decision_n_categories(dec); c++) {
			const pwb_cat_decision *cd =
			    pwb_decision_category(dec, c);
			for (size_t k = 0; k < cd->n_spans; k++)
				if (cd->spans[k].start > cd->spans[k].end ||
				    cd->spans[k].end > size)
					die("a span outside the text");
		}
		pwb_decision_free(dec);
	}
	unsigned char *norm = malloc(size ? size : 1);
	if (norm && size <= 4096 && as_scanned(data, size, norm)) {
		scan s = {norm, size, {0}};
		pwb__start_init(&s.starts);
		hs_scratch_t *sc = NULL;
		if (hs_alloc_scratch(bounds->db, &sc) != HS_SUCCESS ||
		    hs_scan(bounds->db, size ? (const char *)norm : "",
			    (unsigned)size, 0, sc, on_hit, &s) != HS_SUCCESS)
			die("the scan failed");
		hs_free_scratch(sc);
		pwb__start_release(&s.starts);
	}
	free(norm);
	return 0;
}
