#!/usr/bin/env bash
# The storage commands end to end: pwb keys, audit verify (and tampering
# with plain SQL through sqlite3 / psql), user export and erase, feedback
# import, store gc, and their bad input (malformed URLs, an unreachable
# server, a schema from a newer pwb, bad lines, usage errors).
#
#   bash store.sh PATH/TO/pwb PATH/TO/policies
#
# Runs every case on SQLite, then on PostgreSQL when PWB_TEST_POSTGRES names
# a server (each case in a fresh schema); then store_trust.sh (which can
# also run alone); prints `ok NAME` or `FAIL NAME: why`, then
# `N passed, M failed`.
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

# shellcheck source=store_lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/store_lib.sh"

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
	run keys create --db "$db" --org open-studio --role admin --policies "$pol"
	expect "a new store" 0 0 ""
	run audit verify --db "$db"
	expect "a new store verifies" 0 0 ""
	out_has "a new store has 1 row" "intact: 1 row, "
	sql "UPDATE meta SET value = '99' WHERE key = 'schema_version'"
	run audit verify --db "$db"
	expect "newer schema refused" 1 1 "schema version 99, newer than this pwb"

	# ---- keys ----
	fresh
	run keys create --db "$db" --org open-studio --role user --user u1 \
		--policies "$pol" --now 100
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
	run keys revoke --db "$db" --org open-studio "$kid" --now 101
	expect "keys revoke" 0 0 ""
	run keys revoke --db "$db" --org open-studio "$kid"
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
	run feedback import --db "$db" --org open-studio --policies "$pol" \
		--now 5000 "$tmp/ok.jsonl"
	expect "import" 0 0 ""
	out_has "import summary" "imported 2500 events into org open-studio in 3 batches; texts: kept"
	run feedback import --db "$db" --org open-studio --now 5000 "$tmp/ok.jsonl"
	expect "import again" 0 0 ""
	out_has "import again skips stored ids" "imported 0 events .*2500 events already stored"
	{
		events 1500 x
		echo '{"user": "u1", "chosen": "a", "rejected": "b", "colour": 1}'
		events 10 y
	} >"$tmp/bad.jsonl"
	run feedback import --db "$db" --org open-studio --batch 1000 "$tmp/bad.jsonl"
	expect "bad line named" 1 1 "bad.jsonl:1501(:[0-9]+)?: error: .*colour"
	out_has "bad line: what was kept" "imported 1000 events .* nothing from line 1001 on was written"
	n=$(sql "SELECT COUNT(*) FROM feedback")
	if [ "$n" = 3500 ]; then
		ok "$backend: the bad line's batch left nothing"
	else
		fail "$backend: the bad line's batch left nothing" "$n rows, want 3500"
	fi
	printf '{"prompt": "p", "chosen": "a", "rejected": "b"}\n' >"$tmp/nouser.jsonl"
	run feedback import --db "$db" --org open-studio "$tmp/nouser.jsonl"
	expect "event without a user" 1 1 "nouser.jsonl:1: error: the event names no \"user\""
	run feedback import --db "$db" --org open-studio "$tmp/missing.jsonl"
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
	n=$(sql "SELECT COUNT(features) FROM feedback WHERE org = 'open-studio'")
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
	run user export --db "$db" --org open-studio --user u1
	expect "export" 0 0 ""
	out_has "export holds the texts" "Chosen answer 1\""
	out_has "export holds rater provenance" '"role": "crowdworker"'
	run user export --db "$db" --org open-studio --user nobody
	expect "export of an unknown user" 1 1 "has no user 'nobody'"
	run user erase --db "$db" --org open-studio --user u1 --now 6000
	expect "erase" 0 0 ""
	out_has "erase names the tombstone" "tombstone at audit row [0-9]+"
	run user export --db "$db" --org open-studio --user u1
	expect "export after erase" 0 0 ""
	out_has "export after erase: the tombstone" '"kind": "user.erased"'
	out_lacks "export after erase: no texts" "answer"
	n=$(sql "SELECT COUNT(*) FROM feedback WHERE org = 'open-studio' AND user_id = 'u1'")
	[ "$n" = 0 ] && ok "$backend: erase removed the feedback" ||
		fail "$backend: erase removed the feedback" "$n rows left"
	printf '{"user": "u1", "chosen": "back", "rejected": "b", "id": "late"}\n' >"$tmp/late.jsonl"
	run feedback import --db "$db" --org open-studio "$tmp/late.jsonl"
	expect "no import for an erased user" 1 1 "late.jsonl:1: error: user 'u1' of org 'open-studio' was erased"
	run audit verify --db "$db"
	expect "chain intact after erase" 0 0 ""

	# ---- retention ----
	fresh
	printf '{"user": "u1", "chosen": "a", "rejected": "b", "ts": %d}\n' \
		100 86400000 172000000 >"$tmp/old.jsonl"
	run feedback import --db "$db" --org open-studio --policies "$pol" \
		--now 172800000 "$tmp/old.jsonl"
	expect "import for gc" 0 0 ""
	run store gc --db "$db" --days 30 --now 172800000
	expect "gc --days" 0 0 ""
	out_has "gc counts what it removed" "org open-studio: removed 2 feedback events older than 30 days"
	run store gc --db "$db" --policies "$pol" --org acme-tutor
	expect "gc for an org with no rows" 0 0 ""
	run store gc --db "$db" --policies "$pol" --org nosuch
	expect "gc for an org the policies lack" 1 "*" "nosuch"

	# ---- kill -9 mid-import: every acknowledged batch is kept ----
	# Into an existing store: a new one is made only after its whole
	# input was checked, and a pipe left open never ends.
	fresh
	"$pwb" keys create --db "$db" --org acme-tutor --role admin \
		--policies "$pol" >/dev/null || fail "$backend: a store for kill -9"
	events 2050 k >"$tmp/k.jsonl"
	rm -f "$tmp/fifo"
	mkfifo "$tmp/fifo"
	"$pwb" feedback import --db "$db" --org open-studio --batch 100 --verbose \
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
	n=$(sql "SELECT COUNT(*) FROM feedback WHERE org = 'open-studio'")
	last=$(sql "SELECT COUNT(*) FROM feedback WHERE org = 'open-studio' AND event_id = 'k1999'")
	if [ "$acked" = 20 ] && [ "$n" = 2000 ] && [ "$last" = 1 ]; then
		ok "$backend: kill -9 mid-import keeps every acknowledged batch"
	else
		fail "$backend: kill -9 mid-import keeps every acknowledged batch" \
			"$acked batches acknowledged, $n rows stored, k1999: $last"
	fi
	run feedback import --db "$db" --org open-studio --batch 100 "$tmp/k.jsonl"
	expect "the import resumes after kill -9" 0 0 ""
	out_has "the resumed import stores only the rest" "imported 50 events .*2000 events already stored"
}

backends suite
finish
