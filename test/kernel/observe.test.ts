// The kernel checks' readers (observe.ts) on output captured inside the VM (fixtures/README.md says how)
// and on hand-made variants: every reader must be able to say "no". Runs in the normal suite (no VM).

import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  counterDelta,
  describeRoute,
  largestEchoPayload,
  parseLink,
  parsePing,
  parseRoutes,
  remotePath,
  highestReply,
  lossesBySwitch,
  parseFdbEntries,
  parseLinkNames,
  parseNeighbourEntries,
  routesThrough,
  vxlanEntryProblems,
} from './observe.js';

const fixture = (name: string): string => readFileSync(join(import.meta.dirname, 'fixtures', name), 'utf8');

describe('parseLink: ip -s -d -j addr show dev tunl0', () => {
  it('reads kind, MTU, UP, the /32 and the packet counters of a real tunl0', () => {
    expect(parseLink(fixture('tunl0-addr.json'), 'tunl0')).toEqual({
      name: 'tunl0',
      kind: 'ipip',
      mtu: 1480,
      up: true,
      addresses: ['10.244.1.1/32'],
      rxPackets: 4,
      txPackets: 4,
      rxBytes: 1732,
      txBytes: 1732,
    });
  });

  it('refuses output without counters (no -s), instead of reading them as 0', () => {
    const link = JSON.parse(fixture('tunl0-addr.json')) as Array<Record<string, unknown>>;
    delete link[0]!.stats64;
    expect(() => parseLink(JSON.stringify(link), 'tunl0')).toThrow(/no rx packets counter/);
  });

  it('refuses output that does not hold the device', () => {
    expect(() => parseLink('[]', 'tunl0')).toThrow(/no link named tunl0/);
    expect(() => parseLink('{}', 'tunl0')).toThrow(/expected a JSON array/);
  });

  it('a device that is down, without addresses, is read as such', () => {
    const link = JSON.parse(fixture('tunl0-addr.json')) as Array<Record<string, unknown>>;
    link[0]!.flags = ['NOARP'];
    link[0]!.addr_info = [];
    expect(parseLink(JSON.stringify(link), 'tunl0')).toMatchObject({ up: false, addresses: [] });
  });

  it('counterDelta subtracts per direction', () => {
    const before = parseLink(fixture('tunl0-addr.json'), 'tunl0');
    expect(
      counterDelta(before, { ...before, rxPackets: before.rxPackets + 6, txPackets: before.txPackets + 2 }),
    ).toEqual({ rx: 6, tx: 2 });
    expect(counterDelta(before, before)).toEqual({ rx: 0, tx: 0 });
  });
});

describe('parseRoutes / remotePath: ip -4 -j route show', () => {
  const routes = parseRoutes(fixture('routes.json'));

  it('reads every route, with /32 on host routes, the onlink flag and the protocol', () => {
    expect(routes.map(describeRoute)).toEqual([
      'blackhole 10.244.1.0/26 proto 80',
      '10.244.1.5/32 dev cp',
      '10.244.2.0/26 via 198.18.0.2 dev tunl0 proto 80 onlink',
      '198.18.0.0/24 dev va proto kernel',
    ]);
  });

  it('classifies the path to a remote block: tunl0, direct, missing, or other', () => {
    expect(remotePath(routes, '10.244.2.0/26', '198.18.0.2')).toBe('tunl0');
    expect(remotePath(routes, '10.244.2.0/26', '198.18.0.9')).toBe('other'); // wrong next hop
    expect(remotePath(routes, '10.244.3.0/26', '198.18.0.2')).toBe('missing');
    const direct = routes.map((r) => (r.dev === 'tunl0' ? { ...r, dev: 'eth0' } : r));
    expect(remotePath(direct, '10.244.2.0/26', '198.18.0.2')).toBe('direct');
    const notOnlink = routes.map((r) => (r.dev === 'tunl0' ? { ...r, onlink: false } : r));
    expect(remotePath(notOnlink, '10.244.2.0/26', '198.18.0.2')).toBe('other');
  });
});

