/*
 * linear.c - the `linear` detector: hashed n-gram features, a multi-label
 * logistic model trained with AdaGrad, and its checksummed file format.
 *
 * The file reads in the order data flows: features, the model and its
 * scores, training, then the file format (writing, then reading).
 */
#include "bounds/linear.h"
#include "util/sealed.h"
#include "util/util.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- limits of the file format (versions 1 and 2) ---- */

#define LIN_MAGIC "PWBLIN\0\0"
#define LIN_MAGIC_LEN 8
#define LIN_VERSION 2u
#define LIN_MIN_BITS 10u
#define LIN_MAX_BITS 24u
#define LIN_MAX_LABELS 256u
#define LIN_MAX_NAME 128u
#define LIN_SUM_LEN PWB__SEAL_LEN
/* At most 2^28 float32 weights (1 GiB) in a model, trained or loaded. */
#define LIN_MAX_WEIGHTS ((size_t)1 << 28)
/* Version 1's header: magic, version, hash_bits, n_labels; version 2
 * adds the feature set. */
#define LIN_HEADER1_LEN (LIN_MAGIC_LEN + 3 * 4)
#define LIN_HEADER_LEN (LIN_MAGIC_LEN + 4 * 4)
#define LIN_MAX_FILE                                                           \
	(LIN_HEADER_LEN + LIN_MAX_LABELS * (4 + LIN_MAX_NAME) +                \
	 LIN_MAX_WEIGHTS * 4 + LIN_SUM_LEN)

/* ---- features ----
 *
 * The feature function is part of the file format: a model's weights mean
 * something only under the exact hashing that trained them, so any change
 * here needs a new format version, or a new bit of the feature set that
 * version 2 records (PWB__LIN_NEGATION, PWB__LIN_QUOTES).
 *
 * A word is a maximal run of ASCII letters and digits and bytes >= 0x80
 * (so UTF-8 sequences stay inside words), lowercased in ASCII. Each word
 * gives its unigram, a bigram with the word before it (across punctuation
 * too), and the byte 3-, 4- and 5-grams of the word padded with one space
 * on each side (" word "), so that grams at a word's edges differ from
 * grams inside it. Every occurrence is hashed (words with FNV-1a, grams
 * packed into an integer; both then through a 64-bit finaliser) into a
 * bucket, the top hash_bits bits, and a sign, the lowest bit: signed
 * hashing makes collisions cancel on average instead of piling up.
 *
 * Contexts (version 2, by the model's feature set): a word in a context
 * hashes its unigram and its character grams with the context's key mixed
 * in, so that "hate" in "I don't hate them" or in 'if you say "I hate
 * them"' is another feature than "hate" said plainly; bigrams stay as they
 * are (the bigram "not hate" is already its own feature). A word's feature
 * count does not depend on its context.
 *  - negation: the NEG_SCOPE words after a negation (not, never, no, n't,
 *    nicht, kein..., nie, ne, pas, jamais, aucun, ...: is_negation), up
 *    to the end of the clause (. , ; : ! ? or a line break);
 *  - quotes: the words inside quotation marks: "...", “...”, „...“,
 *    «...», »...«, '...' and ‘...’ (an apostrophe between letters, as in
 *    don't, opens nothing). The typographic marks also end words then,
 *    like ASCII punctuation. A line break closes every quotation, so that
 *    a stray mark does not reach past its paragraph.
 * Without a feature set (version 1 files, and pwb__hashed_features) every
 * word is plain and the hashes are exactly those of version 1.
 *
 * Scaling: every occurrence weighs 1/sqrt(N), N the number of occurrences
 * in the text. A text whose features are all distinct thus has an
 * L2-normalised vector; repeats add up linearly. This keeps a text's scale
 * independent of its length without a per-text table, so scoring is one
 * pass that allocates nothing and costs O(len) for texts of any size. (The
 * scorer sums with weight 1 and scales once at the end;
 * pwb__hashed_features, which hands out each weight, counts N in a first,
 * cheaper pass.)
 */

#define SEED_WORD 0x2f0e1c4d5b6a7988ULL
/* Above bit 40, so that packed grams of different lengths differ. */
#define KEY_GRAM3 0x3a7d1c0000000000ULL
#define KEY_GRAM4 0x6b2e4f0000000000ULL
#define KEY_GRAM5 0xc45a1f0000000000ULL
/* Context keys, XORed into a word's unigram and gram keys. On bit 40 and
 * up, and chosen so that the twelve (gram key ^ context key) values
 * differ: grams of different lengths and contexts never meet. */
#define CTX_NEG 0x0000010000000000ULL
#define CTX_QUOTE 0x0000020000000000ULL
#define KEY_UNI 0x51ed27ab3c9f6e05ULL
#define KEY_BI 0x9e3779b97f4a7c15ULL
#define FNV_PRIME 0x100000001b3ULL

/* Each byte lowercased when it belongs to a word (ASCII letters and digits,
 * and every byte >= 0x80), else 0: one lookup both classifies and folds. */
static const unsigned char fold[256] = {
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x30, 0x31, 0x32, 0x33, 0x34, 0x35, 0x36, 0x37, 0x38, 0x39, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x61, 0x62, 0x63, 0x64, 0x65, 0x66, 0x67,
    0x68, 0x69, 0x6a, 0x6b, 0x6c, 0x6d, 0x6e, 0x6f, 0x70, 0x71, 0x72, 0x73,
    0x74, 0x75, 0x76, 0x77, 0x78, 0x79, 0x7a, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x61, 0x62, 0x63, 0x64, 0x65, 0x66, 0x67, 0x68, 0x69, 0x6a, 0x6b,
    0x6c, 0x6d, 0x6e, 0x6f, 0x70, 0x71, 0x72, 0x73, 0x74, 0x75, 0x76, 0x77,
    0x78, 0x79, 0x7a, 0x00, 0x00, 0x00, 0x00, 0x00, 0x80, 0x81, 0x82, 0x83,
    0x84, 0x85, 0x86, 0x87, 0x88, 0x89, 0x8a, 0x8b, 0x8c, 0x8d, 0x8e, 0x8f,
    0x90, 0x91, 0x92, 0x93, 0x94, 0x95, 0x96, 0x97, 0x98, 0x99, 0x9a, 0x9b,
    0x9c, 0x9d, 0x9e, 0x9f, 0xa0, 0xa1, 0xa2, 0xa3, 0xa4, 0xa5, 0xa6, 0xa7,
    0xa8, 0xa9, 0xaa, 0xab, 0xac, 0xad, 0xae, 0xaf, 0xb0, 0xb1, 0xb2, 0xb3,
    0xb4, 0xb5, 0xb6, 0xb7, 0xb8, 0xb9, 0xba, 0xbb, 0xbc, 0xbd, 0xbe, 0xbf,
    0xc0, 0xc1, 0xc2, 0xc3, 0xc4, 0xc5, 0xc6, 0xc7, 0xc8, 0xc9, 0xca, 0xcb,
    0xcc, 0xcd, 0xce, 0xcf, 0xd0, 0xd1, 0xd2, 0xd3, 0xd4, 0xd5, 0xd6, 0xd7,
    0xd8, 0xd9, 0xda, 0xdb, 0xdc, 0xdd, 0xde, 0xdf, 0xe0, 0xe1, 0xe2, 0xe3,
    0xe4, 0xe5, 0xe6, 0xe7, 0xe8, 0xe9, 0xea, 0xeb, 0xec, 0xed, 0xee, 0xef,
    0xf0, 0xf1, 0xf2, 0xf3, 0xf4, 0xf5, 0xf6, 0xf7, 0xf8, 0xf9, 0xfa, 0xfb,
    0xfc, 0xfd, 0xfe, 0xff,
};

