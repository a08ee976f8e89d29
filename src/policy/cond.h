/*
 * cond.h - the condition language of `when:` (docs/policy.md): parsing,
 * static checks, evaluation over request attributes, and the canonical form
 * used to compare conditions.
 */
#ifndef PWB_POLICY_COND_H
#define PWB_POLICY_COND_H

#include "pwb/policy.h"
#include "util/util.h"

typedef struct pwb__value pwb__value;
struct pwb__value {
	pwb_value_type type;
	bool b;
	double num;
	char *str;
	pwb__value *items;
	size_t n;
};

void pwb__value_release(pwb__value *v);
/* Appends a canonical text form of v (JSON-like) to b. */
void pwb__value_canon(const pwb__value *v, pwb__buf *b);

typedef enum pwb__cond_kind {
	PWB__C_LIT,
	PWB__C_PATH,
	PWB__C_NOT,
	PWB__C_AND,
	PWB__C_OR,
	PWB__C_CMP
} pwb__cond_kind;

typedef enum pwb__cmp_op {
	PWB__OP_EQ,
	PWB__OP_NE,
	PWB__OP_LT,
	PWB__OP_LE,
	PWB__OP_GT,
	PWB__OP_GE,
	PWB__OP_IN
} pwb__cmp_op;

typedef struct pwb__cond pwb__cond;
struct pwb__cond {
	pwb__cond_kind kind;
	pwb__cmp_op op;
	int pos;	/* 0-based offset in the source text */
	pwb__value lit; /* LIT */
	char *path;	/* PATH */
	pwb__cond *a, *b;
};

#define PWB__COND_MAX_LEN 4096
#define PWB__COND_MAX_DEPTH 64

/*
 * Parses src into *out (the caller's, freed with pwb__cond_free). On a
 * syntax error returns PWB_EPARSE and adds one message to diag whose col is
 * the 1-based offset of the problem in src (line 0, file NULL: the caller
 * places it in its file). Out of memory returns PWB_ENOMEM with one
 * message and no place (col 0). *out is NULL on any failure.
 */
pwb_status pwb__cond_parse(pwb__cond **out, const char *src, pwb_diag *diag);
void pwb__cond_free(pwb__cond *c);

/* Evaluates c with null semantics: every comparison with null is false. */
bool pwb__cond_eval(const pwb__cond *c, const pwb_attrs *attrs);

/* Appends a canonical text of c: equal conditions give equal texts. */
void pwb__cond_canon(const pwb__cond *c, pwb__buf *b);

/*
 * Static checks. type_of returns the declared type of an attribute path and
 * false when the path is unknown; report is called once per problem with
 * the offset it concerns.
 */
typedef bool (*pwb__attr_type_fn)(void *ud, const char *path,
				  pwb_value_type *type);
typedef void (*pwb__cond_report_fn)(void *ud, int pos, const char *msg);
void pwb__cond_check(const pwb__cond *c, pwb__attr_type_fn type_of,
		     pwb__cond_report_fn report, void *ud);

/*
 * True when a implies b by syntax: every &&-term of b is an &&-term of a.
 * A NULL condition is "true".
 */
bool pwb__cond_implies(const pwb__cond *a, const pwb__cond *b);

/* ---- attributes (the public pwb_attrs) ---- */

typedef struct pwb__attr {
	char *key;
	pwb__value val;
} pwb__attr;

struct pwb_attrs {
	pwb__attr *v;
	size_t n, cap;
};

/* The value of key, or NULL when it is not set. */
const pwb__value *pwb__attrs_get(const pwb_attrs *a, const char *key);

/* Parses text the way `--attr` does (a JSON scalar, else a string). */
pwb_status pwb__value_from_text(pwb__value *out, const char *text);

const char *pwb__value_type_name(pwb_value_type t);

#endif
