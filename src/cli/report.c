/* report.c - `pwb report datasheet|risks`: reports for auditors
 * (docs/report.md, docs/RISKS.md). */
#include "cli/cli.h"
#include "util/util.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

static const char report_usage[] =
    "Usage: pwb report datasheet --db URL --org ID [options]\n"
    "       pwb report risks --db URL --org ID [options]\n"
    "\n"
    "Run 'pwb report SUBCOMMAND --help' for the options of each.\n";

/* The options every report takes; NAME is the report's file name. */
#define REPORT_OPTIONS(NAME)                                                   \
	"Options:\n"                                                           \
	"  --db URL             sqlite:PATH or postgres://... "                \
	"(docs/store.md)\n"                                                    \
	"  --org ID             the organisation\n"                            \
	"  --policies DIR       the policy folder (default: the one the "      \
	"store\n"                                                              \
	"                       recorded)\n"                                   \
	"  --since DATE         the period's first day, YYYY-MM-DD (UTC) or\n" \
	"                       unix seconds (default: the beginning)\n"       \
	"  --until DATE         the day after its last, the same forms\n"      \
	"                       (default: now)\n"                              \
	"  --prefs MODEL        the population preference model the users'\n"  \
	"                       models were learnt against (pwb serve "        \
	"--prefs)\n"                                                           \
	"  --out DIR            write DIR/" NAME ".json and DIR/" NAME         \
	".html (the page;\n"                                                   \
	"                       DIR made if missing); without it, the JSON\n"  \
	"                       goes to standard output\n"                     \
	"  --now SECONDS        the report's time (default: now)\n"            \
	"  -h, --help           show this help\n"

static const char datasheet_usage[] =
    "Usage: pwb report datasheet --db URL --org ID [options]\n"
    "\n"
    "The alignment datasheet of an org (docs/report.md): whose feedback\n"
    "its models are aligned to (raters by role and by the attributes they\n"
    "consented to, feedback per rater with its Gini and top shares), the\n"
    "decisions by verdict and the blocks by tier, category and day, how\n"
    "far users' models stray from the population model, and the policy\n"
    "hashes in force. Every figure names the rows it counts and the\n"
    "period. It reads aggregates only: no user content, no user ids.\n"
    "\n" REPORT_OPTIONS("datasheet") "\n"
				     "Example:\n"
				     "  pwb report datasheet --db "
				     "sqlite:pwb.db --org acme-tutor \\\n"
				     "      --since 2026-01-01 --out reports\n"
				     "\n"
				     "Exit status: 0 on success, 1 on an "
				     "error, 2 on a usage error.\n";

static const char risks_usage[] =
    "Usage: pwb report risks --db URL --org ID [options]\n"
    "\n"
    "The risk register of an org (docs/RISKS.md): for individuals and for\n"
    "society, the benefits and risks of personalisation (efficiency and\n"
    "autonomy; echo chambers; over-reliance and anthropomorphism; privacy\n"
    "and profiling; malicious use through personal settings; unequal\n"
    "quality across groups; concentration of influence in few raters),\n"
    "each with the indicators pwb computes from the store, a traffic light\n"
    "against thresholds, and the policy settings that mitigate it.\n"
    "\n" REPORT_OPTIONS("risks") "\n"
				 "Example:\n"
				 "  pwb report risks --db sqlite:pwb.db --org "
				 "acme-tutor --out reports\n"
				 "\n"
				 "Exit status: 0 on success, 1 on an error, 2 "
				 "on a usage error.\n";

static int write_text(void *user, int fd)
{
	const char *text = user;
	return pwb__write_all(fd, text, strlen(text)) ? errno : 0;
}

/* DIR/NAME.json and DIR/NAME.html, each written whole or not at all;
 * their paths printed. */
