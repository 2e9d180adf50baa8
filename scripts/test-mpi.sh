#!/usr/bin/env bash
# batchnorm/mpi under mpirun with 2, 3 and 4 ranks (test/scripts/mpi-check.js), on Open MPI: builds the
# addon first (npm run build:mpi). Under root, Open MPI needs to be told that is intended; --oversubscribe
# allows more ranks than cores.
set -euo pipefail
cd "$(dirname "$0")/.."
npm run build:mpi >/dev/null
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
for ranks in 2 3 4; do
  mpirun --oversubscribe -np "$ranks" node test/scripts/mpi-check.js
done
# The distributed demo with one process per replica: SyncBatchNorm tracks the one-process run.
out="$(mktemp -d)"
npm run build:examples --silent
mpirun --oversubscribe -np 4 node dist-examples/train-distributed.js --transport mpi --steps 25 --out "$out" | tail -2
node -e "
const r = require('$out/distributed.json').maxLossDifference;
if (!(r.sync < 1e-5 && r.perReplica > 1e-2)) throw new Error('the MPI demo strayed: ' + JSON.stringify(r));
console.log('demo under mpirun: SyncBatchNorm within', r.sync.toExponential(2), 'of the one-process loss');"
rm -rf "$out"
echo "batchnorm/mpi: allGather of 2C + 1 doubles over 2 ranks (median of 2,000 rounds):"
mpirun --oversubscribe -np 2 node test/scripts/mpi-check.js latency | head -1
