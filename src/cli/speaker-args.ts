// `tortie bgp speaker` flags → a validated SpeakerOptions. Pure: no I/O, so every refusal is unit-tested.
//
//   --router-id 127.0.0.9 --as 64512 [--listen 127.0.0.9[:179] | --no-listen]
//   --peer 127.0.0.2,as=65001[,port=179][,passive][,hold=90][,keepalive=30][,local=127.0.0.9]
//          [,rr-client][,next-hop=auto|self|keep][,subnet=A.B.C.D/LEN][,allow-own-as=N][,max-prefixes=N] ...
//   [--cluster-id A.B.C.D] [--graceful-restart[=SECONDS]]
//   --announce 10.244.1.0/26[,nexthop=198.18.0.9][,med=N][,local-pref=N][,community=A:B][,large-community=A:B:C] ...
//   [--hold 90] [--connect-retry 5] [--json] [--stdin]
//   [--max-prefixes N] [--prefix-restart SECONDS] [--min-hold SECONDS] [--send-queue-max BYTES]
//
// Every error names the flag, the value and what would be accepted; the CLI prints it and exits 2.

import {
  parseCommunity as parseBgpCommunity,
  parseIpv4,
  parsePrefix,
  tryParseIpv4,
  BGP_PORT,
  type Prefix,
} from '../../bgp/index.js';
import { parseArgs } from 'node:util';
import { UsageError } from './usage-error.js';

export interface PeerOption {
  address: string;
  asn: number;
  port: number;
  passive: boolean;
  holdTime?: number;
  keepaliveTime?: number;
  localAddress?: string;
  rrClient?: boolean;
  nextHop?: 'auto' | 'self' | 'keep';
  /** Our address with prefix length on the network shared with an eBGP peer (third-party next hops). */
  subnet?: string;
  allowOwnAs?: number;
  /** Prefixes this peer may send before Cease / Maximum Number of Prefixes Reached (RFC 4486). */
  maxPrefixes?: number;
  /** A file holding the TCP-MD5 password (read by the command, never taken on the command line). */
  passwordFile?: string;
  /** GTSM hops (RFC 5082), 1..255. */
  ttlSecurity?: number;
}

export interface AnnounceOption {
  prefix: Prefix;
  nextHop?: number;
  med?: number;
  localPref?: number;
  communities?: number[];
  /** RFC 8092, flat triples. */
  largeCommunities?: number[];
}

export interface SpeakerOptions {
  routerId: number;
  asn: number;
  listen: { address: string; port: number } | null;
  peers: PeerOption[];
  announce: AnnounceOption[];
  holdTime: number;
  connectRetrySeconds: number;
  json: boolean;
  /** Read `announce PREFIX[,...]` / `withdraw PREFIX` lines from standard input. */
  stdin: boolean;
  clusterId?: number;
  /** Restart time in seconds when graceful restart (restarting side) is on. */
  gracefulRestart?: number;
  /** Default per-peer prefix limit (the Speaker's default when absent: 500 000). */
  maxPrefixes?: number;
  /** How long a peer cut off for too many prefixes stays down, seconds (default 60). */
  prefixRestartSeconds?: number;
  /** Smallest non-zero hold time accepted from a peer, seconds (default 3). */
  minHoldTime?: number;
  /** Bytes a peer may leave unread before Cease / Out of Resources (default 32 MiB). */
  maxSendQueueBytes?: number;
}

