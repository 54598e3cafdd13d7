// Properties of the route calculation over random clusters: one route per destination, proto 80 always,
// no route via ourselves, the order of the input never matters, and every tunnel route disappears when
// tunl0 is unusable while nothing else changes.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { calculateRoutes } from '../../../felix/route-calc.js';
import { type CalcInput, type CalcPool } from '../../../felix/calc-types.js';
import { routeKey } from '../../../felix/routes.js';

const MODES: Array<CalcPool['ipipMode']> = ['Never', 'Always', 'CrossSubnet'];

// Addresses drawn from small ranges so that collisions (same block local and remote, same IP twice) happen.
const block = fc
  .tuple(fc.integer({ min: 0, max: 3 }), fc.integer({ min: 0, max: 3 }))
  .map(([a, b]) => `10.${244 + a}.${b}.0/26`);
const podIp = fc
  .tuple(fc.integer({ min: 0, max: 3 }), fc.integer({ min: 0, max: 3 }), fc.integer({ min: 1, max: 6 }))
  .map(([a, b, c]) => `10.${244 + a}.${b}.${c}`);
const nodeIp = fc
  .tuple(fc.integer({ min: 30, max: 32 }), fc.integer({ min: 1, max: 4 }))
  .map(([s, h]) => `192.168.${s}.${h}`);
const outside = fc.integer({ min: 16, max: 18 }).map((b) => `172.${b}.0.0/16`);

const cluster: fc.Arbitrary<CalcInput> = fc.record({
  node: fc.record({
    ip: fc.tuple(nodeIp, fc.constantFrom(24, 16, 32)).map(([ip, len]) => `${ip}/${len}`),
    hostInterface: fc.constant('eth0'),
  }),
  pools: fc.uniqueArray(
    fc.record({
      cidr: fc.integer({ min: 0, max: 3 }).map((a) => `10.${244 + a}.0.0/16`),
      ipipMode: fc.constantFrom(...MODES),
      vxlanMode: fc.constantFrom<CalcPool['ipipMode']>('Never', 'Never', 'Always'),
    }),
    { selector: (p) => p.cidr, maxLength: 4 },
  ),
  localBlocks: fc.array(block, { maxLength: 4 }),
  workloads: fc.array(
    fc.record({ ip: podIp, namespace: fc.constantFrom('a', 'b'), pod: fc.constantFrom('p', 'q', 'r') }),
    { maxLength: 6 },
  ),
  bgpRoutes: fc.array(
    fc.record({
      prefix: fc.oneof(
        block,
        podIp.map((ip) => `${ip}/32`),
        outside,
      ),
      nextHop: nodeIp,
    }),
    { maxLength: 10 },
  ),
  tunnelUsable: fc.boolean(),
});

function shuffled<T>(items: readonly T[], seed: number): T[] {
  const out = [...items];
  for (let i = out.length - 1; i > 0; i--) {
    const j = (seed * (i + 7)) % (i + 1);
    [out[i], out[j]] = [out[j] as T, out[i] as T];
  }
  return out;
}

describe('calculateRoutes: properties', () => {
  it('one route per destination, proto 80, never via this node, canonical destinations', () => {
    let sawRoutes = 0;
    fc.assert(
      fc.property(cluster, (input) => {
        const { routes } = calculateRoutes(input);
        sawRoutes += routes.length;
        expect(new Set(routes.map((r) => r.dst)).size).toBe(routes.length);
        const self = input.node.ip.split('/')[0];
        for (const r of routes) {
          expect(r.proto).toBe(80);
          expect(routeKey(r.dst)).toBe(r.dst);
          expect(r.via).not.toBe(self);
          if (r.class === 'tunnel') expect(input.tunnelUsable).toBe(true);
          if (r.type === 'blackhole') expect(r.dev).toBeUndefined();
          else expect(r.dev).toBeDefined();
        }
      }),
      { numRuns: 300, seed: 6 },
    );
    expect(sawRoutes).toBeGreaterThan(0); // the generator does produce routes
  });

  it('the order of every input list does not matter', () => {
    fc.assert(
      fc.property(cluster, fc.integer({ min: 1, max: 1000 }), (input, seed) => {
        const other: CalcInput = {
          ...input,
          pools: shuffled(input.pools, seed),
          localBlocks: shuffled(input.localBlocks, seed),
          workloads: shuffled(input.workloads, seed),
          bgpRoutes: shuffled(input.bgpRoutes, seed),
        };
        expect(calculateRoutes(other)).toEqual(calculateRoutes(input));
      }),
      { numRuns: 300, seed: 7 },
    );
  });

  it('an unusable tunl0 removes exactly the tunnel routes (and what they had hidden by class)', () => {
    fc.assert(
      fc.property(cluster, (input) => {
        const usable = calculateRoutes({ ...input, tunnelUsable: true }).routes;
        const unusable = calculateRoutes({ ...input, tunnelUsable: false }).routes;
        const keep = usable.filter((r) => r.class !== 'tunnel');
        // Every non-tunnel route survives unchanged; anything new was hidden behind a tunnel route.
        for (const r of keep) expect(unusable).toContainEqual(r);
        const tunnelDsts = new Set(usable.filter((r) => r.class === 'tunnel').map((r) => r.dst));
        for (const r of unusable) if (!keep.some((k) => k.dst === r.dst)) expect(tunnelDsts.has(r.dst)).toBe(true);
        expect(unusable.some((r) => r.class === 'tunnel')).toBe(false);
      }),
      { numRuns: 300, seed: 8 },
    );
  });
});
