/*
 * test_store.c - the storage suite, run once against SQLite and once
 * against PostgreSQL: migrations, users, feedback (texts or features
 * only), transactions, the audit chain and its tamper detection (rows
 * edited, deleted, reordered with plain SQL), export and erase, API keys,
 * retention, a writer killed with SIGKILL, four concurrent writer
 * processes, and bad input (URLs, an unreachable server, a full database,
 * a schema from a newer pwb).
 *
 * PWB_TEST_POSTGRES names a PostgreSQL server (a libpq URL, e.g. from
 * scripts/start-postgres.sh); without it the PostgreSQL half is skipped
 * with a message. Each test works in a fresh SQLite file or a fresh
 * PostgreSQL schema.
 */
/* cmocka needs these first, in this order. */
/* clang-format off */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
/* clang-format on */

#include <libpq-fe.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "pwb/store.h"
#include "store/store_int.h"
#include "util/util.h"

static char dir[256];
static const char *pg_base; /* NULL: the SQLite run */
static int counter;
static char url[1024];

/* ---- fresh databases ---- */

static void pg_admin(const char *sql)
{
	PGconn *c = PQconnectdb(pg_base);
	assert_int_equal(PQstatus(c), CONNECTION_OK);
	PGresult *r = PQexec(c, "SET client_min_messages = warning");
	PQclear(r);
	r = PQexec(c, sql);
	if (PQresultStatus(r) != PGRES_COMMAND_OK &&
	    PQresultStatus(r) != PGRES_TUPLES_OK)
		fail_msg("%s: %s", sql, PQerrorMessage(c));
	PQclear(r);
	PQfinish(c);
}

/* A URL to a database nobody has used. */
static const char *fresh(void)
{
	counter++;
	if (!pg_base) {
		snprintf(url, sizeof(url), "sqlite:%s/t%d.db", dir, counter);
		return url;
	}
	char schema[64], sql[256];
	snprintf(schema, sizeof(schema), "pwb_t%d_%d", (int)getpid(), counter);
	snprintf(sql, sizeof(sql),
		 "DROP SCHEMA IF EXISTS %s CASCADE; CREATE SCHEMA %s", schema,
		 schema);
	pg_admin(sql);
	snprintf(url, sizeof(url), "%s%coptions=-csearch_path%%3D%s", pg_base,
		 strchr(pg_base, '?') ? '&' : '?', schema);
	return url;
}

static pwb_store *open_ok(const char *u)
{
	pwb_store *s = NULL;
	pwb_diag d;
	pwb_diag_init(&d);
	pwb_status st = pwb_store_open(&s, u, NULL, &d);
	if (st)
		fail_msg("open %s: %s: %s", u, pwb_status_str(st),
			 d.n ? d.entries[0].message : "");
	pwb_diag_release(&d);
	return s;
}

static void ok(pwb_status st, pwb_diag *d)
{
	if (st)
		fail_msg("%s: %s", pwb_status_str(st),
			 d && d->n ? d->entries[0].message : "");
}

static bool diag_has(const pwb_diag *d, const char *word)
{
	for (size_t i = 0; i < d->n; i++)
		if (strstr(d->entries[i].message, word))
			return true;
	return false;
}

static pwb_store_feedback pair(const char *user, const char *chosen)
{
	return (pwb_store_feedback){.kind = PWB_STORE_FB_PAIR,
				    .user = user,
				    .prompt = "Explain tides.",
				    .chosen = chosen,
				    .rejected = "A long answer."};
}

static int64_t add(pwb_store *s, const char *user, int64_t now)
{
	pwb_store_feedback fb = pair(user, "Short answer.");
	int64_t id = 0;
	pwb_diag d;
	pwb_diag_init(&d);
	ok(pwb_store_feedback_add(s, "acme", &fb, PWB_STORE_TEXTS, now, &id,
				  &d),
	   &d);
	pwb_diag_release(&d);
	return id;
}

static uint64_t count(pwb_store *s, const char *user)
{
	uint64_t n = 0;
	ok(pwb_store_feedback_count(s, "acme", user, &n, NULL), NULL);
	return n;
}

/* ---- migrations and users ---- */

static void test_open_and_reopen(void **state)
{
	const char *u = fresh();
	pwb_store *s = open_ok(u);
	assert_string_equal(pwb_store_backend(s),
			    pg_base ? "postgres" : "sqlite");
	add(s, "u1", 100);
	pwb_store_free(s);
	s = open_ok(u); /* migrations run again and change nothing */
	assert_int_equal(count(s, "u1"), 1);
	pwb_store_free(s);
}

static void test_user_settings_model(void **state)
{
	pwb_store *s = open_ok(fresh());
	pwb_diag d;
	pwb_diag_init(&d);
	pwb_store_user u;
	assert_int_equal(pwb_store_user_get(s, "acme", "u1", &u, &d),
			 PWB_ENOTFOUND);
	ok(pwb_store_user_set_settings(
	       s, "acme", "u1", "{\"dimensions\": {\"humour\": 0.5}}", 10, &d),
	   &d);
	ok(pwb_store_user_set_consent(s, "acme", "u1", "{\"learning\": true}",
				      11, &d),
	   &d);
	const unsigned char blob[] = {0, 1, 2, 255, 0, 7};
	int64_t v = 0;
	ok(pwb_store_user_set_model(s, "acme", "u1", blob, sizeof(blob), -1, &v,
				    12, &d),
	   &d);
	assert_int_equal(v, 1);
	ok(pwb_store_user_set_model(s, "acme", "u1", blob, 3, 1, &v, 13, &d),
	   &d);
	assert_int_equal(v, 2);
	/* A writer that read version 1 lost the race. */
	assert_int_equal(
	    pwb_store_user_set_model(s, "acme", "u1", blob, 3, 1, &v, 14, &d),
	    PWB_EINVAL);
	assert_true(diag_has(&d, "changed since version 1"));
	pwb_diag_clear(&d);
	ok(pwb_store_user_get(s, "acme", "u1", &u, &d), &d);
	assert_string_equal(u.settings, "{\"dimensions\": {\"humour\": 0.5}}");
	assert_string_equal(u.consent, "{\"learning\": true}");
	assert_int_equal(u.model_len, 3);
	assert_memory_equal(u.model, blob, 3);
	assert_int_equal(u.model_version, 2);
	assert_false(u.erased);
	assert_int_equal(u.created, 10);
	assert_int_equal(u.updated, 13);
	pwb_store_user_release(&u);
	/* Full model round trip, every byte value. */
	unsigned char big[4096];
	for (size_t i = 0; i < sizeof(big); i++)
		big[i] = (unsigned char)(i * 7);
	ok(pwb_store_user_set_model(s, "acme", "u2", big, sizeof(big), -1, &v,
				    15, &d),
	   &d);
	ok(pwb_store_user_get(s, "acme", "u2", &u, &d), &d);
	assert_int_equal(u.model_len, sizeof(big));
	assert_memory_equal(u.model, big, sizeof(big));
	pwb_store_user_release(&u);
	/* Settings must be a JSON object. */
	assert_int_equal(
	    pwb_store_user_set_settings(s, "acme", "u1", "{bad", 16, &d),
	    PWB_EINVAL);
	assert_true(diag_has(&d, "settings is not a JSON object"));
	pwb_diag_release(&d);
	pwb_store_free(s);
}

/* ---- feedback ---- */

static void test_feedback_texts_and_features_only(void **state)
{
	pwb_store *s = open_ok(fresh());
	pwb_diag d;
	pwb_diag_init(&d);
	pwb_store_feedback fb = pair("u1", "Kept text.");
	fb.event_id = "e1";
	fb.rater_role = "expert";
	fb.rater_attrs = "{\"country\": \"de\"}";
	int64_t id1 = 0, id2 = 0, id3 = 0;
	ok(pwb_store_feedback_add(s, "acme", &fb, PWB_STORE_TEXTS, 100, &id1,
				  &d),
	   &d);
	assert_true(id1 > 0);
	/* The same event id again is skipped, not stored twice. */
	ok(pwb_store_feedback_add(s, "acme", &fb, PWB_STORE_TEXTS, 101, &id2,
				  &d),
	   &d);
	assert_int_equal(id2, 0);
	/* Another user's event with that id is a clash, not a replay. */
	pwb_store_feedback other = pair("u2", "Their text.");
	other.event_id = "e1";
	assert_int_equal(pwb_store_feedback_add(s, "acme", &other,
						PWB_STORE_TEXTS, 101, &id2, &d),
			 PWB_EINVAL);
	assert_non_null(strstr(d.entries[d.n - 1].message,
			       "event id 'e1' is already stored for another "
			       "user"));
	pwb_diag_clear(&d);
	/* The same bad input fails on the unknown-rater path too. */
	other.event_id = NULL;
	other.rater_role = "boss";
	assert_int_equal(pwb_store_feedback_add(s, "acme", &other,
						PWB_STORE_TEXTS, 101, &id2, &d),
			 PWB_EINVAL);
	pwb_diag_clear(&d);
	pwb_store_feedback r = {.kind = PWB_STORE_FB_RATING,
				.user = "u1",
				.prompt = "Secret prompt",
				.response = "Secret response",
				.rating = 4,
				.scale_lo = 1,
				.scale_hi = 5,
				.features = "\x01\x02",
				.features_len = 2};
	ok(pwb_store_feedback_add(s, "acme", &r, PWB_STORE_FEATURES_ONLY, 102,
				  &id3, &d),
	   &d);
	assert_true(id3 > id1);
	assert_int_equal(count(s, "u1"), 2);
	char *json = NULL;
	ok(pwb_store_user_export(s, "acme", "u1", &json, &d), &d);
	assert_non_null(strstr(json, "Kept text."));
	assert_null(strstr(json, "Secret"));
	assert_non_null(strstr(json, "\"features\": \"AQI=\""));
	assert_non_null(strstr(json, "\"role\": \"expert\""));
	assert_non_null(strstr(json, "\"country\": \"de\""));
	free(json);
	/* A rating outside its scale is refused. */
	r.rating = 9;
	assert_int_equal(pwb_store_feedback_add(s, "acme", &r, PWB_STORE_TEXTS,
						103, NULL, &d),
			 PWB_EINVAL);
	assert_true(diag_has(&d, "not within its scale"));
	pwb_diag_release(&d);
	pwb_store_free(s);
}

