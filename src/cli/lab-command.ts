// `tortie lab up|status|ping|down` (and the internal `lab relay`): argument parsing and output. The work
// is in src/lab/. Options are parsed with node:util parseArgs (strict: an unknown option is an error).

import { parseArgs } from 'node:util';
import { LAB_DEFAULTS, LabOptionError, type LabOptions } from '../lab/plan.js';

export const LAB_USAGE = `usage: tortie lab <up|status|ping|down> [options]     (root)

A tortie cluster on this machine: one network namespace per node on a bridge underlay (198.19.0.0/16),
a real etcd on 127.0.0.1, 'tortie node run' in every node, workloads made by the CNI plugin.

  up       [--nodes N] [--mode mesh|rr] [--subnets 1|2] [--office-router bird|frr|none]
           [--ipip Never|Always|CrossSubnet] [--vxlan Never|Always|CrossSubnet] [--backend bird|vxlan]
           [--workloads N] [--name NAME]
           builds it and waits until every session is Established and every route is in every kernel
           (defaults: 3 nodes, mesh, 1 subnet, no office router, ipipMode Never, 1 workload per node).
           --subnets 2 puts the nodes on two bridges joined by a router namespace: with
           --office-router bird|frr (AS 65001) it is each node's only BGP peer and pods reach each other
           across subnets through it, unencapsulated; with none it only forwards, the nodes mesh, and
           --ipip Always|CrossSubnet carries pods across (needs a kernel with IPIP: --vm brings one),
           or --vxlan Always|CrossSubnet (vxlan.calico, UDP 4789: works on this machine's kernel);
           --backend vxlan runs the agents with CALICO_NETWORKING_BACKEND=vxlan (no BGP at all).
           --vm runs the same lab inside a QEMU VM booting Debian's kernel (scripts/vm/run of a tortie
           checkout), for a kernel without IPIP; see "In a VM" below.
  status   [--name NAME]  tortie node status of every node and the routes felix programmed
  ping     [--name NAME]  pings every workload from every workload; exit 1 unless all pass
  down     [--name NAME]  stops every process the lab started and removes its namespaces (safe twice)

State and logs: /var/run/tortie-lab/<name>/ (TORTIE_LAB_ROOT moves it). Inside a node:
  sudo ip netns exec <name>-n1 bash     TORTIE_CTL_SOCKET=/var/run/tortie-lab/<name>/node-1/tortie.ctl tortie node status

In a VM (up --vm): the VM runs in the background with the lab inside; status, ping and down (same
--name) reach into it through files in <lab dir>/vm/, and down powers it off. Its kernel is Debian's
(IPIP loads on demand), its files are this machine's (read-only, writes kept in its memory); it has no
network device, so nodes cannot be entered with ip netns exec from here, and everything is gone when
it stops: at down, or by itself after 4 hours (VM_TIMEOUT=seconds changes that). Software emulation
is slow: up takes minutes (TORTIE_LAB_SLOWDOWN, default 10 there, stretches the lab's deadlines).
`;

const STRING_OPTIONS = [
  'nodes',
  'mode',
  'subnets',
  'office-router',
  'ipip',
  'vxlan',
  'backend',
  'workloads',
  'name',
] as const;

function oneOf<T extends string>(option: string, value: string | undefined, allowed: readonly T[], fallback: T): T {
  if (value === undefined) return fallback;
  const found = allowed.find((a) => a.toLowerCase() === value.toLowerCase());
  if (found === undefined) throw new LabOptionError(`--${option} "${value}" is not one of ${allowed.join(', ')}`);
  return found;
}

function integer(option: string, value: string | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  if (!/^\d+$/.test(value)) throw new LabOptionError(`--${option} "${value}" is not a whole number`);
  return Number(value);
}

