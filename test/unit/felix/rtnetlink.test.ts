// felix/rtnetlink.ts: `ip route save` streams decoded into KernelRoutes. Golden bytes captured from
// iproute2 6.1 on a namespace with every route shape felix meets (decoded here next to `ip -json route show`
// of the same table at the same moment), messages built by a separate test encoder (route-dump-bytes.ts)
// field by field, both byte orders, and every cut of a dump: a short or foreign stream is an error naming
// the offset, never a wrong route.
import { describe, expect, it } from 'vitest';
import { parseReadAll, parseRouteJson } from '../../../felix/iproute2.js';
import { KernelError, normalizeKernelRoute, type KernelRoute } from '../../../felix/kernel.js';
import {
  decodeRouteDump,
  frameRouteDump,
  ROUTE_FLAG_NAMES,
  ROUTE_SCOPE_NAMES,
  ROUTE_TYPE_NAMES,
  RouteDumpError,
} from '../../../felix/rtnetlink.js';
import { routeDump, routeMessage, type RouteMessageSpec } from './route-dump-bytes.js';

// `ip -n NS -4 route save table main | xxd -p`, iproute2 6.1, Linux 6.1 (x86-64: little-endian). The table:
//   default via 198.18.61.254 dev eth0 metric 100
//   10.9.0.0/16 via 198.18.61.1 dev eth0 proto bird
//   blackhole 10.244.1.0/26 proto 80
//   10.244.1.5 dev calie8e9a5cf531 proto 80 scope link linkdown
//   10.244.1.9 dev caliDOWN0000000 proto 80 scope link linkdown
//   10.244.2.0/26 via 198.18.61.202 dev eth0 proto 80 onlink
//   unreachable 10.250.0.0/16
//   prohibit 10.251.0.0/16 proto 250
//   10.252.0.0/16 via 198.18.61.3 dev eth0 mtu 1400
//   10.253.0.0/16 nexthop via 198.18.61.4 dev eth0 weight 1 nexthop via 198.18.61.5 dev eth0 weight 1
//   10.254.0.0/16 dev eth0 proto static scope link src 198.18.61.1
//   198.18.61.0/24 dev eth0 proto kernel scope link src 198.18.61.1
// (and 10.77.0.0/16 in table 100, which `table main` left out).
const GOLDEN_HEX = [
  '241231453c00000018002200a542036b9509000002000000fe0300010000000008000f00fe000000080006006400000008000500c6123dfe',
  '08000400030000003c00000018002200a542036b9509000002100000fe0c00010000000008000f00fe000000080001000a09000008000500',
  'c6123d0108000400030000002c00000018002200a542036b95090000021a0000fe5000060000000008000f00fe000000080001000af40100',
  '3400000018002200a542036b9509000002200000fe50fd011000000008000f00fe000000080001000af40105080004000500000034000000',
  '18002200a542036b9509000002200000fe50fd011000000008000f00fe000000080001000af4010908000400070000003c00000018002200',
  'a542036b95090000021a0000fe5000010400000008000f00fe000000080001000af4020008000500c6123dca08000400030000002c000000',
  '18002200a542036b9509000002100000fe0300070000000008000f00fe000000080001000afa00002c00000018002200a542036b95090000',
  '02100000fefa00080000000008000f00fe000000080001000afb00004800000018002200a542036b9509000002100000fe03000100000000',
  '08000f00fe000000080001000afc00000c000800080002007805000008000500c6123d0308000400030000005000000018002200a542036b',
  '9509000002100000fe0300010000000008000f00fe000000080001000afd000024000900100000000300000008000500c6123d0410000000',
  '0300000008000500c6123d053c00000018002200a542036b9509000002100000fe04fd010000000008000f00fe000000080001000afe0000',
  '08000700c6123d0108000400030000003c00000018002200a542036b9509000002180000fe02fd010000000008000f00fe00000008000100',
  'c6123d0008000700c6123d010800040003000000',
].join('');

