// Property tests (fast-check): decode(encode(m)) = m for generated valid messages of every type on both
// kinds of session, and arbitrary or mutated bytes never make the codec throw anything but BgpError.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { MessageFramer, decodeMessage, encodeMessage, notificationFor } from '../../../bgp/codec/index.js';
import { BgpError } from '../../../bgp/errors.js';
import { maskOf } from '../../../bgp/ip.js';
import { ipv6FromBytes, prefix6 } from '../../../bgp/ip6.js';
import type {
  AsPathSegment,
  BgpMessage,
  Capability,
  CodecContext,
  PathAttributes,
  Prefix,
} from '../../../bgp/types.js';
import { MARKER, cat, u16, u8 } from '../helpers/bytes.js';
import { CTX2, CTX4 } from './examples.js';

const RUNS = 300;
const u32 = fc.integer({ min: 0, max: 0xffffffff });

const prefixArb: fc.Arbitrary<Prefix> = fc
  .tuple(u32, fc.integer({ min: 0, max: 32 }))
  .map(([addr, len]) => ({ addr: (addr & maskOf(len)) >>> 0, len }));
const prefixes = (max: number) => fc.array(prefixArb, { maxLength: max });

const asnArb = (ctx: CodecContext) =>
  ctx.fourOctetAs
    ? fc.integer({ min: 1, max: 0xffffffff })
    : fc.oneof(fc.integer({ min: 1, max: 0xffff }), fc.integer({ min: 0x10000, max: 0xffffffff }));

function asPathArb(ctx: CodecContext): fc.Arbitrary<AsPathSegment[]> {
  // On a 2-octet session confederation segments are not carried by AS4_PATH (RFC 6793 §4.2.2), so the
  // round trip holds for AS_SET / AS_SEQUENCE paths only.
  const types = ctx.fourOctetAs ? [1, 2, 3, 4] : [1, 2];
  const seg = fc.record({
    type: fc.constantFrom(...types),
    asns: fc.array(asnArb(ctx), { minLength: 1, maxLength: 8 }),
  });
  return fc.array(seg, { maxLength: 4 }) as fc.Arbitrary<AsPathSegment[]>;
}

const UNKNOWN_TYPES = [11, 16, 20, 22, 25, 33, 40, 99, 128, 200, 255]; // 32 is LARGE_COMMUNITY (RFC 8092), known
const unknownArb = fc.uniqueArray(
  fc.record({
    flags: fc.constantFrom(0xe0, 0x80, 0xa0, 0xc0 | 0x20),
    type: fc.constantFrom(...UNKNOWN_TYPES),
    value: fc.uint8Array({ maxLength: 300 }),
  }),
  { selector: (u) => u.type, maxLength: 3 },
);

const prefix6Arb: fc.Arbitrary<string> = fc
  .tuple(fc.uint8Array({ minLength: 16, maxLength: 16 }), fc.integer({ min: 0, max: 128 }))
  .map(([bytes, len]) => prefix6(ipv6FromBytes(bytes), len));
const prefixes6 = (max: number) => fc.array(prefix6Arb, { maxLength: max });
// RFC 2545 §3: 16 bytes (global) or 32 (and link-local); a global that is not :: or multicast (RFC 7606).
const ipv6HopBytes = fc
  .tuple(fc.integer({ min: 0x20, max: 0xfe }), fc.uint8Array({ minLength: 15, maxLength: 31 }))
  .filter(([, rest]) => rest.length === 15 || rest.length === 31)
  .map(([first, rest]) => Uint8Array.from([first, ...rest]));

const ipv4Hop = fc.integer({ min: 1, max: 0xdfffffff }); // unicast: not 0, multicast or broadcast

