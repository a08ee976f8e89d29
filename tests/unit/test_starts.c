/*
 * test_starts.c - where lexicon matches start. The lexicon database
 * reports only where matches end; pwb__lexicon_start() finds the start by
 * walking a word or phrase back, or with PCRE2 for a regular expression.
 * This test compares every start it finds with the one Vectorscan itself
 * reports when the same entry is compiled alone with start-of-match
 * tracking (HS_FLAG_SOM_LEFTMOST), on the shipped lexicons and on:
 *
 *   - every word and phrase entry, in a sentence, with runs of mixed
 *     whitespace between its words (always);
 *   - the lines of the shared HateCheck and AILuminate files, whole, as
 *     texts full of regex matches (when ../shared/data is there).
 *
 * It also checks the budget: past PWB__START_SEARCHES regex searches in one
 * text, a start is reported unknown rather than searched.
 *
 * PWB_SOURCE_DIR names the source tree; PWB_DATA_DIR the shared data;
 * PWB_CACHE_DIR a folder for the compiled database.
 */
/* cmocka needs these first, in this order. */
/* clang-format off */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
/* clang-format on */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../som_ref.h"

/* Entries compiled alone, to bound the test's time: so many of the word
 * and phrase entries, and as many again of the regular expressions, so
 * that the words (the context lexicon holds many) leave room for them. */
#define MAX_REFS 400

typedef struct fixture {
	pwb_policy *p;
	pwb_bounds *b;
	hs_database_t **ref; /* per entry, compiled alone with SOM */
	bool *ref_failed;
	size_t n_refs[2]; /* words and phrases, regexes */
	hs_scratch_t *scratch;
	size_t checked, literal, regex, skipped;
} fixture;

static fixture fx;

static int setup(void **state)
{
	(void)state;
	const char *src = getenv("PWB_SOURCE_DIR");
	char pol[1024], lex[1100];
	snprintf(pol, sizeof(pol), "%s/policies", src && *src ? src : ".");
	snprintf(lex, sizeof(lex), "%s/lexicons", pol);
	pwb_diag d;
	pwb_diag_init(&d);
	if (pwb_policy_load(&fx.p, pol, NULL, &d))
		return -1;
	pwb_bounds_params bp = pwb_bounds_default_params();
	bp.lexicon_dir = lex;
	bp.cache_dir = getenv("PWB_CACHE_DIR");
	if (pwb_bounds_new(&fx.b, fx.p, &bp, &d))
		return -1;
	pwb_diag_release(&d);
	fx.ref = calloc(fx.b->n_entries, sizeof(*fx.ref));
	fx.ref_failed = calloc(fx.b->n_entries, sizeof(*fx.ref_failed));
	return fx.ref && fx.ref_failed ? 0 : -1;
}

static int teardown(void **state)
{
	(void)state;
	for (size_t i = 0; i < fx.b->n_entries; i++)
		hs_free_database(fx.ref[i]);
	free(fx.ref);
	free(fx.ref_failed);
	hs_free_scratch(fx.scratch);
	pwb_bounds_free(fx.b);
	pwb_policy_free(fx.p);
	return 0;
}

/* The entry compiled alone with start tracking, or NULL past MAX_REFS
 * of its kind (or when it does not compile alone: nothing to compare
 * with). */
static hs_database_t *ref_db(unsigned id)
{
	if (fx.ref[id] || fx.ref_failed[id])
		return fx.ref[id];
	size_t *n = &fx.n_refs[fx.b->entries[id].kind == PWB__LEX_REGEX];
	if (*n >= MAX_REFS)
		return NULL;
	if (!(fx.ref[id] = som_ref_compile(&fx.b->entries[id], &fx.scratch)))
		fx.ref_failed[id] = true;
	else
		(*n)++;
	return fx.ref[id];
}

typedef struct hit {
	unsigned id;
	size_t end;
} hit;

typedef struct hits {
	hit v[20000];
	size_t n;
} hits;

static int on_hit(unsigned id, unsigned long long from, unsigned long long to,
		  unsigned flags, void *user)
{
	(void)from;
	(void)flags;
	hits *h = user;
	if (id < fx.b->n_entries && h->n < PWB_ARRAY_LEN(h->v))
		h->v[h->n++] = (hit){id, (size_t)to};
	return 0;
}

/* Every lexicon match in text (lowercase ASCII): the start found must be
 * the one Vectorscan tracks. */
static void compare(const char *text, size_t len)
{
	static hits h;
	h.n = 0;
	hs_scratch_t *s = NULL;
	assert_int_equal(hs_alloc_scratch(fx.b->db, &s), HS_SUCCESS);
	assert_int_equal(
	    hs_scan(fx.b->db, text, (unsigned)len, 0, s, on_hit, &h),
	    HS_SUCCESS);
	hs_free_scratch(s);
	pwb__start_ctx c;
	pwb__start_init(&c);
	for (size_t k = 0; k < h.n; k++) {
		hs_database_t *db = ref_db(h.v[k].id);
		if (!db) {
			fx.skipped++;
			continue;
		}
		unsigned long long want;
		assert_true(som_ref_start(db, fx.scratch, text, len, h.v[k].end,
					  &want));
		size_t start = (size_t)-1;
		bool got = pwb__lexicon_start(fx.b, h.v[k].id,
					      (const unsigned char *)text,
					      h.v[k].end, &c, &start);
		const pwb__lex_entry *e = &fx.b->entries[h.v[k].id];
		if (!got || start != want)
			fail_msg("entry '%s' (%s:%d) ending at %zu in '%.*s': "
				 "start %s%zu, Vectorscan says %llu",
				 e->entry, fx.b->lex_files[e->file], e->line,
				 h.v[k].end, (int)(len < 300 ? len : 300), text,
				 got ? "" : "unknown ", start, want);
		fx.checked++;
		if (e->kind == PWB__LEX_REGEX)
			fx.regex++;
		else
			fx.literal++;
	}
	assert_false(c.oom);
	pwb__start_release(&c);
}

