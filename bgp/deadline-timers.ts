// Named one-shot timers on an injected Clock whose deadline can move. The session's FSM timers (Hold,
// Keepalive, ConnectRetry, ...) live here; a timer that fires calls `fire(name)`.
//
// Why: the Hold timer restarts on every message received, so restarting only moves the deadline — the
// underlying timer stays and re-arms itself for the rest when it fires early. No allocation per message,
// and the timer still fires exactly at the deadline.

import type { Clock, TimerHandle } from './clock.js';

export class DeadlineTimers<Name extends string> {
  private readonly timers = new Map<Name, { due: number; firesAt: number; handle: TimerHandle }>();

  constructor(
    private readonly clock: Clock,
    private readonly fire: (name: Name) => void,
  ) {}

  /** Arms `name` to fire `ms` from now (moving the deadline of one already armed). */
  start(name: Name, ms: number): void {
    const due = this.clock.now() + ms;
    const armed = this.timers.get(name);
    if (armed !== undefined && armed.firesAt <= due) {
      armed.due = due;
      return;
    }
    this.stop(name);
    this.arm(name, due);
  }

  /** Arms `name` to fire at the clock time `due`. */
  arm(name: Name, due: number): void {
    const timer = { due, firesAt: due, handle: undefined as unknown as TimerHandle };
    timer.handle = this.clock.setTimeout(() => {
      if (this.timers.get(name) !== timer) return;
      const now = this.clock.now();
      this.timers.delete(name);
      if (now < timer.due) {
        this.arm(name, timer.due);
        return;
      }
      this.fire(name);
    }, due - this.clock.now());
    this.timers.set(name, timer);
  }

  stop(name: Name): void {
    const timer = this.timers.get(name);
    if (timer !== undefined) {
      this.clock.clearTimeout(timer.handle);
      this.timers.delete(name);
    }
  }
}
