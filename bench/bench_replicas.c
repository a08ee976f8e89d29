/*
 * bench_replicas.c - how many `pwb serve` replicas one PostgreSQL server
 * carries (docs/deploy.md, docs/BENCHMARKS.md):
 *
 *   build/bench/bench_replicas [--json] [--db postgresql://...]
 *                              [--replicas 1,2,4] [--seconds S]
 *                              [--connections C] [--users U]
 *                              [--feedback-every K]
 *
 * The database is --db, else PWB_TEST_POSTGRES; the store is made in a
 * schema of its own (pwb_bench_replicas_PID), dropped at the end. For each
 * count N of --replicas, N pwb serve processes run on that one database,
 * each with the instant upstream of gateway_harness.c (org open-studio
 * with `candidates: 1`, both rails on, --key-concurrency 100000), and N wrk
 * load them at once, one wrk per replica, C connections in all (default
 * 32) spread evenly over them, for S seconds after a 1 s warm-up. Each
 * request is a chat of a user drawn at random from U users (made
 * beforehand, consenting to learning); with --feedback-every K, every K-th
 * answer is rated (`"rating": 5`, one feedback event), and wrk runs one
 * thread per connection so that each thread knows whose answer it read.
 *
 * Measured over the load (the same window for all): requests per second
 * (wrk; chats and ratings from each replica's /metrics), errors (non-2xx
 * and socket errors), the worst replica's p99; CPU time of the replicas,
 * of the PostgreSQL server (the postmaster of the data directory and its
 * children, from /proc: the server must run on this machine), of the wrk
 * and the upstream, interrupts, and the whole machine (/proc/stat: what
 * is left is other work on the machine); and the server's counters
 * (pg_stat_database of the database: transactions, rows inserted and
 * updated; pg_stat_wal, of the whole server: WAL syncs and bytes). Per
 * request: the server's CPU, the replicas' CPU and those counters.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "bench.h"
#include "gateway_harness.h"

#include <dirent.h>
#include <errno.h>
#include <libpq-fe.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_REPLICAS 16
#define MAX_RUNS 16
#define METRICS_BUF (1 << 20)
/* A busy backend reports its counts at most once a second; then, once
 * idle, 10 s later (PGSTAT_IDLE_INTERVAL): the counters are read after a
 * pause longer than that. */
#define SETTLE_US 11000000

/* ---- the PostgreSQL server ---- */

static PGconn *pg_connect(const char *url)
{
	PGconn *c = PQconnectdb(url);
	if (PQstatus(c) != CONNECTION_OK)
		die("%s", PQerrorMessage(c));
	return c;
}

static PGresult *pg_query(PGconn *c, const char *sql)
{
	PGresult *r = PQexec(c, sql);
	ExecStatusType st = PQresultStatus(r);
	if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK)
		die("%s", PQerrorMessage(c));
	return r;
}

static void pg_exec(PGconn *c, const char *sql)
{
	PQclear(pg_query(c, sql));
}

typedef struct pg_counters {
	double xacts, inserted, updated, wal_syncs, wal_bytes;
} pg_counters;

/* The server's counters (read them SETTLE_US after the load). */
static pg_counters pg_read(PGconn *c)
{
	PGresult *r = pg_query(
	    c, "SELECT d.xact_commit + d.xact_rollback, d.tup_inserted, "
	       "d.tup_updated, w.wal_sync, w.wal_bytes "
	       "FROM pg_stat_database d, pg_stat_wal w "
	       "WHERE d.datname = current_database()");
	pg_counters k = {0};
	if (PQntuples(r) == 1) {
		k.xacts = strtod(PQgetvalue(r, 0, 0), NULL);
		k.inserted = strtod(PQgetvalue(r, 0, 1), NULL);
		k.updated = strtod(PQgetvalue(r, 0, 2), NULL);
		k.wal_syncs = strtod(PQgetvalue(r, 0, 3), NULL);
		k.wal_bytes = strtod(PQgetvalue(r, 0, 4), NULL);
	}
	PQclear(r);
	return k;
}

/* The postmaster's pid, from its data directory, or 0 when it cannot be
 * read (a server on another machine, or a user without the right). */
