// The IPAM consistency check (`tortie ipam check`, calicoctl's `ipam check`): one pure function over a
// snapshot of everything IPAM touches — IPPools, IPAMBlocks, BlockAffinities, IPAMHandles, Nodes and
// WorkloadEndpoints — that lists every way the stored state is wrong, each finding naming the object, the
// address or handle, and what to do about it. The tests' invariant (test/unit/ipam/invariants.ts,
// ipamProblems) is the `structure` part of the same check, so there is one checker.
//
// Two scopes of finding (FINDINGS, one row per kind):
// - structure: IPAM's own objects disagree with each other — a block that is not well-formed (Calico's
//   validateBlock facts: one slot per address, `unallocated` lists exactly the free ordinals once each,
//   every allocation points at an attribute that names a handle, no attribute nobody points at), a block
//   affine to a node without that node's confirmed BlockAffinity (used but never advertised), an affinity
//   without its block or naming another node, an IPAMHandle whose counts are not what the blocks hold, a
//   handle the blocks name with no IPAMHandle, an IPAMHandle holding nothing.
// - cluster: IPAM against the cluster, as calicoctl checks it — an allocation no workload endpoint and
//   no Node's tunnel address holds (leaked), an address a workload or a node uses that IPAM has not
//   allocated (or that lies in no enabled pool), one address with two owners, blocks of nodes that no
//   longer exist, blocks in no pool at all.
// On the kubernetes datastore the workload endpoints are the Pods, as the datastore derives them
// (src/datastore/kube-mapping.ts: a Pod's CNI annotations or status IPs; finished Pods hold nothing).
//
// Why this is hard: a snapshot is a few lists read one after another while the cluster keeps working, so
// some findings are normal for a moment. A CNI ADD assigns the address first and records the endpoint
// after (looks leaked), an agent assigns its tunnel address and then writes it to its Node, a claim or a
// release in flight shows a `pending` / `pendingDeletion` affinity. The checker does not guess: it says
// so in the finding's advice ("run again"), and uses the allocation's own attributes (./attributes.ts:
// node, namespace, pod, type) to say whose an address was — which decides what to do: what a node that no
// longer exists left behind, `tortie delete node` releases; what an existing node's pod left, its CNI GC.

//
// The FINDINGS table and the report's shapes are in ./check-findings.ts, the structure findings in
// ./check-structure.ts; this file reads the snapshot and adds the cluster findings.

import { formatIpv4, prefixContains, tryParseIpv4, type Prefix } from '../../bgp/index.js';
import type { Datastore } from '../datastore/types.js';
import type { Resource } from '../resources/types.js';
import { ATTRIBUTE_KEYS, attributesAt } from './attributes.js';
import { affineNode } from './block.js';
import { tunnelHandleNode } from '../resources/ipam-names.js';
import {
  bareIp,
  FINDING_KINDS,
  plural,
  tryPrefix,
  type AddressRecord,
  type IpamCheckReport,
} from './check-findings.js';
import { readIpamObjects, structureFindings, type IpamObjects } from './check-structure.js';

/** Everything the check reads, each kind one list. */
export interface IpamCheckSnapshot extends IpamObjects {
  pools: Array<Resource<'IPPool'>>;
  nodes: Array<Resource<'Node'>>;
  workloads: Array<Resource<'WorkloadEndpoint'>>;
}

export async function readCheckSnapshot(ds: Datastore): Promise<IpamCheckSnapshot> {
  const [objects, pools, nodes, workloads] = await Promise.all([
    readIpamObjects(ds),
    ds.list('IPPool'),
    ds.list('Node'),
    ds.list('WorkloadEndpoint'),
  ]);
  return { ...objects, pools: pools.items, nodes: nodes.items, workloads: workloads.items };
}

interface Owner {
  name: string;
  /** The node whose tunnel address it is, or the workload's node. */
  node: string;
}

function addressOf(prefix: Prefix, ordinal: number): string {
  return formatIpv4((prefix.addr + ordinal) >>> 0);
}

