// The main routing table as the kernel itself describes it: rtnetlink RTM_NEWROUTE messages, in the stream
// `ip route save` writes, decoded into KernelRoutes already in kernel.ts's normal form. Pure.
//
// The stream (iproute2 6.1 ip/iproute.c, save_route_prep and save_route): a 4-byte magic 0x45311224, then
// every route message of the kernel's dump that passed ip's filter, byte for byte as the kernel sent it —
// host byte order for the headers (the magic says which), network order for addresses. One message:
//
//   nlmsghdr  u32 length (of the whole message), u16 type (RTM_NEWROUTE = 24), u16 flags, u32 seq, u32 pid
//   rtmsg     u8 family (AF_INET = 2), u8 dst_len, u8 src_len, u8 tos, u8 table, u8 protocol, u8 scope,
//             u8 type, u32 flags
//   rtattr*   u16 length (header included), u16 type, payload, padded to 4 bytes
//
// What a KernelRoute takes from it, field by field the same as `ip -json route show` prints them (checked by
// test/integration/felix-route-dump.test.ts against `ip -json` for every route shape, and by the golden bytes
// in test/unit/felix/rtnetlink.test.ts): `type` from rtm_type, `dst` from RTA_DST and rtm_dst_len, `gateway`
// RTA_GATEWAY, `dev` the name of RTA_OIF, `protocol` rtm_protocol (its number: ip prints a name from
// /etc/iproute2/rt_protos, which the normal form turns back into this number), `scope` rtm_scope (ip's
// names), `prefsrc` RTA_PREFSRC, `metric` RTA_PRIORITY, `flags` the rtm_flags bits ip prints. A multipath
// route carries its next hops in RTA_MULTIPATH: like ip's top level, it then has no gateway and no dev.
//
// Why this format: printing is most of ip's own work on a read. `ip -4 -json route show` of 10,000 routes
// took ~25 ms into a file (and ~6 ms more of JSON.parse in Node); `ip -4 route save` of the same ~12 ms,
// and decoding it here ~2 ms (felix-routes bench, test/bench/README.md). And it is the kernel's own
// spelling: one number per protocol, scope and type, nothing to normalize.
//
// Why this is hard: it is a binary stream from another program, so every length is checked before it is
// used and a cut-short, foreign or malformed message is an error naming the offset, never a wrong route (an
// attribute felix reads that is not 4 bytes, a prefix length over 32, a prefix without RTA_DST, bytes after
// the last attribute); ip keeps the first of two attributes of one type (parse_rtattr), and so does this.

import type { KernelRoute } from './kernel.js';

/** The first four bytes of `ip route save` output (ip/iproute.c route_dump_magic), in host byte order. */
export const ROUTE_DUMP_MAGIC = 0x45311224;

const NLMSG_HEADER = 16;
const RTMSG = 12;
const RTA_HEADER = 4;
const RTM_NEWROUTE = 24;
const AF_INET = 2;
const RT_TABLE_MAIN = 254;

/** The route attributes felix reads (<linux/rtnetlink.h> enum rtattr_type_t). */
const RTA = { DST: 1, OIF: 4, GATEWAY: 5, PRIORITY: 6, PREFSRC: 7, TABLE: 15 } as const;

/**
 * The same attributes by type → their names, for errors. Every one holds exactly 4 bytes in an IPv4 route
 * (an address or a u32): any other size is a message felix cannot read, never a value to guess.
 */
const RTA_NAMES: readonly (string | undefined)[] = (() => {
  const names: Array<string | undefined> = [];
  for (const [name, type] of Object.entries(RTA)) names[type] = `RTA_${name}`;
  return names;
})();

/** rtm_type → the name ip prints (ip/rtm_map.c rtnl_rtntype_n2a); others print as their number. */
export const ROUTE_TYPE_NAMES: readonly string[] = [
  'none',
  'unicast',
  'local',
  'broadcast',
  'anycast',
  'multicast',
  'blackhole',
  'unreachable',
  'prohibit',
  'throw',
  'nat',
  'xresolve',
];

/** rtm_scope → the name ip prints (lib/rt_names.c, /etc/iproute2/rt_scopes); others print as their number. */
export const ROUTE_SCOPE_NAMES: Readonly<Record<number, string>> = {
  0: 'global',
  200: 'site',
  253: 'link',
  254: 'host',
  255: 'nowhere',
};

/**
 * rtm_flags bits → the names ip prints in `flags`, in ip's order (ip/iproute.c print_rt_flags; RTNH_F_* and
 * RTM_F_* of <linux/rtnetlink.h>). Bits not listed here ip does not print, and neither does this.
 */
