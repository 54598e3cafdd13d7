// Fuzzers for the other parsers that take outside input. Each gets random and mutated inputs (valid
// examples with fields replaced, removed or added; text with bytes changed) and may only refuse them with
// its module's own errors — ResourceError, CniError, EtcdGatewayAnswerError, RouteDumpError, ... or the
// plain Error a function documents (a YAML syntax error names the document and line). A TypeError,
// RangeError, ReferenceError or SyntaxError out of a parser is a bug: it means an input reached code that
// assumed a shape nobody checked.

import { readdirSync, readFileSync } from 'node:fs';
import { healthReply, type HealthOptions } from '../../src/agent/health.js';
import { parseControlRequest } from '../../src/agent/control.js';
import { CniError, parseCniArgs, parseEnv } from '../../src/cni/spec.js';
import { parseNetConf } from '../../src/cni/netconf.js';
import { parseResult } from '../../src/cni/result.js';
import {
  decodeRange,
  decodeTxn,
  decodeWatchResponse,
  EtcdGatewayAnswerError,
} from '../../src/datastore/etcd-gateway.js';
import { layoutOf } from '../../src/datastore/etcd-keys.js';
import { EtcdStore, type EtcdTransport } from '../../src/datastore/etcd-store.js';
import {
  crdToResource,
  namespaceToResource,
  networkPolicyToResource,
  nodeToResource,
  podToWorkloadEndpoint,
} from '../../src/datastore/kubernetes.js';
import { DatastoreError } from '../../src/datastore/types.js';
import { parseDocuments, ResourceError, toResource, validateResource } from '../../src/resources/index.js';
import { KINDS } from '../../src/resources/types.js';
import { decodeRouteDump, frameRouteDump, RouteDumpError } from '../../felix/rtnetlink.js';
import { routeDump, routeMessage } from '../unit/felix/route-dump-bytes.js';
import { CAPTURES_DIR } from './bgp-messages.js';
import { Rng } from './random.js';

export interface ParserViolation {
  readonly index: number;
  readonly reason: string;
  readonly input: unknown;
}

export interface ParserReport {
  readonly name: string;
  readonly inputs: number;
  readonly ms: number;
  readonly perSecond: number;
  /** Inputs refused with the module's own error. */
  readonly typedErrors: number;
  readonly violations: ParserViolation[];
}

interface Target<I> {
  readonly name: string;
  input(rng: Rng): I;
  run(input: I): unknown;
  /** The errors this parser may throw. */
  typed(error: unknown): boolean;
}

/** Errors that mean "an unchecked shape was reached": never acceptable out of a parser. */
function isUntyped(error: unknown): boolean {
  return (
    error instanceof TypeError ||
    error instanceof RangeError ||
    error instanceof ReferenceError ||
    error instanceof SyntaxError ||
    error instanceof EvalError ||
    !(error instanceof Error)
  );
}

/** A plain `Error` (documented by the function), not one of the untyped built-ins. */
const plainError = (error: unknown): boolean => error instanceof Error && error.constructor === Error;

// ---- random values ------------------------------------------------------------------------------------------

