// Taking a node or an IPPool out of IPAM: what `tortie delete node` and `tortie delete ippool` do besides
// deleting the resource. Planning is pure (a snapshot of blocks, affinities, workload endpoints and nodes
// in; which address to release and why, which to keep and for whom, out); releaseHost and deletePool carry
// a plan out with Ipam's compare-and-swap primitives, one block at a time.
//
// What is released, and why (Calico's facts from libcalico-go clientv3/node.go Delete, ipam.go
// RemoveIPAMHost/ReleaseHostAffinities, ipam_block_reader_writer.go releaseBlockAffinity, clientv3/ippool.go
// Delete; tortie's choices where they differ are marked):
// - A node: its tunnel address (handle ipip-tunnel-addr-<node>, in any block), the addresses of its
//   workload endpoints (in any block), then every block affine to it is given up — deleted when empty,
//   else kept without affinity — and its affinities deleted, strays with no block too. As calicoctl.
//   tortie also releases, in the node's own blocks, addresses no workload endpoint holds ("leaked": their
//   pods are gone), and in every other block (another node's, or no node's) the addresses the node
//   borrowed there — their allocation's `node` attribute (./attributes.ts) names it — that no workload
//   endpoint holds; calicoctl leaves those to kube-controllers' IPAM garbage collection, which tortie does
//   not have, so they would leak for ever. Addresses in its blocks that other nodes' workloads (or tunnels
//   of existing nodes) hold are kept, and so is their block (without affinity): those pods still run.
// - A pool: refused while workload endpoints hold addresses in it (tortie's choice: Calico deletes it and
//   leaves the pods with addresses whose blocks no node advertises any more). Otherwise as Calico: the pool
//   is disabled first so no new address comes from it, its blocks' affinities are released (empty blocks
//   deleted), then it is deleted. Also released: nodes' tunnel addresses in it, with the Node's
//   ipv4IPIPTunnelAddr (or ipv4VXLANTunnelAddr) cleared so a running agent takes one from another pool
//   (calico-node's tunnel address allocator does that for Calico), and leaked addresses.
//
// Why this is hard:
// - "No workload endpoint holds it" is also true for a pod being created right now: its CNI ADD assigns
//   the address first and records the endpoint a moment later. So an address counts as leaked only when it
//   was already allocated, to the same handle, with no endpoint, `leakGraceMs` before (two snapshots) —
//   and never when its allocation's `node` attribute (./attributes.ts) names another node that exists.
//   The same holds for what the node borrowed in other nodes' blocks, and their release re-checks in its
//   compare-and-swap that the allocation still names the node (an address with no `node` attribute in
//   another node's block is never taken for the deleted node's: nobody can tell whose it is).
// - The node's agent may still be running: its CNI can assign or claim while we release. Every write is
//   a compare-and-swap on the block; an address taken meanwhile is not in the plan, so it is never
//   released: its block is kept (without affinity). A claim after we finished re-creates an affinity —
//   the report lists those (`reclaimed`), because only stopping the agent prevents it.

import { ConflictError, NotFoundError, type Datastore } from '../datastore/types.js';
import type { IPAMBlockSpec, Resource } from '../resources/types.js';
import { ATTRIBUTE_KEYS, allocationNode, attributesAt } from './attributes.js';
import * as blocks from './block.js';
import {
  BlockInUseError,
  blockInPool,
  Ipam,
  type AffinityRelease,
  type AllocationRef,
  type FreedAddress,
  type IpamOptions,
} from './index.js';
import { TUNNEL_HANDLE_PREFIXES, tunnelHandleNode } from '../resources/ipam-names.js';

type Block = Resource<'IPAMBlock'>;
type Workload = Resource<'WorkloadEndpoint'>;

/** Everything a plan looks at, read at one moment (near enough: each kind is one list). */
export interface IpamSnapshot {
  blocks: Block[];
  affinities: Array<Resource<'BlockAffinity'>>;
  workloads: Workload[];
  nodes: Array<Resource<'Node'>>;
}

