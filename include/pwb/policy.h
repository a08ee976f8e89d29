/*
 * pwb/policy.h - the three-tier policy engine.
 *
 * A pwb_policy is a loaded policy folder: the category registry
 * (`categories.yaml`), the law files (`law/`) and the org files (`org/`).
 * Resolving it for one org, its jurisdictions, one user's settings and the
 * request's attributes gives a pwb_effective: the meet of law, org and user,
 * where every value carries its provenance.
 *
 * Ownership: objects returned through `**out` are the caller's and are freed
 * with the matching `_free`; every `_free` accepts NULL. Pointers returned by
 * getters are borrowed until their parent object is freed. A NULL params
 * pointer means the defaults. A pwb_effective owns every string it shows:
 * it borrows nothing from the settings and attributes it was resolved with
 * (free them at once if you like) and may outlive its pwb_policy.
 *
 * Threads: a pwb_policy may be resolved from several threads at once (its
 * cache has a lock); a pwb_effective is immutable, and taking or releasing
 * references (pwb_effective_ref, pwb_effective_free) is atomic, so one
 * effective may be shared by any number of threads. pwb_attrs and
 * pwb_settings are not shared between threads while they are being changed.
 */
#ifndef PWB_POLICY_H
#define PWB_POLICY_H

#include "pwb/common.h"

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- the permission lattice: forbid < opt_in < opt_out < allow ---- */

typedef enum pwb_permission {
	PWB_FORBID = 0,
	PWB_OPT_IN = 1,
	PWB_OPT_OUT = 2,
	PWB_ALLOW = 3
} pwb_permission;

/* "forbid", "opt_in", "opt_out" or "allow". */
const char *pwb_permission_str(pwb_permission p);
/* Parses a permission name; returns false when it is none of the four. */
bool pwb_permission_parse(const char *s, pwb_permission *out);
/*
 * The lattice, in one place: resolve, check and the detectors all order
 * permissions through these three.
 */
/* The meet (greatest lower bound) of two permissions. */
static inline pwb_permission pwb_permission_meet(pwb_permission a,
						 pwb_permission b)
{
	return a < b ? a : b;
}
/* Whether a is looser than b: a lower tier that sets a where a higher one
 * sets b loosens it. */
static inline bool pwb_permission_looser(pwb_permission a, pwb_permission b)
{
	return pwb_permission_meet(a, b) != a;
}
/* Whether a category with permission p is on for a user whose own setting
 * is `setting` (-1 none, 0 off, 1 on): never when forbid, only when turned
 * on when opt_in, unless turned off when opt_out or allow. */
static inline bool pwb_permission_on(pwb_permission p, int setting)
{
	switch (p) {
	case PWB_FORBID:
		return false;
	case PWB_OPT_IN:
		return setting == 1;
	case PWB_OPT_OUT:
	case PWB_ALLOW:
		return setting != 0;
	}
	return false;
}

/* ---- values: request attributes and condition operands ---- */

typedef enum pwb_value_type {
	PWB_VAL_NULL,
	PWB_VAL_BOOL,
	PWB_VAL_NUMBER,
	PWB_VAL_STRING,
	PWB_VAL_LIST
} pwb_value_type;

/* ---- request attributes (user.*, org.*, request.*) ---- */

/* Keys are whole attribute paths, as conditions name them: "user.age",
 * "request.channel"; the registry declares them and their types. */
typedef struct pwb_attrs pwb_attrs;

pwb_status pwb_attrs_new(pwb_attrs **out);
void pwb_attrs_free(pwb_attrs *a);
pwb_status pwb_attrs_set_null(pwb_attrs *a, const char *key);
pwb_status pwb_attrs_set_bool(pwb_attrs *a, const char *key, bool v);
pwb_status pwb_attrs_set_number(pwb_attrs *a, const char *key, double v);
pwb_status pwb_attrs_set_string(pwb_attrs *a, const char *key, const char *v);
/*
 * Sets key from text the way `--attr k=v` does: the text is read as a JSON
 * scalar where it is one (`15`, `true`, `null`, `"x"`) and as a string
 * otherwise.
 */
pwb_status pwb_attrs_set_text(pwb_attrs *a, const char *key, const char *text);
/*
 * The value of key as text: a string as it is, a number as %.15g, true
 * or false. PWB_ENOTFOUND when key is unset, null or a list;
 * PWB_ETOOLARGE when it does not fit in size bytes with its NUL (buf is
 * then ""). a may be NULL (nothing is set).
 */
