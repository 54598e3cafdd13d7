// Finds whole BGP messages in a TCP byte stream and keeps the leftover for the next chunk.
//
// Why this is hard: TCP delivers any split of the stream, so a header may arrive one byte at a time and
// one chunk may hold many messages. The header is validated as soon as it is complete (RFC 4271 §6.1:
// marker all ones, length 19..4096) so a peer cannot make us buffer a bogus body. Each message handed out
// is a copy: a slice of a 64 KiB socket chunk would keep the whole chunk alive as long as the message is.

import { BgpError, ErrorCode, HeaderSubcode } from '../errors.js';
import { HEADER_LENGTH, MAX_MESSAGE_LENGTH } from '../types.js';

/** Checks marker and length of a header at `buf[at..at+18)`; returns the length. RFC 4271 §6.1. */
export function checkHeader(buf: Uint8Array, at: number): number {
  for (let i = 0; i < 16; i++) {
    if (buf[at + i] !== 0xff) {
      throw new BgpError(
        ErrorCode.MESSAGE_HEADER,
        HeaderSubcode.CONNECTION_NOT_SYNCHRONIZED,
        `marker byte ${i} is 0x${(buf[at + i] ?? 0).toString(16).padStart(2, '0')}, expected 16 bytes of 0xff`,
      );
    }
  }
  const length = (buf[at + 16]! << 8) | buf[at + 17]!;
  if (length < HEADER_LENGTH || length > MAX_MESSAGE_LENGTH) {
    throw new BgpError(
      ErrorCode.MESSAGE_HEADER,
      HeaderSubcode.BAD_MESSAGE_LENGTH,
      `message length ${length} is outside ${HEADER_LENGTH}..${MAX_MESSAGE_LENGTH}`,
      buf.slice(at + 16, at + 18),
    );
  }
  return length;
}

export class MessageFramer {
  private pending: Uint8Array = new Uint8Array(0);

  /** Bytes held back waiting for the rest of a message. */
  get buffered(): number {
    return this.pending.length;
  }

  /** Adds a chunk; returns every whole message now available (copies, header included). Throws BgpError. */
  push(chunk: Uint8Array): Uint8Array[] {
    let buf: Uint8Array;
    if (this.pending.length === 0) {
      buf = chunk;
    } else {
      buf = new Uint8Array(this.pending.length + chunk.length);
      buf.set(this.pending, 0);
      buf.set(chunk, this.pending.length);
    }
    const out: Uint8Array[] = [];
    let at = 0;
    while (buf.length - at >= HEADER_LENGTH) {
      const length = checkHeader(buf, at);
      if (buf.length - at < length) break;
      out.push(buf.slice(at, at + length));
      at += length;
    }
    // Keep the leftover as a copy so the caller's chunk is not pinned.
    this.pending = at === buf.length ? new Uint8Array(0) : buf.slice(at);
    return out;
  }
}
