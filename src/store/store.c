/*
 * store.c - the storage interface over its backends: URLs, the connection
 * pool and transactions, migrations, and every operation of pwb/store.h in
 * SQL both dialects share.
 */
#include "store/schema.h"
#include "store/store_int.h"
#include "util/util.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define ZERO_HASH                                                              \
	"0000000000000000000000000000000000000000000000000000000000000000"
#define MAX_ID 256	   /* org, user, key and event ids, in bytes */
#define MAX_JSON (1 << 20) /* settings, consent, details */
#define MAX_MODEL (64u << 20)
/* Audit rows read per query by the chain check; the SQL below takes its
 * LIMIT from here, as text. */
#define AUDIT_PAGE 5000
#define SQL_NUM_(n) #n
#define SQL_NUM(n) SQL_NUM_(n)

/* ---- statements ---- */

enum {
	S_META_GET,
	S_META_SET,
	S_ORG_ENSURE,
	S_USER_STATE,
	S_USER_STATE_SHARE,
	S_USER_INSERT,
	S_USER_GET,
	S_USER_SET_SETTINGS,
	S_USER_SET_CONSENT,
	S_USER_CAS_CONSENT,
	S_USER_SET_MODEL,
	S_FB_INSERT,
	S_FB_INSERT_FAST,
	S_FB_COUNT_ORG,
	S_FB_COUNT_USER,
	S_FB_EXISTS,
	S_GC,
	S_DEC_INSERT,
	S_DEC_OWNER,
	S_KEY_INSERT,
	S_KEY_REVOKE,
	S_KEY_LOOKUP,
	S_AUDIT_HEAD,
	S_AUDIT_HEAD_LOCK,
	S_AUDIT_INSERT,
	S_AUDIT_HEAD_SET,
	S_FB_EVENT_OWNER,
	S_AUDIT_PAGE,
	S_AUDIT_ODD,
	S_EXP_FB,
	S_EXP_DEC,
	S_EXP_KEYS,
	S_EXP_AUDIT,
	S_EXP_TOMBSTONE,
	S_ERASE_FB,
	S_ERASE_DEC,
	S_ERASE_KEYS,
	S_ERASE_USER,
	S_ORGS,
	S_NOTIFY,
	S_STORE_EXISTS,
	S_AGG_FIRST,
	S_AGG_LAST = S_AGG_FIRST + PWB_AGG_COUNT - 1,
	S_COUNT
};

typedef struct stmt {
	const char *sql;
	const char *pg; /* PostgreSQL's own text, where it differs */
} stmt;

static const stmt stmts[S_COUNT] = {
    [S_META_GET] = {"SELECT value FROM meta WHERE key = $1", NULL},
    [S_META_SET] = {"INSERT INTO meta (key, value) VALUES ($1, $2) "
		    "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
		    NULL},
    [S_ORG_ENSURE] = {"INSERT INTO orgs (id, created) VALUES ($1, $2) "
		      "ON CONFLICT (id) DO NOTHING",
		      NULL},
    [S_USER_STATE] = {"SELECT erased FROM users WHERE org = $1 AND id = $2",
		      NULL},
    /* Writers of rows that erase deletes hold the user row against a
     * concurrent erase (SQLite's one writer needs no lock). */
    [S_USER_STATE_SHARE] = {"SELECT erased FROM users "
			    "WHERE org = $1 AND id = $2",
			    "SELECT erased FROM users "
			    "WHERE org = $1 AND id = $2 FOR SHARE"},
    [S_USER_INSERT] = {"INSERT INTO users (org, id, created, updated) "
		       "VALUES ($1, $2, $3, $3) "
		       "ON CONFLICT (org, id) DO NOTHING",
		       NULL},
    [S_USER_GET] = {"SELECT settings, consent, model, model_version, erased, "
		    "created, updated FROM users WHERE org = $1 AND id = $2",
		    NULL},
    [S_USER_SET_SETTINGS] = {"UPDATE users SET settings = $3, updated = $4 "
			     "WHERE org = $1 AND id = $2",
			     NULL},
    /* The consent changes only if it is still what was read ($5: the
     * text read, NULL for none): NULL-safe equality in each dialect. */
    [S_USER_CAS_CONSENT] = {"UPDATE users SET consent = $3, updated = $4 "
			    "WHERE org = $1 AND id = $2 AND consent IS $5",
			    "UPDATE users SET consent = $3, updated = $4 "
			    "WHERE org = $1 AND id = $2 "
			    "AND consent IS NOT DISTINCT FROM $5"},
    [S_USER_SET_CONSENT] = {"UPDATE users SET consent = $3, updated = $4 "
			    "WHERE org = $1 AND id = $2",
			    NULL},
    [S_USER_SET_MODEL] = {"UPDATE users SET model = $3, "
			  "model_version = model_version + 1, updated = $4 "
			  "WHERE org = $1 AND id = $2 "
			  "AND ($5 < 0 OR model_version = $5) "
			  "RETURNING model_version",
			  NULL},
    [S_FB_INSERT] =
	{"INSERT INTO feedback (org, user_id, event_id, ts, "
	 "received, kind, prompt, chosen, rejected, response, "
	 "rating, scale_lo, scale_hi, features, rater_role, "
	 "rater_attrs, decision_id) VALUES ($1, $2, $3, $4, $5, $6, "
	 "$7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17) "
	 "ON CONFLICT (org, event_id) WHERE event_id IS NOT NULL "
	 "DO NOTHING RETURNING id",
	 NULL},
    /* The common case in one round trip: a known user, not erased,
     * answered from an index (a users row holds the model: reading it
     * would cost a page per event). */
    [S_FB_INSERT_FAST] =
	{"INSERT INTO feedback (org, user_id, event_id, ts, received, kind, "
	 "prompt, chosen, rejected, response, rating, scale_lo, scale_hi, "
	 "features, rater_role, rater_attrs, decision_id) SELECT $1, $2, $3, "
	 "$4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17 "
	 "WHERE EXISTS "
	 "(SELECT 1 FROM users INDEXED BY users_erased "
	 "WHERE org = $1 AND id = $2 AND erased = 0) "
	 "ON CONFLICT (org, event_id) WHERE event_id IS NOT NULL "
	 "DO NOTHING RETURNING id",
	 "INSERT INTO feedback (org, user_id, event_id, ts, received, kind, "
	 "prompt, chosen, rejected, response, rating, scale_lo, scale_hi, "
	 "features, rater_role, rater_attrs, decision_id) SELECT $1::text, "
	 "$2::text, "
	 "$3::text, $4::bigint, $5::bigint, $6::text, $7::text, $8::text, "
	 "$9::text, $10::text, $11::float8, $12::float8, $13::float8, "
	 "$14::bytea, $15::text, $16::text, $17::text WHERE EXISTS "
	 "(SELECT 1 FROM users WHERE org = $1 AND id = $2 AND erased = 0 "
	 "FOR SHARE) "
	 "ON CONFLICT (org, event_id) WHERE event_id IS NOT NULL "
	 "DO NOTHING RETURNING id"},
    [S_FB_COUNT_ORG] = {"SELECT COUNT(*) FROM feedback WHERE org = $1", NULL},
    [S_FB_COUNT_USER] = {"SELECT COUNT(*) FROM feedback "
			 "WHERE org = $1 AND user_id = $2",
			 NULL},
    [S_FB_EXISTS] = {"SELECT COUNT(*) FROM feedback WHERE id = $1", NULL},
    [S_GC] = {"DELETE FROM feedback WHERE org = $1 "
	      "AND (ts < $2 OR received < $2)",
	      NULL},
    [S_DEC_INSERT] = {"INSERT INTO decisions (id, org, user_id, ts, "
		      "policy_hash, verdict, blocked_tier, blocked_category, "
		      "detail) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
		      NULL},
    [S_DEC_OWNER] = {"SELECT user_id, verdict, detail FROM decisions "
		     "WHERE org = $1 AND id = $2",
		     NULL},
    [S_KEY_INSERT] = {"INSERT INTO api_keys (id, org, role, user_id, hash, "
		      "created) VALUES ($1, $2, $3, $4, $5, $6)",
		      NULL},
    [S_KEY_REVOKE] = {"UPDATE api_keys SET revoked = $3 "
		      "WHERE org = $1 AND id = $2 AND revoked IS NULL "
		      "RETURNING role, user_id",
		      NULL},
    [S_KEY_LOOKUP] = {"SELECT id, org, role, user_id FROM api_keys "
		      "WHERE hash = $1 AND revoked IS NULL",
		      NULL},
    [S_AUDIT_HEAD] = {"SELECT seq, hash FROM audit_head WHERE id = 1", NULL},
    /* Appenders serialise on the head row: SQLite through BEGIN
     * IMMEDIATE, PostgreSQL through this row lock. */
    [S_AUDIT_HEAD_LOCK] = {"SELECT seq, hash FROM audit_head WHERE id = 1",
			   "SELECT seq, hash FROM audit_head WHERE id = 1 "
			   "FOR UPDATE"},
    [S_AUDIT_INSERT] = {"INSERT INTO audit (seq, ts, org, kind, subject, "
			"user_id, detail, prev, hash) "
			"VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
			NULL},
    [S_AUDIT_HEAD_SET] = {"UPDATE audit_head SET seq = $1, hash = $2 "
			  "WHERE id = 1",
			  NULL},
    [S_FB_EVENT_OWNER] = {"SELECT user_id FROM feedback "
			  "WHERE org = $1 AND event_id = $2",
			  NULL},
    /* Rows the walk by seq cannot vouch for: outside its range, or (in
     * SQLite, whose columns take any type) with a value whose type or
     * embedded NUL the hash of its text would not show. */
    [S_AUDIT_ODD] =
	{"SELECT COUNT(*), MIN(seq) FROM audit WHERE typeof(seq) <> 'integer' "
	 "OR seq < 1 "
	 "OR typeof(ts) <> 'integer' OR typeof(kind) <> 'text' "
	 "OR typeof(prev) <> 'text' OR typeof(hash) <> 'text' "
	 "OR typeof(org) NOT IN ('text', 'null') "
	 "OR typeof(subject) NOT IN ('text', 'null') "
	 "OR typeof(user_id) NOT IN ('text', 'null') "
	 "OR typeof(detail) NOT IN ('text', 'null') "
	 "OR instr(kind, char(0)) OR instr(COALESCE(org, ''), char(0)) "
	 "OR instr(COALESCE(subject, ''), char(0)) "
	 "OR instr(COALESCE(user_id, ''), char(0)) "
	 "OR instr(COALESCE(detail, ''), char(0))",
	 "SELECT COUNT(*), MIN(seq) FROM audit WHERE seq < 1"},
    [S_AUDIT_PAGE] = {"SELECT seq, ts, org, kind, subject, user_id, detail, "
		      "prev, hash FROM audit WHERE seq > $1 ORDER BY seq "
		      "LIMIT " SQL_NUM(AUDIT_PAGE),
		      NULL},
    [S_EXP_FB] = {"SELECT id, event_id, ts, received, kind, prompt, chosen, "
		  "rejected, response, rating, scale_lo, scale_hi, features, "
		  "rater_role, rater_attrs, decision_id FROM feedback "
		  "WHERE org = $1 AND user_id = $2 ORDER BY id",
		  NULL},
    [S_EXP_DEC] = {"SELECT id, ts, policy_hash, verdict, blocked_tier, "
		   "blocked_category, detail FROM decisions "
		   "WHERE org = $1 AND user_id = $2 ORDER BY ts, id",
		   NULL},
    [S_EXP_KEYS] = {"SELECT id, role, created, revoked FROM api_keys "
		    "WHERE org = $1 AND user_id = $2 ORDER BY created, id",
		    NULL},
    [S_EXP_AUDIT] = {"SELECT seq, ts, kind, subject, detail FROM audit "
		     "WHERE org = $1 AND user_id = $2 ORDER BY seq",
		     NULL},
    [S_EXP_TOMBSTONE] = {"SELECT seq, ts, kind, subject, detail FROM audit "
			 "WHERE org = $1 AND user_id = $2 "
			 "AND kind = 'user.erased' ORDER BY seq",
			 NULL},
    [S_ERASE_FB] = {"DELETE FROM feedback WHERE org = $1 AND user_id = $2",
		    NULL},
    [S_ERASE_DEC] = {"DELETE FROM decisions WHERE org = $1 AND user_id = $2",
		     NULL},
    [S_ERASE_KEYS] = {"DELETE FROM api_keys WHERE org = $1 AND user_id = $2",
		      NULL},
    [S_ERASE_USER] = {"UPDATE users SET settings = NULL, consent = NULL, "
		      "model = NULL, erased = 1, updated = $3 "
		      "WHERE org = $1 AND id = $2",
		      NULL},
    [S_ORGS] = {"SELECT id FROM orgs ORDER BY id", NULL},
    /* Sent only on PostgreSQL; delivered when the transaction commits. */
    [S_NOTIFY] = {"SELECT $1", "SELECT pg_notify('pwb_changes', $1)"},
    /* Whether a store is there: its meta table (in the search path). */
    [S_STORE_EXISTS] = {"SELECT COUNT(*) FROM sqlite_master "
			"WHERE type = 'table' AND name = 'meta'",
			"SELECT CASE WHEN to_regclass('meta') IS NULL "
			"THEN 0 ELSE 1 END"},
    /* Reports (pwb_store_aggregate): each over one org and
     * [since, until) of the rows' own time. */
    [S_AGG_FIRST + PWB_AGG_RATERS] = {
	"SELECT COALESCE(rater_role, ''), COUNT(DISTINCT user_id), COUNT(*) "
	"FROM feedback WHERE org = $1 AND ts >= $2 AND ts < $3 "
	"GROUP BY 1 ORDER BY 1",
	NULL},
    [S_AGG_FIRST + PWB_AGG_RATER_ATTRS] = {
	"SELECT COALESCE(rater_attrs, ''), COUNT(DISTINCT user_id), COUNT(*) "
	"FROM feedback WHERE org = $1 AND ts >= $2 AND ts < $3 "
	"GROUP BY 1 ORDER BY 1",
	NULL},
    [S_AGG_FIRST + PWB_AGG_FEEDBACK_PER_RATER] = {
	"SELECT COUNT(*) FROM feedback "
	"WHERE org = $1 AND ts >= $2 AND ts < $3 "
	"GROUP BY user_id ORDER BY 1",
	NULL},
    [S_AGG_FIRST + PWB_AGG_VERDICTS] = {
	"SELECT verdict, COUNT(*), COUNT(DISTINCT user_id) FROM decisions "
	"WHERE org = $1 AND ts >= $2 AND ts < $3 GROUP BY 1 ORDER BY 1",
	NULL},
    [S_AGG_FIRST + PWB_AGG_BLOCKS] = {
	"SELECT ts / 86400, COALESCE(blocked_tier, ''), "
	"COALESCE(blocked_category, ''), COUNT(*) FROM decisions "
	"WHERE org = $1 AND ts >= $2 AND ts < $3 AND verdict = 'block' "
	"GROUP BY 1, 2, 3 ORDER BY 1, 2, 3",
	NULL},
    [S_AGG_FIRST + PWB_AGG_POLICIES] = {
	"SELECT COALESCE(policy_hash, ''), MIN(ts), MAX(ts), COUNT(*) "
	"FROM decisions WHERE org = $1 AND ts >= $2 AND ts < $3 "
	"GROUP BY 1 ORDER BY 2, 1",
	NULL},
    [S_AGG_FIRST + PWB_AGG_USERS] = {
	"SELECT COUNT(*), "
	"SUM(CASE WHEN model IS NOT NULL THEN 1 ELSE 0 END), "
	"SUM(CASE WHEN erased <> 0 THEN 1 ELSE 0 END) FROM users "
	"WHERE org = $1 AND created < $3",
	NULL},
    [S_AGG_FIRST + PWB_AGG_DECISIONS_PER_USER] = {
	"SELECT COUNT(*) FROM decisions "
	"WHERE org = $1 AND ts >= $2 AND ts < $3 "
	"GROUP BY user_id ORDER BY 1",
	NULL},
    [S_AGG_FIRST + PWB_AGG_LAW_BLOCKS_PER_USER] = {
	"SELECT COUNT(*) FROM decisions "
	"WHERE org = $1 AND ts >= $2 AND ts < $3 AND verdict = 'block' "
	"AND blocked_tier = 'law' GROUP BY user_id ORDER BY 1",
	NULL},
    [S_AGG_FIRST + PWB_AGG_MODELS] = {
	"SELECT id, model, model_version FROM users WHERE org = $1 "
	"AND model IS NOT NULL AND erased = 0 AND updated >= $2 "
	"AND created < $3 ORDER BY id",
	NULL},
};

