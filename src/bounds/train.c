/*
 * train.c - training the linear detector on a labelled set: the labels of
 * the data, the 0/1 matrix the trainer reads, and the model file.
 */
#include "bounds/bounds_int.h"

#include <stdlib.h>
#include <string.h>

_Static_assert(PWB_BOUNDS_FEATURE_NEGATION == PWB__LIN_NEGATION &&
		   PWB_BOUNDS_FEATURE_QUOTES == PWB__LIN_QUOTES,
	       "the public feature bits are the model file's");

pwb_bounds_train_params pwb_bounds_train_default_params(void)
{
	pwb__linear_params lp = pwb__linear_default_params();
	return (pwb_bounds_train_params){
	    .hash_bits = lp.hash_bits,
	    .l2 = lp.l2,
	    .learning_rate = lp.learning_rate,
	    .epochs = lp.epochs,
	    .valid_fraction = lp.valid_fraction,
	    .seed = lp.seed,
	    .class_weights = lp.class_weights,
	    .max_false_positives = lp.max_fpr,
	    .features = lp.features,
	};
}

void pwb_bounds_train_report_release(pwb_bounds_train_report *r)
{
	if (!r)
		return;
	for (size_t i = 0; i < r->n_labels; i++)
		free((char *)r->labels[i].category);
	free(r->labels);
	*r = (pwb_bounds_train_report){0};
}

/* The data of one training run, borrowed from the set. */
typedef struct train_data {
	const char **labels; /* category ids, in order of first appearance */
	size_t n_labels;
	const char **texts;
	size_t *lens;
	uint8_t *y; /* n x n_labels */
	size_t n;
} train_data;

static void data_release(train_data *td)
{
	free(td->labels);
	free(td->texts);
	free(td->lens);
	free(td->y);
}

/* Every category id of the set, in order of first appearance. */
static pwb_status gather_labels(train_data *td, const pwb_labelled_set *set,
				const char *name, pwb_diag *diag)
{
	size_t total = pwb_labelled_n(set);
	td->labels = pwb__calloc(PWB_BOUNDS_MAX_LABELS, sizeof(char *));
	if (!td->labels)
		return PWB_ENOMEM;
	for (size_t i = 0; i < total; i++) {
		const pwb_labelled_text *t = pwb_labelled_get(set, i);
		for (size_t k = 0; k < t->n_labels; k++) {
			bool seen = false;
			for (size_t j = 0; j < td->n_labels && !seen; j++)
				seen = !strcmp(td->labels[j], t->labels[k]);
			if (seen)
				continue;
			if (td->n_labels == PWB_BOUNDS_MAX_LABELS) {
				pwb_diag_add(diag, name, 0, 0,
					     "more than %d distinct labels",
					     PWB_BOUNDS_MAX_LABELS);
				return PWB_EINVAL;
			}
			td->labels[td->n_labels++] = t->labels[k];
		}
	}
	if (!td->n_labels) {
		pwb_diag_add(diag, name, 0, 0,
			     "no text names a category; nothing to learn");
		return PWB_EINVAL;
	}
	return PWB_OK;
}

/* The texts to learn from and their 0/1 labels. */
static pwb_status gather_rows(train_data *td, const pwb_labelled_set *set)
{
	size_t total = pwb_labelled_n(set), nl = td->n_labels;
	td->texts = pwb__calloc(total ? total : 1, sizeof(char *));
	td->lens = pwb__calloc(total ? total : 1, sizeof(size_t));
	td->y = pwb__calloc((total ? total : 1) * nl, 1);
	if (!td->texts || !td->lens || !td->y)
		return PWB_ENOMEM;
	for (size_t i = 0; i < total; i++) {
		const pwb_labelled_text *t = pwb_labelled_get(set, i);
		if (t->unsafe && !t->n_labels)
			continue; /* "*" only: no category to learn */
		td->texts[td->n] = t->text;
		td->lens[td->n] = t->len;
		for (size_t k = 0; k < t->n_labels; k++)
			for (size_t j = 0; j < nl; j++)
				if (!strcmp(td->labels[j], t->labels[k]))
					td->y[td->n * nl + j] = 1;
		td->n++;
	}
	return PWB_OK;
}

/* The trainer's report in public form, with its own copies of the ids. */
static pwb_status copy_report(pwb_bounds_train_report *out,
			      const pwb__linear_report *rep,
			      const train_data *td)
{
	out->labels = pwb__calloc(td->n_labels, sizeof(*out->labels));
	if (!out->labels)
		return PWB_ENOMEM;
	out->n_train = rep->n_train;
	out->n_valid = rep->n_valid;
	for (size_t j = 0; j < td->n_labels; j++) {
		pwb_bounds_train_label *l = &out->labels[j];
		if (!(l->category = pwb__strdup(td->labels[j])))
			return PWB_ENOMEM;
		out->n_labels = j + 1;
		l->n_valid_pos = rep->labels[j].n_pos;
		l->precision = rep->labels[j].precision;
		l->recall = rep->labels[j].recall;
		l->threshold = rep->labels[j].threshold;
	}
	return PWB_OK;
}

pwb_status pwb_bounds_train(const pwb_labelled_set *set, const char *name,
			    const char *path,
			    const pwb_bounds_train_params *params,
			    pwb_bounds_train_report *report, pwb_diag *diag)
{
	size_t mark = pwb__diag_mark(diag);
	if (report)
		*report = (pwb_bounds_train_report){0};
	if (!set || !path) {
		pwb_diag_add(diag, NULL, 0, 0, "training: no data or no path");
		return PWB_EINVAL;
	}
	pwb_bounds_train_params bp =
	    params ? *params : pwb_bounds_train_default_params();
	pwb__linear_params lp = pwb__linear_default_params();
	lp.hash_bits = bp.hash_bits;
	lp.l2 = bp.l2;
	lp.learning_rate = bp.learning_rate;
	lp.epochs = bp.epochs;
	lp.valid_fraction = bp.valid_fraction;
	lp.seed = bp.seed;
	lp.class_weights = bp.class_weights;
	lp.max_fpr = bp.max_false_positives;
	lp.features = bp.features;
	lp.progress = bp.progress;
	lp.progress_user = bp.progress_user;
	train_data td = {0};
	pwb__linear *m = NULL;
	pwb__linear_report rep = {0};
	pwb_status rc = gather_labels(&td, set, name, diag);
	if (!rc)
		rc = gather_rows(&td, set);
	if (!rc) {
		rc = pwb__linear_train(&m, td.texts, td.lens, td.y, td.n,
				       td.labels, td.n_labels, &lp, &rep);
		if (rc)
			pwb_diag_add(diag, name, 0, 0, "training failed: %s",
				     pwb_status_str(rc));
	}
	if (!rc)
		rc = pwb__linear_save(m, path, diag);
	if (!rc && report) {
		rc = copy_report(report, &rep, &td);
		if (rc)
			pwb_bounds_train_report_release(report);
	}
	free(rep.labels);
	pwb__linear_free(m);
	data_release(&td);
	return pwb__diag_fail(diag, mark, rc, "training");
}
