// The per-peer route retention machine (bgp/retention.ts) as a table: state × event → next state + actions,
// every transition and guard; then the same machine driven on fake time, as the Speaker drives it (one
// timer per peer), to check what happens when End-of-RIB comes before or after the timer.
import { describe, expect, it } from 'vitest';
import { FakeClock, type TimerHandle } from '../../bgp/clock.js';
import { CeaseSubcode, ErrorCode } from '../../bgp/errors.js';
import {
  classifyNotification,
  INITIAL_RETENTION,
  isGracefulDown,
  lingersInPlace,
  retentionTransition,
  type DownNotification,
  type RetentionAction,
  type RetentionConfig,
  type RetentionEvent,
  type RetentionState,
} from '../../bgp/retention.js';

const config: RetentionConfig = { stalePathMs: 360_000, lingerMs: 10_000 };

const live: RetentionState = { name: 'live' };
const grStale: RetentionState = { name: 'grStale', restartTime: 120 };
const awaitingStalePath: RetentionState = { name: 'awaitingEndOfRib', timer: 'stalePath' };
const awaitingLinger: RetentionState = { name: 'awaitingEndOfRib', timer: 'linger' };
const lingeringDeconfigured: RetentionState = { name: 'lingering', reason: 'deconfiguredUs' };
const lingeringRemoved: RetentionState = { name: 'lingering', reason: 'removed' };
const gone: RetentionState = { name: 'gone' };

function down(
  notification: DownNotification,
  peerRestartTime: number | null,
  held = 5,
  uncovered = held,
): RetentionEvent {
  return { type: 'sessionDown', notification, peerRestartTime, held, uncovered };
}
const removed = (held = 5, uncovered = held): RetentionEvent => ({ type: 'removed', held, uncovered });
const established = (forwardingPreserved: boolean): RetentionEvent => ({ type: 'established', forwardingPreserved });
const endOfRib: RetentionEvent = { type: 'endOfRib' };
const timerFired: RetentionEvent = { type: 'timerFired' };

/** A compact description of actions: "clear", "start restart 120000", "markStale", "sweep", ... */
function describeActions(actions: readonly RetentionAction[]): string[] {
  return actions.map((a) =>
    a.type === 'startTimer' ? `start ${a.timer} ${a.ms}` : a.type === 'clearTimer' ? 'clear' : a.type,
  );
}

function name(state: RetentionState): string {
  if (state.name === 'lingering') return `lingering:${state.reason}`;
  if (state.name === 'awaitingEndOfRib') return `awaitingEndOfRib:${state.timer}`;
  return state.name;
}

type Row = [
  label: string,
  from: RetentionState,
  event: RetentionEvent,
  next: string,
  actions: string[],
  cfg?: RetentionConfig,
];