static pid_t pg_postmaster(PGconn *c)
{
	PGresult *r = PQexec(c, "SELECT setting FROM pg_settings "
				"WHERE name = 'data_directory'");
	pid_t pid = 0;
	if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1) {
		char path[1024];
		snprintf(path, sizeof(path), "%s/postmaster.pid",
			 PQgetvalue(r, 0, 0));
		FILE *f = fopen(path, "r");
		long v = 0;
		if (f && fscanf(f, "%ld", &v) == 1 && v > 0 && !kill(v, 0))
			pid = (pid_t)v;
		if (f)
			fclose(f);
	}
	PQclear(r);
	return pid;
}

/* ---- CPU time from /proc ---- */

/* User and system CPU seconds of a process, and *ppid; -1 when gone. */
static double proc_cpu(pid_t pid, pid_t *ppid)
{
	char path[64], buf[1024];
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	FILE *f = fopen(path, "r");
	if (!f)
		return -1;
	size_t n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = 0;
	/* The command may hold spaces and parentheses: fields follow the
	 * last ')'. */
	const char *p = strrchr(buf, ')');
	char state;
	int pp;
	unsigned long ut, st;
	if (!p ||
	    sscanf(p + 2, "%c %d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu",
		   &state, &pp, &ut, &st) != 4)
		return -1;
	if (ppid)
		*ppid = pp;
	return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

/* CPU seconds of the postmaster and all its children. */
static double pg_cpu(pid_t postmaster)
{
	if (!postmaster)
		return 0;
	double sum = proc_cpu(postmaster, NULL);
	DIR *d = opendir("/proc");
	struct dirent *e;
	while (d && (e = readdir(d))) {
		char *end;
		long pid = strtol(e->d_name, &end, 10);
		pid_t pp = 0;
		double s;
		if (*end || pid <= 0 || (s = proc_cpu((pid_t)pid, &pp)) < 0 ||
		    pp != postmaster)
			continue;
		sum += s;
	}
	if (d)
		closedir(d);
	return sum;
}

/* Busy, interrupt (irq and softirq: loopback traffic, mostly) and all
 * CPU seconds of the whole machine (every core). */
static void machine_cpu(double *busy, double *irq, double *all)
{
	unsigned long long v[8] = {0};
	FILE *f = fopen("/proc/stat", "r");
	if (!f ||
	    fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0],
		   &v[1], &v[2], &v[3], &v[4], &v[5], &v[6], &v[7]) != 8)
		die("cannot read %s", "/proc/stat");
	fclose(f);
	double hz = (double)sysconf(_SC_CLK_TCK), sum = 0;
	for (int i = 0; i < 8; i++)
		sum += (double)v[i];
	*all = sum / hz;
	*busy = (sum - (double)v[3] - (double)v[4]) / hz; /* idle, iowait */
	*irq = ((double)v[5] + (double)v[6]) / hz;
}

/* ---- the replicas' own counts ---- */

typedef struct counts {
	double chats, ratings, failed; /* answered 200; other statuses */
} counts;

/* Adds the requests a replica answered, by its /metrics. */
static void metrics_add(uint16_t port, counts *k, char *buf)
{
	char req[128];
	snprintf(req, sizeof(req),
		 "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1:%u\r\n\r\n", port);
	if (one_request(port, req, buf, METRICS_BUF) != 200)
		die("a replica's /metrics did not answer%s", "");
	for (char *l = buf; l && *l; l = strchr(l, '\n'), l = l ? l + 1 : l) {
		if (strncmp(l, "pwb_http_requests_total{", 24))
			continue;
		char *eol = strchr(l, '\n'), *val = strstr(l, "} ");
		if (!val || (eol && val > eol))
			continue;
		double v = strtod(val + 2, NULL);
		bool chat =
			 !strncmp(l + 24, "route=\"/v1/chat/completions\"", 28),
		     rating = !strncmp(l + 24, "route=\"/v1/feedback\"", 20);
		char *st = strstr(l, "status=\"");
		if (!st || (eol && st > eol) || (!chat && !rating))
			continue;
		if (strncmp(st + 8, "200\"", 4))
			k->failed += v;
		else if (chat)
			k->chats += v;
		else
			k->ratings += v;
	}
}