export async function readSnapshot(ds: Datastore): Promise<IpamSnapshot> {
  const [b, a, w, n] = await Promise.all([
    ds.list('IPAMBlock'),
    ds.list('BlockAffinity'),
    ds.list('WorkloadEndpoint'),
    ds.list('Node'),
  ]);
  return { blocks: b.items.filter((x) => !x.spec.deleted), affinities: a.items, workloads: w.items, nodes: n.items };
}

/** Why an address is released. */
export type ReleaseReason =
  | { why: 'tunnel'; node: string }
  | { why: 'workload'; endpoint: string; node: string }
  /** In the node's (or pool's) own blocks, held by no workload. */
  | { why: 'leaked' }
  /** Leaked too: `node` borrowed it in a block of `owner` (another node, or null: none), by its allocation's node attribute. */
  | { why: 'borrowed'; node: string; owner: string | null };

/** One allocation a plan looked at. */
export interface Allocation {
  cidr: string;
  ordinal: number;
  ip: string;
  handle: string | null;
}

export interface PlannedRelease extends Allocation {
  reason: ReleaseReason;
}

/** An allocation left in place, and who holds it (said to people: "workload default/api on node node-2"). */
export interface HeldAllocation extends Allocation {
  holder: string;
}

/** The identity of one allocation across snapshots. */
export function allocationKey(a: Pick<Allocation, 'cidr' | 'ordinal' | 'handle'>): string {
  return `${a.cidr}#${a.ordinal}#${a.handle ?? ''}`;
}

function allocationsOf(block: Block): Allocation[] {
  const out: Allocation[] = [];
  block.spec.allocations.forEach((attr, ordinal) => {
    if (attr === null) return;
    out.push({
      cidr: block.spec.cidr,
      ordinal,
      ip: blocks.addressOf(block.spec, ordinal),
      handle: blocks.handleAt(block.spec, ordinal) ?? null,
    });
  });
  return out;
}

/** Workload endpoints by the addresses they hold ("10.244.0.5" → endpoint). */
function workloadsByAddress(workloads: Workload[]): Map<string, Workload> {
  const out = new Map<string, Workload>();
  for (const w of workloads) for (const network of w.spec.ipNetworks ?? []) out.set(network.split('/')[0] ?? '', w);
  return out;
}

function endpointName(w: Workload): string {
  return `${w.metadata.namespace ?? 'default'}/${w.spec.pod ?? w.metadata.name}`;
}

/**
 * Who holds an allocation that is not the plan's to release: a workload endpoint, a tunnel of an existing
 * node, or — by the allocation's own `node` attribute (./attributes.ts) — an existing node that assigned it
 * and has not recorded its endpoint yet (a CNI ADD assigns first and records a moment later), so it is
 * never taken for leaked however long that takes.
 */
function holderOf(
  a: Allocation,
  byAddress: Map<string, Workload>,
  nodes: ReadonlySet<string>,
  block: IPAMBlockSpec,
): string | null {
  const w = byAddress.get(a.ip);
  if (w) return `workload ${endpointName(w)} on node ${w.spec.node}`;
  const tunnelOf = tunnelHandleNode(a.handle);
  if (tunnelOf !== null && nodes.has(tunnelOf)) return `tunnel address of node ${tunnelOf}`;
  const assignedOn = allocationNode(block, a.ordinal);
  if (assignedOn !== null && nodes.has(assignedOn)) {
    const attrs = attributesAt(block, a.ordinal);
    const pod = attrs?.[ATTRIBUTE_KEYS.pod];
    return `assigned on node ${assignedOn}${pod ? ` for pod ${attrs?.[ATTRIBUTE_KEYS.namespace] ?? 'default'}/${pod}` : ''}, no workload yet`;
  }
  return null;
}

export interface HostPlan {
  node: string;
  /** Addresses to release, in any block. */
  release: PlannedRelease[];
  /** Allocations that look leaked (in its blocks, or borrowed in others') but were not seen so for the grace period yet (not released). */
  suspects: PlannedRelease[];
  /** Allocations in the node's blocks that others hold: their blocks are kept, without affinity. */
  keep: HeldAllocation[];
  /** CIDRs of the blocks affine to the node. */
  blocks: string[];
  /** The node's affinities whose block does not exist or is not the node's. */
  strays: Array<{ cidr: string; state: string }>;
  /** The node's workload endpoints (the caller deletes them where the datastore allows). */
  workloads: Workload[];
}

