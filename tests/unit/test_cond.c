/* test_cond.c - the condition language: parsing, errors, evaluation. */
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

#include "policy/cond.h"

static pwb__cond *parse_ok(const char *src)
{
	pwb__cond *c = NULL;
	pwb_diag d;
	pwb_diag_init(&d);
	pwb_status rc = pwb__cond_parse(&c, src, &d);
	if (rc)
		fail_msg("'%s' did not parse: %s at col %d", src,
			 d.n ? d.entries[0].message : "(no message)",
			 d.n ? d.entries[0].col : -1);
	assert_int_equal(d.n, 0);
	pwb_diag_release(&d);
	return c;
}

/* A parse that fails with exactly one message, placed at the 0-based
 * offset want_pos of src (its col is want_pos + 1), with no line or file. */
static void parse_bad(const char *src, int want_pos, const char *want_msg)
{
	pwb__cond *c = NULL;
	pwb_diag d;
	pwb_diag_init(&d);
	pwb_status rc = pwb__cond_parse(&c, src, &d);
	if (rc != PWB_EPARSE)
		fail_msg("'%s' parsed but should not", src);
	assert_null(c);
	if (d.n != 1)
		fail_msg("'%s': %zu messages, want 1", src, d.n);
	const pwb_diag_entry *e = &d.entries[0];
	assert_null(e->file);
	assert_int_equal(e->line, 0);
	if (e->col != want_pos + 1)
		fail_msg("'%s': error at col %d, want %d (%s)", src, e->col,
			 want_pos + 1, e->message);
	if (!strstr(e->message, want_msg))
		fail_msg("'%s': message '%s' lacks '%s'", src, e->message,
			 want_msg);
	pwb_diag_release(&d);
}

static char *canon(const pwb__cond *c)
{
	pwb__buf b;
	pwb__buf_init(&b, 0);
	pwb__cond_canon(c, &b);
	return pwb__buf_detach(&b);
}

static void test_precedence(void **state)
{
	(void)state;
	/* && binds tighter than ||; ! tighter than &&. */
	pwb__cond *c = parse_ok("user.a == 1 || user.b == 2 && !user.c");
	char *s = canon(c);
	assert_string_equal(s,
			    "((user.a == 1) || ((user.b == 2) && (!user.c)))");
	free(s);
	pwb__cond_free(c);
	c = parse_ok("(user.a == 1 || user.b == 2) && user.c");
	s = canon(c);
	assert_string_equal(s, "(((user.a == 1) || (user.b == 2)) && user.c)");
	free(s);
	pwb__cond_free(c);
}

static void test_literals(void **state)
{
	(void)state;
	pwb__cond *c = parse_ok("user.country in [\"de\", 'fr', \"a\\\"b\"]");
	char *s = canon(c);
	assert_string_equal(s, "(user.country in [\"de\",\"fr\",\"a\\\"b\"])");
	free(s);
	pwb__cond_free(c);
	c = parse_ok("user.x in [] || request.n >= -2.5e1 || org.f == false");
	assert_non_null(c);
	pwb__cond_free(c);
}

static void test_errors(void **state)
{
	(void)state;
	parse_bad("", 0, "empty condition");
	parse_bad("user.age >= ", 12, "expected an attribute");
	parse_bad("user.age >= 18 &&", 17, "expected an attribute");
	parse_bad("user.age = 18", 9, "use '=='");
	parse_bad("user.age >= 18 and user.x", 15, "use '&&'");
	parse_bad("age >= 18", 0, "not an attribute");
	parse_bad("(user.a == 1", 12, "expected ')'");
	parse_bad("user.a == 1 == 2", 12, "do not chain");
	parse_bad("user.a == \"open", 10, "unterminated string");
	parse_bad("user.a in 5", 10, "needs a list");
	parse_bad("user.a == 1 user.b", 12, "expected '&&', '||' or the end");
	parse_bad("user. == 1", 4, "expected a name");
	parse_bad("user.a == 1.2.3", 10, "malformed number");
	parse_bad("user.a == #", 10, "unexpected character");
	parse_bad("user.a in [1, user.b]", 14, "expected a number");
}

