/*
 * test_linear.c - the linear detector: hashed features, training on a
 * synthetic separable set, save and load, refusal of every corrupt,
 * truncated or future file, an allocation-failure sweep, and (when the
 * shared data is there) training on the OpenAI moderation samples.
 *
 * PWB_DATA_DIR names the shared data folder (default: ../shared/data
 * beside the source tree). PWB_LINEAR_FUZZ_SEEDS=DIR makes
 * test_write_fuzz_seeds write the seed models of tests/fuzz/corpus/linear.
 */
/* cmocka needs these first, in this order. */
/* clang-format off */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
/* clang-format on */

#include <dirent.h>
#include <math.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bounds/linear.h"
#include "util/util.h"

static char dir[256];

static int setup(void **state)
{
	(void)state;
	const char *tmp = getenv("TMPDIR");
	snprintf(dir, sizeof(dir), "%s/pwb-test-linear-XXXXXX",
		 tmp && *tmp ? tmp : "/tmp");
	return mkdtemp(dir) ? 0 : -1;
}

/* Files in the test folder whose name contains part. */
static int count_files(const char *part)
{
	DIR *d = opendir(dir);
	if (!d)
		return -1;
	int n = 0;
	struct dirent *e;
	while ((e = readdir(d)))
		if (e->d_name[0] != '.' && strstr(e->d_name, part))
			n++;
	closedir(d);
	return n;
}

static int teardown(void **state)
{
	(void)state;
	DIR *d = opendir(dir);
	if (!d)
		return -1;
	struct dirent *e;
	char path[512];
	while ((e = readdir(d))) {
		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
		unlink(path);
	}
	closedir(d);
	return rmdir(dir);
}

static void path_in(char *buf, size_t size, const char *name)
{
	snprintf(buf, size, "%s/%s", dir, name);
}

