# tests/cli/store_lib.sh - what the storage test runners share (sourced
# after ../lib.sh, with $pwb and $pol set): checks of a run's status and
# output, fresh databases on both backends, plain SQL on them, and the
# loop over the backends.
# shellcheck shell=bash disable=SC2154 # $pwb, $tmp, $rc: set by the runner

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
		"$pwb" keys create --db "$db" --org open-studio --role service \
			--policies "$pol" --now $((100 + i)) >/dev/null ||
			fail "$backend: keys create for the chain"
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

# backends FUNCTION: runs FUNCTION with $backend set to sqlite, then to
# postgres when PWB_TEST_POSTGRES names a server.
backends() {
	backend=sqlite
	"$1"
	if [ -n "${PWB_TEST_POSTGRES:-}" ]; then
		if command -v psql >/dev/null; then
			backend=postgres
			"$1"
		else
			fail "postgres" "PWB_TEST_POSTGRES is set but psql is missing"
		fi
	else
		echo "SKIP postgres: PWB_TEST_POSTGRES is not set (see docs/store.md)"
	fi
}
