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
 *   grouped_acked_per_s      the same calls from 1, 16 and 64 threads at
 *                            once, whose events share commits (group
 *                            commit, docs/store.md), beside the one
 *                            commit per event above;
 *   user_load_ns             pwb_store_user_get() of random users among
 *                            --users (settings and a 2 KiB model), against
 *                            a bare prepared SELECT of the same columns.
 *
 *   build/bench/bench_store [--json] [--users N] [--events N] [--dir DIR]
 *
 * Users are populated in one statement on the server side (a recursive
 * CTE / generate_series). The store and its baseline take turns (batch by
 * batch, event by event, load by load) so that noise from the rest of the
 * machine falls on both alike. PostgreSQL is measured when PWB_TEST_POSTGRES
 * names a server (in a schema of its own, dropped afterwards).
 */
#include "bench.h"
#include "pwb/store.h"
#include "store/store_int.h"
#include "util/util.h"

#include <libpq-fe.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define BATCH 1000
#define LOADS 20000
#define MODEL_BYTES 2048
#define ACKED 1000
#define N_WRITERS 3
static const int writers[N_WRITERS] = {1, 16, 64};

typedef struct result {
	bool ran;
	long users;
	double populate_s;
	double inserts, inserts_base, acked, acked_base;
	double grouped[N_WRITERS];	   /* acknowledged events/s */
	double grouped_commits[N_WRITERS]; /* events per commit */
	bench_p50_p99 load, load_base;
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
	double t0 = bench_now_s();
	pwb_status st = pwb__store_exec(s, sql, &d);
	if (st)
		die("populate", st, &d);
	if (pg && (st = pwb__store_exec(s, "ANALYZE", &d)))
		die("analyze", st, &d);
	r->populate_s = bench_now_s() - t0;
	pwb_diag_release(&d);
}

static void user_id(char *buf, size_t size, long users)
{
	snprintf(buf, size, "u%ld", (long)(next_rand() % (uint64_t)users) + 1);
}

static const char *const PROMPT = "How do tides work?";
static const char *const CHOSEN = "The moon pulls the sea.";
static const char *const REJECTED = "A long essay on gravity.";

static void store_insert(pwb_store *s, const char *user, int64_t ts,
			 pwb_diag *d)
{
	pwb_store_feedback fb = {.kind = PWB_STORE_FB_PAIR,
				 .user = user,
				 .ts = ts,
				 .prompt = PROMPT,
				 .chosen = CHOSEN,
				 .rejected = REJECTED,
				 .rater_role = "end_user"};
	pwb_status st = pwb_store_feedback_add(s, "bench", &fb, PWB_STORE_TEXTS,
					       (int64_t)time(NULL), NULL, d);
	if (st)
		die("insert", st, d);
}

/* ---- concurrent writers: events that share commits ---- */

typedef struct writer {
	pwb_store *s;
	int t;
	long n, users;
} writer;

static void *writer_run(void *arg)
{
	writer *w = arg;
	pwb_diag d;
	pwb_diag_init(&d);
	char user[32];
	for (long i = 0; i < w->n; i++) {
		snprintf(user, sizeof(user), "u%ld",
			 ((long)w->t * 7919 + i * 104729) % w->users + 1);
		store_insert(w->s, user, 4000, &d);
	}
	pwb_diag_release(&d);
	return NULL;
}

/* `total` events, one call each, from n threads at once. */
static void grouped(pwb_store *s, int n, long total, long users, double *rate,
		    double *per_commit)
{
	pthread_t th[64];
	writer w[64];
	pwb__group_stats before, after;
	pwb__store_group_stats(s, &before);
	double t0 = bench_now_s();
	for (int i = 0; i < n; i++) {
		w[i] = (writer){s, i, total / n, users};
		pthread_create(&th[i], NULL, writer_run, &w[i]);
	}
	for (int i = 0; i < n; i++)
		pthread_join(th[i], NULL);
	double t = bench_now_s() - t0;
	pwb__store_group_stats(s, &after);
	*rate = (double)(total / n * n) / t;
	*per_commit = (double)(after.events - before.events) /
		      (double)(after.commits - before.commits);
}

/* ---- the bare baselines: the least the same work needs ---- */

typedef struct bare {
	sqlite3 *db;
	sqlite3_stmt *ins, *sel;
	PGconn *pg;
} bare;

static void pg_ok(PGconn *c, PGresult *res)
{
	ExecStatusType st = PQresultStatus(res);
	if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
		fprintf(stderr, "bench_store: %s", PQerrorMessage(c));
		exit(1);
	}
	PQclear(res);
}

