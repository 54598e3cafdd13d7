// The etcd datastore over etcd's HTTP/JSON gateway instead of gRPC: the same Range, Txn and Watch calls
// (etcd 3.4 and 3.5 serve them on the client port at /v3/kv/range, /v3/kv/txn, /v3/watch), sent as JSON
// with keys and values in base64 and 64-bit numbers as decimal strings, over node:http(s) with keep-alive.
// What the calls mean is ./etcd-store.ts, shared with the gRPC transport (./etcd.ts), so the key layout,
// revisions and compare-and-swap are the same code.
//
// Why it exists: the CNI plugin is a new process per pod, and loading package etcd3 (grpc-js, protobufjs,
// the .proto files compiled at load) costs it ~200 ms of a ~400 ms ADD; node:http costs ~5 ms.
//
// Why this is hard:
// - The gateway is a proxy inside etcd that dials etcd's own gRPC server. Under TLS with client-certificate
//   auth, etcd 3.4 dials with its *server* certificate as the client one; a server certificate without
//   the clientAuth usage (common in hand-made PKIs) makes every gateway call fail with "connection closed"
//   (code 14) while gRPC works. With etcd's RBAC on, the gateway also ignores the client certificate's CN.
//   openEtcdGateway() therefore checks one read first and, when etcd answers over HTTP but the gateway
//   cannot serve, rejects with EtcdGatewayUnusableError so the caller can use gRPC instead
//   (src/datastore/index.ts does). A connection that fails outright is "unavailable", as with gRPC.
// - The JSON leaves out every field at its zero value: `succeeded` of a failed transaction, `kvs` of an
//   empty range, `type` of a PUT event, `create_revision` of a delete event — decoding fills them in.
// - Failing over to the next endpoint is only safe for a write when the request cannot have reached etcd
//   (the connection — for https the TLS handshake — was never made): a write that timed out may have
//   happened, and sending it again would make a successful create look like "already exists". A read may
//   go on after any transport failure. A member that never completes a connection, or accepts and never
//   answers, must not use the whole deadline: each connect has its own limit (while other members are left
//   to try), a read shares the time left among the members not yet tried, and a call that fails moves the
//   start of the next call to the next member (a CNI process usually makes a read first).
// - Keep-alive sockets are shared by requests one after the other: a listener added per request must be
//   removed when it settles, and a reused socket is already connected (no connect event will come).

import { readFile } from 'node:fs/promises';
import type { Agent as HttpAgent, ClientRequest, IncomingMessage, RequestOptions } from 'node:http';
import type { Socket } from 'node:net';
import {
  EtcdStore,
  type EtcdTransport,
  type KeyValue,
  type RangeRequest,
  type RangeResponse,
  type RequestOp,
  type TxnRequest,
  type TxnResponse,
  type WatchCreateRequest,
  type WatchHandlers,
  type WatchResponse,
  type WatchStreamHandle,
} from './etcd-store.js';
import { DatastoreError, type Datastore } from './types.js';

export interface EtcdGatewayOptions {
  /** http://HOST:PORT or https://HOST:PORT (all of one scheme). */
  endpoints: string[];
  caFile?: string;
  certFile?: string;
  keyFile?: string;
  /** Deadline of each call and of the connection check (default 5000 ms). */
  timeoutMs?: number;
}

/** etcd answered over HTTP, but its gateway cannot serve this client (see the header): use gRPC. */
export class EtcdGatewayUnusableError extends DatastoreError {}

/** The gateway's answer to a call that did not succeed: its gRPC status code and message. */
export class EtcdGatewayError extends Error {
  constructor(
    message: string,
    /** gRPC status code from the answer's JSON; undefined when the answer was not the gateway's JSON. */
    readonly grpcCode: number | undefined,
    readonly httpStatus: number,
  ) {
    super(message);
    this.name = 'EtcdGatewayError';
  }
}

