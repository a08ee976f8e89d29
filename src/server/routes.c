/*
 * routes.c - the route table (every endpoint with the roles that may call
 * it, read by the one check in server.c) and the handlers other than
 * chat: health, metrics, models, feedback, a user's bounds, settings,
 * export and erasure, decisions, the audit chain and policy reloads.
 */
#include "server/server_int.h"

#include "pwb/report.h"

#include <stdlib.h>
#include <string.h>

static void h_healthz(srv_req *r);
static void h_readyz(srv_req *r);
static void h_metrics(srv_req *r);
static void h_models(srv_req *r);
static void h_me(srv_req *r);
static void h_feedback(srv_req *r);
static void h_bounds(srv_req *r);
static void h_settings(srv_req *r);
static void h_consent(srv_req *r);
static void h_export(srv_req *r);
static void h_erase(srv_req *r);
static void h_decision(srv_req *r);
static void h_audit_verify(srv_req *r);
static void h_reload(srv_req *r);
static void h_datasheet(srv_req *r);
static void h_risks(srv_req *r);

/*
 * Who may call what (DESIGN §9). A service key acts for any user of its
 * org; a user key only for itself (path or body user, checked before the
 * handler); an auditor reads decisions without content and the audit
 * chain; an admin reloads policies. Every key reaches only its own org's
 * data: the org always comes from the key, never from the request.
 */
const srv_route pwb__srv_routes[] = {
    {"GET", "/healthz", 0, SRV_SCOPE_NONE, h_healthz, "healthz"},
    {"GET", "/readyz", 0, SRV_SCOPE_NONE, h_readyz, "readyz"},
    {"GET", "/metrics", 0, SRV_SCOPE_NONE, h_metrics, "metrics"},
    {"GET", "/v1/models", SRV_ANY_KEY, SRV_SCOPE_NONE, h_models, "models"},
    {"GET", "/v1/me", SRV_ANY_KEY, SRV_SCOPE_NONE, h_me, "me"},
    {"POST", "/v1/chat/completions", SRV_SERVICE | SRV_USER,
     SRV_SCOPE_BODY_USER, pwb__srv_chat, "chat"},
    {"POST", "/v1/feedback", SRV_SERVICE | SRV_USER, SRV_SCOPE_BODY_USER,
     h_feedback, "feedback"},
    {"GET", "/v1/users/{id}/bounds", SRV_SERVICE | SRV_USER,
     SRV_SCOPE_PATH_USER, h_bounds, "bounds"},
    {"PUT", "/v1/users/{id}/settings", SRV_SERVICE | SRV_USER,
     SRV_SCOPE_PATH_USER, h_settings, "settings"},
    {"PUT", "/v1/users/{id}/consent", SRV_SERVICE | SRV_USER,
     SRV_SCOPE_PATH_USER, h_consent, "consent"},
    {"GET", "/v1/users/{id}/export", SRV_SERVICE | SRV_USER,
     SRV_SCOPE_PATH_USER, h_export, "export"},
    {"DELETE", "/v1/users/{id}", SRV_SERVICE | SRV_USER, SRV_SCOPE_PATH_USER,
     h_erase, "erase"},
    {"GET", "/v1/decisions/{id}", SRV_SERVICE | SRV_USER | SRV_AUDITOR,
     SRV_SCOPE_DECISION, h_decision, "decision"},
    {"GET", "/v1/audit/verify", SRV_AUDITOR | SRV_ADMIN, SRV_SCOPE_NONE,
     h_audit_verify, "audit_verify"},
    {"POST", "/v1/admin/policies/reload", SRV_ADMIN, SRV_SCOPE_NONE, h_reload,
     "reload"},
    {"GET", "/v1/reports/datasheet", SRV_AUDITOR | SRV_ADMIN, SRV_SCOPE_NONE,
     h_datasheet, "datasheet"},
    {"GET", "/v1/reports/risks", SRV_AUDITOR | SRV_ADMIN, SRV_SCOPE_NONE,
     h_risks, "risks"},
};
const size_t pwb__srv_n_routes = PWB_ARRAY_LEN(pwb__srv_routes);

