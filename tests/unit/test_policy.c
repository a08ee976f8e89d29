/*
 * test_policy.c - the policy API: loading, resolving, the policy hash, the
 * cache, refusals, settings parsing, and an allocation-failure sweep.
 */
/* cmocka needs these first, in this order. */
/* clang-format off */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
/* clang-format on */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pwb/pwb.h"
#include "util/util.h"

static const char registry[] =
    "registry: test\n"
    "attributes:\n"
    "  user.age: {type: number}\n"
    "  user.religion: {type: string, special: true}\n"
    "categories:\n"
    "  hate: {description: hate}\n"
    "  advice: {description: advice}\n"
    "  advice.health: {description: health advice}\n"
    "  profanity: {description: swearing}\n"
    "  sexual_content: {description: adult}\n"
    "dimensions:\n"
    "  humour: {type: number, default: 0.5}\n"
    "  language: {type: enum, default: en}\n";

static const char law_eu[] =
    "tier: law\n"
    "id: eu\n"
    "categories:\n"
    "  hate: {permission: forbid, basis: \"EU basis\"}\n"
    "obligations:\n"
    "  disclose_ai: {basis: \"AI Act\"}\n"
    "learning: {forbid_attributes: [religion], requires_consent: true}\n";

static const char law_de[] =
    "tier: law\n"
    "id: de\n"
    "extends: eu\n"
    "categories:\n"
    "  sexual_content: {permission: opt_in, when: \"user.age >= 18\", "
    "basis: \"JMStV\"}\n";

static const char org_kids[] =
    "tier: org\n"
    "id: kids\n"
    "jurisdictions: [de]\n"
    "candidates: 3\n"
    "categories:\n"
    "  advice: {permission: forbid, basis: \"for minors\"}\n"
    "  profanity: opt_in\n"
    "dimensions:\n"
    "  humour: {range: [0.0, 0.6], default: 0.2, user_adjustable: true}\n"
    "  language: {allowed: [de, en], default: de, user_adjustable: false, "
    "basis: \"German school\"}\n";

static char dir[] = "/tmp/pwb-test-policy-XXXXXX";

