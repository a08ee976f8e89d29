/*
 * policy_int.h - the internals of src/policy shared between its files: the
 * loaded registry, policy files and rules, and the effective policy.
 */
#ifndef PWB_POLICY_INT_H
#define PWB_POLICY_INT_H

#include "policy/cond.h"
#include "policy/yaml.h"
#include "pwb/policy.h"
#include "util/util.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#define PWB__DEFAULT_MAX_FILE (1024 * 1024)
#define PWB__MAX_CANDIDATES 16
#define PWB__MAX_SYSTEM_PROMPT (16 * 1024) /* bytes of an org's system_prompt */
#define PWB__MAX_CHAIN 32	   /* files in one extends chain */
#define PWB__MAX_RESOLVE_FILES 128 /* files one resolve may read */
#define PWB__DIGEST 32

/* ---- the registry ---- */

typedef struct pwb__reg_attr {
	char *name;
	pwb_value_type type;
	bool special;
	int line;
} pwb__reg_attr;

typedef struct pwb__reg_cat {
	char *id;
	int parent; /* index, -1 for a root */
	int depth;
	char *description;
	char *ailuminate;
	char *llama_guard;
	bool has_detector[PWB_DET_N];
	double threshold[PWB_DET_N];
	int line, col;
	/* `name` and `help` (strings owned here; pwb__reg_cat_release). */
	pwb_lang_text *names;
	size_t n_names;
	pwb_help_resource *help;
	size_t n_help;
} pwb__reg_cat;

void pwb__reg_cat_release(pwb__reg_cat *c);

typedef struct pwb__reg_dim {
	char *id;
	bool numeric;
	double def;
	char *def_str;
	char **values; /* enum: the closed list, NULL = any string */
	size_t n_values;
	char *description;
	int line;
} pwb__reg_dim;

/* ---- rules of one policy file ---- */

typedef struct pwb__cat_rule {
	int cat;
	pwb_permission perm;
	pwb_permission else_perm; /* when `when` is false */
	pwb__cond *when;	  /* NULL: unconditional */
	char *when_src;
	char *basis;
	int line, col;
} pwb__cat_rule;

typedef struct pwb__dim_rule {
	int dim;
	bool has_range;
	double lo, hi;
	char **allowed; /* enum */
	size_t n_allowed;
	bool has_allowed;
	bool has_default;
	double def;
	char *def_str;
	int adjustable; /* -1 unset, 0, 1 */
	char *basis;
	int line, col;
} pwb__dim_rule;

typedef struct pwb__obligation {
	char *id;
	char *kind;
	int cat; /* -1 when the kind has none */
	char *text;
	char *basis;
	int line, col;
} pwb__obligation;

typedef struct pwb__learning {
	bool present;
	char **forbid; /* attribute names without "user." */
	size_t n_forbid;
	int requires_consent; /* -1 unset, 0, 1 */
	int store_texts;      /* -1 unset, 0, 1 */
	int retention_days;   /* 0 unset */
	char *basis;
	int line, col;
	int consent_line, consent_col; /* where each field was set */
	int store_line, store_col;
	int retention_line, retention_col;
	/* org files: the user attribute (without "user.") that groups users
	 * into cohorts for cohort priors, or NULL */
	char *cohort;
	int cohort_line, cohort_col;
} pwb__learning;

typedef struct pwb__file {
	char *path;
	char *data;
	size_t len;
	unsigned char digest[PWB__DIGEST];
	int n_errors;
	bool parsed; /* got as far as its tier and id */
	pwb_tier tier;
	int folder_tier; /* -1 unknown, else the tier its folder implies */
	char *id;
	char *source; /* "law:de" */
	int id_line, id_col;
	char *name;
	char *version;
	char *extends;
	int extends_line, extends_col;
	int parent; /* file index, -1 */
	char **jurisdictions;
	size_t n_jurisdictions;
	int jur_line, jur_col;
	int *jur_item_line, *jur_item_col; /* where each one is named */
	int candidates;			   /* 0: unset */
	char *system_prompt;		   /* org files; NULL: none */
	pwb_attrs org_attrs;		   /* org.<key> values */
	pwb__cat_rule *cat_rules;
	size_t n_cat_rules, cap_cat_rules;
	int *cat_index; /* registry category -> rule index or -1 */
	pwb__dim_rule *dim_rules;
	size_t n_dim_rules, cap_dim_rules;
	int *dim_index;
	pwb__obligation *obligations;
	size_t n_obligations, cap_obligations;
	pwb__learning learning;
	pwb_attrs refusals; /* org: language -> refusal template (strings) */
} pwb__file;