const STRINGS = [
  '',
  ' ',
  'a',
  '0',
  '-1',
  '1e400',
  'true',
  'null',
  '10.244.0.0/16',
  '10.244.0.0/33',
  '10.244.1.0/26',
  '198.18.0.1',
  '256.1.1.1',
  '::1',
  'fd00::/64',
  'all()',
  "has(x) && y == 'z'",
  '!',
  '(((',
  'Always',
  'CrossSubnet',
  'Never',
  'etcdv3',
  'kubernetes',
  'IPPool',
  'BGPPeer',
  'Node',
  '__proto__',
  'constructor',
  'toString',
  'hasOwnProperty',
  '\u0000',
  '\uffff',
  '😀',
  'x'.repeat(300),
  '{"a":1}',
  '[1,2',
  'projectcalico.org/v3',
  '64512',
  '4294967296',
];
const KEYS = [
  'apiVersion',
  'kind',
  'metadata',
  'spec',
  'name',
  'namespace',
  'labels',
  'annotations',
  'items',
  'cidr',
  'blockSize',
  'ipipMode',
  'vxlanMode',
  'natOutgoing',
  'disabled',
  'nodeSelector',
  'peerIP',
  'asNumber',
  'peerSelector',
  'node',
  'bgp',
  'ipv4Address',
  'ipv6Address',
  'orchRefs',
  'ipNetworks',
  'profiles',
  'interfaceName',
  'ports',
  'selector',
  'ingress',
  'egress',
  'action',
  'protocol',
  'status',
  'resourceVersion',
  'creationTimestamp',
  '__proto__',
  'constructor',
  'password',
  'secretKeyRef',
  'key',
  'allocations',
  'unallocated',
  'attributes',
  'affinity',
  'handle_id',
  'strictAffinity',
  'cniVersion',
  'type',
  'ipam',
  'ipv4_pools',
  'mtu',
  'etcd_endpoints',
  'datastore_type',
  'log_level',
  'prevResult',
  'ips',
  'address',
  'interface',
  'interfaces',
  'routes',
  'dst',
  'gw',
  'command',
  'graceful',
  'kv',
  'value',
  'mod_revision',
  'create_revision',
  'header',
  'revision',
  'events',
  'prev_kv',
  'kvs',
  'succeeded',
  'responses',
  'created',
  'canceled',
  'compact_revision',
  'containers',
  'podIP',
  'podIPs',
  'ip',
  'nodeName',
  'phase',
  'podSelector',
  'policyTypes',
  'from',
  'to',
  'port',
  'endPort',
  'ipBlock',
  'except',
];

export function randomValue(rng: Rng, depth = 0): unknown {
  const roll = rng.int(depth > 3 ? 7 : 10);
  switch (roll) {
    case 0:
      return null;
    case 1:
      return rng.chance(0.5);
    case 2:
      return rng.pick([
        0,
        -1,
        1,
        1.5,
        26,
        32,
        64512,
        65535,
        4294967295,
        4294967296,
        Number.MAX_SAFE_INTEGER,
        -0,
        1e308,
        2 ** 53 + 1,
      ]);
    case 3:
    case 4:
      return rng.pick(STRINGS);
    case 5:
      return rng.chance(0.5)
        ? String.fromCharCode(...Array.from(rng.bytes(rng.int(12)), (b) => 32 + (b % 95)))
        : `${rng.int(256)}.${rng.int(256)}.${rng.int(256)}.${rng.int(256)}/${rng.int(40)}`;
    case 6:
      return undefined;
    case 7: {
      const n = rng.int(4);
      return Array.from({ length: n }, () => randomValue(rng, depth + 1));
    }
    default: {
      const o: Record<string, unknown> = {};
      for (let i = 0, n = rng.int(5); i < n; i++) {
        const key = rng.pick(KEYS);
        if (key === '__proto__')
          Object.defineProperty(o, key, {
            value: randomValue(rng, depth + 1),
            enumerable: true,
            writable: true,
            configurable: true,
          });
        else o[key] = randomValue(rng, depth + 1);
      }
      return o;
    }
  }
}

