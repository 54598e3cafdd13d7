// The node agent (`tortie node run`): wires datastore → cache → planner/advertiser → Speaker, and answers
// `tortie node status|routes` (control socket) and the kubelet's probes (health server).
//
// Startup, in Calico's order: wait for the datastore (WAIT_FOR_DATASTORE), find our address (IP or
// autodetection, with prefix length), register or update our Node, create the default IPPool unless
// NO_DEFAULT_POOLS or a pool exists, claim a block, allocate the IPIP tunnel address when an IPIP pool
// selects us; then start the cache and the Speaker, and replan on every (coalesced) cache change:
// planPeers → Speaker.setPeers (eBGP peers with the node's subnet, for third-party next hops),
// originatedPrefixes → Speaker.setOriginated (next hop: our address).
//
// Why this is hard:
// - Live reconfiguration must not flap sessions. Speaker.setPeers restarts a peer whose spec changed, and
//   compares policy hooks by identity, so the export filter is memoised on the pools that shape it.
// - A new router id, AS, listen address or cluster id needs a new Speaker (BGP has no way to change them
//   on a session). That swap is done as a graceful restart (RFC 4724): the old sessions' connections are
//   dropped without NOTIFICATION, so peers (GR helpers) keep our routes as stale; the new Speaker starts
//   "restarting" (R bit, deferred selection). Meanwhile routes() keeps showing the old Loc-RIB's routes,
//   marked stale, for prefixes the new one has not learned yet — the forwarding state we preserve.
// - Readiness is Calico's: no peers → ready; until every peer has been Established once → all must be;
//   afterwards at least one.
// - Import protection (./import-guard.ts) is the Speaker's import judge, always on. Its context is rebuilt
//   from the cache on every pass that touched what it judges by, and only the routes the change can
//   touch are judged again (Speaker.rejudge): an affinity arriving after its block's route, a node moving.
// - Nothing the agent starts without awaiting it (a Speaker event, a timer, the live tunnel address, a
//   stop asked for on the control socket) may end as an unhandled rejection or an uncaught exception:
//   that would end the process. Each such entry point runs `contained`: a throw is logged and kept as
//   the last error, and the next change or resync tries again.

