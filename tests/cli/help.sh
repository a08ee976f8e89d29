#!/usr/bin/env bash
# Every command's --help is complete and true to its parser.
#
#   bash help.sh PATH/TO/pwb
#
# The commands come from `pwb --help` (its Commands section, one
# subcommand a line), checked against the hidden `pwb --list-commands`
# (the dispatch tables), so a new subcommand cannot be left out of either.
# For each one, `pwb COMMAND SUBCOMMAND --help`
#   - exits 0 and prints on stdout only, with a Usage line naming it, an
#     Options section, an Example and an Exit status (0, 1 and 2 usage);
#   - lists in Options exactly the options its parser accepts (the hidden
#     --list-options, docs/testing.md), a value (METAVAR) for those that
#     take one and none for flags; and the parser accepts each listed one
#     (`--opt=1 --help` is never "unknown option");
#   - names every option in its Usage lines, unless they say [options];
#   - gives an Example that runs this subcommand with options it accepts.
# A command's own --help names its subcommands; a misspelt command or
# subcommand gets a did-you-mean hint; and output a help shows is what pwb
# prints (simulate prefs settings files, the signs in prefs explain).
# Prints `ok NAME` or `FAIL NAME: why` per case, then `N passed, M failed`.
# Exits 1 when a case failed, 2 on a usage error.
set -u

