#!/usr/bin/env bash
# The gateway (docs/server.md) against a hostile client: malformed JSON
# of every kind, wrong types at every field of chat and feedback bodies,
# caps (messages, parts, body with and without Content-Length, headers),
# path tricks, Authorization variants, the role and user checks of every
# route, slow and vanishing clients, a flood of connections. Each answer
# must have its status and a JSON error (but a 431 for headers past
# twice --max-header, libmicrohttpd's own), and the server must keep serving, stop with exit 0 on SIGTERM
# (no leak) and print no sanitizer report. The engine is
# tests/engine/mock_openai.py (each answer 300 ms late), so it never skips.
#
#   bash serve_hostile.sh PATH/TO/pwb PATH/TO/policies PATH/TO/mock_openai.py
set -u

if [ $# -ne 3 ]; then
	echo "usage: bash serve_hostile.sh PATH/TO/pwb PATH/TO/policies PATH/TO/mock_openai.py" >&2
	exit 2
fi
# shellcheck source=../lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh" serve_hostile.sh
pwb=$(pwb_path "$1") || exit 2
mock=$3
need_python
if ! command -v curl >/dev/null; then
	echo "serve_hostile.sh: curl is needed" >&2
	exit 2
fi
pol=$2
db=sqlite:$tmp/pwb.db

python3 "$mock" >"$tmp/mport" 2>"$tmp/mock.err" &
mock_pid=$!
srv=
trap 'kill "$mock_pid" 2>/dev/null; [ -n "$srv" ] && kill "$srv" 2>/dev/null; rm -rf "$tmp"' EXIT
for _ in $(seq 100); do
	[ -s "$tmp/mport" ] && break
	sleep 0.1
done
mport=$(head -n 1 "$tmp/mport")
if [ -z "$mport" ]; then
	echo "serve_hostile.sh: the mock endpoint did not start: $(cat "$tmp/mock.err")" >&2
	exit 1
fi

svc=$(key acme-tutor service)
u1=$(key acme-tutor user u1)
aud=$(key acme-tutor auditor)
adm=$(key acme-tutor admin)
svc_other=$(key open-studio service)
if [ -z "$svc" ] || [ -z "$adm" ]; then
	echo "serve_hostile.sh: could not make keys: $(cat "$tmp/key.err")" >&2
	exit 2
fi

maxconn=12
"$pwb" serve --db "$db" --policies "$pol" \
	--upstream "http://127.0.0.1:$mport/v1" --upstream-model slow:300 \
	--listen 127.0.0.1:0 --max-body 1048576 --max-header 8192 \
	--max-connections "$maxconn" --idle-timeout 3 --workers 4 \
	--key-concurrency 64 \
	>"$tmp/serve.out" 2>"$tmp/serve.err" &
srv=$!
port=$(serve_port "$tmp/serve.out" "$srv")
if [ -z "$port" ]; then
	echo "serve_hostile.sh: the server did not start: $(head -c 600 "$tmp/serve.err")" >&2
	exit 1
fi
base=http://127.0.0.1:$port

# call NAME STATUS METHOD PATH KEY [BODY [PYTHON [CURL ARGS...]]]: the
# status must be STATUS, the body a JSON error (a JSON object for 2xx)
# and PYTHON, given it as j, must hold. BODY @FILE sends FILE.
call() {
	local name=$1 want=$2 method=$3 path=$4 k=$5 body=${6-} check=${7-True}
	shift 7 2>/dev/null || shift $#
	local args=(-s -o "$tmp/body" -w '%{http_code}' -X "$method" --max-time 60 --path-as-is "$@")
	[ -n "$k" ] && args+=(-H "Authorization: Bearer $k")
	if [ -n "$body" ]; then
		case $body in
		@*) args+=(-H 'Content-Type: application/json' --data-binary "$body") ;;
		*) args+=(-H 'Content-Type: application/json' --data-binary "$body") ;;
		esac
	fi
	local got
	got=$(curl "${args[@]}" "$base$path")
	if [ "$got" != "$want" ]; then
		fail "$name" "status $got, not $want: $(head -c 300 "$tmp/body")"
		return
	fi
	if python3 - "$tmp/body" "$want" "$check" <<'PY'; then ok "$name"; else fail "$name" "$(head -c 400 "$tmp/body")"; fi
import json, sys
j = json.load(open(sys.argv[1], encoding="utf-8"))
if int(sys.argv[2]) >= 400:
    e = j["error"]
    assert all(k in e for k in ("type", "message", "code", "param")), e
