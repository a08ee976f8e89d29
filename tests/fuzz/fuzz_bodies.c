/*
 * fuzz_bodies.c - libFuzzer target for the feedback and settings bodies of
 * pwb serve (POST /v1/feedback, PUT /v1/users/{id}/settings;
 * docs/server.md), read as their handlers read them, without a connection.
 *
 * The first byte picks the body; the rest is the body:
 *
 *   even ('f')  feedback: pwb__srv_body_json, pwb__srv_body_user for a
 *               service key, then pwb__srv_feedback_parse
 *   odd ('s')   settings: pwb__srv_body_json, then
 *               pwb__srv_settings_resolve for every org of the shipped
 *               policy set (PWB_SOURCE_DIR/policies, or ../../policies
 *               from the build's tests folder), loaded once per process
 *
 * Beyond memory errors and leaks, the target aborts when a contract of
 * server_int.h or pwb/policy.h breaks. Feedback: a refusal without an
 * error code and message, or one that changed fb; an accepted body whose
 * decision_id fails pwb__srv_id_ok, that has not exactly one kind, whose
 * rating is not finite, or whose strings are not the body's. Settings: a
 * refusal without a diagnostic with a message (one naming the tier and
 * source when outside the bounds) or that left an effective policy; an
 * accepted body whose effective policy is looser than the org's without
 * settings (a category's permission, a forbidden category on, an opt_in
 * one on that the user did not turn on, a range, an allowed list, a fixed
 * value, the obligations or learning), or that did not apply a setting.
 */
#include "server/server_int.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void die(const char *what)
{
	fprintf(stderr, "fuzz_bodies: %s\n", what);
	abort();
}

/* ---- feedback ---- */

static const char *body_str(json_t *body, const char *key)
{
	return json_string_value(json_object_get(body, key));
}

static void check_feedback(json_t *body, const char *user)
{
	/* Not zero, so that a refusal that touched fb shows. */
	pwb_feedback_give fb = {.org = "acme-tutor",
				.user = user,
				.decision_id = "unset",
				.kind = PWB_FB_PAIR,
				.alt = "unset",
				.other = "unset",
				.rating = -1};
	pwb_feedback_give before = fb;
	const char *code = NULL, *msg = NULL;
	pwb_status st = pwb__srv_feedback_parse(body, &fb, &code, &msg);
	if (st) {
		if (st != PWB_EINVAL || !code || !msg || !*msg)
			die("a refused feedback without a code and message");
		if (strcmp(code, "invalid_type") &&
		    strcmp(code, "missing_decision") &&
		    strcmp(code, "invalid_feedback"))
			die("a refused feedback with an unknown code");
		if (fb.decision_id != before.decision_id ||
		    fb.kind != before.kind || fb.alt != before.alt ||
		    fb.other != before.other || fb.rating != before.rating)
			die("a refused feedback changed fb");
		return;
	}
	if (fb.org != before.org || fb.user != before.user)
		die("an accepted feedback changed the org or user");
	if (!pwb__srv_id_ok(fb.decision_id) ||
	    fb.decision_id != body_str(body, "decision_id"))
		die("an accepted feedback without the body's decision_id");
	const char *choose = body_str(body, "choose");
	const char *prefer = body_str(body, "prefer");
	const char *over = body_str(body, "over");
	json_t *rating = json_object_get(body, "rating");
	if (!!choose + !!rating + !!prefer != 1 || !!prefer != !!over)
		die("an accepted feedback without exactly one kind");
	switch (fb.kind) {
	case PWB_FB_CHOOSE:
		if (!choose || fb.alt != choose || fb.other)
			die("a choice that is not the body's");
		break;
	case PWB_FB_RATING:
		if (!json_is_number(rating) || !isfinite(fb.rating) ||
		    fb.rating != json_number_value(rating))
			die("a rating that is not the body's finite number");
		if (fb.alt != body_str(body, "alternative") || fb.other)
			die("a rating of another alternative than the body's");
		break;
	case PWB_FB_PAIR:
		if (!prefer || !over || fb.alt != prefer || fb.other != over)
			die("a pair that is not the body's");
		break;
	default:
		die("an accepted feedback of unknown kind");
	}
}

