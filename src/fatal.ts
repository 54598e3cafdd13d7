// Process-wide containment for the long-running commands (`tortie node run`, `tortie bgp speaker`).
//
// An error nobody caught — a rejected promise nobody awaited, an exception thrown from a timer or an
// event handler — means the process is in a state nobody planned for. Continuing silently is the worst
// outcome (a half-dead agent that still answers its probes); dying at once loses the reason. So: log it
// (pino, level fatal), run the command's crash path, exit non-zero. The node agent's crash path is its
// graceful stop: BGP connections closed without a NOTIFICATION (to a peer that is a graceful-restart
// helper this looks like a crash, so it keeps our routes as stale, RFC 4724), kernel routes left in
// place, control socket removed. It is NOT the SIGTERM path, which sends Cease and makes peers drop our
// routes at once. The speaker's crash path is the exit itself: its sockets close with no Cease sent.
//
// Bounded: a crash path that does not finish within `timeoutMs`, or a second error while it runs, ends
// the process at once.

import type { Logger } from './log.js';

/** What a command registers so a fatal error can shut it down (see header). */
export interface CrashPath {
  log: Pick<Logger, 'fatal'>;
  shutdown(): Promise<void>;
}

/** The exit status after a fatal error (1: a runtime failure, as for every tortie command). */
export const FATAL_EXIT_STATUS = 1;

let registered: CrashPath | null = null;

/** The running command's crash path; null: none (the fatal error is logged and the process exits). */
export function setCrashPath(path: CrashPath | null): void {
  registered = path;
}

export interface FatalHandlerOptions {
  crashPath?: () => CrashPath | null;
  exit?: (status: number) => void;
  /** Where the error goes when no crash path (and so no logger) is registered yet. Default: stderr. */
  write?: (line: string) => void;
  timeoutMs?: number;
}

function describe(error: unknown): { message: string; stack?: string } {
  if (error instanceof Error) return { message: error.message, ...(error.stack ? { stack: error.stack } : {}) };
  return { message: String(error) };
}

/**
 * The handler for 'uncaughtException' and 'unhandledRejection' (exported for tests; `installFatalHandlers`
 * is what the CLI uses).
 */
export function createFatalHandler(options: FatalHandlerOptions = {}): (error: unknown, origin: string) => void {
  const crashPath = options.crashPath ?? (() => registered);
  const exit = options.exit ?? ((status: number) => process.exit(status));
  const write = options.write ?? ((line: string) => void process.stderr.write(line));
  const timeoutMs = options.timeoutMs ?? 10_000;
  let crashing = false;
  return (error, origin) => {
    const path = crashPath();
    const { message, stack } = describe(error);
    if (crashing) {
      // A second error while shutting down: do not wait for a shutdown that may be what is failing.
      if (path)
        path.log.fatal({ err: message, origin }, 'another unhandled error while shutting down after one; exiting now');
      else write(`tortie: another unhandled error while shutting down (${origin}): ${message}\n`);
      exit(FATAL_EXIT_STATUS);
      return;
    }
    crashing = true;
    if (path === null) {
      write(`tortie: unhandled error (${origin}), exiting: ${stack ?? message}\n`);
      exit(FATAL_EXIT_STATUS);
      return;
    }
    path.log.fatal(
      { err: message, stack, origin },
      'unhandled error: shutting down without Cease (peers keep our routes), kernel routes kept',
    );
    const timer = setTimeout(() => {
      path.log.fatal({ timeoutMs }, 'shutdown after an unhandled error did not finish in time; exiting now');
      exit(FATAL_EXIT_STATUS);
    }, timeoutMs);
    void Promise.resolve()
      .then(() => path.shutdown())
      .catch((failure: unknown) =>
        path.log.fatal({ err: describe(failure).message }, 'shutdown after an unhandled error failed'),
      )
      .finally(() => {
        clearTimeout(timer);
        exit(FATAL_EXIT_STATUS);
      });
  };
}

/** Installs the handler for this process (once; a second call is ignored). */
let installed = false;
export function installFatalHandlers(options: FatalHandlerOptions = {}): void {
  if (installed) return;
  installed = true;
  const handle = createFatalHandler(options);
  process.on('uncaughtException', (error, origin) => handle(error, origin));
  process.on('unhandledRejection', (reason) => handle(reason, 'unhandledRejection'));
}