pwb_status pwb_attrs_text(const pwb_attrs *a, const char *key, char *buf,
			  size_t size);

/* ---- user settings (tier 3) ---- */

typedef struct pwb_settings pwb_settings;

pwb_status pwb_settings_new(pwb_settings **out);
void pwb_settings_free(pwb_settings *s);
/*
 * Parses settings JSON:
 *   {"categories": {"profanity": "on"}, "dimensions": {"humour": 0.5}}
 * `name` names the input in diagnostics (a file name). On failure *out is
 * NULL and diag says what and where.
 */
pwb_status pwb_settings_parse(pwb_settings **out, const char *json, size_t len,
			      const char *name, pwb_diag *diag);
pwb_status pwb_settings_set_category(pwb_settings *s, const char *category,
				     bool on);
pwb_status pwb_settings_set_number(pwb_settings *s, const char *dimension,
				   double v);
pwb_status pwb_settings_set_string(pwb_settings *s, const char *dimension,
				   const char *v);

/* ---- loading and checking ---- */

typedef struct pwb_policy pwb_policy;

typedef struct pwb_policy_params {
	/* The registry file; NULL means `<dir>/categories.yaml`. */
	const char *registry;
	/* Largest policy file read, in bytes. */
	size_t max_file_bytes;
	/* Entries in the resolve cache; 0 turns the cache off. */
	size_t cache_entries;
} pwb_policy_params;

pwb_policy_params pwb_policy_default_params(void);

/*
 * Loads and checks the policy folder `dir`: the registry, every `*.yaml`
 * under `dir/law` and `dir/org`. Every problem found is added to diag (all
 * of them, not only the first). Returns PWB_OK when the set is valid and
 * PWB_EPOLICY when it has errors; in both cases *out holds the loaded set,
 * so that files without errors can still be resolved. Other statuses (no
 * registry, out of memory) leave *out NULL.
 */
pwb_status pwb_policy_load(pwb_policy **out, const char *dir,
			   const pwb_policy_params *params, pwb_diag *diag);

/*
 * Loads a set from explicit files: a registry and any number of law and org
 * files (their `tier:` tells which). Used by `pwb policy check FILE...`.
 */
pwb_status pwb_policy_load_files(pwb_policy **out, const char *registry,
				 const char *const *files, size_t n_files,
				 const pwb_policy_params *params,
				 pwb_diag *diag);

void pwb_policy_free(pwb_policy *p);

/* The ids of the org files in the set, in file order. */
size_t pwb_policy_n_orgs(const pwb_policy *p);
const char *pwb_policy_org_id(const pwb_policy *p, size_t i);

/* ---- the category registry, as the detectors read it ---- */

/* The kinds of detector a registry category may name (docs/bounds.md). */
typedef enum pwb_detector {
	PWB_DET_LEXICON,
	PWB_DET_PII,
	PWB_DET_LINEAR,
	PWB_DET_GUARD,
	PWB_DET_N
} pwb_detector;

/* "lexicon", "pii", "linear" or "guard", as the registry names them. */
const char *pwb_detector_str(pwb_detector d);

/* One text of the registry in one language (docs/policy.md). */
typedef struct pwb_lang_text {
	const char *lang; /* an ISO 639-1 code; NULL: every language */
	const char *text;
} pwb_lang_text;

/* A help resource of a category for one jurisdiction (`help` in the
 * registry), e.g. a crisis line, shown with a refusal. */
typedef struct pwb_help_resource {
	const char *jurisdiction;  /* as law files are named: de, eu, us-ca */
	const pwb_lang_text *text; /* the resource, per language */
	size_t n_text;
	const char *source; /* the URL that cites it */
} pwb_help_resource;

/* One category of the registry. Indexes are those of the effective
 * policy's categories (pwb_effective_category(e, i) is category i). */
typedef struct pwb_category_def {
	const char *id;
	int parent; /* registry index of the parent, -1 for a root */
	const char *description;
	const char *ailuminate;	 /* the AILuminate hazard code, or NULL */
	const char *llama_guard; /* the Llama Guard code (S1...), or NULL */
	bool has_detector[PWB_DET_N];
	double threshold[PWB_DET_N]; /* where has_detector */
	int line;		     /* where the registry defines it */
	const pwb_lang_text *name;   /* display names, per language */
	size_t n_name;
	const pwb_help_resource *help; /* in registry order */
	size_t n_help;
} pwb_category_def;

