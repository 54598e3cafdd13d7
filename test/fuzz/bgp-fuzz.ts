// The BGP session fuzzer: mutated messages (./bgp-messages.ts) fed through a LIVE Speaker — the real
// framer → decode → RFC 7606 → NOTIFICATION → FSM → import/RIB/export path — on fake time, over in-process
// connections that deliver synchronously (so a million messages take seconds, and an exception thrown
// while handling a message comes back out of `emit`, where it is caught and reported).
//
// Three peers of one Speaker (AS 64999):
//   F  (AS 64512) gets every kind of mutated message, mostly Established, sometimes as the first message
//      of a connection (OpenSent) or right after the OPEN (OpenConfirm);
//   C  (AS 64513) gets mutated OPENs, each on a new connection;
//   K  (AS 64514) the keeper: Established at the start, sends two routes, must stay Established all run.
// Invariants checked on every message (a violation stops the run with the seed and the message hex):
//   - nothing escapes: no exception out of the session, no uncaught exception or unhandled rejection, no
//     "internal error" logged by a session (a contained exception is still a bug);
//   - every reset of F or C carries exactly one NOTIFICATION, last on the wire, well-formed, ≤ 4096 bytes,
//     whose code/subcode is the one RFC 4271 §6 / RFC 7606 / RFC 7313 name for the error: header errors
//     exactly (1/1, 1/2 with the Length field, 1/3 with the type), OPEN errors 2/x, UPDATE errors 3/x,
//     FSM errors 5/x for the state, Cease 6/x, Hold Timer 4/0 only when time passes; a received
//     NOTIFICATION is never answered; a valid KEEPALIVE never resets;
//   - K keeps its session and is never sent a NOTIFICATION.

import { EventEmitter } from 'node:events';
import { FakeClock } from '../../bgp/clock.js';
import { MessageFramer } from '../../bgp/codec/index.js';
import { MAX_NOTIFICATION_DATA } from '../../bgp/errors.js';
import { parseIpv4 } from '../../bgp/ip.js';
import { parsePrefix6 } from '../../bgp/ip6.js';
import type { Logger } from '../../bgp/session.js';
import { Speaker, type Acceptor } from '../../bgp/speaker.js';
import type { Connection, ConnectionEvents, Transport } from '../../bgp/transport.js';
import {
  baseAttrs,
  baseOpen,
  frame,
  generatedSeeds,
  HEADER,
  KEEPALIVE_BYTES,
  loadCaptures,
  loadExabgpVectors,
  mutate,
  openWithAs,
  writeUpdate,
  type Seed,
} from './bgp-messages.js';
import { Rng, toHex } from './random.js';

const SPEAKER_ADDR = '10.0.0.1';
const F = { address: '10.0.0.2', asn: 64512, id: 0x0a000002 };
const C = { address: '10.0.0.3', asn: 64513, id: 0x0a000003 };
const K = { address: '10.0.0.4', asn: 64514, id: 0x0a000004 };

/** One end of an in-process connection: the speaker writes into `chunks`; the fuzzer emits 'data'. */
class Wire extends EventEmitter<ConnectionEvents> implements Connection {
  readonly localAddress = SPEAKER_ADDR;
  readonly localPort = 179;
  readonly remotePort: number;
  chunks: Uint8Array[] = [];
  closed = false;
  private static port = 30000;
  constructor(readonly remoteAddress: string) {
    super();
    this.remotePort = Wire.port++;
  }
  write(bytes: Uint8Array): boolean {
    if (!this.closed) this.chunks.push(bytes);
    return true;
  }
  close(): void {
    this.shut();
  }
  destroy(): void {
    this.shut();
  }
  private shut(): void {
    if (this.closed) return;
    this.closed = true;
    queueMicrotask(() => this.emit('close', false));
  }
  /** The peer closes its side (a TCP FIN): the session sees the connection go. */
  hangUp(): void {
    if (this.closed) return;
    this.closed = true;
    this.emit('close', false);
  }
}

export interface FuzzViolation {
  readonly seed: number;
  readonly index: number;
  readonly peer: string;
  readonly state: string;
  readonly reason: string;
  readonly hex: string;
  readonly seedName: string;
}

