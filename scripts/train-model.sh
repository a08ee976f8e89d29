#!/usr/bin/env bash
# Trains pwb's default linear detector on every labelled shared set
# (docs/EVALUATION.md: the union of the sets of the cross-dataset matrix,
# benign sets included as negatives) into BUILD_DIR/models/default.pwbm,
# the model the README's walkthrough uses.
#
#   bash scripts/train-model.sh [BUILD_DIR] [SHARED_DATA_DIR]
#
# The training options are scripts/data/sets.sh's default_train_flags,
# those the cross-dataset matrix measures (docs/EVALUATION.md);
# PWB_TRAIN_FLAGS replaces them. Prints the
# validation report; writes only under BUILD_DIR/models (the model is
# replaced atomically). Exits 77 (skipped) with a message when the shared
# data is absent.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
data=${2:-../shared/data}
pwb=$build/pwb
# shellcheck source=data/sets.sh
source scripts/data/sets.sh
need_sets train-model "$data" "$build"
work=$build/models/data
convert_sets "$work" "$data"
for s in "${bounds_sets[@]}"; do cat "$work/$s.jsonl"; done >"$work/all.jsonl.tmp"
mv "$work/all.jsonl.tmp" "$work/all.jsonl"
flags=${PWB_TRAIN_FLAGS-$default_train_flags}
echo "train-model: $(wc -l <"$work/all.jsonl") texts from ${#bounds_sets[@]} sets; options: $flags" >&2
# shellcheck disable=SC2086 # flags: options, split
"$pwb" bounds train --data "$work/all.jsonl" --out "$build/models/default.pwbm" \
	--policies policies --seed 1 $flags
echo "train-model: wrote $build/models/default.pwbm" >&2
