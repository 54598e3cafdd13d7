// The control socket between `tortie node run` (serveControl) and `tortie node status|routes` (queryControl).
//
// Protocol (src/agent/types.ts): a Unix socket, newline-delimited JSON, one request per connection —
// the client writes `{"command":"status"}\n`, the agent answers one JSON line and closes.
//
// Why this is hard:
// - The socket is root-only (mode 0600). It is bound under a temporary name and renamed into place only
//   after the chmod, so there is no moment when the final path accepts connections with looser permissions.
// - A socket file left by an agent that died must be replaced, but a live agent's must not: the old path
//   is probed first, and only a refused connection (nobody listening) lets us unlink it.
// - On close the path is removed only if it is still our socket (same inode): a newer agent may have
//   replaced it meanwhile.
// - Everything is bounded: request size, connection count, time to read a request, time for the agent's
//   answer to be produced and taken; the client has one overall timeout and its errors name the socket
//   path and what to do. Over the connection cap the oldest connection gives way to the new one, so a
//   client holding many idle connections cannot keep `tortie node status` out.
// - Nothing a client sends, and nothing the provider throws, escapes: a request is answered
//   `{"ok":false,...}` or the connection is closed; an answer that cannot be encoded is an error answer.

import net from 'node:net';
import { chmod, lstat, mkdir, rename, unlink } from 'node:fs/promises';
import { dirname, join, basename } from 'node:path';
import { systemClock, type Clock } from '../../bgp/index.js';
import type { Logger } from '../log.js';
import type { AgentStatus, ControlRequest, ControlResponse, RouteRow } from './types.js';

export interface ControlProvider {
  status(): AgentStatus | Promise<AgentStatus>;
  routes(): RouteRow[] | Promise<RouteRow[]>;
  /** Asks the agent to stop (after the answer is sent); absent = the command is refused. */
  stop?(graceful: boolean): void;
}

export interface ControlServer {
  readonly path: string;
  close(): Promise<void>;
}

/** The server's bounds (tests shorten them). */
export interface ControlLimits {
  /** A client that has not sent its request line within this is disconnected. */
  requestTimeoutMs: number;
  /** The agent's answer must be produced, and the client must keep taking it, with no pause longer than this. */
  answerTimeoutMs: number;
  /** Open connections at most; one more closes the oldest. */
  maxConnections: number;
}

export const CONTROL_LIMITS: Readonly<ControlLimits> = {
  requestTimeoutMs: 5000,
  answerTimeoutMs: 30_000,
  maxConnections: 32,
};

export interface ControlOptions {
  /** Where a failure inside the server is reported (default: nowhere). */
  log?: Pick<Logger, 'warn'>;
  limits?: Partial<ControlLimits>;
}

/** A request line longer than this is refused (the real ones are ~25 bytes). */
const MAX_REQUEST_BYTES = 4096;
/** Answers can be large (every Loc-RIB route); the client stops reading past this. */
const MAX_RESPONSE_BYTES = 256 * 1024 * 1024;
/** How long to wait for an old socket's owner to answer before calling it stale. */
const PROBE_TIMEOUT_MS = 1000;
export const DEFAULT_QUERY_TIMEOUT_MS = 2000;
/** sun_path is 108 bytes on Linux, one of them the terminating NUL. */
const MAX_SOCKET_PATH_BYTES = 107;
let temporaryCount = 0;

/** The commands the agent answers, one entry each. */
const COMMANDS: Readonly<
  Record<ControlRequest['command'], (provider: ControlProvider, request: ControlRequest) => Promise<ControlResponse>>
> = {
  status: async (provider) => ({ ok: true, status: await provider.status() }),
  routes: async (provider) => ({ ok: true, routes: await provider.routes() }),
  stop: async (provider, request) => {
    if (provider.stop === undefined)
      return { ok: false, error: 'this agent cannot be stopped over its control socket' };
    const graceful = request.command === 'stop' && request.graceful;
    // After this answer is on its way: the stop closes the control socket too.
    setImmediate(() => {
      try {
        provider.stop!(graceful);
      } catch {
        // The agent reports its own stop failures; this socket has already answered.
      }
    });
    return { ok: true, stopping: { graceful } };
  },
};