/** What to do with an address no workload or node holds, from what its allocation says about itself. */
function leakAdvice(
  record: AddressRecord,
  blockNode: string | null,
  nodes: ReadonlySet<string>,
  tunnelAddr: ReadonlyMap<string, string | undefined>,
): { detail: string; action: string } {
  const tunnelOf = tunnelHandleNode(record.handle);
  const runAgain = 'run again';
  if (tunnelOf !== null) {
    if (!nodes.has(tunnelOf))
      return {
        detail: `tunnel address of node ${tunnelOf}, which no longer exists`,
        action: `\`tortie delete node ${tunnelOf}\` releases what it left`,
      };
    const recorded = tunnelAddr.get(tunnelOf);
    return {
      detail: `tunnel address of node ${tunnelOf}, whose Node records ${recorded === undefined ? 'no tunnel address' : `tunnel address ${recorded}`}`,
      action: `the agent writes its tunnel address to its Node just after assigning it: ${runAgain}; if it stays, restart the agent on ${tunnelOf}`,
    };
  }
  const pod = record.pod !== undefined ? `pod ${record.namespace ?? 'default'}/${record.pod}` : null;
  if (record.node !== undefined) {
    const who = `assigned on node ${record.node}${pod ? ` for ${pod}` : ''}${record.timestamp ? ` at ${record.timestamp}` : ''}`;
    if (!nodes.has(record.node))
      return {
        detail: `${who}; node ${record.node} no longer exists`,
        action: `\`tortie delete node ${record.node}\` releases what it left`,
      };
    return {
      detail: `${who}; no workload endpoint holds it`,
      action: `a pod being created has its address before its endpoint: ${runAgain}; if it stays, the pod is gone without its CNI DEL: the CNI GC on ${record.node} releases it (or \`tortie delete node ${record.node}\` when the node is retired)`,
    };
  }
  if (blockNode !== null && !nodes.has(blockNode))
    return {
      detail: `no attributes say whose it is; its block is affine to node ${blockNode}, which no longer exists`,
      action: `\`tortie delete node ${blockNode}\` releases what it left`,
    };
  return {
    detail:
      'written without attributes (before tortie recorded them): nothing says whose it is, and no workload endpoint holds it',
    action: `${runAgain}; if it stays, \`tortie delete node\` of the node it was assigned on releases it when that node is retired (nothing releases it sooner)`,
  };
}