export interface BgpFuzzReport {
  readonly seed: number;
  readonly messages: number;
  readonly ms: number;
  readonly perSecond: number;
  /** CPU time of the process (the machine may be shared: messages per CPU second is the stable number). */
  readonly cpuMs: number;
  readonly perCpuSecond: number;
  /** Outcome → count: accepted, treat-as-withdraw, attribute-discard, NOTIFICATION c/s, ... */
  readonly outcomes: Record<string, number>;
  readonly escapes: number;
  readonly violations: FuzzViolation[];
}

type Allowed = ReadonlyArray<readonly [code: number, subcodes: readonly number[] | 'any']>;

interface Expectation {
  /** The exact NOTIFICATION (header errors); data as hex when the RFC names it. */
  exact?: { code: number; subcode: number; data?: string };
  allowed?: Allowed;
  /** A reset is required (an error in any case). */
  mustReset: boolean;
  /** The session must stay up. */
  mustStay?: boolean;
  /** The session ends with no NOTIFICATION from us (the peer sent one). */
  silent?: boolean;
  /** The bytes do not complete a message: nothing happens until more come. */
  incomplete?: boolean;
}

const ANY = 'any' as const;
const CEASE: readonly [number, 'any'] = [6, ANY];
const MIN_LENGTH: Record<number, number> = { 1: 29, 2: 23, 3: 21, 4: 19, 5: 19 };

/**
 * What RFC 4271 §6 / §8, RFC 7606 and RFC 7313 ask for when `bytes` arrive in `state`, computed from the
 * bytes alone (independent of the codec under test).
 */
export function expectationFor(bytes: Uint8Array, state: 'OpenSent' | 'OpenConfirm' | 'Established'): Expectation {
  for (let i = 0; i < 16; i++) if (bytes[i] !== 0xff) return { exact: { code: 1, subcode: 1 }, mustReset: true };
  const length = (bytes[16]! << 8) | bytes[17]!;
  const lengthHex = toHex(bytes.subarray(16, 18));
  if (length < 19 || length > 4096) return { exact: { code: 1, subcode: 2, data: lengthHex }, mustReset: true };
  if (length > bytes.length) return { incomplete: true, mustReset: false };
  const type = bytes[18]!;
  if (type < 1 || type > 5)
    return { exact: { code: 1, subcode: 3, data: toHex(bytes.subarray(18, 19)) }, mustReset: true };
  const body = length - HEADER;
  if (length < MIN_LENGTH[type]! || (type === 4 && length !== 19))
    return { exact: { code: 1, subcode: 2, data: lengthHex }, mustReset: true };
  const fsmSubcode = state === 'OpenSent' ? 1 : state === 'OpenConfirm' ? 2 : 3;
  if (type === 5 && body !== 4) {
    const subtype = body >= 3 ? bytes[HEADER + 2]! : -1;
    if (subtype !== 1 && subtype !== 2) return { exact: { code: 1, subcode: 2, data: lengthHex }, mustReset: true };
    // RFC 7313 §5 in Established; before that any ROUTE-REFRESH event is an FSM error (RFC 4271 §8.2.2).
    if (state === 'Established')
      return {
        exact: { code: 7, subcode: 1, data: toHex(bytes.subarray(0, Math.min(length, MAX_NOTIFICATION_DATA))) },
        mustReset: true,
      };
    return { exact: { code: 5, subcode: fsmSubcode }, mustReset: true };
  }
  if (type === 3) return { silent: true, mustReset: true };
  if (state === 'OpenSent') {
    if (type === 1) return { allowed: [[2, ANY], CEASE], mustReset: false };
    return { exact: { code: 5, subcode: 1 }, mustReset: true };
  }
  if (state === 'OpenConfirm') {
    if (type === 4) return { mustReset: false, mustStay: true };
    if (type === 1) return { allowed: [[2, ANY], [5, [2]], CEASE], mustReset: true };
    return { exact: { code: 5, subcode: 2 }, mustReset: true };
  }
  if (type === 1)
    return {
      allowed: [
        [2, ANY],
        [5, [3]],
      ],
      mustReset: true,
    };
  if (type === 2) return { allowed: [[3, ANY], CEASE], mustReset: false };
  if (type === 4) return { mustReset: false, mustStay: true };
  return { allowed: [CEASE], mustReset: false }; // a ROUTE-REFRESH request
}

