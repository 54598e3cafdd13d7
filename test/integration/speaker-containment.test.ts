// The built `tortie bgp speaker` process and a peer that sends what no peer should: a 4096-byte
// ROUTE-REFRESH. Its NOTIFICATION used to be longer than 4096 bytes; the writer threw inside the socket's
// data handler and the whole process exited, taking every other session with it. Now the bad peer gets the
// NOTIFICATION RFC 4271 §6.1 names (1/2, the Length field as data) — or, for a BoRR, RFC 7313 §5's 7/1
// with the message cut to fit — and the process and its session with a real BIRD stay up.
//
// The bad peer is a raw TCP socket scripted here (127.0.39.2); the good peer is BIRD 1.6 (127.0.39.3).
import * as net from 'node:net';
import { describe, expect, it } from 'vitest';
import { decodeMessage, encodeMessage, MessageFramer } from '../../bgp/codec/index.js';
import { parseIpv4 } from '../../bgp/ip.js';
import type { BgpMessage, NotificationMessage } from '../../bgp/types.js';
import { addressBlock } from '../harness/addresses.js';
import { requirePeers } from '../harness/binaries.js';
import { startPeer, waitForSession } from '../harness/index.js';
import { isState, SpeakerProcess, stopAfterEachTest } from './speaker-process.js';

const block = addressBlock(import.meta.url);
const TORTIE = block.host(1);
const RAW = block.host(2);
const BIRD = block.host(3);
const TORTIE_AS = 64512;
const RAW_AS = 65001;
const BIRD_AS = 65002;

/** A scripted BGP peer on a real TCP connection: sends bytes, keeps what tortie sends, decoded. */
class RawPeer {
  readonly received: BgpMessage[] = [];
  readonly raw: Uint8Array[] = [];
  closed: Promise<void>;
  private readonly framer = new MessageFramer();

  private constructor(readonly socket: net.Socket) {
    socket.on('data', (chunk: Buffer) => {
      for (const m of this.framer.push(new Uint8Array(chunk))) {
        this.raw.push(m);
        this.received.push(decodeMessage(m, { fourOctetAs: true }).message);
      }
    });
    this.closed = new Promise((resolve) => socket.on('close', () => resolve()));
    socket.on('error', () => {});
  }

  static async connect(): Promise<RawPeer> {
    const socket = net.connect({ host: TORTIE, port: 179, localAddress: RAW });
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', () => resolve());
      socket.once('error', reject);
    });
    return new RawPeer(socket);
  }

  send(bytes: Uint8Array): void {
    this.socket.write(bytes);
  }

  open(): void {
    const caps = [{ code: 1 as const, afi: 1, safi: 1 }, { code: 2 as const }, { code: 65 as const, asn: RAW_AS }];
    this.send(
      encodeMessage(
        { type: 1, version: 4, myAs: RAW_AS, holdTime: 90, bgpId: parseIpv4(RAW), capabilities: caps },
        { fourOctetAs: false },
      ),
    );
    this.send(encodeMessage({ type: 4 }, { fourOctetAs: false }));
  }

  notifications(): NotificationMessage[] {
    return this.received.filter((m): m is NotificationMessage => m.type === 3);
  }

  stop(): void {
    this.socket.destroy();
  }
}

/** A whole message built by hand: marker, Length, type, body. */
function message(type: number, body: Uint8Array): Uint8Array {
  const out = new Uint8Array(19 + body.length).fill(0xff, 0, 16);
  out[16] = out.length >>> 8;
  out[17] = out.length & 0xff;
  out[18] = type;
  out.set(body, 19);
  return out;
}

describe.skipIf(!requirePeers('bird1'))(
  'tortie bgp speaker: a malformed message resets one session, never the process',
  () => {
    const track = stopAfterEachTest();

    it('a 4096-byte ROUTE-REFRESH: NOTIFICATION 1/2 (and 7/1 for a BoRR), the process keeps running, the BIRD session stays Established', async () => {
      const bird = track(
        await startPeer('bird1', {
          address: BIRD,
          as: BIRD_AS,
          neighbors: [{ address: TORTIE, as: TORTIE_AS }],
          announce: [{ prefix: '10.99.1.0/24', nextHop: '198.18.0.9' }],
        }),
      );
      const speaker = track(
        SpeakerProcess.start(
          [
            '--router-id',
            TORTIE,
            '--as',
            String(TORTIE_AS),
            '--connect-retry',
            '1',
            '--hold',
            '9',
            '--peer',
            `${RAW},as=${RAW_AS},passive`,
            '--peer',
            `${BIRD},as=${BIRD_AS},passive`,
          ],
          {
            TORTIE_LOG_LEVEL: 'info',
          },
        ),
      );
      await speaker.waitForEvent(isState(BIRD, 'Established'), {
        what: 'the BIRD session Established',
        timeoutMs: 20_000,
      });

      for (const subtype of [0, 1]) {
        const raw = await RawPeer.connect();
        const from = speaker.events.length;
        raw.open();
        await speaker.waitForEvent(isState(RAW, 'Established'), { from, what: 'the raw peer Established' });
        const mark = speaker.events.length;
        const body = new Uint8Array(4096 - 19);
        body.set([0, 1, subtype, 1]);
        const rr = message(5, body);
        expect(rr.length).toBe(4096);
        raw.send(rr);
        await raw.closed;

        // The bad peer got the NOTIFICATION the RFC names, and nothing longer than 4096 bytes.
        const notifications = raw.notifications();
        if (subtype === 0) {
          expect(notifications.map((n) => [n.code, n.subcode, Buffer.from(n.data).toString('hex')])).toEqual([
            [1, 2, '1000'],
          ]);
        } else {
          expect(notifications.map((n) => [n.code, n.subcode, n.data.length])).toEqual([[7, 1, 4096 - 21]]);
          expect(raw.raw.find((m) => m[18] === 3)?.length).toBe(4096);
        }
        await speaker.waitForEvent((e) => e.event === 'notification' && e.peer === RAW && e.direction === 'sent', {
          from: mark,
          what: 'the NOTIFICATION event',
        });
        raw.stop();

        // The process is alive and answers; BIRD's session never moved and its route is still there.
        const rib = await speaker.rib();
        expect(rib.some((r) => r.prefix === '10.99.1.0/24' && r.from === BIRD)).toBe(true);
        expect(speaker.events.slice(mark).filter((e) => e.event === 'state' && e.peer === BIRD)).toEqual([]);
        await waitForSession(bird, TORTIE, 'Established');
        // After a NOTIFICATION the peer may come back only once the error wait is over (5 s, DampPeerOscillations):
        // the session goes Active again then.
        await speaker.waitForEvent((e) => e.event === 'state' && e.peer === RAW && e.to === 'Active', {
          from: mark,
          timeoutMs: 20_000,
          what: 'the raw peer Active again after the error wait',
        });
      }
      expect(speaker.stderr.join('')).not.toMatch(/Error: encoded message is \d+ bytes/);
    });
  },
);
