// What `tortie delete` does for a Node or an IPPool besides deleting the resource: the node's or the
// pool's IPAM state is released (src/ipam/teardown.ts decides what and carries it out), and what was
// released is said line by line, so the person deleting sees which addresses went back to the pool and
// which blocks stay for whom. The checks that refuse a deletion before anything is written live here too,
// so `delete KIND NAME...` and `delete -f` refuse the same things with the same words.
//
// A node takes with it, in calicoctl's order (libcalico-go clientv3/node.go Delete): its IPAM state, its
// workload endpoints, its own BGP configuration — the BGPPeers whose spec.node is the node and the
// BGPConfiguration node.<name> — and last the Node. (calicoctl also deletes the node's FelixConfiguration
// node.<name> and HostEndpoints; tortie has neither kind.) Peers that select the node with nodeSelector,
// or peer with it by peerIP/peerSelector, are other nodes' configuration and stay.
//
// Why this is hard: a Node on the kubernetes datastore is the Kubernetes Node — tortie cannot delete it,
// and while it exists its pods may run — so its IPAM state is released only once it is gone (kubectl
// delete node), by running `tortie delete node X` then; that run has no Node to delete, only what it left.
// Everything that can refuse is checked before the first write; a write can still fail half-way (the
// datastore goes away): then the error says what was done and what was not, and running the same delete
// again does the rest (the Node is deleted last, and a node already gone with state left is accepted).

import type { Datastore } from '../datastore/types.js';
import { ConflictError, NotFoundError } from '../datastore/types.js';
import {
  deletePool,
  hostPlanIsEmpty,
  planHostRelease,
  poolDeletionRefusal,
  readSnapshot,
  releaseHost,
  type HostReleaseReport,
  type PoolDeletionReport,
  type ReleasedAddress,
  type TeardownOptions,
} from '../ipam/teardown.js';
import { resourceKey } from '../resources/kinds.js';
import type { AnyResource, Resource } from '../resources/types.js';

/** The refusal to delete Node `name` on this datastore, or null. */
export function nodeDeleteRefusal(datastoreType: string, name: string, nodeExists: boolean): string | null {
  if (datastoreType !== 'kubernetes' || !nodeExists) return null;
  return (
    `Node "${name}" is the Kubernetes Node on the kubernetes datastore, and tortie does not delete it: drain it and run ` +
    `"kubectl delete node ${name}", then run "tortie delete node ${name}" again to release its IPAM state (blocks, affinities, tunnel address) and delete its own BGPPeers and BGPConfiguration`
  );
}

/** The node's own BGP configuration, deleted with it (see the header). */
export interface NodeBgpPlan {
  /** BGPPeers whose spec.node is the node. */
  peers: Array<Resource<'BGPPeer'>>;
  /** The BGPConfiguration named node.<name>, if there is one. */
  config: Resource<'BGPConfiguration'> | null;
}

/** The name of `node`'s own BGPConfiguration (Calico's "node.<name>"). */
export function nodeBgpConfigName(node: string): string {
  return `node.${node}`;
}

/** What of the stored BGP configuration is `node`'s own (pure). */
export function planNodeBgp(
  node: string,
  peers: ReadonlyArray<Resource<'BGPPeer'>>,
  configs: ReadonlyArray<Resource<'BGPConfiguration'>>,
): NodeBgpPlan {
  return {
    peers: peers.filter((p) => p.spec.node === node).sort((a, b) => a.metadata.name.localeCompare(b.metadata.name)),
    config: configs.find((c) => c.metadata.name === nodeBgpConfigName(node)) ?? null,
  };
}

async function readBgp(
  ds: Datastore,
): Promise<{ peers: Array<Resource<'BGPPeer'>>; configs: Array<Resource<'BGPConfiguration'>> }> {
  const [peers, configs] = await Promise.all([ds.list('BGPPeer'), ds.list('BGPConfiguration')]);
  return { peers: peers.items, configs: configs.items };
}

/**
 * Nodes among `names` that have no Node resource but left IPAM state or their own BGP configuration
 * (deleting them removes that; see the header).
 */
export async function nodesWithStateLeft(ds: Datastore, names: readonly string[]): Promise<Set<string>> {
  if (names.length === 0) return new Set();
  const [snapshot, bgp] = await Promise.all([readSnapshot(ds), readBgp(ds)]);
  const existing = new Set(snapshot.nodes.map((n) => n.metadata.name));
  const left = (name: string): boolean => {
    const own = planNodeBgp(name, bgp.peers, bgp.configs);
    const ipam = planHostRelease(name, snapshot);
    // On kubernetes the node's workloads are Pods, Kubernetes' to remove: they are not state it left to tortie.
    const workloads = ds.type === 'kubernetes' ? [] : ipam.workloads;
    return !hostPlanIsEmpty({ ...ipam, workloads }) || own.peers.length > 0 || own.config !== null;
  };
  return new Set(names.filter((name) => !existing.has(name) && left(name)));
}