static void test_transactions(void **state)
{
	pwb_store *s = open_ok(fresh());
	pwb_diag d;
	pwb_diag_init(&d);
	ok(pwb_store_begin(s, &d), &d);
	for (int i = 0; i < 5; i++)
		add(s, "u1", 100 + i);
	pwb_store_rollback(s);
	assert_int_equal(count(s, NULL), 0);
	ok(pwb_store_begin(s, &d), &d);
	assert_int_equal(pwb_store_begin(s, &d), PWB_EINVAL);
	for (int i = 0; i < 5; i++)
		add(s, "u1", 100 + i);
	ok(pwb_store_commit(s, &d), &d);
	assert_int_equal(count(s, NULL), 5);
	assert_int_equal(pwb_store_commit(s, &d), PWB_EINVAL);
	pwb_diag_release(&d);
	pwb_store_free(s);
}

static void test_gc(void **state)
{
	pwb_store *s = open_ok(fresh());
	pwb_diag d;
	pwb_diag_init(&d);
	int64_t day = 86400, now = 1000 * day;
	pwb_store_feedback fb = pair("u1", "x");
	int64_t times[] = {now - 400 * day, now - 200 * day, now - day, now};
	for (size_t i = 0; i < 4; i++) {
		fb.ts = times[i];
		ok(pwb_store_feedback_add(s, "acme", &fb, PWB_STORE_TEXTS, now,
					  NULL, &d),
		   &d);
	}
	/* Another org's old feedback is not this org's retention. */
	fb.ts = now - 900 * day;
	ok(pwb_store_feedback_add(s, "other", &fb, PWB_STORE_TEXTS, now, NULL,
				  &d),
	   &d);
	uint64_t removed = 0;
	ok(pwb_store_gc(s, "acme", now - 365 * day, &removed, &d), &d);
	assert_int_equal(removed, 1);
	ok(pwb_store_gc(s, "acme", now - 30 * day, &removed, &d), &d);
	assert_int_equal(removed, 1);
	assert_int_equal(count(s, NULL), 2);
	uint64_t other = 0;
	ok(pwb_store_feedback_count(s, "other", NULL, &other, &d), &d);
	assert_int_equal(other, 1);
	/* Rows whose arrival is old go too, whatever their event time. */
	fb.ts = 0;
	ok(pwb_store_feedback_add(s, "acme", &fb, PWB_STORE_TEXTS,
				  now - 50 * day, NULL, &d),
	   &d);
	ok(pwb_store_gc(s, "acme", now - 30 * day, &removed, &d), &d);
	assert_int_equal(removed, 1);
	pwb_diag_release(&d);
	pwb_store_free(s);
}

/* ---- the audit chain ---- */

/* A store with five audit rows (keys made and revoked, an erase). */
static pwb_store *chained(void)
{
	pwb_store *s = open_ok(fresh());
	pwb_diag d;
	pwb_diag_init(&d);
	for (int i = 0; i < 5; i++) {
		char detail[64];
		snprintf(detail, sizeof(detail), "{\"n\": %d}", i);
		int64_t seq = 0;
		ok(pwb_store_audit_append(s, "acme", "test.event", "u1", detail,
					  100 + i, &seq, &d),
		   &d);
		assert_int_equal(seq, i + 1);
	}
	pwb_diag_release(&d);
	return s;
}

static void tamper(pwb_store *s, const char *sql)
{
	char buf[1024];
	/* Someone with write access to the tables drops the guard first. */
	snprintf(buf, sizeof(buf), "%s; %s",
		 pg_base ? "DROP TRIGGER audit_no_change ON audit"
			 : "DROP TRIGGER audit_no_update; "
			   "DROP TRIGGER audit_no_delete",
		 sql);
	pwb_diag d;
	pwb_diag_init(&d);
	ok(pwb__store_exec(s, buf, &d), &d);
	pwb_diag_release(&d);
}

static void expect_bad(pwb_store *s, int64_t row, const char *word)
{
	pwb_audit_report rep;
	pwb_diag d;
	pwb_diag_init(&d);
	assert_int_equal(pwb_store_audit_verify(s, &rep, &d), PWB_EINVAL);
	assert_int_equal(rep.bad_seq, row);
	assert_int_equal(d.n, 1);
	char want[64];
	snprintf(want, sizeof(want), "audit row %lld ", (long long)row);
	if (!strstr(d.entries[0].message, want) ||
	    !strstr(d.entries[0].message, word))
		fail_msg("want '%s' and '%s' in: %s", want, word,
			 d.entries[0].message);
	pwb_diag_release(&d);
}

static void test_audit_intact(void **state)
{
	pwb_store *s = chained();
	pwb_audit_report rep;
	pwb_diag d;
	pwb_diag_init(&d);
	ok(pwb_store_audit_verify(s, &rep, &d), &d);
	assert_int_equal(rep.rows, 5);
	assert_int_equal(rep.bad_seq, 0);
	assert_int_equal(strlen(rep.head_hash), 64);
	/* The guard refuses edits through SQL while it stands. */
	assert_int_equal(
	    pwb__store_exec(s, "UPDATE audit SET detail = '{}' WHERE seq = 2",
			    &d),
	    pg_base ? PWB_EIO : PWB_EINVAL);
	assert_true(diag_has(&d, "append-only"));
	pwb_diag_clear(&d);
	assert_int_equal(
	    pwb__store_exec(s, "DELETE FROM audit WHERE seq = 2", &d),
	    pg_base ? PWB_EIO : PWB_EINVAL);
	pwb_diag_release(&d);
	pwb_store_free(s);
}

static void test_audit_edited(void **state)
{
	pwb_store *s = chained();
	tamper(s, "UPDATE audit SET detail = '{\"n\": 9}' WHERE seq = 3");
	expect_bad(s, 3, "does not match its hash");
	/* The head of a broken chain is its last good row's, row 2 (as
	 * chained() wrote it), never the zero hash of an empty chain. */
	char h1[65], h2[65];
	pwb__audit_row r1 = {1,	   100,	 "acme",      "test.event",
			     "u1", NULL, "{\"n\": 0}"};
	pwb__audit_row r2 = {2,	   101,	 "acme",      "test.event",
			     "u1", NULL, "{\"n\": 1}"};
	pwb__audit_hash(
	    "0000000000000000000000000000000000000000000000000000000000000000",
	    &r1, h1);
	pwb__audit_hash(h1, &r2, h2);
	pwb_audit_report rep;
	assert_int_equal(pwb_store_audit_verify(s, &rep, NULL), PWB_EINVAL);
	assert_int_equal(rep.rows, 2);
	assert_string_equal(rep.head_hash, h2);
	pwb_store_free(s);
}

/* What a walk by seq and a hash of each value's text cannot see: rows
 * below the chain, a fractional time, a NUL byte inside a text (SQLite
 * takes any of these in any column). */
static void test_audit_odd_rows(void **state)
{
	pwb_store *s = chained();
	tamper(s, "INSERT INTO audit (seq, ts, org, kind, subject, user_id, "
		  "detail, prev, hash) SELECT 0, ts, org, kind, subject, "
		  "user_id, detail, prev, hash FROM audit WHERE seq = 1");
	expect_bad(s, 0, "outside the chain or of the wrong type");
	pwb_store_free(s);
	if (pg_base)
		return; /* PostgreSQL's column types refuse the rest */
	s = chained();
	tamper(s, "UPDATE audit SET ts = ts + 0.9 WHERE seq = 2");
	expect_bad(s, 2, "of the wrong type");
	pwb_store_free(s);
	s = chained();
	tamper(s, "UPDATE audit SET detail = detail || char(0) || 'more' "
		  "WHERE seq = 3");
	expect_bad(s, 3, "of the wrong type");
	pwb_store_free(s);
}

static void test_audit_edited_and_rehashed(void **state)
{
	/* Row 2 is edited and given a new valid hash: row 3's link breaks. */
	pwb_store *s = chained();
	pwb__audit_row row = {.seq = 2,
			      .ts = 101,
			      .org = "acme",
			      .kind = "test.event",
			      .subject = "u1",
			      .detail = "{\"n\": 42}"};
	char prev[65] = "";
	char sql[512];
	/* The first row's hash is row 2's prev. */
	pwb__audit_row first = {.seq = 1,
				.ts = 100,
				.org = "acme",
				.kind = "test.event",
				.subject = "u1",
				.detail = "{\"n\": 0}"};
	pwb__audit_hash(
	    "0000000000000000000000000000000000000000000000000000000000000000",
	    &first, prev);
	char h[65];
	pwb__audit_hash(prev, &row, h);
	snprintf(sql, sizeof(sql),
		 "UPDATE audit SET detail = '{\"n\": 42}', hash = '%s' "
		 "WHERE seq = 2",
		 h);
	tamper(s, sql);
	expect_bad(s, 3, "does not link to row 2");
	pwb_store_free(s);
}

static void test_audit_deleted_middle(void **state)
{
	pwb_store *s = chained();
	tamper(s, "DELETE FROM audit WHERE seq = 2");
	expect_bad(s, 2, "is missing");
	pwb_store_free(s);
}

static void test_audit_deleted_last(void **state)
{
	pwb_store *s = chained();
	tamper(s, "DELETE FROM audit WHERE seq = 5");
	expect_bad(s, 5, "is missing");
	pwb_store_free(s);
}

static void test_audit_reordered(void **state)
{
	pwb_store *s = chained();
	tamper(s, "UPDATE audit SET seq = -seq WHERE seq IN (2, 3); "
		  "UPDATE audit SET seq = 3 WHERE seq = -2; "
		  "UPDATE audit SET seq = 2 WHERE seq = -3");
	expect_bad(s, 2, "does not link to row 1");
	pwb_store_free(s);
}

