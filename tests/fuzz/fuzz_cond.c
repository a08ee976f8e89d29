/*
 * fuzz_cond.c - libFuzzer target for the condition language (policy/cond.h).
 *
 * The input, cut at 8 KiB and NUL-terminated, is parsed as a `when:`
 * condition. A condition that parses is checked against a small attribute
 * table, evaluated over a few request attributes and over none, and put in
 * its canonical form. The target aborts when an invariant breaks:
 *
 *   - a parse either gives a condition or an error, never both or neither;
 *   - an error position lies inside the input;
 *   - every condition implies itself, and implies "true" (NULL);
 *   - a comparison with an unset attribute is false (null semantics);
 *   - wrapping the input in parentheses changes nothing, and "!(input)"
 *     is the negation, with canonical text "(!" canon ")";
 *   - when the canonical text parses again, it gives the same canonical
 *     text and the same truth values. It need not parse (it may nest
 *     deeper or run longer than the parser accepts).
 *
 * Build with -DPWB_FUZZ=ON and CC=clang; see tests/fuzz/run.sh.
 */
#include "policy/cond.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FUZZ_MAX_INPUT (8 * 1024)

static void fuzz_fail(const char *what, const char *src)
{
	fprintf(stderr, "fuzz_cond: %s\ncondition: %.200s\n", what, src);
	abort();
}

/* The declared types of the attributes conditions may read. */
static bool type_of(void *ud, const char *path, pwb_value_type *type)
{
	static const struct {
		const char *path;
		pwb_value_type type;
	} known[] = {
	    {"user.age", PWB_VAL_NUMBER},
	    {"user.age_verified", PWB_VAL_BOOL},
	    {"user.country", PWB_VAL_STRING},
	    {"user.consent", PWB_VAL_LIST},
	    {"org.sector", PWB_VAL_STRING},
	};
	(void)ud;
	for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++) {
		if (strcmp(known[i].path, path) == 0) {
			*type = known[i].type;
			return true;
		}
	}
	return false;
}

static void report(void *ud, int pos, const char *msg)
{
	size_t len = *(const size_t *)ud;
	if (pos < 0 || (size_t)pos > len || !msg || !*msg)
		abort();
}

static pwb_attrs *make_attrs(void)
{
	pwb_attrs *a = NULL;
	if (pwb_attrs_new(&a) || pwb_attrs_set_number(a, "user.age", 17) ||
	    pwb_attrs_set_bool(a, "user.age_verified", true) ||
	    pwb_attrs_set_string(a, "user.country", "DE") ||
	    pwb_attrs_set_text(a, "org.sector", "education"))
		abort();
	return a;
}

static char *canon(const pwb__cond *c)
{
	pwb__buf b;
	pwb__buf_init(&b, 0);
	pwb__cond_canon(c, &b);
	char *s = pwb__buf_detach(&b);
	if (!s)
		abort();
	return s;
}

static bool is_path(const pwb__cond *c)
{
	return c->kind == PWB__C_PATH;
}

/* Parses before + src + after; NULL when that does not parse. */
static pwb__cond *parse_around(const char *before, const char *src,
			       const char *after)
{
	size_t n = strlen(before) + strlen(src) + strlen(after) + 1;
	char *text = malloc(n);
	if (!text)
		abort();
	snprintf(text, n, "%s%s%s", before, src, after);
	pwb__cond *c = NULL;
	if (pwb__cond_parse(&c, text, NULL))
		c = NULL;
	free(text);
	return c;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static pwb_attrs *attrs;
	if (!attrs)
		attrs = make_attrs();
	if (size > FUZZ_MAX_INPUT)
		size = FUZZ_MAX_INPUT;
	char *src = malloc(size + 1);
	if (!src)
		return 0;
	memcpy(src, data, size);
	src[size] = '\0';
	size_t len = strlen(src);

	pwb__cond *c = NULL;
	pwb_diag d;
	pwb_diag_init(&d);
	pwb_status rc = pwb__cond_parse(&c, src, &d);
	/* One message on failure, none on success; a syntax error's col is
	 * its 1-based offset in src, with no line or file. */
	size_t n_msg = d.n;
	int col = n_msg ? d.entries[0].col : 0;
	bool placed = n_msg && !d.entries[0].file && d.entries[0].line == 0;
	pwb_diag_release(&d);
	if (rc) {
		if (c)
			fuzz_fail("a failed parse returned a condition", src);
		if (rc != PWB_EPARSE && rc != PWB_ENOMEM)
			fuzz_fail("a failed parse returned a stray status",
				  src);
		if (n_msg != 1)
			fuzz_fail("a failed parse gave not one message", src);
		if (!placed ||
		    (rc == PWB_EPARSE && (col < 1 || (size_t)col > len + 1)))
			fuzz_fail("the error position is outside the input",
				  src);
		free(src);
		return 0;
	}
	if (n_msg)
		fuzz_fail("a successful parse left a message", src);
	if (!c)
		fuzz_fail("a successful parse returned no condition", src);

	pwb__cond_check(c, type_of, report, &len);
	bool with = pwb__cond_eval(c, attrs);
	bool without = pwb__cond_eval(c, NULL);
	if (c->kind == PWB__C_CMP && (is_path(c->a) || is_path(c->b)) &&
	    without)
		fuzz_fail("a comparison with an unset attribute is true", src);

	char *text = canon(c);
	if (!pwb__cond_implies(c, c))
		fuzz_fail("a condition does not imply itself", src);
	if (!pwb__cond_implies(c, NULL) || pwb__cond_implies(NULL, c))
		fuzz_fail("implication with NULL (\"true\") is wrong", src);

	/* Redundant parentheses change nothing; "!( )" negates. */
	pwb__cond *paren = parse_around("(", src, ")");
	if (paren) {
		char *t = canon(paren);
		if (strcmp(t, text) != 0 ||
		    pwb__cond_eval(paren, attrs) != with)
			fuzz_fail("parentheses change the condition", src);
		free(t);
		pwb__cond_free(paren);
	}
	pwb__cond *neg = parse_around("!(", src, ")");
	if (neg) {
		char *t = canon(neg);
		if (strncmp(t, "(!", 2) != 0 ||
		    strncmp(t + 2, text, strlen(text)) != 0 ||
		    strcmp(t + 2 + strlen(text), ")") != 0)
			fuzz_fail("the canonical text of a negation is not "
				  "(!canon)",
				  src);
		if (pwb__cond_eval(neg, attrs) == with ||
		    pwb__cond_eval(neg, NULL) == without)
			fuzz_fail("a negation has the same truth value", src);
		free(t);
		pwb__cond_free(neg);
	}

	/* The canonical text, where it parses, means the same. */
	pwb__cond *c2 = NULL;
	if (pwb__cond_parse(&c2, text, NULL) == PWB_OK) {
		char *text2 = canon(c2);
		if (strcmp(text, text2) != 0) {
			fprintf(stderr, "canon 1: %s\ncanon 2: %s\n", text,
				text2);
			fuzz_fail("the canonical text is not stable", src);
		}
		if (pwb__cond_eval(c2, attrs) != with ||
		    pwb__cond_eval(c2, NULL) != without)
			fuzz_fail("the canonical text evaluates differently",
				  src);
		if (!pwb__cond_implies(c, c2) || !pwb__cond_implies(c2, c))
			fuzz_fail("a condition and its canonical text do not "
				  "imply each other",
				  src);
		free(text2);
		pwb__cond_free(c2);
	}
	free(text);
	pwb__cond_free(c);
	free(src);
	return 0;
}
