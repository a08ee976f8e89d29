/*
 * sse.c - the incremental server-sent events parser (sse.h): bytes are
 * cut into lines, lines into fields, fields into events.
 */
#include "engine/sse.h"

#include <string.h>

void pwb__sse_init(pwb__sse *s, size_t max_line, size_t max_event)
{
	memset(s, 0, sizeof(*s));
	s->max_line = max_line ? max_line : PWB__SSE_MAX_LINE;
	s->max_event = max_event ? max_event : PWB__SSE_MAX_EVENT;
	pwb__buf_init(&s->line, s->max_line);
	/* Each data line adds its '\n', which the event then drops. */
	pwb__buf_init(&s->data, s->max_event + 1);
	pwb__buf_init(&s->type, s->max_line);
}

void pwb__sse_release(pwb__sse *s)
{
	pwb__buf_release(&s->line);
	pwb__buf_release(&s->data);
	pwb__buf_release(&s->type);
}

bool pwb__sse_pending(const pwb__sse *s)
{
	return s->err || s->line.len > 0 || s->data.len > 0;
}

/* Empties a buffer and keeps its memory for the next line or event. */
static void buf_clear(pwb__buf *b)
{
	b->len = 0;
	if (b->s)
		b->s[0] = '\0';
}

static pwb_status fail(pwb__sse *s, pwb_status st)
{
	s->err = st;
	return st;
}

/* ---- fields and events ---- */

static pwb_status take_field(pwb__sse *s, const char *l, size_t len)
{
	if (l[0] == ':')
		return PWB_OK; /* a comment, e.g. a keep-alive */
	const char *colon = memchr(l, ':', len);
	size_t name_len = colon ? (size_t)(colon - l) : len;
	const char *v = colon ? colon + 1 : l + len;
	size_t vlen = colon ? len - name_len - 1 : 0;
	if (vlen && *v == ' ')
		v++, vlen--;
	if (name_len == 4 && !memcmp(l, "data", 4)) {
		pwb__buf_add(&s->data, v, vlen);
		pwb__buf_addc(&s->data, '\n');
		return s->data.err;
	}
	if (name_len == 5 && !memcmp(l, "event", 5)) {
		buf_clear(&s->type);
		pwb__buf_add(&s->type, v, vlen);
		return s->type.err;
	}
	return PWB_OK; /* id, retry and unknown fields: nothing to keep */
}

/* A blank line: the event so far, if it has data. */
static pwb_status dispatch(pwb__sse *s, pwb__sse_event_fn fn, void *user)
{
	pwb_status st = PWB_OK;
	if (s->data.len) {
		s->data.s[--s->data.len] = '\0'; /* the last line's '\n' */
		s->events++;
		st = fn(user, s->type.len ? s->type.s : "message", s->data.s,
			s->data.len);
	}
	buf_clear(&s->data);
	buf_clear(&s->type);
	return st;
}

static pwb_status end_line(pwb__sse *s, pwb__sse_event_fn fn, void *user)
{
	const char *l = s->line.s ? s->line.s : "";
	size_t len = s->line.len;
	if (!s->past_bom) {
		s->past_bom = true;
		if (len >= 3 && !memcmp(l, "\xEF\xBB\xBF", 3))
			l += 3, len -= 3;
	}
	pwb_status st = len ? take_field(s, l, len) : dispatch(s, fn, user);
	buf_clear(&s->line);
	return st;
}

/* ---- bytes into lines ---- */

static size_t line_end(const char *b, size_t from, size_t n)
{
	while (from < n && b[from] != '\n' && b[from] != '\r')
		from++;
	return from;
}

pwb_status pwb__sse_feed(pwb__sse *s, const char *bytes, size_t n,
			 pwb__sse_event_fn fn, void *user)
{
	if (s->err)
		return s->err;
	size_t i = 0;
	while (i < n) {
		/* "\r\n" is one line end, even when split between feeds. */
		if (s->after_cr) {
			s->after_cr = false;
			if (bytes[i] == '\n') {
				i++;
				continue;
			}
		}
		size_t j = line_end(bytes, i, n);
		if (j > i) {
			pwb__buf_add(&s->line, bytes + i, j - i);
			if (s->line.err)
				return fail(s, s->line.err);
		}
		if (j == n)
			break;
		s->after_cr = bytes[j] == '\r';
		i = j + 1;
		pwb_status st = end_line(s, fn, user);
		if (st)
			return fail(s, st);
	}
	return PWB_OK;
}
