#!/usr/bin/env bash
# The test command of the README: a warnings-as-errors build and every test.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${PWB_BUILD_DIR:-build}
cmake -B "$build" -DPWB_WERROR=ON "$@" >/dev/null
cmake --build "$build" -j"$(nproc)"
ctest --test-dir "$build" --output-on-failure -j"$(nproc)"
