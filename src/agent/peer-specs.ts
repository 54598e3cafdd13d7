// What the agent hands the Speaker for one planned peer: the PeerSpec (./speaker-keeper.ts calls
// toPeerSpec), the policy hooks its BGPFilters make on top of Calico's default export rules, and the
// node's subnet and import-protection context those depend on. Pure; no I/O.

import { parseIpv4, parsePrefix, prefixContains, Route, type PathAttributes, type PeerSpec } from '../../bgp/index.js';
import type { Resource } from '../resources/index.js';
import { affineBlocks } from './advertise.js';
import { compilePeerFilter, type FilterRoute } from './bgp-filter.js';
import type { CacheView } from './dataplane-input.js';
import { buildImportContext, type ImportContext } from './import-guard.js';
import type { DesiredPeer } from './types.js';

/**
 * `subnet`: this node's address with prefix length. eBGP peers inside it get it (an office router or
 * top-of-rack switch on the node's own network is one IP hop away: it is sent other nodes' blocks with
 * their own next hops, RFC 4271 §5.1.3 (2), as BIRD does on directly connected eBGP sessions; Calico's
 * BIRD config makes every session multihop, so Calico sends its own address — `nextHopMode: Self` on the
 * BGPPeer gives that). iBGP peers and eBGP peers outside the subnet do not use it, so they do not get it:
 * a change of prefix length then restarts only the sessions it matters to.
 */
export function toPeerSpec(
  peer: DesiredPeer,
  hooks: PeerHooks,
  nodeAs: number,
  subnet: string | undefined,
  password?: string,
): PeerSpec {
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
    ...(hooks.exportFilter !== undefined ? { exportFilter: hooks.exportFilter } : {}),
    // BGPPeer filters: the import side of its BGPFilters.
    ...(hooks.importFilter !== undefined ? { importFilter: hooks.importFilter } : {}),
    ...(subnet !== undefined && peer.asNumber !== peer.localAsNumber && insideSubnet(subnet, peer.address)
      ? { subnet }
      : {}),
  };
}

function insideSubnet(subnet: string, address: string): boolean {
  try {
    return prefixContains(parsePrefix(subnet), parseIpv4(address));
  } catch {
    return false;
  }
}

/** Whether `address` (uint32) is inside `subnet` ("198.18.0.11/24"); false when the subnet does not parse. */
export function insideSubnetOf(subnet: string, address: number): boolean {
  try {
    return prefixContains(parsePrefix(subnet), address);
  } catch {
    return false;
  }
}

/** The hooks a peer's BGPFilters make (./bgp-filter.ts), on top of Calico's default export rules. */
export interface PeerHooks {
  importFilter?: PeerSpec['importFilter'];
  exportFilter: PeerSpec['exportFilter'];
}

/**
 * A peer's BGPFilters as Speaker hooks. Import: a Reject is held as refused with the rule that refused it
 * (`node routes` shows it), an Accept keeps the route with the rule's operations applied, no match keeps it
 * unchanged. Export: a Reject is not sent, an Accept is sent (with its operations) even where Calico's
 * default rules would not, no match leaves the decision to those default rules — as Calico's BIRD config
 * calls the filter functions before calico_export_to_bgp_peers().
 */
export function filterHooks(
  names: readonly string[],
  filters: ReadonlyArray<Resource<'BGPFilter'>>,
  ebgp: boolean,
  defaultExport: NonNullable<PeerSpec['exportFilter']>,
  interfaceOf: (address: number) => string | undefined,
): PeerHooks {
  const view = (route: Route): FilterRoute => {
    const iface =
      route.attrs.nextHop !== undefined && !route.source.local ? interfaceOf(route.attrs.nextHop) : undefined;
    return {
      addr: route.prefix.addr,
      len: route.prefix.len,
      attrs: route.attrs,
      learned: route.source.local !== true,
      ...(iface !== undefined ? { iface } : {}),
    };
  };
  // An Accept with operations gives new attributes; the same input set gives the same output object, so the
  // Speaker's export cache (keyed by attribute identity) still rewrites each distinct set once.
  const rewritten = new WeakMap<object, Map<string, Route['attrs']>>();
  const withAttrs = (route: Route, rule: string, attrs: PathAttributes): Route => {
    if (attrs === route.attrs) return route;
    let byRule = rewritten.get(route.attrs);
    if (byRule === undefined) rewritten.set(route.attrs, (byRule = new Map()));
    let out = byRule.get(rule);
    if (out === undefined) byRule.set(rule, (out = Object.freeze({ ...attrs }) as Route['attrs']));
    return new Route(route.key, out, route.source, route.stale);
  };
  const importFn = compilePeerFilter(names, filters, 'import', ebgp);
  const exportFn = compilePeerFilter(names, filters, 'export', ebgp);
  const hooks: PeerHooks = {
    exportFilter:
      exportFn === undefined
        ? defaultExport
        : (route) => {
            const decision = exportFn(view(route));
            if (decision.action === 'reject') return null;
            if (decision.action === 'accept') return withAttrs(route, decision.rule, decision.attrs);
            return defaultExport(route);
          },
  };
  if (importFn !== undefined) {
    hooks.importFilter = (route) => {
      const decision = importFn(view(route));
      if (decision.action === 'reject') return { refused: `filter ${decision.rule.replace(/^BGPFilter /, '')}` };
      if (decision.action === 'accept') return withAttrs(route, decision.rule, decision.attrs);
      return route;
    };
  }
  return hooks;
}

/**
 * This node's subnet, for its sessions: Node spec.bgp.ipv4Address with its prefix length, as Calico stores
 * it ("198.19.1.11/24"); else the address the agent found, with its interface's prefix length, when the
 * Node names that address without one. Undefined when neither says (no third-party next hops then).
 */
export function nodeSubnet(
  node: Resource<'Node'> | undefined,
  found: { address: string; prefixLength: number } | null,
): string | undefined {
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

/**
 * Import protection's context (./import-guard.ts) from the cache: `subnet` is this node's (nodeSubnet, else
 * its address and prefix length).
 */
export function importContextOf(
  cache: CacheView,
  nodeName: string,
  subnet: string | undefined,
  controlPlane: readonly string[],
): ImportContext {
  const blocks = cache.list('IPAMBlock');
  const affinities = cache.list('BlockAffinity');
  return buildImportContext({
    nodeName,
    subnet,
    ownBlocks: affineBlocks({ nodeName, blocks, affinities }),
    pools: cache.list('IPPool'),
    blocks,
    affinities,
    nodes: cache.list('Node'),
    bgpConfigurations: cache.list('BGPConfiguration'),
    controlPlane,
    reflector:
      (cache.list('Node').find((n) => n.metadata.name === nodeName)?.spec.bgp?.routeReflectorClusterID ?? '') !== '',
  });
}
