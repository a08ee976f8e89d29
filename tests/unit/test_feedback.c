/*
 * test_feedback.c - feedback events (DESIGN §4.3): pairs, ratings, rater
 * provenance; one error per kind of bad line, naming the line; streaming
 * past bad lines; whole files; an allocation-failure sweep.
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
#include <unistd.h>

#include "pwb/prefs.h"
#include "util/util.h"

/* Parses one line; returns the status and the first message in msg. */
static pwb_status parse1(const char *json, pwb_feedback *ev, char *msg,
			 size_t size)
{
	pwb_feedback_set *s;
	assert_int_equal(pwb_feedback_set_new(&s), PWB_OK);
	pwb_diag d;
	pwb_diag_init(&d);
	pwb_status st =
	    pwb_feedback_parse(s, json, strlen(json), "f.jsonl", 7, &d);
	msg[0] = '\0';
	if (d.n)
		pwb_diag_format(&d.entries[0], msg, size);
	if (!st) {
		assert_int_equal(pwb_feedback_n(s), 1);
		*ev = *pwb_feedback_get(s, 0);
		/* The strings die with the set: keep only the numbers. */
		ev->user = ev->prompt = ev->chosen = ev->rejected = NULL;
		ev->response = ev->rater_attrs = ev->id = NULL;
	} else {
		assert_int_equal(pwb_feedback_n(s), 0);
	}
	pwb_diag_release(&d);
	pwb_feedback_set_free(s);
	return st;
}

static void test_pair_and_rating(void **state)
{
	(void)state;
	pwb_feedback_set *s;
	assert_int_equal(pwb_feedback_set_new(&s), PWB_OK);
	const char *a = "{\"user\": \"u1\", \"prompt\": \"p\", \"chosen\": "
			"\"short\", \"rejected\": \"long one\", \"ts\": 17}";
	const char *b =
	    "{\"user\": \"u1\", \"response\": \"ok\", \"rating\": 4, "
	    "\"scale\": [1, 5], \"ts\": 18.0, \"id\": \"e2\", \"rater\": "
	    "{\"role\": \"crowdworker\", \"attributes\": {\"lang\": \"de\", "
	    "\"age\": 30}}}";
	assert_int_equal(pwb_feedback_parse(s, a, strlen(a), NULL, 1, NULL),
			 PWB_OK);
	assert_int_equal(pwb_feedback_parse(s, b, strlen(b), NULL, 2, NULL),
			 PWB_OK);
	const pwb_feedback *e = pwb_feedback_get(s, 0);
	assert_int_equal(e->kind, PWB_FEEDBACK_PAIR);
	assert_string_equal(e->user, "u1");
	assert_string_equal(e->prompt, "p");
	assert_string_equal(e->chosen, "short");
	assert_string_equal(e->rejected, "long one");
	assert_null(e->response);
	assert_true(e->has_ts);
	assert_int_equal(e->ts, 17);
	assert_int_equal(e->rater_role, PWB_RATER_NONE);
	assert_null(e->rater_attrs);
	assert_null(e->id);
	assert_int_equal(e->line, 1);
	e = pwb_feedback_get(s, 1);
	assert_int_equal(e->kind, PWB_FEEDBACK_RATING);
	assert_string_equal(e->response, "ok");
	assert_string_equal(e->prompt, "");
	assert_true(e->rating == 4 && e->scale_lo == 1 && e->scale_hi == 5);
	assert_int_equal(e->ts, 18);
	assert_string_equal(e->id, "e2");
	assert_int_equal(e->rater_role, PWB_RATER_CROWDWORKER);
	assert_string_equal(pwb_rater_role_name(e->rater_role), "crowdworker");
	/* Sorted and compact, so that equal attributes compare equal. */
	assert_string_equal(e->rater_attrs, "{\"age\":30,\"lang\":\"de\"}");
	assert_null(pwb_feedback_get(s, 2));
	pwb_feedback_set_free(s);

	/* No user, no ts: population data (hh-rlhf has neither). */
	pwb_feedback ev;
	char msg[512];
	assert_int_equal(parse1("{\"chosen\": \"a\", \"rejected\": \"b\"}", &ev,
				msg, sizeof(msg)),
			 PWB_OK);
	assert_false(ev.has_ts);
	assert_int_equal(parse1("{\"response\": \"a\", \"rating\": -1, "
				"\"scale\": [-1, 1]}",
				&ev, msg, sizeof(msg)),
			 PWB_OK);
	assert_true(ev.rating == -1);
}

