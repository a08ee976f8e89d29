/* bounds.c - `pwb bounds check`: a text against the effective policy. */
#include "cli/cli.h"
#include "util/util.h"

#include <stdlib.h>
#include <string.h>

static const char bounds_usage[] =
    "Usage: pwb bounds check --policies DIR --org ID [options] TEXT|-\n"
    "       pwb bounds train --data FILE.jsonl --out FILE [options]\n"
    "\n"
    "Run 'pwb bounds SUBCOMMAND --help' for the options of each.\n";

static const char check_usage[] =
    "Usage: pwb bounds check --policies DIR --org ID [options] TEXT|-\n"
    "\n"
    "Checks TEXT (or standard input, with '-') against the effective\n"
    "policy of the org and user: every category's score, threshold,\n"
    "permission and verdict (allow, annotate, redact, block). A blocking\n"
    "decision names the tier, source, category and basis, and gives the\n"
    "refusal the user would see.\n"
    "\n"
    "Options:\n" CLI_RESOLVE_HELP
    "  --role prompt|response  what the text is (default prompt)\n"
    "  --lexicons DIR       lexicon files (default DIR/lexicons of "
    "--policies)\n"
    "  --model FILE         a linear model from 'pwb bounds train'\n" CLI_HELP_GUARD
    "  --json               print the decision as JSON (docs/bounds.md)\n"
    "  -h, --help           show this help\n"
    "\n"
    "A TEXT that starts with '-' goes after '--': ... -- '-x'.\n"
    "\n" CLI_HELP_CACHE_ENV "\n"
    "Example:\n"
    "  pwb bounds check --policies policies --org acme-tutor "
    "\"Tell me a joke\"\n"
    "\n"
    "Exit status: 0 when the text was checked (whatever the verdict), 1 on\n"
    "an error (also a guard judge that fails or answers neither safe nor\n"
    "unsafe: nothing passes unjudged), 2 on a usage error.\n";

/* One block: who (tier, source, rule, basis) and which category. */
static void print_block(const char *label, const pwb_cat_decision *c)
{
	pwb_tier tier = pwb_cat_decision_block_tier(c);
	printf("%s: %s", label,
	       tier != PWB_TIER_USER ? pwb_tier_str(tier) : "your own setting");
	if (tier != PWB_TIER_USER) {
		printf(" (%s", c->set_by.source);
		if (c->set_by.file)
			printf(", %s:%d", c->set_by.file, c->set_by.line);
		printf(")");
		if (c->set_by.basis)
			printf(": %s", c->set_by.basis);
	}
	printf(", category %s\n", c->category);
}

/* A category's spans, the text they cover cut at 60 bytes. */
static void print_spans(const pwb_cat_decision *c, const char *text)
{
	for (size_t k = 0; k < c->n_spans; k++) {
		const pwb_span *s = &c->spans[k];
		int n = (int)(s->end - s->start);
		printf("    [%zu, %zu) \"%.*s\" %s: %s\n", s->start, s->end,
		       n > 60 ? 60 : n, text + s->start, s->detector, s->what);
	}
	if (c->n_spans_omitted)
		printf("    ... and %zu more spans, not listed\n",
		       c->n_spans_omitted);
}

/* How much context lowered a category's score, when it did. */
static void print_context(const pwb_cat_decision *c)
{
	if (c->context_factor < 1.0)
		printf("    lowered by context: x%.2f (%.2f without it)\n",
		       c->context_factor, c->score_without_context);
}

