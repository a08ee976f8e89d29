/*
 * store.c - what the storage commands share (opening the store named by
 * --db, reporting its errors, checking --org, the policy folder, --now)
 * and `pwb store gc` and `pwb audit verify`.
 */
#include "cli/cli.h"
#include "util/util.h"

#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/*
 * Opens the store at url as mode allows (pwb/store.h), keyed by
 * $PWB_KEY_SECRET when set; prints every error and returns NULL on
 * failure. With missing non-NULL, a store that is not there is no error:
 * NULL, *missing set, nothing printed.
 */
pwb_store *cli_store_open_mode(const char *url, pwb_store_mode mode,
			       bool *missing)
{
	pwb_store_params p = pwb_store_default_params();
	p.mode = mode;
	/* The key-hashing secret lives outside the database when the
	 * deployment gives one (docs/store.md). */
	const char *secret = getenv("PWB_KEY_SECRET");
	if (secret && *secret) {
		p.key_secret = secret;
		p.key_secret_len = strlen(secret);
	}
	if (missing)
		*missing = false;
	pwb_store *s = NULL;
	pwb_diag d;
	pwb_diag_init(&d);
	pwb_status st = pwb_store_open(&s, url, &p, &d);
	if (st == PWB_ENOTFOUND && missing) {
		*missing = true;
	} else if (st) {
		/* No URL here: it may hold a password. */
		if (!d.n)
			fprintf(stderr,
				"error: cannot open the store given by --db: "
				"%s\n",
				pwb_status_str(st));
		cli_print_diag(&d);
	}
	pwb_diag_release(&d);
	return s;
}

pwb_store *cli_store_open(const char *url)
{
	return cli_store_open_mode(url, PWB_STORE_CREATE, NULL);
}

/*
 * Prints the messages of a store call that failed with st, each naming
 * the store (its own file when it has one; the store's name when it does
 * not already say it). For a failure that is not about the input (I/O,
 * memory), each also says what was being done: "cannot DOING: ...".
 */
void cli_store_report(const pwb_store *s, const char *doing, pwb_status st,
		      pwb_diag *d)
{
	const char *name = s ? pwb_store_name(s) : "the store";
	bool say = doing && st != PWB_EINVAL && st != PWB_ENOTFOUND &&
		   st != PWB_EBOUNDS;
	if (!d->n) {
		fprintf(stderr, "%s: error: cannot %s: %s\n", name,
			doing ? doing : "use it", pwb_status_str(st));
		return;
	}
	for (size_t i = 0; i < d->n; i++) {
		const pwb_diag_entry *e = &d->entries[i];
		const char *where = e->file		       ? e->file
				    : strstr(e->message, name) ? NULL
							       : name;
		fprintf(stderr, "%s%serror: %s%s%s%s\n", where ? where : "",
			where ? ": " : "", say ? "cannot " : "",
			say ? doing : "", say ? ": " : "", e->message);
	}
	if (d->dropped)
		fprintf(stderr, "%s: error: %zu more errors not shown\n", name,
			d->dropped);
}

/* That the store holds org (with a did-you-mean when not); prints why
 * not and returns CLI_FAIL. */
int cli_store_org(pwb_store *s, const char *org)
{
	pwb_diag d;
	pwb_diag_init(&d);
	pwb_status st = pwb_store_org_check(s, org, &d);
	if (st)
		cli_store_report(s, "read the orgs it holds", st, &d);
	pwb_diag_release(&d);
	return st ? CLI_FAIL : CLI_OK;
}

/*
 * The policy folder of a command that adds an org's data (docs/store.md,
 * "Orgs and policies"): `given` (--policies) when there is one, else the
 * folder the store recorded; s is NULL when there is no store yet.
 * *dir is freed with free(). Without either, a usage error.
 */
int cli_store_policies_for(cli_args *a, pwb_store *s, const char *given,
			   char **dir)
{
	*dir = NULL;
	if (given) {
		if (!(*dir = strdup(given)))
			return CLI_FAIL;
		return CLI_OK;
	}
	if (!s)
		return cli_usage_error(
		    a, "--policies DIR is required: there is no store at --db "
		       "yet, and a new store records the policy folder it is "
		       "made with");
	pwb_diag d;
	pwb_diag_init(&d);
	pwb_status st = pwb_store_policies_get(s, dir, &d);
	if (st)
		cli_store_report(s, "read its policy folder", st, &d);
	pwb_diag_release(&d);
	if (st)
		return CLI_FAIL;
	if (!*dir)
		return cli_usage_error(
		    a,
		    "--policies DIR is required: the store %s records no "
		    "policy folder (given once, it is recorded for later "
		    "commands)",
		    pwb_store_name(s));
	return CLI_OK;
}