const rows: Row[] = [
  // ---- the session ends (only an Established session's end is fed) -------------------------------------
  [
    'live: down without NOTIFICATION, peer has GR for IPv4 (§4.2) → stale, restart timer',
    live,
    down('none', 120),
    'grStale',
    ['markStale', 'clear', 'start restart 120000'],
  ],
  [
    'live: down without NOTIFICATION, restart time 0 → stale, a 0 ms restart timer',
    live,
    down('none', 0),
    'grStale',
    ['markStale', 'clear', 'start restart 0'],
  ],
  [
    'live: down without NOTIFICATION, peer without GR for IPv4 → withdraw',
    live,
    down('none', null),
    'live',
    ['clear', 'withdrawAll'],
  ],
  [
    'live: down graceful but nothing held → nothing to keep',
    live,
    down('none', 120, 0),
    'live',
    ['clear', 'withdrawAll'],
  ],
  [
    'live: down with a NOTIFICATION (§4.2: no GR) → withdraw',
    live,
    down('other', 120),
    'live',
    ['clear', 'withdrawAll'],
  ],
  [
    'live: Cease/De-configured from iBGP → hand over, linger',
    live,
    down('deconfiguredUs', 120, 5, 3),
    'lingering:deconfiguredUs',
    ['handOver', 'markStale', 'clear', 'start linger 10000'],
  ],
  [
    'live: Cease/De-configured, every route offered elsewhere → hand over all',
    live,
    down('deconfiguredUs', null, 5, 0),
    'live',
    ['clear', 'handOver'],
  ],
  [
    'live: Cease/De-configured, linger 0 → withdraw',
    live,
    down('deconfiguredUs', null),
    'live',
    ['clear', 'withdrawAll'],
    { ...config, lingerMs: 0 },
  ],
  [
    'live: Cease/De-configured, nothing held → withdraw',
    live,
    down('deconfiguredUs', null, 0),
    'live',
    ['clear', 'withdrawAll'],
  ],
  [
    'awaitingEndOfRib: down again, graceful → stale again, new restart timer',
    awaitingStalePath,
    down('none', 90),
    'grStale',
    ['markStale', 'clear', 'start restart 90000'],
  ],
  [
    'awaitingEndOfRib: down with a NOTIFICATION → withdraw, timer cleared',
    awaitingStalePath,
    down('other', 90),
    'live',
    ['clear', 'withdrawAll'],
  ],
  [
    'awaitingEndOfRib (linger): down with Cease/De-configured → linger again',
    awaitingLinger,
    down('deconfiguredUs', null),
    'lingering:deconfiguredUs',
    ['handOver', 'markStale', 'clear', 'start linger 10000'],
  ],
  [
    "lingering (removed): its old session's end decides nothing",
    lingeringRemoved,
    down('none', 120),
    'lingering:removed',
    [],
  ],
  // ---- the peer is back -----------------------------------------------------------------------------------
  ['live: Established → nothing', live, established(true), 'live', []],
  [
    'grStale: back with the F bit (§4.2) → stale routes wait for End-of-RIB, stale-path timer',
    grStale,
    established(true),
    'awaitingEndOfRib:stalePath',
    ['clear', 'start stalePath 360000'],
  ],
  [
    'grStale: back with the F bit clear (§4.2) → sweep at once',
    grStale,
    established(false),
    'live',
    ['clear', 'sweepStale'],
  ],
  [
    'awaitingEndOfRib: Established again with F bit → stale-path timer again',
    awaitingStalePath,
    established(true),
    'awaitingEndOfRib:stalePath',
    ['clear', 'start stalePath 360000'],
  ],
  [
    'lingering (de-configured us): back → linger timer keeps running, End-of-RIB sweeps',
    lingeringDeconfigured,
    established(false),
    'awaitingEndOfRib:linger',
    [],
  ],
  [
    'lingering (de-configured us): back with F bit → the same (no GR rule applies)',
    lingeringDeconfigured,
    established(true),
    'awaitingEndOfRib:linger',
    [],
  ],
  [
    'lingering (removed): Established of the re-added peer is not its event',
    lingeringRemoved,
    established(true),
    'lingering:removed',
    [],
  ],
  // ---- End-of-RIB -----------------------------------------------------------------------------------------
  ['live: End-of-RIB → nothing', live, endOfRib, 'live', []],
  [
    'awaitingEndOfRib: End-of-RIB (§4.2) → sweep what was not sent again',
    awaitingStalePath,
    endOfRib,
    'live',
    ['clear', 'sweepStale'],
  ],
  ['awaitingEndOfRib (linger): End-of-RIB → sweep', awaitingLinger, endOfRib, 'live', ['clear', 'sweepStale']],
  ['grStale: End-of-RIB (not reachable: needs a session) → sweep', grStale, endOfRib, 'live', ['clear', 'sweepStale']],
  [
    'lingering (de-configured us): End-of-RIB → sweep',
    lingeringDeconfigured,
    endOfRib,
    'live',
    ['clear', 'sweepStale'],
  ],
  [
    "lingering (removed): the re-added peer's End-of-RIB → linger over",
    lingeringRemoved,
    endOfRib,
    'gone',
    ['clear', 'endLinger'],
  ],
  // ---- the timer ------------------------------------------------------------------------------------------
  ['grStale: restart time passed (§4.2) → sweep', grStale, timerFired, 'live', ['sweepStale']],
  [
    'awaitingEndOfRib: no End-of-RIB within the stale-path time → sweep',
    awaitingStalePath,
    timerFired,
    'live',
    ['sweepStale'],
  ],
  ['awaitingEndOfRib (linger): linger over → sweep', awaitingLinger, timerFired, 'live', ['sweepStale']],
  ['lingering (de-configured us): linger over → sweep', lingeringDeconfigured, timerFired, 'live', ['sweepStale']],
  ['lingering (removed): linger over → its routes go', lingeringRemoved, timerFired, 'gone', ['endLinger']],
  ['live: a timer with no meaning → nothing', live, timerFired, 'live', []],
  // ---- removed by setPeers --------------------------------------------------------------------------------
  [
    'live: removed with routes no one else offers → hand over, linger',
    live,
    removed(5, 2),
    'lingering:removed',
    ['clear', 'handOver', 'markStale', 'start linger 10000'],
  ],
  ['live: removed, every route offered elsewhere → withdraw', live, removed(5, 0), 'gone', ['clear', 'withdrawAll']],
  ['live: removed with nothing held → gone', live, removed(0, 0), 'gone', ['clear', 'withdrawAll']],
  [
    'live: removed, linger 0 → withdraw at once',
    live,
    removed(5),
    'gone',
    ['clear', 'withdrawAll'],
    { ...config, lingerMs: 0 },
  ],
  [
    'grStale: removed → the restart timer gives way to the linger',
    grStale,
    removed(5),
    'lingering:removed',
    ['clear', 'handOver', 'markStale', 'start linger 10000'],
  ],
  [
    'awaitingEndOfRib: removed → linger',
    awaitingStalePath,
    removed(5),
    'lingering:removed',
    ['clear', 'handOver', 'markStale', 'start linger 10000'],
  ],
  [
    'lingering (de-configured us): removed → linger as removed',
    lingeringDeconfigured,
    removed(5),
    'lingering:removed',
    ['clear', 'handOver', 'markStale', 'start linger 10000'],
  ],
  ['lingering (removed): removed again → nothing', lingeringRemoved, removed(5), 'lingering:removed', []],
  // ---- gone is final --------------------------------------------------------------------------------------
  ['gone: End-of-RIB → nothing', gone, endOfRib, 'gone', []],
  ['gone: timer → nothing', gone, timerFired, 'gone', []],
  ['gone: down → nothing', gone, down('none', 120), 'gone', []],
];

