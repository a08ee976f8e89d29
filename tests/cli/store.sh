#!/usr/bin/env bash
# The storage commands end to end: pwb keys, audit verify (and tampering
# with plain SQL through sqlite3 / psql), user export and erase, feedback
# import, store gc, and their bad input (malformed URLs, an unreachable
# server, a schema from a newer pwb, bad lines, usage errors).
#
#   bash store.sh PATH/TO/pwb PATH/TO/policies
#
# Runs every case on SQLite, then on PostgreSQL when PWB_TEST_POSTGRES names
# a server (each case in a fresh schema); prints `ok NAME` or
# `FAIL NAME: why`, then `N passed, M failed`.
set -u

if [ $# -ne 2 ]; then
	echo "usage: bash store.sh PATH/TO/pwb PATH/TO/policies" >&2
	exit 2
fi
# shellcheck source=../lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh" store.sh
pwb=$(pwb_path "$1") || exit 2
pol=$2
need_python

# expect NAME RC LINES WORD: status, lines on stderr, a word in stderr.
expect() {
	local name="$backend: $1" want_rc=$2 want_lines=$3 word=$4
	if [ "$rc" -ge 124 ]; then
		fail "$name" "timed out or crashed (status $rc): $(shown)"
		return 1
	fi
	if [ "$rc" -ne "$want_rc" ]; then
		fail "$name" "exit status $rc, want $want_rc: $(shown)"
		return 1
	fi
	local n
	n=$(wc -l <"$tmp/err")
	if [ "$want_lines" != "*" ] && [ "$n" -ne "$want_lines" ]; then
		fail "$name" "$n lines on stderr, want $want_lines: $(shown)"
		return 1
	fi
	if [ -n "$word" ] && ! grep -Eqi -- "$word" "$tmp/err"; then
		fail "$name" "stderr does not say '$word': $(shown)"
		return 1
	fi
	ok "$name"
}

# out_has NAME PATTERN: stdout matches the grep -E pattern.
out_has() {
	if grep -Eq -- "$2" "$tmp/out"; then
		ok "$backend: $1"
	else
		fail "$backend: $1" "stdout lacks '$2': $(head -c 300 "$tmp/out" | tr '\n' '|')"
	fi
}

out_lacks() {
	if grep -Eq -- "$2" "$tmp/out"; then
		fail "$backend: $1" "stdout has '$2'"
	else
		ok "$backend: $1"
	fi
}

# ---- databases ----

n_db=0
# fresh: sets $db (the URL) to a database nobody has used.
fresh() {
	n_db=$((n_db + 1))
	if [ "$backend" = sqlite ]; then
		db="sqlite:$tmp/db$n_db.sqlite"
		return
	fi
	local schema="pwb_cli_$$_$n_db"
	psql -q -X -v ON_ERROR_STOP=1 "$PWB_TEST_POSTGRES" \
		-c "SET client_min_messages = warning" \
		-c "DROP SCHEMA IF EXISTS $schema CASCADE" \
		-c "CREATE SCHEMA $schema" >/dev/null || exit 2
	local sep='?'
	case $PWB_TEST_POSTGRES in *\?*) sep='&' ;; esac
	db="$PWB_TEST_POSTGRES${sep}options=-csearch_path%3D$schema"
}

# sql STATEMENTS: runs plain SQL on $db, as someone with table access.
sql() {
	if [ "$backend" = sqlite ]; then
		sqlite3 "${db#sqlite:}" "$1"
	else
		psql -q -X -t -A -v ON_ERROR_STOP=1 "$db" -c "$1"
	fi
}

# Drops the append-only guard of the audit table, as a tamperer would.
unguard() {
	if [ "$backend" = sqlite ]; then
		sql "DROP TRIGGER audit_no_update; DROP TRIGGER audit_no_delete"
	else
		sql "DROP TRIGGER audit_no_change ON audit" >/dev/null
	fi
}

# A store with 5 audit rows: 5 keys made.
chained() {
	fresh
	for i in 1 2 3 4 5; do
		"$pwb" keys create --db "$db" --org acme --role service \
			--now $((100 + i)) >/dev/null || fail "$backend: keys create for the chain"
	done
}