export const SPEAKER_USAGE = `usage: tortie bgp speaker --router-id A.B.C.D --as ASN [options]

  --router-id A.B.C.D     BGP identifier (required)
  --as ASN                local AS number, 1..4294967295 (required)
  --listen ADDR[:PORT]    accept connections here (default: the router id, port 179)
  --no-listen             do not accept connections; only connect out
  --peer ADDR,as=ASN[,port=N][,passive][,hold=S][,keepalive=S][,local=ADDR]
        [,rr-client][,next-hop=auto|self|keep][,subnet=A.B.C.D/LEN][,allow-own-as=N]
        [,max-prefixes=N][,password-file=PATH][,ttl-security=HOPS]
                          a BGP neighbour; repeat for several. rr-client: a route-reflector
                          client (RFC 4456); next-hop: auto = ours to eBGP, unchanged to iBGP;
                          subnet: our address/length on the network shared with an eBGP peer
                          inside it, which then gets next hops inside it unchanged (RFC 4271
                          §5.1.3 (2), third party); allow-own-as: times our AS may appear in a
                          received AS_PATH; max-prefixes: this peer's limit (see --max-prefixes);
                          password-file: TCP-MD5 (RFC 2385) with the
                          password in that file (one trailing newline ignored); ttl-security:
                          GTSM (RFC 5082), the peer at most HOPS hops away (1 = adjacent)
  --cluster-id A.B.C.D    route-reflector cluster id (default: the router id)
  --graceful-restart[=S]  graceful restart, restarting side (RFC 4724): R and F bits, restart
                          time S seconds (default 120); routes are sent once peers' End-of-RIB
                          arrived. Without it tortie is a graceful-restart helper only
  --announce PREFIX[,nexthop=ADDR][,med=N][,local-pref=N][,community=A:B][,large-community=A:B:C]
                          a route to originate to every peer; repeat for several
  --hold SECONDS          hold time offered in OPEN (0 or 3..65535, default 90)
  --connect-retry SECONDS ConnectRetry time (default 5)
  --max-prefixes N        prefixes a peer may send (default 500000); one more: Cease / Maximum
                          Number of Prefixes Reached (RFC 4486) and the peer stays down for
  --prefix-restart S      S seconds (default 60), its connections refused meanwhile
  --min-hold SECONDS      smallest non-zero hold time accepted from a peer (default 3); a peer's
                          hold time 0 is accepted only with --hold 0
  --send-queue-max BYTES  bytes a peer may leave unread before Cease / Out of Resources
                          (default 33554432, at least 65536)
  --json                  one JSON event per line on stdout instead of readable lines
  --stdin                 read commands from standard input, one per line:
                            announce PREFIX[,nexthop=ADDR][,med=N][,local-pref=N][,community=A:B][,large-community=A:B:C]
                            withdraw PREFIX
                            rib            print the Loc-RIB as one event
                            refresh PEER   send a ROUTE-REFRESH to PEER (RFC 2918)
`;

/** Parses an AS number: plain (1..4294967295) or asdot (1.10). */
export function parseAsn(text: string, flag: string): number {
  let value: number;
  const dot = /^(\d+)\.(\d+)$/.exec(text);
  if (dot) {
    const high = Number(dot[1]);
    const low = Number(dot[2]);
    if (high > 65535 || low > 65535)
      throw new UsageError(`${flag}: AS "${text}" in asdot form needs both halves ≤ 65535`);
    value = high * 65536 + low;
  } else if (/^\d+$/.test(text)) {
    value = Number(text);
  } else {
    throw new UsageError(`${flag}: AS "${text}" is not a number (expected 1..4294967295 or asdot like 1.10)`);
  }
  if (value < 1 || value > 4294967295) throw new UsageError(`${flag}: AS ${text} is outside 1..4294967295`);
  return value;
}

function parseUint(text: string, flag: string, min: number, max: number): number {
  if (!/^\d+$/.test(text)) throw new UsageError(`${flag}: "${text}" is not a whole number (expected ${min}..${max})`);
  const value = Number(text);
  if (value < min || value > max) throw new UsageError(`${flag}: ${value} is outside ${min}..${max}`);
  return value;
}

/** RFC 4271 §4.2: hold time 0 or at least 3 seconds. */
function parseHoldTime(text: string, flag: string): number {
  const value = parseUint(text, flag, 0, 65535);
  if (value === 1 || value === 2)
    throw new UsageError(`${flag}: hold time ${value} is not allowed (RFC 4271 §4.2: 0 or 3..65535)`);
  return value;
}

function parseAddress(text: string, flag: string): string {
  if (tryParseIpv4(text) === null) throw new UsageError(`${flag}: "${text}" is not an IPv4 address (like 127.0.0.2)`);
  return text;
}

