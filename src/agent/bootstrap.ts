// The node agent's startup sequence, in Calico's order: wait for the datastore (WAIT_FOR_DATASTORE), find
// our address (IP or autodetection, with prefix length), register or update our Node, write the node name
// for the CNI plugin, create the default IPPool unless NO_DEFAULT_POOLS or a pool exists, claim a block,
// allocate the IPIP tunnel address when an IPIP pool selects us (and release it when none does).
//
// Steps that may fail without stopping the agent (no block, no tunnel address) leave a warning in the
// agent's warning set (shown by `node status`) and are tried again later; the rest reject `bootstrap`.
// The datastore wait is the one loop for both "open the datastore" (runNode) and "it answers" (the
// agent), one second apart on the injected clock.

import { mkdir, writeFile } from 'node:fs/promises';
import { networkInterfaces } from 'node:os';
import { dirname } from 'node:path';
import { parsePrefix, prefixContains, tryParseIpv4, type Clock } from '../../bgp/index.js';
import { AlreadyExistsError, ConflictError, type Datastore } from '../datastore/types.js';
import { ipipTunnelHandle, type Ipam } from '../ipam/index.js';
import { applyDefaults, parseSelector, API_VERSION, type Resource } from '../resources/index.js';
import type { Logger } from '../log.js';
import {
  autodetectIpv4,
  ignoredInterfaceMatcher,
  interfaceAddresses,
  prefixLengthOf,
  type InterfaceAddress,
} from './autodetect.js';
import type { AgentConfig } from './config.js';
import { errorText } from './error-text.js';

/** WAIT_FOR_DATASTORE: attempts one second apart (an hour). */
export const WAIT_ATTEMPTS = 3600;
const WAIT_INTERVAL_MS = 1000;

/**
 * WAIT_FOR_DATASTORE: runs `attempt` until it resolves, one second apart on `clock`, at most WAIT_ATTEMPTS
 * times (once when `wait` is false); the last failure is thrown, and so is any failure once `stopped()`.
 * The first failure is logged (once, not every second).
 */
export async function waitForDatastore<T>(
  attempt: () => Promise<T>,
  options: { wait: boolean; clock: Clock; log: Logger; stopped?: () => boolean },
): Promise<T> {
  const attempts = options.wait ? WAIT_ATTEMPTS : 1;
  for (let i = 1; ; i++) {
    try {
      return await attempt();
    } catch (error) {
      if (i >= attempts || options.stopped?.() === true) throw error;
      if (i === 1) options.log.warn({ err: errorText(error) }, 'waiting for the datastore (WAIT_FOR_DATASTORE)');
      await new Promise<void>((resolve) => options.clock.setTimeout(resolve, WAIT_INTERVAL_MS));
    }
  }
}

/** The node's address with its prefix length, and the interface holding it (null: none found). */
export interface NodeAddress {
  address: string;
  prefixLength: number;
  hostInterface: string | null;
}

export interface BootstrapContext {
  ds: Datastore;
  ipam: Ipam;
  config: AgentConfig;
  log: Logger;
  clock: Clock;
  /** The agent's warnings (node status); steps add and clear theirs. */
  warnings: Set<string>;
  /** Default: os.networkInterfaces(). */
  interfaces?: () => InterfaceAddress[];
  localAddressToward?: (target: string) => Promise<string>;
  /** The agent is stopping: the datastore wait gives up. */
  stopped: () => boolean;
}

/** The startup sequence up to (not including) the cache: see the header. Resolves to the node's address. */
export async function bootstrap(ctx: BootstrapContext): Promise<NodeAddress> {
  await waitForDatastore(() => ctx.ds.list('BGPConfiguration'), {
    wait: ctx.config.waitForDatastore,
    clock: ctx.clock,
    log: ctx.log,
    stopped: ctx.stopped,
  });
  const ip = await findAddress(ctx);
  ctx.log.info(
    { node: ctx.config.nodeName, ip: `${ip.address}/${ip.prefixLength}`, iface: ip.hostInterface },
    'node address',
  );
  await registerNode(ctx, ip);
  await writeNodename(ctx);
  await ensureDefaultPool(ctx);
  await claimBlock(ctx);
  await ensureTunnelAddress(ctx);
  return ip;
}

