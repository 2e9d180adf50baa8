#!/usr/bin/env bash
# `npm run test:sanitize`: builds the addon with clang's AddressSanitizer and UndefinedBehaviorSanitizer
# into build-sanitize/ and runs the test suite against it (the ASan runtime preloaded into Node).
# Needs Debian's clang and libclang-rt-14-dev (.ci/run installs them).
set -euo pipefail
cd "$(dirname "$0")/.."
command -v clang++ >/dev/null || { echo "test:sanitize needs clang++ (apt-get install -y clang libclang-rt-14-dev)" >&2; exit 1; }
runtime="$(clang++ -print-file-name=libclang_rt.asan-x86_64.so)"
[ -f "$runtime" ] || { echo "test:sanitize: ASan runtime not found ($runtime); apt-get install -y libclang-rt-14-dev" >&2; exit 1; }

npx cmake-js rebuild --out build-sanitize --CDBATCHNORM_SANITIZE=ON \
  --CDCMAKE_C_COMPILER=clang --CDCMAKE_CXX_COMPILER=clang++ --CDCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
addon="$PWD/build-sanitize/RelWithDebInfo/batchnorm.node"
[ -f "$addon" ] || addon="$PWD/build-sanitize/Release/batchnorm.node"

# Node itself is not instrumented and keeps memory until exit: no leak detection, but every invalid
# access or undefined behaviour in the addon aborts the run.
export BATCHNORM_ADDON_PATH="$addon"
export LD_PRELOAD="$runtime"
export ASAN_OPTIONS="detect_leaks=0:verify_asan_link_order=0:abort_on_error=1:detect_stack_use_after_return=0"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1"
# The RSS bound of test/leaks.test.ts does not apply under ASan, whose allocator quarantines freed memory.
npx vitest run --project all --exclude test/leaks.test.ts "$@"