/* ---- one run: N replicas at once ---- */

typedef struct run_result {
	int replicas;
	double secs, rps, rps_each[MAX_REPLICAS], p99_ms;
	long errors;
	counts k;
	/* CPU cores used over the load (CPU seconds per second) */
	double cpu_pwb, cpu_pg, cpu_wrk, cpu_up, cpu_irq, cpu_other, cpu_idle;
	pg_counters pg;
} run_result;

typedef struct setup {
	const char *dir, *db, *lua, *key;
	PGconn *admin;
	pid_t postmaster, up;
	uint16_t up_port;
	int secs, conns;
	bool one_thread_each; /* a wrk thread per connection */
	char *metrics;
} setup;

static counts replica_counts(const setup *s, const uint16_t *ports, int n)
{
	counts k = {0};
	for (int i = 0; i < n; i++)
		metrics_add(ports[i], &k, s->metrics);
	return k;
}

static void load(const setup *s, const uint16_t *ports, int n, int secs,
		 wrk_result *out)
{
	wrk_run w[MAX_REPLICAS];
	char arg[16];
	for (int i = 0; i < n; i++) {
		/* The connections are spread over the replicas. */
		int c = s->conns / n + (i < s->conns % n);
		snprintf(arg, sizeof(arg), "%d", i);
		w[i] = wrk_start(s->dir, s->lua, ports[i],
				 s->one_thread_each ? c : 1, c, secs, arg);
	}
	for (int i = 0; i < n; i++)
		out[i] = wrk_finish(w[i]);
}

static void run(const setup *s, int n, run_result *r)
{
	pid_t pids[MAX_REPLICAS];
	uint16_t ports[MAX_REPLICAS];
	char name[32];
	for (int i = 0; i < n; i++) {
		snprintf(name, sizeof(name), "pwb-%d-%d", n, i + 1);
		pids[i] = start_pwb(s->dir, name, s->db, s->up_port, &ports[i]);
		check_chat(ports[i], s->key, "pwb serve");
	}
	wrk_result w[MAX_REPLICAS];
	load(s, ports, n, 1, w); /* warm-up */
	usleep(SETTLE_US);
	pg_counters pg0 = pg_read(s->admin);
	counts k0 = replica_counts(s, ports, n);

	double busy0, irq0, all0, busy1, irq1, all1, pw0 = 0, pw1 = 0;
	machine_cpu(&busy0, &irq0, &all0);
	double pg0_cpu = pg_cpu(s->postmaster), up0 = proc_cpu(s->up, NULL);
	for (int i = 0; i < n; i++)
		pw0 += proc_cpu(pids[i], NULL);
	double t0 = bench_now_s();
	load(s, ports, n, s->secs, w);
	double t = bench_now_s() - t0;
	machine_cpu(&busy1, &irq1, &all1);
	double pg1_cpu = pg_cpu(s->postmaster), up1 = proc_cpu(s->up, NULL);
	for (int i = 0; i < n; i++)
		pw1 += proc_cpu(pids[i], NULL);

	usleep(SETTLE_US);
	pg_counters pg1 = pg_read(s->admin);
	counts k1 = replica_counts(s, ports, n);
	for (int i = 0; i < n; i++)
		stop(pids[i]);

	*r = (run_result){.replicas = n, .secs = t};
	double wrk_cpu = 0;
	for (int i = 0; i < n; i++) {
		r->rps += w[i].rps;
		r->rps_each[i] = w[i].rps;
		r->errors += w[i].non2xx + w[i].errors;
		if (w[i].p99_ms > r->p99_ms)
			r->p99_ms = w[i].p99_ms;
		wrk_cpu += w[i].cpu_s;
	}
	r->k = (counts){k1.chats - k0.chats, k1.ratings - k0.ratings,
			k1.failed - k0.failed};
	r->cpu_pwb = (pw1 - pw0) / t;
	r->cpu_pg = s->postmaster ? (pg1_cpu - pg0_cpu) / t : -1;
	r->cpu_wrk = wrk_cpu / t;
	r->cpu_up = (up1 - up0) / t;
	r->cpu_irq = (irq1 - irq0) / t;
	r->cpu_other = (busy1 - busy0) / t - r->cpu_pwb -
		       (r->cpu_pg > 0 ? r->cpu_pg : 0) - r->cpu_wrk -
		       r->cpu_up - r->cpu_irq;
	r->cpu_idle = (all1 - all0 - (busy1 - busy0)) / t;
	r->pg = (pg_counters){
	    pg1.xacts - pg0.xacts, pg1.inserted - pg0.inserted,
	    pg1.updated - pg0.updated, pg1.wal_syncs - pg0.wal_syncs,
	    pg1.wal_bytes - pg0.wal_bytes};
}

