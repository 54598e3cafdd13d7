// HTTP health and metrics for the node agent, as calico-node's felix serves them (default port 9099):
//   GET /liveness   200 "live" while the agent's loop is alive, 503 otherwise (a kubelet livenessProbe)
//   GET /readiness  200 "ready" (plus one "note: ..." line per fact worth a look, e.g. no IPIP in this
//                   kernel), or 503 with the reason as text (a readinessProbe); what "ready" means
//                   (BGP sessions up, datastore in sync, ...) is decided by the agent and passed in
//   GET /metrics    Prometheus text from AgentMetrics.render()
// Anything else is 404 (unknown path) or 405 (another method). HEAD is answered like GET without a body.
//
// Why this is hard: the port is reachable by every local process and every hostNetwork pod, so every
// byte of a request is hostile input, and nothing a client sends may stop the agent or its probes.
// - The path is cut out of the request target by hand (origin-form "/x?q" or absolute-form
//   "http://h/x"), never with `new URL()`: it throws on "//", and a throw in a handler nobody awaits
//   is an unhandled rejection, which ends the process. Anything else is 400.
// - Every request is answered through one guarded handler: a throw or a rejected promise becomes a 500
//   (logged), a reply that does not come within a bound becomes a 503; nothing escapes to the process.
// - Node's parser bounds the rest: headers over 16 KiB → 431, a malformed request → 400. A client that
//   never finishes its headers or request is answered 408 and closed after a few seconds (Node checks
//   that only every `connectionsCheckingInterval`, 30 s by default: set to 1 s here).
// - Connections are capped, but the oldest gives way to a new one (instead of refusing the newest):
//   a client holding many idle connections open cannot keep the kubelet's probe out.
// No request body is ever read.

import http from 'node:http';
import type net from 'node:net';
import { systemClock, type Clock, type TimerHandle } from '../../bgp/index.js';
import type { Logger } from '../log.js';
import type { AgentMetrics } from './metrics.js';
import type { Readiness } from './types.js';

/** The bounds of the server (tests shorten them). */
export interface HealthLimits {
  /** Time for a client to send its headers and its whole request (then 408 and close). */
  requestTimeoutMs: number;
  /** How often Node checks those two timeouts. */
  checkIntervalMs: number;
  /** Open connections at most; one more closes the oldest. */
  maxConnections: number;
  /** Time for the agent to produce an answer (then 503). */
  replyTimeoutMs: number;
}

/** How long a refused client's remaining bytes are read before its connection is closed (see clientError). */
const LINGER_MS = 2000;

/** Node's parser error codes → the status a refused request gets (Node's own choices; 400 otherwise). */
const CLIENT_ERROR_STATUS: Readonly<Record<string, string>> = {
  HPE_HEADER_OVERFLOW: '431 Request Header Fields Too Large',
  ERR_HTTP_REQUEST_TIMEOUT: '408 Request Timeout',
};

export const HEALTH_LIMITS: Readonly<HealthLimits> = {
  requestTimeoutMs: 5000,
  checkIntervalMs: 1000,
  maxConnections: 64,
  replyTimeoutMs: 10_000,
};

