// The bench runner: `node dist/test/bench/run.js [--only name[,name]]`. Runs the registered benches in
// order, prints one table (bench, name, value, unit, vs) and writes the rows as JSON to
// bench-results/<timestamp>.json and bench-results/latest.json (relative to the working directory).

import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { Bench, BenchRow } from './bench.js';
import { BENCHES } from './registry.js';

export type { Bench, BenchRow } from './bench.js';

export interface BenchResults {
  date: string;
  node: string;
  rows: (BenchRow & { bench: string })[];
}

/** Parses `--only a,b` (or `--only=a`); returns the selected benches or throws naming the known ones. */
export function selectBenches(argv: readonly string[], benches: readonly Bench[]): Bench[] {
  const names: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--only') names.push(...(argv[++i] ?? '').split(','));
    else if (arg.startsWith('--only=')) names.push(...arg.slice(7).split(','));
    else throw new Error(`unknown argument "${arg}"; usage: run.js [--only name[,name]]`);
  }
  const wanted = names.filter((n) => n !== '');
  if (wanted.length === 0) return [...benches];
  const known = benches.map((b) => b.name);
  const missing = wanted.filter((n) => !known.includes(n));
  if (missing.length > 0)
    throw new Error(`no bench named ${missing.map((m) => `"${m}"`).join(', ')}; known: ${known.join(', ')}`);
  return benches.filter((b) => wanted.includes(b.name));
}

function formatValue(v: number): string {
  if (v >= 1000) return Math.round(v).toLocaleString('en-US');
  return v.toFixed(v >= 100 ? 0 : 2);
}

export function formatTable(rows: BenchResults['rows']): string {
  const cells = [
    ['bench', 'name', 'value', 'unit', 'vs'],
    ...rows.map((r) => [r.bench, r.name, formatValue(r.value), r.unit, r.vs ?? '']),
  ];
  const widths = cells[0]!.map((_, c) => Math.max(...cells.map((row) => row[c]!.length)));
  return cells
    .map((row) =>
      row
        .map((cell, c) => (c === 2 ? cell.padStart(widths[c]!) : cell.padEnd(widths[c]!)))
        .join('  ')
        .trimEnd(),
    )
    .join('\n');
}

async function main(): Promise<void> {
  const benches = selectBenches(process.argv.slice(2), BENCHES);
  const results: BenchResults = { date: new Date().toISOString(), node: process.version, rows: [] };
  for (const bench of benches) {
    for (const row of await bench.run()) results.rows.push({ bench: bench.name, ...row });
  }
  console.log(formatTable(results.rows));
  const dir = 'bench-results';
  mkdirSync(dir, { recursive: true });
  const json = `${JSON.stringify(results, null, 2)}\n`;
  writeFileSync(join(dir, `${results.date.replace(/[:.]/g, '-')}.json`), json);
  writeFileSync(join(dir, 'latest.json'), json);
  console.log(`\nwrote ${join(dir, 'latest.json')}`);
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main().catch((e: unknown) => {
    console.error(e instanceof Error ? e.message : e);
    process.exitCode = 1;
  });
}