async function findAddress(ctx: BootstrapContext): Promise<NodeAddress> {
  // BGPConfiguration ignoredInterfaces: never the node's address nor felix's host interface (the interfaces
  // whose connected routes Calico's BIRD ignores).
  const ignoredPatterns = (await ctx.ds.get('BGPConfiguration', 'default'))?.spec.ignoredInterfaces ?? [];
  const ignored = ignoredInterfaceMatcher(ignoredPatterns);
  const all = ctx.interfaces ?? (() => interfaceAddresses(networkInterfaces()));
  const interfaces = () => all().filter((i) => !ignored(i.iface));
  const ip = ctx.config.ip;
  if (ip.mode === 'fixed') {
    const holder = interfaces().find((i) => i.address === ip.address);
    const hostInterface = holder?.iface ?? null;
    const ignoredHolder = holder === undefined ? all().find((i) => i.address === ip.address) : undefined;
    if (ignoredHolder !== undefined) {
      ctx.warnings.add(
        `IP=${ip.address} is on ${ignoredHolder.iface}, which BGPConfiguration default ignoredInterfaces (${ignoredPatterns.join(', ')}) excludes: routes to other nodes (direct and BGP) have no interface to leave through and are not programmed`,
      );
    } else if (holder === undefined) {
      ctx.warnings.add(
        `IP=${ip.address}: no interface holds this address, so routes to other nodes (direct and BGP) have no interface to leave through and are not programmed`,
      );
    }
    if (ip.prefixLength !== undefined) return { address: ip.address, prefixLength: ip.prefixLength, hostInterface };
    const len = prefixLengthOf(ip.address, all());
    if (len !== null) return { address: ip.address, prefixLength: len, hostInterface };
    ctx.warnings.add(
      `IP=${ip.address}: no interface holds this address, so its prefix length is unknown; using /32 (set IP=${ip.address}/<len> for CrossSubnet to work)`,
    );
    return { address: ip.address, prefixLength: 32, hostInterface };
  }
  const found = await autodetectIpv4(ip.method, {
    interfaces,
    clock: ctx.clock,
    ...(ctx.localAddressToward ? { localAddressToward: ctx.localAddressToward } : {}),
  });
  ctx.log.info({ iface: found.iface, method: found.method }, 'autodetected the node address');
  return { address: found.address, prefixLength: found.prefixLength, hostInterface: found.iface };
}

/** Creates our Node or updates its BGP address/AS; a concurrent writer (ConflictError) means read again. */
async function registerNode(ctx: BootstrapContext, ip: NodeAddress): Promise<void> {
  const { ds, config } = ctx;
  const name = config.nodeName;
  const address = `${ip.address}/${ip.prefixLength}`;
  for (let attempt = 0; attempt < 10; attempt++) {
    const node = await ds.get('Node', name);
    try {
      if (!node) {
        await ds.create({
          apiVersion: API_VERSION,
          kind: 'Node',
          metadata: { name },
          spec: {
            bgp: { ipv4Address: address, ...(config.asNumber !== undefined ? { asNumber: config.asNumber } : {}) },
          },
        });
        ctx.log.info({ node: name, ipv4Address: address }, 'registered the node');
        return;
      }
      const bgp = {
        ...(node.spec.bgp ?? {}),
        ipv4Address: address,
        ...(config.asNumber !== undefined ? { asNumber: config.asNumber } : {}),
      };
      if (node.spec.bgp?.ipv4Address === bgp.ipv4Address && node.spec.bgp?.asNumber === bgp.asNumber) return;
      await ds.update({ ...node, spec: { ...node.spec, bgp } });
      ctx.log.info({ node: name, ipv4Address: address }, 'updated the node');
      return;
    } catch (error) {
      if (!(error instanceof ConflictError) && !(error instanceof AlreadyExistsError)) throw error;
    }
  }
  throw new Error(`node "${name}": could not write its BGP address after 10 attempts (others kept writing it)`);
}

/** The CNI plugin finds the node's name here (Calico: /var/lib/calico/nodename). Best effort. */
async function writeNodename(ctx: BootstrapContext): Promise<void> {
  const file = `${dirname(ctx.config.ctlSocket)}/nodename`;
  try {
    await mkdir(dirname(file), { recursive: true });
    await writeFile(file, `${ctx.config.nodeName}\n`);
  } catch (error) {
    ctx.log.warn({ file, err: errorText(error) }, 'could not write the node name for the CNI plugin');
  }
}

