// RFC 6793: 4-octet ASNs over a 2-octet session (AS_TRANS + AS4_PATH / AS4_AGGREGATOR) and back.
import { describe, expect, it } from 'vitest';
import { decodeMessage, encodeMessage } from '../../../bgp/codec/index.js';
import type { AsPathSegment, PathAttributes, UpdateMessage } from '../../../bgp/types.js';
import { attr, cat, ip, prefix, toHex, u16, u32, update } from '../helpers/bytes.js';
import { CTX2, CTX4 } from './examples.js';

const ORIGIN = attr(0x40, 1, '00');
const NEXT_HOP = attr(0x40, 3, ip('198.18.0.1'));
const NLRI = prefix('10.244.1.0/26');

function decodedAttrs(bytes: Uint8Array, ctx = CTX2): PathAttributes {
  const r = decodeMessage(bytes, ctx);
  expect(r.treatAsWithdraw).toBeUndefined();
  return (r.message as UpdateMessage).attributes;
}

const as2 = (...asns: number[]) => cat(...asns.map(u16));
const as4 = (...asns: number[]) => cat(...asns.map(u32));

describe('decoding on a 2-octet session (RFC 6793 §4.2.3)', () => {
  it('AS4_PATH replaces the tail of AS_PATH', () => {
    const bytes = update(
      '',
      cat(
        ORIGIN,
        attr(0x40, 2, '02 04', as2(65001, 65002, 23456, 23456)),
        NEXT_HOP,
        attr(0xc0, 17, '02 02', as4(4200000000, 4200000001)),
      ),
      NLRI,
    );
    expect(decodedAttrs(bytes).asPath).toEqual([{ type: 2, asns: [65001, 65002, 4200000000, 4200000001] }]);
  });
  it('an AS_SET counts as one AS when lining AS4_PATH up with AS_PATH', () => {
    const bytes = update(
      '',
      cat(
        ORIGIN,
        attr(0x40, 2, '02 02', as2(65001, 23456), '01 02', as2(23456, 65003)),
        NEXT_HOP,
        attr(0xc0, 17, '02 01', as4(4200000000), '01 02', as4(4200000009, 65003)),
      ),
      NLRI,
    );
    expect(decodedAttrs(bytes).asPath).toEqual([
      { type: 2, asns: [65001, 4200000000] },
      { type: 1, asns: [4200000009, 65003] },
    ]);
  });
  it('AS4_PATH longer than AS_PATH is ignored', () => {
    const bytes = update(
      '',
      cat(ORIGIN, attr(0x40, 2, '02 01', as2(23456)), NEXT_HOP, attr(0xc0, 17, '02 02', as4(4200000000, 4200000001))),
      NLRI,
    );
    const r = decodeMessage(bytes, CTX2);
    expect((r.message as UpdateMessage).attributes.asPath).toEqual([{ type: 2, asns: [23456] }]);
    expect(r.discarded?.join()).toMatch(/longer than AS_PATH/);
  });
  it('leading confederation segments of AS_PATH are kept', () => {
    const bytes = update(
      '',
      cat(
        ORIGIN,
        attr(0x40, 2, '03 01', as2(64600), '02 02', as2(65001, 23456)),
        NEXT_HOP,
        attr(0xc0, 17, '02 02', as4(65001, 4200000000)),
      ),
      NLRI,
    );
    expect(decodedAttrs(bytes).asPath).toEqual([
      { type: 3, asns: [64600] },
      { type: 2, asns: [65001, 4200000000] },
    ]);
  });
  it('AS4_AGGREGATOR replaces AGGREGATOR only when AGGREGATOR carries AS_TRANS', () => {
    const path = attr(0x40, 2, '02 01', as2(23456));
    const as4path = attr(0xc0, 17, '02 01', as4(4200000000));
    const as4agg = attr(0xc0, 18, as4(4200000005), ip('10.0.0.5'));
    const withTrans = update(
      '',
      cat(ORIGIN, path, NEXT_HOP, attr(0xc0, 7, u16(23456), ip('10.0.0.5')), as4path, as4agg),
      NLRI,
    );
    expect(decodedAttrs(withTrans)).toMatchObject({
      aggregator: { asn: 4200000005, address: 0x0a000005 },
      asPath: [{ type: 2, asns: [4200000000] }],
    });
    // RFC 6793 §4.2.3: AGGREGATOR not AS_TRANS → both AS4_AGGREGATOR and AS4_PATH are ignored.
    const withoutTrans = update(
      '',
      cat(ORIGIN, path, NEXT_HOP, attr(0xc0, 7, u16(65009), ip('10.0.0.5')), as4path, as4agg),
      NLRI,
    );
    expect(decodedAttrs(withoutTrans)).toMatchObject({
      aggregator: { asn: 65009, address: 0x0a000005 },
      asPath: [{ type: 2, asns: [23456] }],
    });
  });
  it('the decoded attributes never show AS4_* (not even as unknown)', () => {
    const bytes = update(
      '',
      cat(ORIGIN, attr(0x40, 2, '02 01', as2(23456)), NEXT_HOP, attr(0xc0, 17, '02 01', as4(4200000000))),
      NLRI,
    );
    const a = decodedAttrs(bytes);
    expect(a.unknown).toBeUndefined();
    expect(Object.keys(a).sort()).toEqual(['asPath', 'nextHop', 'origin']);
  });
});

