// tortie node status / routes output: calicoctl's exact layout (golden strings written out by hand, not
// produced by the code under test), BIRD's STATE/INFO/SINCE columns from Speaker sessions, the routes table.

import { describe, expect, it } from 'vitest';
import { boxTable } from '../../../src/format/table.js';
import {
  formatAsPath,
  formatNodeStatus,
  formatRoutes,
  formatSince,
  peerRow,
} from '../../../src/agent/status-format.js';
import type { AgentStatus, DesiredPeer, PeerStatusRow, RouteRow } from '../../../src/agent/types.js';
import { describeDownReason, downReasonInfo, type SessionDownReason } from '../../../bgp/down-reason.js';
import type { PeerStatus } from '../../../bgp/speaker.js';

const T0 = Date.UTC(2026, 10, 22, 23, 30, 4); // 2026-11-22 23:30:04 UTC

function desired(address: string, type: DesiredPeer['type']): DesiredPeer {
  const prefix = { Mesh: 'Mesh', Global: 'Global', Node: 'Node', LocalWorkload: 'Local_Workload' }[type];
  return {
    name: `${prefix}_${address.replace(/[.:]/g, '_')}`,
    address,
    port: 179,
    asNumber: 64512,
    type,
    localAsNumber: 64512,
    rrClient: false,
    passive: false,
    nextHopMode: 'Auto',
    allowOwnAs: 0,
  };
}

/** Typed down reasons as the session records them, each with the lastError text it gives. */
const REFUSED = (to: string): SessionDownReason => ({
  kind: 'transport',
  errno: 'ECONNREFUSED',
  message: `connect to ${to}:179: Connection refused (ECONNREFUSED)`,
});
const BAD_PEER_AS: SessionDownReason = { kind: 'notificationReceived', code: 2, subcode: 2 };

function session(
  address: string,
  state: PeerStatus['state'],
  since: number,
  lastReason?: SessionDownReason,
): PeerStatus {
  return {
    address,
    port: 179,
    peerAs: 64512,
    state,
    since,
    routesReceived: 3,
    routesAccepted: 2,
    routesAdvertised: 1,
    staleRoutes: 0,
    ...(lastReason ? { lastError: describeDownReason(lastReason), lastReason } : {}),
  };
}

function status(peers: PeerStatusRow[]): AgentStatus {
  return {
    summary: 'tortie is running.',
    node: 'node-1',
    version: '0.1.0',
    pid: 4242,
    startedAt: new Date(T0).toISOString(),
    ipv4Address: '172.17.8.101/24',
    asNumber: 64512,
    routerId: '172.17.8.101',
    clusterId: null,
    datastore: { type: 'etcdv3', connected: true },
    ready: true,
    peers,
    blocks: ['10.244.1.0/26'],
    dataplane: { mode: 'none', hostInterface: null },
    warnings: [],
  };
}

const row = (
  address: string,
  type: DesiredPeer['type'],
  state: PeerStatus['state'],
  lastReason?: SessionDownReason,
  since = T0,
) =>
  peerRow({
    peer: session(address, state, since, lastReason),
    desired: desired(address, type),
    now: T0 + 60_000,
    utcOffsetMinutes: 0,
  });

