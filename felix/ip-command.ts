// The real `ip` for ipip/'s tunl0 keeper (ipip/tunl0.ts `IpCommand`), through the one runner (command.ts):
// ipip/ runs no program itself (it may not import felix/), so felix — or a test — hands it this.

import type { IpCommand } from '../ipip/tunl0.js';
import { runCommand } from './command.js';

export interface IpCommandOptions {
  /** Run inside this network namespace (`ip -n <netns>`); the host's own when absent. */
  netns?: string;
  /** The `ip` binary (default `ip` from PATH). */
  ipPath?: string;
  /** A run taking longer than this is killed and reported (default 5000 ms). */
  timeoutMs?: number;
}

const NETNS_NAME = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$/;

/** `ip <args>` (with `-n <netns>`), each run bounded in time and output; a non-zero exit is an answer. */
export function ipCommand(options: IpCommandOptions = {}): IpCommand {
  if (options.netns !== undefined && !NETNS_NAME.test(options.netns)) {
    throw new Error(
      `netns "${options.netns}" is not a network namespace name (letters, digits, "_", "." and "-", at most 64, not starting with "-" or ".")`,
    );
  }
  const prefix = options.netns !== undefined ? ['-n', options.netns] : [];
  const command = options.ipPath ?? 'ip';
  const timeoutMs = options.timeoutMs ?? 5000;
  return async (args) => {
    const result = await runCommand({
      command,
      args: [...prefix, ...args],
      timeoutMs,
      maxOutputBytes: 16 * 1024 * 1024,
    });
    // A signal other than the runner's own kill (which rejects) counts as a failed run: status 128 + n is
    // what a shell would say; any non-zero code sends ipip's callers to their error table.
    return { code: result.code ?? 128, stdout: result.stdout.toString('utf8'), stderr: result.stderr };
  };
}
