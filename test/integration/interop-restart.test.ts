// Graceful restart (RFC 4724) against real BIRD 2, BIRD 1.6 and FRR, both roles:
//
//   receiving (tortie is the helper): a peer with graceful restart on is killed with SIGKILL and comes back
//     with its forwarding state (BIRD `-R`, FRR `preserve-fw-state`, see ../harness/recovery.ts); tortie's
//     Loc-RIB, sampled every ~50 ms, holds the peer's routes in every sample: fresh before, stale while the
//     peer is away and until its End-of-RIB, fresh after; a route the peer no longer announces goes exactly
//     at End-of-RIB. Without a restart the routes go when the peer's restart time passes; after a clean
//     stop (Cease NOTIFICATION) they go at once.
//   restarting (`--graceful-restart=30`): tortie is killed and started again; the peer, sampled every
//     ~50 ms, keeps tortie's routes in every sample (marked stale meanwhile, as its CLI shows it) and drops
//     the one the new tortie does not announce when tortie's End-of-RIB arrives. Without the flag the same
//     kill makes the peer drop tortie's routes (the control that lets the test fail).
//
// Why this is hard: "present in every sample" is about ordering, so samples are placed on tortie's own event
// stream (the `rib` answer's position among the state / end-of-rib events) rather than on wall-clock
// guesses; and a plain daemon restart is not a graceful one (no F bit), which a correct helper must punish.

import { describe, expect, it } from 'vitest';
import { addressBlock } from '../harness/addresses.js';
import { PEER_BINARIES, requirePeers } from '../harness/binaries.js';
import { runCli, startPeer, waitForRoute, type PeerDaemon, type PeerKind } from '../harness/index.js';
import { waitFor } from '../harness/process.js';
import { restartPreservingForwarding } from '../harness/recovery.js';
import { isState, type RibEvent, type RibRoute, SpeakerProcess, stopAfterEachTest } from './speaker-process.js';
import type { SpeakerEventJson } from '../../src/cli/speaker-events.js';

const block = addressBlock(import.meta.url);
const TORTIE_AS = 64512;
const PEER_AS = 65001;
const SAMPLE_INTERVAL_MS = 50;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** One look at tortie's Loc-RIB: where its answer sits in tortie's event stream, and what it held. */
interface RibSample {
  readonly index: number;
  readonly at: number;
  readonly routes: readonly RibRoute[];
}

/** Asks tortie for its Loc-RIB every ~50 ms until stopped (bounded: at most `maxSamples`). */
class RibSampler {
  readonly samples: RibSample[] = [];
  private running = true;
  private readonly loop: Promise<void>;

  constructor(
    private readonly speaker: SpeakerProcess,
    maxSamples = 800,
  ) {
    this.loop = this.run(maxSamples);
  }

  private async run(maxSamples: number): Promise<void> {
    for (let n = 0; n < maxSamples && this.running; n++) {
      const from = this.speaker.events.length;
      this.speaker.send('rib');
      const answer = (await this.speaker.waitForEvent((e): e is RibEvent => e.event === 'rib', {
        from,
        timeoutMs: 3000,
        what: 'a rib answer',
      })) as RibEvent;
      this.samples.push({ index: this.speaker.events.indexOf(answer, from), at: Date.now(), routes: answer.routes });
      await sleep(SAMPLE_INTERVAL_MS);
    }
  }

  async stop(): Promise<RibSample[]> {
    this.running = false;
    await this.loop;
    return this.samples;
  }
}

/** One look at the peer's table: tortie's prefixes there, and whether the peer says they are stale. */
interface PeerSample {
  readonly at: number;
  readonly prefixes: readonly string[];
  readonly staleMarked: boolean;
}

/**
 * How each peer shows routes kept through a neighbour's restart. FRR marks each path `"stale": true` in
 * its JSON; BIRD 2 / 1.6 do not mark routes in `show route`, but `show protocols all` says "Neighbor
 * graceful restart active" for the neighbour while it keeps them.
 */
