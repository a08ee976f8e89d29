/*
 * util.h - internal helpers shared by every module (pwb__ names): growable
 * buffers with caps, file reading with a size cap, UTF-8 validation, name
 * suggestions and hashing. Not part of the public API.
 */
#ifndef PWB_UTIL_H
#define PWB_UTIL_H

#include "pwb/common.h"

#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#ifdef NDEBUG
#define PWB_ALWAYS(x) (x)
#define PWB_NEVER(x) (x)
#else
#include <assert.h>
#define PWB_ALWAYS(x) ((x) ? 1 : (assert(0), 0))
#define PWB_NEVER(x) ((x) ? (assert(0), 1) : 0)
#endif

#define PWB_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* Allocation goes through these so the allocation-failure sweep can fail
 * the n-th call (tests set pwb__alloc_fail_at). */
void *pwb__malloc(size_t n);
void *pwb__calloc(size_t n, size_t size);
void *pwb__realloc(void *p, size_t n);
char *pwb__strdup(const char *s);
char *pwb__strndup(const char *s, size_t n);
extern long pwb__alloc_fail_at; /* 0: never; n: fail the n-th call */
extern long pwb__alloc_count;

/*
 * Grows *arr (of elements of size elem) so that it holds at least need
 * elements. Returns PWB_ENOMEM on failure and leaves *arr unchanged.
 */
pwb_status pwb__grow(void **arr, size_t *cap, size_t need, size_t elem);

/* A growable string with a cap; always NUL-terminated once non-empty. */
typedef struct pwb__buf {
	char *s;
	size_t len;
	size_t cap;
	size_t max;	/* 0: no cap */
	pwb_status err; /* first failure; later appends do nothing */
	bool borrowed;	/* s is the caller's storage, not the heap */
} pwb__buf;

void pwb__buf_init(pwb__buf *b, size_t max);
/* Starts in the caller's storage (e.g. a stack array) and moves to the
 * heap only if it outgrows it. */
