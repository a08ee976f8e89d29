/*
 * features.c - the features φ of a response for the preference learner:
 * measured dimensions (each on [0, 1], formulas in docs/prefs.md), the
 * detectors' category scores, an optional embedding, and hashed word 1-
 * and 2-grams.
 *
 * The file reads in the order data flows: word lists, one pass over the
 * text that counts everything, the dimension formulas, the n-grams, and
 * the assembly of the sparse vector.
 */
#include "prefs/prefs_int.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static const char *const dim_names[PWB_PREFS_N_DIMS] = {
    "verbosity",  "formality",	   "humour",  "warmth",
    "directness", "reading_level", "emoji",   "lists",
    "markdown",	  "questions",	   "hedging", "exclamation",
};

const char *pwb_prefs_dim_name(int k)
{
	return k >= 0 && k < PWB_PREFS_N_DIMS ? dim_names[k] : NULL;
}

int pwb_prefs_dim_find(const char *name)
{
	for (int k = 0; name && k < PWB_PREFS_N_DIMS; k++)
		if (!strcmp(dim_names[k], name))
			return k;
	return -1;
}

/* ---- word lists ----
 *
 * Lowercase English marker words, each with the classes it counts for.
 * The table is sorted by word (a unit test checks it) and searched by
 * bisection. Words with an apostrophe are counted as contractions
 * separately and need no entry.
 */

enum {
	W_FORMAL = 1,
	W_INFORMAL = 2,
	W_HUMOUR = 4,
	W_WARM = 8,
	W_HEDGE = 16,
	W_DIRECT = 32,
};

typedef struct marker {
	const char *word;
	unsigned cls;
} marker;

static const marker markers[] = {
    {"absolutely", W_DIRECT},
    {"accordingly", W_FORMAL},
    {"additionally", W_FORMAL},
    {"amazing", W_WARM | W_INFORMAL},
    {"apparently", W_HEDGE},
    {"appreciate", W_WARM},
    {"approximately", W_FORMAL | W_HEDGE},
    {"arguably", W_HEDGE},
    {"assist", W_FORMAL},
    {"awesome", W_INFORMAL},
    {"btw", W_INFORMAL},
    {"certainly", W_DIRECT},
    {"clearly", W_DIRECT},
    {"commence", W_FORMAL},
    {"congratulations", W_WARM},
    {"consequently", W_FORMAL},
    {"cool", W_INFORMAL},
    {"could", W_HEDGE},
    {"definitely", W_DIRECT},
    {"delighted", W_WARM},
    {"dude", W_INFORMAL},
    {"enjoy", W_WARM},
    {"ensure", W_FORMAL},
    {"exactly", W_DIRECT},
    {"fantastic", W_WARM},
    {"funny", W_HUMOUR},
    {"furthermore", W_FORMAL},
    {"generally", W_HEDGE},
    {"giggle", W_HUMOUR},
    {"glad", W_WARM},
    {"gonna", W_INFORMAL},
    {"gotta", W_INFORMAL},
    {"guys", W_INFORMAL},
    {"haha", W_HUMOUR | W_INFORMAL},
    {"hahaha", W_HUMOUR | W_INFORMAL},
    {"happy", W_WARM},
    {"hehe", W_HUMOUR | W_INFORMAL},
    {"hence", W_FORMAL},
    {"hey", W_INFORMAL},
    {"hilarious", W_HUMOUR},
    {"hope", W_WARM},
    {"however", W_FORMAL},
    {"joke", W_HUMOUR},
    {"jokes", W_HUMOUR},
    {"kidding", W_HUMOUR},
    {"kinda", W_INFORMAL},
    {"kindly", W_FORMAL},
    {"laugh", W_HUMOUR},
    {"likely", W_HEDGE},
    {"lmao", W_HUMOUR | W_INFORMAL},
    {"lol", W_HUMOUR | W_INFORMAL},
    {"love", W_WARM},
    {"lovely", W_WARM},
    {"may", W_HEDGE},
    {"maybe", W_HEDGE},
    {"might", W_HEDGE},
    {"moreover", W_FORMAL},
    {"must", W_DIRECT},
    {"never", W_DIRECT},
    {"nevertheless", W_FORMAL},
    {"nope", W_INFORMAL},
    {"obtain", W_FORMAL},
    {"okay", W_INFORMAL},
    {"perhaps", W_HEDGE},
    {"please", W_FORMAL},
    {"pleasure", W_WARM},
    {"possibly", W_HEDGE},
    {"probably", W_HEDGE},
    {"proud", W_WARM},
    {"pun", W_HUMOUR},
    {"purchase", W_FORMAL},
    {"regarding", W_FORMAL},
    {"regards", W_FORMAL},
    {"require", W_FORMAL},
    {"rofl", W_HUMOUR | W_INFORMAL},
    {"seem", W_HEDGE},
    {"seems", W_HEDGE},
    {"shall", W_FORMAL},
    {"silly", W_HUMOUR},
    {"simply", W_DIRECT},
    {"sincerely", W_FORMAL},
    {"somewhat", W_HEDGE},
    {"sorry", W_WARM},
    {"stuff", W_INFORMAL},
    {"subsequently", W_FORMAL},
    {"sufficient", W_FORMAL},
    {"super", W_INFORMAL},
    {"thank", W_WARM},
    {"thanks", W_WARM},
    {"therefore", W_FORMAL},
    {"thus", W_FORMAL},
    {"totally", W_INFORMAL},
    {"typically", W_HEDGE},
    {"unclear", W_HEDGE},
    {"understand", W_WARM},
    {"wanna", W_INFORMAL},
    {"welcome", W_WARM},
    {"whereas", W_FORMAL},
    {"wonderful", W_WARM},
    {"yeah", W_INFORMAL},
    {"yep", W_INFORMAL},
    {"yes", W_DIRECT},
};

