// The speaker keeper's timers on fake time (src/agent/speaker-keeper.ts): a Speaker that does not start is
// tried again 1 s, 2 s, … later; felix's retention after a start ends when every planned peer's End-of-RIB
// is in, and at the latest with the graceful-restart deferral.

import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { FakeClock } from '../../../bgp/clock.js';
import {
  GRACEFUL_RESTART,
  SpeakerKeeper,
  type SpeakerIdentity,
  type SpeakerLike,
} from '../../../src/agent/speaker-keeper.js';
import { AgentMetrics } from '../../../src/agent/metrics.js';
import type { DesiredPeer } from '../../../src/agent/types.js';
import { FakeSpeaker } from '../helpers/fake-speaker.js';

const IDENTITY: SpeakerIdentity = {
  routerId: '198.18.0.11',
  localAs: 64512,
  listenAddress: '0.0.0.0',
  listenPort: 1791,
  clusterId: null,
};

function keeper(options: { peers?: string[]; settleWatched?: boolean } = {}) {
  const clock = new FakeClock();
  const speakers: FakeSpeaker[] = [];
  const warnings = new Set<string>();
  const events = { retries: 0, settled: 0, routesChanged: 0 };
  const metrics = new AgentMetrics({ processMetrics: false });
  const k = new SpeakerKeeper({
    log: pino({ level: 'silent' }),
    clock,
    metrics,
    createSpeaker: (config) => {
      const s = new FakeSpeaker(config);
      speakers.push(s);
      return s as unknown as SpeakerLike;
    },
    warnings,
    contained: (_what, action) => action(),
    // "address" or "address:port" (two planned peers may share an address).
    plannedPeers: () =>
      (options.peers ?? []).map(
        (peer) =>
          ({
            address: peer.split(':')[0]!,
            ...(peer.includes(':') ? { port: Number(peer.split(':')[1]) } : {}),
          }) as DesiredPeer,
      ),
    settleWatched: () => options.settleWatched ?? true,
    onSettled: () => events.settled++,
    onRoutesChanged: () => events.routesChanged++,
    onRetry: () => events.retries++,
    stopping: () => false,
  });
  return { k, clock, speakers, warnings, events, metrics };
}

describe('SpeakerKeeper', () => {
  it('a Speaker that does not start is tried again 1 s, then 2 s later; a start clears the warning', async () => {
    const { k, clock, warnings, events } = keeper({ settleWatched: false });
    FakeSpeaker.busyPorts.add(1791);
    try {
      await expect(k.ensureIdentity(IDENTITY)).rejects.toThrow('EADDRINUSE');
      expect([...warnings]).toEqual(['BGP speaker: cannot listen for BGP on 0.0.0.0:1791: EADDRINUSE']);
      expect(k.identity).toBeNull();
      clock.advance(999);
      expect(events.retries).toBe(0);
      clock.advance(1);
      expect(events.retries).toBe(1);
      await expect(k.ensureIdentity(IDENTITY)).rejects.toThrow('EADDRINUSE');
      clock.advance(1999);
      expect(events.retries).toBe(1);
      clock.advance(1);
      expect(events.retries).toBe(2);
    } finally {
      FakeSpeaker.busyPorts.delete(1791);
    }
    await k.ensureIdentity(IDENTITY);
    expect(k.identity).toEqual(IDENTITY);
    expect(warnings.size).toBe(0);
    expect(clock.pending).toBe(0); // no retry left (and no settle deadline: nothing watches it here)
  });

  it('BGP settles once the Speaker is ready and every planned peer sent End-of-RIB; the deadline is then cleared', async () => {
    const { k, clock, speakers, events } = keeper({ peers: ['198.18.0.12', '198.18.0.13'] });
    await k.ensureIdentity(IDENTITY);
    const speaker = speakers[0]!;
    speaker.emit('endOfRib', { peer: '198.18.0.12' });
    speaker.emit('ready');
    expect(events.settled).toBe(0);
    speaker.emit('endOfRib', { peer: '198.18.0.13' });
    expect(events.settled).toBe(1);
    expect(clock.pending).toBe(0);
    clock.advance(GRACEFUL_RESTART.deferralMs);
    expect(events.settled).toBe(1);
  });

  it('two planned peers on one address (different ports): BGP settles only after both sent End-of-RIB', async () => {
    const { k, speakers, events } = keeper({ peers: ['198.18.0.50:1790', '198.18.0.50:1791'] });
    await k.ensureIdentity(IDENTITY);
    const speaker = speakers[0]!;
    speaker.emit('ready');
    speaker.emit('endOfRib', { peer: '198.18.0.50', port: 1790 });
    expect(events.settled).toBe(0);
    speaker.emit('endOfRib', { peer: '198.18.0.50', port: 1791 });
    expect(events.settled).toBe(1);
  });

  it('metrics are labelled by peer key: two peers on one address (different ports) are two series', async () => {
    const { k, speakers, metrics } = keeper();
    await k.ensureIdentity(IDENTITY);
    const speaker = speakers[0]!;
    speaker.setPeers([
      { address: '198.18.0.50', port: 1790, peerAs: 64512 },
      { address: '198.18.0.50', port: 1791, peerAs: 64512 },
      { address: '198.18.0.51', port: 179, peerAs: 64512 },
    ]);
    speaker.states.set('198.18.0.50', 'Established');
    speaker.emit('state', { peer: '198.18.0.50', port: 1790, from: 'OpenConfirm', to: 'Established' });
    speaker.emit('refused', { peer: '198.18.0.50', port: 1791, prefix: { addr: 0x0a000000, len: 8 }, reason: 'r1' });
    const text = await metrics.render();
    const peers = (series: string): string[] =>
      text
        .split('\n')
        .filter((line) => line.startsWith(`${series}{`))
        .map((line) => /peer="([^"]*)"/.exec(line)![1]!)
        .sort();
    expect(peers('tortie_bgp_routes_received')).toEqual(['198.18.0.50:1790', '198.18.0.50:1791', '198.18.0.51']);
    expect(peers('tortie_bgp_routes_advertised')).toEqual(['198.18.0.50:1790', '198.18.0.50:1791', '198.18.0.51']);
    expect(peers('tortie_bgp_import_refused_total')).toEqual(['198.18.0.50:1791']);
  });

  it('a peer that never sends End-of-RIB: BGP settles when the graceful-restart deferral ends, not before', async () => {
    const { k, clock, speakers, events } = keeper({ peers: ['198.18.0.12'] });
    await k.ensureIdentity(IDENTITY);
    speakers[0]!.emit('ready');
    clock.advance(GRACEFUL_RESTART.deferralMs - 1);
    expect(events.settled).toBe(0);
    clock.advance(1);
    expect(events.settled).toBe(1);
  });

  it('without a kernel dataplane there is no settle deadline', async () => {
    const { k, clock, speakers, events } = keeper({ settleWatched: false });
    await k.ensureIdentity(IDENTITY);
    speakers[0]!.emit('ready');
    expect(clock.pending).toBe(0);
    expect(events.settled).toBe(0);
    expect(events.routesChanged).toBe(1);
  });
});
