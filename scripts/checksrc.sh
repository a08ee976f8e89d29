#!/usr/bin/env bash
# Fails when C sources use a banned function: strcpy, strcat, sprintf,
# vsprintf, gets, atoi, atol, strtok (unbounded or without error reporting;
# use snprintf, memcpy with a known length, strtol/strtod with checks).
set -u
cd "$(dirname "$0")/.."
banned='\b(strcpy|strcat|sprintf|vsprintf|gets|atoi|atol|atoll|strtok)[[:space:]]*\('
hits=$(grep -rnE "$banned" src include tests bench --include='*.c' --include='*.h' |
	grep -vE '\b(snprintf|vsnprintf)\b' || true)
if [ -n "$hits" ]; then
	echo "banned functions:"
	echo "$hits"
	exit 1
fi
echo "checksrc: no banned functions"
