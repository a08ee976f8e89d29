#!/usr/bin/env bash
# scripts/get-model.sh: PWB_MODEL names a file on disk (checked to be a
# GGUF), or the model is downloaded once into the cache and kept only when
# its SHA-256 is the pinned one. Downloads here come from file:// URLs, so
# nothing leaves the machine.
#
#   bash get_model.sh PATH/TO/scripts/get-model.sh
#
# Prints `ok NAME` or `FAIL NAME: why` per case, then `N passed, M failed`.
# Exits 1 when a case failed, 2 on a usage error.
set -u

if [ $# -ne 1 ] || [ ! -f "$1" ]; then
	echo "usage: bash get_model.sh PATH/TO/scripts/get-model.sh" >&2
	exit 2
fi
# shellcheck source=../lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh" get_model.sh
script=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")

# get WANT_STATUS [VAR=VALUE...]: runs the script in a clean
# environment (no PWB_* from outside), output in $tmp/out and $tmp/err.
get() {
	local want=$1
	shift
	env -u PWB_MODEL -u PWB_MODEL_URL -u PWB_MODEL_SHA256 \
		PWB_CACHE_DIR="$tmp/cache" "$@" bash "$script" >"$tmp/out" 2>"$tmp/err" </dev/null
	got=$?
	[ "$got" = "$want" ]
}
check() { # NAME CONDITION...
	local name=$1
	shift
	if "$@"; then ok "$name"; else fail "$name" "status $got; out: $(head -c 200 "$tmp/out"); err: $(head -c 300 "$tmp/err")"; fi
}

printf 'GGUF\003\000\000\000a small model' >"$tmp/m.gguf"
printf 'PK\003\004not a model' >"$tmp/not.gguf"
sha=$(sha256sum "$tmp/m.gguf" | cut -d ' ' -f 1)
other=$(printf '%064d' 0)

get 0 PWB_MODEL="$tmp/m.gguf"
check "PWB_MODEL: its path, nothing downloaded" \
	test "$(cat "$tmp/out")" = "$tmp/m.gguf" -a ! -e "$tmp/cache"
(cd "$tmp" && env -u PWB_MODEL_URL PWB_MODEL=m.gguf bash "$script" >"$tmp/out" 2>"$tmp/err")
check "PWB_MODEL relative: made absolute" test "$(cat "$tmp/out")" = "$tmp/m.gguf"
get 1 PWB_MODEL="$tmp/none.gguf"
check "PWB_MODEL missing: exit 1 naming it" grep -q "none.gguf: no such file" "$tmp/err"
get 1 PWB_MODEL="$tmp/not.gguf"
check "PWB_MODEL not a GGUF: exit 1" grep -q "not a GGUF" "$tmp/err"
get 1 PWB_MODEL="$tmp"
check "PWB_MODEL a folder: exit 1" grep -q "not a readable file" "$tmp/err"

get 0 PWB_MODEL_URL="file://$tmp/m.gguf" PWB_MODEL_SHA256="$sha"
file=$(cat "$tmp/out")
check "a download lands in the cache under its SHA-256" \
	test "$file" = "$tmp/cache/models/$sha/m.gguf" -a -f "$file"
check "the download is the file's bytes" cmp -s "$file" "$tmp/m.gguf"
check "no part file is left" test ! -e "$file.part"
mv "$tmp/m.gguf" "$tmp/m2.gguf"
get 0 PWB_MODEL_URL="file://$tmp/m.gguf" PWB_MODEL_SHA256="$(echo "$sha" | tr a-f A-F)"
check "the second run downloads nothing (the source is gone)" test "$(cat "$tmp/out")" = "$file"
mv "$tmp/m2.gguf" "$tmp/m.gguf"

get 1 PWB_MODEL_URL="file://$tmp/m.gguf" PWB_MODEL_SHA256="$other"
check "a SHA-256 mismatch: exit 1 naming both" grep -q "$sha, not the pinned $other" "$tmp/err"
check "a mismatched download is removed" test -z "$(ls -A "$tmp/cache/models/$other" 2>/dev/null)"
get 1 PWB_MODEL_URL="file://$tmp/gone.gguf" PWB_MODEL_SHA256="$other"
check "a download that fails: exit 1 saying what to do" grep -q "set PWB_MODEL=FILE.gguf" "$tmp/err"
cp "$tmp/not.gguf" "$tmp/zip.gguf"
get 1 PWB_MODEL_URL="file://$tmp/zip.gguf" PWB_MODEL_SHA256="$(sha256sum "$tmp/zip.gguf" | cut -d ' ' -f 1)"
check "a download that is no GGUF is refused" grep -q "not a GGUF" "$tmp/err"

# A download cut short goes on from its part.
head -c 7 "$tmp/m.gguf" >"$tmp/cache/part-src"
rm -rf "$tmp/cache/models/$sha"
mkdir -p "$tmp/cache/models/$sha"
cp "$tmp/cache/part-src" "$tmp/cache/models/$sha/m.gguf.part"
get 0 PWB_MODEL_URL="file://$tmp/m.gguf" PWB_MODEL_SHA256="$sha"
check "an interrupted download resumes from its part" cmp -s "$(cat "$tmp/out")" "$tmp/m.gguf"

get 2 PWB_MODEL_URL="file://$tmp/m.gguf"
check "a URL without its SHA-256: usage error" grep -q "go together" "$tmp/err"
get 2 PWB_MODEL_URL="file://$tmp/m.gguf" PWB_MODEL_SHA256=xyz
check "a SHA-256 that is not hex: usage error" grep -q "64 hexadecimal" "$tmp/err"
env bash "$script" extra >"$tmp/out" 2>"$tmp/err"
got=$?
check "an argument: usage error" test "$got" = 2
bash "$script" --help >"$tmp/out" 2>&1
got=$?
check "--help" grep -q "PWB_MODEL=FILE.gguf" "$tmp/out"
check "the pin is a URL and a SHA-256" grep -Eq '^PIN_SHA256=[0-9a-f]{64}$' "$script"

finish
