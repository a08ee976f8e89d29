/*
 * metrics.c - the server's counters and histograms, and their Prometheus
 * text exposition (GET /metrics; docs/server.md lists every metric).
 * Counters are atomics: a request adds to them without a lock.
 */
#include "server/server_int.h"

#include <stdlib.h>
#include <string.h>

static const unsigned status_codes[SRV_N_STATUS - 1] = {
    200, 400, 401, 403, 404, 405, 413, 422, 429, 499, 500, 502, 503, 504, 0};

static const double bucket_le[SRV_N_BUCKETS] = {
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
    0.05,   0.1,   0.5,	   1.0,	  5.0,	30.0};

static const char *const verdicts[4] = {"allow", "annotate", "redact",
					"block"};

void pwb__srv_metrics_init(srv_metrics *m)
{
	memset(m, 0, sizeof(*m));
	pthread_mutex_init(&m->lock, NULL);
}

void pwb__srv_metrics_release(srv_metrics *m)
{
	pthread_mutex_destroy(&m->lock);
}

static size_t status_index(unsigned status)
{
	for (size_t i = 0; i + 1 < SRV_N_STATUS && status_codes[i]; i++)
		if (status_codes[i] == status)
			return i;
	return SRV_N_STATUS - 1; /* any other */
}

void pwb__srv_metrics_request(srv_metrics *m, int route, unsigned status,
			      double seconds)
{
	size_t ri = route < 0 || route >= SRV_MAX_ROUTES ? SRV_MAX_ROUTES
							 : (size_t)route;
	atomic_fetch_add(&m->requests[ri][status_index(status)], 1);
	size_t b = 0;
	while (b < SRV_N_BUCKETS && seconds > bucket_le[b])
		b++;
	atomic_fetch_add(&m->buckets[ri][b], 1);
	atomic_fetch_add(&m->sum_us[ri],
			 (unsigned long long)(seconds * 1e6 + 0.5));
}

void pwb__srv_metrics_response(srv_metrics *m, const pwb_response *resp)
{
	if ((unsigned)resp->verdict < 4)
		atomic_fetch_add(&m->verdicts[resp->verdict], 1);
	atomic_fetch_add(&m->tokens, resp->completion_tokens);
	atomic_fetch_add(&m->gen_us,
			 (unsigned long long)(resp->seconds * 1e6 + 0.5));
	if (!resp->blocked || !resp->blocked_by.category)
		return;
	const char *tier = pwb_tier_str(resp->blocked_by.tier);
	pthread_mutex_lock(&m->lock);
	size_t i = 0;
	while (i < m->n_blocks &&
	       (strcmp(m->blocks[i].tier, tier) ||
		strcmp(m->blocks[i].category, resp->blocked_by.category)))
		i++;
	if (i == m->n_blocks && m->n_blocks < SRV_MAX_BLOCK_KEYS) {
		snprintf(m->blocks[i].tier, sizeof(m->blocks[i].tier), "%s",
			 tier);
		snprintf(m->blocks[i].category,
			 sizeof(m->blocks[i].category), "%s",
			 resp->blocked_by.category);
		m->blocks[i].n = 0;
		m->n_blocks++;
	}
	if (i < m->n_blocks)
		m->blocks[i].n++;
	pthread_mutex_unlock(&m->lock);
}

static void route_labels(pwb__buf *b, size_t ri)
{
	if (ri == SRV_MAX_ROUTES || ri >= pwb__srv_n_routes)
		pwb__buf_adds(b, "route=\"none\",method=\"\"");
	else
		pwb__buf_addf(b, "route=\"%s\",method=\"%s\"",
			      pwb__srv_routes[ri].pattern,
			      pwb__srv_routes[ri].method);
}

static void head(pwb__buf *b, const char *name, const char *type,
		 const char *help)
{
	pwb__buf_addf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name,
		      type);
}

