// Import protection: which routes a BGP peer may not make this node use, whatever the peer is (a mesh
// node, a route reflector, the office router). Always on; nothing configures it away.
//
//   judgeImport(route, peerKind, context) → null (accepted) | the reason it is refused (a value of
//   IMPORT_REFUSALS, formatted only at the edge: `tortie node routes`, logs, the metric's label).
//
// Rules, first match wins (so every refused route has one reason):
//   default-route      0.0.0.0/0 and any prefix of length 0 or 1 (0.0.0.0/1 + 128.0.0.0/1 cover it too)
//   control-plane      a prefix containing a datastore (etcd) or Kubernetes API server address: the node
//                      reaches its control plane over the routes it had before BGP
//   node-subnet        this node's own subnet or a more-specific of it (it would beat the connected route)
//   loopback / link-local / multicast   inside 127.0.0.0/8, 169.254.0.0/16 (169.254.169.254, the cloud
//                      metadata address), 224.0.0.0/4
//   service-range      inside a service CIDR of the BGPConfiguration (serviceClusterIPs, serviceExternalIPs,
//                      serviceLoadBalancerIPs) when configured — except on a route reflector, which passes
//                      its clients' service routes on as Calico's do (they never reach its kernel:
//                      ./dataplane-input.ts)
//   own-block          a block affine to this node (a remote route would outrank our blackhole)
//   longer-than-block  inside an IPPool and longer than its blockSize — except the /32 of a borrowed address
//                      (an allocation in another node's block) whose allocation names the announcing node:
//                      the node whose address is the next hop (mesh and reflector peers), or any node but
//                      this one (external routers, whose next hop may be their own)
//   unowned-block      from a node peer: a pool block no node has an affinity for
//   next-hop-not-owner from a node peer: a pool block whose next hop is not the address of the node its
//                      affinity names (reflectors pass the owner's next hop on unchanged). Routes from
//                      configured external routers are exempt: in top-of-rack designs their own address is
//                      the next hop.
// A peer is a node peer when its address is some Node's BGP address (mesh peers, reflectors and their
// clients); any other peer (a BGPPeer peerIP that is no node) is an external router.
//
// Why this is hard: the verdict depends on cluster state that changes after the route arrived (an
// affinity written a moment after the block is announced, a node moving to another address), so routes
// are judged again — but only those the change can touch (`importContextChanges`: a changed block → the
// routes inside it; a changed pool, subnet or service range → everything), so 100k routes are not
// re-judged on every unrelated event. Pure: no I/O, the agent builds the context from its cache.

import {
  formatPrefix,
  maskOf,
  parsePrefix,
  prefixContains,
  prefixKey,
  tryParseIpv4,
  tryParseIpv4Prefix,
  type Prefix,
} from '../../bgp/index.js';
import { allocationNode } from '../ipam/attributes.js';
import type { Resource } from '../resources/index.js';

/** Every reason a route can be refused, with what it means (for `tortie node routes` and the README). */
export const IMPORT_REFUSALS = {
  'default-route': 'a default route: 0.0.0.0/0 or a prefix of length 1 (two of them cover everything)',
  'control-plane': 'contains a datastore (etcd) or Kubernetes API server address',
  'node-subnet': "this node's own subnet or a more-specific of it",
  loopback: 'inside 127.0.0.0/8',
  'link-local': 'inside 169.254.0.0/16 (link-local, cloud metadata)',
  multicast: 'inside 224.0.0.0/4 (multicast)',
  'service-range': 'inside a service CIDR of the BGPConfiguration',
  'own-block': "one of this node's own IPAM blocks",
  'longer-than-block':
    'inside an IP pool and longer than its blockSize (not a borrowed address of the node that announces it)',
  'unowned-block': 'a pool block no node has an affinity for',
  'next-hop-not-owner': 'a pool block whose next hop is not the address of the node its affinity names',
} as const;

export type ImportRefusal = keyof typeof IMPORT_REFUSALS;

export const IMPORT_REFUSAL_REASONS = Object.keys(IMPORT_REFUSALS) as ImportRefusal[];

export function isImportRefusal(value: string): value is ImportRefusal {
  return Object.hasOwn(IMPORT_REFUSALS, value);
}

