/*
 * load.c - reading the registry and the law and org files into rules.
 * Everything that can be checked within one file is checked here; checks
 * across files live in check.c.
 */
#include "policy/policy_int.h"

#include <errno.h>
#include <math.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- diagnostics and lookups ---- */

void pwb__ferr(pwb_policy *p, int f, int line, int col, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	const char *path;
	if (f < 0) {
		p->registry_errors++;
		path = p->registry_path;
	} else {
		p->files[f].n_errors++;
		path = p->files[f].path;
	}
	pwb_diag_add(p->diag, path, line, col, "%s", msg);
}

int pwb__find_cat(const pwb_policy *p, const char *id)
{
	for (size_t i = 0; i < p->n_cats; i++)
		if (strcmp(p->cats[i].id, id) == 0)
			return (int)i;
	return -1;
}

int pwb__find_dim(const pwb_policy *p, const char *id)
{
	for (size_t i = 0; i < p->n_dims; i++)
		if (strcmp(p->dims[i].id, id) == 0)
			return (int)i;
	return -1;
}

int pwb__find_attr(const pwb_policy *p, const char *name)
{
	for (size_t i = 0; i < p->n_attrs; i++)
		if (strcmp(p->attrs[i].name, name) == 0)
			return (int)i;
	return -1;
}

int pwb__find_file(const pwb_policy *p, pwb_tier tier, const char *id)
{
	for (size_t i = 0; i < p->n_files; i++)
		if (p->files[i].parsed && p->files[i].tier == tier &&
		    strcmp(p->files[i].id, id) == 0)
			return (int)i;
	return -1;
}

pwb__hint pwb__hint_in(const pwb_policy *p, const char *name, pwb__names kind)
{
	const char *c[512];
	size_t n = 0;
	switch (kind) {
	case PWB__NAMES_CATS:
		for (size_t i = 0; i < p->n_cats && n < 512; i++)
			c[n++] = p->cats[i].id;
		break;
	case PWB__NAMES_DIMS:
		for (size_t i = 0; i < p->n_dims && n < 512; i++)
			c[n++] = p->dims[i].id;
		break;
	case PWB__NAMES_ATTRS:
	case PWB__NAMES_USER:
		for (size_t i = 0; i < p->n_attrs && n < 512; i++) {
			const char *a = p->attrs[i].name;
			if (kind == PWB__NAMES_USER) {
				if (strncmp(a, "user.", 5) != 0)
					continue;
				a += 5;
			}
			c[n++] = a;
		}
		break;
	case PWB__NAMES_LAWS:
	case PWB__NAMES_ORGS: {
		pwb_tier t =
		    kind == PWB__NAMES_LAWS ? PWB_TIER_LAW : PWB_TIER_ORG;
		for (size_t i = 0; i < p->n_files && n < 512; i++)
			if (p->files[i].parsed && p->files[i].tier == t &&
			    strcmp(p->files[i].id, name) != 0)
				c[n++] = p->files[i].id;
		break;
	}
	}
	return pwb__hint_for(name, c, n);
}

/* ---- typed access to YAML nodes ---- */

typedef struct loader {
	pwb_policy *p;
	int f; /* -1: the registry */
} loader;

