// `tortie ipam show [--show-blocks] [-o table|json]`: how full each IPPool is, and with --show-blocks every
// allocation block with its node affinity and allocation count. The numbers come from Ipam.usage()
// (src/ipam); this file parses the flags and formats — calicoctl's boxed table, plus a NODE column for
// blocks — as pure functions.

import { parseArgs } from 'node:util';
import { UsageError } from './speaker-args.js';
import { parseCidr } from '../resources/index.js';
import type { Datastore } from '../datastore/types.js';
import { boxTable } from '../agent/status-format.js';

/** Ipam.usage()'s result, as the issue-4 contract defines IpamUsage (structurally the same type). */
export interface IpamUsageView {
  pools: Array<{ name: string; cidr: string; size: number; allocated: number; blocks: number }>;
  blocks: Array<{ cidr: string; node: string | null; size: number; allocated: number; pool: string }>;
}

export interface IpamShowArgs {
  showBlocks: boolean;
  output: 'table' | 'json';
  config?: string;
}

export const IPAM_USAGE = `usage: tortie ipam show [--show-blocks] [-o table|json] [-c FILE]

  --show-blocks        also list every allocation block: its node affinity and how many IPs are in use
  -o, --output FORMAT  table (default) or json
  -c, --config FILE    datastore configuration (as for tortie get)
`;

/** `tortie ipam ...` arguments (after "ipam"). Throws UsageError naming the bad flag. */
export function parseIpamArgs(argv: string[]): IpamShowArgs {
  const [sub, ...rest] = argv;
  if (sub !== 'show') throw new UsageError(`ipam: unknown subcommand ${JSON.stringify(sub ?? '')}; use "ipam show"\n\n${IPAM_USAGE}`);
  let values;
  try {
    ({ values } = parseArgs({
      args: rest,
      strict: true,
      allowPositionals: false,
      options: { 'show-blocks': { type: 'boolean' }, output: { type: 'string', short: 'o' }, config: { type: 'string', short: 'c' } },
    }));
  } catch (error) {
    throw new UsageError(`ipam show: ${error instanceof Error ? error.message : String(error)}\n\n${IPAM_USAGE}`);
  }
  const output = values.output ?? 'table';
  if (output !== 'table' && output !== 'json') throw new UsageError(`ipam show: -o "${output}" is not an output format; use table or json`);
  return { showBlocks: values['show-blocks'] === true, output, ...(values.config !== undefined ? { config: values.config } : {}) };
}

/** "5 (8%)": a count and its share of `total`, rounded to a whole percent. */
function share(count: number, total: number): string {
  const percent = total === 0 ? 0 : Math.round((100 * count) / total);
  return `${count} (${percent}%)`;
}

type Align = 'left' | 'right';

/** calicoctl's boxed table: +---+ rules, centred headers, cells padded one space each side. */
export function formatBoxTable(headers: string[], rows: string[][], align: Align[]): string {
  return boxTable(headers, rows, align);
}

/** Orders CIDRs by address (10.244.2.0/26 before 10.244.10.0/26), unparsable ones last by text. */
function byAddress(a: string, b: string): number {
  const x = parseCidr(a);
  const y = parseCidr(b);
  if (x === null || y === null) return x === null && y === null ? a.localeCompare(b) : x === null ? 1 : -1;
  if (x.family !== y.family) return x.family - y.family;
  return x.network < y.network ? -1 : x.network > y.network ? 1 : x.len - y.len;
}

/** The `ipam show` table: a row per pool, and with showBlocks each pool's blocks under it. */
export function formatIpamUsage(usage: IpamUsageView, showBlocks: boolean): string {
  const pools = [...usage.pools].sort((a, b) => byAddress(a.cidr, b.cidr));
  const blocks = [...usage.blocks].sort((a, b) => byAddress(a.cidr, b.cidr));
  const headers = showBlocks ? ['GROUPING', 'CIDR', 'NODE', 'IPS TOTAL', 'IPS IN USE', 'IPS FREE'] : ['GROUPING', 'CIDR', 'IPS TOTAL', 'IPS IN USE', 'IPS FREE'];
  const align: Align[] = showBlocks ? ['left', 'left', 'left', 'right', 'left', 'left'] : ['left', 'left', 'right', 'left', 'left'];
  const row = (grouping: string, cidr: string, node: string | undefined, size: number, allocated: number) => [
    grouping,
    cidr,
    ...(showBlocks ? [node ?? ''] : []),
    String(size),
    share(allocated, size),
    share(size - allocated, size),
  ];
  const rows: string[][] = [];
  for (const pool of pools) {
    rows.push(row('IP Pool', pool.cidr, undefined, pool.size, pool.allocated));
    if (!showBlocks) continue;
    for (const block of blocks.filter((b) => b.pool === pool.name)) rows.push(row('Block', block.cidr, block.node ?? '(none)', block.size, block.allocated));
  }
  if (showBlocks) {
    // Blocks whose pool is gone (deleted while IPs were still in use) are shown too, never hidden.
    const known = new Set(pools.map((p) => p.name));
    for (const block of blocks.filter((b) => !known.has(b.pool))) rows.push(row('Block (no pool)', block.cidr, block.node ?? '(none)', block.size, block.allocated));
  }
  if (pools.length === 0 && rows.length === 0) return 'No IP pools; create one with "tortie apply -f pool.yaml"\n';
  return formatBoxTable(headers, rows, align);
}

export interface IpamContext {
  out(text: string): void;
  openDatastore(): Promise<Datastore>;
  /** The usage from the datastore; main.ts passes Ipam.usage() of src/ipam. */
  usage(ds: Datastore): Promise<IpamUsageView>;
}

export async function runIpamShow(args: IpamShowArgs, ctx: IpamContext): Promise<number> {
  const ds = await ctx.openDatastore();
  try {
    const usage = await ctx.usage(ds);
    ctx.out(args.output === 'json' ? `${JSON.stringify(usage, null, 2)}\n` : formatIpamUsage(usage, args.showBlocks));
    return 0;
  } finally {
    await ds.close().catch(() => undefined);
  }
}
