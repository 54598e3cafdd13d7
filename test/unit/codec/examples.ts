// RFC-shaped example messages, each as hand-built bytes and the value it must decode to. Shared by the
// message, framer and property tests. `encodes: false` marks shapes we decode but encode differently
// (e.g. one capability per optional parameter).

import { parsePrefix6 } from '../../../bgp/ip6.js';
import type { BgpMessage, CodecContext } from '../../../bgp/types.js';
import { attr, cat, hex, ip, message, prefix, u16, u32, update } from '../helpers/bytes.js';

export const CTX4: CodecContext = { fourOctetAs: true };
export const CTX2: CodecContext = { fourOctetAs: false };

export interface Example {
  name: string;
  bytes: Uint8Array;
  ctx: CodecContext;
  message: BgpMessage;
  /** False when encode produces a different (equivalent) shape. */
  encodes: boolean;
}

const NH = 0xc6120001; // 198.18.0.1

export const EXAMPLES: Example[] = [
  {
    name: 'OPEN, all capabilities in one optional parameter (BIRD style)',
    bytes: message(
      1,
      '04',
      u16(64512),
      u16(90),
      ip('10.0.0.1'),
      '1a',
      '02 18',
      '01 04 0001 00 01',
      '02 00',
      '46 00',
      '40 06 0078 0001 01 80',
      '41 04',
      u32(64512),
    ),
    ctx: CTX4,
    encodes: true,
    message: {
      type: 1,
      version: 4,
      myAs: 64512,
      holdTime: 90,
      bgpId: 0x0a000001,
      capabilities: [
        { code: 1, afi: 1, safi: 1 },
        { code: 2 },
        { code: 70 },
        { code: 64, restarting: false, restartTime: 120, families: [{ afi: 1, safi: 1, forwardingState: true }] },
        { code: 65, asn: 64512 },
      ],
    },
  },
  {
    name: 'OPEN, one capability per optional parameter (FRR/GoBGP style), R and N bits, unknown capability',
    bytes: message(
      1,
      '04',
      u16(23456),
      u16(180),
      ip('192.0.2.7'),
      '1a',
      '02 06 01 04 0001 00 01',
      '02 06 41 04',
      u32(4200000000),
      '02 04 40 02 c0 3c',
      '02 02 49 00',
    ),
    ctx: CTX4,
    encodes: false,
    message: {
      type: 1,
      version: 4,
      myAs: 23456,
      holdTime: 180,
      bgpId: 0xc0000207,
      capabilities: [
        { code: 1, afi: 1, safi: 1 },
        { code: 65, asn: 4200000000 },
        { code: 64, restarting: true, notification: true, restartTime: 60, families: [] },
        { code: 73, value: new Uint8Array(0), unknown: true },
      ],
    },
  },
  {
    name: 'OPEN, RFC 9072 extended optional parameters length',
    bytes: message(
      1,
      '04',
      u16(65000),
      u16(0),
      ip('10.1.1.1'),
      'ff ff',
      u16(11),
      '02',
      u16(8),
      '02 00 41 04',
      u32(65000),
    ),
    ctx: CTX4,
    encodes: false,
    message: {
      type: 1,
      version: 4,
      myAs: 65000,
      holdTime: 0,
      bgpId: 0x0a010101,
      capabilities: [{ code: 2 }, { code: 65, asn: 65000 }],
    },
  },
  {
    name: 'OPEN without optional parameters',
    bytes: message(1, '04', u16(65000), u16(3), ip('10.1.1.1'), '00'),
    ctx: CTX4,
    encodes: true,
    message: { type: 1, version: 4, myAs: 65000, holdTime: 3, bgpId: 0x0a010101, capabilities: [] },
  },
  {
    name: 'UPDATE, IPv4 unicast, 4-octet AS',
    bytes: update(
      '',
      cat(
        attr(0x40, 1, '00'),
        attr(0x40, 2, '02 02', u32(65001), u32(4200000000)),
        attr(0x40, 3, ip('198.18.0.1')),
        attr(0x80, 4, u32(0)),
        attr(0x40, 5, u32(100)),
        attr(0xc0, 8, u32((65001 * 65536 + 100) >>> 0), 'ffffff01'),
        attr(0xc0, 32, u32(65001), u32(100), u32(4000000000)),
      ),
      cat(prefix('10.244.1.0/26'), prefix('10.244.2.64/26'), prefix('0.0.0.0/0'), prefix('192.0.2.1/32')),
    ),
    ctx: CTX4,
    encodes: true,
    message: {
      type: 2,
      withdrawn: [],
      attributes: {
        origin: 0,
        asPath: [{ type: 2, asns: [65001, 4200000000] }],
        nextHop: NH,
        med: 0,
        localPref: 100,
        communities: [(65001 * 65536 + 100) >>> 0, 0xffffff01],
        largeCommunities: [65001, 100, 4000000000],
      },
      nlri: [
        { addr: 0x0af40100, len: 26 },
        { addr: 0x0af40240, len: 26 },
        { addr: 0, len: 0 },
        { addr: 0xc0000201, len: 32 },
      ],
    },
  },
  {
    name: 'UPDATE, withdrawals only',
    bytes: update(cat(prefix('10.244.1.0/26'), prefix('10.0.0.0/8'), prefix('172.16.0.0/12')), '', ''),
    ctx: CTX4,
    encodes: true,
    message: {
      type: 2,
      withdrawn: [
        { addr: 0x0af40100, len: 26 },
        { addr: 0x0a000000, len: 8 },
        { addr: 0xac100000, len: 12 },
      ],
      attributes: {},
      nlri: [],
    },
  },
  {
    name: 'UPDATE, End-of-RIB (RFC 4724 §2)',
    bytes: hex('ffffffffffffffffffffffffffffffff 0017 02 0000 0000'),
    ctx: CTX4,
    encodes: true,
    message: { type: 2, withdrawn: [], attributes: {}, nlri: [] },
  },
  {
    name: 'UPDATE, MP_REACH_NLRI and MP_UNREACH_NLRI for IPv4 unicast, reflected route attributes',
    bytes: update(
      '',
      cat(
        attr(0x80, 14, '0001 01 04', ip('198.18.0.1'), '00', prefix('10.244.3.0/26')),
        attr(0x80, 15, '0001 01', prefix('10.244.4.0/26')),
        attr(0x40, 1, '02'),
        attr(0x40, 2, ''),
        attr(0x40, 5, u32(200)),
        attr(0x40, 6, ''),
        attr(0xc0, 7, u32(64512), ip('10.0.0.9')),
        attr(0x80, 9, ip('10.0.0.2')),
        attr(0x80, 10, ip('10.0.0.1'), ip('10.0.0.3')),
      ),
      '',
    ),
    ctx: CTX4,
    encodes: true,
    message: {
      type: 2,
      withdrawn: [],
      nlri: [],
      attributes: {
        mpReach: { afi: 1, safi: 1, nextHop: Uint8Array.from(ip('198.18.0.1')), nlri: [{ addr: 0x0af40300, len: 26 }] },
        mpUnreach: { afi: 1, safi: 1, withdrawn: [{ addr: 0x0af40400, len: 26 }] },
        origin: 2,
        asPath: [],
        localPref: 200,
        atomicAggregate: true,
        aggregator: { asn: 64512, address: 0x0a000009 },
        originatorId: 0x0a000002,
        clusterList: [0x0a000001, 0x0a000003],
      },
    },
  },
  {
    name: 'UPDATE, IPv6 MP_REACH decoded (RFC 2545), unknown optional attributes kept',
    bytes: update(
      '',
      cat(
        attr(0x80, 14, '0002 01 10', '20010db8000000000000000000000001', '00', '40 20010db800000001'),
        attr(0x40, 1, '00'),
        attr(0x50, 2, '02 01', u32(65010)),
        attr(0xe0, 250, u32(65010), u32(1), u32(2)),
        attr(0x80, 99, 'abcd'),
      ),
      '',
    ),
    ctx: CTX4,
    encodes: false, // AS_PATH arrives with Extended Length though 6 bytes long; we send it short.
    message: {
      type: 2,
      withdrawn: [],
      nlri: [],
      attributes: {
        mpReach: {
          afi: 2,
          safi: 1,
          nextHop: hex('20010db8000000000000000000000001'),
          nlri: [],
          nlri6: [parsePrefix6('2001:db8:0:1::/64')],
        },
        origin: 0,
        asPath: [{ type: 2, asns: [65010] }],
        unknown: [
          { flags: 0xe0, type: 250, value: Uint8Array.from([...u32(65010), ...u32(1), ...u32(2)]) },
          { flags: 0x80, type: 99, value: hex('abcd') },
        ],
      },
    },
  },
  {
    name: 'UPDATE on a 2-octet session: AS_TRANS in AS_PATH/AGGREGATOR, real ASNs in AS4_PATH/AS4_AGGREGATOR',
    bytes: update(
      '',
      cat(
        attr(0x40, 1, '00'),
        attr(0x40, 2, '02 03', u16(65001), u16(23456), u16(65002)),
        attr(0x40, 3, ip('198.18.0.1')),
        attr(0xc0, 7, u16(23456), ip('10.0.0.9')),
        attr(0xc0, 17, '02 03', u32(65001), u32(4200000000), u32(65002)),
        attr(0xc0, 18, u32(4200000001), ip('10.0.0.9')),
      ),
      prefix('10.244.1.0/26'),
    ),
    ctx: CTX2,
    encodes: true,
    message: {
      type: 2,
      withdrawn: [],
      nlri: [{ addr: 0x0af40100, len: 26 }],
      attributes: {
        origin: 0,
        asPath: [{ type: 2, asns: [65001, 4200000000, 65002] }],
        nextHop: NH,
        aggregator: { asn: 4200000001, address: 0x0a000009 },
      },
    },
  },
  {
    name: 'UPDATE on a 2-octet session with only small ASNs (no AS4_PATH)',
    bytes: update(
      '',
      cat(
        attr(0x40, 1, '01'),
        attr(0x40, 2, '01 02', u16(65001), u16(65002), '02 01', u16(64512)),
        attr(0x40, 3, ip('198.18.0.1')),
      ),
      prefix('10.244.1.0/26'),
    ),
    ctx: CTX2,
    encodes: true,
    message: {
      type: 2,
      withdrawn: [],
      nlri: [{ addr: 0x0af40100, len: 26 }],
      attributes: {
        origin: 1,
        asPath: [
          { type: 1, asns: [65001, 65002] },
          { type: 2, asns: [64512] },
        ],
        nextHop: NH,
      },
    },
  },
  {
    name: 'NOTIFICATION Cease / Administrative Shutdown with an RFC 8203 message',
    bytes: message(
      3,
      '06 02 05',
      Array.from('bye!!', (c) => c.charCodeAt(0)),
    ),
    ctx: CTX4,
    encodes: true,
    message: {
      type: 3,
      code: 6,
      subcode: 2,
      data: Uint8Array.from([5, ...Array.from('bye!!', (c) => c.charCodeAt(0))]),
    },
  },
  {
    name: 'NOTIFICATION Hold Timer Expired, no data',
    bytes: message(3, '04 00'),
    ctx: CTX4,
    encodes: true,
    message: { type: 3, code: 4, subcode: 0, data: new Uint8Array(0) },
  },
  { name: 'KEEPALIVE', bytes: message(4), ctx: CTX4, encodes: true, message: { type: 4 } },
  {
    name: 'ROUTE-REFRESH IPv4 unicast (RFC 2918)',
    bytes: message(5, '0001 00 01'),
    ctx: CTX4,
    encodes: true,
    message: { type: 5, afi: 1, subtype: 0, safi: 1 },
  },
  {
    name: 'ROUTE-REFRESH BoRR (RFC 7313)',
    bytes: message(5, '0001 01 01'),
    ctx: CTX4,
    encodes: true,
    message: { type: 5, afi: 1, subtype: 1, safi: 1 },
  },
];
