// NetworkPolicy's dataplane: keeps tortie's own `table inet tortie-filter` equal to a desired filter (named
// sets of addresses, chains of rules) computed elsewhere (src/policy/render.ts), through nftables.
//
//   apply(desired)   incremental: compares with what this driver last applied and writes one `nft -f`
//                    script holding only the sets and chains that changed (new, different, or gone) —
//                    atomic, all or nothing. A label change rewrites the few sets it touches, not the table.
//   resync(desired)  the full compare (felix's periodic resync): reads the table back (`nft -j list`),
//                    compares every set's elements and every chain's rules, and rewrites what differs —
//                    a rule or element deleted by hand comes back; anything outside the table is untouched.
//
// Identity of a chain's content: every rule carries `comment "tortie:<hash>"`, the hash of the chain's
// whole desired rule list, so reading a chain back tells "as we wrote it" (same count, every comment the
// hash) from "changed by someone". Sets compare by their elements, normalized (nft shows an aligned
// interval as a prefix, protocols by name).
//
// Why this is hard: order inside one transaction. A set must exist before a rule names it; a chain can be
// deleted only when no rule jumps to it and it is empty, and a set only when no rule uses it. So a script
// is: table; changed sets; changed chains created and flushed, then their rules; then removed chains
// flushed, then deleted;
// then removed sets. May import nothing from src/ (felix/README.md).

import { createHash } from 'node:crypto';
import { NftError } from './nft.js';

export const FILTER_TABLE = 'tortie-filter';

/** The runner (felix/nft.ts's Nft, or a fake in tests). */
export interface NftRunner {
  apply(script: string): Promise<void>;
  listTable(family: 'ip' | 'inet', name: string): Promise<unknown[] | null>;
}

export type FilterSet =
  /** `type ipv4_addr; flags interval` — [first, last] as 32-bit numbers, sorted and disjoint. */
  | { kind: 'addresses'; ranges: ReadonlyArray<readonly [number, number]> }
  /** `type ipv4_addr` (a hash set, no intervals) — single addresses as 32-bit numbers. */
  | { kind: 'hosts'; addresses: readonly number[] }
  /** `type ipv4_addr . inet_proto . inet_service` — (address, protocol number, port). */
  | { kind: 'addressPorts'; entries: ReadonlyArray<{ ip: number; protocol: number; port: number }> };

export interface FilterChain {
  /** Base chains only: the hook (priority filter, policy accept). */
  hook?: 'forward';
  /** Rule bodies as nft writes them after `add rule inet <table> <chain> ` (without comment). */
  rules: string[];
}

export interface DesiredFilter {
  sets: ReadonlyMap<string, FilterSet>;
  chains: ReadonlyMap<string, FilterChain>;
}

/** One canonical string per set / chain: equal strings = equal content. */
interface Canonical {
  sets: Map<string, string>;
  chains: Map<string, string>;
}

export interface ApplyStats {
  setsWritten: number;
  chainsWritten: number;
  setsDeleted: number;
  chainsDeleted: number;
  /** Lines of the nft script (0: nothing to do, nft not run). */
  scriptLines: number;
}

function ipText(v: number): string {
  return [24, 16, 8, 0].map((s) => Math.floor(v / 2 ** s) % 256).join('.');
}

function ipNumber(text: string): number {
  return text.split('.').reduce((acc, p) => acc * 256 + Number(p), 0);
}

const PROTOCOL_NUMBERS: Readonly<Record<string, number>> = { tcp: 6, udp: 17, sctp: 132 };

function setCanonical(set: FilterSet): string {
  if (set.kind === 'hosts') return `h:${[...new Set(set.addresses)].sort((a, b) => a - b).join(',')}`;
  if (set.kind === 'addresses')
    return `a:${mergeRanges(set.ranges)
      .map(([a, b]) => `${a}-${b}`)
      .join(',')}`;
  return `p:${[...set.entries]
    .map((e) => `${e.ip}.${e.protocol}.${e.port}`)
    .sort()
    .join(',')}`;
}

function mergeRanges(ranges: Iterable<readonly [number, number]>): Array<[number, number]> {
  const out: Array<[number, number]> = [];
  for (const [a, b] of [...ranges].sort((x, y) => x[0] - y[0])) {
    const last = out[out.length - 1];
    if (last !== undefined && a <= last[1] + 1) last[1] = Math.max(last[1], b);
    else out.push([a, b]);
  }
  return out;
}

const hashMemo = new WeakMap<FilterChain, string>();

