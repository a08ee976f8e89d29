/*
 * pwb/common.h - status codes, diagnostics and logging shared by every module.
 *
 * Ownership: objects returned through `**out` belong to the caller and are
 * freed with the matching `_free`; pointers returned by getters are borrowed
 * until their parent object is freed. The library never prints, exits or
 * aborts: it returns a pwb_status and, where a caller passes one, fills a
 * pwb_diag with messages a user can act on.
 */
#ifndef PWB_COMMON_H
#define PWB_COMMON_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

#define PWB_VERSION "0.1.0"

/* One status list for the whole library: X(name, value, description). */
#define PWB_STATUS_MAP(X)                                                      \
	X(OK, 0, "ok")                                                         \
	X(ENOMEM, 1, "out of memory")                                          \
	X(EINVAL, 2, "invalid argument")                                       \
	X(EIO, 3, "input/output error")                                        \
	X(EPARSE, 4, "malformed input")                                        \
	X(EPOLICY, 5, "invalid policy")                                        \
	X(EBOUNDS, 6, "outside the bounds")                                    \
	X(ENOTFOUND, 7, "not found")                                           \
	X(ETOOLARGE, 8, "input too large")

typedef enum pwb_status {
#define PWB__STATUS_ENUM(name, value, text) PWB_##name = value,
	PWB_STATUS_MAP(PWB__STATUS_ENUM)
#undef PWB__STATUS_ENUM
} pwb_status;

/* A short English description of a status; never NULL. */
const char *pwb_status_str(pwb_status st);

/*
 * Diagnostics: a list of messages, each tied to a place in an input file.
 * Every function here accepts a NULL diag (and then does nothing).
 * `line` and `col` are 1-based; 0 means "the whole file" (or no file when
 * `file` is NULL). Embedded in the caller's struct: pwb_diag_init() before
 * use, pwb_diag_release() after, pwb_diag_clear() to empty it and keep it.
 */
typedef struct pwb_diag_entry {
	char *file;
	int line;
	int col;
	char *message;
} pwb_diag_entry;

typedef struct pwb_diag {
	pwb_diag_entry *entries;
	size_t n;
	size_t cap;
	size_t dropped; /* entries past PWB_DIAG_MAX, counted but not kept */
} pwb_diag;

#define PWB_DIAG_MAX 10000

void pwb_diag_init(pwb_diag *d);
void pwb_diag_release(pwb_diag *d);
void pwb_diag_clear(pwb_diag *d);

/* Appends one message. A NULL diag is accepted and ignores the message. */
void pwb_diag_add(pwb_diag *d, const char *file, int line, int col,
		  const char *fmt, ...) __attribute__((format(printf, 5, 6)));

/* Sorts by file, line and column, keeping the order of equal places. */
void pwb_diag_sort(pwb_diag *d);

/*
 * Formats one entry as `file:line:col: error: message` (or `file: error:
 * message` when it has no line) into buf. Returns the length it needed.
 */
size_t pwb_diag_format(const pwb_diag_entry *e, char *buf, size_t size);

/* Log levels and the callback through which the library logs. */
typedef enum pwb_log_level {
	PWB_LOG_DEBUG,
	PWB_LOG_INFO,
	PWB_LOG_WARN,
	PWB_LOG_ERROR
} pwb_log_level;

typedef void (*pwb_log_fn)(void *user, pwb_log_level level, const char *msg);

#ifdef __cplusplus
}
#endif
#endif
