/*
 * test_prefs.c - the preference learner: measured dimensions, learning
 * from choices, bounded learning (categories not on never gain a
 * positive weight), explicit targets, the memory cap, explanation and
 * reset, model files and blobs (corrupt, truncated, future), duplicate
 * events, the evaluation on simulated users (personal beats population
 * when users differ, equals it when they do not), one error channel
 * (every failure leaves a message in the pwb_diag), and
 * allocation-failure sweeps over update, serialisation and evaluation.
 *
 * PWB_PREFS_FUZZ_SEEDS=DIR makes test_write_fuzz_seeds write the seed
 * models of tests/fuzz/corpus/prefs.
 */
/* cmocka needs these first, in this order. */
/* clang-format off */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
/* clang-format on */

#include <dirent.h>
#include <math.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "prefs/prefs_int.h"

bool pwb__prefs_markers_sorted(void);

static char dir[256];

static int setup(void **state)
{
	(void)state;
	const char *tmp = getenv("TMPDIR");
	snprintf(dir, sizeof(dir), "%s/pwb-test-prefs-XXXXXX",
		 tmp && *tmp ? tmp : "/tmp");
	return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
	(void)state;
	char cmd[512];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	return system(cmd) == 0 ? 0 : -1;
}

static const char *const cats[] = {"profanity", "hate", "sexual_content"};

static pwb_prefs_model *new_model(void)
{
	pwb_prefs_params p = pwb_prefs_default_params();
	p.hash_bits = 12;
	p.categories = cats;
	p.n_categories = 3;
	pwb_prefs_model *m = NULL;
	assert_int_equal(pwb_prefs_model_new(&m, &p, NULL), PWB_OK);
	return m;
}

static void feats(pwb_prefs_features *f, const pwb_prefs_model *m,
		  const char *text, const double *scores)
{
	assert_int_equal(pwb_prefs_features_compute(f, m, text, strlen(text),
						    scores, NULL, NULL),
			 PWB_OK);
}

static double score1(const pwb_prefs_model *m, const char *user,
		     const pwb_prefs_features *f, const pwb_prefs_bounds *b,
		     pwb_prefs_scorer how)
{
	double s;
	pwb_prefs_score(m, user, f, 1, b, how, &s);
	return s;
}

/* ---- features ---- */

static void test_markers_sorted(void **state)
{
	(void)state;
	assert_true(pwb__prefs_markers_sorted());
}

static void test_dimensions(void **state)
{
	(void)state;
	pwb_prefs_model *m = new_model();
	pwb_prefs_features a, b;

	feats(&a, m, "Yes.", NULL);
	feats(&b, m,
	      "The committee met on Tuesday to discuss the budget. It agreed "
	      "on three points after a long debate about schools, roads and "
	      "the library, and it will meet again next month to vote.",
	      NULL);
	assert_true(a.dims[PWB_PREFS_VERBOSITY] < b.dims[PWB_PREFS_VERBOSITY]);
	for (int k = 0; k < PWB_PREFS_N_DIMS; k++) {
		assert_true(a.dims[k] >= 0 && a.dims[k] <= 1);
		assert_true(b.dims[k] >= 0 && b.dims[k] <= 1);
	}

	feats(&a, m,
	      "Regarding your request, please note that we shall therefore "
	      "ensure sufficient time.",
	      NULL);
	feats(&b, m, "Hey, yeah, that's cool stuff, gonna be okay lol!", NULL);
	assert_true(a.dims[PWB_PREFS_FORMALITY] > 0.6);
	assert_true(b.dims[PWB_PREFS_FORMALITY] < 0.4);
	assert_true(b.dims[PWB_PREFS_HUMOUR] > a.dims[PWB_PREFS_HUMOUR]);
	assert_true(b.dims[PWB_PREFS_EXCLAMATION] > 0);

	/* Contractions, with ' or ’, are informal; a lone ’ is not. */
	feats(&a, m, "I do not know", NULL);
	feats(&b, m, "I don\xe2\x80\x99t know", NULL);
	assert_float_equal(a.dims[PWB_PREFS_FORMALITY], 0.5, 1e-6);
	assert_float_equal(b.dims[PWB_PREFS_FORMALITY], 0.25, 1e-6);
	feats(&b, m, "I don't know", NULL);
	assert_float_equal(b.dims[PWB_PREFS_FORMALITY], 0.25, 1e-6);
	feats(&b, m, "\xe2\x80\x99quoted\xe2\x80\x99 \xe2\x80\x99", NULL);
	assert_float_equal(b.dims[PWB_PREFS_FORMALITY], 0.5, 1e-6);

	feats(&a, m, "Great job \xf0\x9f\x98\x8a \xf0\x9f\x91\x8d", NULL);
	assert_float_equal(a.dims[PWB_PREFS_EMOJI], 2.0 / 3, 1e-6);
	feats(&a, m, "Steps:\n- one\n- two\n1. three", NULL);
	assert_float_equal(a.dims[PWB_PREFS_LISTS], 0.75, 1e-6);
	feats(&a, m, "Maybe it might perhaps work? Does it?", NULL);
	assert_true(a.dims[PWB_PREFS_HEDGING] > 0.7);
	assert_true(a.dims[PWB_PREFS_DIRECTNESS] < 0.5);
	assert_float_equal(a.dims[PWB_PREFS_QUESTIONS], 2.0 / 3, 1e-6);
	feats(&a, m, "# Title\n**bold** and `code`", NULL);
	assert_true(a.dims[PWB_PREFS_MARKDOWN] > 0.5);

	/* The sparse vector is sorted, within the model's space, and its
	 * n-gram part has unit length. */
	feats(&a, m, "the cat sat on the mat and the cat slept", NULL);
	double ss = 0;
	for (uint32_t k = 0; k < a.n; k++) {
		if (k)
			assert_true(a.idx[k] > a.idx[k - 1]);
		assert_true(a.idx[k] < m->dim);
		if (a.idx[k] >= m->base)
			ss += (double)a.val[k] * a.val[k];
	}
	assert_float_equal(ss, 1.0, 1e-5);

	/* Bad input: empty text, a score out of range, odd bytes. */
	pwb_diag d;
	pwb_diag_init(&d);
	assert_int_equal(
	    pwb_prefs_features_compute(&a, m, "", 0, NULL, NULL, &d),
	    PWB_EINVAL);
	double bad[3] = {0, 1.5, 0};
	assert_int_equal(
	    pwb_prefs_features_compute(&a, m, "x", 1, bad, NULL, &d),
	    PWB_EINVAL);
	assert_int_equal(d.n, 2);
	assert_non_null(strstr(d.entries[1].message, "hate"));
	pwb_diag_release(&d);
	/* Random texts over the bytes the measures look at: every one
	 * measured, every value in [0, 1]. */
	static const unsigned char alphabet[] = {
	    'a',  'B',	'e',  '1',  ' ',  '\n', '\'', '.',  '!',  '?',
	    '-',  '*',	'#',  '`',  ':',  ')',	'|',  0xE2, 0x80, 0x99,
	    0xF0, 0x9F, 0x98, 0x8A, 0xAD, 0x90, 0xFF, 0x00};
	uint64_t seed = 7;
	char rnd[300];
	for (int r = 0; r < 3000; r++) {
		seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
		size_t n = 1 + (size_t)(seed >> 33) % sizeof(rnd);
		for (size_t k = 0; k < n; k++) {
			seed = seed * 6364136223846793005ULL +
			       1442695040888963407ULL;
			rnd[k] =
			    (char)alphabet[(seed >> 33) % sizeof(alphabet)];
		}
		assert_int_equal(
		    pwb_prefs_features_compute(&a, m, rnd, n, NULL, NULL, NULL),
		    PWB_OK);
		for (int k = 0; k < PWB_PREFS_N_DIMS; k++)
			assert_true(a.dims[k] >= 0 && a.dims[k] <= 1);
	}
	const char odd[] = "a\0b\xff\xfe\xf0\x9f\x98 'x' \xe2\x80\x99";
	assert_int_equal(pwb_prefs_features_compute(&a, m, odd, sizeof(odd),
						    NULL, NULL, NULL),
			 PWB_OK);
	pwb_prefs_model_free(m);
}

/* ---- learning ---- */

static const char *const shorts[] = {"Tea is a drink.", "Bees make honey.",
				     "Chess is a game.", "The moon orbits.",
				     "Rain is water."};
static const char *const longs[] = {
    "Tea is a drink made by pouring hot water over cured leaves, and it "
    "has been enjoyed for thousands of years in many parts of the world.",
    "Bees make honey from the nectar of flowers, which they carry back to "
    "the hive and turn into honey by evaporation and enzymes over weeks.",
    "Chess is a board game for two players that is played on a board of "
    "sixty four squares, with pieces that each move in their own way.",
    "The moon orbits the earth about once a month, and its phases come "
    "from the changing angle between the sun, the earth and the moon.",
    "Rain is water that condenses in clouds and falls when the drops grow "
    "too heavy for the air to hold them up any longer, as it often does."};

