/*
 * chat.c - POST /v1/chat/completions: an OpenAI chat request in, the
 * pipeline's bounded, personalised answer out, whole or as an event
 * stream (docs/server.md). Unknown request fields are ignored, as
 * OpenAI's API does; a blocked answer has finish_reason "content_filter";
 * every response carries the `pwb` object (the decision and what bounded
 * it).
 */
#include "server/server_int.h"

#include <sodium.h>
#include <stdlib.h>
#include <string.h>

void pwb__srv_chat_release(srv_chat *c)
{
	for (size_t i = 0; i < c->n_msgs; i++)
		free(c->texts ? c->texts[i] : NULL);
	free(c->texts);
	free(c->msgs);
	pwb_attrs_free(c->attrs);
}

static bool bad(srv_req *r, const char *param, const char *msg)
{
	pwb__srv_error_at(r, 400, "invalid_request_error", "invalid_value",
			  param, "%s: %s", param, msg);
	return false;
}

/* A message's content: a string, or text parts joined. */
static bool msg_text(srv_req *r, json_t *content, size_t i, char **out)
{
	*out = NULL;
	if (json_is_string(content)) {
		*out = pwb__strndup(json_string_value(content),
				    json_string_length(content));
		return *out || bad(r, "messages", "out of memory");
	}
	if (json_is_null(content) || !content) {
		*out = pwb__strdup("");
		return *out || bad(r, "messages", "out of memory");
	}
	if (!json_is_array(content))
		return bad(r, "messages",
			   "content must be a string or an array of text "
			   "parts");
	pwb__buf b;
	pwb__buf_init(&b, PWB_ENGINE_MAX_MSG_BYTES + 1);
	size_t k;
	json_t *part;
	json_array_foreach(content, k, part)
	{
		const char *type =
		    json_string_value(json_object_get(part, "type"));
		json_t *text = json_object_get(part, "text");
		if (!type || strcmp(type, "text") || !json_is_string(text)) {
			pwb__buf_release(&b);
			char m[128];
			snprintf(m, sizeof(m),
				 "message %zu: only text parts are supported "
				 "({\"type\": \"text\", \"text\": ...})",
				 i + 1);
			return bad(r, "messages", m);
		}
		if (k)
			pwb__buf_addc(&b, '\n');
		pwb__buf_add(&b, json_string_value(text),
			     json_string_length(text));
	}
	if (b.err) {
		pwb__buf_release(&b);
		pwb__srv_error(r, 413, "invalid_request_error",
			       "message_too_large",
			       "message %zu is larger than %u bytes", i + 1,
			       PWB_ENGINE_MAX_MSG_BYTES);
		return false;
	}
	*out = b.len ? pwb__buf_detach(&b) : pwb__strdup("");
	pwb__buf_release(&b);
	return *out || bad(r, "messages", "out of memory");
}

static bool parse_messages(srv_chat *c, json_t *body)
{
	srv_req *r = c->r;
	json_t *msgs = json_object_get(body, "messages");
	if (!json_is_array(msgs) || !json_array_size(msgs))
		return bad(r, "messages",
			   "give a non-empty array of {role, content}");
	size_t n = json_array_size(msgs);
	if (n > PWB_ENGINE_MAX_MSGS) {
		pwb__srv_error(r, 413, "invalid_request_error",
			       "too_many_messages", "%zu messages; at most %d",
			       n, PWB_ENGINE_MAX_MSGS);
		return false;
	}
	c->msgs = pwb__calloc(n, sizeof(*c->msgs));
	c->texts = pwb__calloc(n, sizeof(*c->texts));
	if (!c->msgs || !c->texts)
		return bad(r, "messages", "out of memory");
	c->n_msgs = n;
	for (size_t i = 0; i < n; i++) {
		json_t *m = json_array_get(msgs, i);
		const char *role =
		    json_string_value(json_object_get(m, "role"));
		if (!json_is_object(m) || !role) {
			char msg[96];
			snprintf(msg, sizeof(msg),
				 "message %zu needs a string \"role\"", i + 1);
			return bad(r, "messages", msg);
		}
		if (!msg_text(r, json_object_get(m, "content"), i,
			      &c->texts[i]))
			return false;
		/* "developer" is OpenAI's newer name for the system role. */
		c->msgs[i].role = strcmp(role, "developer") ? role : "system";
		c->msgs[i].content = c->texts[i];
	}
	return true;
}

