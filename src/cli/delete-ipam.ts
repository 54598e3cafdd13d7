// What `tortie delete` does for a Node or an IPPool besides deleting the resource: the node's or the
// pool's IPAM state is released (src/ipam/teardown.ts decides what and carries it out), and what was
// released is said line by line, so the person deleting sees which addresses went back to the pool and
// which blocks stay for whom. The checks that refuse a deletion before anything is written live here too,
// so `delete KIND NAME...` and `delete -f` refuse the same things with the same words.
//
// Why this is hard: a Node on the kubernetes datastore is the Kubernetes Node — tortie cannot delete it,
// and while it exists its pods may run — so its IPAM state is released only once it is gone (kubectl
// delete node), by running `tortie delete node X` then; that run has no Node to delete, only IPAM state.

import type { Datastore } from '../datastore/types.js';
import { NotFoundError } from '../datastore/types.js';
import {
  deletePool,
  hostPlanIsEmpty,
  planHostRelease,
  poolDeletionRefusal,
  readSnapshot,
  releaseHost,
  type HostReleaseReport,
  type IpamSnapshot,
  type PoolDeletionReport,
  type ReleasedAddress,
  type TeardownOptions,
} from '../ipam/teardown.js';
import { resourceKey } from '../resources/kinds.js';
import type { AnyResource } from '../resources/types.js';

/** The refusal to delete Node `name` on this datastore, or null. */
export function nodeDeleteRefusal(datastoreType: string, name: string, nodeExists: boolean): string | null {
  if (datastoreType !== 'kubernetes' || !nodeExists) return null;
  return (
    `Node "${name}" is the Kubernetes Node on the kubernetes datastore, and tortie does not delete it: drain it and run ` +
    `"kubectl delete node ${name}", then run "tortie delete node ${name}" again to release its IPAM state (blocks, affinities, tunnel address)`
  );
}

/** Nodes among `names` that have no Node resource but still have IPAM state (their deletion releases it). */
export function nodesWithIpamOnly(snapshot: IpamSnapshot, names: readonly string[]): Set<string> {
  const existing = new Set(snapshot.nodes.map((n) => n.metadata.name));
  return new Set(names.filter((name) => !existing.has(name) && !hostPlanIsEmpty(planHostRelease(name, snapshot))));
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

/**
 * Releases node `name`'s IPAM state, deletes its workload endpoints (where they are tortie's to delete),
 * then the Node when it exists. Returns whether a Node was deleted and the lines saying what was released.
 */
export async function deleteNode(ds: Datastore, name: string, options: TeardownOptions = {}): Promise<{ deleted: boolean; text: string }> {
  const node = await ds.get('Node', name);
  const refusal = nodeDeleteRefusal(ds.type, name, node !== null);
  if (refusal !== null) throw new Error(refusal);
  const report = await releaseHost(ds, name, options);
  const endpoints: string[] = [];
  if (ds.type !== 'kubernetes') {
    // As calicoctl: the node's endpoints go with it. On kubernetes they are its Pods, which Kubernetes removes.
    for (const w of report.workloads) {
      try {
        await ds.delete('WorkloadEndpoint', w.metadata.name, { namespace: w.metadata.namespace ?? 'default' });
        endpoints.push(`${w.metadata.namespace ?? 'default'}/${w.metadata.name}`);
      } catch (err) {
        if (!(err instanceof NotFoundError)) throw err;
      }
    }
  }
  let deleted = false;
  if (node !== null) {
    try {
      await ds.delete('Node', name);
      deleted = true;
    } catch (err) {
      if (!(err instanceof NotFoundError)) throw err;
    }
  }
  return { deleted, text: formatHostRelease(report, endpoints, node !== null) };
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
  }
}

function addressLines(released: ReleasedAddress[]): string[] {
  return [...released].sort((a, b) => ipOrder(a.ip, b.ip)).map((a) => `  released ${a.ip} (${a.handle ?? 'no handle'}): ${reasonText(a)}`);
}

function ipOrder(a: string, b: string): number {
  const n = (ip: string): number => (ip.split('/')[0] ?? '').split('.').reduce((acc, o) => acc * 256 + Number(o), 0);
  return n(a) - n(b);
}

/** The lines `tortie delete node` prints for one node ('' when it had no IPAM state). */
export function formatHostRelease(report: HostReleaseReport, endpoints: string[], nodeExisted: boolean): string {
  const lines = addressLines(report.released);
  for (const block of [...report.blocks].sort((a, b) => ipOrder(a.cidr, b.cidr))) {
    switch (block.outcome) {
      case 'deleted':
        lines.push(`  block ${block.cidr}: empty, deleted with its affinity`);
        break;
      case 'unaffined': {
        const kept = report.kept.filter((k) => k.cidr === block.cidr);
        const who = kept.map((k) => `${k.ip} (${k.holder})`).join(', ');
        lines.push(`  block ${block.cidr}: affinity released; the block stays for ${block.remaining} address(es) still in use${who ? `: ${who}` : ''}`);
        break;
      }
      case 'no-block':
        if (block.affinity !== null) lines.push(`  affinity to ${block.cidr} (${block.affinity}, no such block): deleted`);
        break;
      case 'not-affine':
        if (block.affinity !== null) lines.push(`  affinity to ${block.cidr} (${block.affinity}, the block is ${block.owner === null ? 'no node' : `node ${block.owner}`}'s): deleted`);
        break;
    }
  }
  for (const handle of report.handles) lines.push(`  IPAMHandle ${handle}: held nothing, deleted`);
  for (const endpoint of endpoints) lines.push(`  WorkloadEndpoint ${endpoint}: deleted`);
  if (report.reclaimed.length > 0) {
    lines.push(
      `  warning: node ${report.node} claimed ${report.reclaimed.join(', ')} again while this ran: its agent or CNI plugin is still running there; ` +
        `stop tortie on ${report.node} and run "tortie delete node ${report.node}" again`,
    );
  }
  if (lines.length === 0) return '';
  const head = nodeExisted ? `Node "${report.node}": released its IPAM state` : `Node "${report.node}" was already gone; released its IPAM state`;
  return `${head}\n${lines.join('\n')}\n`;
}

/** The lines `tortie delete ippool` prints for one pool ('' when it had no IPAM state). */
export function formatPoolDeletion(report: PoolDeletionReport): string {
  const lines = addressLines(report.released).map((line) => {
    const cleared = report.tunnelsCleared.find((t) => line.startsWith(`  released ${t.ip} `));
    return cleared ? `${line}; Node ${cleared.node}'s ipv4IPIPTunnelAddr cleared, so its agent takes one from another IPIP pool` : line;
  });
  for (const block of [...report.blocks].sort((a, b) => ipOrder(a.cidr, b.cidr))) {
    const owner = block.node === null ? '' : ` (node ${block.node})`;
    if (block.outcome === 'deleted') lines.push(`  block ${block.cidr}${owner}: empty, deleted${block.node === null ? '' : ' with its affinity'}`);
    else if (block.outcome === 'kept') lines.push(`  block ${block.cidr}${owner}: kept without affinity, ${block.remaining} address(es) still allocated`);
    else if (block.affinity !== null) lines.push(`  affinity of node ${block.node ?? '?'} to ${block.cidr} (${block.affinity}, no such block): deleted`);
  }
  if (lines.length === 0) return '';
  return `IPPool "${report.pool}" (${report.cidr}): ${report.disabled ? 'disabled, then ' : ''}its IPAM state released\n${lines.join('\n')}\n`;
}
