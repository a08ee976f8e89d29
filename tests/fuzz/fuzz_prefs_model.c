/*
 * fuzz_prefs_model.c - libFuzzer target for the preference model loader,
 * pwb_prefs_load_mem, the user blob loader, pwb_prefs_user_load_mem, and
 * the event features reader, pwb_prefs_features_unpack.
 *
 * Each input is loaded as it is and "resealed" (its last 32 bytes
 * replaced by the BLAKE2b of the rest), so that mutations get past the
 * checksum and reach the checks behind it. The first byte of a resealed
 * input also chooses whether it is read as a whole model, a user blob or
 * an event's features.
 *
 * Beyond memory errors and leaks, the target aborts when a contract of
 * include/pwb/prefs.h breaks: a refusal without a reason or that still
 * hands out a model; an accepted input whose checksum does not match; an
 * accepted model of the current version whose bytes, written back, differ
 * from the input (the format is canonical; an older version is written
 * in the current one, which then writes back the same), or that cannot
 * score and learn.
 *
 * Resealed inputs with more than 16 hash bits are skipped (each would
 * allocate up to 200 MB).
 *
 * Seeds (tests/fuzz/corpus/prefs): PWB_PREFS_FUZZ_SEEDS=DIR test_prefs.
 */
#include "prefs/prefs_int.h"

#include <sodium.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void die(const char *what)
{
	fprintf(stderr, "fuzz_prefs_model: %s\n", what);
	abort();
}

static void use(pwb_prefs_model *m)
{
	pwb_prefs_features a, b;
	const char *t1 = "Hello there, a short answer.";
	const char *t2 = "- a list\n- of things \xf0\x9f\x98\x8a?";
	if (pwb_prefs_features_compute(&a, m, t1, strlen(t1), NULL, NULL,
				       NULL) ||
	    pwb_prefs_features_compute(&b, m, t2, strlen(t2), NULL, NULL, NULL))
		die("an accepted model cannot measure a text");
	double s[2];
	pwb_prefs_score(m, "u1", &a, 1, NULL, PWB_PREFS_PERSONAL, &s[0]);
	pwb_prefs_score(m, "u1", &b, 1, NULL, PWB_PREFS_PERSONAL, &s[1]);
	(void)pwb_prefs_update_pair(m, "u1", &a, &b, NULL);
	char *text = NULL;
	if (pwb_prefs_explain(m, "u1", &text, NULL) == PWB_OK && !text)
		die("explain succeeded without a text");
	free(text);
}

static void load_model(const uint8_t *data, size_t size, bool sealed)
{
	pwb_prefs_model *m = (pwb_prefs_model *)&m;
	pwb_diag d;
	pwb_diag_init(&d);
	pwb_status st = pwb_prefs_load_mem(&m, data, size, "fuzz", &d);
	if (st) {
		if (m)
			die("a refused model was handed out");
		if (!d.n)
			die("a refusal without a reason");
		pwb_diag_release(&d);
		return;
	}
	pwb_diag_release(&d);
	if (!sealed)
		die("a model accepted with a wrong checksum");
	/* A file of the current version writes back the same bytes; an
	 * older one is written in the current version, which then does. */
	uint32_t version = size >= 12 ? (uint32_t)data[8] |
					    (uint32_t)data[9] << 8 |
					    (uint32_t)data[10] << 16 |
					    (uint32_t)data[11] << 24
				      : 0;
	void *back;
	size_t len;
	if (pwb_prefs_save_mem(m, &back, &len) == PWB_OK) {
		if (version == 2 && (len != size || memcmp(back, data, size)))
			die("an accepted model does not write back the same");
		if (version != 2) {
			pwb_prefs_model *m2 = NULL;
			void *again;
			size_t len2;
			if (pwb_prefs_load_mem(&m2, back, len, "fuzz", NULL))
				die("an older model, written anew, is refused");
			if (pwb_prefs_save_mem(m2, &again, &len2) == PWB_OK) {
				if (len2 != len || memcmp(again, back, len))
					die("an older model, written anew, "
					    "does not write back the same");
				free(again);
			}
			pwb_prefs_model_free(m2);
		}
		free(back);
	}
	use(m);
	pwb_prefs_model_free(m);
}

static void load_user(const uint8_t *data, size_t size, bool sealed)
{
	pwb_prefs_model *m = NULL;
	pwb_prefs_params p = pwb_prefs_default_params();
	p.hash_bits = 12;
	if (pwb_prefs_model_new(&m, &p, NULL))
		return;
	pwb_diag d;
	pwb_diag_init(&d);
	pwb_status st = pwb_prefs_user_load_mem(m, data, size, &d);
	if (st && !d.n)
		die("a refused blob without a reason");
	if (!st && !sealed)
		die("a blob accepted with a wrong checksum");
	pwb_diag_release(&d);
	if (!st)
		use(m);
	pwb_prefs_model_free(m);
}

/* Read with a model of the seeds' layout: 2^12 buckets, 3 categories. */
static void load_features(const uint8_t *data, size_t size, bool sealed)
{
	static const char *const cats[] = {"profanity", "hate",
					   "sexual_content"};
	pwb_prefs_params p = pwb_prefs_default_params();
	p.hash_bits = 12;
	p.categories = cats;
	p.n_categories = 3;
	pwb_prefs_model *m = NULL;
	if (pwb_prefs_model_new(&m, &p, NULL))
		return;
	pwb_prefs_features f[2];
	size_t n = 9;
	pwb_diag d;
	pwb_diag_init(&d);
	pwb_status st = pwb_prefs_features_unpack(m, data, size, f, &n, &d);
	if (st) {
		if (!d.n)
			die("refused features without a reason");
		if (n)
			die("refused features with a count");
	} else {
		if (!sealed)
			die("features accepted with a wrong checksum");
		if (n != 1 && n != 2)
			die("features with a count other than 1 or 2");
		void *back;
		size_t len;
		if (pwb_prefs_features_pack(m, &f[0], n == 2 ? &f[1] : NULL,
					    &back, &len) == PWB_OK) {
			if (len != size || memcmp(back, data, size))
				die("accepted features do not write back the "
				    "same");
			free(back);
		}
		double s;
		pwb_prefs_score(m, "u1", f, 1, NULL, PWB_PREFS_PERSONAL, &s);
		if (n == 2)
			(void)pwb_prefs_update_pair(m, "u1", &f[0], &f[1],
						    NULL);
	}
	pwb_diag_release(&d);
	pwb_prefs_model_free(m);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (sodium_init() < 0)
		return 0;
	unsigned char sum[32];
	bool sealed = size >= 32;
	if (sealed) {
		crypto_generichash(sum, 32, data, size - 32, NULL, 0);
		sealed = !memcmp(sum, data + size - 32, 32);
	}
	load_model(data, size, sealed);
	load_user(data, size, sealed);
	load_features(data, size, sealed);
	/* Resealed models of more than 2^16 hash buckets are valid but
	 * allocate up to 200 MB each: leave them out to keep runs fast. */
	if (size < 64 || size > (1u << 20) || data[16] > 16 || data[17] ||
	    data[18] || data[19])
		return 0;
	uint8_t *copy = malloc(size);
	if (!copy)
		return 0;
	memcpy(copy, data, size);
	crypto_generichash(copy + size - 32, 32, copy, size - 32, NULL, 0);
	if (data[0] % 3 == 1)
		load_user(copy, size, true);
	else if (data[0] % 3 == 2)
		load_features(copy, size, true);
	else
		load_model(copy, size, true);
	free(copy);
	return 0;
}