/* pwb's own request options: {"jurisdictions": [...], "attributes":
 * {"user.age": 17, ...}}. */
static bool parse_pwb(srv_chat *c, json_t *body)
{
	srv_req *r = c->r;
	json_t *p = json_object_get(body, "pwb");
	if (!p || json_is_null(p))
		return true;
	if (!json_is_object(p))
		return bad(r, "pwb", "must be an object");
	json_t *jur = json_object_get(p, "jurisdictions");
	if (jur) {
		if (!json_is_array(jur) ||
		    json_array_size(jur) > PWB_ARRAY_LEN(c->jur))
			return bad(r, "pwb.jurisdictions",
				   "must be an array of at most 16 ids");
		size_t i;
		json_t *v;
		json_array_foreach(jur, i, v)
		{
			if (!pwb__srv_id_ok(json_string_value(v)))
				return bad(r, "pwb.jurisdictions",
					   "each must be a jurisdiction id");
			c->jur[i] = json_string_value(v);
		}
		c->req.jurisdictions = c->jur;
		c->req.n_jurisdictions = json_array_size(jur);
	}
	json_t *attrs = json_object_get(p, "attributes");
	if (!attrs)
		return true;
	if (!json_is_object(attrs) || json_object_size(attrs) > 64)
		return bad(r, "pwb.attributes",
			   "must be an object of at most 64 attributes");
	if (pwb_attrs_new(&c->attrs))
		return bad(r, "pwb.attributes", "out of memory");
	const char *k;
	json_t *v;
	json_object_foreach(attrs, k, v)
	{
		pwb_status st;
		if (!pwb__srv_id_ok(k))
			return bad(r, "pwb.attributes",
				   "an attribute name is 1 to 256 printable "
				   "bytes");
		if (json_is_string(v))
			st = pwb_attrs_set_string(c->attrs, k,
						  json_string_value(v));
		else if (json_is_boolean(v))
			st = pwb_attrs_set_bool(c->attrs, k, json_is_true(v));
		else if (json_is_number(v))
			st = pwb_attrs_set_number(c->attrs, k,
						  json_number_value(v));
		else if (json_is_null(v))
			st = pwb_attrs_set_null(c->attrs, k);
		else
			return bad(r, "pwb.attributes",
				   "values are strings, numbers, booleans or "
				   "null");
		if (st)
			return bad(r, "pwb.attributes", pwb_status_str(st));
	}
	c->req.attrs = c->attrs;
	return true;
}

/* An integer field in [lo, hi], or absent (keeps *out). */
static bool int_field(srv_req *r, json_t *body, const char *key, json_int_t lo,
		      json_int_t hi, json_int_t *out)
{
	json_t *v = json_object_get(body, key);
	if (!v || json_is_null(v))
		return true;
	if (!json_is_integer(v) || json_integer_value(v) < lo ||
	    json_integer_value(v) > hi) {
		char m[96];
		snprintf(m, sizeof(m), "must be a whole number in %lld..%lld",
			 (long long)lo, (long long)hi);
		return bad(r, key, m);
	}
	*out = json_integer_value(v);
	return true;
}

