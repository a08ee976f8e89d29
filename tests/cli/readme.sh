#!/usr/bin/env bash
# The README's first command serves, and its second-terminal commands work
# as written: the serve command (the last part of the first block, after
# the install and build) and the block of curl commands are taken from
# README.md and run in a folder laid out like the repository (build/pwb,
# policies, scripts), with PWB_MODEL naming the test model so nothing is
# downloaded. The one change: the port is a free one, not 8080.
#
#   bash readme.sh PATH/TO/pwb PATH/TO/README.md PATH/TO/model.gguf
#
# Prints `ok NAME` or `FAIL NAME: why` per case, then `N passed, M failed`.
# Exits 1 when a case failed, 77 without the model, 2 on a usage error.
set -u

if [ $# -ne 3 ]; then
	echo "usage: bash readme.sh PATH/TO/pwb PATH/TO/README.md PATH/TO/model.gguf" >&2
	exit 2
fi
# shellcheck source=../lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh" readme.sh
pwb=$(pwb_path "$1") || exit 2
readme=$2
model=$3
need_python
if [ ! -f "$model" ]; then
	echo "readme.sh: skipped: no model at $model (../shared/models/stories260K.gguf)" >&2
	exit 77
fi
for tool in curl jq; do
	command -v "$tool" >/dev/null || { echo "readme.sh: $tool is needed (scripts/install-deps.sh)" >&2; exit 2; }
done
root=$(cd "$(dirname "$readme")" && pwd)

# The fenced sh blocks of the README, in order, each into $tmp/block.N.
python3 - "$readme" "$tmp" <<'PY'
import re, sys
text = open(sys.argv[1], encoding="utf-8").read()
for i, b in enumerate(re.findall(r"^```sh\n(.*?)^```", text, re.S | re.M)):
    open(f"{sys.argv[2]}/block.{i}", "w").write(b)
PY
first=$(cat "$tmp/block.0")
serve=${first##*&& }
case $serve in
"./build/pwb serve "*) ok "the first command ends by serving" ;;
*)
	fail "the first command ends by serving" "its last part is: $serve"
	finish
	;;
esac
case $first in
"bash scripts/install-deps.sh && cmake -B build && cmake --build build -j2 && "*) ok "the first command installs and builds first" ;;
*) fail "the first command installs and builds first" "$first" ;;
esac
if grep -q '^bash scripts/test.sh$' "$tmp/block.1"; then ok "the second command is the test command"; else fail "the second command is the test command" "$(cat "$tmp/block.1")"; fi
if grep -q "pwb keys create" "$tmp/block.2" && grep -q "/v1/chat/completions" "$tmp/block.2" &&
	grep -q "/v1/feedback" "$tmp/block.2"; then
	ok "the next block makes a key, chats and gives feedback"
else
	fail "the next block makes a key, chats and gives feedback" "$(head -c 300 "$tmp/block.2")"
fi

# A folder laid out like the repository, with the real scripts and policies.
work=$tmp/repo
mkdir -p "$work/build"
ln -s "$pwb" "$work/build/pwb"
ln -s "$root/policies" "$work/policies"
ln -s "$root/scripts" "$work/scripts"
cd "$work" || exit 2
export PWB_MODEL=$model
bash -c "$serve --listen 127.0.0.1:0" >"$tmp/serve.out" 2>"$tmp/serve.err" &
spid=$!
trap 'kill "$spid" 2>/dev/null; wait "$spid" 2>/dev/null; rm -rf "$tmp"' EXIT
port=$(serve_port "$tmp/serve.out" "$spid")
if [ -z "$port" ]; then
	fail "the first command serves" "$(tail -n 5 "$tmp/serve.err")"
	finish
fi
ok "the first command serves (port $port)"

# The second terminal's commands, as written but for the port.
sed "s/localhost:8080/127.0.0.1:$port/g" "$tmp/block.2" >"$tmp/second.sh"
bash -e "$tmp/second.sh" >"$tmp/second.out" 2>"$tmp/second.err"
rc=$?
if [ "$rc" = 0 ]; then ok "the second terminal's commands run"; else fail "the second terminal's commands run" "exit $rc: $(tail -n 3 "$tmp/second.err")"; fi
# Their output: the consent, two answers and the decision id, the feedback.
python3 - "$tmp/second.out" "$work/answer.json" >"$tmp/check" 2>&1 <<'PY'
import json, sys
out = open(sys.argv[1], encoding="utf-8").read()
dec = json.JSONDecoder()
docs, i = [], 0
while i < len(out):
    if out[i].isspace():
        i += 1
        continue
    d, i = dec.raw_decode(out, i)
    docs.append(d)
consent, texts, feedback = docs[0], docs[1:-1], docs[-1]
answer = json.load(open(sys.argv[2], encoding="utf-8"))
checks = {
    "ada consents": consent.get("consent", {}).get("learning") is True,
    "two answers and the decision id": len(texts) == 3 and all(isinstance(t, str) and t for t in texts)
        and texts[2] == answer["pwb"]["decision_id"],
    "the answer names its decision and tier facts": answer["object"] == "chat.completion"
        and answer["pwb"]["verdict"] == "allow" and len(answer["choices"]) == 2,
    "the feedback is learnt": feedback.get("pairs_learnt", 0) > 0 and feedback.get("model_version") == 1
        and feedback.get("consent_needed") is False,
}
for name, good in checks.items():
    print(("ok " if good else "FAIL ") + name)
PY
while read -r verdict name; do
	if [ "$verdict" = ok ]; then ok "$name"; else fail "$verdict $name" "$(head -c 400 "$tmp/second.out")"; fi
done <"$tmp/check"

finish