/** An answer that is not what etcd's gateway sends (not JSON, a field of the wrong type). */
export class EtcdGatewayAnswerError extends Error {
  constructor(message: string) {
    super(`etcd gateway: ${message}`);
    this.name = 'EtcdGatewayAnswerError';
  }
}

/**
 * gRPC status codes that are etcd's answer rather than a failure to reach it (as package etcd3's error
 * classes that ./etcd.ts treats as refusals): INVALID_ARGUMENT 3, PERMISSION_DENIED 7, RESOURCE_EXHAUSTED 8,
 * FAILED_PRECONDITION 9, OUT_OF_RANGE 11, UNIMPLEMENTED 12, UNAUTHENTICATED 16.
 */
const REFUSAL_CODES: ReadonlySet<number> = new Set([3, 7, 8, 9, 11, 12, 16]);

// ---------------------------------------------------------------------------------------------------------
// JSON both ways (pure)

const b64 = (bytes: Buffer): string => bytes.toString('base64');

type Json = Record<string, unknown>;

function object(value: unknown, what: string): Json {
  if (typeof value !== 'object' || value === null || Array.isArray(value))
    throw new EtcdGatewayAnswerError(`${what} is not a JSON object: ${JSON.stringify(value)?.slice(0, 200)}`);
  return value as Json;
}

function list(value: unknown, what: string): unknown[] {
  if (value === undefined) return [];
  if (!Array.isArray(value))
    throw new EtcdGatewayAnswerError(`${what} is not a list: ${JSON.stringify(value).slice(0, 200)}`);
  return value;
}

/** An int64 field: a decimal string (absent means 0). */
function int64(value: unknown, what: string): string {
  if (value === undefined) return '0';
  if ((typeof value === 'string' && /^-?\d+$/.test(value)) || (typeof value === 'number' && Number.isInteger(value)))
    return String(value);
  throw new EtcdGatewayAnswerError(`${what} is not an integer: ${JSON.stringify(value)}`);
}

function bytes(value: unknown, what: string): Buffer {
  if (value === undefined) return Buffer.alloc(0);
  if (typeof value !== 'string')
    throw new EtcdGatewayAnswerError(`${what} is not base64 text: ${JSON.stringify(value).slice(0, 200)}`);
  return Buffer.from(value, 'base64');
}

export function encodeRange(request: RangeRequest): Json {
  return {
    key: b64(request.key),
    ...(request.range_end !== undefined ? { range_end: b64(request.range_end) } : {}),
    ...(request.limit !== undefined ? { limit: String(request.limit) } : {}),
    ...(request.keys_only ? { keys_only: true } : {}),
  };
}

function encodeOp(op: RequestOp): Json {
  if ('request_put' in op) return { request_put: { key: b64(op.request_put.key), value: b64(op.request_put.value) } };
  if ('request_range' in op) return { request_range: { key: b64(op.request_range.key) } };
  return { request_delete_range: { key: b64(op.request_delete_range.key), prev_kv: op.request_delete_range.prev_kv } };
}

/** The gateway's enum names (rpc.proto Compare.CompareTarget / CompareResult). */
const TARGETS = { Create: 'CREATE', Mod: 'MOD' } as const;
const RESULTS = { Equal: 'EQUAL', Greater: 'GREATER' } as const;

export function encodeTxn(request: TxnRequest): Json {
  return {
    compare: request.compare.map((c) => ({
      key: b64(c.key),
      target: TARGETS[c.target],
      result: RESULTS[c.result],
      ...(c.target === 'Create'
        ? { create_revision: String(c.create_revision) }
        : { mod_revision: String(c.mod_revision) }),
    })),
    success: request.success.map(encodeOp),
    failure: request.failure.map(encodeOp),
  };
}

export function encodeWatchCreate(request: WatchCreateRequest): Json {
  return {
    create_request: {
      key: b64(request.key),
      range_end: b64(request.range_end),
      prev_kv: request.prev_kv,
      start_revision: String(request.start_revision),
    },
  };
}