describe('formatNodeStatus', () => {
  it('prints calicoctl\'s "no peers" layout', () => {
    expect(formatNodeStatus(status([]))).toBe(
      'tortie is running.\n' +
        '\n' +
        'IPv4 BGP status\n' +
        'No IPv4 peers found.\n' +
        '\n' +
        'IPv6 BGP status\n' +
        'No IPv6 peers found.\n' +
        '\n',
    );
  });

  it('prints one mesh peer as calicoctl does', () => {
    expect(formatNodeStatus(status([row('172.17.8.102', 'Mesh', 'Established')]))).toBe(
      'tortie is running.\n' +
        '\n' +
        'IPv4 BGP status\n' +
        '+--------------+-------------------+-------+----------+-------------+\n' +
        '| PEER ADDRESS |     PEER TYPE     | STATE |  SINCE   |    INFO     |\n' +
        '+--------------+-------------------+-------+----------+-------------+\n' +
        '| 172.17.8.102 | node-to-node mesh | up    | 23:30:04 | Established |\n' +
        '+--------------+-------------------+-------+----------+-------------+\n' +
        '\n' +
        'IPv6 BGP status\n' +
        'No IPv6 peers found.\n' +
        '\n',
    );
  });

  it('prints node-specific route reflectors (the column widths follow the longest cell)', () => {
    const peers = [
      row('10.175.22.54', 'Node', 'Established', undefined, Date.UTC(2026, 10, 22, 5, 21, 15)),
      row('10.175.22.47', 'Node', 'Established', undefined, Date.UTC(2026, 10, 22, 5, 22, 38)),
    ];
    expect(peers.length).toBe(2);
    expect(formatNodeStatus(status(peers))).toBe(
      'tortie is running.\n' +
        '\n' +
        'IPv4 BGP status\n' +
        '+--------------+---------------+-------+----------+-------------+\n' +
        '| PEER ADDRESS |   PEER TYPE   | STATE |  SINCE   |    INFO     |\n' +
        '+--------------+---------------+-------+----------+-------------+\n' +
        '| 10.175.22.54 | node specific | up    | 05:21:15 | Established |\n' +
        '| 10.175.22.47 | node specific | up    | 05:22:38 | Established |\n' +
        '+--------------+---------------+-------+----------+-------------+\n' +
        '\n' +
        'IPv6 BGP status\n' +
        'No IPv6 peers found.\n' +
        '\n',
    );
  });

  it('prints a mix of mesh, global and failing peers, with IPv6 peers in their own section', () => {
    const peers = [
      row('192.168.1.111', 'Mesh', 'Established'),
      row('192.168.122.229', 'Mesh', 'Active', REFUSED('192.168.122.229')),
      row('10.0.0.1', 'Global', 'OpenSent'),
      row('fd00::1', 'Global', 'Idle', BAD_PEER_AS),
    ];
    expect(formatNodeStatus(status(peers))).toBe(
      'tortie is running.\n' +
        '\n' +
        'IPv4 BGP status\n' +
        '+-----------------+-------------------+-------+----------+-----------------------------------+\n' +
        '|  PEER ADDRESS   |     PEER TYPE     | STATE |  SINCE   |               INFO                |\n' +
        '+-----------------+-------------------+-------+----------+-----------------------------------+\n' +
        '| 192.168.1.111   | node-to-node mesh | up    | 23:30:04 | Established                       |\n' +
        '| 192.168.122.229 | node-to-node mesh | start | 23:30:04 | Active Socket: Connection refused |\n' +
        '| 10.0.0.1        | global            | start | 23:30:04 | OpenSent                          |\n' +
        '+-----------------+-------------------+-------+----------+-----------------------------------+\n' +
        '\n' +
        'IPv6 BGP status\n' +
        '+--------------+-----------+-------+----------+----------------------------+\n' +
        '| PEER ADDRESS | PEER TYPE | STATE |  SINCE   |            INFO            |\n' +
        '+--------------+-----------+-------+----------+----------------------------+\n' +
        '| fd00::1      | global    | start | 23:30:04 | Idle Received: Bad Peer AS |\n' +
        '+--------------+-----------+-------+----------+----------------------------+\n' +
        '\n',
    );
  });

  it('adds one line on NetworkPolicy after the BGP tables: counts, and whether nftables holds it', () => {
    const summary = { policies: 3, endpoints: 4, isolatedIngress: 2, isolatedEgress: 1 };
    const inSync = formatNodeStatus({
      ...status([]),
      policy: { summary, writes: 5, lastStats: null, lastError: null, inSync: true },
    });
    expect(inSync).toContain(
      'Network policy: 3 NetworkPolicies; 4 local workloads, 2 isolated for ingress, 1 for egress; in nftables (table inet tortie-filter)\n',
    );
    const one = formatNodeStatus({
      ...status([]),
      policy: {
        summary: { ...summary, policies: 1, endpoints: 1 },
        writes: 1,
        lastStats: null,
        lastError: null,
        inSync: true,
      },
    });
    expect(one).toContain('Network policy: 1 NetworkPolicy; 1 local workload,');
    const failing = formatNodeStatus({
      ...status([]),
      policy: { summary, writes: 0, lastStats: null, lastError: 'nft: Operation not permitted', inSync: false },
    });
    expect(failing).toContain('NOT in nftables yet (retrying, see Warnings)');
    // Before the first compile, and without an enforcer (TORTIE_DATAPLANE=none): no line.
    expect(
      formatNodeStatus({
        ...status([]),
        policy: { summary: null, writes: 0, lastStats: null, lastError: null, inSync: false },
      }),
    ).not.toContain('Network policy');
    expect(formatNodeStatus(status([]))).not.toContain('Network policy');
  });

  it('the dataplane line shows the VTEP and the number of remote VTEPs programmed', () => {
    const vxlan = {
      needed: true,
      device: { mtu: 1450, mac: '66:00:00:00:00:01', address: '10.244.0.1/32', up: true },
      remoteVteps: 3,
      programmedVteps: ['10.244.1.0', '10.244.2.0', '10.244.3.0'],
      usable: true,
      writes: 5,
      conflicts: [],
      warnings: [],
    };
    const dataplane = {
      mode: 'kernel' as const,
      hostInterface: 'eth0',
      tunl0: { needed: false as const },
      routes: { desired: 4, programmed: 4, waitingForInterface: 0, foreignConflicts: 0, retained: 0 },
      retainingUnwanted: false,
      inSync: true,
      lastApplyAt: null,
      nat: {
        table: 'ip tortie-nat',
        managed: false,
        natPools: [],
        allPools: [],
        inSync: false,
        checks: 0,
        writes: 0,
        lastCheckAt: null,
        lastWriteAt: null,
        lastDifference: null,
      },
      kernelSettings: { checkedAt: null, warnings: [] },
      warnings: [],
      vxlan,
    };
    expect(formatNodeStatus({ ...status([]), dataplane })).toContain(
      'Dataplane (kernel, host interface eth0): 4 of 4 routes in the kernel, VTEP 10.244.0.1/32 (MAC 66:00:00:00:00:01) on vxlan.calico, MTU 1450, 3 remote VTEPs programmed\n',
    );
    const notYet = formatNodeStatus({
      ...status([]),
      dataplane: { ...dataplane, vxlan: { ...vxlan, device: null, usable: false, remoteVteps: 0 } },
    });
    expect(notYet).toContain('vxlan.calico not set up (not usable yet, see Warnings), 0 remote VTEPs programmed');
    expect(formatNodeStatus({ ...status([]), dataplane: { ...dataplane, vxlan: null } })).not.toContain('VTEP');
  });

  it('uses the summary line it is given (the first line of the output)', () => {
    expect(formatNodeStatus({ ...status([]), summary: 'tortie is running (not ready).' }).split('\n')[0]).toBe(
      'tortie is running (not ready).',
    );
  });
});

