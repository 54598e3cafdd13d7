// BGPFilter evaluation (src/agent/bgp-filter.ts), case by case against what Calico's rendered BIRD filter
// does with the same rules (confd/docs/bgpfilter-bird-config-examples.md): order, peerType, each matcher,
// each operation, and the fall-through on import (accept) and export (Calico's default rules decide).

import { describe, expect, it } from 'vitest';
import { parseIpv4 } from '../../../bgp/ip.js';
import { AsPathSegmentType, type PathAttributes } from '../../../bgp/types.js';
import { compilePeerFilter, missingFilters, type FilterRoute } from '../../../src/agent/bgp-filter.js';
import type { BGPFilterSpec, Resource } from '../../../src/resources/types.js';

const filter = (name: string, spec: BGPFilterSpec): Resource<'BGPFilter'> => ({
  apiVersion: 'projectcalico.org/v3',
  kind: 'BGPFilter',
  metadata: { name },
  spec,
});
const seq = (...asns: number[]) => [{ type: AsPathSegmentType.AS_SEQUENCE, asns }];
function route(prefix: string, attrs: PathAttributes = {}, extra: Partial<FilterRoute> = {}): FilterRoute {
  const [addr, len] = prefix.split('/');
  return { addr: parseIpv4(addr!), len: Number(len), attrs: { asPath: seq(65000), ...attrs }, learned: true, ...extra };
}
const decide = (
  filters: Resource<'BGPFilter'>[],
  direction: 'import' | 'export',
  r: FilterRoute,
  ebgp = true,
  names = filters.map((f) => f.metadata.name),
) => {
  const fn = compilePeerFilter(names, filters, direction, ebgp);
  if (fn === undefined) throw new Error('no filter compiled');
  return fn(r);
};
const action = (...args: Parameters<typeof decide>) => decide(...args).action;

