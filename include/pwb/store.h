/*
 * pwb/store.h - storage: orgs, users, feedback, decisions, API keys and the
 * hash-chained audit log, behind one interface with two backends.
 *
 *   sqlite:PATH            the embedded default (WAL, busy timeout)
 *   postgres://... or      PostgreSQL through libpq (a connection pool),
 *   postgresql://...       any libpq URL
 *
 * Opening a store runs the versioned migrations (docs/store.md), as its
 * mode allows; a database written by a newer pwb is refused. Every write that
 * must be atomic is one transaction; a caller may group several writes into one
 * with pwb_store_begin()/pwb_store_commit() (the import batches do). A
 * transaction belongs to the thread that began it; other threads keep using
 * other connections of the pool meanwhile.
 *
 * Times are int64 unix seconds that the caller passes (`now`), so that
 * tests control the clock. The library reads no environment variable.
 *
 * Ownership: objects returned through `**out` are the caller's, freed with
 * the matching `_free`; structs filled by a `_get` are released with the
 * matching `_release`; strings returned through `char **` are freed with
 * free(). A pwb_store may be used from several threads at once.
 */
#ifndef PWB_STORE_H
#define PWB_STORE_H

#include "pwb/common.h"
#include "pwb/policy.h"

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct pwb_store pwb_store;

/* What opening a store may do to it (docs/store.md, "Opening"). */
typedef enum pwb_store_mode {
	/* Make the store when there is none (a new SQLite file, or the
	 * tables in a PostgreSQL schema), and migrate it. The default. */
	PWB_STORE_CREATE,
	/* The store must exist already (PWB_ENOTFOUND if not); migrate it.
	 * For commands that change only what is stored (erase, revoke). */
	PWB_STORE_EXISTING,
	/* The store must exist and be of the current schema; nothing is
	 * written, and every write is refused (PWB_EINVAL). SQLite opens
	 * the file read-only, and leaves no -wal or -shm file beside a
	 * store that no process has open; PostgreSQL's sessions are read
	 * only. */
	PWB_STORE_READ_ONLY,
} pwb_store_mode;

typedef struct pwb_store_params {
	/* What opening may do (default PWB_STORE_CREATE). */
	pwb_store_mode mode;
	/* SQLite: how long a writer waits for the lock, in milliseconds
	 * (default 30,000). Opening a store that needs no migration takes
	 * no write lock. */
	int busy_timeout_ms;
	/* Connections kept open (PostgreSQL; SQLite readers), 1 to 256. */
	int pool_size;
	/* PostgreSQL: seconds to wait for a connection (0: 10 s); a
	 * connect_timeout in the URL wins. */
	int connect_timeout_s;
	/*
	 * The secret that keys the hashes of API keys (any length, hashed to
	 * 32 bytes). NULL: the per-database secret made by the first
	 * migration. docs/store.md says why production keeps it outside.
	 */
	const void *key_secret;
	size_t key_secret_len;
	pwb_log_fn log;
	void *log_user;
} pwb_store_params;

pwb_store_params pwb_store_default_params(void);

/* The schema version this library writes (the last migration). */
int pwb_store_schema_version(void);

/*
 * Opens the store named by url and migrates it to the current schema (as
 * params->mode allows). Errors (in diag, as one message a user can act
 * on, naming the database):
 *   PWB_EINVAL    a malformed or unknown URL; a database from a newer pwb;
 *                 a SQLite path that is not a regular file; a database
 *                 that cannot be written, for a mode that writes
 *   PWB_ENOTFOUND no store there, for PWB_STORE_EXISTING and
 *                 PWB_STORE_READ_ONLY (no file, an empty file, or no pwb
 *                 tables); nothing was created
 *   PWB_EIO       the database cannot be opened or reached (worth a retry)
 */
pwb_status pwb_store_open(pwb_store **out, const char *url,
			  const pwb_store_params *params, pwb_diag *diag);

/*
 * pwb_store_open() retried on PWB_EIO (an unreachable server) up to
 * `attempts` times, waiting first_delay_ms, then twice as long each time
 * (capped at 30 s). Other errors return at once. The server uses it at
 * start, when the database may still be coming up.
 */
pwb_status pwb_store_open_retry(pwb_store **out, const char *url,
				const pwb_store_params *params, int attempts,
				int first_delay_ms, pwb_diag *diag);
void pwb_store_free(pwb_store *s);

/* "sqlite" or "postgres". */
const char *pwb_store_backend(const pwb_store *s);
/*
 * The store's name for messages, without credentials: the SQLite path, or
 * host:port/database. Valid until the store is freed.
 */
