// The pieces under the route table: one spelling per kernel route (normalization, protocol names),
// iproute2's batch lines, its batch error output and `ip -o monitor` lines (samples captured from
// iproute2 6.1 on this machine), and the in-memory kernel behaving like Linux where felix cares.

import { describe, expect, it } from 'vitest';
import {
  KernelError,
  normalizeDst,
  normalizeKernelRoute,
  protocolNumber,
  sameKernelRoute,
  type KernelEvent,
} from '../../../felix/kernel.js';
import { parseBatchErrors, parseMonitorLine, parseRouteJson, routeCommand } from '../../../felix/iproute2.js';
import { MemoryKernel } from '../../../felix/memory-kernel.js';
import { isOwnedRoute, toKernelRoute } from '../../../felix/route-table.js';

describe('normalization', () => {
  const DST_CASES: Array<[string, string]> = [
    ['10.0.0.5', '10.0.0.5/32'],
    ['10.244.1.0/26', '10.244.1.0/26'],
    ['10.244.1.7/26', '10.244.1.0/26'],
    ['default', '0.0.0.0/0'],
    ['0.0.0.0/0', '0.0.0.0/0'],
    ['fe80::/64', 'fe80::/64'],
    ['300.1.1.1', '300.1.1.1'],
  ];
  it.each(DST_CASES)('normalizeDst(%s) = %s', (input, want) => {
    expect(normalizeDst(input)).toBe(want);
  });
  it('has cases', () => expect(DST_CASES.length).toBeGreaterThan(5));

  it('protocol names and numbers are one thing; a missing protocol is boot', () => {
    expect(protocolNumber('80')).toBe(80);
    expect(protocolNumber('bird')).toBe(12);
    expect(protocolNumber('kernel')).toBe(2);
    expect(protocolNumber('static')).toBe(4);
    expect(protocolNumber(undefined)).toBe(3);
    expect(protocolNumber('nonsense')).toBe(-1);
  });

  it('the plain and the -details spellings of one route are the same route', () => {
    const plain = { dst: '10.244.1.5', dev: 'calie8e9a5cf531', protocol: '80', scope: 'link', flags: [] };
    const detailed = {
      type: 'unicast',
      dst: '10.244.1.5/32',
      dev: 'calie8e9a5cf531',
      protocol: '80',
      scope: 'link',
      flags: [],
    };
    expect(sameKernelRoute(plain, detailed)).toBe(true);
    expect(sameKernelRoute({ ...plain, dev: 'cali0000000000a' }, detailed)).toBe(false);
    expect(
      sameKernelRoute(
        { dst: '10.1.0.0/16', gateway: '10.0.0.1', flags: ['onlink'] },
        { dst: '10.1.0.0/16', gateway: '10.0.0.1' },
      ),
    ).toBe(false);
    expect(normalizeKernelRoute({ dst: '10.2.0.0/16', dev: 'eth0', flags: ['linkdown', 'onlink'] }).flags).toEqual([
      'onlink',
    ]);
  });

  it('ownership: proto 80 anywhere, anything on cali*; nothing else', () => {
    expect(isOwnedRoute({ dst: '10.244.1.0/26', type: 'blackhole', protocol: '80' })).toBe(true);
    expect(isOwnedRoute({ dst: '10.244.1.5', dev: 'calie8e9a5cf531', protocol: 'boot' })).toBe(true);
    for (const protocol of ['bird', 'kernel', 'static', 'boot', 'dhcp', undefined]) {
      expect(isOwnedRoute({ dst: '10.9.0.0/16', dev: 'eth0', protocol }), String(protocol)).toBe(false);
    }
  });
});