static void print_decision(const pwb_decision *d, const char *text)
{
	printf("verdict: %s\n", pwb_verdict_str(pwb_decision_verdict(d)));
	for (size_t i = 0; i < pwb_decision_n_blocking(d); i++)
		print_block(i ? "also blocked by" : "blocked by",
			    pwb_decision_blocking(d, i));
	if (pwb_decision_refusal(d))
		printf("refusal: %s\n", pwb_decision_refusal(d));
	for (size_t i = 0; i < pwb_decision_n_help(d); i++) {
		const pwb_dec_help *h = pwb_decision_help(d, i);
		printf("help: %s (%s, for %s; %s)\n", h->text, h->jurisdiction,
		       h->category, h->source);
	}
	if (pwb_decision_redacted(d)) {
		/* The input's bytes as they are, NUL bytes too. */
		printf("redacted: ");
		fwrite(pwb_decision_redacted(d), 1,
		       pwb_decision_redacted_len(d), stdout);
		printf("\n");
	}
	if (pwb_decision_n_obligations(d))
		printf("obligations:\n");
	for (size_t i = 0; i < pwb_decision_n_obligations(d); i++) {
		const pwb_dec_obligation *o = pwb_decision_obligation(d, i);
		printf(
		    "  %s (%s%s%s, %s; %s): %s\n", o->id, o->kind,
		    o->category ? " on " : "", o->category ? o->category : "",
		    pwb_placement_str(o->placement), o->set_by.source, o->text);
	}
	bool any = false;
	for (size_t i = 0; i < pwb_decision_n_categories(d); i++) {
		const pwb_cat_decision *c = pwb_decision_category(d, i);
		if (!c->detected)
			continue;
		if (!any)
			printf("detected:\n");
		any = true;
		printf("  %-28s score %.2f >= %.2f (%s), %s, %s -> %s\n",
		       c->category, c->score, c->threshold, c->detector,
		       pwb_permission_str(c->permission),
		       c->active ? "on" : "off", pwb_verdict_str(c->verdict));
		print_context(c);
		print_spans(c, text);
	}
	if (!any)
		printf("detected: nothing\n");
	/* Categories that context kept below their threshold, with the
	 * frame that lowered them (docs/bounds.md, "Context"). */
	any = false;
	for (size_t i = 0; i < pwb_decision_n_categories(d); i++) {
		const pwb_cat_decision *c = pwb_decision_category(d, i);
		if (c->detected || c->context_factor >= 1.0)
			continue;
		if (!any)
			printf("lowered by context, not detected:\n");
		any = true;
		printf("  %-28s score %.2f < %.2f (%s)\n", c->category,
		       c->score, c->threshold,
		       c->detector ? c->detector : "none");
		print_context(c);
		print_spans(c, text);
	}
}

static int cmd_check(cli_args *a)
{
	cli_resolve ra = {0};
	const char *role_s = "prompt", *lexicons = NULL, *model = NULL;
	pwb_role role = PWB_ROLE_PROMPT;
	bool json = false;
	cli_list pos = {0};
	cli_engine_opts eo = {0};
	const cli_spec spec[] = {
	    CLI_RESOLVE_SPEC(&ra), CLI_OPT_STR("role", role_s),
	    CLI_OPT_STR("lexicons", lexicons), CLI_OPT_STR("model", model),
	    CLI_OPT_FLAG("json", json), CLI_GUARD_SPEC(&eo),
	    /* 'pwb ask' and 'pwb chat' call the linear model --detector. */
	    CLI_OPT_REFUSE(
		"detector",
		"bounds check has no --detector: the detectors (lexicon, pii, "
		"linear, guard) are named for each category in the registry, "
		"DIR/categories.yaml; give the linear detector's model (from "
		"'pwb bounds train') with --model FILE")};
	int r = cli_parse(a, spec, PWB_ARRAY_LEN(spec), check_usage, &pos);
	if (r)
		return cli_parsed(r);
	if (!pwb_role_parse(role_s, &role))
		return cli_usage_error(
		    a, "--role is prompt or response, not '%s'", role_s);
	if (pos.n > 1)
		return cli_usage_error(a, "give one TEXT (quote it) or '-'");
	const char *text_arg = pos.n ? pos.v[0] : NULL;
	if (!text_arg)
		return cli_usage_error(a, "give the TEXT to check, or '-' to "
					  "read it from standard input");
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
	char *text = NULL, *out = NULL;
	size_t len = 0;
	pwb_bounds *b = NULL;
	pwb_decision *d = NULL;
	pwb_diag diag;
	pwb_diag_init(&diag);
	if (!strcmp(text_arg, "-")) {
		if (!(text = cli_read_file("-", PWB_BOUNDS_MAX_TEXT, &len)))
			goto out;
	} else {
		len = strlen(text_arg);
		if (!(text = strdup(text_arg)))
			goto out;
	}
	if (!(b = cli_bounds_open(&ra, lexicons, model, &guard)))
		goto out;
	pwb_status st =
	    pwb_bounds_check(&d, b, ra.effective, role, text, len, &diag);
	if (st) {
		cli_report(NULL, st, &diag);
		goto out;
	}
	if (json) {
		if (pwb_decision_to_json(d, &out)) {
			fprintf(stderr, "error: out of memory\n");
			goto out;
		}
		printf("%s\n", out);
	} else {
		print_decision(d, text);
	}
	rc = fflush(stdout) == 0 ? CLI_OK : CLI_FAIL;
out:
	free(out);
	pwb_decision_free(d);
	pwb_bounds_free(b);
	pwb_engine_free(guard.engine);
	free(text);
	pwb_diag_release(&diag);
	cli_resolve_release(&ra);
	return rc;
}

