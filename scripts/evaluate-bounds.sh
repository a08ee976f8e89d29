#!/usr/bin/env bash
# Evaluates the bounds detectors on the shared datasets (docs/EVALUATION.md)
# as a deployer's traffic would meet them: on data the model never saw.
#
#   bash scripts/evaluate-bounds.sh [BUILD_DIR] [SHARED_DATA_DIR]
#
# Converts every labelled set to pwb's JSONL (scripts/data/convert.py),
# then for each set S trains the linear model on all the other sets and
# evaluates on S, with the lexicons alone and with that model (the
# cross-dataset matrix), for an org that forbids every category
# (BUILD_DIR/eval/policies, made here from policies/). HateCheck is also
# broken down by functionality, ToxiGen by group and AILuminate by hazard.
# Last, pwb's own contrast set (tests/fixtures/eval/contrast.jsonl: safe
# prompts that look unsafe, each beside an unsafe counterpart; a dev set
# written for pwb and used while writing the context rules, so its
# numbers are optimistic) is checked with the lexicons alone and with the
# model trained on every shared set, broken down by kind, as its own line
# of the table; it is never trained on.
#
# Writes only under BUILD_DIR/eval and BUILD_DIR/models: the per-run JSON
# (with the threshold sweep) and its precision-recall curve as SVG,
# BUILD_DIR/eval/matrix.json and the matrix as a Markdown table on
# standard output (BUILD_DIR/eval/contrast-*.json for the contrast
# set). Exits 77 (skipped) with a message when the shared data
# is absent. Training uses the shipped model's options (scripts/data/
# sets.sh); PWB_TRAIN_FLAGS, when set, replaces them (for comparing
# settings). Last, scripts/train-model.sh trains the shipped model on
# every set (BUILD_DIR/models/default.pwbm). As a test (CTest runs it),
# it fails unless a model that never saw HateCheck finds hate there with
# a recall above 0.3 and blocks more of its hateful cases than the
# lexicons alone.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
data=${2:-../shared/data}
pwb=$build/pwb
# shellcheck source=data/sets.sh
source scripts/data/sets.sh
need_sets evaluate-bounds "$data" "$build"
ev=$build/eval
mkdir -p "$ev" "$build/models"
sets=("${bounds_sets[@]}")
convert_sets "$ev" "$data"

# The evaluation org forbids every category of the shipped registry, so
# that a text counts as blocked when any detector finds any category.
pol=$ev/policies
rm -rf "$pol"
mkdir -p "$pol/law" "$pol/org"
cp policies/categories.yaml "$pol/"
ln -s "$PWD/policies/lexicons" "$pol/lexicons"
printf 'tier: law\nid: none\nname: No law (evaluation)\n' >"$pol/law/none.yaml"
python3 - "$pol" <<'PY'
import re, sys
pol = sys.argv[1]
cats, section = [], None
for line in open(pol + "/categories.yaml", encoding="utf-8"):
    top = re.match(r"^([a-z_]+):", line)
    if top:
        section = top.group(1)
    m = re.match(r"^  ([a-z_.]+):", line)
    if section == "categories" and m:
        cats.append(m.group(1))
with open(pol + "/org/eval-all.yaml", "w", encoding="utf-8") as f:
    f.write("tier: org\nid: eval-all\njurisdictions: [none]\ncategories:\n")
    for c in cats:
        f.write('  %s: {permission: forbid, basis: "evaluation"}\n' % c)
PY

group_key() {
	case $1 in
	hatecheck) echo functionality ;;
	toxigen) echo group ;;
	ailuminate) echo hazard ;;
	*) echo source ;;
	esac
}