describe('peerRow', () => {
  it('maps an Established session to up / Established with its counters and uptime', () => {
    const r = peerRow({
      peer: session('172.17.8.102', 'Established', T0),
      desired: desired('172.17.8.102', 'Mesh'),
      now: T0 + 90_000,
      utcOffsetMinutes: 0,
    });
    expect(r).toEqual({
      address: '172.17.8.102',
      type: 'node-to-node mesh',
      name: 'Mesh_172_17_8_102',
      state: 'up',
      since: '23:30:04',
      info: 'Established',
      bgpState: 'Established',
      sinceIso: '2026-11-22T23:30:04.000Z',
      uptimeMs: 90_000,
      routesReceived: 3,
      routesAccepted: 2,
      routesAdvertised: 1,
    });
  });

  const notUp: Array<[PeerStatus['state'], SessionDownReason | undefined, string | undefined, string]> = [
    ['Idle', undefined, undefined, 'Idle'],
    ['Connect', undefined, undefined, 'Connect'],
    [
      'Active',
      REFUSED('10.0.0.2'),
      'connect to 10.0.0.2:179: Connection refused (ECONNREFUSED)',
      'Active Socket: Connection refused',
    ],
    [
      'Active',
      {
        kind: 'transport',
        errno: 'ECONNRESET',
        message: 'connection 10.0.0.1:40000 ↔ 10.0.0.2:179: Connection reset by peer (ECONNRESET)',
      },
      'connection 10.0.0.1:40000 ↔ 10.0.0.2:179: Connection reset by peer (ECONNRESET)',
      'Active Socket: Connection reset by peer',
    ],
    [
      'Connect',
      { kind: 'transport', errno: 'EHOSTUNREACH', message: 'connect to 10.0.0.2:179: No route to host (EHOSTUNREACH)' },
      'connect to 10.0.0.2:179: No route to host (EHOSTUNREACH)',
      'Connect Socket: No route to host',
    ],
    ['Active', { kind: 'peerClosed' }, 'connection closed by the peer', 'Active Socket: Connection closed'],
    [
      'Idle',
      { kind: 'notificationReceived', code: 6, subcode: 2 },
      'received NOTIFICATION Cease / Administrative Shutdown',
      'Idle Received: Administrative Shutdown',
    ],
    [
      'Idle',
      { kind: 'notificationReceived', code: 4, subcode: 0 },
      'received NOTIFICATION Hold Timer Expired',
      'Idle Received: Hold Timer Expired',
    ],
    [
      'Idle',
      { kind: 'notificationSent', code: 2, subcode: 2, detail: 'peer said AS 64513, expected 64512' },
      'sent NOTIFICATION OPEN Message Error / Bad Peer AS: peer said AS 64513, expected 64512',
      'Idle BGP Error: Bad Peer AS',
    ],
    [
      'Idle',
      {
        kind: 'notificationSent',
        code: 6,
        subcode: 1,
        detail: '5 prefixes received, more than the limit of 3 (IPv4 unicast)',
      },
      'sent NOTIFICATION Cease / Maximum Number of Prefixes Reached: 5 prefixes received, more than the limit of 3 (IPv4 unicast)',
      'Idle BGP Error: Maximum Number of Prefixes Reached',
    ],
    [
      'Idle',
      {
        kind: 'notificationSent',
        code: 6,
        subcode: 8,
        detail: 'send queue over 33554432 bytes (33600000 queued): the peer does not read',
      },
      'sent NOTIFICATION Cease / Out of Resources: send queue over 33554432 bytes (33600000 queued): the peer does not read',
      'Idle BGP Error: Out of Resources',
    ],
    [
      'OpenSent',
      { kind: 'internalError', detail: 'something only a log would say' },
      'something only a log would say',
      'OpenSent',
    ],
    ['OpenConfirm', undefined, undefined, 'OpenConfirm'],
  ];
  it.each(notUp)('%s with last reason %j → start / lastError %j / %s', (state, reason, lastError, info) => {
    expect(notUp.length).toBeGreaterThan(0);
    const r = peerRow({
      peer: session('10.0.0.2', state, T0, reason),
      desired: desired('10.0.0.2', 'Global'),
      now: T0,
      utcOffsetMinutes: 0,
    });
    expect(r.state).toBe('start');
    expect(r.info).toBe(info);
    expect(r.bgpState).toBe(state);
    expect(r.uptimeMs).toBeNull();
    expect(r.lastError).toBe(lastError);
  });

  it('shows no error suffix once Established, but keeps the last error for the JSON output', () => {
    const r = peerRow({
      peer: session('10.0.0.2', 'Established', T0, REFUSED('10.0.0.2')),
      desired: desired('10.0.0.2', 'Node'),
      now: T0,
      utcOffsetMinutes: 0,
    });
    expect(r.info).toBe('Established');
    expect(r.type).toBe('node specific');
    expect(r.lastError).toMatch(/ECONNREFUSED/);
  });

  it('names a session the plan no longer has after its address, type unknown', () => {
    const r = peerRow({ peer: session('10.0.0.9', 'Idle', T0), now: T0, utcOffsetMinutes: 0 });
    expect(r.type).toBe('unknown');
    expect(r.name).toBe('Peer_10_0_0_9');
  });
});