/** The peer a route came from, as the rules see it. */
export type PeerKind = 'node' | 'external';

/** The route as judged: its prefix and next hop (uint32). */
export interface JudgedRoute {
  prefix: Prefix;
  nextHop: number | undefined;
}

const SPECIAL_RANGES: ReadonlyArray<{ prefix: Prefix; reason: ImportRefusal }> = [
  { prefix: parsePrefix('127.0.0.0/8'), reason: 'loopback' },
  { prefix: parsePrefix('169.254.0.0/16'), reason: 'link-local' },
  { prefix: parsePrefix('224.0.0.0/4'), reason: 'multicast' },
];

/** One IPAM block as the rules see it. Never changed once built (contexts share them). */
interface BlockView {
  readonly prefix: Prefix;
  /** The node its affinity names; null = none. */
  readonly owner: string | null;
  /** Borrowed addresses: allocations naming a node other than the owner (address → node). */
  readonly borrowed: ReadonlyMap<number, string>;
}

/**
 * The view of each IPAMBlock document, by the document's identity: the agent's cache hands out the same
 * object until the block changes, so a context rebuilt after one pod's allocation reads one block, not all
 * of them, and `importContextChanges` compares the others by identity.
 */
const viewsOfDocuments = new WeakMap<object, BlockView | null>();

/** Each Node document's BGP address, by the document's identity (as `viewsOfDocuments`). */
const addressesOfNodes = new WeakMap<object, number | null>();

function blockViewOf(block: Resource<'IPAMBlock'>): BlockView | null {
  const cached = viewsOfDocuments.get(block);
  if (cached !== undefined) return cached;
  const prefix = tryParseIpv4Prefix(block.spec.cidr);
  let view: BlockView | null = null;
  if (prefix !== null && block.spec.deleted !== true) {
    const owner = block.spec.affinity?.startsWith('host:') ? block.spec.affinity.slice(5) : null;
    const borrowed = new Map<number, string>();
    block.spec.allocations.forEach((attr, ordinal) => {
      if (attr === null) return;
      const holder = allocationNode(block.spec, ordinal);
      if (holder !== null && holder !== owner) borrowed.set(prefix.addr + ordinal, holder);
    });
    view = { prefix, owner, borrowed };
  }
  viewsOfDocuments.set(block, view);
  return view;
}

/** What the rules judge by; built from the agent's cache by `buildImportContext`. */
export interface ImportContext {
  nodeName: string;
  subnet: Prefix | null;
  /** Keys (prefixKey) of the blocks affine to this node. */
  ownBlocks: ReadonlySet<number>;
  pools: ReadonlyArray<{ prefix: Prefix; blockSize: number }>;
  /** By block prefix key. */
  blocks: ReadonlyMap<number, BlockView>;
  /** Node name → its BGP address (uint32). */
  nodeAddresses: ReadonlyMap<string, number>;
  /** Addresses that are some node's: peers at one of them are node peers. */
  nodePeers: ReadonlySet<number>;
  controlPlane: readonly number[];
  serviceRanges: readonly Prefix[];
  /** Everything above except blocks and node addresses, as text: when it changes, every route is judged again. */
  readonly globalKey: string;
}

/** `inner` equals `outer` or is more specific. */
function within(inner: Prefix, outer: Prefix): boolean {
  return inner.len >= outer.len && prefixContains(outer, inner.addr);
}

/** Why `route` from a peer of `kind` must not be used, or null. See the header for the rules. */
export function judgeImport(route: JudgedRoute, kind: PeerKind, ctx: ImportContext): ImportRefusal | null {
  const { prefix } = route;
  if (prefix.len <= 1) return 'default-route';
  for (const address of ctx.controlPlane) if (prefixContains(prefix, address)) return 'control-plane';
  if (ctx.subnet !== null && within(prefix, ctx.subnet)) return 'node-subnet';
  for (const special of SPECIAL_RANGES) if (within(prefix, special.prefix)) return special.reason;
  for (const range of ctx.serviceRanges) if (within(prefix, range)) return 'service-range';
  if (ctx.ownBlocks.has(prefixKey(prefix))) return 'own-block';
  const pool = ctx.pools.find((p) => within(prefix, p.prefix));
  if (pool === undefined || prefix.len < pool.blockSize) return null;
  const blockPrefix = { addr: (prefix.addr & maskOf(pool.blockSize)) >>> 0, len: pool.blockSize };
  const block = ctx.blocks.get(prefixKey(blockPrefix));
  if (prefix.len > pool.blockSize) {
    return prefix.len === 32 && borrowedByAnnouncer(block, prefix.addr, route.nextHop, kind, ctx)
      ? null
      : 'longer-than-block';
  }
  if (block?.owner === ctx.nodeName) return 'own-block';
  if (kind === 'external') return null;
  if (block === undefined || block.owner === null) return 'unowned-block';
  const ownerAddress = ctx.nodeAddresses.get(block.owner);
  return ownerAddress !== undefined && ownerAddress === route.nextHop ? null : 'next-hop-not-owner';
}

