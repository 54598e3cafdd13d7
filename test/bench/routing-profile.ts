// Runs one routing scenario with tortie only, for a CPU profile of where tortie spends its time.
//
//   npm run build
//   node dist/test/bench/routing-profile.js receive-distinct --out /tmp/receive.cpuprofile
//   node dist/test/bench/routing-cpuprofile.js /tmp/receive.cpuprofile
//
// receive-packed, receive-distinct, rr, rr-distinct: tortie runs in this thread; with --out, the V8 profiler (through
// node:inspector) records the timed window only, so daemon start-up and teardown stay out of it.
// rr-process, rr-process-distinct, clients: tortie is a `tortie bgp speaker` process; no window (time only).
// nodes: the reflector runs in a worker thread; profile it with
//   node --cpu-prof --cpu-prof-dir=/tmp/prof dist/test/bench/routing-profile.js nodes
// (one .cpuprofile per thread: the one with bgp/rib/* on top is the reflector; the other is the 200 nodes).

import { writeFileSync } from 'node:fs';
import { Session } from 'node:inspector/promises';
import { pathToFileURL } from 'node:url';
import { stopAll } from '../harness/index.js';
import { receiveIntoTortie, type TimedWindow } from './routing-receive.js';
import { nodesThrough } from './routing-nodes.js';
import { clientsThrough } from './routing-clients.js';
import { fanOut } from './routing-rr.js';

/** Scenario name → a run of tortie in it (profiling the window when given one), returning a line for people. */
export const PROFILE_SCENARIOS: Readonly<Record<string, (window?: TimedWindow) => Promise<string>>> = {
  'receive-packed': async (w) => `receive 100k packed: ${JSON.stringify(await receiveIntoTortie(false, w))}`,
  'receive-distinct': async (w) => `receive 100k distinct: ${JSON.stringify(await receiveIntoTortie(true, w))}`,
  rr: async (w) => `RR fan-out 100k: ${JSON.stringify(await fanOut('tortie', w))}`,
  'rr-distinct': async (w) => `RR fan-out 100k distinct: ${JSON.stringify(await fanOut('tortie', w, true))}`,
  'rr-process': async () =>
    `RR fan-out 100k, tortie bgp speaker process: ${JSON.stringify(await fanOut('tortie-process'))}`,
  'rr-process-distinct': async () =>
    `RR fan-out 100k distinct, tortie bgp speaker process: ${JSON.stringify(await fanOut('tortie-process', undefined, true))}`,
  clients: async () =>
    `1,000 clients, tortie bgp speaker process: ${JSON.stringify(await clientsThrough('tortie-process'))}`,
  nodes: async () => `200 nodes: ${JSON.stringify(await nodesThrough('tortie'))}`,
};

/** A TimedWindow that records a CPU profile of the window into `path`. */
export function profilerWindow(path: string): TimedWindow {
  const session = new Session();
  return {
    async start() {
      session.connect();
      await session.post('Profiler.enable');
      await session.post('Profiler.setSamplingInterval', { interval: 200 });
      await session.post('Profiler.start');
    },
    async stop() {
      const { profile } = await session.post('Profiler.stop');
      session.disconnect();
      writeFileSync(path, JSON.stringify(profile));
    },
  };
}

async function main(): Promise<void> {
  const [name = '', ...rest] = process.argv.slice(2);
  const scenario = PROFILE_SCENARIOS[name];
  if (!scenario) throw new Error(`scenario "${name}" is not one of ${Object.keys(PROFILE_SCENARIOS).join(', ')}`);
  const outAt = rest.indexOf('--out');
  const out = outAt >= 0 ? rest[outAt + 1] : undefined;
  if (outAt >= 0 && !out) throw new Error('--out needs a file name, e.g. --out /tmp/receive.cpuprofile');
  try {
    console.log(await scenario(out ? profilerWindow(out) : undefined));
    if (out) console.log(`profile of the timed window: ${out}`);
  } finally {
    await stopAll();
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main().catch((e: unknown) => {
    console.error(e instanceof Error ? e.message : e);
    process.exitCode = 1;
  });
}
