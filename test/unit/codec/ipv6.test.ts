// IPv6 unicast on the wire (RFC 4760, RFC 2545, RFC 4724 §2, RFC 7606): golden bytes from ExaBGP's
// qa/encoding vectors (facts, not code: the hex of UPDATEs ExaBGP sends, checked there against its own
// decoder), hand-built malformed cases, packing, and every message split at every offset.
import { describe, expect, it } from 'vitest';
import {
  MessageFramer,
  decodeMessage,
  encodeEndOfRib6,
  encodeMessage,
  encodeUpdates6,
  encodeWithdrawals6,
  ipv6UnicastRoutes,
  isEndOfRib,
} from '../../../bgp/codec/index.js';
import { BgpError } from '../../../bgp/errors.js';
import { formatIpv6, formatPrefix6, parseIpv6, parsePrefix6, prefix6Len } from '../../../bgp/ip6.js';
import type { CodecContext, PathAttributes, UpdateMessage } from '../../../bgp/types.js';
import { attr, cat, hex, message, toHex, u16, u8 } from '../helpers/bytes.js';

const ctx: CodecContext = { fourOctetAs: true };

/** ExaBGP qa/encoding/conf-new-v6.ci (lines 1 and 3) and conf-llnh-update.ci (32-byte next hop), as hex. */
const EXABGP = {
  newV6:
    'FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF00590200000042400101004002004005040000' +
    '00C8C008087814000078147814800E26000201102A020B8000000002000000000000000100802A020B8000000001000000000000' +
    '0001',
  eorV6: 'FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF001E0200000007900F0003000201',
  llnh:
    'FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF005E02000000474001010040020040050400000064800E360002012020010DB800000000' +
    '000000000000FFFFFE800000000000000000000000000001008020010DB8000100000000000000000001',
};

function decodeUpdate(bytes: Uint8Array): { message: UpdateMessage; treatAsWithdraw?: string } {
  const r = decodeMessage(bytes, ctx);
  expect(r.message.type).toBe(2);
  return r as { message: UpdateMessage; treatAsWithdraw?: string };
}

function splitEverywhere(bytes: Uint8Array): void {
  const whole = decodeMessage(bytes, ctx).message;
  for (let at = 0; at <= bytes.length; at++) {
    const framer = new MessageFramer();
    const out = [...framer.push(bytes.subarray(0, at)), ...framer.push(bytes.subarray(at))];
    expect(out.length, `split at ${at}`).toBe(1);
    expect(decodeMessage(out[0]!, ctx).message, `split at ${at}`).toEqual(whole);
  }
}

describe('IPv6 addresses and prefix keys (bgp/ip6.ts)', () => {
  it.each([
    ['::', '::'],
    ['::1', '::1'],
    ['fd00:51::1', 'fd00:51::1'],
    ['2001:DB8:0:0:1:0:0:1', '2001:db8::1:0:0:1'],
    ['2001:db8:0:0:0:0:2:1', '2001:db8::2:1'],
    ['fe80::ecee:eeff:feee:eeee', 'fe80::ecee:eeff:feee:eeee'],
    ['::ffff:198.18.51.1', '::ffff:c612:3301'],
    ['1:2:3:4:5:6:7:8', '1:2:3:4:5:6:7:8'],
  ])('%s formats as %s (RFC 5952)', (text, formatted) => {
    const addr = parseIpv6(text);
    expect(addr.length).toBe(16);
    expect(formatIpv6(addr)).toBe(formatted);
  });

  it.each(['', ':', '1::2::3', '12345::', 'g::1', '1:2:3:4:5:6:7:8:9', '1:2:3:4:5:6:7', '::1.2.3.256'])(
    'refuses %j',
    (text) => {
      expect(() => parseIpv6(text)).toThrow(/not an IPv6 address/);
    },
  );

  it('a prefix key is 17 characters, host bits cleared, and sorts in address order', () => {
    const key = parsePrefix6('fd00:51::ff/64');
    expect(key.length).toBe(17);
    expect(prefix6Len(key)).toBe(64);
    expect(formatPrefix6(key)).toBe('fd00:51::/64');
    expect(() => parsePrefix6('fd00:51::ff/64', { strict: true })).toThrow(/did you mean fd00:51::\/64/);
    expect(() => parsePrefix6('fd00::/129')).toThrow(/0\.\.128/);
    expect(formatPrefix6(parsePrefix6('fd00:10:244::1/122'))).toBe('fd00:10:244::/122');
    const sorted = ['fd00:2::/64', 'fd00:1::/64', 'fd00:1::/48'].map((t) => parsePrefix6(t)).sort();
    expect(sorted.map(formatPrefix6)).toEqual(['fd00:1::/48', 'fd00:1::/64', 'fd00:2::/64']);
  });
});

