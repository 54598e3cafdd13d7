// A bounds-checked cursor over received bytes. Every overrun becomes the NOTIFICATION the caller chose
// for that context (a short OPEN is not the same error as a short attribute), so no decoder ever reads
// past what the peer sent and no decoder has to remember to check lengths by hand.

import { BgpError } from '../errors.js';

/** Builds the error for an overrun: `need` bytes were asked for, `have` remained. */
export type OverrunError = (need: number, have: number) => Error;

export class Reader {
  private pos: number;
  private readonly end: number;

  /** Reads `buf[start, end)`. `overrun` makes the error thrown when a read would pass `end`. */
  constructor(
    readonly buf: Uint8Array,
    start: number,
    end: number,
    private readonly overrun: OverrunError,
  ) {
    this.pos = start;
    this.end = end;
  }

  static over(buf: Uint8Array, overrun: OverrunError): Reader {
    return new Reader(buf, 0, buf.length, overrun);
  }

  get offset(): number {
    return this.pos;
  }
  get limit(): number {
    return this.end;
  }
  get remaining(): number {
    return this.end - this.pos;
  }

  private need(n: number): void {
    if (this.pos + n > this.end) throw this.overrun(n, this.end - this.pos);
  }

  u8(): number {
    this.need(1);
    return this.buf[this.pos++]!;
  }

  u16(): number {
    this.need(2);
    const b = this.buf;
    const v = (b[this.pos]! << 8) | b[this.pos + 1]!;
    this.pos += 2;
    return v;
  }

  u32(): number {
    this.need(4);
    const b = this.buf;
    const p = this.pos;
    this.pos += 4;
    return b[p]! * 0x1000000 + ((b[p + 1]! << 16) | (b[p + 2]! << 8) | b[p + 3]!);
  }

  /** A copy of the next `n` bytes (safe to keep: it does not pin the receive buffer). */
  bytes(n: number): Uint8Array {
    this.need(n);
    const out = this.buf.slice(this.pos, this.pos + n);
    this.pos += n;
    return out;
  }

  /** Skips `n` bytes, checked. */
  skip(n: number): void {
    this.need(n);
    this.pos += n;
  }

  /** A reader over the next `n` bytes with its own overrun error; this reader moves past them. */
  sub(n: number, overrun: OverrunError = this.overrun): Reader {
    this.need(n);
    const r = new Reader(this.buf, this.pos, this.pos + n, overrun);
    this.pos += n;
    return r;
  }
}

/** An overrun factory for the common case of a fixed NOTIFICATION. */
export function overrunAs(code: number, subcode: number, what: string, data?: Uint8Array): OverrunError {
  return (need, have) => new BgpError(code, subcode, `${what}: needed ${need} more byte(s), ${have} left`, data);
}
