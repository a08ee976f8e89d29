#!/usr/bin/env bash
# Every reader stops at its cap on endless input and says so, instead of
# reading on until an end that never comes: /dev/zero and an endless line,
# on standard input and as a file, each under a timeout.
#
#   bash endless.sh PATH/TO/pwb PATH/TO/policies
set -u
# shellcheck source=../lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh" endless.sh
pwb=$(pwb_path "$1") || exit 2
policies=$2
limit=60

# endless NAME WANT SOURCE ARGS...: runs pwb ARGS with SOURCE (zero: the
# bytes of /dev/zero; line: "x" without a newline, forever; json: a JSON
# line that never ends) on standard input; it must exit 1 within $limit s
# with a line of stderr matching WANT.
endless() {
	local name=$1 want=$2 src=$3
	shift 3
	local rc
	case $src in
	zero)
		timeout "$limit" "$pwb" "$@" </dev/zero >"$tmp/out" 2>"$tmp/err"
		rc=$?
		;;
	line)
		yes x | tr -d '\n' | timeout "$limit" "$pwb" "$@" >"$tmp/out" 2>"$tmp/err"
		rc=${PIPESTATUS[2]}
		;;
	json)
		{ printf '{"user": "u1", "prompt": "'; yes x | tr -d '\n'; } |
			timeout "$limit" "$pwb" "$@" >"$tmp/out" 2>"$tmp/err"
		rc=${PIPESTATUS[1]}
		;;
	esac
	if [ "$rc" = 1 ] && grep -q -- "$want" "$tmp/err"; then
		ok "$name"
	elif [ "$rc" = 124 ]; then
		fail "$name" "still reading after $limit s"
	else
		fail "$name" "exit $rc: $(shown)"
	fi
}

endless "bounds check - </dev/zero" "standard input is larger than the limit" zero \
	bounds check --policies "$policies" --org acme-tutor -
endless "bounds check - with an endless line" "standard input is larger than the limit" line \
	bounds check --policies "$policies" --org acme-tutor -
endless "policy resolve --settings - </dev/zero" "standard input is larger than the limit" zero \
	policy resolve --policies "$policies" --org acme-tutor --settings -
endless "eval prefs --data - </dev/zero" "no end; reading stops here" zero \
	eval prefs --data -
endless "eval prefs --data - with an endless JSON line" "no end; reading stops here" json \
	eval prefs --data -
endless "feedback import - with an endless JSON line" "no end; reading stops here" json \
	feedback import --db "sqlite:$tmp/fb.db" --org clinic-info --policies "$policies" -
endless "eval bounds --data /dev/stdin with an endless line" "no end; reading stops here" line \
	eval bounds --policies "$policies" --org acme-tutor --data /dev/stdin

finish
