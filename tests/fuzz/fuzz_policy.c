/*
 * fuzz_policy.c - libFuzzer target for the policy loader and resolver.
 *
 * Once per process, a policy folder is made under $TMPDIR (mkdtemp) with a
 * small valid set: a registry (categories.yaml) with a parent and a child
 * category, a numeric and two enum dimensions and a few attributes; two law
 * files (`child` extends `base`) and one org (`fixed`). Each input replaces
 * one file of that set, chosen by its first byte:
 *
 *   'o' (or byte % 4 == 0)  a second org file, org/fuzz.yaml
 *   'l' (or byte % 4 == 1)  the law file law/base.yaml that the others use
 *   'r' (or byte % 4 == 2)  the registry, categories.yaml
 *   'x' (or byte % 4 == 3)  an extra law file, law/fuzz.yaml, added to the
 *                           resolve as jurisdiction "fuzz"
 *
 * The rest of the input is the file's content. The folder is loaded with
 * pwb_policy_load(); when a set comes back, every org (up to four) is
 * resolved twice (cold, then from the cache) with request attributes and,
 * depending on the input's length, some user settings; each effective
 * policy is serialised with pwb_effective_to_json(). Everything is freed.
 *
 * Beyond memory errors and leaks, the target aborts when a contract of
 * include/pwb/policy.h breaks: a status without the diagnostics it
 * promises, a forbidden category that is active, a dimension value outside
 * its range or allowed list, JSON that does not parse, or a cached resolve
 * that differs from the cold one.
 *
 * Build with -DPWB_FUZZ=ON and CC=clang; see tests/fuzz/run.sh.
 */
#include "pwb/policy.h"

#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- the fixed policy set ---- */

static const char registry_yaml[] =
    "registry: fuzz\n"
    "version: \"1\"\n"
    "attributes:\n"
    "  user.age: {type: number, description: \"age in years\"}\n"
    "  user.age_verified: {type: bool}\n"
    "  user.country: {type: string}\n"
    "  user.consent: {type: list}\n"
    "  user.religion: {type: string, special: true}\n"
    "  org.sector: {type: string}\n"
    "  request.role: {type: string}\n"
    "categories:\n"
    "  hate:\n"
    "    description: \"hate\"\n"
    "    ailuminate: hte\n"
    "    llama_guard: S10\n"
    "    detectors: {lexicon: {threshold: 0.5}}\n"
    "  specialized_advice: {description: \"advice\"}\n"
    "  specialized_advice.health:\n"
    "    description: \"health advice\"\n"
    "    parent: specialized_advice\n"
    "    detectors: {lexicon: {threshold: 0.6}, pii: ~}\n"
    "  sexual_content: {description: \"explicit\"}\n"
    "  profanity: {description: \"swearing\"}\n"
    "dimensions:\n"
    "  humour: {type: number, default: 0.3, description: \"jokes\"}\n"
    "  language: {type: enum, default: en}\n"
    "  viewpoint: {type: enum, values: [balanced, as_requested], "
    "default: balanced}\n";

static const char law_base_yaml[] =
    "tier: law\n"
    "id: base\n"
    "name: Base\n"
    "version: \"1\"\n"
    "categories:\n"
    "  hate: {permission: forbid, basis: \"a statute\"}\n"
    "  sexual_content:\n"
    "    permission: opt_in\n"
    "    when: \"user.age >= 18 && user.age_verified\"\n"
    "    else: forbid\n"
    "    basis: \"minors\"\n"
    "dimensions:\n"
    "  humour: {range: [0.0, 0.8], default: 0.2, user_adjustable: true}\n"
    "  language: {allowed: [de, en, fr], default: de}\n"
    "obligations:\n"
    "  disclose_ai: {basis: \"AI Act\"}\n"
    "learning:\n"
    "  forbid_attributes: [religion]\n"
    "  requires_consent: true\n"
    "  retention_days: 365\n"
    "  basis: \"GDPR\"\n";

static const char law_child_yaml[] =
    "tier: law\n"
    "id: child\n"
    "name: Child\n"
    "extends: base\n"
    "categories:\n"
    "  profanity: opt_out\n"
    "obligations:\n"
    "  adult_check: {kind: age_verification, category: sexual_content}\n";

