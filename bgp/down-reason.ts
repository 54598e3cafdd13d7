// Why a session is not up, as a value (GoBGP's FSM state reasons are the model): the session records the
// last one, the speaker reports it per peer, and each edge formats it — `describeDownReason` for logs and
// `lastError`, the node agent's status table for BIRD's INFO column — without parsing text back.

import { describeNotification } from './errors.js';
import { describeErrno } from './transport.js';

export type SessionDownReason =
  /** We sent a NOTIFICATION (a refused OPEN, Hold Timer Expired, an administrative Cease, a limit, ...). */
  | { readonly kind: 'notificationSent'; readonly code: number; readonly subcode: number; readonly detail: string }
  /** The peer sent a NOTIFICATION. */
  | { readonly kind: 'notificationReceived'; readonly code: number; readonly subcode: number }
  /** A connect attempt or the connection failed: `errno` is the transport's code (ECONNREFUSED, ECONNRESET, ETIMEDOUT, ...). */
  | { readonly kind: 'transport'; readonly errno?: string; readonly message: string }
  /** The peer closed the connection without a NOTIFICATION. */
  | { readonly kind: 'peerClosed' }
  /** Something in this process failed while handling the session (it was reset). */
  | { readonly kind: 'internalError'; readonly detail: string }
  /** The listener could not take the peer's TCP-MD5 key or GTSM: its inbound connections are refused. */
  | { readonly kind: 'inboundRefused'; readonly detail: string };

/** The reason for people, as `lastError` and logs show it ("received NOTIFICATION Cease / Administrative Shutdown"). */
export function describeDownReason(reason: SessionDownReason): string {
  switch (reason.kind) {
    case 'notificationSent':
      return `sent NOTIFICATION ${describeNotification(reason.code, reason.subcode)}: ${reason.detail}`;
    case 'notificationReceived':
      return `received NOTIFICATION ${describeNotification(reason.code, reason.subcode)}`;
    case 'transport':
      return reason.message;
    case 'peerClosed':
      return 'connection closed by the peer';
    case 'internalError':
      return reason.detail;
    case 'inboundRefused':
      return `inbound connections refused: ${reason.detail}`;
  }
}

/**
 * BIRD's last-error words for the reason, as calico-node's `node status` INFO column shows them after the
 * state ("Socket: Connection refused", "Received: Bad Peer AS", "BGP Error: Hold Timer Expired"); undefined
 * for reasons BIRD has no words for (they stay in `lastError`).
 */
export function downReasonInfo(reason: SessionDownReason | undefined): string | undefined {
  switch (reason?.kind) {
    case 'transport':
      return reason.errno !== undefined ? `Socket: ${describeErrno(reason.errno)}` : undefined;
    case 'peerClosed':
      return 'Socket: Connection closed';
    case 'notificationReceived':
      return `Received: ${notificationShortName(reason.code, reason.subcode)}`;
    case 'notificationSent':
      return `BGP Error: ${notificationShortName(reason.code, reason.subcode)}`;
    default:
      return undefined;
  }
}

/** The subcode's name alone when there is one ("Bad Peer AS"), else the code's ("Hold Timer Expired"). */
function notificationShortName(code: number, subcode: number): string {
  const full = describeNotification(code, subcode);
  const slash = full.lastIndexOf(' / ');
  return slash < 0 ? full : full.slice(slash + 3);
}
