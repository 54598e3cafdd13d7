import { describe, expect, it } from 'vitest';
import { MessageFramer, decodeMessage } from '../../../bgp/codec/index.js';
import { catchBgp } from '../helpers/bgp-errors.js';
import { MARKER, cat, hex, toHex } from '../helpers/bytes.js';
import { EXAMPLES } from './examples.js';

describe('MessageFramer', () => {
  it('has examples to split', () => expect(EXAMPLES.length).toBeGreaterThan(0));

  for (const ex of EXAMPLES) {
    it(`decodes the same split at every offset: ${ex.name}`, () => {
      for (let cut = 0; cut <= ex.bytes.length; cut++) {
        const f = new MessageFramer();
        const out = [...f.push(ex.bytes.slice(0, cut)), ...f.push(ex.bytes.slice(cut))];
        expect(out.length).toBe(1);
        expect(f.buffered).toBe(0);
        expect(decodeMessage(out[0]!, ex.ctx)).toEqual({ message: ex.message });
      }
    });
  }

  it('finds every message when many share a chunk, for every chunk size', () => {
    const stream = cat(...EXAMPLES.map((e) => e.bytes));
    const want = EXAMPLES.map((e) => toHex(e.bytes));
    for (let size = 1; size <= stream.length; size += size < 40 ? 1 : 37) {
      const f = new MessageFramer();
      const got: string[] = [];
      for (let at = 0; at < stream.length; at += size) got.push(...f.push(stream.slice(at, at + size)).map(toHex));
      expect(got).toEqual(want);
      expect(f.buffered).toBe(0);
    }
  });

  it('keeps a partial message and reports how much is buffered', () => {
    const f = new MessageFramer();
    const ka = EXAMPLES.find((e) => e.message.type === 4)!.bytes;
    expect(f.push(cat(ka, ka.slice(0, 7)))).toHaveLength(1);
    expect(f.buffered).toBe(7);
    expect(f.push(ka.slice(7))).toHaveLength(1);
    expect(f.buffered).toBe(0);
  });

  it('hands out copies, not views of the pushed chunk', () => {
    const f = new MessageFramer();
    const chunk = cat(EXAMPLES[0]!.bytes, EXAMPLES[1]!.bytes);
    const out = f.push(chunk);
    expect(out).toHaveLength(2);
    for (const m of out) expect(m.buffer).not.toBe(chunk.buffer);
  });

  it('rejects a bad length as soon as the header is complete, before the body (RFC 4271 §6.1)', () => {
    for (const data of ['1001', '0012', '0000', 'ffff']) {
      const f = new MessageFramer();
      const err = catchBgp(() => f.push(cat(MARKER, hex(data), '02')));
      expect([err.code, err.subcode, toHex(err.data)]).toEqual([1, 2, data]);
    }
  });

  it('accepts the boundary lengths 19 and 4096', () => {
    const f = new MessageFramer();
    expect(f.push(cat(MARKER, '0013 04'))).toHaveLength(1);
    expect(f.push(cat(MARKER, '1000 02', new Uint8Array(4096 - 19)))).toHaveLength(1);
  });

  it('rejects a marker that is not all ones with Connection Not Synchronized (RFC 4271 §6.1)', () => {
    const bad = hex(MARKER);
    bad[5] = 0xfe;
    const err = catchBgp(() => new MessageFramer().push(cat(bad, '0013 04')));
    expect([err.code, err.subcode, err.data.length]).toEqual([1, 1, 0]);
  });
});