/**
 * What taking `node` out of IPAM releases and keeps (see the header). `confirmedLeaks`: allocation keys
 * that were already leaked-looking a grace period ago; only those are released as leaked.
 */
export function planHostRelease(
  node: string,
  snapshot: IpamSnapshot,
  confirmedLeaks: ReadonlySet<string> = new Set(),
): HostPlan {
  const byAddress = workloadsByAddress(snapshot.workloads);
  const otherNodes = new Set(snapshot.nodes.map((n) => n.metadata.name).filter((n) => n !== node));
  const plan: HostPlan = {
    node,
    release: [],
    suspects: [],
    keep: [],
    blocks: [],
    strays: [],
    workloads: snapshot.workloads.filter((w) => w.spec.node === node),
  };
  for (const block of snapshot.blocks) {
    const ours = blocks.affineNode(block.spec) === node;
    if (ours) plan.blocks.push(block.spec.cidr);
    for (const a of allocationsOf(block)) {
      const w = byAddress.get(a.ip);
      if (tunnelHandleNode(a.handle) === node) plan.release.push({ ...a, reason: { why: 'tunnel', node } });
      else if (w?.spec.node === node)
        plan.release.push({ ...a, reason: { why: 'workload', endpoint: endpointName(w), node } });
      else if (!ours) {
        // Borrowed by the node in another's block, and no endpoint (of any node) holds it: leaked, after the grace period.
        if (w !== undefined || tunnelHandleNode(a.handle) !== null || allocationNode(block.spec, a.ordinal) !== node)
          continue;
        const reason: ReleaseReason = { why: 'borrowed', node, owner: blocks.affineNode(block.spec) };
        (confirmedLeaks.has(allocationKey(a)) ? plan.release : plan.suspects).push({ ...a, reason });
      } else {
        const holder = holderOf(a, byAddress, otherNodes, block.spec);
        if (holder !== null) plan.keep.push({ ...a, holder });
        else
          (confirmedLeaks.has(allocationKey(a)) ? plan.release : plan.suspects).push({
            ...a,
            reason: { why: 'leaked' },
          });
      }
    }
  }
  const owned = new Set(plan.blocks);
  for (const affinity of snapshot.affinities) {
    if (affinity.spec.node === node && !owned.has(affinity.spec.cidr))
      plan.strays.push({ cidr: affinity.spec.cidr, state: affinity.spec.state });
  }
  return plan;
}

export interface PoolPlan {
  pool: string;
  cidr: string;
  /** The pool's blocks and the node each is affine to. */
  blocks: Array<{ cidr: string; node: string | null }>;
  /** Addresses workload endpoints hold: any of them refuses the deletion. */
  inUse: HeldAllocation[];
  /** Tunnel addresses (any node's) and confirmed leaks: released with the pool. */
  release: PlannedRelease[];
  suspects: PlannedRelease[];
  /** Affinities for blocks inside the pool that do not exist. */
  strays: Array<{ node: string; cidr: string; state: string }>;
}

