/*
 * stream.c - streaming within the output rails (docs/pipeline.md).
 *
 * The rule: generated text is held back until a sentence ends (., ! or ?
 * followed by white space, or a line break) or until stream_hold_bytes
 * are waiting (then it is cut at the last white space, else at a UTF-8
 * character boundary). The whole answer so far is then checked; text is
 * released only when that check allows it. A block ends the stream: the
 * caller gets the refusal and no byte of the blocked piece. When a check
 * asks for a redaction, nothing more is released until the answer is
 * complete; the rest is then released redacted.
 */
#include "pipeline/pipeline_int.h"

#include <stdlib.h>
#include <string.h>

typedef struct stream_run {
	pwb_pipeline *pl;
	const pwb_request *req;
	const pwb_effective *e;
	pwb__buf text;	 /* everything generated so far */
	size_t released; /* of it, bytes handed to the caller */
	bool hold_all;	 /* a redaction is due: release at the end */
	bool blocked;
	bool cancelled; /* the caller asked to stop */
	pwb_status err;
	pwb_diag *diag;
	pwb__buf out; /* what the caller got, for the response's content */
} stream_run;

static bool is_space(char c)
{
	return c == ' ' || c == '\n' || c == '\t' || c == '\r';
}

/* Where text[from..len) may be released up to: after the last sentence
 * end, or at the byte limit; `from` when nothing is ready yet. */
static size_t release_point(const stream_run *s)
{
	const char *t = s->text.s;
	size_t len = s->text.len, from = s->released, at = from;
	for (size_t i = from; i < len; i++) {
		if (t[i] == '\n')
			at = i + 1;
		else if ((t[i] == '.' || t[i] == '!' || t[i] == '?') &&
			 i + 1 < len && is_space(t[i + 1]))
			at = i + 1;
	}
	if (at > from || len - from < s->pl->p.stream_hold_bytes)
		return at;
	for (size_t i = len; i > from; i--)
		if (is_space(t[i - 1]))
			return i;
	/* No space: release all but a character still being generated
	 * (a lead byte whose continuation bytes have not all come). */
	size_t i = len;
	while (i > from && ((unsigned char)t[i - 1] & 0xC0) == 0x80)
		i--;
	if (i > from) {
		unsigned char c = (unsigned char)t[i - 1];
		size_t need = (c & 0xE0) == 0xC0   ? 2
			      : (c & 0xF0) == 0xE0 ? 3
			      : (c & 0xF8) == 0xF0 ? 4
						   : 0;
		if (need > len - (i - 1))
			return i - 1;
	}
	return len;
}

/* Released pieces end at character boundaries; a model's stray bytes
 * (and NULs) reach the caller as U+FFFD. */
static void emit(stream_run *s, const char *text, size_t n, bool refusal)
{
	if (!n || s->cancelled)
		return;
	size_t at = s->out.len;
	pwb__utf8_fix(&s->out, text, n, false);
	if (s->out.err)
		s->err = s->out.err;
	else if (s->req->on_text(s->req->on_text_user, s->out.s + at,
				 s->out.len - at, refusal))
		s->cancelled = true;
}

static void emit_refusal(stream_run *s, const pwb_decision *d)
{
	const char *refusal = pwb_decision_refusal(d);
	s->blocked = true;
	if (s->out.len)
		emit(s, "\n\n", 2, true);
	if (refusal)
		emit(s, refusal, strlen(refusal), true);
}

/* Checks the text up to `upto` and releases what it allows. */
static void check_and_release(stream_run *s, size_t upto, bool final)
{
	pwb_decision *d = NULL;
	pwb_status st =
	    pwb_bounds_check(&d, s->pl->p.bounds, s->e, PWB_ROLE_RESPONSE,
			     s->text.s ? s->text.s : "", upto, s->diag);
	if (st) {
		s->err = st;
		return;
	}
	pwb_verdict v = pwb_decision_verdict(d);
	if (v == PWB_VERDICT_BLOCK) {
		emit_refusal(s, d);
	} else if (v == PWB_VERDICT_REDACT || s->hold_all) {
		s->hold_all = true;
		if (final && v == PWB_VERDICT_REDACT) {
			const char *red = pwb_decision_redacted(d);
			size_t rlen = pwb_decision_redacted_len(d);
			size_t from =
			    pwb_decision_redacted_offset(d, s->released);
			emit(s, red + from, rlen - from, false);
			s->released = upto;
		} else if (final) {
			emit(s, s->text.s + s->released, upto - s->released,
			     false);
			s->released = upto;
		}
	} else {
		emit(s, s->text.s + s->released, upto - s->released, false);
		s->released = upto;
	}
	pwb_decision_free(d);
}

static int on_piece(void *user, size_t cand, const char *text, size_t len)
{
	stream_run *s = user;
	(void)cand;
	pwb__buf_add(&s->text, text, len);
	if (s->text.err) {
		s->err = s->text.err;
		return 1;
	}
	size_t upto = release_point(s);
	if (upto > s->released && !s->hold_all)
		check_and_release(s, upto, false);
	return s->err || s->blocked || s->cancelled;
}

pwb_status pwb__stream_generate(pwb_pipeline *pl, const pwb_request *req,
				const pwb_effective *e,
				const pwb_chat_msg *msgs, size_t n_msgs,
				const pwb_gen_params *gp, pwb_response *r,
				pwb_generation *gen, bool *cancelled,
				pwb_diag *diag)
{
	stream_run s = {.pl = pl, .req = req, .e = e, .diag = diag};
	pwb__buf_init(&s.text, 0);
	pwb__buf_init(&s.out, 0);
	pwb_gen_params p = *gp;
	p.on_text = on_piece;
	p.on_text_user = &s;
	pwb_status st =
	    pwb_engine_generate(pl->p.engine, msgs, n_msgs, &p, gen, diag);
	/* Cancelled by the request's cancel too: the rest is not released. */
	if (!st && gen->n && gen->cands[0].finish == PWB_FINISH_CANCELLED)
		s.cancelled = true;
	if (!st && !s.err && !s.blocked && !s.cancelled)
		check_and_release(&s, s.text.len, true);
	if (!st)
		st = s.err;
	*cancelled = s.cancelled;
	if (!st) {
		r->content = pwb__buf_detach(&s.out);
		if (!r->content)
			st = PWB_ENOMEM;
	}
	pwb__buf_release(&s.out);
	pwb__buf_release(&s.text);
	return st;
}