static inline bool is_word_byte(unsigned char c)
{
	return fold[c] != 0;
}

static inline unsigned char lower(unsigned char c)
{
	return fold[c];
}

/* Occurrences from one word of wlen bytes (wlen >= 1). */
static size_t word_n_features(size_t wlen, bool has_prev)
{
	/* " word " has wlen + 2 bytes: wlen 3-grams, wlen - 1 4-grams and
	 * wlen - 2 5-grams. */
	size_t n = 1 + (has_prev ? 1 : 0) + wlen;
	n += wlen >= 2 ? wlen - 1 : 0;
	n += wlen >= 3 ? wlen - 2 : 0;
	return n;
}

static size_t count_features(const unsigned char *s, size_t len)
{
	size_t n = 0;
	bool has_prev = false;
	size_t i = 0;
	while (i < len) {
		while (i < len && !is_word_byte(s[i]))
			i++;
		if (i == len)
			break;
		size_t start = i;
		while (i < len && is_word_byte(s[i]))
			i++;
		n += word_n_features(i - start, has_prev);
		has_prev = true;
	}
	return n;
}

/*
 * The walk over a text's features is inlined into each of its few callers
 * (always_inline), so that the scorer's and the trainer's per-feature
 * step is inlined too instead of called through a pointer.
 */
#define LIN_INLINE static inline __attribute__((always_inline))

typedef void (*feat_fn)(void *user, uint32_t bucket, float w);

LIN_INLINE void emit(feat_fn fn, void *user, unsigned shift, float w,
		     uint64_t h)
{
	fn(user, (uint32_t)(h >> shift), (h & 1) ? -w : w);
}

static inline uint64_t fnv_step(uint64_t h, unsigned char c)
{
	return (h ^ c) * FNV_PRIME;
}

/* Five bytes as a little-endian number, the same on every host. */
static inline uint64_t load40(const unsigned char *b)
{
	return (uint64_t)b[0] | (uint64_t)b[1] << 8 | (uint64_t)b[2] << 16 |
	       (uint64_t)b[3] << 24 | (uint64_t)b[4] << 32;
}

#define GRAM_CHUNK 256

/*
 * The 3-, 4- and 5-grams of " word ". A gram of at most 5 bytes is packed
 * into a number (distinct grams, distinct numbers, tagged with their
 * length) and scrambled by mix64, a bijection: one multiply-heavy step per
 * gram instead of hashing its bytes. Words of any length go through a
 * small buffer, GRAM_CHUNK start positions at a time.
 */
LIN_INLINE void char_grams(feat_fn fn, void *user, unsigned shift, float w,
			   const unsigned char *word, size_t wlen, uint64_t ctx)
{
	size_t p = wlen + 2;
	unsigned char buf[GRAM_CHUNK + 16];
	for (size_t base = 0; base + 3 <= p; base += GRAM_CHUNK) {
		size_t stop =
		    base + GRAM_CHUNK < p - 2 ? base + GRAM_CHUNK : p - 2;
		size_t end = stop + 4 < p ? stop + 4 : p;
		size_t k = 0;
		for (size_t j = base; j < end; j++)
			buf[k++] =
			    (j == 0 || j == p - 1) ? ' ' : lower(word[j - 1]);
		/* load40 reads up to 4 bytes past the last start. */
		memset(buf + k, 0, 8);
		for (size_t i = base; i < stop; i++) {
			uint64_t v = load40(buf + (i - base));
			size_t left = p - i;
			emit(fn, user, shift, w,
			     pwb__mix64((v & 0xffffffu) ^ KEY_GRAM3 ^ ctx));
			if (left >= 4)
				emit(fn, user, shift, w,
				     pwb__mix64((v & 0xffffffffu) ^ KEY_GRAM4 ^
						ctx));
			if (left >= 5)
				emit(fn, user, shift, w,
				     pwb__mix64(v ^ KEY_GRAM5 ^ ctx));
		}
	}
}

/* ---- contexts (version 2) ---- */

/* Words after a negation that are in its scope. */
#define NEG_SCOPE 3

/* Negations, lowercased, shortest first: English (with the spellings without
 * an apostrophe common in informal text), German, French, Spanish and
 * Italian. "n't" and French "n'" are found by their apostrophe
 * (is_negation). */
static const char *const negations[] = {
    "ne",      "ni",	  "no",	     "nie",	"non",	    "nor",
    "not",     "pas",	  "aint",    "cant",	"dont",	    "isnt",
    "kein",    "none",	  "rien",    "wont",	"aucun",    "didnt",
    "hadnt",   "hasnt",	  "keine",   "never",	"nunca",    "weder",
    "arent",   "nicht",	  "wasnt",   "aucune",	"cannot",   "doesnt",
    "havent",  "jamais",  "keinem",  "keinen",	"keiner",   "keines",
    "nichts",  "nobody",  "werent",  "couldnt", "neither",  "niemals",
    "niemand", "nothing", "nowhere", "wouldnt", "shouldnt",
};

/* The length of the apostrophe (' or U+2019) that ends at s[end - 1]
 * (end > 0), or 0. */
static inline size_t apostrophe_before(const unsigned char *s, size_t end)
{
	if (s[end - 1] == '\'')
		return 1;
	if (end >= 3 && s[end - 3] == 0xe2 && s[end - 2] == 0x80 &&
	    s[end - 1] == 0x99)
		return 3;
	return 0;
}

/*
 * Whether the word s[start, start + wlen) is a negation: one of
 * negations[] ("n" and "t" only as the n' of French n'est and the n't of
 * don't: a lone "t" after "n'", a lone "n" before an apostrophe), or a
 * word that ends in "n't" with a typographic apostrophe (don’t stays one
 * word without the quotes context).
 */
