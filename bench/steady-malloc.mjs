// Imported first by the benches that time PyTorch beside us: reruns this process with glibc's
// MALLOC_TOP_PAD_ at 1 GiB, the setting PyTorch is timed with (bench/timing.mjs, torchTimes), so the
// allocating rows of both libraries run with the same allocator settings. Without it glibc hands freed
// heap memory back to the system and faults it in again at the next allocation: for both libraries,
// an allocating call then pays page faults as well as its work (docs/PERFORMANCE.md, "The allocating
// path"). A MALLOC_TOP_PAD_ already set is kept (131072, glibc's default, times the default).
import { spawnSync } from 'node:child_process';

const STEADY_TOP_PAD = String(2 ** 30);

if (process.platform === 'linux' && process.env.MALLOC_TOP_PAD_ === undefined) {
  const rerun = spawnSync(process.execPath, [...process.execArgv, ...process.argv.slice(1)], {
    stdio: 'inherit',
    env: { ...process.env, MALLOC_TOP_PAD_: STEADY_TOP_PAD },
  });
  process.exit(rerun.status ?? 1);
}
