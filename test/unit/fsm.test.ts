// The RFC 4271 §8 transition function as a table: state × event → next state + actions.
import { describe, expect, it } from 'vitest';
import { BgpError, CeaseSubcode, ErrorCode, FsmSubcode, OpenSubcode, UpdateSubcode } from '../../bgp/errors.js';
import {
  backoffMs,
  errorWaitMs,
  INITIAL_STATE,
  isAcceptableHoldTime,
  negotiateHoldTime,
  transition,
  type BgpState,
  type FsmAction,
  type FsmConfig,
  type FsmEvent,
  type FsmState,
} from '../../bgp/fsm.js';

const config: FsmConfig = { holdTime: 90, connectRetryMs: 5000 };

function st(name: BgpState, extra: Partial<FsmState> = {}): FsmState {
  const negotiated = name === 'OpenConfirm' || name === 'Established' ? { holdTime: 90, keepaliveTime: 30 } : {};
  return { ...INITIAL_STATE, name, ...negotiated, ...extra };
}

/** A compact description of actions: "connect", "notify 4/0", "start Hold 240000", "stop *" (all stops). */
function describe_(actions: readonly FsmAction[]): string[] {
  const out: string[] = [];
  for (const a of actions) {
    switch (a.type) {
      case 'sendNotification':
        out.push(`notify ${a.code}/${a.subcode}`);
        break;
      case 'startTimer':
        out.push(`start ${a.name} ${a.ms}`);
        break;
      case 'stopTimer':
        if (!out.includes('stop *')) out.push('stop *');
        break;
      case 'negotiated':
        out.push(`negotiated ${a.holdTime}/${a.keepaliveTime}`);
        break;
      default:
        out.push(a.type);
    }
  }
  return out;
}

const headerErr = new BgpError(ErrorCode.MESSAGE_HEADER, 1, 'marker');
const openErr = new BgpError(
  ErrorCode.OPEN_MESSAGE,
  OpenSubcode.BAD_PEER_AS,
  'peer AS 65001, expected 65002',
  Uint8Array.of(0xfd, 0xe9),
);
const updateErr = new BgpError(ErrorCode.UPDATE_MESSAGE, UpdateSubcode.MALFORMED_ATTRIBUTE_LIST, 'duplicate attribute');

interface Row {
  from: FsmState;
  event: FsmEvent;
  to: BgpState;
  actions: string[];
  /** Another config than the default for this row. */
  config?: FsmConfig;
}

// Backoff with defaults: attempts 0 → 1000 ms.
const retry = ['stop *', 'close', 'start IdleHold 1000'];
const retryDown = ['stop *', 'close', 'down', 'start IdleHold 1000'];

