// The messages queued toward one connection: kept in order while the socket is back-pressured, batched
// into writes of at most 64 KiB, and bounded — past `maxBytes` (our queue plus the socket's) nothing more
// is queued and the owner is told, so it resets the session instead of buffering without end (RFC 4486
// Cease / Out of Resources). One queue per connection; ./session.ts owns it.

import type { Connection } from './transport.js';

const MAX_WRITE = 64 * 1024;

export interface SendQueueHooks {
  /** Runs `flush` later in this turn (the session wraps it in its guard). */
  schedule(flush: () => void): void;
  /** The bound was passed: what was queued has been dropped. */
  overflow(queuedBytes: number, maxBytes: number): void;
}

export class SendQueue {
  private parts: Uint8Array[] = [];
  /** Bytes in `parts`. */
  private bytes = 0;
  /** The bound was passed on this connection: nothing more is queued, the reset is under way. */
  private overflowed = false;
  private scheduled = false;
  private blocked = false;

  constructor(
    private readonly conn: Connection,
    private readonly maxBytes: number,
    private readonly hooks: SendQueueHooks,
  ) {}

  /** Bytes queued toward the peer and not yet taken by it (ours plus the socket's). */
  get queuedBytes(): number {
    return this.bytes + (this.conn.bufferedBytes ?? 0);
  }

  /** Queues one message; false when refused. `notification`: queued even past the bound (the reset's own). */
  push(message: Uint8Array, notification = false): boolean {
    if (this.overflowed && !notification) return false;
    this.parts.push(message);
    this.bytes += message.length;
    if (!notification && this.queuedBytes > this.maxBytes) {
      const queued = this.queuedBytes;
      this.overflowed = true;
      this.clear();
      this.hooks.overflow(queued, this.maxBytes);
      return true;
    }
    if (!this.scheduled) {
      this.scheduled = true;
      // Batch: everything queued in this turn goes out in as few writes as possible.
      this.hooks.schedule(() => {
        this.scheduled = false;
        this.flush(false);
      });
    }
    return true;
  }

  /** The socket took what it had: write on. */
  drained(): void {
    this.blocked = false;
    this.flush(false);
  }

  /** Drops everything still queued (the connection is going). */
  clear(): void {
    this.parts = [];
    this.bytes = 0;
  }

  /** Writes queued messages in order, concatenated up to 64 KiB per write. `force` ignores back-pressure. */
  flush(force: boolean): void {
    while (this.parts.length > 0 && (force || !this.blocked)) {
      let size = 0;
      let count = 0;
      while (count < this.parts.length && (count === 0 || size + this.parts[count]!.length <= MAX_WRITE)) {
        size += this.parts[count]!.length;
        count++;
      }
      const parts = this.parts.splice(0, count);
      this.bytes -= size;
      let chunk: Uint8Array;
      if (parts.length === 1) chunk = parts[0]!;
      else {
        chunk = new Uint8Array(size);
        let at = 0;
        for (const p of parts) {
          chunk.set(p, at);
          at += p.length;
        }
      }
      if (!this.conn.write(chunk)) this.blocked = true;
    }
  }
}
