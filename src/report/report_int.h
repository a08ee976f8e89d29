/*
 * report_int.h - what the reports share (src/report/): growing arrays of
 * counts and values, quantiles and shares, dates, and the frame of every
 * report's JSON.
 */
#ifndef PWB_REPORT_INT_H
#define PWB_REPORT_INT_H

#include "pwb/report.h"

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Counts in the order given (ascending, from the store). */
typedef struct pwb__counts {
	int64_t *v;
	size_t n, cap;
	bool oom;
} pwb__counts;

/* 0, or -1 when out of memory (then oom is set). */
int pwb__counts_push(pwb__counts *c, int64_t v);
void pwb__counts_release(pwb__counts *c);
/* The share of total held by the largest ceil(frac * n) counts (at
 * least one when there are any). */
double pwb__top_share(const pwb__counts *c, double total, double frac);

typedef struct pwb__doubles {
	double *v;
	size_t n, cap;
} pwb__doubles;

int pwb__doubles_push(pwb__doubles *d, double v);
void pwb__doubles_sort(pwb__doubles *d);
/* The q-quantile of sorted values (linear between ranks); 0 for none. */
double pwb__quantile(const pwb__doubles *d, double q);
void pwb__doubles_release(pwb__doubles *d);

/* "2026-01-31" for a unix day; "2026-01-31T12:00:00Z" for unix seconds. */
void pwb__day_str(int64_t day, char *buf, size_t size);
void pwb__time_str(int64_t t, char *buf, size_t size);

/*
 * Checks p and starts a report's JSON: {"report", "org", "period":
 * {"since", "until"}, "generated"}; *until is the period's end (now when
 * p->until is 0).
 */
pwb_status pwb__report_begin(const pwb_report_params *p, const char *name,
			     int64_t *until, json_t **root, pwb_diag *diag);
/* Adds "policies": the policy in force for the org (its effective hash
 * without user settings) and the hashes the period's decisions were made
 * under (seen, taken). */
pwb_status pwb__report_policies(const pwb_report_params *p, json_t *root,
				json_t *seen);
/* The datasheet as JSON (pwb_report_datasheet's, before it is text). */
pwb_status pwb__datasheet(pwb_store *s, const pwb_report_params *p,
			  json_t **out, pwb_diag *diag);

/* The report as indented JSON text; *out freed with free(). */
pwb_status pwb__report_end(json_t *root, char **out);

#endif
