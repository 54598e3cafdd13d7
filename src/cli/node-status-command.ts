// `tortie node status [-o table|json]` and `tortie node routes [-o table|json]`: ask the local agent over its
// control socket (TORTIE_CTL_SOCKET, default /var/run/tortie/tortie.ctl) and print its answer — the table
// in calicoctl's layout (src/agent/status-format.ts) or the JSON snapshot as the agent sent it.
// Exit status: 0 printed, 1 no agent answered (the message names the socket path) or it answered an
// error, 2 bad flags (the message names them). src/cli/node-command.ts dispatches here.

import { parseArgs } from 'node:util';
import { ControlError, queryControl } from '../agent/control.js';
import { formatNodeStatus, formatRoutes } from '../agent/status-format.js';
import { DEFAULT_CTL_SOCKET, type ControlRequest, type ControlResponse } from '../agent/types.js';

export const NODE_STATUS_USAGE = `usage: tortie node status [-o table|json]
       tortie node routes [-o table|json]

  status               the agent's BGP peers, as calicoctl node status shows them
  routes               the Loc-RIB: prefix, next hop, AS path, from which peer, best or not, in the kernel or not;
                       routes import protection refused say "refused: <reason>" in BEST
  -o, --output FORMAT  table (default) or json
  --timeout MS         how long to wait for the agent (default 2000)

The agent is reached on the Unix socket TORTIE_CTL_SOCKET (default ${DEFAULT_CTL_SOCKET}); it is mode 0600,
so run this as root.
`;

export interface CommandIo {
  out(text: string): void;
  err(text: string): void;
  /** The client; tests may replace it. */
  query?: typeof queryControl;
}

const processIo: CommandIo = {
  out: (text) => process.stdout.write(text),
  err: (text) => process.stderr.write(text),
};

interface NodeQueryArgs {
  output: 'table' | 'json';
  timeoutMs: number;
  help: boolean;
}

class FlagError extends Error {}

function parseNodeQueryArgs(command: string, argv: string[]): NodeQueryArgs {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      strict: true,
      allowPositionals: false,
      options: {
        output: { type: 'string', short: 'o' },
        timeout: { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
    }));
  } catch (error) {
    throw new FlagError(`node ${command}: ${error instanceof Error ? error.message : String(error)}`);
  }
  const output = values.output ?? 'table';
  if (output !== 'table' && output !== 'json')
    throw new FlagError(`node ${command}: -o "${output}" is not an output format; use table or json`);
  const timeoutText = values.timeout ?? '2000';
  const timeoutMs = Number(timeoutText);
  if (!/^[1-9][0-9]{0,6}$/.test(timeoutText))
    throw new FlagError(
      `node ${command}: --timeout "${timeoutText}" is not a whole number of milliseconds from 1 to 9999999`,
    );
  return { output, timeoutMs, help: values.help === true };
}

/** The socket path: TORTIE_CTL_SOCKET when set and non-empty, else the default. */
export function controlSocketPath(env: Record<string, string | undefined>): string {
  const fromEnv = env.TORTIE_CTL_SOCKET?.trim();
  return fromEnv ? fromEnv : DEFAULT_CTL_SOCKET;
}

/** Shared by both commands: parse flags, query, print, map failures to exit codes. */
async function runQuery(
  command: 'status' | 'routes',
  argv: string[],
  env: Record<string, string | undefined>,
  io: CommandIo,
  print: (response: ControlResponse, output: 'table' | 'json') => string | null,
): Promise<number> {
  let args: NodeQueryArgs;
  try {
    args = parseNodeQueryArgs(command, argv);
  } catch (error) {
    io.err(`tortie: ${(error as Error).message}\n\n${NODE_STATUS_USAGE}`);
    return 2;
  }
  if (args.help) {
    io.out(NODE_STATUS_USAGE);
    return 0;
  }
  const path = controlSocketPath(env);
  const request: ControlRequest = { command };
  let response: ControlResponse;
  try {
    response = await (io.query ?? queryControl)(path, request, args.timeoutMs);
  } catch (error) {
    const message =
      error instanceof ControlError ? error.message : `cannot reach the tortie agent on ${path}: ${String(error)}`;
    io.err(`tortie: ${message}\n`);
    return 1;
  }
  if (!response.ok) {
    io.err(`tortie: the agent on ${path} refused "${command}": ${response.error}\n`);
    return 1;
  }
  const text = print(response, args.output);
  if (text === null) {
    io.err(`tortie: the agent on ${path} answered "${command}" without the expected ${command} field\n`);
    return 1;
  }
  io.out(text);
  return 0;
}

