// This node's VXLAN tunnel endpoint (VTEP) in the datastore, as calico-node records it:
//   Node.spec.ipv4VXLANTunnelAddr  an address from IPAM, handle `vxlan-tunnel-addr-<node>`, attribute
//                                  type `vxlanTunnelAddress`, from an enabled VXLAN pool selecting the node
//   Node.spec.vxlanTunnelMACAddr   the MAC of its vxlan.calico device
// (the kubernetes datastore keeps both as the Node annotations projectcalico.org/IPv4VXLANTunnelAddr and
// projectcalico.org/VXLANTunnelMACAddr: src/datastore/kubernetes.ts). Felix (felix/vxlan.ts) reads every
// Node's pair to program neighbours, FDB entries and routes toward it.
//
//   vxlanPoolsFor(pools, labels)   pure: the pools that give this node a VXLAN tunnel address
//   vxlanMacFor(node)              pure: the MAC derived from the node name (stable across restarts)
//   vxlanTunnelNeedsWork(...)      pure: whether the Node's fields disagree with the pools (the live check)
//   reconcileVxlanTunnel(deps)     the I/O: assign (or keep) the address and MAC, or release both
//
// Decisions:
// - The MAC is kept once recorded (a user or Calico may have chosen it); when absent it is derived from
//   the node name (sha256, locally administered unicast), so a Node whose fields were cleared gets the
//   same MAC again and other nodes' FDB entries stay right.
// - The MAC is published only once this node's vxlan.calico is up with the address (`deviceReady`, from
//   felix's status): other nodes route through a VTEP only when they know both its address and MAC, so
//   none sends VXLAN to this node before it can receive it (a pool switched to VXLAN live loses nothing
//   to that race). Until then felix gets the MAC from here (vxlanDataplaneInput: recorded, else derived).
// - An address held by the handle that is in no VXLAN pool any more (the pool switched to IPIP or was
//   replaced) is released and a new one assigned; when no VXLAN pool selects the node the address is
//   released and both fields are removed (Calico's allocateip does the same).

import { createHash } from 'node:crypto';
import { parsePrefix, prefixContains, tryParseIpv4 } from '../../bgp/index.js';
import { ConflictError, type Datastore } from '../datastore/types.js';
import { vxlanTunnelHandle, type Ipam } from '../ipam/index.js';
import { allocationNode, attributesAt, ATTRIBUTE_KEYS } from '../ipam/attributes.js';
import { addressOf, affineNode } from '../ipam/block.js';
import { parseSelector, type NodeSpec, type Resource } from '../resources/index.js';

/** Enabled IPv4 pools with vxlanMode not Never that select a node with these labels and allow tunnel addresses. */
export function vxlanPoolsFor(
  pools: ReadonlyArray<Resource<'IPPool'>>,
  labels: Readonly<Record<string, string>>,
): Array<Resource<'IPPool'>> {
  return pools.filter(
    (p) =>
      !p.spec.disabled &&
      (p.spec.vxlanMode ?? 'Never') !== 'Never' &&
      !p.spec.cidr.includes(':') &&
      (p.spec.allowedUses === undefined || p.spec.allowedUses.includes('Tunnel')) &&
      parseSelector(p.spec.nodeSelector ?? 'all()').matches(labels),
  );
}

const MAC = /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/;

/** Whether `text` is a unicast MAC written as six lower-case hex pairs with colons. */
export function isUnicastMac(text: string | undefined): text is string {
  return text !== undefined && MAC.test(text) && (parseInt(text.slice(0, 2), 16) & 1) === 0;
}

/** The node's VTEP MAC when none is recorded: sha256("vxlan-mac:<node>"), locally administered unicast. */
export function vxlanMacFor(node: string): string {
  const bytes = createHash('sha256').update(`vxlan-mac:${node}`).digest().subarray(0, 6);
  bytes[0] = (bytes[0]! & 0xfe) | 0x02;
  return [...bytes].map((b) => b.toString(16).padStart(2, '0')).join(':');
}

