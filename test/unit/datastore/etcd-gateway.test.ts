// The JSON of etcd's HTTP/JSON gateway both ways (src/datastore/etcd-gateway.ts), pure: requests as the
// gateway expects them (base64 keys, int64 as strings, enum names), and answers captured from etcd 3.4.23
// (curl against /v3/kv/range, /v3/kv/txn, /v3/watch) decoded with the fields etcd leaves out at their zero
// value filled in. The same code against a real etcd: test/integration/etcd-gateway.test.ts.

import { Agent, createServer, request as httpRequest } from 'node:http';
import { type AddressInfo, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { silentMember } from '../../harness/silent-member.js';
import {
  EtcdGatewayAnswerError,
  GatewayTransport,
  gatewayCannotServe,
  decodeRange,
  decodeTxn,
  decodeWatchResponse,
  encodeRange,
  encodeTxn,
  encodeWatchCreate,
  gatewayError,
} from '../../../src/datastore/etcd-gateway.js';

const key = (s: string): Buffer => Buffer.from(s);
const HEADER = { cluster_id: '7801232528081817440', member_id: '13458989633860879742', revision: '2', raft_term: '2' };

describe('requests', () => {
  it('a prefix range: base64 key and range_end, limit as a string, keys_only only when set', () => {
    expect(encodeRange({ key: key('/calico/'), range_end: key('/calico0'), limit: 1, keys_only: true })).toEqual({
      key: 'L2NhbGljby8=',
      range_end: 'L2NhbGljbzA=',
      limit: '1',
      keys_only: true,
    });
    expect(encodeRange({ key: key('/x') })).toEqual({ key: 'L3g=' });
  });

  it('a create, an update and a delete transaction: enum names, revisions as strings, each operation', () => {
    expect(
      encodeTxn({
        compare: [{ key: key('/x'), target: 'Create', result: 'Equal', create_revision: 0 }],
        success: [{ request_put: { key: key('/x'), value: key('hello') } }],
        failure: [],
      }),
    ).toEqual({
      compare: [{ key: 'L3g=', target: 'CREATE', result: 'EQUAL', create_revision: '0' }],
      success: [{ request_put: { key: 'L3g=', value: 'aGVsbG8=' } }],
      failure: [],
    });
    expect(
      encodeTxn({
        compare: [{ key: key('/x'), target: 'Mod', result: 'Equal', mod_revision: '17' }],
        success: [{ request_delete_range: { key: key('/x'), prev_kv: true } }],
        failure: [{ request_range: { key: key('/x') } }],
      }),
    ).toEqual({
      compare: [{ key: 'L3g=', target: 'MOD', result: 'EQUAL', mod_revision: '17' }],
      success: [{ request_delete_range: { key: 'L3g=', prev_kv: true } }],
      failure: [{ request_range: { key: 'L3g=' } }],
    });
    expect(
      encodeTxn({
        compare: [{ key: key('/x'), target: 'Create', result: 'Greater', create_revision: 0 }],
        success: [],
        failure: [],
      }).compare,
    ).toEqual([{ key: 'L3g=', target: 'CREATE', result: 'GREATER', create_revision: '0' }]);
  });

  it('a watch from a revision, with previous values', () => {
    expect(encodeWatchCreate({ key: key('/w/'), range_end: key('/w0'), prev_kv: true, start_revision: 5 })).toEqual({
      create_request: { key: 'L3cv', range_end: 'L3cw', prev_kv: true, start_revision: '5' },
    });
  });
});

describe('answers captured from etcd 3.4', () => {
  it('an empty range has no kvs field', () => {
    expect(decodeRange({ header: { ...HEADER, revision: '1' } })).toEqual({ revision: '1', kvs: [] });
  });

  it('a range with a value', () => {
    const out = decodeRange({
      header: HEADER,
      kvs: [{ key: 'L3g=', create_revision: '2', mod_revision: '2', version: '1', value: 'aGVsbG8=' }],
      count: '1',
    });
    expect(out.revision).toBe('2');
    expect(out.kvs.map((kv) => [kv.key.toString(), kv.value.toString(), kv.create_revision, kv.mod_revision])).toEqual([
      ['/x', 'hello', '2', '2'],
    ]);
  });

  it('a transaction that succeeded, and one that failed (no `succeeded` field at all) with its range', () => {
    expect(
      decodeTxn({ header: HEADER, succeeded: true, responses: [{ response_put: { header: { revision: '2' } } }] }),
    ).toEqual({ revision: '2', succeeded: true, responses: [{}] });
    const failed = decodeTxn({
      header: HEADER,
      responses: [
        {
          response_range: {
            header: { revision: '2' },
            kvs: [{ key: 'L3g=', create_revision: '2', mod_revision: '2', version: '1', value: 'aGVsbG8=' }],
            count: '1',
          },
        },
      ],
    });
    expect(failed.succeeded).toBe(false);
    expect(failed.responses[0]?.response_range?.kvs[0]?.mod_revision).toBe('2');
    const nothing = decodeTxn({ header: HEADER, responses: [{ response_range: { header: { revision: '2' } } }] });
    expect(nothing.responses[0]?.response_range?.kvs).toEqual([]);
  });

  it('a delete with prev_kv', () => {
    const out = decodeTxn({
      header: { ...HEADER, revision: '3' },
      succeeded: true,
      responses: [
        {
          response_delete_range: {
            header: { revision: '3' },
            deleted: '1',
            prev_kvs: [{ key: 'L3g=', create_revision: '2', mod_revision: '2', version: '1', value: 'aGVsbG8=' }],
          },
        },
      ],
    });
    expect(out.revision).toBe('3');
    expect(out.responses[0]?.response_delete_range?.prev_kvs[0]?.value.toString()).toBe('hello');
  });

  it('watch messages: created, a PUT (no `type`), a DELETE (no value, no create_revision), a compaction', () => {
    expect(decodeWatchResponse({ header: { ...HEADER, revision: '3' }, created: true })).toEqual({
      created: true,
      canceled: false,
      cancel_reason: '',
      compact_revision: '0',
      events: [],
    });
    const put = decodeWatchResponse({
      header: HEADER,
      events: [
        {
          kv: { key: 'L3cvYQ==', create_revision: '4', mod_revision: '5', version: '2', value: 'djI=' },
          prev_kv: { key: 'L3cvYQ==', create_revision: '4', mod_revision: '4', version: '1', value: 'djE=' },
        },
      ],
    });
    expect(
      put.events.map((e) => [
        e.type,
        e.kv.key.toString(),
        e.kv.value.toString(),
        e.kv.create_revision,
        e.kv.mod_revision,
        e.prev_kv?.value.toString(),
      ]),
    ).toEqual([['Put', '/w/a', 'v2', '4', '5', 'v1']]);
    const del = decodeWatchResponse({
      header: HEADER,
      events: [
        {
          type: 'DELETE',
          kv: { key: 'L3cvYQ==', mod_revision: '6' },
          prev_kv: { key: 'L3cvYQ==', create_revision: '4', mod_revision: '5', version: '2', value: 'djI=' },
        },
      ],
    });
    expect(
      del.events.map((e) => [
        e.type,
        e.kv.value.length,
        e.kv.create_revision,
        e.kv.mod_revision,
        e.prev_kv?.value.toString(),
      ]),
    ).toEqual([['Delete', 0, '0', '6', 'v2']]);
    expect(
      decodeWatchResponse({
        header: { cluster_id: '1', member_id: '2', raft_term: '2' },
        canceled: true,
        compact_revision: '3',
      }),
    ).toMatchObject({ canceled: true, compact_revision: '3' });
  });

  it('errors: the gRPC code and message of a unary error, of a stream error, and of something else', () => {
    const unary = gatewayError(
      400,
      '{"error":"illegal base64 data at input byte 9","message":"illegal base64 data at input byte 9","code":3}',
    );
    expect([unary.grpcCode, unary.httpStatus, unary.message]).toEqual([
      3,
      400,
      'illegal base64 data at input byte 9 (gRPC code 3, HTTP 400)',
    ]);
    const closed = gatewayError(503, '{"error":"connection closed","message":"connection closed","code":14}');
    expect([closed.grpcCode, closed.message]).toEqual([14, 'connection closed (gRPC code 14, HTTP 503)']);
    const stream = gatewayError(
      200,
      '{"grpc_code":7,"http_code":403,"message":"etcdserver: permission denied","http_status":"Forbidden"}',
    );
    expect([stream.grpcCode, stream.message]).toEqual([7, 'etcdserver: permission denied (gRPC code 7, HTTP 200)']);
    const other = gatewayError(404, '404 page not found\n');
    expect([other.grpcCode, other.message]).toEqual([undefined, 'HTTP 404: 404 page not found']);
  });
});

describe("answers that are not the gateway's", () => {
  const BAD: Array<{ name: string; decode: () => unknown; says: RegExp }> = [
    { name: 'a range that is a list', decode: () => decodeRange([]), says: /range response is not a JSON object/ },
    {
      name: 'a revision that is not a number',
      decode: () => decodeRange({ header: { revision: 'seven' } }),
      says: /header\.revision is not an integer: "seven"/,
    },
    { name: 'kvs that is not a list', decode: () => decodeRange({ kvs: {} }), says: /kvs is not a list/ },
    {
      name: 'a key that is not text',
      decode: () => decodeRange({ kvs: [{ key: 5 }] }),
      says: /kvs\[0\]\.key is not base64 text: 5/,
    },
    {
      name: 'succeeded that is not a boolean',
      decode: () => decodeTxn({ succeeded: 'yes' }),
      says: /succeeded is not a boolean/,
    },
    {
      name: 'an event type etcd does not send',
      decode: () => decodeWatchResponse({ events: [{ type: 'EXPIRE', kv: {} }] }),
      says: /events\[0\]\.type "EXPIRE" is not PUT or DELETE/,
    },
  ];
  it('has rows', () => expect(BAD.length).toBeGreaterThan(0));
  for (const row of BAD) {
    it(`are refused naming the field: ${row.name}`, () => {
      expect(row.decode).toThrow(EtcdGatewayAnswerError);
      expect(row.decode).toThrow(row.says);
    });
  }
});

// ---------------------------------------------------------------------------------------------------------
// The transport against stand-ins on 127.0.0.1: a fake gateway that answers Range and Txn and counts what it
// got, and a "silent member" that accepts TCP connections and never sends a byte.

interface FakeGateway {
  endpoint: string;
  got: { range: number; txn: number; connections: number };
  /** The nth request (1-based) on one connection kills that connection without an answer; 0: never. */
  dropNthOnConnection: number;
  close(): Promise<void>;
}

async function fakeGateway(): Promise<FakeGateway> {
  const got = { range: 0, txn: 0, connections: 0 };
  const perSocket = new WeakMap<Socket, number>();
  const fake: Partial<FakeGateway> = { got, dropNthOnConnection: 0 };
  const server = createServer((req, res) => {
    const n = (perSocket.get(req.socket) ?? 0) + 1;
    perSocket.set(req.socket, n);
    req.resume();
    req.on('end', () => {
      if (fake.dropNthOnConnection !== 0 && n === fake.dropNthOnConnection) {
        req.socket.destroy();
        return;
      }
      if (req.url === '/v3/kv/range') got.range++;
      if (req.url === '/v3/kv/txn') got.txn++;
      const answer =
        req.url === '/v3/kv/txn' ? { header: { revision: '6' }, succeeded: true } : { header: { revision: '5' } };
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(answer));
    });
  });
  server.on('connection', () => got.connections++);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  fake.endpoint = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  fake.close = () =>
    new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    });
  return fake as FakeGateway;
}

