// The agent's CNI socket (src/agent/cni-server.ts) and the plugin's client (src/cni/client.ts): the request
// parser, the datastore match, and the protocol over a real Unix socket — fallback answers for requests the
// agent does not do, a served command's answer with its log, the bounds (size, time, connections), and the
// client's fallbacks (no socket, no accept in time, a connection that closes after accepting).
// A served ADD/DEL against etcd and network namespaces is in test/integration/cni.test.ts and cni-agent.test.ts.

import net from 'node:net';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { parseCniRequest, sameDatastore, serveCni, type CniServer } from '../../../src/agent/cni-server.js';
import {
  askAgent,
  cniSocketPath,
  DEFAULT_CNI_SOCKET,
  encodeCniRequest,
  parseAgentAnswer,
  type AgentOutcome,
} from '../../../src/cni/client.js';
import type { DatastoreConfig } from '../../../src/datastore/config.js';
import type { Datastore } from '../../../src/datastore/types.js';

const ENDPOINT = 'http://127.0.0.1:1';
const AGENT_DS: DatastoreConfig = {
  datastoreType: 'etcdv3',
  etcdEndpoints: [ENDPOINT],
  timeoutMs: 5000,
  source: 'environment',
};
const ENV = { CNI_COMMAND: 'CHECK', CNI_CONTAINERID: 'c1', CNI_NETNS: '/proc/self/ns/net', CNI_IFNAME: 'eth0' };
const conf = (extra: Record<string, unknown> = {}) =>
  JSON.stringify({
    cniVersion: '1.0.0',
    name: 'k8s-pod-network',
    type: 'tortie',
    datastore_type: 'etcdv3',
    etcd_endpoints: ENDPOINT,
    nodename: 'n1',
    ipam: { type: 'tortie-ipam' },
    ...extra,
  });
const TIMEOUTS = { acceptTimeoutMs: 20_000, answerTimeoutMs: 20_000 };

describe('parseCniRequest', () => {
  it('takes the forwarded environment and stdin', () => {
    const line = encodeCniRequest({ ...ENV, PATH: '/bin', HOME: '/root' }, '{}').trimEnd();
    expect(parseCniRequest(line)).toEqual({ env: ENV, stdin: '{}' });
  });
  it.each([
    ['not JSON', 'nope', /not JSON/],
    ['an array', '[]', /not a JSON object/],
    ['no stdin', '{"env":{"CNI_COMMAND":"ADD"}}', /"stdin"/],
    ['env not an object', '{"env":[],"stdin":""}', /"env" is not an object/],
    ['a variable it does not forward', '{"env":{"CNI_COMMAND":"ADD","LD_PRELOAD":"x"},"stdin":""}', /LD_PRELOAD/],
    ['a non-string value', '{"env":{"CNI_COMMAND":"ADD","CNI_IFNAME":1},"stdin":""}', /CNI_IFNAME/],
    ['a command the agent does not do', '{"env":{"CNI_COMMAND":"GC"},"stdin":""}', /GC/],
    ['__proto__ as a key', '{"env":{"__proto__":"x","CNI_COMMAND":"ADD"},"stdin":""}', /__proto__/],
  ])('refuses %s, saying what it takes', (_, line, message) => {
    expect(() => parseCniRequest(line)).toThrow(message);
  });
});

describe('sameDatastore', () => {
  it('matches the same endpoints in any order, with or without a trailing slash', () => {
    const agent = { ...AGENT_DS, etcdEndpoints: ['http://a:2379', 'http://b:2379'] };
    expect(sameDatastore({ ...agent, etcdEndpoints: ['http://b:2379/', 'http://a:2379'] }, agent)).toBeNull();
  });
  it('says why not: other endpoints, other TLS files, a kubernetes datastore', () => {
    expect(sameDatastore({ ...AGENT_DS, etcdEndpoints: ['http://other:2379'] }, AGENT_DS)).toMatch(/etcd_endpoints/);
    expect(sameDatastore({ ...AGENT_DS, etcdCACertFile: '/ca.pem' }, AGENT_DS)).toMatch(/etcdCACertFile/);
    expect(sameDatastore({ ...AGENT_DS, datastoreType: 'kubernetes' }, AGENT_DS)).toMatch(/kubernetes/);
  });
});

