// `tortie ipam show [--show-blocks] [-o table|json]`: how full each IPPool is, and with --show-blocks every
// allocation block with its node affinity and allocation count. The numbers come from Ipam.usage()
// (src/ipam); this file parses the flags and formats — calicoctl's boxed table, plus a NODE column for
// blocks — as pure functions.
// `tortie ipam check [--show-all-ips] [--show-problem-ips] [-o FILE]`: calicoctl's consistency report.
// The findings come from src/ipam/check.ts (pure, over one snapshot); this file prints calicoctl's
// "Found N ..." lines, a boxed table of the problems and, with -o, the whole report as JSON. Exit status
// 0: no problems, 1: problems found (or the datastore failed: then stderr says why), 2: bad command line.

import { parseArgs } from 'node:util';
import { UsageError } from './usage-error.js';
import { parseCidr } from '../resources/index.js';
import type { Datastore } from '../datastore/types.js';
import { boxTable } from '../format/table.js';
import { FINDINGS, FINDING_KINDS, type IpamCheckReport } from '../ipam/check-findings.js';

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

export interface IpamCheckArgs {
  showAllIps: boolean;
  showProblemIps: boolean;
  /** Where to write the JSON report. */
  outputFile?: string;
  config?: string;
}

export type IpamArgs = ({ sub: 'show' } & IpamShowArgs) | ({ sub: 'check' } & IpamCheckArgs);

export const IPAM_USAGE = `usage: tortie ipam show [--show-blocks] [-o table|json] [-c FILE]
       tortie ipam check [--show-all-ips] [--show-problem-ips] [-o FILE] [-c FILE]

show: how full each IP pool is
  --show-blocks        also list every allocation block: its node affinity and how many IPs are in use
  -o, --output FORMAT  table (default) or json

check: IPAM against itself and the cluster (leaked addresses, addresses in use but not allocated,
blocks and affinities of nodes that no longer exist, half-done claims and releases, handle counts)
  --show-problem-ips   also list every problem address (leaked, not allocated, two owners, no pool)
  --show-all-ips       also list every address checked: its allocation and who uses it
  -o, --output FILE    write the whole report as JSON to FILE
  exit status: 0 no problems, 1 problems found (or the datastore could not be read), 2 bad command line

  -c, --config FILE    datastore configuration (as for tortie get)
`;

function parseFlags<T extends Record<string, { type: 'boolean' | 'string'; short?: string }>>(
  sub: string,
  rest: string[],
  options: T,
) {
  try {
    return parseArgs({ args: rest, strict: true, allowPositionals: false, options }).values;
  } catch (error) {
    throw new UsageError(`ipam ${sub}: ${error instanceof Error ? error.message : String(error)}\n\n${IPAM_USAGE}`);
  }
}

/** `tortie ipam show ...` arguments (after "ipam"). Throws UsageError naming the bad flag. */
export function parseIpamArgs(argv: string[]): IpamShowArgs {
  const parsed = parseIpamCommand(argv);
  if (parsed.sub !== 'show') throw new UsageError(`ipam: expected "ipam show", got "ipam ${parsed.sub}"`);
  const { sub: _sub, ...show } = parsed;
  return show;
}

/** `tortie ipam show|check ...` arguments (after "ipam"). Throws UsageError naming the bad flag or value. */
export function parseIpamCommand(argv: string[]): IpamArgs {
  const [sub, ...rest] = argv;
  if (sub === 'check') {
    const values = parseFlags('check', rest, {
      'show-all-ips': { type: 'boolean' },
      'show-problem-ips': { type: 'boolean' },
      output: { type: 'string', short: 'o' },
      config: { type: 'string', short: 'c' },
    });
    if (values.output === '') throw new UsageError('ipam check: -o needs a file name to write the JSON report to');
    return {
      sub: 'check',
      showAllIps: values['show-all-ips'] === true,
      showProblemIps: values['show-problem-ips'] === true,
      ...(values.output !== undefined ? { outputFile: values.output } : {}),
      ...(values.config !== undefined ? { config: values.config } : {}),
    };
  }
  if (sub !== 'show')
    throw new UsageError(
      `ipam: unknown subcommand ${JSON.stringify(sub ?? '')}; use "ipam show" or "ipam check"\n\n${IPAM_USAGE}`,
    );
  const values = parseFlags('show', rest, {
    'show-blocks': { type: 'boolean' },
    output: { type: 'string', short: 'o' },
    config: { type: 'string', short: 'c' },
  });
  const output = values.output ?? 'table';
  if (output !== 'table' && output !== 'json')
    throw new UsageError(`ipam show: -o "${output}" is not an output format; use table or json`);
  return {
    sub: 'show',
    showBlocks: values['show-blocks'] === true,
    output,
    ...(values.config !== undefined ? { config: values.config } : {}),
  };
}

/** "5 (8%)": a count and its share of `total`, rounded to a whole percent. */
function share(count: number, total: number): string {
  const percent = total === 0 ? 0 : Math.round((100 * count) / total);
  return `${count} (${percent}%)`;
}

type Align = 'left' | 'right';

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
  const headers = showBlocks
    ? ['GROUPING', 'CIDR', 'NODE', 'IPS TOTAL', 'IPS IN USE', 'IPS FREE']
    : ['GROUPING', 'CIDR', 'IPS TOTAL', 'IPS IN USE', 'IPS FREE'];
  const align: Align[] = showBlocks
    ? ['left', 'left', 'left', 'right', 'left', 'left']
    : ['left', 'left', 'right', 'left', 'left'];
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
    for (const block of blocks.filter((b) => b.pool === pool.name))
      rows.push(row('Block', block.cidr, block.node ?? '(none)', block.size, block.allocated));
  }
  if (showBlocks) {
    // Blocks whose pool is gone (deleted while IPs were still in use) are shown too, never hidden.
    const known = new Set(pools.map((p) => p.name));
    for (const block of blocks.filter((b) => !known.has(b.pool)))
      rows.push(row('Block (no pool)', block.cidr, block.node ?? '(none)', block.size, block.allocated));
  }
  if (pools.length === 0 && rows.length === 0) return 'No IP pools; create one with "tortie apply -f pool.yaml"\n';
  return boxTable(headers, rows, align);
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