describe('ExaBGP golden IPv6 UPDATEs', () => {
  it('conf-new-v6: one /128 with a 16-byte next hop, LOCAL_PREF and communities', () => {
    const { message: m } = decodeUpdate(hex(EXABGP.newV6));
    expect(m.withdrawn).toEqual([]);
    expect(m.nlri).toEqual([]);
    const routes = ipv6UnicastRoutes(m);
    expect(routes.withdrawn).toEqual([]);
    expect(routes.announced.length).toBe(1);
    const group = routes.announced[0]!;
    expect(group.nlri.map(formatPrefix6)).toEqual(['2a02:b80:0:1::1/128']);
    expect(formatIpv6(group.attributes.nextHop6!)).toBe('2a02:b80:0:2::1');
    expect(group.attributes.nextHop6LinkLocal).toBeUndefined();
    expect(group.attributes.localPref).toBe(200);
    expect(group.attributes.communities).toEqual([(30740 * 65536) >>> 0, ((30740 * 65536) >>> 0) + 30740]);
    expect(group.attributes.mpReach).toBeUndefined();
  });

  it('conf-llnh-update: a 32-byte next hop is global, then link-local (RFC 2545 §3)', () => {
    const { message: m } = decodeUpdate(hex(EXABGP.llnh));
    const group = ipv6UnicastRoutes(m).announced[0]!;
    expect(group.nlri.map(formatPrefix6)).toEqual(['2001:db8:1::1/128']);
    expect(formatIpv6(group.attributes.nextHop6!)).toBe('2001:db8::ffff');
    expect(formatIpv6(group.attributes.nextHop6LinkLocal!)).toBe('fe80::1');
  });

  it('the IPv6 End-of-RIB is byte for byte what ExaBGP sends, and reads as End-of-RIB for AFI 2 / SAFI 1', () => {
    expect(toHex(encodeEndOfRib6())).toBe(EXABGP.eorV6.toLowerCase());
    const { message: m } = decodeUpdate(hex(EXABGP.eorV6));
    expect(isEndOfRib(m)).toBe(true);
    expect(m.attributes.mpUnreach).toMatchObject({ afi: 2, safi: 1, withdrawn6: [] });
  });

  it('an MP_UNREACH that withdraws something is not End-of-RIB', () => {
    const bytes = encodeWithdrawals6([parsePrefix6('fd00:51::/64')])[0]!;
    const { message: m } = decodeUpdate(bytes);
    expect(isEndOfRib(m)).toBe(false);
    expect(ipv6UnicastRoutes(m).withdrawn.map(formatPrefix6)).toEqual(['fd00:51::/64']);
  });

  it.each(Object.entries(EXABGP))(
    '%s: re-encodes to the same value and decodes the same split at every offset',
    (_n, h) => {
      const bytes = hex(h);
      const m = decodeMessage(bytes, ctx).message;
      expect(decodeMessage(encodeMessage(m, ctx), ctx).message).toEqual(m);
      splitEverywhere(bytes);
    },
  );
});

describe('encodeUpdates6 / encodeWithdrawals6', () => {
  const attrs: PathAttributes = {
    origin: 0,
    asPath: [{ type: 2, asns: [64551] }],
    nextHop: 0xc6123301, // an IPv4 NEXT_HOP does not apply to MP NLRI and is not sent
    nextHop6: parseIpv6('fd00:51::1'),
    localPref: 100,
  };

  it('MP_REACH_NLRI first, then the other attributes; hand-built bytes', () => {
    const [bytes] = encodeUpdates6(attrs, [parsePrefix6('fd00:10:244::/122')], ctx);
    const mp = cat(
      u16(2),
      u8(1),
      u8(16),
      'fd000051000000000000000000000001',
      u8(0),
      u8(122),
      'fd000010024400000000000000000000',
    );
    const attributes = cat(
      cat(u8(0x90), u8(14), u16(mp.length), mp),
      attr(0x40, 1, [0]),
      attr(0x40, 2, [2, 1, 0, 0, 0xfc, 0x27]),
      attr(0x40, 5, [0, 0, 0, 100]),
    );
    const expected = message(2, u16(0), u16(attributes.length), attributes);
    expect(toHex(bytes!)).toBe(toHex(expected));
    splitEverywhere(bytes!);
  });

  it('a link-local next hop makes it 32 bytes', () => {
    const [bytes] = encodeUpdates6(
      { ...attrs, nextHop6LinkLocal: parseIpv6('fe80::ecee:eeff:feee:eeee') },
      [parsePrefix6('fd00::/48')],
      ctx,
    );
    const group = ipv6UnicastRoutes(decodeUpdate(bytes!).message).announced[0]!;
    expect(formatIpv6(group.attributes.nextHop6LinkLocal!)).toBe('fe80::ecee:eeff:feee:eeee');
  });

  it('5000 prefixes pack into UPDATEs of at most 4096 bytes that give them all back, in order', () => {
    const keys = Array.from({ length: 5000 }, (_, i) =>
      parsePrefix6(`fd00:${(i >> 8).toString(16)}:${(i & 255).toString(16)}::/${64 + (i % 65)}`),
    );
    const messages = encodeUpdates6(attrs, keys, ctx);
    expect(messages.length).toBeGreaterThan(10);
    const back: string[] = [];
    for (const m of messages) {
      expect(m.length).toBeLessThanOrEqual(4096);
      for (const g of ipv6UnicastRoutes(decodeUpdate(m).message).announced) back.push(...g.nlri);
    }
    expect(back).toEqual(keys);
    const withdrawals = encodeWithdrawals6(keys);
    const gone: string[] = [];
    for (const m of withdrawals) {
      expect(m.length).toBeLessThanOrEqual(4096);
      gone.push(...ipv6UnicastRoutes(decodeUpdate(m).message).withdrawn);
    }
    expect(gone).toEqual(keys);
  });

  it('refuses a route without an IPv6 next hop, naming what is missing', () => {
    const { nextHop6: _n, ...noNh } = attrs;
    expect(() => encodeUpdates6(noNh, [parsePrefix6('fd00::/48')], ctx)).toThrow(/IPv6 next hop/);
  });
});