static bool is_negation(const unsigned char *s, size_t len, size_t start,
			size_t wlen)
{
	const unsigned char *w = s + start;
	if (wlen == 1) {
		if (lower(w[0]) == 't' && start >= 2) {
			size_t a = apostrophe_before(s, start);
			return a && start > a && lower(s[start - a - 1]) == 'n';
		}
		if (lower(w[0]) == 'n' && start + 1 < len)
			return s[start + 1] == '\'' ||
			       (start + 3 < len && s[start + 1] == 0xe2 &&
				s[start + 2] == 0x80 && s[start + 3] == 0x99);
		return false;
	}
	if (wlen >= 5 && lower(w[wlen - 1]) == 't' && w[wlen - 2] == 0x99 &&
	    w[wlen - 3] == 0x80 && w[wlen - 4] == 0xe2 &&
	    lower(w[wlen - 5]) == 'n')
		return true;
	if (wlen > 8)
		return false;
	for (size_t k = 0; k < PWB_ARRAY_LEN(negations); k++) {
		const char *c = negations[k];
		size_t j = 0;
		while (j < wlen && c[j] && lower(w[j]) == (unsigned char)c[j])
			j++;
		if (j == wlen && !c[j])
			return true;
	}
	return false;
}

/*
 * The length of the typographic quotation mark at s[i] (U+2018 to U+201F,
 * « and »), or 0. With the quotes context these end words.
 */
static inline size_t quote_mark(const unsigned char *s, size_t len, size_t i)
{
	if (s[i] == 0xe2)
		return i + 2 < len && s[i + 1] == 0x80 && s[i + 2] >= 0x98 &&
			       s[i + 2] <= 0x9f
			   ? 3
			   : 0;
	if (s[i] == 0xc2)
		return i + 1 < len && (s[i + 1] == 0xab || s[i + 1] == 0xbb)
			   ? 2
			   : 0;
	return 0;
}

typedef struct context {
	unsigned features; /* PWB__LIN_NEGATION | PWB__LIN_QUOTES */
	unsigned neg_left; /* words still in a negation's scope */
	bool dq, sq;	   /* inside double, single quotation marks */
} context;

/* Whether s[i] starts a word under the context's feature set. */
static inline bool word_at(const context *c, const unsigned char *s, size_t len,
			   size_t i)
{
	return is_word_byte(s[i]) &&
	       !((c->features & PWB__LIN_QUOTES) && quote_mark(s, len, i));
}

/*
 * A single quotation mark at s[i, i + n) (' or ’ or ‘): opens when it
 * starts a word, closes an open quotation when it ends one, and is an
 * apostrophe (nothing) between two words' letters.
 */
static inline void single_quote(context *c, const unsigned char *s, size_t len,
				size_t i, size_t n, bool opening)
{
	bool before = i > 0 && is_word_byte(s[i - 1]);
	bool after = i + n < len && word_at(c, s, len, i + n);
	if (before && after)
		return;
	if (c->sq && before)
		c->sq = false;
	else if (!before && after && (opening || !c->sq))
		c->sq = true;
}

/*
 * Skips the bytes between two words from s[i], following quotation marks
 * and clause ends; returns where the next word starts (or len).
 */
static size_t gap(context *c, const unsigned char *s, size_t len, size_t i)
{
	bool quotes = c->features & PWB__LIN_QUOTES;
	while (i < len && !word_at(c, s, len, i)) {
		unsigned char b = s[i];
		size_t q = quotes ? quote_mark(s, len, i) : 0;
		if (b == '.' || b == ',' || b == ';' || b == ':' || b == '!' ||
		    b == '?' || b == '\n')
			c->neg_left = 0;
		if (!quotes) {
			i++;
			continue;
		}
		if (b == '\n') {
			c->dq = c->sq = false;
		} else if (b == '"') {
			c->dq = !c->dq;
		} else if (b == '\'') {
			single_quote(c, s, len, i, 1, false);
		} else if (q == 3) {
			unsigned char k = s[i + 2];
			if (k == 0x9e) /* „ opens */
				c->dq = true;
			else if (k >= 0x9c) /* “ ” ‟ open or close */
				c->dq = !c->dq;
			else if (k == 0x9a) /* ‚ opens */
				c->sq = true;
			else
				single_quote(c, s, len, i, 3, k == 0x98);
		} else if (q == 2) { /* « » open or close */
			c->dq = !c->dq;
		}
		i += q ? q : 1;
	}
	return i;
}

/* The key of the context the next word is in. */
static inline uint64_t context_key(const context *c)
{
	return (c->neg_left ? CTX_NEG : 0) | (c->dq || c->sq ? CTX_QUOTE : 0);
}

/*
 * Calls fn for every feature of text with weight +-w under a feature set
 * (0: version 1's features); returns how many (with features 0, always
 * count_features() of the text).
 */
LIN_INLINE size_t walk(const unsigned char *s, size_t len, unsigned bits,
		       unsigned features, float w, feat_fn fn, void *user)
{
	unsigned shift = 64 - bits;
	uint64_t prev = 0;
	bool has_prev = false;
	size_t n = 0, i = 0;
	context c = {.features = features};
	while (i < len) {
		if (features)
			i = gap(&c, s, len, i);
		else
			while (i < len && !is_word_byte(s[i]))
				i++;
		if (i == len)
			break;
		size_t start = i;
		uint64_t h = SEED_WORD;
		if (features & PWB__LIN_QUOTES)
			while (i < len && word_at(&c, s, len, i))
				h = fnv_step(h, lower(s[i++]));
		else
			while (i < len && is_word_byte(s[i]))
				h = fnv_step(h, lower(s[i++]));
		size_t wlen = i - start;
		uint64_t ctx = features ? context_key(&c) : 0;
		emit(fn, user, shift, w, pwb__mix64(h ^ KEY_UNI ^ ctx));
		if (has_prev)
			emit(fn, user, shift, w, pwb__mix64(prev * KEY_BI + h));
		n += word_n_features(wlen, has_prev);
		prev = h;
		has_prev = true;
		char_grams(fn, user, shift, w, s + start, wlen, ctx);
		if (features & PWB__LIN_NEGATION) {
			if (is_negation(s, len, start, wlen))
				c.neg_left = NEG_SCOPE;
			else if (c.neg_left)
				c.neg_left--;
		}
	}
	return n;
}

void pwb__linear_features(const char *text, size_t len, unsigned hash_bits,
			  unsigned features,
			  void (*fn)(void *user, uint32_t bucket, float w),
			  void *user)
{
	if (!PWB_ALWAYS(hash_bits >= 1 && hash_bits <= 32) || !text || !len)
		return;
	const unsigned char *s = (const unsigned char *)text;
	/* The contexts change no word's count of features. */
	size_t n = count_features(s, len);
	if (features & PWB__LIN_QUOTES) {
		/* ... but the typographic quotation marks end words. */
		context c = {.features = features};
		bool has_prev = false;
		size_t i = 0;
		n = 0;
		while ((i = gap(&c, s, len, i)) < len) {
			size_t start = i;
			while (i < len && word_at(&c, s, len, i))
				i++;
			n += word_n_features(i - start, has_prev);
			has_prev = true;
		}
	}
	if (n)
		walk(s, len, hash_bits, features,
		     (float)(1.0 / sqrt((double)n)), fn, user);
}