static void test_learns_shorter(void **state)
{
	(void)state;
	pwb_prefs_model *m = new_model();
	pwb_prefs_features s, l;
	for (int r = 0; r < 40; r++) {
		feats(&s, m, shorts[r % 5], NULL);
		feats(&l, m, longs[(r + 1) % 5], NULL);
		assert_int_equal(pwb_prefs_update_pair(m, "ana", &s, &l, NULL),
				 PWB_OK);
	}
	assert_true(pwb_prefs_has_user(m, "ana"));
	assert_int_equal(pwb_prefs_user_events(m, "ana"), 40);
	assert_true(pwb_prefs_user_dim(m, "ana", PWB_PREFS_VERBOSITY) < -0.05);
	/* Unseen texts: the shorter one ranks first for her. */
	feats(&s, m, "Owls hunt at night.", NULL);
	feats(&l, m,
	      "Owls are birds of prey that mostly hunt at night, using their "
	      "excellent hearing and silent flight to catch small animals in "
	      "fields and woods across nearly every continent.",
	      NULL);
	assert_true(score1(m, "ana", &s, NULL, PWB_PREFS_PERSONAL) >
		    score1(m, "ana", &l, NULL, PWB_PREFS_PERSONAL));

	char *text = NULL;
	assert_int_equal(pwb_prefs_explain(m, "ana", &text, NULL), PWB_OK);
	assert_non_null(strstr(text, "you prefer "));
	assert_non_null(strstr(text, "shorter ("));
	assert_non_null(strstr(text, "\xe2\x88\x92")); /* a minus sign */
	free(text);

	/* Unknown users: explain and reset refuse, scoring falls back to
	 * the population model. */
	pwb_diag d;
	pwb_diag_init(&d);
	assert_int_equal(pwb_prefs_explain(m, "bob", &text, &d), PWB_ENOTFOUND);
	assert_null(text);
	assert_int_equal(pwb_prefs_reset(m, "bob", &d), PWB_ENOTFOUND);
	assert_non_null(strstr(d.entries[0].message, "unknown user 'bob'"));
	pwb_diag_release(&d);
	assert_true(score1(m, "bob", &s, NULL, PWB_PREFS_PERSONAL) ==
		    score1(m, NULL, &s, NULL, PWB_PREFS_POPULATION));

	/* Reset: back at the population model. */
	assert_int_equal(pwb_prefs_reset(m, "ana", NULL), PWB_OK);
	assert_int_equal(pwb_prefs_user_nnz(m, "ana"), 0);
	assert_true(score1(m, "ana", &l, NULL, PWB_PREFS_PERSONAL) ==
		    score1(m, NULL, &l, NULL, PWB_PREFS_POPULATION));
	assert_int_equal(pwb_prefs_explain(m, "ana", &text, NULL), PWB_OK);
	assert_non_null(strstr(text, "no learned preferences"));
	free(text);
	pwb_prefs_model_free(m);
}

/*
 * Bounded learning: a user who always picks the response that carries a
 * category they have not opted into never gets such a response ranked
 * higher because of that category. The two responses of each test pair
 * have the same text and differ only in that category's score.
 */
static void test_bounded_learning(void **state)
{
	(void)state;
	for (int on = 0; on < 2; on++) {
		pwb_prefs_model *m = new_model();
		pwb_prefs_bounds b;
		pwb_prefs_bounds_init(&b);
		b.category_on[0] = on; /* profanity */
		double with[3] = {1, 0, 0}, without[3] = {0, 0, 0};
		pwb_prefs_features x, y;
		for (int r = 0; r < 300; r++) {
			const char *t = longs[r % 5];
			feats(&x, m, t, with);
			feats(&y, m, shorts[r % 5], without);
			assert_int_equal(
			    pwb_prefs_update_pair(m, "cy", &x, &y, &b), PWB_OK);
			/* Other users, who have it on, teach the
			 * population to like it too. */
			b.category_on[0] = true;
			assert_int_equal(
			    pwb_prefs_update_pair(m, "dee", &x, &y, &b),
			    PWB_OK);
			b.category_on[0] = on;
		}
		for (int k = 0; k < 5; k++) {
			feats(&x, m, longs[k], with);
			feats(&y, m, longs[k], without);
			double sx = score1(m, "cy", &x, &b, PWB_PREFS_PERSONAL);
			double sy = score1(m, "cy", &y, &b, PWB_PREFS_PERSONAL);
			if (on)
				assert_true(sx > sy); /* learnt, allowed */
			else
				assert_true(sx <= sy); /* never above */
			/* The population model alone, for cy's bounds. */
			sx = score1(m, "cy", &x, &b, PWB_PREFS_POPULATION);
			sy = score1(m, "cy", &y, &b, PWB_PREFS_POPULATION);
			if (!on)
				assert_true(sx <= sy);
		}
		pwb_prefs_model_free(m);
	}
}

static void test_targets(void **state)
{
	(void)state;
	pwb_prefs_model *m = new_model();
	pwb_prefs_features s, l;
	/* Learnt: longer. Stated: short. The stated preference wins. */
	for (int r = 0; r < 60; r++) {
		feats(&s, m, shorts[r % 5], NULL);
		feats(&l, m, longs[r % 5], NULL);
		assert_int_equal(pwb_prefs_update_pair(m, "eve", &l, &s, NULL),
				 PWB_OK);
	}
	/* Two responses alike but for their length (dimensions only). */
	memset(&s, 0, sizeof(s));
	for (uint32_t k = 0; k < PWB_PREFS_N_DIMS; k++) {
		s.idx[k] = k;
		s.val[k] = s.dims[k] = 0.5f;
	}
	s.n = PWB_PREFS_N_DIMS;
	l = s;
	s.val[PWB_PREFS_VERBOSITY] = s.dims[PWB_PREFS_VERBOSITY] = 0.2f;
	l.val[PWB_PREFS_VERBOSITY] = l.dims[PWB_PREFS_VERBOSITY] = 0.9f;
	assert_true(score1(m, "eve", &l, NULL, PWB_PREFS_PERSONAL) >
		    score1(m, "eve", &s, NULL, PWB_PREFS_PERSONAL));
	pwb_prefs_bounds b;
	pwb_prefs_bounds_init(&b);
	b.has_target[PWB_PREFS_VERBOSITY] = true;
	b.target[PWB_PREFS_VERBOSITY] = 0.1f;
	assert_true(score1(m, "eve", &s, &b, PWB_PREFS_PERSONAL) >
		    score1(m, "eve", &l, &b, PWB_PREFS_PERSONAL));
	assert_true(score1(m, "eve", &s, &b, PWB_PREFS_EXPLICIT) >
		    score1(m, "eve", &l, &b, PWB_PREFS_EXPLICIT));
	/* Without targets the explicit scorer has no opinion. */
	assert_true(score1(m, "eve", &s, NULL, PWB_PREFS_EXPLICIT) ==
		    score1(m, "eve", &l, NULL, PWB_PREFS_EXPLICIT));
	pwb_prefs_model_free(m);
}

/* Targets and categories from an effective policy. */
static void test_bounds_from_effective(void **state)
{
	(void)state;
	const char *src = getenv("PWB_SOURCE_DIR");
	char pol[512];
	snprintf(pol, sizeof(pol), "%s/policies", src ? src : ".");
	pwb_policy *p = NULL;
	pwb_policy_params pp = pwb_policy_default_params();
	assert_int_equal(pwb_policy_load(&p, pol, &pp, NULL), PWB_OK);
	pwb_settings *s = NULL;
	const char js[] = "{\"categories\": {\"profanity\": \"on\"}, "
			  "\"dimensions\": {\"humour\": 0.5}}";
	assert_int_equal(pwb_settings_parse(&s, js, strlen(js), "s", NULL),
			 PWB_OK);
	pwb_resolve_params rp = {"acme-tutor", NULL, 0, s, NULL};
	pwb_effective *e = NULL;
	assert_int_equal(pwb_policy_resolve(&e, p, &rp, NULL), PWB_OK);
	pwb_prefs_model *m = new_model();
	pwb_prefs_bounds b;
	pwb_prefs_bounds_from_effective(&b, m, e);
	assert_true(b.category_on[0]);	/* profanity: opt_in, on */
	assert_false(b.category_on[1]); /* hate: forbid in de */
	assert_false(b.category_on[2]); /* sexual_content: forbid */
	assert_true(b.has_target[PWB_PREFS_HUMOUR]);
	assert_float_equal(b.target[PWB_PREFS_HUMOUR], 0.5, 1e-6);
	/* The org's defaults are no statement of the user's. */
	assert_false(b.has_target[PWB_PREFS_VERBOSITY]);
	/* EU law: learning from a user needs their consent. Without it,
	 * nothing is learnt, not even by the population model. */
	assert_true(b.needs_consent);
	assert_false(b.consented);
	pwb_prefs_features x, y;
	feats(&x, m, shorts[0], NULL);
	feats(&y, m, longs[0], NULL);
	void *before, *after;
	size_t lb, la;
	assert_int_equal(pwb_prefs_save_mem(m, &before, &lb), PWB_OK);
	assert_int_equal(pwb_prefs_update_pair(m, "u1", &x, &y, &b),
			 PWB_EBOUNDS);
	assert_false(pwb_prefs_has_user(m, "u1"));
	assert_int_equal(pwb_prefs_save_mem(m, &after, &la), PWB_OK);
	assert_int_equal(lb, la);
	assert_memory_equal(before, after, lb);
	free(after);
	b.consented = true;
	assert_int_equal(pwb_prefs_update_pair(m, "u1", &x, &y, &b), PWB_OK);
	assert_true(pwb_prefs_has_user(m, "u1"));
	assert_int_equal(pwb_prefs_save_mem(m, &after, &la), PWB_OK);
	assert_true(la != lb || memcmp(before, after, lb) != 0);
	free(before);
	free(after);
	pwb_prefs_model_free(m);
	pwb_effective_free(e);
	pwb_settings_free(s);
	pwb_policy_free(p);
}

static void test_memory_cap(void **state)
{
	(void)state;
	pwb_prefs_params p = pwb_prefs_default_params();
	p.max_user_weights = 40;
	p.hash_bits = 16;
	pwb_prefs_model *m = NULL;
	assert_int_equal(pwb_prefs_model_new(&m, &p, NULL), PWB_OK);
	pwb_prefs_features a, b;
	char ta[256], tb[256];
	for (int r = 0; r < 300; r++) {
		snprintf(ta, sizeof(ta), "word%d alpha%d beta%d gamma%d", r,
			 r * 7, r * 13, r * 17);
		snprintf(tb, sizeof(tb), "other%d delta%d", r, r * 3);
		feats(&a, m, ta, NULL);
		feats(&b, m, tb, NULL);
		assert_int_equal(pwb_prefs_update_pair(m, "u", &a, &b, NULL),
				 PWB_OK);
		assert_true(pwb_prefs_user_nnz(m, "u") <= 40);
		const pwb__prefs_user *u = pwb__prefs_find(m, "u");
		for (uint32_t k = 1; k < u->n; k++)
			assert_true(u->e[k].idx > u->e[k - 1].idx);
	}
	assert_int_equal(pwb_prefs_user_nnz(m, "u"), 40);
	/* The dimensions stay: eviction takes n-grams first. */
	const pwb__prefs_user *u = pwb__prefs_find(m, "u");
	assert_int_equal(u->e[0].idx, 0);
	assert_true(pwb_prefs_user_bytes(m, "u") < 4096);
	pwb_prefs_model_free(m);
}

