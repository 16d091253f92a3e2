#!/usr/bin/env bash
# The whole test suite on a fresh Debian 12 machine: installs what is missing,
# builds, runs every test with ctest, then runs the suite again under
# AddressSanitizer + UndefinedBehaviorSanitizer: every test but those labelled
# no_asan (tests/CMakeLists.txt says which and why, and gives the sanitizer
# build's tests their options and suppressions).
#   CALM_SKIP_ASAN=1 tests/run.sh   skip the sanitizer pass
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$root"
jobs/install-deps.sh --test

jobs=$(nproc)
echo "== build (Release) =="
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DBUILD_TESTING=ON >/dev/null
cmake --build build -j"$jobs"
echo "== ctest (Release) =="
SECONDS=0
(cd build && ctest --output-on-failure --no-tests=error -j"$jobs")
echo "== ctest (Release): $SECONDS s =="

if [[ "${CALM_SKIP_ASAN:-0}" != 1 ]]; then
  echo "== build (ASan + UBSan) =="
  cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCALM_SANITIZE=ON -DBUILD_TESTING=ON >/dev/null
  cmake --build build-asan -j"$jobs"
  echo "== ctest (ASan + UBSan) =="
  SECONDS=0
  (cd build-asan && ctest --output-on-failure --no-tests=error -j"$jobs" -LE no_asan)
  echo "== ctest (ASan + UBSan): $SECONDS s =="
fi