function httpTransport(endpoints: string[], timeoutMs: number): { transport: GatewayTransport; agent: Agent } {
  const agent = new Agent({ keepAlive: true });
  return {
    transport: new GatewayTransport({ request: httpRequest, agent, connectEvent: 'connect' }, endpoints, timeoutMs),
    agent,
  };
}

const RANGE = { key: key('/calico/'), limit: 1, keys_only: true };
const CREATE = {
  compare: [{ key: key('/x'), target: 'Create' as const, result: 'Equal' as const, create_revision: 0 }],
  success: [{ request_put: { key: key('/x'), value: key('v') } }],
  failure: [],
};

describe('failing over between endpoints', () => {
  const cleanups: Array<() => Promise<void> | void> = [];
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  });

  it('a read goes on past a member that accepts and never answers; later calls start at the member that answered', async () => {
    const [silent, fake] = [await silentMember(), await fakeGateway()];
    const { transport } = httpTransport([silent.endpoint, fake.endpoint], 3000);
    cleanups.push(
      () => silent.close(),
      () => fake.close(),
      () => transport.close(),
    );
    expect((await transport.range(RANGE)).revision).toBe('5');
    expect([silent.connections(), fake.got.range]).toEqual([1, 1]);
    expect((await transport.txn(CREATE)).succeeded).toBe(true);
    expect([silent.connections(), fake.got.txn]).toEqual([1, 1]);
  });

  it('a write that may have been sent is not sent to another member; the next call starts at the next member', async () => {
    const [silent, fake] = [await silentMember(), await fakeGateway()];
    const { transport } = httpTransport([silent.endpoint, fake.endpoint], 600);
    cleanups.push(
      () => silent.close(),
      () => fake.close(),
      () => transport.close(),
    );
    const error = await transport.txn(CREATE).then(
      () => null,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(Error);
    expect((error as Error).message).toContain(silent.endpoint);
    expect(fake.got.txn).toBe(0);
    expect((await transport.txn(CREATE)).succeeded).toBe(true);
    expect([silent.connections(), fake.got.txn]).toEqual([1, 1]);
  });

  it('a read is tried again on a new connection when a kept-alive one was closed under it; a write is not', async () => {
    const fake = await fakeGateway();
    const { transport } = httpTransport([fake.endpoint], 3000);
    cleanups.push(
      () => fake.close(),
      () => transport.close(),
    );
    await transport.range(RANGE);
    fake.dropNthOnConnection = 2;
    expect((await transport.range(RANGE)).revision).toBe('5');
    expect([fake.got.range, fake.got.connections]).toEqual([2, 2]);
    await expect(transport.txn(CREATE)).rejects.toThrow(fake.endpoint);
    expect(fake.got.txn).toBe(0);
  });

  it('many calls over one kept-alive connection leave no listeners behind and no warning', async () => {
    const fake = await fakeGateway();
    const { transport, agent } = httpTransport([fake.endpoint], 3000);
    const warnings: Error[] = [];
    const onWarning = (w: Error): void => void warnings.push(w);
    process.on('warning', onWarning);
    cleanups.push(
      () => fake.close(),
      () => transport.close(),
      () => void process.off('warning', onWarning),
    );
    for (let i = 0; i < 20; i++) await transport.range(RANGE);
    await new Promise((resolve) => setImmediate(resolve)); // warnings are emitted on the next tick
    expect(fake.got).toMatchObject({ range: 20, connections: 1 });
    const sockets = Object.values(agent.freeSockets).flat();
    expect(sockets).toHaveLength(1);
    for (const socket of sockets) expect(socket?.listenerCount('connect')).toBeLessThanOrEqual(1);
    expect(warnings.map((w) => w.name)).toEqual([]);
  });
});

