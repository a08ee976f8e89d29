/*
 * bench_store.c - the store's write and read paths on both backends, each
 * against a bare baseline in the same run:
 *
 *   feedback_inserts_per_s   pwb_store_feedback_add() in transactions of
 *                            1,000 (the import path), against a bare
 *                            prepared INSERT of the same rows (sqlite3 /
 *                            libpq) batched the same way;
 *   feedback_acked_per_s     one event per transaction (the server's
 *                            path: each acknowledged event durable);
 *   user_load_ns             pwb_store_user_get() of random users among
 *                            --users (settings and a 2 KiB model), against
 *                            a bare prepared SELECT of the same columns.
 *
 *   build/bench/bench_store [--json] [--users N] [--events N] [--dir DIR]
 *
 * Users are populated in one statement on the server side (a recursive
 * CTE / generate_series). PostgreSQL is measured when PWB_TEST_POSTGRES
 * names a server (in a schema of its own, dropped afterwards).
 */
#include "pwb/store.h"
#include "store/store_int.h"
#include "util/util.h"

#include <libpq-fe.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define BATCH 1000
#define LOADS 20000
#define MODEL_BYTES 2048

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

typedef struct pct {
	double p50, p99;
} pct;

static pct percentiles(double *v, size_t n)
{
	qsort(v, n, sizeof(*v), cmp_double);
	return (pct){v[n / 2], v[(size_t)((double)n * 0.99)]};
}

typedef struct result {
	bool ran;
	long users;
	double populate_s;
	double inserts, inserts_base, acked, acked_base;
	pct load, load_base;
} result;

static void die(const char *what, pwb_status st, pwb_diag *d)
{
	fprintf(stderr, "bench_store: %s: %s: %s\n", what, pwb_status_str(st),
		d && d->n ? d->entries[0].message : "");
	exit(1);
}

