#!/usr/bin/env bash
# Runs the libFuzzer targets for a bounded time, as a smoke test.
#
#   bash run.sh BUILD_DIR [RUNS]
#
# BUILD_DIR is a build made with -DPWB_FUZZ=ON and CC=clang (which also
# instruments the library, so that libFuzzer sees its edges). Each fuzzer
# found there (fuzz_policy, fuzz_cond, fuzz_linear, fuzz_feedback,
# fuzz_prefs_model, fuzz_bounds, fuzz_sse, fuzz_guard, fuzz_chat,
# fuzz_bodies) runs RUNS inputs (default 20000, and at most 60 seconds) starting from a copy of its seed corpus in
# corpus/NAME, with its dictionary NAME.dict where there is one.
# Everything is written under a temporary folder, never into the source
# tree.
#
# Prints one line per fuzzer and exits 1 when any of them crashed, leaked,
# hung or broke an invariant; the reproducer and the log are then kept in a
# folder named on that line. Exits 2 on a usage error or when no fuzzer was
# built.
set -u

if [ $# -lt 1 ] || [ $# -gt 2 ]; then
	echo "usage: bash run.sh BUILD_DIR [RUNS]" >&2
	exit 2
fi
build=$1
runs=${2:-20000}
case $runs in
'' | *[!0-9]*)
	echo "run.sh: RUNS must be a number, not '$runs'" >&2
	exit 2
	;;
esac
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# The one known leak inside libfyaml is suppressed (see tests/lsan.supp).
export LSAN_OPTIONS="${LSAN_OPTIONS:-suppressions=$here/../lsan.supp}"
# fuzz_policy runs with the slow unwinder for allocations: libfyaml is
# built without frame pointers, and the fast one stops inside it, before
# the function the suppression names, so libfyaml's own leak (a scalar
# full of '' escapes, tests/lsan.supp) would fail a run whenever a
# mutation writes one (corpus/policy/leak-quoted-escapes.yaml does).
declare -A asan=([fuzz_policy]=fast_unwind_on_malloc=0)
# fuzz_bounds and fuzz_bodies read the shipped policies from the source tree.
export PWB_SOURCE_DIR="${PWB_SOURCE_DIR:-$(cd "$here/../.." && pwd)}"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/pwb-fuzz-run.XXXXXX") || exit 2
trap 'rm -rf "$tmp"' EXIT

# corpus folder and dictionary of each fuzzer
declare -A corpus=([fuzz_policy]=policy [fuzz_cond]=cond [fuzz_linear]=linear
	[fuzz_feedback]=feedback
	[fuzz_bounds]=bounds [fuzz_prefs_model]=prefs [fuzz_sse]=sse
	[fuzz_guard]=guard [fuzz_chat]=chat [fuzz_bodies]=bodies)
declare -A dict=([fuzz_policy]=policy.dict [fuzz_feedback]=feedback.dict
	[fuzz_sse]=sse.dict [fuzz_guard]=guard.dict [fuzz_chat]=chat.dict
	[fuzz_bodies]=bodies.dict)
# fuzz_cond reads up to 8 KiB; conditions are capped at 4 KiB.
declare -A maxlen=([fuzz_policy]=16384 [fuzz_cond]=8192 [fuzz_linear]=20000
	[fuzz_feedback]=16384
	[fuzz_bounds]=4096 [fuzz_prefs_model]=20000 [fuzz_sse]=4096
	[fuzz_guard]=4096 [fuzz_chat]=16384 [fuzz_bodies]=16384)

found=0
failed=0
for name in fuzz_policy fuzz_cond fuzz_linear fuzz_feedback fuzz_prefs_model fuzz_bounds fuzz_sse \
	fuzz_guard fuzz_chat fuzz_bodies; do
	bin=
	for cand in "$build/tests/$name" "$build/$name"; do
		if [ -x "$cand" ]; then
			bin=$cand
			break
		fi
	done
	if [ -z "$bin" ]; then
		echo "$name: not built (configure with -DPWB_FUZZ=ON, CC=clang)"
		continue
	fi
	found=$((found + 1))
	work=$tmp/$name
	mkdir -p "$work/corpus" "$work/artifacts" "$work/tmp"
	if [ -d "$here/corpus/${corpus[$name]}" ]; then
		cp -R "$here/corpus/${corpus[$name]}/." "$work/corpus/"
	fi
	args=(-runs="$runs" -max_total_time=60 -timeout=10
		-max_len="${maxlen[$name]}" -print_final_stats=1
		-artifact_prefix="$work/artifacts/")
	if [ -n "${dict[$name]:-}" ] && [ -f "$here/${dict[$name]}" ]; then
		args+=(-dict="$here/${dict[$name]}")
	fi
	start=$SECONDS
	# TMPDIR: fuzz_policy makes its policy folder there.
	TMPDIR=$work/tmp \
		ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}${asan[$name]:-}" \
		"$bin" "${args[@]}" "$work/corpus" >"$work/log" 2>&1
	rc=$?
	secs=$((SECONDS - start))
	execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$work/log" |
		tail -n 1)
	cov=$(grep -o 'cov: [0-9]*' "$work/log" | tail -n 1 | cut -d' ' -f2)
	ncorp=$(find "$work/corpus" -type f | wc -l)
	artifacts=$(find "$work/artifacts" -type f | wc -l)
	if [ "$rc" -eq 0 ] && [ "$artifacts" -eq 0 ]; then
		echo "$name: ok, ${execs:-?} runs in ${secs}s, cov ${cov:-?}," \
			"corpus $ncorp"
		continue
	fi
	failed=$((failed + 1))
	keep=$(mktemp -d "${TMPDIR:-/tmp}/pwb-fuzz-$name.XXXXXX")
	cp "$work/log" "$keep/log"
	cp -R "$work/artifacts/." "$keep/" 2>/dev/null
	what=$(grep -m1 -E '^(==[0-9]+== ?ERROR|fuzz_[a-z]+: |ALARM)' \
		"$keep/log" | sed 's/^==[0-9]*== *//')
	echo "$name: FAIL (exit $rc) after ${execs:-?} runs: ${what:-see log};" \
		"reproducer and log in $keep"
done

if [ "$found" -eq 0 ]; then
	echo "run.sh: no fuzzer in $build (configure with -DPWB_FUZZ=ON," \
		"CC=clang)" >&2
	exit 2
fi
[ "$failed" -eq 0 ]