/* Records dir, made absolute, as the store's policy folder. */
int cli_store_record_policies(pwb_store *s, const char *dir)
{
	char abs[PATH_MAX];
	if (!realpath(dir, abs)) {
		fprintf(stderr, "%s: error: cannot resolve the path: %s\n", dir,
			strerror(errno));
		return CLI_FAIL;
	}
	pwb_diag d;
	pwb_diag_init(&d);
	pwb_status st = pwb_store_policies_set(s, abs, &d);
	if (st)
		cli_store_report(s, "record its policy folder", st, &d);
	pwb_diag_release(&d);
	return st ? CLI_FAIL : CLI_OK;
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
    "Example:\n"
    "  pwb store gc --db sqlite:pwb.db --policies policies\n"
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
		char doing[512];
		snprintf(doing, sizeof(doing),
			 "remove the old feedback of org '%s'", org);
		cli_store_report(s, doing, st, &d);
		pwb_diag_release(&d);
		return CLI_FAIL;
	}
	pwb_diag_release(&d);
	if (eff_days <= 0)
		printf("org %s: no retention limit; kept everything\n", org);
	else
		printf("org %s: removed %llu feedback event%s older than %ld "
		       "day%s\n",
		       org, (unsigned long long)removed,
		       removed == 1 ? "" : "s", eff_days,
		       eff_days == 1 ? "" : "s");
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
	/* Retention only removes: a store that is not there is an error,
	 * not a new one. */
	pwb_store *s = cli_store_open_mode(db, PWB_STORE_EXISTING, NULL);
	if (!s)
		return CLI_FAIL;
	char **all = NULL;
	size_t n_all = 0;
	int rc = CLI_OK;
	if (!orgs.n) {
		pwb_diag d;
		pwb_diag_init(&d);
		pwb_status st = pwb_store_orgs(s, &all, &n_all, &d);
		if (st) {
			cli_store_report(s, "list its orgs", st, &d);
			rc = CLI_FAIL;
		}
		pwb_diag_release(&d);
		if (n_all == 0 && !rc)
			printf("the store has no orgs; nothing to do\n");
	}
	/* A named org must be one the store holds (with --policies, also
	 * one the policies know: gc_org resolves it). A typo is named,
	 * the other orgs are still handled. */
	bool known[CLI_MAX_LIST];
	for (size_t i = 0; i < orgs.n; i++) {
		known[i] = policies || cli_store_org(s, orgs.v[i]) == CLI_OK;
		if (!known[i])
			rc = CLI_FAIL;
	}
	bool listed = orgs.n || rc == CLI_OK;
	for (size_t i = 0; listed && i < (orgs.n ? orgs.n : n_all); i++) {
		if (orgs.n && !known[i])
			continue;
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
    "Example:\n"
    "  pwb audit verify --db sqlite:pwb.db\n"
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
	/* Only reads: a store that is not there is refused, never made. */
	pwb_store *s = cli_store_open_mode(db, PWB_STORE_READ_ONLY, NULL);
	if (!s)
		return CLI_FAIL;
	pwb_audit_report rep;
	pwb_diag d;
	pwb_diag_init(&d);
	pwb_status st = pwb_store_audit_verify(s, &rep, &d);
	if (json && (st == PWB_OK || st == PWB_EINVAL)) {
		/* A broken chain has a head only up to its last good row;
		 * the error is the message alone, without "error: ". */
		bool head = st == PWB_OK || rep.rows > 0;
		json_t *j = json_pack(
		    "{s:b, s:I, s:o, s:o, s:o}", "ok", st == PWB_OK, "rows",
		    (json_int_t)rep.rows, "head",
		    head ? json_string(rep.head_hash) : json_null(), "bad_row",
		    rep.bad_seq ? json_integer(rep.bad_seq) : json_null(),
		    "error",
		    d.n ? json_string(d.entries[0].message) : json_null());
		cli_print_json(j);
		json_decref(j);
	} else if (!st) {
		printf("audit chain intact: %llu row%s, head %s\n",
		       (unsigned long long)rep.rows, rep.rows == 1 ? "" : "s",
		       rep.head_hash);
	}
	if (st)
		cli_store_report(s, "verify the audit chain", st, &d);
	pwb_store_free(s);
	pwb_diag_release(&d);
	return st ? CLI_FAIL : CLI_OK;
}

int cli_audit(int argc, char **argv)
{
	static const cli_sub subs[] = {{"verify", cmd_verify}};
	return cli_dispatch(argc, argv, "audit", audit_usage, subs,
			    PWB_ARRAY_LEN(subs));
}