describe('iproute2 text', () => {
  it('batch lines for each route shape', () => {
    const lines = [
      toKernelRoute({ dst: '10.244.1.0/26', type: 'blackhole', proto: 80, class: 'blackhole' }),
      toKernelRoute({
        dst: '10.244.1.5/32',
        type: 'unicast',
        dev: 'calie8e9a5cf531',
        scope: 'link',
        proto: 80,
        class: 'workload',
      }),
      toKernelRoute({
        dst: '10.244.2.0/26',
        type: 'unicast',
        via: '192.168.31.202',
        dev: 'tunl0',
        onlink: true,
        proto: 80,
        class: 'tunnel',
      }),
    ].map((r) => routeCommand('replace', r));
    expect(lines).toEqual([
      'route replace blackhole 10.244.1.0/26 proto 80 table main',
      'route replace 10.244.1.5/32 dev calie8e9a5cf531 scope link proto 80 table main',
      'route replace 10.244.2.0/26 via 192.168.31.202 dev tunl0 proto 80 table main onlink',
    ]);
    expect(
      routeCommand('del', { dst: '10.244.1.0/26', type: 'blackhole', protocol: '80', scope: 'global', flags: [] }),
    ).toBe('route del blackhole 10.244.1.0/26 proto 80 table main');
  });

  it('parses ip -json route output (captured)', () => {
    const text =
      '[{"type":"blackhole","dst":"10.244.1.0/26","protocol":"80","flags":[]},{"dst":"10.244.1.5","dev":"cali1234567890a","protocol":"80","scope":"link","flags":[]},' +
      '{"dst":"10.244.2.0/26","gateway":"192.168.31.202","dev":"eth0","protocol":"80","flags":["onlink"]},{"dst":"default","gateway":"192.168.31.1","dev":"eth0","metric":100,"flags":[]}]';
    const routes = parseRouteJson(text);
    expect(routes).toHaveLength(4);
    expect(routes[1]).toEqual({ dst: '10.244.1.5', dev: 'cali1234567890a', protocol: '80', scope: 'link', flags: [] });
    expect(routes[3]?.metric).toBe(100);
    expect(parseRouteJson('')).toEqual([]);
    expect(() => parseRouteJson('Error: nope')).toThrow(KernelError);
  });

  it('finds the failing lines of a -force batch (captured stderr)', () => {
    const lines = [
      'route replace 10.1.0.0/16 dev tunl0',
      'route replace blackhole 10.2.0.0/16',
      'route del 10.99.0.0/26',
    ];
    const stderr =
      'Cannot find device "tunl0"\nCommand failed -:1\nRTNETLINK answers: No such process\nCommand failed -:3\n';
    expect(parseBatchErrors(stderr, lines)).toEqual([
      { command: lines[0], error: 'Cannot find device "tunl0"' },
      { command: lines[2], error: 'RTNETLINK answers: No such process' },
    ]);
  });

  it('parses ip -o monitor route link lines (captured)', () => {
    const cases: Array<[string, KernelEvent | null]> = [
      ['blackhole 10.1.0.0/26 proto 80 ', { kind: 'route', dst: '10.1.0.0/26', deleted: false }],
      ['Deleted blackhole 10.1.0.0/26 proto 80 ', { kind: 'route', dst: '10.1.0.0/26', deleted: true }],
      ['10.244.1.5 dev calia proto 80 scope link ', { kind: 'route', dst: '10.244.1.5/32', deleted: false }],
      [
        '192.168.31.0/24 dev eth0 proto kernel scope link src 192.168.31.201 linkdown ',
        { kind: 'route', dst: '192.168.31.0/24', deleted: false },
      ],
      ['local 192.168.31.201 dev eth0 table local proto kernel scope host src 192.168.31.201 ', null],
      ['Deleted local 192.168.31.201 dev eth0 table local proto kernel scope host src 192.168.31.201 ', null],
      [
        '2: calia@NONE: <BROADCAST,MULTICAST> mtu 1500 qdisc noop state DOWN group default \\    link/ether 5e:f2:36:21:30:2c brd ff:ff:ff:ff:ff:ff',
        { kind: 'link', name: 'calia', deleted: false },
      ],
      [
        'Deleted 3: eth0@NONE: <BROADCAST,MULTICAST> mtu 1500 qdisc noop state DOWN group default',
        { kind: 'link', name: 'eth0', deleted: true },
      ],
      ['fe80::/64 dev eth0 proto kernel metric 256 pref medium', null],
      ['', null],
    ];
    expect(cases.length).toBeGreaterThan(5);
    for (const [line, want] of cases) expect(parseMonitorLine(line), line).toEqual(want);
  });
});

describe('MemoryKernel', () => {
  it('replace overwrites whatever holds dst+metric; del needs a match; dev must exist', async () => {
    const kernel = new MemoryKernel({ links: ['eth0'] });
    await kernel.apply({
      del: [],
      add: [{ dst: '10.1.0.0/16', gateway: '10.0.0.1', dev: 'eth0', protocol: 'static' }],
    });
    await kernel.apply({ del: [], add: [{ dst: '10.1.0.0/16', type: 'blackhole', protocol: '80' }] });
    expect(kernel.snapshot()).toHaveLength(1);
    expect(kernel.snapshot()[0]?.type).toBe('blackhole');
    await expect(kernel.apply({ del: [{ dst: '10.1.0.0/16', protocol: '4' }], add: [] })).rejects.toThrow(/1 of 1/);
    await expect(kernel.apply({ del: [], add: [{ dst: '10.3.0.0/16', dev: 'cali00' }] })).rejects.toThrow(KernelError);
    expect(kernel.writes).toBe(4);
  });

  it('fails the next call when told to, once', async () => {
    const kernel = new MemoryKernel();
    kernel.failNext('listRoutes', 'boom');
    await expect(kernel.listRoutes()).rejects.toThrow(/listRoutes: boom/);
    await expect(kernel.listRoutes()).resolves.toEqual([]);
  });

  it('removing an interface removes its routes and tells watchers', async () => {
    const kernel = new MemoryKernel({ links: ['cali1'] });
    await kernel.apply({ del: [], add: [{ dst: '10.0.0.1', dev: 'cali1', protocol: '80', scope: 'link' }] });
    const events: KernelEvent[] = [];
    kernel.watch((e) => events.push(e));
    kernel.removeLink('cali1');
    await Promise.resolve();
    expect(kernel.snapshot()).toEqual([]);
    expect(events).toEqual([
      { kind: 'link', name: 'cali1', deleted: true },
      { kind: 'route', dst: '10.0.0.1/32', deleted: true },
    ]);
  });
});
