import { describe, expect, it } from 'vitest';
import { KEEPALIVE, decodeMessage, encodeMessage } from '../../../bgp/codec/index.js';
import { hex, toHex } from '../helpers/bytes.js';
import { EXAMPLES } from './examples.js';

describe('RFC-shaped examples', () => {
  it('has examples of every message type', () => {
    expect(EXAMPLES.length).toBeGreaterThan(10);
    expect(new Set(EXAMPLES.map((e) => e.message.type))).toEqual(new Set([1, 2, 3, 4, 5]));
  });

  for (const ex of EXAMPLES) {
    it(`decodes: ${ex.name}`, () => {
      expect(decodeMessage(ex.bytes, ex.ctx)).toEqual({ message: ex.message });
    });
    it(`encodes${ex.encodes ? '' : ' (equivalently)'}: ${ex.name}`, () => {
      const bytes = encodeMessage(ex.message, ex.ctx);
      if (ex.encodes) expect(toHex(bytes)).toBe(toHex(ex.bytes));
      else expect(decodeMessage(bytes, ex.ctx).message).toEqual(ex.message);
    });
  }

  it('KEEPALIVE is the 19-byte header alone', () => {
    expect(toHex(KEEPALIVE)).toBe('ffffffffffffffffffffffffffffffff001304');
  });

  it('copies kept bytes instead of pinning the input buffer', () => {
    const ex = EXAMPLES.find((e) => e.message.type === 3 && e.message.data.length > 0)!;
    const bytes = Uint8Array.from(ex.bytes);
    const decoded = decodeMessage(bytes, ex.ctx).message;
    bytes.fill(0);
    expect(decoded).toEqual(ex.message);
    if (decoded.type === 3) expect(decoded.data.buffer).not.toBe(bytes.buffer);
  });

  it('encodes capabilities over 255 bytes with RFC 9072 extended parameters, and decodes them back', () => {
    const caps = Array.from({ length: 70 }, (_, i) => ({ code: 1 as const, afi: 1, safi: i + 1 }));
    const msg = { type: 1 as const, version: 4, myAs: 65000, holdTime: 90, bgpId: 1, capabilities: caps };
    const bytes = encodeMessage(msg, { fourOctetAs: true });
    expect(toHex(bytes.subarray(19 + 9, 19 + 16))).toBe(toHex(hex('ff ff 01 a7 02 01a4')));
    expect(decodeMessage(bytes, { fourOctetAs: true }).message).toEqual(msg);
  });

  it('refuses to encode a message over 4096 bytes with a plain Error', () => {
    const nlri = Array.from({ length: 1000 }, (_, i) => ({ addr: (0x0a000000 + i * 64) >>> 0, len: 26 }));
    expect(() => encodeMessage({ type: 2, withdrawn: [], attributes: {}, nlri }, { fourOctetAs: true })).toThrow(
      /at most 4096/,
    );
  });
});