static pwb_store *store_of(srv_req *r)
{
	return r->srv->p.pipeline.store;
}

/* A store call failed: 404 for not found, else the status for st. */
static void store_fail(srv_req *r, pwb_status st, const pwb_diag *d)
{
	if (st != PWB_ENOTFOUND && st != PWB_EINVAL && st != PWB_EBOUNDS)
		atomic_fetch_add(&r->srv->metrics.store_errors, 1);
	pwb__srv_fail(r, st, d, "store");
}

static void h_healthz(srv_req *r)
{
	pwb__srv_json(r, 200, json_pack("{s:s}", "status", "ok"));
}

/* Ready: serving (not stopping), with a policy set and a store that
 * answers. */
static void h_readyz(srv_req *r)
{
	if (atomic_load(&r->srv->draining)) {
		pwb__srv_error(r, 503, "server_error", "shutting_down",
			       "the server is shutting down");
		return;
	}
	char **orgs = NULL;
	size_t n = 0;
	pwb_diag d;
	pwb_diag_init(&d);
	pwb_status st = pwb_store_orgs(store_of(r), &orgs, &n, &d);
	pwb_store_orgs_free(orgs, n);
	pwb_diag_release(&d);
	if (st) {
		atomic_fetch_add(&r->srv->metrics.store_errors, 1);
		pwb__srv_error(r, 503, "server_error", "store_unavailable",
			       "the store does not answer");
		return;
	}
	srv_gen *g = pwb__srv_gen_get(r->srv);
	pwb__srv_json(r, 200,
		      json_pack("{s:s, s:I}", "status", "ready",
				"policy_version", (json_int_t)g->version));
	pwb__srv_gen_release(g);
}

static void h_metrics(srv_req *r)
{
	char *text = pwb__srv_metrics_text(&r->srv->metrics, r->srv);
	if (!text) {
		pwb__srv_error(r, 503, "server_error", "unavailable",
			       "out of memory");
		return;
	}
	free(r->resp);
	r->resp = text;
	r->resp_len = strlen(text);
	r->status = 200;
	r->ctype = "text/plain; version=0.0.4; charset=utf-8";
}

static void h_models(srv_req *r)
{
	pwb__srv_json(r, 200,
		      json_pack("{s:s, s:[{s:s, s:s, s:I, s:s}]}", "object",
				"list", "data", "id", r->srv->model_name,
				"object", "model", "created",
				(json_int_t)r->srv->started_unix, "owned_by",
				"pwb"));
}

/* Who the key is: its id, org, role and (for a user key) user; what a
 * client (the web UI) shows and asks for next. */
static void h_me(srv_req *r)
{
	pwb__srv_json(r, 200,
		      json_pack("{s:s, s:s, s:s, s:s?}", "key_id", r->key.id,
				"org", r->key.org, "role",
				pwb_key_role_str(r->key.role), "user",
				r->key.user));
}

/* ---- feedback ---- */

static const char *str_field(json_t *body, const char *key, bool *bad)
{
	json_t *v = json_object_get(body, key);
	if (v && !json_is_string(v))
		*bad = true;
	return json_string_value(v);
}