/* ---- the handle and its pool ---- */

/*
 * One decision or feedback event waiting for a group commit (see "group
 * commit" below). It lives on its caller's stack, and borrows the
 * caller's arguments: the caller waits until `done`.
 */
struct gc_event {
	const char *org;
	const pwb_store_feedback *fbs; /* n_fb feedback events */
	size_t n_fb;
	pwb_store_model_write *model;  /* and the model they taught, or */
	const pwb_store_decision *d;   /* a decision */
	pwb_store_texts texts;
	int64_t now;
	const char *audit_detail; /* the decision's audit row's detail */
	int64_t id;		  /* out: the first feedback row's id */
	pwb_status st;		  /* out, once done */
	bool done;
	pwb_diag *diag;	   /* the caller's; written before done is set */
	pthread_cond_t cv; /* its caller waits here (not all on one) */
	struct gc_event *next;
};

typedef struct slot {
	pwb__conn *c;
	bool busy;
	bool tx; /* in a transaction of `owner` */
	pthread_t owner;
} slot;

struct pwb_store {
	const pwb__backend *be;
	char *target;	/* the path, or the libpq URL */
	char name[256]; /* for messages, without credentials */
	pwb_store_params params;
	unsigned char secret[32];
	bool secret_given; /* params.key_secret, else the database's */
	/* The database's own secret (meta key_secret), whatever keys the
	 * API keys: content ids must not change with PWB_KEY_SECRET. */
	unsigned char db_secret[32];
	pthread_mutex_t mu;
	pthread_cond_t cv;
	slot *slots;
	int n_slots;
	/* Group commit (see "group commit" below): the events waiting for
	 * a leader, whether one is writing, and a hold for tests. */
	pthread_mutex_t g_mu;
	struct gc_event *g_head, *g_tail;
	size_t g_queued;
	bool g_leader, g_hold;
	uint64_t g_commits, g_events;
};

pwb_store_params pwb_store_default_params(void)
{
	return (pwb_store_params){
	    .busy_timeout_ms = 30000,
	    .pool_size = 4,
	    .connect_timeout_s = 10,
	};
}

int pwb_store_schema_version(void)
{
	return pwb__migrations[pwb__n_migrations - 1].version;
}

const char *pwb_store_backend(const pwb_store *s)
{
	return s->be->name;
}

const char *pwb_store_name(const pwb_store *s)
{
	return s->name;
}

/* The slot this thread's transaction holds, or NULL. Under s->mu. */
static slot *own_tx(pwb_store *s)
{
	for (int i = 0; i < s->n_slots; i++)
		if (s->slots[i].tx &&
		    pthread_equal(s->slots[i].owner, pthread_self()))
			return &s->slots[i];
	return NULL;
}

/* Whether this thread has a transaction open. */
static bool in_tx(pwb_store *s)
{
	pthread_mutex_lock(&s->mu);
	bool in = own_tx(s) != NULL;
	pthread_mutex_unlock(&s->mu);
	return in;
}

/* A connection for this thread: its transaction's, else a free one. */
static pwb_status acquire(pwb_store *s, slot **out, pwb_diag *diag)
{
	pthread_mutex_lock(&s->mu);
	slot *sl = own_tx(s);
	while (!sl) {
		for (int i = 0; i < s->n_slots && !sl; i++)
			if (!s->slots[i].busy)
				sl = &s->slots[i];
		if (!sl)
			pthread_cond_wait(&s->cv, &s->mu);
	}
	if (!sl->tx) {
		sl->busy = true;
		sl->owner = pthread_self();
	}
	pthread_mutex_unlock(&s->mu);
	pwb_status st = PWB_OK;
	if (!sl->c)
		st = s->be->connect(&sl->c, s->target, &s->params, diag);
	else if (!sl->tx && !s->be->alive(sl->c)) {
		s->be->disconnect(sl->c);
		sl->c = NULL;
		st = s->be->connect(&sl->c, s->target, &s->params, diag);
	}
	if (st) {
		pthread_mutex_lock(&s->mu);
		sl->busy = false;
		pthread_cond_signal(&s->cv);
		pthread_mutex_unlock(&s->mu);
		return st;
	}
	*out = sl;
	return PWB_OK;
}

static void release(pwb_store *s, slot *sl)
{
	if (!sl || sl->tx)
		return;
	pthread_mutex_lock(&s->mu);
	sl->busy = false;
	pthread_cond_signal(&s->cv);
	pthread_mutex_unlock(&s->mu);
}

static const char *begin_sql(const pwb_store *s, bool write)
{
	if (s->be->dialect == PWB__SQLITE)
		return write ? "BEGIN IMMEDIATE" : "BEGIN";
	return write ? "BEGIN"
		     : "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY";
}

static pwb_status tx_begin(pwb_store *s, slot *sl, bool write, pwb_diag *diag)
{
	if (write && s->params.mode == PWB_STORE_READ_ONLY) {
		pwb_diag_add(diag, s->name, 0, 0,
			     "the store was opened read-only; nothing was "
			     "written");
		return PWB_EINVAL;
	}
	pwb_status st = s->be->exec(sl->c, begin_sql(s, write), diag);
	if (st)
		return st;
	pthread_mutex_lock(&s->mu);
	sl->tx = true;
	pthread_mutex_unlock(&s->mu);
	return PWB_OK;
}

static void tx_clear(pwb_store *s, slot *sl)
{
	pthread_mutex_lock(&s->mu);
	sl->tx = false;
	pthread_mutex_unlock(&s->mu);
}

pwb_status pwb_store_begin(pwb_store *s, pwb_diag *diag)
{
	pthread_mutex_lock(&s->mu);
	bool nested = own_tx(s) != NULL;
	pthread_mutex_unlock(&s->mu);
	if (nested) {
		pwb_diag_add(diag, NULL, 0, 0,
			     "a transaction is already open on this thread");
		return PWB_EINVAL;
	}
	slot *sl;
	pwb_status st = acquire(s, &sl, diag);
	if (st)
		return st;
	st = tx_begin(s, sl, true, diag);
	release(s, sl);
	return st;
}

pwb_status pwb_store_commit(pwb_store *s, pwb_diag *diag)
{
	pthread_mutex_lock(&s->mu);
	slot *sl = own_tx(s);
	pthread_mutex_unlock(&s->mu);
	if (!sl) {
		pwb_diag_add(diag, NULL, 0, 0, "no transaction to commit");
		return PWB_EINVAL;
	}
	pwb_status st = s->be->exec(sl->c, "COMMIT", diag);
	if (st)
		s->be->exec(sl->c, "ROLLBACK", NULL);
	tx_clear(s, sl);
	release(s, sl);
	return st;
}

void pwb_store_rollback(pwb_store *s)
{
	pthread_mutex_lock(&s->mu);
	slot *sl = own_tx(s);
	pthread_mutex_unlock(&s->mu);
	if (!sl)
		return;
	s->be->exec(sl->c, "ROLLBACK", NULL);
	tx_clear(s, sl);
	release(s, sl);
}

/*
 * The frame of every operation: op_enter() joins the thread's transaction
 * or starts its own (write or read); op_leave() commits or rolls back what
 * it started and hands the connection back.
 */
typedef struct op {
	slot *sl;
	bool own;
} op;

static pwb_status op_enter(pwb_store *s, op *o, bool write, pwb_diag *diag)
{
	o->sl = NULL;
	o->own = false;
	pwb_status st = acquire(s, &o->sl, diag);
	if (st)
		return st;
	if (o->sl->tx)
		return PWB_OK;
	st = tx_begin(s, o->sl, write, diag);
	if (st) {
		release(s, o->sl);
		return st;
	}
	o->own = true;
	return PWB_OK;
}

static pwb_status op_leave(pwb_store *s, op *o, pwb_status st, pwb_diag *diag)
{
	if (!o->sl || !o->own)
		return st;
	if (st == PWB_OK) {
		st = s->be->exec(o->sl->c, "COMMIT", diag);
		if (st)
			s->be->exec(o->sl->c, "ROLLBACK", NULL);
	} else {
		s->be->exec(o->sl->c, "ROLLBACK", NULL);
	}
	tx_clear(s, o->sl);
	release(s, o->sl);
	return st;
}

/*
 * Ends an operation that only read (it wrote nothing: rolled back either
 * way) and returns its status, unless the backend says the database may
 * have changed under the read: then PWB_EIO, and the messages the read
 * added since `mark` give way to that one.
 */
static pwb_status read_leave(pwb_store *s, op *o, pwb_status st, size_t mark,
			     pwb_diag *diag)
{
	pwb__conn *c = o->sl ? o->sl->c : NULL;
	op_leave(s, o, PWB_EINVAL, NULL);
	if (!c || !s->be->read_held)
		return st;
	pwb_diag d;
	pwb_diag_init(&d);
	pwb_status held = s->be->read_held(c, &d);
	if (held && diag) {
		while (diag->n > mark) {
			diag->n--;
			free(diag->entries[diag->n].file);
			free(diag->entries[diag->n].message);
		}
		for (size_t i = 0; i < d.n; i++)
			pwb_diag_add(diag, d.entries[i].file, 0, 0, "%s",
				     d.entries[i].message);
	}
	pwb_diag_release(&d);
	return held ? held : st;
}

/* ---- running statements ---- */

#define V_NULL ((pwb__val){.t = PWB__V_NULL})
#define V_INT(x) ((pwb__val){.t = PWB__V_INT, .i = (x)})
#define V_DBL(x) ((pwb__val){.t = PWB__V_DOUBLE, .d = (x)})
#define V_TEXT(x) ((pwb__val){.t = (x) ? PWB__V_TEXT : PWB__V_NULL, .s = (x)})
#define V_STR(x) ((pwb__val){.t = PWB__V_TEXT, .s = (x)})
#define V_BLOB(p, n)                                                           \
	((pwb__val){.t = (p) ? PWB__V_BLOB : PWB__V_NULL, .b = (p), .len = (n)})

static pwb_status q(pwb_store *s, op *o, int id, const pwb__val *p, int n,
		    pwb__rows **rows, pwb_diag *diag)
{
	const stmt *t = &stmts[id];
	const char *sql =
	    s->be->dialect == PWB__POSTGRES && t->pg ? t->pg : t->sql;
	return s->be->query(o->sl->c, id, sql, p, n, rows, diag);
}

/* Runs a statement that returns nothing (or whose rows are not needed). */
static pwb_status q_exec(pwb_store *s, op *o, int id, const pwb__val *p, int n,
			 int64_t *changes, pwb_diag *diag)
{
	pwb__rows *r;
	pwb_status st = q(s, o, id, p, n, &r, diag);
	if (st)
		return st;
	if (changes)
		*changes = s->be->changes(r);
	s->be->done(r);
	return PWB_OK;
}

/* Runs a statement for its first row's integer column 0 (*found false and
 * *v untouched when it has no row). */
static pwb_status q_int(pwb_store *s, op *o, int id, const pwb__val *p, int n,
			int64_t *v, bool *found, pwb_diag *diag)
{
	pwb__rows *r;
	pwb_status st = q(s, o, id, p, n, &r, diag);
	if (st)
		return st;
	bool has = false;
	st = s->be->next(r, &has, diag);
	if (!st && has)
		*v = s->be->col_int(r, 0);
	if (found)
		*found = has;
	s->be->done(r);
	return st;
}

pwb_status pwb__store_exec(pwb_store *s, const char *sql, pwb_diag *diag)
{
	slot *sl;
	pwb_status st = acquire(s, &sl, diag);
	if (st)
		return st;
	st = s->be->exec(sl->c, sql, diag);
	release(s, sl);
	return st;
}

