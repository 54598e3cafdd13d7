// Attribute interning: one shared, frozen object per distinct set of path attributes.
//
// Owns: the canonical identity of an attribute set (a 30-bit hash plus an equality check; `attributesKey` is
// the readable form, for messages and tests), the table of live sets, and their reference counts.
// A BGP table has far fewer distinct attribute sets than prefixes (a Calico node announces every block with
// the same set), so each route points at a shared `Attrs` and equality of sets is `===`.
//
// Why this is hard:
// - Identity must be canonical (same attributes → same set) yet computed once per distinct set, not once
//   per prefix: an UPDATE's attributes are interned once and then retained once per NLRI, and an object
//   that is already interned is found from itself (its Entry), never re-hashed.
// - When every route has its own MED or communities, the table holds one set per route, so the per-set
//   overhead is the heap per route: no key string, no identity-keyed Map (V8 would add a hash to every
//   object), no WeakSet; one Entry hung on the canonical object (non-enumerable, so spread and equality do
//   not see it) and one Map slot keyed by a Smi hash. A decoded UPDATE's own attributes object is adopted
//   as the canonical one (`internOwned`) instead of copied.
// - Sets nobody uses must go away, or a peer that flaps MEDs grows the table forever. Every holder (an
//   Adj-RIB-In route, an Adj-RIB-Out desired or advertised entry) counts one reference; the set leaves the
//   table when the count reaches zero. `intern()` returns the set with one reference taken for the caller.
// - MP_REACH_NLRI / MP_UNREACH_NLRI describe one UPDATE, not a route: they are never part of an interned set.
// - Unknown attributes keep their bytes (a Uint8Array cannot be frozen); they are copied on intern so the
//   receive buffer is not pinned, and nobody may write to them afterwards.

import { ipv6ToBytes } from '../ip6.js';
import type { PathAttributes, UnknownAttribute } from '../types.js';

/** An interned attribute set: frozen, shared, compared by identity. Never carries mpReach / mpUnreach. */
declare const interned: unique symbol;
export type Attrs = Readonly<Omit<PathAttributes, 'mpReach' | 'mpUnreach'>> & { readonly [interned]: true };

/** The table's bookkeeping for one canonical object, attached to it (non-enumerable) before it is frozen. */
interface Entry {
  readonly owner: AttrTable;
  readonly hash: number;
  /** References held; 0 when the object is not (or no longer) in the table. */
  refs: number;
  /** In the table's hash index. */
  live: boolean;
}

/** Where a canonical object keeps its Entry: a non-enumerable symbol, invisible to spread, keys and equality. */
const ENTRY: unique symbol = Symbol('tortie.attrs.entry');

function entryOf(attrs: object, owner: AttrTable): Entry | undefined {
  const entry = (attrs as { [ENTRY]?: Entry })[ENTRY];
  return entry !== undefined && entry.owner === owner ? entry : undefined;
}

function hex(bytes: Uint8Array): string {
  let out = '';
  for (const byte of bytes) out += byte.toString(16).padStart(2, '0');
  return out;
}

/**
 * The canonical key of an attribute set: one letter per attribute, in a fixed order, absent attributes
 * omitted. Two sets have the same key exactly when every attribute tortie keeps is equal. Built by plain
 * concatenation (no arrays, no join): it runs once per distinct set, which is once per route when every
 * route carries its own MED or communities.
 */