pwb_status pwb__srv_feedback_parse(json_t *body, pwb_feedback_give *fb,
				   const char **code, const char **msg)
{
	bool bad = false;
	const char *decision_id = str_field(body, "decision_id", &bad);
	const char *choose = str_field(body, "choose", &bad);
	const char *prefer = str_field(body, "prefer", &bad);
	const char *over = str_field(body, "over", &bad);
	const char *alt = str_field(body, "alternative", &bad);
	json_t *rating = json_object_get(body, "rating");
	if (bad || (rating && !json_is_number(rating))) {
		*code = "invalid_type";
		*msg = "decision_id, choose, prefer, over and alternative are "
		       "strings; rating is a number";
		return PWB_EINVAL;
	}
	if (!decision_id || !pwb__srv_id_ok(decision_id)) {
		*code = "missing_decision";
		*msg = "give the decision_id of the answer";
		return PWB_EINVAL;
	}
	int kinds = !!choose + !!rating + !!(prefer || over);
	if (kinds != 1 || (!!prefer != !!over)) {
		*code = "invalid_feedback";
		*msg = "give one of: \"choose\": ALT; \"rating\": 1-5 (with "
		       "\"alternative\": ALT, else the chosen one); "
		       "\"prefer\": ALT with \"over\": ALT";
		return PWB_EINVAL;
	}
	fb->decision_id = decision_id;
	fb->alt = fb->other = NULL;
	fb->rating = 0;
	if (choose) {
		fb->kind = PWB_FB_CHOOSE;
		fb->alt = choose;
	} else if (rating) {
		fb->kind = PWB_FB_RATING;
		fb->rating = json_number_value(rating);
		fb->alt = alt;
	} else {
		fb->kind = PWB_FB_PAIR;
		fb->alt = prefer;
		fb->other = over;
	}
	return PWB_OK;
}

static void h_feedback(srv_req *r)
{
	json_t *body = pwb__srv_body_json(r);
	if (!body)
		return;
	const char *user = pwb__srv_body_user(r, body);
	if (!user)
		goto out;
	pwb_feedback_give fb = {.org = r->key.org, .user = user};
	const char *code, *msg;
	if (pwb__srv_feedback_parse(body, &fb, &code, &msg)) {
		pwb__srv_error(r, 400, "invalid_request_error", code, "%s",
			       msg);
		goto out;
	}
	snprintf(r->decision, sizeof(r->decision), "%s", fb.decision_id);
	srv_gen *g = pwb__srv_gen_get(r->srv);
	pwb_feedback_result res;
	pwb_diag d;
	pwb_diag_init(&d);
	pwb_status st = pwb_pipeline_feedback(g->pipeline, &fb, &res, &d);
	pwb__srv_gen_release(g);
	if (st)
		store_fail(r, st, &d);
	else
		pwb__srv_json(
		    r, 200,
		    json_pack("{s:s, s:s, s:I, s:I, s:b}", "decision_id",
			      fb.decision_id, "user", user, "pairs_learnt",
			      (json_int_t)res.pairs_learnt, "model_version",
			      (json_int_t)res.model_version, "consent_needed",
			      res.consent_needed));
	pwb_diag_release(&d);
out:
	json_decref(body);
}

/* ---- a user's bounds and settings ---- */

pwb_status pwb__srv_settings_resolve(pwb_effective **e, pwb_policy *p,
				     const char *org, const char *settings,
				     size_t len, pwb_diag *d)
{
	pwb_settings *ps = NULL;
	pwb_status st = PWB_OK;
	if (settings)
		st = pwb_settings_parse(&ps, settings, len, "settings", d);
	if (!st) {
		pwb_resolve_params rp = {.org = org, .settings = ps};
		st = pwb_policy_resolve(e, p, &rp, d);
	}
	pwb_settings_free(ps);
	return st;
}

/* The user's effective policy, with settings (stored ones when NULL). */
static pwb_status resolve_user(srv_req *r, srv_gen *g, const char *settings,
			       size_t len, pwb_effective **e, pwb_diag *d)
{
	pwb_store_user u = {0};
	bool found = false;
	pwb_status st = PWB_OK;
	if (!settings) {
		st =
		    pwb_store_user_get(store_of(r), r->key.org, r->user, &u, d);
		if (st == PWB_ENOTFOUND) {
			pwb_diag_clear(d);
			st = PWB_OK;
		} else if (!st) {
			found = true;
			if (u.erased) {
				pwb_store_user_release(&u);
				pwb_diag_add(d, NULL, 0, 0,
					     "user '%s' was erased", r->user);
				return PWB_ENOTFOUND;
			}
			settings = u.settings;
			len = settings ? strlen(settings) : 0;
		}
	}
	if (!st)
		st = pwb__srv_settings_resolve(e, g->policy, r->key.org,
					       settings, len, d);
	if (found)
		pwb_store_user_release(&u);
	return st;
}

