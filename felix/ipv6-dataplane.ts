// felix's IPv6 side: the routes of route-calc6.ts kept in the kernel's main IPv6 table, the IPv6
// forwarding switch, and natOutgoing for IPv6 pools in its own nftables table:
//
//   ip -6 route      desired (route-calc6.ts) vs `ip -6 -json route show table main proto 80`, plus the
//                    /128s on cali* the CNI plugin wrote (proto boot: adopted, rewritten proto 80);
//                    deletions first, then `route replace`, in one `ip -6 -force -batch -`
//   sysctl           net.ipv6.conf.all.forwarding=1 (Calico's felix sets it when IPv6 is on)
//   nft              table ip6 tortie-nat6 { set nat-pools, set all-pools, chain postrouting:
//                      ip6 saddr @nat-pools ip6 daddr != @all-pools masquerade }   (absent: no NAT pool)
//
// Each update reconciles (serialized: one at a time, the latest input wins); `resync()` reads the kernel
// again (the agent's 90 s route refresh). Only routes felix owns (proto 80) are deleted, as for IPv4.
//
// Why this is hard: the IPv4 reconciler (route-table.ts, iproute2.ts) reads the kernel as AF_INET rtnetlink
// messages and is tuned for 10,000s of routes; IPv6 routes here are a few per node (blocks, pods), so a
// plain `ip -6 -json` read and a batch write do — kept apart so the IPv4 hot path is untouched.
// `ip -6 route` prints host routes without "/128" and drops `onlink` for a via on a connected subnet.

import { writeFile } from 'node:fs/promises';
import { runCommand } from './command.js';
import type { DesiredRoute } from './routes.js';
import { calculateRoutes6, canonicalPrefix6, type CalcInput6 } from './route-calc6.js';

/** `ip <args>` with stdin; a non-zero exit is an answer, not a throw. */
export type IpRunner6 = (
  args: readonly string[],
  stdin?: string,
) => Promise<{ code: number; stdout: string; stderr: string }>;

export interface Ipv6DataplaneOptions {
  ip: IpRunner6;
  /** Writes /proc/sys/<path> (e.g. "net/ipv6/conf/all/forwarding"); absent: not written. */
  writeSysctl?: (path: string, value: string) => Promise<void>;
  /** Applies an nft script; absent: natOutgoing for IPv6 is not programmed. */
  nft?: { apply(script: string): Promise<void> };
  log?: { warn(fields: object, message: string): void; info(fields: object, message: string): void };
}

export interface Ipv6Status {
  routes: number;
  warnings: string[];
  lastError: string | null;
}

export const NAT6_TABLE = 'tortie-nat6';

/** The ip6 NAT table's script (replacing the table in one transaction), or its removal when no pool wants NAT. */
export function nat6Script(pools: CalcInput6['pools']): string {
  const nat = pools.filter((p) => p.natOutgoing === true && p.disabled !== true).map((p) => canonicalPrefix6(p.cidr));
  const all = pools.map((p) => canonicalPrefix6(p.cidr));
  const head = `add table ip6 ${NAT6_TABLE}\ndelete table ip6 ${NAT6_TABLE}\n`;
  const natPools = nat.filter((c): c is string => c !== null).sort();
  if (natPools.length === 0) return head;
  const elements = (list: string[]): string => (list.length > 0 ? `    elements = { ${list.join(', ')} }\n` : '');
  return (
    head +
    `table ip6 ${NAT6_TABLE} {\n` +
    `  set nat-pools {\n    type ipv6_addr\n    flags interval\n${elements(natPools)}  }\n` +
    `  set all-pools {\n    type ipv6_addr\n    flags interval\n${elements(all.filter((c): c is string => c !== null).sort())}  }\n` +
    `  chain postrouting {\n    type nat hook postrouting priority 100; policy accept;\n` +
    `    ip6 saddr @nat-pools ip6 daddr != @all-pools masquerade comment "tortie natOutgoing"\n  }\n}\n`
  );
}

/** One `ip route replace` line for a desired IPv6 route. */
export function routeLine6(r: DesiredRoute): string {
  if (r.type === 'blackhole') return `route replace blackhole ${r.dst} proto ${r.proto}`;
  const parts = [`route replace ${r.dst}`];
  if (r.via !== undefined) parts.push(`via ${r.via}`);
  if (r.dev !== undefined) parts.push(`dev ${r.dev}`);
  if (r.onlink === true) parts.push('onlink');
  if (r.scope === 'link') parts.push('scope link');
  parts.push(`proto ${r.proto}`);
  return parts.join(' ');
}

interface KernelRoute6 {
  dst: string;
  type: string;
  dev?: string;
  via?: string;
  proto: string;
}

/** `ip -6 -json route show` → routes with canonical destinations. */
export function parseRoutes6(stdout: string): KernelRoute6[] {
  let list: unknown;
  try {
    list = JSON.parse(stdout.trim() === '' ? '[]' : stdout);
  } catch {
    return [];
  }
  if (!Array.isArray(list)) return [];
  const out: KernelRoute6[] = [];
  for (const item of list as Array<Record<string, unknown>>) {
    const raw = typeof item.dst === 'string' ? item.dst : '';
    const dst = raw === 'default' ? '::/0' : canonicalPrefix6(raw.includes('/') ? raw : `${raw}/128`);
    if (dst === null) continue;
    out.push({
      dst,
      type: typeof item.type === 'string' ? item.type : 'unicast',
      ...(typeof item.dev === 'string' ? { dev: item.dev } : {}),
      ...(typeof item.gateway === 'string' ? { via: item.gateway } : {}),
      proto: String(item.protocol ?? ''),
    });
  }
  return out;
}

