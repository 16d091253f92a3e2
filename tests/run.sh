#!/usr/bin/env bash
# The whole test suite on a fresh Debian 12 machine: installs what is missing,
# builds, runs every test with ctest, then runs the suite again under
# AddressSanitizer + UndefinedBehaviorSanitizer.
#   CALM_SKIP_ASAN=1 tests/run.sh   skip the sanitizer pass
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$root"
jobs/install-deps.sh --test

jobs=$(nproc)
echo "== build (Release) =="
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DBUILD_TESTING=ON >/dev/null
cmake --build build -j"$jobs"
echo "== ctest (Release) =="
(cd build && ctest --output-on-failure --no-tests=error -j"$jobs")

if [[ "${CALM_SKIP_ASAN:-0}" != 1 ]]; then
  echo "== build (ASan + UBSan) =="
  cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCALM_SANITIZE=ON -DBUILD_TESTING=ON >/dev/null
  cmake --build build-asan -j"$jobs"
  echo "== ctest (ASan + UBSan) =="
  # OpenMP's runtime keeps thread pools alive at exit; that is not a leak of ours.
  (cd build-asan && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
     LSAN_OPTIONS=suppressions="$root/tests/lsan.supp" \
     UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
     ctest --output-on-failure --no-tests=error -j"$jobs" -LE no_asan)
fi
