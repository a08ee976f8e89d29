/* util.c - internal helpers: allocation, buffers, files, UTF-8, names. */
#include "util/util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* ---- status and diagnostics ---- */

const char *pwb_status_str(pwb_status st)
{
	switch (st) {
#define PWB__STATUS_CASE(name, value, text)                                    \
	case PWB_##name:                                                       \
		return text;
		PWB_STATUS_MAP(PWB__STATUS_CASE)
#undef PWB__STATUS_CASE
	}
	return "unknown status";
}

void pwb_diag_init(pwb_diag *d)
{
	memset(d, 0, sizeof(*d));
}

void pwb_diag_clear(pwb_diag *d)
{
	pwb__diag_rewind(d, 0);
}

void pwb__diag_rewind(pwb_diag *d, size_t n)
{
	if (!d)
		return;
	while (d->n > n) {
		d->n--;
		free(d->entries[d->n].file);
		free(d->entries[d->n].message);
	}
	d->dropped = 0;
}

void pwb_diag_release(pwb_diag *d)
{
	if (!d)
		return;
	pwb_diag_clear(d);
	free(d->entries);
	pwb_diag_init(d);
}

void pwb_diag_add(pwb_diag *d, const char *file, int line, int col,
		  const char *fmt, ...)
{
	if (!d)
		return;
	if (d->n >= PWB_DIAG_MAX) {
		d->dropped++;
		return;
	}
	/* Diagnostics must survive allocation failure of the thing they
	 * report, so they use the plain allocator. */
	if (d->n == d->cap) {
		size_t cap = d->cap ? d->cap * 2 : 8;
		void *p = realloc(d->entries, cap * sizeof(*d->entries));
		if (!p) {
			d->dropped++;
			return;
		}
		d->entries = p;
		d->cap = cap;
	}
	va_list ap;
	va_start(ap, fmt);
	char *msg = NULL;
	int n = vasprintf(&msg, fmt, ap);
	va_end(ap);
	if (n < 0) {
		d->dropped++;
		return;
	}
	pwb_diag_entry *e = &d->entries[d->n];
	e->file = file ? strdup(file) : NULL;
	if (file && !e->file) {
		free(msg);
		d->dropped++;
		return;
	}
	e->line = line;
	e->col = col;
	e->message = msg;
	d->n++;
}

double pwb__now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void pwb__vlogf(pwb_log_fn fn, void *user, pwb_log_level level,
		const char *fmt, va_list ap)
{
	if (!fn)
		return;
	char msg[1024];
	vsnprintf(msg, sizeof(msg), fmt, ap);
	fn(user, level, msg);
}

void pwb__logf(pwb_log_fn fn, void *user, pwb_log_level level,
	       const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	pwb__vlogf(fn, user, level, fmt, ap);
	va_end(ap);
}

size_t pwb__diag_mark(const pwb_diag *d)
{
	return d ? d->n + d->dropped : 0;
}

pwb_status pwb__diag_fail(pwb_diag *d, size_t mark, pwb_status rc,
			  const char *what)
{
	if (rc && d && pwb__diag_mark(d) == mark)
		pwb_diag_add(d, NULL, 0, 0, "%s: %s", what, pwb_status_str(rc));
	return rc;
}

static int diag_cmp(const pwb_diag_entry *a, const pwb_diag_entry *b)
{
	int c = strcmp(a->file ? a->file : "", b->file ? b->file : "");
	if (c)
		return c;
	if (a->line != b->line)
		return a->line < b->line ? -1 : 1;
	if (a->col != b->col)
		return a->col < b->col ? -1 : 1;
	return 0;
}

void pwb_diag_sort(pwb_diag *d)
{
	/* Insertion sort: stable, and diagnostics are few and nearly sorted. */
	for (size_t i = 1; i < d->n; i++) {
		pwb_diag_entry e = d->entries[i];
		size_t j = i;
		while (j > 0 && diag_cmp(&d->entries[j - 1], &e) > 0) {
			d->entries[j] = d->entries[j - 1];
			j--;
		}
		d->entries[j] = e;
	}
}

