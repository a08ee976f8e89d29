/*
 * bench_gateway.c - pwb serve beside nginx proxy_pass, both in front of the
 * same instant upstream on loopback (DESIGN §13, docs/BENCHMARKS.md).
 *
 *   build/bench/bench_gateway [--json] [--seconds S] [--rate R]
 *                             [--connections C] [--db sqlite:PATH]
 *
 * The upstream is the responder of gateway_harness.c (a forked child, one
 * epoll thread), shared with bench_replicas: it answers every POST with one
 * fixed short chat completion, as one JSON document or, when the body asks for
 * "stream":true, as an event stream. pwb serve runs with the shipped policies
 * (org open-studio with `candidates: 1`, in a folder of links to the shipped
 * one), prompt and response rails on, a service key in a temporary SQLite
 * store. nginx runs as the current user with a temporary config: `proxy_pass`
 * to the same upstream over kept-alive connections (an `upstream` block with
 * `keepalive`, as pwb's upstream engine keeps its connections), the access
 * log on, as pwb logs each request.
 *
 * Two loads, each on pwb then on nginx:
 * - max throughput: wrk, one thread, C connections, S seconds;
 * - latency at a fixed rate R (default 1,000 req/s): the open-loop load of
 *   this file. Request i is due at start + i/R and its latency runs from
 *   that time (not from when it was sent) to its last byte, so a slow
 *   answer cannot hide the requests queued behind it. Requests go on up
 *   to 256 keep-alive connections; a due request waits for a free one.
 * added_latency_ms is pwb's p50 (p99) minus nginx's p50 (p99).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "bench.h"
#include "gateway_harness.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define MAX_CONNS 256
#define CONN_BUF 65536

/* ---- max throughput: wrk ---- */

static wrk_result run_wrk(const char *dir, uint16_t port, const char *key,
			  int conns, int secs)
{
	char lua[512];
	snprintf(lua, sizeof(lua), "%s/post.lua", dir);
	FILE *f = fopen(lua, "w");
	if (!f)
		die("cannot write %s", lua);
	fprintf(f,
		"wrk.method = \"POST\"\nwrk.body = '%s'\n"
		"wrk.headers[\"Content-Type\"] = \"application/json\"\n"
		"wrk.headers[\"Authorization\"] = \"Bearer %s\"\n",
		chat_body, key);
	fclose(f);
	return wrk_finish(wrk_start(dir, lua, port, 1, conns, secs, NULL));
}

/* ---- latency at a fixed rate: an open-loop load ---- */

typedef struct ld_conn {
	int fd;
	bool busy;
	double due;
	size_t len;
	char buf[CONN_BUF];
} ld_conn;

typedef struct rate_result {
	bench_p50_p99 ms;
	double max_ms;
	long non200, errors, sent;
	int conns;
} rate_result;