static void err_at(loader *ld, const pwb__ynode *n, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void err_at(loader *ld, const pwb__ynode *n, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	pwb__ferr(ld->p, ld->f, n ? n->line : 0, n ? n->col : 0, "%s", msg);
}

static bool is_map(loader *ld, const pwb__ynode *n, const char *what)
{
	if (n->type == PWB__Y_MAP)
		return true;
	err_at(ld, n, "%s must be a mapping, not %s", what,
	       pwb__ytype_name(n->type));
	return false;
}

static bool is_seq(loader *ld, const pwb__ynode *n, const char *what)
{
	if (n->type == PWB__Y_SEQ)
		return true;
	err_at(ld, n, "%s must be a list, not %s", what,
	       pwb__ytype_name(n->type));
	return false;
}

/* A plain scalar spelling null is "no value". */
static bool is_null(const pwb__ynode *n)
{
	return n->type == PWB__Y_SCALAR && !n->quoted &&
	       (strcmp(n->text, "null") == 0 || strcmp(n->text, "~") == 0 ||
		n->len == 0);
}

static bool get_string(loader *ld, const pwb__ynode *n, const char *what,
		       const char **out)
{
	if (n->type != PWB__Y_SCALAR || is_null(n)) {
		err_at(ld, n, "%s must be a string, not %s", what,
		       n->type == PWB__Y_SCALAR ? "null"
						: pwb__ytype_name(n->type));
		return false;
	}
	*out = n->text;
	return true;
}

static bool get_bool(loader *ld, const pwb__ynode *n, const char *what,
		     bool *out)
{
	if (n->type == PWB__Y_SCALAR && !n->quoted) {
		if (strcmp(n->text, "true") == 0) {
			*out = true;
			return true;
		}
		if (strcmp(n->text, "false") == 0) {
			*out = false;
			return true;
		}
	}
	err_at(ld, n, "%s must be true or false", what);
	return false;
}

static bool parse_number(const pwb__ynode *n, double *out)
{
	if (n->type != PWB__Y_SCALAR || n->quoted || n->len == 0)
		return false;
	char *end;
	errno = 0;
	double v = strtod(n->text, &end);
	if (*end || errno == ERANGE || !isfinite(v))
		return false;
	*out = v;
	return true;
}

static bool get_number(loader *ld, const pwb__ynode *n, const char *what,
		       double *out)
{
	if (parse_number(n, out))
		return true;
	err_at(ld, n, "%s must be a number", what);
	return false;
}

static bool get_int(loader *ld, const pwb__ynode *n, const char *what, long lo,
		    long hi, int *out)
{
	double v;
	if (!parse_number(n, &v) || v != floor(v)) {
		err_at(ld, n, "%s must be a whole number", what);
		return false;
	}
	if (v < (double)lo || v > (double)hi) {
		err_at(ld, n, "%s must be between %ld and %ld, not %s", what,
		       lo, hi, n->text);
		return false;
	}
	*out = (int)v;
	return true;
}

/* Reports every key of map not in allowed (with a suggestion). */
static void check_keys(loader *ld, const pwb__ynode *map, const char *what,
		       const char *const *allowed, size_t n)
{
	for (size_t i = 0; i < map->n; i++) {
		const char *k = map->keys[i]->text;
		bool ok = false;
		for (size_t j = 0; j < n && !ok; j++)
			ok = strcmp(k, allowed[j]) == 0;
		if (ok)
			continue;
		pwb__hint s = pwb__hint_for(k, allowed, n);
		err_at(ld, map->keys[i], "unknown key '%s' in %s%s", k, what,
		       s.text);
	}
}

/* Copies a list of strings; reports non-string items and duplicates. */
static pwb_status get_string_list(loader *ld, const pwb__ynode *n,
				  const char *what, char ***out, size_t *count)
{
	*out = NULL;
	*count = 0;
	if (!is_seq(ld, n, what))
		return PWB_EPARSE;
	char **v = pwb__calloc(n->n ? n->n : 1, sizeof(*v));
	if (!v)
		return PWB_ENOMEM;
	size_t k = 0;
	for (size_t i = 0; i < n->n; i++) {
		const char *s;
		if (!get_string(ld, n->vals[i], what, &s))
			continue;
		bool dup = false;
		for (size_t j = 0; j < k && !dup; j++)
			dup = strcmp(v[j], s) == 0;
		if (dup) {
			err_at(ld, n->vals[i], "'%s' is listed twice in %s", s,
			       what);
			continue;
		}
		if (!(v[k] = pwb__strdup(s))) {
			for (size_t j = 0; j < k; j++)
				free(v[j]);
			free(v);
			return PWB_ENOMEM;
		}
		k++;
	}
	*out = v;
	*count = k;
	return PWB_OK;
}

static void free_strings(char **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

/* Reads a file, checks size and encoding, parses YAML. */
static pwb_status read_yaml(pwb_policy *p, int f, const char *path, char **data,
			    size_t *len, pwb__ynode **root)
{
	*root = NULL;
	pwb_diag tmp;
	pwb_diag_init(&tmp);
	pwb_status rc =
	    pwb__read_file(path, p->params.max_file_bytes, data, len, &tmp);
	if (rc) {
		pwb__ferr(p, f, 0, 0, "%s",
			  tmp.n ? tmp.entries[0].message : pwb_status_str(rc));
		pwb_diag_release(&tmp);
		return rc == PWB_ENOMEM ? rc : PWB_EPARSE;
	}
	int line, col;
	bool nul;
	if (!pwb__utf8_valid(*data, *len, &line, &col, &nul)) {
		pwb__ferr(p, f, line, col, "%s",
			  nul ? "NUL byte in the file"
			      : "invalid UTF-8 in the file");
		return PWB_EPARSE;
	}
	rc = pwb__yaml_parse(root, path, *data, *len, &tmp);
	for (size_t i = 0; i < tmp.n; i++)
		pwb__ferr(p, f, tmp.entries[i].line, tmp.entries[i].col, "%s",
			  tmp.entries[i].message);
	pwb_diag_release(&tmp);
	if (rc == PWB_OK && (*root)->type != PWB__Y_MAP) {
		pwb__ferr(p, f, (*root)->line, (*root)->col,
			  "the file must be a mapping of keys, not %s",
			  pwb__ytype_name((*root)->type));
		pwb__ynode_free(*root);
		*root = NULL;
		rc = PWB_EPARSE;
	}
	return rc;
}

/* ---- the registry ---- */

static const char *const detector_names[PWB_DET_N] = {"lexicon", "pii",
						      "linear", "guard"};

const char *pwb_detector_str(pwb_detector d)
{
	return (unsigned)d < PWB_DET_N ? detector_names[d] : "?";
}

static bool valid_id(const char *s, bool dots)
{
	if (!*s || !((*s >= 'a' && *s <= 'z')))
		return false;
	for (const char *c = s; *c; c++) {
		bool ok = (*c >= 'a' && *c <= 'z') ||
			  (*c >= '0' && *c <= '9') || *c == '_' || *c == '-' ||
			  (dots && *c == '.');
		if (!ok)
			return false;
	}
	return !dots || (strstr(s, "..") == NULL && s[strlen(s) - 1] != '.');
}

/* ISO 639-1: the languages a registry text may be given in. */
static const char iso_639_1[] =
    "aa ab ae af ak am an ar as av ay az ba be bg bh bi bm bn bo br bs ca "
    "ce ch co cr cs cu cv cy da de dv dz ee el en eo es et eu fa ff fi fj "
    "fo fr fy ga gd gl gn gu gv ha he hi ho hr ht hu hy hz ia id ie ig ii "
    "ik io is it iu ja jv ka kg ki kj kk kl km kn ko kr ks ku kv kw ky la "
    "lb lg li ln lo lt lu lv mg mh mi mk ml mn mr ms mt my na nb nd ne ng "
    "nl nn no nr nv ny oc oj om or os pa pi pl ps pt qu rm rn ro ru rw sa "
    "sc sd se sg si sk sl sm sn so sq sr ss st su sv sw ta te tg th ti tk "
    "tl tn to tr ts tt tw ty ug uk ur uz ve vi vo wa wo xh yi yo za zh zu ";

static bool known_lang(const char *s)
{
	if (strlen(s) != 2)
		return false;
	for (const char *c = iso_639_1; *c; c += 3)
		if (c[0] == s[0] && c[1] == s[1])
			return true;
	return false;
}

/* ISO 3166-1 alpha-2, lowercase: the countries a registry's help may be
 * given for, with eu and uk (codes ISO 3166-1 reserves for them). */
static const char iso_3166_1[] =
    "ad ae af ag ai al am ao aq ar as at au aw ax az ba bb bd be bf bg bh "
    "bi bj bl bm bn bo bq br bs bt bv bw by bz ca cc cd cf cg ch ci ck cl "
    "cm cn co cr cu cv cw cx cy cz de dj dk dm do dz ec ee eg eh er es et "
    "fi fj fk fm fo fr ga gb gd ge gf gg gh gi gl gm gn gp gq gr gs gt gu "
    "gw gy hk hm hn hr ht hu id ie il im in io iq ir is it je jm jo jp ke "
    "kg kh ki km kn kp kr kw ky kz la lb lc li lk lr ls lt lu lv ly ma mc "
    "md me mf mg mh mk ml mm mn mo mp mq mr ms mt mu mv mw mx my mz na nc "
    "ne nf ng ni nl no np nr nu nz om pa pe pf pg ph pk pl pm pn pr ps pt "
    "pw py qa re ro rs ru rw sa sb sc sd se sg sh si sj sk sl sm sn so sr "
    "ss st sv sx sy sz tc td tf tg th tj tk tl tm tn to tr tt tv tw tz ua "
    "ug um us uy uz va vc ve vg vi vn vu wf ws ye yt za zm zw "
    "eu uk ";

/*
 * A jurisdiction of the registry's help: a country code, eu or uk, with
 * an optional subdivision of 1 to 3 letters or digits (us-ca, de-by), as
 * law files are named. Checked here, not against the law files of the
 * set, so that the registry stands on its own beside any law files.
 */
static bool known_jurisdiction(const char *s)
{
	size_t n = strlen(s);
	if (n != 2 && (n < 4 || n > 6 || s[2] != '-'))
		return false;
	for (size_t i = 3; i < n; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') ||
		      (s[i] >= '0' && s[i] <= '9')))
			return false;
	for (const char *c = iso_3166_1; *c; c += 3)
		if (c[0] == s[0] && c[1] == s[1])
			return true;
	return false;
}

static void free_lang_texts(pwb_lang_text *t, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free((char *)t[i].lang);
		free((char *)t[i].text);
	}
	free(t);
}

void pwb__reg_cat_release(pwb__reg_cat *c)
{
	free(c->id);
	free(c->description);
	free(c->ailuminate);
	free(c->llama_guard);
	free_lang_texts(c->names, c->n_names);
	for (size_t i = 0; i < c->n_help; i++) {
		free((char *)c->help[i].jurisdiction);
		free_lang_texts((pwb_lang_text *)c->help[i].text,
				c->help[i].n_text);
		free((char *)c->help[i].source);
	}
	free(c->help);
}

/*
 * A text of the registry: a string (for every language) or a mapping of
 * ISO 639-1 codes to strings. Problems are reported; *out holds the texts
 * that were valid. Fails only when out of memory.
 */
static pwb_status get_lang_texts(loader *ld, const pwb__ynode *n,
				 const char *what, pwb_lang_text **out,
				 size_t *count)
{
	*out = NULL;
	*count = 0;
	const char *s;
	if (n->type == PWB__Y_SCALAR) {
		if (!get_string(ld, n, what, &s))
			return PWB_OK;
		pwb_lang_text *t = pwb__calloc(1, sizeof(*t));
		if (!t || !(t->text = pwb__strdup(s))) {
			free(t);
			return PWB_ENOMEM;
		}
		*out = t;
		*count = 1;
		return PWB_OK;
	}
	if (!is_map(ld, n, what))
		return PWB_OK;
	if (!n->n) {
		err_at(ld, n, "%s must give a text in at least one language",
		       what);
		return PWB_OK;
	}
	pwb_lang_text *t = pwb__calloc(n->n, sizeof(*t));
	if (!t)
		return PWB_ENOMEM;
	size_t k = 0;
	for (size_t i = 0; i < n->n; i++) {
		const pwb__ynode *key = n->keys[i];
		if (!known_lang(key->text)) {
			err_at(ld, key,
			       "unknown language '%s' in %s: use a lowercase "
			       "ISO 639-1 code such as en, de or fr",
			       key->text, what);
			continue;
		}
		if (!get_string(ld, n->vals[i], what, &s))
			continue;
		t[k].lang = pwb__strdup(key->text);
		t[k].text = pwb__strdup(s);
		if (!t[k].lang || !t[k].text) {
			free_lang_texts(t, k + 1);
			return PWB_ENOMEM;
		}
		k++;
	}
	*out = t;
	*count = k;
	return PWB_OK;
}

