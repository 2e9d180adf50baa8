// `batchnorm/mpi`: MPI_COMM_WORLD as a ProcessGroup, for SyncBatchNorm across processes and machines
// (`mpirun -np 4 node train.js`). Its addon is built from source against the machine's MPI by
// `npm run build:mpi` (MPI implementations share no ABI, so it is never prebuilt); the main addon never
// links MPI, so `batchnorm` itself loads without it.
import * as path from 'node:path';

import { invalidType } from './errors';
import { BatchNormLoadError } from './native';
import { type ProcessGroup, allReduceByGather } from './process-group';
import type { FloatArray } from './tensor';

interface MpiBinding {
  init(): { rank: number; size: number; threadLevel: number };
  allGather(local: Float64Array, out: Float64Array): Promise<void>;
}

/** MPI_COMM_WORLD as a process group, with an in-place all-reduce (sum) besides. */
export interface MpiProcessGroup extends ProcessGroup {
  /** Sums `array` over the ranks in place (gathered, then added in rank order in double, so every rank gets the same bits). */
  allReduce(array: FloatArray): Promise<void>;
}

const HOW_TO_BUILD =
  'batchnorm/mpi runs on an addon built from source against this machine\'s MPI (MPI implementations share no ABI, so it ' +
  'is never prebuilt). Install MPI and its headers (Debian/Ubuntu: apt-get install openmpi-bin libopenmpi-dev, or ' +
  'mpich libmpich-dev) and cmake, then run `npm run build:mpi` in the batchnorm package folder ' +
  '(node_modules/batchnorm in your project).';

let world: MpiProcessGroup | undefined;

function loadBinding(): MpiBinding {
  const override = process.env.BATCHNORM_MPI_ADDON_PATH;
  const file = override !== undefined && override !== '' ? path.resolve(override) : path.join(__dirname, '..', 'build-mpi', 'Release', 'batchnorm_mpi.node');
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    return require(file) as MpiBinding;
  } catch (cause) {
    throw new BatchNormLoadError(
      `batchnorm/mpi: could not load ${file} (${cause instanceof Error ? cause.message.split('\n')[0] : String(cause)}). ${HOW_TO_BUILD}`,
      { cause },
    );
  }
}

/**
 * The process group of every process of this MPI job (MPI_COMM_WORLD), started on first call (MPI_Init_thread)
 * and finalized when the process exits. Exchanges run on the libuv thread pool, so the event loop stays
 * free while a peer is late. Run the script under `mpirun` (e.g. `mpirun -np 4 node train.js`, or with
 * a hostfile across machines); a rank that dies ends the job, as mpirun does.
 */
export function mpiWorld(): MpiProcessGroup {
  if (world !== undefined) return world;
  const binding = loadBinding();
  const { rank, size } = binding.init();
  const allGather = async (local: Float64Array): Promise<Float64Array[]> => {
    if (!(local instanceof Float64Array)) throw invalidType('local', 'a Float64Array', local);
    // Copies the call owns: the caller's array may change, and the result must not be reachable, while MPI works.
    const sent = local.slice();
    const received = new Float64Array(size * sent.length);
    await binding.allGather(sent, received);
    return Array.from({ length: size }, (_, r) => received.slice(r * sent.length, (r + 1) * sent.length));
  };
  world = {
    rank,
    size,
    allGather,
    allReduce: (array: FloatArray) => allReduceByGather(allGather, array),
  };
  return world;
}