/* ---- checks on arguments ---- */

static pwb_status check_id(const char *what, const char *v, pwb_diag *diag)
{
	if (!v || !v[0]) {
		pwb_diag_add(diag, NULL, 0, 0, "the %s id is empty", what);
		return PWB_EINVAL;
	}
	size_t n = strnlen(v, MAX_ID + 1);
	if (n > MAX_ID) {
		pwb_diag_add(diag, NULL, 0, 0,
			     "the %s id is longer than %d bytes", what, MAX_ID);
		return PWB_EINVAL;
	}
	int line, col;
	bool nul;
	if (!pwb__utf8_valid(v, n, &line, &col, &nul)) {
		pwb_diag_add(diag, NULL, 0, 0,
			     "the %s id is not valid UTF-8 (byte %d)", what,
			     col);
		return PWB_EINVAL;
	}
	return PWB_OK;
}

static pwb_status check_json(const char *what, const char *v, pwb_diag *diag)
{
	if (!v)
		return PWB_OK;
	size_t n = strnlen(v, MAX_JSON + 1);
	if (n > MAX_JSON) {
		pwb_diag_add(diag, NULL, 0, 0, "the %s is larger than %d bytes",
			     what, MAX_JSON);
		return PWB_ETOOLARGE;
	}
	json_error_t err;
	json_t *j = json_loadb(v, n, JSON_REJECT_DUPLICATES, &err);
	if (!j || !json_is_object(j)) {
		pwb_diag_add(diag, NULL, 0, 0,
			     "the %s is not a JSON object%s%s", what,
			     j ? "" : ": ", j ? "" : err.text);
		json_decref(j);
		return PWB_EINVAL;
	}
	json_decref(j);
	return PWB_OK;
}

static pwb_status check_text(const char *what, const char *v, pwb_diag *diag)
{
	if (!v)
		return PWB_OK;
	size_t n = strnlen(v, PWB_STORE_MAX_TEXT + 1);
	if (n > PWB_STORE_MAX_TEXT) {
		pwb_diag_add(diag, NULL, 0, 0, "the %s is longer than %d bytes",
			     what, PWB_STORE_MAX_TEXT);
		return PWB_ETOOLARGE;
	}
	int line, col;
	bool nul;
	if (!pwb__utf8_valid(v, n, &line, &col, &nul)) {
		pwb_diag_add(diag, NULL, 0, 0,
			     "the %s is not valid UTF-8 (line %d, column %d)",
			     what, line, col);
		return PWB_EINVAL;
	}
	return PWB_OK;
}

/* ---- opening: URLs and migrations ---- */

static pwb_status parse_url(const char *url, const pwb__backend **be,
			    const char **target, pwb_diag *diag)
{
	if (!url || !url[0]) {
		pwb_diag_add(diag, NULL, 0, 0,
			     "no database URL given (sqlite:PATH or "
			     "postgres://...)");
		return PWB_EINVAL;
	}
	if (!strncmp(url, "sqlite:", 7)) {
		const char *path = url + 7;
		if (!strncmp(path, "//", 2))
			path += 2;
		if (!path[0]) {
			pwb_diag_add(diag, NULL, 0, 0,
				     "the URL '%s' names no file: write "
				     "sqlite:PATH, e.g. sqlite:pwb.db",
				     url);
			return PWB_EINVAL;
		}
		if (!strcmp(path, ":memory:") || !strncmp(path, "file:", 5)) {
			pwb_diag_add(diag, NULL, 0, 0,
				     "the URL '%s' is not a file path: pwb "
				     "keeps its data in a file (sqlite:PATH)",
				     url);
			return PWB_EINVAL;
		}
		*be = &pwb__sqlite_backend;
		*target = path;
		return PWB_OK;
	}
	if (!strncmp(url, "postgres://", 11) ||
	    !strncmp(url, "postgresql://", 13)) {
		*be = &pwb__postgres_backend;
		*target = url;
		return PWB_OK;
	}
	size_t n = strcspn(url, ":");
	if (url[n] == ':')
		pwb_diag_add(diag, NULL, 0, 0,
			     "unknown database URL scheme '%.*s:' (use "
			     "sqlite:PATH or postgres://...)",
			     (int)(n > 40 ? 40 : n), url);
	else
		pwb_diag_add(diag, NULL, 0, 0,
			     "'%.60s' is not a database URL (use sqlite:PATH "
			     "or postgres://...)",
			     url);
	return PWB_EINVAL;
}

static pwb_status meta_get(pwb_store *s, op *o, const char *key, char **val,
			   pwb_diag *diag)
{
	*val = NULL;
	pwb__val p[] = {V_TEXT(key)};
	pwb__rows *r;
	pwb_status st = q(s, o, S_META_GET, p, 1, &r, diag);
	if (st)
		return st;
	bool has = false;
	st = s->be->next(r, &has, diag);
	if (!st && has) {
		const char *v = s->be->col_text(r, 0);
		if (v && !(*val = pwb__strdup(v)))
			st = PWB_ENOMEM;
	}
	s->be->done(r);
	return st;
}

static pwb_status meta_set(pwb_store *s, op *o, const char *key,
			   const char *val, pwb_diag *diag)
{
	pwb__val p[] = {V_TEXT(key), V_TEXT(val)};
	return q_exec(s, o, S_META_SET, p, 2, NULL, diag);
}

/* The secret stored in the database: the store's own, and the one that
 * keys API keys unless the caller gave one. */
static pwb_status take_secret(pwb_store *s, const char *hex, pwb_diag *diag)
{
	if (strlen(hex) != 64 ||
	    sodium_hex2bin(s->db_secret, sizeof(s->db_secret), hex, 64, NULL,
			   NULL, NULL) != 0) {
		pwb_diag_add(diag, s->name, 0, 0,
			     "the database's key secret is damaged");
		return PWB_EINVAL;
	}
	if (!s->secret_given)
		memcpy(s->secret, s->db_secret, sizeof(s->secret));
	return PWB_OK;
}

/*
 * The schema version recorded in meta (0 when none) into *have; an error
 * when it is not a number, or newer than this pwb knows.
 */
static pwb_status schema_version(pwb_store *s, op *o, long *have,
				 pwb_diag *diag)
{
	char *v = NULL;
	*have = 0;
	pwb_status st = meta_get(s, o, "schema_version", &v, diag);
	if (st || !v)
		return st;
	char *end;
	errno = 0;
	*have = strtol(v, &end, 10);
	if (errno || *end || *have < 0) {
		pwb_diag_add(diag, s->name, 0, 0,
			     "the database's schema version '%s' is not a "
			     "number: it was not written by pwb",
			     v);
		st = PWB_EINVAL;
	} else if (*have > pwb_store_schema_version()) {
		pwb_diag_add(diag, s->name, 0, 0,
			     "the database has schema version %ld, newer than "
			     "this pwb knows (%d): it was written by a newer "
			     "pwb; upgrade pwb to use it",
			     *have, pwb_store_schema_version());
		st = PWB_EINVAL;
	}
	free(v);
	return st;
}

/*
 * Without PWB_STORE_CREATE: that a store is there (PWB_ENOTFOUND when
 * not), before anything is written. Read-only: that it needs no migration
 * and has its secret, which is then taken.
 */
static pwb_status check_existing(pwb_store *s, pwb_diag *diag)
{
	op o;
	size_t mark = diag ? diag->n : 0;
	pwb_status st = op_enter(s, &o, false, diag);
	if (st)
		return st;
	int64_t n = 0;
	st = q_int(s, &o, S_STORE_EXISTS, NULL, 0, &n, NULL, diag);
	if (!st && !n) {
		pwb_diag_add(diag, s->name, 0, 0,
			     "no pwb store here (the database has no pwb "
			     "tables): check the %s; %s",
			     s->be->dialect == PWB__SQLITE ? "path" : "URL",
			     s->params.mode == PWB_STORE_READ_ONLY
				 ? "a command that only reads creates none"
				 : "this command creates none");
		st = PWB_ENOTFOUND;
	}
	long have = 0;
	if (!st && s->params.mode == PWB_STORE_READ_ONLY &&
	    !(st = schema_version(s, &o, &have, diag)) &&
	    have < pwb_store_schema_version()) {
		pwb_diag_add(diag, s->name, 0, 0,
			     "the store has schema version %ld, older than "
			     "this pwb's (%d), and a command that only reads "
			     "does not upgrade it: run one that writes first",
			     have, pwb_store_schema_version());
		st = PWB_EINVAL;
	}
	char *secret = NULL;
	if (!st && s->params.mode == PWB_STORE_READ_ONLY &&
	    !(st = meta_get(s, &o, "key_secret", &secret, diag))) {
		if (!secret) {
			pwb_diag_add(diag, s->name, 0, 0,
				     "the database has no key secret: it was "
				     "altered");
			st = PWB_EINVAL;
		} else {
			st = take_secret(s, secret, diag);
		}
	}
	free(secret);
	return read_leave(s, &o, st, mark, diag);
}

/*
 * Whether the schema is the latest and the key secret is there (and then
 * taken), read without the write lock: with SQLite's one writer, a process
 * that opens the store while others write would otherwise queue behind
 * every one of their transactions just to learn that nothing is to do.
 */
static bool up_to_date(pwb_store *s)
{
	pwb_diag d;
	pwb_diag_init(&d);
	op o;
	bool ok = false;
	if (op_enter(s, &o, false, &d) == PWB_OK) {
		char *v = NULL, *secret = NULL, want[16];
		snprintf(want, sizeof(want), "%d", pwb_store_schema_version());
		ok = !meta_get(s, &o, "schema_version", &v, &d) && v &&
		     !strcmp(v, want) &&
		     !meta_get(s, &o, "key_secret", &secret, &d) && secret &&
		     !take_secret(s, secret, &d);
		/* Read only: roll back either way (a failed read on
		 * PostgreSQL has aborted the transaction). */
		op_leave(s, &o, PWB_EINVAL, &d);
		free(v);
		free(secret);
	}
	pwb_diag_release(&d);
	return ok;
}

static pwb_status migrate(pwb_store *s, pwb_diag *diag)
{
	pwb_status st = PWB_OK;
	if (s->params.mode != PWB_STORE_CREATE &&
	    (st = check_existing(s, diag)))
		return st;
	if (s->params.mode == PWB_STORE_READ_ONLY || up_to_date(s))
		return PWB_OK;
	op o;
	if ((st = op_enter(s, &o, true, diag)))
		return st;
	char *secret = NULL;
	if (s->be->dialect == PWB__POSTGRES)
		/* Two pwb processes starting together migrate one at a time. */
		st = s->be->exec(o.sl->c, "SELECT pg_advisory_xact_lock(7041)",
				 diag);
	if (!st)
		st = s->be->exec(o.sl->c,
				 "CREATE TABLE IF NOT EXISTS meta (key TEXT "
				 "PRIMARY KEY, value TEXT NOT NULL)",
				 diag);
	long have = 0;
	if (!st)
		st = schema_version(s, &o, &have, diag);
	if (st)
		goto out;
	for (int i = 0; i < pwb__n_migrations && !st; i++) {
		const pwb__migration *m = &pwb__migrations[i];
		if (m->version <= have)
			continue;
		st = s->be->exec(o.sl->c,
				 s->be->dialect == PWB__SQLITE ? m->sqlite
							       : m->postgres,
				 diag);
		char num[16];
		snprintf(num, sizeof(num), "%d", m->version);
		if (!st)
			st = meta_set(s, &o, "schema_version", num, diag);
	}
	if (st)
		goto out;
	st = meta_get(s, &o, "key_secret", &secret, diag);
	if (!st && !secret) {
		unsigned char raw[32];
		char hex[65];
		randombytes_buf(raw, sizeof(raw));
		sodium_bin2hex(hex, sizeof(hex), raw, sizeof(raw));
		st = meta_set(s, &o, "key_secret", hex, diag);
		if (!st && !(secret = pwb__strdup(hex)))
			st = PWB_ENOMEM;
	}
	if (!st)
		st = take_secret(s, secret, diag);
out:
	free(secret);
	return op_leave(s, &o, st, diag);
}

void pwb_store_free(pwb_store *s)
{
	if (!s)
		return;
	for (int i = 0; s->slots && i < s->n_slots; i++)
		if (s->slots[i].c)
			s->be->disconnect(s->slots[i].c);
	free(s->slots);
	pthread_mutex_destroy(&s->mu);
	pthread_cond_destroy(&s->cv);
	pthread_mutex_destroy(&s->g_mu);
	free(s->target);
	free(s);
}

pwb_status pwb_store_open(pwb_store **out, const char *url,
			  const pwb_store_params *params, pwb_diag *diag)
{
	*out = NULL;
	if (sodium_init() < 0)
		return PWB_EIO;
	const pwb__backend *be;
	const char *target;
	pwb_status st = parse_url(url, &be, &target, diag);
	if (st)
		return st;
	pwb_store *s = pwb__calloc(1, sizeof(*s));
	if (!s)
		return PWB_ENOMEM;
	s->be = be;
	s->params = params ? *params : pwb_store_default_params();
	if (s->params.pool_size < 1)
		s->params.pool_size = 1;
	if (s->params.pool_size > 256)
		s->params.pool_size = 256;
	if (s->params.busy_timeout_ms < 0)
		s->params.busy_timeout_ms = 0;
	pthread_mutex_init(&s->mu, NULL);
	pthread_cond_init(&s->cv, NULL);
	pthread_mutex_init(&s->g_mu, NULL);
	s->n_slots = s->params.pool_size;
	be->describe(target, s->name, sizeof(s->name));
	if (!(s->target = pwb__strdup(target)) ||
	    !(s->slots = pwb__calloc((size_t)s->n_slots, sizeof(slot)))) {
		pwb_store_free(s);
		return PWB_ENOMEM;
	}
	if (s->params.key_secret) {
		crypto_generichash(s->secret, sizeof(s->secret),
				   s->params.key_secret,
				   s->params.key_secret_len, NULL, 0);
		s->secret_given = true;
	}
	/* The caller's secret is not kept beyond this call. */
	s->params.key_secret = NULL;
	s->params.key_secret_len = 0;
	st = migrate(s, diag);
	if (st) {
		pwb_store_free(s);
		return st;
	}
	*out = s;
	return PWB_OK;
}

