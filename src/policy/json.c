/* json.c - the effective policy as the stable JSON of docs/policy.md. */
#include "policy/policy_int.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

static int set_new(json_t *o, const char *k, json_t *v)
{
	return v ? json_object_set_new(o, k, v) : -1;
}

static json_t *str_or_null(const char *s)
{
	return s ? json_string(s) : json_null();
}

static json_t *prov_json(const pwb_provenance *pv)
{
	json_t *o = json_object();
	if (!o)
		return NULL;
	int bad = set_new(o, "tier", json_string(pwb_tier_str(pv->tier)));
	bad |= set_new(o, "source", json_string(pv->source));
	if (pv->file) {
		bad |= set_new(o, "file", json_string(pv->file));
		bad |= set_new(o, "line", json_integer(pv->line));
	}
	if (pv->basis)
		bad |= set_new(o, "basis", json_string(pv->basis));
	if (bad) {
		json_decref(o);
		return NULL;
	}
	return o;
}

static json_t *strings_json(const char *const *v, size_t n)
{
	json_t *a = json_array();
	for (size_t i = 0; a && i < n; i++)
		if (json_array_append_new(a, json_string(v[i]))) {
			json_decref(a);
			return NULL;
		}
	return a;
}

static json_t *category_json(const pwb_eff_category *c)
{
	json_t *o = json_object();
	if (!o)
		return NULL;
	int bad = set_new(o, "permission",
			  json_string(pwb_permission_str(c->permission)));
	bad |= set_new(o, "active", json_boolean(c->active));
	if (c->user_setting >= 0)
		bad |= set_new(o, "user_setting",
			       json_string(c->user_setting ? "on" : "off"));
	if (c->parent)
		bad |= set_new(o, "parent", json_string(c->parent));
	bad |= set_new(o, "set_by", prov_json(&c->set_by));
	if (c->condition) {
		json_t *w = json_object();
		bad |= set_new(w, "when", json_string(c->condition));
		bad |= w ? set_new(w, "holds", json_boolean(c->condition_holds))
			 : -1;
		bad |= set_new(o, "condition", w);
	}
	if (bad) {
		json_decref(o);
		return NULL;
	}
	return o;
}

static json_t *dimension_json(const pwb_eff_dimension *d)
{
	json_t *o = json_object();
	if (!o)
		return NULL;
	int bad = 0;
	if (d->numeric) {
		json_t *r = json_array();
		bad |= r ? json_array_append_new(r, json_real(d->lo)) : -1;
		bad |= r ? json_array_append_new(r, json_real(d->hi)) : -1;
		bad |= set_new(o, "range", r);
		bad |= set_new(o, "default", json_real(d->def));
		bad |= set_new(o, "value", json_real(d->value));
	} else {
		bad |=
		    set_new(o, "allowed",
			    d->allowed ? strings_json(d->allowed, d->n_allowed)
				       : json_null());
		bad |= set_new(o, "default", str_or_null(d->def_str));
		bad |= set_new(o, "value", str_or_null(d->value_str));
	}
	bad |= set_new(o, "user_adjustable", json_boolean(d->user_adjustable));
	bad |= set_new(o, "set_by", prov_json(&d->set_by));
	if (d->numeric) {
		json_t *r = json_object();
		bad |= r ? set_new(r, "lo", prov_json(&d->lo_set_by)) : -1;
		bad |= r ? set_new(r, "hi", prov_json(&d->hi_set_by)) : -1;
		bad |= set_new(o, "range_set_by", r);
	}
	if (!d->user_adjustable)
		bad |= set_new(o, "adjustable_set_by",
			       prov_json(&d->adjustable_set_by));
	bad |= set_new(o, "default_set_by", prov_json(&d->default_set_by));
	bad |= set_new(o, "value_set_by", prov_json(&d->value_set_by));
	if (bad) {
		json_decref(o);
		return NULL;
	}
	return o;
}

