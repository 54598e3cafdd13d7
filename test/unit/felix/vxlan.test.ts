// felix/vxlan.ts: the desired vxlan.calico, neighbours and FDB entries (pure), the parsers (on output
// captured from iproute2 6.1 on this machine), the plan (table of kernel states → steps), and the keeper
// against a small in-test kernel that understands exactly the lines the plan writes.

import { describe, expect, it } from 'vitest';
import {
  desiredVxlan,
  parseFdb,
  parseNeighbours,
  parseVxlanLink,
  planVxlan,
  vxlanInputFor,
  vxlanMtu,
  VxlanKeeper,
  type ObservedFdb,
  type ObservedNeighbour,
  type ObservedVxlanDevice,
  type VxlanInput,
  type VxlanObserved,
} from '../../../felix/vxlan.js';
import { FakeVxlanKernel as FakeKernel } from './vxlan-fake-kernel.js';

// Captured: `ip -d -j addr show dev vxlan.calico`, `ip -j neigh show dev vxlan.calico`, `bridge -j fdb show dev vxlan.calico`.
const LINK_JSON =
  '[{"ifindex":4,"ifname":"vxlan.calico","flags":["BROADCAST","MULTICAST","UP","LOWER_UP"],"mtu":1450,"qdisc":"noqueue","operstate":"UNKNOWN","group":"default","txqlen":1000,"link_type":"ether","address":"66:00:00:00:00:01","broadcast":"ff:ff:ff:ff:ff:ff","linkinfo":{"info_kind":"vxlan","info_data":{"id":4096,"local":"198.18.250.1","port_range":{"low":0,"high":0},"port":4789,"learning":false,"ttl":0,"df":"unset","ageing":300,"udp_csum":true}},"addr_info":[{"family":"inet","local":"10.9.0.1","prefixlen":32,"scope":"global","label":"vxlan.calico","valid_life_time":4294967295,"preferred_life_time":4294967295},{"family":"inet6","local":"fe80::6400:ff:fe00:1","prefixlen":64,"scope":"link","tentative":true}]}]';
const NEIGH_JSON =
  '[{"dst":"10.9.1.0","lladdr":"66:00:00:00:00:02","state":["PERMANENT"],"protocol":"80"},{"dst":"10.9.9.9","state":["FAILED"]},{"dst":"10.9.7.0","lladdr":"66:00:00:00:00:07","state":["PERMANENT"],"protocol":"static"}]';
const FDB_JSON =
  '[{"mac":"66:00:00:00:00:02","dst":"198.18.250.2","flags":["self"],"state":"permanent"},{"mac":"00:00:00:00:00:00","dst":"198.18.250.9","flags":["self"],"state":"permanent"}]';

const BASE: VxlanInput = {
  needed: true,
  local: { nodeIp: '198.18.250.1', tunnelAddress: '10.9.0.1', mac: '66:00:00:00:00:01' },
  remotes: [{ node: 'n2', nodeIp: '198.18.250.2', tunnelAddress: '10.9.1.0', mac: '66:00:00:00:00:02' }],
  hostMtu: 1500,
};