describe('formatSince', () => {
  it('shows the time of day for changes younger than 20 hours, the date for older ones (BIRD iso short)', () => {
    expect(formatSince(T0, T0, 0)).toBe('23:30:04');
    expect(formatSince(T0, T0 + 20 * 3600_000 - 1, 0)).toBe('23:30:04');
    expect(formatSince(T0, T0 + 20 * 3600_000, 0)).toBe('2026-11-22');
    expect(formatSince(T0, T0 + 400 * 86400_000, 0)).toBe('2026-11-22');
  });

  it('uses the local zone offset (east of UTC)', () => {
    expect(formatSince(T0, T0, 60)).toBe('00:30:04');
    expect(formatSince(T0, T0 + 86400_000, 60)).toBe('2026-11-23');
    expect(formatSince(T0, T0, -330)).toBe('18:00:04');
  });
});

describe('downReasonInfo', () => {
  it('says nothing for no reason, or one BIRD has no words for', () => {
    expect(downReasonInfo(undefined)).toBeUndefined();
    expect(downReasonInfo({ kind: 'internalError', detail: '' })).toBeUndefined();
  });
});

describe('boxTable', () => {
  it('centres headers with the odd space on the right and pads cells left-aligned', () => {
    expect(boxTable(['AB', 'C'], [['x', 'long cell']])).toBe(
      '+----+-----------+\n' +
        '| AB |     C     |\n' +
        '+----+-----------+\n' +
        '| x  | long cell |\n' +
        '+----+-----------+\n',
    );
    expect(boxTable(['ABCD'], [['12345']])).toBe(
      '+-------+\n' + '| ABCD  |\n' + '+-------+\n' + '| 12345 |\n' + '+-------+\n',
    );
  });
});

