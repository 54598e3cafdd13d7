// The pod's network plumbing, done with iproute2 the way Calico's plugin does it with netlink:
//
//   host  ip link add cali… mtu M address ee:ee:ee:ee:ee:ee type veth peer name eth0 mtu M address <mac> netns <CNI_NETNS>
//         ip link set cali… up
//         ip route replace <ip>/32 dev cali… scope link      (felix owns routes on cali* and adopts it)
//         proxy_arp=1, neigh proxy_delay=0, forwarding=1      (/proc/sys/net/ipv4/{conf,neigh}/cali…/)
//   pod   ip link set eth0 up
//         ip addr add <ip>/32 dev eth0
//         ip route add 169.254.1.1 dev eth0 scope link
//         ip route add default via 169.254.1.1 dev eth0
//         ip neigh replace 169.254.1.1 lladdr ee:ee:ee:ee:ee:ee dev eth0 nud permanent
//
// The pod reaches everything through 169.254.1.1, an address nobody has: a permanent neighbour entry
// names the host end's MAC, and the host end answers ARP for it by proxy ARP too (when the host has a
// route elsewhere for it), so the host needs no address per veth and all pods share one gateway. The
// host reaches the pod by its /32 route on the cali* interface.
//
// Each side is one `ip -batch -` process (starting `ip` costs ~1.5 ms; four of them would cost more than
// the work), and the pod side runs while the host end's sysctls are written. The container side runs
// under `nsenter --net=<CNI_NETNS>`, which takes any namespace path (/var/run/netns/NAME or
// /proc/PID/ns/net), unlike `ip netns exec` which wants a name. `hostNetns` runs the host side in another
// namespace the same way: the lab's nodes are namespaces, and so are the tests' hosts.
//
// Why this is hard: every step can fail half-way (a stale eth0 in the pod, a vanished namespace), and a
// failed ADD must leave nothing behind — `removeHostVeth` removes a half-made pair (deleting one end of a
// veth deletes both) — while a leftover of the same name from an earlier sandbox must not stop the next
// ADD. `ip -batch` reports failures only as "Command failed -:N" on stderr, so lines are matched back to
// commands (felix's parseBatchErrors, imported only when a batch failed: start-up time).

import { writeFile } from 'node:fs/promises';
import { runCommand } from '../../felix/command.js';
import { missingProgramInStderr } from '../../felix/programs.js';
import { hostSetupLines6, hostSysctls6, podSetupLines6 } from './dual-stack.js';
import { HOST_VETH_MAC } from './names.js';
import { CniError } from './spec.js';

/** The pods' gateway: link-local, answered by proxy ARP on the host end (Calico's choice). */
export const POD_GATEWAY = '169.254.1.1';

export interface CommandResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs one command (argv[0] from PATH) with `stdin`; never rejects for a non-zero exit. */
export type RunCommand = (argv: readonly string[], stdin?: string) => Promise<CommandResult>;

/** Writes one /proc/sys file in the plugin's own network namespace. */
export type WriteProcSys = (path: string, value: string) => Promise<void>;

const COMMAND_TIMEOUT_MS = 10_000;

/**
 * The real RunCommand, through the one runner (felix/command.ts): output bounded, killed by PID after
 * `timeoutMs` (a CniError then, naming the command and the bound), a missing program named.
 */
export function spawnCommand(timeoutMs = COMMAND_TIMEOUT_MS): RunCommand {
  return async (argv, stdin) => {
    const [command, ...args] = argv;
    if (command === undefined) throw new Error('empty command');
    const makeError = (message: string): CniError => new CniError('dataplane', message);
    const result = await runCommand({
      command,
      args,
      stdin: stdin ?? '',
      timeoutMs,
      maxOutputBytes: 16 * 1024 * 1024,
      makeError,
    });
    // nsenter that cannot find `ip`/`sysctl` is not the command failing: say which program is missing.
    const missing = result.code !== 0 ? missingProgramInStderr(result.stderr) : null;
    if (missing !== null) throw makeError(`cannot run ${command}: ${missing}`);
    return { code: result.code, stdout: result.stdout.toString('utf8'), stderr: result.stderr };
  };
}

/** What ADD builds for one pod. */
export interface VethPlan {
  /** The host end: cali… */
  hostIf: string;
  /** The pod end: CNI_IFNAME. */
  podIf: string;
  /** CNI_NETNS. */
  netns: string;
  /** The pod's IPv4 address, without length. */
  address: string;
  /** The pod's IPv6 address, without length, when it has one (dual stack: ./dual-stack.ts). */
  address6?: string;
  mtu: number;
  podMac: string;
}

