// A module's queue of async calls: they run one after another in call order, and the synchronous
// methods that read or change the module's state refuse to run while any is pending.
import { BatchNormStateError } from './errors';

export class CallQueue {
  private pendingCalls = 0;
  private tail: Promise<unknown> = Promise.resolve();

  /** Async calls queued and not settled yet. */
  get pending(): number {
    return this.pendingCalls;
  }

  /** Runs `task` after every call queued before it has settled; its promise settles as the task's does. */
  enqueue<R>(task: () => Promise<R>): Promise<R> {
    this.pendingCalls++;
    const run = this.tail.then(task);
    this.tail = run.then(
      () => this.pendingCalls--,
      () => this.pendingCalls--,
    );
    return run;
  }

  /** Resolves when every call queued so far has settled, whether it succeeded or not. */
  async whenIdle(): Promise<void> {
    while (this.pendingCalls > 0) await this.tail;
  }

  /** A BatchNormStateError for `owner.method()` called synchronously while calls are pending. */
  checkIdle(owner: string, method: string): void {
    if (this.pendingCalls === 0) return;
    const queued = method === 'forward' || method === 'backward' ? ` or call ${method}Async(), which queues behind them` : '';
    throw new BatchNormStateError(
      `${owner}.${method}() was called while ${this.pendingCalls} async call(s) on this module are pending; ` +
        `await them first (await module.whenIdle() waits for all)${queued}`,
    );
  }
}