/** `ip -n NS -json route show table main` of the same table, a moment later. */
const GOLDEN_JSON =
  '[{"dst":"default","gateway":"198.18.61.254","dev":"eth0","metric":100,"flags":[]},{"dst":"10.9.0.0/16","gateway":"198.18.61.1","dev":"eth0","protocol":"bird","flags":[]},{"type":"blackhole","dst":"10.244.1.0/26","protocol":"80","flags":[]},{"dst":"10.244.1.5","dev":"calie8e9a5cf531","protocol":"80","scope":"link","flags":["linkdown"]},{"dst":"10.244.1.9","dev":"caliDOWN0000000","protocol":"80","scope":"link","flags":["linkdown"]},{"dst":"10.244.2.0/26","gateway":"198.18.61.202","dev":"eth0","protocol":"80","flags":["onlink"]},{"type":"unreachable","dst":"10.250.0.0/16","flags":[]},{"type":"prohibit","dst":"10.251.0.0/16","protocol":"250","flags":[]},{"dst":"10.252.0.0/16","gateway":"198.18.61.3","dev":"eth0","flags":[],"metrics":[{"mtu":1400}]},{"dst":"10.253.0.0/16","flags":[],"nexthops":[{"gateway":"198.18.61.4","dev":"eth0","weight":1,"flags":[]},{"gateway":"198.18.61.5","dev":"eth0","weight":1,"flags":[]}]},{"dst":"10.254.0.0/16","dev":"eth0","protocol":"static","scope":"link","prefsrc":"198.18.61.1","flags":[]},{"dst":"198.18.61.0/24","dev":"eth0","protocol":"kernel","scope":"link","prefsrc":"198.18.61.1","flags":[]}]';

/** The namespace's interfaces (`ip -json link show`: ifindex → ifname). */
const GOLDEN_LINKS = new Map<number, string>([
  [1, 'lo'],
  [2, 'eth0-peer'],
  [3, 'eth0'],
  [4, 'wl0'],
  [5, 'calie8e9a5cf531'],
  [6, 'wl1'],
  [7, 'caliDOWN0000000'],
]);

const route = (fields: Partial<KernelRoute> & { dst: string }): KernelRoute => ({
  type: 'unicast',
  protocol: '3',
  scope: 'global',
  flags: [],
  ...fields,
});

const GOLDEN_ROUTES: KernelRoute[] = [
  route({ dst: '0.0.0.0/0', gateway: '198.18.61.254', dev: 'eth0', metric: 100 }),
  route({ dst: '10.9.0.0/16', gateway: '198.18.61.1', dev: 'eth0', protocol: '12' }),
  route({ type: 'blackhole', dst: '10.244.1.0/26', protocol: '80' }),
  route({ dst: '10.244.1.5/32', dev: 'calie8e9a5cf531', protocol: '80', scope: 'link' }),
  route({ dst: '10.244.1.9/32', dev: 'caliDOWN0000000', protocol: '80', scope: 'link' }),
  route({ dst: '10.244.2.0/26', gateway: '198.18.61.202', dev: 'eth0', protocol: '80', flags: ['onlink'] }),
  route({ type: 'unreachable', dst: '10.250.0.0/16' }),
  route({ type: 'prohibit', dst: '10.251.0.0/16', protocol: '250' }),
  route({ dst: '10.252.0.0/16', gateway: '198.18.61.3', dev: 'eth0' }),
  route({ dst: '10.253.0.0/16' }),
  route({ dst: '10.254.0.0/16', dev: 'eth0', protocol: '4', scope: 'link', prefsrc: '198.18.61.1' }),
  route({ dst: '198.18.61.0/24', dev: 'eth0', protocol: '2', scope: 'link', prefsrc: '198.18.61.1' }),
];

const golden = Buffer.from(GOLDEN_HEX, 'hex');

function decode(bytes: Buffer, links: ReadonlyMap<number, string> = GOLDEN_LINKS): KernelRoute[] {
  return decodeRouteDump(bytes, frameRouteDump(bytes), links);
}

