// The plugin's commands on injected I/O: stdin and the CNI_* environment in, the spec's JSON and an exit
// code out. ADD assigns an address (IPAM handle per container), plumbs the veth (./dataplane.ts) and
// records the workload (./endpoint.ts); DEL undoes all three; CHECK verifies them; STATUS says whether
// ADD could work; GC releases what the runtime no longer knows (./gc.ts: only what was assigned on this
// node, by its `node` attribute or, for an address without one, by this node's endpoint of the same
// container) and deletes those endpoints; VERSION lists the spec versions. ADD records who each address
// is for in the IPAM block, as Calico's plugin does (node, namespace, pod, timestamp;
// src/ipam/attributes.ts).
//
// Why this is hard:
// - Failure must leave nothing: an ADD that fails after the address was assigned releases it (by handle),
//   and one that fails after the veth exists removes it, whatever failed (the runtime may never call DEL).
// - Retries must converge: a second ADD of the same container finds its handle's address and returns it
//   (and rebuilds the veth); DEL succeeds when the namespace, the veth, the record or the address are
//   already gone, and never removes a newer sandbox's record (./endpoint.ts).
// - The runtime acts on error codes: an unreachable datastore is 11 ("try again later"), not a generic
//   failure; a bad configuration is 7 or 2 and says which field.

import { dirname, join } from 'node:path';
import type { Logger } from '../../bgp/log.js';
import type { Ipam } from '../ipam/index.js';
import { withHostLock } from './host-lock.js';
import { ATTRIBUTE_KEYS, calicoTimestamp } from '../ipam/attributes.js';
import { addressOf, ordinalsOfHandle } from '../ipam/block.js';
import { blockName } from '../resources/ipam-names.js';
import type { Datastore } from '../datastore/types.js';
import type { Resource } from '../resources/types.js';
import { planGc, type KeptAllocation } from './gc.js';
import { datastoreError } from './datastore.js';
import type { PodNetwork, VethPlan } from './dataplane.js';
import { POD_GATEWAY } from './dataplane.js';
import type { EndpointRecorder } from './endpoint.js';
import { HOST_VETH_MAC, handleId, hostVethName, podMac, type WorkloadIdentity } from './names.js';
import { CNI_VERSIONS, COMMANDS, CniError, LATEST_VERSION, parseEnv, type CniEnv } from './spec.js';
import { formatError, formatResult, formatVersionInfo, mergeResults, type CniResult } from './result.js';
import { parseNetConf, parseVersionField, type NetConf } from './netconf.js';

/** Where the agent writes its node name at start (the plugin's fallback after `nodename` and NODENAME). */
export const DEFAULT_NODENAME_FILE = '/var/run/tortie/nodename';
/** The MTU base when the host has no default route to measure. */
export const FALLBACK_HOST_MTU = 1500;
/** Encapsulation overheads (Calico felix's auto MTU): IP-in-IP adds a 20-byte header, VXLAN 50. */
export const ENCAP_OVERHEAD = { ipip: 20, vxlan: 50 } as const;

/** The plugin's log: the project's one Logger interface (main.ts writes it as CNI JSON lines). */
export type CniLog = Logger;

/** The veth work, as ./dataplane.ts's PodNetwork does it (tests pass a fake). */
export type Network = Pick<PodNetwork, 'setup' | 'removeHostVeth' | 'removePodInterface' | 'check' | 'defaultRouteMtu'>;

export interface PluginIo {
  env: Readonly<Record<string, string | undefined>>;
  openDatastore(conf: NetConf): Promise<Datastore>;
  openRecorder(conf: NetConf, ds: Datastore): Promise<EndpointRecorder>;
  network(conf: NetConf): Network;
  readFile(path: string): Promise<string>;
  pathExists(path: string): Promise<boolean>;
  hostname(): string;
  randomBytes(n: number): Uint8Array;
  /** Milliseconds, for the timings logged at debug level. */
  now(): number;
  /** The time of day, for the `timestamp` attribute of an assigned address. */
  wallClock(): Date;
  /** Log sink for this configuration (level and file from `log_level` / `log_file_path`). */
  logFor(conf: NetConf | undefined): CniLog;
}

export interface PluginOutput {
  exitCode: number;
  /** Exactly what goes to stdout (the result, the error JSON, or nothing). */
  stdout: string;
}

