// The control socket: a real Unix socket in a temporary directory — mode 0600, parent directory created,
// status/routes answered, bad requests refused, a stale socket replaced, a live agent not clobbered, and the
// client's errors (no socket, stale socket, no answer, not JSON) naming the path; then hostile clients
// (issue #15: garbage, 1 MB lines, requests that never end, idle connections over the cap, many at once,
// answers that cannot be encoded) get an error answer or a close, and a good request is served after.

import { holdIdleConnections, stillOpen } from '../helpers/sockets.js';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import fc from 'fast-check';
import net from 'node:net';
import { mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  ControlError,
  connectError,
  parseControlRequest,
  queryControl,
  serveControl,
  type ControlProvider,
  type ControlServer,
} from '../../../src/agent/control.js';
import type { AgentStatus, RouteRow } from '../../../src/agent/types.js';
import { FakeClock } from '../../../bgp/clock.js';

const STATUS: AgentStatus = {
  summary: 'tortie is running.',
  node: 'node-1',
  version: '0.1.0',
  pid: 4242,
  startedAt: '2026-11-22T10:00:00.000Z',
  ipv4Address: '172.17.8.101/24',
  asNumber: 64512,
  routerId: '172.17.8.101',
  clusterId: null,
  datastore: { type: 'etcdv3', connected: true },
  ready: true,
  peers: [],
  blocks: ['10.244.1.0/26'],
  dataplane: { mode: 'none', hostInterface: null },
  warnings: [],
};

const ROUTES: RouteRow[] = [
  { prefix: '10.244.1.0/26', nextHop: null, asPath: [], from: 'local', best: true, stale: false, inKernel: true },
];
const provider = { status: () => STATUS, routes: () => ROUTES };

let dir: string;
const servers: Array<{ close(): Promise<void> }> = [];

/** A plain net.Server on `path` that `close()` stops, dropping its open connections. */
async function fakeServer(path: string, onConnection: (socket: net.Socket) => void): Promise<void> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on('error', () => undefined);
    onConnection(socket);
  });
  await new Promise<void>((resolve) => server.listen(path, resolve));
  servers.push({
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const socket of sockets) socket.destroy();
      }),
  });
}

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'tortie-ctl-'));
});

afterEach(async () => {
  for (const server of servers.splice(0)) await server.close();
  await rm(dir, { recursive: true, force: true });
});

async function serve(path: string, p: ControlProvider = provider): Promise<ControlServer> {
  const server = await serveControl(path, p);
  servers.push(server);
  return server;
}

/** Sends raw bytes and returns everything the server answers before closing. */
function raw(path: string, bytes: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = net.createConnection(path, () => socket.write(bytes));
    let text = '';
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => (text += chunk));
    socket.on('end', () => resolve(text));
    socket.on('error', reject);
    socket.setTimeout(3000, () => reject(new Error('no answer')));
  });
}