function attrsArb(ctx: CodecContext): fc.Arbitrary<PathAttributes> {
  const mpReach = fc.oneof(
    fc.record({
      afi: fc.constant(1),
      safi: fc.constant(1),
      nextHop: fc.uint8Array({ minLength: 4, maxLength: 4 }),
      nlri: prefixes(20),
    }),
    fc.record({
      afi: fc.constant(2),
      safi: fc.constant(2), // IPv6 multicast: not decoded, kept raw
      nextHop: fc.uint8Array({ minLength: 16, maxLength: 16 }),
      nlri: fc.constant([]),
      raw: fc.uint8Array({ maxLength: 40 }),
    }),
    fc.record({
      afi: fc.constant(2),
      safi: fc.constant(1),
      nextHop: ipv6HopBytes,
      nlri: fc.constant([]),
      nlri6: prefixes6(20),
    }),
  );
  const mpUnreach = fc.oneof(
    fc.record({ afi: fc.constant(1), safi: fc.constant(1), withdrawn: prefixes(20) }),
    fc.record({
      afi: fc.constant(2),
      safi: fc.constant(2),
      withdrawn: fc.constant([]),
      raw: fc.uint8Array({ maxLength: 40 }),
    }),
    fc.record({ afi: fc.constant(2), safi: fc.constant(1), withdrawn: fc.constant([]), withdrawn6: prefixes6(20) }),
  );
  const aggregatorAsn = ctx.fourOctetAs ? asnArb(ctx) : fc.integer({ min: 0x10000, max: 0xffffffff });
  return fc.record(
    {
      origin: fc.constantFrom(0, 1, 2) as fc.Arbitrary<0 | 1 | 2>,
      asPath: asPathArb(ctx),
      nextHop: ipv4Hop,
      med: u32,
      localPref: u32,
      atomicAggregate: fc.constant(true),
      aggregator: fc.record({ asn: aggregatorAsn, address: u32 }),
      communities: fc.array(u32, { minLength: 1, maxLength: 10 }),
      // Flat triples, distinct (a receiver removes repeats, RFC 8092 §2, so only distinct ones round-trip).
      largeCommunities: fc
        .uniqueArray(fc.tuple(u32, u32, u32), { minLength: 1, maxLength: 5, selector: (t) => t.join(':') })
        .map((ts) => ts.flat()),
      originatorId: u32,
      clusterList: fc.array(u32, { minLength: 1, maxLength: 5 }),
      mpReach,
      mpUnreach,
      unknown: unknownArb.filter((u) => u.length > 0),
    },
    { requiredKeys: ['origin', 'asPath', 'nextHop'] },
  );
}

function updateArb(ctx: CodecContext): fc.Arbitrary<BgpMessage> {
  return fc.oneof(
    fc.record({
      type: fc.constant(2 as const),
      withdrawn: prefixes(50),
      attributes: attrsArb(ctx),
      nlri: prefixes(100),
    }),
    fc.record({
      type: fc.constant(2 as const),
      withdrawn: prefixes(200),
      attributes: fc.constant({}),
      nlri: fc.constant([]),
    }),
  );
}

const capabilityArb: fc.Arbitrary<Capability> = fc.oneof(
  fc.record({
    code: fc.constant(1 as const),
    afi: fc.integer({ min: 0, max: 0xffff }),
    safi: fc.integer({ min: 0, max: 255 }),
  }),
  fc.constant({ code: 2 as const }),
  fc.constant({ code: 70 as const }),
  fc.record({ code: fc.constant(65 as const), asn: u32 }),
  fc.record(
    {
      code: fc.constant(64 as const),
      restarting: fc.boolean(),
      notification: fc.constant(true),
      restartTime: fc.integer({ min: 0, max: 4095 }),
      families: fc.array(
        fc.record({
          afi: fc.integer({ min: 0, max: 0xffff }),
          safi: fc.integer({ min: 0, max: 255 }),
          forwardingState: fc.boolean(),
        }),
        { maxLength: 4 },
      ),
    },
    { requiredKeys: ['code', 'restarting', 'restartTime', 'families'] },
  ),
  fc.record({
    code: fc.constantFrom(5, 6, 9, 69, 71, 73, 128, 255),
    value: fc.uint8Array({ maxLength: 20 }),
    unknown: fc.constant(true as const),
  }),
);

