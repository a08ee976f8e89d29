/*
 * sqlite.c - the SQLite backend: one database file in WAL mode, one
 * connection per pool slot, statements prepared once per connection.
 *
 * Each connection caches up to 32 MiB of pages (the default 2 MiB makes a
 * table of a million users go to the kernel for most reads).
 *
 * Durability: synchronous=FULL, so that a commit that returned has reached
 * the disk (an acknowledged feedback event survives a crash of the process
 * and of the machine). Writers take the lock at BEGIN IMMEDIATE and wait up
 * to the busy timeout for it.
 *
 * Read-only opens (PWB_STORE_READ_ONLY) use SQLITE_OPEN_READONLY. A reader
 * of a WAL database needs its -wal and -shm files, and SQLite makes them
 * when missing but, a reader being unable to checkpoint, leaves them
 * behind. SQLite removes both when the last connection closes, so when
 * neither -wal nor -journal is beside the file no process has it open:
 * such a store at rest is opened `immutable=1` (no locks, no -wal, no
 * -shm: nothing is created, and a read-only folder or medium works), and
 * read_held() checks after each read that the file was not written
 * meanwhile (then the read may mix two states, and the caller is told to
 * try again). A store some process has open is read through its WAL with
 * the usual locks.
 */
#include "store/store_int.h"
#include "util/util.h"

#include <errno.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define N_SLOTS 64 /* statement ids are below this */

struct pwb__rows {
	sqlite3_stmt *st;
	sqlite3 *db;
	bool pending; /* the first row was stepped by query() */
	bool at_row;
	int64_t changes;
};

struct pwb__conn {
	sqlite3 *db;
	char *path;
	int busy_ms;
	bool immutable;	     /* read at rest, without locks (see above) */
	struct stat at_open; /* the file then, when immutable */
	sqlite3_stmt *stmts[N_SLOTS];
	pwb__rows rows[N_SLOTS];
};

static pwb_status fail(pwb__conn *c, int rc, pwb_diag *diag)
{
	const char *msg = c->db ? sqlite3_errmsg(c->db) : sqlite3_errstr(rc);
	switch (rc & 0xff) {
	case SQLITE_FULL:
		pwb_diag_add(diag, c->path, 0, 0,
			     "the database is full (no space left on the disk, "
			     "or its page limit reached); nothing of this "
			     "write was kept");
		return PWB_EIO;
	case SQLITE_BUSY:
	case SQLITE_LOCKED:
		pwb_diag_add(diag, c->path, 0, 0,
			     "the database stayed locked by another writer "
			     "for more than %d ms; try again",
			     c->busy_ms);
		return PWB_EIO;
	case SQLITE_CONSTRAINT:
		pwb_diag_add(diag, c->path, 0, 0, "refused by the database: %s",
			     msg);
		return PWB_EINVAL;
	case SQLITE_NOTADB:
		pwb_diag_add(diag, c->path, 0, 0, "not a SQLite database");
		return PWB_EINVAL;
	case SQLITE_READONLY:
		pwb_diag_add(diag, c->path, 0, 0,
			     "the database cannot be written (%s): the file, "
			     "or its folder, is read-only for this user; "
			     "nothing of this write was kept",
			     msg);
		return PWB_EIO;
	case SQLITE_CANTOPEN:
		pwb_diag_add(diag, c->path, 0, 0,
			     "cannot open the database or its -wal/-shm "
			     "files beside it: %s",
			     msg);
		return PWB_EIO;
	case SQLITE_NOMEM:
		return PWB_ENOMEM;
	default:
		pwb_diag_add(diag, c->path, 0, 0, "database error: %s", msg);
		return PWB_EIO;
	}
}

static void sq_disconnect(pwb__conn *c)
{
	if (!c)
		return;
	for (int i = 0; i < N_SLOTS; i++)
		sqlite3_finalize(c->stmts[i]);
	sqlite3_close_v2(c->db);
	free(c->path);
	free(c);
}

/* Whether PATH + suffix exists. */
static bool beside(const char *path, const char *suffix)
{
	char name[4096];
	struct stat st;
	int n = snprintf(name, sizeof(name), "%s%s", path, suffix);
	return n < 0 || (size_t)n >= sizeof(name) || stat(name, &st) == 0 ||
	       errno != ENOENT;
}

