// `tortie node status|routes` against a real control socket in a temporary directory: table and JSON
// output, the socket from TORTIE_CTL_SOCKET, exit 1 naming the socket when no agent answers or the agent
// refuses, exit 2 naming a bad flag.

import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { serveControl, type ControlServer } from '../../../src/agent/control.js';
import { peerRow } from '../../../src/agent/status-format.js';
import { DEFAULT_CTL_SOCKET, type AgentStatus, type RouteRow } from '../../../src/agent/types.js';
import { controlSocketPath, runNodeRoutes, runNodeStatus } from '../../../src/cli/node-status-command.js';

const SINCE = Date.UTC(2026, 10, 22, 9, 15, 0);

const STATUS: AgentStatus = {
  summary: 'tortie is running.',
  node: 'node-1',
  version: '0.1.0',
  pid: 4242,
  startedAt: '2026-11-22T09:00:00.000Z',
  ipv4Address: '172.17.8.101/24',
  asNumber: 64512,
  routerId: '172.17.8.101',
  clusterId: null,
  datastore: { type: 'etcdv3', connected: true },
  ready: true,
  peers: [
    peerRow({
      peer: {
        address: '172.17.8.102',
        port: 179,
        peerAs: 64512,
        state: 'Established',
        since: SINCE,
        routesReceived: 2,
        routesAccepted: 2,
        routesAdvertised: 1,
        staleRoutes: 0,
      },
      desired: {
        name: 'Mesh_172_17_8_102',
        address: '172.17.8.102',
        port: 179,
        asNumber: 64512,
        type: 'Mesh',
        localAsNumber: 64512,
        rrClient: false,
        passive: false,
        nextHopMode: 'Auto',
        allowOwnAs: 0,
      },
      now: SINCE + 5000,
      utcOffsetMinutes: 0,
    }),
  ],
  blocks: ['10.244.1.0/26'],
  dataplane: { mode: 'none', hostInterface: null },
  warnings: [],
};

const ROUTES: RouteRow[] = [
  {
    prefix: '10.244.2.0/26',
    nextHop: '172.17.8.102',
    asPath: [],
    from: '172.17.8.102',
    best: true,
    stale: false,
    inKernel: true,
  },
  { prefix: '10.244.1.0/26', nextHop: null, asPath: [], from: 'local', best: true, stale: false, inKernel: true },
];

let dir: string;
let socket: string;
let server: ControlServer | null = null;
let out: string;
let err: string;
const io = { out: (t: string) => void (out += t), err: (t: string) => void (err += t) };

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'tortie-status-'));
  socket = join(dir, 'tortie.ctl');
  out = '';
  err = '';
});

afterEach(async () => {
  await server?.close();
  server = null;
  await rm(dir, { recursive: true, force: true });
});

const env = () => ({ TORTIE_CTL_SOCKET: socket });

