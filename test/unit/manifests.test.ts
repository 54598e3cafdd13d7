// manifests/ and the Dockerfile, checked against the code they deploy, without a cluster:
// - every manifest parses as kubectl reads it (YAML 1.1), and every Kubernetes object in it has only fields
//   the Kubernetes API knows, with the right types (test/harness/kube-fields.ts);
// - the CRDs: one per custom kind the kubernetes backend uses, structural schemas (what the API server
//   accepts), fields and types equal to src/resources/schema.ts's table (derived field by field, so a field
//   added there and not here fails), a wrong type at any field refused by both tortie and the schema,
//   semantic errors the schema can express refused by both, `required` no stricter than tortie, and what
//   tortie itself writes (its IPAM's blocks, affinities and handles; the default pool) accepted;
// - the examples: valid v3 resources, accepted by the CRDs once converted as the backend converts them,
//   and doing what they say (the peering planner run on them: reflectors, clients, a global peer);
// - RBAC, per ServiceAccount: tortie-node (the agent) is granted exactly src/agent/api-calls.ts and
//   tortie-cni (the CNI plugin) exactly src/cni/api-calls.ts — a call not granted fails, a grant no code
//   uses fails: every client-node call found in a component's sources must be declared for it, and every
//   declared grant must find the code that needs it (its `uses`) in that component's sources;
// - the DaemonSets: the environment, resolved as the kubelet would, is accepted by the agent's and the
//   datastore's own parsers; probes hit paths the health server answers; host paths; the etcd secret 0400;
// - every command the manifests run (entrypoint, args, init container, preStop) exists in the built CLI;
// - the Dockerfile: its ENTRYPOINT is package.json's bin, every module the CLI can load lies in a copied
//   directory, and every package those modules import is a production dependency.
//
// PENDING lists what the manifests rely on that another part of tortie has not landed yet; each entry is
// checked to be still missing, so the test fails the day it lands, telling to remove the entry.

import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as k8s from '@kubernetes/client-node';
import { dirname, join, posix, relative } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseAgentConfig } from '../../src/agent/config.js';
import { healthReply } from '../../src/agent/health.js';
import type { AgentMetrics } from '../../src/agent/metrics.js';
import { planPeers } from '../../src/agent/planner.js';
import { configFromEnv } from '../../src/datastore/config.js';
import {
  KUBERNETES_API_CALLS,
  mergeNodeAnnotations,
  nodeToResource,
  resourceToCrd,
} from '../../src/datastore/kubernetes.js';
import { AGENT_API_CALLS, type ApiGrant } from '../../src/agent/api-calls.js';
import { CNI_API_CALLS } from '../../src/cni/api-calls.js';
import { MemoryDatastore } from '../../src/datastore/memory.js';
import { BlockInUseError, Ipam } from '../../src/ipam/index.js';
import {
  applyDefaults,
  KIND_INFO,
  parseDocuments,
  ResourceError,
  toResource,
  validateAgainst,
  validateResource,
  type AnyResource,
  type Kind,
  type Resource,
} from '../../src/resources/index.js';
import { SPEC_SHAPES, type Shape } from '../../src/resources/schema.js';
import { kubeFieldProblems } from '../harness/kube-fields.js';
import {
  findOne,
  loadKubeDocuments,
  MANIFEST_DIR,
  parseDockerfile,
  podSpecOf,
  resolveEnv,
  ROOT,
  type Container,
  type KubeDoc,
  type PodSpec,
} from '../harness/manifests.js';
import { structuralProblems, validate, type Schema } from '../harness/openapi-schema.js';

const PKG = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as {
  version: string;
  bin: Record<string, string>;
  dependencies: Record<string, string>;
};
const CLI = join(ROOT, 'dist/src/cli/main.js');
const EXAMPLES_DIR = join(MANIFEST_DIR, 'examples');
const TOP_FILES = readdirSync(MANIFEST_DIR)
  .filter((f) => f.endsWith('.yaml'))
  .sort();
const EXAMPLE_FILES = readdirSync(EXAMPLES_DIR)
  .filter((f) => f.endsWith('.yaml'))
  .sort();
const KUBE = loadKubeDocuments(join(MANIFEST_DIR, 'tortie.yaml'));
const ETCD = loadKubeDocuments(join(MANIFEST_DIR, 'tortie-etcd.yaml'));
const DOCKERFILE = parseDockerfile(readFileSync(join(ROOT, 'Dockerfile'), 'utf8'));

/** What the manifests use that has not landed yet: still missing today, each with who brings it. */
const PENDING = {
  commands: {} as Record<string, string>,
  /** Variables of the agent's environment that its parser refuses today. */
  env: {} as Record<string, string>,
};

const CRD_GROUP = 'crd.projectcalico.org';
type CrdKind = 'IPPool' | 'BGPConfiguration' | 'BGPPeer' | 'BGPFilter' | 'IPAMBlock' | 'BlockAffinity' | 'IPAMHandle';

const CRDS = KUBE.filter((d) => d.kind === 'CustomResourceDefinition');
function crdSchema(kind: Kind): Schema {
  const crd = CRDS.find((c) => (c.spec as { names?: { kind?: string } }).names?.kind === kind);
  if (!crd) throw new Error(`no CRD for ${kind} in manifests/tortie.yaml`);
  const versions = (crd.spec as { versions: Array<{ name: string; schema: { openAPIV3Schema: Schema } }> }).versions;
  return versions.find((v) => v.name === 'v1')!.schema.openAPIV3Schema;
}
function specSchema(kind: Kind): Schema {
  return (crdSchema(kind).properties as Record<string, Schema>).spec!;
}
const CRD_KINDS = CRDS.map((c) => (c.spec as { names: { kind: CrdKind } }).names.kind);

/** The problems the API server would find in `resource` as the kubernetes backend stores it. */
function crdProblems(resource: AnyResource): string[] {
  return validate(resourceToCrd(resource), crdSchema(resource.kind)).map((p) => `${p.path}: ${p.message}`);
}

function v3<K extends Kind>(kind: K, name: string, spec: unknown): Resource<K> {
  return { apiVersion: 'projectcalico.org/v3', kind, metadata: { name }, spec } as Resource<K>;
}

/** tortie's verdict on a v3 document: [] when it parses, defaults and validates. */
function tortieProblems(doc: unknown): string[] {
  try {
    const r = applyDefaults(toResource(doc, 0));
    return validateResource(r).map((p) => `${p.path}: ${p.message}`);
  } catch (error) {
    if (error instanceof ResourceError) return [error.message];
    throw error;
  }
}

// ---------------------------------------------------------------------------------------------------------

describe('the schema validator and the field checker (test/harness) can fail', () => {
  it('refuses schemas Kubernetes would refuse or that use keywords it does not implement', () => {
    expect(
      structuralProblems({ type: 'object', properties: { a: { type: 'string', format: 'date-time' } } }),
    ).toHaveLength(1);
    expect(structuralProblems({ type: 'object', properties: { a: { oneOf: [] } } })).not.toEqual([]);
    expect(structuralProblems({ type: 'object', additionalProperties: false })).not.toEqual([]);
    expect(
      structuralProblems({
        type: 'object',
        properties: { a: { type: 'string' } },
        additionalProperties: { type: 'string' },
      }),
    ).not.toEqual([]);
    expect(structuralProblems({ type: 'array' })).not.toEqual([]);
    expect(structuralProblems({ type: 'string', pattern: '^(?!x)' })).not.toEqual([]);
    expect(structuralProblems({ type: 'object', required: ['b'], properties: { a: { type: 'string' } } })).not.toEqual(
      [],
    );
    expect(
      structuralProblems({
        type: 'object',
        properties: { metadata: { type: 'object', properties: { labels: { type: 'object' } } } },
      }),
    ).not.toEqual([]);
    expect(
      structuralProblems({ type: 'object', properties: { a: { type: 'integer', minimum: 1, maximum: 9 } } }),
    ).toEqual([]);
  });

  it('validate: each keyword refuses what it should, naming the field', () => {
    const schema: Schema = {
      type: 'object',
      required: ['n'],
      properties: {
        n: { type: 'integer', minimum: 1, maximum: 9 },
        s: { type: 'string', pattern: '^a+$', enum: ['a', 'aa'] },
        l: { type: 'array', items: { type: 'integer', nullable: true } },
        m: { type: 'object', additionalProperties: { type: 'boolean' } },
      },
    };
    expect(validate({ n: 5, s: 'aa', l: [1, null], m: { 'x/y': true } }, schema)).toEqual([]);
    const paths = (v: unknown): string[] => validate(v, schema).map((p) => p.path);
    expect(paths({})).toEqual(['n']);
    expect(paths({ n: 0 })).toEqual(['n']);
    expect(paths({ n: 10 })).toEqual(['n']);
    expect(paths({ n: 1.5 })).toEqual(['n']);
    expect(paths({ n: 1, s: 'b' })).toEqual(['s', 's']);
    expect(paths({ n: 1, s: 'aaa' })).toEqual(['s']);
    expect(paths({ n: 1, l: [1, 'x'] })).toEqual(['l[1]']);
    expect(paths({ n: 1, m: { 'x/y': 'true' } })).toEqual(['m["x/y"]']);
    expect(paths({ n: 1, extra: 1 })).toEqual(['extra']);
    expect(paths({ n: null })).toEqual(['n']);
  });

  it('kubeFieldProblems: a misspelt field, a misplaced one and a wrong type are caught', () => {
    const ds = (podSpec: Record<string, unknown>): KubeDoc => ({
      apiVersion: 'apps/v1',
      kind: 'DaemonSet',
      metadata: { name: 'x' },
      spec: { selector: {}, template: { spec: { containers: [{ name: 'c', image: 'i' }], ...podSpec } } },
    });
    expect(kubeFieldProblems(ds({ hostNetwork: true, priorityClassName: 'p' }))).toEqual([]);
    expect(kubeFieldProblems(ds({ priorityClass: 'p' }))[0]).toMatch(
      /spec\.template\.spec\.priorityClass: unknown field/,
    );
    expect(kubeFieldProblems(ds({ hostNetwork: 'true' }))[0]).toMatch(/hostNetwork: "true" is not true or false/);
    expect(
      kubeFieldProblems(ds({ containers: [{ name: 'c', image: 'i', env: [{ name: 'A', value: true }] }] }))[0],
    ).toMatch(/env\[0\]\.value/);
    expect(kubeFieldProblems(ds({ volumes: [{ name: 'v', secret: { defaultMode: '0400' } }] }))[0]).toMatch(
      /defaultMode/,
    );
    expect(kubeFieldProblems({ apiVersion: 'v1', kind: 'Pod' })[0]).toMatch(/not a kind/);
  });
});

