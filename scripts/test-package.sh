#!/usr/bin/env bash
# Installs the packed tarball (with its prebuilds/) into a fresh project whose PATH has node and npm but
# no compiler or cmake, proves nothing was compiled (no build/ directory), and smoke-tests the package
# with require and import (the glibc binary must win over the musl one beside it). Run after
# `npm run prebuild` or `npm run prebuild:all`.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -f prebuilds/linux-x64/batchnorm.glibc.node ] || { echo "run npm run prebuild first" >&2; exit 1; }
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
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
