/*
 * pwb/bounds.h - category detectors and transparent decisions.
 *
 * A pwb_bounds holds the detectors compiled for one category registry:
 * the lexicons (one Vectorscan database, one pass per text), the personal
 * data detector (candidates validated by checksums and structure) and,
 * optionally, a trained linear model. Checking a text against an effective
 * policy gives a pwb_decision: per category the score, the threshold, the
 * permission and the verdict, with the spans that matched; a blocking
 * decision names every category that blocks, with the tier, source and
 * basis of each (the most binding first), and a refusal with the help
 * resources the registry gives; every decision carries the obligations
 * (disclose_ai, disclaimers) it triggers.
 *
 * Ownership: objects returned through `**out` are the caller's, freed with
 * the matching `_free`; pointers from getters are borrowed until their
 * parent is freed. A pwb_bounds borrows its pwb_policy, which must outlive
 * it; it may check texts from several threads at once. A pwb_decision holds
 * a reference to the pwb_effective it was made for, so the caller may free
 * its own reference first.
 */
#ifndef PWB_BOUNDS_H
#define PWB_BOUNDS_H

#include "pwb/common.h"
#include "pwb/policy.h"

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Verdicts, from least to most severe. */
typedef enum pwb_verdict {
	PWB_VERDICT_ALLOW,
	PWB_VERDICT_ANNOTATE, /* allowed, with an obligation (a disclaimer) */
	PWB_VERDICT_REDACT,   /* allowed once the spans are removed */
	PWB_VERDICT_BLOCK
} pwb_verdict;

/* "allow", "annotate", "redact", "block". */
const char *pwb_verdict_str(pwb_verdict v);

typedef enum pwb_role { PWB_ROLE_PROMPT, PWB_ROLE_RESPONSE } pwb_role;

/* "prompt" or "response"; parse returns false for anything else. */
const char *pwb_role_str(pwb_role r);
bool pwb_role_parse(const char *s, pwb_role *out);

typedef struct pwb_bounds pwb_bounds;

typedef struct pwb_bounds_params {
	/* Folder of lexicon files (<lang>.tsv); NULL: no lexicons. */
	const char *lexicon_dir;
	/* A linear model file (pwb bounds train); NULL: none. */
	const char *model;
	/* Longest text checked, in bytes; longer ones are refused. */
	size_t max_text_bytes;
	/*
	 * A folder where the compiled Vectorscan database is kept between
	 * runs (compiling hundreds of patterns takes seconds; loading the
	 * compiled form, milliseconds). NULL: compile every time. The file
	 * is named by a hash of every pattern and flag and of the Vectorscan
	 * version, written atomically, and recompiled if unreadable.
	 */
	const char *cache_dir;
	/*
	 * The model scores texts longer than this many bytes also by
	 * windows of this size, overlapping by half, and keeps the highest
	 * score, so that one harmful passage in a long text is not diluted
	 * by the rest (docs/bounds.md). 0: PWB_BOUNDS_LINEAR_WINDOW.
	 */
	size_t linear_window;
	/*
	 * The guard detector: an LLM judge, off when NULL (the default).
	 * For categories whose registry entry has a `guard` detector, pwb
	 * writes the judge's prompt (Llama Guard style: the categories by
	 * their llama_guard code or id, with descriptions, then the text)
	 * and reads the answer ("safe", or "unsafe" and a line of codes).
	 * guard() runs the prompt on an engine and returns the answer in
	 * *answer (malloc'ed, the library frees it), or fails with the
	 * reason in diag. When it fails, or its answer cannot be read, the
	 * check fails (PWB_EIO / PWB_EPARSE) naming the guard and the
	 * reason: the caller refuses rather than let an unjudged text
	 * through. pwb_engine_guard_fn (pwb/engine.h) runs it on an engine.
	 */
	pwb_status (*guard)(void *user, const char *prompt, char **answer,
			    pwb_diag *diag);
	void *guard_user;
	/*
	 * Called with notes a user should see: when the lexicon database
	 * is being compiled (seconds) and when its cache cannot be written
	 * (every run will compile again), and with a warning when the guard
	 * judge takes longer than 2 s. NULL: no log. May be called from any
	 * thread that checks a text.
	 */
	pwb_log_fn log;
	void *log_user;
} pwb_bounds_params;