/* For the unit test: the table must be sorted for bisection. */
bool pwb__prefs_markers_sorted(void);
bool pwb__prefs_markers_sorted(void)
{
	for (size_t i = 1; i < PWB_ARRAY_LEN(markers); i++)
		if (strcmp(markers[i - 1].word, markers[i].word) >= 0)
			return false;
	return true;
}

static unsigned marker_class(const char *w, size_t n)
{
	size_t lo = 0, hi = PWB_ARRAY_LEN(markers);
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		const char *m = markers[mid].word;
		int c = strncmp(m, w, n);
		if (c == 0)
			c = m[n] ? 1 : 0;
		if (c == 0)
			return markers[mid].cls;
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return 0;
}

/* ---- one pass over the text ---- */

typedef struct counts {
	size_t words, sentences, syllables, contractions;
	size_t cls[6]; /* by the bit of each W_ class */
	size_t emoji, smileys, questions, exclaims;
	size_t lines, list_lines, md;
	size_t bold_marks, backticks;
} counts;

/* Bytes of a UTF-8 sequence that is an emoji or pictograph (U+1F000 to
 * U+1FAFF, U+2600 to U+27BF, U+2B50, U+2B55), else 0. */
static size_t emoji_len(const unsigned char *s, size_t n)
{
	if (n >= 4 && s[0] == 0xF0 && s[1] == 0x9F && s[2] >= 0x80 &&
	    s[2] <= 0xAB)
		return 4;
	if (n >= 3 && s[0] == 0xE2 && s[1] >= 0x98 && s[1] <= 0x9E)
		return 3;
	if (n >= 3 && s[0] == 0xE2 && s[1] == 0xAD &&
	    (s[2] == 0x90 || s[2] == 0x95))
		return 3;
	return 0;
}

static bool is_word_byte(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       (c >= '0' && c <= '9') || c >= 0x80;
}

/* U+2019 RIGHT SINGLE QUOTATION MARK, the typographic apostrophe. */
static bool is_rsquo(const unsigned char *s, size_t n)
{
	return n >= 3 && s[0] == 0xE2 && s[1] == 0x80 && s[2] == 0x99;
}

static size_t syllables(const char *w, size_t n)
{
	size_t k = 0;
	bool prev = false;
	for (size_t i = 0; i < n; i++) {
		char c = w[i];
		bool v = c == 'a' || c == 'e' || c == 'i' || c == 'o' ||
			 c == 'u' || c == 'y';
		if (v && !prev)
			k++;
		prev = v;
	}
	if (k > 1 && n > 2 && w[n - 1] == 'e' && w[n - 2] != 'l')
		k--;
	return k ? k : 1;
}

