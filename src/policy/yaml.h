/*
 * yaml.h - a small YAML tree with source positions, built from libfyaml's
 * event stream. Every node knows its line and column, duplicate keys and
 * aliases are refused, and nesting is capped, so the policy loader can walk
 * plain C structs and name the exact place of every problem.
 */
#ifndef PWB_POLICY_YAML_H
#define PWB_POLICY_YAML_H

#include "pwb/common.h"

typedef enum pwb__ytype { PWB__Y_SCALAR, PWB__Y_SEQ, PWB__Y_MAP } pwb__ytype;

typedef struct pwb__ynode pwb__ynode;
struct pwb__ynode {
	pwb__ytype type;
	int line, col; /* 1-based */
	char *text;    /* scalar: NUL-terminated content */
	size_t len;
	bool quoted; /* scalar written in quotes or as a block */
	bool block;  /* scalar written as a block (| or >) */
	size_t pos;  /* byte offset of the node's start in the input */
	/* seq: items; map: keys and values, pairwise (keys[i] -> vals[i]) */
	pwb__ynode **keys;
	pwb__ynode **vals;
	size_t n, cap, kcap;
};

#define PWB__YAML_MAX_DEPTH 32

/*
 * Parses one YAML document. On failure adds one diagnostic naming file,
 * line and column, and returns PWB_EPARSE (or PWB_ENOMEM).
 */
pwb_status pwb__yaml_parse(pwb__ynode **out, const char *file, const char *data,
			   size_t len, pwb_diag *diag);
void pwb__ynode_free(pwb__ynode *n);

/* The value for key in a map node, or NULL. */
pwb__ynode *pwb__ymap_get(const pwb__ynode *map, const char *key);

/* "a mapping", "a list" or "a scalar", for messages. */
const char *pwb__ytype_name(pwb__ytype t);

#endif
