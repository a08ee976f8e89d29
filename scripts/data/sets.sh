# shellcheck shell=bash
# The labelled shared sets that the bounds detectors are trained and
# evaluated on (docs/EVALUATION.md), sourced by scripts/train-model.sh and
# scripts/evaluate-bounds.sh so that both use the same list.
#
#   source scripts/data/sets.sh
#   need_sets NAME SHARED_DATA_DIR BUILD_DIR # exits 77 without the data,
#                                            # 1 without BUILD_DIR/pwb
#   convert_sets OUT_DIR SHARED_DATA_DIR     # writes OUT_DIR/<set>.jsonl

# shellcheck disable=SC2034 # used by the scripts that source this file
bounds_sets=(openai-moderation hatecheck ailuminate davidson toxigen
	codealpaca self-instruct hh-rlhf-chosen)

# The training options of the shipped model and of the matrix: thresholds
# set on the validation split so that at most 2 % of its texts without a
# category reach it, positives and negatives weighed alike, and words
# inside quotation marks as features of their own (the settings compared
# are in docs/EVALUATION.md; the features in docs/bounds.md).
# shellcheck disable=SC2034
default_train_flags="--max-false-positives 0.02 --no-class-weights --features quotes"

need_sets() { # name data-dir build-dir
	if [ ! -d "$2/openai-moderation" ]; then
		echo "$1: $2/openai-moderation is absent; skipping" >&2
		exit 77
	fi
	if [ ! -x "$3/pwb" ]; then
		echo "$1: $3/pwb is not built (cmake --build $3)" >&2
		exit 1
	fi
}

convert_sets() { # out-dir data-dir
	local s
	mkdir -p "$1"
	for s in "${bounds_sets[@]}"; do
		python3 "$(dirname "${BASH_SOURCE[0]}")/convert.py" "$s" "$2" \
			>"$1/$s.jsonl.tmp"
		mv "$1/$s.jsonl.tmp" "$1/$s.jsonl"
	done
}