describe('formatRoutes', () => {
  const routes: RouteRow[] = [
    {
      prefix: '10.244.10.0/26',
      nextHop: '198.18.0.1',
      asPath: [64513, [64600, 64601]],
      from: '10.0.0.1',
      best: true,
      stale: false,
      inKernel: false,
    },
    {
      prefix: '10.244.2.0/26',
      nextHop: '172.17.8.103',
      asPath: [],
      from: '172.17.8.103',
      best: false,
      stale: true,
      inKernel: false,
    },
    { prefix: '10.244.1.0/26', nextHop: null, asPath: [], from: 'local', best: true, stale: false, inKernel: true },
    {
      prefix: '10.244.2.0/26',
      nextHop: '172.17.8.102',
      asPath: [],
      from: '172.17.8.102',
      best: true,
      stale: false,
      inKernel: true,
    },
  ];

  it('prints a table ordered by prefix address, the best route of a prefix first', () => {
    expect(routes.length).toBe(4);
    expect(formatRoutes(routes)).toBe(
      '+----------------+--------------+---------------------+----------------------+------+-----------+\n' +
        '|     PREFIX     |   NEXT HOP   |       AS PATH       |         FROM         | BEST | IN KERNEL |\n' +
        '+----------------+--------------+---------------------+----------------------+------+-----------+\n' +
        '| 10.244.1.0/26  | -            | -                   | local                | yes  | yes       |\n' +
        '| 10.244.2.0/26  | 172.17.8.102 | -                   | 172.17.8.102         | yes  | yes       |\n' +
        '| 10.244.2.0/26  | 172.17.8.103 | -                   | 172.17.8.103 (stale) | no   | no        |\n' +
        '| 10.244.10.0/26 | 198.18.0.1   | 64513 {64600 64601} | 10.0.0.1             | yes  | no        |\n' +
        '+----------------+--------------+---------------------+----------------------+------+-----------+\n',
    );
  });

  it('says so when there are no routes', () => {
    expect(formatRoutes([])).toBe('No routes.\n');
  });

  it('writes AS paths with sets in braces', () => {
    expect(formatAsPath([])).toBe('-');
    expect(formatAsPath([65001, 65002])).toBe('65001 65002');
    expect(formatAsPath([[1, 2]])).toBe('{1 2}');
  });
});