static rate_result run_rate(uint16_t port, const char *req, double rate,
			    int secs)
{
	size_t n = (size_t)(rate * secs), done = 0, next = 0;
	size_t req_len = strlen(req);
	double *lat = calloc(n, sizeof(double));
	double *due = calloc(n, sizeof(double)); /* waiting for a connection */
	size_t q_head = 0, q_len = 0;
	ld_conn *conns = calloc(MAX_CONNS, sizeof(*conns));
	int n_conns = 0, ep = epoll_create1(0);
	rate_result r = {0};
	if (!lat || !due || !conns)
		die("out of memory%s", "");
	double t0 = bench_now_s() + 0.01;
	while (done < n) {
		double now = bench_now_s();
		while (next < n && t0 + (double)next / rate <= now) {
			due[(q_head + q_len) % n] = t0 + (double)next / rate;
			q_len++;
			next++;
		}
		/* Due requests go out on idle connections, new ones if need
		 * be. */
		for (int i = 0; q_len && i < MAX_CONNS; i++) {
			ld_conn *c = &conns[i];
			if (c->busy)
				continue;
			if (i >= n_conns || c->fd <= 0) {
				if (i > n_conns)
					continue;
				c->fd = connect_to(port);
				if (c->fd < 0)
					die("cannot connect to port %s",
					    "under test");
				struct epoll_event ev = {
				    .events = EPOLLIN, .data.u32 = (uint32_t)i};
				epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev);
				if (i == n_conns)
					n_conns++;
			}
			c->due = due[q_head];
			q_head = (q_head + 1) % n;
			q_len--;
			c->busy = true;
			c->len = 0;
			if (write(c->fd, req, req_len) != (ssize_t)req_len)
				r.errors++;
			r.sent++;
		}
		double wake = next < n ? t0 + (double)next / rate : now + 0.1;
		double dt = wake - bench_now_s();
		struct timespec ts = {0, dt > 0 ? (long)(dt * 1e9) : 0};
		if (dt > 0.1)
			ts.tv_nsec = 100000000;
		struct epoll_event evs[64];
		int k = epoll_pwait2(ep, evs, 64, &ts, NULL);
		for (int e = 0; e < k; e++) {
			ld_conn *c = &conns[evs[e].data.u32];
			ssize_t got = read(c->fd, c->buf + c->len,
					   sizeof(c->buf) - 1 - c->len);
			int status = 0;
			size_t end = 0;
			if (got > 0) {
				c->len += (size_t)got;
				c->buf[c->len] = 0;
				end = message_end(c->buf, c->len, &status);
				if (!end)
					continue;
			}
			bool closing =
			    got <= 0 || strcasestr(c->buf, "Connection: close");
			if (c->busy) {
				lat[done++] = (bench_now_s() - c->due) * 1e3;
				if (got <= 0)
					r.errors++;
				else if (status != 200)
					r.non200++;
				c->busy = false;
			}
			if (closing) {
				epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
				close(c->fd);
				c->fd = -1;
			}
			c->len = 0;
		}
	}
	for (int i = 0; i < n_conns; i++)
		if (conns[i].fd > 0)
			close(conns[i].fd);
	close(ep);
	r.conns = n_conns;
	r.ms = bench_percentiles(lat, n);
	r.max_ms = lat[n - 1];
	free(lat);
	free(due);
	free(conns);
	return r;
}

/* ---- nginx ---- */

static pid_t start_nginx(const char *dir, uint16_t up, uint16_t *port)
{
	char conf[512], log[512];
	*port = free_port();
	snprintf(conf, sizeof(conf), "%s/nginx.conf", dir);
	snprintf(log, sizeof(log), "%s/nginx-error.log", dir);
	FILE *f = fopen(conf, "w");
	if (!f)
		die("cannot write %s", conf);
	fprintf(f,
		"daemon off;\nworker_processes 2;\npid %s/nginx.pid;\n"
		"error_log %s warn;\n"
		"events { worker_connections 4096; }\n"
		"http {\n  access_log %s/nginx-access.log;\n"
		"  client_body_temp_path %s/nginx-body;\n"
		"  proxy_temp_path %s/nginx-proxy;\n"
		"  fastcgi_temp_path %s/nginx-fastcgi;\n"
		"  uwsgi_temp_path %s/nginx-uwsgi;\n"
		"  scgi_temp_path %s/nginx-scgi;\n"
		"  keepalive_requests 1000000;\n"
		"  upstream instant {\n    server 127.0.0.1:%u;\n"
		"    keepalive 64;\n  }\n"
		"  server {\n    listen 127.0.0.1:%u;\n"
		"    location / {\n      proxy_pass http://instant;\n"
		"      proxy_http_version 1.1;\n"
		"      proxy_set_header Connection \"\";\n    }\n"
		"  }\n}\n",
		dir, log, dir, dir, dir, dir, dir, dir, up, *port);
	fclose(f);
	char *argv[] = {"nginx", "-p", (char *)dir, "-c",
			conf,	 "-e", log,	    NULL};
	pid_t pid = spawn(argv, -1, log);
	wait_ready(*port, "nginx");
	return pid;
}

