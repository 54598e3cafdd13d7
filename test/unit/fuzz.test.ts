// The fuzzers of test/fuzz/ in a bounded slice (the full run is `npm run fuzz`, 1,000,000 BGP messages):
// a fixed seed, so a failure here reproduces, plus one random seed, printed, so CI keeps exploring.
// About 30 s of CPU on a 2-core machine in all; the time limits are generous because the machine may be
// shared, and time never decides the result — only the invariants do.
import { describe, expect, it } from 'vitest';
import { expectationFor, formatOutcomes, fuzzBgp, type BgpFuzzReport } from '../fuzz/bgp-fuzz.js';
import {
  frame,
  generatedSeeds,
  loadCaptures,
  loadExabgpVectors,
  mutate,
  parseOpen,
  parseUpdate,
  writeOpen,
  writeUpdate,
  HEADER,
} from '../fuzz/bgp-messages.js';
import { fuzzParsers } from '../fuzz/parsers.js';
import { randomSeed, Rng, toHex } from '../fuzz/random.js';

const FIXED_SEED = 20261207;
const RANDOM_SEED = randomSeed();
const LIMIT_MS = 600_000;

function explain(report: BgpFuzzReport): string {
  return [
    `seed ${report.seed}: ${report.messages} messages, ${report.perSecond}/s, escapes ${report.escapes}`,
    ...formatOutcomes(report.outcomes),
    ...report.violations
      .slice(0, 3)
      .map((v) => `VIOLATION #${v.index} peer ${v.peer} in ${v.state} (${v.seedName}): ${v.reason}\n  hex ${v.hex}`),
  ].join('\n');
}

describe('the RFC oracle of the BGP fuzzer', () => {
  const marker = 'ff'.repeat(16);
  const bytes = (hex: string) => Uint8Array.from(Buffer.from(hex.replace(/ /g, ''), 'hex'));
  it('names header errors exactly, with the data RFC 4271 §6.1 gives', () => {
    expect(expectationFor(bytes(`${'ff'.repeat(15)}00 0013 04`), 'Established').exact).toEqual({ code: 1, subcode: 1 });
    expect(expectationFor(bytes(`${marker} 1001 04`), 'Established').exact).toEqual({
      code: 1,
      subcode: 2,
      data: '1001',
    });
    expect(expectationFor(bytes(`${marker} 0013 09`), 'Established').exact).toEqual({
      code: 1,
      subcode: 3,
      data: '09',
    });
    expect(expectationFor(bytes(`${marker} 0014 04 00`), 'Established').exact).toEqual({
      code: 1,
      subcode: 2,
      data: '0014',
    });
    expect(expectationFor(frame(5, new Uint8Array(4077)), 'Established').exact).toEqual({
      code: 1,
      subcode: 2,
      data: '1000',
    });
  });
  it('a BoRR of the wrong length is 7/1 in Established and an FSM error before', () => {
    const borr = frame(5, Uint8Array.of(0, 1, 1, 1, 0));
    expect(expectationFor(borr, 'Established').exact).toEqual({ code: 7, subcode: 1, data: toHex(borr) });
    expect(expectationFor(borr, 'OpenSent').exact).toEqual({ code: 5, subcode: 1 });
  });
  it('messages by state: an UPDATE in OpenSent is 5/1, an OPEN in Established 2/x or 5/3, a NOTIFICATION is never answered', () => {
    const update = frame(2, Uint8Array.of(0, 0, 0, 0));
    expect(expectationFor(update, 'OpenSent').exact).toEqual({ code: 5, subcode: 1 });
    expect(expectationFor(update, 'OpenConfirm').exact).toEqual({ code: 5, subcode: 2 });
    expect(expectationFor(update, 'Established')).toMatchObject({
      mustReset: false,
      allowed: [
        [3, 'any'],
        [6, 'any'],
      ],
    });
    expect(expectationFor(frame(1, new Uint8Array(10)), 'Established')).toMatchObject({
      mustReset: true,
      allowed: [
        [2, 'any'],
        [5, [3]],
      ],
    });
    expect(expectationFor(frame(3, Uint8Array.of(6, 2)), 'Established')).toMatchObject({
      silent: true,
      mustReset: true,
    });
    expect(expectationFor(frame(4, new Uint8Array(0)), 'Established')).toMatchObject({ mustStay: true });
  });
});

