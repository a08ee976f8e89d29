/* user.c - `pwb user export|erase|consent|settings|reset`: a user's data
 * rights, their own settings, and forgetting what was learnt. */
#include "cli/cli.h"
#include "util/util.h"

#include <stdlib.h>
#include <string.h>

static const char user_usage[] =
    "Usage: pwb user export --db URL --org ID --user ID\n"
    "       pwb user erase  --db URL --org ID --user ID\n"
    "       pwb user consent --db URL --org ID --user ID "
    "(--grant | --withdraw)\n"
    "       pwb user settings --db URL --org ID --user ID FILE|-\n"
    "       pwb user reset --db URL --org ID --user ID\n"
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
    "Example:\n"
    "  pwb user export --db sqlite:pwb.db --org acme-tutor --user u00001\n"
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
    "Example:\n"
    "  pwb user erase --db sqlite:pwb.db --org acme-tutor --user u00001\n"
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
	int rc = cli_parse(a, spec, PWB_ARRAY_LEN(spec) - !now, usage, NULL);
	if (!rc)
		rc = cli_check_id(a, "--user", u->user);
	return rc;
}

/* What the two commands do about a user, for messages. */
static void doing(char *buf, size_t size, const char *verb, const user_args *u)
{
	snprintf(buf, size, "%s user '%s' of org '%s'", verb, u->user, u->org);
}

/* Parses the options, opens the store in mode and checks that it holds
 * the org. False when the command ends here (--help, an error), with its
 * exit status in *rc and nothing left open. */
static bool open_for(cli_args *a, user_args *u, const char *usage, bool now,
		     pwb_store_mode mode, pwb_store **s, int *rc)
{
	*s = NULL;
	if ((*rc = parse(a, u, usage, now))) {
		*rc = cli_parsed(*rc);
		return false;
	}
	if (!(*s = cli_store_open_mode(u->db, mode, NULL))) {
		*rc = CLI_FAIL;
		return false;
	}
	if ((*rc = cli_store_org(*s, u->org))) {
		pwb_store_free(*s);
		*s = NULL;
		return false;
	}
	return true;
}

static int cmd_export(cli_args *a)
{
	user_args u = {0};
	pwb_store *s;
	/* Only reads: a store that is not there is refused, never made. */
	int rc;
	if (!open_for(a, &u, export_usage, false, PWB_STORE_READ_ONLY, &s, &rc))
		return rc;
	pwb_diag d;
	pwb_diag_init(&d);
	char *json = NULL, what[600];
	pwb_status st = pwb_store_user_export(s, u.org, u.user, &json, &d);
	if (st) {
		doing(what, sizeof(what), "export", &u);
		cli_store_report(s, what, st, &d);
		rc = CLI_FAIL;
	} else
		puts(json);
	pwb_store_free(s);
	free(json);
	pwb_diag_release(&d);
	return rc;
}

static int cmd_erase(cli_args *a)
{
	user_args u = {0};
	pwb_store *s;
	/* Erasing changes only what is stored: a store that is not there
	 * is an error, not a new one. */
	int rc;
	if (!open_for(a, &u, erase_usage, true, PWB_STORE_EXISTING, &s, &rc))
		return rc;
	pwb_diag d;
	pwb_diag_init(&d);
	int64_t seq = 0;
	char what[600];
	pwb_status st = pwb_store_user_erase(s, u.org, u.user, u.now, &seq, &d);
	if (st) {
		doing(what, sizeof(what), "erase", &u);
		cli_store_report(s, what, st, &d);
		rc = CLI_FAIL;
	} else if (seq)
		printf("erased user %s of org %s; tombstone at audit row "
		       "%lld\n",
		       u.user, u.org, (long long)seq);
	else
		printf("user %s of org %s was already erased\n", u.user, u.org);
	pwb_store_free(s);
	pwb_diag_release(&d);
	return rc;
}

