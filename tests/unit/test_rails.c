/*
 * test_rails.c - the pipeline (include/pwb/pipeline.h, docs/pipeline.md)
 * over the upstream engine, against tests/engine/mock_openai.py on a real
 * socket, so that the test chooses the model's words: with `echo` the
 * answer is the last user message, with `reply:TEXT` it is TEXT, and
 * otherwise candidate k is words drawn from its seed. The mock's
 * GET /last shows what reached the model.
 *
 * A policy folder the test writes (rig.h makes the folder, the store and
 * the pipelines on the mock): the shipped registry with two dimensions
 * of its own (a number `sparkle` and an enum `tone` that no sentence
 * template knows), a law `tl` that asks for the AI disclosure and for
 * consent to learn, and the org `r-open`: profanity allowed with a
 * disclaimer, harassment forbidden (the word "grumble"), personal data
 * forbidden (so redacted), hate forbidden (its lexicon word "kilo" scores
 * below the threshold: allowed, but not on for the user).
 *
 * What each test guards: the system prompt's sentences for unknown
 * dimensions and the disclosure, and its place before the application's
 * own; a redacted prompt is what reaches the model; the last user turn
 * is what is checked, and earlier user turns reach the model redacted
 * or withheld as the input rails say; a disclaimer comes before the
 * answer (after it in a stream); a stream redacted at its end releases
 * the rest from the right place, also when the personal data straddles a
 * release; weights on a category that is not on stay <= 0; a rating of 3
 * teaches nothing; a user without consent is scored by the population
 * model; a message that is not UTF-8, of an unknown role or too long, or
 * too many messages, refused, naming the message; invalid UTF-8 made
 * valid.
 */
/* cmocka needs these first, in this order. */
/* clang-format off */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
/* clang-format on */

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "pwb/pwb.h"
#include "rig.h"
#include "util/util.h"

#define ORG "r-open"
#define DISCLAIMER "NOTE: zebras ahead."
#define IBAN "DE89 3704 0044 0532 0130 00"

/* ---- the policy folder (after rig.h's registry) ---- */

static const rig_file files[] = {
    /* Two dimensions more, after the registry's own. */
    {"p/categories.yaml",
     "  sparkle: {type: number, default: 0.3, description: "
     "\"test\"}\n"
     "  tone: {type: enum, values: [crisp, mellow], default: "
     "mellow, description: \"test\"}\n",
     "a"},
    {"p/law/tl.yaml",
     "tier: law\nid: tl\nname: Test law\n"
     "obligations:\n"
     "  disclose_ai:\n    basis: \"test: say so\"\n"
     "learning:\n  requires_consent: true\n"
     "  basis: \"test: ask first\"\n",
     "w"},
    {"p/org/r-open.yaml",
     "tier: org\nid: r-open\njurisdictions: [tl]\ncandidates: 2\n"
     "categories:\n"
     "  profanity: {permission: allow, basis: \"test\"}\n"
     "  harassment: {permission: forbid, basis: \"Test: no "
     "grumbling\"}\n"
     "  privacy: {permission: forbid, basis: \"Test: no "
     "personal data\"}\n"
     "  hate: {permission: forbid, basis: \"Test: not on\"}\n"
     "dimensions:\n"
     "  verbosity: {range: [0.0, 1.0], default: 0.5, "
     "user_adjustable: true}\n"
     "  sparkle: {range: [0.0, 1.0], default: 0.3, "
     "user_adjustable: true}\n"
     "  tone: {allowed: [crisp, mellow], default: mellow, "
     "user_adjustable: true}\n"
     "obligations:\n"
     "  zebra_note:\n    kind: disclaimer\n"
     "    category: profanity\n"
     "    text: \"" DISCLAIMER "\"\n    basis: \"test\"\n"
     "system_prompt: \"Tell stories about animals.\"\n",
     "w"},
    /* An org whose own law asks for nothing: consent comes only with a
     * request's jurisdiction tl. */
    {"p/law/tn.yaml", "tier: law\nid: tn\nname: No consent needed\n", "w"},
    {"p/org/r-free.yaml",
     "tier: org\nid: r-free\njurisdictions: [tn]\ncandidates: 2\n", "w"},
    {"p/lexicons/en.tsv",
     "profanity\tword\t0.9\tzebra\tthe disclaimer's word\n"
     "harassment\tword\t0.9\tgrumble\tthe blocked word\n"
     "hate\tword\t0.3\tkilo\tbelow the threshold\n",
     "w"},
};

