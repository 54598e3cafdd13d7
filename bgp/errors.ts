// NOTIFICATION codes and subcodes (one table), and the typed error every decode failure becomes.
//
// A `BgpError` carries exactly the NOTIFICATION the session must send (RFC 4271 §6): code, subcode and
// data. The codec throws nothing else; the session turns it into a NOTIFICATION and closes.

export const ErrorCode = {
  MESSAGE_HEADER: 1,
  OPEN_MESSAGE: 2,
  UPDATE_MESSAGE: 3,
  HOLD_TIMER_EXPIRED: 4,
  FSM: 5,
  CEASE: 6,
  ROUTE_REFRESH: 7,
} as const;

export const HeaderSubcode = { CONNECTION_NOT_SYNCHRONIZED: 1, BAD_MESSAGE_LENGTH: 2, BAD_MESSAGE_TYPE: 3 } as const;

export const OpenSubcode = {
  UNSUPPORTED_VERSION: 1,
  BAD_PEER_AS: 2,
  BAD_BGP_IDENTIFIER: 3,
  UNSUPPORTED_OPTIONAL_PARAMETER: 4,
  UNACCEPTABLE_HOLD_TIME: 6,
  UNSUPPORTED_CAPABILITY: 7,
} as const;

export const UpdateSubcode = {
  MALFORMED_ATTRIBUTE_LIST: 1,
  UNRECOGNIZED_WELL_KNOWN_ATTRIBUTE: 2,
  MISSING_WELL_KNOWN_ATTRIBUTE: 3,
  ATTRIBUTE_FLAGS_ERROR: 4,
  ATTRIBUTE_LENGTH_ERROR: 5,
  INVALID_ORIGIN: 6,
  INVALID_NEXT_HOP: 8,
  OPTIONAL_ATTRIBUTE_ERROR: 9,
  INVALID_NETWORK_FIELD: 10,
  MALFORMED_AS_PATH: 11,
} as const;

/** RFC 6608 subcodes for FSM errors. */
export const FsmSubcode = {
  UNSPECIFIED: 0,
  UNEXPECTED_IN_OPENSENT: 1,
  UNEXPECTED_IN_OPENCONFIRM: 2,
  UNEXPECTED_IN_ESTABLISHED: 3,
} as const;

/** RFC 4486 Cease subcodes (+ RFC 8538 Hard Reset). */
export const CeaseSubcode = {
  MAX_PREFIXES: 1,
  ADMINISTRATIVE_SHUTDOWN: 2,
  PEER_DECONFIGURED: 3,
  ADMINISTRATIVE_RESET: 4,
  CONNECTION_REJECTED: 5,
  OTHER_CONFIGURATION_CHANGE: 6,
  CONNECTION_COLLISION_RESOLUTION: 7,
  OUT_OF_RESOURCES: 8,
  HARD_RESET: 9,
} as const;

export const RouteRefreshSubcode = { INVALID_MESSAGE_LENGTH: 1 } as const;

/** Human names, as `show bgp neighbor` output of real routers prints them. Index: [code][subcode]. */
const NOTIFICATION_NAMES: Record<number, { name: string; subcodes: Record<number, string> }> = {
  1: {
    name: 'Message Header Error',
    subcodes: { 1: 'Connection Not Synchronized', 2: 'Bad Message Length', 3: 'Bad Message Type' },
  },
  2: {
    name: 'OPEN Message Error',
    subcodes: {
      1: 'Unsupported Version Number',
      2: 'Bad Peer AS',
      3: 'Bad BGP Identifier',
      4: 'Unsupported Optional Parameter',
      5: 'Authentication Failure',
      6: 'Unacceptable Hold Time',
      7: 'Unsupported Capability',
    },
  },
  3: {
    name: 'UPDATE Message Error',
    subcodes: {
      1: 'Malformed Attribute List',
      2: 'Unrecognized Well-known Attribute',
      3: 'Missing Well-known Attribute',
      4: 'Attribute Flags Error',
      5: 'Attribute Length Error',
      6: 'Invalid ORIGIN Attribute',
      7: 'AS Routing Loop',
      8: 'Invalid NEXT_HOP Attribute',
      9: 'Optional Attribute Error',
      10: 'Invalid Network Field',
      11: 'Malformed AS_PATH',
    },
  },
  4: { name: 'Hold Timer Expired', subcodes: {} },
  5: {
    name: 'Finite State Machine Error',
    subcodes: {
      1: 'Receive Unexpected Message in OpenSent State',
      2: 'Receive Unexpected Message in OpenConfirm State',
      3: 'Receive Unexpected Message in Established State',
    },
  },
  6: {
    name: 'Cease',
    subcodes: {
      1: 'Maximum Number of Prefixes Reached',
      2: 'Administrative Shutdown',
      3: 'Peer De-configured',
      4: 'Administrative Reset',
      5: 'Connection Rejected',
      6: 'Other Configuration Change',
      7: 'Connection Collision Resolution',
      8: 'Out of Resources',
      9: 'Hard Reset',
    },
  },
  7: { name: 'ROUTE-REFRESH Message Error', subcodes: { 1: 'Invalid Message Length' } },
};

/** "OPEN Message Error / Bad Peer AS"; unknown codes are shown by number. */
export function describeNotification(code: number, subcode: number): string {
  const entry = NOTIFICATION_NAMES[code];
  if (!entry) return `Unknown error code ${code} / subcode ${subcode}`;
  if (subcode === 0) return entry.name;
  return `${entry.name} / ${entry.subcodes[subcode] ?? `subcode ${subcode}`}`;
}

/** The short reason alone ("Bad Peer AS"), falling back to the code's name. */
export function notificationReason(code: number, subcode: number): string {
  const entry = NOTIFICATION_NAMES[code];
  if (!entry) return `error ${code}/${subcode}`;
  return entry.subcodes[subcode] ?? entry.name;
}

const EMPTY = new Uint8Array(0);

/**
 * The most data a NOTIFICATION can carry: 4096 (RFC 4271 §4.1) − 19 (header) − 2 (code, subcode). Data
 * that would be longer (RFC 7313 §5 asks for "the complete ROUTE-REFRESH message", which may itself be
 * 4096 bytes) is cut to this: a NOTIFICATION that cannot be sent tells the peer nothing.
 */
export const MAX_NOTIFICATION_DATA = 4096 - 21;

/** `data` cut to what fits a NOTIFICATION (see MAX_NOTIFICATION_DATA); the same array when it fits. */
export function fitNotificationData(data: Uint8Array): Uint8Array {
  return data.length > MAX_NOTIFICATION_DATA ? data.subarray(0, MAX_NOTIFICATION_DATA) : data;
}

/**
 * A protocol error that ends the session with a NOTIFICATION. `detail` is for people (logs, CLI);
 * code/subcode/data go on the wire.
 */
export class BgpError extends Error {
  readonly code: number;
  readonly subcode: number;
  readonly data: Uint8Array;
  readonly detail: string;

  constructor(code: number, subcode: number, detail: string, data: Uint8Array = EMPTY) {
    super(`${describeNotification(code, subcode)}: ${detail}`);
    this.name = 'BgpError';
    this.code = code;
    this.subcode = subcode;
    this.detail = detail;
    // Copy: the data often slices a receive buffer that must not be pinned. Cut to what a NOTIFICATION holds.
    this.data = data.length === 0 ? EMPTY : Uint8Array.from(fitNotificationData(data));
  }
}

export function isBgpError(value: unknown): value is BgpError {
  return value instanceof BgpError;
}
