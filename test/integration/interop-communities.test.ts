// Communities with a real BIRD 2, both ways: standard (RFC 1997) and large (RFC 8092). BIRD 2 connects
// through a recording relay, so the UPDATE it sends is also checked byte for byte: the LARGE_COMMUNITY
// attribute (optional transitive, type 32, 12 bytes per community) as BIRD writes it decodes to what BIRD
// set, and tortie's own UPDATE shows in BIRD's `show route all` as BGP.large_community.

import { describe, expect, it } from 'vitest';
import { decodeMessage } from '../../bgp/codec/message.js';
import { addressBlock } from '../harness/addresses.js';
import { requirePeers } from '../harness/binaries.js';
import { startPeer, waitForRoute, type PeerDaemon } from '../harness/index.js';
import { startRecordingRelay } from '../harness/relay.js';
import { isUpdate, SpeakerProcess, stopAfterEachTest } from './speaker-process.js';

const TORTIE_AS = 64512;
const BIRD_AS = 65001;

/** Every path attribute of one UPDATE as [flags, type, value bytes] (RFC 4271 §4.3), read by hand. */
function rawAttributes(update: Buffer): Array<[number, number, Buffer]> {
  const withdrawnLength = update.readUInt16BE(19);
  let at = 21 + withdrawnLength;
  const attrsLength = update.readUInt16BE(at);
  at += 2;
  const end = at + attrsLength;
  const out: Array<[number, number, Buffer]> = [];
  while (at < end) {
    const flags = update[at]!;
    const type = update[at + 1]!;
    const extended = (flags & 0x10) !== 0;
    const length = extended ? update.readUInt16BE(at + 2) : update[at + 2]!;
    const start = at + (extended ? 4 : 3);
    out.push([flags, type, update.subarray(start, start + length)]);
    at = start + length;
  }
  return out;
}

describe.skipIf(!requirePeers('bird2'))('interop: communities with BIRD 2', () => {
  const block = addressBlock(import.meta.url);
  const track = stopAfterEachTest();

  it('standard and large communities both ways; BIRD’s LARGE_COMMUNITY bytes decode to what it set', async () => {
    const tortieIp = block.host(1);
    const birdIp = block.host(2);
    const relayIp = block.host(3);
    // BIRD connects to the relay; the relay connects to tortie from BIRD's address.
    const relay = await startRecordingRelay({ listenAddress: relayIp, targetAddress: tortieIp });
    try {
      const bird: PeerDaemon = track(
        await startPeer('bird2', {
          address: birdIp,
          as: BIRD_AS,
          neighbors: [{ address: relayIp, as: TORTIE_AS }],
          announce: [{ prefix: '10.31.2.0/24', nextHop: '198.18.31.2' }],
          birdExportStatements: [
            'if net = 10.31.2.0/24 then { bgp_large_community.add((65001, 7, 4000000000)); bgp_community.add((65001, 42)); }',
          ],
        }),
      );
      const speaker = track(
        SpeakerProcess.start([
          '--router-id',
          tortieIp,
          '--as',
          String(TORTIE_AS),
          '--listen',
          `${tortieIp}:179`,
          '--peer',
          `${birdIp},as=${BIRD_AS},passive`,
          '--announce',
          '10.244.31.0/26,nexthop=198.18.31.9,community=64512:100,large-community=64512:100:200+4200000000:1:2',
        ]),
      );

      // BIRD → tortie: decoded by tortie (its JSON events) ...
      const event = await speaker.waitForEvent(
        (e) => isUpdate(e) && e.announce.some((r) => r.prefix === '10.31.2.0/24'),
        { what: 'the BIRD route', timeoutMs: 30_000 },
      );
      const route = isUpdate(event) ? event.announce.find((r) => r.prefix === '10.31.2.0/24') : undefined;
      expect(route?.largeCommunities).toEqual(['65001:7:4000000000']);
      expect(route?.communities).toEqual(['65001:42']);

      // ... and byte for byte as BIRD wrote it: flags optional + transitive, type 32, one 12-byte triple.
      const updates = relay.messages.filter((m) => m.direction === 'a-to-b' && m.type === 2).map((m) => m.bytes);
      const carrying = updates.find((u) => rawAttributes(u).some(([, type]) => type === 32));
      expect(carrying, 'BIRD sent an UPDATE with LARGE_COMMUNITY').toBeDefined();
      const [flags, , value] = rawAttributes(carrying!).find(([, type]) => type === 32)!;
      expect(flags & 0xe0).toBe(0xc0);
      expect(value.toString('hex')).toBe('0000fde9' + '00000007' + 'ee6b2800');
      const { message } = decodeMessage(carrying!, { fourOctetAs: true });
      expect(message.type === 2 ? message.attributes.largeCommunities : undefined).toEqual([65001, 7, 4000000000]);

      // tortie → BIRD: as BIRD's own CLI shows the route.
      const atBird = await waitForRoute(bird, '10.244.31.0/26', () => true, 30_000);
      expect(atBird.communities).toEqual(['64512:100']);
      expect(atBird.largeCommunities).toEqual(['64512:100:200', '4200000000:1:2']);
    } finally {
      await relay.close();
    }
  });
});
