// The shape of every kind's spec, as one table: which fields exist and what type each holds. It drives
// both the strict unknown-field check (calicoctl refuses fields it does not know, and so does tortie) and
// the type check, and it normalizes AS numbers written as strings ("64512", asdot "1.10").
//
// Meaning (ranges, formats, cross-field rules) is ./validate.ts's job; this file only knows types.

import { show, type Problem } from './problems.js';
import type { Kind } from './types.js';
import { goString } from './yaml11.js';

export type Shape =
  | { type: 'string' }
  | { type: 'nullableString' }
  | { type: 'integer' }
  | { type: 'nullableInteger' }
  | { type: 'boolean' }
  /** Kubernetes IntOrString (a NetworkPolicy port: 8080 or "http"). */
  | { type: 'intOrString' }
  | { type: 'asNumber' }
  | { type: 'enum'; values: readonly string[] }
  | { type: 'object'; fields: Readonly<Record<string, Shape>> }
  | { type: 'array'; items: Shape }
  | { type: 'map'; values: Shape }
  | { type: 'nullableMap'; values: Shape };

const str: Shape = { type: 'string' };
const int: Shape = { type: 'integer' };
const bool: Shape = { type: 'boolean' };
const asn: Shape = { type: 'asNumber' };
const strings: Shape = { type: 'array', items: str };
const obj = (fields: Record<string, Shape>): Shape => ({ type: 'object', fields });
const oneOf = (...values: string[]): Shape => ({ type: 'enum', values });
const cidrList: Shape = { type: 'array', items: obj({ cidr: str }) };
const secretRef: Shape = obj({ secretKeyRef: obj({ name: str, key: str }) });
const encap = oneOf('Never', 'Always', 'CrossSubnet');
/** metav1.LabelSelector. */
const labelSelector: Shape = obj({
  matchLabels: { type: 'map', values: str },
  matchExpressions: {
    type: 'array',
    items: obj({ key: str, operator: oneOf('In', 'NotIn', 'Exists', 'DoesNotExist'), values: strings }),
  },
});
const policyPeers: Shape = {
  type: 'array',
  items: obj({
    podSelector: labelSelector,
    namespaceSelector: labelSelector,
    ipBlock: obj({ cidr: str, except: strings }),
  }),
};
const policyPorts: Shape = {
  type: 'array',
  items: obj({ protocol: oneOf('TCP', 'UDP', 'SCTP'), port: { type: 'intOrString' }, endPort: int }),
};

/** One BGPFilter rule (the same fields in the V4 and V6 lists). */
const filterRule: Shape = obj({
  cidr: str,
  matchOperator: oneOf('Equal', 'NotEqual', 'In', 'NotIn'),
  prefixLength: obj({ min: int, max: int }),
  source: oneOf('RemotePeers'),
  interface: str,
  peerType: oneOf('eBGP', 'iBGP'),
  communities: obj({ values: strings }),
  asPathPrefix: { type: 'array', items: asn },
  priority: int,
  action: oneOf('Accept', 'Reject'),
  operations: {
    type: 'array',
    items: obj({
      addCommunity: obj({ value: str }),
      prependASPath: obj({ prefix: { type: 'array', items: asn } }),
      setPriority: obj({ value: int }),
    }),
  },
});
const filterRules: Shape = { type: 'array', items: filterRule };