/* A file: URI for path with immutable=1 (NULL when out of memory). */
static char *immutable_uri(const char *path)
{
	size_t n = strlen(path);
	char *uri = pwb__malloc(3 * n + 32);
	if (!uri)
		return NULL;
	/* An absolute path after an empty authority; a relative one as is. */
	size_t k = (size_t)snprintf(uri, 16, "%s",
				    path[0] == '/' ? "file://" : "file:");
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)path[i];
		if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
		    (ch >= '0' && ch <= '9') || strchr("/._-~", ch))
			uri[k++] = (char)ch;
		else
			k += (size_t)snprintf(uri + k, 4, "%%%02X", ch);
	}
	snprintf(uri + k, 16, "?immutable=1");
	return uri;
}

/*
 * Switches a new database to WAL (the mode then stays in the file).
 * journal_mode answers with a row; read it to see WAL was taken. While
 * another process creates the same new database, the switch can be
 * refused for a moment (the mode stays "delete"): try again until the
 * busy timeout.
 */
static pwb_status switch_to_wal(pwb__conn *c, pwb_diag *diag)
{
	for (int waited = 0;; waited += 20) {
		sqlite3_stmt *st = NULL;
		int rc = sqlite3_prepare_v2(c->db, "PRAGMA journal_mode=WAL",
					    -1, &st, NULL);
		if (rc == SQLITE_OK)
			rc = sqlite3_step(st);
		bool wal =
		    rc == SQLITE_ROW &&
		    !strcmp((const char *)sqlite3_column_text(st, 0), "wal");
		char mode[32] = "";
		if (rc == SQLITE_ROW)
			snprintf(mode, sizeof(mode), "%s",
				 (const char *)sqlite3_column_text(st, 0));
		sqlite3_finalize(st);
		if (wal)
			return PWB_OK;
		if (rc == SQLITE_ROW && waited >= c->busy_ms) {
			pwb_diag_add(diag, c->path, 0, 0,
				     "the database cannot use write-ahead "
				     "logging (journal mode stays '%s')",
				     mode);
			return PWB_EIO;
		}
		if ((rc != SQLITE_ROW && (rc & 0xff) != SQLITE_BUSY) ||
		    waited >= c->busy_ms)
			return fail(c, rc, diag);
		sqlite3_sleep(20);
	}
}

/*
 * What is at path, before SQLite touches it: a store is a regular file,
 * and without PWB_STORE_CREATE it must exist and not be empty. Sets *fs.
 */
static pwb_status check_path(const char *path, pwb_store_mode mode,
			     struct stat *fs, pwb_diag *diag)
{
	bool exists = stat(path, fs) == 0;
	int e = errno;
	if (!exists && e == ENOENT && mode == PWB_STORE_CREATE)
		return PWB_OK; /* SQLite reports a missing folder */
	if (!exists && e == ENOENT) {
		pwb_diag_add(diag, path, 0, 0,
			     "cannot open the database: no such file (%s "
			     "creates no store; check the path)",
			     mode == PWB_STORE_READ_ONLY
				 ? "a command that only reads"
				 : "this command");
		return PWB_ENOTFOUND;
	}
	if (!exists) {
		pwb_diag_add(diag, path, 0, 0, "cannot open the database: %s",
			     strerror(e));
		return PWB_EIO;
	}
	if (S_ISDIR(fs->st_mode)) {
		pwb_diag_add(diag, path, 0, 0,
			     "is a folder, not a database file");
		return PWB_EINVAL;
	}
	if (!S_ISREG(fs->st_mode)) {
		pwb_diag_add(diag, path, 0, 0,
			     "is not a regular file (a pwb store is a SQLite "
			     "database file); nothing was written to it");
		return PWB_EINVAL;
	}
	if (fs->st_size == 0 && mode != PWB_STORE_CREATE) {
		pwb_diag_add(diag, path, 0, 0,
			     "no pwb store here: the file is empty (check the "
			     "path); nothing was written to it");
		return PWB_ENOTFOUND;
	}
	return PWB_OK;
}

