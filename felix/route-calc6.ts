// Felix's IPv6 routes, as Calico programs them for an IPv6 pool (pure: input in, routes and warnings out):
//
//   blackhole <local block>/122                        each IPv6 block affine to this node
//   <pod ip6>/128 dev cali<11 hex> scope link          each local workload's IPv6 address
//   <remote block> via <node ip6> dev <host-if> onlink each IPv6 block affine to another node, via that
//                                                      node's Node.spec.bgp.ipv6Address
//
// No IPIP for IPv6 (Calico has none): remote blocks are routed directly. They come from IPAM block
// affinities and the Nodes' IPv6 addresses (the datastore), like felix's VXLAN routes, so they work without
// IPv6 BGP; a BGP-learned IPv6 route for the same block would be the same route.
//
// Why this is hard: a remote node with no ipv6Address cannot be routed to (its blocks are skipped and
// reported); a pool vxlanMode on IPv6 is not programmed here (VXLAN v6 is not built yet: reported); and
// the routes must compare with what `ip -6 -json route` prints (route-table6.ts): canonical RFC 5952 text.

import { workloadInterfaceName } from './interface-names.js';
import { FELIX_ROUTE_PROTOCOL, type DesiredRoute } from './routes.js';

export interface CalcInput6 {
  /** The interface remote routes leave by (the one holding this node's addresses). Null: none. */
  hostInterface: string | null;
  /** IPv6 pools. */
  pools: ReadonlyArray<{ cidr: string; disabled?: boolean; natOutgoing?: boolean; vxlanMode?: string }>;
  /** IPv6 blocks affine to this node. */
  localBlocks: readonly string[];
  /** This node's workloads' IPv6 addresses ("fd00::1" or "fd00::1/128"). */
  workloads: ReadonlyArray<{ ip: string; interfaceName?: string; namespace: string; pod: string }>;
  /** IPv6 blocks affine to other nodes. */
  remoteBlocks: ReadonlyArray<{ cidr: string; node: string }>;
  /** Other nodes' IPv6 addresses (Node.spec.bgp.ipv6Address, with or without length). */
  nodes: ReadonlyArray<{ name: string; ipv6Address?: string }>;
}

export interface CalcResult6 {
  routes: DesiredRoute[];
  warnings: string[];
}

/** An IPv6 address or prefix as 128-bit bigint; null when it is not IPv6. */
export function parseIpv6(text: string): bigint | null {
  if (!text.includes(':') || text.includes('%') || !/^[0-9a-fA-F:.]+$/.test(text)) return null;
  const [head = '', rest] = text.split('::');
  if (text.split('::').length > 2) return null;
  const h = head === '' ? [] : head.split(':');
  const r = rest === undefined || rest === '' ? [] : rest.split(':');
  const missing = 8 - h.length - r.length;
  if (rest === undefined ? missing !== 0 : missing < 1) return null;
  const parts = [...h, ...Array<string>(rest === undefined ? 0 : missing).fill('0'), ...r];
  let value = 0n;
  for (const p of parts) {
    if (!/^[0-9a-fA-F]{1,4}$/.test(p)) return null;
    value = (value << 16n) | BigInt(parseInt(p, 16));
  }
  return value;
}

/** RFC 5952 text (what iproute2 prints). */
export function formatIpv6(value: bigint): string {
  const g: string[] = [];
  for (let i = 7; i >= 0; i--) g.push(((value >> BigInt(i * 16)) & 0xffffn).toString(16));
  let best = -1;
  let bestLen = 1;
  for (let i = 0; i < 8;) {
    let j = i;
    while (j < 8 && g[j] === '0') j++;
    if (j - i > bestLen) [best, bestLen] = [i, j - i];
    i = j === i ? i + 1 : j;
  }
  return best < 0 ? g.join(':') : `${g.slice(0, best).join(':')}::${g.slice(best + bestLen).join(':')}`;
}

