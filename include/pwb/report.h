/*
 * pwb/report.h - reports for auditors (DESIGN §11, docs/report.md): the
 * alignment datasheet (whose feedback the models are aligned to) and,
 * later, the risk register.
 *
 * Reports read the store only through pwb_store_aggregate(): aggregates
 * streamed row by row, never user content. Every figure says which rows it
 * counts and over which dates.
 */
#ifndef PWB_REPORT_H
#define PWB_REPORT_H

#include <stdbool.h>
#include <stdint.h>

#include "pwb/pipeline.h"
#include "pwb/policy.h"
#include "pwb/prefs.h"
#include "pwb/store.h"
#include "pwb/common.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct pwb_report_params {
	const char *org;
	/* The period, unix seconds: rows with since <= ts < until.
	 * until 0: now. */
	int64_t since, until;
	int64_t now; /* the report's time (0: the clock) */
	/* The policy in force (its hash and version are reported, and its
	 * categories shape the default preference model). */
	pwb_policy *policy;
	/* The population preference model the users' models were learnt
	 * against (pwb serve --prefs); NULL: the pipeline's default. */
	const pwb_prefs_model *prefs;
} pwb_report_params;

/*
 * The alignment datasheet as JSON (docs/report.md lists every key):
 * raters by role and by consented attribute against the users, feedback
 * per rater (Gini, top 1 % and 10 % shares, a Lorenz curve), decisions by
 * verdict and blocks by tier, category and day, how far users' models
 * stray from the population model, and the policy hashes in force.
 * *json is freed with free().
 */
pwb_status pwb_report_datasheet(pwb_store *s, const pwb_report_params *p,
				char **json, pwb_diag *diag);

/*
 * The risk register as JSON (docs/RISKS.md): `entries`, each with `id`,
 * `level` (individual | societal), `kind` (benefit | risk),
 * `description`, `status` (the worst of its indicators), `indicators`
 * (each `name`, `value`, `threshold` {amber, red, direction}, `status`
 * green | amber | red, `measures`) and `mitigations`. *json is freed with
 * free().
 */
pwb_status pwb_report_risks(pwb_store *s, const pwb_report_params *p,
			    char **json, pwb_diag *diag);

/* A date as reports take it: YYYY-MM-DD (UTC midnight) or unix seconds;
 * false for anything else (2026-02-31 too). */
bool pwb_report_parse_date(const char *v, int64_t *out);

/*
 * A report's JSON (as pwb_report_datasheet() makes it) as one HTML page
 * with SVG charts, no JavaScript; *html is freed with free(). PWB_EINVAL
 * for JSON that is no report pwb knows.
 */
pwb_status pwb_report_html(const char *json, char **html, pwb_diag *diag);

#ifdef __cplusplus
}
#endif

#endif
