/* settings.c - user settings (tier 3): parsing JSON and canonical forms. */
#include "policy/policy_int.h"

#include <jansson.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PWB__SETTINGS_MAX_BYTES (256 * 1024)
#define PWB__SETTINGS_MAX_ENTRIES 4096

pwb_status pwb_settings_new(pwb_settings **out)
{
	*out = pwb__calloc(1, sizeof(**out));
	return *out ? PWB_OK : PWB_ENOMEM;
}

void pwb_settings_free(pwb_settings *s)
{
	if (!s)
		return;
	for (size_t i = 0; i < s->n_cats; i++)
		free(s->cats[i].id);
	for (size_t i = 0; i < s->n_dims; i++) {
		free(s->dims[i].id);
		free(s->dims[i].str);
	}
	free(s->cats);
	free(s->dims);
	free(s);
}

pwb_status pwb_settings_set_category(pwb_settings *s, const char *id, bool on)
{
	if (!s || !id || !*id)
		return PWB_EINVAL;
	for (size_t i = 0; i < s->n_cats; i++) {
		if (strcmp(s->cats[i].id, id) == 0) {
			s->cats[i].on = on;
			return PWB_OK;
		}
	}
	if (s->n_cats >= PWB__SETTINGS_MAX_ENTRIES)
		return PWB_ETOOLARGE;
	char *d = pwb__strdup(id);
	if (!d || pwb__grow((void **)&s->cats, &s->cap_cats, s->n_cats + 1,
			    sizeof(*s->cats))) {
		free(d);
		return PWB_ENOMEM;
	}
	s->cats[s->n_cats].id = d;
	s->cats[s->n_cats].on = on;
	s->n_cats++;
	return PWB_OK;
}

static pwb_status set_dim(pwb_settings *s, const char *id, bool numeric,
			  double num, const char *str)
{
	if (!s || !id || !*id || (numeric && !isfinite(num)))
		return PWB_EINVAL;
	char *sv = NULL;
	if (!numeric && !(sv = pwb__strdup(str)))
		return PWB_ENOMEM;
	for (size_t i = 0; i < s->n_dims; i++) {
		if (strcmp(s->dims[i].id, id) == 0) {
			free(s->dims[i].str);
			s->dims[i].numeric = numeric;
			s->dims[i].num = num;
			s->dims[i].str = sv;
			return PWB_OK;
		}
	}
	if (s->n_dims >= PWB__SETTINGS_MAX_ENTRIES) {
		free(sv);
		return PWB_ETOOLARGE;
	}
	char *d = pwb__strdup(id);
	if (!d || pwb__grow((void **)&s->dims, &s->cap_dims, s->n_dims + 1,
			    sizeof(*s->dims))) {
		free(d);
		free(sv);
		return PWB_ENOMEM;
	}
	s->dims[s->n_dims] = (pwb__dim_setting){d, numeric, num, sv};
	s->n_dims++;
	return PWB_OK;
}

pwb_status pwb_settings_set_number(pwb_settings *s, const char *dim, double v)
{
	return set_dim(s, dim, true, v, NULL);
}

pwb_status pwb_settings_set_string(pwb_settings *s, const char *dim,
				   const char *v)
{
	if (!v)
		return PWB_EINVAL;
	return set_dim(s, dim, false, 0, v);
}

pwb_status pwb_settings_parse(pwb_settings **out, const char *json, size_t len,
			      const char *name, pwb_diag *diag)
{
	*out = NULL;
	if (len > PWB__SETTINGS_MAX_BYTES) {
		pwb_diag_add(diag, name, 0, 0,
			     "settings too large (%zu bytes; the limit is %d)",
			     len, PWB__SETTINGS_MAX_BYTES);
		return PWB_ETOOLARGE;
	}
	json_error_t err;
	json_t *root = json_loadb(json, len, JSON_REJECT_DUPLICATES, &err);
	if (!root) {
		pwb_diag_add(diag, name, err.line > 0 ? err.line : 0,
			     err.column > 0 ? err.column : 0,
			     "malformed JSON: %s", err.text);
		return PWB_EPARSE;
	}
	pwb_settings *s = NULL;
	pwb_status rc = pwb_settings_new(&s);
	if (rc)
		goto out;
	if (!json_is_object(root)) {
		pwb_diag_add(diag, name, 0, 0,
			     "settings must be a JSON object like "
			     "{\"categories\": {...}, \"dimensions\": {...}}");
		rc = PWB_EPARSE;
		goto out;
	}
	const char *key;
	json_t *val;
	json_object_foreach(root, key, val)
	{
		if (strcmp(key, "categories") == 0) {
			if (!json_is_object(val)) {
				pwb_diag_add(diag, name, 0, 0,
					     "'categories' must be an object "
					     "of \"on\"/\"off\"");
				rc = PWB_EPARSE;
				continue;
			}
			const char *cid;
			json_t *cv;
			json_object_foreach(val, cid, cv)
			{
				const char *t = json_string_value(cv);
				if (!t ||
				    (strcmp(t, "on") && strcmp(t, "off"))) {
					pwb_diag_add(diag, name, 0, 0,
						     "categories.%s: expected "
						     "\"on\" or \"off\"",
						     cid);
					rc = PWB_EPARSE;
					continue;
				}
				pwb_status r2 = pwb_settings_set_category(
				    s, cid, t[1] == 'n');
				if (r2) {
					pwb_diag_add(diag, name, 0, 0,
						     "categories.%s: %s", cid,
						     pwb_status_str(r2));
					rc = r2;
				}
			}
		} else if (strcmp(key, "dimensions") == 0) {
			if (!json_is_object(val)) {
				pwb_diag_add(diag, name, 0, 0,
					     "'dimensions' must be an object");
				rc = PWB_EPARSE;
				continue;
			}
			const char *did;
			json_t *dv;
			json_object_foreach(val, did, dv)
			{
				pwb_status r2;
				if (json_is_number(dv))
					r2 = pwb_settings_set_number(
					    s, did, json_number_value(dv));
				else if (json_is_string(dv))
					r2 = pwb_settings_set_string(
					    s, did, json_string_value(dv));
				else {
					pwb_diag_add(diag, name, 0, 0,
						     "dimensions.%s: expected "
						     "a number or a string",
						     did);
					rc = PWB_EPARSE;
					continue;
				}
				if (r2) {
					pwb_diag_add(diag, name, 0, 0,
						     "dimensions.%s: %s", did,
						     pwb_status_str(r2));
					rc = r2;
				}
			}
		} else {
			pwb_diag_add(diag, name, 0, 0,
				     "unknown key '%s' (expected "
				     "\"categories\" or \"dimensions\")",
				     key);
			rc = PWB_EPARSE;
		}
	}
out:
	json_decref(root);
	if (rc) {
		pwb_settings_free(s);
		return rc;
	}
	*out = s;
	return PWB_OK;
}