int main(int argc, char **argv)
{
	bool json = false;
	int secs = 10, conns = 32;
	double rate = 1000;
	const char *db_arg = NULL;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--json"))
			json = true;
		else if (!strcmp(argv[i], "--seconds") && i + 1 < argc)
			secs = (int)strtol(argv[++i], NULL, 10);
		else if (!strcmp(argv[i], "--rate") && i + 1 < argc)
			rate = strtod(argv[++i], NULL);
		else if (!strcmp(argv[i], "--connections") && i + 1 < argc)
			conns = (int)strtol(argv[++i], NULL, 10);
		else if (!strcmp(argv[i], "--db") && i + 1 < argc)
			db_arg = argv[++i];
		else
			die("usage: bench_gateway [--json] [--seconds S] "
			    "[--rate R] [--connections C] [--db sqlite:PATH]%s",
			    "");
	}
	if (secs < 1 || secs > 3600 || rate < 1 || rate > 1e6 || conns < 1 ||
	    conns > 10000)
		die("--seconds 1..3600, --rate 1..1e6, --connections "
		    "1..10000%s",
		    "");
	signal(SIGPIPE, SIG_IGN);
	char dir[] = "/tmp/pwb-bench-gateway-XXXXXX";
	if (!mkdtemp(dir))
		die("mkdtemp: %s", strerror(errno));
	char db[600];
	if (db_arg)
		snprintf(db, sizeof(db), "%s", db_arg);
	else
		snprintf(db, sizeof(db), "sqlite:%s/pwb.db", dir);
	write_policies(dir);

	uint16_t up_port;
	pid_t up = upstream_start(&up_port);

	char *key = create_key(dir, db);

	uint16_t ng_port, pwb_port;
	pid_t ng = start_nginx(dir, up_port, &ng_port);
	pid_t pw = start_pwb(dir, "pwb", db, up_port, &pwb_port);
	check_chat(ng_port, key, "nginx");
	check_chat(pwb_port, key, "pwb serve");

	/* A short warm-up of each, then the loads in turn. */
	run_wrk(dir, pwb_port, key, conns, 1);
	run_wrk(dir, ng_port, key, conns, 1);
	wrk_result wp = run_wrk(dir, pwb_port, key, conns, secs);
	wrk_result wn = run_wrk(dir, ng_port, key, conns, secs);
	char req_p[2048], req_n[2048];
	snprintf(req_p, sizeof(req_p), "%s", chat_request(pwb_port, key));
	snprintf(req_n, sizeof(req_n), "%s", chat_request(ng_port, key));
	rate_result rp = run_rate(pwb_port, req_p, rate, secs);
	rate_result rn = run_rate(ng_port, req_n, rate, secs);

	stop(pw);
	stop(ng);
	stop(up);
	free(key);

	printf(
	    json ? "{\"pwb_rps\": %.0f, \"nginx_rps\": %.0f, "
		   "\"rps_ratio\": %.3f, \"added_latency_ms\": {\"p50\": "
		   "%.3f, \"p99\": %.3f}, \"rate\": %.0f, "
		   "\"pwb_latency_ms\": {\"p50\": %.3f, \"p99\": %.3f, "
		   "\"max\": %.3f}, \"nginx_latency_ms\": {\"p50\": %.3f, "
		   "\"p99\": %.3f, \"max\": %.3f}, \"errors\": {\"pwb_wrk\": "
		   "%ld, \"nginx_wrk\": %ld, \"pwb_rate\": %ld, "
		   "\"nginx_rate\": %ld}, \"rate_connections\": {\"pwb\": "
		   "%d, \"nginx\": %d}, \"connections\": %d, \"seconds\": "
		   "%d, \"db\": \"%s\", \"dir\": \"%s\"}\n"
		 : "pwb %.0f req/s, nginx %.0f req/s, ratio %.3f; added "
		   "latency p50 %.3f ms, p99 %.3f ms at %.0f req/s\n"
		   "pwb p50 %.3f p99 %.3f max %.3f ms; nginx p50 %.3f p99 "
		   "%.3f max %.3f ms\nerrors: wrk %ld / %ld, rate %ld / %ld; "
		   "connections at the rate %d / %d (wrk %d, %d s), db %s, "
		   "logs in %s\n",
	    wp.rps, wn.rps, wn.rps > 0 ? wp.rps / wn.rps : 0,
	    rp.ms.p50 - rn.ms.p50, rp.ms.p99 - rn.ms.p99, rate, rp.ms.p50,
	    rp.ms.p99, rp.max_ms, rn.ms.p50, rn.ms.p99, rn.max_ms,
	    wp.non2xx + wp.errors, wn.non2xx + wn.errors, rp.non200 + rp.errors,
	    rn.non200 + rn.errors, rp.conns, rn.conns, conns, secs, db, dir);
	return 0;
}