describe('parsePing', () => {
  it('a ping that passed: every reply, no losses', () => {
    expect(parsePing(fixture('ping-ok.txt'))).toEqual({
      transmitted: 3,
      received: 3,
      replies: [1, 2, 3],
      lostBeforeLast: [],
      longestGap: 0,
      tooBig: [],
    });
  });

  it('a continuous ping stopped with SIGINT: losses come from the sequence numbers', () => {
    const ping = parsePing(fixture('ping-int.txt'));
    expect(ping.replies).toHaveLength(14);
    expect(ping.lostBeforeLast).toEqual([]);
    const withHoles = fixture('ping-int.txt')
      .split('\n')
      .filter((line) => !/icmp_seq=(4|5|9) /.test(line))
      .join('\n');
    expect(parsePing(withHoles)).toMatchObject({ lostBeforeLast: [4, 5, 9], longestGap: 2 });
  });

  it('an echo too big for tunl0 with DF set: "Frag needed" from the node, then "message too long", no reply', () => {
    const ping = parsePing(fixture('ping-too-big.txt'));
    expect(ping).toMatchObject({ transmitted: 2, received: 0, replies: [] });
    expect(ping.tooBig).toEqual([
      'From 198.18.0.1 icmp_seq=1 Frag needed and DF set (mtu = 1480)',
      'ping: local error: message too long, mtu=1480',
    ]);
  });

  it('the largest echo that fits 1480 passes; sizes are MTU − 28', () => {
    expect(parsePing(fixture('ping-1452.txt'))).toMatchObject({ received: 1, replies: [1] });
    expect(largestEchoPayload(1480)).toBe(1452);
    expect(largestEchoPayload(1500)).toBe(1472);
  });

  it('duplicates count once; nothing printed reads as nothing received', () => {
    const dup =
      '64 bytes from 10.0.0.1: icmp_seq=1 ttl=64 time=1 ms\n64 bytes from 10.0.0.1: icmp_seq=1 ttl=64 time=1 ms (DUP!)\n';
    expect(parsePing(dup).replies).toEqual([1]);
    expect(parsePing('')).toEqual({ replies: [], lostBeforeLast: [], longestGap: 0, tooBig: [] });
  });
});