describe('decodeRouteDump: golden bytes from iproute2 6.1', () => {
  it('decodes every route of the captured table, in the kernel order', () => {
    expect(GOLDEN_ROUTES.length).toBe(12);
    expect(frameRouteDump(golden)).toEqual({ littleEndian: true, end: golden.length, count: 12 });
    expect(decode(golden)).toEqual(GOLDEN_ROUTES);
  });

  it('gives what ip -json printed for the same table, normalized; already in normal form (no copy)', () => {
    const fromJson = parseRouteJson(GOLDEN_JSON).map(normalizeKernelRoute);
    expect(fromJson).toHaveLength(12);
    const decoded = decode(golden);
    expect(decoded).toEqual(fromJson);
    for (const r of decoded) expect(normalizeKernelRoute(r)).toBe(r);
  });

  it('names an interface it does not know as ip does: if<index>', () => {
    const routes = decode(golden, new Map([[3, 'eth0']]));
    expect(routes[3]?.dev).toBe('if5');
    expect(routes[0]?.dev).toBe('eth0');
  });
});

describe('decodeRouteDump: messages from the test encoder', () => {
  const one = (spec: RouteMessageSpec, le = true): KernelRoute[] =>
    decode(
      routeDump([routeMessage(spec, le)], le),
      new Map([
        [3, 'eth0'],
        [9, 'cali0123456789a'],
      ]),
    );

  it('every field, in both byte orders', () => {
    for (const le of [true, false]) {
      expect(
        one(
          {
            dstLen: 26,
            dst: '10.1.2.64',
            gateway: '198.18.61.7',
            oif: 3,
            protocol: 80,
            flags: 0x4,
            metric: 20,
            prefsrc: '198.18.61.1',
          },
          le,
        ),
      ).toEqual([
        {
          type: 'unicast',
          dst: '10.1.2.64/26',
          protocol: '80',
          scope: 'global',
          flags: ['onlink'],
          gateway: '198.18.61.7',
          dev: 'eth0',
          prefsrc: '198.18.61.1',
          metric: 20,
        },
      ]);
      expect(one({ dstLen: 32, dst: '10.1.2.3', oif: 9, protocol: 80, scope: 253 }, le)).toEqual([
        { type: 'unicast', dst: '10.1.2.3/32', protocol: '80', scope: 'link', flags: [], dev: 'cali0123456789a' },
      ]);
      expect(one({ dstLen: 0, type: 6 }, le)).toEqual([
        { type: 'blackhole', dst: '0.0.0.0/0', protocol: '3', scope: 'global', flags: [] },
      ]);
    }
  });

  it('type and scope names as ip prints them, numbers for the rest', () => {
    ROUTE_TYPE_NAMES.forEach((name, type) => expect(one({ dstLen: 8, dst: '10.0.0.0', type })[0]?.type).toBe(name));
    expect(one({ dstLen: 8, dst: '10.0.0.0', type: 77 })[0]?.type).toBe('77');
    for (const [scope, name] of Object.entries(ROUTE_SCOPE_NAMES))
      expect(one({ dstLen: 8, dst: '10.0.0.0', scope: Number(scope) })[0]?.scope).toBe(name);
    expect(one({ dstLen: 8, dst: '10.0.0.0', scope: 100 })[0]?.scope).toBe('100');
  });

  it("flags: ip's names sorted, linkdown left out (as the normal form has it), unprinted bits ignored", () => {
    expect(ROUTE_FLAG_NAMES.length).toBe(11);
    for (const [bit, name] of ROUTE_FLAG_NAMES)
      expect(one({ dstLen: 8, dst: '10.0.0.0', flags: bit })[0]?.flags).toEqual(name === 'linkdown' ? [] : [name]);
    expect(one({ dstLen: 8, dst: '10.0.0.0', flags: 0x4 | 0x1 | 0x10 | 0x200 })[0]?.flags).toEqual(['dead', 'onlink']);
  });

  it('metric 0 is left out, as the normal form has it', () => {
    expect(one({ dstLen: 8, dst: '10.0.0.0', metric: 0 })[0]).not.toHaveProperty('metric');
  });

  it('only IPv4 routes of the main table (RTA_TABLE over rtm_table, as ip reads it)', () => {
    expect(one({ dstLen: 8, dst: '10.0.0.0', table: 100 })).toEqual([]);
    expect(one({ dstLen: 8, dst: '10.0.0.0', table: 1000 })).toEqual([]);
    expect(one({ dstLen: 8, dst: '10.0.0.0', family: 10 })).toEqual([]);
  });

  it("the first of two attributes of one type counts (ip's parse_rtattr)", () => {
    const spec = {
      dstLen: 8,
      dst: '10.0.0.0',
      gateway: '198.18.61.1',
      extra: [{ type: 5, payload: Buffer.from([198, 18, 61, 99]) }],
    };
    expect(one(spec)[0]?.gateway).toBe('198.18.61.1');
  });

  it('host bits of a destination are cleared (one spelling per prefix)', () => {
    expect(one({ dstLen: 24, dst: '10.1.2.3' })[0]?.dst).toBe('10.1.2.0/24');
  });

  it('10,000 routes: all of them, each distinct destination once', () => {
    const messages = Array.from({ length: 10_000 }, (_, i) =>
      routeMessage({
        dstLen: 26,
        dst: `10.${64 + (i >> 10)}.${(i >> 2) & 255}.${(i & 3) * 64}`,
        gateway: '198.18.61.2',
        oif: 3,
        protocol: 80,
        flags: 0x4,
      }),
    );
    const routes = decode(routeDump(messages), new Map([[3, 'eth0']]));
    expect(routes).toHaveLength(10_000);
    expect(new Set(routes.map((r) => r.dst)).size).toBe(10_000);
  });
});