const openArb: fc.Arbitrary<BgpMessage> = fc.record({
  type: fc.constant(1 as const),
  version: fc.constant(4),
  myAs: fc.integer({ min: 0, max: 0xffff }),
  holdTime: fc.oneof(fc.constant(0), fc.integer({ min: 3, max: 0xffff })),
  bgpId: fc.integer({ min: 1, max: 0xffffffff }),
  capabilities: fc.array(capabilityArb, { maxLength: 30 }),
});

const otherArb: fc.Arbitrary<BgpMessage> = fc.oneof(
  fc.record({
    type: fc.constant(3 as const),
    code: fc.integer({ min: 0, max: 255 }),
    subcode: fc.integer({ min: 0, max: 255 }),
    data: fc.uint8Array({ maxLength: 100 }),
  }),
  fc.constant({ type: 4 as const }),
  fc.record({
    type: fc.constant(5 as const),
    afi: fc.integer({ min: 0, max: 0xffff }),
    subtype: fc.integer({ min: 0, max: 255 }),
    safi: fc.integer({ min: 0, max: 255 }),
  }),
);

const messageArb = (ctx: CodecContext) => fc.oneof(updateArb(ctx), openArb, otherArb);

/** Encodes, or reports null when the generated message does not fit 4096 bytes. */
function tryEncode(m: BgpMessage, ctx: CodecContext): Uint8Array | null {
  try {
    return encodeMessage(m, ctx);
  } catch (e) {
    if (/at most 4096/.test((e as Error).message)) return null;
    throw e;
  }
}

function onlyBgpErrors(bytes: Uint8Array, ctx: CodecContext): void {
  try {
    decodeMessage(bytes, ctx);
  } catch (e) {
    if (!(e instanceof BgpError)) throw e;
  }
}

describe('round trip: decode(encode(m)) equals m', () => {
  for (const [name, ctx] of [
    ['4-octet AS session', CTX4],
    ['2-octet AS session', CTX2],
  ] as const) {
    it(`every message type, ${name}`, () => {
      let encoded = 0;
      fc.assert(
        fc.property(messageArb(ctx), (m) => {
          const bytes = tryEncode(m, ctx);
          fc.pre(bytes !== null);
          encoded++;
          expect(decodeMessage(bytes!, ctx)).toEqual({ message: m });
        }),
        { numRuns: RUNS },
      );
      expect(encoded).toBeGreaterThan(RUNS / 2);
    });
  }
});

describe('robustness: only BgpError ever escapes', () => {
  it('random bytes', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), (b) => onlyBgpErrors(b, CTX4)),
      { numRuns: RUNS },
    );
  });
  it('random bodies behind a valid header of every type', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 7 }),
        fc.uint8Array({ maxLength: 300 }),
        fc.boolean(),
        (type, body, four) => {
          onlyBgpErrors(cat(MARKER, u16(19 + body.length), u8(type), body), four ? CTX4 : CTX2);
        },
      ),
      { numRuns: RUNS * 3 },
    );
  });
  it('valid messages with bytes overwritten (header length kept consistent)', () => {
    fc.assert(
      fc.property(
        messageArb(CTX4),
        fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 4 }),
        fc.boolean(),
        (m, edits, four) => {
          const bytes = tryEncode(m, CTX4);
          fc.pre(bytes !== null && bytes.length > 19);
          const mutated = Uint8Array.from(bytes!);
          for (const [at, v] of edits) mutated[19 + (at % (mutated.length - 19))] = v;
          onlyBgpErrors(mutated, four ? CTX4 : CTX2);
        },
      ),
      { numRuns: RUNS * 2 },
    );
  });
  it('valid messages truncated (header length kept consistent)', () => {
    fc.assert(
      fc.property(messageArb(CTX2), fc.nat(), (m, cut) => {
        const bytes = tryEncode(m, CTX2);
        fc.pre(bytes !== null && bytes.length > 19);
        const len = 19 + (cut % (bytes!.length - 19));
        const t = bytes!.slice(0, len);
        t[16] = len >> 8;
        t[17] = len & 0xff;
        onlyBgpErrors(t, CTX2);
      }),
      { numRuns: RUNS },
    );
  });
});