/* ---- settings ---- */

#define MAX_ORGS 8

static pwb_policy *policy;
static size_t n_orgs;
static const char *orgs[MAX_ORGS];
static pwb_effective *base[MAX_ORGS]; /* each org without settings */

static void init(void)
{
	const char *src = getenv("PWB_SOURCE_DIR");
	char dir[1024];
	snprintf(dir, sizeof(dir), "%s/policies", src && *src ? src : "../..");
	pwb_diag d;
	pwb_diag_init(&d);
	if (pwb_policy_load(&policy, dir, NULL, &d))
		die("the shipped policies do not load (set PWB_SOURCE_DIR)");
	n_orgs = pwb_policy_n_orgs(policy);
	if (!n_orgs || n_orgs > MAX_ORGS)
		die("the shipped policies have no or too many orgs");
	for (size_t i = 0; i < n_orgs; i++) {
		orgs[i] = pwb_policy_org_id(policy, i);
		if (pwb__srv_settings_resolve(&base[i], policy, orgs[i], NULL,
					      0, &d))
			die("a shipped org does not resolve without settings");
	}
	pwb_diag_release(&d);
}

static bool has(const char *const *list, size_t n, const char *s)
{
	for (size_t i = 0; i < n; i++)
		if (!strcmp(list[i], s))
			return true;
	return false;
}

static void check_dimension(const pwb_eff_dimension *x,
			    const pwb_eff_dimension *b)
{
	if (strcmp(x->id, b->id) || x->numeric != b->numeric ||
	    x->user_adjustable != b->user_adjustable)
		die("a dimension changed its kind or adjustability");
	if (x->numeric) {
		if (x->lo < b->lo || x->hi > b->hi)
			die("a range looser than the org's");
		if (!(x->value >= x->lo && x->value <= x->hi))
			die("a value outside its range");
		if (!x->user_adjustable && x->value != b->value)
			die("a fixed value changed");
		return;
	}
	if (b->allowed) {
		if (!x->allowed || x->n_allowed > b->n_allowed)
			die("an allowed list looser than the org's");
		for (size_t i = 0; i < x->n_allowed; i++)
			if (!has(b->allowed, b->n_allowed, x->allowed[i]))
				die("an allowed value the org does not allow");
	}
	if (!x->value_str ||
	    (x->allowed && !has(x->allowed, x->n_allowed, x->value_str)))
		die("a value outside its allowed list");
	if (!x->user_adjustable &&
	    (!b->value_str || strcmp(x->value_str, b->value_str)))
		die("a fixed value changed");
}

/* The effective policy with settings against the org's without. */
static void check_within(const pwb_effective *e, const pwb_effective *b)
{
	if (strcmp(pwb_effective_org(e), pwb_effective_org(b)))
		die("another org");
	size_t n = pwb_effective_n_categories(e);
	if (n != pwb_effective_n_categories(b))
		die("another number of categories");
	for (size_t i = 0; i < n; i++) {
		const pwb_eff_category *x = pwb_effective_category(e, i);
		const pwb_eff_category *y = pwb_effective_category(b, i);
		if (strcmp(x->id, y->id) ||
		    pwb_permission_looser(x->permission, y->permission))
			die("a category looser than the org's");
		if (x->active &&
		    (x->permission == PWB_FORBID ||
		     (x->permission == PWB_OPT_IN && x->user_setting != 1)))
			die("a category on that may not be");
	}
	n = pwb_effective_n_dimensions(e);
	if (n != pwb_effective_n_dimensions(b))
		die("another number of dimensions");
	for (size_t i = 0; i < n; i++)
		check_dimension(pwb_effective_dimension(e, i),
				pwb_effective_dimension(b, i));
	if (pwb_effective_n_obligations(e) != pwb_effective_n_obligations(b))
		die("obligations other than the org's");
	const pwb_eff_learning *l = pwb_effective_learning(e);
	const pwb_eff_learning *m = pwb_effective_learning(b);
	if (l->requires_consent != m->requires_consent ||
	    l->store_texts != m->store_texts ||
	    l->retention_days != m->retention_days ||
	    l->n_forbid_attributes != m->n_forbid_attributes)
		die("learning other than the org's");
}