async function peerView(peer: PeerDaemon, tortieIp: string): Promise<Omit<PeerSample, 'at'>> {
  if (peer.kind === 'frr') {
    const table = JSON.parse(await peer.cli('show bgp ipv4 unicast json')) as {
      routes?: Record<string, Array<{ peerId?: string; stale?: boolean }>>;
    };
    const entries = Object.entries(table.routes ?? {})
      .map(([prefix, paths]) => ({ prefix, paths: paths.filter((p) => p.peerId === tortieIp) }))
      .filter((e) => e.paths.length > 0);
    return {
      prefixes: entries.map((e) => e.prefix).sort(),
      staleMarked: entries.some((e) => e.paths.some((p) => p.stale === true)),
    };
  }
  const [routes, protocols] = await Promise.all([peer.routes(), peer.cli('show protocols all')]);
  return {
    prefixes: routes
      .filter((r) => r.fromPeer === tortieIp)
      .map((r) => r.prefix)
      .sort(),
    staleMarked: protocols.includes('Neighbor graceful restart active'),
  };
}

/** Samples the peer's view every ~50 ms until stopped (bounded). */
class PeerSampler {
  readonly samples: PeerSample[] = [];
  private running = true;
  private readonly loop: Promise<void>;

  constructor(peer: PeerDaemon, tortieIp: string, maxSamples = 800) {
    this.loop = (async () => {
      for (let n = 0; n < maxSamples && this.running; n++) {
        this.samples.push({ at: Date.now(), ...(await peerView(peer, tortieIp)) });
        await sleep(SAMPLE_INTERVAL_MS);
      }
    })();
  }

  async stop(): Promise<PeerSample[]> {
    this.running = false;
    await this.loop;
    return this.samples;
  }
}

const routeIn = (sample: RibSample, prefix: string) => sample.routes.find((r) => r.prefix === prefix);

/** Index in the speaker's event stream of the first event from `from` matching `match`. */
function indexOf(speaker: SpeakerProcess, match: (e: SpeakerEventJson) => boolean, from: number): number {
  const found = speaker.events.findIndex((e, i) => i >= from && match(e));
  if (found < 0)
    throw new Error(
      `no such event after index ${from}; events:\n${speaker.events
        .slice(from)
        .map((e) => JSON.stringify(e))
        .join('\n')}`,
    );
  return found;
}

const isDownFromEstablished = (peer: string) => (e: SpeakerEventJson) =>
  e.event === 'state' && e.peer === peer && e.from === 'Established';
const isEndOfRib = (peer: string) => (e: SpeakerEventJson) => e.event === 'end-of-rib' && e.peer === peer;