static const char train_usage[] =
    "Usage: pwb bounds train --data FILE.jsonl --out FILE --policies DIR "
    "[options]\n"
    "\n"
    "Trains the linear detector (docs/bounds.md) on labelled texts, holding\n"
    "out a validation split, and prints each category's validation\n"
    "precision and recall. The model's labels are the category ids of the\n"
    "data; texts labelled only \"*\" are left out of training.\n"
    "\n"
    "FILE.jsonl has one JSON object a line (docs/bounds.md, \"Labelled\n"
    "texts\"):\n"
    "  {\"id\": \"x1\", \"text\": \"...\", \"role\": \"prompt\", "
    "\"labels\": [\"hate\"]}\n"
    "\"text\" and \"labels\" are required; labels are category ids of\n"
    "DIR/categories.yaml (an unknown one is an error naming the line), []\n"
    "means within bounds and \"*\" out of bounds, category not given.\n"
    "\n"
    "Options:\n"
    "  --data FILE          the labelled texts\n"
    "  --out FILE           where to write the model (atomically)\n"
    "  --policies DIR       the policy folder whose categories.yaml the\n"
    "                       labels are checked against\n"
    "  --hash-bits N        feature space 2^N, 10..24 (default 18)\n"
    "  --epochs N           passes over the data (default 5)\n"
    "  --l2 X               L2 regularisation (default 1e-6)\n"
    "  --learning-rate X    AdaGrad's initial step (default 0.5)\n"
    "  --valid FRACTION     held out for validation (default 0.2)\n"
    "  --seed N             shuffling and the split (default 1)\n"
    "  --max-false-positives RATE\n"
    "                       set each category's threshold so that at most\n"
    "                       RATE of the validation texts without it reach\n"
    "                       it, never below 0.5 (default 0: 0.5)\n"
    "  --no-class-weights   weigh positives and negatives alike\n"
    "  --features LIST      context features, comma-separated: negation\n"
    "                       (words after not, nicht, ne ... pas), quotes\n"
    "                       (words inside quotation marks), or none\n"
    "                       (default: none)\n"
    "  --json               print the validation report as JSON\n"
    "  -h, --help           show this help\n"
    "\n"
    "Example:\n"
    "  pwb bounds train --data labelled.jsonl --out model.pwbm "
    "--policies policies\n"
    "\n"
    "Exit status: 0 when the model was written, 1 on an error (a bad line\n"
    "of FILE, naming it; nothing is written), 2 on a usage error.\n";

static void train_progress(void *user, double done)
{
	cli_progress_update(user, (size_t)(done * 1000));
}

/* --features LIST into bits; false on a name that is not one. */
static bool parse_features(const char *list, unsigned *out)
{
	static const struct {
		const char *name;
		unsigned bit;
	} names[] = {{"none", 0},
		     {"negation", PWB_BOUNDS_FEATURE_NEGATION},
		     {"quotes", PWB_BOUNDS_FEATURE_QUOTES}};
	unsigned bits = 0;
	for (const char *p = list;;) {
		size_t n = strcspn(p, ",");
		size_t k = 0;
		while (k < PWB_ARRAY_LEN(names) &&
		       !(strlen(names[k].name) == n &&
			 !strncmp(names[k].name, p, n)))
			k++;
		if (k == PWB_ARRAY_LEN(names))
			return false;
		bits |= names[k].bit;
		if (!p[n])
			break;
		p += n + 1;
	}
	*out = bits;
	return true;
}