const char *pwb_store_name(const pwb_store *s);

/*
 * The policy folder recorded in the store (docs/store.md, "Orgs and
 * policies"), or *dir NULL when none is: the commands record the
 * --policies they are given, and use it when given none. *dir is freed
 * with free().
 */
pwb_status pwb_store_policies_get(pwb_store *s, char **dir, pwb_diag *diag);
pwb_status pwb_store_policies_set(pwb_store *s, const char *dir,
				  pwb_diag *diag);
/*
 * PWB_OK when the store holds org (it has stored something for it), else
 * PWB_ENOTFOUND with "the store holds no org 'x'" and a did-you-mean hint
 * from the orgs it holds.
 */
pwb_status pwb_store_org_check(pwb_store *s, const char *org, pwb_diag *diag);

/*
 * Transactions. pwb_store_begin() starts one for the calling thread; every
 * store call the thread makes until commit or rollback joins it. After an
 * error inside a transaction the caller must roll back.
 */
pwb_status pwb_store_begin(pwb_store *s, pwb_diag *diag);
pwb_status pwb_store_commit(pwb_store *s, pwb_diag *diag);
void pwb_store_rollback(pwb_store *s);

/* ---- users ---- */

typedef struct pwb_store_user {
	char *org, *id;
	char *settings; /* JSON (tier-3 settings), or NULL */
	char *consent;	/* JSON, or NULL */
	void *model;	/* opaque blob (the prefs module's), or NULL */
	size_t model_len;
	int64_t model_version; /* bumped by every model write */
	bool erased;
	int64_t created, updated;
} pwb_store_user;

/* PWB_ENOTFOUND when the store has no such user. */
pwb_status pwb_store_user_get(pwb_store *s, const char *org, const char *user,
			      pwb_store_user *out, pwb_diag *diag);
void pwb_store_user_release(pwb_store_user *u);

/*
 * Writers create the org and the user on first use. An erased user is
 * refused (PWB_EINVAL): erasure is not undone by a late write.
 */
pwb_status pwb_store_user_set_settings(pwb_store *s, const char *org,
				       const char *user, const char *json,
				       int64_t now, pwb_diag *diag);
pwb_status pwb_store_user_set_consent(pwb_store *s, const char *org,
				      const char *user, const char *json,
				      int64_t now, pwb_diag *diag);
/*
 * The consent, set to json only if it is still old (the text read with
 * pwb_store_user_get(), NULL for none): *swapped false when another
 * writer changed it first (read again, retry). So that a withdrawal
 * given at the same time as another change is never lost.
 */
pwb_status pwb_store_user_cas_consent(pwb_store *s, const char *org,
				      const char *user, const char *old,
				      const char *json, int64_t now,
				      bool *swapped, pwb_diag *diag);
/*
 * Writes the model blob and bumps model_version. With expect_version >= 0
 * the write happens only if the stored version is still expect_version
 * (else PWB_EINVAL: another replica wrote first; reload and retry).
 * *new_version (may be NULL) gets the version written.
 */
pwb_status pwb_store_user_set_model(pwb_store *s, const char *org,
				    const char *user, const void *blob,
				    size_t len, int64_t expect_version,
				    int64_t *new_version, int64_t now,
				    pwb_diag *diag);

/* ---- feedback ---- */

typedef enum pwb_store_fb_kind {
	PWB_STORE_FB_PAIR,
	PWB_STORE_FB_RATING
} pwb_store_fb_kind;

/* Whether texts may be stored (the effective learning.store_texts). */
typedef enum pwb_store_texts {
	PWB_STORE_TEXTS,	 /* prompt and responses are kept */
	PWB_STORE_FEATURES_ONLY, /* texts are never written */
} pwb_store_texts;

typedef struct pwb_store_feedback {
	pwb_store_fb_kind kind;
	const char *user;
	const char *event_id; /* optional; a second event with it is skipped */
	int64_t ts;	      /* event time; 0: now */
	const char *prompt;   /* texts: NULL when absent */
	const char *chosen, *rejected;
	const char *response;
	double rating, scale_lo, scale_hi; /* RATING */
	const void *features;		   /* opaque feature vector, or NULL */
	size_t features_len;
	const char *rater_role;	 /* "end_user", ... or NULL */
	const char *rater_attrs; /* JSON object, or NULL */
	const char *decision_id; /* the decision it answers, or NULL */
} pwb_store_feedback;

#define PWB_STORE_MAX_TEXT (1024 * 1024)

/*
 * The checks pwb_store_feedback_add() makes of an event before it touches
 * the store (ids, texts as `texts` keeps them, rating and scale, rater),
 * without a store: an import checks its whole input with it before it
 * creates one.
 */