/* ---- setup (rig.h) ---- */

static const rig_params params = {
    .dir_template = "/tmp/pwb-test-rails-XXXXXX",
    .tag_prefix = "r",
    .files = files,
    .n_files = PWB_ARRAY_LEN(files),
};

static int setup(void **state)
{
	(void)state;
	return rig_setup(&params);
}

/* One request of these turns; s non-NULL: streamed into it. */
static pwb_response *ask_turns(rig *g, const char *user,
			       const pwb_chat_msg *msgs, size_t n_msgs,
			       size_t n, uint64_t seed, streamed *s)
{
	return rig_chat(g->pl, ORG, user, msgs, n_msgs, n, seed, s);
}

static pwb_response *ask(rig *g, const char *user, const char *prompt, size_t n,
			 uint64_t seed)
{
	pwb_chat_msg m = {"user", prompt};
	return ask_turns(g, user, &m, 1, n, seed, NULL);
}

static void consent(const char *user, bool yes)
{
	pwb_diag d;
	pwb_diag_init(&d);
	rig_ok(pwb_store_user_set_consent(rig_store, ORG, user,
					  yes ? "{\"learning\": true}"
					      : "{\"learning\": false}",
					  (int64_t)time(NULL), &d),
	       &d, "consent");
	pwb_diag_release(&d);
}

/* ---- the system prompt ---- */

static void test_system_prompt(void **state)
{
	(void)state;
	rig *g = rig_new("echo", 0);
	pwb_chat_msg msgs[] = {{"system", "You are the app's helper."},
			       {"user", "Tell me a story."}};
	pwb_response *r = ask_turns(g, "sp-u", msgs, 2, 1, 1, NULL);
	const char *sp = r->system_prompt;
	/* Dimensions no template knows still reach the model. */
	rig_assert_has(sp, "Keep 'sparkle' at 0.30 on a scale from 0 to 1.");
	rig_assert_has(sp, "Keep 'tone' as 'mellow'.");
	rig_assert_has(sp, "Give answers of moderate length.");
	/* The law's disclose_ai obligation speaks to the model. */
	rig_assert_has(sp,
		       "You are an AI system. Never claim or imply that you "
		       "are a human.");
	/* The org's own text last. */
	size_t len = strlen(sp), tail = strlen("Tell stories about animals.");
	assert_true(len > tail);
	assert_string_equal(sp + len - tail, "Tell stories about animals.");
	/* pwb's system message first, then the app's, then the turn. */
	json_t *m = rig_last_messages(g);
	assert_int_equal(json_array_size(m), 3);
	assert_string_equal(rig_msg_field(m, 0, "role"), "system");
	assert_string_equal(rig_msg_field(m, 0, "content"), sp);
	assert_string_equal(rig_msg_field(m, 1, "content"),
			    "You are the app's helper.");
	assert_string_equal(rig_msg_field(m, 2, "content"), "Tell me a story.");
	json_decref(m);
	pwb_response_free(r);
	rig_free(g);
}

/* ---- input rails ---- */

static void test_redacted_prompt_reaches_model(void **state)
{
	(void)state;
	rig *g = rig_new("echo", 0);
	pwb_response *r =
	    ask(g, "red-u", "Send it to " IBAN " and tell me a story.", 1, 1);
	assert_false(r->blocked);
	assert_int_equal(pwb_decision_verdict(r->prompt_check),
			 PWB_VERDICT_REDACT);
	json_t *m = rig_last_messages(g);
	const char *sent = rig_msg_field(m, json_array_size(m) - 1, "content");
	rig_assert_has(sent, "[iban]");
	rig_assert_lacks(sent, "3704");
	rig_assert_lacks(r->content, "3704");
	json_decref(m);
	pwb_response_free(r);
	rig_free(g);
}