describe('retention: state × event → next state + actions (RFC 4724 §4.2 and make-before-break)', () => {
  it('the table is not empty and names every state and event', () => {
    expect(rows.length).toBeGreaterThan(30);
    const states = new Set(rows.map((r) => name(r[1])));
    for (const s of [
      'live',
      'grStale',
      'awaitingEndOfRib:stalePath',
      'awaitingEndOfRib:linger',
      'lingering:deconfiguredUs',
      'lingering:removed',
      'gone',
    ])
      expect(states).toContain(s);
    const events = new Set(rows.map((r) => r[2].type));
    for (const e of ['sessionDown', 'established', 'endOfRib', 'removed', 'timerFired']) expect(events).toContain(e);
  });

  it.each(rows)('%s', (_label, from, event, next, actions, cfg) => {
    const t = retentionTransition(from, event, cfg ?? config);
    expect(name(t.next)).toBe(next);
    expect(describeActions(t.actions)).toEqual(actions);
    expect(t.reason.length).toBeGreaterThan(0);
  });

  it("grStale keeps the peer's restart time, and the timer reason names it", () => {
    const t = retentionTransition(live, down('none', 45), config);
    expect(t.next).toEqual({ name: 'grStale', restartTime: 45 });
    expect(retentionTransition(t.next, timerFired, config).reason).toContain('45 s');
  });

  it('a NOTIFICATION rules out a graceful restart; only Cease/De-configured received from iBGP lingers', () => {
    const cease = (direction: 'sent' | 'received', subcode: number) => ({ direction, code: ErrorCode.CEASE, subcode });
    expect(classifyNotification(cease('received', CeaseSubcode.PEER_DECONFIGURED), false)).toBe('deconfiguredUs');
    expect(classifyNotification(cease('received', CeaseSubcode.PEER_DECONFIGURED), true)).toBe('other');
    expect(classifyNotification(cease('sent', CeaseSubcode.PEER_DECONFIGURED), false)).toBe('other');
    expect(classifyNotification(cease('received', CeaseSubcode.ADMINISTRATIVE_SHUTDOWN), false)).toBe('other');
    expect(classifyNotification({ direction: 'received', code: ErrorCode.HOLD_TIMER_EXPIRED, subcode: 0 }, false)).toBe(
      'other',
    );
    expect(isGracefulDown('none', true)).toBe(true);
    expect(isGracefulDown('none', false)).toBe(false);
    expect(isGracefulDown('other', true)).toBe(false);
    expect(isGracefulDown('deconfiguredUs', true)).toBe(false);
  });

  it('only a peer that de-configured us and is not back lingers in place', () => {
    expect(
      [live, grStale, awaitingStalePath, awaitingLinger, lingeringDeconfigured, lingeringRemoved, gone].filter(
        lingersInPlace,
      ),
    ).toEqual([lingeringDeconfigured]);
    expect(INITIAL_RETENTION).toEqual(live);
  });
});