static const char consent_usage[] =
    "Usage: pwb user consent --db URL --org ID --user ID\n"
    "           [--grant | --withdraw] [--grant-cohort ATTR | "
    "--withdraw-cohort]\n"
    "           [--policies DIR] [--now SECONDS]\n"
    "\n"
    "Records whether a user consents to pwb learning from their feedback\n"
    "(docs/pipeline.md). Where a tier's learning restrictions say\n"
    "requires_consent, a user without it is served by the population\n"
    "model and their feedback is neither stored nor learnt. Withdrawing\n"
    "stops learning from then on; 'pwb user erase' removes what was\n"
    "learnt.\n"
    "\n"
    "Consent to be grouped is separate: where the org groups users by a\n"
    "request attribute (learning.cohort_attribute, e.g. age_band), a user\n"
    "who consents to it starts from the model of the users who share its\n"
    "value, and their feedback is stored with it and teaches that group\n"
    "(docs/prefs.md, \"Cohort priors\"). Each option changes only its own\n"
    "consent; the other stays as recorded.\n"
    "\n"
    "Options:\n"
    "  --db URL             sqlite:PATH or postgres://... (docs/store.md)\n"
    "  --org ID             the user's organisation\n"
    "  --user ID            the user\n"
    "  --policies DIR       the policy folder the org must be in\n"
    "                       (default: the folder the store recorded)\n"
    "  --grant              the user consents to learning\n"
    "  --withdraw           the user withdraws their consent to learning\n"
    "  --grant-cohort ATTR  the user consents to being grouped by ATTR,\n"
    "                       the attribute the org groups users by\n"
    "  --withdraw-cohort    the user withdraws their consent to grouping\n"
    "  --now SECONDS        the time recorded (default: now)\n"
    "  -h, --help           show this help\n"
    "\n"
    "Example:\n"
    "  pwb user consent --db sqlite:pwb.db --org open-studio --user u1 "
    "--grant \\\n"
    "      --grant-cohort age_band\n"
    "\n"
    "Exit status: 0 on success, 1 when the store refuses (an erased\n"
    "user) or the org groups users by another attribute than ATTR (or\n"
    "none), 2 on a usage error.\n";

/* Consent to be grouped names the attribute the org groups users by:
 * any other (or one for an org that groups nobody) is refused. */
static int cohort_checked(const cli_resolve *r, const char *attr)
{
	char why[600];
	if (pwb_consent_cohort_ok(r->effective, r->org, attr, why, sizeof(why)))
		return CLI_OK;
	fprintf(stderr, "error: --grant-cohort %s: %s\n", attr, why);
	return CLI_FAIL;
}

/*
 * Opens the store and checks org against the policies (given, or the
 * folder the store recorded), resolving with the settings file when one
 * is given: a setting out of bounds is refused here, naming the tier,
 * source, rule and basis. *settings_json gets the file's text. Nothing
 * is created before the arguments are known good: with --policies the
 * resolve comes first; without, only a store that exists is opened.
 */
static int open_checked(cli_args *a, const user_args *u, const char *policies,
			const char *settings, pwb_store **s,
			char **settings_json, const char *cohort)
{
	*settings_json = NULL;
	*s = NULL;
	char *dir = NULL;
	cli_resolve r = {.org = u->org, .settings = settings};
	int rc = CLI_OK;
	if (!policies) {
		bool missing = false;
		*s = cli_store_open_mode(u->db, PWB_STORE_EXISTING, &missing);
		if (!*s && !missing)
			return CLI_FAIL;
		rc = cli_store_policies_for(a, *s, NULL, &dir);
		r.policies = dir;
	} else {
		r.policies = policies;
	}
	if (!rc)
		rc = cli_resolve_run(&r, a);
	if (!rc && cohort)
		rc = cohort_checked(&r, cohort);
	if (!rc && !*s && !(*s = cli_store_open(u->db)))
		rc = CLI_FAIL;
	if (!rc && policies)
		rc = cli_store_record_policies(*s, policies);
	if (!rc && settings) {
		*settings_json = r.settings_data;
		r.settings_data = NULL;
	}
	cli_resolve_release(&r);
	free(dir);
	return rc;
}

