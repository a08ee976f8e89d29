# tests/lib.sh - shared by the shell test runners (sourced, not run).
#
# After `source lib.sh NAME`, a runner has: pwb_path (the pwb executable
# given as its first argument, made absolute and checked), need_python,
# a temporary folder $tmp removed on exit, run and shown (below), ok/fail
# counters, and finish, which prints `N passed, M failed` and exits 1 when
# a case failed.

lib_name=$1

pwb_path() {
	local p=$1
	case $p in /*) ;; *) p=$PWD/$p ;; esac
	if [ ! -x "$p" ]; then
		echo "$lib_name: $p is not an executable" >&2
		exit 2
	fi
	printf '%s\n' "$p"
}

need_python() {
	if ! command -v python3 >/dev/null; then
		echo "$lib_name: python3 is needed to read JSON" >&2
		exit 2
	fi
}

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# run ARGS...: runs $pwb with ARGS under a timeout ($run_timeout seconds,
# default 60) with standard input closed; stdout in $tmp/out, stderr in
# $tmp/err, the exit status in $rc.
run() {
	timeout "${run_timeout:-60}" "$pwb" "$@" </dev/null >"$tmp/out" \
		2>"$tmp/err"
	rc=$?
}

# shown: the first lines of stderr, on one line, for messages.
shown() {
	head -n 3 "$tmp/err" | cut -c 1-240 | tr '\n' '|'
}

# serve_port OUT PID: waits until the `pwb serve` of PID, writing its
# stdout to OUT, says it listens, and prints its port; prints nothing when
# the server exits first. Up to 300 s: a cold PWB_CACHE_DIR compiles the
# lexicons first, slow under the sanitizers on a busy machine.
serve_port() {
	for _ in $(seq 3000); do
		grep -q "listening" "$1" 2>/dev/null && break
		kill -0 "$2" 2>/dev/null || break
		sleep 0.1
	done
	sed -n 's/.*(port \([0-9]*\)).*/\1/p' "$1"
}

# key ORG ROLE [USER]: a new API key in the store $db for the policies
# $pol, printed (`pwb keys create`); errors in $tmp/key.err.
key() {
	local extra=()
	[ $# -ge 3 ] && extra=(--user "$3")
	"$pwb" keys create --db "$db" --org "$1" --role "$2" "${extra[@]}" \
		--policies "$pol" 2>"$tmp/key.err" | tail -n 1
}

# pg_url SCHEMA: a fresh schema SCHEMA on $PWB_TEST_POSTGRES (dropped and
# made again), printed as a URL whose search path is it. Returns 1 (and
# prints nothing) when PWB_TEST_POSTGRES is unset or psql is missing: skip;
# 2 when the server refuses: fail.
pg_url() {
	[ -n "${PWB_TEST_POSTGRES:-}" ] && command -v psql >/dev/null || return 1
	psql -q -X -v ON_ERROR_STOP=1 "$PWB_TEST_POSTGRES" \
		-c "SET client_min_messages = warning" \
		-c "DROP SCHEMA IF EXISTS $1 CASCADE" \
		-c "CREATE SCHEMA $1" >/dev/null || return 2
	local sep='?'
	case $PWB_TEST_POSTGRES in *\?*) sep='&' ;; esac
	printf '%s\n' "$PWB_TEST_POSTGRES${sep}options=-csearch_path%3D$1"
}

passed=0
failed=0
ok() {
	echo "ok $1"
	passed=$((passed + 1))
}
# fail NAME [WHY]: the reason, when given, follows on the same line.
fail() {
	if [ $# -ge 2 ]; then
		echo "FAIL $1: $2"
	else
		echo "FAIL $1"
	fi
	failed=$((failed + 1))
}

finish() {
	echo "$passed passed, $failed failed"
	[ "$failed" -eq 0 ]
	exit
}