/** Parses and validates one request line; the error says what would be accepted. */
export function parseControlRequest(line: string): ControlRequest {
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch {
    throw new Error(
      `request ${JSON.stringify(line.slice(0, 80))} is not JSON; send {"command":"status"} or {"command":"routes"}`,
    );
  }
  const command = typeof value === 'object' && value !== null ? (value as { command?: unknown }).command : undefined;
  if (typeof command !== 'string' || !Object.hasOwn(COMMANDS, command)) {
    throw new Error(`command ${JSON.stringify(command ?? null)} is not one of ${Object.keys(COMMANDS).join(', ')}`);
  }
  if (command === 'stop') {
    const graceful = (value as { graceful?: unknown }).graceful ?? false;
    if (typeof graceful !== 'boolean') throw new Error(`"graceful" is ${JSON.stringify(graceful)}; send true or false`);
    return { command, graceful };
  }
  return { command } as ControlRequest;
}

async function answer(line: string, provider: ControlProvider): Promise<ControlResponse> {
  try {
    const request = parseControlRequest(line);
    return await COMMANDS[request.command](provider, request);
  } catch (error) {
    return { ok: false, error: error instanceof Error ? error.message : String(error) };
  }
}

/** One answer line; an answer JSON cannot encode (a BigInt, a cycle) becomes an error answer. */
function encodeAnswer(response: ControlResponse): string {
  try {
    return `${JSON.stringify(response)}\n`;
  } catch (error) {
    return `${JSON.stringify({ ok: false, error: `the answer could not be encoded: ${error instanceof Error ? error.message : String(error)}` })}\n`;
  }
}

function handleConnection(
  socket: net.Socket,
  provider: ControlProvider,
  limits: ControlLimits,
  log: ControlOptions['log'],
): void {
  let buffered = '';
  let done = false;
  socket.setEncoding('utf8');
  // Node's socket.setTimeout, not a clock timer: it is an inactivity bound that Node re-arms on every read
  // and write (a client sending its request slowly but steadily is fine; one that stops is closed), which a
  // one-shot Clock timer cannot express without re-arming it on every chunk.
  socket.setTimeout(limits.requestTimeoutMs, () => socket.destroy());
  socket.on('error', () => socket.destroy());
  const reply = (response: ControlResponse) => {
    socket.end(encodeAnswer(response));
  };
  socket.on('data', (chunk: string) => {
    if (done) return;
    buffered += chunk;
    const newline = buffered.indexOf('\n');
    if (newline < 0 && buffered.length <= MAX_REQUEST_BYTES) return;
    done = true;
    // From here on: the answer must come, and be taken, without a long pause (a stuck provider, a client
    // that never reads a large answer).
    socket.setTimeout(limits.answerTimeoutMs, () => socket.destroy());
    if (newline < 0 || newline > MAX_REQUEST_BYTES) {
      buffered = '';
      reply({
        ok: false,
        error: `request longer than ${MAX_REQUEST_BYTES} bytes; send one JSON line like {"command":"status"}`,
      });
      return;
    }
    const line = buffered.slice(0, newline);
    buffered = '';
    answer(line, provider)
      .then(reply)
      .catch((error: unknown) => {
        log?.warn(
          { err: error instanceof Error ? error.message : String(error) },
          'control socket: answering a request failed',
        );
        socket.destroy();
      });
  });
}