describe('frameRouteDump: the stream and where it ends', () => {
  const three = [
    routeMessage({ dstLen: 26, dst: '10.0.0.0', type: 6, protocol: 80 }),
    routeMessage({ dstLen: 32, dst: '10.0.0.1', oif: 3, protocol: 80, scope: 253 }),
    routeMessage({ dstLen: 26, dst: '10.0.0.64', gateway: '198.18.61.2', oif: 3, protocol: 80, flags: 0x4, metric: 5 }),
  ];
  const dump = routeDump(three);
  const full = decode(dump);

  it("stops where the next command's text begins", () => {
    const text = Buffer.from('[]\n[{"ifindex":3,"ifname":"eth0"}]\n');
    const frame = frameRouteDump(Buffer.concat([dump, text]));
    expect(frame).toEqual({ littleEndian: true, end: dump.length, count: 3 });
    expect(frameRouteDump(routeDump([]))).toEqual({ littleEndian: true, end: 4, count: 0 });
  });

  it('refuses a stream without the magic, naming what it found', () => {
    expect(() => frameRouteDump(Buffer.from('[{"dst":"default"}]'))).toThrow(
      /starts with 0x5b7b2264, not the ip route save magic 0x45311224/,
    );
    expect(() => frameRouteDump(Buffer.alloc(2))).toThrow(/2 bytes, too short/);
  });

  it('a cut at every offset: an error naming the offset, or the whole messages before the cut — never a wrong route', () => {
    let errors = 0;
    for (let cut = 4; cut < dump.length; cut++) {
      const part = dump.subarray(0, cut);
      let routes: KernelRoute[];
      try {
        routes = decode(part);
      } catch (e) {
        expect(e).toBeInstanceOf(RouteDumpError);
        expect((e as Error).message).toMatch(/offset \d+/);
        errors++;
        continue;
      }
      expect(routes).toEqual(full.slice(0, routes.length));
      expect(routes.length).toBeLessThan(3);
    }
    expect(errors).toBeGreaterThan(0);
  });

  it('an attribute longer than its message is an error naming both offsets', () => {
    const bad = Buffer.from(three[0] as Buffer);
    bad.writeUInt16LE(200, 28); // the first attribute's length
    expect(() => decode(routeDump([bad]))).toThrow(/attribute at offset 32 \(message at 4\) says 200 bytes/);
  });
});