static void answer_effective(srv_req *r, const pwb_effective *e,
			     unsigned status)
{
	char *json = NULL;
	if (pwb_effective_to_json(e, &json)) {
		pwb__srv_error(r, 503, "server_error", "unavailable",
			       "out of memory");
		return;
	}
	json_t *j = json_loads(json, 0, NULL);
	free(json);
	if (j)
		json_object_set_new(j, "user", json_string(r->user));
	pwb__srv_json(r, status, j);
}

static void h_bounds(srv_req *r)
{
	srv_gen *g = pwb__srv_gen_get(r->srv);
	pwb_effective *e = NULL;
	pwb_diag d;
	pwb_diag_init(&d);
	pwb_status st = resolve_user(r, g, NULL, 0, &e, &d);
	if (st)
		pwb__srv_fail(r, st, &d, "bounds");
	else
		answer_effective(r, e, 200);
	pwb_effective_free(e);
	pwb__srv_gen_release(g);
	pwb_diag_release(&d);
}

/* Checked against the bounds first: out of bounds is 422 naming the
 * tier, source, rule and basis, and nothing is stored. */
static void h_settings(srv_req *r)
{
	json_t *body = pwb__srv_body_json(r);
	if (!body)
		return;
	json_decref(body);
	srv_gen *g = pwb__srv_gen_get(r->srv);
	pwb_effective *e = NULL;
	pwb_diag d;
	pwb_diag_init(&d);
	pwb_status st = resolve_user(r, g, r->body.s, r->body.len, &e, &d);
	if (st) {
		pwb__srv_fail(r, st, &d, "settings");
	} else {
		st = pwb_store_user_set_settings(store_of(r), r->key.org,
						 r->user, r->body.s,
						 pwb__srv_now(), &d);
		if (st)
			store_fail(r, st, &d);
		else
			answer_effective(r, e, 200);
	}
	pwb_effective_free(e);
	pwb__srv_gen_release(g);
	pwb_diag_release(&d);
}

/*
 * The user's consent (`pwb user consent`): {"learning": BOOL} to learning
 * from their feedback, {"cohort": ATTR} to being grouped by the attribute
 * the org groups by ("" or null withdraws); each key changes its own
 * consent and keeps the other. The answer is the consent recorded.
 */
static void h_consent(srv_req *r)
{
	json_t *body = pwb__srv_body_json(r);
	if (!body)
		return;
	json_t *learning = json_object_get(body, "learning");
	json_t *cohort = json_object_get(body, "cohort");
	const char *attr =
	    json_is_null(cohort) ? "" : json_string_value(cohort);
	pwb_store_user row = {0};
	pwb_effective *e = NULL;
	char *json = NULL, why[600];
	srv_gen *g = NULL;
	pwb_diag d;
	pwb_diag_init(&d);
	if ((learning && !json_is_boolean(learning)) || (cohort && !attr) ||
	    (!learning && !cohort)) {
		pwb__srv_error(r, 400, "invalid_request_error",
			       "invalid_consent",
			       "give \"learning\": true or false, and/or "
			       "\"cohort\": the attribute to be grouped by "
			       "(\"\" or null withdraws)");
		goto out;
	}
	if (pwb_consent_update(NULL, -1, attr, 0, &json) == PWB_EINVAL) {
		pwb__srv_error(r, 400, "invalid_request_error",
			       "invalid_consent",
			       "cohort: an attribute name is 1 to 64 letters, "
			       "digits and '_'");
		goto out;
	}
	free(json);
	json = NULL;
	g = pwb__srv_gen_get(r->srv);
	pwb_status st = PWB_OK;
	if (attr && *attr) {
		if ((st = resolve_user(r, g, NULL, 0, &e, &d))) {
			pwb__srv_fail(r, st, &d, "consent");
			goto out;
		}
		if (!pwb_consent_cohort_ok(e, r->key.org, attr, why,
					   sizeof(why))) {
			pwb__srv_error(r, 422, "invalid_request_error",
				       "cohort_not_allowed", "cohort %s: %s",
				       attr, why);
			goto out;
		}
	}
	st = pwb_consent_record(store_of(r), r->key.org, r->user,
				learning ? json_is_true(learning) : -1, attr,
				pwb__srv_now(), &json, &d);
	if (st) {
		store_fail(r, st, &d);
		goto out;
	}
	pwb__srv_json(r, 200,
		      json_pack("{s:s, s:o?}", "user", r->user, "consent",
				json_loads(json, 0, NULL)));
out:
	if (g)
		pwb__srv_gen_release(g);
	pwb_store_user_release(&row);
	pwb_effective_free(e);
	free(json);
	pwb_diag_release(&d);
	json_decref(body);
}

