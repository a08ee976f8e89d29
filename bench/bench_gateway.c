/*
 * bench_gateway.c - pwb serve beside nginx proxy_pass, both in front of the
 * same instant upstream on loopback (DESIGN §13, docs/BENCHMARKS.md).
 *
 *   build/bench/bench_gateway [--json] [--seconds S] [--rate R]
 *                             [--connections C] [--db sqlite:PATH]
 *
 * The upstream is a responder of this file (a forked child, one epoll
 * thread): it answers every POST with one fixed short chat completion, as
 * one JSON document or, when the body asks for "stream":true, as an event
 * stream. pwb serve runs with the shipped policies (org open-studio with
 * `candidates: 1`, in a folder of links to the shipped one), prompt and
 * response rails on, a service key in a temporary SQLite store. nginx runs
 * as the current user with a temporary config: `proxy_pass` to the same
 * upstream over kept-alive connections (an `upstream` block with
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

static const char chat_body[] =
    "{\"model\":\"pwb\",\"user\":\"bench-user\",\"messages\":[{\"role\":"
    "\"user\",\"content\":\"Write one line about a lighthouse keeper.\"}]}";

static void die(const char *fmt, const char *a)
{
	fprintf(stderr, "bench_gateway: ");
	fprintf(stderr, fmt, a);
	fputc('\n', stderr);
	exit(1);
}

static int listen_any(uint16_t *port)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
	int one = 1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	struct sockaddr_in a = {.sin_family = AF_INET,
				.sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof(a);
	if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) ||
	    listen(fd, 1024) || getsockname(fd, (struct sockaddr *)&a, &len))
		die("cannot listen on loopback: %s", strerror(errno));
	*port = ntohs(a.sin_port);
	return fd;
}

static int connect_to(uint16_t port)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = {.sin_family = AF_INET,
				.sin_port = htons(port),
				.sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	if (fd < 0)
		return -1;
	if (connect(fd, (struct sockaddr *)&a, sizeof(a))) {
		close(fd);
		return -1;
	}
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	return fd;
}

/* Where a whole HTTP message ends in buf[0..len), or 0 while incomplete;
 * *status gets a response's status. */
static size_t message_end(const char *buf, size_t len, int *status)
{
	const char *h = memmem(buf, len, "\r\n\r\n", 4);
	if (!h)
		return 0;
	size_t head = (size_t)(h - buf) + 4, body = 0;
	for (const char *p = buf; p && p < h;
	     p = memchr(p, '\n', (size_t)(h - p))) {
		p += *p == '\n';
		if (!strncasecmp(p, "Content-Length:", 15))
			body = strtoul(p + 15, NULL, 10);
	}
	if (status && len > 12 && !strncmp(buf, "HTTP/1.", 7))
		*status = (int)strtol(buf + 9, NULL, 10);
	return len >= head + body ? head + body : 0;
}

/* ---- the instant upstream ---- */

static char up_json[1024], up_sse[2048];

static void make_answers(void)
{
	static const char text[] = "The keeper climbed the stairs at dusk and "
				   "lit the lamp for the ships at sea.";
	char body[900];
	int n = snprintf(
	    body, sizeof(body),
	    "{\"id\":\"chatcmpl-instant\",\"object\":\"chat.completion\","
	    "\"created\":1,\"model\":\"instant\",\"choices\":[{\"index\":0,"
	    "\"message\":{\"role\":\"assistant\",\"content\":\"%s\"},"
	    "\"finish_reason\":\"stop\"}],\"usage\":{\"prompt_tokens\":20,"
	    "\"completion_tokens\":16,\"total_tokens\":36}}",
	    text);
	snprintf(up_json, sizeof(up_json),
		 "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
		 "Content-Length: %d\r\n\r\n%s",
		 n, body);
	char ev[1500];
	n = snprintf(
	    ev, sizeof(ev),
	    "data: {\"id\":\"chatcmpl-instant\",\"object\":"
	    "\"chat.completion.chunk\",\"created\":1,\"model\":\"instant\","
	    "\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\","
	    "\"content\":\"%s\"},\"finish_reason\":null}]}\n\n"
	    "data: {\"id\":\"chatcmpl-instant\",\"object\":"
	    "\"chat.completion.chunk\",\"created\":1,\"model\":\"instant\","
	    "\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":"
	    "\"stop\"}],\"usage\":{\"prompt_tokens\":20,"
	    "\"completion_tokens\":16,\"total_tokens\":36}}\n\n"
	    "data: [DONE]\n\n",
	    text);
	snprintf(up_sse, sizeof(up_sse),
		 "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
		 "Content-Length: %d\r\n\r\n%s",
		 n, ev);
}

