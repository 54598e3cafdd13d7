// encodeUpdates / encodeWithdrawals / End-of-RIB.
import { describe, expect, it } from 'vitest';
import {
  decodeMessage,
  encodeEndOfRib,
  encodeUpdates,
  encodeWithdrawals,
  isEndOfRib,
} from '../../../bgp/codec/index.js';
import type { PathAttributes, Prefix, UpdateMessage } from '../../../bgp/types.js';
import { attr, cat, ip, prefix, toHex, u32, update } from '../helpers/bytes.js';
import { CTX4 } from './examples.js';

const ATTRS: PathAttributes = { origin: 0, asPath: [{ type: 2, asns: [65001] }], nextHop: 0xc6120001 };
const blocks = (n: number, len = 26): Prefix[] =>
  Array.from({ length: n }, (_, i) => ({ addr: (0x0a000000 + i * 2 ** (32 - len)) >>> 0, len }));

describe('encodeUpdates', () => {
  it('one UPDATE for a few prefixes, bytes as built by hand', () => {
    const got = encodeUpdates(
      ATTRS,
      [
        { addr: 0x0af40100, len: 26 },
        { addr: 0x0af40140, len: 26 },
      ],
      CTX4,
    );
    const want = update(
      '',
      cat(attr(0x40, 1, '00'), attr(0x40, 2, '02 01', u32(65001)), attr(0x40, 3, ip('198.18.0.1'))),
      cat(prefix('10.244.1.0/26'), prefix('10.244.1.64/26')),
    );
    expect(got.map(toHex)).toEqual([toHex(want)]);
  });
  it('packs 10 000 /26 into as few 4096-byte UPDATEs as fit, every prefix once, in order', () => {
    const nlri = blocks(10_000);
    const msgs = encodeUpdates(ATTRS, nlri, CTX4);
    // 4096 − 19 − 4 − 24 bytes of attributes = 4049 bytes of 5-byte prefixes: 809 per UPDATE.
    expect(msgs.length).toBe(Math.ceil(10_000 / 809));
    for (const m of msgs.slice(0, -1)) expect(m.length).toBeGreaterThan(4096 - 5);
    const back = msgs.flatMap((m) => (decodeMessage(m, CTX4).message as UpdateMessage).nlri);
    expect(back).toEqual(nlri);
    for (const m of msgs) expect((decodeMessage(m, CTX4).message as UpdateMessage).attributes).toEqual(ATTRS);
  });
  it('returns nothing for no prefixes', () => expect(encodeUpdates(ATTRS, [], CTX4)).toEqual([]));
});

describe('encodeWithdrawals', () => {
  it('packs withdrawals and they decode back in order', () => {
    const gone = blocks(3000, 24);
    const msgs = encodeWithdrawals(gone, CTX4);
    expect(msgs.length).toBe(Math.ceil(3000 / Math.floor((4096 - 23) / 4)));
    expect(msgs.flatMap((m) => (decodeMessage(m, CTX4).message as UpdateMessage).withdrawn)).toEqual(gone);
  });
  it('returns nothing for no prefixes', () => expect(encodeWithdrawals([], CTX4)).toEqual([]));
});

describe('End-of-RIB (RFC 4724 §2)', () => {
  it('is an empty UPDATE', () => {
    expect(toHex(encodeEndOfRib())).toBe('ffffffffffffffffffffffffffffffff0017020000' + '0000');
    expect(isEndOfRib(decodeMessage(encodeEndOfRib(), CTX4).message as UpdateMessage)).toBe(true);
  });
  it('an UPDATE with only an empty MP_UNREACH_NLRI is the End-of-RIB of that family', () => {
    const eor = decodeMessage(update('', attr(0x80, 15, '0002 01'), ''), CTX4).message as UpdateMessage;
    expect(isEndOfRib(eor)).toBe(true);
  });
  it('anything else is not', () => {
    const withPrefix = decodeMessage(update('', attr(0x80, 15, '0001 01', prefix('10.0.0.0/8')), ''), CTX4)
      .message as UpdateMessage;
    expect(isEndOfRib(withPrefix)).toBe(false);
    expect(isEndOfRib({ type: 2, withdrawn: [{ addr: 0, len: 0 }], attributes: {}, nlri: [] })).toBe(false);
    expect(isEndOfRib({ type: 2, withdrawn: [], attributes: { origin: 0 }, nlri: [] })).toBe(false);
  });
});