#define BARE_INSERT                                                            \
	"INSERT INTO feedback (org, user_id, ts, received, kind, prompt, "     \
	"chosen, rejected, rater_role) VALUES ($1, $2, $3, $4, 'pair', $5, "   \
	"$6, $7, 'end_user')"
#define BARE_SELECT                                                            \
	"SELECT settings, consent, model, model_version, erased, created, "    \
	"updated FROM users WHERE org = $1 AND id = $2"

static void bare_open(bare *b, const char *url, bool pg)
{
	memset(b, 0, sizeof(*b));
	if (pg) {
		b->pg = PQconnectdb(url);
		if (PQstatus(b->pg) != CONNECTION_OK) {
			fprintf(stderr, "bench_store: %s",
				PQerrorMessage(b->pg));
			exit(1);
		}
		pg_ok(b->pg, PQprepare(b->pg, "ins", BARE_INSERT, 7, NULL));
		pg_ok(b->pg, PQprepare(b->pg, "sel", BARE_SELECT, 2, NULL));
		return;
	}
	if (sqlite3_open(url + 7, &b->db) != SQLITE_OK)
		exit(1);
	sqlite3_busy_timeout(b->db, 10000);
	sqlite3_exec(b->db,
		     "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; "
		     "PRAGMA foreign_keys=ON; PRAGMA cache_size=-32768",
		     NULL, NULL, NULL);
	/* SQLite reads $1 as a named parameter: numbered by first use. */
	if (sqlite3_prepare_v2(b->db, BARE_INSERT, -1, &b->ins, NULL) ||
	    sqlite3_prepare_v2(b->db, BARE_SELECT, -1, &b->sel, NULL)) {
		fprintf(stderr, "bench_store: %s\n", sqlite3_errmsg(b->db));
		exit(1);
	}
}

static void bare_close(bare *b)
{
	sqlite3_finalize(b->ins);
	sqlite3_finalize(b->sel);
	sqlite3_close(b->db);
	PQfinish(b->pg);
}

static void bare_exec(bare *b, const char *sql)
{
	if (b->pg)
		pg_ok(b->pg, PQexec(b->pg, sql));
	else if (sqlite3_exec(b->db, sql, NULL, NULL, NULL) != SQLITE_OK)
		exit(1);
}

static void bare_insert(bare *b, const char *user, int64_t ts)
{
	char t[32], now[32];
	snprintf(t, sizeof(t), "%lld", (long long)ts);
	snprintf(now, sizeof(now), "%lld", (long long)time(NULL));
	if (b->pg) {
		const char *v[] = {"bench", user,   t,	     now,
				   PROMPT,  CHOSEN, REJECTED};
		pg_ok(b->pg, PQexecPrepared(b->pg, "ins", 7, v, NULL, NULL, 0));
		return;
	}
	sqlite3_bind_text(b->ins, 1, "bench", -1, SQLITE_STATIC);
	sqlite3_bind_text(b->ins, 2, user, -1, SQLITE_STATIC);
	sqlite3_bind_int64(b->ins, 3, ts);
	sqlite3_bind_int64(b->ins, 4, (int64_t)time(NULL));
	sqlite3_bind_text(b->ins, 5, PROMPT, -1, SQLITE_STATIC);
	sqlite3_bind_text(b->ins, 6, CHOSEN, -1, SQLITE_STATIC);
	sqlite3_bind_text(b->ins, 7, REJECTED, -1, SQLITE_STATIC);
	if (sqlite3_step(b->ins) != SQLITE_DONE)
		exit(1);
	sqlite3_reset(b->ins);
}

static volatile size_t sink;

static void bare_load(bare *b, const char *user)
{
	if (b->pg) {
		const char *v[] = {"bench", user};
		PGresult *r = PQexecPrepared(b->pg, "sel", 2, v, NULL, NULL, 0);
		if (PQntuples(r) == 1)
			sink += (size_t)PQgetlength(r, 0, 2);
		pg_ok(b->pg, r);
		return;
	}
	sqlite3_bind_text(b->sel, 1, "bench", -1, SQLITE_STATIC);
	sqlite3_bind_text(b->sel, 2, user, -1, SQLITE_STATIC);
	if (sqlite3_step(b->sel) == SQLITE_ROW) {
		sink += (size_t)sqlite3_column_bytes(b->sel, 0);
		sink += (size_t)sqlite3_column_bytes(b->sel, 2);
	}
	sqlite3_reset(b->sel);
}

/*
 * The store and its baseline take turns, batch by batch and load by load,
 * so that whatever else the machine does falls on both alike.
 */