/* ---- the cache ---- */

typedef struct pwb__cache_slot {
	uint64_t hash;
	char *key;
	size_t key_len;
	pwb_effective *eff;
} pwb__cache_slot;

struct pwb_policy {
	pwb_policy_params params;
	pwb_diag *diag; /* where load-time errors go; NULL after loading */
	char *registry_path;
	char *registry_data;
	size_t registry_len;
	unsigned char registry_digest[PWB__DIGEST];
	int registry_errors;
	pwb__reg_attr *attrs;
	size_t n_attrs, cap_attrs;
	pwb__reg_cat *cats;
	size_t n_cats, cap_cats;
	int *cat_order; /* parents before children */
	/* What pwb_policy_category() shows: the registry's categories with
	 * the strings borrowed from cats, made once the set is loaded. */
	pwb_category_def *cat_defs;
	pwb__reg_dim *dims;
	size_t n_dims, cap_dims;
	pwb__file *files;
	size_t n_files, cap_files;

	pthread_mutex_t lock;
	pwb__cache_slot *cache;
	size_t cache_size; /* slots, a power of two */
	size_t cache_used;
};

/* ---- the effective policy ---- */

struct pwb_effective {
	atomic_int refs;
	pwb__arena arena;
	const char *org;
	char hash[2 * PWB__DIGEST + 1];
	const char **jurisdictions;
	size_t n_jurisdictions;
	int candidates;
	const char *system_prompt;
	pwb_eff_category *cats;
	size_t n_cats;
	pwb_eff_dimension *dims;
	size_t n_dims;
	pwb_eff_obligation *obligations;
	size_t n_obligations;
	pwb_eff_learning learning;
	const char **refusal_lang; /* the org's own refusal templates */
	const char **refusal_text;
	size_t n_refusals;
};

/* ---- user settings ---- */

typedef struct pwb__cat_setting {
	char *id;
	bool on;
} pwb__cat_setting;

typedef struct pwb__dim_setting {
	char *id;
	bool numeric;
	double num;
	char *str;
} pwb__dim_setting;

struct pwb_settings {
	pwb__cat_setting *cats;
	size_t n_cats, cap_cats;
	pwb__dim_setting *dims;
	size_t n_dims, cap_dims;
};

/* Appends a canonical, order-independent binary encoding of s (NULL =
 * none) to b: the cache key and part of the policy hash. */
void pwb__settings_key(const pwb_settings *s, pwb__buf *b);
void pwb__attrs_key(const pwb_attrs *a, pwb__buf *b);

/* ---- between load.c, check.c and resolve.c ---- */

/* Adds an error against file f (-1: the registry) and counts it. */
void pwb__ferr(pwb_policy *p, int f, int line, int col, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

int pwb__find_cat(const pwb_policy *p, const char *id);
int pwb__find_dim(const pwb_policy *p, const char *id);
int pwb__find_attr(const pwb_policy *p, const char *name);
int pwb__find_file(const pwb_policy *p, pwb_tier tier, const char *id);

/* Which names a "did you mean" hint looks among. */
typedef enum pwb__names {
	PWB__NAMES_CATS,
	PWB__NAMES_DIMS,
	PWB__NAMES_ATTRS,
	PWB__NAMES_USER, /* user attributes without "user." */
	PWB__NAMES_LAWS, /* ids of law files */
	PWB__NAMES_ORGS	 /* ids of org files */
} pwb__names;
pwb__hint pwb__hint_in(const pwb_policy *p, const char *name, pwb__names kind);

pwb_status pwb__registry_load(pwb_policy *p, const char *path);
pwb_status pwb__file_load(pwb_policy *p, const char *path, int folder_tier);
/* Cross-file checks: extends, jurisdictions, duplicates, loosening. */
void pwb__check_all(pwb_policy *p);
void pwb__file_release(pwb__file *f);

/*
 * The files a resolve of org chain `org` with extra jurisdictions reads,
 * laws first (each chain from its root), then the org chain from its root.
 * Returns the count; -1 with diag filled for an unknown jurisdiction or
 * more than out_cap files; -2 with diag filled for an extends chain of
 * more than PWB__MAX_CHAIN files.
 */
int pwb__resolve_files(const pwb_policy *p, int org, const char *const *extra,
		       size_t n_extra, int *out, size_t out_cap,
		       pwb_diag *diag);

void pwb__cache_clear(pwb_policy *p);

#endif
