/* eval.c - `pwb eval bounds`: detection and blocking quality on labelled
 * texts. */
#include "cli/cli.h"
#include "util/util.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char eval_usage[] =
    "Usage: pwb eval bounds --policies DIR --org ID --data FILE.jsonl "
    "[options]\n"
    "       pwb eval prefs --data FILE.jsonl [options]\n"
    "\n"
    "Run 'pwb eval SUBCOMMAND --help' for the options of each.\n";

static const char bounds_usage[] =
    "Usage: pwb eval bounds --policies DIR --org ID --data FILE.jsonl "
    "[options]\n"
    "\n"
    "Checks every text of a labelled JSONL file against the effective\n"
    "policy and reports how well out-of-bounds texts are blocked: a text\n"
    "counts as blocked when the decision's verdict is block. Per-category\n"
    "metrics compare labels with detection.\n"
    "\n"
    "FILE.jsonl has one JSON object a line (docs/bounds.md, \"Labelled\n"
    "texts\"):\n"
    "  {\"id\": \"x1\", \"text\": \"...\", \"role\": \"prompt\", "
    "\"labels\": [\"hate\"]}\n"
    "Labels name registry categories; [] means within bounds, and \"*\"\n"
    "out of bounds with the category not given (binary metrics only).\n"
    "\n"
    "Options:\n" CLI_RESOLVE_HELP
    "  --data FILE          the labelled texts (JSONL)\n"
    "  --lexicons DIR       lexicon files (default DIR/lexicons of "
    "--policies)\n"
    "  --model FILE         a linear model from 'pwb bounds train'\n"
    "  --json               print the metrics as JSON\n"
    "  -h, --help           show this help\n"
    "\n" CLI_HELP_CACHE_ENV "\n"
    "Example:\n"
    "  pwb eval bounds --policies policies --org acme-tutor "
    "--data labelled.jsonl\n"
    "\n"
    "Exit status: 0 when every text was checked, 1 on an error (a bad\n"
    "line of FILE, naming it), 2 on a usage error.\n";

typedef struct counts {
	size_t tp, fp, fn, tn;
} counts;

static json_t *ratio(size_t a, size_t b)
{
	return b ? json_real((double)a / (double)b) : json_null();
}

static json_t *f1(size_t tp, size_t fp, size_t fn)
{
	if (!tp)
		return (fp || fn) ? json_real(0) : json_null();
	double p = (double)tp / (double)(tp + fp);
	double r = (double)tp / (double)(tp + fn);
	return json_real(2 * p * r / (p + r));
}

/* "0.123", or "-" where the ratio is undefined. */
static void fmt_ratio(const json_t *v, char out[16])
{
	if (json_is_real(v))
		snprintf(out, 16, "%.3f", json_real_value(v));
	else
		snprintf(out, 16, "-");
}

