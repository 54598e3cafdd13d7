// Builds expected wire bytes for tests by hand — hex strings and plain concatenation — so codec tests
// never check the production writer against itself.

/** Hex to bytes; spaces, newlines and `|` separators are ignored ("ff ff | 00 13"). */
export function hex(text: string): Uint8Array {
  const clean = text.replace(/[\s|]/g, '');
  if (clean.length % 2 !== 0 || /[^0-9a-fA-F]/.test(clean)) throw new Error(`bad hex string: ${text}`);
  const out = new Uint8Array(clean.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(clean.slice(i * 2, i * 2 + 2), 16);
  return out;
}

export function toHex(bytes: Uint8Array): string {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
}

export type Part = Uint8Array | number[] | string;

function partBytes(part: Part): Uint8Array {
  if (typeof part === 'string') return hex(part);
  return part instanceof Uint8Array ? part : Uint8Array.from(part);
}

/** Concatenates byte arrays, number arrays and hex strings. */
export function cat(...parts: Part[]): Uint8Array {
  const bytes = parts.map(partBytes);
  const out = new Uint8Array(bytes.reduce((n, b) => n + b.length, 0));
  let at = 0;
  for (const b of bytes) {
    out.set(b, at);
    at += b.length;
  }
  return out;
}

export const u8 = (v: number): number[] => [v & 0xff];
export const u16 = (v: number): number[] => [(v >>> 8) & 0xff, v & 0xff];
export const u32 = (v: number): number[] => [(v >>> 24) & 0xff, (v >>> 16) & 0xff, (v >>> 8) & 0xff, v & 0xff];

/** Dotted quad to 4 bytes. */
export const ip = (text: string): number[] => text.split('.').map(Number);

export const MARKER = 'ffffffffffffffffffffffffffffffff';

/** A whole message: marker, length, type, body. */
export function message(type: number, ...body: Part[]): Uint8Array {
  const b = cat(...body);
  return cat(MARKER, u16(19 + b.length), u8(type), b);
}

/** One path attribute; Extended Length is used when asked or when the value is over 255 bytes. */
export function attr(flags: number, type: number, ...value: Part[]): Uint8Array {
  const v = cat(...value);
  const ext = (flags & 0x10) !== 0 || v.length > 255;
  return ext ? cat(u8(flags | 0x10), u8(type), u16(v.length), v) : cat(u8(flags), u8(type), u8(v.length), v);
}

/** "10.244.1.0/26" as wire bytes: length byte, then ceil(len/8) address bytes. */
export function prefix(text: string): number[] {
  const [addr, len] = text.split('/') as [string, string];
  const n = Math.ceil(Number(len) / 8);
  return [Number(len), ...ip(addr).slice(0, n)];
}

/** An UPDATE from its three fields. */
export function update(withdrawn: Part, attrs: Part, nlri: Part): Uint8Array {
  const w = cat(withdrawn);
  const a = cat(attrs);
  return message(2, u16(w.length), w, u16(a.length), a, nlri);
}