static const char org_fixed_yaml[] =
    "tier: org\n"
    "id: fixed\n"
    "name: Fixed\n"
    "jurisdictions: [child]\n"
    "candidates: 2\n"
    "attributes: {sector: education}\n"
    "categories:\n"
    "  specialized_advice: opt_out\n"
    "  specialized_advice.health: {permission: opt_in, basis: \"x\"}\n"
    "  profanity:\n"
    "    permission: opt_out\n"
    "    when: \"org.sector == 'education' && user.country in ['DE']\"\n"
    "    else: opt_in\n"
    "dimensions:\n"
    "  humour: {range: [0.1, 0.6], default: 0.3, user_adjustable: true}\n"
    "  viewpoint: {allowed: [balanced], user_adjustable: false}\n"
    "obligations:\n"
    "  health_note:\n"
    "    kind: disclaimer\n"
    "    category: specialized_advice.health\n"
    "    text: \"Not medical advice.\"\n"
    "learning: {store_texts: false, retention_days: 30}\n";

/* User settings, chosen by the input's length: none, a category on, a
 * category off and two dimensions, and settings some sets refuse. */
static const char *const settings_json[] = {
    NULL,
    "{\"categories\": {\"sexual_content\": \"on\", \"profanity\": "
    "\"on\"}}",
    "{\"categories\": {\"specialized_advice\": \"off\"}, "
    "\"dimensions\": {\"humour\": 0.5, \"language\": \"en\"}}",
    "{\"categories\": {\"hate\": \"on\"}, \"dimensions\": "
    "{\"viewpoint\": \"as_requested\", \"humour\": 0.9}}",
};

enum { MODE_ORG, MODE_LAW, MODE_REGISTRY, MODE_EXTRA_LAW, MODE_N };

static const char *const mode_files[MODE_N] = {
    "org/fuzz.yaml", "law/base.yaml", "categories.yaml", "law/fuzz.yaml"};

static char root[256];
static int last_mode = -1;

static void die(const char *what)
{
	fprintf(stderr, "fuzz_policy: %s\n", what);
	abort();
}

static void path_of(char *buf, size_t size, const char *rel)
{
	snprintf(buf, size, "%s/%s", root, rel);
}

static void write_file(const char *rel, const void *data, size_t len)
{
	char path[512];
	path_of(path, sizeof(path), rel);
	FILE *f = fopen(path, "wb");
	if (!f)
		die("cannot write a file in the temporary policy folder");
	if (len && fwrite(data, 1, len, f) != len)
		die("short write in the temporary policy folder");
	if (fclose(f) != 0)
		die("cannot close a file in the temporary policy folder");
}

static void remove_file(const char *rel)
{
	char path[512];
	path_of(path, sizeof(path), rel);
	unlink(path);
}

static void cleanup(void)
{
	static const char *const files[] = {"categories.yaml", "law/base.yaml",
					    "law/child.yaml",  "law/fuzz.yaml",
					    "org/fixed.yaml",  "org/fuzz.yaml"};
	char path[512];
	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++)
		remove_file(files[i]);
	path_of(path, sizeof(path), "law");
	rmdir(path);
	path_of(path, sizeof(path), "org");
	rmdir(path);
	rmdir(root);
}

static void setup(void)
{
	const char *tmp = getenv("TMPDIR");
	snprintf(root, sizeof(root), "%s/pwb-fuzz-policy-XXXXXX",
		 tmp && *tmp ? tmp : "/tmp");
	if (!mkdtemp(root))
		die("mkdtemp failed");
	char path[512];
	path_of(path, sizeof(path), "law");
	if (mkdir(path, 0700) != 0)
		die("cannot make law/");
	path_of(path, sizeof(path), "org");
	if (mkdir(path, 0700) != 0)
		die("cannot make org/");
	write_file("categories.yaml", registry_yaml, strlen(registry_yaml));
	write_file("law/base.yaml", law_base_yaml, strlen(law_base_yaml));
	write_file("law/child.yaml", law_child_yaml, strlen(law_child_yaml));
	write_file("org/fixed.yaml", org_fixed_yaml, strlen(org_fixed_yaml));
	atexit(cleanup);
}

