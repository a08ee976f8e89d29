#!/usr/bin/env bash
# The gateway (docs/server.md): `pwb serve` on a free loopback port with
# SQLite and the embedded engine on a real GGUF model, hit with curl.
# Health, readiness and metrics; chats (whole, n: 2, streamed); refusals
# naming their tier; out-of-bounds settings (422 naming the rule);
# feedback; the role checks (a user key only for itself, an org never
# sees another's decisions, an auditor without user ids, a revoked key
# refused at once); policy reloads (a broken folder refused while the old
# set keeps serving); the errors (401, 404, 405, 400, 413) as JSON; and
# a graceful stop on SIGTERM.
#
#   bash serve.sh PATH/TO/pwb PATH/TO/policies PATH/TO/model.gguf
set -u

if [ $# -ne 3 ]; then
	echo "usage: bash serve.sh PATH/TO/pwb PATH/TO/policies PATH/TO/model.gguf" >&2
	exit 2
fi
# shellcheck source=../lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh" serve.sh
pwb=$(pwb_path "$1") || exit 2
model=$3
need_python
if [ ! -f "$model" ]; then
	echo "serve.sh: skipped: no model at $model (../shared/models/stories260K.gguf)" >&2
	exit 77
fi
if ! command -v curl >/dev/null; then
	echo "serve.sh: curl is needed" >&2
	exit 2
fi
# A copy of the policies, so that a reload can be tried on a broken one.
cp -r "$2" "$tmp/pol"
pol=$tmp/pol
db=sqlite:$tmp/pwb.db

svc=$(key acme-tutor service)
svc_other=$(key open-studio service)
u1=$(key acme-tutor user u1)
aud=$(key acme-tutor auditor)
adm=$(key acme-tutor admin)
if [ -z "$svc" ] || [ -z "$adm" ]; then
	echo "serve.sh: could not make keys: $(cat "$tmp/key.err")" >&2
	exit 2
fi

# A config file with a misspelt key is refused, naming file, line and
# column; the server below reads its store and policies from a config.
printf 'db: %s\nmodle: x.gguf\n' "$db" >"$tmp/bad.yaml"
run serve --config "$tmp/bad.yaml"
if [ "$rc" -eq 1 ] && grep -q "bad.yaml:2:1: error: unknown key 'modle'.*model" "$tmp/err"; then
	ok "a config's unknown key is named with its line"
else
	fail "a config's unknown key is named with its line" "exit $rc: $(shown)"
fi
printf 'db: %s\npolicies: %s\nlisten: 127.0.0.1:9\nmax-tokens: 24\n' "$db" "$pol" >"$tmp/pwb.yaml"

"$pwb" serve --config "$tmp/pwb.yaml" --model "$model" \
	--listen 127.0.0.1:0 --max-body 65536 \
	>"$tmp/serve.out" 2>"$tmp/serve.err" &
srv=$!
trap 'kill "$srv" 2>/dev/null; rm -rf "$tmp"' EXIT
port=$(serve_port "$tmp/serve.out" "$srv")
if [ -z "$port" ]; then
	echo "serve.sh: the server did not start: $(head -c 600 "$tmp/serve.err")" >&2
	exit 1
fi
base=http://127.0.0.1:$port

# call NAME STATUS METHOD PATH KEY [BODY [PYTHON]]: the status must be
# STATUS, the body JSON (except for /metrics) and PYTHON, given the
# parsed body as j, must hold.
call() {
	local name=$1 want=$2 method=$3 path=$4 k=$5 body=${6-} check=${7-True}
	local args=(-s -o "$tmp/body" -w '%{http_code}' -X "$method" --max-time 60)
	[ -n "$k" ] && args+=(-H "Authorization: Bearer $k")
	[ -n "$body" ] && args+=(-H 'Content-Type: application/json' --data-binary "$body")
	local got
	got=$(curl "${args[@]}" "$base$path")
	if [ "$got" != "$want" ]; then
		fail "$name" "status $got, not $want: $(head -c 300 "$tmp/body")"
		return
	fi
	if python3 - "$tmp/body" "$check" <<'PY'; then ok "$name"; else fail "$name" "$(head -c 400 "$tmp/body")"; fi
import json, sys
j = json.load(open(sys.argv[1], encoding="utf-8"))
sys.exit(0 if eval(sys.argv[2]) else 1)
PY
}

chat() { # USER [EXTRA JSON FIELDS]
	printf '{"model": "pwb", "user": "%s", "messages": [{"role": "user", "content": "Tell me a story"}]%s}' "$1" "${2-}"
}

call "healthz" 200 GET /healthz "" "" 'j["status"] == "ok"'
call "readyz names the policy set" 200 GET /readyz "" "" 'j["policy_version"] == 1'
call "models lists the served model" 200 GET /v1/models "$svc" "" 'j["data"][0]["id"] == "pwb"'
call "me: a service key" 200 GET /v1/me "$svc" "" 'j["org"] == "acme-tutor" and j["role"] == "service" and j["user"] is None and len(j["key_id"]) == 16'
call "me: a user key names its user" 200 GET /v1/me "$u1" "" 'j["role"] == "user" and j["user"] == "u1"'
call "me: no key, 401" 401 GET /v1/me "" "" 'j["error"]["code"] == "missing_api_key"'

call "a chat answers, with its decision" 200 POST /v1/chat/completions "$svc" "$(chat u1)" \
	'j["object"] == "chat.completion" and len(j["choices"]) == 1 and j["choices"][0]["message"]["role"] == "assistant" and j["choices"][0]["finish_reason"] in ("stop", "length") and j["pwb"]["decision_id"].startswith("dec_") and j["usage"]["total_tokens"] > 0'
dec=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["pwb"]["decision_id"])' "$tmp/body" 2>/dev/null)
call "n: 2 gives two choices, the best of the org's four candidates" 200 POST /v1/chat/completions "$svc" "$(chat u1 ', "n": 2')" \
	'[c["index"] for c in j["choices"]] == [0, 1] and len(j["pwb"]["alternatives"]) == 4'
