// What the Speaker is configured with — `SpeakerConfig`, `PeerSpec` — and what is derived from one peer's
// spec: its normal form and comparison (which change restarts the session), validation before anything
// changes, the policy its routes go through, its TCP-MD5/GTSM options and the source of outbound connections.

import type { Clock } from './clock.js';
import { parseIpv4, parsePrefix, prefixContains } from './ip.js';
import { IPV4_UNICAST, IPV6_UNICAST } from './negotiation.js';
import type { ImportJudge } from './import-judge.js';
import type { Acceptor } from './listener.js';
import type { NextHopMode, PeerPolicy, SharedSubnet } from './rib/index.js';
import type { Logger, SessionConfig } from './session.js';
import { TCP_MD5_MAX_KEY_BYTES, type SecureSocketOptions } from './socket-options.js';
import type { Transport } from './transport.js';
import { BGP_PORT } from './types.js';

/** The subset of pino's logger the library uses; pass nothing to log nothing. */
export type LoggerLike = Logger;

export interface GracefulRestartOptions {
  /** Restart time we advertise, seconds 0..4095 (RFC 4724 §3). */
  restartTime: number;
  /** We have just restarted: set the R bit and defer sending routes until peers' End-of-RIB (§4.1). */
  restarting?: boolean;
  /** Selection deferral timer (§4.1), ms. Default: the restart time. */
  deferralMs?: number;
  /**
   * How long a peer that is not Established may hold the deferral up (default 1 s after start). A peer that
   * is not up has nothing to re-learn from yet; waiting for it (an office router that reconnects only after
   * its own retry delay) would keep every other peer from hearing anything for the whole deferral.
   */
  peerWaitMs?: number;
}

export interface SpeakerConfig {
  routerId: number;
  localAs: number;
  /** Where to accept connections; null = only connect out. Also the default source of outbound connections. */
  listen: { address: string; port: number } | null;
  /** Route-reflector cluster id (RFC 4456 §7); defaults to the router id. Only used with rrClient peers. */
  clusterId?: number;
  /** Graceful restart as a restarting speaker (F bit set: forwarding survives us). Absent: helper only. */
  gracefulRestart?: GracefulRestartOptions | null;
  /** Hold time offered to every peer unless the peer says otherwise (default 90). */
  holdTime?: number;
  connectRetryMs?: number;
  /** How long stale routes may wait for End-of-RIB after the peer is back (default 360 s, as FRR's stalepath-time). */
  stalePathMs?: number;
  /**
   * Make-before-break on reconfiguration: routes of a peer that is removed or restarted by `setPeers` stay
   * (stale, still exported) this long, so a replacement path (a route reflector taking over from the mesh,
   * the same peer with new parameters) can arrive first. 0 = withdraw at once. Default 10 s.
   */
  deconfiguredLingerMs?: number;
  /** Prefixes a peer may send (its Adj-RIB-In size) unless its PeerSpec says otherwise; one more ends the
   *  session with Cease / Maximum Number of Prefixes Reached (RFC 4486). Default 500 000. */
  maxPrefixes?: number;
  /** How long a peer cut off for too many prefixes stays down (no connect, inbound refused), ms. Default 60 s. */
  prefixLimitRestartMs?: number;
  /** A ROUTE-REFRESH is answered at most once per this interval per peer; more are coalesced. Default 5 s. */
  routeRefreshIntervalMs?: number;
  /** Per session: bytes a peer may leave unread before Cease / Out of Resources (default 32 MiB). */
  maxSendQueueBytes?: number;
  /** Per session: the smallest non-zero hold time accepted from a peer, seconds (default 3). */
  minHoldTime?: number;
  clock?: Clock;
  transport?: Transport;
  /** How to accept connections (default: a TCP server); tests pass MemoryNetwork's listen. */
  acceptor?: Acceptor;
  logger?: LoggerLike;
  /** Refuses received routes with a reason (see `ImportJudge`); absent = every route the RFC rules allow. */
  importJudge?: ImportJudge;
  /**
   * Our IPv6 address (text): the next hop of the IPv6 routes we originate (unless one is set on the route)
   * and of next-hop-self toward peers that get IPv6 unicast (RFC 2545 §3). Without it, IPv6 routes that
   * need our next hop are not sent.
   */
  address6?: string;
}

