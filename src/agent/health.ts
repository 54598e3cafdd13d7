// HTTP health and metrics for the node agent, as calico-node's felix serves them (default port 9099):
//   GET /liveness   200 "live" while the agent's loop is alive, 503 otherwise (a kubelet livenessProbe)
//   GET /readiness  200 "ready" (plus one "note: ..." line per fact worth a look, e.g. no IPIP in this
//                   kernel), or 503 with the reason as text (a readinessProbe); what "ready" means
//                   (BGP sessions up, datastore in sync, ...) is decided by the agent and passed in
//   GET /metrics    Prometheus text from AgentMetrics.render()
// Anything else is 404 (unknown path) or 405 (another method). HEAD is answered like GET without a body.
//
// Bounded: headers and whole requests time out after a few seconds, idle keep-alive connections are closed
// quickly, the connection count is capped; no request body is ever read.

import http from 'node:http';
import type { AgentMetrics } from './metrics.js';
import type { Readiness } from './types.js';

export interface HealthOptions {
  port: number;
  /** Default 127.0.0.1; 0.0.0.0 when a kubelet on another address probes it. */
  host?: string;
  readiness(): Readiness;
  liveness(): boolean;
  metrics: AgentMetrics;
}

export interface HealthServer {
  port: number;
  close(): Promise<void>;
}

interface Reply {
  status: number;
  body: string;
  contentType?: string;
}

const TEXT = 'text/plain; charset=utf-8';
const REQUEST_TIMEOUT_MS = 5000;
const MAX_CONNECTIONS = 64;

function failure(what: string, error: unknown): Reply {
  return { status: 503, body: `${what} check failed: ${error instanceof Error ? error.message : String(error)}\n` };
}

/** One handler per path. */
const ROUTES: Readonly<Record<string, (options: HealthOptions) => Promise<Reply>>> = {
  '/liveness': async (options) => {
    try {
      return options.liveness() ? { status: 200, body: 'live\n' } : { status: 503, body: 'not live: the agent loop has stopped\n' };
    } catch (error) {
      return failure('liveness', error);
    }
  },
  '/readiness': async (options) => {
    try {
      const { ready, reason, notes } = options.readiness();
      return ready ? { status: 200, body: `ready\n${(notes ?? []).map((n) => `note: ${n}\n`).join('')}` } : { status: 503, body: `not ready: ${reason ?? 'no reason given'}\n` };
    } catch (error) {
      return failure('readiness', error);
    }
  },
  '/metrics': async (options) => {
    try {
      return { status: 200, body: await options.metrics.render(), contentType: options.metrics.contentType };
    } catch (error) {
      return { status: 500, body: `metrics unavailable: ${error instanceof Error ? error.message : String(error)}\n` };
    }
  },
};

/** Decides the answer to one request (method + URL), without touching a socket. */
export async function healthReply(method: string, url: string, options: HealthOptions): Promise<Reply & { allow?: string }> {
  let path: string;
  try {
    path = new URL(url, 'http://localhost').pathname;
  } catch {
    // A request target URL cannot read ("//", "//a b"): the client's error, not a reason to throw.
    return { status: 400, body: `bad request target ${JSON.stringify(url.slice(0, 100))}; try ${Object.keys(ROUTES).join(', ')}\n` };
  }
  const handler = ROUTES[path];
  if (!handler) return { status: 404, body: `not found: ${path} (try ${Object.keys(ROUTES).join(', ')})\n` };
  if (method !== 'GET' && method !== 'HEAD') return { status: 405, body: `method ${method} not allowed on ${path}; use GET\n`, allow: 'GET, HEAD' };
  return handler(options);
}

/** Starts the health/metrics server; `port: 0` picks a free port (returned). */
export async function startHealthServer(options: HealthOptions): Promise<HealthServer> {
  const server = http.createServer((request, response) => {
    void healthReply(request.method ?? 'GET', request.url ?? '/', options).then((reply) => {
      const headers: Record<string, string | number> = {
        'content-type': reply.contentType ?? TEXT,
        'content-length': Buffer.byteLength(reply.body),
        'cache-control': 'no-store',
      };
      if (reply.allow) headers.allow = reply.allow;
      response.writeHead(reply.status, headers);
      response.end(request.method === 'HEAD' ? undefined : reply.body);
    });
    // The body of a request is never needed; drain it so the connection can be reused or closed cleanly.
    request.resume();
  });
  server.requestTimeout = REQUEST_TIMEOUT_MS;
  server.headersTimeout = REQUEST_TIMEOUT_MS;
  server.keepAliveTimeout = 1000;
  server.maxConnections = MAX_CONNECTIONS;
  server.maxHeadersCount = 50;
  const host = options.host ?? '127.0.0.1';
  await new Promise<void>((resolve, reject) => {
    server.once('error', (error: NodeJS.ErrnoException) =>
      reject(new Error(`cannot serve health checks on ${host}:${options.port}: ${error.message}${error.code === 'EADDRINUSE' ? ' (another process has the port; set a different health port)' : ''}`)),
    );
    server.listen({ host, port: options.port }, () => resolve());
  });
  const address = server.address();
  const port = typeof address === 'object' && address !== null ? address.port : options.port;
  let closed: Promise<void> | null = null;
  return {
    port,
    close() {
      closed ??= new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
      return closed;
    },
  };
}
