// The agent's two servers: the control socket (`tortie node status|routes|stop`, ./control.ts) and the
// kubelet's probes and metrics (./health.ts, off with TORTIE_HEALTH_PORT=0). Started last, after the first
// pass, closed last; each may be replaced (tests) or left out (null).

import type { Clock } from '../../bgp/index.js';
import type { Logger } from '../log.js';
import type { AgentConfig } from './config.js';
import type { AgentMetrics } from './metrics.js';
import type { AgentStatus, Readiness, RouteRow } from './types.js';

/** What the control socket answers from. */
export interface ControlAnswers {
  status(): AgentStatus;
  routes(): RouteRow[];
  stop(graceful: boolean): void;
}

export type ServeControl = (
  path: string,
  provider: ControlAnswers,
  options?: { log?: Logger },
) => Promise<{ close(): Promise<void> }>;
export type StartHealth = (options: {
  port: number;
  readiness(): Readiness;
  liveness(): boolean;
  metrics: AgentMetrics;
  log?: Logger;
  clock?: Clock;
}) => Promise<{ port: number; close(): Promise<void> }>;

export interface ServerOptions {
  config: Pick<AgentConfig, 'ctlSocket' | 'healthPort'>;
  log: Logger;
  metrics: AgentMetrics;
  /** The agent's clock: the health server's reply bound and linger run on it. */
  clock: Clock;
  /** Default: ./control.ts serveControl; null = none. */
  serveControl?: ServeControl | null | undefined;
  /** Default: ./health.ts startHealthServer; null = none. */
  startHealth?: StartHealth | null | undefined;
}

export class AgentServers {
  private control: { close(): Promise<void> } | null = null;
  private health: { port: number; close(): Promise<void> } | null = null;

  constructor(private readonly options: ServerOptions) {}

  /** Starts both; one that started stays open for close() when the other fails. */
  async start(answers: ControlAnswers, probes: { readiness(): Readiness; liveness(): boolean }): Promise<void> {
    const { config, log } = this.options;
    const serve =
      this.options.serveControl === undefined ? (await import('./control.js')).serveControl : this.options.serveControl;
    if (serve) this.control = await serve(config.ctlSocket, answers, { log: log.child({ component: 'control' }) });
    const startHealth =
      this.options.startHealth === undefined
        ? (await import('./health.js')).startHealthServer
        : this.options.startHealth;
    if (startHealth && config.healthPort !== 0) {
      this.health = await startHealth({
        port: config.healthPort,
        readiness: probes.readiness,
        liveness: probes.liveness,
        metrics: this.options.metrics,
        log: log.child({ component: 'health' }),
        clock: this.options.clock,
      });
      log.info({ port: this.health.port }, 'health server listening');
    }
  }

  async close(): Promise<void> {
    await this.control?.close().catch(() => undefined);
    await this.health?.close().catch(() => undefined);
    this.control = null;
    this.health = null;
  }
}
