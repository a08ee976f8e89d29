/*
 * postgres.c - the PostgreSQL backend through libpq: one PGconn per pool
 * slot, each statement prepared once per connection (PQprepare), results
 * in text format except byte strings, which go in binary and come back as
 * hex.
 *
 * libpq prints server notices to stderr by default; the library never
 * prints, so notices go to the log callback instead.
 */
#include "store/store_int.h"
#include "util/util.h"

#include <libpq-fe.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define N_SLOTS 64

struct pwb__rows {
	PGresult *res;
	int row; /* the current row; -1 before the first */
	int n;
	unsigned char *blob; /* the last decoded bytea */
};

struct pwb__conn {
	PGconn *pg;
	char where[256]; /* host:port/db for messages (never the password) */
	bool read_only;	 /* PWB_STORE_READ_ONLY: read-only sessions */
	bool prepared[N_SLOTS];
	pwb__rows rows[N_SLOTS];
	pwb_log_fn log;
	void *log_user;
};

static void on_notice(void *arg, const char *message)
{
	pwb__conn *c = arg;
	if (c->log)
		c->log(c->log_user, PWB_LOG_INFO, message);
}

/* The first line of a libpq message, without "ERROR:  " or "FATAL:  ". */
static void first_line(const char *msg, char *buf, size_t size)
{
	if (!msg)
		msg = "";
	for (;;) {
		if (!strncmp(msg, "ERROR:  ", 8) ||
		    !strncmp(msg, "FATAL:  ", 8))
			msg += 8;
		else if (!strncmp(msg, "connection to server ", 21) &&
			 strstr(msg, " failed: "))
			msg = strstr(msg, " failed: ") + 9;
		else
			break;
	}
	size_t n = strcspn(msg, "\n");
	snprintf(buf, size, "%.*s", (int)n, msg);
}

static void pg_disconnect(pwb__conn *c)
{
	if (!c)
		return;
	for (int i = 0; i < N_SLOTS; i++) {
		PQclear(c->rows[i].res);
		free(c->rows[i].blob);
	}
	PQfinish(c->pg);
	free(c);
}

/*
 * host:port/db of a libpq URL (never the user or password) into buf; false
 * with *err (freed with PQfreemem(), NULL when out of memory) when the URL
 * does not parse.
 */
static bool where_of(const char *target, char *buf, size_t size, char **err)
{
	*err = NULL;
	PQconninfoOption *opts = PQconninfoParse(target, err);
	if (!opts) {
		snprintf(buf, size, "PostgreSQL");
		return false;
	}
	const char *host = NULL, *port = NULL, *db = NULL;
	for (PQconninfoOption *o = opts; o->keyword; o++) {
		if (!strcmp(o->keyword, "host") && o->val)
			host = o->val;
		else if (!strcmp(o->keyword, "port") && o->val)
			port = o->val;
		else if (!strcmp(o->keyword, "dbname") && o->val)
			db = o->val;
	}
	snprintf(buf, size, "%s:%s/%s", host ? host : "localhost",
		 port ? port : "5432", db ? db : "(default)");
	PQconninfoFree(opts);
	return true;
}

static void pg_describe(const char *target, char *buf, size_t size)
{
	char *err;
	where_of(target, buf, size, &err);
	PQfreemem(err);
}

/*
 * The session's settings, at connect and again after a reconnect: bytea
 * in hex, whatever the role or database says (the escape format would read
 * back as no model at all); read-only sessions for PWB_STORE_READ_ONLY.
 */
static void session_setup(pwb__conn *c)
{
	PGresult *r =
	    PQexec(c->pg, c->read_only ? "SET client_min_messages = warning; "
					 "SET bytea_output = hex; "
					 "SET default_transaction_read_only "
					 "= on"
				       : "SET client_min_messages = warning; "
					 "SET bytea_output = hex");
	PQclear(r);
}