/* A deterministic generator, so that every run sees the same texts. */
static uint64_t rnd(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

/* ---- features ---- */

typedef struct feats {
	uint32_t bucket[4096];
	float w[4096];
	size_t n;
	size_t n_over; /* occurrences past the arrays */
	uint32_t max_bucket;
	double sum_sq;
} feats;

static void collect(void *user, uint32_t bucket, float w)
{
	feats *f = user;
	if (f->n < PWB_ARRAY_LEN(f->bucket)) {
		f->bucket[f->n] = bucket;
		f->w[f->n] = w;
		f->n++;
	} else {
		f->n_over++;
	}
	if (bucket > f->max_bucket)
		f->max_bucket = bucket;
	f->sum_sq += (double)w * w;
}

static void features_of(feats *f, const char *s, unsigned bits)
{
	memset(f, 0, sizeof(*f));
	pwb__hashed_features(s, strlen(s), bits, collect, f);
}

static void test_features(void **state)
{
	(void)state;
	static feats a, b;
	/* "hi": a unigram, 2 3-grams, 1 4-gram; "there": a unigram, a
	 * bigram, 5 + 4 + 3 char grams. */
	features_of(&a, "Hi, there!", 18);
	assert_int_equal(a.n, 4 + 14);
	for (size_t i = 0; i < a.n; i++)
		assert_float_equal(fabsf(a.w[i]), 1 / sqrt(18.0), 1e-6);
	assert_true(a.max_bucket < (1u << 18));

	/* Deterministic, ASCII case and punctuation do not matter. */
	features_of(&b, "hi   THERE", 18);
	assert_int_equal(a.n, b.n);
	assert_memory_equal(a.bucket, b.bucket, a.n * sizeof(a.bucket[0]));
	assert_memory_equal(a.w, b.w, a.n * sizeof(a.w[0]));

	/* Signed hashing: both signs occur in a longer text. */
	features_of(&a, "the quick brown fox jumps over the lazy dog", 12);
	size_t neg = 0;
	for (size_t i = 0; i < a.n; i++)
		neg += a.w[i] < 0;
	assert_true(neg > 5 && neg < a.n - 5);
	assert_true(a.max_bucket < (1u << 12));

	/* UTF-8 stays inside words: "café" is one word, as is "naïve". */
	features_of(&a, "caf\xc3\xa9", 18);
	assert_int_equal(a.n, 1 + 5 + 4 + 3);

	/* Nothing from nothing. */
	features_of(&a, "", 18);
	assert_int_equal(a.n, 0);
	features_of(&a, " ,.;!? \t\n", 18);
	assert_int_equal(a.n, 0);

	/* Different words land in different buckets (almost always). */
	features_of(&a, "apple", 18);
	features_of(&b, "orange", 18);
	assert_int_not_equal(a.bucket[0], b.bucket[0]);
}

/* A large random text: every bucket in range, at most 5 occurrences a
 * byte, and the squared weights sum to N/N = 1. */
static void test_features_bounded(void **state)
{
	(void)state;
	size_t len = 1 << 20;
	char *s = malloc(len);
	assert_non_null(s);
	uint64_t r = 7;
	for (size_t i = 0; i < len; i++)
		s[i] = (char)(rnd(&r) & 0xff);
	static feats f;
	memset(&f, 0, sizeof(f));
	pwb__hashed_features(s, len, 10, collect, &f);
	size_t total = f.n + f.n_over;
	assert_true(total > 0 && total <= 5 * len);
	assert_true(f.max_bucket < 1024);
	assert_float_equal(f.sum_sq, 1.0, 1e-3);
	free(s);
}

/* ---- contexts: negation and quotation ---- */

/* The features of s under a feature set, at 32 bits: distinct features get
 * distinct buckets (but for a chance of about 2^-32 a pair). */
static void ctx_features(feats *f, const char *s, unsigned features)
{
	memset(f, 0, sizeof(*f));
	pwb__linear_features(s, strlen(s), 32, features, collect, f);
	assert_int_equal(f->n_over, 0);
}

static bool has_bucket(const feats *f, uint32_t b)
{
	for (size_t i = 0; i < f->n; i++)
		if (f->bucket[i] == b)
			return true;
	return false;
}

/* How many of word's own features (the lone word: its unigram and
 * character grams) text has, under a feature set. The other words of the
 * texts below share no character gram with "hate". */
static size_t plain_of(const char *text, const char *word, unsigned features)
{
	static feats t, w;
	ctx_features(&t, text, features);
	ctx_features(&w, word, 0);
	size_t k = 0;
	for (size_t i = 0; i < w.n; i++)
		k += has_bucket(&t, w.bucket[i]);
	return k;
}

/* "hate": its unigram and 4 + 3 + 2 character grams. */
#define HATE_FEATURES 10

static void test_features_negation(void **state)
{
	(void)state;
	const unsigned neg = PWB__LIN_NEGATION;
	/* Plain "hate" without the feature set, and after a negation with
	 * it: none of its features, in any of the languages' forms. */
	assert_int_equal(plain_of("i do not hate them", "hate", 0),
			 HATE_FEATURES);
	static const char *const negated[] = {
	    "i do not hate them",
	    "I don't hate them",
	    "I don\xe2\x80\x99t hate them", /* don’t, one word */
	    "I dont hate them",
	    "never hate",
	    "No hate here",
	    "they cannot hate",
	    "not really hate",
	    "ich will nicht hate",
	    "keine hate",
	    "il ne hate pas",
	    "il n'hate jamais",
	    "jamais hate",
	    "aucun hate",
	};
	for (size_t i = 0; i < PWB_ARRAY_LEN(negated); i++)
		if (plain_of(negated[i], "hate", neg) != 0)
			fail_msg("'hate' is plain in \"%s\"", negated[i]);
	/* The scope: three words, and the clause. */
	assert_int_equal(plain_of("not a b hate", "hate", neg), 0);
	assert_int_equal(plain_of("not a b c hate", "hate", neg),
			 HATE_FEATURES);
	static const char *const plain[] = {
	    "not bread, hate",
	    "not bread. hate",
	    "not bread; hate",
	    "not bread! hate",
	    "not bread\nhate",
	    "notes hate",
	    "knot hate",
	    "don t hate",
	    "piano hate",
	    "the tea's hot hate",
	    "hate",
	};
	for (size_t i = 0; i < PWB_ARRAY_LEN(plain); i++)
		if (plain_of(plain[i], "hate", neg) != HATE_FEATURES)
			fail_msg("'hate' is not plain in \"%s\"", plain[i]);
	/* The context takes nothing away: as many features, weighed the
	 * same, and the words outside the scope unchanged. */
	static feats a, b;
	ctx_features(&a, "Let me be clear: I don't hate women.", 0);
	ctx_features(&b, "Let me be clear: I don't hate women.", neg);
	assert_int_equal(a.n, b.n);
	assert_float_equal(a.sum_sq, b.sum_sq, 1e-6);
	assert_memory_equal(a.bucket, b.bucket, 40 * sizeof(a.bucket[0]));
	assert_memory_not_equal(a.bucket, b.bucket, a.n * sizeof(a.bucket[0]));
	/* A model without the feature set hashes as version 1 did. */
	ctx_features(&b, "Let me be clear: I don't hate women.", 0);
	memset(&a, 0, sizeof(a));
	pwb__hashed_features("Let me be clear: I don't hate women.", 36, 32,
			     collect, &a);
	assert_int_equal(a.n, b.n);
	assert_memory_equal(a.bucket, b.bucket, a.n * sizeof(a.bucket[0]));
}

static void test_features_quotes(void **state)
{
	(void)state;
	const unsigned quo = PWB__LIN_QUOTES;
	assert_int_equal(plain_of("he said hate today", "hate", quo),
			 HATE_FEATURES);
	static const char *const quoted[] = {
	    "he said \"hate\" today",
	    "he said \"I hate women\", then",
	    "he said 'hate' today",
	    "he said \xe2\x80\x9chate\xe2\x80\x9d today",  /* “…” */
	    "er sagt \xe2\x80\x9ehate\xe2\x80\x9c dir",	   /* „…“ */
	    "il a dit \xc2\xab hate \xc2\xbb aujourd'hui", /* « … » */
	    "er sagt \xc2\xbbhate\xc2\xab dir",		   /* »…« */
	    "he said \xe2\x80\x98hate\xe2\x80\x99 today",  /* ‘…’ */
	    "er sagt \xe2\x80\x9ahate\xe2\x80\x98 dir",	   /* ‚…‘ */
	    "\"unclosed, hate",
	};
	for (size_t i = 0; i < PWB_ARRAY_LEN(quoted); i++)
		if (plain_of(quoted[i], "hate", quo) != 0)
			fail_msg("'hate' is plain in \"%s\"", quoted[i]);
	static const char *const plain[] = {
	    "I don't hate them",
	    "I don\xe2\x80\x99t hate them",
	    "the students' hate",
	    "\"a\" hate \"b\"",
	    "'a' hate",
	    "\xe2\x80\x9c"
	    "a\xe2\x80\x9d hate",
	    "\"unclosed\nhate",
	    "rock 'n' roll hate",
	};
	for (size_t i = 0; i < PWB_ARRAY_LEN(plain); i++)
		if (plain_of(plain[i], "hate", quo) != HATE_FEATURES)
			fail_msg("'hate' is not plain in \"%s\"", plain[i]);
	/* Typographic marks end words, like ASCII ones: “hate” is the
	 * word hate, and its features are those of "hate". */
	static feats a, b;
	ctx_features(&a, "say \xe2\x80\x9chate\xe2\x80\x9d now", quo);
	ctx_features(&b, "say \"hate\" now", quo);
	assert_int_equal(a.n, b.n);
	assert_memory_equal(a.bucket, b.bucket, a.n * sizeof(a.bucket[0]));
	assert_float_equal(a.sum_sq, 1.0, 1e-6);
	ctx_features(&a, "say \xe2\x80\x9chate\xe2\x80\x9d now", 0);
	assert_int_not_equal(a.n, b.n); /* one word "“hate”" */

	/* Negated and quoted is a third context: "hate" in not "hate" has
	 * features that neither not hate nor "hate" has (its unigram and
	 * grams; the bigram with "not" is the same). */
	const unsigned both = PWB__LIN_NEGATION | PWB__LIN_QUOTES;
	static feats c;
	ctx_features(&a, "not hate", both);
	ctx_features(&b, "\"hate\"", both);
	ctx_features(&c, "not \"hate\"", both);
	size_t own = 0;
	for (size_t i = 0; i < c.n; i++)
		own += !has_bucket(&a, c.bucket[i]) &&
		       !has_bucket(&b, c.bucket[i]);
	assert_int_equal(own, HATE_FEATURES);
}

/* ---- a synthetic separable set ---- */

static const char *const filler[] = {
    "the",    "a",	"weather", "is",     "nice",	"today",    "we",
    "went",   "to",	"market",  "and",    "bought",	"bread",    "cheese",
    "my",     "friend", "said",	   "that",   "train",	"was",	    "late",
    "again",  "book",	"on",	   "table",  "garden",	"flowers",  "bloom",
    "in",     "spring", "coffee",  "tastes", "good",	"with",	    "milk",
    "music",  "plays",	"loud",	   "quiet",  "evening", "morning",  "river",
    "flows",  "slowly", "past",	   "old",    "mill",	"children", "laugh",
    "happily"};

typedef struct dataset {
	char **texts;
	size_t *lens;
	uint8_t *labels; /* n x 2 */
	size_t n;
} dataset;

/* Label A when "zorblax" is in the text, B when "quintessa" is; a
 * quarter of the texts have A, a quarter B, some both, the rest none. */
static void make_synthetic(dataset *d, size_t n, uint64_t seed)
{
	d->n = n;
	d->texts = calloc(n, sizeof(*d->texts));
	d->lens = calloc(n, sizeof(*d->lens));
	d->labels = calloc(n * 2, 1);
	assert_true(d->texts && d->lens && d->labels);
	uint64_t r = seed;
	for (size_t i = 0; i < n; i++) {
		char buf[512];
		size_t len = 0;
		unsigned kind = (unsigned)(rnd(&r) % 8);
		bool a = kind < 2 || kind == 4,
		     b = kind == 2 || kind == 3 || kind == 4;
		size_t words = 5 + rnd(&r) % 12;
		size_t pos_a = rnd(&r) % words, pos_b = rnd(&r) % words;
		if (pos_b == pos_a)
			pos_b = (pos_a + 1) % words;
		for (size_t k = 0; k < words; k++) {
			const char *w = filler[rnd(&r) % PWB_ARRAY_LEN(filler)];
			if (a && k == pos_a)
				w = "Zorblax";
			else if (b && k == pos_b)
				w = "quintessa";
			len += (size_t)snprintf(buf + len, sizeof(buf) - len,
						"%s%s", k ? " " : "", w);
		}
		d->texts[i] = strdup(buf);
		assert_non_null(d->texts[i]);
		d->lens[i] = len;
		d->labels[2 * i] = a;
		d->labels[2 * i + 1] = b;
	}
}

static void free_dataset(dataset *d)
{
	for (size_t i = 0; i < d->n; i++)
		free(d->texts[i]);
	free(d->texts);
	free(d->lens);
	free(d->labels);
}

static const char *const ab_names[] = {"label_a", "label_b"};

static double last_progress;
static int n_progress;

static void on_progress(void *user, double done)
{
	(void)user;
	assert_true(done >= last_progress && done <= 1.0);
	last_progress = done;
	n_progress++;
}

static pwb__linear *train_ab(const dataset *d, unsigned bits,
			     pwb__linear_report *rep)
{
	pwb__linear_params p = pwb__linear_default_params();
	p.hash_bits = bits;
	pwb__linear *m = NULL;
	pwb_status rc =
	    pwb__linear_train(&m, (const char *const *)d->texts, d->lens,
			      d->labels, d->n, ab_names, 2, &p, rep);
	assert_int_equal(rc, PWB_OK);
	assert_non_null(m);
	return m;
}

static void test_train_synthetic(void **state)
{
	(void)state;
	dataset d;
	make_synthetic(&d, 600, 42);
	pwb__linear_params p = pwb__linear_default_params();
	p.hash_bits = 14;
	p.progress = on_progress;
	last_progress = 0;
	n_progress = 0;
	pwb__linear_report rep;
	pwb__linear *m = NULL;
	assert_int_equal(pwb__linear_train(&m, (const char *const *)d.texts,
					   d.lens, d.labels, d.n, ab_names, 2,
					   &p, &rep),
			 PWB_OK);
	assert_true(n_progress > 10);
	assert_true(last_progress == 1.0);
	assert_int_equal(rep.n_train + rep.n_valid, d.n);
	assert_true(rep.n_valid >= 100 && rep.n_valid <= 140);
	for (size_t l = 0; l < 2; l++) {
		print_message("synthetic %s: %zu positives, precision %.3f, "
			      "recall %.3f\n",
			      ab_names[l], rep.labels[l].n_pos,
			      rep.labels[l].precision, rep.labels[l].recall);
		assert_true(rep.labels[l].n_pos >= 20);
		assert_true(rep.labels[l].precision >= 0.95);
		assert_true(rep.labels[l].recall >= 0.95);
		assert_true(rep.labels[l].threshold == 0.5);
	}
	free(rep.labels);

	assert_int_equal(pwb__linear_n_labels(m), 2);
	assert_string_equal(pwb__linear_label(m, 0), "label_a");
	assert_string_equal(pwb__linear_label(m, 1), "label_b");
	assert_null(pwb__linear_label(m, 2));

	/* Texts it never saw. */
	double s[2];
	const char *t = "our zorblax arrived in the morning";
	pwb__linear_score(m, t, strlen(t), s);
	assert_true(s[0] > 0.5 && s[1] < 0.5);
	t = "QUINTESSA and the river";
	pwb__linear_score(m, t, strlen(t), s);
	assert_true(s[0] < 0.5 && s[1] > 0.5);
	t = "the coffee tastes good";
	pwb__linear_score(m, t, strlen(t), s);
	assert_true(s[0] < 0.5 && s[1] < 0.5);
	pwb__linear_score(m, "", 0, s);
	assert_true(s[0] >= 0 && s[0] <= 1 && s[1] >= 0 && s[1] <= 1);

	/* One label_a sentence in 8 KB of plain text: diluted over the
	 * whole text, found by windows about as long as the training
	 * texts. */
	pwb__buf b;
	pwb__buf_init(&b, 0);
	for (int i = 0; i < 80; i++)
		pwb__buf_adds(&b, "the coffee tastes good and caf\xc3\xa9 "
				  "weather is fine today. ");
	pwb__buf_adds(&b, "our zorblax arrived in the morning. ");
	for (int i = 0; i < 80; i++)
		pwb__buf_adds(&b, "the coffee tastes good and caf\xc3\xa9 "
				  "weather is fine today. ");
	assert_int_equal(b.err, PWB_OK);
	double w[2];
	pwb__linear_score(m, b.s, b.len, s);
	pwb__linear_score_windows(m, b.s, b.len, 160, w);
	print_message("8 KB with one label_a sentence: whole %.3f, windows "
		      "%.3f\n",
		      s[0], w[0]);
	assert_true(s[0] < 0.5);
	assert_true(w[0] > 0.5);
	assert_true(w[1] < 0.5);
	assert_true(w[0] >= s[0] && w[1] >= s[1]);
	/* Short texts, and windows too small to cut, score as a whole. */
	pwb__linear_score_windows(m, t, strlen(t), 1024, w);
	pwb__linear_score(m, t, strlen(t), s);
	assert_true(w[0] == s[0] && w[1] == s[1]);
	pwb__linear_score_windows(m, b.s, b.len, 16, w);
	pwb__linear_score(m, b.s, b.len, s);
	assert_true(w[0] == s[0] && w[1] == s[1]);
	/* Without spaces to cut at, and with multibyte text, every window
	 * size gives scores in [0, 1] (ASan checks the cuts). */
	for (size_t i = 0; i < 3000; i++)
		pwb__buf_adds(&b, i % 3 ? "\xc3\xa9" : "\xe2\x82\xac");
	for (size_t win = 128; win < 3000; win += 97) {
		pwb__linear_score_windows(m, b.s, b.len, win, w);
		assert_true(w[0] >= 0 && w[0] <= 1 && w[1] >= 0 && w[1] <= 1);
	}
	pwb__buf_release(&b);
	pwb__linear_free(m);
	free_dataset(&d);
}

/* Same seed, same bytes; another seed, another model. */
static void test_train_deterministic(void **state)
{
	(void)state;
	dataset d;
	make_synthetic(&d, 200, 3);
	pwb__linear *m1 = train_ab(&d, 10, NULL);
	pwb__linear *m2 = train_ab(&d, 10, NULL);
	pwb__linear_params p = pwb__linear_default_params();
	p.hash_bits = 10;
	p.seed = 2;
	pwb__linear *m3 = NULL;
	assert_int_equal(pwb__linear_train(&m3, (const char *const *)d.texts,
					   d.lens, d.labels, d.n, ab_names, 2,
					   &p, NULL),
			 PWB_OK);
	void *b1, *b2, *b3;
	size_t l1, l2, l3;
	assert_int_equal(pwb__linear_save_mem(m1, &b1, &l1), PWB_OK);
	assert_int_equal(pwb__linear_save_mem(m2, &b2, &l2), PWB_OK);
	assert_int_equal(pwb__linear_save_mem(m3, &b3, &l3), PWB_OK);
	assert_int_equal(l1, l2);
	assert_memory_equal(b1, b2, l1);
	assert_int_equal(l1, l3);
	assert_true(memcmp(b1, b3, l1) != 0);
	free(b1);
	free(b2);
	free(b3);
	pwb__linear_free(m1);
	pwb__linear_free(m2);
	pwb__linear_free(m3);
	free_dataset(&d);
}

static void test_train_bad_args(void **state)
{
	(void)state;
	dataset d;
	make_synthetic(&d, 20, 5);
	const char *const *t = (const char *const *)d.texts;
	pwb__linear_params p = pwb__linear_default_params();
	p.hash_bits = 10;
	pwb__linear *m = (pwb__linear *)&m; /* must come back NULL */
	static const char *const bad_names[][2] = {
	    {"label_a", "label_a"}, {"Label", "b"},
	    {"a b", "b"},	    {"a.", "b"},
	    {"a..b", "b"},	    {"", "b"},
	    {"9lives", "b"},	    {"ok", "tab\t"},
	};
	for (size_t i = 0; i < PWB_ARRAY_LEN(bad_names); i++) {
		assert_int_equal(pwb__linear_train(&m, t, d.lens, d.labels, d.n,
						   bad_names[i], 2, &p, NULL),
				 PWB_EINVAL);
		assert_null(m);
	}
	char long_name[130];
	memset(long_name, 'a', 129);
	long_name[129] = '\0';
	const char *const too_long[] = {long_name, "b"};
	assert_int_equal(pwb__linear_train(&m, t, d.lens, d.labels, d.n,
					   too_long, 2, &p, NULL),
			 PWB_EINVAL);
	assert_int_equal(pwb__linear_train(&m, t, d.lens, d.labels, 0, ab_names,
					   2, &p, NULL),
			 PWB_EINVAL);
	assert_int_equal(pwb__linear_train(&m, t, d.lens, d.labels, d.n,
					   ab_names, 0, &p, NULL),
			 PWB_EINVAL);
	d.labels[3] = 2;
	assert_int_equal(pwb__linear_train(&m, t, d.lens, d.labels, d.n,
					   ab_names, 2, &p, NULL),
			 PWB_EINVAL);
	d.labels[3] = 1;
	pwb__linear_params q = p;
	q.hash_bits = 9;
	assert_int_equal(pwb__linear_train(&m, t, d.lens, d.labels, d.n,
					   ab_names, 2, &q, NULL),
			 PWB_EINVAL);
	q = p;
	q.hash_bits = 25;
	assert_int_equal(pwb__linear_train(&m, t, d.lens, d.labels, d.n,
					   ab_names, 2, &q, NULL),
			 PWB_EINVAL);
	q = p;
	q.valid_fraction = 1.0;
	assert_int_equal(pwb__linear_train(&m, t, d.lens, d.labels, d.n,
					   ab_names, 2, &q, NULL),
			 PWB_EINVAL);
	q = p;
	q.learning_rate = 0;
	assert_int_equal(pwb__linear_train(&m, t, d.lens, d.labels, d.n,
					   ab_names, 2, &q, NULL),
			 PWB_EINVAL);
	q = p;
	q.features = PWB__LIN_FEATURES_KNOWN + 1;
	assert_int_equal(pwb__linear_train(&m, t, d.lens, d.labels, d.n,
					   ab_names, 2, &q, NULL),
			 PWB_EINVAL);
	q = p;
	q.epochs = 0;
	assert_int_equal(pwb__linear_train(&m, t, d.lens, d.labels, d.n,
					   ab_names, 2, &q, NULL),
			 PWB_EINVAL);
	q = p;
	q.l2 = NAN;
	assert_int_equal(pwb__linear_train(&m, t, d.lens, d.labels, d.n,
					   ab_names, 2, &q, NULL),
			 PWB_EINVAL);
	assert_null(m);

	/* No validation split: the report says so. */
	q = p;
	q.valid_fraction = 0;
	pwb__linear_report rep;
	assert_int_equal(pwb__linear_train(&m, t, d.lens, d.labels, d.n,
					   ab_names, 2, &q, &rep),
			 PWB_OK);
	assert_int_equal(rep.n_train, d.n);
	assert_int_equal(rep.n_valid, 0);
	assert_int_equal(rep.labels[0].n_pos, 0);
	free(rep.labels);
	pwb__linear_free(m);
	free_dataset(&d);
}

/* ---- save and load ---- */

static const char *const probe_texts[] = {
    "",
    "zorblax",
    "quintessa went to the market",
    "The weather is nice today, Zorblax!",
    "\xff\xfe binary \x01\x02 junk \xc3",
};

static void test_save_load(void **state)
{
	(void)state;
	dataset d;
	make_synthetic(&d, 300, 11);
	pwb__linear *m = train_ab(&d, 12, NULL);
	char path[512];
	pwb_diag dg;
	pwb_diag_init(&dg);
	path_in(path, sizeof(path), "model.pwblin");
	assert_int_equal(pwb__linear_save(m, path, &dg), PWB_OK);
	/* No temporary file is left behind. */
	assert_int_equal(count_files(".tmp."), 0);

	pwb__linear *m2 = NULL;
	assert_int_equal(pwb__linear_load(&m2, path, &dg), PWB_OK);
	assert_int_equal(pwb__linear_n_labels(m2), 2);
	assert_string_equal(pwb__linear_label(m2, 0), "label_a");
	assert_string_equal(pwb__linear_label(m2, 1), "label_b");
	for (size_t i = 0; i < PWB_ARRAY_LEN(probe_texts); i++) {
		double a[2], b[2];
		const char *t = probe_texts[i];
		pwb__linear_score(m, t, strlen(t), a);
		pwb__linear_score(m2, t, strlen(t), b);
		assert_memory_equal(a, b, sizeof(a));
	}

	/* The file holds exactly the bytes of save_mem, and its size is
	 * the header, the names, the weights and the checksum. */
	char *file;
	size_t file_len;
	assert_int_equal(pwb__read_file(path, 1 << 20, &file, &file_len, &dg),
			 PWB_OK);
	assert_int_equal(dg.n, 0);
	void *mem;
	size_t mem_len;
	assert_int_equal(pwb__linear_save_mem(m2, &mem, &mem_len), PWB_OK);
	assert_int_equal(file_len, mem_len);
	assert_memory_equal(file, mem, mem_len);
	assert_int_equal(file_len, 24 + 2 * (4 + 7) + 2 * 4097 * 4 + 32);
	assert_memory_equal(file, "PWBLIN\0\0\2\0\0\0\14\0\0\0\2\0\0\0", 20);
	unsigned char want_features[4] = {PWB__LIN_DEFAULT_FEATURES, 0, 0, 0};
	assert_memory_equal(file + 20, want_features, 4);

	/* Saving over an existing model replaces it. */
	pwb__linear *m3 = train_ab(&d, 10, NULL);
	assert_int_equal(pwb__linear_save(m3, path, &dg), PWB_OK);
	pwb__linear_free(m2);
	assert_int_equal(pwb__linear_load(&m2, path, &dg), PWB_OK);
	assert_int_equal(dg.n, 0);

	/* A rename that fails (a folder is in the way) leaves neither a
	 * temporary file nor a change behind. */
	path_in(path, sizeof(path), "in_the_way");
	assert_int_equal(mkdir(path, 0700), 0);
	assert_int_equal(pwb__linear_save(m, path, &dg), PWB_EIO);
	assert_int_equal(dg.n, 1);
	assert_string_equal(dg.entries[0].file, path);
	assert_int_equal(dg.entries[0].line, 0);
	assert_non_null(strstr(dg.entries[0].message, "cannot rename"));
	pwb_diag_clear(&dg);
	assert_int_equal(count_files(".tmp."), 0);
	assert_int_equal(rmdir(path), 0);

	/* A folder that does not exist: a clear error. */
	path_in(path, sizeof(path), "no/such/dir/model");
	assert_int_equal(pwb__linear_save(m, path, &dg), PWB_EIO);
	assert_int_equal(dg.n, 1);
	assert_string_equal(dg.entries[0].file, path);
	assert_non_null(strstr(dg.entries[0].message, "cannot create"));
	pwb_diag_clear(&dg);
	pwb__linear *m4 = NULL;
	assert_int_equal(pwb__linear_load(&m4, path, &dg), PWB_EIO);
	assert_null(m4);
	assert_int_equal(dg.n, 1);
	assert_string_equal(dg.entries[0].file, path);
	assert_non_null(strstr(dg.entries[0].message, "cannot read"));
	pwb_diag_release(&dg);

	free(file);
	free(mem);
	pwb__linear_free(m);
	pwb__linear_free(m2);
	pwb__linear_free(m3);
	free_dataset(&d);
}

/* A model with a feature set keeps it through its file, and scores the
 * same after loading. */
static void test_save_load_features(void **state)
{
	(void)state;
	dataset d;
	make_synthetic(&d, 200, 29);
	static const char *const probes[] = {
	    "zorblax", "not zorblax", "\"zorblax\" he said",
	    "nicht \xe2\x80\x9equintessa\xe2\x80\x9c", "quintessa"};
	double plain_scores[PWB_ARRAY_LEN(probes)][2];
	for (unsigned f = 0; f <= PWB__LIN_FEATURES_KNOWN; f++) {
		pwb__linear_params p = pwb__linear_default_params();
		p.hash_bits = 12;
		p.features = f;
		pwb__linear *m = NULL, *m2 = NULL;
		assert_int_equal(
		    pwb__linear_train(&m, (const char *const *)d.texts, d.lens,
				      d.labels, d.n, ab_names, 2, &p, NULL),
		    PWB_OK);
		void *mem;
		size_t len;
		assert_int_equal(pwb__linear_save_mem(m, &mem, &len), PWB_OK);
		unsigned char *b = mem;
		assert_int_equal(b[8], 2);
		assert_int_equal(b[20], f);
		pwb_diag dg;
		pwb_diag_init(&dg);
		assert_int_equal(pwb__linear_load_mem(&m2, mem, len, &dg),
				 PWB_OK);
		bool differs = false;
		for (size_t i = 0; i < PWB_ARRAY_LEN(probes); i++) {
			double a[2], c[2];
			pwb__linear_score(m, probes[i], strlen(probes[i]), a);
			pwb__linear_score(m2, probes[i], strlen(probes[i]), c);
			assert_memory_equal(a, c, sizeof(a));
			if (f == 0)
				memcpy(plain_scores[i], a, sizeof(a));
			else
				differs |=
				    memcmp(plain_scores[i], a, sizeof(a)) != 0;
		}
		/* The contexts change what a model learns and scores. */
		assert_true(f == 0 || differs);
		pwb_diag_release(&dg);
		free(mem);
		pwb__linear_free(m);
		pwb__linear_free(m2);
	}
	free_dataset(&d);
}

/* ---- files of version 1 ---- */

static void put32(unsigned char *b, uint32_t v)
{
	b[0] = (unsigned char)v;
	b[1] = (unsigned char)(v >> 8);
	b[2] = (unsigned char)(v >> 16);
	b[3] = (unsigned char)(v >> 24);
}

/* A version-1 file as pwb wrote them: one label "hate" at hash_bits 10,
 * its weights from a formula, and the bias -0.25. */
static size_t v1_bytes(unsigned char *b)
{
	memcpy(b, "PWBLIN\0\0", 8);
	put32(b + 8, 1);
	put32(b + 12, 10);
	put32(b + 16, 1);
	put32(b + 20, 4);
	memcpy(b + 24, "hate", 4);
	size_t o = 28;
	for (uint32_t k = 0; k <= 1024; k++) {
		float f = k == 1024
			      ? -0.25f
			      : (float)((int)((k * 37u) % 101u) - 50) / 25.0f;
		uint32_t v;
		memcpy(&v, &f, 4);
		put32(b + o, v);
		o += 4;
	}
	crypto_generichash(b + o, 32, b, o, NULL, 0);
	return o + 32;
}

typedef struct dot {
	const unsigned char *w; /* the file's float32 weights */
	double z;
} dot;

static void dot_add(void *user, uint32_t bucket, float x)
{
	dot *t = user;
	float f;
	uint32_t v = (uint32_t)t->w[4 * bucket] |
		     (uint32_t)t->w[4 * bucket + 1] << 8 |
		     (uint32_t)t->w[4 * bucket + 2] << 16 |
		     (uint32_t)t->w[4 * bucket + 3] << 24;
	memcpy(&f, &v, 4);
	t->z += (double)x * f;
}

/*
 * A version-1 file loads and scores exactly as before version 2: the
 * scores pwb gave it then (printed with %.17g by the pwb of version 1),
 * and the version-1 features (pwb__hashed_features) dotted with its
 * weights. It writes back to the same bytes.
 */
static void test_load_version1(void **state)
{
	(void)state;
	static unsigned char b[8192];
	size_t len = v1_bytes(b);
	pwb__linear *m = NULL;
	pwb_diag dg;
	pwb_diag_init(&dg);
	assert_int_equal(pwb__linear_load_mem(&m, b, len, &dg), PWB_OK);
	assert_int_equal(dg.n, 0);
	static const struct {
		const char *text;
		double score;
	} cases[] = {
	    {"I don't hate them", 0.21794069494750951},
	    {"If you say \"I hate women\", then you are a bigot!",
	     0.34951865380840136},
	    {"nicht \xe2\x80\x9eHass\xe2\x80\x9c \xe2\x80\x94 kein Hass",
	     0.20768369994880539},
	    {"the quick brown fox", 0.44534421252911716},
	};
	for (size_t i = 0; i < PWB_ARRAY_LEN(cases); i++) {
		const char *t = cases[i].text;
		double sc;
		pwb__linear_score(m, t, strlen(t), &sc);
		assert_float_equal(sc, cases[i].score, 1e-15);
		dot dt = {b + 28, -0.25};
		pwb__hashed_features(t, strlen(t), 10, dot_add, &dt);
		assert_float_equal(sc, 1 / (1 + exp(-dt.z)), 1e-9);
	}
	void *mem;
	size_t mem_len;
	assert_int_equal(pwb__linear_save_mem(m, &mem, &mem_len), PWB_OK);
	assert_int_equal(mem_len, len);
	assert_memory_equal(mem, b, len);
	free(mem);
	pwb__linear_free(m);
	/* Cut inside its 20-byte header: truncated. */
	pwb__linear *m2 = (pwb__linear *)&m2;
	assert_int_equal(pwb__linear_load_mem(&m2, b, 19, &dg), PWB_EPARSE);
	assert_null(m2);
	assert_non_null(strstr(dg.entries[0].message, "truncated"));
	pwb_diag_release(&dg);
}

/* Scores of a very long text: O(len), in [0, 1], no allocation. */
static void test_score_huge(void **state)
{
	(void)state;
	dataset d;
	make_synthetic(&d, 200, 13);
	pwb__linear *m = train_ab(&d, 10, NULL);
	size_t len = 8 << 20;
	char *s = malloc(len);
	assert_non_null(s);
	for (size_t i = 0; i < len; i++)
		s[i] = "zorblax quintessa "[i % 18];
	double sc[2];
	long before = pwb__alloc_count;
	pwb__alloc_fail_at = 1 << 30; /* count, never fail */
	pwb__linear_score(m, s, len, sc);
	pwb__alloc_fail_at = 0;
	assert_int_equal(pwb__alloc_count, before);
	assert_true(sc[0] > 0.5 && sc[0] <= 1 && sc[1] > 0.5 && sc[1] <= 1);
	free(s);
	pwb__linear_free(m);
	free_dataset(&d);
}

/* ---- corrupt, truncated and future files ---- */

static void small_model_bytes(unsigned char **data, size_t *len)
{
	dataset d;
	make_synthetic(&d, 100, 17);
	pwb__linear *m = train_ab(&d, 10, NULL);
	void *mem;
	assert_int_equal(pwb__linear_save_mem(m, &mem, len), PWB_OK);
	*data = mem;
	pwb__linear_free(m);
	free_dataset(&d);
}

static void load_bad(const void *data, size_t len, const char *want)
{
	pwb__linear *m = (pwb__linear *)&m;
	pwb_diag d;
	pwb_diag_init(&d);
	pwb_status rc = pwb__linear_load_mem(&m, data, len, &d);
	if (rc != PWB_EPARSE || m)
		fail_msg("a bad file (%zu bytes) was not refused: status %d",
			 len, rc);
	if (d.n != 1)
		fail_msg("a bad file was refused with %zu reasons, not 1", d.n);
	const pwb_diag_entry *e = &d.entries[0];
	assert_null(e->file); /* a model in memory has no file */
	if (want && !strstr(e->message, want))
		fail_msg("reason '%s' lacks '%s'", e->message, want);
	pwb_diag_release(&d);
}

/* Rewrites the checksum after an edit, as a deliberate forger would. */
static void reseal(unsigned char *data, size_t len)
{
	crypto_generichash(data + len - 32, 32, data, len - 32, NULL, 0);
}

static void test_corrupt_bytes(void **state)
{
	(void)state;
	unsigned char *good;
	size_t len;
	small_model_bytes(&good, &len);
	unsigned char *bad = malloc(len);
	assert_non_null(bad);
	/* Every byte, flipped wholly and in its lowest bit: header, names,
	 * weights and checksum alike. */
	static const unsigned char flips[] = {0xff, 0x01, 0x80};
	for (size_t f = 0; f < PWB_ARRAY_LEN(flips); f++) {
		for (size_t i = 0; i < len; i++) {
			memcpy(bad, good, len);
			bad[i] ^= flips[f];
			load_bad(bad, len, NULL);
		}
	}
	/* A flipped weight gives the checksum message. */
	memcpy(bad, good, len);
	bad[len / 2] ^= 0x10;
	load_bad(bad, len, "checksum mismatch: the file is corrupt");
	free(bad);
	free(good);
}

static void test_truncated(void **state)
{
	(void)state;
	unsigned char *good;
	size_t len;
	small_model_bytes(&good, &len);
	for (size_t n = 0; n < len; n++) {
		/* A copy of exactly n bytes, so that ASan sees any overread. */
		unsigned char *cut = malloc(n ? n : 1);
		assert_non_null(cut);
		memcpy(cut, good, n);
		load_bad(cut, n, n < 8 ? "not a pwb linear model" : NULL);
		free(cut);
	}
	load_bad(good, 100, "truncated");
	unsigned char *longer = malloc(len + 1);
	assert_non_null(longer);
	memcpy(longer, good, len);
	longer[len] = 0;
	load_bad(longer, len + 1, "trailing bytes");
	free(longer);
	free(good);
}

static void test_bad_headers(void **state)
{
	(void)state;
	unsigned char *good;
	size_t len;
	small_model_bytes(&good, &len);
	unsigned char *b = malloc(len);
	assert_non_null(b);

	load_bad("GIF89a", 6, "not a pwb linear model");
	memcpy(b, good, len);
	b[0] = 'Q';
	load_bad(b, len, "not a pwb linear model");

	/* A newer version, even with a valid checksum. */
	memcpy(b, good, len);
	b[8] = 3;
	reseal(b, len);
	load_bad(b, len,
		 "written by a newer pwb (version 3); this pwb reads versions "
		 "1 and 2");
	/* A version field damaged (checksum not rewritten) is damage, not
	 * a file from a newer pwb. */
	memcpy(b, good, len);
	b[8] = 254;
	load_bad(b, len, "checksum mismatch: the file is corrupt");
	memcpy(b, good, len);
	b[11] = 0x80;
	reseal(b, len);
	load_bad(b, len, "newer pwb (version 2147483650)");
	memcpy(b, good, len);
	b[8] = 0;
	reseal(b, len);
	load_bad(b, len, "unknown version 0");

	/* Sizes out of range. */
	memcpy(b, good, len);
	b[12] = 9;
	load_bad(b, len, "hash_bits is 9");
	memcpy(b, good, len);
	b[12] = 25;
	load_bad(b, len, "hash_bits is 25");
	memcpy(b, good, len);
	b[12] = 24;
	load_bad(b, len, "truncated");
	memcpy(b, good, len);
	b[16] = 0;
	load_bad(b, len, "0 labels");
	memcpy(b, good, len);
	b[17] = 1; /* 258 labels */
	load_bad(b, len, "258 labels");
	memcpy(b, good, len);
	b[19] = 0xff;
	load_bad(b, len, "labels");
	/* 256 labels at 24 bits: more weights than allowed. */
	memcpy(b, good, len);
	b[12] = 24;
	b[16] = 0;
	b[17] = 1;
	load_bad(b, len, "exceed the limit");
	/* A label length of 0 and of 2^32 - 1. */
	memcpy(b, good, len);
	memset(b + 24, 0, 4);
	load_bad(b, len, "label 1 has 0 bytes");
	memcpy(b, good, len);
	memset(b + 24, 0xff, 4);
	load_bad(b, len, "label 1 has 4294967295 bytes");

	/* A feature set this pwb does not know, and a damaged one. */
	memcpy(b, good, len);
	b[20] = 0x04;
	reseal(b, len);
	load_bad(b, len,
		 "uses features this pwb does not know (feature set 0x4, this "
		 "pwb knows 0x3): train the model again with this pwb");
	memcpy(b, good, len);
	b[23] = 0x80;
	reseal(b, len);
	load_bad(b, len, "feature set 0x80000000");
	memcpy(b, good, len);
	b[20] ^= 0x01;
	load_bad(b, len, "checksum mismatch: the file is corrupt");

	/* Past a valid checksum: a bad label id, a duplicate, a NaN. */
	memcpy(b, good, len);
	b[28] = 'L';
	reseal(b, len);
	load_bad(b, len, "label 1 is not a valid category id");
	memcpy(b, good, len);
	b[28 + 6] = '\n';
	reseal(b, len);
	load_bad(b, len, "label 1 is not a valid category id");
	memcpy(b, good, len);
	b[28 + 6] = 'b'; /* label_b twice */
	reseal(b, len);
	load_bad(b, len, "labels 1 and 2 are the same");
	size_t w0 = 24 + 2 * (4 + 7);
	float bad_floats[] = {NAN, INFINITY, -INFINITY};
	for (size_t i = 0; i < PWB_ARRAY_LEN(bad_floats); i++) {
		memcpy(b, good, len);
		memcpy(b + w0 + 4 * 7, &bad_floats[i], 4);
		reseal(b, len);
		load_bad(b, len, "weight 7 of label 1 is not a finite number");
	}
	/* A resealed edit of a weight is accepted: the checksum guards
	 * against corruption, not against forgers. */
	memcpy(b, good, len);
	float one = 1.0f;
	memcpy(b + w0, &one, 4);
	reseal(b, len);
	pwb__linear *m = NULL;
	pwb_diag d;
	pwb_diag_init(&d);
	assert_int_equal(pwb__linear_load_mem(&m, b, len, &d), PWB_OK);
	assert_int_equal(d.n, 0);
	pwb__linear_free(m);

	/* A file of zeros and a missing file. */
	char path[512];
	path_in(path, sizeof(path), "zeros");
	FILE *f = fopen(path, "wb");
	assert_non_null(f);
	memset(b, 0, 1000);
	assert_int_equal(fwrite(b, 1, 1000, f), 1000);
	fclose(f);
	m = (pwb__linear *)&m;
	assert_int_equal(pwb__linear_load(&m, path, &d), PWB_EPARSE);
	assert_null(m);
	/* A file's messages name it, for `file: error: message`. */
	assert_int_equal(d.n, 1);
	assert_string_equal(d.entries[0].file, path);
	assert_string_equal(d.entries[0].message, "not a pwb linear model");
	pwb_diag_clear(&d);
	path_in(path, sizeof(path), "missing");
	assert_int_equal(pwb__linear_load(&m, path, &d), PWB_EIO);
	assert_int_equal(d.n, 1);
	assert_string_equal(d.entries[0].file, path);
	pwb_diag_release(&d);
	free(b);
	free(good);
}

/* ---- allocation failures ---- */

static void test_alloc_failure_sweep(void **state)
{
	(void)state;
	dataset d;
	make_synthetic(&d, 60, 19);
	pwb__linear_params p = pwb__linear_default_params();
	p.hash_bits = 10;
	char path[512];
	path_in(path, sizeof(path), "sweep.pwblin");
	long n_ok = 0, n_fail = 0;
	for (long k = 1; k < 100000; k++) {
		pwb__alloc_count = 0;
		pwb__alloc_fail_at = k;
		pwb__linear *m = NULL, *m2 = NULL;
		pwb__linear_report rep = {0};
		void *mem = NULL;
		size_t mem_len = 0;
		pwb_diag dg;
		pwb_diag_init(&dg);
		pwb_status rc =
		    pwb__linear_train(&m, (const char *const *)d.texts, d.lens,
				      d.labels, d.n, ab_names, 2, &p, &rep);
		bool by_file = false; /* save or load failed */
		if (!rc)
			by_file = (rc = pwb__linear_save(m, path, &dg)) != 0;
		if (!rc)
			by_file = (rc = pwb__linear_load(&m2, path, &dg)) != 0;
		if (!rc)
			rc = pwb__linear_save_mem(m2, &mem, &mem_len);
		bool reached = pwb__alloc_count >= k;
		pwb__alloc_fail_at = 0;
		/* A failure is ENOMEM, and the failing call hands out
		 * nothing. */
		if (rc)
			assert_int_equal(rc, PWB_ENOMEM);
		if (!m)
			assert_null(rep.labels);
		if (m && !m2)
			assert_true(rc != PWB_OK);
		if (m2 && !mem)
			assert_int_equal(mem_len, 0);
		/* save and load leave one message when they fail. */
		assert_int_equal(dg.n, by_file ? 1 : 0);
		if (by_file)
			assert_string_equal(dg.entries[0].message,
					    "out of memory");
		pwb_diag_release(&dg);
		free(rep.labels);
		free(mem);
		pwb__linear_free(m);
		pwb__linear_free(m2);
		if (!reached) {
			assert_int_equal(rc, PWB_OK);
			break;
		}
		if (rc == PWB_OK)
			n_ok++;
		else
			n_fail++;
	}
	assert_true(n_fail >= 20);
	print_message("allocation sweep: %ld failures handled, %ld absorbed\n",
		      n_fail, n_ok);
	free_dataset(&d);
}

/* ---- the OpenAI moderation samples ---- */

/* The shared data folder: PWB_DATA_DIR, else ../shared/data beside the
 * source tree (found from PWB_SOURCE_DIR or from this file's path). */
static void data_dir(char *buf, size_t size)
{
	const char *env = getenv("PWB_DATA_DIR");
	if (env && *env) {
		snprintf(buf, size, "%s", env);
		return;
	}
	env = getenv("PWB_SOURCE_DIR");
	if (env && *env) {
		snprintf(buf, size, "%s/../shared/data", env);
		return;
	}
	/* __FILE__ is .../tests/unit/test_linear.c when built by path. */
	snprintf(buf, size, "%s", __FILE__);
	for (int up = 0; up < 3; up++) {
		char *slash = strrchr(buf, '/');
		if (!slash) {
			snprintf(buf, size, "../shared/data");
			return;
		}
		*slash = '\0';
	}
	size_t n = strlen(buf);
	snprintf(buf + n, size - n, "/../shared/data");
}

/* A small JSON reader for the flat objects of that file: string keys,
 * string or number values. Returns the prompt (malloc'd) and the flags,
 * -1 where a key is missing. */
static const char *const flag_keys[] = {"S",  "H",  "V",  "HR",
					"SH", "S3", "H2", "V2"};

static const char *skip_ws(const char *s)
{
	while (*s == ' ' || *s == '\t' || *s == '\r' || *s == '\n')
		s++;
	return s;
}

static void put_utf8(char *out, size_t *n, unsigned long cp)
{
	if (cp < 0x80) {
		out[(*n)++] = (char)cp;
	} else if (cp < 0x800) {
		out[(*n)++] = (char)(0xc0 | cp >> 6);
		out[(*n)++] = (char)(0x80 | (cp & 0x3f));
	} else if (cp < 0x10000) {
		out[(*n)++] = (char)(0xe0 | cp >> 12);
		out[(*n)++] = (char)(0x80 | ((cp >> 6) & 0x3f));
		out[(*n)++] = (char)(0x80 | (cp & 0x3f));
	} else {
		out[(*n)++] = (char)(0xf0 | cp >> 18);
		out[(*n)++] = (char)(0x80 | ((cp >> 12) & 0x3f));
		out[(*n)++] = (char)(0x80 | ((cp >> 6) & 0x3f));
		out[(*n)++] = (char)(0x80 | (cp & 0x3f));
	}
}

static unsigned long hex4(const char *s, bool *ok)
{
	unsigned long v = 0;
	for (int i = 0; i < 4; i++) {
		char c = s[i];
		int d = c >= '0' && c <= '9'   ? c - '0'
			: c >= 'a' && c <= 'f' ? c - 'a' + 10
			: c >= 'A' && c <= 'F' ? c - 'A' + 10
					       : -1;
		if (d < 0) {
			*ok = false;
			return 0;
		}
		v = v << 4 | (unsigned long)d;
	}
	return v;
}

/* Reads a JSON string at s (at its opening quote); returns the byte after
 * it, or NULL. The decoded text (never longer than the source) goes to
 * out. */
static const char *json_string(const char *s, char *out, size_t *n)
{
	if (*s != '"')
		return NULL;
	s++;
	*n = 0;
	while (*s && *s != '"') {
		if (*s != '\\') {
			out[(*n)++] = *s++;
			continue;
		}
		s++;
		char c = *s++;
		bool ok = true;
		switch (c) {
		case 'n':
			out[(*n)++] = '\n';
			break;
		case 't':
			out[(*n)++] = '\t';
			break;
		case 'r':
			out[(*n)++] = '\r';
			break;
		case 'b':
			out[(*n)++] = '\b';
			break;
		case 'f':
			out[(*n)++] = '\f';
			break;
		case '"':
		case '\\':
		case '/':
			out[(*n)++] = c;
			break;
		case 'u': {
			unsigned long cp = hex4(s, &ok);
			if (!ok)
				return NULL;
			s += 4;
			if (cp >= 0xd800 && cp < 0xdc00 && s[0] == '\\' &&
			    s[1] == 'u') {
				unsigned long lo = hex4(s + 2, &ok);
				if (ok && lo >= 0xdc00 && lo < 0xe000) {
					cp = 0x10000 + ((cp - 0xd800) << 10) +
					     (lo - 0xdc00);
					s += 6;
				}
			}
			/* A lone surrogate becomes U+FFFD. */
			if (cp >= 0xd800 && cp < 0xe000)
				cp = 0xfffd;
			put_utf8(out, n, cp);
			break;
		}
		default:
			return NULL;
		}
	}
	return *s == '"' ? s + 1 : NULL;
}

static bool parse_line(const char *line, char **prompt, size_t *plen,
		       int flags[8])
{
	size_t cap = strlen(line) + 1;
	char *key = malloc(cap), *val = malloc(cap);
	assert_true(key && val);
	*prompt = NULL;
	for (int k = 0; k < 8; k++)
		flags[k] = -1;
	const char *s = skip_ws(line);
	bool ok = false;
	if (*s++ != '{')
		goto out;
	for (;;) {
		size_t kn, vn;
		s = skip_ws(s);
		if (!(s = json_string(s, key, &kn)))
			goto out;
		key[kn] = '\0';
		s = skip_ws(s);
		if (*s++ != ':')
			goto out;
		s = skip_ws(s);
		if (*s == '"') {
			if (!(s = json_string(s, val, &vn)))
				goto out;
			if (strcmp(key, "prompt") == 0) {
				free(*prompt);
				*prompt = malloc(vn + 1);
				assert_non_null(*prompt);
				memcpy(*prompt, val, vn);
				(*prompt)[vn] = '\0';
				*plen = vn;
			}
		} else {
			char *end;
			long v = strtol(s, &end, 10);
			if (end == s)
				goto out;
			s = end;
			for (int k = 0; k < 8; k++)
				if (strcmp(key, flag_keys[k]) == 0)
					flags[k] = v != 0;
		}
		s = skip_ws(s);
		if (*s == '}')
			break;
		if (*s++ != ',')
			goto out;
	}
	ok = *prompt != NULL;
out:
	if (!ok) {
		free(*prompt);
		*prompt = NULL;
	}
	free(key);
	free(val);
	return ok;
}

/* The dataset's flags as registry categories; H and H2 are both hate. */
static const char *const mod_names[] = {
    "sexual_content",	 "hate",
    "violent_crimes",	 "harassment",
    "suicide_self_harm", "child_sexual_exploitation",
    "graphic_violence"};
/* Column of each of flag_keys in mod_names. */
static const int flag_col[8] = {0, 1, 2, 3, 4, 5, 1, 6};
#define MOD_N 7

static void test_moderation_data(void **state)
{
	(void)state;
	char ddir[1024], path[1200], cmd[1300];
	data_dir(ddir, sizeof(ddir));
	snprintf(path, sizeof(path),
		 "%s/openai-moderation/samples-1680.jsonl.gz", ddir);
	if (access(path, R_OK) != 0 || strchr(path, '\'')) {
		print_message("skipped: %s is absent (set PWB_DATA_DIR to "
			      "the shared data folder)\n",
			      path);
		skip();
	}
	snprintf(cmd, sizeof(cmd), "gzip -dc '%s'", path);
	FILE *f = popen(cmd, "r");
	assert_non_null(f);
	char **texts = NULL;
	size_t *lens = NULL;
	uint8_t *labels = NULL;
	size_t n = 0, cap = 0;
	char *line = NULL;
	size_t line_cap = 0;
	while (getline(&line, &line_cap, f) > 0) {
		if (n == cap) {
			cap = cap ? 2 * cap : 1024;
			texts = realloc(texts, cap * sizeof(*texts));
			lens = realloc(lens, cap * sizeof(*lens));
			labels = realloc(labels, cap * MOD_N);
			assert_true(texts && lens && labels);
		}
		int flags[8];
		if (!parse_line(line, &texts[n], &lens[n], flags))
			fail_msg("line %zu of %s does not parse", n + 1, path);
		/* A missing key means "not labelled", not "no": the API
		 * has no way to say unknown, so it trains as 0. That
		 * understates recall for the labels most often missing
		 * (hate, child_sexual_exploitation). */
		memset(labels + n * MOD_N, 0, MOD_N);
		for (int k = 0; k < 8; k++)
			if (flags[k] == 1)
				labels[n * MOD_N + flag_col[k]] = 1;
		n++;
	}
	free(line);
	assert_int_equal(pclose(f), 0);
	assert_int_equal(n, 1680);

	/* Every fifth row is the test set; the trainer holds out a fifth
	 * of the rest for its own validation report. */
	size_t n_test = 0, n_tr = 0;
	const char **tr_texts = malloc(n * sizeof(*tr_texts));
	size_t *tr_lens = malloc(n * sizeof(*tr_lens));
	uint8_t *tr_labels = malloc(n * MOD_N);
	assert_true(tr_texts && tr_lens && tr_labels);
	for (size_t i = 0; i < n; i++) {
		if (i % 5 == 0) {
			n_test++;
			continue;
		}
		tr_texts[n_tr] = texts[i];
		tr_lens[n_tr] = lens[i];
		memcpy(tr_labels + n_tr * MOD_N, labels + i * MOD_N, MOD_N);
		n_tr++;
	}
	pwb__linear_params p = pwb__linear_default_params();
	pwb__linear *m = NULL;
	pwb__linear_report rep;
	assert_int_equal(pwb__linear_train(&m, tr_texts, tr_lens, tr_labels,
					   n_tr, mod_names, MOD_N, &p, &rep),
			 PWB_OK);
	print_message("openai-moderation: trained on %zu, validation %zu\n",
		      rep.n_train, rep.n_valid);
	for (size_t l = 0; l < MOD_N; l++)
		print_message("  validation %-26s positives %3zu precision "
			      "%.3f recall %.3f\n",
			      mod_names[l], rep.labels[l].n_pos,
			      rep.labels[l].precision, rep.labels[l].recall);
	free(rep.labels);

	/* The test set: any flag (the binary task) and each label. */
	size_t tp = 0, fp = 0, fn = 0, tn = 0;
	size_t ltp[MOD_N] = {0}, lfp[MOD_N] = {0}, lpos[MOD_N] = {0};
	for (size_t i = 0; i < n; i += 5) {
		double sc[MOD_N];
		pwb__linear_score(m, texts[i], lens[i], sc);
		bool y = false, pred = false;
		for (size_t l = 0; l < MOD_N; l++) {
			bool yl = labels[i * MOD_N + l], pl = sc[l] >= 0.5;
			assert_true(sc[l] >= 0 && sc[l] <= 1);
			y |= yl;
			pred |= pl;
			lpos[l] += yl;
			ltp[l] += yl && pl;
			lfp[l] += !yl && pl;
		}
		tp += y && pred;
		fp += !y && pred;
		fn += y && !pred;
		tn += !y && !pred;
	}
	double prec = tp + fp ? (double)tp / (tp + fp) : 0;
	double rec = tp + fn ? (double)tp / (tp + fn) : 0;
	double f1 = prec + rec > 0 ? 2 * prec * rec / (prec + rec) : 0;
	double tnr = tn + fp ? (double)tn / (tn + fp) : 0;
	double bacc = (rec + tnr) / 2;
	/* The majority classifier says "no flag" always: F1 0, balanced
	 * accuracy 0.5. */
	print_message("  test any-flag: %zu texts, %zu flagged; precision "
		      "%.3f recall %.3f F1 %.3f balanced accuracy %.3f "
		      "(majority: F1 0, balanced accuracy 0.5)\n",
		      n_test, tp + fn, prec, rec, f1, bacc);
	assert_true(f1 > 0.5);
	assert_true(bacc > 0.65);
	for (size_t l = 0; l < MOD_N; l++) {
		double lp =
		    ltp[l] + lfp[l] ? (double)ltp[l] / (ltp[l] + lfp[l]) : 0;
		double lr = lpos[l] ? (double)ltp[l] / lpos[l] : 0;
		print_message("  test %-26s positives %3zu precision %.3f "
			      "recall %.3f\n",
			      mod_names[l], lpos[l], lp, lr);
		if (lpos[l] >= 10)
			assert_true(lr > 0);
	}
	pwb__linear_free(m);
	for (size_t i = 0; i < n; i++)
		free(texts[i]);
	free(texts);
	free(lens);
	free(labels);
	free(tr_texts);
	free(tr_lens);
	free(tr_labels);
}

/* ---- fuzz seeds ---- */

static void write_seed(const char *sdir, const char *name,
		       const char *const *names, size_t n_labels,
		       const uint8_t *cols, unsigned features, const dataset *d)
{
	uint8_t *y = calloc(d->n * n_labels, 1);
	assert_non_null(y);
	for (size_t i = 0; i < d->n; i++)
		for (size_t l = 0; l < n_labels; l++)
			y[i * n_labels + l] = d->labels[2 * i + cols[l]];
	pwb__linear_params p = pwb__linear_default_params();
	p.hash_bits = 10;
	p.epochs = 2;
	p.features = features;
	pwb__linear *m = NULL;
	assert_int_equal(pwb__linear_train(&m, (const char *const *)d->texts,
					   d->lens, y, d->n, names, n_labels,
					   &p, NULL),
			 PWB_OK);
	char path[1024];
	snprintf(path, sizeof(path), "%s/%s", sdir, name);
	assert_int_equal(pwb__linear_save(m, path, NULL), PWB_OK);
	pwb__linear_free(m);
	free(y);
}

/* Writes the seeds of tests/fuzz/corpus/linear when asked to. */
static void test_write_fuzz_seeds(void **state)
{
	(void)state;
	const char *sdir = getenv("PWB_LINEAR_FUZZ_SEEDS");
	if (!sdir || !*sdir)
		return;
	dataset d;
	make_synthetic(&d, 50, 23);
	static const char *const one[] = {"hate"};
	static const char *const two[] = {"label_a", "label_b"};
	static const char *const three[] = {"specialized_advice.health",
					    "x-y_9", "b"};
	static const uint8_t c1[] = {0}, c2[] = {0, 1}, c3[] = {1, 0, 1};
	write_seed(sdir, "one_label.pwblin", one, 1, c1, 0, &d);
	write_seed(sdir, "two_labels.pwblin", two, 2, c2,
		   PWB__LIN_NEGATION | PWB__LIN_QUOTES, &d);
	write_seed(sdir, "three_labels.pwblin", three, 3, c3, PWB__LIN_QUOTES,
		   &d);
	free_dataset(&d);
	/* And a file of version 1. */
	static unsigned char v1[8192];
	size_t len = v1_bytes(v1);
	char path[1024];
	snprintf(path, sizeof(path), "%s/version1.pwblin", sdir);
	FILE *f = fopen(path, "wb");
	assert_non_null(f);
	assert_int_equal(fwrite(v1, 1, len, f), len);
	assert_int_equal(fclose(f), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_features),
	    cmocka_unit_test(test_features_bounded),
	    cmocka_unit_test(test_features_negation),
	    cmocka_unit_test(test_features_quotes),
	    cmocka_unit_test(test_train_synthetic),
	    cmocka_unit_test(test_train_deterministic),
	    cmocka_unit_test(test_train_bad_args),
	    cmocka_unit_test(test_save_load),
	    cmocka_unit_test(test_save_load_features),
	    cmocka_unit_test(test_load_version1),
	    cmocka_unit_test(test_score_huge),
	    cmocka_unit_test(test_corrupt_bytes),
	    cmocka_unit_test(test_truncated),
	    cmocka_unit_test(test_bad_headers),
	    cmocka_unit_test(test_alloc_failure_sweep),
	    cmocka_unit_test(test_moderation_data),
	    cmocka_unit_test(test_write_fuzz_seeds),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
