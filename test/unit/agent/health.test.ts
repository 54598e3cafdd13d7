// The health server on a free port of 127.0.0.1: /liveness, /readiness (with the reason), /metrics,
// 404 and 405, HEAD, a throwing check, and close() not waiting for idle keep-alive clients; then hostile
// clients (issue #15: GET //, absolute-form and absurd targets, a 1 MB header, garbage, slowloris, more
// connections than the cap) each get a 4xx or are closed, and /liveness answers 200 after every one. On a
// FakeClock: the reply bound (503 exactly at replyTimeoutMs) and a refused client's linger (closed at 2000 ms).

import { holdIdleConnections, stillOpen } from '../helpers/sockets.js';
import { afterEach, describe, expect, it } from 'vitest';
import http from 'node:http';
import net from 'node:net';
import fc from 'fast-check';
import {
  healthPath,
  healthReply,
  startHealthServer,
  type HealthLimits,
  type HealthServer,
} from '../../../src/agent/health.js';
import { AgentMetrics } from '../../../src/agent/metrics.js';
import { FakeClock } from '../../../bgp/clock.js';
import { until } from '../helpers/agent-fixtures.js';

interface Answer {
  status: number;
  body: string;
  headers: http.IncomingHttpHeaders;
}

function request(port: number, path: string, method = 'GET'): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, path, method, agent: false, timeout: 3000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body, headers: res.headers }));
    });
    req.on('timeout', () => req.destroy(new Error(`no answer for ${method} ${path}`)));
    req.on('error', reject);
    req.end();
  });
}

let server: HealthServer | null = null;
afterEach(async () => {
  await server?.close();
  server = null;
});

function start(
  state: { live: boolean; ready: boolean; reason?: string },
  metrics = new AgentMetrics({ processMetrics: false }),
  limits?: Partial<HealthLimits>,
) {
  return startHealthServer({
    port: 0,
    liveness: () => state.live,
    readiness: () => ({ ready: state.ready, ...(state.reason ? { reason: state.reason } : {}) }),
    metrics,
    ...(limits ? { limits } : {}),
  });
}

describe('startHealthServer', () => {
  it('answers liveness and readiness with 200 or 503 and the reason as text', async () => {
    const state = { live: true, ready: false, reason: 'BGP not established with 10.0.0.2, 10.0.0.3' };
    server = await start(state);
    expect(server.port).toBeGreaterThan(0);

    expect(await request(server.port, '/liveness')).toMatchObject({ status: 200, body: 'live\n' });
    const notReady = await request(server.port, '/readiness');
    expect(notReady).toMatchObject({ status: 503, body: 'not ready: BGP not established with 10.0.0.2, 10.0.0.3\n' });
    expect(notReady.headers['content-type']).toBe('text/plain; charset=utf-8');

    state.ready = true;
    expect(await request(server.port, '/readiness')).toMatchObject({ status: 200, body: 'ready\n' });
    state.live = false;
    expect(await request(server.port, '/liveness')).toMatchObject({
      status: 503,
      body: 'not live: the agent loop has stopped\n',
    });
  });

  it('serves the metrics text with the Prometheus content type', async () => {
    const metrics = new AgentMetrics({ processMetrics: false });
    metrics.observeRoutes('10.0.0.2', 12, 3);
    server = await start({ live: true, ready: true }, metrics);
    const answer = await request(server.port, '/metrics');
    expect(answer.status).toBe(200);
    expect(answer.headers['content-type']).toMatch(/^text\/plain; version=0\.0\.4/);
    expect(answer.body).toContain('tortie_bgp_routes_received{peer="10.0.0.2"} 12\n');
    expect(answer.body).toContain('tortie_bgp_routes_advertised{peer="10.0.0.2"} 3\n');
  });

  it('ignores a query string, answers 404 for other paths and 405 for other methods', async () => {
    server = await start({ live: true, ready: true });
    expect(await request(server.port, '/readiness?verbose=1')).toMatchObject({ status: 200, body: 'ready\n' });
    expect(await request(server.port, '/')).toMatchObject({
      status: 404,
      body: 'not found: / (try /liveness, /readiness, /metrics)\n',
    });
    expect(await request(server.port, '/healthz')).toMatchObject({ status: 404 });
    const post = await request(server.port, '/readiness', 'POST');
    expect(post).toMatchObject({ status: 405, body: 'method POST not allowed on /readiness; use GET\n' });
    expect(post.headers.allow).toBe('GET, HEAD');
  });

  it('answers HEAD without a body', async () => {
    server = await start({ live: true, ready: false, reason: 'datastore not in sync' });
    const head = await request(server.port, '/readiness', 'HEAD');
    expect(head.status).toBe(503);
    expect(head.body).toBe('');
    expect(head.headers['content-length']).toBe(String(Buffer.byteLength('not ready: datastore not in sync\n')));
  });

  it('turns a throwing check into 503 with the message', async () => {
    server = await startHealthServer({
      port: 0,
      liveness: () => {
        throw new Error('watchdog state unreadable');
      },
      readiness: () => ({ ready: true }),
      metrics: new AgentMetrics({ processMetrics: false }),
    });
    expect(await request(server.port, '/liveness')).toMatchObject({
      status: 503,
      body: 'liveness check failed: watchdog state unreadable\n',
    });
  });

  it('fails to start on a port in use, naming host and port', async () => {
    server = await start({ live: true, ready: true });
    const port = server.port;
    const second = startHealthServer({
      port,
      liveness: () => true,
      readiness: () => ({ ready: true }),
      metrics: new AgentMetrics({ processMetrics: false }),
    });
    await expect(second.then((s) => s.close())).rejects.toThrow(
      new RegExp(`^cannot serve health checks on 127\\.0\\.0\\.1:${port}: .*EADDRINUSE.*another process has the port`),
    );
  });

  it('closes promptly with an idle keep-alive client connected', async () => {
    server = await start({ live: true, ready: true });
    const agent = new http.Agent({ keepAlive: true });
    await new Promise<void>((resolve, reject) => {
      http
        .get({ host: '127.0.0.1', port: server!.port, path: '/liveness', agent }, (res) => {
          res.resume();
          res.on('end', () => resolve());
        })
        .on('error', reject);
    });
    const started = Date.now();
    await server.close();
    server = null;
    expect(Date.now() - started).toBeLessThan(1000);
    agent.destroy();
  });
});

