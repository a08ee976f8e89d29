/*
 * engine.c - what every engine shares: defaults, checks of a call, the
 * dispatch to the engine's operations, stop strings and streaming, and
 * the guard detector on an engine (docs/engine.md).
 */
#include "engine/engine_int.h"

#include <stdlib.h>
#include <string.h>

/* Bytes of one stop string. */
#define PWB__MAX_STOP_LEN 64

pwb_gen_params pwb_gen_default_params(void)
{
	return (pwb_gen_params){
	    .n = 1,
	    .seed = 1,
	    .temperature = 0.8,
	    .top_p = 0.95,
	    .max_tokens = 256,
	};
}

const char *pwb_finish_str(pwb_finish f)
{
	switch (f) {
	case PWB_FINISH_STOP:
		return "stop";
	case PWB_FINISH_LENGTH:
		return "length";
	case PWB_FINISH_CANCELLED:
		return "cancelled";
	}
	return "stop";
}

void pwb_generation_release(pwb_generation *g)
{
	if (!g)
		return;
	for (size_t i = 0; i < g->n; i++)
		free(g->cands[i].text);
	free(g->cands);
	memset(g, 0, sizeof(*g));
}

bool pwb_chat_role_known(const char *r)
{
	return r && (!strcmp(r, "system") || !strcmp(r, "user") ||
		     !strcmp(r, "assistant"));
}

pwb_status pwb__gen_check(const pwb_engine *e, const pwb_chat_msg *msgs,
			  size_t n_msgs, const pwb_gen_params *p,
			  pwb_diag *diag)
{
	const char *who = e->name;
	if (!n_msgs || !msgs || n_msgs > PWB_ENGINE_MAX_MSGS) {
		pwb_diag_add(diag, NULL, 0, 0,
			     "%s: a chat needs 1 to %d messages", who,
			     PWB_ENGINE_MAX_MSGS);
		return PWB_EINVAL;
	}
	for (size_t i = 0; i < n_msgs; i++) {
		if (!pwb_chat_role_known(msgs[i].role)) {
			pwb_diag_add(diag, NULL, 0, 0,
				     "%s: message %zu has role '%s' where "
				     "system, user or assistant was expected",
				     who, i + 1,
				     msgs[i].role ? msgs[i].role : "(none)");
			return PWB_EINVAL;
		}
		if (!msgs[i].content ||
		    strlen(msgs[i].content) > PWB_ENGINE_MAX_MSG_BYTES) {
			pwb_diag_add(diag, NULL, 0, 0,
				     "%s: message %zu has %s", who, i + 1,
				     msgs[i].content
					 ? "more than 4 MiB of text"
					 : "no content");
			return msgs[i].content ? PWB_ETOOLARGE : PWB_EINVAL;
		}
	}
	const char *bad = NULL;
	if (!p->n || p->n > PWB_ENGINE_MAX_N)
		bad = "n must be 1 to 16";
	else if (!(p->temperature >= 0 && p->temperature <= 10))
		bad = "temperature must be 0 to 10";
	else if (!(p->top_p > 0 && p->top_p <= 1))
		bad = "top_p must be in (0, 1]";
	else if (!p->max_tokens || p->max_tokens > PWB_ENGINE_MAX_TOKENS)
		bad = "max_tokens must be 1 to 8192";
	else if (p->n_stop > PWB_ENGINE_MAX_STOP || (p->n_stop && !p->stop))
		bad = "at most 8 stop strings";
	else if (p->timeout_ms < 0)
		bad = "timeout_ms must not be negative";
	for (size_t i = 0; !bad && i < p->n_stop; i++)
		if (!p->stop[i] || !*p->stop[i] ||
		    strlen(p->stop[i]) > PWB__MAX_STOP_LEN)
			bad = "a stop string must have 1 to 64 bytes";
	if (bad) {
		pwb_diag_add(diag, NULL, 0, 0, "%s: %s", who, bad);
		return PWB_EINVAL;
	}
	return PWB_OK;
}

