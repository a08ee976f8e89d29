/* yaml.c - libfyaml events into a positioned tree (see yaml.h). */
#include "policy/yaml.h"
#include "util/util.h"

#include <libfyaml.h>
#include <stdlib.h>
#include <string.h>

void pwb__ynode_free(pwb__ynode *n)
{
	if (!n)
		return;
	for (size_t i = 0; i < n->n; i++) {
		if (n->keys)
			pwb__ynode_free(n->keys[i]);
		pwb__ynode_free(n->vals[i]);
	}
	free(n->keys);
	free(n->vals);
	free(n->text);
	free(n);
}

const char *pwb__ytype_name(pwb__ytype t)
{
	switch (t) {
	case PWB__Y_SCALAR:
		return "a scalar";
	case PWB__Y_SEQ:
		return "a list";
	case PWB__Y_MAP:
		return "a mapping";
	}
	return "?";
}

pwb__ynode *pwb__ymap_get(const pwb__ynode *map, const char *key)
{
	if (!map || map->type != PWB__Y_MAP)
		return NULL;
	for (size_t i = 0; i < map->n; i++)
		if (map->keys[i]->type == PWB__Y_SCALAR &&
		    strcmp(map->keys[i]->text, key) == 0)
			return map->vals[i];
	return NULL;
}

static void noop_output(struct fy_diag *diag, void *user, const char *buf,
			size_t len)
{
	(void)diag, (void)user, (void)buf, (void)len;
}

typedef struct yparser {
	const char *file;
	const char *data;
	pwb_diag *diag;
	pwb__ynode *stack[PWB__YAML_MAX_DEPTH + 1];
	bool want_key[PWB__YAML_MAX_DEPTH + 1];
	int depth;
	pwb__ynode *root;
} yparser;

/* Adds child to the container on top of the stack (or makes it the root). */
static pwb_status attach(yparser *yp, pwb__ynode *child)
{
	if (yp->depth == 0) {
		yp->root = child;
		return PWB_OK;
	}
	pwb__ynode *top = yp->stack[yp->depth - 1];
	if (top->type == PWB__Y_SEQ) {
		if (pwb__grow((void **)&top->vals, &top->cap, top->n + 1,
			      sizeof(*top->vals)))
			return PWB_ENOMEM;
		top->vals[top->n++] = child;
		return PWB_OK;
	}
	if (yp->want_key[yp->depth - 1]) {
		if (child->type != PWB__Y_SCALAR) {
			pwb_diag_add(yp->diag, yp->file, child->line,
				     child->col,
				     "a mapping key must be a plain scalar");
			return PWB_EPARSE;
		}
		for (size_t i = 0; i < top->n; i++) {
			if (strcmp(top->keys[i]->text, child->text) == 0) {
				pwb_diag_add(yp->diag, yp->file, child->line,
					     child->col,
					     "duplicate key '%s' (first at "
					     "line %d)",
					     child->text, top->keys[i]->line);
				return PWB_EPARSE;
			}
		}
		if (pwb__grow((void **)&top->keys, &top->kcap, top->n + 1,
			      sizeof(*top->keys)) ||
		    pwb__grow((void **)&top->vals, &top->cap, top->n + 1,
			      sizeof(*top->vals)))
			return PWB_ENOMEM;
		top->keys[top->n] = child;
		top->vals[top->n] = NULL;
		top->n++;
		yp->want_key[yp->depth - 1] = false;
		return PWB_OK;
	}
	top->vals[top->n - 1] = child;
	yp->want_key[yp->depth - 1] = true;
	return PWB_OK;
}

static pwb__ynode *new_node(pwb__ytype t, const struct fy_mark *m)
{
	pwb__ynode *n = pwb__calloc(1, sizeof(*n));
	if (n) {
		n->type = t;
		n->line = m ? m->line + 1 : 1;
		n->col = m ? m->column + 1 : 1;
		n->pos = m ? m->input_pos : 0;
	}
	return n;
}

/* The 1-based column of a mark, moved back onto a '&' or '*' sigil that
 * libfyaml leaves out of anchor and alias tokens. */
static int sigil_col(const yparser *yp, const struct fy_mark *m)
{
	size_t i = m->input_pos;
	if (i > 0 && m->column > 0 &&
	    (yp->data[i - 1] == '&' || yp->data[i - 1] == '*'))
		return m->column;
	return m->column + 1;
}

/* Anchors, aliases and tags buy nothing in policy files: anchors and
 * aliases open the door to expansion attacks, and a tag (`!!str 3`) would
 * silently change how a value reads. */
static pwb_status refuse_anchor_tag(yparser *yp, const struct fy_mark *m,
				    struct fy_token *anchor,
				    struct fy_token *tag)
{
	if (!anchor && !tag)
		return PWB_OK;
	/* Point at the anchor or tag itself where libfyaml knows it. */
	const struct fy_mark *tm = fy_token_start_mark(anchor ? anchor : tag);
	if (tm)
		m = tm;
	pwb_diag_add(yp->diag, yp->file, m ? m->line + 1 : 0,
		     m ? sigil_col(yp, m) : 0, "YAML %s are not supported",
		     anchor ? "anchors" : "tags");
	return PWB_EPARSE;
}

/* The first error libfyaml collected, as our diagnostic. */
static void report_fy_error(yparser *yp, struct fy_diag *fd)
{
	void *it = NULL;
	struct fy_diag_error *err;
	while ((err = fy_diag_errors_iterate(fd, &it)) != NULL) {
		if (err->type != FYET_ERROR)
			continue;
		/* Collected errors count lines and columns from 1. */
		pwb_diag_add(yp->diag, yp->file, err->line, err->column,
			     "malformed YAML: %s", err->msg);
		return;
	}
	pwb_diag_add(yp->diag, yp->file, 0, 0, "malformed YAML");
}