static int cmd_train(cli_args *a)
{
	const char *data = NULL, *outp = NULL, *policies = NULL;
	const char *features = NULL;
	bool as_json = false, no_weights = false;
	pwb_bounds_train_params tp = pwb_bounds_train_default_params();
	const cli_spec spec[] = {
	    CLI_OPT_NEED("data", data, "FILE"),
	    CLI_OPT_NEED("out", outp, "FILE"),
	    CLI_OPT_NEED("policies", policies, "DIR"),
	    CLI_OPT_UINT("hash-bits", tp.hash_bits, 10, 24),
	    CLI_OPT_UINT("epochs", tp.epochs, 1, 1000),
	    CLI_OPT_NUM("l2", tp.l2, 0, 1),
	    CLI_OPT_NUM("learning-rate", tp.learning_rate, 1e-6, 100),
	    CLI_OPT_NUM("valid", tp.valid_fraction, 0, 0.9),
	    CLI_OPT_UINT("seed", tp.seed, 0, INT64_MAX),
	    CLI_OPT_NUM("max-false-positives", tp.max_false_positives, 0, 0.5),
	    CLI_OPT_FLAG("no-class-weights", no_weights),
	    CLI_OPT_STR("features", features),
	    CLI_OPT_FLAG("json", as_json)};
	int r = cli_parse(a, spec, PWB_ARRAY_LEN(spec), train_usage, NULL);
	if (r)
		return cli_parsed(r);
	tp.class_weights = !no_weights;
	if (features && !parse_features(features, &tp.features))
		return cli_usage_error(a,
				       "--features '%s': give negation, quotes "
				       "or none, comma-separated",
				       features);
	int rc = CLI_FAIL;
	pwb_diag diag;
	pwb_diag_init(&diag);
	pwb_policy *policy = NULL;
	pwb_labelled_set *set = NULL;
	pwb_bounds_train_report rep = {0};
	if (policies &&
	    pwb_policy_load(&policy, policies, NULL, &diag) != PWB_OK) {
		cli_print_diag(&diag);
		goto out;
	}
	if (pwb_labelled_load(&set, data, policy, &diag)) {
		cli_print_diag(&diag);
		goto out;
	}
	cli_progress pr;
	cli_progress_start(&pr, "training", 1000);
	tp.progress = train_progress;
	tp.progress_user = &pr;
	pwb_status st = pwb_bounds_train(set, data, outp, &tp, &rep, &diag);
	cli_progress_end(&pr);
	if (st) {
		cli_print_diag(&diag);
		goto out;
	}
	if (as_json) {
		printf(
		    "{\"model\": \"%s\", \"n_train\": %zu, \"n_valid\": %zu, "
		    "\"categories\": {",
		    outp, rep.n_train, rep.n_valid);
		for (size_t j = 0; j < rep.n_labels; j++)
			printf(
			    "%s\"%s\": {\"n_valid_pos\": %zu, \"precision\": "
			    "%.4f, \"recall\": %.4f, \"threshold\": %.4f}",
			    j ? ", " : "", rep.labels[j].category,
			    rep.labels[j].n_valid_pos, rep.labels[j].precision,
			    rep.labels[j].recall, rep.labels[j].threshold);
		printf("}}\n");
	} else {
		printf("model: %s (%zu labels, trained on %zu texts, validated "
		       "on %zu)\n",
		       outp, rep.n_labels, rep.n_train, rep.n_valid);
		printf("  %-28s %9s %9s %9s %9s\n", "category", "positives",
		       "precision", "recall", "threshold");
		for (size_t j = 0; j < rep.n_labels; j++)
			printf("  %-28s %9zu %9.3f %9.3f %9.3f\n",
			       rep.labels[j].category,
			       rep.labels[j].n_valid_pos,
			       rep.labels[j].precision, rep.labels[j].recall,
			       rep.labels[j].threshold);
	}
	rc = fflush(stdout) == 0 ? CLI_OK : CLI_FAIL;
out:
	pwb_bounds_train_report_release(&rep);
	pwb_labelled_free(set);
	pwb_policy_free(policy);
	pwb_diag_release(&diag);
	return rc;
}

pwb_bounds *cli_bounds_open(const cli_resolve *r, const char *lexicons,
			    const char *model, pwb_engine_guard *guard)
{
	pwb_bounds_params bp = pwb_bounds_default_params();
	pwb__buf dir;
	pwb__buf_init(&dir, 0);
	if (!lexicons) {
		pwb__buf_addf(&dir, "%s/lexicons", r->policies);
		lexicons = dir.s;
	}
	bp.lexicon_dir = lexicons;
	bp.model = model;
	bp.cache_dir = cli_cache_dir();
	bp.log = cli_log;
	if (guard && guard->engine) {
		bp.guard = pwb_engine_guard_fn;
		bp.guard_user = guard;
	}
	pwb_bounds *b = NULL;
	pwb_diag diag;
	pwb_diag_init(&diag);
	pwb_status st =
	    dir.err ? dir.err : pwb_bounds_new(&b, r->policy, &bp, &diag);
	if (st) {
		cli_report(NULL, st, &diag);
	}
	pwb_diag_release(&diag);
	pwb__buf_release(&dir);
	return b;
}

int cli_bounds(int argc, char **argv)
{
	static const cli_sub subs[] = {{"check", cmd_check},
				       {"train", cmd_train}};
	return cli_dispatch(argc, argv, "bounds", bounds_usage, subs,
			    PWB_ARRAY_LEN(subs));
}