export const SPEC_SHAPES: Readonly<Record<Kind, Shape>> = {
  IPPool: obj({
    cidr: str,
    blockSize: int,
    ipipMode: encap,
    vxlanMode: encap,
    natOutgoing: bool,
    disabled: bool,
    disableBGPExport: bool,
    nodeSelector: str,
    allowedUses: { type: 'array', items: oneOf('Workload', 'Tunnel', 'LoadBalancer') },
    assignmentMode: oneOf('Automatic', 'Manual'),
    namespaceSelector: str,
  }),
  BGPConfiguration: obj({
    nodeToNodeMeshEnabled: bool,
    asNumber: asn,
    listenPort: int,
    logSeverityScreen: str,
    bindMode: oneOf('None', 'NodeIP'),
    nodeMeshMaxRestartTime: str,
    nodeMeshPassword: secretRef,
    serviceClusterIPs: cidrList,
    serviceExternalIPs: cidrList,
    serviceLoadBalancerIPs: cidrList,
    communities: { type: 'array', items: obj({ name: str, value: str }) },
    prefixAdvertisements: { type: 'array', items: obj({ cidr: str, communities: strings }) },
    ignoredInterfaces: strings,
    programClusterRoutes: oneOf('Enabled', 'Disabled'),
  }),
  BGPPeer: obj({
    node: str,
    nodeSelector: str,
    peerSelector: str,
    peerIP: str,
    asNumber: asn,
    localASNumber: asn,
    nextHopMode: oneOf('Auto', 'Self', 'Keep'),
    keepOriginalNextHop: bool,
    sourceAddress: oneOf('UseNodeIP', 'None'),
    maxRestartTime: str,
    keepaliveTime: str,
    numAllowedLocalASNumbers: int,
    password: secretRef,
    reversePeering: oneOf('Auto', 'Manual'),
    ttlSecurity: int,
    filters: strings,
    reachableBy: str,
    localWorkloadSelector: str,
  }),
  BGPFilter: obj({ exportV4: filterRules, importV4: filterRules, exportV6: filterRules, importV6: filterRules }),
  Node: obj({
    bgp: obj({
      ipv4Address: str,
      asNumber: asn,
      ipv4IPIPTunnelAddr: str,
      routeReflectorClusterID: str,
      ipv6Address: str,
    }),
    orchRefs: { type: 'array', items: obj({ nodeName: str, orchestrator: str }) },
    ipv4VXLANTunnelAddr: str,
    vxlanTunnelMACAddr: str,
    addresses: { type: 'array', items: obj({ address: str, type: str }) },
  }),
  WorkloadEndpoint: obj({
    node: str,
    orchestrator: str,
    workload: str,
    pod: str,
    endpoint: str,
    containerID: str,
    interfaceName: str,
    mac: str,
    ipNetworks: strings,
    profiles: strings,
    ports: { type: 'array', items: obj({ name: str, protocol: oneOf('TCP', 'UDP', 'SCTP'), port: int }) },
  }),
  IPAMBlock: obj({
    cidr: str,
    affinity: { type: 'nullableString' },
    strictAffinity: bool,
    allocations: { type: 'array', items: { type: 'nullableInteger' } },
    unallocated: { type: 'array', items: int },
    attributes: {
      type: 'array',
      items: obj({ handle_id: { type: 'nullableString' }, secondary: { type: 'nullableMap', values: str } }),
    },
    deleted: bool,
    sequenceNumber: int,
  }),
  BlockAffinity: obj({ state: oneOf('pending', 'confirmed', 'pendingDeletion'), node: str, cidr: str, deleted: bool }),
  IPAMHandle: obj({ handleID: str, block: { type: 'map', values: int }, deleted: bool }),
  NetworkPolicy: obj({
    podSelector: labelSelector,
    policyTypes: { type: 'array', items: oneOf('Ingress', 'Egress') },
    ingress: { type: 'array', items: obj({ from: policyPeers, ports: policyPorts }) },
    egress: { type: 'array', items: obj({ to: policyPeers, ports: policyPorts }) },
  }),
  Namespace: obj({ finalizers: strings }),
};

const NULLABLE: ReadonlySet<Shape['type']> = new Set(['nullableString', 'nullableInteger', 'nullableMap']);

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** AS number from a number or a string: plain ("64512") or asdot ("1.10" = 1·65536 + 10). Null if neither. */
export function parseAsNumber(value: unknown): number | null {
  if (typeof value === 'number') return Number.isInteger(value) ? value : null;
  if (typeof value !== 'string') return null;
  const plain = /^(0|[1-9][0-9]*)$/.exec(value);
  if (plain) return Number(value);
  const dot = /^(0|[1-9][0-9]{0,4})\.(0|[1-9][0-9]{0,4})$/.exec(value);
  if (dot && Number(dot[1]) <= 65535 && Number(dot[2]) <= 65535) return Number(dot[1]) * 65536 + Number(dot[2]);
  return null;
}

