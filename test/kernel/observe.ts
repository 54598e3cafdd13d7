// What the kernel checks read from the kernel, as pure functions of the text `ip` and `ping` print: the
// tunl0 device with its packet counters, felix's routes and where they point, and what a ping saw. The
// checks (ipip-checks.ts) run the commands inside the VM; test/kernel/observe.test.ts feeds these
// functions captured and hand-made output, so a parser that reads nothing cannot pass a check.
//
// Why this is hard: the evidence must be able to say "no". A counter that is absent must not read as 0
// (that would make "same-subnet traffic left tunl0 alone" pass on a device that does not exist), a ping
// summary must not hide which echoes went missing (the last echo is still in flight when ping is stopped,
// so the count of losses is taken from the sequence numbers that came back, not from the summary line),
// and a route's shape is read from the JSON fields, not guessed from a line of text.

/** tunl0 (or any link) as `ip -s -d -j addr show dev <dev>` prints it. */
export interface LinkObservation {
  name: string;
  /** linkinfo.info_kind: "ipip" for a real tunnel; "" when `ip` printed none. */
  kind: string;
  mtu: number;
  up: boolean;
  /** IPv4 addresses as "a.b.c.d/len". */
  addresses: string[];
  rxPackets: number;
  txPackets: number;
  rxBytes: number;
  txBytes: number;
}

function record(value: unknown): Record<string, unknown> | null {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
    ? (value as Record<string, unknown>)
    : null;
}

function count(
  stats: Record<string, unknown> | null,
  direction: 'rx' | 'tx',
  field: 'packets' | 'bytes',
  dev: string,
): number {
  const value = record(stats?.[direction])?.[field];
  if (typeof value !== 'number')
    throw new Error(
      `${dev}: "ip -s" printed no ${direction} ${field} counter (stats64.${direction}.${field}); was -s given?`,
    );
  return value;
}

/** Reads `ip -s -d -j addr show dev <dev>`; throws when the device or its counters are missing. */
export function parseLink(json: string, dev: string): LinkObservation {
  const list = JSON.parse(json) as unknown;
  if (!Array.isArray(list)) throw new Error(`ip -j addr show dev ${dev}: expected a JSON array, got ${typeof list}`);
  const link = list.map(record).find((l) => l?.ifname === dev);
  if (!link) throw new Error(`ip -j addr show dev ${dev}: no link named ${dev} in the output`);
  const stats = record(link.stats64) ?? record(link.stats);
  const addresses = (Array.isArray(link.addr_info) ? link.addr_info : [])
    .map(record)
    .filter((a): a is Record<string, unknown> => a !== null && a.family === 'inet')
    .map((a) => `${String(a.local)}/${String(a.prefixlen)}`);
  return {
    name: dev,
    kind: String(record(link.linkinfo)?.info_kind ?? ''),
    mtu: typeof link.mtu === 'number' ? link.mtu : Number.NaN,
    up: Array.isArray(link.flags) && link.flags.includes('UP'),
    addresses,
    rxPackets: count(stats, 'rx', 'packets', dev),
    txPackets: count(stats, 'tx', 'packets', dev),
    rxBytes: count(stats, 'rx', 'bytes', dev),
    txBytes: count(stats, 'tx', 'bytes', dev),
  };
}

export interface CounterDelta {
  rx: number;
  tx: number;
}

/** Packets counted between two observations of the same device. */
export function counterDelta(before: LinkObservation, after: LinkObservation): CounterDelta {
  return { rx: after.rxPackets - before.rxPackets, tx: after.txPackets - before.txPackets };
}

/** One route as `ip -j route show` prints it, reduced to what a shape check needs. */
export interface RouteShape {
  dst: string;
  /** "blackhole", "unicast"... ("unicast" when `ip` printed no type). */
  type: string;
  gateway?: string;
  dev?: string;
  protocol?: string;
  onlink: boolean;
}

/** Reads `ip -4 -j route show table main`. Host routes print without "/32"; they get it here. */
export function parseRoutes(json: string): RouteShape[] {
  const list = JSON.parse(json || '[]') as unknown;
  if (!Array.isArray(list)) throw new Error(`ip -j route: expected a JSON array, got ${typeof list}`);
  return list.map(record).flatMap((r) => {
    if (r === null || typeof r.dst !== 'string') return [];
    const dst = r.dst === 'default' || r.dst.includes('/') ? r.dst : `${r.dst}/32`;
    return [
      {
        dst,
        type: typeof r.type === 'string' ? r.type : 'unicast',
        ...(typeof r.gateway === 'string' ? { gateway: r.gateway } : {}),
        ...(typeof r.dev === 'string' ? { dev: r.dev } : {}),
        ...(r.protocol !== undefined ? { protocol: String(r.protocol) } : {}),
        onlink: Array.isArray(r.flags) && r.flags.includes('onlink'),
      },
    ];
  });
}

