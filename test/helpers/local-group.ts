// An in-process process group for tests: `size` ranks in one thread, whose allGather resolves once
// every rank has called it for the same round. Arrival order can be shuffled (a seeded permutation per
// round) to prove that results do not depend on it.
import type { ProcessGroup } from '../../lib/index';

export function localGroups(size: number, options: { shuffleSeed?: number } = {}): ProcessGroup[] {
  const rounds = new Map<number, { parts: (Float64Array | undefined)[]; resolvers: ((parts: Float64Array[]) => void)[] }>();
  const called = new Array<number>(size).fill(0);
  let seed = options.shuffleSeed ?? 0;
  const random = () => ((seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648);
  return Array.from({ length: size }, (_, rank) => ({
    rank,
    size,
    allGather(local: Float64Array): Promise<Float64Array[]> {
      const round = called[rank]!++;
      let state = rounds.get(round);
      if (state === undefined) {
        state = { parts: new Array<Float64Array | undefined>(size), resolvers: new Array(size) };
        rounds.set(round, state);
      }
      state.parts[rank] = local.slice();
      return new Promise<Float64Array[]>((resolve) => {
        state.resolvers[rank] = resolve;
        if (state.parts.filter(Boolean).length < size) return;
        rounds.delete(round);
        const order = Array.from({ length: size }, (__, r) => r);
        if (options.shuffleSeed !== undefined) order.sort(() => random() - 0.5);
        for (const r of order) state.resolvers[r]!(state.parts.map((part) => part!.slice()));
      });
    },
  }));
}