void pwb__buf_init_with(pwb__buf *b, char *storage, size_t size, size_t max);
void pwb__buf_release(pwb__buf *b);
void pwb__buf_add(pwb__buf *b, const void *data, size_t n);
void pwb__buf_adds(pwb__buf *b, const char *s);
void pwb__buf_addc(pwb__buf *b, char c);
void pwb__buf_addf(pwb__buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Hands the string over to the caller (never NULL on success). */
char *pwb__buf_detach(pwb__buf *b);

/*
 * Reads a whole regular file of at most max bytes. On failure returns
 * PWB_EIO, PWB_ETOOLARGE or PWB_ENOMEM and adds one message to diag, with
 * path as its file (line 0).
 */
pwb_status pwb__read_file(const char *path, size_t max, char **data,
			  size_t *len, pwb_diag *diag);

/*
 * Replaces the file at path atomically: write(user, fd) fills a new
 * temporary file beside it (mode 0644) and returns 0 or an errno; the
 * file is then fsynced and renamed over path, and the folder fsynced. A
 * crash or an error never leaves a half-written file at path. On failure
 * returns PWB_EINVAL, PWB_EIO or PWB_ENOMEM and adds one message to diag,
 * with path as its file (line 0).
 */
pwb_status pwb__replace_file(const char *path, int (*write)(void *user, int fd),
			     void *user, pwb_diag *diag);
/*
 * Reads one line of f (with its '\n', if any) into *buf, growing it to at
 * most max + 2 bytes: a longer line is read to its end but not kept, and
 * *too_long is set (*len is then the bytes kept). Returns the bytes the
 * line took from f (0 at the end of f), or -1 with errno set on a read or
 * allocation failure, and with errno EFBIG when a line runs on for more
 * than max + PWB__LINE_SKIP_MAX bytes (endless input: the caller stops
 * reading). Unlike getline(), a hostile line can take neither memory
 * beyond max nor time without end.
 */
#define PWB__LINE_SKIP_MAX (64u * 1024 * 1024)
ssize_t pwb__read_line(FILE *f, char **buf, size_t *cap, size_t max,
		       size_t *len, bool *too_long);
/* Writes all n bytes to fd (retrying short writes); 0 or an errno. */
int pwb__write_all(int fd, const void *data, size_t n);
/* Drops the messages of d past its first n (d->n before a call whose
 * failure is expected and handled); NULL is accepted. */
void pwb__diag_rewind(pwb_diag *d, size_t n);

/* Seconds on the monotonic clock. */
double pwb__now(void);

/* Formats a message (at most 1 KiB) and passes it to fn; nothing when fn
 * is NULL. */
void pwb__logf(pwb_log_fn fn, void *user, pwb_log_level level,
	       const char *fmt, ...) __attribute__((format(printf, 4, 5)));
void pwb__vlogf(pwb_log_fn fn, void *user, pwb_log_level level,
		const char *fmt, va_list ap)
    __attribute__((format(printf, 4, 0)));

/*
 * One error channel: a library call that fails leaves a message in its
 * pwb_diag. pwb__diag_mark() counts the messages a diag has seen (0 for
 * NULL); pwb__diag_fail() returns rc and, when rc is a failure and nothing
 * was added since mark, adds "what: <status>", so that no failing path
 * goes without a message.
 */
size_t pwb__diag_mark(const pwb_diag *d);
pwb_status pwb__diag_fail(pwb_diag *d, size_t mark, pwb_status rc,
			  const char *what);

/*
 * Checks that data is UTF-8 without NUL bytes. On failure returns false and
 * gives the 1-based line and column of the first bad byte.
 */
bool pwb__utf8_valid(const char *data, size_t len, int *line, int *col,
		     bool *nul);
/* The length of the valid UTF-8 sequence at s (1 for ASCII, NUL too), or
 * 0 when the byte at s starts none; n > 0 bytes are readable. */
size_t pwb__utf8_seq(const unsigned char *s, size_t n);
/* Appends data to out as valid UTF-8: each byte that is not part of a
 * valid sequence becomes U+FFFD, and so does a NUL byte unless keep_nul. */
void pwb__utf8_fix(pwb__buf *out, const char *data, size_t len, bool keep_nul);

/* Levenshtein distance, capped: returns max+1 when larger than max. */
size_t pwb__edit_distance(const char *a, const char *b, size_t max);
/* The candidate closest to name when close enough to suggest, else NULL. */
const char *pwb__suggest(const char *name, const char *const *cands, size_t n);
/* " (did you mean 'x'?)" when a candidate is close to name, else "". */
typedef struct pwb__hint {
	char text[160];
} pwb__hint;
pwb__hint pwb__hint_for(const char *name, const char *const *cands, size_t n);
/* The same hint for a suggestion already found (NULL: ""). */
pwb__hint pwb__hint_text(const char *suggestion);

/* A 64-bit bijection that spreads every input bit over every output bit
 * (the finaliser of MurmurHash3), for hashed features. */
static inline uint64_t pwb__mix64(uint64_t h)
{
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdULL;
	h ^= h >> 33;
	h *= 0xc4ceb9fe1a85ec53ULL;
	h ^= h >> 33;
	return h;
}

/* splitmix64: a small, fast random sequence, the same everywhere for the
 * same seed (training splits, simulations, bootstraps). */
static inline uint64_t pwb__rng_next(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

/* 64-bit FNV-1a, for hash tables (not for identities). */
uint64_t pwb__fnv1a(uint64_t h, const void *data, size_t n);
#define PWB__FNV_INIT 0xcbf29ce484222325ULL

/* Formats a double the shortest way that reads back the same. */
void pwb__fmt_double(char *buf, size_t size, double v);

/* A bump allocator for objects freed all at once. */
typedef struct pwb__arena_chunk pwb__arena_chunk;
typedef struct pwb__arena {
	pwb__arena_chunk *head;
	size_t used; /* bytes used in head */
	size_t size; /* capacity of head */
} pwb__arena;

void pwb__arena_init(pwb__arena *a);
void pwb__arena_release(pwb__arena *a);
/* Zeroed, aligned for any type; NULL when out of memory. */
void *pwb__arena_alloc(pwb__arena *a, size_t n);
/* Copies s (NULL stays NULL); sets *failed on allocation failure. */
char *pwb__arena_strdup(pwb__arena *a, const char *s, bool *failed);

#endif