/* ---- files and blobs ---- */

static pwb_prefs_model *trained(void)
{
	pwb_prefs_model *m = new_model();
	pwb_prefs_features a, b;
	double sc[3] = {0.2, 0, 0.9};
	for (int r = 0; r < 12; r++) {
		feats(&a, m, shorts[r % 5], NULL);
		feats(&b, m, longs[r % 5], sc);
		const char *user = r % 3 ? "u1" : "u2";
		assert_int_equal(pwb_prefs_update_pair(m, user, &a, &b, NULL),
				 PWB_OK);
	}
	return m;
}

static void same_scores(const pwb_prefs_model *a, const pwb_prefs_model *b,
			const char *user)
{
	pwb_prefs_features f;
	for (int k = 0; k < 5; k++) {
		feats(&f, a, longs[k], NULL);
		assert_true(score1(a, user, &f, NULL, PWB_PREFS_PERSONAL) ==
			    score1(b, user, &f, NULL, PWB_PREFS_PERSONAL));
	}
}

static void test_save_load(void **state)
{
	(void)state;
	pwb_prefs_model *m = trained();
	char path[512];
	snprintf(path, sizeof(path), "%s/m.pwbp", dir);
	pwb_diag d;
	pwb_diag_init(&d);
	assert_int_equal(pwb_prefs_save(m, path, &d), PWB_OK);
	pwb_prefs_model *m2 = NULL;
	assert_int_equal(pwb_prefs_load(&m2, path, &d), PWB_OK);
	assert_int_equal(pwb_prefs_n_users(m2), 2);
	same_scores(m, m2, "u1");
	same_scores(m, m2, "u2");
	assert_string_equal(pwb_prefs_model_params(m2)->categories[2],
			    "sexual_content");
	void *b1, *b2;
	size_t l1, l2;
	assert_int_equal(pwb_prefs_save_mem(m, &b1, &l1), PWB_OK);
	assert_int_equal(pwb_prefs_save_mem(m2, &b2, &l2), PWB_OK);
	assert_int_equal(l1, l2);
	assert_memory_equal(b1, b2, l1);
	free(b1);
	free(b2);

	/* A user blob moves one user between models. */
	pwb_prefs_model *m3 = new_model();
	assert_int_equal(pwb_prefs_user_save_mem(m, "u1", &b1, &l1), PWB_OK);
	assert_int_equal(pwb_prefs_user_load_mem(m3, b1, l1, &d), PWB_OK);
	assert_int_equal(pwb_prefs_user_nnz(m3, "u1"),
			 pwb_prefs_user_nnz(m, "u1"));
	free(b1);
	/* The population blob and the users' blobs rebuild the model. */
	assert_int_equal(pwb_prefs_population_save_mem(m, &b1, &l1), PWB_OK);
	pwb_prefs_model *rebuilt = NULL;
	assert_int_equal(pwb_prefs_load_mem(&rebuilt, b1, l1, "pop", &d),
			 PWB_OK);
	assert_int_equal(pwb_prefs_n_users(rebuilt), 0);
	free(b1);
	for (int k = 1; k <= 2; k++) {
		char uid[8];
		snprintf(uid, sizeof(uid), "u%d", k);
		assert_int_equal(pwb_prefs_user_save_mem(m, uid, &b1, &l1),
				 PWB_OK);
		assert_int_equal(pwb_prefs_user_load_mem(rebuilt, b1, l1, &d),
				 PWB_OK);
		free(b1);
	}
	assert_int_equal(pwb_prefs_save_mem(m, &b1, &l1), PWB_OK);
	assert_int_equal(pwb_prefs_save_mem(rebuilt, &b2, &l2), PWB_OK);
	assert_int_equal(l1, l2);
	assert_memory_equal(b1, b2, l1);
	free(b1);
	free(b2);
	pwb_prefs_model_free(rebuilt);
	assert_int_equal(pwb_prefs_user_save_mem(m, "u1", &b1, &l1), PWB_OK);
	/* A whole model is not a user blob, and back. */
	assert_int_equal(pwb_prefs_save_mem(m, &b2, &l2), PWB_OK);
	assert_int_equal(pwb_prefs_user_load_mem(m3, b2, l2, &d), PWB_EPARSE);
	pwb_prefs_model *bad = NULL;
	assert_int_equal(pwb_prefs_load_mem(&bad, b1, l1, "blob", &d),
			 PWB_EPARSE);
	assert_null(bad);
	/* A blob for another layout is refused. */
	pwb_prefs_params p = pwb_prefs_default_params();
	p.hash_bits = 11;
	pwb_prefs_model *m4 = NULL;
	assert_int_equal(pwb_prefs_model_new(&m4, &p, NULL), PWB_OK);
	assert_int_equal(pwb_prefs_user_load_mem(m4, b1, l1, &d), PWB_EPARSE);
	free(b1);
	free(b2);

	/* One byte form whatever the table's history: 60 users added in
	 * one order, loaded back in sorted order, written the same. */
	pwb_prefs_model *many = new_model();
	pwb_prefs_features fa, fb;
	feats(&fa, many, shorts[1], NULL);
	feats(&fb, many, longs[1], NULL);
	char uid[16];
	for (int k = 59; k >= 0; k--) {
		snprintf(uid, sizeof(uid), "user%d", (k * 37) % 60);
		assert_int_equal(
		    pwb_prefs_update_pair(many, uid, &fa, &fb, NULL), PWB_OK);
	}
	assert_int_equal(pwb_prefs_save_mem(many, &b1, &l1), PWB_OK);
	pwb_prefs_model *back = NULL;
	assert_int_equal(pwb_prefs_load_mem(&back, b1, l1, "many", &d), PWB_OK);
	assert_int_equal(pwb_prefs_n_users(back), 60);
	assert_int_equal(pwb_prefs_save_mem(back, &b2, &l2), PWB_OK);
	assert_int_equal(l1, l2);
	assert_memory_equal(b1, b2, l1);
	free(b1);
	free(b2);
	pwb_prefs_model_free(many);
	pwb_prefs_model_free(back);

	/* Saving into a missing folder fails and writes nothing. */
	char bad_path[600];
	snprintf(bad_path, sizeof(bad_path), "%s/missing/m.pwbp", dir);
	assert_int_equal(pwb_prefs_save(m, bad_path, &d), PWB_EIO);
	/* A failed save leaves the old file whole. */
	assert_int_equal(pwb_prefs_load(&bad, path, &d), PWB_OK);
	pwb_prefs_model_free(bad);
	pwb_diag_release(&d);
	pwb_prefs_model_free(m);
	pwb_prefs_model_free(m2);
	pwb_prefs_model_free(m3);
	pwb_prefs_model_free(m4);
}

static void load_bad(const void *data, size_t len, const char *want)
{
	pwb_prefs_model *m = NULL;
	pwb_diag d;
	pwb_diag_init(&d);
	pwb_status st = pwb_prefs_load_mem(&m, data, len, "x", &d);
	assert_int_not_equal(st, PWB_OK);
	assert_null(m);
	assert_true(d.n >= 1);
	if (want && !strstr(d.entries[0].message, want))
		fail_msg("'%s' does not say '%s' (%zu bytes)",
			 d.entries[0].message, want, len);
	pwb_diag_release(&d);
}

static void test_corrupt(void **state)
{
	(void)state;
	pwb_prefs_model *m = trained();
	unsigned char *data;
	size_t len;
	assert_int_equal(pwb_prefs_save_mem(m, (void **)&data, &len), PWB_OK);
	pwb_prefs_model_free(m);
	/* Every flipped byte is refused (the checksum sees it). */
	for (size_t i = 0; i < len; i++) {
		data[i] ^= 0x41;
		load_bad(data, len, NULL);
		data[i] ^= 0x41;
	}
	/* Every truncation is refused; past the header, as truncated. */
	for (size_t n = 0; n < len; n++)
		load_bad(data, n, n >= 8 + 5 * 4 + 32 ? "truncated" : NULL);
	load_bad("hello", 5, "not a pwb preference model");
	/* A damaged version field (checksum not rewritten) is damage, not a
	 * file from a newer pwb. */
	data[8] ^= 0xfe;
	load_bad(data, len, "checksum mismatch: the data is corrupt");
	data[8] ^= 0xfe;
	/* A newer version, with a valid checksum. */
	unsigned char *v = malloc(len);
	memcpy(v, data, len);
	v[8] = 9;
	crypto_generichash(v + len - 32, 32, v, len - 32, NULL, 0);
	load_bad(v, len, "newer pwb");
	/* Absurd hash bits, with a valid checksum. */
	memcpy(v, data, len);
	v[16] = 40;
	crypto_generichash(v + len - 32, 32, v, len - 32, NULL, 0);
	load_bad(v, len, "out of range");
	free(v);
	pwb_prefs_model *ok = NULL;
	assert_int_equal(pwb_prefs_load_mem(&ok, data, len, "x", NULL), PWB_OK);
	pwb_prefs_model_free(ok);
	free(data);
}

/* ---- evaluation and the simulator ---- */

/* Values that would overflow the learner are refused, not learnt: an
 * embedding of ±3e38 once turned every population weight into NaN. */
