/* rig.c - see rig.h. */
/* cmocka needs these first, in this order. */
/* clang-format off */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
/* clang-format on */

#include "rig.h"

#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

char rig_dir[64];
char rig_db_url[1200];
pwb_policy *rig_policy;
pwb_bounds *rig_bounds;
pwb_store *rig_store;

static const char *tag_prefix = "";
static int backoff_ms;
static int tag;

/* ---- the policy folder ---- */

static void write_file(const char *rel, const char *text, const char *mode)
{
	char path[1200];
	snprintf(path, sizeof(path), "%s/%s", rig_dir, rel);
	FILE *f = fopen(path, mode);
	assert_non_null(f);
	fputs(text, f);
	assert_int_equal(fclose(f), 0);
}

/* The folders, the shipped registry (whose dimensions come last, so that
 * a test's file may add some), then the test's own files. */
static void write_policies(const rig_file *files, size_t n_files)
{
	static const char *const dirs[] = {"p", "p/law", "p/org", "p/lexicons"};
	for (size_t i = 0; i < PWB_ARRAY_LEN(dirs); i++) {
		char p[1200];
		snprintf(p, sizeof(p), "%s/%s", rig_dir, dirs[i]);
		assert_int_equal(mkdir(p, 0755), 0);
	}
	const char *src = getenv("PWB_SOURCE_DIR");
	char reg[1200];
	snprintf(reg, sizeof(reg), "%s/policies/categories.yaml",
		 src && *src ? src : ".");
	char *text = NULL;
	size_t len = 0;
	assert_int_equal(pwb__read_file(reg, 1 << 20, &text, &len, NULL), 0);
	write_file("p/categories.yaml", text, "w");
	free(text);
	for (size_t i = 0; i < n_files; i++)
		write_file(files[i].rel, files[i].text, files[i].mode);
}

/* ---- setup ---- */

const char *rig_first_msg(const pwb_diag *d)
{
	return d && d->n ? d->entries[0].message : "";
}

void rig_ok(pwb_status st, const pwb_diag *d, const char *what)
{
	if (st)
		fail_msg("%s: %s: %s", what, pwb_status_str(st),
			 rig_first_msg(d));
}

int rig_setup(const rig_params *params)
{
	snprintf(rig_dir, sizeof(rig_dir), "%s", params->dir_template);
	tag_prefix = params->tag_prefix;
	backoff_ms = params->backoff_ms;
	if (!mkdtemp(rig_dir) || mock_start(NULL) < 0)
		return -1;
	write_policies(params->files, params->n_files);
	pwb_diag d;
	pwb_diag_init(&d);
	char path[1200];
	snprintf(path, sizeof(path), "%s/p", rig_dir);
	rig_ok(pwb_policy_load(&rig_policy, path, NULL, &d), &d, path);
	pwb_bounds_params bp = pwb_bounds_default_params();
	snprintf(path, sizeof(path), "%s/p/lexicons", rig_dir);
	bp.lexicon_dir = path;
	rig_ok(pwb_bounds_new(&rig_bounds, rig_policy, &bp, &d), &d, "bounds");
	snprintf(rig_db_url, sizeof(rig_db_url), "sqlite:%s/pwb.db", rig_dir);
	rig_ok(pwb_store_open(&rig_store, rig_db_url, NULL, &d), &d,
	       rig_db_url);
	pwb_diag_release(&d);
	return 0;
}

int rig_teardown(void **state)
{
	(void)state;
	pwb_store_free(rig_store);
	pwb_bounds_free(rig_bounds);
	pwb_policy_free(rig_policy);
	mock_stop();
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", rig_dir);
	return system(cmd) == 0 ? 0 : -1;
}

/* ---- a pipeline over the mock ---- */

void rig_model_name(char *out, size_t size, const char *flags)
{
	snprintf(out, size, "%s/%s%d", flags, tag_prefix, ++tag);
}

void rig_flag_texts(char *out, size_t size, const char *name,
		    const char *const *texts, size_t n)
{
	CURL *h = curl_easy_init();
	assert_non_null(h);
	size_t used = (size_t)snprintf(out, size, "%s:", name);
	for (size_t i = 0; i < n; i++) {
		char *enc = curl_easy_escape(h, texts[i], 0);
		assert_non_null(enc);
		used += (size_t)snprintf(out + used, size - used, "%s%s",
					 i ? "," : "", enc);
		curl_free(enc);
		assert_true(used < size);
	}
	curl_easy_cleanup(h);
}

