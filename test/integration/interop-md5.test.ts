// TCP-MD5 (RFC 2385) between `tortie bgp speaker` and real BIRD 1.6, BIRD 2 and FRR, each with a password:
// - the right password: Established and routes both ways, whichever side connects; tcpdump (given the
//   password, -M) shows a valid MD5 signature on every segment of the session;
// - a wrong password, or a password on one side only: never Established, and the kernel's TcpExt counter
//   for that case goes up (TCPMD5Failure / TCPMD5Unexpected / TCPMD5NotFound), which
//   bgp/tcp-diagnosis.ts turns into the words node status shows.
// The counters are per network namespace and shared with everything on this loopback; the test reads
// them before and after, and integration files run one at a time (the shared lock), so the increase is
// this test's. The direction of the one-sided cases is fixed (tortie passive, the peer connects) so only
// tortie's listener sees the segments and the counter says which side lacks the key.

import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  diagnoseTcpSecurity,
  formatTcpSecurityFindings,
  parseTcpSecurityCounters,
  type TcpSecurityCounter,
  type TcpSecurityCounters,
} from '../../bgp/tcp-diagnosis.js';
import { nativeSocketOptions } from '../../bgp/socket-options.js';
import { addressBlock } from '../harness/addresses.js';
import { requireBinary, requirePeers } from '../harness/binaries.js';
import { startPeer, waitForRoute, waitForSession, type PeerDaemon, type PeerKind } from '../harness/index.js';
import { makeTempDir, startProcess, waitFor } from '../harness/process.js';
import { isState, isUpdate, SpeakerProcess, stopAfterEachTest } from './speaker-process.js';

const block = addressBlock(import.meta.url);
const TORTIE_AS = 64512;
const PEER_AS = 65001;
const PASSWORD = 'tortie-md5-secret';
const KINDS: readonly PeerKind[] = ['bird1', 'bird2', 'frr'];

function counters(): TcpSecurityCounters {
  return parseTcpSecurityCounters(readFileSync('/proc/net/netstat', 'utf8'));
}

function passwordFile(dir: string, password: string): string {
  const path = join(dir, 'password');
  writeFileSync(path, `${password}\n`, { mode: 0o600 });
  return path;
}

/** tcpdump on lo for the session between two addresses, into a pcap file (-Z root: Debian's tcpdump
 *  otherwise drops to its own user before opening the file, which then cannot be written in our temp dir;
 *  --immediate-mode: without it packets wait up to a second in the kernel's buffer and are lost at SIGTERM);
 *  `segments()` reads it back. */