/* Verify reads the chain in pages of 5,000 rows: a chain of several. */
static void test_audit_across_pages(void **state)
{
	pwb_store *s = open_ok(fresh());
	pwb_diag d;
	pwb_diag_init(&d);
	ok(pwb_store_begin(s, &d), &d);
	for (int i = 0; i < 10050; i++)
		ok(pwb_store_audit_append(s, "acme", "test.event", NULL, NULL,
					  i, NULL, &d),
		   &d);
	ok(pwb_store_commit(s, &d), &d);
	pwb_audit_report rep;
	ok(pwb_store_audit_verify(s, &rep, &d), &d);
	assert_int_equal(rep.rows, 10050);
	tamper(s, "UPDATE audit SET ts = 1 WHERE seq = 7001");
	expect_bad(s, 7001, "does not match its hash");
	pwb_diag_release(&d);
	pwb_store_free(s);
}

/* ---- data rights ---- */

static void test_export_and_erase(void **state)
{
	pwb_store *s = open_ok(fresh());
	pwb_diag d;
	pwb_diag_init(&d);
	ok(pwb_store_user_set_settings(s, "acme", "u1",
				       "{\"categories\": {\"profanity\": "
				       "\"on\"}}",
				       10, &d),
	   &d);
	ok(pwb_store_user_set_model(s, "acme", "u1", "MODEL", 5, -1, NULL, 11,
				    &d),
	   &d);
	add(s, "u1", 12);
	add(s, "u1", 13);
	add(s, "u2", 13);
	pwb_store_decision dec = {.id = "d1",
				  .user = "u1",
				  .ts = 14,
				  .policy_hash = "abc",
				  .verdict = "block",
				  .blocked_tier = "law",
				  .blocked_category = "hate"};
	ok(pwb_store_decision_add(s, "acme", &dec, &d), &d);
	char *owner = NULL;
	ok(pwb_store_decision_owner(s, "acme", "d1", &owner, &d), &d);
	assert_string_equal(owner, "u1");
	free(owner);
	assert_int_equal(pwb_store_decision_owner(s, "other", "d1", &owner, &d),
			 PWB_ENOTFOUND);
	pwb_diag_clear(&d);
	pwb_store_feedback answer = pair("u1", "Answer to d1.");
	answer.decision_id = "d1";
	ok(pwb_store_feedback_add(s, "acme", &answer, PWB_STORE_TEXTS, 14, NULL,
				  &d),
	   &d);
	char *key = NULL, *kid = NULL;
	ok(pwb_store_key_create(s, "acme", PWB_KEY_USER, "u1", 15, &key, &kid,
				&d),
	   &d);
	char *json = NULL;
	ok(pwb_store_user_export(s, "acme", "u1", &json, &d), &d);
	assert_non_null(strstr(json, "\"profanity\": \"on\""));
	assert_non_null(strstr(json, "\"model\": \"TU9ERUw=\""));
	assert_non_null(strstr(json, "Short answer."));
	assert_non_null(strstr(json, "\"blocked_category\": \"hate\""));
	assert_non_null(strstr(json, "\"decision_id\": \"d1\""));
	assert_non_null(strstr(json, kid));
	/* The audit chain logs the key and the decision by their ids only:
	 * it outlives an erase, so it names a user in their tombstone alone. */
	assert_null(strstr(json, "\"kind\": \"key.created\""));
	assert_null(strstr(json, "\"kind\": \"decision\""));
	assert_null(strstr(json, key + 21)); /* never the key's secret */
	free(json);

	int64_t seq = 0;
	ok(pwb_store_user_erase(s, "acme", "u1", 20, &seq, &d), &d);
	assert_true(seq > 0);
	ok(pwb_store_user_export(s, "acme", "u1", &json, &d), &d);
	assert_non_null(strstr(json, "\"erased\": true"));
	assert_non_null(strstr(json, "\"profile\": null"));
	assert_non_null(strstr(json, "\"feedback\": []"));
	assert_non_null(strstr(json, "\"decisions\": []"));
	assert_non_null(strstr(json, "\"api_keys\": []"));
	assert_non_null(strstr(json, "\"kind\": \"user.erased\""));
	assert_null(strstr(json, "key.created"));
	assert_null(strstr(json, "Short answer."));
	assert_null(strstr(json, "profanity"));
	free(json);
	pwb_store_user u;
	ok(pwb_store_user_get(s, "acme", "u1", &u, &d), &d);
	assert_true(u.erased);
	assert_null(u.settings);
	assert_null(u.model);
	pwb_store_user_release(&u);
	assert_int_equal(count(s, "u1"), 0);
	assert_int_equal(count(s, "u2"), 1);
	/* Their key no longer opens anything. */
	pwb_store_key k;
	assert_int_equal(pwb_store_key_lookup(s, key, &k, &d), PWB_ENOTFOUND);
	pwb_diag_clear(&d);
	/* Late writes do not bring them back. */
	pwb_store_feedback fb = pair("u1", "again");
	assert_int_equal(pwb_store_feedback_add(s, "acme", &fb, PWB_STORE_TEXTS,
						21, NULL, &d),
			 PWB_EINVAL);
	assert_true(diag_has(&d, "was erased"));
	pwb_diag_clear(&d);
	/* Erasing twice changes nothing; the chain holds. */
	ok(pwb_store_user_erase(s, "acme", "u1", 22, &seq, &d), &d);
	assert_int_equal(seq, 0);
	pwb_audit_report rep;
	ok(pwb_store_audit_verify(s, &rep, &d), &d);
	assert_int_equal(rep.rows, 3); /* decision, key, tombstone */
	assert_int_equal(pwb_store_user_export(s, "acme", "nobody", &json, &d),
			 PWB_ENOTFOUND);
	assert_int_equal(pwb_store_user_erase(s, "acme", "nobody", 1, NULL, &d),
			 PWB_ENOTFOUND);
	free(key);
	free(kid);
	pwb_diag_release(&d);
	pwb_store_free(s);
}

/* When the tombstone cannot be written, nothing is erased. */
static void test_erase_is_atomic(void **state)
{
	pwb_store *s = open_ok(fresh());
	pwb_diag d;
	pwb_diag_init(&d);
	ok(pwb_store_user_set_settings(s, "acme", "u1", "{\"a\": 1}", 1, &d),
	   &d);
	add(s, "u1", 2);
	add(s, "u1", 3);
	/* Break the audit chain's head: appending to it now fails. */
	ok(pwb__store_exec(s, "DELETE FROM audit_head", &d), &d);
	assert_int_equal(pwb_store_user_erase(s, "acme", "u1", 4, NULL, &d),
			 PWB_EIO);
	assert_true(diag_has(&d, "no head row"));
	pwb_diag_clear(&d);
	assert_int_equal(count(s, "u1"), 2);
	pwb_store_user u;
	ok(pwb_store_user_get(s, "acme", "u1", &u, &d), &d);
	assert_false(u.erased);
	assert_non_null(u.settings);
	pwb_store_user_release(&u);
	/* Keys too: no key without its audit row. */
	char *key = NULL, *id = NULL;
	assert_int_equal(pwb_store_key_create(s, "acme", PWB_KEY_ADMIN, NULL, 5,
					      &key, &id, &d),
			 PWB_EIO);
	assert_null(key);
	pwb_diag_release(&d);
	pwb_store_free(s);
}

/* ---- API keys ---- */

static void test_keys(void **state)
{
	const char *u = fresh();
	pwb_store *s = open_ok(u);
	pwb_diag d;
	pwb_diag_init(&d);
	char *key = NULL, *kid = NULL, *key2 = NULL, *kid2 = NULL;
	ok(pwb_store_key_create(s, "acme", PWB_KEY_SERVICE, NULL, 10, &key,
				&kid, &d),
	   &d);
	ok(pwb_store_key_create(s, "acme", PWB_KEY_USER, "u1", 10, &key2, &kid2,
				&d),
	   &d);
	assert_string_not_equal(key, key2);
	assert_int_equal(strncmp(key, "pwb_", 4), 0);
	pwb_store_key k;
	ok(pwb_store_key_lookup(s, key, &k, &d), &d);
	assert_string_equal(k.org, "acme");
	assert_string_equal(k.id, kid);
	assert_int_equal(k.role, PWB_KEY_SERVICE);
	assert_null(k.user);
	pwb_store_key_release(&k);
	ok(pwb_store_key_lookup(s, key2, &k, &d), &d);
	assert_int_equal(k.role, PWB_KEY_USER);
	assert_string_equal(k.user, "u1");
	pwb_store_key_release(&k);
	/* A changed character, or garbage, is unknown. */
	char bad[128];
	snprintf(bad, sizeof(bad), "%s", key);
	bad[strlen(bad) - 1] = bad[strlen(bad) - 1] == 'a' ? 'b' : 'a';
	assert_int_equal(pwb_store_key_lookup(s, bad, &k, &d), PWB_ENOTFOUND);
	assert_int_equal(pwb_store_key_lookup(s, "x", &k, &d), PWB_ENOTFOUND);
	/* The database holds only hashes. */
	pwb_store_free(s);
	s = open_ok(u);
	ok(pwb_store_key_revoke(s, "acme", kid, 11, &d), &d);
	assert_int_equal(pwb_store_key_lookup(s, key, &k, &d), PWB_ENOTFOUND);
	assert_int_equal(pwb_store_key_revoke(s, "acme", kid, 12, &d),
			 PWB_ENOTFOUND);
	assert_int_equal(pwb_store_key_revoke(s, "other", kid2, 12, &d),
			 PWB_ENOTFOUND);
	pwb_diag_clear(&d);
	/* Role rules. */
	char *k3, *id3;
	assert_int_equal(pwb_store_key_create(s, "acme", PWB_KEY_USER, NULL, 1,
					      &k3, &id3, &d),
			 PWB_EINVAL);
	assert_int_equal(pwb_store_key_create(s, "acme", PWB_KEY_ADMIN, "u1", 1,
					      &k3, &id3, &d),
			 PWB_EINVAL);
	pwb_store_free(s);
	/* Another secret: the same key is no longer recognised. */
	pwb_store_params p = pwb_store_default_params();
	p.key_secret = "another secret";
	p.key_secret_len = 14;
	ok(pwb_store_open(&s, u, &p, &d), &d);
	assert_int_equal(pwb_store_key_lookup(s, key2, &k, &d), PWB_ENOTFOUND);
	char *k4, *id4;
	ok(pwb_store_key_create(s, "acme", PWB_KEY_AUDITOR, NULL, 1, &k4, &id4,
				&d),
	   &d);
	ok(pwb_store_key_lookup(s, k4, &k, &d), &d);
	assert_int_equal(k.role, PWB_KEY_AUDITOR);
	pwb_store_key_release(&k);
	pwb_audit_report rep;
	ok(pwb_store_audit_verify(s, &rep, &d), &d);
	assert_int_equal(rep.rows, 4);
	free(k4);
	free(id4);
	free(key);
	free(kid);
	free(key2);
	free(kid2);
	pwb_diag_release(&d);
	pwb_store_free(s);
}