describe('serveControl', () => {
  it('creates the parent directory (0755) and the socket (0600), and answers status and routes', async () => {
    const path = join(dir, 'run', 'tortie', 'tortie.ctl');
    await serve(path);
    const socketStats = await stat(path);
    expect(socketStats.isSocket()).toBe(true);
    expect(socketStats.mode & 0o777).toBe(0o600);
    expect((await stat(join(dir, 'run', 'tortie'))).mode & 0o777).toBe(0o755);
    expect(await queryControl(path, { command: 'status' })).toEqual({ ok: true, status: STATUS });
    expect(await queryControl(path, { command: 'routes' })).toEqual({ ok: true, routes: ROUTES });
  });

  it('leaves no temporary socket name behind', async () => {
    const path = join(dir, 'tortie.ctl');
    await serve(path);
    const { readdir } = await import('node:fs/promises');
    expect(await readdir(dir)).toEqual(['tortie.ctl']);
  });

  it('answers an unknown command, non-JSON and an over-long request with ok:false naming what is accepted', async () => {
    const path = join(dir, 'tortie.ctl');
    await serve(path);
    expect(JSON.parse(await raw(path, '{"command":"reboot"}\n'))).toEqual({
      ok: false,
      error: 'command "reboot" is not one of status, routes, stop',
    });
    expect(JSON.parse(await raw(path, 'status\n'))).toEqual({
      ok: false,
      error: 'request "status" is not JSON; send {"command":"status"} or {"command":"routes"}',
    });
    expect(JSON.parse(await raw(path, 'x'.repeat(5000)))).toEqual({
      ok: false,
      error: 'request longer than 4096 bytes; send one JSON line like {"command":"status"}',
    });
  });

  it('answers ok:false when the agent throws, and awaits a provider that returns promises', async () => {
    const path = join(dir, 'tortie.ctl');
    await serve(path, {
      status: () => {
        throw new Error('datastore not synced yet');
      },
      routes: async () => ROUTES,
    });
    expect(await queryControl(path, { command: 'status' })).toEqual({ ok: false, error: 'datastore not synced yet' });
    expect(await queryControl(path, { command: 'routes' })).toEqual({ ok: true, routes: ROUTES });
  });

  it('replaces a stale socket left by a dead agent', async () => {
    const path = join(dir, 'tortie.ctl');
    // A socket file nobody listens on: a child binds it and is killed before it can clean up.
    const { spawnSync } = await import('node:child_process');
    const child = spawnSync(
      process.execPath,
      [
        '-e',
        `require('net').createServer().listen(${JSON.stringify(path)}, () => process.kill(process.pid, 'SIGKILL'))`,
      ],
      { timeout: 10_000 },
    );
    expect(child.signal).toBe('SIGKILL');
    expect((await stat(path)).isSocket()).toBe(true);
    await expect(queryControl(path, { command: 'status' })).rejects.toMatchObject({ code: 'ECONNREFUSED' });
    await serve(path);
    expect(await queryControl(path, { command: 'status' })).toEqual({ ok: true, status: STATUS });
  });

  it('refuses to start when another agent answers on the path, naming it, and leaves that agent working', async () => {
    const path = join(dir, 'tortie.ctl');
    await serve(path);
    await expect(serveControl(path, provider)).rejects.toThrow(
      `another tortie agent is already answering on ${path} (node node-1, pid 4242); stop it first, or set TORTIE_CTL_SOCKET to another path`,
    );
    expect(await queryControl(path, { command: 'status' })).toEqual({ ok: true, status: STATUS });
  });

  it('refuses a path too long for a Unix socket, saying why', async () => {
    const path = join(dir, 'x'.repeat(100));
    await expect(serveControl(path, provider)).rejects.toThrow(
      /^control socket path .* is too long: a Unix socket path may have 107 bytes .* choose a shorter TORTIE_CTL_SOCKET$/,
    );
  });

  it('refuses a path that is a regular file', async () => {
    const path = join(dir, 'tortie.ctl');
    await writeFile(path, 'not a socket');
    await expect(serveControl(path, provider)).rejects.toThrow(
      `control socket path ${path} exists and is not a socket; remove it or set TORTIE_CTL_SOCKET to another path`,
    );
  });

  it("removes its socket on close, but not a newer agent's socket at the same path", async () => {
    const path = join(dir, 'tortie.ctl');
    const first = await serveControl(path, provider);
    await first.close();
    expect(existsSync(path)).toBe(false);

    const old = await serveControl(path, provider);
    // A newer agent takes over the path (as if the old one were stuck): unlink + serve again.
    const { unlink } = await import('node:fs/promises');
    await unlink(path);
    await serve(path, { ...provider, status: () => ({ ...STATUS, pid: 5555 }) });
    await old.close();
    expect(existsSync(path)).toBe(true);
    const answer = await queryControl(path, { command: 'status' });
    expect(answer.ok && 'status' in answer ? answer.status.pid : null).toBe(5555);
  });
});