void pwb__hashed_features(const char *text, size_t len, unsigned hash_bits,
			  void (*fn)(void *user, uint32_t bucket, float w),
			  void *user)
{
	pwb__linear_features(text, len, hash_bits, 0, fn, user);
}

/* ---- the model and its scores ---- */

struct pwb__linear {
	/* The format version it was read from, or is written in. */
	unsigned version;
	/* PWB__LIN_NEGATION | PWB__LIN_QUOTES; 0 in version 1. */
	unsigned features;
	unsigned hash_bits;
	size_t n_labels;
	char **names;
	/* Bucket-major (w[bucket * n_labels + label]) so that one feature
	 * reads one cache line for all labels; the file is label-major. */
	float *w;
	float *bias;
};

void pwb__linear_free(pwb__linear *m)
{
	if (!m)
		return;
	if (m->names)
		for (size_t i = 0; i < m->n_labels; i++)
			free(m->names[i]);
	free(m->names);
	free(m->w);
	free(m->bias);
	free(m);
}

static size_t n_buckets(const pwb__linear *m)
{
	return (size_t)1 << m->hash_bits;
}

static pwb_status model_new(pwb__linear **out, unsigned version,
			    unsigned features, unsigned hash_bits,
			    size_t n_labels)
{
	*out = NULL;
	pwb__linear *m = pwb__calloc(1, sizeof(*m));
	if (!m)
		return PWB_ENOMEM;
	m->version = version;
	m->features = features;
	m->hash_bits = hash_bits;
	m->n_labels = n_labels;
	m->names = pwb__calloc(n_labels, sizeof(*m->names));
	m->w = pwb__calloc(n_buckets(m) * n_labels, sizeof(*m->w));
	m->bias = pwb__calloc(n_labels, sizeof(*m->bias));
	if (!m->names || !m->w || !m->bias) {
		pwb__linear_free(m);
		return PWB_ENOMEM;
	}
	*out = m;
	return PWB_OK;
}

size_t pwb__linear_n_labels(const pwb__linear *m)
{
	return m ? m->n_labels : 0;
}

const char *pwb__linear_label(const pwb__linear *m, size_t i)
{
	return m && i < m->n_labels ? m->names[i] : NULL;
}

typedef struct dot_ctx {
	const float *w;
	size_t n_labels;
	double *z;
} dot_ctx;

LIN_INLINE void dot_fn(void *user, uint32_t bucket, float x)
{
	dot_ctx *c = user;
	const float *row = c->w + (size_t)bucket * c->n_labels;
	for (size_t l = 0; l < c->n_labels; l++)
		c->z[l] += (double)x * row[l];
}

/*
 * The logits of a text, into z; returns its number of feature occurrences.
 * The features are summed with weight +-1 and the sums scaled by
 * 1/sqrt(N) at the end, which spares the counting pass. Weights are finite
 * floats, so the double sums stay far from overflowing and are never NaN.
 */
static size_t logits(const pwb__linear *m, const char *text, size_t len,
		     double *z)
{
	for (size_t l = 0; l < m->n_labels; l++)
		z[l] = 0;
	dot_ctx c = {m->w, m->n_labels, z};
	size_t n = text ? walk((const unsigned char *)text, len, m->hash_bits,
			       m->features, 1.0f, dot_fn, &c)
			: 0;
	double scale = n ? 1.0 / sqrt((double)n) : 0;
	for (size_t l = 0; l < m->n_labels; l++)
		z[l] = m->bias[l] + z[l] * scale;
	return n;
}

static double sigmoid(double z)
{
	if (z >= 0)
		return 1.0 / (1.0 + exp(-z));
	double e = exp(z);
	return e / (1.0 + e);
}

void pwb__linear_score(const pwb__linear *m, const char *text, size_t len,
		       double *scores)
{
	logits(m, text, len, scores);
	for (size_t l = 0; l < m->n_labels; l++)
		scores[l] = sigmoid(scores[l]);
}

/* The end of a window that starts at `start`: `window` bytes on, moved
 * back to just after a space when one is near, never inside a UTF-8
 * sequence. */
static size_t window_end(const char *t, size_t len, size_t start, size_t window)
{
	if (len - start <= window)
		return len;
	size_t end = start + window;
	for (size_t k = 0; k < PWB__LINEAR_WINDOW_SLACK && end - k > start; k++)
		if (t[end - k - 1] == ' ' || t[end - k - 1] == '\n')
			return end - k;
	while (end > start + 1 && ((unsigned char)t[end] & 0xc0) == 0x80)
		end--;
	return end;
}

/* The start of the next window: half a window on, after a space when one
 * is near, never inside a UTF-8 sequence. */
static size_t window_next(const char *t, size_t len, size_t start,
			  size_t window)
{
	size_t next = start + window / 2;
	for (size_t k = 0; k < PWB__LINEAR_WINDOW_SLACK && next + k < len; k++)
		if (t[next + k] == ' ' || t[next + k] == '\n')
			return next + k + 1;
	while (next < len && ((unsigned char)t[next] & 0xc0) == 0x80)
		next++;
	return next;
}

void pwb__linear_score_windows(const pwb__linear *m, const char *text,
			       size_t len, size_t window, double *scores)
{
	pwb__linear_score(m, text, len, scores);
	if (!text || window < 2 * PWB__LINEAR_WINDOW_SLACK || len <= window)
		return;
	double w[LIN_MAX_LABELS];
	for (size_t start = 0; start < len;) {
		size_t end = window_end(text, len, start, window);
		pwb__linear_score(m, text + start, end - start, w);
		for (size_t l = 0; l < m->n_labels; l++)
			if (w[l] > scores[l])
				scores[l] = w[l];
		if (end == len)
			break;
		start = window_next(text, len, start, window);
	}
}

/* ---- training ---- */

pwb__linear_params pwb__linear_default_params(void)
{
	pwb__linear_params p = {0};
	p.hash_bits = 18;
	p.l2 = 1e-6;
	p.learning_rate = 0.5;
	p.epochs = 5;
	p.valid_fraction = 0.2;
	p.seed = 1;
	p.class_weights = true;
	p.max_fpr = 0;
	p.features = PWB__LIN_DEFAULT_FEATURES;
	return p;
}

/* Category ids as the registry spells them: a lowercase letter, then
 * lowercase letters, digits, '_', '-', and '.' between parts. */
static bool valid_label(const char *s, size_t len)
{
	if (len < 1 || len > LIN_MAX_NAME || !(s[0] >= 'a' && s[0] <= 'z'))
		return false;
	for (size_t i = 0; i < len; i++) {
		char c = s[i];
		bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
			  c == '_' || c == '-' || c == '.';
		if (!ok || (c == '.' && (i + 1 == len || s[i + 1] == '.')))
			return false;
	}
	return true;
}