/* ---- change notices ---- */

static void expect_change(pwb_store_listener *l, pwb_store_change_kind kind,
			  const char *user, int64_t version)
{
	pwb_store_change c;
	bool got = false;
	pwb_diag d;
	pwb_diag_init(&d);
	ok(pwb_store_listener_wait(l, 5000, &c, &got, &d), &d);
	assert_true(got);
	assert_int_equal(c.kind, kind);
	if (kind != PWB_CHANGE_RESYNC)
		assert_string_equal(c.org, "acme");
	if (user)
		assert_string_equal(c.user, user);
	else
		assert_null(c.user);
	assert_int_equal(c.version, version);
	pwb_diag_release(&d);
}

static void expect_quiet(pwb_store_listener *l)
{
	pwb_store_change c;
	bool got = true;
	ok(pwb_store_listener_wait(l, 200, &c, &got, NULL), NULL);
	assert_false(got);
}

static void test_change_notices(void **state)
{
	pwb_store *s = open_ok(fresh());
	pwb_store_listener *l = NULL;
	pwb_diag d;
	pwb_diag_init(&d);
	ok(pwb_store_listen(&l, s, &d), &d);
	if (!pg_base) {
		/* One process owns a SQLite file: nothing is ever sent. */
		ok(pwb_store_user_set_model(s, "acme", "u1", "m", 1, -1, NULL,
					    1, &d),
		   &d);
		expect_quiet(l);
		pwb_store_listener_free(l);
		pwb_store_free(s);
		pwb_diag_release(&d);
		return;
	}
	ok(pwb_store_user_set_model(s, "acme", "u1", "m", 1, -1, NULL, 1, &d),
	   &d);
	expect_change(l, PWB_CHANGE_MODEL, "u1", 1);
	/* A rolled-back write tells nobody. */
	ok(pwb_store_begin(s, &d), &d);
	ok(pwb_store_user_set_settings(s, "acme", "u1", "{}", 2, &d), &d);
	pwb_store_rollback(s);
	expect_quiet(l);
	ok(pwb_store_user_set_settings(s, "acme", "u1", "{}", 3, &d), &d);
	expect_change(l, PWB_CHANGE_SETTINGS, "u1", 0);
	ok(pwb_store_notify_policy(s, "acme", &d), &d);
	expect_change(l, PWB_CHANGE_POLICY, NULL, 0);
	ok(pwb_store_user_erase(s, "acme", "u1", 4, NULL, &d), &d);
	expect_change(l, PWB_CHANGE_ERASED, "u1", 0);
	expect_quiet(l);
	/* The server drops the listener's connection: the listener makes a
	 * new one and says that notices may have been lost. */
	pg_admin("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
		 "WHERE application_name = 'pwb' AND query LIKE 'LISTEN%'");
	bool resync = false;
	for (int i = 0; i < 10 && !resync; i++) {
		pwb_store_change c;
		bool got = false;
		pwb_diag_clear(&d);
		pwb_status st = pwb_store_listener_wait(l, 1000, &c, &got, &d);
		if (st)
			assert_int_equal(st, PWB_EIO);
		resync = got && c.kind == PWB_CHANGE_RESYNC;
	}
	assert_true(resync);
	ok(pwb_store_user_set_model(s, "acme", "u2", "m", 1, -1, NULL, 5, &d),
	   &d);
	expect_change(l, PWB_CHANGE_MODEL, "u2", 1);
	pwb_store_listener_free(l);
	pwb_diag_release(&d);
	pwb_store_free(s);
}

/* ---- crashes and concurrency ---- */

/*
 * A child writes events one by one and reports each id on a pipe once
 * its commit returned; the parent kills it with SIGKILL mid-stream and
 * finds every reported event in the store.
 */
static void test_kill_9_keeps_acknowledged(void **state)
{
	const char *u = fresh();
	pwb_store_free(open_ok(u)); /* migrated before the child starts */
	int fd[2];
	assert_int_equal(pipe(fd), 0);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		close(fd[0]);
		pwb_store *s = NULL;
		if (pwb_store_open(&s, u, NULL, NULL))
			_exit(3);
		for (int i = 0; i < 100000; i++) {
			pwb_store_feedback fb = pair("u1", "acknowledged");
			int64_t id = 0;
			if (pwb_store_feedback_add(s, "acme", &fb,
						   PWB_STORE_TEXTS, 100 + i,
						   &id, NULL))
				_exit(4);
			if (write(fd[1], &id, sizeof(id)) != sizeof(id))
				_exit(5);
		}
		_exit(0);
	}
	close(fd[1]);
	int64_t acked[200];
	size_t n = 0;
	while (n < PWB_ARRAY_LEN(acked)) {
		ssize_t r = read(fd[0], &acked[n], sizeof(acked[0]));
		assert_int_equal(r, sizeof(acked[0]));
		n++;
	}
	kill(pid, SIGKILL);
	int status;
	waitpid(pid, &status, 0);
	assert_true(WIFSIGNALED(status));
	/* Acks already in the pipe count too. */
	int64_t more;
	size_t extra = 0;
	while (read(fd[0], &more, sizeof(more)) == sizeof(more))
		extra++;
	close(fd[0]);
	pwb_store *s = open_ok(u);
	for (size_t i = 0; i < n; i++) {
		bool exists = false;
		ok(pwb_store_feedback_exists(s, acked[i], &exists, NULL), NULL);
		if (!exists)
			fail_msg("acknowledged event %lld is lost",
				 (long long)acked[i]);
	}
	assert_true(count(s, NULL) >= n + extra);
	pwb_audit_report rep;
	ok(pwb_store_audit_verify(s, &rep, NULL), NULL);
	pwb_store_free(s);
}

#define WRITERS 4
#define PER_WRITER 150
#define KEYS_PER_WRITER 10

static void test_concurrent_writers(void **state)
{
	const char *u = fresh();
	pid_t pids[WRITERS];
	for (int w = 0; w < WRITERS; w++) {
		pids[w] = fork();
		assert_true(pids[w] >= 0);
		if (pids[w])
			continue;
		/* Every writer migrates too: they race for that as well.
		 * SQLite has one writer at a time and syncs every commit; on
		 * a machine busy with other I/O, waiting for three others'
		 * commits can take long, and this test is about losing
		 * nothing, not about waiting: a long busy timeout. */
		pwb_store *s = NULL;
		pwb_diag d;
		pwb_diag_init(&d);
		pwb_store_params sp = pwb_store_default_params();
		sp.busy_timeout_ms = 300000;
		if (pwb_store_open(&s, u, &sp, &d)) {
			fprintf(stderr, "writer %d: %s\n", w,
				d.n ? d.entries[0].message : "open failed");
			_exit(3);
		}
		char user[16];
		snprintf(user, sizeof(user), "w%d", w);
		for (int i = 0; i < PER_WRITER; i++) {
			pwb_store_feedback fb = pair(user, "mine");
			if (pwb_store_feedback_add(s, "acme", &fb,
						   PWB_STORE_TEXTS, 100 + i,
						   NULL, &d)) {
				fprintf(stderr, "writer %d: %s\n", w,
					d.n ? d.entries[0].message : "add");
				_exit(4);
			}
			if (i % (PER_WRITER / KEYS_PER_WRITER) == 0) {
				char *k, *id;
				if (pwb_store_key_create(s, "acme",
							 PWB_KEY_SERVICE, NULL,
							 100 + i, &k, &id, &d))
					_exit(5);
				free(k);
				free(id);
			}
		}
		pwb_store_free(s);
		_exit(0);
	}
	for (int w = 0; w < WRITERS; w++) {
		int status;
		waitpid(pids[w], &status, 0);
		assert_true(WIFEXITED(status));
		assert_int_equal(WEXITSTATUS(status), 0);
	}
	pwb_store *s = open_ok(u);
	assert_int_equal(count(s, NULL), WRITERS * PER_WRITER);
	for (int w = 0; w < WRITERS; w++) {
		char user[16];
		snprintf(user, sizeof(user), "w%d", w);
		assert_int_equal(count(s, user), PER_WRITER);
	}
	pwb_audit_report rep;
	ok(pwb_store_audit_verify(s, &rep, NULL), NULL);
	assert_int_equal(rep.rows, WRITERS * KEYS_PER_WRITER);
	pwb_store_free(s);
}

/* Threads of one process share a store through its pool. */
typedef struct thr {
	pwb_store *s;
	int n;
	char user[16];
	bool failed;
} thr;

static void *thread_writer(void *arg)
{
	thr *t = arg;
	for (int i = 0; i < t->n; i++) {
		bool tx = i % 10 == 0;
		if (tx && pwb_store_begin(t->s, NULL)) {
			t->failed = true;
			break;
		}
		pwb_store_feedback fb = pair(t->user, "thread");
		if (pwb_store_feedback_add(t->s, "acme", &fb, PWB_STORE_TEXTS,
					   100, NULL, NULL))
			t->failed = true;
		if (tx && pwb_store_commit(t->s, NULL))
			t->failed = true;
	}
	return NULL;
}