describe('desiredVxlan / vxlanMtu / vxlanInputFor (pure)', () => {
  it('the device as Calico makes it, one neighbour and one FDB entry per remote VTEP', () => {
    const { desired, warnings } = desiredVxlan(BASE);
    expect(warnings).toEqual([]);
    expect(desired.device).toEqual({
      vni: 4096,
      port: 4789,
      local: '198.18.250.1',
      mac: '66:00:00:00:00:01',
      mtu: 1450,
      address: '10.9.0.1/32',
    });
    expect([...desired.neighbours]).toEqual([['10.9.1.0', '66:00:00:00:00:02']]);
    expect([...desired.fdb]).toEqual([['66:00:00:00:00:02', '198.18.250.2']]);
  });
  it('MTU: FELIX_VXLANMTU wins, else host − 50, else left alone', () => {
    expect(vxlanMtu({ mtu: 1400, hostMtu: 9000 })).toBe(1400);
    expect(vxlanMtu({ hostMtu: 9000 })).toBe(8950);
    expect(vxlanMtu({})).toBeUndefined();
  });
  it('no pool: no device; no VTEP yet: no device, said; bad or duplicate remote VTEPs are left out, named', () => {
    expect(desiredVxlan({ ...BASE, needed: false }).desired.device).toBeNull();
    const noVtep = desiredVxlan({ ...BASE, local: { nodeIp: '198.18.250.1' } });
    expect(noVtep.desired.device).toBeNull();
    expect(noVtep.warnings[0]).toMatch(/no VXLAN tunnel address and MAC yet/);
    const bad = desiredVxlan({
      ...BASE,
      remotes: [
        ...BASE.remotes,
        { node: 'n3', nodeIp: '198.18.250.3', tunnelAddress: '10.9.1.0', mac: '66:00:00:00:00:03' },
        { node: 'n4', nodeIp: 'x', tunnelAddress: '10.9.4.0', mac: '01:00:00:00:00:04' },
      ],
    });
    expect(bad.desired.neighbours.size).toBe(1);
    expect(bad.warnings).toEqual([
      "node n3: VTEP 10.9.1.0 / 66:00:00:00:00:03 is already another node's: no VXLAN entries for it",
      'node n4: VTEP tunnel address "10.9.4.0", MAC "01:00:00:00:00:04", node address "x" — not all valid: no VXLAN entries for it',
    ]);
  });
  it('vxlanInputFor: needed only for a valid IPv4 VXLAN pool; our own node is never a remote', () => {
    const vx = {
      local: { tunnelAddress: '10.9.0.1', mac: '66:00:00:00:00:01' },
      nodes: [
        { name: 'me', ip: '198.18.250.1/24', tunnelAddress: '10.9.0.1', mac: '66:00:00:00:00:01' },
        { name: 'n2', ip: '198.18.250.2/24', tunnelAddress: '10.9.1.0', mac: '66:00:00:00:00:02' },
        { name: 'n3', ip: '198.18.250.3/24' },
      ],
    };
    const got = vxlanInputFor({
      node: { ip: '198.18.250.1/24' },
      pools: [{ cidr: '10.9.0.0/16', ipipMode: 'Never', vxlanMode: 'Always' }],
      tunnel: { hostMtu: 1500 },
      vxlan: vx,
    });
    expect(got).toEqual(BASE);
    expect(
      vxlanInputFor({
        node: { ip: '198.18.250.1/24' },
        pools: [{ cidr: '10.9.0.0/16', ipipMode: 'Always', vxlanMode: 'Always' }],
        tunnel: {},
        vxlan: vx,
      }).needed,
    ).toBe(false);
    expect(
      vxlanInputFor({
        node: { ip: '198.18.250.1/24' },
        pools: [{ cidr: '10.9.0.0/16', ipipMode: 'Always' }],
        tunnel: {},
        vxlan: vx,
      }),
    ).toEqual({ needed: false, local: { nodeIp: '198.18.250.1' }, remotes: [] });
  });
});

describe('parsers (iproute2 6.1 JSON)', () => {
  it('reads the device, its IPv4 address, neighbours with protocol, FDB entries', () => {
    expect(parseVxlanLink(LINK_JSON)).toEqual({
      kind: 'vxlan',
      vni: 4096,
      port: 4789,
      local: '198.18.250.1',
      learning: false,
      mtu: 1450,
      mac: '66:00:00:00:00:01',
      up: true,
      addresses: ['10.9.0.1/32'],
    });
    expect(parseVxlanLink('[]')).toBeNull();
    expect(parseNeighbours(NEIGH_JSON)).toEqual([
      { ip: '10.9.1.0', mac: '66:00:00:00:00:02', permanent: true, protocol: 80 },
      { ip: '10.9.9.9', mac: null, permanent: false, protocol: null },
      { ip: '10.9.7.0', mac: '66:00:00:00:00:07', permanent: true, protocol: 4 },
    ]);
    expect(parseFdb(FDB_JSON)).toEqual([
      { mac: '66:00:00:00:00:02', dst: '198.18.250.2', permanent: true },
      { mac: '00:00:00:00:00:00', dst: '198.18.250.9', permanent: true },
    ]);
  });
});

const GOOD_DEVICE: ObservedVxlanDevice = {
  kind: 'vxlan',
  vni: 4096,
  port: 4789,
  local: '198.18.250.1',
  learning: false,
  mtu: 1450,
  mac: '66:00:00:00:00:01',
  up: true,
  addresses: ['10.9.0.1/32'],
};
const OUR_NEIGH: ObservedNeighbour = { ip: '10.9.1.0', mac: '66:00:00:00:00:02', permanent: true, protocol: 80 };
const OUR_FDB: ObservedFdb = { mac: '66:00:00:00:00:02', dst: '198.18.250.2', permanent: true };
const GOOD: VxlanObserved = { device: GOOD_DEVICE, neighbours: [OUR_NEIGH], fdb: [OUR_FDB] };