events() {
	python3 - "$@" <<'PY'
import json, sys
n = int(sys.argv[1]); prefix = sys.argv[2] if len(sys.argv) > 2 else "e"
for i in range(n):
    if i % 3 == 2:
        ev = {"user": "u%d" % (i % 4), "prompt": "Prompt %d" % i,
              "response": "Rated answer %d" % i, "rating": 4, "scale": [1, 5]}
    else:
        ev = {"user": "u%d" % (i % 4), "prompt": "Prompt %d" % i,
              "chosen": "Chosen answer %d" % i, "rejected": "Other %d" % i}
    ev["ts"] = 1000 + i
    ev["id"] = "%s%d" % (prefix, i)
    if i % 5 == 0:
        ev["rater"] = {"role": "crowdworker", "attributes": {"country": "de"}}
    print(json.dumps(ev))
PY
}

suite() {
	# ---- help and usage ----
	for c in "store gc" "audit verify" "user export" "user erase" \
		"keys create" "keys revoke" "feedback import"; do
		# shellcheck disable=SC2086
		run $c --help
		expect "$c --help" 0 0 ""
	done
	run audit verify
	expect "usage: no --db" 2 2 "--db URL is required"
	run keys create --db sqlite:x --org acme --role root
	expect "usage: unknown role" 2 2 "service, user, auditor or admin"
	run keys create --db sqlite:x --org acme --role user
	expect "usage: user key without --user" 2 2 "needs --user"
	run user erase --db sqlite:x --org acme --user u1 --now soon
	expect "usage: bad --now" 2 2 "unix seconds"
	run store gc --db sqlite:x
	expect "usage: gc needs policies or days" 2 2 "--policies DIR or --days N"
	run feedback import --db sqlite:x --org acme --batch 0 f.jsonl
	expect "usage: bad --batch" 2 2 "--batch"

	# ---- bad URLs and unreachable servers ----
	run audit verify --db mysql://localhost/pwb
	expect "malformed URL: unknown scheme" 1 1 "unknown database URL scheme 'mysql:'"
	run audit verify --db sqlite:
	expect "malformed URL: no path" 1 1 "names no file"
	run audit verify --db "sqlite:$tmp/no/such/dir/x.db"
	expect "unopenable SQLite path" 1 1 "cannot open the database"
	run audit verify --db "postgresql://pwb@127.0.0.1:1/pwb?connect_timeout=2"
	expect "unreachable PostgreSQL" 1 1 "cannot connect to PostgreSQL at 127.0.0.1:1/pwb"
	printf 'just text, not a database; long enough to have a header\n' >"$tmp/text.db"
	run audit verify --db "sqlite:$tmp/text.db"
	expect "a file that is not a database" 1 1 "text.db: error: not a SQLite database"
	if [ -e "$tmp/text.db-wal" ] || ! grep -q '^just text' "$tmp/text.db"; then
		fail "$backend: the text file is left alone"
	else
		ok "$backend: the text file is left alone"
	fi
	run audit verify --db "postgresql://a/b?nosuch=1"
	expect "malformed PostgreSQL URL" 1 1 "malformed PostgreSQL URL"

	# ---- a schema from a newer pwb ----
	fresh
	run audit verify --db "$db"
	expect "a new store verifies" 0 0 ""
	out_has "a new store has 0 rows" "intact: 0 rows"
	sql "UPDATE meta SET value = '99' WHERE key = 'schema_version'"
	run audit verify --db "$db"
	expect "newer schema refused" 1 1 "schema version 99, newer than this pwb"

	# ---- keys ----
	fresh
	run keys create --db "$db" --org acme --role user --user u1 --now 100
	expect "keys create" 0 0 ""
	key=$(tail -n 1 "$tmp/out")
	kid=$(sed -n 's/^key id: //p' "$tmp/out")
	if [[ $key =~ ^pwb_[0-9a-f]{16}_[0-9a-f]{64}$ ]]; then
		ok "$backend: the key is alone on the last line"
	else
		fail "$backend: the key is alone on the last line" "got '$key'"
	fi
	dump=$(sql "SELECT id || ' ' || hash || ' ' || COALESCE(user_id, '') FROM api_keys")
	secret=${key##*_}
	if [[ $dump != *"$secret"* ]] && [[ $dump == *"$kid"* ]]; then
		ok "$backend: only the key's hash is stored"
	else
		fail "$backend: only the key's hash is stored" "$dump"
	fi
	run keys revoke --db "$db" --org acme "$kid" --now 101
	expect "keys revoke" 0 0 ""
	run keys revoke --db "$db" --org acme "$kid"
	expect "keys revoke twice" 1 1 "no active key"
	run audit verify --db "$db"
	expect "key events are audited" 0 0 ""
	out_has "two audit rows" "intact: 2 rows"

	# ---- tampering ----
	chained
	run audit verify --db "$db"
	expect "chain of 5 intact" 0 0 ""
	out_has "chain of 5 counted" "intact: 5 rows, head [0-9a-f]{64}"
	if sql "DELETE FROM audit WHERE seq = 2" >/dev/null 2>&1; then
		fail "$backend: the guard refuses plain deletes"
	else
		ok "$backend: the guard refuses plain deletes"
	fi
	unguard
	sql "UPDATE audit SET ts = 999 WHERE seq = 3"
	run audit verify --db "$db"
	expect "edited row named" 1 1 "audit row 3 does not match its hash"
	run audit verify --db "$db" --json
	out_has "edited row in --json" '"bad_row": 3'

	chained
	unguard
	sql "DELETE FROM audit WHERE seq = 2"
	run audit verify --db "$db"
	expect "deleted row named" 1 1 "audit row 2 is missing"

	chained
	unguard
	sql "DELETE FROM audit WHERE seq = 5"
	run audit verify --db "$db"
	expect "deleted last row named" 1 1 "audit row 5 is missing"

	chained
	unguard
	sql "UPDATE audit SET seq = -seq WHERE seq IN (3, 4); UPDATE audit SET seq = 4 WHERE seq = -3; UPDATE audit SET seq = 3 WHERE seq = -4"
	run audit verify --db "$db"
	expect "reordered rows named" 1 1 "audit row 3 does not link to row 2"

	# ---- import ----
	fresh
	events 2500 >"$tmp/ok.jsonl"
	run feedback import --db "$db" --org acme --now 5000 "$tmp/ok.jsonl"
	expect "import" 0 0 ""
	out_has "import summary" "imported 2500 events into org acme .* in 3 batches; texts: kept"
	run feedback import --db "$db" --org acme --now 5000 "$tmp/ok.jsonl"
	expect "import again" 0 0 ""
	out_has "import again skips stored ids" "imported 0 events .*2500 already stored"
	{
		events 1500 x
		echo '{"user": "u1", "chosen": "a", "rejected": "b", "colour": 1}'
		events 10 y
	} >"$tmp/bad.jsonl"
	run feedback import --db "$db" --org acme --batch 1000 "$tmp/bad.jsonl"
	expect "bad line named" 1 1 "bad.jsonl:1501(:[0-9]+)?: error: .*colour"
	out_has "bad line: what was kept" "imported 1000 events .* nothing from line 1001 on was written"
	n=$(sql "SELECT COUNT(*) FROM feedback")
	if [ "$n" = 3500 ]; then
		ok "$backend: the bad line's batch left nothing"
	else
		fail "$backend: the bad line's batch left nothing" "$n rows, want 3500"
	fi
	printf '{"prompt": "p", "chosen": "a", "rejected": "b"}\n' >"$tmp/nouser.jsonl"
	run feedback import --db "$db" --org acme "$tmp/nouser.jsonl"
	expect "event without a user" 1 1 "nouser.jsonl:1: error: the event names no \"user\""
	run feedback import --db "$db" --org acme "$tmp/missing.jsonl"
	expect "missing file" 1 1 "missing.jsonl"
	events 30 c >"$tmp/c.jsonl"
	run feedback import --db "$db" --org clinic-info --policies "$pol" "$tmp/c.jsonl"
	expect "import under store_texts: false" 0 0 ""
	out_has "features only, with its reason" "texts: not stored \(store_texts: false, org:clinic-info\)"
	n=$(sql "SELECT COUNT(*) || ' ' || COUNT(prompt) || ' ' || COUNT(chosen) || ' ' || COUNT(response) FROM feedback WHERE org = 'clinic-info'")
	if [ "$n" = "30 0 0 0" ]; then
		ok "$backend: no text written where the policy forbids it"
	else
		fail "$backend: no text written where the policy forbids it" "$n"
	fi
	n=$(sql "SELECT COUNT(features) FROM feedback WHERE org = 'clinic-info' AND LENGTH(features) > 100")
	if [ "$n" = "30" ]; then
		ok "$backend: the events keep their features instead"
	else
		fail "$backend: the events keep their features instead" "$n of 30"
	fi
	n=$(sql "SELECT COUNT(features) FROM feedback WHERE org = 'acme'")
	if [ "$n" = "0" ]; then
		ok "$backend: events with their texts carry no features"
	else
		fail "$backend: events with their texts carry no features" "$n"
	fi

	# ---- export and erase ----
	run audit verify --db "$db"
	expect "imports are audited" 0 0 ""
	# 3 batches of the first import, 1 before the bad line, 1 of c.jsonl
	out_has "imports are audited: one row per batch that stored events" "intact: 5 rows"
	run user export --db "$db" --org acme --user u1
	expect "export" 0 0 ""
	out_has "export holds the texts" "Chosen answer 1\""
	out_has "export holds rater provenance" '"role": "crowdworker"'
	run user export --db "$db" --org acme --user nobody
	expect "export of an unknown user" 1 1 "has no user 'nobody'"
	run user erase --db "$db" --org acme --user u1 --now 6000
	expect "erase" 0 0 ""
	out_has "erase names the tombstone" "tombstone at audit row [0-9]+"
	run user export --db "$db" --org acme --user u1
	expect "export after erase" 0 0 ""
	out_has "export after erase: the tombstone" '"kind": "user.erased"'
	out_lacks "export after erase: no texts" "answer"
	n=$(sql "SELECT COUNT(*) FROM feedback WHERE org = 'acme' AND user_id = 'u1'")
	[ "$n" = 0 ] && ok "$backend: erase removed the feedback" ||
		fail "$backend: erase removed the feedback" "$n rows left"
	printf '{"user": "u1", "chosen": "back", "rejected": "b", "id": "late"}\n' >"$tmp/late.jsonl"
	run feedback import --db "$db" --org acme "$tmp/late.jsonl"
	expect "no import for an erased user" 1 1 "late.jsonl:1: error: user 'u1' of org 'acme' was erased"
	run audit verify --db "$db"
	expect "chain intact after erase" 0 0 ""

	# ---- retention ----
	fresh
	printf '{"user": "u1", "chosen": "a", "rejected": "b", "ts": %d}\n' \
		100 86400000 172000000 >"$tmp/old.jsonl"
	run feedback import --db "$db" --org acme --now 172800000 "$tmp/old.jsonl"
	expect "import for gc" 0 0 ""
	run store gc --db "$db" --days 30 --now 172800000
	expect "gc --days" 0 0 ""
	out_has "gc counts what it removed" "org acme: removed 2 feedback events older than 30 days"
	run store gc --db "$db" --policies "$pol" --org acme-tutor
	expect "gc for an org with no rows" 0 0 ""
	run store gc --db "$db" --policies "$pol" --org nosuch
	expect "gc for an org the policies lack" 1 "*" "nosuch"

	# ---- kill -9 mid-import: every acknowledged batch is kept ----
	fresh
	events 2050 k >"$tmp/k.jsonl"
	rm -f "$tmp/fifo"
	mkfifo "$tmp/fifo"
	"$pwb" feedback import --db "$db" --org crash --batch 100 --verbose \
		"$tmp/fifo" >"$tmp/acks" 2>"$tmp/kerr" &
	local pid=$!
	exec 3>"$tmp/fifo"
	cat "$tmp/k.jsonl" >&3
	# The last 50 lines sit in an open transaction while pwb waits for
	# more input; the first 2000 were acknowledged, batch by batch.
	for _ in $(seq 1 200); do
		grep -q '^committed lines 1901-2000$' "$tmp/acks" && break
		sleep 0.05
	done
	kill -9 "$pid"
	wait "$pid" 2>/dev/null
	exec 3>&-
	acked=$(grep -c '^committed lines' "$tmp/acks")
	n=$(sql "SELECT COUNT(*) FROM feedback WHERE org = 'crash'")
	last=$(sql "SELECT COUNT(*) FROM feedback WHERE org = 'crash' AND event_id = 'k1999'")
	if [ "$acked" = 20 ] && [ "$n" = 2000 ] && [ "$last" = 1 ]; then
		ok "$backend: kill -9 mid-import keeps every acknowledged batch"
	else
		fail "$backend: kill -9 mid-import keeps every acknowledged batch" \
			"$acked batches acknowledged, $n rows stored, k1999: $last"
	fi
	run feedback import --db "$db" --org crash --batch 100 "$tmp/k.jsonl"
	expect "the import resumes after kill -9" 0 0 ""
	out_has "the resumed import stores only the rest" "imported 50 events .*2000 already stored"
}

backend=sqlite
suite
if [ -n "${PWB_TEST_POSTGRES:-}" ]; then
	if command -v psql >/dev/null; then
		backend=postgres
		suite
	else
		fail "postgres" "PWB_TEST_POSTGRES is set but psql is missing"
	fi
else
	echo "SKIP postgres: PWB_TEST_POSTGRES is not set (see docs/store.md)"
fi
finish
