// The kernel settings felix's routes and natOutgoing need, read from /proc/sys/net/ipv4 in the node's
// network namespace, checked against one table (KERNEL_SETTINGS), and reported — in `node status`
// warnings and once in the log — instead of leaving pods silently unreachable.
//
//   setting                              wanted          on                      felix
//   net.ipv4.ip_forward                  1               the node                sets it (Calico's felix does too)
//   conf/<if>/forwarding                 1               host interface, cali*   reports
//   conf/<if>/rp_filter (max with all)   0 or 2          host interface, tunl0   reports
//   conf/<if>/proxy_arp (or with all)    1               cali*                   reports
//
// Decisions, and why:
// - ip_forward: without it the node forwards nothing — no pod reaches another node or the outside, and
//   natOutgoing has nothing to masquerade. It is a node-wide switch every CNI needs; felix sets it and says
//   so in the log each time it finds it off (Calico's felix sets it at start too). Writing it also turns
//   on `forwarding` of every interface, so the settings are read again after the write.
// - Per-interface settings of cali* belong to the CNI plugin (it writes proxy_arp=1, proxy_delay=0 and
//   forwarding=1 at ADD, see src/cni/dataplane.ts); felix only reports them: finding them changed means
//   someone else changed them, and fighting over them hides that. proxy_arp=0 alone does not cut a pod off
//   — the plugin also writes a permanent neighbour entry for 169.254.1.1 inside the pod — but it is what
//   answers the pod's ARP if that entry is gone, so it is reported as a risk, not an outage.
// - rp_filter: strict (1) on cali* is compatible with felix's routes: the route back to a pod's address
//   is exactly its /32 on that cali*, so only spoofed sources fail (Calico sets strict there on purpose).
//   Strict on the host interface or tunl0 is not: a packet from a remote pod is dropped whenever felix's
//   route back to that pod's block leaves by another interface — CrossSubnet when the two nodes disagree on
//   who shares a subnet (one tunnels, the other sends directly), a block not yet re-learned over BGP after
//   a restart, a node with two uplinks. 0 or 2 (loose) is what is wanted there. The kernel uses the larger
//   of conf/all and conf/<if> (IN_DEV_MAXCONF), so both are read and the effective value is checked.
//
// Why this is hard: /proc/sys/net belongs to the reader's network namespace, so a test node (a namespace)
// is read by a process inside it (`ip netns exec`), the real node by one in the host's; one `grep -H` of
// the files in question gives every value in one process, whatever the number of cali* interfaces.

import type { Logger } from '../bgp/log.js';
import { runCommand } from './command.js';

/** Values under /proc/sys/net/ipv4, by path relative to it: "ip_forward", "conf/eth0/rp_filter", ... */
export type SysctlValues = Readonly<Record<string, string>>;

export interface KernelSettingsInput {
  /** The node's uplink (direct and BGP routes leave through it); '' when not known. */
  hostInterface: string;
}

/** A change felix makes itself. */
export interface SysctlWrite {
  /** Relative to /proc/sys/net/ipv4. */
  path: string;
  value: string;
  /** For the log: what was there, and why it is changed. */
  reason: string;
}

export interface KernelSettingsResult {
  /** For people: each names the setting, the interfaces, the value, the consequence and the fix. */
  warnings: string[];
  /** What felix writes itself (ip_forward only). */
  writes: SysctlWrite[];
}

type Scope = 'node' | 'host' | 'workload';

interface SettingRule {
  /** The file under conf/<if>/ (or the node-wide file for scope 'node'). */
  file: string;
  scope: Scope;
  /** The value the kernel acts on: the interface's own, or combined with conf/all. */
  effective: (own: number, all: number | undefined) => number;
  ok: (value: number) => boolean;
  /** The value felix writes when not ok; undefined = report only. */
  felixSets?: string;
  wanted: string;
  consequence: string;
  fixValue: string;
}

const own = (value: number): number => value;
const maxWithAll = (value: number, all: number | undefined): number => Math.max(value, all ?? 0);
const orWithAll = (value: number, all: number | undefined): number => (value !== 0 || (all ?? 0) !== 0 ? 1 : 0);

/** One row per setting felix cares about (the table in the header). */
export const KERNEL_SETTINGS: readonly SettingRule[] = [
  {
    file: 'ip_forward',
    scope: 'node',
    effective: own,
    ok: (v) => v === 1,
    felixSets: '1',
    wanted: '1',
    consequence: 'the node forwards no packets: pods reach nothing beyond this node',
    fixValue: '1',
  },
  {
    file: 'forwarding',
    scope: 'host',
    effective: own,
    ok: (v) => v === 1,
    wanted: '1',
    consequence: 'packets arriving there for pods (from other nodes, replies from outside) are not forwarded',
    fixValue: '1',
  },
  {
    file: 'rp_filter',
    scope: 'host',
    effective: maxWithAll,
    ok: (v) => v === 0 || v === 2,
    wanted: '0 or 2 (loose)',
    consequence:
      'strict reverse-path filtering drops packets from remote pods whenever the route back to their block leaves by another ' +
      'interface (CrossSubnet nodes that disagree on the subnet, a block not yet re-learned over BGP after a restart, a second uplink)',
    fixValue: '2',
  },
  {
    file: 'forwarding',
    scope: 'workload',
    effective: own,
    ok: (v) => v === 1,
    wanted: '1',
    consequence: "the pods' packets are not forwarded: they reach nothing beyond this node",
    fixValue: '1',
  },
  {
    file: 'proxy_arp',
    scope: 'workload',
    effective: orWithAll,
    ok: (v) => v === 1,
    wanted: '1',
    consequence:
      "nothing answers the pods' ARP for their gateway 169.254.1.1; they still work while the permanent neighbour entry the CNI plugin wrote in the pod is there",
    fixValue: '1',
  },
];