pwb_status pwb_store_open_retry(pwb_store **out, const char *url,
				const pwb_store_params *params, int attempts,
				int first_delay_ms, pwb_diag *diag)
{
	long delay = first_delay_ms > 0 ? first_delay_ms : 100;
	pwb_status st = PWB_EIO;
	for (int i = 0; i < (attempts > 0 ? attempts : 1); i++) {
		if (i > 0) {
			struct timespec ts = {delay / 1000,
					      (delay % 1000) * 1000000L};
			while (nanosleep(&ts, &ts) && errno == EINTR)
				;
			delay = delay * 2 > 30000 ? 30000 : delay * 2;
		}
		/* Only the last attempt's reason is kept. */
		size_t mark = diag ? diag->n : 0;
		st = pwb_store_open(out, url, params, diag);
		if (st != PWB_EIO)
			return st;
		if (diag && i + 1 < attempts)
			while (diag->n > mark) {
				diag->n--;
				free(diag->entries[diag->n].file);
				free(diag->entries[diag->n].message);
			}
	}
	return st;
}

/* ---- change notices ---- */

#define CHANNEL "pwb_changes"

static const char *const change_names[] = {"settings", "model", "erased",
					   "policy", "resync"};

/* Queues a notice in the current transaction (PostgreSQL only). */
static pwb_status notify(pwb_store *s, op *o, pwb_store_change_kind kind,
			 const char *org, const char *user, int64_t version,
			 pwb_diag *diag)
{
	if (s->be->dialect != PWB__POSTGRES)
		return PWB_OK;
	json_t *j =
	    json_pack("{s:s, s:s, s:s*, s:I}", "kind", change_names[kind],
		      "org", org, "user", user, "version", (json_int_t)version);
	char *text = j ? json_dumps(j, JSON_COMPACT) : NULL;
	json_decref(j);
	if (!text)
		return PWB_ENOMEM;
	pwb__val p[] = {V_STR(text)};
	pwb_status st = q_exec(s, o, S_NOTIFY, p, 1, NULL, diag);
	free(text);
	return st;
}

/* ---- users ---- */

/* Creates the org and user if missing; refuses an erased user. */
static pwb_status ensure_user_as(pwb_store *s, op *o, const char *org,
				 const char *user, int64_t now, bool share,
				 pwb_diag *diag)
{
	pwb__val p[] = {V_TEXT(org), V_TEXT(user), V_INT(now)};
	int64_t erased = 0;
	bool found = false;
	pwb_status st = q_int(s, o, share ? S_USER_STATE_SHARE : S_USER_STATE,
			      p, 2, &erased, &found, diag);
	if (st)
		return st;
	if (found && erased) {
		pwb_diag_add(diag, NULL, 0, 0,
			     "user '%s' of org '%s' was erased; nothing more "
			     "is stored about them",
			     user, org);
		return PWB_EINVAL;
	}
	if (found)
		return PWB_OK;
	pwb__val po[] = {V_TEXT(org), V_INT(now)};
	st = q_exec(s, o, S_ORG_ENSURE, po, 2, NULL, diag);
	if (!st)
		st = q_exec(s, o, S_USER_INSERT, p, 3, NULL, diag);
	if (!st && share) /* take the lock on the row just made */
		st = q_int(s, o, S_USER_STATE_SHARE, p, 2, &erased, &found,
			   diag);
	return st;
}

/* Every write about a user holds their row FOR SHARE (PostgreSQL) until
 * it commits, so that an erase, which locks the row FOR UPDATE, waits for
 * it and then removes what it wrote, and a write after the erase finds
 * the user erased: nothing lands on an erased user in between. */
static pwb_status ensure_user(pwb_store *s, op *o, const char *org,
			      const char *user, int64_t now, pwb_diag *diag)
{
	return ensure_user_as(s, o, org, user, now, true, diag);
}

static pwb_status dup_col(pwb_store *s, pwb__rows *r, int col, char **out)
{
	const char *v = s->be->col_text(r, col);
	*out = NULL;
	if (v && !(*out = pwb__strdup(v)))
		return PWB_ENOMEM;
	return PWB_OK;
}

void pwb_store_user_release(pwb_store_user *u)
{
	if (!u)
		return;
	free(u->org);
	free(u->id);
	free(u->settings);
	free(u->consent);
	free(u->model);
	memset(u, 0, sizeof(*u));
}

pwb_status pwb_store_user_get(pwb_store *s, const char *org, const char *user,
			      pwb_store_user *out, pwb_diag *diag)
{
	memset(out, 0, sizeof(*out));
	pwb_status st = check_id("org", org, diag);
	if (!st)
		st = check_id("user", user, diag);
	if (st)
		return st;
	slot *sl;
	if ((st = acquire(s, &sl, diag)))
		return st;
	op o = {sl, false};
	pwb__val p[] = {V_TEXT(org), V_TEXT(user)};
	pwb__rows *r;
	st = q(s, &o, S_USER_GET, p, 2, &r, diag);
	if (st)
		goto out;
	bool has = false;
	st = s->be->next(r, &has, diag);
	if (!st && !has)
		st = PWB_ENOTFOUND;
	if (!st) {
		out->org = pwb__strdup(org);
		out->id = pwb__strdup(user);
		st = !out->org || !out->id ? PWB_ENOMEM : PWB_OK;
		if (!st)
			st = dup_col(s, r, 0, &out->settings);
		if (!st)
			st = dup_col(s, r, 1, &out->consent);
		size_t len = 0;
		const void *b = st ? NULL : s->be->col_blob(r, 2, &len);
		if (b) {
			if (!(out->model = pwb__malloc(len)))
				st = PWB_ENOMEM;
			else
				memcpy(out->model, b, len);
			out->model_len = len;
		}
		out->model_version = s->be->col_int(r, 3);
		out->erased = s->be->col_int(r, 4) != 0;
		out->created = s->be->col_int(r, 5);
		out->updated = s->be->col_int(r, 6);
	}
	s->be->done(r);
	if (st)
		pwb_store_user_release(out);
out:
	release(s, sl);
	return st;
}

static pwb_status set_json(pwb_store *s, int id, const char *what,
			   const char *org, const char *user, const char *json,
			   int64_t now, pwb_diag *diag)
{
	pwb_status st = check_id("org", org, diag);
	if (!st)
		st = check_id("user", user, diag);
	if (!st)
		st = check_json(what, json, diag);
	if (st)
		return st;
	op o;
	if ((st = op_enter(s, &o, true, diag)))
		return st;
	st = ensure_user(s, &o, org, user, now, diag);
	pwb__val p[] = {V_TEXT(org), V_TEXT(user), V_TEXT(json), V_INT(now)};
	if (!st)
		st = q_exec(s, &o, id, p, 4, NULL, diag);
	if (!st)
		st = notify(s, &o, PWB_CHANGE_SETTINGS, org, user, 0, diag);
	return op_leave(s, &o, st, diag);
}

pwb_status pwb_store_user_set_settings(pwb_store *s, const char *org,
				       const char *user, const char *json,
				       int64_t now, pwb_diag *diag)
{
	return set_json(s, S_USER_SET_SETTINGS, "settings", org, user, json,
			now, diag);
}

pwb_status pwb_store_user_set_consent(pwb_store *s, const char *org,
				      const char *user, const char *json,
				      int64_t now, pwb_diag *diag)
{
	return set_json(s, S_USER_SET_CONSENT, "consent", org, user, json, now,
			diag);
}

/* Inside o: the model written if its version is still expect_version
 * (else PWB_EINVAL), *v the version written. */
static pwb_status model_write(pwb_store *s, op *o, const char *org,
			      const char *user, const void *blob, size_t len,
			      int64_t expect_version, int64_t now, int64_t *v,
			      pwb_diag *diag)
{
	pwb_status st = ensure_user(s, o, org, user, now, diag);
	pwb__val p[] = {V_TEXT(org), V_TEXT(user), V_BLOB(blob, len),
			V_INT(now), V_INT(expect_version)};
	bool found = false;
	*v = 0;
	if (!st)
		st = q_int(s, o, S_USER_SET_MODEL, p, 5, v, &found, diag);
	if (!st && !found) {
		pwb_diag_add(diag, NULL, 0, 0,
			     "the model of user '%s' changed since version "
			     "%lld was read; read it again",
			     user, (long long)expect_version);
		st = PWB_EINVAL;
	}
	if (!st)
		st = notify(s, o, PWB_CHANGE_MODEL, org, user, *v, diag);
	return st;
}

static pwb_status model_check(const char *org, const char *user, size_t len,
			      pwb_diag *diag)
{
	pwb_status st = check_id("org", org, diag);
	if (!st)
		st = check_id("user", user, diag);
	if (!st && len > MAX_MODEL) {
		pwb_diag_add(diag, NULL, 0, 0,
			     "the model is larger than %u bytes", MAX_MODEL);
		st = PWB_ETOOLARGE;
	}
	return st;
}

pwb_status pwb_store_user_cas_consent(pwb_store *s, const char *org,
				      const char *user, const char *old,
				      const char *json, int64_t now,
				      bool *swapped, pwb_diag *diag)
{
	*swapped = false;
	pwb_status st = check_id("org", org, diag);
	if (!st)
		st = check_id("user", user, diag);
	if (!st)
		st = check_json("consent", json, diag);
	if (st)
		return st;
	op o;
	if ((st = op_enter(s, &o, true, diag)))
		return st;
	st = ensure_user(s, &o, org, user, now, diag);
	pwb__val p[] = {V_TEXT(org), V_TEXT(user), V_TEXT(json), V_INT(now),
			V_TEXT(old)};
	int64_t changed = 0;
	if (!st)
		st = q_exec(s, &o, S_USER_CAS_CONSENT, p, 5, &changed, diag);
	if (!st && changed)
		st = notify(s, &o, PWB_CHANGE_SETTINGS, org, user, 0, diag);
	st = op_leave(s, &o, st, diag);
	*swapped = !st && changed > 0;
	return st;
}

pwb_status pwb_store_user_set_model(pwb_store *s, const char *org,
				    const char *user, const void *blob,
				    size_t len, int64_t expect_version,
				    int64_t *new_version, int64_t now,
				    pwb_diag *diag)
{
	pwb_status st = model_check(org, user, len, diag);
	if (st)
		return st;
	op o;
	if ((st = op_enter(s, &o, true, diag)))
		return st;
	int64_t v = 0;
	st = model_write(s, &o, org, user, blob, len, expect_version, now, &v,
			 diag);
	if (!st && new_version)
		*new_version = v;
	return op_leave(s, &o, st, diag);
}

/* ---- feedback ---- */

/* Hash input: integers as 8 bytes little-endian; strings as their
 * length, then their bytes (NULL as length 2^64 - 1, no bytes). The
 * audit chain and content ids share it (docs/store.md). */
static void put_u64(crypto_generichash_state *h, uint64_t v)
{
	unsigned char b[8];
	for (int i = 0; i < 8; i++)
		b[i] = (unsigned char)(v >> (8 * i));
	crypto_generichash_update(h, b, 8);
}

static void put_str(crypto_generichash_state *h, const char *v)
{
	if (!v) {
		put_u64(h, UINT64_MAX); /* NULL differs from "" */
		return;
	}
	size_t n = strlen(v);
	put_u64(h, n);
	crypto_generichash_update(h, (const unsigned char *)v, n);
}

static pwb_status check_event_owner(pwb_store *s, op *o, const char *org,
				    const pwb_store_feedback *fb,
				    pwb_diag *diag)
{
	pwb__val p[] = {V_TEXT(org), V_TEXT(fb->event_id)};
	pwb__rows *r;
	pwb_status st = q(s, o, S_FB_EVENT_OWNER, p, 2, &r, diag);
	if (st)
		return st;
	bool has = false;
	if (!(st = s->be->next(r, &has, diag)) && has) {
		const char *owner = s->be->col_text(r, 0);
		if (!owner || strcmp(owner, fb->user) != 0) {
			pwb_diag_add(diag, NULL, 0, 0,
				     "event id '%s' is already stored for "
				     "another user of org '%s'",
				     fb->event_id, org);
			st = PWB_EINVAL;
		}
	}
	s->be->done(r);
	return st;
}

pwb_status pwb_store_feedback_check(const char *org,
				    const pwb_store_feedback *fb,
				    pwb_store_texts texts, pwb_diag *diag)
{
	pwb_status st = check_id("org", org, diag);
	if (!st)
		st = check_id("user", fb->user, diag);
	if (!st && fb->event_id)
		st = check_id("event", fb->event_id, diag);
	if (!st && fb->decision_id)
		st = check_id("decision", fb->decision_id, diag);
	if (!st)
		st = check_json("rater attributes", fb->rater_attrs, diag);
	bool keep = texts == PWB_STORE_TEXTS;
	if (!st && keep) {
		st = check_text("prompt", fb->prompt, diag);
		if (!st)
			st = check_text("chosen response", fb->chosen, diag);
		if (!st)
			st =
			    check_text("rejected response", fb->rejected, diag);
		if (!st)
			st = check_text("response", fb->response, diag);
	}
	if (st)
		return st;
	bool pair = fb->kind == PWB_STORE_FB_PAIR;
	if (!pair && !(fb->scale_lo < fb->scale_hi && isfinite(fb->scale_lo) &&
		       isfinite(fb->scale_hi) && fb->rating >= fb->scale_lo &&
		       fb->rating <= fb->scale_hi)) {
		pwb_diag_add(diag, NULL, 0, 0,
			     "the rating is not within its scale (finite "
			     "numbers, low to high)");
		return PWB_EINVAL;
	}
	if (fb->rater_role && strcmp(fb->rater_role, "end_user") &&
	    strcmp(fb->rater_role, "crowdworker") &&
	    strcmp(fb->rater_role, "expert")) {
		pwb_diag_add(diag, NULL, 0, 0,
			     "the rater role must be end_user, crowdworker or "
			     "expert");
		return PWB_EINVAL;
	}
	if (fb->features_len > PWB_STORE_MAX_TEXT) {
		pwb_diag_add(diag, NULL, 0, 0,
			     "the feature vector is larger than %d bytes",
			     PWB_STORE_MAX_TEXT);
		return PWB_ETOOLARGE;
	}
	return PWB_OK;
}