/** RFC 4271 §4.5 + the NOTIFICATION table: subcodes that have a name (0 = Unspecific is always allowed). */
const NAMED_SUBCODES: Record<number, number> = { 1: 3, 2: 7, 3: 11, 4: 0, 5: 3, 6: 10, 7: 1 };

interface LogTally {
  withdraw: number;
  discard: number;
  internal: Array<{ msg: string; obj: object }>;
}

function tallyLogger(t: LogTally): Logger {
  return {
    debug: () => {},
    info: () => {},
    warn: (_obj, msg) => {
      if (msg === 'BGP UPDATE treated as withdraw (RFC 7606)') t.withdraw++;
      else if (msg === 'BGP attributes discarded (RFC 7606)') t.discard++;
    },
    error: (obj, msg) => {
      const m = msg ?? '';
      if (/internal error|handler threw|decoder failed|export failed|without a NOTIFICATION|could not be reset/.test(m))
        t.internal.push({ msg: m, obj });
    },
  };
}

/** The messages the speaker wrote on a wire, framed; throws if what it wrote does not frame. */
function written(wire: Wire): Uint8Array[] {
  const framer = new MessageFramer();
  const out: Uint8Array[] = [];
  for (const c of wire.chunks) for (const m of framer.push(c)) out.push(m);
  if (framer.buffered !== 0)
    throw new Error(`the speaker wrote ${framer.buffered} byte(s) that do not make a whole message`);
  return out;
}

export interface BgpFuzzOptions {
  messages: number;
  seed: number;
  /** Called every ~50 000 messages with the count so far. */
  progress?: (done: number) => void;
  /** Keep stack traces on errors (slower; default off). */
  stackTraces?: boolean;
  /** Stop at the first violation (default true). */
  stopOnViolation?: boolean;
}