/** Where felix sends a remote block: through the tunnel or straight out of the host interface. */
export type RemotePath = 'tunl0' | 'direct' | 'missing' | 'other';

/**
 * The path of the route for `block`: "tunl0" = `via <nodeIp> dev tunl0 onlink`, "direct" = `via <nodeIp>
 * dev <hostDev> onlink`, "missing" = no route, "other" = anything else (wrong next hop, not onlink...).
 */
export function remotePath(routes: readonly RouteShape[], block: string, nodeIp: string, hostDev = 'eth0'): RemotePath {
  const route = routes.find((r) => r.dst === block);
  if (!route) return 'missing';
  if (route.gateway !== nodeIp || !route.onlink) return 'other';
  if (route.dev === 'tunl0') return 'tunl0';
  if (route.dev === hostDev) return 'direct';
  return 'other';
}

export function describeRoute(route: RouteShape | undefined): string {
  if (!route) return '(no route)';
  return [
    route.type === 'unicast' ? '' : route.type,
    route.dst,
    route.gateway ? `via ${route.gateway}` : '',
    route.dev ? `dev ${route.dev}` : '',
    route.protocol ? `proto ${route.protocol}` : '',
    route.onlink ? 'onlink' : '',
  ]
    .filter((p) => p !== '')
    .join(' ');
}

/** What one ping run printed (without -q: one line per reply). */
export interface PingObservation {
  /** From the summary line; undefined when ping printed none (killed hard). */
  transmitted?: number;
  received?: number;
  /** icmp_seq of every reply, in order, duplicates dropped. */
  replies: number[];
  /** Sequence numbers below the highest reply that never got one: echoes lost while later ones passed. */
  lostBeforeLast: number[];
  /** The longest run of consecutive lost sequence numbers among lostBeforeLast. */
  longestGap: number;
  /** Lines that say the packet was too big for the path ("Frag needed", "message too long"), as printed. */
  tooBig: string[];
}

const REPLY = /bytes from [^:]+: icmp_seq=(\d+)/;
const SUMMARY = /(\d+) packets transmitted, (\d+) (?:packets )?received/;
const TOO_BIG = /Frag(?:mentation)? needed|message too long/i;

export function parsePing(output: string): PingObservation {
  const seen = new Set<number>();
  const replies: number[] = [];
  const tooBig: string[] = [];
  let transmitted: number | undefined;
  let received: number | undefined;
  for (const line of output.split('\n')) {
    const reply = REPLY.exec(line);
    if (reply && !line.includes('(DUP!)')) {
      const seq = Number(reply[1]);
      if (!seen.has(seq)) {
        seen.add(seq);
        replies.push(seq);
      }
    }
    if (TOO_BIG.test(line)) tooBig.push(line.trim());
    const summary = SUMMARY.exec(line);
    if (summary) {
      transmitted = Number(summary[1]);
      received = Number(summary[2]);
    }
  }
  const highest = replies.length === 0 ? 0 : Math.max(...replies);
  const first = 1; // iputils numbers echoes from 1
  const lostBeforeLast: number[] = [];
  let longestGap = 0;
  let gap = 0;
  for (let seq = first; seq < highest; seq++) {
    if (seen.has(seq)) {
      gap = 0;
      continue;
    }
    lostBeforeLast.push(seq);
    gap++;
    longestGap = Math.max(longestGap, gap);
  }
  return {
    ...(transmitted !== undefined ? { transmitted } : {}),
    ...(received !== undefined ? { received } : {}),
    replies,
    lostBeforeLast,
    longestGap,
    tooBig,
  };
}

/**
 * The biggest ICMP echo payload (`ping -s`) that fits an MTU unfragmented: MTU − 20 (IPv4 header without
 * options, RFC 791) − 8 (ICMP echo header, RFC 792). For tunl0's 1480: 1452.
 */
export function largestEchoPayload(mtu: number): number {
  return mtu - 20 - 8;
}
