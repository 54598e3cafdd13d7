// The plugin's front door: what a runtime's `tortie` process runs first when CNI_COMMAND is set
// (src/cli/main.ts hands over to cniClientMain). For ADD, DEL and CHECK it asks the node agent to do the
// work over the agent's CNI socket (src/agent/cni-server.ts), where a warm datastore connection and the
// plugin's modules are already loaded; when the agent is not there (no socket, nobody accepting), does not
// accept within a short bound, says "do it yourself", or dies before answering, it loads ./main.ts and does
// the whole work in this process, exactly as before — pods still start while the agent restarts.
//
// Start-up time is every pod's latency: this file imports only node:net and node:fs (no project module),
// so the agent path costs Node's start-up plus this one file. Measured (test/bench/README.md, "cni").
//
// Protocol (one request per connection, newline-delimited JSON):
//   plugin → agent  {"env":{"CNI_COMMAND":"ADD",...},"stdin":"<the network configuration>"}\n
//   agent → plugin  {"accepted":true}\n           then {"exitCode":0,"stdout":"...","log":"...","logFile":"..."}\n
//                or {"fallback":"<why>"}\n         (the plugin does the work itself)
// The agent answers the first line at once (before any datastore call); only then does the plugin wait
// for the result, for as long as the agent's own bounds allow. A connection that closes without a result
// means the agent died mid-command: the plugin redoes the command itself, which converges (ADD finds its
// IPAM handle's address, DEL tolerates what is gone; ./plugin.ts).
//
// Environment:
//   TORTIE_CNI_SOCKET          the agent's CNI socket (default /var/run/tortie/cni.sock); `off` = never ask
//   TORTIE_CNI_AGENT_TIMEOUT_MS  how long to wait for the agent to accept (default 300)

import net from 'node:net';
import { appendFileSync } from 'node:fs';

/** Where the agent serves the plugin (beside the control socket and the node name file). */
export const DEFAULT_CNI_SOCKET = '/var/run/tortie/cni.sock';
/** The commands the agent does; VERSION, STATUS and GC always run in the plugin's own process. */
export const AGENT_COMMANDS: readonly string[] = ['ADD', 'DEL', 'CHECK'];
/** The environment the agent gets from the plugin: the spec's CNI_* and what ./main.ts reads. */
export const FORWARDED_ENV: readonly string[] = [
  'CNI_COMMAND',
  'CNI_CONTAINERID',
  'CNI_NETNS',
  'CNI_IFNAME',
  'CNI_ARGS',
  'CNI_PATH',
  'NODENAME',
  'TORTIE_CNI_HOST_NETNS',
  'TORTIE_DATASTORE_TIMEOUT_MS',
];
/** A request line longer than this is refused by the agent (a configuration with a large prevResult is ~10 kB). */
export const MAX_CNI_REQUEST_BYTES = 1024 * 1024;
/** An answer larger than this is not read (results are ~1 kB; the log at debug level a few kB). */
export const MAX_CNI_ANSWER_BYTES = 4 * 1024 * 1024;
/** How long the agent has to accept a request (connect, write, its first line). */
export const DEFAULT_ACCEPT_TIMEOUT_MS = 300;
/** How long an accepted request may take: above the agent's own bound (src/agent/cni-server.ts). */
export const ANSWER_TIMEOUT_MS = 150_000;

/** The agent's final line. */
export interface AgentAnswer {
  exitCode: number;
  stdout: string;
  /** The plugin's log lines, already filtered by `log_level`. */
  log: string;
  /** `log_file_path` of the configuration: where `log` goes instead of stderr. */
  logFile?: string;
}

export type AgentOutcome =
  | ({ kind: 'answer' } & AgentAnswer)
  /** Do it here. `accepted`: the agent had taken the request (it died or broke off mid-command). */
  | { kind: 'fallback'; reason: string; accepted: boolean };

/** The socket path from TORTIE_CNI_SOCKET; null when set to `off`. */
export function cniSocketPath(env: Readonly<Record<string, string | undefined>>): string | null {
  const raw = (env.TORTIE_CNI_SOCKET ?? '').trim();
  if (raw === 'off') return null;
  return raw === '' ? DEFAULT_CNI_SOCKET : raw;
}

/** The request line for `env` and `stdin` (pure). */
export function encodeCniRequest(env: Readonly<Record<string, string | undefined>>, stdin: string): string {
  const forwarded: Record<string, string> = {};
  for (const key of FORWARDED_ENV) {
    const value = env[key];
    if (value !== undefined) forwarded[key] = value;
  }
  return `${JSON.stringify({ env: forwarded, stdin })}\n`;
}

/** The agent's final line → an answer, or null when it is not one. */
export function parseAgentAnswer(line: string): AgentAnswer | null {
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch {
    return null;
  }
  if (typeof value !== 'object' || value === null) return null;
  const { exitCode, stdout, log, logFile } = value as Record<string, unknown>;
  if (typeof exitCode !== 'number' || !Number.isInteger(exitCode) || exitCode < 0 || exitCode > 255) return null;
  if (typeof stdout !== 'string' || typeof log !== 'string') return null;
  if (logFile !== undefined && typeof logFile !== 'string') return null;
  return { exitCode, stdout, log, ...(logFile !== undefined ? { logFile } : {}) };
}

