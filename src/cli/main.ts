#!/usr/bin/env node
// The `tortie` command: dispatches to subcommands. Exit codes: 0 ok, 1 runtime failure, 2 usage error.

// No value imports up here: a container runtime runs `tortie` as its CNI plugin for every pod, and every
// module loaded before main() sees CNI_COMMAND is start-up time added to each pod's ADD.
import type { Datastore } from '../datastore/types.js';

const USAGE = `usage: tortie <command> [options]

commands:
  bgp speaker     run a standalone BGP-4 speaker (peers, announced routes, JSON events)
  apply -f FILE   create or update projectcalico.org/v3 resources (also: create, replace, delete)
  get KIND [NAME] print resources (-o table|wide|yaml|json)
  ipam show       IP pool usage (--show-blocks: blocks with node affinity)
  ipam check      IPAM consistency: leaked or unallocated IPs, state of deleted nodes (exit 1: problems)
  node run        the node agent (configured by environment variables; 'tortie node --help')
  node status     BGP peers of the local agent (-o table|json); node routes: its Loc-RIB
  cni install     install the CNI plugin and its conflist ('tortie cni --help'); with CNI_COMMAND
                  set and no arguments, tortie is the CNI plugin (see src/cni/index.ts)
  lab up          a cluster on this machine in network namespaces (also: status, ping, down; root)
  policy explain  would NetworkPolicy allow a connection, and which policy and rule decide it
  version         print the version

Run 'tortie <command> --help' for a command's options.
`;

async function main(argv: string[]): Promise<number> {
  // A container runtime runs the plugin with CNI_COMMAND set and no arguments. Checked first, and the
  // plugin's module loaded on its own: Node's start-up and module loading are part of every pod's ADD.
  if (argv.length === 0 && process.env.CNI_COMMAND !== undefined && process.env.CNI_COMMAND !== '') {
    // The thin client first (src/cni/client.ts: the agent does the work when it runs; one small module).
    const { cniClientMain } = await import('../cni/client.js');
    return cniClientMain();
  }
  const [command, sub, ...rest] = argv;
  if (command === undefined || command === '--help' || command === '-h' || command === 'help') {
    process.stdout.write(USAGE);
    return command === undefined ? 2 : 0;
  }
  if (command === 'version' || command === '--version') {
    const { readFile } = await import('node:fs/promises');
    const pkg = JSON.parse(await readFile(new URL('../../../package.json', import.meta.url), 'utf8')) as {
      version: string;
    };
    process.stdout.write(`tortie ${pkg.version}\n`);
    return 0;
  }
  // The long-running commands: an error nobody caught is logged and shuts the command down through its
  // crash path (src/fatal.ts), never continues silently and never ends the process without a word.
  if ((command === 'node' && sub === 'run') || (command === 'bgp' && sub === 'speaker')) {
    const { installFatalHandlers } = await import('../fatal.js');
    installFatalHandlers();
  }
  const { SPEAKER_USAGE, parseSpeakerArgs } = await import('./speaker-args.js');
  const { UsageError } = await import('./usage-error.js');
  if (command === 'bgp' && sub === 'speaker') {
    if (rest.includes('--help') || rest.includes('-h')) {
      process.stdout.write(SPEAKER_USAGE);
      return 0;
    }
    const options = parseSpeakerArgs(rest);
    const { runSpeaker } = await import('./speaker-command.js');
    return runSpeaker(options);
  }
  if (
    command === 'apply' ||
    command === 'create' ||
    command === 'replace' ||
    command === 'delete' ||
    command === 'get'
  ) {
    const args = sub === undefined ? [] : [sub, ...rest];
    const { RESOURCES_USAGE, parseResourceArgs, runResourceCommand } = await import('./resources-command.js');
    if (args.includes('--help') || args.includes('-h')) {
      process.stdout.write(RESOURCES_USAGE);
      return 0;
    }
    const parsed = parseResourceArgs(command, args);
    return runResourceCommand(parsed, {
      out: (text) => process.stdout.write(text),
      readInput: readInput,
      warn: (text: string) => process.stderr.write(text),
      openDatastore: () => openConfiguredDatastore(parsed.config),
    });
  }
  if (command === 'node') {
    const { runNodeCommand } = await import('./node-command.js');
    return runNodeCommand(sub === undefined ? [] : [sub, ...rest], process.env);
  }
  if (command === 'cni') {
    const { runCniCommand } = await import('../cni/install.js');
    return runCniCommand(sub === undefined ? [] : [sub, ...rest], process.env);
  }
  if (command === 'lab') {
    const { runLabCommand } = await import('./lab-command.js');
    return runLabCommand(sub === undefined ? [] : [sub, ...rest]);
  }
  if (command === 'policy') {
    const args = sub === undefined ? [] : [sub, ...rest];
    const { POLICY_USAGE, parsePolicyArgs, runPolicyExplain } = await import('./policy-command.js');
    if (args.includes('--help') || args.includes('-h')) {
      process.stdout.write(POLICY_USAGE);
      return 0;
    }
    const parsed = parsePolicyArgs(args);
    return runPolicyExplain(parsed, {
      out: (text) => process.stdout.write(text),
      openDatastore: () => openConfiguredDatastore(parsed.config),
    });
  }
  if (command === 'ipam') {
    const args = sub === undefined ? [] : [sub, ...rest];
    const { IPAM_USAGE, parseIpamCommand, runIpamCheck, runIpamShow } = await import('./ipam-command.js');
    if (args.includes('--help') || args.includes('-h')) {
      process.stdout.write(IPAM_USAGE);
      return 0;
    }
    const parsed = parseIpamCommand(args);
    const out = (text: string): void => void process.stdout.write(text);
    if (parsed.sub === 'check') {
      return runIpamCheck(parsed, {
        out,
        openDatastore: () => openConfiguredDatastore(parsed.config),
        check: async (ds) => {
          const { checkIpam, readCheckSnapshot } = await import('../ipam/check.js');
          return checkIpam(await readCheckSnapshot(ds));
        },
        writeFile: async (path, text) => {
          const { writeFile } = await import('node:fs/promises');
          await writeFile(path, text, 'utf8');
        },
        now: () => new Date(),
      });
    }
    return runIpamShow(parsed, {
      out,
      openDatastore: () => openConfiguredDatastore(parsed.config),
      usage: async (ds) => {
        const { Ipam } = await import('../ipam/index.js');
        return new Ipam(ds).usage();
      },
    });
  }
  throw new UsageError(`unknown command "${[command, sub].filter(Boolean).join(' ')}"\n\n${USAGE}`);
}

