// GTSM (RFC 5082, Calico's BGPPeer ttlSecurity) between `tortie bgp speaker` and BIRD 2 with
// `ttl security on`, over real hops: each side in its own network namespace (198.18.36.0/24), directly
// connected or with a router namespace (forwarding, TTL − 1) in between.
// - directly connected, ttlSecurity 1 on both: Established;
// - one router in between, ttlSecurity 2 on both: Established (the path works, and N hops is honoured);
// - the same path with ttlSecurity 1: never Established — the segments arrive with TTL 254 < 255 — and the
//   kernel of tortie's namespace counts TCPMinTTLDrop, which node status words as a GTSM drop.

import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { nativeSocketOptions } from '../../bgp/socket-options.js';
import {
  diagnoseTcpSecurity,
  formatTcpSecurityFindings,
  parseTcpSecurityCounters,
  type TcpSecurityCounters,
} from '../../bgp/tcp-diagnosis.js';
import { requirePeers } from '../harness/binaries.js';
import { startPeer, waitForSession, type PeerDaemon } from '../harness/index.js';
import { createNetns, destroyAllNetns, netnsUnavailableReason, type Netns } from '../harness/netns.js';
import { stopAll, waitFor } from '../harness/process.js';
import { isState, SpeakerProcess } from './speaker-process.js';

const TORTIE_AS = 64512;
const BIRD_AS = 65001;

const running: Array<{ stop(): Promise<unknown> }> = [];
afterEach(async () => {
  for (const r of running.splice(0).reverse()) await r.stop().catch(() => undefined);
  await destroyAllNetns();
});
afterAll(async () => {
  await stopAll();
  await destroyAllNetns();
});

/** A veth pair between two namespaces: `aName` in a with aAddr, `bName` in b with bAddr (made in a first, so the names differ); both up. */
async function link(a: Netns, aName: string, aAddr: string, b: Netns, bName: string, bAddr: string): Promise<void> {
  await a.ip('link', 'add', aName, 'type', 'veth', 'peer', 'name', bName);
  await a.ip('link', 'set', bName, 'netns', b.name);
  await a.ip('addr', 'add', aAddr, 'dev', aName);
  await b.ip('addr', 'add', bAddr, 'dev', bName);
  await a.ip('link', 'set', aName, 'up');
  await b.ip('link', 'set', bName, 'up');
}

async function counters(ns: Netns): Promise<TcpSecurityCounters> {
  return parseTcpSecurityCounters(await ns.exec('cat', ['/proc/net/netstat']));
}

async function session(
  tortieNs: Netns,
  birdNs: Netns,
  tortieIp: string,
  birdIp: string,
  hops: number,
): Promise<{ speaker: SpeakerProcess; bird: PeerDaemon }> {
  const bird = await startPeer('bird2', {
    address: birdIp,
    as: BIRD_AS,
    netns: birdNs.name,
    neighbors: [{ address: tortieIp, as: TORTIE_AS, ttlSecurity: hops }],
  });
  running.push(bird);
  const speaker = SpeakerProcess.start(
    [
      '--router-id',
      tortieIp,
      '--as',
      String(TORTIE_AS),
      '--connect-retry',
      '1',
      '--peer',
      `${birdIp},as=${BIRD_AS},ttl-security=${hops}`,
    ],
    {},
    { netns: tortieNs.name },
  );
  running.push(speaker);
  return { speaker, bird };
}

const skip = netnsUnavailableReason() ?? (nativeSocketOptions().available ? null : 'the native part is not built');

describe.skipIf(skip !== null)('GTSM interop with BIRD 2 (ttl security on)', () => {
  it('directly connected, ttlSecurity 1 on both: Established', async (ctx) => {
    if (!requirePeers('bird2')) return ctx.skip();
    const t = await createNetns('gtsm-t');
    const b = await createNetns('gtsm-b');
    await link(t, 'eth0', '198.18.36.1/30', b, 'eth1', '198.18.36.2/30');
    const { speaker, bird } = await session(t, b, '198.18.36.1', '198.18.36.2', 1);
    await speaker.waitForEvent(isState('198.18.36.2', 'Established'), {
      timeoutMs: 20_000,
      what: 'Established with BIRD 2 (GTSM, direct)',
    });
    await waitForSession(bird, '198.18.36.1');
  });

  it('one router in between: Established with ttlSecurity 2; refused with ttlSecurity 1, the kernel counting TCPMinTTLDrop', async (ctx) => {
    if (!requirePeers('bird2')) return ctx.skip();
    const t = await createNetns('gtsm-t');
    const r = await createNetns('gtsm-r');
    const b = await createNetns('gtsm-b');
    await link(t, 'eth0', '198.18.36.5/30', r, 'r0', '198.18.36.6/30');
    await link(r, 'r1', '198.18.36.9/30', b, 'eth1', '198.18.36.10/30');
    await t.ip('route', 'add', 'default', 'via', '198.18.36.6');
    await b.ip('route', 'add', 'default', 'via', '198.18.36.9');
    await r.exec('sysctl', ['-qw', 'net.ipv4.ip_forward=1']);

    // Two hops allowed: the router's hop is inside the budget.
    const two = await session(t, b, '198.18.36.5', '198.18.36.10', 2);
    await two.speaker.waitForEvent(isState('198.18.36.10', 'Established'), {
      timeoutMs: 20_000,
      what: 'Established through the router with ttlSecurity 2',
    });
    for (const p of running.splice(0).reverse()) await p.stop();

    // One hop allowed: everything from the other side arrives with TTL 254 and is dropped.
    const before = await counters(t);
    const one = await session(t, b, '198.18.36.5', '198.18.36.10', 1);
    const grown = await waitFor(
      async () => {
        const now = await counters(t);
        return (now.TCPMinTTLDrop ?? 0) > (before.TCPMinTTLDrop ?? 0) ? now : undefined;
      },
      { timeoutMs: 15_000, what: "TCPMinTTLDrop to go up in tortie's namespace" },
    );
    await new Promise((resolve) => setTimeout(resolve, 3000));
    expect(one.speaker.events.filter((e) => e.event === 'state' && e.to === 'Established')).toEqual([]);
    expect((await one.bird.sessions()).find((s) => s.neighbor === '198.18.36.5')?.state).not.toBe('Established');
    expect(
      formatTcpSecurityFindings(diagnoseTcpSecurity(before, grown)).some((line) => line.startsWith('GTSM drop')),
    ).toBe(true);
  });
});

describe.runIf(skip !== null)('GTSM interop (cannot run here)', () => {
  it('says why', () => {
    if (process.env.CI === 'true') expect(skip).toBeNull();
    console.warn(`GTSM interop skipped: ${skip}`);
  });
});