const table: Row[] = [
  // Idle
  {
    from: st('Idle'),
    event: { type: 'ManualStart' },
    to: 'Connect',
    actions: ['stop *', 'start ConnectRetry 5000', 'connect'],
  },
  { from: st('Idle'), event: { type: 'ManualStart_with_PassiveTcpEstablishment' }, to: 'Active', actions: ['stop *'] },
  {
    from: st('Idle'),
    event: { type: 'AutomaticStart' },
    to: 'Connect',
    actions: ['stop *', 'start ConnectRetry 5000', 'connect'],
  },
  { from: st('Idle', { passive: true }), event: { type: 'AutomaticStart' }, to: 'Active', actions: ['stop *'] },
  { from: st('Idle'), event: { type: 'ManualStop' }, to: 'Idle', actions: ['stop *'] },
  { from: st('Idle'), event: { type: 'TcpConnectionConfirmed' }, to: 'Idle', actions: ['close'] },
  { from: st('Idle'), event: { type: 'KeepAliveMsg' }, to: 'Idle', actions: [] },
  { from: st('Idle'), event: { type: 'HoldTimer_Expires' }, to: 'Idle', actions: [] },
  // Connect
  {
    from: st('Connect'),
    event: { type: 'ConnectRetryTimer_Expires' },
    to: 'Connect',
    actions: ['start ConnectRetry 5000', 'connect'],
  },
  {
    from: st('Connect'),
    event: { type: 'TcpConnectionConfirmed' },
    to: 'OpenSent',
    actions: ['stop *', 'sendOpen', 'start Hold 240000'],
  },
  { from: st('Connect'), event: { type: 'TcpConnectionFails' }, to: 'Idle', actions: retry },
  { from: st('Connect'), event: { type: 'ManualStop' }, to: 'Idle', actions: ['stop *', 'close'] },
  { from: st('Connect'), event: { type: 'ManualStart' }, to: 'Connect', actions: [] },
  { from: st('Connect'), event: { type: 'KeepAliveMsg' }, to: 'Idle', actions: retry },
  // Active
  {
    from: st('Active'),
    event: { type: 'ConnectRetryTimer_Expires' },
    to: 'Connect',
    actions: ['start ConnectRetry 5000', 'connect'],
  },
  { from: st('Active', { passive: true }), event: { type: 'ConnectRetryTimer_Expires' }, to: 'Active', actions: [] },
  {
    from: st('Active', { passive: true }),
    event: { type: 'TcpConnectionConfirmed' },
    to: 'OpenSent',
    actions: ['stop *', 'sendOpen', 'start Hold 240000'],
  },
  { from: st('Active'), event: { type: 'TcpConnectionFails' }, to: 'Idle', actions: retry },
  { from: st('Active'), event: { type: 'ManualStop' }, to: 'Idle', actions: ['stop *', 'close'] },
  // OpenSent
  {
    from: st('OpenSent'),
    event: { type: 'BGPOpen', peerHoldTime: 30 },
    to: 'OpenConfirm',
    actions: ['stop *', 'negotiated 30/10', 'sendKeepalive', 'start Hold 30000', 'start Keepalive 10000'],
  },
  {
    from: st('OpenSent'),
    event: { type: 'BGPOpen', peerHoldTime: 180 },
    to: 'OpenConfirm',
    actions: ['stop *', 'negotiated 90/30', 'sendKeepalive', 'start Hold 90000', 'start Keepalive 30000'],
  },
  // Hold time 0 (no keepalives) only when ours is 0 too (RFC 4271 §6.2 MAY reject); below the minimum: refused.
  {
    from: st('OpenSent'),
    event: { type: 'BGPOpen', peerHoldTime: 0 },
    to: 'Idle',
    actions: ['notify 2/6', ...retryDown],
  },
  {
    from: st('OpenSent'),
    event: { type: 'BGPOpen', peerHoldTime: 5 },
    to: 'Idle',
    actions: ['notify 2/6', ...retryDown],
    config: { ...config, minHoldTime: 9 },
  },
  {
    from: st('OpenSent'),
    event: { type: 'BGPOpen', peerHoldTime: 0 },
    to: 'OpenConfirm',
    actions: ['stop *', 'negotiated 0/0', 'sendKeepalive'],
    config: { ...config, holdTime: 0 },
  },
  {
    from: st('OpenSent'),
    event: { type: 'BGPOpen', peerHoldTime: 2 },
    to: 'Idle',
    actions: ['notify 2/6', ...retryDown],
  },
  {
    from: st('OpenSent'),
    event: { type: 'BGPOpen', peerHoldTime: 1 },
    to: 'Idle',
    actions: ['notify 2/6', ...retryDown],
  },
  { from: st('OpenSent'), event: { type: 'HoldTimer_Expires' }, to: 'Idle', actions: ['notify 4/0', ...retryDown] },
  {
    from: st('OpenSent'),
    event: { type: 'BGPHeaderErr', error: headerErr },
    to: 'Idle',
    actions: ['notify 1/1', ...retryDown],
  },
  {
    from: st('OpenSent'),
    event: { type: 'BGPOpenMsgErr', error: openErr },
    to: 'Idle',
    actions: ['notify 2/2', ...retryDown],
  },
  { from: st('OpenSent'), event: { type: 'NotifMsg' }, to: 'Idle', actions: retryDown },
  { from: st('OpenSent'), event: { type: 'TcpConnectionFails' }, to: 'Idle', actions: retryDown },
  {
    from: st('OpenSent'),
    event: { type: 'ManualStop' },
    to: 'Idle',
    actions: ['notify 6/2', 'stop *', 'close', 'down'],
  },
  {
    from: st('OpenSent'),
    event: { type: 'OpenCollisionDump' },
    to: 'Idle',
    actions: ['notify 6/7', 'stop *', 'close', 'down'],
  },
  { from: st('OpenSent'), event: { type: 'KeepAliveMsg' }, to: 'Idle', actions: ['notify 5/1', ...retryDown] },
  { from: st('OpenSent'), event: { type: 'UpdateMsg' }, to: 'Idle', actions: ['notify 5/1', ...retryDown] },
  { from: st('OpenSent'), event: { type: 'RouteRefreshMsg' }, to: 'Idle', actions: ['notify 5/1', ...retryDown] },
  {
    from: st('OpenSent'),
    event: { type: 'KeepaliveTimer_Expires' },
    to: 'Idle',
    actions: ['notify 5/0', ...retryDown],
  },
  { from: st('OpenSent'), event: { type: 'TcpConnectionConfirmed' }, to: 'OpenSent', actions: [] },
  // OpenConfirm
  {
    from: st('OpenConfirm'),
    event: { type: 'KeepAliveMsg' },
    to: 'Established',
    actions: ['start Hold 90000', 'start Stable 30000', 'established'],
  },
  {
    from: st('OpenConfirm', { holdTime: 0, keepaliveTime: 0 }),
    event: { type: 'KeepAliveMsg' },
    to: 'Established',
    actions: ['start Stable 30000', 'established'],
  },
  {
    from: st('OpenConfirm'),
    event: { type: 'KeepaliveTimer_Expires' },
    to: 'OpenConfirm',
    actions: ['sendKeepalive', 'start Keepalive 30000'],
  },
  { from: st('OpenConfirm'), event: { type: 'HoldTimer_Expires' }, to: 'Idle', actions: ['notify 4/0', ...retryDown] },
  { from: st('OpenConfirm'), event: { type: 'NotifMsg' }, to: 'Idle', actions: retryDown },
  { from: st('OpenConfirm'), event: { type: 'TcpConnectionFails' }, to: 'Idle', actions: retryDown },
  {
    from: st('OpenConfirm'),
    event: { type: 'ManualStop' },
    to: 'Idle',
    actions: ['notify 6/2', 'stop *', 'close', 'down'],
  },
  {
    from: st('OpenConfirm'),
    event: { type: 'OpenCollisionDump' },
    to: 'Idle',
    actions: ['notify 6/7', 'stop *', 'close', 'down'],
  },
  {
    from: st('OpenConfirm'),
    event: { type: 'BGPOpen', peerHoldTime: 90 },
    to: 'Idle',
    actions: ['notify 5/2', ...retryDown],
  },
  { from: st('OpenConfirm'), event: { type: 'UpdateMsg' }, to: 'Idle', actions: ['notify 5/2', ...retryDown] },
  {
    from: st('OpenConfirm'),
    event: { type: 'BGPHeaderErr', error: headerErr },
    to: 'Idle',
    actions: ['notify 1/1', ...retryDown],
  },
  // Established
  { from: st('Established'), event: { type: 'KeepAliveMsg' }, to: 'Established', actions: ['start Hold 90000'] },
  {
    from: st('Established'),
    event: { type: 'UpdateMsg' },
    to: 'Established',
    actions: ['start Hold 90000', 'processUpdate'],
  },
  {
    from: st('Established', { holdTime: 0, keepaliveTime: 0 }),
    event: { type: 'UpdateMsg' },
    to: 'Established',
    actions: ['processUpdate'],
  },
  { from: st('Established'), event: { type: 'RouteRefreshMsg' }, to: 'Established', actions: ['processRouteRefresh'] },
  {
    from: st('Established'),
    event: { type: 'KeepaliveTimer_Expires' },
    to: 'Established',
    actions: ['sendKeepalive', 'start Keepalive 30000'],
  },
  {
    from: st('Established', { holdTime: 0, keepaliveTime: 0 }),
    event: { type: 'KeepaliveTimer_Expires' },
    to: 'Established',
    actions: [],
  },
  { from: st('Established'), event: { type: 'HoldTimer_Expires' }, to: 'Idle', actions: ['notify 4/0', ...retryDown] },
  { from: st('Established'), event: { type: 'NotifMsg' }, to: 'Idle', actions: retryDown },
  { from: st('Established'), event: { type: 'TcpConnectionFails' }, to: 'Idle', actions: retryDown },
  {
    from: st('Established'),
    event: { type: 'UpdateMsgErr', error: updateErr },
    to: 'Idle',
    actions: ['notify 3/1', ...retryDown],
  },
  {
    from: st('Established'),
    event: { type: 'BGPOpen', peerHoldTime: 90 },
    to: 'Idle',
    actions: ['notify 5/3', ...retryDown],
  },
  {
    from: st('Established'),
    event: { type: 'ManualStop' },
    to: 'Idle',
    actions: ['notify 6/2', 'stop *', 'close', 'down'],
  },
  {
    from: st('Established'),
    event: { type: 'OpenCollisionDump' },
    to: 'Idle',
    actions: ['notify 6/7', 'stop *', 'close', 'down'],
  },
  {
    from: st('Established'),
    event: { type: 'ConnectRetryTimer_Expires' },
    to: 'Idle',
    actions: ['notify 5/0', ...retryDown],
  },
  { from: st('Established'), event: { type: 'TcpConnectionConfirmed' }, to: 'Established', actions: [] },
];

