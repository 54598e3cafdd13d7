// What `tortie node status` (control socket) and the health server's readiness get from the agent: the
// status record, built from what the agent holds (a pure function of its sources), Calico's readiness
// with felix's, the rows of `tortie node routes`, and what the kernel dropped for TCP-MD5/GTSM sessions.
// The peer rows themselves are formatted in ./status-format.ts.

import { readFileSync } from 'node:fs';
import {
  formatIpv4,
  formatPrefix,
  type PeerStatus,
  type RefusedRoute,
  type RibEntry,
  diagnoseTcpSecurity,
  formatTcpSecurityFindings,
  parseTcpSecurityCounters,
  type TcpSecurityCounters,
  AsPathSegmentType,
} from '../../bgp/index.js';
import type { DataplaneStatus } from '../../felix/index.js';
import type { EnforcerStatus } from '../policy/enforcer.js';
import { notInEffect, BGP_DEFAULTS, type AnyResource } from '../resources/index.js';
import type { CacheView } from './dataplane-input.js';
import { isImportRefusal } from './import-guard.js';
import { peerRow } from './status-format.js';
import type { AgentStatus, DesiredPeer, FilterRefusal, PeeringPlan, Readiness, RouteRow } from './types.js';

export interface StatusSources {
  node: string;
  /** AS from the environment (AS), used before a plan exists. */
  configuredAs: number | undefined;
  version: string;
  datastoreType: string;
  startedAt: number;
  now: number;
  ip: { address: string; prefixLength: number } | null;
  hostInterface: string | null;
  plan: PeeringPlan | null;
  /** The running Speaker's router id. */
  routerId: string | null;
  /** The Speaker's peers (Speaker.peerStatus()). */
  peers: PeerStatus[];
  /** Why a planned peer's password is not available (it is then not started), or undefined. */
  passwordProblem: (peer: DesiredPeer) => string | undefined;
  /** What the kernel dropped for TCP-MD5/GTSM sessions (TcpDropWatch.findings), in words. */
  kernelFindings: string[];
  readiness: Readiness;
  /** The cache's datastore connection; null before the cache exists. */
  cache: { connected: boolean; lastError?: string | undefined } | null;
  lastError: string | undefined;
  blocks: readonly string[];
  dataplane: DataplaneStatus | undefined;
  policy: EnforcerStatus | undefined;
  /** The agent's own warnings (startup steps, the Speaker), then the not-in-effect ones (notInEffectWarnings). */
  warnings: Iterable<string>;
  notInEffect: string[];
  /** The first line of node status; default "tortie is running." (CALICO_NETWORKING_BACKEND=vxlan says it runs no BGP). */
  summary?: string;
}

export function agentStatus(s: StatusSources): AgentStatus {
  const plan = s.plan;
  // Two planned peers may share an address (different ports): matched by address and port.
  const byEndpoint = new Map((plan?.peers ?? []).map((p) => [`${p.address}:${p.port}`, p]));
  const { now, kernelFindings: kernel } = s;
  const peers = s.peers.map((peer) => {
    const desired = byEndpoint.get(`${peer.address}:${peer.port}`);
    const signed = desired?.password !== undefined || desired?.ttlSecurity !== undefined;
    return peerRow({ peer, ...(desired ? { desired } : {}), now, ...(signed && kernel.length > 0 ? { kernel } : {}) });
  });
  // Peers not started because their password could not be read: shown, with the reason.
  for (const desired of plan?.peers ?? []) {
    const problem = s.passwordProblem(desired);
    if (problem === undefined) continue;
    peers.push(
      peerRow({
        peer: {
          address: desired.address,
          port: desired.port,
          peerAs: desired.asNumber,
          state: 'Idle',
          since: s.startedAt,
          routesReceived: 0,
          routesAccepted: 0,
          routesAdvertised: 0,
          staleRoutes: 0,
          lastError: `not started: ${problem}`,
        },
        desired,
        now,
      }),
    );
  }
  const readiness = s.readiness;
  const cacheError = s.cache && !s.cache.connected ? s.cache.lastError : undefined;
  const { dataplane, policy } = s;
  return {
    summary: s.summary ?? 'tortie is running.',
    node: s.node,
    version: s.version,
    pid: process.pid,
    startedAt: new Date(s.startedAt).toISOString(),
    ipv4Address: s.ip ? `${s.ip.address}/${s.ip.prefixLength}` : null,
    asNumber: plan?.localAsNumber ?? s.configuredAs ?? BGP_DEFAULTS.asNumber,
    routerId: s.routerId ?? plan?.routerId ?? null,
    clusterId: plan?.clusterId ?? null,
    datastore: {
      type: s.datastoreType,
      connected: s.cache?.connected ?? false,
      ...((cacheError ?? s.lastError) ? { lastError: cacheError ?? s.lastError } : {}),
    },
    ready: readiness.ready,
    ...(readiness.reason !== undefined ? { notReadyReason: readiness.reason } : {}),
    peers,
    blocks: [...s.blocks],
    dataplane: dataplane
      ? { mode: 'kernel', hostInterface: s.hostInterface, ...dataplane }
      : { mode: 'none', hostInterface: s.hostInterface },
    ...(policy !== undefined ? { policy } : {}),
    warnings: [
      ...s.warnings,
      ...s.notInEffect,
      ...(plan?.warnings ?? []),
      ...(dataplane?.warnings ?? []),
      ...(policy?.lastError
        ? [`network policy: writing nftables table inet tortie-filter failed, retrying: ${policy.lastError}`]
        : []),
    ],
  };
}