/** "a.b.c.d" or "a.b.c.d:port". */
function parseHostPort(text: string, flag: string): { address: string; port: number } {
  const colon = text.lastIndexOf(':');
  if (colon < 0) return { address: parseAddress(text, flag), port: BGP_PORT };
  return {
    address: parseAddress(text.slice(0, colon), flag),
    port: parseUint(text.slice(colon + 1), `${flag} port`, 1, 65535),
  };
}

/** Splits "head,k=v,flag" into the head and its key/value options, refusing duplicates. */
function splitOptions(text: string, flag: string): { head: string; options: Map<string, string | true> } {
  const [head = '', ...rest] = text.split(',');
  const options = new Map<string, string | true>();
  for (const item of rest) {
    if (item === '') throw new UsageError(`${flag} ${text}: empty option (stray comma?)`);
    const eq = item.indexOf('=');
    const key = eq < 0 ? item : item.slice(0, eq);
    if (options.has(key)) throw new UsageError(`${flag} ${text}: option "${key}" given twice`);
    options.set(key, eq < 0 ? true : item.slice(eq + 1));
  }
  return { head, options };
}

function valueOf(options: Map<string, string | true>, key: string, flag: string): string | undefined {
  const value = options.get(key);
  if (value === true) throw new UsageError(`${flag}: option "${key}" needs a value (${key}=...)`);
  return value;
}

const PEER_KEYS = [
  'as',
  'port',
  'passive',
  'hold',
  'keepalive',
  'local',
  'rr-client',
  'next-hop',
  'subnet',
  'allow-own-as',
  'max-prefixes',
  'password-file',
  'ttl-security',
];
const NEXT_HOP_MODES = ['auto', 'self', 'keep'] as const;

export function parsePeer(text: string): PeerOption {
  const flag = '--peer';
  const { head, options } = splitOptions(text, flag);
  for (const key of options.keys()) {
    // A password on the command line would be in every `ps` and shell history: only from a file.
    if (key === 'password')
      throw new UsageError(
        `${flag} ${head}: a password is never taken on the command line (other users see it in ps); put it in a file and give password-file=PATH`,
      );
    if (!PEER_KEYS.includes(key))
      throw new UsageError(`${flag} ${text}: unknown option "${key}" (accepted: ${PEER_KEYS.join(', ')})`);
  }
  const address = parseAddress(head, flag);
  const asText = valueOf(options, 'as', flag);
  if (asText === undefined)
    throw new UsageError(`${flag} ${text}: the peer's AS is missing (add as=ASN, e.g. ${head},as=65001)`);
  const passive = options.get('passive');
  if (passive !== undefined && passive !== true) throw new UsageError(`${flag} ${text}: "passive" takes no value`);
  const rrClient = options.get('rr-client');
  if (rrClient !== undefined && rrClient !== true) throw new UsageError(`${flag} ${text}: "rr-client" takes no value`);
  const peer: PeerOption = {
    address,
    asn: parseAsn(asText, `${flag} ${head} as`),
    port: BGP_PORT,
    passive: passive === true,
  };
  const port = valueOf(options, 'port', flag);
  if (port !== undefined) peer.port = parseUint(port, `${flag} ${head} port`, 1, 65535);
  const hold = valueOf(options, 'hold', flag);
  if (hold !== undefined) peer.holdTime = parseHoldTime(hold, `${flag} ${head} hold`);
  const keepalive = valueOf(options, 'keepalive', flag);
  if (keepalive !== undefined) peer.keepaliveTime = parseUint(keepalive, `${flag} ${head} keepalive`, 0, 21845);
  const local = valueOf(options, 'local', flag);
  if (local !== undefined) peer.localAddress = parseAddress(local, `${flag} ${head} local`);
  if (rrClient === true) peer.rrClient = true;
  const nextHop = valueOf(options, 'next-hop', flag);
  if (nextHop !== undefined) {
    if (!(NEXT_HOP_MODES as readonly string[]).includes(nextHop)) {
      throw new UsageError(`${flag} ${head} next-hop: "${nextHop}" is not one of ${NEXT_HOP_MODES.join(', ')}`);
    }
    peer.nextHop = nextHop as PeerOption['nextHop'];
  }
  const subnet = valueOf(options, 'subnet', flag);
  if (subnet !== undefined) {
    const match = /^([^/]+)\/(\d{1,2})$/.exec(subnet);
    if (match === null || tryParseIpv4(match[1]!) === null || Number(match[2]) > 32) {
      throw new UsageError(
        `${flag} ${head} subnet: "${subnet}" is not an IPv4 address with prefix length (like 198.19.1.11/24)`,
      );
    }
    peer.subnet = subnet;
  }
  const allowOwnAs = valueOf(options, 'allow-own-as', flag);
  if (allowOwnAs !== undefined) peer.allowOwnAs = parseUint(allowOwnAs, `${flag} ${head} allow-own-as`, 0, 10);
  const maxPrefixes = valueOf(options, 'max-prefixes', flag);
  if (maxPrefixes !== undefined)
    peer.maxPrefixes = parseUint(maxPrefixes, `${flag} ${head} max-prefixes`, 1, 4294967295);
  const passwordFile = valueOf(options, 'password-file', flag);
  if (passwordFile !== undefined) {
    if (passwordFile === '') throw new UsageError(`${flag} ${head} password-file: the path is empty`);
    peer.passwordFile = passwordFile;
  }
  const ttlSecurity = valueOf(options, 'ttl-security', flag);
  if (ttlSecurity !== undefined) peer.ttlSecurity = parseUint(ttlSecurity, `${flag} ${head} ttl-security`, 1, 255);
  return peer;
}