export async function fuzzBgp(options: BgpFuzzOptions): Promise<BgpFuzzReport> {
  const rng = new Rng(options.seed);
  const clock = new FakeClock(1_000_000);
  const tally: LogTally = { withdraw: 0, discard: 0, internal: [] };
  let onConnection: ((conn: Connection) => void) | undefined;
  const acceptor: Acceptor = async (_address, _port, handler) => {
    onConnection = handler;
    return async () => {};
  };
  const refusing: Transport = { connect: () => Promise.reject(new Error('the fuzzed speaker only accepts')) };
  const speaker = new Speaker({
    routerId: parseIpv4(SPEAKER_ADDR),
    localAs: 64999,
    listen: { address: SPEAKER_ADDR, port: 179 },
    clock,
    transport: refusing,
    acceptor,
    logger: tallyLogger(tally),
    address6: 'fd00:51::99',
  });
  const states = new Map<string, string>();
  speaker.on('state', (e) => states.set(e.peer, e.to));
  await speaker.start();
  speaker.setPeers([F, C, K].map((p) => ({ address: p.address, peerAs: p.asn, passive: true, ipv6Unicast: true })));
  speaker.setOriginated([
    { prefix: { addr: parseIpv4('10.244.0.0'), len: 26 }, attrs: { origin: 0, nextHop: parseIpv4('198.18.0.1') } },
    { prefix: parsePrefix6('fd00:10:244::/122'), attrs: { origin: 0 } },
  ]);

  const outcomes: Record<string, number> = {};
  const count = (key: string): void => {
    outcomes[key] = (outcomes[key] ?? 0) + 1;
  };
  const violations: FuzzViolation[] = [];
  let escapes = 0;
  let index = 0;
  const NO_BYTES: Uint8Array = new Uint8Array(0);
  let current: { peer: string; state: string; bytes: Uint8Array; seedName: string } = {
    peer: '-',
    state: '-',
    bytes: NO_BYTES,
    seedName: '',
  };
  const violate = (reason: string): void => {
    violations.push({
      seed: options.seed,
      index,
      peer: current.peer,
      state: current.state,
      reason,
      hex: toHex(current.bytes),
      seedName: current.seedName,
    });
  };
  const onUncaught = (error: unknown): void => {
    escapes++;
    violate(`uncaught exception: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`);
  };
  process.on('uncaughtException', onUncaught);
  process.on('unhandledRejection', onUncaught);

  /** The keeper's wire, once connected: it says it is alive whenever the fuzzer lets time pass. */
  const keeper: { wire?: Wire } = {};
  /** A new connection from `peer`; its OPEN (+ KEEPALIVE) when `open` is given. Returns the wire. */
  const connect = (peer: typeof F, open?: Uint8Array, keepalive = true): Wire => {
    const wire = new Wire(peer.address);
    for (let attempt = 0; attempt < 20; attempt++) {
      onConnection!(wire);
      if (!wire.closed) break;
      // Refused (the session waits out a backoff — after a NOTIFICATION the error wait, 5 to 30 s — or still
      // holds an old connection): let time pass, the keeper staying alive meanwhile (its hold time is 90 s).
      if (keeper.wire && !keeper.wire.closed) send(keeper.wire, KEEPALIVE_BYTES);
      clock.advance(Math.max(1, (clock.nextDue() ?? clock.now() + 1000) - clock.now()));
      wire.closed = false;
    }
    if (open) send(wire, open);
    if (open && keepalive && !wire.closed) send(wire, KEEPALIVE_BYTES);
    return wire;
  };
  const send = (wire: Wire, bytes: Uint8Array): void => {
    try {
      wire.emit('data', bytes);
    } catch (error) {
      escapes++;
      violate(
        `exception out of the session: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`,
      );
    }
  };

  // K: up, with two routes.
  const k = connect(K, baseOpen(K.asn, K.id, true));
  keeper.wire = k;
  send(
    k,
    frame(
      2,
      writeUpdate({
        withdrawn: new Uint8Array(0),
        attrs: baseAttrs(true, K.asn),
        nlri: Uint8Array.of(24, 10, 4, 1, 24, 10, 4, 2),
      }),
    ),
  );
  if (states.get(K.address) !== 'Established')
    throw new Error(`fuzz setup: the keeper peer is ${states.get(K.address)}, not Established`);

  const seeds: Seed[] = [...loadCaptures(), ...loadExabgpVectors(), ...generatedSeeds(rng, F.asn)];
  const openSeeds = seeds.filter((s) => s.kind === 'open').map((s) => ({ ...s, bytes: openWithAs(s.bytes, C.asn) }));
  const otherSeeds = seeds.filter((s) => s.kind !== 'open').map((s) => s);
  const fOpenSeeds = seeds.filter((s) => s.kind === 'open').map((s) => ({ ...s, bytes: openWithAs(s.bytes, F.asn) }));
  let f: Wire | undefined;
  let fFour = true;

  /** Checks what happened on `wire` after `bytes` arrived in `state`; counts the outcome. */
  const judge = (
    wire: Wire,
    peer: string,
    state: 'OpenSent' | 'OpenConfirm' | 'Established',
    expectation: Expectation,
    before: { withdraw: number; discard: number },
  ): boolean => {
    const reset = wire.closed;
    if (!reset) {
      if (expectation.mustReset) violate(`the session stayed up; expected ${describe(expectation)}`);
      if (expectation.incomplete) count('incomplete (waits for more bytes)');
      else if (tally.withdraw > before.withdraw) count('treat-as-withdraw');
      else if (tally.discard > before.discard) count('attribute-discard');
      else count(state === 'Established' ? 'accepted' : `accepted in ${state}`);
      return false;
    }
    let messages: Uint8Array[];
    try {
      messages = written(wire);
    } catch (error) {
      violate(String(error));
      return true;
    }
    const notifications = messages.filter((m) => m[18] === 3);
    if (expectation.silent) {
      if (notifications.length > 0)
        violate(`answered a NOTIFICATION with NOTIFICATION ${notifications[0]![19]}/${notifications[0]![20]}`);
      count('peer NOTIFICATION (session ends, not answered)');
      return true;
    }
    const last = messages[messages.length - 1];
    if (notifications.length !== 1 || last === undefined || last[18] !== 3) {
      violate(
        `a reset must end with exactly one NOTIFICATION; the speaker wrote types ${messages.map((m) => m[18]).join(',')}`,
      );
      return true;
    }
    const code = last[19]!;
    const subcode = last[20]!;
    const data = toHex(last.subarray(21));
    count(`NOTIFICATION ${code}/${subcode}`);
    if (expectation.mustStay) violate(`a valid message reset the session with ${code}/${subcode}`);
    if (last.length > 4096) violate(`NOTIFICATION of ${last.length} bytes`);
    if (subcode !== 0 && (NAMED_SUBCODES[code] === undefined || subcode > NAMED_SUBCODES[code]!))
      violate(`NOTIFICATION ${code}/${subcode} has no name in RFC 4271 / 4486 / 7313`);
    const ex = expectation.exact;
    if (ex) {
      if (code !== ex.code || subcode !== ex.subcode || (ex.data !== undefined && data !== ex.data)) {
        violate(
          `NOTIFICATION ${code}/${subcode} data ${data.slice(0, 40)}; RFC asks for ${ex.code}/${ex.subcode}${ex.data !== undefined ? ` data ${ex.data.slice(0, 40)}` : ''}`,
        );
      }
    } else if (
      expectation.allowed &&
      !expectation.allowed.some(([c, subs]) => c === code && (subs === ANY || subs.includes(subcode)))
    ) {
      violate(
        `NOTIFICATION ${code}/${subcode} for a ${describeType(current.bytes)} in ${state}; allowed: ${describe(expectation)}`,
      );
    }
    return true;
  };

  const checkKeeper = (): void => {
    if (k.closed || states.get(K.address) !== 'Established') violate(`the keeper peer K went ${states.get(K.address)}`);
    let messages: Uint8Array[] = [];
    try {
      messages = written(k);
    } catch (error) {
      violate(`to K: ${String(error)}`);
    }
    if (messages.some((m) => m[18] === 3)) violate('the keeper peer K was sent a NOTIFICATION');
    k.chunks = [];
  };

  // Stack traces are most of the cost of the BgpErrors the codec throws on malformed input; the fuzzer
  // reports the seed and the bytes instead (re-run one message to get a stack).
  const stackTraceLimit = Error.stackTraceLimit;
  if (options.stackTraces !== true) Error.stackTraceLimit = 0;
  const started = performance.now();
  const cpuStarted = process.cpuUsage();
  const stopOnViolation = options.stopOnViolation ?? true;
  for (index = 0; index < options.messages; index++) {
    if (violations.length > 0 && stopOnViolation) break;
    if ((index & 255) === 255) {
      // Let queued writes (microtasks) and the speaker's export flush (setImmediate) run.
      await new Promise<void>((resolve) => setImmediate(resolve));
      checkKeeper();
      if (f) f.chunks = [];
      if ((index & 0x3fff) === 0x3fff) {
        // Time passes: K says it is alive first; only Hold Timer Expired (4/0) may end a session now.
        send(k, KEEPALIVE_BYTES);
        if (f && !f.closed) send(f, KEEPALIVE_BYTES);
        const fBefore = f && !f.closed ? f : undefined;
        current = { peer: 'time', state: 'Established', bytes: NO_BYTES, seedName: 'time passes' };
        clock.advance(rng.range(0, 29_000));
        if (fBefore && fBefore.closed) {
          const m = written(fBefore).filter((x) => x[18] === 3);
          if (m.length !== 1 || m[0]![19] !== 4)
            violate(
              `F reset while time passed without Hold Timer Expired: ${m.map((x) => `${x[19]}/${x[20]}`).join(',')}`,
            );
          else count('NOTIFICATION 4/0 (hold timer)');
        }
        checkKeeper();
      }
      if (options.progress && (index & 0xffff) === 0xffff) options.progress(index + 1);
    }
    const roll = rng.int(100);
    if (roll < 12) {
      // C: a mutated OPEN as the first message of a new connection.
      const seed = rng.pick(openSeeds);
      const bytes = mutate(rng, seed);
      current = { peer: 'C', state: 'OpenSent', bytes, seedName: seed.name };
      const wire = connect(C);
      const ex = expectationFor(bytes, 'OpenSent');
      const before = { withdraw: tally.withdraw, discard: tally.discard };
      send(wire, bytes);
      const reset = judge(wire, 'C', 'OpenSent', ex, before);
      if (!reset) {
        // Accepted: the peer confirms, then leaves (or, for an incomplete message, just leaves).
        if (!ex.incomplete) send(wire, KEEPALIVE_BYTES);
        wire.hangUp();
      }
      continue;
    }
    const seed = rng.chance(0.04) ? rng.pick(fOpenSeeds) : rng.pick(otherSeeds);
    const bytes = mutate(rng, seed);
    let state: 'OpenSent' | 'OpenConfirm' | 'Established' = 'Established';
    if (roll < 15) {
      // F: the mutated message first on a new connection (OpenSent), or right after the OPEN (OpenConfirm).
      if (f && !f.closed) f.hangUp();
      fFour = seed.fourOctetAs;
      state = roll < 14 ? 'OpenSent' : 'OpenConfirm';
      f = connect(F, state === 'OpenConfirm' ? baseOpen(F.asn, F.id, fFour) : undefined, false);
    } else if (
      !f ||
      f.closed ||
      states.get(F.address) !== 'Established' ||
      (seed.fourOctetAs !== fFour && rng.chance(0.2))
    ) {
      if (f && !f.closed) f.hangUp();
      fFour = seed.fourOctetAs;
      f = connect(F, baseOpen(F.asn, F.id, fFour));
      f.chunks = [];
      if (states.get(F.address) !== 'Established') {
        current = { peer: 'F', state: 'setup', bytes: NO_BYTES, seedName: 'a well-formed OPEN + KEEPALIVE' };
        violate(`F did not reach Established with a well-formed OPEN (it is ${states.get(F.address)})`);
        continue;
      }
    }
    current = { peer: 'F', state, bytes, seedName: seed.name };
    const ex = expectationFor(bytes, state);
    const before = { withdraw: tally.withdraw, discard: tally.discard };
    const internalBefore = tally.internal.length;
    if (rng.chance(0.05) && bytes.length > 1) {
      // The same bytes split over two chunks: the framer must put them together again.
      const at = 1 + rng.int(bytes.length - 1);
      send(f, bytes.subarray(0, at));
      send(f, bytes.subarray(at));
    } else {
      send(f, bytes);
    }
    if (tally.internal.length > internalBefore)
      violate(
        `contained internal error: ${tally.internal[tally.internal.length - 1]!.msg} ${JSON.stringify(tally.internal[tally.internal.length - 1]!.obj).slice(0, 400)}`,
      );
    judge(f, 'F', state, ex, before);
    if (ex.incomplete && !f.closed) f.hangUp(); // resynchronise: the rest of that message never comes
  }
  await new Promise<void>((resolve) => setImmediate(resolve));
  checkKeeper();
  if (tally.internal.length > 0 && violations.length === 0)
    violate(
      `contained internal error: ${tally.internal[0]!.msg} ${JSON.stringify(tally.internal[0]!.obj).slice(0, 400)}`,
    );
  const ms = performance.now() - started;
  const cpu = process.cpuUsage(cpuStarted);
  const cpuMs = (cpu.user + cpu.system) / 1000;
  Error.stackTraceLimit = stackTraceLimit;
  await speaker.stop();
  await new Promise<void>((resolve) => setImmediate(resolve));
  process.off('uncaughtException', onUncaught);
  process.off('unhandledRejection', onUncaught);
  return {
    seed: options.seed,
    messages: index,
    ms,
    cpuMs,
    perSecond: Math.round((index / ms) * 1000),
    perCpuSecond: Math.round((index / cpuMs) * 1000),
    outcomes,
    escapes,
    violations,
  };
}

function describe(e: Expectation): string {
  if (e.exact)
    return `${e.exact.code}/${e.exact.subcode}${e.exact.data !== undefined ? ` data ${e.exact.data.slice(0, 40)}` : ''}`;
  if (e.allowed) return e.allowed.map(([c, s]) => `${c}/${s === ANY ? 'x' : s.join('|')}`).join(' or ');
  return 'no NOTIFICATION';
}

function describeType(bytes: Uint8Array): string {
  const type = bytes[18] ?? -1;
  return ['?', 'OPEN', 'UPDATE', 'NOTIFICATION', 'KEEPALIVE', 'ROUTE-REFRESH'][type] ?? `type ${type}`;
}

/** "NOTIFICATION 3/1 12.3%" lines, most frequent first. */
export function formatOutcomes(outcomes: Record<string, number>): string[] {
  const total = Object.values(outcomes).reduce((a, b) => a + b, 0);
  return Object.entries(outcomes)
    .sort((a, b) => b[1] - a[1])
    .map(([k, v]) => `  ${k.padEnd(48)} ${String(v).padStart(9)}  ${((v / total) * 100).toFixed(2).padStart(6)}%`);
}