static void test_overflow_refused(void **state)
{
	(void)state;
	pwb_prefs_params p = pwb_prefs_default_params();
	p.hash_bits = 12;
	p.n_embed = 1;
	pwb_prefs_model *m = NULL;
	assert_int_equal(pwb_prefs_model_new(&m, &p, NULL), PWB_OK);
	pwb_prefs_features a, b;
	float big = 3e38f, ok = 0.5f;
	pwb_diag d;
	pwb_diag_init(&d);
	assert_int_equal(
	    pwb_prefs_features_compute(&a, m, "x", 1, NULL, &big, &d),
	    PWB_EINVAL);
	assert_non_null(strstr(d.entries[0].message, "embedding value 0"));
	pwb_diag_release(&d);
	assert_int_equal(pwb_prefs_features_compute(&a, m, "a short one", 11,
						    NULL, &ok, NULL),
			 PWB_OK);
	assert_int_equal(pwb_prefs_features_compute(&b, m, "a longer one here",
						    17, NULL, &ok, NULL),
			 PWB_OK);
	/* A hand-made vector the model cannot read is refused whole. */
	pwb_prefs_features bad = a;
	bad.val[bad.n - 1] = 3e38f;
	assert_int_equal(pwb_prefs_update_pair(m, "u1", &bad, &b, NULL),
			 PWB_EINVAL);
	bad = a;
	bad.n = UINT32_MAX;
	assert_int_equal(pwb_prefs_update_pair(m, "u1", &bad, &b, NULL),
			 PWB_EINVAL);
	bad = a;
	bad.idx[1] = bad.idx[0]; /* not increasing */
	assert_int_equal(pwb_prefs_update_pair(m, "u1", &b, &bad, NULL),
			 PWB_EINVAL);
	assert_false(pwb_prefs_has_user(m, "u1"));
	for (int r = 0; r < 50; r++)
		assert_int_equal(pwb_prefs_update_pair(m, "u1", &a, &b, NULL),
				 PWB_OK);
	double s = score1(m, "u1", &a, NULL, PWB_PREFS_PERSONAL);
	assert_true(isfinite(s));
	pwb_prefs_model_free(m);
}

/* With the category off, no feedback raises its weight, even from just
 * below 0, in the population or the user's deviation. */
static void test_clamp_never_crossed(void **state)
{
	(void)state;
	pwb_prefs_model *m = new_model();
	pwb_prefs_features a, b;
	double on[3] = {0, 0, 1}, off[3] = {0, 0, 0};
	feats(&a, m, shorts[0], on);
	feats(&b, m, shorts[0], off);
	/* Another user, with the category on, leaves w0 just below 0. */
	pwb_prefs_bounds allowed;
	pwb_prefs_bounds_init(&allowed);
	allowed.category_on[2] = true;
	assert_int_equal(pwb_prefs_update_pair(m, "v", &b, &a, &allowed),
			 PWB_OK);
	uint32_t i = PWB__PREFS_CAT0 + 2;
	assert_true(m->pop[i].w < 0);
	for (int r = 0; r < 200; r++) {
		float before = m->pop[i].w;
		assert_int_equal(pwb_prefs_update_pair(m, "u", &a, &b, NULL),
				 PWB_OK);
		assert_true(m->pop[i].w <= before);
	}
	pwb_prefs_model_free(m);
}

/* An event's features survive a store: packed, unpacked, they teach the
 * model exactly what the texts would have; any change to the bytes, or a
 * model of another layout, is refused. */
static void test_event_features(void **state)
{
	(void)state;
	pwb_prefs_model *m = new_model(), *m2 = new_model();
	pwb_prefs_features a, b, out[2];
	double sc[3] = {0.2, 0, 0.9};
	feats(&a, m, shorts[0], NULL);
	feats(&b, m, longs[0], sc);
	void *data = NULL;
	size_t len = 0, n = 0;
	assert_int_equal(pwb_prefs_features_pack(m, &a, &b, &data, &len),
			 PWB_OK);
	assert_int_equal(pwb_prefs_features_unpack(m, data, len, out, &n, NULL),
			 PWB_OK);
	assert_int_equal(n, 2);
	assert_int_equal(out[0].n, a.n);
	assert_int_equal(out[1].n, b.n);
	assert_memory_equal(out[0].idx, a.idx, a.n * sizeof(a.idx[0]));
	assert_memory_equal(out[1].val, b.val, b.n * sizeof(b.val[0]));
	assert_memory_equal(out[1].dims, b.dims, sizeof(b.dims));
	assert_int_equal(pwb_prefs_update_pair(m, "u1", &a, &b, NULL), PWB_OK);
	assert_int_equal(
	    pwb_prefs_update_pair(m2, "u1", &out[0], &out[1], NULL), PWB_OK);
	void *x, *y;
	size_t xl, yl;
	assert_int_equal(pwb_prefs_save_mem(m, &x, &xl), PWB_OK);
	assert_int_equal(pwb_prefs_save_mem(m2, &y, &yl), PWB_OK);
	assert_int_equal(xl, yl);
	assert_memory_equal(x, y, xl);
	free(x);
	free(y);

	/* Every flipped byte and every truncation is refused. */
	unsigned char *c = malloc(len);
	for (size_t i = 0; i < len; i++) {
		memcpy(c, data, len);
		c[i] ^= 0x20;
		assert_int_equal(
		    pwb_prefs_features_unpack(m, c, len, out, &n, NULL),
		    PWB_EPARSE);
		assert_int_equal(n, 0);
		assert_int_equal(
		    pwb_prefs_features_unpack(m, data, i, out, &n, NULL),
		    PWB_EPARSE);
	}
	free(c);
	/* A model blob is not an event's features. */
	assert_int_equal(pwb_prefs_save_mem(m, &x, &xl), PWB_OK);
	pwb_diag d;
	pwb_diag_init(&d);
	assert_int_equal(pwb_prefs_features_unpack(m, x, xl, out, &n, &d),
			 PWB_EPARSE);
	assert_non_null(strstr(d.entries[0].message,
			       "a whole model, not an event's features"));
	free(x);
	pwb_diag_clear(&d);
	/* Another layout. */
	pwb_prefs_params p = pwb_prefs_default_params();
	p.hash_bits = 14;
	pwb_prefs_model *other = NULL;
	assert_int_equal(pwb_prefs_model_new(&other, &p, NULL), PWB_OK);
	assert_int_equal(
	    pwb_prefs_features_unpack(other, data, len, out, &n, &d),
	    PWB_EPARSE);
	assert_non_null(strstr(d.entries[0].message, "another model"));
	pwb_diag_release(&d);
	free(data);

	/* A rating: one vector. */
	assert_int_equal(pwb_prefs_features_pack(m, &b, NULL, &data, &len),
			 PWB_OK);
	assert_int_equal(pwb_prefs_features_unpack(m, data, len, out, &n, NULL),
			 PWB_OK);
	assert_int_equal(n, 1);
	free(data);
	pwb_prefs_model_free(other);
	pwb_prefs_model_free(m);
	pwb_prefs_model_free(m2);
}

static int collect(void *ctx, const char *line, size_t len)
{
	pwb_feedback_set *s = ctx;
	static int n;
	return pwb_feedback_parse(s, line, len, "sim", ++n, NULL) ? -1 : 0;
}

static pwb_feedback_set *simulate(double spread, size_t users)
{
	pwb_feedback_set *s = NULL;
	assert_int_equal(pwb_feedback_set_new(&s), PWB_OK);
	pwb_prefs_sim_params p = pwb_prefs_sim_default_params();
	p.spread = spread;
	p.users = users;
	p.events = 40;
	assert_int_equal(pwb_prefs_simulate(&p, collect, s, NULL), PWB_OK);
	assert_int_equal(pwb_feedback_n(s), users * 40);
	return s;
}

static void test_simulated_users(void **state)
{
	(void)state;
	pwb_prefs_eval_result r;
	/* Users who differ: personal clearly beats population. */
	pwb_feedback_set *s = simulate(1.0, 60);
	assert_int_equal(pwb_prefs_evaluate(&r, s, "sim", NULL, NULL), PWB_OK);
	assert_int_equal(r.n_users, 60);
	assert_true(r.n_test_pairs > 300);
	assert_true(r.personal.lo > r.population.hi);
	assert_true(r.personal.mean > r.population.mean + 0.05);
	/* The curve starts at the population model and rises. */
	assert_true(fabs(r.curve[0].mean - r.population.mean) < 1e-9);
	assert_true(r.curve[5].mean > r.curve[0].mean);
	/* Deterministic. */
	pwb_prefs_eval_result r2;
	assert_int_equal(pwb_prefs_evaluate(&r2, s, "sim", NULL, NULL), PWB_OK);
	assert_true(r2.personal.mean == r.personal.mean &&
		    r2.personal.lo == r.personal.lo);
	pwb_feedback_set_free(s);

	/* Users alike: personal equals population within the intervals. */
	s = simulate(0.0, 60);
	assert_int_equal(pwb_prefs_evaluate(&r, s, "sim", NULL, NULL), PWB_OK);
	assert_true(r.personal.mean >= r.population.lo &&
		    r.personal.mean <= r.population.hi);
	assert_true(r.population.mean >= r.personal.lo &&
		    r.population.mean <= r.personal.hi);
	pwb_feedback_set_free(s);
}

/* ---- shrinkage by evidence, and cohorts ---- */

/* A population that prefers short answers: 30 users, 20 choices each. */
static pwb_prefs_model *short_population(void)
{
	pwb_prefs_model *m = new_model();
	pwb_prefs_features s, l;
	char uid[16];
	for (int r = 0; r < 600; r++) {
		feats(&s, m, shorts[r % 5], NULL);
		feats(&l, m, longs[(r + 2) % 5], NULL);
		snprintf(uid, sizeof(uid), "p%d", r % 30);
		assert_int_equal(pwb_prefs_update_pair(m, uid, &s, &l, NULL),
				 PWB_OK);
	}
	return m;
}

static const char owl_short[] = "Owls hunt at night.";
static const char owl_long[] =
    "Owls are birds of prey that mostly hunt at night, using their "
    "excellent hearing and silent flight to catch small animals in fields "
    "and woods across nearly every continent.";

/* A user without events scores exactly as the population: unknown, new
 * with a reset, or with k infinite. */
