#!/usr/bin/env bash
# Prints the path of a GGUF model for the embedded engine (`pwb serve
# --model`, `pwb ask --model`), downloading the pinned one the first time.
#
#   bash scripts/get-model.sh
#
# - PWB_MODEL=FILE.gguf: that file, checked to be a GGUF; nothing is
#   downloaded (for machines without internet, and for tests, e.g.
#   PWB_MODEL=../shared/models/stories260K.gguf).
# - Otherwise the pinned model below, downloaded once into the cache
#   ($PWB_CACHE_DIR, else $XDG_CACHE_HOME/pwb, else ~/.cache/pwb, under
#   models/SHA256/), checked against its pinned SHA-256 before it is kept:
#   a file with other bytes is removed and never used. An interrupted
#   download resumes. PWB_MODEL_URL with PWB_MODEL_SHA256 replace the pin
#   (a mirror, or another model).
#
# The path is the only line on standard output; progress and errors go to
# standard error. Exit status: 0, 1 on an error, 2 on a usage error.
set -euo pipefail

# Qwen2.5-0.5B-Instruct, Q4_K_M (Apache-2.0, 491,400,032 bytes): a small
# multilingual instruct model that answers in a second or two on a laptop
# CPU. The SHA-256 is the one Hugging Face publishes for the file.
PIN_URL=https://huggingface.co/Qwen/Qwen2.5-0.5B-Instruct-GGUF/resolve/main/qwen2.5-0.5b-instruct-q4_k_m.gguf
PIN_SHA256=74a4da8c9fdbcd15bd1f6d01d621410d31c6fc00986f5eb687824e7b93d7a9db

die() { echo "get-model: $*" >&2; exit 1; }

case ${1-} in
-h | --help)
	sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//'
	exit 0
	;;
"") ;;
*)
	echo "get-model: unknown argument '$1' (it takes none; see --help)" >&2
	exit 2
	;;
esac

# A GGUF file starts with the four bytes "GGUF".
is_gguf() {
	[ "$(head -c 4 "$1" 2>/dev/null)" = GGUF ]
}

if [ -n "${PWB_MODEL-}" ]; then
	[ -e "$PWB_MODEL" ] || die "PWB_MODEL=$PWB_MODEL: no such file"
	[ -f "$PWB_MODEL" ] && [ -r "$PWB_MODEL" ] ||
		die "PWB_MODEL=$PWB_MODEL: not a readable file"
	is_gguf "$PWB_MODEL" ||
		die "PWB_MODEL=$PWB_MODEL: not a GGUF model (it does not start with 'GGUF')"
	echo "$(cd "$(dirname "$PWB_MODEL")" && pwd)/$(basename "$PWB_MODEL")"
	exit 0
fi

url=${PWB_MODEL_URL-}
sha=${PWB_MODEL_SHA256-}
if [ -n "$url" ] || [ -n "$sha" ]; then
	if [ -z "$url" ] || [ -z "$sha" ]; then
		echo "get-model: PWB_MODEL_URL and PWB_MODEL_SHA256 go together" >&2
		exit 2
	fi
else
	url=$PIN_URL
	sha=$PIN_SHA256
fi
sha=$(printf '%s' "$sha" | tr 'A-F' 'a-f')
[[ $sha =~ ^[0-9a-f]{64}$ ]] ||
	{ echo "get-model: PWB_MODEL_SHA256 is not 64 hexadecimal digits" >&2; exit 2; }

for tool in curl sha256sum; do
	command -v "$tool" >/dev/null || die "'$tool' is needed; run scripts/install-deps.sh"
done

if [ -n "${PWB_CACHE_DIR-}" ]; then
	cache=$PWB_CACHE_DIR
elif [ -n "${XDG_CACHE_HOME-}" ]; then
	cache=$XDG_CACHE_HOME/pwb
elif [ -n "${HOME-}" ]; then
	cache=$HOME/.cache/pwb
else
	die "no cache folder: set PWB_CACHE_DIR, or PWB_MODEL to a GGUF file on disk"
fi
name=${url##*/}
name=${name%%\?*}
[ -n "$name" ] || name=model.gguf
dir=$cache/models/$sha
file=$dir/$name
# Only a file whose bytes were checked is ever moved to this name.
if [ -f "$file" ]; then
	echo "$file"
	exit 0
fi
mkdir -p "$dir" || die "cannot make the cache folder $dir"
part=$file.part

echo "get-model: downloading $url" >&2
echo "get-model: into $dir (once; set PWB_MODEL to use a file already on disk)" >&2
progress=(--silent --show-error)
[ -t 2 ] && progress=(--progress-bar)
# -C -: an interrupted download goes on where it stopped.
if ! curl --fail --location --retry 3 --connect-timeout 20 -C - "${progress[@]}" \
	--output "$part" "$url" &&
	# A part that was already whole makes the server refuse the range.
	! { [ -f "$part" ] && [ "$(sha256sum "$part" | cut -d ' ' -f 1)" = "$sha" ]; }; then
	kept=""
	[ -s "$part" ] && kept=" (the part so far is kept in $part and the next run goes on from it)"
	die "could not download $url$kept. Without internet, copy a GGUF model to this machine and set PWB_MODEL=FILE.gguf"
fi
got=$(sha256sum "$part" | cut -d ' ' -f 1)
if [ "$got" != "$sha" ]; then
	rm -f "$part"
	die "$url: the SHA-256 of the download is $got, not the pinned $sha; the file was removed"
fi
is_gguf "$part" || { rm -f "$part"; die "$url: the download is not a GGUF model; it was removed"; }
mv -f "$part" "$file"
echo "get-model: $file checked (SHA-256 $sha)" >&2
echo "$file"