// ---- hostile or broken clients (issue #15): every one gets a 4xx or is closed, and /liveness answers after ----

/**
 * Sends raw bytes and collects what the server answers until it closes (or `waitMs` passes: then the
 * connection is destroyed and `closedByServer` is false). Write errors (the server closed first) are ignored.
 */
function rawExchange(
  port: number,
  bytes: string | Buffer,
  waitMs = 4000,
): Promise<{ text: string; status: number | null; closedByServer: boolean }> {
  return new Promise((resolve) => {
    const socket = net.createConnection({ host: '127.0.0.1', port });
    let text = '';
    let settled = false;
    const finish = (closedByServer: boolean) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      const match = /^HTTP\/1\.1 (\d{3})/.exec(text);
      resolve({ text, status: match ? Number(match[1]) : null, closedByServer });
    };
    const timer = setTimeout(() => finish(false), waitMs);
    socket.on('connect', () => socket.write(bytes));
    socket.on('data', (chunk: Buffer) => (text += chunk.toString('latin1')));
    socket.on('error', () => finish(true));
    socket.on('close', () => finish(true));
  });
}

const GET = (target: string) => `GET ${target} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n`;

async function expectLive(port: number): Promise<void> {
  expect(await request(port, '/liveness')).toMatchObject({ status: 200, body: 'live\n' });
}