/**
 * Host-side batch of ADD. A leftover veth of the same name makes line 1 fail with "File exists": setup()
 * then removes it (as Calico's plugin does) and runs the batch once more.
 */
export function hostSetupLines(plan: VethPlan): string[] {
  const { hostIf, podIf, netns, address, mtu, podMac } = plan;
  return [
    `link add ${hostIf} mtu ${mtu} address ${HOST_VETH_MAC} type veth peer name ${podIf} mtu ${mtu} address ${podMac} netns ${netns}`,
    `link set ${hostIf} up`,
    `route replace ${address}/32 dev ${hostIf} scope link`,
    ...(plan.address6 !== undefined ? hostSetupLines6(hostIf, plan.address6) : []),
  ];
}

/** Container-side batch of ADD. */
export function podSetupLines(plan: VethPlan): string[] {
  const { podIf, address } = plan;
  return [
    `link set ${podIf} up`,
    `addr add ${address}/32 dev ${podIf}`,
    `route add ${POD_GATEWAY} dev ${podIf} scope link`,
    `route add default via ${POD_GATEWAY} dev ${podIf}`,
    // The gateway's MAC is the host end's fixed one: a permanent entry, so the pod does not depend on
    // proxy ARP, which answers only when the host has a route for 169.254.1.1 (a node without a default
    // route — the lab's, an isolated rack — has none).
    `neigh replace ${POD_GATEWAY} lladdr ${HOST_VETH_MAC} dev ${podIf} nud permanent`,
    ...(plan.address6 !== undefined ? podSetupLines6(podIf, plan.address6) : []),
  ];
}

/** /proc/sys settings of the host end (Calico's configureSysctls, IPv4 part). */
export function hostSysctls(hostIf: string): Array<{ path: string; value: string }> {
  return [
    // Answer ARP for 169.254.1.1 (and anything routed elsewhere) with the host end's MAC...
    { path: `/proc/sys/net/ipv4/conf/${hostIf}/proxy_arp`, value: '1' },
    // ...at once: the kernel otherwise delays proxy ARP answers by up to 0.8 s.
    { path: `/proc/sys/net/ipv4/neigh/${hostIf}/proxy_delay`, value: '0' },
    // Forward what the pod sends.
    { path: `/proc/sys/net/ipv4/conf/${hostIf}/forwarding`, value: '1' },
  ];
}