export function decodeKv(value: unknown, what = 'kv'): KeyValue {
  const kv = object(value, what);
  return {
    key: bytes(kv.key, `${what}.key`),
    value: bytes(kv.value, `${what}.value`),
    create_revision: int64(kv.create_revision, `${what}.create_revision`),
    mod_revision: int64(kv.mod_revision, `${what}.mod_revision`),
  };
}

function headerRevision(body: Json): string {
  const header = body.header === undefined ? {} : object(body.header, 'header');
  return int64(header.revision, 'header.revision');
}

export function decodeRange(value: unknown): RangeResponse {
  const body = object(value, 'range response');
  return { revision: headerRevision(body), kvs: list(body.kvs, 'kvs').map((kv, i) => decodeKv(kv, `kvs[${i}]`)) };
}

export function decodeTxn(value: unknown): TxnResponse {
  const body = object(value, 'txn response');
  if (body.succeeded !== undefined && typeof body.succeeded !== 'boolean')
    throw new EtcdGatewayAnswerError(`succeeded is not a boolean: ${JSON.stringify(body.succeeded)}`);
  return {
    revision: headerRevision(body),
    succeeded: body.succeeded === true,
    responses: list(body.responses, 'responses').map((raw, i) => {
      const op = object(raw, `responses[${i}]`);
      const range =
        op.response_range === undefined ? undefined : object(op.response_range, `responses[${i}].response_range`);
      const del =
        op.response_delete_range === undefined
          ? undefined
          : object(op.response_delete_range, `responses[${i}].response_delete_range`);
      return {
        ...(range
          ? {
              response_range: { kvs: list(range.kvs, 'kvs').map((kv, j) => decodeKv(kv, `responses[${i}].kvs[${j}]`)) },
            }
          : {}),
        ...(del
          ? {
              response_delete_range: {
                prev_kvs: list(del.prev_kvs, 'prev_kvs').map((kv, j) => decodeKv(kv, `responses[${i}].prev_kvs[${j}]`)),
              },
            }
          : {}),
      };
    }),
  };
}

export function decodeWatchResponse(value: unknown): WatchResponse {
  const body = object(value, 'watch response');
  return {
    created: body.created === true,
    canceled: body.canceled === true,
    cancel_reason: typeof body.cancel_reason === 'string' ? body.cancel_reason : '',
    compact_revision: int64(body.compact_revision, 'compact_revision'),
    events: list(body.events, 'events').map((raw, i) => {
      const event = object(raw, `events[${i}]`);
      if (event.type !== undefined && event.type !== 'PUT' && event.type !== 'DELETE')
        throw new EtcdGatewayAnswerError(`events[${i}].type ${JSON.stringify(event.type)} is not PUT or DELETE`);
      return {
        type: event.type === 'DELETE' ? ('Delete' as const) : ('Put' as const),
        kv: decodeKv(event.kv, `events[${i}].kv`),
        ...(event.prev_kv !== undefined ? { prev_kv: decodeKv(event.prev_kv, `events[${i}].prev_kv`) } : {}),
      };
    }),
  };
}

/** The gateway's error JSON ({"error", "message", "code"}, or a stream's {"grpc_code", "message"}) → an error. */
export function gatewayError(httpStatus: number, text: string): EtcdGatewayError {
  let parsed: Json | undefined;
  try {
    const value: unknown = JSON.parse(text);
    parsed = typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as Json) : undefined;
  } catch {
    parsed = undefined;
  }
  const code =
    typeof parsed?.code === 'number'
      ? parsed.code
      : typeof parsed?.grpc_code === 'number'
        ? parsed.grpc_code
        : undefined;
  const message =
    typeof parsed?.message === 'string' && parsed.message !== ''
      ? parsed.message
      : typeof parsed?.error === 'string'
        ? parsed.error
        : text.trim().slice(0, 300) || `HTTP ${httpStatus}`;
  return new EtcdGatewayError(
    code !== undefined ? `${message} (gRPC code ${code}, HTTP ${httpStatus})` : `HTTP ${httpStatus}: ${message}`,
    code,
    httpStatus,
  );
}

