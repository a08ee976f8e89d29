/*
 * bounds_int.h - the internals of src/bounds shared between its files.
 */
#ifndef PWB_BOUNDS_INT_H
#define PWB_BOUNDS_INT_H

#include "bounds/linear.h"
#include "bounds/pii.h"
#include "pwb/bounds.h"
#include "util/util.h"

#include <hs/hs.h>
#include <pthread.h>
#include <stdatomic.h>

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#define PWB__LEX_MAX_FILE (4u * 1024 * 1024)
#define PWB__LEX_MAX_ENTRIES 100000
#define PWB__MAX_MATCHES 100000	  /* matches kept per text */
#define PWB__MAX_SPANS_PER_CAT 64 /* spans reported per category */
#define PWB__GUARD_SLOW_S 2.0	  /* a guard answer this slow is logged */

typedef enum pwb__lex_kind {
	PWB__LEX_WORD,
	PWB__LEX_PHRASE,
	PWB__LEX_REGEX
} pwb__lex_kind;

/*
 * An entry of a category lexicon (cat >= 0, weight) or of the context
 * lexicon (context.tsv: cat is -1, weight is the factor, and lowers[c]
 * says which registry categories it lowers; docs/bounds.md "Context").
 */
typedef struct pwb__lex_entry {
	int cat; /* registry index; -1 for a context entry */
	pwb__lex_kind kind;
	float weight;
	unsigned char *lowers; /* context only: one byte per category */
	char *entry;
	char *note;
	int file; /* index in pwb_bounds.lex_files, for messages */
	int line;
} pwb__lex_entry;

/* A scratch space for Vectorscan, one per concurrent scan. */
typedef struct pwb__scratch_pool {
	pthread_mutex_t lock;
	hs_scratch_t **free;
	size_t n_free, cap;
	hs_scratch_t *proto;
} pwb__scratch_pool;

struct pwb_bounds {
	const pwb_policy *policy;
	pwb_bounds_params params;
	pwb__lex_entry *entries;
	size_t n_entries, cap_entries;
	char **lex_files;
	size_t n_lex_files, cap_lex_files;
	hs_database_t *db; /* lexicon entries, then one pattern per PII kind */
	/* Per regex entry, its pattern compiled by PCRE2 to find where a
	 * match starts (lexicon.c), made on the entry's first match. */
	_Atomic(pcre2_code *) *lex_re;
	pcre2_general_context *re_gc; /* PCRE2 allocates through pwb__malloc */
	pcre2_match_context *re_mc;   /* with a match limit */
	pwb__scratch_pool scratch;
	pwb__linear *model;
	int *model_cat; /* model label -> registry category, -1 unknown */
};

/* Logs through the caller's callback (params.log), if any. */
void pwb__bounds_log(const pwb_bounds *b, pwb_log_level level, const char *fmt,
		     ...) __attribute__((format(printf, 3, 4)));

/* The guard detector (guard.c): whether to ask the judge at all (a judge
 * is set and some category has a guard detector), its prompt, and the
 * reading of its answer into a score per registry category. */
bool pwb__guard_wanted(const pwb_bounds *b);
pwb_status pwb__guard_prompt(const pwb_bounds *b, pwb_role role,
			     const char *text, size_t len, char **out);
pwb_status pwb__guard_read(const pwb_bounds *b, const char *answer,
			   double *scores, pwb_diag *diag);

/*
 * Where a lexicon match starts. The database reports only where matches
 * end (tracking starts in Vectorscan makes the scan about four times
 * slower); the start of a word or phrase entry is found by walking its
 * words back from the end, that of a regular expression by PCRE2 on a
 * window before the end, within a budget per text.
 */
typedef struct pwb__start_ctx {
	pcre2_match_data *md; /* made on the first regex match of a text */
	unsigned searches;    /* regex searches left for this text */
	unsigned wide;	      /* searches past the first window left */
	bool oom;
} pwb__start_ctx;

#define PWB__START_SEARCHES 8192u
#define PWB__START_WIDE 64u

void pwb__start_init(pwb__start_ctx *c);
void pwb__start_release(pwb__start_ctx *c);
/* True with *start when found; false when the start is unknown (budget
 * spent, or no engine agreed; c->oom on an allocation failure). */
bool pwb__lexicon_start(const pwb_bounds *b, unsigned id,
			const unsigned char *norm, size_t end,
			pwb__start_ctx *c, size_t *start);
void pwb__lexicon_free_re(pwb_bounds *b);
/* The Vectorscan pattern of an entry (malloc'ed; NULL when out of
 * memory): words and phrases literal, lowercased, with any run of
 * whitespace between the words of a phrase. */
char *pwb__lexicon_regex(const pwb__lex_entry *e);
/* A compound entry "MODIFIERS+HEADS" as its regex (malloc'ed): closed,
 * hyphenated or open, with a German linking element between. NULL with
 * *bad set when it is not one; NULL alone when out of memory. */
char *pwb__lexicon_compound(const char *entry, bool *bad);

/* The context lexicon's file name in the lexicon folder. */
#define PWB__CONTEXT_FILE "context.tsv"

/* Reads every <lang>.tsv of dir, and the context lexicon, into
 * b->entries (errors to diag). */
pwb_status pwb__lexicon_load(pwb_bounds *b, const char *dir, pwb_diag *diag);
/* Compiles the lexicon entries and the PII patterns into b->db. */
pwb_status pwb__lexicon_compile(pwb_bounds *b, pwb_diag *diag);

#endif
