import { describe, expect, it } from 'vitest';
import {
  compareRouteClass,
  describeRoute,
  isRouteClass,
  resolveByClass,
  ROUTE_CLASSES,
  routeKey,
  sameRoute,
  type DesiredRoute,
  type RouteClass,
} from '../../../felix/routes.js';

describe('routeKey', () => {
  // What `ip -json route` prints, and what desired routes carry → the one spelling.
  const KEYS: Array<[string, string]> = [
    ['10.244.196.129', '10.244.196.129/32'],
    ['10.244.196.129/32', '10.244.196.129/32'],
    ['default', '0.0.0.0/0'],
    ['0.0.0.0/0', '0.0.0.0/0'],
    ['10.244.196.128/26', '10.244.196.128/26'],
    ['10.244.196.130/26', '10.244.196.128/26'],
  ];
  it.each(KEYS)('%s → %s', (dst, key) => {
    expect(KEYS.length).toBeGreaterThan(0);
    expect(routeKey(dst)).toBe(key);
  });

  it('refuses junk, naming it and the accepted forms', () => {
    expect(() => routeKey('fe80::1')).toThrow(
      /route destination "fe80::1" is not an IPv4 address, a CIDR .* or "default"/,
    );
    expect(() => routeKey('10.0.0.0/40')).toThrow(/route destination "10.0.0.0\/40": prefix length "40" is not 0..32/);
  });
});

describe('route classes', () => {
  it('settle conflicts as the issue says: workload < tunnel/direct < blackhole', () => {
    const order = (Object.keys(ROUTE_CLASSES) as RouteClass[]).sort(compareRouteClass);
    expect(order).toEqual(['workload', 'direct', 'tunnel', 'peer', 'vxlan', 'bgp', 'blackhole']);
    expect(compareRouteClass('workload', 'tunnel')).toBeLessThan(0);
    expect(compareRouteClass('direct', 'blackhole')).toBeLessThan(0);
    expect(compareRouteClass('blackhole', 'tunnel')).toBeGreaterThan(0);
    expect(new Set(Object.values(ROUTE_CLASSES).map((c) => c.rank)).size).toBe(7);
  });

  it('knows its names', () => {
    expect(isRouteClass('bgp')).toBe(true);
    expect(isRouteClass('constructor')).toBe(false);
  });
});

const blackhole: DesiredRoute = { dst: '10.244.7.0/26', type: 'blackhole', proto: 80, class: 'blackhole' };
const tunnel: DesiredRoute = {
  dst: '10.244.7.0/26',
  type: 'unicast',
  via: '192.168.40.7',
  dev: 'tunl0',
  onlink: true,
  proto: 80,
  class: 'tunnel',
};
const direct: DesiredRoute = { ...tunnel, dev: 'eth0', class: 'direct' };
const workload: DesiredRoute = {
  dst: '10.244.7.5/32',
  type: 'unicast',
  dev: 'calic440f455693',
  scope: 'link',
  proto: 80,
  class: 'workload',
};

describe('describeRoute', () => {
  it('prints routes as ip route does', () => {
    expect(describeRoute(blackhole)).toBe('blackhole 10.244.7.0/26 proto 80');
    expect(describeRoute(tunnel)).toBe('10.244.7.0/26 via 192.168.40.7 dev tunl0 proto 80 onlink');
    expect(describeRoute(workload)).toBe('10.244.7.5 dev calic440f455693 proto 80 scope link');
  });
});

describe('resolveByClass', () => {
  it('keeps the lowest class per destination and reports the rest', () => {
    const { routes, conflicts } = resolveByClass([blackhole, tunnel, direct, workload]);
    expect(routes).toEqual([direct, workload]);
    expect(conflicts).toEqual([{ dst: '10.244.7.0/26', winner: direct, losers: [blackhole, tunnel] }]);
  });

  it('within one class the first candidate wins', () => {
    const other = { ...tunnel, via: '192.168.40.8' };
    expect(resolveByClass([other, tunnel]).routes).toEqual([other]);
    expect(resolveByClass([tunnel, other]).routes).toEqual([tunnel]);
  });

  it('folds identical duplicates without a conflict; default fields compare equal to explicit ones', () => {
    const explicit: DesiredRoute = { ...blackhole, scope: 'global', onlink: false };
    expect(sameRoute(blackhole, explicit)).toBe(true);
    expect(resolveByClass([blackhole, explicit, { ...blackhole }])).toEqual({ routes: [blackhole], conflicts: [] });
  });

  it('sameRoute tells any field apart', () => {
    const changes: Array<Partial<DesiredRoute>> = [
      { dst: '10.244.8.0/26' },
      { dev: 'eth1' },
      { via: '192.168.40.9' },
      { onlink: false },
      { scope: 'link' },
      { proto: 3 },
      { class: 'direct' },
      { type: 'blackhole' },
    ];
    expect(changes.length).toBeGreaterThan(0);
    for (const change of changes) expect(sameRoute(tunnel, { ...tunnel, ...change })).toBe(false);
  });
});