describe('bodies up to 4096: every refusal is a NOTIFICATION that can be sent', () => {
  /** Decodes; a refusal must be a BgpError whose NOTIFICATION encodes within 4096 bytes (RFC 4271 §4.1). */
  function refusalFits(bytes: Uint8Array, ctx: CodecContext): void {
    try {
      decodeMessage(bytes, ctx);
    } catch (e) {
      if (!(e instanceof BgpError)) throw e;
      const notification = encodeMessage(notificationFor(e), ctx);
      expect(notification.length).toBeLessThanOrEqual(4096);
      // RFC 4271 §6.1: a Bad Message Length carries the erroneous Length field, 2 bytes.
      if (e.code === 1 && e.subcode === 2) expect(e.data.length).toBe(2);
    }
  }
  const bodyLength = fc.oneof(
    fc.integer({ min: 0, max: 4077 }),
    fc.constantFrom(0, 1, 2, 3, 4, 5, 9, 10, 4073, 4074, 4075, 4076, 4077),
  );
  it('random bodies of any length up to the limit, every type, both sessions', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 7 }),
        bodyLength,
        fc.integer(),
        fc.boolean(),
        (type, length, seed, four) => {
          const body = new Uint8Array(length);
          for (let i = 0, x = seed | 1; i < length; i++) body[i] = x = (Math.imul(x, 1103515245) + 12345) >>> 8;
          if (type === 5 && length >= 3) body[2] = seed & 3; // ROUTE-REFRESH subtypes 0..3 (RFC 7313 BoRR/EoRR are 1, 2)
          refusalFits(cat(MARKER, u16(19 + length), u8(type), body), four ? CTX4 : CTX2);
        },
      ),
      { numRuns: RUNS },
    );
  });
  it('generated messages padded with random bytes up to 4096', () => {
    fc.assert(
      fc.property(messageArb(CTX4), fc.integer({ min: 1, max: 4096 }), (m, pad) => {
        const bytes = tryEncode(m, CTX4);
        fc.pre(bytes !== null);
        const length = Math.min(4096, bytes!.length + pad);
        const padded = new Uint8Array(length);
        padded.set(bytes!);
        padded.fill(0xa5, bytes!.length);
        padded[16] = length >> 8;
        padded[17] = length & 0xff;
        refusalFits(padded, CTX4);
      }),
      { numRuns: RUNS },
    );
  });
});

describe('framing generated streams', () => {
  it('any chunking of a stream of generated messages yields the same messages', () => {
    fc.assert(
      fc.property(
        fc.array(messageArb(CTX4), { minLength: 1, maxLength: 6 }),
        fc.array(fc.integer({ min: 1, max: 700 }), { minLength: 1, maxLength: 20 }),
        (msgs, sizes) => {
          const encoded = msgs.map((m) => tryEncode(m, CTX4)).filter((b): b is Uint8Array => b !== null);
          fc.pre(encoded.length > 0);
          const stream = cat(...encoded);
          const f = new MessageFramer();
          const out: Uint8Array[] = [];
          let at = 0;
          for (let i = 0; at < stream.length; i++) {
            const size = sizes[i % sizes.length]!;
            out.push(...f.push(stream.slice(at, at + size)));
            at += size;
          }
          expect(out).toEqual(encoded);
          expect(f.buffered).toBe(0);
        },
      ),
      { numRuns: 100 },
    );
  });
});