bool pwb__srv_chat_parse(srv_chat *c, json_t *body, const char *user)
{
	srv_req *r = c->r;
	const char *model = json_string_value(json_object_get(body, "model"));
	if (!model)
		return bad(r, "model", "give the model's id (GET /v1/models)");
	if (strcmp(model, r->srv->model_name)) {
		pwb__srv_error_at(r, 404, "invalid_request_error",
				  "model_not_found", "model",
				  "the model '%.200s' does not exist; this "
				  "server serves '%s'",
				  model, r->srv->model_name);
		return false;
	}
	json_int_t n = 1, max_tokens = 0, seed = 0;
	/* --max-tokens is the default and the cap: a client does not buy
	 * more of the engine than the deployer allows. */
	size_t cap_z = r->srv->p.pipeline.max_tokens
			   ? r->srv->p.pipeline.max_tokens
			   : pwb_pipeline_default_params().max_tokens;
	json_int_t cap = (json_int_t)cap_z;
	if (!int_field(r, body, "n", 1, (json_int_t)r->srv->p.max_n, &n) ||
	    !int_field(r, body, "max_tokens", 1, cap, &max_tokens) ||
	    !int_field(r, body, "max_completion_tokens", 1, cap, &max_tokens) ||
	    !int_field(r, body, "seed", 0, INT64_MAX, &seed))
		return false;
	json_t *stream = json_object_get(body, "stream");
	if (stream && !json_is_boolean(stream) && !json_is_null(stream))
		return bad(r, "stream", "must be true or false");
	c->stream = json_is_true(stream);
	json_t *so = json_object_get(body, "stream_options");
	c->usage_chunk =
	    c->stream && json_is_true(json_object_get(so, "include_usage"));
	if (c->stream && n > 1)
		return bad(r, "n",
			   "a streamed answer is one choice; ask for n: 1 or "
			   "stream: false");
	if (!parse_messages(c, body) || !parse_pwb(c, body))
		return false;
	c->n = (size_t)n;
	c->req.org = r->key.org;
	c->req.user = user;
	c->req.msgs = c->msgs;
	c->req.n_msgs = c->n_msgs;
	/* The org's candidates, or as many as the choices asked for when
	 * that is more. */
	c->req.min_n = (size_t)n;
	c->req.seed = (uint64_t)seed;
	c->req.max_tokens = (size_t)max_tokens;
	return true;
}

/* ---- the response ---- */

static const char *finish_of(const pwb_response *resp, size_t alt)
{
	if (resp->blocked || alt == SIZE_MAX ||
	    resp->alts[alt].verdict == PWB_VERDICT_BLOCK)
		return "content_filter";
	const char *f = resp->alts[alt].finish;
	return f && !strcmp(f, "length") ? "length" : "stop";
}

/* obj (taken) as compact JSON text with the decision as its last member,
 * "pwb": the decision is made as text once and never parsed back. NULL
 * when out of memory. */
static char *with_pwb_object(json_t *obj, const pwb_response *resp)
{
	char *head = obj ? json_dumps(obj, JSON_COMPACT) : NULL;
	json_decref(obj);
	char *p = NULL;
	size_t hl = head ? strlen(head) : 0;
	if (hl < 2 || head[hl - 1] != '}' ||
	    pwb_response_to_json_compact(resp, &p)) {
		free(head);
		return NULL;
	}
	pwb__buf b;
	pwb__buf_init(&b, 0);
	pwb__buf_add(&b, head, hl - 1);
	pwb__buf_adds(&b, hl > 2 ? ",\"pwb\":" : "\"pwb\":");
	pwb__buf_adds(&b, p);
	pwb__buf_addc(&b, '}');
	free(head);
	free(p);
	char *out = b.err ? NULL : pwb__buf_detach(&b);
	pwb__buf_release(&b);
	return out;
}

static json_t *usage_of(const pwb_response *resp)
{
	return json_pack(
	    "{s:I, s:I, s:I}", "prompt_tokens", (json_int_t)resp->prompt_tokens,
	    "completion_tokens", (json_int_t)resp->completion_tokens,
	    "total_tokens",
	    (json_int_t)(resp->prompt_tokens + resp->completion_tokens));
}

/* The order choices are given in: the chosen one, then the other allowed
 * ones by score, then the blocked ones. */