export interface PeerSpec {
  address: string;
  port?: number;
  peerAs: number;
  passive?: boolean;
  holdTime?: number;
  keepaliveTime?: number;
  localAddress?: string;
  /** A route-reflector client of ours (RFC 4456); ignored for eBGP peers. */
  rrClient?: boolean;
  /**
   * Next hop toward this peer: auto (eBGP: ours, or a third-party next hop inside `subnet` when the peer
   * is in it; iBGP: unchanged), self, keep.
   */
  nextHop?: NextHopMode;
  /**
   * Our address on the network this session runs over, with its prefix length ("198.19.1.11/24"; host bits
   * allowed). An eBGP peer whose address is inside it is one IP hop away: under nextHop auto it gets a
   * route's NEXT_HOP unchanged when that is inside the subnet too (RFC 4271 §5.1.3 (2), as BIRD does),
   * rather than ours. tortie has no eBGP multihop setting (it sets no TTL): a peer outside the subnet is
   * the multihop case, and gets our address. Absent: every eBGP peer gets our address.
   */
  subnet?: string;
  /** Times our own AS may appear in a received AS_PATH (Calico's numAllowedLocalASNumbers). */
  allowOwnAs?: number;
  /** Our AS toward this peer (Calico's BGPPeer localASNumber); default the speaker's. It decides eBGP vs
   *  iBGP, goes in our OPEN, is prepended toward eBGP and counts for loop detection. */
  localAs?: number;
  /** Graceful restart time we advertise to this peer, seconds (Calico's maxRestartTime). */
  restartTime?: number;
  /** Prefixes this peer may send; default the speaker's `maxPrefixes`. */
  maxPrefixes?: number;
  /**
   * TCP-MD5 password (RFC 2385; Calico's BGPPeer password): every segment both ways is signed, on
   * connections we open and on those we accept. 1..80 bytes. Never logged or reported.
   */
  password?: string;
  /** GTSM (RFC 5082; Calico's ttlSecurity): the peer is at most this many hops away (1 = directly connected). */
  ttlSecurity?: number;
  /** Policy hooks (compared by identity when peers are reconfigured). */
  /** Offer IPv6 unicast on this session too (RFC 4760 §8 Multiprotocol capability, AFI 2 / SAFI 1). */
  ipv6Unicast?: boolean;
  importFilter?: PeerPolicy['importFilter'];
  exportFilter?: PeerPolicy['exportFilter'];
}

export type NormalSpec = PeerSpec & { port: number; passive: boolean };

export function normalizeSpec(spec: PeerSpec): NormalSpec {
  return { ...spec, port: spec.port ?? BGP_PORT, passive: spec.passive ?? false };
}

/**
 * What the Speaker keys a peer by: its address and port. Two peers on one address with different ports (two
 * BGP speakers on one host, as Calico allows) are two sessions.
 */
export function endpointOf(spec: { address: string; port?: number }): string {
  return `${spec.address}:${spec.port ?? BGP_PORT}`;
}

/** The fields of a spec that make a peer what it is (sameSpec compares them). */
export const SPEC_FIELDS = [
  'address',
  'port',
  'peerAs',
  'passive',
  'holdTime',
  'keepaliveTime',
  'localAddress',
  'rrClient',
  'nextHop',
  'subnet',
  'allowOwnAs',
  'localAs',
  'restartTime',
  'importFilter',
  'exportFilter',
  'maxPrefixes',
  'password',
  'ttlSecurity',
  'ipv6Unicast',
] as const;

/** The TCP-MD5 key and GTSM hops of a peer, for the transport and the listener; undefined when neither. */
export function securityOf(spec: PeerSpec): SecureSocketOptions | undefined {
  if (spec.password === undefined && spec.ttlSecurity === undefined) return undefined;
  return {
    ...(spec.password !== undefined ? { md5Key: Buffer.from(spec.password, 'utf8') } : {}),
    ...(spec.ttlSecurity !== undefined ? { ttlSecurity: spec.ttlSecurity } : {}),
  };
}

/** Refuses a password Linux cannot use and a GTSM hop count outside 1..255, naming the peer. */
export function checkSecurity(spec: PeerSpec): void {
  if (spec.password !== undefined) {
    const bytes = Buffer.byteLength(spec.password, 'utf8');
    if (bytes < 1 || bytes > TCP_MD5_MAX_KEY_BYTES)
      throw new Error(
        `peer ${spec.address}: a password must be 1 to ${TCP_MD5_MAX_KEY_BYTES} bytes (TCP-MD5), this one is ${bytes}`,
      );
  }
  const hops = spec.ttlSecurity;
  if (hops !== undefined && (!Number.isInteger(hops) || hops < 1 || hops > 255))
    throw new Error(`peer ${spec.address}: ttlSecurity must be a hop count from 1 to 255, not ${hops}`);
}

export function sameSpec(a: NormalSpec, b: NormalSpec): boolean {
  return SPEC_FIELDS.every((field) => a[field] === b[field]);
}

/** Refuses a bad spec before anything changes (the error names the peer, the field and the value). */
export function validatePeerSpec(spec: PeerSpec): void {
  parseIpv4(spec.address, 'peer address');
  if (
    spec.maxPrefixes !== undefined &&
    !(Number.isInteger(spec.maxPrefixes) && spec.maxPrefixes >= 1 && spec.maxPrefixes <= 0xffffffff)
  ) {
    throw new Error(`peer ${spec.address} maxPrefixes ${spec.maxPrefixes} is not a whole number 1..4294967295`);
  }
  if (spec.subnet !== undefined) parsePrefix(spec.subnet, { what: `peer ${spec.address} subnet` });
  checkSecurity(spec);
}

