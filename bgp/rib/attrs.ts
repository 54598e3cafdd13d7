// Attribute interning: one shared, frozen object per distinct set of path attributes.
//
// Owns: the canonical key of an attribute set, the table of live sets, and their reference counts.
// A BGP table has far fewer distinct attribute sets than prefixes (a Calico node announces every block with
// the same set), so each route points at a shared `Attrs` and equality of sets is `===`.
//
// Why this is hard:
// - The key must be canonical (same attributes → same string) yet computed once per distinct set, not once
//   per prefix: an UPDATE's attributes are interned once and then retained once per NLRI, and an object
//   that is already interned is found by identity (a Map lookup), never re-keyed.
// - Sets nobody uses must go away, or a peer that flaps MEDs grows the table forever. Every holder (an
//   Adj-RIB-In route, an Adj-RIB-Out desired or advertised entry) counts one reference; the set leaves the
//   table when the count reaches zero. `intern()` returns the set with one reference taken for the caller.
// - MP_REACH_NLRI / MP_UNREACH_NLRI describe one UPDATE, not a route: they are never part of an interned set.
// - Unknown attributes keep their bytes (a Uint8Array cannot be frozen); they are copied on intern so the
//   receive buffer is not pinned, and nobody may write to them afterwards.

import type { PathAttributes, UnknownAttribute } from '../types.js';

/** An interned attribute set: frozen, shared, compared by identity. Never carries mpReach / mpUnreach. */
declare const interned: unique symbol;
export type Attrs = Readonly<Omit<PathAttributes, 'mpReach' | 'mpUnreach'>> & { readonly [interned]: true };

interface Entry {
  readonly key: string;
  readonly attrs: Attrs;
  refs: number;
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
  if (attrs.med !== undefined) key += '|m' + attrs.med;
  if (attrs.localPref !== undefined) key += '|l' + attrs.localPref;
  if (attrs.atomicAggregate) key += '|a';
  if (attrs.aggregator !== undefined) key += '|g' + attrs.aggregator.asn + ':' + attrs.aggregator.address;
  if (attrs.communities !== undefined) {
    key += '|c';
    for (const c of attrs.communities) key += c + ',';
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

/** A frozen copy with the fields in a fixed order (one hidden class per shape), mp* dropped. */
function canonicalCopy(attrs: PathAttributes): Attrs {
  const out: { -readonly [K in keyof PathAttributes]: PathAttributes[K] } = {};
  if (attrs.origin !== undefined) out.origin = attrs.origin;
  if (attrs.asPath !== undefined) {
    out.asPath = Object.freeze(attrs.asPath.map((s) => Object.freeze({ type: s.type, asns: Object.freeze([...s.asns]) })));
  }
  if (attrs.nextHop !== undefined) out.nextHop = attrs.nextHop;
  if (attrs.med !== undefined) out.med = attrs.med;
  if (attrs.localPref !== undefined) out.localPref = attrs.localPref;
  if (attrs.atomicAggregate) out.atomicAggregate = true;
  if (attrs.aggregator !== undefined) out.aggregator = Object.freeze({ ...attrs.aggregator });
  if (attrs.communities !== undefined) out.communities = Object.freeze([...attrs.communities]);
  if (attrs.originatorId !== undefined) out.originatorId = attrs.originatorId;
  if (attrs.clusterList !== undefined) out.clusterList = Object.freeze([...attrs.clusterList]);
  if (attrs.unknown !== undefined && attrs.unknown.length > 0) {
    out.unknown = Object.freeze(
      attrs.unknown.map((u): UnknownAttribute => Object.freeze({ flags: u.flags, type: u.type, value: Uint8Array.from(u.value) })),
    );
  }
  return Object.freeze(out) as Attrs;
}

/**
 * The table of live attribute sets. `intern` takes a reference for the caller; `retain` adds one for each
 * further holder; `release` drops one, and the set leaves the table at zero.
 */
export class AttrTable {
  private readonly byKey = new Map<string, Entry>();
  private readonly byObject = new Map<object, Entry>();
  /** Every object this table ever handed out, so a released set that comes back is re-adopted, not copied. */
  private readonly everInterned = new WeakSet<object>();

  /** The shared set equal to `attrs`, with one reference taken. Interning an interned set is a lookup. */
  intern(attrs: PathAttributes | Attrs): Attrs {
    const known = this.byObject.get(attrs);
    if (known !== undefined) {
      known.refs += 1;
      return known.attrs;
    }
    const key = attributesKey(attrs);
    const existing = this.byKey.get(key);
    if (existing !== undefined) {
      existing.refs += 1;
      return existing.attrs;
    }
    const canonical = this.everInterned.has(attrs) ? (attrs as Attrs) : canonicalCopy(attrs);
    const entry: Entry = { key, attrs: canonical, refs: 1 };
    this.byKey.set(key, entry);
    this.byObject.set(canonical, entry);
    this.everInterned.add(canonical);
    return canonical;
  }

  /**
   * The shared set equal to `attrs` without taking a reference: the live one when the table holds it, else
   * a canonical copy the table will adopt (not copy again) when it is interned later. For caches and for
   * policy results that a RIB interns when it stores them.
   */
  canonical(attrs: PathAttributes | Attrs): Attrs {
    const known = this.byObject.get(attrs);
    if (known !== undefined) return known.attrs;
    const existing = this.byKey.get(attributesKey(attrs));
    if (existing !== undefined) return existing.attrs;
    if (this.everInterned.has(attrs)) return attrs as Attrs;
    const copy = canonicalCopy(attrs);
    this.everInterned.add(copy);
    return copy;
  }

  /** Adds `count` references to a set this table holds. */
  retain(attrs: Attrs, count = 1): void {
    const entry = this.byObject.get(attrs);
    if (entry === undefined) {
      throw new Error(`AttrTable.retain: attribute set "${attributesKey(attrs)}" is not in the table (intern it first)`);
    }
    entry.refs += count;
  }

  /** Drops `count` references; the set leaves the table when none remain. */
  release(attrs: Attrs, count = 1): void {
    const entry = this.byObject.get(attrs);
    if (entry === undefined) {
      throw new Error(`AttrTable.release: attribute set "${attributesKey(attrs)}" is not in the table (released too often?)`);
    }
    entry.refs -= count;
    if (entry.refs < 0) {
      throw new Error(`AttrTable.release: attribute set "${entry.key}" released ${-entry.refs} more time(s) than retained`);
    }
    if (entry.refs === 0) {
      this.byKey.delete(entry.key);
      this.byObject.delete(entry.attrs);
    }
  }

  /** The number of references held on a set (0 when it is not in the table). */
  refCount(attrs: Attrs): number {
    return this.byObject.get(attrs)?.refs ?? 0;
  }

  /** True when `attrs` is a live set of this table. */
  has(attrs: object): attrs is Attrs {
    return this.byObject.has(attrs);
  }

  /** The number of distinct live sets. */
  get size(): number {
    return this.byKey.size;
  }
}