describe('malformed IPv6 MP attributes (RFC 7606)', () => {
  const origin = attr(0x40, 1, [0]);
  const asPath = attr(0x40, 2, [2, 1, 0, 0, 0xfc, 0x27]);
  const update = (...attrs: Uint8Array[]): Uint8Array => {
    const a = cat(...attrs);
    return message(2, u16(0), u16(a.length), a);
  };
  const reach = (nh: string, nlri: string): Uint8Array => {
    const nhb = hex(nh);
    return attr(0x80, 14, u16(2), u8(1), u8(nhb.length), nhb, u8(0), nlri);
  };
  const GLOBAL = 'fd000051000000000000000000000001';

  function resetOf(bytes: Uint8Array): BgpError {
    try {
      decodeMessage(bytes, ctx);
    } catch (e) {
      expect(e).toBeInstanceOf(BgpError);
      return e as BgpError;
    }
    throw new Error('expected a session reset');
  }

  it.each([
    [
      'next hop of 4 bytes (RFC 7606 §7.11: NLRI cannot be located)',
      reach('c6123301', '30fd000051'),
      /next hop length 4/,
    ],
    ['next hop of 24 bytes', reach(GLOBAL + '0000000000000000', '30fd000051'), /next hop length 24/],
    ['prefix length 129 (RFC 7606 §5.3)', reach(GLOBAL, '81fd00'), /over 128/],
    ['prefix overruns the attribute', reach(GLOBAL, '40fd00'), /needs 8 address byte/],
    ['MP_UNREACH prefix overruns', attr(0x80, 15, u16(2), u8(1), '30fd00'), /needs 6 address byte/],
  ])('%s → NOTIFICATION UPDATE Message Error', (_name, a, reason) => {
    const e = resetOf(update(origin, asPath, a));
    expect(e.code).toBe(3);
    expect(e.message).toMatch(reason);
  });

  it.each([
    ['the unspecified address ::', '00000000000000000000000000000000', /unspecified/],
    ['multicast ff02::1', 'ff020000000000000000000000000001', /multicast/],
  ])('next hop %s → treat-as-withdraw, the prefixes withdrawn in an MP_UNREACH', (_n, nh, why) => {
    const r = decodeUpdate(update(origin, asPath, reach(nh, '30fd0000000051')));
    expect(r.treatAsWithdraw).toMatch(why);
    expect(ipv6UnicastRoutes(r.message).withdrawn.map(formatPrefix6)).toEqual(['fd00:0:51::/48']);
    expect(ipv6UnicastRoutes(r.message).announced).toEqual([]);
  });

  it('missing AS_PATH with IPv6 NLRI → treat-as-withdraw (RFC 7606 §3 (d))', () => {
    const r = decodeUpdate(update(origin, reach(GLOBAL, '30fd0000000051')));
    expect(r.treatAsWithdraw).toMatch(/AS_PATH/);
    expect(ipv6UnicastRoutes(r.message).withdrawn.map(formatPrefix6)).toEqual(['fd00:0:51::/48']);
  });

  it('a link-local address in the global field is accepted (a speaker with no global address on the link)', () => {
    const r = decodeUpdate(update(origin, asPath, reach('fe800000000000000000000000000001', '30fd0000000051')));
    expect(r.treatAsWithdraw).toBeUndefined();
    expect(ipv6UnicastRoutes(r.message).announced[0]!.nlri.map(formatPrefix6)).toEqual(['fd00:0:51::/48']);
  });

  it('a 32-byte next hop with :: as link-local carries no link-local address', () => {
    const r = decodeUpdate(update(origin, asPath, reach(GLOBAL + '0'.repeat(32), '30fd0000000051')));
    expect(ipv6UnicastRoutes(r.message).announced[0]!.attributes.nextHop6LinkLocal).toBeUndefined();
  });
});