/* One help resource: {text: <a registry text>, source: URL}. */
static pwb_status reg_help_item(loader *ld, const pwb__ynode *jur,
				const pwb__ynode *item, pwb__reg_cat *c)
{
	if (!is_map(ld, item, "a help resource"))
		return PWB_OK;
	static const char *const keys[] = {"text", "source"};
	check_keys(ld, item, "a help resource", keys, PWB_ARRAY_LEN(keys));
	const pwb__ynode *tn = pwb__ymap_get(item, "text");
	const pwb__ynode *sn = pwb__ymap_get(item, "source");
	const char *src = NULL;
	bool ok = true;
	if (!tn) {
		err_at(ld, item, "a help resource needs a text");
		ok = false;
	}
	if (!sn) {
		err_at(ld, item,
		       "a help resource needs a source: the URL that cites "
		       "it");
		ok = false;
	} else if (!get_string(ld, sn, "source", &src)) {
		ok = false;
	} else if (strncmp(src, "https://", 8) != 0 &&
		   strncmp(src, "http://", 7) != 0) {
		err_at(ld, sn, "source '%s' must be a URL (https://...)", src);
		ok = false;
	}
	pwb_lang_text *t = NULL;
	size_t nt = 0;
	if (tn && get_lang_texts(ld, tn, "a help text", &t, &nt))
		return PWB_ENOMEM;
	if (!ok || !nt) {
		free_lang_texts(t, nt);
		return PWB_OK;
	}
	pwb_help_resource *h = &c->help[c->n_help];
	h->text = t;
	h->n_text = nt;
	h->jurisdiction = pwb__strdup(jur->text);
	h->source = pwb__strdup(src);
	c->n_help++; /* counted now: released with c even if a copy failed */
	return h->jurisdiction && h->source ? PWB_OK : PWB_ENOMEM;
}

/* help: {<jurisdiction>: <resource> or [<resource>, ...]}. */
static pwb_status reg_help(loader *ld, const pwb__ynode *map, pwb__reg_cat *c)
{
	if (!is_map(ld, map, "help"))
		return PWB_OK;
	size_t cap = 0;
	for (size_t i = 0; i < map->n; i++)
		cap += map->vals[i]->type == PWB__Y_SEQ ? map->vals[i]->n : 1;
	if (!cap)
		return PWB_OK;
	if (!(c->help = pwb__calloc(cap, sizeof(*c->help))))
		return PWB_ENOMEM;
	for (size_t i = 0; i < map->n; i++) {
		const pwb__ynode *k = map->keys[i], *v = map->vals[i];
		if (!known_jurisdiction(k->text)) {
			err_at(ld, k,
			       "unknown jurisdiction '%s' in help: use a "
			       "lowercase ISO 3166-1 country code (de, fr, "
			       "us), eu or uk, with an optional subdivision "
			       "(us-ca)",
			       k->text);
			continue;
		}
		if (v->type == PWB__Y_SEQ) {
			for (size_t j = 0; j < v->n; j++)
				if (reg_help_item(ld, k, v->vals[j], c))
					return PWB_ENOMEM;
		} else if (reg_help_item(ld, k, v, c)) {
			return PWB_ENOMEM;
		}
	}
	return PWB_OK;
}

static pwb_status reg_attrs(loader *ld, const pwb__ynode *map)
{
	pwb_policy *p = ld->p;
	if (!is_map(ld, map, "attributes"))
		return PWB_OK;
	static const char *const keys[] = {"type", "special", "description"};
	for (size_t i = 0; i < map->n; i++) {
		const pwb__ynode *k = map->keys[i], *v = map->vals[i];
		const char *name = k->text;
		if (strncmp(name, "user.", 5) != 0 &&
		    strncmp(name, "org.", 4) != 0 &&
		    strncmp(name, "request.", 8) != 0) {
			err_at(ld, k,
			       "attribute '%s' must start with user., org. or "
			       "request.",
			       name);
			continue;
		}
		if (!is_map(ld, v, "an attribute"))
			continue;
		check_keys(ld, v, "an attribute", keys, PWB_ARRAY_LEN(keys));
		pwb__reg_attr a = {.type = PWB_VAL_STRING, .line = k->line};
		const pwb__ynode *t = pwb__ymap_get(v, "type");
		const char *ts;
		if (!t) {
			err_at(ld, k, "attribute '%s' needs a type", name);
		} else if (get_string(ld, t, "type", &ts)) {
			static const char *const types[] = {"number", "bool",
							    "string", "list"};
			static const pwb_value_type tv[] = {
			    PWB_VAL_NUMBER, PWB_VAL_BOOL, PWB_VAL_STRING,
			    PWB_VAL_LIST};
			size_t j = 0;
			while (j < 4 && strcmp(ts, types[j]) != 0)
				j++;
			if (j == 4) {
				pwb__hint s = pwb__hint_for(ts, types, 4);
				err_at(ld, t, "unknown attribute type '%s'%s",
				       ts, s.text);
			} else {
				a.type = tv[j];
			}
		}
		const pwb__ynode *sp = pwb__ymap_get(v, "special");
		if (sp)
			get_bool(ld, sp, "special", &a.special);
		if (!(a.name = pwb__strdup(name)) ||
		    pwb__grow((void **)&p->attrs, &p->cap_attrs, p->n_attrs + 1,
			      sizeof(*p->attrs))) {
			free(a.name);
			return PWB_ENOMEM;
		}
		p->attrs[p->n_attrs++] = a;
	}
	return PWB_OK;
}

static pwb_status reg_cats(loader *ld, const pwb__ynode *map)
{
	pwb_policy *p = ld->p;
	if (!is_map(ld, map, "categories"))
		return PWB_OK;
	static const char *const keys[] = {
	    "description", "name",	"parent", "ailuminate",
	    "llama_guard", "detectors", "help"};
	for (size_t i = 0; i < map->n; i++) {
		const pwb__ynode *k = map->keys[i], *v = map->vals[i];
		if (!valid_id(k->text, true)) {
			err_at(ld, k,
			       "category id '%s' must be lowercase letters, "
			       "digits, '_' and '-', with '.' between parts",
			       k->text);
			continue;
		}
		if (!is_map(ld, v, "a category"))
			continue;
		check_keys(ld, v, "a category", keys, PWB_ARRAY_LEN(keys));
		pwb__reg_cat c = {.parent = -1, .line = k->line, .col = k->col};
		const pwb__ynode *n;
		const char *s;
		bool oom = false;
		c.id = pwb__strdup(k->text);
		oom |= !c.id;
		if ((n = pwb__ymap_get(v, "description")) &&
		    get_string(ld, n, "description", &s))
			oom |= !(c.description = pwb__strdup(s));
		if ((n = pwb__ymap_get(v, "ailuminate")) &&
		    get_string(ld, n, "ailuminate", &s))
			oom |= !(c.ailuminate = pwb__strdup(s));
		if ((n = pwb__ymap_get(v, "llama_guard")) &&
		    get_string(ld, n, "llama_guard", &s))
			oom |= !(c.llama_guard = pwb__strdup(s));
		if ((n = pwb__ymap_get(v, "parent")) &&
		    get_string(ld, n, "parent", &s)) {
			const char *dot = strrchr(k->text, '.');
			if (!dot || strlen(s) != (size_t)(dot - k->text) ||
			    strncmp(s, k->text, strlen(s)) != 0)
				err_at(ld, n,
				       "parent '%s' does not match the id "
				       "'%s': a child's id is its parent's "
				       "id, a dot and a name",
				       s, k->text);
		}
		if ((n = pwb__ymap_get(v, "detectors")) &&
		    is_map(ld, n, "detectors")) {
			for (size_t j = 0; j < n->n; j++) {
				const pwb__ynode *dk = n->keys[j];
				int d = 0;
				while (d < PWB_DET_N &&
				       strcmp(dk->text, pwb_detector_str(
							    (pwb_detector)d)) !=
					   0)
					d++;
				if (d == PWB_DET_N) {
					pwb__hint sg = pwb__hint_for(
					    dk->text, detector_names,
					    PWB_DET_N);
					err_at(ld, dk,
					       "unknown detector '%s'%s",
					       dk->text, sg.text);
					continue;
				}
				const pwb__ynode *dv = n->vals[j];
				c.has_detector[d] = true;
				c.threshold[d] = 0.5;
				if (is_null(dv) ||
				    !is_map(ld, dv, "a detector"))
					continue;
				static const char *const dkeys[] = {
				    "threshold"};
				check_keys(ld, dv, "a detector", dkeys, 1);
				const pwb__ynode *th =
				    pwb__ymap_get(dv, "threshold");
				double t;
				if (th && get_number(ld, th, "threshold", &t)) {
					if (t < 0 || t > 1)
						err_at(ld, th,
						       "threshold %s is "
						       "outside [0, 1]",
						       th->text);
					else
						c.threshold[d] = t;
				}
			}
		}
		if ((n = pwb__ymap_get(v, "name")) &&
		    get_lang_texts(ld, n, "a category name", &c.names,
				   &c.n_names))
			oom = true;
		if ((n = pwb__ymap_get(v, "help")) && reg_help(ld, n, &c))
			oom = true;
		if (oom || pwb__grow((void **)&p->cats, &p->cap_cats,
				     p->n_cats + 1, sizeof(*p->cats))) {
			pwb__reg_cat_release(&c);
			return PWB_ENOMEM;
		}
		p->cats[p->n_cats++] = c;
	}
	/* Parents from the dotted ids, and depths. */
	for (size_t i = 0; i < p->n_cats; i++) {
		pwb__reg_cat *c = &p->cats[i];
		const char *dot = strrchr(c->id, '.');
		if (!dot)
			continue;
		char *parent = pwb__strndup(c->id, (size_t)(dot - c->id));
		if (!parent)
			return PWB_ENOMEM;
		c->parent = pwb__find_cat(p, parent);
		if (c->parent < 0)
			pwb__ferr(p, -1, c->line, c->col,
				  "category '%s' has no parent '%s' in the "
				  "registry",
				  c->id, parent);
		free(parent);
	}
	for (size_t i = 0; i < p->n_cats; i++) {
		int d = 0;
		for (int q = p->cats[i].parent; q >= 0; q = p->cats[q].parent)
			d++;
		p->cats[i].depth = d;
	}
	p->cat_order = pwb__calloc(p->n_cats, sizeof(int));
	if (!p->cat_order)
		return PWB_ENOMEM;
	size_t k = 0;
	for (int d = 0; k < p->n_cats; d++)
		for (size_t i = 0; i < p->n_cats; i++)
			if (p->cats[i].depth == d)
				p->cat_order[k++] = (int)i;
	return PWB_OK;
}