static void h_export(srv_req *r)
{
	char *json = NULL;
	pwb_diag d;
	pwb_diag_init(&d);
	pwb_status st =
	    pwb_store_user_export(store_of(r), r->key.org, r->user, &json, &d);
	if (st) {
		store_fail(r, st, &d);
	} else {
		free(r->resp);
		r->resp = json;
		r->resp_len = strlen(json);
		r->status = 200;
		r->ctype = "application/json";
	}
	pwb_diag_release(&d);
}

static void h_erase(srv_req *r)
{
	int64_t seq = 0;
	pwb_diag d;
	pwb_diag_init(&d);
	pwb_status st = pwb_store_user_erase(store_of(r), r->key.org, r->user,
					     pwb__srv_now(), &seq, &d);
	if (st)
		store_fail(r, st, &d);
	else
		pwb__srv_json(r, 200,
			      json_pack("{s:s, s:b, s:I}", "user", r->user,
					"erased", 1, "audit_seq",
					(json_int_t)seq));
	pwb_diag_release(&d);
}

/* ---- decisions and the audit chain ---- */

/* A decision's provenance: for its own user (or their org's service) with
 * the user named, for an auditor without it. Another user's decision is
 * "not found", as one that does not exist. */
static void h_decision(srv_req *r)
{
	if (!pwb__srv_id_ok(r->arg)) {
		pwb__srv_error(r, 400, "invalid_request_error", "invalid_id",
			       "a decision id is 1 to 256 bytes of printable "
			       "UTF-8");
		return;
	}
	pwb_store_decision_row row = {0};
	pwb_diag d;
	pwb_diag_init(&d);
	pwb_status st =
	    pwb_store_decision_get(store_of(r), r->key.org, r->arg, &row, &d);
	if (!st && r->key.role == PWB_KEY_USER &&
	    (!row.user || strcmp(row.user, r->key.user))) {
		pwb_store_decision_row_release(&row);
		st = PWB_ENOTFOUND;
		pwb_diag_clear(&d);
	}
	if (st == PWB_ENOTFOUND) {
		pwb__srv_error(r, 404, "not_found_error", "not_found",
			       "no decision '%s' for this key", r->arg);
	} else if (st) {
		store_fail(r, st, &d);
	} else {
		json_t *detail =
		    row.detail ? json_loads(row.detail, 0, NULL) : NULL;
		json_t *j = json_pack("{s:s, s:s, s:s?, s:o}", "id", r->arg,
				      "org", r->key.org, "verdict", row.verdict,
				      "detail", detail ? detail : json_null());
		/* An auditor sees provenance, never whose it is. */
		if (j && row.user && r->key.role != PWB_KEY_AUDITOR)
			json_object_set_new(j, "user", json_string(row.user));
		pwb__srv_json(r, 200, j);
		pwb_store_decision_row_release(&row);
	}
	pwb_diag_release(&d);
}