static void test_bad_lines(void **state)
{
	(void)state;
	static const struct {
		const char *json, *want;
	} cases[] = {
	    {"{\"chosen\": \"a\"", "malformed JSON"},
	    {"[1, 2]", "must be a JSON object"},
	    {"{\"usr\": \"u\", \"chosen\": \"a\", \"rejected\": \"b\"}",
	     "unknown key 'usr' (did you mean 'user'?)"},
	    {"{\"user\": 3, \"chosen\": \"a\", \"rejected\": \"b\"}",
	     "'user' must be a string"},
	    {"{\"user\": \"\", \"chosen\": \"a\", \"rejected\": \"b\"}",
	     "'user' is empty"},
	    {"{\"chosen\": \"\", \"rejected\": \"b\"}", "'chosen' is empty"},
	    {"{\"chosen\": \"a\"}", "needs both 'chosen' and 'rejected'"},
	    {"{\"chosen\": \"a\", \"rejected\": \"a\"}", "the same text"},
	    {"{\"prompt\": \"p\"}", "expected 'chosen' and 'rejected'"},
	    {"{\"chosen\": \"a\", \"rejected\": \"b\", \"rating\": 3}",
	     "not both"},
	    {"{\"response\": \"a\", \"rating\": 6, \"scale\": [1, 5]}",
	     "'rating' 6 is outside its scale [1, 5]"},
	    {"{\"response\": \"a\", \"rating\": 3}", "needs a 'scale'"},
	    {"{\"response\": \"a\", \"rating\": \"3\", \"scale\": [1, 5]}",
	     "'rating' must be a number"},
	    {"{\"response\": \"a\", \"rating\": 3, \"scale\": [5, 1]}",
	     "from low to high"},
	    {"{\"response\": \"a\", \"rating\": 3, \"scale\": [1]}",
	     "two numbers"},
	    {"{\"response\": \"a\", \"rating\": 0, \"scale\": "
	     "[-1.7e308, 1.7e308]}",
	     "from low to high"},
	    {"{\"rating\": 3, \"scale\": [1, 5]}", "'response'"},
	    {"{\"response\": \"a\"}", "needs a 'rating'"},
	    {"{\"chosen\": \"a\", \"rejected\": \"b\", \"ts\": 1.5}",
	     "whole number"},
	    {"{\"chosen\": \"a\", \"rejected\": \"b\", \"ts\": \"monday\"}",
	     "'ts' must be a number"},
	    {"{\"chosen\": \"a\", \"rejected\": \"b\", \"rater\": "
	     "{\"role\": \"expret\"}}",
	     "(did you mean 'expert'?)"},
	    {"{\"chosen\": \"a\", \"rejected\": \"b\", \"rater\": "
	     "{\"roles\": \"expert\"}}",
	     "unknown key 'rater.roles'"},
	    {"{\"chosen\": \"a\", \"rejected\": \"b\", \"rater\": "
	     "{\"attributes\": {\"x\": [1]}}}",
	     "'rater.attributes.x' must be a string, number or boolean"},
	    {"{\"chosen\": \"a\", \"rejected\": \"b\", \"rater\": \"me\"}",
	     "'rater' must be an object"},
	    {"{\"chosen\": \"a\", \"rejected\": \"b\", \"chosen\": \"c\"}",
	     "malformed JSON: duplicate object key"},
	    {"{\"chosen\": \"a\\u0000b\", \"rejected\": \"b\"}",
	     "malformed JSON"},
	};
	for (size_t i = 0; i < PWB_ARRAY_LEN(cases); i++) {
		pwb_feedback ev;
		char msg[512];
		pwb_status st = parse1(cases[i].json, &ev, msg, sizeof(msg));
		if (st != PWB_EPARSE || !strstr(msg, cases[i].want) ||
		    !strstr(msg, "f.jsonl:7:"))
			fail_msg("case %zu (%s): status %d, message '%s', "
				 "want '%s'",
				 i, cases[i].json, (int)st, msg, cases[i].want);
	}
}

static char path[256];

static void write_file(const char *text)
{
	const char *tmp = getenv("TMPDIR");
	snprintf(path, sizeof(path), "%s/pwb-test-feedback-XXXXXX",
		 tmp && *tmp ? tmp : "/tmp");
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	size_t n = strlen(text);
	assert_int_equal(write(fd, text, n), (ssize_t)n);
	close(fd);
}

static const char file_text[] =
    "{\"user\": \"u1\", \"chosen\": \"a\", \"rejected\": \"b\"}\n"
    "\n"
    "   \n"
    "{\"user\": \"u1\", \"chosen\": \"a\"}\n"
    "{\"user\": \"u2\", \"response\": \"r\", \"rating\": 1, \"scale\": "
    "[0, 1]}\r\n"
    "not json\n"
    "{\"user\": \"u3\", \"chosen\": \"c\", \"rejected\": \"d\"}";

