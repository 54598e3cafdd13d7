// Test-side encoder of `ip route save` streams: rtnetlink RTM_NEWROUTE messages laid out as the kernel
// lays them out (nlmsghdr, rtmsg, 4-byte-aligned rtattrs), after the 0x45311224 magic. Written from the
// layout in <linux/netlink.h> and <linux/rtnetlink.h>, independently of felix/rtnetlink.ts (which decodes),
// so a test that decodes what this encodes checks the decoder against the layout, not against itself.

export interface RouteMessageSpec {
  /** rtm_family: AF_INET (2) unless given. */
  family?: number;
  /** rtm_type: 1 unicast, 6 blackhole, 7 unreachable, ... */
  type?: number;
  dstLen: number;
  /** RTA_DST, dotted; absent: no attribute (the default route). */
  dst?: string;
  gateway?: string;
  oif?: number;
  protocol?: number;
  scope?: number;
  flags?: number;
  /** RTA_PRIORITY. */
  metric?: number;
  prefsrc?: string;
  /** rtm_table and RTA_TABLE (254, main, unless given). */
  table?: number;
  /** More attributes, written after the ones above (type, payload). */
  extra?: Array<{ type: number; payload: Buffer }>;
}

const RTM_NEWROUTE = 24;

function ipv4(text: string): Buffer {
  const parts = text.split('.').map(Number);
  if (parts.length !== 4 || parts.some((p) => !Number.isInteger(p) || p < 0 || p > 255))
    throw new Error(`test encoder: "${text}" is not a dotted IPv4 address`);
  return Buffer.from(parts);
}

function u32(value: number, le: boolean): Buffer {
  const b = Buffer.alloc(4);
  if (le) b.writeUInt32LE(value >>> 0);
  else b.writeUInt32BE(value >>> 0);
  return b;
}

function attribute(type: number, payload: Buffer, le: boolean): Buffer {
  const length = 4 + payload.length;
  const out = Buffer.alloc((length + 3) & ~3);
  if (le) {
    out.writeUInt16LE(length, 0);
    out.writeUInt16LE(type, 2);
  } else {
    out.writeUInt16BE(length, 0);
    out.writeUInt16BE(type, 2);
  }
  payload.copy(out, 4);
  return out;
}

/** One RTM_NEWROUTE message. */
export function routeMessage(spec: RouteMessageSpec, le = true): Buffer {
  const table = spec.table ?? 254;
  const attrs: Buffer[] = [attribute(15, u32(table, le), le)]; // RTA_TABLE first, as the kernel puts it
  if (spec.dst !== undefined) attrs.push(attribute(1, ipv4(spec.dst), le));
  if (spec.metric !== undefined) attrs.push(attribute(6, u32(spec.metric, le), le));
  if (spec.prefsrc !== undefined) attrs.push(attribute(7, ipv4(spec.prefsrc), le));
  if (spec.gateway !== undefined) attrs.push(attribute(5, ipv4(spec.gateway), le));
  if (spec.oif !== undefined) attrs.push(attribute(4, u32(spec.oif, le), le));
  for (const { type, payload } of spec.extra ?? []) attrs.push(attribute(type, payload, le));
  const body = Buffer.concat(attrs);
  const header = Buffer.alloc(16 + 12);
  const length = header.length + body.length;
  if (le) {
    header.writeUInt32LE(length, 0);
    header.writeUInt16LE(RTM_NEWROUTE, 4);
    header.writeUInt16LE(0x2, 6); // NLM_F_MULTI
    header.writeUInt32LE(0x6b0342a5, 8);
    header.writeUInt32LE(2453, 12);
  } else {
    header.writeUInt32BE(length, 0);
    header.writeUInt16BE(RTM_NEWROUTE, 4);
    header.writeUInt16BE(0x2, 6);
    header.writeUInt32BE(0x6b0342a5, 8);
    header.writeUInt32BE(2453, 12);
  }
  header[16] = spec.family ?? 2;
  header[17] = spec.dstLen;
  header[18] = 0;
  header[19] = 0;
  header[20] = table < 256 ? table : 252; // RT_TABLE_COMPAT when the id needs RTA_TABLE
  header[21] = spec.protocol ?? 3;
  header[22] = spec.scope ?? 0;
  header[23] = spec.type ?? 1;
  if (le) header.writeUInt32LE(spec.flags ?? 0, 24);
  else header.writeUInt32BE(spec.flags ?? 0, 24);
  return Buffer.concat([header, body]);
}

/** The magic, then the messages: what `ip route save` writes. */
export function routeDump(messages: readonly Buffer[], le = true): Buffer {
  return Buffer.concat([u32(0x45311224, le), ...messages]);
}