typedef struct up_conn {
	size_t len;
	bool continued;
	char buf[CONN_BUF];
} up_conn;

static void up_close(int ep, int fd, up_conn **conns)
{
	epoll_ctl(ep, EPOLL_CTL_DEL, fd, NULL);
	close(fd);
	free(conns[fd]);
	conns[fd] = NULL;
}

/* Whether buf[0..len) holds needle, ignoring case (buf needs no NUL). */
static bool has_nocase(const char *buf, size_t len, const char *needle)
{
	size_t n = strlen(needle);
	for (size_t i = 0; i + n <= len; i++)
		if (!strncasecmp(buf + i, needle, n))
			return true;
	return false;
}

/* Reads what fd has; answers each whole request. */
static void up_read(int ep, int fd, up_conn **conns)
{
	up_conn *c = conns[fd];
	for (;;) {
		if (c->len == sizeof(c->buf)) {
			up_close(ep, fd, conns);
			return;
		}
		ssize_t k = read(fd, c->buf + c->len, sizeof(c->buf) - c->len);
		if (k == 0 || (k < 0 && errno != EAGAIN && errno != EINTR)) {
			up_close(ep, fd, conns);
			return;
		}
		if (k < 0)
			break;
		c->len += (size_t)k;
	}
	size_t end;
	while ((end = message_end(c->buf, c->len, NULL))) {
		const char *h = memmem(c->buf, end, "\r\n\r\n", 4);
		bool stream = memmem(h, end - (size_t)(h - c->buf),
				     "\"stream\":true", 13) != NULL;
		/* HTTP/1.0 (nginx's default to an upstream without
		 * proxy_http_version) or "Connection: close": one request a
		 * connection. */
		const char *eol = memmem(c->buf, end, "\r\n", 2);
		bool close_after =
		    !memmem(c->buf, (size_t)(eol - c->buf), "HTTP/1.1", 8) ||
		    has_nocase(c->buf, (size_t)(h - c->buf),
			       "connection: close");
		const char *ans = stream ? up_sse : up_json;
		if (write(fd, ans, strlen(ans)) < 0 || close_after) {
			up_close(ep, fd, conns);
			return;
		}
		memmove(c->buf, c->buf + end, c->len - end);
		c->len -= end;
		c->continued = false;
	}
	const char *h = memmem(c->buf, c->len, "\r\n\r\n", 4);
	if (h && !c->continued &&
	    has_nocase(c->buf, (size_t)(h - c->buf), "100-continue")) {
		c->continued = true;
		if (write(fd, "HTTP/1.1 100 Continue\r\n\r\n", 25) < 0)
			up_close(ep, fd, conns);
	}
}

static void upstream_main(int lfd)
{
	make_answers();
	int ep = epoll_create1(0);
	struct epoll_event ev = {.events = EPOLLIN, .data.fd = lfd};
	epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev);
	up_conn **conns = calloc(65536, sizeof(*conns));
	struct epoll_event evs[64];
	for (;;) {
		int n = epoll_wait(ep, evs, 64, -1);
		for (int i = 0; i < n; i++) {
			int fd = evs[i].data.fd;
			if (fd != lfd) {
				up_read(ep, fd, conns);
				continue;
			}
			int cfd;
			while ((cfd = accept4(lfd, NULL, NULL,
					      SOCK_NONBLOCK)) >= 0) {
				if (cfd >= 65536 ||
				    !(conns[cfd] =
					  calloc(1, sizeof(up_conn)))) {
					close(cfd);
					continue;
				}
				int one = 1;
				setsockopt(cfd, IPPROTO_TCP, TCP_NODELAY, &one,
					   sizeof(one));
				struct epoll_event ce = {.events = EPOLLIN,
							 .data.fd = cfd};
				epoll_ctl(ep, EPOLL_CTL_ADD, cfd, &ce);
			}
		}
	}
}

/* ---- processes ---- */