describe('graceful restart (RFC 4724) against real peers', () => {
  const track = stopAfterEachTest();

  /** A peer with graceful restart on, announcing `prefixes` to tortie, and a tortie peering with it. */
  async function receivingPair(kind: PeerKind, host: number, prefixes: string[], restartTime: number) {
    const tortieIp = block.host(host);
    const peerIp = block.host(host + 1);
    const peer = track(
      await startPeer(kind, {
        address: peerIp,
        as: PEER_AS,
        gracefulRestart: { restartTime },
        neighbors: [{ address: tortieIp, as: TORTIE_AS, holdTime: 9 }],
        announce: prefixes.map((prefix) => ({ prefix, nextHop: '198.18.0.2' })),
      }),
    );
    const speaker = track(
      SpeakerProcess.start(
        [
          '--router-id',
          tortieIp,
          '--as',
          String(TORTIE_AS),
          '--connect-retry',
          '1',
          '--hold',
          '9',
          '--peer',
          `${peerIp},as=${PEER_AS},passive`,
        ],
        {
          TORTIE_LOG_LEVEL: 'info',
        },
      ),
    );
    await speaker.waitForEvent(isEndOfRib(peerIp), { what: `End-of-RIB from ${kind}` });
    await waitFor(
      async () => {
        const from = speaker.events.length;
        speaker.send('rib');
        const rib = (await speaker.waitForEvent((e) => e.event === 'rib', { from, what: 'a rib answer' })) as RibEvent;
        return prefixes.every((p) => rib.routes.some((r) => r.prefix === p && r.from === peerIp));
      },
      { timeoutMs: 10_000, intervalMs: 100, what: `tortie to learn ${prefixes.join(', ')} from ${kind}` },
    );
    return { tortieIp, peerIp, peer, speaker };
  }

  // ---- 1. receiving side: the peer restarts ---------------------------------------------------------------
  const receivers: Array<{ kind: PeerKind; host: number }> = [
    { kind: 'bird2', host: 1 },
    { kind: 'frr', host: 11 },
    { kind: 'bird1', host: 21 },
  ];
  it('has receiving-side cases', () => expect(receivers.length).toBeGreaterThan(0));

  for (const { kind, host } of receivers) {
    it(`${kind} restarts (SIGKILL, back with forwarding state): tortie keeps its routes in every sample, stale until End-of-RIB`, async (ctx) => {
      // Outside CI a missing daemon is a visible skip; in CI requirePeers throws (a failure).
      if (!requirePeers(kind)) return ctx.skip();
      const net = `10.${block.block}.${host + 1}`;
      const kept = [`${net}.0/26`, `${net}.64/26`];
      const dropped = `${net}.128/26`;
      const { peerIp, peer, speaker } = await receivingPair(kind, host, [...kept, dropped], 20);

      const sampler = new RibSampler(speaker);
      await sleep(300);
      const mark = speaker.events.length;
      await peer.kill9();
      await speaker.waitForEvent(isDownFromEstablished(peerIp), {
        from: mark,
        what: `the session to ${kind} going down`,
      });
      await sleep(500);
      // Back as a graceful restart, no longer originating `dropped`.
      track(await restartPreservingForwarding(peer, { dropRoutes: [dropped] }));
      const down = indexOf(speaker, isDownFromEstablished(peerIp), mark);
      await speaker.waitForEvent(isState(peerIp, 'Established'), {
        from: down,
        timeoutMs: 15_000,
        what: `${kind} back`,
      });
      const up = indexOf(speaker, isState(peerIp, 'Established'), down);
      await speaker.waitForEvent(isEndOfRib(peerIp), {
        from: up,
        timeoutMs: 15_000,
        what: `End-of-RIB from the restarted ${kind}`,
      });
      const eor = indexOf(speaker, isEndOfRib(peerIp), up);
      await sleep(400);
      const samples = await sampler.stop();

      const before = samples.filter((s) => s.index < down);
      const away = samples.filter((s) => s.index > down && s.index < up);
      const untilEor = samples.filter((s) => s.index > down && s.index < eor);
      const after = samples.filter((s) => s.index > eor);
      for (const phase of [before, away, after]) expect(phase.length).toBeGreaterThan(0);

      // In EVERY sample: both kept routes, from the peer.
      for (const s of samples)
        for (const prefix of kept) expect(routeIn(s, prefix)?.from, `${prefix} in sample ${s.index}`).toBe(peerIp);
      // Fresh before the kill; stale while the peer is away (RFC 4724 §4.2).
      for (const s of before)
        for (const prefix of [...kept, dropped]) expect(routeIn(s, prefix)?.stale).toBeUndefined();
      for (const s of away)
        for (const prefix of [...kept, dropped])
          expect(routeIn(s, prefix)?.stale, `${prefix} stale in sample ${s.index}`).toBe(true);
      // The route it no longer announces stays (stale) until End-of-RIB, and is gone from End-of-RIB on.
      for (const s of untilEor)
        expect(routeIn(s, dropped)?.stale, `${dropped} kept until End-of-RIB (sample ${s.index})`).toBe(true);
      for (const s of after) {
        expect(routeIn(s, dropped), `${dropped} gone after End-of-RIB (sample ${s.index})`).toBeUndefined();
        for (const prefix of kept)
          expect(routeIn(s, prefix)?.stale, `${prefix} fresh after End-of-RIB`).toBeUndefined();
      }
      // No withdrawal on the wire took it away: the End-of-RIB sweep did.
      const updates = speaker.events.slice(up).filter((e) => e.event === 'update');
      expect(updates.some((e) => e.event === 'update' && e.withdraw.includes(dropped))).toBe(false);
      expect(speaker.stderr.join('')).toContain('End-of-RIB received');
    }, 40_000);
  }

  it('bird2 restarted as a fresh router (no F bit): tortie drops the stale routes at its OPEN, then re-learns them', async (ctx) => {
    // The other side of RFC 4724 §4.2, and why the test above needs a recovery start: a peer that comes back
    // without "forwarding state preserved" for IPv4 unicast gets its stale routes removed at once.
    if (!requirePeers('bird2')) return ctx.skip();
    const host = 26;
    const net = `10.${block.block}.${host + 1}`;
    const prefixes = [`${net}.0/26`, `${net}.64/26`];
    const { peerIp, peer, speaker } = await receivingPair('bird2', host, prefixes, 20);
    const sampler = new RibSampler(speaker);
    await sleep(200);
    const mark = speaker.events.length;
    await peer.kill9();
    await speaker.waitForEvent(isDownFromEstablished(peerIp), { from: mark, what: 'the session to bird2 going down' });
    const down = indexOf(speaker, isDownFromEstablished(peerIp), mark);
    await sleep(300);
    await peer.restart();
    await speaker.waitForEvent(isState(peerIp, 'Established'), { from: down, timeoutMs: 15_000, what: 'bird2 back' });
    const up = indexOf(speaker, isState(peerIp, 'Established'), down);
    await speaker.waitForEvent(isEndOfRib(peerIp), {
      from: up,
      timeoutMs: 15_000,
      what: 'End-of-RIB from the restarted bird2',
    });
    await sleep(300);
    const samples = await sampler.stop();

    expect(speaker.stderr.join('')).toContain('the peer came back without preserving forwarding state');
    const away = samples.filter((s) => s.index > down && s.index < up);
    expect(away.length).toBeGreaterThan(0);
    for (const s of away) for (const prefix of prefixes) expect(routeIn(s, prefix)?.stale).toBe(true);
    // After the OPEN without F bit and before BIRD sent the routes again, no sample may hold them. The window
    // can be a few milliseconds (BIRD re-sends at once), so a sample landing in it is not required: the log
    // line above is what proves the drop.
    const relearned = indexOf(speaker, (e) => e.event === 'update' && e.peer === peerIp && e.announce.length > 0, up);
    const gap = samples.filter((s) => s.index > up && s.index < relearned);
    for (const s of gap) for (const prefix of prefixes) expect(routeIn(s, prefix)).toBeUndefined();
    for (const prefix of prefixes) expect(routeIn(samples.at(-1)!, prefix)?.stale).toBeUndefined();
    expect(routeIn(samples.at(-1)!, prefixes[0]!)?.from).toBe(peerIp);
  }, 40_000);

  // ---- 2. receiving side: the peer does not come back -------------------------------------------------------
  for (const { kind, host } of [
    { kind: 'bird2' as const, host: 31 },
    { kind: 'frr' as const, host: 41 },
  ]) {
    it(`${kind} killed and not restarted: tortie keeps its routes (stale) until the restart time (5 s) passes`, async (ctx) => {
      if (!requirePeers(kind)) return ctx.skip();
      const net = `10.${block.block}.${host + 1}`;
      const prefixes = [`${net}.0/26`, `${net}.64/26`];
      const { peerIp, peer, speaker } = await receivingPair(kind, host, prefixes, 5);

      const sampler = new RibSampler(speaker);
      await sleep(200);
      const mark = speaker.events.length;
      await peer.kill9();
      const killedAt = Date.now();
      await speaker.waitForEvent(isDownFromEstablished(peerIp), {
        from: mark,
        what: `the session to ${kind} going down`,
      });
      const down = indexOf(speaker, isDownFromEstablished(peerIp), mark);
      await waitFor(() => sampler.samples.some((s) => s.index > down && routeIn(s, prefixes[0]!) === undefined), {
        timeoutMs: 10_000,
        intervalMs: 50,
        what: `${prefixes[0]} to leave tortie's Loc-RIB after the restart time`,
      });
      const samples = await sampler.stop();

      const gone = samples.find((s) => s.index > down && routeIn(s, prefixes[0]!) === undefined)!;
      const held = samples.filter((s) => s.index > down && s.at < gone.at);
      expect(held.length).toBeGreaterThan(0);
      for (const s of held)
        for (const prefix of prefixes)
          expect(routeIn(s, prefix)?.stale, `${prefix} stale at +${s.at - killedAt} ms`).toBe(true);
      // RFC 4724 §4.2: deleted when the restart time the peer advertised (5 s) passes, not before.
      expect(gone.at - killedAt).toBeGreaterThanOrEqual(4800);
      expect(gone.at - killedAt).toBeLessThan(7000);
      for (const s of samples.filter((x) => x.at >= gone.at))
        for (const prefix of prefixes) expect(routeIn(s, prefix)).toBeUndefined();
      expect(speaker.stderr.join('')).toContain('restart time of 5 s passed');
    }, 40_000);
  }

  // ---- 3. receiving side: a clean shutdown is not a restart -------------------------------------------------
  // How each peer ends the session on purpose. BIRD: stop() (SIGTERM) sends Cease. FRR 8.4 with graceful
  // restart on sends NO NOTIFICATION on SIGTERM (its bgpd expects to come back; see the test after this
  // one), so the clean end there is `neighbor X shutdown`: Cease / Administrative Shutdown.
  const cleanStops: Array<{
    kind: PeerKind;
    host: number;
    how: string;
    stop: (peer: PeerDaemon, tortieIp: string) => Promise<unknown>;
  }> = [
    { kind: 'bird2', host: 51, how: 'stop() (SIGTERM)', stop: (peer) => peer.stop() },
    { kind: 'bird1', host: 56, how: 'stop() (SIGTERM)', stop: (peer) => peer.stop() },
    {
      kind: 'frr',
      host: 61,
      how: '"neighbor shutdown"',
      stop: (peer, tortieIp) =>
        runCli(PEER_BINARIES.frr.cli(), [
          '--vty_socket',
          peer.dir,
          '-d',
          'bgpd',
          '-c',
          'configure terminal',
          '-c',
          `router bgp ${PEER_AS}`,
          '-c',
          `neighbor ${tortieIp} shutdown`,
        ]),
    },
  ];
  for (const { kind, host, how, stop } of cleanStops) {
    it(`${kind} ends the session cleanly with ${how} (Cease NOTIFICATION): tortie withdraws its routes at once`, async (ctx) => {
      if (!requirePeers(kind)) return ctx.skip();
      const net = `10.${block.block}.${host + 1}`;
      const prefixes = [`${net}.0/26`, `${net}.64/26`];
      const { tortieIp, peerIp, peer, speaker } = await receivingPair(kind, host, prefixes, 20);

      const sampler = new RibSampler(speaker);
      await sleep(200);
      const mark = speaker.events.length;
      await stop(peer, tortieIp);
      await speaker.waitForEvent(isDownFromEstablished(peerIp), {
        from: mark,
        what: `the session to ${kind} going down`,
      });
      const down = indexOf(speaker, isDownFromEstablished(peerIp), mark);
      await sleep(400);
      const samples = await sampler.stop();

      const cease = speaker.events.slice(mark).find((e) => e.event === 'notification' && e.direction === 'received');
      expect(cease, `a NOTIFICATION from ${kind}`).toMatchObject({ peer: peerIp, code: 6 });
      const afterDown = samples.filter((s) => s.index > down);
      expect(afterDown.length).toBeGreaterThan(0);
      // The very first sample after the session went down has none of them: no stale phase at all.
      for (const s of afterDown)
        for (const prefix of prefixes) expect(routeIn(s, prefix), `${prefix} after Cease`).toBeUndefined();
      expect(samples.some((s) => s.routes.some((r) => r.stale === true))).toBe(false);
    }, 40_000);
  }

  it('frr with graceful restart stopped by SIGTERM sends no NOTIFICATION: tortie keeps its routes as stale (RFC 4724 §4.2)', async (ctx) => {
    if (!requirePeers('frr')) return ctx.skip();
    const host = 66;
    const net = `10.${block.block}.${host + 1}`;
    const prefixes = [`${net}.0/26`, `${net}.64/26`];
    const { peerIp, peer, speaker } = await receivingPair('frr', host, prefixes, 20);
    const sampler = new RibSampler(speaker);
    await sleep(200);
    const mark = speaker.events.length;
    await peer.stop();
    await speaker.waitForEvent(isDownFromEstablished(peerIp), { from: mark, what: 'the session to frr going down' });
    const down = indexOf(speaker, isDownFromEstablished(peerIp), mark);
    await sleep(600);
    const samples = await sampler.stop();

    expect(speaker.events.slice(mark).filter((e) => e.event === 'notification')).toEqual([]);
    const afterDown = samples.filter((s) => s.index > down);
    expect(afterDown.length).toBeGreaterThan(0);
    for (const s of afterDown)
      for (const prefix of prefixes) expect(routeIn(s, prefix)?.stale, `${prefix} kept stale`).toBe(true);
  }, 40_000);

  // ---- 4 and 5. restarting side: tortie is killed and started again -----------------------------------------
  async function restartingTortie(kind: PeerKind, host: number, graceful: boolean) {
    const tortieIp = block.host(host);
    const peerIp = block.host(host + 1);
    const keep = `10.244.${host}.0/26`;
    const drop = `10.244.${host}.64/26`;
    const peer = track(
      await startPeer(kind, {
        address: peerIp,
        as: PEER_AS,
        gracefulRestart: { restartTime: 30 },
        neighbors: [{ address: tortieIp, as: TORTIE_AS, holdTime: 9 }],
      }),
    );
    const flags = [
      '--router-id',
      tortieIp,
      '--as',
      String(TORTIE_AS),
      '--connect-retry',
      '1',
      '--hold',
      '9',
      '--peer',
      `${peerIp},as=${PEER_AS}`,
    ];
    if (graceful) flags.push('--graceful-restart=30');
    flags.push('--announce', `${keep},nexthop=198.18.0.9`);
    const first = track(
      SpeakerProcess.start([...flags, '--announce', `${drop},nexthop=198.18.0.9`], { TORTIE_LOG_LEVEL: 'info' }),
    );
    await first.waitForEvent(isState(peerIp, 'Established'), { what: `Established with ${kind}` });
    await waitForRoute(peer, keep, (r) => r.nextHop === '198.18.0.9');
    await waitForRoute(peer, drop, (r) => r.nextHop === '198.18.0.9');
    return { tortieIp, peerIp, peer, first, flags, keep, drop };
  }

  for (const { kind, host } of [
    { kind: 'bird2' as const, host: 71 },
    { kind: 'bird1' as const, host: 76 },
    { kind: 'frr' as const, host: 81 },
  ]) {
    it(`tortie --graceful-restart killed and restarted: ${kind} keeps tortie's routes in every sample, drops the unannounced one at End-of-RIB`, async (ctx) => {
      if (!requirePeers(kind)) return ctx.skip();
      const { tortieIp, peerIp, peer, first, flags, keep, drop } = await restartingTortie(kind, host, true);
      const sampler = new PeerSampler(peer, tortieIp);
      await sleep(300);
      const killedAt = Date.now();
      first.kill9();
      await first.wait();
      await waitFor(async () => (await peer.sessions()).find((s) => s.neighbor === tortieIp)?.state !== 'Established', {
        timeoutMs: 5000,
        what: `${kind} to see tortie gone`,
      });
      await sleep(700);
      const awayText =
        kind === 'frr' ? await peer.cli(`show bgp neighbors ${tortieIp}`) : await peer.cli('show protocols all');
      const restartedAt = Date.now();
      // The new tortie does not announce `drop` any more.
      const second = track(SpeakerProcess.start(flags, { TORTIE_LOG_LEVEL: 'info' }));
      await second.waitForEvent(isState(peerIp, 'Established'), {
        timeoutMs: 15_000,
        what: `the new tortie Established with ${kind}`,
      });
      await waitFor(async () => !(await peerView(peer, tortieIp)).prefixes.includes(drop), {
        timeoutMs: 15_000,
        intervalMs: 50,
        what: `${kind} to drop ${drop}`,
      });
      await sleep(500);
      const samples = await sampler.stop();
      const backText =
        kind === 'frr' ? await peer.cli(`show bgp neighbors ${tortieIp}`) : await peer.cli('show protocols all');

      // How many samples fit depends on the machine's load (tests never fail on timing): what matters is
      // that some were taken before, during (`away`, below) and after the restart.
      expect(samples.length).toBeGreaterThan(2);
      // In EVERY sample: the route both torties announce.
      for (const s of samples) expect(s.prefixes, `${keep} at +${s.at - killedAt} ms`).toContain(keep);
      // `drop` stays until the new tortie's End-of-RIB, then is gone for good (present, then absent: one switch).
      const firstWithout = samples.findIndex((s) => !s.prefixes.includes(drop));
      expect(firstWithout).toBeGreaterThan(0);
      expect(samples[firstWithout]!.at).toBeGreaterThan(restartedAt);
      for (const s of samples.slice(firstWithout)) expect(s.prefixes).not.toContain(drop);
      // Marked stale while tortie was away (and only GR-kept routes ever are); fresh at the end.
      const away = samples.filter((s) => s.at > killedAt + 300 && s.at < restartedAt);
      expect(away.length).toBeGreaterThan(0);
      for (const s of away) expect(s.staleMarked, `stale mark at +${s.at - killedAt} ms`).toBe(true);
      expect(samples.at(-1)!.staleMarked).toBe(false);
      if (kind === 'frr') {
        expect(awayText).toContain('NSF peer closed the session');
      } else {
        expect(awayText).toContain('Neighbor graceful restart active');
      }
      if (kind === 'bird2') {
        // The new tortie's OPEN, as BIRD read it: R bit (Restart recovery) and F bit for IPv4 (AF preserved).
        expect(backText).toMatch(
          /Neighbor capabilities[\s\S]*Graceful restart\s+Restart time: 30\s+Restart recovery\s+AF supported: ipv4\s+AF preserved: ipv4/,
        );
      }
      expect(second.stderr.join('')).toContain('End-of-RIB received from every peer');
    }, 40_000);
  }

  for (const { kind, host } of [
    { kind: 'bird2' as const, host: 91 },
    { kind: 'bird1' as const, host: 96 },
    { kind: 'frr' as const, host: 101 },
  ]) {
    it(`control: tortie WITHOUT --graceful-restart killed: ${kind} drops tortie's routes`, async (ctx) => {
      if (!requirePeers(kind)) return ctx.skip();
      const { tortieIp, peer, first, keep, drop } = await restartingTortie(kind, host, false);
      const killedAt = Date.now();
      first.kill9();
      await first.wait();
      await waitFor(async () => (await peerView(peer, tortieIp)).prefixes.length === 0, {
        timeoutMs: 5000,
        intervalMs: 50,
        what: `${kind} to drop ${keep} and ${drop}`,
      });
      expect(Date.now() - killedAt).toBeLessThan(3000);
      const view = await peerView(peer, tortieIp);
      expect(view).toEqual({ prefixes: [], staleMarked: false });
    }, 40_000);
  }
});
