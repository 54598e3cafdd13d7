// What a resource means, checked: ranges, formats and cross-field rules, as Calico's validator and CRD
// rules enforce them, with one validator per kind (the VALIDATORS table). Every Problem names the field,
// the value and what would be accepted. validateAgainst() adds the rules that need the other resources
// (an IPPool must not overlap another).
//
// Why this is hard: several rules only make sense together (blockSize depends on the cidr's family; a pool
// smaller than one block is fine only when disabled), and values arrive in Calico's lenient forms (asdot
// AS numbers, "ip:port", Go durations), which must be read exactly as Calico reads them.
//
// The field validators every kind shares are in field-checks.ts; BGPFilter rules and NetworkPolicy peers and
// ports in rule-checks.ts.

import { parseCommunity, parsePrefix, tryParseIpv4 } from '../../bgp/index.js';
import { cidrsOverlap, familyBits, formatCidrNetwork, parseCidr } from './cidr.js';
import {
  checkAsNumber,
  checkCidr,
  checkDuration,
  checkIpv4,
  checkLabelKey,
  checkLabelSelector,
  checkLabelValue,
  checkName,
  checkSelector,
  DNS_LABEL,
  nameProblem,
  parsePeerIP,
  required,
} from './field-checks.js';
import { KIND_INFO } from './kinds.js';
import { show, type Problem } from './problems.js';
import { checkFilterRule, checkPolicyPeer, checkPolicyPort } from './rule-checks.js';
import { checkShape, SPEC_SHAPES } from './schema.js';
import { apiVersionOf, type AnyResource, type Kind, type Resource } from './types.js';

const LOG_SEVERITIES = ['Trace', 'Debug', 'Info', 'Warning', 'Error', 'Fatal'];
const LINK_LOCAL = [parseCidr('169.254.0.0/16')!, parseCidr('fe80::/10')!];
const BLOCK_SIZE_RANGE = { 4: [20, 32], 6: [116, 128] } as const;

type Check<K extends Kind> = (r: Resource<K>, p: Problem[]) => void;

