// struct tcp_md5sig as Linux reads it (include/uapi/linux/tcp.h), built byte by byte here rather than
// with the production encoder; the GTSM hop count; and the TcpExt counters → words for node status.
import { describe, expect, it } from 'vitest';
import {
  encodeTcpMd5sig,
  minTtlFor,
  nativeSocketOptions,
  setTcpMd5,
  TCP_MD5SIG_SIZE,
} from '../../bgp/socket-options.js';
import { diagnoseTcpSecurity, formatTcpSecurityFindings, parseTcpSecurityCounters } from '../../bgp/tcp-diagnosis.js';

function expectedMd5sig(littleEndian: boolean, address: number[], key: string): number[] {
  const bytes = new Array<number>(216).fill(0);
  // struct sockaddr_in in sockaddr_storage: sin_family (host order), sin_port 0, sin_addr (network order).
  [bytes[0], bytes[1]] = littleEndian ? [2, 0] : [0, 2];
  address.forEach((b, i) => (bytes[4 + i] = b));
  // tcpm_flags (128) 0, tcpm_prefixlen (129) 0, tcpm_keylen (130, host order), tcpm_ifindex (132) 0.
  [bytes[130], bytes[131]] = littleEndian ? [key.length, 0] : [0, key.length];
  [...Buffer.from(key)].forEach((b, i) => (bytes[136 + i] = b));
  return bytes;
}

describe('struct tcp_md5sig', () => {
  it('is 216 bytes: family, address, key length and key where Linux reads them (both byte orders)', () => {
    expect(TCP_MD5SIG_SIZE).toBe(216);
    for (const le of [true, false]) {
      expect([...encodeTcpMd5sig('198.18.0.2', Buffer.from('s3cret'), le)]).toEqual(
        expectedMd5sig(le, [198, 18, 0, 2], 's3cret'),
      );
    }
  });

  it('an empty key (deleting the peer key) has key length 0; an IPv4-mapped address is its IPv4 address', () => {
    expect([...encodeTcpMd5sig('::ffff:127.0.0.2', new Uint8Array(), true)]).toEqual(
      expectedMd5sig(true, [127, 0, 0, 2], ''),
    );
  });

  it('refuses a key over 80 bytes and an address that is not IPv4, naming them', () => {
    expect(() => encodeTcpMd5sig('127.0.0.2', new Uint8Array(81))).toThrow(/at most 80 bytes \(this one is 81\)/);
    expect(() => encodeTcpMd5sig('fe80::1', Buffer.from('k'))).toThrow(/"fe80::1" is not an IPv4 address/);
    expect(() => encodeTcpMd5sig('127.0.0.256', Buffer.from('k'))).toThrow(/not an IPv4 address/);
  });
});

describe('GTSM', () => {
  it('minimum TTL is 256 − hops (1 hop: only 255, what BIRD sets for Calico ttlSecurity)', () => {
    expect(minTtlFor(1)).toBe(255);
    expect(minTtlFor(2)).toBe(254);
    expect(minTtlFor(255)).toBe(1);
    for (const bad of [0, 256, 1.5, -1]) expect(() => minTtlFor(bad)).toThrow(/not a hop count from 1 to 255/);
  });
});

describe('the native part', () => {
  it('errors carry the errno name (a closed descriptor: EBADF), or say why it is unavailable', () => {
    const status = nativeSocketOptions();
    if (status.available)
      expect(() => setTcpMd5(1_000_000, '127.0.0.2', Buffer.from('k'))).toThrow(
        expect.objectContaining({ code: 'EBADF' }),
      );
    else
      expect(() => setTcpMd5(3, '127.0.0.2', Buffer.from('k'))).toThrow(expect.objectContaining({ code: 'ENOTSUP' }));
  });
});

const NETSTAT = (md5: [number, number, number], minTtl: number) =>
  'TcpExt: SyncookiesSent TCPMD5NotFound TCPMD5Unexpected TCPMD5Failure TCPMinTTLDrop\n' +
  `TcpExt: 0 ${md5[0]} ${md5[1]} ${md5[2]} ${minTtl}\n` +
  'IpExt: InNoRoutes TCPMD5Failure\nIpExt: 0 99\n';

describe('TcpExt counters → node status words', () => {
  it('reads the four counters from TcpExt only', () => {
    expect(parseTcpSecurityCounters(NETSTAT([1, 2, 3], 4))).toEqual({
      TCPMD5NotFound: 1,
      TCPMD5Unexpected: 2,
      TCPMD5Failure: 3,
      TCPMinTTLDrop: 4,
    });
    expect(parseTcpSecurityCounters('TcpExt: A B\nTcpExt: 1 2\n')).toEqual({});
  });

  it('names each case that grew, wrong password first', () => {
    const before = parseTcpSecurityCounters(NETSTAT([1, 2, 3], 4));
    expect(diagnoseTcpSecurity(before, before)).toEqual([]);
    const words = formatTcpSecurityFindings(
      diagnoseTcpSecurity(before, parseTcpSecurityCounters(NETSTAT([5, 2, 4], 6))),
    );
    expect(words).toHaveLength(3);
    expect(words[0]).toMatch(/^wrong password: .* \(TCPMD5Failure \+1\)$/);
    expect(words[1]).toMatch(/^we sign, peer does not: .* \(TCPMD5NotFound \+4\)$/);
    expect(words[2]).toMatch(/^GTSM drop: .* \(TCPMinTTLDrop \+2\)$/);
    expect(formatTcpSecurityFindings(diagnoseTcpSecurity({}, { TCPMD5Unexpected: 1 }))[0]).toMatch(
      /^peer signs but we have no key/,
    );
  });
});