/** Interfaces listed in one warning before "(and N more)". */
const LISTED = 5;

const SCOPE_WORDS: Record<Exclude<Scope, 'node'>, string> = {
  host: 'on the host interface',
  workload: 'on workload interface',
};

function sysctlKey(iface: string, file: string): string {
  // sysctl's dotted form cannot hold an interface name with a dot (eth0.100): use the slash form then.
  return iface.includes('.') ? `net/ipv4/conf/${iface}/${file}` : `net.ipv4.conf.${iface}.${file}`;
}

function listed(names: string[]): string {
  const shown = names.slice(0, LISTED).join(', ');
  return names.length > LISTED ? `${shown} (and ${names.length - LISTED} more)` : shown;
}

/** The interfaces that have a conf/<if>/ entry in the readings. */
export function interfacesIn(values: SysctlValues): string[] {
  const names = new Set<string>();
  for (const path of Object.keys(values)) {
    const m = /^conf\/([^/]+)\//.exec(path);
    if (m?.[1] !== undefined && m[1] !== 'all' && m[1] !== 'default') names.add(m[1]);
  }
  return [...names].sort();
}

/** Pure: the readings in, what is wrong (for people) and what felix writes itself out. */
export function checkKernelSettings(values: SysctlValues, input: KernelSettingsInput): KernelSettingsResult {
  const warnings: string[] = [];
  const writes: SysctlWrite[] = [];
  const interfaces = interfacesIn(values);
  const workloads = interfaces.filter((i) => i.startsWith('cali'));
  const hosts = [input.hostInterface, 'tunl0'].filter((i) => i !== '' && interfaces.includes(i));
  if (input.hostInterface !== '' && !interfaces.includes(input.hostInterface) && Object.keys(values).length > 0) {
    warnings.push(
      `host interface ${input.hostInterface}: /proc/sys/net/ipv4/conf/${input.hostInterface} does not exist in this network namespace; its forwarding and rp_filter are not checked`,
    );
  }
  const num = (path: string): number | undefined => {
    const text = values[path];
    if (text === undefined) return undefined;
    const n = Number(text.trim());
    return Number.isInteger(n) ? n : undefined;
  };
  for (const rule of KERNEL_SETTINGS) {
    if (rule.scope === 'node') {
      const value = num(rule.file);
      if (value === undefined) {
        warnings.push(`net.ipv4.${rule.file} could not be read: if it is not ${rule.wanted}, ${rule.consequence}`);
        continue;
      }
      if (rule.ok(value)) continue;
      if (rule.felixSets !== undefined) {
        writes.push({
          path: rule.file,
          value: rule.felixSets,
          reason: `net.ipv4.${rule.file} was ${value}: ${rule.consequence}`,
        });
      } else {
        warnings.push(
          `net.ipv4.${rule.file} is ${value}, wanted ${rule.wanted}: ${rule.consequence} (fix: sysctl -w net.ipv4.${rule.file}=${rule.fixValue})`,
        );
      }
      continue;
    }
    const all = num(`conf/all/${rule.file}`);
    const bad = new Map<number, string[]>(); // effective value → interfaces
    for (const iface of rule.scope === 'host' ? hosts : workloads) {
      const value = num(`conf/${iface}/${rule.file}`);
      if (value === undefined) continue;
      const effective = rule.effective(value, all);
      if (rule.ok(effective)) continue;
      const list = bad.get(effective) ?? [];
      list.push(iface);
      bad.set(effective, list);
    }
    for (const [effective, names] of [...bad.entries()].sort((a, b) => a[0] - b[0])) {
      const where = rule.scope === 'workload' && names.length > 1 ? 'on workload interfaces' : SCOPE_WORDS[rule.scope];
      const combined =
        rule.effective === maxWithAll
          ? " (the larger of conf/all and the interface's own)"
          : rule.effective === orWithAll
            ? " (conf/all or the interface's own)"
            : '';
      const fix = names
        .slice(0, LISTED)
        .map((n) => sysctlKey(n, rule.file) + `=${rule.fixValue}`)
        .join(' ');
      warnings.push(
        `${rule.file} is ${effective}${combined} ${where} ${listed(names)}, wanted ${rule.wanted}: ${rule.consequence} (fix: sysctl -w ${fix})`,
      );
    }
  }
  return { warnings, writes };
}

// ---- reading and writing /proc/sys in a namespace ---------------------------------------------------------