// ---------------------------------------------------------------------------------------------------------

describe('every manifest parses', () => {
  it('finds the manifests and the examples', () => {
    expect(TOP_FILES).toEqual(['tortie-etcd.yaml', 'tortie.yaml']);
    expect(EXAMPLE_FILES.length).toBeGreaterThanOrEqual(3);
  });

  it.each(TOP_FILES)(
    '%s: every document is a named Kubernetes object, once, with only known fields of the right type',
    (file) => {
      const docs = loadKubeDocuments(join(MANIFEST_DIR, file));
      expect(docs.length).toBeGreaterThanOrEqual(4);
      const keys = docs.map((d) => `${d.kind}/${d.metadata?.namespace ?? ''}/${d.metadata?.name ?? ''}`);
      expect(new Set(keys).size).toBe(keys.length);
      for (const doc of docs) {
        expect(doc.metadata?.name, `${doc.kind} without a name`).toMatch(/^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/);
        expect(kubeFieldProblems(doc), `${doc.kind} ${doc.metadata?.name}`).toEqual([]);
      }
    },
  );

  it.each(EXAMPLE_FILES)(
    'examples/%s: projectcalico.org/v3 documents that tortie parses, defaults and validates',
    (file) => {
      const docs = parseDocuments(readFileSync(join(EXAMPLES_DIR, file), 'utf8'), file);
      expect(docs.length).toBeGreaterThan(0);
      for (const doc of docs) expect(tortieProblems(doc), `${file}`).toEqual([]);
    },
  );
});

// ---------------------------------------------------------------------------------------------------------