static void test_threads_share_pool(void **state)
{
	pwb_store_params p = pwb_store_default_params();
	p.pool_size = 2;
	pwb_store *s = NULL;
	ok(pwb_store_open(&s, fresh(), &p, NULL), NULL);
	pthread_t th[4];
	thr t[4];
	for (int i = 0; i < 4; i++) {
		t[i] = (thr){.s = s, .n = 100};
		snprintf(t[i].user, sizeof(t[i].user), "t%d", i);
		pthread_create(&th[i], NULL, thread_writer, &t[i]);
	}
	for (int i = 0; i < 4; i++) {
		pthread_join(th[i], NULL);
		assert_false(t[i].failed);
	}
	assert_int_equal(count(s, NULL), 400);
	pwb_store_free(s);
}

/* ---- group commit: events of concurrent callers share commits ---- */

static pwb_status open_as(pwb_store **s, const char *u, pwb_store_mode mode,
			  pwb_diag *d);

typedef struct gthr {
	pwb_store *s;
	int t, n;
	const char *decision; /* one decision with this id, or */
	const char *event_id; /* one feedback event with this id and user */
	const char *user;
	size_t text_len; /* > 0: the feedback's chosen text has this size */
	bool learn;	 /* two events and a model: pwb_store_feedback_learn */
	pwb_store_model_write m;
	pwb_status st;
	pwb_diag d;
	int64_t ids[16];
} gthr;

static void *group_writer(void *arg)
{
	gthr *g = arg;
	pwb_diag_init(&g->d);
	char user[16], id[32];
	snprintf(user, sizeof(user), "g%d", g->t);
	if (g->learn) {
		pwb_store_feedback ev[2] = {pair(g->user, "first"),
					    pair(g->user, "second")};
		g->st = pwb_store_feedback_learn(g->s, "acme", ev, 2,
						 PWB_STORE_TEXTS, &g->m, 30,
						 &g->d);
		return NULL;
	}
	for (int i = 0; i < g->n && !g->st; i++) {
		if (g->decision || (!g->event_id && !g->text_len && i % 2)) {
			snprintf(id, sizeof(id), "d%d-%d", g->t, i);
			pwb_store_decision dec = {
			    .id = g->decision ? g->decision : id,
			    .user = g->user ? g->user : user,
			    .ts = 10,
			    .policy_hash = "h",
			    .verdict = "allow"};
			g->st =
			    pwb_store_decision_add(g->s, "acme", &dec, &g->d);
			continue;
		}
		char *text = NULL;
		if (g->text_len) {
			text = malloc(g->text_len + 1);
			memset(text, 'x', g->text_len);
			text[g->text_len] = '\0';
		}
		pwb_store_feedback fb =
		    pair(g->user ? g->user : user, text ? text : "grouped");
		snprintf(id, sizeof(id), "e%d-%d", g->t, i);
		fb.event_id = g->event_id ? g->event_id : id;
		g->st = pwb_store_feedback_add(
		    g->s, "acme", &fb, PWB_STORE_TEXTS, 20, &g->ids[i], &g->d);
		free(text);
	}
	return NULL;
}

/* Starts n writers while leaders are held, waits until all n have queued
 * their first event, then lets them go: their first events make one
 * batch. */
static void run_held(pwb_store *s, gthr *g, int n)
{
	pthread_t th[64];
	assert_true(n <= 64);
	pwb__group_stats gs;
	pwb__store_group_hold(s, true);
	for (int i = 0; i < n; i++)
		pthread_create(&th[i], NULL, group_writer, &g[i]);
	for (int tries = 0;; tries++) {
		pwb__store_group_stats(s, &gs);
		if (gs.queued == (size_t)n)
			break;
		assert_true(tries < 10000);
		usleep(1000);
	}
	pwb__store_group_hold(s, false);
	for (int i = 0; i < n; i++)
		pthread_join(th[i], NULL);
}

/* How many decisions the export of user lists. */
static int decisions_of(pwb_store *s, const char *user)
{
	char *json = NULL;
	ok(pwb_store_user_export(s, "acme", user, &json, NULL), NULL);
	int n = 0;
	for (const char *p = json; (p = strstr(p, "\"policy_hash\"")); p++)
		n++;
	free(json);
	return n;
}

static void test_group_commit_threads(void **state)
{
	enum { THREADS = 64, PER = 10 };
	pwb_store *s = open_ok(fresh());
	static gthr g[THREADS];
	memset(g, 0, sizeof(g));
	for (int i = 0; i < THREADS; i++)
		g[i] = (gthr){.s = s, .t = i, .n = PER};
	run_held(s, g, THREADS);
	for (int i = 0; i < THREADS; i++) {
		ok(g[i].st, &g[i].d);
		pwb_diag_release(&g[i].d);
		char user[16];
		snprintf(user, sizeof(user), "g%d", i);
		/* Every event once: its own row id, and all of them there. */
		for (int k = 0; k < PER; k += 2) {
			assert_true(g[i].ids[k] > 0);
			bool there = false;
			ok(pwb_store_feedback_exists(s, g[i].ids[k], &there,
						     NULL),
			   NULL);
			assert_true(there);
		}
		assert_int_equal(count(s, user), PER / 2);
		assert_int_equal(decisions_of(s, user), PER / 2);
	}
	assert_int_equal(count(s, NULL), THREADS * PER / 2);
	/* One audit row per decision, in one intact chain. */
	pwb_audit_report rep;
	ok(pwb_store_audit_verify(s, &rep, NULL), NULL);
	assert_int_equal(rep.rows, THREADS * PER / 2);
	/* They shared commits: the held first events made one batch. */
	pwb__group_stats gs;
	pwb__store_group_stats(s, &gs);
	assert_int_equal(gs.events, THREADS * PER);
	assert_true(gs.commits <= THREADS * PER - THREADS + 1);
	pwb_store_free(s);
}

static void test_group_commit_one_fails_alone(void **state)
{
	enum { THREADS = 8 };
	pwb_store *s = open_ok(fresh());
	pwb_diag d;
	pwb_diag_init(&d);
	pwb_store_decision dec = {.id = "dup",
				  .user = "other",
				  .ts = 1,
				  .policy_hash = "h",
				  .verdict = "allow"};
	ok(pwb_store_decision_add(s, "acme", &dec, &d), &d);
	pwb_store_feedback fb = pair("other", "mine");
	fb.event_id = "taken";
	ok(pwb_store_feedback_add(s, "acme", &fb, PWB_STORE_TEXTS, 1, NULL, &d),
	   &d);
	pwb__group_stats before;
	pwb__store_group_stats(s, &before);
	gthr g[THREADS];
	memset(g, 0, sizeof(g));
	for (int i = 0; i < THREADS; i++)
		g[i] = (gthr){.s = s, .t = i, .n = 2};
	/* In the middle of the batch: a decision id stored before, and an
	 * event id another user's event holds. */
	g[3].decision = "dup";
	g[3].n = 1;
	g[5].event_id = "taken";
	g[5].n = 1;
	run_held(s, g, THREADS);
	for (int i = 0; i < THREADS; i++) {
		if (i == 3 || i == 5) {
			assert_int_equal(g[i].st, PWB_EINVAL);
			assert_true(g[i].d.n > 0);
		} else {
			ok(g[i].st, &g[i].d);
			assert_int_equal(g[i].d.n, 0);
		}
	}
	assert_true(diag_has(&g[5].d, "another user"));
	for (int i = 0; i < THREADS; i++)
		pwb_diag_release(&g[i].d);
	/* The others: stored, each once; the failed ones not at all. */
	assert_int_equal(count(s, NULL), 1 + 6);
	assert_int_equal(count(s, "g5"), 0);
	assert_int_equal(decisions_of(s, "other"), 1);
	pwb_audit_report rep;
	ok(pwb_store_audit_verify(s, &rep, &d), &d);
	assert_int_equal(rep.rows, 1 + 6);
	/* The held first events were one batch, written once without the
	 * failed two. */
	pwb__group_stats gs;
	pwb__store_group_stats(s, &gs);
	assert_int_equal(gs.events - before.events, 12);
	assert_true(gs.commits - before.commits <= 7);
	pwb_diag_release(&d);
	pwb_store_free(s);
}

/* Feedback with the model it taught: one unit of a batch, all or nothing;
 * two writers of one user's model, both from version 1: the first queued
 * wins, the other gets a conflict and leaves nothing, and the rest of the
 * batch is written. */