static json_t *effective_json(const pwb_effective *e)
{
	json_t *root = json_object(), *cats = json_object(),
	       *dims = json_object(), *obl = json_array(),
	       *learn = json_object();
	int bad = !root || !cats || !dims || !obl || !learn;
	if (bad)
		goto fail;
	bad |= set_new(root, "org", json_string(e->org));
	bad |= set_new(root, "jurisdictions",
		       strings_json(e->jurisdictions, e->n_jurisdictions));
	bad |= set_new(root, "policy_hash", json_string(e->hash));
	bad |= set_new(root, "candidates", json_integer(e->candidates));
	bad |= set_new(root, "system_prompt",
		       e->system_prompt ? json_string(e->system_prompt)
					: json_null());
	for (size_t i = 0; i < e->n_cats; i++)
		bad |= set_new(cats, e->cats[i].id, category_json(&e->cats[i]));
	for (size_t i = 0; i < e->n_dims; i++)
		bad |=
		    set_new(dims, e->dims[i].id, dimension_json(&e->dims[i]));
	for (size_t i = 0; i < e->n_obligations; i++) {
		const pwb_eff_obligation *ob = &e->obligations[i];
		json_t *o = json_object();
		bad |= o ? 0 : -1;
		if (!o)
			break;
		bad |= set_new(o, "id", json_string(ob->id));
		bad |= set_new(o, "kind", json_string(ob->kind));
		if (ob->category)
			bad |=
			    set_new(o, "category", json_string(ob->category));
		if (ob->text)
			bad |= set_new(o, "text", json_string(ob->text));
		bad |= set_new(o, "set_by", prov_json(&ob->set_by));
		bad |= json_array_append_new(obl, o);
	}
	const pwb_eff_learning *l = &e->learning;
	bad |=
	    set_new(learn, "forbid_attributes",
		    strings_json(l->forbid_attributes, l->n_forbid_attributes));
	bad |= set_new(learn, "requires_consent",
		       json_boolean(l->requires_consent));
	bad |= set_new(learn, "store_texts", json_boolean(l->store_texts));
	bad |= set_new(learn, "retention_days",
		       l->retention_days ? json_integer(l->retention_days)
					 : json_null());
	bad |= set_new(learn, "set_by", prov_json(&l->set_by));
	bad |= set_new(learn, "requires_consent_set_by",
		       prov_json(&l->requires_consent_set_by));
	bad |= set_new(learn, "store_texts_set_by",
		       prov_json(&l->store_texts_set_by));
	bad |=
	    set_new(learn, "retention_set_by", prov_json(&l->retention_set_by));
	bad |= set_new(learn, "cohort_attribute",
		       l->cohort_attribute ? json_string(l->cohort_attribute)
					   : json_null());
	bad |= set_new(learn, "cohort_refused",
		       l->cohort_refused ? json_string(l->cohort_refused)
					 : json_null());
	bad |= set_new(learn, "cohort_named_consent",
		       json_boolean(l->cohort_named_consent));
	bad |= set_new(learn, "cohort_set_by", prov_json(&l->cohort_set_by));
	bad |= set_new(learn, "cohort_limited_by",
		       prov_json(&l->cohort_limited_by));
	bad |= set_new(root, "categories", cats);
	cats = NULL;
	bad |= set_new(root, "dimensions", dims);
	dims = NULL;
	bad |= set_new(root, "obligations", obl);
	obl = NULL;
	bad |= set_new(root, "learning", learn);
	learn = NULL;
	if (bad)
		goto fail;
	return root;
fail:
	json_decref(root);
	json_decref(cats);
	json_decref(dims);
	json_decref(obl);
	json_decref(learn);
	return NULL;
}

pwb_status pwb_effective_to_json(const pwb_effective *e, char **out)
{
	*out = NULL;
	json_t *j = effective_json(e);
	if (!j)
		return PWB_ENOMEM;
	*out = json_dumps(j, JSON_INDENT(2) | JSON_REAL_PRECISION(15));
	json_decref(j);
	return *out ? PWB_OK : PWB_ENOMEM;
}
