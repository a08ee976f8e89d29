#!/usr/bin/env bash
# Evaluates the preference learner on the shared datasets and on simulated
# users (docs/EVALUATION.md, docs/prefs.md): converts hh-rlhf (pairs, no
# user ids: the population model only) and HateCheck (each annotator a
# user, each label a rating) to feedback JSONL, and runs `pwb eval prefs`.
#
#   bash scripts/evaluate-prefs.sh [BUILD_DIR] [SHARED_DATA_DIR]
#
# Writes only under BUILD_DIR/eval (prefs-*.json). Exits 77 (skipped) with
# a message when the shared data is absent. As a test (CTest runs it), it
# fails unless the population model beats chance on held-out hh-rlhf pairs
# and HateCheck labels (the lower end of the 95 % interval above 0.5), and
# the personalised model beats the population model on simulated users who
# differ (the intervals apart).
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
data=${2:-../shared/data}
pwb=$build/pwb
if [ ! -d "$data/hh-rlhf" ] || [ ! -d "$data/hatecheck" ]; then
	echo "evaluate-prefs: $data/hh-rlhf or $data/hatecheck is absent;" \
		"skipping" >&2
	exit 77
fi
out=$build/eval
mkdir -p "$out"
for d in hh-rlhf-prefs hatecheck-prefs; do
	python3 scripts/data/convert.py "$d" "$data" >"$out/$d.jsonl"
	echo "== $d"
	"$pwb" eval prefs --data "$out/$d.jsonl" --json | tee "$out/prefs-$d.json"
done
"$pwb" simulate prefs --users 200 --events 40 --seed 1 --spread 1 \
	--out "$out/sim-spread1.jsonl" --settings-dir "$out/sim-settings"
"$pwb" simulate prefs --users 200 --events 40 --seed 1 --spread 0 \
	--out "$out/sim-spread0.jsonl"
echo "== simulated, spread 1, with the users' stated settings (open-studio)"
"$pwb" eval prefs --data "$out/sim-spread1.jsonl" --json \
	--settings-dir "$out/sim-settings" --policies policies \
	--org open-studio | tee "$out/prefs-sim-spread1.json"
echo "== simulated, spread 0"
"$pwb" eval prefs --data "$out/sim-spread0.jsonl" --json |
	tee "$out/prefs-sim-spread0.json"
python3 - "$out" <<'PY'
import json, sys
d = sys.argv[1]
hh = json.load(open(d + "/prefs-hh-rlhf-prefs.json"))["anonymous"]["population"]
hc = json.load(open(d + "/prefs-hatecheck-prefs.json"))["accuracy"]
s1 = json.load(open(d + "/prefs-sim-spread1.json"))["accuracy"]
s0 = json.load(open(d + "/prefs-sim-spread0.json"))["accuracy"]
checks = [
    ("hh-rlhf population above chance", hh["ci95"][0] > 0.5),
    ("hatecheck population above chance", hc["population"]["ci95"][0] > 0.5),
    ("simulated: personal above population",
     s1["personal"]["ci95"][0] > s1["population"]["ci95"][1]),
    ("simulated, alike: personal within the population's interval",
     s0["population"]["ci95"][0] <= s0["personal"]["mean"] <= s0["population"]["ci95"][1]),
]
print("hh-rlhf population %.3f; hatecheck population %.3f personal %.3f; "
      "simulated population %.3f personal %.3f explicit %.3f; alike %.3f / %.3f"
      % (hh["mean"], hc["population"]["mean"], hc["personal"]["mean"],
         s1["population"]["mean"], s1["personal"]["mean"],
         s1["explicit_only"]["mean"], s0["population"]["mean"],
         s0["personal"]["mean"]))
bad = [n for n, ok in checks if not ok]
for n in bad:
    print("FAIL", n)
sys.exit(1 if bad else 0)
PY