static pwb_status pg_connect(pwb__conn **out, const char *target,
			     const pwb_store_params *p, pwb_diag *diag)
{
	*out = NULL;
	char *err = NULL, where[256];
	if (!where_of(target, where, sizeof(where), &err)) {
		char line[256];
		first_line(err ? err : "out of memory", line, sizeof(line));
		pwb_diag_add(diag, NULL, 0, 0, "malformed PostgreSQL URL: %s",
			     line);
		PQfreemem(err);
		return err ? PWB_EINVAL : PWB_ENOMEM;
	}
	pwb__conn *c = pwb__calloc(1, sizeof(*c));
	if (!c)
		return PWB_ENOMEM;
	snprintf(c->where, sizeof(c->where), "%s", where);
	c->read_only = p->mode == PWB_STORE_READ_ONLY;
	c->log = p->log;
	c->log_user = p->log_user;

	char timeout[16];
	snprintf(timeout, sizeof(timeout), "%d",
		 p->connect_timeout_s > 0 ? p->connect_timeout_s : 10);
	/* Defaults first: what the URL says overrides them. */
	const char *const keys[] = {"connect_timeout", "application_name",
				    "dbname", NULL};
	const char *const vals[] = {timeout, "pwb", target, NULL};
	c->pg = PQconnectdbParams(keys, vals, 1);
	if (!c->pg) {
		free(c);
		return PWB_ENOMEM;
	}
	if (PQstatus(c->pg) != CONNECTION_OK) {
		char line[512];
		first_line(PQerrorMessage(c->pg), line, sizeof(line));
		pwb_diag_add(diag, NULL, 0, 0,
			     "cannot connect to PostgreSQL at %s: %s", c->where,
			     line);
		pg_disconnect(c);
		return PWB_EIO;
	}
	PQsetNoticeProcessor(c->pg, on_notice, c);
	session_setup(c);
	if (!c->read_only) {
		/* A standby, or a role or database set read-only, accepts
		 * no writes: say so now, not at the first write. */
		PGresult *r = PQexec(
		    c->pg, "SELECT current_setting('transaction_read_only')");
		bool ro = PQresultStatus(r) == PGRES_TUPLES_OK &&
			  PQntuples(r) == 1 &&
			  !strcmp(PQgetvalue(r, 0, 0), "on");
		PQclear(r);
		if (ro) {
			pwb_diag_add(diag, NULL, 0, 0,
				     "PostgreSQL at %s accepts no writes "
				     "(transaction_read_only is on: a "
				     "standby, or a role or database set "
				     "read-only); nothing was written",
				     c->where);
			pg_disconnect(c);
			return PWB_EINVAL;
		}
	}
	*out = c;
	return PWB_OK;
}

static bool pg_alive(pwb__conn *c)
{
	if (PQstatus(c->pg) == CONNECTION_OK)
		return true;
	PQreset(c->pg);
	memset(c->prepared, 0, sizeof(c->prepared));
	if (PQstatus(c->pg) != CONNECTION_OK)
		return false;
	session_setup(c);
	return true;
}

/* Maps a failed result to a status and one message. */
static pwb_status fail(pwb__conn *c, PGresult *res, pwb_diag *diag)
{
	const char *state =
	    res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
	char line[512];
	first_line(res ? PQresultErrorMessage(res) : PQerrorMessage(c->pg),
		   line, sizeof(line));
	if (!line[0])
		first_line(PQerrorMessage(c->pg), line, sizeof(line));
	if (PQstatus(c->pg) != CONNECTION_OK) {
		pwb_diag_add(diag, NULL, 0, 0,
			     "lost the connection to PostgreSQL at %s: %s",
			     c->where, line);
		return PWB_EIO;
	}
	if (state && !strncmp(state, "53", 2)) {
		pwb_diag_add(diag, NULL, 0, 0,
			     "PostgreSQL at %s is out of resources (%s): %s; "
			     "nothing of this write was kept",
			     c->where, state, line);
		return PWB_EIO;
	}
	if (state && (!strcmp(state, "25006") || !strcmp(state, "42501"))) {
		/* read_only_sql_transaction, insufficient_privilege */
		pwb_diag_add(diag, NULL, 0, 0,
			     "PostgreSQL at %s refuses this write (%s): %s; "
			     "nothing of it was kept",
			     c->where, state, line);
		return PWB_EIO;
	}
	if (state && !strncmp(state, "23", 2)) {
		pwb_diag_add(diag, NULL, 0, 0, "refused by the database: %s",
			     line);
		return PWB_EINVAL;
	}
	pwb_diag_add(diag, NULL, 0, 0, "PostgreSQL error at %s: %s", c->where,
		     line);
	return PWB_EIO;
}

