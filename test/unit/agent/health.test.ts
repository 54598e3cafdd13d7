// The health server on a free port of 127.0.0.1: /liveness, /readiness (with the reason), /metrics,
// 404 and 405, HEAD, a throwing check, and close() not waiting for idle keep-alive clients.

import { afterEach, describe, expect, it } from 'vitest';
import http from 'node:http';
import { startHealthServer, type HealthServer } from '../../../src/agent/health.js';
import { AgentMetrics } from '../../../src/agent/metrics.js';

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

function start(state: { live: boolean; ready: boolean; reason?: string }, metrics = new AgentMetrics({ processMetrics: false })) {
  return startHealthServer({
    port: 0,
    liveness: () => state.live,
    readiness: () => ({ ready: state.ready, ...(state.reason ? { reason: state.reason } : {}) }),
    metrics,
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
    expect(await request(server.port, '/liveness')).toMatchObject({ status: 503, body: 'not live: the agent loop has stopped\n' });
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
    expect(await request(server.port, '/')).toMatchObject({ status: 404, body: 'not found: / (try /liveness, /readiness, /metrics)\n' });
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
    expect(await request(server.port, '/liveness')).toMatchObject({ status: 503, body: 'liveness check failed: watchdog state unreadable\n' });
  });

  it('fails to start on a port in use, naming host and port', async () => {
    server = await start({ live: true, ready: true });
    const port = server.port;
    const second = startHealthServer({ port, liveness: () => true, readiness: () => ({ ready: true }), metrics: new AgentMetrics({ processMetrics: false }) });
    await expect(second.then((s) => s.close())).rejects.toThrow(
      new RegExp(`^cannot serve health checks on 127\\.0\\.0\\.1:${port}: .*EADDRINUSE.*another process has the port`),
    );
  });

  it('closes promptly with an idle keep-alive client connected', async () => {
    server = await start({ live: true, ready: true });
    const agent = new http.Agent({ keepAlive: true });
    await new Promise<void>((resolve, reject) => {
      http.get({ host: '127.0.0.1', port: server!.port, path: '/liveness', agent }, (res) => {
        res.resume();
        res.on('end', () => resolve());
      }).on('error', reject);
    });
    const started = Date.now();
    await server.close();
    server = null;
    expect(Date.now() - started).toBeLessThan(1000);
    agent.destroy();
  });
});
