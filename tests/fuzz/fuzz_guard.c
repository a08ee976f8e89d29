/*
 * fuzz_guard.c - libFuzzer target for the reading of a guard judge's
 * answer (src/bounds/guard.c) through pwb_bounds_check.
 *
 * Once per process: a policy folder under $TMPDIR with three categories
 * judged by the guard (codes S1, S10 and one without a code), compiled
 * into detectors whose guard callback answers with the fuzz input.
 *
 * Each input is the judge's answer to one check. Beyond memory errors and
 * leaks, the target aborts when: the check fails with anything but
 * PWB_EPARSE (an unreadable answer: the caller refuses), or succeeds with
 * a verdict that is not one of the four; an answer whose first line is
 * "safe" does not allow; or one whose first line is "unsafe" does not
 * block (every guard category is forbidden).
 */
#include "pwb/pwb.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static pwb_policy *policy;
static pwb_effective *eff;
static pwb_bounds *bounds;
static const uint8_t *answer_data;
static size_t answer_len;

static void die(const char *what)
{
	fprintf(stderr, "fuzz_guard: %s\n", what);
	abort();
}

static void write_file(const char *dir, const char *name, const char *text)
{
	char path[1200];
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	FILE *f = fopen(path, "w");
	if (!f || fputs(text, f) < 0 || fclose(f))
		die("cannot write the policy folder");
}

/* The judge: answers with the fuzz input (NUL bytes end it, as they would
 * end any C string an engine returns). */
static pwb_status judge(void *user, const char *prompt, char **answer,
			pwb_diag *diag)
{
	(void)user;
	(void)prompt;
	(void)diag;
	*answer = malloc(answer_len + 1);
	if (!*answer)
		return PWB_ENOMEM;
	memcpy(*answer, answer_data, answer_len);
	(*answer)[answer_len] = '\0';
	return PWB_OK;
}

static void init(void)
{
	const char *tmp = getenv("TMPDIR");
	char dir[1024], sub[1100];
	snprintf(dir, sizeof(dir), "%s/pwb-fuzz-guard-XXXXXX",
		 tmp && *tmp ? tmp : "/tmp");
	if (!mkdtemp(dir))
		die("mkdtemp failed");
	const char *subs[] = {"law", "org", "lexicons"};
	for (size_t i = 0; i < 3; i++) {
		snprintf(sub, sizeof(sub), "%s/%s", dir, subs[i]);
		mkdir(sub, 0755);
	}
	write_file(dir, "categories.yaml",
		   "registry: fuzz\ncategories:\n"
		   "  crimes: {description: \"Crimes.\", llama_guard: S1,\n"
		   "           detectors: {guard: {threshold: 0.5}}}\n"
		   "  hate: {llama_guard: S10, detectors: {guard: "
		   "{threshold: 0.5}}}\n"
		   "  other: {detectors: {guard: {threshold: 0.5}}}\n"
		   "dimensions:\n  language: {type: enum, default: en}\n");
	write_file(dir, "law/l.yaml",
		   "tier: law\nid: l\ncategories:\n"
		   "  crimes: {permission: forbid, basis: \"Law\"}\n"
		   "  hate: {permission: forbid, basis: \"Law\"}\n"
		   "  other: {permission: forbid, basis: \"Law\"}\n");
	write_file(dir, "org/o.yaml", "tier: org\nid: o\njurisdictions: [l]\n");
	pwb_diag d;
	pwb_diag_init(&d);
	if (pwb_policy_load(&policy, dir, NULL, &d))
		die("the fuzz policy does not load");
	pwb_resolve_params rp = {.org = "o"};
	if (pwb_policy_resolve(&eff, policy, &rp, &d))
		die("the fuzz org does not resolve");
	pwb_bounds_params bp = pwb_bounds_default_params();
	snprintf(sub, sizeof(sub), "%s/lexicons", dir);
	bp.lexicon_dir = sub;
	bp.guard = judge;
	if (pwb_bounds_new(&bounds, policy, &bp, &d))
		die("the fuzz detectors do not build");
	pwb_diag_release(&d);
	static const char *const files[] = {"law/l.yaml", "org/o.yaml",
					    "categories.yaml"};
	for (size_t i = 0; i < 3; i++) {
		snprintf(sub, sizeof(sub), "%s/%s", dir, files[i]);
		unlink(sub);
	}
	for (size_t i = 0; i < 3; i++) {
		snprintf(sub, sizeof(sub), "%s/%s", dir, subs[i]);
		rmdir(sub);
	}
	rmdir(dir);
}

/* The first line of the answer, lower-cased and trimmed, as the reader
 * sees it (blank lines before it skipped). */
static void first_word(char *out, size_t size)
{
	size_t i = 0, n = 0;
	while (i < answer_len &&
	       (answer_data[i] == '\n' || answer_data[i] == '\r' ||
		answer_data[i] == ' ' || answer_data[i] == '\t'))
		i++;
	size_t start = i;
	while (i < answer_len && answer_data[i] && answer_data[i] != '\n' &&
	       answer_data[i] != '\r')
		i++;
	while (i > start &&
	       (answer_data[i - 1] == ' ' || answer_data[i - 1] == '\t'))
		i--;
	for (size_t k = start; k < i && n + 1 < size; k++) {
		unsigned char c = answer_data[k];
		out[n++] = (char)(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
	}
	out[i - start < size ? n : 0] = '\0';
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!bounds)
		init();
	answer_data = data;
	answer_len = strnlen((const char *)data, size);
	pwb_decision *dec = NULL;
	pwb_status st = pwb_bounds_check(&dec, bounds, eff, PWB_ROLE_PROMPT,
					 "a text", 6, NULL);
	char word[16];
	first_word(word, sizeof(word));
	if (st) {
		if (st != PWB_EPARSE)
			die("the check failed with something else than EPARSE");
		if (answer_len <= 64 * 1024 &&
		    (!strcmp(word, "safe") || !strcmp(word, "unsafe")))
			die("a readable answer was refused");
		return 0;
	}
	pwb_verdict v = pwb_decision_verdict(dec);
	if (v > PWB_VERDICT_BLOCK)
		die("a verdict out of range");
	if (!strcmp(word, "safe") && v != PWB_VERDICT_ALLOW)
		die("'safe' did not allow");
	if (!strcmp(word, "unsafe") && v != PWB_VERDICT_BLOCK)
		die("'unsafe' did not block");
	if (strcmp(word, "safe") && strcmp(word, "unsafe"))
		die("an unreadable answer was accepted");
	pwb_decision_free(dec);
	return 0;
}