/**
 * The machine driven as the Speaker drives it: one timer per peer on a fake clock, and routes that are
 * fresh or stale. `announce` is the peer sending a route on its new session.
 */
class Driver {
  state: RetentionState = INITIAL_RETENTION;
  readonly routes = new Map<string, { stale: boolean }>();
  readonly log: string[] = [];
  private timer: TimerHandle | null = null;

  constructor(
    readonly clock: FakeClock,
    private readonly cfg: RetentionConfig = config,
  ) {}

  announce(...prefixes: string[]): void {
    for (const p of prefixes) this.routes.set(p, { stale: false });
  }

  feed(event: RetentionEvent): void {
    const t = retentionTransition(this.state, event, this.cfg);
    this.state = t.next;
    for (const a of t.actions) {
      switch (a.type) {
        case 'clearTimer':
          if (this.timer !== null) this.clock.clearTimeout(this.timer);
          this.timer = null;
          break;
        case 'startTimer':
          this.timer = this.clock.setTimeout(() => {
            this.timer = null;
            this.log.push(`${this.clock.now()} timer ${a.timer}`);
            this.feed(timerFired);
          }, a.ms);
          break;
        case 'markStale':
          for (const r of this.routes.values()) r.stale = true;
          break;
        case 'sweepStale':
          for (const [p, r] of this.routes) if (r.stale) this.routes.delete(p);
          break;
        case 'withdrawAll':
        case 'endLinger':
          this.routes.clear();
          break;
        case 'handOver':
          break;
      }
    }
  }

  get pendingTimers(): number {
    return this.clock.pending;
  }
}