size_t pwb_policy_n_categories(const pwb_policy *p);
const pwb_category_def *pwb_policy_category(const pwb_policy *p, size_t i);
/*
 * The text of a list for the language lang (a BCP-47 code such as de or
 * de-AT: its primary subtag counts; NULL means en): the text for that
 * language, else the one for every language, else the English one, else
 * the first; NULL when the list is empty. When lang_out is not NULL it
 * gets the language of the text chosen (NULL for "every language").
 */
const char *pwb_lang_text_pick(const pwb_lang_text *t, size_t n,
			       const char *lang, const char **lang_out);
/* A category's display name in lang (as pwb_lang_text_pick), or its id
 * when the registry gives no name. Never NULL. */
const char *pwb_category_name(const pwb_category_def *c, const char *lang);
/* The registry index of a category id, or -1. */
int pwb_policy_find_category(const pwb_policy *p, const char *id);
/* The category id closest to a misspelt name, close enough to suggest
 * ("did you mean"), or NULL. */
const char *pwb_policy_suggest_category(const pwb_policy *p, const char *name);

/* ---- resolving ---- */

typedef struct pwb_resolve_params {
	const char *org;		  /* org id; required */
	const char *const *jurisdictions; /* added to the org's own */
	size_t n_jurisdictions;
	const pwb_settings *settings; /* NULL: no user settings */
	const pwb_attrs *attrs;	      /* NULL: no attributes */
} pwb_resolve_params;

typedef struct pwb_effective pwb_effective;

/*
 * Resolves law ⊓ org ⊓ user. Fails with PWB_ENOTFOUND for an unknown org or
 * jurisdiction, PWB_EPOLICY when a file it needs has errors, PWB_EINVAL
 * for request input the registry does not know (an unknown attribute, an
 * attribute of the wrong type, an unknown category or dimension in the
 * settings, a value of the wrong type: pwb_attrs_set_* and
 * pwb_settings_parse do not check against a registry, resolve does), and
 * PWB_EBOUNDS when a user setting lies outside the bounds; diag then holds
 * one line naming the tier, source, rule (file:line) and basis that stops
 * it. Results are cached by their inputs; the returned object is shared and
 * immutable, and each one returned must be released with
 * pwb_effective_free().
 */
pwb_status pwb_policy_resolve(pwb_effective **out, pwb_policy *p,
			      const pwb_resolve_params *rp, pwb_diag *diag);

/*
 * Takes one more reference on e, for an object that outlives its creator's
 * (a decision keeps the effective it was made for); each reference is
 * released with pwb_effective_free(). Returns e.
 */
pwb_effective *pwb_effective_ref(const pwb_effective *e);
void pwb_effective_free(pwb_effective *e);

/*
 * The tiers, from the most binding to the least: where two tiers block the
 * same thing, the lower value is the one a refusal names. `registry` is not
 * a tier of bounds: it marks a value no tier set (the registry's default).
 */
typedef enum pwb_tier {
	PWB_TIER_LAW = 0,
	PWB_TIER_ORG = 1,
	PWB_TIER_USER = 2,
	PWB_TIER_REGISTRY = 3
} pwb_tier;

/* "law", "org", "user" or "registry". */
const char *pwb_tier_str(pwb_tier t);

/* Where an effective value comes from. */
typedef struct pwb_provenance {
	pwb_tier tier;
	const char *source; /* "law:de", "org:acme-tutor", "user", "registry" */
	const char *file;   /* NULL for user settings */
	int line;
	const char *basis; /* may be NULL */
} pwb_provenance;

typedef struct pwb_eff_category {
	const char *id;
	pwb_permission permission; /* law ⊓ org, after conditions */
	bool active;		   /* on for this user after their setting */
	int user_setting;	   /* -1 none, 0 off, 1 on (own or inherited) */
	const char *parent;	   /* parent category id, NULL for a root */
	pwb_provenance set_by;	   /* the rule that bounds `permission` */
	const char *condition;	   /* that rule's `when`, NULL if none */
	bool condition_holds;	   /* whether it held for this request */
} pwb_eff_category;

