import { describe, expect, it } from 'vitest';
import { FakeClock } from '../../bgp/clock.js';

describe('FakeClock', () => {
  it('fires due timers in due order, ties in the order set, and moves now()', () => {
    const clock = new FakeClock(1000);
    const fired: string[] = [];
    clock.setTimeout(() => fired.push(`b@${clock.now()}`), 200);
    clock.setTimeout(() => fired.push(`a@${clock.now()}`), 100);
    clock.setTimeout(() => fired.push(`c@${clock.now()}`), 200);
    clock.setTimeout(() => fired.push('late'), 500);
    clock.advance(300);
    expect(fired).toEqual(['a@1100', 'b@1200', 'c@1200']);
    expect(clock.now()).toBe(1300);
    expect(clock.pending).toBe(1);
  });

  it('runs timers set while firing when they fall due in the same advance', () => {
    const clock = new FakeClock();
    const fired: number[] = [];
    const tick = (): void => {
      fired.push(clock.now());
      if (fired.length < 10) clock.setTimeout(tick, 30);
    };
    clock.setTimeout(tick, 30);
    clock.advance(100);
    expect(fired).toEqual([30, 60, 90]);
    clock.advance(1000);
    expect(fired.length).toBe(10);
  });

  it('clearTimeout cancels, also from inside another timer', () => {
    const clock = new FakeClock();
    const fired: string[] = [];
    const later = clock.setTimeout(() => fired.push('later'), 50);
    clock.setTimeout(() => {
      fired.push('first');
      clock.clearTimeout(later);
    }, 10);
    clock.advance(100);
    expect(fired).toEqual(['first']);
  });

  it('stops a runaway 0 ms loop with an error instead of hanging', () => {
    const clock = new FakeClock();
    const loop = (): void => void clock.setTimeout(loop, 0);
    clock.setTimeout(loop, 0);
    expect(() => clock.advance(1, 1000)).toThrow(/more than 1000 timers/);
  });

  it('advanceAsync lets promises run between timers', async () => {
    const clock = new FakeClock();
    const seen: number[] = [];
    clock.setTimeout(() => void Promise.resolve().then(() => clock.setTimeout(() => seen.push(clock.now()), 10)), 10);
    await clock.advanceAsync(25);
    expect(seen).toEqual([20]);
  });
});