size_t pwb_diag_format(const pwb_diag_entry *e, char *buf, size_t size)
{
	int n;
	if (e->file && e->line > 0)
		n = snprintf(buf, size, "%s:%d:%d: error: %s", e->file, e->line,
			     e->col > 0 ? e->col : 1, e->message);
	else if (e->file)
		n = snprintf(buf, size, "%s: error: %s", e->file, e->message);
	else
		n = snprintf(buf, size, "error: %s", e->message);
	return n < 0 ? 0 : (size_t)n;
}

/* ---- allocation ---- */

long pwb__alloc_fail_at;
long pwb__alloc_count;

static int alloc_should_fail(void)
{
	if (pwb__alloc_fail_at <= 0)
		return 0;
	return ++pwb__alloc_count == pwb__alloc_fail_at;
}

void *pwb__malloc(size_t n)
{
	return alloc_should_fail() ? NULL : malloc(n ? n : 1);
}

void *pwb__calloc(size_t n, size_t size)
{
	return alloc_should_fail() ? NULL : calloc(n ? n : 1, size ? size : 1);
}

void *pwb__realloc(void *p, size_t n)
{
	return alloc_should_fail() ? NULL : realloc(p, n ? n : 1);
}

char *pwb__strndup(const char *s, size_t n)
{
	char *d = pwb__malloc(n + 1);
	if (d) {
		memcpy(d, s, n);
		d[n] = '\0';
	}
	return d;
}

char *pwb__strdup(const char *s)
{
	return pwb__strndup(s, strlen(s));
}

pwb_status pwb__grow(void **arr, size_t *cap, size_t need, size_t elem)
{
	if (need <= *cap)
		return PWB_OK;
	size_t ncap = *cap ? *cap : 4;
	while (ncap < need) {
		if (ncap > SIZE_MAX / 2 / elem)
			return PWB_ENOMEM;
		ncap *= 2;
	}
	void *p = pwb__realloc(*arr, ncap * elem);
	if (!p)
		return PWB_ENOMEM;
	*arr = p;
	*cap = ncap;
	return PWB_OK;
}

/* ---- buffers ---- */

void pwb__buf_init(pwb__buf *b, size_t max)
{
	memset(b, 0, sizeof(*b));
	b->max = max;
}

void pwb__buf_init_with(pwb__buf *b, char *storage, size_t size, size_t max)
{
	pwb__buf_init(b, max);
	b->s = storage;
	b->cap = size;
	b->borrowed = true;
	if (size)
		storage[0] = '\0';
}

void pwb__buf_release(pwb__buf *b)
{
	if (!b->borrowed)
		free(b->s);
	pwb__buf_init(b, b->max);
}

void pwb__buf_add(pwb__buf *b, const void *data, size_t n)
{
	if (b->err)
		return;
	if (b->max && b->len + n > b->max) {
		b->err = PWB_ETOOLARGE;
		return;
	}
	if (b->len + n + 1 > b->cap) {
		if (b->borrowed) {
			size_t cap = 0;
			char *heap = NULL;
			if (pwb__grow((void **)&heap, &cap, b->len + n + 1,
				      1)) {
				b->err = PWB_ENOMEM;
				return;
			}
			memcpy(heap, b->s, b->len);
			b->s = heap;
			b->cap = cap;
			b->borrowed = false;
		} else {
			size_t cap = b->cap;
			if (pwb__grow((void **)&b->s, &cap, b->len + n + 1,
				      1)) {
				b->err = PWB_ENOMEM;
				return;
			}
			b->cap = cap;
		}
	}
	memcpy(b->s + b->len, data, n);
	b->len += n;
	b->s[b->len] = '\0';
}

void pwb__buf_adds(pwb__buf *b, const char *s)
{
	pwb__buf_add(b, s, strlen(s));
}

void pwb__buf_addc(pwb__buf *b, char c)
{
	pwb__buf_add(b, &c, 1);
}

void pwb__buf_addf(pwb__buf *b, const char *fmt, ...)
{
	char small[256];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(small, sizeof(small), fmt, ap);
	va_end(ap);
	if (n < 0) {
		b->err = PWB_EINVAL;
		return;
	}
	if ((size_t)n < sizeof(small)) {
		pwb__buf_add(b, small, (size_t)n);
		return;
	}
	char *big = pwb__malloc((size_t)n + 1);
	if (!big) {
		b->err = PWB_ENOMEM;
		return;
	}
	va_start(ap, fmt);
	vsnprintf(big, (size_t)n + 1, fmt, ap);
	va_end(ap);
	pwb__buf_add(b, big, (size_t)n);
	free(big);
}

