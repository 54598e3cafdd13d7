// Service IP advertisement, Calico's rules (confd's route generator and its BIRD templates), as pure
// functions of the default BGPConfiguration, this node, and the Kubernetes Services and EndpointSlices.
//
//   Global ranges: every node originates each `serviceClusterIPs` CIDR, and each `serviceExternalIPs` and
//     `serviceLoadBalancerIPs` CIDR that is not a single address (a /32 entry is advertised per Service, so
//     a Local Service's address is not pulled to every node). Calico's `serviceLoadBalancerAggregation` is
//     Enabled by default, which is what this implements (tortie does not accept the field).
//   Per Service, a /32 for each of its addresses — its cluster IPs when any `serviceClusterIPs` is set, its
//     `externalIPs` inside a `serviceExternalIPs` CIDR, its `status.loadBalancer.ingress[].ip` inside a
//     `serviceLoadBalancerIPs` CIDR — from this node when (Calico's advertiseThisService):
//       the Service is ClusterIP, NodePort or LoadBalancer and has a cluster IP (not headless), and either
//       - `externalTrafficPolicy: Local` and one of its EndpointSlices (label kubernetes.io/service-name, of
//         an address type among the Service's ipFamilies) has an endpoint on this node (`nodeName`) that is
//         ready (`conditions.ready` true or absent, as the EndpointSlice API reads it), or
//       - `externalTrafficPolicy: Cluster` and a LoadBalancer IP (spec.loadBalancerIP or an ingress IP) or
//         an external IP lies in a single-address (/32) entry of its list: then from every node.
//     `internalTrafficPolicy` plays no part (Calico's route generator does not read it).
//   A node labelled `node.kubernetes.io/exclude-from-external-load-balancers: "true"` advertises none of it.
//   Kernel: routes learned from peers inside any configured service CIDR are never programmed (Calico's
//     calico_kernel_programming rejects): kube-proxy answers for service addresses on every node.
//   Export of routes learned from peers: only a route reflector passes them on (Calico's "configured as a
//     RR" rule, and its static-route rule on the reflector itself). A non-reflector node exports only the
//     service routes it originates; Calico's BIRD also re-exports other nodes' /32s that fall inside its own
//     ranges, with its own next hop (projectcalico/calico#5235, #7512), which defeats Local — a deliberate
//     difference (README "Differences from Calico").
//
// Only IPv4 is advertised (tortie's sessions are IPv4): IPv6 CIDRs and addresses are skipped.

import {
  formatPrefix,
  prefixContains,
  prefixKey,
  tryParseIpv4,
  tryParseIpv4Prefix,
  type Prefix,
} from '../../bgp/index.js';
import type { Resource } from '../resources/index.js';

/** The Kubernetes label Calico honours: a node with it set to "true" advertises no service route. */
export const EXCLUDE_FROM_LOAD_BALANCERS_LABEL = 'node.kubernetes.io/exclude-from-external-load-balancers';
/** The EndpointSlice label naming its Service (discovery.k8s.io/v1). */
export const SERVICE_NAME_LABEL = 'kubernetes.io/service-name';

/** The part of a v1 Service the rules read. */
export interface ServiceObject {
  metadata?: { name?: string; namespace?: string; resourceVersion?: string };
  spec?: {
    type?: string;
    clusterIP?: string;
    clusterIPs?: string[];
    externalIPs?: string[];
    externalTrafficPolicy?: string;
    internalTrafficPolicy?: string;
    loadBalancerIP?: string;
    ipFamilies?: string[];
  };
  status?: { loadBalancer?: { ingress?: Array<{ ip?: string; hostname?: string }> } };
}

/** The part of a discovery.k8s.io/v1 EndpointSlice the rules read. */
export interface EndpointSliceObject {
  metadata?: { name?: string; namespace?: string; resourceVersion?: string; labels?: Record<string, string> };
  addressType?: string;
  endpoints?: Array<{ addresses?: string[]; nodeName?: string; conditions?: { ready?: boolean } }> | null;
}