/** "fd00:10:244::40/122" → canonical text; null when not an IPv6 network (host bits set, bad length). */
export function canonicalPrefix6(text: string): string | null {
  const slash = text.indexOf('/');
  const addr = parseIpv6(slash < 0 ? text : text.slice(0, slash));
  const len = slash < 0 ? 128 : Number(text.slice(slash + 1));
  if (addr === null || !Number.isInteger(len) || len < 0 || len > 128) return null;
  const host = (1n << BigInt(128 - len)) - 1n;
  if ((addr & host) !== 0n) return null;
  return `${formatIpv6(addr)}/${len}`;
}

export function calculateRoutes6(input: CalcInput6): CalcResult6 {
  const warnings: string[] = [];
  const byDst = new Map<string, DesiredRoute>();
  const want = (route: DesiredRoute): void => {
    const had = byDst.get(route.dst);
    // A local workload beats a blackhole or a remote route for the same destination (route classes).
    if (had === undefined || rank(route) < rank(had)) byDst.set(route.dst, route);
  };

  for (const text of input.localBlocks) {
    const dst = canonicalPrefix6(text);
    if (dst === null) warnings.push(`local IPv6 block "${text}" is not an IPv6 network CIDR: no blackhole for it`);
    else if (!dst.endsWith('/128')) want({ dst, type: 'blackhole', proto: FELIX_ROUTE_PROTOCOL, class: 'blackhole' });
  }

  for (const w of input.workloads) {
    const dst = canonicalPrefix6(w.ip.includes('/') ? w.ip : `${w.ip}/128`);
    if (dst === null || !dst.endsWith('/128')) {
      warnings.push(`workload ${w.namespace}/${w.pod}: "${w.ip}" is not an IPv6 address or /128: no route for it`);
      continue;
    }
    const dev = w.interfaceName ?? workloadInterfaceName(w.namespace, w.pod);
    want({ dst, type: 'unicast', dev, scope: 'link', proto: FELIX_ROUTE_PROTOCOL, class: 'workload' });
  }

  const vxlanPools = input.pools.filter((p) => (p.vxlanMode ?? 'Never') !== 'Never').map((p) => p.cidr);
  if (vxlanPools.length > 0) {
    warnings.push(
      `IPv6 pool(s) ${vxlanPools.join(', ')} use vxlanMode: VXLAN for IPv6 is not built; their remote blocks are routed directly`,
    );
  }
  const addressOf = new Map<string, string>();
  for (const n of input.nodes) {
    const text = n.ipv6Address?.split('/')[0];
    const addr = text === undefined ? null : parseIpv6(text);
    if (addr !== null) addressOf.set(n.name, formatIpv6(addr));
  }
  const unreachable = new Set<string>();
  for (const { cidr, node } of input.remoteBlocks) {
    const dst = canonicalPrefix6(cidr);
    if (dst === null) continue;
    const via = addressOf.get(node);
    if (via === undefined) {
      unreachable.add(node);
      continue;
    }
    if (input.hostInterface === null) {
      warnings.push(`no host interface: the route to IPv6 block ${dst} of node ${node} is not programmed`);
      continue;
    }
    want({
      dst,
      type: 'unicast',
      via,
      dev: input.hostInterface,
      onlink: true,
      proto: FELIX_ROUTE_PROTOCOL,
      class: 'direct',
    });
  }
  for (const node of [...unreachable].sort()) {
    warnings.push(
      `node ${node} has IPv6 blocks but no Node.spec.bgp.ipv6Address (set IP6 on its agent): no route to them`,
    );
  }
  const routes = [...byDst.values()].sort((a, b) => compare6(a.dst, b.dst));
  return { routes, warnings };
}

const RANKS: Record<string, number> = { workload: 0, direct: 1, blackhole: 9 };
function rank(r: DesiredRoute): number {
  return RANKS[r.class] ?? 5;
}

function compare6(a: string, b: string): number {
  const [pa = '', la = '0'] = a.split('/');
  const [pb = '', lb = '0'] = b.split('/');
  const x = parseIpv6(pa) ?? 0n;
  const y = parseIpv6(pb) ?? 0n;
  return x < y ? -1 : x > y ? 1 : Number(la) - Number(lb);
}