/**
 * Deleting a Node failed after something was written. `text`: the lines saying what was done (as a
 * successful run prints them); the message says what failed, what was done and what was not.
 */
export class NodeDeletionError extends Error {
  constructor(
    message: string,
    readonly text: string,
    options: { cause: unknown },
  ) {
    super(message, options);
    this.name = 'NodeDeletionError';
  }
}

/**
 * Every reason deleting these stored resources would be refused now (read-only), keyed by resourceKey:
 * a Node on Kubernetes, an IPPool whose addresses workloads hold. Other kinds are never refused here.
 */
export async function deleteRefusals(ds: Datastore, stored: readonly AnyResource[]): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  for (const resource of stored) {
    if (resource.kind === 'Node') {
      const refusal = nodeDeleteRefusal(ds.type, resource.metadata.name, true);
      if (refusal !== null) out.set(resourceKey(resource), refusal);
    } else if (resource.kind === 'IPPool') {
      const refusal = await poolDeletionRefusal(ds, resource);
      if (refusal !== null) out.set(resourceKey(resource), refusal.message);
    }
  }
  return out;
}

export { readSnapshot };

/** What deleting one node did, step by step (formatNodeDeletion says it). */
export interface NodeDeletion {
  node: string;
  /** A Node resource existed when the deletion started. */
  nodeExisted: boolean;
  /** The IPAM release (null: not done). */
  ipam: HostReleaseReport | null;
  /** WorkloadEndpoints deleted, "namespace/name". */
  endpoints: string[];
  /** The node's own BGPPeers deleted. */
  peers: Array<Resource<'BGPPeer'>>;
  /** Its BGPConfiguration node.<name>, when deleted. */
  config: string | null;
}

/**
 * Releases node `name`'s IPAM state, deletes its workload endpoints (where they are tortie's to delete),
 * its own BGPPeers and BGPConfiguration, then the Node when it exists (calicoctl's order). Returns whether
 * a Node was deleted and the lines saying what was done; a failure once past the checks (writing may
 * have begun) is a NodeDeletionError saying what was and was not done.
 */
export async function deleteNode(
  ds: Datastore,
  name: string,
  options: TeardownOptions = {},
): Promise<{ deleted: boolean; text: string }> {
  const node = await ds.get('Node', name);
  const refusal = nodeDeleteRefusal(ds.type, name, node !== null);
  if (refusal !== null) throw new Error(refusal);
  const bgpState = await readBgp(ds);
  const bgp = planNodeBgp(name, bgpState.peers, bgpState.configs);
  const done: NodeDeletion = {
    node: name,
    nodeExisted: node !== null,
    ipam: null,
    endpoints: [],
    peers: [],
    config: null,
  };
  // The steps not taken yet, as said to people when one fails.
  const endpointsStep = ds.type !== 'kubernetes' ? ['its WorkloadEndpoints'] : [];
  const todo = [
    'its IPAM state',
    ...endpointsStep,
    ...bgp.peers.map((p) => `BGPPeer ${p.metadata.name}`),
    ...(bgp.config !== null ? [`BGPConfiguration ${bgp.config.metadata.name}`] : []),
    ...(node !== null ? ['the Node itself'] : []),
  ];
  const step = async <T>(label: string, what: string, action: () => Promise<T>): Promise<T> => {
    let result: T;
    try {
      result = await action();
    } catch (err) {
      throw new NodeDeletionError(partialMessage(done, what, err, todo), formatNodeDeletion(done), { cause: err });
    }
    todo.splice(todo.indexOf(label), 1);
    return result;
  };
  done.ipam = await step('its IPAM state', 'releasing its IPAM state', () => releaseHost(ds, name, options));
  if (ds.type !== 'kubernetes') {
    // As calicoctl: the node's endpoints go with it. On kubernetes they are its Pods, which Kubernetes removes.
    const labels = done.ipam.workloads.map((w) => `WorkloadEndpoint ${endpointKey(w)}`);
    todo.splice(todo.indexOf('its WorkloadEndpoints'), 1, ...labels);
    for (const w of done.ipam.workloads) {
      const key = endpointKey(w);
      const remove = (): Promise<boolean> =>
        deleteIfThere(() =>
          ds.delete('WorkloadEndpoint', w.metadata.name, { namespace: w.metadata.namespace ?? 'default' }),
        );
      if (await step(`WorkloadEndpoint ${key}`, `deleting WorkloadEndpoint ${key}`, remove)) done.endpoints.push(key);
    }
  }
  for (const peer of bgp.peers) {
    const label = `BGPPeer ${peer.metadata.name}`;
    if (await step(label, `deleting ${label}`, () => deleteOwnPeer(ds, name, peer))) done.peers.push(peer);
  }
  if (bgp.config !== null) {
    const label = `BGPConfiguration ${bgp.config.metadata.name}`;
    const config = bgp.config.metadata.name;
    if (await step(label, `deleting ${label}`, () => deleteIfThere(() => ds.delete('BGPConfiguration', config))))
      done.config = config;
  }
  let deleted = false;
  if (node !== null)
    deleted = await step('the Node itself', 'deleting the Node itself', () =>
      deleteIfThere(() => ds.delete('Node', name)),
    );
  return { deleted, text: formatNodeDeletion(done) };
}