export interface ServiceRoutesInput {
  nodeName: string;
  /** This node's labels (the exclusion label). */
  nodeLabels: Readonly<Record<string, string>>;
  bgpConfigurations: ReadonlyArray<Resource<'BGPConfiguration'>>;
  /** null: no Kubernetes API to read Services from — only the global ranges are advertised. */
  services: readonly ServiceObject[] | null;
  endpointSlices: readonly EndpointSliceObject[];
}

export interface ServiceRoutes {
  /** What this node originates for services: the global ranges and the per-Service /32s, sorted, each once. */
  prefixes: string[];
  /** The per-Service /32s alone (a subset of prefixes), for status and logs. */
  perService: string[];
  /** Whether any service CIDR is configured (the default BGPConfiguration). */
  configured: boolean;
}

interface Ranges {
  cluster: Prefix[];
  external: Prefix[];
  loadBalancer: Prefix[];
}

function cidrs(list: ReadonlyArray<{ cidr: string }> | undefined): Prefix[] {
  const out: Prefix[] = [];
  for (const entry of list ?? []) {
    const prefix = tryParseIpv4Prefix(entry.cidr);
    if (prefix !== null) out.push(prefix);
  }
  return out;
}

/** The service CIDRs of the BGPConfiguration named `default` (Calico reads only that one), IPv4 only. */
export function serviceRanges(bgpConfigurations: ReadonlyArray<Resource<'BGPConfiguration'>>): Ranges {
  const spec = bgpConfigurations.find((c) => c.metadata.name === 'default')?.spec;
  return {
    cluster: cidrs(spec?.serviceClusterIPs),
    external: cidrs(spec?.serviceExternalIPs),
    loadBalancer: cidrs(spec?.serviceLoadBalancerIPs),
  };
}

/** Every configured service CIDR: learned routes inside one are never programmed into the kernel. */
export function serviceKernelRejects(bgpConfigurations: ReadonlyArray<Resource<'BGPConfiguration'>>): Prefix[] {
  const r = serviceRanges(bgpConfigurations);
  return [...r.cluster, ...r.external, ...r.loadBalancer];
}

/**
 * The ranges inside which a route reflector exports routes learned from peers (its clients' service
 * routes); empty for any other node, which exports only the service routes it originates.
 */
export function serviceExportRanges(
  bgpConfigurations: ReadonlyArray<Resource<'BGPConfiguration'>>,
  isRouteReflector: boolean,
): string[] {
  return isRouteReflector ? serviceKernelRejects(bgpConfigurations).map(formatPrefix) : [];
}

function within(addr: number, ranges: readonly Prefix[]): boolean {
  return ranges.some((r) => prefixContains(r, addr));
}

function withinSingle(addr: number, ranges: readonly Prefix[]): boolean {
  return ranges.some((r) => r.len === 32 && prefixContains(r, addr));
}

function ipv4(text: string | undefined): number | null {
  return text === undefined || text === '' ? null : tryParseIpv4(text);
}

/** Some address of `ips` lies in a single-address (/32) entry of `ranges`. */
function anyInSingle(ips: ReadonlyArray<string | undefined>, ranges: readonly Prefix[]): boolean {
  return ips.some((ip) => {
    const addr = ipv4(ip);
    return addr !== null && withinSingle(addr, ranges);
  });
}

/** The Service's address families; an object written without ipFamilies (the API server always sets it) by its cluster IPs. */
function familiesOf(svc: ServiceObject): Set<string> {
  const families = svc.spec?.ipFamilies;
  if (families !== undefined && families.length > 0) return new Set(families);
  const ips = svc.spec?.clusterIPs ?? (svc.spec?.clusterIP !== undefined ? [svc.spec.clusterIP] : []);
  return new Set(ips.map((ip) => (ip.includes(':') ? 'IPv6' : 'IPv4')));
}

function serviceKey(namespace: string | undefined, name: string | undefined): string {
  return `${namespace ?? 'default'}/${name ?? ''}`;
}