static void test_words_and_phrases(void **state)
{
	(void)state;
	static const char *const gaps[] = {" ", "  ", "\t", " \n ", "\r\n"};
	pwb__buf t;
	for (size_t i = 0; i < fx.b->n_entries; i++) {
		const pwb__lex_entry *e = &fx.b->entries[i];
		if (e->kind == PWB__LEX_REGEX)
			continue;
		pwb__buf_init(&t, 0);
		pwb__buf_adds(&t, "so: ");
		for (const char *c = e->entry; *c; c++) {
			if (*c == ' ')
				pwb__buf_adds(&t,
					      gaps[i % PWB_ARRAY_LEN(gaps)]);
			else
				pwb__buf_addc(&t, (*c >= 'A' && *c <= 'Z')
						      ? (char)(*c - 'A' + 'a')
						      : *c);
		}
		pwb__buf_adds(&t, ", again ");
		pwb__buf_adds(&t, e->entry);
		pwb__buf_adds(&t, ".");
		assert_int_equal(t.err, PWB_OK);
		/* Entries may hold capitals and non-ASCII letters: compare
		 * on the text as the scan sees it. */
		for (size_t k = 0; k < t.len; k++)
			if (t.s[k] >= 'A' && t.s[k] <= 'Z')
				t.s[k] = (char)(t.s[k] - 'A' + 'a');
		compare(t.s, t.len);
		pwb__buf_release(&t);
	}
	print_message("words and phrases: %zu starts checked\n", fx.literal);
	assert_true(fx.literal >= 300);
}

/* The data folder: PWB_DATA_DIR, else ../shared/data beside the source. */
static void data_path(char *buf, size_t size, const char *rel)
{
	const char *env = getenv("PWB_DATA_DIR");
	const char *src = getenv("PWB_SOURCE_DIR");
	if (env && *env)
		snprintf(buf, size, "%s/%s", env, rel);
	else
		snprintf(buf, size, "%s/../shared/data/%s",
			 src && *src ? src : ".", rel);
}

/* Each line of a file, lowercased, ASCII only (others are skipped: the
 * scan's own folding of Latin-1 capitals is not redone here). */
static size_t compare_lines(const char *rel, size_t max_lines)
{
	char path[2048];
	data_path(path, sizeof(path), rel);
	FILE *f = fopen(path, "r");
	if (!f)
		return 0;
	char *line = NULL;
	size_t cap = 0, n = 0;
	ssize_t len;
	while (n < max_lines && (len = getline(&line, &cap, f)) > 0) {
		bool ascii = true;
		for (ssize_t k = 0; k < len && ascii; k++) {
			unsigned char c = (unsigned char)line[k];
			ascii = c && c < 0x80;
			if (c >= 'A' && c <= 'Z')
				line[k] = (char)(c - 'A' + 'a');
		}
		if (!ascii)
			continue;
		compare(line, (size_t)len);
		n++;
	}
	free(line);
	fclose(f);
	return n;
}

static void test_regex_on_shared_data(void **state)
{
	(void)state;
	size_t before = fx.regex;
	size_t n = compare_lines("hatecheck/test_suite_cases.csv", 4000) +
		   compare_lines("ailuminate-en/"
				 "airr_official_1.0_demo_en_us_prompt_set_"
				 "release.csv",
				 2000);
	if (!n) {
		print_message("the shared data is absent: regex starts are "
			      "checked on the words and phrases only\n");
		skip();
	}
	print_message("%zu lines: %zu regex starts checked (%zu entries "
		      "compiled alone, %zu matches of other entries not "
		      "compared)\n",
		      n, fx.regex - before, fx.n_refs[0] + fx.n_refs[1],
		      fx.skipped);
	assert_true(fx.regex - before >= 200);
}

/* A hostile text can hold thousands of regex matches: the searches for
 * their starts stop at the budget, and the rest are unknown, not slow. */
static void test_budget(void **state)
{
	(void)state;
	unsigned id = 0;
	bool found = false;
	for (size_t i = 0; i < fx.b->n_entries && !found; i++)
		if (fx.b->entries[i].kind == PWB__LEX_REGEX) {
			id = (unsigned)i;
			found = true;
		}
	assert_true(found);
	const char *text = "nothing that matches here";
	pwb__start_ctx c;
	pwb__start_init(&c);
	size_t start, unknown = 0;
	for (unsigned k = 0; k < PWB__START_SEARCHES + 100; k++)
		if (!pwb__lexicon_start(fx.b, id, (const unsigned char *)text,
					strlen(text), &c, &start))
			unknown++;
	assert_int_equal(c.searches, 0);
	assert_int_equal(unknown, PWB__START_SEARCHES + 100);
	assert_false(c.oom);
	pwb__start_release(&c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_words_and_phrases),
	    cmocka_unit_test(test_regex_on_shared_data),
	    cmocka_unit_test(test_budget),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