pwb_status pwb_engine_generate(pwb_engine *e, const pwb_chat_msg *msgs,
			       size_t n_msgs, const pwb_gen_params *p,
			       pwb_generation *out, pwb_diag *diag)
{
	memset(out, 0, sizeof(*out));
	if (!e || !p) {
		pwb_diag_add(diag, NULL, 0, 0, "generate: no engine or params");
		return PWB_EINVAL;
	}
	pwb_status st = pwb__gen_check(e, msgs, n_msgs, p, diag);
	if (st)
		return st;
	size_t mark = pwb__diag_mark(diag);
	double t0 = pwb__now();
	st = e->ops->generate(e, msgs, n_msgs, p, out, diag);
	if (st) {
		pwb_generation_release(out);
		return pwb__diag_fail(diag, mark, st, e->name);
	}
	out->seconds = pwb__now() - t0;
	return PWB_OK;
}

size_t pwb_engine_embed_dim(const pwb_engine *e)
{
	return e ? e->embed_dim : 0;
}

pwb_status pwb_engine_embed(pwb_engine *e, const char *text, size_t len,
			    float *out, pwb_diag *diag)
{
	if (!e || !text || !out) {
		pwb_diag_add(diag, NULL, 0, 0, "embed: no engine or text");
		return PWB_EINVAL;
	}
	if (!e->embed_dim || !e->ops->embed) {
		pwb_diag_add(diag, NULL, 0, 0, "%s gives no embeddings",
			     e->name);
		return PWB_EINVAL;
	}
	size_t mark = pwb__diag_mark(diag);
	return pwb__diag_fail(diag, mark, e->ops->embed(e, text, len, out, diag),
			      e->name);
}

const char *pwb_engine_name(const pwb_engine *e)
{
	return e ? e->name : "(no engine)";
}

void pwb_engine_free(pwb_engine *e)
{
	if (e)
		e->ops->destroy(e);
}

/* ---- candidates: stop strings and streaming ---- */

void pwb__cand_init(pwb__cand *c)
{
	memset(c, 0, sizeof(*c));
	pwb__buf_init(&c->text, 0);
}

void pwb__cand_release(pwb__cand *c)
{
	pwb__buf_release(&c->text);
}

bool pwb__cand_add(pwb__cand *c, const pwb_gen_params *p, const char *s,
		   size_t n)
{
	if (c->done)
		return true;
	/* An answer starts at its first visible character: the space or
	 * line break a model writes after "Assistant:" is no part of it. */
	while (!c->text.len && n &&
	       (*s == ' ' || *s == '\n' || *s == '\r' || *s == '\t')) {
		s++;
		n--;
	}
	size_t before = c->text.len;
	pwb__buf_add(&c->text, s, n);
	if (c->text.err)
		return c->done = true;
	/* A stop string can end only in the new bytes; it may start up to
	 * its length - 1 bytes before them. The text ends before the
	 * earliest one, whichever string it is. */
	char *first = NULL;
	for (size_t i = 0; i < p->n_stop; i++) {
		size_t sl = strlen(p->stop[i]);
		size_t from = before >= sl ? before - sl + 1 : 0;
		if (c->text.len < sl)
			continue;
		char *hit = memmem(c->text.s + from, c->text.len - from,
				   p->stop[i], sl);
		if (hit && (!first || hit < first))
			first = hit;
	}
	if (!first)
		return false;
	c->text.len = (size_t)(first - c->text.s);
	c->text.s[c->text.len] = '\0';
	c->finish = PWB_FINISH_STOP;
	return c->done = true;
}