describe('FSM transition table (RFC 4271 §8.2.2)', () => {
  it('has rows for every state', () => {
    expect(table.length).toBeGreaterThan(50);
    const states = new Set(table.map((r) => r.from.name));
    expect([...states].sort()).toEqual(['Active', 'Connect', 'Established', 'Idle', 'OpenConfirm', 'OpenSent']);
  });

  it.each(
    table.map((r) => [`${r.from.name}${r.from.passive ? '(passive)' : ''} + ${r.event.type} → ${r.to}`, r] as const),
  )('%s', (_name, row) => {
    const result = transition(row.from, row.event, row.config ?? config);
    expect(result.next.name).toBe(row.to);
    expect(describe_(result.actions)).toEqual(row.actions);
    expect(result.reason.length).toBeGreaterThan(0);
  });

  it('carries the BgpError data into the NOTIFICATION (Bad Peer AS: the 2-octet AS)', () => {
    const result = transition(st('OpenSent'), { type: 'BGPOpenMsgErr', error: openErr }, config);
    const notify = result.actions.find((a) => a.type === 'sendNotification');
    expect(notify).toMatchObject({ code: 2, subcode: 2, data: Uint8Array.of(0xfd, 0xe9) });
  });

  it('uses the RFC 6608 subcode for each state', () => {
    const subcodeIn = (name: BgpState): number | undefined => {
      const a = transition(st(name), { type: 'RouteRefreshMsg' }, config).actions.find(
        (x) => x.type === 'sendNotification',
      );
      return a?.type === 'sendNotification' ? a.subcode : undefined;
    };
    expect(subcodeIn('OpenSent')).toBe(FsmSubcode.UNEXPECTED_IN_OPENSENT);
    expect(subcodeIn('OpenConfirm')).toBe(FsmSubcode.UNEXPECTED_IN_OPENCONFIRM);
    expect(transition(st('Established'), { type: 'BGPOpen', peerHoldTime: 90 }, config).actions[0]).toMatchObject({
      code: ErrorCode.FSM,
      subcode: 3,
    });
  });

  it('ManualStop sends Cease/Administrative Shutdown and schedules no restart', () => {
    const result = transition(
      st('Established', { attempts: 3 }),
      { type: 'ManualStop', reason: 'peer removed' },
      config,
    );
    expect(result.actions[0]).toMatchObject({ code: ErrorCode.CEASE, subcode: CeaseSubcode.ADMINISTRATIVE_SHUTDOWN });
    expect(result.actions.some((a) => a.type === 'startTimer')).toBe(false);
    expect(result.next.attempts).toBe(0);
  });
});

