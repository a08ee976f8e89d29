/* policy.c - the pwb_policy handle: loading a folder or files, freeing. */
#include "policy/policy_int.h"

#include <dirent.h>
#include <errno.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define PWB__MAX_POLICY_FILES 4096
#define PWB__MAX_WALK_DEPTH 8

pwb_policy_params pwb_policy_default_params(void)
{
	pwb_policy_params pp = {0};
	pp.max_file_bytes = PWB__DEFAULT_MAX_FILE;
	pp.cache_entries = 4096;
	return pp;
}

static pwb_status policy_new(pwb_policy **out, const pwb_policy_params *params,
			     pwb_diag *diag)
{
	if (sodium_init() < 0)
		return PWB_ENOMEM;
	pwb_policy *p = pwb__calloc(1, sizeof(*p));
	if (!p)
		return PWB_ENOMEM;
	p->params = params ? *params : pwb_policy_default_params();
	if (!p->params.max_file_bytes)
		p->params.max_file_bytes = PWB__DEFAULT_MAX_FILE;
	p->diag = diag;
	if (pthread_mutex_init(&p->lock, NULL) != 0) {
		free(p);
		return PWB_ENOMEM;
	}
	if (p->params.cache_entries) {
		size_t size = 16;
		while (size < p->params.cache_entries * 2)
			size *= 2;
		p->cache = pwb__calloc(size, sizeof(*p->cache));
		if (!p->cache) {
			pthread_mutex_destroy(&p->lock);
			free(p);
			return PWB_ENOMEM;
		}
		p->cache_size = size;
	}
	*out = p;
	return PWB_OK;
}

void pwb_policy_free(pwb_policy *p)
{
	if (!p)
		return;
	pwb__cache_clear(p);
	free(p->cache);
	pthread_mutex_destroy(&p->lock);
	for (size_t i = 0; i < p->n_files; i++)
		pwb__file_release(&p->files[i]);
	free(p->files);
	for (size_t i = 0; i < p->n_attrs; i++)
		free(p->attrs[i].name);
	free(p->attrs);
	for (size_t i = 0; i < p->n_cats; i++)
		pwb__reg_cat_release(&p->cats[i]);
	free(p->cats);
	free(p->cat_order);
	free(p->cat_defs);
	for (size_t i = 0; i < p->n_dims; i++) {
		free(p->dims[i].id);
		free(p->dims[i].def_str);
		free(p->dims[i].description);
		for (size_t j = 0; j < p->dims[i].n_values; j++)
			free(p->dims[i].values[j]);
		free(p->dims[i].values);
	}
	free(p->dims);
	free(p->registry_path);
	free(p->registry_data);
	free(p);
}

static char *join(const char *dir, const char *name)
{
	if (strcmp(dir, ".") == 0)
		return pwb__strdup(name);
	size_t n = strlen(dir) + strlen(name) + 2;
	char *s = pwb__malloc(n);
	if (s) {
		bool slash = dir[0] && dir[strlen(dir) - 1] == '/';
		snprintf(s, n, "%s%s%s", dir, slash ? "" : "/", name);
	}
	return s;
}

static bool yaml_name(const char *name)
{
	size_t n = strlen(name);
	return (n > 5 && strcmp(name + n - 5, ".yaml") == 0) ||
	       (n > 4 && strcmp(name + n - 4, ".yml") == 0);
}

static int cmp_names(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Loads every YAML file under dir (sorted, recursive) as policy files. */
static pwb_status load_tree(pwb_policy *p, const char *dir, int tier, int depth)
{
	DIR *d = opendir(dir);
	if (!d) {
		if (errno == ENOENT && depth == 0)
			return PWB_OK;
		pwb_diag_add(p->diag, dir, 0, 0, "cannot read folder: %s",
			     strerror(errno));
		return PWB_OK;
	}
	char **names = NULL;
	size_t n = 0, cap = 0;
	pwb_status rc = PWB_OK;
	struct dirent *de;
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		if (n >= PWB__MAX_POLICY_FILES) {
			pwb_diag_add(p->diag, dir, 0, 0,
				     "more than %d entries in one folder",
				     PWB__MAX_POLICY_FILES);
			break;
		}
		char *s = pwb__strdup(de->d_name);
		if (!s ||
		    pwb__grow((void **)&names, &cap, n + 1, sizeof(*names))) {
			free(s);
			rc = PWB_ENOMEM;
			break;
		}
		names[n++] = s;
	}
	closedir(d);
	if (n)
		qsort(names, n, sizeof(*names), cmp_names);
	for (size_t i = 0; i < n && !rc; i++) {
		char *path = join(dir, names[i]);
		if (!path) {
			rc = PWB_ENOMEM;
			break;
		}
		struct stat st;
		if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
			if (depth < PWB__MAX_WALK_DEPTH)
				rc = load_tree(p, path, tier, depth + 1);
		} else if (yaml_name(names[i])) {
			if (p->n_files >= PWB__MAX_POLICY_FILES)
				pwb_diag_add(p->diag, path, 0, 0,
					     "too many policy files (the limit "
					     "is %d)",
					     PWB__MAX_POLICY_FILES);
			else
				rc = pwb__file_load(p, path, tier);
		}
		free(path);
	}
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
	return rc;
}