static void test_depth_and_length(void **state)
{
	(void)state;
	char deep[400];
	size_t n = 0;
	for (int i = 0; i < 100; i++)
		deep[n++] = '(';
	memcpy(deep + n, "user.a", 6);
	n += 6;
	for (int i = 0; i < 100; i++)
		deep[n++] = ')';
	deep[n] = '\0';
	pwb__cond *c = NULL;
	pwb_diag d;
	pwb_diag_init(&d);
	assert_int_equal(pwb__cond_parse(&c, deep, &d), PWB_EPARSE);
	assert_int_equal(d.n, 1);
	assert_non_null(strstr(d.entries[0].message, "nested too deeply"));
	assert_int_equal(d.entries[0].col, 65); /* the 65th '(' */
	pwb_diag_clear(&d);
	char *nots = malloc(300);
	memset(nots, '!', 200);
	memcpy(nots + 200, "user.a", 7);
	assert_int_equal(pwb__cond_parse(&c, nots, &d), PWB_EPARSE);
	assert_int_equal(d.n, 1);
	pwb_diag_clear(&d);
	free(nots);
	char *long_src = malloc(PWB__COND_MAX_LEN + 10);
	memset(long_src, ' ', PWB__COND_MAX_LEN + 5);
	long_src[PWB__COND_MAX_LEN + 5] = '\0';
	assert_int_equal(pwb__cond_parse(&c, long_src, &d), PWB_EPARSE);
	assert_int_equal(d.n, 1);
	assert_non_null(strstr(d.entries[0].message, "too long"));
	assert_int_equal(d.entries[0].col, 1);
	pwb_diag_release(&d);
	free(long_src);
}

static bool eval(const char *src, pwb_attrs *a)
{
	pwb__cond *c = parse_ok(src);
	bool r = pwb__cond_eval(c, a);
	pwb__cond_free(c);
	return r;
}

static void test_eval_and_null(void **state)
{
	(void)state;
	pwb_attrs *a;
	assert_int_equal(pwb_attrs_new(&a), PWB_OK);
	assert_int_equal(pwb_attrs_set_text(a, "user.age", "15"), PWB_OK);
	assert_int_equal(pwb_attrs_set_text(a, "user.age_verified", "true"),
			 PWB_OK);
	assert_int_equal(pwb_attrs_set_text(a, "user.country", "de"), PWB_OK);
	assert_int_equal(pwb_attrs_set_text(a, "user.gone", "null"), PWB_OK);
	assert_false(eval("user.age >= 18", a));
	assert_true(eval("user.age < 18 && user.age_verified", a));
	assert_true(eval("user.country in [\"at\", \"de\"]", a));
	assert_false(eval("user.country in [\"fr\"]", a));
	assert_true(eval("user.country != \"fr\"", a));
	/* Null: unknown or explicitly null attributes compare false, both
	 * ways, and negation turns that into true. */
	assert_false(eval("user.missing >= 18", a));
	assert_false(eval("user.missing < 18", a));
	assert_false(eval("user.missing == null", a));
	assert_false(eval("user.missing != 18", a));
	assert_false(eval("user.gone == 1", a));
	assert_true(eval("!(user.missing >= 18)", a));
	assert_false(eval("user.missing", a));
	/* A path alone is true only when it is true. */
	assert_true(eval("user.age_verified", a));
	assert_false(eval("user.country", a));
	/* Ordering across types is false; strings order by bytes. */
	assert_false(eval("user.country > 5", a));
	assert_true(eval("user.country < \"fr\"", a));
	pwb_attrs_free(a);
}

static void test_implies(void **state)
{
	(void)state;
	pwb__cond *a = parse_ok("user.age >= 18 && user.age_verified");
	pwb__cond *b = parse_ok("user.age>=18");
	pwb__cond *c = parse_ok("user.age >= 21");
	assert_true(pwb__cond_implies(a, b));
	assert_false(pwb__cond_implies(b, a));
	assert_false(pwb__cond_implies(c, b)); /* true, but not by syntax */
	assert_true(pwb__cond_implies(a, NULL));
	assert_false(pwb__cond_implies(NULL, a));
	assert_true(pwb__cond_implies(a, a));
	pwb__cond_free(a);
	pwb__cond_free(b);
	pwb__cond_free(c);
}

static void test_value_from_text(void **state)
{
	(void)state;
	pwb__value v;
	assert_int_equal(pwb__value_from_text(&v, "15"), PWB_OK);
	assert_int_equal(v.type, PWB_VAL_NUMBER);
	assert_true(v.num == 15);
	assert_int_equal(pwb__value_from_text(&v, "-0.5e2"), PWB_OK);
	assert_int_equal(v.type, PWB_VAL_NUMBER);
	assert_true(v.num == -50);
	assert_int_equal(pwb__value_from_text(&v, "true"), PWB_OK);
	assert_int_equal(v.type, PWB_VAL_BOOL);
	assert_true(v.b);
	assert_int_equal(pwb__value_from_text(&v, "null"), PWB_OK);
	assert_int_equal(v.type, PWB_VAL_NULL);
	/* Not JSON scalars: strings as they are. */
	const char *strings[] = {"de", "015", "1.", "True", "1e", "", "0x10"};
	for (size_t i = 0; i < sizeof(strings) / sizeof(*strings); i++) {
		assert_int_equal(pwb__value_from_text(&v, strings[i]), PWB_OK);
		assert_int_equal(v.type, PWB_VAL_STRING);
		assert_string_equal(v.str, strings[i]);
		pwb__value_release(&v);
	}
	assert_int_equal(pwb__value_from_text(&v, "\"15\""), PWB_OK);
	assert_int_equal(v.type, PWB_VAL_STRING);
	assert_string_equal(v.str, "15");
	pwb__value_release(&v);
}