static void test_shrink_no_events(void **state)
{
	(void)state;
	pwb_prefs_model *m = short_population();
	pwb_prefs_features f[2];
	feats(&f[0], m, owl_short, NULL);
	feats(&f[1], m, owl_long, NULL);
	double pop[2], per[2];
	pwb_prefs_score(m, NULL, f, 2, NULL, PWB_PREFS_POPULATION, pop);
	pwb_prefs_score(m, "nobody", f, 2, NULL, PWB_PREFS_PERSONAL, per);
	assert_memory_equal(pop, per, sizeof(pop));
	assert_true(pwb_prefs_user_weight(m, "nobody") == 0);
	/* A user with a deviation, reset: no events, no weight. */
	assert_true(pwb_prefs_user_nnz(m, "p3") > 0);
	assert_true(pwb_prefs_user_weight(m, "p3") > 0);
	assert_int_equal(pwb_prefs_reset(m, "p3", NULL), PWB_OK);
	pwb_prefs_score(m, "p3", f, 2, NULL, PWB_PREFS_PERSONAL, per);
	assert_memory_equal(pop, per, sizeof(pop));
	/* k infinite: every user is the population. */
	assert_int_equal(pwb_prefs_set_shrink(m, INFINITY), PWB_OK);
	pwb_prefs_score(m, "p4", f, 2, NULL, PWB_PREFS_PERSONAL, per);
	assert_memory_equal(pop, per, sizeof(pop));
	/* k = 0: the deviation counts fully from the first pair. */
	assert_int_equal(pwb_prefs_set_shrink(m, 0), PWB_OK);
	assert_true(pwb_prefs_user_weight(m, "p4") == 1);
	assert_int_equal(pwb_prefs_set_shrink(m, -1), PWB_EINVAL);
	assert_int_equal(pwb_prefs_set_shrink(m, NAN), PWB_EINVAL);
	pwb_prefs_params p = pwb_prefs_default_params();
	p.shrink_k = -2;
	pwb_prefs_model *bad = NULL;
	pwb_diag d;
	pwb_diag_init(&d);
	assert_int_equal(pwb_prefs_model_new(&bad, &p, &d), PWB_EINVAL);
	assert_non_null(strstr(d.entries[0].message, "shrink_k"));
	pwb_diag_release(&d);
	pwb_prefs_model_free(m);
}

/* Choices in a fixed pattern: the short answer 7 times in every 10. */
static bool picks_short(uint64_t *count)
{
	static const bool pattern[10] = {1, 1, 0, 1, 1, 1, 0, 1, 0, 1};
	return pattern[(*count)++ % 10];
}

/* A population of 30 users, 200 choices each, who choose the short
 * answer 7 times in 10: enough for w0 to have learnt that taste. */
static pwb_prefs_model *noisy_population(uint64_t *rng)
{
	pwb_prefs_model *m = new_model();
	pwb_prefs_features s, l;
	char uid[16];
	for (int r = 0; r < 6000; r++) {
		feats(&s, m, shorts[r % 5], NULL);
		feats(&l, m, longs[(r + 2) % 5], NULL);
		snprintf(uid, sizeof(uid), "p%d", r % 30);
		bool sh = picks_short(rng);
		assert_int_equal(pwb_prefs_update_pair(m, uid, sh ? &s : &l,
						       sh ? &l : &s, NULL),
				 PWB_OK);
	}
	return m;
}

/* A user whose feedback is the population's (the same pairs, the short
 * answer 7 times in 10, as everyone) gains nothing: once w0 has learnt
 * that taste, their personal margin stays within 5 % of the
 * population's over 200 events (their order never changes), while a
 * user who differs moves by more than half of it with as many. */
static void test_shrink_agreeing_user(void **state)
{
	(void)state;
	uint64_t rng = 0;
	pwb_prefs_model *m = noisy_population(&rng);
	rng = 0;
	pwb_prefs_features s, l, f[2];
	feats(&f[0], m, owl_short, NULL);
	feats(&f[1], m, owl_long, NULL);
	double pop[2], per[2], other[2];
	pwb_prefs_score(m, NULL, f, 2, NULL, PWB_PREFS_POPULATION, pop);
	double gap = pop[0] - pop[1];
	assert_true(gap > 0.1);
	for (int r = 0; r < 200; r++) {
		/* The population's pairs, chosen in the same pattern. */
		feats(&s, m, shorts[r % 5], NULL);
		feats(&l, m, longs[(r + 2) % 5], NULL);
		bool sh = picks_short(&rng);
		assert_int_equal(pwb_prefs_update_user_pair(m, "same",
							    sh ? &s : &l,
							    sh ? &l : &s, NULL),
				 PWB_OK);
		assert_int_equal(
		    pwb_prefs_update_user_pair(m, "other", &l, &s, NULL),
		    PWB_OK);
		if (r % 20 != 19)
			continue;
		pwb_prefs_score(m, "same", f, 2, NULL, PWB_PREFS_PERSONAL, per);
		pwb_prefs_score(m, "other", f, 2, NULL, PWB_PREFS_PERSONAL,
				other);
		assert_true(per[0] > per[1]);
		if (!(fabs((per[0] - per[1]) - gap) < 0.05 * gap))
			fail_msg("after %d events: personal margin %g, "
				 "population %g",
				 r + 1, per[0] - per[1], gap);
		if (r >= 99)
			assert_true(other[1] - other[0] > 0.5 * gap);
	}
	pwb_prefs_model_free(m);
}

/* A user who consistently prefers the long answers the population
 * dislikes moves towards them as their events grow: the weight of their
 * deviation and their own margin rise with the evidence, and their order
 * flips. */
static void test_shrink_moves_with_evidence(void **state)
{
	(void)state;
	pwb_prefs_model *m = short_population();
	pwb_prefs_features s, l, f[2];
	feats(&f[0], m, owl_short, NULL);
	feats(&f[1], m, owl_long, NULL);
	double per[2], prev_margin = -INFINITY, prev_weight = -1;
	pwb_prefs_score(m, "rita", f, 2, NULL, PWB_PREFS_PERSONAL, per);
	assert_true(per[1] < per[0]); /* she starts at the population */
	static const int at[] = {2, 5, 10, 20, 50, 100};
	int r = 0;
	for (size_t q = 0; q < PWB_ARRAY_LEN(at); q++) {
		for (; r < at[q]; r++) {
			feats(&s, m, shorts[r % 5], NULL);
			feats(&l, m, longs[(r + 1) % 5], NULL);
			assert_int_equal(
			    pwb_prefs_update_user_pair(m, "rita", &l, &s, NULL),
			    PWB_OK);
		}
		pwb_prefs_score(m, "rita", f, 2, NULL, PWB_PREFS_PERSONAL, per);
		double margin = per[1] - per[0];
		double w = pwb_prefs_user_weight(m, "rita");
		if (!(margin > prev_margin && w > prev_weight))
			fail_msg("after %d events: margin %g (was %g), "
				 "weight %g (was %g)",
				 at[q], margin, prev_margin, w, prev_weight);
		assert_true(fabs(w - (double)at[q] / (at[q] + 8.0)) < 1e-12);
		prev_margin = margin;
		prev_weight = w;
	}
	assert_true(per[1] > per[0]); /* her own order, in the end */
	pwb_prefs_model_free(m);
}

/* The shrinkage and the cohorts are kept in a model file; a file of
 * version 1 (without them) loads with the default k. */
static void test_shrink_saved(void **state)
{
	(void)state;
	pwb_prefs_model *m = short_population();
	pwb_prefs_features s, l, f[2];
	feats(&s, m, shorts[0], NULL);
	feats(&l, m, longs[0], NULL);
	assert_int_equal(
	    pwb_prefs_update_cohort_pair(m, "age=30s", &l, &s, NULL), PWB_OK);
	assert_int_equal(pwb_prefs_set_shrink(m, INFINITY), PWB_OK);
	void *b1, *b2;
	size_t l1, l2;
	assert_int_equal(pwb_prefs_save_mem(m, &b1, &l1), PWB_OK);
	pwb_prefs_model *back = NULL;
	assert_int_equal(pwb_prefs_load_mem(&back, b1, l1, "m", NULL), PWB_OK);
	assert_true(isinf(pwb_prefs_model_params(back)->shrink_k));
	assert_true(pwb_prefs_has_cohort(back, "age=30s"));
	assert_int_equal(pwb_prefs_n_cohorts(back), 1);
	assert_int_equal(pwb_prefs_save_mem(back, &b2, &l2), PWB_OK);
	assert_int_equal(l1, l2);
	assert_memory_equal(b1, b2, l1);
	free(b2);
	pwb_prefs_model_free(back);
	/* The population blob keeps the cohorts (no user's own data). */
	assert_int_equal(pwb_prefs_population_save_mem(m, &b2, &l2), PWB_OK);
	assert_int_equal(pwb_prefs_load_mem(&back, b2, l2, "pop", NULL),
			 PWB_OK);
	assert_true(pwb_prefs_has_cohort(back, "age=30s"));
	assert_int_equal(pwb_prefs_n_users(back), 0);
	free(b2);
	pwb_prefs_model_free(back);

	/* Version 1: the same bytes without shrink_k (after the eight
	 * parameters) and without the cohort count (before the checksum). */
	pwb_prefs_model *plain = short_population();
	assert_int_equal(pwb_prefs_save_mem(plain, &b2, &l2), PWB_OK);
	unsigned char *v1 = malloc(l2), *src = b2;
	size_t off = 8 + 5 * 4 + 4 + 8 * 8, n = 0;
	memcpy(v1, src, off);
	n = off;
	memcpy(v1 + n, src + off + 8, l2 - off - 8 - 8 - 32);
	n += l2 - off - 8 - 8 - 32;
	v1[8] = 1;
	crypto_generichash(v1 + n, 32, v1, n, NULL, 0);
	n += 32;
	pwb_diag d;
	pwb_diag_init(&d);
	assert_int_equal(pwb_prefs_load_mem(&back, v1, n, "old", &d), PWB_OK);
	assert_true(pwb_prefs_model_params(back)->shrink_k == 8.0);
	assert_int_equal(pwb_prefs_n_users(back), 30);
	feats(&f[0], back, owl_short, NULL);
	feats(&f[1], back, owl_long, NULL);
	double a[2], b[2];
	pwb_prefs_score(plain, "p1", f, 2, NULL, PWB_PREFS_PERSONAL, a);
	pwb_prefs_score(back, "p1", f, 2, NULL, PWB_PREFS_PERSONAL, b);
	assert_memory_equal(a, b, sizeof(a));
	pwb_prefs_model_free(back);
	/* A version past the newest is named as such. */
	v1[8] = 3;
	crypto_generichash(v1 + n - 32, 32, v1, n - 32, NULL, 0);
	assert_int_equal(pwb_prefs_load_mem(&back, v1, n, "new", &d),
			 PWB_EPARSE);
	assert_non_null(strstr(d.entries[d.n - 1].message, "newer pwb"));
	pwb_diag_release(&d);
	free(v1);
	free(b1);
	free(b2);
	pwb_prefs_model_free(plain);
	pwb_prefs_model_free(m);
}