const PLAN_CASES: Array<[string, VxlanObserved, VxlanInput, string[], RegExp[]]> = [
  ['all as wanted (a restart): nothing', GOOD, BASE, [], []],
  [
    'nothing there: create, up, address, neighbour, FDB',
    { device: null, neighbours: [], fdb: [] },
    BASE,
    [
      'link add vxlan.calico address 66:00:00:00:00:01 mtu 1450 type vxlan id 4096 local 198.18.250.1 dstport 4789 nolearning',
      'link set dev vxlan.calico up',
      'addr add 10.9.0.1/32 dev vxlan.calico',
      'neigh replace 10.9.1.0 lladdr 66:00:00:00:00:02 dev vxlan.calico nud permanent protocol 80',
      'fdb replace 66:00:00:00:00:02 dev vxlan.calico dst 198.18.250.2 self permanent',
    ],
    [],
  ],
  [
    'drift: down, MTU, stray address, our neighbour changed, FDB gone',
    {
      device: { ...GOOD_DEVICE, up: false, mtu: 1500, addresses: ['10.9.0.1/32', '10.9.0.7/32'] },
      neighbours: [{ ...OUR_NEIGH, mac: '66:00:00:00:00:09' }],
      fdb: [],
    },
    BASE,
    [
      'link set dev vxlan.calico mtu 1450',
      'link set dev vxlan.calico up',
      'addr del 10.9.0.7/32 dev vxlan.calico',
      'neigh replace 10.9.1.0 lladdr 66:00:00:00:00:02 dev vxlan.calico nud permanent protocol 80',
      'fdb replace 66:00:00:00:00:02 dev vxlan.calico dst 198.18.250.2 self permanent',
    ],
    [],
  ],
  [
    'a node gone: our neighbour and its FDB entry go; foreign entries stay',
    {
      ...GOOD,
      neighbours: [
        OUR_NEIGH,
        { ip: '10.9.3.0', mac: '66:00:00:00:00:03', permanent: true, protocol: 80 },
        { ip: '10.9.7.0', mac: '66:00:00:00:00:07', permanent: true, protocol: 4 },
      ],
      fdb: [
        OUR_FDB,
        { mac: '66:00:00:00:00:03', dst: '198.18.250.3', permanent: true },
        { mac: '66:00:00:00:00:07', dst: '198.18.250.7', permanent: true },
        { mac: '00:00:00:00:00:00', dst: '198.18.250.9', permanent: true },
      ],
    },
    BASE,
    ['neigh del 10.9.3.0 dev vxlan.calico', 'fdb del 66:00:00:00:00:03 dev vxlan.calico dst 198.18.250.3 self'],
    [],
  ],
  [
    'a kernel-made entry for a VTEP is replaced; a foreign permanent one is a conflict, left alone',
    {
      ...GOOD,
      neighbours: [
        { ip: '10.9.1.0', mac: null, permanent: false, protocol: null },
        { ip: '10.9.3.0', mac: '66:00:00:00:00:33', permanent: true, protocol: null },
      ],
    },
    {
      ...BASE,
      remotes: [
        ...BASE.remotes,
        { node: 'n3', nodeIp: '198.18.250.3', tunnelAddress: '10.9.3.0', mac: '66:00:00:00:00:03' },
      ],
    },
    [
      'neigh replace 10.9.1.0 lladdr 66:00:00:00:00:02 dev vxlan.calico nud permanent protocol 80',
      'fdb replace 66:00:00:00:00:03 dev vxlan.calico dst 198.18.250.3 self permanent',
    ],
    [
      /neighbour 10.9.3.0 on vxlan.calico is a permanent entry felix does not own \(protocol none, MAC 66:00:00:00:00:33\)/,
    ],
  ],
  [
    'the node address changed: the device is made again (local cannot change in place)',
    GOOD,
    { ...BASE, local: { ...BASE.local, nodeIp: '198.18.251.1' } },
    [
      'link del vxlan.calico',
      'link add vxlan.calico address 66:00:00:00:00:01 mtu 1450 type vxlan id 4096 local 198.18.251.1 dstport 4789 nolearning',
      'link set dev vxlan.calico up',
      'addr add 10.9.0.1/32 dev vxlan.calico',
      'neigh replace 10.9.1.0 lladdr 66:00:00:00:00:02 dev vxlan.calico nud permanent protocol 80',
      'fdb replace 66:00:00:00:00:02 dev vxlan.calico dst 198.18.250.2 self permanent',
    ],
    [],
  ],
  ['no VXLAN pool any more: our device is deleted', GOOD, { ...BASE, needed: false }, ['link del vxlan.calico'], []],
  [
    'a vxlan.calico that is no VXLAN device: refused, never deleted',
    { device: { ...GOOD_DEVICE, kind: 'veth' }, neighbours: [], fdb: [] },
    { ...BASE, needed: false },
    [],
    [/a veth device named vxlan.calico exists/],
  ],
];