/** The options of `lab up` (and `--name` for the others). Throws LabOptionError naming the option. */
export function parseLabOptions(args: string[]): LabOptions {
  let values: Partial<Record<(typeof STRING_OPTIONS)[number], string>>;
  try {
    ({ values } = parseArgs({
      args,
      options: Object.fromEntries(STRING_OPTIONS.map((o) => [o, { type: 'string' as const }])),
      strict: true,
      allowPositionals: false,
    }));
  } catch (error) {
    throw new LabOptionError((error as Error).message);
  }
  const subnets = integer('subnets', values.subnets, LAB_DEFAULTS.subnets);
  if (subnets !== 1 && subnets !== 2) throw new LabOptionError(`--subnets ${subnets}: 1 or 2`);
  return {
    ...LAB_DEFAULTS,
    name: values.name ?? LAB_DEFAULTS.name,
    nodes: integer('nodes', values.nodes, LAB_DEFAULTS.nodes),
    mode: oneOf('mode', values.mode, ['mesh', 'rr'], LAB_DEFAULTS.mode),
    subnets,
    officeRouter: oneOf('office-router', values['office-router'], ['bird', 'frr', 'none'], LAB_DEFAULTS.officeRouter),
    ipipMode: oneOf('ipip', values.ipip, ['Never', 'Always', 'CrossSubnet'], LAB_DEFAULTS.ipipMode),
    vxlanMode: oneOf('vxlan', values.vxlan, ['Never', 'Always', 'CrossSubnet'], LAB_DEFAULTS.vxlanMode),
    backend: oneOf('backend', values.backend, ['bird', 'vxlan'], LAB_DEFAULTS.backend),
    workloadsPerNode: integer('workloads', values.workloads, LAB_DEFAULTS.workloadsPerNode),
  };
}

export async function runLabCommand(args: string[]): Promise<number> {
  const [sub, ...given] = args;
  // --vm: only for up; status, ping and down find a lab in a VM by its name.
  const inVm = given.includes('--vm');
  const rest = given.filter((a) => a !== '--vm');
  if (inVm && sub !== 'up') {
    process.stderr.write(
      `tortie lab ${sub}: --vm is an option of up only; ${sub} finds a lab running in a VM by its --name\n`,
    );
    return 2;
  }
  if (sub === 'vm-guest') return runVmGuest(rest);
  if (sub === undefined || sub === '--help' || sub === '-h' || sub === 'help') {
    process.stdout.write(LAB_USAGE);
    return sub === undefined ? 2 : 0;
  }
  if (sub === 'relay') {
    const { parseEndpoint, startRelay } = await import('../lab/relay.js');
    if (rest.length !== 2) {
      process.stderr.write('usage: tortie lab relay <tcp:IP:PORT|unix:/PATH> <tcp:IP:PORT|unix:/PATH>\n');
      return 2;
    }
    await startRelay(parseEndpoint(rest[0]!), parseEndpoint(rest[1]!));
    await new Promise<void>((resolve) => {
      process.once('SIGTERM', resolve);
      process.once('SIGINT', resolve);
    });
    return 0;
  }
  let options: LabOptions;
  try {
    options = parseLabOptions(rest);
  } catch (error) {
    process.stderr.write(`tortie lab ${sub}: ${(error as Error).message}\n`);
    return 2;
  }
  const lab = await import('../lab/lab.js');
  const io = { progress: (line: string) => process.stdout.write(`${line}\n`) };
  const vm = await import('../lab/vm.js');
  const vmState = vm.readVmState(lab.labDir(options.name));
  try {
    if (sub === 'up' && inVm) return await upInVm(options, lab.labDir(options.name), io);
    if (sub === 'up' && vmState !== null)
      throw new Error(
        `a lab named "${options.name}" runs in a VM already: 'tortie lab down --name ${options.name}' first`,
      );
    if (vmState !== null && (sub === 'status' || sub === 'ping' || sub === 'down')) {
      if (sub === 'down') {
        await vm.labDownInVm(vmState, lab.labDir(options.name), io);
        return 0;
      }
      if (sub === 'status')
        process.stdout.write(
          `lab "${vmState.name}" runs in a VM (pid ${vmState.pid}, up ${vm.vmAge(vmState)}, stops by itself ${Math.round(vmState.lifetimeS / 60)} min after its start)\n`,
        );
      const answer = await vm.askVm(vmState, sub);
      process.stdout.write(answer.output);
      return answer.exitCode;
    }
  } catch (error) {
    process.stderr.write(`tortie lab ${sub}: ${(error as Error).message}\n`);
    return 1;
  }
  const load = () => {
    const state = lab.readState(lab.labDir(options.name));
    if (state === null) throw new Error(`no lab named "${options.name}" is up ('tortie lab up' makes one)`);
    return state;
  };
  try {
    switch (sub) {
      case 'up': {
        const state = await lab.labUp(options, io);
        process.stdout.write(`\n${await lab.labStatus(state)}`);
        const matrix = await lab.labPing(state);
        process.stdout.write(`Ping matrix (every workload to every workload):\n${lab.formatPingMatrix(matrix)}`);
        process.stdout.write(
          `\nNext: tortie lab status | tortie lab ping | tortie lab down${options.name === LAB_DEFAULTS.name ? '' : ` --name ${options.name}`}\n`,
        );
        return matrix.failures.length === 0 ? 0 : 1;
      }
      case 'status': {
        const state = load();
        const missing = lab.missingNamespaces(state);
        if (missing.length > 0) process.stdout.write(`warning: namespaces ${missing.join(', ')} are gone\n`);
        process.stdout.write(await lab.labStatus(state));
        return 0;
      }
      case 'ping': {
        const matrix = await lab.labPing(load());
        process.stdout.write(lab.formatPingMatrix(matrix));
        return matrix.failures.length === 0 ? 0 : 1;
      }
      case 'down':
        await lab.labDown(options.name, io);
        return 0;
      default:
        process.stderr.write(`tortie lab: unknown subcommand "${sub}" (up, status, ping, down)\n`);
        return 2;
    }
  } catch (error) {
    process.stderr.write(`tortie lab ${sub}: ${(error as Error).message}\n`);
    return 1;
  }
}