/** Whether `address` lies in one of `pools`. */
function inPools(address: string, pools: ReadonlyArray<Resource<'IPPool'>>): boolean {
  const addr = tryParseIpv4(address.split('/')[0] ?? '');
  return addr !== null && pools.some((p) => prefixContains(parsePrefix(p.spec.cidr), addr));
}

/**
 * Whether the Node's VTEP fields disagree with the pools: an address wanted and missing (or outside every
 * VXLAN pool, or without a MAC), or an address recorded that no VXLAN pool wants any more.
 */
export function vxlanTunnelNeedsWork(
  spec: NodeSpec,
  pools: ReadonlyArray<Resource<'IPPool'>>,
  labels: Readonly<Record<string, string>>,
): boolean {
  const wanted = vxlanPoolsFor(pools, labels);
  const address = spec.ipv4VXLANTunnelAddr;
  if (wanted.length === 0) return address !== undefined || spec.vxlanTunnelMACAddr !== undefined;
  return address === undefined || !inPools(address, wanted) || !isUnicastMac(spec.vxlanTunnelMACAddr);
}

export interface VxlanTunnelDeps {
  ds: Datastore;
  ipam: Pick<Ipam, 'assign' | 'releaseByHandle'>;
  nodeName: string;
  log: { info(fields: Record<string, unknown>, message: string): void };
  /** Whether this node's vxlan.calico is up with this address and MAC (felix); absent: always (no dataplane). */
  deviceReady?: (address: string, mac: string) => boolean;
}

/** What the node's VTEP is after a reconcile: none (no VXLAN pool selects it), or its address and MAC. */
export type VxlanTunnelOutcome =
  { kind: 'none'; released: string[] } | { kind: 'vtep'; address: string; mac: string; published: boolean };

/**
 * Makes Node.spec.ipv4VXLANTunnelAddr / vxlanTunnelMACAddr right for the pools now in the datastore.
 * `sweep` also releases the handle when the Node records nothing (a crash between assign and the Node
 * update leaves an address held): done once at start, not on every change.
 */
export async function reconcileVxlanTunnel(
  deps: VxlanTunnelDeps,
  options: { sweep?: boolean } = {},
): Promise<VxlanTunnelOutcome> {
  const { ds, ipam, nodeName: name, log } = deps;
  const handle = vxlanTunnelHandle(name);
  const node = await ds.get('Node', name);
  if (!node) throw new Error(`Node "${name}" is not in the datastore: no VXLAN tunnel address`);
  const pools = vxlanPoolsFor((await ds.list('IPPool')).items, node.metadata.labels ?? {});
  if (pools.length === 0) {
    const recorded = node.spec.ipv4VXLANTunnelAddr !== undefined || node.spec.vxlanTunnelMACAddr !== undefined;
    const released = recorded || options.sweep === true ? await ipam.releaseByHandle(handle) : [];
    if (recorded) {
      await updateNode(ds, name, (spec) => {
        delete spec.ipv4VXLANTunnelAddr;
        delete spec.vxlanTunnelMACAddr;
      });
      log.info({ released }, 'no VXLAN pool selects this node: VXLAN tunnel address released');
    }
    return { kind: 'none', released };
  }
  let [address] = await ipam.assign(name, handle, { pool: pools[0]!.metadata.name, use: 'Tunnel' });
  if (address !== undefined && !inPools(address, pools)) {
    // Held from a pool that is no VXLAN pool any more: give it back, take one from a VXLAN pool.
    await ipam.releaseByHandle(handle);
    [address] = await ipam.assign(name, handle, { pool: pools[0]!.metadata.name, use: 'Tunnel' });
  }
  if (address === undefined) throw new Error(`IPAM gave no address for handle ${handle}`);
  const mac = isUnicastMac(node.spec.vxlanTunnelMACAddr) ? node.spec.vxlanTunnelMACAddr : vxlanMacFor(name);
  // A MAC already recorded stays (a restart); a new one waits for the device (see the header).
  const publish =
    node.spec.vxlanTunnelMACAddr === mac ||
    deps.deviceReady === undefined ||
    (node.spec.ipv4VXLANTunnelAddr === address && deps.deviceReady(address, mac));
  const wantMac = publish ? mac : undefined;
  if (node.spec.ipv4VXLANTunnelAddr !== address || node.spec.vxlanTunnelMACAddr !== wantMac) {
    await updateNode(ds, name, (spec) => {
      spec.ipv4VXLANTunnelAddr = address;
      if (wantMac !== undefined) spec.vxlanTunnelMACAddr = wantMac;
      else delete spec.vxlanTunnelMACAddr;
    });
    log.info(
      { address, mac, published: publish },
      publish
        ? 'VXLAN tunnel endpoint recorded'
        : 'VXLAN tunnel address allocated; its MAC is published once vxlan.calico is up',
    );
  }
  return { kind: 'vtep', address, mac, published: publish };
}

