#!/usr/bin/env bash
# Evaluates the bounds detectors on the shared datasets (docs/EVALUATION.md):
# converts them to pwb's JSONL, trains the linear model on one dataset and
# evaluates on the others, with the lexicons alone and with the model.
#
#   bash scripts/evaluate-bounds.sh [BUILD_DIR] [SHARED_DATA_DIR]
#
# Writes only under BUILD_DIR/eval and BUILD_DIR/models (the model is
# BUILD_DIR/models/moderation.pwbm). Exits 77 (skipped) with a message when
# the shared data is absent. As a test (CTest runs it), it fails unless the
# model trained on one dataset finds hate on another (HateCheck) with a
# recall above 0.3 and raises the block rate over the lexicons alone.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
data=${2:-../shared/data}
pwb=$build/pwb
if [ ! -d "$data/openai-moderation" ]; then
	echo "evaluate-bounds: $data/openai-moderation is absent; skipping" >&2
	exit 77
fi
mkdir -p "$build/eval" "$build/models"
for d in openai-moderation hatecheck ailuminate; do
	python3 scripts/data/convert.py "$d" "$data" >"$build/eval/$d.jsonl"
done
model=$build/models/moderation.pwbm
"$pwb" bounds train --data "$build/eval/openai-moderation.jsonl" \
	--out "$model" --policies policies --seed 1
for set in hatecheck ailuminate; do
	for m in lexicons model; do
		extra=()
		[ "$m" = model ] && extra=(--model "$model")
		echo "== $set, $m, org acme-tutor"
		"$pwb" eval bounds --policies policies --org acme-tutor \
			--data "$build/eval/$set.jsonl" ${extra[@]+"${extra[@]}"} \
			--json | tee "$build/eval/$set-$m.json"
	done
done
python3 - "$build/eval" <<'PY'
import json, sys
d = sys.argv[1]
lex = json.load(open(d + "/hatecheck-lexicons.json"))
mod = json.load(open(d + "/hatecheck-model.json"))
recall = mod["categories"]["hate"]["recall"]
ok = recall > 0.3 and mod["block_rate_unsafe"] > lex["block_rate_unsafe"]
print("hatecheck: hate recall with the model %.3f (lexicons alone %.3f); "
      "block rate %.3f vs %.3f: %s" % (recall,
      lex["categories"]["hate"]["recall"], mod["block_rate_unsafe"],
      lex["block_rate_unsafe"], "ok" if ok else "FAIL"))
sys.exit(0 if ok else 1)
PY