export const ROUTE_FLAG_NAMES: ReadonlyArray<readonly [bit: number, name: string]> = [
  [0x1, 'dead'],
  [0x4, 'onlink'],
  [0x2, 'pervasive'],
  [0x8, 'offload'],
  [0x40, 'trap'],
  [0x100, 'notify'],
  [0x10, 'linkdown'],
  [0x20, 'unresolved'],
  [0x4000, 'rt_offload'],
  [0x8000, 'rt_trap'],
  [0x20000000, 'rt_offload_failed'],
];

/** A route dump that cannot be read; says where and what was wrong. */
export class RouteDumpError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'RouteDumpError';
  }
}

/** Where the messages of a dump at the start of `bytes` end, and their byte order. */
export interface RouteDumpFrame {
  littleEndian: boolean;
  /** Offset just after the last route message: what follows is another command's output. */
  end: number;
  /** How many route messages. */
  count: number;
}

/**
 * Finds the route messages at the start of `bytes` (magic first): each must be a whole RTM_NEWROUTE message.
 * Stops at the end, or at the first bytes that are not a message header: what follows in a batch is the
 * next command's text, and text never holds the bytes 0x18 0x00 (RTM_NEWROUTE) where a header has its type.
 * So a slip inside the stream (a stray or a missing byte) also ends the frame early: the caller must check
 * that what follows `end` is the text it expects (iproute2.ts parseReadAll does), or routes go missing.
 */
export function frameRouteDump(bytes: Uint8Array): RouteDumpFrame {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (bytes.length < 4)
    throw new RouteDumpError(`route dump: ${bytes.length} bytes, too short for the ${hex(ROUTE_DUMP_MAGIC)} magic`);
  let littleEndian: boolean;
  if (view.getUint32(0, true) === ROUTE_DUMP_MAGIC) littleEndian = true;
  else if (view.getUint32(0, false) === ROUTE_DUMP_MAGIC) littleEndian = false;
  else
    throw new RouteDumpError(
      `route dump: starts with ${hex(view.getUint32(0, false))}, not the ip route save magic ${hex(ROUTE_DUMP_MAGIC)}`,
    );
  let at = 4;
  let count = 0;
  while (bytes.length - at >= 6 && view.getUint16(at + 4, littleEndian) === RTM_NEWROUTE) {
    const length = view.getUint32(at, littleEndian);
    if (length < NLMSG_HEADER + RTMSG || length > bytes.length - at) {
      throw new RouteDumpError(
        `route dump: route message at offset ${at} says ${length} bytes; ${bytes.length - at} left (a route message is ${NLMSG_HEADER + RTMSG} or more)`,
      );
    }
    at = Math.min(at + align4(length), bytes.length);
    count++;
  }
  return { littleEndian, end: at, count };
}

/**
 * The IPv4 main-table routes of a framed dump, in the kernel's order, in kernel.ts's normal form
 * (`normalizeKernelRoute(r) === r`). `linkName` gives an interface's name from its index; unknown indexes
 * are named `if<index>` as ip names them.
 */