/** Runs one plugin invocation. Never rejects: every failure becomes the spec's error JSON. */
export async function runPlugin(stdin: string, io: PluginIo): Promise<PluginOutput> {
  let conf: NetConf | undefined;
  let log = io.logFor(undefined);
  try {
    const env = parseEnv(io.env);
    if (env.command === 'VERSION') return { exitCode: 0, stdout: JSON.stringify(formatVersionInfo()) + '\n' };
    conf = parseNetConf(stdin);
    log = io.logFor(conf);
    const row = CNI_VERSIONS[conf.cniVersion]!;
    if (!COMMANDS[env.command].inVersion(row)) {
      throw new CniError(
        'incompatibleVersion',
        `${env.command} is not part of CNI ${conf.cniVersion}; it needs cniVersion ${env.command === 'CHECK' ? '0.4.0' : '1.1.0'} or later`,
      );
    }
    const started = io.now();
    const out = await COMMAND_HANDLERS[env.command](new Invocation(conf, env, io, log));
    log.info({ containerId: env.containerId, ms: Math.round(io.now() - started) }, `${env.command} done`);
    return { exitCode: 0, stdout: out === undefined ? '' : JSON.stringify(out) + '\n' };
  } catch (err) {
    const error =
      err instanceof CniError
        ? err
        : (datastoreError(err, 'datastore') ??
          new CniError('internal', err instanceof Error ? err.message : String(err)));
    const version = conf?.cniVersion ?? supportedOr(parseVersionField(stdin));
    log.error({ code: error.code, command: io.env.CNI_COMMAND, containerId: io.env.CNI_CONTAINERID }, error.message);
    return { exitCode: 1, stdout: JSON.stringify(formatError(version, error)) + '\n' };
  }
}

function supportedOr(version: string | undefined): string {
  return version !== undefined && Object.hasOwn(CNI_VERSIONS, version) ? version : LATEST_VERSION;
}

type Handler = (call: Invocation) => Promise<Record<string, unknown> | undefined>;

const COMMAND_HANDLERS: Readonly<Record<CniEnv['command'], Handler>> = {
  ADD: (call) => call.add(),
  DEL: (call) => call.del().then(() => undefined),
  CHECK: (call) => call.check().then(() => undefined),
  STATUS: (call) => call.status().then(() => undefined),
  GC: (call) => call.gc().then(() => undefined),
  VERSION: () => Promise.resolve(formatVersionInfo()),
};

/** The IPAM module, loaded on first use (it pulls in the resources module: not needed for VERSION). */
function loadIpam(): Promise<typeof import('../ipam/index.js')> {
  return import('../ipam/index.js');
}

/** One command's state: configuration, environment, the datastore once asked for, timings. */
class Invocation {
  /** The datastore being opened or open: asked for once, and closed by close() even when a step failed first. */
  private opening: Promise<Datastore> | undefined;
  /** The IPPools, listed once per invocation (IPAM, ipv4_pools and the MTU all use the same list). */
  private poolList: Promise<Array<Resource<'IPPool'>>> | undefined;
  private readonly timings: Record<string, number> = {};

  constructor(
    readonly conf: NetConf,
    readonly env: CniEnv,
    readonly io: PluginIo,
    readonly log: CniLog,
  ) {}

  private async timed<T>(step: string, fn: () => Promise<T>): Promise<T> {
    const t0 = this.io.now();
    try {
      return await fn();
    } finally {
      this.timings[step] = Math.round((this.io.now() - t0) * 10) / 10;
    }
  }