/** Calico's default pool, unless NO_DEFAULT_POOLS or any IPv4 pool exists. Another node creating it first is fine. */
async function ensureDefaultPool(ctx: BootstrapContext): Promise<void> {
  const pool = ctx.config.defaultPool;
  if (!pool) return;
  const existing = await ctx.ds.list('IPPool');
  if (existing.items.some((p) => !p.spec.cidr.includes(':'))) return;
  try {
    await ctx.ds.create(
      applyDefaults({
        apiVersion: API_VERSION,
        kind: 'IPPool',
        metadata: { name: pool.name },
        spec: {
          cidr: pool.cidr,
          blockSize: pool.blockSize,
          ipipMode: pool.ipipMode,
          vxlanMode: pool.vxlanMode,
          natOutgoing: pool.natOutgoing,
          nodeSelector: 'all()',
        },
      }),
    );
    ctx.log.info({ pool: pool.name, cidr: pool.cidr }, 'created the default IP pool');
  } catch (error) {
    if (!(error instanceof AlreadyExistsError)) throw error;
  }
}

async function claimBlock(ctx: BootstrapContext): Promise<void> {
  const node = ctx.config.nodeName;
  try {
    // A claim this node started before a crash is finished (or dropped) first: a block whose affinity
    // stayed pending would be used for pods but never advertised.
    await ctx.ipam.settlePending(node);
    await settleReleases(ctx, node);
    const owned = await ctx.ipam.blocksOf(node);
    if (owned.length === 0) {
      const cidr = await ctx.ipam.claimBlock(node);
      ctx.log.info({ block: cidr }, 'claimed an IPAM block');
    }
  } catch (error) {
    ctx.warnings.add(`no IPAM block for this node: ${errorText(error)}`);
    ctx.log.warn({ err: errorText(error) }, 'could not claim an IPAM block');
  }
}

/**
 * A release of one of our blocks that stopped half-way (affinity pendingDeletion: the block is no longer
 * advertised) is finished when the block is empty and undone when it holds addresses (Ipam.settlePendingDeletion).
 */
async function settleReleases(ctx: BootstrapContext, node: string): Promise<void> {
  try {
    for (const settled of await ctx.ipam.settlePendingDeletion(node)) {
      ctx.log.info(
        { block: settled.cidr, outcome: settled.outcome },
        'settled a release of our block that had stopped half-way (affinity pendingDeletion)',
      );
    }
  } catch (error) {
    ctx.warnings.add(
      `a block release left half-done (affinity pendingDeletion) could not be settled: ${errorText(error)}`,
    );
    ctx.log.warn({ err: errorText(error) }, 'could not settle a pendingDeletion block affinity');
  }
}

/**
 * An enabled IPIP pool selecting us → an address for tunl0 from it, stored in Node.spec.bgp.ipv4IPIPTunnelAddr.
 * As Calico's allocateip (node/pkg/allocateip): an address held from a pool that is no IPIP pool any more is
 * released and one taken from an IPIP pool; with no IPIP pool selecting us the handle
 * `ipip-tunnel-addr-<node>` is released and the field removed (a pool switched live to VXLAN or Never
 * gives its address back, and a node never keeps two tunnel addresses).
 * Never rejects: a failure is a warning (the agent also runs this unawaited when the pools change).
 */