static pid_t spawn(char *const argv[], int out_fd, const char *err_path)
{
	pid_t pid = fork();
	if (pid < 0)
		die("fork: %s", strerror(errno));
	if (pid)
		return pid;
	if (out_fd >= 0)
		dup2(out_fd, 1);
	int e = open(err_path, O_WRONLY | O_CREAT | O_APPEND, 0600);
	if (e >= 0)
		dup2(e, 2);
	execvp(argv[0], argv);
	fprintf(stderr, "exec %s: %s\n", argv[0], strerror(errno));
	_exit(127);
}

static void stop(pid_t pid)
{
	if (pid <= 0)
		return;
	kill(pid, SIGTERM);
	for (int i = 0; i < 500; i++) {
		if (waitpid(pid, NULL, WNOHANG) == pid)
			return;
		usleep(10000);
	}
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
}

/* Runs argv, returns its standard output (the caller frees it). */
static char *run_capture(char *const argv[], const char *err_path)
{
	int p[2];
	if (pipe(p))
		die("pipe: %s", strerror(errno));
	pid_t pid = spawn(argv, p[1], err_path);
	close(p[1]);
	size_t cap = 1 << 16, len = 0;
	char *out = malloc(cap);
	ssize_t k;
	while (out && len + 1 < cap &&
	       (k = read(p[0], out + len, cap - 1 - len)) > 0)
		len += (size_t)k;
	close(p[0]);
	int wst = 0;
	waitpid(pid, &wst, 0);
	if (!out || !WIFEXITED(wst) || WEXITSTATUS(wst))
		die("%s failed (see the log in the temporary folder)", argv[0]);
	out[len] = 0;
	return out;
}

/* One request on a new connection; the status, or -1. */
static int one_request(uint16_t port, const char *req, char *resp, size_t cap)
{
	int fd = connect_to(port);
	if (fd < 0)
		return -1;
	int status = -1;
	size_t len = 0;
	if (write(fd, req, strlen(req)) == (ssize_t)strlen(req)) {
		ssize_t k;
		while (len + 1 < cap &&
		       (k = read(fd, resp + len, cap - 1 - len)) > 0) {
			len += (size_t)k;
			if (message_end(resp, len, &status))
				break;
		}
	}
	resp[len] = 0;
	close(fd);
	return status;
}

static void wait_ready(uint16_t port, const char *what)
{
	char req[128], resp[4096];
	snprintf(req, sizeof(req),
		 "GET /readyz HTTP/1.1\r\nHost: 127.0.0.1:%u\r\n\r\n", port);
	for (int i = 0; i < 6000; i++) {
		if (one_request(port, req, resp, sizeof(resp)) > 0)
			return;
		usleep(10000);
	}
	die("%s did not start", what);
}

static char *chat_request(uint16_t port, const char *key)
{
	static char req[2048];
	snprintf(
	    req, sizeof(req),
	    "POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1:%u\r\n"
	    "Authorization: Bearer %s\r\nContent-Type: application/json\r\n"
	    "Content-Length: %zu\r\n\r\n%s",
	    port, key, strlen(chat_body), chat_body);
	return req;
}

/* ---- max throughput: wrk ---- */

typedef struct wrk_result {
	double rps;
	long non2xx, errors;
} wrk_result;