/** What deleting `pool` releases, and what stops it (see the header). */
export function planPoolRelease(
  pool: Resource<'IPPool'>,
  snapshot: IpamSnapshot,
  confirmedLeaks: ReadonlySet<string> = new Set(),
): PoolPlan {
  const byAddress = workloadsByAddress(snapshot.workloads);
  const plan: PoolPlan = {
    pool: pool.metadata.name,
    cidr: pool.spec.cidr,
    blocks: [],
    inUse: [],
    release: [],
    suspects: [],
    strays: [],
  };
  const existing = new Set<string>();
  for (const block of snapshot.blocks) {
    if (!blockInPool(block.spec.cidr, pool)) continue;
    existing.add(block.spec.cidr);
    plan.blocks.push({ cidr: block.spec.cidr, node: blocks.affineNode(block.spec) });
    for (const a of allocationsOf(block)) {
      const w = byAddress.get(a.ip);
      const tunnelOf = tunnelHandleNode(a.handle);
      if (w) plan.inUse.push({ ...a, holder: `workload ${endpointName(w)} on node ${w.spec.node}` });
      else if (tunnelOf !== null) plan.release.push({ ...a, reason: { why: 'tunnel', node: tunnelOf } });
      else
        (confirmedLeaks.has(allocationKey(a)) ? plan.release : plan.suspects).push({ ...a, reason: { why: 'leaked' } });
    }
  }
  for (const affinity of snapshot.affinities) {
    if (!existing.has(affinity.spec.cidr) && blockInPool(affinity.spec.cidr, pool))
      plan.strays.push({ node: affinity.spec.node, cidr: affinity.spec.cidr, state: affinity.spec.state });
  }
  return plan;
}

export interface TeardownOptions {
  /** How long an allocation must look leaked before it is released (default 2000 ms; see the header). */
  leakGraceMs?: number;
  /** Waits (default: a real timer); tests pass a fake. */
  sleep?: (ms: number) => Promise<void>;
  ipam?: IpamOptions;
}

export const DEFAULT_LEAK_GRACE_MS = 2000;

/** The plan again after the grace period, when the first one had suspects; else the first one. */
async function withGrace<P extends { suspects: PlannedRelease[] }>(
  ds: Datastore,
  options: TeardownOptions,
  plan: (s: IpamSnapshot, confirmed?: ReadonlySet<string>) => P,
): Promise<{ plan: P; snapshot: IpamSnapshot }> {
  const first = await readSnapshot(ds);
  const firstPlan = plan(first);
  if (firstPlan.suspects.length === 0) return { plan: firstPlan, snapshot: first };
  const sleep = options.sleep ?? ((ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms)));
  await sleep(options.leakGraceMs ?? DEFAULT_LEAK_GRACE_MS);
  const second = await readSnapshot(ds);
  return { plan: plan(second, new Set(firstPlan.suspects.map(allocationKey))), snapshot: second };
}

/** A released address and why. */
export interface ReleasedAddress extends FreedAddress {
  reason: ReleaseReason;
}

/** The releases as refs per block; a borrowed address's ref names the node, so the compare-and-swap re-checks it. */
function refsByBlock(releases: PlannedRelease[]): Map<string, AllocationRef[]> {
  const out = new Map<string, AllocationRef[]>();
  for (const r of releases) {
    const ref: AllocationRef =
      r.reason.why === 'borrowed'
        ? { ordinal: r.ordinal, handle: r.handle, node: r.reason.node }
        : { ordinal: r.ordinal, handle: r.handle };
    out.set(r.cidr, [...(out.get(r.cidr) ?? []), ref]);
  }
  return out;
}

function withReasons(freed: FreedAddress[], planned: PlannedRelease[]): ReleasedAddress[] {
  return freed.map((f) => ({
    ...f,
    reason: planned.find((p) => p.ip === f.ip && p.handle === f.handle)?.reason ?? { why: 'leaked' },
  }));
}

export interface HostReleaseReport {
  node: string;
  released: ReleasedAddress[];
  /** What became of each of the node's blocks, and of its stray affinities. */
  blocks: AffinityRelease[];
  /** Addresses still allocated in the blocks kept without affinity, and who holds them. */
  kept: HeldAllocation[];
  /** The node's workload endpoints (their addresses are released; deleting them is the caller's). */
  workloads: Workload[];
  /** IPAMHandle objects of the node's tunnel addresses deleted because they held nothing. */
  handles: string[];
  /** The node's affinities that exist after the release: something on the node (its agent or CNI) still claims. */
  reclaimed: string[];
}

/** True when the plan has nothing to do: the node has no IPAM state. */
export function hostPlanIsEmpty(plan: HostPlan): boolean {
  return (
    plan.release.length + plan.suspects.length + plan.blocks.length + plan.strays.length + plan.workloads.length === 0
  );
}