describe('the CRDs', () => {
  const backendCrds = KUBERNETES_API_CALLS.map((c) => c.resource).filter((r) => r.endsWith(`.${CRD_GROUP}`));

  it('one per custom kind the kubernetes backend uses, named as Calico names them', () => {
    expect(backendCrds.length).toBeGreaterThan(0);
    expect(CRDS.map((c) => c.metadata?.name).sort()).toEqual([...new Set(backendCrds)].sort());
  });

  it.each(CRD_KINDS)('%s: cluster-scoped, v1 served and stored, with a structural schema', (kind) => {
    const crd = CRDS.find((c) => (c.spec as { names: { kind: string } }).names.kind === kind)!;
    const spec = crd.spec as {
      group: string;
      scope: string;
      names: Record<string, string>;
      versions: Array<{ name: string; served: boolean; storage: boolean }>;
    };
    const plural = KIND_INFO[kind].plural;
    expect(crd.metadata?.name).toBe(`${plural}.${CRD_GROUP}`);
    expect(spec).toMatchObject({
      group: CRD_GROUP,
      scope: 'Cluster',
      names: { kind, plural, singular: kind.toLowerCase(), listKind: `${kind}List` },
    });
    expect(spec.versions.map((v) => [v.name, v.served, v.storage])).toEqual([['v1', true, true]]);
    expect(structuralProblems(crdSchema(kind))).toEqual([]);
  });

  /** How a v3 field is stored where the backend converts it (src/datastore/kubernetes.ts, CRD_KINDS toCrdSpec). */
  const STORED_AS: Record<string, Schema> = {
    'BlockAffinity.spec.deleted': { type: 'string', enum: ['true', 'false'] },
  };

  /** Where the schema differs from the type table, one line each. [] when equal. */
  function shapeMismatches(kind: Kind, shape: Shape, schema: Schema | undefined, path: string): string[] {
    const stored = STORED_AS[`${kind}.${path}`];
    if (stored)
      return schema?.type === stored.type && JSON.stringify(schema?.enum) === JSON.stringify(stored.enum)
        ? []
        : [`${path}: expected ${JSON.stringify(stored)}`];
    if (!schema) return [`${path}: missing from the CRD`];
    const expect = (type: string, nullable = false): string[] =>
      schema.type === type && (schema.nullable === true) === nullable
        ? []
        : [
            `${path}: CRD has ${String(schema.type)}${schema.nullable ? ' (nullable)' : ''}, src/resources/schema.ts has ${shape.type}`,
          ];
    switch (shape.type) {
      case 'string':
        return expect('string');
      case 'nullableString':
        return expect('string', true);
      case 'integer':
      case 'asNumber': // AS numbers are stored as numbers: checkShape normalizes "64512" and asdot "1.10".
        return expect('integer');
      case 'nullableInteger':
        return expect('integer', true);
      case 'boolean':
        return expect('boolean');
      case 'intOrString': // a Kubernetes IntOrString (NetworkPolicy ports; no CRD kind has one today)
        return schema['x-kubernetes-int-or-string'] === true
          ? []
          : [`${path}: CRD lacks x-kubernetes-int-or-string, src/resources/schema.ts has intOrString`];
      case 'enum':
        return [
          ...expect('string'),
          ...(JSON.stringify([...((schema.enum as string[]) ?? [])].sort()) === JSON.stringify([...shape.values].sort())
            ? []
            : [`${path}: enum ${JSON.stringify(schema.enum)} ≠ ${JSON.stringify(shape.values)}`]),
        ];
      case 'array':
        return [
          ...expect('array'),
          ...shapeMismatches(kind, shape.items, schema.items as Schema | undefined, `${path}[]`),
        ];
      case 'map':
      case 'nullableMap':
        return [
          ...expect('object', shape.type === 'nullableMap'),
          ...shapeMismatches(kind, shape.values, schema.additionalProperties as Schema | undefined, `${path}{}`),
        ];
      case 'object': {
        const props = (schema.properties ?? {}) as Record<string, Schema>;
        const extra = Object.keys(props)
          .filter((k) => !Object.hasOwn(shape.fields, k))
          .map((k) => `${path}.${k}: in the CRD, not in src/resources/schema.ts`);
        return [
          ...expect('object'),
          ...extra,
          ...Object.entries(shape.fields).flatMap(([k, s]) => shapeMismatches(kind, s, props[k], `${path}.${k}`)),
        ];
      }
    }
  }

  it.each(CRD_KINDS)('%s: the spec has exactly the fields and types of src/resources/schema.ts', (kind) => {
    expect(shapeMismatches(kind, SPEC_SHAPES[kind], specSchema(kind), 'spec')).toEqual([]);
  });

  it('the stored-as exceptions are what the backend really writes', () => {
    const crd = resourceToCrd(
      v3('BlockAffinity', 'node-a-10-244-1-0-26', {
        state: 'confirmed',
        node: 'node-a',
        cidr: '10.244.1.0/26',
        deleted: false,
      }),
    );
    expect(crd.spec?.deleted).toBe('false');
  });

  /** Valid specs that together set every field of every CRD kind (checked below). */
  const SPECIMENS: Record<CrdKind, Array<Record<string, unknown>>> = {
    IPPool: [
      {
        cidr: '10.244.0.0/16',
        blockSize: 26,
        ipipMode: 'CrossSubnet',
        vxlanMode: 'Never',
        natOutgoing: true,
        disabled: false,
        disableBGPExport: false,
        nodeSelector: 'all()',
        allowedUses: ['Workload', 'Tunnel', 'LoadBalancer'],
        assignmentMode: 'Manual',
        namespaceSelector: "team == 'a'",
      },
    ],
    BGPConfiguration: [
      {
        nodeToNodeMeshEnabled: true,
        asNumber: 64512,
        listenPort: 179,
        logSeverityScreen: 'Info',
        bindMode: 'NodeIP',
        nodeMeshMaxRestartTime: '120s',
        nodeMeshPassword: { secretKeyRef: { name: 'bgp-secrets', key: 'mesh' } },
        serviceClusterIPs: [{ cidr: '10.96.0.0/12' }],
        serviceExternalIPs: [{ cidr: '198.18.10.0/24' }],
        serviceLoadBalancerIPs: [{ cidr: '198.18.20.0/24' }],
        communities: [{ name: 'office', value: '65001:100' }],
        prefixAdvertisements: [{ cidr: '10.244.0.0/16', communities: ['office', '65001:200:300'] }],
        ignoredInterfaces: ['docker0'],
        programClusterRoutes: 'Disabled',
      },
    ],
    BGPPeer: [
      {
        node: 'node-a',
        peerIP: '198.18.0.1:179',
        asNumber: 65001,
        localASNumber: 64513,
        nextHopMode: 'Self',
        sourceAddress: 'UseNodeIP',
        maxRestartTime: '2m0s',
        keepaliveTime: '30s',
        numAllowedLocalASNumbers: 1,
        password: { secretKeyRef: { name: 'bgp-secrets', key: 'office' } },
        filters: ['office-filter'],
        ttlSecurity: 1,
        reachableBy: '198.18.0.254',
        localWorkloadSelector: "app == 'bgp'",
        reversePeering: 'Manual',
      },
      { nodeSelector: 'all()', peerSelector: "route-reflector == 'true'", keepOriginalNextHop: true },
    ],
    // The walk above follows the first item of each list: one specimen per operation kind.
    BGPFilter: (['addCommunity', 'prependASPath', 'setPriority'] as const).map((first) => {
      const operations = {
        addCommunity: { value: '65000:300:400' },
        prependASPath: { prefix: [64999] },
        setPriority: { value: 256 },
      };
      const ordered = [
        { [first]: operations[first] },
        ...Object.entries(operations)
          .filter(([k]) => k !== first)
          .map(([k, v]) => ({ [k]: v })),
      ];
      const rule = (cidr: string, prefixLength: { min: number; max: number }) => ({
        cidr,
        matchOperator: 'In',
        prefixLength,
        source: 'RemotePeers',
        interface: 'eth*',
        peerType: 'eBGP',
        communities: { values: ['65000:42'] },
        asPathPrefix: [65000],
        priority: 512,
        action: 'Accept',
        operations: ordered,
      });
      const v4 = rule('10.244.0.0/16', { min: 24, max: 28 });
      const v6 = rule('fd00:10:244::/48', { min: 64, max: 122 });
      return { exportV4: [v4], importV4: [v4], exportV6: [v6], importV6: [v6] };
    }),
    IPAMBlock: [
      {
        cidr: '10.244.1.0/30',
        affinity: 'host:node-a',
        strictAffinity: false,
        allocations: [0, null, null, null],
        unallocated: [1, 2, 3],
        attributes: [{ handle_id: 'k8s-pod-network.abc', secondary: { node: 'node-a' } }],
        deleted: false,
        sequenceNumber: 3,
      },
    ],
    BlockAffinity: [{ state: 'confirmed', node: 'node-a', cidr: '10.244.1.0/26', deleted: false }],
    IPAMHandle: [{ handleID: 'k8s-pod-network.abc', block: { '10.244.1.0/26': 1 }, deleted: false }],
  };
  const NAMES: Record<CrdKind, string> = {
    IPPool: 'pool-a',
    BGPConfiguration: 'default',
    BGPPeer: 'peer-a',
    BGPFilter: 'office-filter',
    IPAMBlock: '10-244-1-0-30',
    BlockAffinity: 'node-a-10-244-1-0-26',
    IPAMHandle: 'k8s-pod-network.abc',
  };

  /** Every place in a spec: its path (spec.a[0].b, spec.block["x"]), the shape there, and the specimen's value. */
  function places(shape: Shape, value: unknown, path: string[]): Array<{ path: string[]; shape: Shape }> {
    const here = [{ path, shape }];
    if (value === undefined || value === null) return here;
    if (shape.type === 'object')
      return [
        ...here,
        ...Object.entries(shape.fields).flatMap(([k, s]) =>
          places(s, (value as Record<string, unknown>)[k], [...path, k]),
        ),
      ];
    if (shape.type === 'array') return [...here, ...places(shape.items, (value as unknown[])[0], [...path, '0'])];
    if (shape.type === 'map' || shape.type === 'nullableMap') {
      const [key] = Object.keys(value as object);
      return key === undefined
        ? here
        : [...here, ...places(shape.values, (value as Record<string, unknown>)[key], [...path, key])];
    }
    return here;
  }
  const typeOnlyPath = (path: string[]): string => path.map((p) => (/^\d+$/.test(p) ? '[]' : p)).join('.');
  function allShapePaths(shape: Shape, path: string[]): string[] {
    const here = [typeOnlyPath(path)];
    if (shape.type === 'object')
      return [...here, ...Object.entries(shape.fields).flatMap(([k, s]) => allShapePaths(s, [...path, k]))];
    if (shape.type === 'array') return [...here, ...allShapePaths(shape.items, [...path, '0'])];
    return here; // map values: keys are data, covered through the specimens
  }

  it.each(CRD_KINDS)(
    '%s: the specimens set every field, are valid for tortie, and the CRD accepts them as the backend stores them',
    (kind) => {
      const specimens = SPECIMENS[kind];
      const covered = new Set(
        specimens.flatMap((s) => places(SPEC_SHAPES[kind], s, []).map((p) => typeOnlyPath(p.path))),
      );
      const wanted = allShapePaths(SPEC_SHAPES[kind], []).filter((p) => p !== '');
      expect(wanted.filter((p) => !covered.has(p))).toEqual([]);
      for (const spec of specimens) {
        const doc = v3(kind, NAMES[kind], spec);
        expect(tortieProblems(doc)).toEqual([]);
        expect(crdProblems(applyDefaults(toResource(doc, 0)))).toEqual([]);
      }
    },
  );

  /** A value of the wrong JSON type for a shape. */
  const WRONG: Record<Shape['type'], unknown> = {
    string: 42,
    nullableString: 42,
    integer: 'x',
    nullableInteger: 'x',
    boolean: 'yes',
    intOrString: true,
    asNumber: true,
    enum: 'Sometimes',
    object: 'x',
    array: 'x',
    map: ['x'],
    nullableMap: ['x'],
  };

  function withValue(spec: Record<string, unknown>, path: string[], value: unknown): Record<string, unknown> {
    const copy = structuredClone(spec);
    let at: Record<string, unknown> = copy;
    path.slice(0, -1).forEach((k) => (at = at[k] as Record<string, unknown>));
    at[path[path.length - 1]!] = value;
    return copy;
  }
  const schemaPath = (path: string[]): string =>
    path.reduce(
      (acc, p) =>
        /^\d+$/.test(p)
          ? `${acc}[${p}]`
          : /^[A-Za-z_][A-Za-z0-9_]*$/.test(p)
            ? `${acc}.${p}`
            : `${acc}[${JSON.stringify(p)}]`,
      'spec',
    );

  const MUTATIONS = CRD_KINDS.flatMap((kind) =>
    SPECIMENS[kind].flatMap((spec, n) =>
      places(SPEC_SHAPES[kind], spec, [])
        .filter(
          (p) => p.path.length > 0 && spec !== undefined && !STORED_AS[`${kind}.${['spec', ...p.path].join('.')}`],
        )
        .map((p) => ({
          kind,
          n,
          spec,
          path: p.path,
          wrong: WRONG[p.shape.type],
          label: `${kind} ${schemaPath(p.path)} = ${JSON.stringify(WRONG[p.shape.type])}`,
        })),
    ),
  );

  it('a wrong type is tried at every field', () => {
    expect(MUTATIONS.length).toBeGreaterThan(60);
  });

  it.each(MUTATIONS.map((m) => [m.label, m] as const))(
    '%s: refused by tortie and by the CRD, at that field',
    (_label, m) => {
      const spec = withValue(m.spec, m.path, m.wrong);
      expect(tortieProblems(v3(m.kind, NAMES[m.kind], spec)).length).toBeGreaterThan(0);
      const problems = validate(
        { apiVersion: `${CRD_GROUP}/v1`, kind: m.kind, metadata: { name: NAMES[m.kind] }, spec },
        crdSchema(m.kind),
      );
      expect(problems.map((p) => p.path)).toContain(schemaPath(m.path));
    },
  );

  /** Errors of meaning that a schema can express: both tortie and the CRD refuse them. */
  const INVALID: Array<{ kind: CrdKind; change: Record<string, unknown>; remove?: string; path: string }> = [
    { kind: 'IPPool', change: { blockSize: 19 }, path: 'spec.blockSize' },
    { kind: 'IPPool', change: { blockSize: 129 }, path: 'spec.blockSize' },
    { kind: 'IPPool', change: { ipipMode: 'always' }, path: 'spec.ipipMode' },
    { kind: 'IPPool', change: { cidr: 'ten.0.0.0/8' }, path: 'spec.cidr' },
    { kind: 'IPPool', change: { allowedUses: ['Workloads'] }, path: 'spec.allowedUses[0]' },
    { kind: 'IPPool', change: { ipipmode: 'Always' }, path: 'spec.ipipmode' },
    { kind: 'IPPool', change: {}, remove: 'cidr', path: 'spec.cidr' },
    { kind: 'BGPConfiguration', change: { asNumber: 0 }, path: 'spec.asNumber' },
    { kind: 'BGPConfiguration', change: { listenPort: 70000 }, path: 'spec.listenPort' },
    { kind: 'BGPConfiguration', change: { nodeMeshMaxRestartTime: '2 minutes' }, path: 'spec.nodeMeshMaxRestartTime' },
    {
      kind: 'BGPConfiguration',
      change: { communities: [{ name: 'office', value: '65001' }] },
      path: 'spec.communities[0].value',
    },
    {
      kind: 'BGPConfiguration',
      change: { serviceClusterIPs: [{ cidr: '10.96.0.0' }] },
      path: 'spec.serviceClusterIPs[0].cidr',
    },
    { kind: 'BGPConfiguration', change: { bindMode: 'nodeip' }, path: 'spec.bindMode' },
    { kind: 'BGPPeer', change: { peerIP: 'router.example' }, path: 'spec.peerIP' },
    { kind: 'BGPPeer', change: { asNumber: 4294967296 }, path: 'spec.asNumber' },
    { kind: 'BGPPeer', change: { localASNumber: 0 }, path: 'spec.localASNumber' },
    { kind: 'BGPPeer', change: { numAllowedLocalASNumbers: 11 }, path: 'spec.numAllowedLocalASNumbers' },
    { kind: 'BGPPeer', change: { nextHopMode: 'self' }, path: 'spec.nextHopMode' },
    { kind: 'BGPPeer', change: { keepaliveTime: '30 s' }, path: 'spec.keepaliveTime' },
    { kind: 'IPAMBlock', change: { cidr: '10.244.1.0' }, path: 'spec.cidr' },
    { kind: 'IPAMBlock', change: { affinity: 'node-a' }, path: 'spec.affinity' },
    { kind: 'IPAMBlock', change: { unallocated: [-1, 2, 3] }, path: 'spec.unallocated[0]' },
    { kind: 'IPAMBlock', change: { allocations: [-1, null, null, null] }, path: 'spec.allocations[0]' },
    { kind: 'BlockAffinity', change: { state: 'Confirmed' }, path: 'spec.state' },
    { kind: 'BlockAffinity', change: {}, remove: 'node', path: 'spec.node' },
    { kind: 'IPAMHandle', change: { block: { '10.244.1.0/26': -1 } }, path: 'spec.block["10.244.1.0/26"]' },
    { kind: 'IPAMHandle', change: {}, remove: 'handleID', path: 'spec.handleID' },
  ];

  it.each(
    INVALID.map(
      (c) => [`${c.kind} ${c.path} ${c.remove ? 'missing' : JSON.stringify(Object.values(c.change)[0])}`, c] as const,
    ),
  )('%s: refused by tortie and by the CRD', (_label, c) => {
    const spec: Record<string, unknown> = { ...SPECIMENS[c.kind][0]!, ...c.change };
    if (c.remove) delete spec[c.remove];
    expect(tortieProblems(v3(c.kind, NAMES[c.kind], spec)).length).toBeGreaterThan(0);
    const problems = validate(
      { apiVersion: `${CRD_GROUP}/v1`, kind: c.kind, metadata: { name: NAMES[c.kind] }, spec },
      crdSchema(c.kind),
    );
    expect(problems.map((p) => p.path)).toContain(c.path);
  });

  /** Fields the CRD requires although tortie's validator does not: only tortie's IPAM writes them, always. */
  const REQUIRED_BY_IPAM = [
    'IPAMBlock.allocations',
    'IPAMBlock.unallocated',
    'IPAMBlock.attributes',
    'IPAMHandle.block',
  ];

  it.each(CRD_KINDS)(
    '%s: every field the CRD requires is required by tortie too (or always written by its IPAM)',
    (kind) => {
      const required = (specSchema(kind).required as string[] | undefined) ?? [];
      for (const field of required) {
        if (REQUIRED_BY_IPAM.includes(`${kind}.${field}`)) continue;
        const spec = { ...SPECIMENS[kind][0]! };
        delete spec[field];
        expect(tortieProblems(v3(kind, NAMES[kind], spec)), `${kind}.spec.${field} missing`).not.toEqual([]);
      }
    },
  );

  it('what tortie writes is accepted: the default pool, and the IPAM state of claims, assignments and releases', async () => {
    const ds = new MemoryDatastore();
    const pool = applyDefaults(
      v3('IPPool', 'default-ipv4-ippool', { cidr: '10.244.0.0/16', ipipMode: 'Always', natOutgoing: true }),
    );
    await ds.create(pool);
    await ds.create(applyDefaults(v3('BGPConfiguration', 'default', {})));
    const ipam = new Ipam(ds);
    const handles: string[] = [];
    for (const node of ['node-a', 'node-b']) {
      await ipam.claimBlock(node);
      for (let i = 0; i < 3; i++) {
        const handle = `k8s-pod-network.${node}-${i}`;
        handles.push(handle);
        await ipam.assign(node, handle);
      }
      await ipam.assign(node, `ipip-tunnel-addr-${node}`, { use: 'Tunnel' });
    }
    await ipam.releaseByHandle(handles[1]!);
    const written: AnyResource[] = [];
    for (const kind of CRD_KINDS) written.push(...((await ds.list(kind)).items as AnyResource[]));
    const kinds = new Set(written.map((r) => r.kind));
    expect([...kinds].sort()).toEqual([...CRD_KINDS].filter((k) => k !== 'BGPPeer' && k !== 'BGPFilter').sort());
    for (const r of written) expect(crdProblems(r), `${r.kind} ${r.metadata.name}`).toEqual([]);
    // Released and borrowed state too: a block with a freed address, its affinity through a refused release
    // (the block still holds addresses: BlockInUseError, the affinity kept).
    const [block] = (await ds.list('IPAMBlock')).items;
    await expect(ipam.releaseBlock(block!.spec.cidr)).rejects.toBeInstanceOf(BlockInUseError);
    for (const kind of ['IPAMBlock', 'BlockAffinity', 'IPAMHandle'] as const) {
      for (const r of (await ds.list(kind)).items) expect(crdProblems(r as AnyResource)).toEqual([]);
    }
  });
});