/* A double into the hash by its IEEE-754 bits, little-endian. */
static void put_f64(crypto_generichash_state *h, double v)
{
	uint64_t bits;
	memcpy(&bits, &v, sizeof(bits));
	put_u64(h, bits);
}

void pwb_store_feedback_content_id(const pwb_store *s,
				   const pwb_store_feedback *fb,
				   char out[PWB_STORE_CONTENT_ID_SIZE])
{
	static const char tag[] = "pwb-event-v1";
	crypto_generichash_state h;
	unsigned char digest[32];
	bool pair = fb->kind == PWB_STORE_FB_PAIR;
	crypto_generichash_init(&h, s->db_secret, sizeof(s->db_secret),
				sizeof(digest));
	crypto_generichash_update(&h, (const unsigned char *)tag, sizeof(tag));
	put_str(&h, fb->user);
	put_u64(&h, (uint64_t)fb->ts);
	put_str(&h, pair ? "pair" : "rating");
	put_str(&h, fb->prompt);
	put_str(&h, pair ? fb->chosen : NULL);
	put_str(&h, pair ? fb->rejected : NULL);
	put_str(&h, pair ? NULL : fb->response);
	if (!pair) {
		put_f64(&h, fb->rating);
		put_f64(&h, fb->scale_lo);
		put_f64(&h, fb->scale_hi);
	}
	crypto_generichash_final(&h, digest, sizeof(digest));
	memcpy(out, "content:", 8);
	sodium_bin2hex(out + 8, 65, digest, sizeof(digest));
}

/* The rows of one checked event, in the transaction of o. */
static pwb_status fb_write(pwb_store *s, op *o, const char *org,
			   const pwb_store_feedback *fb, pwb_store_texts texts,
			   int64_t now, int64_t *id, pwb_diag *diag)
{
	bool keep = texts == PWB_STORE_TEXTS,
	     pair = fb->kind == PWB_STORE_FB_PAIR;
	pwb_status st;
	/* An event from the future counts from its arrival. */
	int64_t ts = fb->ts > 0 && fb->ts <= now ? fb->ts : now;
	pwb__val p[] = {
	    V_TEXT(org),
	    V_TEXT(fb->user),
	    V_TEXT(fb->event_id),
	    V_INT(ts),
	    V_INT(now),
	    V_TEXT(pair ? "pair" : "rating"),
	    V_TEXT(keep ? fb->prompt : NULL),
	    V_TEXT(keep && pair ? fb->chosen : NULL),
	    V_TEXT(keep && pair ? fb->rejected : NULL),
	    V_TEXT(keep && !pair ? fb->response : NULL),
	    pair ? V_NULL : V_DBL(fb->rating),
	    pair ? V_NULL : V_DBL(fb->scale_lo),
	    pair ? V_NULL : V_DBL(fb->scale_hi),
	    V_BLOB(fb->features, fb->features_len),
	    V_TEXT(fb->rater_role),
	    V_TEXT(fb->rater_attrs),
	    V_TEXT(fb->decision_id),
	};
	int64_t rid = 0;
	bool found = false;
	st = q_int(s, o, S_FB_INSERT_FAST, p, 17, &rid, &found, diag);
	/* A new or erased user, or an event stored before: the long way,
	 * which tells them apart. */
	if (!st && !found) {
		st = ensure_user_as(s, o, org, fb->user, now, true, diag);
		if (!st)
			st = q_int(s, o, S_FB_INSERT, p, 17, &rid, NULL, diag);
		/* Stored before: as the same user's, a replay to skip; as
		 * another user's, a clash the caller must hear about (one
		 * user's ids must not shadow another's events). */
		if (!st && !rid && fb->event_id)
			st = check_event_owner(s, o, org, fb, diag);
	}
	*id = st ? 0 : rid;
	return st;
}

static pwb_status group_commit(pwb_store *s, struct gc_event *e);

/* An event of the group commit that is feedback: its events in order,
 * then the model they taught; e->id gets the first row's id. */
static pwb_status learn_write(pwb_store *s, op *o, struct gc_event *e,
			      pwb_diag *diag)
{
	pwb_status st = PWB_OK;
	for (size_t i = 0; !st && i < e->n_fb; i++) {
		int64_t id = 0;
		st = fb_write(s, o, e->org, &e->fbs[i], e->texts, e->now, &id,
			      diag);
		if (i == 0)
			e->id = id;
	}
	pwb_store_model_write *m = e->model;
	if (!st && m) {
		st = model_write(s, o, e->org, m->user, m->blob, m->len,
				 m->expect_version, e->now, &m->new_version,
				 diag);
		m->conflict = st == PWB_EINVAL;
	}
	return st;
}

/* Outside a transaction, a group commit; inside, written in it. */
static pwb_status learn_add(pwb_store *s, struct gc_event *e)
{
	if (!in_tx(s))
		return group_commit(s, e);
	op o;
	pwb_status st = op_enter(s, &o, true, e->diag);
	if (!st)
		st = learn_write(s, &o, e, e->diag);
	return op_leave(s, &o, st, e->diag);
}

pwb_status pwb_store_feedback_add(pwb_store *s, const char *org,
				  const pwb_store_feedback *fb,
				  pwb_store_texts texts, int64_t now,
				  int64_t *id, pwb_diag *diag)
{
	if (id)
		*id = 0;
	pwb_status st = pwb_store_feedback_check(org, fb, texts, diag);
	if (st)
		return st;
	struct gc_event e = {.org = org,
			     .fbs = fb,
			     .n_fb = 1,
			     .texts = texts,
			     .now = now,
			     .diag = diag};
	st = learn_add(s, &e);
	if (!st && id)
		*id = e.id;
	return st;
}

pwb_status pwb_store_feedback_learn(pwb_store *s, const char *org,
				    const pwb_store_feedback *events, size_t n,
				    pwb_store_texts texts,
				    pwb_store_model_write *model, int64_t now,
				    pwb_diag *diag)
{
	pwb_status st = PWB_OK;
	for (size_t i = 0; !st && i < n; i++)
		st = pwb_store_feedback_check(org, &events[i], texts, diag);
	if (model) {
		model->new_version = 0;
		model->conflict = false;
		if (!st)
			st = model_check(org, model->user, model->len, diag);
	}
	if (st)
		return st;
	if (!n && !model)
		return PWB_OK;
	struct gc_event e = {.org = org,
			     .fbs = events,
			     .n_fb = n,
			     .model = model,
			     .texts = texts,
			     .now = now,
			     .diag = diag};
	return learn_add(s, &e);
}

static pwb_status read_count(pwb_store *s, int id, const pwb__val *p, int n,
			     uint64_t *out, pwb_diag *diag)
{
	slot *sl;
	pwb_status st = acquire(s, &sl, diag);
	if (st)
		return st;
	op o = {sl, false};
	int64_t v = 0;
	st = q_int(s, &o, id, p, n, &v, NULL, diag);
	release(s, sl);
	*out = (uint64_t)v;
	return st;
}

pwb_status pwb_store_feedback_count(pwb_store *s, const char *org,
				    const char *user, uint64_t *n,
				    pwb_diag *diag)
{
	pwb__val p[] = {V_TEXT(org), V_TEXT(user)};
	return read_count(s, user ? S_FB_COUNT_USER : S_FB_COUNT_ORG, p,
			  user ? 2 : 1, n, diag);
}

pwb_status pwb_store_feedback_exists(pwb_store *s, int64_t id, bool *exists,
				     pwb_diag *diag)
{
	pwb__val p[] = {V_INT(id)};
	uint64_t n = 0;
	pwb_status st = read_count(s, S_FB_EXISTS, p, 1, &n, diag);
	*exists = n > 0;
	return st;
}

pwb_status pwb_store_gc(pwb_store *s, const char *org, int64_t before,
			uint64_t *removed, pwb_diag *diag)
{
	if (removed)
		*removed = 0;
	pwb_status st = check_id("org", org, diag);
	if (st)
		return st;
	op o;
	if ((st = op_enter(s, &o, true, diag)))
		return st;
	pwb__val p[] = {V_TEXT(org), V_INT(before)};
	int64_t n = 0;
	st = q_exec(s, &o, S_GC, p, 2, &n, diag);
	st = op_leave(s, &o, st, diag);
	if (!st && removed)
		*removed = (uint64_t)n;
	return st;
}

pwb_status pwb_store_gc_policy(pwb_store *s, const pwb_effective *e,
			       int64_t now, uint64_t *removed, pwb_diag *diag)
{
	if (removed)
		*removed = 0;
	const pwb_eff_learning *l = pwb_effective_learning(e);
	if (!l || l->retention_days <= 0)
		return PWB_OK;
	return pwb_store_gc(s, pwb_effective_org(e),
			    now - (int64_t)l->retention_days * 86400, removed,
			    diag);
}

/* ---- audit ---- */

void pwb__audit_hash(const char *prev_hex, const pwb__audit_row *r,
		     char out[65])
{
	static const char tag[] = "pwb-audit-v1";
	crypto_generichash_state h;
	unsigned char digest[32];
	crypto_generichash_init(&h, NULL, 0, sizeof(digest));
	crypto_generichash_update(&h, (const unsigned char *)tag, sizeof(tag));
	put_str(&h, prev_hex);
	put_u64(&h, (uint64_t)r->seq);
	put_u64(&h, (uint64_t)r->ts);
	put_str(&h, r->org);
	put_str(&h, r->kind);
	put_str(&h, r->subject);
	put_str(&h, r->user);
	put_str(&h, r->detail);
	crypto_generichash_final(&h, digest, sizeof(digest));
	sodium_bin2hex(out, 65, digest, sizeof(digest));
}

/* Reads the chain's head, locked until the transaction ends. */
static pwb_status audit_head(pwb_store *s, op *o, int64_t *last, char prev[65],
			     pwb_diag *diag)
{
	pwb__rows *r;
	pwb_status st = q(s, o, S_AUDIT_HEAD_LOCK, NULL, 0, &r, diag);
	if (st)
		return st;
	bool has = false;
	snprintf(prev, 65, "%s", ZERO_HASH);
	*last = 0;
	st = s->be->next(r, &has, diag);
	if (!st && has) {
		*last = s->be->col_int(r, 0);
		const char *h = s->be->col_text(r, 1);
		snprintf(prev, 65, "%s", h ? h : "");
	}
	s->be->done(r);
	if (!st && !has) {
		pwb_diag_add(diag, NULL, 0, 0,
			     "the audit chain has no head row: the database "
			     "was altered");
		st = PWB_EIO;
	}
	return st;
}

/* Writes the row after (*last, prev) and moves both on to it; the head
 * row itself is set by audit_head_set(). */
static pwb_status audit_insert(pwb_store *s, op *o, const pwb__audit_row *in,
			       int64_t *last, char prev[65], pwb_diag *diag)
{
	pwb__audit_row row = *in;
	row.seq = *last + 1;
	char hash[65];
	pwb__audit_hash(prev, &row, hash);
	pwb__val p[] = {
	    V_INT(row.seq),	V_INT(row.ts),	     V_TEXT(row.org),
	    V_TEXT(row.kind),	V_TEXT(row.subject), V_TEXT(row.user),
	    V_TEXT(row.detail), V_STR(prev),	     V_STR(hash)};
	pwb_status st = q_exec(s, o, S_AUDIT_INSERT, p, 9, NULL, diag);
	if (!st) {
		*last = row.seq;
		memcpy(prev, hash, 65);
	}
	return st;
}

static pwb_status audit_head_set(pwb_store *s, op *o, int64_t last,
				 const char *hash, pwb_diag *diag)
{
	pwb__val ph[] = {V_INT(last), V_STR(hash)};
	return q_exec(s, o, S_AUDIT_HEAD_SET, ph, 2, NULL, diag);
}

static pwb_status audit_append(pwb_store *s, op *o, const pwb__audit_row *in,
			       int64_t *seq, pwb_diag *diag)
{
	int64_t last = 0;
	char prev[65];
	pwb_status st = audit_head(s, o, &last, prev, diag);
	if (!st)
		st = audit_insert(s, o, in, &last, prev, diag);
	if (!st)
		st = audit_head_set(s, o, last, prev, diag);
	if (!st && seq)
		*seq = last;
	return st;
}

pwb_status pwb_store_audit_append(pwb_store *s, const char *org,
				  const char *kind, const char *subject,
				  const char *detail, int64_t now, int64_t *seq,
				  pwb_diag *diag)
{
	pwb_status st = check_id("kind", kind, diag);
	if (!st && org)
		st = check_id("org", org, diag);
	if (!st && subject)
		st = check_id("subject", subject, diag);
	if (!st)
		st = check_json("audit detail", detail, diag);
	if (st)
		return st;
	op o;
	if ((st = op_enter(s, &o, true, diag)))
		return st;
	pwb__audit_row row = {.ts = now,
			      .org = org,
			      .kind = kind,
			      .subject = subject,
			      .detail = detail};
	st = audit_append(s, &o, &row, seq, diag);
	return op_leave(s, &o, st, diag);
}

