/* sealed.c - binary files sealed with a BLAKE2b-256 checksum. */
#include "util/sealed.h"

#include <errno.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

struct pwb__sealw {
	crypto_generichash_state hs;
	int fd;	       /* < 0: into mem */
	pwb__buf *mem; /* when fd < 0 */
	int err;       /* errno of the first failed write */
	size_t len;    /* staged bytes (fd >= 0) */
	unsigned char stage[16384];
};

static void flush(pwb__sealw *w)
{
	if (!w->err)
		w->err = pwb__write_all(w->fd, w->stage, w->len);
	w->len = 0;
}

static void raw(pwb__sealw *w, const void *data, size_t n)
{
	if (w->fd < 0) {
		pwb__buf_add(w->mem, data, n);
		if (w->mem->err && !w->err)
			w->err = ENOMEM;
		return;
	}
	const unsigned char *p = data;
	while (n && !w->err) {
		size_t k = sizeof(w->stage) - w->len;
		if (k > n)
			k = n;
		memcpy(w->stage + w->len, p, k);
		w->len += k;
		p += k;
		n -= k;
		if (w->len == sizeof(w->stage))
			flush(w);
	}
}

void pwb__sealw_put(pwb__sealw *w, const void *data, size_t n)
{
	crypto_generichash_update(&w->hs, data, n);
	raw(w, data, n);
}

void pwb__sealw_u32(pwb__sealw *w, uint32_t v)
{
	unsigned char b[4] = {(unsigned char)v, (unsigned char)(v >> 8),
			      (unsigned char)(v >> 16),
			      (unsigned char)(v >> 24)};
	pwb__sealw_put(w, b, 4);
}

void pwb__sealw_u64(pwb__sealw *w, uint64_t v)
{
	pwb__sealw_u32(w, (uint32_t)v);
	pwb__sealw_u32(w, (uint32_t)(v >> 32));
}

void pwb__sealw_f32(pwb__sealw *w, float f)
{
	uint32_t v;
	memcpy(&v, &f, 4);
	pwb__sealw_u32(w, v);
}

void pwb__sealw_f64(pwb__sealw *w, double d)
{
	uint64_t v;
	memcpy(&v, &d, 8);
	pwb__sealw_u64(w, v);
}

bool pwb__sealw_failed(const pwb__sealw *w)
{
	return w->err != 0;
}

/* Runs body and appends the checksum; 0 or the errno of a failed write. */
static int seal(pwb__sealw *w, pwb__seal_body body, const void *ctx)
{
	crypto_generichash_init(&w->hs, NULL, 0, PWB__SEAL_LEN);
	body(w, ctx);
	unsigned char sum[PWB__SEAL_LEN];
	crypto_generichash_final(&w->hs, sum, sizeof(sum));
	raw(w, sum, sizeof(sum));
	if (w->fd >= 0)
		flush(w);
	return w->err;
}

pwb_status pwb__sealed_to_mem(pwb__seal_body body, const void *ctx, void **data,
			      size_t *len)
{
	*data = NULL;
	*len = 0;
	if (sodium_init() < 0)
		return PWB_ENOMEM;
	pwb__sealw *w = pwb__malloc(sizeof(*w));
	if (!w)
		return PWB_ENOMEM;
	pwb__buf buf;
	pwb__buf_init(&buf, 0);
	w->fd = -1;
	w->mem = &buf;
	w->err = 0;
	w->len = 0;
	int e = seal(w, body, ctx);
	free(w);
	if (e || !buf.len) {
		pwb__buf_release(&buf);
		return PWB_ENOMEM;
	}
	*len = buf.len;
	*data = pwb__buf_detach(&buf);
	return PWB_OK;
}

typedef struct file_ctx {
	pwb__sealw *w;
	pwb__seal_body body;
	const void *ctx;
} file_ctx;

static int to_fd(void *user, int fd)
{
	file_ctx *c = user;
	c->w->fd = fd;
	c->w->mem = NULL;
	c->w->err = 0;
	c->w->len = 0;
	return seal(c->w, c->body, c->ctx);
}

pwb_status pwb__sealed_to_file(const char *path, pwb__seal_body body,
			       const void *ctx, pwb_diag *diag)
{
	if (sodium_init() < 0) {
		pwb_diag_add(diag, path, 0, 0, "cannot initialise libsodium");
		return PWB_ENOMEM;
	}
	pwb__sealw *w = pwb__malloc(sizeof(*w));
	if (!w) {
		pwb_diag_add(diag, path, 0, 0, "out of memory");
		return PWB_ENOMEM;
	}
	file_ctx c = {w, body, ctx};
	pwb_status rc = pwb__replace_file(path, to_fd, &c, diag);
	free(w);
	return rc;
}

bool pwb__sealed_ok(const void *data, size_t len)
{
	if (len < PWB__SEAL_LEN || sodium_init() < 0)
		return false;
	unsigned char sum[PWB__SEAL_LEN];
	crypto_generichash(sum, sizeof(sum), data, len - PWB__SEAL_LEN, NULL,
			   0);
	return sodium_memcmp(sum,
			     (const unsigned char *)data + len - PWB__SEAL_LEN,
			     PWB__SEAL_LEN) == 0;
}