for s in "${sets[@]}"; do
	model=$build/models/without-$s.pwbm
	: >"$ev/train-without-$s.jsonl"
	for t in "${sets[@]}"; do
		[ "$t" = "$s" ] || cat "$ev/$t.jsonl" >>"$ev/train-without-$s.jsonl"
	done
	echo "== $s: the model trained on every other set" >&2
	# shellcheck disable=SC2086 # PWB_TRAIN_FLAGS: options, split
	"$pwb" bounds train --data "$ev/train-without-$s.jsonl" --out "$model" \
		--policies "$pol" --seed 1 ${PWB_TRAIN_FLAGS-$default_train_flags} --json \
		>"$ev/train-without-$s.json"
	for m in lexicons model; do
		extra=()
		[ "$m" = model ] && extra=(--model "$model")
		"$pwb" eval bounds --policies "$pol" --org eval-all \
			--data "$ev/$s.jsonl" --group-by "$(group_key "$s")" \
			--sweep --svg "$ev/$s-$m.svg" \
			${extra[@]+"${extra[@]}"} --json >"$ev/$s-$m.json"
	done
done

# The shipped model (every shared set), then the contrast set with it.
bash scripts/train-model.sh "$build" "$data" >"$ev/train-default.txt"
for m in lexicons model; do
	extra=()
	[ "$m" = model ] && extra=(--model "$build/models/default.pwbm")
	"$pwb" eval bounds --policies "$pol" --org eval-all \
		--data tests/fixtures/eval/contrast.jsonl --group-by kind \
		${extra[@]+"${extra[@]}"} --json >"$ev/contrast-$m.json"
done

python3 - "$ev" "${sets[@]}" <<'PY'
import json, sys
ev, sets = sys.argv[1], sys.argv[2:]
def pct(x):
    return "–" if x is None else "%.1f %%" % (100 * x)
def num(x):
    return "–" if x is None else "%.3f" % x
matrix = {}
print("| held-out set | texts (unsafe / safe) | detectors | blocked unsafe "
      "| blocked safe | precision | F1 |")
print("|---|---|---|---|---|---|---|")
for s in sets:
    matrix[s] = {}
    for m in ("lexicons", "model"):
        r = json.load(open("%s/%s-%s.json" % (ev, s, m)))
        r.pop("texts_per_second", None)
        matrix[s][m] = r
        # Precision and F1 mean nothing on a set of one class.
        both = r["n_unsafe"] and r["n_safe"]
        print("| %s | %d / %d | %s | %s | %s | %s | %s |" % (
            s, r["n_unsafe"], r["n_safe"],
            "lexicons" if m == "lexicons" else "lexicons + model",
            pct(r["block_rate_unsafe"]), pct(r["false_block_rate_safe"]),
            num(r["precision"] if both else None),
            num(r["f1"] if both else None)))
# pwb's own contrast set: a dev set, not held out (see above).
for m in ("lexicons", "model"):
    r = json.load(open("%s/contrast-%s.json" % (ev, m)))
    r.pop("texts_per_second", None)
    matrix.setdefault("contrast", {})[m] = r
    print("| contrast (pwb's dev set) | %d / %d | %s | %s | %s | %s | %s |" % (
        r["n_unsafe"], r["n_safe"],
        "lexicons" if m == "lexicons" else "lexicons + model (every set)",
        pct(r["block_rate_unsafe"]), pct(r["false_block_rate_safe"]),
        num(r["precision"]), num(r["f1"])))
json.dump(matrix, open(ev + "/matrix.json", "w"), indent=1)
hc_l, hc_m = matrix["hatecheck"]["lexicons"], matrix["hatecheck"]["model"]
recall = hc_m["categories"]["hate"]["recall"]
ok = recall > 0.3 and hc_m["block_rate_unsafe"] > hc_l["block_rate_unsafe"]
sys.stderr.write("hatecheck, never seen by the model: hate recall %.3f; "
                 "blocked hateful %.3f with the model, %.3f lexicons alone: "
                 "%s\n" % (recall, hc_m["block_rate_unsafe"],
                           hc_l["block_rate_unsafe"], "ok" if ok else "FAIL"))
sys.exit(0 if ok else 1)
PY