char *pwb__srv_metrics_text(srv_metrics *m, const pwb_server *s)
{
	pwb__buf b;
	pwb__buf_init(&b, 0);
	size_t nr = pwb__srv_n_routes < SRV_MAX_ROUTES ? pwb__srv_n_routes
						      : SRV_MAX_ROUTES;
	head(&b, "pwb_http_requests_total", "counter",
	     "HTTP requests answered, by route and status.");
	for (size_t ri = 0; ri <= SRV_MAX_ROUTES; ri++) {
		if (ri >= nr && ri != SRV_MAX_ROUTES)
			continue;
		for (size_t si = 0; si < SRV_N_STATUS; si++) {
			unsigned long long n = atomic_load(&m->requests[ri][si]);
			if (!n)
				continue;
			pwb__buf_adds(&b, "pwb_http_requests_total{");
			route_labels(&b, ri);
			if (si + 1 < SRV_N_STATUS && status_codes[si])
				pwb__buf_addf(&b, ",status=\"%u\"} %llu\n",
					      status_codes[si], n);
			else
				pwb__buf_addf(&b, ",status=\"other\"} %llu\n",
					      n);
		}
	}
	head(&b, "pwb_http_request_duration_seconds", "histogram",
	     "Time from a request's first byte to its last answer byte.");
	for (size_t ri = 0; ri <= SRV_MAX_ROUTES; ri++) {
		if (ri >= nr && ri != SRV_MAX_ROUTES)
			continue;
		unsigned long long cum = 0;
		for (size_t k = 0; k <= SRV_N_BUCKETS; k++) {
			cum += atomic_load(&m->buckets[ri][k]);
			pwb__buf_adds(&b,
				      "pwb_http_request_duration_seconds_bucket{");
			route_labels(&b, ri);
			if (k < SRV_N_BUCKETS) {
				char le[32];
				pwb__fmt_double(le, sizeof(le), bucket_le[k]);
				pwb__buf_addf(&b, ",le=\"%s\"} %llu\n", le, cum);
			} else
				pwb__buf_addf(&b, ",le=\"+Inf\"} %llu\n", cum);
		}
		pwb__buf_adds(&b, "pwb_http_request_duration_seconds_sum{");
		route_labels(&b, ri);
		pwb__buf_addf(&b, "} %.6f\n",
			      atomic_load(&m->sum_us[ri]) / 1e6);
		pwb__buf_adds(&b, "pwb_http_request_duration_seconds_count{");
		route_labels(&b, ri);
		pwb__buf_addf(&b, "} %llu\n", cum);
	}
	head(&b, "pwb_decisions_total", "counter",
	     "Chat decisions, by verdict.");
	for (size_t v = 0; v < 4; v++)
		pwb__buf_addf(&b, "pwb_decisions_total{verdict=\"%s\"} %llu\n",
			      verdicts[v], atomic_load(&m->verdicts[v]));
	head(&b, "pwb_blocks_total", "counter",
	     "Blocked chat requests, by the tier and category that "
	     "blocked them.");
	pthread_mutex_lock(&m->lock);
	for (size_t i = 0; i < m->n_blocks; i++)
		pwb__buf_addf(&b,
			      "pwb_blocks_total{tier=\"%s\",category=\"%s\"} "
			      "%llu\n",
			      m->blocks[i].tier, m->blocks[i].category,
			      m->blocks[i].n);
	pthread_mutex_unlock(&m->lock);
	unsigned long long tokens = atomic_load(&m->tokens);
	double gen_s = atomic_load(&m->gen_us) / 1e6;
	head(&b, "pwb_engine_completion_tokens_total", "counter",
	     "Tokens generated for chat requests (every candidate).");
	pwb__buf_addf(&b, "pwb_engine_completion_tokens_total %llu\n", tokens);
	head(&b, "pwb_engine_request_seconds_total", "counter",
	     "Seconds spent serving chat requests, generation included.");
	pwb__buf_addf(&b, "pwb_engine_request_seconds_total %.6f\n", gen_s);
	head(&b, "pwb_engine_tokens_per_second", "gauge",
	     "Tokens generated per second of chat requests, since start.");
	pwb__buf_addf(&b, "pwb_engine_tokens_per_second %.3f\n",
		      gen_s > 0 ? tokens / gen_s : 0.0);
	head(&b, "pwb_queue_depth", "gauge",
	     "Requests waiting for a worker.");
	pwb__buf_addf(&b, "pwb_queue_depth %d\n", atomic_load(&m->queued));
	head(&b, "pwb_requests_running", "gauge",
	     "Requests a worker is serving.");
	pwb__buf_addf(&b, "pwb_requests_running %d\n",
		      atomic_load(&m->running));
	head(&b, "pwb_store_errors_total", "counter",
	     "Store calls that failed (not counting not-found).");
	pwb__buf_addf(&b, "pwb_store_errors_total %llu\n",
		      atomic_load(&m->store_errors));
	head(&b, "pwb_policy_reloads_total", "counter",
	     "Policy reloads, by result.");
	pwb__buf_addf(&b,
		      "pwb_policy_reloads_total{result=\"ok\"} %llu\n"
		      "pwb_policy_reloads_total{result=\"refused\"} %llu\n",
		      atomic_load(&m->reloads_ok),
		      atomic_load(&m->reloads_failed));
	head(&b, "pwb_uptime_seconds", "gauge", "Seconds since the start.");
	pwb__buf_addf(&b, "pwb_uptime_seconds %.3f\n",
		      pwb__now() - s->started);
	char *out = b.err ? NULL : pwb__buf_detach(&b);
	pwb__buf_release(&b);
	return out;
}