/** The whole check (see the header): counts, findings (structure, then cluster), every address. */
export function checkIpam(snapshot: IpamCheckSnapshot): IpamCheckReport {
  const nodes = new Set(snapshot.nodes.map((n) => n.metadata.name));
  const findings = structureFindings(snapshot, nodes);
  const tunnelAddr = new Map(
    snapshot.nodes.map((n) => [
      n.metadata.name,
      n.spec.bgp?.ipv4IPIPTunnelAddr === undefined ? undefined : bareIp(n.spec.bgp.ipv4IPIPTunnelAddr),
    ]),
  );
  const allPools = snapshot.pools.flatMap((p) => {
    const prefix = tryPrefix(p.spec.cidr);
    return prefix === null ? [] : [{ pool: p, prefix }];
  });
  const activePools = allPools.filter((p) => p.pool.spec.disabled !== true);

  // Who uses each address (calicoctl: recordInUseIP).
  const owners = new Map<string, Owner[]>();
  const use = (ip: string, owner: Owner): void => {
    owners.set(ip, [...(owners.get(ip) ?? []), owner]);
  };
  let nodeTunnelIps = 0;
  for (const node of snapshot.nodes) {
    // Both tunnel addresses a Node records (IPIP's tunl0, VXLAN's vxlan.calico) are in use by it.
    const vxlan = node.spec.ipv4VXLANTunnelAddr === undefined ? undefined : bareIp(node.spec.ipv4VXLANTunnelAddr);
    for (const ip of [tunnelAddr.get(node.metadata.name), vxlan]) {
      if (ip === undefined || ip === '') continue;
      use(ip, { name: `Node(${node.metadata.name})`, node: node.metadata.name });
      nodeTunnelIps++;
    }
  }
  let workloadIps = 0;
  for (const w of snapshot.workloads) {
    for (const network of w.spec.ipNetworks ?? []) {
      const ip = bareIp(network);
      if (ip.includes(':')) continue; // IPv4 IPAM only
      use(ip, { name: `Workload(${w.metadata.namespace ?? 'default'}/${w.metadata.name})`, node: w.spec.node });
      workloadIps++;
    }
  }

  // Every allocation (calicoctl: recordAllocation).
  const records = new Map<string, AddressRecord[]>();
  const blockOwner = new Map<string, string | null>();
  let allocations = 0;
  for (const block of snapshot.blocks) {
    if (block.spec.deleted === true) continue;
    const prefix = tryPrefix(block.spec.cidr);
    if (prefix === null) continue;
    const owner = affineNode(block.spec);
    block.spec.allocations.forEach((attr, ordinal) => {
      if (attr === null) return;
      allocations++;
      const ip = addressOf(prefix, ordinal);
      const attrs = attributesAt(block.spec, ordinal) ?? {};
      const node = attrs[ATTRIBUTE_KEYS.node] || undefined;
      const record: AddressRecord = {
        ip,
        block: block.spec.cidr,
        handle: block.spec.attributes[attr]?.handle_id ?? null,
        ...(node ? { node } : {}),
        ...(attrs[ATTRIBUTE_KEYS.namespace] ? { namespace: attrs[ATTRIBUTE_KEYS.namespace] } : {}),
        ...(attrs[ATTRIBUTE_KEYS.pod] ? { pod: attrs[ATTRIBUTE_KEYS.pod] } : {}),
        ...(attrs[ATTRIBUTE_KEYS.type] ? { type: attrs[ATTRIBUTE_KEYS.type] } : {}),
        ...(attrs[ATTRIBUTE_KEYS.timestamp] ? { timestamp: attrs[ATTRIBUTE_KEYS.timestamp] } : {}),
        borrowed: node !== undefined && node !== owner,
        owners: (owners.get(ip) ?? []).map((o) => o.name),
        inUse: owners.has(ip),
      };
      records.set(ip, [...(records.get(ip) ?? []), record]);
      blockOwner.set(`${ip}#${block.spec.cidr}`, owner);
    });
  }

  for (const [ip, list] of records) {
    for (const record of list) {
      if (record.inUse) continue;
      const { detail, action } = leakAdvice(record, blockOwner.get(`${ip}#${record.block}`) ?? null, nodes, tunnelAddr);
      findings.push({
        kind: 'leaked-address',
        object: `IPAMBlock ${record.block}`,
        address: ip,
        ...(record.handle ? { handle: record.handle } : {}),
        detail,
        action,
      });
    }
  }
  for (const [ip, list] of owners) {
    if (list.length > 1) {
      findings.push({
        kind: 'multiple-owners',
        object: list.map((o) => o.name).join(', '),
        address: ip,
        detail: `${plural(list.length, 'owner')} use the same address; traffic reaches only one of them`,
        action: 're-create all but one of them so each gets its own address from IPAM',
      });
    }
    if (records.has(ip)) continue;
    const addr = tryParseIpv4(ip);
    const inActive = addr !== null && activePools.some((p) => prefixContains(p.prefix, addr));
    for (const o of list) {
      const isNode = o.name.startsWith('Node(');
      const redo = isNode
        ? `restart the agent on ${o.node} after clearing its Node's ipv4IPIPTunnelAddr, so it assigns one from IPAM`
        : 're-create the pod so it gets an address from IPAM';
      if (inActive) {
        findings.push({
          kind: 'not-allocated',
          object: o.name,
          address: ip,
          detail: 'uses an address in an active IP pool that IPAM has not allocated: IPAM may hand it to another pod',
          action: redo,
        });
      } else {
        const disabled = addr !== null && allPools.some((p) => prefixContains(p.prefix, addr));
        findings.push({
          kind: 'outside-pools',
          object: o.name,
          address: ip,
          detail: `uses an address in ${disabled ? 'a disabled IP pool' : 'no IP pool'}, with no IPAM allocation: no node advertises it`,
          action: `${redo}${disabled ? '' : ', or create an IPPool that covers it'}`,
        });
      }
    }
  }
  for (const block of snapshot.blocks) {
    if (block.spec.deleted === true) continue;
    const prefix = tryPrefix(block.spec.cidr);
    if (prefix === null) continue;
    const held = block.spec.allocations.filter((a) => a !== null).length;
    const node = affineNode(block.spec);
    if (node !== null && !nodes.has(node)) {
      findings.push({
        kind: 'node-gone',
        object: `IPAMBlock ${block.spec.cidr}`,
        detail: `affine to node ${node}, which no longer exists (${plural(held, 'address', 'addresses')} allocated)`,
        action: `\`tortie delete node ${node}\` releases its blocks, affinities and what it left`,
      });
    }
    if (!allPools.some((p) => p.prefix.len <= prefix.len && prefixContains(p.prefix, prefix.addr))) {
      findings.push({
        kind: 'block-outside-pools',
        object: `IPAMBlock ${block.spec.cidr}`,
        detail: `lies in no IP pool (its pool was deleted?), ${plural(held, 'address', 'addresses')} allocated: its pods are not advertised`,
        action:
          held > 0
            ? 'create an IPPool that covers it, or re-create the pods using it so they get addresses from another pool'
            : 'create an IPPool that covers it, or give the block up (`tortie delete node` of its node)',
      });
    }
  }

  const order = new Map(FINDING_KINDS.map((k, i) => [k, i]));
  const ipKey = (ip?: string): number => (ip === undefined ? -1 : (tryParseIpv4(ip) ?? -1));
  findings.sort(
    (a, b) =>
      (order.get(a.kind) ?? 0) - (order.get(b.kind) ?? 0) ||
      ipKey(a.address) - ipKey(b.address) ||
      a.object.localeCompare(b.object),
  );

  const addresses: AddressRecord[] = [...records.values()].flat();
  for (const [ip, list] of owners) {
    if (!records.has(ip))
      addresses.push({ ip, block: null, handle: null, borrowed: false, owners: list.map((o) => o.name), inUse: true });
  }
  addresses.sort((a, b) => ipKey(a.ip) - ipKey(b.ip));
  return {
    counts: {
      pools: snapshot.pools.length,
      activePools: activePools.length,
      blocks: snapshot.blocks.filter((b) => b.spec.deleted !== true).length,
      allocations,
      nodes: snapshot.nodes.length,
      nodeTunnelIps,
      workloadIps,
      inUseIps: owners.size,
      handles: snapshot.handles.length,
    },
    findings,
    addresses,
  };
}