describe('hold time (RFC 4271 §4.2, §10)', () => {
  it('accepts 0 and 3..65535, refuses 1 and 2', () => {
    expect([0, 3, 90, 65535].map(isAcceptableHoldTime)).toEqual([true, true, true, true]);
    expect([1, 2, -1, 65536, 2.5].map(isAcceptableHoldTime)).toEqual([false, false, false, false, false]);
  });
  it('negotiates the smaller hold time; keepalive is a third, or the configured value when lower', () => {
    expect(negotiateHoldTime(90, 30)).toEqual({ holdTime: 30, keepaliveTime: 10 });
    expect(negotiateHoldTime(90, 240)).toEqual({ holdTime: 90, keepaliveTime: 30 });
    expect(negotiateHoldTime(90, 0)).toEqual({ holdTime: 0, keepaliveTime: 0 });
    expect(negotiateHoldTime(0, 90)).toEqual({ holdTime: 0, keepaliveTime: 0 });
    expect(negotiateHoldTime(90, 90, 10)).toEqual({ holdTime: 90, keepaliveTime: 10 });
    expect(negotiateHoldTime(9, 90, 10)).toEqual({ holdTime: 9, keepaliveTime: 3 });
    expect(negotiateHoldTime(3, 3)).toEqual({ holdTime: 3, keepaliveTime: 1 });
  });
  it('uses a configured OpenSent hold (default 240 s)', () => {
    const r = transition(st('Connect'), { type: 'TcpConnectionConfirmed' }, { ...config, openHoldMs: 1000 });
    expect(r.actions).toContainEqual({ type: 'startTimer', name: 'Hold', ms: 1000 });
  });
});