/** The datastore named by --config, /etc/tortie/tortie.cfg or the environment (src/datastore/index.ts). */
async function openConfiguredDatastore(configPath: string | undefined): Promise<Datastore> {
  // The etcd client's TLS sets SNI to the endpoint's IP address, which Node reports on stderr as a
  // deprecation (DEP0123) on every run; that says nothing to a person using the CLI, so hide deprecations.
  process.noDeprecation = true;
  const { loadDatastoreConfig, openDatastore } = await import('../datastore/index.js');
  return openDatastore(await loadDatastoreConfig(process.env, configPath));
}

/** A file's text, or all of standard input for "-". */
async function readInput(file: string): Promise<string> {
  if (file !== '-') {
    const { readFile } = await import('node:fs/promises');
    return readFile(file, 'utf8');
  }
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

/**
 * A command has finished: if a client library still holds a socket or timer open (an etcd client
 * reconnecting to a dead endpoint), exit anyway instead of hanging. The timer is unref'd, so it only fires
 * when something else keeps the process alive.
 */
function exitSoon(): void {
  setTimeout(() => process.exit(), 2000).unref();
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
    exitSoon();
  },
  async (error: unknown) => {
    const { UsageError } = await import('./usage-error.js');
    if (error instanceof UsageError) {
      process.stderr.write(`tortie: ${error.message}\n`);
      process.exitCode = 2;
      return;
    }
    process.stderr.write(`tortie: ${error instanceof Error ? error.message : String(error)}\n`);
    process.exitCode = 1;
    exitSoon();
  },
);
