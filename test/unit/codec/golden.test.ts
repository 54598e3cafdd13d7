// Golden captures from real BGP speakers (BIRD 1.6, BIRD 2, FRR, GoBGP) in test/fixtures/captures/:
// index.json lists {file, peer, type, fourOctetAs, description}; each file is one whole message as hex.
// Every capture must decode (without RFC 7606 trouble), re-encode to the same bytes where we keep the
// peer's ordering and packing (else to bytes that decode to the same value), and decode the same when
// split at every offset. A missing or empty index FAILS this file on purpose: a golden test that checks
// nothing is a defect.
import { existsSync, readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { MessageFramer, decodeMessage, encodeMessage } from '../../../bgp/codec/index.js';
import type { BgpMessage, CodecContext } from '../../../bgp/types.js';
import { hex, toHex } from '../helpers/bytes.js';

interface Capture {
  file: string;
  peer: string;
  type: string;
  fourOctetAs: boolean;
  description: string;
}

// TORTIE_CAPTURES_DIR points the test at another capture folder (to try new captures before adding them).
const DIR = process.env.TORTIE_CAPTURES_DIR
  ? new URL(`file://${process.env.TORTIE_CAPTURES_DIR.replace(/\/?$/, '/')}`)
  : new URL('../../fixtures/captures/', import.meta.url);
const INDEX = new URL('index.json', DIR);
const TYPE_NUMBERS: Record<string, number> = {
  open: 1,
  update: 2,
  notification: 3,
  keepalive: 4,
  'route-refresh': 5,
  routerefresh: 5,
};

/** The four peers the captures must cover, recognised loosely from the `peer` field. */
const PEERS: Record<string, (normalized: string) => boolean> = {
  'BIRD 1.6': (p) => p === 'bird' || p.startsWith('bird1') || p.startsWith('birdv1'),
  'BIRD 2': (p) => p.startsWith('bird2') || p.startsWith('birdv2'),
  FRR: (p) => p.includes('frr'),
  GoBGP: (p) => p.includes('gobgp'),
};
const normalize = (peer: string): string => peer.toLowerCase().replace(/[^a-z0-9]/g, '');

function loadIndex(): Capture[] {
  if (!existsSync(INDEX)) return [];
  const parsed: unknown = JSON.parse(readFileSync(INDEX, 'utf8'));
  return Array.isArray(parsed) ? (parsed as Capture[]) : [];
}

const captures = loadIndex();

/** We set Partial on unknown optional transitive attributes we pass on (RFC 4271 §5); ignore it in comparisons. */
function withoutPartialBit(m: BgpMessage): BgpMessage {
  if (m.type !== 2 || !m.attributes.unknown) return m;
  return {
    ...m,
    attributes: { ...m.attributes, unknown: m.attributes.unknown.map((u) => ({ ...u, flags: u.flags & ~0x20 })) },
  };
}

describe('golden captures from real peers', () => {
  it(`index.json exists and lists captures (${INDEX.pathname})`, () => {
    expect(existsSync(INDEX), 'test/fixtures/captures/index.json is missing').toBe(true);
    expect(captures.length).toBeGreaterThan(0);
  });

  it('covers BIRD 1.6, BIRD 2, FRR and GoBGP, and OPEN, UPDATE, KEEPALIVE and NOTIFICATION', () => {
    const peers = Object.entries(PEERS)
      .filter(([, match]) => captures.some((c) => match(normalize(c.peer))))
      .map(([name]) => name);
    expect(peers).toEqual(Object.keys(PEERS));
    const types = new Set(captures.map((c) => c.type.toLowerCase()));
    for (const t of ['open', 'update', 'keepalive', 'notification']) expect(types, `no ${t} capture`).toContain(t);
  });

  for (const c of captures) {
    const ctx: CodecContext = { fourOctetAs: c.fourOctetAs };
    const label = `${c.peer} ${c.type} ${c.file}: ${c.description}`;
    const bytes = (): Uint8Array => hex(readFileSync(new URL(c.file, DIR), 'utf8').trim());

    it(`decodes and re-encodes — ${label}`, () => {
      const original = bytes();
      const decoded = decodeMessage(original, ctx);
      expect(decoded.treatAsWithdraw).toBeUndefined();
      const want = TYPE_NUMBERS[c.type.toLowerCase()];
      expect(want, `unknown type "${c.type}" in index.json`).toBeDefined();
      expect(decoded.message.type).toBe(want);
      const again = encodeMessage(decoded.message, ctx);
      if (toHex(again) !== toHex(original)) {
        // Different capability packing or attribute order/flags: the value must still be the same.
        expect(c.type.toLowerCase(), 'KEEPALIVE and NOTIFICATION must re-encode byte for byte').not.toMatch(
          /^(keepalive|notification)$/,
        );
        expect(withoutPartialBit(decodeMessage(again, ctx).message)).toEqual(withoutPartialBit(decoded.message));
      }
    });

    it(`decodes the same split at every offset — ${label}`, () => {
      const original = bytes();
      const want = decodeMessage(original, ctx);
      for (let cut = 0; cut <= original.length; cut++) {
        const f = new MessageFramer();
        const out = [...f.push(original.slice(0, cut)), ...f.push(original.slice(cut))];
        expect(out).toHaveLength(1);
        expect(decodeMessage(out[0]!, ctx)).toEqual(want);
      }
    });
  }
});