static bool labels_ok(const char *const *names, size_t n_labels)
{
	for (size_t l = 0; l < n_labels; l++) {
		if (!names[l] || !valid_label(names[l], strlen(names[l])))
			return false;
		for (size_t k = 0; k < l; k++)
			if (strcmp(names[k], names[l]) == 0)
				return false;
	}
	return true;
}

static bool sizes_ok(unsigned hash_bits, size_t n_labels)
{
	if (hash_bits < LIN_MIN_BITS || hash_bits > LIN_MAX_BITS)
		return false;
	if (n_labels < 1 || n_labels > LIN_MAX_LABELS)
		return false;
	return n_labels * (((size_t)1 << hash_bits) + 1) <= LIN_MAX_WEIGHTS;
}

static void shuffle(size_t *a, size_t n, uint64_t *rng)
{
	for (size_t i = n; i > 1; i--) {
		size_t j = (size_t)(pwb__rng_next(rng) % i);
		size_t t = a[i - 1];
		a[i - 1] = a[j];
		a[j] = t;
	}
}

/*
 * The validation split, stratified: each text belongs to the stratum of
 * its rarest positive label (or to the stratum of texts without one), and
 * about valid_fraction of each stratum, picked at random with the seed, is
 * held out. Rare labels thus get their share of validation positives.
 * Fills is_valid and returns the number held out.
 */
static pwb_status split(const uint8_t *labels, size_t n, size_t n_labels,
			double frac, uint64_t *rng, bool *is_valid,
			size_t *n_valid)
{
	pwb_status rc = PWB_ENOMEM;
	size_t *count = pwb__calloc(n_labels + 1, sizeof(*count));
	size_t *start = pwb__calloc(n_labels + 2, sizeof(*start));
	size_t *stratum = pwb__malloc(n * sizeof(*stratum));
	size_t *perm = pwb__malloc(n * sizeof(*perm));
	size_t *order = pwb__malloc(n * sizeof(*order));
	if (!count || !start || !stratum || !perm || !order)
		goto out;
	for (size_t i = 0; i < n; i++)
		for (size_t l = 0; l < n_labels; l++)
			count[l] += labels[i * n_labels + l];
	for (size_t i = 0; i < n; i++) {
		size_t best = n_labels;
		for (size_t l = 0; l < n_labels; l++)
			if (labels[i * n_labels + l] &&
			    (best == n_labels || count[l] < count[best]))
				best = l;
		stratum[i] = best;
	}
	/* A random order, then a stable counting sort by stratum: each
	 * stratum's members end up contiguous and in random order. */
	for (size_t i = 0; i < n; i++)
		perm[i] = i;
	shuffle(perm, n, rng);
	memset(count, 0, (n_labels + 1) * sizeof(*count));
	for (size_t i = 0; i < n; i++)
		count[stratum[i]]++;
	for (size_t s = 0; s <= n_labels; s++)
		start[s + 1] = start[s] + count[s];
	for (size_t i = 0; i < n; i++) {
		size_t t = perm[i];
		order[start[stratum[t]]++] = t;
	}
	size_t nv = 0, pos = 0;
	for (size_t s = 0; s <= n_labels; s++) {
		for (size_t k = 0; k < count[s]; k++) {
			/* Member k is held out when round((k + 1) f) steps
			 * up: round(m f) of m members, spread evenly. */
			bool v = floor((double)(k + 1) * frac + 0.5) >
				 floor((double)k * frac + 0.5);
			is_valid[order[pos++]] = v;
			nv += v;
		}
	}
	*n_valid = nv;
	rc = PWB_OK;
out:
	free(count);
	free(start);
	free(stratum);
	free(perm);
	free(order);
	return rc;
}

/*
 * AdaGrad's accumulators start at 1 rather than 0: the first steps are then
 * plain SGD steps (lr * gradient) instead of a full lr for every feature a
 * text touches, which let the first few texts dominate. On 5-fold cross-
 * validation over the OpenAI moderation samples this raised macro-F1 from
 * 0.37 to 0.48 at the default learning rate.
 */
#define ADAGRAD_G0 1.0

typedef struct trainer {
	pwb__linear *m;
	float *g2; /* AdaGrad: sums of squared gradients, like m->w */
	double *g2_bias;
	double *z;     /* per label: logit, then the loss gradient */
	double *w_pos; /* class weights */
	double *w_neg;
	double lr, l2;
} trainer;

LIN_INLINE void update_fn(void *user, uint32_t bucket, float x)
{
	trainer *t = user;
	size_t nl = t->m->n_labels;
	float *w = t->m->w + (size_t)bucket * nl;
	float *g2 = t->g2 + (size_t)bucket * nl;
	for (size_t l = 0; l < nl; l++) {
		double g = t->z[l] * x + t->l2 * w[l];
		if (g == 0)
			continue;
		g2[l] += (float)(g * g);
		w[l] -= (float)(t->lr * g / sqrt(ADAGRAD_G0 + (double)g2[l]));
	}
}

/*
 * One AdaGrad step on text i for every label at once: a pass for the
 * logits, then a pass that moves the weights of the features the text
 * has. L2 acts on the weights a text touches, when it touches them (the
 * usual approximation for sparse data).
 */
static void train_one(trainer *t, const char *text, size_t len,
		      const uint8_t *y)
{
	pwb__linear *m = t->m;
	size_t n = logits(m, text, len, t->z);
	for (size_t l = 0; l < m->n_labels; l++) {
		double p = sigmoid(t->z[l]);
		double g = y[l] ? t->w_pos[l] * (p - 1.0) : t->w_neg[l] * p;
		t->z[l] = g;
		t->g2_bias[l] += g * g;
		m->bias[l] -=
		    (float)(t->lr * g / sqrt(ADAGRAD_G0 + t->g2_bias[l]));
	}
	if (n)
		walk((const unsigned char *)text, len, m->hash_bits,
		     m->features, (float)(1.0 / sqrt((double)n)), update_fn, t);
}

static void trainer_release(trainer *t)
{
	free(t->g2);
	free(t->g2_bias);
	free(t->z);
	free(t->w_pos);
	free(t->w_neg);
}

static bool params_ok(const pwb__linear_params *p)
{
	return sizes_ok(p->hash_bits, 1) && isfinite(p->l2) && p->l2 >= 0 &&
	       isfinite(p->learning_rate) && p->learning_rate > 0 &&
	       p->epochs >= 1 && p->epochs <= 100000 &&
	       p->valid_fraction >= 0 && p->valid_fraction < 1 &&
	       p->max_fpr >= 0 && p->max_fpr < 1 &&
	       !(p->features & ~PWB__LIN_FEATURES_KNOWN);
}