describe('queryControl errors', () => {
  it('ENOENT: no tortie agent is running (no socket at …)', async () => {
    const path = join(dir, 'missing.ctl');
    const error = await queryControl(path, { command: 'status' }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ControlError);
    expect(error).toMatchObject({ code: 'ENOENT', path, message: `no tortie agent is running (no socket at ${path})` });
  });

  it('times out naming the socket and the time when nothing answers', async () => {
    const path = join(dir, 'silent.ctl');
    await fakeServer(path, () => undefined); // accepts, never answers
    const started = Date.now();
    const error = await queryControl(path, { command: 'status' }, 150).catch((e: unknown) => e);
    expect(Date.now() - started).toBeLessThan(2000);
    expect(error).toMatchObject({
      code: 'ETIMEDOUT',
      message: `the tortie agent on ${path} did not answer within 150 ms`,
    });
  });

  it('the time bound runs on the injected clock: ETIMEDOUT exactly when timeoutMs has passed', async () => {
    const path = join(dir, 'silent-fake.ctl');
    await fakeServer(path, () => undefined); // accepts, never answers
    const clock = new FakeClock();
    const answer = queryControl(path, { command: 'status' }, 5000, clock).catch((e: unknown) => e);
    expect(clock.pending).toBe(1);
    clock.advance(4999);
    expect(clock.pending).toBe(1); // not yet
    clock.advance(1);
    expect(await answer).toMatchObject({
      code: 'ETIMEDOUT',
      message: `the tortie agent on ${path} did not answer within 5000 ms`,
    });
  });

  it('reports an answer that is not JSON, and a close without an answer', async () => {
    const path = join(dir, 'odd.ctl');
    let reply = 'hello\n';
    await fakeServer(path, (socket) => socket.end(reply));
    await expect(queryControl(path, { command: 'status' })).rejects.toMatchObject({
      code: 'EPROTO',
      message: `the process on ${path} answered something that is not JSON: "hello"`,
    });
    reply = '';
    await expect(queryControl(path, { command: 'status' })).rejects.toMatchObject({
      code: 'EPROTO',
      message: `the tortie agent on ${path} closed the connection without a complete answer`,
    });
  });
});

describe('permissions and connect errors', () => {
  it('the 0600 socket refuses a non-root user (checked as uid 65534 when this test runs as root)', async (context) => {
    if (process.getuid?.() !== 0) context.skip();
    const path = join(dir, 'tortie.ctl');
    await serve(path);
    const { chmod } = await import('node:fs/promises');
    await chmod(dir, 0o755); // mkdtemp makes 0700; let the other user reach the socket itself
    const { spawnSync } = await import('node:child_process');
    const script = `require('net').createConnection(${JSON.stringify(path)}).on('error', (e) => { console.log(e.code); process.exit(0) }).on('connect', () => { console.log('CONNECTED'); process.exit(0) })`;
    const child = spawnSync(process.execPath, ['-e', script], {
      uid: 65534,
      gid: 65534,
      timeout: 10_000,
      encoding: 'utf8',
    });
    expect(child.stdout.trim()).toBe('EACCES');
  });

  const cases: Array<[string, string]> = [
    ['ENOENT', 'no tortie agent is running (no socket at /run/x.ctl)'],
    [
      'ECONNREFUSED',
      'no tortie agent is running (socket /run/x.ctl exists but nothing accepts connections on it; it was left by an agent that exited)',
    ],
    [
      'EACCES',
      "permission denied on the agent's socket /run/x.ctl: tortie node status needs root (the socket is mode 0600)",
    ],
    [
      'EPERM',
      "permission denied on the agent's socket /run/x.ctl: tortie node status needs root (the socket is mode 0600)",
    ],
    ['EMFILE', 'cannot reach the tortie agent on /run/x.ctl: connect EMFILE'],
  ];
  it.each(cases)('%s → %s', (code, message) => {
    expect(cases.length).toBeGreaterThan(0);
    const error = connectError('/run/x.ctl', Object.assign(new Error(`connect ${code}`), { code }));
    expect(error).toMatchObject({ code, path: '/run/x.ctl', message });
  });

  it('close() does not wait for a client that connected and said nothing', async () => {
    const path = join(dir, 'tortie.ctl');
    const server = await serveControl(path, provider);
    const idle = net.createConnection(path);
    idle.on('error', () => undefined);
    await new Promise<void>((resolve) => idle.once('connect', () => resolve()));
    const started = Date.now();
    await server.close();
    expect(Date.now() - started).toBeLessThan(1000);
    idle.destroy();
  });
});

