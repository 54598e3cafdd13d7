// Every error case of RFC 4271 §6 and RFC 7606: the exact NOTIFICATION (code, subcode, data) for a
// session reset, or the treat-as-withdraw / attribute-discard outcome.
import { describe, expect, it } from 'vitest';
import { decodeMessage } from '../../../bgp/codec/index.js';
import type { CodecContext, Prefix } from '../../../bgp/types.js';
import { catchBgp } from '../helpers/bgp-errors.js';
import { MARKER, attr, cat, ip, message, prefix, toHex, u16, u32, update } from '../helpers/bytes.js';
import { CTX2, CTX4 } from './examples.js';

const ORIGIN = attr(0x40, 1, '00');
const AS_PATH = attr(0x40, 2, '02 01', u32(65001));
const NEXT_HOP = attr(0x40, 3, ip('198.18.0.1'));
const GOOD = cat(ORIGIN, AS_PATH, NEXT_HOP);
const NLRI = cat(prefix('10.244.1.0/26'), prefix('10.244.2.0/26'));
const WITHDRAWN = prefix('10.9.0.0/16');
const NLRI_PREFIXES: Prefix[] = [
  { addr: 0x0af40100, len: 26 },
  { addr: 0x0af40200, len: 26 },
];
const WITHDRAWN_PREFIXES: Prefix[] = [{ addr: 0x0a090000, len: 16 }];

function expectReset(bytes: Uint8Array, code: number, subcode: number, data = '', ctx: CodecContext = CTX4): string {
  const err = catchBgp(() => decodeMessage(bytes, ctx));
  expect({ code: err.code, subcode: err.subcode, data: toHex(err.data) }).toEqual({ code, subcode, data });
  return err.detail;
}

/** Asserts treat-as-withdraw: every prefix of the UPDATE withdrawn, nothing announced. */
function expectWithdraw(
  bytes: Uint8Array,
  reason: RegExp,
  prefixes: Prefix[] = [...WITHDRAWN_PREFIXES, ...NLRI_PREFIXES],
  ctx: CodecContext = CTX4,
): void {
  const r = decodeMessage(bytes, ctx);
  expect(r.treatAsWithdraw).toMatch(reason);
  expect(r.message).toEqual({ type: 2, withdrawn: prefixes, attributes: {}, nlri: [] });
}

/** Asserts attribute-discard: the UPDATE stands, the attribute is gone, the reason is reported. */
function expectDiscard(bytes: Uint8Array, reason: RegExp, ctx: CodecContext = CTX4) {
  const r = decodeMessage(bytes, ctx);
  expect(r.treatAsWithdraw).toBeUndefined();
  expect(r.discarded?.join('\n')).toMatch(reason);
  if (r.message.type !== 2) throw new Error('not an UPDATE');
  expect(r.message.nlri).toEqual(NLRI_PREFIXES);
  return r.message.attributes;
}