pwb_status pwb_store_audit_verify(pwb_store *s, pwb_audit_report *rep,
				  pwb_diag *diag)
{
	memset(rep, 0, sizeof(*rep));
	snprintf(rep->head_hash, sizeof(rep->head_hash), "%s", ZERO_HASH);
	size_t mark = diag ? diag->n : 0;
	op o;
	pwb_status st = op_enter(s, &o, false, diag);
	if (st)
		return st;
	/* The head first, in the same snapshot as the rows. */
	pwb__rows *r;
	int64_t head_seq = 0;
	char head_hash[65] = "";
	bool has = false;
	if (!(st = q(s, &o, S_AUDIT_HEAD, NULL, 0, &r, diag))) {
		st = s->be->next(r, &has, diag);
		if (!st && has) {
			head_seq = s->be->col_int(r, 0);
			const char *h = s->be->col_text(r, 1);
			snprintf(head_hash, sizeof(head_hash), "%s",
				 h ? h : "");
		}
		s->be->done(r);
	}
	if (!st && !has) {
		pwb_diag_add(diag, NULL, 0, 0,
			     "the audit chain's head row is missing: the "
			     "audit_head table was altered");
		rep->bad_seq = 1;
		st = PWB_EINVAL;
	}
	int64_t expect = 1;
	char prev[65] = ZERO_HASH;
	while (!st) {
		pwb__val p[] = {V_INT(expect - 1)};
		if ((st = q(s, &o, S_AUDIT_PAGE, p, 1, &r, diag)))
			break;
		size_t got = 0;
		while (!st) {
			if ((st = s->be->next(r, &has, diag)) || !has)
				break;
			got++;
			pwb__audit_row row = {
			    .seq = s->be->col_int(r, 0),
			    .ts = s->be->col_int(r, 1),
			    .org = s->be->col_text(r, 2),
			    .kind = s->be->col_text(r, 3),
			    .subject = s->be->col_text(r, 4),
			    .user = s->be->col_text(r, 5),
			    .detail = s->be->col_text(r, 6),
			};
			const char *rprev = s->be->col_text(r, 7);
			const char *rhash = s->be->col_text(r, 8);
			char want[65];
			if (row.seq != expect) {
				pwb_diag_add(
				    diag, NULL, 0, 0,
				    "audit row %lld is missing: the chain "
				    "goes from row %lld to row %lld (rows "
				    "were deleted)",
				    (long long)expect, (long long)expect - 1,
				    (long long)row.seq);
				rep->bad_seq = expect;
				st = PWB_EINVAL;
				break;
			}
			if (!rprev || strcmp(rprev, prev) != 0) {
				pwb_diag_add(diag, NULL, 0, 0,
					     "audit row %lld does not link to "
					     "row %lld: rows before it were "
					     "replaced, deleted or reordered",
					     (long long)row.seq,
					     (long long)row.seq - 1);
				rep->bad_seq = row.seq;
				st = PWB_EINVAL;
				break;
			}
			pwb__audit_hash(prev, &row, want);
			if (!rhash || strcmp(rhash, want) != 0) {
				pwb_diag_add(diag, NULL, 0, 0,
					     "audit row %lld does not match "
					     "its hash: it was edited, or rows "
					     "were reordered",
					     (long long)row.seq);
				rep->bad_seq = row.seq;
				st = PWB_EINVAL;
				break;
			}
			snprintf(prev, sizeof(prev), "%s", rhash);
			rep->rows++;
			expect++;
		}
		s->be->done(r);
		if (st || got < AUDIT_PAGE)
			break;
	}
	if (!st && expect - 1 < head_seq) {
		pwb_diag_add(diag, NULL, 0, 0,
			     "audit row %lld is missing: the chain ends at row "
			     "%lld but its head records %lld rows (rows at "
			     "the end were deleted)",
			     (long long)expect, (long long)expect - 1,
			     (long long)head_seq);
		rep->bad_seq = expect;
		st = PWB_EINVAL;
	} else if (!st && expect - 1 > head_seq) {
		pwb_diag_add(diag, NULL, 0, 0,
			     "audit row %lld is past the chain's recorded head "
			     "(row %lld): rows were added outside pwb",
			     (long long)head_seq + 1, (long long)head_seq);
		rep->bad_seq = head_seq + 1;
		st = PWB_EINVAL;
	} else if (!st && strcmp(prev, head_hash) != 0) {
		pwb_diag_add(diag, NULL, 0, 0,
			     "audit row %lld does not match the chain's "
			     "recorded head: it was rewritten",
			     (long long)head_seq);
		rep->bad_seq = head_seq;
		st = PWB_EINVAL;
	}
	if (!st && !(st = q(s, &o, S_AUDIT_ODD, NULL, 0, &r, diag))) {
		int64_t odd = 0, first = 0;
		if (!(st = s->be->next(r, &has, diag)) && has) {
			odd = s->be->col_int(r, 0);
			first = s->be->col_int(r, 1);
		}
		s->be->done(r);
		if (!st && odd) {
			pwb_diag_add(
			    diag, NULL, 0, 0,
			    "audit row %lld (and %lld more) is outside "
			    "the chain or of the wrong type: rows were "
			    "added or edited outside pwb",
			    (long long)first, (long long)odd - 1);
			rep->bad_seq = first;
			st = PWB_EINVAL;
		}
	}
	/* The last good row's: prev moves only past rows that held. */
	snprintf(rep->head_hash, sizeof(rep->head_hash), "%s", prev);
	pwb_status held = read_leave(s, &o, st, mark, diag);
	if (held != st && held == PWB_EIO) { /* nothing read can be trusted */
		rep->rows = 0;
		rep->bad_seq = 0;
		snprintf(rep->head_hash, sizeof(rep->head_hash), "%s",
			 ZERO_HASH);
	}
	return held;
}

/* ---- decisions ---- */

/* The decision's audit detail: what it decided, under which policy. */
static pwb_status dec_detail(const pwb_store_decision *d, char **out)
{
	json_t *j =
	    json_pack("{s:s, s:s*, s:s*, s:s*}", "verdict", d->verdict,
		      "policy_hash", d->policy_hash, "blocked_tier",
		      d->blocked_tier, "blocked_category", d->blocked_category);
	*out = j ? json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
	json_decref(j);
	return *out ? PWB_OK : PWB_ENOMEM;
}

/* The decision's audit row (detail from dec_detail()). */
static pwb__audit_row
dec_audit_row(const char *org, const pwb_store_decision *d, const char *detail)
{
	return (pwb__audit_row){.ts = d->ts,
				.org = org,
				.kind = "decision",
				.subject = d->id,
				/* No user: the chain outlives an erase, and
				 * must not link them to it. */
				.user = NULL,
				.detail = detail};
}

/* The decision's row (and its user's), without its audit row. */
static pwb_status dec_write(pwb_store *s, op *o, const char *org,
			    const pwb_store_decision *d, pwb_diag *diag)
{
	pwb_status st = ensure_user_as(s, o, org, d->user, d->ts, true, diag);
	pwb__val p[] = {V_TEXT(d->id),		 V_TEXT(org),
			V_TEXT(d->user),	 V_INT(d->ts),
			V_TEXT(d->policy_hash),	 V_TEXT(d->verdict),
			V_TEXT(d->blocked_tier), V_TEXT(d->blocked_category),
			V_TEXT(d->detail)};
	if (!st)
		st = q_exec(s, o, S_DEC_INSERT, p, 9, NULL, diag);
	return st;
}

pwb_status pwb_store_decision_add(pwb_store *s, const char *org,
				  const pwb_store_decision *d, pwb_diag *diag)
{
	pwb_status st = check_id("org", org, diag);
	if (!st)
		st = check_id("user", d->user, diag);
	if (!st)
		st = check_id("decision", d->id, diag);
	if (!st)
		st = check_id("verdict", d->verdict, diag);
	if (!st)
		st = check_json("decision detail", d->detail, diag);
	char *detail = NULL;
	if (!st)
		st = dec_detail(d, &detail);
	if (st)
		return st;
	if (!in_tx(s)) {
		struct gc_event e = {
		    .org = org, .d = d, .audit_detail = detail, .diag = diag};
		st = group_commit(s, &e);
		free(detail);
		return st;
	}
	op o;
	if ((st = op_enter(s, &o, true, diag))) {
		free(detail);
		return st;
	}
	st = dec_write(s, &o, org, d, diag);
	pwb__audit_row row = dec_audit_row(org, d, detail);
	if (!st)
		st = audit_append(s, &o, &row, NULL, diag);
	free(detail);
	return op_leave(s, &o, st, diag);
}

void pwb_store_decision_row_release(pwb_store_decision_row *d)
{
	if (!d)
		return;
	free(d->user);
	free(d->verdict);
	free(d->detail);
	memset(d, 0, sizeof(*d));
}

pwb_status pwb_store_decision_get(pwb_store *s, const char *org,
				  const char *id, pwb_store_decision_row *out,
				  pwb_diag *diag)
{
	memset(out, 0, sizeof(*out));
	pwb_status st = check_id("org", org, diag);
	if (!st)
		st = check_id("decision", id, diag);
	if (st)
		return st;
	slot *sl;
	if ((st = acquire(s, &sl, diag)))
		return st;
	op o = {sl, false};
	pwb__val p[] = {V_TEXT(org), V_TEXT(id)};
	pwb__rows *r;
	bool has = false;
	if (!(st = q(s, &o, S_DEC_OWNER, p, 2, &r, diag))) {
		st = s->be->next(r, &has, diag);
		if (!st && has && !(st = dup_col(s, r, 0, &out->user)) &&
		    !(st = dup_col(s, r, 1, &out->verdict)))
			st = dup_col(s, r, 2, &out->detail);
		s->be->done(r);
	}
	release(s, sl);
	if (!st && !has) {
		pwb_diag_add(diag, NULL, 0, 0, "org '%s' has no decision '%s'",
			     org, id);
		st = PWB_ENOTFOUND;
	}
	if (st)
		pwb_store_decision_row_release(out);
	return st;
}

/* The cells of each report query: t text, i integer, b blob. */
static const char *const agg_cells[PWB_AGG_COUNT] = {
    [PWB_AGG_RATERS] = "tii",	     [PWB_AGG_RATER_ATTRS] = "tii",
    [PWB_AGG_FEEDBACK_PER_RATER] = "i", [PWB_AGG_VERDICTS] = "tii",
    [PWB_AGG_BLOCKS] = "itti",	     [PWB_AGG_POLICIES] = "tiii",
    [PWB_AGG_USERS] = "iii",	     [PWB_AGG_MODELS] = "tbi",
    [PWB_AGG_DECISIONS_PER_USER] = "i", [PWB_AGG_LAW_BLOCKS_PER_USER] = "i",
};

pwb_status pwb_store_aggregate(pwb_store *s, pwb_store_agg what,
			       const char *org, int64_t since, int64_t until,
			       pwb_store_row_fn fn, void *user, pwb_diag *diag)
{
	if ((unsigned)what >= PWB_AGG_COUNT) {
		pwb_diag_add(diag, NULL, 0, 0, "no such report query (%d)",
			     (int)what);
		return PWB_EINVAL;
	}
	pwb_status st = check_id("org", org, diag);
	if (st)
		return st;
	slot *sl;
	if ((st = acquire(s, &sl, diag)))
		return st;
	op o = {sl, false};
	pwb__val p[] = {V_TEXT(org), V_INT(since), V_INT(until)};
	pwb__rows *r;
	const char *types = agg_cells[what];
	size_t n = strlen(types);
	if (!(st = q(s, &o, S_AGG_FIRST + (int)what, p, 3, &r, diag))) {
		bool has = false;
		while (!(st = s->be->next(r, &has, diag)) && has) {
			pwb_store_cell cells[4] = {{0}};
			for (size_t c = 0; c < n; c++) {
				pwb_store_cell *x = &cells[c];
				x->null = s->be->col_null(r, (int)c);
				if (x->null)
					continue;
				if (types[c] == 'i')
					x->i = s->be->col_int(r, (int)c);
				else if (types[c] == 't')
					x->s = s->be->col_text(r, (int)c);
				else
					x->b = s->be->col_blob(r, (int)c,
							       &x->len);
			}
			if (fn(user, cells, n))
				break;
		}
		s->be->done(r);
	}
	release(s, sl);
	return st;
}

pwb_status pwb_store_decision_owner(pwb_store *s, const char *org,
				    const char *id, char **user, pwb_diag *diag)
{
	pwb_store_decision_row d;
	pwb_status st = pwb_store_decision_get(s, org, id, &d, diag);
	*user = d.user;
	d.user = NULL;
	pwb_store_decision_row_release(&d);
	return st;
}

/* ---- group commit ----
 *
 * Decisions and feedback events given outside a transaction share
 * commits. Each caller queues its event; when no leader is writing, the
 * caller becomes the leader: it takes what has queued (up to GROUP_MAX
 * events, in order), writes them in one transaction, commits once, and
 * wakes every caller of the batch, who then return. Nothing returns
 * PWB_OK before its commit. The audit rows of the batch's decisions are
 * written after every event's own rows, in queue order, so that the batch
 * takes the audit head last, as an erase does (no lock cycle between them
 * on PostgreSQL). An event that fails on its own (PWB_EINVAL: a
 * constraint, an erased user, an event id of another user) fails alone:
 * the batch is rolled back and written again without it. Any other
 * failure is the store's (I/O, a lost connection, a read-only or full
 * database, no memory) and fails every event of the batch with its
 * message; a failed batch leaves nothing written.
 */
#define GROUP_MAX 256

static void diag_copy(pwb_diag *to, const pwb_diag *from)
{
	for (size_t i = 0; to && i < from->n; i++)
		pwb_diag_add(to, from->entries[i].file, from->entries[i].line,
			     from->entries[i].col, "%s",
			     from->entries[i].message);
}

/*
 * Writes the events of batch that are still in it (!out) in one
 * transaction and commits. Returns the number committed (0 when the
 * batch failed). Sets each event's st (and, on failure, its diag).
 */