/** A deep copy of `value` with 1..3 random changes (replace, delete, add) at random paths. */
export function mutateValue(rng: Rng, value: unknown): unknown {
  const copy = structuredClone(value) as unknown;
  let root = copy;
  for (let n = 1 + rng.int(3); n > 0; n--) {
    // Walk down a random path.
    let parent: Record<string, unknown> | unknown[] | null = null;
    let key: string | number = '';
    let cur: unknown = root;
    while (typeof cur === 'object' && cur !== null && rng.chance(0.7)) {
      const keys = Array.isArray(cur) ? cur.map((_, i) => i) : Object.keys(cur);
      if (keys.length === 0) break;
      parent = cur as Record<string, unknown>;
      key = rng.pick(keys as Array<string | number>);
      cur = (cur as Record<string | number, unknown>)[key];
    }
    const op = rng.int(3);
    if (parent === null) {
      if (op === 0) root = randomValue(rng);
      else if (typeof root === 'object' && root !== null && !Array.isArray(root))
        (root as Record<string, unknown>)[rng.pick(KEYS)] = randomValue(rng);
      continue;
    }
    const p = parent as Record<string | number, unknown>;
    if (op === 0) p[key] = randomValue(rng);
    else if (op === 1) {
      if (Array.isArray(parent)) parent.splice(Number(key), 1);
      else delete p[key];
    } else if (typeof cur === 'object' && cur !== null && !Array.isArray(cur))
      (cur as Record<string, unknown>)[rng.pick(KEYS)] = randomValue(rng);
    else p[key] = rng.pick([[], {}, [cur], { value: cur }, String(cur), Number(cur)]);
  }
  return root;
}

/**
 * Like mutateValue, but every value keeps its JSON type (a string stays a string, a list a list): what an
 * API server that checks its schema (Kubernetes) can still deliver. Optional keys may go, unknown keys come.
 */
/** Fields every Kubernetes object has (the API server guarantees them). */
const REQUIRED = new Set(['metadata', 'name']);

export function mutateTyped(rng: Rng, value: unknown): unknown {
  const copy = structuredClone(value) as unknown;
  for (let n = 1 + rng.int(3); n > 0; n--) {
    let parent: Record<string, unknown> | unknown[] | null = null;
    let key: string | number = '';
    let cur: unknown = copy;
    while (typeof cur === 'object' && cur !== null && rng.chance(0.75)) {
      const keys = Array.isArray(cur) ? cur.map((_, i) => i) : Object.keys(cur);
      if (keys.length === 0) break;
      parent = cur as Record<string, unknown>;
      key = rng.pick(keys as Array<string | number>);
      cur = (cur as Record<string | number, unknown>)[key];
    }
    if (parent === null) continue;
    const p = parent as Record<string | number, unknown>;
    const op = rng.int(4);
    if (op === 0 && !Array.isArray(parent) && !REQUIRED.has(String(key))) delete p[key];
    else if (op === 0 && Array.isArray(parent)) (parent as unknown[]).splice(Number(key), 1);
    else if (op === 1 && typeof cur === 'object' && cur !== null && !Array.isArray(cur))
      (cur as Record<string, unknown>)[`fuzzUnknown${rng.int(9)}`] = rng.pick(STRINGS);
    else if (op === 1 && Array.isArray(cur)) cur.push(structuredClone(cur[0] ?? rng.pick(STRINGS)));
    else if (typeof cur === 'string') p[key] = rng.chance(0.5) ? rng.pick(STRINGS) : mutateText(rng, cur);
    else if (typeof cur === 'number') p[key] = rng.pick([0, -1, 1, 26, 33, 65535, 4294967296, 1.5, -0.5]);
    else if (typeof cur === 'boolean') p[key] = !cur;
  }
  return copy;
}

/** Text with a few characters changed, inserted or removed. */
export function mutateText(rng: Rng, text: string): string {
  let out = text;
  for (let n = 1 + rng.int(3); n > 0; n--) {
    const at = rng.int(out.length + 1);
    const piece = rng.pick([
      ':',
      '-',
      ' ',
      '\n',
      '"',
      "'",
      '{',
      '}',
      '[',
      ']',
      '&a',
      '*a',
      '!!binary',
      '!!str',
      '<<: *a',
      '? ',
      '#',
      '\t',
      '%YAML 1.1\n',
      '---\n',
      '...\n',
      '|',
      '>',
      rng.pick(STRINGS),
    ]);
    switch (rng.int(3)) {
      case 0:
        out = out.slice(0, at) + piece + out.slice(at);
        break;
      case 1:
        out = out.slice(0, at) + out.slice(at + 1 + rng.int(8));
        break;
      default:
        out = out.slice(0, at) + piece + out.slice(at + piece.length);
    }
  }
  return out;
}

