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

import { familyBits, formatAddress, parseAddress, parseCidr, type Cidr as Prefix } from '../resources/cidr.js';
import { addressAt, compareNetText, netContains, parseNet } from './prefix.js';
import type { Datastore } from '../datastore/types.js';
import type { IPAMBlockSpec, Resource } from '../resources/types.js';
import { ATTRIBUTE_KEYS, attributesAt } from './attributes.js';
import { affineNode } from './block.js';
import { affinityName, tunnelHandleNode } from '../resources/ipam-names.js';

type Block = Resource<'IPAMBlock'>;
type Affinity = Resource<'BlockAffinity'>;
type Handle = Resource<'IPAMHandle'>;

/** IPAM's own objects: what the structure checks read (and what the tests' readIpamState gives). */
export interface IpamObjects {
  blocks: Block[];
  affinities: Affinity[];
  handles: Handle[];
}

/** Everything the check reads, each kind one list. */
export interface IpamCheckSnapshot extends IpamObjects {
  pools: Array<Resource<'IPPool'>>;
  nodes: Array<Resource<'Node'>>;
  workloads: Array<Resource<'WorkloadEndpoint'>>;
}

export async function readIpamObjects(ds: Datastore): Promise<IpamObjects> {
  const [blocks, affinities, handles] = await Promise.all([
    ds.list('IPAMBlock'),
    ds.list('BlockAffinity'),
    ds.list('IPAMHandle'),
  ]);
  return { blocks: blocks.items, affinities: affinities.items, handles: handles.items };
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

/**
 * Every kind of finding: its scope, whether it is about one address (listed with --show-problem-ips) or an
 * object (always listed), and the summary line of the text report (calicoctl's wording where it has one).
 */
export const FINDINGS = {
  'leaked-address': {
    scope: 'cluster',
    perAddress: true,
    title: 'leaked',
    summary: 'IPs that are allocated in IPAM but not in use by a workload or node (leaked)',
  },
  'outside-pools': {
    scope: 'cluster',
    perAddress: true,
    title: 'not in a pool',
    summary: 'in-use IPs that are not in any active IP pool',
  },
  'not-allocated': {
    scope: 'cluster',
    perAddress: true,
    title: 'not allocated',
    summary: 'in-use IPs that are in an active IP pool but have no IPAM allocation',
  },
  'multiple-owners': {
    scope: 'cluster',
    perAddress: true,
    title: 'two owners',
    summary: 'in-use IPs with more than one owner',
  },
  'node-gone': {
    scope: 'cluster',
    perAddress: false,
    title: 'node gone',
    summary: 'IPAM blocks affine to nodes that no longer exist',
  },
  'block-outside-pools': {
    scope: 'cluster',
    perAddress: false,
    title: 'block in no pool',
    summary: 'IPAM blocks in no IP pool',
  },
  'invalid-block': { scope: 'structure', perAddress: false, title: 'invalid block', summary: 'invalid IPAM blocks' },
  'affinity-missing': {
    scope: 'structure',
    perAddress: false,
    title: 'no affinity',
    summary: 'blocks affine to a node without its BlockAffinity',
  },
  'affinity-not-confirmed': {
    scope: 'structure',
    perAddress: false,
    title: 'affinity not confirmed',
    summary: 'blocks whose BlockAffinity is pending or pendingDeletion (not advertised)',
  },
  'affinity-without-block': {
    scope: 'structure',
    perAddress: false,
    title: 'affinity without block',
    summary: 'BlockAffinities without their block',
  },
  'affinity-mismatch': {
    scope: 'structure',
    perAddress: false,
    title: 'affinity of another node',
    summary: 'BlockAffinities whose block is affine to another node (or none)',
  },
  'handle-missing': {
    scope: 'structure',
    perAddress: false,
    title: 'no handle',
    summary: 'handles mentioned in blocks with no matching IPAMHandle',
  },
  'handle-count': {
    scope: 'structure',
    perAddress: false,
    title: 'handle miscounts',
    summary: 'IPAMHandles whose counts differ from what the blocks hold',
  },
  'handle-leaked': {
    scope: 'structure',
    perAddress: false,
    title: 'leaked handle',
    summary: 'IPAMHandles with no matching IPs',
  },
} as const satisfies Record<
  string,
  { scope: 'structure' | 'cluster'; perAddress: boolean; title: string; summary: string }
>;

export type FindingKind = keyof typeof FINDINGS;
export const FINDING_KINDS = Object.keys(FINDINGS) as FindingKind[];

export interface Finding {
  kind: FindingKind;
  /** The object it is about: `IPAMBlock 10.244.1.0/26`, `Workload(default/web-1)`, `IPAMHandle k8s-pod-network.abc`. */
  object: string;
  address?: string;
  handle?: string;
  /** What is wrong, one sentence. */
  detail: string;
  /** What to do about it, one sentence. */
  action: string;
}

/** One allocated or in-use address, as calicoctl's report lists it. */
export interface AddressRecord {
  ip: string;
  /** The block holding its allocation, or null when IPAM has none. */
  block: string | null;
  handle: string | null;
  /** The allocation's attributes (./attributes.ts), when it has them. */
  node?: string;
  namespace?: string;
  pod?: string;
  type?: string;
  timestamp?: string;
  /** Allocated in a block affine to another node than the one it was assigned for. */
  borrowed: boolean;
  /** Who uses it: `Workload(ns/name)`, `Node(name)` (calicoctl's names). */
  owners: string[];
  inUse: boolean;
}

export interface IpamCheckReport {
  counts: {
    pools: number;
    activePools: number;
    blocks: number;
    allocations: number;
    nodes: number;
    nodeTunnelIps: number;
    workloadIps: number;
    inUseIps: number;
    handles: number;
  };
  findings: Finding[];
  /** Every allocated or in-use address, ordered by address. */
  addresses: AddressRecord[];
}

/** "IPAMBlock 10.244.1.0/26: 63 allocation slots, expected 64": a finding as one sentence. */
export function findingSentence(f: Finding): string {
  return `${f.object}: ${f.detail}`;
}

const plural = (n: number, one: string, many = `${one}s`): string => `${n} ${n === 1 ? one : many}`;

function tryPrefix(cidr: string): Prefix | null {
  try {
    return parseNet(cidr);
  } catch {
    return null;
  }
}

const bareIp = (text: string): string => text.split('/')[0] ?? '';

function canonicalIp(ip: string): string {
  const parsed = ip.includes(':') ? parseAddress(ip) : null;
  return parsed === null ? ip : formatAddress(parsed.family, parsed.addr);
}

/** Why a block is not well-formed (Calico's validateBlock facts), one sentence each. */
function blockDefects(spec: IPAMBlockSpec): string[] {
  const out: string[] = [];
  const prefix = tryPrefix(spec.cidr);
  if (prefix === null) return [`cidr "${spec.cidr}" is not a prefix like 10.244.1.0/26 or fd00:10:244::40/122`];
  const size = 2 ** (familyBits(prefix.family) - prefix.len);
  if (spec.allocations.length !== size) out.push(`${spec.allocations.length} allocation slots, expected ${size}`);
  const used = new Set<number>();
  spec.allocations.forEach((attr, ordinal) => {
    if (attr === null) return;
    used.add(attr);
    const attribute = spec.attributes[attr];
    if (attribute === undefined)
      out.push(
        `ordinal ${ordinal} points at attribute ${attr}, which does not exist (${spec.attributes.length} attributes)`,
      );
    else if (!attribute.handle_id) out.push(`ordinal ${ordinal} points at attribute ${attr}, which names no handle`);
  });
  spec.attributes.forEach((_, i) => {
    if (!used.has(i)) out.push(`attribute ${i} is not pointed at by any allocation`);
  });
  const seen = new Set<number>();
  for (const ordinal of spec.unallocated) {
    if (!Number.isInteger(ordinal) || ordinal < 0 || ordinal >= size)
      out.push(`ordinal ${ordinal} in unallocated is outside the block (0..${size - 1})`);
    else if (seen.has(ordinal)) out.push(`ordinal ${ordinal} appears more than once in unallocated`);
    else if (spec.allocations[ordinal] !== null && spec.allocations[ordinal] !== undefined)
      out.push(`ordinal ${ordinal} is allocated but listed in unallocated`);
    seen.add(ordinal);
  }
  const free = spec.allocations.flatMap((a, i) => (a === null && !seen.has(i) ? [i] : []));
  if (free.length > 0) out.push(`free ordinal(s) ${free.join(',')} missing from unallocated (never handed out again)`);
  return out;
}

/** The structure findings: IPAM's own objects against each other (what the tests' ipamProblems checks). */
export function structureFindings(state: IpamObjects, existingNodes?: ReadonlySet<string>): Finding[] {
  const findings: Finding[] = [];
  const gone = (node: string): boolean => existingNodes !== undefined && !existingNodes.has(node);
  const deleteNode = (node: string): string =>
    `node ${node} no longer exists: \`tortie delete node ${node}\` releases what it left`;
  const counted = new Map<string, Map<string, number>>();
  for (const block of state.blocks) {
    if (block.spec.deleted === true) continue;
    const { cidr } = block.spec;
    const object = `IPAMBlock ${cidr}`;
    for (const defect of blockDefects(block.spec)) {
      findings.push({
        kind: 'invalid-block',
        object,
        detail: defect,
        action:
          'the block was written by hand or by a broken writer; IPAM may hand out its addresses twice or never: fix or re-create it while no node assigns from it',
      });
    }
    block.spec.allocations.forEach((attr) => {
      const handle = attr === null ? undefined : block.spec.attributes[attr]?.handle_id;
      if (!handle) return;
      const perBlock = counted.get(handle) ?? new Map<string, number>();
      perBlock.set(cidr, (perBlock.get(cidr) ?? 0) + 1);
      counted.set(handle, perBlock);
    });
    const node = affineNode(block.spec);
    if (node === null) continue;
    const affinity = state.affinities.find((a) => a.spec.node === node && a.spec.cidr === cidr);
    if (!affinity) {
      findings.push({
        kind: 'affinity-missing',
        object,
        detail: `affine to ${node} but there is no BlockAffinity ${affinityName(node, cidr)}: the block is used but never advertised`,
        action: gone(node)
          ? deleteNode(node)
          : `a claim or release of ${node} stopped half-way; \`tortie delete node ${node}\` gives the block up when the node is retired, else restart its agent and run again`,
      });
    } else if (affinity.spec.state !== 'confirmed') {
      const pending = affinity.spec.state === 'pending';
      findings.push({
        kind: 'affinity-not-confirmed',
        object,
        detail: `affine to ${node} but its BlockAffinity ${affinity.metadata.name} is ${affinity.spec.state}: not advertised`,
        action: gone(node)
          ? deleteNode(node)
          : pending
            ? `a claim by ${node} is running or stopped half-way: run again; ${node}'s agent settles it at startup (restart it if it stays)`
            : `a release of the block stopped half-way: ${node}'s agent settles it at startup (restart it), or run the interrupted \`tortie delete\` again`,
      });
    }
  }
  for (const affinity of state.affinities) {
    if (affinity.spec.deleted === true) continue;
    const { node, cidr, state: st } = affinity.spec;
    const object = `BlockAffinity ${affinity.metadata.name}`;
    const block = state.blocks.find((b) => b.spec.cidr === cidr && b.spec.deleted !== true);
    if (!block) {
      findings.push({
        kind: 'affinity-without-block',
        object,
        detail: `(${st}) names node ${node} and block ${cidr}, which does not exist`,
        action: gone(node)
          ? deleteNode(node)
          : st === 'pending'
            ? `a claim by ${node} is running or stopped before creating the block: run again; ${node}'s agent removes it at startup`
            : `a release stopped after deleting the block: ${node}'s agent removes it at startup (restart it), \`tortie delete node ${node}\` when the node is retired`,
      });
    } else if (block.spec.affinity !== `host:${node}`) {
      const owner = affineNode(block.spec);
      findings.push({
        kind: 'affinity-mismatch',
        object,
        detail: `(${st}) names node ${node}, but block ${cidr} is affine to ${owner ?? 'no node'}`,
        action: gone(node)
          ? deleteNode(node)
          : `a release by ${node} stopped half-way: ${node}'s agent removes it at startup (restart it); the block belongs to ${owner ?? 'no node'}`,
      });
    }
  }
  const stored = new Map<string, Handle>();
  for (const h of state.handles) {
    stored.set(h.spec.handleID, h);
    if (!stored.has(h.metadata.name)) stored.set(h.metadata.name, h);
  }
  for (const [handle, perBlock] of counted) {
    const record = stored.get(handle);
    const total = [...perBlock.values()].reduce((a, b) => a + b, 0);
    if (!record) {
      findings.push({
        kind: 'handle-missing',
        object: `handle ${handle}`,
        handle,
        detail: `holds ${plural(total, 'address', 'addresses')} (${[...perBlock.keys()].join(', ')}) but there is no IPAMHandle`,
        action:
          'a write stopped between the block and the handle; the blocks decide what is free, so nothing is handed out twice: releasing the handle frees its addresses',
      });
      continue;
    }
    const want = Object.fromEntries([...perBlock].sort());
    const have = Object.fromEntries(Object.entries(record.spec.block).sort());
    if (JSON.stringify(want) !== JSON.stringify(have)) {
      findings.push({
        kind: 'handle-count',
        object: `IPAMHandle ${record.metadata.name}`,
        handle,
        detail: `counts ${JSON.stringify(have)}, the blocks hold ${JSON.stringify(want)}`,
        action:
          'a write stopped between the block and the handle; the blocks decide what is free, so releasing the handle still frees what they hold',
      });
    }
  }
  for (const record of state.handles) {
    if (record.spec.deleted === true || counted.has(record.spec.handleID) || counted.has(record.metadata.name))
      continue;
    const tunnelOf = tunnelHandleNode(record.spec.handleID);
    findings.push({
      kind: 'handle-leaked',
      object: `IPAMHandle ${record.metadata.name}`,
      handle: record.spec.handleID,
      detail: `no block holds an address for it (it counts ${JSON.stringify(record.spec.block)})`,
      action:
        tunnelOf !== null && gone(tunnelOf)
          ? deleteNode(tunnelOf)
          : 'left by a release that stopped before deleting it; harmless for assignment (the blocks decide what is free), and the next release or assignment with this handle rewrites it',
    });
  }
  return findings;
}

interface Owner {
  name: string;
  /** The node whose tunnel address it is, or the workload's node. */
  node: string;
}

function addressOf(prefix: Prefix, ordinal: number): string {
  return addressAt(prefix, ordinal);
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
      // IPv6 in its canonical text (RFC 5952), as the blocks' addresses are written.
      const ip = canonicalIp(bareIp(network));
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
    const addr = parseCidr(`${ip}/${ip.includes(':') ? 128 : 32}`);
    const inActive = addr !== null && activePools.some((p) => netContains(p.prefix, addr));
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
        const disabled = addr !== null && allPools.some((p) => netContains(p.prefix, addr));
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
    if (!allPools.some((p) => netContains(p.prefix, prefix))) {
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
  const ipOrder = (a?: string, b?: string): number =>
    a === undefined || b === undefined ? (a === undefined ? (b === undefined ? 0 : -1) : 1) : compareNetText(a, b);
  findings.sort(
    (a, b) =>
      (order.get(a.kind) ?? 0) - (order.get(b.kind) ?? 0) ||
      ipOrder(a.address, b.address) ||
      a.object.localeCompare(b.object),
  );

  const addresses: AddressRecord[] = [...records.values()].flat();
  for (const [ip, list] of owners) {
    if (!records.has(ip))
      addresses.push({ ip, block: null, handle: null, borrowed: false, owners: list.map((o) => o.name), inUse: true });
  }
  addresses.sort((a, b) => compareNetText(a.ip, b.ip));
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
