// The built `tortie` command against a real etcd (Debian etcd-server on 127.0.0.1, free ports): the issue's
// seed examples apply and read back identically; a file with one bad document writes nothing; get in
// every output format; create/replace/delete; ipam show after blocks are claimed through the Ipam API;
// configuration by environment and by a calicoctl CalicoAPIConfig file; an unreachable etcd fails fast.
// The same commands with DATASTORE_TYPE=kubernetes against the fake API server (test/harness).

import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BUILT_CLI as CLI, runTortie } from '../harness/cli.js';
import { parse as parseYaml } from 'yaml';
import { openEtcd } from '../../src/datastore/etcd.js';
import type { Datastore } from '../../src/datastore/types.js';
import { Ipam } from '../../src/ipam/index.js';
import { applyDefaults, parseDocuments, toResource, type AnyResource } from '../../src/resources/index.js';
import { freePort, requireEtcd, startEtcd, type EtcdInstance } from '../harness/etcd.js';
import { startFakeApiServer, type FakeApiServer } from '../harness/fake-apiserver.js';

const HERE = fileURLToPath(import.meta.url);
const ROOT = HERE.slice(0, HERE.lastIndexOf('/test/')).replace(/\/dist$/, '');
const FIXTURES = `${ROOT}/test/fixtures/resources`;
const haveEtcd = requireEtcd();

interface Run {
  status: number | null;
  stdout: string;
  stderr: string;
  ms: number;
}

/** Runs the built CLI with only the variables given (plus PATH), bounded to 20 s. */
const tortie = (env: Record<string, string>, args: string[], stdin?: string): Promise<Run> =>
  runTortie(env, args, stdin === undefined ? {} : { stdin });

/** What the datastore owns in metadata; left out when comparing what was applied with what is read back. */
function withoutBookkeeping(r: AnyResource): AnyResource {
  const { resourceVersion: _rv, uid: _uid, creationTimestamp: _ts, ...metadata } = r.metadata;
  return { ...r, metadata } as AnyResource;
}

