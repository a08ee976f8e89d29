#!/usr/bin/env bash
# What users trust of the storage commands (docs/store.md): an import run
# twice stores its events once, ids or not; commands that only read open
# the store read-only and never make one; a store is made only once the
# input of the command is checked; every --org is checked (against the
# policies for the commands that add an org's data, against the store for
# the others) with a did-you-mean; and errors name the store, the key id
# and the counts, in the singular where it is one.
#
#   bash store_trust.sh PATH/TO/pwb PATH/TO/policies
#
# Every case runs on SQLite, then on PostgreSQL when PWB_TEST_POSTGRES names
# a server; prints `ok NAME` or `FAIL NAME: why`, then `N passed, M failed`.
set -u

if [ $# -ne 2 ]; then
	echo "usage: bash store_trust.sh PATH/TO/pwb PATH/TO/policies" >&2
	exit 2
fi
# shellcheck source=../lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh" store_trust.sh
pwb=$(pwb_path "$1") || exit 2
pol=$(cd "$2" && pwd) || exit 2
need_python
# shellcheck source=store_lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/store_lib.sh"

# check NAME CONDITION...: ok when the command succeeds, else FAIL (with
# stderr of the last run).
check() {
	local name="$backend: $1"
	shift
	if "$@"; then ok "$name"; else fail "$name" "$(shown)"; fi
}

# err_lacks NAME PATTERN: no stderr line matches the grep -E pattern.
err_lacks() {
	if grep -Eq -- "$2" "$tmp/err"; then
		fail "$backend: $1" "stderr has '$2': $(shown)"
	else
		ok "$backend: $1"
	fi
}

# no_store: nothing was made at $db (no file; no tables in the schema).
no_store() {
	if [ "$backend" = sqlite ]; then
		[ ! -e "${db#sqlite:}" ]
	else
		[ "$(sql "SELECT COUNT(*) FROM pg_tables WHERE schemaname = current_schema()")" = 0 ]
	fi
}

# The store's name in messages: its path, or host:port/database.
store_name() {
	if [ "$backend" = sqlite ]; then
		printf '%s\n' "${db#sqlite:}"
	else
		python3 -c 'import sys, urllib.parse as u
p = u.urlparse(sys.argv[1])
print("%s:%s%s" % (p.hostname or "localhost", p.port or 5432, p.path))' "$db"
	fi
}

# names_store NAME: stderr names the store, and no line is a bare
# "error: ...".
names_store() {
	local want
	want=$(store_name)
	if grep -q '^error:' "$tmp/err" || ! grep -qF -- "$want" "$tmp/err"; then
		fail "$backend: $1" "stderr does not name '$want' on every line: $(shown)"
	else
		ok "$backend: $1"
	fi
}

# piped INPUT ARGS...: pwb ARGS reading INPUT through a pipe (not a
# redirect: a file on standard input can be read twice, a pipe cannot).
piped() {
	# shellcheck disable=SC2002
	cat "$1" | timeout 60 "$pwb" "${@:2}" >"$tmp/out" 2>"$tmp/err"
	rc=${PIPESTATUS[1]}
}

# The events of `pwb simulate prefs` have no "id".
simulated() {
	"$pwb" simulate prefs --users 4 --events 2 --seed 7 --out "$1" ||
		fail "$backend: simulate"
}

trust() {
	# ---- 1. an import run twice stores its events once ----
	fresh
	simulated "$tmp/sim.jsonl"
	run feedback import --db "$db" --org open-studio --policies "$pol" "$tmp/sim.jsonl"
	expect "import of events without ids" 0 0 ""
	out_has "8 events in 1 batch" "^imported 8 events into org open-studio in 1 batch; texts: kept"
	run feedback import --db "$db" --org open-studio --policies "$pol" "$tmp/sim.jsonl"
	expect "the same file again" 0 0 ""
	out_has "the same file again stores nothing and says so" \
		"^imported 0 events into org open-studio; 8 events already stored, skipped: nothing new was written$"
	check "the same file again: 8 rows, not 16" \
		[ "$(sql "SELECT COUNT(*) FROM feedback")" = 8 ]
	check "an event without id gets a content id" \
		[ "$(sql "SELECT COUNT(*) FROM feedback WHERE event_id LIKE 'content:%' AND LENGTH(event_id) = 72")" = 8 ]
	# The same event: user, ts, kind, texts, rating; not its rater. Another
	# time, or another text, is another event.
	{
		echo '{"user": "u9", "prompt": "p", "chosen": "a", "rejected": "b", "ts": 100}'
		echo '{"user": "u9", "prompt": "p", "chosen": "a", "rejected": "b", "ts": 100, "rater": {"role": "expert"}}'
		echo '{"user": "u9", "prompt": "p", "chosen": "a", "rejected": "b", "ts": 101}'
		echo '{"user": "u9", "prompt": "p", "response": "a", "rating": 4, "scale": [1, 5], "ts": 100}'
		echo '{"user": "u9", "prompt": "p", "response": "a", "rating": 5, "scale": [1, 5], "ts": 100}'
		echo '{"user": "u8", "prompt": "p", "chosen": "a", "rejected": "b", "ts": 100}'
	} >"$tmp/same.jsonl"
	run feedback import --db "$db" --org open-studio "$tmp/same.jsonl"
	expect "what makes two events the same" 0 0 ""
	out_has "what makes two events the same: 5 stored, 1 skipped" \
		"^imported 5 events into org open-studio in 1 batch \(1 event already stored, skipped\)"
	echo '{"user": "u7", "chosen": "a", "rejected": "b"}' >"$tmp/one.jsonl"
	run feedback import --db "$db" --org open-studio "$tmp/one.jsonl"
	out_has "one event, in the singular" "^imported 1 event into org open-studio in 1 batch;"
	run feedback import --db "$db" --org open-studio "$tmp/one.jsonl"
	out_has "one event again, in the singular" "; 1 event already stored, skipped"
	# Under store_texts: false the content id still finds the event.
	run feedback import --db "$db" --org clinic-info --policies "$pol" "$tmp/sim.jsonl"
	run feedback import --db "$db" --org clinic-info "$tmp/sim.jsonl"
	out_has "features only: the same file again stores nothing" \
		"^imported 0 events into org clinic-info; 8 events already stored"

	# ---- 2. commands that only read; a store made only after the check ----
	fresh
	for c in "audit verify" "user export --org open-studio --user u1" \
		"user erase --org open-studio --user u1" \
		"keys revoke --org open-studio 0123456789abcdef" \
		"store gc --days 3"; do
		# shellcheck disable=SC2086
		run $c --db "$db"
		expect "$c on no store is an error" 1 1 "no such file|no pwb store"
		names_store "$c on no store names it"
		check "$c on no store makes none" no_store
	done
	if [ "$backend" = sqlite ]; then
		local had_journal=0
		[ -e /dev/null-journal ] && had_journal=1
		run audit verify --db sqlite:/dev/null
		expect "verify of /dev/null is refused" 1 1 "/dev/null: error: .*not a regular file"
		if [ "$had_journal" = 0 ] && [ -e /dev/null-journal ]; then
			fail "$backend: verify of /dev/null makes no /dev/null-journal"
		else
			ok "$backend: verify of /dev/null makes no /dev/null-journal"
		fi
		: >"$tmp/empty.db"
		run audit verify --db "sqlite:$tmp/empty.db"
		expect "an empty file is no store" 1 1 "empty.db: error: no pwb store here: the file is empty"
	fi

	# A new store is made only once the whole input passed.
	{
		head -n 3 "$tmp/sim.jsonl"
		echo '{"user": "u1", "chosen": "a", "rejected": "b", "colour": 1}'
	} >"$tmp/bad4.jsonl"
	run feedback import --db "$db" --org open-studio --policies "$pol" "$tmp/bad4.jsonl"
	expect "a bad line 4 into a new store" 1 1 "bad4.jsonl:4(:[0-9]+)?: error: .*colour"
	out_has "a bad line 4: nothing was written" "nothing was written"
	check "a bad line 4 leaves no new store" no_store
	piped "$tmp/bad4.jsonl" feedback import --db "$db" --org open-studio --policies "$pol" -
	expect "a bad line 4 through a pipe" 1 1 "^-:4(:[0-9]+)?: error: .*colour"
	check "a bad line 4 through a pipe leaves no new store" no_store
	piped "$tmp/sim.jsonl" feedback import --db "$db" --org open-studio --policies "$pol" -
	expect "a good pipe into a new store" 0 0 ""
	out_has "a good pipe into a new store: all of it" "^imported 8 events"

	# Reading a store at rest writes nothing, beside it or in it.
	local before after
	if [ "$backend" = sqlite ]; then
		before=$(cksum <"${db#sqlite:}")
		run audit verify --db "$db"
		expect "verify of a store at rest" 0 0 ""
		run user export --db "$db" --org open-studio --user u00001
		expect "export of a store at rest" 0 0 ""
		after=$(cksum <"${db#sqlite:}")
		check "read-only commands leave no -wal or -shm" \
			test ! -e "${db#sqlite:}-wal" -a ! -e "${db#sqlite:}-shm"
		check "read-only commands change nothing in the file" [ "$before" = "$after" ]
	fi

	# A database that may not be written: said so, and not blamed on the
	# input; reading it still works.
	cp "$tmp/sim.jsonl" "$tmp/big.jsonl"
	if [ "$backend" = sqlite ]; then
		local as=() ro="$tmp/ro"
		mkdir -p "$ro"
		cp "${db#sqlite:}" "$ro/pwb.db"
		chmod 755 "$tmp" "$ro"
		chmod 644 "$tmp/big.jsonl"
		chmod 444 "$ro/pwb.db"
		if [ "$(id -u)" = 0 ] && command -v setpriv >/dev/null; then
			as=(setpriv --reuid=65534 --regid=65534 --clear-groups)
		elif [ "$(id -u)" = 0 ]; then
			echo "SKIP $backend: a read-only database (root, and no setpriv)"
			as=(skip)
		fi
		if [ "${as[0]:-}" != skip ]; then
			timeout 60 "${as[@]}" "$pwb" feedback import --db "sqlite:$ro/pwb.db" \
				--org open-studio --policies "$pol" "$tmp/big.jsonl" \
				</dev/null >"$tmp/out" 2>"$tmp/err"
			rc=$?
			expect "import into a read-only database" 1 1 "pwb.db: error: .*read-only"
			err_lacks "a read-only database is not blamed on the input" "big.jsonl"
			timeout 60 "${as[@]}" "$pwb" audit verify --db "sqlite:$ro/pwb.db" \
				</dev/null >"$tmp/out" 2>"$tmp/err"
			rc=$?
			expect "verify of a read-only database" 0 0 ""
			check "verify of a read-only database leaves nothing beside it" \
				[ "$(ls "$ro")" = pwb.db ]
		fi
		chmod 700 "$tmp"
	else
		local rodb="$db&options=-csearch_path%3D${db##*%3D}%20-cdefault_transaction_read_only%3Don"
		run feedback import --db "$rodb" --org open-studio --policies "$pol" "$tmp/big.jsonl"
		expect "import into a read-only database" 1 1 "accepts no writes"
		err_lacks "a read-only database is not blamed on the input" "big.jsonl"
		run audit verify --db "$rodb"
		expect "verify of a read-only database" 0 0 ""
	fi

	# ---- 3. every --org is checked ----
	fresh
	run keys create --db "$db" --org clinic-infoo --role service --policies "$pol"
	expect "keys create for an org the policies lack" 1 1 "unknown org 'clinic-infoo' \(did you mean 'clinic-info'\?\)"
	check "keys create for an unknown org makes no store" no_store
	run keys create --db "$db" --org clinic-info --role service
	expect "keys create into a new store needs --policies" 2 2 "--policies DIR is required"
	check "keys create without --policies makes no store" no_store
	run keys create --db "$db" --org clinic-info --role service --policies "$pol"
	expect "keys create with --policies" 0 0 ""
	kid=$(sed -n 's/^key id: //p' "$tmp/out")
	key=$(tail -n 1 "$tmp/out")
	run keys create --db "$db" --org clinic-infoo --role service
	expect "keys create: the recorded policies check the org" 1 "*" "did you mean 'clinic-info'"
	run keys create --db "$db" --org acme-tutor --role admin
	expect "keys create: the recorded policies know the org" 0 0 ""
	run feedback import --db "$db" --org acme-tuttor "$tmp/sim.jsonl"
	expect "import for an org the policies lack" 1 "*" "unknown org 'acme-tuttor' \(did you mean 'acme-tutor'\?\)"
	check "import for an unknown org stores nothing" [ "$(sql "SELECT COUNT(*) FROM feedback")" = 0 ]
	run feedback import --db "$db" --org clinic-info "$tmp/sim.jsonl"
	expect "import with the recorded policies" 0 0 ""
	out_has "import with the recorded policies keeps their store_texts" \
		"texts: not stored \(store_texts: false, org:clinic-info\)"
	for c in "store gc --days 3" "user export --user u00001" \
		"user erase --user u00001" "keys revoke $kid"; do
		# shellcheck disable=SC2086
		run $c --db "$db" --org clinic-infoo
		expect "${c%% --*} for an org the store lacks" 1 1 "holds no org 'clinic-infoo' \(did you mean 'clinic-info'\?\)"
		names_store "${c%% --*} for an org the store lacks names the store"
	done
	run store gc --db "$db" --days 3 --org nosuch
	expect "gc for an org the store lacks" 1 1 "holds no org 'nosuch'; it holds 'acme-tutor', 'clinic-info'"
	out_lacks "gc for an org the store lacks removes nothing" "removed"
	check "erase for a misspelt org erased nothing" \
		[ "$(sql "SELECT COUNT(*) FROM users WHERE erased = 1")" = 0 ]
	sql "DELETE FROM meta WHERE key = 'policies'"
	run feedback import --db "$db" --org clinic-info "$tmp/sim.jsonl"
	expect "a store that records no policies needs --policies" 2 2 "--policies DIR is required: the store .* records no policy folder"

	# ---- 4. smaller ----
	run keys revoke --db "$db" --org clinic-info "$key"
	expect "keys revoke given the whole key" 2 2 "looks like a whole key, not its id.*\(here $kid\)"
	err_lacks "keys revoke given the whole key does not repeat its secret" "${key##*_}"
	check "keys revoke given the whole key revokes nothing" \
		[ "$(sql "SELECT COUNT(*) FROM api_keys WHERE revoked IS NOT NULL")" = 0 ]
	run keys revoke --db "$db" --org clinic-info 0123456789abcdef
	expect "keys revoke of an unknown id" 1 1 "no active key '0123456789abcdef'"
	names_store "keys revoke of an unknown id names the store"
	run user export --db "$db" --org clinic-info --user nobody
	expect "export of an unknown user" 1 1 "has no user 'nobody'"
	names_store "export of an unknown user names the store"
	run user erase --db "$db" --org clinic-info --user nobody
	expect "erase of an unknown user" 1 1 "has no user 'nobody'"
	names_store "erase of an unknown user names the store"

	run audit verify --db "$db"
	out_has "verify: 3 rows, in the plural" "^audit chain intact: 3 rows, "
	local head1
	head1=$(sql "SELECT hash FROM audit WHERE seq = 1")
	unguard
	sql "UPDATE audit SET ts = 999 WHERE seq = 2"
	run audit verify --db "$db" --json
	expect "verify --json of a tampered store" 1 1 "audit row 2 does not match its hash"
	names_store "verify of a tampered store names it"
	python3 - "$tmp/out" "$head1" >"$tmp/why" <<'PY'
import json, sys
j = json.load(open(sys.argv[1]))
bad = []
if j["ok"] is not False or j["bad_row"] != 2 or j["rows"] != 1:
    bad.append("ok/bad_row/rows: %r" % j)
if j["head"] != sys.argv[2]:
    bad.append("head %r, want row 1's hash %s" % (j["head"], sys.argv[2]))
if not j["error"].startswith("audit row 2 does not match"):
    bad.append("error %r" % j["error"])
if bad:
    print("; ".join(bad))
PY
	check "verify --json: the head is the last good row's, the error plain" [ ! -s "$tmp/why" ]
	[ -s "$tmp/why" ] && cat "$tmp/why"
	sql "UPDATE audit SET ts = 999 WHERE seq = 1"
	run audit verify --db "$db" --json
	check "verify --json with no good row: no head" \
		python3 -c 'import json, sys; j = json.load(open(sys.argv[1])); sys.exit(j["head"] is not None or j["rows"] != 0)' "$tmp/out"

	fresh
	echo '{"user": "u1", "chosen": "a", "rejected": "b", "ts": 100}' >"$tmp/old.jsonl"
	run feedback import --db "$db" --org open-studio --policies "$pol" --now 200000 "$tmp/old.jsonl"
	run store gc --db "$db" --days 1 --now 200000
	expect "gc of one event" 0 0 ""
	out_has "gc of one event, in the singular" "^org open-studio: removed 1 feedback event older than 1 day$"
	run audit verify --db "$db"
	out_has "verify of one row, in the singular" "^audit chain intact: 1 row, "
}

backends trust
finish