static uint64_t rng = 88172645463325252ULL;
static uint64_t next_rand(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

/* ---- the store's side ---- */

static void populate(pwb_store *s, bool pg, long users, result *r)
{
	char sql[1024];
	if (pg)
		snprintf(sql, sizeof(sql),
			 "INSERT INTO orgs VALUES ('bench', 0);"
			 "INSERT INTO users (org, id, settings, model, "
			 "model_version, erased, created, updated) "
			 "SELECT 'bench', 'u' || g, "
			 "'{\"dimensions\": {\"humour\": 0.5}}', "
			 "decode(repeat(md5(g::text), %d), 'hex'), 1, 0, 0, 0 "
			 "FROM generate_series(1, %ld) g",
			 MODEL_BYTES / 16, users);
	else
		snprintf(sql, sizeof(sql),
			 "BEGIN; INSERT INTO orgs VALUES ('bench', 0);"
			 "WITH RECURSIVE g(i) AS (SELECT 1 UNION ALL "
			 "SELECT i + 1 FROM g WHERE i < %ld) "
			 "INSERT INTO users (org, id, settings, model, "
			 "model_version, erased, created, updated) "
			 "SELECT 'bench', 'u' || i, "
			 "'{\"dimensions\": {\"humour\": 0.5}}', "
			 "randomblob(%d), 1, 0, 0, 0 FROM g; COMMIT",
			 users, MODEL_BYTES);
	pwb_diag d;
	pwb_diag_init(&d);
	double t0 = now_s();
	pwb_status st = pwb__store_exec(s, sql, &d);
	if (st)
		die("populate", st, &d);
	if (pg && (st = pwb__store_exec(s, "ANALYZE", &d)))
		die("analyze", st, &d);
	r->populate_s = now_s() - t0;
	pwb_diag_release(&d);
}

static void user_id(char *buf, size_t size, long users)
{
	snprintf(buf, size, "u%ld", (long)(next_rand() % (uint64_t)users) + 1);
}

static void store_side(pwb_store *s, long users, long events, result *r)
{
	pwb_diag d;
	pwb_diag_init(&d);
	char user[32];
	/* Inserts in batches. */
	double t0 = now_s();
	for (long i = 0; i < events;) {
		pwb_status st = pwb_store_begin(s, &d);
		for (long k = 0; !st && k < BATCH && i < events; k++, i++) {
			user_id(user, sizeof(user), users);
			pwb_store_feedback fb = {
			    .kind = PWB_STORE_FB_PAIR,
			    .user = user,
			    .ts = 1000 + i,
			    .prompt = "How do tides work?",
			    .chosen = "The moon pulls the sea.",
			    .rejected = "A long essay on gravity.",
			    .rater_role = "end_user"};
			st = pwb_store_feedback_add(
			    s, "bench", &fb, PWB_STORE_TEXTS, 2000, NULL, &d);
		}
		if (!st)
			st = pwb_store_commit(s, &d);
		if (st)
			die("insert", st, &d);
	}
	r->inserts = (double)events / (now_s() - t0);
	/* One event, one commit. */
	long acked = events / 20 > 200 ? 200 : events / 20 + 1;
	t0 = now_s();
	for (long i = 0; i < acked; i++) {
		user_id(user, sizeof(user), users);
		pwb_store_feedback fb = {.kind = PWB_STORE_FB_PAIR,
					 .user = user,
					 .prompt = "How do tides work?",
					 .chosen = "The moon pulls the sea.",
					 .rejected =
					     "A long essay on gravity."};
		pwb_status st = pwb_store_feedback_add(
		    s, "bench", &fb, PWB_STORE_TEXTS, 2000, NULL, &d);
		if (st)
			die("acked insert", st, &d);
	}
	r->acked = (double)acked / (now_s() - t0);
	/* Loads. */
	double *lat = malloc(sizeof(double) * LOADS);
	for (long i = 0; i < LOADS; i++) {
		user_id(user, sizeof(user), users);
		pwb_store_user u;
		double a = now_s();
		pwb_status st = pwb_store_user_get(s, "bench", user, &u, &d);
		lat[i] = (now_s() - a) * 1e9;
		if (st)
			die("load", st, &d);
		pwb_store_user_release(&u);
	}
	r->load = percentiles(lat, LOADS);
	free(lat);
	pwb_diag_release(&d);
}

/* ---- bare SQLite ---- */

static void sqlite_base(const char *path, long users, long events, result *r)
{
	sqlite3 *db;
	if (sqlite3_open(path, &db) != SQLITE_OK)
		exit(1);
	sqlite3_busy_timeout(db, 10000);
	sqlite3_exec(db,
		     "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; "
		     "PRAGMA foreign_keys=ON",
		     NULL, NULL, NULL);
	sqlite3_stmt *ins, *sel;
	sqlite3_prepare_v2(db,
			   "INSERT INTO feedback (org, user_id, ts, received, "
			   "kind, prompt, chosen, rejected, rater_role) "
			   "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
			   -1, &ins, NULL);
	sqlite3_prepare_v2(db,
			   "SELECT settings, consent, model, model_version, "
			   "erased, created, updated FROM users "
			   "WHERE org = ?1 AND id = ?2",
			   -1, &sel, NULL);
	char user[32];
	double t0 = now_s();
	for (long i = 0; i < events;) {
		sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL);
		for (long k = 0; k < BATCH && i < events; k++, i++) {
			user_id(user, sizeof(user), users);
			sqlite3_bind_text(ins, 1, "bench", -1, SQLITE_STATIC);
			sqlite3_bind_text(ins, 2, user, -1, SQLITE_STATIC);
			sqlite3_bind_int64(ins, 3, 1000 + i);
			sqlite3_bind_int64(ins, 4, 2000);
			sqlite3_bind_text(ins, 5, "pair", -1, SQLITE_STATIC);
			sqlite3_bind_text(ins, 6, "How do tides work?", -1,
					  SQLITE_STATIC);
			sqlite3_bind_text(ins, 7, "The moon pulls the sea.", -1,
					  SQLITE_STATIC);
			sqlite3_bind_text(ins, 8, "A long essay on gravity.",
					  -1, SQLITE_STATIC);
			sqlite3_bind_text(ins, 9, "end_user", -1,
					  SQLITE_STATIC);
			if (sqlite3_step(ins) != SQLITE_DONE)
				exit(1);
			sqlite3_reset(ins);
		}
		sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
	}
	r->inserts_base = (double)events / (now_s() - t0);
	long acked = events / 20 > 200 ? 200 : events / 20 + 1;
	t0 = now_s();
	for (long i = 0; i < acked; i++) {
		user_id(user, sizeof(user), users);
		sqlite3_bind_text(ins, 1, "bench", -1, SQLITE_STATIC);
		sqlite3_bind_text(ins, 2, user, -1, SQLITE_STATIC);
		sqlite3_bind_int64(ins, 3, 2000);
		sqlite3_bind_int64(ins, 4, 2000);
		sqlite3_bind_text(ins, 5, "pair", -1, SQLITE_STATIC);
		if (sqlite3_step(ins) != SQLITE_DONE)
			exit(1);
		sqlite3_reset(ins);
	}
	r->acked_base = (double)acked / (now_s() - t0);
	double *lat = malloc(sizeof(double) * LOADS);
	volatile size_t sink = 0;
	for (long i = 0; i < LOADS; i++) {
		user_id(user, sizeof(user), users);
		double a = now_s();
		sqlite3_bind_text(sel, 1, "bench", -1, SQLITE_STATIC);
		sqlite3_bind_text(sel, 2, user, -1, SQLITE_STATIC);
		if (sqlite3_step(sel) == SQLITE_ROW) {
			sink += (size_t)sqlite3_column_bytes(sel, 0);
			sink += (size_t)sqlite3_column_bytes(sel, 2);
			sink += (size_t)sqlite3_column_int64(sel, 3);
		}
		sqlite3_reset(sel);
		lat[i] = (now_s() - a) * 1e9;
	}
	r->load_base = percentiles(lat, LOADS);
	free(lat);
	sqlite3_finalize(ins);
	sqlite3_finalize(sel);
	sqlite3_close(db);
}