describe('reconnect backoff', () => {
  it('grows 1 s, 2 s, 4 s and stops at ConnectRetry', () => {
    const cfg: FsmConfig = { holdTime: 90, connectRetryMs: 10_000 };
    let state = st('Connect');
    const waits: number[] = [];
    for (let i = 0; i < 6; i++) {
      const failed = transition(state, { type: 'TcpConnectionFails' }, cfg);
      const idleHold = failed.actions.find((a) => a.type === 'startTimer' && a.name === 'IdleHold');
      waits.push(idleHold?.type === 'startTimer' ? idleHold.ms : -1);
      state = transition(failed.next, { type: 'AutomaticStart' }, cfg).next;
      expect(state.name).toBe('Connect');
    }
    expect(waits).toEqual([1000, 2000, 4000, 8000, 10000, 10000]);
  });

  it('resets after a stable session, not on Established alone', () => {
    const s = st('OpenConfirm', { attempts: 4 });
    const up = transition(s, { type: 'KeepAliveMsg' }, config);
    expect(up.next.attempts).toBe(4);
    const stable = transition(up.next, { type: 'StableTimer_Expires' }, config);
    expect(stable.next.attempts).toBe(0);
    const drop = transition(stable.next, { type: 'TcpConnectionFails' }, config);
    expect(drop.actions).toContainEqual({ type: 'startTimer', name: 'IdleHold', ms: 1000 });
  });

  it('applies injected jitter', () => {
    expect(backoffMs(2, { holdTime: 90, connectRetryMs: 120_000, jitter: 0.25, random: () => 1 })).toBe(3000);
    expect(backoffMs(2, { holdTime: 90, connectRetryMs: 120_000, jitter: 0.25, random: () => 0 })).toBe(4000);
  });

  it('a passive session never connects, whatever happens', () => {
    let state = transition(INITIAL_STATE, { type: 'ManualStart_with_PassiveTcpEstablishment' }, config).next;
    const events: FsmEvent[] = [
      { type: 'ConnectRetryTimer_Expires' },
      { type: 'TcpConnectionFails' },
      { type: 'AutomaticStart' },
      { type: 'ConnectRetryTimer_Expires' },
    ];
    expect(events.length).toBeGreaterThan(0);
    for (const event of events) {
      const r = transition(state, event, config);
      expect(r.actions.some((a) => a.type === 'connect')).toBe(false);
      state = r.next;
    }
    expect(state.name).toBe('Active');
  });
});