describe.skipIf(!haveEtcd)('tortie resource commands on a real etcd', () => {
  let etcd: EtcdInstance;
  let env: Record<string, string>;
  let dir: string;
  const open: Datastore[] = [];

  beforeAll(async () => {
    // The default config file would win over the environment (as calicoctl); this test sets up its own.
    if (existsSync('/etc/tortie/tortie.cfg'))
      throw new Error('/etc/tortie/tortie.cfg exists on this machine; move it away to run this test');
    expect(existsSync(CLI), `${CLI} is missing; run npm run build first`).toBe(true);
    etcd = await startEtcd();
    env = { ETCD_ENDPOINTS: etcd.endpoint, DATASTORE_TYPE: 'etcdv3' };
    dir = mkdtempSync(join(tmpdir(), 'tortie-cli-'));
  }, 30_000);

  afterAll(async () => {
    for (const ds of open) await ds.close().catch(() => undefined);
    await etcd?.stop();
    if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
  });

  it('applies the seed examples and reads every one back identically (defaults filled in)', async () => {
    const seed = readFileSync(`${FIXTURES}/seed.yaml`, 'utf8');
    const docs = parseDocuments(seed, 'seed.yaml');
    expect(docs.length).toBe(4);
    const applied = await tortie(env, ['apply', '-f', `${FIXTURES}/seed.yaml`]);
    expect(applied.stderr).toBe('');
    expect(applied).toMatchObject({ status: 0, stdout: 'Successfully applied 4 resource(s)\n' });
    for (const [i, doc] of docs.entries()) {
      const expected = applyDefaults(toResource(doc, i));
      const got = await tortie(env, ['get', expected.kind.toLowerCase(), expected.metadata.name, '-o', 'yaml']);
      expect(got.status).toBe(0);
      const read = parseYaml(got.stdout) as AnyResource;
      expect(read.metadata.resourceVersion).toMatch(/^\d+$/);
      expect(withoutBookkeeping(read)).toEqual(expected);
      // Every field as written in the seed is there unchanged.
      expect(read).toMatchObject(doc as object);
    }
  });

  it('writes nothing from a file whose second document is bad, and names the document and field', async () => {
    const bad = await tortie(env, ['apply', '-f', `${FIXTURES}/bad-middle.yaml`]);
    expect(bad.status).toBe(1);
    expect(bad.stderr).toMatch(/document 2 \(IPPool "p1"\): spec\.blockSize: 19 is not in 20\.\.32 \(IPv4\)/);
    expect(bad.stderr).toContain('nothing was written');
    const pools = JSON.parse((await tortie(env, ['get', 'ippools', '-o', 'json'])).stdout) as { items: AnyResource[] };
    expect(pools.items.map((p) => p.metadata.name)).toEqual(['default-ipv4-ippool']);
  });

  it('prints get in every output format, and exits 1 for a resource that does not exist', async () => {
    const table = await tortie(env, ['get', 'ippools']);
    expect(table).toMatchObject({
      status: 0,
      stdout: 'NAME                  CIDR            SELECTOR\ndefault-ipv4-ippool   10.244.0.0/16   all()\n',
    });
    const wide = await tortie(env, ['get', 'ippool', '-o', 'wide']);
    expect(wide.stdout.split('\n')[1]).toMatch(
      /^default-ipv4-ippool\s+10\.244\.0\.0\/16\s+26\s+Always\s+Never\s+true\s+false\s+false\s+all\(\)$/,
    );
    const list = parseYaml((await tortie(env, ['get', 'bgppeers', '-o', 'yaml'])).stdout) as {
      kind: string;
      items: AnyResource[];
      metadata: { resourceVersion: string };
    };
    expect(list.kind).toBe('BGPPeerList');
    expect(list.items.map((r) => r.metadata.name)).toEqual(['peer-with-route-reflectors']);
    expect(list.metadata.resourceVersion).toMatch(/^\d+$/);
    const json = JSON.parse((await tortie(env, ['get', 'node', 'node-1', '-o', 'json'])).stdout) as AnyResource;
    expect(json).toMatchObject({
      kind: 'Node',
      metadata: { name: 'node-1', labels: { 'route-reflector': 'true' } },
      spec: { bgp: { routeReflectorClusterID: '244.0.0.1' } },
    });
    expect((await tortie(env, ['get', 'bgpconfig'])).stdout).toMatch(
      /^NAME\s+LOGSEVERITY\s+MESHENABLED\s+ASNUMBER\ndefault\s+Info\s+false\s+64512\n$/,
    );
    const missing = await tortie(env, ['get', 'ippool', 'p9']);
    expect(missing).toMatchObject({ status: 1, stdout: '' });
    expect(missing.stderr).toBe('tortie: resource does not exist: IPPool(p9)\n');
    const badKind = await tortie(env, ['get', 'frobs']);
    expect(badKind.status).toBe(2);
    expect(badKind.stderr).toContain('resource kind "frobs" is not known');
  });

  it('creates from standard input, refuses to create twice, replaces, and deletes by file and by name', async () => {
    const peer = readFileSync(`${FIXTURES}/office-router.yaml`, 'utf8');
    const created = await tortie(env, ['create', '-f', '-'], peer);
    expect(created).toMatchObject({ status: 0, stdout: "Successfully created 1 'BGPPeer' resource(s)\n" });
    const again = await tortie(env, ['create', '-f', '-'], peer);
    expect(again.status).toBe(1);
    expect(again.stderr).toMatch(/already exists; use apply or replace to change it\nnothing was written\n$/);
    expect((await tortie(env, ['replace', '-f', '-'], peer)).stdout).toBe(
      "Successfully replaced 1 'BGPPeer' resource(s)\n",
    );
    expect((await tortie(env, ['delete', '-f', '-'], peer)).stdout).toBe(
      "Successfully deleted 1 'BGPPeer' resource(s)\n",
    );
    const gone = await tortie(env, ['replace', '-f', '-'], peer);
    expect(gone.status).toBe(1);
    expect(gone.stderr).toMatch(/resource does not exist: BGPPeer\(/);
    expect((await tortie(env, ['delete', 'bgppeer', 'peer-with-route-reflectors'])).stdout).toBe(
      "Successfully deleted 1 'BGPPeer' resource(s)\n",
    );
    expect((await tortie(env, ['get', 'bgppeers'])).stdout).toBe('NAME   PEERIP   NODE   ASN\n');
    // Put the seed back as it was: apply is idempotent.
    expect((await tortie(env, ['apply', '-f', `${FIXTURES}/seed.yaml`])).status).toBe(0);
  });

  it('shows IPAM usage after blocks are claimed and IPs assigned through the Ipam API', async () => {
    const ds = await openEtcd({ endpoints: [etcd.endpoint], timeoutMs: 5000 });
    open.push(ds);
    const ipam = new Ipam(ds);
    const blockA = await ipam.claimBlock('node-1');
    const blockB = await ipam.claimBlock('node-2');
    await ipam.assign('node-1', 'pod-a', { count: 5 });
    const show = await tortie(env, ['ipam', 'show']);
    expect(show.status).toBe(0);
    expect(show.stdout).toMatch(/\| IP Pool\s+\| 10\.244\.0\.0\/16\s+\|\s+65536 \| 5 \(0%\)\s+\| 65531 \(100%\) \|/);
    const blocks = await tortie(env, ['ipam', 'show', '--show-blocks']);
    const rows = blocks.stdout
      .split('\n')
      .filter((l) => l.startsWith('| Block'))
      .map((l) =>
        l
          .split('|')
          .map((c) => c.trim())
          .slice(1, 6),
      );
    expect(rows).toEqual(
      [
        ['Block', blockA, 'node-1', '64', '5 (8%)'],
        ['Block', blockB, 'node-2', '64', '0 (0%)'],
      ].sort((a, b) => (a[1]! < b[1]! ? -1 : 1)),
    );
    const affinities = await tortie(env, ['get', 'blockaffinities']);
    expect(affinities.stdout).toMatch(new RegExp(`node-1\\s+${blockA.replace(/[./]/g, '\\$&')}\\s+confirmed`));
  });

  it("reads calicoctl's CalicoAPIConfig with --config, and names a bad setting", async () => {
    const cfg = join(dir, 'calicoctl.cfg');
    writeFileSync(
      cfg,
      `apiVersion: projectcalico.org/v3\nkind: CalicoAPIConfig\nmetadata:\nspec:\n  datastoreType: "etcdv3"\n  etcdEndpoints: "${etcd.endpoint}"\n`,
    );
    const viaFile = await tortie({}, ['get', 'ippools', '-c', cfg]);
    expect(viaFile.stderr).toBe('');
    expect(viaFile.stdout).toContain('default-ipv4-ippool');
    const badEnv = await tortie({ ETCD_ENDPOINTS: 'etcd:2379' }, ['get', 'ippools']);
    expect(badEnv.status).toBe(1);
    expect(badEnv.stderr).toBe(
      'tortie: ETCD_ENDPOINTS: "etcd:2379" has no scheme; write http://etcd:2379 (or https://etcd:2379)\n',
    );
    const missing = await tortie(env, ['get', 'ippools', '--config', join(dir, 'nope.cfg')]);
    expect(missing.status).toBe(1);
    expect(missing.stderr).toMatch(/--config \S+nope\.cfg: cannot read it \(ENOENT\)/);
  });

  it('fails within a few seconds, exit 1, naming the endpoint, when etcd is not there (a closed port)', async () => {
    const closed = `http://127.0.0.1:${await freePort()}`;
    const run = await tortie({ ETCD_ENDPOINTS: closed, TORTIE_DATASTORE_TIMEOUT_MS: '2000' }, ['get', 'ippools']);
    expect(run.status).toBe(1);
    expect(run.stderr).toContain(closed.replace('http://', ''));
    expect(run.ms).toBeLessThan(10_000);
    const write = await tortie({ ETCD_ENDPOINTS: closed, TORTIE_DATASTORE_TIMEOUT_MS: '2000' }, [
      'apply',
      '-f',
      `${FIXTURES}/ippool.yaml`,
    ]);
    expect(write.status).toBe(1);
    expect(write.ms).toBeLessThan(10_000);
  }, 30_000);
});

describe.skipIf(!haveEtcd)('tortie with TLS to etcd (client certificates)', () => {
  let etcd: EtcdInstance & { tls: { caFile: string; clientCertFile: string; clientKeyFile: string } };
  let dir: string;

  beforeAll(async () => {
    etcd = await startEtcd({ tls: true });
    dir = mkdtempSync(join(tmpdir(), 'tortie-cli-tls-'));
  }, 30_000);
  afterAll(async () => {
    await etcd?.stop();
    if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
  });

  it('uses ETCD_CA_CERT_FILE/ETCD_CERT_FILE/ETCD_KEY_FILE, or the same in a CalicoAPIConfig; without a client certificate it fails fast', async () => {
    expect(etcd.endpoint).toMatch(/^https:/);
    const env = {
      ETCD_ENDPOINTS: etcd.endpoint,
      ETCD_CA_CERT_FILE: etcd.tls.caFile,
      ETCD_CERT_FILE: etcd.tls.clientCertFile,
      ETCD_KEY_FILE: etcd.tls.clientKeyFile,
    };
    const applied = await tortie(env, ['apply', '-f', `${FIXTURES}/ippool.yaml`]);
    expect(applied.stderr).toBe('');
    expect(applied.stdout).toBe("Successfully applied 1 'IPPool' resource(s)\n");
    const cfg = join(dir, 'calicoctl.cfg');
    const spec = [
      `etcdEndpoints: "${etcd.endpoint}"`,
      `etcdCACertFile: ${etcd.tls.caFile}`,
      `etcdCertFile: ${etcd.tls.clientCertFile}`,
      `etcdKeyFile: ${etcd.tls.clientKeyFile}`,
    ];
    writeFileSync(
      cfg,
      `apiVersion: projectcalico.org/v3\nkind: CalicoAPIConfig\nspec:\n${spec.map((l) => `  ${l}`).join('\n')}\n`,
    );
    const viaFile = await tortie({}, ['get', 'ippools', '-c', cfg]);
    expect(viaFile.stdout).toContain('default-ipv4-ippool');
    const noClientCert = await tortie(
      { ETCD_ENDPOINTS: etcd.endpoint, ETCD_CA_CERT_FILE: etcd.tls.caFile, TORTIE_DATASTORE_TIMEOUT_MS: '2000' },
      ['get', 'ippools'],
    );
    expect(noClientCert.status).toBe(1);
    expect(noClientCert.stderr).toContain(etcd.endpoint.replace('https://', ''));
    expect(noClientCert.ms).toBeLessThan(10_000);
  }, 30_000);
});

describe('tortie resource commands on the Kubernetes datastore (fake API server)', () => {
  let server: FakeApiServer;
  let env: Record<string, string>;

  beforeAll(async () => {
    server = await startFakeApiServer();
    env = { DATASTORE_TYPE: 'kubernetes', KUBECONFIG: server.kubeconfigPath };
  });
  afterAll(async () => {
    await server?.stop();
  });

  it('applies IPPool, BGPConfiguration and BGPPeer as crd.projectcalico.org objects and reads them back', async () => {
    const files = ['ippool.yaml', 'bgpconfiguration.yaml', 'bgppeer.yaml'].map((f) =>
      readFileSync(`${FIXTURES}/${f}`, 'utf8'),
    );
    const input = files.join('---\n');
    const applied = await tortie(env, ['apply', '-f', '-'], input);
    expect(applied.stderr).toBe('');
    expect(applied.stdout).toBe('Successfully applied 3 resource(s)\n');
    expect(server.object({ crd: 'ippools' }, 'default-ipv4-ippool')).toMatchObject({
      spec: { cidr: '10.244.0.0/16', ipipMode: 'Always' },
    });
    const docs = parseDocuments(input, 'input');
    expect(docs).toHaveLength(3);
    for (const [i, doc] of docs.entries()) {
      const expected = applyDefaults(toResource(doc, i));
      const got = await tortie(env, ['get', expected.kind, expected.metadata.name, '-o', 'json']);
      expect(got.stderr).toBe('');
      expect(withoutBookkeeping(JSON.parse(got.stdout) as AnyResource)).toEqual(expected);
    }
    const bad = await tortie(env, ['apply', '-f', `${FIXTURES}/bad-middle.yaml`]);
    expect(bad.status).toBe(1);
    expect(server.object({ crd: 'ippools' }, 'good-one')).toBeUndefined();
    expect((await tortie(env, ['delete', 'ippool', 'default-ipv4-ippool'])).stdout).toBe(
      "Successfully deleted 1 'IPPool' resource(s)\n",
    );
    expect(server.object({ crd: 'ippools' }, 'default-ipv4-ippool')).toBeUndefined();
  });
});
