#!/usr/bin/env bash
# Bad input gives one clear line and exit status 1, never a crash or a hang.
#
#   bash bad_input.sh PATH/TO/pwb PATH/TO/policies
#
# Each case copies the shipped policy folder into a temporary folder, breaks
# one file (or passes one bad argument) and checks that pwb
#   - exits with status 1 (2 for usage errors, 0 for --help), under a
#     timeout, never with a signal;
#   - prints exactly one line on stderr (or the stated number), of the form
#     `file:line:col: error: message` or `file: error: message` naming the
#     bad file, or `error: message` where no file is at fault;
#   - says what is wrong (a key word of the message).
# Prints `ok NAME` or `FAIL NAME: why` per case, then `N passed, M failed`.
# Exits 1 when a case failed, 2 on a usage error.
set -u

if [ $# -ne 2 ]; then
	echo "usage: bash bad_input.sh PATH/TO/pwb PATH/TO/policies" >&2
	exit 2
fi
# shellcheck source=../lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh" bad_input.sh
# A FIFO or a hang must not stall the suite: 10 s per run.
run_timeout=10
pwb=$(pwb_path "$1") || exit 2
pol=$2
if [ ! -f "$pol/categories.yaml" ] || [ ! -d "$pol/law" ] ||
	[ ! -d "$pol/org" ]; then
	echo "bad_input.sh: $pol is not a policy folder" >&2
	exit 2
fi


# expect NAME RC LINES FILE WORD
#   After run: the status is RC, stderr has LINES lines, each naming FILE
#   as `FILE:L:C: error: ...` or `FILE: error: ...` (FILE "-": no file,
#   `error: ...`; FILE "": not checked), and WORD (a grep -E pattern,
#   case-insensitive) is in stderr.
expect() {
	local name=$1 want_rc=$2 want_lines=$3 file=$4 word=$5
	local n line
	if [ "$rc" -eq 124 ]; then
		fail "$name" "timed out: pwb hung"
		return
	fi
	if grep -q 'Sanitizer' "$tmp/err"; then
		fail "$name" "sanitizer report: $(grep -m1 -E 'ERROR|SUMMARY' \
			"$tmp/err" | sed 's/^==[0-9]*== *//')"
		return
	fi
	if [ "$rc" -ge 128 ]; then
		fail "$name" "crashed with signal $((rc - 128)): $(shown)"
		return
	fi
	if [ "$rc" -ne "$want_rc" ]; then
		fail "$name" "exit status $rc, want $want_rc: $(shown)"
		return
	fi
	n=$(wc -l <"$tmp/err")
	if [ "$n" -ne "$want_lines" ]; then
		fail "$name" "$n lines on stderr, want $want_lines: $(shown)"
		return
	fi
	if [ -n "$file" ]; then
		while IFS= read -r line; do
			if [ "$file" = "-" ]; then
				[[ $line == "error: "?* ]] && continue
			else
				[[ $line == "$file: error: "?* ]] && continue
				if [[ ${line#"$file:"} =~ ^[0-9]+:[0-9]+:\ error:\ .+ ]] &&
					[[ $line == "$file:"* ]]; then
					continue
				fi
			fi
			fail "$name" "not '${file}[:line:col]: error: ...': $line"
			return
		done <"$tmp/err"
	fi
	if [ -n "$word" ] && ! grep -Eqi -- "$word" "$tmp/err"; then
		fail "$name" "stderr does not say '$word': $(shown)"
		return
	fi
	ok "$name"
}

# A fresh copy of the shipped policy folder; prints its path.
fresh() {
	local d
	d=$(mktemp -d "$tmp/case.XXXXXX")
	cp -R "$pol/categories.yaml" "$pol/law" "$pol/org" "$d/"
	echo "$d"
}

# check_file NAME FILE WORD
#   `pwb policy check` on the folder holding FILE, then on FILE itself:
#   both report one line naming FILE.
check_file() {
	local name=$1 file=$2 word=$3
	local root=${file%/org/*}
	run policy check "$root"
	expect "$name" 1 1 "$file" "$word"
	run policy check "$file"
	expect "$name (file)" 1 1 "$file" "$word"
}

# An org file that is valid up to line 4; cases append the bad part.
org_head='tier: org
id: bad
name: Bad input
jurisdictions: [de]
'

# ---- the copy itself is clean ----

d=$(fresh)
run policy check "$d"
expect "baseline: the shipped copy checks clean" 0 0 "" ""

# ---- malformed YAML and wrong types ----

d=$(fresh)
printf '%scategories: {hate: [forbid\n' "$org_head" >"$d/org/bad.yaml"
check_file "malformed YAML: unclosed bracket" "$d/org/bad.yaml" \
	"malformed YAML"

d=$(fresh)
printf '%scategories:\n  hate:\n    permission: 5\n' "$org_head" \
	>"$d/org/bad.yaml"
check_file "wrong type: permission: 5" "$d/org/bad.yaml" "permission"

d=$(fresh)
printf '%sdimensions:\n  humour: {range: "x"}\n' "$org_head" \
	>"$d/org/bad.yaml"
check_file "wrong type: range: \"x\"" "$d/org/bad.yaml" "range"

d=$(fresh)
printf '%scandidates: "many"\n' "$org_head" >"$d/org/bad.yaml"
check_file "wrong type: candidates: \"many\"" "$d/org/bad.yaml" \
	"candidates"

d=$(fresh)
printf '%scandidats: 3\n' "$org_head" >"$d/org/bad.yaml"
check_file "unknown key" "$d/org/bad.yaml" "unknown key 'candidats'"

d=$(fresh)
printf '%scategories:\n  hate: forbid\n  hate: forbid\n' "$org_head" \
	>"$d/org/bad.yaml"
check_file "duplicate key" "$d/org/bad.yaml" "duplicate key"

d=$(fresh)
printf '%scategories:\n  profanity: {permission: opt_in, when: "user.age >> 3"}\n' \
	"$org_head" >"$d/org/bad.yaml"
check_file "malformed condition" "$d/org/bad.yaml" "condition"

# ---- size, nesting, encoding ----

d=$(fresh)
{
	printf '%s# ' "$org_head"
	head -c $((1024 * 1024 + 4096)) /dev/zero | tr '\0' x
	printf '\n'
} >"$d/org/bad.yaml"
check_file "huge file (over 1 MiB)" "$d/org/bad.yaml" "too large"

d=$(fresh)
{
	printf '%sversion: ' "$org_head"
	printf '%.0s[' $(seq 200)
	printf '%.0s]' $(seq 200)
	printf '\n'
} >"$d/org/bad.yaml"
check_file "deep nesting (200 levels)" "$d/org/bad.yaml" "nesting|deep"

d=$(fresh)
printf '%sversion: "caf\xe9 \xff"\n' "$org_head" >"$d/org/bad.yaml"
check_file "invalid UTF-8" "$d/org/bad.yaml" "UTF-8"

d=$(fresh)
printf '%sversion: "a\0b"\n' "$org_head" >"$d/org/bad.yaml"
check_file "NUL byte" "$d/org/bad.yaml" "NUL"

# ---- unreadable entries ----

d=$(fresh)
ln -s "$d/no-such-file.yaml" "$d/org/x.yaml"
check_file "dangling symlink x.yaml" "$d/org/x.yaml" "cannot read|no such"

d=$(fresh)
if mkfifo "$d/org/z.yaml" 2>/dev/null; then
	check_file "FIFO z.yaml (must not hang)" "$d/org/z.yaml" \
		"regular file|cannot read"
else
	fail "FIFO z.yaml (must not hang)" "mkfifo failed"
fi

# A folder named y.yaml is a folder: it is walked, not read as a file.
d=$(fresh)
mkdir "$d/org/y.yaml"
run policy check "$d"
expect "folder named y.yaml is walked (empty)" 0 0 "" ""
printf '%scandidates: 99\n' "$org_head" >"$d/org/y.yaml/inner.yaml"
run policy check "$d"
expect "folder named y.yaml is walked (bad file inside)" 1 1 \
	"$d/org/y.yaml/inner.yaml" "candidates"

# ---- not one mapping ----

d=$(fresh)
: >"$d/org/bad.yaml"
check_file "empty file" "$d/org/bad.yaml" "empty"

d=$(fresh)
printf -- '- tier: org\n- id: bad\n' >"$d/org/bad.yaml"
check_file "a YAML list, not a mapping" "$d/org/bad.yaml" "mapping"

d=$(fresh)
printf '%sversion: &v "1"\nname: *v\n' "$org_head" | grep -v '^name: Bad' \
	>"$d/org/bad.yaml"
check_file "YAML anchor and alias" "$d/org/bad.yaml" "anchor|alias"

d=$(fresh)
printf '%sbasis: *nowhere\n' "$org_head" >"$d/org/bad.yaml"
check_file "YAML alias" "$d/org/bad.yaml" "alias"

d=$(fresh)
printf '%s---\ntier: org\nid: other\njurisdictions: [de]\n' "$org_head" \
	>"$d/org/bad.yaml"
check_file "two YAML documents" "$d/org/bad.yaml" "document"

# ---- resolve: settings, attributes, options ----

clean=$(fresh)
resolve=(policy resolve --policies "$clean" --org open-studio)

printf '{"categories": {"profanity": "on",}\n' >"$tmp/malformed.json"
run "${resolve[@]}" --settings "$tmp/malformed.json"
expect "settings: malformed JSON" 1 1 "$tmp/malformed.json" "JSON"

printf '[1, 2]\n' >"$tmp/array.json"
run "${resolve[@]}" --settings "$tmp/array.json"
expect "settings: not an object" 1 1 "$tmp/array.json" "object"

printf '{"categories": {"sexual_contnt": "on"}}\n' >"$tmp/unknown.json"
run "${resolve[@]}" --settings "$tmp/unknown.json"
expect "settings: unknown category" 1 1 "$tmp/unknown.json" \
	"unknown category 'sexual_contnt'"

printf '{"dimensions": {"humor": 0.5}}\n' >"$tmp/unknown_dim.json"
run "${resolve[@]}" --settings "$tmp/unknown_dim.json"
expect "settings: unknown dimension" 1 1 "$tmp/unknown_dim.json" \
	"unknown dimension 'humor'"

run "${resolve[@]}" --settings "$tmp/no-such-settings.json"
expect "settings: missing file" 1 1 "$tmp/no-such-settings.json" \
	"cannot read|no such"

run "${resolve[@]}" --attr user.age=abc
expect "--attr user.age=abc (wrong type)" 1 1 --attr "user.age"

run "${resolve[@]}" --attr user.age
expect "--attr without '=' (usage error)" 2 2 "" "KEY=VALUE"

run "${resolve[@]}" --attr user.shoe_size=42
expect "--attr unknown attribute" 1 1 --attr "unknown attribute"

run policy resolve --policies "$clean" --org no-such-org
expect "unknown --org" 1 1 - "unknown org 'no-such-org'"

run "${resolve[@]}" --jurisdiction xx
expect "unknown --jurisdiction" 1 1 - "unknown jurisdiction 'xx'"

run policy resolve --org open-studio
expect "missing --policies (usage error)" 2 2 "" "--policies"

run policy resolve --policies "$tmp/no-such-folder" --org open-studio
expect "--policies: no such folder" 1 1 "$tmp/no-such-folder" \
	"not a policy folder|no such"

mkdir "$tmp/no-registry"
run policy resolve --policies "$tmp/no-registry" --org open-studio
expect "--policies: no categories.yaml" 1 1 "$tmp/no-registry" \
	"not a policy folder: it has no categories.yaml"

run policy resolve --policies "$clean/org" --org open-studio
expect "--policies: the org/ folder inside one" 1 1 "$clean/org" \
	"not a policy folder"

# ---- options: one parser for every command ----

run "${resolve[@]}" --polices "$clean"
expect "unknown option, with a hint (usage error)" 2 2 "" \
	"unknown option '--polices' \(did you mean '--policies'\?\)"

run policy resolve --policies "$clean" --org
expect "option without its value (usage error)" 2 2 "" "--org needs a value"

run "${resolve[@]}" --json=yes
expect "value for a flag (usage error)" 2 2 "" "--json takes no value"

run "${resolve[@]}" extra
expect "unexpected argument (usage error)" 2 2 "" "unexpected argument 'extra'"

run policy resolve "--policies=$clean" --org=open-studio --json
expect "--name=value works" 0 0 "" ""

jur=()
for _ in $(seq 257); do jur+=(--jurisdiction de); done
run "${resolve[@]}" "${jur[@]}"
expect "too many --jurisdiction (usage error)" 2 2 "" "too many --jurisdiction"

run "${resolve[@]}" --jurisdiction de --jurisdiction xx
expect "--jurisdiction is repeatable" 1 1 - "unknown jurisdiction 'xx'"

run policy check -- "$clean"
expect "'--' ends the options" 0 0 "" ""

run bounds train --data x.jsonl --out m --hash-bits 99
expect "number out of range (usage error)" 2 2 "" \
	"--hash-bits must be a whole number in 10\.\.24, not '99'"

run bounds train --data x.jsonl --out m --valid 0.95
expect "fraction out of range (usage error)" 2 2 "" \
	"--valid must be a number in 0\.\.0\.9, not '0\.95'"

run bounds train --data x.jsonl --out m --epochs 2.5
expect "whole number with a fraction (usage error)" 2 2 "" "--epochs must be"

run bounds train --out m
expect "required option (usage error)" 2 2 "" "--data FILE is required"

run bounds train --data x.jsonl --out m --policies p --features negation,qoutes
expect "bounds train: an unknown feature set (usage error)" 2 2 "" \
	"--features 'negation,qoutes': give negation, quotes or none"

printf '{"text": "a", "labels": ["haet"]}\n' >"$tmp/label.jsonl"
run bounds train --data "$tmp/label.jsonl" --out "$tmp/m.pwbm"
expect "bounds train: --policies is required (usage error)" 2 2 "" "--policies DIR is required"
run policy explain --policies "$clean" --org open-studio --json
expect "policy explain --json is refused, saying why (usage error)" 2 2 "" "explain prints text; use 'pwb policy resolve --json'"
run bounds train --data "$tmp/label.jsonl" --out "$tmp/m.pwbm" \
	--policies "$clean"
expect "bounds train: misspelt label" 1 1 "$tmp/label.jsonl" \
	"unknown label 'haet' \(did you mean 'hate'\?\)"

run eval prefs --data x.jsonl --settings s.json
expect "eval prefs --settings is refused, saying why (usage error)" 2 2 "" \
	"--settings is one user's; give each user's in --settings-dir DIR"

run policy resolve --policies "$clean" --org open-studio --jurisdiction germany
expect "unknown --jurisdiction lists the law files" 1 1 - \
	"unknown jurisdiction 'germany' \(the law files are: [a-z, -]*\bde\b"

# ---- misspelt commands: did you mean ----

run policy chek
expect "misspelt subcommand (usage error)" 2 2 "" \
	"unknown subcommand 'chek' \(did you mean 'check'\?\)"

run polcy check
expect "misspelt command (usage error)" 2 2 "" \
	"unknown command 'polcy' \(did you mean 'policy'\?\)"

run policy frobnicate
expect "unknown subcommand, nothing close (usage error)" 2 2 "" \
	"unknown subcommand 'frobnicate'$"

# ---- an argument that starts with '-' ----

run bounds check --policies "$clean" --org open-studio -x
expect "TEXT '-x': hint to put '--' before it (usage error)" 2 2 "" \
	"unknown option '-x'; to pass an argument that starts with '-', put '--' before it"

run bounds check --policies "$clean" --org open-studio "--no way"
expect "TEXT '--no way': the same hint (usage error)" 2 2 "" \
	"unknown option '--no way'; to pass .* put '--' before it"

run policy resolve --policies "$clean" --org open-studio -x
expect "no hint where no argument is taken (usage error)" 2 2 "" \
	"unknown option '-x'$"

# ---- --help ----

for args in "--help" "policy --help" "policy check --help" \
	"policy resolve --help" "policy explain --help" \
	"policy check -h" "policy resolve -h" "policy explain -h" \
	"bounds check --help" "bounds train --help" "eval bounds --help"; do
	# shellcheck disable=SC2086 # split the arguments on purpose
	run $args
	if [ "$rc" -ne 0 ]; then
		fail "pwb $args" "exit status $rc, want 0"
	elif ! grep -q '^Usage' "$tmp/out"; then
		fail "pwb $args" "stdout has no 'Usage' line"
	elif [ -s "$tmp/err" ]; then
		fail "pwb $args" "printed on stderr: $(shown)"
	else
		ok "pwb $args"
	fi
done


# ---- pwb bounds check: bad models, lexicons, roles and texts ----
# A one-entry lexicon keeps the Vectorscan compile short.
mkdir -p "$tmp/lex1" "$tmp/lexbad"
printf 'profanity\tword\t0.9\tdamn\ttest entry\n' >"$tmp/lex1/en.tsv"
printf 'profanity\tword\t1.5\tdamn\tbad weight\n' >"$tmp/lexbad/en.tsv"
bounds=(bounds check --policies "$clean" --org open-studio)

run "${bounds[@]}" --lexicons "$tmp/lex1" --model "$tmp/no-such.pwbm" "hi"
expect "bounds check: missing model" 1 1 "$tmp/no-such.pwbm" "cannot read"

printf 'not a model at all' >"$tmp/garbage.pwbm"
run "${bounds[@]}" --lexicons "$tmp/lex1" --model "$tmp/garbage.pwbm" "hi"
expect "bounds check: corrupt model" 1 1 "$tmp/garbage.pwbm" "not a pwb linear model"

run "${bounds[@]}" --lexicons "$tmp/lexbad" "hi"
expect "bounds check: bad lexicon line" 1 1 "$tmp/lexbad/en.tsv" "weight"

run "${bounds[@]}" --lexicons "$tmp/lex1" --role reply "hi"
expect "bounds check: unknown role (usage error)" 2 2 "" "prompt or response"

run "${bounds[@]}" --lexicons "$tmp/lex1"
expect "bounds check: no text (usage error)" 2 2 "" "TEXT"

head -c 11000000 /dev/zero | tr '\0' 'a' >"$tmp/big.txt"
timeout 30 "$pwb" "${bounds[@]}" --lexicons "$tmp/lex1" - <"$tmp/big.txt" \
	>"$tmp/out" 2>"$tmp/err"
rc=$?
expect "bounds check: text over 10 MiB on stdin" 1 1 "" \
	"standard input is (too large|larger than the limit)"

printf 'a\0b\xff\xfe damn \xc3' >"$tmp/odd.txt"
timeout 30 "$pwb" "${bounds[@]}" --lexicons "$tmp/lex1" --json - <"$tmp/odd.txt" \
	>"$tmp/out" 2>"$tmp/err"
rc=$?
expect "bounds check: NUL and invalid UTF-8 are checked" 0 0 "" ""
# ... and the word between them is still found, at its own offsets.
if python3 -c 'import json,sys; c=json.load(open(sys.argv[1]))["categories"]["profanity"]; sys.exit(0 if c["detected"] and c["spans"][0]["start"]==6 and c["spans"][0]["end"]==10 else 1)' "$tmp/out"; then
	ok "bounds check: offsets through bad bytes"
else
	fail "bounds check: offsets through bad bytes" "$(head -c 300 "$tmp/out")"
fi

# A cache folder that cannot be used is said once, not suffered silently
# on every run (the check itself still works: it compiles).
PWB_CACHE_DIR=/dev/null/cache run_timeout=600 run bounds check \
	--policies "$pol" --org acme-tutor hello
if [ "$rc" = 0 ] && grep -q "^pwb: warning: cannot use the cache folder /dev/null/cache: Not a directory; the lexicon database is compiled on every run$" "$tmp/err"; then
	ok "an unusable cache folder is warned about"
else
	fail "an unusable cache folder is warned about" "exit $rc: $(shown)"
fi

finish