char *pwb__buf_detach(pwb__buf *b)
{
	if (b->err) {
		pwb__buf_release(b);
		return NULL;
	}
	if (!b->s)
		return pwb__strdup("");
	if (b->borrowed) {
		char *copy = pwb__strndup(b->s, b->len);
		pwb__buf_release(b);
		return copy;
	}
	char *s = b->s;
	pwb__buf_init(b, b->max);
	return s;
}

/* ---- files ---- */

pwb_status pwb__read_file(const char *path, size_t max, char **data,
			  size_t *len, pwb_diag *diag)
{
	*data = NULL;
	*len = 0;
	/* O_NONBLOCK so that a FIFO in a policy folder cannot hang us. */
	int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0) {
		pwb_diag_add(diag, path, 0, 0, "cannot read: %s",
			     strerror(errno));
		return PWB_EIO;
	}
	struct stat st;
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		pwb_diag_add(diag, path, 0, 0,
			     "cannot read: not a regular file");
		close(fd);
		return PWB_EIO;
	}
	if ((unsigned long long)st.st_size > max) {
		pwb_diag_add(diag, path, 0, 0,
			     "file too large (%lld bytes; the limit is %zu)",
			     (long long)st.st_size, max);
		close(fd);
		return PWB_ETOOLARGE;
	}
	/* One byte for the NUL and one to see the end of the file without
	 * mistaking a full buffer for a file that grew. */
	size_t cap = (size_t)st.st_size + 2;
	char *buf = pwb__malloc(cap);
	if (!buf) {
		close(fd);
		pwb_diag_add(diag, path, 0, 0, "out of memory");
		return PWB_ENOMEM;
	}
	size_t n = 0;
	for (;;) {
		if (n + 1 >= cap) {
			/* The file grew while we read it. */
			if (n > max) {
				free(buf);
				close(fd);
				pwb_diag_add(diag, path, 0, 0,
					     "file too large (the limit is %zu "
					     "bytes)",
					     max);
				return PWB_ETOOLARGE;
			}
			size_t c = cap;
			if (pwb__grow((void **)&buf, &c, cap * 2, 1)) {
				free(buf);
				close(fd);
				pwb_diag_add(diag, path, 0, 0, "out of memory");
				return PWB_ENOMEM;
			}
			cap = c;
		}
		ssize_t r = read(fd, buf + n, cap - 1 - n);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			pwb_diag_add(diag, path, 0, 0, "cannot read: %s",
				     strerror(errno));
			free(buf);
			close(fd);
			return PWB_EIO;
		}
		if (r == 0)
			break;
		n += (size_t)r;
	}
	close(fd);
	if (n > max) {
		free(buf);
		pwb_diag_add(diag, path, 0, 0,
			     "file too large (the limit is %zu bytes)", max);
		return PWB_ETOOLARGE;
	}
	buf[n] = '\0';
	*data = buf;
	*len = n;
	return PWB_OK;
}

/* ---- UTF-8 ---- */

/* ---- replacing files atomically ---- */