pwb_status pwb__yaml_parse(pwb__ynode **out, const char *file, const char *data,
			   size_t len, pwb_diag *diag)
{
	*out = NULL;
	yparser yp = {.file = file, .data = data, .diag = diag};
	pwb_status rc = PWB_OK;
	struct fy_diag_cfg dcfg;
	fy_diag_cfg_default(&dcfg);
	dcfg.fp = NULL;
	dcfg.output_fn = noop_output;
	dcfg.colorize = false;
	struct fy_diag *fd = fy_diag_create(&dcfg);
	if (!fd)
		return PWB_ENOMEM;
	fy_diag_set_collect_errors(fd, true);
	struct fy_parse_cfg cfg = {
	    .flags = FYPCF_QUIET | FYPCF_DEFAULT_VERSION_1_2 | FYPCF_JSON_NONE |
		     FYPCF_ALLOW_DUPLICATE_KEYS | FYPCF_DISABLE_MMAP_OPT,
	    .diag = fd,
	};
	struct fy_parser *fyp = fy_parser_create(&cfg);
	if (!fyp) {
		/* destroy, not unref: only destroy frees the collected errors
		 */
		fy_diag_destroy(fd);
		return PWB_ENOMEM;
	}
	if (fy_parser_set_string(fyp, data, len) != 0) {
		rc = PWB_ENOMEM;
		goto out;
	}
	int docs = 0;
	struct fy_event *ev;
	while ((ev = fy_parser_parse(fyp)) != NULL) {
		const struct fy_mark *m = fy_event_start_mark(ev);
		pwb__ynode *n = NULL;
		switch (ev->type) {
		case FYET_DOCUMENT_START:
			if (++docs > 1) {
				pwb_diag_add(diag, file, m ? m->line + 1 : 0,
					     m ? m->column + 1 : 0,
					     "a policy file holds one YAML "
					     "document, this is the second");
				rc = PWB_EPARSE;
			}
			break;
		case FYET_ALIAS:
			pwb_diag_add(diag, file, m ? m->line + 1 : 0,
				     m ? sigil_col(&yp, m) : 0,
				     "YAML aliases are not supported");
			rc = PWB_EPARSE;
			break;
		case FYET_SCALAR: {
			if ((rc = refuse_anchor_tag(&yp, m, ev->scalar.anchor,
						    ev->scalar.tag)))
				break;
			n = new_node(PWB__Y_SCALAR, m);
			size_t tl = 0;
			const char *t =
			    fy_token_get_text(ev->scalar.value, &tl);
			if (!n || !(n->text = pwb__strndup(t ? t : "", tl))) {
				rc = PWB_ENOMEM;
				break;
			}
			n->len = tl;
			enum fy_scalar_style ss =
			    fy_token_scalar_style(ev->scalar.value);
			n->quoted = ss != FYSS_PLAIN;
			n->block = ss == FYSS_LITERAL || ss == FYSS_FOLDED;
			if (memchr(n->text, '\0', tl)) {
				pwb_diag_add(diag, file, n->line, n->col,
					     "NUL character in a string");
				rc = PWB_EPARSE;
				break;
			}
			rc = attach(&yp, n);
			if (!rc)
				n = NULL;
			break;
		}
		case FYET_SEQUENCE_START:
		case FYET_MAPPING_START: {
			if ((rc = ev->type == FYET_SEQUENCE_START
				      ? refuse_anchor_tag(
					    &yp, m, ev->sequence_start.anchor,
					    ev->sequence_start.tag)
				      : refuse_anchor_tag(
					    &yp, m, ev->mapping_start.anchor,
					    ev->mapping_start.tag)))
				break;
			if (yp.depth >= PWB__YAML_MAX_DEPTH) {
				pwb_diag_add(diag, file, m ? m->line + 1 : 0,
					     m ? m->column + 1 : 0,
					     "nesting deeper than %d levels",
					     PWB__YAML_MAX_DEPTH);
				rc = PWB_EPARSE;
				break;
			}
			n = new_node(ev->type == FYET_SEQUENCE_START
					 ? PWB__Y_SEQ
					 : PWB__Y_MAP,
				     m);
			if (!n) {
				rc = PWB_ENOMEM;
				break;
			}
			rc = attach(&yp, n);
			if (rc)
				break;
			yp.stack[yp.depth] = n;
			yp.want_key[yp.depth] = true;
			yp.depth++;
			n = NULL;
			break;
		}
		case FYET_SEQUENCE_END:
		case FYET_MAPPING_END:
			if (PWB_ALWAYS(yp.depth > 0))
				yp.depth--;
			break;
		default:
			break;
		}
		fy_parser_event_free(fyp, ev);
		if (rc) {
			/* A failed node not yet attached is ours to free. */
			pwb__ynode_free(n);
			goto out;
		}
	}
	if (fy_parser_get_stream_error(fyp)) {
		report_fy_error(&yp, fd);
		rc = PWB_EPARSE;
		goto out;
	}
	if (!yp.root) {
		pwb_diag_add(diag, file, 0, 0, "the file is empty");
		rc = PWB_EPARSE;
		goto out;
	}
out:
	fy_parser_destroy(fyp);
	/* destroy, not unref: only destroy frees the collected errors */
	fy_diag_destroy(fd);
	if (rc) {
		pwb__ynode_free(yp.root);
		return rc;
	}
	*out = yp.root;
	return PWB_OK;
}