static pwb_status reg_dims(loader *ld, const pwb__ynode *map)
{
	pwb_policy *p = ld->p;
	if (!is_map(ld, map, "dimensions"))
		return PWB_OK;
	static const char *const keys[] = {"type", "values", "default",
					   "description"};
	for (size_t i = 0; i < map->n; i++) {
		const pwb__ynode *k = map->keys[i], *v = map->vals[i];
		if (!valid_id(k->text, false)) {
			err_at(ld, k,
			       "dimension id '%s' must be lowercase letters, "
			       "digits, '_' and '-'",
			       k->text);
			continue;
		}
		if (!is_map(ld, v, "a dimension"))
			continue;
		check_keys(ld, v, "a dimension", keys, PWB_ARRAY_LEN(keys));
		pwb__reg_dim d = {.numeric = true, .def = 0.5, .line = k->line};
		const pwb__ynode *n;
		const char *s;
		bool oom = false;
		oom |= !(d.id = pwb__strdup(k->text));
		if (!(n = pwb__ymap_get(v, "type"))) {
			err_at(ld, k,
			       "dimension '%s' needs a type (number or "
			       "enum)",
			       k->text);
		} else if (get_string(ld, n, "type", &s)) {
			if (strcmp(s, "enum") == 0)
				d.numeric = false;
			else if (strcmp(s, "number") != 0)
				err_at(ld, n,
				       "dimension type must be number or "
				       "enum, not '%s'",
				       s);
		}
		if ((n = pwb__ymap_get(v, "values"))) {
			if (d.numeric)
				err_at(ld, n,
				       "values are for enum dimensions only");
			else if (get_string_list(ld, n, "values", &d.values,
						 &d.n_values) == PWB_ENOMEM)
				oom = true;
			else if (d.values && d.n_values == 0)
				err_at(ld, n, "values must not be empty");
		}
		if ((n = pwb__ymap_get(v, "default"))) {
			if (d.numeric) {
				if (get_number(ld, n, "default", &d.def) &&
				    (d.def < 0 || d.def > 1))
					err_at(ld, n,
					       "default %s is outside [0, 1]",
					       n->text);
			} else if (get_string(ld, n, "default", &s)) {
				oom |= !(d.def_str = pwb__strdup(s));
				bool in = !d.values;
				for (size_t j = 0; j < d.n_values && !in; j++)
					in = strcmp(d.values[j], s) == 0;
				if (!in)
					err_at(ld, n,
					       "default '%s' is not one of the "
					       "values",
					       s);
			}
		} else if (!d.numeric) {
			if (d.n_values)
				oom |= !(d.def_str = pwb__strdup(d.values[0]));
			else
				err_at(ld, k,
				       "enum dimension '%s' without values "
				       "needs a default",
				       k->text);
		}
		if ((n = pwb__ymap_get(v, "description")) &&
		    get_string(ld, n, "description", &s))
			oom |= !(d.description = pwb__strdup(s));
		if (oom || pwb__grow((void **)&p->dims, &p->cap_dims,
				     p->n_dims + 1, sizeof(*p->dims))) {
			free(d.id);
			free(d.def_str);
			free(d.description);
			free_strings(d.values, d.n_values);
			return PWB_ENOMEM;
		}
		p->dims[p->n_dims++] = d;
	}
	return PWB_OK;
}

pwb_status pwb__registry_load(pwb_policy *p, const char *path)
{
	loader ld = {p, -1};
	pwb__ynode *root = NULL;
	if (!(p->registry_path = pwb__strdup(path)))
		return PWB_ENOMEM;
	pwb_status rc =
	    read_yaml(p, -1, path, &p->registry_data, &p->registry_len, &root);
	if (rc)
		return rc == PWB_ENOMEM ? rc : PWB_OK;
	crypto_generichash(p->registry_digest, PWB__DIGEST,
			   (const unsigned char *)p->registry_data,
			   p->registry_len, NULL, 0);
	static const char *const keys[] = {"registry", "version", "attributes",
					   "categories", "dimensions"};
	check_keys(&ld, root, "the registry", keys, PWB_ARRAY_LEN(keys));
	const pwb__ynode *n;
	if (!pwb__ymap_get(root, "registry"))
		pwb__ferr(p, -1, root->line, root->col,
			  "a registry starts with 'registry: <name>' (is this "
			  "a policy file given as the registry?)");
	if ((n = pwb__ymap_get(root, "attributes")) && (rc = reg_attrs(&ld, n)))
		goto out;
	if (!(n = pwb__ymap_get(root, "categories")))
		pwb__ferr(p, -1, root->line, root->col,
			  "the registry has no categories");
	else if ((rc = reg_cats(&ld, n)))
		goto out;
	if ((n = pwb__ymap_get(root, "dimensions")) && (rc = reg_dims(&ld, n)))
		goto out;
out:
	pwb__ynode_free(root);
	return rc;
}

/* ---- policy files ---- */

void pwb__file_release(pwb__file *f)
{
	free(f->path);
	free(f->data);
	free(f->id);
	free(f->source);
	free(f->name);
	free(f->version);
	free(f->system_prompt);
	free(f->extends);
	free_strings(f->jurisdictions, f->n_jurisdictions);
	free(f->jur_item_line);
	free(f->jur_item_col);
	for (size_t i = 0; i < f->org_attrs.n; i++) {
		free(f->org_attrs.v[i].key);
		pwb__value_release(&f->org_attrs.v[i].val);
	}
	free(f->org_attrs.v);
	for (size_t i = 0; i < f->refusals.n; i++) {
		free(f->refusals.v[i].key);
		pwb__value_release(&f->refusals.v[i].val);
	}
	free(f->refusals.v);
	for (size_t i = 0; i < f->n_cat_rules; i++) {
		pwb__cond_free(f->cat_rules[i].when);
		free(f->cat_rules[i].when_src);
		free(f->cat_rules[i].basis);
	}
	free(f->cat_rules);
	free(f->cat_index);
	for (size_t i = 0; i < f->n_dim_rules; i++) {
		free_strings(f->dim_rules[i].allowed,
			     f->dim_rules[i].n_allowed);
		free(f->dim_rules[i].def_str);
		free(f->dim_rules[i].basis);
	}
	free(f->dim_rules);
	free(f->dim_index);
	for (size_t i = 0; i < f->n_obligations; i++) {
		free(f->obligations[i].id);
		free(f->obligations[i].kind);
		free(f->obligations[i].text);
		free(f->obligations[i].basis);
	}
	free(f->obligations);
	free_strings(f->learning.forbid, f->learning.n_forbid);
	free(f->learning.basis);
	free(f->learning.cohort);
	memset(f, 0, sizeof(*f));
}

