// BGP passwords (TCP-MD5, RFC 2385) the planned peers refer to (BGPPeer password / nodeMeshPassword
// secretKeyRef), resolved from their Secrets (./secrets.ts). Values stay in memory only and are never
// logged; an error names the Secret and key. A peer whose password cannot be read is not started at all:
// never a session without it.

import type { Logger } from '../log.js';
import { errorText } from './error-text.js';
import { refText, type SecretSource } from './secrets.js';
import type { DesiredPeer } from './types.js';

function refId(ref: { name: string; key: string }): string {
  return `${ref.name}/${ref.key}`;
}

export class PasswordBook {
  /** Resolved passwords by "secret/key": the value, or why it could not be read. */
  private passwords = new Map<string, { value: string } | { error: string }>();

  constructor(
    private readonly source: SecretSource | null,
    private readonly log: Logger,
  ) {}

  /** Nothing resolved yet (or no peer has a password). */
  get empty(): boolean {
    return this.passwords.size === 0;
  }

  passwordOf(peer: DesiredPeer): string | undefined {
    const got = peer.password ? this.passwords.get(refId(peer.password)) : undefined;
    return got && 'value' in got ? got.value : undefined;
  }

  /** Why this peer's password is not available, or undefined (no password, or it was read). */
  problem(peer: DesiredPeer): string | undefined {
    if (!peer.password) return undefined;
    const got = this.passwords.get(refId(peer.password));
    if (got === undefined) return `${refText(peer.password)}: not read yet`;
    return 'error' in got ? got.error : undefined;
  }

  /** Reads every password the peers refer to; true when any value or error differs from before. */
  async resolve(peers: readonly DesiredPeer[]): Promise<boolean> {
    const source = this.source;
    const next = new Map<string, { value: string } | { error: string }>();
    for (const peer of peers) {
      if (!peer.password) continue;
      const id = refId(peer.password);
      if (next.has(id)) continue;
      if (source === null) {
        next.set(id, { error: `${refText(peer.password)}: this agent has no source of Secrets` });
        continue;
      }
      try {
        next.set(id, { value: await source.read(peer.password) });
      } catch (error) {
        next.set(id, { error: errorText(error) });
      }
    }
    const changed =
      next.size !== this.passwords.size ||
      [...next].some(([id, got]) => JSON.stringify(got) !== JSON.stringify(this.passwords.get(id)));
    if (changed) {
      for (const [id, got] of next) {
        const before = this.passwords.get(id);
        if ('error' in got && (!before || !('error' in before) || before.error !== got.error))
          this.log.warn(
            { secret: id, reason: got.error },
            'BGP password unavailable: the sessions that use it are not started',
          );
        else if ('value' in got && before !== undefined)
          this.log.info({ secret: id }, 'BGP password changed: re-keying the sessions that use it');
      }
    }
    this.passwords = next;
    return changed;
  }
}
