// `tortie node run` after an error nobody caught (issue #15): it logs it at level fatal, shuts down through
// the graceful path — its BGP connection closed WITHOUT a NOTIFICATION, so a graceful-restart peer keeps
// its routes (RFC 4724), and its control socket removed — and exits 1. Never silently on, never SIGTERM's
// Cease. The control case proves the peer below can see a Cease: SIGTERM sends one and exits 0.
// `tortie bgp speaker` likewise: fatal log, exit 1, its session closed with no NOTIFICATION.
//
// The peer is a raw BGP speaker written here (OPEN, KEEPALIVE, then it records every message), so what
// tortie sent before the connection dropped is known byte by byte. The error is injected by a preload
// module this test writes (`node --import`): on SIGUSR2 it rejects a promise nobody awaits, or throws from
// a callback — nothing in tortie itself knows about it.

import { calicoResource } from '../harness/resources.js';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { queryControl } from '../../src/agent/control.js';
import { openEtcd } from '../../src/datastore/etcd.js';
import type { Datastore } from '../../src/datastore/types.js';
import { addressBlock } from '../harness/addresses.js';
import { BUILT_CLI } from '../harness/cli.js';
import { freePort, requireEtcd, startEtcd, type EtcdInstance } from '../harness/etcd.js';
import { waitFor } from '../harness/index.js';
import { BgpStreamSplitter } from '../harness/relay.js';

const block = addressBlock(import.meta.url);
const NODE = { name: 'crash-node', ip: block.host(1) };
const PEER = { address: block.host(2), as: 65001 };
const haveEtcd = requireEtcd();

// ---- the raw peer ------------------------------------------------------------------------------------

const MESSAGE_TYPE = { OPEN: 1, UPDATE: 2, NOTIFICATION: 3, KEEPALIVE: 4 } as const;

/** One BGP message: marker, length, type, body (RFC 4271 §4.1). */
function message(type: number, body: number[]): Buffer {
  return Buffer.from([
    ...Array<number>(16).fill(0xff),
    (19 + body.length) >> 8,
    (19 + body.length) & 0xff,
    type,
    ...body,
  ]);
}

/** OPEN: version 4, AS, hold 90 s, BGP id 198.18.36.2; capabilities multiprotocol IPv4 unicast and 4-octet AS. */
function openMessage(as: number): Buffer {
  const capabilities = [1, 4, 0, 1, 0, 1, 65, 4, (as >>> 24) & 0xff, (as >>> 16) & 0xff, (as >>> 8) & 0xff, as & 0xff];
  return message(MESSAGE_TYPE.OPEN, [
    4,
    as >> 8,
    as & 0xff,
    0,
    90,
    198,
    18,
    36,
    2,
    capabilities.length + 2,
    2,
    capabilities.length,
    ...capabilities,
  ]);
}

interface PeerConnection {
  /** Message types received, in order, with NOTIFICATION code/subcode. */
  received: Array<{ type: number; code?: number; subcode?: number }>;
  closed: Promise<void>;
  isClosed: () => boolean;
}

/** Accepts connections on PEER.address:179, answers OPEN + KEEPALIVE, records everything tortie sends. */
function startRawPeer(): Promise<{ server: Server; connections: PeerConnection[]; sockets: Set<Socket> }> {
  const connections: PeerConnection[] = [];
  const sockets = new Set<Socket>();
  const server = createServer((socket) => {
    sockets.add(socket);
    const splitter = new BgpStreamSplitter();
    let closed = false;
    const connection: PeerConnection = {
      received: [],
      closed: new Promise((resolve) => socket.once('close', () => resolve())),
      isClosed: () => closed,
    };
    socket.once('close', () => {
      closed = true;
      sockets.delete(socket);
    });
    socket.on('error', () => undefined);
    connections.push(connection);
    socket.on('data', (chunk: Buffer) => {
      for (const bytes of splitter.push(chunk)) {
        const type = bytes[18]!;
        connection.received.push(
          type === MESSAGE_TYPE.NOTIFICATION ? { type, code: bytes[19]!, subcode: bytes[20]! } : { type },
        );
        if (type === MESSAGE_TYPE.OPEN)
          socket.write(Buffer.concat([openMessage(PEER.as), message(MESSAGE_TYPE.KEEPALIVE, [])]));
      }
    });
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(179, PEER.address, () => resolve({ server, connections, sockets }));
  });
}

// ---- the agent -----------------------------------------------------------------------------------------

const PRELOAD = `
process.on('SIGUSR2', () => {
  if (process.env.CRASH_KIND === 'exception') setImmediate(() => { throw new Error('injected by the test: an uncaught exception'); });
  else void Promise.reject(new Error('injected by the test: an unhandled rejection'));
});
`;

interface AgentRun {
  child: ChildProcess;
  socket: string;
  log: () => string;
  exit: Promise<number | null>;
}

