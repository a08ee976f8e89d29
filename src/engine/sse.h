/*
 * sse.h - an incremental parser of server-sent events (the WHATWG
 * "text/event-stream" format), fed bytes as they arrive from the network
 * in pieces split anywhere. Internal to src/engine/; the upstream engine
 * reads OpenAI-style streams with it, and tests/fuzz/fuzz_sse.c fuzzes it.
 *
 * Lines end in "\r\n", "\n" or "\r"; a line starting with ':' is a
 * comment; "field: value" lines set fields ("data" lines are joined with
 * '\n', "event" names the event, "id" and "retry" and unknown fields are
 * ignored, as the format says); a blank line ends an event, which is
 * handed to the callback when it has data. A leading UTF-8 BOM is skipped.
 *
 * Every byte it keeps has a cap: a line longer than max_line, or an
 * event whose data exceeds max_event, stops the stream with
 * PWB_ETOOLARGE, so a hostile server can make it use neither unbounded
 * memory nor time beyond a pass over its bytes.
 *
 * A parser is owned by one thread at a time; init/release pair up.
 */
#ifndef PWB_ENGINE_SSE_H
#define PWB_ENGINE_SSE_H

#include "util/util.h"

/*
 * One event: its type ("message" unless an "event" field named another)
 * and its data (NUL-terminated, len bytes, may contain NUL bytes). Both
 * are borrowed for the call. A non-zero return stops the stream: feed()
 * then returns it, and every later feed() returns it too.
 */
typedef pwb_status (*pwb__sse_event_fn)(void *user, const char *type,
					const char *data, size_t len);

typedef struct pwb__sse {
	pwb__buf line; /* the line being read, without its end */
	pwb__buf data; /* the event's data lines, each ending in '\n' */
	pwb__buf type; /* the event's "event" field */
	size_t max_line;
	size_t max_event;
	bool after_cr;	/* the last byte was '\r': a '\n' next is its pair */
	bool past_bom;	/* the first line has been read */
	pwb_status err; /* sticky: the first failure */
	size_t events;	/* events handed to the callback */
} pwb__sse;

#define PWB__SSE_MAX_LINE (1u << 20)
#define PWB__SSE_MAX_EVENT (4u << 20)

/* max_line and max_event of 0 take the defaults above. */
void pwb__sse_init(pwb__sse *s, size_t max_line, size_t max_event);
void pwb__sse_release(pwb__sse *s);

/*
 * Parses n more bytes, calling fn for each event they complete. Returns
 * PWB_OK, PWB_ETOOLARGE (a cap was passed), PWB_ENOMEM, or what fn
 * returned.
 */
pwb_status pwb__sse_feed(pwb__sse *s, const char *bytes, size_t n,
			 pwb__sse_event_fn fn, void *user);

/*
 * True when the bytes fed so far end inside an event: a line without its
 * end, or data lines without the blank line that ends them. At the end of
 * a stream this means it was cut (the format drops such an event). Also
 * true once a feed has failed: a refused stream is never complete.
 */
bool pwb__sse_pending(const pwb__sse *s);

#endif
