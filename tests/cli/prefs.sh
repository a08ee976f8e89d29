#!/usr/bin/env bash
# The preference learner from the command line: simulate, evaluate, train,
# explain and reset, and bad input (docs/prefs.md).
#
#   bash prefs.sh PATH/TO/pwb PATH/TO/policies
#
# Good cases check the output (JSON keys, personal above population on
# users who differ, determinism, atomic files). Bad cases check that pwb
# exits with status 1 (2 for usage errors), never with a signal or a hang,
# prints exactly one line on stderr naming the file (and line) at fault,
# says what is wrong, and leaves a model file untouched.
# Prints `ok NAME` or `FAIL NAME: why` per case, then `N passed, M failed`.
set -u

if [ $# -ne 2 ]; then
	echo "usage: bash prefs.sh PATH/TO/pwb PATH/TO/policies" >&2
	exit 2
fi
# shellcheck source=../lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh" prefs.sh
pwb=$(pwb_path "$1") || exit 2
pol=$2
need_python

# expect NAME RC LINES PREFIX WORD: status RC, LINES lines on stderr, each
# starting with PREFIX (when not empty), and WORD (grep -E, any case).
expect() {
	local name=$1 want_rc=$2 want_lines=$3 prefix=$4 word=$5 n line
	if [ "$rc" -eq 124 ]; then
		fail "$name" "timed out"
		return
	fi
	if [ "$rc" -ge 128 ] || grep -q Sanitizer "$tmp/err"; then
		fail "$name" "crashed: $(head -n 2 "$tmp/err" | tr '\n' '|')"
		return
	fi
	if [ "$rc" -ne "$want_rc" ]; then
		fail "$name" "exit $rc, want $want_rc: $(head -n 2 "$tmp/err")"
		return
	fi
	n=$(wc -l <"$tmp/err")
	if [ "$n" -ne "$want_lines" ]; then
		fail "$name" "$n lines on stderr, want $want_lines:" \
			"$(head -n 3 "$tmp/err" | tr '\n' '|')"
		return
	fi
	if [ -n "$prefix" ]; then
		while IFS= read -r line; do
			if [[ $line != "$prefix"* ]]; then
				fail "$name" "'$line' does not start '$prefix'"
				return
			fi
		done <"$tmp/err"
	fi
	if [ -n "$word" ] && ! grep -Eqi -- "$word" "$tmp/err"; then
		fail "$name" "stderr does not say '$word': $(head -n 2 "$tmp/err")"
		return
	fi
	ok "$name"
}

# json_check NAME PYTHON-EXPR: the expression over `d` (stdout as JSON).
json_check() {
	if python3 -c "import json,sys; d=json.load(open(sys.argv[1])); \
sys.exit(0 if ($2) else 1)" "$tmp/out" 2>/dev/null; then
		ok "$1"
	else
		fail "$1" "$(head -c 300 "$tmp/out")"
	fi
}

# ---- simulate, evaluate ----

run simulate prefs --users 40 --events 30 --out "$tmp/sim.jsonl" \
	--settings-dir "$tmp/settings"
expect "simulate" 0 0 "" ""
run simulate prefs --users 40 --events 30
if cmp -s "$tmp/out" "$tmp/sim.jsonl"; then
	ok "simulate is deterministic (file = stdout)"
else
	fail "simulate is deterministic (file = stdout)"
fi
if [ -f "$tmp/settings/u00000.json" ] && ! ls "$tmp"/sim.jsonl.tmp.* \
	>/dev/null 2>&1; then
	ok "simulate writes settings and no temporary file"
else
	fail "simulate writes settings and no temporary file"
fi

run eval prefs --data "$tmp/sim.jsonl" --json
expect "eval prefs --json" 0 0 "" ""
json_check "eval prefs: keys" \
	'd["n_users"] == 40 and d["n_test_pairs"] > 0 and
	 all(len(d["accuracy"][k]["ci95"]) == 2 for k in ("population", "personal"))
	 and sorted(d["learning_curve"], key=int) == ["0","1","2","5","10","20","50"]
	 and "explicit_only" not in d["accuracy"]'
json_check "eval prefs: personal above population" \
	'd["accuracy"]["personal"]["mean"] > d["accuracy"]["population"]["mean"] + 0.05'

run eval prefs --data "$tmp/sim.jsonl" --json --settings-dir "$tmp/settings" \
	--policies "$pol" --org open-studio
expect "eval prefs --settings-dir" 0 0 "" ""
json_check "eval prefs: explicit_only" \
	'd["n_users_with_settings"] == 40 and
	 d["accuracy"]["explicit_only"]["mean"] > 0.5'

run eval prefs --data "$tmp/sim.jsonl"
expect "eval prefs (text)" 0 0 "" ""
if grep -q "learning curve" "$tmp/out"; then ok "eval prefs prints a curve"
else fail "eval prefs prints a curve"; fi

# ---- shrinkage, per-user results, cohorts (tests/fixtures/prefs) ----
#
# two-tastes.jsonl: six users, ten choices each between a short and a
# long answer (the same ten pairs for everyone): ana, cy, dee and eve always
# choose the short one, ben and fay the long one; each rater carries the
# attribute band (terse or wordy). The last 3 of each user's 10 events are
# held out: 18 test pairs, 42 training pairs. The population learns the
# majority's taste, so it orders the 4 short-choosers' test pairs right and
# the 2 long-choosers' wrong: 4/6. Personalised, everyone is right: 2 users
# better, 4 equal, none worse, a gain of 2/6.
fx=$(dirname "${BASH_SOURCE[0]}")/../fixtures/prefs
run eval prefs --data "$fx/two-tastes.jsonl" --json
expect "eval prefs: two tastes" 0 0 "" ""
json_check "two tastes: counts and accuracies" \
	'd["n_events"] == 60 and d["n_users"] == 6 and d["n_test_pairs"] == 18
	 and d["n_train_pairs"] == 42 and d["n_ties_dropped"] == 0
	 and abs(d["accuracy"]["population"]["mean"] - 4/6) < 1e-4
	 and d["accuracy"]["personal"]["mean"] == 1'
json_check "two tastes: per user" \
	'd["per_user"]["wins"] == 2 and d["per_user"]["ties"] == 4
	 and d["per_user"]["losses"] == 0
	 and d["per_user"]["hurt_share"]["mean"] == 0
	 and d["per_user"]["hurt_share"]["ci95"] == [0, 0]
	 and abs(d["per_user"]["gain"]["mean"] - 2/6) < 1e-4
	 and abs(d["per_user"]["win_share"]["mean"] - 2/6) < 1e-4'
json_check "two tastes: shrinkage chosen across users" \
	'd["shrinkage"]["chosen_by"] == "cross-validation"
	 and d["shrinkage"]["k"] == 0 and d["shrinkage"]["cv_users"] == 6
	 and len(d["shrinkage"]["cv_log_likelihood"]) == 19'
json_check "two tastes: curve with the population beside it" \
	'sorted(d["learning_curve_population"], key=int) ==
	 ["0","1","2","5","10","20","50"]
	 and abs(d["learning_curve_population"]["0"]["mean"] - 4/6) < 1e-4
	 and abs(d["learning_curve"]["0"]["mean"] - 4/6) < 1e-4
	 and d["learning_curve"]["5"]["mean"] == 1
	 and d["learning_curve"]["10"] is None'
run eval prefs --data "$fx/two-tastes.jsonl"
if grep -q "^per user, personal against population: 2 better, 4 equal, 0 worse$" \
	"$tmp/out" && grep -q "^  hurt  *0.000  \[0.000, 0.000\]  (6)$" "$tmp/out"
then
	ok "two tastes: per user, as text"
else
	fail "two tastes: per user, as text" "$(head -n 12 "$tmp/out")"
fi
run eval prefs --data "$fx/two-tastes.jsonl" --shrink 1e9 --json
json_check "--shrink: a large k is the population" \
	'd["shrinkage"]["chosen_by"] == "given"
	 and abs(d["accuracy"]["personal"]["mean"] - 4/6) < 1e-4'
# With the band as a cohort, a user without events of their own starts
# from their band's model: right on every pair from the first.
run eval prefs --data "$fx/two-tastes.jsonl" --cohort-attr band --json
expect "eval prefs --cohort-attr" 0 0 "" ""
json_check "cohorts: the band's model from 0 events" \
	'd["cohorts"]["attribute"] == "band" and d["cohorts"]["n_cohorts"] == 2
	 and d["cohorts"]["n_users"] == 6
	 and d["cohorts"]["learning_curve_with_cohort"]["0"]["mean"] == 1
	 and abs(d["cohorts"]["learning_curve_without_cohort"]["0"]["mean"]
		 - 4/6) < 1e-4'
# An attribute the org's learning restrictions forbid is never grouped by
# (open-studio is under California's law, which forbids religion).
run eval prefs --data "$fx/two-tastes.jsonl" --cohort-attr religion \
	--policies "$pol" --org open-studio
expect "--cohort-attr of a forbidden attribute" 1 1 "$pol/law/us-ca.yaml:" \
	"forbid learning from the attribute 'religion'"
run eval prefs --data "$fx/two-tastes.jsonl" --cohort-attr band \
	--policies "$pol" --org open-studio --json
json_check "--cohort-attr of an allowed attribute, with the policy" \
	'd["cohorts"]["n_cohorts"] == 2'
run prefs train --data "$fx/two-tastes.jsonl" --out "$tmp/tastes.pwbp" --json
json_check "prefs train stores the chosen k" \
	'd["shrink_k"] == 0 and d["users"] == 6'

# One user: the numbers are that user's; cross-validation needs two users,
# so the default k stands, and the text says both.
run eval prefs --data "$fx/single-user.jsonl" --json
expect "eval prefs: a single user" 0 0 "" ""
json_check "a single user: their numbers, the default k" \
	'd["n_users"] == 1 and d["n_test_pairs"] == 3
	 and d["accuracy"]["personal"] == {"mean": 1, "ci95": [1, 1], "n": 1}
	 and d["accuracy"]["population"]["mean"] == 1
	 and d["per_user"]["ties"] == 1 and d["shrinkage"]["k"] == 8
	 and d["shrinkage"]["chosen_by"] == "default"
	 and d["shrinkage"]["cv_users"] == 1'
run eval prefs --data "$fx/single-user.jsonl"
if grep -q "^note: one user tested" "$tmp/out" &&
	grep -q "the default: cross-validation needs 2 users" "$tmp/out"; then
	ok "a single user, as text"
else
	fail "a single user, as text" "$(cat "$tmp/out")"
fi
# Nothing to evaluate is an error naming the file, never a silent zero.
run eval prefs --data "$fx/empty.jsonl"
expect "an empty file" 1 1 "$fx/empty.jsonl: error:" "no feedback events"
run eval prefs --data "$fx/one-event.jsonl" --json
expect "a user with one event" 1 1 "$fx/one-event.jsonl: error:" \
	"no user has the 5 events .* \(the most is 1\)"
if [ ! -s "$tmp/out" ]; then ok "nothing on stdout when nothing is tested"
else fail "nothing on stdout when nothing is tested" "$(head -c 200 "$tmp/out")"; fi
run eval prefs --data "$fx/all-ties.jsonl"
expect "all ratings tie" 1 1 "$fx/all-ties.jsonl: error:" \
	"every held-out rating ties .* \(3 ties dropped\)"
run eval prefs --data "$fx/two-tastes.jsonl" --shrink -1
expect "--shrink below 0" 2 2 "" "--shrink"

# ---- train, explain, reset ----

run prefs train --data "$tmp/sim.jsonl" --out "$tmp/m.pwbp"
expect "prefs train" 0 0 "" ""
run prefs train --data "$tmp/sim.jsonl" --out "$tmp/m2.pwbp" --json
json_check "prefs train --json" \
	'd["events"] == 1200 and d["users"] == 40 and d["train_pairs"] > 1000'
if cmp -s "$tmp/m.pwbp" "$tmp/m2.pwbp"; then ok "training is deterministic"
else fail "training is deterministic"; fi
run prefs explain --model "$tmp/m.pwbp" --user u00003
expect "prefs explain" 0 0 "" ""
if grep -q "^u00003: you prefer " "$tmp/out"; then ok "explain in words"
else fail "explain in words" "$(cat "$tmp/out")"; fi
run prefs explain --data "$tmp/sim.jsonl" --user u00003
if [ "$rc" -eq 0 ] && grep -q "you prefer" "$tmp/out"; then
	ok "explain from a feedback file"
else
	fail "explain from a feedback file"
fi
run prefs explain --model "$tmp/m.pwbp" --user u00003 --json
json_check "explain --json" \
	'd["user"] == "u00003" and "verbosity" in d["deviation"] and d["updates"] > 0
	 and 0 < d["weight"] <= 1'
run prefs reset --model "$tmp/m.pwbp" --user u00003
expect "prefs reset" 0 0 "" ""
run prefs explain --model "$tmp/m.pwbp" --user u00003
if grep -q "no learned preferences" "$tmp/out"; then ok "reset forgets"
else fail "reset forgets" "$(cat "$tmp/out")"; fi

# ---- bad input ----

bad() {
	printf '%s\n' "$2" >"$tmp/$1.jsonl"
}
bad rating '{"user": "a", "response": "z", "rating": 9, "scale": [1, 5]}'
run eval prefs --data "$tmp/rating.jsonl"
expect "rating outside its scale" 1 1 "$tmp/rating.jsonl:1:" "outside"
bad empty '{"user": "a", "chosen": "", "rejected": "y"}'
run eval prefs --data "$tmp/empty.jsonl"
expect "empty text" 1 1 "$tmp/empty.jsonl:1:" "empty"
printf '%s\n%s\n' '{"user": "a", "chosen": "x", "rejected": "y", "ts": 1}' \
	'{"user": "a", "chosen": "x", "rejected": "y", "ts": 1}' >"$tmp/dup.jsonl"
run eval prefs --data "$tmp/dup.jsonl"
expect "duplicate event (user, ts, texts)" 1 1 "$tmp/dup.jsonl:2:" "line 1"
printf '%s\n%s\n' '{"id": "e", "user": "a", "chosen": "x", "rejected": "y"}' \
	'{"id": "e", "user": "b", "chosen": "p", "rejected": "q"}' >"$tmp/dupid.jsonl"
run prefs train --data "$tmp/dupid.jsonl" --out "$tmp/never.pwbp"
expect "duplicate event (id)" 1 1 "$tmp/dupid.jsonl:2:" "'id' 'e'"
if [ ! -e "$tmp/never.pwbp" ]; then ok "no model from bad input"
else fail "no model from bad input"; fi
bad json '{"user": "a", "chosen": "x"'
run eval prefs --data "$tmp/json.jsonl"
expect "malformed JSON" 1 1 "$tmp/json.jsonl:1:" ""
run eval prefs --data "$tmp/missing.jsonl"
expect "missing data file" 1 1 "$tmp/missing.jsonl" ""

run prefs explain --model "$tmp/m.pwbp" --user nobody
expect "unknown user" 1 1 "$tmp/m.pwbp: error:" "unknown user 'nobody'"
run prefs reset --model "$tmp/m.pwbp" --user nobody
expect "reset an unknown user" 1 1 "$tmp/m.pwbp: error:" "unknown user"

cp "$tmp/m.pwbp" "$tmp/corrupt.pwbp"
python3 - "$tmp/corrupt.pwbp" <<'PY'
import sys
p = sys.argv[1]
b = bytearray(open(p, "rb").read())
b[len(b) // 2] ^= 0x5a
open(p, "wb").write(b)
PY
cp "$tmp/corrupt.pwbp" "$tmp/corrupt.orig"
run prefs reset --model "$tmp/corrupt.pwbp" --user u00001
expect "corrupt model (reset)" 1 1 "$tmp/corrupt.pwbp: error:" "checksum"
if cmp -s "$tmp/corrupt.pwbp" "$tmp/corrupt.orig"; then
	ok "a refused reset leaves the file as it was"
else
	fail "a refused reset leaves the file as it was"
fi
head -c 40 "$tmp/m.pwbp" >"$tmp/short.pwbp"
run prefs explain --model "$tmp/short.pwbp" --user u00001
expect "truncated model" 1 1 "$tmp/short.pwbp: error:" "truncated"
run prefs explain --model "$tmp/sim.jsonl" --user u00001
expect "not a model" 1 1 "$tmp/sim.jsonl: error:" "not a pwb preference model"

mkdir -p "$tmp/badset"
echo '{"dimensions": {"humour": 7}}' >"$tmp/badset/u00000.json"
run eval prefs --data "$tmp/sim.jsonl" --settings-dir "$tmp/badset" \
	--policies "$pol" --org open-studio
expect "bad user settings" 1 1 "$tmp/badset/u00000.json" "humour"

# ---- usage ----

run eval prefs
expect "eval prefs without --data" 2 2 "" "--data"
run eval prefs --data "$tmp/sim.jsonl" --settings-dir "$tmp/settings"
expect "--settings-dir without --policies" 2 2 "" "--policies"
run eval prefs --data "$tmp/sim.jsonl" --settings "$tmp/settings/u00000.json" \
	--settings-dir "$tmp/settings" --policies "$pol" --org open-studio
expect "--settings in eval prefs" 2 2 "" "--settings-dir"
run simulate prefs --users 0
expect "simulate --users 0" 2 2 "" "--users"
run prefs explain --model "$tmp/m.pwbp"
expect "explain without --user" 2 2 "" "--user"
run prefs reset --user a
expect "reset without --model" 2 2 "" "--model"
for c in "eval prefs" "prefs train" "prefs explain" "prefs reset" \
	"simulate prefs"; do
	# shellcheck disable=SC2086
	run $c --help
	if [ "$rc" -eq 0 ] && grep -q '^Usage: pwb' "$tmp/out"; then
		ok "$c --help"
	else
		fail "$c --help"
	fi
done

finish
