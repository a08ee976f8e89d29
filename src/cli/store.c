/*
 * store.c - what the storage commands share (opening the store named by
 * --db, --now) and `pwb store gc` and `pwb audit verify`.
 */
#include "cli/cli.h"
#include "util/util.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

pwb_store *cli_store_open(const char *url)
{
	pwb_store_params p = pwb_store_default_params();
	/* The key-hashing secret lives outside the database when the
	 * deployment gives one (docs/store.md). */
	const char *secret = getenv("PWB_KEY_SECRET");
	if (secret && *secret) {
		p.key_secret = secret;
		p.key_secret_len = strlen(secret);
	}
	pwb_store *s = NULL;
	pwb_diag d;
	pwb_diag_init(&d);
	pwb_status st = pwb_store_open(&s, url, &p, &d);
	if (st) {
		if (!d.n)
			fprintf(stderr, "error: cannot open %s: %s\n", url,
				pwb_status_str(st));
		cli_print_diag(&d);
	}
	pwb_diag_release(&d);
	return s;
}

int64_t cli_time_now(void)
{
	return (int64_t)time(NULL);
}

/* ---- pwb store gc ---- */

static const char store_usage[] =
    "Usage: pwb store gc --db URL (--policies DIR | --days N) [options]\n"
    "\n"
    "Storage maintenance. Run 'pwb store gc --help' for its options.\n";

static const char gc_usage[] =
    "Usage: pwb store gc --db URL --policies DIR [--org ID]... [options]\n"
    "       pwb store gc --db URL --days N [--org ID]... [options]\n"
    "\n"
    "Retention: removes stored feedback older than the retention period,\n"
    "counted from the event's time or its arrival, whichever is earlier.\n"
    "With --policies, each org's period is its effective\n"
    "learning.retention_days (orgs whose policies set none keep\n"
    "everything); with --days, N days for every org named. Without --org,\n"
    "every org in the store.\n"
    "\n"
    "Options:\n"
    "  --db URL             sqlite:PATH or postgres://... (docs/store.md)\n"
    "  --policies DIR       the policy folder to read retention from\n"
    "  --days N             retention in days, instead of the policies\n"
    "  --org ID             only this org; repeatable\n"
    "  --now SECONDS        act as if it were this unix time (default: now)\n"
    "  -h, --help           show this help\n"
    "\n"
    "Exit status: 0 when every org was handled, 1 on an error, 2 on a\n"
    "usage error.\n";

static int gc_org(pwb_store *s, cli_args *a, const char *policies, int64_t days,
		  const char *org, int64_t now)
{
	pwb_diag d;
	pwb_diag_init(&d);
	uint64_t removed = 0;
	long eff_days = days;
	pwb_status st;
	if (policies) {
		cli_resolve r = {0};
		r.policies = policies;
		r.org = org;
		int rc = cli_resolve_run(&r, a);
		if (rc) {
			cli_resolve_release(&r);
			return rc;
		}
		eff_days = pwb_effective_learning(r.effective)->retention_days;
		st = pwb_store_gc_policy(s, r.effective, now, &removed, &d);
		cli_resolve_release(&r);
	} else {
		st = pwb_store_gc(s, org, now - (int64_t)days * 86400, &removed,
				  &d);
	}
	if (st) {
		cli_report(NULL, st, &d);
		pwb_diag_release(&d);
		return CLI_FAIL;
	}
	pwb_diag_release(&d);
	if (eff_days <= 0)
		printf("org %s: no retention limit; kept everything\n", org);
	else
		printf("org %s: removed %llu feedback events older than %ld "
		       "days\n",
		       org, (unsigned long long)removed, eff_days);
	return CLI_OK;
}

