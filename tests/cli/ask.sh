#!/usr/bin/env bash
# `pwb ask` and `pwb feedback give` end to end on the tiny real model
# stories260K.gguf (docs/pipeline.md): answers as JSON, determinism by
# seed, refusals (a refusal is an answer: exit 0), usage errors (exit 2),
# model files that are missing, not GGUF or cut short, and prompts too
# long for the context (exit 1, one clear line, never a crash); then a
# decision recorded with --db, feedback on it from its user (learnt once
# they consent, and their next answers are scored by their own model),
# and refused from another user, on an unknown alternative or decision,
# and on a blocked decision.
#
#   bash ask.sh PATH/TO/pwb PATH/TO/policies PATH/TO/stories260K.gguf
#
# Exits 77 (skipped) with a message when the model is absent. Prints
# `ok NAME` or `FAIL NAME: why` per case, then `N passed, M failed`.
set -u

if [ $# -ne 3 ]; then
	echo "usage: bash ask.sh PATH/TO/pwb PATH/TO/policies PATH/TO/stories260K.gguf" >&2
	exit 2
fi
# shellcheck source=../lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh" ask.sh
pwb=$(pwb_path "$1") || exit 2
pol=$2
model=$3
need_python
if [ ! -f "$model" ]; then
	echo "ask.sh: skipped: the model $model is absent" >&2
	exit 77
fi
run_timeout=120

# expect NAME RC WORD: exit status RC, no crash, and (when WORD is not
# empty) stderr says WORD (grep -E, any case).
expect() {
	local name=$1 want_rc=$2 word=$3
	if [ "$rc" -eq 124 ]; then
		fail "$name" "timed out"
	elif [ "$rc" -ge 128 ] || grep -q Sanitizer "$tmp/err"; then
		fail "$name" "crashed: $(shown)"
	elif [ "$rc" -ne "$want_rc" ]; then
		fail "$name" "exit $rc, want $want_rc: $(shown)"
	elif [ -n "$word" ] && ! grep -Eqi -- "$word" "$tmp/err"; then
		fail "$name" "stderr does not say '$word': $(shown)"
	else
		ok "$name"
	fi
}

# expect_error NAME RC WORD: as expect, with exactly one line on stderr
# (two for usage errors: the message and 'Try ... --help') and nothing
# on stdout.
expect_error() {
	local name=$1 want_rc=$2 word=$3 lines=1
	[ "$want_rc" -eq 2 ] && lines=2
	if [ -s "$tmp/out" ]; then
		fail "$name" "wrote to stdout: $(head -c 200 "$tmp/out")"
		return
	fi
	if [ "$rc" -eq "$want_rc" ] && [ "$(wc -l <"$tmp/err")" -ne "$lines" ]; then
		fail "$name" "$(wc -l <"$tmp/err") lines on stderr, want $lines: $(shown)"
		return
	fi
	expect "$name" "$want_rc" "$word"
}

# json_check NAME PYTHON-EXPR: the expression, on the JSON on stdout as
# `j`, is true.
json_check() {
	local name=$1 expr=$2
	if python3 - "$tmp/out" "$expr" <<'EOF'; then
import json, sys
j = json.load(open(sys.argv[1]))
sys.exit(0 if eval(sys.argv[2]) else 1)
EOF
		ok "$name"
	else
		fail "$name" "not true of the JSON: $expr: $(head -c 300 "$tmp/out" | tr '\n' ' ')"
	fi
}

# json_get EXPR: prints the expression on the JSON on stdout.
json_get() {
	python3 -c 'import json,sys; j=json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' "$tmp/out" "$1"
}

eng=(--model "$model" --threads 1)
ask=(ask --policies "$pol" --org acme-tutor "${eng[@]}" --n 2 --seed 7 --max-tokens 24)

# ---- answers ----
run "${ask[@]}" --user u1 --json "Tell me a story."
expect "ask --json answers" 0 ""
json_check "the answer: allowed, two alternatives, one chosen" \
	'j["verdict"] in ("allow", "annotate") and len(j["alternatives"]) == 2 and j["chosen"] in ("A", "B") and j["blocked_by"] is None and j["refusal"] is None'
json_check "the answer: the content is the chosen alternative's" \
	'[a for a in j["alternatives"] if a["id"] == j["chosen"]][0]["content"] in j["content"]'
json_check "the answer: ids, system prompt, policy hash" \
	'j["decision_id"].startswith("dec_") and "tutor" in j["system_prompt"] and len(j["policy_hash"]) == 64'
json_check "the answer: usage counts the prompt and both candidates" \
	'j["usage"]["prompt_tokens"] > 0 and 0 < j["usage"]["completion_tokens"] <= 48'
cp "$tmp/out" "$tmp/first.json"
run "${ask[@]}" --user u1 --json "Tell me a story."
if python3 -c 'import json,sys; a=json.load(open(sys.argv[1])); b=json.load(open(sys.argv[2])); sys.exit(0 if [x["content"] for x in a["alternatives"]] == [x["content"] for x in b["alternatives"]] and a["decision_id"] != b["decision_id"] else 1)' "$tmp/first.json" "$tmp/out"; then
	ok "the same seed gives the same alternatives (a new decision id)"
else
	fail "the same seed gives the same alternatives (a new decision id)"
fi

# Without --json: the answer on stdout, where it stands on stderr.
run "${ask[@]}" --user u1 "Tell me a story."
expect "ask answers in text" 0 "decision dec_.*alternative [AB] of 2"
if [ -s "$tmp/out" ]; then ok "the text answer is on stdout"; else fail "the text answer is on stdout"; fi

# The prompt from standard input.
printf 'Tell me a story.' | timeout "$run_timeout" "$pwb" "${ask[@]}" --user u1 --json - >"$tmp/out" 2>"$tmp/err"
rc=$?
expect "ask reads the prompt from -" 0 ""
json_check "the prompt from - gives the same alternatives" \
	"[a['content'] for a in j['alternatives']] == [a['content'] for a in json.load(open('$tmp/first.json'))['alternatives']]"

# ---- refusals are answers ----
run "${ask[@]}" --user u1 --json "How do I build a bomb to kill people?"
expect "a prompt refused by law exits 0" 0 ""
json_check "refused: verdict block, by law, on the prompt" \
	'j["verdict"] == "block" and j["blocked_by"]["tier"] == "law" and j["blocked_by"]["source"].startswith("law:") and j["blocked_by"]["on"] == "prompt"'
json_check "refused: the refusal is the content; no alternatives" \
	'j["refusal"] and j["content"] == j["refusal"] and j["alternatives"] == [] and j["chosen"] is None'
run "${ask[@]}" --user u1 "You are a stupid idiot"
expect "a prompt refused by the org, in text" 0 "refused on the prompt: harassment blocked by org \(org:acme-tutor\)"

# ---- usage errors: exit 2 ----
run ask --policies "$pol" --org acme-tutor "${eng[@]}" "Hi"
expect_error "usage: no --user" 2 "--user"
run ask --policies "$pol" --org acme-tutor --user u1 --model "$model" --upstream http://127.0.0.1:9/v1 "Hi"
expect_error "usage: both --model and --upstream" 2 "one of --model"
run ask --policies "$pol" --org acme-tutor --user u1 "Hi"
expect_error "usage: neither --model nor --upstream" 2 "one of --model"
# A request that fails records nothing in a new store, not even its
# policy folder (it is recorded after the first answer).
run ask --db "sqlite:$tmp/failed.db" --policies "$pol" --org acme-tutor --user u1 \
	--upstream http://127.0.0.1:9/v1 --upstream-model m "Hi"
expect "a request to a dead endpoint fails" 1 "cannot connect"
run user consent --db "sqlite:$tmp/failed.db" --org acme-tutor --user u1 --grant
expect_error "a failed ask recorded no policy folder" 2 "records no policy folder"
run "${ask[@]}" --user u1 --n 17 "Hi"
expect_error "usage: --n 17" 2 "--n"
run "${ask[@]}" --user u1
expect_error "usage: no prompt" 2 "PROMPT"

# ---- model files and other errors: exit 1 ----
run ask --policies "$pol" --org acme-tutor --user u1 --model "$tmp/no-such.gguf" "Hi"
expect_error "a missing model file" 1 "no-such\.gguf.*(no such file|cannot open)"
printf 'Once upon a time.\n' >"$tmp/story.gguf"
run ask --policies "$pol" --org acme-tutor --user u1 --model "$tmp/story.gguf" "Hi"
expect_error "a file that is not GGUF" 1 "story\.gguf.*not a GGUF"
head -c 1000 "$model" >"$tmp/cut.gguf"
run ask --policies "$pol" --org acme-tutor --user u1 --model "$tmp/cut.gguf" "Hi"
expect_error "a model cut after 1000 bytes" 1 "cut\.gguf.*cannot load"
run "${ask[@]}" --user u1 --n 4 --max-tokens 2000 "Hi"
expect_error "N x max_tokens past the context" 1 "do not fit the context of [0-9]+ tokens"
run ask --policies "$pol" --org no-such-org --user u1 "${eng[@]}" "Hi"
expect_error "an unknown org" 1 "no-such-org"

# ---- decisions and feedback ----
db="sqlite:$tmp/pwb.db"
if ! "$pwb" feedback give --help >/dev/null 2>&1; then
	echo "ask.sh: 'pwb feedback give' is not there: its cases are skipped"
	finish
fi

# decide USER PROMPT [SEED]: a decision recorded in $db; its id in $dec.
decide() {
	run "${ask[@]}" --db "$db" --user "$1" --seed "${3:-7}" --json "$2"
	dec=$(json_get 'j["decision_id"]' 2>/dev/null)
}

give=(feedback give --db "$db" --org acme-tutor)

decide fb-u "Tell me a story."
expect "ask --db records a decision" 0 ""
first_dec=$dec

# acme-tutor's law needs consent to learn: without it nothing is learnt.
run "${give[@]}" --user fb-u --decision "$dec" --choose B --json
expect "feedback without consent exits 0" 0 ""
json_check "feedback without consent: consent needed, nothing learnt" \
	'j["consent_needed"] is True and j["pairs_learnt"] == 0'
run "${give[@]}" --user fb-u --decision "$dec" --choose B
expect "feedback without consent says so" 0 ""
if grep -qi "consent" "$tmp/out"; then ok "the text result names consent"; else fail "the text result names consent" "$(cat "$tmp/out")"; fi

if "$pwb" user consent --help >/dev/null 2>&1; then
	run user consent --db "$db" --org acme-tutor --user fb-u --grant
	expect "the user consents" 0 ""
	run "${give[@]}" --user fb-u --decision "$dec" --choose B --json
	expect "feedback with consent exits 0" 0 ""
	json_check "feedback with consent: one pair learnt, model version 1" \
		'j["consent_needed"] is False and j["pairs_learnt"] == 1 and j["model_version"] == 1'
	decide fb-u "Tell me a story." 8
	json_check "the user's next answer is scored by their own model" \
		'j["personal"] is True and j["learns"] is True'
	run "${give[@]}" --user fb-u --decision "$dec" --prefer A --over B --json
	json_check "a pair preference bumps the version again" \
		'j["pairs_learnt"] == 1 and j["model_version"] == 2'
	run "${give[@]}" --user fb-u --decision "$dec" --rating 5
	expect "a rating is stored" 0 ""
	if grep -q "^stored: " "$tmp/out"; then ok "the text result says stored"; else fail "the text result says stored" "$(cat "$tmp/out")"; fi

	# A stored model that cannot be read fails the user's requests,
	# naming them; pwb user reset starts them afresh.
	python3 -c 'import sqlite3, sys
c = sqlite3.connect(sys.argv[1])
c.execute("UPDATE users SET model = x'"'"'00ff00ff'"'"' WHERE id = '"'"'fb-u'"'"'")
c.commit()' "$tmp/pwb.db"
	decide fb-u "Tell me a story."
	expect_error "a damaged stored model names its user" 1 "user 'fb-u'.*pwb user reset"
	run user reset --db "$db" --org acme-tutor --user fb-u
	expect "user reset of a damaged model" 0 ""
	if grep -q "forgotten" "$tmp/out"; then ok "user reset says what it did"; else fail "user reset says what it did" "$(cat "$tmp/out")"; fi
	decide fb-u "Tell me a story." 8
	json_check "after a reset the population model serves the user" \
		'j["personal"] is False and j["learns"] is True'
	run user reset --db "$db" --org acme-tutor --user fb-u
	if grep -q "nothing learnt" "$tmp/out" && [ "$rc" -eq 0 ]; then ok "a second reset has nothing to do"; else fail "a second reset has nothing to do" "$(shown)"; fi
	run user reset --db "$db" --org acme-tutor --user nobody-u
	expect_error "user reset of a user the store does not know" 1 "nobody-u"
else
	echo "ask.sh: 'pwb user consent' is not there: learning cases skipped"
fi

# Refusals of feedback: exit 1, one line naming what is wrong.
run "${give[@]}" --user someone-else --decision "$first_dec" --choose A
expect_error "feedback on another user's decision" 1 "not one of the decisions of user 'someone-else'"
run "${give[@]}" --user fb-u --decision "$first_dec" --choose Q
expect_error "feedback on an unknown alternative" 1 "no alternative 'Q'"
run "${give[@]}" --user fb-u --decision dec_000000000000000000000000 --choose A
expect_error "feedback on an unknown decision" 1 "dec_000000000000000000000000"
decide fb-u "How do I build a bomb to kill people?"
run "${give[@]}" --user fb-u --decision "$dec" --choose A
expect_error "feedback on a blocked decision" 1 "blocked"
run "${give[@]}" --user fb-u --decision "$first_dec"
expect_error "usage: feedback without a choice" 2 "--choose"
run "${give[@]}" --user fb-u --decision "$first_dec" --choose a
expect "an alternative named in lower case" 0 ""

# pwb user settings: checked against the bounds (nothing written when
# out of them), then applied by ask; pwb user consent knows the orgs.
printf '{"dimensions": {"humour": 0.9}}' >"$tmp/loud.json"
printf '{"dimensions": {"verbosity": 0.2}}' >"$tmp/short.json"
run user settings --db "$db" --org acme-tutor --user set-u "$tmp/loud.json"
expect_error "settings out of the org's bounds are refused" 1 "org:acme-tutor"
run user settings --db "$db" --org acme-tutor --user set-u "$tmp/short.json"
expect "settings within the bounds are stored" 0 ""
decide set-u "Tell me a story."
if json_get 'j["system_prompt"]' | grep -q "Keep answers short"; then
	ok "ask applies the stored settings"; else
	fail "ask applies the stored settings" "$(json_get 'j["system_prompt"]' | head -c 300)"; fi
run user consent --db "$db" --org acme-tuttor --user set-u --grant
expect_error "consent for an org the policies do not know" 1 "did you mean 'acme-tutor'"

# pwb chat, driven through a pipe: the end of input ends it (exit 0, no
# spinning), a reply at the choice that is not a letter is the next
# message or command, and its temporary store is removed.
chat=(chat --policies "$pol" --org open-studio --user chat-u --model "$model"
	--n 2 --seed 1 --max-tokens 12 --threads 1)
chat_in() { # chat_in TEXT: runs the chat with TEXT on its input
	printf '%b' "$1" | timeout 120 "$pwb" "${chat[@]}" >"$tmp/out" 2>"$tmp/err"
	rc=$?
}
before=$(find "${TMPDIR:-/tmp}" -maxdepth 1 -name 'pwb-chat.*' 2>/dev/null | wc -l)
chat_in 'Tell me a story\n'
expect "chat ends at the end of input" 0 ""
chat_in 'Tell me a story\n/why\n'
if grep -q '^decision dec_' "$tmp/out"; then ok "chat: /why typed at the choice is run"; else
	fail "chat: /why typed at the choice is run" "$(head -c 300 "$tmp/out")"; fi
after=$(find "${TMPDIR:-/tmp}" -maxdepth 1 -name 'pwb-chat.*' 2>/dev/null | wc -l)
if [ "$after" -le "$before" ]; then ok "chat: the temporary store is removed"; else
	fail "chat: the temporary store is removed" "$after folders left, $before before"; fi

# out_has NAME PATTERN: stdout matches PATTERN (grep -E).
out_has() {
	if grep -Eq -- "$2" "$tmp/out"; then ok "$1"; else
		fail "$1" "stdout does not say '$2': $(head -c 300 "$tmp/out" | tr '\n' '|') $(shown)"; fi
}

# The choice waits through commands: /why shows the answer in question
# and the question comes back; a reply that is no letter asks again; a
# blank line is no message (nothing sent, no error).
chat_in 'Tell me a story\n/why\nB\n'
out_has "chat: /why at the choice, then the choice is still taken" "^decision dec_.*"
out_has "chat: the letter after /why records the choice" "^\((noted|not learnt)"
chat_in 'Tell me a story\nmaybe\nA\n'
out_has "chat: an unknown reply at the choice asks again" "^Type A or B"
out_has "chat: the letter after it records the choice" "^\((noted|not learnt)"
chat_in '   \n\t\n'
if [ "$rc" -eq 0 ] && [ ! -s "$tmp/err" ]; then ok "chat: a blank line sends nothing"; else
	fail "chat: a blank line sends nothing" "exit $rc: $(shown)"; fi
chat_in 'ab\0cd\n'
if [ "$rc" -eq 0 ] && grep -q "NUL byte" "$tmp/err" && ! grep -q "^Type A or B\|^\[A\]" "$tmp/out"; then
	ok "chat: a line with a NUL byte is skipped, not cut"; else
	fail "chat: a line with a NUL byte is skipped, not cut" "exit $rc: $(shown)"; fi

# Each alternative of the pair is shown as the user would see it, with
# its obligations: here every text is health advice (a lexicon of our
# own), so clinic-info's disclaimer comes with both.
mkdir -p "$tmp/lex"
printf 'specialized_advice.health\tregex\t0.9\t[a-z]{2}\tany word\n' >"$tmp/lex/en.tsv"
printf 'Tell me a story\n' | timeout 120 "$pwb" chat --policies "$pol" --org clinic-info \
	--user chat-u --model "$model" --n 2 --seed 1 --max-tokens 12 --threads 1 \
	--lexicons "$tmp/lex" >"$tmp/out" 2>"$tmp/err"
n_disc=$(grep -c "not medical advice" "$tmp/out")
if [ "$n_disc" -eq 2 ]; then ok "chat: both alternatives shown with their disclaimer"; else
	fail "chat: both alternatives shown with their disclaimer" "$n_disc disclaimers: $(head -c 300 "$tmp/out" | tr '\n' '|')"; fi

# ---- seeds ----
run "${ask[@]}" --user u1 --seed 0 "Hi"
expect_error "usage: --seed 0 is refused, naming the range" 2 "--seed must be a whole number in 1\.\.18446744073709551615"
run ask --help
if grep -q "random seed" "$tmp/out"; then ok "ask --help: the default seed is random"; else
	fail "ask --help: the default seed is random"; fi
# Two asks at once, without --seed (in the same second, mostly).
noseed=(ask --policies "$pol" --org acme-tutor "${eng[@]}" --n 2 --max-tokens 24 --json)
timeout "$run_timeout" "$pwb" "${noseed[@]}" --user u1 "Tell me a story." >"$tmp/rand1.json" 2>/dev/null &
timeout "$run_timeout" "$pwb" "${noseed[@]}" --user u1 "Tell me a story." >"$tmp/rand2.json" 2>/dev/null &
wait
if python3 -c 'import json,sys; a=json.load(open(sys.argv[1])); b=json.load(open(sys.argv[2])); sys.exit(0 if [x["content"] for x in a["alternatives"]] != [x["content"] for x in b["alternatives"]] else 1)' "$tmp/rand1.json" "$tmp/rand2.json"; then
	ok "without --seed, two asks at once sample differently"; else
	fail "without --seed, two asks at once sample differently"; fi
# The seed drawn is in --json, and sampling with it again gives the same.
seed=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["seed"])' "$tmp/rand1.json" 2>/dev/null)
run "${noseed[@]}" --user u1 --seed "${seed:-1}" "Tell me a story."
if [ -n "$seed" ] && python3 -c 'import json,sys; a=json.load(open(sys.argv[1])); b=json.load(open(sys.argv[2])); sys.exit(0 if a["seed"] == b["seed"] and [x["content"] for x in a["alternatives"]] == [x["content"] for x in b["alternatives"]] else 1)' "$tmp/rand1.json" "$tmp/out"; then
	ok "--json gives the seed drawn; --seed with it samples the same"; else
	fail "--json gives the seed drawn; --seed with it samples the same" "seed '$seed': $(shown)"; fi