static int cmd_bounds(cli_args *a)
{
	cli_resolve ra = {0};
	const char *data = NULL, *lexicons = NULL, *model = NULL;
	bool as_json = false;
	const cli_spec spec[] = {
	    CLI_RESOLVE_SPEC(&ra), CLI_OPT_NEED("data", data, "FILE.jsonl"),
	    CLI_OPT_STR("lexicons", lexicons), CLI_OPT_STR("model", model),
	    CLI_OPT_FLAG("json", as_json)};
	int r = cli_parse(a, spec, PWB_ARRAY_LEN(spec), bounds_usage, NULL);
	if (r)
		return cli_parsed(r);
	int rc = cli_resolve_run(&ra, a);
	if (rc) {
		cli_resolve_release(&ra);
		return rc;
	}
	rc = CLI_FAIL;
	pwb_diag diag;
	pwb_diag_init(&diag);
	pwb_labelled_set *set = NULL;
	pwb_bounds *b = NULL;
	counts *per = NULL;
	size_t *n_pos = NULL;
	json_t *root = NULL;
	if (pwb_labelled_load(&set, data, ra.policy, &diag)) {
		cli_print_diag(&diag);
		goto out;
	}
	if (!(b = cli_bounds_open(&ra, lexicons, model, NULL)))
		goto out;
	size_t n = pwb_labelled_n(set),
	       n_cats = pwb_effective_n_categories(ra.effective);
	per = calloc(n_cats ? n_cats : 1, sizeof(*per));
	n_pos = calloc(n_cats ? n_cats : 1, sizeof(*n_pos));
	bool *labelled = calloc(n_cats ? n_cats : 1, sizeof(bool));
	if (!per || !n_pos || !labelled) {
		free(labelled);
		fprintf(stderr, "error: out of memory\n");
		goto out;
	}
	counts bin = {0};
	size_t n_safe = 0, n_unsafe = 0;
	cli_progress pr;
	cli_progress_start(&pr, "checking", n);
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (size_t i = 0; i < n; i++) {
		const pwb_labelled_text *t = pwb_labelled_get(set, i);
		pwb_decision *d = NULL;
		pwb_status st = pwb_bounds_check(&d, b, ra.effective, t->role,
						 t->text, t->len, &diag);
		if (st) {
			fprintf(stderr, "%s:%d: error: %s\n", data, t->line,
				diag.n ? diag.entries[0].message
				       : pwb_status_str(st));
			free(labelled);
			goto out;
		}
		bool blocked = pwb_decision_verdict(d) == PWB_VERDICT_BLOCK;
		if (t->unsafe) {
			n_unsafe++;
			blocked ? bin.tp++ : bin.fn++;
		} else {
			n_safe++;
			blocked ? bin.fp++ : bin.tn++;
		}
		/* Per category: labels against detection. A text labelled
		 * only "*" says nothing about single categories. */
		bool star_only = t->unsafe && !t->n_labels;
		for (size_t c = 0; c < n_cats; c++)
			labelled[c] = false;
		for (size_t k = 0; k < t->n_labels; k++)
			for (size_t c = 0; c < n_cats; c++)
				if (!strcmp(
					pwb_decision_category(d, c)->category,
					t->labels[k]))
					labelled[c] = true;
		for (size_t c = 0; c < n_cats && !star_only; c++) {
			bool det = pwb_decision_category(d, c)->detected;
			if (labelled[c]) {
				n_pos[c]++;
				det ? per[c].tp++ : per[c].fn++;
			} else {
				det ? per[c].fp++ : per[c].tn++;
			}
		}
		pwb_decision_free(d);
		cli_progress_update(&pr, i + 1);
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	cli_progress_end(&pr);
	free(labelled);
	double secs = (double)(t1.tv_sec - t0.tv_sec) +
		      (double)(t1.tv_nsec - t0.tv_nsec) * 1e-9;
	root = json_object();
	json_object_set_new(root, "n", json_integer((json_int_t)n));
	json_object_set_new(root, "n_safe", json_integer((json_int_t)n_safe));
	json_object_set_new(root, "n_unsafe",
			    json_integer((json_int_t)n_unsafe));
	json_object_set_new(root, "blocked_unsafe",
			    json_integer((json_int_t)bin.tp));
	json_object_set_new(root, "blocked_safe",
			    json_integer((json_int_t)bin.fp));
	json_object_set_new(root, "block_rate_unsafe", ratio(bin.tp, n_unsafe));
	json_object_set_new(root, "false_block_rate_safe",
			    ratio(bin.fp, n_safe));
	json_object_set_new(root, "precision", ratio(bin.tp, bin.tp + bin.fp));
	json_object_set_new(root, "f1", f1(bin.tp, bin.fp, bin.fn));
	json_object_set_new(root, "texts_per_second",
			    json_real(secs > 0 ? (double)n / secs : 0));
	json_t *cats = json_object();
	for (size_t c = 0; c < n_cats; c++) {
		if (!n_pos[c])
			continue;
		json_t *o = json_object();
		json_object_set_new(o, "n", json_integer((json_int_t)n_pos[c]));
		json_object_set_new(o, "precision",
				    ratio(per[c].tp, per[c].tp + per[c].fp));
		json_object_set_new(o, "recall", ratio(per[c].tp, n_pos[c]));
		json_object_set_new(o, "f1",
				    f1(per[c].tp, per[c].fp, per[c].fn));
		json_object_set_new(
		    cats, pwb_effective_category(ra.effective, c)->id, o);
	}
	json_object_set_new(root, "categories", cats);
	if (as_json) {
		bool printed = cli_print_json(root);
		if (!printed)
			goto out;
	} else {
		printf("texts: %zu (%zu within bounds, %zu out of bounds), "
		       "%.0f texts/s\n",
		       n, n_safe, n_unsafe, secs > 0 ? (double)n / secs : 0);
		printf("blocked: %zu of %zu out of bounds (%.1f%%), %zu of %zu "
		       "within bounds (%.1f%%)\n",
		       bin.tp, n_unsafe,
		       n_unsafe ? 100.0 * (double)bin.tp / (double)n_unsafe : 0,
		       bin.fp, n_safe,
		       n_safe ? 100.0 * (double)bin.fp / (double)n_safe : 0);
		const char *kname;
		json_t *kv;
		json_object_foreach(cats, kname, kv)
		{
			char pr_s[16], rr_s[16];
			fmt_ratio(json_object_get(kv, "precision"), pr_s);
			fmt_ratio(json_object_get(kv, "recall"), rr_s);
			printf("  %-28s n %5lld  precision %s  recall %s\n",
			       kname,
			       (long long)json_integer_value(
				   json_object_get(kv, "n")),
			       pr_s, rr_s);
		}
	}
	rc = fflush(stdout) == 0 ? CLI_OK : CLI_FAIL;
out:
	json_decref(root);
	free(per);
	free(n_pos);
	pwb_bounds_free(b);
	pwb_labelled_free(set);
	pwb_diag_release(&diag);
	cli_resolve_release(&ra);
	return rc;
}

int cli_eval(int argc, char **argv)
{
	static const cli_sub subs[] = {{"bounds", cmd_bounds},
				       {"prefs", cli_eval_prefs}};
	return cli_dispatch(argc, argv, "eval", eval_usage, subs,
			    PWB_ARRAY_LEN(subs));
}