export function chainHash(chain: FilterChain): string {
  let hash = hashMemo.get(chain);
  if (hash === undefined) {
    hash = createHash('sha1')
      .update(`${chain.hook ?? ''}\n${chain.rules.join('\n')}`)
      .digest('hex')
      .slice(0, 12);
    hashMemo.set(chain, hash);
  }
  return hash;
}

function chainCanonical(chain: FilterChain): string {
  return `${chain.hook ?? ''}:${chain.rules.length}:${chainHash(chain)}`;
}

/**
 * Canonical strings and chain hashes by object: a caller that hands the same (unchanged) set or chain object
 * again (src/policy/incremental.ts does) costs a lookup, not a sort or a hash. Objects are never mutated.
 */
const canonicalMemo = new WeakMap<object, string>();

function memo(obj: object, compute: () => string): string {
  let value = canonicalMemo.get(obj);
  if (value === undefined) {
    value = compute();
    canonicalMemo.set(obj, value);
  }
  return value;
}

function canonicalOf(desired: DesiredFilter): Canonical {
  return {
    sets: new Map([...desired.sets].map(([n, s]) => [n, memo(s, () => setCanonical(s))])),
    chains: new Map([...desired.chains].map(([n, c]) => [n, memo(c, () => chainCanonical(c))])),
  };
}

/** What the kernel's table holds, in canonical form, from `nft -j list table` output. */
export function canonicalFromKernel(json: unknown[]): Canonical {
  const sets = new Map<string, string>();
  const chains = new Map<string, string>();
  const rules = new Map<string, string[]>();
  const hooks = new Map<string, string>();
  for (const item of json as Array<Record<string, unknown>>) {
    if (item.set) {
      const s = item.set as { name: string; type: string | string[]; flags?: string[]; elem?: unknown[] };
      if (!Array.isArray(s.type) && !(s.flags ?? []).includes('interval')) {
        const addresses = (s.elem ?? []).map((e) => (typeof e === 'string' ? ipNumber(e) : NaN));
        sets.set(s.name, setCanonical({ kind: 'hosts', addresses }));
      } else if (Array.isArray(s.type)) {
        const entries = (s.elem ?? []).map((e) => {
          const [ip, proto, port] = (e as { concat: [string, string | number, number] }).concat;
          const protocol = typeof proto === 'number' ? proto : (PROTOCOL_NUMBERS[proto] ?? Number(proto));
          return { ip: ipNumber(ip), protocol, port: Number(port) };
        });
        sets.set(s.name, setCanonical({ kind: 'addressPorts', entries }));
      } else {
        const ranges = (s.elem ?? []).map((e): [number, number] => {
          if (typeof e === 'string') return [ipNumber(e), ipNumber(e)];
          const o = e as { range?: [string, string]; prefix?: { addr: string; len: number }; elem?: { val: unknown } };
          if (o.range) return [ipNumber(o.range[0]), ipNumber(o.range[1])];
          if (o.prefix) {
            const size = 2 ** (32 - o.prefix.len);
            const first = ipNumber(o.prefix.addr);
            return [first, first + size - 1];
          }
          return [NaN, NaN];
        });
        sets.set(s.name, setCanonical({ kind: 'addresses', ranges }));
      }
    } else if (item.chain) {
      const c = item.chain as { name: string; hook?: string };
      hooks.set(c.name, c.hook ?? '');
      rules.set(c.name, []);
    } else if (item.rule) {
      const r = item.rule as { chain: string; comment?: string };
      rules.get(r.chain)?.push(r.comment ?? '');
    }
  }
  for (const [name, comments] of rules) {
    const hashes = new Set(comments.map((c) => (c.startsWith('tortie:') ? c.slice(7) : `foreign:${c}`)));
    const hash = hashes.size === 1 ? [...hashes][0]! : comments.length === 0 ? chainHash({ rules: [] }) : 'mixed';
    chains.set(name, `${hooks.get(name) ?? ''}:${comments.length}:${hash}`);
  }
  return { sets, chains };
}

function setDeclaration(set: FilterSet): string {
  if (set.kind === 'hosts') return '{ type ipv4_addr; }';
  return set.kind === 'addresses'
    ? '{ type ipv4_addr; flags interval; }'
    : '{ type ipv4_addr . inet_proto . inet_service; }';
}

function setElements(set: FilterSet): string[] {
  if (set.kind === 'hosts') return [...new Set(set.addresses)].sort((a, b) => a - b).map(ipText);
  if (set.kind === 'addresses')
    return mergeRanges(set.ranges).map(([a, b]) => (a === b ? ipText(a) : `${ipText(a)}-${ipText(b)}`));
  return set.entries.map((e) => `${ipText(e.ip)} . ${e.protocol} . ${e.port}`);
}

