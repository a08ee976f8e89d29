#!/usr/bin/env bash
# `pwb eval bounds` on a small fixture we wrote (tests/fixtures/eval/
# bounds.jsonl, ten texts with metadata keys of every JSON type), with the
# exact numbers it must give for acme-tutor: the binary metrics, the
# per-category ones, and per source with --group-by (a number as a group's
# name, a line without the key as "(none)"), the threshold sweep and its
# SVG; then bad input: a missing
# label list, an empty text, an unknown category, a file of one class.
# It also loads pwb's contrast set (contrast.jsonl).
#
#   bash eval.sh PATH/TO/pwb PATH/TO/policies PATH/TO/fixtures
set -u

if [ $# -ne 3 ]; then
	echo "usage: bash eval.sh PATH/TO/pwb PATH/TO/policies PATH/TO/fixtures" >&2
	exit 2
fi
# shellcheck source=../lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh" eval.sh
pwb=$(pwb_path "$1") || exit 2
pol=$2
fx=$3/eval
need_python
ev=(eval bounds --policies "$pol" --org acme-tutor)

# json_is NAME EXPR: the JSON on stdout makes the python EXPR (over j) true.
json_is() {
	if python3 - "$tmp/out" "$2" <<'PY'; then ok "$1"; else fail "$1" "$(head -c 400 "$tmp/out")"; fi
import json, sys
j = json.load(open(sys.argv[1]))
sys.exit(0 if eval(sys.argv[2]) else 1)
PY
}

# error NAME WORD: exit 1, nothing on stdout, stderr names WORD.
error() {
	if [ "$rc" -ne 1 ] || [ -s "$tmp/out" ] || ! grep -q -- "$2" "$tmp/err"; then
		fail "$1" "exit $rc: $(shown)"
	else
		ok "$1"
	fi
}

run "${ev[@]}" --data "$fx/bounds.jsonl" --group-by source --json
[ "$rc" -eq 0 ] && ok "eval with metadata keys exits 0" || fail "eval with metadata keys exits 0" "$(shown)"
json_is "the binary metrics" \
	'(j["n"], j["n_safe"], j["n_unsafe"], j["blocked_unsafe"], j["blocked_safe"], j["f1"], j["false_block_rate_safe"]) == (10, 6, 4, 3, 1, 0.75, 0.1667)'
json_is "the per-category metrics" \
	'j["categories"]["indiscriminate_weapons"] == {"n": 2, "precision": 1.0, "recall": 1.0, "f1": 1.0} and j["categories"]["hate"]["recall"] == 0.0 and j["categories"]["hate"]["precision"] is None'
json_is "the groups, in the order met" \
	'j["group_by"] == "source" and list(j["groups"]) == ["set-a", "set-b", "7"]'
json_is "set-a: 2 of 3 blocked, none of 2 safe" \
	'(j["groups"]["set-a"]["blocked_unsafe"], j["groups"]["set-a"]["n_unsafe"], j["groups"]["set-a"]["blocked_safe"], j["groups"]["set-a"]["f1"]) == (2, 3, 0, 0.8)'
json_is "set-b: one false block of 3 safe" \
	'(j["groups"]["set-b"]["blocked_safe"], j["groups"]["set-b"]["false_block_rate_safe"], j["groups"]["set-b"]["precision"]) == (1, 0.3333, 0.5)'
json_is "a group without unsafe texts has no recall or F1" \
	'j["groups"]["7"]["block_rate_unsafe"] is None and j["groups"]["7"]["f1"] is None'

# pwb's contrast set (docs/bounds.md, "Context"): it loads with the
# shipped registry, pairs each safe prompt with an unsafe one, and no
# definition, fiction, game or history prompt of it is blocked.
run "${ev[@]}" --data "$fx/contrast.jsonl" --group-by kind --json
json_is "the contrast set: 122 safe beside 122 unsafe, in 11 kinds" \
	'(j["n"], j["n_safe"], j["n_unsafe"], len(j["groups"])) == (244, 122, 122, 11)'
json_is "the contrast set: framed safe prompts are not blocked" \
	'all(j["groups"][k]["blocked_safe"] == 0 for k in ("definition", "fiction_game", "history"))'

run "${ev[@]}" --data "$fx/bounds.jsonl" --group-by group --json
json_is "lines without the key are (none)" \
	'j["groups"]["(none)"]["n"] == 5 and j["groups"]["weapons"]["blocked_unsafe"] == 2'
run "${ev[@]}" --data "$fx/bounds.jsonl"
if [ "$rc" -eq 0 ] && ! grep -q "^by " "$tmp/out"; then ok "no group table without --group-by"; else fail "no group table without --group-by" "$(cat "$tmp/out")"; fi
run "${ev[@]}" --data "$fx/bounds.jsonl" --group-by ""
[ "$rc" -eq 2 ] && ok "--group-by needs a key (usage error)" || fail "--group-by needs a key (usage error)" "exit $rc"

# The threshold sweep: 39 scales; at 1.00 the metrics as set; lower
# scales block more (a0.25: the Python process too), higher fewer.
run "${ev[@]}" --data "$fx/bounds.jsonl" --sweep --svg "$tmp/pr.svg" --json
json_is "the sweep has 39 scales from 0.10 to 2.00" \
	'[p["scale"] for p in j["sweep"]] == [round(0.1 + 0.05 * k, 2) for k in range(39)]'
json_is "at scale 1.00 the sweep gives the metrics as set" \
	'[(p["precision"], p["recall"], p["false_block_rate"], p["f1"]) for p in j["sweep"] if p["scale"] == 1.0] == [(0.75, 0.75, 0.1667, 0.75)]'
json_is "at 0.25 one more safe text is blocked" \
	'[(p["precision"], p["false_block_rate"]) for p in j["sweep"] if p["scale"] == 0.25] == [(0.6, 0.3333)]'
json_is "at 2.00 no safe text is blocked" \
	'[(p["recall"], p["false_block_rate"]) for p in j["sweep"] if p["scale"] == 2.0] == [(0.75, 0.0)]'
if python3 -c '
import sys, xml.etree.ElementTree as ET
r = ET.parse(sys.argv[1]).getroot()
ns = "{http://www.w3.org/2000/svg}"
pts = r.find(ns + "polyline").get("points").split()
sys.exit(0 if len(pts) == 39 and r.find(ns + "circle") is not None else 1)' "$tmp/pr.svg"; then
	ok "--svg writes the curve (39 points, the point as set marked)"
else
	fail "--svg writes the curve (39 points, the point as set marked)" "$(head -c 300 "$tmp/pr.svg")"
fi
run "${ev[@]}" --data "$fx/bounds.jsonl" --svg "$tmp/x.svg"
[ "$rc" -eq 2 ] && ok "--svg without --sweep is a usage error" || fail "--svg without --sweep is a usage error" "exit $rc"
run "${ev[@]}" --data "$fx/bounds.jsonl" --sweep --svg "$tmp/no/such/dir/pr.svg"
if [ "$rc" -eq 1 ] && grep -q "no/such/dir/pr.svg" "$tmp/err"; then ok "an SVG that cannot be written is named"; else fail "an SVG that cannot be written is named" "exit $rc: $(shown)"; fi
run "${ev[@]}" --data "$fx/bounds.jsonl" --sweep
if [ "$rc" -eq 0 ] && grep -q "^  1.00 (as set)" "$tmp/out"; then ok "the sweep as a table"; else fail "the sweep as a table" "$(shown)"; fi

# Bad input: every bad line named, nothing on stdout.
printf '{"text": "a"}\n' >"$tmp/nolabels.jsonl"
run "${ev[@]}" --data "$tmp/nolabels.jsonl"
error "a line without labels" "nolabels.jsonl:1:1: error: 'labels' must be a list"
printf '{"text": "fine", "labels": []}\n{"text": "", "labels": []}\n' >"$tmp/empty.jsonl"
run "${ev[@]}" --data "$tmp/empty.jsonl"
error "an empty text" "empty.jsonl:2:1: error: 'text' is empty"
printf '{"text": "a", "labels": ["hat"]}\n' >"$tmp/unknown.jsonl"
run "${ev[@]}" --data "$tmp/unknown.jsonl"
error "an unknown category, with a hint" "unknown label 'hat' (did you mean 'hate'?)"
# One class only: a documented result, the undefined ratios null.
printf '{"text": "Write a poem about the sea.", "labels": []}\n' >"$tmp/one.jsonl"
run "${ev[@]}" --data "$tmp/one.jsonl" --json
json_is "a file of one class: recall, precision and F1 are null" \
	'j["n_unsafe"] == 0 and j["block_rate_unsafe"] is None and j["f1"] is None and j["false_block_rate_safe"] == 0.0'

finish
