// The node agent's Prometheus metrics, on a private prom-client Registry (never the process-global one, so
// two agents in one test process, or a library user, do not collide).
//
// Series:
//   tortie_bgp_sessions{state}                gauge: sessions per BGP FSM state (every state, zeros included)
//   tortie_bgp_routes_received{peer}          gauge: routes in the peer's Adj-RIB-In
//   tortie_bgp_routes_advertised{peer}        gauge: routes we advertise to the peer
//   tortie_bgp_import_refused_total{peer,reason}  counter: routes import protection refused (each new
//                                             announcement refused, and each held route judged again into a refusal)
//   (peer: the peer's address, with its port when that is not 179: "127.0.0.2:1790"; two peers may share an address)
//   tortie_datastore_watch_lag_seconds        gauge: how far behind the datastore watch the agent's cache is
//   tortie_convergence_seconds                histogram: from a change seen to the Speaker/kernel updated
//   process_* / nodejs_*                      prom-client's default process metrics (optional)
// The agent calls the observe* methods; `render()` is what GET /metrics serves.

import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { PeerStatusRow } from './types.js';

/** BGP FSM states (RFC 4271 §8.2.2), so every state has a series even when no session is in it. */
const BGP_STATES = ['Idle', 'Connect', 'Active', 'OpenSent', 'OpenConfirm', 'Established'] as const;

/** 1 ms to 10 s: a mesh of a few nodes converges in milliseconds, a large reflector cluster in seconds. */
export const CONVERGENCE_BUCKETS: readonly number[] = [
  0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
];

export interface AgentMetricsOptions {
  /** Include prom-client's default process metrics (CPU, memory, event loop, GC). Default true. */
  processMetrics?: boolean;
}

export class AgentMetrics {
  readonly registry = new Registry();
  private readonly sessions: Gauge<'state'>;
  private readonly routesReceived: Gauge<'peer'>;
  private readonly routesAdvertised: Gauge<'peer'>;
  private readonly watchLag: Gauge;
  private readonly convergence: Histogram;
  private readonly importRefused: Counter<'peer' | 'reason'>;
  /** Peers with route series, so a peer that goes away loses its series instead of freezing at its last value. */
  private readonly peers = new Set<string>();

  constructor(options: AgentMetricsOptions = {}) {
    const registers = [this.registry];
    this.sessions = new Gauge({
      name: 'tortie_bgp_sessions',
      help: 'BGP sessions by BGP FSM state.',
      labelNames: ['state'],
      registers,
    });
    this.routesReceived = new Gauge({
      name: 'tortie_bgp_routes_received',
      help: 'Routes received from a BGP peer (its Adj-RIB-In, before import policy).',
      labelNames: ['peer'],
      registers,
    });
    this.routesAdvertised = new Gauge({
      name: 'tortie_bgp_routes_advertised',
      help: 'Routes advertised to a BGP peer.',
      labelNames: ['peer'],
      registers,
    });
    this.watchLag = new Gauge({
      name: 'tortie_datastore_watch_lag_seconds',
      help: 'How far the agent is behind the datastore watch, in seconds.',
      registers,
    });
    this.convergence = new Histogram({
      name: 'tortie_convergence_seconds',
      help: 'Time from a datastore or BGP change to the Speaker and the kernel being updated, in seconds.',
      buckets: [...CONVERGENCE_BUCKETS],
      registers,
    });
    this.importRefused = new Counter({
      name: 'tortie_bgp_import_refused_total',
      help: 'Routes from a BGP peer refused by import protection, by reason.',
      labelNames: ['peer', 'reason'],
      registers,
    });
    for (const state of BGP_STATES) this.sessions.set({ state }, 0);
    if (options.processMetrics ?? true) collectDefaultMetrics({ register: this.registry });
  }

  /** Sets the per-state session counts and every peer's route gauges from a full status snapshot. */
  observeSessions(
    rows: ReadonlyArray<Pick<PeerStatusRow, 'address' | 'bgpState' | 'routesReceived' | 'routesAdvertised'>>,
  ): void {
    const counts = new Map<string, number>(BGP_STATES.map((s) => [s, 0]));
    for (const row of rows) counts.set(row.bgpState, (counts.get(row.bgpState) ?? 0) + 1);
    for (const [state, count] of counts) this.sessions.set({ state }, count);
    const present = new Set(rows.map((r) => r.address));
    for (const peer of this.peers) {
      if (present.has(peer)) continue;
      this.routesReceived.remove({ peer });
      this.routesAdvertised.remove({ peer });
      this.peers.delete(peer);
    }
    for (const row of rows) this.observeRoutes(row.address, row.routesReceived, row.routesAdvertised);
  }

  observeRoutes(peer: string, received: number, advertised: number): void {
    this.peers.add(peer);
    this.routesReceived.set({ peer }, received);
    this.routesAdvertised.set({ peer }, advertised);
  }

  /** One route from `peer` refused by import protection; `reason` is its code (import-guard.ts). */
  observeImportRefused(peer: string, reason: string): void {
    this.importRefused.inc({ peer, reason });
  }

  observeWatchLag(seconds: number): void {
    this.watchLag.set(Math.max(0, seconds));
  }

  observeConvergence(seconds: number): void {
    this.convergence.observe(Math.max(0, seconds));
  }

  /** The Content-Type of `render()`'s text (Prometheus text exposition format 0.0.4). */
  get contentType(): string {
    return this.registry.contentType;
  }

  /** Every series in Prometheus text format. */
  render(): Promise<string> {
    return this.registry.metrics();
  }
}