/* The start of a line: list items ("- ", "* ", "+ ", "1. ", "1) ") and
 * markdown blocks (headings, fences, tables, quotes). */
static void line_start(counts *c, const unsigned char *s, size_t n)
{
	size_t i = 0;
	while (i < n && (s[i] == ' ' || s[i] == '\t'))
		i++;
	if (i == n || s[i] == '\n')
		return;
	c->lines++;
	if (i + 1 < n && (s[i] == '-' || s[i] == '*' || s[i] == '+') &&
	    s[i + 1] == ' ') {
		c->list_lines++;
		return;
	}
	size_t d = i;
	while (d < n && d - i < 3 && s[d] >= '0' && s[d] <= '9')
		d++;
	if (d > i && d + 1 < n && (s[d] == '.' || s[d] == ')') &&
	    s[d + 1] == ' ') {
		c->list_lines++;
		return;
	}
	if (s[i] == '#' || s[i] == '|' || s[i] == '>' ||
	    (i + 2 < n && !memcmp(s + i, "```", 3)))
		c->md++;
}

#define WORD_MAX 32

static void count_text(counts *c, const unsigned char *s, size_t len)
{
	memset(c, 0, sizeof(*c));
	bool in_sentence = false, at_line = true;
	size_t i = 0;
	while (i < len) {
		if (at_line) {
			line_start(c, s + i, len - i);
			at_line = false;
		}
		unsigned char ch = s[i];
		size_t e = ch >= 0x80 ? emoji_len(s + i, len - i) : 0;
		if (e) {
			c->emoji++;
			i += e;
			continue;
		}
		if (is_rsquo(s + i, len - i)) {
			i += 3; /* ’ outside a word: punctuation */
			continue;
		}
		if (is_word_byte(ch)) {
			char w[WORD_MAX];
			size_t n = 0, start = i;
			bool apos = false;
			while (i < len) {
				unsigned char b = s[i];
				/* ' or ’ joins a contraction when a word
				 * byte follows; else it ends the word. */
				size_t k = b == '\''		      ? 1
					   : is_rsquo(s + i, len - i) ? 3
								      : 0;
				if (k) {
					if (i + k >= len ||
					    !is_word_byte(s[i + k]) ||
					    emoji_len(s + i + k, len - i - k))
						break;
					apos = true;
					i += k;
					continue;
				}
				if (!is_word_byte(b) ||
				    (b >= 0x80 && emoji_len(s + i, len - i)))
					break;
				if (n < WORD_MAX)
					w[n++] =
					    (char)(b >= 'A' && b <= 'Z' ? b + 32
									: b);
				i++;
			}
			c->words++;
			in_sentence = true;
			if (apos) {
				c->contractions++;
			} else if (i - start <= WORD_MAX) {
				unsigned cls = marker_class(w, n);
				for (int b = 0; b < 6; b++)
					if (cls & (1u << b))
						c->cls[b]++;
			}
			c->syllables += syllables(w, n);
			continue;
		}
		switch (ch) {
		case '.':
		case '!':
		case '?':
			if (in_sentence)
				c->sentences++;
			in_sentence = false;
			if (ch == '?')
				c->questions++;
			if (ch == '!')
				c->exclaims++;
			break;
		case '\n':
			at_line = true;
			break;
		case '*':
			if (i + 1 < len && s[i + 1] == '*') {
				c->bold_marks++;
				i++;
			}
			break;
		case '`':
			c->backticks++;
			break;
		case ':':
		case ';':
			/* :) ;) :D :P */
			if (i + 1 < len &&
			    (s[i + 1] == ')' || s[i + 1] == 'D' ||
			     s[i + 1] == 'P') &&
			    (i + 2 == len || !is_word_byte(s[i + 2])))
				c->smileys++;
			break;
		default:
			break;
		}
		i++;
	}
	if (in_sentence)
		c->sentences++;
}

/* ---- the dimension formulas (docs/prefs.md) ---- */

static double sat(double x, double k)
{
	return x / (x + k);
}