describe('parseControlRequest', () => {
  it('accepts exactly the documented commands', () => {
    expect(parseControlRequest('{"command":"status"}')).toEqual({ command: 'status' });
    expect(parseControlRequest('{"command":"routes","extra":1}')).toEqual({ command: 'routes' });
    expect(() => parseControlRequest('{"command":"toString"}')).toThrow(
      'command "toString" is not one of status, routes, stop',
    );
    expect(() => parseControlRequest('{}')).toThrow('command null is not one of status, routes, stop');
    expect(() => parseControlRequest('[1]')).toThrow('command null is not one of status, routes, stop');
    expect(parseControlRequest('{"command":"stop"}')).toEqual({ command: 'stop', graceful: false });
    expect(parseControlRequest('{"command":"stop","graceful":true}')).toEqual({ command: 'stop', graceful: true });
    expect(() => parseControlRequest('{"command":"stop","graceful":"yes"}')).toThrow(
      '"graceful" is "yes"; send true or false',
    );
  });
});

// ---- hostile or broken clients (issue #15): an error answer or a close, never a throw; good requests still served ----

/** Like raw(), but never rejects: what came back, and whether the server closed (vs. our own bound). */
function exchange(
  path: string,
  bytes: string | Buffer,
  waitMs = 3000,
): Promise<{ text: string; closedByServer: boolean }> {
  return new Promise((resolve) => {
    const socket = net.createConnection(path, () => socket.write(bytes));
    let text = '';
    let settled = false;
    const finish = (closedByServer: boolean) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      resolve({ text, closedByServer });
    };
    const timer = setTimeout(() => finish(false), waitMs);
    socket.on('data', (chunk: Buffer) => (text += chunk.toString('utf8')));
    socket.on('error', () => finish(true));
    socket.on('close', () => finish(true));
  });
}

async function expectServing(path: string): Promise<void> {
  expect(await queryControl(path, { command: 'status' })).toEqual({ ok: true, status: STATUS });
}