static size_t choice_order(const pwb_response *resp, size_t *order)
{
	size_t n = 0;
	if (resp->chosen != SIZE_MAX)
		order[n++] = resp->chosen;
	size_t first_other = n;
	for (size_t i = 0; i < resp->n_alts; i++)
		if (i != resp->chosen &&
		    resp->alts[i].verdict != PWB_VERDICT_BLOCK)
			order[n++] = i;
	for (size_t a = first_other + 1; a < n; a++)
		for (size_t b = a;
		     b > first_other && resp->alts[order[b]].score >
					    resp->alts[order[b - 1]].score;
		     b--) {
			size_t t = order[b];
			order[b] = order[b - 1];
			order[b - 1] = t;
		}
	for (size_t i = 0; i < resp->n_alts; i++)
		if (i != resp->chosen &&
		    resp->alts[i].verdict == PWB_VERDICT_BLOCK)
			order[n++] = i;
	return n;
}

static json_t *choice_json(const pwb_response *resp, size_t index, size_t alt)
{
	char *shown = NULL;
	const char *content;
	if (alt == resp->chosen || alt == SIZE_MAX)
		content = resp->content;
	else if (resp->alts[alt].verdict == PWB_VERDICT_BLOCK)
		content = resp->refusal ? resp->refusal : "";
	else if (!pwb_alternative_shown(&resp->alts[alt], &shown))
		content = shown;
	else
		content = resp->alts[alt].content;
	bool blocked =
	    resp->blocked ||
	    (alt != SIZE_MAX && resp->alts[alt].verdict == PWB_VERDICT_BLOCK);
	json_t *j = json_pack(
	    "{s:I, s:{s:s, s:s?, s:s?}, s:n, s:s, s:s?}", "index",
	    (json_int_t)index, "message", "role", "assistant", "content",
	    content ? content : "", "refusal",
	    blocked ? (resp->refusal ? resp->refusal : content) : NULL,
	    "logprobs", "finish_reason", finish_of(resp, alt),
	    "pwb_alternative", alt != SIZE_MAX ? resp->alts[alt].id : NULL);
	free(shown);
	return j;
}

static void answer_whole(srv_chat *c, const pwb_response *resp)
{
	srv_req *r = c->r;
	json_t *choices = json_array();
	size_t order[PWB_ENGINE_MAX_N + 1];
	size_t n_order = resp->n_alts ? choice_order(resp, order) : 0;
	if (!n_order) {
		order[0] = SIZE_MAX; /* the prompt was blocked */
		n_order = 1;
	}
	for (size_t i = 0; choices && i < c->n; i++)
		json_array_append_new(
		    choices,
		    choice_json(resp, i, order[i < n_order ? i : n_order - 1]));
	pwb__srv_json_text(
	    r, 200,
	    with_pwb_object(json_pack("{s:s, s:s, s:I, s:s, s:o, s:o, s:s?}",
				      "id", c->id, "object", "chat.completion",
				      "created", (json_int_t)c->created,
				      "model", r->srv->model_name, "choices",
				      choices ? choices : json_array(), "usage",
				      usage_of(resp), "system_fingerprint",
				      pwb_effective_hash(resp->effective)),
			    resp));
}

/* ---- streaming ---- */

/* One event of JSON text s (taken). */
static bool send_text_event(srv_chat *c, char *s)
{
	if (!s)
		return false;
	pwb__buf ev;
	pwb__buf_init(&ev, 0);
	pwb__buf_addf(&ev, "data: %s\n\n", s);
	free(s);
	bool ok = !ev.err && pwb__srv_stream_write(c->r, ev.s, ev.len);
	pwb__buf_release(&ev);
	if (!ok)
		c->stream_failed = true;
	return ok;
}

static bool send_event(srv_chat *c, json_t *j)
{
	char *s = j ? json_dumps(j, JSON_COMPACT) : NULL;
	json_decref(j);
	return send_text_event(c, s);
}

static json_t *chunk(srv_chat *c, json_t *delta, const char *finish)
{
	return json_pack("{s:s, s:s, s:I, s:s, s:[{s:i, s:o, s:s?, s:n}]}",
			 "id", c->id, "object", "chat.completion.chunk",
			 "created", (json_int_t)c->created, "model",
			 c->r->srv->model_name, "choices", "index", 0, "delta",
			 delta, "finish_reason", finish, "logprobs");
}

