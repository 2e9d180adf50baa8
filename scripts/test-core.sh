#!/usr/bin/env bash
# The C++ core's native test driver (test/native/core_check.cc: dispatched kernels against the scalar
# oracle, bitwise identity across thread counts), built with zig against musl as the musl prebuilds are,
# and run where no musl Node.js can: linux-musl-x64 natively on every kernel path this CPU has,
# linux-musl-arm64 under qemu-aarch64 (statically linked, so neither needs a musl loader).
set -euo pipefail
cd "$(dirname "$0")/.."
BATCHNORM_ZIG="${BATCHNORM_ZIG:-$(bash scripts/fetch-cross-tools.sh | head -1)}"
export BATCHNORM_ZIG
for target in x86_64-linux-musl aarch64-linux-musl; do
  out="build-core/$target"
  BATCHNORM_ZIG_TARGET="$target" cmake -S . -B "$out" -DCMAKE_BUILD_TYPE=Release -DBATCHNORM_CORE_CHECK=ON \
    -DBATCHNORM_WERROR="${BATCHNORM_WERROR:-0}" -DCMAKE_TOOLCHAIN_FILE="$PWD/cmake/toolchain-zig.cmake" >/dev/null
  BATCHNORM_ZIG_TARGET="$target" cmake --build "$out" >/dev/null
done
for path in default avx2 avx512; do
  # A path this CPU lacks falls back to a lower one, and the driver prints the path it ran.
  BATCHNORM_CPU_CAPABILITY="$path" build-core/x86_64-linux-musl/core_check
done
qemu-aarch64 build-core/aarch64-linux-musl/core_check
