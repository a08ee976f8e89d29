/*
 * lexicon.c - the lexicon files (policies/lexicons/<lang>.tsv) and the one
 * Vectorscan database that holds every entry and the PII patterns.
 */
#include "bounds/bounds_int.h"

#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Splits line at TABs into at most n fields; returns the count. */
static size_t split_tabs(char *line, char **fields, size_t n)
{
	size_t k = 0;
	char *s = line;
	while (k < n) {
		fields[k++] = s;
		char *tab = strchr(s, '\t');
		if (!tab)
			break;
		*tab = '\0';
		s = tab + 1;
	}
	return k;
}

static bool lower_ascii_ok(const char *s)
{
	for (; *s; s++)
		if (*s == '\t' || *s == '\r')
			return false;
	return true;
}

/* Appends one literal part of a word, phrase or compound: any run of
 * whitespace between its words, ASCII punctuation escaped. */
static void add_literal(pwb__buf *b, const char *s, size_t n)
{
	bool space = false;
	size_t at = b->len;
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)s[i];
		if (ch == ' ') {
			space = true;
			continue;
		}
		if (space && b->len > at)
			pwb__buf_adds(b, "\\s+");
		space = false;
		if (ch >= 'A' && ch <= 'Z')
			ch = (unsigned char)(ch - 'A' + 'a');
		if (ch < 0x80 &&
		    !((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9')))
			pwb__buf_addf(b, "\\x%02x", ch);
		else
			pwb__buf_addc(b, (char)ch);
	}
}

/* "a|b" as "(a|b)", each alternative literal; false when one is empty. */
static bool add_alternatives(pwb__buf *b, const char *s, size_t n)
{
	pwb__buf_addc(b, '(');
	for (size_t i = 0, from = 0; i <= n; i++) {
		if (i < n && s[i] != '|')
			continue;
		size_t k = from;
		while (k < i && s[k] == ' ')
			k++;
		if (k == i)
			return false;
		if (from)
			pwb__buf_addc(b, '|');
		add_literal(b, s + from, i - from);
		from = i + 1;
	}
	pwb__buf_addc(b, ')');
	return true;
}

/*
 * A compound "MODIFIERS+HEADS" (policies/lexicons/README.md) as the
 * regex that matches it closed, hyphenated or open, with a German
 * linking element between: "nervengas+bombe" matches Nervengasbombe,
 * Nervengas-Bombe and Nervengas Bombe. NULL (and *bad set) when it is
 * not one '+' between two lists of words.
 */
char *pwb__lexicon_compound(const char *entry, bool *bad)
{
	*bad = false;
	const char *plus = strchr(entry, '+');
	if (!plus || strchr(plus + 1, '+')) {
		*bad = true;
		return NULL;
	}
	pwb__buf b;
	pwb__buf_init(&b, 0);
	bool ok = add_alternatives(&b, entry, (size_t)(plus - entry));
	pwb__buf_adds(&b, "(s|n|es|en|e)?(-|\\s+)?");
	ok = ok && add_alternatives(&b, plus + 1, strlen(plus + 1));
	if (!ok) {
		pwb__buf_release(&b);
		*bad = true;
		return NULL;
	}
	return pwb__buf_detach(&b);
}

/*
 * The categories field of a context entry, "hate,harassment", as one byte
 * per registry category in *out (malloc'ed). A parent id lowers its
 * children too. False with a message in diag on an unknown id.
 */
static pwb_status context_categories(const pwb_policy *p, const char *field,
				     unsigned char **out, const char *path,
				     int line, int col, pwb_diag *diag)
{
	size_t n = pwb_policy_n_categories(p);
	unsigned char *set = pwb__calloc(n ? n : 1, 1);
	if (!set)
		return PWB_ENOMEM;
	bool any = false;
	for (const char *s = field; s;) {
		const char *comma = strchr(s, ',');
		size_t l = comma ? (size_t)(comma - s) : strlen(s);
		char id[128];
		if (!l || l >= sizeof(id)) {
			pwb_diag_add(diag, path, line, col,
				     "categories must be category ids "
				     "separated by ',', not '%s'",
				     field);
			free(set);
			return PWB_EPARSE;
		}
		memcpy(id, s, l);
		id[l] = '\0';
		if (pwb_policy_find_category(p, id) < 0) {
			pwb__hint h =
			    pwb__hint_text(pwb_policy_suggest_category(p, id));
			pwb_diag_add(diag, path, line, col,
				     "unknown category '%s'%s", id, h.text);
			free(set);
			return PWB_EPARSE;
		}
		/* The id itself and every category under it ("a.b" under
		 * "a"). */
		for (size_t c = 0; c < n; c++) {
			const char *cid = pwb_policy_category(p, c)->id;
			if (!strncmp(cid, id, l) &&
			    (cid[l] == '\0' || cid[l] == '.')) {
				set[c] = 1;
				any = true;
			}
		}
		s = comma ? comma + 1 : NULL;
	}
	if (!any) {
		pwb_diag_add(diag, path, line, col, "no category to lower");
		free(set);
		return PWB_EPARSE;
	}
	*out = set;
	return PWB_OK;
}

/* Reads one lexicon file; context says it is the context lexicon, whose
 * first field lists categories and whose weight is a factor below 1. */
static pwb_status load_file(pwb_bounds *b, const char *path, bool context,
			    pwb_diag *diag)
{
	char *data;
	size_t len;
	pwb_status rc =
	    pwb__read_file(path, PWB__LEX_MAX_FILE, &data, &len, diag);
	if (rc)
		return rc == PWB_ENOMEM ? rc : PWB_EPARSE;
	int bl, bc;
	bool nul;
	if (!pwb__utf8_valid(data, len, &bl, &bc, &nul)) {
		pwb_diag_add(diag, path, bl, bc, "%s",
			     nul ? "NUL byte in the file"
				 : "invalid UTF-8 in the file");
		free(data);
		return PWB_EPARSE;
	}
	const pwb_policy *p = b->policy;
	char *copy = pwb__strdup(path);
	if (!copy || pwb__grow((void **)&b->lex_files, &b->cap_lex_files,
			       b->n_lex_files + 1, sizeof(char *))) {
		free(copy);
		free(data);
		return PWB_ENOMEM;
	}
	b->lex_files[b->n_lex_files++] = copy;
	int line = 0;
	pwb_status bad = PWB_OK;
	for (char *s = data, *next; s && *s; s = next) {
		line++;
		char *nl = strchr(s, '\n');
		next = nl ? nl + 1 : NULL;
		if (nl)
			*nl = '\0';
		size_t l = strlen(s);
		if (l && s[l - 1] == '\r')
			s[--l] = '\0';
		if (!l || s[0] == '#')
			continue;
		char *f[6];
		size_t nf = split_tabs(s, f, 6);
		if (nf != 5) {
			pwb_diag_add(diag, path, line, 1,
				     "expected 5 TAB-separated fields "
				     "(%s, kind, %s, entry, note), found %zu",
				     context ? "categories" : "category",
				     context ? "factor" : "weight", nf);
			bad = PWB_EPARSE;
			continue;
		}
		pwb__lex_entry e = {
		    .cat = context ? -1 : pwb_policy_find_category(p, f[0]),
		    .file = (int)b->n_lex_files - 1,
		    .line = line};
		if (context) {
			pwb_status r = context_categories(p, f[0], &e.lowers,
							  path, line, 1, diag);
			if (r == PWB_ENOMEM) {
				free(data);
				return r;
			}
			if (r) {
				bad = r;
				continue;
			}
		} else if (e.cat < 0) {
			pwb__hint h = pwb__hint_text(
			    pwb_policy_suggest_category(p, f[0]));
			pwb_diag_add(diag, path, line, 1,
				     "unknown category '%s'%s", f[0], h.text);
			bad = PWB_EPARSE;
			continue;
		}
		int col = (int)(f[1] - s) + 1;
		if (!strcmp(f[1], "word"))
			e.kind = PWB__LEX_WORD;
		else if (!strcmp(f[1], "phrase"))
			e.kind = PWB__LEX_PHRASE;
		else if (!strcmp(f[1], "regex") || !strcmp(f[1], "compound"))
			e.kind = PWB__LEX_REGEX;
		else {
			pwb_diag_add(diag, path, line, col,
				     "kind must be word, phrase, compound or "
				     "regex, not '%s'",
				     f[1]);
			free(e.lowers);
			bad = PWB_EPARSE;
			continue;
		}
		char *end;
		errno = 0;
		double w = strtod(f[2], &end);
		if (*end || errno || !(w > 0 && (context ? w < 1 : w <= 1))) {
			pwb_diag_add(diag, path, line, (int)(f[2] - s) + 1,
				     context ? "factor must be a number in "
					       "(0, 1), not '%s'"
					     : "weight must be a number in "
					       "(0, 1], not '%s'",
				     f[2]);
			free(e.lowers);
			bad = PWB_EPARSE;
			continue;
		}
		e.weight = (float)w;
		if (!*f[3] || !lower_ascii_ok(f[3])) {
			pwb_diag_add(diag, path, line, (int)(f[3] - s) + 1,
				     "empty entry");
			free(e.lowers);
			bad = PWB_EPARSE;
			continue;
		}
		if (b->n_entries >= PWB__LEX_MAX_ENTRIES) {
			pwb_diag_add(diag, path, line, 1,
				     "more than %d lexicon entries",
				     PWB__LEX_MAX_ENTRIES);
			free(e.lowers);
			bad = PWB_EPARSE;
			break;
		}
		bool bad_compound = false;
		if (!strcmp(f[1], "compound"))
			e.entry = pwb__lexicon_compound(f[3], &bad_compound);
		else
			e.entry = pwb__strdup(f[3]);
		if (bad_compound) {
			pwb_diag_add(diag, path, line, (int)(f[3] - s) + 1,
				     "a compound is MODIFIERS+HEADS: one '+' "
				     "between two lists of words separated by "
				     "'|', not '%s'",
				     f[3]);
			free(e.lowers);
			bad = PWB_EPARSE;
			continue;
		}
		e.note = pwb__strdup(f[4]);
		if (!e.entry || !e.note ||
		    pwb__grow((void **)&b->entries, &b->cap_entries,
			      b->n_entries + 1, sizeof(*b->entries))) {
			free(e.entry);
			free(e.note);
			free(e.lowers);
			free(data);
			return PWB_ENOMEM;
		}
		b->entries[b->n_entries++] = e;
	}
	free(data);
	return bad;
}

static int cmp_names(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

pwb_status pwb__lexicon_load(pwb_bounds *b, const char *dir, pwb_diag *diag)
{
	DIR *d = opendir(dir);
	if (!d) {
		pwb_diag_add(diag, dir, 0, 0,
			     "cannot read the lexicon folder: %s",
			     strerror(errno));
		return PWB_EPARSE;
	}
	char *names[256];
	size_t n = 0;
	struct dirent *de;
	while ((de = readdir(d)) != NULL && n < PWB_ARRAY_LEN(names)) {
		size_t l = strlen(de->d_name);
		if (de->d_name[0] == '.' || l < 5 ||
		    strcmp(de->d_name + l - 4, ".tsv") != 0)
			continue;
		if (!(names[n] = pwb__strdup(de->d_name)))
			break;
		n++;
	}
	closedir(d);
	qsort(names, n, sizeof(*names), cmp_names);
	pwb_status rc = PWB_OK;
	for (size_t i = 0; i < n; i++) {
		pwb__buf path;
		pwb__buf_init(&path, 0);
		pwb__buf_addf(&path, "%s/%s", dir, names[i]);
		pwb_status r =
		    path.err
			? path.err
			: load_file(b, path.s,
				    !strcmp(names[i], PWB__CONTEXT_FILE), diag);
		pwb__buf_release(&path);
		if (r == PWB_ENOMEM)
			rc = r;
		else if (r && !rc)
			rc = r;
	}
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	return rc;
}

/* The regex of an entry: words and phrases are literal, with any run of
 * whitespace between the words of a phrase; matching is on lowercased
 * text, and word boundaries are checked after the match. */
char *pwb__lexicon_regex(const pwb__lex_entry *e)
{
	if (e->kind == PWB__LEX_REGEX)
		return pwb__strdup(e->entry);
	pwb__buf b;
	pwb__buf_init(&b, 0);
	add_literal(&b, e->entry, strlen(e->entry));
	return pwb__buf_detach(&b);
}

/* ---- where a match starts ---- */

static void *re_malloc(size_t n, void *data)
{
	(void)data;
	return pwb__malloc(n);
}

static void re_free(void *p, void *data)
{
	(void)data;
	free(p);
}

void pwb__lexicon_free_re(pwb_bounds *b)
{
	for (size_t i = 0; b->lex_re && i < b->n_entries; i++)
		pcre2_code_free(atomic_load(&b->lex_re[i]));
	free(b->lex_re);
	pcre2_match_context_free(b->re_mc);
	pcre2_general_context_free(b->re_gc);
}

void pwb__start_init(pwb__start_ctx *c)
{
	c->md = NULL;
	c->searches = PWB__START_SEARCHES;
	c->wide = PWB__START_WIDE;
	c->oom = false;
}

void pwb__start_release(pwb__start_ctx *c)
{
	pcre2_match_data_free(c->md);
	c->md = NULL;
}

/* What \s matches in Vectorscan and PCRE2 without Unicode properties. */
static bool is_space(unsigned char c)
{
	return c == ' ' || (c >= '\t' && c <= '\r');
}

/* A word or phrase entry: its words, lowercased, walked back from end
 * with at least one space between them (as pwb__lexicon_regex() writes them).
 */
static bool literal_start(const pwb__lex_entry *e, const unsigned char *norm,
			  size_t end, size_t *start)
{
	const unsigned char *w = (const unsigned char *)e->entry;
	size_t n = strlen(e->entry), pos = end;
	while (n && w[n - 1] == ' ')
		n--;
	bool first = true;
	while (n) {
		size_t k = n;
		while (k && w[k - 1] != ' ')
			k--;
		size_t len = n - k;
		if (!first) {
			size_t sp = 0;
			while (pos > 0 && is_space(norm[pos - 1])) {
				pos--;
				sp++;
			}
			if (!sp)
				return false;
		}
		if (pos < len)
			return false;
		for (size_t i = 0; i < len; i++) {
			unsigned char c = w[k + i];
			if (c >= 'A' && c <= 'Z')
				c = (unsigned char)(c - 'A' + 'a');
			if (norm[pos - len + i] != c)
				return false;
		}
		pos -= len;
		first = false;
		n = k;
		while (n && w[n - 1] == ' ')
			n--;
	}
	*start = pos;
	return true;
}

/* The entry's pattern anchored at the end of the subject, compiled once
 * (by whichever thread matches it first). */
static pcre2_code *entry_re(const pwb_bounds *b, unsigned id, bool *oom)
{
	pcre2_code *re = atomic_load(&b->lex_re[id]);
	if (re)
		return re;
	pwb__buf p;
	pwb__buf_init(&p, 0);
	pwb__buf_addf(&p, "(?:%s)\\z", b->entries[id].entry);
	if (p.err) {
		*oom = true;
		return NULL;
	}
	int err;
	PCRE2_SIZE off;
	pcre2_compile_context *cc = pcre2_compile_context_create(b->re_gc);
	re = cc ? pcre2_compile((PCRE2_SPTR)p.s, p.len,
				PCRE2_UTF | PCRE2_CASELESS, &err, &off, cc)
		: NULL;
	pcre2_compile_context_free(cc);
	pwb__buf_release(&p);
	if (!re) {
		*oom = !cc || err == PCRE2_ERROR_NOMEMORY;
		return NULL;
	}
	pcre2_jit_compile(re, PCRE2_JIT_COMPLETE); /* faster when it can */
	pcre2_code *none = NULL;
	if (!atomic_compare_exchange_strong(&b->lex_re[id], &none, re)) {
		pcre2_code_free(re);
		re = none;
	}
	return re;
}

/* The leftmost start of a match of re ending at end, searched from
 * `from`; false when there is none there (or the search gave up). */
static bool re_start(const pwb_bounds *b, pcre2_code *re,
		     const unsigned char *norm, size_t from, size_t end,
		     pcre2_match_data *md, size_t *start)
{
	while (from < end && (norm[from] & 0xc0) == 0x80)
		from++; /* PCRE2 starts on a character */
	int rc =
	    pcre2_match(re, norm, end, from, PCRE2_NO_UTF_CHECK, md, b->re_mc);
	if (rc < 0) /* 0: a match whose groups did not fit md; the whole
		     * match, the one pair md holds, is there */
		return false;
	*start = pcre2_get_ovector_pointer(md)[0];
	return *start <= end;
}

#define PWB__START_WINDOW 512u
#define PWB__START_WIDE_WINDOW (64u * 1024)

bool pwb__lexicon_start(const pwb_bounds *b, unsigned id,
			const unsigned char *norm, size_t end,
			pwb__start_ctx *c, size_t *start)
{
	const pwb__lex_entry *e = &b->entries[id];
	if (e->kind != PWB__LEX_REGEX)
		return literal_start(e, norm, end, start);
	if (!c->searches)
		return false;
	c->searches--;
	pcre2_code *re = entry_re(b, id, &c->oom);
	if (!re)
		return false;
	if (!c->md && !(c->md = pcre2_match_data_create(1, b->re_gc))) {
		c->oom = true;
		return false;
	}
	/* A start found at the window's left edge may only be where the
	 * window cut a longer match ("[a-z]*x" in a long word): look again
	 * wider, and if it is still at the edge, the start is unknown. */
	size_t from = end > PWB__START_WINDOW ? end - PWB__START_WINDOW : 0;
	if (re_start(b, re, norm, from, end, c->md, start) &&
	    (*start > from || !from))
		return true;
	if (!from || !c->wide)
		return false;
	c->wide--;
	from = end > PWB__START_WIDE_WINDOW ? end - PWB__START_WIDE_WINDOW : 0;
	return re_start(b, re, norm, from, end, c->md, start) &&
	       (*start > from || !from);
}

/* ---- the compiled database, kept between runs ---- */

#define PWB__HS_CACHE_MAX (512u * 1024 * 1024)
#define PWB__HS_MODE HS_MODE_BLOCK

static void cache_path(char *out, size_t size, const char *dir,
		       const char *const *pats, const unsigned *flags, size_t n)
{
	crypto_generichash_state hs;
	unsigned char h[16];
	char hex[33];
	crypto_generichash_init(&hs, NULL, 0, sizeof(h));
	const char *ver = hs_version();
	crypto_generichash_update(&hs, (const unsigned char *)ver,
				  strlen(ver) + 1);
	unsigned mode = PWB__HS_MODE;
	crypto_generichash_update(&hs, (const unsigned char *)&mode,
				  sizeof(mode));
	for (size_t i = 0; i < n; i++) {
		crypto_generichash_update(&hs, (const unsigned char *)pats[i],
					  strlen(pats[i]) + 1);
		crypto_generichash_update(&hs, (const unsigned char *)&flags[i],
					  sizeof(flags[i]));
	}
	crypto_generichash_final(&hs, h, sizeof(h));
	sodium_bin2hex(hex, sizeof(hex), h, sizeof(h));
	int w = snprintf(out, size, "%s/vectorscan-%s.db", dir, hex);
	if (w < 0 || (size_t)w >= size)
		out[0] = '\0';
}

static bool cache_load(pwb_bounds *b, const char *path)
{
	char *data;
	size_t len;
	/* A missing or unreadable cache is no error: it is rebuilt. */
	if (pwb__read_file(path, PWB__HS_CACHE_MAX, &data, &len, NULL))
		return false;
	bool ok = hs_deserialize_database(data, len, &b->db) == HS_SUCCESS;
	free(data);
	if (!ok)
		b->db = NULL;
	return ok;
}

/* Best effort: a cache that cannot be written only costs time, and the
 * caller's log says so. */
static void cache_store(pwb_bounds *b, const char *path)
{
	char *bytes = NULL;
	size_t len = 0;
	if (hs_serialize_database(b->db, &bytes, &len) != HS_SUCCESS) {
		pwb__bounds_log(b, PWB_LOG_WARN,
				"cannot keep the compiled lexicon database: "
				"it does not serialise");
		return;
	}
	char dir[4096];
	snprintf(dir, sizeof(dir), "%s", path);
	char *slash = strrchr(dir, '/');
	if (slash) {
		*slash = '\0';
		mkdir(dir, 0755); /* one level; an existing folder is fine */
	}
	char tmp[4200];
	snprintf(tmp, sizeof(tmp), "%s.tmp.XXXXXX", path);
	int fd = mkstemp(tmp);
	bool ok = fd >= 0;
	if (ok) {
		size_t off = 0;
		while (off < len) {
			ssize_t w = write(fd, bytes + off, len - off);
			if (w <= 0)
				break;
			off += (size_t)w;
		}
		ok = off == len && fsync(fd) == 0;
		close(fd);
		if (!ok || rename(tmp, path) != 0) {
			ok = false;
			unlink(tmp);
		}
	}
	if (!ok)
		pwb__bounds_log(b, PWB_LOG_WARN,
				"cannot keep the compiled lexicon database in "
				"%s: %s; every run will compile it again",
				dir, strerror(errno));
	free(bytes);
}

pwb_status pwb__lexicon_compile(pwb_bounds *b, pwb_diag *diag)
{
	size_t n = b->n_entries + PWB__PII_N;
	char **pats = pwb__calloc(n, sizeof(char *));
	unsigned *flags = pwb__calloc(n, sizeof(unsigned));
	unsigned *ids = pwb__calloc(n, sizeof(unsigned));
	pwb_status rc = PWB_OK;
	if (!pats || !flags || !ids) {
		rc = PWB_ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < b->n_entries; i++) {
		if (!(pats[i] = pwb__lexicon_regex(&b->entries[i]))) {
			rc = PWB_ENOMEM;
			goto out;
		}
		/* No start-of-match tracking: pwb__lexicon_start() finds
		 * the starts of the few matches there are. */
		flags[i] = HS_FLAG_UTF8 | (b->entries[i].kind == PWB__LEX_REGEX
					       ? HS_FLAG_CASELESS
					       : 0);
		ids[i] = (unsigned)i;
	}
	for (size_t k = 0; k < PWB__PII_N; k++) {
		size_t i = b->n_entries + k;
		if (!(pats[i] =
			  pwb__strdup(pwb__pii_pattern((pwb__pii_kind)k)))) {
			rc = PWB_ENOMEM;
			goto out;
		}
		flags[i] =
		    HS_FLAG_SOM_LEFTMOST | pwb__pii_flags((pwb__pii_kind)k);
		ids[i] = (unsigned)i;
	}
	char cache[4096] = "";
	if (b->params.cache_dir)
		cache_path(cache, sizeof(cache), b->params.cache_dir,
			   (const char *const *)pats, flags, n);
	if (cache[0] && cache_load(b, cache))
		goto scratch;
	pwb__bounds_log(b, PWB_LOG_INFO,
			"compiling %zu lexicon entries into one database "
			"(seconds; %s)",
			b->n_entries,
			cache[0] ? "kept for later runs"
				 : "no cache folder set");
	hs_compile_error_t *err = NULL;
	if (hs_compile_multi((const char *const *)pats, flags, ids, (unsigned)n,
			     PWB__HS_MODE, NULL, &b->db, &err) != HS_SUCCESS) {
		int bad = err ? err->expression : -1;
		if (bad >= 0 && (size_t)bad < b->n_entries) {
			const pwb__lex_entry *e = &b->entries[bad];
			pwb_diag_add(diag, b->lex_files[e->file], e->line, 1,
				     "lexicon entry '%s' does not compile: %s",
				     e->entry, err->message);
		} else
			pwb_diag_add(diag, NULL, 0, 0,
				     "the lexicon database does not compile: "
				     "%s",
				     err ? err->message : "unknown error");
		hs_free_compile_error(err);
		rc = PWB_EPARSE;
		goto out;
	}
	if (cache[0])
		cache_store(b, cache);
scratch:
	if (hs_alloc_scratch(b->db, &b->scratch.proto) != HS_SUCCESS) {
		rc = PWB_ENOMEM;
		goto out;
	}
	b->re_gc = pcre2_general_context_create(re_malloc, re_free, NULL);
	b->re_mc = b->re_gc ? pcre2_match_context_create(b->re_gc) : NULL;
	b->lex_re =
	    pwb__calloc(b->n_entries ? b->n_entries : 1, sizeof(*b->lex_re));
	if (!b->re_mc || !b->lex_re) {
		rc = PWB_ENOMEM;
		goto out;
	}
	/* A lexicon regex is short: a search that backtracks this much is
	 * given up (the start is then unknown). */
	pcre2_set_match_limit(b->re_mc, 100000);
out:
	for (size_t i = 0; pats && i < n; i++)
		free(pats[i]);
	free(pats);
	free(flags);
	free(ids);
	return rc;
}