/** Calico's advertiseThisService for this node (see the header). */
function advertiseThisService(
  svc: ServiceObject,
  slices: readonly EndpointSliceObject[],
  nodeName: string,
  ranges: Ranges,
): boolean {
  const spec = svc.spec ?? {};
  const type = spec.type ?? 'ClusterIP';
  if (type !== 'ClusterIP' && type !== 'NodePort' && type !== 'LoadBalancer') return false;
  if (spec.clusterIP === undefined || spec.clusterIP === '' || spec.clusterIP === 'None') return false;
  if (spec.externalTrafficPolicy === 'Cluster') {
    const lbIps = [spec.loadBalancerIP, ...(svc.status?.loadBalancer?.ingress ?? []).map((i) => i.ip)];
    if (type === 'LoadBalancer' && anyInSingle(lbIps, ranges.loadBalancer)) return true;
    if (anyInSingle(spec.externalIPs ?? [], ranges.external)) return true;
  }
  // Not Local (and LoadBalancer aggregation is on): the global ranges cover it.
  if (spec.externalTrafficPolicy !== 'Local') return false;
  const families = familiesOf(svc);
  for (const slice of slices) {
    if (!families.has(slice.addressType ?? '')) continue;
    for (const endpoint of slice.endpoints ?? []) {
      if (endpoint.conditions?.ready === false) continue; // absent means ready (the EndpointSlice API)
      if (endpoint.nodeName === nodeName) return true;
    }
  }
  return false;
}

/** The /32s of one advertised Service (Calico's getAllRoutesForService), IPv4 only. */
function addressesOf(svc: ServiceObject, ranges: Ranges): number[] {
  const spec = svc.spec ?? {};
  const out: number[] = [];
  if (ranges.cluster.length > 0) {
    for (const ip of spec.clusterIPs ?? (spec.clusterIP !== undefined ? [spec.clusterIP] : [])) {
      const a = ipv4(ip);
      if (a !== null) out.push(a);
    }
  }
  for (const ip of spec.externalIPs ?? []) {
    const a = ipv4(ip);
    if (a !== null && within(a, ranges.external)) out.push(a);
  }
  for (const ingress of svc.status?.loadBalancer?.ingress ?? []) {
    const a = ipv4(ingress.ip);
    if (a !== null && within(a, ranges.loadBalancer)) out.push(a);
  }
  return out;
}

function sorted(prefixes: Iterable<Prefix>): string[] {
  const unique = new Map<number, Prefix>();
  for (const p of prefixes) unique.set(prefixKey(p), p);
  return [...unique.values()].sort((a, b) => a.addr - b.addr || a.len - b.len).map(formatPrefix);
}

/** What this node originates for services (see the header). */
export function serviceRoutes(input: ServiceRoutesInput): ServiceRoutes {
  const ranges = serviceRanges(input.bgpConfigurations);
  const configured = ranges.cluster.length + ranges.external.length + ranges.loadBalancer.length > 0;
  if (!configured || input.nodeLabels[EXCLUDE_FROM_LOAD_BALANCERS_LABEL] === 'true')
    return { prefixes: [], perService: [], configured };
  const global = [
    ...ranges.cluster,
    ...ranges.external.filter((p) => p.len < 32),
    ...ranges.loadBalancer.filter((p) => p.len < 32),
  ];
  const hosts: Prefix[] = [];
  if (input.services !== null) {
    const slicesOf = new Map<string, EndpointSliceObject[]>();
    for (const slice of input.endpointSlices) {
      const name = slice.metadata?.labels?.[SERVICE_NAME_LABEL];
      if (name === undefined || name === '') continue;
      const key = serviceKey(slice.metadata?.namespace, name);
      const list = slicesOf.get(key);
      if (list) list.push(slice);
      else slicesOf.set(key, [slice]);
    }
    for (const svc of input.services) {
      const slices = slicesOf.get(serviceKey(svc.metadata?.namespace, svc.metadata?.name)) ?? [];
      if (!advertiseThisService(svc, slices, input.nodeName, ranges)) continue;
      for (const addr of addressesOf(svc, ranges)) hosts.push({ addr, len: 32 });
    }
  }
  return { prefixes: sorted([...global, ...hosts]), perService: sorted(hosts), configured };
}