static int cmd_consent(cli_args *a)
{
	user_args u = {.now = cli_time_now()};
	const char *policies = NULL;
	bool grant = false, withdraw = false, no_cohort = false;
	const char *cohort = NULL;
	const cli_spec spec[] = {CLI_OPT_NEED("db", u.db, "URL"),
				 CLI_OPT_NEED("org", u.org, "ID"),
				 CLI_OPT_NEED("user", u.user, "ID"),
				 CLI_OPT_FLAG("grant", grant),
				 CLI_OPT_FLAG("withdraw", withdraw),
				 CLI_OPT_STR("grant-cohort", cohort),
				 CLI_OPT_FLAG("withdraw-cohort", no_cohort),
				 CLI_OPT_NOW(u.now),
				 CLI_OPT_STR("policies", policies)};
	int rc = cli_parse(a, spec, PWB_ARRAY_LEN(spec), consent_usage, NULL);
	if (rc)
		return cli_parsed(rc);
	if (grant && withdraw)
		return cli_usage_error(a, "give one of --grant and --withdraw");
	if (cohort && no_cohort)
		return cli_usage_error(
		    a, "give one of --grant-cohort and --withdraw-cohort");
	if (!grant && !withdraw && !cohort && !no_cohort)
		return cli_usage_error(a,
				       "give --grant, --withdraw, "
				       "--grant-cohort or --withdraw-cohort");
	char *json = NULL;
	if (cohort &&
	    pwb_consent_update(NULL, -1, cohort, 0, &json) == PWB_EINVAL)
		return cli_usage_error(a, "--grant-cohort takes an attribute "
					  "name: 1 to 64 letters, digits and "
					  "'_'");
	free(json);
	json = NULL;
	if ((rc = cli_check_id(a, "--user", u.user)))
		return rc;
	pwb_store *s = NULL;
	char *unused = NULL;
	if ((rc = open_checked(a, &u, policies, NULL, &s, &unused, cohort))) {
		pwb_store_free(s);
		return rc;
	}
	pwb_diag d;
	pwb_diag_init(&d);
	char what[600];
	/* Each option changes its own consent and keeps the other. */
	pwb_status st = pwb_consent_record(s, u.org, u.user,
					   grant      ? 1
					   : withdraw ? 0
						      : -1,
					   cohort      ? cohort
					   : no_cohort ? ""
						       : NULL,
					   u.now, &json, &d);
	free(json);
	if (st) {
		doing(what, sizeof(what), "record the consent of", &u);
		cli_store_report(s, what, st, &d);
		rc = CLI_FAIL;
	} else {
		if (grant || withdraw)
			printf("user %s of org %s: consent to learning %s\n",
			       u.user, u.org, grant ? "granted" : "withdrawn");
		if (cohort)
			printf("user %s of org %s: consent to being grouped by "
			       "%s granted\n",
			       u.user, u.org, cohort);
		else if (no_cohort)
			printf("user %s of org %s: consent to being grouped "
			       "withdrawn\n",
			       u.user, u.org);
	}
	pwb_store_free(s);
	pwb_diag_release(&d);
	return rc;
}

static const char settings_usage[] =
    "Usage: pwb user settings --db URL --org ID --user ID [--policies DIR] "
    "[--now SECONDS] FILE|-\n"
    "\n"
    "Stores a user's own settings (tier 3: categories they switch on or\n"
    "off, dimension values), which 'pwb ask' and 'pwb chat' then apply.\n"
    "The settings are checked against the org's bounds first: one outside\n"
    "them is refused, naming the tier, source, rule and basis that stop\n"
    "it, and nothing is written. FILE is JSON ('-' reads standard input):\n"
    "  {\"categories\": {\"profanity\": \"on\"}, \"dimensions\": "
    "{\"humour\": 0.5}}\n"
    "\n"
    "Options:\n"
    "  --db URL             sqlite:PATH or postgres://... (docs/store.md)\n"
    "  --org ID             the user's organisation\n"
    "  --user ID            the user\n"
    "  --policies DIR       the policy folder (default: the folder the\n"
    "                       store recorded)\n"
    "  --now SECONDS        the time recorded (default: now)\n"
    "  -h, --help           show this help\n"
    "\n"
    "Example:\n"
    "  pwb user settings --db sqlite:pwb.db --org acme-tutor --user u1 "
    "mine.json\n"
    "\n"
    "Exit status: 0 when stored, 1 when the settings are malformed or out\n"
    "of bounds (nothing written) or the store refuses, 2 on a usage "
    "error.\n";