/** The text report of `ipam check`: calicoctl's "Found N ..." lines, then the problems as a boxed table. */
export function formatIpamCheck(
  report: IpamCheckReport,
  options: { showAllIps: boolean; showProblemIps: boolean },
): string {
  const c = report.counts;
  const lines: string[] = ['Checking IPAM for inconsistencies...', ''];
  lines.push(`Found ${c.activePools} active IP pools (${c.pools - c.activePools} disabled).`);
  lines.push(`Found ${c.blocks} IPAM blocks; they record ${c.allocations} allocations.`);
  lines.push(`Found ${c.nodes} nodes and ${c.nodeTunnelIps} node tunnel IPs.`);
  lines.push(`Found ${c.workloadIps} workload IPs.`);
  lines.push(`Workloads and nodes are using ${c.inUseIps} IPs.`);
  lines.push(`Found ${c.handles} IPAM handles.`);
  lines.push('');
  const byKind = new Map(FINDING_KINDS.map((k) => [k, report.findings.filter((f) => f.kind === k)]));
  for (const kind of FINDING_KINDS) lines.push(`Found ${byKind.get(kind)?.length ?? 0} ${FINDINGS[kind].summary}.`);
  let out = `${lines.join('\n')}\n`;
  if (options.showAllIps) {
    const rows = report.addresses.map((a) => [
      a.ip,
      a.block ?? '(none)',
      a.handle ?? '',
      [
        a.node ? `node=${a.node}` : '',
        a.pod ? `pod=${a.namespace ?? 'default'}/${a.pod}` : '',
        a.type ? `type=${a.type}` : '',
        a.borrowed ? 'borrowed' : '',
      ]
        .filter(Boolean)
        .join(' '),
      a.owners.join(', ') || '(nobody)',
    ]);
    out += `\nAll IPs (${rows.length}):\n`;
    out += rows.length === 0 ? 'none\n' : boxTable(['ADDRESS', 'BLOCK', 'HANDLE', 'ALLOCATED FOR', 'IN USE BY'], rows);
  }
  const shown = report.findings.filter((f) => options.showProblemIps || !FINDINGS[f.kind].perAddress);
  const hidden = report.findings.length - shown.length;
  if (shown.length > 0) {
    const rows = shown.map((f, i) => [
      String(i + 1),
      FINDINGS[f.kind].title,
      f.object,
      f.address ?? f.handle ?? '',
      f.detail,
    ]);
    out += `\n${boxTable(['#', 'PROBLEM', 'OBJECT', 'ADDRESS/HANDLE', 'DETAIL'], rows, ['right'])}`;
    // The advice once per distinct text, with the rows it is for (a gone node's leftovers share one).
    const advice = new Map<string, number[]>();
    shown.forEach((f, i) => advice.set(f.action, [...(advice.get(f.action) ?? []), i + 1]));
    out += `What to do:\n${[...advice].map(([action, rowsOf]) => `  ${rowsOf.join(', ')}: ${action}\n`).join('')}`;
  }
  if (hidden > 0)
    out += `\n${hidden} problem IP(s) not listed: run with --show-problem-ips to list them, and what to do about each.\n`;
  out += `\nCheck complete; found ${report.findings.length} problems.\n`;
  return out;
}

/** The JSON report -o writes: the check's counts, findings and every address (calicoctl writes its allocations). */
export function ipamCheckJson(report: IpamCheckReport, checkedAt: Date): string {
  const allocations: Record<string, IpamCheckReport['addresses']> = {};
  for (const a of report.addresses) allocations[a.ip] = [...(allocations[a.ip] ?? []), a];
  return `${JSON.stringify({ checkedAt: checkedAt.toISOString(), problems: report.findings.length, counts: report.counts, findings: report.findings, allocations }, null, 2)}\n`;
}

export interface IpamCheckContext {
  out(text: string): void;
  openDatastore(): Promise<Datastore>;
  /** The check over the datastore; main.ts passes src/ipam/check.ts (readCheckSnapshot + checkIpam). */
  check(ds: Datastore): Promise<IpamCheckReport>;
  writeFile(path: string, text: string): Promise<void>;
  now(): Date;
}

/** Runs the check; 0 when nothing is wrong, 1 when something is (see the header). */
export async function runIpamCheck(args: IpamCheckArgs, ctx: IpamCheckContext): Promise<number> {
  const ds = await ctx.openDatastore();
  let report: IpamCheckReport;
  try {
    report = await ctx.check(ds);
  } finally {
    await ds.close().catch(() => undefined);
  }
  ctx.out(formatIpamCheck(report, args));
  if (args.outputFile !== undefined) {
    try {
      await ctx.writeFile(args.outputFile, ipamCheckJson(report, ctx.now()));
    } catch (error) {
      throw new Error(
        `ipam check: could not write the report to -o "${args.outputFile}": ${error instanceof Error ? error.message : String(error)}`,
        { cause: error },
      );
    }
    ctx.out(`Report written to ${args.outputFile}.\n`);
  }
  return report.findings.length === 0 ? 0 : 1;
}
