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
# The model is trained on OpenAI moderation, so only the lexicons are
# evaluated there.
for run in hatecheck:lexicons hatecheck:model ailuminate:lexicons \
	ailuminate:model openai-moderation:lexicons; do
	set=${run%%:*} m=${run#*:}
	extra=()
	[ "$m" = model ] && extra=(--model "$model")
	echo "== $set, $m, org acme-tutor"
	"$pwb" eval bounds --policies policies --org acme-tutor \
		--data "$build/eval/$set.jsonl" ${extra[@]+"${extra[@]}"} \
		--json | tee "$build/eval/$set-$m.json"
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
# As HateCheck's paper counts: hate detection alone, accuracy on the
# hateful and on the non-hateful cases (from the category's P and R).
for name, r in (("lexicons", lex), ("lexicons + model", mod)):
    h = r["categories"]["hate"]
    tp = round(h["recall"] * r["n_unsafe"])
    fp = round(tp / h["precision"] - tp) if h["precision"] else 0
    print("hatecheck, %s: hate detected in %.1f %% of hateful and %.1f %% "
          "of non-hateful cases; accuracy %.1f %% / %.1f %% / %.1f %% "
          "(hateful / non-hateful / all)" % (name, 100.0 * tp / r["n_unsafe"],
          100.0 * fp / r["n_safe"], 100.0 * tp / r["n_unsafe"],
          100.0 * (r["n_safe"] - fp) / r["n_safe"],
          100.0 * (tp + r["n_safe"] - fp) / r["n"]))
om = json.load(open(d + "/openai-moderation-lexicons.json"))
print("openai-moderation, lexicons: F1 %.3f, false block rate %.3f, "
      "precision %.3f, recall %.3f" % (om["f1"], om["false_block_rate_safe"],
      om["precision"], om["block_rate_unsafe"]))
sys.exit(0 if ok else 1)
PY