static bool data_ok(const char *const *texts, const size_t *lens,
		    const uint8_t *labels, size_t n, size_t n_labels)
{
	if (!texts || !lens || !labels || n == 0)
		return false;
	if (n > SIZE_MAX / n_labels / sizeof(size_t))
		return false;
	for (size_t i = 0; i < n; i++) {
		if (!texts[i] && lens[i])
			return false;
		for (size_t l = 0; l < n_labels; l++)
			if (labels[i * n_labels + l] > 1)
				return false;
	}
	return true;
}

static void evaluate(const pwb__linear *m, const char *const *texts,
		     const size_t *lens, const uint8_t *labels, size_t n,
		     const bool *is_valid, double *z, size_t *tp, size_t *fp,
		     size_t *fn)
{
	size_t nl = m->n_labels;
	for (size_t i = 0; i < n; i++) {
		if (!is_valid[i])
			continue;
		pwb__linear_score(m, texts[i], lens[i], z);
		for (size_t l = 0; l < nl; l++) {
			bool pred = z[l] >= 0.5, y = labels[i * nl + l];
			tp[l] += pred && y;
			fp[l] += pred && !y;
			fn[l] += !pred && y;
		}
	}
}

static int cmp_desc(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x < y) - (x > y);
}

/*
 * Sets each label's threshold from the validation split: the lowest
 * probability that at most max_fpr of the validation texts without the
 * label reach, never below 0.5 (a threshold only rises: a text is blocked
 * by any of the labels, so their false positives add up) nor above 0.995,
 * then moves the label's bias so
 * that this probability scores 0.5. Scores keep their order; the
 * detector's threshold stays 0.5 (or the registry's).
 */
static pwb_status calibrate(pwb__linear *m, const char *const *texts,
			    const size_t *lens, const uint8_t *labels,
			    size_t n, const bool *is_valid, double max_fpr,
			    double *thresholds)
{
	size_t nl = m->n_labels, n_valid = 0;
	for (size_t i = 0; i < n; i++)
		n_valid += is_valid[i];
	double *scores = pwb__malloc(n_valid * nl * sizeof(*scores));
	double *neg = pwb__malloc(n_valid * sizeof(*neg));
	if (!scores || !neg) {
		free(scores);
		free(neg);
		return PWB_ENOMEM;
	}
	for (size_t i = 0, k = 0; i < n; i++)
		if (is_valid[i])
			pwb__linear_score(m, texts[i], lens[i],
					  scores + nl * k++);
	for (size_t l = 0; l < nl; l++) {
		size_t n_neg = 0;
		for (size_t i = 0, k = 0; i < n; i++) {
			if (!is_valid[i])
				continue;
			if (!labels[i * nl + l])
				neg[n_neg++] = scores[nl * k + l];
			k++;
		}
		if (!n_neg)
			continue;
		qsort(neg, n_neg, sizeof(*neg), cmp_desc);
		/* At most `allowed` negatives may reach the threshold: just
		 * above the next one down. */
		size_t allowed = (size_t)(max_fpr * (double)n_neg);
		double t = allowed < n_neg ? neg[allowed] + 1e-6 : 0.5;
		t = t < 0.5 ? 0.5 : t > 0.995 ? 0.995 : t;
		thresholds[l] = t;
		m->bias[l] -= (float)log(t / (1 - t));
	}
	free(scores);
	free(neg);
	return PWB_OK;
}

pwb_status pwb__linear_train(pwb__linear **out, const char *const *texts,
			     const size_t *lens, const uint8_t *labels,
			     size_t n, const char *const *label_names,
			     size_t n_labels, const pwb__linear_params *params,
			     pwb__linear_report *report)
{
	if (!out)
		return PWB_EINVAL;
	*out = NULL;
	pwb__linear_params p = params ? *params : pwb__linear_default_params();
	if (!params_ok(&p) || !label_names ||
	    !sizes_ok(p.hash_bits, n_labels) ||
	    !labels_ok(label_names, n_labels) ||
	    !data_ok(texts, lens, labels, n, n_labels))
		return PWB_EINVAL;

	pwb_status rc = PWB_ENOMEM;
	pwb__linear *m = NULL;
	trainer t = {0};
	bool *is_valid = NULL;
	size_t *order = NULL;
	size_t *counts = NULL; /* per label: pos, neg, tp, fp, fn */
	pwb__linear_label_report *lr = NULL;

	if (model_new(&m, LIN_VERSION, p.features, p.hash_bits, n_labels))
		goto out;
	for (size_t l = 0; l < n_labels; l++)
		if (!(m->names[l] = pwb__strdup(label_names[l])))
			goto out;
	t.m = m;
	t.lr = p.learning_rate;
	t.l2 = p.l2;
	t.g2 = pwb__calloc(n_buckets(m) * n_labels, sizeof(*t.g2));
	t.g2_bias = pwb__calloc(n_labels, sizeof(*t.g2_bias));
	t.z = pwb__calloc(n_labels, sizeof(*t.z));
	t.w_pos = pwb__calloc(n_labels, sizeof(*t.w_pos));
	t.w_neg = pwb__calloc(n_labels, sizeof(*t.w_neg));
	is_valid = pwb__calloc(n, sizeof(*is_valid));
	order = pwb__malloc(n * sizeof(*order));
	counts = pwb__calloc(5 * n_labels, sizeof(*counts));
	if (report)
		lr = pwb__calloc(n_labels, sizeof(*lr));
	if (!t.g2 || !t.g2_bias || !t.z || !t.w_pos || !t.w_neg || !is_valid ||
	    !order || !counts || (report && !lr))
		goto out;

	uint64_t rng = p.seed;
	size_t n_valid = 0;
	if (p.valid_fraction > 0 && split(labels, n, n_labels, p.valid_fraction,
					  &rng, is_valid, &n_valid))
		goto out;
	size_t n_train = 0;
	for (size_t i = 0; i < n; i++)
		if (!is_valid[i])
			order[n_train++] = i;
	if (n_train == 0) {
		rc = PWB_EINVAL;
		goto out;
	}

	/* Class weights from the training split: the rarer side of each
	 * label weighs rarer/commoner, capped at 20 so that a label with a
	 * handful of positives does not swamp the loss. */
	size_t *pos = counts, *neg = counts + n_labels;
	for (size_t k = 0; k < n_train; k++)
		for (size_t l = 0; l < n_labels; l++) {
			if (labels[order[k] * n_labels + l])
				pos[l]++;
			else
				neg[l]++;
		}
	for (size_t l = 0; l < n_labels; l++) {
		t.w_pos[l] = t.w_neg[l] = 1.0;
		if (!p.class_weights || !pos[l] || !neg[l])
			continue;
		if (neg[l] > pos[l])
			t.w_pos[l] = fmin((double)neg[l] / pos[l], 20.0);
		else
			t.w_neg[l] = fmin((double)pos[l] / neg[l], 20.0);
	}

	/* Progress: about a hundred calls over the epochs and validation. */
	double total = (double)p.epochs * n_train + n_valid;
	size_t every = (size_t)(total / 100) + 1, done = 0;
	for (unsigned e = 0; e < p.epochs; e++) {
		shuffle(order, n_train, &rng);
		for (size_t k = 0; k < n_train; k++) {
			size_t i = order[k];
			train_one(&t, texts[i], lens[i], labels + i * n_labels);
			if (p.progress && ++done % every == 0)
				p.progress(p.progress_user, done / total);
		}
	}

	double *thresholds = pwb__malloc(n_labels * sizeof(*thresholds));
	if (!thresholds)
		goto out;
	for (size_t l = 0; l < n_labels; l++)
		thresholds[l] = 0.5;
	if (n_valid && p.max_fpr > 0 &&
	    calibrate(m, texts, lens, labels, n, is_valid, p.max_fpr,
		      thresholds)) {
		free(thresholds);
		goto out;
	}
	size_t *tp = counts + 2 * n_labels, *fp = counts + 3 * n_labels,
	       *fn = counts + 4 * n_labels;
	if (report && n_valid)
		evaluate(m, texts, lens, labels, n, is_valid, t.z, tp, fp, fn);
	if (p.progress)
		p.progress(p.progress_user, 1.0);
	if (report) {
		/* Precision and recall are 0 when undefined (no predicted
		 * positives, or no positives); n_pos tells them apart. */
		for (size_t l = 0; l < n_labels; l++) {
			lr[l].n_pos = tp[l] + fn[l];
			lr[l].precision =
			    tp[l] + fp[l] ? (double)tp[l] / (tp[l] + fp[l]) : 0;
			lr[l].recall =
			    lr[l].n_pos ? (double)tp[l] / lr[l].n_pos : 0;
			lr[l].threshold = thresholds[l];
		}
		report->n_train = n_train;
		report->n_valid = n_valid;
		report->labels = lr;
		lr = NULL;
	}
	free(thresholds);
	*out = m;
	m = NULL;
	rc = PWB_OK;
out:
	trainer_release(&t);
	free(is_valid);
	free(order);
	free(counts);
	free(lr);
	pwb__linear_free(m);
	return rc;
}