static pwb__file *file_of(loader *ld)
{
	return &ld->p->files[ld->f];
}

/* Condition checks report through this, with the column inside the file. */
typedef struct cond_ctx {
	loader *ld;
	const pwb__ynode *node;
} cond_ctx;

/*
 * The line and column in the file of byte `off` of a condition's text. A
 * plain or quoted scalar's mark is at its first character (escapes aside);
 * a block scalar's text starts on the line after its indicator, and each
 * of its lines (less the indentation) maps to the text one to one.
 */
static void cond_place(loader *ld, const pwb__ynode *n, int off, int *line,
		       int *col)
{
	*line = n->line;
	*col = n->col + off;
	if (!n->block)
		return;
	const char *data = file_of(ld)->data;
	size_t len = file_of(ld)->len, i = n->pos;
	if (i >= len)
		return;
	int ln = n->line, indent = -1;
	if (data[i] == '|' || data[i] == '>') {
		/* The mark is at the indicator: content starts a line below. */
		while (i < len && data[i] != '\n')
			i++;
		i++;
		ln++;
	} else {
		/* The mark is on the first content line. */
		while (i > 0 && data[i - 1] != '\n')
			i--;
	}
	long left = off;
	for (; i < len; i++, ln++) {
		int sp = 0;
		while (i < len && data[i] == ' ' && (indent < 0 || sp < indent))
			i++, sp++;
		if (i < len && data[i] == '\n')
			continue; /* a blank line */
		if (indent < 0)
			indent = sp;
		size_t start = i;
		while (i < len && data[i] != '\n')
			i++;
		long n_line = (long)(i - start);
		if (left <= n_line) {
			*line = ln;
			*col = sp + (int)left + 1;
			return;
		}
		left -= n_line + 1;
	}
}

static bool cond_type_of(void *ud, const char *path, pwb_value_type *type)
{
	cond_ctx *cc = ud;
	pwb_policy *p = cc->ld->p;
	int a = pwb__find_attr(p, path);
	if (a >= 0) {
		*type = p->attrs[a].type;
		return true;
	}
	/* org.<key> may also come from the org file's own attributes. */
	if (strncmp(path, "org.", 4) == 0) {
		if (strcmp(path, "org.id") == 0) {
			*type = PWB_VAL_STRING;
			return true;
		}
		const pwb__value *v =
		    pwb__attrs_get(&file_of(cc->ld)->org_attrs, path);
		if (v) {
			*type = v->type;
			return true;
		}
	}
	pwb__hint s = pwb__hint_in(p, path, PWB__NAMES_ATTRS);
	const char *at = strstr(cc->node->text, path);
	int pos = at ? (int)(at - cc->node->text) : 0;
	int line, col;
	cond_place(cc->ld, cc->node, pos, &line, &col);
	pwb__ferr(p, cc->ld->f, line, col,
		  "unknown attribute '%s' in condition%s", path, s.text);
	return false;
}

static void cond_report(void *ud, int pos, const char *msg)
{
	cond_ctx *cc = ud;
	int line, col;
	cond_place(cc->ld, cc->node, pos, &line, &col);
	pwb__ferr(cc->ld->p, cc->ld->f, line, col, "%s", msg);
}

static bool get_permission(loader *ld, const pwb__ynode *n, const char *what,
			   pwb_permission *out)
{
	const char *s;
	if (!get_string(ld, n, what, &s))
		return false;
	if (pwb_permission_parse(s, out))
		return true;
	static const char *const names[] = {"forbid", "opt_in", "opt_out",
					    "allow"};
	pwb__hint sg = pwb__hint_for(s, names, 4);
	err_at(ld, n, "%s must be forbid, opt_in, opt_out or allow, not '%s'%s",
	       what, s, sg.text);
	return false;
}

static pwb_status file_cats(loader *ld, const pwb__ynode *map)
{
	pwb_policy *p = ld->p;
	pwb__file *f = file_of(ld);
	if (!is_map(ld, map, "categories"))
		return PWB_OK;
	static const char *const keys[] = {"permission", "when", "else",
					   "basis"};
	for (size_t i = 0; i < map->n; i++) {
		const pwb__ynode *k = map->keys[i], *v = map->vals[i];
		int cat = pwb__find_cat(p, k->text);
		if (cat < 0) {
			pwb__hint s = pwb__hint_in(p, k->text, PWB__NAMES_CATS);
			err_at(ld, k, "unknown category '%s'%s", k->text,
			       s.text);
			continue;
		}
		pwb__cat_rule r = {.cat = cat,
				   .else_perm = PWB_FORBID,
				   .line = k->line,
				   .col = k->col};
		const pwb__ynode *n;
		if (v->type == PWB__Y_SCALAR) {
			if (!get_permission(ld, v, "permission", &r.perm))
				continue;
			r.else_perm = r.perm;
		} else {
			if (!is_map(ld, v, "a category rule"))
				continue;
			check_keys(ld, v, "a category rule", keys,
				   PWB_ARRAY_LEN(keys));
			if (!(n = pwb__ymap_get(v, "permission"))) {
				err_at(ld, k,
				       "the rule for '%s' has no permission",
				       k->text);
				continue;
			}
			if (!get_permission(ld, n, "permission", &r.perm))
				continue;
			const char *s;
			bool ok = true;
			if ((n = pwb__ymap_get(v, "basis")) &&
			    get_string(ld, n, "basis", &s) &&
			    !(r.basis = pwb__strdup(s)))
				return PWB_ENOMEM;
			const pwb__ynode *w = pwb__ymap_get(v, "when");
			const pwb__ynode *e = pwb__ymap_get(v, "else");
			if (e && !w) {
				err_at(ld, e, "'else' without 'when'");
				ok = false;
			}
			if (e && !get_permission(ld, e, "else", &r.else_perm))
				ok = false;
			if (w && get_string(ld, w, "when", &s)) {
				pwb_diag cd;
				pwb_diag_init(&cd);
				pwb_status rc =
				    pwb__cond_parse(&r.when, s, &cd);
				if (rc == PWB_ENOMEM) {
					pwb_diag_release(&cd);
					free(r.basis);
					return rc;
				}
				if (rc) {
					/* The message's col is 1-based in s. */
					const pwb_diag_entry *ce =
					    cd.n ? &cd.entries[0] : NULL;
					int pos =
					    ce && ce->col > 0 ? ce->col - 1 : 0;
					int line, col;
					cond_place(ld, w, pos, &line, &col);
					pwb__ferr(p, ld->f, line, col,
						  "malformed condition: %s",
						  ce ? ce->message
						     : pwb_status_str(rc));
					pwb_diag_release(&cd);
					ok = false;
				} else {
					cond_ctx cc = {ld, w};
					int before = f->n_errors;
					pwb__cond_check(r.when, cond_type_of,
							cond_report, &cc);
					ok = f->n_errors == before;
					if (!(r.when_src = pwb__strdup(s))) {
						pwb__cond_free(r.when);
						free(r.basis);
						return PWB_ENOMEM;
					}
				}
			} else if (w) {
				ok = false;
			}
			if (r.when &&
			    pwb_permission_looser(r.else_perm, r.perm)) {
				err_at(ld, e,
				       "'else: %s' is looser than "
				       "'permission: %s': the condition "
				       "would only restrict",
				       pwb_permission_str(r.else_perm),
				       pwb_permission_str(r.perm));
				ok = false;
			}
			if (!ok) {
				pwb__cond_free(r.when);
				free(r.when_src);
				free(r.basis);
				continue;
			}
			if (!r.when)
				r.else_perm = r.perm;
		}
		if (pwb__grow((void **)&f->cat_rules, &f->cap_cat_rules,
			      f->n_cat_rules + 1, sizeof(*f->cat_rules))) {
			pwb__cond_free(r.when);
			free(r.when_src);
			free(r.basis);
			return PWB_ENOMEM;
		}
		f->cat_rules[f->n_cat_rules++] = r;
		f->cat_index[cat] = (int)f->n_cat_rules - 1;
	}
	return PWB_OK;
}

