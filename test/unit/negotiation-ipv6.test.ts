// The Multiprotocol capability for IPv6 unicast (RFC 4760 §8, RFC 2545) and graceful restart per AFI/SAFI
// (RFC 4724 §3) in the OPEN exchange: what we offer, what both agree on, and the bytes on the wire.
import { describe, expect, it } from 'vitest';
import { decodeMessage, encodeMessage } from '../../bgp/codec/index.js';
import {
  IPV4_UNICAST,
  IPV6_UNICAST,
  buildOpen,
  negotiateCapabilities,
  negotiatedFamily,
  ourCapabilities,
  restartFamily,
} from '../../bgp/negotiation.js';
import type { Capability, OpenMessage } from '../../bgp/types.js';
import { toHex } from './helpers/bytes.js';

const hold = { holdTime: 90, keepaliveTime: 30 };
const local = { localAs: 64551, peerAs: 64551 };
const open = (capabilities: Capability[]): OpenMessage =>
  buildOpen({ localAs: 64551, routerId: 0x0a000002 }, 90, capabilities);

describe('IPv6 unicast in the OPEN exchange', () => {
  it('offers one Multiprotocol capability per family, and GR names each family', () => {
    const caps = ourCapabilities(64551, { restartTime: 120, forwardingState: true }, [IPV4_UNICAST, IPV6_UNICAST]);
    const bytes = encodeMessage(open(caps), { fourOctetAs: false });
    // Capability 1, length 4: AFI 2, reserved, SAFI 1 (RFC 4760 §8).
    expect(toHex(bytes)).toContain('010400020001');
    expect(toHex(bytes)).toContain('010400010001');
    // Graceful restart (64): restart time 120, then AFI 1/SAFI 1 and AFI 2/SAFI 1, each with the F bit (0x80).
    expect(toHex(bytes)).toContain('400a0078000101800002018');
    const back = decodeMessage(bytes, { fourOctetAs: false }).message as OpenMessage;
    expect(back.capabilities).toEqual(caps);
  });

  it('the default stays IPv4 unicast only', () => {
    const caps = ourCapabilities(64551, undefined);
    expect(caps.filter((c) => c.code === 1)).toEqual([{ code: 1, afi: 1, safi: 1 }]);
  });

  it.each([
    ['both offer IPv6', [IPV4_UNICAST, IPV6_UNICAST], [IPV4_UNICAST, IPV6_UNICAST], true, true],
    ['only we offer IPv6', [IPV4_UNICAST, IPV6_UNICAST], [IPV4_UNICAST], true, false],
    ['an IPv6-only peer', [IPV4_UNICAST, IPV6_UNICAST], [IPV6_UNICAST], false, true],
    ['we offer IPv4 only', [IPV4_UNICAST], [IPV4_UNICAST, IPV6_UNICAST], true, false],
  ])('%s', (_name, ours, theirs, v4, v6) => {
    const n = negotiateCapabilities(
      ourCapabilities(64551, undefined, ours),
      open(ourCapabilities(64551, undefined, theirs)),
      local,
      hold,
    );
    expect(negotiatedFamily(n, IPV4_UNICAST)).toBe(v4);
    expect(negotiatedFamily(n, IPV6_UNICAST)).toBe(v6);
  });

  it('a peer with no Multiprotocol capability speaks IPv4 unicast only (RFC 4760 §8)', () => {
    const theirs = open([{ code: 2 }, { code: 65, asn: 64551 }]);
    const n = negotiateCapabilities(
      ourCapabilities(64551, undefined, [IPV4_UNICAST, IPV6_UNICAST]),
      theirs,
      local,
      hold,
    );
    expect(n.families).toEqual([IPV4_UNICAST]);
  });

  it("the peer's GR entry per family: retained only for the families it names (RFC 4724 §4.2)", () => {
    const gr: Capability = {
      code: 64,
      restarting: true,
      restartTime: 120,
      families: [{ afi: 2, safi: 1, forwardingState: true }],
    };
    const n = negotiateCapabilities(
      ourCapabilities(64551, undefined, [IPV4_UNICAST, IPV6_UNICAST]),
      open([{ code: 1, afi: 1, safi: 1 }, { code: 1, afi: 2, safi: 1 }, gr]),
      local,
      hold,
    );
    expect(restartFamily(n.gracefulRestart, IPV6_UNICAST)).toEqual({ afi: 2, safi: 1, forwardingState: true });
    expect(restartFamily(n.gracefulRestart, IPV4_UNICAST)).toBeUndefined();
  });
});