export function attributesKey(attrs: PathAttributes): string {
  let key = '';
  if (attrs.origin !== undefined) key += 'o' + attrs.origin;
  if (attrs.asPath !== undefined) {
    key += '|p';
    for (const segment of attrs.asPath) {
      key += segment.type + ':';
      const asns = segment.asns;
      for (let i = 0; i < asns.length; i++) key += (i === 0 ? '' : ',') + asns[i];
      key += ';';
    }
  }
  if (attrs.nextHop !== undefined) key += '|n' + attrs.nextHop;
  if (attrs.nextHop6 !== undefined) key += '|6' + hex(ipv6ToBytes(attrs.nextHop6));
  if (attrs.nextHop6LinkLocal !== undefined) key += '|ll' + hex(ipv6ToBytes(attrs.nextHop6LinkLocal));
  if (attrs.med !== undefined) key += '|m' + attrs.med;
  if (attrs.localPref !== undefined) key += '|l' + attrs.localPref;
  if (attrs.atomicAggregate) key += '|a';
  if (attrs.aggregator !== undefined) key += '|g' + attrs.aggregator.asn + ':' + attrs.aggregator.address;
  if (attrs.communities !== undefined) {
    key += '|c';
    for (const c of attrs.communities) key += c + ',';
  }
  if (attrs.largeCommunities !== undefined) {
    key += '|L';
    for (const c of attrs.largeCommunities) key += c + ',';
  }
  if (attrs.originatorId !== undefined) key += '|r' + attrs.originatorId;
  if (attrs.clusterList !== undefined) {
    key += '|k';
    for (const id of attrs.clusterList) key += id + ',';
  }
  if (attrs.unknown !== undefined && attrs.unknown.length > 0) {
    key += '|u';
    for (const u of attrs.unknown) key += u.flags + ':' + u.type + ':' + hex(u.value) + ';';
  }
  return key;
}

// FNV-1a over 32-bit words: cheap, no allocation. Collisions are settled by `sameAttributes`.
function mix(h: number, value: number): number {
  return Math.imul(h ^ value, 0x01000193);
}

/** An IPv6 address (16 one-byte characters) into the hash, four bytes at a time. */
function mixString(h: number, s: string): number {
  for (let i = 0; i < s.length; i += 4)
    h = mix(
      h,
      (s.charCodeAt(i) << 24) | (s.charCodeAt(i + 1) << 16) | (s.charCodeAt(i + 2) << 8) | s.charCodeAt(i + 3),
    );
  return h;
}

/**
 * A small-integer hash of exactly what `attributesKey` covers (equal sets hash equal). A Smi (30 bits), so
 * the index Map never boxes its keys.
 */
export function attributesHash(attrs: PathAttributes): number {
  let h = 0x811c9dc5 | 0;
  h = mix(h, attrs.origin ?? -1);
  const asPath = attrs.asPath;
  if (asPath !== undefined) {
    h = mix(h, 0x70 + asPath.length);
    for (const segment of asPath) {
      h = mix(h, segment.type);
      const asns = segment.asns;
      h = mix(h, asns.length);
      for (let i = 0; i < asns.length; i++) h = mix(h, asns[i] as number);
    }
  } else h = mix(h, -2);
  h = mix(h, attrs.nextHop ?? -3);
  if (attrs.nextHop6 !== undefined) h = mixString(h, attrs.nextHop6);
  if (attrs.nextHop6LinkLocal !== undefined) h = mixString(mix(h, 0x6c), attrs.nextHop6LinkLocal);
  h = mix(h, attrs.med ?? -4);
  h = mix(h, attrs.localPref ?? -5);
  if (attrs.atomicAggregate) h = mix(h, 0x61);
  if (attrs.aggregator !== undefined) h = mix(mix(h, attrs.aggregator.asn), attrs.aggregator.address);
  const communities = attrs.communities;
  if (communities !== undefined) {
    h = mix(h, 0x63 + communities.length);
    for (let i = 0; i < communities.length; i++) h = mix(h, communities[i] as number);
  }
  const large = attrs.largeCommunities;
  if (large !== undefined) {
    h = mix(h, 0x4c + large.length);
    for (let i = 0; i < large.length; i++) h = mix(h, large[i] as number);
  }
  h = mix(h, attrs.originatorId ?? -6);
  const clusterList = attrs.clusterList;
  if (clusterList !== undefined) {
    h = mix(h, 0x6b + clusterList.length);
    for (let i = 0; i < clusterList.length; i++) h = mix(h, clusterList[i] as number);
  }
  const unknown = attrs.unknown;
  if (unknown !== undefined) {
    for (const u of unknown) {
      h = mix(mix(mix(h, u.flags), u.type), u.value.length);
      for (let i = 0; i < u.value.length; i++) h = mix(h, u.value[i] as number);
    }
  }
  return (h >>> 2) & 0x3fffffff;
}