static bool in_list(char *const *v, size_t n, const char *s)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(v[i], s) == 0)
			return true;
	return false;
}

static pwb_status file_dims(loader *ld, const pwb__ynode *map)
{
	pwb_policy *p = ld->p;
	pwb__file *f = file_of(ld);
	if (!is_map(ld, map, "dimensions"))
		return PWB_OK;
	static const char *const keys[] = {"range", "allowed", "default",
					   "user_adjustable", "basis"};
	for (size_t i = 0; i < map->n; i++) {
		const pwb__ynode *k = map->keys[i], *v = map->vals[i];
		int dim = pwb__find_dim(p, k->text);
		if (dim < 0) {
			pwb__hint s = pwb__hint_in(p, k->text, PWB__NAMES_DIMS);
			err_at(ld, k, "unknown dimension '%s'%s", k->text,
			       s.text);
			continue;
		}
		if (!is_map(ld, v, "a dimension rule"))
			continue;
		check_keys(ld, v, "a dimension rule", keys,
			   PWB_ARRAY_LEN(keys));
		const pwb__reg_dim *rd = &p->dims[dim];
		pwb__dim_rule r = {.dim = dim,
				   .adjustable = -1,
				   .line = k->line,
				   .col = k->col};
		const pwb__ynode *n;
		const char *s;
		bool oom = false;
		if ((n = pwb__ymap_get(v, "range"))) {
			if (!rd->numeric) {
				err_at(ld, n,
				       "'%s' is an enum dimension: use "
				       "'allowed', not 'range'",
				       rd->id);
			} else if (n->type != PWB__Y_SEQ || n->n != 2) {
				err_at(ld, n, "range must be a list [lo, hi]");
			} else if (get_number(ld, n->vals[0], "range", &r.lo) &&
				   get_number(ld, n->vals[1], "range", &r.hi)) {
				if (r.lo < 0 || r.hi > 1)
					err_at(ld, n,
					       "range [%s, %s] is outside [0, "
					       "1]",
					       n->vals[0]->text,
					       n->vals[1]->text);
				else if (r.lo > r.hi)
					err_at(ld, n,
					       "range [%s, %s] is empty: lo is "
					       "above hi",
					       n->vals[0]->text,
					       n->vals[1]->text);
				else
					r.has_range = true;
			}
		}
		if ((n = pwb__ymap_get(v, "allowed"))) {
			if (rd->numeric) {
				err_at(ld, n,
				       "'%s' is a numeric dimension: use "
				       "'range', not 'allowed'",
				       rd->id);
			} else if (get_string_list(ld, n, "allowed", &r.allowed,
						   &r.n_allowed) ==
				   PWB_ENOMEM) {
				oom = true;
			} else if (r.allowed) {
				r.has_allowed = true;
				if (r.n_allowed == 0)
					err_at(ld, n,
					       "allowed must not be empty");
				for (size_t j = 0; j < n->n && rd->values;
				     j++) {
					const pwb__ynode *it = n->vals[j];
					if (it->type != PWB__Y_SCALAR ||
					    in_list(rd->values, rd->n_values,
						    it->text))
						continue;
					pwb__hint sg = pwb__hint_for(
					    it->text,
					    (const char *const *)rd->values,
					    rd->n_values);
					err_at(ld, it,
					       "'%s' is not a value of "
					       "dimension '%s'%s",
					       it->text, rd->id, sg.text);
				}
			}
		}
		if ((n = pwb__ymap_get(v, "default"))) {
			if (rd->numeric) {
				if (get_number(ld, n, "default", &r.def)) {
					r.has_default = true;
					if (r.has_range &&
					    (r.def < r.lo || r.def > r.hi))
						err_at(ld, n,
						       "default %s is outside "
						       "its range [%g, %g]",
						       n->text, r.lo, r.hi);
					else if (r.def < 0 || r.def > 1)
						err_at(ld, n,
						       "default %s is outside "
						       "[0, 1]",
						       n->text);
				}
			} else if (get_string(ld, n, "default", &s)) {
				r.has_default = true;
				oom |= !(r.def_str = pwb__strdup(s));
				if (r.has_allowed &&
				    !in_list(r.allowed, r.n_allowed, s))
					err_at(ld, n,
					       "default '%s' is not in its "
					       "allowed list",
					       s);
				else if (rd->values &&
					 !in_list(rd->values, rd->n_values, s))
					err_at(ld, n,
					       "default '%s' is not a value of "
					       "dimension '%s'",
					       s, rd->id);
			}
		}
		if ((n = pwb__ymap_get(v, "user_adjustable"))) {
			bool b;
			if (get_bool(ld, n, "user_adjustable", &b))
				r.adjustable = b;
		}
		if ((n = pwb__ymap_get(v, "basis")) &&
		    get_string(ld, n, "basis", &s))
			oom |= !(r.basis = pwb__strdup(s));
		if (oom ||
		    pwb__grow((void **)&f->dim_rules, &f->cap_dim_rules,
			      f->n_dim_rules + 1, sizeof(*f->dim_rules))) {
			free_strings(r.allowed, r.n_allowed);
			free(r.def_str);
			free(r.basis);
			return PWB_ENOMEM;
		}
		f->dim_rules[f->n_dim_rules++] = r;
		f->dim_index[dim] = (int)f->n_dim_rules - 1;
	}
	return PWB_OK;
}

static const char *const obligation_kinds[] = {"disclose_ai", "disclaimer",
					       "age_verification"};

static pwb_status file_obligations(loader *ld, const pwb__ynode *map)
{
	pwb_policy *p = ld->p;
	pwb__file *f = file_of(ld);
	if (!is_map(ld, map, "obligations"))
		return PWB_OK;
	static const char *const keys[] = {"kind", "category", "text", "basis"};
	for (size_t i = 0; i < map->n; i++) {
		const pwb__ynode *k = map->keys[i], *v = map->vals[i];
		if (v->type == PWB__Y_SCALAR && !is_null(v)) {
			err_at(ld, v,
			       "obligation '%s' must be a mapping (an "
			       "obligation cannot be switched off)",
			       k->text);
			continue;
		}
		if (!is_null(v) && !is_map(ld, v, "an obligation"))
			continue;
		if (!is_null(v))
			check_keys(ld, v, "an obligation", keys,
				   PWB_ARRAY_LEN(keys));
		pwb__obligation o = {.cat = -1, .line = k->line, .col = k->col};
		const pwb__ynode *n;
		const char *kind = k->text, *s;
		bool ok = true;
		if ((n = pwb__ymap_get(v, "kind")) &&
		    !get_string(ld, n, "kind", &kind))
			continue;
		size_t kk = 0;
		while (kk < PWB_ARRAY_LEN(obligation_kinds) &&
		       strcmp(kind, obligation_kinds[kk]) != 0)
			kk++;
		if (kk == PWB_ARRAY_LEN(obligation_kinds)) {
			pwb__hint sg =
			    pwb__hint_for(kind, obligation_kinds,
					  PWB_ARRAY_LEN(obligation_kinds));
			err_at(ld, n ? n : k,
			       "unknown obligation kind '%s'%s; the kinds are "
			       "disclose_ai, disclaimer and age_verification, "
			       "and retention is learning.retention_days",
			       kind, sg.text);
			continue;
		}
		bool needs_cat = kk != 0;
		n = pwb__ymap_get(v, "category");
		if (n && !needs_cat) {
			err_at(ld, n, "a %s obligation takes no category",
			       kind);
			ok = false;
		} else if (!n && needs_cat) {
			err_at(ld, k, "a %s obligation needs a category", kind);
			ok = false;
		} else if (n && get_string(ld, n, "category", &s)) {
			o.cat = pwb__find_cat(p, s);
			if (o.cat < 0) {
				pwb__hint sg =
				    pwb__hint_in(p, s, PWB__NAMES_CATS);
				err_at(ld, n, "unknown category '%s'%s", s,
				       sg.text);
				ok = false;
			}
		} else if (n) {
			ok = false;
		}
		n = pwb__ymap_get(v, "text");
		if (kk == 1 && !n) {
			err_at(ld, k, "a disclaimer obligation needs a text");
			ok = false;
		}
		bool oom = !(o.id = pwb__strdup(k->text)) ||
			   !(o.kind = pwb__strdup(kind));
		if (n && get_string(ld, n, "text", &s))
			oom |= !(o.text = pwb__strdup(s));
		if ((n = pwb__ymap_get(v, "basis")) &&
		    get_string(ld, n, "basis", &s))
			oom |= !(o.basis = pwb__strdup(s));
		if (oom || !ok ||
		    pwb__grow((void **)&f->obligations, &f->cap_obligations,
			      f->n_obligations + 1, sizeof(*f->obligations))) {
			free(o.id);
			free(o.kind);
			free(o.text);
			free(o.basis);
			if (oom || ok)
				return PWB_ENOMEM;
			continue;
		}
		f->obligations[f->n_obligations++] = o;
	}
	return PWB_OK;
}