import { hostname, networkInterfaces } from 'node:os';
import { readFileSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { parseIpv4, formatIpv4, formatPrefix, parsePrefix, prefixContains } from '../../bgp/ip.js';
import { Speaker, tcpAcceptor, type Acceptor, type ImportJudge, type OriginatedRoute, type PeerSpec, type RefusedRoute, type RibEntry, type SpeakerConfig } from '../../bgp/speaker.js';
import { tcpTransport, type Connection, type Transport } from '../../bgp/transport.js';
import { AsPathSegmentType, Origin, type Prefix } from '../../bgp/types.js';
import { FelixDataplane, type DataplaneInput, type DataplaneOptions } from '../../felix/dataplane.js';
import { Iproute2Kernel } from '../../felix/iproute2.js';
import { missingPrograms } from '../../felix/programs.js';
import { procSysIo } from '../../felix/kernel-settings.js';
import { Nft } from '../../felix/nft.js';
import { PolicyDataplane } from '../../felix/policy-dataplane.js';
import { PolicyEnforcer } from '../policy/enforcer.js';
import type { DatastoreConfig } from '../datastore/config.js';
import { AlreadyExistsError, ConflictError, type Datastore } from '../datastore/types.js';
import { Ipam, ipipTunnelHandle } from '../ipam/index.js';
import { applyDefaults, notInEffect, parseSelector, API_VERSION, BGP_DEFAULTS, type AnyResource, type Resource } from '../resources/index.js';
import type { Logger } from '../log.js';
import { setCrashPath } from '../fatal.js';
import { affineBlocks, calicoExportFilter, originatedPrefixes, prefixCommunities } from './advertise.js';
import { buildImportContext, importContextChanges, isImportRefusal, judgeImport, peerKindOf, type ImportContext } from './import-guard.js';
import { autodetectIpv4, interfaceAddresses, prefixLengthOf, type InterfaceAddress } from './autodetect.js';
import { ResourceCache } from './cache.js';
import { levelOfSeverity, parseAgentConfig, routerIdFor, type AgentConfig } from './config.js';
import { AgentMetrics } from './metrics.js';
import { planPeers } from './planner.js';
import { refText, type SecretSource } from './secrets.js';
import { diagnoseTcpSecurity, formatTcpSecurityFindings, parseTcpSecurityCounters, type TcpSecurityCounters } from '../../bgp/tcp-diagnosis.js';
import { peerRow } from './status-format.js';
import type { AgentStatus, DesiredPeer, PeeringPlan, Readiness, RouteRow } from './types.js';

/** The part of Speaker the agent uses (tests pass a fake). */
export type SpeakerLike = Pick<Speaker, 'start' | 'stop' | 'setPeers' | 'setOriginated' | 'peerStatus' | 'bestRoutes' | 'on'> &
  Partial<Pick<Speaker, 'refusedRoutes' | 'rejudge'>>;

/** The part of felix's dataplane driver the agent uses. */
export type DataplaneLike = Pick<FelixDataplane, 'start' | 'stop' | 'update' | 'bgpSettled' | 'status' | 'programmed'>;

export interface AgentDeps {
  datastore: Datastore;
  logger: Logger;
  /** Default: a real Speaker over TCP. */
  createSpeaker?: (config: SpeakerConfig) => SpeakerLike;
  /** Default: os.networkInterfaces(). */
  interfaces?: () => InterfaceAddress[];
  localAddressToward?: (target: string) => Promise<string>;
  /** Control socket and health server (default: S's serveControl/startHealthServer; null = none). */
  serveControl?: ((path: string, provider: { status(): AgentStatus; routes(): RouteRow[]; stop(graceful: boolean): void }, options?: { log?: Logger }) => Promise<{ close(): Promise<void> }>) | null;
  /** `tortie node stop` arrived on the control socket: the owner stops the agent (runNode). Default: stop() itself. */
  onStopRequest?: (graceful: boolean) => void;
  startHealth?: ((options: { port: number; readiness(): Readiness; liveness(): boolean; metrics: AgentMetrics; log?: Logger }) => Promise<{ port: number; close(): Promise<void> }>) | null;
  metrics?: AgentMetrics;
  /**
   * The kernel dataplane (TORTIE_DATAPLANE=kernel). Default: felix over `ip` in this process's network
   * namespace. Tests pass one over a MemoryKernel or another namespace.
   */
  createDataplane?: (options: Pick<DataplaneOptions, 'log' | 'resyncMs' | 'tunl0'>) => DataplaneLike;
  /** NetworkPolicy's nftables driver (kernel dataplane only). Default: table inet tortie-filter here, unless createDataplane is injected. */
  createPolicyDataplane?: () => Pick<PolicyDataplane, 'apply' | 'resync'> | null;
  /** MTU of an interface (tunl0's auto MTU); default /sys/class/net/<name>/mtu. */
  interfaceMtu?: (name: string) => number | undefined;
  /** Wall clock (ms) for status. */
  now?: () => number;
  sleep?: (ms: number) => Promise<void>;
  /** Cache burst coalescing (ms). */
  coalesceMs?: number;
  /** Speaker connect retry (ms, default 2000). */
  connectRetryMs?: number;
  version?: string;
  /**
   * Addresses of the control plane (etcd endpoints, the Kubernetes API server), IPv4 text: no BGP route
   * containing one is accepted (import protection). runNode fills it from the datastore configuration.
   */
  controlPlane?: readonly string[];
  /** Where BGP passwords come from (src/agent/secrets.ts); absent: a peer with a password is not started. */
  secrets?: SecretSource | null;
  /** The text of /proc/net/netstat (TCP-MD5/GTSM drop counters for node status); default: read it. */
  readNetstat?: () => string | null;
}

/** Graceful restart we advertise: restart time (RFC 4724 §3) and how long we defer selection after a start. */
const GRACEFUL_RESTART = { restartTime: 120, deferralMs: 30_000 } as const;
/** WAIT_FOR_DATASTORE: attempts one second apart (an hour). */
const WAIT_ATTEMPTS = 3600;

interface SpeakerIdentity {
  routerId: string;
  localAs: number;
  listenAddress: string;
  listenPort: number;
  clusterId: string | null;
}

function sameIdentity(a: SpeakerIdentity, b: SpeakerIdentity): boolean {
  return a.routerId === b.routerId && a.localAs === b.localAs && a.listenAddress === b.listenAddress && a.listenPort === b.listenPort && a.clusterId === b.clusterId;
}

/** Every connection the Speaker opens or accepts, so a graceful restart can drop them without NOTIFICATION. */
class ConnectionTracker {
  private readonly open = new Set<Connection>();
  readonly transport: Transport;
  readonly acceptor: Acceptor;

  constructor(inner: Transport = tcpTransport, innerAcceptor: Acceptor = tcpAcceptor) {
    this.transport = { connect: async (options) => this.track(await inner.connect(options)) };
    this.acceptor = (address, port, onConnection) => innerAcceptor(address, port, (conn) => onConnection(this.track(conn)));
  }

  private track(conn: Connection): Connection {
    this.open.add(conn);
    conn.once('close', () => this.open.delete(conn));
    return conn;
  }

  /** Drops every connection at once (a crash, as peers see it). */
  dropAll(): void {
    for (const conn of this.open) conn.destroy();
    this.open.clear();
  }
}

/** Kinds whose change can change the peering plan (the rest only move originated routes). IPPool is here
 *  because the export filter is derived from the pools. */
const PEERING_KINDS: ReadonlySet<string> = new Set(['Node', 'BGPConfiguration', 'BGPPeer', 'IPPool']);
/** Kinds the import protection judges by (./import-guard.ts). */
const IMPORT_GUARD_KINDS: ReadonlySet<string> = new Set(['Node', 'BGPConfiguration', 'IPPool', 'IPAMBlock', 'BlockAffinity']);

/**
 * `subnet`: this node's address with prefix length. eBGP peers inside it get it (an office router or
 * top-of-rack switch on the node's own network is one IP hop away: it is sent other nodes' blocks with
 * their own next hops, RFC 4271 §5.1.3 (2), as BIRD does on directly connected eBGP sessions; Calico's
 * BIRD config makes every session multihop, so Calico sends its own address — `nextHopMode: Self` on the
 * BGPPeer gives that). iBGP peers and eBGP peers outside the subnet do not use it, so they do not get it:
 * a change of prefix length then restarts only the sessions it matters to.
 */
function toPeerSpec(peer: DesiredPeer, exportFilter: PeerSpec['exportFilter'], nodeAs: number, subnet: string | undefined, password?: string): PeerSpec {
  return {
    // TCP-MD5 (BGPPeer password / nodeMeshPassword), resolved from its Secret.
    ...(password !== undefined ? { password } : {}),
    // GTSM (BGPPeer ttlSecurity).
    ...(peer.ttlSecurity !== undefined ? { ttlSecurity: peer.ttlSecurity } : {}),
    // BGPPeer localASNumber: this session speaks another AS than the node's.
    ...(peer.localAsNumber !== nodeAs ? { localAs: peer.localAsNumber } : {}),
    // BGPPeer maxRestartTime / nodeMeshMaxRestartTime: the graceful restart time offered to this peer.
    ...(peer.restartTime !== undefined ? { restartTime: peer.restartTime } : {}),
    address: peer.address,
    port: peer.port,
    peerAs: peer.asNumber,
    passive: peer.passive,
    rrClient: peer.rrClient,
    nextHop: peer.nextHopMode.toLowerCase() as NonNullable<PeerSpec['nextHop']>,
    allowOwnAs: peer.allowOwnAs,
    ...(peer.sourceAddress !== undefined ? { localAddress: peer.sourceAddress } : {}),
    ...(peer.keepaliveTime !== undefined ? { keepaliveTime: peer.keepaliveTime } : {}),
    // BGPPeer annotation tortie.dev/max-prefixes (RFC 4486 Cease past it); else TORTIE_BGP_MAX_PREFIXES.
    ...(peer.maxPrefixes !== undefined ? { maxPrefixes: peer.maxPrefixes } : {}),
    ...(exportFilter !== undefined ? { exportFilter } : {}),
    ...(subnet !== undefined && peer.asNumber !== peer.localAsNumber && insideSubnet(subnet, peer.address) ? { subnet } : {}),
  };
}

function insideSubnet(subnet: string, address: string): boolean {
  try {
    return prefixContains(parsePrefix(subnet), parseIpv4(address));
  } catch {
    return false;
  }
}

/**
 * This node's subnet, for its sessions: Node spec.bgp.ipv4Address with its prefix length, as Calico stores
 * it ("198.19.1.11/24"); else the address the agent found, with its interface's prefix length, when the
 * Node names that address without one. Undefined when neither says (no third-party next hops then).
 */
function nodeSubnet(node: Resource<'Node'> | undefined, found: { address: string; prefixLength: number } | null): string | undefined {
  const text = node?.spec.bgp?.ipv4Address;
  if (text !== undefined && text.includes('/')) {
    try {
      parsePrefix(text);
      return text;
    } catch {
      return undefined; // the planner warns about an unreadable address
    }
  }
  const address = text ?? found?.address;
  return found !== null && address === found.address ? `${found.address}/${found.prefixLength}` : undefined;
}

function asPathOf(entry: RibEntry): Array<number | number[]> {
  const out: Array<number | number[]> = [];
  for (const segment of entry.attrs.asPath ?? []) {
    if (segment.type === AsPathSegmentType.AS_SEQUENCE || segment.type === AsPathSegmentType.AS_CONFED_SEQUENCE) out.push(...segment.asns);
    else out.push([...segment.asns]);
  }
  return out;
}

function refusedRow(entry: RefusedRoute): RouteRow {
  return {
    ...routeRow({ prefix: entry.prefix, attrs: entry.attrs, from: entry.from, stale: entry.stale }),
    best: false,
    ...(isImportRefusal(entry.reason) ? { refused: entry.reason } : {}),
  };
}

function routeRow(entry: RibEntry, stale = entry.stale): RouteRow {
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

/** An interface's MTU from sysfs (`ip netns exec` mounts the namespace's own /sys); undefined when unreadable. */
function readInterfaceMtu(name: string): number | undefined {
  try {
    const mtu = Number(readFileSync(`/sys/class/net/${name}/mtu`, 'utf8').trim());
    return Number.isInteger(mtu) && mtu > 0 ? mtu : undefined;
  } catch {
    return undefined;
  }
}

function errorText(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

let cachedVersion: string | undefined;

/** tortie's version, read once (status is rebuilt on every session state change). */
function packageVersion(): string {
  if (cachedVersion !== undefined) return cachedVersion;
  try {
    const pkg = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version?: string };
    cachedVersion = pkg.version ?? 'unknown';
  } catch {
    cachedVersion = 'unknown';
  }
  return cachedVersion;
}

export class Agent {
  private readonly ds: Datastore;
  private readonly log: Logger;
  private readonly metrics: AgentMetrics;
  private readonly now: () => number;
  private readonly sleep: (ms: number) => Promise<void>;
  private readonly ipam: Ipam;
  private readonly startedAt: number;
  private cache: ResourceCache | null = null;
  private speaker: SpeakerLike | null = null;
  private tracker: ConnectionTracker | null = null;
  private identity: SpeakerIdentity | null = null;
  private plan: PeeringPlan | null = null;
  private blocks: string[] = [];
  private ip: { address: string; prefixLength: number } | null = null;
  /** The interface holding the node address (direct and BGP routes leave through it); null = none found. */
  private hostInterface: string | null = null;
  private dataplane: DataplaneLike | null = null;
  /** NetworkPolicy enforcement (src/policy/enforcer.ts), with the kernel dataplane. */
  private policy: PolicyEnforcer | null = null;
  private dataplaneUpdate: ReturnType<typeof setImmediate> | null = null;
  private tunnelAddressRunning = false;
  private readonly warnings = new Set<string>();
  /** Peers seen Established since the current Speaker started (readiness). */
  private readonly everEstablished = new Set<string>();
  /** Peers whose End-of-RIB this Speaker received (felix keeps last run's routes until every peer's is in). */
  private readonly endOfRibFrom = new Set<string>();
  private speakerReady = false;
  private settleTimer: ReturnType<typeof setTimeout> | null = null;
  /** The previous Speaker's best routes while a graceful swap is under way (see header). */
  private retained: RibEntry[] | null = null;
  private exportFilterCache: { key: string; filter: PeerSpec['exportFilter'] } | null = null;
  /** What the import judge judges by (null until the first pass builds it). */
  private importContext: ImportContext | null = null;
  /** (peer, reason) pairs already logged at info by this Speaker: later refusals of the pair go to debug. */
  private readonly refusalsLogged = new Set<string>();
  private readonly importJudge: ImportJudge = (route) => {
    const context = this.importContext;
    if (context === null) return null;
    return judgeImport({ prefix: route.prefix, nextHop: route.attrs.nextHop }, peerKindOf(route.source.address, context), context);
  };
  private control: { close(): Promise<void> } | null = null;
  private health: { port: number; close(): Promise<void> } | null = null;
  private stopping = false;
  private started = false;
  private lastError: string | undefined;
  private replanning: Promise<void> = Promise.resolve();
  private cacheLoaded = false;
  /** Consecutive failures to start a BGP speaker, and the timer of the next try (1 s, 2 s, … 30 s). */
  private speakerFailures = 0;
  private speakerRetry: ReturnType<typeof setTimeout> | null = null;
  /** Kinds changed since the last pass; peers are re-planned only when one of PEERING_KINDS changed. */
  private readonly changedKinds = new Set<string>();
  private lastChangeAt: number | null = null;
  private logLevelFromEnv: boolean;
  /** Resolved BGP passwords by "secret/key": the value, or why it could not be read (never logged). */
  private passwords = new Map<string, { value: string } | { error: string }>();
  private stopSecretWatch: (() => void) | null = null;
  /** TcpExt counters when the sessions with a password were last (re)configured: node status shows growth. */
  private tcpCountersBase: TcpSecurityCounters = {};

  constructor(
    readonly config: AgentConfig,
    private readonly deps: AgentDeps,
  ) {
    this.ds = deps.datastore;
    this.log = deps.logger;
    this.metrics = deps.metrics ?? new AgentMetrics();
    this.now = deps.now ?? Date.now;
    this.sleep = deps.sleep ?? ((ms) => new Promise((resolve) => setTimeout(resolve, ms)));
    this.ipam = new Ipam(this.ds);
    this.startedAt = this.now();
    this.logLevelFromEnv = config.logLevel !== undefined;
  }

  /** Runs the startup sequence, then serves. Rejects (and leaves nothing running) when startup fails. */
  async start(): Promise<void> {
    try {
      await this.waitForDatastore();
      this.ip = await this.findAddress();
      this.log.info({ node: this.config.nodeName, ip: `${this.ip.address}/${this.ip.prefixLength}`, iface: this.hostInterface }, 'node address');
      await this.registerNode();
      await this.writeNodename();
      await this.ensureDefaultPool();
      await this.claimBlock();
      await this.ensureTunnelAddress();
      this.cache = new ResourceCache(this.ds, {
        ...(this.deps.coalesceMs !== undefined ? { coalesceMs: this.deps.coalesceMs } : {}),
        onError: (kind, error) => {
          this.lastError = error.message;
          this.log.warn({ kind, err: error.message }, 'datastore watch failed; re-listing');
        },
        onProblem: (kind, problem) => {
          this.warnings.add(`${kind}: ${problem} (left out)`);
          this.log.warn({ kind, problem }, 'a stored object could not be read and is left out');
        },
      });
      // Changes are acted on only once every kind is loaded: a plan from a half-loaded cache (Nodes listed,
      // BGPConfiguration not yet) would say wrong things (no such node; listen on 0.0.0.0).
      this.cache.on('changed', (kinds: ReadonlySet<string>) =>
        this.contained('a datastore change', () => {
          if (!this.cacheLoaded) return;
          for (const kind of kinds) this.changedKinds.add(kind);
          this.scheduleReplan();
        }),
      );
      await this.cache.start();
      this.cacheLoaded = true;
      this.tcpCountersBase = this.tcpCounters();
      this.stopSecretWatch = this.deps.secrets?.watch(() => void this.refreshPasswords()) ?? null;
      this.startDataplane();
      await this.replanNow();
      await this.startServers();
      this.started = true;
      this.log.info({ node: this.config.nodeName }, 'tortie node agent started');
    } catch (error) {
      await this.stop();
      throw error;
    }
  }

  /**
   * Stops everything: watches, servers, and the BGP sessions — with Cease to every peer, or, `graceful`,
   * by closing every connection without a NOTIFICATION, so peers (graceful-restart helpers, RFC 4724)
   * keep this node's routes as stale until it is back (a restart: rolling update, preStop hook). Kernel
   * routes stay either way. Safe to call twice.
   */
  async stop(options: { graceful?: boolean } = {}): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    if (options.graceful === true && this.speaker) {
      // First, before any await: a peer reconnecting meanwhile would otherwise get a Cease after all.
      this.log.info('stopping gracefully: BGP connections closed without NOTIFICATION, peers keep our routes');
      const speaker = this.speaker;
      this.speaker = null;
      this.tracker?.dropAll();
      await speaker.stop().catch((e: unknown) => this.log.warn({ err: errorText(e) }, 'stopping the BGP speaker'));
    }
    if (this.speakerRetry !== null) clearTimeout(this.speakerRetry);
    this.speakerRetry = null;
    this.stopSecretWatch?.();
    this.stopSecretWatch = null;
    if (this.settleTimer !== null) clearTimeout(this.settleTimer);
    this.settleTimer = null;
    if (this.dataplaneUpdate !== null) clearImmediate(this.dataplaneUpdate);
    this.dataplaneUpdate = null;
    this.policy?.stop();
    this.cache?.stop();
    await this.replanning.catch(() => undefined);
    // Routes stay in the kernel: the next start adopts them (no blackout across a restart).
    await this.dataplane?.stop().catch((e: unknown) => this.log.warn({ err: errorText(e) }, 'stopping the dataplane'));
    const speaker = this.speaker;
    this.speaker = null;
    if (speaker) await speaker.stop().catch((e: unknown) => this.log.warn({ err: errorText(e) }, 'stopping the BGP speaker'));
    await this.control?.close().catch(() => undefined);
    await this.health?.close().catch(() => undefined);
    this.control = null;
    this.health = null;
  }

  status(): AgentStatus {
    const plan = this.plan;
    const byAddress = new Map((plan?.peers ?? []).map((p) => [p.address, p]));
    const now = this.now();
    const kernel = this.kernelFindings();
    const peers = (this.speaker?.peerStatus() ?? []).map((peer) => {
      const desired = byAddress.get(peer.address);
      const signed = desired?.password !== undefined || desired?.ttlSecurity !== undefined;
      return peerRow({ peer, ...(desired ? { desired } : {}), now, ...(signed && kernel.length > 0 ? { kernel } : {}) });
    });
    // Peers not started because their password could not be read: shown, with the reason.
    for (const desired of plan?.peers ?? []) {
      const problem = this.passwordProblem(desired);
      if (problem === undefined) continue;
      peers.push(peerRow({ peer: { address: desired.address, port: desired.port, peerAs: desired.asNumber, state: 'Idle', since: this.startedAt, routesReceived: 0, routesAccepted: 0, routesAdvertised: 0, staleRoutes: 0, lastError: `not started: ${problem}` }, desired, now }));
    }
    const readiness = this.readiness();
    const cacheError = this.cache && !this.cache.connected ? this.cache.lastError : undefined;
    const dataplane = this.dataplane?.status();
    const policy = this.policy?.status();
    return {
      summary: 'tortie is running.',
      node: this.config.nodeName,
      version: this.deps.version ?? packageVersion(),
      pid: process.pid,
      startedAt: new Date(this.startedAt).toISOString(),
      ipv4Address: this.ip ? `${this.ip.address}/${this.ip.prefixLength}` : null,
      asNumber: plan?.localAsNumber ?? this.config.asNumber ?? BGP_DEFAULTS.asNumber,
      routerId: this.identity?.routerId ?? plan?.routerId ?? null,
      clusterId: plan?.clusterId ?? null,
      datastore: {
        type: this.ds.type,
        connected: this.cache?.connected ?? false,
        ...(cacheError ?? this.lastError ? { lastError: cacheError ?? this.lastError } : {}),
      },
      ready: readiness.ready,
      ...(readiness.reason !== undefined ? { notReadyReason: readiness.reason } : {}),
      peers,
      blocks: [...this.blocks],
      dataplane: dataplane ? { mode: 'kernel', hostInterface: this.hostInterface, ...dataplane } : { mode: 'none', hostInterface: this.hostInterface },
      ...(policy !== undefined ? { policy } : {}),
      warnings: [
        ...this.warnings,
        ...this.notInEffectWarnings(),
        ...(plan?.warnings ?? []),
        ...(dataplane?.warnings ?? []),
        ...(policy?.lastError ? [`network policy: writing nftables table inet tortie-filter failed, retrying: ${policy.lastError}`] : []),
      ],
    };
  }

  /** Fields of the configuration this agent reads that are stored but change nothing yet (resources/effect.ts). */
  private notInEffectWarnings(): string[] {
    const cache = this.cache;
    if (!cache) return [];
    const own = cache.list('Node').filter((n) => n.metadata.name === this.config.nodeName);
    const resources = [...cache.list('IPPool'), ...cache.list('BGPConfiguration'), ...cache.list('BGPPeer'), ...own];
    return resources.flatMap((r) => notInEffect(r as AnyResource));
  }

  /**
   * The Loc-RIB's best routes; during a graceful Speaker swap, plus the retained ones not yet re-learned;
   * then every route import protection refused (best: false, with the reason).
   */
  routes(): RouteRow[] {
    const rows = this.bgpRows();
    for (const refused of this.speaker?.refusedRoutes?.() ?? []) rows.push(refusedRow(refused));
    const dataplane = this.dataplane;
    if (dataplane) for (const row of rows) row.inKernel = dataplane.programmed(row.prefix);
    return rows;
  }

  private bgpRows(): RouteRow[] {
    const current = this.speaker?.bestRoutes() ?? [];
    const rows = current.map((e) => routeRow(e));
    if (this.retained) {
      const have = new Set(rows.map((r) => r.prefix));
      for (const old of this.retained) if (!have.has(formatPrefix(old.prefix))) rows.push(routeRow(old, true));
    }
    return rows;
  }

  /** Calico's BIRD readiness: no peers → ready; just started → all Established; afterwards at least one. */
  readiness(): Readiness {
    const bgp = this.bgpReadiness();
    const dataplane = this.dataplane?.status();
    if (!bgp.ready || !dataplane) return bgp;
    // felix's own readiness: the kernel has been programmed once (Calico: "in sync").
    if (!dataplane.inSync) return { ready: false, reason: `the kernel routes are not programmed yet${dataplane.lastError ? ` (${dataplane.lastError})` : ''}` };
    const notes: string[] = [];
    if (dataplane.tunl0.needed && !dataplane.tunl0.supported) notes.push(`${dataplane.tunl0.reason}: routes through tunl0 are not programmed`);
    return notes.length > 0 ? { ready: true, notes } : { ready: true };
  }

  private bgpReadiness(): Readiness {
    if (!this.started || !this.speaker) return { ready: false, reason: 'the agent is starting' };
    const peers = this.speaker.peerStatus();
    if (peers.length === 0) return { ready: true };
    const up = peers.filter((p) => p.state === 'Established');
    for (const p of up) this.everEstablished.add(p.address);
    const allSeen = peers.every((p) => this.everEstablished.has(p.address));
    if (!allSeen && up.length < peers.length) {
      const down = peers.filter((p) => p.state !== 'Established').map((p) => `${p.address} (${p.state})`);
      return { ready: false, reason: `BGP not established with ${down.join(', ')}` };
    }
    if (up.length === 0) return { ready: false, reason: `no BGP session is established (${peers.length} configured)` };
    return { ready: true };
  }

  // ---- startup ------------------------------------------------------------------------------------------

  private async waitForDatastore(): Promise<void> {
    const attempts = this.config.waitForDatastore ? WAIT_ATTEMPTS : 1;
    for (let i = 0; ; i++) {
      try {
        await this.ds.list('BGPConfiguration');
        return;
      } catch (error) {
        if (i + 1 >= attempts || this.stopping) throw error;
        if (i === 0) this.log.warn({ err: errorText(error) }, 'waiting for the datastore (WAIT_FOR_DATASTORE)');
        await this.sleep(1000);
      }
    }
  }

  private async findAddress(): Promise<{ address: string; prefixLength: number }> {
    const interfaces = this.deps.interfaces ?? (() => interfaceAddresses(networkInterfaces()));
    const ip = this.config.ip;
    if (ip.mode === 'fixed') {
      const holder = interfaces().find((i) => i.address === ip.address);
      this.hostInterface = holder?.iface ?? null;
      if (holder === undefined) {
        this.warnings.add(`IP=${ip.address}: no interface holds this address, so routes to other nodes (direct and BGP) have no interface to leave through and are not programmed`);
      }
      if (ip.prefixLength !== undefined) return { address: ip.address, prefixLength: ip.prefixLength };
      const len = prefixLengthOf(ip.address, interfaces());
      if (len !== null) return { address: ip.address, prefixLength: len };
      this.warnings.add(`IP=${ip.address}: no interface holds this address, so its prefix length is unknown; using /32 (set IP=${ip.address}/<len> for CrossSubnet to work)`);
      return { address: ip.address, prefixLength: 32 };
    }
    const found = await autodetectIpv4(ip.method, {
      interfaces,
      ...(this.deps.localAddressToward ? { localAddressToward: this.deps.localAddressToward } : {}),
    });
    this.log.info({ iface: found.iface, method: found.method }, 'autodetected the node address');
    this.hostInterface = found.iface;
    return { address: found.address, prefixLength: found.prefixLength };
  }

  /** Creates our Node or updates its BGP address/AS; a concurrent writer (ConflictError) means read again. */
  private async registerNode(): Promise<void> {
    const name = this.config.nodeName;
    const address = `${this.ip!.address}/${this.ip!.prefixLength}`;
    for (let attempt = 0; attempt < 10; attempt++) {
      const node = await this.ds.get('Node', name);
      try {
        if (!node) {
          await this.ds.create({
            apiVersion: API_VERSION,
            kind: 'Node',
            metadata: { name },
            spec: { bgp: { ipv4Address: address, ...(this.config.asNumber !== undefined ? { asNumber: this.config.asNumber } : {}) } },
          });
          this.log.info({ node: name, ipv4Address: address }, 'registered the node');
          return;
        }
        const bgp = { ...(node.spec.bgp ?? {}), ipv4Address: address, ...(this.config.asNumber !== undefined ? { asNumber: this.config.asNumber } : {}) };
        if (node.spec.bgp?.ipv4Address === bgp.ipv4Address && node.spec.bgp?.asNumber === bgp.asNumber) return;
        await this.ds.update({ ...node, spec: { ...node.spec, bgp } });
        this.log.info({ node: name, ipv4Address: address }, 'updated the node');
        return;
      } catch (error) {
        if (!(error instanceof ConflictError) && !(error instanceof AlreadyExistsError)) throw error;
      }
    }
    throw new Error(`node "${name}": could not write its BGP address after 10 attempts (others kept writing it)`);
  }

  /** Calico's default pool, unless NO_DEFAULT_POOLS or any IPv4 pool exists. Another node creating it first is fine. */
  private async ensureDefaultPool(): Promise<void> {
    const pool = this.config.defaultPool;
    if (!pool) return;
    const existing = await this.ds.list('IPPool');
    if (existing.items.some((p) => !p.spec.cidr.includes(':'))) return;
    try {
      await this.ds.create(
        applyDefaults({
          apiVersion: API_VERSION,
          kind: 'IPPool',
          metadata: { name: pool.name },
          spec: { cidr: pool.cidr, blockSize: pool.blockSize, ipipMode: pool.ipipMode, natOutgoing: pool.natOutgoing, nodeSelector: 'all()' },
        }),
      );
      this.log.info({ pool: pool.name, cidr: pool.cidr }, 'created the default IP pool');
    } catch (error) {
      if (!(error instanceof AlreadyExistsError)) throw error;
    }
  }

  private async claimBlock(): Promise<void> {
    const node = this.config.nodeName;
    try {
      // A claim this node started before a crash is finished (or dropped) first: a block whose affinity
      // stayed pending would be used for pods but never advertised.
      await this.ipam.settlePending(node);
      await this.settleReleases(node);
      const owned = await this.ipam.blocksOf(node);
      if (owned.length === 0) {
        const cidr = await this.ipam.claimBlock(node);
        this.log.info({ block: cidr }, 'claimed an IPAM block');
      }
    } catch (error) {
      this.warnings.add(`no IPAM block for this node: ${errorText(error)}`);
      this.log.warn({ err: errorText(error) }, 'could not claim an IPAM block');
    }
  }

  /**
   * A release of one of our blocks that stopped half-way (affinity pendingDeletion: the block is no longer
   * advertised) is finished when the block is empty and undone when it holds addresses (Ipam.settlePendingDeletion).
   */
  private async settleReleases(node: string): Promise<void> {
    try {
      for (const settled of await this.ipam.settlePendingDeletion(node)) {
        this.log.info({ block: settled.cidr, outcome: settled.outcome }, 'settled a release of our block that had stopped half-way (affinity pendingDeletion)');
      }
    } catch (error) {
      this.warnings.add(`a block release left half-done (affinity pendingDeletion) could not be settled: ${errorText(error)}`);
      this.log.warn({ err: errorText(error) }, 'could not settle a pendingDeletion block affinity');
    }
  }

  /** An enabled IPIP pool selecting us → an address for tunl0 from it, stored in Node.spec.bgp.ipv4IPIPTunnelAddr. */
  private async ensureTunnelAddress(): Promise<void> {
    const name = this.config.nodeName;
    // Every datastore call inside the try: this also runs unawaited from a replan (ensureTunnelAddressLive).
    try {
      const node = await this.ds.get('Node', name);
      const pools = this.ipipPoolsFor((await this.ds.list('IPPool')).items, node?.metadata.labels ?? {});
      if (pools.length === 0 || !node) return this.clearTunnelWarning();
      const [address] = await this.ipam.assign(name, ipipTunnelHandle(name), { pool: pools[0]!.metadata.name, use: 'Tunnel' });
      if (address === undefined || node.spec.bgp?.ipv4IPIPTunnelAddr === address) return this.clearTunnelWarning();
      for (let attempt = 0; attempt < 10; attempt++) {
        const current = await this.ds.get('Node', name);
        if (!current) return;
        try {
          await this.ds.update({ ...current, spec: { ...current.spec, bgp: { ...(current.spec.bgp ?? {}), ipv4IPIPTunnelAddr: address } } });
          this.log.info({ address }, 'IPIP tunnel address allocated');
          return this.clearTunnelWarning();
        } catch (error) {
          if (!(error instanceof ConflictError)) throw error;
        }
      }
    } catch (error) {
      this.clearTunnelWarning();
      this.warnings.add(`no IPIP tunnel address: ${errorText(error)}`);
      this.log.warn({ err: errorText(error) }, 'could not allocate the IPIP tunnel address; trying again on the next change');
    }
  }

  private clearTunnelWarning(): void {
    for (const w of [...this.warnings]) if (w.startsWith('no IPIP tunnel address: ')) this.warnings.delete(w);
  }

  /** Enabled IPv4 IPIP pools that give this node (its labels) a tunnel address. */
  private ipipPoolsFor(pools: Array<Resource<'IPPool'>>, labels: Record<string, string>): Array<Resource<'IPPool'>> {
    return pools.filter(
      (p) =>
        !p.spec.disabled &&
        (p.spec.ipipMode ?? 'Never') !== 'Never' &&
        !p.spec.cidr.includes(':') &&
        (p.spec.allowedUses === undefined || p.spec.allowedUses.includes('Tunnel')) &&
        parseSelector(p.spec.nodeSelector ?? 'all()').matches(labels),
    );
  }

  private async startServers(): Promise<void> {
    const serve = this.deps.serveControl === undefined ? (await import('./control.js')).serveControl : this.deps.serveControl;
    const stop = (graceful: boolean): void => {
      this.log.info({ graceful }, 'stop requested on the control socket');
      if (this.deps.onStopRequest) this.contained('a stop request', () => this.deps.onStopRequest!(graceful));
      else void this.stop({ graceful }).catch((error: unknown) => this.log.error({ err: errorText(error) }, 'stopping failed'));
    };
    if (serve) this.control = await serve(this.config.ctlSocket, { status: () => this.status(), routes: () => this.routes(), stop }, { log: this.log.child({ component: 'control' }) });
    const startHealth = this.deps.startHealth === undefined ? (await import('./health.js')).startHealthServer : this.deps.startHealth;
    if (startHealth && this.config.healthPort !== 0) {
      this.health = await startHealth({
        port: this.config.healthPort,
        readiness: () => this.readiness(),
        liveness: () => !this.stopping,
        metrics: this.metrics,
        log: this.log.child({ component: 'health' }),
      });
      this.log.info({ port: this.health.port }, 'health server listening');
    }
  }

  // ---- reconfiguration ---------------------------------------------------------------------------------

  private retrySpeaker(): void {
    if (this.speakerRetry !== null || this.stopping) return;
    const delay = Math.min(30_000, 1000 * 2 ** this.speakerFailures++);
    this.log.warn({ retryInMs: delay }, 'BGP speaker did not start; trying again');
    this.speakerRetry = setTimeout(() => {
      this.speakerRetry = null;
      this.scheduleReplan();
    }, delay);
    this.speakerRetry.unref?.();
  }

  private scheduleReplan(): void {
    this.lastChangeAt ??= this.now();
    this.replanning = this.replanning.then(() => this.replanNow()).catch((e: unknown) => {
      this.lastError = errorText(e);
      this.log.error({ err: errorText(e) }, 'reconfiguration failed');
    });
  }

  /** One pass: plan from the cache, reconcile the Speaker's identity, peers and originated routes. */
  private async replanNow(): Promise<void> {
    const cache = this.cache;
    if (!cache || this.stopping) return;
    const changeAt = this.lastChangeAt;
    this.lastChangeAt = null;
    // An IPAM or workload change (another node's block claim) moves originated routes, not peers: keep
    // the plan, so N agents do not all re-plan N peers for every claim in the cluster.
    const peeringChanged = this.plan === null || [...this.changedKinds].some((k) => PEERING_KINDS.has(k));
    const guardChanged = this.importContext === null || [...this.changedKinds].some((k) => IMPORT_GUARD_KINDS.has(k));
    this.changedKinds.clear();
    let plan = this.plan;
    if (plan === null || peeringChanged) {
      const bgpConfigurations = cache.list('BGPConfiguration');
      plan = planPeers({ nodeName: this.config.nodeName, nodes: cache.list('Node'), bgpConfigurations, bgpPeers: cache.list('BGPPeer') });
      this.applyLogLevel(bgpConfigurations);
      for (const w of plan.warnings) if (!this.plan?.warnings.includes(w)) this.log.warn({ warning: w }, 'peering plan');
    }
    const identity: SpeakerIdentity = {
      // CALICO_ROUTER_ID (hash or an address) over the node's IPv4 address, as calico-node does.
      routerId: routerIdFor(this.config.routerId, this.config.nodeName, plan.routerId),
      localAs: plan.localAsNumber,
      listenAddress: plan.bindAddress ?? '0.0.0.0',
      listenPort: plan.listenPort,
      clusterId: plan.clusterId ?? null,
    };
    if (!this.speaker || !this.identity || !sameIdentity(identity, this.identity)) {
      try {
        await this.replaceSpeaker(identity);
      } catch (error) {
        // Re-plan from the datastore next time (not from this plan), and try again by itself.
        this.plan = null;
        this.retrySpeaker();
        throw error;
      }
      this.speakerFailures = 0;
      for (const w of [...this.warnings]) if (w.startsWith('BGP speaker: ')) this.warnings.delete(w);
    }
    this.plan = plan;
    const speaker = this.speaker!;
    const pools = cache.list('IPPool');
    const filter = this.exportFilterFor(pools);
    const subnet = nodeSubnet(cache.list('Node').find((n) => n.metadata.name === this.config.nodeName), this.ip);
    const previousContext = this.importContext;
    if (guardChanged) this.importContext = this.buildImportContext(cache, subnet);
    if (peeringChanged || this.passwords.size === 0) await this.resolvePasswords(plan.peers);
    // A peer whose password cannot be read is not started at all: never a session without it.
    const startable = plan.peers.filter((p) => this.passwordProblem(p) === undefined);
    speaker.setPeers(startable.map((p) => toPeerSpec(p, filter, plan.localAsNumber, subnet, this.passwordOf(p))));
    const prefixes = originatedPrefixes({
      nodeName: this.config.nodeName,
      pools,
      blocks: cache.list('IPAMBlock'),
      affinities: cache.list('BlockAffinity'),
      workloads: cache.list('WorkloadEndpoint'),
    });
    this.blocks = prefixes;
    const nextHop = parseIpv4(this.ip!.address);
    const bgpConfigurations = cache.list('BGPConfiguration');
    speaker.setOriginated(
      prefixes.map((cidr): OriginatedRoute => {
        const prefix = parsePrefix(cidr);
        // BGPConfiguration prefixAdvertisements: Calico's apply_communities() on every exported route.
        return { prefix, attrs: { origin: Origin.IGP, nextHop, asPath: [], ...prefixCommunities(prefix, bgpConfigurations) } };
      }),
    );
    if (guardChanged) this.rejudgeImports(previousContext, plan);
    this.updateDataplane();
    this.updatePolicy();
    this.ensureTunnelAddressLive();
    this.metrics.observeWatchLag(cache.lagSeconds());
    if (changeAt !== null) this.metrics.observeConvergence(Math.max(0, this.now() - changeAt) / 1000);
  }

  // ---- import protection (./import-guard.ts) -------------------------------------------------------------

  private buildImportContext(cache: ResourceCache, subnet: string | undefined): ImportContext {
    const name = this.config.nodeName;
    const blocks = cache.list('IPAMBlock');
    const affinities = cache.list('BlockAffinity');
    return buildImportContext({
      nodeName: name,
      subnet: subnet ?? (this.ip ? `${this.ip.address}/${this.ip.prefixLength}` : undefined),
      ownBlocks: affineBlocks({ nodeName: name, blocks, affinities }),
      pools: cache.list('IPPool'),
      blocks,
      affinities,
      nodes: cache.list('Node'),
      bgpConfigurations: cache.list('BGPConfiguration'),
      controlPlane: this.deps.controlPlane ?? [],
    });
  }

  /** The context changed: the routes it can change the verdict of are judged again. */
  private rejudgeImports(previous: ImportContext | null, plan: PeeringPlan): void {
    const speaker = this.speaker;
    const next = this.importContext;
    if (speaker?.rejudge === undefined || next === null || next === previous) return;
    const changes = importContextChanges(previous, next, plan.peers.map((p) => parseIpv4(p.address)));
    if (changes !== 'all' && changes.length === 0) return;
    const changed = speaker.rejudge(changes === 'all' ? undefined : changes);
    if (changed > 0) {
      this.log.info({ routes: changed, scope: changes === 'all' ? 'all' : `${changes.length} block(s)` }, 'import protection: routes judged again after a change in the cluster');
      this.scheduleDataplaneUpdate();
    }
  }

  private onRefused(event: { peer: string; prefix: Prefix; reason: string }): void {
    this.metrics.observeImportRefused(event.peer, event.reason);
    const pair = `${event.peer}|${event.reason}`;
    const fields = { peer: event.peer, prefix: formatPrefix(event.prefix), reason: event.reason };
    if (this.refusalsLogged.has(pair)) {
      this.log.debug(fields, 'import protection: route refused');
      return;
    }
    this.refusalsLogged.add(pair);
    this.log.info(fields, 'import protection: route refused (further refusals of this peer for this reason are logged at debug)');
  }

  // ---- BGP passwords (TCP-MD5) -----------------------------------------------------------------------------

  private static refId(ref: { name: string; key: string }): string {
    return `${ref.name}/${ref.key}`;
  }

  private passwordOf(peer: DesiredPeer): string | undefined {
    const got = peer.password ? this.passwords.get(Agent.refId(peer.password)) : undefined;
    return got && 'value' in got ? got.value : undefined;
  }

  /** Why this peer's password is not available, or undefined (no password, or it was read). */
  private passwordProblem(peer: DesiredPeer): string | undefined {
    if (!peer.password) return undefined;
    const got = this.passwords.get(Agent.refId(peer.password));
    if (got === undefined) return `${refText(peer.password)}: not read yet`;
    return 'error' in got ? got.error : undefined;
  }

  /** Reads every password the peers refer to. Values stay in memory only; errors name Secret and key. */
  private async resolvePasswords(peers: readonly DesiredPeer[]): Promise<boolean> {
    const source = this.deps.secrets ?? null;
    const next = new Map<string, { value: string } | { error: string }>();
    for (const peer of peers) {
      if (!peer.password) continue;
      const id = Agent.refId(peer.password);
      if (next.has(id)) continue;
      if (source === null) {
        next.set(id, { error: `${refText(peer.password)}: this agent has no source of Secrets` });
        continue;
      }
      try {
        next.set(id, { value: await source.read(peer.password) });
      } catch (error) {
        next.set(id, { error: errorText(error) });
      }
    }
    const changed = next.size !== this.passwords.size || [...next].some(([id, got]) => JSON.stringify(got) !== JSON.stringify(this.passwords.get(id)));
    if (changed) {
      for (const [id, got] of next) {
        const before = this.passwords.get(id);
        if ('error' in got && (!before || !('error' in before) || before.error !== got.error)) this.log.warn({ secret: id, reason: got.error }, 'BGP password unavailable: the sessions that use it are not started');
        else if ('value' in got && before !== undefined) this.log.info({ secret: id }, 'BGP password changed: re-keying the sessions that use it');
      }
      this.tcpCountersBase = this.tcpCounters();
    }
    this.passwords = next;
    return changed;
  }

  /** A Secret may have changed: re-read the passwords in use; re-plan (re-key only those peers) if one did. */
  private async refreshPasswords(): Promise<void> {
    const plan = this.plan;
    if (!plan || this.stopping || !plan.peers.some((p) => p.password)) return;
    if (await this.resolvePasswords(plan.peers)) this.scheduleReplan();
  }

  private tcpCounters(): TcpSecurityCounters {
    let text: string | null = null;
    try {
      text = this.deps.readNetstat ? this.deps.readNetstat() : readFileSync('/proc/net/netstat', 'utf8');
    } catch {
      text = null;
    }
    return text === null ? {} : parseTcpSecurityCounters(text);
  }

  /** What the kernel dropped (TCP-MD5, GTSM) since the password sessions were last configured, in words. */
  private kernelFindings(): string[] {
    if (!this.plan?.peers.some((p) => p.password || p.ttlSecurity)) return [];
    return formatTcpSecurityFindings(diagnoseTcpSecurity(this.tcpCountersBase, this.tcpCounters()));
  }

  // ---- the kernel dataplane (felix) ---------------------------------------------------------------------

  private startDataplane(): void {
    if (this.config.dataplane !== 'kernel') return;
    const options = {
      log: this.log.child({ component: 'felix' }),
      resyncMs: this.config.routeRefreshMs,
      tunl0: { standIn: this.config.tunl0StandIn },
    };
    // A missing program is named with its package once at startup (felix's own errors say it again per run).
    if (!this.deps.createDataplane) {
      for (const problem of missingPrograms(['ip', 'nft', 'sh'])) this.log.error({ problem }, `felix cannot program the kernel: ${problem}`);
    }
    this.dataplane = this.deps.createDataplane
      ? this.deps.createDataplane(options)
      : new FelixDataplane({ ...options, kernel: new Iproute2Kernel(), reconnect: () => new Iproute2Kernel(), nft: new Nft(), sysctl: procSysIo() });
    this.dataplane.start();
    const policyDataplane = this.deps.createPolicyDataplane ? this.deps.createPolicyDataplane() : this.deps.createDataplane ? null : new PolicyDataplane(new Nft());
    if (policyDataplane !== null) {
      this.policy = new PolicyEnforcer({ dataplane: policyDataplane, node: this.config.nodeName, log: this.log.child({ component: 'policy' }), resyncMs: this.config.routeRefreshMs });
    }
  }

  /** NetworkPolicy: the cache's policies, namespaces, workloads and nodes to this node's nftables filter. */
  private updatePolicy(): void {
    const cache = this.cache;
    if (this.policy === null || cache === null || this.stopping) return;
    this.policy.update({ policies: cache.list('NetworkPolicy'), namespaces: cache.list('Namespace'), workloadEndpoints: cache.list('WorkloadEndpoint'), nodes: cache.list('Node') });
  }

  /**
   * Felix may delete last run's remote routes only when BGP has re-learned what it will: the Speaker is
   * ready AND every planned peer has sent its End-of-RIB. The Speaker's own readiness waits only briefly
   * for peers that are not up yet (its deferral is about *sending*); a passive session toward a peer
   * whose connect-retry timer is still running can come up seconds later, and deleting that peer's
   * routes meanwhile would blackhole its pods. Capped by the deferral timer set when the Speaker starts.
   */
  private settleDataplaneIfDone(): void {
    if (this.dataplane === null || !this.speakerReady) return;
    const peers = this.plan?.peers ?? [];
    if (!peers.every((p) => this.endOfRibFrom.has(p.address))) return;
    if (this.settleTimer !== null) clearTimeout(this.settleTimer);
    this.settleTimer = null;
    this.dataplane.bgpSettled();
  }

  /** Loc-RIB changes arrive per UPDATE: one recalculation per turn of the event loop is plenty. */
  private scheduleDataplaneUpdate(): void {
    if (this.dataplane === null || this.dataplaneUpdate !== null || this.stopping) return;
    this.dataplaneUpdate = setImmediate(() => {
      this.dataplaneUpdate = null;
      this.contained('updating the kernel routes', () => this.updateDataplane());
    });
  }

  /** The node's view for felix: this node, pools, our blocks, our workloads, the BGP best routes. */
  private updateDataplane(): void {
    const dataplane = this.dataplane;
    const cache = this.cache;
    if (dataplane === null || cache === null || this.ip === null || this.stopping) return;
    const name = this.config.nodeName;
    const pools = cache
      .list('IPPool')
      .filter((p) => !p.spec.cidr.includes(':'))
      .map((p) => ({ cidr: p.spec.cidr, ipipMode: p.spec.ipipMode ?? 'Never', vxlanMode: p.spec.vxlanMode ?? 'Never', disabled: p.spec.disabled ?? false, natOutgoing: p.spec.natOutgoing ?? false }));
    const workloads: DataplaneInput['workloads'] = [];
    for (const wep of cache.list('WorkloadEndpoint')) {
      if (wep.spec.node !== name) continue;
      for (const network of wep.spec.ipNetworks) {
        if (network.includes(':')) continue;
        workloads.push({
          ip: network,
          ...(wep.spec.interfaceName ? { interfaceName: wep.spec.interfaceName } : {}),
          namespace: wep.metadata.namespace ?? 'default',
          pod: wep.spec.pod ?? wep.spec.workload ?? wep.metadata.name,
        });
      }
    }
    const bgpRoutes: DataplaneInput['bgpRoutes'] = [];
    for (const row of this.bgpRows()) if (row.from !== 'local' && row.nextHop !== null) bgpRoutes.push({ prefix: row.prefix, nextHop: row.nextHop });
    const tunnelAddress = cache.list('Node').find((n) => n.metadata.name === name)?.spec.bgp?.ipv4IPIPTunnelAddr;
    const hostMtu = this.hostInterface !== null ? (this.deps.interfaceMtu ?? readInterfaceMtu)(this.hostInterface) : undefined;
    dataplane.update({
      node: { ip: `${this.ip.address}/${this.ip.prefixLength}`, hostInterface: this.hostInterface ?? '' },
      pools,
      localBlocks: affineBlocks({ nodeName: name, blocks: cache.list('IPAMBlock'), affinities: cache.list('BlockAffinity') }).map(formatPrefix),
      workloads,
      bgpRoutes,
      // No pod speaks BGP as its node (felix/bgp-guard.ts); TORTIE_BGP_PORT_GUARD=false turns it off.
      bgpGuard: this.config.bgpPortGuard
        ? { nodeAddresses: cache.list('Node').flatMap((n) => (n.spec.bgp?.ipv4Address !== undefined ? [n.spec.bgp.ipv4Address] : [])) }
        : null,
      tunnel: {
        ...(tunnelAddress !== undefined ? { address: tunnelAddress } : {}),
        ...(this.config.ipipMtu !== undefined ? { mtu: this.config.ipipMtu } : {}),
        ...(hostMtu !== undefined ? { hostMtu } : {}),
      },
    });
  }

  /** A pool switched to IPIP while we run: allocate our tunnel address now, not at the next restart. */
  private ensureTunnelAddressLive(): void {
    const cache = this.cache;
    if (cache === null || this.tunnelAddressRunning || this.stopping) return;
    const node = cache.list('Node').find((n) => n.metadata.name === this.config.nodeName);
    if (!node || node.spec.bgp?.ipv4IPIPTunnelAddr !== undefined) return;
    if (this.ipipPoolsFor(cache.list('IPPool'), node.metadata.labels ?? {}).length === 0) return;
    this.tunnelAddressRunning = true;
    void this.ensureTunnelAddress()
      .catch((error: unknown) => this.log.warn({ err: errorText(error) }, 'could not allocate the IPIP tunnel address; trying again on the next change'))
      .finally(() => (this.tunnelAddressRunning = false));
  }

  /** The CNI plugin finds the node's name here (Calico: /var/lib/calico/nodename). Best effort. */
  private async writeNodename(): Promise<void> {
    const file = `${dirname(this.config.ctlSocket)}/nodename`;
    try {
      await mkdir(dirname(file), { recursive: true });
      await writeFile(file, `${this.config.nodeName}\n`);
    } catch (error) {
      this.log.warn({ file, err: errorText(error) }, 'could not write the node name for the CNI plugin');
    }
  }

  private applyLogLevel(configs: ReadonlyArray<Resource<'BGPConfiguration'>>): void {
    if (this.logLevelFromEnv) return;
    const severity = configs.find((c) => c.metadata.name === `node.${this.config.nodeName}`)?.spec.logSeverityScreen ?? configs.find((c) => c.metadata.name === 'default')?.spec.logSeverityScreen;
    const level = levelOfSeverity(severity);
    if (this.log.level !== level) {
      this.log.info({ level }, 'log level from BGPConfiguration logSeverityScreen');
      this.log.level = level;
    }
  }

  /** The same function object while the pools that shape it are the same (Speaker compares hooks by identity). */
  private exportFilterFor(pools: Array<Resource<'IPPool'>>): PeerSpec['exportFilter'] {
    const key = JSON.stringify(pools.map((p) => [p.metadata.name, p.spec.cidr, p.spec.disabled ?? false, p.spec.disableBGPExport ?? false]).sort());
    if (this.exportFilterCache?.key === key) return this.exportFilterCache.filter;
    const allowed = calicoExportFilter(pools);
    const filter: PeerSpec['exportFilter'] = (route) => (allowed(route.prefix) ? route : null);
    this.exportFilterCache = { key, filter };
    return filter;
  }

  /** A Speaker with a new identity; an old one is stopped as a graceful restart (see header). */
  private async replaceSpeaker(identity: SpeakerIdentity): Promise<void> {
    const old = this.speaker;
    const oldTracker = this.tracker;
    if (old) {
      this.log.info({ from: this.identity, to: identity }, 'BGP identity changed: restarting the speaker gracefully');
      this.retained = old.bestRoutes();
      oldTracker?.dropAll();
      await old.stop();
    }
    const tracker = new ConnectionTracker();
    const config: SpeakerConfig = {
      routerId: parseIpv4(identity.routerId, 'router id'),
      localAs: identity.localAs,
      listen: { address: identity.listenAddress, port: identity.listenPort },
      ...(identity.clusterId !== null ? { clusterId: parseIpv4(identity.clusterId, 'routeReflectorClusterID') } : {}),
      gracefulRestart: { restartTime: GRACEFUL_RESTART.restartTime, restarting: true, deferralMs: GRACEFUL_RESTART.deferralMs },
      connectRetryMs: this.deps.connectRetryMs ?? 2000,
      ...(this.config.maxPrefixes !== undefined ? { maxPrefixes: this.config.maxPrefixes } : {}),
      transport: tracker.transport,
      acceptor: tracker.acceptor,
      logger: this.log.child({ component: 'bgp' }),
      importJudge: this.importJudge,
    };
    const speaker = (this.deps.createSpeaker ?? ((c) => new Speaker(c)))(config);
    // The Speaker calls these from inside its sessions: a throw here must not reach them (see header).
    speaker.on('state', (event) =>
      this.contained('a BGP session state change', () => {
        if (event.to === 'Established') this.everEstablished.add(event.peer);
        this.log.info({ peer: event.peer, from: event.from, to: event.to, ...(event.reason ? { reason: event.reason } : {}) }, 'BGP session state');
        this.observeSessions();
      }),
    );
    speaker.on('ready', () =>
      this.contained('the BGP speaker becoming ready', () => {
        if (this.retained) this.log.info('graceful restart complete: routes re-learned');
        this.retained = null;
        this.speakerReady = true;
        this.settleDataplaneIfDone();
        this.scheduleDataplaneUpdate();
      }),
    );
    speaker.on('endOfRib', (event) =>
      this.contained('an End-of-RIB', () => {
        this.endOfRibFrom.add(event.peer);
        this.settleDataplaneIfDone();
      }),
    );
    speaker.on('update', () => this.contained('a BGP update', () => this.scheduleDataplaneUpdate()));
    speaker.on('refused', (event) => this.contained('an import refusal', () => this.onRefused(event)));
    this.refusalsLogged.clear();
    this.everEstablished.clear();
    this.endOfRibFrom.clear();
    this.speakerReady = false;
    // Felix's retention after a start ends at the latest with the selection deferral (a peer that never
    // comes back must not keep a dead node's routes forever).
    if (this.settleTimer === null && this.dataplane !== null) {
      this.settleTimer = setTimeout(() => {
        this.log.info('BGP did not settle within the graceful-restart deferral: routes no longer wanted may go now');
        this.contained('settling the kernel routes', () => this.dataplane?.bgpSettled());
      }, GRACEFUL_RESTART.deferralMs);
      this.settleTimer.unref?.();
    }
    this.speaker = speaker;
    this.tracker = tracker;
    this.identity = identity;
    try {
      await speaker.start();
    } catch (error) {
      // Not listening (address in use...): forget the identity so the next change or resync tries again.
      this.identity = null;
      this.warnings.add(`BGP speaker: ${errorText(error)}`);
      throw error;
    }
  }

  /**
   * Runs work started by an event or a timer (nobody awaits it): a throw is logged and kept as the last
   * error instead of reaching the process; the next change or resync runs the work again.
   */
  private contained(what: string, action: () => void): void {
    try {
      action();
    } catch (error) {
      this.lastError = `${what} failed: ${errorText(error)}`;
      this.log.error({ err: errorText(error), during: what }, 'agent: a step failed; the next change tries again');
    }
  }

  /** On every session state change: only what the metrics need, not the whole status (no per-route scan). */
  private observeSessions(): void {
    const peers = this.speaker?.peerStatus({ routeDetail: false }) ?? [];
    this.metrics.observeSessions(
      peers.map((p) => ({ address: p.address, bgpState: p.state, routesReceived: p.routesReceived, routesAdvertised: p.routesAdvertised })),
    );
  }
}

/**
 * The control plane's IPv4 addresses for import protection: the etcd endpoints (etcdv3) or the Kubernetes
 * API server of the kubeconfig (kubernetes), plus KUBERNETES_SERVICE_HOST; host names resolved once, here.
 * A name that does not resolve is logged and left out (the agent still starts).
 */
async function controlPlaneAddresses(config: DatastoreConfig, env: NodeJS.ProcessEnv, log: Logger): Promise<string[]> {
  const urls = [...(config.datastoreType === 'etcdv3' ? config.etcdEndpoints : [])];
  if (config.datastoreType === 'kubernetes') {
    try {
      const { kubeClient } = await import('../datastore/kube-client.js');
      urls.push(kubeClient(config.kubeconfig, config.timeoutMs).server);
    } catch (error) {
      log.warn({ err: errorText(error) }, 'import protection: the Kubernetes API server address is unknown');
    }
  }
  const hosts = urls.map((url) => {
    try {
      return new URL(url).hostname.replace(/^\[|\]$/g, '');
    } catch {
      return '';
    }
  });
  if (env.KUBERNETES_SERVICE_HOST) hosts.push(env.KUBERNETES_SERVICE_HOST.trim());
  const { lookup } = await import('node:dns/promises');
  const out = new Set<string>();
  for (const host of hosts) {
    if (host === '' || host.includes(':')) continue;
    if (/^[0-9.]+$/.test(host)) {
      out.add(host);
      continue;
    }
    try {
      for (const found of await lookup(host, { all: true, family: 4 })) out.add(found.address);
    } catch (error) {
      log.warn({ host, err: errorText(error) }, 'import protection: a control-plane host name does not resolve; routes to it are not guarded');
    }
  }
  return [...out];
}

/**
 * `tortie node run`: configuration from `env`, the datastore, the agent in the foreground until SIGTERM or
 * SIGINT. Resolves to the exit status: 0 after a clean stop, 1 when configuration or startup fails.
 */
export async function runNode(env: NodeJS.ProcessEnv, options: { logger?: Logger; signals?: boolean } = {}): Promise<number> {
  const { createLogger } = await import('../log.js');
  let config: AgentConfig;
  try {
    config = parseAgentConfig(env, hostname());
  } catch (error) {
    process.stderr.write(`tortie node run: ${errorText(error)}\n`);
    return 1;
  }
  const log = options.logger ?? createLogger({ level: config.logLevel ?? 'info' });
  // A fatal error before the agent exists has nothing to stop (src/fatal.ts logs it and exits 1).
  if (options.signals !== false) setCrashPath({ log, shutdown: async () => undefined });
  const { loadDatastoreConfig, openDatastore, describeDatastore } = await import('../datastore/index.js');
  let ds: Datastore;
  let secrets: SecretSource | null = null;
  let where = 'the datastore';
  let dsConfig: DatastoreConfig;
  try {
    dsConfig = await loadDatastoreConfig(env);
    // BGP passwords: Secrets through the API (kubernetes) or mounted Secret files (etcd; src/agent/secrets.ts).
    const { secretSourceFor } = await import('./secrets.js');
    secrets = await secretSourceFor(dsConfig, env).catch((error: unknown) => {
      log.warn({ err: errorText(error) }, 'BGP passwords: no source of Secrets; peers with a password are not started');
      return null;
    });
    where = describeDatastore(dsConfig);
    // WAIT_FOR_DATASTORE: keep trying to open it too (one second apart, bounded like the agent's own wait).
    for (let attempt = 1; ; attempt++) {
      try {
        ds = await openDatastore(dsConfig);
        break;
      } catch (error) {
        if (!config.waitForDatastore || attempt >= WAIT_ATTEMPTS) throw error;
        if (attempt === 1) log.warn({ err: errorText(error) }, 'waiting for the datastore (WAIT_FOR_DATASTORE)');
        await new Promise((resolve) => setTimeout(resolve, 1000));
      }
    }
  } catch (error) {
    const message = errorText(error);
    process.stderr.write(`tortie node run: ${message.includes(where) ? '' : `${where}: `}${message}\n`);
    return 1;
  }
  let stopSignal: (graceful: boolean) => void = () => undefined;
  const stopped = new Promise<boolean>((resolve) => (stopSignal = resolve));
  const controlPlane = await controlPlaneAddresses(dsConfig, env, log);
  const agent = new Agent(config, { datastore: ds, logger: log, secrets, onStopRequest: (graceful) => stopSignal(graceful), controlPlane });
  // A fatal error (an unhandled rejection or exception, src/fatal.ts): the graceful stop, not SIGTERM's
  // Cease — peers keep our routes and the kernel keeps its routes until the agent is back.
  if (options.signals !== false) {
    setCrashPath({
      log,
      shutdown: async () => {
        await agent.stop({ graceful: true });
        await ds.close().catch(() => undefined);
      },
    });
  }
  const onSignal = (signal: string): void => {
    log.info({ signal }, 'stopping');
    stopSignal(false);
  };
  if (options.signals !== false) {
    process.once('SIGTERM', () => onSignal('SIGTERM'));
    process.once('SIGINT', () => onSignal('SIGINT'));
  }
  try {
    await agent.start();
  } catch (error) {
    process.stderr.write(`tortie node run: ${errorText(error)}\n`);
    await ds.close().catch(() => undefined);
    return 1;
  }
  // The CNI plugin's own token (TORTIE_CNI_KUBECONFIG, kubernetes datastore), refreshed before it expires.
  const { startCniToken } = await import('./cni-token.js');
  const cniToken = await startCniToken(dsConfig, env, (level, message, fields) => log[level](fields ?? {}, message)).catch((error: unknown) => {
    log.error({ err: errorText(error) }, 'CNI plugin token: not managed');
    return null;
  });
  const graceful = await stopped;
  cniToken?.stop();
  await agent.stop({ graceful });
  await ds.close().catch(() => undefined);
  log.info('stopped');
  return 0;
}
