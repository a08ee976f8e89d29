/*
 * gateway_harness.h - what the benchmarks that run `pwb serve` share
 * (bench_gateway, bench_replicas; gateway_harness.c): the instant
 * upstream, child processes, wrk, the policy folder, pwb serve and its
 * service key. Every failure ends the program with a message.
 */
#ifndef PWB_GATEWAY_HARNESS_H
#define PWB_GATEWAY_HARNESS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* A chat completion of one user message, user "bench-user". */
extern const char chat_body[];

/* Prints "PROGRAM: " and fmt with a, exits 1. */
void die(const char *fmt, const char *a);

/* A listening socket on a free loopback port (*port). */
int listen_any(uint16_t *port);
uint16_t free_port(void);
/* A connected socket to the loopback port, or -1. */
int connect_to(uint16_t port);
/* Where a whole HTTP message ends in buf[0..len), or 0 while incomplete;
 * *status gets a response's status. */
size_t message_end(const char *buf, size_t len, int *status);

/* The instant upstream, a forked child on a free loopback port (*port):
 * every POST gets one fixed short chat completion, as JSON or, when the
 * body asks for "stream":true, as an event stream. */
pid_t upstream_start(uint16_t *port);

/* Runs argv with standard output on out_fd (-1: inherited) and standard
 * error appended to err_path. */
pid_t spawn(char *const argv[], int out_fd, const char *err_path);
/* SIGTERM, then SIGKILL after 5 s; waits. */
void stop(pid_t pid);
/* Runs argv, returns its standard output (the caller frees it). */
char *run_capture(char *const argv[], const char *err_path);

/* One request on a new connection; the status, or -1. */
int one_request(uint16_t port, const char *req, char *resp, size_t cap);
/* Waits (up to 60 s) until GET /readyz on port answers. */
void wait_ready(uint16_t port, const char *what);
/* The HTTP request of chat_body with the key (a static buffer). */
char *chat_request(uint16_t port, const char *key);

/* DIR/policies: links to the shipped policies, org open-studio with
 * `candidates: 1`. */
void write_policies(const char *dir);
/* A new service key of org open-studio in db (the caller frees it). */
char *create_key(const char *dir, const char *db);
/* pwb serve on db (policies of DIR/policies, the upstream at port up,
 * standard error in DIR/NAME.log), ready; *port gets its port. */
pid_t start_pwb(const char *dir, const char *name, const char *db, uint16_t up,
		uint16_t *port);
/* Exits unless a chat through port answers 200. */
void check_chat(uint16_t port, const char *key, const char *what);

/* wrk with a Lua script, against 127.0.0.1:port; `arg` (may be NULL)
 * goes to the script's init(). Standard error in DIR/wrk.log. */
typedef struct wrk_run {
	pid_t pid;
	int fd; /* its standard output */
} wrk_run;

typedef struct wrk_result {
	double rps, p99_ms;
	double cpu_s; /* wrk's own CPU time, user and system */
	long requests, non2xx, errors;
} wrk_result;

wrk_run wrk_start(const char *dir, const char *lua, uint16_t port, int threads,
		  int conns, int secs, const char *arg);
/* Waits for wrk to end and reads what it printed. */
wrk_result wrk_finish(wrk_run w);

#endif