describe('the startup check: which answers mean "use gRPC instead"', () => {
  const ROWS: Array<{ answer: unknown; cannotServe: boolean }> = [
    {
      answer: gatewayError(503, '{"error":"connection closed","message":"connection closed","code":14}'),
      cannotServe: true,
    },
    {
      answer: gatewayError(
        503,
        '{"error":"all SubConns are in TransientFailure, latest connection error: connection error: desc = \\"transport: authentication handshake failed: remote error: tls: bad certificate\\"","code":14}',
      ),
      cannotServe: true,
    },
    {
      answer: gatewayError(
        403,
        '{"error":"etcdserver: permission denied","message":"etcdserver: permission denied","code":7}',
      ),
      cannotServe: true,
    },
    {
      answer: gatewayError(
        401,
        '{"error":"etcdserver: user name is empty","message":"etcdserver: user name is empty","code":16}',
      ),
      cannotServe: true,
    },
    {
      answer: gatewayError(503, '{"error":"etcdserver: no leader","message":"etcdserver: no leader","code":14}'),
      cannotServe: false,
    },
    { answer: gatewayError(429, 'Too Many Requests'), cannotServe: false },
    { answer: gatewayError(404, '404 page not found\n'), cannotServe: false },
    { answer: new EtcdGatewayAnswerError('range response is not a JSON object: []'), cannotServe: false },
    { answer: new Error('connect ECONNREFUSED 127.0.0.1:1'), cannotServe: false },
  ];
  it('has rows of both kinds', () => expect(new Set(ROWS.map((r) => r.cannotServe))).toEqual(new Set([true, false])));
  for (const row of ROWS) {
    it(`${(row.answer as Error).message} → ${row.cannotServe ? 'gRPC' : 'unavailable'}`, () =>
      expect(gatewayCannotServe(row.answer)).toBe(row.cannotServe));
  }
});