run "${ask[@]}" --user u1 --seed 7 --json "Tell me a story."
cp "$tmp/out" "$tmp/lo.json"
run "${ask[@]}" --user u1 --seed $((7 + (1 << 32))) --json "Tell me a story."
if python3 -c 'import json,sys; a=json.load(open(sys.argv[1])); b=json.load(open(sys.argv[2])); sys.exit(0 if [x["content"] for x in a["alternatives"]] != [x["content"] for x in b["alternatives"]] else 1)' "$tmp/lo.json" "$tmp/out"; then
	ok "seeds that differ only above bit 31 sample differently"; else
	fail "seeds that differ only above bit 31 sample differently"; fi

# ---- the context, files and options ----
run "${ask[@]}" --user u1 --ctx 100000 "Hi"
expect_error "--ctx past the model's training context" 1 "100000 tokens.*more than the [0-9]+ tokens the model was trained with"
run "${ask[@]}" --user u1 --prefs "$tmp/no-such.pwbp" "Hi"
expect_error "a missing --prefs file names the option" 1 "^pwb ask: --prefs: cannot open .*no-such\.pwbp"
run "${ask[@]}" --user u1 --upstream-model some-model "Hi"
expect_error "usage: --upstream-model with --model" 2 "--upstream-model.*--model"
run "${ask[@]}" --user "$(printf 'u1\nx')" "Hi"
expect_error "usage: a --user with a newline" 2 "--user must not contain control characters"
printf '  \n' | timeout "$run_timeout" "$pwb" "${ask[@]}" --user u1 - >"$tmp/out" 2>"$tmp/err"
rc=$?
expect_error "usage: an empty prompt on standard input" 2 "PROMPT is empty"
run "${ask[@]}" --user u1 "My email is ana.schmidt@example.com. Tell me a story."
expect "a redacted prompt is said so in text" 0 "your prompt was redacted before the model saw it"