/**
 * The address is allocated in `block` to a node other than the block's owner and other than this node,
 * and that node announces it: its address is the next hop (node peers), or any next hop (external routers).
 */
function borrowedByAnnouncer(
  block: BlockView | undefined,
  address: number,
  nextHop: number | undefined,
  kind: PeerKind,
  ctx: ImportContext,
): boolean {
  const holder = block?.borrowed.get(address);
  if (holder === undefined || holder === ctx.nodeName) return false;
  return kind === 'external' || (nextHop !== undefined && ctx.nodeAddresses.get(holder) === nextHop);
}

export interface ImportContextInput {
  nodeName: string;
  /** This node's address with prefix length ("198.19.1.11/24"); undefined when unknown. */
  subnet: string | undefined;
  /** Blocks affine to this node (./advertise.ts affineBlocks). */
  ownBlocks: readonly Prefix[];
  pools: ReadonlyArray<Resource<'IPPool'>>;
  blocks: ReadonlyArray<Resource<'IPAMBlock'>>;
  affinities: ReadonlyArray<Resource<'BlockAffinity'>>;
  nodes: ReadonlyArray<Resource<'Node'>>;
  bgpConfigurations: ReadonlyArray<Resource<'BGPConfiguration'>>;
  /** Datastore and API server addresses (IPv4 text; anything else is left out). */
  controlPlane: readonly string[];
  /** This node is a route reflector: routes inside service ranges are taken (see the header). */
  reflector?: boolean;
}

/** "198.18.0.11/24" or "198.18.0.11" → the address as uint32; null when unreadable. */
function hostAddress(text: string | undefined): number | null {
  return text === undefined ? null : tryParseIpv4(text.split('/')[0] ?? '');
}

/** The context the rules judge by, from the agent's cache. */
export function buildImportContext(input: ImportContextInput): ImportContext {
  const subnet = tryParseIpv4Prefix(input.subnet);
  const ownBlocks = new Set(input.ownBlocks.map(prefixKey));
  const pools: Array<{ prefix: Prefix; blockSize: number }> = [];
  for (const pool of input.pools) {
    const prefix = tryParseIpv4Prefix(pool.spec.cidr);
    if (prefix !== null) pools.push({ prefix, blockSize: pool.spec.blockSize ?? 26 });
  }
  // The most specific pool first: a prefix is judged by the innermost pool that holds it.
  pools.sort((a, b) => b.prefix.len - a.prefix.len || a.prefix.addr - b.prefix.addr);
  const nodeAddresses = new Map<string, number>();
  for (const node of input.nodes) {
    let address = addressesOfNodes.get(node);
    if (address === undefined) {
      address = hostAddress(node.spec.bgp?.ipv4Address);
      addressesOfNodes.set(node, address);
    }
    if (address !== null) nodeAddresses.set(node.metadata.name, address);
  }
  const blocks = new Map<number, BlockView>();
  for (const block of input.blocks) {
    const view = blockViewOf(block);
    if (view !== null) blocks.set(prefixKey(view.prefix), view);
  }
  // A confirmed BlockAffinity names the owner of a block whose document has not arrived (or says none).
  for (const affinity of input.affinities) {
    const prefix = tryParseIpv4Prefix(affinity.spec.cidr);
    if (prefix === null || affinity.spec.state !== 'confirmed' || affinity.spec.deleted === true) continue;
    const key = prefixKey(prefix);
    const view = blocks.get(key);
    if (view === undefined) blocks.set(key, { prefix, owner: affinity.spec.node, borrowed: new Map() });
    else if (view.owner === null) blocks.set(key, { ...view, owner: affinity.spec.node });
  }
  const controlPlane = [
    ...new Set(input.controlPlane.map((a) => tryParseIpv4(a)).filter((a): a is number => a !== null)),
  ].sort((a, b) => a - b);
  const serviceRanges: Prefix[] = [];
  const config = input.bgpConfigurations.find((c) => c.metadata.name === 'default');
  for (const entry of [
    ...(config?.spec.serviceClusterIPs ?? []),
    ...(config?.spec.serviceExternalIPs ?? []),
    ...(config?.spec.serviceLoadBalancerIPs ?? []),
  ]) {
    const prefix = tryParseIpv4Prefix(entry.cidr);
    if (prefix !== null && input.reflector !== true) serviceRanges.push(prefix);
  }
  const globalKey = JSON.stringify([
    input.nodeName,
    subnet && formatPrefix(subnet),
    [...ownBlocks].sort((a, b) => a - b),
    pools.map((p) => [formatPrefix(p.prefix), p.blockSize]),
    controlPlane,
    serviceRanges.map(formatPrefix).sort(),
  ]);
  return {
    nodeName: input.nodeName,
    subnet,
    ownBlocks,
    pools,
    blocks,
    nodeAddresses,
    nodePeers: new Set(nodeAddresses.values()),
    controlPlane,
    serviceRanges,
    globalKey,
  };
}