// ---- the targets ------------------------------------------------------------------------------------------------

const FIXTURES = `${CAPTURES_DIR}/../resources`;

function resourceTexts(): string[] {
  const texts = readdirSync(FIXTURES)
    .filter((f) => f.endsWith('.yaml'))
    .map((f) => readFileSync(`${FIXTURES}/${f}`, 'utf8'));
  if (texts.length === 0) throw new Error(`no YAML fixtures in ${FIXTURES}`);
  return texts;
}

function resourceDocs(texts: readonly string[]): unknown[] {
  const docs: unknown[] = [];
  for (const t of texts) {
    try {
      docs.push(...parseDocuments(t, 'fixture'));
    } catch {
      // bad-middle.yaml is bad on purpose
    }
  }
  return docs;
}

const CNI_CONF = {
  cniVersion: '1.0.0',
  name: 'k8s-pod-network',
  type: 'tortie',
  ipam: { type: 'tortie', ipv4_pools: ['default-ipv4-ippool'] },
  mtu: 1480,
  datastore_type: 'etcdv3',
  etcd_endpoints: 'http://127.0.0.1:2379',
  log_level: 'info',
};
const CNI_RESULT = {
  cniVersion: '1.0.0',
  interfaces: [{ name: 'cali0123456789a', mac: 'ee:ee:ee:ee:ee:ee' }],
  ips: [{ address: '10.244.1.5/32', interface: 0 }],
  routes: [{ dst: '0.0.0.0/0' }],
};
const CNI_ENV = {
  CNI_COMMAND: 'ADD',
  CNI_CONTAINERID: 'abc123',
  CNI_NETNS: '/var/run/netns/x',
  CNI_IFNAME: 'eth0',
  CNI_ARGS: 'K8S_POD_NAMESPACE=default;K8S_POD_NAME=web-0',
  CNI_PATH: '/opt/cni/bin',
};

const HEALTH: HealthOptions = {
  port: 0,
  readiness: () => ({ ready: true }),
  liveness: () => true,
  metrics: { render: async () => '# metrics\n', contentType: 'text/plain' } as unknown as HealthOptions['metrics'],
};

function b64(text: string): string {
  return Buffer.from(text).toString('base64');
}