async function capture(dir: string, a: string, b: string) {
  const pcap = join(dir, 'session.pcap');
  const proc = startProcess({
    name: 'tcpdump',
    command: 'tcpdump',
    args: [
      '-i',
      'lo',
      '-nn',
      '--immediate-mode',
      '-U',
      '-Z',
      'root',
      '-w',
      pcap,
      `host ${a} and host ${b} and tcp port 179`,
    ],
    dir,
  });
  await waitFor(() => proc.log().includes('listening on'), { timeoutMs: 10_000, what: 'tcpdump listening' });
  return {
    stop: () => proc.stop(),
    log: () => proc.log(),
    /** One line per TCP segment, as `tcpdump -v -M PASSWORD` prints it (options include "md5 valid"). */
    segments(password: string): string[] {
      const text = execFileSync('tcpdump', ['-r', pcap, '-nn', '-v', '-M', password], {
        encoding: 'utf8',
        stdio: ['ignore', 'pipe', 'ignore'],
      });
      return text.split('\n').filter((line) => / > .*Flags \[/.test(line));
    },
  };
}

let slot = 0;
/** Distinct addresses per test, so a lingering socket or key of one test never meets the next. */
function addresses(): { tortie: string; peer: string; n: number } {
  const n = slot++;
  return { tortie: block.host(10 * n + 9), peer: block.host(10 * n + 2), n };
}

const skipAll = !nativeSocketOptions().available;

describe.skipIf(skipAll)('TCP-MD5 interop', () => {
  const track = stopAfterEachTest();

  it('the native part loads (scripts/build-native.sh ran)', () => {
    expect(nativeSocketOptions()).toMatchObject({ available: true });
  });

  for (const kind of KINDS) {
    for (const direction of ['tortie connects', `${kind} connects`] as const) {
      it(`${kind}: the right password, ${direction}: Established, routes both ways, MD5 on every segment`, async (ctx) => {
        if (!requirePeers(kind) || !requireBinary('tcpdump')) return ctx.skip();
        const { tortie, peer: peerIp, n } = addresses();
        const dir = makeTempDir('md5');
        const tortieConnects = direction === 'tortie connects';
        const dump = await capture(dir, tortie, peerIp);
        const peer: PeerDaemon = track(
          await startPeer(kind, {
            address: peerIp,
            as: PEER_AS,
            neighbors: [{ address: tortie, as: TORTIE_AS, password: PASSWORD, passive: tortieConnects }],
            announce: [{ prefix: `10.${100 + n}.1.0/26`, nextHop: '198.18.0.2' }],
          }),
        );
        const speaker = track(
          SpeakerProcess.start([
            '--router-id',
            tortie,
            '--as',
            String(TORTIE_AS),
            '--connect-retry',
            '1',
            '--peer',
            `${peerIp},as=${PEER_AS},password-file=${passwordFile(dir, PASSWORD)}${tortieConnects ? '' : ',passive'}`,
            '--announce',
            `10.${100 + n}.0.0/26,nexthop=198.18.0.9`,
          ]),
        );
        await speaker.waitForEvent(isState(peerIp, 'Established'), {
          timeoutMs: 20_000,
          what: `Established with ${kind}`,
        });
        await waitForSession(peer, tortie);
        expect((await waitForRoute(peer, `10.${100 + n}.0.0/26`)).nextHop).toBe('198.18.0.9');
        await speaker.waitForEvent((e) => isUpdate(e) && e.announce.some((r) => r.prefix === `10.${100 + n}.1.0/26`), {
          what: `the route from ${kind}`,
        });
        expect(await speaker.stop()).toBe(0);
        await dump.stop();

        const segments = dump.segments(PASSWORD);
        // SYN, SYN-ACK, OPENs, KEEPALIVEs, UPDATEs, the Cease and the FINs at least.
        expect(segments.length, `${dump.log()}\n${segments.join('\n')}`).toBeGreaterThan(8);
        const unsigned = segments.filter((line) => !line.includes('md5 valid'));
        expect(unsigned, `segments without a valid MD5 signature:\n${unsigned.join('\n')}`).toEqual([]);
        // The first segment is the SYN, from whichever side connected, and it is signed.
        expect(segments[0]).toMatch(/Flags \[S\]/);
        expect(segments[0]!.trim().startsWith(`${tortieConnects ? tortie : peerIp}.`), segments[0]).toBe(true);
      });
    }

    const failures: ReadonlyArray<{
      name: string;
      ours?: string;
      theirs?: string;
      counter: TcpSecurityCounter;
      words: RegExp;
    }> = [
      {
        name: 'a wrong password',
        ours: 'not-the-password',
        theirs: PASSWORD,
        counter: 'TCPMD5Failure',
        words: /^wrong password/,
      },
      {
        name: 'a password on their side only',
        theirs: PASSWORD,
        counter: 'TCPMD5Unexpected',
        words: /^peer signs but we have no key/,
      },
      {
        name: 'a password on our side only',
        ours: PASSWORD,
        counter: 'TCPMD5NotFound',
        words: /^we sign, peer does not/,
      },
    ];
    for (const failure of failures) {
      it(`${kind}: ${failure.name}: never Established; the kernel counts ${failure.counter}`, async (ctx) => {
        if (!requirePeers(kind)) return ctx.skip();
        const { tortie, peer: peerIp } = addresses();
        const dir = makeTempDir('md5');
        const before = counters();
        const peer = track(
          await startPeer(kind, {
            address: peerIp,
            as: PEER_AS,
            neighbors: [
              { address: tortie, as: TORTIE_AS, ...(failure.theirs !== undefined ? { password: failure.theirs } : {}) },
            ],
          }),
        );
        // tortie only listens: the segments that arrive are the peer's, so the counter names its side.
        const speaker = track(
          SpeakerProcess.start([
            '--router-id',
            tortie,
            '--as',
            String(TORTIE_AS),
            '--peer',
            `${peerIp},as=${PEER_AS},passive${failure.ours !== undefined ? `,password-file=${passwordFile(dir, failure.ours)}` : ''}`,
          ]),
        );
        const grown = await waitFor(
          () => ((counters()[failure.counter] ?? 0) > (before[failure.counter] ?? 0) ? counters() : undefined),
          {
            timeoutMs: 15_000,
            what: `${failure.counter} to go up`,
          },
        );
        // Retransmitted SYNs keep arriving for a few seconds: still nothing may get through.
        await new Promise((resolve) => setTimeout(resolve, 3000));
        expect(speaker.events.filter((e) => e.event === 'state' && e.to === 'Established')).toEqual([]);
        expect((await peer.sessions()).find((s) => s.neighbor === tortie)?.state).not.toBe('Established');
        const words = formatTcpSecurityFindings(diagnoseTcpSecurity(before, grown));
        expect(
          words.some((line) => failure.words.test(line)),
          words.join('\n'),
        ).toBe(true);
      });
    }
  }
});

describe('a password where the native part cannot load: refused loudly, never unsigned', () => {
  const track = stopAfterEachTest();

  it('bird2 without a password connects to tortie: never Established; tortie says why at start', async (ctx) => {
    if (!requirePeers('bird2')) return ctx.skip();
    const { tortie, peer: peerIp } = addresses();
    const dir = makeTempDir('md5');
    const peer = track(
      await startPeer('bird2', { address: peerIp, as: PEER_AS, neighbors: [{ address: tortie, as: TORTIE_AS }] }),
    );
    const speaker = track(
      SpeakerProcess.start(
        [
          '--router-id',
          tortie,
          '--as',
          String(TORTIE_AS),
          '--connect-retry',
          '1',
          '--peer',
          `${peerIp},as=${PEER_AS},password-file=${passwordFile(dir, PASSWORD)}`,
        ],
        { TORTIE_NATIVE_ADDON: join(dir, 'no-such-addon.node') },
      ),
    );
    const error = await speaker.waitForEvent((e) => e.event === 'error', { what: 'the refusal at start' });
    expect(error).toMatchObject({
      message: expect.stringMatching(
        new RegExp(
          `peer ${peerIp.replace(/\./g, '\\.')}: TCP-MD5/GTSM cannot be set here, so this peer is never connected: the native part is not built`,
        ),
      ),
    });
    // BIRD keeps connecting (unsigned) and tortie keeps trying (refused before the SYN): nothing gets up.
    await waitFor(
      () =>
        /inbound connection refused: the peer's TCP-MD5 or GTSM could not be set/.test(speaker.stderr.join('')) ||
        undefined,
      { timeoutMs: 15_000, what: 'an inbound connection refused' },
    );
    await new Promise((resolve) => setTimeout(resolve, 3000));
    expect(speaker.events.filter((e) => e.event === 'state' && e.to === 'Established')).toEqual([]);
    expect((await peer.sessions()).find((s) => s.neighbor === tortie)?.state).not.toBe('Established');
    expect(speaker.stderr.join('')).not.toContain(PASSWORD);
  });
});

describe.runIf(skipAll)('TCP-MD5 interop without the native part', () => {
  it('says why it cannot run (scripts/build-native.sh did not build dist/bgp/native/tcp-sockopt.node)', () => {
    if (process.env.CI === 'true') expect(nativeSocketOptions()).toMatchObject({ available: true });
    console.warn(`TCP-MD5 interop skipped: ${JSON.stringify(nativeSocketOptions())}`);
  });
});