static void h_audit_verify(srv_req *r)
{
	pwb_audit_report rep;
	memset(&rep, 0, sizeof(rep));
	pwb_diag d;
	pwb_diag_init(&d);
	pwb_status st = pwb_store_audit_verify(store_of(r), &rep, &d);
	if (st && st != PWB_EINVAL) {
		store_fail(r, st, &d);
	} else {
		char msg[1024] = "";
		if (d.n)
			pwb_diag_format(&d.entries[0], msg, sizeof(msg));
		pwb__srv_json(
		    r, 200,
		    json_pack(
			"{s:b, s:I, s:o, s:s, s:s?}", "intact", !st, "rows",
			(json_int_t)rep.rows, "bad_seq",
			rep.bad_seq ? json_integer(rep.bad_seq) : json_null(),
			"head", rep.head_hash, "message", st ? msg : NULL));
	}
	pwb_diag_release(&d);
}

static void h_reload(srv_req *r)
{
	uint64_t version = 0;
	pwb_diag d;
	pwb_diag_init(&d);
	pwb_status st = pwb_server_reload(r->srv, &version, &d);
	if (st) {
		json_t *errs = json_array();
		for (size_t i = 0; errs && i < d.n && i < 100; i++) {
			char line[1024];
			pwb_diag_format(&d.entries[i], line, sizeof(line));
			json_array_append_new(errs, json_string(line));
		}
		r->err_code = "invalid_policy";
		pwb__srv_json(
		    r, 422,
		    json_pack("{s:{s:s, s:s, s:s, s:o}}", "error", "type",
			      "invalid_request_error", "message",
			      "the policy folder has errors; the set in force "
			      "keeps serving",
			      "code", "invalid_policy", "errors",
			      errs ? errs : json_array()));
	} else {
		pwb__srv_json(r, 200,
			      json_pack("{s:s, s:I}", "status", "reloaded",
					"policy_version", (json_int_t)version));
	}
	pwb_diag_release(&d);
}

/* ---- reports ---- */

typedef pwb_status (*report_fn)(pwb_store *s, const pwb_report_params *p,
				char **json, pwb_diag *diag);

/* A report of the key's org (docs/report.md, docs/RISKS.md): JSON, or the
 * page with ?format=html; ?since= and ?until= as `pwb report` takes them. */
static void report(srv_req *r, report_fn make)
{
	pwb_report_params p = {.org = r->key.org};
	bool html = false;
	if (r->q_format && !(html = !strcmp(r->q_format, "html")) &&
	    strcmp(r->q_format, "json")) {
		pwb__srv_error(r, 400, "invalid_request_error", "invalid_value",
			       "format: json or html");
		return;
	}
	if ((r->q_since && !pwb_report_parse_date(r->q_since, &p.since)) ||
	    (r->q_until && !pwb_report_parse_date(r->q_until, &p.until))) {
		pwb__srv_error(r, 400, "invalid_request_error", "invalid_value",
			       "since and until: YYYY-MM-DD or unix seconds");
		return;
	}
	if (r->q_until && p.until <= p.since) {
		pwb__srv_error(r, 400, "invalid_request_error", "invalid_value",
			       "until must be after since");
		return;
	}
	srv_gen *g = pwb__srv_gen_get(r->srv);
	p.policy = g->policy;
	char *json = NULL, *page = NULL;
	pwb_prefs_model *pm = NULL;
	pwb_diag d;
	pwb_diag_init(&d);
	/* The population model the users' models were learnt against. */
	pwb_status st = r->srv->prefs_path
			    ? pwb_prefs_load(&pm, r->srv->prefs_path, &d)
			    : PWB_OK;
	p.prefs = pm;
	if (!st)
		st = make(store_of(r), &p, &json, &d);
	pwb_prefs_model_free(pm);
	if (!st && html)
		st = pwb_report_html(json, &page, &d);
	pwb__srv_gen_release(g);
	if (st)
		store_fail(r, st, &d);
	else if (html)
		pwb__srv_text(r, 200, page, "text/html; charset=utf-8");
	else
		pwb__srv_json_text(r, 200, json);
	if (html)
		free(json);
	pwb_diag_release(&d);
}

static void h_datasheet(srv_req *r)
{
	report(r, pwb_report_datasheet);
}

static void h_risks(srv_req *r)
{
	report(r, pwb_report_risks);
}
