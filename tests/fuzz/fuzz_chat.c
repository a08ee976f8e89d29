/*
 * fuzz_chat.c - libFuzzer target for the chat request body of pwb serve
 * (POST /v1/chat/completions, docs/server.md): the bytes are the body,
 * read as the server reads it (pwb__srv_body_json, pwb__srv_body_user for
 * a service key, pwb__srv_chat_parse), without a connection.
 *
 * Beyond memory errors and leaks, the target aborts when a contract of
 * server_int.h breaks: a refused body without a JSON error of status
 * 400, 404 or 413; an accepted one that left an answer, or whose request
 * has no messages or more than PWB_ENGINE_MAX_MSGS, a message without a
 * role or content, n outside 1..max_n, a stream of more than one choice,
 * another org or user than the key's and the body's.
 */
#include "server/server_int.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void die(const char *what)
{
	fprintf(stderr, "fuzz_chat: %s\n", what);
	abort();
}

/* A refusal: the status and a JSON {"error": {"code": ...}} body. */
static void check_refusal(const srv_req *r)
{
	if (r->status != 400 && r->status != 404 && r->status != 413)
		die("a refusal with an unexpected status");
	json_t *j = r->resp ? json_loadb(r->resp, r->resp_len, 0, NULL) : NULL;
	if (!json_is_string(
		json_object_get(json_object_get(j, "error"), "code")))
		die("a refusal without a JSON error");
	json_decref(j);
}

static void check_request(const srv_chat *c, const char *user, size_t max_n)
{
	const pwb_request *q = &c->req;
	if (c->r->resp)
		die("an accepted body left an answer");
	if (!q->n_msgs || q->n_msgs > PWB_ENGINE_MAX_MSGS || !q->msgs)
		die("an accepted request with a bad message count");
	for (size_t i = 0; i < q->n_msgs; i++)
		if (!q->msgs[i].role || !q->msgs[i].content)
			die("a message without role or content");
	if (c->n < 1 || c->n > max_n || (c->stream && c->n != 1))
		die("n outside its range");
	if (q->user != user || strcmp(q->org, "acme-tutor"))
		die("another org or user than the key's and the body's");
	if (q->n_jurisdictions > PWB_ARRAY_LEN(c->jur))
		die("too many jurisdictions");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	pwb_server srv;
	memset(&srv, 0, sizeof(srv));
	srv.model_name = (char *)"pwb";
	srv.p.max_n = 4;
	srv_req r;
	memset(&r, 0, sizeof(r));
	r.srv = &srv;
	r.key.role = PWB_KEY_SERVICE;
	r.key.org = (char *)"acme-tutor";
	pwb__buf_init(&r.body, 0);
	pwb__buf_add(&r.body, (const char *)data, size);
	if (r.body.err)
		die("out of memory in the target");

	json_t *body = pwb__srv_body_json(&r);
	if (!body) {
		check_refusal(&r);
		goto out;
	}
	const char *user = pwb__srv_body_user(&r, body);
	if (!user) {
		check_refusal(&r);
		json_decref(body);
		goto out;
	}
	srv_chat c;
	memset(&c, 0, sizeof(c));
	c.r = &r;
	if (pwb__srv_chat_parse(&c, body, user))
		check_request(&c, user, srv.p.max_n);
	else
		check_refusal(&r);
	pwb__srv_chat_release(&c);
	json_decref(body);
out:
	free(r.resp);
	pwb__buf_release(&r.body);
	return 0;
}
