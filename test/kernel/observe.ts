// What the kernel checks read from the kernel, as pure functions of the text `ip` and `ping` print: the
// tunl0 and vxlan.calico devices with their packet counters, felix's routes and where they point, the
// VXLAN neighbour and FDB entries against the VTEPs they should hold, and what a ping saw (split at switches). The
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

/** Where felix sends a remote block: through a tunnel (IPIP, VXLAN) or straight out of the host interface. */
export type RemotePath = 'tunl0' | 'vxlan' | 'direct' | 'missing' | 'other';

/**
 * The path of the route for `block`: "tunl0" = `via <nodeIp> dev tunl0 onlink`, "vxlan" = `via <the node's
 * VXLAN tunnel address> dev vxlan.calico onlink` (`vtep`; without it no route reads as vxlan), "direct" =
 * `via <nodeIp> dev <hostDev> onlink`, "missing" = no route, "other" = anything else (wrong next hop, not
 * onlink, a VXLAN route via another node's VTEP...).
 */
export function remotePath(
  routes: readonly RouteShape[],
  block: string,
  nodeIp: string,
  hostDev = 'eth0',
  vtep?: string,
): RemotePath {
  const route = routes.find((r) => r.dst === block);
  if (!route) return 'missing';
  if (!route.onlink) return 'other';
  if (route.dev === VXLAN_DEVICE) return vtep !== undefined && route.gateway === vtep ? 'vxlan' : 'other';
  if (route.gateway !== nodeIp) return 'other';
  if (route.dev === 'tunl0') return 'tunl0';
  if (route.dev === hostDev) return 'direct';
  return 'other';
}

export const VXLAN_DEVICE = 'vxlan.calico';

/** The routes that go out of `dev` (a device that should carry none after a switch: stale ones). */
export function routesThrough(routes: readonly RouteShape[], dev: string): RouteShape[] {
  return routes.filter((r) => r.dev === dev);
}

/** Link names from `ip -j link show` (to tell "no such device" from "a device without what we want"). */
export function parseLinkNames(json: string): string[] {
  const list = JSON.parse(json) as unknown;
  if (!Array.isArray(list)) throw new Error(`ip -j link show: expected a JSON array, got ${typeof list}`);
  const names = list.map(record).flatMap((l) => (typeof l?.ifname === 'string' ? [l.ifname] : []));
  if (list.length > 0 && names.length === 0) throw new Error('ip -j link show: no entry has an ifname');
  return names;
}

/** One neighbour entry as `ip -j neigh show dev vxlan.calico` prints it. */
export interface NeighbourEntry {
  ip: string;
  /** Lower case; null when the entry has none (INCOMPLETE, FAILED). */
  mac: string | null;
  permanent: boolean;
  /** As printed ("80"), null when none. */
  protocol: string | null;
}

export function parseNeighbourEntries(json: string): NeighbourEntry[] {
  const list = JSON.parse(json || '[]') as unknown;
  if (!Array.isArray(list)) throw new Error(`ip -j neigh: expected a JSON array, got ${typeof list}`);
  return list.map(record).flatMap((n) => {
    if (n === null || typeof n.dst !== 'string') return [];
    return [
      {
        ip: n.dst,
        mac: typeof n.lladdr === 'string' ? n.lladdr.toLowerCase() : null,
        permanent: Array.isArray(n.state) && n.state.includes('PERMANENT'),
        protocol: n.protocol === undefined ? null : String(n.protocol),
      },
    ];
  });
}

/** One FDB entry as `bridge -j fdb show dev vxlan.calico` prints it. */
export interface FdbEntry {
  mac: string;
  /** The remote VTEP's node address; null for entries without one (the device's own). */
  dst: string | null;
  permanent: boolean;
}

