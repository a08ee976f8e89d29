#!/usr/bin/env bash
# The source checks themselves: scripts/checksrc.sh passes on this tree, and
# fails on a small tree that breaks each rule (a banned function; a module
# that includes another module's internal header).
set -u
root=$(cd "$(dirname "$0")/../.." && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
ok=0 bad=0
expect() { # expect WANT_RC NAME: runs checksrc on $tmp/t
	PWB_CHECKSRC_ROOT=$tmp/t bash "$root/scripts/checksrc.sh" >"$tmp/out" 2>&1
	local rc=$?
	if [ "$rc" -eq "$1" ]; then
		ok=$((ok + 1))
	else
		bad=$((bad + 1))
		echo "FAIL: $2: exit $rc, expected $1: $(head -3 "$tmp/out")"
	fi
}
fresh() {
	rm -rf "$tmp/t"
	mkdir -p "$tmp/t/src/bounds" "$tmp/t/src/policy" "$tmp/t/include" \
		"$tmp/t/tests" "$tmp/t/bench"
	printf '#include "bounds/bounds_int.h"\n#include "util/util.h"\n#include "pwb/policy.h"\n' \
		>"$tmp/t/src/bounds/a.c"
}

if PWB_CHECKSRC_ROOT=$root bash "$root/scripts/checksrc.sh" >"$tmp/out" 2>&1; then
	ok=$((ok + 1))
else
	bad=$((bad + 1))
	echo "FAIL: this tree: $(cat "$tmp/out")"
fi
fresh
expect 0 "own module, util and public headers"
fresh
printf '#include "policy/policy_int.h"\n' >>"$tmp/t/src/bounds/a.c"
expect 1 "another module's internal header"
grep -q 'src/bounds/a.c:4:#include "policy/policy_int.h"' "$tmp/out" ||
	{ bad=$((bad + 1)); echo "FAIL: the offending line is not named"; }
fresh
printf '#  include "bounds/linear.h"\n' >"$tmp/t/src/policy/b.h"
expect 1 "an internal header of another module, in a header"
fresh
printf 'void f(char *d) { strcpy(d, "x"); }\n' >"$tmp/t/src/policy/c.c"
expect 1 "a banned function"
echo "$ok passed, $bad failed"
[ "$bad" -eq 0 ]