/** "/proc/sys/net/ipv4/conf/cali1/proxy_arp" → "net/ipv4/conf/cali1/proxy_arp" (sysctl's slash form keeps dots in names). */
function sysctlKey(path: string): string {
  return path.replace(/^\/proc\/sys\//, '');
}

/**
 * The first failing line of an `ip -batch` and what iproute2 said about it (felix's parseBatchErrors,
 * loaded only here: a batch that succeeds — every ADD without a fault — does not load felix's iproute2
 * module and what it imports).
 */
async function batchFailure(stderr: string, lines: readonly string[]): Promise<string> {
  const { parseBatchErrors } = await import('../../felix/iproute2.js');
  const first = parseBatchErrors(stderr, lines)[0];
  return first ? `"ip ${first.command}": ${first.error}` : stderr.trim();
}

/** True when stderr says the device is not there (iproute2's two spellings). */
export function isNoDevice(stderr: string): boolean {
  return /Cannot find device|does not exist/.test(stderr);
}

/** True when nsenter could not open the namespace path (it is gone). */
export function isNoNamespace(stderr: string): boolean {
  return (
    /nsenter: cannot open .*No such file or directory/.test(stderr) ||
    /reassociate to namespace .*(Invalid argument|No such file)/.test(stderr)
  );
}

/** A value that goes into a batch line: iproute2 splits batch lines on white space and quotes. */
function checkBatchWord(value: string, what: string): void {
  if (/[\s"'\\#]/.test(value) || value === '') {
    throw new CniError(
      'invalidEnvironment',
      `${what}: "${value}" contains white space, quotes or "#", which iproute2's batch mode cannot take`,
    );
  }
}

/** The first line of a JSON-lines output that parses as an array, or []. */
function jsonArrays(stdout: string): Array<Array<Record<string, unknown>>> {
  const out: Array<Array<Record<string, unknown>>> = [];
  for (const line of stdout.split('\n')) {
    const t = line.trim();
    if (t === '') continue;
    try {
      const parsed: unknown = JSON.parse(t);
      if (Array.isArray(parsed))
        out.push(parsed.filter((x): x is Record<string, unknown> => typeof x === 'object' && x !== null));
    } catch {
      // not JSON: ignored (ip prints nothing else on stdout with -json)
    }
  }
  return out;
}

export interface PodNetworkOptions {
  run: RunCommand;
  /** Run the host side in this namespace (a path); the plugin's own namespace when absent. */
  hostNetns?: string;
  /** How /proc/sys is written when hostNetns is absent (default: the file system). */
  writeProcSys?: WriteProcSys;
}

/** What CHECK found wrong, one line each; empty when all is as ADD left it. */
export type CheckProblems = string[];

/** The veth, its addresses and routes, on the host and in the pod. */
export class PodNetwork {
  private readonly run: RunCommand;
  private readonly hostNetns: string | undefined;
  private readonly writeProcSys: WriteProcSys;

  constructor(options: PodNetworkOptions) {
    this.run = options.run;
    this.hostNetns = options.hostNetns;
    this.writeProcSys = options.writeProcSys ?? ((path, value) => writeFile(path, value));
  }

  private hostIp(args: string[]): string[] {
    return this.hostNetns !== undefined ? ['nsenter', `--net=${this.hostNetns}`, 'ip', ...args] : ['ip', ...args];
  }

  private podIp(netns: string, args: string[]): string[] {
    return ['nsenter', `--net=${netns}`, 'ip', ...args];
  }

  private where(netns?: string): string {
    if (netns !== undefined) return ` in ${netns}`;
    return this.hostNetns !== undefined ? ` in host namespace ${this.hostNetns}` : '';
  }

  /**
   * Creates the veth pair and configures both ends. On failure, what was made is removed and a CniError
   * (code 101) names the command and what iproute2 said.
   */
  async setup(plan: VethPlan): Promise<void> {
    checkBatchWord(plan.netns, 'CNI_NETNS');
    const host = hostSetupLines(plan);
    // Without -force the batch stops at the first failure, so "File exists" means nothing after it ran.
    const runHost = (): Promise<CommandResult> => this.run(this.hostIp(['-batch', '-']), host.join('\n') + '\n');
    let hostResult = await runHost();
    if (hostResult.code !== 0 && /File exists/.test(hostResult.stderr)) {
      // A leftover pair of this name (an ADD that crashed, a sandbox whose DEL never came): remove it, once.
      await this.removeHostVeth(plan.hostIf);
      hostResult = await runHost();
    }
    if (hostResult.code !== 0) {
      await this.removeHostVeth(plan.hostIf).catch(() => undefined);
      throw new CniError(
        'dataplane',
        `creating ${plan.hostIf} / ${plan.podIf}${this.where()} failed: ${await batchFailure(hostResult.stderr, host)}`,
      );
    }
    try {
      // The host end's sysctls and the pod side are independent: two processes at once (with a host
      // namespace the sysctls are an `nsenter … sysctl` process too). Both finish before any rollback.
      const pod = podSetupLines(plan);
      const sysctlList = [...hostSysctls(plan.hostIf), ...(plan.address6 ? hostSysctls6(plan.hostIf) : [])];
      // IPv6: the host end's DAD must be off before the pod end comes up (the link gets carrier then, and
      // the kernel starts DAD on the link-local gateway address): sysctls first (./dual-stack.ts).
      const sysctlsFirst = plan.address6 !== undefined ? await this.writeSysctls(sysctlList) : undefined;
      const [sysctls, podRun] = await Promise.allSettled([
        plan.address6 !== undefined ? Promise.resolve(sysctlsFirst) : this.writeSysctls(sysctlList),
        this.run(this.podIp(plan.netns, ['-batch', '-']), pod.join('\n') + '\n'),
      ]);
      if (sysctls.status === 'rejected') throw sysctls.reason;
      if (podRun.status === 'rejected') throw podRun.reason;
      const podResult = podRun.value;
      if (podResult.code !== 0)
        throw new CniError(
          'dataplane',
          `configuring ${plan.podIf} in ${plan.netns} failed: ${await batchFailure(podResult.stderr, pod)}`,
        );
    } catch (err) {
      await this.removeHostVeth(plan.hostIf).catch(() => undefined);
      throw err;
    }
  }

  private async writeSysctls(entries: Array<{ path: string; value: string }>): Promise<void> {
    if (this.hostNetns === undefined) {
      try {
        await Promise.all(entries.map((e) => this.writeProcSys(e.path, e.value)));
      } catch (err) {
        throw new CniError(
          'dataplane',
          `writing ${entries.map((e) => `${e.path}=${e.value}`).join(', ')} failed: ${err instanceof Error ? err.message : String(err)}`,
        );
      }
      return;
    }
    const argv = [
      'nsenter',
      `--net=${this.hostNetns}`,
      'sysctl',
      '-q',
      '-w',
      ...entries.map((e) => `${sysctlKey(e.path)}=${e.value}`),
    ];
    const result = await this.run(argv);
    if (result.code !== 0)
      throw new CniError('dataplane', `${argv.join(' ')} failed: ${result.stderr.trim() || `exit ${result.code}`}`);
  }

  /** Deletes the host end (and so the pair). Resolves when it is gone, also when it was not there. */
  async removeHostVeth(hostIf: string): Promise<void> {
    const result = await this.run(this.hostIp(['link', 'del', hostIf]));
    if (result.code === 0 || isNoDevice(result.stderr)) return;
    throw new CniError('dataplane', `ip link del ${hostIf}${this.where()} failed: ${result.stderr.trim()}`);
  }

  /**
   * Deletes the pod end inside `netns` (and so the pair). Resolves when it is gone — also when the
   * interface or the whole namespace no longer exists. Returns whether there was something to delete.
   */
  async removePodInterface(netns: string, podIf: string): Promise<boolean> {
    const result = await this.run(this.podIp(netns, ['link', 'del', podIf]));
    if (result.code === 0) return true;
    if (isNoDevice(result.stderr) || isNoNamespace(result.stderr)) return false;
    throw new CniError('dataplane', `ip link del ${podIf} in ${netns} failed: ${result.stderr.trim()}`);
  }

  /** CHECK: the host end is up with the /32 route, the pod end has the address and both routes. */
  async check(plan: Omit<VethPlan, 'mtu' | 'podMac'>): Promise<CheckProblems> {
    const problems: CheckProblems = [];
    const host = await this.run(
      this.hostIp(['-json', '-batch', '-']),
      `link show dev ${plan.hostIf}\nroute show ${plan.address}/32\n`,
    );
    const [links = [], routes = []] = jsonArrays(host.stdout);
    const link = links.find((l) => l.ifname === plan.hostIf);
    if (!link) problems.push(`host interface ${plan.hostIf} does not exist${this.where()}`);
    else if (!(Array.isArray(link.flags) && link.flags.includes('UP')))
      problems.push(`host interface ${plan.hostIf} is not up`);
    if (link && !routes.some((r) => r.dev === plan.hostIf && r.scope === 'link')) {
      problems.push(`no route ${plan.address}/32 dev ${plan.hostIf} scope link${this.where()}`);
    }
    const pod = await this.run(
      this.podIp(plan.netns, ['-json', '-batch', '-']),
      `addr show dev ${plan.podIf}\nroute show default\nroute show ${POD_GATEWAY}\n`,
    );
    if (isNoNamespace(pod.stderr)) return [...problems, `the network namespace ${plan.netns} does not exist`];
    const [addrs = [], defaults = [], gateways = []] = jsonArrays(pod.stdout);
    const podLink = addrs.find((l) => l.ifname === plan.podIf);
    if (!podLink) return [...problems, `interface ${plan.podIf} does not exist in ${plan.netns}`];
    const infos = Array.isArray(podLink.addr_info) ? (podLink.addr_info as Array<Record<string, unknown>>) : [];
    if (!infos.some((a) => a.local === plan.address && a.prefixlen === 32))
      problems.push(`${plan.podIf} in ${plan.netns} does not have ${plan.address}/32`);
    if (!gateways.some((r) => r.dev === plan.podIf && r.scope === 'link'))
      problems.push(`no route ${POD_GATEWAY} dev ${plan.podIf} scope link in ${plan.netns}`);
    if (!defaults.some((r) => r.gateway === POD_GATEWAY && r.dev === plan.podIf))
      problems.push(`no default route via ${POD_GATEWAY} dev ${plan.podIf} in ${plan.netns}`);
    return problems;
  }

  /** The MTU of the interface the host's default route leaves by; null when there is no default route. */
  async defaultRouteMtu(): Promise<{ dev: string; mtu: number } | null> {
    const result = await this.run(this.hostIp(['-json', '-batch', '-']), 'route show default\nlink show\n');
    const [routes = [], links = []] = jsonArrays(result.stdout);
    const best = routes
      .filter((r) => typeof r.dev === 'string')
      .sort((a, b) => (typeof a.metric === 'number' ? a.metric : 0) - (typeof b.metric === 'number' ? b.metric : 0))[0];
    if (!best) return null;
    const link = links.find((l) => l.ifname === best.dev);
    return typeof link?.mtu === 'number' ? { dev: best.dev as string, mtu: link.mtu } : null;
  }
}