/** What is at `path` now: nothing, a live agent, a stale socket, or something that is not a socket. */
async function inspectExisting(path: string): Promise<'absent' | 'live' | 'stale'> {
  let stats;
  try {
    stats = await lstat(path);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return 'absent';
    throw error;
  }
  if (!stats.isSocket()) {
    throw new Error(
      `control socket path ${path} exists and is not a socket; remove it or set TORTIE_CTL_SOCKET to another path`,
    );
  }
  return new Promise((resolve) => {
    const probe = net.createConnection(path);
    const finish = (result: 'live' | 'stale') => {
      probe.destroy();
      resolve(result);
    };
    // Node's socket.setTimeout (inactivity on this one probe socket, destroyed in finish) — not a clock timer.
    probe.setTimeout(PROBE_TIMEOUT_MS, () => finish('live')); // something holds it but is slow: do not clobber it
    probe.once('connect', () => finish('live'));
    probe.once('error', (error: NodeJS.ErrnoException) =>
      finish(error.code === 'ECONNREFUSED' || error.code === 'ENOENT' ? 'stale' : 'live'),
    );
  });
}

/**
 * Serves the control protocol on a Unix socket at `path` (mode 0600; parent directory created 0755).
 * Replaces a stale socket left by a dead agent; refuses when another agent answers on it.
 */
export async function serveControl(
  path: string,
  provider: ControlProvider,
  options: ControlOptions = {},
): Promise<ControlServer> {
  const limits: ControlLimits = { ...CONTROL_LIMITS, ...options.limits };
  try {
    await mkdir(dirname(path), { recursive: true, mode: 0o755 });
  } catch (error) {
    throw new Error(`cannot create the directory of the control socket ${path}: ${(error as Error).message}`);
  }
  const existing = await inspectExisting(path);
  if (existing === 'live') {
    let who = '';
    try {
      const response = await queryControl(path, { command: 'status' }, PROBE_TIMEOUT_MS);
      if (response.ok && 'status' in response) who = ` (node ${response.status.node}, pid ${response.status.pid})`;
    } catch {
      // Best effort: the refusal below stands without the details.
    }
    throw new Error(
      `another tortie agent is already answering on ${path}${who}; stop it first, or set TORTIE_CTL_SOCKET to another path`,
    );
  }
  if (existing === 'stale') await unlink(path).catch(() => undefined);

  const temporary = join(dirname(path), `.${basename(path)}.${process.pid}.${temporaryCount++}`);
  if (Buffer.byteLength(temporary) > MAX_SOCKET_PATH_BYTES) {
    throw new Error(
      `control socket path ${path} is too long: a Unix socket path may have ${MAX_SOCKET_PATH_BYTES} bytes and tortie binds it under a temporary name ${Buffer.byteLength(temporary) - Buffer.byteLength(path)} bytes longer; choose a shorter TORTIE_CTL_SOCKET`,
    );
  }
  // In the order they came: over the cap the oldest gives way (see header).
  const connections = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    connections.add(socket);
    socket.once('close', () => connections.delete(socket));
    if (connections.size > limits.maxConnections) {
      const oldest = connections.values().next().value;
      if (oldest !== undefined) {
        connections.delete(oldest);
        oldest.destroy();
      }
    }
    handleConnection(socket, provider, limits, options.log);
  });
  let inode: number;
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(temporary, () => {
        server.off('error', reject);
        resolve();
      });
    });
    // After listen: an error (accept failing with EMFILE, say) is logged; without a listener it would be thrown.
    server.on('error', (error: Error) => options.log?.warn({ err: error.message }, 'control socket error'));
    await chmod(temporary, 0o600);
    await rename(temporary, path);
    inode = (await lstat(path)).ino;
  } catch (error) {
    if (server.listening) await new Promise<void>((resolve) => server.close(() => resolve()));
    await unlink(temporary).catch(() => undefined);
    throw new Error(
      `cannot create the control socket ${path}: ${error instanceof Error ? error.message : String(error)}`,
    );
  }

  let closed: Promise<void> | null = null;
  return {
    path,
    close() {
      closed ??= (async () => {
        const stopped = new Promise<void>((resolve) => server.close(() => resolve()));
        for (const socket of connections) socket.destroy();
        await stopped;
        const now = await lstat(path).catch(() => null);
        if (now && now.ino === inode) await unlink(path).catch(() => undefined);
      })();
      return closed;
    },
  };
}

/** A failed query, for people: names the socket path and the cause. */
export class ControlError extends Error {
  readonly path: string;
  readonly code: string;
  constructor(path: string, code: string, message: string) {
    super(message);
    this.name = 'ControlError';
    this.path = path;
    this.code = code;
  }
}

