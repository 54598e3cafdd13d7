// The examples of manifests/examples/ applied with the built `tortie` exactly as a user of the manifests
// would, and read back:
// - etcd: a real etcd (Debian etcd-server) with TLS and client certificates, reached with the datastore
//   variables of manifests/tortie-etcd.yaml's DaemonSet as the kubelet would resolve them — only the
//   endpoint (the ConfigMap's placeholder) is this etcd's, and the Secret's mount directory is a temp dir
//   holding the test certificates under the Secret's keys (etcd-ca, etcd-cert, etcd-key), mode 0400 as the
//   volume's defaultMode makes them. So the variable names, file names and TLS settings of the manifest are
//   the ones that work. Every example applies; `tortie get -o json` returns what it says with Calico's
//   defaults; applying again changes nothing; `get -o yaml` output applies back.
// - Kubernetes: the fake API server (test/harness/fake-apiserver.ts) with the kubernetes datastore: every
//   custom object the CLI stores passes manifests/tortie.yaml's CRD schema, the reflector Node's BGP data
//   land in the Kubernetes Node's annotations. `tortie apply` runs with the user's credentials, not the
//   agent's: what it writes (BGPPeers, BGPConfigurations, IPPools) the agent's ClusterRole does not grant.

import { chmodSync, copyFileSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runTortie } from '../harness/cli.js';
import { applyDefaults, parseDocuments, toResource, type AnyResource } from '../../src/resources/index.js';
import { requireEtcd, startEtcd, type EtcdInstance, type EtcdTlsFiles } from '../harness/etcd.js';
import { startFakeApiServer, type FakeApiServer } from '../harness/fake-apiserver.js';
import { findOne, loadKubeDocuments, MANIFEST_DIR, podSpecOf, resolveEnv, type KubeDoc } from '../harness/manifests.js';
import { validate, type Schema } from '../harness/openapi-schema.js';

const EXAMPLES_DIR = join(MANIFEST_DIR, 'examples');
const EXAMPLES = readdirSync(EXAMPLES_DIR)
  .filter((f) => f.endsWith('.yaml'))
  .sort();
const haveEtcd = requireEtcd();

interface Run {
  status: number | null;
  stdout: string;
  stderr: string;
}

/** Runs the built CLI with only the variables given (plus PATH), bounded to 20 s. */
const tortie = (env: Record<string, string>, args: string[], stdin = ''): Promise<Run> =>
  runTortie(env, args, { stdin });

/** The examples of one file as `tortie apply` stores them: parsed and given Calico's defaults. */
function expected(file: string): AnyResource[] {
  const text = readFileSync(join(EXAMPLES_DIR, file), 'utf8');
  return parseDocuments(text, file).map((doc, i) => applyDefaults(toResource(doc, i)));
}

/** What apply prints: calicoctl names the kind when all documents are of one kind. */
function appliedMessage(resources: AnyResource[]): string {
  const kinds = new Set(resources.map((r) => r.kind));
  return `Successfully applied ${resources.length} ${kinds.size === 1 ? `'${[...kinds][0]}' ` : ''}resource(s)\n`;
}

function withoutBookkeeping(r: AnyResource): AnyResource {
  const { resourceVersion: _rv, uid: _uid, creationTimestamp: _ts, ...metadata } = r.metadata;
  return { ...r, metadata } as AnyResource;
}

async function getJson(env: Record<string, string>, r: AnyResource): Promise<AnyResource> {
  const got = await tortie(env, ['get', r.kind, r.metadata.name, '-o', 'json']);
  expect(got.stderr, `get ${r.kind} ${r.metadata.name}`).toBe('');
  return JSON.parse(got.stdout) as AnyResource;
}

describe('the examples', () => {
  it('are there', () => {
    expect(EXAMPLES.length).toBeGreaterThanOrEqual(3);
  });
});

