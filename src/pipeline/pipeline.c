/*
 * pipeline.c - one chat request, DESIGN §3.1 in order (docs/pipeline.md):
 *
 *   load_user -> pwb__resolve -> check_prompt -> build_messages ->
 *   generate -> check_candidates -> score_candidates -> choose ->
 *   apply_obligations -> record
 *
 * each a function below, called from pwb_pipeline_chat() at the end.
 */
#include "pipeline/pipeline_int.h"

#include <jansson.h>
#include <math.h>
#include <sodium.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

pwb_pipeline_params pwb_pipeline_default_params(void)
{
	return (pwb_pipeline_params){
	    .max_tokens = 256,
	    .temperature = 0.8,
	    .top_p = 0.95,
	    .stream_hold_bytes = 256,
	};
}

/* A model of zeros laid out for the registry's categories, without
 * embeddings: the layout must not depend on the engine, so that feedback
 * is read back whatever engine served the request (docs/pipeline.md). */
pwb_status pwb_pipeline_default_prefs(const pwb_policy *pol,
				      pwb_prefs_model **out, pwb_diag *diag)
{
	size_t n = pwb_policy_n_categories(pol);
	if (n > PWB_PREFS_MAX_CATEGORIES)
		n = PWB_PREFS_MAX_CATEGORIES;
	const char **ids = pwb__calloc(n ? n : 1, sizeof(*ids));
	if (!ids)
		return PWB_ENOMEM;
	for (size_t i = 0; i < n; i++)
		ids[i] = pwb_policy_category(pol, i)->id;
	pwb_prefs_params pp = pwb_prefs_default_params();
	pp.categories = ids;
	pp.n_categories = n;
	pwb_status st = pwb_prefs_model_new(out, &pp, diag);
	free(ids);
	return st;
}

pwb_status pwb_pipeline_new(pwb_pipeline **out, const pwb_pipeline_params *p,
			    pwb_diag *diag)
{
	*out = NULL;
	if (!p || !p->policy) {
		pwb_diag_add(diag, NULL, 0, 0,
			     "pipeline: a policy is required");
		if (p)
			pwb_prefs_model_free(p->prefs);
		return PWB_EINVAL;
	}
	pwb_pipeline *pl = pwb__calloc(1, sizeof(*pl));
	if (!pl) {
		pwb_prefs_model_free(p->prefs);
		pwb_diag_add(diag, NULL, 0, 0, "pipeline: out of memory");
		return PWB_ENOMEM;
	}
	pl->p = *p;
	pl->p.prefs = NULL;
	pwb_pipeline_params d = pwb_pipeline_default_params();
	if (!pl->p.max_tokens)
		pl->p.max_tokens = d.max_tokens;
	if (!pl->p.stream_hold_bytes)
		pl->p.stream_hold_bytes = d.stream_hold_bytes;
	pthread_mutex_init(&pl->lock, NULL);
	for (size_t i = 0; i < PWB__FB_STRIPES; i++)
		pthread_mutex_init(&pl->fb_stripe[i], NULL);
	pl->prefs = p->prefs;
	pwb_status st =
	    pl->prefs
		? PWB_OK
		: pwb_pipeline_default_prefs(pl->p.policy, &pl->prefs, diag);
	if (st) {
		pwb_pipeline_free(pl);
		return st;
	}
	*out = pl;
	return PWB_OK;
}

void pwb_pipeline_free(pwb_pipeline *pl)
{
	if (!pl)
		return;
	pwb_prefs_model_free(pl->prefs);
	pthread_mutex_destroy(&pl->lock);
	for (size_t i = 0; i < PWB__FB_STRIPES; i++)
		pthread_mutex_destroy(&pl->fb_stripe[i]);
	free(pl);
}

void pwb_response_free(pwb_response *r)
{
	if (!r)
		return;
	for (size_t i = 0; i < r->n_alts; i++) {
		free(r->alts[i].content);
		pwb_decision_free(r->alts[i].check);
	}
	free(r->alts);
	free(r->decision_id);
	free(r->content);
	free(r->refusal);
	free(r->system_prompt);
	free(r->cohort);
	pwb_decision_free(r->prompt_check);
	pwb_effective_free(r->effective);
	free(r);
}

/* ---- the user ---- */

/* The consent JSON (`pwb user consent`): {"learning": true} to learning
 * from the user; "cohort": true, or an attribute's name, to being
 * grouped. Anything else (or JSON that does not parse) consents to
 * nothing. */
static pwb_status read_consent(pwb__user *u, const char *json)
{
	if (!json)
		return PWB_OK;
	json_t *j = json_loads(json, 0, NULL);
	u->consented = json_is_true(json_object_get(j, "learning"));
	json_t *c = json_object_get(j, "cohort");
	u->cohort_any = json_is_true(c);
	pwb_status st = PWB_OK;
	if (json_is_string(c) && json_string_length(c) &&
	    !(u->cohort_named = pwb__strdup(json_string_value(c))))
		st = PWB_ENOMEM;
	json_decref(j);
	return st;
}

