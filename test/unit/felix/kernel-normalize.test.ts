// The hand-written destination parser (kernel.ts canonicalDst / normalizeDst) against the slower code it
// replaced: routes.ts routeKey for desired routes, and the regex version of normalizeDst (kept here as the
// reference) for kernel routes; and normalizeKernelRoute's no-copy path for routes already normalized.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { formatPrefix, maskOf } from '../../../bgp/ip.js';
import {
  canonicalDst,
  normalizeDst,
  normalizeKernelRoute,
  protocolNumber,
  type KernelRoute,
} from '../../../felix/kernel.js';
import { routeKey } from '../../../felix/routes.js';

/** normalizeDst as it was before the hand-written parser (a regex): the reference. */
function regexNormalizeDst(dst: string): string {
  if (dst === 'default') return '0.0.0.0/0';
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})(?:\/(\d{1,2}))?$/.exec(dst);
  if (m === null) return dst;
  const octets = [Number(m[1]), Number(m[2]), Number(m[3]), Number(m[4])];
  if (octets.some((o) => o > 255)) return dst;
  const len = m[5] === undefined ? 32 : Number(m[5]);
  if (len > 32) return dst;
  if (m[5] === undefined) return `${dst}/32`;
  const addr = octets.reduce((a, o) => a * 256 + o, 0);
  const network = (addr & maskOf(len)) >>> 0;
  return network === addr ? dst : formatPrefix({ addr: network, len });
}

/** routeKey, or null where it throws. */
function routeKeyOrNull(dst: string): string | null {
  try {
    return routeKey(dst);
  } catch {
    return null;
  }
}

const hasLeadingZero = (dst: string): boolean => /(^|[./])0\d/.test(dst);

// Strings near the valid shapes (so the fuzz hits the edges: 255/256, /32 /33, leading zeros, a missing
// octet, junk after the length), plus arbitrary text.
const octetText = fc.oneof(
  fc.integer({ min: 0, max: 300 }).map(String),
  fc.constantFrom('00', '01', '007', '1000', '', 'x', '-1'),
);
const lenText = fc.oneof(
  fc.integer({ min: 0, max: 40 }).map(String),
  fc.constantFrom('00', '07', '032', '', 'a', '1/2'),
);
const nearDst = fc.oneof(
  fc.tuple(octetText, octetText, octetText, octetText).map((o) => o.join('.')),
  fc.tuple(octetText, octetText, octetText, octetText, lenText).map(([a, b, c, d, l]) => `${a}.${b}.${c}.${d}/${l}`),
  fc.tuple(octetText, octetText, octetText).map((o) => o.join('.')),
  fc.constantFrom('default', 'fe80::/64', '::1', '10.0.0.0/26 ', ' 10.0.0.0/26', '10.0.0.0//26', '1.2.3.4.5'),
  fc.string({ maxLength: 20 }),
);
const validDst = fc
  .tuple(fc.integer({ min: 0, max: 0xffffffff }), fc.option(fc.integer({ min: 0, max: 32 })))
  .map(
    ([addr, len]) =>
      `${[addr >>> 24, (addr >>> 16) & 255, (addr >>> 8) & 255, addr & 255].join('.')}${len === null ? '' : `/${len}`}`,
  );

describe('canonicalDst', () => {
  it('examples', () => {
    const cases: Array<[string, string | null]> = [
      ['10.0.0.5', '10.0.0.5/32'],
      ['10.244.1.0/26', '10.244.1.0/26'],
      ['10.244.1.7/26', '10.244.1.0/26'],
      ['default', '0.0.0.0/0'],
      ['255.255.255.255/32', '255.255.255.255/32'],
      ['0.0.0.0/0', '0.0.0.0/0'],
      ['256.0.0.0', null],
      ['10.0.0.0/33', null],
      ['010.0.0.0/8', null],
      ['10.0.0.0/08', null],
      ['10.0.0/8', null],
      ['fe80::/64', null],
      ['', null],
    ];
    expect(cases.length).toBeGreaterThan(10);
    for (const [input, want] of cases) expect(canonicalDst(input), input).toBe(want);
  });

  it("gives routeKey's answer for every valid destination, and the very same string when already canonical", () => {
    fc.assert(
      fc.property(validDst, (dst) => {
        const want = routeKey(dst);
        expect(canonicalDst(dst)).toBe(want);
        if (want === dst) expect(canonicalDst(dst)).toBe(dst);
      }),
      { numRuns: 2000 },
    );
  });

  it('refuses exactly what routeKey refuses (null where routeKey throws)', () => {
    fc.assert(
      fc.property(nearDst, (dst) => {
        expect(canonicalDst(dst)).toBe(routeKeyOrNull(dst));
      }),
      { numRuns: 5000 },
    );
  });
});

describe('normalizeDst', () => {
  it('agrees with the regex version it replaced (which also took leading zeros as they were)', () => {
    fc.assert(
      fc.property(fc.oneof(nearDst, validDst), (dst) => {
        const want = hasLeadingZero(dst) ? dst : regexNormalizeDst(dst);
        expect(normalizeDst(dst)).toBe(want);
      }),
      { numRuns: 5000 },
    );
  });
});

describe('normalizeKernelRoute', () => {
  const kernelRoute: fc.Arbitrary<KernelRoute> = fc.record(
    {
      type: fc.constantFrom('unicast', 'blackhole', 'local'),
      dst: fc.oneof(validDst, fc.constant('default')),
      gateway: fc.constantFrom('198.18.61.2', '192.168.31.1'),
      dev: fc.constantFrom('eth0', 'calie8e9a5cf531', 'tunl0'),
      protocol: fc.constantFrom('80', 'bird', 'kernel', 'boot', '080', '12'),
      scope: fc.constantFrom('link', 'global', 'host'),
      prefsrc: fc.constant('198.18.61.1'),
      metric: fc.integer({ min: 0, max: 3 }),
      flags: fc.constantFrom([], ['onlink'], ['linkdown'], ['onlink', 'linkdown'], ['pervasive', 'onlink']),
    },
    { requiredKeys: ['dst'] },
  );

  it('is idempotent, and gives back a normalized route itself (no copy)', () => {
    fc.assert(
      fc.property(kernelRoute, (route) => {
        const once = normalizeKernelRoute(route);
        const twice = normalizeKernelRoute(once);
        expect(twice).toEqual(once);
        expect(twice).toBe(once);
        expect(once.dst).toBe(normalizeDst(route.dst));
        expect(once.protocol).toBe(String(protocolNumber(route.protocol)));
        expect(once.type).toBe(route.type ?? 'unicast');
        expect(once.scope).toBe(route.scope ?? 'global');
        expect(once.flags).toEqual((route.flags ?? []).filter((f) => f !== 'linkdown').sort());
        expect(once.metric).toBe(route.metric === 0 ? undefined : route.metric);
      }),
      { numRuns: 2000 },
    );
  });

  it('copies a route that is not normalized, leaving the original alone', () => {
    const raw: KernelRoute = { dst: '10.244.1.5', dev: 'calie8e9a5cf531', protocol: 'boot', flags: ['linkdown'] };
    const before = structuredClone(raw);
    const out = normalizeKernelRoute(raw);
    expect(out).not.toBe(raw);
    expect(raw).toEqual(before);
    expect(out).toEqual({
      type: 'unicast',
      dst: '10.244.1.5/32',
      dev: 'calie8e9a5cf531',
      protocol: '3',
      scope: 'global',
      flags: [],
    });
  });
});