/* A new member of a cohort starts from the cohort's model, not the
 * population's; without a cohort, or in an unknown one, scoring is
 * pwb_prefs_score's; as the member's own evidence grows, the cohort
 * counts less. */
static void test_cohort_prior(void **state)
{
	(void)state;
	pwb_prefs_model *m = short_population();
	pwb_prefs_features s, l, f[2];
	feats(&f[0], m, owl_short, NULL);
	feats(&f[1], m, owl_long, NULL);
	/* The cohort prefers long answers. */
	for (int r = 0; r < 100; r++) {
		feats(&s, m, shorts[r % 5], NULL);
		feats(&l, m, longs[(r + 4) % 5], NULL);
		assert_int_equal(
		    pwb_prefs_update_cohort_pair(m, "band=b", &l, &s, NULL),
		    PWB_OK);
	}
	assert_int_equal(pwb_prefs_update_cohort_pair(m, "", &l, &s, NULL),
			 PWB_EINVAL);
	assert_false(pwb_prefs_has_user(m, "band=b")); /* not a user */
	double pop[2], co[2], none[2];
	pwb_prefs_score(m, "newbie", f, 2, NULL, PWB_PREFS_PERSONAL, pop);
	pwb_prefs_score_cohort(m, "newbie", "band=b", f, 2, NULL,
			       PWB_PREFS_PERSONAL, co);
	assert_true(pop[0] > pop[1]);
	assert_true(co[1] > co[0]); /* the cohort's order from the start */
	pwb_prefs_score_cohort(m, "newbie", "band=zz", f, 2, NULL,
			       PWB_PREFS_PERSONAL, none);
	assert_memory_equal(pop, none, sizeof(pop));
	/* The population scorer ignores the cohort. */
	pwb_prefs_score_cohort(m, "newbie", "band=b", f, 2, NULL,
			       PWB_PREFS_POPULATION, none);
	pwb_prefs_score(m, NULL, f, 2, NULL, PWB_PREFS_POPULATION, pop);
	assert_memory_equal(pop, none, sizeof(pop));
	/* A member who likes short answers after all: with enough events
	 * of their own, their order wins over the cohort's. */
	for (int r = 0; r < 200; r++) {
		feats(&s, m, shorts[r % 5], NULL);
		feats(&l, m, longs[(r + 1) % 5], NULL);
		assert_int_equal(
		    pwb_prefs_update_user_pair(m, "newbie", &s, &l, NULL),
		    PWB_OK);
	}
	pwb_prefs_score_cohort(m, "newbie", "band=b", f, 2, NULL,
			       PWB_PREFS_PERSONAL, co);
	assert_true(co[0] > co[1]);
	pwb_prefs_model_free(m);
}

/* Events of simulated users, with (cohorts) or without attributes;
 * flip_from: pairs of event rounds from it on have chosen and rejected
 * swapped (0: none). */
typedef struct flip_ctx {
	pwb_feedback_set *s;
	size_t users, flip_from, n;
} flip_ctx;

static int collect_flip(void *ctx, const char *line, size_t len)
{
	flip_ctx *c = ctx;
	size_t round = c->n++ / c->users;
	char buf[8192];
	if (!c->flip_from || round < c->flip_from || len >= sizeof(buf))
		return pwb_feedback_parse(c->s, line, len, "sim", (int)c->n,
					  NULL)
			   ? -1
			   : 0;
	/* Rename the keys: "chosen" and "rejected" trade places. */
	const char *a = strstr(line, "\"chosen\":");
	const char *b = strstr(line, "\"rejected\":");
	if (!a || !b || a > b)
		return -1;
	size_t n = 0;
	memcpy(buf, line, (size_t)(a - line));
	n = (size_t)(a - line);
	n += (size_t)snprintf(buf + n, sizeof(buf) - n, "\"rejected\":");
	const char *mid = a + strlen("\"chosen\":");
	memcpy(buf + n, mid, (size_t)(b - mid));
	n += (size_t)(b - mid);
	n += (size_t)snprintf(buf + n, sizeof(buf) - n, "\"chosen\":");
	const char *rest = b + strlen("\"rejected\":");
	memcpy(buf + n, rest, len - (size_t)(rest - line));
	n += len - (size_t)(rest - line);
	return pwb_feedback_parse(c->s, buf, n, "sim", (int)c->n, NULL) ? -1
									: 0;
}

static pwb_feedback_set *simulate_with(const pwb_prefs_sim_params *p,
				       size_t flip_from)
{
	flip_ctx c = {NULL, p->users, flip_from, 0};
	assert_int_equal(pwb_feedback_set_new(&c.s), PWB_OK);
	assert_int_equal(pwb_prefs_simulate(p, collect_flip, &c, NULL), PWB_OK);
	return c.s;
}

/* The evaluation: the shrinkage is chosen without the test events (the
 * same k and the same cross-validation when every held-out choice is
 * reversed); per-user wins, ties and losses add up, and their shares are
 * theirs; users alike get exactly the population. */
static void test_eval_shrink_and_per_user(void **state)
{
	(void)state;
	pwb_prefs_sim_params p = pwb_prefs_sim_default_params();
	p.users = 60;
	p.events = 40;
	p.rating_fraction = 0;
	pwb_feedback_set *a = simulate_with(&p, 0);
	/* Held out: the last floor(40 × 0.3) = 12 rounds of each user. */
	pwb_feedback_set *b = simulate_with(&p, 28);
	pwb_prefs_eval_result ra, rb;
	assert_int_equal(pwb_prefs_evaluate(&ra, a, "a", NULL, NULL), PWB_OK);
	assert_int_equal(pwb_prefs_evaluate(&rb, b, "b", NULL, NULL), PWB_OK);
	assert_true(ra.shrink_by_cv && rb.shrink_by_cv);
	assert_int_equal(ra.cv_n, 60);
	assert_true(ra.shrink_k == rb.shrink_k);
	assert_memory_equal(ra.cv_log_likelihood, rb.cv_log_likelihood,
			    sizeof(ra.cv_log_likelihood));
	assert_true(ra.personal.mean > rb.personal.mean + 0.2);
	/* Users who differ: personalised from the start. */
	assert_true(ra.shrink_k <= 4);
	assert_int_equal(ra.wins + ra.ties + ra.losses, ra.n_users_tested);
	assert_true(fabs(ra.loss_share.mean -
			 (double)ra.losses / (double)ra.n_users_tested) <
		    1e-12);
	assert_true(fabs(ra.gain.mean -
			 (ra.personal.mean - ra.population.mean)) < 1e-9);
	assert_true(ra.loss_share.lo <= ra.loss_share.mean &&
		    ra.loss_share.mean <= ra.loss_share.hi);
	assert_true(ra.wins > ra.losses);
	/* The curve carries the population on the same users. */
	assert_true(fabs(ra.curve_population[0].mean - ra.population.mean) <
		    1e-9);
	pwb_feedback_set_free(a);
	pwb_feedback_set_free(b);

	/* Users alike: k infinite, personal is the population exactly. */
	p.spread = 0;
	a = simulate_with(&p, 0);
	assert_int_equal(pwb_prefs_evaluate(&ra, a, "a", NULL, NULL), PWB_OK);
	assert_true(isinf(ra.shrink_k));
	assert_true(ra.personal.mean == ra.population.mean);
	assert_int_equal(ra.ties, ra.n_users_tested);
	assert_int_equal(ra.losses, 0);
	/* A given k is used as given. */
	pwb_prefs_eval_params ep = pwb_prefs_eval_default_params();
	ep.shrink_k = 0;
	assert_int_equal(pwb_prefs_evaluate(&ra, a, "a", &ep, NULL), PWB_OK);
	assert_false(ra.shrink_by_cv);
	assert_true(ra.shrink_k == 0);
	/* Training chooses k the same way and stores it. */
	pwb_prefs_model *m = NULL;
	assert_int_equal(pwb_prefs_train(&m, &rb, a, "a", NULL, NULL), PWB_OK);
	assert_true(isinf(pwb_prefs_model_params(m)->shrink_k));
	pwb_prefs_model_free(m);
	pwb_feedback_set_free(a);
}

/* Cohorts from a consented attribute: users with few events of their
 * own gain from their cohort's model; without the attribute named, the
 * attributes are never read. */
