// Structured logging (pino). One root logger per process; components take a child with their own fields
// (`{ component: 'bgp', peer: '127.0.0.2' }`). Level from TORTIE_LOG_LEVEL (trace..fatal, default info).

import pino, { type Logger } from 'pino';

export type { Logger } from 'pino';

const LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'];

export function levelFromEnv(env: NodeJS.ProcessEnv = process.env): string {
  const wanted = (env.TORTIE_LOG_LEVEL ?? 'info').toLowerCase();
  if (!LEVELS.includes(wanted)) {
    process.stderr.write(
      `tortie: TORTIE_LOG_LEVEL="${env.TORTIE_LOG_LEVEL}" is not one of ${LEVELS.join(', ')}; using info\n`,
    );
    return 'info';
  }
  return wanted;
}

/** A logger writing JSON lines to `destination` (default stderr, so stdout stays free for command output). */
export function createLogger(options: { level?: string; destination?: number } = {}): Logger {
  return pino(
    { level: options.level ?? levelFromEnv(), base: { pid: process.pid }, timestamp: pino.stdTimeFunctions.isoTime },
    pino.destination({ fd: options.destination ?? 2, sync: true }),
  );
}