rig *rig_on(const char *flags, size_t hold, pwb_store *st)
{
	rig *r = calloc(1, sizeof(*r));
	assert_non_null(r);
	rig_model_name(r->model, sizeof(r->model), flags);
	pwb_openai_params op = pwb_openai_default_params();
	op.url = mock_url();
	op.model = r->model;
	if (backoff_ms)
		op.backoff_ms = backoff_ms;
	pwb_diag d;
	pwb_diag_init(&d);
	rig_ok(pwb_engine_openai_new(&r->engine, &op, &d), &d, "engine");
	pwb_pipeline_params pp = pwb_pipeline_default_params();
	pp.policy = rig_policy;
	pp.bounds = rig_bounds;
	pp.engine = r->engine;
	pp.store = st;
	pp.max_tokens = 64;
	if (hold)
		pp.stream_hold_bytes = hold;
	rig_ok(pwb_pipeline_new(&r->pl, &pp, &d), &d, "pipeline");
	pwb_diag_release(&d);
	return r;
}

rig *rig_new(const char *flags, size_t hold)
{
	return rig_on(flags, hold, rig_store);
}

rig *rig_reply(const char *text, size_t hold)
{
	char flags[1024];
	rig_flag_texts(flags, sizeof(flags), "reply", &text, 1);
	return rig_new(flags, hold);
}

void rig_free(rig *r)
{
	pwb_pipeline_free(r->pl);
	pwb_engine_free(r->engine);
	free(r);
}

json_t *rig_last_messages(const rig *g)
{
	json_t *j = mock_last(g->model);
	assert_non_null(j);
	json_t *m = json_incref(json_object_get(j, "messages"));
	json_decref(j);
	assert_true(json_is_array(m));
	return m;
}

const char *rig_msg_field(json_t *msgs, size_t i, const char *key)
{
	const char *s =
	    json_string_value(json_object_get(json_array_get(msgs, i), key));
	assert_non_null(s);
	return s;
}

/* ---- requests, and what a stream's caller got ---- */

void streamed_init(streamed *s)
{
	memset(s, 0, sizeof(*s));
	pwb__buf_init(&s->text, 0);
}

static int on_text(void *user, const char *text, size_t len, bool refusal)
{
	streamed *s = user;
	if (s->cancelled) {
		s->after_cancel++;
		return 1;
	}
	assert_true(s->n < RIG_MAX_PIECES);
	s->starts[s->n] = s->text.len;
	s->refusal[s->n] = refusal;
	s->any_refusal |= refusal;
	pwb__buf_add(&s->text, text, len);
	s->starts[++s->n] = s->text.len;
	if (s->cancel_at && s->n == s->cancel_at) {
		s->cancelled = true;
		return 1;
	}
	return 0;
}

pwb_response *rig_chat(pwb_pipeline *pl, const char *org, const char *user,
		       const pwb_chat_msg *msgs, size_t n_msgs, size_t n,
		       uint64_t seed, streamed *s)
{
	pwb_request req = {.org = org,
			   .user = user,
			   .msgs = msgs,
			   .n_msgs = n_msgs,
			   .n = n,
			   .seed = seed,
			   .on_text = s ? on_text : NULL,
			   .on_text_user = s};
	pwb_response *r = NULL;
	pwb_diag d;
	pwb_diag_init(&d);
	rig_ok(pwb_pipeline_chat(pl, &req, &r, &d), &d, "chat");
	pwb_diag_release(&d);
	assert_non_null(r);
	return r;
}

pwb_feedback_result rig_feedback(rig *g, const pwb_feedback_give *fb)
{
	pwb_feedback_result res;
	pwb_diag d;
	pwb_diag_init(&d);
	rig_ok(pwb_pipeline_feedback(g->pl, fb, &res, &d), &d, "feedback");
	pwb_diag_release(&d);
	return res;
}

void rig_assert_has(const char *text, const char *part)
{
	if (!strstr(text, part))
		fail_msg("'%s' is not in '%s'", part, text);
}

void rig_assert_lacks(const char *text, const char *part)
{
	if (strstr(text, part))
		fail_msg("'%s' is in '%s'", part, text);
}