static size_t group_run(pwb_store *s, struct gc_event *batch, bool *out)
{
	for (;;) {
		size_t live = 0, i = 0;
		bool any_dec = false;
		for (struct gc_event *e = batch; e; e = e->next, i++)
			if (!out[i]) {
				live++;
				any_dec |= e->d != NULL;
			}
		if (!live)
			return 0;
		pwb_diag bd;
		pwb_diag_init(&bd);
		size_t bad = SIZE_MAX;
		op o;
		pwb_status st = op_enter(s, &o, true, &bd);
		i = 0;
		for (struct gc_event *e = batch; !st && e; e = e->next, i++) {
			if (out[i])
				continue;
			st = e->d ? dec_write(s, &o, e->org, e->d, &bd)
				  : learn_write(s, &o, e, &bd);
			if (st)
				bad = i;
		}
		int64_t last = 0;
		char prev[65];
		if (!st && any_dec)
			st = audit_head(s, &o, &last, prev, &bd);
		i = 0;
		for (struct gc_event *e = batch; !st && any_dec && e;
		     e = e->next, i++) {
			if (out[i] || !e->d)
				continue;
			pwb__audit_row row =
			    dec_audit_row(e->org, e->d, e->audit_detail);
			if ((st = audit_insert(s, &o, &row, &last, prev, &bd)))
				bad = i;
		}
		if (!st && any_dec)
			st = audit_head_set(s, &o, last, prev, &bd);
		st = op_leave(s, &o, st, &bd);
		i = 0;
		for (struct gc_event *e = batch; e; e = e->next, i++) {
			if (out[i])
				continue;
			if (st && st == PWB_EINVAL && i != bad &&
			    bad != SIZE_MAX)
				continue; /* written again without bad */
			e->st = st;
			if (st) {
				e->id = 0;
				diag_copy(e->diag, &bd);
			}
			out[i] = st != PWB_OK;
		}
		pwb_diag_release(&bd);
		if (!st)
			return live;
		if (st != PWB_EINVAL || bad == SIZE_MAX)
			return 0;
	}
}

/* Wakes the first queued caller to lead, when one may. Under g_mu. */
static void group_next(pwb_store *s)
{
	if (s->g_head && !s->g_leader && !s->g_hold)
		pthread_cond_signal(&s->g_head->cv);
}

static pwb_status group_commit(pwb_store *s, struct gc_event *e)
{
	pthread_cond_init(&e->cv, NULL);
	pthread_mutex_lock(&s->g_mu);
	e->next = NULL;
	if (s->g_tail)
		s->g_tail->next = e;
	else
		s->g_head = e;
	s->g_tail = e;
	s->g_queued++;
	while (!e->done) {
		if (s->g_leader || s->g_hold || !s->g_head) {
			pthread_cond_wait(&e->cv, &s->g_mu);
			continue;
		}
		struct gc_event *batch = s->g_head, *t = batch;
		size_t n = 1;
		while (t->next && n < GROUP_MAX) {
			t = t->next;
			n++;
		}
		s->g_head = t->next;
		if (!s->g_head)
			s->g_tail = NULL;
		t->next = NULL;
		s->g_queued -= n;
		s->g_leader = true;
		pthread_mutex_unlock(&s->g_mu);
		bool out[GROUP_MAX] = {false};
		size_t committed = group_run(s, batch, out);
		pthread_mutex_lock(&s->g_mu);
		/* The callers wake once the lock is free: nothing of the
		 * batch is touched after that. */
		for (t = batch; t; t = t->next) {
			t->done = true;
			pthread_cond_signal(&t->cv);
		}
		if (committed) {
			s->g_commits++;
			s->g_events += committed;
		}
		s->g_leader = false;
		group_next(s);
	}
	pthread_mutex_unlock(&s->g_mu);
	pthread_cond_destroy(&e->cv);
	return e->st;
}

void pwb__store_group_hold(pwb_store *s, bool hold)
{
	pthread_mutex_lock(&s->g_mu);
	s->g_hold = hold;
	group_next(s);
	pthread_mutex_unlock(&s->g_mu);
}

void pwb__store_group_stats(pwb_store *s, pwb__group_stats *out)
{
	pthread_mutex_lock(&s->g_mu);
	out->queued = s->g_queued;
	out->commits = s->g_commits;
	out->events = s->g_events;
	pthread_mutex_unlock(&s->g_mu);
}

/* ---- API keys ---- */

static const char *const role_names[] = {"service", "user", "auditor", "admin"};

const char *pwb_key_role_str(pwb_key_role r)
{
	return (unsigned)r < PWB_ARRAY_LEN(role_names) ? role_names[r] : "";
}

bool pwb_key_role_parse(const char *v, pwb_key_role *out)
{
	for (size_t i = 0; v && i < PWB_ARRAY_LEN(role_names); i++)
		if (!strcmp(v, role_names[i])) {
			*out = (pwb_key_role)i;
			return true;
		}
	return false;
}

#define KEY_PREFIX "pwb_"
#define KEY_ID_BYTES 8
#define KEY_SECRET_BYTES 32
/* pwb_ + 16 hex + _ + 64 hex */
#define KEY_LEN (4 + 2 * KEY_ID_BYTES + 1 + 2 * KEY_SECRET_BYTES)

static void key_hash(const pwb_store *s, const char *key, char out[65])
{
	unsigned char h[32];
	crypto_generichash(h, sizeof(h), (const unsigned char *)key,
			   strlen(key), s->secret, sizeof(s->secret));
	sodium_bin2hex(out, 65, h, sizeof(h));
}

pwb_status pwb_store_key_create(pwb_store *s, const char *org,
				pwb_key_role role, const char *user,
				int64_t now, char **key, char **key_id,
				pwb_diag *diag)
{
	*key = NULL;
	*key_id = NULL;
	pwb_status st = check_id("org", org, diag);
	if (st)
		return st;
	if ((unsigned)role >= PWB_ARRAY_LEN(role_names)) {
		pwb_diag_add(diag, NULL, 0, 0, "unknown key role");
		return PWB_EINVAL;
	}
	if (role == PWB_KEY_USER && !user) {
		pwb_diag_add(diag, NULL, 0, 0,
			     "a key with the user role needs the user it "
			     "acts for");
		return PWB_EINVAL;
	}
	if (role != PWB_KEY_USER && user) {
		pwb_diag_add(diag, NULL, 0, 0,
			     "only keys with the user role name a user (a %s "
			     "key acts for its org)",
			     role_names[role]);
		return PWB_EINVAL;
	}
	if (user && (st = check_id("user", user, diag)))
		return st;
	unsigned char idb[KEY_ID_BYTES], sec[KEY_SECRET_BYTES];
	char idhex[2 * KEY_ID_BYTES + 1], sechex[2 * KEY_SECRET_BYTES + 1];
	randombytes_buf(idb, sizeof(idb));
	randombytes_buf(sec, sizeof(sec));
	sodium_bin2hex(idhex, sizeof(idhex), idb, sizeof(idb));
	sodium_bin2hex(sechex, sizeof(sechex), sec, sizeof(sec));
	sodium_memzero(sec, sizeof(sec));
	char *k = pwb__malloc(KEY_LEN + 1);
	char *kid = pwb__strdup(idhex);
	if (!k || !kid) {
		free(k);
		free(kid);
		return PWB_ENOMEM;
	}
	snprintf(k, KEY_LEN + 1, KEY_PREFIX "%s_%s", idhex, sechex);
	sodium_memzero(sechex, sizeof(sechex));
	char hash[65];
	key_hash(s, k, hash);
	op o;
	if ((st = op_enter(s, &o, true, diag)))
		goto out;
	if (user)
		st = ensure_user(s, &o, org, user, now, diag);
	else {
		pwb__val po[] = {V_TEXT(org), V_INT(now)};
		st = q_exec(s, &o, S_ORG_ENSURE, po, 2, NULL, diag);
	}
	pwb__val p[] = {V_TEXT(kid),  V_TEXT(org), V_TEXT(role_names[role]),
			V_TEXT(user), V_STR(hash), V_INT(now)};
	if (!st)
		st = q_exec(s, &o, S_KEY_INSERT, p, 6, NULL, diag);
	char detail[128];
	snprintf(detail, sizeof(detail), "{\"role\":\"%s\"}", role_names[role]);
	pwb__audit_row row = {.ts = now,
			      .org = org,
			      .kind = "key.created",
			      .subject = kid,
			      .user = NULL, /* see "decision" */
			      .detail = detail};
	if (!st)
		st = audit_append(s, &o, &row, NULL, diag);
	st = op_leave(s, &o, st, diag);
out:
	if (st) {
		sodium_memzero(k, KEY_LEN);
		free(k);
		free(kid);
		return st;
	}
	*key = k;
	*key_id = kid;
	return PWB_OK;
}

pwb_status pwb_store_key_revoke(pwb_store *s, const char *org,
				const char *key_id, int64_t now, pwb_diag *diag)
{
	pwb_status st = check_id("org", org, diag);
	if (!st)
		st = check_id("key", key_id, diag);
	if (st)
		return st;
	op o;
	if ((st = op_enter(s, &o, true, diag)))
		return st;
	pwb__val p[] = {V_TEXT(org), V_TEXT(key_id), V_INT(now)};
	pwb__rows *r;
	char *user = NULL, role[16] = "";
	bool has = false;
	if (!(st = q(s, &o, S_KEY_REVOKE, p, 3, &r, diag))) {
		st = s->be->next(r, &has, diag);
		if (!st && has) {
			const char *v = s->be->col_text(r, 0);
			snprintf(role, sizeof(role), "%s", v ? v : "");
			st = dup_col(s, r, 1, &user);
		}
		s->be->done(r);
	}
	if (!st && !has) {
		pwb_diag_add(diag, NULL, 0, 0,
			     "org '%s' has no active key '%s' (revoked "
			     "already, or never made)",
			     org, key_id);
		st = PWB_ENOTFOUND;
	}
	char detail[128];
	snprintf(detail, sizeof(detail), "{\"role\":\"%s\"}", role);
	pwb__audit_row row = {.ts = now,
			      .org = org,
			      .kind = "key.revoked",
			      .subject = key_id,
			      .user = NULL, /* see "decision" */
			      .detail = detail};
	if (!st)
		st = audit_append(s, &o, &row, NULL, diag);
	free(user);
	return op_leave(s, &o, st, diag);
}

void pwb_store_key_release(pwb_store_key *k)
{
	if (!k)
		return;
	free(k->id);
	free(k->org);
	free(k->user);
	memset(k, 0, sizeof(*k));
}

pwb_status pwb_store_key_lookup(pwb_store *s, const char *key,
				pwb_store_key *out, pwb_diag *diag)
{
	memset(out, 0, sizeof(*out));
	/* Anything not shaped like our keys is unknown without a query. */
	if (!key || strnlen(key, KEY_LEN + 1) != KEY_LEN ||
	    strncmp(key, KEY_PREFIX, 4) != 0) {
		pwb_diag_add(diag, NULL, 0, 0, "unknown API key");
		return PWB_ENOTFOUND;
	}
	char hash[65];
	key_hash(s, key, hash);
	slot *sl;
	pwb_status st = acquire(s, &sl, diag);
	if (st)
		return st;
	op o = {sl, false};
	pwb__val p[] = {V_STR(hash)};
	pwb__rows *r;
	bool has = false;
	if (!(st = q(s, &o, S_KEY_LOOKUP, p, 1, &r, diag))) {
		st = s->be->next(r, &has, diag);
		if (!st && has) {
			st = dup_col(s, r, 0, &out->id);
			if (!st)
				st = dup_col(s, r, 1, &out->org);
			if (!st)
				st = dup_col(s, r, 3, &out->user);
			const char *role = s->be->col_text(r, 2);
			if (!st && !pwb_key_role_parse(role, &out->role)) {
				pwb_diag_add(diag, NULL, 0, 0,
					     "API key '%s' has an unknown "
					     "role '%s'",
					     out->id, role ? role : "");
				st = PWB_EINVAL;
			}
		}
		s->be->done(r);
	}
	release(s, sl);
	if (!st && !has) {
		pwb_diag_add(diag, NULL, 0, 0, "unknown or revoked API key");
		st = PWB_ENOTFOUND;
	}
	if (st)
		pwb_store_key_release(out);
	return st;
}

/* ---- data rights: export and erase ---- */

/* A stored JSON text as a value (a string if it does not parse). */
static json_t *json_col(pwb_store *s, pwb__rows *r, int col)
{
	const char *v = s->be->col_text(r, col);
	if (!v)
		return json_null();
	json_t *j = json_loads(v, 0, NULL);
	return j ? j : json_string(v);
}

static json_t *text_col(pwb_store *s, pwb__rows *r, int col)
{
	const char *v = s->be->col_text(r, col);
	return v ? json_string(v) : json_null();
}

static json_t *blob_col(pwb_store *s, pwb__rows *r, int col)
{
	size_t len = 0;
	const void *b = s->be->col_blob(r, col, &len);
	if (!b)
		return json_null();
	size_t cap =
	    sodium_base64_encoded_len(len, sodium_base64_VARIANT_ORIGINAL);
	char *out = pwb__malloc(cap);
	if (!out)
		return NULL;
	sodium_bin2base64(out, cap, b, len, sodium_base64_VARIANT_ORIGINAL);
	json_t *j = json_string(out);
	free(out);
	return j;
}

/* Runs statement id for (org, user) and appends one object per row made by
 * fn to arr. */
typedef json_t *(*row_fn)(pwb_store *s, pwb__rows *r);

static pwb_status rows_to(pwb_store *s, op *o, int id, const char *org,
			  const char *user, row_fn fn, json_t *arr,
			  pwb_diag *diag)
{
	pwb__val p[] = {V_TEXT(org), V_TEXT(user)};
	pwb__rows *r;
	pwb_status st = q(s, o, id, p, 2, &r, diag);
	if (st)
		return st;
	bool has;
	while (!(st = s->be->next(r, &has, diag)) && has) {
		json_t *j = fn(s, r);
		if (!j || json_array_append_new(arr, j)) {
			st = PWB_ENOMEM;
			break;
		}
	}
	s->be->done(r);
	return st;
}

static json_t *fb_row(pwb_store *s, pwb__rows *r)
{
	const pwb__backend *b = s->be;
	json_t *scale = b->col_null(r, 10)
			    ? json_null()
			    : json_pack("[f, f]", b->col_double(r, 10),
					b->col_double(r, 11));
	json_t *rater = json_pack("{s:o, s:o}", "role", text_col(s, r, 13),
				  "attributes", json_col(s, r, 14));
	return json_pack(
	    "{s:I, s:o, s:I, s:I, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, "
	    "s:o, s:o}",
	    "id", (json_int_t)b->col_int(r, 0), "event_id", text_col(s, r, 1),
	    "ts", (json_int_t)b->col_int(r, 2), "received",
	    (json_int_t)b->col_int(r, 3), "kind", text_col(s, r, 4), "prompt",
	    text_col(s, r, 5), "chosen", text_col(s, r, 6), "rejected",
	    text_col(s, r, 7), "response", text_col(s, r, 8), "rating",
	    b->col_null(r, 9) ? json_null() : json_real(b->col_double(r, 9)),
	    "scale", scale, "features", blob_col(s, r, 12), "rater", rater,
	    "decision_id", text_col(s, r, 15));
}

