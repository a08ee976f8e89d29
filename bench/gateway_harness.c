/*
 * gateway_harness.c - what the benchmarks that run `pwb serve` share
 * (bench_gateway, bench_replicas): the instant upstream, child processes,
 * wrk, the policy folder, pwb serve and its service key.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "gateway_harness.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define CONN_BUF 65536

const char chat_body[] =
    "{\"model\":\"pwb\",\"user\":\"bench-user\",\"messages\":[{\"role\":"
    "\"user\",\"content\":\"Write one line about a lighthouse keeper.\"}]}";

void die(const char *fmt, const char *a)
{
	fprintf(stderr, "%s: ", program_invocation_short_name);
	fprintf(stderr, fmt, a);
	fputc('\n', stderr);
	exit(1);
}

int listen_any(uint16_t *port)
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

int connect_to(uint16_t port)
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
size_t message_end(const char *buf, size_t len, int *status)
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

static _Noreturn void upstream_main(int lfd)
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

pid_t upstream_start(uint16_t *port)
{
	int lfd = listen_any(port);
	pid_t pid = fork();
	if (pid < 0)
		die("fork: %s", strerror(errno));
	if (pid == 0)
		upstream_main(lfd);
	close(lfd);
	return pid;
}

/* ---- processes ---- */

pid_t spawn(char *const argv[], int out_fd, const char *err_path)
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

void stop(pid_t pid)
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
char *run_capture(char *const argv[], const char *err_path)
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
int one_request(uint16_t port, const char *req, char *resp, size_t cap)
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

void wait_ready(uint16_t port, const char *what)
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

char *chat_request(uint16_t port, const char *key)
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

/* ---- pwb serve ---- */

void write_policies(const char *dir)
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

uint16_t free_port(void)
{
	uint16_t port;
	close(listen_any(&port));
	return port;
}

pid_t start_pwb(const char *dir, const char *name, const char *db, uint16_t up,
		uint16_t *port)
{
	char pol[512], upstream[64], log[512];
	snprintf(pol, sizeof(pol), "%s/policies", dir);
	snprintf(upstream, sizeof(upstream), "http://127.0.0.1:%u/v1", up);
	snprintf(log, sizeof(log), "%s/%s.log", dir, name);
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

void check_chat(uint16_t port, const char *key, const char *what)
{
	char resp[65536];
	int st = one_request(port, chat_request(port, key), resp, sizeof(resp));
	if (st != 200) {
		fprintf(stderr, "%s: %s answered %d:\n%s\n",
			program_invocation_short_name, what, st, resp);
		exit(1);
	}
}

/* The service key of a new key for org open-studio (the caller frees
 * it). */
char *create_key(const char *dir, const char *db)
{
	char pol[600], log[600];
	snprintf(pol, sizeof(pol), "%s/policies", dir);
	snprintf(log, sizeof(log), "%s/keys.log", dir);
	char *argv[] = {PWB_BINARY_DIR "/pwb",
			"keys",
			"create",
			"--db",
			(char *)db,
			"--org",
			"open-studio",
			"--role",
			"service",
			"--policies",
			pol,
			NULL};
	char *out = run_capture(argv, log);
	char *key = out + strlen(out);
	while (key > out && (key[-1] == '\n' || key[-1] == ' '))
		*--key = 0;
	while (key > out && key[-1] != '\n')
		key--;
	char *copy = strdup(key);
	if (!copy)
		die("out of memory%s", "");
	free(out);
	return copy;
}

/* ---- wrk ---- */

wrk_run wrk_start(const char *dir, const char *lua, uint16_t port, int threads,
		  int conns, int secs, const char *arg)
{
	char url[64], t[16], c[16], d[16], err_log[512];
	snprintf(url, sizeof(url), "http://127.0.0.1:%u/v1/chat/completions",
		 port);
	snprintf(t, sizeof(t), "-t%d", threads);
	snprintf(c, sizeof(c), "%d", conns);
	snprintf(d, sizeof(d), "%ds", secs);
	snprintf(err_log, sizeof(err_log), "%s/wrk.log", dir);
	char *argv[] = {"wrk", "--latency", t,	 "-c", c,	    "-d", d,
			"-s",  (char *)lua, url, "--", (char *)arg, NULL};
	if (!arg)
		argv[10] = NULL;
	int p[2];
	if (pipe2(p, O_CLOEXEC))
		die("pipe: %s", strerror(errno));
	wrk_run w = {.pid = spawn(argv, p[1], err_log), .fd = p[0]};
	close(p[1]);
	return w;
}

/* A latency of wrk's output ("12.34ms") in milliseconds. */
static double wrk_ms(const char *p)
{
	char *end;
	double v = strtod(p, &end);
	if (!strncmp(end, "us", 2))
		return v / 1e3;
	if (!strncmp(end, "ms", 2))
		return v;
	if (*end == 's')
		return v * 1e3;
	if (*end == 'm')
		return v * 60e3;
	return v;
}

wrk_result wrk_finish(wrk_run w)
{
	size_t cap = 1 << 16, len = 0;
	char *out = malloc(cap);
	ssize_t k;
	while (out && len + 1 < cap &&
	       (k = read(w.fd, out + len, cap - 1 - len)) > 0)
		len += (size_t)k;
	close(w.fd);
	int wst = 0;
	struct rusage ru = {0};
	wait4(w.pid, &wst, 0, &ru);
	if (!out || !WIFEXITED(wst) || WEXITSTATUS(wst))
		die("wrk failed (see wrk.log in the temporary folder)%s", "");
	out[len] = 0;
	wrk_result r = {0};
	r.cpu_s =
	    (double)ru.ru_utime.tv_sec + (double)ru.ru_stime.tv_sec +
	    ((double)ru.ru_utime.tv_usec + (double)ru.ru_stime.tv_usec) * 1e-6;
	const char *p = strstr(out, "Requests/sec:");
	if (!p)
		die("wrk printed no rate:\n%s", out);
	r.rps = strtod(p + 13, NULL);
	if ((p = strstr(out, " requests in "))) {
		while (p > out && p[-1] != '\n')
			p--;
		r.requests = strtol(p, NULL, 10);
	}
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
	if ((p = strstr(out, "Latency Distribution")) && (p = strstr(p, "99%")))
		r.p99_ms = wrk_ms(p + 3 + strspn(p + 3, " \t"));
	free(out);
	return r;
}