/** Reads and writes /proc/sys/net/ipv4 (tests pass a fake). */
export interface SysctlIo {
  /** ip_forward and conf/<every interface>/{forwarding,rp_filter,proxy_arp}. */
  read(): Promise<Record<string, string>>;
  /** Writes `value` to /proc/sys/net/ipv4/<path>. */
  write(path: string, value: string): Promise<void>;
}

export interface ProcSysOptions {
  /** Read and write inside this network namespace (`ip netns exec`); this process's own when absent. */
  netns?: string;
  ipPath?: string;
  timeoutMs?: number;
}

const READ_SCRIPT =
  'cd /proc/sys/net/ipv4 && exec grep -H . ip_forward conf/*/forwarding conf/*/rp_filter conf/*/proxy_arp';
const WRITE_SCRIPT = 'printf "%s\\n" "$2" > "/proc/sys/net/ipv4/$1"';

/** Parses `grep -H .` output ("conf/eth0/rp_filter:2" per line). */
export function parseSysctlLines(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of text.split('\n')) {
    const colon = line.indexOf(':');
    if (colon <= 0) continue;
    out[line.slice(0, colon)] = line.slice(colon + 1).trim();
  }
  return out;
}

/** /proc/sys through `sh` (and `ip netns exec <ns>` for a namespace): one process per read or write. */
export function procSysIo(options: ProcSysOptions = {}): SysctlIo {
  const timeoutMs = options.timeoutMs ?? 10_000;
  const argv = (script: string, args: string[]): [string, string[]] =>
    options.netns !== undefined
      ? [options.ipPath ?? 'ip', ['netns', 'exec', options.netns, 'sh', '-c', script, 'sh', ...args]]
      : ['sh', ['-c', script, 'sh', ...args]];
  const where = options.netns !== undefined ? ` in netns ${options.netns}` : '';
  // One bounded process per read or write (command.ts); `what` starts every error it makes.
  const run = async (
    script: string,
    args: string[],
    what: string,
  ): Promise<{ code: number | null; stdout: string; stderr: string }> => {
    const [command, list] = argv(script, args);
    const result = await runCommand({
      command,
      args: list,
      timeoutMs,
      makeError: (message) => new Error(`${what}: ${message}`),
    });
    return { code: result.code, stdout: result.stdout.toString('utf8'), stderr: result.stderr };
  };
  return {
    async read() {
      const result = await run(READ_SCRIPT, [], `reading /proc/sys/net/ipv4${where}`);
      // grep exits 2 when a glob matched nothing (no interface has the file) but still prints the rest.
      const values = parseSysctlLines(result.stdout);
      if (Object.keys(values).length === 0) {
        throw new Error(`cannot read /proc/sys/net/ipv4${where} (exit ${result.code}): ${result.stderr.trim()}`);
      }
      return values;
    },
    async write(path, value) {
      if (!/^[A-Za-z0-9_./-]+$/.test(path) || path.includes('..'))
        throw new Error(`refusing to write /proc/sys/net/ipv4/${path}: not a plain sysctl path`);
      const result = await run(WRITE_SCRIPT, [path, value], `writing ${value} to /proc/sys/net/ipv4/${path}${where}`);
      if (result.code !== 0)
        throw new Error(
          `writing ${value} to /proc/sys/net/ipv4/${path} failed (exit ${result.code}): ${result.stderr.trim()}`,
        );
    },
  };
}

/** The logger methods the checker uses. */
export type KernelSettingsLog = Pick<Logger, 'info' | 'warn'>;

/**
 * Reads, writes what felix sets itself (logging each write), reads again after a write, and returns the
 * warnings. Never throws: a failure to read or write is itself a warning.
 */
export async function ensureKernelSettings(
  io: SysctlIo,
  input: KernelSettingsInput,
  log: KernelSettingsLog,
): Promise<string[]> {
  let values: Record<string, string>;
  try {
    values = await io.read();
  } catch (error) {
    return [`kernel settings (ip_forward, rp_filter, proxy_arp) could not be checked: ${(error as Error).message}`];
  }
  let result = checkKernelSettings(values, input);
  if (result.writes.length === 0) return result.warnings;
  const failed: string[] = [];
  for (const w of result.writes) {
    try {
      await io.write(w.path, w.value);
      log.info(
        { sysctl: `net.ipv4.${w.path.replace(/\//g, '.')}`, value: w.value },
        `${w.reason}; felix set it to ${w.value}`,
      );
    } catch (error) {
      failed.push(`${w.reason}, and felix could not set it to ${w.value}: ${(error as Error).message}`);
    }
  }
  try {
    result = checkKernelSettings(await io.read(), input);
  } catch (error) {
    failed.push(`kernel settings could not be read again after writing: ${(error as Error).message}`);
  }
  // A write that did not take (read back unchanged) shows up again as a write: report it.
  for (const w of result.writes)
    if (!failed.some((f) => f.startsWith(w.reason)))
      failed.push(`${w.reason}; felix wrote ${w.value} but it reads back unchanged`);
  return [...failed, ...result.warnings];
}
