// IPv4 address ranges as [first, last] pairs of 32-bit numbers: a CIDR, a CIDR minus its `except`s
// (NetworkPolicy ipBlock), and the union of many, kept sorted and disjoint. nftables interval sets refuse
// overlapping elements, so everything written into a set goes through `mergeRanges` first.

export type Range = readonly [number, number];

/** "10.0.0.0/8" or "10.0.0.5" → its range; null when it is not IPv4 (IPv6 is not rendered yet). */
export function ipv4Range(text: string): Range | null {
  const [addr = '', lenText] = text.split('/');
  const parts = addr.split('.');
  if (parts.length !== 4 || !parts.every((p) => /^\d{1,3}$/.test(p) && Number(p) <= 255)) return null;
  const len = lenText === undefined ? 32 : Number(lenText);
  if (!Number.isInteger(len) || len < 0 || len > 32) return null;
  const value = parts.reduce((acc, p) => acc * 256 + Number(p), 0);
  const size = 2 ** (32 - len);
  const first = Math.floor(value / size) * size;
  return [first, first + size - 1];
}

/** Sorted, disjoint, adjacent ranges joined. */
export function mergeRanges(ranges: Iterable<Range>): Range[] {
  const sorted = [...ranges].sort((a, b) => a[0] - b[0]);
  const out: Array<[number, number]> = [];
  for (const [a, b] of sorted) {
    const last = out[out.length - 1];
    if (last !== undefined && a <= last[1] + 1) last[1] = Math.max(last[1], b);
    else out.push([a, b]);
  }
  return out;
}

/** `range` minus every range of `holes`. */
export function subtractRanges(range: Range, holes: Iterable<Range>): Range[] {
  let pieces: Range[] = [range];
  for (const [ha, hb] of mergeRanges(holes)) {
    pieces = pieces.flatMap(([a, b]): Range[] => {
      if (hb < a || ha > b) return [[a, b]];
      const left: Range[] = ha > a ? [[a, ha - 1]] : [];
      const right: Range[] = hb < b ? [[hb + 1, b]] : [];
      return [...left, ...right];
    });
  }
  return pieces;
}

export function rangeContains(ranges: readonly Range[], value: number): boolean {
  return ranges.some(([a, b]) => value >= a && value <= b);
}

export function formatIpv4(value: number): string {
  return [24, 16, 8, 0].map((shift) => Math.floor(value / 2 ** shift) % 256).join('.');
}

/** "10.0.0.5", or "10.0.0.0-10.0.0.255" (nft's interval element syntax). */
export function formatRange([a, b]: Range): string {
  return a === b ? formatIpv4(a) : `${formatIpv4(a)}-${formatIpv4(b)}`;
}