/**
 * Sends one request to the agent on `path`. Never rejects: anything but a complete answer is a fallback
 * saying why. After `acceptTimeoutMs` without the agent's first line the plugin gives up on it (a hung
 * agent must not hold a pod); after that, it waits `answerTimeoutMs` for the result.
 */
export function askAgent(
  path: string,
  request: string,
  timeouts: { acceptTimeoutMs: number; answerTimeoutMs: number },
): Promise<AgentOutcome> {
  return new Promise((resolve) => {
    let accepted = false;
    let settled = false;
    let received = '';
    const socket = net.createConnection(path);
    const finish = (outcome: AgentOutcome): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      resolve(outcome);
    };
    const fallback = (reason: string): void => finish({ kind: 'fallback', reason, accepted });
    let timer = setTimeout(
      () => fallback(`the agent on ${path} did not accept within ${timeouts.acceptTimeoutMs} ms`),
      timeouts.acceptTimeoutMs,
    );
    socket.setEncoding('utf8');
    socket.once('connect', () => socket.write(request));
    socket.on('error', (error: NodeJS.ErrnoException) =>
      fallback(`the agent's socket ${path}: ${error.code ?? error.message}`),
    );
    socket.on('close', () => fallback(`the agent on ${path} closed the connection without an answer`));
    socket.on('data', (chunk: string) => {
      received += chunk;
      if (received.length > MAX_CNI_ANSWER_BYTES) {
        fallback(`the agent on ${path} sent more than ${MAX_CNI_ANSWER_BYTES} bytes`);
        return;
      }
      for (let newline = received.indexOf('\n'); newline >= 0 && !settled; newline = received.indexOf('\n')) {
        const line = received.slice(0, newline);
        received = received.slice(newline + 1);
        if (!accepted) {
          let first: { accepted?: unknown; fallback?: unknown } = {};
          try {
            first = JSON.parse(line) as typeof first;
          } catch {
            // not JSON: a fallback below
          }
          if (first.accepted === true) {
            accepted = true;
            clearTimeout(timer);
            timer = setTimeout(
              () =>
                fallback(`the agent on ${path} took the request but gave no answer in ${timeouts.answerTimeoutMs} ms`),
              timeouts.answerTimeoutMs,
            );
          } else
            fallback(
              typeof first.fallback === 'string'
                ? first.fallback
                : `the agent on ${path} answered ${line.slice(0, 80)}`,
            );
          continue;
        }
        const answer = parseAgentAnswer(line);
        if (answer === null) fallback(`the agent on ${path} answered something that is not a result`);
        else finish({ kind: 'answer', ...answer });
      }
    });
  });
}

/** All of stdin (empty when it is a terminal). */
async function readStdin(): Promise<string> {
  if (process.stdin.isTTY) return '';
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

function acceptTimeout(env: Readonly<Record<string, string | undefined>>): number {
  const raw = env.TORTIE_CNI_AGENT_TIMEOUT_MS;
  return raw !== undefined && /^\d{1,6}$/.test(raw) ? Number(raw) : DEFAULT_ACCEPT_TIMEOUT_MS;
}

function write(stream: NodeJS.WriteStream, text: string): Promise<void> {
  return text === '' ? Promise.resolve() : new Promise((resolve) => stream.write(text, () => resolve()));
}

/** Runs the plugin for this process (agent first, then itself). Resolves to the exit code. */
export async function cniClientMain(env: NodeJS.ProcessEnv = process.env): Promise<number> {
  const stdin = await readStdin();
  const path = cniSocketPath(env);
  const request = encodeCniRequest(env, stdin);
  if (
    path !== null &&
    AGENT_COMMANDS.includes(env.CNI_COMMAND ?? '') &&
    Buffer.byteLength(request) <= MAX_CNI_REQUEST_BYTES
  ) {
    const outcome = await askAgent(path, request, {
      acceptTimeoutMs: acceptTimeout(env),
      answerTimeoutMs: ANSWER_TIMEOUT_MS,
    });
    if (outcome.kind === 'answer') {
      if (outcome.logFile !== undefined) {
        try {
          appendFileSync(outcome.logFile, outcome.log);
        } catch {
          // a log file that cannot be written must not fail the pod's network setup
        }
      } else await write(process.stderr, outcome.log);
      await write(process.stdout, outcome.stdout);
      return outcome.exitCode;
    }
    // The agent took the request and then broke off (it died, or was stopped): say so, then redo it here.
    if (outcome.accepted) {
      const line = {
        time: new Date().toISOString(),
        level: 'warning',
        plugin: 'tortie',
        pid: process.pid,
        msg: `${outcome.reason}; doing ${env.CNI_COMMAND} in the plugin`,
      };
      await write(process.stderr, `${JSON.stringify(line)}\n`);
    }
  }
  const { cniMain } = await import('./main.js');
  return cniMain(env, stdin);
}
