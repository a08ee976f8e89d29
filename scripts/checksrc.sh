#!/usr/bin/env bash
# Fails when C sources use a banned function: strcpy, strcat, sprintf,
# vsprintf, gets, atoi, atol, strtok (unbounded or without error reporting;
# use snprintf, memcpy with a known length, strtol/strtod with checks);
# and when a module of src/ includes another module's internal headers:
# modules meet only through include/pwb/*.h (src/util/ is shared by all).
set -u
cd "${PWB_CHECKSRC_ROOT:-$(dirname "$0")/..}"

# Module boundaries: src/M/F may include "M/..." and "util/..." only.
cross=$(grep -rnE '^[[:space:]]*#[[:space:]]*include[[:space:]]+"[a-z_]+/' src \
	--include='*.c' --include='*.h' |
	awk -F: '{
		split($1, p, "/"); mod = p[2]
		match($0, /"[a-z_]+\//); inc = substr($0, RSTART + 1, RLENGTH - 2)
		if (inc != mod && inc != "util" && inc != "pwb") print
	}')
if [ -n "$cross" ]; then
	echo "internal headers of another module (use its public header in include/pwb/):"
	echo "$cross"
	exit 1
fi
banned='\b(strcpy|strcat|sprintf|vsprintf|gets|atoi|atol|atoll|strtok)[[:space:]]*\('
hits=$(grep -rnE "$banned" src include tests bench --include='*.c' --include='*.h' |
	grep -vE '\b(snprintf|vsnprintf)\b' || true)
if [ -n "$hits" ]; then
	echo "banned functions:"
	echo "$hits"
	exit 1
fi
echo "checksrc: no banned functions, no internal header across modules"