/** SIGKILL by PID (no Cease: the raw peer's record stays as the next test expects), waiting for each exit. */
async function killAll(children: ChildProcess[]): Promise<void> {
  await Promise.all(
    children.map(async (child) => {
      if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
      const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
      process.kill(child.pid, 'SIGKILL');
      await exited;
    }),
  );
}

describe.skipIf(!haveEtcd)('tortie node run after an unhandled error', () => {
  let etcd: EtcdInstance;
  let ds: Datastore;
  let dir: string;
  let preload: string;
  let peer: Awaited<ReturnType<typeof startRawPeer>>;
  const children: ChildProcess[] = [];

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'tortie-agent-crash-'));
    preload = join(dir, 'crash-preload.mjs');
    writeFileSync(preload, PRELOAD);
    etcd = await startEtcd();
    ds = await openEtcd({ endpoints: [etcd.endpoint], timeoutMs: 5000 });
    await ds.create(
      calicoResource('BGPConfiguration', 'default', {
        bindMode: 'NodeIP',
        nodeToNodeMeshEnabled: false,
        asNumber: 64512,
      }),
    );
    await ds.create(calicoResource('BGPPeer', 'raw-peer', { peerIP: PEER.address, asNumber: PEER.as }));
    peer = await startRawPeer();
  }, 60_000);

  // Each test's agent ends with the test (SIGKILL by PID), so a failed test leaves no agent holding the next one's port.
  afterEach(async () => {
    await killAll(children.splice(0));
  });

  afterAll(async () => {
    for (const socket of peer?.sockets ?? []) socket.destroy();
    await new Promise<void>((resolve) => (peer ? peer.server.close(() => resolve()) : resolve()));
    await ds?.close().catch(() => undefined);
    await etcd?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  }, 60_000);

  /** Starts the agent and waits until its session with the raw peer is Established. */
  async function startAgent(
    run: string,
    crashKind: string,
    healthPort = 0,
  ): Promise<AgentRun & { connection: PeerConnection }> {
    const socket = join(dir, `${run}.ctl`);
    const env = {
      PATH: process.env.PATH ?? '/usr/bin:/bin',
      NODENAME: NODE.name,
      TORTIE_CNI_SOCKET: 'off', // not a CNI test: no agent binds the host's /var/run/tortie/cni.sock
      IP: `${NODE.ip}/24`,
      DATASTORE_TYPE: 'etcdv3',
      ETCD_ENDPOINTS: etcd.endpoint,
      TORTIE_DATAPLANE: 'none',
      TORTIE_CTL_SOCKET: socket,
      TORTIE_HEALTH_PORT: String(healthPort),
      TORTIE_LOG_LEVEL: 'info',
      CALICO_IPV4POOL_CIDR: '10.244.0.0/16',
      CALICO_IPV4POOL_IPIP: 'Never',
      CRASH_KIND: crashKind,
    };
    const before = peer.connections.length;
    const child = spawn(process.execPath, ['--import', pathToFileURL(preload).href, BUILT_CLI, 'node', 'run'], {
      env,
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    children.push(child);
    let log = '';
    child.stderr!.on('data', (d: Buffer) => (log += d.toString()));
    const exit = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    try {
      await waitFor(
        async () => {
          const answer = await queryControl(socket, { command: 'status' }, 1000).catch(() => null);
          return (
            answer?.ok &&
            'status' in answer &&
            answer.status.peers.some((p) => p.address === PEER.address && p.bgpState === 'Established')
          );
        },
        { timeoutMs: 30_000, intervalMs: 100, what: `${run}: the session with the raw peer Established` },
      );
    } catch (error) {
      throw new Error(`${(error as Error).message}\n${log.slice(-3000)}`);
    }
    const connection = peer.connections.slice(before).find((c) => !c.isClosed());
    expect(connection, 'the raw peer holds the open connection').toBeDefined();
    return { child, socket, log: () => log, exit, connection: connection! };
  }

  for (const kind of ['rejection', 'exception'] as const) {
    it(`an unhandled ${kind}: fatal log, no NOTIFICATION to the peer, control socket removed, exit 1`, async () => {
      const agent = await startAgent(`crash-${kind}`, kind);
      const receivedBefore = agent.connection.received.length;
      process.kill(agent.child.pid!, 'SIGUSR2');
      const status = await Promise.race([
        agent.exit,
        new Promise<'hung'>((resolve) => setTimeout(() => resolve('hung'), 20_000)),
      ]);
      expect(status, agent.log().slice(-3000)).toBe(1);
      await agent.connection.closed;
      const after = agent.connection.received.slice(receivedBefore);
      expect(
        after.filter((m) => m.type === MESSAGE_TYPE.NOTIFICATION),
        'no NOTIFICATION (Cease) may reach the peer',
      ).toEqual([]);
      const fatal = agent
        .log()
        .split('\n')
        .filter((line) => line.startsWith('{'))
        .map((line) => JSON.parse(line) as { level: number; msg: string; err?: string })
        .find((entry) => entry.level === 60);
      expect(fatal, agent.log().slice(-3000)).toMatchObject({
        msg: expect.stringMatching(/unhandled error/),
        err: expect.stringContaining(
          `injected by the test: an ${kind === 'rejection' ? 'unhandled rejection' : 'uncaught exception'}`,
        ),
      });
      expect(agent.log()).toMatch(/stopping gracefully: BGP connections closed without NOTIFICATION/);
      expect(existsSync(agent.socket), 'the graceful path removed the control socket').toBe(false);
    }, 60_000);
  }

  it('the running agent answers GET // and a 1 MB header with a 4xx, and /liveness with 200 afterwards', async () => {
    const port = await freePort();
    const agent = await startAgent('health', 'none', port);
    const raw = (bytes: string) =>
      new Promise<string>((resolve) => {
        const socket = connect({ host: '127.0.0.1', port }, () => socket.write(bytes));
        let text = '';
        socket.on('data', (d: Buffer) => (text += d.toString('latin1')));
        socket.on('error', () => undefined);
        socket.on('close', () => resolve(text.split('\r\n')[0] ?? ''));
        setTimeout(() => socket.destroy(), 5000);
      });
    expect(await raw('GET // HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n')).toBe('HTTP/1.1 404 Not Found');
    expect(await raw(`GET /liveness HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(1024 * 1024)}\r\n\r\n`)).toMatch(
      /^HTTP\/1\.1 431/,
    );
    const live = await fetch(`http://127.0.0.1:${port}/liveness`);
    expect(live.status).toBe(200);
    expect(agent.child.exitCode).toBeNull();
    process.kill(agent.child.pid!, 'SIGTERM');
    expect(await agent.exit).toBe(0);
  }, 60_000);

  it('the control case: SIGTERM sends Cease to the peer and exits 0 (the peer above would have seen one)', async () => {
    const agent = await startAgent('sigterm', 'none');
    process.kill(agent.child.pid!, 'SIGTERM');
    expect(await agent.exit).toBe(0);
    await agent.connection.closed;
    expect(agent.connection.received.filter((m) => m.type === MESSAGE_TYPE.NOTIFICATION)).toEqual([
      { type: MESSAGE_TYPE.NOTIFICATION, code: 6, subcode: expect.any(Number) },
    ]);
  }, 60_000);
});