describe('parseReadAll: the full read (route save, then link show as JSON)', () => {
  const links = '[{"ifindex":1,"ifname":"lo"},{"ifindex":3,"ifname":"eth0"}]';
  const dump = routeDump([
    routeMessage({ dstLen: 26, dst: '10.0.0.64', gateway: '198.18.61.2', oif: 3, protocol: 80, flags: 0x4 }),
  ]);

  it('routes with their interface names, and the interface list', () => {
    const out = parseReadAll(Buffer.concat([dump, Buffer.from(`[]\n${links}\n`)]));
    expect(out.links).toEqual(['lo', 'eth0']);
    expect(out.routes).toEqual([
      {
        type: 'unicast',
        dst: '10.0.0.64/26',
        protocol: '80',
        scope: 'global',
        flags: ['onlink'],
        gateway: '198.18.61.2',
        dev: 'eth0',
      },
    ]);
  });

  it('an empty table', () => {
    expect(parseReadAll(Buffer.concat([routeDump([]), Buffer.from(`[]\n${links}\n`)]))).toEqual({
      routes: [],
      links: ['lo', 'eth0'],
    });
  });

  it('refuses output that is not the dump and the list, saying what was wrong', () => {
    expect(() => parseReadAll(Buffer.concat([dump]))).toThrow(KernelError);
    expect(() => parseReadAll(Buffer.concat([dump]))).toThrow(/no interface list after the 1 route messages/);
    expect(() => parseReadAll(Buffer.concat([dump, Buffer.from('[]\n[not json\n')]))).toThrow(
      /interface list.*not JSON/,
    );
    expect(() => parseReadAll(Buffer.concat([dump, Buffer.from('[]\nnot json\n')]))).toThrow(
      /byte 0x6e at offset 67 after the 1 route messages/,
    );
    expect(() => parseReadAll(Buffer.concat([dump, Buffer.from('[]\n[]\n')]))).toThrow(/names no interface/);
    expect(() => parseReadAll(Buffer.from('Error: something\n'))).toThrow(/not the ip route save magic/);
  });
});

describe('parseReadAll: what follows the route messages is exactly `[]` and the interface list', () => {
  const links = '[{"ifindex":1,"ifname":"lo"},{"ifindex":3,"ifname":"eth0"}]';
  const tail = Buffer.from(`[]\n${links}\n`);

  it('a stray byte anywhere in the dump (the golden 12 routes) is an error naming an offset — never fewer routes', () => {
    expect(parseReadAll(Buffer.concat([golden, tail])).routes).toHaveLength(12);
    let tried = 0;
    for (const stray of [0x00, 0x0a, 0x5b, 0x18, 0x20]) {
      for (let at = 4; at <= golden.length; at++) {
        const bytes = Buffer.concat([golden.subarray(0, at), Buffer.from([stray]), golden.subarray(at), tail]);
        let error: unknown = null;
        try {
          parseReadAll(bytes);
        } catch (e) {
          error = e;
        }
        expect(error, `stray 0x${stray.toString(16)} at ${at}`).toBeInstanceOf(KernelError);
        expect((error as Error).message).toMatch(/offset \d+/);
        tried++;
      }
    }
    expect(tried).toBeGreaterThan(1000);
  });

  it('a byte missing anywhere in the dump is an error, never fewer or other routes', () => {
    for (let at = 4; at < golden.length; at++) {
      const bytes = Buffer.concat([golden.subarray(0, at), golden.subarray(at + 1), tail]);
      expect(() => parseReadAll(bytes), `byte ${at} missing`).toThrow(KernelError);
    }
  });

  it('the dump cut at a message boundary, then text: an error (the first route message not followed by text)', () => {
    const frame = frameRouteDump(golden);
    expect(frame.count).toBe(12);
    const second = 4 + golden.readUInt32LE(4);
    const rest = golden.subarray(second);
    // Only the first message, then the rest of the dump with one header byte changed (no longer RTM_NEWROUTE).
    const changed = Buffer.from(rest);
    changed[4] = 0x19;
    expect(() => parseReadAll(Buffer.concat([golden.subarray(0, second), changed, tail]))).toThrow(
      new RegExp(`offset ${second}\\b`),
    );
  });

  it('the route save `[]` is optional; anything else before or after the one interface line is refused', () => {
    const dump = routeDump([routeMessage({ dstLen: 8, dst: '10.0.0.0', oif: 3 })]);
    expect(parseReadAll(Buffer.concat([dump, Buffer.from(`${links}\n`)])).routes).toHaveLength(1);
    expect(parseReadAll(Buffer.concat([dump, Buffer.from(`[]\n${links}`)])).links).toEqual(['lo', 'eth0']);
    for (const text of [
      `[]\n[]\n${links}\n`,
      `x[]\n${links}\n`,
      `\n${links}\n`,
      `[]\n${links}\n\n`,
      `[]\n${links}\nmore\n`,
      `[]\n[{"ifname":"lo",\t"ifindex":1}]\n`,
      ` ${links}\n`,
    ]) {
      expect(() => parseReadAll(Buffer.concat([dump, Buffer.from(text)])), JSON.stringify(text)).toThrow(
        new RegExp(`offset ${dump.length + 0}|offset \\d+`),
      );
    }
  });
});