sys.exit(0 if eval(sys.argv[3]) else 1)
PY
}

chat() { # USER [EXTRA JSON FIELDS]
	printf '{"model": "pwb", "user": "%s", "messages": [{"role": "user", "content": "Tell me a story"}]%s}' "$1" "${2-}"
}
code() { printf 'j["error"]["code"] == "%s"' "$1"; }

# A decision of u1 and one of u2, for the feedback and decision cases.
call "a chat on the mock engine" 200 POST /v1/chat/completions "$svc" "$(chat u1)" 'j["pwb"]["decision_id"]'
dec=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["pwb"]["decision_id"])' "$tmp/body" 2>/dev/null)
call "a chat for u2" 200 POST /v1/chat/completions "$svc" "$(chat u2)" 'j["pwb"]["decision_id"]'
dec2=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["pwb"]["decision_id"])' "$tmp/body" 2>/dev/null)

# ---- malformed JSON ----
py() { python3 -c "$1" >"$tmp/in"; }
py 'print("[" * 30000 + "]" * 30000)'
call "deep nesting: 400" 400 POST /v1/chat/completions "$svc" "@$tmp/in" "$(code invalid_json)"
py 'print("{\"model\": \"pwb\", \"user\": \"u1\", \"pwb\": {\"attributes\": {\"a\": " + "[" * 5000 + "]" * 5000 + "}}, \"messages\": [{\"role\": \"user\", \"content\": \"Hi\"}]}")'
call "deep nesting inside pwb.attributes: 400" 400 POST /v1/chat/completions "$svc" "@$tmp/in" 'j["error"]["code"] in ("invalid_json", "invalid_value")'
call "a number past a double: 400" 400 POST /v1/chat/completions "$svc" "$(chat u1 ', "seed": 1e999')" "$(code invalid_json)"
call "an integer past 64 bits: 400" 400 POST /v1/chat/completions "$svc" "$(chat u1 ', "n": 99999999999999999999999')" "$(code invalid_json)"
call "an escaped NUL in a string: 400" 400 POST /v1/chat/completions "$svc" \
	'{"model": "pwb", "user": "u1", "messages": [{"role": "user", "content": "a\u0000b"}]}' "$(code invalid_json)"
printf '{"model": "pwb", "user": "u1", "messages": [{"role": "user", "content": "a\0b"}]}' >"$tmp/in"
call "a raw NUL byte: 400" 400 POST /v1/chat/completions "$svc" "@$tmp/in" "$(code invalid_json)"
printf '{"model": "pwb", "user": "u1", "messages": [{"role": "user", "content": "a\xff\xfeb"}]}' >"$tmp/in"
call "invalid UTF-8: 400" 400 POST /v1/chat/completions "$svc" "@$tmp/in" "$(code invalid_json)"
printf '{"model": "pwb", "user": "u\xc0\xafx", "messages": []}' >"$tmp/in"
call "an overlong UTF-8 user: 400" 400 POST /v1/chat/completions "$svc" "@$tmp/in" "$(code invalid_json)"
call "duplicate keys: 400" 400 POST /v1/chat/completions "$svc" \
	'{"model": "pwb", "user": "u1", "user": "u2", "messages": [{"role": "user", "content": "Hi"}]}' "$(code invalid_json)"
call "a JSON array body: 400" 400 POST /v1/chat/completions "$svc" '[1, 2]' "$(code invalid_json)"
call "a JSON string body: 400" 400 POST /v1/chat/completions "$svc" '"x"' "$(code invalid_json)"
call "trailing garbage: 400" 400 POST /v1/chat/completions "$svc" "$(chat u1) x" "$(code invalid_json)"
call "no body: 400" 400 POST /v1/chat/completions "$svc" "" "$(code invalid_json)"