static int cmd_settings(cli_args *a)
{
	user_args u = {.now = cli_time_now()};
	const char *policies = NULL;
	cli_list pos = {0};
	const cli_spec spec[] = {
	    CLI_OPT_NEED("db", u.db, "URL"), CLI_OPT_NEED("org", u.org, "ID"),
	    CLI_OPT_NEED("user", u.user, "ID"), CLI_OPT_NOW(u.now),
	    CLI_OPT_STR("policies", policies)};
	int rc = cli_parse(a, spec, PWB_ARRAY_LEN(spec), settings_usage, &pos);
	if (rc)
		return cli_parsed(rc);
	if (pos.n != 1)
		return cli_usage_error(a, "give one settings FILE, or '-'");
	if ((rc = cli_check_id(a, "--user", u.user)))
		return rc;
	pwb_store *s = NULL;
	char *json = NULL;
	rc = open_checked(a, &u, policies, pos.v[0], &s, &json, NULL);
	pwb_diag d;
	pwb_diag_init(&d);
	char what[600];
	if (!rc) {
		pwb_status st = pwb_store_user_set_settings(s, u.org, u.user,
							    json, u.now, &d);
		if (st) {
			doing(what, sizeof(what), "store the settings of", &u);
			cli_store_report(s, what, st, &d);
			rc = CLI_FAIL;
		} else
			printf("user %s of org %s: settings stored\n", u.user,
			       u.org);
	}
	free(json);
	pwb_store_free(s);
	pwb_diag_release(&d);
	return rc;
}

static const char reset_usage[] =
    "Usage: pwb user reset --db URL --org ID --user ID [--now SECONDS]\n"
    "\n"
    "Forgets the preferences pwb learnt from a user's feedback: their\n"
    "stored model is emptied (its version bumped), so they are served by\n"
    "the population model again. Their feedback, settings and consent stay;\n"
    "'pwb user erase' removes everything. A model that cannot be read (made\n"
    "with another --prefs model, or damaged) is reset too.\n"
    "\n"
    "Options:\n"
    "  --db URL             sqlite:PATH or postgres://... (docs/store.md)\n"
    "  --org ID             the user's organisation\n"
    "  --user ID            the user\n"
    "  --now SECONDS        the time recorded (default: now)\n"
    "  -h, --help           show this help\n"
    "\n"
    "Example:\n"
    "  pwb user reset --db sqlite:pwb.db --org acme-tutor --user u1\n"
    "\n"
    "Exit status: 0 on success (also when nothing was learnt), 1 when the\n"
    "store knows no such user or refuses (an erased user), 2 on a usage\n"
    "error.\n";

static int cmd_reset(cli_args *a)
{
	user_args u = {0};
	pwb_store *s;
	int rc;
	if (!open_for(a, &u, reset_usage, true, PWB_STORE_EXISTING, &s, &rc))
		return rc;
	pwb_diag d;
	pwb_diag_init(&d);
	pwb_store_user row;
	int64_t version = 0;
	char what[600];
	pwb_status st = pwb_store_user_get(s, u.org, u.user, &row, &d);
	bool got = !st, learnt = got && row.model_len > 0;
	if (!st && row.erased) {
		pwb_diag_add(&d, NULL, 0, 0, "user '%s' was erased", u.user);
		st = PWB_EINVAL;
	} else if (learnt) {
		st = pwb_store_user_set_model(s, u.org, u.user, "", 0,
					      row.model_version, &version,
					      u.now, &d);
	}
	if (st) {
		doing(what, sizeof(what), "reset", &u);
		cli_store_report(s, what, st, &d);
		rc = CLI_FAIL;
	} else
		cli_say_reset(u.org, u.user, learnt, version);
	if (got)
		pwb_store_user_release(&row);
	pwb_store_free(s);
	pwb_diag_release(&d);
	return rc;
}

int cli_user(int argc, char **argv)
{
	static const cli_sub subs[] = {{"export", cmd_export},
				       {"erase", cmd_erase},
				       {"consent", cmd_consent},
				       {"settings", cmd_settings},
				       {"reset", cmd_reset}};
	return cli_dispatch(argc, argv, "user", user_usage, subs,
			    PWB_ARRAY_LEN(subs));
}