describe('message header errors (RFC 4271 §6.1)', () => {
  it('marker not all ones → Connection Not Synchronized', () => {
    const bytes = message(4);
    bytes[0] = 0;
    expectReset(bytes, 1, 1);
  });
  it('Length field disagreeing with the message → Bad Message Length with the length as data', () => {
    expectReset(cat(MARKER, '0014 04'), 1, 2, '0014');
    expectReset(cat(MARKER, '1001 04'), 1, 2, '1001');
  });
  it('unknown message type → Bad Message Type with the type byte as data', () => {
    expectReset(message(6), 1, 3, '06');
    expectReset(message(0, '00'), 1, 3, '00');
  });
  it('KEEPALIVE with a body → Bad Message Length', () => expectReset(message(4, '00'), 1, 2, '0014'));
  it('OPEN shorter than 29 → Bad Message Length', () =>
    expectReset(message(1, '04', u16(1), u16(90), ip('1.1.1.1')), 1, 2, '001c'));
  it('UPDATE shorter than 23 → Bad Message Length', () => expectReset(message(2, '0000'), 1, 2, '0015'));
  it('NOTIFICATION shorter than 21 → Bad Message Length', () => expectReset(message(3, '06'), 1, 2, '0014'));
  it('ROUTE-REFRESH (subtype 0) with a body other than 4 bytes → Bad Message Length with the Length field as data (RFC 4271 §6.1)', () => {
    expectReset(message(5, '0001 00 01 00'), 1, 2, '0018');
    expectReset(message(5, '0001 00'), 1, 2, '0016');
    expectReset(message(5), 1, 2, '0013');
    // The 4096-byte case: data is still the 2-byte Length field, never the message.
    expectReset(message(5, '0001 00 01', '00'.repeat(4096 - 23)), 1, 2, '1000');
  });
  it('BoRR/EoRR (subtype 1, 2) with a body other than 4 bytes → ROUTE-REFRESH Error / Invalid Message Length with the message as data (RFC 7313 §5)', () => {
    const bytes = message(5, '0001 01 01 00');
    expectReset(bytes, 7, 1, toHex(bytes));
    const eorr = message(5, '0001 02');
    expectReset(eorr, 7, 1, toHex(eorr));
  });
  it('a 4096-byte BoRR: the message as data is cut to what fits one NOTIFICATION (4096 − 21 bytes)', () => {
    const bytes = message(5, '0001 01 01', 'ab'.repeat(4096 - 23));
    expect(bytes.length).toBe(4096);
    expectReset(bytes, 7, 1, toHex(bytes.subarray(0, 4096 - 21)));
  });
});

describe('OPEN errors (RFC 4271 §6.2)', () => {
  const open = (version: string, hold: number, id: string, opt: string) =>
    message(1, version, u16(65001), u16(hold), ip(id), opt);
  it('version other than 4 → Unsupported Version Number, data 0004', () =>
    expectReset(open('03', 90, '1.1.1.1', '00'), 2, 1, '0004'));
  it('hold time 1 or 2 → Unacceptable Hold Time; 0 and 3 are fine', () => {
    expectReset(open('04', 1, '1.1.1.1', '00'), 2, 6);
    expectReset(open('04', 2, '1.1.1.1', '00'), 2, 6);
    expect(decodeMessage(open('04', 0, '1.1.1.1', '00'), CTX4).message).toMatchObject({ holdTime: 0 });
    expect(decodeMessage(open('04', 3, '1.1.1.1', '00'), CTX4).message).toMatchObject({ holdTime: 3 });
  });
  it('BGP identifier 0 → Bad BGP Identifier', () => expectReset(open('04', 90, '0.0.0.0', '00'), 2, 3));
  it('optional parameter other than Capabilities → Unsupported Optional Parameter', () =>
    expectReset(open('04', 90, '1.1.1.1', '04 01 02 00 00'), 2, 4));
  it('Optional Parameters Length inconsistent with the message → OPEN Message Error / Unspecific', () => {
    expectReset(open('04', 90, '1.1.1.1', '05 02 02 02 00'), 2, 0);
    expectReset(open('04', 90, '1.1.1.1', '04 02 02 02 00 00'), 2, 0);
  });
  it('a parameter overrunning the parameters field → Unspecific', () =>
    expectReset(open('04', 90, '1.1.1.1', '04 02 05 02 00'), 2, 0));
  it('a capability overrunning its parameter → Unspecific', () =>
    expectReset(open('04', 90, '1.1.1.1', '04 02 02 41 04'), 2, 0));
  it('a known capability with a wrong length → Unspecific', () => {
    expectReset(open('04', 90, '1.1.1.1', '07 02 05 01 03 0001 00'), 2, 0);
    expectReset(open('04', 90, '1.1.1.1', '05 02 03 02 01 00'), 2, 0);
    expectReset(open('04', 90, '1.1.1.1', '07 02 05 40 03 00 78 00'), 2, 0);
  });
});

