// IPv6 in the routing core: RIB keys of both families, the Adj-RIB-In fed from MP_REACH/MP_UNREACH, attribute
// sets told apart by their IPv6 next hop, the IPv6 next-hop rules on export (RFC 2545 §3 with RFC 4271
// §5.1.3 and RFC 4456 §10), and End-of-RIB awaited per family (RFC 4724 §2).
import { describe, expect, it } from 'vitest';
import { encodeUpdates6, encodeWithdrawals6, decodeMessage } from '../../../bgp/codec/index.js';
import { endOfRibComplete } from '../../../bgp/end-of-rib.js';
import { parsePrefix, prefixKey } from '../../../bgp/ip.js';
import { formatIpv6, parseIpv6, parsePrefix6 } from '../../../bgp/ip6.js';
import { IPV4_UNICAST, IPV6_UNICAST } from '../../../bgp/negotiation.js';
import { AdjRibIn, AttrTable, rewriteForPeer, type PeerPolicy, type RouteSource } from '../../../bgp/rib/index.js';
import { compareRibKeys, ribKeyOf, ribPrefix } from '../../../bgp/rib/prefix6.js';
import type { PathAttributes, UpdateMessage } from '../../../bgp/types.js';

const source: RouteSource = { address: 0x7f000b01, routerId: 0x7f000b01, asn: 64512, ebgp: false, rrClient: true };
const local = { asn: 64512, routerId: 0x7f000001, address: 0x7f000001, address6: parseIpv6('fd00:51::1') };
const peer = (extra: Partial<PeerPolicy> = {}): PeerPolicy => ({
  address: 0x7f000c01,
  asn: 64512,
  ebgp: false,
  rrClient: true,
  ...extra,
});
const v6attrs: PathAttributes = { origin: 0, asPath: [], nextHop6: parseIpv6('fd00:51::11') };

describe('RIB keys of both families', () => {
  it('IPv4 keys stay numbers, IPv6 keys are 17-character strings; IPv4 sorts first', () => {
    const v4 = ribKeyOf(parsePrefix('10.0.0.0/8'));
    const v6 = ribKeyOf(parsePrefix6('fd00::/8'));
    expect(v4).toBe(prefixKey(parsePrefix('10.0.0.0/8')));
    expect(typeof v6).toBe('string');
    expect((v6 as string).length).toBe(17);
    expect([v6, v4].sort(compareRibKeys)).toEqual([v4, v6]);
    expect(ribPrefix(v4)).toEqual(parsePrefix('10.0.0.0/8'));
    expect(ribPrefix(v6)).toBe(v6);
  });
});

describe('Adj-RIB-In with IPv6 unicast', () => {
  const ctx = { fourOctetAs: true };
  const update = (bytes: Uint8Array): UpdateMessage => decodeMessage(bytes, ctx).message as UpdateMessage;

  it('announces and withdraws IPv6 keys; one shared attribute set per UPDATE; next hops keep sets apart', () => {
    const table = new AttrTable();
    const rib = new AdjRibIn(source, table);
    const a = parsePrefix6('fd00:10:244::/122');
    const b = parsePrefix6('fd00:10:244::40/122');
    expect(rib.apply(update(encodeUpdates6(v6attrs, [a, b], ctx)[0]!)).sort()).toEqual([a, b].sort());
    expect(rib.get(a)?.attrs).toBe(rib.get(b)?.attrs);
    expect(formatIpv6(rib.get(a)!.attrs.nextHop6!)).toBe('fd00:51::11');
    expect(rib.get(a)?.prefix6).toBe(a);
    // The same attributes with another next hop are another set.
    rib.apply(update(encodeUpdates6({ ...v6attrs, nextHop6: parseIpv6('fd00:51::12') }, [b], ctx)[0]!));
    expect(rib.get(a)?.attrs).not.toBe(rib.get(b)?.attrs);
    expect(table.size).toBe(2);
    expect(rib.apply(update(encodeWithdrawals6([a])[0]!))).toEqual([a]);
    expect(rib.get(a)).toBeUndefined();
    rib.clear();
    expect(table.size).toBe(0);
  });
});

describe('IPv6 next hop on export', () => {
  const nh = (attrs: PathAttributes | null): string | undefined =>
    attrs?.nextHop6 === undefined ? undefined : formatIpv6(attrs.nextHop6);

  it.each([
    ['reflected to an iBGP client: kept (RFC 4456 §10)', peer(), 'fd00:51::11'],
    ["iBGP with 'self': ours", peer({ nextHop: 'self' }), 'fd00:51::1'],
    ['eBGP: ours (RFC 4271 §5.1.3)', peer({ ebgp: true, asn: 65001, rrClient: false }), 'fd00:51::1'],
    ["eBGP with 'keep': kept", peer({ ebgp: true, asn: 65001, rrClient: false, nextHop: 'keep' }), 'fd00:51::11'],
  ])('%s', (_name, to, expected) => {
    const out = rewriteForPeer({ ...v6attrs, nextHop6LinkLocal: parseIpv6('fe80::1') }, source, to, local);
    expect(nh(out)).toBe(expected);
    expect(out?.nextHop).toBeUndefined();
    expect(out?.nextHop6LinkLocal).toBeUndefined(); // a link-local next hop means something on its own link only
  });

  it('ours is needed but we have no IPv6 address: not sent', () => {
    const { address6: _a, ...noV6 } = local;
    expect(rewriteForPeer(v6attrs, source, peer({ ebgp: true, asn: 65001, rrClient: false }), noV6)).toBeNull();
  });
});

describe('End-of-RIB per family (RFC 4724 §2)', () => {
  const both = { families: [IPV4_UNICAST, IPV6_UNICAST] };
  it('complete only when every negotiated family sent its marker, in either order; a new session starts over', () => {
    const p = {};
    expect(endOfRibComplete(p, 1, both, IPV4_UNICAST)).toBe(false);
    expect(endOfRibComplete(p, 1, both, IPV6_UNICAST)).toBe(true);
    expect(endOfRibComplete(p, 2, both, IPV6_UNICAST)).toBe(false);
    expect(endOfRibComplete(p, 2, both, IPV4_UNICAST)).toBe(true);
  });
  it('a family the session did not negotiate is not waited for; an unknown family changes nothing', () => {
    expect(endOfRibComplete({}, 1, { families: [IPV4_UNICAST] }, IPV4_UNICAST)).toBe(true);
    expect(endOfRibComplete({}, 1, { families: [IPV6_UNICAST] }, IPV6_UNICAST)).toBe(true);
    expect(endOfRibComplete({}, 1, both, { afi: 1, safi: 128 })).toBe(false);
  });
});