  /** Runs `fn`, turning datastore failures into CNI errors that say what was being done. */
  private async datastoreStep<T>(what: string, fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      throw datastoreError(err, what) ?? err;
    }
  }

  /**
   * The datastore, opened on first call. Callers may start it early and await it later (it only reads: the
   * connection check), so the rejection is marked handled here and reaches whoever awaits it.
   */
  private datastore(): Promise<Datastore> {
    if (!this.opening) {
      this.opening = this.timed('datastore', () =>
        this.datastoreStep(`opening the ${this.conf.datastoreType} datastore`, () => this.io.openDatastore(this.conf)),
      );
      this.opening.catch(() => undefined);
    }
    return this.opening;
  }

  /** The workload recorder, once the datastore is open (its module loads meanwhile). */
  private recorder(): Promise<EndpointRecorder> {
    const recorder = this.datastore().then((ds) => this.io.openRecorder(this.conf, ds));
    recorder.catch(() => undefined);
    return recorder;
  }

  /** The IPPools, listed on first call (a read: callers may start it early; the rejection reaches whoever awaits). */
  private pools(): Promise<Array<Resource<'IPPool'>>> {
    if (!this.poolList) {
      this.poolList = this.datastore()
        .then((ds) => this.datastoreStep('listing IPPools', () => ds.list('IPPool')))
        .then((l) => l.items);
      this.poolList.catch(() => undefined);
    }
    return this.poolList;
  }

  async close(): Promise<void> {
    const ds = await this.opening?.catch(() => undefined);
    await ds?.close().catch(() => undefined);
  }

  /** The node this plugin runs on: `nodename`, else NODENAME, else the agent's file, else the hostname. */
  async nodeName(): Promise<string> {
    if (this.conf.nodename !== undefined) return this.conf.nodename;
    const fromEnv = this.io.env.NODENAME?.trim();
    if (fromEnv) return fromEnv;
    const file = this.conf.nodenameFile ?? DEFAULT_NODENAME_FILE;
    try {
      const name = (await this.io.readFile(file)).trim();
      if (name !== '') return name;
    } catch (err) {
      const code = (err as { code?: unknown }).code;
      if (code !== 'ENOENT')
        this.log.warn({}, `cannot read ${file} (${String(code ?? err)}); using the hostname as the node name`);
    }
    return this.io.hostname();
  }

  private async identity(): Promise<WorkloadIdentity> {
    return {
      node: await this.nodeName(),
      containerId: this.env.containerId!,
      ifname: this.env.ifname!,
      ...(this.env.pod ? { pod: this.env.pod } : {}),
    };
  }

  private handle(): string {
    return handleId(this.conf.name, this.env.containerId!);
  }

  // -------------------------------------------------------------------------------------------------------

  async add(): Promise<Record<string, unknown>> {
    try {
      return await this.addOnce();
    } finally {
      await this.close();
      this.log.debug(this.timings, 'ADD timings (ms)');
    }
  }

  private async addOnce(): Promise<Record<string, unknown>> {
    const netns = this.env.netns!;
    if (!(await this.io.pathExists(netns))) {
      throw new CniError(
        'unknownContainer',
        `CNI_NETNS: the network namespace ${netns} does not exist (is the container still running?)`,
      );
    }
    if (this.conf.datastoreType === 'kubernetes' && !this.env.pod) {
      throw new CniError(
        'invalidEnvironment',
        'CNI_ARGS: datastore_type "kubernetes" needs K8S_POD_NAMESPACE and K8S_POD_NAME (the Pod to annotate); the runtime sets them for Kubernetes pods',
      );
    }
    const network = this.io.network(this.conf);
    // The host MTU needs an `ip` process: started now, it runs while the datastore client loads. The
    // recorder's module loads meanwhile too.
    const hostMtu = this.conf.mtu === undefined ? network.defaultRouteMtu().catch(() => null) : Promise.resolve(null);
    const recorder = this.recorder();
    const [id, ds, { Ipam }] = await Promise.all([this.identity(), this.datastore(), loadIpam()]);
    const ipam = new Ipam(ds);
    // One assign at a time on this host (host-lock.ts): parallel ADDs on a node without room must not each
    // claim a block. Keyed by node, so the lab's nodes (one host) do not wait for each other. The pools are
    // listed once, inside the lock, beside IPAM's first read; the MTU uses the same list.
    const lockFile = join(dirname(this.conf.nodenameFile ?? DEFAULT_NODENAME_FILE), `ipam-${id.node}.lock`);
    const { result: address, locked } = await this.timed('ipam', () =>
      withHostLock(lockFile, () => this.assign(ipam, id)),
    );
    if (!locked) this.log.warn({}, `assigned without the host IPAM lock ${lockFile} (timed out or not writable)`);
    const hostIf = hostVethName(id);
    const plan: VethPlan = { hostIf, podIf: id.ifname, netns, address, mtu: 0, podMac: podMac(this.io.randomBytes(6)) };
    let vethMade = false;
    try {
      plan.mtu = this.conf.mtu ?? (await this.timed('mtu', () => this.chooseMtu(this.pools(), hostMtu)));
      await this.timed('dataplane', () => network.setup(plan));
      vethMade = true;
      const record = await recorder;
      await this.timed('record', () =>
        this.datastoreStep(
          `recording the workload ${id.pod ? `${id.pod.namespace}/${id.pod.name}` : id.containerId}`,
          () => record.record({ id, hostIf, mac: plan.podMac, ipNetworks: [`${address}/32`], network: this.conf.name }),
        ),
      );
    } catch (err) {
      // Leave nothing behind: the veth (if made), then the address.
      if (vethMade)
        await network.removeHostVeth(hostIf).catch((e: unknown) => this.log.error({}, `rollback: ${String(e)}`));
      await ipam
        .releaseByHandle(this.handle())
        .catch((e: unknown) => this.log.error({}, `rollback: releasing ${this.handle()} failed: ${String(e)}`));
      throw err;
    }
    const ours: CniResult = {
      interfaces: [
        { name: hostIf, mac: HOST_VETH_MAC },
        { name: id.ifname, mac: plan.podMac, sandbox: netns, mtu: plan.mtu },
      ],
      ips: [{ address: `${address}/32`, interface: 1 }],
      routes: [{ dst: '0.0.0.0/0', gw: POD_GATEWAY }],
      dns: {},
    };
    return formatResult(this.conf.cniVersion, mergeResults(this.conf.prevResult, ours));
  }

  /**
   * One address for this container's handle, from `ipam.ipv4_pools` in order (or any pool), recording
   * who it is for as Calico's plugin does: node (IPAM adds it), the pod's namespace and name, the time.
   */
  private async assign(ipam: Ipam, id: WorkloadIdentity): Promise<string> {
    const node = id.node;
    const handle = this.handle();
    const listed = this.pools();
    const { IpamExhaustedError } = await loadIpam();
    const pools = this.conf.ipv4Pools.length > 0 ? await this.poolNames() : [undefined];
    const attributes: Record<string, string> = {
      ...(id.pod ? { [ATTRIBUTE_KEYS.namespace]: id.pod.namespace, [ATTRIBUTE_KEYS.pod]: id.pod.name } : {}),
      [ATTRIBUTE_KEYS.timestamp]: calicoTimestamp(this.io.wallClock()),
    };
    let exhausted: Error | undefined;
    for (const pool of pools) {
      try {
        const [ip] = await this.datastoreStep(`assigning an address to ${handle}`, () =>
          ipam.assign(node, handle, {
            use: 'Workload',
            attributes,
            pools: listed,
            ...(pool !== undefined ? { pool } : {}),
            ...(id.pod ? { namespace: id.pod.namespace } : {}),
          }),
        );
        if (ip !== undefined) return ip;
      } catch (err) {
        if (!(err instanceof IpamExhaustedError)) throw err;
        exhausted = err;
      }
    }
    throw new CniError('noAddress', `no address for ${handle} on node "${node}": ${exhausted?.message ?? 'no pool'}`);
  }

  /** `ipam.ipv4_pools` entries (names or CIDRs) → pool names; an unknown entry is refused naming it. */
  private async poolNames(): Promise<string[]> {
    const pools = await this.pools();
    return this.conf.ipv4Pools.map((entry, i) => {
      const pool = pools.find((p) => p.metadata.name === entry || p.spec.cidr === entry);
      if (!pool) {
        throw new CniError(
          'invalidConfig',
          `ipam.ipv4_pools[${i}]: no IPPool is named or has the CIDR "${entry}" (pools: ${pools.map((p) => `${p.metadata.name} ${p.spec.cidr}`).join(', ') || 'none'})`,
        );
      }
      return pool.metadata.name;
    });
  }

  /**
   * The veth MTU when the configuration sets none (Calico felix's auto MTU rule): the MTU of the
   * interface the host's default route leaves by (1500 without one), minus 50 when an enabled pool uses
   * VXLAN, else minus 20 when one uses IP-in-IP — the pod's packets may have to fit in a tunnel.
   */
  private async chooseMtu(
    poolList: Promise<Array<Resource<'IPPool'>>>,
    hostMtu: Promise<{ mtu: number } | null>,
  ): Promise<number> {
    const [host, pools] = await Promise.all([hostMtu, poolList]);
    const enabled = pools.filter((p) => !p.spec.disabled);
    const vxlan = enabled.some((p) => (p.spec.vxlanMode ?? 'Never') !== 'Never');
    const ipip = enabled.some((p) => (p.spec.ipipMode ?? 'Never') !== 'Never');
    const base = host?.mtu ?? FALLBACK_HOST_MTU;
    return base - (vxlan ? ENCAP_OVERHEAD.vxlan : ipip ? ENCAP_OVERHEAD.ipip : 0);
  }

  // -------------------------------------------------------------------------------------------------------

  /**
   * Veth (through the namespace), then the record, then the address; each step tolerates "already gone".
   * The datastore opens (a read) and the modules load while `ip` removes the veth; the writes come after.
   */
  async del(): Promise<void> {
    try {
      const network = this.io.network(this.conf);
      const recorder = this.recorder();
      const ipamModule = loadIpam();
      ipamModule.catch(() => undefined);
      if (this.env.netns !== undefined)
        await this.timed('dataplane', () => network.removePodInterface(this.env.netns!, this.env.ifname!));
      const id = await this.identity();
      const ds = await this.datastore();
      const record = await recorder;
      await this.timed('record', () => this.datastoreStep('removing the workload record', () => record.remove(id)));
      const { Ipam } = await ipamModule;
      await this.timed('ipam', () =>
        this.datastoreStep(`releasing ${this.handle()}`, () => new Ipam(ds).releaseByHandle(this.handle())),
      );
    } finally {
      await this.close();
      this.log.debug(this.timings, 'DEL timings (ms)');
    }
  }

  // -------------------------------------------------------------------------------------------------------

  async check(): Promise<void> {
    try {
      if (!this.conf.prevResult)
        throw new CniError(
          'invalidConfig',
          'CHECK needs prevResult (the result of the ADD) in the network configuration',
        );
      const id = await this.identity();
      const ds = await this.datastore();
      const held = await this.datastoreStep(`reading the addresses of ${this.handle()}`, () =>
        addressesOfHandle(ds, this.handle()),
      );
      const address = held[0];
      if (address === undefined) throw new CniError('checkFailed', `no address is assigned to ${this.handle()}`);
      const problems: string[] = [];
      if (!this.conf.prevResult.ips.some((ip) => ip.address === `${address}/32`)) {
        problems.push(`prevResult does not list ${address}/32, the address assigned to ${this.handle()}`);
      }
      const hostIf = hostVethName(id);
      problems.push(
        ...(await this.io.network(this.conf).check({ hostIf, podIf: id.ifname, netns: this.env.netns!, address })),
      );
      const recorder = await this.io.openRecorder(this.conf, ds);
      const recorded = await this.datastoreStep('reading the workload record', () => recorder.find(id));
      if (recorded === null) problems.push('the workload is not recorded in the datastore');
      else {
        if (recorded.containerId !== undefined && recorded.containerId !== id.containerId)
          problems.push(`the workload record belongs to container ${recorded.containerId}`);
        if (!recorded.ipNetworks.includes(`${address}/32`))
          problems.push(
            `the workload record lists ${recorded.ipNetworks.join(', ') || 'no address'}, not ${address}/32`,
          );
      }
      if (problems.length > 0) throw new CniError('checkFailed', problems.join('; '));
    } finally {
      await this.close();
    }
  }

  // -------------------------------------------------------------------------------------------------------

  /** Ready when the datastore answers and an enabled pool can give pods addresses. */
  async status(): Promise<void> {
    try {
      let pools;
      try {
        const ds = await this.datastore();
        pools = (await this.datastoreStep('listing IPPools', () => ds.list('IPPool'))).items;
      } catch (err) {
        throw new CniError('notAvailable', err instanceof Error ? err.message : String(err));
      }
      const usable = pools.filter(
        (p) => !p.spec.disabled && (p.spec.allowedUses === undefined || p.spec.allowedUses.includes('Workload')),
      );
      if (usable.length === 0)
        throw new CniError(
          'notAvailable',
          'no enabled IPPool for workloads: pods cannot get addresses until one exists (the agent creates one at first start unless NO_DEFAULT_POOLS is set)',
        );
    } finally {
      await this.close();
    }
  }

  /**
   * Releases this network's addresses assigned on this node (their `node` attribute; ./gc.ts) whose
   * container is not among the runtime's valid attachments, then (etcd) deletes this node's
   * WorkloadEndpoints of such containers. An address without attributes is released only when one of
   * those endpoints (same container, same address) proves it this node's; the rest without attributes,
   * other nodes' allocations and tunnel addresses are kept; the unattributed ones are said once in the log.
   * Addresses first, endpoints after: a GC that stops between them finds the same proof next time.
   */
  async gc(): Promise<void> {
    try {
      const valid = new Set((this.conf.validAttachments ?? []).map((a) => a.containerId));
      const node = await this.nodeName();
      const ds = await this.datastore();
      // On kubernetes the endpoints are derived from Pods, which GC does not delete: none are listed, so
      // none is deleted and none proves an unattributed address (./gc.ts).
      const noEndpoints: Array<Resource<'WorkloadEndpoint'>> = [];
      const [listed, endpoints] = await Promise.all([
        this.datastoreStep('listing IPAM blocks', () => ds.list('IPAMBlock')).then((l) => l.items),
        ds.type === 'kubernetes'
          ? noEndpoints
          : this.datastoreStep('listing WorkloadEndpoints', () => ds.list('WorkloadEndpoint')).then((l) => l.items),
      ]);
      const plan = planGc(listed, node, this.conf.name, valid, endpoints);
      if (plan.unattributed.length > 0) {
        this.log.warn(
          {
            node,
            kept: plan.unattributed.length,
          },
          `GC kept ${plan.unattributed.length} address(es) of network "${this.conf.name}" whose allocation has no "node" attribute (assigned before tortie recorded who an address is for) and that no WorkloadEndpoint of this node and the same container names, so they cannot be told apart from other nodes' pods: ${listKept(plan.unattributed)}; they stay allocated until a DEL of their container, or \`tortie delete node\` of their node, releases them`,
        );
      }
      if (plan.otherNodes.length > 0)
        this.log.debug(
          {},
          `GC left ${plan.otherNodes.length} address(es) assigned on other nodes alone: ${listKept(plan.otherNodes)}`,
        );
      const proven = new Map(plan.proven.map((p) => [`${p.handle} ${p.ip}`, p.endpoint]));
      const { Ipam } = await loadIpam();
      const ipam = new Ipam(ds);
      for (const { block, refs, ips } of plan.release) {
        const freed = await this.datastoreStep(`releasing ${ips.join(', ')} in block ${block.spec.cidr}`, () =>
          ipam.releaseAllocations(block.spec.cidr, refs, block),
        );
        for (const f of freed) {
          const endpoint = proven.get(`${f.handle} ${f.ip}`);
          const why =
            endpoint === undefined
              ? ''
              : ` (no "node" attribute; WorkloadEndpoint ${endpoint} of this node and the same container named it)`;
          this.log.info({ node }, `GC released ${f.ip} of ${f.handle ?? '(no handle)'}${why}`);
        }
      }
      if (plan.endpoints.length === 0) return;
      const recorder = await this.io.openRecorder(this.conf, ds);
      for (const wep of plan.endpoints) {
        const containerId = wep.spec.containerID!;
        const pod =
          wep.spec.orchestrator === 'k8s' && wep.spec.pod
            ? { namespace: wep.metadata.namespace ?? 'default', name: wep.spec.pod }
            : undefined;
        await this.datastoreStep(`removing WorkloadEndpoint ${wep.metadata.name}`, () =>
          recorder.remove({ node, containerId, ifname: wep.spec.endpoint ?? 'eth0', ...(pod ? { pod } : {}) }),
        );
        this.log.info({}, `GC removed WorkloadEndpoint ${wep.metadata.namespace}/${wep.metadata.name}`);
      }
    } finally {
      await this.close();
    }
  }
}

/** "handle 10.0.0.1, …" for the log, the first ten and a count of the rest. */
function listKept(kept: readonly KeptAllocation[]): string {
  const shown = kept.slice(0, 10).map((k) => `${k.handle} ${k.ip}`);
  return kept.length > 10 ? `${shown.join(', ')} and ${kept.length - 10} more` : shown.join(', ');
}

/** The addresses held by `handle`, read from its IPAMHandle and blocks (no allocation, unlike assign). */
export async function addressesOfHandle(ds: Datastore, handle: string): Promise<string[]> {
  const record = await ds.get('IPAMHandle', handle);
  if (record === null) return [];
  const out: string[] = [];
  for (const cidr of Object.keys(record.spec.block)) {
    const block = await ds.get('IPAMBlock', blockName(cidr));
    if (block === null) continue;
    for (const ordinal of ordinalsOfHandle(block.spec, handle)) out.push(addressOf(block.spec, ordinal));
  }
  return out;
}