/* ---- the file format ----
 *
 * Version 2, all integers and floats little-endian:
 *
 *   "PWBLIN\0\0"                      8 bytes
 *   version, hash_bits, n_labels      uint32 each
 *   features                          uint32: the feature set, a sum of
 *                                     PWB__LIN_NEGATION (1) and
 *                                     PWB__LIN_QUOTES (2)
 *   n_labels names                    uint32 length (1-128) + the bytes
 *   n_labels rows of float32          2^hash_bits weights, then the bias
 *   BLAKE2b-256 of all the above      32 bytes
 *
 * Version 1 is the same without the features field: its models have
 * version 1's features (none of the contexts) and score as they always
 * did. A model is written back in the version it was read from, so that
 * a file's bytes round-trip; trained models are written in version 2.
 */

static size_t header_len(unsigned version)
{
	return version == 1 ? LIN_HEADER1_LEN : LIN_HEADER_LEN;
}

static size_t file_size(const pwb__linear *m)
{
	size_t n = header_len(m->version);
	for (size_t l = 0; l < m->n_labels; l++)
		n += 4 + strlen(m->names[l]);
	return n + m->n_labels * (n_buckets(m) + 1) * 4 + LIN_SUM_LEN;
}

static void serialise(pwb__sealw *w, const void *ctx)
{
	const pwb__linear *m = ctx;
	pwb__sealw_put(w, LIN_MAGIC, LIN_MAGIC_LEN);
	pwb__sealw_u32(w, m->version);
	pwb__sealw_u32(w, m->hash_bits);
	pwb__sealw_u32(w, (uint32_t)m->n_labels);
	if (m->version >= 2)
		pwb__sealw_u32(w, m->features);
	for (size_t l = 0; l < m->n_labels; l++) {
		size_t len = strlen(m->names[l]);
		pwb__sealw_u32(w, (uint32_t)len);
		pwb__sealw_put(w, m->names[l], len);
	}
	size_t nb = n_buckets(m), nl = m->n_labels;
	for (size_t l = 0; l < nl && !pwb__sealw_failed(w); l++) {
		for (size_t b = 0; b < nb; b++)
			pwb__sealw_f32(w, m->w[b * nl + l]);
		pwb__sealw_f32(w, m->bias[l]);
	}
}

pwb_status pwb__linear_save_mem(const pwb__linear *m, void **data, size_t *len)
{
	pwb_status rc = pwb__sealed_to_mem(serialise, m, data, len);
	if (!rc && PWB_NEVER(*len != file_size(m))) {
		free(*data);
		*data = NULL;
		*len = 0;
		return PWB_EINVAL;
	}
	return rc;
}

pwb_status pwb__linear_save(const pwb__linear *m, const char *path,
			    pwb_diag *diag)
{
	if (!m || !path || !*path) {
		pwb_diag_add(diag, path, 0, 0, "no model or no path");
		return PWB_EINVAL;
	}
	return pwb__sealed_to_file(path, serialise, m, diag);
}