export interface HealthOptions {
  port: number;
  /** Default 127.0.0.1; 0.0.0.0 when a kubelet on another address probes it. */
  host?: string;
  readiness(): Readiness;
  liveness(): boolean;
  metrics: AgentMetrics;
  /** Where a failed handler or a server error is reported (default: nowhere). */
  log?: Pick<Logger, 'error' | 'warn'>;
  limits?: Partial<HealthLimits>;
  /**
   * The reply bound and the refused client's linger run on it (default: the system clock). Node's own
   * request/headers timeouts (HealthLimits.requestTimeoutMs) are the HTTP parser's, on its own timers.
   */
  clock?: Clock;
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
/** Node's own default, stated: a larger header block is answered 431. */
const MAX_HEADER_BYTES = 16 * 1024;
/** How much of a path a 404 repeats back. */
const ECHO_CHARS = 64;

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

function failure(what: string, error: unknown): Reply {
  return { status: 503, body: `${what} check failed: ${messageOf(error)}\n` };
}

/** One handler per path. */
const ROUTES: Readonly<Record<string, (options: HealthOptions) => Promise<Reply>>> = {
  '/liveness': async (options) => {
    try {
      return options.liveness()
        ? { status: 200, body: 'live\n' }
        : { status: 503, body: 'not live: the agent loop has stopped\n' };
    } catch (error) {
      return failure('liveness', error);
    }
  },
  '/readiness': async (options) => {
    try {
      const { ready, reason, notes } = options.readiness();
      return ready
        ? { status: 200, body: `ready\n${(notes ?? []).map((n) => `note: ${n}\n`).join('')}` }
        : { status: 503, body: `not ready: ${reason ?? 'no reason given'}\n` };
    } catch (error) {
      return failure('readiness', error);
    }
  },
  '/metrics': async (options) => {
    try {
      return { status: 200, body: await options.metrics.render(), contentType: options.metrics.contentType };
    } catch (error) {
      return { status: 500, body: `metrics unavailable: ${messageOf(error)}\n` };
    }
  },
};

/**
 * The path of a request target (RFC 9112 §3.2): origin-form "/p?q" → "/p"; absolute-form
 * "http://host/p" → "/p" ("/" when it has no path); null for anything else ("*", "p", "").
 * No decoding, no normalisation: "//" and "/a/../liveness" are paths nobody serves.
 */
export function healthPath(target: string): string | null {
  let rest = target;
  const scheme = /^https?:\/\/[^/?#]*/i.exec(rest);
  if (scheme) {
    rest = rest.slice(scheme[0].length);
    if (rest === '' || rest[0] === '?' || rest[0] === '#') rest = `/${rest}`;
  }
  if (rest[0] !== '/') return null;
  const end = rest.search(/[?#]/);
  return end < 0 ? rest : rest.slice(0, end);
}

function shown(path: string): string {
  return path.length > ECHO_CHARS ? `${path.slice(0, ECHO_CHARS)}... (${path.length} characters)` : path;
}

/** Decides the answer to one request (method + target), without touching a socket. */
export async function healthReply(
  method: string,
  url: string,
  options: HealthOptions,
): Promise<Reply & { allow?: string }> {
  const path = healthPath(url);
  if (path === null)
    return { status: 400, body: `bad request target ${JSON.stringify(shown(url))}: send a path such as /liveness\n` };
  const handler = Object.hasOwn(ROUTES, path) ? ROUTES[path] : undefined;
  if (!handler) return { status: 404, body: `not found: ${shown(path)} (try ${Object.keys(ROUTES).join(', ')})\n` };
  if (method !== 'GET' && method !== 'HEAD')
    return { status: 405, body: `method ${shown(method)} not allowed on ${path}; use GET\n`, allow: 'GET, HEAD' };
  return handler(options);
}

/** healthReply, bounded in time: a check that hangs answers 503 instead of holding the connection. */
function boundedReply(
  method: string,
  url: string,
  options: HealthOptions,
  timeoutMs: number,
  clock: Clock,
): Promise<Reply & { allow?: string }> {
  let timer: TimerHandle | undefined;
  const late = new Promise<Reply>((resolve) => {
    timer = clock.setTimeout(
      () => resolve({ status: 503, body: `the agent did not answer within ${timeoutMs} ms\n` }),
      timeoutMs,
    );
  });
  return Promise.race([healthReply(method, url, options), late]).finally(() => {
    if (timer !== undefined) clock.clearTimeout(timer);
  });
}

function send(request: http.IncomingMessage, response: http.ServerResponse, reply: Reply & { allow?: string }): void {
  const headers: Record<string, string | number> = {
    'content-type': reply.contentType ?? TEXT,
    'content-length': Buffer.byteLength(reply.body),
    'cache-control': 'no-store',
  };
  if (reply.allow) headers.allow = reply.allow;
  response.writeHead(reply.status, headers);
  response.end(request.method === 'HEAD' ? undefined : reply.body);
}

/** Starts the health/metrics server; `port: 0` picks a free port (returned). */
export async function startHealthServer(options: HealthOptions): Promise<HealthServer> {
  const limits: HealthLimits = { ...HEALTH_LIMITS, ...options.limits };
  const clock = options.clock ?? systemClock;
  const server = http.createServer(
    {
      requestTimeout: limits.requestTimeoutMs,
      headersTimeout: limits.requestTimeoutMs,
      connectionsCheckingInterval: limits.checkIntervalMs,
      keepAliveTimeout: 1000,
      maxHeaderSize: MAX_HEADER_BYTES,
    },
    (request, response) => {
      // The body of a request is never needed; drain it so the connection can be reused or closed cleanly.
      request.resume();
      boundedReply(request.method ?? 'GET', request.url ?? '/', options, limits.replyTimeoutMs, clock)
        .then((reply) => send(request, response, reply))
        .catch((error: unknown) => {
          options.log?.error(
            { err: messageOf(error), method: request.method, path: shown(request.url ?? '') },
            'health server: a request failed',
          );
          if (response.headersSent) response.destroy();
          else send(request, response, { status: 500, body: `internal error: ${messageOf(error)}\n` });
        })
        .catch(() => response.destroy());
    },
  );
  server.maxHeadersCount = 50;
  // CONNECT never reaches the request handler; answer it like any other method we do not serve.
  server.on('connect', (_request: http.IncomingMessage, socket: net.Socket) => {
    socket.on('error', () => socket.destroy());
    socket.end('HTTP/1.1 405 Method Not Allowed\r\nAllow: GET, HEAD\r\nContent-Length: 0\r\nConnection: close\r\n\r\n');
  });
  // A request Node's parser refuses (headers over the limit, garbage, too slow): answer it, then close with a
  // lingering read. Node's own handler destroys the socket at once; with the client's unread bytes still
  // arriving, that close is a TCP reset, which can discard the answer before the client reads it. Reading
  // (and dropping) what still comes, for at most LINGER_MS, makes the close a FIN after the answer.
  server.on('clientError', (error: NodeJS.ErrnoException, socket: net.Socket) => {
    socket.on('error', () => socket.destroy());
    if (!socket.writable) {
      socket.destroy();
      return;
    }
    socket.end(
      `HTTP/1.1 ${CLIENT_ERROR_STATUS[error.code ?? ''] ?? '400 Bad Request'}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n`,
    );
    socket.on('data', () => undefined);
    socket.resume();
    const linger = clock.setTimeout(() => socket.destroy(), LINGER_MS);
    socket.once('close', () => clock.clearTimeout(linger));
  });
  // The oldest connection gives way to a new one (see header).
  const open = new Set<net.Socket>();
  server.on('connection', (socket: net.Socket) => {
    open.add(socket);
    socket.once('close', () => open.delete(socket));
    if (open.size > limits.maxConnections) {
      const oldest = open.values().next().value;
      if (oldest !== undefined) {
        open.delete(oldest);
        oldest.destroy();
      }
    }
  });
  const host = options.host ?? '127.0.0.1';
  await new Promise<void>((resolve, reject) => {
    server.once('error', (error: NodeJS.ErrnoException) =>
      reject(
        new Error(
          `cannot serve health checks on ${host}:${options.port}: ${error.message}${error.code === 'EADDRINUSE' ? ' (another process has the port; set a different health port)' : ''}`,
        ),
      ),
    );
    server.listen({ host, port: options.port }, () => resolve());
  });
  // After listen: an error (accept failing with EMFILE, say) is logged; without a listener it would be thrown.
  server.on('error', (error: Error) => options.log?.warn({ err: error.message }, 'health server error'));
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