/** Takes `node` out of IPAM (see the header); the Node resource itself is the caller's. */
export async function releaseHost(
  ds: Datastore,
  node: string,
  options: TeardownOptions = {},
): Promise<HostReleaseReport> {
  const ipam = new Ipam(ds, options.ipam);
  const { plan } = await withGrace(ds, options, (s, confirmed) => planHostRelease(node, s, confirmed));
  const byBlock = refsByBlock(plan.release);
  const released: ReleasedAddress[] = [];
  const outcomes: AffinityRelease[] = [];
  for (const cidr of plan.blocks) {
    const outcome = await ipam.releaseAffinity(node, cidr, { free: byBlock.get(cidr) ?? [] });
    outcomes.push(outcome);
    if (outcome.outcome === 'deleted' || outcome.outcome === 'unaffined')
      released.push(...withReasons(outcome.freed, plan.release));
    byBlock.delete(cidr);
  }
  for (const [cidr, refs] of byBlock)
    released.push(...withReasons(await ipam.releaseAllocations(cidr, refs), plan.release));
  for (const stray of plan.strays) {
    const outcome = await ipam.releaseStrayAffinity(node, stray.cidr);
    if (outcome !== null) outcomes.push(outcome);
  }
  const after = await readSnapshot(ds);
  // Handle objects of the node's tunnel addresses that hold nothing (left by a crash): leaked, deleted.
  const handles: string[] = [];
  const held = new Set(after.blocks.flatMap((b) => allocationsOf(b).map((a) => a.handle)));
  for (const prefix of TUNNEL_HANDLE_PREFIXES) {
    const handle = await ds.get('IPAMHandle', `${prefix}${node}`);
    if (!handle || held.has(handle.spec.handleID)) continue;
    try {
      await ds.delete('IPAMHandle', handle.metadata.name, { revision: handle.metadata.resourceVersion ?? '' });
      handles.push(handle.metadata.name);
    } catch (err) {
      if (!(err instanceof NotFoundError) && !(err instanceof ConflictError)) throw err;
    }
  }
  const unaffined = new Set(outcomes.filter((o) => o.outcome === 'unaffined').map((o) => o.cidr));
  const byAddress = workloadsByAddress(after.workloads);
  const nodes = new Set(after.nodes.map((n) => n.metadata.name));
  const kept = after.blocks
    .filter((b) => unaffined.has(b.spec.cidr))
    .flatMap((b) =>
      allocationsOf(b).map((a) => ({
        ...a,
        holder:
          holderOf(a, byAddress, nodes, b.spec) ??
          'no workload yet (allocated while this ran, or leaked too recently to tell)',
      })),
    );
  const reclaimed = after.affinities.filter((a) => a.spec.node === node).map((a) => a.spec.cidr);
  return { node, released, blocks: outcomes, kept, workloads: plan.workloads, handles, reclaimed };
}

/** Workloads hold addresses in the pool: nothing was deleted. `plan.inUse` names them. */
export class PoolInUseError extends Error {
  constructor(
    readonly plan: PoolPlan,
    detail: string,
  ) {
    super(poolInUseMessage(plan, detail));
    this.name = 'PoolInUseError';
  }
}

const LISTED = 10;

function poolInUseMessage(plan: PoolPlan, detail: string): string {
  const shown = plan.inUse
    .slice(0, LISTED)
    .map((a) => `${a.ip} (${a.holder.replace(/^workload /, '')}, block ${a.cidr})`);
  const more = plan.inUse.length > LISTED ? ` and ${plan.inUse.length - LISTED} more` : '';
  return (
    `IPPool "${plan.pool}" (${plan.cidr}) still has ${plan.inUse.length} address(es) of workloads: ${shown.join(', ')}${more}; ` +
    'deleting it would leave those pods with addresses no node advertises. Set spec.disabled: true on it (tortie apply) so no new pod ' +
    `gets an address from it, re-create those pods so they get addresses from another pool, then delete it again${detail}`
  );
}

