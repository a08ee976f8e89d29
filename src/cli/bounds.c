/* bounds.c - `pwb bounds check`: a text against the effective policy. */
#include "cli/cli.h"
#include "util/util.h"

#include <stdlib.h>
#include <string.h>

static const char bounds_usage[] =
    "Usage: pwb bounds check --policies DIR --org ID [options] TEXT|-\n"
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
    "  --model FILE         a linear model from 'pwb bounds train'\n"
    "  --json               print the decision as JSON (docs/bounds.md)\n"
    "  -h, --help           show this help\n"
    "\n"
    "Exit status: 0 when the text was checked (whatever the verdict), 1 on\n"
    "an error, 2 on a usage error.\n";

static void print_decision(const pwb_decision *d, const char *text)
{
	printf("verdict: %s\n", pwb_verdict_str(pwb_decision_verdict(d)));
	const pwb_cat_decision *bb = pwb_decision_blocked_by(d);
	if (bb) {
		printf("blocked by: %s",
		       bb->permission == PWB_FORBID ? bb->set_by.tier
						    : "your own setting");
		if (bb->permission == PWB_FORBID) {
			printf(" (%s", bb->set_by.source);
			if (bb->set_by.file)
				printf(", %s:%d", bb->set_by.file,
				       bb->set_by.line);
			printf(")");
			if (bb->set_by.basis)
				printf(": %s", bb->set_by.basis);
		}
		printf(", category %s\n", bb->category);
		printf("refusal: %s\n", pwb_decision_refusal(d));
	}
	if (pwb_decision_redacted(d))
		printf("redacted: %s\n", pwb_decision_redacted(d));
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
		for (size_t k = 0; k < c->n_spans; k++) {
			const pwb_span *s = &c->spans[k];
			int n = (int)(s->end - s->start);
			printf("    [%zu, %zu) \"%.*s\" %s: %s\n", s->start,
			       s->end, n > 60 ? 60 : n, text + s->start,
			       s->detector, s->what);
		}
	}
	if (!any)
		printf("detected: nothing\n");
}

static int cmd_check(cli_args *a)
{
	static const cli_opt opts[] = {
	    CLI_RESOLVE_OPTS, {"role", true},  {"lexicons", true},
	    {"model", true},  {"json", false}, {"help", false}};
	cli_resolve ra = {0};
	const char *text_arg = NULL, *lexicons = NULL, *model = NULL;
	pwb_role role = PWB_ROLE_PROMPT;
	bool json = false;
	const char *name, *value;
	int r;
	while ((r = cli_next(a, opts, PWB_ARRAY_LEN(opts), &name, &value)) >=
	       0) {
		if (r == 0) {
			if (text_arg)
				return cli_usage_error(
				    a, "give one TEXT (quote it) or '-'");
			text_arg = value;
		} else if (!strcmp(name, "help")) {
			fputs(check_usage, stdout);
			return CLI_OK;
		} else if (!strcmp(name, "role")) {
			if (!pwb_role_parse(value, &role))
				return cli_usage_error(
				    a, "--role is prompt or response, not '%s'",
				    value);
		} else if (!strcmp(name, "lexicons")) {
			lexicons = value;
		} else if (!strcmp(name, "model")) {
			model = value;
		} else if (!strcmp(name, "json")) {
			json = true;
		} else if (cli_resolve_opt(&ra, a, name, value)) {
			return CLI_USAGE;
		}
	}
	if (r == -2)
		return CLI_USAGE;
	if (!text_arg)
		return cli_usage_error(a, "give the TEXT to check, or '-' to "
					  "read it from standard input");
	int rc = cli_resolve_run(&ra, a);
	if (rc) {
		cli_resolve_release(&ra);
		return rc;
	}
	rc = CLI_FAIL;
	char *text = NULL, *lexdir = NULL, *out = NULL;
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
	pwb_bounds_params bp = pwb_bounds_default_params();
	if (lexicons) {
		bp.lexicon_dir = lexicons;
	} else {
		pwb__buf p;
		pwb__buf_init(&p, 0);
		pwb__buf_addf(&p, "%s/lexicons", ra.policies);
		lexdir = pwb__buf_detach(&p);
		bp.lexicon_dir = lexdir;
	}
	bp.model = model;
	if (pwb_bounds_new(&b, ra.policy, &bp, &diag)) {
		cli_print_diag(&diag);
		goto out;
	}
	pwb_status st =
	    pwb_bounds_check(&d, b, ra.effective, role, text, len, &diag);
	if (st) {
		if (!diag.n)
			fprintf(stderr, "error: %s\n", pwb_status_str(st));
		cli_print_diag(&diag);
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
	free(text);
	free(lexdir);
	pwb_diag_release(&diag);
	cli_resolve_release(&ra);
	return rc;
}

int cli_bounds(int argc, char **argv)
{
	if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
		fputs(bounds_usage, argc < 2 ? stderr : stdout);
		return argc < 2 ? CLI_USAGE : CLI_OK;
	}
	const char *sub = argv[1];
	char cmd[64];
	snprintf(cmd, sizeof(cmd), "pwb bounds %s", sub);
	cli_args a = {argc, argv, 2, cmd};
	if (!strcmp(sub, "check"))
		return cmd_check(&a);
	fprintf(stderr,
		"pwb bounds: unknown subcommand '%s'\nTry 'pwb bounds "
		"--help'.\n",
		sub);
	return CLI_USAGE;
}