static int cmd_gc(cli_args *a)
{
	const char *db = NULL, *policies = NULL;
	cli_list orgs = {0};
	int64_t days = -1, now = cli_time_now();
	const cli_spec spec[] = {CLI_OPT_NEED("db", db, "URL"),
				 CLI_OPT_STR("policies", policies),
				 CLI_OPT_UINT("days", days, 1, 1000000),
				 CLI_OPT_LIST("org", orgs), CLI_OPT_NOW(now)};
	int r = cli_parse(a, spec, PWB_ARRAY_LEN(spec), gc_usage, NULL);
	if (r)
		return cli_parsed(r);
	if (!policies == (days < 0))
		return cli_usage_error(a, "give either --policies DIR or "
					  "--days N");
	pwb_store *s = cli_store_open(db);
	if (!s)
		return CLI_FAIL;
	char **all = NULL;
	size_t n_all = 0;
	int rc = CLI_OK;
	if (!orgs.n) {
		pwb_diag d;
		pwb_diag_init(&d);
		if (pwb_store_orgs(s, &all, &n_all, &d)) {
			cli_print_diag(&d);
			rc = CLI_FAIL;
		}
		pwb_diag_release(&d);
		if (n_all == 0 && !rc)
			printf("the store has no orgs; nothing to do\n");
	}
	bool listed = rc == CLI_OK;
	for (size_t i = 0; listed && i < (orgs.n ? orgs.n : n_all); i++) {
		int one = gc_org(s, a, policies, days,
				 orgs.n ? orgs.v[i] : all[i], now);
		if (one > rc)
			rc = one;
	}
	pwb_store_orgs_free(all, n_all);
	pwb_store_free(s);
	return rc;
}

int cli_store(int argc, char **argv)
{
	static const cli_sub subs[] = {{"gc", cmd_gc}};
	return cli_dispatch(argc, argv, "store", store_usage, subs,
			    PWB_ARRAY_LEN(subs));
}

/* ---- pwb audit verify ---- */

static const char audit_usage[] =
    "Usage: pwb audit verify --db URL\n"
    "\n"
    "The audit chain. Run 'pwb audit verify --help' for its options.\n";

static const char verify_usage[] =
    "Usage: pwb audit verify --db URL [--json]\n"
    "\n"
    "Checks the audit chain: every row's BLAKE2b hash against its content\n"
    "and the row before it, the sequence for gaps, and the recorded head\n"
    "for rows cut off at the end. Prints the number of rows and the head\n"
    "hash (keep it elsewhere to anchor the chain), or names the first bad\n"
    "row.\n"
    "\n"
    "Options:\n"
    "  --db URL             sqlite:PATH or postgres://... (docs/store.md)\n"
    "  --json               print {\"ok\", \"rows\", \"head\", \"bad_row\","
    " \"error\"}\n"
    "  -h, --help           show this help\n"
    "\n"
    "Exit status: 0 when the chain is intact, 1 when a row was edited,\n"
    "deleted or reordered (or the store cannot be read), 2 on a usage\n"
    "error.\n";

static int cmd_verify(cli_args *a)
{
	const char *db = NULL;
	bool json = false;
	const cli_spec spec[] = {CLI_OPT_NEED("db", db, "URL"),
				 CLI_OPT_FLAG("json", json)};
	int r = cli_parse(a, spec, PWB_ARRAY_LEN(spec), verify_usage, NULL);
	if (r)
		return cli_parsed(r);
	pwb_store *s = cli_store_open(db);
	if (!s)
		return CLI_FAIL;
	pwb_audit_report rep;
	pwb_diag d;
	pwb_diag_init(&d);
	pwb_status st = pwb_store_audit_verify(s, &rep, &d);
	pwb_store_free(s);
	if (json && (st == PWB_OK || st == PWB_EINVAL)) {
		char err[1024] = "";
		if (d.n)
			pwb_diag_format(&d.entries[0], err, sizeof(err));
		json_t *j = json_pack(
		    "{s:b, s:I, s:s, s:o, s:o}", "ok", st == PWB_OK, "rows",
		    (json_int_t)rep.rows, "head", rep.head_hash, "bad_row",
		    rep.bad_seq ? json_integer(rep.bad_seq) : json_null(),
		    "error", d.n ? json_string(err) : json_null());
		cli_print_json(j);
		json_decref(j);
	} else if (!st) {
		printf("audit chain intact: %llu rows, head %s\n",
		       (unsigned long long)rep.rows, rep.head_hash);
	}
	if (st) {
		cli_report(NULL, st, &d);
	}
	pwb_diag_release(&d);
	return st ? CLI_FAIL : CLI_OK;
}

int cli_audit(int argc, char **argv)
{
	static const cli_sub subs[] = {{"verify", cmd_verify}};
	return cli_dispatch(argc, argv, "audit", audit_usage, subs,
			    PWB_ARRAY_LEN(subs));
}