describe('the BGP message models', () => {
  it('every capture and generated seed parses and writes back byte for byte', () => {
    const seeds = [...loadCaptures(), ...loadExabgpVectors(), ...generatedSeeds(new Rng(1), 64512)];
    expect(seeds.length).toBeGreaterThan(900);
    for (const s of seeds) {
      const body = s.bytes.subarray(HEADER);
      if (s.kind === 'update') expect(toHex(frame(2, writeUpdate(parseUpdate(body)!))), s.name).toBe(toHex(s.bytes));
      if (s.kind === 'open') expect(toHex(frame(1, writeOpen(parseOpen(body)!))), s.name).toBe(toHex(s.bytes));
    }
  });
  it('mutations stay within 4096 bytes and at least a header', () => {
    const rng = new Rng(7);
    const seeds = [...loadCaptures(), ...loadExabgpVectors(), ...generatedSeeds(rng, 64512)];
    for (let i = 0; i < 5_000; i++) {
      const m = mutate(rng, rng.pick(seeds));
      expect(m.length >= 19 && m.length <= 4096).toBe(true);
    }
  });
});

describe('BGP session fuzzing (live Speaker, fake time)', () => {
  it(
    `fixed seed ${FIXED_SEED}: 60,000 messages, nothing escapes, every reset names the RFC's NOTIFICATION, the keeper peer stays up`,
    { timeout: LIMIT_MS },
    async () => {
      const report = await fuzzBgp({ messages: 60_000, seed: FIXED_SEED });
      console.log(explain(report));
      expect(report.violations, explain(report)).toEqual([]);
      expect(report.escapes).toBe(0);
      expect(report.messages).toBe(60_000);
      // The mix shows the fuzzer reached every path: accepted, both RFC 7606 outcomes, each error family.
      const keys = Object.keys(report.outcomes);
      for (const want of [
        'accepted',
        'treat-as-withdraw',
        'attribute-discard',
        'peer NOTIFICATION (session ends, not answered)',
      ])
        expect(keys).toContain(want);
      for (const family of ['1/1', '1/2', '1/3', '2/', '3/', '5/1', '5/2', '5/3', '7/1'])
        expect(
          keys.some((k) => k.startsWith(`NOTIFICATION ${family}`)),
          family,
        ).toBe(true);
    },
  );

  it(`random seed ${RANDOM_SEED}: 20,000 messages`, { timeout: LIMIT_MS }, async () => {
    console.log(
      `BGP fuzz random seed ${RANDOM_SEED} (reproduce: node dist/test/fuzz/run.js --only bgp --seed ${RANDOM_SEED} --messages 20000)`,
    );
    const report = await fuzzBgp({ messages: 20_000, seed: RANDOM_SEED });
    expect(report.violations, explain(report)).toEqual([]);
    expect(report.escapes).toBe(0);
  });
});

describe('parser fuzzing: only typed errors', () => {
  for (const [label, seed, count] of [
    ['fixed seed', FIXED_SEED, 1500],
    ['random seed', RANDOM_SEED, 500],
  ] as const) {
    it(`${label} ${seed}: ${count} inputs per parser`, { timeout: LIMIT_MS }, async () => {
      const reports = await fuzzParsers({ count, seed });
      expect(reports.length).toBeGreaterThanOrEqual(11);
      for (const r of reports) {
        const first = r.violations[0];
        expect(
          r.violations,
          first
            ? `${r.name} (seed ${seed}) input #${first.index}: ${first.reason}\n${String(JSON.stringify(first.input) ?? first.input).slice(0, 2000)}`
            : r.name,
        ).toEqual([]);
        expect(r.inputs).toBe(count);
      }
    });
  }
});
