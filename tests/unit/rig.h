/*
 * rig.h - the scaffolding of the tests of the pipeline over the upstream
 * engine (test_rails.c, test_promises.c): a temporary folder holding a
 * policy folder the test writes (the shipped registry and the test's own
 * files), bounds on its lexicons and a SQLite store, with the mock
 * upstream started (mock_upstream.h); a `rig`, a pipeline on an upstream
 * engine whose model name carries the mock's flags and a tag of its own;
 * one request through a pipeline, a collector for what it streams, and
 * feedback.
 *
 * What rig_setup() makes is borrowed by the tests until rig_teardown().
 * Every helper fails the running test (cmocka) instead of returning an
 * error; a rig from rig_new() or rig_on() is the caller's, freed with
 * rig_free(). Call them from the test's own thread (a failure jumps back to
 * it); rig_first_msg() alone is safe on any thread.
 */
#ifndef PWB_TEST_RIG_H
#define PWB_TEST_RIG_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mock_upstream.h"
#include "pwb/pwb.h"
#include "util/util.h"

/* ---- the folder, the policy, the bounds and the store ---- */

/* A file of the test's policy folder, relative to the temporary folder,
 * written with fopen() mode "w", or "a" to add to one already there. */
typedef struct rig_file {
	const char *rel;
	const char *text;
	const char *mode;
} rig_file;

/* What differs between the tests that use this scaffolding. */
typedef struct rig_params {
	const char *dir_template; /* mkdtemp()'s, "/tmp/pwb-test-NAME-XXXXXX" */
	const char *tag_prefix;	  /* before each model name's number */
	/* Written in order after the folders p, p/law, p/org and p/lexicons
	 * and the shipped registry p/categories.yaml. */
	const rig_file *files;
	size_t n_files;
	int backoff_ms; /* the engines' first backoff; 0: the default */
} rig_params;

/* Made by rig_setup(), borrowed until rig_teardown(). */
extern char rig_dir[64];       /* the temporary folder */
extern char rig_db_url[1200];  /* the store's, "sqlite:DIR/pwb.db" */
extern pwb_policy *rig_policy; /* DIR/p */
extern pwb_bounds *rig_bounds; /* on DIR/p/lexicons */
extern pwb_store *rig_store;

/* Makes the folder and the policy folder in it, starts the mock and loads
 * the policy, the bounds and the store; 0, or -1 when the folder or the
 * mock could not be made (other failures fail the test). */
int rig_setup(const rig_params *params);
/* cmocka's group teardown (state unused): frees what rig_setup() made,
 * stops the mock and removes the folder; 0, or -1 when the folder could
 * not be removed. */
int rig_teardown(void **state);

/* The first message of d, or "" when there is none (or no d). */
const char *rig_first_msg(const pwb_diag *d);
/* Fails the test unless st is PWB_OK, naming what and d's first message. */
void rig_ok(pwb_status st, const pwb_diag *d, const char *what);

/* ---- a pipeline over the mock ---- */

/* "FLAGS/PREFIXN" into out: the mock's flags, and a tag that no other
 * model name of this test has, so that its request counts are its own. */
void rig_model_name(char *out, size_t size, const char *flags);

/* The flag `name:` with each text URL-encoded, joined by commas, into out
 * (the test fails when it does not fit). */
void rig_flag_texts(char *out, size_t size, const char *name,
		    const char *const *texts, size_t n);

/* A pipeline on the setup's policy and bounds, over an upstream engine on
 * the mock whose model name carries these flags; 64 tokens at the most. */
typedef struct rig {
	char model[1024];
	pwb_engine *engine;
	pwb_pipeline *pl;
} rig;

/* hold: stream_hold_bytes, 0 for the default; st: the store (NULL:
 * none). */
rig *rig_on(const char *flags, size_t hold, pwb_store *st);
/* rig_on() with the setup's store. */
rig *rig_new(const char *flags, size_t hold);
/* rig_new() on the flag reply:TEXT. */
rig *rig_reply(const char *text, size_t hold);
void rig_free(rig *r);

/* The messages of the last request the mock saw for this rig (the
 * caller's to json_decref()), and a string field of message i. */
json_t *rig_last_messages(const rig *g);
const char *rig_msg_field(json_t *msgs, size_t i, const char *key);

/* ---- requests, and what a stream's caller got ---- */

#define RIG_MAX_PIECES 512

/* Each piece on its own: piece i is text[starts[i], starts[i+1]). */
typedef struct streamed {
	pwb__buf text;
	size_t starts[RIG_MAX_PIECES + 1];
	bool refusal[RIG_MAX_PIECES]; /* piece i was the refusal's */
	bool any_refusal;	      /* some piece was */
	size_t n;
	size_t cancel_at;    /* non-zero: cancel on this call */
	size_t after_cancel; /* calls after the cancel */
	bool cancelled;
} streamed;

/* Empty, with an empty text; release s->text with pwb__buf_release(). */
void streamed_init(streamed *s);

/* One request of these messages on pl for org and user; s non-NULL:
 * streamed into it. Fails the test unless the pipeline answers. */
pwb_response *rig_chat(pwb_pipeline *pl, const char *org, const char *user,
		       const pwb_chat_msg *msgs, size_t n_msgs, size_t n,
		       uint64_t seed, streamed *s);

/* Feedback through g's pipeline; fails the test unless it is taken. */
pwb_feedback_result rig_feedback(rig *g, const pwb_feedback_give *fb);

/* Fail the test, quoting both, when text lacks part (has it). */
void rig_assert_has(const char *text, const char *part);
void rig_assert_lacks(const char *text, const char *part);

#endif