static void test_stream(void **state)
{
	(void)state;
	write_file(file_text);
	pwb_feedback_reader *r;
	pwb_diag d;
	pwb_diag_init(&d);
	assert_int_equal(pwb_feedback_open(&r, path, &d), PWB_OK);
	assert_int_equal(pwb_feedback_bytes_total(r), strlen(file_text));
	int lines[8], n = 0, bad = 0;
	for (;;) {
		pwb_feedback ev;
		bool done;
		pwb_status st = pwb_feedback_next(r, &ev, &done, &d);
		if (st == PWB_EPARSE) {
			bad++;
			continue;
		}
		assert_int_equal(st, PWB_OK);
		if (done)
			break;
		assert_true(n < 8);
		lines[n++] = ev.line;
	}
	assert_int_equal(n, 3);
	assert_int_equal(lines[0], 1);
	assert_int_equal(lines[1], 5);
	assert_int_equal(lines[2], 7);
	assert_int_equal(bad, 2);
	assert_int_equal(d.n, 2);
	assert_int_equal(d.entries[0].line, 4);
	assert_int_equal(d.entries[1].line, 6);
	assert_int_equal(pwb_feedback_bytes_read(r), strlen(file_text));
	pwb_feedback_close(r);
	pwb_diag_release(&d);

	/* Whole file: every bad line is named, and nothing is handed out. */
	pwb_diag_init(&d);
	pwb_feedback_set *s = (pwb_feedback_set *)1;
	assert_int_equal(pwb_feedback_load(&s, path, &d), PWB_EPARSE);
	assert_null(s);
	assert_int_equal(d.n, 2);
	pwb_diag_release(&d);
	unlink(path);

	/* A clean file loads whole, in order. */
	write_file(
	    "{\"user\": \"u1\", \"chosen\": \"a\", \"rejected\": \"b\"}\n"
	    "{\"user\": \"u2\", \"chosen\": \"c\", \"rejected\": \"d\"}\n");
	pwb_diag_init(&d);
	assert_int_equal(pwb_feedback_load(&s, path, &d), PWB_OK);
	assert_int_equal(pwb_feedback_n(s), 2);
	assert_string_equal(pwb_feedback_get(s, 1)->user, "u2");
	assert_string_equal(pwb_feedback_get(s, 0)->chosen, "a");
	assert_int_equal(pwb_feedback_get(s, 1)->line, 2);
	pwb_feedback_set_free(s);
	pwb_diag_release(&d);
	unlink(path);

	/* Missing files and folders. */
	pwb_diag_init(&d);
	assert_int_equal(pwb_feedback_load(&s, "/nonexistent/f.jsonl", &d),
			 PWB_EIO);
	assert_int_equal(pwb_feedback_open(&r, "/tmp", &d), PWB_EIO);
	assert_int_equal(d.n, 2);
	char msg[512];
	pwb_diag_format(&d.entries[1], msg, sizeof(msg));
	assert_non_null(strstr(msg, "is a folder"));
	pwb_diag_release(&d);
}

/* A line over the cap is refused by its number, read past without being
 * kept, and the next line still reads. */
static void test_long_line(void **state)
{
	(void)state;
	const char *tmp = getenv("TMPDIR");
	snprintf(path, sizeof(path), "%s/pwb-test-feedback-XXXXXX",
		 tmp && *tmp ? tmp : "/tmp");
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	FILE *f = fdopen(fd, "w");
	assert_non_null(f);
	fputs("{\"chosen\": \"", f);
	for (size_t i = 0; i < 17u * 1024 * 1024; i++)
		putc('a', f);
	fputs("\", \"rejected\": \"b\"}\n", f);
	fputs("{\"user\": \"u\", \"chosen\": \"a\", \"rejected\": "
	      "\"b\"}\n",
	      f);
	assert_int_equal(fclose(f), 0);
	pwb_feedback_reader *r;
	pwb_diag d;
	pwb_diag_init(&d);
	assert_int_equal(pwb_feedback_open(&r, path, &d), PWB_OK);
	pwb_feedback ev;
	bool done;
	assert_int_equal(pwb_feedback_next(r, &ev, &done, &d), PWB_EPARSE);
	assert_int_equal(d.entries[0].line, 1);
	assert_non_null(strstr(d.entries[0].message, "line longer than"));
	assert_int_equal(pwb_feedback_next(r, &ev, &done, &d), PWB_OK);
	assert_false(done);
	assert_int_equal(ev.line, 2);
	assert_string_equal(ev.user, "u");
	assert_int_equal(pwb_feedback_next(r, &ev, &done, &d), PWB_OK);
	assert_true(done);
	pwb_feedback_close(r);
	pwb_diag_release(&d);
	unlink(path);
}

/* Every allocation failure is reported, with a message, never a crash or
 * a leak. */
static void test_alloc_failures(void **state)
{
	(void)state;
	write_file(file_text);
	bool reached_end = false;
	for (long k = 1; k < 400 && !reached_end; k++) {
		pwb__alloc_fail_at = k;
		pwb__alloc_count = 0;
		pwb_diag d;
		pwb_diag_init(&d);
		pwb_feedback_set *s = NULL;
		pwb_status st = pwb_feedback_load(&s, path, &d);
		pwb__alloc_fail_at = 0;
		if (st == PWB_EPARSE && pwb__alloc_count < k)
			reached_end = true;
		else
			assert_true(st == PWB_ENOMEM || st == PWB_EPARSE);
		/* One error channel: out of memory says so too. */
		assert_true(d.n >= 1);
		assert_null(s);
		pwb_diag_release(&d);
	}
	assert_true(reached_end);
	unlink(path);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_pair_and_rating),
	    cmocka_unit_test(test_bad_lines),
	    cmocka_unit_test(test_stream),
	    cmocka_unit_test(test_long_line),
	    cmocka_unit_test(test_alloc_failures),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
