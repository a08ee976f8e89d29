#!/usr/bin/env bash
# Installs the Debian 12 packages pwb needs to build and test. Idempotent:
# packages already installed are left alone, and apt-get runs only when
# something is missing. Run as root, or as a user who may use sudo.
set -euo pipefail

packages=(
  build-essential cmake pkg-config git   # the toolchain
  libfyaml-dev                           # YAML 1.2 with line/column errors
  libjansson-dev                         # JSON
  libsodium-dev                          # BLAKE2b for policy hashes
  libvectorscan-dev                      # one-pass multi-pattern scans (bounds)
  libpcre2-dev                           # where a lexicon match starts (bounds)
  libcmocka-dev                          # unit tests
  libsqlite3-dev sqlite3                 # the embedded store (and its CLI, for tests)
  libpq-dev postgresql                   # the PostgreSQL store; a server for its tests
  libcurl4-openssl-dev                   # the upstream engine (OpenAI-compatible endpoints)
  libmicrohttpd-dev                      # the HTTP server (pwb serve)
  clang libclang-rt-14-dev               # libFuzzer and sanitizer runtimes
  python3                                # test runners compare JSON
  curl jq                                # the gateway tests and the README call pwb serve
  libxml2-utils                          # xmllint: the report pages are well-formed
  nginx wrk                              # the gateway benchmark's baseline and load
)

missing=()
# npm fetches llama.cpp (scripts/fetch-llama.sh); a machine with its own
# Node.js and npm keeps them, else Debian's are installed.
command -v npm >/dev/null || missing+=(nodejs npm)
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#packages[@]} packages are installed"
else
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || { echo "install-deps: run as root (missing: ${missing[*]})" >&2; exit 1; }
    sudo="sudo"
  fi
  echo "install-deps: installing ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# The official OpenAI client for the gateway's tests (tests/client), at
# the version its lock file pins, from the npm registry.
client=$(dirname "$0")/../tests/client
if ! cmp -s "$client/package-lock.json" "$client/node_modules/.pwb-installed" 2>/dev/null; then
  echo "install-deps: npm ci in tests/client (the openai client for the tests)"
  (cd "$client" && npm ci --no-audit --no-fund --silent &&
    cp package-lock.json node_modules/.pwb-installed)
fi