static void write_file(const char *rel, const char *text)
{
	char path[512];
	snprintf(path, sizeof(path), "%s/%s", dir, rel);
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

static int setup(void **state)
{
	(void)state;
	if (!mkdtemp(dir))
		return -1;
	char sub[512];
	snprintf(sub, sizeof(sub), "%s/law", dir);
	mkdir(sub, 0755);
	snprintf(sub, sizeof(sub), "%s/org", dir);
	mkdir(sub, 0755);
	write_file("categories.yaml", registry);
	write_file("law/eu.yaml", law_eu);
	write_file("law/de.yaml", law_de);
	write_file("org/kids.yaml", org_kids);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	char cmd[600];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	return system(cmd) == 0 ? 0 : -1;
}

static pwb_policy *load(void)
{
	pwb_policy *p = NULL;
	pwb_diag d;
	pwb_diag_init(&d);
	pwb_status rc = pwb_policy_load(&p, dir, NULL, &d);
	for (size_t i = 0; i < d.n; i++)
		print_error("%s:%d: %s\n", d.entries[i].file, d.entries[i].line,
			    d.entries[i].message);
	assert_int_equal(rc, PWB_OK);
	assert_int_equal(d.n, 0);
	pwb_diag_release(&d);
	return p;
}

static pwb_effective *resolve(pwb_policy *p, const pwb_settings *s,
			      const pwb_attrs *a, pwb_status want, char *msg,
			      size_t msg_size)
{
	pwb_effective *e = NULL;
	pwb_diag d;
	pwb_diag_init(&d);
	pwb_resolve_params rp = {"kids", NULL, 0, s, a};
	pwb_status rc = pwb_policy_resolve(&e, p, &rp, &d);
	assert_int_equal(rc, want);
	if (msg && d.n)
		snprintf(msg, msg_size, "%s", d.entries[0].message);
	pwb_diag_release(&d);
	return e;
}

static void test_resolve(void **state)
{
	(void)state;
	pwb_policy *p = load();
	assert_int_equal(pwb_policy_n_orgs(p), 1);
	assert_string_equal(pwb_policy_org_id(p, 0), "kids");
	pwb_effective *e = resolve(p, NULL, NULL, PWB_OK, NULL, 0);
	assert_string_equal(pwb_effective_org(e), "kids");
	assert_int_equal(pwb_effective_candidates(e), 3);
	assert_int_equal(pwb_effective_n_jurisdictions(e), 2);
	assert_string_equal(pwb_effective_jurisdiction(e, 0), "eu");
	assert_string_equal(pwb_effective_jurisdiction(e, 1), "de");
	assert_int_equal(pwb_effective_n_categories(e), 5);
	const pwb_eff_category *c = pwb_effective_find_category(e, "hate");
	assert_int_equal(c->permission, PWB_FORBID);
	assert_string_equal(c->set_by.source, "law:eu");
	assert_string_equal(c->set_by.basis, "EU basis");
	c = pwb_effective_find_category(e, "advice.health");
	assert_int_equal(c->permission, PWB_FORBID);
	assert_string_equal(c->set_by.source, "org:kids");
	assert_string_equal(c->parent, "advice");
	c = pwb_effective_find_category(e, "sexual_content");
	assert_int_equal(c->permission, PWB_FORBID); /* age unknown */
	assert_false(c->condition_holds);
	c = pwb_effective_find_category(e, "profanity");
	assert_int_equal(c->permission, PWB_OPT_IN);
	assert_false(c->active);
	const pwb_eff_dimension *d = pwb_effective_find_dimension(e, "humour");
	assert_true(d->numeric);
	assert_true(d->lo == 0.0 && d->hi == 0.6 && d->def == 0.2);
	assert_true(d->user_adjustable);
	d = pwb_effective_find_dimension(e, "language");
	assert_int_equal(d->n_allowed, 2);
	assert_string_equal(d->value_str, "de");
	assert_false(d->user_adjustable);
	assert_int_equal(pwb_effective_n_obligations(e), 1);
	assert_string_equal(pwb_effective_obligation(e, 0)->id, "disclose_ai");
	const pwb_eff_learning *l = pwb_effective_learning(e);
	assert_int_equal(l->n_forbid_attributes, 1);
	assert_true(l->requires_consent);
	char *json = NULL;
	assert_int_equal(pwb_effective_to_json(e, &json), PWB_OK);
	assert_non_null(strstr(json, "\"policy_hash\""));
	assert_non_null(strstr(json, "\"advice.health\""));
	free(json);
	pwb_effective_free(e);
	pwb_policy_free(p);
}

static void test_user_settings(void **state)
{
	(void)state;
	pwb_policy *p = load();
	pwb_settings *s;
	pwb_attrs *a;
	char msg[1024] = "";
	assert_int_equal(pwb_settings_new(&s), PWB_OK);
	assert_int_equal(pwb_attrs_new(&a), PWB_OK);
	/* opt_in on: active; humour inside the range: taken as is. */
	pwb_settings_set_category(s, "profanity", true);
	pwb_settings_set_number(s, "humour", 0.5);
	pwb_effective *e = resolve(p, s, a, PWB_OK, NULL, 0);
	assert_true(pwb_effective_find_category(e, "profanity")->active);
	assert_true(pwb_effective_find_dimension(e, "humour")->value == 0.5);
	assert_int_equal(
	    pwb_effective_find_dimension(e, "humour")->value_set_by.tier,
	    PWB_TIER_USER);
	pwb_effective_free(e);
	/* Out of range: refused with the rule, never clamped. */
	pwb_settings_set_number(s, "humour", 0.9);
	e = resolve(p, s, a, PWB_EBOUNDS, msg, sizeof(msg));
	assert_null(e);
	assert_non_null(strstr(msg, "humour: 0.9"));
	assert_non_null(strstr(msg, "tier org, source org:kids, rule"));
	assert_non_null(strstr(msg, "org/kids.yaml:9"));
	pwb_settings_set_number(s, "humour", 0.1);
	/* Not adjustable. */
	pwb_settings_set_string(s, "language", "en");
	e = resolve(p, s, a, PWB_EBOUNDS, msg, sizeof(msg));
	assert_non_null(strstr(msg, "not user adjustable"));
	assert_non_null(strstr(msg, "basis \"German school\""));
	pwb_settings_free(s);
	/* A forbidden category turned on: refused, with the condition. */
	assert_int_equal(pwb_settings_new(&s), PWB_OK);
	pwb_settings_set_category(s, "sexual_content", true);
	pwb_attrs_set_number(a, "user.age", 15);
	e = resolve(p, s, a, PWB_EBOUNDS, msg, sizeof(msg));
	assert_non_null(strstr(msg, "tier law, source law:de"));
	assert_non_null(strstr(msg, "basis \"JMStV\""));
	assert_non_null(strstr(msg, "user.age >= 18"));
	/* An adult may turn it on. */
	pwb_attrs_set_number(a, "user.age", 30);
	e = resolve(p, s, a, PWB_OK, NULL, 0);
	assert_true(pwb_effective_find_category(e, "sexual_content")->active);
	pwb_effective_free(e);
	/* Switching off a forbidden category is accepted. */
	pwb_settings_set_category(s, "hate", false);
	pwb_settings_set_category(s, "sexual_content", false);
	e = resolve(p, s, a, PWB_OK, NULL, 0);
	assert_false(pwb_effective_find_category(e, "hate")->active);
	pwb_effective_free(e);
	/* Unknown names are errors with a suggestion. */
	pwb_settings_set_category(s, "hat", false);
	e = resolve(p, s, a, PWB_EINVAL, msg, sizeof(msg));
	assert_non_null(strstr(msg, "did you mean 'hate'"));
	pwb_settings_free(s);
	pwb_attrs_free(a);
	assert_int_equal(pwb_attrs_new(&a), PWB_OK);
	pwb_attrs_set_text(a, "user.age", "old");
	e = resolve(p, NULL, a, PWB_EINVAL, msg, sizeof(msg));
	assert_non_null(strstr(msg, "is a number, not a string"));
	pwb_attrs_free(a);
	pwb_policy_free(p);
}

static void hash_of(pwb_policy *p, const pwb_settings *s, const pwb_attrs *a,
		    char out[65])
{
	pwb_effective *e = resolve(p, s, a, PWB_OK, NULL, 0);
	assert_int_equal(strlen(pwb_effective_hash(e)), 64);
	memcpy(out, pwb_effective_hash(e), 65);
	pwb_effective_free(e);
}

static void test_hash_and_cache(void **state)
{
	(void)state;
	pwb_policy *p = load();
	char h1[65], h2[65], h3[65], h4[65], h5[65];
	hash_of(p, NULL, NULL, h1);
	/* The cache hands out the same object for the same inputs. */
	pwb_effective *e1 = resolve(p, NULL, NULL, PWB_OK, NULL, 0);
	pwb_effective *e2 = resolve(p, NULL, NULL, PWB_OK, NULL, 0);
	assert_ptr_equal(e1, e2);
	pwb_effective_free(e1);
	pwb_effective_free(e2);
	/* Settings in another order give the same hash; other values not. */
	pwb_settings *s1, *s2;
	pwb_settings_new(&s1);
	pwb_settings_new(&s2);
	pwb_settings_set_category(s1, "profanity", true);
	pwb_settings_set_number(s1, "humour", 0.3);
	pwb_settings_set_number(s2, "humour", 0.3);
	pwb_settings_set_category(s2, "profanity", true);
	hash_of(p, s1, NULL, h2);
	hash_of(p, s2, NULL, h3);
	assert_string_equal(h2, h3);
	assert_string_not_equal(h1, h2);
	pwb_attrs *a;
	pwb_attrs_new(&a);
	pwb_attrs_set_number(a, "user.age", 40);
	hash_of(p, s1, a, h4);
	assert_string_not_equal(h2, h4);
	pwb_policy_free(p);
	/* One changed byte of a file changes the hash. */
	char changed[sizeof(law_eu) + 8];
	snprintf(changed, sizeof(changed), "%s# x\n", law_eu);
	write_file("law/eu.yaml", changed);
	p = load();
	hash_of(p, s1, a, h5);
	assert_string_not_equal(h4, h5);
	pwb_policy_free(p);
	write_file("law/eu.yaml", law_eu);
	p = load();
	hash_of(p, s1, a, h5);
	assert_string_equal(h4, h5);
	pwb_policy_free(p);
	pwb_settings_free(s1);
	pwb_settings_free(s2);
	pwb_attrs_free(a);
}

static void test_settings_parse(void **state)
{
	(void)state;
	pwb_settings *s = NULL;
	pwb_diag d;
	pwb_diag_init(&d);
	const char ok[] = "{\"categories\": {\"profanity\": \"on\"}, "
			  "\"dimensions\": {\"humour\": 0.5, \"language\": "
			  "\"en\"}}";
	assert_int_equal(pwb_settings_parse(&s, ok, strlen(ok), "s.json", &d),
			 PWB_OK);
	pwb_settings_free(s);
	const char *bad[] = {
	    "{\"categories\": {\"profanity\": true}}",
	    "{\"categories\": {\"profanity\": \"yes\"}}",
	    "{\"colour\": 1}",
	    "{\"dimensions\": {\"humour\": [1]}}",
	    "[1, 2]",
	    "{\"categories\": ",
	    "{\"categories\": {}, \"categories\": {}}",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
		pwb_diag_clear(&d);
		s = (pwb_settings *)1;
		assert_int_not_equal(pwb_settings_parse(&s, bad[i],
							strlen(bad[i]),
							"s.json", &d),
				     PWB_OK);
		assert_null(s);
		assert_true(d.n >= 1);
		assert_string_equal(d.entries[0].file, "s.json");
	}
	pwb_diag_release(&d);
}

/* Fail the 1st, 2nd, ... allocation of load + resolve + JSON: each run must
 * fail cleanly (ENOMEM) or succeed, and ASan checks that nothing leaks. */
static void test_alloc_failure_sweep(void **state)
{
	(void)state;
	pwb_settings *s;
	pwb_attrs *a;
	pwb_settings_new(&s);
	pwb_attrs_new(&a);
	pwb_settings_set_category(s, "profanity", true);
	pwb_attrs_set_number(a, "user.age", 20);
	/* The result with no failure, to compare every absorbed one with. */
	char *want = NULL;
	{
		pwb_policy *p = NULL;
		pwb_effective *e = NULL;
		assert_int_equal(pwb_policy_load(&p, dir, NULL, NULL), PWB_OK);
		pwb_resolve_params rp = {"kids", NULL, 0, s, a};
		assert_int_equal(pwb_policy_resolve(&e, p, &rp, NULL), PWB_OK);
		assert_int_equal(pwb_effective_to_json(e, &want), PWB_OK);
		pwb_effective_free(e);
		pwb_policy_free(p);
	}
	long n_ok = 0, n_fail = 0;
	for (long k = 1; k < 100000; k++) {
		pwb__alloc_count = 0;
		pwb__alloc_fail_at = k;
		pwb_policy *p = NULL;
		pwb_effective *e = NULL;
		char *json = NULL;
		pwb_diag d;
		pwb_diag_init(&d);
		pwb_status rc = pwb_policy_load(&p, dir, NULL, &d);
		if (p && rc == PWB_OK) {
			pwb_resolve_params rp = {"kids", NULL, 0, s, a};
			rc = pwb_policy_resolve(&e, p, &rp, &d);
			if (!rc)
				rc = pwb_effective_to_json(e, &json);
		}
		bool reached = pwb__alloc_count >= k;
		pwb__alloc_fail_at = 0;
		/* A failure is a failure for want of memory, said so; a
		 * success is the very same effective policy. */
		if (rc != PWB_OK && rc != PWB_ENOMEM)
			fail_msg("failing allocation %ld gave status %d (%s)",
				 k, rc, d.n ? d.entries[0].message : "");
		if (rc == PWB_OK && (!json || strcmp(json, want) != 0))
			fail_msg("failing allocation %ld was absorbed, but the "
				 "effective policy differs",
				 k);
		free(json);
		pwb_effective_free(e);
		pwb_policy_free(p);
		pwb_diag_release(&d);
		if (!reached) {
			/* Every allocation succeeded: the sweep is done. */
			assert_int_equal(rc, PWB_OK);
			break;
		}
		if (rc == PWB_OK)
			n_ok++;
		else
			n_fail++;
	}
	/* Most failure points must surface as an error, not be ignored. */
	assert_true(n_fail > 50);
	print_message("allocation sweep: %ld failures handled, %ld absorbed\n",
		      n_fail, n_ok);
	free(want);
	pwb_settings_free(s);
	pwb_attrs_free(a);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_resolve),
	    cmocka_unit_test(test_user_settings),
	    cmocka_unit_test(test_hash_and_cache),
	    cmocka_unit_test(test_settings_parse),
	    cmocka_unit_test(test_alloc_failure_sweep),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