const VALIDATORS: { [K in Kind]: Check<K> } = {
  IPPool: (r, p) => {
    const s = r.spec;
    if (!required(p, 'spec.cidr', s.cidr, 'like 10.244.0.0/16')) return;
    const cidr = checkCidr(p, 'spec.cidr', s.cidr, { strict: true });
    checkSelector(p, 'spec.nodeSelector', s.nodeSelector);
    if (typeof s.nodeSelector === 'string' && s.nodeSelector.includes('global(')) {
      p.push({
        path: 'spec.nodeSelector',
        value: s.nodeSelector,
        message: `${show(s.nodeSelector)}: global() is not valid in an IPPool nodeSelector (use all() or label expressions)`,
      });
    }
    const ipip = s.ipipMode ?? 'Never';
    const vxlan = s.vxlanMode ?? 'Never';
    if (ipip !== 'Never' && vxlan !== 'Never') {
      p.push({
        path: 'spec.vxlanMode',
        value: vxlan,
        message: `spec.ipipMode and spec.vxlanMode cannot both be enabled (ipipMode ${ipip}, vxlanMode ${vxlan}); set one of them to Never`,
      });
    }
    if (cidr === null) return;
    const family = cidr.family;
    const [min, max] = BLOCK_SIZE_RANGE[family];
    const blockSize = s.blockSize ?? (family === 4 ? 26 : 122);
    if (typeof blockSize === 'number' && (blockSize < min || blockSize > max)) {
      p.push({
        path: 'spec.blockSize',
        value: blockSize,
        message: `${blockSize} is not in ${min}..${max} (IPv${family})`,
      });
    } else if (cidr.len > blockSize && s.disabled !== true) {
      p.push({
        path: 'spec.cidr',
        value: s.cidr,
        message: `${s.cidr} is smaller than one block (blockSize ${blockSize}): the prefix length must be at most ${blockSize}, or the pool disabled`,
      });
    }
    if (family === 6 && ipip !== 'Never') {
      p.push({
        path: 'spec.ipipMode',
        value: ipip,
        message: `${ipip}: IPIP is not supported on IPv6 pools (use Never)`,
      });
    }
    const linkLocal = LINK_LOCAL.find((ll) => cidrsOverlap(ll, cidr));
    if (linkLocal)
      p.push({
        path: 'spec.cidr',
        value: s.cidr,
        message: `${s.cidr} overlaps the link-local range ${formatCidrNetwork(linkLocal)}, which cannot be a pool`,
      });
  },
  BGPConfiguration: (r, p) => {
    const s = r.spec;
    const name = r.metadata.name;
    const isDefault = name === 'default';
    if (!isDefault && !(name.startsWith('node.') && nameProblem('', name.slice(5)) === null)) {
      p.push({
        path: 'metadata.name',
        value: name,
        message: `${show(name)} is not a BGPConfiguration name (accepted: default, or node.<node name>)`,
      });
    }
    checkAsNumber(p, 'spec.asNumber', s.asNumber);
    if (typeof s.listenPort === 'number' && (s.listenPort < 1 || s.listenPort > 65535)) {
      p.push({ path: 'spec.listenPort', value: s.listenPort, message: `${s.listenPort} is not a port in 1..65535` });
    }
    if (
      typeof s.logSeverityScreen === 'string' &&
      s.logSeverityScreen !== '' &&
      !LOG_SEVERITIES.some((l) => l.toLowerCase() === s.logSeverityScreen!.toLowerCase())
    ) {
      p.push({
        path: 'spec.logSeverityScreen',
        value: s.logSeverityScreen,
        message: `${show(s.logSeverityScreen)} is not a log severity (accepted: ${LOG_SEVERITIES.join(', ')})`,
      });
    }
    checkDuration(p, 'spec.nodeMeshMaxRestartTime', s.nodeMeshMaxRestartTime);
    for (const field of ['nodeMeshPassword', 'nodeMeshMaxRestartTime'] as const) {
      if (s[field] === undefined) continue;
      if (s.nodeToNodeMeshEnabled === false)
        p.push({
          path: `spec.${field}`,
          value: s[field],
          message: `spec.${field} cannot be set when spec.nodeToNodeMeshEnabled is false`,
        });
      if (!isDefault)
        p.push({
          path: `spec.${field}`,
          value: s[field],
          message: `spec.${field} can only be set in the BGPConfiguration named default`,
        });
    }
    for (const field of ['serviceClusterIPs', 'serviceExternalIPs', 'serviceLoadBalancerIPs'] as const) {
      (s[field] ?? []).forEach((entry, i) => checkCidr(p, `spec.${field}[${i}].cidr`, entry.cidr));
    }
    const communityNames = new Set<string>();
    (s.communities ?? []).forEach((c, i) => {
      communityNames.add(c.name);
      checkName(p, `spec.communities[${i}].name`, c.name);
      if (typeof c.value === 'string' && parseCommunity(c.value) === null) {
        p.push({
          path: `spec.communities[${i}].value`,
          value: c.value,
          message: `${show(c.value)} is not a community (like "64512:100" with both parts 0..65535, or large "64512:100:200" with each part 0..4294967295)`,
        });
      }
    });
    (s.prefixAdvertisements ?? []).forEach((a, i) => {
      checkCidr(p, `spec.prefixAdvertisements[${i}].cidr`, a.cidr);
      (a.communities ?? []).forEach((c, j) => {
        if (!communityNames.has(c) && parseCommunity(c) === null) {
          p.push({
            path: `spec.prefixAdvertisements[${i}].communities[${j}]`,
            value: c,
            message: `${show(c)} is neither a community value nor the name of one in spec.communities`,
          });
        }
      });
    });
  },
  BGPPeer: (r, p) => {
    const s = r.spec;
    checkName(p, 'spec.node', s.node);
    checkSelector(p, 'spec.nodeSelector', s.nodeSelector);
    checkSelector(p, 'spec.peerSelector', s.peerSelector);
    if (s.node && s.nodeSelector)
      p.push({
        path: 'spec.nodeSelector',
        value: s.nodeSelector,
        message: `spec.node and spec.nodeSelector cannot both be set (node ${show(s.node)}, nodeSelector ${show(s.nodeSelector)}); keep one`,
      });
    if (s.peerIP && s.peerSelector)
      p.push({
        path: 'spec.peerSelector',
        value: s.peerSelector,
        message: `spec.peerIP and spec.peerSelector cannot both be set (peerIP ${show(s.peerIP)}, peerSelector ${show(s.peerSelector)}); keep one`,
      });
    if (!s.peerIP && !s.peerSelector)
      p.push({
        path: 'spec.peerIP',
        value: s.peerIP,
        message:
          "spec.peerIP or spec.peerSelector is required (like peerIP: 198.18.0.1 or peerSelector: route-reflector == 'true')",
      });
    if (s.peerSelector && s.asNumber !== undefined && s.asNumber !== 0) {
      p.push({
        path: 'spec.asNumber',
        value: s.asNumber,
        message:
          "spec.asNumber must be empty when spec.peerSelector is set (the selected nodes' own AS numbers are used)",
      });
    }
    if (typeof s.peerIP === 'string' && s.peerIP !== '') {
      if (parsePeerIP(s.peerIP) === null)
        p.push({
          path: 'spec.peerIP',
          value: s.peerIP,
          message: `${show(s.peerIP)} is not an IP address or ip:port (like 198.18.0.1, 198.18.0.1:1179 or [2001:db8::1]:179)`,
        });
      // No asNumber with a peerIP: the AS of the Calico node at that address, as Calico does (the planner
      // warns, in node status, when the address is no node's).
    }
    checkAsNumber(p, 'spec.asNumber', s.asNumber);
    checkAsNumber(p, 'spec.localASNumber', s.localASNumber);
    if (s.keepOriginalNextHop === true && s.nextHopMode !== undefined) {
      p.push({
        path: 'spec.keepOriginalNextHop',
        value: true,
        message:
          'spec.keepOriginalNextHop and spec.nextHopMode cannot both be set; keepOriginalNextHop is deprecated, use nextHopMode: Keep',
      });
    }
    checkDuration(p, 'spec.maxRestartTime', s.maxRestartTime);
    checkDuration(p, 'spec.keepaliveTime', s.keepaliveTime);
    if (
      typeof s.numAllowedLocalASNumbers === 'number' &&
      (s.numAllowedLocalASNumbers < 0 || s.numAllowedLocalASNumbers > 10)
    ) {
      p.push({
        path: 'spec.numAllowedLocalASNumbers',
        value: s.numAllowedLocalASNumbers,
        message: `${s.numAllowedLocalASNumbers} is not in 0..10`,
      });
    }
    if (
      typeof s.ttlSecurity === 'number' &&
      (!Number.isInteger(s.ttlSecurity) || s.ttlSecurity < 0 || s.ttlSecurity > 255)
    ) {
      p.push({
        path: 'spec.ttlSecurity',
        value: s.ttlSecurity,
        message: `${s.ttlSecurity} is not a hop count in 0..255 (0 = off)`,
      });
    }
    (s.filters ?? []).forEach((f, i) => checkName(p, `spec.filters[${i}]`, f));
  },
  BGPFilter: (r, p) => {
    const s = r.spec;
    for (const list of ['exportV4', 'importV4'] as const)
      (s[list] ?? []).forEach((rule, i) => checkFilterRule(p, `spec.${list}[${i}]`, rule, 4));
    for (const list of ['exportV6', 'importV6'] as const)
      (s[list] ?? []).forEach((rule, i) => checkFilterRule(p, `spec.${list}[${i}]`, rule, 6));
  },
  Node: (r, p) => {
    const bgp = r.spec.bgp;
    if (bgp === undefined) return;
    if (Object.keys(bgp).length === 0)
      p.push({ path: 'spec.bgp', value: bgp, message: 'spec.bgp should not be empty (remove it, or set ipv4Address)' });
    const addr = bgp.ipv4Address;
    if (typeof addr === 'string') {
      if (!addr.includes('/') && tryParseIpv4(addr) !== null) {
        p.push({
          path: 'spec.bgp.ipv4Address',
          value: addr,
          message: `${show(addr)} has no prefix length: write it with the node's subnet, like ${addr}/24 (CrossSubnet needs it to tell which nodes share a subnet)`,
        });
      } else {
        try {
          parsePrefix(addr);
        } catch {
          p.push({
            path: 'spec.bgp.ipv4Address',
            value: addr,
            message: `${show(addr)} is not an IPv4 address with prefix length (like 198.18.0.11/24)`,
          });
        }
      }
    }
    checkAsNumber(p, 'spec.bgp.asNumber', bgp.asNumber);
    checkIpv4(p, 'spec.bgp.ipv4IPIPTunnelAddr', bgp.ipv4IPIPTunnelAddr, 'an IPv4 address (like 10.244.1.0)');
    checkIpv4(
      p,
      'spec.bgp.routeReflectorClusterID',
      bgp.routeReflectorClusterID,
      'a cluster ID in IPv4 form (like 244.0.0.1)',
    );
    const v6 = bgp.ipv6Address;
    if (typeof v6 === 'string' && parseCidr(v6)?.family !== 6) {
      p.push({
        path: 'spec.bgp.ipv6Address',
        value: v6,
        message: `${show(v6)} is not an IPv6 address with prefix length (like fd80:24e2:f998:72d6::1/120)`,
      });
    }
  },
  WorkloadEndpoint: (r, p) => {
    const s = r.spec;
    if (required(p, 'spec.node', s.node, 'the node the workload runs on')) checkName(p, 'spec.node', s.node);
    if (
      required(p, 'spec.interfaceName', s.interfaceName, 'like cali0123456789a') &&
      typeof s.interfaceName === 'string' &&
      !/^[^\s/:]{1,15}$/.test(s.interfaceName)
    ) {
      p.push({
        path: 'spec.interfaceName',
        value: s.interfaceName,
        message: `${show(s.interfaceName)} is not a Linux interface name (1..15 characters, no spaces, "/" or ":")`,
      });
    }
    if (s.ipNetworks === undefined || s.ipNetworks.length === 0) {
      p.push({
        path: 'spec.ipNetworks',
        value: s.ipNetworks,
        message: 'spec.ipNetworks is required: the workload\'s addresses as CIDRs (like ["10.244.1.5/32"])',
      });
    }
    (s.ipNetworks ?? []).forEach((net, i) => checkCidr(p, `spec.ipNetworks[${i}]`, net));
    if (typeof s.mac === 'string' && !/^([0-9a-fA-F]{2}:){5}[0-9a-fA-F]{2}$/.test(s.mac)) {
      p.push({
        path: 'spec.mac',
        value: s.mac,
        message: `${show(s.mac)} is not a MAC address (like ee:ee:ee:ee:ee:ee)`,
      });
    }
  },
  IPAMBlock: (r, p) => {
    const s = r.spec;
    if (!required(p, 'spec.cidr', s.cidr, 'like 10.244.1.0/26')) return;
    const cidr = checkCidr(p, 'spec.cidr', s.cidr, { strict: true });
    if (typeof s.affinity === 'string' && !/^(host|virtual):.+$/.test(s.affinity)) {
      p.push({
        path: 'spec.affinity',
        value: s.affinity,
        message: `${show(s.affinity)} is not an affinity (like "host:node-1", or null)`,
      });
    }
    if (cidr === null || !Array.isArray(s.allocations)) return;
    const size = 2 ** (familyBits(cidr.family) - cidr.len);
    if (cidr.family === 4 && s.allocations.length !== size) {
      p.push({
        path: 'spec.allocations',
        value: s.allocations.length,
        message: `has ${s.allocations.length} entries; a /${cidr.len} block needs exactly ${size}`,
      });
    }
    (s.unallocated ?? []).forEach((ordinal, i) => {
      if (typeof ordinal === 'number' && (ordinal < 0 || ordinal >= size))
        p.push({
          path: `spec.unallocated[${i}]`,
          value: ordinal,
          message: `${ordinal} is not an ordinal in 0..${size - 1}`,
        });
    });
    const attributes = Array.isArray(s.attributes) ? s.attributes.length : 0;
    s.allocations.forEach((a, i) => {
      if (typeof a === 'number' && (a < 0 || a >= attributes))
        p.push({
          path: `spec.allocations[${i}]`,
          value: a,
          message: `${a} does not index spec.attributes (0..${attributes - 1})`,
        });
    });
  },
  BlockAffinity: (r, p) => {
    const s = r.spec;
    if (required(p, 'spec.node', s.node, 'the node the block is affine to')) checkName(p, 'spec.node', s.node);
    if (required(p, 'spec.cidr', s.cidr, 'like 10.244.1.0/26')) checkCidr(p, 'spec.cidr', s.cidr, { strict: true });
    required(p, 'spec.state', s.state, 'pending, confirmed or pendingDeletion');
  },
  IPAMHandle: (r, p) => {
    const s = r.spec;
    required(p, 'spec.handleID', s.handleID, 'like k8s-pod-network.<container id>');
    if (s.block !== undefined && typeof s.block === 'object') {
      for (const [block, count] of Object.entries(s.block)) {
        if (parseCidr(block) === null)
          p.push({
            path: `spec.block.${block}`,
            value: block,
            message: `${show(block)} is not a block CIDR (like 10.244.1.0/26)`,
          });
        if (typeof count === 'number' && count < 0)
          p.push({
            path: `spec.block.${block}`,
            value: count,
            message: `${count} is not a count of addresses (0 or more)`,
          });
      }
    }
  },
  NetworkPolicy: (r, p) => {
    const s = r.spec;
    if (s.podSelector === undefined) {
      p.push({
        path: 'spec.podSelector',
        value: undefined,
        message:
          'spec.podSelector is required (the pods the policy applies to; podSelector: {} selects every pod in the namespace)',
      });
    }
    checkLabelSelector(p, 'spec.podSelector', s.podSelector);
    const types = s.policyTypes ?? [];
    if (new Set(types).size !== types.length)
      p.push({
        path: 'spec.policyTypes',
        value: types,
        message: `${show(types)} names a type twice (accepted: Ingress, Egress, each at most once)`,
      });
    (s.ingress ?? []).forEach((rule, i) => {
      (rule.from ?? []).forEach((peer, j) => checkPolicyPeer(p, `spec.ingress[${i}].from[${j}]`, peer));
      (rule.ports ?? []).forEach((port, j) => checkPolicyPort(p, `spec.ingress[${i}].ports[${j}]`, port));
    });
    (s.egress ?? []).forEach((rule, i) => {
      (rule.to ?? []).forEach((peer, j) => checkPolicyPeer(p, `spec.egress[${i}].to[${j}]`, peer));
      (rule.ports ?? []).forEach((port, j) => checkPolicyPort(p, `spec.egress[${i}].ports[${j}]`, port));
    });
  },
  Namespace: (r, p) => {
    const name = r.metadata.name;
    if (!(name.length <= 63 && DNS_LABEL.test(name)))
      p.push({
        path: 'metadata.name',
        value: name,
        message: `${show(name)} is not a namespace name (lowercase letters, digits and "-", at most 63 characters)`,
      });
    for (const [key, value] of Object.entries(r.metadata.labels ?? {})) {
      checkLabelKey(p, 'metadata.labels', key);
      checkLabelValue(p, `metadata.labels.${key}`, value);
    }
  },
};

