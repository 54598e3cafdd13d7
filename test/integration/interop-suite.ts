// The interop suite `tortie bgp speaker` must pass against every real peer kind, iBGP and eBGP:
// the session reaches Established and stays up through three keepalive intervals, routes flow both ways
// (checked in the peer's own CLI and in tortie's JSON events), withdrawals too, and a wrong AS on either
// side yields OPEN Message Error / Bad Peer AS on the wire, after which tortie retries.
//
// Each peer kind has its own test file (so files run in parallel on their own 127.0.<block>.0/24) that calls
// `interopSuite(kind, import.meta.url)`.

import { expect, it } from 'vitest';
import { addressBlock } from '../harness/addresses.js';
import { requirePeers } from '../harness/binaries.js';
import {
  startPeer,
  waitFor,
  waitForNoRoute,
  waitForRoute,
  waitForSession,
  type PeerDaemon,
  type PeerKind,
} from '../harness/index.js';
import { isState, isUpdate, SpeakerProcess, stopAfterEachTest, type UpdateEvent } from './speaker-process.js';
import type { SpeakerEventJson } from '../../src/cli/speaker-events.js';

const TORTIE_AS = 64512;
const OFFICE_AS = 65001;

function announced(speaker: SpeakerProcess, prefix: string): UpdateEvent['announce'][number] | undefined {
  for (let i = speaker.events.length - 1; i >= 0; i--) {
    const e = speaker.events[i]!;
    if (!isUpdate(e)) continue;
    if (e.withdraw.includes(prefix)) return undefined;
    const route = e.announce.find((r) => r.prefix === prefix);
    if (route) return route;
  }
  return undefined;
}

