// bgp/down-reason.ts as a table: each typed reason, the lastError text people see, and BIRD's INFO words
// (the suffix `tortie node status` prints after the state).
import { describe, expect, it } from 'vitest';
import { describeDownReason, downReasonInfo, type SessionDownReason } from '../../bgp/down-reason.js';

const cases: Array<[SessionDownReason, string, string | undefined]> = [
  [
    { kind: 'transport', errno: 'ECONNREFUSED', message: 'connect to 10.0.0.2:179: Connection refused (ECONNREFUSED)' },
    'connect to 10.0.0.2:179: Connection refused (ECONNREFUSED)',
    'Socket: Connection refused',
  ],
  [
    { kind: 'transport', errno: 'ETIMEDOUT', message: 'connect to 10.0.0.2:179: Connection timed out (ETIMEDOUT)' },
    'connect to 10.0.0.2:179: Connection timed out (ETIMEDOUT)',
    'Socket: Connection timed out',
  ],
  [{ kind: 'transport', message: 'socket hang up' }, 'socket hang up', undefined],
  [{ kind: 'peerClosed' }, 'connection closed by the peer', 'Socket: Connection closed'],
  [
    { kind: 'notificationReceived', code: 2, subcode: 2 },
    'received NOTIFICATION OPEN Message Error / Bad Peer AS',
    'Received: Bad Peer AS',
  ],
  [
    { kind: 'notificationReceived', code: 4, subcode: 0 },
    'received NOTIFICATION Hold Timer Expired',
    'Received: Hold Timer Expired',
  ],
  [
    { kind: 'notificationReceived', code: 6, subcode: 12 },
    'received NOTIFICATION Cease / subcode 12',
    'Received: subcode 12',
  ],
  [
    { kind: 'notificationSent', code: 4, subcode: 0, detail: 'no message for 90 s' },
    'sent NOTIFICATION Hold Timer Expired: no message for 90 s',
    'BGP Error: Hold Timer Expired',
  ],
  [
    { kind: 'notificationSent', code: 6, subcode: 3, detail: 'peer removed' },
    'sent NOTIFICATION Cease / Peer De-configured: peer removed',
    'BGP Error: Peer De-configured',
  ],
  [{ kind: 'internalError', detail: "the 'update' handler threw: bug" }, "the 'update' handler threw: bug", undefined],
  [
    { kind: 'inboundRefused', detail: 'this listener cannot set TCP-MD5 or GTSM' },
    'inbound connections refused: this listener cannot set TCP-MD5 or GTSM',
    undefined,
  ],
];

describe('session-down reasons', () => {
  it.each(cases)('%j → %j / INFO %j', (reason, text, info) => {
    expect(cases.length).toBeGreaterThan(0);
    expect(describeDownReason(reason)).toBe(text);
    expect(downReasonInfo(reason)).toBe(info);
  });

  it('no reason: no INFO words', () => {
    expect(downReasonInfo(undefined)).toBeUndefined();
  });
});