pwb_status pwb_store_feedback_check(const char *org,
				    const pwb_store_feedback *fb,
				    pwb_store_texts texts, pwb_diag *diag);

/*
 * The content id of an event that has no event_id of its own, so that
 * importing it twice stores it once: "content:" and 64 hex digits, a
 * BLAKE2b-256 keyed with the store's own secret of the event's user, ts
 * (as given, 0 for none), kind, prompt, chosen, rejected, response and,
 * for a rating, rating and scale; not of its org, arrival time, rater or
 * decision (docs/store.md gives the exact encoding). Two events equal in
 * all of those are the same event.
 */
#define PWB_STORE_CONTENT_ID_SIZE (8 + 64 + 1)
void pwb_store_feedback_content_id(const pwb_store *s,
				   const pwb_store_feedback *fb,
				   char out[PWB_STORE_CONTENT_ID_SIZE]);

/*
 * Stores one event. With PWB_STORE_FEATURES_ONLY the texts are dropped
 * before anything is written. *id (may be NULL) gets the row id, or 0 when
 * an event with the same event_id was already stored. Once this returns
 * PWB_OK outside a transaction (or its transaction commits), the event is
 * durable. Outside a transaction the event shares its commit with those of
 * other threads calling at the same time (group commit, docs/store.md): a
 * failure of the store fails them all, an error of the event only it.
 */
pwb_status pwb_store_feedback_add(pwb_store *s, const char *org,
				  const pwb_store_feedback *fb,
				  pwb_store_texts texts, int64_t now,
				  int64_t *id, pwb_diag *diag);
/*
 * A user's new preference model, written with the feedback it learnt
 * (pwb_store_feedback_learn): only if the stored model_version is still
 * expect_version; new_version gets the version written, and conflict is
 * set when another writer moved the version on first (reload, retry).
 */
typedef struct pwb_store_model_write {
	const char *user;
	const void *blob;
	size_t len;
	int64_t expect_version;
	int64_t new_version; /* out */
	bool conflict;	     /* out */
} pwb_store_model_write;

/*
 * One answer's feedback, learnt: its n events (as pwb_store_feedback_add
 * takes them) and, when model is not NULL, the user's model learnt from
 * them, all written or none. Outside a transaction it shares a commit
 * with the decisions and feedback of other threads (docs/store.md, "Group
 * commit") and returns PWB_OK only once committed; a model conflict is
 * PWB_EINVAL with model->conflict set, and fails this call alone.
 */
pwb_status pwb_store_feedback_learn(pwb_store *s, const char *org,
				    const pwb_store_feedback *events, size_t n,
				    pwb_store_texts texts,
				    pwb_store_model_write *model, int64_t now,
				    pwb_diag *diag);
/*
 * Report queries (src/report/, DESIGN §11): aggregates over one org's
 * rows whose own time (the event's ts, the decision's ts) is in [since,
 * until), streamed to fn one row at a time (bounded memory; fn returning
 * non-zero stops, with PWB_OK). The cells of each row, by query:
 *
 *   RATERS               rater role ("" for none), distinct raters, events
 *   RATER_ATTRS          rater attributes JSON ("" for none), raters, events
 *   FEEDBACK_PER_RATER   events of one rater, ascending (no user ids)
 *   VERDICTS             verdict, decisions, distinct users
 *   BLOCKS               day (unix days), tier, category, blocked decisions
 *   POLICIES             policy hash, first and last ts, decisions
 *   USERS                users created before until, with a model, erased
 *   MODELS               user, model blob, model version (users with a
 *                        model updated in the period, not erased)
 *   DECISIONS_PER_USER   decisions of one user, ascending (no user ids)
 *   LAW_BLOCKS_PER_USER  blocks by the law of one user, ascending, for
 *                        users with any (no user ids)
 */
typedef enum pwb_store_agg {
	PWB_AGG_RATERS,
	PWB_AGG_RATER_ATTRS,
	PWB_AGG_FEEDBACK_PER_RATER,
	PWB_AGG_VERDICTS,
	PWB_AGG_BLOCKS,
	PWB_AGG_POLICIES,
	PWB_AGG_USERS,
	PWB_AGG_MODELS,
	PWB_AGG_DECISIONS_PER_USER,
	PWB_AGG_LAW_BLOCKS_PER_USER,
	PWB_AGG_COUNT
} pwb_store_agg;

typedef struct pwb_store_cell {
	bool null;
	int64_t i;	/* integers */
	const char *s;	/* text (valid during the call) */
	const void *b;	/* a blob, len bytes */
	size_t len;
} pwb_store_cell;