static void test_group_commit_learn(void **state)
{
	enum { THREADS = 8 };
	pwb_store *s = open_ok(fresh());
	pwb_diag d;
	pwb_diag_init(&d);
	static char users[THREADS][8], blobs[THREADS][8];
	gthr g[THREADS];
	memset(g, 0, sizeof(g));
	for (int i = 0; i < THREADS; i++) {
		snprintf(users[i], sizeof(users[i]), "l%d", i % (THREADS - 1));
		snprintf(blobs[i], sizeof(blobs[i]), "model%d", i);
		if (i < THREADS - 1)
			ok(pwb_store_user_set_model(s, "acme", users[i], "v1",
						    2, -1, NULL, 1, &d),
			   &d);
		g[i] = (gthr){.s = s,
			      .t = i,
			      .learn = true,
			      .user = users[i],
			      .m = {.user = users[i],
				    .blob = blobs[i],
				    .len = strlen(blobs[i]),
				    .expect_version = 1}};
	}
	pwb__group_stats before;
	pwb__store_group_stats(s, &before);
	/* Queued one by one, so that writer 0 is ahead of writer 7 (both
	 * of user l0). */
	pthread_t th[THREADS];
	pwb__store_group_hold(s, true);
	for (int i = 0; i < THREADS; i++) {
		pthread_create(&th[i], NULL, group_writer, &g[i]);
		pwb__group_stats gs;
		for (int tries = 0;; tries++) {
			pwb__store_group_stats(s, &gs);
			if (gs.queued == (size_t)i + 1)
				break;
			assert_true(tries < 10000);
			usleep(1000);
		}
	}
	pwb__store_group_hold(s, false);
	for (int i = 0; i < THREADS; i++)
		pthread_join(th[i], NULL);
	for (int i = 0; i < THREADS - 1; i++) {
		ok(g[i].st, &g[i].d);
		assert_false(g[i].m.conflict);
		assert_int_equal(g[i].m.new_version, 2);
		assert_int_equal(count(s, users[i]), 2);
		pwb_store_user u;
		ok(pwb_store_user_get(s, "acme", users[i], &u, &d), &d);
		assert_int_equal(u.model_version, 2);
		assert_int_equal(u.model_len, strlen(blobs[i]));
		assert_memory_equal(u.model, blobs[i], u.model_len);
		pwb_store_user_release(&u);
		pwb_diag_release(&g[i].d);
	}
	/* The loser: a conflict, its events not stored (l0 has writer 0's
	 * two only), the message saying to read again. */
	assert_int_equal(g[THREADS - 1].st, PWB_EINVAL);
	assert_true(g[THREADS - 1].m.conflict);
	assert_true(diag_has(&g[THREADS - 1].d, "read it again"));
	pwb_diag_release(&g[THREADS - 1].d);
	assert_int_equal(count(s, NULL), 2 * (THREADS - 1));
	/* One batch, written again once without the loser. */
	pwb__group_stats gs;
	pwb__store_group_stats(s, &gs);
	assert_int_equal(gs.events - before.events, THREADS - 1);
	assert_true(gs.commits - before.commits == 1);
	/* Inside a transaction it is written there, and a conflict leaves
	 * nothing of the unit. */
	pwb_store_feedback ev = pair("l1", "third");
	pwb_store_model_write m = {
	    .user = "l1", .blob = "x", .len = 1, .expect_version = 1};
	assert_int_equal(pwb_store_feedback_learn(s, "acme", &ev, 1,
						  PWB_STORE_TEXTS, &m, 40, &d),
			 PWB_EINVAL);
	assert_true(m.conflict);
	pwb_diag_clear(&d);
	ok(pwb_store_begin(s, &d), &d);
	m.expect_version = 2;
	ok(pwb_store_feedback_learn(s, "acme", &ev, 1, PWB_STORE_TEXTS, &m, 40,
				    &d),
	   &d);
	assert_int_equal(m.new_version, 3);
	ok(pwb_store_commit(s, &d), &d);
	assert_int_equal(count(s, "l1"), 3);
	pwb_diag_release(&d);
	pwb_store_free(s);
}

static void test_group_commit_store_cannot_write(void **state)
{
	enum { THREADS = 16 };
	const char *u = fresh();
	char keep[1024];
	snprintf(keep, sizeof(keep), "%s", u);
	pwb_store *s = open_ok(keep);
	add(s, "u1", 1);
	pwb_store_free(s);
	pwb_diag d;
	pwb_diag_init(&d);
	ok(open_as(&s, keep, PWB_STORE_READ_ONLY, &d), &d);
	gthr g[THREADS];
	memset(g, 0, sizeof(g));
	for (int i = 0; i < THREADS; i++)
		g[i] = (gthr){.s = s, .t = i, .n = 1 + i % 2};
	run_held(s, g, THREADS);
	for (int i = 0; i < THREADS; i++) {
		assert_int_equal(g[i].st, PWB_EINVAL);
		assert_true(diag_has(&g[i].d, "read-only"));
		pwb_diag_release(&g[i].d);
	}
	pwb_store_free(s);
	s = open_ok(keep);
	assert_int_equal(count(s, NULL), 1);
	if (pg_base) {
		pwb_store_free(s);
		pwb_diag_release(&d);
		return;
	}
	pwb_store_free(s);
	/* SQLite: a write that fails halfway through the batch (the disk
	 * full) fails every event of it, and none is kept. */
	pwb_store_params p = pwb_store_default_params();
	p.pool_size = 1; /* the page limit is per connection */
	ok(pwb_store_open(&s, keep, &p, &d), &d);
	ok(pwb__store_exec(s, "PRAGMA max_page_count = 40", &d), &d);
	char text[2000];
	memset(text, 'x', sizeof(text) - 1);
	text[sizeof(text) - 1] = '\0';
	pwb_status st = PWB_OK;
	for (int i = 0; i < 1000 && !st; i++) {
		pwb_store_feedback fb = pair("u1", text);
		st = pwb_store_feedback_add(s, "acme", &fb, PWB_STORE_TEXTS, 2,
					    NULL, &d);
	}
	assert_int_equal(st, PWB_EIO);
	uint64_t before = count(s, NULL);
	memset(g, 0, sizeof(g));
	for (int i = 0; i < THREADS; i++)
		g[i] = (gthr){.s = s, .t = i, .n = 1, .text_len = 4000};
	run_held(s, g, THREADS);
	for (int i = 0; i < THREADS; i++) {
		assert_int_equal(g[i].st, PWB_EIO);
		assert_true(diag_has(&g[i].d, "the database is full"));
		pwb_diag_release(&g[i].d);
	}
	assert_int_equal(count(s, NULL), before);
	pwb_audit_report rep;
	ok(pwb_store_audit_verify(s, &rep, &d), &d);
	pwb_diag_release(&d);
	pwb_store_free(s);
}

/* ---- bad input ---- */

static void test_bad_urls(void **state)
{
	static const struct {
		const char *url, *word;
	} cases[] = {
	    {"", "no database URL"},
	    {"sqlite:", "names no file"},
	    {"sqlite::memory:", "not a file path"},
	    {"mysql://localhost/x", "unknown database URL scheme 'mysql:'"},
	    {"pwb.db", "not a database URL"},
	    {"postgres://host:notaport/db", "PostgreSQL"},
	    {"postgresql://a/b?nosuchoption=1", "malformed PostgreSQL URL"},
	};
	for (size_t i = 0; i < PWB_ARRAY_LEN(cases); i++) {
		pwb_store *s = NULL;
		pwb_diag d;
		pwb_diag_init(&d);
		pwb_status st = pwb_store_open(&s, cases[i].url, NULL, &d);
		assert_null(s);
		assert_true(st == PWB_EINVAL || st == PWB_EIO);
		assert_int_equal(d.n, 1);
		if (!strstr(d.entries[0].message, cases[i].word))
			fail_msg("%s: want '%s' in: %s", cases[i].url,
				 cases[i].word, d.entries[0].message);
		pwb_diag_release(&d);
	}
	/* A folder, or a file that is not a database. */
	char path[512];
	snprintf(path, sizeof(path), "sqlite:%s/not-a-db", dir);
	FILE *f = fopen(path + 7, "w");
	assert_non_null(f);
	fputs("this is not a database, just text, long enough to matter\n", f);
	fclose(f);
	pwb_store *s = NULL;
	pwb_diag d;
	pwb_diag_init(&d);
	assert_int_not_equal(pwb_store_open(&s, path, NULL, &d), PWB_OK);
	assert_true(diag_has(&d, "not a SQLite database") ||
		    diag_has(&d, "not a database"));
	pwb_diag_clear(&d);
	snprintf(path, sizeof(path), "sqlite:%s/no/such/dir/x.db", dir);
	assert_int_equal(pwb_store_open(&s, path, NULL, &d), PWB_EIO);
	assert_true(diag_has(&d, "cannot open the database"));
	pwb_diag_release(&d);
}

static void test_unreachable_postgres(void **state)
{
	pwb_store *s = NULL;
	pwb_diag d;
	pwb_diag_init(&d);
	pwb_store_params p = pwb_store_default_params();
	p.connect_timeout_s = 2;
	/* Nothing listens on port 1 of the loopback. */
	const char *u = "postgresql://pwb@127.0.0.1:1/pwb";
	assert_int_equal(pwb_store_open(&s, u, &p, &d), PWB_EIO);
	assert_int_equal(d.n, 1);
	assert_non_null(
	    strstr(d.entries[0].message,
		   "cannot connect to PostgreSQL at 127.0.0.1:1/pwb"));
	pwb_diag_clear(&d);
	/* The retry helper gives up after its attempts, with one message. */
	assert_int_equal(pwb_store_open_retry(&s, u, &p, 3, 10, &d), PWB_EIO);
	assert_int_equal(d.n, 1);
	pwb_diag_clear(&d);
	/* ... and does not retry what cannot pass. */
	assert_int_equal(pwb_store_open_retry(&s, "nope:", &p, 3, 10, &d),
			 PWB_EINVAL);
	pwb_diag_release(&d);
}

static void test_newer_schema_refused(void **state)
{
	const char *u = fresh();
	pwb_store *s = open_ok(u);
	pwb_diag d;
	pwb_diag_init(&d);
	ok(pwb__store_exec(s,
			   "UPDATE meta SET value = '999' "
			   "WHERE key = 'schema_version'",
			   &d),
	   &d);
	pwb_store_free(s);
	s = NULL;
	assert_int_equal(pwb_store_open(&s, u, NULL, &d), PWB_EINVAL);
	assert_null(s);
	assert_int_equal(d.n, 1);
	assert_non_null(strstr(d.entries[0].message, "schema version 999"));
	assert_non_null(strstr(d.entries[0].message, "newer"));
	pwb_diag_release(&d);
}

