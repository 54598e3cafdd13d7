// The pure parts of the routing benches: counting parsers for each daemon's CLI (on real output shapes),
// the origin BIRD config, the comparison rows, and the profile summariser.
import { describe, expect, it } from 'vitest';
import { byFunction, selfTimes, type CpuProfile } from './routing-cpuprofile.js';
import { birdOriginConfig, blockText, parseBirdCount, parseFrrPfxRcd, parseGobgpSummary } from './routing-daemons.js';
import { comparisonRows, ratio } from './routing-receive.js';

describe('route counters', () => {
  it('reads BIRD 2 "show route protocol X count"', () => {
    expect(parseBirdCount('BIRD 2.0.12 ready.\n100000 of 100000 routes for 100000 networks in table master4\n')).toBe(
      100000,
    );
    expect(parseBirdCount('0 of 0 routes for 0 networks in table master4')).toBe(0);
    expect(() => parseBirdCount('syntax error')).toThrow(/expected "N of M routes/);
  });
  it('reads FRR pfxRcd of one neighbor, 0 when it is not listed', () => {
    const json = JSON.stringify({
      routerId: '127.0.40.13',
      peers: { '127.0.40.1': { pfxRcd: 4242, state: 'Established' } },
    });
    expect(parseFrrPfxRcd(json, '127.0.40.1')).toBe(4242);
    expect(parseFrrPfxRcd(json, '127.0.40.2')).toBe(0);
    expect(parseFrrPfxRcd('{}', '127.0.40.1')).toBe(0);
  });
  it('reads GoBGP "global rib summary"', () => {
    expect(parseGobgpSummary('Table ipv4-unicast\nDestination: 99999, Path: 99999\n')).toBe(99999);
    expect(() => parseGobgpSummary('')).toThrow(/Destination: N/);
  });
});

describe('origin BIRD config', () => {
  it('numbers /26 blocks upward from the base', () => {
    expect(blockText(0x0a000000, 0)).toBe('10.0.0.0/26');
    expect(blockText(0x0a000000, 5)).toBe('10.0.1.64/26');
  });
  it('puts every route in a disabled static protocol; distinct gives each its own MED', () => {
    const packed = birdOriginConfig({
      address: '127.0.40.1',
      routerId: '127.0.40.1',
      neighbors: [{ address: '127.0.40.11' }],
      routes: 3,
      distinct: false,
    });
    const distinct = birdOriginConfig({
      address: '127.0.40.1',
      routerId: '127.0.40.1',
      neighbors: [{ address: '127.0.40.11', passive: true }],
      routes: 3,
      distinct: true,
    });
    expect(packed).toMatch(/protocol static t_routes \{ ipv4; disabled;/);
    expect(packed.match(/^ {2}route 10\.0\.\d+\.\d+\/26 blackhole;$/gm)).toHaveLength(3);
    expect(packed).not.toMatch(/bgp_med/);
    expect(distinct.match(/bgp_med = \d+/g)).toEqual(['bgp_med = 1', 'bgp_med = 2', 'bgp_med = 3']);
    expect(distinct).toMatch(/passive on;/);
    expect(packed).toMatch(/neighbor 127\.0\.40\.11 port 179 as 64512;/);
  });
});

describe('comparison rows', () => {
  it('gives tortie/peer ratios, and a bound when the peer hit the limit', () => {
    expect(ratio(100, 400, 30_000)).toBe('0.25×');
    expect(ratio(3000, undefined, 30_000)).toBe('< 0.10×');
    expect(ratio(undefined, 10, 30_000)).toBe('tortie did not finish');
    const rows = comparisonRows(
      'x',
      10,
      { ms: 200, last: 10 },
      new Map([
        ['bird2', { ms: 100, last: 10 }],
        ['gobgp', { ms: undefined, last: 4 }],
      ]),
      30_000,
    );
    expect(rows.map((r) => [r.name, r.value, r.vs])).toEqual([
      ['x: tortie', 200, 'bird2 2.00×, gobgp < 0.01×'],
      ['x: bird2', 100, 'tortie/bird2 2.00×'],
      ['x: gobgp', 30_000, '> 30 s limit (4/10 routes)'],
    ]);
  });
});

describe('cpu profile summary', () => {
  it('adds self time per function and sorts by it', () => {
    const frame = (functionName: string) => ({
      functionName,
      url: 'file:///work/main/dist/bgp/rib/adj-rib-out.js',
      lineNumber: 9,
    });
    const profile: CpuProfile = {
      nodes: [
        { id: 1, callFrame: frame('(root)') },
        { id: 2, callFrame: frame('setDesired') },
        { id: 3, callFrame: frame('pending') },
      ],
      samples: [2, 2, 3, 2],
      timeDeltas: [1000, 1000, 1000, 1000],
    };
    const times = selfTimes(profile, byFunction);
    expect(times.length).toBeGreaterThan(0);
    expect(times[0]).toEqual({ name: 'setDesired bgp/rib/adj-rib-out.js:10', ms: 3, percent: 75 });
    expect(times[1]!.name).toBe('pending bgp/rib/adj-rib-out.js:10');
  });
});

describe('routing-clients and the speaker process (pure parts)', () => {
  it('walks the prefixes of an NLRI field: bench /26s by route number, others skipped, an overrun refused', async () => {
    const { walkPrefixes, clientAddress } = await import('./routing-clients.js');
    // 10.128.0.0/26 (route 0), 10.128.0.64/26 (route 1), 10.0.0.0/8 (not the bench's), 10.128.1.64/26 (route 5)
    const field = new Uint8Array([26, 10, 128, 0, 0, 26, 10, 128, 0, 64, 8, 10, 26, 10, 128, 1, 64]);
    const seen: number[] = [];
    walkPrefixes(field, 0, field.length, (i) => seen.push(i));
    expect(seen).toEqual([0, 1, 5]);
    expect(() => walkPrefixes(new Uint8Array([26, 10, 128]), 0, 3, () => {})).toThrow(/overruns/);
    expect(clientAddress(0)).toBe('127.50.0.1');
    expect(clientAddress(999)).toBe('127.50.3.250');
  });
  it("counts Established sessions from the speaker's --json state events", async () => {
    const { establishedFromEvents } = await import('./routing-speaker-process.js');
    const log = [
      '{"event":"listening","address":"127.0.41.14","port":179}',
      '{"event":"state","peer":"a","from":"OpenConfirm","to":"Established"}',
      '{"event":"state","peer":"b","from":"OpenConfirm","to":"Established"}',
      '{"event":"update","peer":"a","announce":[],"withdraw":[]}',
      '{"event":"state","peer":"b","from":"Established","to":"Idle"}',
      '',
    ].join('\n');
    expect(establishedFromEvents(log)).toBe(1);
  });
});
