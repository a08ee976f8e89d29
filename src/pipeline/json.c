/*
 * json.c - a response as the JSON of `pwb ask --json` (docs/pipeline.md).
 * A blocked alternative's text is never in it: its content is null.
 */
#include "pipeline/pipeline_int.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

json_t *pwb__blocked_by_json(const pwb_response *r)
{
	if (!r->blocked)
		return json_null();
	const pwb_blocked_by *b = &r->blocked_by;
	/* A user's own setting has no file, and so no line. */
	return json_pack("{s:s, s:s?, s:s?, s:s?, s:s?, s:o, s:s?}", "tier",
			 pwb_tier_str(b->tier), "source", b->source,
			 "category", b->category, "basis", b->basis, "file",
			 b->file, "line",
			 b->file ? json_integer(b->line) : json_null(), "on",
			 b->on);
}

static json_t *alternatives_json(const pwb_response *r)
{
	json_t *arr = json_array();
	for (size_t i = 0; arr && i < r->n_alts; i++) {
		const pwb_alternative *a = &r->alts[i];
		bool blocked = a->verdict == PWB_VERDICT_BLOCK;
		const pwb_cat_decision *c =
		    blocked ? pwb_decision_blocked_by(a->check) : NULL;
		json_t *j = json_pack(
		    "{s:s, s:s?, s:s, s:f, s:s, s:s?}", "id", a->id,
		    "content", blocked ? NULL : a->content, "verdict",
		    pwb_verdict_str(a->verdict), "score", a->score, "finish",
		    a->finish, "blocked_category", c ? c->category : NULL);
		if (!j || json_array_append_new(arr, j)) {
			json_decref(arr);
			return NULL;
		}
	}
	return arr;
}

static json_t *obligations_json(const pwb_response *r)
{
	json_t *arr = json_array();
	const pwb_decision *d = r->chosen != SIZE_MAX
				    ? r->alts[r->chosen].check
				    : r->prompt_check;
	for (size_t i = 0; arr && d && i < pwb_decision_n_obligations(d);
	     i++) {
		const pwb_dec_obligation *o = pwb_decision_obligation(d, i);
		json_t *j = json_pack("{s:s, s:s, s:s?, s:s, s:s?}", "id",
				      o->id, "kind", o->kind, "text", o->text,
				      "placement",
				      pwb_placement_str(o->placement), "source",
				      o->set_by.source);
		if (!j || json_array_append_new(arr, j)) {
			json_decref(arr);
			return NULL;
		}
	}
	return arr;
}

/* What the input rails did: to the prompt (the last user turn), and to
 * the earlier user turns the request carried. */
static json_t *input_json(const pwb_response *r)
{
	if (!r->prompt_check)
		return NULL;
	return json_pack("{s:s, s:I, s:I}", "prompt",
			 pwb_verdict_str(pwb_decision_verdict(r->prompt_check)),
			 "history_redacted", (json_int_t)r->history_redacted,
			 "history_withheld", (json_int_t)r->history_withheld);
}

/* The seed as a string of digits (64 bits do not fit JSON's doubles);
 * none when nothing was generated. */
static json_t *seed_json(const pwb_response *r)
{
	if (!r->n_alts)
		return NULL;
	char s[24];
	snprintf(s, sizeof(s), "%llu", (unsigned long long)r->seed);
	return json_string(s);
}

/* The cohort the user was scored in: its attribute, value and whether
 * its model counted; null when none. */
static json_t *cohort_json(const pwb_response *r)
{
	if (!r->cohort)
		return json_null();
	const char *eq = strchr(r->cohort, '=');
	if (!eq)
		return json_null();
	return json_pack("{s:s, s:s%, s:s, s:b}", "id", r->cohort,
			 "attribute", r->cohort, (size_t)(eq - r->cohort),
			 "value", eq + 1, "prior", r->cohort_prior);
}

static pwb_status to_json(const pwb_response *r, char **out, size_t flags)
{
	*out = NULL;
	json_t *root = json_pack(
	    "{s:s, s:s, s:s, s:s?, s:o?, s:o?, s:s?, s:s?, s:s, s:s, "
	    "s:b, s:b, s:o?, s:o?, s:{s:I, s:I}, s:o?, s:f}",
	    "decision_id", r->decision_id, "verdict",
	    pwb_verdict_str(r->verdict), "content", r->content, "chosen",
	    r->chosen != SIZE_MAX ? r->alts[r->chosen].id : NULL,
	    "alternatives", alternatives_json(r), "blocked_by",
	    pwb__blocked_by_json(r), "refusal", r->refusal, "system_prompt",
	    r->system_prompt, "policy_hash", pwb_effective_hash(r->effective),
	    "org", pwb_effective_org(r->effective), "personal", r->personal,
	    "learns", r->learns, "obligations", obligations_json(r), "input",
	    input_json(r), "usage",
	    "prompt_tokens", (json_int_t)r->prompt_tokens,
	    "completion_tokens", (json_int_t)r->completion_tokens, "seed",
	    seed_json(r), "seconds", r->seconds);
	if (!root || json_object_set_new(root, "cohort", cohort_json(r))) {
		json_decref(root);
		return PWB_ENOMEM;
	}
	*out = json_dumps(root, flags);
	json_decref(root);
	return *out ? PWB_OK : PWB_ENOMEM;
}

pwb_status pwb_response_to_json(const pwb_response *r, char **out)
{
	return to_json(r, out, JSON_INDENT(2));
}

pwb_status pwb_response_to_json_compact(const pwb_response *r, char **out)
{
	return to_json(r, out, JSON_COMPACT);
}