describe('serveControl against hostile clients', () => {
  it('answers every kind of garbage with ok:false and one JSON line, then serves a good request', async () => {
    const path = join(dir, 'tortie.ctl');
    await serve(path);
    const garbage = [
      '{\n',
      'null\n',
      '[]\n',
      '"status"\n',
      '{"command":"__proto__"}\n',
      '{"command":"constructor"}\n',
      '{"command":"hasOwnProperty"}\n',
      '{"command":["status"]}\n',
      '{"command":"stop","graceful":"yes"}\n',
      '{"command":"stop"}\n', // this provider cannot be stopped
      `${'['.repeat(2000)}${']'.repeat(2000)}\n`,
      '\n',
      Buffer.concat([Buffer.from([0xff, 0xfe, 0x00, 0xc3]), Buffer.from('\n')]),
    ];
    expect(garbage.length).toBeGreaterThan(0);
    for (const bytes of garbage) {
      const { text, closedByServer } = await exchange(path, bytes);
      expect(closedByServer, JSON.stringify(String(bytes).slice(0, 40))).toBe(true);
      const lines = text.split('\n');
      expect(lines.length, text).toBe(2);
      expect(JSON.parse(lines[0]!), text).toMatchObject({ ok: false, error: expect.any(String) });
    }
    await expectServing(path);
  });

  it('refuses a 1 MB line without buffering it all, with or without its newline', async () => {
    const path = join(dir, 'tortie.ctl');
    await serve(path);
    for (const bytes of ['x'.repeat(1024 * 1024), `{"command":"${'s'.repeat(1024 * 1024)}"}\n`]) {
      const { text, closedByServer } = await exchange(path, bytes);
      expect(closedByServer).toBe(true);
      expect(JSON.parse(text.split('\n')[0]!)).toEqual({
        ok: false,
        error: 'request longer than 4096 bytes; send one JSON line like {"command":"status"}',
      });
    }
    await expectServing(path);
  });

  it('closes a client whose request never ends, within the request bound', async () => {
    const path = join(dir, 'tortie.ctl');
    servers.push(await serveControl(path, provider, { limits: { requestTimeoutMs: 200 } }));
    const { text, closedByServer } = await exchange(path, '{"command":"sta', 3000);
    expect(closedByServer).toBe(true);
    expect(text).toBe('');
    await expectServing(path);
  });

  it('keeps serving while more clients than the connection bound hold connections open', async () => {
    const path = join(dir, 'tortie.ctl');
    servers.push(await serveControl(path, provider, { limits: { maxConnections: 8 } }));
    const idle = await holdIdleConnections(() => net.createConnection(path), 40);
    try {
      expect(await stillOpen(idle, 8)).toBeLessThanOrEqual(8);
      await expectServing(path);
    } finally {
      for (const socket of idle) socket.destroy();
    }
  });

  it('answers many concurrent clients or closes them, and serves a good request afterwards', async () => {
    const path = join(dir, 'tortie.ctl');
    await serve(path);
    const outcomes = await Promise.all(
      Array.from({ length: 100 }, () =>
        queryControl(path, { command: 'status' }, 5000).then(
          (a) => (a.ok ? 'answered' : 'refused'),
          (e: ControlError) => e.code,
        ),
      ),
    );
    expect(outcomes.length).toBe(100);
    for (const outcome of outcomes) expect(['answered', 'EPROTO', 'ECONNRESET', 'EPIPE']).toContain(outcome);
    expect(outcomes.filter((o) => o === 'answered').length).toBeGreaterThan(0);
    await expectServing(path);
  });

  it('answers ok:false when the answer cannot be encoded, and survives a throwing stop', async () => {
    const path = join(dir, 'tortie.ctl');
    await serve(path, {
      status: () => ({ ...STATUS, pid: 10n as unknown as number }),
      routes: () => ROUTES,
      stop: () => {
        throw new Error('stop exploded');
      },
    });
    const answer = await queryControl(path, { command: 'status' });
    expect(answer).toMatchObject({
      ok: false,
      error: expect.stringMatching(/^the answer could not be encoded: .*BigInt/),
    });
    expect(await queryControl(path, { command: 'stop', graceful: false })).toEqual({
      ok: true,
      stopping: { graceful: false },
    });
    await new Promise((resolve) => setImmediate(resolve));
    expect(await queryControl(path, { command: 'routes' })).toEqual({ ok: true, routes: ROUTES });
  });

  it('closes the connection when the agent does not answer within the bound', async () => {
    const path = join(dir, 'tortie.ctl');
    servers.push(
      await serveControl(
        path,
        { status: () => new Promise<AgentStatus>(() => undefined), routes: () => ROUTES },
        { limits: { answerTimeoutMs: 200 } },
      ),
    );
    const { closedByServer } = await exchange(path, '{"command":"status"}\n', 3000);
    expect(closedByServer).toBe(true);
    expect(await queryControl(path, { command: 'routes' })).toEqual({ ok: true, routes: ROUTES });
  });
});

describe('parseControlRequest on any line (property)', () => {
  it('returns one of the documented requests or throws an Error with a message, for any text or JSON', () => {
    const line = fc.oneof(
      fc.string({ maxLength: 300 }),
      fc.json({ maxDepth: 4 }),
      fc
        .record({
          command: fc.oneof(fc.string(), fc.constantFrom('status', 'routes', 'stop', '__proto__', 'constructor')),
          graceful: fc.anything(),
        })
        .map((v) => JSON.stringify(v) ?? ''),
    );
    fc.assert(
      fc.property(line, (text) => {
        let request: unknown;
        try {
          request = parseControlRequest(text);
        } catch (error) {
          expect(error).toBeInstanceOf(Error);
          expect((error as Error).message.length).toBeGreaterThan(0);
          return;
        }
        expect(['status', 'routes', 'stop']).toContain((request as { command: string }).command);
      }),
      { numRuns: 1000 },
    );
  });
});