/* Every setting of the body is applied. */
static void check_applied(const pwb_effective *e, json_t *body)
{
	const char *k;
	json_t *v;
	json_object_foreach(json_object_get(body, "categories"), k, v)
	{
		const pwb_eff_category *c = pwb_effective_find_category(e, k);
		if (!c ||
		    c->user_setting != !strcmp(json_string_value(v), "on"))
			die("a category setting not applied");
	}
	json_object_foreach(json_object_get(body, "dimensions"), k, v)
	{
		const pwb_eff_dimension *x = pwb_effective_find_dimension(e, k);
		if (!x || x->value_set_by.tier != PWB_TIER_USER)
			die("a dimension setting not applied");
		if (x->numeric
			? !json_is_number(v) || x->value != json_number_value(v)
			: !json_is_string(v) ||
			      strcmp(x->value_str, json_string_value(v)))
			die("a dimension value not the body's");
	}
}

static void check_settings(const srv_req *r, json_t *body)
{
	for (size_t i = 0; i < n_orgs; i++) {
		pwb_effective *e = NULL;
		pwb_diag d;
		pwb_diag_init(&d);
		pwb_status st = pwb__srv_settings_resolve(
		    &e, policy, orgs[i], r->body.s, r->body.len, &d);
		if (st == PWB_ENOMEM) {
			die("out of memory");
		} else if (st) {
			if (e)
				die("a refusal that left an effective policy");
			if (!d.n || !d.entries[0].message ||
			    !*d.entries[0].message)
				die("a refusal without a message");
			if (st == PWB_EBOUNDS &&
			    (!strstr(d.entries[0].message, "tier ") ||
			     !strstr(d.entries[0].message, "source ")))
				die("outside the bounds without the rule");
			if (st != PWB_EPARSE && st != PWB_EINVAL &&
			    st != PWB_EBOUNDS && st != PWB_ETOOLARGE)
				die("a refusal with an unexpected status");
		} else {
			if (!e)
				die("accepted without an effective policy");
			check_within(e, base[i]);
			check_applied(e, body);
		}
		pwb_effective_free(e);
		pwb_diag_release(&d);
	}
}

/* ---- the target ---- */

/* A refusal of the body itself: a 400 with a JSON error. */
static void check_refusal(const srv_req *r)
{
	if (r->status != 400)
		die("a refused body with a status other than 400");
	json_t *j = r->resp ? json_loadb(r->resp, r->resp_len, 0, NULL) : NULL;
	if (!json_is_string(
		json_object_get(json_object_get(j, "error"), "code")))
		die("a refused body without a JSON error");
	json_decref(j);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!size)
		return 0;
	bool feedback = data[0] % 2 == 0;
	if (!feedback && !policy)
		init();
	pwb_server srv;
	memset(&srv, 0, sizeof(srv));
	srv_req r;
	memset(&r, 0, sizeof(r));
	r.srv = &srv;
	r.key.role = PWB_KEY_SERVICE;
	r.key.org = (char *)"acme-tutor";
	pwb__buf_init(&r.body, 0);
	pwb__buf_add(&r.body, (const char *)data + 1, size - 1);
	if (r.body.err)
		die("out of memory in the target");

	json_t *body = pwb__srv_body_json(&r);
	if (!body) {
		check_refusal(&r);
	} else if (feedback) {
		const char *user = pwb__srv_body_user(&r, body);
		if (user)
			check_feedback(body, user);
		else
			check_refusal(&r);
	} else {
		check_settings(&r, body);
	}
	json_decref(body);
	free(r.resp);
	pwb__buf_release(&r.body);
	return 0;
}
