#!/usr/bin/env bash
# The gateway in operation (docs/server.md): two replicas on one
# PostgreSQL database (settings, a learnt model and a policy reload on one
# reach the other); SIGTERM with slow chats in flight (each finishes with
# 200, new connections are refused, exit 0); kill -9 right after
# acknowledged feedback (every acknowledged event stored exactly once);
# an upstream that is down (502) or slower than --deadline (504, whole
# and streamed) while /healthz keeps answering. The slow upstream is
# tests/engine/mock_openai.py.
#
#   bash serve_ops.sh PATH/TO/pwb PATH/TO/policies PATH/TO/model.gguf PATH/TO/mock_openai.py
set -u

if [ $# -ne 4 ]; then
	echo "usage: bash serve_ops.sh PATH/TO/pwb PATH/TO/policies PATH/TO/model.gguf PATH/TO/mock_openai.py" >&2
	exit 2
fi
# shellcheck source=../lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh" serve_ops.sh
pwb=$(pwb_path "$1") || exit 2
model=$3
mock=$4
need_python
if [ ! -f "$model" ]; then
	echo "serve_ops.sh: skipped: no model at $model (../shared/models/stories260K.gguf)" >&2
	exit 77
fi
if ! command -v curl >/dev/null || ! command -v sqlite3 >/dev/null; then
	echo "serve_ops.sh: curl and sqlite3 are needed" >&2
	exit 2
fi
cp -r "$2" "$tmp/pol"
pol=$tmp/pol
pids=()
trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done; rm -rf "$tmp"' EXIT

# start NAME ARGS...: pwb serve on a free port; $port gets it, $pid the
# process.
start() {
	local name=$1
	shift
	"$pwb" serve --policies "$pol" --listen 127.0.0.1:0 "$@" \
		>"$tmp/$name.out" 2>"$tmp/$name.err" &
	pid=$!
	pids+=("$pid")
	port=$(serve_port "$tmp/$name.out" "$pid")
	if [ -z "$port" ]; then
		echo "serve_ops.sh: $name did not start: $(head -c 600 "$tmp/$name.err")" >&2
		exit 1
	fi
}

# req OUT METHOD URL KEY [BODY]: the status on stdout, the body in OUT.
req() {
	local args=(-s -o "$1" -w '%{http_code}' -X "$2" --max-time 60)
	[ -n "$4" ] && args+=(-H "Authorization: Bearer $4")
	[ -n "${5-}" ] && args+=(-H 'Content-Type: application/json' --data-binary "$5")
	curl "${args[@]}" "$3"
}

# jget FILE EXPR: EXPR of the parsed JSON j, printed.
jget() {
	python3 -c 'import json, sys
j = json.load(open(sys.argv[1], encoding="utf-8"))
print(eval(sys.argv[2]))' "$1" "$2" 2>/dev/null
}

chat() { # USER [EXTRA JSON FIELDS]
	printf '{"model": "pwb", "user": "%s", "messages": [{"role": "user", "content": "Tell me a story"}]%s}' "$1" "${2-}"
}

python3 "$mock" >"$tmp/mock.out" 2>"$tmp/mock.err" &
pids+=($!)
for _ in $(seq 50); do [ -s "$tmp/mock.out" ] && break; sleep 0.1; done
mport=$(head -n 1 "$tmp/mock.out")
upstream=http://127.0.0.1:$mport/v1

# ---- 1. two replicas on PostgreSQL ----
schema="pwb_serve_ops_$$"
pg=$(pg_url "$schema")
pg_rc=$?
[ "$pg_rc" = 2 ] && exit 2
if [ "$pg_rc" = 1 ]; then
	echo "SKIP replicas: PWB_TEST_POSTGRES is not set (scripts/start-postgres.sh) or psql is missing"
else
	svc=$("$pwb" keys create --db "$pg" --org acme-tutor --role service --policies "$pol" | tail -n 1)
	adm=$("$pwb" keys create --db "$pg" --org acme-tutor --role admin --policies "$pol" | tail -n 1)
	"$pwb" user consent --db "$pg" --org acme-tutor --user u1 --grant --policies "$pol" >/dev/null
	start a --db "$pg" --model "$model" --max-tokens 16
	A=http://127.0.0.1:$port
	start b --db "$pg" --model "$model" --max-tokens 16
	B=http://127.0.0.1:$port

	# Settings on A, bounds on B.
	req "$tmp/b0" GET "$B/v1/users/u1/bounds" "$svc" >/dev/null
	before=$(jget "$tmp/b0" 'j["dimensions"]["verbosity"]["value"]')
	code=$(req "$tmp/s" PUT "$A/v1/users/u1/settings" "$svc" '{"dimensions": {"verbosity": 0.8}, "categories": {"profanity": "on"}}')
	code2=$(req "$tmp/b1" GET "$B/v1/users/u1/bounds" "$svc")
	after=$(jget "$tmp/b1" '(j["dimensions"]["verbosity"]["value"], j["categories"]["profanity"]["active"])')
	if [ "$code" = 200 ] && [ "$code2" = 200 ] && [ "$before" = 0.5 ] && [ "$after" = "(0.8, True)" ]; then
		ok "replicas: settings put on A are B's next bounds"
	else
		fail "replicas: settings put on A are B's next bounds" "$code $code2 before $before after $after"
	fi

	# A model learnt on A scores B's next chat.
	req "$tmp/c0" POST "$B/v1/chat/completions" "$svc" "$(chat u1)" >/dev/null
	p0=$(jget "$tmp/c0" 'j["pwb"]["personal"]')
	req "$tmp/c1" POST "$A/v1/chat/completions" "$svc" "$(chat u1)" >/dev/null
	dec=$(jget "$tmp/c1" 'j["pwb"]["decision_id"]')
	code=$(req "$tmp/f1" POST "$A/v1/feedback" "$svc" "{\"user\": \"u1\", \"decision_id\": \"$dec\", \"choose\": \"B\"}")
	v1=$(jget "$tmp/f1" 'j["model_version"]')
	req "$tmp/c2" POST "$B/v1/chat/completions" "$svc" "$(chat u1)" >/dev/null
	p2=$(jget "$tmp/c2" 'j["pwb"]["personal"]')
	dec2=$(jget "$tmp/c2" 'j["pwb"]["decision_id"]')
	req "$tmp/f2" POST "$B/v1/feedback" "$svc" "{\"user\": \"u1\", \"decision_id\": \"$dec2\", \"choose\": \"B\"}" >/dev/null
	v2=$(jget "$tmp/f2" 'j["model_version"]')
	if [ "$code" = 200 ] && [ "$p0" = False ] && [ "$v1" = 1 ] && [ "$p2" = True ] && [ "$v2" = 2 ]; then
		ok "replicas: a model learnt on A is used and built on by B"
	else
		fail "replicas: a model learnt on A is used and built on by B" "feedback $code, personal before $p0, after $p2, versions $v1 $v2"
	fi

	# A reload on A reaches B; A loads its folder once.
	sed -i 's/^candidates: 4/candidates: 3/' "$pol/org/acme-tutor.yaml"
	code=$(req "$tmp/r" POST "$A/v1/admin/policies/reload" "$adm")
	vb=""
	for _ in $(seq 50); do
		req "$tmp/rb" GET "$B/readyz" "" >/dev/null
		vb=$(jget "$tmp/rb" 'j["policy_version"]')
		[ "$vb" = 2 ] && break
		sleep 0.1
	done
	req "$tmp/bb" GET "$B/v1/users/u1/bounds" "$svc" >/dev/null
	cands=$(jget "$tmp/bb" 'j["candidates"]')
	if [ "$code" = 200 ] && [ "$vb" = 2 ] && [ "$cands" = 3 ]; then
		ok "replicas: a reload on A reaches B within 5 s"
	else
		fail "replicas: a reload on A reaches B within 5 s" "reload $code, B at set $vb, candidates $cands"
	fi
	sleep 1
	req "$tmp/ra" GET "$A/readyz" "" >/dev/null
	va=$(jget "$tmp/ra" 'j["policy_version"]')
	[ "$va" = 2 ] && ok "replicas: the reloading replica does not reload again on its own notice" ||
		fail "replicas: the reloading replica does not reload again on its own notice" "A at set $va"

	# B's notice connection dropped: notices may be lost, so B reloads.
	psql -q -X -t -A "$PWB_TEST_POSTGRES" -c "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query LIKE 'LISTEN%' AND pid <> pg_backend_pid()" >/dev/null
	vb=""
	for _ in $(seq 50); do
		req "$tmp/rb" GET "$B/readyz" "" >/dev/null
		vb=$(jget "$tmp/rb" 'j["policy_version"]')
		[ "$vb" -ge 3 ] 2>/dev/null && break
		sleep 0.1
	done
	[ "$vb" -ge 3 ] 2>/dev/null && ok "replicas: a dropped notice connection reloads the policies" ||
		fail "replicas: a dropped notice connection reloads the policies" "B at set $vb"
	kill -TERM "${pids[@]: -2}" 2>/dev/null
	wait "${pids[@]: -2}" 2>/dev/null
	cp "$2/org/acme-tutor.yaml" "$pol/org/acme-tutor.yaml"
	psql -q -X "$PWB_TEST_POSTGRES" -c "SET client_min_messages = warning" -c "DROP SCHEMA IF EXISTS $schema CASCADE" >/dev/null
fi

# ---- 2. SIGTERM with slow chats in flight ----
db=sqlite:$tmp/stop.db
svc=$("$pwb" keys create --db "$db" --org acme-tutor --role service --policies "$pol" | tail -n 1)
start stop --db "$db" --upstream "$upstream" --upstream-model slow:2500
base=http://127.0.0.1:$port
srv=$pid
clients=()
for i in 1 2 3 4; do
	(req "$tmp/slow$i" POST "$base/v1/chat/completions" "$svc" "$(chat "u$i")" >"$tmp/slow$i.code") &
	clients+=($!)
done
(req "$tmp/slow5" POST "$base/v1/chat/completions" "$svc" "$(chat u5 ', "stream": true')" >"$tmp/slow5.code") &
clients+=($!)
sleep 1
kill -TERM "$srv"
sleep 0.3
curl -s -o /dev/null --max-time 5 "$base/healthz"
refused=$?
wait "$srv"
rc=$?
wait "${clients[@]}"
good=0
for i in 1 2 3 4; do
	[ "$(cat "$tmp/slow$i.code")" = 200 ] &&
		[ "$(jget "$tmp/slow$i" 'j["choices"][0]["finish_reason"] in ("stop", "length") and len(j["choices"][0]["message"]["content"]) > 0')" = True ] &&
		good=$((good + 1))
done
[ "$good" = 4 ] && ok "SIGTERM: four whole chats in flight finish with 200 and their answer" ||
	fail "SIGTERM: four whole chats in flight finish with 200 and their answer" "$good of 4"
if [ "$(cat "$tmp/slow5.code")" = 200 ] && tail -n 2 "$tmp/slow5" | grep -q '^data: \[DONE\]'; then
	ok "SIGTERM: a stream in flight ends with [DONE]"
else
	fail "SIGTERM: a stream in flight ends with [DONE]" "$(cat "$tmp/slow5.code"): $(tail -c 200 "$tmp/slow5")"
fi
[ "$refused" = 7 ] && ok "SIGTERM: new connections are refused" || fail "SIGTERM: new connections are refused" "curl status $refused"
[ "$rc" = 0 ] && ok "SIGTERM: exit 0 after the requests in flight" || fail "SIGTERM: exit 0 after the requests in flight" "exit $rc"

# ---- 3. kill -9 after acknowledged feedback ----
db=sqlite:$tmp/crash.db
file=$tmp/crash.db
svc=$("$pwb" keys create --db "$db" --org acme-tutor --role service --policies "$pol" | tail -n 1)
aud=$("$pwb" keys create --db "$db" --org acme-tutor --role auditor --policies "$pol" | tail -n 1)
for u in 1 2 3 4; do
	"$pwb" user consent --db "$db" --org acme-tutor --user "c$u" --grant --policies "$pol" >/dev/null
done
start crash --db "$db" --upstream "$upstream" --upstream-model fast
base=http://127.0.0.1:$port
srv=$pid
for u in 1 2 3 4; do
	: >"$tmp/decs$u"
	for k in $(seq 15); do
		req "$tmp/d" POST "$base/v1/chat/completions" "$svc" "$(chat "c$u")" >/dev/null
		jget "$tmp/d" 'j["pwb"]["decision_id"]' >>"$tmp/decs$u"
	done
done
clients=()
for u in 1 2 3 4; do
	(
		: >"$tmp/acked$u"
		while read -r dec; do
			code=$(req "$tmp/fb$u" POST "$base/v1/feedback" "$svc" "{\"user\": \"c$u\", \"decision_id\": \"$dec\", \"prefer\": \"A\", \"over\": \"B\"}")
			[ "$code" = 200 ] && echo "$dec" >>"$tmp/acked$u"
		done <"$tmp/decs$u"
	) &
	clients+=($!)
done
for _ in $(seq 200); do
	[ "$(cat "$tmp"/acked* | wc -l)" -ge 10 ] && break
	sleep 0.02
done
kill -9 "$srv"
wait "$srv" 2>/dev/null
wait "${clients[@]}"
start crash2 --db "$db" --upstream "$upstream" --upstream-model fast
base=http://127.0.0.1:$port
acked=$(cat "$tmp"/acked* | wc -l)
bad=0
while read -r dec; do
	n=$(sqlite3 "$file" "SELECT count(*) FROM feedback WHERE decision_id = '$dec'")
	[ "$n" = 1 ] || bad=$((bad + 1))
done < <(cat "$tmp"/acked*)
dup=$(sqlite3 "$file" "SELECT count(*) FROM (SELECT decision_id FROM feedback GROUP BY decision_id HAVING count(*) > 1)")
if [ "$acked" -gt 0 ] && [ "$bad" = 0 ] && [ "$dup" = 0 ]; then
	ok "kill -9: each of $acked acknowledged feedback events is stored exactly once"
else
	fail "kill -9: each acknowledged feedback event is stored exactly once" "$acked acknowledged, $bad missing or doubled, $dup decisions with more than one"
fi
code=$(req "$tmp/v" GET "$base/v1/audit/verify" "$aud")
[ "$code" = 200 ] && [ "$(jget "$tmp/v" 'j["intact"]')" = True ] && ok "kill -9: the restarted server finds the audit chain intact" ||
	fail "kill -9: the restarted server finds the audit chain intact" "$code $(head -c 200 "$tmp/v")"
kill -TERM "$pid"
wait "$pid"

# ---- 4. an upstream that is down or slow ----
db=sqlite:$tmp/up.db
svc=$("$pwb" keys create --db "$db" --org acme-tutor --role service --policies "$pol" | tail -n 1)
closed=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
start down --db "$db" --upstream "http://127.0.0.1:$closed/v1"
code=$(req "$tmp/e" POST "http://127.0.0.1:$port/v1/chat/completions" "$svc" "$(chat u1)")
[ "$code" = 502 ] && [ "$(jget "$tmp/e" 'j["error"]["code"]')" = engine_error ] &&
	ok "an upstream that is down: 502 engine_error" || fail "an upstream that is down: 502 engine_error" "$code $(head -c 200 "$tmp/e")"
kill -TERM "$pid"
wait "$pid"
start late --db "$db" --upstream "$upstream" --upstream-model slow:4000 --deadline 1000
base=http://127.0.0.1:$port
(req "$tmp/late" POST "$base/v1/chat/completions" "$svc" "$(chat u1)" >"$tmp/late.code") &
sleep 0.3
t0=$(date +%s.%N)
hc=$(req "$tmp/h" GET "$base/healthz" "")
t1=$(date +%s.%N)
wait $!
if [ "$hc" = 200 ] && python3 -c "import sys; sys.exit(0 if $t1 - $t0 < 0.5 else 1)"; then
	ok "a slow upstream: /healthz answers meanwhile"
else
	fail "a slow upstream: /healthz answers meanwhile" "$hc after $(python3 -c "print($t1 - $t0)") s"
fi
[ "$(cat "$tmp/late.code")" = 504 ] && [ "$(jget "$tmp/late" 'j["error"]["code"]')" = deadline_exceeded ] &&
	ok "past --deadline: 504 deadline_exceeded" || fail "past --deadline: 504 deadline_exceeded" "$(cat "$tmp/late.code") $(head -c 200 "$tmp/late")"
code=$(req "$tmp/ls" POST "$base/v1/chat/completions" "$svc" "$(chat u1 ', "stream": true')")
[ "$code" = 504 ] && [ "$(jget "$tmp/ls" 'j["error"]["code"]')" = deadline_exceeded ] &&
	ok "past --deadline, streamed: 504, not an empty answer" || fail "past --deadline, streamed: 504, not an empty answer" "$code $(head -c 300 "$tmp/ls")"
kill -TERM "$pid"
wait "$pid"

finish