static pwb_status pg_exec(pwb__conn *c, const char *sql, pwb_diag *diag)
{
	PGresult *res = PQexec(c->pg, sql);
	ExecStatusType st = PQresultStatus(res);
	pwb_status rc = PWB_OK;
	if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
		rc = fail(c, res, diag);
	} else if (!strcmp(sql, "COMMIT") &&
		   strcmp(PQcmdStatus(res), "COMMIT") != 0) {
		/* A transaction that failed answers COMMIT with ROLLBACK:
		 * nothing of it was kept, and the caller must not think so. */
		pwb_diag_add(diag, NULL, 0, 0,
			     "the transaction had failed and was rolled back "
			     "at COMMIT; nothing of it was written");
		rc = PWB_EIO;
	}
	PQclear(res);
	return rc;
}

static Oid type_of(const pwb__val *v)
{
	switch (v->t) {
	case PWB__V_INT:
		return 20; /* int8 */
	case PWB__V_DOUBLE:
		return 701; /* float8 */
	case PWB__V_TEXT:
		return 25; /* text */
	case PWB__V_BLOB:
		return 17; /* bytea */
	default:
		return 0; /* let the server infer it */
	}
}

static pwb_status pg_query(pwb__conn *c, int id, const char *sql,
			   const pwb__val *params, int n, pwb__rows **rows,
			   pwb_diag *diag)
{
	*rows = NULL;
	if (PWB_NEVER(id < 0 || id >= N_SLOTS || n > PWB__MAX_PARAMS))
		return PWB_EINVAL;
	char name[16];
	snprintf(name, sizeof(name), "pwb%d", id);
	if (!c->prepared[id]) {
		Oid types[PWB__MAX_PARAMS];
		for (int i = 0; i < n; i++)
			types[i] = type_of(&params[i]);
		PGresult *res = PQprepare(c->pg, name, sql, n, types);
		if (PQresultStatus(res) != PGRES_COMMAND_OK) {
			pwb_status rc = fail(c, res, diag);
			PQclear(res);
			return rc;
		}
		PQclear(res);
		c->prepared[id] = true;
	}
	char nums[PWB__MAX_PARAMS][32];
	const char *values[PWB__MAX_PARAMS];
	int lengths[PWB__MAX_PARAMS], formats[PWB__MAX_PARAMS];
	for (int i = 0; i < n; i++) {
		const pwb__val *v = &params[i];
		lengths[i] = 0;
		formats[i] = 0;
		switch (v->t) {
		case PWB__V_NULL:
			values[i] = NULL;
			break;
		case PWB__V_INT:
			snprintf(nums[i], sizeof(nums[i]), "%lld",
				 (long long)v->i);
			values[i] = nums[i];
			break;
		case PWB__V_DOUBLE:
			pwb__fmt_double(nums[i], sizeof(nums[i]), v->d);
			values[i] = nums[i];
			break;
		case PWB__V_TEXT:
			values[i] = v->s;
			break;
		case PWB__V_BLOB:
		default:
			values[i] = v->len ? v->b : "";
			lengths[i] = (int)v->len;
			formats[i] = 1;
			break;
		}
	}
	PGresult *res =
	    PQexecPrepared(c->pg, name, n, values, lengths, formats, 0);
	ExecStatusType st = PQresultStatus(res);
	if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
		pwb_status rc = fail(c, res, diag);
		PQclear(res);
		return rc;
	}
	pwb__rows *r = &c->rows[id];
	PQclear(r->res);
	r->res = res;
	r->row = -1;
	r->n = PQntuples(res);
	*rows = r;
	return PWB_OK;
}

static pwb_status pg_next(pwb__rows *r, bool *has_row, pwb_diag *diag)
{
	if (r->row + 1 < r->n) {
		r->row++;
		*has_row = true;
	} else {
		r->row = r->n;
		*has_row = false;
	}
	return PWB_OK;
}

static bool pg_col_null(pwb__rows *r, int col)
{
	return PQgetisnull(r->res, r->row, col);
}

static int64_t pg_col_int(pwb__rows *r, int col)
{
	const char *v = PQgetvalue(r->res, r->row, col);
	if (v[0] == 't')
		return 1; /* a boolean */
	return strtoll(v, NULL, 10);
}