# ---- wrong types at every field of a chat ----
m='"messages": [{"role": "user", "content": "Hi"}]'
for case in \
	"model 1|{\"model\": 1, \"user\": \"u1\", $m}" \
	"model null|{\"model\": null, \"user\": \"u1\", $m}" \
	"user 5|{\"model\": \"pwb\", \"user\": 5, $m}" \
	"user empty|{\"model\": \"pwb\", \"user\": \"\", $m}" \
	"user control|{\"model\": \"pwb\", \"user\": \"a\\u0001b\", $m}" \
	"user 300 bytes|{\"model\": \"pwb\", \"user\": \"$(printf 'u%.0s' $(seq 300))\", $m}" \
	"messages object|{\"model\": \"pwb\", \"user\": \"u1\", \"messages\": {}}" \
	"messages empty|{\"model\": \"pwb\", \"user\": \"u1\", \"messages\": []}" \
	"messages [1]|{\"model\": \"pwb\", \"user\": \"u1\", \"messages\": [1]}" \
	"role 1|{\"model\": \"pwb\", \"user\": \"u1\", \"messages\": [{\"role\": 1, \"content\": \"Hi\"}]}" \
	"content 1|{\"model\": \"pwb\", \"user\": \"u1\", \"messages\": [{\"role\": \"user\", \"content\": 1}]}" \
	"content object|{\"model\": \"pwb\", \"user\": \"u1\", \"messages\": [{\"role\": \"user\", \"content\": {}}]}" \
	"content [1]|{\"model\": \"pwb\", \"user\": \"u1\", \"messages\": [{\"role\": \"user\", \"content\": [1]}]}" \
	"an image part|{\"model\": \"pwb\", \"user\": \"u1\", \"messages\": [{\"role\": \"user\", \"content\": [{\"type\": \"image_url\", \"image_url\": {\"url\": \"x\"}}]}]}" \
	"a text part of 1|{\"model\": \"pwb\", \"user\": \"u1\", \"messages\": [{\"role\": \"user\", \"content\": [{\"type\": \"text\", \"text\": 1}]}]}" \
	"n \"2\"|{\"model\": \"pwb\", \"user\": \"u1\", $m, \"n\": \"2\"}" \
	"n 0|{\"model\": \"pwb\", \"user\": \"u1\", $m, \"n\": 0}" \
	"n 1.5|{\"model\": \"pwb\", \"user\": \"u1\", $m, \"n\": 1.5}" \
	"n past --max-n|{\"model\": \"pwb\", \"user\": \"u1\", $m, \"n\": 17}" \
	"n 2 streamed|{\"model\": \"pwb\", \"user\": \"u1\", $m, \"n\": 2, \"stream\": true}" \
	"stream \"yes\"|{\"model\": \"pwb\", \"user\": \"u1\", $m, \"stream\": \"yes\"}" \
	"max_tokens -1|{\"model\": \"pwb\", \"user\": \"u1\", $m, \"max_tokens\": -1}" \
	"max_completion_tokens huge|{\"model\": \"pwb\", \"user\": \"u1\", $m, \"max_completion_tokens\": 9223372036854775807}" \
	"seed -1|{\"model\": \"pwb\", \"user\": \"u1\", $m, \"seed\": -1}" \
	"seed \"1\"|{\"model\": \"pwb\", \"user\": \"u1\", $m, \"seed\": \"1\"}" \
	"pwb []|{\"model\": \"pwb\", \"user\": \"u1\", $m, \"pwb\": []}" \
	"jurisdictions string|{\"model\": \"pwb\", \"user\": \"u1\", $m, \"pwb\": {\"jurisdictions\": \"de\"}}" \
	"jurisdictions [1]|{\"model\": \"pwb\", \"user\": \"u1\", $m, \"pwb\": {\"jurisdictions\": [1]}}" \
	"17 jurisdictions|{\"model\": \"pwb\", \"user\": \"u1\", $m, \"pwb\": {\"jurisdictions\": [$(printf '"de",%.0s' $(seq 16))\"de\"]}}" \
	"attributes []|{\"model\": \"pwb\", \"user\": \"u1\", $m, \"pwb\": {\"attributes\": []}}" \
	"an attribute object|{\"model\": \"pwb\", \"user\": \"u1\", $m, \"pwb\": {\"attributes\": {\"user.age\": {}}}}" \
	"an empty attribute name|{\"model\": \"pwb\", \"user\": \"u1\", $m, \"pwb\": {\"attributes\": {\"\": 1}}}" \
	"65 attributes|{\"model\": \"pwb\", \"user\": \"u1\", $m, \"pwb\": {\"attributes\": {$(for i in $(seq 64); do printf '"a%d": 1, ' "$i"; done)\"a65\": 1}}}"; do
	call "chat, ${case%%|*}: 400" 400 POST /v1/chat/completions "$svc" "${case#*|}" \
		'j["error"]["type"] == "invalid_request_error"'
done
call "a role outside OpenAI's: 400" 400 POST /v1/chat/completions "$svc" \
	'{"model": "pwb", "user": "u1", "messages": [{"role": "wizard", "content": "Hi"}]}' 'j["error"]["type"] == "invalid_request_error"'