static pwb_status sq_connect(pwb__conn **out, const char *target,
			     const pwb_store_params *p, pwb_diag *diag)
{
	*out = NULL;
	struct stat fs;
	pwb_status st = check_path(target, p->mode, &fs, diag);
	if (st)
		return st;
	pwb__conn *c = pwb__calloc(1, sizeof(*c));
	if (!c || !(c->path = pwb__strdup(target))) {
		free(c);
		return PWB_ENOMEM;
	}
	c->busy_ms = p->busy_timeout_ms;
	int flags = SQLITE_OPEN_NOMUTEX;
	char *uri = NULL;
	if (p->mode == PWB_STORE_READ_ONLY) {
		flags |= SQLITE_OPEN_READONLY;
		/* At rest: no process has it open (see the top). */
		c->immutable =
		    !beside(target, "-wal") && !beside(target, "-journal");
		if (c->immutable && !(uri = immutable_uri(target))) {
			sq_disconnect(c);
			return PWB_ENOMEM;
		}
		if (c->immutable) {
			flags |= SQLITE_OPEN_URI;
			c->at_open = fs;
		}
	} else {
		flags |= SQLITE_OPEN_READWRITE;
		if (p->mode == PWB_STORE_CREATE)
			flags |= SQLITE_OPEN_CREATE;
	}
	int rc = sqlite3_open_v2(uri ? uri : target, &c->db, flags, NULL);
	free(uri);
	if (rc != SQLITE_OK) {
		pwb_diag_add(diag, target, 0, 0, "cannot open the database: %s",
			     c->db ? sqlite3_errmsg(c->db)
				   : sqlite3_errstr(rc));
		sq_disconnect(c);
		return PWB_EIO;
	}
	sqlite3_extended_result_codes(c->db, 1);
	sqlite3_busy_timeout(c->db, p->busy_timeout_ms);
	if (p->mode != PWB_STORE_READ_ONLY &&
	    sqlite3_db_readonly(c->db, "main") == 1) {
		/* SQLite falls back to reading a file it may not write. */
		pwb_diag_add(diag, target, 0, 0,
			     "the database file is read-only for this user "
			     "(check its permissions): pwb cannot write to "
			     "it; nothing was written");
		sq_disconnect(c);
		return PWB_EINVAL;
	}
	/* Only a store being made is switched to WAL: the other modes
	 * write nothing before the store is known to be there (and a pwb
	 * store is in WAL mode already). */
	if (p->mode == PWB_STORE_CREATE && (st = switch_to_wal(c, diag))) {
		sq_disconnect(c);
		return st;
	}
	rc = sqlite3_exec(c->db,
			  "PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON; "
			  "PRAGMA cache_size=-32768;",
			  NULL, NULL, NULL);
	if (rc != SQLITE_OK) {
		pwb_status err = fail(c, rc, diag);
		sq_disconnect(c);
		return err;
	}
	*out = c;
	return PWB_OK;
}

static bool sq_alive(pwb__conn *c)
{
	return c->db != NULL;
}

static void sq_describe(const char *target, char *buf, size_t size)
{
	snprintf(buf, size, "%s", target);
}

static pwb_status sq_read_held(pwb__conn *c, pwb_diag *diag)
{
	if (!c->immutable)
		return PWB_OK; /* read under SQLite's own locks */
	struct stat now;
	const struct stat *was = &c->at_open;
	if (stat(c->path, &now) == 0 && now.st_dev == was->st_dev &&
	    now.st_ino == was->st_ino && now.st_size == was->st_size &&
	    now.st_mtim.tv_sec == was->st_mtim.tv_sec &&
	    now.st_mtim.tv_nsec == was->st_mtim.tv_nsec)
		return PWB_OK;
	pwb_diag_add(diag, c->path, 0, 0,
		     "the database was written by another process while pwb "
		     "read it, so what was read may mix two states; try "
		     "again");
	return PWB_EIO;
}

static pwb_status sq_exec(pwb__conn *c, const char *sql, pwb_diag *diag)
{
	int rc = sqlite3_exec(c->db, sql, NULL, NULL, NULL);
	return rc == SQLITE_OK ? PWB_OK : fail(c, rc, diag);
}

/* $1 → ?1: the shared SQL uses PostgreSQL's parameters. */
static char *translate(const char *sql)
{
	size_t n = strlen(sql);
	char *out = pwb__malloc(n + 1);
	if (!out)
		return NULL;
	for (size_t i = 0; i <= n; i++)
		out[i] = sql[i] == '$' ? '?' : sql[i];
	return out;
}

