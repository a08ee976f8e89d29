/* labelled.c - reading labelled texts (JSONL, DESIGN §4.3). */
#include "bounds/bounds_int.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PWB__LABELLED_MAX_LINE (16u * 1024 * 1024)
#define PWB__LABELLED_MAX_ROWS 10000000
#define PWB__LABELLED_MAX_LABELS 64

struct pwb_labelled_set {
	pwb__arena arena;
	pwb_labelled_text *rows;
	size_t n, cap;
};

void pwb_labelled_free(pwb_labelled_set *s)
{
	if (!s)
		return;
	pwb__arena_release(&s->arena);
	free(s->rows);
	free(s);
}

size_t pwb_labelled_n(const pwb_labelled_set *s)
{
	return s->n;
}

const pwb_labelled_text *pwb_labelled_get(const pwb_labelled_set *s, size_t i)
{
	return i < s->n ? &s->rows[i] : NULL;
}

typedef struct reader {
	pwb_labelled_set *s;
	const pwb_policy *policy;
	const char *path;
	int line;
	pwb_diag *diag;
	bool oom;
} reader;

static bool bad(reader *r, const char *what, const char *detail)
{
	pwb_diag_add(r->diag, r->path, r->line, 1, "%s%s%s", what,
		     detail ? ": " : "", detail ? detail : "");
	return false;
}

static bool is_field(const char *key)
{
	return !strcmp(key, "id") || !strcmp(key, "text") ||
	       !strcmp(key, "role") || !strcmp(key, "labels");
}

/* The value of a metadata key as text: a string as it is, a number or a
 * boolean as its JSON; NULL for anything else (not kept). */
static char *meta_text(reader *r, json_t *v)
{
	if (json_is_string(v))
		return pwb__arena_strdup(&r->s->arena, json_string_value(v),
					 &r->oom);
	if (!json_is_number(v) && !json_is_boolean(v))
		return NULL;
	char *t = json_dumps(v, JSON_ENCODE_ANY);
	char *kept = t ? pwb__arena_strdup(&r->s->arena, t, &r->oom) : NULL;
	r->oom |= !t;
	free(t);
	return kept;
}

/* The keys other than id, text, role and labels, as metadata. */
static bool parse_meta(reader *r, json_t *j, pwb_labelled_text *row)
{
	size_t n = 0;
	const char *key;
	json_t *v;
	json_object_foreach(j, key, v)
	{
		n += !is_field(key);
	}
	if (!n)
		return true;
	const char **keys = pwb__arena_alloc(&r->s->arena, n * sizeof(char *));
	const char **vals = pwb__arena_alloc(&r->s->arena, n * sizeof(char *));
	if (!keys || !vals) {
		r->oom = true;
		return false;
	}
	json_object_foreach(j, key, v)
	{
		if (is_field(key))
			continue;
		char *t = meta_text(r, v);
		if (r->oom)
			return false;
		if (!t)
			continue;
		keys[row->n_meta] = pwb__arena_strdup(&r->s->arena, key, &r->oom);
		vals[row->n_meta++] = t;
		if (r->oom)
			return false;
	}
	row->meta_keys = keys;
	row->meta_values = vals;
	return true;
}

const char *pwb_labelled_meta(const pwb_labelled_text *t, const char *key)
{
	for (size_t i = 0; i < t->n_meta; i++)
		if (!strcmp(t->meta_keys[i], key))
			return t->meta_values[i];
	return NULL;
}