/** Read-modify-write of the Node's spec, retried on a conflicting write (bounded). */
async function updateNode(ds: Datastore, name: string, change: (spec: NodeSpec) => void): Promise<void> {
  for (let attempt = 0; attempt < 10; attempt++) {
    const current = await ds.get('Node', name);
    if (!current) return;
    const spec: NodeSpec = { ...current.spec };
    change(spec);
    try {
      await ds.update({ ...current, spec });
      return;
    } catch (error) {
      if (!(error instanceof ConflictError)) throw error;
    }
  }
  throw new Error(
    `Node "${name}": could not write its VXLAN tunnel endpoint after 10 attempts (others kept writing it)`,
  );
}

/** The agent's handle on its VTEP: once at start (with a sweep), then whenever the cache disagrees. Never throws. */
export class VxlanTunnelKeeper {
  private running: Promise<void> | null = null;
  private problem: string | null = null;
  private waitTimer: ReturnType<typeof setTimeout> | null = null;
  private stopped = false;

  constructor(
    private readonly deps: VxlanTunnelDeps & {
      log: VxlanTunnelDeps['log'] & { warn(fields: Record<string, unknown>, message: string): void };
    },
  ) {}

  /** Why the VTEP could not be made right on the last try, for `node status`; null when it is right. */
  warning(): string | null {
    return this.problem;
  }

  ensure(options: { sweep?: boolean } = {}): Promise<void> {
    if (this.running !== null) return this.running;
    const run = reconcileVxlanTunnel(this.deps, options).then(
      (outcome) => {
        this.problem = null;
        if (outcome.kind === 'vtep' && !outcome.published) this.waitForDevice(outcome.address, outcome.mac, 0);
      },
      (error: unknown) => {
        this.problem = `no VXLAN tunnel address: ${error instanceof Error ? error.message : String(error)}`;
        this.deps.log.warn(
          { err: this.problem },
          'could not make the VXLAN tunnel endpoint right; trying again on the next change',
        );
      },
    );
    this.running = run.finally(() => (this.running = null));
    return this.running;
  }

  /** Stops waiting for the device. */
  stop(): void {
    this.stopped = true;
    if (this.waitTimer !== null) clearTimeout(this.waitTimer);
    this.waitTimer = null;
  }

  /** Polls felix (every 100 ms, at most a minute) until vxlan.calico is up, then publishes the MAC. */
  private waitForDevice(address: string, mac: string, tries: number): void {
    if (this.stopped || this.waitTimer !== null) return;
    this.waitTimer = setTimeout(() => {
      this.waitTimer = null;
      if (this.stopped) return;
      if (this.deps.deviceReady?.(address, mac) === true || tries >= 600) void this.ensure();
      else this.waitForDevice(address, mac, tries + 1);
    }, 100);
    this.waitTimer.unref?.();
  }

