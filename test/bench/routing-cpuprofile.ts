// Summarises a V8 .cpuprofile (from `node --cpu-prof`): self time per function and per file, as percent
// of the profile's samples, so "where does tortie's time go" is one command:
//
//   node dist/test/bench/routing-cpuprofile.js /tmp/prof/CPU.*.cpuprofile [--top 25]

import { readFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}

export interface CpuProfile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

export interface SelfTime {
  name: string;
  ms: number;
  percent: number;
}

/** Where a frame is: "bgp/rib/adj-rib-out.ts:42" style (path from the repo's dist/, 1-based line). */
function location(frame: ProfileNode['callFrame']): string {
  const url = frame.url.replace(/^file:\/\//, '');
  const at = url.indexOf('/dist/');
  const short = at >= 0 ? url.slice(at + 6) : url.replace(/^.*node_modules\//, 'node_modules/');
  return short === '' ? '' : `${short}:${frame.lineNumber + 1}`;
}

/** Self time per key (`by(frame)`), largest first. Pure. */
export function selfTimes(profile: CpuProfile, by: (frame: ProfileNode['callFrame']) => string): SelfTime[] {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const totals = new Map<string, number>();
  let all = 0;
  profile.samples.forEach((id, i) => {
    const us = profile.timeDeltas[i] ?? 0;
    all += us;
    const frame = byId.get(id)?.callFrame;
    const key = frame ? by(frame) : '(unknown)';
    totals.set(key, (totals.get(key) ?? 0) + us);
  });
  return [...totals]
    .map(([name, us]) => ({ name, ms: us / 1000, percent: all === 0 ? 0 : (100 * us) / all }))
    .sort((a, b) => b.ms - a.ms);
}

export const byFunction = (f: ProfileNode['callFrame']): string =>
  `${f.functionName || '(anonymous)'} ${location(f)}`.trim();
export const byFile = (f: ProfileNode['callFrame']): string =>
  location(f).replace(/:\d+$/, '') || `(${f.functionName || 'native'})`;

function main(): void {
  const args = process.argv.slice(2);
  const topAt = args.indexOf('--top');
  const top = topAt >= 0 ? Number(args.splice(topAt, 2)[1]) : 25;
  if (args.length === 0) throw new Error('usage: routing-cpuprofile.js FILE.cpuprofile... [--top N]');
  for (const file of args) {
    const profile = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile;
    const total = profile.timeDeltas.reduce((a, b) => a + b, 0) / 1000;
    console.log(`\n${file}: ${total.toFixed(0)} ms sampled`);
    console.log('  self time by function:');
    for (const t of selfTimes(profile, byFunction).slice(0, top))
      console.log(`  ${t.percent.toFixed(1).padStart(5)}%  ${t.ms.toFixed(0).padStart(6)} ms  ${t.name}`);
    console.log('  self time by file:');
    for (const t of selfTimes(profile, byFile).slice(0, 12))
      console.log(`  ${t.percent.toFixed(1).padStart(5)}%  ${t.ms.toFixed(0).padStart(6)} ms  ${t.name}`);
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) main();
