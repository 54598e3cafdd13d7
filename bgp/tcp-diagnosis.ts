// What the kernel knows about BGP sessions that never get past Active: segments it dropped because of
// TCP-MD5 (RFC 2385) or GTSM (RFC 5082), counted in /proc/net/netstat (TcpExt, per network namespace).
// A dropped SYN never reaches the speaker, so these counters are the only evidence; this module turns
// their increase into words for `tortie node status`. Pure (the caller reads the file).
//
//   TCPMD5NotFound    a segment came without a signature from an address we hold a key for:
//                     "the peer does not sign, we do" (no password on its side)
//   TCPMD5Unexpected  a signed segment came from an address we hold no key for:
//                     "the peer signs, we have no key" (a password on its side only)
//   TCPMD5Failure     the signature did not verify: "wrong password" (both sides have one; they differ)
//   TCPMinTTLDrop     a segment arrived with a TTL below IP_MINTTL: "GTSM drop" (the peer is further
//                     away than ttlSecurity allows, or does not send with TTL 255)
//
// The counters are per namespace, not per peer: the words say "some peer", and node status shows them
// beside the peers whose sessions are not Established with a password or ttlSecurity configured.

export const TCP_SECURITY_COUNTERS = ['TCPMD5NotFound', 'TCPMD5Unexpected', 'TCPMD5Failure', 'TCPMinTTLDrop'] as const;
export type TcpSecurityCounter = (typeof TCP_SECURITY_COUNTERS)[number];
export type TcpSecurityCounters = Partial<Record<TcpSecurityCounter, number>>;

/** The meaning of each counter, for people. One table: the order is the order of the report. */
export const TCP_SECURITY_MEANING: Readonly<Record<TcpSecurityCounter, string>> = {
  TCPMD5Failure: 'wrong password: signed segments whose TCP-MD5 signature did not verify (the passwords differ)',
  TCPMD5Unexpected: 'peer signs but we have no key: signed segments from an address without a password here',
  TCPMD5NotFound: 'we sign, peer does not: unsigned segments from an address we have a password for',
  TCPMinTTLDrop: 'GTSM drop: segments below the minimum TTL (the peer is more hops away than ttlSecurity allows)',
};

/**
 * The TcpExt counters above from the text of /proc/net/netstat (pairs of lines: "TcpExt: names..." then
 * "TcpExt: values..."). Counters the kernel does not have are absent. Pure.
 */
export function parseTcpSecurityCounters(netstat: string): TcpSecurityCounters {
  const lines = netstat.split('\n');
  const counters: TcpSecurityCounters = {};
  for (let i = 0; i + 1 < lines.length; i++) {
    const names = lines[i]!.trim().split(/\s+/);
    const values = lines[i + 1]!.trim().split(/\s+/);
    if (names[0] !== 'TcpExt:' || values[0] !== 'TcpExt:' || names.length !== values.length) continue;
    for (let k = 1; k < names.length; k++) {
      const name = names[k] as TcpSecurityCounter;
      if ((TCP_SECURITY_COUNTERS as readonly string[]).includes(name)) {
        const value = Number(values[k]);
        if (Number.isFinite(value)) counters[name] = value;
      }
    }
    i++;
  }
  return counters;
}

export interface TcpSecurityFinding {
  counter: TcpSecurityCounter;
  /** How many segments since `before`. */
  increase: number;
  meaning: string;
}

/** The counters that went up between two readings, most telling first (table order). Pure. */
export function diagnoseTcpSecurity(before: TcpSecurityCounters, after: TcpSecurityCounters): TcpSecurityFinding[] {
  const findings: TcpSecurityFinding[] = [];
  for (const counter of Object.keys(TCP_SECURITY_MEANING) as TcpSecurityCounter[]) {
    const a = after[counter];
    const b = before[counter] ?? 0;
    if (a === undefined || a <= b) continue;
    findings.push({ counter, increase: a - b, meaning: TCP_SECURITY_MEANING[counter] });
  }
  return findings;
}

/** One line per finding: "wrong password: ... (TCPMD5Failure +3)". */
export function formatTcpSecurityFindings(findings: readonly TcpSecurityFinding[]): string[] {
  return findings.map((f) => `${f.meaning} (${f.counter} +${f.increase})`);
}