static double clamp01(double x)
{
	return x < 0 ? 0 : x > 1 ? 1 : x;
}

static double balance(double plus, double minus)
{
	return clamp01(0.5 + 0.5 * (plus - minus) / (plus + minus + 1));
}

static void measure(float dims[PWB_PREFS_N_DIMS], const counts *c)
{
	double words = (double)c->words;
	double formal = (double)c->cls[0];
	double informal = (double)(c->cls[1] + c->contractions + c->emoji +
				   c->smileys + c->exclaims);
	double humour = (double)(c->cls[2] + c->smileys);
	double hedges = (double)c->cls[4];
	double md = (double)(c->md + c->bold_marks / 2 + c->backticks / 2);
	double grade = 0;
	if (c->words) {
		double wps = words / (double)(c->sentences ? c->sentences : 1);
		double spw = (double)c->syllables / words;
		grade = 0.39 * wps + 11.8 * spw - 15.59;
	}
	dims[PWB_PREFS_VERBOSITY] = (float)fmin(1, log1p(words) / log1p(400));
	dims[PWB_PREFS_FORMALITY] = (float)balance(formal, informal);
	dims[PWB_PREFS_HUMOUR] = (float)sat(humour, 1);
	dims[PWB_PREFS_WARMTH] = (float)sat((double)c->cls[3], 2);
	dims[PWB_PREFS_DIRECTNESS] = (float)balance((double)c->cls[5], hedges);
	dims[PWB_PREFS_READING_LEVEL] = (float)clamp01(grade / 18);
	dims[PWB_PREFS_EMOJI] = (float)sat((double)c->emoji, 1);
	dims[PWB_PREFS_LISTS] =
	    c->lines ? (float)((double)c->list_lines / (double)c->lines) : 0;
	dims[PWB_PREFS_MARKDOWN] = (float)sat(md, 2);
	dims[PWB_PREFS_QUESTIONS] = (float)sat((double)c->questions, 1);
	dims[PWB_PREFS_HEDGING] = (float)sat(hedges, 1);
	dims[PWB_PREFS_EXCLAMATION] = (float)sat((double)c->exclaims, 1);
}

void pwb__prefs_measure(const char *text, size_t len,
			float dims[PWB_PREFS_N_DIMS])
{
	counts c;
	count_text(&c, (const unsigned char *)text, len);
	measure(dims, &c);
}

/* ---- hashed word n-grams ----
 *
 * Words here are maximal runs of ASCII letters and digits and bytes >=
 * 0x80, lowercased in ASCII: each gives its unigram and a bigram with the
 * word before it. Only word grams, not the character grams of the bounds
 * model: a preference update touches every feature of two texts, and
 * word grams keep that to a few hundred. The first NGRAM_SCAN occurrences
 * are hashed (64-bit FNV-1a, then a finaliser); the distinct ones are
 * counted and the PWB_PREFS_MAX_NGRAMS most frequent kept, weighted by
 * count and L2-normalised.
 */

#define NGRAM_SCAN 2048
#define SEED_BI 0x9e3779b97f4a7c15ULL

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	return x < y ? -1 : x > y;
}

typedef struct gram {
	uint32_t bucket, count;
} gram;

static int cmp_gram_count(const void *a, const void *b)
{
	const gram *x = a, *y = b;
	if (x->count != y->count)
		return x->count > y->count ? -1 : 1;
	return x->bucket < y->bucket ? -1 : x->bucket > y->bucket;
}

static int cmp_gram_bucket(const void *a, const void *b)
{
	const gram *x = a, *y = b;
	return x->bucket < y->bucket ? -1 : x->bucket > y->bucket;
}

/* Fills grams (sorted by bucket, at most PWB_PREFS_MAX_NGRAMS) and
 * returns how many. */
