// TCP-MD5 (RFC 2385) and GTSM (RFC 5082) on Linux sockets: what Node's net module cannot set.
//
// The native part (bgp/native/tcp-sockopt.c, built by scripts/build-native.sh into
// dist/bgp/native/tcp-sockopt.node) is three system calls: socket(), setsockopt() with bytes built here,
// close(). Everything else — struct layouts, which option goes on which socket, errors for people — is
// here, in TypeScript, where it is tested.
//
// Where each option goes:
// - TCP-MD5, outbound: on our own socket before connect(), so the SYN is signed. Node cannot do that with
//   a socket it creates, so `openSocket` makes the socket natively, sets the options, and `new
//   net.Socket({ fd })` adopts it; Node's connect() then runs on that fd (libuv connects a socket it was
//   handed unconnected the same way as one it made).
// - TCP-MD5, inbound: one key per peer address on the listening socket (Linux keys a listener per remote
//   address; accepted connections inherit the key). A SYN from a keyed address without a valid signature
//   is dropped by the kernel and counted in /proc/net/netstat (see md5-diagnosis in src/agent).
// - GTSM: IP_TTL 255 on what we send; IP_MINTTL 256 − hops (see minTtlFor) on what we accept (a connected socket, or the
//   accepted one: IP_MINTTL on a listener would apply to every peer).
//
// Why this is hard: the key must be on the socket before the first segment, a key set on the wrong
// socket fails silently (segments dropped, session stuck in Active), and a missing native part must never
// turn into an unsigned session: callers ask `nativeSocketOptions()` and refuse when it is unavailable.

import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import { constants as osConstants, endianness } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** IPPROTO_TCP, TCP_MD5SIG (linux/tcp.h), IPPROTO_IP, IP_TTL, IP_MINTTL (linux/in.h). */
const IPPROTO_TCP = 6;
const TCP_MD5SIG = 14;
const IPPROTO_IP = 0;
const IP_TTL = 2;
const IP_MINTTL = 21;
const AF_INET = 2;

/** struct tcp_md5sig: sockaddr_storage (128), u8 flags, u8 prefixlen, u16 keylen, u32 ifindex, key[80]. */
export const TCP_MD5SIG_SIZE = 216;
/** TCP_MD5SIG_MAXKEYLEN: the longest key Linux accepts, in bytes. */
export const TCP_MD5_MAX_KEY_BYTES = 80;
const KEYLEN_OFFSET = 130;
const KEY_OFFSET = 136;

interface NativeAddon {
  socket(domain: number): number;
  setsockopt(fd: number, level: number, name: number, value: Buffer): void;
  close(fd: number): void;
}

export type NativeStatus = { available: true; path: string } | { available: false; reason: string };

let loaded: { addon: NativeAddon | null; status: NativeStatus } | undefined;

/**
 * Where the addon may be: beside this module once built (dist/bgp/native/), or — when this module runs
 * from source (vitest) — in the built tree of the same checkout. TORTIE_NATIVE_ADDON overrides both.
 */
function candidates(): string[] {
  const override = process.env.TORTIE_NATIVE_ADDON;
  if (override !== undefined && override !== '') return [override];
  const here = dirname(fileURLToPath(import.meta.url));
  const built = fileURLToPath(new URL('./native/tcp-sockopt.node', import.meta.url));
  return basename(dirname(here)) === 'dist'
    ? [built]
    : [built, join(here, '..', 'dist', 'bgp', 'native', 'tcp-sockopt.node')];
}

function load(): { addon: NativeAddon | null; status: NativeStatus } {
  if (loaded) return loaded;
  if (process.platform !== 'linux') {
    loaded = {
      addon: null,
      status: { available: false, reason: `TCP-MD5 and GTSM need Linux (this is ${process.platform})` },
    };
    return loaded;
  }
  const paths = candidates();
  const path = paths.find((p) => existsSync(p));
  if (path === undefined) {
    loaded = {
      addon: null,
      status: {
        available: false,
        reason: `the native part is not built (looked for ${paths.join(', ')}; run npm run build with a C compiler)`,
      },
    };
    return loaded;
  }
  try {
    const addon = createRequire(import.meta.url)(path) as NativeAddon;
    loaded = { addon, status: { available: true, path } };
  } catch (error) {
    loaded = {
      addon: null,
      status: {
        available: false,
        reason: `the native part at ${path} does not load: ${error instanceof Error ? error.message : String(error)}`,
      },
    };
  }
  return loaded;
}

/** Whether TCP-MD5 and GTSM can be set here, and if not, why (for node status and refusals). */
export function nativeSocketOptions(): NativeStatus {
  return load().status;
}

/** Thrown when an option cannot be set; `code` is the errno name (EINVAL, ENOENT, ...) or ENOTSUP. */
export class SocketOptionError extends Error {
  readonly code: string;
  constructor(code: string, message: string) {
    super(message);
    this.name = 'SocketOptionError';
    this.code = code;
  }
}

const ERRNO_NAMES = new Map<number, string>(Object.entries(osConstants.errno).map(([name, number]) => [number, name]));

function addon(what: string): NativeAddon {
  const { addon: native, status } = load();
  if (!native || !status.available)
    throw new SocketOptionError('ENOTSUP', `${what}: ${status.available ? 'unavailable' : status.reason}`);
  return native;
}