/** What each connect failure means to a person running `tortie node status`. */
const CONNECT_ERRORS: Readonly<Record<string, (path: string) => string>> = {
  ENOENT: (path) => `no tortie agent is running (no socket at ${path})`,
  ECONNREFUSED: (path) =>
    `no tortie agent is running (socket ${path} exists but nothing accepts connections on it; it was left by an agent that exited)`,
  EACCES: (path) =>
    `permission denied on the agent's socket ${path}: tortie node status needs root (the socket is mode 0600)`,
  EPERM: (path) =>
    `permission denied on the agent's socket ${path}: tortie node status needs root (the socket is mode 0600)`,
  ENOTDIR: (path) => `no tortie agent is running (${path} is not a usable socket path)`,
};

/** The ControlError for a failed connection to `path` (exported for tests: EACCES cannot be provoked as root). */
export function connectError(path: string, error: NodeJS.ErrnoException): ControlError {
  const code = error.code ?? 'UNKNOWN';
  const describe = CONNECT_ERRORS[code];
  return new ControlError(
    path,
    code,
    describe ? describe(path) : `cannot reach the tortie agent on ${path}: ${error.message}`,
  );
}

function parseResponse(path: string, line: string): ControlResponse {
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch {
    throw new ControlError(
      path,
      'EPROTO',
      `the process on ${path} answered something that is not JSON: ${JSON.stringify(line.slice(0, 80))}`,
    );
  }
  if (typeof value !== 'object' || value === null || typeof (value as { ok?: unknown }).ok !== 'boolean') {
    throw new ControlError(
      path,
      'EPROTO',
      `the process on ${path} answered without an "ok" field: ${JSON.stringify(line.slice(0, 80))}`,
    );
  }
  return value as ControlResponse;
}

/**
 * Sends one request to the agent on `path` and resolves with its answer; rejects with a ControlError. The
 * whole exchange is bounded by `timeoutMs` on `clock`.
 */
export function queryControl(
  path: string,
  request: ControlRequest,
  timeoutMs = DEFAULT_QUERY_TIMEOUT_MS,
  clock: Clock = systemClock,
): Promise<ControlResponse> {
  return new Promise((resolve, reject) => {
    const socket = net.createConnection(path);
    const chunks: Buffer[] = [];
    let size = 0;
    let settled = false;
    const finish = (outcome: { response: ControlResponse } | { error: ControlError }) => {
      if (settled) return;
      settled = true;
      clock.clearTimeout(timer);
      socket.destroy();
      if ('response' in outcome) resolve(outcome.response);
      else reject(outcome.error);
    };
    const timer = clock.setTimeout(
      () =>
        finish({
          error: new ControlError(
            path,
            'ETIMEDOUT',
            `the tortie agent on ${path} did not answer within ${timeoutMs} ms`,
          ),
        }),
      timeoutMs,
    );
    const complete = () => {
      const text = Buffer.concat(chunks).toString('utf8');
      const newline = text.indexOf('\n');
      if (newline < 0) {
        finish({
          error: new ControlError(
            path,
            'EPROTO',
            `the tortie agent on ${path} closed the connection without a complete answer`,
          ),
        });
        return;
      }
      try {
        finish({ response: parseResponse(path, text.slice(0, newline)) });
      } catch (error) {
        finish({ error: error as ControlError });
      }
    };
    socket.once('connect', () => socket.write(`${JSON.stringify(request)}\n`));
    socket.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > MAX_RESPONSE_BYTES) {
        finish({
          error: new ControlError(
            path,
            'EMSGSIZE',
            `the answer from ${path} is larger than ${MAX_RESPONSE_BYTES} bytes`,
          ),
        });
        return;
      }
      chunks.push(chunk);
      if (chunk.includes(10)) complete();
    });
    socket.once('end', complete);
    socket.once('error', (error: NodeJS.ErrnoException) => finish({ error: connectError(path, error) }));
  });
}