const ANNOUNCE_KEYS = ['nexthop', 'med', 'local-pref', 'community', 'large-community'];

/** "65001:100" → 65001 << 16 | 100, RFC 1997. */
function parseCommunity(text: string, flag: string): number {
  const match = /^(\d+):(\d+)$/.exec(text);
  if (!match || Number(match[1]) > 65535 || Number(match[2]) > 65535) {
    throw new UsageError(`${flag}: community "${text}" is not ASN:VALUE with both parts 0..65535`);
  }
  return Number(match[1]) * 65536 + Number(match[2]);
}

/** "65001:100:200" → [65001, 100, 200], RFC 8092 (each part 0..4294967295). */
function parseLargeCommunity(text: string, flag: string): number[] {
  const parsed = parseBgpCommunity(text);
  if (parsed === null || parsed.kind !== 'large')
    throw new UsageError(`${flag}: large community "${text}" is not GLOBAL:LOCAL1:LOCAL2 with each part 0..4294967295`);
  return [...parsed.value];
}

export function parseAnnounce(text: string): AnnounceOption {
  const flag = '--announce';
  const { head, options } = splitOptions(text, flag);
  for (const key of options.keys()) {
    if (!ANNOUNCE_KEYS.includes(key))
      throw new UsageError(`${flag} ${text}: unknown option "${key}" (accepted: ${ANNOUNCE_KEYS.join(', ')})`);
  }
  let prefix: Prefix;
  try {
    prefix = parsePrefix(head, { strict: true, what: flag });
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
  const route: AnnounceOption = { prefix };
  const nextHop = valueOf(options, 'nexthop', flag);
  if (nextHop !== undefined) {
    try {
      route.nextHop = parseIpv4(nextHop, `${flag} ${head} nexthop`);
    } catch (error) {
      throw new UsageError((error as Error).message);
    }
  }
  const med = valueOf(options, 'med', flag);
  if (med !== undefined) route.med = parseUint(med, `${flag} ${head} med`, 0, 4294967295);
  const localPref = valueOf(options, 'local-pref', flag);
  if (localPref !== undefined) route.localPref = parseUint(localPref, `${flag} ${head} local-pref`, 0, 4294967295);
  const community = valueOf(options, 'community', flag);
  if (community !== undefined)
    route.communities = community.split('+').map((c) => parseCommunity(c, `${flag} ${head}`));
  const large = valueOf(options, 'large-community', flag);
  if (large !== undefined)
    route.largeCommunities = large.split('+').flatMap((c) => parseLargeCommunity(c, `${flag} ${head}`));
  return route;
}

/** RFC 4456 §7: a 4-octet cluster id, written as an IPv4 address (as BIRD and FRR show it) or a number. */
function parseClusterId(text: string): number {
  const asAddress = tryParseIpv4(text);
  if (asAddress !== null && asAddress !== 0) return asAddress;
  if (/^[1-9]\d*$/.test(text) && Number(text) <= 4294967295) return Number(text);
  throw new UsageError(
    `--cluster-id: "${text}" is not a non-zero IPv4-style id (like 244.0.0.1) or a number 1..4294967295`,
  );
}

export function parseSpeakerArgs(argv: readonly string[]): SpeakerOptions {
  // `--graceful-restart` takes an optional value; util.parseArgs wants one, so give the default.
  const args = argv.map((a) => (a === '--graceful-restart' ? '--graceful-restart=120' : a));
  let parsed;
  try {
    parsed = parseArgs({
      args,
      allowPositionals: false,
      strict: true,
      options: {
        'router-id': { type: 'string' },
        as: { type: 'string' },
        listen: { type: 'string' },
        'no-listen': { type: 'boolean' },
        peer: { type: 'string', multiple: true },
        announce: { type: 'string', multiple: true },
        hold: { type: 'string' },
        'connect-retry': { type: 'string' },
        json: { type: 'boolean' },
        stdin: { type: 'boolean' },
        'cluster-id': { type: 'string' },
        'graceful-restart': { type: 'string' },
        'max-prefixes': { type: 'string' },
        'prefix-restart': { type: 'string' },
        'min-hold': { type: 'string' },
        'send-queue-max': { type: 'string' },
      },
    });
  } catch (error) {
    // node's messages already name the flag ("Unknown option '--foo'"); keep them, add where to look.
    throw new UsageError(`${(error as Error).message.split('\n')[0]} (see: tortie bgp speaker --help)`);
  }
  const values = parsed.values;
  const routerIdText = values['router-id'];
  if (routerIdText === undefined) throw new UsageError('--router-id is required (the BGP identifier, like 127.0.0.9)');
  const routerId = tryParseIpv4(routerIdText);
  if (routerId === null || routerId === 0)
    throw new UsageError(`--router-id: "${routerIdText}" is not a non-zero IPv4 address (RFC 6286)`);
  if (values.as === undefined) throw new UsageError('--as is required (the local AS number, like 64512)');
  const asn = parseAsn(values.as, '--as');
  if (values.listen !== undefined && values['no-listen'])
    throw new UsageError('--listen and --no-listen cannot both be given');
  const listen = values['no-listen'] ? null : parseHostPort(values.listen ?? routerIdText, '--listen');

  const peers = (values.peer ?? []).map(parsePeer);
  const seen = new Set<string>();
  for (const peer of peers) {
    if (seen.has(peer.address)) throw new UsageError(`--peer ${peer.address}: the same neighbour is given twice`);
    seen.add(peer.address);
  }
  const announce = (values.announce ?? []).map(parseAnnounce);
  return {
    routerId,
    asn,
    listen,
    peers,
    announce,
    holdTime: values.hold === undefined ? 90 : parseHoldTime(values.hold, '--hold'),
    connectRetrySeconds:
      values['connect-retry'] === undefined ? 5 : parseUint(values['connect-retry'], '--connect-retry', 1, 3600),
    json: values.json ?? false,
    stdin: values.stdin ?? false,
    ...(values['cluster-id'] !== undefined ? { clusterId: parseClusterId(values['cluster-id']) } : {}),
    ...(values['graceful-restart'] !== undefined
      ? { gracefulRestart: parseUint(values['graceful-restart'], '--graceful-restart', 1, 4095) }
      : {}),
    ...(values['max-prefixes'] !== undefined
      ? { maxPrefixes: parseUint(values['max-prefixes'], '--max-prefixes', 1, 4294967295) }
      : {}),
    ...(values['prefix-restart'] !== undefined
      ? { prefixRestartSeconds: parseUint(values['prefix-restart'], '--prefix-restart', 1, 86400) }
      : {}),
    ...(values['min-hold'] !== undefined ? { minHoldTime: parseUint(values['min-hold'], '--min-hold', 3, 65535) } : {}),
    ...(values['send-queue-max'] !== undefined
      ? { maxSendQueueBytes: parseUint(values['send-queue-max'], '--send-queue-max', 65536, 2 ** 40) }
      : {}),
  };
}