/*
 * learning.cohort_attribute (org files): the user attribute whose value
 * groups users into cohorts (docs/prefs.md, "Cohort priors"). It must be
 * a registry attribute user.NAME that holds one value (a string, number
 * or boolean); whether a higher tier forbids it is checked across files
 * (check.c, check_learning).
 */
static pwb_status file_cohort(loader *ld, const pwb__ynode *n)
{
	pwb__file *f = file_of(ld);
	pwb__learning *l = &f->learning;
	const char *s;
	if (!get_string(ld, n, "cohort_attribute", &s))
		return PWB_OK;
	if (f->tier != PWB_TIER_ORG) {
		err_at(ld, n,
		       "cohort_attribute belongs in an org file: the org "
		       "decides how its users are grouped");
		return PWB_OK;
	}
	char full[256];
	int a = -1;
	if (strlen(s) < sizeof(full) - 5) {
		snprintf(full, sizeof(full), "user.%s", s);
		a = pwb__find_attr(ld->p, full);
	}
	if (a < 0) {
		pwb__hint sg = pwb__hint_in(ld->p, s, PWB__NAMES_USER);
		err_at(ld, n,
		       "unknown user attribute '%.64s' for cohort_attribute "
		       "(the registry has no 'user.%.64s')%s",
		       s, s, sg.text);
		return PWB_OK;
	}
	if (ld->p->attrs[a].type == PWB_VAL_LIST) {
		err_at(ld, n,
		       "cohort_attribute '%s' is a list: a cohort is named by "
		       "one value (a string, number or boolean attribute)",
		       s);
		return PWB_OK;
	}
	if (!(l->cohort = pwb__strdup(s)))
		return PWB_ENOMEM;
	l->cohort_line = n->line;
	l->cohort_col = n->col;
	return PWB_OK;
}

static pwb_status file_learning(loader *ld, const pwb__ynode *map)
{
	pwb_policy *p = ld->p;
	pwb__file *f = file_of(ld);
	pwb__learning *l = &f->learning;
	if (!is_map(ld, map, "learning"))
		return PWB_OK;
	static const char *const keys[] = {
	    "forbid_attributes", "requires_consent", "store_texts",
	    "retention_days",	 "cohort_attribute", "basis"};
	check_keys(ld, map, "learning", keys, PWB_ARRAY_LEN(keys));
	l->present = true;
	l->line = map->line;
	l->col = map->col;
	const pwb__ynode *n;
	const char *s;
	bool b;
	if ((n = pwb__ymap_get(map, "forbid_attributes"))) {
		if (get_string_list(ld, n, "forbid_attributes", &l->forbid,
				    &l->n_forbid) == PWB_ENOMEM)
			return PWB_ENOMEM;
		for (size_t i = 0; i < l->n_forbid; i++) {
			char full[256];
			snprintf(full, sizeof(full), "user.%s", l->forbid[i]);
			if (pwb__find_attr(p, full) >= 0)
				continue;
			pwb__hint sg =
			    pwb__hint_in(p, l->forbid[i], PWB__NAMES_USER);
			const pwb__ynode *it = n;
			for (size_t j = 0; j < n->n; j++) {
				if (n->vals[j]->type == PWB__Y_SCALAR &&
				    strcmp(n->vals[j]->text, l->forbid[i]) ==
					0) {
					it = n->vals[j];
					break;
				}
			}
			err_at(ld, it,
			       "unknown user attribute '%s' (the registry "
			       "has no 'user.%s')%s",
			       l->forbid[i], l->forbid[i], sg.text);
		}
	}
	l->requires_consent = -1;
	l->store_texts = -1;
	if ((n = pwb__ymap_get(map, "requires_consent")) &&
	    get_bool(ld, n, "requires_consent", &b)) {
		l->requires_consent = b;
		l->consent_line = n->line;
		l->consent_col = n->col;
	}
	if ((n = pwb__ymap_get(map, "store_texts")) &&
	    get_bool(ld, n, "store_texts", &b)) {
		l->store_texts = b;
		l->store_line = n->line;
		l->store_col = n->col;
	}
	if ((n = pwb__ymap_get(map, "retention_days")) &&
	    get_int(ld, n, "retention_days", 1, 36500, &l->retention_days)) {
		l->retention_line = n->line;
		l->retention_col = n->col;
	}
	if ((n = pwb__ymap_get(map, "basis")) &&
	    get_string(ld, n, "basis", &s) && !(l->basis = pwb__strdup(s)))
		return PWB_ENOMEM;
	if ((n = pwb__ymap_get(map, "cohort_attribute")))
		return file_cohort(ld, n);
	return PWB_OK;
}

static pwb_status file_org_attrs(loader *ld, const pwb__ynode *map)
{
	pwb__file *f = file_of(ld);
	if (!is_map(ld, map, "attributes"))
		return PWB_OK;
	for (size_t i = 0; i < map->n; i++) {
		const pwb__ynode *k = map->keys[i], *v = map->vals[i];
		char key[256];
		snprintf(key, sizeof(key), "org.%s", k->text);
		if (v->type != PWB__Y_SCALAR) {
			err_at(ld, v, "org attribute '%s' must be a scalar",
			       k->text);
			continue;
		}
		pwb_status rc;
		double num;
		if (v->quoted)
			rc = pwb_attrs_set_string(&f->org_attrs, key, v->text);
		else if (is_null(v))
			rc = pwb_attrs_set_null(&f->org_attrs, key);
		else if (strcmp(v->text, "true") == 0 ||
			 strcmp(v->text, "false") == 0)
			rc = pwb_attrs_set_bool(&f->org_attrs, key,
						v->text[0] == 't');
		else if (parse_number(v, &num))
			rc = pwb_attrs_set_number(&f->org_attrs, key, num);
		else
			rc = pwb_attrs_set_string(&f->org_attrs, key, v->text);
		if (rc)
			return rc;
		int a = pwb__find_attr(ld->p, key);
		const pwb__value *val = pwb__attrs_get(&f->org_attrs, key);
		if (a >= 0 && val->type != PWB_VAL_NULL &&
		    val->type != ld->p->attrs[a].type)
			err_at(ld, v,
			       "org attribute '%s' is declared a %s in the "
			       "registry, not a %s",
			       k->text,
			       pwb__value_type_name(ld->p->attrs[a].type),
			       pwb__value_type_name(val->type));
	}
	return PWB_OK;
}

/*
 * refusals: {en: "...", de: "..."}: the org's own refusal templates. The
 * placeholders are {category}, {tier}, {source}, {basis} and {how}.
 */
static pwb_status file_refusals(loader *ld, const pwb__ynode *map)
{
	static const char *const holders[] = {"category", "tier", "source",
					      "basis", "how"};
	pwb__file *f = file_of(ld);
	if (!is_map(ld, map, "refusals"))
		return PWB_OK;
	for (size_t i = 0; i < map->n; i++) {
		const pwb__ynode *k = map->keys[i], *v = map->vals[i];
		const char *s;
		if (!valid_id(k->text, false) || strlen(k->text) > 16) {
			err_at(ld, k,
			       "refusal language '%s' must be a BCP-47 code "
			       "such as en, de or fr",
			       k->text);
			continue;
		}
		if (!get_string(ld, v, "a refusal template", &s))
			continue;
		bool ok = true;
		for (const char *c = strchr(s, '{'); c && ok;
		     c = strchr(c + 1, '{')) {
			const char *end = strchr(c, '}');
			size_t len = end ? (size_t)(end - c - 1) : 0;
			bool known = false;
			for (size_t h = 0; end && h < PWB_ARRAY_LEN(holders);
			     h++)
				known |= strlen(holders[h]) == len &&
					 !strncmp(c + 1, holders[h], len);
			if (!known) {
				err_at(ld, v,
				       "unknown placeholder in refusal "
				       "template: use {category}, {tier}, "
				       "{source}, {basis} or {how}");
				ok = false;
			}
		}
		pwb_status rc;
		if (ok && (rc = pwb_attrs_set_string(&f->refusals, k->text, s)))
			return rc;
	}
	return PWB_OK;
}