/* ---- bare libpq ---- */

static void pg_ok(PGconn *c, PGresult *res)
{
	ExecStatusType st = PQresultStatus(res);
	if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
		fprintf(stderr, "bench_store: %s", PQerrorMessage(c));
		exit(1);
	}
	PQclear(res);
}

static void pg_base(const char *url, long users, long events, result *r)
{
	PGconn *c = PQconnectdb(url);
	if (PQstatus(c) != CONNECTION_OK) {
		fprintf(stderr, "bench_store: %s", PQerrorMessage(c));
		exit(1);
	}
	pg_ok(c, PQprepare(c, "ins",
			   "INSERT INTO feedback (org, user_id, ts, received, "
			   "kind, prompt, chosen, rejected, rater_role) "
			   "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
			   9, NULL));
	pg_ok(c, PQprepare(c, "sel",
			   "SELECT settings, consent, model, model_version, "
			   "erased, created, updated FROM users "
			   "WHERE org = $1 AND id = $2",
			   2, NULL));
	char user[32], ts[32];
	double t0 = now_s();
	for (long i = 0; i < events;) {
		pg_ok(c, PQexec(c, "BEGIN"));
		for (long k = 0; k < BATCH && i < events; k++, i++) {
			user_id(user, sizeof(user), users);
			snprintf(ts, sizeof(ts), "%ld", 1000 + i);
			const char *v[] = {"bench",
					   user,
					   ts,
					   "2000",
					   "pair",
					   "How do tides work?",
					   "The moon pulls the sea.",
					   "A long essay on gravity.",
					   "end_user"};
			pg_ok(c, PQexecPrepared(c, "ins", 9, v, NULL, NULL, 0));
		}
		pg_ok(c, PQexec(c, "COMMIT"));
	}
	r->inserts_base = (double)events / (now_s() - t0);
	long acked = events / 20 > 200 ? 200 : events / 20 + 1;
	t0 = now_s();
	for (long i = 0; i < acked; i++) {
		user_id(user, sizeof(user), users);
		const char *v[] = {"bench", user, "2000", "2000", "pair",
				   NULL,    NULL, NULL,	  NULL};
		pg_ok(c, PQexecPrepared(c, "ins", 9, v, NULL, NULL, 0));
	}
	r->acked_base = (double)acked / (now_s() - t0);
	double *lat = malloc(sizeof(double) * LOADS);
	for (long i = 0; i < LOADS; i++) {
		user_id(user, sizeof(user), users);
		const char *v[] = {"bench", user};
		double a = now_s();
		pg_ok(c, PQexecPrepared(c, "sel", 2, v, NULL, NULL, 0));
		lat[i] = (now_s() - a) * 1e9;
	}
	r->load_base = percentiles(lat, LOADS);
	free(lat);
	PQfinish(c);
}

static void pg_admin(const char *base, const char *sql)
{
	PGconn *c = PQconnectdb(base);
	if (PQstatus(c) != CONNECTION_OK) {
		fprintf(stderr, "bench_store: %s", PQerrorMessage(c));
		exit(1);
	}
	pg_ok(c, PQexec(c, "SET client_min_messages = warning"));
	pg_ok(c, PQexec(c, sql));
	PQfinish(c);
}

/* ---- the runs ---- */