describe('client helpers', () => {
  it('TORTIE_CNI_SOCKET: a path, the default, or off', () => {
    expect(cniSocketPath({})).toBe(DEFAULT_CNI_SOCKET);
    expect(cniSocketPath({ TORTIE_CNI_SOCKET: ' /tmp/x.sock ' })).toBe('/tmp/x.sock');
    expect(cniSocketPath({ TORTIE_CNI_SOCKET: 'off' })).toBeNull();
  });
  it('parseAgentAnswer takes only a whole answer', () => {
    expect(parseAgentAnswer('{"exitCode":0,"stdout":"x","log":""}')).toEqual({ exitCode: 0, stdout: 'x', log: '' });
    expect(parseAgentAnswer('{"exitCode":0,"stdout":"x"}')).toBeNull();
    expect(parseAgentAnswer('{"exitCode":1.5,"stdout":"x","log":""}')).toBeNull();
    expect(parseAgentAnswer('{"exitCode":0,"stdout":"x","log":"","logFile":3}')).toBeNull();
    expect(parseAgentAnswer('null')).toBeNull();
  });
});

describe('the CNI socket', () => {
  let dir: string;
  let path: string;
  let server: CniServer | undefined;
  const warnings: string[] = [];
  const log = { info: () => undefined, warn: (_: object, m?: string) => void warnings.push(m ?? '') };
  const unusedDatastore = new Proxy({} as Datastore, {
    get: (_, p) => {
      if (p === 'close') return () => Promise.resolve();
      throw new Error(`the datastore was used (${String(p)})`);
    },
  });

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'tortie-cni-sock-'));
    path = join(dir, 'cni.sock');
    warnings.length = 0;
  });
  afterEach(async () => {
    await server?.close();
    server = undefined;
    rmSync(dir, { recursive: true, force: true });
  });

  const start = async (limits = {}) =>
    (server = await serveCni({
      path,
      nodeName: 'n1',
      datastore: unusedDatastore,
      datastoreConfig: AGENT_DS,
      log,
      limits,
    }));
  const ask = (env: Record<string, string>, stdin: string): Promise<AgentOutcome> =>
    askAgent(path, encodeCniRequest(env, stdin), TIMEOUTS);

  it('does a command that is its own: the plugin code answers (CHECK without prevResult: code 7), with its log', async () => {
    await start();
    const outcome = await ask(ENV, conf({ log_level: 'debug' }));
    expect(outcome.kind).toBe('answer');
    if (outcome.kind !== 'answer') return;
    expect(outcome.exitCode).toBe(1);
    expect(JSON.parse(outcome.stdout)).toMatchObject({ code: 7, msg: expect.stringMatching(/prevResult/) });
    expect(outcome.log).toMatch(/"level":"error"/);
    expect(server!.inFlight()).toBe(0);
  });

  it('says "do it yourself" for another node, another datastore, kubernetes, a configuration it cannot read, a netns it cannot see', async () => {
    await start();
    const cases: Array<[string, RegExp]> = [
      [conf({ nodename: 'n2' }), /node "n2"/],
      [conf({ etcd_endpoints: 'http://127.0.0.1:2' }), /etcd_endpoints/],
      [conf({ datastore_type: 'kubernetes' }), /kubernetes/],
      ['{"cniVersion":', /configuration/],
    ];
    for (const [stdin, reason] of cases) {
      const outcome = await ask(ENV, stdin);
      expect(outcome).toMatchObject({ kind: 'fallback', accepted: false, reason: expect.stringMatching(reason) });
    }
    // A namespace path the agent cannot see (its container without the runtime's mounts).
    const unseen = await ask({ ...ENV, CNI_NETNS: join(dir, 'no-such-netns') }, conf());
    expect(unseen).toMatchObject({ kind: 'fallback', reason: expect.stringMatching(/cannot see CNI_NETNS/) });
  });

  it('refuses an oversized request and a malformed one without throwing, and drops a silent client', async () => {
    await start({ requestTimeoutMs: 200 });
    const raw = (data: string): Promise<string> =>
      new Promise((resolve) => {
        const socket = net.createConnection(path);
        let got = '';
        socket.setEncoding('utf8');
        socket.on('data', (c: string) => (got += c));
        socket.on('error', () => undefined);
        socket.on('close', () => resolve(got));
        socket.on('connect', () => socket.write(data));
      });
    expect(await raw('x'.repeat(1024 * 1024 + 10))).toMatch(/"fallback":"request longer than/);
    expect(await raw('{"env":{},"stdin":1}\n')).toMatch(/"fallback":"\\"stdin\\"/);
    expect(await raw('{"env":')).toBe(''); // no newline, then silence: closed after requestTimeoutMs
    expect(warnings).toEqual([]);
  });

  it('over its connection cap, tells the newest to fall back', async () => {
    await start({ maxConnections: 1 });
    const idle = net.createConnection(path);
    await new Promise((resolve) => idle.once('connect', resolve));
    const outcome = await ask(ENV, conf());
    expect(outcome).toMatchObject({ kind: 'fallback', reason: expect.stringMatching(/already/) });
    idle.destroy();
  });

  it('replaces a stale socket file and refuses a path that is not a socket', async () => {
    const stale = net.createServer();
    await new Promise<void>((resolve) => stale.listen(path, resolve));
    // A listener closed without unlinking (a killed agent) leaves the file: simulate with a plain file copy.
    await new Promise<void>((resolve) => stale.close(() => resolve()));
    writeFileSync(join(dir, 'plain'), '');
    await expect(
      serveCni({
        path: join(dir, 'plain'),
        nodeName: 'n1',
        datastore: unusedDatastore,
        datastoreConfig: AGENT_DS,
        log,
      }),
    ).rejects.toThrow(/CNI socket path .* is not a socket.*TORTIE_CNI_SOCKET/);
    await start();
    expect((await ask(ENV, conf({ nodename: 'n2' }))).kind).toBe('fallback');
  });
});