static void test_eval_cohorts(void **state)
{
	(void)state;
	pwb_prefs_sim_params p = pwb_prefs_sim_default_params();
	p.users = 120;
	p.events = 30;
	p.spread = 0.3;
	p.cohorts = 4;
	p.cohort_spread = 1.5;
	pwb_feedback_set *s = simulate_with(&p, 0);
	assert_non_null(pwb_feedback_get(s, 0)->rater_attrs);
	pwb_prefs_eval_params ep = pwb_prefs_eval_default_params();
	ep.cohort_attr = "cohort";
	pwb_prefs_eval_result with, without;
	assert_int_equal(pwb_prefs_evaluate(&with, s, "c", &ep, NULL), PWB_OK);
	assert_int_equal(pwb_prefs_evaluate(&without, s, "c", NULL, NULL),
			 PWB_OK);
	assert_int_equal(with.n_cohorts, 4);
	assert_int_equal(with.n_users_in_cohorts, 120);
	assert_int_equal(without.n_cohorts, 0);
	/* No events of their own: the cohort's model beats the
	 * population's, by its intervals. */
	if (!(with.cohort_curve[0].lo > with.cohort_base[0].hi))
		fail_msg("0 events: with the cohort %.3f [%.3f, %.3f], without "
			 "%.3f [%.3f, %.3f]",
			 with.cohort_curve[0].mean, with.cohort_curve[0].lo,
			 with.cohort_curve[0].hi, with.cohort_base[0].mean,
			 with.cohort_base[0].lo, with.cohort_base[0].hi);
	assert_true(with.cohort_curve[2].mean > with.cohort_base[2].mean);
	/* The same users without cohorts: the base is their curve. */
	assert_true(fabs(with.cohort_base[0].mean - without.curve[0].mean) <
		    1e-9);
	/* Overall, the cohort prior helps too. */
	assert_true(with.personal.mean > without.personal.mean);
	pwb_feedback_set_free(s);
}

/* The explanation tells the truth: on simulated users, each user's learnt
 * deviation on a dimension goes with how far their hidden taste is from
 * the others' (correlation over users and dimensions). */
static void test_explain_matches_hidden_taste(void **state)
{
	(void)state;
	pwb_feedback_set *s = simulate(1.0, 60);
	pwb_prefs_model *m = NULL;
	assert_int_equal(pwb_prefs_train(&m, NULL, s, "sim", NULL, NULL),
			 PWB_OK);
	pwb_prefs_sim_params p = pwb_prefs_sim_default_params();
	p.users = 60;
	static double theta[60][PWB_PREFS_N_DIMS];
	double mean[PWB_PREFS_N_DIMS] = {0};
	for (size_t u = 0; u < 60; u++) {
		pwb_prefs_sim_user(&p, u, theta[u]);
		for (int k = 0; k < PWB_PREFS_N_DIMS; k++)
			mean[k] += theta[u][k] / 60;
	}
	double sx = 0, sy = 0, sxx = 0, syy = 0, sxy = 0, n = 0;
	char uid[16];
	for (size_t u = 0; u < 60; u++) {
		snprintf(uid, sizeof(uid), "u%05zu", u);
		for (int k = 0; k < PWB_PREFS_N_DIMS; k++) {
			if (k == PWB_PREFS_READING_LEVEL)
				continue;
			double x = theta[u][k] - mean[k];
			double y = pwb_prefs_user_dim(m, uid, k);
			sx += x;
			sy += y;
			sxx += x * x;
			syy += y * y;
			sxy += x * y;
			n++;
		}
	}
	double r = (sxy - sx * sy / n) /
		   sqrt((sxx - sx * sx / n) * (syy - sy * sy / n));
	if (!(r > 0.4))
		fail_msg("correlation %.3f between hidden and learnt tastes",
			 r);
	pwb_prefs_model_free(m);
	pwb_feedback_set_free(s);
}

static void add(pwb_feedback_set *s, const char *json)
{
	static int line;
	assert_int_equal(
	    pwb_feedback_parse(s, json, strlen(json), "t", ++line, NULL),
	    PWB_OK);
}

static void test_eval_split_and_duplicates(void **state)
{
	(void)state;
	pwb_feedback_set *s = NULL;
	assert_int_equal(pwb_feedback_set_new(&s), PWB_OK);
	char buf[512];
	/* u1: 10 ratings (ts out of file order), u2: 3 pairs (population
	 * only), and an anonymous pair. */
	for (int k = 0; k < 10; k++) {
		snprintf(buf, sizeof(buf),
			 "{\"user\": \"u1\", \"response\": \"%s\", "
			 "\"rating\": %d, \"scale\": [1, 5], \"ts\": %d}",
			 k % 2 ? shorts[k % 5] : longs[k % 5], 1 + (k % 5),
			 100 - k);
		add(s, buf);
	}
	for (int k = 0; k < 3; k++) {
		snprintf(buf, sizeof(buf),
			 "{\"user\": \"u2\", \"chosen\": \"%s\", "
			 "\"rejected\": \"%s\", \"ts\": %d}",
			 shorts[k], longs[k], k);
		add(s, buf);
	}
	add(s, "{\"chosen\": \"a b\", \"rejected\": \"c d\"}");
	pwb_prefs_eval_result r;
	pwb_prefs_eval_params p = pwb_prefs_eval_default_params();
	assert_int_equal(pwb_prefs_evaluate(&r, s, "t", &p, NULL), PWB_OK);
	assert_int_equal(r.n_events, 14);
	assert_int_equal(r.n_users, 1);
	assert_int_equal(r.n_population_users, 1);
	assert_int_equal(r.n_anonymous_events, 1);
	assert_true(r.n_test_pairs >= 1);
	assert_true(r.n_ties_dropped >= 1);

	/* Duplicates: the same user, ts and texts; then the same id. */
	add(s, "{\"user\": \"u2\", \"chosen\": \"Tea is a drink.\", "
	       "\"rejected\": \"x\", \"ts\": 5}");
	add(s, "{\"user\": \"u2\", \"chosen\": \"Tea is a drink.\", "
	       "\"rejected\": \"x\", \"ts\": 5}");
	pwb_diag d;
	pwb_diag_init(&d);
	assert_int_equal(pwb_prefs_evaluate(&r, s, "t", &p, &d), PWB_EPARSE);
	assert_non_null(strstr(d.entries[0].message, "duplicate event"));
	pwb_diag_release(&d);
	pwb_feedback_set_free(s);

	assert_int_equal(pwb_feedback_set_new(&s), PWB_OK);
	add(s, "{\"id\": \"e1\", \"user\": \"a\", \"chosen\": \"x\", "
	       "\"rejected\": \"y\"}");
	add(s, "{\"id\": \"e1\", \"user\": \"b\", \"chosen\": \"z\", "
	       "\"rejected\": \"y\"}");
	pwb_diag_init(&d);
	assert_int_equal(pwb_prefs_check_duplicates(s, "t", &d), PWB_EPARSE);
	assert_non_null(strstr(d.entries[0].message, "'id' 'e1'"));
	pwb_diag_release(&d);
	pwb_feedback_set_free(s);
}

/*
 * Learning restrictions: the learner reads no user attributes, so
 * feedback that carries the rater's attributes (here special categories
 * a law forbids learning from) trains exactly the same model as the same
 * feedback without them.
 */
static void test_attributes_never_read(void **state)
{
	(void)state;
	void *blob[2];
	size_t len[2];
	for (int with = 0; with < 2; with++) {
		pwb_feedback_set *s = NULL;
		assert_int_equal(pwb_feedback_set_new(&s), PWB_OK);
		char buf[1024];
		for (int k = 0; k < 30; k++) {
			const char *attrs =
			    k % 2 ? "{\"religion\": \"x\", \"ethnicity\": "
				    "\"y\", \"age_band\": \"18-25\"}"
				  : "{\"religion\": \"z\"}";
			snprintf(buf, sizeof(buf),
				 "{\"user\": \"u%d\", \"chosen\": \"%s\", "
				 "\"rejected\": \"%s\", \"ts\": %d%s%s%s}",
				 k % 3, shorts[k % 5], longs[(k + 2) % 5], k,
				 with ? ", \"rater\": {\"role\": \"end_user\", "
					"\"attributes\": "
				      : "",
				 with ? attrs : "", with ? "}" : "");
			add(s, buf);
		}
		if (with)
			assert_non_null(pwb_feedback_get(s, 1)->rater_attrs);
		pwb_prefs_model *m = NULL;
		assert_int_equal(pwb_prefs_train(&m, NULL, s, "t", NULL, NULL),
				 PWB_OK);
		assert_int_equal(pwb_prefs_n_users(m), 3);
		assert_int_equal(pwb_prefs_save_mem(m, &blob[with], &len[with]),
				 PWB_OK);
		pwb_prefs_model_free(m);
		pwb_feedback_set_free(s);
	}
	assert_int_equal(len[0], len[1]);
	assert_memory_equal(blob[0], blob[1], len[0]);
	free(blob[0]);
	free(blob[1]);
}

/* ---- allocation failures ---- */

static void test_alloc_failure_sweep(void **state)
{
	(void)state;
	pwb_prefs_features a, b;
	char path[512];
	snprintf(path, sizeof(path), "%s/sweep.pwbp", dir);
	/* A file from before the sweep, which failed saves must not harm. */
	pwb_prefs_model *first = trained();
	assert_int_equal(pwb_prefs_save(first, path, NULL), PWB_OK);
	pwb_prefs_model_free(first);
	long n_fail = 0;
	for (long k = 1; k < 100000; k++) {
		pwb__alloc_count = 0;
		pwb__alloc_fail_at = k;
		pwb_prefs_model *m = NULL, *m2 = NULL;
		void *mem = NULL, *blob = NULL;
		size_t len = 0, blen = 0;
		bool done = false;
		pwb_diag md;
		pwb_diag_init(&md);
		pwb_status st = pwb_prefs_model_new(&m, NULL, &md);
		if (st) {
			assert_int_equal(st, PWB_ENOMEM);
			assert_null(m);
			assert_int_equal(md.n, 1);
			pwb_diag_release(&md);
			goto next;
		}
		pwb_diag_release(&md);
		pwb__alloc_fail_at = 0;
		feats(&a, m, shorts[0], NULL);
		feats(&b, m, longs[0], NULL);
		pwb__alloc_fail_at = k;
		int ok = 0;
		for (int r = 0; r < 6; r++) {
			const char *u = r % 2 ? "u1" : "u2";
			uint64_t before = pwb_prefs_user_events(m, u);
			st = pwb_prefs_update_pair(m, u, &a, &b, NULL);
			if (st) {
				assert_int_equal(st, PWB_ENOMEM);
				/* Unchanged for that user. */
				assert_int_equal(pwb_prefs_user_events(m, u),
						 before);
			} else {
				ok++;
			}
		}
		st = pwb_prefs_save_mem(m, &mem, &len);
		if (st) {
			assert_int_equal(st, PWB_ENOMEM);
			goto next;
		}
		st = pwb_prefs_save(m, path, NULL);
		if (st) {
			/* The file from an earlier round is still whole. */
			assert_int_equal(st, PWB_ENOMEM);
			{
				pwb__alloc_fail_at = 0;
				assert_int_equal(
				    pwb_prefs_load(&m2, path, NULL), PWB_OK);
			}
			goto next;
		}
		st = pwb_prefs_load_mem(&m2, mem, len, "m", NULL);
		if (st) {
			assert_int_equal(st, PWB_ENOMEM);
			assert_null(m2);
			goto next;
		}
		if (pwb_prefs_has_user(m, "u1")) {
			st = pwb_prefs_user_save_mem(m, "u1", &blob, &blen);
			if (st) {
				assert_int_equal(st, PWB_ENOMEM);
				goto next;
			}
			st = pwb_prefs_user_load_mem(m2, blob, blen, NULL);
			if (st) {
				assert_int_equal(st, PWB_ENOMEM);
				goto next;
			}
		}
		done = ok == 6;
	next:
		pwb__alloc_fail_at = 0;
		free(mem);
		free(blob);
		pwb_prefs_model_free(m);
		pwb_prefs_model_free(m2);
		if (done)
			break;
		n_fail++;
	}
	assert_true(n_fail > 10);
	/* No failed save left a temporary file behind. */
	DIR *dd = opendir(dir);
	assert_non_null(dd);
	struct dirent *de;
	while ((de = readdir(dd)))
		assert_null(strstr(de->d_name, ".tmp."));
	closedir(dd);
}