call "developer is read as system" 200 POST /v1/chat/completions "$svc" \
	'{"model": "pwb", "user": "u1", "messages": [{"role": "developer", "content": "Be kind."}, {"role": "user", "content": [{"type": "text", "text": "Hi"}, {"type": "text", "text": "there"}]}]}' 'len(j["choices"]) == 1'
call "stream_options of a wrong type is ignored" 200 POST /v1/chat/completions "$svc" "$(chat u1 ', "stream_options": 5')" 'len(j["choices"]) == 1'

# ---- caps: messages, parts, bodies ----
py 'import json; print(json.dumps({"model": "pwb", "user": "u1", "messages": [{"role": "user", "content": "x"}] * 257}))'
call "257 messages: 413" 413 POST /v1/chat/completions "$svc" "@$tmp/in" 'j["error"]["code"] == "too_many_messages"'
py 'import json; print(json.dumps({"model": "pwb", "user": "u1", "messages": [{"role": "user", "content": "x"}] * 20000}))'
call "20000 messages: 413" 413 POST /v1/chat/completions "$svc" "@$tmp/in" 'j["error"]["code"] == "too_many_messages"'
py 'import json; print(json.dumps({"model": "pwb", "user": "u1", "messages": [{"role": "user", "content": [{"type": "text", "text": "w"}] * 5000}]}))'
call "a content of 5000 parts" 200 POST /v1/chat/completions "$svc" "@$tmp/in" 'len(j["choices"]) == 1'
py 'import json; print(json.dumps({"model": "pwb", "user": "u1", "messages": [{"role": "user", "content": [{"type": "text", "text": "w"}, 7] + [{"type": "text", "text": "w"}] * 5000}]}))'
call "a bad part among 5000: 400" 400 POST /v1/chat/completions "$svc" "@$tmp/in" 'j["error"]["type"] == "invalid_request_error"'
py 'print("{\"model\": \"pwb\", \"user\": \"u1\", \"messages\": [{\"role\": \"user\", \"content\": \"" + "a" * 1100000 + "\"}]}")'
call "a body past --max-body: 413" 413 POST /v1/chat/completions "$svc" "@$tmp/in" "$(code body_too_large)"
call "the same body chunked, no Content-Length: 413" 413 POST /v1/chat/completions "$svc" "@$tmp/in" "$(code body_too_large)" \
	-H 'Transfer-Encoding: chunked'
call "feedback past --max-body: 413" 413 POST /v1/feedback "$svc" "@$tmp/in" "$(code body_too_large)"
# A chunked body past twice the cap is not read to its end: the server
# hangs up, and serves the next request.
py 'print("{\"model\": \"pwb\", \"user\": \"u1\", \"messages\": [{\"role\": \"user\", \"content\": \"" + "a" * 3200000 + "\"}]}")'
got=$(curl -s -o /dev/null -w '%{http_code}' --max-time 30 -H "Authorization: Bearer $svc" -H 'Transfer-Encoding: chunked' \
	-H 'Expect:' --data-binary "@$tmp/in" "$base/v1/chat/completions")
rc=$?
if [ "$rc" != 0 ] && [ "$got" = 000 ]; then ok "a chunked body past twice the cap: cut off"; else fail "a chunked body past twice the cap: cut off" "curl exit $rc, status $got"; fi
call "after it, the server serves" 200 GET /v1/models "$svc" "" 'j["data"]'
got=$(curl -s -o "$tmp/body" -w '%{http_code}' --max-time 30 -H "Authorization: Bearer $svc" -H 'Transfer-Encoding: chunked' \
	-H 'Expect:' --data-binary "@$tmp/in" "$base/v1/nothing")
if [ "$got" = 404 ] && grep -q unknown_url "$tmp/body"; then ok "a body to an unknown URL: 404 before it is read"; else fail "a body to an unknown URL: 404 before it is read" "status $got"; fi
call "two Content-Length headers: 400" 400 PUT /v1/users/u1/settings "$svc" '{}' "$(code invalid_request)" -H 'Content-Length: 2' -H 'Content-Length: 3'
call "max_tokens past --max-tokens: 400 naming it" 400 POST /v1/chat/completions "$svc" "$(chat u1 | sed 's/}$/, "max_tokens": 8192}/')" \
	'j["error"]["param"] == "max_tokens"'