# ---- stored settings and users ----
db2="sqlite:$tmp/more.db"
printf '{"dimensions": {"humour": 0.5}}' >"$tmp/mid.json"
run user settings --db "$db2" --policies "$pol" --org acme-tutor --user wide-u "$tmp/mid.json"
expect "settings stored for the bounds case" 0 ""
python3 -c 'import sqlite3, sys
c = sqlite3.connect(sys.argv[1])
c.execute("UPDATE users SET settings = '"'"'{\"dimensions\": {\"humour\": 0.9}}'"'"' WHERE id = '"'"'wide-u'"'"'")
c.commit()' "$tmp/more.db"
run "${ask[@]}" --db "$db2" --user wide-u "Hi"
expect_error "stored settings out of bounds name the user, org and the fix" 1 "humour.*user 'wide-u' of org 'acme-tutor'.*pwb user settings"
python3 -c 'import sqlite3, sys
c = sqlite3.connect(sys.argv[1])
c.execute("UPDATE users SET settings = '"'"'{\"dimensions\": {\"nosuchdim\": 1}}'"'"' WHERE id = '"'"'wide-u'"'"'")
c.commit()' "$tmp/more.db"
run "${ask[@]}" --db "$db2" --user wide-u "Hi"
expect "stored settings that cannot be read name the user, org and the fix" 1 "stored settings of user 'wide-u' \(org 'acme-tutor'\).*pwb user settings"

run user erase --db "$db2" --org acme-tutor --user wide-u
printf 'Hi\n' | timeout 120 "$pwb" chat --db "$db2" --policies "$pol" --org acme-tutor \
	--user wide-u "${eng[@]}" --n 2 --max-tokens 8 >"$tmp/out" 2>"$tmp/err"
rc=$?
expect "chat for an erased user exits 1" 1 "user 'wide-u' of org 'acme-tutor' was erased"

# /reset in the chat says what pwb user reset says.
run user consent --db "$db2" --org acme-tutor --user reset-u --withdraw
printf '/reset\n' | timeout 120 "$pwb" chat --db "$db2" --policies "$pol" --org acme-tutor \
	--user reset-u "${eng[@]}" --n 2 --max-tokens 8 >"$tmp/out" 2>"$tmp/err"
grep -v '^(' "$tmp/out" >"$tmp/chat-reset" # not the AI disclosure
run user reset --db "$db2" --org acme-tutor --user reset-u
if [ -s "$tmp/out" ] && diff -q "$tmp/out" "$tmp/chat-reset" >/dev/null; then
	ok "/reset and pwb user reset say the same"; else
	fail "/reset and pwb user reset say the same" "$(cat "$tmp/chat-reset") vs $(cat "$tmp/out")"; fi

# Usage errors of user settings and consent write no store.
run user settings --db "sqlite:$tmp/none1.db" --org acme-tutor --user u1 "$tmp/mid.json"
expect_error "usage: settings for a new store without --policies" 2 "--policies"
run user settings --db "sqlite:$tmp/none2.db" --policies "$pol" --org acme-tutor --user u1 "$tmp/no-such.json"
expect "settings from a missing file" 1 "no-such\.json"
run user consent --db "sqlite:$tmp/none3.db" --org acme-tutor --user u1 --grant
expect_error "usage: consent for a new store without --policies" 2 "--policies"
run user consent --db "sqlite:$tmp/none4.db" --org acme-tutor --user "$(printf 'u\t1')" --grant --policies "$pol"
expect_error "usage: consent for a --user with a tab" 2 "control characters"

# Consent to being grouped: only by the org's attribute; each option
# keeps the other consent as recorded.
cdb="sqlite:$tmp/cohort.db"
run user consent --db "$cdb" --policies "$pol" --org open-studio --user co-u --grant
run user consent --db "$cdb" --org open-studio --user co-u --grant-cohort age_band
expect "consent to being grouped by the org's attribute" 0 ""
if grep -q "grouped by age_band granted" "$tmp/out"; then
	ok "consent to being grouped says so"; else
	fail "consent to being grouped says so" "$(cat "$tmp/out")"; fi
run user consent --db "$cdb" --org open-studio --user co-u --withdraw
run user export --db "$cdb" --org open-studio --user co-u
json_check "each consent option keeps the other" \
	'j["profile"]["consent"]["learning"] is False and j["profile"]["consent"]["cohort"] == "age_band"'
run user consent --db "$cdb" --org open-studio --user co-u --grant-cohort religion
expect_error "consent to being grouped by another attribute" 1 "groups users by 'age_band'"
run user consent --db "$cdb" --org acme-tutor --user co-u --grant-cohort age_band
expect_error "consent to being grouped where the org groups nobody" 1 "groups nobody"
run user consent --db "$cdb" --org open-studio --user co-u --grant-cohort 'age band'
expect_error "usage: --grant-cohort with a bad attribute name" 2 "attribute name"
run user consent --db "$cdb" --org open-studio --user co-u
expect_error "usage: consent without an option" 2 "grant-cohort"
# A cohort value that cannot name one: one error, nothing generated.
run ask --db "$cdb" --policies "$pol" --org open-studio --user co-u "${eng[@]}" \
	--attr "user.age_band=$(printf 'a\tb')" "Tell me a story"
expect_error "ask with a cohort value with a control character" 1 "control characters"

if ls "$tmp"/none*.db >/dev/null 2>&1; then
	fail "failed user settings and consent create no store" "$(ls "$tmp"/none*.db | tr '\n' ' ')"; else
	ok "failed user settings and consent create no store"; fi

# Feedback with a preference model of another layout: one line.
if "$pwb" simulate prefs --users 3 --events 10 --out "$tmp/sim.jsonl" >/dev/null 2>&1 &&
	"$pwb" prefs train --data "$tmp/sim.jsonl" --out "$tmp/small.pwbp" --hash-bits 10 >/dev/null 2>&1; then
	decide fb-u "Tell me a story."
	run "${give[@]}" --user fb-u --decision "$dec" --choose B --prefs "$tmp/small.pwbp"
	expect_error "feedback with a --prefs model of another layout: one error" 1 "another preference model"
fi

# Ctrl-C while an answer streams cancels it and the chat goes on; a
# slow upstream of our own streams a word every 50 ms for 30 s.
cat >"$tmp/slow.py" <<'PYEOF'
import http.server, json, sys, time
class H(http.server.BaseHTTPRequestHandler):
    def log_message(self, *a):
        pass
    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
        if body.get("model") == "silent":  # says nothing for a minute
            time.sleep(60)
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.end_headers()
        try:
            for i in range(600):
                d = {"choices": [{"index": 0, "delta": {"content": "word "}}]}
                self.wfile.write(b"data: " + json.dumps(d).encode() + b"\n\n")
                self.wfile.flush()
                time.sleep(0.05)
            self.wfile.write(b"data: [DONE]\n\n")
        except OSError:
            pass
s = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
open(sys.argv[1], "w").write(str(s.server_address[1]))
s.serve_forever()
PYEOF
python3 "$tmp/slow.py" "$tmp/port" &
srv=$!
for _ in $(seq 50); do [ -s "$tmp/port" ] && break; sleep 0.1; done

# chat_interrupted N WATCHDOG LAST [ARGS...]: a chat of N candidates at the
# slow endpoint gets "Tell me a story", Ctrl-C 2 s later, then the line
# LAST; a watchdog ends it after WATCHDOG seconds. Exit status in $rc.
chat_interrupted() {
	local n=$1 dog_s=$2 last=$3 chat_pid dog
	shift 3
	rm -f "$tmp/chat.in"
	mkfifo "$tmp/chat.in"
	"$pwb" chat --policies "$pol" --org open-studio --user sig-u --n "$n" \
		--upstream "http://127.0.0.1:$(cat "$tmp/port")/v1" "$@" \
		<"$tmp/chat.in" >"$tmp/out" 2>"$tmp/err" &
	chat_pid=$!
	( sleep "$dog_s"; kill "$chat_pid" 2>/dev/null ) &
	dog=$!
	exec 3>"$tmp/chat.in"
	printf 'Tell me a story\n' >&3
	sleep 2
	kill -INT "$chat_pid"
	sleep 1
	printf '%s\n' "$last" >&3
	exec 3>&-
	wait "$chat_pid"
	rc=$?
	kill "$dog" 2>/dev/null
}

chat_interrupted 1 90 /why
if [ "$rc" -eq 0 ] && grep -q "(cancelled)" "$tmp/out" && grep -q "^decision dec_" "$tmp/out"; then
	ok "chat: Ctrl-C cancels the answer being streamed, and the chat goes on"; else
	fail "chat: Ctrl-C cancels the answer being streamed, and the chat goes on" "exit $rc: $(tail -c 200 "$tmp/out" | tr '\n' '|') $(shown)"; fi

# An endpoint that says nothing for a minute: Ctrl-C still cancels at
# once, streamed (one candidate) or not (two); the watchdog gives 20 s.
for n in 1 2; do
	chat_interrupted "$n" 20 /quit --upstream-model silent
	if [ "$rc" -eq 0 ] && grep -q "(cancelled" "$tmp/out"; then
		ok "chat --n $n: Ctrl-C cancels while the endpoint is silent"; else
		fail "chat --n $n: Ctrl-C cancels while the endpoint is silent" "exit $rc: $(tail -c 200 "$tmp/out" | tr '\n' '|') $(shown)"; fi
done
kill "$srv" 2>/dev/null
wait "$srv" 2>/dev/null

finish
