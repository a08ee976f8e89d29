/*
 * sealed.h - binary files sealed with a checksum: little-endian fields
 * written to memory or, staged, to a file (atomically replaced), followed
 * by the BLAKE2b-256 of every byte before it. The model files of the
 * bounds and prefs modules are written this way.
 */
#ifndef PWB_SEALED_H
#define PWB_SEALED_H

#include "util/util.h"

#include <stdint.h>

#define PWB__SEAL_LEN 32u

typedef struct pwb__sealw pwb__sealw;

/* The fields of a file; each goes into the checksum. */
void pwb__sealw_put(pwb__sealw *w, const void *data, size_t n);
void pwb__sealw_u32(pwb__sealw *w, uint32_t v);
void pwb__sealw_u64(pwb__sealw *w, uint64_t v);
void pwb__sealw_f32(pwb__sealw *w, float f);
void pwb__sealw_f64(pwb__sealw *w, double d);
/* True once a write failed: long loops may stop early. */
bool pwb__sealw_failed(const pwb__sealw *w);

/* Writes the fields of a file (everything but the checksum). */
typedef void (*pwb__seal_body)(pwb__sealw *w, const void *ctx);

/* body's bytes and their checksum in memory; *data is freed with free(). */
pwb_status pwb__sealed_to_mem(pwb__seal_body body, const void *ctx, void **data,
			      size_t *len);
/* The same into path, through pwb__replace_file: a crash never leaves a
 * half-written file. On failure adds one message to diag, with path as its
 * file (line 0). */
pwb_status pwb__sealed_to_file(const char *path, pwb__seal_body body,
			       const void *ctx, pwb_diag *diag);
/* Whether the last PWB__SEAL_LEN bytes of data are the checksum of the
 * rest. */
bool pwb__sealed_ok(const void *data, size_t len);

#endif