/** Every problem of one resource on its own (types, names, ranges, formats, cross-field rules). */
export function validateResource(r: AnyResource): Problem[] {
  const p: Problem[] = [];
  const info = KIND_INFO[r.kind];
  const apiVersion = info === undefined ? undefined : apiVersionOf(r.kind);
  if (apiVersion !== undefined && r.apiVersion !== apiVersion)
    p.push({ path: 'apiVersion', value: r.apiVersion, message: `${show(r.apiVersion)} is not ${apiVersion}` });
  if (info === undefined) {
    p.push({ path: 'kind', value: r.kind, message: `${show(r.kind)} is not a known kind` });
    return p;
  }
  const name = r.metadata?.name;
  if (typeof name !== 'string' || name === '')
    p.push({ path: 'metadata.name', value: name, message: `${show(name)} is not a name: metadata.name is required` });
  else if (r.kind !== 'BGPConfiguration') checkName(p, 'metadata.name', name);
  const namespace = r.metadata?.namespace;
  if (info.namespaced && namespace !== undefined && !(namespace.length <= 63 && DNS_LABEL.test(namespace))) {
    p.push({
      path: 'metadata.namespace',
      value: namespace,
      message: `${show(namespace)} is not a namespace name (lowercase letters, digits and "-", at most 63 characters)`,
    });
  }
  if (!info.namespaced && namespace !== undefined) {
    p.push({
      path: 'metadata.namespace',
      value: namespace,
      message: `${r.kind} is not namespaced: remove metadata.namespace (${show(namespace)})`,
    });
  }
  const before = p.length;
  checkShape(r.spec, SPEC_SHAPES[r.kind], 'spec', p);
  // Meaning is only checked on well-typed specs: a wrong type has already been reported.
  if (p.length === before) (VALIDATORS[r.kind] as Check<Kind>)(r as Resource<Kind>, p);
  return p;
}