describe('decoding on a 4-octet session', () => {
  it('AS4_PATH and AS4_AGGREGATOR are discarded (RFC 6793 §6)', () => {
    const bytes = update(
      '',
      cat(
        ORIGIN,
        attr(0x40, 2, '02 01', as4(65001)),
        NEXT_HOP,
        attr(0xc0, 7, as4(65001), ip('10.0.0.5')),
        attr(0xc0, 17, '02 01', as4(4200000000)),
        attr(0xc0, 18, as4(4200000005), ip('10.0.0.5')),
      ),
      NLRI,
    );
    const r = decodeMessage(bytes, CTX4);
    expect((r.message as UpdateMessage).attributes).toEqual({
      origin: 0,
      asPath: [{ type: 2, asns: [65001] }],
      nextHop: 0xc6120001,
      aggregator: { asn: 65001, address: 0x0a000005 },
    });
    expect(r.discarded).toHaveLength(2);
  });
});

describe('encoding on a 2-octet session (RFC 6793 §4.2.2)', () => {
  const big: AsPathSegment[] = [
    { type: 2, asns: [65001, 4200000000, 64512] },
    { type: 1, asns: [4200000001, 65005] },
  ];
  const msg: UpdateMessage = {
    type: 2,
    withdrawn: [],
    nlri: [{ addr: 0x0af40100, len: 26 }],
    attributes: { origin: 0, asPath: big, nextHop: 0xc6120001, aggregator: { asn: 4200000009, address: 0x0a000009 } },
  };
  it('big ASNs become AS_TRANS in AS_PATH and AGGREGATOR, with AS4_PATH and AS4_AGGREGATOR added', () => {
    const want = update(
      '',
      cat(
        ORIGIN,
        attr(0x40, 2, '02 03', as2(65001, 23456, 64512), '01 02', as2(23456, 65005)),
        NEXT_HOP,
        attr(0xc0, 7, u16(23456), ip('10.0.0.9')),
        attr(0xc0, 17, '02 03', as4(65001, 4200000000, 64512), '01 02', as4(4200000001, 65005)),
        attr(0xc0, 18, as4(4200000009), ip('10.0.0.9')),
      ),
      NLRI,
    );
    expect(toHex(encodeMessage(msg, CTX2))).toBe(toHex(want));
  });
  it('decoding the encoding gives the same path and aggregator back', () => {
    expect(decodeMessage(encodeMessage(msg, CTX2), CTX2)).toEqual({ message: msg });
  });
  it('no AS4_PATH / AS4_AGGREGATOR when every ASN fits 2 octets', () => {
    const small: UpdateMessage = {
      ...msg,
      attributes: {
        origin: 0,
        asPath: [{ type: 2, asns: [65001] }],
        nextHop: 0xc6120001,
        aggregator: { asn: 65001, address: 1 },
      },
    };
    const want = update(
      '',
      cat(ORIGIN, attr(0x40, 2, '02 01', as2(65001)), NEXT_HOP, attr(0xc0, 7, u16(65001), u32(1))),
      NLRI,
    );
    expect(toHex(encodeMessage(small, CTX2))).toBe(toHex(want));
  });
  it('a 4-octet session carries the real ASNs and no AS4_*', () => {
    const want = update(
      '',
      cat(
        ORIGIN,
        attr(0x40, 2, '02 03', as4(65001, 4200000000, 64512), '01 02', as4(4200000001, 65005)),
        NEXT_HOP,
        attr(0xc0, 7, as4(4200000009), ip('10.0.0.9')),
      ),
      NLRI,
    );
    expect(toHex(encodeMessage(msg, CTX4))).toBe(toHex(want));
  });
  it('segments longer than 255 ASNs are split on encode', () => {
    const long: UpdateMessage = {
      ...msg,
      attributes: {
        origin: 0,
        asPath: [{ type: 2, asns: Array.from({ length: 300 }, (_, i) => 64512 + (i % 100)) }],
        nextHop: 1,
      },
    };
    const back = decodeMessage(encodeMessage(long, CTX4), CTX4).message as UpdateMessage;
    expect(back.attributes.asPath?.map((s) => s.asns.length)).toEqual([255, 45]);
  });
});
