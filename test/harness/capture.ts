// Regenerates the golden captures in test/fixtures/captures/: real BGP messages from BIRD 1.6, BIRD 2,
// FRR and GoBGP, recorded by a relay between the peer under capture (active) and a partner daemon
// (passive). Run as root after `npm run build`:
//
//   node dist/test/harness/capture.js [--out test/fixtures/captures] [--only bird1,frr]
//
// Per peer kind, three sessions: iBGP (64512↔64512) and eBGP (64512↔65001), each announcing one route,
// withdrawing it, then stopping the captured daemon (its Cease); and one where the captured daemon
// expects the wrong AS from its neighbor (its OPEN Message Error / Bad Peer AS). Only messages sent by
// the peer under capture are kept; repeated KEEPALIVEs are dropped. Output format (index.json) is read
// by the codec's decoder tests: keep it exactly.

import { mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { addressBlock } from './addresses.js';
import { requirePeers, type PeerKind } from './binaries.js';
import { startPeer } from './index.js';
import { waitForNoRoute, waitForRoute, waitForSession, type PeerDaemon } from './peer.js';
import { stopAll, waitFor } from './process.js';
import { startRecordingRelay, type RecordedMessage } from './relay.js';

export type CapturedPeer = 'bird1' | 'bird2' | 'frr' | 'gobgp';
export type CaptureType = 'open' | 'update' | 'notification' | 'keepalive' | 'route-refresh';

/** One line of index.json. */
export interface CaptureEntry {
  readonly file: string;
  readonly peer: CapturedPeer;
  /** 'from-peer': sent by `peer` (to its partner). */
  readonly direction: 'from-peer' | 'to-peer';
  readonly type: CaptureType;
  /** Both OPENs of the session carried the 4-octet AS capability (RFC 6793): decode AS_PATH with 4-octet ASNs. */
  readonly fourOctetAs: boolean;
  readonly description: string;
}

/** BGP message type code → index.json name (RFC 4271 §4.1, RFC 2918 §3). */
const TYPE_NAMES: Readonly<Record<number, CaptureType>> = {
  1: 'open',
  2: 'update',
  3: 'notification',
  4: 'keepalive',
  5: 'route-refresh',
};

const CAPTURED: readonly CapturedPeer[] = ['bird1', 'bird2', 'frr', 'gobgp'];

/** Who sits on the other end for each captured kind (a different implementation, passive). */
const PARTNER: Readonly<Record<CapturedPeer, PeerKind>> = {
  bird1: 'gobgp',
  bird2: 'gobgp',
  frr: 'gobgp',
  gobgp: 'bird2',
};

interface Scenario {
  readonly name: 'ibgp' | 'ebgp' | 'bad-peer-as';
  readonly capturedAs: number;
  readonly partnerAs: number;
  /** The AS the captured daemon is told its neighbor has. */
  readonly configuredPartnerAs: number;
}

const SCENARIOS: readonly Scenario[] = [
  { name: 'ibgp', capturedAs: 64512, partnerAs: 64512, configuredPartnerAs: 64512 },
  { name: 'ebgp', capturedAs: 64512, partnerAs: 65001, configuredPartnerAs: 65001 },
  { name: 'bad-peer-as', capturedAs: 64512, partnerAs: 65001, configuredPartnerAs: 65099 },
];

/** True when an OPEN message carries capability 65 (4-octet AS) in its optional parameters (RFC 5492 §4). */
export function openHasFourOctetAs(open: Buffer): boolean {
  const paramsLength = open[28] ?? 0;
  let at = 29;
  const end = Math.min(open.length, 29 + paramsLength);
  while (at + 2 <= end) {
    const paramType = open[at]!;
    const paramLength = open[at + 1]!;
    if (paramType === 2) {
      let cap = at + 2;
      while (cap + 2 <= at + 2 + paramLength) {
        if (open[cap] === 65) return true;
        cap += 2 + open[cap + 1]!;
      }
    }
    at += 2 + paramLength;
  }
  return false;
}

function readPrefixes(bytes: Buffer, start: number, end: number): string[] {
  const out: string[] = [];
  let at = start;
  while (at < end && out.length < 1000) {
    const len = bytes[at]!;
    const octets = Math.ceil(len / 8);
    const addr = [0, 0, 0, 0];
    for (let i = 0; i < octets; i++) addr[i] = bytes[at + 1 + i] ?? 0;
    out.push(`${addr.join('.')}/${len}`);
    at += 1 + octets;
  }
  return out;
}

/** Path attribute type codes present, in order (RFC 4271 §4.3). */
function attributeTypes(bytes: Buffer, start: number, end: number): number[] {
  const types: number[] = [];
  let at = start;
  while (at + 3 <= end && types.length < 64) {
    const flags = bytes[at]!;
    const extended = (flags & 0x10) !== 0;
    const length = extended ? bytes.readUInt16BE(at + 2) : bytes[at + 2]!;
    types.push(bytes[at + 1]!);
    at += (extended ? 4 : 3) + length;
  }
  return types;
}

const ATTRIBUTE_NAMES: Readonly<Record<number, string>> = {
  1: 'ORIGIN',
  2: 'AS_PATH',
  3: 'NEXT_HOP',
  4: 'MED',
  5: 'LOCAL_PREF',
  6: 'ATOMIC_AGGREGATE',
  7: 'AGGREGATOR',
  8: 'COMMUNITIES',
  9: 'ORIGINATOR_ID',
  10: 'CLUSTER_LIST',
  14: 'MP_REACH_NLRI',
  15: 'MP_UNREACH_NLRI',
  17: 'AS4_PATH',
};

/** A one-line, human description of a message's content (for index.json). */
export function describeMessage(bytes: Buffer): string {
  const type = bytes[18];
  if (type === 1) {
    return `OPEN my AS ${bytes.readUInt16BE(20)}, hold time ${bytes.readUInt16BE(22)}, BGP id ${[...bytes.subarray(24, 28)].join('.')}, ${bytes[28]} octets of optional parameters`;
  }
  if (type === 3) return `NOTIFICATION code ${bytes[19]} subcode ${bytes[20]}, ${bytes.length - 21} octets of data`;
  if (type === 4) return 'KEEPALIVE';
  if (type === 5) return `ROUTE-REFRESH afi ${bytes.readUInt16BE(19)} safi ${bytes[22]}`;
  if (type !== 2) return `message type ${type}`;
  const withdrawnLength = bytes.readUInt16BE(19);
  const withdrawn = readPrefixes(bytes, 21, 21 + withdrawnLength);
  const attrsStart = 23 + withdrawnLength;
  const attrsLength = bytes.readUInt16BE(21 + withdrawnLength);
  const attrs = attributeTypes(bytes, attrsStart, attrsStart + attrsLength).map(
    (t) => ATTRIBUTE_NAMES[t] ?? `type ${t}`,
  );
  const nlri = readPrefixes(bytes, attrsStart + attrsLength, bytes.length);
  if (withdrawn.length === 0 && attrs.length === 0 && nlri.length === 0)
    return 'UPDATE End-of-RIB for IPv4 unicast (RFC 4724 §2: empty UPDATE)';
  const parts: string[] = [];
  if (withdrawn.length > 0) parts.push(`withdraws ${withdrawn.join(' ')}`);
  if (nlri.length > 0) parts.push(`announces ${nlri.join(' ')}`);
  if (attrs.length > 0) parts.push(`attributes ${attrs.join(', ')}`);
  return `UPDATE ${parts.join('; ')}`;
}

interface ScenarioResult {
  readonly messages: RecordedMessage[];
  readonly fourOctetAs: boolean;
  readonly partnerKind: PeerKind;
}

async function runScenario(
  kind: CapturedPeer,
  scenario: Scenario,
  base: (n: number) => string,
): Promise<ScenarioResult> {
  const capturedAddress = base(1);
  const partnerAddress = base(2);
  const relayAddress = base(3);
  const partnerKind = PARTNER[kind];
  const relay = await startRecordingRelay({ listenAddress: relayAddress, targetAddress: partnerAddress });
  let captured: PeerDaemon | undefined;
  let partner: PeerDaemon | undefined;
  try {
    partner = await startPeer(partnerKind, {
      address: partnerAddress,
      as: scenario.partnerAs,
      routerId: partnerAddress,
      neighbors: [{ address: capturedAddress, as: scenario.capturedAs, passive: true }],
    });
    captured = await startPeer(kind, {
      address: capturedAddress,
      as: scenario.capturedAs,
      routerId: capturedAddress,
      neighbors: [{ address: relayAddress, as: scenario.configuredPartnerAs }],
    });
    const fromCaptured = (type: number) => relay.messages.some((m) => m.direction === 'a-to-b' && m.type === type);
    if (scenario.name === 'bad-peer-as') {
      await waitFor(() => fromCaptured(3), {
        timeoutMs: 15_000,
        what: `${kind} to send a NOTIFICATION for the wrong peer AS`,
      });
    } else {
      const prefix = `10.${scenario.name === 'ibgp' ? 71 : 72}.${CAPTURED.indexOf(kind)}.0/24`;
      await waitForSession(captured, relayAddress);
      await captured.announce(prefix, `198.18.${CAPTURED.indexOf(kind)}.1`);
      await waitForRoute(partner, prefix);
      await captured.withdraw(prefix);
      await waitForNoRoute(partner, prefix);
      await captured.stop();
      await waitFor(() => fromCaptured(3), {
        timeoutMs: 5000,
        what: `${kind} to send a Cease NOTIFICATION on shutdown`,
      }).catch((err: Error) => {
        console.warn(`capture: ${err.message}`);
      });
    }
  } finally {
    await captured?.stop().catch(() => undefined);
    await partner?.stop().catch(() => undefined);
    await relay.close();
  }
  const firstOpen = (direction: 'a-to-b' | 'b-to-a') =>
    relay.messages.find((m) => m.direction === direction && m.type === 1);
  const openA = firstOpen('a-to-b');
  const openB = firstOpen('b-to-a');
  return {
    messages: relay.messages.filter((m) => m.direction === 'a-to-b'),
    fourOctetAs:
      openA !== undefined && openB !== undefined && openHasFourOctetAs(openA.bytes) && openHasFourOctetAs(openB.bytes),
    partnerKind,
  };
}

function parseArgs(argv: readonly string[]): { out: string; only: CapturedPeer[] } {
  let out = 'test/fixtures/captures';
  let only: CapturedPeer[] = [...CAPTURED];
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--out') out = argv[++i] ?? out;
    else if (argv[i] === '--only') {
      only = (argv[++i] ?? '').split(',').filter((k): k is CapturedPeer => (CAPTURED as readonly string[]).includes(k));
    } else
      throw new Error(`capture: unknown argument "${argv[i]}" (accepted: --out DIR, --only ${CAPTURED.join(',')})`);
  }
  return { out, only };
}