# ---- feedback bodies ----
fbcase() { # NAME STATUS BODY [CODE]
	local check=True
	[ $# -ge 4 ] && check=$(code "$4")
	call "feedback, $1: $2" "$2" POST /v1/feedback "$svc" "$3" "$check"
}
fbcase "decision_id 1" 400 '{"user": "u1", "decision_id": 1, "rating": 4}'
fbcase "no decision_id" 400 '{"user": "u1", "rating": 4}'
fbcase "rating \"4\"" 400 "{\"user\": \"u1\", \"decision_id\": \"$dec\", \"rating\": \"4\"}"
fbcase "rating 1e308" 400 "{\"user\": \"u1\", \"decision_id\": \"$dec\", \"rating\": 1e308}"
fbcase "rating -3" 400 "{\"user\": \"u1\", \"decision_id\": \"$dec\", \"rating\": -3}"
fbcase "choose [\"A\"]" 400 "{\"user\": \"u1\", \"decision_id\": \"$dec\", \"choose\": [\"A\"]}"
fbcase "prefer without over" 400 "{\"user\": \"u1\", \"decision_id\": \"$dec\", \"prefer\": \"A\"}" invalid_feedback
fbcase "choose and rating" 400 "{\"user\": \"u1\", \"decision_id\": \"$dec\", \"choose\": \"A\", \"rating\": 3}" invalid_feedback
fbcase "user null" 400 "{\"user\": null, \"decision_id\": \"$dec\", \"rating\": 3}" invalid_user
fbcase "user {}" 400 "{\"user\": {}, \"decision_id\": \"$dec\", \"rating\": 3}"
fbcase "an unknown decision" 404 '{"user": "u1", "decision_id": "dec_nope", "rating": 3}'
# As GET /v1/decisions/{id} answers: another user's decision is not found.
fbcase "a decision of another user" 404 "{\"user\": \"u1\", \"decision_id\": \"$dec2\", \"rating\": 3}" not_found
fbcase "an unknown alternative" 400 "{\"user\": \"u1\", \"decision_id\": \"$dec\", \"choose\": \"Z\"}"
fbcase "malformed" 400 '{"user": "u1", "decision_id": ' invalid_json

# ---- paths ----
call "a NUL in a path segment: 404" 404 GET /v1/users/%00/bounds "$svc" "" "$(code unknown_url)"
call "dot-dot out of /v1/users: 404" 404 GET /v1/users/../decisions/x "$svc" "" "$(code unknown_url)"
call "an encoded slash in an id: 404" 404 GET /v1/users/u1%2F..%2Fu2/bounds "$svc" "" "$(code unknown_url)"
call "a control byte in an id: 400" 400 GET /v1/users/a%01b/bounds "$svc" "" "$(code invalid_user)"
call "invalid UTF-8 in an id: 400" 400 GET /v1/users/a%FFb/bounds "$svc" "" "$(code invalid_user)"
call "an id of 257 bytes: 400" 400 GET "/v1/users/$(printf 'a%.0s' $(seq 257))/bounds" "$svc" "" "$(code invalid_user)"
call "a user key's own id, percent-encoded" 200 GET /v1/users/%75%31/bounds "$u1" "" 'j["user"] == "u1"'
call "a user key, another id percent-encoded: 403" 403 GET /v1/users/%75%32/bounds "$u1" "" "$(code permission_denied)"
call "a decision id of 5000 bytes: 400" 400 GET "/v1/decisions/$(printf 'd%.0s' $(seq 5000))" "$svc" "" "$(code invalid_id)"
call "a decision id with a NUL: 404" 404 GET "/v1/decisions/dec%00x" "$svc" "" 'j["error"]["type"] == "not_found_error"'
call "a query string is not part of the path" 200 GET "/v1/users/u1/bounds?user=u2" "$u1" "" 'j["user"] == "u1"'
call "a trailing slash: 404" 404 GET /v1/models/ "$svc" "" "$(code unknown_url)"
call "an unknown method: 405" 405 BREW /v1/models "$svc" "" "$(code method_not_allowed)"
curl -s -o /dev/null -D "$tmp/hdr" -X PUT --max-time 10 "$base/v1/audit/verify"
if grep -qi '^Allow: GET' "$tmp/hdr"; then ok "405 names the method in Allow"; else fail "405 names the method in Allow" "$(head -c 300 "$tmp/hdr")"; fi

# ---- Authorization variants ----
call "bearer in lower case" 200 GET /v1/models "" "" 'j["data"]' -H "Authorization: bearer $svc"
call "Bearer with two spaces" 200 GET /v1/models "" "" 'j["data"]' -H "Authorization: Bearer  $svc"
call "Bearer and no key: 401" 401 GET /v1/models "" "" "$(code missing_api_key)" -H "Authorization: Bearer "
call "Basic: 401" 401 GET /v1/models "" "" "$(code missing_api_key)" -H "Authorization: Basic dTE6cHc="
call "the key with a suffix: 401" 401 GET /v1/models "" "" "$(code invalid_api_key)" -H "Authorization: Bearer ${svc}x"
call "the key with trailing white space" 200 GET /v1/models "" "" 'j["data"]' -H "Authorization: Bearer $svc 	"
call "the key cut short: 401" 401 GET /v1/models "" "" "$(code invalid_api_key)" -H "Authorization: Bearer ${svc%?}"
call "a key of 6000 bytes: 401" 401 GET /v1/models "" "" "$(code invalid_api_key)" -H "Authorization: Bearer pwb_$(printf 'k%.0s' $(seq 6000))"
curl -s -o "$tmp/body" -w '%{http_code}' --max-time 10 -H "X-Big: $(printf 'h%.0s' $(seq 20000))" "$base/healthz" >"$tmp/code"
if [ "$(cat "$tmp/code")" = 431 ]; then ok "headers past twice --max-header: 431"; else fail "headers past twice --max-header: 431" "status $(cat "$tmp/code")"; fi
call "headers past --max-header: 431, JSON" 431 GET /v1/models "$svc" "" "$(code headers_too_large)" -H "X-Big: $(printf 'h%.0s' $(seq 9000))"
call "headers past --max-header on a POST: 431 before the body" 431 POST /v1/chat/completions "$svc" "$(chat u1)" "$(code headers_too_large)" -H "X-Big: $(printf 'h%.0s' $(seq 9000))"
call "a request line past --max-header: 431" 431 GET "/v1/models?$(printf 'q%.0s' $(seq 9000))" "$svc" "" "$(code headers_too_large)"

# ---- roles and users at every route (a promise of docs/server.md each) ----
call "admin may not chat: 403" 403 POST /v1/chat/completions "$adm" "$(chat u1)" "$(code permission_denied)"
call "auditor may not give feedback: 403" 403 POST /v1/feedback "$aud" "{\"user\": \"u1\", \"decision_id\": \"$dec\", \"rating\": 4}" "$(code permission_denied)"
call "auditor may not read bounds: 403" 403 GET /v1/users/u1/bounds "$aud" "" "$(code permission_denied)"
call "admin may not export: 403" 403 GET /v1/users/u1/export "$adm" "" "$(code permission_denied)"
call "auditor may not erase: 403" 403 DELETE /v1/users/u1 "$aud" "" "$(code permission_denied)"
call "admin may not read a decision: 403" 403 GET "/v1/decisions/$dec" "$adm" "" "$(code permission_denied)"
call "a service key may not verify the audit chain: 403" 403 GET /v1/audit/verify "$svc" "" "$(code permission_denied)"
call "a user key may not verify the audit chain: 403" 403 GET /v1/audit/verify "$u1" "" "$(code permission_denied)"
call "an admin verifies the audit chain" 200 GET /v1/audit/verify "$adm" "" 'j["intact"] is True'
call "an auditor may not reload: 403" 403 POST /v1/admin/policies/reload "$aud" "" "$(code permission_denied)"
call "a user key chats only for itself: 403" 403 POST /v1/chat/completions "$u1" "$(chat u2)" "$(code permission_denied)"
call "a user key chats for itself" 200 POST /v1/chat/completions "$u1" '{"model": "pwb", "messages": [{"role": "user", "content": "Hi"}]}' 'len(j["choices"]) == 1'
call "a user key gives feedback only for itself: 403" 403 POST /v1/feedback "$u1" "{\"user\": \"u2\", \"decision_id\": \"$dec2\", \"rating\": 4}" "$(code permission_denied)"
call "a user key sets only its own settings: 403" 403 PUT /v1/users/u2/settings "$u1" '{}' "$(code permission_denied)"
call "a user key exports only its own data: 403" 403 GET /v1/users/u2/export "$u1" "" "$(code permission_denied)"
call "a user key erases only itself: 403" 403 DELETE /v1/users/u2 "$u1" "" "$(code permission_denied)"
call "an auditor reads a decision without its user" 200 GET "/v1/decisions/$dec" "$aud" "" '"user" not in j and j["verdict"]'
call "another org never sees a decision: 404" 404 GET "/v1/decisions/$dec" "$svc_other" "" 'j["error"]["type"] == "not_found_error"'
call "another org's feedback on it: 404" 404 POST /v1/feedback "$svc_other" "{\"user\": \"u1\", \"decision_id\": \"$dec\", \"rating\": 4}" 'j["error"]["type"] == "not_found_error"'
call "another org's key sees its own users only" 200 GET /v1/users/u1/bounds "$svc_other" "" 'j["org"] == "open-studio"'
call "a user key reads its own decision" 200 GET "/v1/decisions/$dec" "$u1" "" 'j["user"] == "u1"'
call "a user key, another user's decision: 404" 404 GET "/v1/decisions/$dec2" "$u1" "" 'j["error"]["type"] == "not_found_error"'
call "settings of a wrong type: 400" 400 PUT /v1/users/u1/settings "$svc" '[]' 'j["error"]["type"] == "invalid_request_error"'
call "settings, malformed: 400" 400 PUT /v1/users/u1/settings "$svc" '{"categories": ' "$(code invalid_json)"

# ---- connections: slow, vanishing, a flood ----
python3 - "$port" "$svc" "$maxconn" >"$tmp/conn" 2>&1 <<'PY'
import json, socket, sys, threading, time
port, key, maxconn = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
body = json.dumps({"model": "pwb", "user": "u1", "messages": [{"role": "user", "content": "Hi"}]}).encode()

def conn():
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    return s

def request(method, path, body=b"", extra=""):
    return (f"{method} {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {key}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n{extra}\r\n").encode() + body

def answer(s):
    data = b""
    while b"\r\n\r\n" not in data:
        c = s.recv(65536)
        if not c:
            break
        data += c
    head, _, rest = data.partition(b"\r\n\r\n")
    status = int(head.split(b" ")[1]) if head.startswith(b"HTTP/") else 0
    n = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            n = int(line.split(b":")[1])
    while len(rest) < n:
        c = s.recv(65536)
        if not c:
            break
        rest += c
    return status, rest

def healthz():
    s = conn()
    s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    st, _ = answer(s)
    s.close()
    return st

def check(name, cond):
    print(("ok " if cond else "FAIL ") + name)

# Slow clients trickle a chat byte by byte; the others are served.
req = request("POST", "/v1/chat/completions", body)
slow = [conn() for _ in range(3)]
stop = threading.Event()
def trickle(s):
    for i in range(len(req) - 1):
        if stop.is_set():
            return
        try:
            s.sendall(req[i:i + 1])
        except OSError:
            return
        time.sleep(0.05)
ts = [threading.Thread(target=trickle, args=(s,)) for s in slow]
for t in ts:
    t.start()
time.sleep(0.5)
t0 = time.time()
ok = all(healthz() == 200 for _ in range(5))
check("others are served while slow clients trickle", ok and time.time() - t0 < 3)
s = conn()
s.sendall(request("POST", "/v1/chat/completions", body))
st, b = answer(s)
s.close()
check("a chat is served while slow clients trickle", st == 200 and b"chat.completion" in b)
stop.set()
for t in ts:
    t.join()
for s in slow:
    s.close()

# A silent connection is closed after --idle-timeout (3 s).
s = conn()
s.settimeout(8)
t0 = time.time()
try:
    closed = s.recv(1) == b""
except OSError:
    closed = True
check("a silent connection is closed after --idle-timeout", closed and time.time() - t0 < 7.5)
s.close()

# Clients that leave mid-request: headers only, part of a body, a chat
# whose answer is not awaited, a stream left after its first bytes or
# before them.
for cut in (20, len(req) - len(body) - 2, len(req) - 5):
    s = conn()
    s.sendall(req[:cut])
    s.close()
for _ in range(3):
    s = conn()
    s.sendall(req)
    s.close()
sbody = json.dumps({"model": "pwb", "user": "u1", "stream": True, "messages": [{"role": "user", "content": "Tell me a story"}]}).encode()
for wait in (0, 1):
    s = conn()
    s.sendall(request("POST", "/v1/chat/completions", sbody))
    if wait:
        s.recv(64)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    s.close()
time.sleep(1.5)
check("the server serves after clients left mid-request", healthz() == 200)

# A Content-Length past --max-body: 413 before any of the body.
s = conn()
s.sendall(request("POST", "/v1/chat/completions").replace(b"Content-Length: 0", b"Content-Length: 18446744073709551615"))
st, b = answer(s)
s.close()
check("a Content-Length past --max-body: 413 at once", st == 413 and b"body_too_large" in b)

# A flood: with --max-connections open and silent, one more is not
# served; once they are gone, it is.
flood = [conn() for _ in range(maxconn)]
time.sleep(0.3)
extra = conn()
extra.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
extra.settimeout(1)
try:
    served = extra.recv(1) != b""
except socket.timeout:
    served = False
except OSError:
    served = False
check("no more than --max-connections are served at once", not served)
for s in flood:
    s.close()
extra.close()
time.sleep(0.5)
check("the server serves after the flood", healthz() == 200)

# Keep-alive: several requests on one connection, one after a 400.
s = conn()
s.sendall(request("POST", "/v1/chat/completions", b"{"))
st1, b1 = answer(s)
s.sendall(request("GET", "/v1/models"))
st2, b2 = answer(s)
s.close()
check("keep-alive after a 400", st1 == 400 and b"invalid_json" in b1 and st2 == 200)
PY
while read -r line; do
	case $line in
	ok\ *) ok "${line#ok }" ;;
	FAIL\ *) fail "${line#FAIL }" ;;
	*) fail "connection cases" "$line" ;;
	esac
