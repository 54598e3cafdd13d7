// What `tortie node status` and `tortie node routes` print, as pure functions of the agent's snapshot.
//
// `peerRow` turns one Speaker session (BGP FSM state, last state change, last error) plus the planner's
// DesiredPeer into the columns calico-node shows, which are BIRD's `show protocols` columns as calicoctl
// re-prints them: STATE is BIRD's protocol state ("up" once Established, "start" while the session is
// being brought up), INFO is the BGP state name followed by BIRD's last-error text ("Active Socket:
// Connection refused"), SINCE is BIRD's default "iso short" time: HH:MM:SS local time for changes less
// than 20 hours old, YYYY-MM-DD for older ones.
// `formatNodeStatus` lays these out exactly as `calicoctl node status` does: a first line, a blank line,
// "IPv4 BGP status", a +---+ boxed table (headers upper-case and centred, cells left-aligned) or
// "No IPv4 peers found.", a blank line, and the same for IPv6.
//
// Why this is hard: people and scripts compare this output with Calico's byte for byte, so spacing,
// ordering and the words used are part of the contract. The INFO suffix is formatted from the session's
// typed down reason (`lastReason`, bgp/down-reason.ts), never parsed back out of the free-text lastError;
// a reason BIRD has no words for is left out of the table (lastError stays in the JSON output).

import { downReasonInfo, type PeerStatus, tryParseIpv4 } from '../../bgp/index.js';
import { boxTable } from '../format/table.js';
import { PEER_TYPE_LABEL, type AgentStatus, type DesiredPeer, type PeerStatusRow, type RouteRow } from './types.js';

/** BIRD's protocol state (the STATE column) for each BGP FSM state (RFC 4271 §8.2.2). */
const STATE_COLUMN: Readonly<Record<string, string>> = {
  Idle: 'start',
  Connect: 'start',
  Active: 'start',
  OpenSent: 'start',
  OpenConfirm: 'start',
  Established: 'up',
};

/** BIRD's "iso short" switch-over: changes younger than this show the time of day, older ones the date. */
const NEAR_MS = 20 * 3600 * 1000;

const two = (n: number) => String(n).padStart(2, '0');

/**
 * The SINCE column: "HH:MM:SS" (local time) when `since` is less than 20 hours before `now`, else
 * "YYYY-MM-DD". `utcOffsetMinutes` is the local zone's offset east of UTC (default: this process's zone).
 */
export function formatSince(since: number, now: number, utcOffsetMinutes?: number): string {
  const offset = utcOffsetMinutes ?? -new Date(since).getTimezoneOffset();
  const local = new Date(since + offset * 60_000);
  if (now - since < NEAR_MS)
    return `${two(local.getUTCHours())}:${two(local.getUTCMinutes())}:${two(local.getUTCSeconds())}`;
  return `${local.getUTCFullYear()}-${two(local.getUTCMonth() + 1)}-${two(local.getUTCDate())}`;
}

export interface PeerRowInput {
  /** The Speaker's view of the session (Speaker.peerStatus()); `since` is on the same clock as `now`. */
  peer: PeerStatus;
  /** What the planner asked for; undefined for a session the plan no longer has (shown as type "unknown"). */
  desired?: DesiredPeer;
  /** Wall-clock ms. */
  now: number;
  /** Offset of the local zone east of UTC in minutes, for the SINCE column (default: this process's zone). */
  utcOffsetMinutes?: number;
  /**
   * What the kernel counted against a session with a password or GTSM that is not up (bgp/tcp-diagnosis.ts:
   * "wrong password: ... (TCPMD5Failure +3)"); appended to INFO.
   */
  kernel?: readonly string[];
}

/** One row of `tortie node status`, as calico-node's BIRD would show the session. */
export function peerRow(input: PeerRowInput): PeerStatusRow {
  const { peer, desired, now } = input;
  const established = peer.state === 'Established';
  const suffix = established ? undefined : downReasonInfo(peer.lastReason);
  const base = suffix ? `${peer.state} ${suffix}` : peer.state;
  const kernel = established || !input.kernel?.length ? '' : `; kernel: ${input.kernel.join('; ')}`;
  return {
    address: desired?.address ?? peer.address,
    type: desired ? PEER_TYPE_LABEL[desired.type] : 'unknown',
    name: desired?.name ?? `Peer_${peer.address.replace(/[.:]/g, '_')}`,
    state: STATE_COLUMN[peer.state] ?? 'start',
    since: formatSince(peer.since, now, input.utcOffsetMinutes),
    info: base + kernel,
    bgpState: peer.state,
    sinceIso: new Date(peer.since).toISOString(),
    uptimeMs: established ? Math.max(0, now - peer.since) : null,
    routesReceived: peer.routesReceived,
    routesAccepted: peer.routesAccepted,
    routesAdvertised: peer.routesAdvertised,
    ...(peer.lastError ? { lastError: peer.lastError } : {}),
  };
}

const PEER_HEADERS = ['PEER ADDRESS', 'PEER TYPE', 'STATE', 'SINCE', 'INFO'];

function peerSection(family: 'IPv4' | 'IPv6', peers: readonly PeerStatusRow[]): string {
  const title = `${family} BGP status\n`;
  if (peers.length === 0) return `${title}No ${family} peers found.\n\n`;
  return `${title}${boxTable(
    PEER_HEADERS,
    peers.map((p) => [p.address, p.type, p.state, p.since, p.info]),
  )}\n`;
}

