/*
 * fuzz_linear.c - libFuzzer target for the linear model loader,
 * pwb__linear_load_mem.
 *
 * Each input is loaded twice: as it is, and with its last 32 bytes
 * replaced by the BLAKE2b of the rest ("resealed"), so that mutations get
 * past the checksum and reach the checks behind it (label ids, weights).
 *
 * Beyond memory errors and leaks, the target aborts when a contract of
 * src/bounds/linear.h breaks: a refusal other than PWB_EPARSE, or without
 * a reason, or that still hands out a model; a model accepted although its
 * checksum does not match; an accepted model whose labels are not valid
 * ids, whose scores of a short text fall outside [0, 1], or whose bytes,
 * written back with pwb__linear_save_mem, differ from the input (the
 * format is canonical).
 *
 * Seeds (tests/fuzz/corpus/linear) are small models at hash_bits 10,
 * written by the unit test: PWB_LINEAR_FUZZ_SEEDS=DIR test_linear; models
 * of format version 2 with each feature set, and one of version 1 (which
 * must write back as version 1).
 * Run with -max_len=20000 so that mutations can keep a whole model.
 */
#include "bounds/linear.h"

#include <sodium.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void die(const char *what)
{
	fprintf(stderr, "fuzz_linear: %s\n", what);
	abort();
}

static const char *const texts[] = {
    "",
    "Hello, World! the quick brown fox",
    "caf\xc3\xa9 \xff\xfe zorblax-quintessa 12345",
    /* The contexts of version 2: negations, quotation marks of every
     * kind, one left open, and a typographic mark cut short. */
    "I don't \"hate\" them; n'est pas \xe2\x80\x9equote\xe2\x80\x9c "
    "\xc2\xab never 'x' \xe2\x80\x99t \xe2\x80",
};

static void check_model(const pwb__linear *m, const uint8_t *data, size_t size)
{
	size_t nl = pwb__linear_n_labels(m);
	if (nl < 1 || nl > 256)
		die("an accepted model with a label count out of range");
	for (size_t l = 0; l < nl; l++) {
		const char *s = pwb__linear_label(m, l);
		if (!s || !*s || strlen(s) > 128)
			die("an accepted model with a missing or long label");
		for (const char *c = s; *c; c++)
			if (!((*c >= 'a' && *c <= 'z') ||
			      (*c >= '0' && *c <= '9') || *c == '_' ||
			      *c == '-' || *c == '.'))
				die("an accepted label that is not an id");
	}
	if (pwb__linear_label(m, nl) != NULL)
		die("a label past the end is not NULL");
	double scores[256];
	for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
		pwb__linear_score(m, texts[i], strlen(texts[i]), scores);
		for (size_t l = 0; l < nl; l++)
			if (!(scores[l] >= 0 && scores[l] <= 1))
				die("a score outside [0, 1]");
	}
	void *back = NULL;
	size_t back_len = 0;
	if (pwb__linear_save_mem(m, &back, &back_len) != PWB_OK)
		die("save_mem failed on an accepted model");
	if (back_len != size || memcmp(back, data, size) != 0)
		die("an accepted model does not write back to its own bytes");
	free(back);
}

static void load_one(const uint8_t *data, size_t size)
{
	pwb__linear *m = NULL;
	pwb_diag d;
	pwb_diag_init(&d);
	pwb_status st = pwb__linear_load_mem(&m, data, size, &d);
	size_t n_msg = d.n;
	pwb_diag_release(&d);
	if (st != PWB_OK) {
		if (m)
			die("a refused model was handed out");
		if (st != PWB_EPARSE)
			die("a refusal other than PWB_EPARSE");
		if (n_msg != 1)
			die("a refusal without exactly one reason");
		return;
	}
	if (n_msg)
		die("an accepted model left a message");
	if (!m)
		die("an accepted model is NULL");
	unsigned char sum[32];
	if (size < 32)
		die("a model shorter than its checksum was accepted");
	crypto_generichash(sum, sizeof(sum), data, size - 32, NULL, 0);
	if (memcmp(sum, data + size - 32, 32) != 0)
		die("a model whose checksum does not match was accepted");
	check_model(m, data, size);
	pwb__linear_free(m);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* A copy of exactly size bytes, so that ASan sees any overread. */
	uint8_t *copy = malloc(size ? size : 1);
	if (!copy)
		return 0;
	if (size)
		memcpy(copy, data, size);
	load_one(copy, size);
	if (size >= 32) {
		crypto_generichash(copy + size - 32, 32, copy, size - 32, NULL,
				   0);
		load_one(copy, size);
	}
	free(copy);
	return 0;
}
