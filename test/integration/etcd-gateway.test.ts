// The etcd datastore over etcd's HTTP/JSON gateway (src/datastore/etcd-gateway.ts) against a real etcd
// 3.4: the whole Datastore contract (test/unit/datastore/contract.ts, watches included); the same keys,
// values and revisions as the gRPC client (each reads what the other wrote, and compare-and-swap holds
// across them); a refusal told apart from an unreachable etcd; failing over past a dead endpoint; a watch
// across an etcd restart and after compaction; and TLS both ways — a server certificate with the
// clientAuth usage (the gateway works, and refuses a client without a certificate) and the harness's
// server-only certificate (the gateway cannot serve, openDatastore falls back to gRPC and says why).

import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { Agent as HttpAgent, request as httpRequest } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { silentMember } from '../harness/silent-member.js';
import { Etcd3 } from 'etcd3';
import { openEtcd } from '../../src/datastore/etcd.js';
import { EtcdGatewayUnusableError, GatewayTransport, openEtcdGateway } from '../../src/datastore/etcd-gateway.js';
import { EtcdStore } from '../../src/datastore/etcd-store.js';
import { openDatastore } from '../../src/datastore/index.js';
import { configFromEnv } from '../../src/datastore/config.js';
import {
  AlreadyExistsError,
  ConflictError,
  DatastoreError,
  DatastoreUnavailableError,
  type Datastore,
  type WatchEvent,
} from '../../src/datastore/types.js';
import { API_VERSION, type Kind, type Resource } from '../../src/resources/types.js';
import { datastoreContract } from '../unit/datastore/contract.js';
import { ETCD_BINARY, freePort, requireEtcd, startEtcd, type EtcdInstance } from '../harness/etcd.js';
import { findBinary } from '../harness/binaries.js';
import { makeTempDir, removeTempDir, startProcess, waitFor } from '../harness/process.js';

function pool(name: string, cidr: string): Resource<'IPPool'> {
  return {
    apiVersion: API_VERSION,
    kind: 'IPPool',
    metadata: { name },
    spec: { cidr, blockSize: 26, ipipMode: 'Never', natOutgoing: true, nodeSelector: 'all()' },
  };
}

function peer(name: string, n: number): Resource<'BGPPeer'> {
  return {
    apiVersion: API_VERSION,
    kind: 'BGPPeer',
    metadata: { name },
    spec: { peerIP: `198.18.3.${n}`, asNumber: 65000 + n },
  };
}

/** A port that was free a moment ago and is closed now: nothing listens there. */
async function deadEndpoint(): Promise<string> {
  return `http://127.0.0.1:${await freePort()}`;
}