#define PWB_BOUNDS_MAX_TEXT (10u * 1024 * 1024)
#define PWB_BOUNDS_LINEAR_WINDOW 1024u

pwb_bounds_params pwb_bounds_default_params(void);

/*
 * Compiles the detectors for the registry of policy. Problems in lexicon
 * files (file:line: unknown category, bad weight, a pattern Vectorscan
 * rejects) and in the model file are added to diag, all of them; the call
 * then fails with PWB_EPARSE and *out is NULL.
 */
pwb_status pwb_bounds_new(pwb_bounds **out, const pwb_policy *policy,
			  const pwb_bounds_params *params, pwb_diag *diag);
void pwb_bounds_free(pwb_bounds *b);

/* The number of lexicon entries compiled, for messages. */
size_t pwb_bounds_n_lexicon_entries(const pwb_bounds *b);

/* One match in the text: bytes [start, end). */
typedef struct pwb_span {
	size_t start, end;
	const char *detector; /* "lexicon", "pii" or "context" */
	/* the lexicon entry's note, the PII kind, or the context entry's
	 * note (what lowered the category's score) */
	const char *what;
} pwb_span;

typedef struct pwb_cat_decision {
	const char *category;
	double score;	      /* the highest detector score, in [0, 1] */
	double threshold;     /* that detector's threshold */
	const char *detector; /* that detector, or NULL when nothing scored */
	bool detected;	      /* some detector reached its threshold */
	pwb_permission permission;
	bool active;
	pwb_verdict verdict;
	pwb_provenance set_by; /* the rule behind permission */
	/*
	 * Context (docs/bounds.md "Context"): the factor that the context
	 * entries found for this category lowered its topic-word lexicon
	 * score and its model score by, 1 when none did; and the score the
	 * category would have had without it. Context never lowers an
	 * entry that reaches the threshold alone.
	 */
	double context_factor;
	double score_without_context;
	const pwb_span *spans; /* in order of start, at most 64 */
	size_t n_spans;
	size_t n_spans_omitted; /* spans found past the 64 listed */
} pwb_cat_decision;

typedef struct pwb_decision pwb_decision;

/*
 * Checks text (any bytes: invalid UTF-8 and NUL bytes are scanned as
 * spaces, offsets stay those of the input) against the effective policy e.
 * Fails with PWB_ETOOLARGE past max_text_bytes.
 */
pwb_status pwb_bounds_check(pwb_decision **out, pwb_bounds *b,
			    const pwb_effective *e, pwb_role role,
			    const char *text, size_t len, pwb_diag *diag);
void pwb_decision_free(pwb_decision *d);

pwb_verdict pwb_decision_verdict(const pwb_decision *d);
size_t pwb_decision_n_categories(const pwb_decision *d);
const pwb_cat_decision *pwb_decision_category(const pwb_decision *d, size_t i);
/* The category that blocks (the most binding tier first), or NULL. */
const pwb_cat_decision *pwb_decision_blocked_by(const pwb_decision *d);
/*
 * Every category that blocks, the most binding first: law, then org, then
 * the user's own setting, then the highest score, then registry order.
 * Blocking 0 is pwb_decision_blocked_by().
 */
size_t pwb_decision_n_blocking(const pwb_decision *d);
const pwb_cat_decision *pwb_decision_blocking(const pwb_decision *d, size_t i);
/* The tier that blocks a category: that of the rule when it is forbid
 * (law or org), else PWB_TIER_USER (the user's own setting). */
pwb_tier pwb_cat_decision_block_tier(const pwb_cat_decision *c);
/*
 * The refusal shown to the user for a blocking decision, in the language
 * of the effective `language` dimension (en, de or fr; the org may give
 * its own templates), naming the category by its display name, and
 * followed by the help resources (below) when there are any; NULL when
 * nothing blocks.
 */