pwb_status pwb__file_load(pwb_policy *p, const char *path, int folder_tier)
{
	if (pwb__grow((void **)&p->files, &p->cap_files, p->n_files + 1,
		      sizeof(*p->files)))
		return PWB_ENOMEM;
	pwb__file *f = &p->files[p->n_files];
	memset(f, 0, sizeof(*f));
	f->parent = -1;
	f->folder_tier = folder_tier;
	if (!(f->path = pwb__strdup(path)))
		return PWB_ENOMEM;
	p->n_files++;
	loader ld = {p, (int)p->n_files - 1};
	pwb__ynode *root = NULL;
	pwb_status rc = read_yaml(p, ld.f, path, &f->data, &f->len, &root);
	if (rc)
		return rc == PWB_ENOMEM ? rc : PWB_OK;
	crypto_generichash(f->digest, PWB__DIGEST,
			   (const unsigned char *)f->data, f->len, NULL, 0);
	f->cat_index = pwb__malloc((p->n_cats ? p->n_cats : 1) * sizeof(int));
	f->dim_index = pwb__malloc((p->n_dims ? p->n_dims : 1) * sizeof(int));
	if (!f->cat_index || !f->dim_index) {
		rc = PWB_ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < p->n_cats; i++)
		f->cat_index[i] = -1;
	for (size_t i = 0; i < p->n_dims; i++)
		f->dim_index[i] = -1;

	const pwb__ynode *n;
	const char *s;
	n = pwb__ymap_get(root, "tier");
	if (!n) {
		pwb__ferr(p, ld.f, root->line, root->col,
			  "missing 'tier: law' or 'tier: org'");
		goto out;
	}
	if (!get_string(&ld, n, "tier", &s))
		goto out;
	if (strcmp(s, "law") == 0) {
		f->tier = PWB_TIER_LAW;
	} else if (strcmp(s, "org") == 0) {
		f->tier = PWB_TIER_ORG;
	} else {
		err_at(&ld, n,
		       "tier must be law or org, not '%s' (user settings "
		       "are JSON, not policy files)",
		       s);
		goto out;
	}
	if (folder_tier >= 0 && (int)f->tier != folder_tier)
		err_at(&ld, n, "a tier: %s file in the %s/ folder", s,
		       pwb_tier_str((pwb_tier)folder_tier));
	static const char *const law_keys[] = {
	    "tier",	  "id",		"name",	       "version", "extends",
	    "categories", "dimensions", "obligations", "learning"};
	static const char *const org_keys[] = {
	    "tier",	     "id",	    "name",
	    "version",	     "extends",	    "categories",
	    "dimensions",    "obligations", "learning",
	    "jurisdictions", "candidates",  "attributes",
	    "refusals",	     "system_prompt"};
	if (f->tier == PWB_TIER_LAW)
		check_keys(&ld, root, "a law file", law_keys,
			   PWB_ARRAY_LEN(law_keys));
	else
		check_keys(&ld, root, "an org file", org_keys,
			   PWB_ARRAY_LEN(org_keys));
	if (!(n = pwb__ymap_get(root, "id"))) {
		pwb__ferr(p, ld.f, root->line, root->col, "missing 'id'");
		goto out;
	}
	if (!get_string(&ld, n, "id", &s))
		goto out;
	if (!valid_id(s, false)) {
		err_at(&ld, n,
		       "id '%s' must be lowercase letters, digits, '_' and "
		       "'-'",
		       s);
		goto out;
	}
	f->id_line = n->line;
	f->id_col = n->col;
	if (!(f->id = pwb__strdup(s)) ||
	    !(f->source = pwb__malloc(strlen(s) + 5))) {
		rc = PWB_ENOMEM;
		goto out;
	}
	snprintf(f->source, strlen(s) + 5, "%s:%s", pwb_tier_str(f->tier), s);
	f->parsed = true;
	if ((n = pwb__ymap_get(root, "name")) &&
	    get_string(&ld, n, "name", &s) && !(f->name = pwb__strdup(s)))
		rc = PWB_ENOMEM;
	if ((n = pwb__ymap_get(root, "version")) &&
	    get_string(&ld, n, "version", &s) && !(f->version = pwb__strdup(s)))
		rc = PWB_ENOMEM;
	if ((n = pwb__ymap_get(root, "extends")) &&
	    get_string(&ld, n, "extends", &s)) {
		f->extends_line = n->line;
		f->extends_col = n->col;
		if (!(f->extends = pwb__strdup(s)))
			rc = PWB_ENOMEM;
	}
	if (rc)
		goto out;
	if (f->tier == PWB_TIER_ORG) {
		if ((n = pwb__ymap_get(root, "jurisdictions"))) {
			f->jur_line = n->line;
			f->jur_col = n->col;
			if ((rc = get_string_list(
				 &ld, n, "jurisdictions", &f->jurisdictions,
				 &f->n_jurisdictions)) == PWB_ENOMEM)
				goto out;
			rc = PWB_OK;
			size_t nj = f->n_jurisdictions ? f->n_jurisdictions : 1;
			f->jur_item_line = pwb__calloc(nj, sizeof(int));
			f->jur_item_col = pwb__calloc(nj, sizeof(int));
			if (!f->jur_item_line || !f->jur_item_col) {
				rc = PWB_ENOMEM;
				goto out;
			}
			for (size_t j = 0; j < f->n_jurisdictions; j++) {
				f->jur_item_line[j] = n->line;
				f->jur_item_col[j] = n->col;
				for (size_t k = 0; k < n->n; k++) {
					const pwb__ynode *it = n->vals[k];
					if (it->type == PWB__Y_SCALAR &&
					    !strcmp(it->text,
						    f->jurisdictions[j])) {
						f->jur_item_line[j] = it->line;
						f->jur_item_col[j] = it->col;
						break;
					}
				}
			}
			if (f->jurisdictions && f->n_jurisdictions == 0 &&
			    !f->extends)
				err_at(&ld, n,
				       "jurisdictions must name at least one "
				       "law file");
		} else if (!f->extends) {
			pwb__ferr(p, ld.f, root->line, root->col,
				  "missing 'jurisdictions': an org names the "
				  "law files that apply to it");
		}
		if ((n = pwb__ymap_get(root, "candidates")))
			get_int(&ld, n, "candidates", 1, PWB__MAX_CANDIDATES,
				&f->candidates);
		if ((n = pwb__ymap_get(root, "system_prompt")) &&
		    get_string(&ld, n, "system_prompt", &s)) {
			if (strlen(s) > PWB__MAX_SYSTEM_PROMPT)
				err_at(&ld, n,
				       "system_prompt is longer than %d bytes",
				       PWB__MAX_SYSTEM_PROMPT);
			else if (!(f->system_prompt = pwb__strdup(s)))
				rc = PWB_ENOMEM;
		}
		if ((n = pwb__ymap_get(root, "attributes")) &&
		    (rc = file_org_attrs(&ld, n)))
			goto out;
		if ((n = pwb__ymap_get(root, "refusals")) &&
		    (rc = file_refusals(&ld, n)))
			goto out;
	}
	if ((n = pwb__ymap_get(root, "categories")) && (rc = file_cats(&ld, n)))
		goto out;
	if ((n = pwb__ymap_get(root, "dimensions")) && (rc = file_dims(&ld, n)))
		goto out;
	if ((n = pwb__ymap_get(root, "obligations")) &&
	    (rc = file_obligations(&ld, n)))
		goto out;
	if ((n = pwb__ymap_get(root, "learning")) &&
	    (rc = file_learning(&ld, n)))
		goto out;
out:
	pwb__ynode_free(root);
	return rc;
}