describe.skipIf(!requireEtcd())('etcd datastore over the HTTP/JSON gateway (real etcd)', () => {
  let etcd: EtcdInstance;
  let gateway: Datastore;
  let grpc: Datastore;
  let raw: Etcd3;

  beforeAll(async () => {
    etcd = await startEtcd();
    gateway = await openEtcdGateway({ endpoints: [etcd.endpoint], timeoutMs: 3000 });
    grpc = await openEtcd({ endpoints: [etcd.endpoint], timeoutMs: 3000 });
    raw = new Etcd3({ hosts: etcd.endpoint });
  });
  afterAll(async () => {
    raw?.close();
    await gateway?.close();
    await grpc?.close();
    await etcd?.stop();
  });

  datastoreContract('etcd over the JSON gateway', async () => {
    const ds = await openEtcdGateway({ endpoints: [etcd.endpoint], timeoutMs: 3000 });
    return { ds, cleanup: () => ds.close() };
  });

  it("writes the keys and values the gRPC client writes, and each reads the other's with the same revision", async () => {
    const block: Resource<'IPAMBlock'> = {
      apiVersion: API_VERSION,
      kind: 'IPAMBlock',
      metadata: { name: '10-245-1-0-26' },
      spec: {
        cidr: '10.245.1.0/26',
        affinity: 'host:node-g',
        allocations: [0, ...Array<null>(63).fill(null)],
        unallocated: Array.from({ length: 63 }, (_, i) => i + 1),
        attributes: [{ handle_id: 'k8s-pod-network.g1', secondary: null }],
        sequenceNumber: 1,
      },
    };
    const wep: Resource<'WorkloadEndpoint'> = {
      apiVersion: API_VERSION,
      kind: 'WorkloadEndpoint',
      metadata: { name: 'node--g-k8s-web-eth0', namespace: 'gw' },
      spec: {
        node: 'node-g',
        orchestrator: 'k8s',
        pod: 'web',
        endpoint: 'eth0',
        interfaceName: 'cali0123456789a',
        ipNetworks: ['10.245.1.0/32'],
      },
    };
    const written = [
      await gateway.create(pool('gw-pool', '10.245.0.0/16')),
      await gateway.create(block),
      await gateway.create({
        apiVersion: API_VERSION,
        kind: 'BlockAffinity',
        metadata: { name: 'node-g-10-245-1-0-26' },
        spec: { state: 'confirmed', node: 'node-g', cidr: '10.245.1.0/26' },
      }),
      await gateway.create({
        apiVersion: API_VERSION,
        kind: 'IPAMHandle',
        metadata: { name: 'k8s-pod-network.g1' },
        spec: { handleID: 'k8s-pod-network.g1', block: { '10.245.1.0/26': 1 } },
      }),
      await gateway.create(wep),
    ];
    const keys = Object.keys(await raw.getAll().prefix('/calico/').strings());
    expect(keys).toEqual(
      expect.arrayContaining([
        '/calico/ipam/v2/assignment/ipv4/block/10.245.1.0-26',
        '/calico/ipam/v2/handle/k8s-pod-network.g1',
        '/calico/ipam/v2/host/node-g/ipv4/block/10.245.1.0-26',
        '/calico/resources/v3/projectcalico.org/ippools/gw-pool',
        '/calico/resources/v3/projectcalico.org/workloadendpoints/gw/node--g-k8s-web-eth0',
      ]),
    );
    for (const resource of written) {
      const viaGrpc = await grpc.get(resource.kind as Kind, resource.metadata.name, resource.metadata.namespace);
      const viaGateway = await gateway.get(resource.kind as Kind, resource.metadata.name, resource.metadata.namespace);
      // Read back (defaults filled in by decoding) the same over both, at the revision the create returned.
      expect(viaGrpc?.metadata.resourceVersion, `${resource.kind} ${resource.metadata.name}`).toBe(
        resource.metadata.resourceVersion,
      );
      expect(viaGrpc?.spec).toMatchObject(resource.spec as unknown as Record<string, unknown>);
      expect(viaGateway).toEqual(viaGrpc);
    }
    // Lists agree too, revision included.
    const [byGateway, byGrpc] = [await gateway.list('IPAMBlock'), await grpc.list('IPAMBlock')];
    expect(byGateway.items).toEqual(byGrpc.items);
    // And the other way: what the gRPC client wrote, the gateway reads (a value with a non-ASCII byte).
    const peerByGrpc = await grpc.create({
      ...peer('gw-from-grpc', 1),
      metadata: { name: 'gw-from-grpc', annotations: { note: 'café ☕' } },
    });
    expect(await gateway.get('BGPPeer', 'gw-from-grpc')).toEqual(peerByGrpc);
  });

  it('compare-and-swap holds across the two clients: a revision read over one is checked over the other', async () => {
    const created = await grpc.create(pool('gw-cas', '10.246.0.0/24'));
    await expect(gateway.create(pool('gw-cas', '10.246.0.0/24'))).rejects.toBeInstanceOf(AlreadyExistsError);
    const updated = await gateway.update({ ...created, spec: { ...created.spec, natOutgoing: false } });
    expect(Number(updated.metadata.resourceVersion)).toBeGreaterThan(Number(created.metadata.resourceVersion));
    await expect(grpc.update({ ...created, spec: { ...created.spec, disabled: true } })).rejects.toBeInstanceOf(
      ConflictError,
    );
    await expect(
      gateway.delete('IPPool', 'gw-cas', { revision: created.metadata.resourceVersion ?? '' }),
    ).rejects.toBeInstanceOf(ConflictError);
    const now = await grpc.get('IPPool', 'gw-cas');
    expect(now?.spec.natOutgoing).toBe(false);
    expect(now?.spec.disabled).toBeUndefined();
    expect(now?.metadata.resourceVersion).toBe(updated.metadata.resourceVersion);
    const deleted = await gateway.delete('IPPool', 'gw-cas', { revision: updated.metadata.resourceVersion ?? '' });
    expect(deleted.spec.cidr).toBe('10.246.0.0/24');
    expect(await grpc.get('IPPool', 'gw-cas')).toBeNull();
  });

  it('tells a refusal from etcd (a request too large) apart from etcd being unreachable', async () => {
    const huge: Resource<'BGPPeer'> = {
      ...peer('gw-huge', 2),
      metadata: { name: 'gw-huge', annotations: { blob: 'x'.repeat(2 * 1024 * 1024) } },
    };
    const error = await gateway.create(huge).then(
      () => null,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(DatastoreError);
    expect(error).not.toBeInstanceOf(DatastoreUnavailableError);
    expect((error as Error).message).toMatch(
      /create \/calico\/resources\/v3\/projectcalico\.org\/bgppeers\/gw-huge refused: /,
    );
    expect(await grpc.get('BGPPeer', 'gw-huge')).toBeNull();
  });

  it('fails over past an endpoint that refuses connections', async () => {
    const dead = await deadEndpoint();
    const ds = await openEtcdGateway({ endpoints: [dead, etcd.endpoint], timeoutMs: 3000 });
    try {
      await ds.create(peer('gw-failover', 3));
      expect((await ds.get('BGPPeer', 'gw-failover'))?.spec.asNumber).toBe(65003);
    } finally {
      await ds.close();
    }
  });

  it('fails over past a member that accepts connections and never answers, reads and writes', async () => {
    const silent = await silentMember('http');
    try {
      // The check (a read) goes on to etcd; the writes and reads after it start there.
      const ds = await openEtcdGateway({ endpoints: [silent.endpoint, etcd.endpoint], timeoutMs: 3000 });
      try {
        await ds.create(peer('gw-silent', 4));
        expect((await ds.get('BGPPeer', 'gw-silent'))?.spec.asNumber).toBe(65004);
      } finally {
        await ds.close();
      }
      expect(silent.connections()).toBe(1);
    } finally {
      await silent.close();
    }
  });

  it('a write that reached a member which never answered is not sent to the next one; the next call starts there', async () => {
    const silent = await silentMember('http');
    // The transport on its own, so that the first call is a write that starts at the silent member.
    const store = new EtcdStore(
      new GatewayTransport(
        { request: httpRequest, agent: new HttpAgent({ keepAlive: true }), connectEvent: 'connect' },
        [silent.endpoint, etcd.endpoint],
        1500,
      ),
    );
    try {
      const error = await store.create(peer('gw-once', 5)).then(
        () => null,
        (e: unknown) => e,
      );
      expect(error).toBeInstanceOf(DatastoreUnavailableError);
      expect(await grpc.get('BGPPeer', 'gw-once')).toBeNull();
      const created = await store.create(peer('gw-once', 5));
      expect((await grpc.get('BGPPeer', 'gw-once'))?.metadata.resourceVersion).toBe(created.metadata.resourceVersion);
      expect(silent.connections()).toBe(1);
    } finally {
      await store.close();
      await silent.close();
    }
  });

  it('a watch resumes after an etcd restart: every change once, in order', async () => {
    const start = await gateway.list('BGPPeer');
    const events: Array<WatchEvent<'BGPPeer'>> = [];
    const watch = gateway.watch('BGPPeer', start.revision, (e) => events.push(e));
    const names = (): string[] =>
      events.flatMap((e) =>
        e.type === 'added' && e.resource.metadata.name.startsWith('gw-r') ? [e.resource.metadata.name] : [],
      );
    try {
      await gateway.create(peer('gw-r1', 11));
      await waitFor(() => names().length === 1, { timeoutMs: 5000, what: 'the first event' });
      await etcd.kill9();
      await etcd.restart();
      for (let n = 2; n <= 5; n++) {
        await waitFor(
          async () =>
            gateway.create(peer(`gw-r${n}`, 10 + n)).then(
              () => true,
              (e: unknown) => e instanceof AlreadyExistsError,
            ),
          { timeoutMs: 10_000, what: `create gw-r${n}` },
        );
      }
      await waitFor(() => names().length >= 5, { timeoutMs: 15_000, what: 'five added events' });
      await new Promise((r) => setTimeout(r, 300)); // a duplicate would arrive now
      expect(names()).toEqual(['gw-r1', 'gw-r2', 'gw-r3', 'gw-r4', 'gw-r5']);
      expect(
        events.some(
          (e) =>
            e.type === 'error' &&
            e.error instanceof DatastoreUnavailableError &&
            e.error.message.includes(etcd.endpoint),
        ),
      ).toBe(true);
    } finally {
      watch.stop();
    }
  }, 60_000);

  it('a watch from a compacted revision re-lists and sends sync, then continues; deletes arrive as deleted', async () => {
    const node = (name: string): Resource<'Node'> => ({
      apiVersion: API_VERSION,
      kind: 'Node',
      metadata: { name },
      spec: { bgp: { ipv4Address: '198.18.3.1/24' } },
    });
    const first = await gateway.create(node('gw-n1'));
    await gateway.create(node('gw-n2'));
    await gateway.delete('Node', 'gw-n1');
    const latest = await raw.get('/calico/').exec();
    await raw.kv.compact({ revision: latest.header.revision, physical: true });
    const events: Array<WatchEvent<'Node'>> = [];
    const watch = gateway.watch('Node', first.metadata.resourceVersion ?? '1', (e) => events.push(e));
    try {
      const sync = await waitFor(() => events.find((e) => e.type === 'sync'), {
        timeoutMs: 5000,
        what: 'a sync event',
      });
      expect(sync.type === 'sync' && sync.items.map((n) => n.metadata.name).filter((n) => n.startsWith('gw-'))).toEqual(
        ['gw-n2'],
      );
      await gateway.create(node('gw-n3'));
      await gateway.delete('Node', 'gw-n2');
      const deleted = await waitFor(() => events.find((e) => e.type === 'deleted'), {
        timeoutMs: 5000,
        what: 'gw-n2 deleted',
      });
      expect(deleted.type === 'deleted' && deleted.resource.metadata.name).toBe('gw-n2');
      expect(deleted.type === 'deleted' && deleted.resource.spec.bgp?.ipv4Address).toBe('198.18.3.1/24');
      expect(
        events.filter((e) => e.type === 'added').map((e) => (e.type === 'added' ? e.resource.metadata.name : '')),
      ).toEqual(['gw-n3']);
      expect(events.filter((e) => e.type === 'sync')).toHaveLength(1);
    } finally {
      watch.stop();
    }
  });
});

describe('etcd datastore over the gateway: unreachable endpoint', () => {
  it('rejects with DatastoreUnavailableError naming the endpoints, within the timeout', async () => {
    const endpoints = [await deadEndpoint(), await deadEndpoint()];
    const started = Date.now();
    const error = await openEtcdGateway({ endpoints, timeoutMs: 1500 }).then(
      () => null,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(DatastoreUnavailableError);
    expect(error).not.toBeInstanceOf(EtcdGatewayUnusableError);
    for (const endpoint of endpoints) expect((error as Error).message).toContain(endpoint);
    expect(Date.now() - started).toBeLessThan(4000);
  });
});

/**
 * An etcd with TLS and client-certificate auth whose *server* certificate may also be used as a client
 * one (extendedKeyUsage serverAuth,clientAuth), as kubeadm's are: what etcd 3.4's gateway needs to dial
 * its own gRPC server. The harness's startEtcd({ tls: true }) makes a server-only certificate.
 */
async function startEtcdWithDualUseCertificate(): Promise<{
  endpoint: string;
  caFile: string;
  certFile: string;
  keyFile: string;
  stop(): Promise<void>;
}> {
  const dir = makeTempDir('etcd-gw-tls');
  const file = (name: string): string => join(dir, name);
  const openssl = (...args: string[]): void => void execFileSync('openssl', args, { stdio: 'pipe', timeout: 10_000 });
  openssl(
    'req',
    '-x509',
    '-newkey',
    'ec',
    '-pkeyopt',
    'ec_paramgen_curve:prime256v1',
    '-nodes',
    '-days',
    '1',
    '-subj',
    '/CN=tortie gateway test CA',
    '-keyout',
    file('ca.key'),
    '-out',
    file('ca.pem'),
  );
  const usages = {
    server: ['subjectAltName=IP:127.0.0.1', 'extendedKeyUsage=serverAuth,clientAuth'],
    client: ['extendedKeyUsage=clientAuth'],
  };
  for (const [name, lines] of Object.entries(usages)) {
    writeFileSync(file(`${name}.ext`), `${lines.join('\n')}\n`);
    openssl(
      'req',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:prime256v1',
      '-nodes',
      '-subj',
      `/CN=tortie ${name}`,
      '-keyout',
      file(`${name}.key`),
      '-out',
      file(`${name}.csr`),
    );
    openssl(
      'x509',
      '-req',
      '-in',
      file(`${name}.csr`),
      '-CA',
      file('ca.pem'),
      '-CAkey',
      file('ca.key'),
      '-CAcreateserial',
      '-days',
      '1',
      '-extfile',
      file(`${name}.ext`),
      '-out',
      file(`${name}.pem`),
    );
  }
  const [clientPort, peerPort] = [await freePort(), await freePort()];
  const endpoint = `https://127.0.0.1:${clientPort}`;
  const peerUrl = `http://127.0.0.1:${peerPort}`;
  const proc = startProcess({
    name: 'etcd-gw-tls',
    command: findBinary(ETCD_BINARY) ?? 'etcd',
    dir,
    args: [
      '--name',
      'default',
      '--data-dir',
      file('data'),
      '--listen-client-urls',
      endpoint,
      '--advertise-client-urls',
      endpoint,
      '--listen-peer-urls',
      peerUrl,
      '--initial-advertise-peer-urls',
      peerUrl,
      '--initial-cluster',
      `default=${peerUrl}`,
      '--log-level',
      'warn',
      '--logger',
      'zap',
      '--cert-file',
      file('server.pem'),
      '--key-file',
      file('server.key'),
      '--trusted-ca-file',
      file('ca.pem'),
      '--client-cert-auth',
    ],
  });
  const stop = async (): Promise<void> => {
    await proc.stop();
    removeTempDir(dir);
  };
  const tls = { caFile: file('ca.pem'), certFile: file('client.pem'), keyFile: file('client.key') };
  try {
    await waitFor(
      async () => {
        if (!proc.isRunning()) throw new Error(`etcd exited early; log:\n${proc.log().slice(-2000)}`);
        return openEtcdGateway({ endpoints: [endpoint], ...tls, timeoutMs: 1000 }).then(
          (ds) => ds.close().then(() => true),
          () => false,
        );
      },
      { timeoutMs: 15_000, intervalMs: 100, what: `etcd answering over TLS at ${endpoint}` },
    );
  } catch (err) {
    await stop();
    throw err;
  }
  return { endpoint, ...tls, stop };
}

describe.skipIf(!requireEtcd())('etcd datastore over the gateway with TLS', () => {
  it('with a server certificate usable as a client one: works with a client certificate, is refused without one', async () => {
    const etcd = await startEtcdWithDualUseCertificate();
    try {
      const ds = await openEtcdGateway({
        endpoints: [etcd.endpoint],
        caFile: etcd.caFile,
        certFile: etcd.certFile,
        keyFile: etcd.keyFile,
        timeoutMs: 3000,
      });
      try {
        await ds.create(pool('gw-tls', '10.247.0.0/24'));
        expect((await ds.get('IPPool', 'gw-tls'))?.spec.cidr).toBe('10.247.0.0/24');
      } finally {
        await ds.close();
      }
      // A member whose TLS handshake never completes, or fails, is "not connected": even a write goes on.
      for (const garbage of [false, true]) {
        const bad = await silentMember('https', garbage);
        try {
          // The transport on its own, so that the first call is a write that starts at the bad member.
          const agent = new HttpsAgent({
            keepAlive: true,
            ca: readFileSync(etcd.caFile),
            cert: readFileSync(etcd.certFile),
            key: readFileSync(etcd.keyFile),
          });
          const failover = new EtcdStore(
            new GatewayTransport(
              { request: httpsRequest, agent, connectEvent: 'secureConnect' },
              [bad.endpoint, etcd.endpoint],
              3000,
            ),
          );
          try {
            await failover.create(
              pool(`gw-tls-${garbage ? 'garbage' : 'silent'}`, garbage ? '10.247.2.0/24' : '10.247.1.0/24'),
            );
          } finally {
            await failover.close();
          }
          expect(bad.connections(), garbage ? 'TLS garbage member' : 'silent TLS member').toBeGreaterThanOrEqual(1);
        } finally {
          await bad.close();
        }
      }
      const writer = await openEtcdGateway({
        endpoints: [etcd.endpoint],
        caFile: etcd.caFile,
        certFile: etcd.certFile,
        keyFile: etcd.keyFile,
        timeoutMs: 3000,
      });
      try {
        expect(
          (await writer.list('IPPool')).items
            .map((p) => p.metadata.name)
            .filter((n) => n.startsWith('gw-tls-'))
            .sort(),
        ).toEqual(['gw-tls-garbage', 'gw-tls-silent']);
      } finally {
        await writer.close();
      }
      const refused = await openEtcdGateway({ endpoints: [etcd.endpoint], caFile: etcd.caFile, timeoutMs: 2000 }).then(
        () => null,
        (e: unknown) => e,
      );
      expect(refused).toBeInstanceOf(DatastoreUnavailableError);
      expect((refused as Error).message).toContain(etcd.endpoint);
    } finally {
      await etcd.stop();
    }
  }, 60_000);

  it('with a server-only certificate: the gateway cannot serve, and openDatastore falls back to gRPC and says why', async () => {
    const etcd = await startEtcd({ tls: true });
    try {
      const tls = { caFile: etcd.tls.caFile, certFile: etcd.tls.clientCertFile, keyFile: etcd.tls.clientKeyFile };
      const unusable = await openEtcdGateway({ endpoints: [etcd.endpoint], ...tls, timeoutMs: 3000 }).then(
        () => null,
        (e: unknown) => e,
      );
      expect(unusable).toBeInstanceOf(EtcdGatewayUnusableError);
      expect((unusable as Error).message).toContain(etcd.endpoint);

      const config = configFromEnv({
        ETCD_ENDPOINTS: etcd.endpoint,
        ETCD_CA_CERT_FILE: tls.caFile,
        ETCD_CERT_FILE: tls.certFile,
        ETCD_KEY_FILE: tls.keyFile,
        TORTIE_DATASTORE_TIMEOUT_MS: '3000',
      });
      const reasons: string[] = [];
      const ds = await openDatastore(config, {
        etcdTransport: 'http',
        onTransportFallback: (reason) => reasons.push(reason),
      });
      try {
        await ds.create(pool('gw-fallback', '10.248.0.0/24'));
        expect((await ds.get('IPPool', 'gw-fallback'))?.spec.cidr).toBe('10.248.0.0/24');
      } finally {
        await ds.close();
      }
      expect(reasons).toHaveLength(1);
      expect(reasons[0]).toMatch(/HTTP\/JSON gateway cannot serve this client: .*; using gRPC$/);

      // Asked for gRPC, nothing falls back and nothing is said.
      const quiet: string[] = [];
      const direct = await openDatastore(config, {
        etcdTransport: 'grpc',
        onTransportFallback: (reason) => quiet.push(reason),
      });
      await direct.close();
      expect(quiet).toEqual([]);
    } finally {
      await etcd.stop();
    }
  }, 60_000);
});