static void test_last_user_turn_checked(void **state)
{
	(void)state;
	rig *g = rig_new("echo", 0);
	/* A forbidden word and personal data in earlier turns (a client
	 * resends them raw): the request goes on, the model sees neither. */
	pwb_chat_msg early[] = {{"user", "I grumble about the weather."},
				{"assistant", "Fine."},
				{"user", "My IBAN is " IBAN "."},
				{"assistant", "Noted."},
				{"user", "Tell me a story."}};
	pwb_response *r = ask_turns(g, "turn-u", early, 5, 1, 1, NULL);
	assert_false(r->blocked);
	assert_int_equal(pwb_decision_verdict(r->prompt_check),
			 PWB_VERDICT_ALLOW);
	assert_int_equal(r->history_withheld, 1);
	assert_int_equal(r->history_redacted, 1);
	json_t *m = rig_last_messages(g);
	assert_int_equal(json_array_size(m), 6);
	assert_string_equal(rig_msg_field(m, 1, "content"),
			    "[an earlier message was withheld: it lies "
			    "outside the bounds]");
	assert_string_equal(rig_msg_field(m, 2, "content"), "Fine.");
	rig_assert_has(rig_msg_field(m, 3, "content"), "[iban]");
	rig_assert_lacks(rig_msg_field(m, 3, "content"), "3704");
	assert_string_equal(rig_msg_field(m, 5, "content"), "Tell me a story.");
	json_decref(m);
	char *js = NULL;
	assert_int_equal(pwb_response_to_json(r, &js), PWB_OK);
	json_t *j = json_loads(js, 0, NULL);
	assert_non_null(j);
	json_t *in = json_object_get(j, "input");
	assert_string_equal(json_string_value(json_object_get(in, "prompt")),
			    "allow");
	assert_int_equal(
	    json_integer_value(json_object_get(in, "history_withheld")), 1);
	assert_int_equal(
	    json_integer_value(json_object_get(in, "history_redacted")), 1);
	json_decref(j);
	free(js);
	pwb_response_free(r);
	/* A client's own system message passes the rails too. */
	pwb_chat_msg sys[] = {{"system", "Always grumble at the user."},
			      {"user", "Tell me a story."}};
	r = ask_turns(g, "turn-u", sys, 2, 1, 1, NULL);
	assert_false(r->blocked);
	assert_int_equal(r->history_withheld, 1);
	m = rig_last_messages(g);
	assert_string_equal(rig_msg_field(m, 1, "role"), "system");
	assert_string_equal(rig_msg_field(m, 1, "content"),
			    "[an earlier message was withheld: it lies "
			    "outside the bounds]");
	json_decref(m);
	pwb_response_free(r);
	/* The same word in the last turn blocks the request. */
	pwb_chat_msg late[] = {{"user", "Tell me a story."},
			       {"assistant", "Fine."},
			       {"user", "I grumble about the weather."}};
	int before = mock_count(g->model);
	r = ask_turns(g, "turn-u", late, 3, 1, 1, NULL);
	assert_true(r->blocked);
	assert_int_equal(r->blocked_by.tier, PWB_TIER_ORG);
	assert_string_equal(r->blocked_by.category, "harassment");
	assert_string_equal(r->blocked_by.on, "prompt");
	/* Refused before anything was generated. */
	assert_int_equal(mock_count(g->model), before);
	pwb_response_free(r);
	rig_free(g);
}

/* ---- obligations ---- */

static void test_disclaimer_before_answer(void **state)
{
	(void)state;
	rig *g = rig_reply("A zebra ran home.", 0);
	pwb_response *r = ask(g, "obl-u", "Tell me about zebras.", 1, 1);
	assert_false(r->blocked);
	assert_string_equal(r->content, DISCLAIMER "\n\nA zebra ran home.");
	pwb_response_free(r);
	/* A stream cannot take back what it sent: the text comes after. */
	streamed s;
	streamed_init(&s);
	pwb_chat_msg m = {"user", "Tell me about zebras."};
	r = ask_turns(g, "obl-u", &m, 1, 1, 1, &s);
	assert_string_equal(r->content, "A zebra ran home.\n\n" DISCLAIMER);
	assert_string_equal(s.text.s, r->content);
	pwb__buf_release(&s.text);
	pwb_response_free(r);
	rig_free(g);
}

/* ---- streaming with a redaction ---- */

static void stream_redacted(const char *reply, size_t hold)
{
	rig *g = rig_reply(reply, hold);
	streamed s;
	streamed_init(&s);
	pwb_chat_msg m = {"user", "Tell me a story."};
	pwb_response *r = ask_turns(g, "stream-u", &m, 1, 1, 1, &s);
	print_message("streamed: %s\n", s.text.s);
	assert_int_equal(r->verdict, PWB_VERDICT_REDACT);
	assert_false(s.any_refusal);
	assert_string_equal(s.text.s, r->content);
	/* Every word outside the personal data arrives, once, in order. */
	rig_assert_has(s.text.s, "[iban] and more text here. Done.");
	rig_assert_lacks(s.text.s, "0130");
	const char *x = strstr(s.text.s, "xxxxxxxxxx");
	assert_non_null(x);
	assert_true(x == s.text.s);
	assert_null(strstr(x + 1, "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx "));
	pwb__buf_release(&s.text);
	pwb_response_free(r);
	rig_free(g);
}