describe('startHealthServer against hostile clients', () => {
  it('answers GET // with 404 (new URL() threw on it and the rejection killed the agent)', async () => {
    server = await start({ live: true, ready: true });
    const answer = await rawExchange(server.port, GET('//'));
    expect(answer.status).toBe(404);
    await expectLive(server.port);
  });

  it('answers absolute-form targets by their path, and absurd targets with a 4xx, never a 5xx or silence', async () => {
    server = await start({ live: true, ready: true });
    expect((await rawExchange(server.port, GET('http://x/liveness'))).status).toBe(200);
    expect((await rawExchange(server.port, GET('http://x/'))).status).toBe(404);
    expect((await rawExchange(server.port, 'CONNECT 127.0.0.1:22 HTTP/1.1\r\nHost: 127.0.0.1:22\r\n\r\n')).status).toBe(
      405,
    );
    const absurd = [
      '///liveness',
      '//x/liveness',
      '*',
      'http://',
      'http://[::1',
      'http:liveness',
      '%zz',
      '/%00%ff',
      '/liveness/../liveness',
      `/${'a'.repeat(8000)}`,
      '/a?b#c',
      'liveness',
      '?',
      '#',
    ];
    expect(absurd.length).toBeGreaterThan(0);
    for (const target of absurd) {
      const answer = await rawExchange(server.port, GET(target));
      expect(answer.status, `GET ${target.slice(0, 40)}`).toBeGreaterThanOrEqual(400);
      expect(answer.status, `GET ${target.slice(0, 40)}`).toBeLessThan(500);
      // A long target is not echoed back in full (no amplification).
      expect(answer.text.length, `GET ${target.slice(0, 40)}`).toBeLessThan(1000);
    }
    await expectLive(server.port);
  });

  it('answers a 1 MB header with 431 and a garbage request line with 400', async () => {
    server = await start({ live: true, ready: true });
    const huge = `GET /liveness HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: ${'a'.repeat(1024 * 1024)}\r\n\r\n`;
    expect((await rawExchange(server.port, huge)).status).toBe(431);
    await expectLive(server.port);
    expect((await rawExchange(server.port, Buffer.from([0, 1, 2, 0xff, 0x0d, 0x0a, 0x0d, 0x0a]))).status).toBe(400);
    expect((await rawExchange(server.port, 'GARBAGE GARBAGE GARBAGE\r\n\r\n')).status).toBe(400);
    expect((await rawExchange(server.port, 'GET /liveness HTTP/9.9\r\n\r\n')).status).toBeGreaterThanOrEqual(400);
    await expectLive(server.port);
  });

  it('closes a client that never finishes its headers (slowloris) within the header time bound', async () => {
    server = await start({ live: true, ready: true }, undefined, { requestTimeoutMs: 300, checkIntervalMs: 100 });
    const port = server.port;
    const slow = net.createConnection({ host: '127.0.0.1', port });
    slow.on('error', () => undefined);
    let received = '';
    slow.on('data', (chunk: Buffer) => (received += chunk.toString('latin1')));
    const closed = new Promise<void>((resolve) => slow.once('close', () => resolve()));
    slow.write('GET /liveness HTTP/1.1\r\n');
    // One header line every 50 ms, never the empty line that ends them.
    const drip = setInterval(() => slow.write(`X-${Math.random().toString(36).slice(2)}: y\r\n`), 50);
    const outcome = await Promise.race([
      closed.then(() => 'closed'),
      new Promise((resolve) => setTimeout(() => resolve('still open'), 5000)),
    ]);
    clearInterval(drip);
    slow.destroy();
    expect(outcome).toBe('closed');
    expect(received).toMatch(/^HTTP\/1\.1 408/);
    await expectLive(port);
  });

  it('closes a connection that sends nothing at all within the header time bound', async () => {
    server = await start({ live: true, ready: true }, undefined, { requestTimeoutMs: 300, checkIntervalMs: 100 });
    const answer = await rawExchange(server.port, '', 5000);
    expect(answer.closedByServer).toBe(true);
    await expectLive(server.port);
  });

  it('keeps answering probes while more clients than the connection bound hold connections open', async () => {
    server = await start({ live: true, ready: true }, undefined, { maxConnections: 8 });
    const port = server.port;
    const idle = await holdIdleConnections(() => net.createConnection({ host: '127.0.0.1', port }), 40);
    try {
      // The bound holds: most of the idle connections were closed by the server.
      expect(await stillOpen(idle, 8)).toBeLessThanOrEqual(8);
      // A new client (the kubelet's probe) is still served: the oldest connection gives way, not the newest.
      await expectLive(port);
    } finally {
      for (const socket of idle) socket.destroy();
    }
  });
});

describe('startHealthServer /metrics when rendering fails', () => {
  function withMetrics(render: () => Promise<string>, limits?: { replyTimeoutMs: number }) {
    const metrics = new AgentMetrics({ processMetrics: false });
    metrics.render = render;
    return startHealthServer({
      port: 0,
      liveness: () => true,
      readiness: () => ({ ready: true }),
      metrics,
      ...(limits ? { limits } : {}),
    });
  }

  it('answers 500 when render() rejects or throws, and keeps serving', async () => {
    server = await withMetrics(() => Promise.reject(new Error('registry collect failed')));
    expect(await request(server.port, '/metrics')).toMatchObject({
      status: 500,
      body: 'metrics unavailable: registry collect failed\n',
    });
    await expectLive(server.port);
    await server.close();
    server = await withMetrics(() => {
      throw new Error('collector threw');
    });
    expect(await request(server.port, '/metrics')).toMatchObject({
      status: 500,
      body: 'metrics unavailable: collector threw\n',
    });
    await expectLive(server.port);
  });

  it('answers 503 when render() never settles, within the reply bound', async () => {
    server = await withMetrics(() => new Promise<string>(() => undefined), { replyTimeoutMs: 200 });
    const answer = await request(server.port, '/metrics');
    expect(answer.status).toBe(503);
    expect(answer.body).toMatch(/did not answer within 200 ms/);
    await expectLive(server.port);
  });

  it('the reply bound runs on the injected clock: 503 exactly when replyTimeoutMs has passed', async () => {
    const clock = new FakeClock();
    const metrics = new AgentMetrics({ processMetrics: false });
    metrics.render = () => new Promise<string>(() => undefined);
    server = await startHealthServer({
      port: 0,
      liveness: () => true,
      readiness: () => ({ ready: true }),
      metrics,
      clock,
      limits: { replyTimeoutMs: 10_000 },
    });
    const pending = request(server.port, '/metrics');
    await until(() => clock.pending === 1, 'the reply bound armed (the request arrived)');
    clock.advance(9_999);
    expect(clock.pending).toBe(1); // not yet
    clock.advance(1);
    const answer = await pending;
    expect(answer.status).toBe(503);
    expect(answer.body).toMatch(/did not answer within 10000 ms/);
    expect(clock.pending).toBe(0);
  });
});