// ---------------------------------------------------------------------------------------------------------

describe('the examples', () => {
  function load(file: string): AnyResource[] {
    return parseDocuments(readFileSync(join(EXAMPLES_DIR, file), 'utf8'), file).map((doc, i) =>
      applyDefaults(toResource(doc, i)),
    );
  }
  const ALL = EXAMPLE_FILES.flatMap((f) => load(f).map((r) => ({ file: f, r })));

  it.each(ALL.map(({ file, r }) => [`${file}: ${r.kind} ${r.metadata.name}`, r] as const))(
    '%s: accepted by its CRD as the kubernetes backend stores it (Node: as Node annotations)',
    (_label, r) => {
      if (r.kind === 'Node') {
        // No CRD: the Kubernetes Node carries it. Apply = merge its BGP data and Calico labels into the annotations.
        const k8sNode = {
          metadata: { name: r.metadata.name, labels: { 'kubernetes.io/hostname': r.metadata.name }, annotations: {} },
        };
        const back = nodeToResource(mergeNodeAnnotations(k8sNode, r));
        expect(back.spec).toEqual(r.spec);
        expect(back.metadata.labels).toMatchObject(r.metadata.labels ?? {});
        return;
      }
      expect(CRD_KINDS).toContain(r.kind);
      expect(crdProblems(r)).toEqual([]);
    },
  );

  it('no two example pools overlap', () => {
    const pools = ALL.map((a) => a.r).filter((r): r is Resource<'IPPool'> => r.kind === 'IPPool');
    expect(pools.length).toBeGreaterThan(0);
    for (const p of pools) expect(validateAgainst(p, { ipPools: pools })).toEqual([]);
  });

  it('route reflectors: the mesh off, a reflector Node, every node peering with the reflectors', () => {
    const [node, peer, config] = load('route-reflectors.yaml') as [
      Resource<'Node'>,
      Resource<'BGPPeer'>,
      Resource<'BGPConfiguration'>,
    ];
    expect(config).toMatchObject({
      kind: 'BGPConfiguration',
      metadata: { name: 'default' },
      spec: { nodeToNodeMeshEnabled: false },
    });
    expect(node).toMatchObject({
      kind: 'Node',
      metadata: { labels: { 'route-reflector': 'true' } },
      spec: { bgp: { routeReflectorClusterID: expect.any(String) } },
    });
    expect(peer).toMatchObject({
      kind: 'BGPPeer',
      spec: { nodeSelector: 'all()', peerSelector: "route-reflector == 'true'" },
    });
    // What the agents make of it: clients peer with the reflector only; the reflector with every client.
    const clients = ['198.18.0.12/24', '198.18.0.13/24'].map((ip, i) =>
      v3('Node', `node-${i + 2}`, { bgp: { ipv4Address: ip } }),
    );
    const input = { nodes: [node, ...clients], bgpConfigurations: [config], bgpPeers: [peer] };
    const client = planPeers({ ...input, nodeName: 'node-2' });
    expect(client.peers.map((p) => [p.address, p.rrClient])).toEqual([
      [node.spec.bgp!.ipv4Address!.split('/')[0], false],
    ]);
    const reflector = planPeers({ ...input, nodeName: node.metadata.name });
    expect(reflector.clusterId).toBe(node.spec.bgp!.routeReflectorClusterID);
    expect(reflector.peers.map((p) => [p.address, p.rrClient]).sort()).toEqual([
      ['198.18.0.12', true],
      ['198.18.0.13', true],
    ]);
  });

  it('office router: a global eBGP peer (AS 65001) of every node', () => {
    const [peer] = load('office-router.yaml') as [Resource<'BGPPeer'>];
    expect(peer.spec).toMatchObject({ asNumber: 65001, peerIP: expect.any(String) });
    expect(peer.spec.node).toBeUndefined();
    expect(peer.spec.nodeSelector).toBeUndefined();
    const nodes = ['198.18.0.11/24', '198.18.0.12/24'].map((ip, i) =>
      v3('Node', `node-${i + 1}`, { bgp: { ipv4Address: ip } }),
    );
    for (const n of nodes) {
      const plan = planPeers({ nodeName: n.metadata.name, nodes, bgpConfigurations: [], bgpPeers: [peer] });
      expect(plan.peers.filter((p) => p.type === 'Global').map((p) => [p.address, p.asNumber])).toEqual([
        [peer.spec.peerIP, 65001],
      ]);
    }
  });

  it('pool: ipipMode CrossSubnet', () => {
    const pools = EXAMPLE_FILES.flatMap((f) => load(f)).filter((r): r is Resource<'IPPool'> => r.kind === 'IPPool');
    expect(pools.map((p) => p.spec.ipipMode)).toContain('CrossSubnet');
  });
});