function sameNumbers(a: readonly number[] | undefined, b: readonly number[] | undefined): boolean {
  if (a === b) return true;
  if (a === undefined || b === undefined || a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** Equal exactly when `attributesKey` would give the same string (the same attributes tortie keeps). */
export function sameAttributes(a: PathAttributes, b: PathAttributes): boolean {
  if (a.origin !== b.origin || a.nextHop !== b.nextHop || a.med !== b.med || a.localPref !== b.localPref) return false;
  if (a.nextHop6 !== b.nextHop6 || a.nextHop6LinkLocal !== b.nextHop6LinkLocal) return false;
  if (a.originatorId !== b.originatorId || Boolean(a.atomicAggregate) !== Boolean(b.atomicAggregate)) return false;
  if (a.asPath !== b.asPath) {
    if (a.asPath === undefined || b.asPath === undefined || a.asPath.length !== b.asPath.length) return false;
    for (let i = 0; i < a.asPath.length; i++) {
      const x = a.asPath[i]!;
      const y = b.asPath[i]!;
      if (x.type !== y.type || !sameNumbers(x.asns, y.asns)) return false;
    }
  }
  if (a.aggregator !== b.aggregator) {
    if (a.aggregator === undefined || b.aggregator === undefined) return false;
    if (a.aggregator.asn !== b.aggregator.asn || a.aggregator.address !== b.aggregator.address) return false;
  }
  if (!sameNumbers(a.communities, b.communities) || !sameNumbers(a.clusterList, b.clusterList)) return false;
  if (!sameNumbers(a.largeCommunities, b.largeCommunities)) return false;
  const ua = a.unknown !== undefined && a.unknown.length > 0 ? a.unknown : undefined;
  const ub = b.unknown !== undefined && b.unknown.length > 0 ? b.unknown : undefined;
  if (ua !== ub) {
    if (ua === undefined || ub === undefined || ua.length !== ub.length) return false;
    for (let i = 0; i < ua.length; i++) {
      const x = ua[i]!;
      const y = ub[i]!;
      if (
        x.flags !== y.flags ||
        x.type !== y.type ||
        !sameNumbers(x.value as unknown as number[], y.value as unknown as number[])
      )
        return false;
    }
  }
  return true;
}

/** A frozen copy with the fields in a fixed order (one hidden class per shape), mp* dropped, carrying `entry`. */
function canonicalCopy(attrs: PathAttributes, entry: Entry): Attrs {
  const out: { -readonly [K in keyof PathAttributes]: PathAttributes[K] } = {};
  if (attrs.origin !== undefined) out.origin = attrs.origin;
  if (attrs.asPath !== undefined) {
    out.asPath = Object.freeze(
      attrs.asPath.map((s) => Object.freeze({ type: s.type, asns: Object.freeze([...s.asns]) })),
    );
  }
  if (attrs.nextHop !== undefined) out.nextHop = attrs.nextHop;
  if (attrs.nextHop6 !== undefined) out.nextHop6 = attrs.nextHop6;
  if (attrs.nextHop6LinkLocal !== undefined) out.nextHop6LinkLocal = attrs.nextHop6LinkLocal;
  if (attrs.med !== undefined) out.med = attrs.med;
  if (attrs.localPref !== undefined) out.localPref = attrs.localPref;
  if (attrs.atomicAggregate) out.atomicAggregate = true;
  if (attrs.aggregator !== undefined) out.aggregator = Object.freeze({ ...attrs.aggregator });
  if (attrs.communities !== undefined) out.communities = Object.freeze([...attrs.communities]);
  if (attrs.largeCommunities !== undefined) out.largeCommunities = Object.freeze([...attrs.largeCommunities]);
  if (attrs.originatorId !== undefined) out.originatorId = attrs.originatorId;
  if (attrs.clusterList !== undefined) out.clusterList = Object.freeze([...attrs.clusterList]);
  if (attrs.unknown !== undefined && attrs.unknown.length > 0) {
    out.unknown = Object.freeze(
      attrs.unknown.map((u): UnknownAttribute =>
        Object.freeze({ flags: u.flags, type: u.type, value: Uint8Array.from(u.value) }),
      ),
    );
  }
  Object.defineProperty(out, ENTRY, { value: entry });
  return Object.freeze(out) as Attrs;
}

/**
 * The table of live attribute sets. `intern` takes a reference for the caller; `retain` adds one for each
 * further holder; `release` drops one, and the set leaves the table at zero.
 *
 * Layout (per distinct set, which at 100k distinct routes is per route): the frozen canonical object, one
 * Entry attached to it, and one slot in a Map keyed by a Smi hash (collisions share an array). A canonical
 * object is found from itself through its Entry (no identity-keyed Map, no WeakSet, no key string).
 */
export class AttrTable {
  private readonly byHash = new Map<number, Attrs | Attrs[]>();
  private count = 0;

  /** The shared set equal to `attrs`, with one reference taken. Interning an interned set is a lookup. */
  intern(attrs: PathAttributes | Attrs): Attrs {
    const own = entryOf(attrs, this);
    if (own !== undefined && own.live) {
      own.refs += 1;
      return attrs as Attrs;
    }
    const hash = own !== undefined ? own.hash : attributesHash(attrs);
    const existing = this.find(hash, attrs);
    if (existing !== undefined) {
      (entryOf(existing, this) as Entry).refs += 1;
      return existing;
    }
    // A canonical object of ours that was released (or made by `canonical()`) is re-adopted, not copied.
    const entry: Entry = own ?? { owner: this, hash, refs: 0, live: false };
    const canonical = own !== undefined ? (attrs as Attrs) : canonicalCopy(attrs, entry);
    entry.refs = 1;
    entry.live = true;
    this.index(hash, canonical);
    return canonical;
  }

  /**
   * `intern` for an object the caller owns and will not touch again (the attributes of one decoded UPDATE,
   * already without mp*): when the set is new, that object itself becomes the canonical one (frozen in
   * place, nested arrays too; unknown attribute bytes copied so the receive buffer is not pinned) instead of
   * a frozen copy.
   */
  internOwned(attrs: PathAttributes): Attrs {
    if (
      attrs.mpReach !== undefined ||
      attrs.mpUnreach !== undefined ||
      entryOf(attrs, this) !== undefined ||
      Object.isFrozen(attrs)
    ) {
      return this.intern(attrs);
    }
    const hash = attributesHash(attrs);
    const existing = this.find(hash, attrs);
    if (existing !== undefined) {
      (entryOf(existing, this) as Entry).refs += 1;
      return existing;
    }
    const entry: Entry = { owner: this, hash, refs: 1, live: true };
    const out = attrs as { -readonly [K in keyof PathAttributes]: PathAttributes[K] };
    if (out.asPath !== undefined) {
      for (const segment of out.asPath) {
        Object.freeze(segment.asns);
        Object.freeze(segment);
      }
      Object.freeze(out.asPath);
    }
    if (out.aggregator !== undefined) Object.freeze(out.aggregator);
    if (out.communities !== undefined) Object.freeze(out.communities);
    if (out.largeCommunities !== undefined) Object.freeze(out.largeCommunities);
    if (out.clusterList !== undefined) Object.freeze(out.clusterList);
    if (out.unknown !== undefined) {
      if (out.unknown.length === 0) delete out.unknown;
      else
        out.unknown = Object.freeze(
          out.unknown.map((u): UnknownAttribute =>
            Object.freeze({ flags: u.flags, type: u.type, value: Uint8Array.from(u.value) }),
          ),
        );
    }
    Object.defineProperty(out, ENTRY, { value: entry });
    const canonical = Object.freeze(out) as Attrs;
    this.index(hash, canonical);
    return canonical;
  }

  /**
   * The shared set equal to `attrs` without taking a reference: the live one when the table holds it, else
   * a canonical copy the table will adopt (not copy again) when it is interned later. For caches and for
   * policy results that a RIB interns when it stores them.
   */
  canonical(attrs: PathAttributes | Attrs): Attrs {
    const own = entryOf(attrs, this);
    if (own !== undefined && own.live) return attrs as Attrs;
    const hash = own !== undefined ? own.hash : attributesHash(attrs);
    const existing = this.find(hash, attrs);
    if (existing !== undefined) return existing;
    if (own !== undefined) return attrs as Attrs;
    return canonicalCopy(attrs, { owner: this, hash, refs: 0, live: false });
  }

  /** Adds `count` references to a set this table holds. */
  retain(attrs: Attrs, count = 1): void {
    const entry = entryOf(attrs, this);
    if (entry === undefined || !entry.live) {
      throw new Error(
        `AttrTable.retain: attribute set "${attributesKey(attrs)}" is not in the table (intern it first)`,
      );
    }
    entry.refs += count;
  }

  /** Drops `count` references; the set leaves the table when none remain. */
  release(attrs: Attrs, count = 1): void {
    const entry = entryOf(attrs, this);
    if (entry === undefined || !entry.live) {
      throw new Error(
        `AttrTable.release: attribute set "${attributesKey(attrs)}" is not in the table (released too often?)`,
      );
    }
    entry.refs -= count;
    if (entry.refs < 0) {
      throw new Error(
        `AttrTable.release: attribute set "${attributesKey(attrs)}" released ${-entry.refs} more time(s) than retained`,
      );
    }
    if (entry.refs === 0) {
      entry.live = false;
      this.unindex(entry.hash, attrs);
    }
  }

  /** The number of references held on a set (0 when it is not in the table). */
  refCount(attrs: Attrs): number {
    const entry = entryOf(attrs, this);
    return entry !== undefined && entry.live ? entry.refs : 0;
  }

  /** True when `attrs` is a live set of this table. */
  has(attrs: object): attrs is Attrs {
    return entryOf(attrs, this)?.live === true;
  }

  /** The number of distinct live sets. */
  get size(): number {
    return this.count;
  }

  private find(hash: number, attrs: PathAttributes): Attrs | undefined {
    const slot = this.byHash.get(hash);
    if (slot === undefined) return undefined;
    if (!Array.isArray(slot)) return sameAttributes(slot as PathAttributes, attrs) ? (slot as Attrs) : undefined;
    for (const candidate of slot as Attrs[]) if (sameAttributes(candidate as PathAttributes, attrs)) return candidate;
    return undefined;
  }

  private index(hash: number, attrs: Attrs): void {
    this.count += 1;
    const slot = this.byHash.get(hash);
    if (slot === undefined) this.byHash.set(hash, attrs);
    else if (Array.isArray(slot)) (slot as Attrs[]).push(attrs);
    else this.byHash.set(hash, [slot as Attrs, attrs]);
  }

  private unindex(hash: number, attrs: Attrs): void {
    this.count -= 1;
    const slot = this.byHash.get(hash);
    if (slot === attrs) {
      this.byHash.delete(hash);
      return;
    }
    if (!Array.isArray(slot)) return;
    const list = slot as Attrs[];
    const at = list.indexOf(attrs);
    if (at >= 0) list.splice(at, 1);
    if (list.length === 1) this.byHash.set(hash, list[0] as Attrs);
  }
}