/** `tortie lab up --vm`: starts the VM with the lab inside and prints what `up` prints, from inside. */
async function upInVm(
  options: LabOptions,
  labDirectory: string,
  io: { progress(line: string): void },
): Promise<number> {
  if (process.getuid?.() !== 0)
    throw new Error('tortie lab up --vm needs root (QEMU and its Debian packages are installed when missing)');
  const vm = await import('../lab/vm.js');
  const { mkdirSync } = await import('node:fs');
  mkdirSync(labDirectory, { recursive: true, mode: 0o755 });
  const result = await vm.labUpInVm(options, labDirectory, process.argv[1] ?? '', io);
  process.stdout.write(`\n${result.output}`);
  const named = options.name === LAB_DEFAULTS.name ? '' : ` --name ${options.name}`;
  if (result.ok) {
    process.stdout.write(
      `\nThe lab runs inside a VM (Debian's kernel), in the background. From here:\n  tortie lab status${named}    tortie lab ping${named}    tortie lab down${named} (powers the VM off)\n`,
    );
  } else {
    process.stdout.write(`\n'tortie lab down${named}' removes what is left (logs: ${labDirectory})\n`);
  }
  return result.exitCode;
}

/** Inside the VM (internal): `tortie lab vm-guest --share DIR <up options>` — see src/lab/vm.ts. */
async function runVmGuest(args: string[]): Promise<number> {
  const at = args.indexOf('--share');
  const share = at >= 0 ? args[at + 1] : undefined;
  if (share === undefined || !share.startsWith('/')) {
    process.stderr.write('usage (inside the VM): tortie lab vm-guest --share /ABSOLUTE/DIR <lab up options>\n');
    return 2;
  }
  const options = parseLabOptions([...args.slice(0, at), ...args.slice(at + 2)]);
  // The VM's /run is its own memory: the lab's state lives there, apart from the host's labs.
  process.env.TORTIE_LAB_ROOT ??= '/run/tortie-lab';
  const lab = await import('../lab/lab.js');
  const vm = await import('../lab/vm.js');
  let state: Awaited<ReturnType<typeof lab.labUp>> | null = null;
  const statusAndMatrix = async (): Promise<{ output: string; exitCode: number }> => {
    const matrix = await lab.labPing(state!);
    return {
      output: `${await lab.labStatus(state!)}Ping matrix (every workload to every workload):\n${lab.formatPingMatrix(matrix)}`,
      exitCode: matrix.failures.length === 0 ? 0 : 1,
    };
  };
  return vm.serveGuest(share, {
    up: async (progress) => {
      try {
        state = await lab.labUp(options, { progress });
        const { output, exitCode } = await statusAndMatrix();
        return { ok: true, output, exitCode };
      } catch (error) {
        await lab.labDown(options.name, { progress }).catch(() => undefined);
        return { ok: false, output: `tortie lab up (in the VM): ${(error as Error).message}\n`, exitCode: 1 };
      }
    },
    handle: async (command) => {
      if (command === 'status') return { output: await lab.labStatus(state!), exitCode: 0 };
      if (command === 'ping') {
        const matrix = await lab.labPing(state!);
        return { output: lab.formatPingMatrix(matrix), exitCode: matrix.failures.length === 0 ? 0 : 1 };
      }
      const lines: string[] = [];
      await lab.labDown(options.name, { progress: (line) => lines.push(line) });
      return { output: `${lines.join('\n')}\n`, exitCode: 0 };
    },
  });
}