/** Problems that need the other resources: an IPPool overlapping another, or changing its cidr/blockSize. */
export function validateAgainst(r: AnyResource, existing: { ipPools: Array<Resource<'IPPool'>> }): Problem[] {
  if (r.kind !== 'IPPool') return [];
  const p: Problem[] = [];
  const cidr = parseCidr(r.spec.cidr ?? '');
  if (cidr === null) return p;
  for (const other of existing.ipPools) {
    const otherCidr = parseCidr(other.spec.cidr ?? '');
    if (otherCidr === null) continue;
    if (other.metadata.name === r.metadata.name) {
      // Calico refuses to change a pool's cidr or blockSize: allocated blocks would be orphaned.
      if (formatCidrNetwork(otherCidr) !== formatCidrNetwork(cidr)) {
        p.push({
          path: 'spec.cidr',
          value: r.spec.cidr,
          message: `${r.spec.cidr}: the cidr of IPPool ${show(other.metadata.name)} cannot be changed (it is ${other.spec.cidr}); create a new pool and migrate`,
        });
      }
      if (
        other.spec.blockSize !== undefined &&
        r.spec.blockSize !== undefined &&
        other.spec.blockSize !== r.spec.blockSize
      ) {
        p.push({
          path: 'spec.blockSize',
          value: r.spec.blockSize,
          message: `${r.spec.blockSize}: the blockSize of IPPool ${show(other.metadata.name)} cannot be changed (it is ${other.spec.blockSize})`,
        });
      }
      continue;
    }
    if (cidrsOverlap(cidr, otherCidr)) {
      p.push({
        path: 'spec.cidr',
        value: r.spec.cidr,
        message: `${r.spec.cidr} overlaps IPPool ${show(other.metadata.name)} (${other.spec.cidr})`,
      });
    }
  }
  return p;
}