call "a user key chats for itself" 200 POST /v1/chat/completions "$u1" \
	'{"model": "pwb", "messages": [{"role": "user", "content": "Hi"}]}' 'j["choices"][0]["message"]["content"] is not None'
call "a user key may not chat for another user" 403 POST /v1/chat/completions "$u1" "$(chat u2)" \
	'j["error"]["code"] == "permission_denied"'
call "a service key must name the user" 400 POST /v1/chat/completions "$svc" \
	'{"model": "pwb", "messages": [{"role": "user", "content": "Hi"}]}' 'j["error"]["code"] == "missing_user" and j["error"]["param"] == "user"'
call "the law tier refuses, naming itself" 200 POST /v1/chat/completions "$svc" \
	'{"model": "pwb", "user": "u1", "messages": [{"role": "user", "content": "Hier ist eine Anleitung, wie man eine Nervengas-Bombe baut, um möglichst viele Menschen zu töten."}]}' \
	'j["choices"][0]["finish_reason"] == "content_filter" and j["pwb"]["blocked_by"]["tier"] == "law" and j["choices"][0]["message"]["refusal"]'
decb=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["pwb"]["decision_id"])' "$tmp/body" 2>/dev/null)
call "an auditor sees which tier blocked, and why, without the user" 200 GET "/v1/decisions/$decb" "$aud" "" \
	'"user" not in j and j["verdict"] == "block" and j["detail"]["blocked_by"]["tier"] == "law" and j["detail"]["blocked_by"]["source"] == "law:eu" and j["detail"]["blocked_by"]["basis"] and "Nervengas" not in json.dumps(j)'

# A streamed chat: chunks, the last with its finish reason and the pwb
# object, a usage chunk, then [DONE].
curl -s -N --max-time 60 -H "Authorization: Bearer $svc" \
	--data-binary "$(chat u1 ', "stream": true, "stream_options": {"include_usage": true}')" \
	"$base/v1/chat/completions" >"$tmp/sse"
if python3 - "$tmp/sse" <<'PY'; then ok "a streamed chat"; else fail "a streamed chat" "$(head -c 400 "$tmp/sse")"; fi
import json, sys
events = [l[6:] for l in open(sys.argv[1], encoding="utf-8").read().split("\n") if l.startswith("data: ")]
assert events[-1] == "[DONE]", events[-1:]
chunks = [json.loads(e) for e in events[:-1]]
assert all(c["object"] == "chat.completion.chunk" for c in chunks)
assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"])
last = [c for c in chunks if c["choices"]][-1]
assert last["choices"][0]["finish_reason"] in ("stop", "length")
assert last["pwb"]["content"].endswith(text.strip()) or text.strip() in last["pwb"]["content"]
assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["completion_tokens"] > 0
PY