/* The public view of the registry's categories (pwb_policy_category). */
static pwb_status make_cat_defs(pwb_policy *p)
{
	p->cat_defs =
	    pwb__calloc(p->n_cats ? p->n_cats : 1, sizeof(*p->cat_defs));
	if (!p->cat_defs)
		return PWB_ENOMEM;
	for (size_t i = 0; i < p->n_cats; i++) {
		const pwb__reg_cat *c = &p->cats[i];
		pwb_category_def *d = &p->cat_defs[i];
		d->id = c->id;
		d->parent = c->parent;
		d->description = c->description;
		d->ailuminate = c->ailuminate;
		d->llama_guard = c->llama_guard;
		memcpy(d->has_detector, c->has_detector,
		       sizeof(d->has_detector));
		memcpy(d->threshold, c->threshold, sizeof(d->threshold));
		d->line = c->line;
		d->name = c->names;
		d->n_name = c->n_names;
		d->help = c->help;
		d->n_help = c->n_help;
	}
	return PWB_OK;
}

static pwb_status finish(pwb_policy **out, pwb_policy *p, pwb_status rc)
{
	if (!rc)
		rc = make_cat_defs(p);
	if (rc) {
		p->diag = NULL;
		pwb_policy_free(p);
		return rc;
	}
	pwb__check_all(p);
	bool errors = p->registry_errors > 0;
	for (size_t i = 0; i < p->n_files; i++)
		errors |= p->files[i].n_errors > 0;
	p->diag = NULL;
	*out = p;
	return errors ? PWB_EPOLICY : PWB_OK;
}

pwb_status pwb_policy_load(pwb_policy **out, const char *dir,
			   const pwb_policy_params *params, pwb_diag *diag)
{
	*out = NULL;
	pwb_policy *p;
	pwb_status rc = policy_new(&p, params, diag);
	if (rc)
		return rc;
	char *reg = p->params.registry ? pwb__strdup(p->params.registry)
				       : join(dir, "categories.yaml");
	char *law = join(dir, "law");
	char *org = join(dir, "org");
	if (!reg || !law || !org) {
		rc = PWB_ENOMEM;
	} else {
		struct stat st;
		if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
			pwb_diag_add(diag, dir, 0, 0, "not a policy folder: %s",
				     stat(dir, &st) != 0 ? strerror(errno)
							 : "not a folder");
			rc = PWB_ENOTFOUND;
		} else if (!p->params.registry && stat(reg, &st) != 0 &&
			   errno == ENOENT) {
			pwb_diag_add(diag, dir, 0, 0,
				     "not a policy folder: it has no "
				     "categories.yaml (a policy folder holds "
				     "categories.yaml, law/ and org/)");
			rc = PWB_ENOTFOUND;
		} else if ((rc = pwb__registry_load(p, reg)) == PWB_OK &&
			   (rc = load_tree(p, law, PWB_TIER_LAW, 0)) ==
			       PWB_OK) {
			rc = load_tree(p, org, PWB_TIER_ORG, 0);
		}
	}
	free(reg);
	free(law);
	free(org);
	return finish(out, p, rc);
}

pwb_status pwb_policy_load_files(pwb_policy **out, const char *registry,
				 const char *const *files, size_t n_files,
				 const pwb_policy_params *params,
				 pwb_diag *diag)
{
	*out = NULL;
	pwb_policy *p;
	pwb_status rc = policy_new(&p, params, diag);
	if (rc)
		return rc;
	rc = pwb__registry_load(p, registry);
	for (size_t i = 0; i < n_files && !rc; i++)
		rc = pwb__file_load(p, files[i], -1);
	return finish(out, p, rc);
}

size_t pwb_policy_n_orgs(const pwb_policy *p)
{
	size_t n = 0;
	for (size_t i = 0; i < p->n_files; i++)
		n += p->files[i].parsed && p->files[i].tier == PWB_TIER_ORG;
	return n;
}

size_t pwb_policy_n_categories(const pwb_policy *p)
{
	return p->n_cats;
}

const pwb_category_def *pwb_policy_category(const pwb_policy *p, size_t i)
{
	return i < p->n_cats ? &p->cat_defs[i] : NULL;
}

const char *pwb_lang_text_pick(const pwb_lang_text *t, size_t n,
			       const char *lang, const char **lang_out)
{
	/* The primary subtag of lang: "de" of "de-AT". */
	size_t ll = lang ? strcspn(lang, "-_") : 0;
	const pwb_lang_text *any = NULL, *en = NULL, *hit = NULL;
	for (size_t i = 0; i < n && !hit; i++) {
		if (!t[i].lang)
			any = any ? any : &t[i];
		else if (ll && strlen(t[i].lang) == ll &&
			 !strncmp(t[i].lang, lang, ll))
			hit = &t[i];
		else if (!strcmp(t[i].lang, "en"))
			en = &t[i];
	}
	if (!ll && en)
		hit = en;
	const pwb_lang_text *r = hit   ? hit
				 : any ? any
				 : en  ? en
				 : n   ? &t[0]
				       : NULL;
	if (lang_out)
		*lang_out = r ? r->lang : NULL;
	return r ? r->text : NULL;
}

const char *pwb_category_name(const pwb_category_def *c, const char *lang)
{
	const char *s = pwb_lang_text_pick(c->name, c->n_name, lang, NULL);
	return s ? s : c->id;
}

int pwb_policy_find_category(const pwb_policy *p, const char *id)
{
	return pwb__find_cat(p, id);
}

const char *pwb_policy_suggest_category(const pwb_policy *p, const char *name)
{
	const char *c[512];
	size_t n = 0;
	for (size_t i = 0; i < p->n_cats && n < 512; i++)
		c[n++] = p->cats[i].id;
	return pwb__suggest(name, c, n);
}

const char *pwb_policy_org_id(const pwb_policy *p, size_t i)
{
	for (size_t k = 0; k < p->n_files; k++) {
		if (!p->files[k].parsed || p->files[k].tier != PWB_TIER_ORG)
			continue;
		if (i-- == 0)
			return p->files[k].id;
	}
	return NULL;
}
