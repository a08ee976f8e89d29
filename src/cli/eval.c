/* eval.c - `pwb eval bounds`: detection and blocking quality on labelled
 * texts. */
#include "cli/cli.h"
#include "cli/sweep.h"
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
    "Other keys are metadata: ignored, or grouped by with --group-by.\n"
    "\n"
    "Options:\n" CLI_RESOLVE_HELP
    "  --data FILE          the labelled texts (JSONL)\n"
    "  --lexicons DIR       lexicon files (default DIR/lexicons of "
    "--policies)\n"
    "  --model FILE         a linear model from 'pwb bounds train'\n" CLI_HELP_GUARD
    "  --group-by KEY       also the binary metrics per value of KEY, a\n"
    "                       key of the lines beside text and labels (e.g.\n"
    "                       source, functionality, group)\n"
    "  --sweep              also the threshold sweep: every threshold\n"
    "                       scaled by 0.10 ... 2.00, precision, recall\n"
    "                       and false blocks at each (docs/EVALUATION.md)\n"
    "  --svg FILE           with --sweep: the precision-recall curve as\n"
    "                       an SVG file\n"
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

/* The binary counts of one value of the --group-by key. */
typedef struct group {
	const char *value; /* borrowed from the labelled set */
	counts c;
} group;

typedef struct groups {
	group *v;
	size_t n, cap;
} groups;

/* Counts one text under its group; false when out of memory. */
static bool group_count(groups *g, const char *value, bool unsafe,
			bool blocked)
{
	size_t i = 0;
	while (i < g->n && strcmp(g->v[i].value, value))
		i++;
	if (i == g->n) {
		if (pwb__grow((void **)&g->v, &g->cap, g->n + 1,
			      sizeof(*g->v)))
			return false;
		g->v[g->n++] = (group){.value = value};
	}
	counts *c = &g->v[i].c;
	if (unsafe)
		blocked ? c->tp++ : c->fn++;
	else
		blocked ? c->fp++ : c->tn++;
	return true;
}

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

/* The binary metrics of counts into o. */
static void binary_json(json_t *o, const counts *c)
{
	size_t n_unsafe = c->tp + c->fn, n_safe = c->fp + c->tn;
	json_object_set_new(o, "n", json_integer((json_int_t)(n_unsafe + n_safe)));
	json_object_set_new(o, "n_safe", json_integer((json_int_t)n_safe));
	json_object_set_new(o, "n_unsafe", json_integer((json_int_t)n_unsafe));
	json_object_set_new(o, "blocked_unsafe", json_integer((json_int_t)c->tp));
	json_object_set_new(o, "blocked_safe", json_integer((json_int_t)c->fp));
	json_object_set_new(o, "block_rate_unsafe", ratio(c->tp, n_unsafe));
	json_object_set_new(o, "false_block_rate_safe", ratio(c->fp, n_safe));
	json_object_set_new(o, "precision", ratio(c->tp, c->tp + c->fp));
	json_object_set_new(o, "f1", f1(c->tp, c->fp, c->fn));
}

/* The sweep as a table: one row per scale. */
static void print_sweep(const json_t *curve)
{
	printf("thresholds scaled by:  precision  recall  false blocks  "
	       "F1\n");
	size_t i;
	const json_t *p;
	json_array_foreach(curve, i, p)
	{
		char pr[16], rr[16], fb[16], f[16];
		fmt_ratio(json_object_get(p, "precision"), pr);
		fmt_ratio(json_object_get(p, "recall"), rr);
		fmt_ratio(json_object_get(p, "false_block_rate"), fb);
		fmt_ratio(json_object_get(p, "f1"), f);
		printf("  %4.2f%s  %9s  %6s  %12s  %6s\n",
		       json_real_value(json_object_get(p, "scale")),
		       i == 18 ? " (as set)" : "         ", pr, rr, fb, f);
	}
}