// ---------------------------------------------------------------------------------------------------------
// HTTP

type RequestFn = (url: URL, options: RequestOptions, callback: (response: IncomingMessage) => void) => ClientRequest;

/** How to send: node:http or node:https, its keep-alive agent, and the socket event that means "connected". */
export interface GatewayClient {
  request: RequestFn;
  agent: HttpAgent;
  /** 'connect' for http; 'secureConnect' for https (the TLS handshake is part of connecting). */
  connectEvent: 'connect' | 'secureConnect';
}

/** The connection could not be made: the request cannot have reached etcd, so another endpoint may be tried. */
class NotConnectedError extends Error {}

/** The connection was made and then failed or went quiet: the request may have reached etcd. */
class MaybeSentError extends Error {
  constructor(
    message: string,
    /** The request went over a kept-alive socket (which the server may have closed while it was idle). */
    readonly reusedSocket: boolean,
  ) {
    super(message);
  }
}

/** Longest wait for one member's connection while other members are left to try. */
const CONNECT_TIMEOUT_MS = 1000;

export class GatewayTransport implements EtcdTransport {
  /** The endpoint that answered last, or the one after the endpoint that failed last: calls start there. */
  private current = 0;
  private readonly streams = new Set<ClientRequest>();
  private readonly connectTimeoutMs: number;

  constructor(
    private readonly client: GatewayClient,
    readonly endpoints: readonly string[],
    readonly timeoutMs: number,
  ) {
    this.connectTimeoutMs = Math.max(1, Math.min(CONNECT_TIMEOUT_MS, Math.floor(timeoutMs / endpoints.length)));
  }