typedef int (*pwb_store_row_fn)(void *user, const pwb_store_cell *cells,
				size_t n);

pwb_status pwb_store_aggregate(pwb_store *s, pwb_store_agg what,
			       const char *org, int64_t since, int64_t until,
			       pwb_store_row_fn fn, void *user, pwb_diag *diag);

/* The number of feedback rows of an org (user NULL: of every user). */
pwb_status pwb_store_feedback_count(pwb_store *s, const char *org,
				    const char *user, uint64_t *n,
				    pwb_diag *diag);
/* Whether the row with this id exists. */
pwb_status pwb_store_feedback_exists(pwb_store *s, int64_t id, bool *exists,
				     pwb_diag *diag);

/*
 * Retention: removes the org's feedback whose event time or arrival is
 * before `before` (unix seconds). *removed (may be NULL) gets the count.
 */
pwb_status pwb_store_gc(pwb_store *s, const char *org, int64_t before,
			uint64_t *removed, pwb_diag *diag);
/*
 * The same for an org's effective policy: learning.retention_days before
 * now (nothing when the policy sets no limit). The server runs it
 * periodically for each org.
 */
pwb_status pwb_store_gc_policy(pwb_store *s, const pwb_effective *e,
			       int64_t now, uint64_t *removed, pwb_diag *diag);

/* ---- decisions ---- */

typedef struct pwb_store_decision {
	const char *id; /* the decision id given to the client */
	const char *user;
	int64_t ts;
	const char *policy_hash;      /* pwb_effective_hash() */
	const char *verdict;	      /* "allow", "block", ... */
	const char *blocked_tier;     /* or NULL */
	const char *blocked_category; /* or NULL */
	const char *detail;	      /* JSON object (no user texts), or NULL */
} pwb_store_decision;

/*
 * Stores a decision and appends it to the audit chain, atomically; durable
 * once it returns PWB_OK outside a transaction, where it shares its commit
 * with other threads' decisions and feedback events (group commit).
 */
pwb_status pwb_store_decision_add(pwb_store *s, const char *org,
				  const pwb_store_decision *d, pwb_diag *diag);

/*
 * The user a decision was made for (*user freed with free()), so that the
 * server can check that feedback on it comes from that user.
 * PWB_ENOTFOUND when the org has no such decision (or it was erased).
 */
pwb_status pwb_store_decision_owner(pwb_store *s, const char *org,
				    const char *id, char **user,
				    pwb_diag *diag);

/* A stored decision as the feedback on it needs it: its user, verdict
 * and detail JSON (each malloc'ed; NULL when not stored). */
typedef struct pwb_store_decision_row {
	char *user, *verdict, *detail;
} pwb_store_decision_row;

/* PWB_ENOTFOUND when the org has no such decision (or it was erased). */
pwb_status pwb_store_decision_get(pwb_store *s, const char *org,
				  const char *id, pwb_store_decision_row *out,
				  pwb_diag *diag);
void pwb_store_decision_row_release(pwb_store_decision_row *d);

/* ---- API keys ---- */

typedef enum pwb_key_role {
	PWB_KEY_SERVICE, /* an org's backend: any user of its org */
	PWB_KEY_USER,	 /* one user, themselves only */
	PWB_KEY_AUDITOR, /* reports and audit, no user content */
	PWB_KEY_ADMIN	 /* org policy reload */
} pwb_key_role;

const char *pwb_key_role_str(pwb_key_role r);
bool pwb_key_role_parse(const char *s, pwb_key_role *out);

/*
 * Makes a random key for org and role (user: required for PWB_KEY_USER,
 * else NULL), stores only its keyed hash, and appends "key.created" to the
 * audit chain. *key is the key itself, shown once; *key_id its public id
 * (used to revoke it). Both are freed with free().
 */
pwb_status pwb_store_key_create(pwb_store *s, const char *org,
				pwb_key_role role, const char *user,
				int64_t now, char **key, char **key_id,
				pwb_diag *diag);
/* Revokes a key of org by id; PWB_ENOTFOUND when it has none such. */
pwb_status pwb_store_key_revoke(pwb_store *s, const char *org,
				const char *key_id, int64_t now,
				pwb_diag *diag);

typedef struct pwb_store_key {
	char *id, *org, *user; /* user: NULL unless the role is user */
	pwb_key_role role;
} pwb_store_key;

/* key → org, role, user. PWB_ENOTFOUND for unknown or revoked keys. */
pwb_status pwb_store_key_lookup(pwb_store *s, const char *key,
				pwb_store_key *out, pwb_diag *diag);