static size_t ngrams(const unsigned char *s, size_t len, unsigned bits,
		     gram *out)
{
	uint32_t occ[NGRAM_SCAN];
	size_t n_occ = 0;
	uint64_t prev = 0;
	bool has_prev = false;
	size_t i = 0;
	while (i < len && n_occ + 2 <= NGRAM_SCAN) {
		while (i < len && !is_word_byte(s[i]))
			i++;
		if (i == len)
			break;
		uint64_t h = PWB__FNV_INIT;
		while (i < len && is_word_byte(s[i])) {
			unsigned char b = s[i++];
			if (b >= 'A' && b <= 'Z')
				b += 32;
			h = (h ^ b) * 0x100000001b3ULL;
		}
		occ[n_occ++] = (uint32_t)(pwb__mix64(h) >> (64 - bits));
		if (has_prev)
			occ[n_occ++] =
			    (uint32_t)(pwb__mix64(prev * 31 + h + SEED_BI) >>
				       (64 - bits));
		prev = h;
		has_prev = true;
	}
	if (!n_occ)
		return 0;
	qsort(occ, n_occ, sizeof(*occ), cmp_u32);
	gram g[NGRAM_SCAN];
	size_t n = 0;
	for (size_t k = 0; k < n_occ; k++) {
		if (n && g[n - 1].bucket == occ[k])
			g[n - 1].count++;
		else
			g[n++] = (gram){occ[k], 1};
	}
	if (n > PWB_PREFS_MAX_NGRAMS) {
		qsort(g, n, sizeof(*g), cmp_gram_count);
		n = PWB_PREFS_MAX_NGRAMS;
		qsort(g, n, sizeof(*g), cmp_gram_bucket);
	}
	memcpy(out, g, n * sizeof(*g));
	return n;
}

/* ---- assembly ---- */

pwb_status pwb_prefs_features_compute(pwb_prefs_features *f,
				      const pwb_prefs_model *m,
				      const char *text, size_t len,
				      const double *cat_scores,
				      const float *embed, pwb_diag *diag)
{
	if (!f || !m || (!text && len)) {
		pwb_diag_add(diag, NULL, 0, 0,
			     "no features, model or text to measure");
		return PWB_EINVAL;
	}
	f->n = 0;
	if (len == 0) {
		pwb_diag_add(diag, NULL, 0, 0, "the response text is empty");
		return PWB_EINVAL;
	}
	size_t nc = m->p.n_categories;
	for (size_t k = 0; cat_scores && k < nc; k++)
		if (!(cat_scores[k] >= 0 && cat_scores[k] <= 1)) {
			pwb_diag_add(diag, NULL, 0, 0,
				     "the score of category '%s' is not "
				     "between 0 and 1",
				     m->p.categories[k]);
			return PWB_EINVAL;
		}
	for (size_t k = 0; embed && k < m->p.n_embed; k++)
		if (!(fabsf(embed[k]) <= PWB__PREFS_MAX_VALUE)) {
			pwb_diag_add(diag, NULL, 0, 0,
				     "embedding value %zu is %g: not a finite "
				     "number within ±%g",
				     k, (double)embed[k],
				     (double)PWB__PREFS_MAX_VALUE);
			return PWB_EINVAL;
		}
	const unsigned char *s = (const unsigned char *)text;
	counts c;
	count_text(&c, s, len);
	measure(f->dims, &c);
	uint32_t n = 0;
	for (uint32_t k = 0; k < PWB_PREFS_N_DIMS; k++) {
		f->idx[n] = k;
		f->val[n++] = f->dims[k];
	}
	for (size_t k = 0; cat_scores && k < nc; k++)
		if (cat_scores[k] > 0) {
			f->idx[n] = PWB__PREFS_CAT0 + (uint32_t)k;
			f->val[n++] = (float)cat_scores[k];
		}
	uint32_t e0 = pwb__prefs_embed0(m);
	for (size_t k = 0; embed && k < m->p.n_embed; k++)
		if (embed[k] != 0) {
			f->idx[n] = e0 + (uint32_t)k;
			f->val[n++] = embed[k];
		}
	gram g[PWB_PREFS_MAX_NGRAMS];
	size_t ng = ngrams(s, len, m->p.hash_bits, g);
	double ss = 0;
	for (size_t k = 0; k < ng; k++)
		ss += (double)g[k].count * g[k].count;
	double scale = ng ? 1 / sqrt(ss) : 0;
	for (size_t k = 0; k < ng; k++) {
		f->idx[n] = m->base + g[k].bucket;
		f->val[n++] = (float)(g[k].count * scale);
	}
	f->n = n;
	return PWB_OK;
}