  /**
   * One POST; resolves to the parsed 200 answer. Gives up at `connectBy` when not connected by then
   * (NotConnectedError) and at `answerBy` when connected but not answered (MaybeSentError).
   */
  private post(endpoint: string, path: string, body: string, connectBy: number, answerBy: number): Promise<unknown> {
    return new Promise((resolve, reject) => {
      let connected = false;
      let settled = false;
      let socket: Socket | undefined;
      const onConnected = (): void => {
        connected = true;
        clearTimeout(connectTimer);
      };
      // Every timer and the listener on a (kept-alive, shared) socket go when the request settles.
      const settle = (): boolean => {
        if (settled) return false;
        settled = true;
        clearTimeout(connectTimer);
        clearTimeout(answerTimer);
        socket?.removeListener(this.client.connectEvent, onConnected);
        return true;
      };
      const fail = (err: Error): void => {
        if (!settle()) return;
        reject(
          connected
            ? new MaybeSentError(`${endpoint}: ${err.message}`, req.reusedSocket)
            : new NotConnectedError(`${endpoint}: ${err.message}`),
        );
      };
      const req = this.client.request(
        new URL(path, endpoint),
        {
          method: 'POST',
          agent: this.client.agent,
          headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) },
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (chunk: Buffer) => chunks.push(chunk));
          res.on('error', fail);
          res.on('end', () => {
            if (!settle()) return;
            const text = Buffer.concat(chunks).toString('utf8');
            if (res.statusCode !== 200) {
              reject(gatewayError(res.statusCode ?? 0, text));
              return;
            }
            try {
              resolve(JSON.parse(text));
            } catch {
              reject(
                new EtcdGatewayAnswerError(
                  `${endpoint}${path} answered with something that is not JSON: ${text.slice(0, 200)}`,
                ),
              );
            }
          });
        },
      );
      const connectMs = Math.max(1, connectBy - Date.now());
      const connectTimer = setTimeout(() => {
        if (!connected) req.destroy(new Error(`no connection within ${connectMs} ms`));
      }, connectMs);
      const answerMs = Math.max(1, answerBy - Date.now());
      const answerTimer = setTimeout(() => req.destroy(new Error(`no answer within ${answerMs} ms`)), answerMs);
      req.on('socket', (s) => {
        // A kept-alive socket was connected long ago; a new one is connected at its connect event (for https
        // after the TLS handshake, before which no byte of the request is sent).
        if (req.reusedSocket) return onConnected();
        socket = s;
        s.once(this.client.connectEvent, onConnected);
      });
      req.on('error', fail);
      req.end(body);
    });
  }

  /**
   * POSTs to the current endpoint and on to the others. Any call moves on when the connection was never made
   * (nothing was sent). A read (`idempotent`) also moves on after a failure once connected, and shares the
   * time left among the endpoints not yet tried, so a member that accepts and never answers leaves time for
   * the others; a read that failed on a kept-alive socket is first tried once more on the same endpoint. A
   * write that may have been sent is never sent again (it could apply twice): it fails, and the next call
   * starts at the next endpoint.
   */
  private async call(path: string, request: Json, idempotent: boolean): Promise<unknown> {
    const body = JSON.stringify(request);
    const deadline = Date.now() + this.timeoutMs;
    const count = this.endpoints.length;
    const failures: string[] = [];
    let index = this.current;
    let untried = count;
    let staleRetry = idempotent;
    while (untried > 0 && Date.now() < deadline) {
      const now = Date.now();
      const answerBy = idempotent ? now + (deadline - now) / untried : deadline;
      // The last endpoint left may take all the time there is to connect.
      const connectBy = untried > 1 ? Math.min(answerBy, now + this.connectTimeoutMs) : answerBy;
      try {
        const answer = await this.post(this.endpoints[index]!, path, body, connectBy, answerBy);
        this.current = index;
        return answer;
      } catch (err) {
        if (!this.isRefusal(err)) this.current = (index + 1) % count;
        const retry = err instanceof NotConnectedError || (idempotent && err instanceof MaybeSentError);
        if (!retry) throw err;
        failures.push(err.message);
        if (err instanceof MaybeSentError && err.reusedSocket && staleRetry) {
          staleRetry = false;
          continue;
        }
        index = (index + 1) % count;
        untried--;
      }
    }
    throw new Error(failures.length > 0 ? failures.join('; ') : `no answer within ${this.timeoutMs} ms`);
  }

  async range(request: RangeRequest): Promise<RangeResponse> {
    return decodeRange(await this.call('/v3/kv/range', encodeRange(request), true));
  }

  async txn(request: TxnRequest): Promise<TxnResponse> {
    return decodeTxn(await this.call('/v3/kv/txn', encodeTxn(request), false));
  }

  /** A streaming POST to /v3/watch: one JSON message per line ({"result": …} or {"error": …}). */
  watch(request: WatchCreateRequest, handlers: WatchHandlers): WatchStreamHandle {
    const endpoint = this.endpoints[this.current]!;
    let done = false;
    const finish = (err: unknown): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      this.streams.delete(req);
      req.destroy();
      // Next time, the next endpoint (this one may be the one that went away).
      if (this.endpoints.length > 1) this.current = (this.current + 1) % this.endpoints.length;
      queueMicrotask(() => handlers.onBroken(err));
    };
    const body = JSON.stringify(encodeWatchCreate(request));
    const req = this.client.request(
      new URL('/v3/watch', endpoint),
      {
        method: 'POST',
        agent: this.client.agent,
        headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) },
      },
      (res) => {
        clearTimeout(timer);
        if (res.statusCode !== 200) {
          const chunks: Buffer[] = [];
          res.on('data', (chunk: Buffer) => chunks.push(chunk));
          res.on('end', () => finish(gatewayError(res.statusCode ?? 0, Buffer.concat(chunks).toString('utf8'))));
          res.on('error', finish);
          return;
        }
        let pending = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => {
          pending += chunk;
          for (let newline = pending.indexOf('\n'); newline >= 0 && !done; newline = pending.indexOf('\n')) {
            const line = pending.slice(0, newline).trim();
            pending = pending.slice(newline + 1);
            if (line === '') continue;
            let message: Json;
            let response: WatchResponse;
            try {
              message = object(JSON.parse(line), 'watch message');
              if (message.error !== undefined) {
                finish(gatewayError(res.statusCode ?? 200, JSON.stringify(message.error)));
                return;
              }
              response = decodeWatchResponse(message.result);
            } catch (err) {
              finish(err);
              return;
            }
            handlers.onResponse(response);
          }
        });
        res.on('error', finish);
        res.on('end', () => finish(new Error('watch stream ended')));
      },
    );
    // Until the stream answers, the unary deadline applies; after that the stream has none (as with gRPC).
    const timer = setTimeout(() => finish(new Error(`watch: no answer within ${this.timeoutMs} ms`)), this.timeoutMs);
    req.on('error', finish);
    this.streams.add(req);
    req.end(body);
    return {
      cancel: () => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        this.streams.delete(req);
        req.destroy();
      },
    };
  }

  isRefusal(error: unknown): boolean {
    return error instanceof EtcdGatewayError && error.grpcCode !== undefined && REFUSAL_CODES.has(error.grpcCode);
  }

  close(): void {
    for (const req of this.streams) req.destroy();
    this.streams.clear();
    this.client.agent.destroy();
  }
}