describe('startHealthServer: a refused client lingers on the injected clock', () => {
  it('reads a refused client for LINGER_MS (2000 ms) after the 400, then closes its connection', async () => {
    const clock = new FakeClock();
    server = await startHealthServer({
      port: 0,
      liveness: () => true,
      readiness: () => ({ ready: true }),
      metrics: new AgentMetrics({ processMetrics: false }),
      clock,
    });
    // A client that keeps its side open after the answer (half-open), so only the server's linger closes it.
    const client = net.createConnection({ host: '127.0.0.1', port: server.port, allowHalfOpen: true });
    let received = '';
    let ended = false;
    let closed = false;
    client.on('data', (chunk: Buffer) => (received += chunk.toString('latin1')));
    client.on('end', () => (ended = true));
    client.on('error', () => undefined);
    client.on('close', () => (closed = true));
    try {
      client.write('GARBAGE GARBAGE GARBAGE\r\n\r\n');
      await until(() => ended && clock.pending === 1, 'the 400 sent, the linger armed');
      expect(received).toMatch(/^HTTP\/1\.1 400 /);
      clock.advance(1_999);
      expect(clock.pending).toBe(1); // still lingering: the connection is open, what comes is read
      client.write('more bytes the server reads and drops\r\n');
      clock.advance(1);
      expect(clock.pending).toBe(0);
      // The server's side is gone: the next bytes are answered with a reset, and the client's socket closes.
      await until(() => {
        if (!client.destroyed) client.write('x');
        return closed;
      }, 'the client sees the connection closed');
      await expectLive(server.port);
    } finally {
      client.destroy();
    }
  });
});

describe('healthPath', () => {
  it('takes the path of origin-form and absolute-form targets and refuses the rest', () => {
    expect(healthPath('/liveness')).toBe('/liveness');
    expect(healthPath('/readiness?verbose=1')).toBe('/readiness');
    expect(healthPath('/metrics#x')).toBe('/metrics');
    expect(healthPath('http://127.0.0.1:9099/liveness?x')).toBe('/liveness');
    expect(healthPath('HTTP://host')).toBe('/');
    expect(healthPath('//')).toBe('//');
    expect(healthPath('*')).toBeNull();
    expect(healthPath('liveness')).toBeNull();
    expect(healthPath('')).toBeNull();
  });
});

describe('healthReply on any request target (property)', () => {
  it('never rejects, and answers a 4xx for every target that is not one of its paths', async () => {
    const options = {
      port: 0,
      liveness: () => true,
      readiness: () => ({ ready: true }),
      metrics: new AgentMetrics({ processMetrics: false }),
    };
    const target = fc.oneof(
      fc.string({ maxLength: 200 }),
      fc.string({
        unit: fc.constantFrom('/', '?', '#', ':', '%', '.', 'h', 't', 'p', 's', '[', ']', '@', 'x'),
        maxLength: 40,
      }),
      fc.webUrl({ withQueryParameters: true, withFragments: true }),
    );
    await fc.assert(
      fc.asyncProperty(target, fc.constantFrom('GET', 'HEAD', 'POST', 'OPTIONS'), async (url, method) => {
        const reply = await healthReply(method, url, options);
        const path = healthPath(url);
        if (path === null) expect(reply.status).toBe(400);
        else if (!['/liveness', '/readiness', '/metrics'].includes(path)) expect(reply.status).toBe(404);
        else if (method === 'POST' || method === 'OPTIONS') expect(reply.status).toBe(405);
        else expect(reply.status).toBe(200);
        if (reply.status !== 200) expect(reply.body.length).toBeLessThan(400);
      }),
      { numRuns: 500 },
    );
  });
});