static pwb_status sq_query(pwb__conn *c, int id, const char *sql,
			   const pwb__val *params, int n, pwb__rows **rows,
			   pwb_diag *diag)
{
	*rows = NULL;
	if (PWB_NEVER(id < 0 || id >= N_SLOTS))
		return PWB_EINVAL;
	sqlite3_stmt *st = c->stmts[id];
	int rc;
	if (!st) {
		char *text = translate(sql);
		if (!text)
			return PWB_ENOMEM;
		rc = sqlite3_prepare_v3(c->db, text, -1,
					SQLITE_PREPARE_PERSISTENT, &st, NULL);
		free(text);
		if (rc != SQLITE_OK)
			return fail(c, rc, diag);
		c->stmts[id] = st;
	}
	for (int i = 0; i < n; i++) {
		const pwb__val *v = &params[i];
		switch (v->t) {
		case PWB__V_NULL:
			rc = sqlite3_bind_null(st, i + 1);
			break;
		case PWB__V_INT:
			rc = sqlite3_bind_int64(st, i + 1, v->i);
			break;
		case PWB__V_DOUBLE:
			rc = sqlite3_bind_double(st, i + 1, v->d);
			break;
		case PWB__V_TEXT:
			rc = sqlite3_bind_text(st, i + 1, v->s, -1,
					       SQLITE_STATIC);
			break;
		case PWB__V_BLOB:
		default:
			rc = sqlite3_bind_blob64(st, i + 1, v->b, v->len,
						 SQLITE_STATIC);
			break;
		}
		if (rc != SQLITE_OK) {
			sqlite3_clear_bindings(st);
			return fail(c, rc, diag);
		}
	}
	rc = sqlite3_step(st);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
		pwb_status err = fail(c, rc, diag);
		sqlite3_reset(st);
		sqlite3_clear_bindings(st);
		return err;
	}
	pwb__rows *r = &c->rows[id];
	r->st = st;
	r->db = c->db;
	r->pending = rc == SQLITE_ROW;
	r->at_row = false;
	r->changes = sqlite3_changes64(c->db);
	*rows = r;
	return PWB_OK;
}

static pwb_status sq_next(pwb__rows *r, bool *has_row, pwb_diag *diag)
{
	if (r->pending) {
		r->pending = false;
		r->at_row = true;
		*has_row = true;
		return PWB_OK;
	}
	if (!r->at_row) {
		*has_row = false;
		return PWB_OK;
	}
	int rc = sqlite3_step(r->st);
	if (rc == SQLITE_ROW) {
		*has_row = true;
		return PWB_OK;
	}
	r->at_row = false;
	*has_row = false;
	if (rc == SQLITE_DONE)
		return PWB_OK;
	pwb_diag_add(diag, sqlite3_db_filename(r->db, "main"), 0, 0,
		     "database error: %s", sqlite3_errmsg(r->db));
	return PWB_EIO;
}

static bool sq_col_null(pwb__rows *r, int col)
{
	return sqlite3_column_type(r->st, col) == SQLITE_NULL;
}

static int64_t sq_col_int(pwb__rows *r, int col)
{
	return sqlite3_column_int64(r->st, col);
}

static double sq_col_double(pwb__rows *r, int col)
{
	return sqlite3_column_double(r->st, col);
}

static const char *sq_col_text(pwb__rows *r, int col)
{
	return (const char *)sqlite3_column_text(r->st, col);
}

static const void *sq_col_blob(pwb__rows *r, int col, size_t *len)
{
	const void *b = sqlite3_column_blob(r->st, col);
	*len = (size_t)sqlite3_column_bytes(r->st, col);
	return b;
}

static int64_t sq_changes(pwb__rows *r)
{
	return r->changes;
}

static void sq_done(pwb__rows *r)
{
	if (!r)
		return;
	sqlite3_reset(r->st);
	sqlite3_clear_bindings(r->st);
	r->pending = r->at_row = false;
}

const pwb__backend pwb__sqlite_backend = {
    .name = "sqlite",
    .dialect = PWB__SQLITE,
    .connect = sq_connect,
    .describe = sq_describe,
    .disconnect = sq_disconnect,
    .alive = sq_alive,
    .exec = sq_exec,
    .query = sq_query,
    .next = sq_next,
    .col_null = sq_col_null,
    .col_int = sq_col_int,
    .col_double = sq_col_double,
    .col_text = sq_col_text,
    .col_blob = sq_col_blob,
    .changes = sq_changes,
    .done = sq_done,
    .read_held = sq_read_held,
};