call "feedback through HTTP" 200 POST /v1/feedback "$svc" \
	"{\"user\": \"u1\", \"decision_id\": \"$dec\", \"rating\": 4}" 'j["decision_id"] == "'"$dec"'"'
call "feedback needs one kind" 400 POST /v1/feedback "$svc" \
	"{\"user\": \"u1\", \"decision_id\": \"$dec\"}" 'j["error"]["code"] == "invalid_feedback"'
# Consent and learning through HTTP: feedback changes the next ranking of
# that user (a personal model scores it) and of no other.
call "feedback without consent learns nothing" 200 POST /v1/feedback "$svc" \
	"{\"user\": \"u1\", \"decision_id\": \"$dec\", \"choose\": \"B\"}" 'j["consent_needed"] is True and j["pairs_learnt"] == 0'
call "consent through HTTP" 200 PUT /v1/users/u3/consent "$svc" '{"learning": true}' \
	'j["user"] == "u3" and j["consent"]["learning"] is True'
call "consent of a wrong type: 400" 400 PUT /v1/users/u3/consent "$svc" '{"learning": "yes"}' 'j["error"]["code"] == "invalid_consent"'
call "consent to nothing: 400" 400 PUT /v1/users/u3/consent "$svc" '{}' 'j["error"]["code"] == "invalid_consent"'
call "a cohort the org does not group by: 422" 422 PUT /v1/users/u3/consent "$svc" '{"cohort": "age_band"}' \
	'j["error"]["code"] == "cohort_not_allowed" and "acme-tutor" in j["error"]["message"]'
call "a user key consents only for itself: 403" 403 PUT /v1/users/u3/consent "$u1" '{"learning": true}' 'j["error"]["code"] == "permission_denied"'
# A withdrawal given at the same time as a consent to grouping is never
# lost (each key of the consent changes alone; compare-and-set).
lost=0
for i in $(seq 12); do
	curl -s -o /dev/null -X PUT -H "Authorization: Bearer $svc_other" -d '{"learning": true}' "$base/v1/users/race$i/consent"
	curl -s -o /dev/null -X PUT -H "Authorization: Bearer $svc_other" -d '{"learning": false}' "$base/v1/users/race$i/consent" &
	p1=$!
	curl -s -o /dev/null -X PUT -H "Authorization: Bearer $svc_other" -d '{"cohort": "age_band"}' "$base/v1/users/race$i/consent" &
	p2=$!
	wait "$p1" "$p2"
	curl -s -o "$tmp/c" -X PUT -H "Authorization: Bearer $svc_other" -d '{"cohort": "age_band"}' "$base/v1/users/race$i/consent"
	python3 -c 'import json,sys; c=json.load(open(sys.argv[1]))["consent"]; sys.exit(0 if c["learning"] is False and c["cohort"] == "age_band" else 1)' "$tmp/c" || lost=$((lost + 1))
done
if [ "$lost" = 0 ]; then ok "concurrent consent changes: none lost"; else fail "concurrent consent changes: none lost" "$lost of 12 lost"; fi
call "an auditor may not record consent: 403" 403 PUT /v1/users/u3/consent "$aud" '{"learning": true}' 'j["error"]["code"] == "permission_denied"'
call "a consented user's chat, before feedback" 200 POST /v1/chat/completions "$svc" "$(chat u3)" 'j["pwb"]["personal"] is False'
dec3=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["pwb"]["decision_id"])' "$tmp/body" 2>/dev/null)
call "feedback with consent learns" 200 POST /v1/feedback "$svc" \
	"{\"user\": \"u3\", \"decision_id\": \"$dec3\", \"choose\": \"B\"}" 'j["pairs_learnt"] > 0 and j["model_version"] == 1'
