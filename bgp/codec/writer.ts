// A growable byte writer. Messages start with `beginMessage`, which reserves the 19-byte header (marker,
// length, type); `endMessage` fills in the length once the body is known and refuses anything over 4096
// bytes (RFC 4271 §4.1) — a programming error, so a plain Error, never a BgpError.

import { HEADER_LENGTH, MAX_MESSAGE_LENGTH } from '../types.js';

export class Writer {
  private buf: Uint8Array;
  private pos = 0;

  constructor(capacity = 256) {
    this.buf = new Uint8Array(capacity);
  }

  get length(): number {
    return this.pos;
  }

  /** Forgets everything written; keeps the buffer for reuse. */
  reset(): this {
    this.pos = 0;
    return this;
  }

  private ensure(n: number): void {
    if (this.pos + n <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.pos + n) size *= 2;
    const next = new Uint8Array(size);
    next.set(this.buf.subarray(0, this.pos));
    this.buf = next;
  }

  u8(v: number): this {
    this.ensure(1);
    this.buf[this.pos++] = v & 0xff;
    return this;
  }

  u16(v: number): this {
    this.ensure(2);
    this.buf[this.pos++] = (v >>> 8) & 0xff;
    this.buf[this.pos++] = v & 0xff;
    return this;
  }

  u32(v: number): this {
    this.ensure(4);
    this.buf[this.pos++] = (v >>> 24) & 0xff;
    this.buf[this.pos++] = (v >>> 16) & 0xff;
    this.buf[this.pos++] = (v >>> 8) & 0xff;
    this.buf[this.pos++] = v & 0xff;
    return this;
  }

  bytes(b: Uint8Array): this {
    this.ensure(b.length);
    this.buf.set(b, this.pos);
    this.pos += b.length;
    return this;
  }

  /** Writes a placeholder u16 and returns its position, for `fillU16`. */
  reserveU16(): number {
    const at = this.pos;
    this.u16(0);
    return at;
  }

  /** Fills a reserved u16 with the number of bytes written since it (excluding the u16 itself). */
  fillU16(at: number): number {
    const len = this.pos - at - 2;
    this.buf[at] = (len >>> 8) & 0xff;
    this.buf[at + 1] = len & 0xff;
    return len;
  }

  /** Writes the marker and a placeholder length; returns the message start for `endMessage`. */
  beginMessage(type: number): number {
    const start = this.pos;
    this.ensure(HEADER_LENGTH);
    this.buf.fill(0xff, this.pos, this.pos + 16);
    this.pos += 18;
    this.buf[this.pos++] = type;
    return start;
  }

  /** Fills in the message length (RFC 4271 §4.1) and returns the message bytes as a copy. */
  endMessage(start: number): Uint8Array {
    const len = this.pos - start;
    if (len > MAX_MESSAGE_LENGTH) {
      throw new Error(
        `encoded message is ${len} bytes; a BGP message may be at most ${MAX_MESSAGE_LENGTH} (RFC 4271 §4.1)`,
      );
    }
    this.buf[start + 16] = len >>> 8;
    this.buf[start + 17] = len & 0xff;
    return this.buf.slice(start, this.pos);
  }

  /** A copy of everything written. */
  toBytes(): Uint8Array {
    return this.buf.slice(0, this.pos);
  }
}