/* ---- the store: users, consent, the Lua script ---- */

/* U users bench-u1 .. bench-uU of open-studio who consent to learning:
 * the first by `pwb user consent`, the others copies of its row. */
static void make_users(const char *dir, const char *db, int users)
{
	char pol[600], log[600];
	snprintf(pol, sizeof(pol), "%s/policies", dir);
	snprintf(log, sizeof(log), "%s/consent.log", dir);
	char *argv[] = {PWB_BINARY_DIR "/pwb",
			"user",
			"consent",
			"--db",
			(char *)db,
			"--org",
			"open-studio",
			"--user",
			"bench-u1",
			"--grant",
			"--policies",
			pol,
			NULL};
	free(run_capture(argv, log));
	char sql[1024];
	snprintf(sql, sizeof(sql),
		 "INSERT INTO users (org, id, settings, consent, model, "
		 "model_version, erased, created, updated) "
		 "SELECT org, 'bench-u' || g, settings, consent, model, "
		 "model_version, erased, created, updated "
		 "FROM users, generate_series(2, %d) g "
		 "WHERE org = 'open-studio' AND id = 'bench-u1'",
		 users);
	PGconn *c = pg_connect(db);
	pg_exec(c, sql);
	pg_exec(c, "ANALYZE");
	PQfinish(c);
}

static void write_lua(const char *path, const char *key, int users, int every)
{
	FILE *f = fopen(path, "w");
	if (!f)
		die("cannot write %s", path);
	fprintf(f,
		"local users, every = %d, %d\n"
		"wrk.method = \"POST\"\n"
		"wrk.headers[\"Content-Type\"] = \"application/json\"\n"
		"wrk.headers[\"Authorization\"] = \"Bearer %s\"\n",
		users, every, key);
	fputs("local chat = '{\"model\":\"pwb\",\"user\":\"%s\",\"messages\":"
	      "[{\"role\":\"user\",\"content\":\"Write one line about a "
	      "lighthouse keeper.\"}]}'\n"
	      "local rating = '{\"user\":\"%s\",\"decision_id\":\"%s\","
	      "\"rating\":5}'\n"
	      "local counter = 0\n"
	      "function setup(thread)\n"
	      "  thread:set(\"id\", counter)\n"
	      "  counter = counter + 1\n"
	      "end\n"
	      "local user, n, fb, sent_fb = nil, 0, nil, false\n"
	      "function init(args)\n"
	      "  math.randomseed(os.time() + 1000 * (tonumber(args[1]) or 0)"
	      " + id)\n"
	      "end\n"
	      "function request()\n"
	      "  sent_fb = fb ~= nil\n"
	      "  if fb then\n"
	      "    local body = fb\n"
	      "    fb = nil\n"
	      "    return wrk.format(nil, \"/v1/feedback\", nil, body)\n"
	      "  end\n"
	      "  user = \"bench-u\" .. math.random(users)\n"
	      "  return wrk.format(nil, \"/v1/chat/completions\", nil, "
	      "chat:format(user))\n"
	      "end\n"
	      "if every > 0 then\n"
	      "  function response(status, headers, body)\n"
	      "    if sent_fb then return end\n"
	      "    local d = body:match('\"decision_id\":%s*\"([^\"]+)\"')\n"
	      "    if d then\n"
	      "      n = n + 1\n"
	      "      if n % every == 0 then fb = rating:format(user, d) end\n"
	      "    end\n"
	      "  end\n"
	      "end\n",
	      f);
	fclose(f);
}

/* ---- output ---- */

static double per(double v, double reqs)
{
	return reqs > 0 ? v / reqs : 0;
}