static void run(const char *url, bool pg, long users, long events, result *r)
{
	pwb_store *s = NULL;
	pwb_diag d;
	pwb_diag_init(&d);
	pwb_status st = pwb_store_open(&s, url, NULL, &d);
	if (st)
		die(url, st, &d);
	pwb_diag_release(&d);
	r->ran = true;
	r->users = users;
	populate(s, pg, users, r);
	store_side(s, users, events, r);
	pwb_store_free(s);
	if (pg)
		pg_base(url, users, events, r);
	else
		sqlite_base(url + 7, users, events, r);
}

static void print_json(const char *name, const result *r, bool last)
{
	printf("  \"%s\": {\"users\": %ld, \"populate_s\": %.1f, "
	       "\"feedback_inserts_per_s\": %.0f, "
	       "\"baseline_inserts_per_s\": %.0f, "
	       "\"feedback_acked_per_s\": %.0f, "
	       "\"baseline_acked_per_s\": %.0f, "
	       "\"user_load_ns\": {\"p50\": %.0f, \"p99\": %.0f}, "
	       "\"baseline_load_ns\": {\"p50\": %.0f, \"p99\": %.0f}}%s\n",
	       name, r->users, r->populate_s, r->inserts, r->inserts_base,
	       r->acked, r->acked_base, r->load.p50, r->load.p99,
	       r->load_base.p50, r->load_base.p99, last ? "" : ",");
}

static void print_text(const char *name, const result *r)
{
	printf("%s (%ld users, populated in %.1f s)\n", name, r->users,
	       r->populate_s);
	printf("  feedback inserts, batches of %d: %.0f/s (bare %.0f/s, "
	       "ratio %.2f)\n",
	       BATCH, r->inserts, r->inserts_base,
	       r->inserts / r->inserts_base);
	printf("  feedback, one commit each:       %.0f/s (bare %.0f/s, "
	       "ratio %.2f)\n",
	       r->acked, r->acked_base, r->acked / r->acked_base);
	printf("  user load: p50 %.0f ns, p99 %.0f ns (bare p50 %.0f ns, p99 "
	       "%.0f ns)\n",
	       r->load.p50, r->load.p99, r->load_base.p50, r->load_base.p99);
}

int main(int argc, char **argv)
{
	bool json = false;
	long users = 1000000, events = 100000;
	const char *dir = NULL;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--json")) {
			json = true;
		} else if (!strcmp(argv[i], "--users") && i + 1 < argc) {
			users = strtol(argv[++i], NULL, 10);
		} else if (!strcmp(argv[i], "--events") && i + 1 < argc) {
			events = strtol(argv[++i], NULL, 10);
		} else if (!strcmp(argv[i], "--dir") && i + 1 < argc) {
			dir = argv[++i];
		} else {
			fprintf(stderr,
				"usage: bench_store [--json] [--users N] "
				"[--events N] [--dir DIR]\n");
			return 2;
		}
	}
	if (users < 1 || events < 1) {
		fprintf(stderr, "bench_store: --users and --events are >= 1\n");
		return 2;
	}
	char tmpl[512], url[1024];
	const char *tmp = getenv("TMPDIR");
	snprintf(tmpl, sizeof(tmpl), "%s/pwb-bench-store-XXXXXX",
		 dir	       ? dir
		 : tmp && *tmp ? tmp
			       : "/tmp");
	if (!mkdtemp(tmpl)) {
		perror("mkdtemp");
		return 1;
	}
	result lite = {0}, pg = {0};
	snprintf(url, sizeof(url), "sqlite:%s/bench.db", tmpl);
	run(url, false, users, events, &lite);
	char cmd[600];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpl);
	if (system(cmd) != 0)
		fprintf(stderr, "bench_store: could not remove %s\n", tmpl);

	const char *base = getenv("PWB_TEST_POSTGRES");
	if (base && *base) {
		pg_admin(base, "DROP SCHEMA IF EXISTS pwb_bench CASCADE; "
			       "CREATE SCHEMA pwb_bench");
		snprintf(url, sizeof(url),
			 "%s%coptions=-csearch_path%%3Dpwb_bench", base,
			 strchr(base, '?') ? '&' : '?');
		run(url, true, users, events, &pg);
		pg_admin(base, "DROP SCHEMA pwb_bench CASCADE");
	}
	if (json) {
		printf("{\n");
		print_json("sqlite", &lite, !pg.ran);
		if (pg.ran)
			print_json("postgres", &pg, true);
		printf("}\n");
	} else {
		print_text("sqlite", &lite);
		if (pg.ran)
			print_text("postgres", &pg);
		else
			printf(
			    "postgres: not measured (set PWB_TEST_POSTGRES)\n");
	}
	return 0;
}