describe('UPDATE session resets', () => {
  it('Withdrawn Routes Length too large → Malformed Attribute List (RFC 4271 §6.3)', () => {
    expectReset(message(2, '0005 0000'), 3, 1);
    expectReset(message(2, '0003 18 0a 0b'), 3, 1);
  });
  it('Total Attribute Length too large → Malformed Attribute List (RFC 4271 §6.3)', () => {
    expectReset(message(2, '0000 0005 40 01 01 00'), 3, 1);
  });
  it('a withdrawn prefix longer than 32 or overrunning → Invalid Network Field (RFC 7606 §5.3)', () => {
    expectReset(update('21 0a000000 00', '', ''), 3, 10);
    expectReset(update('18 0a00', '', ''), 3, 10);
  });
  it('an NLRI prefix longer than 32 or overrunning → Invalid Network Field (RFC 7606 §5.3)', () => {
    expectReset(update('', GOOD, '21 0a000000 00'), 3, 10);
    expectReset(update('', GOOD, cat(NLRI, '1a 0af401')), 3, 10);
  });
  it('an unrecognized well-known attribute → Unrecognized Well-known Attribute with the attribute as data', () => {
    const bad = attr(0x40, 99, 'abcd');
    expectReset(update('', cat(GOOD, bad), NLRI), 3, 2, toHex(bad));
  });
  it('MP_REACH_NLRI or MP_UNREACH_NLRI twice → Malformed Attribute List (RFC 7606 §3 g)', () => {
    const un = attr(0x80, 15, '0001 01');
    expectReset(update('', cat(un, un), ''), 3, 1);
  });
  it('malformed MP_REACH_NLRI → session reset, Optional Attribute Error with the attribute (RFC 7606 §7.11)', () => {
    const nh5 = attr(0x80, 14, '0001 01 05 c612000100 00', prefix('10.244.1.0/26'));
    expectReset(update('', cat(nh5, ORIGIN, AS_PATH), ''), 3, 9, toHex(nh5));
    const badNlri = attr(0x80, 14, '0001 01 04 c6120001 00 21 0a000000 00');
    expectReset(update('', cat(badNlri, ORIGIN, AS_PATH), ''), 3, 9, toHex(badNlri));
    const nhOverrun = attr(0x80, 14, '0001 01 10 c6120001');
    expectReset(update('', cat(nhOverrun, ORIGIN, AS_PATH), ''), 3, 9, toHex(nhOverrun));
  });
  it('MP_REACH/MP_UNREACH too short → Attribute Length Error with the attribute', () => {
    const un = attr(0x80, 15, '0001');
    expectReset(update('', un, ''), 3, 5, toHex(un));
    const reach = attr(0x80, 14, '0001 01 04');
    expectReset(update('', reach, ''), 3, 5, toHex(reach));
  });
  it('MP_UNREACH with a bad prefix → Optional Attribute Error', () => {
    const un = attr(0x80, 15, '0001 01 21 00000000 00');
    expectReset(update('', un, ''), 3, 9, toHex(un));
  });
  it('MP_REACH with wrong flags → Attribute Flags Error with the attribute (RFC 7606 §3 c defers to §7.11)', () => {
    const reach = attr(0x40, 14, '0001 01 04 c6120001 00');
    expectReset(update('', cat(reach, ORIGIN, AS_PATH), ''), 3, 4, toHex(reach));
  });
  it('a session reset wins over treat-as-withdraw in the same UPDATE (RFC 7606 §3 h)', () => {
    const un = attr(0x80, 15, '0001');
    expectReset(update('', cat(attr(0x40, 1, '07'), un), ''), 3, 5, toHex(un));
  });
});