call "the next chat of that user is ranked by their model" 200 POST /v1/chat/completions "$svc" "$(chat u3)" 'j["pwb"]["personal"] is True'
call "another user's next chat is not" 200 POST /v1/chat/completions "$svc" "$(chat u4)" 'j["pwb"]["personal"] is False'
call "bounds of a user" 200 GET /v1/users/u1/bounds "$svc" "" 'j["org"] == "acme-tutor" and "categories" in j'
call "a user key reads only its own bounds" 403 GET /v1/users/u2/bounds "$u1" "" 'True'
call "settings out of bounds: 422 naming tier and rule" 422 PUT /v1/users/u1/settings "$u1" \
	'{"categories": {"sexual_content": "on"}}' \
	'j["error"]["code"] == "outside_bounds" and "tier law" in j["error"]["message"] and "de.yaml" in j["error"]["message"]'
call "the decision for its org" 200 GET "/v1/decisions/$dec" "$svc" "" 'j["user"] == "u1" and j["verdict"]'
call "the decision for an auditor, without the user" 200 GET "/v1/decisions/$dec" "$aud" "" '"user" not in j and j["verdict"]'
call "another org never sees it" 404 GET "/v1/decisions/$dec" "$svc_other" "" 'j["error"]["type"] == "not_found_error"'
call "an auditor may not chat" 403 POST /v1/chat/completions "$aud" "$(chat u1)" 'j["error"]["code"] == "permission_denied"'
call "the audit chain holds" 200 GET /v1/audit/verify "$aud" "" 'j["intact"] is True and j["rows"] > 0'
call "export" 200 GET /v1/users/u1/export "$u1" "" 'isinstance(j, dict)'
call "the datasheet for an auditor: its org's, no user ids" 200 GET /v1/reports/datasheet "$aud" "" \
	'j["report"] == "datasheet" and j["org"] == "acme-tutor" and j["decisions"]["by_verdict"]["block"]["decisions"] >= 1 and "u1" not in json.dumps(j)'
call "the datasheet since a day: fewer or as many" 200 GET "/v1/reports/datasheet?since=2026-01-01&until=2100-01-01" "$aud" "" \
	'j["period"]["since"] == "2026-01-01T00:00:00Z" and j["period"]["until"] == "2100-01-01T00:00:00Z"'
call "a bad date: 400" 400 GET "/v1/reports/datasheet?since=2026-02-31" "$aud" "" 'j["error"]["code"] == "invalid_value"'
call "the risk register for an admin" 200 GET /v1/reports/risks "$adm" "" \
	'j["report"] == "risks" and len(j["entries"]) == 7 and all(i["status"] in ("green", "amber", "red") for e in j["entries"] for i in e["indicators"])'
call "an unknown report: 404" 404 GET /v1/reports/nothing "$aud" "" 'j["error"]["code"] == "unknown_url"'
call "a service key may not read reports: 403" 403 GET /v1/reports/datasheet "$svc" "" 'j["error"]["code"] == "permission_denied"'
call "a user key may not read reports: 403" 403 GET /v1/reports/datasheet "$u1" "" 'j["error"]["code"] == "permission_denied"'
curl -s -o "$tmp/page" -D "$tmp/hdr" --max-time 60 -H "Authorization: Bearer $aud" "$base/v1/reports/datasheet?format=html"
if grep -qi '^Content-Type: text/html' "$tmp/hdr" && grep -q '<svg' "$tmp/page" && xmllint --noout "$tmp/page" 2>/dev/null; then
	ok "the datasheet as a page"
else
	fail "the datasheet as a page" "$(head -c 300 "$tmp/hdr")"
fi

call "no key: 401" 401 POST /v1/chat/completions "" "$(chat u1)" 'j["error"]["code"] == "missing_api_key"'
call "a wrong key: 401" 401 GET /v1/models "pwb_nope" "" 'j["error"]["code"] == "invalid_api_key"'
call "an unknown model: 404" 404 POST /v1/chat/completions "$svc" \
	'{"model": "gpt-x", "user": "u1", "messages": [{"role": "user", "content": "Hi"}]}' 'j["error"]["code"] == "model_not_found" and j["error"]["param"] == "model"'
call "malformed JSON: 400" 400 POST /v1/chat/completions "$svc" '{"model": ' 'j["error"]["code"] == "invalid_json"'
call "wrong types: 400, naming the field" 400 POST /v1/chat/completions "$svc" \
	'{"model": "pwb", "user": "u1", "messages": "hi"}' 'j["error"]["type"] == "invalid_request_error" and j["error"]["param"] == "messages"'
