// Bench `routing-clients`: a route reflector with 1,000 clients, the way Calico users scale one. 1,000
// cheap simulated clients (raw BGP over TCP in this thread: OPEN, KEEPALIVE, one UPDATE out; UPDATEs in
// are only walked for their prefixes, never decoded into objects) peer with one reflector — tortie as a
// `tortie bgp speaker` process, tortie in a worker thread, BIRD 2, FRR, one after the other in the same
// run. Once every session is Established, every client announces its 20 /26 in one UPDATE (next hop
// 198.18.x.y) at the same moment; the clock stops when every client holds the other 19,980. Then the
// reflector's RSS is read (/proc/<pid>/status), and client 0 flaps: it withdraws its 20 routes (clock
// until all 999 others have seen them go), then announces them again (until all 999 hold them again).
//
// Clients count what they receive themselves (a bitmap per client), so there is no polling and every
// reflector is timed the same way. Addresses: reflectors on 127.0.50.x; the 1,000 clients need more than a
// /24, so block 50 also owns 127.50.0.0/16 (clients on 127.50.<i / 250>.<i % 250 + 1>); see
// test/harness/addresses.ts. Each phase is bounded (LIMIT_MS); every daemon is stopped by PID.

import { connect, type Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import { encodeMessage, encodeUpdates, encodeWithdrawals, KEEPALIVE } from '../../bgp/codec/index.js';
import { parseIpv4 } from '../../bgp/ip.js';
import type { PathAttributes, Prefix } from '../../bgp/types.js';
import { addressBlock, requirePeers, startPeer, waitFor, type PeerKind } from '../harness/index.js';
import type { Bench, BenchRow } from './bench.js';
import { BENCH_AS } from './routing-daemons.js';
import { startTortieReflectorWorker } from './routing-nodes.js';
import { ratio } from './routing-receive.js';
import { cpuMsOf, rssOf, startTortieProcessReflector } from './routing-speaker-process.js';

export const CLIENTS = 1000;
export const ROUTES_PER_CLIENT = 20;
const TOTAL = CLIENTS * ROUTES_PER_CLIENT;
const LIMIT_MS = 60_000;
const SETUP_MS = 90_000;
const CLUSTER_ID = '10.50.0.1';
/** Client blocks start at 10.128.0.0; client i owns /26 number i*20 .. i*20+19. */
const BLOCK_BASE = 0x0a800000;
const CTX = { fourOctetAs: true } as const;

const block = addressBlock('test/bench/routing-clients.ts');
/** Client i's address (127.50.0.0/16 belongs to block 50 as well: see test/harness/addresses.ts). */
export function clientAddress(i: number): string {
  return `127.${block.block}.${Math.floor(i / 250)}.${(i % 250) + 1}`;
}
const CLIENT_ADDRESSES = Array.from({ length: CLIENTS }, (_, i) => clientAddress(i));
type Kind = 'tortie-process' | 'tortie-worker' | PeerKind;
const REFLECTOR: Readonly<Record<string, string>> = {
  'tortie-process': block.host(10),
  'tortie-worker': block.host(11),
  bird2: block.host(12),
  frr: block.host(13),
};

/** The route number (0..TOTAL-1) of a /26 at `addr`, or -1 when it is not one of the bench's. */
function routeIndex(addr: number, len: number): number {
  if (len !== 26) return -1;
  const i = (addr - BLOCK_BASE) / 64;
  return i >= 0 && i < TOTAL && Number.isInteger(i) ? i : -1;
}

/**
 * Walks the prefixes of `buf[at, end)` (RFC 4271 §4.3 encoding) and calls `each(index)` for those of the
 * bench. Throws on a prefix that overruns the field.
 */
export function walkPrefixes(buf: Uint8Array, at: number, end: number, each: (index: number) => void): void {
  while (at < end) {
    const len = buf[at]!;
    const bytes = (len + 7) >> 3;
    if (len > 32 || at + 1 + bytes > end)
      throw new Error(`prefix length ${len} at ${at} overruns the field (ends at ${end})`);
    let addr = 0;
    for (let k = 0; k < 4; k++) addr = addr * 256 + (k < bytes ? buf[at + 1 + k]! : 0);
    const index = routeIndex(addr, len);
    if (index >= 0) each(index);
    at += 1 + bytes;
  }
}

type Phase = 'fill' | 'withdrawn' | 'back';

/** What the run is waiting for: how many clients still miss it, and who to tell when none does. */
interface Waiting {
  phase: Phase;
  missing: number;
  done: () => void;
}

/** One client: a socket, its own 20 blocks, and a bitmap of the bench routes it holds from others. */
class CheapClient {
  private socket: Socket | undefined;
  private pending: Buffer = Buffer.alloc(0);
  private readonly held = new Uint8Array(TOTAL);
  /** Routes held that are not its own. */
  private count = 0;
  /** Routes of client 0 (the flapper) held. */
  private flapperHeld = 0;
  private gotOpen = false;
  private stopped = false;
  established = false;
  satisfied: Phase | undefined;
  error: string | undefined;
  /** What happened last on the connection (for a setup that does not finish). */
  lastEvent: string | undefined;
  readonly blocks: Prefix[];

  constructor(
    readonly index: number,
    readonly address: string,
    private readonly reflector: string,
    private readonly waiting: () => Waiting | undefined,
  ) {
    this.blocks = Array.from({ length: ROUTES_PER_CLIENT }, (_, j) => ({
      addr: (BLOCK_BASE + (index * ROUTES_PER_CLIENT + j) * 64) >>> 0,
      len: 26,
    }));
  }

  get received(): number {
    return this.count;
  }

  connect(): void {
    this.pending = Buffer.alloc(0);
    this.gotOpen = false;
    const socket = connect({ host: this.reflector, port: 179, localAddress: this.address });
    this.socket = socket;
    socket.setNoDelay(true);
    // A connection not up within 10 s (a SYN lost to a full accept queue, an OPEN never answered) is retried.
    const retry = setTimeout(() => {
      if (this.socket === socket && !this.established)
        socket.destroy(new Error(`not Established within 10 s (${this.lastEvent ?? 'no event'})`));
    }, 10_000).unref();
    socket.on('connect', () => {
      this.lastEvent = 'connected, OPEN sent';
      const open = encodeMessage(
        {
          type: 1,
          version: 4,
          myAs: BENCH_AS,
          holdTime: 240,
          bgpId: parseIpv4(this.address),
          capabilities: [{ code: 1, afi: 1, safi: 1 }, { code: 2 }, { code: 65, asn: BENCH_AS }],
        },
        CTX,
      );
      socket.write(open);
    });
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    const down = (why: string) => {
      this.lastEvent = why;
      if (this.socket !== socket) return;
      this.socket = undefined;
      if (this.established) {
        this.established = false;
        this.error ??= why;
        return;
      }
      // Not yet up (the reflector may still be loading its configuration): try again, bounded by the setup wait.
      // Not unref'd: while every client waits here, this timer is what keeps the bench's event loop alive.
      setTimeout(() => {
        if (!this.stopped) this.connect();
      }, 500);
    };
    socket.on('error', (e) => down(e.message));
    socket.on('close', () => down('connection closed'));
    socket.on('close', () => clearTimeout(retry));
  }

  stop(): void {
    this.stopped = true;
    const s = this.socket;
    this.socket = undefined;
    s?.destroy();
  }

  keepalive(): void {
    if (this.established) this.socket?.write(KEEPALIVE);
  }

  announce(): void {
    const attrs: PathAttributes = {
      origin: 0,
      asPath: [],
      nextHop: (0xc6120000 + this.index + 1) >>> 0,
      localPref: 100,
    };
    for (const m of encodeUpdates(attrs, this.blocks, CTX)) this.socket?.write(m);
  }

  withdraw(): void {
    for (const m of encodeWithdrawals(this.blocks, CTX)) this.socket?.write(m);
  }

  private onData(chunk: Buffer): void {
    const buf = this.pending.length === 0 ? chunk : Buffer.concat([this.pending, chunk]);
    let at = 0;
    while (buf.length - at >= 19) {
      const length = buf.readUInt16BE(at + 16);
      if (length < 19 || length > 4096) {
        this.error = `message length ${length}`;
        this.stop();
        return;
      }
      if (buf.length - at < length) break;
      this.onMessage(buf, at, at + length);
      at += length;
    }
    this.pending = at === buf.length ? Buffer.alloc(0) : Buffer.from(buf.subarray(at));
  }

  private onMessage(buf: Buffer, start: number, end: number): void {
    const type = buf[start + 18];
    if (type === 1) {
      this.gotOpen = true;
      this.lastEvent = 'OPEN received';
      this.socket?.write(KEEPALIVE);
    } else if (type === 4) {
      if (this.gotOpen) this.established = true;
    } else if (type === 3) {
      this.lastEvent = `NOTIFICATION ${buf[start + 19]}/${buf[start + 20]} received`;
      if (this.established) this.error = this.lastEvent;
    } else if (type === 2) {
      const wlen = buf.readUInt16BE(start + 19);
      walkPrefixes(buf, start + 21, start + 21 + wlen, (i) => this.set(i, 0));
      const alen = buf.readUInt16BE(start + 21 + wlen);
      walkPrefixes(buf, start + 23 + wlen + alen, end, (i) => this.set(i, 1));
      this.check();
    }
  }

  private set(i: number, value: 0 | 1): void {
    if (this.held[i] === value || Math.floor(i / ROUTES_PER_CLIENT) === this.index) return;
    this.held[i] = value;
    const delta = value ? 1 : -1;
    this.count += delta;
    if (i < ROUTES_PER_CLIENT) this.flapperHeld += delta;
  }

  private check(): void {
    const w = this.waiting();
    if (w === undefined || this.satisfied === w.phase) return;
    const ok =
      w.phase === 'fill'
        ? this.count === TOTAL - ROUTES_PER_CLIENT
        : w.phase === 'withdrawn'
          ? this.flapperHeld === 0
          : this.flapperHeld === ROUTES_PER_CLIENT && this.count === TOTAL - ROUTES_PER_CLIENT;
    if (!ok) return;
    this.satisfied = w.phase;
    if (--w.missing === 0) w.done();
  }
}

interface Reflector {
  pid?: number;
  allUp(): Promise<boolean>;
  stop(): Promise<void>;
}

async function startReflector(kind: Kind, address: string): Promise<Reflector> {
  if (kind === 'tortie-process') return startTortieProcessReflector(address, CLUSTER_ID, CLIENT_ADDRESSES);
  if (kind === 'tortie-worker') return startTortieReflectorWorker(address, CLIENT_ADDRESSES);
  const peer = await startPeer(kind, {
    address,
    as: BENCH_AS,
    routerId: address,
    clusterId: CLUSTER_ID,
    neighbors: CLIENT_ADDRESSES.map((c) => ({ address: c, as: BENCH_AS, rrClient: true, passive: true })),
  });
  return {
    pid: peer.pid(),
    allUp: async () => (await peer.sessions()).filter((s) => s.state === 'Established').length === CLIENTS,
    stop: () => peer.stop(),
  };
}

export interface ClientsResult {
  /** ms until every client held every other client's routes (undefined: not within LIMIT_MS). */
  fill: number | undefined;
  /** Routes held summed over clients when `fill` ended (CLIENTS × 19,980 when complete). */
  held: number;
  /** ms until client 0's withdrawal reached all 999 others, then its re-announcement. */
  withdrawn: number | undefined;
  back: number | undefined;
  /** The reflector's RSS after `fill` (not for the worker thread: it shares this process). */
  rss: number | undefined;
  /** The reflector's CPU time during `fill`, and during the flap (not for the worker thread). */
  fillCpuMs: number | undefined;
  flapCpuMs: number | undefined;
}

export async function clientsThrough(kind: Kind): Promise<ClientsResult> {
  const address = REFLECTOR[kind]!;
  const reflector = await startReflector(kind, address);
  let waiting: Waiting | undefined;
  const clients = CLIENT_ADDRESSES.map((a, i) => new CheapClient(i, a, address, () => waiting));
  const keepalives = setInterval(() => {
    for (const c of clients) c.keepalive();
  }, 30_000).unref();
  /** Waits for `phase` in the clients that `who` selects, after `act`; ms from act, or undefined at the limit. */
  const phase = async (name: Phase, who: CheapClient[], act: () => void): Promise<number | undefined> => {
    for (const c of who) c.satisfied = undefined;
    const finished = new Promise<number | undefined>((resolve) => {
      waiting = { phase: name, missing: who.length, done: () => resolve(performance.now() - t0) };
      setTimeout(() => resolve(undefined), LIMIT_MS).unref();
    });
    for (const c of clients) if (!who.includes(c)) c.satisfied = name; // not waited for
    const t0 = performance.now();
    act();
    const ms = await finished;
    waiting = undefined;
    return ms;
  };
  try {
    for (let i = 0; i < clients.length; i++) {
      clients[i]!.connect();
      if (i % 100 === 99) await new Promise((r) => setTimeout(r, 20)); // not 1,000 SYNs in one burst
    }
    await waitFor(() => clients.every((c) => c.established), {
      timeoutMs: SETUP_MS,
      intervalMs: 100,
      what: `all ${CLIENTS} clients Established with the ${kind} reflector`,
    }).catch((e: Error) => {
      const down = clients.filter((c) => !c.established);
      throw new Error(
        `${e.message}: ${down.length} are not (first: ${down[0]?.address}, ${down[0]?.lastEvent ?? 'no event'})`,
      );
    });
    await waitFor(() => reflector.allUp(), {
      timeoutMs: 30_000,
      intervalMs: 250,
      what: `${kind} reflector ${address}: all ${CLIENTS} clients Established`,
    });
    const cpu = () => cpuMsOf(reflector.pid);
    const cpu0 = cpu();
    const fill = await phase('fill', clients, () => {
      for (const c of clients) c.announce();
    });
    const cpu1 = cpu();
    const held = clients.reduce((sum, c) => sum + c.received, 0);
    const rss = rssOf(reflector.pid);
    const others = clients.slice(1);
    const withdrawn = fill === undefined ? undefined : await phase('withdrawn', others, () => clients[0]!.withdraw());
    const back = withdrawn === undefined ? undefined : await phase('back', others, () => clients[0]!.announce());
    const cpu2 = cpu();
    const fillCpuMs = cpu0 !== undefined && cpu1 !== undefined ? cpu1 - cpu0 : undefined;
    const flapCpuMs = cpu1 !== undefined && cpu2 !== undefined ? cpu2 - cpu1 : undefined;
    const broken = clients.find((c) => c.error !== undefined);
    if (broken) throw new Error(`${kind} reflector: client ${broken.address}: ${broken.error}`);
    return { fill, held, withdrawn, back, rss, fillCpuMs, flapCpuMs };
  } finally {
    clearInterval(keepalives);
    for (const c of clients) c.stop();
    await reflector.stop();
  }
}

/** Rows: fill, flap (withdrawn + back) and RSS per reflector, tortie's process first with ratios. */
export function clientsRows(results: ReadonlyMap<string, ClientsResult>): BenchRow[] {
  const what = `RR ${CLIENTS} clients × ${ROUTES_PER_CLIENT} /26`;
  const own = results.get('tortie-process');
  const rows: BenchRow[] = [];
  const flap = (r: ClientsResult) =>
    r.withdrawn !== undefined && r.back !== undefined ? r.withdrawn + r.back : undefined;
  const vs = (kind: string, mine: number | undefined, theirs: (r: ClientsResult) => number | undefined) =>
    [...results]
      .filter(([k]) => k !== kind && !k.startsWith('tortie'))
      .map(([k, r]) => `${k} ${ratio(mine, theirs(r), LIMIT_MS)}`)
      .join(', ');
  for (const [kind, r] of results) {
    const tortie = kind.startsWith('tortie');
    rows.push({
      name: `${what}, all hold all: ${kind}`,
      value: r.fill ?? LIMIT_MS,
      unit: 'ms',
      vs:
        r.fill === undefined
          ? `> ${LIMIT_MS / 1000} s limit (${r.held}/${CLIENTS * (TOTAL - ROUTES_PER_CLIENT)})`
          : tortie
            ? vs(kind, r.fill, (p) => p.fill)
            : undefined,
    });
    rows.push({
      name: `${what}, one client flaps (withdraw ${r.withdrawn?.toFixed(0) ?? '—'} + re-announce ${r.back?.toFixed(0) ?? '—'} ms): ${kind}`,
      value: flap(r) ?? LIMIT_MS,
      unit: 'ms',
      vs: tortie ? vs(kind, flap(r), flap) : undefined,
    });
    if (r.fillCpuMs !== undefined) {
      rows.push({
        name: `${what}, reflector CPU during all-hold-all (flap ${r.flapCpuMs ?? '—'} ms): ${kind}`,
        value: r.fillCpuMs,
        unit: 'ms',
        vs:
          kind !== 'tortie-process' && own?.fillCpuMs !== undefined && r.fillCpuMs > 0
            ? `tortie-process/${kind} ${(own.fillCpuMs / r.fillCpuMs).toFixed(2)}×`
            : undefined,
      });
    }
    if (r.rss !== undefined) {
      rows.push({
        name: `${what}, reflector RSS: ${kind}`,
        value: Math.round((r.rss / (1024 * 1024)) * 10) / 10,
        unit: 'MiB',
        vs:
          kind !== 'tortie-process' && own?.rss !== undefined
            ? `tortie-process/${kind} ${(own.rss / r.rss).toFixed(2)}×`
            : undefined,
      });
    }
  }
  return rows.map((r) => (r.vs === undefined || r.vs === '' ? { name: r.name, value: r.value, unit: r.unit } : r));
}

export const routingClientsBench: Bench = {
  name: 'routing-clients',
  async run(): Promise<BenchRow[]> {
    const results = new Map<string, ClientsResult>();
    const kinds: Kind[] = [
      'tortie-process',
      'tortie-worker',
      ...(['bird2', 'frr'] as const).filter((k) => requirePeers(k)),
    ];
    for (const kind of kinds) results.set(kind, await clientsThrough(kind));
    return clientsRows(results);
  },
};
