// The agent's NetworkPolicy enforcer: from the cache's NetworkPolicies, Namespaces, WorkloadEndpoints and
// Nodes to this node's nftables filter. Every change (update) goes through the incremental compiler
// (incremental.ts: the same result as compiling (semantics.ts) and rendering (render.ts) everything, but
// only what changed is recomputed) and hands the result to felix's PolicyDataplane, which writes only
// what changed; every `resyncMs` (felix's 90 s) it does the full compare against the kernel instead.
//
// Why this is hard: changes arrive in bursts while an nft write is running. Writes are serialized — one in
// flight at a time, and the newest input wins when it ends (intermediate states are never written) — and a
// failed write is retried after `retryMs` with a full resync, because after a failure the driver no
// longer knows what the kernel holds.

import { systemClock, type Clock, type TimerHandle, type Logger } from '../../bgp/index.js';
import type { ApplyStats, PolicyDataplane } from '../../felix/index.js';
import { IncrementalPolicy, type PolicyInput } from './incremental.js';

export type { PolicyInput } from './incremental.js';

export type EnforcerLog = Pick<Logger, 'info' | 'warn'>;

/** The timers the enforcer uses: the project's one Clock (bgp/clock.ts), in part. */
export type EnforcerTimers = Pick<Clock, 'setTimeout' | 'clearTimeout'>;

export interface EnforcerOptions {
  dataplane: Pick<PolicyDataplane, 'apply' | 'resync'>;
  node: string;
  log: EnforcerLog;
  resyncMs?: number;
  retryMs?: number;
  timers?: EnforcerTimers;
}

/** What the last compile saw on this node: for `tortie node status`. */
export interface PolicySummary {
  /** NetworkPolicies in the cluster (every namespace). */
  policies: number;
  /** This node's workloads, and how many of them a policy isolates in each direction. */
  endpoints: number;
  isolatedIngress: number;
  isolatedEgress: number;
}

export interface EnforcerStatus {
  /** null until the first compile. */
  summary: PolicySummary | null;
  writes: number;
  lastStats: ApplyStats | null;
  lastError: string | null;
  inSync: boolean;
}

const REAL_TIMERS: EnforcerTimers = systemClock;

export class PolicyEnforcer {
  private input: PolicyInput | null = null;
  private running: Promise<void> | null = null;
  private pending: 'apply' | 'resync' | null = null;
  private timer: TimerHandle | null = null;
  private stopped = false;
  private readonly timers: EnforcerTimers;
  private readonly compiler: IncrementalPolicy;
  private readonly state: EnforcerStatus = {
    summary: null,
    writes: 0,
    lastStats: null,
    lastError: null,
    inSync: false,
  };

  constructor(private readonly options: EnforcerOptions) {
    this.timers = options.timers ?? REAL_TIMERS;
    this.compiler = new IncrementalPolicy(options.node);
  }

  /** The newest view of the world; written as soon as the previous write has finished. */
  update(input: PolicyInput): void {
    this.input = input;
    this.request('apply');
  }

  /** Resolves when no write is running or queued (tests, benchmarks). */
  async settled(): Promise<void> {
    for (let i = 0; i < 1000 && this.running !== null; i++) await this.running;
  }

  status(): EnforcerStatus {
    return { ...this.state };
  }

  stop(): void {
    this.stopped = true;
    if (this.timer !== null) this.timers.clearTimeout(this.timer);
    this.timer = null;
  }

  private request(kind: 'apply' | 'resync'): void {
    if (this.stopped) return;
    if (this.pending !== 'resync') this.pending = kind;
    if (this.running === null) this.running = this.loop();
  }

  private async loop(): Promise<void> {
    try {
      for (let guard = 0; guard < 1000 && this.pending !== null && !this.stopped; guard++) {
        const kind = this.pending;
        this.pending = null;
        await this.writeOnce(kind);
      }
    } finally {
      this.running = null;
    }
  }

  private async writeOnce(kind: 'apply' | 'resync'): Promise<void> {
    const input = this.input;
    if (input === null) return;
    const { desired, endpoints, isolatedIngress, isolatedEgress } = this.compiler.update(input);
    this.state.summary = { policies: input.policies.length, endpoints, isolatedIngress, isolatedEgress };
    try {
      const stats =
        kind === 'resync' ? await this.options.dataplane.resync(desired) : await this.options.dataplane.apply(desired);
      this.state.writes++;
      this.state.lastStats = stats;
      this.state.lastError = null;
      this.state.inSync = true;
      if (stats.scriptLines > 0) this.options.log.info({ ...stats, kind }, 'network policy filter written');
      this.schedule('resync', this.options.resyncMs ?? 90_000);
    } catch (error) {
      const message = error instanceof Error ? error.message : String(error);
      this.state.lastError = message;
      this.state.inSync = false;
      this.options.log.warn(
        { err: message, kind },
        'writing the network policy filter failed; retrying with a full resync',
      );
      this.schedule('resync', this.options.retryMs ?? 1000);
    }
  }

  private schedule(kind: 'resync', ms: number): void {
    if (this.stopped) return;
    if (this.timer !== null) this.timers.clearTimeout(this.timer);
    this.timer = this.timers.setTimeout(() => {
      this.timer = null;
      this.request(kind);
    }, ms);
  }
}
