#!/usr/bin/env bash
# Fetches llama.cpp for the embedded engine (DESIGN §7, docs/dependencies.md):
# the prebuilt CPU libraries of @node-llama-cpp/linux-x64 and the headers of
# the same llama.cpp release from node-llama-cpp's source bundle, both from
# the npm registry and nowhere else. Each tarball is checked against the
# integrity hash pinned in scripts/llama.pins before anything is unpacked.
#
#   scripts/fetch-llama.sh DEST
#
# leaves DEST/include/{llama.h,ggml*.h,gguf.h} and DEST/lib/{libllama*,
# libggml*}.so. A DEST whose stamp matches the pins is left alone.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
pins="$here/llama.pins"
dest=${1:?usage: fetch-llama.sh DEST}

die() { echo "fetch-llama: $*" >&2; exit 1; }

# shellcheck source=llama.pins
. "$pins"
stamp="$LIBS_PKG@$LLAMA_VERSION $LIBS_INTEGRITY $SRC_INTEGRITY"
if [ -f "$dest/.stamp" ] && [ "$(cat "$dest/.stamp")" = "$stamp" ]; then
  exit 0
fi

for tool in npm git python3 tar; do
  command -v "$tool" >/dev/null ||
    die "'$tool' is needed; run scripts/install-deps.sh"
done

work=$(mktemp -d "${TMPDIR:-/tmp}/pwb-llama.XXXXXX")
trap 'rm -rf "$work"' EXIT

# The npm form of an integrity: "sha512-" and the base64 of the digest.
integrity() {
  python3 - "$1" <<'EOF'
import base64, hashlib, sys
with open(sys.argv[1], "rb") as f:
    h = hashlib.sha512()
    for chunk in iter(lambda: f.read(1 << 20), b""):
        h.update(chunk)
print("sha512-" + base64.b64encode(h.digest()).decode())
EOF
}

fetch() { # fetch PKG@VERSION PINNED -> prints the tarball's path
  local spec=$1 pinned=$2 tgz got
  echo "fetch-llama: npm pack $spec" >&2
  if ! tgz=$(cd "$work" && npm pack --silent "$spec" 2>"$work/npm.err" | tail -n 1); then
    cat "$work/npm.err" >&2
    die "could not fetch $spec from the npm registry ($(npm config get registry))"
  fi
  [ -f "$work/$tgz" ] || die "npm pack $spec made no tarball"
  got=$(integrity "$work/$tgz")
  [ "$got" = "$pinned" ] ||
    die "$spec: integrity $got does not match the pin $pinned in $pins"
  echo "$work/$tgz"
}

libs_tgz=$(fetch "$LIBS_PKG@$LLAMA_VERSION" "$LIBS_INTEGRITY")
src_tgz=$(fetch "$SRC_PKG@$LLAMA_VERSION" "$SRC_INTEGRITY")

mkdir -p "$work/libs" "$work/src" "$work/out/include" "$work/out/lib"
tar -xzf "$libs_tgz" -C "$work/libs" "package/bins/$LIBS_DIR" package/LICENSE
tar -xzf "$src_tgz" -C "$work/src" package/llama/gitRelease.bundle
git clone -q "$work/src/package/llama/gitRelease.bundle" "$work/llama.cpp" 2>/dev/null ||
  die "$SRC_PKG@$LLAMA_VERSION: llama/gitRelease.bundle is not a git bundle"

cp "$work/llama.cpp/include/llama.h" "$work/llama.cpp/ggml/include/"ggml*.h \
   "$work/llama.cpp/ggml/include/gguf.h" "$work/out/include/"
cp "$work/llama.cpp/LICENSE" "$work/out/LICENSE.llama.cpp"
# The engine needs libllama, libggml and the base, and loads the CPU
# backends (one per instruction set) at run time.
for f in "$work/libs/package/bins/$LIBS_DIR/"lib{llama.,ggml}*.so; do
  cp "$f" "$work/out/lib/"
done
ls "$work/out/lib/"libllama.*so >/dev/null 2>&1 || die "$LIBS_PKG has no libllama"
ls "$work/out/lib/"libggml-cpu-*.so >/dev/null 2>&1 || die "$LIBS_PKG has no CPU backend"
echo "$stamp" >"$work/out/.stamp"

# Replace DEST whole, so that it is never half-written.
mkdir -p "$(dirname "$dest")"
rm -rf "$dest.old"
[ -e "$dest" ] && mv "$dest" "$dest.old"
mv "$work/out" "$dest"
rm -rf "$dest.old"
echo "fetch-llama: llama.cpp $LLAMA_RELEASE ($LIBS_PKG@$LLAMA_VERSION) in $dest" >&2