/* Puts back the fixed file the previous input replaced. */
static void restore(int mode)
{
	switch (mode) {
	case MODE_ORG:
	case MODE_EXTRA_LAW:
		remove_file(mode_files[mode]);
		break;
	case MODE_LAW:
		write_file("law/base.yaml", law_base_yaml,
			   strlen(law_base_yaml));
		break;
	case MODE_REGISTRY:
		write_file("categories.yaml", registry_yaml,
			   strlen(registry_yaml));
		break;
	}
}

static int mode_of(uint8_t b)
{
	switch (b) {
	case 'o':
		return MODE_ORG;
	case 'l':
		return MODE_LAW;
	case 'r':
		return MODE_REGISTRY;
	case 'x':
		return MODE_EXTRA_LAW;
	default:
		return b % MODE_N;
	}
}

/* ---- invariants ---- */

static void check_diag(const pwb_diag *d, bool need_file)
{
	for (size_t i = 0; i < d->n; i++) {
		const pwb_diag_entry *e = &d->entries[i];
		if (!e->message || !e->message[0])
			die("a diagnostic without a message");
		if (need_file && !e->file)
			die("a load diagnostic that names no file");
		if (e->line < 0 || e->col < 0)
			die("a diagnostic with a negative position");
		char line[64];
		pwb_diag_format(e, line, sizeof(line));
	}
}

static bool prov_ok(const pwb_provenance *pv)
{
	return pv->source && (unsigned)pv->tier <= PWB_TIER_REGISTRY;
}

static void check_effective(const pwb_effective *e)
{
	for (size_t i = 0; i < pwb_effective_n_categories(e); i++) {
		const pwb_eff_category *c = pwb_effective_category(e, i);
		if (!c || !c->id || !prov_ok(&c->set_by))
			die("a category without id or provenance");
		if (c->permission > PWB_ALLOW)
			die("a permission outside the lattice");
		if (c->permission == PWB_FORBID && c->active)
			die("a forbidden category is active");
		if (c->permission == PWB_OPT_IN && c->active &&
		    c->user_setting != 1)
			die("an opt_in category is active without the user");
		if (c->user_setting == 0 && c->active)
			die("a category the user switched off is active");
		if (pwb_effective_find_category(e, c->id) != c)
			die("find_category does not find a category");
		if (c->parent) {
			const pwb_eff_category *p =
			    pwb_effective_find_category(e, c->parent);
			if (!p)
				die("a category's parent is not in the set");
			if (c->permission > p->permission)
				die("a child is looser than its parent");
		}
	}
	for (size_t i = 0; i < pwb_effective_n_dimensions(e); i++) {
		const pwb_eff_dimension *d = pwb_effective_dimension(e, i);
		if (!d || !d->id || !prov_ok(&d->set_by) ||
		    !prov_ok(&d->value_set_by) || !prov_ok(&d->default_set_by))
			die("a dimension without id or provenance");
		if (d->numeric) {
			if (!(d->lo >= 0 && d->lo <= d->hi && d->hi <= 1))
				die("a numeric range outside [0, 1]");
			if (!(d->def >= d->lo && d->def <= d->hi))
				die("a default outside its range");
			if (!(d->value >= d->lo && d->value <= d->hi))
				die("a value outside its range");
			continue;
		}
		if (!d->def_str || !d->value_str)
			die("an enum dimension without default or value");
		if (!d->allowed)
			continue;
		bool def_in = false, value_in = false;
		for (size_t k = 0; k < d->n_allowed; k++) {
			def_in |= strcmp(d->allowed[k], d->def_str) == 0;
			value_in |= strcmp(d->allowed[k], d->value_str) == 0;
		}
		if (!def_in || !value_in)
			die("an enum default or value outside its list");
	}
	for (size_t i = 0; i < pwb_effective_n_obligations(e); i++) {
		const pwb_eff_obligation *o = pwb_effective_obligation(e, i);
		if (!o || !o->id || !o->kind || !prov_ok(&o->set_by))
			die("an obligation without id, kind or provenance");
	}
	const pwb_eff_learning *l = pwb_effective_learning(e);
	if (!l || l->retention_days < 0 || !prov_ok(&l->set_by) ||
	    !prov_ok(&l->requires_consent_set_by) ||
	    !prov_ok(&l->store_texts_set_by) || !prov_ok(&l->retention_set_by))
		die("learning restrictions without provenance");
	if (strlen(pwb_effective_hash(e)) != 64)
		die("a policy hash that is not 64 hex digits");
}