describe('VXLAN readers: vxlan.calico, its routes, neighbour and FDB entries (captured with iproute2 6.1)', () => {
  const routes = parseRoutes(fixture('vxlan-routes.json'));
  const vteps = [
    { node: 'b', nodeIp: '198.19.1.12', tunnelAddress: '10.244.1.1', mac: '66:aa:bb:cc:dd:02' },
    { node: 'c', nodeIp: '198.19.2.13', tunnelAddress: '10.244.2.1', mac: '66:AA:BB:CC:DD:03' },
  ];

  it('reads the device with kind vxlan, its MTU, /32 and counters', () => {
    expect(parseLink(fixture('vxlan-addr.json'), 'vxlan.calico')).toMatchObject({
      kind: 'vxlan',
      mtu: 1450,
      up: true,
      addresses: ['10.244.0.1/32'],
      rxPackets: 0,
      txPackets: 0,
    });
  });

  it('classifies a VXLAN route only via the VTEP named, and a direct one beside it', () => {
    expect(remotePath(routes, '10.244.1.0/26', '198.19.1.12', 'eth0', '10.244.1.1')).toBe('vxlan');
    expect(remotePath(routes, '10.244.1.0/26', '198.19.1.12', 'eth0', '10.244.9.9')).toBe('other'); // another VTEP
    expect(remotePath(routes, '10.244.1.0/26', '198.19.1.12')).toBe('other'); // no VTEP known: never vxlan
    expect(remotePath(routes, '10.244.2.0/26', '198.19.1.12', 'eth0', '10.244.2.1')).toBe('direct');
    const notOnlink = routes.map((r) => (r.dev === 'vxlan.calico' ? { ...r, onlink: false } : r));
    expect(remotePath(notOnlink, '10.244.1.0/26', '198.19.1.12', 'eth0', '10.244.1.1')).toBe('other');
  });

  it('finds the routes through a device (stale ones after a switch), none when there are none', () => {
    expect(routesThrough(routes, 'vxlan.calico').map(describeRoute)).toEqual([
      '10.244.1.0/26 via 10.244.1.1 dev vxlan.calico proto 80 onlink',
    ]);
    expect(routesThrough(routes, 'tunl0')).toEqual([]);
  });

  it('reads link names, and refuses output that is no link list', () => {
    expect(parseLinkNames(fixture('links.json'))).toEqual(['lo', 'peer0', 'eth0', 'vxlan.calico']);
    expect(parseLinkNames('[]')).toEqual([]);
    expect(() => parseLinkNames('{}')).toThrow(/expected a JSON array/);
    expect(() => parseLinkNames('[{"name":"eth0"}]')).toThrow(/no entry has an ifname/);
  });

  it('reads neighbour entries with MAC, PERMANENT and protocol; FDB entries with their destination', () => {
    expect(parseNeighbourEntries(fixture('vxlan-neigh.json'))).toEqual([
      { ip: '10.244.2.1', mac: '66:aa:bb:cc:dd:03', permanent: true, protocol: null },
      { ip: '10.244.1.1', mac: '66:aa:bb:cc:dd:02', permanent: true, protocol: '80' },
    ]);
    expect(parseFdbEntries(fixture('vxlan-fdb.json'))).toEqual([
      { mac: '66:aa:bb:cc:dd:03', dst: '198.19.2.13', permanent: true },
      { mac: '66:aa:bb:cc:dd:02', dst: '198.19.1.12', permanent: true },
    ]);
    expect(() => parseNeighbourEntries('{}')).toThrow(/expected a JSON array/);
    expect(() => parseFdbEntries('{}')).toThrow(/expected a JSON array/);
    expect(parseNeighbourEntries('')).toEqual([]);
  });

  it('vxlanEntryProblems: none when entries match the VTEPs; says what is missing, wrong or stale', () => {
    const neigh = parseNeighbourEntries(fixture('vxlan-neigh.json'));
    const fdb = parseFdbEntries(fixture('vxlan-fdb.json'));
    expect(vxlanEntryProblems(neigh, fdb, vteps)).toEqual([]);
    expect(vxlanEntryProblems([], [], vteps)).toHaveLength(4);
    const moved = [{ ...vteps[0]!, nodeIp: '198.19.1.99' }, vteps[1]!];
    expect(vxlanEntryProblems(neigh, fdb, moved)).toEqual([
      'FDB 66:aa:bb:cc:dd:02 → 198.19.1.12, wanted → 198.19.1.99 permanent',
    ]);
    const learnt = neigh.map((n) => (n.ip === '10.244.1.1' ? { ...n, permanent: false } : n));
    expect(vxlanEntryProblems(learnt, fdb, vteps)).toEqual([
      'neighbour 10.244.1.1 is 66:aa:bb:cc:dd:02 (not permanent), wanted 66:aa:bb:cc:dd:02 permanent',
    ]);
    // No VTEPs (the pool left VXLAN) but felix's entries still there: both are stale.
    expect(vxlanEntryProblems(neigh, fdb, [])).toEqual([
      'stale neighbour entry 10.244.1.1 → 66:aa:bb:cc:dd:02 (protocol 80) for no VTEP',
      'stale FDB entry 66:aa:bb:cc:dd:03 → 198.19.2.13 for no VTEP',
      'stale FDB entry 66:aa:bb:cc:dd:02 → 198.19.1.12 for no VTEP',
    ]);
  });
});

describe('lossesBySwitch: the echoes lost, window by window between switches', () => {
  const lines = (seqs: number[]): string =>
    seqs.map((s) => `64 bytes from 10.244.1.2: icmp_seq=${s} ttl=62 time=0.5 ms`).join('\n');

  it('puts each loss in the window of the switch before it; the tail in flight counts nowhere', () => {
    // Replies 1..30 except 5 (before any switch), 12, 13 (after switch 1 at mark 10) and 25 (after mark 20).
    const replies = Array.from({ length: 30 }, (_, i) => i + 1).filter((s) => ![5, 12, 13, 25].includes(s));
    const seen = parsePing(lines(replies));
    expect(highestReply(seen)).toBe(30);
    expect(lossesBySwitch(seen, [10, 20])).toEqual({ before: [5], windows: [[12, 13], [25]] });
    expect(lossesBySwitch(parsePing(lines([1, 2, 3])), [2])).toEqual({ before: [], windows: [[]] });
  });

  it('a stream that stopped answering after a switch shows no loss there (nothing after it came back)', () => {
    const seen = parsePing(lines([1, 2, 3, 4]));
    expect(lossesBySwitch(seen, [4, 4])).toEqual({ before: [], windows: [[], []] });
    expect(highestReply(parsePing(''))).toBe(0);
  });

  it('refuses marks that go backwards', () => {
    expect(() => lossesBySwitch(parsePing(lines([1, 2])), [5, 3])).toThrow(/backwards/);
  });
});