// ---------------------------------------------------------------------------------------------------------

/**
 * client-node CoreV1Api calls tortie's code may make, as RBAC grants. The sources are scanned for every
 * CoreV1Api/CustomObjectsApi method name: one missing from this table fails the test (add it here and,
 * when it is right, to the ClusterRole).
 */
const CORE_CALLS: Readonly<Record<string, string>> = {
  readNamespacedPod: 'get pods',
  listNamespacedPod: 'list pods',
  listPodForAllNamespaces: 'list pods',
  patchNamespacedPod: 'patch pods',
  patchNamespacedPodStatus: 'patch pods/status',
  readNamespace: 'get namespaces',
  listNamespace: 'list namespaces',
  readNamespacedSecret: 'get secrets',
  readNode: 'get nodes',
  listNode: 'list nodes',
  patchNode: 'patch nodes',
  listServiceForAllNamespaces: 'list services',
  createNamespacedServiceAccountToken: 'create serviceaccounts/token',
};
const CLIENT_METHODS = new Set(
  [k8s.CoreV1Api, k8s.CustomObjectsApi]
    .flatMap((api) => Object.getOwnPropertyNames(api.prototype))
    .filter((n) => n !== 'constructor' && !n.endsWith('WithHttpInfo')),
);

function sourcesUnder(dir: string): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir, { withFileTypes: true, recursive: true })
    .filter((e) => e.isFile() && e.name.endsWith('.ts'))
    .map((e) => join(e.parentPath, e.name));
}

