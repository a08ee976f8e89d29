/* keys.c - `pwb keys create|revoke`: API keys, stored as keyed hashes. */
#include "cli/cli.h"
#include "util/util.h"

#include <sodium.h>
#include <stdlib.h>
#include <string.h>

static const char keys_usage[] =
    "Usage: pwb keys create --db URL --org ID --role ROLE [--user ID]\n"
    "       pwb keys revoke --db URL --org ID KEY_ID\n"
    "\n"
    "Run 'pwb keys SUBCOMMAND --help' for the options of each.\n";

static const char create_usage[] =
    "Usage: pwb keys create --db URL --org ID --role ROLE [--user ID]\n"
    "\n"
    "Makes a random API key and prints it once, alone on the last line of\n"
    "standard output. The store keeps only a keyed BLAKE2b hash of it\n"
    "(keyed by $PWB_KEY_SECRET when set, else by the database's own\n"
    "secret; docs/store.md), so a lost key cannot be shown again: revoke\n"
    "it and make another.\n"
    "\n"
    "Roles (DESIGN §9):\n"
    "  service   an org's backend; acts for any user of its org\n"
    "  user      one user (--user ID), themselves only\n"
    "  auditor   reports and the audit chain; no user content\n"
    "  admin     org policy reload\n"
    "\n"
    "Options:\n"
    "  --db URL             sqlite:PATH or postgres://... (docs/store.md)\n"
    "  --org ID             the organisation the key belongs to\n"
    "  --role ROLE          service, user, auditor or admin\n"
    "  --user ID            the user of a user key\n"
    "  --now SECONDS        the creation's unix time (default: now)\n"
    "  -h, --help           show this help\n"
    "\n"
    "Environment:\n"
    "  PWB_KEY_SECRET       the secret that keys the hashes; keep it out\n"
    "                       of the database and the same on every replica\n"
    "\n"
    "Exit status: 0 on success, 1 on an error, 2 on a usage error.\n";

static const char revoke_usage[] =
    "Usage: pwb keys revoke --db URL --org ID KEY_ID\n"
    "\n"
    "Revokes a key by its id (printed by 'pwb keys create'); it stops\n"
    "working at once. The revocation is recorded in the audit chain.\n"
    "\n"
    "Options:\n"
    "  --db URL             sqlite:PATH or postgres://... (docs/store.md)\n"
    "  --org ID             the organisation the key belongs to\n"
    "  --now SECONDS        the revocation's unix time (default: now)\n"
    "  -h, --help           show this help\n"
    "\n"
    "Exit status: 0 on success, 1 when the org has no such active key,\n"
    "2 on a usage error.\n";

static int cmd_create(cli_args *a)
{
	const char *db = NULL, *org = NULL, *user = NULL, *role_s = NULL;
	pwb_key_role role = PWB_KEY_SERVICE;
	int64_t now = cli_time_now();
	const cli_spec spec[] = {CLI_OPT_NEED("db", db, "URL"),
				 CLI_OPT_NEED("org", org, "ID"),
				 CLI_OPT_NEED("role", role_s, "ROLE"),
				 CLI_OPT_STR("user", user), CLI_OPT_NOW(now)};
	int r = cli_parse(a, spec, PWB_ARRAY_LEN(spec), create_usage, NULL);
	if (r)
		return cli_parsed(r);
	if (!pwb_key_role_parse(role_s, &role))
		return cli_usage_error(
		    a, "--role is service, user, auditor or admin, not '%s'",
		    role_s);
	if (role == PWB_KEY_USER && !user)
		return cli_usage_error(a, "a user key needs --user ID");
	if (role != PWB_KEY_USER && user)
		return cli_usage_error(a, "--user goes with --role user only");
	pwb_store *s = cli_store_open(db);
	if (!s)
		return CLI_FAIL;
	pwb_diag d;
	pwb_diag_init(&d);
	char *key = NULL, *id = NULL;
	pwb_status st =
	    pwb_store_key_create(s, org, role, user, now, &key, &id, &d);
	pwb_store_free(s);
	int rc = CLI_OK;
	if (st) {
		cli_report(NULL, st, &d);
		rc = CLI_FAIL;
	} else {
		printf("key id: %s\norg: %s\nrole: %s\n", id, org,
		       pwb_key_role_str(role));
		if (user)
			printf("user: %s\n", user);
		printf("the key is shown once, on the next line; store it "
		       "now:\n%s\n",
		       key);
		fflush(stdout);
		sodium_memzero(key, strlen(key));
	}
	free(key);
	free(id);
	pwb_diag_release(&d);
	return rc;
}

static int cmd_revoke(cli_args *a)
{
	const char *db = NULL, *org = NULL;
	int64_t now = cli_time_now();
	cli_list pos = {0};
	const cli_spec spec[] = {CLI_OPT_NEED("db", db, "URL"),
				 CLI_OPT_NEED("org", org, "ID"),
				 CLI_OPT_NOW(now)};
	int r = cli_parse(a, spec, PWB_ARRAY_LEN(spec), revoke_usage, &pos);
	if (r)
		return cli_parsed(r);
	if (pos.n > 1)
		return cli_usage_error(a, "give one KEY_ID");
	if (!pos.n)
		return cli_usage_error(a, "give the KEY_ID to revoke");
	const char *id = pos.v[0];
	pwb_store *s = cli_store_open(db);
	if (!s)
		return CLI_FAIL;
	pwb_diag d;
	pwb_diag_init(&d);
	pwb_status st = pwb_store_key_revoke(s, org, id, now, &d);
	pwb_store_free(s);
	if (st) {
		cli_report(NULL, st, &d);
	} else {
		printf("revoked key %s of org %s\n", id, org);
	}
	pwb_diag_release(&d);
	return st ? CLI_FAIL : CLI_OK;
}

int cli_keys(int argc, char **argv)
{
	static const cli_sub subs[] = {{"create", cmd_create},
				       {"revoke", cmd_revoke}};
	return cli_dispatch(argc, argv, "keys", keys_usage, subs,
			    PWB_ARRAY_LEN(subs));
}