/** The import/export policy of a peer (eBGP when its AS differs from ours toward it). */
export function policyOf(spec: NormalSpec, speakerAs: number): PeerPolicy {
  const ebgp = spec.peerAs !== (spec.localAs ?? speakerAs);
  const address = parseIpv4(spec.address);
  const shared = ebgp ? sharedSubnetOf(spec, address) : undefined;
  return {
    address,
    port: spec.port,
    asn: spec.peerAs,
    ebgp,
    rrClient: !ebgp && spec.rrClient === true,
    ...(spec.nextHop !== undefined ? { nextHop: spec.nextHop } : {}),
    ...(shared !== undefined ? { sharedSubnet: shared } : {}),
    ...(spec.allowOwnAs !== undefined ? { allowOwnAs: spec.allowOwnAs } : {}),
    ...(spec.importFilter !== undefined ? { importFilter: spec.importFilter } : {}),
    ...(spec.exportFilter !== undefined ? { exportFilter: spec.exportFilter } : {}),
  };
}

/**
 * The subnet an eBGP peer shares with us, when it is one IP hop away (its address inside `spec.subnet`)
 * and next hops toward it follow 'auto' — the only mode third-party next hops change (RFC 4271 §5.1.3 (2)).
 */
function sharedSubnetOf(spec: NormalSpec, address: number): SharedSubnet | undefined {
  if (spec.subnet === undefined || (spec.nextHop ?? 'auto') !== 'auto') return undefined;
  const prefix = parsePrefix(spec.subnet, { what: `peer ${spec.address} subnet` });
  return prefixContains(prefix, address) ? { prefix, peerAddress: address } : undefined;
}

/**
 * The address outbound connections leave from: the peer's own setting, else the listen address. Peers
 * check the source of a connection against their neighbour list (BIRD 1.6 resets anything else), so
 * leaving this to the kernel (127.0.0.1 on loopback, the primary address elsewhere) breaks sessions.
 */
export function sourceAddress(spec: PeerSpec, listen: SpeakerConfig['listen']): string | undefined {
  if (spec.localAddress !== undefined) return spec.localAddress;
  const address = listen?.address;
  return address !== undefined && address !== '0.0.0.0' ? address : undefined;
}

/** The SpeakerConfig with its defaults filled in (the Speaker's `config`). */
type OptionalSettings =
  'listen' | 'clusterId' | 'gracefulRestart' | 'importJudge' | 'maxSendQueueBytes' | 'minHoldTime' | 'address6';
export type SpeakerSettings = Required<Omit<SpeakerConfig, OptionalSettings>> & Pick<SpeakerConfig, OptionalSettings>;

const DEFAULT_HELPER_RESTART_TIME = 120;

/** One peer's SessionConfig; `restarting`: our selection deferral is still on (RFC 4724 §4.1). */
export function sessionConfigFor(
  config: SpeakerSettings,
  spec: NormalSpec,
  passive: boolean,
  restarting: boolean,
): SessionConfig {
  const gr = config.gracefulRestart;
  const source = sourceAddress(spec, config.listen);
  return {
    localAs: spec.localAs ?? config.localAs,
    peerAs: spec.peerAs,
    routerId: config.routerId,
    peerAddress: spec.address,
    port: spec.port,
    passive,
    holdTime: spec.holdTime ?? config.holdTime,
    connectRetryMs: config.connectRetryMs,
    ...(config.maxSendQueueBytes !== undefined ? { maxSendQueueBytes: config.maxSendQueueBytes } : {}),
    ...(config.minHoldTime !== undefined ? { minHoldTime: config.minHoldTime } : {}),
    clock: config.clock,
    transport: config.transport,
    // The session puts `peer` in every log line itself.
    logger: config.logger,
    // RFC 4724 §3: as a restarting speaker, IPv4 unicast with the F bit (routes stay in the kernel while
    // we restart) and the R bit on the first session after our start; otherwise a helper.
    gracefulRestart: gr
      ? {
          restartTime: spec.restartTime ?? gr.restartTime,
          forwardingState: true,
          restarting: gr.restarting === true && restarting,
        }
      : { restartTime: spec.restartTime ?? DEFAULT_HELPER_RESTART_TIME, helperOnly: true },
    ...(spec.keepaliveTime !== undefined ? { keepaliveTime: spec.keepaliveTime } : {}),
    ...(source !== undefined ? { localAddress: source } : {}),
    // RFC 4760 §8: one Multiprotocol capability per family; GR names the same families (RFC 4724 §3).
    ...(spec.ipv6Unicast === true ? { families: [IPV4_UNICAST, IPV6_UNICAST] } : {}),
    ...securityOf(spec),
  };
}