/* SQLite only: a page limit stands in for a full disk. */
static void test_full_database(void **state)
{
	if (pg_base) {
		skip();
		return;
	}
	const char *u = fresh();
	pwb_store_params p = pwb_store_default_params();
	p.pool_size = 1; /* the page limit is per connection */
	pwb_store *s = NULL;
	pwb_diag d;
	pwb_diag_init(&d);
	ok(pwb_store_open(&s, u, &p, &d), &d);
	add(s, "u1", 1);
	/* Let the database grow a little, then no more. */
	ok(pwb__store_exec(s, "PRAGMA max_page_count = 40", &d), &d);
	char text[2000];
	memset(text, 'x', sizeof(text) - 1);
	text[sizeof(text) - 1] = '\0';
	pwb_status st = PWB_OK;
	int batches = 0;
	uint64_t before = 0;
	while (!st && batches < 100) {
		before = count(s, NULL);
		ok(pwb_store_begin(s, &d), &d);
		for (int i = 0; i < 20 && !st; i++) {
			pwb_store_feedback fb = pair("u1", text);
			st = pwb_store_feedback_add(
			    s, "acme", &fb, PWB_STORE_TEXTS, 2, NULL, &d);
		}
		if (st)
			pwb_store_rollback(s);
		else
			st = pwb_store_commit(s, &d);
		batches++;
	}
	assert_int_equal(st, PWB_EIO);
	assert_true(diag_has(&d, "the database is full"));
	/* The failed batch left nothing; the store still works. */
	assert_int_equal(count(s, NULL), before);
	pwb_diag_clear(&d);
	ok(pwb__store_exec(s, "PRAGMA max_page_count = 100000", &d), &d);
	add(s, "u1", 3);
	assert_int_equal(count(s, NULL), before + 1);
	pwb_audit_report rep;
	ok(pwb_store_audit_verify(s, &rep, &d), &d);
	pwb_diag_release(&d);
	pwb_store_free(s);
}

/* ---- what opening may do: create, existing, read-only ---- */

static pwb_status open_as(pwb_store **s, const char *u, pwb_store_mode mode,
			  pwb_diag *d)
{
	pwb_store_params p = pwb_store_default_params();
	p.mode = mode;
	return pwb_store_open(s, u, &p, d);
}

/* Whether anything of a store is at u: the SQLite file, or a table in the
 * PostgreSQL schema. */
static bool something_at(const char *u)
{
	if (!pg_base)
		return access(u + 7, F_OK) == 0;
	PGconn *c = PQconnectdb(u);
	assert_int_equal(PQstatus(c), CONNECTION_OK);
	PGresult *r = PQexec(c, "SELECT COUNT(*) FROM pg_tables "
				"WHERE schemaname = current_schema()");
	assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
	bool any = strcmp(PQgetvalue(r, 0, 0), "0") != 0;
	PQclear(r);
	PQfinish(c);
	return any;
}

static bool beside(const char *u, const char *suffix)
{
	char path[1100];
	snprintf(path, sizeof(path), "%s%s", u + 7, suffix);
	return access(path, F_OK) == 0;
}

static void test_open_modes(void **state)
{
	const char *u = fresh();
	char keep[1024];
	snprintf(keep, sizeof(keep), "%s", u);
	pwb_store *s = NULL;
	pwb_diag d;
	pwb_diag_init(&d);
	/* No store there: the modes that do not create say so, and make
	 * none. */
	assert_int_equal(open_as(&s, keep, PWB_STORE_READ_ONLY, &d),
			 PWB_ENOTFOUND);
	assert_null(s);
	assert_true(diag_has(&d, pg_base ? "no pwb store" : "no such file"));
	assert_true(d.entries[0].file && d.entries[0].file[0]);
	pwb_diag_clear(&d);
	assert_int_equal(open_as(&s, keep, PWB_STORE_EXISTING, &d),
			 PWB_ENOTFOUND);
	assert_false(something_at(keep));
	pwb_diag_clear(&d);
	/* Made, then read only: every write is refused, reads work. */
	s = open_ok(keep);
	add(s, "u1", 100);
	pwb_store_free(s);
	ok(open_as(&s, keep, PWB_STORE_READ_ONLY, &d), &d);
	pwb_store_feedback fb = pair("u1", "x");
	assert_int_equal(pwb_store_feedback_add(s, "acme", &fb, PWB_STORE_TEXTS,
						1, NULL, &d),
			 PWB_EINVAL);
	assert_true(diag_has(&d, "opened read-only"));
	pwb_diag_clear(&d);
	assert_int_equal(pwb_store_policies_set(s, "/p", &d), PWB_EINVAL);
	pwb_diag_clear(&d);
	assert_int_equal(pwb_store_begin(s, &d), PWB_EINVAL);
	pwb_diag_clear(&d);
	assert_int_equal(count(s, "u1"), 1);
	pwb_audit_report rep;
	ok(pwb_store_audit_verify(s, &rep, &d), &d);
	char *json = NULL;
	ok(pwb_store_user_export(s, "acme", "u1", &json, &d), &d);
	free(json);
	pwb_store_free(s);
	/* A store at rest read by SQLite leaves nothing beside it. */
	if (!pg_base) {
		assert_false(beside(keep, "-wal"));
		assert_false(beside(keep, "-shm"));
	}
	ok(open_as(&s, keep, PWB_STORE_EXISTING, &d), &d);
	add(s, "u1", 101);
	assert_int_equal(count(s, "u1"), 2);
	pwb_store_free(s);
	pwb_diag_release(&d);
}

/* SQLite reads a store at rest without locks (sqlite.c); a writer that
 * comes meanwhile makes the read say so instead of mixing two states. */
static void test_read_only_meets_a_writer(void **state)
{
	if (pg_base) {
		skip();
		return;
	}
	const char *u = fresh();
	char keep[1024];
	snprintf(keep, sizeof(keep), "%s", u);
	pwb_store *w = open_ok(keep), *r = NULL;
	add(w, "u1", 100);
	pwb_store_free(w);
	pwb_diag d;
	pwb_diag_init(&d);
	ok(open_as(&r, keep, PWB_STORE_READ_ONLY, &d), &d);
	w = open_ok(keep);
	for (int i = 0; i < 3; i++)
		add(w, "u2", 200 + i);
	pwb_store_free(w); /* checkpoints into the file */
	pwb_audit_report rep;
	assert_int_equal(pwb_store_audit_verify(r, &rep, &d), PWB_EIO);
	assert_int_equal(d.n, 1);
	assert_true(diag_has(&d, "written by another process"));
	assert_int_equal(rep.bad_seq, 0);
	pwb_store_free(r);
	pwb_diag_clear(&d);
	ok(open_as(&r, keep, PWB_STORE_READ_ONLY, &d), &d);
	ok(pwb_store_audit_verify(r, &rep, &d), &d);
	pwb_store_free(r);
	pwb_diag_release(&d);
}

static void test_content_id(void **state)
{
	const char *u = fresh();
	char keep[1024];
	snprintf(keep, sizeof(keep), "%s", u);
	pwb_store *s = open_ok(keep);
	pwb_store_feedback a = pair("u1", "Short answer.");
	a.ts = 100;
	char id[PWB_STORE_CONTENT_ID_SIZE], other[PWB_STORE_CONTENT_ID_SIZE];
	pwb_store_feedback_content_id(s, &a, id);
	assert_int_equal(strlen(id), 72);
	assert_memory_equal(id, "content:", 8);
	/* Not part of it: the rater, the decision, the features. */
	pwb_store_feedback b = a;
	b.rater_role = "expert";
	b.rater_attrs = "{\"country\": \"de\"}";
	b.decision_id = "d1";
	b.features = "f";
	b.features_len = 1;
	pwb_store_feedback_content_id(s, &b, other);
	assert_string_equal(id, other);
	/* Part of it: user, ts, each text, kind, rating and scale. */
	const char *fields[] = {"user", "ts", "prompt", "chosen", "rejected"};
	for (size_t i = 0; i < PWB_ARRAY_LEN(fields); i++) {
		b = a;
		if (i == 0)
			b.user = "u2";
		else if (i == 1)
			b.ts = 101;
		else if (i == 2)
			b.prompt = NULL;
		else if (i == 3)
			b.chosen = "Short answer!";
		else
			b.rejected = "";
		pwb_store_feedback_content_id(s, &b, other);
		if (!strcmp(id, other))
			fail_msg("the %s is not part of the content id",
				 fields[i]);
	}
	pwb_store_feedback r = {.kind = PWB_STORE_FB_RATING,
				.user = "u1",
				.ts = 100,
				.response = "Short answer.",
				.rating = 4,
				.scale_lo = 1,
				.scale_hi = 5};
	char rid[PWB_STORE_CONTENT_ID_SIZE];
	pwb_store_feedback_content_id(s, &r, rid);
	assert_string_not_equal(rid, id);
	r.rating = 5;
	pwb_store_feedback_content_id(s, &r, other);
	assert_string_not_equal(rid, other);
	r.rating = 4;
	r.scale_hi = 10;
	pwb_store_feedback_content_id(s, &r, other);
	assert_string_not_equal(rid, other);
	/* Stored as the event id: a second add is a replay. */
	a.event_id = id;
	pwb_diag d;
	pwb_diag_init(&d);
	int64_t row = 0;
	ok(pwb_store_feedback_add(s, "acme", &a, PWB_STORE_TEXTS, 1000, &row,
				  &d),
	   &d);
	assert_true(row > 0);
	ok(pwb_store_feedback_add(s, "acme", &a, PWB_STORE_TEXTS, 1001, &row,
				  &d),
	   &d);
	assert_int_equal(row, 0);
	pwb_store_free(s);
	/* The same in the same store whatever secret keys the API keys;
	 * another store's own secret gives another id. */
	pwb_store_params p = pwb_store_default_params();
	p.key_secret = "another secret";
	p.key_secret_len = strlen(p.key_secret);
	ok(pwb_store_open(&s, keep, &p, &d), &d);
	a.event_id = NULL;
	pwb_store_feedback_content_id(s, &a, other);
	assert_string_equal(id, other);
	pwb_store_free(s);
	s = open_ok(fresh());
	pwb_store_feedback_content_id(s, &a, other);
	assert_string_not_equal(id, other);
	pwb_store_free(s);
	pwb_diag_release(&d);
}