static json_t *dec_row(pwb_store *s, pwb__rows *r)
{
	return json_pack("{s:o, s:I, s:o, s:o, s:o, s:o, s:o}", "id",
			 text_col(s, r, 0), "ts",
			 (json_int_t)s->be->col_int(r, 1), "policy_hash",
			 text_col(s, r, 2), "verdict", text_col(s, r, 3),
			 "blocked_tier", text_col(s, r, 4), "blocked_category",
			 text_col(s, r, 5), "detail", json_col(s, r, 6));
}

static json_t *key_row(pwb_store *s, pwb__rows *r)
{
	return json_pack("{s:o, s:o, s:I, s:o}", "id", text_col(s, r, 0),
			 "role", text_col(s, r, 1), "created",
			 (json_int_t)s->be->col_int(r, 2), "revoked",
			 s->be->col_null(r, 3)
			     ? json_null()
			     : json_integer(s->be->col_int(r, 3)));
}

static json_t *audit_row(pwb_store *s, pwb__rows *r)
{
	return json_pack("{s:I, s:I, s:o, s:o, s:o}", "seq",
			 (json_int_t)s->be->col_int(r, 0), "ts",
			 (json_int_t)s->be->col_int(r, 1), "kind",
			 text_col(s, r, 2), "subject", text_col(s, r, 3),
			 "detail", json_col(s, r, 4));
}

pwb_status pwb_store_user_export(pwb_store *s, const char *org,
				 const char *user, char **json, pwb_diag *diag)
{
	*json = NULL;
	pwb_status st = check_id("org", org, diag);
	if (!st)
		st = check_id("user", user, diag);
	if (st)
		return st;
	size_t mark = diag ? diag->n : 0;
	op o;
	if ((st = op_enter(s, &o, false, diag)))
		return st;
	json_t *doc =
	    json_pack("{s:s, s:s, s:b, s:n, s:[], s:[], s:[], s:[]}", "org",
		      org, "user", user, "erased", 0, "profile", "feedback",
		      "decisions", "api_keys", "audit");
	if (!doc) {
		st = PWB_ENOMEM;
		goto out;
	}
	pwb__val p[] = {V_TEXT(org), V_TEXT(user)};
	pwb__rows *r;
	bool has = false, erased = false;
	if ((st = q(s, &o, S_USER_GET, p, 2, &r, diag)))
		goto out;
	st = s->be->next(r, &has, diag);
	if (!st && has) {
		erased = s->be->col_int(r, 4) != 0;
		json_t *prof =
		    json_pack("{s:o, s:o, s:o, s:I, s:I, s:I}", "settings",
			      json_col(s, r, 0), "consent", json_col(s, r, 1),
			      "model", blob_col(s, r, 2), "model_version",
			      (json_int_t)s->be->col_int(r, 3), "created",
			      (json_int_t)s->be->col_int(r, 5), "updated",
			      (json_int_t)s->be->col_int(r, 6));
		if (!prof)
			st = PWB_ENOMEM;
		else if (!erased)
			json_object_set_new(doc, "profile", prof);
		else
			json_decref(prof);
		json_object_set_new(doc, "erased", json_boolean(erased));
	}
	s->be->done(r);
	if (!st && !has) {
		pwb_diag_add(diag, NULL, 0, 0,
			     "org '%s' has no user '%s' in the store", org,
			     user);
		st = PWB_ENOTFOUND;
	}
	if (st)
		goto out;
	if (erased) {
		st = rows_to(s, &o, S_EXP_TOMBSTONE, org, user, audit_row,
			     json_object_get(doc, "audit"), diag);
	} else {
		st = rows_to(s, &o, S_EXP_FB, org, user, fb_row,
			     json_object_get(doc, "feedback"), diag);
		if (!st)
			st = rows_to(s, &o, S_EXP_DEC, org, user, dec_row,
				     json_object_get(doc, "decisions"), diag);
		if (!st)
			st = rows_to(s, &o, S_EXP_KEYS, org, user, key_row,
				     json_object_get(doc, "api_keys"), diag);
		if (!st)
			st = rows_to(s, &o, S_EXP_AUDIT, org, user, audit_row,
				     json_object_get(doc, "audit"), diag);
	}
	if (!st &&
	    !(*json = json_dumps(doc, JSON_INDENT(2) | JSON_PRESERVE_ORDER)))
		st = PWB_ENOMEM;
out:
	json_decref(doc);
	st = read_leave(s, &o, st, mark, diag);
	if (st) {
		free(*json);
		*json = NULL;
	}
	return st;
}

pwb_status pwb_store_user_erase(pwb_store *s, const char *org, const char *user,
				int64_t now, int64_t *seq, pwb_diag *diag)
{
	if (seq)
		*seq = 0;
	pwb_status st = check_id("org", org, diag);
	if (!st)
		st = check_id("user", user, diag);
	if (st)
		return st;
	op o;
	if ((st = op_enter(s, &o, true, diag)))
		return st;
	pwb__val p[] = {V_TEXT(org), V_TEXT(user), V_INT(now)};
	int64_t erased = 0, n_fb = 0, n_dec = 0, n_keys = 0;
	bool found = false;
	st = q_int(s, &o, S_USER_STATE, p, 2, &erased, &found, diag);
	if (!st && !found) {
		pwb_diag_add(diag, NULL, 0, 0,
			     "org '%s' has no user '%s' in the store", org,
			     user);
		st = PWB_ENOTFOUND;
	}
	if (st || erased) /* erasing twice changes nothing */
		goto out;
	/* The user row first: its lock waits for writers holding it (FOR
	 * SHARE) to commit, so the deletes below see their rows, and
	 * writers after it see the user erased. */
	st = q_exec(s, &o, S_ERASE_USER, p, 3, NULL, diag);
	if (!st)
		st = q_exec(s, &o, S_ERASE_FB, p, 2, &n_fb, diag);
	if (!st)
		st = q_exec(s, &o, S_ERASE_DEC, p, 2, &n_dec, diag);
	if (!st)
		st = q_exec(s, &o, S_ERASE_KEYS, p, 2, &n_keys, diag);
	char detail[160];
	snprintf(detail, sizeof(detail),
		 "{\"feedback\":%lld,\"decisions\":%lld,\"api_keys\":%lld}",
		 (long long)n_fb, (long long)n_dec, (long long)n_keys);
	pwb__audit_row row = {.ts = now,
			      .org = org,
			      .kind = "user.erased",
			      .subject = user,
			      .user = user,
			      .detail = detail};
	if (!st)
		st = audit_append(s, &o, &row, seq, diag);
	if (!st)
		st = notify(s, &o, PWB_CHANGE_ERASED, org, user, 0, diag);
out:
	return op_leave(s, &o, st, diag);
}

pwb_status pwb_store_orgs(pwb_store *s, char ***ids, size_t *n, pwb_diag *diag)
{
	*ids = NULL;
	*n = 0;
	size_t mark = diag ? diag->n : 0;
	op o;
	pwb_status st = op_enter(s, &o, false, diag);
	if (st)
		return st;
	pwb__rows *r;
	char **arr = NULL;
	size_t len = 0, cap = 0;
	if (!(st = q(s, &o, S_ORGS, NULL, 0, &r, diag))) {
		bool has;
		while (!(st = s->be->next(r, &has, diag)) && has) {
			if ((st = pwb__grow((void **)&arr, &cap, len + 1,
					    sizeof(*arr))))
				break;
			if ((st = dup_col(s, r, 0, &arr[len])))
				break;
			len++;
		}
		s->be->done(r);
	}
	if ((st = read_leave(s, &o, st, mark, diag))) {
		pwb_store_orgs_free(arr, len);
		return st;
	}
	*ids = arr;
	*n = len;
	return PWB_OK;
}

void pwb_store_orgs_free(char **ids, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(ids[i]);
	free(ids);
}

pwb_status pwb_store_org_check(pwb_store *s, const char *org, pwb_diag *diag)
{
	pwb_status st = check_id("org", org, diag);
	char **ids = NULL;
	size_t n = 0;
	if (!st)
		st = pwb_store_orgs(s, &ids, &n, diag);
	bool found = false;
	for (size_t i = 0; !st && i < n && !found; i++)
		found = !strcmp(ids[i], org);
	if (!st && !found) {
		/* A close one is suggested; else a few are named. */
		pwb__hint hint =
		    pwb__hint_for(org, (const char *const *)ids, n);
		char some[512] = "";
		size_t k = 0;
		for (size_t i = 0; !hint.text[0] && i < n && i < 8; i++)
			k += (size_t)snprintf(some + k, sizeof(some) - k,
					      "%s'%.40s'",
					      i ? ", " : "; it holds ", ids[i]);
		if (n > 8 && !hint.text[0])
			snprintf(some + k, sizeof(some) - k, " and %zu more",
				 n - 8);
		pwb_diag_add(diag, s->name, 0, 0,
			     "the store holds no org '%s'%s%s", org, hint.text,
			     n ? some : " (it holds none yet)");
		st = PWB_ENOTFOUND;
	}
	pwb_store_orgs_free(ids, n);
	return st;
}

/* ---- the policy folder ---- */

#define META_POLICIES "policies"

pwb_status pwb_store_policies_get(pwb_store *s, char **dir, pwb_diag *diag)
{
	*dir = NULL;
	size_t mark = diag ? diag->n : 0;
	op o;
	pwb_status st = op_enter(s, &o, false, diag);
	if (st)
		return st;
	st = meta_get(s, &o, META_POLICIES, dir, diag);
	if ((st = read_leave(s, &o, st, mark, diag))) {
		free(*dir);
		*dir = NULL;
	}
	return st;
}

pwb_status pwb_store_policies_set(pwb_store *s, const char *dir, pwb_diag *diag)
{
	pwb_status st = check_text("policy folder", dir, diag);
	if (st)
		return st;
	op o;
	if ((st = op_enter(s, &o, true, diag)))
		return st;
	st = meta_set(s, &o, META_POLICIES, dir, diag);
	return op_leave(s, &o, st, diag);
}

/* ---- listening for change notices ---- */

struct pwb_store_listener {
	pwb_store *s;
	pwb__conn *c; /* NULL on SQLite */
	char *payload;
	json_t *doc;
	bool lost; /* re-make the connection at the next wait */
};

static pwb_status listen_connect(pwb_store_listener *l, pwb_diag *diag)
{
	pwb_store *s = l->s;
	pwb_status st = s->be->connect(&l->c, s->target, &s->params, diag);
	if (!st && (st = s->be->listen(l->c, CHANNEL, diag))) {
		s->be->disconnect(l->c);
		l->c = NULL;
	}
	return st;
}

pwb_status pwb_store_listen(pwb_store_listener **out, pwb_store *s,
			    pwb_diag *diag)
{
	*out = NULL;
	pwb_store_listener *l = pwb__calloc(1, sizeof(*l));
	if (!l)
		return PWB_ENOMEM;
	l->s = s;
	if (s->be->listen) {
		pwb_status st = listen_connect(l, diag);
		if (st) {
			free(l);
			return st;
		}
	}
	*out = l;
	return PWB_OK;
}

void pwb_store_listener_free(pwb_store_listener *l)
{
	if (!l)
		return;
	if (l->c)
		l->s->be->disconnect(l->c);
	free(l->payload);
	json_decref(l->doc);
	free(l);
}

pwb_status pwb_store_listener_wait(pwb_store_listener *l, int timeout_ms,
				   pwb_store_change *out, bool *got,
				   pwb_diag *diag)
{
	*got = false;
	memset(out, 0, sizeof(*out));
	free(l->payload);
	l->payload = NULL;
	json_decref(l->doc);
	l->doc = NULL;
	const pwb__backend *be = l->s->be;
	if (!be->listen) {
		/* Nothing ever comes; wait like a server loop expects. */
		struct timespec ts = {timeout_ms / 1000,
				      (timeout_ms % 1000) * 1000000L};
		if (timeout_ms > 0)
			nanosleep(&ts, NULL);
		return PWB_OK;
	}
	if (l->lost) {
		if (l->c)
			be->disconnect(l->c);
		l->c = NULL;
		pwb_status st = listen_connect(l, diag);
		if (st)
			return st;
		l->lost = false;
		out->kind = PWB_CHANGE_RESYNC;
		*got = true;
		return PWB_OK;
	}
	pwb_status st = be->wait_notice(l->c, timeout_ms, &l->payload, diag);
	if (st == PWB_EIO) {
		l->lost = true; /* the next wait reconnects and says RESYNC */
		return st;
	}
	if (st || !l->payload)
		return st;
	l->doc = json_loads(l->payload, 0, NULL);
	const char *kind = json_string_value(json_object_get(l->doc, "kind"));
	for (size_t i = 0; kind && i < PWB_ARRAY_LEN(change_names); i++)
		if (!strcmp(kind, change_names[i])) {
			out->kind = (pwb_store_change_kind)i;
			out->org =
			    json_string_value(json_object_get(l->doc, "org"));
			out->user =
			    json_string_value(json_object_get(l->doc, "user"));
			out->version = json_integer_value(
			    json_object_get(l->doc, "version"));
			*got = out->org != NULL;
		}
	/* A notice from something else on the channel is not ours. */
	return PWB_OK;
}

pwb_status pwb_store_notify_policy(pwb_store *s, const char *org,
				   pwb_diag *diag)
{
	pwb_status st = check_id("org", org, diag);
	if (st || s->be->dialect != PWB__POSTGRES)
		return st;
	op o;
	if ((st = op_enter(s, &o, true, diag)))
		return st;
	st = notify(s, &o, PWB_CHANGE_POLICY, org, NULL, 0, diag);
	return op_leave(s, &o, st, diag);
}