static void print_run(const run_result *r, bool json, bool last)
{
	double reqs = r->k.chats + r->k.ratings;
	double pg_ms =
	    r->cpu_pg >= 0 ? per(r->cpu_pg * r->secs, reqs) * 1e3 : -1;
	double pwb_ms = per(r->cpu_pwb * r->secs, reqs) * 1e3;
	if (json) {
		printf("  {\"replicas\": %d, \"rps\": %.0f, \"rps_each\": [",
		       r->replicas, r->rps);
		for (int i = 0; i < r->replicas; i++)
			printf("%s%.0f", i ? ", " : "", r->rps_each[i]);
		printf("], \"errors\": %ld, \"p99_ms_worst\": %.1f, "
		       "\"chats\": %.0f, \"ratings\": %.0f, \"failed\": %.0f, "
		       "\"seconds\": %.1f, ",
		       r->errors, r->p99_ms, r->k.chats, r->k.ratings,
		       r->k.failed, r->secs);
		printf("\"cpu_cores\": {\"pwb\": %.2f, \"postgres\": %.2f, "
		       "\"wrk\": %.2f, \"upstream\": %.2f, \"irq\": %.2f, "
		       "\"other\": %.2f, \"idle\": %.2f}, ",
		       r->cpu_pwb, r->cpu_pg, r->cpu_wrk, r->cpu_up, r->cpu_irq,
		       r->cpu_other, r->cpu_idle);
		printf("\"per_request\": {\"postgres_cpu_ms\": %.3f, "
		       "\"pwb_cpu_ms\": %.3f, \"pg_xacts\": %.2f, "
		       "\"rows_inserted\": %.2f, \"rows_updated\": %.3f, "
		       "\"wal_syncs\": %.3f, \"wal_bytes\": %.0f}}%s\n",
		       pg_ms, pwb_ms, per(r->pg.xacts, reqs),
		       per(r->pg.inserted, reqs), per(r->pg.updated, reqs),
		       per(r->pg.wal_syncs, reqs), per(r->pg.wal_bytes, reqs),
		       last ? "" : ",");
		return;
	}
	printf("%d replica%s: %.0f req/s (", r->replicas,
	       r->replicas == 1 ? "" : "s", r->rps);
	for (int i = 0; i < r->replicas; i++)
		printf("%s%.0f", i ? " + " : "", r->rps_each[i]);
	printf("), errors %ld, worst p99 %.1f ms; %.0f chats, %.0f ratings "
	       "in %.1f s\n",
	       r->errors, r->p99_ms, r->k.chats, r->k.ratings, r->secs);
	printf("  CPU cores: pwb %.2f, postgres %.2f, wrk %.2f, upstream "
	       "%.2f, irq %.2f, other %.2f, idle %.2f\n",
	       r->cpu_pwb, r->cpu_pg, r->cpu_wrk, r->cpu_up, r->cpu_irq,
	       r->cpu_other, r->cpu_idle);
	printf("  per request: postgres CPU %.3f ms, pwb CPU %.3f ms, %.2f "
	       "transactions, %.2f rows inserted, %.3f updated, %.3f WAL "
	       "syncs, %.0f WAL bytes\n",
	       pg_ms, pwb_ms, per(r->pg.xacts, reqs), per(r->pg.inserted, reqs),
	       per(r->pg.updated, reqs), per(r->pg.wal_syncs, reqs),
	       per(r->pg.wal_bytes, reqs));
}

static void usage(void)
{
	die("usage: bench_replicas [--json] [--db postgresql://...] "
	    "[--replicas 1,2,4] [--seconds S] [--connections C] [--users U] "
	    "[--feedback-every K]%s",
	    "");
}

