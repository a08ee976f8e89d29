/*
 * fuzz_feedback.c - libFuzzer target for the feedback event parser,
 * pwb_feedback_parse (DESIGN §4.3; every JSONL import and every feedback
 * body goes through it).
 *
 * The input is split into lines, each parsed into one set. Beyond memory
 * errors and leaks, the target aborts when a contract of pwb/prefs.h
 * breaks: a refused line that adds an event or leaves no message; an
 * accepted pair with an empty or missing text or two equal texts; an
 * accepted rating outside its scale; an event whose line number is not
 * the line it came from.
 */
#include "pwb/prefs.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void die(const char *what)
{
	fprintf(stderr, "fuzz_feedback: %s\n", what);
	abort();
}

static void check(const pwb_feedback *e, int line)
{
	if (e->line != line)
		die("an event with the wrong line number");
	if (!e->user || !e->prompt)
		die("an event without user or prompt strings");
	if (e->kind == PWB_FEEDBACK_PAIR) {
		if (!e->chosen || !e->rejected || !*e->chosen ||
		    !*e->rejected || e->response)
			die("a pair with a missing or empty text");
		if (!strcmp(e->chosen, e->rejected))
			die("a pair of equal texts");
	} else if (e->kind == PWB_FEEDBACK_RATING) {
		if (!e->response || !*e->response || e->chosen || e->rejected)
			die("a rating with a missing or empty response");
		if (!(e->scale_lo < e->scale_hi && e->rating >= e->scale_lo &&
		      e->rating <= e->scale_hi))
			die("a rating outside its scale");
	} else {
		die("an event of unknown kind");
	}
	if (*pwb_rater_role_name(e->rater_role) == '\0' &&
	    e->rater_role != PWB_RATER_NONE)
		die("a rater role without a name");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	pwb_feedback_set *s;
	if (pwb_feedback_set_new(&s))
		return 0;
	size_t start = 0;
	int line = 0;
	while (start <= size) {
		const uint8_t *nl = memchr(data + start, '\n', size - start);
		size_t end = nl ? (size_t)(nl - data) : size;
		line++;
		/* A copy of exactly this line, so that ASan sees overreads. */
		size_t len = end - start;
		char *copy = malloc(len ? len : 1);
		if (!copy)
			break;
		memcpy(copy, data + start, len);
		pwb_diag d;
		pwb_diag_init(&d);
		size_t before = pwb_feedback_n(s);
		pwb_status st =
		    pwb_feedback_parse(s, copy, len, "fuzz", line, &d);
		free(copy);
		if (st == PWB_OK) {
			if (pwb_feedback_n(s) != before + 1)
				die("an accepted line added no event");
			check(pwb_feedback_get(s, before), line);
		} else {
			if (pwb_feedback_n(s) != before)
				die("a refused line added an event");
			if (d.n == 0)
				die("a refusal without a message");
		}
		pwb_diag_release(&d);
		if (!nl)
			break;
		start = end + 1;
	}
	pwb_feedback_set_free(s);
	return 0;
}