describe.skipIf(!haveEtcd)(
  'the examples through tortie apply, on etcd over TLS configured as manifests/tortie-etcd.yaml configures the agent',
  () => {
    let etcd: EtcdInstance & { tls: EtcdTlsFiles };
    let secretDir: string;
    let env: Record<string, string>;

    beforeAll(async () => {
      etcd = await startEtcd({ tls: true });
      secretDir = mkdtempSync(join(tmpdir(), 'tortie-manifests-secret-'));
      const docs = loadKubeDocuments(join(MANIFEST_DIR, 'tortie-etcd.yaml'));
      const pod = podSpecOf(findOne(docs, 'DaemonSet'));
      const agent = pod.containers.find((c) => c.name === 'tortie-node')!;
      const secret = pod.volumes!.find((v) => v.secret !== undefined)!;
      const mountPath = agent.volumeMounts!.find((m) => m.name === secret.name)!.mountPath;
      // The Secret volume: one file per key, mode defaultMode.
      const files: Record<string, string> = {
        'etcd-ca': etcd.tls.caFile,
        'etcd-cert': etcd.tls.clientCertFile,
        'etcd-key': etcd.tls.clientKeyFile,
      };
      for (const [key, from] of Object.entries(files)) {
        copyFileSync(from, join(secretDir, key));
        chmodSync(join(secretDir, key), secret.secret!.defaultMode!);
      }
      // The ConfigMap as the user edits it: the endpoint of this etcd instead of the placeholder.
      const configMaps: KubeDoc[] = docs
        .filter((d) => d.kind === 'ConfigMap')
        .map((c) => ({ ...c, data: { ...(c.data as Record<string, string>), etcd_endpoints: etcd.endpoint } }));
      const resolved = resolveEnv(agent, configMaps, {
        'spec.nodeName': 'node-a',
        'metadata.namespace': 'tortie-system',
      });
      // The datastore's variables of the manifest, with the Secret's mount path pointing at the temp dir.
      env = Object.fromEntries(
        Object.entries(resolved)
          .filter(([name]) => name === 'DATASTORE_TYPE' || name.startsWith('ETCD_'))
          .map(([name, value]) => [
            name,
            value.startsWith(`${mountPath}/`) ? join(secretDir, value.slice(mountPath.length + 1)) : value,
          ]),
      );
    }, 30_000);

    afterAll(async () => {
      await etcd?.stop();
      if (secretDir) rmSync(secretDir, { recursive: true, force: true });
    });

    it("uses the manifest's TLS settings: https endpoint, the three files, mode 0400", () => {
      expect(env).toEqual({
        DATASTORE_TYPE: 'etcdv3',
        ETCD_ENDPOINTS: etcd.endpoint,
        ETCD_CA_CERT_FILE: join(secretDir, 'etcd-ca'),
        ETCD_CERT_FILE: join(secretDir, 'etcd-cert'),
        ETCD_KEY_FILE: join(secretDir, 'etcd-key'),
      });
      expect(etcd.endpoint.startsWith('https://')).toBe(true);
      for (const f of ['etcd-ca', 'etcd-cert', 'etcd-key'])
        expect(statSync(join(secretDir, f)).mode & 0o777).toBe(0o400);
    });

    it.each(EXAMPLES)(
      'examples/%s applies, and every resource reads back as written plus Calico defaults',
      async (file) => {
        const applied = await tortie(env, ['apply', '-f', join(EXAMPLES_DIR, file)]);
        expect(applied.stderr).toBe('');
        const want = expected(file);
        expect(applied).toMatchObject({ status: 0, stdout: appliedMessage(want) });
        for (const r of want) expect(withoutBookkeeping(await getJson(env, r))).toEqual(r);
      },
    );

    it('stores what the examples are for: reflectors, the mesh off, the office router, a CrossSubnet pool', async () => {
      const pool = await getJson(env, { kind: 'IPPool', metadata: { name: 'default-ipv4-ippool' } } as AnyResource);
      expect(pool.spec).toMatchObject({
        cidr: '10.244.0.0/16',
        blockSize: 26,
        ipipMode: 'CrossSubnet',
        vxlanMode: 'Never',
        natOutgoing: true,
        nodeSelector: 'all()',
      });
      const config = await getJson(env, { kind: 'BGPConfiguration', metadata: { name: 'default' } } as AnyResource);
      expect(config.spec).toMatchObject({ nodeToNodeMeshEnabled: false, asNumber: 64512, listenPort: 179 });
      const rr = await getJson(env, {
        kind: 'BGPPeer',
        metadata: { name: 'peer-with-route-reflectors' },
      } as AnyResource);
      expect(rr.spec).toEqual({ nodeSelector: 'all()', peerSelector: "route-reflector == 'true'" });
      const office = await getJson(env, { kind: 'BGPPeer', metadata: { name: 'office-router' } } as AnyResource);
      expect(office.spec).toEqual({ peerIP: '198.18.0.1', asNumber: 65001 });
      const node = await getJson(env, { kind: 'Node', metadata: { name: 'rr-1' } } as AnyResource);
      expect(node).toMatchObject({
        metadata: { labels: { 'route-reflector': 'true' } },
        spec: { bgp: { routeReflectorClusterID: '244.0.0.1' } },
      });
    });

    it('applying every example again changes nothing, and `get -o yaml` output applies back', async () => {
      const before = await Promise.all(EXAMPLES.flatMap(expected).map((r) => getJson(env, r)));
      for (const file of EXAMPLES)
        expect((await tortie(env, ['apply', '-f', join(EXAMPLES_DIR, file)])).status).toBe(0);
      const after = await Promise.all(EXAMPLES.flatMap(expected).map((r) => getJson(env, r)));
      expect(after.map(withoutBookkeeping)).toEqual(before.map(withoutBookkeeping));
      const yaml = await tortie(env, ['get', 'bgppeers', '-o', 'yaml']);
      expect(yaml.status).toBe(0);
      const back = await tortie(env, ['apply', '-f', '-'], yaml.stdout);
      expect(back).toMatchObject({ status: 0, stdout: "Successfully applied 2 'BGPPeer' resource(s)\n" });
    });
  },
);

