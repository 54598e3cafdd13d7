// Datastore configuration: environment variables, tortie.cfg, calicoctl's CalicoAPIConfig, precedence, and
// refusals that name the variable or field, the value and what is accepted. Files are faked.

import { describe, expect, it, vi } from 'vitest';
import { configFromEnv, configFromFile, ConfigError, DEFAULT_TIMEOUT_MS } from '../../../src/datastore/config.js';
import { boundCalls, describeDatastore, loadDatastoreConfig } from '../../../src/datastore/index.js';
import { MemoryDatastore } from '../../../src/datastore/memory.js';
import { DatastoreUnavailableError, type Datastore } from '../../../src/datastore/types.js';

function enoent(path: string): Error {
  return Object.assign(new Error(`ENOENT: no such file or directory, open '${path}'`), { code: 'ENOENT' });
}

/** A fake file system: `files` can be read, everything else is ENOENT. */
function fakeFs(files: Record<string, string>) {
  return {
    readFile: async (path: string) => {
      const text = files[path];
      if (text === undefined) throw enoent(path);
      return text;
    },
    checkReadable: async (path: string) => {
      if (!(path in files)) throw enoent(path);
    },
  };
}

describe('configuration from the environment', () => {
  it('defaults to etcdv3 on 127.0.0.1:2379 with nothing set', () => {
    const config = configFromEnv({});
    expect(config).toMatchObject({
      datastoreType: 'etcdv3',
      etcdEndpoints: ['http://127.0.0.1:2379'],
      timeoutMs: DEFAULT_TIMEOUT_MS,
      source: 'environment',
    });
    expect(config.kubeconfig).toBeUndefined();
  });

  it('reads calicoctl variable names: a comma list of endpoints, TLS files, kubeconfig', () => {
    const config = configFromEnv({
      DATASTORE_TYPE: 'etcdv3',
      ETCD_ENDPOINTS: 'https://127.0.0.1:2379, https://127.0.0.2:2379',
      ETCD_CA_CERT_FILE: '/pki/ca.pem',
      ETCD_CERT_FILE: '/pki/cert.pem',
      ETCD_KEY_FILE: '/pki/key.pem',
      TORTIE_DATASTORE_TIMEOUT_MS: '1500',
    });
    expect(config).toEqual({
      datastoreType: 'etcdv3',
      etcdEndpoints: ['https://127.0.0.1:2379', 'https://127.0.0.2:2379'],
      etcdCACertFile: '/pki/ca.pem',
      etcdCertFile: '/pki/cert.pem',
      etcdKeyFile: '/pki/key.pem',
      timeoutMs: 1500,
      source: 'environment',
    });
    expect(configFromEnv({ DATASTORE_TYPE: 'kubernetes', KUBECONFIG: '/root/.kube/config' })).toMatchObject({
      datastoreType: 'kubernetes',
      kubeconfig: '/root/.kube/config',
    });
  });

  const refusals: Array<[Record<string, string>, RegExp]> = [
    [{ DATASTORE_TYPE: 'etcdv2' }, /^DATASTORE_TYPE: "etcdv2" is not a datastore type; use etcdv3 or kubernetes$/],
    [
      { ETCD_ENDPOINTS: '127.0.0.1:2379' },
      /^ETCD_ENDPOINTS: "127\.0\.0\.1:2379" has no scheme; write http:\/\/127\.0\.0\.1:2379 \(or https:/,
    ],
    [
      { ETCD_ENDPOINTS: 'unix:///run/etcd.sock' },
      /^ETCD_ENDPOINTS: "unix:\/\/\/run\/etcd\.sock" has scheme "unix"; use http:\/\/HOST:PORT/,
    ],
    [
      { ETCD_ENDPOINTS: 'not a url' },
      /^ETCD_ENDPOINTS: "not a url" is not a URL; write http:\/\/HOST:PORT or https:\/\/HOST:PORT$/,
    ],
    [{ ETCD_ENDPOINTS: 'http://etcd' }, /^ETCD_ENDPOINTS: "http:\/\/etcd" has no port; write http:\/\/etcd:2379$/],
    [{ ETCD_ENDPOINTS: 'http://etcd:2379/v3' }, /has a path; write only http:\/\/etcd:2379/],
    [{ ETCD_ENDPOINTS: ' , ' }, /^ETCD_ENDPOINTS: no endpoint given/],
    [
      { ETCD_CERT_FILE: '/c.pem', ETCD_ENDPOINTS: 'https://127.0.0.1:2379' },
      /^ETCD_CERT_FILE is set but ETCD_KEY_FILE is not; a client certificate needs both$/,
    ],
    [
      { ETCD_CA_CERT_FILE: '/ca.pem' },
      /^ETCD_ENDPOINTS: "http:\/\/127\.0\.0\.1:2379" is plain http but ETCD_CA_CERT_FILE is set; use https:\/\/127\.0\.0\.1:2379$/,
    ],
    [
      { TORTIE_DATASTORE_TIMEOUT_MS: 'soon' },
      /^TORTIE_DATASTORE_TIMEOUT_MS: "soon" is not a timeout; use milliseconds, 100\.\.600000$/,
    ],
  ];
  it.each(refusals)('refuses %j, naming the variable and the value', (env, message) => {
    expect(refusals.length).toBeGreaterThan(0);
    expect(() => configFromEnv(env)).toThrow(ConfigError);
    expect(() => configFromEnv(env)).toThrow(message);
  });
});

describe('configuration files', () => {
  it("reads tortie's own flat form (endpoints as a list or a comma string)", () => {
    const text =
      'datastoreType: etcdv3\netcdEndpoints:\n  - http://127.0.0.1:2379\n  - http://127.0.0.2:2379\ntimeoutMs: 800\n';
    expect(configFromFile(text, '/etc/tortie/tortie.cfg')).toEqual({
      datastoreType: 'etcdv3',
      etcdEndpoints: ['http://127.0.0.1:2379', 'http://127.0.0.2:2379'],
      timeoutMs: 800,
      source: '/etc/tortie/tortie.cfg',
    });
    expect(configFromFile('etcdEndpoints: http://127.0.0.3:2379,http://127.0.0.4:2379\n', 'f').etcdEndpoints).toEqual([
      'http://127.0.0.3:2379',
      'http://127.0.0.4:2379',
    ]);
  });

  it("reads calicoctl's CalicoAPIConfig unchanged", () => {
    const calicoctlCfg = [
      'apiVersion: projectcalico.org/v3',
      'kind: CalicoAPIConfig',
      'metadata:',
      'spec:',
      '  datastoreType: "etcdv3"',
      '  etcdEndpoints: "https://10.0.0.1:2379,https://10.0.0.2:2379"',
      '  etcdKeyFile: /etc/calico/key.pem',
      '  etcdCertFile: /etc/calico/cert.pem',
      '  etcdCACertFile: /etc/calico/ca.pem',
      '',
    ].join('\n');
    expect(configFromFile(calicoctlCfg, 'calicoctl.cfg')).toEqual({
      datastoreType: 'etcdv3',
      etcdEndpoints: ['https://10.0.0.1:2379', 'https://10.0.0.2:2379'],
      etcdKeyFile: '/etc/calico/key.pem',
      etcdCertFile: '/etc/calico/cert.pem',
      etcdCACertFile: '/etc/calico/ca.pem',
      timeoutMs: DEFAULT_TIMEOUT_MS,
      source: 'calicoctl.cfg',
    });
    const k8s =
      'apiVersion: projectcalico.org/v3\nkind: CalicoAPIConfig\nspec:\n  datastoreType: kubernetes\n  kubeconfig: /root/.kube/config\n';
    expect(configFromFile(k8s, 'k.cfg')).toMatchObject({
      datastoreType: 'kubernetes',
      kubeconfig: '/root/.kube/config',
    });
  });

  const refusals: Array<[string, RegExp]> = [
    ['datastoreType: etcd\n', /^f: datastoreType: "etcd" is not a datastore type; use etcdv3 or kubernetes$/],
    [
      'etcdEndpoint: http://127.0.0.1:2379\n',
      /^f: etcdEndpoint: unknown setting; accepted: datastoreType, etcdEndpoints, /,
    ],
    [
      'apiVersion: projectcalico.org/v3\nkind: CalicoAPIConfig\nspec:\n  etcdEndpoints: 127.0.0.1\n',
      /^f: spec\.etcdEndpoints: "127\.0\.0\.1" is not a URL/,
    ],
    [
      'apiVersion: projectcalico.org/v3\nkind: CalicoAPIConfig\nspec:\n  etcdUsername: root\n',
      /^f: spec\.etcdUsername is not supported by tortie; use client certificates/,
    ],
    [
      'apiVersion: projectcalico.org/v3\nkind: CalicoAPIConfig\nspec:\n  k8sAPIEndpoint: https://k:6443\n',
      /^f: spec\.k8sAPIEndpoint is not supported by tortie; set the server in a kubeconfig file$/,
    ],
    [
      'apiVersion: v1\nkind: calicoApiConfig\nspec: {}\n',
      /^f: kind "calicoApiConfig" is not a datastore configuration; use kind: CalicoAPIConfig/,
    ],
    [
      'apiVersion: projectcalico.org/v2\nkind: CalicoAPIConfig\n',
      /^f: apiVersion "projectcalico.org\/v2" is not supported for CalicoAPIConfig; use projectcalico.org\/v3$/,
    ],
    [
      'apiVersion: projectcalico.org/v3\nkind: CalicoAPIConfig\nspec:\n  etcdKeyFile: /k.pem\n',
      /^f: spec\.etcdKeyFile is set but f: spec\.etcdCertFile is not/,
    ],
    ['- etcdv3\n', /^f: expected a mapping of settings, found a list$/],
    ['', /^f: the file is empty; set at least datastoreType$/],
    ['datastoreType: [etcdv3\n', /^f: not valid YAML: /],
  ];
  it.each(refusals)('refuses %j, naming the file and field', (text, message) => {
    expect(refusals.length).toBeGreaterThan(0);
    expect(() => configFromFile(text, 'f')).toThrow(message);
  });
});

describe('loadDatastoreConfig: which source wins', () => {
  const env = { ETCD_ENDPOINTS: 'http://127.0.0.5:2379' };

  it('uses the environment when there is no default file and no --config', async () => {
    const config = await loadDatastoreConfig(env, undefined, { defaultPath: '/etc/tortie/tortie.cfg', ...fakeFs({}) });
    expect(config.source).toBe('environment');
    expect(config.etcdEndpoints).toEqual(['http://127.0.0.5:2379']);
  });

  it('uses /etc/tortie/tortie.cfg when present (the whole configuration, as calicoctl), and --config over it', async () => {
    const fs = fakeFs({
      '/etc/tortie/tortie.cfg': 'etcdEndpoints: http://127.0.0.6:2379\n',
      '/tmp/other.cfg':
        'apiVersion: projectcalico.org/v3\nkind: CalicoAPIConfig\nspec:\n  etcdEndpoints: http://127.0.0.7:2379\n',
    });
    const fromDefault = await loadDatastoreConfig(env, undefined, { defaultPath: '/etc/tortie/tortie.cfg', ...fs });
    expect(fromDefault).toMatchObject({ source: '/etc/tortie/tortie.cfg', etcdEndpoints: ['http://127.0.0.6:2379'] });
    const explicit = await loadDatastoreConfig(env, '/tmp/other.cfg', { defaultPath: '/etc/tortie/tortie.cfg', ...fs });
    expect(explicit).toMatchObject({ source: '/tmp/other.cfg', etcdEndpoints: ['http://127.0.0.7:2379'] });
  });

  it('names a missing --config file, an unreadable default file, and a certificate file that cannot be read', async () => {
    await expect(loadDatastoreConfig(env, '/nope.cfg', { defaultPath: '/d', ...fakeFs({}) })).rejects.toThrow(
      /^--config \/nope\.cfg: cannot read it \(ENOENT\)$/,
    );
    const denied = {
      defaultPath: '/etc/tortie/tortie.cfg',
      readFile: async () => {
        throw Object.assign(new Error('EACCES'), { code: 'EACCES' });
      },
      checkReadable: async () => undefined,
    };
    await expect(loadDatastoreConfig(env, undefined, denied)).rejects.toThrow(
      /^\/etc\/tortie\/tortie\.cfg: cannot read it \(EACCES\); fix its permissions or pass --config FILE$/,
    );
    const tlsEnv = { ETCD_ENDPOINTS: 'https://127.0.0.1:2379', ETCD_CA_CERT_FILE: '/pki/ca.pem' };
    await expect(loadDatastoreConfig(tlsEnv, undefined, { defaultPath: '/d', ...fakeFs({}) })).rejects.toThrow(
      /^ETCD_CA_CERT_FILE: \/pki\/ca\.pem cannot be read \(ENOENT\)$/,
    );
    const cfg = {
      '/c.cfg':
        'apiVersion: projectcalico.org/v3\nkind: CalicoAPIConfig\nspec:\n  datastoreType: kubernetes\n  kubeconfig: /kube/a:/kube/b\n',
      '/kube/a': '',
    };
    await expect(loadDatastoreConfig({}, '/c.cfg', { defaultPath: '/d', ...fakeFs(cfg) })).rejects.toThrow(
      /^\/c\.cfg: spec\.kubeconfig: \/kube\/b cannot be read \(ENOENT\)$/,
    );
  });

  it('describes where the datastore is, for messages', () => {
    expect(describeDatastore(configFromEnv({ ETCD_ENDPOINTS: 'http://127.0.0.1:1,http://127.0.0.2:2' }))).toBe(
      'etcdv3 at http://127.0.0.1:1,http://127.0.0.2:2',
    );
    expect(describeDatastore(configFromEnv({ DATASTORE_TYPE: 'kubernetes' }))).toBe(
      'kubernetes via the default kubeconfig',
    );
  });
});

describe('boundCalls: a datastore that never answers', () => {
  it('rejects each call with DatastoreUnavailableError naming the datastore, instead of hanging', async () => {
    vi.useFakeTimers();
    try {
      const never = new Promise<never>(() => undefined);
      const inner = new MemoryDatastore();
      const silent: Datastore = {
        ...inner,
        type: 'etcdv3',
        get: () => never,
        list: () => never,
        create: () => never,
        update: () => never,
        delete: () => never,
        watch: inner.watch.bind(inner),
        close: async () => undefined,
      };
      const ds = boundCalls(silent, 3000, 'etcdv3 at http://127.0.0.1:9');
      const get = ds.get('IPPool', 'p1');
      const create = ds.create({
        apiVersion: 'projectcalico.org/v3',
        kind: 'IPPool',
        metadata: { name: 'p1' },
        spec: { cidr: '10.0.0.0/24' },
      });
      const getSettled = expect(get).rejects.toThrow(DatastoreUnavailableError);
      const createSettled = expect(create).rejects.toThrow(
        /^etcdv3 at http:\/\/127\.0\.0\.1:9: no answer to create IPPool within 3000 ms \(the write may or may not have happened\)/,
      );
      await vi.advanceTimersByTimeAsync(2999);
      let settled = false;
      void get.catch(() => (settled = true));
      await Promise.resolve();
      expect(settled).toBe(false);
      await vi.advanceTimersByTimeAsync(1);
      await getSettled;
      await createSettled;
    } finally {
      vi.useRealTimers();
    }
  });

  it('passes answers through unchanged', async () => {
    const ds = boundCalls(new MemoryDatastore(), 1000, 'memory');
    const created = await ds.create({
      apiVersion: 'projectcalico.org/v3',
      kind: 'IPPool',
      metadata: { name: 'p1' },
      spec: { cidr: '10.0.0.0/24' },
    });
    expect((await ds.get('IPPool', 'p1'))?.metadata.resourceVersion).toBe(created.metadata.resourceVersion);
  });
});