static int cmd_bounds(cli_args *a)
{
	cli_resolve ra = {0};
	const char *data = NULL, *lexicons = NULL, *model = NULL,
		   *group_by = NULL, *svg = NULL;
	bool as_json = false, sweep = false;
	cli_engine_opts eo = {0};
	const cli_spec spec[] = {
	    CLI_RESOLVE_SPEC(&ra),	     CLI_OPT_NEED("data", data, "FILE.jsonl"),
	    CLI_OPT_STR("lexicons", lexicons), CLI_OPT_STR("model", model),
	    CLI_OPT_FLAG("json", as_json),   CLI_OPT_STR("group-by", group_by),
	    CLI_OPT_FLAG("sweep", sweep),    CLI_OPT_STR("svg", svg),
	    CLI_GUARD_SPEC(&eo)};
	int r = cli_parse(a, spec, PWB_ARRAY_LEN(spec), bounds_usage, NULL);
	if (r)
		return cli_parsed(r);
	if (group_by && !*group_by)
		return cli_usage_error(a, "--group-by needs a key");
	if (svg && (!*svg || !sweep))
		return cli_usage_error(a, *svg ? "--svg needs --sweep"
					       : "--svg needs a file");
	int rc = cli_resolve_run(&ra, a);
	if (rc) {
		cli_resolve_release(&ra);
		return rc;
	}
	pwb_engine_guard guard = {0};
	if ((rc = cli_guard_open(a, &eo, &guard.engine))) {
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
	groups gs = {0};
	cli_sweep sw = {0};
	if (pwb_labelled_load(&set, data, ra.policy, &diag)) {
		cli_print_diag(&diag);
		goto out;
	}
	if (!(b = cli_bounds_open(&ra, lexicons, model, &guard)))
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
		const char *gv = group_by ? pwb_labelled_meta(t, group_by) : NULL;
		if ((group_by && !group_count(&gs, gv ? gv : "(none)",
					      t->unsafe, blocked)) ||
		    (sweep && !cli_sweep_add(&sw, d, t->unsafe))) {
			pwb_decision_free(d);
			free(labelled);
			fprintf(stderr, "error: out of memory\n");
			goto out;
		}
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
	binary_json(root, &bin);
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
	json_t *gj = json_object();
	for (size_t i = 0; i < gs.n; i++) {
		json_t *o = json_object();
		binary_json(o, &gs.v[i].c);
		json_object_set_new(gj, gs.v[i].value, o);
	}
	if (group_by) {
		json_object_set_new(root, "group_by", json_string(group_by));
		json_object_set_new(root, "groups", gj);
	} else {
		json_decref(gj);
	}
	json_t *curve = sweep ? cli_sweep_json(&sw) : NULL;
	if (sweep && !curve) {
		fprintf(stderr, "error: out of memory\n");
		goto out;
	}
	if (curve)
		json_object_set_new(root, "sweep", curve);
	if (svg && !cli_sweep_svg(curve, svg, data))
		goto out;
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
		if (group_by)
			printf("by %s:\n", group_by);
		for (size_t i = 0; i < gs.n; i++) {
			const counts *c = &gs.v[i].c;
			size_t nu = c->tp + c->fn, ns = c->fp + c->tn;
			char bu[16], bs[16];
			json_t *x = ratio(c->tp, nu), *y = ratio(c->fp, ns);
			fmt_ratio(x, bu);
			fmt_ratio(y, bs);
			json_decref(x);
			json_decref(y);
			printf("  %-28s out of bounds %5zu blocked %s  within "
			       "%5zu blocked %s\n",
			       gs.v[i].value, nu, bu, ns, bs);
		}
		if (curve)
			print_sweep(curve);
	}
	rc = fflush(stdout) == 0 ? CLI_OK : CLI_FAIL;
out:
	json_decref(root);
	cli_sweep_release(&sw);
	free(gs.v);
	free(per);
	free(n_pos);
	pwb_bounds_free(b);
	pwb_engine_free(guard.engine);
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
