// One whole nftables table kept equal to a desired description, the way route-table.ts keeps routes: the
// desired content (a pure NftTableSpec) against what `nft -j list table` shows, and a write only when they
// differ. The table is tortie's own (`table ip tortie-nat`): nothing outside it is ever read or written.
//
//   spec       NftTableSpec: sets (name, type, flags, elements) and base chains (hook, priority, policy,
//              rules); each rule carries both its script text and its expression as `nft -j` prints it,
//              so the kernel's listing can be compared without parsing nft's rule language.
//   render     renderTableScript(spec): `add table` + `delete table` + the whole table, one `nft -f -`
//              transaction — the table is replaced in one step, never seen half-written; connections
//              already NATed keep their conntrack mapping across the swap.
//   compare    canonicalListing(list) and canonicalSpec(spec) both give a CanonicalTable (no handles,
//              elements as sorted "a.b.c.d/len", set flags sorted); tableDifference() names the first
//              difference for the log ("rule 1 of chain postrouting differs", "set nat-pools lacks ...").
//   keeper     NftTableKeeper: setDesired(spec | null) → sync(): list, compare, write (or delete the table
//              when nothing is desired) — serialized, retried after a failure, re-checked every
//              `resyncMs` so a rule deleted by hand comes back, and at once when `poke()` is called (an
//              `nft monitor` event about the table: dataplane.ts watches and pokes).
//
// Why this is hard:
// - nft prints some things differently from how they were written: a /32 set element comes back as a bare
//   address, `priority srcnat` as `"prio": 100`, an empty set without an `elem` key, and another nft
//   version may spell an expression differently again. Elements and chains are canonicalized here; for
//   rules, if our own write reads back in a form the model does not predict, the read-back form is
//   remembered for that desired content ("as written") and accepted afterwards — otherwise every check
//   would rewrite the table forever (and with a monitor, each write would trigger the next).
// - No write when nothing changed: a check costs one `nft -j list table` (a few ms), a write costs a
//   transaction that re-registers the hook; the keeper counts both (`status()`), the tests measure them.
// - Every check and write is one at a time: a desired change during a sync is applied right after it.

import { formatIpv4, tryParseIpv4 } from '../bgp/ip.js';
import type { NftEvent, NftMonitor } from './nft.js';
import { systemClock } from '../bgp/clock.js';
import type { Logger } from '../bgp/log.js';
import type { RouteTableClock } from './route-table.js';

export type NftFamily = 'ip' | 'inet';

export interface NftSetSpec {
  name: string;
  type: 'ipv4_addr';
  flags: readonly 'interval'[];
  /** "a.b.c.d/len" (network address, no overlaps); sorted by canonicalSpec, any order here. */
  elements: readonly string[];
}

export interface NftRuleSpec {
  /** The rule as a script line, without `add rule <table> <chain>` (e.g. `ip saddr @x masquerade comment "y"`). */
  text: string;
  /** Its expression as `nft -j list` prints it (json_schema_version 1). */
  expr: readonly unknown[];
  /** The rule's comment, as in `text`. */
  comment?: string;
}

export interface NftChainSpec {
  name: string;
  type: 'nat' | 'filter';
  hook: 'prerouting' | 'input' | 'forward' | 'output' | 'postrouting';
  /** Numeric priority (srcnat = 100, filter = 0, dstnat = -100). */
  priority: number;
  policy: 'accept' | 'drop';
  rules: readonly NftRuleSpec[];
}

export interface NftTableSpec {
  family: NftFamily;
  name: string;
  /** A comment on the table itself, for people running `nft list ruleset`; not compared. */
  comment?: string;
  sets: readonly NftSetSpec[];
  chains: readonly NftChainSpec[];
}

/** What is compared: no handles, no ordering nft is free to change. */
export interface CanonicalTable {
  sets: Record<string, { type: string; flags: string[]; elements: string[] }>;
  chains: Record<
    string,
    {
      type: string | null;
      hook: string | null;
      prio: number | null;
      policy: string | null;
      rules: Array<{ expr: string; comment: string | null }>;
    }
  >;
}

const NAME = /^[A-Za-z][A-Za-z0-9_-]*$/;