describe('askAgent against an agent that misbehaves', () => {
  let dir: string;
  let path: string;
  let fake: net.Server | undefined;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'tortie-cni-client-'));
    path = join(dir, 'cni.sock');
  });
  afterEach(async () => {
    await new Promise<void>((resolve) => (fake ? fake.close(() => resolve()) : resolve()));
    fake = undefined;
    rmSync(dir, { recursive: true, force: true });
  });
  const serve = (onConnection: (socket: net.Socket) => void) =>
    new Promise<void>((resolve) => {
      fake = net.createServer((s) => {
        s.on('error', () => undefined);
        onConnection(s);
      });
      fake.listen(path, resolve);
    });

  it('no socket: a fallback at once, not accepted', async () => {
    const outcome = await askAgent(path, '{}\n', TIMEOUTS);
    expect(outcome).toMatchObject({ kind: 'fallback', accepted: false, reason: expect.stringMatching(/ENOENT/) });
  });

  it('an agent that does not accept in time: a fallback after the accept bound', async () => {
    const held: net.Socket[] = [];
    await serve((s) => held.push(s));
    const started = Date.now();
    const outcome = await askAgent(path, '{}\n', { acceptTimeoutMs: 100, answerTimeoutMs: 5000 });
    expect(outcome).toMatchObject({ kind: 'fallback', accepted: false, reason: expect.stringMatching(/100 ms/) });
    expect(Date.now() - started).toBeLessThan(4000);
    for (const s of held) s.destroy();
  });

  it('an agent that accepts, then dies: a fallback marked accepted (the plugin redoes the command)', async () => {
    await serve((s) => s.once('data', () => s.end('{"accepted":true}\n')));
    const outcome = await askAgent(path, '{}\n', TIMEOUTS);
    expect(outcome).toMatchObject({
      kind: 'fallback',
      accepted: true,
      reason: expect.stringMatching(/without an answer/),
    });
  });

  it('an answer split over many writes is put back together', async () => {
    const text = '{"accepted":true}\n{"exitCode":0,"stdout":"{\\"ok\\":1}\\n","log":"a\\n"}\n';
    await serve((s) =>
      s.once('data', async () => {
        for (const ch of text) {
          s.write(ch);
          await new Promise((r) => setImmediate(r));
        }
        s.end();
      }),
    );
    expect(await askAgent(path, '{}\n', TIMEOUTS)).toEqual({
      kind: 'answer',
      exitCode: 0,
      stdout: '{"ok":1}\n',
      log: 'a\n',
    });
  });
});