pwb_status pwb_consent_update(const char *old, int learning, const char *cohort,
			      int64_t now, char **out)
{
	*out = NULL;
	size_t n = cohort ? strlen(cohort) : 0;
	if (n > 64)
		return PWB_EINVAL;
	for (size_t i = 0; i < n; i++) {
		char c = cohort[i];
		if (!(c == '_' || (c >= 'a' && c <= 'z') ||
		      (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')))
			return PWB_EINVAL;
	}
	json_t *j = old ? json_loads(old, 0, NULL) : NULL;
	if (!json_is_object(j)) {
		json_decref(j);
		j = json_object();
	}
	bool bad = !j;
	if (!bad && learning >= 0)
		bad = json_object_set_new(j, "learning",
					  json_boolean(learning == 1));
	if (!bad && cohort)
		bad = json_object_set_new(
		    j, "cohort", n ? json_string(cohort) : json_false());
	if (!bad)
		bad = json_object_set_new(j, "ts", json_integer(now));
	*out = bad ? NULL : json_dumps(j, JSON_COMPACT);
	json_decref(j);
	return *out ? PWB_OK : PWB_ENOMEM;
}

pwb_status pwb_consent_record(pwb_store *s, const char *org, const char *user,
			      int learning, const char *cohort, int64_t now,
			      char **out, pwb_diag *diag)
{
	*out = NULL;
	/* Read, change one key, write back only if nobody wrote between:
	 * else read again. A withdrawal is never lost to a concurrent
	 * change of the other key. */
	for (int tries = 0; tries < 50; tries++) {
		pwb_store_user row = {0};
		pwb_status st = pwb_store_user_get(s, org, user, &row, diag);
		if (st == PWB_ENOTFOUND) { /* a new user; an erased one is
					    * refused by the write */
			pwb_diag_clear(diag);
			st = PWB_OK;
		}
		char *json = NULL;
		bool swapped = false;
		if (!st)
			st = pwb_consent_update(row.consent, learning, cohort,
						now, &json);
		if (!st)
			st = pwb_store_user_cas_consent(s, org, user,
							row.consent, json, now,
							&swapped, diag);
		pwb_store_user_release(&row);
		if (st || swapped) {
			if (st)
				free(json);
			else
				*out = json;
			return st;
		}
		free(json);
	}
	pwb_diag_add(diag, NULL, 0, 0,
		     "the consent of user '%s' kept changing while it was "
		     "recorded; try again",
		     user);
	return PWB_EIO;
}

bool pwb_consent_cohort_ok(const pwb_effective *e, const char *org,
			   const char *attr, char *msg, size_t size)
{
	const pwb_eff_learning *l = pwb_effective_learning(e);
	if (l->cohort_attribute && !strcmp(l->cohort_attribute, attr))
		return true;
	if (l->cohort_attribute)
		snprintf(msg, size, "org %s groups users by '%s', not '%s'",
			 org, l->cohort_attribute, attr);
	else if (l->cohort_refused)
		snprintf(msg, size,
			 "org %s groups nobody: its learning restrictions "
			 "(%s) forbid '%s'",
			 org, l->cohort_limited_by.source, l->cohort_refused);
	else
		snprintf(msg, size,
			 "org %s groups nobody (its policy sets no "
			 "learning.cohort_attribute)",
			 org);
	return false;
}

pwb_status pwb__user_load(pwb_pipeline *pl, const char *org, const char *user,
			  pwb__user *u, pwb_diag *diag)
{
	memset(u, 0, sizeof(*u));
	if (!pl->p.store)
		return PWB_OK;
	size_t keep = diag ? diag->n : 0;
	pwb_status st =
	    pwb_store_user_get(pl->p.store, org, user, &u->row, diag);
	if (st == PWB_ENOTFOUND) { /* a new user: no message */
		pwb__diag_rewind(diag, keep);
		memset(&u->row, 0, sizeof(u->row));
		return PWB_OK;
	}
	if (st)
		return st;
	u->found = true;
	if (u->row.erased) {
		pwb_diag_add(diag, NULL, 0, 0, "user '%s' was erased", user);
		return PWB_EINVAL;
	}
	if ((st = read_consent(u, u->row.consent)))
		return st;
	if (u->row.settings)
		st = pwb_settings_parse(&u->settings, u->row.settings,
					strlen(u->row.settings),
					"the user's stored settings", diag);
	return st;
}

void pwb__user_release(pwb__user *u)
{
	if (u->found)
		pwb_store_user_release(&u->row);
	pwb_settings_free(u->settings);
	free(u->cohort_named);
	memset(u, 0, sizeof(*u));
}

/* ---- the user's cohort (docs/prefs.md, "Cohort priors") ---- */

bool pwb__cohort_consented(const pwb_effective *e, const pwb__user *u,
			   const char *attr)
{
	const pwb_eff_learning *l = pwb_effective_learning(e);
	if (!attr || !l->cohort_attribute || strcmp(attr, l->cohort_attribute))
		return false;
	/* An attribute a learning restriction names (a special category)
	 * needs consent that names it: "cohort": true does not do. */
	if (u->cohort_named && !strcmp(u->cohort_named, attr))
		return true;
	return u->cohort_any && !l->cohort_named_consent;
}

/* A value names a cohort when it is printable UTF-8: no C0 or C1
 * control character, no DEL. */
static bool cohort_value_ok(const char *v, size_t len)
{
	int line, col;
	bool nul;
	if (!len || !pwb__utf8_valid(v, len, &line, &col, &nul))
		return false;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)v[i];
		if (c < 0x20 || c == 0x7f)
			return false;
		if (c == 0xc2 && i + 1 < len &&
		    (unsigned char)v[i + 1] >= 0x80 &&
		    (unsigned char)v[i + 1] <= 0x9f)
			return false;
	}
	return true;
}

pwb_status pwb__cohort_of(const pwb_effective *e, const pwb__user *u,
			  const pwb_attrs *attrs,
			  char id[PWB__COHORT_ID_MAX + 1], pwb_diag *diag)
{
	id[0] = '\0';
	const char *attr = pwb_effective_learning(e)->cohort_attribute;
	if (!attrs || !pwb__cohort_consented(e, u, attr))
		return PWB_OK;
	char key[PWB__COHORT_ID_MAX + 8];
	if ((size_t)snprintf(key, sizeof(key), "user.%s", attr) >= sizeof(key))
		return PWB_OK; /* no such attribute can be set */
	char v[PWB__COHORT_VALUE_MAX + 1];
	pwb_status st = pwb_attrs_text(attrs, key, v, sizeof(v));
	if (st == PWB_ENOTFOUND)
		return PWB_OK;
	if (st == PWB_ETOOLARGE) {
		pwb_diag_add(
		    diag, NULL, 0, 0,
		    "attribute '%s' names the user's cohort: its value "
		    "must be at most %d bytes",
		    key, PWB__COHORT_VALUE_MAX);
		return PWB_EINVAL;
	}
	if (!cohort_value_ok(v, strlen(v))) {
		pwb_diag_add(
		    diag, NULL, 0, 0,
		    "attribute '%s' names the user's cohort: its value "
		    "must be UTF-8 text without control characters, "
		    "not empty",
		    key);
		return PWB_EINVAL;
	}
	if ((size_t)snprintf(id, PWB__COHORT_ID_MAX + 1, "%s=%s", attr, v) >
	    PWB__COHORT_ID_MAX) {
		id[0] = '\0';
		pwb_diag_add(diag, NULL, 0, 0,
			     "attribute '%s' names the user's cohort: the name "
			     "and value together must be at most %d bytes",
			     key, PWB__COHORT_ID_MAX - 1);
		return PWB_EINVAL;
	}
	return PWB_OK;
}

pwb_status pwb__resolve(pwb_pipeline *pl, const pwb_request *req,
			const pwb__user *u, pwb_effective **e, pwb_diag *diag)
{
	pwb_resolve_params rp = {
	    .org = req->org,
	    .jurisdictions = req->jurisdictions,
	    .n_jurisdictions = req->n_jurisdictions,
	    .settings = u->settings,
	    .attrs = req->attrs,
	};
	pwb_status st = pwb_policy_resolve(e, pl->p.policy, &rp, diag);
	/* Stored settings that cannot be read (out of bounds is said by
	 * the caller, who knows how to fix it): whose they are. */
	if (st && u->settings && st != PWB_EBOUNDS && st != PWB_ENOTFOUND &&
	    st != PWB_ENOMEM)
		pwb_diag_add(diag, NULL, 0, 0,
			     "in the stored settings of user '%s' (org '%s'); "
			     "replace them with pwb user settings",
			     req->user, req->org);
	return st;
}

pwb_status pwb__user_model_sync(pwb_pipeline *pl, const char *user,
				const pwb__user *u, pwb_diag *diag)
{
	if (u->row.model && u->row.model_len) {
		size_t keep = diag ? diag->n : 0;
		pwb_status st = pwb_prefs_user_load_mem(pl->prefs, u->row.model,
							u->row.model_len, diag);
		if (st == PWB_EPARSE || st == PWB_EINVAL) {
			/* One message, naming the user, with the reason. */
			char why[256] = "";
			if (diag && diag->n > keep)
				snprintf(why, sizeof(why), " (%s)",
					 diag->entries[diag->n - 1].message);
			pwb__diag_rewind(diag, keep);
			pwb_diag_add(diag, NULL, 0, 0,
				     "user '%s': their stored preference model "
				     "does not fit this one%s: it was learnt "
				     "with another --prefs model, or is "
				     "damaged; give the --prefs model their "
				     "feedback used, or start them afresh "
				     "with `pwb user reset`",
				     user, why);
		}
		return st;
	}
	if (pwb_prefs_has_user(pl->prefs, user))
		return pwb_prefs_reset(pl->prefs, user, diag);
	return PWB_OK;
}

void pwb__prefs_bounds(const pwb_pipeline *pl, const pwb_effective *e,
		       bool consented, pwb_prefs_bounds *b)
{
	pwb_prefs_bounds_init(b);
	pwb_prefs_bounds_from_effective(b, pl->prefs, e);
	b->consented = consented;
}

pwb_status pwb__features(pwb_pipeline *pl, const char *text, size_t len,
			 const pwb_decision *check, pwb_prefs_features *f,
			 pwb_diag *diag)
{
	const pwb_prefs_params *mp = pwb_prefs_model_params(pl->prefs);
	double scores[PWB_PREFS_MAX_CATEGORIES] = {0};
	size_t n = check ? pwb_decision_n_categories(check) : 0;
	for (size_t c = 0; c < mp->n_categories; c++) {
		/* The default model lists the registry's categories in the
		 * decision's order: try the same index first. */
		const pwb_cat_decision *cd =
		    c < n ? pwb_decision_category(check, c) : NULL;
		for (size_t i = 0;
		     i < n && (!cd || strcmp(cd->category, mp->categories[c]));
		     i++)
			cd = pwb_decision_category(check, i);
		if (cd && !strcmp(cd->category, mp->categories[c]))
			scores[c] = cd->score;
	}
	float embed[PWB_ENGINE_MAX_EMBED];
	const float *ev = NULL;
	if (mp->n_embed && mp->n_embed == pwb_engine_embed_dim(pl->p.engine)) {
		pwb_status st =
		    pwb_engine_embed(pl->p.engine, text, len, embed, diag);
		if (st)
			return st;
		ev = embed;
	}
	return pwb_prefs_features_compute(f, pl->prefs, text, len, scores, ev,
					  diag);
}

/* ---- the steps of a request ---- */

/* The state of one request between its steps. */
typedef struct req_run {
	pwb_pipeline *pl;
	const pwb_request *req;
	pwb_response *r;
	pwb__user user;
	pwb_chat_msg *msgs; /* pwb's system message, then the request's */
	size_t n_msgs;
	char *redacted_prompt; /* the last user turn, redacted, or NULL */
	char **history;	       /* per message: an earlier user turn as the
				* rails left it, or NULL (unchanged) */
	pwb_generation gen;
	pwb_prefs_features *feats;	     /* per alternative */
	char cohort[PWB__COHORT_ID_MAX + 1]; /* "" when none */
	bool stream_cancelled; /* the stream's caller asked to stop */
	double t0;
} req_run;

/* Every message has a known role and at most 4 MiB of UTF-8; the last
 * user turn says something. */
static pwb_status check_texts(const pwb_request *req, pwb_diag *diag)
{
	for (size_t i = 0; i < req->n_msgs; i++) {
		const char *role = req->msgs[i].role;
		const char *t = req->msgs[i].content;
		int line, col;
		bool nul;
		if (!pwb_chat_role_known(role)) {
			pwb_diag_add(diag, NULL, 0, 0,
				     "message %zu has role '%s' where system, "
				     "user or assistant was expected",
				     i + 1, role ? role : "(none)");
			return PWB_EINVAL;
		}
		if (!t) {
			pwb_diag_add(diag, NULL, 0, 0,
				     "message %zu (%s) has no content", i + 1,
				     role);
			return PWB_EINVAL;
		}
		size_t len = strlen(t);
		if (len > PWB_ENGINE_MAX_MSG_BYTES) {
			pwb_diag_add(diag, NULL, 0, 0,
				     "message %zu (%s) has more than 4 MiB of "
				     "text",
				     i + 1, role);
			return PWB_ETOOLARGE;
		}
		if (!pwb__utf8_valid(t, len, &line, &col, &nul)) {
			pwb_diag_add(diag, NULL, 0, 0,
				     "message %zu (%s) is not valid UTF-8 "
				     "(line %d, column %d)",
				     i + 1, role, line, col);
			return PWB_EINVAL;
		}
	}
	const char *last = NULL;
	for (size_t i = 0; i < req->n_msgs; i++)
		if (!strcmp(req->msgs[i].role, "user"))
			last = req->msgs[i].content;
	while (last && (*last == ' ' || *last == '\t' || *last == '\n' ||
			*last == '\r'))
		last++;
	if (last && !*last) {
		pwb_diag_add(diag, NULL, 0, 0, "the prompt is empty");
		return PWB_EINVAL;
	}
	return PWB_OK;
}

static pwb_status check_request(const pwb_request *req, pwb_diag *diag)
{
	const char *bad = NULL;
	if (!req || !req->org || !*req->org)
		bad = "a request needs an org";
	else if (!req->user || !*req->user)
		bad = "a request needs a user";
	else if (!req->msgs || !req->n_msgs)
		bad = "a request needs at least one message";
	else if (req->n_msgs >= PWB_ENGINE_MAX_MSGS)
		bad = "a request has at most 255 messages (pwb adds its "
		      "system prompt)";
	else if (req->n > PWB_ENGINE_MAX_N || req->min_n > PWB_ENGINE_MAX_N)
		bad = "n must be at most 16";
	else if (req->max_tokens > PWB_ENGINE_MAX_TOKENS)
		bad = "max_tokens must be at most 8192";
	if (!bad) {
		bool user_turn = false;
		for (size_t i = 0; i < req->n_msgs; i++)
			if (req->msgs[i].role &&
			    !strcmp(req->msgs[i].role, "user"))
				user_turn = true;
		if (!user_turn)
			bad = "a request needs a user message";
	}
	if (bad) {
		pwb_diag_add(diag, NULL, 0, 0, "%s", bad);
		return PWB_EINVAL;
	}
	return check_texts(req, diag);
}

/* The index of the last user turn: the prompt the input rails check. */
static size_t last_user_turn(const pwb_request *req)
{
	size_t k = 0;
	for (size_t i = 0; i < req->n_msgs; i++)
		if (!strcmp(req->msgs[i].role, "user"))
			k = i;
	return k;
}

/* Fills blocked_by from a blocking category of a check. */
static void set_blocked(pwb_response *r, const pwb_cat_decision *c,
			const char *on)
{
	r->blocked = true;
	r->verdict = PWB_VERDICT_BLOCK;
	r->chosen = SIZE_MAX;
	r->blocked_by = (pwb_blocked_by){
	    .tier = pwb_cat_decision_block_tier(c),
	    .source = c->set_by.source,
	    .category = c->category,
	    .basis = c->set_by.basis,
	    .file = c->set_by.file,
	    .line = c->set_by.line,
	    .on = on,
	};
	if (r->blocked_by.tier == PWB_TIER_USER) {
		r->blocked_by.source = "user";
		r->blocked_by.basis = "your own setting";
		r->blocked_by.file = NULL;
		r->blocked_by.line = 0;
	}
}

static pwb_status refuse(req_run *rr, const pwb_decision *d, const char *on)
{
	pwb_response *r = rr->r;
	set_blocked(r, pwb_decision_blocked_by(d), on);
	const char *text = pwb_decision_refusal(d);
	if (!(r->refusal = pwb__strdup(text ? text : "")))
		return PWB_ENOMEM;
	/* A stream that was blocked holds what its caller got: the text
	 * released before the block, then the refusal. Else the refusal is
	 * all the caller gets, streamed too. */
	if (r->content)
		return PWB_OK;
	if (!(r->content = pwb__strdup(r->refusal)))
		return PWB_ENOMEM;
	if (rr->req->on_text && *r->refusal)
		rr->req->on_text(rr->req->on_text_user, r->refusal,
				 strlen(r->refusal), true);
	return PWB_OK;
}

/* What stands in the model's view for an earlier turn the rails block. */
#define PWB__WITHHELD                                                          \
	"[an earlier message was withheld: it lies outside the bounds]"

/*
 * The other turns a client sends: the whole conversation comes with
 * every request, raw, so each earlier user turn passes the input rails
 * again, and so does the application's own system message (a client can
 * write one too). A turn they redact reaches the model redacted; a turn
 * they block is replaced by a note (the conversation goes on; the model
 * never sees the turn). Only the last user turn can block the request.
 */
static pwb_status check_history(req_run *rr, size_t last, pwb_diag *diag)
{
	const pwb_request *req = rr->req;
	for (size_t i = 0; i < req->n_msgs; i++) {
		const pwb_chat_msg *m = &req->msgs[i];
		if (i == last || !strcmp(m->role, "assistant"))
			continue;
		pwb_decision *d = NULL;
		pwb_status st = pwb_bounds_check(
		    &d, rr->pl->p.bounds, rr->r->effective, PWB_ROLE_PROMPT,
		    m->content, strlen(m->content), diag);
		if (st)
			return st;
		pwb_verdict v = pwb_decision_verdict(d);
		const char *t = v == PWB_VERDICT_BLOCK ? PWB__WITHHELD
				: v == PWB_VERDICT_REDACT
				    ? pwb_decision_redacted(d)
				    : NULL;
		if (t && !rr->history &&
		    !(rr->history = pwb__calloc(req->n_msgs, sizeof(char *))))
			st = PWB_ENOMEM;
		if (!st && t && !(rr->history[i] = pwb__strdup(t)))
			st = PWB_ENOMEM;
		if (!st && v == PWB_VERDICT_BLOCK)
			rr->r->history_withheld++;
		else if (!st && v == PWB_VERDICT_REDACT)
			rr->r->history_redacted++;
		pwb_decision_free(d);
		if (st)
			return st;
	}
	return PWB_OK;
}

static pwb_status check_prompt(req_run *rr, bool *blocked, pwb_diag *diag)
{
	size_t last = last_user_turn(rr->req);
	const pwb_chat_msg *m = &rr->req->msgs[last];
	pwb_status st = pwb_bounds_check(&rr->r->prompt_check, rr->pl->p.bounds,
					 rr->r->effective, PWB_ROLE_PROMPT,
					 m->content, strlen(m->content), diag);
	if (st)
		return st;
	pwb_verdict v = pwb_decision_verdict(rr->r->prompt_check);
	*blocked = v == PWB_VERDICT_BLOCK;
	if (*blocked)
		return refuse(rr, rr->r->prompt_check, "prompt");
	if (v == PWB_VERDICT_REDACT &&
	    !(rr->redacted_prompt =
		  pwb__strdup(pwb_decision_redacted(rr->r->prompt_check))))
		return PWB_ENOMEM;
	return check_history(rr, last, diag);
}

/* pwb's system prompt first, then the request's turns as the input
 * rails left them. */
static pwb_status build_messages(req_run *rr)
{
	pwb_status st =
	    pwb_pipeline_system_prompt(rr->r->effective, &rr->r->system_prompt);
	if (st)
		return st;
	size_t n = rr->req->n_msgs + 1;
	if (!(rr->msgs = pwb__calloc(n, sizeof(*rr->msgs))))
		return PWB_ENOMEM;
	rr->msgs[0] = (pwb_chat_msg){"system", rr->r->system_prompt};
	size_t last = last_user_turn(rr->req);
	for (size_t i = 0; i < rr->req->n_msgs; i++) {
		rr->msgs[i + 1] = rr->req->msgs[i];
		if (i == last && rr->redacted_prompt)
			rr->msgs[i + 1].content = rr->redacted_prompt;
		else if (rr->history && rr->history[i])
			rr->msgs[i + 1].content = rr->history[i];
	}
	rr->n_msgs = n;
	return PWB_OK;
}

static pwb_gen_params gen_params(const req_run *rr)
{
	const pwb_pipeline *pl = rr->pl;
	pwb_gen_params gp = pwb_gen_default_params();
	int org_n = pwb_effective_candidates(rr->r->effective);
	gp.n = rr->req->n ? rr->req->n : (size_t)(org_n > 0 ? org_n : 1);
	if (!rr->req->n && gp.n < rr->req->min_n)
		gp.n = rr->req->min_n;
	if (rr->req->on_text)
		gp.n = 1; /* a stream serves one candidate (docs/pipeline.md) */
	gp.seed = rr->req->seed ? rr->req->seed : (uint64_t)time(NULL);
	gp.temperature = pl->p.temperature;
	gp.top_p = pl->p.top_p;
	gp.max_tokens =
	    rr->req->max_tokens ? rr->req->max_tokens : pl->p.max_tokens;
	gp.timeout_ms = pl->p.timeout_ms;
	gp.cancel = rr->req->cancel;
	gp.cancel_user = rr->req->cancel_user;
	return gp;
}

static pwb_status generate(req_run *rr, pwb_diag *diag)
{
	pwb_gen_params gp = gen_params(rr);
	rr->r->seed = gp.seed;
	if (rr->req->on_text)
		return pwb__stream_generate(
		    rr->pl, rr->req, rr->r->effective, rr->msgs, rr->n_msgs,
		    &gp, rr->r, &rr->gen, &rr->stream_cancelled, diag);
	return pwb_engine_generate(rr->pl->p.engine, rr->msgs, rr->n_msgs, &gp,
				   &rr->gen, diag);
}

/* The output rails on every candidate; blocked ones stay listed. */
static pwb_status check_candidates(req_run *rr, pwb_diag *diag)
{
	pwb_response *r = rr->r;
	size_t n = rr->gen.n;
	if (!(r->alts = pwb__calloc(n, sizeof(*r->alts))))
		return PWB_ENOMEM;
	r->n_alts = n;
	for (size_t i = 0; i < n; i++) {
		pwb_alternative *a = &r->alts[i];
		pwb_candidate *c = &rr->gen.cands[i];
		a->id[0] = (char)('A' + i);
		a->finish = pwb_finish_str(c->finish);
		/* What is checked is what can be shown: valid UTF-8, a
		 * model's stray bytes (and NULs) as U+FFFD. */
		pwb__buf t;
		pwb__buf_init(&t, 0);
		pwb__utf8_fix(&t, c->text, c->len, false);
		pwb_status st =
		    t.err ? t.err
			  : pwb_bounds_check(&a->check, rr->pl->p.bounds,
					     r->effective, PWB_ROLE_RESPONSE,
					     t.s ? t.s : "", t.len, diag);
		/* A blocked candidate's text is never kept: nothing can show
		 * it (its decision keeps the spans that blocked it). */
		if (!st) {
			a->verdict = pwb_decision_verdict(a->check);
			if (a->verdict == PWB_VERDICT_BLOCK)
				a->content = NULL;
			else if (!(a->content =
				       a->verdict == PWB_VERDICT_REDACT
					   ? pwb__strdup(pwb_decision_redacted(
						 a->check))
					   : pwb__buf_detach(&t)))
				st = PWB_ENOMEM;
		}
		pwb__buf_release(&t);
		/* Too large for the rails is the engine's fault, not the
		 * prompt's: no "the prompt does not fit" for it. */
		if (st == PWB_ETOOLARGE) {
			pwb_diag_add(diag, NULL, 0, 0,
				     "%s: candidate %s is too large to check "
				     "(%zu bytes)",
				     pwb_engine_name(rr->pl->p.engine), a->id,
				     c->len);
			st = PWB_EIO;
		}
		if (st)
			return st;
	}
	return PWB_OK;
}

/* Features of every allowed alternative, then their scores under the
 * user's model (the population model for a user without one). */
static pwb_status score_candidates(req_run *rr, pwb_diag *diag)
{
	pwb_pipeline *pl = rr->pl;
	pwb_response *r = rr->r;
	if (!(rr->feats = pwb__calloc(r->n_alts, sizeof(*rr->feats))))
		return PWB_ENOMEM;
	for (size_t i = 0; i < r->n_alts; i++) {
		if (r->alts[i].verdict == PWB_VERDICT_BLOCK)
			continue;
		const char *t = r->alts[i].content;
		pwb_status st =
		    *t ? pwb__features(pl, t, strlen(t), r->alts[i].check,
				       &rr->feats[i], diag)
		       : PWB_OK;
		if (st)
			return st;
	}
	pwb_prefs_bounds b;
	pwb__prefs_bounds(pl, r->effective, rr->user.consented, &b);
	r->learns = pl->p.store && !(b.needs_consent && !b.consented);
	double scores[PWB_ENGINE_MAX_N];
	pthread_mutex_lock(&pl->lock);
	pwb_status st =
	    pwb__user_model_sync(pl, rr->req->user, &rr->user, diag);
	/* Without consent, the user's own model is not used either. */
	const char *who = r->learns ? rr->req->user : NULL;
	/* A user reset to the population keeps an entry without weights. */
	r->personal = !st && who && pwb_prefs_user_nnz(pl->prefs, who) > 0;
	/* A member starts from their cohort's model; their own evidence
	 * takes over as it grows (pwb_prefs_score_cohort). */
	const char *cohort = rr->cohort[0] ? rr->cohort : NULL;
	r->cohort_prior = !st && cohort &&
			  pwb_prefs_has_cohort(pl->prefs, cohort) &&
			  pwb_prefs_user_weight(pl->prefs, who) < 1;
	if (!st)
		pwb_prefs_score_cohort(pl->prefs, who, cohort, rr->feats,
				       r->n_alts, &b, PWB_PREFS_PERSONAL,
				       scores);
	pthread_mutex_unlock(&pl->lock);
	for (size_t i = 0; !st && i < r->n_alts; i++)
		r->alts[i].score =
		    r->alts[i].verdict == PWB_VERDICT_BLOCK ? 0 : scores[i];
	return st;
}

/* The best allowed alternative; none: the refusal of the first. */
static pwb_status choose(req_run *rr)
{
	pwb_response *r = rr->r;
	size_t best = SIZE_MAX;
	for (size_t i = 0; i < r->n_alts; i++)
		if (r->alts[i].verdict != PWB_VERDICT_BLOCK &&
		    (best == SIZE_MAX ||
		     r->alts[i].score > r->alts[best].score))
			best = i;
	if (best == SIZE_MAX)
		return refuse(rr, r->alts[0].check, "response");
	r->chosen = best;
	r->verdict = r->alts[best].verdict;
	return PWB_OK;
}

/* A stream's obligations: after the answer, since they are known only
 * once it is complete (docs/pipeline.md). */
static pwb_status stream_obligations(req_run *rr)
{
	pwb_response *r = rr->r;
	const pwb_alternative *a = &r->alts[r->chosen];
	pwb__buf o;
	pwb__buf_init(&o, 0);
	pwb__buf_adds(&o, r->content);
	size_t from = o.len;
	for (size_t i = 0; i < pwb_decision_n_obligations(a->check); i++) {
		const pwb_dec_obligation *ob =
		    pwb_decision_obligation(a->check, i);
		if (ob->placement != PWB_PLACE_SYSTEM && ob->text)
			pwb__buf_addf(&o, "\n\n%s", ob->text);
	}
	if (o.err) {
		pwb__buf_release(&o);
		return PWB_ENOMEM;
	}
	/* Not to a caller that cancelled, and then not in the content
	 * either: the content is what the caller got (pipeline.h). */
	if (rr->stream_cancelled) {
		o.len = from;
		if (o.s)
			o.s[from] = '\0';
	} else if (o.len > from)
		rr->req->on_text(rr->req->on_text_user, o.s + from,
				 o.len - from, false);
	free(r->content);
	r->content = pwb__buf_detach(&o);
	return r->content ? PWB_OK : PWB_ENOMEM;
}

pwb_status pwb_alternative_shown(const pwb_alternative *a, char **out)
{
	*out = NULL;
	if (!a->content)
		return PWB_EINVAL;
	pwb__buf o;
	pwb__buf_init(&o, 0);
	size_t n = pwb_decision_n_obligations(a->check);
	for (size_t i = 0; i < n; i++) {
		const pwb_dec_obligation *ob =
		    pwb_decision_obligation(a->check, i);
		if (ob->placement == PWB_PLACE_PREPEND && ob->text)
			pwb__buf_addf(&o, "%s\n\n", ob->text);
	}
	pwb__buf_adds(&o, a->content);
	for (size_t i = 0; i < n; i++) {
		const pwb_dec_obligation *ob =
		    pwb_decision_obligation(a->check, i);
		if (ob->placement == PWB_PLACE_APPEND && ob->text)
			pwb__buf_addf(&o, "\n\n%s", ob->text);
	}
	if (o.err) {
		pwb__buf_release(&o);
		return PWB_ENOMEM;
	}
	*out = pwb__buf_detach(&o);
	return *out ? PWB_OK : PWB_ENOMEM;
}

/* The chosen answer with its obligations' texts before and after it. */
static pwb_status apply_obligations(req_run *rr)
{
	pwb_response *r = rr->r;
	if (rr->req->on_text)
		return stream_obligations(rr);
	return pwb_alternative_shown(&r->alts[r->chosen], &r->content);
}

static pwb_status new_decision_id(pwb_response *r)
{
	unsigned char raw[12];
	randombytes_buf(raw, sizeof(raw));
	char hex[2 * sizeof(raw) + 1];
	sodium_bin2hex(hex, sizeof(hex), raw, sizeof(raw));
	pwb__buf b;
	pwb__buf_init(&b, 0);
	pwb__buf_addf(&b, "dec_%s", hex);
	r->decision_id = b.err ? NULL : pwb__buf_detach(&b);
	return r->decision_id ? PWB_OK : PWB_ENOMEM;
}

/* The decision's detail: each alternative's verdict, score and packed
 * features (so that feedback can name it), never its text. */
static pwb_status decision_detail(req_run *rr, char **out)
{
	pwb_response *r = rr->r;
	json_t *alts = json_array();
	bool bad = !alts;
	for (size_t i = 0; !bad && i < r->n_alts; i++) {
		const pwb_alternative *a = &r->alts[i];
		char *b64 = NULL;
		if (a->verdict != PWB_VERDICT_BLOCK && rr->feats &&
		    rr->feats[i].n) {
			void *data;
			size_t len;
			if (pwb_prefs_features_pack(rr->pl->prefs,
						    &rr->feats[i], NULL, &data,
						    &len))
				bad = true;
			else {
				size_t cap = sodium_base64_encoded_len(
				    len, sodium_base64_VARIANT_ORIGINAL);
				if ((b64 = pwb__malloc(cap)))
					sodium_bin2base64(
					    b64, cap, data, len,
					    sodium_base64_VARIANT_ORIGINAL);
				free(data);
				bad = !b64;
			}
		}
		json_t *j = json_pack("{s:s, s:s, s:f, s:s*}", "id", a->id,
				      "verdict", pwb_verdict_str(a->verdict),
				      "score", a->score, "features", b64);
		free(b64);
		bad |= !j || json_array_append_new(alts, j);
	}
	/* The request's own jurisdictions: feedback on the decision is
	 * learnt within the bounds it was made in (consent included). */
	json_t *jur = NULL;
	if (!bad && rr->req->n_jurisdictions) {
		bad = !(jur = json_array());
		for (size_t i = 0; !bad && i < rr->req->n_jurisdictions; i++)
			bad = json_array_append_new(
			    jur, json_string(rr->req->jurisdictions[i]));
	}
	/* The cohort it was scored in: feedback on it teaches that cohort
	 * (while the policy and the user's consent still allow it), and the
	 * user can see which model they started from. */
	json_t *root =
	    bad ? NULL
		: json_pack(
		      "{s:o, s:s*, s:b, s:s*, s:o, s:o*, s:s*, s:b}",
		      "alternatives", alts, "chosen",
		      r->chosen == SIZE_MAX ? NULL : r->alts[r->chosen].id,
		      "learns", r->learns, "blocked_on",
		      r->blocked ? r->blocked_by.on : NULL, "blocked_by",
		      pwb__blocked_by_json(r), "jurisdictions", jur, "cohort",
		      r->cohort, "cohort_prior", r->cohort_prior);
	if (!root && !bad)
		alts = NULL; /* json_pack took them even on failure */
	else if (bad) {
		json_decref(alts);
		json_decref(jur);
	}
	*out = root ? json_dumps(root, JSON_COMPACT) : NULL;
	json_decref(root);
	return *out ? PWB_OK : PWB_ENOMEM;
}

static pwb_status record(req_run *rr, pwb_diag *diag)
{
	pwb_response *r = rr->r;
	pwb_status st = new_decision_id(r);
	if (st || !rr->pl->p.store)
		return st;
	char *detail = NULL;
	if ((st = decision_detail(rr, &detail)))
		return st;
	pwb_store_decision d = {
	    .id = r->decision_id,
	    .user = rr->req->user,
	    .ts = (int64_t)time(NULL),
	    .policy_hash = pwb_effective_hash(r->effective),
	    .verdict = pwb_verdict_str(r->verdict),
	    .blocked_tier =
		r->blocked ? pwb_tier_str(r->blocked_by.tier) : NULL,
	    .blocked_category = r->blocked ? r->blocked_by.category : NULL,
	    .detail = detail,
	};
	st = pwb_store_decision_add(rr->pl->p.store, rr->req->org, &d, diag);
	free(detail);
	return st;
}

static void run_release(req_run *rr)
{
	pwb__user_release(&rr->user);
	pwb_generation_release(&rr->gen);
	free(rr->msgs);
	free(rr->redacted_prompt);
	if (rr->history)
		for (size_t i = 0; i < rr->req->n_msgs; i++)
			free(rr->history[i]);
	free(rr->history);
	free(rr->feats);
}

/* Everything after the prompt passed: generate, check, choose. */
static pwb_status answer(req_run *rr, pwb_diag *diag)
{
	pwb_status st = build_messages(rr);
	if (!st)
		st = generate(rr, diag);
	if (!st) {
		rr->r->prompt_tokens = rr->gen.prompt_tokens;
		rr->r->completion_tokens = rr->gen.completion_tokens;
		st = check_candidates(rr, diag);
	}
	if (!st)
		st = score_candidates(rr, diag);
	if (!st)
		st = choose(rr);
	if (!st && !rr->r->blocked)
		st = apply_obligations(rr);
	return st;
}

pwb_status pwb_pipeline_chat(pwb_pipeline *pl, const pwb_request *req,
			     pwb_response **out, pwb_diag *diag)
{
	*out = NULL;
	size_t mark = pwb__diag_mark(diag);
	pwb_status st = check_request(req, diag);
	if (st)
		return st;
	if (!pl->p.bounds || !pl->p.engine) {
		pwb_diag_add(diag, NULL, 0, 0,
			     "pipeline: answering needs bounds and an engine");
		return PWB_EINVAL;
	}
	req_run rr = {.pl = pl, .req = req, .t0 = pwb__now()};
	if (!(rr.r = pwb__calloc(1, sizeof(*rr.r))))
		return pwb__diag_fail(diag, mark, PWB_ENOMEM, "pipeline");
	rr.r->chosen = SIZE_MAX;
	bool blocked = false;
	st = pwb__user_load(pl, req->org, req->user, &rr.user, diag);
	if (!st)
		st = pwb__resolve(pl, req, &rr.user, &rr.r->effective, diag);
	if (!st)
		st = pwb__cohort_of(rr.r->effective, &rr.user, req->attrs,
				    rr.cohort, diag);
	if (!st && rr.cohort[0] && !(rr.r->cohort = pwb__strdup(rr.cohort)))
		st = PWB_ENOMEM;
	if (!st)
		st = check_prompt(&rr, &blocked, diag);
	if (!st && !blocked)
		st = answer(&rr, diag);
	if (!st)
		st = record(&rr, diag);
	run_release(&rr);
	if (st) {
		pwb_response_free(rr.r);
		return pwb__diag_fail(diag, mark, st, "pipeline");
	}
	rr.r->seconds = pwb__now() - rr.t0;
	*out = rr.r;
	return PWB_OK;
}