function checkName(what: string, name: string): void {
  if (!NAME.test(name))
    throw new Error(`${what} name "${name}" is not an nft identifier (a letter, then letters, digits, _ or -)`);
}

function quote(text: string): string {
  if (/["\\\n]/.test(text))
    throw new Error(`comment "${text}" contains a quote, backslash or newline (nft comments cannot)`);
  return `"${text}"`;
}

/** The script that replaces the whole table in one transaction (creating it if absent). */
export function renderTableScript(spec: NftTableSpec): string {
  checkName('table', spec.name);
  const lines = [
    `add table ${spec.family} ${spec.name}`,
    `delete table ${spec.family} ${spec.name}`,
    `table ${spec.family} ${spec.name} {`,
  ];
  if (spec.comment !== undefined) lines.push(`  comment ${quote(spec.comment)}`);
  for (const set of spec.sets) {
    checkName('set', set.name);
    lines.push(`  set ${set.name} {`, `    type ${set.type}`);
    if (set.flags.length > 0) lines.push(`    flags ${set.flags.join(', ')}`);
    const elements = sortedElements(set.elements);
    if (elements.length > 0) lines.push(`    elements = { ${elements.join(', ')} }`);
    lines.push('  }');
  }
  for (const chain of spec.chains) {
    checkName('chain', chain.name);
    lines.push(
      `  chain ${chain.name} {`,
      `    type ${chain.type} hook ${chain.hook} priority ${chain.priority}; policy ${chain.policy};`,
    );
    for (const rule of chain.rules) lines.push(`    ${rule.text}`);
    lines.push('  }');
  }
  lines.push('}', '');
  return lines.join('\n');
}

/** The script that removes the table if it is there (and does nothing if it is not). */
export function renderDeleteScript(family: NftFamily, name: string): string {
  checkName('table', name);
  return `add table ${family} ${name}\ndelete table ${family} ${name}\n`;
}

/** "10.0.0.0/8" → [address, len]; null if it is not an IPv4 prefix. */
function splitPrefix(text: string): [number, number] | null {
  const slash = text.indexOf('/');
  const addr = tryParseIpv4(slash < 0 ? text : text.slice(0, slash));
  const len = slash < 0 ? 32 : Number(text.slice(slash + 1));
  if (addr === null || !Number.isInteger(len) || len < 0 || len > 32) return null;
  return [addr, len];
}

function sortedElements(elements: readonly string[]): string[] {
  const keyed = elements.map((e) => ({ e, p: splitPrefix(e) }));
  keyed.sort(
    (a, b) =>
      (a.p?.[0] ?? 0) - (b.p?.[0] ?? 0) || (a.p?.[1] ?? 0) - (b.p?.[1] ?? 0) || (a.e < b.e ? -1 : a.e > b.e ? 1 : 0),
  );
  return keyed.map((k) => (k.p === null ? k.e : `${formatIpv4(k.p[0])}/${k.p[1]}`));
}

/** One element of `nft -j`'s `elem` array as "a.b.c.d/len" (or "a-b" for a range nft could not fold). */
function canonicalElement(elem: unknown): string {
  if (typeof elem === 'string') return elem.includes('/') ? elem : `${elem}/32`;
  if (typeof elem === 'object' && elem !== null) {
    const o = elem as Record<string, unknown>;
    const prefix = o.prefix as { addr?: unknown; len?: unknown } | undefined;
    if (prefix !== undefined) return `${String(prefix.addr)}/${String(prefix.len)}`;
    if (Array.isArray(o.range)) return o.range.map(String).join('-');
    if (o.elem !== undefined) return canonicalElement((o.elem as { val?: unknown }).val);
  }
  return JSON.stringify(elem);
}

/** JSON with object keys sorted, so two spellings of one expression compare equal. */
export function stableJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(stableJson).join(',')}]`;
  if (typeof value === 'object' && value !== null) {
    const keys = Object.keys(value).sort();
    return `{${keys.map((k) => `${JSON.stringify(k)}:${stableJson((value as Record<string, unknown>)[k])}`).join(',')}}`;
  }
  return JSON.stringify(value ?? null);
}

export function canonicalSpec(spec: NftTableSpec): CanonicalTable {
  const out: CanonicalTable = { sets: {}, chains: {} };
  for (const set of spec.sets)
    out.sets[set.name] = { type: set.type, flags: [...set.flags].sort(), elements: sortedElements(set.elements) };
  for (const chain of spec.chains) {
    out.chains[chain.name] = {
      type: chain.type,
      hook: chain.hook,
      prio: chain.priority,
      policy: chain.policy,
      rules: chain.rules.map((r) => ({ expr: stableJson(r.expr), comment: r.comment ?? null })),
    };
  }
  return out;
}

/** `nft -j list table` output (the `nftables` array) for the table `name`, canonical. */
export function canonicalListing(list: readonly unknown[], name: string): CanonicalTable {
  const out: CanonicalTable = { sets: {}, chains: {} };
  const rules: Array<{ chain: string; expr: unknown; comment: unknown }> = [];
  for (const item of list) {
    if (typeof item !== 'object' || item === null) continue;
    const o = item as Record<string, Record<string, unknown> | undefined>;
    if (o.set !== undefined && o.set.table === name) {
      const s = o.set;
      const flags = Array.isArray(s.flags) ? s.flags.map(String).sort() : [];
      const elements = Array.isArray(s.elem) ? sortedElements(s.elem.map(canonicalElement)) : [];
      out.sets[String(s.name)] = { type: String(s.type), flags, elements };
    } else if (o.chain !== undefined && o.chain.table === name) {
      const c = o.chain;
      out.chains[String(c.name)] = {
        type: typeof c.type === 'string' ? c.type : null,
        hook: typeof c.hook === 'string' ? c.hook : null,
        prio: typeof c.prio === 'number' ? c.prio : null,
        policy: typeof c.policy === 'string' ? c.policy : null,
        rules: [],
      };
    } else if (o.rule !== undefined && o.rule.table === name) {
      rules.push({ chain: String(o.rule.chain), expr: o.rule.expr, comment: o.rule.comment });
    }
  }
  // nft lists chains before rules; a rule of a chain not listed still counts (as a difference).
  for (const r of rules) {
    const chain = (out.chains[r.chain] ??= { type: null, hook: null, prio: null, policy: null, rules: [] });
    chain.rules.push({ expr: stableJson(r.expr), comment: typeof r.comment === 'string' ? r.comment : null });
  }
  return out;
}

/** The first difference between the wanted and the actual table, for people; null when equal. */
export function tableDifference(wanted: CanonicalTable | null, actual: CanonicalTable | null): string | null {
  if (wanted === null) return actual === null ? null : 'the table is there but nothing is wanted in it';
  if (actual === null) return 'the table is missing';
  for (const [name, set] of Object.entries(wanted.sets)) {
    const got = actual.sets[name];
    if (got === undefined) return `set ${name} is missing`;
    if (got.type !== set.type || stableJson(got.flags) !== stableJson(set.flags))
      return `set ${name} has type ${got.type} flags [${got.flags.join(', ')}], wanted ${set.type} flags [${set.flags.join(', ')}]`;
    const missing = set.elements.filter((e) => !got.elements.includes(e));
    const extra = got.elements.filter((e) => !set.elements.includes(e));
    if (missing.length > 0 || extra.length > 0) {
      return `set ${name}: ${[missing.length > 0 ? `lacks ${missing.join(', ')}` : '', extra.length > 0 ? `has extra ${extra.join(', ')}` : ''].filter(Boolean).join('; ')}`;
    }
  }
  for (const name of Object.keys(actual.sets))
    if (wanted.sets[name] === undefined) return `set ${name} is not ours to have`;
  for (const [name, chain] of Object.entries(wanted.chains)) {
    const got = actual.chains[name];
    if (got === undefined) return `chain ${name} is missing`;
    if (got.type !== chain.type || got.hook !== chain.hook || got.prio !== chain.prio || got.policy !== chain.policy) {
      return `chain ${name} is type ${got.type} hook ${got.hook} priority ${got.prio} policy ${got.policy}, wanted ${chain.type} ${chain.hook} ${chain.prio} ${chain.policy}`;
    }
    const n = Math.max(chain.rules.length, got.rules.length);
    for (let i = 0; i < n; i++) {
      const w = chain.rules[i];
      const g = got.rules[i];
      if (w === undefined) return `chain ${name} has ${got.rules.length} rules, wanted ${chain.rules.length}`;
      if (g === undefined)
        return `chain ${name} has ${got.rules.length} rules, wanted ${chain.rules.length} (rule ${i + 1} is missing)`;
      if (w.expr !== g.expr || w.comment !== g.comment) return `rule ${i + 1} of chain ${name} differs`;
    }
  }
  for (const name of Object.keys(actual.chains))
    if (wanted.chains[name] === undefined) return `chain ${name} is not ours to have`;
  return null;
}

// ---- the keeper -----------------------------------------------------------------------------------------

/** The part of felix/nft.ts's Nft the keeper uses (tests pass a fake). */
export interface NftLike {
  apply(script: string): Promise<void>;
  listTable(family: NftFamily, name: string): Promise<unknown[] | null>;
  /** Optional: ruleset change events (felix/nft.ts `nft -j monitor`), for an immediate check. */
  monitor?(onEvent: (event: NftEvent) => void, onLost: (reason: string) => void): NftMonitor;
}

/** The logger methods the keeper uses. */
export type NftTableLog = Pick<Logger, 'info' | 'warn'>;

export interface NftTableKeeperOptions {
  nft: NftLike;
  family: NftFamily;
  name: string;
  log: NftTableLog;
  /** A full check (list + compare) this often (default 90,000 ms, felix's route resync). */
  resyncMs?: number;
  /** After a failed sync, try again this soon (default 5,000 ms). */
  retryMs?: number;
  clock?: RouteTableClock;
}

export interface NftSyncResult {
  /** The table was written (or deleted). */
  wrote: boolean;
  /** Why it was written: the first difference found; null when it already matched. */
  difference: string | null;
}

export interface NftTableStatus {
  /** A sync has succeeded and nothing changed since: the kernel holds the desired table. */
  inSync: boolean;
  checks: number;
  writes: number;
  lastCheckAt: string | null;
  lastWriteAt: string | null;
  lastDifference: string | null;
  lastError?: string;
}

const realClock: RouteTableClock = systemClock;

export class NftTableKeeper {
  private readonly clock: RouteTableClock;
  private readonly resyncMs: number;
  private readonly retryMs: number;
  private desired: NftTableSpec | null = null;
  private desiredKey = stableJson(null);
  private wanted: CanonicalTable | null = null;
  /** What our own write of `desiredKey` read back as, when the model did not predict it exactly. */
  private asWritten: { key: string; table: CanonicalTable } | null = null;
  private running: Promise<NftSyncResult> | null = null;
  private again = false;
  private inSync = false;
  private checks = 0;
  private writes = 0;
  private lastCheckAt: number | null = null;
  private lastWriteAt: number | null = null;
  private lastDifference: string | null = null;
  private lastError: string | undefined;
  private timer: object | null = null;
  private started = false;
  private stopped = false;

  constructor(private readonly options: NftTableKeeperOptions) {
    this.clock = options.clock ?? realClock;
    this.resyncMs = options.resyncMs ?? 90_000;
    this.retryMs = options.retryMs ?? 5_000;
    checkName('table', options.name);
  }

  /** The table's desired content (null: the table should not exist). A change is synced at once when started. */
  setDesired(spec: NftTableSpec | null): void {
    if (spec !== null && (spec.family !== this.options.family || spec.name !== this.options.name)) {
      throw new Error(
        `this keeper owns table ${this.options.family} ${this.options.name}, not ${spec.family} ${spec.name}`,
      );
    }
    const key = stableJson(spec);
    if (key === this.desiredKey) return;
    this.desired = spec;
    this.desiredKey = key;
    this.wanted = spec === null ? null : canonicalSpec(spec);
    this.inSync = false;
    if (this.started) void this.sync().catch(() => undefined);
  }

  /** Syncs now and then every `resyncMs`. */
  start(): void {
    if (this.started || this.stopped) return;
    this.started = true;
    void this.sync().catch(() => undefined);
  }

  /** Something may have changed the table (an nft monitor event): check it now. */
  poke(): void {
    if (this.started && !this.stopped) void this.sync().catch(() => undefined);
  }

  stop(): void {
    this.stopped = true;
    if (this.timer !== null) this.clock.clearTimeout(this.timer);
    this.timer = null;
  }

  /** List, compare, write if different. One at a time; a call during a sync runs once more after it. */
  sync(): Promise<NftSyncResult> {
    if (this.running !== null) {
      this.again = true;
      return this.running;
    }
    const run = (async () => {
      let result: NftSyncResult;
      do {
        this.again = false;
        result = await this.syncOnce();
      } while (this.again && !this.stopped);
      return result;
    })();
    this.running = run;
    const done = (): void => {
      this.running = null;
      // A failure is retried soon only while a table is wanted; removing a stale one can wait a resync.
      this.schedule(this.lastError !== undefined && this.desired !== null ? this.retryMs : this.resyncMs);
    };
    run.then(done, done);
    return run;
  }

  status(): NftTableStatus {
    const iso = (t: number | null): string | null => (t === null ? null : new Date(t).toISOString());
    return {
      inSync: this.inSync,
      checks: this.checks,
      writes: this.writes,
      lastCheckAt: iso(this.lastCheckAt),
      lastWriteAt: iso(this.lastWriteAt),
      lastDifference: this.lastDifference,
      ...(this.lastError !== undefined ? { lastError: this.lastError } : {}),
    };
  }

  private schedule(ms: number): void {
    if (!this.started || this.stopped) return;
    if (this.timer !== null) this.clock.clearTimeout(this.timer);
    this.timer = this.clock.setTimeout(() => {
      this.timer = null;
      void this.sync().catch(() => undefined);
    }, ms);
  }

  private async syncOnce(): Promise<NftSyncResult> {
    const { nft, family, name, log } = this.options;
    const key = this.desiredKey;
    const spec = this.desired;
    const wanted = this.wanted;
    try {
      this.checks++;
      this.lastCheckAt = this.clock.now();
      const listed = await nft.listTable(family, name);
      const actual = listed === null ? null : canonicalListing(listed, name);
      let difference = tableDifference(wanted, actual);
      if (
        difference !== null &&
        this.asWritten !== null &&
        this.asWritten.key === key &&
        tableDifference(this.asWritten.table, actual) === null
      ) {
        difference = null;
      }
      if (difference === null) {
        this.lastError = undefined;
        this.inSync = key === this.desiredKey;
        return { wrote: false, difference: null };
      }
      await nft.apply(spec === null ? renderDeleteScript(family, name) : renderTableScript(spec));
      this.writes++;
      this.lastWriteAt = this.clock.now();
      this.lastDifference = difference;
      log.info(
        { table: `${family} ${name}`, difference },
        spec === null ? 'nftables table removed' : 'nftables table written',
      );
      if (spec !== null && wanted !== null) await this.readBack(key, wanted);
      this.lastError = undefined;
      this.inSync = key === this.desiredKey;
      return { wrote: true, difference };
    } catch (error) {
      const message = (error as Error).message;
      if (message !== this.lastError)
        log.warn({ table: `${family} ${name}`, err: message }, 'programming the nftables table failed; retrying');
      this.lastError = message;
      this.inSync = false;
      throw error;
    }
  }

  /** After our own write: if nft shows it differently from the model, remember that form for this content. */
  private async readBack(key: string, wanted: CanonicalTable): Promise<void> {
    const { nft, family, name, log } = this.options;
    const listed = await nft.listTable(family, name);
    const actual = listed === null ? null : canonicalListing(listed, name);
    const difference = tableDifference(wanted, actual);
    if (difference === null || actual === null) {
      this.asWritten = null;
      return;
    }
    if (this.asWritten?.key !== key) {
      log.info(
        { table: `${family} ${name}`, difference },
        'nft lists the table differently from how tortie describes it; that form is accepted as written',
      );
    }
    this.asWritten = { key, table: actual };
  }
}