describe('DampPeerOscillations: the error wait (RFC 4271 §8.1.1; BIRD error wait time 5,30)', () => {
  const damped: FsmConfig = { holdTime: 90, connectRetryMs: 5000, errorWaitInitialMs: 5000, errorWaitMaxMs: 30_000 };
  const idleHold = (actions: readonly FsmAction[]): number => {
    const a = actions.find((x) => x.type === 'startTimer' && x.name === 'IdleHold');
    return a?.type === 'startTimer' ? a.ms : -1;
  };

  it('grows 5, 10, 20, 30, 30 s over sessions that end in a NOTIFICATION, and holds down meanwhile', () => {
    let state = st('Established');
    const waits: number[] = [];
    for (let i = 0; i < 5; i++) {
      const down = transition(state, { type: 'NotifMsg', reason: 'received NOTIFICATION 3/8' }, damped);
      expect(down.next).toMatchObject({ name: 'Idle', holdingDown: true, errors: i + 1 });
      waits.push(idleHold(down.actions));
      // Back up again (AutomaticStart keeps the count), straight to Established.
      state = {
        ...transition(down.next, { type: 'AutomaticStart' }, damped).next,
        name: 'Established',
        holdTime: 90,
        keepaliveTime: 30,
      };
      expect(state.holdingDown).toBe(false);
    }
    expect(waits).toEqual([5000, 10_000, 20_000, 30_000, 30_000]);
  });

  it('counts NOTIFICATIONs sent, and a TCP loss before the session was stable; not a loss after', () => {
    expect(idleHold(transition(st('Established'), { type: 'UpdateMsgErr', error: updateErr }, damped).actions)).toBe(
      5000,
    );
    expect(idleHold(transition(st('OpenSent'), { type: 'BGPOpenMsgErr', error: openErr }, damped).actions)).toBe(5000);
    const unstable = transition(st('Established'), { type: 'TcpConnectionFails' }, damped);
    expect(idleHold(unstable.actions)).toBe(5000);
    expect(unstable.next.holdingDown).toBe(false); // no NOTIFICATION: the peer may reconnect to us (GR)
    const stable = transition(
      st('Established', { errors: 3, attempts: 2 }),
      { type: 'StableTimer_Expires' },
      damped,
    ).next;
    expect(stable).toMatchObject({ errors: 0, attempts: 0, stable: true });
    const lost = transition(stable, { type: 'TcpConnectionFails' }, damped);
    expect(idleHold(lost.actions)).toBe(1000);
    expect(lost.next.holdingDown).toBe(false);
    // A connect that fails (nothing was ever up) is the ordinary backoff.
    expect(idleHold(transition(st('Connect'), { type: 'TcpConnectionFails' }, damped).actions)).toBe(1000);
  });

  it('a deliberate Cease received (administrative shutdown, reset, de-configured…) is no error; Cease 1, 5 or 8 is', () => {
    const stable = st('Established', { stable: true });
    for (const subcode of [2, 3, 4, 6, 7]) {
      const r = transition(stable, { type: 'NotifMsg', code: 6, subcode }, damped);
      expect(idleHold(r.actions)).toBe(1000);
      expect(r.next).toMatchObject({ holdingDown: false, errors: 0 });
    }
    for (const subcode of [1, 5, 8])
      expect(transition(stable, { type: 'NotifMsg', code: 6, subcode }, damped).next.holdingDown).toBe(true);
    // Not even on a young session: a reconfigured peer's Cease 6/6 is followed by a quick reconnect.
    const early = transition(st('Established'), { type: 'NotifMsg', code: 6, subcode: 6 }, damped);
    expect(idleHold(early.actions)).toBe(1000);
    expect(early.next.holdingDown).toBe(false);
  });

  it('a ManualStart forgets the errors; without the setting an error waits only the backoff', () => {
    const down = transition(st('Established', { errors: 3 }), { type: 'NotifMsg' }, damped);
    expect(transition(down.next, { type: 'ManualStop' }, damped).next.errors).toBe(0);
    expect(transition(down.next, { type: 'ManualStart' }, damped).next.errors).toBe(0);
    expect(idleHold(transition(st('Established'), { type: 'NotifMsg' }, config).actions)).toBe(1000);
    expect(errorWaitMs(0, config)).toBe(0);
    expect(errorWaitMs(1, damped)).toBe(10_000);
  });
});

describe('LimitExceeded (RFC 4486 Cease)', () => {
  const data = Uint8Array.of(0, 1, 1, 0, 0, 0, 10);
  it('sends Cease with the subcode and data, goes down and waits at least the restart delay, holding down', () => {
    const r = transition(
      st('Established'),
      { type: 'LimitExceeded', subcode: 1, data, reason: 'too many prefixes', restartMs: 60_000 },
      config,
    );
    expect(r.next).toMatchObject({ name: 'Idle', holdingDown: true });
    expect(describe_(r.actions)).toEqual(['notify 6/1', 'stop *', 'close', 'down', 'start IdleHold 60000']);
    expect(r.actions[0]).toMatchObject({ type: 'sendNotification', code: 6, subcode: 1, data });
  });
  it('is ignored where nothing is connected', () => {
    for (const name of ['Idle', 'Connect', 'Active'] as const) {
      const r = transition(
        st(name),
        { type: 'LimitExceeded', subcode: 8, data: new Uint8Array(0), reason: 'send queue' },
        config,
      );
      expect(r.next.name).toBe(name);
      expect(r.actions).toEqual([]);
    }
  });
});