describe('planVxlan', () => {
  it('an FDB entry whose neighbour is gone is ours only when this process wanted its MAC before', () => {
    const stray: VxlanObserved = {
      ...GOOD,
      fdb: [OUR_FDB, { mac: '66:00:00:00:00:03', dst: '198.18.250.3', permanent: true }],
    };
    const desired = desiredVxlan(BASE).desired;
    expect(planVxlan(stray, desired).steps).toEqual([]);
    expect(planVxlan(stray, desired, new Set(['66:00:00:00:00:03'])).steps.map((s) => s.line)).toEqual([
      'fdb del 66:00:00:00:00:03 dev vxlan.calico dst 198.18.250.3 self',
    ]);
  });

  it.each(PLAN_CASES)('%s', (_name, observed, input, lines, conflicts) => {
    expect(PLAN_CASES.length).toBeGreaterThan(0);
    const plan = planVxlan(observed, desiredVxlan(input).desired);
    expect(plan.steps.map((s) => s.line)).toEqual(lines);
    expect(plan.conflicts).toHaveLength(conflicts.length);
    conflicts.forEach((c, i) => expect(plan.conflicts[i]).toMatch(c));
  });
});

const quiet = { info: (): void => undefined, warn: (): void => undefined };

describe('VxlanKeeper', () => {
  it('programs everything in one ip and one bridge batch, then a second keeper (a restart) adopts it with no write', async () => {
    const kernel = new FakeKernel();
    const keeper = new VxlanKeeper(kernel.run, quiet);
    keeper.update(BASE);
    const status = await keeper.ensure();
    expect(kernel.batches).toHaveLength(2);
    expect(status).toMatchObject({
      needed: true,
      usable: true,
      remoteVteps: 1,
      device: { mtu: 1450, mac: '66:00:00:00:00:01', address: '10.9.0.1/32', up: true },
      conflicts: [],
    });
    expect(status.lastError).toBeUndefined();
    const restarted = new VxlanKeeper(kernel.run, quiet);
    restarted.update(BASE);
    const again = await restarted.ensure();
    expect(kernel.batches).toHaveLength(2);
    expect(again.writes).toBe(0);
    expect(again.usable).toBe(true);
  });

  it('repairs drift on the next ensure; a failed write is reported and retried', async () => {
    const kernel = new FakeKernel();
    const keeper = new VxlanKeeper(kernel.run, quiet);
    keeper.update(BASE);
    await keeper.ensure();
    kernel.state.neighbours = [];
    kernel.state.device!.up = false;
    kernel.failNext = true;
    const failed = await keeper.ensure();
    expect(failed.lastError).toMatch(/ip -batch: RTNETLINK answers: Operation not permitted/);
    expect(failed.usable).toBe(false);
    expect(failed.remoteVteps).toBe(0);
    const repaired = await keeper.ensure();
    expect(repaired.lastError).toBeUndefined();
    expect(repaired).toMatchObject({ usable: true, remoteVteps: 1 });
  });

  it('no VXLAN pool: deletes its device; with none there, reads once and writes nothing', async () => {
    const kernel = new FakeKernel();
    const keeper = new VxlanKeeper(kernel.run, quiet);
    keeper.update(BASE);
    await keeper.ensure();
    keeper.update({ ...BASE, needed: false });
    const off = await keeper.ensure();
    expect(kernel.state.device).toBeNull();
    expect(off).toMatchObject({ needed: false, usable: false, remoteVteps: 0, device: null });
    const writes = kernel.batches.length;
    await keeper.ensure();
    expect(kernel.batches.length).toBe(writes);
  });
});