static int write_out(cli_args *a, const char *out, const char *name,
		     const char *json, pwb_diag *d)
{
	if (mkdir(out, 0755) != 0 && errno != EEXIST) {
		fprintf(stderr, "%s: error: cannot make %s: %s\n", a->cmd, out,
			strerror(errno));
		return CLI_FAIL;
	}
	char *html = NULL;
	if (pwb_report_html(json, &html, d)) {
		cli_print_diag(d);
		return CLI_FAIL;
	}
	const char *ext[] = {"json", "html"};
	const char *text[] = {json, html};
	int rc = CLI_OK;
	for (size_t i = 0; !rc && i < 2; i++) {
		char path[4096];
		if ((size_t)snprintf(path, sizeof(path), "%s/%s.%s", out, name,
				     ext[i]) >= sizeof(path)) {
			fprintf(stderr, "%s: error: %s: path too long\n",
				a->cmd, out);
			rc = CLI_FAIL;
		} else if (pwb__replace_file(path, write_text, (void *)text[i],
					     d)) {
			cli_print_diag(d);
			rc = CLI_FAIL;
		} else {
			printf("%s\n", path);
		}
	}
	free(html);
	return rc;
}

typedef pwb_status (*report_fn)(pwb_store *s, const pwb_report_params *p,
				char **json, pwb_diag *diag);

/* A report command: its options, the store, the policy, the report. */
static int run_report(cli_args *a, const char *usage, const char *name,
		      report_fn make)
{
	const char *db = NULL, *org = NULL, *policies = NULL, *since = NULL,
		   *until = NULL, *prefs = NULL, *out = NULL;
	int64_t now = cli_time_now();
	const cli_spec spec[] = {
	    CLI_OPT_NEED("db", db, "URL"),     CLI_OPT_NEED("org", org, "ID"),
	    CLI_OPT_STR("policies", policies), CLI_OPT_STR("since", since),
	    CLI_OPT_STR("until", until),       CLI_OPT_STR("prefs", prefs),
	    CLI_OPT_STR("out", out),	       CLI_OPT_NOW(now)};
	int rc = cli_parse(a, spec, PWB_ARRAY_LEN(spec), usage, NULL);
	if (rc)
		return cli_parsed(rc);
	pwb_report_params p = {.org = org, .now = now};
	if (since && !pwb_report_parse_date(since, &p.since))
		return cli_usage_error(a,
				       "--since takes YYYY-MM-DD or unix "
				       "seconds, not '%s'",
				       since);
	if (until && !pwb_report_parse_date(until, &p.until))
		return cli_usage_error(a,
				       "--until takes YYYY-MM-DD or unix "
				       "seconds, not '%s'",
				       until);
	if (until && p.until <= p.since)
		return cli_usage_error(a, "--until must be after --since");
	/* A report reads: a store that is not there is an error. */
	pwb_store *s = cli_store_open_mode(db, PWB_STORE_EXISTING, NULL);
	if (!s)
		return CLI_FAIL;
	char *dir = NULL;
	cli_resolve r = {0};
	pwb_prefs_model *pm = NULL;
	char *json = NULL;
	pwb_diag d;
	pwb_diag_init(&d);
	rc = cli_store_policies_for(a, s, policies, &dir);
	if (!rc) {
		r.policies = dir;
		r.org = org;
		rc = cli_resolve_run(&r, a);
	}
	if (!rc)
		rc = cli_store_org(s, org);
	if (!rc && prefs && pwb_prefs_load(&pm, prefs, &d)) {
		cli_print_diag(&d);
		rc = CLI_FAIL;
	}
	if (!rc) {
		p.policy = r.policy;
		p.prefs = pm;
		pwb_status st = make(s, &p, &json, &d);
		if (st) {
			char what[64];
			snprintf(what, sizeof(what), "make the %s report",
				 name);
			cli_store_report(s, what, st, &d);
			rc = CLI_FAIL;
		}
	}
	if (!rc && out)
		rc = write_out(a, out, name, json, &d);
	else if (!rc)
		printf("%s\n", json);
	free(json);
	pwb_prefs_model_free(pm);
	cli_resolve_release(&r);
	free(dir);
	pwb_store_free(s);
	pwb_diag_release(&d);
	return rc;
}

static int cmd_datasheet(cli_args *a)
{
	return run_report(a, datasheet_usage, "datasheet",
			  pwb_report_datasheet);
}

static int cmd_risks(cli_args *a)
{
	return run_report(a, risks_usage, "risks", pwb_report_risks);
}

int cli_reports(int argc, char **argv)
{
	static const cli_sub subs[] = {{"datasheet", cmd_datasheet},
				       {"risks", cmd_risks}};
	return cli_dispatch(argc, argv, "report", report_usage, subs,
			    PWB_ARRAY_LEN(subs));
}
