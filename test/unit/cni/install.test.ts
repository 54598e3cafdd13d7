// `tortie cni install` (src/cni/install.ts): the conflist, the wrapper, the copied TLS files and
// kubeconfigs, the package copy, and refusals naming the variable — on the real file system in a
// temporary directory (no root needed).

import {
  mkdtempSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
  mkdirSync,
  existsSync,
  readdirSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import {
  conflistFor,
  installCni,
  realInstallIo,
  runCniCommand,
  serviceAccountKubeconfig,
  wrapperScript,
  type InstallIo,
} from '../../../src/cni/install.js';
import { parseNetConf } from '../../../src/cni/netconf.js';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function temp(): string {
  const d = mkdtempSync(join(tmpdir(), 'tortie-cni-install-'));
  dirs.push(d);
  return d;
}

/** A fake package root with a dist/ and node_modules/, and the real I/O pointed at it. */
function fixture(): { root: string; io: InstallIo; bin: string; net: string } {
  const root = temp();
  const pkg = join(root, 'pkg');
  mkdirSync(join(pkg, 'dist', 'src', 'cli'), { recursive: true });
  mkdirSync(join(pkg, 'node_modules', 'dep'), { recursive: true });
  writeFileSync(join(pkg, 'package.json'), '{"name":"tortie"}');
  writeFileSync(join(pkg, 'dist', 'src', 'cli', 'main.js'), '// main');
  writeFileSync(join(pkg, 'node_modules', 'dep', 'index.js'), '// dep');
  writeFileSync(join(pkg, 'node'), '#!/bin/sh\n');
  return {
    root,
    io: { ...realInstallIo(), packageRoot: pkg, nodePath: join(pkg, 'node') },
    bin: join(root, 'bin'),
    net: join(root, 'net.d'),
  };
}

describe('tortie cni install', () => {
  it('writes the wrapper and a conflist the plugin itself accepts (etcd, defaults)', async () => {
    const { io, bin, net, root } = fixture();
    const done = await installCni(
      { CNI_BIN_DIR: bin, CNI_NET_DIR: net, ETCD_ENDPOINTS: 'http://127.0.0.1:2379,http://127.0.0.2:2379' },
      io,
    );
    expect(done).toEqual([`wrote ${bin}/tortie`, `wrote ${net}/10-tortie.conflist`]);
    const wrapper = readFileSync(join(bin, 'tortie'), 'utf8');
    expect(wrapper).toBe(wrapperScript(join(root, 'pkg', 'node'), join(root, 'pkg', 'dist', 'src', 'cli', 'main.js')));
    expect(statSync(join(bin, 'tortie')).mode & 0o777).toBe(0o755);
    const conflist = JSON.parse(readFileSync(join(net, '10-tortie.conflist'), 'utf8')) as {
      name: string;
      cniVersion: string;
      plugins: Array<Record<string, unknown>>;
    };
    expect(conflist).toEqual({
      name: 'k8s-pod-network',
      cniVersion: '1.0.0',
      cniVersions: ['1.0.0', '1.1.0'],
      plugins: [
        {
          type: 'tortie',
          log_level: 'info',
          datastore_type: 'etcdv3',
          etcd_endpoints: 'http://127.0.0.1:2379,http://127.0.0.2:2379',
          ipam: { type: 'tortie-ipam' },
        },
      ],
    });
    // What a runtime would pass: the plugin entry with name and cniVersion copied in.
    const entry = parseNetConf(
      JSON.stringify({ ...conflist.plugins[0], name: conflist.name, cniVersion: conflist.cniVersion }),
    );
    expect(entry).toMatchObject({
      datastoreType: 'etcdv3',
      etcdEndpoints: 'http://127.0.0.1:2379,http://127.0.0.2:2379',
      logLevel: 'info',
    });
    expect(readdirSync(bin)).toEqual(['tortie']); // no temporary files left
  });

  it('copies etcd TLS files next to the conflist, and writes CNI_MTU and CNI_CONF_NAME', async () => {
    const { io, bin, net, root } = fixture();
    for (const f of ['ca.pem', 'cert.pem', 'key.pem']) writeFileSync(join(root, f), `PEM ${f}`);
    await installCni(
      {
        CNI_BIN_DIR: bin,
        CNI_NET_DIR: net,
        CNI_CONF_NAME: '05-pods.conflist',
        CNI_MTU: '1440',
        ETCD_ENDPOINTS: 'https://10.0.0.1:2379',
        ETCD_CA_CERT_FILE: join(root, 'ca.pem'),
        ETCD_CERT_FILE: join(root, 'cert.pem'),
        ETCD_KEY_FILE: join(root, 'key.pem'),
      },
      io,
    );
    const plugin = (
      JSON.parse(readFileSync(join(net, '05-pods.conflist'), 'utf8')) as { plugins: Array<Record<string, unknown>> }
    ).plugins[0];
    expect(plugin).toMatchObject({
      etcd_ca_cert_file: join(net, 'tortie-tls', 'etcd-ca'),
      etcd_cert_file: join(net, 'tortie-tls', 'etcd-cert'),
      etcd_key_file: join(net, 'tortie-tls', 'etcd-key'),
      mtu: 1440,
    });
    expect(readFileSync(join(net, 'tortie-tls', 'etcd-key'), 'utf8')).toBe('PEM key.pem');
    expect(statSync(join(net, 'tortie-tls', 'etcd-key')).mode & 0o777).toBe(0o600);
  });

  it('kubernetes: copies KUBECONFIG for the plugin', async () => {
    const { io, bin, net, root } = fixture();
    writeFileSync(join(root, 'kc'), 'apiVersion: v1\nkind: Config\n');
    await installCni(
      { CNI_BIN_DIR: bin, CNI_NET_DIR: net, DATASTORE_TYPE: 'kubernetes', KUBECONFIG: join(root, 'kc') },
      io,
    );
    const plugin = (
      JSON.parse(readFileSync(join(net, '10-tortie.conflist'), 'utf8')) as { plugins: Array<Record<string, unknown>> }
    ).plugins[0];
    expect(plugin).toMatchObject({ datastore_type: 'kubernetes', kubeconfig: join(net, 'tortie-kubeconfig') });
    expect(plugin?.etcd_endpoints).toBeUndefined();
    expect(readFileSync(join(net, 'tortie-kubeconfig'), 'utf8')).toBe('apiVersion: v1\nkind: Config\n');
  });

  it('kubernetes in a pod: a kubeconfig from the service account', () => {
    const text = serviceAccountKubeconfig('https://10.96.0.1:443', 'Q0E=', 'tok');
    expect(text).toContain('server: "https://10.96.0.1:443"');
    expect(text).toContain('certificate-authority-data: "Q0E="');
    expect(text).toContain('token: "tok"');
    expect(text).toContain('current-context: tortie-cni-context');
  });

  it("kubernetes in a pod with TORTIE_CNI_SERVICE_ACCOUNT: the kubeconfig carries a token of that account (TokenRequest), not the pod's", async () => {
    const { io, bin, net } = fixture();
    const asked: Array<[string, number]> = [];
    const pod: InstallIo = {
      ...io,
      readFile: async (path) => {
        if (path === '/var/run/secrets/kubernetes.io/serviceaccount/ca.crt') return Buffer.from('CA');
        if (path === '/var/run/secrets/kubernetes.io/serviceaccount/token') return Buffer.from('the-pods-own-token');
        return io.readFile(path);
      },
      requestToken: async (name, seconds) => {
        asked.push([name, seconds]);
        return 'bound-cni-token';
      },
    };
    const env = {
      CNI_BIN_DIR: bin,
      CNI_NET_DIR: net,
      DATASTORE_TYPE: 'kubernetes',
      KUBERNETES_SERVICE_HOST: '10.96.0.1',
      KUBERNETES_SERVICE_PORT: '443',
    };
    const done = await installCni({ ...env, TORTIE_CNI_SERVICE_ACCOUNT: 'tortie-cni' }, pod);
    expect(asked).toEqual([['tortie-cni', 3600]]);
    expect(done).toContain(
      `wrote ${net}/tortie-kubeconfig for https://10.96.0.1:443 with a token of ServiceAccount tortie-cni`,
    );
    const kubeconfig = readFileSync(join(net, 'tortie-kubeconfig'), 'utf8');
    expect(kubeconfig).toContain('token: "bound-cni-token"');
    expect(kubeconfig).not.toContain('the-pods-own-token');
    expect(statSync(join(net, 'tortie-kubeconfig')).mode & 0o777).toBe(0o600);
    // A refused TokenRequest stops the install, naming the account.
    await expect(
      installCni(
        { ...env, TORTIE_CNI_SERVICE_ACCOUNT: 'tortie-cni' },
        { ...pod, requestToken: () => Promise.reject(new Error('HTTP 403')) },
      ),
    ).rejects.toThrow(/TORTIE_CNI_SERVICE_ACCOUNT=tortie-cni: HTTP 403/);
    // Without it: the pod's own token, as before.
    await installCni(env, pod);
    expect(readFileSync(join(net, 'tortie-kubeconfig'), 'utf8')).toContain('token: "the-pods-own-token"');
  });

  it('TORTIE_CNI_LIB_DIR: copies package and Node, and points the wrapper at the copies', async () => {
    const { io, bin, net, root } = fixture();
    const lib = join(root, 'lib', 'tortie');
    await installCni({ CNI_BIN_DIR: bin, CNI_NET_DIR: net, TORTIE_CNI_LIB_DIR: lib }, io);
    expect(existsSync(join(lib, 'node_modules', 'dep', 'index.js'))).toBe(true);
    expect(statSync(join(lib, 'node')).mode & 0o777).toBe(0o755);
    expect(readFileSync(join(bin, 'tortie'), 'utf8')).toContain(
      `exec '${join(lib, 'node')}' '${join(lib, 'dist', 'src', 'cli', 'main.js')}' "$@"`,
    );
    // Again: the old copy is replaced, nothing is left beside it.
    await installCni({ CNI_BIN_DIR: bin, CNI_NET_DIR: net, TORTIE_CNI_LIB_DIR: lib }, io);
    expect(readdirSync(join(root, 'lib'))).toEqual(['tortie']);
  });

  const REFUSALS: Array<{ env: Record<string, string>; says: RegExp }> = [
    { env: { CNI_MTU: 'big' }, says: /CNI_MTU: "big" is not an MTU/ },
    {
      env: { CNI_CONF_NAME: '10-tortie.conf' },
      says: /CNI_CONF_NAME: "10-tortie\.conf" is not a file name ending in \.conflist/,
    },
    { env: { ETCD_ENDPOINTS: 'etcd:2379' }, says: /ETCD_ENDPOINTS: "etcd:2379" has no scheme/ },
    { env: { DATASTORE_TYPE: 'kubernetes' }, says: /KUBECONFIG is not set and this is not a pod/ },
    {
      env: { ETCD_ENDPOINTS: 'https://10.0.0.1:2379', ETCD_CA_CERT_FILE: '/nonexistent/ca.pem' },
      says: /ETCD_CA_CERT_FILE: \/nonexistent\/ca\.pem cannot be read \(ENOENT\)/,
    },
  ];
  for (const row of REFUSALS) {
    it(`refuses ${JSON.stringify(row.env)}`, async () => {
      const { io, bin, net } = fixture();
      await expect(installCni({ CNI_BIN_DIR: bin, CNI_NET_DIR: net, ...row.env }, io)).rejects.toThrow(row.says);
      expect(existsSync(join(net, '10-tortie.conflist'))).toBe(false);
    });
  }

  it('prints usage for --help (0) and refuses other subcommands (2)', async () => {
    let out = '';
    expect(await runCniCommand(['--help'], {}, (t) => (out += t))).toBe(0);
    expect(out).toContain('CNI_BIN_DIR');
    expect(await runCniCommand([], {}, () => undefined)).toBe(2);
  });

  it('builds the conflist purely', () => {
    expect(conflistFor({ datastore_type: 'etcdv3' })).toMatchObject({
      name: 'k8s-pod-network',
      plugins: [{ type: 'tortie', ipam: { type: 'tortie-ipam' } }],
    });
  });
});