describe('BGPFilter evaluation', () => {
  it('cidr with each matchOperator, as BIRD reads net = / != / ~ / !~', () => {
    const f = (matchOperator: 'Equal' | 'NotEqual' | 'In' | 'NotIn') => [
      filter('f', { importV4: [{ cidr: '10.244.0.0/16', matchOperator, action: 'Reject' }] }),
    ];
    expect(action(f('Equal'), 'import', route('10.244.0.0/16'))).toBe('reject');
    expect(action(f('Equal'), 'import', route('10.244.1.0/26'))).toBe('none');
    expect(action(f('NotEqual'), 'import', route('10.244.1.0/26'))).toBe('reject');
    expect(action(f('In'), 'import', route('10.244.1.0/26'))).toBe('reject');
    expect(action(f('In'), 'import', route('10.244.0.0/16'))).toBe('reject');
    expect(action(f('In'), 'import', route('10.0.0.0/8'))).toBe('none'); // shorter: not inside
    expect(action(f('In'), 'import', route('10.245.0.0/26'))).toBe('none');
    expect(action(f('NotIn'), 'import', route('10.245.0.0/26'))).toBe('reject');
  });

  it('prefixLength narrows In to cidr{min,max}; min is raised to the cidr length, max capped at 32', () => {
    const f = (prefixLength: { min?: number; max?: number }) => [
      filter('f', { importV4: [{ cidr: '10.244.0.0/16', matchOperator: 'In', prefixLength, action: 'Reject' }] }),
    ];
    expect(action(f({ min: 24, max: 28 }), 'import', route('10.244.1.0/24'))).toBe('reject');
    expect(action(f({ min: 24, max: 28 }), 'import', route('10.244.1.0/26'))).toBe('reject');
    expect(action(f({ min: 24, max: 28 }), 'import', route('10.244.1.0/29'))).toBe('none');
    expect(action(f({ min: 24, max: 28 }), 'import', route('10.244.0.0/16'))).toBe('none');
    expect(action(f({ min: 8 }), 'import', route('10.244.0.0/16'))).toBe('reject'); // min 8 → 16
    expect(action(f({ max: 40 }), 'import', route('10.244.1.1/32'))).toBe('reject');
  });

  it('the first matching rule decides, across filters in the order the peer names them', () => {
    const a = filter('a', { importV4: [{ cidr: '10.244.1.0/26', matchOperator: 'Equal', action: 'Accept' }] });
    const b = filter('b', { importV4: [{ cidr: '10.244.0.0/16', matchOperator: 'In', action: 'Reject' }] });
    expect(action([a, b], 'import', route('10.244.1.0/26'))).toBe('accept');
    expect(action([a, b], 'import', route('10.244.2.0/26'))).toBe('reject');
    expect(action([a, b], 'import', route('10.244.1.0/26'), true, ['b', 'a'])).toBe('reject');
    expect(decide([a, b], 'import', route('10.244.2.0/26'))).toEqual({
      action: 'reject',
      rule: 'BGPFilter b importV4[0]',
    });
  });

  it('peerType: an iBGP rule is skipped on an eBGP session and the other way round', () => {
    const f = [
      filter('f', {
        importV4: [
          { peerType: 'iBGP', action: 'Reject' },
          { peerType: 'eBGP', action: 'Accept' },
        ],
      }),
    ];
    expect(action(f, 'import', route('10.244.1.0/26'), false)).toBe('reject');
    expect(action(f, 'import', route('10.244.1.0/26'), true)).toBe('accept');
    // Only iBGP rules and an eBGP peer: nothing to evaluate at all.
    expect(
      compilePeerFilter(['g'], [filter('g', { importV4: [{ peerType: 'iBGP', action: 'Reject' }] })], 'import', true),
    ).toBeUndefined();
  });

  it('source RemotePeers matches learned routes only, never the blocks this node originates', () => {
    const f = [filter('f', { exportV4: [{ source: 'RemotePeers', action: 'Reject' }] })];
    expect(action(f, 'export', route('10.244.1.0/26'))).toBe('reject');
    expect(action(f, 'export', route('10.244.1.0/26', {}, { learned: false }))).toBe('none');
  });

  it('interface matches the outgoing interface with BIRD wildcards; a route without one never matches', () => {
    const f = [filter('f', { importV4: [{ interface: 'eth*', action: 'Reject' }] })];
    expect(action(f, 'import', route('10.244.1.0/26', {}, { iface: 'eth1' }))).toBe('reject');
    expect(action(f, 'import', route('10.244.1.0/26', {}, { iface: 'ens3' }))).toBe('none');
    expect(action(f, 'import', route('10.244.1.0/26'))).toBe('none');
    const dot = [filter('f', { importV4: [{ interface: 'eth0.1', action: 'Reject' }] })];
    expect(action(dot, 'import', route('10.244.1.0/26', {}, { iface: 'eth0x1' }))).toBe('none'); // "." is literal
  });

  it('communities: a standard or a large community the route carries', () => {
    const std = [filter('f', { importV4: [{ communities: { values: ['65000:100'] }, action: 'Reject' }] })];
    expect(action(std, 'import', route('10.244.1.0/26', { communities: [65000 * 65536 + 100] }))).toBe('reject');
    expect(action(std, 'import', route('10.244.1.0/26', { communities: [65000 * 65536 + 101] }))).toBe('none');
    const large = [filter('f', { importV4: [{ communities: { values: ['65000:100:999'] }, action: 'Reject' }] })];
    expect(action(large, 'import', route('10.244.1.0/26', { largeCommunities: [1, 2, 3, 65000, 100, 999] }))).toBe(
      'reject',
    );
    expect(action(large, 'import', route('10.244.1.0/26', { largeCommunities: [100, 999, 65000] }))).toBe('none');
  });

  it('asPathPrefix: the AS_PATH begins with the listed AS numbers', () => {
    const f = [filter('f', { importV4: [{ asPathPrefix: [65000, 65001], action: 'Reject' }] })];
    expect(action(f, 'import', route('10.244.1.0/26', { asPath: seq(65000, 65001, 65002) }))).toBe('reject');
    expect(action(f, 'import', route('10.244.1.0/26', { asPath: [...seq(65000), ...seq(65001)] }))).toBe('reject');
    expect(action(f, 'import', route('10.244.1.0/26', { asPath: seq(65001, 65000) }))).toBe('none');
    expect(action(f, 'import', route('10.244.1.0/26', { asPath: seq(65000) }))).toBe('none');
  });

  it('priority: no route here carries a kernel priority, so the rule matches nothing', () => {
    const f = [filter('f', { importV4: [{ priority: 512, action: 'Reject' }] })];
    expect(action(f, 'import', route('10.244.1.0/26'))).toBe('none');
  });

  it('every criterion of a rule must hold', () => {
    const f = [
      filter('f', {
        importV4: [
          { cidr: '10.244.0.0/16', matchOperator: 'In', communities: { values: ['65000:100'] }, action: 'Reject' },
        ],
      }),
    ];
    expect(action(f, 'import', route('10.244.1.0/26', { communities: [65000 * 65536 + 100] }))).toBe('reject');
    expect(action(f, 'import', route('10.244.1.0/26'))).toBe('none');
    expect(action(f, 'import', route('10.245.1.0/26', { communities: [65000 * 65536 + 100] }))).toBe('none');
  });

  it('operations on Accept, in order: communities added once, AS numbers prepended in the listed order', () => {
    const f = [
      filter('f', {
        exportV4: [
          {
            action: 'Accept',
            operations: [
              { addCommunity: { value: '65000:200' } },
              { addCommunity: { value: '65000:200' } },
              { addCommunity: { value: '65000:300:400' } },
              { prependASPath: { prefix: [65001, 65002] } },
              { setPriority: { value: 256 } },
            ],
          },
        ],
      }),
    ];
    const out = decide(f, 'export', route('10.244.1.0/26', { communities: [1], asPath: seq(65000) }));
    expect(out).toEqual({
      action: 'accept',
      rule: 'BGPFilter f exportV4[0]',
      attrs: {
        communities: [1, 65000 * 65536 + 200],
        largeCommunities: [65000, 300, 400],
        asPath: seq(65001, 65002, 65000),
      },
    });
  });

  it('prepend onto an empty path or an AS_SET makes a new AS_SEQUENCE first', () => {
    const f = [filter('f', { exportV4: [{ action: 'Accept', operations: [{ prependASPath: { prefix: [65001] } }] }] })];
    const empty = decide(f, 'export', route('10.244.1.0/26', { asPath: [] }, { learned: false }));
    expect(empty.action === 'accept' && empty.attrs.asPath).toEqual(seq(65001));
    const set = decide(
      f,
      'export',
      route('10.244.1.0/26', { asPath: [{ type: AsPathSegmentType.AS_SET, asns: [1, 2] }] }),
    );
    expect(set.action === 'accept' && set.attrs.asPath).toEqual([
      ...seq(65001),
      { type: AsPathSegmentType.AS_SET, asns: [1, 2] },
    ]);
  });

  it('only the IPv4 lists apply, and a direction without rules compiles to nothing', () => {
    const f = [filter('f', { importV6: [{ action: 'Reject' }], exportV4: [{ action: 'Reject' }] })];
    expect(compilePeerFilter(['f'], f, 'import', true)).toBeUndefined();
    expect(action(f, 'export', route('10.244.1.0/26'))).toBe('reject');
  });

  it('names a filter the peer lists that does not exist; the others still apply', () => {
    const f = [filter('f', { importV4: [{ action: 'Reject' }] })];
    expect(missingFilters(['nope', 'f'], f)).toEqual(['nope']);
    expect(action(f, 'import', route('10.244.1.0/26'), true, ['nope', 'f'])).toBe('reject');
  });
});
