// A Speaker stand-in for node agent tests: records setPeers/setOriginated, reports the peer states a test
// sets, returns the best routes a test sets, and emits Speaker events on demand ('ready', 'update').

import { EventEmitter } from 'node:events';
import type { Prefix } from '../../../bgp/types.js';
import type {
  OriginatedRoute,
  PeerSpec,
  PeerStatus,
  RefusedRoute,
  RibEntry,
  SpeakerConfig,
  SpeakerEvents,
} from '../../../bgp/speaker.js';

export class FakeSpeaker extends EventEmitter<SpeakerEvents> {
  peers: PeerSpec[] = [];
  originated: OriginatedRoute[] = [];
  states = new Map<string, PeerStatus['state']>();
  best: RibEntry[] = [];
  /** What refusedRoutes() answers; every rejudge() call's argument (undefined = all routes). */
  refused: RefusedRoute[] = [];
  rejudged: Array<readonly Prefix[] | undefined> = [];
  started = false;
  stopped = false;
  constructor(readonly config: SpeakerConfig) {
    super();
  }
  /** Listen ports that are "in use": start() fails for them, as a real Speaker does (EADDRINUSE). */
  static busyPorts = new Set<number>();
  async start(): Promise<void> {
    const port = this.config.listen?.port;
    if (port !== undefined && FakeSpeaker.busyPorts.has(port))
      throw new Error(`cannot listen for BGP on 0.0.0.0:${port}: EADDRINUSE`);
    this.started = true;
  }
  async stop(): Promise<void> {
    this.stopped = true;
  }
  setPeers(specs: readonly PeerSpec[]): void {
    this.peers = [...specs];
  }
  setOriginated(routes: readonly OriginatedRoute[]): void {
    this.originated = [...routes];
  }
  peerStatus(): PeerStatus[] {
    return this.peers.map((p) => ({
      address: p.address,
      port: p.port ?? 179,
      peerAs: p.peerAs,
      state: this.states.get(p.address) ?? 'Active',
      since: 0,
      routesReceived: 0,
      routesAccepted: 0,
      routesAdvertised: 0,
      staleRoutes: 0,
    }));
  }
  bestRoutes(): RibEntry[] {
    return this.best;
  }
  refusedRoutes(): RefusedRoute[] {
    return this.refused;
  }
  rejudge(within?: readonly Prefix[]): number {
    this.rejudged.push(within);
    return 0;
  }
}