static wrk_result run_wrk(const char *dir, uint16_t port, const char *key,
			  int conns, int secs)
{
	char lua[512], url[64], c[16], d[16], out_log[512];
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
	snprintf(url, sizeof(url), "http://127.0.0.1:%u/v1/chat/completions",
		 port);
	snprintf(c, sizeof(c), "%d", conns);
	snprintf(d, sizeof(d), "%ds", secs);
	snprintf(out_log, sizeof(out_log), "%s/wrk.log", dir);
	char *argv[] = {"wrk", "-t1", "-c", c, "-d", d, "-s", lua, url, NULL};
	char *out = run_capture(argv, out_log);
	wrk_result r = {0};
	const char *p = strstr(out, "Requests/sec:");
	if (!p)
		die("wrk printed no rate:\n%s", out);
	r.rps = strtod(p + 13, NULL);
	if ((p = strstr(out, "Non-2xx or 3xx responses:")))
		r.non2xx = strtol(p + 26, NULL, 10);
	if ((p = strstr(out, "Socket errors:"))) {
		long a = 0, b = 0, e = 0, t = 0;
		sscanf(p,
		       "Socket errors: connect %ld, read %ld, write %ld, "
		       "timeout %ld",
		       &a, &b, &e, &t);
		r.errors = a + b + e + t;
	}
	free(out);
	return r;
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

/* ---- the two proxies ---- */

static void write_policies(const char *dir)
{
	static const char *const links[] = {"categories.yaml", "law",
					    "lexicons"};
	char path[512], src[512];
	snprintf(path, sizeof(path), "%s/policies", dir);
	mkdir(path, 0700);
	for (size_t i = 0; i < 3; i++) {
		snprintf(src, sizeof(src), "%s/policies/%s", PWB_SOURCE_DIR,
			 links[i]);
		snprintf(path, sizeof(path), "%s/policies/%s", dir, links[i]);
		if (symlink(src, path))
			die("cannot link %s", path);
	}
	snprintf(path, sizeof(path), "%s/policies/org", dir);
	mkdir(path, 0700);
	snprintf(src, sizeof(src), "%s/policies/org/open-studio.yaml",
		 PWB_SOURCE_DIR);
	snprintf(path, sizeof(path), "%s/policies/org/open-studio.yaml", dir);
	FILE *in = fopen(src, "r"), *out = fopen(path, "w");
	if (!in || !out)
		die("cannot copy %s", src);
	char line[1024];
	while (fgets(line, sizeof(line), in))
		fputs(strncmp(line, "candidates:", 11) ? line
						       : "candidates: 1\n",
		      out);
	fclose(in);
	fclose(out);
}

static uint16_t free_port(void)
{
	uint16_t port;
	close(listen_any(&port));
	return port;
}

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

static pid_t start_pwb(const char *dir, const char *db, uint16_t up,
		       uint16_t *port)
{
	char pol[512], upstream[64], log[512];
	snprintf(pol, sizeof(pol), "%s/policies", dir);
	snprintf(upstream, sizeof(upstream), "http://127.0.0.1:%u/v1", up);
	snprintf(log, sizeof(log), "%s/pwb.log", dir);
	char *argv[] = {PWB_BINARY_DIR "/pwb",
			"serve",
			"--db",
			(char *)db,
			"--policies",
			pol,
			"--upstream",
			upstream,
			"--listen",
			"127.0.0.1:0",
			"--key-concurrency",
			"100000",
			"--max-connections",
			"4096",
			NULL};
	int p[2];
	if (pipe(p))
		die("pipe: %s", strerror(errno));
	pid_t pid = spawn(argv, p[1], log);
	close(p[1]);
	char line[256];
	size_t len = 0;
	ssize_t k;
	while (len + 1 < sizeof(line) && (k = read(p[0], line + len, 1)) > 0 &&
	       line[len++] != '\n')
		;
	line[len] = 0;
	close(p[0]);
	const char *at = strstr(line, "(port ");
	if (!at)
		die("pwb serve did not start: see %s", log);
	*port = (uint16_t)strtoul(at + 6, NULL, 10);
	wait_ready(*port, "pwb serve");
	return pid;
}

static void check_chat(uint16_t port, const char *key, const char *what)
{
	char resp[65536];
	int st = one_request(port, chat_request(port, key), resp, sizeof(resp));
	if (st != 200) {
		fprintf(stderr, "bench_gateway: %s answered %d:\n%s\n", what,
			st, resp);
		exit(1);
	}
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
	char db[600], log[600];
	if (db_arg)
		snprintf(db, sizeof(db), "%s", db_arg);
	else
		snprintf(db, sizeof(db), "sqlite:%s/pwb.db", dir);
	snprintf(log, sizeof(log), "%s/keys.log", dir);
	write_policies(dir);

	uint16_t up_port;
	int lfd = listen_any(&up_port);
	pid_t up = fork();
	if (up == 0)
		upstream_main(lfd);
	close(lfd);

	char pol[600];
	snprintf(pol, sizeof(pol), "%s/policies", dir);
	char *kargv[] = {PWB_BINARY_DIR "/pwb",
			 "keys",
			 "create",
			 "--db",
			 db,
			 "--org",
			 "open-studio",
			 "--role",
			 "service",
			 "--policies",
			 pol,
			 NULL};
	char *kout = run_capture(kargv, log);
	char *key = kout + strlen(kout);
	while (key > kout && (key[-1] == '\n' || key[-1] == ' '))
		*--key = 0;
	while (key > kout && key[-1] != '\n')
		key--;

	uint16_t ng_port, pwb_port;
	pid_t ng = start_nginx(dir, up_port, &ng_port);
	pid_t pw = start_pwb(dir, db, up_port, &pwb_port);
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
	free(kout);

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