/* ---- one error channel ---- */

/* model_new refuses p with PWB_EINVAL and one message containing want. */
static void refused(const pwb_prefs_params *p, const char *want)
{
	pwb_diag d;
	pwb_diag_init(&d);
	pwb_prefs_model *m = NULL;
	assert_int_equal(pwb_prefs_model_new(&m, p, &d), PWB_EINVAL);
	assert_null(m);
	assert_int_equal(d.n, 1);
	if (!strstr(d.entries[0].message, want))
		fail_msg("'%s' does not name %s", d.entries[0].message, want);
	pwb_diag_release(&d);
}

/* Each failure says why: the parameter out of range, the argument
 * missing. */
static void test_failures_named(void **state)
{
	(void)state;
	static const char *const twice[] = {"hate", "hate"};
	pwb_prefs_params p = pwb_prefs_default_params();
	p.hash_bits = 9;
	refused(&p, "hash_bits");
	p = pwb_prefs_default_params();
	p.n_categories = 2;
	refused(&p, "n_categories");
	p.categories = twice;
	refused(&p, "'hate' is given twice");
	p = pwb_prefs_default_params();
	p.n_embed = PWB_PREFS_MAX_EMBED + 1;
	refused(&p, "n_embed");
	p = pwb_prefs_default_params();
	p.max_user_weights = 0;
	refused(&p, "max_user_weights");
	p = pwb_prefs_default_params();
	p.user_lr = 0;
	refused(&p, "user_lr");
	p = pwb_prefs_default_params();
	p.pop_l2 = NAN;
	refused(&p, "pop_l2");
	p = pwb_prefs_default_params();
	p.alpha = -1;
	refused(&p, "alpha");

	pwb_diag d;
	pwb_diag_init(&d);
	assert_int_equal(pwb_prefs_model_new(NULL, NULL, &d), PWB_EINVAL);
	assert_int_equal(d.n, 1);
	pwb_diag_clear(&d);
	pwb_prefs_model *m = new_model();
	pwb_prefs_features f;
	assert_int_equal(
	    pwb_prefs_features_compute(&f, m, NULL, 3, NULL, NULL, &d),
	    PWB_EINVAL);
	assert_int_equal(d.n, 1);
	pwb_diag_clear(&d);
	assert_int_equal(pwb_prefs_save(m, "", &d), PWB_EINVAL);
	assert_int_equal(d.n, 1);
	pwb_diag_clear(&d);
	assert_int_equal(pwb_prefs_user_load_mem(m, NULL, 4, &d), PWB_EINVAL);
	assert_int_equal(d.n, 1);
	pwb_diag_clear(&d);
	pwb_prefs_model_free(m);

	/* The evaluation's parameters, and its model's. */
	pwb_feedback_set *s = simulate(1.0, 4);
	pwb_prefs_eval_params ep = pwb_prefs_eval_default_params();
	pwb_prefs_eval_result r;
	ep.test_fraction = 1;
	assert_int_equal(pwb_prefs_evaluate(&r, s, "sim", &ep, &d), PWB_EINVAL);
	assert_int_equal(d.n, 1);
	assert_non_null(strstr(d.entries[0].message, "test_fraction"));
	pwb_diag_clear(&d);
	ep = pwb_prefs_eval_default_params();
	ep.model.hash_bits = 30;
	assert_int_equal(pwb_prefs_evaluate(&r, s, "sim", &ep, &d), PWB_EINVAL);
	assert_int_equal(d.n, 1);
	assert_non_null(strstr(d.entries[0].message, "hash_bits"));
	pwb_diag_clear(&d);
	assert_int_equal(pwb_prefs_train(NULL, NULL, s, "sim", NULL, &d),
			 PWB_EINVAL);
	assert_int_equal(d.n, 1);
	pwb_diag_release(&d);
	pwb_feedback_set_free(s);
}

/* Every allocation failure in evaluating and training is reported with a
 * message, and a failed training hands out no model. */
static void test_eval_alloc_failure_sweep(void **state)
{
	(void)state;
	pwb_feedback_set *s = simulate(1.0, 5);
	pwb_prefs_eval_params ep = pwb_prefs_eval_default_params();
	ep.model.hash_bits = 12;
	ep.bootstrap = 20;
	for (int train = 0; train < 2; train++) {
		long n_fail = 0;
		bool done = false;
		for (long k = 1; k < 100000 && !done; k++) {
			pwb__alloc_count = 0;
			pwb__alloc_fail_at = k;
			pwb_diag d;
			pwb_diag_init(&d);
			pwb_prefs_eval_result r;
			pwb_prefs_model *m = NULL;
			pwb_status st =
			    train ? pwb_prefs_train(&m, &r, s, "sim", &ep, &d)
				  : pwb_prefs_evaluate(&r, s, "sim", &ep, &d);
			pwb__alloc_fail_at = 0;
			if (st == PWB_OK) {
				done = true;
			} else {
				assert_int_equal(st, PWB_ENOMEM);
				assert_true(d.n >= 1);
				assert_null(m);
				n_fail++;
			}
			pwb_prefs_model_free(m);
			pwb_diag_release(&d);
		}
		assert_true(done);
		assert_true(n_fail > 10);
	}
	pwb_feedback_set_free(s);
}

/* ---- seeds for the fuzzer ---- */

static void test_write_fuzz_seeds(void **state)
{
	(void)state;
	const char *sdir = getenv("PWB_PREFS_FUZZ_SEEDS");
	if (!sdir || !*sdir)
		skip();
	pwb_prefs_model *m = trained();
	void *mem;
	size_t len;
	char path[600];
	assert_int_equal(pwb_prefs_save_mem(m, &mem, &len), PWB_OK);
	snprintf(path, sizeof(path), "%s/model.pwbp", sdir);
	FILE *f = fopen(path, "wb");
	assert_non_null(f);
	assert_int_equal(fwrite(mem, 1, len, f), len);
	fclose(f);
	free(mem);
	assert_int_equal(pwb_prefs_user_save_mem(m, "u1", &mem, &len), PWB_OK);
	snprintf(path, sizeof(path), "%s/user.pwbp", sdir);
	f = fopen(path, "wb");
	assert_non_null(f);
	assert_int_equal(fwrite(mem, 1, len, f), len);
	fclose(f);
	free(mem);
	pwb_prefs_features a, b;
	double sc[3] = {0.2, 0, 0.9};
	feats(&a, m, shorts[1], NULL);
	feats(&b, m, longs[1], sc);
	assert_int_equal(pwb_prefs_features_pack(m, &a, &b, &mem, &len),
			 PWB_OK);
	snprintf(path, sizeof(path), "%s/features.pwbp", sdir);
	f = fopen(path, "wb");
	assert_non_null(f);
	assert_int_equal(fwrite(mem, 1, len, f), len);
	fclose(f);
	free(mem);
	pwb_prefs_model_free(m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_markers_sorted),
	    cmocka_unit_test(test_dimensions),
	    cmocka_unit_test(test_learns_shorter),
	    cmocka_unit_test(test_bounded_learning),
	    cmocka_unit_test(test_targets),
	    cmocka_unit_test(test_bounds_from_effective),
	    cmocka_unit_test(test_memory_cap),
	    cmocka_unit_test(test_save_load),
	    cmocka_unit_test(test_corrupt),
	    cmocka_unit_test(test_event_features),
	    cmocka_unit_test(test_overflow_refused),
	    cmocka_unit_test(test_clamp_never_crossed),
	    cmocka_unit_test(test_simulated_users),
	    cmocka_unit_test(test_shrink_no_events),
	    cmocka_unit_test(test_shrink_agreeing_user),
	    cmocka_unit_test(test_shrink_moves_with_evidence),
	    cmocka_unit_test(test_shrink_saved),
	    cmocka_unit_test(test_cohort_prior),
	    cmocka_unit_test(test_eval_shrink_and_per_user),
	    cmocka_unit_test(test_eval_cohorts),
	    cmocka_unit_test(test_explain_matches_hidden_taste),
	    cmocka_unit_test(test_eval_split_and_duplicates),
	    cmocka_unit_test(test_attributes_never_read),
	    cmocka_unit_test(test_alloc_failure_sweep),
	    cmocka_unit_test(test_failures_named),
	    cmocka_unit_test(test_eval_alloc_failure_sweep),
	    cmocka_unit_test(test_write_fuzz_seeds),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