function endpointKey(w: Resource<'WorkloadEndpoint'>): string {
  return `${w.metadata.namespace ?? 'default'}/${w.metadata.name}`;
}

/** Runs a delete; false when there was nothing to delete (someone else did). */
async function deleteIfThere(remove: () => Promise<unknown>): Promise<boolean> {
  try {
    await remove();
    return true;
  } catch (err) {
    if (err instanceof NotFoundError) return false;
    throw err;
  }
}

/**
 * Deletes `peer` while it is still `node`'s (compare-and-swap on the revision read; a peer changed to
 * another node meanwhile is no longer this node's, and stays). False when it was not deleted.
 */
async function deleteOwnPeer(ds: Datastore, node: string, peer: Resource<'BGPPeer'>): Promise<boolean> {
  let current = peer;
  for (let attempt = 0; attempt < 5; attempt++) {
    try {
      await ds.delete('BGPPeer', current.metadata.name, { revision: current.metadata.resourceVersion ?? '' });
      return true;
    } catch (err) {
      if (err instanceof NotFoundError) return false;
      if (!(err instanceof ConflictError)) throw err;
    }
    const again = await ds.get('BGPPeer', peer.metadata.name);
    if (again === null || again.spec.node !== node) return false;
    current = again;
  }
  throw new Error(`BGPPeer "${peer.metadata.name}" kept changing while it was being deleted (5 attempts)`);
}

/** "Node "n": deleting BGPPeer p failed: <why>. Done before it: ...; not done: ...; run ... again." */
function partialMessage(done: NodeDeletion, what: string, err: unknown, left: string[]): string {
  const reason = err instanceof Error ? err.message : String(err);
  const did: string[] = [];
  const hadIpam =
    done.ipam !== null && done.ipam.released.length + done.ipam.blocks.length + done.ipam.handles.length > 0;
  if (done.ipam !== null)
    did.push(hadIpam ? 'released its IPAM state (listed above)' : 'released its IPAM state (it had none)');
  else
    did.push(
      'possibly part of its IPAM state: the blocks released before the failure (each with one compare-and-swap, none left half-done)',
    );
  for (const e of done.endpoints) did.push(`deleted WorkloadEndpoint ${e}`);
  for (const p of done.peers) did.push(`deleted BGPPeer ${p.metadata.name}`);
  if (done.config !== null) did.push(`deleted BGPConfiguration ${done.config}`);
  return (
    `Node "${done.node}": ${what} failed: ${reason}. Done before it: ${did.join(', ')}. ` +
    `Not done: ${left.map((l) => (l === 'its IPAM state' ? 'the rest of its IPAM state' : l)).join(', ') || 'nothing'}. Run "tortie delete node ${done.node}" again to do the rest`
  );
}

/** Deletes IPPool `name` with its IPAM state (src/ipam/teardown.ts deletePool); the lines saying what went. */
export async function deleteIpPool(ds: Datastore, name: string, options: TeardownOptions = {}): Promise<string> {
  return formatPoolDeletion(await deletePool(ds, name, options));
}

function reasonText(a: ReleasedAddress): string {
  switch (a.reason.why) {
    case 'tunnel':
      return `tunnel address of node ${a.reason.node}`;
    case 'workload':
      return `workload ${a.reason.endpoint} on node ${a.reason.node}`;
    case 'leaked':
      return 'leaked: no workload holds it';
    case 'borrowed':
      return `leaked: node ${a.reason.node} borrowed it from ${a.reason.owner === null ? 'a block of no node' : `node ${a.reason.owner}'s block`}; no workload holds it`;
  }
}

function addressLines(released: ReleasedAddress[]): string[] {
  return [...released]
    .sort((a, b) => ipOrder(a.ip, b.ip))
    .map((a) => `  released ${a.ip} (${a.handle ?? 'no handle'}): ${reasonText(a)}`);
}

function ipOrder(a: string, b: string): number {
  const n = (ip: string): number => (ip.split('/')[0] ?? '').split('.').reduce((acc, o) => acc * 256 + Number(o), 0);
  return n(a) - n(b);
}

