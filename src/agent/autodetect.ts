// This node's IPv4 address, found the way calico-node finds it (IP_AUTODETECTION_METHOD), always with the
// prefix length of the interface that holds it: CrossSubnet decisions depend on the node's subnet, so an
// address without its length is half an answer.
//
// `selectAddress` is pure over a list of interface addresses; only `autodetectIpv4` touches the machine
// (os.networkInterfaces, and for can-reach a UDP socket that is connected but never sends: the kernel's
// route lookup picks the local address, which is the one to use toward that destination).

import { createSocket } from 'node:dgram';
import { networkInterfaces, type NetworkInterfaceInfo } from 'node:os';
import { parseIpv4, parsePrefix, prefixContains, systemClock, tryParseIpv4, type Clock } from '../../bgp/index.js';
import { FIRST_FOUND_SKIP, type AutodetectMethod } from './config.js';

export interface InterfaceAddress {
  iface: string;
  address: string;
  prefixLength: number;
}

export interface DetectedAddress extends InterfaceAddress {
  /** How it was found, for the log ("first-found", "interface=eth.*", ...). */
  method: string;
}

/** IPv4 addresses of os.networkInterfaces()-shaped data, in the order given, with their prefix lengths. */
export function interfaceAddresses(interfaces: NodeJS.Dict<NetworkInterfaceInfo[]>): InterfaceAddress[] {
  const out: InterfaceAddress[] = [];
  for (const [iface, infos] of Object.entries(interfaces)) {
    for (const info of infos ?? []) {
      if (info.family !== 'IPv4') continue;
      const len = Number((info.cidr ?? '').split('/')[1] ?? NaN);
      out.push({ iface, address: info.address, prefixLength: Number.isInteger(len) ? len : 32 });
    }
  }
  return out;
}

const FIRST_FOUND_PATTERNS = FIRST_FOUND_SKIP.map((p) => new RegExp(p));
/** Never a node address: loopback 127/8 and link-local 169.254/16. */
const NOT_NODE_ADDRESSES = [parsePrefix('127.0.0.0/8'), parsePrefix('169.254.0.0/16')];

function usable(a: InterfaceAddress): boolean {
  const value = tryParseIpv4(a.address);
  return value !== null && !NOT_NODE_ADDRESSES.some((p) => prefixContains(p, value));
}

function describe(method: AutodetectMethod): string {
  switch (method.kind) {
    case 'first-found':
      return 'first-found';
    case 'interface':
    case 'skip-interface':
      return `${method.kind}=${method.patterns.map((p) => p.source).join(',')}`;
    case 'cidr':
      return `cidr=${method.cidrs.join(',')}`;
    case 'can-reach':
      return `can-reach=${method.address}`;
  }
}

/**
 * The address `method` picks from `addresses` (can-reach needs `reachLocal`, the local address the kernel
 * would use toward the target). Null when nothing matches.
 */
export function selectAddress(
  method: AutodetectMethod,
  addresses: readonly InterfaceAddress[],
  reachLocal?: string,
): DetectedAddress | null {
  let found: InterfaceAddress | undefined;
  switch (method.kind) {
    case 'first-found':
      found = addresses.find((a) => usable(a) && !FIRST_FOUND_PATTERNS.some((p) => p.test(a.iface)));
      break;
    case 'interface':
      // Calico tries the patterns in order: the first pattern with a matching interface wins.
      for (const pattern of method.patterns) {
        found = addresses.find((a) => usable(a) && pattern.test(a.iface));
        if (found) break;
      }
      break;
    case 'skip-interface':
      found = addresses.find((a) => usable(a) && !method.patterns.some((p) => p.test(a.iface)));
      break;
    case 'cidr':
      for (const cidr of method.cidrs) {
        const prefix = parsePrefix(cidr);
        found = addresses.find((a) => prefixContains(prefix, parseIpv4(a.address)));
        if (found) break;
      }
      break;
    case 'can-reach':
      found = reachLocal === undefined ? undefined : addresses.find((a) => a.address === reachLocal);
      break;
  }
  return found ? { ...found, method: describe(method) } : null;
}

/**
 * BGPConfiguration ignoredInterfaces (Calico: excluded from BIRD's `protocol direct`, whose pattern is
 * `-"<name>", …, -"cali*", -"kube-ipvs*", "*"`): interface name patterns as BIRD reads them, `*` any run of
 * characters and `?` one, the whole name matched. Returns whether `iface` is ignored.
 */
export function ignoredInterfaceMatcher(patterns: readonly string[]): (iface: string) => boolean {
  const res = patterns.map(
    (p) =>
      new RegExp(
        `^${p
          .replace(/[.+^${}()|[\]\\]/g, '\\$&')
          .replace(/\*/g, '.*')
          .replace(/\?/g, '.')}$`,
      ),
  );
  return (iface) => res.some((re) => re.test(iface));
}

/** The prefix length of the interface holding `address`, or null when no interface has it. */
export function prefixLengthOf(address: string, addresses: readonly InterfaceAddress[]): number | null {
  return addresses.find((a) => a.address === address)?.prefixLength ?? null;
}

/**
 * The local address the kernel would use toward `target`: a connected UDP socket, no packet sent. Gives up
 * after `timeoutMs` on `clock`.
 */
export function localAddressToward(target: string, timeoutMs = 2000, clock: Clock = systemClock): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = createSocket('udp4');
    let done = false;
    const timer = clock.setTimeout(() => {
      done = true;
      socket.close();
      reject(new Error(`can-reach=${target}: no route lookup answer within ${timeoutMs} ms`));
    }, timeoutMs);
    socket.once('error', (error) => {
      if (done) return;
      clock.clearTimeout(timer);
      socket.close();
      reject(new Error(`can-reach=${target}: ${error.message} (is there a route to it?)`));
    });
    // Port 9 (discard): connect() on UDP only does the route lookup; nothing is sent.
    socket.connect(9, target, () => {
      if (done) return;
      clock.clearTimeout(timer);
      const local = socket.address().address;
      socket.close();
      resolve(local);
    });
  });
}

export interface AutodetectDeps {
  interfaces?: () => InterfaceAddress[];
  localAddressToward?: (target: string) => Promise<string>;
  /** The default localAddressToward's time bound runs on it. Default: the system clock. */
  clock?: Clock;
}

/** Runs `method` against this machine; rejects naming the method and the addresses seen when none fits. */
export async function autodetectIpv4(method: AutodetectMethod, deps: AutodetectDeps = {}): Promise<DetectedAddress> {
  const addresses = (deps.interfaces ?? (() => interfaceAddresses(networkInterfaces())))();
  const reachLocal =
    method.kind === 'can-reach'
      ? await (deps.localAddressToward ?? ((target) => localAddressToward(target, 2000, deps.clock)))(method.address)
      : undefined;
  const found = selectAddress(method, addresses, reachLocal);
  if (found) return found;
  const seen = addresses.map((a) => `${a.iface} ${a.address}/${a.prefixLength}`).join(', ') || 'none';
  const extra =
    reachLocal !== undefined
      ? ` (the route toward ${method.kind === 'can-reach' ? method.address : ''} leaves from ${reachLocal}, which no interface holds)`
      : '';
  throw new Error(
    `IP_AUTODETECTION_METHOD=${describe(method)} found no IPv4 address${extra}; addresses seen: ${seen}; set IP=<address/len> or another method`,
  );
}
