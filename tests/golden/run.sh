#!/usr/bin/env bash
# Golden tests for `pwb policy resolve` and `pwb policy check`.
#
#   bash run.sh PATH/TO/pwb PATH/TO/tests/golden [CASE...]
#
# Runs every case folder under policy/ and check/ (or only the CASEs named,
# e.g. policy/meet_extends_chain), prints `ok NAME` or `FAIL NAME` and what
# differs, then `N passed, M failed`. Exits 1 when a case failed.
# See README.md for the layout of a case. Needs bash, diff and python3.
set -u

if [ $# -lt 2 ]; then
	echo "usage: bash run.sh PATH/TO/pwb PATH/TO/tests/golden [CASE...]" >&2
	exit 2
fi

# shellcheck source=../lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh" run.sh
pwb=$(pwb_path "$1") || exit 2
golden=$2
shift 2
need_python

# expected.json must be a subset of the actual JSON: every key of an
# expected object is in the actual object with an equal value (objects
# recursively as subsets; arrays, and everything inside them, and scalars
# exactly; true is not 1).
subset_py='
import json, sys

def same(e, a):  # exact equality; numbers by value, true is not 1
    if isinstance(e, bool) or isinstance(a, bool):
        return type(e) is type(a) and e == a
    if isinstance(e, (int, float)) and isinstance(a, (int, float)):
        return e == a
    if isinstance(e, list) and isinstance(a, list):
        return len(e) == len(a) and all(same(x, y) for x, y in zip(e, a))
    if isinstance(e, dict) and isinstance(a, dict):
        return e.keys() == a.keys() and all(same(v, a[k]) for k, v in e.items())
    return type(e) is type(a) and e == a

def walk(e, a, path, out):
    if isinstance(e, dict) and isinstance(a, dict):
        for k, v in e.items():
            p = path + "." + k
            if k not in a:
                out.append("  %s: missing (expected %s)" % (p, json.dumps(v)))
            else:
                walk(v, a[k], p, out)
    elif not same(e, a):
        out.append("  %s:\n  - expected %s\n  + actual   %s"
                   % (path, json.dumps(e, ensure_ascii=False),
                      json.dumps(a, ensure_ascii=False)))

try:
    with open(sys.argv[1], encoding="utf-8") as f:
        exp = json.load(f)
except Exception as err:
    print("  expected.json does not parse: %s" % err)
    sys.exit(1)
try:
    with open(sys.argv[2], encoding="utf-8") as f:
        act = json.load(f)
except Exception as err:
    print("  pwb printed no valid JSON: %s" % err)
    sys.exit(1)
out = []
walk(exp, act, "$", out)
print("\n".join(out))
sys.exit(1 if out else 0)
'

# Each run_* prints why its case failed, or nothing when it passed.

# Exit status, stdout (must be empty) and stderr (exactly as expected).
check_text() { # expected-file want-rc rc stdout stderr
	local exp=$1 want=$2 rc=$3 out=$4 err=$5
	[ "$rc" = "$want" ] || echo "  exit status $rc, expected $want"
	[ -s "$out" ] && { echo "  unexpected stdout:"; head -n 20 "$out" | sed 's/^/  | /'; }
	diff -u --label expected --label actual "$exp" "$err" | sed 's/^/  /'
}

run_policy() { # case-dir
	local dir=$1 args=()
	if [ ! -f "$dir/args" ]; then
		echo "  no args file"
		return
	fi
	read -r -a args <"$dir/args"
	local rc
	(cd "$dir" && exec "$pwb" policy resolve --policies . ${args[@]+"${args[@]}"} --json) \
		>"$tmp/out" 2>"$tmp/err"
	rc=$?
	if [ -f "$dir/expected_error" ]; then
		check_text "$dir/expected_error" 1 "$rc" "$tmp/out" "$tmp/err"
	elif [ -f "$dir/expected.json" ]; then
		[ "$rc" = 0 ] || echo "  exit status $rc, expected 0"
		[ -s "$tmp/err" ] && { echo "  unexpected stderr:"; sed 's/^/  | /' "$tmp/err"; }
		python3 -c "$subset_py" "$dir/expected.json" "$tmp/out"
	else
		echo "  neither expected.json nor expected_error"
	fi
}

# bounds/NAME: `pwb bounds check ARGS --json -` with the text on stdin,
# run from the case folder (ARGS name the policy folder, usually the
# shipped one); expected.json must be a subset of the decision.
run_bounds() { # case-dir
	local dir=$1 args=() rc
	for f in args text expected.json; do
		[ -f "$dir/$f" ] || { echo "  no $f file"; return; }
	done
	read -r -a args <"$dir/args"
	(cd "$dir" && exec "$pwb" bounds check ${args[@]+"${args[@]}"} --json -) \
		<"$dir/text" >"$tmp/out" 2>"$tmp/err"
	rc=$?
	[ "$rc" = 0 ] || echo "  exit status $rc, expected 0"
	[ -s "$tmp/err" ] && { echo "  unexpected stderr:"; sed 's/^/  | /' "$tmp/err"; }
	python3 -c "$subset_py" "$dir/expected.json" "$tmp/out"
}

run_check() { # case-dir
	local dir=$1 rc want=1
	if [ ! -f "$dir/expected" ]; then
		echo "  no expected file"
		return
	fi
	(cd "$dir" && exec "$pwb" policy check .) >"$tmp/out" 2>"$tmp/err"
	rc=$?
	[ -s "$dir/expected" ] || want=0
	check_text "$dir/expected" "$want" "$rc" "$tmp/out" "$tmp/err"
}

cases=()
if [ $# -gt 0 ]; then
	cases=("$@")
else
	for d in "$golden"/policy/*/ "$golden"/check/*/ "$golden"/bounds/*/; do
		[ -d "$d" ] || continue
		d=${d%/}
		cases+=("${d#"$golden"/}")
	done
fi

for name in "${cases[@]}"; do
	dir=$golden/$name
	case $name in
	bounds/*) report=$(run_bounds "$dir") ;;
	*/*) if [ ! -f "$dir/categories.yaml" ]; then
		report="  no categories.yaml in $dir"
	else
		case $name in
		policy/*) report=$(run_policy "$dir") ;;
		check/*) report=$(run_check "$dir") ;;
		*) report="  not under policy/, check/ or bounds/" ;;
		esac
	fi ;;
	esac
	if [ -z "$report" ]; then
		ok "$name"
	else
		fail "$name"
		printf '%s\n' "$report"
	fi
done

finish
