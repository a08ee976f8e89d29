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

static pwb_status load_file(pwb_bounds *b, const char *path, pwb_diag *diag)
{
	char why[256];
	char *data;
	size_t len;
	pwb_status rc = pwb__read_file(path, PWB__LEX_MAX_FILE, &data, &len,
				       why, sizeof(why));
	if (rc) {
		pwb_diag_add(diag, path, 0, 0, "%s", why);
		return rc == PWB_ENOMEM ? rc : PWB_EPARSE;
	}
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
				     "(category, kind, weight, entry, note), "
				     "found %zu",
				     nf);
			bad = PWB_EPARSE;
			continue;
		}
		pwb__lex_entry e = {.cat = pwb__find_cat(p, f[0]),
				    .file = (int)b->n_lex_files - 1,
				    .line = line};
		if (e.cat < 0) {
			pwb__hint h = pwb__hint_in(p, f[0], PWB__NAMES_CATS);
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
		else if (!strcmp(f[1], "regex"))
			e.kind = PWB__LEX_REGEX;
		else {
			pwb_diag_add(diag, path, line, col,
				     "kind must be word, phrase or regex, not "
				     "'%s'",
				     f[1]);
			bad = PWB_EPARSE;
			continue;
		}
		char *end;
		errno = 0;
		double w = strtod(f[2], &end);
		if (*end || errno || !(w > 0 && w <= 1)) {
			pwb_diag_add(diag, path, line, (int)(f[2] - s) + 1,
				     "weight must be a number in (0, 1], not "
				     "'%s'",
				     f[2]);
			bad = PWB_EPARSE;
			continue;
		}
		e.weight = (float)w;
		if (!*f[3] || !lower_ascii_ok(f[3])) {
			pwb_diag_add(diag, path, line, (int)(f[3] - s) + 1,
				     "empty entry");
			bad = PWB_EPARSE;
			continue;
		}
		if (b->n_entries >= PWB__LEX_MAX_ENTRIES) {
			pwb_diag_add(diag, path, line, 1,
				     "more than %d lexicon entries",
				     PWB__LEX_MAX_ENTRIES);
			bad = PWB_EPARSE;
			break;
		}
		e.entry = pwb__strdup(f[3]);
		e.note = pwb__strdup(f[4]);
		if (!e.entry || !e.note ||
		    pwb__grow((void **)&b->entries, &b->cap_entries,
			      b->n_entries + 1, sizeof(*b->entries))) {
			free(e.entry);
			free(e.note);
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
		pwb_status r = path.err ? path.err : load_file(b, path.s, diag);
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
static char *entry_regex(const pwb__lex_entry *e)
{
	if (e->kind == PWB__LEX_REGEX)
		return pwb__strdup(e->entry);
	pwb__buf b;
	pwb__buf_init(&b, 0);
	bool space = false;
	for (const unsigned char *c = (const unsigned char *)e->entry; *c;
	     c++) {
		if (*c == ' ') {
			space = true;
			continue;
		}
		if (space && b.len)
			pwb__buf_adds(&b, "\\s+");
		space = false;
		unsigned char ch = *c;
		if (ch >= 'A' && ch <= 'Z')
			ch = (unsigned char)(ch - 'A' + 'a');
		if (ch < 0x80 &&
		    !((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9')))
			pwb__buf_addf(&b, "\\x%02x", ch);
		else
			pwb__buf_addc(&b, (char)ch);
	}
	return pwb__buf_detach(&b);
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
	char *data, why[256];
	size_t len;
	if (pwb__read_file(path, PWB__HS_CACHE_MAX, &data, &len, why,
			   sizeof(why)))
		return false;
	bool ok = hs_deserialize_database(data, len, &b->db) == HS_SUCCESS;
	free(data);
	if (!ok)
		b->db = NULL;
	return ok;
}

/* Best effort: a cache that cannot be written only costs time. */
static void cache_store(pwb_bounds *b, const char *path)
{
	char *bytes = NULL;
	size_t len = 0;
	if (hs_serialize_database(b->db, &bytes, &len) != HS_SUCCESS)
		return;
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
	if (fd >= 0) {
		size_t off = 0;
		while (off < len) {
			ssize_t w = write(fd, bytes + off, len - off);
			if (w <= 0)
				break;
			off += (size_t)w;
		}
		bool ok = off == len && fsync(fd) == 0;
		close(fd);
		if (!ok || rename(tmp, path) != 0)
			unlink(tmp);
	}
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
		if (!(pats[i] = entry_regex(&b->entries[i]))) {
			rc = PWB_ENOMEM;
			goto out;
		}
		flags[i] =
		    HS_FLAG_UTF8 | HS_FLAG_SOM_LEFTMOST |
		    (b->entries[i].kind == PWB__LEX_REGEX ? HS_FLAG_CASELESS
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
out:
	for (size_t i = 0; pats && i < n; i++)
		free(pats[i]);
	free(pats);
	free(flags);
	free(ids);
	return rc;
}