function call<T>(what: string, fn: () => T): T {
  try {
    return fn();
  } catch (error) {
    const errno = (error as { errno?: unknown }).errno;
    const code = typeof errno === 'number' ? (ERRNO_NAMES.get(errno) ?? `errno ${errno}`) : 'EIO';
    throw new SocketOptionError(code, `${what}: ${error instanceof Error ? error.message : String(error)} (${code})`);
  }
}

function ipv4Bytes(address: string): number[] {
  const parts = address.replace(/^::ffff:/, '').split('.');
  const bytes = parts.map((p) => (/^\d{1,3}$/.test(p) ? Number(p) : NaN));
  if (bytes.length !== 4 || bytes.some((b) => !(b >= 0 && b <= 255)))
    throw new SocketOptionError('EINVAL', `TCP-MD5: ${JSON.stringify(address)} is not an IPv4 address`);
  return bytes;
}

/**
 * struct tcp_md5sig for one IPv4 peer: the key for segments to and from `address`; an empty key deletes
 * the peer's key (Linux: keylen 0). Host byte order for the family and key length, network order for the
 * address. Pure.
 */
export function encodeTcpMd5sig(address: string, key: Uint8Array, littleEndian = endianness() === 'LE'): Buffer {
  if (key.length > TCP_MD5_MAX_KEY_BYTES)
    throw new SocketOptionError(
      'EINVAL',
      `TCP-MD5: a key is at most ${TCP_MD5_MAX_KEY_BYTES} bytes (this one is ${key.length})`,
    );
  const buf = Buffer.alloc(TCP_MD5SIG_SIZE);
  if (littleEndian) {
    buf.writeUInt16LE(AF_INET, 0);
    buf.writeUInt16LE(key.length, KEYLEN_OFFSET);
  } else {
    buf.writeUInt16BE(AF_INET, 0);
    buf.writeUInt16BE(key.length, KEYLEN_OFFSET);
  }
  // sin_port (bytes 2..3) stays 0: the key is per address.
  buf.set(ipv4Bytes(address), 4);
  buf.set(key, KEY_OFFSET);
  return buf;
}

function int32(value: number): Buffer {
  const buf = Buffer.alloc(4);
  if (endianness() === 'LE') buf.writeInt32LE(value, 0);
  else buf.writeInt32BE(value, 0);
  return buf;
}

/** Checks a GTSM hop count (Calico's ttlSecurity): 1..255 hops. */
export function minTtlFor(hops: number): number {
  if (!Number.isInteger(hops) || hops < 1 || hops > 255)
    throw new SocketOptionError('EINVAL', `ttlSecurity: ${hops} is not a hop count from 1 to 255`);
  // RFC 5082 §3 with Calico's meaning of the number: the hops (edges) between the peers, 1 = directly
  // connected. A peer N edges away sends 255 and we receive 255 − (N − 1): minimum TTL 256 − N, what BIRD
  // sets for Calico's `ttl security on; multihop N`. (255 − N would let one more router in between.)
  return 256 - hops;
}

/** Sets (or, with `key` undefined or empty, removes) the TCP-MD5 key for `address` on a socket. */
export function setTcpMd5(fd: number, address: string, key: Uint8Array | undefined): void {
  const native = addon(`TCP-MD5 for ${address}`);
  const bytes = encodeTcpMd5sig(address, key ?? new Uint8Array());
  call(`TCP-MD5 for ${address}`, () => native.setsockopt(fd, IPPROTO_TCP, TCP_MD5SIG, bytes));
}

/** GTSM on a socket: we send with TTL 255 and accept only TTL ≥ 256 − hops (RFC 5082 §3; see minTtlFor). */
export function setTtlSecurity(fd: number, hops: number): void {
  const min = minTtlFor(hops);
  const native = addon('GTSM');
  call('GTSM (IP_TTL 255)', () => native.setsockopt(fd, IPPROTO_IP, IP_TTL, int32(255)));
  call(`GTSM (IP_MINTTL ${min})`, () => native.setsockopt(fd, IPPROTO_IP, IP_MINTTL, int32(min)));
}

/** Only IP_TTL 255 (a listener: the SYN-ACK leaves with it; IP_MINTTL goes on each accepted socket). */
export function setTtl255(fd: number): void {
  const native = addon('GTSM');
  call('GTSM (IP_TTL 255)', () => native.setsockopt(fd, IPPROTO_IP, IP_TTL, int32(255)));
}

export interface SecureSocketOptions {
  /** TCP-MD5 key (RFC 2385) for segments to and from `remoteAddress`. */
  readonly md5Key?: Uint8Array;
  /** GTSM hop count (RFC 5082); absent: the kernel's TTLs. */
  readonly ttlSecurity?: number;
}

/**
 * A new, unconnected IPv4 TCP socket with the options set, as a file descriptor for `new net.Socket({ fd
 * })`. Closes it again when an option fails.
 */
export function openSocket(remoteAddress: string, options: SecureSocketOptions): number {
  const native = addon(`socket for ${remoteAddress}`);
  const fd = call('socket', () => native.socket(AF_INET));
  try {
    if (options.md5Key !== undefined && options.md5Key.length > 0) setTcpMd5(fd, remoteAddress, options.md5Key);
    if (options.ttlSecurity !== undefined) setTtlSecurity(fd, options.ttlSecurity);
  } catch (error) {
    native.close(fd);
    throw error;
  }
  return fd;
}