/* The bytes at the end of the text that could still begin a stop string. */
static size_t held_back(const pwb__cand *c, const pwb_gen_params *p)
{
	size_t hold = 0;
	for (size_t i = 0; i < p->n_stop; i++) {
		size_t sl = strlen(p->stop[i]);
		for (size_t k = sl - 1; k > hold; k--)
			if (k <= c->text.len &&
			    !memcmp(c->text.s + c->text.len - k, p->stop[i], k)) {
				hold = k;
				break;
			}
	}
	return hold;
}

void pwb__cand_flush(pwb__cand *c, const pwb_gen_params *p, size_t index)
{
	if (!p->on_text || c->finish == PWB_FINISH_CANCELLED)
		return;
	size_t upto = c->text.len - (c->done ? 0 : held_back(c, p));
	if (upto <= c->sent)
		return;
	if (p->on_text(p->on_text_user, index, c->text.s + c->sent,
		       upto - c->sent)) {
		c->finish = PWB_FINISH_CANCELLED;
		c->done = true;
	}
	c->sent = upto;
}

bool pwb__cands_cancel(pwb__cand *c, size_t n, const pwb_gen_params *p)
{
	if (!p->cancel || !p->cancel(p->cancel_user))
		return false;
	for (size_t i = 0; i < n; i++)
		if (!c[i].done) {
			c[i].finish = PWB_FINISH_CANCELLED;
			c[i].done = true;
		}
	return true;
}

pwb_status pwb__cands_to_generation(pwb__cand *c, size_t n,
				    const pwb_gen_params *p,
				    pwb_generation *out)
{
	if (!(out->cands = pwb__calloc(n, sizeof(*out->cands))))
		return PWB_ENOMEM;
	out->n = n;
	for (size_t i = 0; i < n; i++) {
		if (c[i].text.err)
			return c[i].text.err;
		pwb_candidate *d = &out->cands[i];
		d->len = c[i].text.len;
		d->text = c[i].text.len ? pwb__buf_detach(&c[i].text)
					: pwb__strdup("");
		if (!d->text)
			return PWB_ENOMEM;
		d->finish = c[i].finish;
		d->tokens = c[i].tokens;
		d->seed = p->seed + i;
		out->completion_tokens += c[i].tokens;
	}
	return PWB_OK;
}

/* ---- prompts ---- */

pwb_status pwb_engine_plain_prompt(const pwb_chat_msg *msgs, size_t n_msgs,
				   char **out)
{
	pwb__buf b;
	pwb__buf_init(&b, 0);
	for (size_t i = 0; i < n_msgs; i++) {
		const char *r = msgs[i].role;
		pwb__buf_addf(&b, "%c%s: %s\n\n",
			      r[0] >= 'a' && r[0] <= 'z' ? r[0] - 'a' + 'A'
							 : r[0],
			      r + 1, msgs[i].content);
	}
	pwb__buf_adds(&b, "Assistant:");
	if (b.err) {
		pwb__buf_release(&b);
		return PWB_ENOMEM;
	}
	*out = pwb__buf_detach(&b);
	return *out ? PWB_OK : PWB_ENOMEM;
}

/* ---- the guard detector on an engine ---- */

pwb_status pwb_engine_guard_fn(void *guard_user, const char *prompt,
			       char **answer, pwb_diag *diag)
{
	const pwb_engine_guard *g = guard_user;
	*answer = NULL;
	if (!g || !g->engine)
		return PWB_EINVAL;
	pwb_gen_params p = pwb_gen_default_params();
	p.temperature = 0;
	p.max_tokens = g->max_tokens ? g->max_tokens : 32;
	p.timeout_ms = g->timeout_ms ? g->timeout_ms : 10000;
	pwb_chat_msg m = {"user", prompt};
	pwb_generation gen;
	pwb_status st = pwb_engine_generate(g->engine, &m, 1, &p, &gen, diag);
	if (st)
		return st;
	*answer = gen.cands[0].text;
	gen.cands[0].text = NULL;
	pwb_generation_release(&gen);
	return PWB_OK;
}