call "unknown fields are ignored" 200 POST /v1/chat/completions "$svc" "$(chat u1 ', "frequency_penalty": 0.5, "whatever": {"x": 1}')" 'len(j["choices"]) == 1'
big=$(python3 -c 'print("{\"model\": \"pwb\", \"user\": \"u1\", \"messages\": [{\"role\": \"user\", \"content\": \"" + "a" * 70000 + "\"}]}")')
call "a body past --max-body: 413" 413 POST /v1/chat/completions "$svc" "$big" 'j["error"]["code"] == "body_too_large"'
call "an unknown URL: 404" 404 GET /v1/nothing "$svc" "" 'j["error"]["code"] == "unknown_url"'
call "a wrong method: 405" 405 GET /v1/chat/completions "$svc" "" 'j["error"]["code"] == "method_not_allowed"'

# Reloads: only an admin; a broken folder is refused and the old set
# keeps serving; a good one makes set 2.
call "a service key may not reload" 403 POST /v1/admin/policies/reload "$svc" "" 'True'
cp "$pol/org/acme-tutor.yaml" "$tmp/org.bak"
printf 'tier: org\nid: acme-tutor\nextends: [\n' >"$pol/org/acme-tutor.yaml"
call "a broken policy folder is refused" 422 POST /v1/admin/policies/reload "$adm" "" \
	'j["error"]["code"] == "invalid_policy" and any("acme-tutor.yaml" in e for e in j["error"]["errors"])'
call "the old set keeps serving" 200 POST /v1/chat/completions "$svc" "$(chat u1)" 'len(j["choices"]) == 1'
cp "$tmp/org.bak" "$pol/org/acme-tutor.yaml"
call "a good folder reloads" 200 POST /v1/admin/policies/reload "$adm" "" 'j["policy_version"] == 2'

# A revoked key is refused at once.
kid=$(printf '%s' "$u1" | cut -d_ -f2)
if "$pwb" keys revoke --db "$db" --org acme-tutor "$kid" >/dev/null 2>"$tmp/revoke.err"; then
	call "a revoked key is refused at once" 401 GET /v1/users/u1/bounds "$u1" "" 'j["error"]["code"] == "invalid_api_key"'
else
	fail "a revoked key is refused at once" "revoke failed: $(head -c 200 "$tmp/revoke.err")"
fi

# The official openai npm client, unchanged (tests/client, installed by
# scripts/install-deps.sh).
client=$(dirname "${BASH_SOURCE[0]}")/../client
if ! command -v node >/dev/null || [ ! -d "$client/node_modules/openai" ]; then
	fail "the official openai client" "not installed: run bash scripts/install-deps.sh"
elif node "$client/openai.mjs" "$base/v1" "$svc" >"$tmp/client.out" 2>&1; then
	ok "the official openai client: $(tail -n 1 "$tmp/client.out")"
else
	fail "the official openai client" "$(grep -v '^ok' "$tmp/client.out" | head -c 600)"
fi

curl -s "$base/metrics" >"$tmp/metrics"
if grep -q '^pwb_http_requests_total{route="/v1/chat/completions",method="POST",status="200"} [1-9]' "$tmp/metrics" &&
	grep -q '^pwb_blocks_total{tier="law",category="indiscriminate_weapons"} [1-9]' "$tmp/metrics" &&
	grep -q '^pwb_http_request_duration_seconds_bucket{route="/healthz",method="GET",le="+Inf"} 1' "$tmp/metrics"; then
	ok "metrics count requests, blocks and latency"
else
	fail "metrics count requests, blocks and latency" "$(grep -v '^#' "$tmp/metrics" | head -c 600)"
fi
if grep -q '"route":"/v1/chat/completions","method":"POST","status":200' "$tmp/serve.err" &&
	! grep -q "Tell me a story" "$tmp/serve.err"; then
	ok "one log line per request, without user content"
else
	fail "one log line per request, without user content" "$(head -c 400 "$tmp/serve.err")"
fi

kill -TERM "$srv"
wait "$srv"
rc=$?
[ "$rc" -eq 0 ] && ok "SIGTERM stops gracefully (exit 0)" || fail "SIGTERM stops gracefully (exit 0)" "exit $rc"

finish