/* ---- canonical forms, for the cache key and the policy hash ---- */

static int cmp_str(const char *a, const char *b)
{
	return strcmp(a, b);
}

/* Indices of n keys in sorted order (insertion sort: lists are short). */
static void sort_idx(size_t *idx, size_t n,
		     const char *(*key)(const void *, size_t), const void *base)
{
	for (size_t i = 0; i < n; i++)
		idx[i] = i;
	for (size_t i = 1; i < n; i++) {
		size_t v = idx[i], j = i;
		while (j > 0 &&
		       cmp_str(key(base, idx[j - 1]), key(base, v)) > 0) {
			idx[j] = idx[j - 1];
			j--;
		}
		idx[j] = v;
	}
}

static const char *cat_key(const void *b, size_t i)
{
	return ((const pwb_settings *)b)->cats[i].id;
}

static const char *dim_key(const void *b, size_t i)
{
	return ((const pwb_settings *)b)->dims[i].id;
}

static const char *attr_key(const void *b, size_t i)
{
	return ((const pwb_attrs *)b)->v[i].key;
}

#define PWB__KEY_STACK 64

/* The key encoding: a tag byte, then length-prefixed strings and the
 * 8 bytes of doubles (with -0 as 0), so that no formatting is needed. */
static void key_str(pwb__buf *b, const char *s)
{
	uint32_t n = (uint32_t)strlen(s);
	pwb__buf_add(b, &n, sizeof(n));
	pwb__buf_add(b, s, n);
}

static void key_value(pwb__buf *b, const pwb__value *v)
{
	char t = (char)('0' + v->type);
	pwb__buf_addc(b, t);
	switch (v->type) {
	case PWB_VAL_NULL:
		break;
	case PWB_VAL_BOOL:
		pwb__buf_addc(b, v->b ? 1 : 0);
		break;
	case PWB_VAL_NUMBER: {
		double x = v->num == 0 ? 0.0 : v->num;
		pwb__buf_add(b, &x, sizeof(x));
		break;
	}
	case PWB_VAL_STRING:
		key_str(b, v->str);
		break;
	case PWB_VAL_LIST: {
		uint32_t n = (uint32_t)v->n;
		pwb__buf_add(b, &n, sizeof(n));
		for (size_t i = 0; i < v->n; i++)
			key_value(b, &v->items[i]);
		break;
	}
	}
}

void pwb__settings_key(const pwb_settings *s, pwb__buf *b)
{
	pwb__buf_addc(b, 'S');
	if (!s) {
		pwb__buf_addc(b, 0);
		return;
	}
	size_t stack[PWB__KEY_STACK];
	size_t n = s->n_cats > s->n_dims ? s->n_cats : s->n_dims;
	size_t *idx =
	    n <= PWB__KEY_STACK ? stack : pwb__malloc(n * sizeof(size_t));
	if (!idx) {
		b->err = PWB_ENOMEM;
		return;
	}
	sort_idx(idx, s->n_cats, cat_key, s);
	pwb__buf_addc(b, 'c');
	for (size_t i = 0; i < s->n_cats; i++) {
		key_str(b, s->cats[idx[i]].id);
		pwb__buf_addc(b, s->cats[idx[i]].on ? 1 : 0);
	}
	sort_idx(idx, s->n_dims, dim_key, s);
	pwb__buf_addc(b, 'd');
	for (size_t i = 0; i < s->n_dims; i++) {
		const pwb__dim_setting *d = &s->dims[idx[i]];
		pwb__value v = {.type = d->numeric ? PWB_VAL_NUMBER
						   : PWB_VAL_STRING,
				.num = d->num,
				.str = d->str};
		key_str(b, d->id);
		key_value(b, &v);
	}
	pwb__buf_addc(b, 0);
	if (idx != stack)
		free(idx);
}

void pwb__attrs_key(const pwb_attrs *a, pwb__buf *b)
{
	pwb__buf_addc(b, 'A');
	if (!a) {
		pwb__buf_addc(b, 0);
		return;
	}
	size_t stack[PWB__KEY_STACK];
	size_t *idx =
	    a->n <= PWB__KEY_STACK ? stack : pwb__malloc(a->n * sizeof(size_t));
	if (!idx) {
		b->err = PWB_ENOMEM;
		return;
	}
	sort_idx(idx, a->n, attr_key, a);
	for (size_t i = 0; i < a->n; i++) {
		key_str(b, a->v[idx[i]].key);
		key_value(b, &a->v[idx[i]].val);
	}
	pwb__buf_addc(b, 0);
	if (idx != stack)
		free(idx);
}