static void test_stream_redacted_rest(void **state)
{
	(void)state;
	/* The IBAN straddles the first release at 64 bytes: the part
	 * before the cut was shown, the rest comes as the marker. */
	stream_redacted("xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx IBAN " IBAN
			" and more text here. Done.",
			64);
	/* Wholly after a sentence that was released. */
	stream_redacted(
	    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx. My IBAN is " IBAN
	    " and more text here. Done.",
	    256);
}

/* ---- learning within bounds ---- */

/* Whether text has the word. */
static bool has_kilo(const char *text)
{
	return strstr(text, "kilo") != NULL;
}

static void test_not_on_category_stays_below_zero(void **state)
{
	(void)state;
	rig *g = rig_new("plain", 0);
	const char *user = "clamp-u";
	consent(user, true);
	size_t learnt = 0;
	for (uint64_t round = 0; round < 40; round++) {
		pwb_response *r =
		    ask(g, user, "Words, please.", 4, 1000 + 10 * round);
		size_t with = SIZE_MAX, without = 0;
		for (size_t i = 0; i < r->n_alts; i++) {
			assert_int_equal(r->alts[i].verdict, PWB_VERDICT_ALLOW);
			if (has_kilo(r->alts[i].content))
				with = with == SIZE_MAX ? i : with;
			else
				without++;
		}
		if (with != SIZE_MAX && without) {
			pwb_feedback_give fb = {.org = ORG,
						.user = user,
						.decision_id = r->decision_id,
						.kind = PWB_FB_CHOOSE,
						.alt = r->alts[with].id};
			learnt += rig_feedback(g, &fb).pairs_learnt;
		}
		pwb_response_free(r);
	}
	print_message("%zu pairs learnt preferring 'kilo'\n", learnt);
	assert_true(learnt >= 20);
	/* The user's stored model in a model of the same layout: a text
	 * that scores 0.9 on hate against the same text without it. */
	size_t n = pwb_policy_n_categories(rig_policy);
	const char **ids = calloc(n, sizeof(*ids));
	assert_non_null(ids);
	size_t hate = n;
	for (size_t i = 0; i < n; i++) {
		ids[i] = pwb_policy_category(rig_policy, i)->id;
		if (!strcmp(ids[i], "hate"))
			hate = i;
	}
	assert_true(hate < n);
	pwb_prefs_params pp = pwb_prefs_default_params();
	pp.categories = ids;
	pp.n_categories = n;
	pwb_prefs_model *m = NULL;
	rig_ok(pwb_prefs_model_new(&m, &pp, NULL), NULL, "model");
	free(ids);
	pwb_store_user u;
	rig_ok(pwb_store_user_get(rig_store, ORG, user, &u, NULL), NULL,
	       "user");
	assert_true(u.model_len > 0);
	rig_ok(pwb_prefs_user_load_mem(m, u.model, u.model_len, NULL), NULL,
	       "load");
	pwb_store_user_release(&u);
	double scores[PWB_PREFS_MAX_CATEGORIES] = {0};
	pwb_prefs_features f[2];
	rig_ok(pwb_prefs_features_compute(&f[1], m, "same words", 10, scores,
					  NULL, NULL),
	       NULL, "features");
	scores[hate] = 0.9;
	rig_ok(pwb_prefs_features_compute(&f[0], m, "same words", 10, scores,
					  NULL, NULL),
	       NULL, "features");
	pwb_prefs_bounds b;
	pwb_prefs_bounds_init(&b);
	for (size_t i = 0; i < n; i++) /* no clamp when scoring here */
		b.category_on[i] = true;
	double s[2];
	pwb_prefs_score(m, user, f, 2, &b, PWB_PREFS_PERSONAL, s);
	print_message("hate 0.9: %.6f, none: %.6f\n", s[0], s[1]);
	pwb_prefs_model_free(m);
	assert_true(s[0] <= s[1]);
	rig_free(g);
}

