// The built `tortie` command with DATASTORE_TYPE=kubernetes against the fake API server: the seed
// examples apply and read back identically (the Node's Kubernetes labels come along, as in Calico), the
// Node's BGP data land as annotations on the Kubernetes Node, and an unreachable API server fails fast.

import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { applyDefaults, parseDocuments, toResource, type AnyResource } from '../../src/resources/index.js';
import { startFakeApiServer, type FakeApiServer } from '../harness/fake-apiserver.js';

const HERE = fileURLToPath(import.meta.url);
const ROOT = HERE.slice(0, HERE.lastIndexOf('/test/')).replace(/\/dist$/, '');
const CLI = `${ROOT}/dist/src/cli/main.js`;
const SEED = `${ROOT}/test/fixtures/resources/seed.yaml`;

interface Run {
  status: number;
  stdout: string;
  stderr: string;
  ms: number;
}

/** Runs the built CLI asynchronously (the fake API server lives in this process), bounded to 20 s. */
function tortie(env: Record<string, string>, args: string[]): Promise<Run> {
  const started = Date.now();
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [CLI, ...args],
      { env: { PATH: process.env.PATH ?? '/usr/bin:/bin', ...env }, timeout: 20_000 },
      (err, stdout, stderr) => {
        const status = err
          ? typeof (err as { code?: unknown }).code === 'number'
            ? (err as { code: number }).code
            : -1
          : 0;
        resolve({ status, stdout, stderr, ms: Date.now() - started });
      },
    );
  });
}

function withoutBookkeeping(r: AnyResource): AnyResource {
  const { resourceVersion: _rv, uid: _uid, creationTimestamp: _ts, ...metadata } = r.metadata;
  return { ...r, metadata } as AnyResource;
}

describe('tortie resource commands on the kubernetes datastore', () => {
  let api: FakeApiServer;
  let env: Record<string, string>;

  beforeAll(async () => {
    expect(existsSync(CLI), `${CLI} is missing; run npm run build first`).toBe(true);
    api = await startFakeApiServer();
    // The kubelet registered node-1; tortie only adds its BGP data.
    api.put({ core: 'nodes' }, { metadata: { name: 'node-1', labels: { 'kubernetes.io/hostname': 'node-1' } } });
    env = { DATASTORE_TYPE: 'kubernetes', KUBECONFIG: api.kubeconfigPath };
  });
  afterAll(async () => {
    await api?.stop();
  });

  it('applies the seed examples and reads every one back identically', async () => {
    const docs = parseDocuments(readFileSync(SEED, 'utf8'), 'seed.yaml');
    expect(docs.length).toBe(4);
    const applied = await tortie(env, ['apply', '-f', SEED]);
    expect(applied).toMatchObject({ status: 0, stdout: 'Successfully applied 4 resource(s)\n', stderr: '' });
    for (const [i, doc] of docs.entries()) {
      const expected = applyDefaults(toResource(doc, i));
      const got = await tortie(env, ['get', expected.kind.toLowerCase(), expected.metadata.name, '-o', 'yaml']);
      expect(got.status).toBe(0);
      const read = parseYaml(got.stdout) as AnyResource;
      expect(read.metadata.resourceVersion).toMatch(/^\d+$/);
      expect(read).toMatchObject(doc as object);
      if (read.kind === 'Node') {
        expect(read.metadata.labels).toEqual({ ...expected.metadata.labels, 'kubernetes.io/hostname': 'node-1' });
        expect(read.spec).toEqual(expected.spec);
      } else {
        expect(withoutBookkeeping(read)).toEqual(expected);
      }
    }
    const node = api.object({ core: 'nodes' }, 'node-1')!;
    expect(node.metadata.annotations).toMatchObject({
      'projectcalico.org/IPv4Address': '198.18.0.11/24',
      'projectcalico.org/RouteReflectorClusterID': '244.0.0.1',
      'projectcalico.org/labels': '{"route-reflector":"true"}',
    });
    expect(api.object({ crd: 'ippools' }, 'default-ipv4-ippool')?.spec).toMatchObject({
      cidr: '10.244.0.0/16',
      blockSize: 26,
      ipipMode: 'Always',
      natOutgoing: true,
    });
    // Applying again is an update of each, not an error.
    expect(await tortie(env, ['apply', '-f', SEED])).toMatchObject({
      status: 0,
      stdout: 'Successfully applied 4 resource(s)\n',
    });
  });

  it('an unreachable API server: exit 1 within a few seconds, naming the server', async () => {
    const gone = await startFakeApiServer();
    const url = gone.url;
    const kubeconfig = readFileSync(gone.kubeconfigPath, 'utf8');
    await gone.stop();
    const dir = mkdtempSync(`${tmpdir()}/tortie-kubeconfig-`);
    writeFileSync(`${dir}/kubeconfig`, kubeconfig);
    const run = await tortie({ DATASTORE_TYPE: 'kubernetes', KUBECONFIG: `${dir}/kubeconfig` }, ['get', 'ippools']);
    rmSync(dir, { recursive: true, force: true });
    expect(run.status).toBe(1);
    expect(run.stderr).toContain(url);
    expect(run.ms).toBeLessThan(8000);
  });
});