describe('the examples through tortie apply, on the kubernetes datastore (fake API server), checked against manifests/tortie.yaml', () => {
  const kube = loadKubeDocuments(join(MANIFEST_DIR, 'tortie.yaml'));
  const crds = kube.filter((d) => d.kind === 'CustomResourceDefinition');
  const role = findOne(kube, 'ClusterRole', 'tortie-node').rules as Array<{
    apiGroups: string[];
    resources: string[];
    verbs: string[];
  }>;
  const granted = new Set(
    role.flatMap((r) =>
      r.apiGroups.flatMap((g) =>
        r.resources.flatMap((res) => r.verbs.map((v) => `${v} ${g === '' ? res : `${res}.${g}`}`)),
      ),
    ),
  );
  let server: FakeApiServer;
  let env: Record<string, string>;

  beforeAll(async () => {
    server = await startFakeApiServer();
    env = { DATASTORE_TYPE: 'kubernetes', KUBECONFIG: server.kubeconfigPath };
    // On this datastore a Node is the Kubernetes Node: the kubelet has registered the reflector.
    server.put(
      { core: 'nodes' },
      { apiVersion: 'v1', kind: 'Node', metadata: { name: 'rr-1', labels: { 'kubernetes.io/hostname': 'rr-1' } } },
    );
  });
  afterAll(async () => {
    await server?.stop();
  });

  it.each(EXAMPLES)('examples/%s applies; every stored custom object passes its CRD schema', async (file) => {
    const applied = await tortie(env, ['apply', '-f', join(EXAMPLES_DIR, file)]);
    expect(applied.stderr).toBe('');
    expect(applied.status).toBe(0);
    for (const r of expected(file)) {
      if (r.kind === 'Node') continue;
      const crd = crds.find((c) => (c.spec as { names: { kind: string } }).names.kind === r.kind)!;
      const plural = (crd.spec as { names: { plural: string } }).names.plural;
      const stored = server.object({ crd: plural }, r.metadata.name);
      expect(stored, `${plural}/${r.metadata.name}`).toBeDefined();
      const schema = (crd.spec as { versions: Array<{ schema: { openAPIV3Schema: Schema } }> }).versions[0]!.schema
        .openAPIV3Schema;
      expect(validate(stored, schema)).toEqual([]);
      expect(withoutBookkeeping(await getJson(env, r))).toEqual(r);
    }
  });

  it("the reflector's BGP data are the Kubernetes Node's annotations", () => {
    const node = server.object({ core: 'nodes' }, 'rr-1') as {
      metadata: { annotations?: Record<string, string>; labels?: Record<string, string> };
    };
    expect(node.metadata.annotations).toMatchObject({
      'projectcalico.org/RouteReflectorClusterID': '244.0.0.1',
      'projectcalico.org/IPv4Address': '198.18.0.11/24',
    });
    expect(JSON.parse(node.metadata.annotations?.['projectcalico.org/labels'] ?? '{}')).toEqual({
      'route-reflector': 'true',
    });
    expect(node.metadata.labels).toEqual({ 'kubernetes.io/hostname': 'rr-1' });
  });

  it("the configuration the user writes with tortie apply is read-only for the agent's ServiceAccount", () => {
    const writes = [
      ...new Set(
        server.calls.filter((c) => c.verb === 'create' || c.verb === 'update').map((c) => `${c.verb} ${c.resource}`),
      ),
    ].sort();
    expect(writes).toContain('create bgppeers.crd.projectcalico.org');
    expect(writes.filter((c) => granted.has(c) && !c.startsWith('create ippools.'))).toEqual([]);
  });
});
