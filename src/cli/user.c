/* user.c - `pwb user export|erase`: a user's data rights. */
#include "cli/cli.h"
#include "util/util.h"

#include <stdlib.h>
#include <string.h>

static const char user_usage[] =
    "Usage: pwb user export --db URL --org ID --user ID\n"
    "       pwb user erase  --db URL --org ID --user ID\n"
    "\n"
    "Run 'pwb user SUBCOMMAND --help' for the options of each.\n";

static const char export_usage[] =
    "Usage: pwb user export --db URL --org ID --user ID\n"
    "\n"
    "Prints everything stored about a user as one JSON document: profile\n"
    "(settings, consent, model), feedback, decisions, API keys and the\n"
    "audit rows about them (docs/store.md). For an erased user, only the\n"
    "tombstone.\n"
    "\n"
    "Options:\n"
    "  --db URL             sqlite:PATH or postgres://... (docs/store.md)\n"
    "  --org ID             the user's organisation\n"
    "  --user ID            the user\n"
    "  -h, --help           show this help\n"
    "\n"
    "Exit status: 0 on success, 1 when the store knows no such user or\n"
    "cannot be read, 2 on a usage error.\n";

static const char erase_usage[] =
    "Usage: pwb user erase --db URL --org ID --user ID [--now SECONDS]\n"
    "\n"
    "Erases a user: their settings, consent, model, feedback (texts and\n"
    "features), decisions and API keys, in one transaction, and appends a\n"
    "tombstone to the audit chain. The user's id stays, marked erased, so\n"
    "that nothing more is stored about them. Erasing twice changes\n"
    "nothing.\n"
    "\n"
    "Options:\n"
    "  --db URL             sqlite:PATH or postgres://... (docs/store.md)\n"
    "  --org ID             the user's organisation\n"
    "  --user ID            the user\n"
    "  --now SECONDS        the tombstone's unix time (default: now)\n"
    "  -h, --help           show this help\n"
    "\n"
    "Exit status: 0 on success, 1 when the store knows no such user or\n"
    "the erase failed (then nothing was erased), 2 on a usage error.\n";

typedef struct user_args {
	const char *db, *org, *user;
	int64_t now;
} user_args;

static int parse(cli_args *a, user_args *u, const char *usage, bool now)
{
	u->now = cli_time_now();
	const cli_spec spec[] = {
	    CLI_OPT_NEED("db", u->db, "URL"), CLI_OPT_NEED("org", u->org, "ID"),
	    CLI_OPT_NEED("user", u->user, "ID"), CLI_OPT_NOW(u->now)};
	/* --now only where the command writes. */
	return cli_parse(a, spec, PWB_ARRAY_LEN(spec) - !now, usage, NULL);
}

static int cmd_export(cli_args *a)
{
	user_args u = {0};
	int rc = parse(a, &u, export_usage, false);
	if (rc)
		return cli_parsed(rc);
	pwb_store *s = cli_store_open(u.db);
	if (!s)
		return CLI_FAIL;
	pwb_diag d;
	pwb_diag_init(&d);
	char *json = NULL;
	pwb_status st = pwb_store_user_export(s, u.org, u.user, &json, &d);
	pwb_store_free(s);
	if (st) {
		cli_report(NULL, st, &d);
		rc = CLI_FAIL;
	} else
		puts(json);
	free(json);
	pwb_diag_release(&d);
	return rc;
}

static int cmd_erase(cli_args *a)
{
	user_args u = {0};
	int rc = parse(a, &u, erase_usage, true);
	if (rc)
		return cli_parsed(rc);
	pwb_store *s = cli_store_open(u.db);
	if (!s)
		return CLI_FAIL;
	pwb_diag d;
	pwb_diag_init(&d);
	int64_t seq = 0;
	pwb_status st = pwb_store_user_erase(s, u.org, u.user, u.now, &seq, &d);
	pwb_store_free(s);
	if (st) {
		cli_report(NULL, st, &d);
		rc = CLI_FAIL;
	} else if (seq)
		printf("erased user %s of org %s; tombstone at audit row "
		       "%lld\n",
		       u.user, u.org, (long long)seq);
	else
		printf("user %s of org %s was already erased\n", u.user, u.org);
	pwb_diag_release(&d);
	return rc;
}

int cli_user(int argc, char **argv)
{
	static const cli_sub subs[] = {{"export", cmd_export},
				       {"erase", cmd_erase}};
	return cli_dispatch(argc, argv, "user", user_usage, subs,
			    PWB_ARRAY_LEN(subs));
}