static void measure(pwb_store *s, bare *b, long users, long events, result *r)
{
	pwb_diag d;
	pwb_diag_init(&d);
	char user[32];
	double t_store = 0, t_bare = 0;
	for (long i = 0; i < events; i += BATCH) {
		long n = events - i < BATCH ? events - i : BATCH;
		double t0 = bench_now_s();
		pwb_status st = pwb_store_begin(s, &d);
		if (st)
			die("begin", st, &d);
		for (long k = 0; k < n; k++) {
			user_id(user, sizeof(user), users);
			store_insert(s, user, 1000 + i + k, &d);
		}
		if ((st = pwb_store_commit(s, &d)))
			die("commit", st, &d);
		double t1 = bench_now_s();
		bare_exec(b, b->pg ? "BEGIN" : "BEGIN IMMEDIATE");
		for (long k = 0; k < n; k++) {
			user_id(user, sizeof(user), users);
			bare_insert(b, user, 1000 + i + k);
		}
		bare_exec(b, "COMMIT");
		t_store += t1 - t0;
		t_bare += bench_now_s() - t1;
	}
	r->inserts = (double)events / t_store;
	r->inserts_base = (double)events / t_bare;

	long acked = events / 20 > ACKED ? ACKED : events / 20 + 1;
	t_store = t_bare = 0;
	for (long i = 0; i < acked; i++) {
		user_id(user, sizeof(user), users);
		double t0 = bench_now_s();
		store_insert(s, user, 3000, &d);
		double t1 = bench_now_s();
		bare_insert(b, user, 3000);
		t_store += t1 - t0;
		t_bare += bench_now_s() - t1;
	}
	r->acked = (double)acked / t_store;
	r->acked_base = (double)acked / t_bare;
	for (int k = 0; k < N_WRITERS; k++)
		grouped(s, writers[k], writers[k] == 1 ? acked : 4 * acked,
			users, &r->grouped[k], &r->grouped_commits[k]);

	double *lat = malloc(sizeof(double) * LOADS);
	double *lat_b = malloc(sizeof(double) * LOADS);
	if (!lat || !lat_b)
		exit(1);
	for (long i = 0; i < LOADS; i++) {
		user_id(user, sizeof(user), users);
		pwb_store_user u;
		double t0 = bench_now_s();
		pwb_status st = pwb_store_user_get(s, "bench", user, &u, &d);
		double t1 = bench_now_s();
		if (st)
			die("load", st, &d);
		pwb_store_user_release(&u);
		/* Its own user: the store's read must not warm the cache
		 * for the baseline. */
		user_id(user, sizeof(user), users);
		double t2 = bench_now_s();
		bare_load(b, user);
		lat[i] = (t1 - t0) * 1e9;
		lat_b[i] = (bench_now_s() - t2) * 1e9;
	}
	r->load = bench_percentiles(lat, LOADS);
	r->load_base = bench_percentiles(lat_b, LOADS);
	free(lat);
	free(lat_b);
	pwb_diag_release(&d);
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
	bare b;
	bare_open(&b, url, pg);
	measure(s, &b, users, events, r);
	bare_close(&b);
	pwb_store_free(s);
}

static void print_json(const char *name, const result *r, bool last)
{
	printf("  \"%s\": {\"users\": %ld, \"populate_s\": %.1f, "
	       "\"feedback_inserts_per_s\": %.0f, "
	       "\"baseline_inserts_per_s\": %.0f, "
	       "\"feedback_acked_per_s\": %.0f, "
	       "\"baseline_acked_per_s\": %.0f, ",
	       name, r->users, r->populate_s, r->inserts, r->inserts_base,
	       r->acked, r->acked_base);
	printf("\"grouped_acked_per_s\": {");
	for (int k = 0; k < N_WRITERS; k++)
		printf("%s\"%d\": %.0f", k ? ", " : "", writers[k],
		       r->grouped[k]);
	printf("}, \"grouped_events_per_commit\": {");
	for (int k = 0; k < N_WRITERS; k++)
		printf("%s\"%d\": %.1f", k ? ", " : "", writers[k],
		       r->grouped_commits[k]);
	printf("}, \"user_load_ns\": {\"p50\": %.0f, \"p99\": %.0f}, "
	       "\"baseline_load_ns\": {\"p50\": %.0f, \"p99\": %.0f}}%s\n",
	       r->load.p50, r->load.p99, r->load_base.p50, r->load_base.p99,
	       last ? "" : ",");
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
	for (int k = 0; k < N_WRITERS; k++)
		printf(
		    "  feedback, %2d writer%s at once:    %.0f/s (%.1f events "
		    "a commit; %.1fx one commit each)\n",
		    writers[k], writers[k] == 1 ? " " : "s", r->grouped[k],
		    r->grouped_commits[k], r->grouped[k] / r->acked);
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