function targets(): Array<Target<never>> {
  const texts = resourceTexts();
  const docs = resourceDocs(texts);
  const ipPool = docs.find((d) => (d as { kind?: string }).kind === 'IPPool');
  const etcd = new EtcdStore({
    endpoints: ['fuzz'],
    timeoutMs: 1,
    isRefusal: () => false,
    close: () => {},
  } as unknown as EtcdTransport);
  const etcdValues = new Map<string, unknown>();
  for (const doc of docs) {
    try {
      const r = toResource(doc, 0);
      if (!etcdValues.has(r.kind)) etcdValues.set(r.kind, layoutOf(r.kind).encode(r as never));
    } catch {
      // a fixture that is not a resource
    }
  }
  etcdValues.set('IPAMBlock', {
    cidr: '10.244.1.0/26',
    affinity: 'host:n1',
    allocations: [0, null, 1],
    unallocated: [3, 4],
    attributes: [{ handle_id: 'k8s-pod-network.abc', secondary: { node: 'n1' } }, { handle_id: 'ipip-tunnel-addr-n1' }],
    sequenceNumber: 0,
    sequenceNumberForAllocation: { '0': 0 },
    deleted: false,
  });
  etcdValues.set('BlockAffinity', { state: 'confirmed', deleted: 'false' });
  etcdValues.set('IPAMHandle', { handleID: 'k8s-pod-network.abc', block: { '10.244.1.0/26': 1 }, deleted: false });
  const dumpSeeds = [
    routeDump([
      routeMessage({ dstLen: 26, dst: '10.244.1.0', type: 6, protocol: 80 }),
      routeMessage({ dstLen: 26, dst: '10.244.2.0', gateway: '198.18.0.2', oif: 3, protocol: 80, flags: 4 }),
    ]),
    routeDump(
      [
        routeMessage({ dstLen: 0, gateway: '198.18.0.1', oif: 2 }),
        routeMessage({ dstLen: 32, dst: '10.244.1.5', oif: 7, scope: 253 }),
      ],
      false,
    ),
  ];
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- each target has its own input type
  const list: Array<Target<any>> = [
    {
      name: 'resources: YAML/JSON text → parse + validate',
      input: (rng: Rng) =>
        rng.chance(0.8)
          ? mutateText(rng, rng.pick(texts))
          : rng.chance(0.5)
            ? (JSON.stringify(mutateValue(rng, rng.pick(docs))) ?? '')
            : String.fromCharCode(...Array.from(rng.bytes(rng.int(200)))),
      run: (text: string) => {
        for (const [i, doc] of parseDocuments(text, 'fuzz.yaml').entries()) {
          try {
            validateResource(toResource(doc, i));
          } catch (error) {
            if (!(error instanceof ResourceError)) throw error;
          }
        }
      },
      typed: (e) => e instanceof ResourceError || plainError(e),
    },
    {
      name: 'resources: documents → toResource + validate',
      input: (rng: Rng) => (rng.chance(0.85) ? mutateValue(rng, rng.pick(docs)) : randomValue(rng)),
      run: (doc: unknown) => validateResource(toResource(doc, 0)),
      typed: (e) => e instanceof ResourceError,
    },
    {
      name: 'CNI network configuration (stdin)',
      input: (rng: Rng) =>
        rng.chance(0.7)
          ? (JSON.stringify(mutateValue(rng, CNI_CONF)) ?? '')
          : rng.chance(0.5)
            ? mutateText(rng, JSON.stringify(CNI_CONF))
            : (JSON.stringify(randomValue(rng)) ?? ''),
      run: (text: string) => parseNetConf(text),
      typed: (e) => e instanceof CniError,
    },
    {
      name: 'CNI prevResult',
      input: (rng: Rng) => (rng.chance(0.8) ? mutateValue(rng, CNI_RESULT) : randomValue(rng)),
      run: (value: unknown) => parseResult(value, 'prevResult'),
      typed: (e) => e instanceof CniError,
    },
    {
      name: 'CNI environment and CNI_ARGS',
      input: (rng: Rng) => {
        const env: Record<string, string | undefined> = { ...CNI_ENV };
        for (let n = 1 + rng.int(3); n > 0; n--) {
          const key = rng.pick(Object.keys(CNI_ENV));
          env[key] = rng.chance(0.2)
            ? undefined
            : rng.chance(0.5)
              ? mutateText(rng, env[key] ?? '')
              : String(randomValue(rng));
        }
        return env;
      },
      run: (env: Record<string, string | undefined>) => {
        parseEnv(env);
        parseCniArgs(env.CNI_ARGS ?? '');
      },
      typed: (e) => e instanceof CniError,
    },
    {
      name: 'control socket request line',
      input: (rng: Rng) =>
        rng.chance(0.5)
          ? (JSON.stringify(mutateValue(rng, { command: rng.pick(['status', 'routes', 'stop']), graceful: true })) ??
            '')
          : rng.chance(0.5)
            ? mutateText(rng, '{"command":"status"}')
            : (JSON.stringify(randomValue(rng)) ?? ''),
      run: (line: string) => parseControlRequest(line),
      typed: plainError,
    },
    {
      name: 'health HTTP method + path',
      input: (rng: Rng) => ({
        method: rng.pick(['GET', 'HEAD', 'POST', 'DELETE', '', 'get', 'OPTIONS']),
        url: rng.chance(0.6)
          ? mutateText(
              rng,
              rng.pick(['/liveness', '/readiness', '/metrics', '/readiness?x=1', '//metrics', '/%2e%2e/metrics']),
            )
          : String.fromCharCode(...Array.from(rng.bytes(rng.int(40)), (b) => 32 + (b % 95))),
      }),
      run: (i: { method: string; url: string }) => healthReply(i.method, i.url, HEALTH),
      typed: () => false,
    },
    {
      name: 'etcd gateway watch/range/txn answers',
      input: (rng: Rng) => {
        const kv = {
          key: b64('/calico/resources/v3/projectcalico.org/ippools/p1'),
          value: b64(JSON.stringify(ipPool ?? {})),
          mod_revision: '7',
          create_revision: '5',
        };
        const watch = { header: { revision: '9' }, created: false, events: [{ type: 'PUT', kv, prev_kv: kv }] };
        const seed = rng.pick([
          watch,
          { header: { revision: '9' }, kvs: [kv] },
          { header: { revision: '9' }, succeeded: true, responses: [{ response_range: { kvs: [kv] } }] },
        ]);
        return { which: rng.int(3), value: rng.chance(0.85) ? mutateValue(rng, seed) : randomValue(rng) };
      },
      run: (i: { which: number; value: unknown }) =>
        i.which === 0 ? decodeWatchResponse(i.value) : i.which === 1 ? decodeRange(i.value) : decodeTxn(i.value),
      typed: (e) => e instanceof EtcdGatewayAnswerError || e instanceof DatastoreError,
    },
    {
      name: 'etcd values → resources (every kind)',
      input: (rng: Rng) => {
        const kind = rng.pick(KINDS);
        const seed = etcdValues.get(kind) ?? etcdValues.get('IPPool');
        const text = rng.chance(0.7)
          ? JSON.stringify(mutateTyped(rng, seed))
          : rng.chance(0.5)
            ? mutateText(rng, JSON.stringify(seed))
            : (JSON.stringify(randomValue(rng)) ?? '');
        return { kind, text };
      },
      run: (i: { kind: (typeof KINDS)[number]; text: string }) => {
        const layout = layoutOf(i.kind);
        const key = layout.key(
          i.kind === 'IPAMBlock'
            ? { name: '10-244-1-0-26' }
            : i.kind === 'BlockAffinity'
              ? { name: 'n1-10-244-1-0-26' }
              : { name: 'fuzz', namespace: 'default' },
        );
        etcd.decodeKv(i.kind, {
          key: Buffer.from(key),
          value: Buffer.from(i.text),
          mod_revision: '7',
          create_revision: '5',
        });
      },
      typed: (e) => e instanceof ResourceError || e instanceof DatastoreError || plainError(e),
    },
    {
      name: 'Kubernetes watch objects → resources',
      input: (rng: Rng) => {
        const node = {
          metadata: {
            name: 'n1',
            resourceVersion: '5',
            labels: { a: 'b' },
            annotations: { 'projectcalico.org/IPv4Address': '198.18.0.1/24', 'projectcalico.org/ASNumber': '64512' },
          },
        };
        const pod = {
          metadata: { name: 'web-0', namespace: 'default', labels: { app: 'web' } },
          spec: { nodeName: 'n1', containers: [{ ports: [{ name: 'http', containerPort: 80, protocol: 'TCP' }] }] },
          status: { podIP: '10.244.1.5', podIPs: [{ ip: '10.244.1.5' }], phase: 'Running' },
        };
        const crd = {
          apiVersion: 'crd.projectcalico.org/v1',
          kind: 'IPPool',
          metadata: { name: 'p1', annotations: { 'projectcalico.org/metadata': '{"labels":{"a":"b"}}' } },
          spec: { cidr: '10.244.0.0/16', blockSize: 26, ipipMode: 'Always' },
        };
        const np = {
          metadata: { name: 'np', namespace: 'default' },
          spec: {
            podSelector: { matchLabels: { app: 'web' } },
            ingress: [
              {
                from: [{ ipBlock: { cidr: '10.0.0.0/8', except: ['10.1.0.0/16'] } }],
                ports: [{ port: 80, protocol: 'TCP' }],
              },
            ],
            policyTypes: ['Ingress'],
          },
        };
        const which = rng.int(5);
        const seed = [node, pod, crd, np, { metadata: { name: 'default', labels: { a: 'b' } } }][which];
        return { which, kind: rng.pick(KINDS), value: mutateTyped(rng, seed) };
      },
      run: (i: { which: number; kind: (typeof KINDS)[number]; value: unknown }) => {
        const v = i.value as never;
        if (i.which === 0) return nodeToResource(v);
        if (i.which === 1) return podToWorkloadEndpoint(v);
        if (i.which === 2)
          return crdToResource(
            i.kind === 'Node' || i.kind === 'WorkloadEndpoint' || i.kind === 'NetworkPolicy' || i.kind === 'Namespace'
              ? 'IPPool'
              : i.kind,
            v,
          );
        if (i.which === 3) return networkPolicyToResource(v);
        return namespaceToResource(v);
      },
      typed: (e) => e instanceof DatastoreError || e instanceof ResourceError,
    },
    {
      name: 'rtnetlink route dump decoder',
      input: (rng: Rng) => {
        const seed = rng.pick(dumpSeeds);
        const out = Buffer.from(seed);
        switch (rng.int(4)) {
          case 0:
            for (let n = 1 + rng.int(4); n > 0; n--) out[rng.int(out.length)] = rng.int(256);
            return out;
          case 1:
            return out.subarray(0, rng.int(out.length + 1));
          case 2: {
            // A length or attribute length field set to a boundary value.
            const at = rng.pick([4, 8, 32, 36, 40, 44, 48, 52, 56]) % out.length;
            const value = rng.pick([0, 1, 3, 4, 5, 7, 8, 12, 16, 28, 255, 0xffff, 0xffffffff]);
            if (at + 4 <= out.length) out.writeUInt32LE(value >>> 0, at);
            return out;
          }
          default:
            return Buffer.concat([out, Buffer.from(rng.bytes(rng.int(64)))]);
        }
      },
      run: (bytes: Uint8Array) => decodeRouteDump(bytes, frameRouteDump(bytes), new Map([[3, 'eth0']])),
      typed: (e) => e instanceof RouteDumpError,
    },
  ];
  return list as Array<Target<never>>;
}

