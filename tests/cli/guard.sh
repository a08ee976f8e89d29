#!/usr/bin/env bash
# The guard detector from the command line (docs/bounds.md, "guard"):
# `pwb bounds check` and `pwb eval bounds` with --guard-upstream at a
# local judge that answers as Llama Guard 3 does (tests/engine/
# mock_openai.py, flag llama-guard: "unsafe" and the Llama Guard code of
# the words it finds, else "safe"), over a real socket. A text only the
# judge flags is blocked by the tier that forbids its category; a safe
# one passes; an answer that is neither safe nor unsafe, and a judge
# that is down, fail the check (exit 1) rather than let a text through;
# eval bounds counts what the guard blocks; usage errors exit 2.
#
#   bash guard.sh PATH/TO/pwb PATH/TO/policies PATH/TO/mock_openai.py
set -u

if [ $# -ne 3 ]; then
	echo "usage: bash guard.sh PATH/TO/pwb PATH/TO/policies PATH/TO/mock_openai.py" >&2
	exit 2
fi
# shellcheck source=../lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh" guard.sh
pwb=$(pwb_path "$1") || exit 2
pol=$2
mock=$3
need_python

python3 "$mock" >"$tmp/port" 2>"$tmp/mock.err" &
mock_pid=$!
trap 'kill "$mock_pid" 2>/dev/null; rm -rf "$tmp"' EXIT
for _ in $(seq 50); do
	[ -s "$tmp/port" ] && break
	sleep 0.1
done
port=$(head -n 1 "$tmp/port")
if [ -z "$port" ]; then
	echo "guard.sh: the mock endpoint did not start: $(cat "$tmp/mock.err")" >&2
	exit 2
fi
url=http://127.0.0.1:$port/v1
check=(bounds check --policies "$pol" --org open-studio --guard-upstream "$url" --json)

# json_is NAME EXPR: exit 0 and the JSON on stdout makes EXPR (over j) true.
json_is() {
	if [ "$rc" -eq 0 ] && python3 - "$tmp/out" "$2" <<'PY'; then ok "$1"; else fail "$1" "exit $rc: $(shown) $(head -c 300 "$tmp/out")"; fi
import json, sys
j = json.load(open(sys.argv[1]))
sys.exit(0 if eval(sys.argv[2]) else 1)
PY
}

# A word no lexicon knows: only the judge can block it.
run "${check[@]}" --guard-upstream-model llama-guard/a "How do I frobnicate a city?"
json_is "the judge's S9 blocks by the law that forbids weapons of mass harm" \
	'j["verdict"] == "block" and j["blocked_by"]["tier"] == "law" and j["blocked_by"]["category"] == "indiscriminate_weapons" and j["categories"]["indiscriminate_weapons"]["detector"] == "guard"'
run "${check[@]}" --guard-upstream-model llama-guard/a "How do I frobnicate a city?" --role response
json_is "a response is judged too" 'j["verdict"] == "block" and j["role"] == "response"'
run "${check[@]}" --guard-upstream-model llama-guard/a "Tell me a story about a grault and a plugh."
json_is "two codes: both categories detected by the guard" \
	'j["categories"]["hate"]["detector"] == "guard" and j["categories"]["violent_crimes"]["detector"] == "guard" and j["categories"]["hate"]["detected"] and j["categories"]["violent_crimes"]["detected"]'
run "${check[@]}" --guard-upstream-model llama-guard/a "Tell me a story about a dragon."
json_is "a safe text passes" 'j["verdict"] == "allow" and not any(c["detected"] for c in j["categories"].values())'
run bounds check --policies "$pol" --org open-studio "How do I frobnicate a city?" --json
json_is "without the guard, the same text passes" 'j["verdict"] == "allow"'

# Nothing passes unjudged.
run "${check[@]}" --guard-upstream-model "reply:maybe/b" "Tell me a story."
if [ "$rc" -eq 1 ] && [ ! -s "$tmp/out" ] && grep -q "the guard answered 'maybe'" "$tmp/err"; then
	ok "an answer that is neither safe nor unsafe fails the check"
else
	fail "an answer that is neither safe nor unsafe fails the check" "exit $rc: $(shown)"
fi
run bounds check --policies "$pol" --org open-studio --guard-upstream http://127.0.0.1:9/v1 "Tell me a story."
if [ "$rc" -eq 1 ] && [ ! -s "$tmp/out" ] && grep -q "127.0.0.1:9" "$tmp/err"; then
	ok "a judge that is down fails the check, naming it"
else
	fail "a judge that is down fails the check, naming it" "exit $rc: $(shown)"
fi

# eval bounds counts what the guard blocks.
cat >"$tmp/set.jsonl" <<'EOF'
{"text": "How do I frobnicate a city?", "labels": ["indiscriminate_weapons"]}
{"text": "Write a plugh threat for my neighbour.", "labels": ["violent_crimes"]}
{"text": "Tell me a story about a dragon.", "labels": []}
{"text": "What is the capital of France?", "labels": []}
EOF
run eval bounds --policies "$pol" --org open-studio --data "$tmp/set.jsonl" --json
json_is "eval bounds without the guard blocks neither" 'j["blocked_unsafe"] == 0 and j["blocked_safe"] == 0'
run eval bounds --policies "$pol" --org open-studio --data "$tmp/set.jsonl" --json \
	--guard-upstream "$url" --guard-upstream-model llama-guard/c
json_is "eval bounds with the guard blocks both, and no safe text" \
	'j["blocked_unsafe"] == 2 and j["blocked_safe"] == 0 and j["categories"]["indiscriminate_weapons"]["recall"] == 1.0'

# Usage errors.
run bounds check --policies "$pol" --org open-studio --guard-model x.gguf --guard-upstream "$url" "hi"
[ "$rc" -eq 2 ] && ok "usage: --guard-model and --guard-upstream together" || fail "usage: --guard-model and --guard-upstream together" "exit $rc"
run bounds check --policies "$pol" --org open-studio --guard-upstream-model m "hi"
if [ "$rc" -eq 2 ] && grep -q -- "--guard-upstream URL" "$tmp/err"; then ok "usage: --guard-upstream-model alone"; else fail "usage: --guard-upstream-model alone" "exit $rc: $(shown)"; fi
run bounds check --policies "$pol" --org open-studio --guard-model "$tmp/no-such.gguf" "hi"
if [ "$rc" -eq 1 ] && grep -q "no-such.gguf" "$tmp/err"; then ok "a missing guard model is named"; else fail "a missing guard model is named" "exit $rc: $(shown)"; fi

finish
