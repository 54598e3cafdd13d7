// Codec throughput: UPDATE decode/encode with 1 and ~800 /26 prefixes per message, and the time to decode
// 100 000 /26 prefixes packed into full UPDATEs (budget: well under 50 ms).

import { MessageFramer, decodeMessage, encodeMessage, encodeUpdates } from '../../bgp/codec/index.js';
import type { CodecContext, PathAttributes, Prefix, UpdateMessage } from '../../bgp/types.js';
import { rate, time, type Bench, type BenchRow } from './bench.js';

const CTX: CodecContext = { fourOctetAs: true };
const ATTRS: PathAttributes = {
  origin: 0,
  asPath: [{ type: 2, asns: [64512, 65001] }],
  nextHop: 0xc6120001,
  localPref: 100,
  communities: [0xfde90064],
};
const BUDGET_100K_MS = 50;

/** `n` distinct /26 blocks from 10.0.0.0 upward. */
function blocks(n: number): Prefix[] {
  return Array.from({ length: n }, (_, i) => ({ addr: (0x0a000000 + i * 64) >>> 0, len: 26 }));
}

function decodeAll(messages: readonly Uint8Array[]): number {
  let prefixes = 0;
  for (const m of messages) prefixes += (decodeMessage(m, CTX).message as UpdateMessage).nlri.length;
  return prefixes;
}

export const codecBench: Bench = {
  name: 'codec',
  async run(): Promise<BenchRow[]> {
    const rows: BenchRow[] = [];

    const single: UpdateMessage = { type: 2, withdrawn: [], attributes: ATTRS, nlri: blocks(1) };
    const singleBytes = encodeMessage(single, CTX);
    const dec1 = time(() => decodeMessage(singleBytes, CTX));
    rows.push({ name: 'decode UPDATE, 1 /26 per message', value: rate(dec1), unit: 'UPDATEs/s' });
    rows.push({ name: 'decode UPDATE, 1 /26 per message', value: rate(dec1), unit: 'prefixes/s' });
    const enc1 = time(() => encodeMessage(single, CTX));
    rows.push({ name: 'encode UPDATE, 1 /26 per message', value: rate(enc1), unit: 'UPDATEs/s' });
    rows.push({ name: 'encode UPDATE, 1 /26 per message', value: rate(enc1), unit: 'prefixes/s' });

    const full = encodeUpdates(ATTRS, blocks(800), CTX);
    if (full.length !== 1) throw new Error(`expected 800 /26 to fit one UPDATE, got ${full.length}`);
    const fullBytes = full[0]!;
    const decN = time(() => decodeMessage(fullBytes, CTX));
    rows.push({ name: 'decode UPDATE, 800 /26 per message', value: rate(decN), unit: 'UPDATEs/s' });
    rows.push({ name: 'decode UPDATE, 800 /26 per message', value: rate(decN, 800), unit: 'prefixes/s' });
    const nlri800 = blocks(800);
    const encN = time(() => encodeUpdates(ATTRS, nlri800, CTX));
    rows.push({ name: 'encode UPDATE, 800 /26 per message', value: rate(encN), unit: 'UPDATEs/s' });
    rows.push({ name: 'encode UPDATE, 800 /26 per message', value: rate(encN, 800), unit: 'prefixes/s' });

    const many = blocks(100_000);
    const packed = encodeUpdates(ATTRS, many, CTX);
    if (decodeAll(packed) !== many.length) throw new Error('100k decode lost prefixes');
    const dec100k = time(() => decodeAll(packed), { maxMs: 2000, maxIterations: 30 });
    rows.push({
      name: `decode 100k /26 packed (${packed.length} UPDATEs), best of ${dec100k.iterations}`,
      value: dec100k.bestMs,
      unit: 'ms',
      vs: `${(dec100k.bestMs / BUDGET_100K_MS).toFixed(2)}× of ${BUDGET_100K_MS} ms budget`,
    });
    const stream = new Uint8Array(packed.reduce((n, m) => n + m.length, 0));
    let at = 0;
    for (const m of packed) {
      stream.set(m, at);
      at += m.length;
    }
    const framed = time(
      () => {
        const f = new MessageFramer();
        let n = 0;
        for (let off = 0; off < stream.length; off += 65536) n += decodeAll(f.push(stream.subarray(off, off + 65536)));
        return n;
      },
      { maxMs: 2000, maxIterations: 30 },
    );
    rows.push({
      name: 'frame + decode 100k /26 from 64 KiB chunks',
      value: framed.bestMs,
      unit: 'ms',
      vs: `${(framed.bestMs / BUDGET_100K_MS).toFixed(2)}× of ${BUDGET_100K_MS} ms budget`,
    });
    const enc100k = time(() => encodeUpdates(ATTRS, many, CTX), { maxMs: 2000, maxIterations: 30 });
    rows.push({ name: 'encode 100k /26 packed', value: enc100k.bestMs, unit: 'ms' });
    return rows;
  },
};