/** Runs every parser fuzzer `count` times (some parsers get a share; see targets). */
export async function fuzzParsers(options: { count: number; seed: number; only?: string }): Promise<ParserReport[]> {
  const reports: ParserReport[] = [];
  const stackTraceLimit = Error.stackTraceLimit;
  for (const [t, target] of targets().entries()) {
    if (options.only !== undefined && !target.name.includes(options.only)) continue;
    const rng = new Rng((options.seed + t * 0x9e3779b9) >>> 0);
    const violations: ParserViolation[] = [];
    let typedErrors = 0;
    const started = performance.now();
    for (let index = 0; index < options.count; index++) {
      const input = target.input(rng);
      try {
        Error.stackTraceLimit = 0;
        const result = target.run(input);
        if (result instanceof Promise) await result;
      } catch (error) {
        if (target.typed(error) && !isUntyped(error)) typedErrors++;
        else {
          Error.stackTraceLimit = stackTraceLimit;
          let stack = '';
          try {
            const again = target.run(input);
            if (again instanceof Promise) await again;
          } catch (second) {
            stack = second instanceof Error ? (second.stack ?? '') : '';
          }
          violations.push({
            index,
            reason: `${error instanceof Error ? error.constructor.name : typeof error}: ${error instanceof Error ? error.message : String(error)}\n${stack.split('\n').slice(1, 6).join('\n')}`,
            input,
          });
          if (violations.length >= 5) break;
        }
      } finally {
        Error.stackTraceLimit = stackTraceLimit;
      }
    }
    const ms = performance.now() - started;
    reports.push({
      name: target.name,
      inputs: options.count,
      ms,
      perSecond: Math.round((options.count / Math.max(1, ms)) * 1000),
      typedErrors,
      violations,
    });
  }
  return reports;
}
