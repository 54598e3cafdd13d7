// The built `tortie` CLI as tests run it: a child process with only the environment given (plus PATH),
// stdin from a string, stdout/stderr collected, and a time bound after which the child is killed by PID.

import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const HERE = fileURLToPath(import.meta.url);
/** dist/src/cli/main.js of this checkout (from the sources or from their compiled copy under dist/). */
export const BUILT_CLI = `${HERE.slice(0, HERE.lastIndexOf('/test/')).replace(/\/dist$/, '')}/dist/src/cli/main.js`;

export interface CliRun {
  status: number | null;
  stdout: string;
  stderr: string;
  /** Wall time from spawn to exit. */
  ms: number;
}

export function runTortie(
  env: Record<string, string>,
  args: string[],
  options: { stdin?: string; timeoutMs?: number } = {},
): Promise<CliRun> {
  const started = Date.now();
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BUILT_CLI, ...args], {
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin', ...env },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 20_000);
    child.on('error', reject);
    child.on('close', (status) => {
      clearTimeout(timer);
      resolve({ status, stdout, stderr, ms: Date.now() - started });
    });
    child.stdin.on('error', () => undefined); // a CLI that exits before reading its input
    child.stdin.end(options.stdin ?? '');
  });
}