/** The kind of the peer at `address` (see the header). */
export function peerKindOf(address: number, ctx: ImportContext): PeerKind {
  return ctx.nodePeers.has(address) ? 'node' : 'external';
}

/** What one block's verdicts depend on, as text (owner, its address, borrowed addresses and their nodes' addresses). */
function blockDigest(block: BlockView | undefined, ctx: ImportContext): string {
  if (block === undefined) return '';
  const owner = block.owner === null ? '-' : `${block.owner}@${ctx.nodeAddresses.get(block.owner) ?? '?'}`;
  const borrowed = [...block.borrowed]
    .sort((a, b) => a[0] - b[0])
    .map(([address, node]) => `${address}:${node}@${ctx.nodeAddresses.get(node) ?? '?'}`);
  return `${owner}|${borrowed.join(',')}`;
}

/**
 * Which routes may judge differently under `next` than under `previous`: 'all', or the blocks whose owner,
 * owner's address or borrowed addresses changed (every route inside them), or none (an empty list).
 * `peers` are the addresses of the current BGP peers: one that became or stopped being a node's address
 * changes the kind of its routes, so everything is judged again.
 */
export function importContextChanges(
  previous: ImportContext | null,
  next: ImportContext,
  peers: readonly number[],
): 'all' | Prefix[] {
  if (previous === null || previous.globalKey !== next.globalKey) return 'all';
  for (const peer of peers) if (previous.nodePeers.has(peer) !== next.nodePeers.has(peer)) return 'all';
  // Nodes whose address changed (or that came or went): blocks that name them judge differently.
  const moved = new Set<string>();
  for (const [name, address] of next.nodeAddresses) if (previous.nodeAddresses.get(name) !== address) moved.add(name);
  for (const name of previous.nodeAddresses.keys()) if (!next.nodeAddresses.has(name)) moved.add(name);
  const names = (block: BlockView): boolean => {
    if (block.owner !== null && moved.has(block.owner)) return true;
    for (const holder of block.borrowed.values()) if (moved.has(holder)) return true;
    return false;
  };
  const changed: Prefix[] = [];
  for (const [key, block] of next.blocks) {
    const old = previous.blocks.get(key);
    if (old === block ? moved.size > 0 && names(block) : blockDigest(old, previous) !== blockDigest(block, next))
      changed.push(block.prefix);
  }
  for (const [key, block] of previous.blocks) if (!next.blocks.has(key)) changed.push(block.prefix);
  return changed;
}

/** `reason` for people: the code and what it means. */
export function formatImportRefusal(reason: ImportRefusal): string {
  return `${reason}: ${IMPORT_REFUSALS[reason]}`;
}
