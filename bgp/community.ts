// BGP communities as people write them: standard `65001:100` (RFC 1997: two 16-bit halves of one u32) and
// large `65001:100:200` (RFC 8092: three u32s). One parser for the speaker's command line, resource
// validation and the agent's BGPConfiguration.communities, so all three accept and refuse the same text.

export type Community =
  | { readonly kind: 'standard'; readonly value: number }
  | { readonly kind: 'large'; readonly value: readonly [number, number, number] };

const U16 = 0xffff;
const U32 = 0xffffffff;

function part(text: string, max: number): number | null {
  if (!/^(0|[1-9][0-9]{0,9})$/.test(text)) return null;
  const n = Number(text);
  return n <= max ? n : null;
}

/** `65001:100` → standard, `65001:100:200` → large; null for anything else or a part out of range. */
export function parseCommunity(text: string): Community | null {
  const parts = text.split(':');
  if (parts.length === 2) {
    const [a, b] = parts.map((p) => part(p, U16));
    if (a === null || b === null || a === undefined || b === undefined) return null;
    return { kind: 'standard', value: a * 65536 + b };
  }
  if (parts.length === 3) {
    const [a, b, c] = parts.map((p) => part(p, U32));
    if (a === null || b === null || c === null || a === undefined || b === undefined || c === undefined) return null;
    return { kind: 'large', value: [a, b, c] };
  }
  return null;
}

export function formatCommunity(community: Community): string {
  return community.kind === 'standard'
    ? `${Math.floor(community.value / 65536)}:${community.value % 65536}`
    : community.value.join(':');
}