int pwb__write_all(int fd, const void *data, size_t n)
{
	const unsigned char *p = data;
	while (n) {
		ssize_t r = write(fd, p, n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return r < 0 ? errno : EIO;
		p += r;
		n -= (size_t)r;
	}
	return 0;
}

/* fsyncs the folder that holds path, so that the rename itself is durable.
 * Some file systems refuse to fsync a folder; the file is in place by
 * then, so that is not an error. */
static void sync_parent(const char *path)
{
	const char *slash = strrchr(path, '/');
	char dir[4096];
	if (!slash) {
		dir[0] = '.';
		dir[1] = '\0';
	} else {
		size_t n = slash == path ? 1 : (size_t)(slash - path);
		if (n >= sizeof(dir))
			return;
		memcpy(dir, path, n);
		dir[n] = '\0';
	}
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return;
	(void)fsync(fd);
	close(fd);
}

pwb_status pwb__replace_file(const char *path,
			     int (*write_fn)(void *user, int fd), void *user,
			     pwb_diag *diag)
{
	if (!path || !*path || !write_fn) {
		pwb_diag_add(diag, path, 0, 0, "no path");
		return PWB_EINVAL;
	}
	size_t plen = strlen(path);
	char *tmp = pwb__malloc(plen + sizeof(".tmp.XXXXXX"));
	if (!tmp) {
		pwb_diag_add(diag, path, 0, 0, "out of memory");
		return PWB_ENOMEM;
	}
	memcpy(tmp, path, plen);
	memcpy(tmp + plen, ".tmp.XXXXXX", sizeof(".tmp.XXXXXX"));
	int fd = mkostemp(tmp, O_CLOEXEC);
	if (fd < 0) {
		pwb_diag_add(diag, path, 0, 0, "cannot create %s: %s", tmp,
			     strerror(errno));
		free(tmp);
		return PWB_EIO;
	}
	/* mkstemp makes the file 0600; models are no secret and the server
	 * may run as another user than the writer. */
	(void)fchmod(fd, 0644);
	int e = write_fn(user, fd);
	if (!e && fsync(fd) != 0)
		e = errno;
	if (close(fd) != 0 && !e)
		e = errno;
	if (e) {
		pwb_diag_add(diag, path, 0, 0, "cannot write %s: %s", tmp,
			     strerror(e));
		unlink(tmp);
		free(tmp);
		return PWB_EIO;
	}
	if (rename(tmp, path) != 0) {
		pwb_diag_add(diag, path, 0, 0, "cannot rename %s to %s: %s",
			     tmp, path, strerror(errno));
		unlink(tmp);
		free(tmp);
		return PWB_EIO;
	}
	free(tmp);
	sync_parent(path);
	return PWB_OK;
}

size_t pwb__utf8_seq(const unsigned char *s, size_t n)
{
	unsigned char c = s[0];
	if (c < 0x80)
		return 1;
	size_t need = (c & 0xe0) == 0xc0   ? 1
		      : (c & 0xf0) == 0xe0 ? 2
		      : (c & 0xf8) == 0xf0 ? 3
					   : 0;
	if (!need || need >= n)
		return 0;
	uint32_t cp = need == 1 ? c & 0x1f : need == 2 ? c & 0x0f : c & 0x07;
	for (size_t k = 1; k <= need; k++) {
		if ((s[k] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (s[k] & 0x3f);
	}
	static const uint32_t min[] = {0, 0x80, 0x800, 0x10000};
	if (cp < min[need] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return need + 1;
}

bool pwb__utf8_valid(const char *data, size_t len, int *line, int *col,
		     bool *nul)
{
	const unsigned char *s = (const unsigned char *)data;
	int ln = 1, cl = 1;
	*nul = false;
	for (size_t i = 0; i < len;) {
		size_t n = s[i] ? pwb__utf8_seq(s + i, len - i) : 0;
		if (!n) {
			*nul = !s[i];
			*line = ln;
			*col = cl;
			return false;
		}
		if (s[i] == '\n') {
			ln++;
			cl = 1;
		} else {
			cl++;
		}
		i += n;
	}
	return true;
}

void pwb__utf8_fix(pwb__buf *out, const char *data, size_t len, bool keep_nul)
{
	const unsigned char *s = (const unsigned char *)data;
	size_t from = 0; /* the start of the valid run not yet added */
	for (size_t i = 0; i < len;) {
		size_t n = s[i] || keep_nul ? pwb__utf8_seq(s + i, len - i) : 0;
		if (n) {
			i += n;
			continue;
		}
		pwb__buf_add(out, data + from, i - from);
		pwb__buf_add(out, "\xef\xbf\xbd", 3);
		from = ++i;
	}
	pwb__buf_add(out, data + from, len - from);
}

/* ---- names ---- */

size_t pwb__edit_distance(const char *a, const char *b, size_t max)
{
	size_t la = strlen(a), lb = strlen(b);
	if (la > 64 || lb > 64)
		return max + 1;
	if ((la > lb ? la - lb : lb - la) > max)
		return max + 1;
	size_t row[65];
	for (size_t j = 0; j <= lb; j++)
		row[j] = j;
	for (size_t i = 1; i <= la; i++) {
		size_t prev = row[0];
		row[0] = i;
		size_t best = row[0];
		for (size_t j = 1; j <= lb; j++) {
			size_t cur = row[j];
			size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
			size_t v = prev + cost;
			if (row[j] + 1 < v)
				v = row[j] + 1;
			if (row[j - 1] + 1 < v)
				v = row[j - 1] + 1;
			row[j] = v;
			prev = cur;
			if (v < best)
				best = v;
		}
		if (best > max)
			return max + 1;
	}
	return row[lb] > max ? max + 1 : row[lb];
}

const char *pwb__suggest(const char *name, const char *const *cands, size_t n)
{
	size_t len = strlen(name);
	size_t max = len < 4 ? 1 : len < 10 ? 2 : 3;
	const char *best = NULL;
	size_t bestd = max + 1;
	for (size_t i = 0; i < n; i++) {
		size_t d = pwb__edit_distance(name, cands[i], max);
		if (d < bestd) {
			bestd = d;
			best = cands[i];
		}
	}
	return best;
}

pwb__hint pwb__hint_text(const char *suggestion)
{
	pwb__hint h = {""};
	if (suggestion)
		snprintf(h.text, sizeof(h.text), " (did you mean '%s'?)",
			 suggestion);
	return h;
}

pwb__hint pwb__hint_for(const char *name, const char *const *cands, size_t n)
{
	return pwb__hint_text(pwb__suggest(name, cands, n));
}

uint64_t pwb__fnv1a(uint64_t h, const void *data, size_t n)
{
	const unsigned char *p = data;
	for (size_t i = 0; i < n; i++) {
		h ^= p[i];
		h *= 0x100000001b3ULL;
	}
	return h;
}

void pwb__fmt_double(char *buf, size_t size, double v)
{
	for (int prec = 6; prec <= 17; prec++) {
		snprintf(buf, size, "%.*g", prec, v);
		if (strtod(buf, NULL) == v)
			return;
	}
}

/* ---- arena ---- */

struct pwb__arena_chunk {
	pwb__arena_chunk *next;
	max_align_t data[];
};

void pwb__arena_init(pwb__arena *a)
{
	memset(a, 0, sizeof(*a));
}

void pwb__arena_release(pwb__arena *a)
{
	pwb__arena_chunk *c = a->head;
	while (c) {
		pwb__arena_chunk *n = c->next;
		free(c);
		c = n;
	}
	pwb__arena_init(a);
}

void *pwb__arena_alloc(pwb__arena *a, size_t n)
{
	const size_t align = sizeof(max_align_t);
	n = (n + align - 1) / align * align;
	if (!n)
		n = align;
	if (!a->head || a->used + n > a->size) {
		size_t size = a->size ? a->size * 2 : 4096;
		while (size < n)
			size *= 2;
		pwb__arena_chunk *c = pwb__malloc(sizeof(*c) + size);
		if (!c)
			return NULL;
		c->next = a->head;
		a->head = c;
		a->size = size;
		a->used = 0;
	}
	char *p = (char *)a->head->data + a->used;
	a->used += n;
	memset(p, 0, n);
	return p;
}

char *pwb__arena_strdup(pwb__arena *a, const char *s, bool *failed)
{
	if (!s)
		return NULL;
	size_t n = strlen(s) + 1;
	char *d = pwb__arena_alloc(a, n);
	if (!d) {
		*failed = true;
		return NULL;
	}
	memcpy(d, s, n);
	return d;
}

ssize_t pwb__read_line(FILE *f, char **buf, size_t *cap, size_t max,
		       size_t *len, bool *too_long)
{
	size_t n = 0, took = 0;
	*too_long = false;
	*len = 0;
	int c;
	errno = 0;
	while ((c = getc_unlocked(f)) != EOF) {
		if (++took > PWB__LINE_SKIP_MAX &&
		    took - PWB__LINE_SKIP_MAX > max) {
			errno = EFBIG; /* endless input: stop here */
			return -1;
		}
		if (n < max + 1) {
			if (n + 2 > *cap) {
				size_t want = *cap ? *cap * 2 : 256;
				if (want > max + 2)
					want = max + 2;
				char *b = pwb__realloc(*buf, want);
				if (!b) {
					errno = ENOMEM;
					return -1;
				}
				*buf = b;
				*cap = want;
			}
			(*buf)[n++] = (char)c;
		} else {
			*too_long = true;
		}
		if (c == '\n')
			break;
	}
	if (ferror(f))
		return -1;
	if (*buf)
		(*buf)[n] = '\0';
	*len = n;
	size_t content = n && (*buf)[n - 1] == '\n' ? n - 1 : n;
	if (content > max)
		*too_long = true;
	return (ssize_t)took;
}