/**
 * The gateway's answers that mean it cannot serve this client while gRPC may (see the header): its own dial
 * to etcd's gRPC server failing (code 14 with a connection or transport message, not e.g. "no leader"), or
 * permission/authentication refused (codes 7, 16: the gateway does not pass the client certificate's CN).
 * Anything else (no leader, 429, a 404 from some other server, an answer that is not JSON) is treated as
 * etcd being unavailable, as the gRPC transport would.
 */
export function gatewayCannotServe(err: unknown): boolean {
  if (!(err instanceof EtcdGatewayError)) return false;
  if (err.grpcCode === 7 || err.grpcCode === 16) return true;
  return err.grpcCode === 14 && /connection closed|transport:|SubConns|handshake/i.test(err.message);
}

/**
 * Opens the etcd datastore over the JSON gateway and checks one read within `timeoutMs` (default 5 s).
 * Rejects with DatastoreUnavailableError naming the endpoints when etcd cannot be reached, and with
 * EtcdGatewayUnusableError when etcd answers but its gateway cannot serve the read (gatewayCannotServe).
 */
export async function openEtcdGateway(options: EtcdGatewayOptions): Promise<Datastore> {
  if (options.endpoints.length === 0)
    throw new Error('etcd endpoints: none given (expected e.g. ["http://127.0.0.1:2379"])');
  const schemes = new Set(options.endpoints.map((e) => new URL(e).protocol));
  if (schemes.size > 1)
    throw new Error(`etcd endpoints ${options.endpoints.join(', ')}: mix http and https; use one scheme for all`);
  const timeoutMs = options.timeoutMs ?? 5000;
  let client: GatewayClient;
  if (schemes.has('https:')) {
    const https = await import('node:https');
    const [ca, cert, key] = await Promise.all(
      [options.caFile, options.certFile, options.keyFile].map((file) =>
        file !== undefined ? readFile(file) : undefined,
      ),
    );
    client = {
      request: https.request,
      agent: new https.Agent({
        keepAlive: true,
        ...(ca ? { ca } : {}),
        ...(cert ? { cert } : {}),
        ...(key ? { key } : {}),
      }),
      connectEvent: 'secureConnect',
    };
  } else {
    const http = await import('node:http');
    client = { request: http.request, agent: new http.Agent({ keepAlive: true }), connectEvent: 'connect' };
  }
  const transport = new GatewayTransport(client, options.endpoints, timeoutMs);
  const ds = new EtcdStore(transport);
  try {
    await transport.range({ key: Buffer.from('/calico/'), limit: 1, keys_only: true });
  } catch (err) {
    transport.close();
    if (gatewayCannotServe(err)) {
      throw new EtcdGatewayUnusableError(
        `etcd at ${options.endpoints.join(', ')} answered, but its HTTP/JSON gateway cannot serve this client: ${(err as EtcdGatewayError).message}`,
      );
    }
    throw ds.unavailable('connection check', err);
  }
  return ds;
}