describe('decodeRouteDump: a malformed message is an error, never a route', () => {
  const decodeOne = (message: Buffer): KernelRoute[] => decode(routeDump([message]), new Map([[3, 'eth0']]));

  it('an attribute felix reads with a value shorter or longer than 4 bytes', () => {
    for (const type of [1, 4, 5, 6, 7, 15]) {
      for (const size of [0, 2, 3, 5, 8]) {
        const message = routeMessage({ dstLen: 0, extra: [{ type, payload: Buffer.alloc(size, 1) }] });
        // RTA_TABLE (15) is written first by the encoder, so its extra copy is second and ignored as ip does:
        // build that one as the only table attribute instead.
        const bytes = type === 15 ? withoutFirstAttribute(message) : message;
        expect(() => decodeOne(bytes), `type ${type}, ${size} bytes`).toThrow(RouteDumpError);
        expect(() => decodeOne(bytes)).toThrow(new RegExp(`attribute .*type ${type}.* ${size} bytes`));
      }
    }
  });

  it('dst_len over 32', () => {
    expect(() => decodeOne(routeMessage({ dstLen: 33, dst: '10.0.0.0' }))).toThrow(/prefix length 33.*0 to 32/);
    expect(decodeOne(routeMessage({ dstLen: 32, dst: '10.0.0.1' }))[0]?.dst).toBe('10.0.0.1/32');
  });

  it('no RTA_DST with a prefix length above 0', () => {
    expect(() => decodeOne(routeMessage({ dstLen: 8 }))).toThrow(/prefix length 8 but no destination/);
    expect(decodeOne(routeMessage({ dstLen: 0 }))[0]?.dst).toBe('0.0.0.0/0');
  });

  it('1 to 3 bytes after the last attribute, inside the message length', () => {
    for (const extra of [1, 2, 3]) {
      const message = routeMessage({ dstLen: 8, dst: '10.0.0.0' });
      const longer = Buffer.concat([message, Buffer.alloc(4)]);
      longer.writeUInt32LE(message.length + extra, 0);
      expect(() => decodeOne(longer), `${extra} bytes`).toThrow(new RegExp(`${extra} bytes after its last attribute`));
    }
  });

  it('the same checks on IPv4 routes of other tables (a foreign table is skipped, but not a broken message)', () => {
    expect(() => decodeOne(routeMessage({ dstLen: 40, dst: '10.0.0.0', table: 100 }))).toThrow(/prefix length 40/);
  });
});

/** A message without its first attribute (the encoder's RTA_TABLE), its length adjusted. */
function withoutFirstAttribute(message: Buffer): Buffer {
  const first = (message.readUInt16LE(28) + 3) & ~3;
  const out = Buffer.concat([message.subarray(0, 28), message.subarray(28 + first)]);
  out.writeUInt32LE(out.length, 0);
  return out;
}