void pwb_store_key_release(pwb_store_key *k);

/* ---- audit ---- */

/*
 * Appends one row to the audit chain: kind ("user.erased", ...), the
 * subject it is about (a user or key id, or NULL) and a JSON detail (no
 * user content). *seq (may be NULL) gets its sequence number.
 */
pwb_status pwb_store_audit_append(pwb_store *s, const char *org,
				  const char *kind, const char *subject,
				  const char *detail, int64_t now, int64_t *seq,
				  pwb_diag *diag);

typedef struct pwb_audit_report {
	uint64_t rows;	 /* rows checked */
	int64_t bad_seq; /* the first bad row, 0 when the chain holds */
	/* hex BLAKE2b-256 of the last good row (of the last row when the
	 * chain holds); 64 zeros when there is none (rows == 0) */
	char head_hash[65];
} pwb_audit_report;

/*
 * Checks every row's hash against its content and its predecessor, the
 * sequence for gaps, and the recorded head for rows cut off at the end.
 * PWB_OK when intact; PWB_EINVAL with rep->bad_seq and one message naming
 * the first bad row when not; other errors when the store cannot be read
 * (PWB_EIO, with rep zeroed, when a read-only SQLite store read at rest
 * was written meanwhile: try again).
 */
pwb_status pwb_store_audit_verify(pwb_store *s, pwb_audit_report *rep,
				  pwb_diag *diag);

/* ---- data rights ---- */

/*
 * Everything stored about a user as one JSON document (docs/store.md):
 * profile, feedback, decisions, API keys and the audit rows about them.
 * For an erased user, only the tombstone. PWB_ENOTFOUND when the store
 * knows nothing of the user.
 */
pwb_status pwb_store_user_export(pwb_store *s, const char *org,
				 const char *user, char **json, pwb_diag *diag);
/*
 * Erases a user, atomically: settings, consent, model, every feedback row
 * and decision, and their API keys; the user row stays as a tombstone
 * (erased), and "user.erased" is appended to the audit chain. *seq (may
 * be NULL) gets the tombstone's sequence number.
 */
pwb_status pwb_store_user_erase(pwb_store *s, const char *org, const char *user,
				int64_t now, int64_t *seq, pwb_diag *diag);

/* ---- change notices between replicas ---- */

/*
 * Replicas behind a load balancer cache users' settings and models and
 * the policy; when one replica changes them, the others must hear of it.
 * On PostgreSQL every such write sends a notice (NOTIFY on the channel
 * `pwb_changes`, delivered when its transaction commits, never when it
 * rolls back); a listener receives them on a connection of its own. On
 * SQLite a listener is accepted and never reports anything: one process
 * owns the file, and it knows its own writes.
 */
typedef enum pwb_store_change_kind {
	PWB_CHANGE_SETTINGS, /* a user's settings (or consent) changed */
	PWB_CHANGE_MODEL,    /* a user's model changed; see version */
	PWB_CHANGE_ERASED,   /* a user was erased */
	PWB_CHANGE_POLICY,   /* an org's policies were reloaded */
	PWB_CHANGE_RESYNC    /* notices may have been lost (the connection
				was re-made): drop every cached entry */
} pwb_store_change_kind;

typedef struct pwb_store_change {
	pwb_store_change_kind kind;
	const char *org;  /* borrowed until the next wait; NULL for RESYNC */
	const char *user; /* NULL for POLICY and RESYNC */
	int64_t version;  /* the model version for MODEL, else 0 */
} pwb_store_change;

typedef struct pwb_store_listener pwb_store_listener;

pwb_status pwb_store_listen(pwb_store_listener **out, pwb_store *s,
			    pwb_diag *diag);
/*
 * Waits up to timeout_ms for a notice. *got says whether *out was filled.
 * A lost connection is re-made here, and reported as one RESYNC change.
 */
pwb_status pwb_store_listener_wait(pwb_store_listener *l, int timeout_ms,
				   pwb_store_change *out, bool *got,
				   pwb_diag *diag);
void pwb_store_listener_free(pwb_store_listener *l);

/* Tells the other replicas that org's policies were reloaded. */
pwb_status pwb_store_notify_policy(pwb_store *s, const char *org,
				   pwb_diag *diag);

/* The ids of the orgs in the store, for periodic work over every org. */
pwb_status pwb_store_orgs(pwb_store *s, char ***ids, size_t *n, pwb_diag *diag);
void pwb_store_orgs_free(char **ids, size_t n);

#ifdef __cplusplus
}
#endif
#endif