int main(int argc, char **argv)
{
	bool json = false;
	int secs = 10, conns = 32, users = 1000, every = 0, counts_n = 0;
	int replicas[MAX_RUNS];
	const char *base = getenv("PWB_TEST_POSTGRES"), *list = "1,2,4";
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--json"))
			json = true;
		else if (!strcmp(argv[i], "--db") && i + 1 < argc)
			base = argv[++i];
		else if (!strcmp(argv[i], "--replicas") && i + 1 < argc)
			list = argv[++i];
		else if (!strcmp(argv[i], "--seconds") && i + 1 < argc)
			secs = (int)strtol(argv[++i], NULL, 10);
		else if (!strcmp(argv[i], "--connections") && i + 1 < argc)
			conns = (int)strtol(argv[++i], NULL, 10);
		else if (!strcmp(argv[i], "--users") && i + 1 < argc)
			users = (int)strtol(argv[++i], NULL, 10);
		else if (!strcmp(argv[i], "--feedback-every") && i + 1 < argc)
			every = (int)strtol(argv[++i], NULL, 10);
		else
			usage();
	}
	for (const char *p = list; *p && counts_n < MAX_RUNS;) {
		char *end;
		long v = strtol(p, &end, 10);
		if (end == p || v < 1 || v > MAX_REPLICAS)
			die("--replicas: counts 1..16 separated by commas, "
			    "not %s",
			    list);
		if (v > conns)
			die("--connections must be at least the replicas%s",
			    "");
		replicas[counts_n++] = (int)v;
		p = *end == ',' ? end + 1 : end;
		if (*end && *end != ',')
			usage();
	}
	if (secs < 1 || secs > 3600 || conns < 1 || conns > 1000 || users < 1 ||
	    users > 10000000 || every < 0)
		die("--seconds 1..3600, --connections 1..1000, --users "
		    "1..1e7, --feedback-every >= 0%s",
		    "");
	if (!base || strncmp(base, "postgres", 8))
		die("needs a PostgreSQL database: --db postgresql://... or "
		    "PWB_TEST_POSTGRES (scripts/start-postgres.sh)%s",
		    "");
	signal(SIGPIPE, SIG_IGN);
	char dir[] = "/tmp/pwb-bench-replicas-XXXXXX";
	if (!mkdtemp(dir))
		die("mkdtemp: %s", strerror(errno));
	write_policies(dir);

	char schema[64], sql[256], db[1024], lua[600];
	snprintf(schema, sizeof(schema), "pwb_bench_replicas_%d",
		 (int)getpid());
	snprintf(db, sizeof(db), "%s%coptions=-csearch_path%%3D%s", base,
		 strchr(base, '?') ? '&' : '?', schema);
	PGconn *admin = pg_connect(base);
	pg_exec(admin, "SET client_min_messages = warning");
	snprintf(sql, sizeof(sql), "DROP SCHEMA IF EXISTS %s CASCADE", schema);
	pg_exec(admin, sql);
	snprintf(sql, sizeof(sql), "CREATE SCHEMA %s", schema);
	pg_exec(admin, sql);

	char *key = create_key(dir, db);
	make_users(dir, db, users);
	snprintf(lua, sizeof(lua), "%s/replicas.lua", dir);
	write_lua(lua, key, users, every);
	setup s = {.dir = dir,
		   .db = db,
		   .lua = lua,
		   .key = key,
		   .admin = admin,
		   .postmaster = pg_postmaster(admin),
		   .secs = secs,
		   .conns = conns,
		   .one_thread_each = every > 0,
		   .metrics = malloc(METRICS_BUF)};
	if (!s.metrics)
		die("out of memory%s", "");
	s.up = upstream_start(&s.up_port);

	run_result r[MAX_RUNS];
	for (int i = 0; i < counts_n; i++)
		run(&s, replicas[i], &r[i]);
	stop(s.up);

	long cores = sysconf(_SC_NPROCESSORS_ONLN);
	if (json)
		printf("{\"cores\": %ld, \"connections\": %d, \"users\": %d, "
		       "\"feedback_every\": %d, \"seconds\": %d, \"dir\": "
		       "\"%s\", \"runs\": [\n",
		       cores, conns, users, every, secs, dir);
	else
		printf("%ld cores, %d connections in all, %d users, %s, "
		       "logs in %s\n",
		       cores, conns, users,
		       every ? "every K-th answer rated" : "chats only", dir);
	for (int i = 0; i < counts_n; i++)
		print_run(&r[i], json, i + 1 == counts_n);
	if (json)
		printf("]}\n");

	snprintf(sql, sizeof(sql), "DROP SCHEMA %s CASCADE", schema);
	pg_exec(admin, sql);
	PQfinish(admin);
	free(s.metrics);
	free(key);
	return 0;
}