describe('tortie node status', () => {
  it('prints the calicoctl table by default', async () => {
    server = await serveControl(socket, { status: () => STATUS, routes: () => ROUTES });
    expect(await runNodeStatus([], env(), io)).toBe(0);
    expect(err).toBe('');
    expect(out).toBe(
      'tortie is running.\n' +
        '\n' +
        'IPv4 BGP status\n' +
        '+--------------+-------------------+-------+----------+-------------+\n' +
        '| PEER ADDRESS |     PEER TYPE     | STATE |  SINCE   |    INFO     |\n' +
        '+--------------+-------------------+-------+----------+-------------+\n' +
        '| 172.17.8.102 | node-to-node mesh | up    | 09:15:00 | Established |\n' +
        '+--------------+-------------------+-------+----------+-------------+\n' +
        '\n' +
        'IPv6 BGP status\n' +
        'No IPv6 peers found.\n' +
        '\n',
    );
  });

  it('prints the AgentStatus as JSON with -o json, per-peer counters, last error and uptime included', async () => {
    const withError = {
      ...STATUS,
      peers: [{ ...STATUS.peers[0]!, lastError: 'received NOTIFICATION Cease / Administrative Reset' }],
    };
    server = await serveControl(socket, { status: () => withError, routes: () => ROUTES });
    expect(await runNodeStatus(['-o', 'json'], env(), io)).toBe(0);
    const printed = JSON.parse(out) as AgentStatus;
    expect(printed).toEqual(withError);
    expect(printed.peers[0]).toMatchObject({
      routesReceived: 2,
      routesAccepted: 2,
      routesAdvertised: 1,
      uptimeMs: 5000,
      lastError: 'received NOTIFICATION Cease / Administrative Reset',
    });
    expect(out.endsWith('}\n')).toBe(true);
  });

  it('exits 1 naming the socket when no agent is running', async () => {
    expect(await runNodeStatus([], env(), io)).toBe(1);
    expect(out).toBe('');
    expect(err).toBe(`tortie: no tortie agent is running (no socket at ${socket})\n`);
  });

  it("exits 1 with the agent's reason when it refuses", async () => {
    server = await serveControl(socket, {
      status: () => {
        throw new Error('still starting: datastore not synced');
      },
      routes: () => ROUTES,
    });
    expect(await runNodeStatus([], env(), io)).toBe(1);
    expect(err).toBe(`tortie: the agent on ${socket} refused "status": still starting: datastore not synced\n`);
  });

  const badFlags: Array<[string[], string]> = [
    [['-o', 'wide'], 'tortie: node status: -o "wide" is not an output format; use table or json\n'],
    [['--verbose'], "tortie: node status: Unknown option '--verbose'"],
    [['extra'], 'tortie: node status: Unexpected argument'],
    [
      ['--timeout', '0'],
      'tortie: node status: --timeout "0" is not a whole number of milliseconds from 1 to 9999999\n',
    ],
  ];
  it.each(badFlags)('%j exits 2 naming the flag', async (argv, message) => {
    expect(badFlags.length).toBeGreaterThan(0);
    expect(await runNodeStatus(argv, env(), io)).toBe(2);
    expect(err.startsWith(message)).toBe(true);
    expect(err).toContain('usage: tortie node status');
  });

  it('prints its usage with --help and exits 0', async () => {
    expect(await runNodeStatus(['--help'], env(), io)).toBe(0);
    expect(out).toContain('usage: tortie node status [-o table|json]');
    expect(out).toContain(DEFAULT_CTL_SOCKET);
  });
});

describe('tortie node routes', () => {
  it('prints the routes table, ordered by prefix', async () => {
    server = await serveControl(socket, { status: () => STATUS, routes: () => ROUTES });
    expect(await runNodeRoutes([], env(), io)).toBe(0);
    expect(out).toBe(
      '+---------------+--------------+---------+--------------+------+-----------+\n' +
        '|    PREFIX     |   NEXT HOP   | AS PATH |     FROM     | BEST | IN KERNEL |\n' +
        '+---------------+--------------+---------+--------------+------+-----------+\n' +
        '| 10.244.1.0/26 | -            | -       | local        | yes  | yes       |\n' +
        '| 10.244.2.0/26 | 172.17.8.102 | -       | 172.17.8.102 | yes  | yes       |\n' +
        '+---------------+--------------+---------+--------------+------+-----------+\n',
    );
  });

  it('prints the rows as JSON with -o json', async () => {
    server = await serveControl(socket, { status: () => STATUS, routes: () => ROUTES });
    expect(await runNodeRoutes(['--output', 'json'], env(), io)).toBe(0);
    expect(JSON.parse(out)).toEqual(ROUTES);
  });

  it('exits 1 naming the socket when no agent is running, 2 on a bad flag', async () => {
    expect(await runNodeRoutes([], env(), io)).toBe(1);
    expect(err).toBe(`tortie: no tortie agent is running (no socket at ${socket})\n`);
    err = '';
    expect(await runNodeRoutes(['-o', 'yaml'], env(), io)).toBe(2);
    expect(err.startsWith('tortie: node routes: -o "yaml" is not an output format; use table or json\n')).toBe(true);
  });

  it('reports an answer of the wrong kind as exit 1', async () => {
    const query = async () => ({ ok: true as const, status: STATUS });
    expect(await runNodeRoutes([], env(), { ...io, query })).toBe(1);
    expect(err).toBe(`tortie: the agent on ${socket} answered "routes" without the expected routes field\n`);
  });
});

describe('controlSocketPath', () => {
  it('uses TORTIE_CTL_SOCKET when set, the default otherwise', () => {
    expect(controlSocketPath({ TORTIE_CTL_SOCKET: '/tmp/x.ctl' })).toBe('/tmp/x.ctl');
    expect(controlSocketPath({ TORTIE_CTL_SOCKET: '  ' })).toBe(DEFAULT_CTL_SOCKET);
    expect(controlSocketPath({})).toBe('/var/run/tortie/tortie.ctl');
  });
});