describe('UPDATE treat-as-withdraw (RFC 7606)', () => {
  it('an attribute overrunning the attribute field (§4): NLRI still found through the Total Attribute Length', () => {
    expectWithdraw(
      update(WITHDRAWN, cat(GOOD, '40 05 08 00000064'), NLRI),
      /LOCAL_PREF: length 8 overruns.*RFC 7606 §4/,
    );
  });
  it('fewer than 3 bytes left for an attribute header (§4)', () => {
    expectWithdraw(update(WITHDRAWN, cat(GOOD, '40 01'), NLRI), /RFC 7606 §4/);
    expectWithdraw(update(WITHDRAWN, cat(GOOD, '50 01 00'), NLRI), /RFC 7606 §4/);
  });
  it('ORIGIN with a bad length or value (§7.1)', () => {
    expectWithdraw(update(WITHDRAWN, cat(attr(0x40, 1, '0000'), AS_PATH, NEXT_HOP), NLRI), /ORIGIN.*§7\.1/);
    expectWithdraw(update(WITHDRAWN, cat(attr(0x40, 1, '03'), AS_PATH, NEXT_HOP), NLRI), /ORIGIN value 3.*§7\.1/);
  });
  it('malformed AS_PATH (§7.2): bad segment type, zero-length segment, overrun, one byte left, AS 0', () => {
    for (const value of ['05 01 0000fde9', '02 00', '02 02 0000fde9', '02 01 0000fde9 02', '02 01 00000000']) {
      expectWithdraw(update(WITHDRAWN, cat(ORIGIN, attr(0x40, 2, value), NEXT_HOP), NLRI), /AS_PATH.*§7\.2/);
    }
  });
  it('an AS_PATH with 2-octet ASNs on a 4-octet session is malformed (§7.2)', () => {
    expectWithdraw(
      update(WITHDRAWN, cat(ORIGIN, attr(0x40, 2, '02 03', u16(1), u16(2), u16(3)), NEXT_HOP), NLRI),
      /AS_PATH/,
    );
  });
  it('NEXT_HOP with a bad length (§7.3)', () => {
    expectWithdraw(
      update(WITHDRAWN, cat(ORIGIN, AS_PATH, attr(0x40, 3, 'c612000100')), NLRI),
      /NEXT_HOP length is 5.*§7\.3/,
    );
  });
  it('NEXT_HOP 0.0.0.0, multicast or broadcast (§7.3, RFC 4271 §6.3)', () => {
    for (const nh of ['0.0.0.0', '224.0.0.5', '239.1.1.1', '255.255.255.255']) {
      expectWithdraw(update(WITHDRAWN, cat(ORIGIN, AS_PATH, attr(0x40, 3, ip(nh))), NLRI), /NEXT_HOP.*§7\.3/);
    }
  });
  it('MULTI_EXIT_DISC with a bad length (§7.4)', () => {
    expectWithdraw(update(WITHDRAWN, cat(GOOD, attr(0x80, 4, '000001')), NLRI), /MULTI_EXIT_DISC.*§7\.4/);
  });
  it('LOCAL_PREF with a bad length (§7.5)', () => {
    expectWithdraw(update(WITHDRAWN, cat(GOOD, attr(0x40, 5, '0064')), NLRI), /LOCAL_PREF.*§7\.5/);
  });
  it('COMMUNITIES of a length that is zero or not a multiple of 4 (§7.8)', () => {
    expectWithdraw(update(WITHDRAWN, cat(GOOD, attr(0xc0, 8, '0000006401')), NLRI), /COMMUNITIES.*§7\.8/);
    expectWithdraw(update(WITHDRAWN, cat(GOOD, attr(0xc0, 8, '')), NLRI), /COMMUNITIES.*§7\.8/);
  });
  it('LARGE_COMMUNITY of a length that is zero or not a multiple of 12 (RFC 8092 §5: treat-as-withdraw)', () => {
    expectWithdraw(
      update(WITHDRAWN, cat(GOOD, attr(0xc0, 32, u32(65001), u32(1))), NLRI),
      /LARGE_COMMUNITY.*RFC 8092 §5/,
    );
    expectWithdraw(update(WITHDRAWN, cat(GOOD, attr(0xc0, 32, '')), NLRI), /LARGE_COMMUNITY.*RFC 8092 §5/);
    expectWithdraw(
      update(WITHDRAWN, cat(GOOD, attr(0xc0, 32, u32(65001), u32(1), u32(2), u32(3))), NLRI),
      /LARGE_COMMUNITY.*RFC 8092 §5/,
    );
  });
  it('LARGE_COMMUNITY repeated values are removed silently (RFC 8092 §2)', () => {
    const r = decodeMessage(
      update(
        WITHDRAWN,
        cat(GOOD, attr(0xc0, 32, u32(65001), u32(1), u32(2), u32(7), u32(8), u32(9), u32(65001), u32(1), u32(2))),
        NLRI,
      ),
      CTX4,
    );
    expect(r.treatAsWithdraw).toBeUndefined();
    expect(r.message.type === 2 ? r.message.attributes.largeCommunities : undefined).toEqual([65001, 1, 2, 7, 8, 9]);
  });
  it('ORIGINATOR_ID of a length other than 4 (§7.9), CLUSTER_LIST not a multiple of 4 (§7.10)', () => {
    expectWithdraw(update(WITHDRAWN, cat(GOOD, attr(0x80, 9, '0a0000')), NLRI), /ORIGINATOR_ID.*§7\.9/);
    expectWithdraw(update(WITHDRAWN, cat(GOOD, attr(0x80, 10, '0a0000010a00')), NLRI), /CLUSTER_LIST.*§7\.10/);
  });
  it('a missing well-known mandatory attribute when NLRI is present (§3 d)', () => {
    expectWithdraw(update(WITHDRAWN, cat(AS_PATH, NEXT_HOP), NLRI), /ORIGIN.*§3 \(d\)/);
    expectWithdraw(update(WITHDRAWN, cat(ORIGIN, NEXT_HOP), NLRI), /AS_PATH.*§3 \(d\)/);
    expectWithdraw(update(WITHDRAWN, cat(ORIGIN, AS_PATH), NLRI), /NEXT_HOP.*§3 \(d\)/);
  });
  it('no mandatory attributes are needed for an UPDATE that only withdraws', () => {
    const r = decodeMessage(update(WITHDRAWN, '', ''), CTX4);
    expect(r.treatAsWithdraw).toBeUndefined();
  });
  it('treat-as-withdraw also withdraws MP_REACH and MP_UNREACH IPv4 prefixes; NEXT_HOP is not needed with MP_REACH', () => {
    const reach = attr(0x80, 14, '0001 01 04 c6120001 00', prefix('10.244.5.0/26'));
    const unreach = attr(0x80, 15, '0001 01', prefix('10.244.6.0/26'));
    expect(decodeMessage(update('', cat(reach, ORIGIN, AS_PATH), ''), CTX4).treatAsWithdraw).toBeUndefined();
    expectWithdraw(update(WITHDRAWN, cat(reach, unreach, AS_PATH), NLRI), /ORIGIN/, [
      ...WITHDRAWN_PREFIXES,
      ...NLRI_PREFIXES,
      { addr: 0x0af40500, len: 26 },
      { addr: 0x0af40600, len: 26 },
    ]);
  });
  it('Optional/Transitive flags in conflict on a known attribute (§3 c)', () => {
    expectWithdraw(
      update(WITHDRAWN, cat(attr(0x80, 1, '00'), AS_PATH, NEXT_HOP), NLRI),
      /ORIGIN: flags 0x80.*§3 \(c\)/,
    );
    expectWithdraw(update(WITHDRAWN, cat(GOOD, attr(0xc0, 4, u32(1))), NLRI), /MULTI_EXIT_DISC: flags/);
  });
  it('the Partial and Extended Length bits do not make a flags error', () => {
    const r = decodeMessage(
      update('', cat(attr(0x60, 1, '00'), attr(0x50, 2, '02 01', u32(65001)), NEXT_HOP), NLRI),
      CTX4,
    );
    expect(r.treatAsWithdraw).toBeUndefined();
    expect(r.message).toMatchObject({ attributes: { origin: 0, asPath: [{ type: 2, asns: [65001] }] } });
  });
});