done <"$tmp/conn"

# A burst of chats at once, streamed and whole, on 4 workers.
for i in $(seq 12); do
	s=false
	[ $((i % 2)) -eq 0 ] && s=true
	curl -s --max-time 60 -o "$tmp/burst.$i" -w '%{http_code}\n' -H "Authorization: Bearer $svc" \
		--data-binary "$(chat "u$i" ", \"stream\": $s")" "$base/v1/chat/completions" >"$tmp/burst.code.$i" &
done
wait_ok=0
for i in $(seq 12); do
	while [ ! -s "$tmp/burst.code.$i" ] && kill -0 "$srv" 2>/dev/null; do sleep 0.1; done
done
sleep 0.2
[ "$(cat "$tmp"/burst.code.* | sort -u)" = 200 ] && wait_ok=1
if [ "$wait_ok" -eq 1 ] && grep -q '\[DONE\]' "$tmp/burst.2"; then
	ok "a burst of 12 chats on 4 workers"
else
	fail "a burst of 12 chats on 4 workers" "$(cat "$tmp"/burst.code.* | tr '\n' ' ')"
fi

# A revoked key is refused at once, on a connection opened before.
kid=$(printf '%s' "$u1" | cut -d_ -f2)
if "$pwb" keys revoke --db "$db" --org acme-tutor "$kid" >/dev/null 2>"$tmp/revoke.err"; then
	call "a revoked key is refused at once" 401 GET /v1/users/u1/bounds "$u1" "" "$(code invalid_api_key)"