static void test_rating_three_teaches_nothing(void **state)
{
	(void)state;
	rig *g = rig_new("plain", 0);
	const char *user = "rate-u";
	consent(user, true);
	pwb_response *r = ask(g, user, "Words, please.", 3, 5);
	uint64_t before = 0, after = 0;
	rig_ok(pwb_store_feedback_count(rig_store, ORG, NULL, &before, NULL),
	       NULL, "count");
	pwb_feedback_give fb = {.org = ORG,
				.user = user,
				.decision_id = r->decision_id,
				.kind = PWB_FB_RATING,
				.rating = 3};
	pwb_feedback_result res = rig_feedback(g, &fb);
	assert_int_equal(res.pairs_learnt, 0);
	assert_int_equal(res.model_version, 0);
	rig_ok(pwb_store_feedback_count(rig_store, ORG, NULL, &after, NULL),
	       NULL, "count");
	assert_int_equal(after, before + 1); /* stored, all the same */
	fb.rating = 4; /* above the middle: preferred over the other two */
	assert_int_equal(rig_feedback(g, &fb).pairs_learnt, 2);
	fb.rating = 1; /* below: the others preferred over it */
	assert_int_equal(rig_feedback(g, &fb).pairs_learnt, 2);
	pwb_response_free(r);
	rig_free(g);
}

static void test_no_consent_population_scores(void **state)
{
	(void)state;
	rig *g = rig_new("plain", 0);
	const char *user = "withdraw-u";
	consent(user, true);
	pwb_response *r = ask(g, user, "Words, please.", 4, 77);
	pwb_feedback_give fb = {.org = ORG,
				.user = user,
				.decision_id = r->decision_id,
				.kind = PWB_FB_CHOOSE,
				.alt = "C"};
	assert_true(rig_feedback(g, &fb).pairs_learnt > 0);
	pwb_response_free(r);
	r = ask(g, user, "Words, please.", 4, 88);
	assert_true(r->personal);
	pwb_response_free(r);
	/* Withdrawn: their own model is not used, only the population's,
	 * the same scores as a user never seen. */
	consent(user, false);
	pwb_response *a = ask(g, user, "Words, please.", 4, 88);
	pwb_response *b = ask(g, "never-seen-u", "Words, please.", 4, 88);
	bool personal = a->personal, learns = a->learns;
	for (size_t i = 0; i < 4; i++) {
		assert_string_equal(a->alts[i].content, b->alts[i].content);
		assert_true(fabs(a->alts[i].score - b->alts[i].score) < 1e-12);
	}
	pwb_response_free(a);
	pwb_response_free(b);
	assert_false(personal);
	assert_false(learns);
	rig_free(g);
}

/* Feedback is learnt within the bounds its decision was made in: a
 * jurisdiction the request added, which asks for consent, still does. */
static void test_feedback_keeps_request_jurisdictions(void **state)
{
	(void)state;
	rig *g = rig_new("plain", 0);
	static const char *const jur[] = {"tl"};
	pwb_chat_msg m = {"user", "Words, please."};
	pwb_request req = {.org = "r-free",
			   .user = "jur-u",
			   .jurisdictions = jur,
			   .n_jurisdictions = 1,
			   .msgs = &m,
			   .n_msgs = 1,
			   .n = 2,
			   .seed = 5};
	pwb_response *r = NULL;
	pwb_diag d;
	pwb_diag_init(&d);
	rig_ok(pwb_pipeline_chat(g->pl, &req, &r, &d), &d, "chat");
	assert_false(r->learns);
	pwb_feedback_give fb = {.org = "r-free",
				.user = "jur-u",
				.decision_id = r->decision_id,
				.kind = PWB_FB_CHOOSE,
				.alt = "B"};
	pwb_feedback_result res;
	rig_ok(pwb_pipeline_feedback(g->pl, &fb, &res, &d), &d, "feedback");
	assert_true(res.consent_needed);
	assert_int_equal(res.pairs_learnt, 0);
	pwb_response_free(r);
	/* Without the jurisdiction, the org's own law lets it learn. */
	req.n_jurisdictions = 0;
	rig_ok(pwb_pipeline_chat(g->pl, &req, &r, &d), &d, "chat");
	assert_true(r->learns);
	fb.decision_id = r->decision_id;
	rig_ok(pwb_pipeline_feedback(g->pl, &fb, &res, &d), &d, "feedback");
	assert_false(res.consent_needed);
	assert_true(res.pairs_learnt > 0);
	pwb_response_free(r);
	pwb_diag_release(&d);
	rig_free(g);
}

/* ---- UTF-8 ---- */