/** The refusal deletePool would give for `pool` now, or null (read-only; the CLI checks every pool first). */
export async function poolDeletionRefusal(ds: Datastore, pool: Resource<'IPPool'>): Promise<PoolInUseError | null> {
  const plan = planPoolRelease(pool, await readSnapshot(ds));
  return plan.inUse.length > 0 ? new PoolInUseError(plan, '') : null;
}

/** What became of one block (or stray affinity) of a deleted pool. */
export interface PoolBlockOutcome {
  cidr: string;
  /** The node it was affine to. */
  node: string | null;
  /** deleted: it was empty (with its affinity, if any); kept: addresses remain; affinity-deleted: a stray affinity, no block. */
  outcome: 'deleted' | 'kept' | 'affinity-deleted';
  remaining: number;
  /** The state of the stray affinity deleted. */
  affinity: string | null;
}

function poolBlockOutcome(node: string | null, r: AffinityRelease): PoolBlockOutcome {
  if (r.outcome === 'deleted') return { cidr: r.cidr, node, outcome: 'deleted', remaining: 0, affinity: null };
  if (r.outcome === 'unaffined') return { cidr: r.cidr, node, outcome: 'kept', remaining: r.remaining, affinity: null };
  return { cidr: r.cidr, node, outcome: 'affinity-deleted', remaining: 0, affinity: r.affinity };
}

export interface PoolDeletionReport {
  pool: string;
  cidr: string;
  /** True when this deletion disabled the pool (it was enabled). */
  disabled: boolean;
  released: ReleasedAddress[];
  blocks: PoolBlockOutcome[];
  /** Nodes whose Node.spec.bgp.ipv4IPIPTunnelAddr (or, `kind: 'vxlan'`, ipv4VXLANTunnelAddr) was cleared (their tunnel address was in the pool). */
  tunnelsCleared: Array<{ node: string; ip: string; kind?: 'vxlan' }>;
}

/**
 * Deletes IPPool `name` as Calico does (disable → release its blocks' affinities → delete), releasing
 * tunnel and leaked addresses in it; refuses with PoolInUseError while workloads hold addresses in it.
 * A refusal after the pool was disabled (a pod got an address meanwhile) enables it again.
 */