else
	fail "a revoked key is refused at once" "revoke failed: $(head -c 200 "$tmp/revoke.err")"
fi

call "still serving at the end" 200 POST /v1/chat/completions "$svc" "$(chat u1)" 'len(j["choices"]) == 1'
curl -s "$base/metrics" >"$tmp/metrics"
if grep -q '^pwb_http_requests_total{route="/v1/chat/completions",method="POST",status="400"} [1-9]' "$tmp/metrics" &&
	grep -q '^pwb_http_requests_total{route="/v1/chat/completions",method="POST",status="413"} [1-9]' "$tmp/metrics"; then
	ok "metrics count the refusals"
else
	fail "metrics count the refusals" "$(grep '^pwb_http_requests_total' "$tmp/metrics" | head -c 600)"
fi

kill -TERM "$srv"
wait "$srv"
rc=$?
srv=
[ "$rc" -eq 0 ] && ok "SIGTERM stops gracefully (exit 0, no leak)" || fail "SIGTERM stops gracefully (exit 0, no leak)" "exit $rc: $(grep -m3 -E 'ERROR|SUMMARY' "$tmp/serve.err")"
if grep -qE 'AddressSanitizer|LeakSanitizer|runtime error:' "$tmp/serve.err"; then
	fail "no sanitizer report" "$(grep -m3 -E 'AddressSanitizer|LeakSanitizer|runtime error:' "$tmp/serve.err")"
else
	ok "no sanitizer report"
fi
if grep -q 'Tell me a story' "$tmp/serve.err"; then
	fail "no user content in the log"
else
	ok "no user content in the log"
fi

finish