describe('UPDATE attribute-discard (RFC 7606)', () => {
  it('ATOMIC_AGGREGATE with a non-zero length (§7.6)', () => {
    const a = expectDiscard(update('', cat(GOOD, attr(0x40, 6, '00')), NLRI), /ATOMIC_AGGREGATE.*§7\.6/);
    expect(a.atomicAggregate).toBeUndefined();
    expect(a.origin).toBe(0);
  });
  it('ATOMIC_AGGREGATE with wrong flags is discarded too (§3 c defers to §7.6)', () => {
    expectDiscard(update('', cat(GOOD, attr(0xc0, 6, '')), NLRI), /ATOMIC_AGGREGATE: flags/);
  });
  it('AGGREGATOR of the wrong length for the session, or with AS 0 (§7.7, RFC 7607)', () => {
    expect(
      expectDiscard(
        update('', cat(GOOD, attr(0xc0, 7, u16(65001), ip('10.0.0.1'))), NLRI),
        /AGGREGATOR length is 6.*§7\.7/,
      ).aggregator,
    ).toBeUndefined();
    expectDiscard(update('', cat(GOOD, attr(0xc0, 7, u32(0), ip('10.0.0.1'))), NLRI), /AGGREGATOR: AS 0/);
  });
  it('LOCAL_PREF from an eBGP peer is disregarded (§7.5)', () => {
    const bytes = update('', cat(GOOD, attr(0x40, 5, u32(300))), NLRI);
    expect(
      expectDiscard(bytes, /LOCAL_PREF.*eBGP.*§7\.5/, { fourOctetAs: true, ebgp: true }).localPref,
    ).toBeUndefined();
    expect(decodeMessage(bytes, { fourOctetAs: true, ebgp: false }).message).toMatchObject({
      attributes: { localPref: 300 },
    });
  });
  it('a repeated attribute: the first is kept, the rest discarded (§3 g)', () => {
    const a = expectDiscard(
      update('', cat(GOOD, attr(0x80, 4, u32(5)), attr(0x80, 4, u32(7))), NLRI),
      /MULTI_EXIT_DISC: repeated.*§3 \(g\)/,
    );
    expect(a.med).toBe(5);
  });
  it('a malformed AS4_PATH on a 2-octet session is discarded and AS_PATH used (RFC 6793 §6)', () => {
    const bytes = update(
      '',
      cat(ORIGIN, attr(0x40, 2, '02 01', u16(65001)), NEXT_HOP, attr(0xc0, 17, '02 02', u32(1))),
      NLRI,
    );
    const a = expectDiscard(bytes, /AS4_PATH.*RFC 6793 §6/, CTX2);
    expect(a.asPath).toEqual([{ type: 2, asns: [65001] }]);
  });
});

describe('decodeMessage throws nothing but BgpError on truncations of valid messages', () => {
  const samples = [
    update(WITHDRAWN, cat(GOOD, attr(0xc0, 8, u32(1))), NLRI),
    message(1, '04', u16(1), u16(90), ip('1.1.1.1'), '08 02 06 41 04', u32(1)),
  ];
  it('has samples', () => expect(samples.length).toBeGreaterThan(0));
  it('every truncation (with a consistent header) gives a BgpError or a result', () => {
    for (const full of samples) {
      for (let len = 19; len < full.length; len++) {
        const cut = full.slice(0, len);
        cut[16] = len >> 8;
        cut[17] = len & 0xff;
        try {
          decodeMessage(cut, CTX4);
        } catch (e) {
          expect((e as Error).name).toBe('BgpError');
        }
      }
    }
  });
});