static char *to_json(const pwb_effective *e)
{
	char *json = NULL;
	if (pwb_effective_to_json(e, &json) || !json)
		die("pwb_effective_to_json failed on a resolved policy");
	json_error_t err;
	json_t *j = json_loads(json, 0, &err);
	if (!j) {
		fprintf(stderr, "%s\n%s at %d:%d\n", json, err.text, err.line,
			err.column);
		die("pwb_effective_to_json wrote JSON that does not parse");
	}
	json_decref(j);
	return json;
}

/* ---- one input ---- */

static void resolve_org(pwb_policy *p, const char *org,
			const pwb_settings *settings, const pwb_attrs *attrs,
			bool extra)
{
	static const char *const jur[] = {"fuzz"};
	pwb_resolve_params rp = {org, jur, extra ? 1 : 0, settings, attrs};
	pwb_diag d;
	pwb_diag_init(&d);
	pwb_effective *e = NULL;
	pwb_status st = pwb_policy_resolve(&e, p, &rp, &d);
	check_diag(&d, false);
	if (st) {
		if (e)
			die("a failed resolve returned a policy");
		if (st != PWB_ENOMEM && !d.n && !d.dropped)
			die("a failed resolve gave no diagnostic");
		pwb_diag_release(&d);
		return;
	}
	if (!e)
		die("a successful resolve returned no policy");
	if (strcmp(pwb_effective_org(e), org) != 0)
		die("the effective policy names another org");
	check_effective(e);
	char *cold = to_json(e);

	/* The same inputs again: served by the cache, the same policy. */
	pwb_effective *e2 = NULL;
	pwb_diag_clear(&d);
	if (pwb_policy_resolve(&e2, p, &rp, &d) || !e2)
		die("a repeated resolve failed");
	char *warm = to_json(e2);
	if (strcmp(cold, warm) != 0)
		die("a repeated resolve gave a different policy");
	free(warm);
	free(cold);
	pwb_effective_free(e2);
	pwb_effective_free(e);
	pwb_diag_release(&d);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!root[0])
		setup();
	if (size < 1)
		return 0;
	int mode = mode_of(data[0]);
	if (last_mode >= 0 && last_mode != mode)
		restore(last_mode);
	last_mode = mode;
	write_file(mode_files[mode], data + 1, size - 1);

	pwb_settings *settings = NULL;
	const char *sj = settings_json[size % 4];
	if (sj &&
	    pwb_settings_parse(&settings, sj, strlen(sj), "settings", NULL))
		die("the fixed settings do not parse");
	pwb_attrs *attrs = NULL;
	if (pwb_attrs_new(&attrs) ||
	    pwb_attrs_set_number(attrs, "user.age", size % 2 ? 30 : 16) ||
	    pwb_attrs_set_bool(attrs, "user.age_verified", true) ||
	    pwb_attrs_set_string(attrs, "user.country", "DE"))
		die("cannot set the fixed attributes");

	pwb_policy_params pp = pwb_policy_default_params();
	pp.cache_entries = 8;
	pwb_diag d;
	pwb_diag_init(&d);
	pwb_policy *p = NULL;
	pwb_status st = pwb_policy_load(&p, root, &pp, &d);
	check_diag(&d, true);
	if (st == PWB_OK || st == PWB_EPOLICY) {
		if (!p)
			die("a load that returned a set returned NULL");
		if (st == PWB_OK && (d.n || d.dropped))
			die("a valid set came with diagnostics");
		if (st == PWB_EPOLICY && !d.n && !d.dropped)
			die("an invalid set came without diagnostics");
		size_t n = pwb_policy_n_orgs(p);
		for (size_t i = 0; i < n && i < 4; i++) {
			const char *org = pwb_policy_org_id(p, i);
			if (!org)
				die("pwb_policy_org_id returned NULL");
			resolve_org(p, org, settings, attrs,
				    mode == MODE_EXTRA_LAW);
		}
		if (pwb_policy_org_id(p, n) != NULL)
			die("pwb_policy_org_id past the end is not NULL");
		resolve_org(p, "no-such-org", NULL, NULL, false);
	} else if (p) {
		die("a failed load returned a set");
	}
	pwb_policy_free(p);
	pwb_diag_release(&d);
	pwb_settings_free(settings);
	pwb_attrs_free(attrs);
	return 0;
}