static double pg_col_double(pwb__rows *r, int col)
{
	return strtod(PQgetvalue(r->res, r->row, col), NULL);
}

static const char *pg_col_text(pwb__rows *r, int col)
{
	if (PQgetisnull(r->res, r->row, col))
		return NULL;
	return PQgetvalue(r->res, r->row, col);
}

static int hexval(char ch)
{
	if (ch >= '0' && ch <= '9')
		return ch - '0';
	if (ch >= 'a' && ch <= 'f')
		return ch - 'a' + 10;
	if (ch >= 'A' && ch <= 'F')
		return ch - 'A' + 10;
	return -1;
}

static const void *pg_col_blob(pwb__rows *r, int col, size_t *len)
{
	*len = 0;
	if (PQgetisnull(r->res, r->row, col))
		return NULL;
	const char *v = PQgetvalue(r->res, r->row, col);
	size_t n = (size_t)PQgetlength(r->res, r->row, col);
	/* bytea_output = hex (the default since PostgreSQL 9.0): \x... */
	if (n < 2 || v[0] != '\\' || v[1] != 'x')
		return NULL;
	free(r->blob);
	r->blob = pwb__malloc((n - 2) / 2 + 1);
	if (!r->blob)
		return NULL;
	size_t k = 0;
	for (size_t i = 2; i + 1 < n; i += 2) {
		int hi = hexval(v[i]), lo = hexval(v[i + 1]);
		if (hi < 0 || lo < 0)
			return NULL;
		r->blob[k++] = (unsigned char)(hi << 4 | lo);
	}
	*len = k;
	return r->blob;
}

static int64_t pg_changes(pwb__rows *r)
{
	const char *t = PQcmdTuples(r->res);
	return t[0] ? strtoll(t, NULL, 10) : 0;
}

static void pg_done(pwb__rows *r)
{
	if (!r)
		return;
	PQclear(r->res);
	r->res = NULL;
	free(r->blob);
	r->blob = NULL;
}

static pwb_status pg_listen(pwb__conn *c, const char *channel, pwb_diag *diag)
{
	char *id = PQescapeIdentifier(c->pg, channel, strlen(channel));
	if (!id)
		return PWB_ENOMEM;
	char sql[256];
	snprintf(sql, sizeof(sql), "LISTEN %s", id);
	PQfreemem(id);
	return pg_exec(c, sql, diag);
}

static pwb_status pg_wait_notice(pwb__conn *c, int timeout_ms, char **payload,
				 pwb_diag *diag)
{
	*payload = NULL;
	for (int round = 0; round < 2; round++) {
		if (!PQconsumeInput(c->pg)) {
			char line[512];
			first_line(PQerrorMessage(c->pg), line, sizeof(line));
			pwb_diag_add(diag, NULL, 0, 0,
				     "lost the connection to PostgreSQL at "
				     "%s: %s",
				     c->where, line);
			return PWB_EIO;
		}
		PGnotify *n = PQnotifies(c->pg);
		if (n) {
			*payload = pwb__strdup(n->extra ? n->extra : "");
			PQfreemem(n);
			return *payload ? PWB_OK : PWB_ENOMEM;
		}
		if (round == 1)
			break;
		struct pollfd pfd = {PQsocket(c->pg), POLLIN, 0};
		if (pfd.fd < 0) {
			pwb_diag_add(diag, NULL, 0, 0,
				     "lost the connection to PostgreSQL at %s",
				     c->where);
			return PWB_EIO;
		}
		if (poll(&pfd, 1, timeout_ms < 0 ? 0 : timeout_ms) <= 0)
			return PWB_OK; /* nothing within the time */
	}
	return PWB_OK;
}

const pwb__backend pwb__postgres_backend = {
    .name = "postgres",
    .dialect = PWB__POSTGRES,
    .connect = pg_connect,
    .describe = pg_describe,
    .disconnect = pg_disconnect,
    .alive = pg_alive,
    .exec = pg_exec,
    .query = pg_query,
    .next = pg_next,
    .col_null = pg_col_null,
    .col_int = pg_col_int,
    .col_double = pg_col_double,
    .col_text = pg_col_text,
    .col_blob = pg_col_blob,
    .changes = pg_changes,
    .done = pg_done,
    .listen = pg_listen,
    .wait_notice = pg_wait_notice,
};
