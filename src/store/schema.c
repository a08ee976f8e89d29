/*
 * schema.c - the versioned migrations, one script per version and dialect.
 * A migration is never edited once released: a change is a new version.
 * docs/store.md describes every table.
 */
#include "store/schema.h"

#define SQL_ZERO_HASH                                                          \
	"'0000000000000000000000000000000000000000000000000000000000000000'"

/* The tables both dialects spell the same way. BLOB and ID stand for the
 * dialect's byte string and auto-increment key. */
#define TABLES(BLOB, ID)                                                       \
	"CREATE TABLE orgs (\n"                                                \
	"  id TEXT PRIMARY KEY,\n"                                             \
	"  created BIGINT NOT NULL);\n"                                        \
	"CREATE TABLE users (\n"                                               \
	"  org TEXT NOT NULL REFERENCES orgs(id),\n"                           \
	"  id TEXT NOT NULL,\n"                                                \
	"  settings TEXT,\n"                                                   \
	"  consent TEXT,\n"                                                    \
	"  model " BLOB ",\n"                                                  \
	"  model_version BIGINT NOT NULL DEFAULT 0,\n"                         \
	"  erased BIGINT NOT NULL DEFAULT 0,\n"                                \
	"  created BIGINT NOT NULL,\n"                                         \
	"  updated BIGINT NOT NULL,\n"                                         \
	"  PRIMARY KEY (org, id));\n"                                          \
	"CREATE INDEX users_erased ON users(org, id, erased);\n"               \
	"CREATE TABLE feedback (\n"                                            \
	"  id " ID ",\n"                                                       \
	"  org TEXT NOT NULL,\n"                                               \
	"  user_id TEXT NOT NULL,\n"                                           \
	"  event_id TEXT,\n"                                                   \
	"  ts BIGINT NOT NULL,\n"                                              \
	"  received BIGINT NOT NULL,\n"                                        \
	"  kind TEXT NOT NULL,\n"                                              \
	"  prompt TEXT, chosen TEXT, rejected TEXT, response TEXT,\n"          \
	"  rating DOUBLE PRECISION,\n"                                         \
	"  scale_lo DOUBLE PRECISION,\n"                                       \
	"  scale_hi DOUBLE PRECISION,\n"                                       \
	"  features " BLOB ",\n"                                               \
	"  rater_role TEXT,\n"                                                 \
	"  rater_attrs TEXT,\n"                                                \
	"  decision_id TEXT,\n"                                                \
	"  FOREIGN KEY (org, user_id) REFERENCES users(org, id));\n"           \
	"CREATE UNIQUE INDEX feedback_event ON feedback(org, event_id)\n"      \
	"  WHERE event_id IS NOT NULL;\n"                                      \
	"CREATE INDEX feedback_user ON feedback(org, user_id);\n"              \
	"CREATE INDEX feedback_ts ON feedback(org, ts);\n"                     \
	"CREATE INDEX feedback_received ON feedback(org, received);\n"         \
	"CREATE TABLE decisions (\n"                                           \
	"  id TEXT PRIMARY KEY,\n"                                             \
	"  org TEXT NOT NULL,\n"                                               \
	"  user_id TEXT NOT NULL,\n"                                           \
	"  ts BIGINT NOT NULL,\n"                                              \
	"  policy_hash TEXT,\n"                                                \
	"  verdict TEXT NOT NULL,\n"                                           \
	"  blocked_tier TEXT,\n"                                               \
	"  blocked_category TEXT,\n"                                           \
	"  detail TEXT,\n"                                                     \
	"  FOREIGN KEY (org, user_id) REFERENCES users(org, id));\n"           \
	"CREATE INDEX decisions_user ON decisions(org, user_id);\n"            \
	"CREATE TABLE api_keys (\n"                                            \
	"  id TEXT PRIMARY KEY,\n"                                             \
	"  org TEXT NOT NULL REFERENCES orgs(id),\n"                           \
	"  role TEXT NOT NULL,\n"                                              \
	"  user_id TEXT,\n"                                                    \
	"  hash TEXT NOT NULL UNIQUE,\n"                                       \
	"  created BIGINT NOT NULL,\n"                                         \
	"  revoked BIGINT);\n"                                                 \
	"CREATE INDEX api_keys_user ON api_keys(org, user_id);\n"              \
	"CREATE TABLE audit (\n"                                               \
	"  seq BIGINT PRIMARY KEY,\n"                                          \
	"  ts BIGINT NOT NULL,\n"                                              \
	"  org TEXT,\n"                                                        \
	"  kind TEXT NOT NULL,\n"                                              \
	"  subject TEXT,\n"                                                    \
	"  user_id TEXT,\n"                                                    \
	"  detail TEXT,\n"                                                     \
	"  prev TEXT NOT NULL,\n"                                              \
	"  hash TEXT NOT NULL);\n"                                             \
	"CREATE INDEX audit_user ON audit(org, user_id);\n"                    \
	"CREATE TABLE audit_head (\n"                                          \
	"  id BIGINT PRIMARY KEY CHECK (id = 1),\n"                            \
	"  seq BIGINT NOT NULL,\n"                                             \
	"  hash TEXT NOT NULL);\n"                                             \
	"INSERT INTO audit_head (id, seq, hash) VALUES (1, 0, " SQL_ZERO_HASH  \
	");\n"

static const char v1_sqlite[] = TABLES("BLOB", "INTEGER PRIMARY KEY")
    /* The application never updates or deletes audit rows; a trigger
     * makes that the database's rule too. Someone who can drop the
     * trigger can edit rows, and the hash chain then shows it. */
    "CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit\n"
    "  BEGIN SELECT RAISE(ABORT, 'audit rows are append-only'); END;\n"
    "CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit\n"
    "  BEGIN SELECT RAISE(ABORT, 'audit rows are append-only'); END;\n";

static const char v1_postgres[] = TABLES(
    "BYTEA", "BIGSERIAL PRIMARY KEY") "CREATE FUNCTION pwb_audit_append_only() "
				      "RETURNS trigger\n"
				      "  LANGUAGE plpgsql AS $$\n"
				      "  BEGIN RAISE EXCEPTION 'audit rows are "
				      "append-only'; END $$;\n"
				      "CREATE TRIGGER audit_no_change BEFORE "
				      "UPDATE OR DELETE ON audit\n"
				      "  FOR EACH ROW EXECUTE FUNCTION "
				      "pwb_audit_append_only();\n"
				      "CREATE TRIGGER audit_no_truncate BEFORE "
				      "TRUNCATE ON audit\n"
				      "  FOR EACH STATEMENT EXECUTE FUNCTION "
				      "pwb_audit_append_only();\n";

const pwb__migration pwb__migrations[] = {
    {1, v1_sqlite, v1_postgres},
};

const int pwb__n_migrations =
    (int)(sizeof(pwb__migrations) / sizeof(pwb__migrations[0]));