typedef struct pwb_eff_dimension {
	const char *id;
	bool numeric;
	double lo, hi;		    /* numeric: the effective range */
	double def, value;	    /* numeric: default and the user's value */
	const char *const *allowed; /* enum: allowed values; NULL = any */
	size_t n_allowed;
	const char *def_str, *value_str; /* enum */
	bool user_adjustable;
	pwb_provenance set_by;	  /* the rule bounding the range / list */
	pwb_provenance lo_set_by; /* numeric: the rule setting lo */
	pwb_provenance hi_set_by; /* numeric: the rule setting hi */
	pwb_provenance
	    adjustable_set_by; /* who fixed it, when not adjustable */
	pwb_provenance default_set_by;
	pwb_provenance value_set_by; /* "user" when the user set it */
} pwb_eff_dimension;

typedef struct pwb_eff_obligation {
	const char *id;
	const char *kind;     /* disclose_ai, disclaimer, age_verification */
	const char *category; /* for disclaimer and age_verification */
	const char *text;     /* for disclaimer; may be NULL */
	pwb_provenance set_by;
} pwb_eff_obligation;

typedef struct pwb_eff_learning {
	const char *const *forbid_attributes;
	size_t n_forbid_attributes;
	bool requires_consent;
	bool store_texts;
	int retention_days;    /* 0: no limit */
	pwb_provenance set_by; /* the highest tier with a learning block */
	pwb_provenance requires_consent_set_by; /* each field's own rule */
	pwb_provenance store_texts_set_by;
	pwb_provenance retention_set_by;
	/*
	 * Cohort priors (docs/prefs.md): the user attribute, without
	 * "user.", whose value groups consenting users into cohorts (the
	 * org's learning.cohort_attribute, nearest org file first), set by
	 * cohort_set_by. NULL: no cohorts, either because no org names one,
	 * or because a tier of this resolve forbids it and does not allow it
	 * with consent: cohort_refused then names it. When a tier forbids it
	 * but requires consent, cohort_named_consent is true: only a
	 * user's consent that names the attribute counts. cohort_limited_by
	 * is that forbidding rule (the registry when none).
	 */
	const char *cohort_attribute;
	const char *cohort_refused;
	bool cohort_named_consent;
	pwb_provenance cohort_set_by;
	pwb_provenance cohort_limited_by;
} pwb_eff_learning;

const char *pwb_effective_org(const pwb_effective *e);
/* The lowercase hex BLAKE2b-256 of every input that went into e. */
const char *pwb_effective_hash(const pwb_effective *e);
size_t pwb_effective_n_jurisdictions(const pwb_effective *e);
const char *pwb_effective_jurisdiction(const pwb_effective *e, size_t i);
int pwb_effective_candidates(const pwb_effective *e);
/* The org's own system text for the model (`system_prompt` in the org
 * file, or the nearest file it extends), or NULL. */
const char *pwb_effective_system_prompt(const pwb_effective *e);

size_t pwb_effective_n_categories(const pwb_effective *e);
const pwb_eff_category *pwb_effective_category(const pwb_effective *e,
					       size_t i);
/* Looks a category up by id; NULL when the registry has none. */
const pwb_eff_category *pwb_effective_find_category(const pwb_effective *e,
						    const char *id);
size_t pwb_effective_n_dimensions(const pwb_effective *e);
const pwb_eff_dimension *pwb_effective_dimension(const pwb_effective *e,
						 size_t i);
const pwb_eff_dimension *pwb_effective_find_dimension(const pwb_effective *e,
						      const char *id);
size_t pwb_effective_n_obligations(const pwb_effective *e);
const pwb_eff_obligation *pwb_effective_obligation(const pwb_effective *e,
						   size_t i);
const pwb_eff_learning *pwb_effective_learning(const pwb_effective *e);
/* The org's own refusal template for a language (docs/bounds.md), or NULL
 * when the org gives none. */
const char *pwb_effective_refusal_template(const pwb_effective *e,
					   const char *lang);

/*
 * The effective policy as the JSON document of `pwb policy resolve --json`
 * (docs/policy.md). *out is a NUL-terminated string freed with free().
 */
pwb_status pwb_effective_to_json(const pwb_effective *e, char **out);

#ifdef __cplusplus
}
#endif
#endif