if [ $# -ne 1 ]; then
	echo "usage: bash help.sh PATH/TO/pwb" >&2
	exit 2
fi
# shellcheck source=../lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh" help.sh
run_timeout=10
pwb=$(pwb_path "$1") || exit 2
# Nothing below should write a file; if something did, it lands here.
cd "$tmp" || exit 2

# section NAME FILE: the lines of section NAME ("Options:" to the next
# blank line; "Usage:" includes its own line).
section() {
	awk -v s="$1" '
		index($0, s ":") == 1 { on = 1; if (s == "Usage") print; next }
		on && /^$/ { exit }
		on { print }' "$2"
}

# options_in_help FILE: "--name flag|value" for each option line of the
# Options section ("  --name METAVAR   text" or "  -h, --help   text").
options_in_help() {
	section Options "$1" | sed -nE \
		's/^  (-[a-zA-Z], )?(--[a-z0-9-]+)( [^ ]+)?( {2,}.*)?$/\2 \3/p' |
		awk '{ print $1, (NF > 1 ? "value" : "flag") }' | sort -u
}

# ---- pwb --help: every subcommand, one a line ----

run --help
if [ "$rc" -ne 0 ] || ! grep -q '^Usage: pwb ' "$tmp/out"; then
	fail "pwb --help" "exit status $rc or no Usage line: $(shown)"
	finish
fi
cp "$tmp/out" "$tmp/top"
for s in Options Example "Exit status"; do
	if grep -q "^$s:" "$tmp/top"; then ok "pwb --help: $s"; else
		fail "pwb --help: $s" "no '$s:' section"; fi
done
section Commands "$tmp/top" | sed -nE 's/^  ([a-z]+)( [a-z]+)?( [^a-z].*)?$/\1\2/p' |
	sort >"$tmp/listed"
run --list-commands
sort "$tmp/out" >"$tmp/real"
if [ "$rc" -ne 0 ] || [ ! -s "$tmp/real" ]; then
	fail "pwb --list-commands" "exit status $rc, or empty: $(shown)"
elif ! diff "$tmp/listed" "$tmp/real" >"$tmp/diff"; then
	fail "pwb --help lists every subcommand pwb runs" \
		"$(grep '^[<>]' "$tmp/diff" | tr '\n' ' ') (< only in --help, > only run)"
else
	ok "pwb --help lists every subcommand pwb runs ($(wc -l <"$tmp/real"))"
fi
mapfile -t commands <"$tmp/listed"

# Options a parser takes that its help leaves out on purpose, each with
# the change that removes it. An entry that no longer applies fails, so
# the list only shrinks.
declare -A known_gap=()
declare -A gap_seen=()

# ---- each subcommand ----

for cmd in "${commands[@]}"; do
	read -ra words <<<"$cmd"
	set -- "${words[@]}"
	name="pwb $cmd --help"
	run "$@" --help
	if [ "$rc" -ne 0 ] || [ -s "$tmp/err" ]; then
		fail "$name" "exit status $rc, stderr: $(shown)"
		continue
	fi
	cp "$tmp/out" "$tmp/help"
	why=
	grep -q "^Usage: pwb $cmd\b" "$tmp/help" ||
		why="$why no 'Usage: pwb $cmd' line;"
	grep -q '^Options:$' "$tmp/help" || why="$why no 'Options:';"
	grep -qE '^Examples?:$' "$tmp/help" || why="$why no 'Example:';"
	exits=$(section "Exit status" "$tmp/help")
	exits="$(sed -n 's/^Exit status://p' "$tmp/help") $exits"
	if ! grep -q '^Exit status:' "$tmp/help"; then
		why="$why no 'Exit status:';"
	else
		for w in '\b0\b' '\b1\b' '\b2\b' 'usage'; do
			grep -Eq "$w" <<<"$exits" ||
				why="$why Exit status does not say '$w';"
		done
	fi
	if [ -n "$why" ]; then fail "$name: sections" "$why"; else
		ok "$name: sections"; fi

	# Options listed against options parsed: name -> flag|value.
	declare -A listed=() parsed=()
	while read -r opt kind; do
		listed[$opt]=$kind
	done < <(options_in_help "$tmp/help")
	run "$@" --list-options
	if [ "$rc" -ne 0 ] || [ ! -s "$tmp/out" ]; then
		fail "pwb $cmd --list-options" "exit status $rc: $(shown)"
		unset listed parsed
		continue
	fi
	while read -r opt kind; do
		[ "$kind" = flag ] || kind=value
		parsed[$opt]=$kind
	done <"$tmp/out"
	why=
	for opt in "${!listed[@]}"; do
		if [ -z "${parsed[$opt]+x}" ]; then
			why="$why $opt is listed but not accepted;"
		elif [ "${parsed[$opt]}" != "${listed[$opt]}" ]; then
			why="$why $opt is listed as a ${listed[$opt]}, the parser takes a ${parsed[$opt]};"
		fi
	done
	for opt in "${!parsed[@]}"; do
		[ -n "${listed[$opt]+x}" ] && continue
		if [ -n "${known_gap["$cmd $opt"]+x}" ]; then
			gap_seen["$cmd $opt"]=1
			echo "note: pwb $cmd accepts $opt, unlisted: ${known_gap["$cmd $opt"]}"
			continue
		fi
		why="$why $opt is accepted but not listed;"
	done
	if [ -n "$why" ]; then fail "$name: Options = parser" "$why"; else
		ok "$name: Options = parser (${#listed[@]})"; fi

	# The parser itself takes each listed option (--list-options aside):
	# `--opt=1 --help` shows the help, or a usage error about the value,
	# never "unknown option". The runs are independent: all at once.
	opts=("${!listed[@]}")
	for k in "${!opts[@]}"; do
		(
			timeout "$run_timeout" "$pwb" "$@" "${opts[k]}=1" --help \
				</dev/null >/dev/null 2>"$tmp/opt$k.err"
			echo $? >"$tmp/opt$k.rc"
		) &
	done
	wait
	why=
	for k in "${!opts[@]}"; do
		read -r opt_rc <"$tmp/opt$k.rc"
		err=$(<"$tmp/opt$k.err")
		if [[ $err == *"unknown option"* ]]; then
			why="$why ${opts[k]}: ${err%%$'\n'*};"
		elif [ "$opt_rc" -ne 0 ] && [ "$opt_rc" -ne 2 ]; then
			why="$why ${opts[k]}: exit status $opt_rc;"
		fi
	done
	if [ -n "$why" ]; then fail "$name: each option parses" "$why"; else
		ok "$name: each option parses"; fi

	# The Usage lines name every option, or say [options].
	usage=$(section Usage "$tmp/help")
	why=
	if [[ $usage != *"[options]"* ]]; then
		for opt in "${!listed[@]}"; do
			[ "$opt" = --help ] && continue
			[[ $usage =~ $opt([^a-z0-9-]|$) ]] || why="$why $opt;"
		done
	fi
	if [ -n "$why" ]; then
		fail "$name: Usage names every option" "missing:$why"
	else
		ok "$name: Usage names every option"
	fi

	# The Example runs this subcommand with options it takes.
	example=$(section Example "$tmp/help")
	[ -n "$example" ] || example=$(section Examples "$tmp/help")
	why=
	[[ $example == "  pwb $cmd "* ]] ||
		why=" it does not run 'pwb $cmd';"
	set -f # the words of the example, unglobbed
	for word in $example; do
		[[ $word == --* ]] || continue
		opt=${word%%=*}
		[ -n "${parsed[$opt]+x}" ] ||
			why="$why it uses $opt, which is not accepted;"
	done
	set +f
	if [ -n "$why" ]; then fail "$name: Example" "$why"; else
		ok "$name: Example"; fi
	unset listed parsed
done

for gap in "${!known_gap[@]}"; do
	if [ -z "${gap_seen["$gap"]+x}" ]; then
		fail "known gap '$gap'" "no longer there: remove it from help.sh"
	fi
done

# ---- a misspelt command or subcommand: did you mean ----

# typo WORD: WORD without its middle letter ("check" -> "chek").
typo() {
	local w=$1 m=$((${#1} / 2))
	printf '%s\n' "${w:0:m}${w:m+1}"
}

groups=$(cut -d' ' -f1 "$tmp/listed" | sort -u)
for g in $groups; do
	t=$(typo "$g")
	run "$t"
	if [ "$rc" -eq 2 ] && grep -q "unknown command '$t' (did you mean '$g'?)" "$tmp/err"; then
		ok "pwb $t: did you mean '$g'"
	else
		fail "pwb $t: did you mean '$g'" "exit status $rc: $(shown)"
	fi
	# The command's own help names each of its subcommands.
	run "$g" --help
	why=
	[ "$rc" -eq 0 ] && grep -q '^Usage' "$tmp/out" ||
		why=" exit status $rc, or no Usage;"
	while read -r s; do
		grep -qw -- "$s" "$tmp/out" || why="$why '$s' not named;"
	done < <(sed -n "s/^$g //p" "$tmp/listed")
	if [ -n "$why" ]; then fail "pwb $g --help" "$why"; else
		ok "pwb $g --help"; fi
done
for cmd in "${commands[@]}"; do
	[ "$cmd" = "${cmd#* }" ] && continue # a command without subcommands
	g=${cmd% *} s=${cmd#* }
	t=$(typo "$s")
	run "$g" "$t"
	if [ "$rc" -eq 2 ] &&
		grep -q "unknown subcommand '$t' (did you mean '$s'?)" "$tmp/err"; then
		ok "pwb $g $t: did you mean '$s'"
	else
		fail "pwb $g $t: did you mean '$s'" "exit status $rc: $(shown)"
	fi
done
# "pwb help COMMAND [SUBCOMMAND]" is that command's --help.
run help user consent
if [ "$rc" -eq 0 ] && head -n 1 "$tmp/out" | grep -q "^Usage: pwb user consent"; then
	ok "pwb help user consent: its help"; else
	fail "pwb help user consent: its help" "exit $rc: $(head -n 1 "$tmp/out")"; fi
run help ask
if [ "$rc" -eq 0 ] && head -n 1 "$tmp/out" | grep -q "^Usage: pwb ask"; then
	ok "pwb help ask: its help"; else
	fail "pwb help ask: its help" "exit $rc: $(head -n 1 "$tmp/out")"; fi
# Two neighbouring letters swapped is a typo too ("aks" for "ask").
# swapped WORD: WORD with its first two letters after the first swapped.
swapped() {
	local w=$1
	printf '%s\n' "${w:0:1}${w:2:1}${w:1:1}${w:3}"
}
for w in ask chat user; do
	t=$(swapped "$w")
	run "$t"
	if [ "$rc" -eq 2 ] && grep -q "unknown command '$t' (did you mean '$w'?)" "$tmp/err"; then
		ok "pwb $t: did you mean '$w'"
	else
		fail "pwb $t: did you mean '$w'" "exit status $rc: $(shown)"
	fi
done
run user ersae
if [ "$rc" -eq 2 ] && grep -q "did you mean 'erase'?" "$tmp/err"; then
	ok "pwb user ersae: did you mean 'erase'"; else
	fail "pwb user ersae: did you mean 'erase'" "exit status $rc: $(shown)"; fi

# bounds check names its detectors where ask and chat take --detector.
run bounds check --policies . --org x --detector lexicon hi
if [ "$rc" -eq 2 ] && grep -q "lexicon, pii, linear, guard" "$tmp/err" &&
	grep -q -- "--model FILE" "$tmp/err"; then
	ok "bounds check --detector: the detectors' names and --model"; else
	fail "bounds check --detector: the detectors' names and --model" "exit status $rc: $(shown)"; fi

# ---- output that a help shows as it is ----

# simulate prefs --settings-dir: the files look like the help's example,
# numbers in their shortest form (0.9, not 0.90000000000000002).
run simulate prefs --users 30 --events 30 --out "$tmp/sim.jsonl" \
	--settings-dir "$tmp/settings"
run_rc=$rc
run simulate prefs --help
shown_json=$(grep -oE '\{"dimensions":.*\}' "$tmp/out")
long=$(cat "$tmp/settings"/*.json 2>/dev/null | grep -oE '[0-9]\.[0-9]{6,}' | head -n 1)
if [ "$run_rc" -ne 0 ] || [ -z "$shown_json" ]; then
	fail "simulate prefs --settings-dir: as its help shows" \
		"exit status $run_rc, or no example in the help"
elif [ -n "$long" ]; then
	fail "simulate prefs --settings-dir: as its help shows" \
		"$long in a settings file; the help shows $shown_json"
else
	ok "simulate prefs --settings-dir: as its help shows"
fi

# prefs explain: the signs of the weights are the help example's
# ("shorter (−0.42)" with U+2212, or an ASCII '-': the same in both).
run prefs train --data "$tmp/sim.jsonl" --out "$tmp/prefs.pwbp"
run_rc=$rc
: >"$tmp/explained"
for u in u00000 u00001 u00002 u00003 u00004 u00005; do
	run prefs explain --model "$tmp/prefs.pwbp" --user "$u"
	cat "$tmp/out" >>"$tmp/explained"
done
run prefs explain --help
# signs FILE: the signs before the weights "(+0.31)", "(−0.42)".
signs() {
	grep -oE '\((\+|-|−)[0-9]' "$1" | sed -E 's/^\(//; s/[0-9]$//' |
		sort -u | tr '\n' ' '
}
in_help=$(signs "$tmp/out") in_output=$(signs "$tmp/explained")
if [ "$run_rc" -ne 0 ] || [ -z "$in_output" ]; then
	fail "prefs explain: signs as its help shows" \
		"train exit status $run_rc, or no weights explained"
elif [ "$in_help" != "$in_output" ]; then
	fail "prefs explain: signs as its help shows" \
		"help shows '$in_help', output has '$in_output'"
else
	ok "prefs explain: signs as its help shows ($in_output)"
fi

finish