/**
 * Checks `value` against `shape`, pushing one Problem per unknown field or wrong type, and returns the
 * value normalized (AS number strings become numbers). Values that are wrong are returned unchanged.
 */
/**
 * What calicoctl's YAML → JSON step does to a document read from text (./yaml11.ts): a boolean or number
 * where the shape wants a string (or an enum) becomes Go's formatting of it. Other values are left for
 * checkShape to judge. Pure: returns a new value.
 */
export function calicoctlStrings(value: unknown, shape: Shape): unknown {
  switch (shape.type) {
    case 'string':
    case 'nullableString':
    case 'enum':
      return typeof value === 'boolean' || typeof value === 'number' ? goString(value) : value;
    case 'array':
      return Array.isArray(value) ? value.map((item) => calicoctlStrings(item, shape.items)) : value;
    case 'map':
    case 'nullableMap':
      return isPlainObject(value)
        ? Object.fromEntries(Object.entries(value).map(([k, v]) => [k, calicoctlStrings(v, shape.values)]))
        : value;
    case 'object':
      if (!isPlainObject(value)) return value;
      return Object.fromEntries(
        Object.entries(value).map(([k, v]) => [
          k,
          Object.hasOwn(shape.fields, k) ? calicoctlStrings(v, shape.fields[k]!) : v,
        ]),
      );
    default:
      return value;
  }
}

export function checkShape(value: unknown, shape: Shape, path: string, problems: Problem[]): unknown {
  const wrong = (expected: string): unknown => {
    problems.push({ path, value, message: `${show(value)} is not ${expected}` });
    return value;
  };
  switch (shape.type) {
    case 'string':
      return typeof value === 'string' ? value : wrong('a string');
    case 'nullableString':
      return value === null || typeof value === 'string' ? value : wrong('a string or null');
    case 'integer':
      return Number.isSafeInteger(value) ? value : wrong('an integer');
    case 'nullableInteger':
      return value === null || Number.isSafeInteger(value) ? value : wrong('an integer or null');
    case 'boolean':
      return typeof value === 'boolean' ? value : wrong('true or false');
    case 'intOrString':
      return Number.isSafeInteger(value) || typeof value === 'string' ? value : wrong('a port number or a port name');
    case 'asNumber': {
      const n = parseAsNumber(value);
      if (n !== null) return n;
      if (typeof value === 'number') return wrong('an AS number (write asdot in quotes, like "1.10")');
      return wrong('an AS number (like 64512 or asdot "1.10")');
    }
    case 'enum':
      return typeof value === 'string' && shape.values.includes(value)
        ? value
        : wrong(`one of ${shape.values.join(', ')}`);
    case 'array':
      if (!Array.isArray(value)) return wrong('a list');
      return value.map((item, i) => checkShape(item, shape.items, `${path}[${i}]`, problems));
    case 'map':
    case 'nullableMap': {
      if (shape.type === 'nullableMap' && value === null) return value;
      if (!isPlainObject(value)) return wrong('a map');
      return Object.fromEntries(
        Object.entries(value).map(([k, v]) => [k, checkShape(v, shape.values, `${path}.${k}`, problems)]),
      );
    }
    case 'object': {
      if (!isPlainObject(value)) return wrong('a map of fields');
      const out: Record<string, unknown> = {};
      const unknown = Object.keys(value).filter((k) => !Object.hasOwn(shape.fields, k));
      for (const key of unknown) {
        problems.push({
          path: `${path}.${key}`,
          value: value[key],
          message: `unknown field "${key}" (known fields of ${path}: ${Object.keys(shape.fields).join(', ')})`,
        });
      }
      for (const [key, fieldShape] of Object.entries(shape.fields)) {
        const field = value[key];
        if (field === undefined) continue;
        // YAML `key:` with no value is null: treat it as absent unless null is meaningful for the field.
        if (field === null && !NULLABLE.has(fieldShape.type)) continue;
        out[key] = checkShape(field, fieldShape, `${path}.${key}`, problems);
      }
      return out;
    }
  }
}
