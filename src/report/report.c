/*
 * report.c - what the reports share (report_int.h).
 */
#include "report/report_int.h"

#include "util/util.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int pwb__counts_push(pwb__counts *c, int64_t v)
{
	if (c->n == c->cap) {
		size_t cap = c->cap ? 2 * c->cap : 256;
		int64_t *nv = realloc(c->v, cap * sizeof(*nv));
		if (!nv) {
			c->oom = true;
			return -1;
		}
		c->v = nv;
		c->cap = cap;
	}
	c->v[c->n++] = v;
	return 0;
}

void pwb__counts_release(pwb__counts *c)
{
	free(c->v);
	memset(c, 0, sizeof(*c));
}

double pwb__top_share(const pwb__counts *c, double total, double frac)
{
	if (!c->n || total <= 0)
		return 0;
	size_t k = (size_t)ceil(frac * (double)c->n);
	if (k < 1)
		k = 1;
	double top = 0;
	for (size_t i = 0; i < k; i++)
		top += (double)c->v[c->n - 1 - i];
	return top / total;
}

int pwb__doubles_push(pwb__doubles *d, double v)
{
	if (d->n == d->cap) {
		size_t cap = d->cap ? 2 * d->cap : 256;
		double *nv = realloc(d->v, cap * sizeof(*nv));
		if (!nv)
			return -1;
		d->v = nv;
		d->cap = cap;
	}
	d->v[d->n++] = v;
	return 0;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

void pwb__doubles_sort(pwb__doubles *d)
{
	if (d->n)
		qsort(d->v, d->n, sizeof(*d->v), cmp_double);
}

double pwb__quantile(const pwb__doubles *d, double q)
{
	if (!d->n)
		return 0;
	double pos = q * (double)(d->n - 1);
	size_t lo = (size_t)floor(pos);
	size_t hi = lo + 1 < d->n ? lo + 1 : lo;
	return d->v[lo] + (pos - (double)lo) * (d->v[hi] - d->v[lo]);
}

void pwb__doubles_release(pwb__doubles *d)
{
	free(d->v);
	memset(d, 0, sizeof(*d));
}

static void format_time(int64_t t, const char *fmt, char *buf, size_t size)
{
	time_t tt = (time_t)t;
	struct tm tm;
	if (!gmtime_r(&tt, &tm) || !strftime(buf, size, fmt, &tm))
		snprintf(buf, size, "%lld", (long long)t);
}

void pwb__time_str(int64_t t, char *buf, size_t size)
{
	format_time(t, "%Y-%m-%dT%H:%M:%SZ", buf, size);
}

void pwb__day_str(int64_t day, char *buf, size_t size)
{
	format_time(day * 86400, "%Y-%m-%d", buf, size);
}

bool pwb_report_parse_date(const char *v, int64_t *out)
{
	if (!v || !*v)
		return false;
	char *end;
	errno = 0;
	long long n = strtoll(v, &end, 10);
	if (!*end && !errno && n >= 0 && *v >= '0' && *v <= '9') {
		*out = n;
		return true;
	}
	struct tm tm = {0};
	end = strptime(v, "%Y-%m-%d", &tm);
	if (!end || *end || tm.tm_year < 70)
		return false;
	/* strptime takes 2026-02-31 and timegm moves it to March: refuse
	 * a day the month does not have. */
	int mday = tm.tm_mday;
	time_t t = timegm(&tm);
	if (t < 0 || tm.tm_mday != mday)
		return false;
	*out = (int64_t)t;
	return true;
}

pwb_status pwb__report_begin(const pwb_report_params *p, const char *name,
			     int64_t *until, json_t **root, pwb_diag *diag)
{
	*root = NULL;
	if (!p || !p->org || !p->policy) {
		pwb_diag_add(diag, NULL, 0, 0,
			     "a report needs an org and its policy");
		return PWB_EINVAL;
	}
	int64_t now = p->now ? p->now : (int64_t)time(NULL);
	*until = p->until ? p->until : now + 1;
	if (p->since >= *until) {
		pwb_diag_add(diag, NULL, 0, 0,
			     "the period is empty: --since must be before "
			     "--until");
		return PWB_EINVAL;
	}
	char since_s[32], until_s[32], now_s[32];
	pwb__time_str(p->since, since_s, sizeof(since_s));
	pwb__time_str(*until, until_s, sizeof(until_s));
	pwb__time_str(now, now_s, sizeof(now_s));
	*root = json_pack("{s:s, s:s, s:{s:s, s:s}, s:s}", "report", name,
			  "org", p->org, "period", "since", since_s, "until",
			  until_s, "generated", now_s);
	return *root ? PWB_OK : PWB_ENOMEM;
}

pwb_status pwb__report_policies(const pwb_report_params *p, json_t *root,
				json_t *seen)
{
	pwb_effective *e = NULL;
	pwb_resolve_params rp = {.org = p->org};
	json_t *now = NULL;
	pwb_diag d;
	pwb_diag_init(&d);
	if (!pwb_policy_resolve(&e, p->policy, &rp, &d))
		now = json_pack("{s:s}", "hash", pwb_effective_hash(e));
	else
		now =
		    json_pack("{s:n, s:s}", "hash", "error",
			      d.n ? d.entries[0].message : "does not resolve");
	pwb_effective_free(e);
	pwb_diag_release(&d);
	json_object_set_new(
	    root, "policies",
	    json_pack("{s:o, s:o, s:s}", "in_force", now, "seen", seen, "rows",
		      "decisions of the org in the period, by the hash of the "
		      "effective policy each was made under (with its user's "
		      "settings)"));
	return PWB_OK;
}

pwb_status pwb__report_end(json_t *root, char **out)
{
	*out = json_dumps(root, JSON_INDENT(2) | JSON_REAL_PRECISION(6));
	return *out ? PWB_OK : PWB_ENOMEM;
}