export async function deletePool(
  ds: Datastore,
  name: string,
  options: TeardownOptions = {},
): Promise<PoolDeletionReport> {
  const original = await ds.get('IPPool', name);
  if (!original) throw new NotFoundError(`IPPool "${name}" does not exist`);
  const refusal = await poolDeletionRefusal(ds, original);
  if (refusal) throw new PoolInUseError(refusal.plan, '; nothing was deleted');
  let pool = original;
  const disabling = original.spec.disabled !== true;
  if (disabling) pool = await ds.update({ ...original, spec: { ...original.spec, disabled: true } });
  const restore = async (plan: PoolPlan, why: string): Promise<never> => {
    // Put the pool back as it was (only if nobody changed it since we disabled it).
    if (disabling)
      await ds
        .update({ ...pool, spec: { ...pool.spec, disabled: original.spec.disabled ?? false } })
        .catch(() => undefined);
    throw new PoolInUseError(
      plan,
      `; ${why}, so the pool was left as it was (${disabling ? 'enabled again' : 'still disabled'}) and nothing was deleted`,
    );
  };
  const { plan } = await withGrace(ds, options, (s, confirmed) => planPoolRelease(pool, s, confirmed));
  if (plan.inUse.length > 0) await restore(plan, 'they got their addresses while the pool was being deleted');
  const ipam = new Ipam(ds, options.ipam);
  const byBlock = refsByBlock(plan.release);
  const released: ReleasedAddress[] = [];
  const outcomes: PoolDeletionReport['blocks'] = [];
  for (const block of plan.blocks) {
    const refs = byBlock.get(block.cidr) ?? [];
    if (block.node !== null) {
      const outcome = await ipam.releaseAffinity(block.node, block.cidr, { free: refs });
      outcomes.push(poolBlockOutcome(block.node, outcome));
      if (outcome.outcome === 'deleted' || outcome.outcome === 'unaffined')
        released.push(...withReasons(outcome.freed, plan.release));
      continue;
    }
    released.push(...withReasons(await ipam.releaseAllocations(block.cidr, refs), plan.release));
    try {
      await ipam.releaseBlock(block.cidr);
      outcomes.push({ cidr: block.cidr, node: null, outcome: 'deleted', remaining: 0, affinity: null });
    } catch (err) {
      if (err instanceof BlockInUseError)
        outcomes.push({
          cidr: block.cidr,
          node: null,
          outcome: 'kept',
          remaining: Number(/has (\d+)/.exec(err.message)?.[1] ?? 0),
          affinity: null,
        });
      else if (!(err instanceof NotFoundError)) throw err;
    }
  }
  for (const stray of plan.strays) {
    const outcome = await ipam.releaseStrayAffinity(stray.node, stray.cidr);
    if (outcome !== null) outcomes.push(poolBlockOutcome(stray.node, outcome));
  }
  const tunnelsCleared: PoolDeletionReport['tunnelsCleared'] = [];
  for (const r of released) {
    if (r.reason.why !== 'tunnel') continue;
    // IPIP's Node.spec.bgp.ipv4IPIPTunnelAddr, VXLAN's Node.spec.ipv4VXLANTunnelAddr: the agent assigns a new one.
    const field = r.handle?.startsWith(TUNNEL_HANDLE_PREFIXES[0])
      ? 'ipip'
      : r.handle?.startsWith(TUNNEL_HANDLE_PREFIXES[1])
        ? 'vxlan'
        : null;
    if (field !== null && (await clearTunnelAddress(ds, r.reason.node, r.ip, field)))
      tunnelsCleared.push({ node: r.reason.node, ip: r.ip, ...(field === 'vxlan' ? { kind: 'vxlan' as const } : {}) });
  }
  // Anything allocated in the pool now came while we worked (an assign that read the pool before it was
  // disabled): refuse rather than delete the pool under it.
  const late = planPoolRelease(pool, await readSnapshot(ds));
  const newcomers = [...late.release, ...late.suspects].map((a) => ({
    ...a,
    holder: `handle ${a.handle ?? '(none)'}, no workload yet`,
  }));
  if (late.inUse.length + newcomers.length > 0) {
    await restore(
      { ...late, inUse: [...late.inUse, ...newcomers] },
      'they got their addresses while the pool was being deleted',
    );
  }
  try {
    await ds.delete('IPPool', name, { revision: pool.metadata.resourceVersion ?? '' });
  } catch (err) {
    if (err instanceof ConflictError)
      throw new Error(
        `IPPool "${name}" was changed by someone else while it was being deleted (its IPAM state is released and it is disabled); run the delete again`,
        { cause: err },
      );
    throw err;
  }
  return { pool: name, cidr: original.spec.cidr, disabled: disabling, released, blocks: outcomes, tunnelsCleared };
}

/** Clears Node `node`'s IPIP (ipv4IPIPTunnelAddr) or VXLAN (ipv4VXLANTunnelAddr) tunnel address when it is still `ip`; true when cleared. Bounded retries. */
async function clearTunnelAddress(
  ds: Datastore,
  node: string,
  ip: string,
  field: 'ipip' | 'vxlan' = 'ipip',
): Promise<boolean> {
  for (let attempt = 0; attempt < 10; attempt++) {
    const current = await ds.get('Node', node);
    const address = field === 'ipip' ? current?.spec.bgp?.ipv4IPIPTunnelAddr : current?.spec.ipv4VXLANTunnelAddr;
    if (!current || address === undefined || (address.split('/')[0] ?? '') !== ip) return false;
    const spec = { ...current.spec };
    if (field === 'ipip') {
      const bgp = { ...current.spec.bgp };
      delete bgp.ipv4IPIPTunnelAddr;
      spec.bgp = bgp;
    } else {
      delete spec.ipv4VXLANTunnelAddr;
    }
    try {
      await ds.update({ ...current, spec });
      return true;
    } catch (err) {
      if (!(err instanceof ConflictError)) throw err;
    }
  }
  throw new Error(
    `Node "${node}": could not clear ipv4IPIPTunnelAddr ${ip} after 10 attempts (others kept writing it)`,
  );
}
