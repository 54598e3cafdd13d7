// BGP passwords in the node agent: BGPPeer password.secretKeyRef and BGPConfiguration nodeMeshPassword
// resolved from mounted Secret files (the etcd form, src/agent/secrets.ts) into the Speaker's peers; a
// changed Secret re-keys only the peers that use it; a missing one keeps the peer from starting (shown in
// status, with the reason); the kernel's TCP-MD5 counters in INFO; and no password in logs or status.

import { mkdtempSync, rmSync, mkdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { fileSecretSource, kubeSecretSource, type SecretApi } from '../../../src/agent/secrets.js';
import { MemoryDatastore } from '../../../src/datastore/memory.js';
import { res, testAgent, until } from '../helpers/agent-fixtures.js';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function secretsDir(): { dir: string; put(name: string, key: string, value: string): void } {
  const dir = mkdtempSync(join(tmpdir(), 'tortie-secrets-'));
  dirs.push(dir);
  return {
    dir,
    put(name, key, value) {
      mkdirSync(join(dir, name), { recursive: true });
      writeFileSync(join(dir, name, key), value);
    },
  };
}

const NETSTAT = (failures: number) =>
  `TcpExt: TCPMD5NotFound TCPMD5Unexpected TCPMD5Failure TCPMinTTLDrop\nTcpExt: 0 0 ${failures} 0\n`;

async function start(dir: string, ds: MemoryDatastore, netstat: { text: string }) {
  const logs: string[] = [];
  const sink = new Writable({ write: (chunk: Buffer, _enc, done) => (logs.push(chunk.toString()), done()) });
  const { agent, speakers } = testAgent({ IP: '198.18.0.11/24' }, ds, {
    logger: pino({ level: 'debug' }, sink),
    secrets: fileSecretSource(dir, 10),
    readNetstat: () => netstat.text,
  });
  await agent.start();
  return { agent, logs, speaker: () => speakers[speakers.length - 1]! };
}

async function cluster(): Promise<MemoryDatastore> {
  const ds = new MemoryDatastore();
  await ds.create(res('IPPool', 'pool', { cidr: '10.244.0.0/16', ipipMode: 'Never' }));
  await ds.create(res('Node', 'node-2', { bgp: { ipv4Address: '198.18.0.12/24' } }));
  await ds.create(
    res('BGPConfiguration', 'default', { nodeMeshPassword: { secretKeyRef: { name: 'mesh', key: 'password' } } }),
  );
  await ds.create(
    res('BGPPeer', 'office', {
      peerIP: '198.18.0.1',
      asNumber: 65001,
      password: { secretKeyRef: { name: 'office-router', key: 'pw' } },
    }),
  );
  return ds;
}

describe('Agent: BGP passwords from Secrets (etcd: mounted Secret files)', () => {
  it('gives each peer its password; a changed Secret re-keys only the peers that use it', async () => {
    const s = secretsDir();
    s.put('mesh', 'password', 'mesh-secret-1');
    s.put('office-router', 'pw', 'office-secret-1');
    const { speaker, logs, agent } = await start(s.dir, await cluster(), { text: NETSTAT(0) });
    const byAddress = () => new Map(speaker().peers.map((p) => [p.address, p]));
    await until(
      () => byAddress().get('198.18.0.1')?.password === 'office-secret-1',
      'the office peer with its password',
    );
    expect(byAddress().get('198.18.0.12')?.password).toBe('mesh-secret-1');
    const meshBefore = byAddress().get('198.18.0.12');

    s.put('office-router', 'pw', 'office-secret-2');
    await until(() => byAddress().get('198.18.0.1')?.password === 'office-secret-2', 'the office peer re-keyed');
    // The mesh peer's spec is unchanged field by field: Speaker.setPeers leaves its session alone.
    expect(byAddress().get('198.18.0.12')).toEqual(meshBefore);

    const everything = logs.join('') + JSON.stringify(agent.status());
    for (const value of ['mesh-secret-1', 'office-secret-1', 'office-secret-2'])
      expect(everything).not.toContain(value);
    expect(logs.join('')).toContain('re-keying');
  });

  it('a missing Secret: the peer is not started (never unsigned); status shows it and why, naming Secret and key', async () => {
    const s = secretsDir();
    s.put('mesh', 'password', 'mesh-secret-1');
    const { speaker, agent } = await start(s.dir, await cluster(), { text: NETSTAT(0) });
    await until(() => speaker().peers.some((p) => p.address === '198.18.0.12'), 'the mesh peer');
    expect(speaker().peers.map((p) => p.address)).not.toContain('198.18.0.1');
    const row = agent.status().peers.find((p) => p.address === '198.18.0.1');
    expect(row?.bgpState).toBe('Idle');
    expect(row?.lastError).toMatch(
      /not started: Secret office-router key pw: cannot read .*office-router\/pw \(ENOENT\)/,
    );
    // Mounting it later starts the peer.
    s.put('office-router', 'pw', 'office-secret-1');
    await until(
      () => speaker().peers.some((p) => p.address === '198.18.0.1' && p.password === 'office-secret-1'),
      'the office peer once its Secret exists',
    );
  });

  it('INFO of a signed peer that is not up says what the kernel counted (wrong password)', async () => {
    const s = secretsDir();
    s.put('mesh', 'password', 'mesh-secret-1');
    s.put('office-router', 'pw', 'office-secret-1');
    const netstat = { text: NETSTAT(5) };
    const { speaker, agent } = await start(s.dir, await cluster(), netstat);
    await until(() => speaker().peers.some((p) => p.address === '198.18.0.1'), 'the office peer');
    expect(agent.status().peers.find((p) => p.address === '198.18.0.1')?.info).toBe('Active');
    netstat.text = NETSTAT(8);
    expect(agent.status().peers.find((p) => p.address === '198.18.0.1')?.info).toMatch(
      /^Active; kernel: wrong password: .*\(TCPMD5Failure \+3\)$/,
    );
    speaker().states.set('198.18.0.1', 'Established');
    expect(agent.status().peers.find((p) => p.address === '198.18.0.1')?.info).toBe('Established');
  });
});

describe('Kubernetes Secret source', () => {
  function fakeApi(data: Record<string, Record<string, string>>) {
    const events: Array<(name: string) => void> = [];
    const api: SecretApi = {
      getSecretData: async (namespace, name) => {
        if (namespace !== 'tortie-system') throw Object.assign(new Error('forbidden'), { code: 403 });
        if (!(name in data)) throw Object.assign(new Error('not found'), { code: 404 });
        return data[name];
      },
      watchSecrets: async (_ns, onEvent) => {
        events.push(onEvent);
        return { abort: () => undefined };
      },
    };
    return { api, emit: (name: string) => events.forEach((e) => e(name)) };
  }

  it('reads base64 data of a Secret in its namespace; errors name Secret and key, never a value', async () => {
    const { api } = fakeApi({ office: { pw: Buffer.from('s3cret').toString('base64') } });
    const source = kubeSecretSource(api, 'tortie-system');
    expect(await source.read({ name: 'office', key: 'pw' })).toBe('s3cret');
    await expect(source.read({ name: 'office', key: 'other' })).rejects.toThrow(
      /Secret office key other: the Secret in namespace tortie-system has no key other/,
    );
    await expect(source.read({ name: 'nope', key: 'pw' })).rejects.toThrow(
      /Secret nope key pw: cannot read the Secret in namespace tortie-system \(HTTP 404\)/,
    );
  });

  it("a watch event on the namespace's Secrets calls back (the agent then re-reads and compares)", async () => {
    const { api, emit } = fakeApi({});
    const seen: number[] = [];
    const stop = kubeSecretSource(api, 'tortie-system').watch(() => seen.push(1));
    await new Promise((resolve) => setImmediate(resolve));
    emit('office');
    expect(seen).toHaveLength(1);
    stop();
  });

  it('the file source refuses names that would leave its directory', async () => {
    await expect(fileSecretSource('/etc/tortie/bgp-secrets').read({ name: '..', key: 'passwd' })).rejects.toThrow(
      /not a valid Secret name and key/,
    );
  });
});