const char *pwb_decision_refusal(const pwb_decision *d);

/* A help resource shown with a refusal: one of the registry's `help`
 * entries of a blocking category, for a jurisdiction in force. */
typedef struct pwb_dec_help {
	const char *category;	  /* the blocking category's id */
	const char *jurisdiction; /* "de" */
	const char *text;	  /* in the user's language (docs/bounds.md) */
	const char *source;	  /* the URL that cites it */
} pwb_dec_help;

/* The help resources of the blocking categories, in blocking order and,
 * per category, from the most specific jurisdiction to the least. */
size_t pwb_decision_n_help(const pwb_decision *d);
const pwb_dec_help *pwb_decision_help(const pwb_decision *d, size_t i);

/* Where an obligation's text goes (docs/bounds.md). */
typedef enum pwb_placement {
	PWB_PLACE_PREPEND, /* before the response */
	PWB_PLACE_APPEND,  /* after the response */
	PWB_PLACE_SYSTEM   /* done or shown by the deploying system */
} pwb_placement;

/* "prepend", "append" or "system". */
const char *pwb_placement_str(pwb_placement p);

/* An obligation the decision triggers. */
typedef struct pwb_dec_obligation {
	const char *id;	      /* the obligation's id in its policy file */
	const char *kind;     /* disclose_ai, disclaimer, age_verification */
	const char *category; /* the obligation's category, NULL for none */
	const char *text;     /* in the user's language where pwb has one */
	const char *lang;     /* the language of text; NULL: the policy's */
	pwb_placement placement;
	pwb_provenance set_by;
} pwb_dec_obligation;

/*
 * The obligations the decision triggers, in the effective policy's order:
 * disclose_ai always; a disclaimer or age_verification when its category
 * (or a child of it) is detected and on for the user, unless the decision
 * blocks (the response is then the refusal).
 */
size_t pwb_decision_n_obligations(const pwb_decision *d);
const pwb_dec_obligation *pwb_decision_obligation(const pwb_decision *d,
						  size_t i);
/* The text with every redacted span replaced by [kind], or NULL when the
 * verdict is not redact. It holds the input's bytes as they were, NUL
 * bytes and invalid UTF-8 too, so its length is
 * pwb_decision_redacted_len() (a NUL is added after it). */
const char *pwb_decision_redacted(const pwb_decision *d);
size_t pwb_decision_redacted_len(const pwb_decision *d);
/* Where input offset `at` lies in the redacted text: at the start of
 * the replacement when `at` falls inside a redacted span; `at` itself
 * when the verdict is not redact. For releasing the rest of a text of
 * which the first `at` bytes were already shown. */
size_t pwb_decision_redacted_offset(const pwb_decision *d, size_t at);

/* The decision as the JSON of `pwb bounds check --json` (docs/bounds.md);
 * *out is freed with free(). Bytes of the redacted text that are not
 * UTF-8 appear as U+FFFD, one per byte, and NUL bytes as \u0000. */
pwb_status pwb_decision_to_json(const pwb_decision *d, char **out);

/* ---- labelled texts (DESIGN §4.3), for training and evaluation ---- */

/*
 * One line of a bounds JSONL file:
 *   {"id": "x1", "text": "...", "role": "prompt|response", "labels": ["hate"]}
 * `labels: []` means within bounds; the label "*" means out of bounds with
 * the category not given (it counts for the binary metrics only). Other
 * keys are metadata (a data set's own: source, group, functionality):
 * kept when their value is a string, number or boolean, for grouping
 * results, and ignored otherwise.
 */
typedef struct pwb_labelled_text {
	const char *id; /* "" when the line has none */
	const char *text;
	size_t len;
	pwb_role role;
	const char *const *labels; /* category ids, "*" excluded */
	size_t n_labels;
	bool unsafe; /* labels were not empty (any id, or "*") */
	int line;
	const char *const *meta_keys; /* the other keys, in file order */
	const char *const *meta_values; /* their values as text */
	size_t n_meta;
} pwb_labelled_text;