/* A request the pipeline refuses before anything reaches the model. */
static void refused(rig *g, const pwb_chat_msg *msgs, size_t n, pwb_status want,
		    const char *message)
{
	pwb_request req = {
	    .org = ORG, .user = "u8-u", .msgs = msgs, .n_msgs = n};
	pwb_response *r = NULL;
	pwb_diag d;
	pwb_diag_init(&d);
	assert_int_equal(pwb_pipeline_chat(g->pl, &req, &r, &d), want);
	assert_null(r);
	assert_int_equal(d.n, 1);
	assert_string_equal(d.entries[0].message, message);
	pwb_diag_release(&d);
	assert_int_equal(mock_count(g->model), 0);
}

static void test_message_not_utf8(void **state)
{
	(void)state;
	rig *g = rig_new("echo", 0);
	pwb_chat_msg msgs[] = {{"user", "Hello."},
			       {"assistant", "Hi \xff there."},
			       {"user", "Go on."}};
	refused(g, msgs, 3, PWB_EINVAL,
		"message 2 (assistant) is not valid UTF-8 (line 1, column 4)");
	/* Roles, sizes and counts are the request's, numbered as sent. */
	msgs[1] = (pwb_chat_msg){"tool", "{}"};
	refused(g, msgs, 3, PWB_EINVAL,
		"message 2 has role 'tool' where system, user or assistant "
		"was expected");
	size_t big = PWB_ENGINE_MAX_MSG_BYTES + 1;
	char *text = malloc(big + 1);
	assert_non_null(text);
	memset(text, 'a', big);
	text[big] = 0;
	msgs[1] = (pwb_chat_msg){"assistant", text};
	refused(g, msgs, 3, PWB_ETOOLARGE,
		"message 2 (assistant) has more than 4 MiB of text");
	free(text);
	pwb_chat_msg *many = calloc(PWB_ENGINE_MAX_MSGS, sizeof(*many));
	assert_non_null(many);
	for (size_t i = 0; i < PWB_ENGINE_MAX_MSGS; i++)
		many[i] = (pwb_chat_msg){"user", "Hi."};
	refused(g, many, PWB_ENGINE_MAX_MSGS, PWB_EINVAL,
		"a request has at most 255 messages (pwb adds its system "
		"prompt)");
	/* 255 are served. */
	pwb_response *r =
	    ask_turns(g, "u8-u", many, PWB_ENGINE_MAX_MSGS - 1, 1, 1, NULL);
	assert_false(r->blocked);
	pwb_response_free(r);
	free(many);
	rig_free(g);
}

static void test_utf8_fix(void **state)
{
	(void)state;
	static const struct {
		const char *in;
		size_t len;
		const char *out;
	} cases[] = {
	    {"plain", 5, "plain"},
	    {"caf\xc3\xa9", 5, "caf\xc3\xa9"},
	    {"a\xff"
	     "b",
	     3,
	     "a\xef\xbf\xbd"
	     "b"},
	    {"cut \xe2\x82", 6, "cut \xef\xbf\xbd\xef\xbf\xbd"},
	    {"nul\0x", 5, "nul\xef\xbf\xbdx"},
	    {"\xed\xa0\x80", 3, "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"},
	};
	for (size_t i = 0; i < PWB_ARRAY_LEN(cases); i++) {
		pwb__buf b;
		pwb__buf_init(&b, 0);
		pwb__utf8_fix(&b, cases[i].in, cases[i].len, false);
		assert_false(b.err);
		assert_int_equal(b.len, strlen(cases[i].out));
		assert_memory_equal(b.s, cases[i].out, b.len);
		int line, col;
		bool nul;
		assert_true(pwb__utf8_valid(b.s, b.len, &line, &col, &nul));
		pwb__buf_release(&b);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_system_prompt),
	    cmocka_unit_test(test_redacted_prompt_reaches_model),
	    cmocka_unit_test(test_last_user_turn_checked),
	    cmocka_unit_test(test_disclaimer_before_answer),
	    cmocka_unit_test(test_stream_redacted_rest),
	    cmocka_unit_test(test_not_on_category_stays_below_zero),
	    cmocka_unit_test(test_rating_three_teaches_nothing),
	    cmocka_unit_test(test_no_consent_population_scores),
	    cmocka_unit_test(test_feedback_keeps_request_jurisdictions),
	    cmocka_unit_test(test_message_not_utf8),
	    cmocka_unit_test(test_utf8_fix),
	};
	return cmocka_run_group_tests(tests, setup, rig_teardown);
}