/** `tortie node status [-o table|json]` (argv after "status"). */
export function runNodeStatus(
  argv: string[],
  env: Record<string, string | undefined> = process.env,
  io: CommandIo = processIo,
): Promise<number> {
  return runQuery('status', argv, env, io, (response, output) => {
    if (!('status' in response)) return null;
    return output === 'json' ? `${JSON.stringify(response.status, null, 2)}\n` : formatNodeStatus(response.status);
  });
}

/** `tortie node routes [-o table|json]` (argv after "routes"). */
export function runNodeRoutes(
  argv: string[],
  env: Record<string, string | undefined> = process.env,
  io: CommandIo = processIo,
): Promise<number> {
  return runQuery('routes', argv, env, io, (response, output) => {
    if (!('routes' in response)) return null;
    return output === 'json' ? `${JSON.stringify(response.routes, null, 2)}\n` : formatRoutes(response.routes);
  });
}

export const NODE_STOP_USAGE = `usage: tortie node stop [--graceful] [--timeout MS]

Asks the local agent to stop and waits (at most --timeout, default 20000 ms) until it has. Without
--graceful it ends its BGP sessions with Cease, so peers withdraw its routes at once; with --graceful
(the DaemonSet's preStop hook) it closes them without a NOTIFICATION, so peers keep its routes as stale
for the restart time it offered (graceful restart, RFC 4724) while a new agent starts. Its kernel routes
stay either way. Exit 0 when the agent has stopped (or was not running), 1 otherwise.
`;

/** `tortie node stop [--graceful] [--timeout MS]` (argv after "stop"). */
export async function runNodeStop(
  argv: string[],
  env: Record<string, string | undefined> = process.env,
  io: CommandIo = processIo,
): Promise<number> {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      strict: true,
      allowPositionals: false,
      options: { graceful: { type: 'boolean' }, timeout: { type: 'string' }, help: { type: 'boolean', short: 'h' } },
    }));
  } catch (error) {
    io.err(`tortie: node stop: ${(error as Error).message}\n\n${NODE_STOP_USAGE}`);
    return 2;
  }
  if (values.help === true) {
    io.out(NODE_STOP_USAGE);
    return 0;
  }
  const timeoutText = values.timeout ?? '20000';
  if (!/^[1-9][0-9]{0,6}$/.test(timeoutText)) {
    io.err(`tortie: node stop: --timeout "${timeoutText}" is not a whole number of milliseconds from 1 to 9999999\n`);
    return 2;
  }
  const deadline = Date.now() + Number(timeoutText);
  const path = controlSocketPath(env);
  const query = io.query ?? queryControl;
  const graceful = values.graceful === true;
  let response: ControlResponse;
  try {
    response = await query(path, { command: 'stop', graceful }, Math.min(5000, Number(timeoutText)));
  } catch (error) {
    const code = error instanceof ControlError ? error.code : undefined;
    if (code === 'ENOENT' || code === 'ECONNREFUSED') {
      io.out(`no tortie agent is running on ${path}: nothing to stop\n`);
      return 0;
    }
    io.err(`tortie: ${error instanceof Error ? error.message : String(error)}\n`);
    return 1;
  }
  if (!response.ok) {
    io.err(`tortie: the agent on ${path} refused "stop": ${response.error}\n`);
    return 1;
  }
  // Stopped = the control socket no longer answers (the agent closes it last).
  for (let i = 0; i < 100_000 && Date.now() < deadline; i++) {
    try {
      await query(path, { command: 'status' }, 1000);
    } catch {
      io.out(
        `the tortie agent on ${path} has stopped${graceful ? ' gracefully: peers keep its routes while it restarts' : ''}\n`,
      );
      return 0;
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  io.err(`tortie: the agent on ${path} was asked to stop but still answers after ${timeoutText} ms\n`);
  return 1;
}
