#!/usr/bin/env bash
# `pwb simulate db` and `pwb report datasheet` as a user runs them: the
# same seed gives the same store and the same report; the report holds the
# keys docs/report.md promises, with figures that fit the simulated
# history (a long tail of raters, blocks by law, org and user); the page
# is well-formed and holds its charts; on PostgreSQL the report is the
# SQLite one; bad input gets one clear line and writes nothing.
#
#   bash report.sh PATH/TO/pwb PATH/TO/policies
#
# Prints `ok NAME` or `FAIL NAME: why` per case, then `N passed, M failed`.
# Exits 1 when a case failed, 2 on a usage error. Needs python3 and xmllint.
set -u

if [ $# -ne 2 ]; then
	echo "usage: bash report.sh PATH/TO/pwb PATH/TO/policies" >&2
	exit 2
fi
# shellcheck source=../lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh" report.sh
pwb=$(pwb_path "$1") || exit 2
pol=$2
need_python
command -v xmllint >/dev/null || { echo "report.sh: xmllint is needed (scripts/install-deps.sh)" >&2; exit 2; }
now=1790000000
check() { # NAME CONDITION...
	local name=$1
	shift
	if "$@"; then ok "$name"; else fail "$name" "$(shown)"; fi
}
# jcheck NAME FILE EXPR: a Python expression over the JSON j.
jcheck() {
	if python3 - "$2" "$3" <<'PY'; then ok "$1"; else fail "$1" "$(head -c 300 "$2")"; fi
import json, sys
j = json.load(open(sys.argv[1], encoding="utf-8"))
sys.exit(0 if eval(sys.argv[2]) else 1)
PY
}
sim() { # URL [extra]
	run simulate db --db "$1" --org open-studio --policies "$pol" --users 120 --days 20 --now "$now" "${@:2}"
}

sim "sqlite:$tmp/a.db"
check "simulate db fills a store" test "$rc" = 0
sim "sqlite:$tmp/b.db"
run report datasheet --db "sqlite:$tmp/a.db" --org open-studio --now "$now"
cp "$tmp/out" "$tmp/a.json"
run report datasheet --db "sqlite:$tmp/b.db" --org open-studio --now "$now"
cp "$tmp/out" "$tmp/b.json"
check "the same seed, the same report" cmp -s "$tmp/a.json" "$tmp/b.json"
sim "sqlite:$tmp/c.db" --seed 2
run report datasheet --db "sqlite:$tmp/c.db" --org open-studio --now "$now"
check "another seed, another report" test "$(cat "$tmp/out")" != "$(cat "$tmp/a.json")"

jcheck "the keys docs/report.md promises" "$tmp/a.json" \
	'all(k in j for k in ("raters", "feedback_per_rater", "blocks", "personalisation", "policies")) and all(k in j["feedback_per_rater"] for k in ("gini", "top1_share", "top10_share")) and all(k in j["blocks"] for k in ("by_tier", "by_category")) and all(k in j["personalisation"] for k in ("mean", "p10", "p50", "p90"))'
jcheck "120 users, each a rater" "$tmp/a.json" 'j["users"]["users"] == 120 and j["feedback_per_rater"]["raters"] == 120'
jcheck "a long tail: Gini above 0.3, the top 10 % give over a quarter" "$tmp/a.json" \
	'j["feedback_per_rater"]["gini"] > 0.3 and j["feedback_per_rater"]["top10_share"] > 0.25'
jcheck "experts and end users" "$tmp/a.json" 'set(j["raters"]["by_role"]) == {"end_user", "expert"}'
jcheck "raters grouped by age band, with consent" "$tmp/a.json" \
	'any(a["attributes"].get("age_band") for a in j["raters"]["by_attributes"])'
jcheck "blocks by the law, the org and users" "$tmp/a.json" 'set(j["blocks"]["by_tier"]) == {"law", "org", "user"}'
run policy resolve --policies "$pol" --org open-studio --json
cp "$tmp/out" "$tmp/policy.json"
jcheck "each block is by the tier that forbids it (law, org), or a user's switch" "$tmp/a.json" \
	'all((p["permission"] == "forbid" and p["set_by"]["tier"] == d["tier"]) if d["tier"] != "user" else p["permission"] in ("opt_in", "opt_out") for d in j["blocks"]["by_day"] for p in [json.load(open("'"$tmp"'/policy.json"))["categories"][d["category"]]])'
jcheck "personal models stray" "$tmp/a.json" 'j["personalisation"]["users"] > 50 and j["personalisation"]["p90"] > 0'
jcheck "one policy hash, the one in force" "$tmp/a.json" \
	'len(j["policies"]["seen"]) == 1 and j["policies"]["seen"][0]["hash"] == j["policies"]["in_force"]["hash"]'
jcheck "the period ends at --now (included)" "$tmp/a.json" 'j["period"]["until"] == "2026-09-21T14:13:21Z"'
run report datasheet --db "sqlite:$tmp/a.db" --org open-studio --now "$now" --since 2026-09-15
cp "$tmp/out" "$tmp/part.json"
jcheck "--since counts fewer events" "$tmp/part.json" \
	"j['feedback_per_rater']['events'] < $(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["feedback_per_rater"]["events"])' "$tmp/a.json")"

run report datasheet --db "sqlite:$tmp/a.db" --org open-studio --now "$now" --out "$tmp/rep"
check "--out writes the JSON and the page" test "$rc" = 0 -a -s "$tmp/rep/datasheet.json" -a -s "$tmp/rep/datasheet.html"
check "--out's JSON is the report" cmp -s "$tmp/rep/datasheet.json" <(head -c -1 "$tmp/a.json")
check "the page is well-formed" xmllint --noout "$tmp/rep/datasheet.html"
check "the page has its charts, and no script" test "$(grep -c '<svg' "$tmp/rep/datasheet.html")" -ge 4 -a "$(grep -c '<script' "$tmp/rep/datasheet.html")" = 0

run report risks --db "sqlite:$tmp/a.db" --org open-studio --now "$now" --out "$tmp/rep"
check "risks --out writes the JSON and the page" test "$rc" = 0 -a -s "$tmp/rep/risks.json" -a -s "$tmp/rep/risks.html"
check "the risks page is well-formed" xmllint --noout "$tmp/rep/risks.html"
jcheck "the register's seven entries, as docs/RISKS.md defines them" "$tmp/rep/risks.json" \
	'[e["id"] for e in j["entries"]] == ["efficiency_autonomy", "echo_chambers", "over_reliance_anthropomorphism", "privacy_profiling", "malicious_use_jailbreaking", "unequal_quality", "concentration_of_influence"] and all(e["level"] in ("individual", "societal") and e["kind"] in ("benefit", "risk") and e["description"] and e["mitigations"] and all(set(i) >= {"name", "value", "threshold", "status"} and i["status"] in ("green", "amber", "red") for i in e["indicators"]) for e in j["entries"])'
jcheck "the register agrees with the datasheet" "$tmp/rep/risks.json" \
	"[i['value'] for e in j['entries'] for i in e['indicators'] if i['name'] == 'feedback_gini'] == [$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["feedback_per_rater"]["gini"])' "$tmp/a.json")]"
for id in $(python3 -c 'import json,sys; print(" ".join(i["name"] for e in json.load(open(sys.argv[1]))["entries"] for i in e["indicators"]))' "$tmp/rep/risks.json"); do
	grep -q "\`$id\`" "$(dirname "$pol")/docs/RISKS.md" || fail "docs/RISKS.md defines $id" "not found"
done
ok "docs/RISKS.md defines every indicator"

# Bad input: one clear line, nothing written.
run report datasheet --db "sqlite:$tmp/none.db" --org open-studio
check "a store that is not there: exit 1, naming it" test "$rc" = 1 -a ! -e "$tmp/none.db"
grep -q "none.db" "$tmp/err" || fail "the missing store is named" "$(shown)"
run report datasheet --db "sqlite:$tmp/a.db" --org open-studo --policies "$pol"
check "an unknown org: exit 1 with a did-you-mean" grep -q "did you mean 'open-studio'" "$tmp/err"
run report datasheet --db "sqlite:$tmp/a.db" --org open-studio --since 2026-13-01
check "a bad date: usage error" test "$rc" = 2
run report datasheet --db "sqlite:$tmp/a.db" --org open-studio --since 2026-02-01 --until 2026-01-01
check "an empty period: usage error" test "$rc" = 2
: >"$tmp/afile"
run report datasheet --db "sqlite:$tmp/a.db" --org open-studio --out "$tmp/afile"
check "--out a file: exit 1" test "$rc" = 1
run report nothing
check "an unknown report: usage error" test "$rc" = 2
run simulate db --db "sqlite:$tmp/d.db" --org nobody --policies "$pol"
check "simulate db for an unknown org: exit 1" test "$rc" = 1

# PostgreSQL: the same history gives the same report.
pg=$(pg_url "pwb_report_$$")
pg_rc=$?
[ "$pg_rc" = 2 ] && exit 2
if [ "$pg_rc" = 0 ]; then
	sim "$pg"
	run report datasheet --db "$pg" --org open-studio --now "$now"
	check "on PostgreSQL, the SQLite report" cmp -s "$tmp/out" "$tmp/a.json"
	psql -q -X "$PWB_TEST_POSTGRES" -c "SET client_min_messages = warning" -c "DROP SCHEMA IF EXISTS pwb_report_$$ CASCADE" >/dev/null
else
	echo "SKIP PostgreSQL: PWB_TEST_POSTGRES is not set (scripts/start-postgres.sh)"
fi

finish