export async function ensureTunnelAddress(
  ctx: Pick<BootstrapContext, 'ds' | 'ipam' | 'config' | 'log' | 'warnings'>,
): Promise<void> {
  const { ds, warnings } = ctx;
  const name = ctx.config.nodeName;
  const handle = ipipTunnelHandle(name);
  // Every datastore call inside the try: this also runs unawaited from a replan (the agent's ensureTunnelAddressLive).
  try {
    const node = await ds.get('Node', name);
    if (!node) return clearTunnelWarning(warnings);
    const pools = ipipPoolsFor((await ds.list('IPPool')).items, node.metadata.labels ?? {});
    if (pools.length === 0) {
      // Released whether or not the Node records it: a crash between assign and the Node update leaves one held.
      const released = await ctx.ipam.releaseByHandle(handle);
      const recorded = node.spec.bgp?.ipv4IPIPTunnelAddr !== undefined;
      if (recorded) await setIpipTunnelAddress(ds, name, undefined);
      if (recorded || released.length > 0)
        ctx.log.info({ released }, 'no IPIP pool selects this node: IPIP tunnel address released');
      return clearTunnelWarning(warnings);
    }
    const assign = (): Promise<string[]> =>
      ctx.ipam.assign(name, handle, { pool: pools[0]!.metadata.name, use: 'Tunnel' });
    let [address] = await assign();
    if (address !== undefined && !inPools(address, pools)) {
      // Held from a pool that is no IPIP pool any more (switched to VXLAN or Never): give it back, take another.
      await ctx.ipam.releaseByHandle(handle);
      ctx.log.info({ released: address }, 'IPIP tunnel address is in no IPIP pool any more: released');
      [address] = await assign();
    }
    if (address === undefined || node.spec.bgp?.ipv4IPIPTunnelAddr === address) return clearTunnelWarning(warnings);
    if (await setIpipTunnelAddress(ds, name, address)) ctx.log.info({ address }, 'IPIP tunnel address allocated');
    clearTunnelWarning(warnings);
  } catch (error) {
    clearTunnelWarning(warnings);
    warnings.add(`no IPIP tunnel address: ${errorText(error)}`);
    ctx.log.warn(
      { err: errorText(error) },
      'could not allocate the IPIP tunnel address; trying again on the next change',
    );
  }
}

/** Writes (or, `undefined`, removes) Node.spec.bgp.ipv4IPIPTunnelAddr; retried on a conflicting write. */
async function setIpipTunnelAddress(ds: Datastore, name: string, address: string | undefined): Promise<boolean> {
  for (let attempt = 0; attempt < 10; attempt++) {
    const current = await ds.get('Node', name);
    if (!current) return false;
    const bgp = { ...(current.spec.bgp ?? {}) };
    if (address === undefined) delete bgp.ipv4IPIPTunnelAddr;
    else bgp.ipv4IPIPTunnelAddr = address;
    try {
      await ds.update({ ...current, spec: { ...current.spec, bgp } });
      return true;
    } catch (error) {
      if (!(error instanceof ConflictError)) throw error;
    }
  }
  throw new Error(`Node "${name}": could not write its IPIP tunnel address after 10 attempts (others kept writing it)`);
}

/** Whether `address` lies in one of `pools`. */
function inPools(address: string, pools: ReadonlyArray<Resource<'IPPool'>>): boolean {
  const addr = tryParseIpv4(address.split('/')[0] ?? '');
  return addr !== null && pools.some((p) => prefixContains(parsePrefix(p.spec.cidr), addr));
}

/**
 * Whether Node.spec.bgp.ipv4IPIPTunnelAddr disagrees with the pools (the agent's live check): an address
 * wanted and missing or outside every IPIP pool, or one recorded that no IPIP pool wants any more.
 */
export function ipipTunnelNeedsWork(
  spec: Resource<'Node'>['spec'],
  pools: Array<Resource<'IPPool'>>,
  labels: Record<string, string>,
): boolean {
  const wanted = ipipPoolsFor(pools, labels);
  const address = spec.bgp?.ipv4IPIPTunnelAddr;
  if (wanted.length === 0) return address !== undefined;
  return address === undefined || !inPools(address, wanted);
}

function clearTunnelWarning(warnings: Set<string>): void {
  for (const w of [...warnings]) if (w.startsWith('no IPIP tunnel address: ')) warnings.delete(w);
}

/** Enabled IPv4 IPIP pools that give this node (its labels) a tunnel address. */
export function ipipPoolsFor(
  pools: Array<Resource<'IPPool'>>,
  labels: Record<string, string>,
): Array<Resource<'IPPool'>> {
  return pools.filter(
    (p) =>
      !p.spec.disabled &&
      (p.spec.ipipMode ?? 'Never') !== 'Never' &&
      !p.spec.cidr.includes(':') &&
      (p.spec.allowedUses === undefined || p.spec.allowedUses.includes('Tunnel')) &&
      parseSelector(p.spec.nodeSelector ?? 'all()').matches(labels),
  );
}