export async function captureAll(argv: readonly string[]): Promise<CaptureEntry[]> {
  const { out, only } = parseArgs(argv);
  if (!requirePeers(...only, ...only.map((k) => PARTNER[k])))
    throw new Error('capture: a daemon is missing (see warnings above)');
  const block = addressBlock('test/harness/capture.ts');
  mkdirSync(out, { recursive: true });
  const entries: CaptureEntry[] = [];
  let slot = 0;
  for (const kind of only) {
    for (const file of readdirSync(out))
      if (file.startsWith(`${kind}-`) && file.endsWith('.hex')) rmSync(join(out, file));
    for (const scenario of SCENARIOS) {
      const first = slot * 4;
      slot++;
      const result = await runScenario(kind, scenario, (n) => block.host(first + n));
      let keepalives = 0;
      let seq = 0;
      for (const message of result.messages) {
        const type = TYPE_NAMES[message.type];
        if (!type) continue;
        if (type === 'keepalive' && keepalives++ > 0) continue;
        const file = `${kind}-${scenario.name}-${String(++seq).padStart(2, '0')}-${type}.hex`;
        writeFileSync(join(out, file), message.bytes.toString('hex') + '\n');
        const session = `${kind} AS ${scenario.capturedAs} → ${result.partnerKind} AS ${scenario.partnerAs} (${scenario.name}${scenario.name === 'bad-peer-as' ? `: ${kind} expected AS ${scenario.configuredPartnerAs}` : ''})`;
        entries.push({
          file,
          peer: kind,
          direction: 'from-peer',
          type,
          fourOctetAs: result.fourOctetAs,
          description: `${session}: ${describeMessage(message.bytes)}`,
        });
      }
      console.info(`capture: ${kind} ${scenario.name}: ${result.messages.length} messages from ${kind}`);
    }
  }
  // Keep entries of kinds not captured this time (--only), so a partial run does not lose the others.
  const indexPath = join(out, 'index.json');
  let previous: CaptureEntry[] = [];
  try {
    previous = (JSON.parse((await import('node:fs')).readFileSync(indexPath, 'utf8')) as CaptureEntry[]).filter(
      (e) => !only.includes(e.peer),
    );
  } catch {
    previous = [];
  }
  const all = [...previous, ...entries].sort((a, b) => a.file.localeCompare(b.file));
  writeFileSync(indexPath, JSON.stringify(all, null, 2) + '\n');
  return all;
}

if (process.argv[1] && /capture\.(js|ts)$/.test(process.argv[1])) {
  captureAll(process.argv.slice(2))
    .then(async (entries) => {
      console.info(`capture: wrote ${entries.length} messages to index.json`);
      await stopAll();
    })
    .catch(async (err: unknown) => {
      console.error(err instanceof Error ? err.message : err);
      await stopAll().catch(() => undefined);
      process.exitCode = 1;
    });
}