/** The Kubernetes API calls `files` make through client-node, as RBAC grants; `unknown`: calls CORE_CALLS lacks. */
function clientCalls(files: string[]): { grants: string[]; unknown: string[] } {
  const grants = new Set<string>();
  const unknown = new Set<string>();
  for (const file of files) {
    const text = readFileSync(file, 'utf8');
    for (const m of text.matchAll(/\.([a-z][A-Za-z]+)\s*\(/g)) {
      const method = m[1]!;
      if (!CLIENT_METHODS.has(method)) continue;
      const grant = CORE_CALLS[method];
      if (grant) grants.add(grant);
      else unknown.add(`${relative(ROOT, file)}: ${method}`);
    }
    if (/new\s+(?:k8s\.)?Watch\s*\(/.test(text)) unknown.add(`${relative(ROOT, file)}: a Watch`);
  }
  return { grants: [...grants].sort(), unknown: [...unknown].sort() };
}

type Rule = {
  apiGroups: string[];
  resources: string[];
  verbs: string[];
  resourceNames?: string[];
  nonResourceURLs?: string[];
};

/** `verb resource` (+ ` @ns` for a Role's, + ` [names]` when limited) for every rule of one role. */
function grantsOf(role: KubeDoc, namespace?: string): string[] {
  return (role.rules as Rule[]).flatMap((r) =>
    r.apiGroups.flatMap((g) =>
      r.resources.flatMap((res) => {
        const [plural, sub] = res.split('/');
        const resource = g === '' ? res : `${plural!}.${g}${sub ? `/${sub}` : ''}`;
        return r.verbs.map(
          (v) =>
            `${v} ${resource}${namespace ? ` @${namespace}` : ''}${r.resourceNames ? ` [${[...r.resourceNames].sort().join(',')}]` : ''}`,
        );
      }),
    ),
  );
}

/** Everything `docs` grant ServiceAccount `sa`: its ClusterRoles (through ClusterRoleBindings) and Roles (RoleBindings). */
function grantsFor(docs: KubeDoc[], sa: { name: string; namespace: string }): string[] {
  const bound = (b: KubeDoc): boolean =>
    ((b.subjects as Array<{ kind: string; name: string; namespace?: string }> | undefined) ?? []).some(
      (s) => s.kind === 'ServiceAccount' && s.name === sa.name && s.namespace === sa.namespace,
    );
  const out: string[] = [];
  for (const b of docs.filter((d) => (d.kind === 'ClusterRoleBinding' || d.kind === 'RoleBinding') && bound(d))) {
    const ref = b.roleRef as { kind: string; name: string };
    const namespace = b.kind === 'RoleBinding' ? b.metadata?.namespace : undefined;
    const role = findOne(
      docs.filter((d) => d.kind !== 'Role' || d.metadata?.namespace === namespace),
      ref.kind,
      ref.name,
    );
    out.push(...grantsOf(role, namespace));
  }
  return out.sort();
}

/** A component's declared calls in the same form, the namespaced ones in `namespace`. */
function declared(calls: readonly ApiGrant[], namespace: string): string[] {
  return calls
    .map(
      (c) =>
        `${c.verb} ${c.resource}${c.namespaced ? ` @${namespace}` : ''}${c.resourceNames ? ` [${[...c.resourceNames].sort().join(',')}]` : ''}`,
    )
    .sort();
}

/**
 * The sources of each component: its own folder, the IPAM both use (the Ipam class and what it runs — not
 * `tortie ipam`'s check, teardown and usage), and for the agent the TokenRequest client
 * (src/datastore/kube-token.ts; install-cni, which also uses it, runs as the agent's ServiceAccount).
 */
const IPAM_RUNTIME = ['ipam', 'store', 'claim', 'assign', 'release'].map((m) => join(ROOT, 'src/ipam', `${m}.ts`));
const COMPONENTS = [
  {
    sa: 'tortie-node',
    calls: AGENT_API_CALLS,
    files: [...sourcesUnder(join(ROOT, 'src/agent')), ...IPAM_RUNTIME, join(ROOT, 'src/datastore/kube-token.ts')],
    own: [...sourcesUnder(join(ROOT, 'src/agent')), join(ROOT, 'src/datastore/kube-token.ts')],
  },
  {
    sa: 'tortie-cni',
    calls: CNI_API_CALLS,
    files: [...sourcesUnder(join(ROOT, 'src/cni')), ...IPAM_RUNTIME],
    own: sourcesUnder(join(ROOT, 'src/cni')),
  },
] as const;

describe('RBAC, per ServiceAccount', () => {
  const ds = findOne(KUBE, 'DaemonSet');
  const namespace = ds.metadata!.namespace!;

  for (const c of COMPONENTS) {
    describe(`${c.sa}`, () => {
      const granted = grantsFor(KUBE, { name: c.sa, namespace });
      const text = c.files.map((f) => readFileSync(f, 'utf8')).join('\n');

      it('its roles grant exactly the calls its code declares: none missing, none extra, none twice', () => {
        expect(granted.length).toBeGreaterThan(5);
        expect(granted).toEqual(declared(c.calls, namespace));
        expect(granted.length, 'a grant listed twice').toBe(new Set(granted).size);
      });

      it('every client-node call in its own sources is declared (a call not granted fails)', () => {
        const scanned = clientCalls([...c.own]);
        expect(scanned.unknown.filter((u) => !/a Watch/.test(u))).toEqual([]);
        const mine = new Set(c.calls.map((g) => `${g.verb} ${g.resource}`));
        expect(scanned.grants.length).toBeGreaterThanOrEqual(2);
        expect(scanned.grants.filter((g) => !mine.has(g))).toEqual([]);
      });

      it('every declared grant is used: its code is found in the sources (a grant no code uses fails)', () => {
        expect(
          c.calls.filter((g) => !g.uses.test(text)).map((g) => `${g.verb} ${g.resource}: ${String(g.uses)}`),
        ).toEqual([]);
      });

      it('no wildcard, no non-resource URLs', () => {
        expect(granted.filter((g) => g.includes('*'))).toEqual([]);
        const rules = KUBE.filter((d) => d.kind === 'ClusterRole' || d.kind === 'Role').flatMap(
          (r) => r.rules as Rule[],
        );
        expect(rules.filter((r) => r.nonResourceURLs)).toEqual([]);
      });
    });
  }

  it('the scan and the `uses` patterns can fail: a call or a grant that is not there is found missing', () => {
    const agent = COMPONENTS[0];
    const text = agent.files.map((f) => readFileSync(f, 'utf8')).join('\n');
    expect(/ds\.delete\('IPPool'/.test(text), 'the agent never deletes a pool').toBe(false);
    const dir = mkdtempSync(join(tmpdir(), 'tortie-rbac-scan-'));
    try {
      writeFileSync(
        join(dir, 'x.ts'),
        'await core.patchNamespacedPod({ name, namespace, body });\nawait core.deleteNamespacedPod({});\n',
      );
      expect(clientCalls([join(dir, 'x.ts')])).toEqual({
        grants: ['patch pods'],
        unknown: [`${relative(ROOT, join(dir, 'x.ts'))}: deleteNamespacedPod`],
      });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("the agent's Secrets and token rights are a Role in its own namespace, never cluster-wide", () => {
    const granted = grantsFor(KUBE, { name: 'tortie-node', namespace });
    expect(granted.filter((g) => /secrets|serviceaccounts/.test(g) && !g.includes(` @${namespace}`))).toEqual([]);
    expect(granted).toContain(`create serviceaccounts/token @${namespace} [tortie-cni]`);
    expect(AGENT_API_CALLS.find((g) => g.resource === 'serviceaccounts/token')?.resourceNames).toEqual([
      findOne(KUBE, 'ServiceAccount', 'tortie-cni').metadata?.name,
    ]);
  });

  it('the agent reads configuration and never writes it (BGPPeer, BGPConfiguration, BGPFilter: get, list and watch at most)', () => {
    const granted = grantsFor(KUBE, { name: 'tortie-node', namespace });
    const config = granted.filter((g) => /bgppeers|bgpconfigurations|bgpfilters/.test(g));
    expect(config.map((g) => g.split(' ')[0]).every((v) => v === 'get' || v === 'list' || v === 'watch')).toBe(true);
    expect(config.length).toBe(7);
    expect(
      granted
        .filter((g) => g.includes('ippools'))
        .map((g) => g.split(' ')[0])
        .sort(),
    ).toEqual(['create', 'list', 'watch']);
    expect(granted.filter((g) => g.startsWith('patch pods') || g.startsWith('update pods'))).toEqual([]);
  });

  it('the CNI plugin writes Pods only through pods/status, and has no Secrets, Nodes writes or watches', () => {
    const granted = grantsFor(KUBE, { name: 'tortie-cni', namespace });
    expect(granted).toContain('patch pods/status');
    expect(
      granted.filter(
        (g) =>
          g === 'patch pods' ||
          g.includes('secrets') ||
          g.includes('serviceaccounts') ||
          /^(patch|update) nodes/.test(g) ||
          g.startsWith('watch '),
      ),
    ).toEqual([]);
  });

  it("the CNI ServiceAccount mounts no token anywhere; the DaemonSet runs as the agent's", () => {
    expect(findOne(KUBE, 'ServiceAccount', 'tortie-cni').automountServiceAccountToken).toBe(false);
    expect(podSpecOf(ds).serviceAccountName).toBe('tortie-node');
    expect(findOne(KUBE, 'Namespace').metadata?.name).toBe(namespace);
    for (const sa of KUBE.filter((d) => d.kind === 'ServiceAccount')) expect(sa.metadata?.namespace).toBe(namespace);
  });

  it('the agent keeps the CNI kubeconfig that install-cni writes (same path, same ServiceAccount)', () => {
    const agentEnv = resolveEnv(
      podSpecOf(ds).containers.find((c) => c.name === 'tortie-node')!,
      KUBE,
      { 'spec.nodeName': 'n', 'metadata.namespace': namespace },
    );
    const install = resolveEnv(
      podSpecOf(ds).initContainers!.find((c) => c.name === 'install-cni')!,
      KUBE,
      { 'spec.nodeName': 'n', 'metadata.namespace': namespace },
    );
    expect(agentEnv.TORTIE_CNI_KUBECONFIG).toBe(`${install.CNI_NET_DIR}/tortie-kubeconfig`);
    expect(agentEnv.TORTIE_CNI_SERVICE_ACCOUNT).toBe('tortie-cni');
    expect(install.TORTIE_CNI_SERVICE_ACCOUNT).toBe('tortie-cni');
    const mounts = podSpecOf(ds).containers.find((c) => c.name === 'tortie-node')!.volumeMounts ?? [];
    expect(mounts.map((m) => m.mountPath)).toContain(install.CNI_NET_DIR);
  });

  it("KUBERNETES_API_CALLS declares every core call src/datastore/kubernetes.ts makes, and each component's datastore grants are among them", () => {
    // The backend: kubernetes.ts and its kube-* modules (not kube-token.ts, the agent's TokenRequest client).
    const backendFiles = readdirSync(join(ROOT, 'src/datastore')).filter(
      (f) => f === 'kubernetes.ts' || (f.startsWith('kube-') && f !== 'kube-token.ts'),
    );
    expect(backendFiles).toContain('kubernetes.ts');
    const backend = clientCalls(backendFiles.map((f) => join(ROOT, 'src/datastore', f)));
    const possible = new Set(KUBERNETES_API_CALLS.map((c) => `${c.verb} ${c.resource}`));
    expect(backend.grants.length).toBeGreaterThanOrEqual(5);
    expect(backend.grants.filter((g) => !possible.has(g))).toEqual([]);
    // Its custom-object calls are not in CORE_CALLS: KUBERNETES_API_CALLS and test/integration/kubernetes.test.ts cover them.
    expect(backend.unknown.every((u) => /CustomObject/.test(u) || /a Watch/.test(u))).toBe(true);
    const direct =
      /^(secrets|serviceaccounts\/token|pods\/status|services|endpointslices\.discovery\.k8s\.io)$|^(get pods)$/;
    for (const c of COMPONENTS) {
      expect(
        c.calls.filter(
          (g) =>
            !direct.test(g.resource) &&
            !direct.test(`${g.verb} ${g.resource}`) &&
            !possible.has(`${g.verb} ${g.resource}`),
        ),
      ).toEqual([]);
    }
  });
});

describe('RBAC, the etcd variant', () => {
  it('the etcd variant has no RBAC and mounts no token', () => {
    expect(
      ETCD.filter((d) =>
        ['ClusterRole', 'ClusterRoleBinding', 'Role', 'RoleBinding', 'CustomResourceDefinition'].includes(d.kind ?? ''),
      ),
    ).toEqual([]);
    expect(findOne(ETCD, 'ServiceAccount').automountServiceAccountToken).toBe(false);
    expect(podSpecOf(findOne(ETCD, 'DaemonSet')).automountServiceAccountToken).not.toBe(true);
  });
});

// ---------------------------------------------------------------------------------------------------------

const VARIANTS = [
  { file: 'tortie.yaml', docs: KUBE, datastore: 'kubernetes' },
  { file: 'tortie-etcd.yaml', docs: ETCD, datastore: 'etcdv3' },
] as const;

function agentOf(pod: PodSpec): Container {
  const found = pod.containers.find((c) => c.name === 'tortie-node');
  if (!found) throw new Error('no container tortie-node');
  return found;
}

/** The sources that read the agent's and the datastore's variables (src/agent/config.ts, src/datastore/config.ts). */
const ENV_READERS = ['src/agent/config.ts', 'src/datastore/config.ts', 'src/agent/secrets.ts', 'src/agent/cni-token.ts']
  .map((f) => readFileSync(join(ROOT, f), 'utf8'))
  .join('\n');

describe.each(VARIANTS)('the DaemonSet of $file', ({ docs, datastore }) => {
  const ds = findOne(docs, 'DaemonSet', 'tortie-node');
  const pod = podSpecOf(ds);
  const agent = agentOf(pod);
  const configMaps = docs.filter((d) => d.kind === 'ConfigMap');
  const env = resolveEnv(agent, configMaps, { 'spec.nodeName': 'node-a', 'metadata.namespace': 'tortie-system' });

  it('runs like calico-node: host network, privileged, system-node-critical, on every node whatever its taints', () => {
    expect(pod.hostNetwork).toBe(true);
    expect(agent.securityContext?.privileged).toBe(true);
    expect(pod.priorityClassName).toBe('system-node-critical');
    expect(pod.tolerations).toContainEqual({ operator: 'Exists' });
    const selector = (ds.spec as { selector: { matchLabels: Record<string, string> } }).selector.matchLabels;
    const labels = (ds.spec as { template: { metadata: { labels: Record<string, string> } } }).template.metadata.labels;
    expect(labels).toMatchObject(selector);
    expect(Object.keys(selector).length).toBeGreaterThan(0);
  });

  it('sets NODENAME from spec.nodeName, and only variables tortie reads', () => {
    expect(agent.env?.find((v) => v.name === 'NODENAME')?.valueFrom?.fieldRef?.fieldPath).toBe('spec.nodeName');
    const unknown = Object.keys(env).filter((name) => !new RegExp(`\\b${name}\\b`).test(ENV_READERS));
    expect(unknown).toEqual([]);
    expect(Object.keys(env)).toEqual(
      expect.arrayContaining([
        'NODENAME',
        'IP',
        'DATASTORE_TYPE',
        'CALICO_IPV4POOL_CIDR',
        'CALICO_IPV4POOL_IPIP',
        'FELIX_IPINIPMTU',
        'TORTIE_DATAPLANE',
      ]),
    );
  });

  it("the environment, resolved as the kubelet does, is accepted by the agent's parser (except what is PENDING)", () => {
    let problems: string[] = [];
    try {
      parseAgentConfig(env, 'host-name');
    } catch (error) {
      problems = (error as { problems?: string[] }).problems ?? [String(error)];
    }
    const pendingNames = Object.keys(PENDING.env);
    const unexpected = problems.filter((p) => !pendingNames.some((name) => p.startsWith(`${name}=`)));
    expect(unexpected).toEqual([]);
    for (const name of pendingNames) {
      expect(
        problems.some((p) => p.startsWith(`${name}=`)),
        `${name}=${env[name]} is accepted now (${PENDING.env[name]}): remove it from PENDING.env`,
      ).toBe(true);
    }
    const config = parseAgentConfig(
      { ...env, ...Object.fromEntries(pendingNames.map((n) => [n, 'none'])) },
      'host-name',
    );
    const map = (findOne(docs, 'ConfigMap', 'tortie-config').data ?? {}) as Record<string, string>;
    expect(config).toMatchObject({
      nodeName: 'node-a',
      ip: { mode: 'autodetect', method: { kind: 'first-found' } },
      waitForDatastore: true,
      ctlSocket: '/var/run/tortie/tortie.ctl',
      healthPort: 9099,
    });
    expect(config.defaultPool).toMatchObject({
      cidr: map.ipv4_pool_cidr,
      blockSize: Number(map.ipv4_pool_block_size),
      ipipMode: map.ipv4_pool_ipip,
      natOutgoing: map.ipv4_pool_nat_outgoing === 'true',
    });
  });

  it(`the datastore settings are accepted by the datastore's parser: ${datastore}`, () => {
    const config = configFromEnv(env);
    expect(config.datastoreType).toBe(datastore);
    if (datastore === 'etcdv3') {
      expect(config.etcdEndpoints.every((e) => e.startsWith('https://'))).toBe(true);
      expect([config.etcdCACertFile, config.etcdCertFile, config.etcdKeyFile].every((f) => typeof f === 'string')).toBe(
        true,
      );
    } else {
      // In the cluster: the client's defaults find the ServiceAccount token; no kubeconfig.
      expect(config.kubeconfig).toBeUndefined();
    }
  });

  it('probes ask the health server on 127.0.0.1 at its port, on paths it answers', async () => {
    const options = { port: 0, readiness: () => ({ ready: true }), liveness: () => true, metrics: {} as AgentMetrics };
    const probes = [agent.startupProbe, agent.livenessProbe, agent.readinessProbe];
    expect(probes.every((p) => p?.httpGet !== undefined)).toBe(true);
    for (const probe of probes) {
      const get = probe!.httpGet!;
      expect(get.host).toBe('127.0.0.1'); // the health server binds 127.0.0.1 (src/agent/health.ts)
      expect(String(get.port)).toBe(env.TORTIE_HEALTH_PORT);
      expect((await healthReply('GET', get.path, options)).status).toBe(200);
    }
    expect(agent.livenessProbe!.httpGet!.path).toBe('/liveness');
    expect(agent.readinessProbe!.httpGet!.path).toBe('/readiness');
  });

  it('mounts the control socket directory and /lib/modules from the host', () => {
    const volumes = new Map((pod.volumes ?? []).map((v) => [v.name, v]));
    const mountOf = (path: string): { volume: string; readOnly?: boolean } | undefined => {
      const m = agent.volumeMounts?.find((v) => v.mountPath === path);
      return m && { volume: m.name, ...(m.readOnly !== undefined ? { readOnly: m.readOnly } : {}) };
    };
    const socketDir = dirname(env.TORTIE_CTL_SOCKET!);
    expect(socketDir).toBe('/var/run/tortie');
    expect(volumes.get(mountOf(socketDir)!.volume)?.hostPath?.path).toBe(socketDir);
    expect(mountOf('/lib/modules')?.readOnly).toBe(true);
    expect(volumes.get(mountOf('/lib/modules')!.volume)?.hostPath?.path).toBe('/lib/modules');
  });

  it('stops gracefully: a preStop hook and time for it', () => {
    expect(agent.lifecycle?.preStop?.exec?.command?.[0]).toBe('tortie');
    expect(pod.terminationGracePeriodSeconds).toBeGreaterThanOrEqual(10);
  });

  it('install-cni: writes into host directories mounted at the same paths, with the same datastore settings as the agent', () => {
    const init = pod.initContainers?.find((c) => c.name === 'install-cni');
    expect(init?.command).toEqual(['tortie', 'cni', 'install']);
    const initEnv = resolveEnv(init!, configMaps, { 'spec.nodeName': 'node-a', 'metadata.namespace': 'tortie-system' });
    const volumes = new Map((pod.volumes ?? []).map((v) => [v.name, v]));
    for (const name of ['CNI_BIN_DIR', 'CNI_NET_DIR', 'TORTIE_CNI_LIB_DIR']) {
      const dir = initEnv[name]!;
      const mount = init!.volumeMounts?.find((m) => m.mountPath === dir);
      expect(volumes.get(mount!.name)?.hostPath?.path, name).toBe(dir);
    }
    expect(initEnv).toMatchObject({
      CNI_BIN_DIR: '/opt/cni/bin',
      CNI_NET_DIR: '/etc/cni/net.d',
      CNI_CONF_NAME: '10-tortie.conflist',
    });
    const readers = [join(ROOT, 'src/datastore/config.ts'), ...sourcesUnder(join(ROOT, 'src/cni'))]
      .map((f) => readFileSync(f, 'utf8'))
      .join('\n');
    expect(Object.keys(initEnv).filter((name) => !new RegExp(`\\b${name}\\b`).test(readers))).toEqual([]);
    const datastoreVars = Object.keys(env).filter(
      (n) => n === 'DATASTORE_TYPE' || n.startsWith('ETCD_') || n === 'KUBECONFIG',
    );
    expect(Object.fromEntries(datastoreVars.map((n) => [n, initEnv[n]]))).toEqual(
      Object.fromEntries(datastoreVars.map((n) => [n, env[n]])),
    );
  });

  it(`every container runs the image of this version (${PKG.version})`, () => {
    for (const c of [...(pod.initContainers ?? []), ...pod.containers])
      expect(c.image).toMatch(new RegExp(`(^|/)tortie:${PKG.version.replace(/\./g, '\\.')}$`));
  });
});

describe('the etcd DaemonSet: TLS files from a Secret, mounted 0400', () => {
  const pod = podSpecOf(findOne(ETCD, 'DaemonSet'));
  const agent = agentOf(pod);
  const env = resolveEnv(
    agent,
    ETCD.filter((d) => d.kind === 'ConfigMap'),
    { 'spec.nodeName': 'node-a', 'metadata.namespace': 'tortie-system' },
  );
  const secretVolume = (pod.volumes ?? []).find((v) => v.secret !== undefined);

  it('the secret volume is read-only to root (defaultMode 0400, as kubectl reads the YAML)', () => {
    expect(secretVolume?.secret?.defaultMode).toBe(0o400);
  });

  it('ETCD_CA_CERT_FILE, ETCD_CERT_FILE, ETCD_KEY_FILE are the keys etcd-ca, etcd-cert, etcd-key of that Secret, where it is mounted', () => {
    const mount = agent.volumeMounts?.find((m) => m.name === secretVolume?.name);
    expect(mount?.readOnly).toBe(true);
    expect([env.ETCD_CA_CERT_FILE, env.ETCD_CERT_FILE, env.ETCD_KEY_FILE]).toEqual(
      ['etcd-ca', 'etcd-cert', 'etcd-key'].map((k) => posix.join(mount!.mountPath, k)),
    );
    // The header tells how to make the Secret with exactly these keys.
    const header = readFileSync(join(MANIFEST_DIR, 'tortie-etcd.yaml'), 'utf8');
    for (const key of ['etcd-ca', 'etcd-cert', 'etcd-key']) expect(header).toContain(`--from-file=${key}=`);
    expect(header).toContain(`secret generic ${secretVolume?.secret?.secretName}`);
  });
});

// ---------------------------------------------------------------------------------------------------------

/** The image's own stage: the instructions from the last FROM on (earlier stages only build parts of it). */
const FINAL_STAGE = DOCKERFILE.slice(DOCKERFILE.map((i) => i.op).lastIndexOf('FROM'));

function dockerfile(op: string): Array<{ text: string; json?: string[] }> {
  return FINAL_STAGE.filter((i) => i.op === op);
}
const ENTRYPOINT = dockerfile('ENTRYPOINT')[0]?.json ?? [];
const CMD = dockerfile('CMD')[0]?.json ?? [];

/** Every command line the manifests run, as [what, argv]. */
function manifestCommands(): Array<[string, string[]]> {
  const out: Array<[string, string[]]> = [];
  for (const { file, docs } of VARIANTS) {
    const pod = podSpecOf(findOne(docs, 'DaemonSet'));
    for (const c of [...(pod.initContainers ?? []), ...pod.containers]) {
      out.push([
        `${file} ${c.name}`,
        [...(c.command ?? ENTRYPOINT), ...(c.command ? (c.args ?? []) : (c.args ?? CMD))],
      ]);
      const hook = c.lifecycle?.preStop?.exec?.command;
      if (hook) out.push([`${file} ${c.name} preStop`, hook]);
    }
  }
  out.push(['Dockerfile ENTRYPOINT + CMD', [...ENTRYPOINT, ...CMD]]);
  return out;
}

describe('every command the manifests run exists in the built CLI', () => {
  const commands = manifestCommands();
  it('there are commands, each a tortie command', () => {
    expect(commands.length).toBeGreaterThanOrEqual(5);
    for (const [what, argv] of commands) expect(argv[0], what).toBe('tortie');
  });

  it.each(commands)('%s: %j', (_what, argv) => {
    expect(existsSync(CLI), `${CLI} is missing: run npm run build`).toBe(true);
    const args = argv.slice(1);
    const run = spawnSync(process.execPath, [CLI, ...args, '--help'], { encoding: 'utf8', timeout: 20_000 });
    const pending = PENDING.commands[args.join(' ')];
    if (pending) {
      expect(run.status, `"tortie ${args.join(' ')}" works now (${pending}): remove it from PENDING.commands`).toBe(2);
      return;
    }
    expect(run.status, `tortie ${args.join(' ')} --help: ${run.stderr}`).toBe(0);
  });
});

// ---------------------------------------------------------------------------------------------------------

describe('the Dockerfile', () => {
  const workdir = dockerfile('WORKDIR')[0]?.text ?? '';
  const copies = dockerfile('COPY').map((c) => c.text.split(/\s+/));
  const copiedDist = copies
    .map((parts) => parts[0]!)
    .filter((src) => src.startsWith('dist/'))
    .map((src) => src.replace(/\/$/, ''));
  const runs = dockerfile('RUN')
    .map((r) => r.text)
    .join('\n');

  it("the native part (TCP-MD5/GTSM) is compiled in a build stage for the image's architecture and copied over dist/bgp", () => {
    const stages = DOCKERFILE.filter((i) => i.op === 'FROM').map((f) => f.text);
    expect(stages).toEqual([expect.stringMatching(/^\S+ AS native$/), expect.stringMatching(/^\S+$/)]);
    expect(stages[0]!.split(' ')[0]).toBe(stages[1]);
    const build = DOCKERFILE.slice(0, DOCKERFILE.indexOf(FINAL_STAGE[0]!))
      .filter((i) => i.op === 'RUN')
      .map((r) => r.text)
      .join('\n');
    expect(build).toMatch(/apt-get install[^\n]*\bgcc\b/);
    expect(build).toContain('TORTIE_NATIVE_REQUIRED=1 bash scripts/build-native.sh');
    const from = copies.findIndex((parts) => parts[0] === '--from=native');
    expect(copies[from]?.slice(1)).toEqual(['/build/dist/bgp/native', './dist/bgp/native']);
    expect(from).toBeGreaterThan(copies.findIndex((parts) => parts[0] === 'dist/bgp'));
  });

  it('Node 24 slim (one exact release, by tag or tag@digest), iproute2 and nftables, production dependencies from the lockfile', () => {
    // FROM ${NODE_IMAGE}: the ARG's default is the base of both stages (a build may override it with --build-arg).
    const args = new Map(DOCKERFILE.filter((i) => i.op === 'ARG').map((a) => a.text.split('=', 2) as [string, string]));
    const from = dockerfile('FROM').map((f) =>
      f.text.replace(/^\$\{(\w+)\}$/, (_all, name: string) => args.get(name) ?? `(no ARG ${name})`),
    );
    expect(from).toEqual([expect.stringMatching(/^node:24\.\d+\.\d+-[a-z]+-slim(@sha256:[0-9a-f]{64})?$/)]);
    expect(runs).toMatch(/apt-get install[^\n]*\biproute2\b/);
    expect(runs).toMatch(/apt-get install[^\n]*\bnftables\b/);
    expect(copies).toContainEqual(['package.json', 'package-lock.json', './']);
    expect(runs).toMatch(/\bnpm ci --omit=dev\b/);
    expect(workdir.startsWith('/')).toBe(true);
  });

  it(`ENTRYPOINT is the tortie binary: package.json's bin (${PKG.bin.tortie}), linked onto PATH and built`, () => {
    expect(ENTRYPOINT).toEqual(['tortie']);
    expect(CMD).toEqual(['node', 'run']);
    const bin = PKG.bin.tortie!;
    expect(runs).toContain(`ln -s ${posix.join(workdir, bin)} /usr/local/bin/tortie`);
    expect(runs).toContain(`chmod 0755 ${bin}`);
    expect(copiedDist.some((d) => bin.startsWith(`${d}/`))).toBe(true);
    expect(existsSync(join(ROOT, bin)), `${bin} is missing: run npm run build`).toBe(true);
    expect(readFileSync(join(ROOT, bin), 'utf8').split('\n')[0]).toBe('#!/usr/bin/env node');
  });

  it('every module the CLI can load is in a copied directory, and every package it imports is a production dependency', () => {
    const seen = new Set<string>();
    const packages = new Set<string>();
    const files: string[] = [];
    const outside: string[] = [];
    const queue = [join(ROOT, PKG.bin.tortie!)];
    while (queue.length > 0 && seen.size < 5000) {
      const file = queue.shift()!;
      if (seen.has(file)) continue;
      seen.add(file);
      const rel = relative(ROOT, file);
      if (!copiedDist.some((d) => rel.startsWith(`${d}/`))) outside.push(rel);
      files.push(rel);
      const text = readFileSync(file, 'utf8');
      const specifiers = [
        ...text.matchAll(/(?:^|[\s;}])(?:import|export)\s[^'";]*?from\s*['"]([^'"]+)['"]/g),
        ...text.matchAll(/\bimport\s*\(\s*['"]([^'"]+)['"]\s*\)/g),
        ...text.matchAll(/^import\s+['"]([^'"]+)['"]/gm),
      ].map((m) => m[1]!);
      for (const s of specifiers) {
        if (s.startsWith('.')) queue.push(join(dirname(file), s));
        else if (!s.startsWith('node:'))
          packages.add(s.startsWith('@') ? s.split('/').slice(0, 2).join('/') : s.split('/')[0]!);
      }
      // Files read at run time next to the code (main.js reads ../../../package.json for `version`).
      for (const m of text.matchAll(/new URL\(\s*['"]([^'"]+)['"]\s*,\s*import\.meta\.url\s*\)/g)) {
        const target = relative(ROOT, join(dirname(file), m[1]!));
        const copied = copies.some((parts) =>
          parts
            .slice(0, -1)
            .some((src) => target === src.replace(/\/$/, '') || target.startsWith(src.replace(/\/$/, '/'))),
        );
        expect(copied, `${rel} reads ${target} at run time, which the Dockerfile does not copy`).toBe(true);
      }
    }
    expect(files.length).toBeGreaterThan(30);
    expect(files).toContain('dist/src/agent/agent.js');
    expect(outside).toEqual([]);
    expect([...packages].filter((p) => !Object.hasOwn(PKG.dependencies, p)).sort()).toEqual([]);
    expect(packages.size).toBeGreaterThan(2);
  });
});