static void test_feedback_check(void **state)
{
	pwb_diag d;
	pwb_diag_init(&d);
	pwb_store_feedback fb = pair("u1", "bad \xff byte");
	assert_int_equal(
	    pwb_store_feedback_check("acme", &fb, PWB_STORE_TEXTS, &d),
	    PWB_EINVAL);
	assert_true(diag_has(&d, "not valid UTF-8"));
	pwb_diag_clear(&d);
	/* Texts that are not kept are not checked. */
	ok(pwb_store_feedback_check("acme", &fb, PWB_STORE_FEATURES_ONLY, &d),
	   &d);
	fb = pair("", "x");
	assert_int_equal(
	    pwb_store_feedback_check("acme", &fb, PWB_STORE_TEXTS, &d),
	    PWB_EINVAL);
	assert_true(diag_has(&d, "user id is empty"));
	pwb_diag_release(&d);
}

static void test_orgs_and_policies(void **state)
{
	pwb_store *s = open_ok(fresh());
	pwb_diag d;
	pwb_diag_init(&d);
	assert_int_equal(pwb_store_org_check(s, "acme", &d), PWB_ENOTFOUND);
	assert_true(diag_has(&d, "holds no org 'acme' (it holds none yet)"));
	pwb_diag_clear(&d);
	add(s, "u1", 100);
	ok(pwb_store_org_check(s, "acme", &d), &d);
	assert_int_equal(pwb_store_org_check(s, "acmee", &d), PWB_ENOTFOUND);
	assert_true(
	    diag_has(&d, "holds no org 'acmee' (did you mean 'acme'?)"));
	assert_string_equal(d.entries[0].file, pwb_store_name(s));
	pwb_diag_clear(&d);
	assert_int_equal(pwb_store_org_check(s, "zzz", &d), PWB_ENOTFOUND);
	assert_true(diag_has(&d, "holds no org 'zzz'; it holds 'acme'"));
	pwb_diag_clear(&d);
	char *folder = NULL;
	ok(pwb_store_policies_get(s, &folder, &d), &d);
	assert_null(folder);
	ok(pwb_store_policies_set(s, "/srv/pwb/policies", &d), &d);
	ok(pwb_store_policies_get(s, &folder, &d), &d);
	assert_string_equal(folder, "/srv/pwb/policies");
	free(folder);
	/* Its name for messages holds no credentials. */
	if (pg_base)
		assert_null(strchr(pwb_store_name(s), '@'));
	pwb_store_free(s);
	pwb_diag_release(&d);
}

static void test_bad_arguments(void **state)
{
	pwb_store *s = open_ok(fresh());
	pwb_diag d;
	pwb_diag_init(&d);
	pwb_store_feedback fb = pair("", "x");
	assert_int_equal(pwb_store_feedback_add(s, "acme", &fb, PWB_STORE_TEXTS,
						1, NULL, &d),
			 PWB_EINVAL);
	assert_true(diag_has(&d, "user id is empty"));
	char longid[400];
	memset(longid, 'a', sizeof(longid) - 1);
	longid[sizeof(longid) - 1] = '\0';
	fb.user = longid;
	assert_int_equal(pwb_store_feedback_add(s, "acme", &fb, PWB_STORE_TEXTS,
						1, NULL, &d),
			 PWB_EINVAL);
	assert_true(diag_has(&d, "longer than 256"));
	fb.user = "u1";
	fb.chosen = "bad \xff byte";
	assert_int_equal(pwb_store_feedback_add(s, "acme", &fb, PWB_STORE_TEXTS,
						1, NULL, &d),
			 PWB_EINVAL);
	assert_true(diag_has(&d, "not valid UTF-8"));
	/* Features only: the bad text is never looked at, never written. */
	ok(pwb_store_feedback_add(s, "acme", &fb, PWB_STORE_FEATURES_ONLY, 1,
				  NULL, &d),
	   &d);
	fb.chosen = "ok";
	fb.rater_attrs = "[1, 2]";
	assert_int_equal(pwb_store_feedback_add(s, "acme", &fb, PWB_STORE_TEXTS,
						1, NULL, &d),
			 PWB_EINVAL);
	assert_int_equal(count(s, NULL), 1);
	pwb_diag_release(&d);
	pwb_store_free(s);
}

/* Every allocation of a round of operations fails in turn: no crash, no
 * leak (under ASan), and a clean error. SQLite only: libpq's own
 * allocations are not ours to fail. */
static void test_alloc_failure_sweep(void **state)
{
	if (pg_base) {
		skip();
		return;
	}
	const char *u = fresh();
	pwb_store_free(open_ok(u));
	long k;
	for (k = 1; k < 1000; k++) {
		pwb__alloc_count = 0;
		pwb__alloc_fail_at = k;
		pwb_store *s = NULL;
		pwb_diag d;
		pwb_diag_init(&d);
		pwb_status st = pwb_store_open(&s, u, NULL, &d);
		if (!st) {
			pwb_store_feedback fb = pair("u1", "x");
			st = pwb_store_feedback_add(
			    s, "acme", &fb, PWB_STORE_TEXTS, 1, NULL, &d);
			char *key = NULL, *id = NULL;
			if (!st)
				st = pwb_store_key_create(s, "acme",
							  PWB_KEY_ADMIN, NULL,
							  1, &key, &id, &d);
			free(key);
			free(id);
			pwb_store_user ur;
			if (!st)
				st = pwb_store_user_get(s, "acme", "u1", &ur,
							&d);
			if (!st)
				pwb_store_user_release(&ur);
			pwb_audit_report rep;
			if (!st)
				st = pwb_store_audit_verify(s, &rep, &d);
			char *json = NULL;
			if (!st)
				st = pwb_store_user_export(s, "acme", "u1",
							   &json, &d);
			free(json);
			/* A user of its own each round: erased ones stay. */
			char u2[32];
			snprintf(u2, sizeof(u2), "u2-%ld", k);
			if (!st)
				st = pwb_store_user_set_model(
				    s, "acme", u2, "m", 1, -1, NULL, 1, &d);
			if (!st)
				st = pwb_store_user_erase(s, "acme", u2, 2,
							  NULL, &d);
			uint64_t removed;
			if (!st)
				st = pwb_store_gc(s, "acme", 0, &removed, &d);
			char **orgs = NULL;
			size_t n_orgs = 0;
			if (!st)
				st = pwb_store_orgs(s, &orgs, &n_orgs, &d);
			pwb_store_orgs_free(orgs, n_orgs);
			if (!st)
				st = pwb_store_org_check(s, "acme", &d);
			char *folder = NULL;
			if (!st)
				st = pwb_store_policies_set(s, "/p", &d);
			if (!st)
				st = pwb_store_policies_get(s, &folder, &d);
			free(folder);
			pwb_store_free(s);
			s = NULL;
			if (!st)
				st = open_as(&s, u, PWB_STORE_READ_ONLY, &d);
			if (!st)
				st = pwb_store_audit_verify(s, &rep, &d);
			pwb_store_free(s);
		}
		pwb__alloc_fail_at = 0;
		pwb_diag_release(&d);
		if (st == PWB_OK && pwb__alloc_count < k)
			break; /* every allocation was reached */
	}
	assert_true(k < 1000);
	pwb__alloc_fail_at = 0;
	pwb_store *s = open_ok(u);
	pwb_audit_report rep;
	ok(pwb_store_audit_verify(s, &rep, NULL), NULL);
	pwb_store_free(s);
}

static int setup(void **state)
{
	const char *tmp = getenv("TMPDIR");
	snprintf(dir, sizeof(dir), "%s/pwb-test-store-XXXXXX",
		 tmp && *tmp ? tmp : "/tmp");
	return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
	char cmd[512];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	return system(cmd) == 0 ? 0 : -1;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_open_and_reopen),
	    cmocka_unit_test(test_user_settings_model),
	    cmocka_unit_test(test_feedback_texts_and_features_only),
	    cmocka_unit_test(test_transactions),
	    cmocka_unit_test(test_gc),
	    cmocka_unit_test(test_audit_intact),
	    cmocka_unit_test(test_audit_edited),
	    cmocka_unit_test(test_audit_odd_rows),
	    cmocka_unit_test(test_audit_edited_and_rehashed),
	    cmocka_unit_test(test_audit_deleted_middle),
	    cmocka_unit_test(test_audit_deleted_last),
	    cmocka_unit_test(test_audit_reordered),
	    cmocka_unit_test(test_audit_across_pages),
	    cmocka_unit_test(test_export_and_erase),
	    cmocka_unit_test(test_erase_is_atomic),
	    cmocka_unit_test(test_keys),
	    cmocka_unit_test(test_change_notices),
	    cmocka_unit_test(test_kill_9_keeps_acknowledged),
	    cmocka_unit_test(test_concurrent_writers),
	    cmocka_unit_test(test_threads_share_pool),
	    cmocka_unit_test(test_group_commit_threads),
	    cmocka_unit_test(test_group_commit_one_fails_alone),
	    cmocka_unit_test(test_group_commit_learn),
	    cmocka_unit_test(test_group_commit_store_cannot_write),
	    cmocka_unit_test(test_newer_schema_refused),
	    cmocka_unit_test(test_full_database),
	    cmocka_unit_test(test_bad_arguments),
	    cmocka_unit_test(test_open_modes),
	    cmocka_unit_test(test_read_only_meets_a_writer),
	    cmocka_unit_test(test_content_id),
	    cmocka_unit_test(test_feedback_check),
	    cmocka_unit_test(test_orgs_and_policies),
	    cmocka_unit_test(test_alloc_failure_sweep),
	};
	const struct CMUnitTest plain[] = {
	    cmocka_unit_test(test_bad_urls),
	    cmocka_unit_test(test_unreachable_postgres),
	};
	int failed =
	    cmocka_run_group_tests_name("store", plain, setup, teardown);
	pg_base = NULL;
	failed += cmocka_run_group_tests_name("sqlite", tests, setup, teardown);
	const char *pg = getenv("PWB_TEST_POSTGRES");
	if (!pg || !*pg) {
		printf("SKIP postgres: PWB_TEST_POSTGRES is not set; start a "
		       "server with scripts/start-postgres.sh and export "
		       "its URL (docs/store.md)\n");
		return failed;
	}
	pg_base = pg;
	failed +=
	    cmocka_run_group_tests_name("postgres", tests, setup, teardown);
	return failed;
}