  /** From the cache on every change: reconciles (unawaited) when the Node's fields disagree with the pools. */
  poke(node: Resource<'Node'> | undefined, pools: ReadonlyArray<Resource<'IPPool'>>): void {
    if (node === undefined || this.running !== null || this.waitTimer !== null) return;
    if (vxlanTunnelNeedsWork(node.spec, pools, node.metadata.labels ?? {})) void this.ensure();
  }
}

/**
 * Felix's VXLAN input from the cache (felix/dataplane.ts DataplaneInput.vxlan): this node's VTEP, every
 * other node's address and VTEP, and the blocks affine to other nodes (IPAMBlock spec.affinity
 * "host:<node>"), as Calico's felix takes them from IPAM, not from BGP. An address another node borrowed
 * (its allocation's `node` attribute names a node the block is not affine to) is a /32 toward that node,
 * as Calico programs it: more specific than the block's route (or our own blackhole for our block).
 */
export function vxlanDataplaneInput(
  nodeName: string,
  nodes: ReadonlyArray<Resource<'Node'>>,
  blocks: ReadonlyArray<Resource<'IPAMBlock'>>,
  mtu: number | undefined,
): {
  local: { tunnelAddress?: string; mac?: string };
  nodes: Array<{ name: string; ip: string; tunnelAddress?: string; mac?: string }>;
  remoteBlocks: Array<{ cidr: string; node: string }>;
  mtu?: number;
} {
  const own = nodes.find((n) => n.metadata.name === nodeName);
  const others = nodes
    .filter((n) => n.metadata.name !== nodeName && n.spec.bgp?.ipv4Address !== undefined)
    .map((n) => ({
      name: n.metadata.name,
      ip: n.spec.bgp!.ipv4Address!,
      ...(n.spec.ipv4VXLANTunnelAddr !== undefined ? { tunnelAddress: n.spec.ipv4VXLANTunnelAddr } : {}),
      ...(n.spec.vxlanTunnelMACAddr !== undefined ? { mac: n.spec.vxlanTunnelMACAddr } : {}),
    }));
  const remoteBlocks: Array<{ cidr: string; node: string }> = [];
  for (const b of blocks) {
    if (b.spec.cidr.includes(':') || b.spec.deleted === true) continue;
    const owner = affineNode(b.spec);
    if (owner !== null && owner !== nodeName) remoteBlocks.push({ cidr: b.spec.cidr, node: owner });
    for (let ordinal = 0; ordinal < b.spec.allocations.length; ordinal++) {
      const holder = allocationNode(b.spec, ordinal);
      // Tunnel addresses (a `type` attribute) are reached through their node's device, not routed.
      if (
        holder === null ||
        holder === owner ||
        holder === nodeName ||
        attributesAt(b.spec, ordinal)?.[ATTRIBUTE_KEYS.type] !== undefined
      )
        continue;
      remoteBlocks.push({ cidr: `${addressOf(b.spec, ordinal)}/32`, node: holder });
    }
  }
  // Our MAC: as recorded, or (not published yet: see reconcileVxlanTunnel) the one that will be.
  const ownMac =
    own?.spec.ipv4VXLANTunnelAddr === undefined
      ? undefined
      : isUnicastMac(own.spec.vxlanTunnelMACAddr)
        ? own.spec.vxlanTunnelMACAddr
        : vxlanMacFor(nodeName);
  return {
    local: {
      ...(own?.spec.ipv4VXLANTunnelAddr !== undefined ? { tunnelAddress: own.spec.ipv4VXLANTunnelAddr } : {}),
      ...(ownMac !== undefined ? { mac: ownMac } : {}),
    },
    nodes: others,
    remoteBlocks,
    ...(mtu !== undefined ? { mtu } : {}),
  };
}
