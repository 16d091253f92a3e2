#!/usr/bin/env bash
# Configure and build calm into build/ (or $CALM_BUILD_DIR). Extra arguments go
# to cmake; the tests are not built here (they need test-only packages):
# tests/run.sh builds them, or pass -DBUILD_TESTING=ON.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${CALM_BUILD_DIR:-$root/build}
cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release -DBUILD_TESTING=OFF "$@" >/dev/null
cmake --build "$build" -j"$(nproc)"