static int on_text(void *user, const char *text, size_t len, bool refusal)
{
	srv_chat *c = user;
	json_t *delta = json_object();
	if (!c->sent_role) {
		json_object_set_new(delta, "role", json_string("assistant"));
		c->sent_role = true;
	}
	json_object_set_new(delta, "content", json_stringn(text, len));
	if (refusal)
		json_object_set_new(delta, "refusal", json_stringn(text, len));
	return send_event(c, chunk(c, delta, NULL)) ? 0 : 1;
}

static void stream_end(srv_chat *c, const pwb_response *resp)
{
	if (!c->sent_role && !c->stream_failed)
		on_text(c, "", 0, false);
	json_t *last = chunk(c, json_object(), finish_of(resp, resp->chosen));
	if (!send_text_event(c, with_pwb_object(last, resp)))
		return;
	if (c->usage_chunk) {
		json_t *u = json_pack("{s:s, s:s, s:I, s:s, s:[], s:o}", "id",
				      c->id, "object", "chat.completion.chunk",
				      "created", (json_int_t)c->created,
				      "model", c->r->srv->model_name, "choices",
				      "usage", usage_of(resp));
		if (!send_event(c, u))
			return;
	}
	pwb__srv_stream_write(c->r, "data: [DONE]\n\n", 14);
}

/* A failure after the stream began: the error answer as an event, then
 * the end. */
static void stream_error_event(srv_chat *c)
{
	json_t *j = json_loadb(c->r->resp, c->r->resp_len, 0, NULL);
	if (send_event(c, j))
		pwb__srv_stream_write(c->r, "data: [DONE]\n\n", 14);
}

static void stream_error(srv_chat *c, pwb_status st, const pwb_diag *d)
{
	pwb__srv_fail(c->r, st, d, "chat");
	stream_error_event(c);
}

static int cancel(void *user)
{
	srv_chat *c = user;
	return pwb__srv_gone(c->r) || pwb__now() > c->r->deadline;
}

void pwb__srv_chat(srv_req *r)
{
	json_t *body = pwb__srv_body_json(r);
	if (!body)
		return;
	srv_chat c = {.r = r, .created = pwb__srv_now()};
	const char *user = pwb__srv_body_user(r, body);
	if (!user || !pwb__srv_chat_parse(&c, body, user))
		goto out;
	/* The completion's id, known before the first streamed byte; the
	 * decision's own id is in the pwb object. */
	unsigned char raw[12];
	randombytes_buf(raw, sizeof(raw));
	memcpy(c.id, "chatcmpl-", 9);
	sodium_bin2hex(c.id + 9, sizeof(c.id) - 9, raw, sizeof(raw));
	r->gen = pwb__srv_gen_get(r->srv);
	c.req.cancel = cancel;
	c.req.cancel_user = &c;
	if (c.stream) {
		c.req.on_text = on_text;
		c.req.on_text_user = &c;
	}
	pwb_response *resp = NULL;
	pwb_diag d;
	pwb_diag_init(&d);
	pwb_status st = pwb_pipeline_chat(r->gen->pipeline, &c.req, &resp, &d);
	if (!st) {
		snprintf(r->decision, sizeof(r->decision), "%s",
			 resp->decision_id ? resp->decision_id : "");
		pwb__srv_metrics_response(&r->srv->metrics, resp);
	}
	bool late = pwb__now() > r->deadline;
	bool started = c.stream && pwb__srv_stream_started(r);
	if (st && started) {
		stream_error(&c, st, &d);
	} else if (st) {
		pwb__srv_fail(r, st, &d, "chat");
	} else if (late) {
		/* A stream cut by the deadline is no complete answer either:
		 * 504 before its first chunk, an error event after it. */
		pwb__srv_error(r, 504, "server_error", "deadline_exceeded",
			       "the answer took longer than the request "
			       "deadline (%d ms)",
			       r->srv->p.deadline_ms);
		if (started)
			stream_error_event(&c);
	} else if (c.stream) {
		stream_end(&c, resp);
	} else {
		answer_whole(&c, resp);
	}
	pwb_response_free(resp);
	pwb_diag_release(&d);
out:
	pwb__srv_chat_release(&c);
	json_decref(body);
}