static uint32_t rd32(const unsigned char *b)
{
	return (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 |
	       (uint32_t)b[3] << 24;
}

/* Messages name file (NULL for a model in memory). */
static pwb_status load_mem(pwb__linear **out, const void *data, size_t len,
			   const char *file, pwb_diag *diag)
{
	*out = NULL;
	const unsigned char *d = data;
	if (!d && len) {
		pwb_diag_add(diag, file, 0, 0, "no model data");
		return PWB_EINVAL;
	}
	if (len < LIN_MAGIC_LEN || memcmp(d, LIN_MAGIC, LIN_MAGIC_LEN) != 0) {
		pwb_diag_add(diag, file, 0, 0, "not a pwb linear model");
		return PWB_EPARSE;
	}
	if (len < LIN_HEADER1_LEN) {
		pwb_diag_add(diag, file, 0, 0,
			     "truncated: %zu bytes, shorter than the header",
			     len);
		return PWB_EPARSE;
	}
	uint32_t version = rd32(d + 8);
	bool known = version == 1 || version == LIN_VERSION;
	/* A version field that does not match is first checked against the
	 * checksum: damage is not a file from a newer pwb. */
	if (!known && !pwb__sealed_ok(d, len)) {
		pwb_diag_add(diag, file, 0, 0,
			     "checksum mismatch: the file is corrupt");
		return PWB_EPARSE;
	}
	if (version > LIN_VERSION) {
		pwb_diag_add(
		    diag, file, 0, 0,
		    "written by a newer pwb (version %u); this pwb reads "
		    "versions 1 and %u",
		    (unsigned)version, LIN_VERSION);
		return PWB_EPARSE;
	}
	if (!known) {
		pwb_diag_add(diag, file, 0, 0,
			     "unknown version %u; this pwb reads "
			     "versions 1 and %u",
			     (unsigned)version, LIN_VERSION);
		return PWB_EPARSE;
	}
	if (len < header_len(version)) {
		pwb_diag_add(diag, file, 0, 0,
			     "truncated: %zu bytes, shorter than the header",
			     len);
		return PWB_EPARSE;
	}
	uint32_t features = version == 1 ? 0 : rd32(d + 20);
	uint32_t bits = rd32(d + 12), nl = rd32(d + 16);
	if (bits < LIN_MIN_BITS || bits > LIN_MAX_BITS) {
		pwb_diag_add(diag, file, 0, 0,
			     "hash_bits is %u, not between %u and %u",
			     (unsigned)bits, LIN_MIN_BITS, LIN_MAX_BITS);
		return PWB_EPARSE;
	}
	if (nl < 1 || nl > LIN_MAX_LABELS) {
		pwb_diag_add(diag, file, 0, 0,
			     "%u labels, not between 1 and %u", (unsigned)nl,
			     LIN_MAX_LABELS);
		return PWB_EPARSE;
	}
	if (!sizes_ok(bits, nl)) {
		pwb_diag_add(
		    diag, file, 0, 0,
		    "%u labels at hash_bits %u exceed the limit of %zu "
		    "weights",
		    (unsigned)nl, (unsigned)bits, LIN_MAX_WEIGHTS);
		return PWB_EPARSE;
	}
	size_t off = header_len(version);
	size_t name_off[LIN_MAX_LABELS], name_len[LIN_MAX_LABELS];
	for (uint32_t l = 0; l < nl; l++) {
		if (len - off < 4) {
			pwb_diag_add(diag, file, 0, 0,
				     "truncated: the file ends inside label %u",
				     (unsigned)l + 1);
			return PWB_EPARSE;
		}
		uint32_t n = rd32(d + off);
		off += 4;
		if (n < 1 || n > LIN_MAX_NAME) {
			pwb_diag_add(
			    diag, file, 0, 0,
			    "label %u has %u bytes, not between 1 and %u",
			    (unsigned)l + 1, (unsigned)n, LIN_MAX_NAME);
			return PWB_EPARSE;
		}
		if (len - off < n) {
			pwb_diag_add(diag, file, 0, 0,
				     "truncated: the file ends inside label %u",
				     (unsigned)l + 1);
			return PWB_EPARSE;
		}
		name_off[l] = off;
		name_len[l] = n;
		off += n;
	}
	/* sizes_ok bounds this far below SIZE_MAX. */
	size_t nb = (size_t)1 << bits;
	size_t want = off + (size_t)nl * (nb + 1) * 4 + LIN_SUM_LEN;
	if (len != want) {
		pwb_diag_add(diag, file, 0, 0,
			     "%s: %zu bytes where the header promises %zu",
			     len < want ? "truncated" : "trailing bytes", len,
			     want);
		return PWB_EPARSE;
	}
	if (!pwb__sealed_ok(d, len)) {
		pwb_diag_add(diag, file, 0, 0,
			     "checksum mismatch: the file is corrupt");
		return PWB_EPARSE;
	}
	if (features & ~PWB__LIN_FEATURES_KNOWN) {
		pwb_diag_add(diag, file, 0, 0,
			     "uses features this pwb does not know (feature "
			     "set %#x, this pwb knows %#x): train the model "
			     "again with this pwb, or use the pwb that "
			     "trained it",
			     (unsigned)features, PWB__LIN_FEATURES_KNOWN);
		return PWB_EPARSE;
	}
	/* Past the checksum, a bad value was written so on purpose (or by a
	 * bug): the messages name it without echoing raw bytes. */
	for (uint32_t l = 0; l < nl; l++) {
		const char *s = (const char *)d + name_off[l];
		if (!valid_label(s, name_len[l])) {
			pwb_diag_add(diag, file, 0, 0,
				     "label %u is not a valid category id",
				     (unsigned)l + 1);
			return PWB_EPARSE;
		}
		for (uint32_t k = 0; k < l; k++)
			if (name_len[k] == name_len[l] &&
			    memcmp(d + name_off[k], s, name_len[l]) == 0) {
				pwb_diag_add(diag, file, 0, 0,
					     "labels %u and %u are the same",
					     (unsigned)k + 1, (unsigned)l + 1);
				return PWB_EPARSE;
			}
	}
	const unsigned char *wp = d + off;
	for (size_t i = 0; i < (size_t)nl * (nb + 1); i++) {
		uint32_t v = rd32(wp + 4 * i);
		float f;
		memcpy(&f, &v, 4);
		if (!isfinite(f)) {
			pwb_diag_add(diag, file, 0, 0,
				     "weight %zu of label %zu is not a finite "
				     "number",
				     i % (nb + 1), i / (nb + 1) + 1);
			return PWB_EPARSE;
		}
	}

	pwb__linear *m = NULL;
	if (model_new(&m, version, features, bits, nl)) {
		pwb_diag_add(diag, file, 0, 0, "out of memory");
		return PWB_ENOMEM;
	}
	for (uint32_t l = 0; l < nl; l++) {
		m->names[l] =
		    pwb__strndup((const char *)d + name_off[l], name_len[l]);
		if (!m->names[l]) {
			pwb__linear_free(m);
			pwb_diag_add(diag, file, 0, 0, "out of memory");
			return PWB_ENOMEM;
		}
	}
	for (size_t l = 0; l < nl; l++) {
		const unsigned char *row = wp + l * (nb + 1) * 4;
		for (size_t b = 0; b < nb; b++) {
			uint32_t v = rd32(row + 4 * b);
			memcpy(&m->w[b * nl + l], &v, 4);
		}
		uint32_t v = rd32(row + 4 * nb);
		memcpy(&m->bias[l], &v, 4);
	}
	*out = m;
	return PWB_OK;
}

pwb_status pwb__linear_load_mem(pwb__linear **out, const void *data, size_t len,
				pwb_diag *diag)
{
	if (!out) {
		pwb_diag_add(diag, NULL, 0, 0, "no place for the model");
		return PWB_EINVAL;
	}
	return load_mem(out, data, len, NULL, diag);
}

pwb_status pwb__linear_load(pwb__linear **out, const char *path, pwb_diag *diag)
{
	if (!out || !path) {
		pwb_diag_add(diag, path, 0, 0,
			     "no place for the model or no path");
		return PWB_EINVAL;
	}
	*out = NULL;
	char *data = NULL;
	size_t len = 0;
	pwb_status rc = pwb__read_file(path, LIN_MAX_FILE, &data, &len, diag);
	if (rc)
		return rc;
	rc = load_mem(out, data, len, path, diag);
	free(data);
	return rc;
}