/* The value of a metadata key of a line (a number or boolean as its JSON
 * text), or NULL when the line has none. */
const char *pwb_labelled_meta(const pwb_labelled_text *t, const char *key);

typedef struct pwb_labelled_set pwb_labelled_set;

/*
 * Reads a JSONL file. With a policy, every label must be a category of its
 * registry (or "*"). Every bad line is reported as file:line: what is
 * wrong (all of them, up to the diag cap); the call then fails with
 * PWB_EPARSE and *out is NULL.
 */
pwb_status pwb_labelled_load(pwb_labelled_set **out, const char *path,
			     const pwb_policy *policy, pwb_diag *diag);
void pwb_labelled_free(pwb_labelled_set *s);
size_t pwb_labelled_n(const pwb_labelled_set *s);
const pwb_labelled_text *pwb_labelled_get(const pwb_labelled_set *s, size_t i);

/* ---- training the linear detector ---- */

/* Context features of the linear detector (docs/bounds.md): words after a
 * negation, and words inside quotation marks, hash to features of their
 * own. */
#define PWB_BOUNDS_FEATURE_NEGATION 0x1u
#define PWB_BOUNDS_FEATURE_QUOTES 0x2u

typedef struct pwb_bounds_train_params {
	unsigned hash_bits;    /* feature space 2^hash_bits, 10..24; 18 */
	double l2;	       /* L2 regularisation; 1e-6 */
	double learning_rate;  /* initial step; 0.5 */
	unsigned epochs;       /* passes over the data; 5 */
	double valid_fraction; /* held out for validation, [0, 1); 0.2 */
	uint64_t seed;	       /* shuffling and the split; 1 */
	bool class_weights;    /* weight positives by neg/pos; true */
	/* Each category's threshold is set on the validation split so that
	 * at most this share of its texts without the category reach it
	 * (docs/bounds.md); 0 keeps the trained 0.5. [0, 1); 0 */
	double max_false_positives;
	/* PWB_BOUNDS_FEATURE_* bits; 0: the plain n-grams alone. */
	unsigned features;
	/* Called now and then with the fraction done, for a progress bar;
	 * NULL: none. */
	void (*progress)(void *user, double done);
	void *progress_user;
} pwb_bounds_train_params;

pwb_bounds_train_params pwb_bounds_train_default_params(void);

/* One label of a trained model, measured on the validation split. */
typedef struct pwb_bounds_train_label {
	const char *category;
	size_t n_valid_pos; /* positives in the validation split */
	double precision, recall; /* at the threshold below */
	double threshold; /* the trained probability that now scores 0.5 */
} pwb_bounds_train_label;

/* What training measured; embedded in the caller's struct and released
 * with pwb_bounds_train_report_release(). */
typedef struct pwb_bounds_train_report {
	size_t n_train, n_valid;
	pwb_bounds_train_label *labels; /* one per category of the data */
	size_t n_labels;
} pwb_bounds_train_report;

void pwb_bounds_train_report_release(pwb_bounds_train_report *r);

/*
 * Trains the linear detector on a labelled set and writes the model to
 * path atomically (a crash never leaves half a model there). The model's
 * labels are the category ids of the set in order of first appearance;
 * texts labelled only "*" are left out. `name` names the set in messages
 * (its file). Fails with PWB_EINVAL when no text names a category or the
 * set names more than PWB_BOUNDS_MAX_LABELS, PWB_EIO when the file cannot
 * be written; diag says why. report may be NULL.
 */
#define PWB_BOUNDS_MAX_LABELS 512
pwb_status pwb_bounds_train(const pwb_labelled_set *set, const char *name,
			    const char *path,
			    const pwb_bounds_train_params *params,
			    pwb_bounds_train_report *report, pwb_diag *diag);

#ifdef __cplusplus
}
#endif
#endif