export function decodeRouteDump(
  bytes: Uint8Array,
  frame: RouteDumpFrame,
  linkName: ReadonlyMap<number, string>,
): KernelRoute[] {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const le = frame.littleEndian;
  const routes: KernelRoute[] = [];
  const gateways = new Map<number, string>();
  const addressText = (value: number): string => {
    let text = gateways.get(value);
    if (text === undefined) {
      text = dotted(value);
      gateways.set(value, text);
    }
    return text;
  };
  let at = 4;
  while (at < frame.end) {
    const length = view.getUint32(at, le);
    const next = at + align4(length);
    const family = bytes[at + 16] as number;
    const inet = family === AF_INET;
    const dstLen = bytes[at + 17] as number;
    let table = bytes[at + 20] as number;
    const protocol = bytes[at + 21] as number;
    const scope = bytes[at + 22] as number;
    const type = bytes[at + 23] as number;
    const flags = view.getUint32(at + 24, le);
    let dst = -1;
    let gateway = -1;
    let oif = -1;
    let metric = -1;
    let prefsrc = -1;
    let tableAttr = -1;
    let a = at + NLMSG_HEADER + RTMSG;
    const messageEnd = at + length;
    while (a + RTA_HEADER <= messageEnd) {
      const attrLength = view.getUint16(a, le);
      const attrType = view.getUint16(a + 2, le);
      if (attrLength < RTA_HEADER || a + attrLength > messageEnd) {
        throw new RouteDumpError(
          `route dump: attribute at offset ${a} (message at ${at}) says ${attrLength} bytes; ${messageEnd - a} left in its message`,
        );
      }
      const payload = attrLength - RTA_HEADER;
      const p = a + RTA_HEADER;
      const name = inet ? RTA_NAMES[attrType] : undefined;
      if (name !== undefined && payload !== 4) {
        throw new RouteDumpError(
          `route dump: attribute at offset ${a} (message at ${at}), type ${attrType} (${name}), holds ${payload} bytes; an IPv4 route's ${name} holds 4`,
        );
      }
      // The first attribute of each type counts (ip's parse_rtattr keeps the first).
      if (attrType === RTA.DST && dst < 0) dst = view.getUint32(p, false);
      else if (attrType === RTA.GATEWAY && gateway < 0) gateway = view.getUint32(p, false);
      else if (attrType === RTA.OIF && oif < 0) oif = view.getUint32(p, le);
      else if (attrType === RTA.PRIORITY && metric < 0) metric = view.getUint32(p, le);
      else if (attrType === RTA.PREFSRC && prefsrc < 0) prefsrc = view.getUint32(p, false);
      else if (attrType === RTA.TABLE && tableAttr < 0) tableAttr = view.getUint32(p, le);
      a += align4(attrLength);
    }
    // 1-3 bytes left: too few for an attribute, and attributes are padded to 4 (the kernel's nla_put), so
    // they are not padding either — a message laid out otherwise than felix reads it.
    if (a < messageEnd) {
      throw new RouteDumpError(
        `route dump: route message at offset ${at} has ${messageEnd - a} bytes after its last attribute (at offset ${a}); attributes need ${RTA_HEADER} or more`,
      );
    }
    if (inet && dstLen > 32) {
      throw new RouteDumpError(
        `route dump: route message at offset ${at}: prefix length ${dstLen} (rtm_dst_len); an IPv4 route's is 0 to 32`,
      );
    }
    if (inet && dstLen > 0 && dst < 0) {
      throw new RouteDumpError(
        `route dump: route message at offset ${at}: prefix length ${dstLen} but no destination (RTA_DST); only a /0 route has none`,
      );
    }
    if (tableAttr >= 0) table = tableAttr; // ip's rtm_get_table: RTA_TABLE over rtm_table
    at = next;
    if (!inet || table !== RT_TABLE_MAIN) continue;

    // Key order as normalizeKernelRoute builds its routes: one object shape for all of them.
    const route: KernelRoute = {
      type: ROUTE_TYPE_NAMES[type] ?? String(type),
      dst: `${dotted(dst < 0 ? 0 : maskTo(dst, dstLen))}/${dstLen}`,
      protocol: PROTOCOL_TEXT[protocol] as string,
      scope: ROUTE_SCOPE_NAMES[scope] ?? String(scope),
      flags: flagNames(flags),
    };
    if (gateway >= 0) route.gateway = addressText(gateway);
    if (oif >= 0) route.dev = linkName.get(oif) ?? (oif === 0 ? '*' : `if${oif}`);
    if (prefsrc >= 0) route.prefsrc = addressText(prefsrc);
    if (metric > 0) route.metric = metric;
    routes.push(route);
  }
  return routes;
}

/** The two flag lists nearly every route has, shared (routes are never changed in place; frozen to make sure). */
const NO_FLAGS = Object.freeze([]) as unknown as string[];
const ONLINK_FLAGS = Object.freeze(['onlink']) as unknown as string[];

/** Decimal text of every protocol number: the normal form's `protocol`. */
const PROTOCOL_TEXT: readonly string[] = Array.from({ length: 256 }, (_, i) => String(i));

/** The normal form's flags: ip's names, sorted, without `linkdown` (a carrier state, not part of the route). */
function flagNames(bits: number): string[] {
  if (bits === 0 || bits === 0x10) return NO_FLAGS;
  if (bits === 0x4 || bits === 0x14) return ONLINK_FLAGS;
  const names: string[] = [];
  for (const [bit, name] of ROUTE_FLAG_NAMES) if ((bits & bit) !== 0 && name !== 'linkdown') names.push(name);
  return names.sort();
}

function maskTo(addr: number, len: number): number {
  if (len >= 32) return addr >>> 0;
  if (len <= 0) return 0;
  return (addr & (~0 << (32 - len))) >>> 0;
}

function dotted(value: number): string {
  return `${value >>> 24}.${(value >>> 16) & 255}.${(value >>> 8) & 255}.${value & 255}`;
}

function align4(n: number): number {
  return (n + 3) & ~3;
}

function hex(n: number): string {
  return `0x${(n >>> 0).toString(16).padStart(8, '0')}`;
}