typedef struct reports {
	int n;
	char msgs[8][256];
	int pos[8];
} reports;

static bool type_of(void *ud, const char *path, pwb_value_type *t)
{
	reports *r = ud;
	if (!strcmp(path, "user.age")) {
		*t = PWB_VAL_NUMBER;
		return true;
	}
	if (!strcmp(path, "user.country")) {
		*t = PWB_VAL_STRING;
		return true;
	}
	if (r->n < 8) {
		snprintf(r->msgs[r->n], 256, "unknown %s", path);
		r->pos[r->n++] = -1;
	}
	return false;
}

static void report(void *ud, int pos, const char *msg)
{
	reports *r = ud;
	if (r->n < 8) {
		snprintf(r->msgs[r->n], 256, "%s", msg);
		r->pos[r->n++] = pos;
	}
}

static void test_static_check(void **state)
{
	(void)state;
	reports r = {0};
	pwb__cond *c = parse_ok("user.age == \"x\" || user.agee > 1 || "
				"user.country in [1]");
	pwb__cond_check(c, type_of, report, &r);
	assert_int_equal(r.n, 3);
	assert_non_null(strstr(r.msgs[0], "compares a number with a string"));
	assert_int_equal(r.pos[0], 9);
	assert_string_equal(r.msgs[1], "unknown user.agee");
	assert_non_null(strstr(r.msgs[2], "list element 1 is a number"));
	pwb__cond_free(c);
	memset(&r, 0, sizeof(r));
	c = parse_ok("user.age >= 18 && user.country in [\"de\"]");
	pwb__cond_check(c, type_of, report, &r);
	assert_int_equal(r.n, 0);
	pwb__cond_free(c);
}

/* ---- allocation failures ---- */

/*
 * Fails the 1st, 2nd, ... allocation of one parse of a condition that uses
 * every construct. Each run either succeeds with the same canonical text
 * as an unfailed parse, or returns PWB_ENOMEM with no condition and one
 * message; the ASan build checks that nothing leaks.
 */
static void test_alloc_failure_sweep(void **state)
{
	(void)state;
	const char *src =
	    "!(user.age >= 18 && user.age < 65.5) || "
	    "user.country in [\"de\", 'fr', \"a\\\"b\\n\"] && "
	    "(request.n != -2.5e1 || org.f == false) && user.x <= 3 && "
	    "user.y > 0 && user.z == null && user.w == true && "
	    "user.tags in [] && user.on";
	pwb__cond *c0 = parse_ok(src);
	char *want = canon(c0);
	assert_non_null(want);
	pwb__cond_free(c0);
	long n_fail = 0;
	bool done = false;
	for (long k = 1; k < 100000 && !done; k++) {
		pwb__cond *c = (pwb__cond *)&c; /* must be overwritten */
		pwb_diag d;
		pwb_diag_init(&d);
		pwb__alloc_count = 0;
		pwb__alloc_fail_at = k;
		pwb_status rc = pwb__cond_parse(&c, src, &d);
		bool reached = pwb__alloc_count >= k;
		pwb__alloc_fail_at = 0;
		if (rc == PWB_OK) {
			assert_non_null(c);
			assert_int_equal(d.n, 0);
			char *got = canon(c);
			assert_non_null(got);
			if (strcmp(got, want) != 0)
				fail_msg("allocation %ld failed: canon '%s', "
					 "want '%s'",
					 k, got, want);
			free(got);
			pwb__cond_free(c);
			done = !reached;
		} else {
			if (rc != PWB_ENOMEM)
				fail_msg("allocation %ld failed: status %d", k,
					 rc);
			assert_null(c);
			assert_int_equal(d.n, 1);
			assert_string_equal(d.entries[0].message,
					    "out of memory");
			n_fail++;
		}
		pwb_diag_release(&d);
	}
	assert_true(done);
	assert_true(n_fail > 0);
	free(want);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_precedence),
	    cmocka_unit_test(test_literals),
	    cmocka_unit_test(test_errors),
	    cmocka_unit_test(test_depth_and_length),
	    cmocka_unit_test(test_eval_and_null),
	    cmocka_unit_test(test_implies),
	    cmocka_unit_test(test_value_from_text),
	    cmocka_unit_test(test_static_check),
	    cmocka_unit_test(test_alloc_failure_sweep),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