describe('retention on fake time', () => {
  it("restart time: the routes stay until the peer's restart time passes, not a millisecond less", () => {
    const d = new Driver(new FakeClock());
    d.announce('10.0.0.0/26', '10.0.0.64/26');
    d.feed(down('none', 120, 2));
    d.clock.advance(119_999);
    expect([...d.routes.values()].every((r) => r.stale)).toBe(true);
    expect(d.routes.size).toBe(2);
    d.clock.advance(1);
    expect(d.routes.size).toBe(0);
    expect(d.log).toEqual(['120000 timer restart']);
    expect(d.state).toEqual(live);
  });

  it('restart time 0: the routes go when the 0 ms timer fires', () => {
    const d = new Driver(new FakeClock());
    d.announce('10.0.0.0/26');
    d.feed(down('none', 0, 1));
    expect(d.routes.size).toBe(1);
    d.clock.advance(0);
    expect(d.routes.size).toBe(0);
  });

  it('F bit clear: back within the restart time, stale routes go at once; what it sends again stays', () => {
    const d = new Driver(new FakeClock());
    d.announce('10.0.0.0/26', '10.0.0.64/26');
    d.feed(down('none', 120, 2));
    d.clock.advance(5_000);
    d.feed(established(false));
    expect(d.routes.size).toBe(0);
    expect(d.pendingTimers).toBe(0);
    d.announce('10.0.0.0/26');
    d.clock.advance(1_000_000);
    expect([...d.routes.keys()]).toEqual(['10.0.0.0/26']);
  });

  it('End-of-RIB before the stale-path timer: it sweeps what was not sent again, and the timer is gone', () => {
    const d = new Driver(new FakeClock());
    d.announce('10.0.0.0/26', '10.0.0.64/26');
    d.feed(down('none', 120, 2));
    d.clock.advance(10_000);
    d.feed(established(true));
    expect(d.log).toEqual([]); // the restart timer did not fire: it was replaced by the stale-path timer
    d.announce('10.0.0.64/26');
    d.clock.advance(1_000);
    d.feed(endOfRib);
    expect([...d.routes.keys()]).toEqual(['10.0.0.64/26']);
    expect(d.pendingTimers).toBe(0);
    d.clock.advance(config.stalePathMs);
    expect(d.log).toEqual([]);
    expect(d.routes.size).toBe(1);
  });

  it('End-of-RIB after the stale-path timer: the timer swept already, End-of-RIB changes nothing', () => {
    const d = new Driver(new FakeClock());
    d.announce('10.0.0.0/26', '10.0.0.64/26');
    d.feed(down('none', 120, 2));
    d.feed(established(true));
    d.announce('10.0.0.64/26');
    d.clock.advance(config.stalePathMs);
    expect(d.log).toEqual([`${config.stalePathMs} timer stalePath`]);
    expect([...d.routes.keys()]).toEqual(['10.0.0.64/26']);
    d.announce('10.0.0.128/26');
    d.feed(endOfRib);
    expect([...d.routes.keys()]).toEqual(['10.0.0.64/26', '10.0.0.128/26']);
  });

  it('a peer that de-configured us and comes back keeps the linger timer; End-of-RIB sweeps what it did not send again', () => {
    const d = new Driver(new FakeClock());
    d.announce('10.0.0.0/26', '10.0.0.64/26');
    d.feed(down('deconfiguredUs', null, 2, 2));
    d.clock.advance(4_000);
    d.feed(established(false));
    d.announce('10.0.0.0/26');
    d.clock.advance(5_999);
    expect(d.routes.size).toBe(2);
    d.feed(endOfRib);
    expect([...d.routes.keys()]).toEqual(['10.0.0.0/26']);
    expect(d.pendingTimers).toBe(0);
  });

  it('... and without End-of-RIB, the linger ends on time (10 s after it went down)', () => {
    const d = new Driver(new FakeClock());
    d.announce('10.0.0.0/26', '10.0.0.64/26');
    d.feed(down('deconfiguredUs', null, 2, 2));
    d.clock.advance(4_000);
    d.feed(established(true));
    d.announce('10.0.0.0/26');
    d.clock.advance(6_000);
    expect(d.log).toEqual(['10000 timer linger']);
    expect([...d.routes.keys()]).toEqual(['10.0.0.0/26']);
  });

  it("removed: the routes linger for the linger time, or until the re-added peer's End-of-RIB", () => {
    const byTimer = new Driver(new FakeClock());
    byTimer.announce('10.0.0.0/26');
    byTimer.feed(removed(1, 1));
    byTimer.clock.advance(9_999);
    expect(byTimer.routes.size).toBe(1);
    byTimer.clock.advance(1);
    expect(byTimer.routes.size).toBe(0);
    expect(byTimer.state).toEqual(gone);

    const byEndOfRib = new Driver(new FakeClock());
    byEndOfRib.announce('10.0.0.0/26');
    byEndOfRib.feed(removed(1, 1));
    byEndOfRib.clock.advance(2_000);
    byEndOfRib.feed(endOfRib);
    expect(byEndOfRib.routes.size).toBe(0);
    expect(byEndOfRib.pendingTimers).toBe(0);
    expect(byEndOfRib.state).toEqual(gone);
  });
});
