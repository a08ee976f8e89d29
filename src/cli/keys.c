/* keys.c - `pwb keys create|revoke`: API keys, stored as keyed hashes. */
#include "cli/cli.h"
#include "util/util.h"

#include <ctype.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

static const char keys_usage[] =
    "Usage: pwb keys create --db URL --org ID --role ROLE [options]\n"
    "       pwb keys revoke --db URL --org ID [options] KEY_ID\n"
    "\n"
    "Run 'pwb keys SUBCOMMAND --help' for the options of each.\n";

static const char create_usage[] =
    "Usage: pwb keys create --db URL --org ID --role ROLE [options]\n"
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
    "  --policies DIR       the policy folder, which must know the org\n"
    "                       (default: the one the store recorded)\n"
    "  --now SECONDS        the creation's unix time (default: now)\n"
    "  -h, --help           show this help\n"
    "\n"
    "Environment:\n"
    "  PWB_KEY_SECRET       the secret that keys the hashes; keep it out\n"
    "                       of the database and the same on every replica\n"
    "\n"
    "Example:\n"
    "  pwb keys create --db sqlite:pwb.db --org acme-tutor --role service \\\n"
    "      --policies policies\n"
    "\n"
    "Exit status: 0 on success, 1 on an error, 2 on a usage error.\n";

static const char revoke_usage[] =
    "Usage: pwb keys revoke --db URL --org ID [options] KEY_ID\n"
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
    "Example:\n"
    "  pwb keys revoke --db sqlite:pwb.db --org acme-tutor KEY_ID\n"
    "\n"
    "Exit status: 0 on success, 1 when the org has no such active key,\n"
    "2 on a usage error.\n";

/*
 * That the policies know org (docs/store.md, "Orgs and policies"): from
 * --policies, or the folder the store recorded. Opens the store into *s
 * when it needs the record (NULL when there is no store yet).
 */
static int check_org(cli_args *a, const char *db, const char *org,
		     const char *policies, pwb_store **s)
{
	bool missing = false;
	if (!policies &&
	    !(*s = cli_store_open_mode(db, PWB_STORE_EXISTING, &missing)) &&
	    !missing)
		return CLI_FAIL;
	char *dir = NULL;
	int rc = cli_store_policies_for(a, *s, policies, &dir);
	if (rc)
		return rc;
	cli_resolve r = {0};
	r.policies = dir;
	r.org = org;
	rc = cli_resolve_run(&r, a);
	if (rc && !policies)
		fprintf(stderr,
			"%s: note: the policies read are those of %s, the "
			"folder the store recorded; give --policies DIR for "
			"others\n",
			a->cmd, dir);
	cli_resolve_release(&r);
	free(dir);
	return rc;
}

static int cmd_create(cli_args *a)
{
	const char *db = NULL, *org = NULL, *user = NULL, *role_s = NULL,
		   *policies = NULL;
	pwb_key_role role = PWB_KEY_SERVICE;
	int64_t now = cli_time_now();
	const cli_spec spec[] = {CLI_OPT_NEED("db", db, "URL"),
				 CLI_OPT_NEED("org", org, "ID"),
				 CLI_OPT_NEED("role", role_s, "ROLE"),
				 CLI_OPT_STR("user", user),
				 CLI_OPT_STR("policies", policies),
				 CLI_OPT_NOW(now)};
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
	/* The org first: a key for a misspelt org would open nothing. The
	 * store is made (when new) only once the arguments hold. */
	pwb_store *s = NULL;
	int rc = check_org(a, db, org, policies, &s);
	if (!rc && !s && !(s = cli_store_open(db)))
		rc = CLI_FAIL;
	if (!rc && policies)
		rc = cli_store_record_policies(s, policies);
	if (rc) {
		pwb_store_free(s);
		return rc;
	}
	pwb_diag d;
	pwb_diag_init(&d);
	char *key = NULL, *id = NULL;
	pwb_status st =
	    pwb_store_key_create(s, org, role, user, now, &key, &id, &d);
	if (st) {
		cli_store_report(s, "make the key", st, &d);
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
	pwb_store_free(s);
	free(key);
	free(id);
	pwb_diag_release(&d);
	return rc;
}

/* Whether v has the shape of a whole key: pwb_<16 hex>_<64 hex>. */
static bool looks_like_key(const char *v)
{
	if (strlen(v) != 4 + 16 + 1 + 64 || strncmp(v, "pwb_", 4) != 0 ||
	    v[20] != '_')
		return false;
	for (size_t i = 4; v[i]; i++)
		if (i != 20 && !isxdigit((unsigned char)v[i]))
			return false;
	return true;
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
	if (looks_like_key(id))
		/* The secret is not repeated: it is on screen once too many. */
		return cli_usage_error(
		    a,
		    "that looks like a whole key, not its id: revoke takes "
		    "the key's id, the 16 hex digits after 'pwb_' (here "
		    "%.16s), which 'pwb keys create' prints as 'key id:'",
		    id + 4);
	/* Revoking changes only what is stored: a store that is not there
	 * is an error, not a new one. */
	pwb_store *s = cli_store_open_mode(db, PWB_STORE_EXISTING, NULL);
	if (!s)
		return CLI_FAIL;
	int rc = cli_store_org(s, org);
	pwb_diag d;
	pwb_diag_init(&d);
	pwb_status st = PWB_OK;
	if (!rc && (st = pwb_store_key_revoke(s, org, id, now, &d))) {
		cli_store_report(s, "revoke the key", st, &d);
		rc = CLI_FAIL;
	} else if (!rc) {
		printf("revoked key %s of org %s\n", id, org);
	}
	pwb_store_free(s);
	pwb_diag_release(&d);
	return rc;
}

int cli_keys(int argc, char **argv)
{
	static const cli_sub subs[] = {{"create", cmd_create},
				       {"revoke", cmd_revoke}};
	return cli_dispatch(argc, argv, "keys", keys_usage, subs,
			    PWB_ARRAY_LEN(subs));
}
