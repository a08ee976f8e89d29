/* mock_upstream.c - see mock_upstream.h. */
#include "mock_upstream.h"

#include <curl/curl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "util/util.h"

static pid_t pid;
static int port = -1;
static char url[64];

int mock_start(const char *key)
{
	/* A proxy from the environment would take our 127.0.0.1. */
	static const char *const proxies[] = {"http_proxy",  "HTTP_PROXY",
					      "https_proxy", "HTTPS_PROXY",
					      "all_proxy",   "ALL_PROXY"};
	for (size_t i = 0; i < PWB_ARRAY_LEN(proxies); i++)
		unsetenv(proxies[i]);
	if (key)
		setenv("MOCK_OPENAI_KEY", key, 1);
	int fds[2];
	if (pipe(fds))
		return -1;
	pid = fork();
	if (pid < 0)
		return -1;
	if (pid == 0) {
		/* Should the test crash, the mock must not outlive it (and
		 * hold CTest's pipe open). */
		prctl(PR_SET_PDEATHSIG, SIGTERM);
		dup2(fds[1], 1);
		close(fds[0]);
		close(fds[1]);
		execlp("python3", "python3", PWB_MOCK_OPENAI, (char *)NULL);
		_exit(127);
	}
	close(fds[1]);
	FILE *f = fdopen(fds[0], "r");
	char line[32];
	bool ok = f && fgets(line, sizeof(line), f);
	if (f)
		fclose(f);
	port = ok ? (int)strtol(line, NULL, 10) : 0;
	if (port <= 0) {
		fprintf(stderr, "the mock upstream did not start (%s)\n",
			PWB_MOCK_OPENAI);
		return port = -1;
	}
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/v1", port);
	return curl_global_init(CURL_GLOBAL_DEFAULT) ? -1 : port;
}

void mock_stop(void)
{
	if (pid > 0) {
		kill(pid, SIGTERM);
		waitpid(pid, NULL, 0);
		pid = 0;
		curl_global_cleanup();
	}
}

int mock_port(void)
{
	return port;
}

const char *mock_url(void)
{
	return url;
}

static size_t keep(char *data, size_t size, size_t n, void *user)
{
	pwb__buf_add(user, data, size * n);
	return size * n;
}

/* GET /WHAT?model=MODEL into b; the HTTP status, or -1. */
static long get(const char *what, const char *model, pwb__buf *b)
{
	CURL *h = curl_easy_init();
	if (!h)
		return -1;
	char *m = curl_easy_escape(h, model, 0);
	char u[1024];
	snprintf(u, sizeof(u), "http://127.0.0.1:%d/%s?model=%s", port, what,
		 m ? m : "");
	curl_free(m);
	curl_easy_setopt(h, CURLOPT_URL, u);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, keep);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, b);
	long status = -1;
	if (curl_easy_perform(h) == CURLE_OK)
		curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
	curl_easy_cleanup(h);
	return status;
}

int mock_count(const char *model)
{
	pwb__buf b;
	pwb__buf_init(&b, 0);
	int n = get("count", model, &b) == 200 && b.s
		    ? (int)strtol(b.s, NULL, 10)
		    : -1;
	pwb__buf_release(&b);
	return n;
}

json_t *mock_last(const char *model)
{
	pwb__buf b;
	pwb__buf_init(&b, 0);
	json_t *j = get("last", model, &b) == 200 && b.s
			? json_loadb(b.s, b.len, 0, NULL)
			: NULL;
	pwb__buf_release(&b);
	return j;
}