describe('tortie bgp speaker after an unhandled error', () => {
  let dir: string;
  let preload: string;
  let peer: Awaited<ReturnType<typeof startRawPeer>>;
  const children: ChildProcess[] = [];

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'tortie-speaker-crash-'));
    preload = join(dir, 'crash-preload.mjs');
    writeFileSync(preload, PRELOAD);
    peer = await startRawPeer();
  });

  // Each test's agent ends with the test (SIGKILL by PID), so a failed test leaves no agent holding the next one's port.
  afterEach(async () => {
    await killAll(children.splice(0));
  });

  afterAll(async () => {
    for (const socket of peer?.sockets ?? []) socket.destroy();
    await new Promise<void>((resolve) => (peer ? peer.server.close(() => resolve()) : resolve()));
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('logs it at fatal and exits 1; its sessions close without a NOTIFICATION', async () => {
    const args = [
      'bgp',
      'speaker',
      '--router-id',
      '198.18.36.3',
      '--as',
      '64512',
      '--no-listen',
      '--peer',
      `${PEER.address},as=${PEER.as},local=${block.host(3)}`,
      '--json',
    ];
    const child = spawn(process.execPath, ['--import', pathToFileURL(preload).href, BUILT_CLI, ...args], {
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin', CRASH_KIND: 'rejection' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    children.push(child);
    let log = '';
    child.stderr!.on('data', (d: Buffer) => (log += d.toString()));
    let events = '';
    child.stdout!.on('data', (d: Buffer) => (events += d.toString()));
    const exit = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    await waitFor(async () => /"to":"Established"/.test(events), {
      timeoutMs: 20_000,
      intervalMs: 50,
      what: `the speaker's session Established\n${events}\n${log}`,
    });
    const connection = peer.connections.find((c) => !c.isClosed());
    expect(connection).toBeDefined();
    process.kill(child.pid!, 'SIGUSR2');
    expect(
      await Promise.race([exit, new Promise<'hung'>((resolve) => setTimeout(() => resolve('hung'), 20_000))]),
      log,
    ).toBe(1);
    await connection!.closed;
    expect(connection!.received.filter((m) => m.type === MESSAGE_TYPE.NOTIFICATION)).toEqual([]);
    expect(log).toMatch(/"level":60.*injected by the test: an unhandled rejection/);
  }, 60_000);
});