/* Parses one line into row; returns false after reporting a problem. */
static bool parse_line(reader *r, const char *data, size_t len,
		       pwb_labelled_text *row)
{
	json_error_t err;
	json_t *j = json_loadb(data, len, JSON_REJECT_DUPLICATES, &err);
	if (!j) {
		pwb_diag_add(r->diag, r->path, r->line,
			     err.column > 0 ? err.column : 1,
			     "malformed JSON: %s", err.text);
		return false;
	}
	bool ok = false;
	memset(row, 0, sizeof(*row));
	row->line = r->line;
	if (!json_is_object(j)) {
		bad(r, "a line must be a JSON object", NULL);
		goto out;
	}
	if (!parse_meta(r, j, row))
		goto out;
	json_t *text = json_object_get(j, "text");
	if (!json_is_string(text)) {
		bad(r, "'text' must be a string", NULL);
		goto out;
	}
	if (!json_string_length(text)) {
		bad(r, "'text' is empty", NULL);
		goto out;
	}
	json_t *id = json_object_get(j, "id");
	if (id && !json_is_string(id)) {
		bad(r, "'id' must be a string", NULL);
		goto out;
	}
	json_t *role = json_object_get(j, "role");
	row->role = PWB_ROLE_PROMPT;
	if (role && (!json_is_string(role) ||
		     !pwb_role_parse(json_string_value(role), &row->role))) {
		bad(r, "'role' must be \"prompt\" or \"response\"", NULL);
		goto out;
	}
	json_t *labels = json_object_get(j, "labels");
	if (!json_is_array(labels)) {
		bad(r,
		    "'labels' must be a list of category ids ([] for "
		    "within bounds)",
		    NULL);
		goto out;
	}
	size_t nl = json_array_size(labels);
	if (nl > PWB__LABELLED_MAX_LABELS) {
		bad(r, "too many labels", NULL);
		goto out;
	}
	const char **ls =
	    pwb__arena_alloc(&r->s->arena, (nl ? nl : 1) * sizeof(char *));
	if (!ls) {
		r->oom = true;
		goto out;
	}
	for (size_t i = 0; i < nl; i++) {
		const char *l = json_string_value(json_array_get(labels, i));
		if (!l) {
			bad(r, "labels must be strings", NULL);
			goto out;
		}
		row->unsafe = true;
		if (!strcmp(l, "*"))
			continue;
		if (r->policy && pwb_policy_find_category(r->policy, l) < 0) {
			pwb__hint h = pwb__hint_text(
			    pwb_policy_suggest_category(r->policy, l));
			pwb_diag_add(r->diag, r->path, r->line, 1,
				     "unknown label '%s'%s", l, h.text);
			goto out;
		}
		bool dup = false;
		for (size_t k = 0; k < row->n_labels && !dup; k++)
			dup = !strcmp(ls[k], l);
		if (!dup)
			ls[row->n_labels++] =
			    pwb__arena_strdup(&r->s->arena, l, &r->oom);
	}
	row->labels = ls;
	size_t tl = json_string_length(text);
	char *t = pwb__arena_alloc(&r->s->arena, tl + 1);
	if (!t) {
		r->oom = true;
		goto out;
	}
	memcpy(t, json_string_value(text), tl);
	t[tl] = '\0';
	row->text = t;
	row->len = tl;
	row->id = pwb__arena_strdup(&r->s->arena,
				    id ? json_string_value(id) : "", &r->oom);
	ok = !r->oom;
out:
	json_decref(j);
	return ok;
}

pwb_status pwb_labelled_load(pwb_labelled_set **out, const char *path,
			     const pwb_policy *policy, pwb_diag *diag)
{
	*out = NULL;
	FILE *f = fopen(path, "r");
	if (!f) {
		pwb_diag_add(diag, path, 0, 0, "cannot read: %s",
			     strerror(errno));
		return PWB_EIO;
	}
	pwb_labelled_set *s = pwb__calloc(1, sizeof(*s));
	if (!s) {
		fclose(f);
		return PWB_ENOMEM;
	}
	pwb__arena_init(&s->arena);
	reader r = {s, policy, path, 0, diag, false};
	pwb_status rc = PWB_OK;
	char *line = NULL;
	size_t cap = 0, len;
	bool too_long;
	ssize_t n;
	while ((n = pwb__read_line(f, &line, &cap, PWB__LABELLED_MAX_LINE, &len,
				   &too_long)) > 0) {
		r.line++;
		while (len && (line[len - 1] == '\n' || line[len - 1] == '\r'))
			len--;
		if (!len)
			continue;
		if (too_long) {
			bad(&r, "line too long", NULL);
			rc = PWB_EPARSE;
			continue;
		}
		if (s->n >= PWB__LABELLED_MAX_ROWS) {
			bad(&r, "too many lines", NULL);
			rc = PWB_EPARSE;
			break;
		}
		pwb_labelled_text row;
		if (!parse_line(&r, line, len, &row)) {
			if (r.oom) {
				rc = PWB_ENOMEM;
				break;
			}
			rc = PWB_EPARSE;
			continue;
		}
		if (pwb__grow((void **)&s->rows, &s->cap, s->n + 1,
			      sizeof(*s->rows))) {
			rc = PWB_ENOMEM;
			break;
		}
		s->rows[s->n++] = row;
	}
	if (n < 0 && errno == EFBIG) {
		pwb_diag_add(
		    diag, path, r.line + 1, 0,
		    "a line of more than %u MiB with no end; reading "
		    "stops here",
		    (unsigned)((PWB__LABELLED_MAX_LINE + PWB__LINE_SKIP_MAX) >>
			       20));
		rc = PWB_ETOOLARGE;
	} else if ((n < 0 || ferror(f)) && !rc) {
		pwb_diag_add(diag, path, r.line, 0, "read error: %s",
			     strerror(errno));
		rc = PWB_EIO;
	}
	free(line);
	fclose(f);
	if (rc) {
		pwb_labelled_free(s);
		return rc;
	}
	*out = s;
	return PWB_OK;
}
