/*
 * store_int.h - the storage module's insides: the backend interface that
 * sqlite.c and postgres.c implement, and the statements they run.
 *
 * Every statement is written once, in the SQL both dialects agree on, with
 * PostgreSQL's $1-style parameters (the SQLite backend rewrites them to
 * ?1). A backend prepares each statement once per connection, on first use.
 */
#ifndef PWB_STORE_INT_H
#define PWB_STORE_INT_H

#include "pwb/store.h"

#include <stdint.h>

typedef enum pwb__vtype {
	PWB__V_NULL,
	PWB__V_INT,
	PWB__V_DOUBLE,
	PWB__V_TEXT,
	PWB__V_BLOB
} pwb__vtype;

/* A statement parameter; strings and blobs are borrowed for the call. */
typedef struct pwb__val {
	pwb__vtype t;
	int64_t i;
	double d;
	const char *s;
	const void *b;
	size_t len;
} pwb__val;

#define PWB__MAX_PARAMS 20

typedef enum pwb__dialect { PWB__SQLITE, PWB__POSTGRES } pwb__dialect;

typedef struct pwb__conn pwb__conn;
typedef struct pwb__rows pwb__rows;

/*
 * A backend. Every function that fails returns a status and puts one
 * message in diag: PWB_EIO for what may pass (a lost connection, a locked
 * or full database), PWB_EINVAL for what will not (a constraint).
 */
typedef struct pwb__backend {
	const char *name;
	pwb__dialect dialect;
	/*
	 * Opens one connection, as p->mode allows: without PWB_STORE_CREATE
	 * it creates nothing, and says PWB_ENOTFOUND where it can tell that
	 * no store is there.
	 */
	pwb_status (*connect)(pwb__conn **out, const char *target,
			      const pwb_store_params *p, pwb_diag *diag);
	/* The target's name for messages, without credentials. */
	void (*describe)(const char *target, char *buf, size_t size);
	void (*disconnect)(pwb__conn *c);
	/* Reconnects a connection the server dropped; false if it cannot. */
	bool (*alive)(pwb__conn *c);
	/* Runs a script of statements without parameters. */
	pwb_status (*exec)(pwb__conn *c, const char *sql, pwb_diag *diag);
	/*
	 * Runs statement `id` (prepared on first use from sql). On success
	 * *rows is positioned before the first result row; the caller walks
	 * it with next() and must call done().
	 */
	pwb_status (*query)(pwb__conn *c, int id, const char *sql,
			    const pwb__val *params, int n, pwb__rows **rows,
			    pwb_diag *diag);
	pwb_status (*next)(pwb__rows *r, bool *has_row, pwb_diag *diag);
	bool (*col_null)(pwb__rows *r, int col);
	int64_t (*col_int)(pwb__rows *r, int col);
	double (*col_double)(pwb__rows *r, int col);
	/* NULL for SQL NULL; valid until the next call on r. */
	const char *(*col_text)(pwb__rows *r, int col);
	const void *(*col_blob)(pwb__rows *r, int col, size_t *len);
	/* Rows changed by an INSERT, UPDATE or DELETE. */
	int64_t (*changes)(pwb__rows *r);
	void (*done)(pwb__rows *r);
	/*
	 * After a read: PWB_EIO (with a message) when the database may have
	 * changed under it, so that what it read may mix two states; NULL
	 * where reads always see one snapshot. (SQLite reads a store at rest
	 * without locks; see sqlite.c.)
	 */
	pwb_status (*read_held)(pwb__conn *c, pwb_diag *diag);
	/*
	 * Change notices (NULL where the backend has none): LISTEN on a
	 * channel, then wait up to timeout_ms for one payload (*payload
	 * NULL when none came; freed with free()).
	 */
	pwb_status (*listen)(pwb__conn *c, const char *channel, pwb_diag *diag);
	pwb_status (*wait_notice)(pwb__conn *c, int timeout_ms, char **payload,
				  pwb_diag *diag);
} pwb__backend;

extern const pwb__backend pwb__sqlite_backend;
extern const pwb__backend pwb__postgres_backend;

/*
 * Runs raw SQL on one connection of the store, outside any statement
 * cache: for tests (tampering with the audit table) and the benchmark's
 * bulk population. Not for the library's own use.
 */
pwb_status pwb__store_exec(pwb_store *s, const char *sql, pwb_diag *diag);

/*
 * Group commit, for tests and the benchmark. hold stops leaders from
 * starting (events queue meanwhile), so that a test can fill one batch;
 * stats counts what is queued now, and the commits made and the events
 * they stored since the open.
 */
typedef struct pwb__group_stats {
	size_t queued;
	uint64_t commits, events;
} pwb__group_stats;
void pwb__store_group_hold(pwb_store *s, bool hold);
void pwb__store_group_stats(pwb_store *s, pwb__group_stats *out);

/* The hash of one audit row (hex, 64 characters + NUL). */
typedef struct pwb__audit_row {
	int64_t seq, ts;
	const char *org, *kind, *subject, *user, *detail;
} pwb__audit_row;
void pwb__audit_hash(const char *prev_hex, const pwb__audit_row *r,
		     char out[65]);

#endif
