// Time behind a small interface, so hold timers, keepalives and reconnect backoff run on fake time in tests.
//
// `systemClock` is the real one. `FakeClock` keeps a sorted list of timers: `advance(ms)` fires every timer
// due by then in due-time order (ties in the order they were set), and timers set or cleared while firing
// behave as they would on a real clock (a timer set for "now" during advance fires in the same advance).
// `advanceAsync` does the same but lets promises and queued I/O (the in-memory transport) run between
// timers, which is what two sessions talking to each other need.

/** An opaque handle for `clearTimeout`. */
export type TimerHandle = object;

export interface Clock {
  /** Milliseconds, monotonic enough for timers and "since" fields. */
  now(): number;
  setTimeout(fn: () => void, ms: number): TimerHandle;
  clearTimeout(handle: TimerHandle): void;
}

export const systemClock: Clock = {
  now: () => Date.now(),
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (handle) => clearTimeout(handle as ReturnType<typeof setTimeout>),
};

/**
 * Lets a periodic check or a retry not keep the process alive by itself: the system clock's handles are
 * Node timers (unref'd here); a fake clock's have no unref and are left alone.
 */
export function unrefTimer(handle: TimerHandle): void {
  (handle as { unref?: () => void }).unref?.();
}

interface FakeTimer {
  readonly due: number;
  readonly seq: number;
  readonly fn: () => void;
}

/** Lets queued microtasks and setImmediate callbacks run (in-memory I/O), a bounded number of rounds. */
export async function settle(rounds = 5): Promise<void> {
  for (let i = 0; i < rounds; i++) await new Promise<void>((resolve) => setImmediate(resolve));
}

export class FakeClock implements Clock {
  private current: number;
  private seq = 0;
  private timers: FakeTimer[] = [];

  constructor(start = 0) {
    this.current = start;
  }

  now(): number {
    return this.current;
  }

  setTimeout(fn: () => void, ms: number): TimerHandle {
    const timer: FakeTimer = { due: this.current + Math.max(0, ms), seq: this.seq++, fn };
    this.timers.push(timer);
    return timer;
  }

  clearTimeout(handle: TimerHandle): void {
    const index = this.timers.indexOf(handle as FakeTimer);
    if (index >= 0) this.timers.splice(index, 1);
  }

  /** Number of timers waiting. */
  get pending(): number {
    return this.timers.length;
  }

  /** Due time of the next timer, or undefined. */
  nextDue(): number | undefined {
    return this.next()?.due;
  }

  /** Moves time forward by `ms`, firing due timers in order. Bounded: throws past `maxFires` (a timer loop). */
  advance(ms: number, maxFires = 100_000): void {
    const target = this.current + ms;
    for (let fired = 0; ; fired++) {
      const timer = this.next();
      if (!timer || timer.due > target) break;
      if (fired >= maxFires)
        throw new Error(
          `FakeClock.advance(${ms}): more than ${maxFires} timers fired; a timer re-arms itself at 0 ms?`,
        );
      this.fire(timer);
    }
    this.current = target;
  }

  /** Like `advance`, but lets in-memory I/O settle after each timer fires (and once at the end). */
  async advanceAsync(ms: number, maxFires = 100_000): Promise<void> {
    const target = this.current + ms;
    await settle();
    for (let fired = 0; ; fired++) {
      const timer = this.next();
      if (!timer || timer.due > target) break;
      if (fired >= maxFires) throw new Error(`FakeClock.advanceAsync(${ms}): more than ${maxFires} timers fired`);
      this.fire(timer);
      await settle();
    }
    this.current = target;
    await settle();
  }

  private next(): FakeTimer | undefined {
    let best: FakeTimer | undefined;
    for (const t of this.timers) if (!best || t.due < best.due || (t.due === best.due && t.seq < best.seq)) best = t;
    return best;
  }

  private fire(timer: FakeTimer): void {
    this.clearTimeout(timer);
    this.current = Math.max(this.current, timer.due);
    timer.fn();
  }
}