/** Whether the kernel's route is the desired one (what `ip -6 -json` shows of it). */
function same(k: KernelRoute6, r: DesiredRoute): boolean {
  if (k.proto !== String(r.proto)) return false;
  if (r.type === 'blackhole') return k.type === 'blackhole';
  return k.type !== 'blackhole' && k.dev === r.dev && (k.via ?? undefined) === r.via;
}

export class Ipv6Dataplane {
  private input: CalcInput6 | null = null;
  private running: Promise<void> | null = null;
  private again = false;
  private status_: Ipv6Status = { routes: 0, warnings: [], lastError: null };
  private natWritten: string | null = null;
  private forwardingSet = false;

  constructor(private readonly options: Ipv6DataplaneOptions) {}

  /** The node's IPv6 view changed: reconcile (after the one running, if any). */
  update(input: CalcInput6): Promise<void> {
    this.input = input;
    return this.kick();
  }

  /** Read the kernel again and repair (the route refresh). */
  resync(): Promise<void> {
    this.natWritten = null;
    this.forwardingSet = false;
    return this.kick();
  }

  status(): Ipv6Status {
    return this.status_;
  }

  private kick(): Promise<void> {
    if (this.running !== null) {
      this.again = true;
      return this.running;
    }
    this.running = (async () => {
      do {
        this.again = false;
        try {
          await this.reconcile();
          this.status_ = { ...this.status_, lastError: null };
        } catch (err) {
          const message = err instanceof Error ? err.message : String(err);
          this.status_ = { ...this.status_, lastError: message };
          this.options.log?.warn({ err: message }, 'programming IPv6 routes failed');
        }
      } while (this.again);
    })().finally(() => (this.running = null));
    return this.running;
  }

  private async reconcile(): Promise<void> {
    const input = this.input;
    if (input === null) return;
    const { routes, warnings } = calculateRoutes6(input);
    for (const w of warnings) if (!this.status_.warnings.includes(w)) this.options.log?.warn({}, w);
    this.status_ = { ...this.status_, warnings, routes: routes.length };
    if (routes.length > 0 && !this.forwardingSet && this.options.writeSysctl) {
      // Calico's felix: IPv6 on means net.ipv6.conf.all.forwarding=1.
      await this.options.writeSysctl('net/ipv6/conf/all/forwarding', '1');
      this.forwardingSet = true;
    }
    const shown = await this.options.ip(['-6', '-json', 'route', 'show', 'table', 'main']);
    if (shown.code !== 0) throw new Error(`ip -6 -json route show failed: ${shown.stderr.trim()}`);
    const kernel = parseRoutes6(shown.stdout);
    const wanted = new Map(routes.map((r) => [r.dst, r]));
    const lines: string[] = [];
    for (const k of kernel) {
      // Ours: proto 80. Deleted when nobody wants that destination any more.
      if (k.proto === '80' && !wanted.has(k.dst))
        lines.push(`route del ${k.type === 'blackhole' ? 'blackhole ' : ''}${k.dst} proto 80`);
    }
    for (const r of routes) {
      const k = kernel.find((x) => x.dst === r.dst);
      if (k === undefined || !same(k, r)) lines.push(routeLine6(r));
    }
    if (lines.length > 0) {
      const result = await this.options.ip(['-6', '-force', '-batch', '-'], lines.join('\n') + '\n');
      if (result.code !== 0) {
        throw new Error(`ip -6 -batch: ${result.stderr.trim()} (lines: ${lines.join('; ')})`);
      }
    }
    if (this.options.nft) {
      const script = nat6Script(input.pools);
      if (script !== this.natWritten) {
        await this.options.nft.apply(script);
        this.natWritten = script;
      }
    }
  }
}

/** The real `ip` (with `-n <netns>` when given), through the one runner (command.ts): bounded in time and output. */
export function ipRunner6(options: { netns?: string; timeoutMs?: number } = {}): IpRunner6 {
  const prefix = options.netns !== undefined ? ['-n', options.netns] : [];
  return async (args, stdin) => {
    const result = await runCommand({
      command: 'ip',
      args: [...prefix, ...args],
      stdin: stdin ?? '',
      timeoutMs: options.timeoutMs ?? 10_000,
      maxOutputBytes: 16 * 1024 * 1024,
    });
    return { code: result.code ?? 128, stdout: result.stdout.toString('utf8'), stderr: result.stderr };
  };
}

/** Writes /proc/sys/<path> here, or inside a named network namespace (`ip netns exec <ns> sh`). */
export function procSysWriter(options: { netns?: string } = {}): (path: string, value: string) => Promise<void> {
  return async (path, value) => {
    if (!/^[A-Za-z0-9_./-]+$/.test(path) || path.includes('..')) throw new Error(`refusing to write /proc/sys/${path}`);
    if (options.netns === undefined) {
      await writeFile(`/proc/sys/${path}`, value);
      return;
    }
    const result = await runCommand({
      command: 'ip',
      args: ['netns', 'exec', options.netns, 'sh', '-c', 'printf "%s\\n" "$2" > "/proc/sys/$1"', 'sh', path, value],
      timeoutMs: 10_000,
    });
    if (result.code !== 0)
      throw new Error(`writing ${value} to /proc/sys/${path} in ${options.netns}: ${result.stderr.trim()}`);
  };
}