/** BGP's readiness (SpeakerKeeper.readiness), then felix's own: the kernel has been programmed once (Calico: "in sync"). */
export function agentReadiness(bgp: Readiness, dataplane: DataplaneStatus | undefined): Readiness {
  if (!bgp.ready || !dataplane) return bgp;
  if (!dataplane.inSync)
    return {
      ready: false,
      reason: `the kernel routes are not programmed yet${dataplane.lastError ? ` (${dataplane.lastError})` : ''}`,
    };
  const notes: string[] = [];
  if (dataplane.tunl0.needed && !dataplane.tunl0.supported)
    notes.push(`${dataplane.tunl0.reason}: routes through tunl0 are not programmed`);
  return notes.length > 0 ? { ready: true, notes } : { ready: true };
}

/** Fields of the configuration this agent reads that are stored but change nothing yet (resources/effect.ts). */
export function notInEffectWarnings(cache: CacheView | null, nodeName: string): string[] {
  if (!cache) return [];
  const own = cache.list('Node').filter((n) => n.metadata.name === nodeName);
  const resources = [...cache.list('IPPool'), ...cache.list('BGPConfiguration'), ...cache.list('BGPPeer'), ...own];
  return resources.flatMap((r) => notInEffect(r as AnyResource));
}

function asPathOf(entry: RibEntry): Array<number | number[]> {
  const out: Array<number | number[]> = [];
  for (const segment of entry.attrs.asPath ?? []) {
    if (segment.type === AsPathSegmentType.AS_SEQUENCE || segment.type === AsPathSegmentType.AS_CONFED_SEQUENCE)
      out.push(...segment.asns);
    else out.push([...segment.asns]);
  }
  return out;
}

/** A route import protection refused, as a `node routes` row (best: false, with the reason). */
function isFilterRefusal(reason: string): reason is FilterRefusal {
  return reason.startsWith('filter ');
}

export function refusedRow(entry: RefusedRoute): RouteRow {
  return {
    ...routeRow({ prefix: entry.prefix, attrs: entry.attrs, from: entry.from, stale: entry.stale }),
    best: false,
    ...(isImportRefusal(entry.reason) || isFilterRefusal(entry.reason) ? { refused: entry.reason } : {}),
  };
}

/** A Loc-RIB best route as a `node routes` row (inKernel filled in by the agent). */
export function routeRow(entry: RibEntry, stale = entry.stale): RouteRow {
  return {
    prefix: formatPrefix(entry.prefix),
    nextHop: entry.attrs.nextHop !== undefined ? formatIpv4(entry.attrs.nextHop) : null,
    asPath: asPathOf(entry),
    from: entry.from ?? 'local',
    best: true,
    stale,
    inKernel: false,
  };
}

/**
 * The kernel's TCP-MD5/GTSM drop counters (/proc/net/netstat TcpExt) since the sessions with a password were
 * last (re)configured (`rebase`): node status shows their growth.
 */
export class TcpDropWatch {
  private base: TcpSecurityCounters = {};

  /** `readNetstat`: the text of /proc/net/netstat (default: read it). */
  constructor(private readonly readNetstat?: () => string | null) {}

  rebase(): void {
    this.base = this.counters();
  }

  /** What the kernel dropped since the last rebase, in words; nothing when no peer uses a password or GTSM. */
  findings(peers: readonly DesiredPeer[]): string[] {
    if (!peers.some((p) => p.password || p.ttlSecurity)) return [];
    return formatTcpSecurityFindings(diagnoseTcpSecurity(this.base, this.counters()));
  }

  private counters(): TcpSecurityCounters {
    let text: string | null = null;
    try {
      text = this.readNetstat ? this.readNetstat() : readFileSync('/proc/net/netstat', 'utf8');
    } catch {
      text = null;
    }
    return text === null ? {} : parseTcpSecurityCounters(text);
  }
}

let cachedVersion: string | undefined;

/** tortie's version, read once (status is rebuilt on every session state change). */
export function packageVersion(): string {
  if (cachedVersion !== undefined) return cachedVersion;
  try {
    const pkg = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as {
      version?: string;
    };
    cachedVersion = pkg.version ?? 'unknown';
  } catch {
    cachedVersion = 'unknown';
  }
  return cachedVersion;
}