export function parseFdbEntries(json: string): FdbEntry[] {
  const list = JSON.parse(json || '[]') as unknown;
  if (!Array.isArray(list)) throw new Error(`bridge -j fdb: expected a JSON array, got ${typeof list}`);
  return list.map(record).flatMap((f) => {
    if (f === null || typeof f.mac !== 'string') return [];
    return [
      {
        mac: f.mac.toLowerCase(),
        dst: typeof f.dst === 'string' ? f.dst : null,
        permanent: f.state === 'permanent',
      },
    ];
  });
}

/** One remote VTEP as the Nodes in the datastore describe it. */
export interface VtepFacts {
  node: string;
  nodeIp: string;
  tunnelAddress: string;
  mac: string;
}

/**
 * What differs between the VXLAN entries a node holds and the remote VTEPs it should hold (every other
 * node's): a missing or wrong neighbour (tunnel address → MAC, permanent) or FDB entry (MAC → node address,
 * permanent), and an entry of felix's (neighbour protocol 80, or an FDB MAC of no VTEP) for no VTEP (stale).
 * Empty when they agree.
 */
export function vxlanEntryProblems(
  neighbours: readonly NeighbourEntry[],
  fdb: readonly FdbEntry[],
  vteps: readonly VtepFacts[],
): string[] {
  const problems: string[] = [];
  for (const v of vteps) {
    const n = neighbours.find((e) => e.ip === v.tunnelAddress);
    if (!n) problems.push(`no neighbour entry for ${v.node}'s VTEP ${v.tunnelAddress}`);
    else if (n.mac !== v.mac.toLowerCase() || !n.permanent)
      problems.push(
        `neighbour ${v.tunnelAddress} is ${n.mac ?? 'no MAC'}${n.permanent ? '' : ' (not permanent)'}, wanted ${v.mac} permanent`,
      );
    const f = fdb.find((e) => e.mac === v.mac.toLowerCase());
    if (!f) problems.push(`no FDB entry for ${v.node}'s MAC ${v.mac}`);
    else if (f.dst !== v.nodeIp || !f.permanent)
      problems.push(
        `FDB ${v.mac} → ${f.dst ?? 'nowhere'}${f.permanent ? '' : ' (not permanent)'}, wanted → ${v.nodeIp} permanent`,
      );
  }
  for (const n of neighbours)
    if (n.protocol === '80' && !vteps.some((v) => v.tunnelAddress === n.ip))
      problems.push(`stale neighbour entry ${n.ip} → ${n.mac ?? 'no MAC'} (protocol 80) for no VTEP`);
  for (const f of fdb)
    if (f.dst !== null && !vteps.some((v) => v.mac.toLowerCase() === f.mac))
      problems.push(`stale FDB entry ${f.mac} → ${f.dst} for no VTEP`);
  return problems;
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

/**
 * The echoes a continuous ping lost, split at the switches: `marks[k]` is the highest icmp_seq answered when
 * switch k was made; window k holds the losses with marks[k] < seq <= marks[k + 1] (the last window runs to
 * the highest reply), `before` those up to marks[0]. Echoes after the highest reply are still in flight
 * when ping stops and count nowhere (PingObservation.lostBeforeLast). Marks must not decrease.
 */
export function lossesBySwitch(
  seen: PingObservation,
  marks: readonly number[],
): { before: number[]; windows: number[][] } {
  for (let i = 1; i < marks.length; i++)
    if (marks[i]! < marks[i - 1]!) throw new Error(`switch marks go backwards: ${marks.join(', ')}`);
  const before: number[] = [];
  const windows: number[][] = marks.map(() => []);
  for (const seq of seen.lostBeforeLast) {
    let k = -1;
    while (k + 1 < marks.length && seq > marks[k + 1]!) k++;
    (k < 0 ? before : windows[k]!).push(seq);
  }
  return { before, windows };
}

/** The highest icmp_seq answered so far in a ping's output (0 when none). */
export function highestReply(seen: PingObservation): number {
  return seen.replies.length === 0 ? 0 : Math.max(...seen.replies);
}