/** `tortie node status` in calicoctl's layout; peers are listed in the order given. After calicoctl's part:
 *  one line on the kernel dataplane and one on NetworkPolicy (with TORTIE_DATAPLANE=kernel) and the warnings,
 *  when there are any. */
export function formatNodeStatus(status: AgentStatus): string {
  const v6 = (p: PeerStatusRow) => p.address.includes(':');
  const calico = `${status.summary}\n\n${peerSection(
    'IPv4',
    status.peers.filter((p) => !v6(p)),
  )}${peerSection('IPv6', status.peers.filter(v6))}`;
  const warnings =
    status.warnings.length > 0 ? `Warnings:\n${status.warnings.map((w) => `  - ${w}\n`).join('')}\n` : '';
  return `${calico}${dataplaneLine(status.dataplane)}${policyLine(status.policy)}${warnings}`;
}

/** One line on NetworkPolicy: what this node enforces and whether nftables holds it. */
function policyLine(policy: AgentStatus['policy']): string {
  if (policy === undefined || policy.summary === null) return '';
  const { policies, endpoints, isolatedIngress, isolatedEgress } = policy.summary;
  const plural = (n: number, word: string) => `${n} ${word}${n === 1 ? '' : 's'}`;
  const isolated = `${plural(endpoints, 'local workload')}, ${isolatedIngress} isolated for ingress, ${isolatedEgress} for egress`;
  const table = policy.inSync
    ? 'in nftables (table inet tortie-filter)'
    : policy.lastError
      ? 'NOT in nftables yet (retrying, see Warnings)'
      : 'being written to nftables';
  return `Network policy: ${policies} NetworkPolic${policies === 1 ? 'y' : 'ies'}; ${isolated}; ${table}

`;
}

function dataplaneLine(dataplane: AgentStatus['dataplane'] | undefined): string {
  if (dataplane === undefined || dataplane.mode !== 'kernel') return '';
  const { routes, tunl0 } = dataplane;
  const parts = [`${routes.programmed} of ${routes.desired} routes in the kernel`];
  if (routes.waitingForInterface > 0) parts.push(`${routes.waitingForInterface} waiting for their interface`);
  if (routes.retained > 0) parts.push(`${routes.retained} kept until BGP settles`);
  if (tunl0.needed)
    parts.push(
      tunl0.supported
        ? `tunl0 up, MTU ${tunl0.mtu}${tunl0.standIn ? ' (stand-in device, no encapsulation)' : ''}`
        : `tunl0 unavailable`,
    );
  const vxlan = dataplane.vxlan;
  if (vxlan?.needed) {
    const vtep =
      vxlan.device !== null
        ? `VTEP ${vxlan.device.address ?? 'without address'} (MAC ${vxlan.device.mac}) on vxlan.calico, MTU ${vxlan.device.mtu}`
        : 'vxlan.calico not set up';
    parts.push(
      `${vtep}${vxlan.usable ? '' : ' (not usable yet, see Warnings)'}, ${vxlan.remoteVteps} remote VTEP${vxlan.remoteVteps === 1 ? '' : 's'} programmed`,
    );
  }
  return `Dataplane (kernel, host interface ${dataplane.hostInterface ?? 'unknown'}): ${parts.join(', ')}\n\n`;
}

/** AS_PATH for people: sequences as numbers separated by spaces, AS_SETs in braces (RFC 4271 §4.3). */
export function formatAsPath(path: RouteRow['asPath']): string {
  if (path.length === 0) return '-';
  return path.map((segment) => (Array.isArray(segment) ? `{${segment.join(' ')}}` : String(segment))).join(' ');
}

/** Orders IPv4 prefixes by address then length; anything else after them, by text. */
function comparePrefixes(a: string, b: string): number {
  const parse = (text: string) => {
    const [addr, len] = text.split('/');
    const value = tryParseIpv4(addr ?? '');
    return value === null ? null : { value, len: Number(len) };
  };
  const x = parse(a);
  const y = parse(b);
  if (x === null || y === null) return x === null && y === null ? a.localeCompare(b) : x === null ? 1 : -1;
  return x.value - y.value || x.len - y.len;
}

const ROUTE_HEADERS = ['PREFIX', 'NEXT HOP', 'AS PATH', 'FROM', 'BEST', 'IN KERNEL'];

/**
 * `tortie node routes`: one row per candidate route, by prefix, the best one first within a prefix. A route
 * import protection refused says so in BEST with its reason code (`refused: own-block`; the codes are listed
 * in src/agent/import-guard.ts and the README).
 */
export function formatRoutes(rows: readonly RouteRow[]): string {
  if (rows.length === 0) return 'No routes.\n';
  const sorted = [...rows].sort(
    (a, b) => comparePrefixes(a.prefix, b.prefix) || Number(b.best) - Number(a.best) || a.from.localeCompare(b.from),
  );
  return boxTable(
    ROUTE_HEADERS,
    sorted.map((r) => [
      r.prefix,
      r.nextHop ?? '-',
      formatAsPath(r.asPath),
      r.stale ? `${r.from} (stale)` : r.from,
      r.best ? 'yes' : r.refused !== undefined ? `refused: ${r.refused}` : 'no',
      r.inKernel ? 'yes' : 'no',
    ]),
  );
}
