/*
 * fuzz_sse.c - libFuzzer target for the server-sent events parser
 * (src/engine/sse.h), which reads every byte an OpenAI-compatible
 * endpoint streams to the upstream engine.
 *
 * The input is parsed three times, with small caps so that they are
 * reached: whole, one byte at a time, and in pieces whose sizes come from
 * the input itself. The target aborts when an invariant breaks:
 *
 *   - the three parses give the same events (type and data), the same
 *     status and the same pending state: where the network cuts a stream
 *     never matters;
 *   - an event's data fits the event cap, its type the line cap, and a
 *     type never holds a line end; data holds no '\r' (a line end);
 *   - a refused stream stays refused: feeding more returns the same status
 *     and gives no event.
 *
 * Build with -DPWB_FUZZ=ON and CC=clang; see tests/fuzz/run.sh.
 */
#include "engine/sse.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_LINE 256
#define MAX_EVENT 1024

static void die(const char *what)
{
	fprintf(stderr, "fuzz_sse: %s\n", what);
	abort();
}

/* Every event of a parse, as "type\0data" records with their lengths. */
typedef struct trace {
	pwb__buf all;
	size_t events;
} trace;

static pwb_status on_event(void *user, const char *type, const char *data,
			   size_t len)
{
	trace *t = user;
	if (len > MAX_EVENT)
		die("an event over the cap");
	if (strlen(type) > MAX_LINE || strpbrk(type, "\r\n"))
		die("a type over the cap or with a line end");
	if (memchr(data, '\r', len))
		die("data with a carriage return");
	if (data[len] != '\0')
		die("data not NUL-terminated");
	pwb__buf_addf(&t->all, "%s|%zu|", type, len);
	pwb__buf_add(&t->all, data, len);
	t->events++;
	/* An event whose data is "stop" is refused by the reader. */
	return len == 4 && !memcmp(data, "stop", 4) ? PWB_EIO : PWB_OK;
}

typedef struct result {
	trace t;
	pwb_status st;
	bool pending;
} result;

/* Parses data in pieces: sizes[i % n_sizes] bytes each (0 counts as 1). */
static void parse(result *r, const uint8_t *data, size_t size,
		  const uint8_t *sizes, size_t n_sizes)
{
	pwb__sse s;
	pwb__sse_init(&s, MAX_LINE, MAX_EVENT);
	memset(r, 0, sizeof(*r));
	pwb__buf_init(&r->t.all, 0);
	size_t at = 0;
	for (size_t i = 0; at < size && !r->st; i++) {
		size_t n = n_sizes ? sizes[i % n_sizes] : size;
		if (!n)
			n = 1;
		if (n > size - at)
			n = size - at;
		r->st = pwb__sse_feed(&s, (const char *)data + at, n, on_event,
				      &r->t);
		at += n;
	}
	r->pending = pwb__sse_pending(&s);
	if (r->st) {
		size_t before = r->t.events;
		if (pwb__sse_feed(&s, "\n\ndata: x\n\n", 11, on_event, &r->t) !=
			r->st ||
		    r->t.events != before)
			die("a refused stream went on");
	}
	pwb__sse_release(&s);
	if (r->t.all.err)
		die("out of memory in the target");
}

static void same(const result *a, const result *b, const char *how)
{
	if (a->st != b->st || a->pending != b->pending ||
	    a->t.events != b->t.events || a->t.all.len != b->t.all.len ||
	    (a->t.all.len && memcmp(a->t.all.s, b->t.all.s, a->t.all.len))) {
		fprintf(stderr,
			"fuzz_sse: %s: %zu events (status %d) vs %zu "
			"(status %d)\n",
			how, a->t.events, a->st, b->t.events, b->st);
		abort();
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* The first byte says how many of the next ones are piece sizes. */
	size_t n_sizes = size ? data[0] % 8 : 0;
	if (n_sizes + 1 > size)
		n_sizes = 0;
	const uint8_t *sizes = data + 1;
	const uint8_t *body = size ? data + 1 + n_sizes : data;
	size_t len = size ? size - 1 - n_sizes : 0;
	static const uint8_t one = 1;

	result whole, bytes, pieces;
	parse(&whole, body, len, NULL, 0);
	parse(&bytes, body, len, &one, 1);
	parse(&pieces, body, len, sizes, n_sizes);
	same(&whole, &bytes, "whole vs byte by byte");
	same(&whole, &pieces, "whole vs pieces");
	pwb__buf_release(&whole.t.all);
	pwb__buf_release(&bytes.t.all);
	pwb__buf_release(&pieces.t.all);
	return 0;
}
