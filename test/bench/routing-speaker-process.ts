// tortie as a route reflector the way a user runs it: a `tortie bgp speaker` process (the built CLI,
// dist/src/cli/main.js) with one `--peer ADDR,as=N,passive,rr-client` per client. Its events (`--json`)
// go to a log file through the harness's process runner (so `stopAll()` stops it by PID, and no pipe
// keeps the bench's event loop busy); the bench reads that file only before the clock starts, to see
// every client Established. Its RSS is read from /proc/<pid>/status.

import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { makeTempDir, waitFor } from '../harness/index.js';
import { startProcess } from '../harness/process.js';
import { BENCH_AS } from './routing-daemons.js';

const HERE = fileURLToPath(import.meta.url);
const ROOT = HERE.slice(0, HERE.lastIndexOf('/test/')).replace(/\/dist$/, '');
const CLI = `${ROOT}/dist/src/cli/main.js`;

export interface ProcessReflector {
  readonly pid: number;
  /** True once every client is Established (counted from the speaker's `state` events). */
  allUp(): Promise<boolean>;
  stop(): Promise<void>;
}

/** Resident set size of `pid` in bytes (VmRSS), or undefined when it cannot be read. */
export function rssOf(pid: number | undefined): number | undefined {
  if (pid === undefined) return undefined;
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) * 1024 : undefined;
  } catch {
    return undefined;
  }
}

/**
 * CPU time (user + system, all threads) `pid` has used so far, in ms, from /proc/<pid>/stat (clock ticks of
 * 10 ms). A daemon's CPU over a timed window is less moved by other load on the machine than its wall time.
 */
export function cpuMsOf(pid: number | undefined): number | undefined {
  if (pid === undefined) return undefined;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) * 10; // utime, stime (fields 14, 15 of proc(5))
  } catch {
    return undefined;
  }
}

/** Sessions Established now, from the speaker's `--json` state events so far (pure, for tests). */
export function establishedFromEvents(log: string): number {
  let up = 0;
  for (const line of log.split('\n')) {
    if (!line.startsWith('{"event":"state"')) continue;
    const e = JSON.parse(line) as { to?: string; from?: string };
    if (e.to === 'Established') up++;
    else if (e.from === 'Established') up--;
  }
  return up;
}

export async function startTortieProcessReflector(
  address: string,
  clusterId: string,
  clients: readonly string[],
): Promise<ProcessReflector> {
  const args = [
    CLI,
    'bgp',
    'speaker',
    '--json',
    '--router-id',
    address,
    '--as',
    String(BENCH_AS),
    '--listen',
    `${address}:179`,
    '--cluster-id',
    clusterId,
  ];
  for (const c of clients) args.push('--peer', `${c},as=${BENCH_AS},passive,rr-client`);
  const proc = startProcess({
    name: 'tortie-speaker',
    command: process.execPath,
    args,
    dir: makeTempDir('tortie-speaker-'),
    env: { TORTIE_LOG_LEVEL: 'warn' },
  });
  await waitFor(() => proc.log().includes('"event":"listening"') || !proc.isRunning(), {
    timeoutMs: 20_000,
    intervalMs: 50,
    what: `tortie bgp speaker on ${address} listening`,
  });
  if (!proc.isRunning()) throw new Error(`tortie bgp speaker on ${address} exited:\n${proc.log().slice(-3000)}`);
  return {
    pid: proc.pid,
    allUp: async () => establishedFromEvents(proc.log()) === clients.length,
    stop: () => proc.stop(),
  };
}