export function interopSuite(kind: PeerKind, owner: string): void {
  const block = addressBlock(owner);
  const track = stopAfterEachTest();

  for (const mode of ['iBGP', 'eBGP'] as const) {
    const peerAs = mode === 'iBGP' ? TORTIE_AS : OFFICE_AS;
    // Distinct addresses per mode so a lingering socket of one test never meets the next.
    const tortieIp = block.host(mode === 'iBGP' ? 9 : 19);
    const peerIp = block.host(mode === 'iBGP' ? 2 : 12);
    const third = block.block;

    it(`${kind} ${mode}: Established, stays up through 3 keepalives, routes and withdrawals flow both ways`, async (ctx) => {
      // Outside CI a missing daemon is a visible skip; in CI requirePeers throws (a failure).
      if (!requirePeers(kind)) return ctx.skip();
      const peer: PeerDaemon = track(
        await startPeer(kind, {
          address: peerIp,
          as: peerAs,
          neighbors: [{ address: tortieIp, as: TORTIE_AS, holdTime: 3 }],
          announce: [
            { prefix: `10.${third}.2.0/26`, nextHop: '198.18.0.2' },
            { prefix: `10.${third}.3.0/26`, nextHop: '198.18.0.2' },
          ],
        }),
      );
      const speaker = track(
        SpeakerProcess.start([
          '--router-id',
          tortieIp,
          '--as',
          String(TORTIE_AS),
          '--connect-retry',
          '1',
          '--hold',
          '3',
          '--peer',
          `${peerIp},as=${peerAs}`,
          '--announce',
          `10.244.${third}.0/26,nexthop=198.18.0.9`,
        ]),
      );

      await speaker.waitForEvent(isState(peerIp, 'Established'), { what: `Established with ${kind}` });
      await waitForSession(peer, tortieIp);

      // What tortie sent, as the peer's own CLI shows it.
      const expectedPath = mode === 'iBGP' ? [] : [TORTIE_AS];
      const atPeer = await waitForRoute(peer, `10.244.${third}.0/26`);
      expect(atPeer.nextHop).toBe('198.18.0.9');
      expect(atPeer.asPath).toEqual(expectedPath);

      // What the peer sent, as tortie's events show it.
      const peerPath = mode === 'iBGP' ? [] : [OFFICE_AS];
      for (const prefix of [`10.${third}.2.0/26`, `10.${third}.3.0/26`]) {
        await speaker.waitForEvent((e) => isUpdate(e) && e.announce.some((r) => r.prefix === prefix), {
          what: `update for ${prefix}`,
        });
        const route = announced(speaker, prefix);
        expect(route?.nextHop).toBe('198.18.0.2');
        expect(route?.asPath).toEqual(peerPath);
        expect(route?.origin).toBeDefined();
        if (mode === 'iBGP') expect(route?.localPref).toBe(100);
      }

      // Three keepalive intervals (hold 3 s → keepalive 1 s) with no state change on either side.
      const before = speaker.events.length;
      await new Promise((resolve) => setTimeout(resolve, 3500));
      const changes = speaker.events.slice(before).filter((e) => e.event === 'state' || e.event === 'notification');
      expect(changes).toEqual([]);
      expect((await peer.sessions()).find((s) => s.neighbor === tortieIp)?.state).toBe('Established');

      // Withdrawals, both ways.
      const mark = speaker.events.length;
      await peer.withdraw(`10.${third}.3.0/26`);
      await speaker.waitForEvent((e) => isUpdate(e) && e.withdraw.includes(`10.${third}.3.0/26`), {
        from: mark,
        what: 'the withdrawal',
      });
      speaker.send(`withdraw 10.244.${third}.0/26`);
      await waitForNoRoute(peer, `10.244.${third}.0/26`);
      speaker.send(`announce 10.244.${third}.64/26,nexthop=198.18.0.9`);
      expect((await waitForRoute(peer, `10.244.${third}.64/26`)).nextHop).toBe('198.18.0.9');

      // SIGTERM: Cease to the peer, exit 0; the peer ends the session and drops what tortie sent.
      expect(await speaker.stop()).toBe(0);
      await waitFor(async () => (await peer.sessions()).find((s) => s.neighbor === tortieIp)?.state !== 'Established', {
        timeoutMs: 15_000,
        intervalMs: 100,
        what: `${kind} session to ${tortieIp} no longer Established after tortie's Cease`,
      });
      await waitForNoRoute(peer, `10.244.${third}.64/26`);
    });
  }

  it(`${kind}: tortie refuses a peer with the wrong AS (OPEN Message Error / Bad Peer AS) and retries`, async (ctx) => {
    if (!requirePeers(kind)) return ctx.skip();
    const tortieIp = block.host(29);
    const peerIp = block.host(22);
    track(await startPeer(kind, { address: peerIp, as: TORTIE_AS, neighbors: [{ address: tortieIp, as: TORTIE_AS }] }));
    const speaker = track(
      SpeakerProcess.start([
        '--router-id',
        tortieIp,
        '--as',
        String(TORTIE_AS),
        '--connect-retry',
        '1',
        '--peer',
        `${peerIp},as=65099`,
      ]),
    );
    const isBadPeerAs = (e: SpeakerEventJson) =>
      e.event === 'notification' && e.direction === 'sent' && e.code === 2 && e.subcode === 2;
    const first = await speaker.waitForEvent(isBadPeerAs, { what: 'NOTIFICATION 2/2 sent' });
    expect(first).toMatchObject({ peer: peerIp, reason: 'Bad Peer AS' });
    // It retries: a second attempt ends the same way.
    const index = speaker.events.indexOf(first);
    await speaker.waitForEvent(isBadPeerAs, {
      from: index + 1,
      timeoutMs: 20_000,
      what: 'a second NOTIFICATION 2/2 after the retry',
    });
    expect(speaker.events.some((e) => e.event === 'state' && e.peer === peerIp && e.to === 'Established')).toBe(false);
  });

  it(`${kind}: a peer that expects another AS tells tortie so (NOTIFICATION received)`, async (ctx) => {
    if (!requirePeers(kind)) return ctx.skip();
    const tortieIp = block.host(39);
    const peerIp = block.host(32);
    track(await startPeer(kind, { address: peerIp, as: OFFICE_AS, neighbors: [{ address: tortieIp, as: 65099 }] }));
    const speaker = track(
      SpeakerProcess.start([
        '--router-id',
        tortieIp,
        '--as',
        String(TORTIE_AS),
        '--connect-retry',
        '1',
        '--peer',
        `${peerIp},as=${OFFICE_AS}`,
      ]),
    );
    const received = await speaker.waitForEvent(
      (e) => e.event === 'notification' && e.direction === 'received' && e.code === 2,
      { timeoutMs: 20_000, what: `a NOTIFICATION from ${kind}` },
    );
    // Real routers answer a wrong AS with OPEN Message Error / Bad Peer AS.
    expect(received).toMatchObject({ peer: peerIp, code: 2, subcode: 2 });
  });
}