/** The lines `tortie delete node` prints for one node ('' when it had nothing to release or delete). */
export function formatNodeDeletion(d: NodeDeletion): string {
  const report = d.ipam;
  const lines = report === null ? [] : addressLines(report.released);
  for (const block of report === null ? [] : [...report.blocks].sort((a, b) => ipOrder(a.cidr, b.cidr))) {
    switch (block.outcome) {
      case 'deleted':
        lines.push(`  block ${block.cidr}: empty, deleted with its affinity`);
        break;
      case 'unaffined': {
        const kept = report!.kept.filter((k) => k.cidr === block.cidr);
        const who = kept.map((k) => `${k.ip} (${k.holder})`).join(', ');
        lines.push(
          `  block ${block.cidr}: affinity released; the block stays for ${block.remaining} address(es) still in use${who ? `: ${who}` : ''}`,
        );
        break;
      }
      case 'no-block':
        if (block.affinity !== null)
          lines.push(`  affinity to ${block.cidr} (${block.affinity}, no such block): deleted`);
        break;
      case 'not-affine':
        if (block.affinity !== null)
          lines.push(
            `  affinity to ${block.cidr} (${block.affinity}, the block is ${block.owner === null ? 'no node' : `node ${block.owner}`}'s): deleted`,
          );
        break;
    }
  }
  for (const handle of report?.handles ?? []) lines.push(`  IPAMHandle ${handle}: held nothing, deleted`);
  for (const endpoint of d.endpoints) lines.push(`  WorkloadEndpoint ${endpoint}: deleted`);
  const ipamSaid = lines.length > 0;
  for (const peer of d.peers)
    lines.push(`  BGPPeer ${peer.metadata.name} (${peerText(peer)}, this node's only): deleted`);
  if (d.config !== null) lines.push(`  BGPConfiguration ${d.config} (this node's own BGP settings): deleted`);
  if (report !== null && report.reclaimed.length > 0) {
    lines.push(
      `  warning: node ${d.node} claimed ${report.reclaimed.join(', ')} again while this ran: its agent or CNI plugin is still running there; ` +
        `stop tortie on ${d.node} and run "tortie delete node ${d.node}" again`,
    );
  }
  if (lines.length === 0) return '';
  const bgpSaid = d.peers.length > 0 || d.config !== null;
  const what = [
    ...(ipamSaid || !bgpSaid ? ['released its IPAM state'] : []),
    ...(bgpSaid ? ['deleted its own BGP configuration'] : []),
  ].join(' and ');
  const head = d.nodeExisted ? `Node "${d.node}": ${what}` : `Node "${d.node}" was already gone; ${what}`;
  return `${head}\n${lines.join('\n')}\n`;
}

/** "198.18.0.50 AS 65001", or the peers it selects. */
function peerText(peer: Resource<'BGPPeer'>): string {
  const as = peer.spec.asNumber !== undefined ? ` AS ${peer.spec.asNumber}` : '';
  if (peer.spec.peerIP !== undefined) return `peer ${peer.spec.peerIP}${as}`;
  return `peers ${peer.spec.peerSelector ?? '(none)'}${as}`;
}

/** The lines `tortie delete ippool` prints for one pool ('' when it had no IPAM state). */
export function formatPoolDeletion(report: PoolDeletionReport): string {
  const lines = addressLines(report.released).map((line) => {
    const cleared = report.tunnelsCleared.find((t) => line.startsWith(`  released ${t.ip} `));
    const field = cleared?.kind === 'vxlan' ? 'ipv4VXLANTunnelAddr' : 'ipv4IPIPTunnelAddr';
    return cleared
      ? `${line}; Node ${cleared.node}'s ${field} cleared, so its agent takes one from another ${cleared.kind === 'vxlan' ? 'VXLAN' : 'IPIP'} pool`
      : line;
  });
  for (const block of [...report.blocks].sort((a, b) => ipOrder(a.cidr, b.cidr))) {
    const owner = block.node === null ? '' : ` (node ${block.node})`;
    if (block.outcome === 'deleted')
      lines.push(`  block ${block.cidr}${owner}: empty, deleted${block.node === null ? '' : ' with its affinity'}`);
    else if (block.outcome === 'kept')
      lines.push(
        `  block ${block.cidr}${owner}: kept without affinity, ${block.remaining} address(es) still allocated`,
      );
    else if (block.affinity !== null)
      lines.push(
        `  affinity of node ${block.node ?? '?'} to ${block.cidr} (${block.affinity}, no such block): deleted`,
      );
  }
  if (lines.length === 0) return '';
  return `IPPool "${report.pool}" (${report.cidr}): ${report.disabled ? 'disabled, then ' : ''}its IPAM state released\n${lines.join('\n')}\n`;
}