/** Elements per `add element` line: keeps lines to a size nft reads quickly. */
const ELEMENTS_PER_LINE = 500;

/** The nft script turning `current` into `desired` (pure). Empty when nothing differs. */
export function diffScript(
  desired: DesiredFilter,
  current: Canonical | null,
  table = FILTER_TABLE,
): { script: string; stats: ApplyStats } {
  const want = canonicalOf(desired);
  const have: Canonical = current ?? { sets: new Map(), chains: new Map() };
  const t = `inet ${table}`;
  const lines: string[] = [];
  const stats: ApplyStats = { setsWritten: 0, chainsWritten: 0, setsDeleted: 0, chainsDeleted: 0, scriptLines: 0 };
  for (const [name, set] of desired.sets) {
    if (have.sets.get(name) === want.sets.get(name)) continue;
    stats.setsWritten++;
    lines.push(`add set ${t} ${name} ${setDeclaration(set)}`, `flush set ${t} ${name}`);
    const elements = setElements(set);
    for (let i = 0; i < elements.length; i += ELEMENTS_PER_LINE)
      lines.push(`add element ${t} ${name} { ${elements.slice(i, i + ELEMENTS_PER_LINE).join(', ')} }`);
  }
  // Every changed chain exists and is empty before any rule is added: rules jump to each other's chains.
  const changed = [...desired.chains].filter(([name]) => have.chains.get(name) !== want.chains.get(name));
  for (const [name, chain] of changed) {
    const hook = chain.hook ? ` { type filter hook ${chain.hook} priority filter; policy accept; }` : '';
    lines.push(`add chain ${t} ${name}${hook}`, `flush chain ${t} ${name}`);
  }
  for (const [name, chain] of changed) {
    const hash = chainHash(chain);
    for (const rule of chain.rules) lines.push(`add rule ${t} ${name} ${rule} comment "tortie:${hash}"`);
  }
  stats.chainsWritten = changed.length;
  const goneChains = [...have.chains.keys()].filter((n) => !desired.chains.has(n));
  for (const name of goneChains) lines.push(`flush chain ${t} ${name}`);
  for (const name of goneChains) lines.push(`delete chain ${t} ${name}`);
  stats.chainsDeleted = goneChains.length;
  const goneSets = [...have.sets.keys()].filter((n) => !desired.sets.has(n));
  for (const name of goneSets) lines.push(`delete set ${t} ${name}`);
  stats.setsDeleted = goneSets.length;
  if (lines.length === 0) return { script: '', stats };
  // `add table` is idempotent; it keeps the table when it exists.
  lines.unshift(`add table ${t}`);
  stats.scriptLines = lines.length;
  return { script: `${lines.join('\n')}\n`, stats };
}

export class PolicyDataplane {
  /** What this driver last wrote successfully; null = unknown (start, or after a failure): resync next. */
  private applied: Canonical | null = null;

  constructor(
    private readonly nft: NftRunner,
    private readonly table = FILTER_TABLE,
  ) {}

  /** Writes what changed since the last apply; a full resync when the kernel's state is unknown. */
  async apply(desired: DesiredFilter): Promise<ApplyStats> {
    if (this.applied === null) return this.resync(desired);
    return this.write(desired, this.applied);
  }

  /** Reads the table back and rewrites whatever differs from `desired`. */
  async resync(desired: DesiredFilter): Promise<ApplyStats> {
    const json = await this.nft.listTable('inet', this.table);
    return this.write(desired, json === null ? null : canonicalFromKernel(json));
  }

  /** Removes tortie's table (the agent stopping with enforcement off). */
  async removeTable(): Promise<void> {
    if ((await this.nft.listTable('inet', this.table)) !== null)
      await this.nft.apply(`delete table inet ${this.table}\n`);
    this.applied = null;
  }

  private async write(desired: DesiredFilter, current: Canonical | null): Promise<ApplyStats> {
    const { script, stats } = diffScript(desired, current, this.table);
    if (script === '') {
      this.applied = canonicalOf(desired);
      return stats;
    }
    try {
      await this.nft.apply(script);
    } catch (error) {
      this.applied = null;
      if (error instanceof NftError) throw error;
      throw new NftError(`writing table inet ${this.table}: ${error instanceof Error ? error.message : String(error)}`);
    }
    this.applied = canonicalOf(desired);
    return stats;
  }
}
