// CIDRs of both families: parsing, host bits, canonical output, overlap.

import { describe, expect, it } from 'vitest';
import { cidrsOverlap, parseCidr } from '../../../src/resources/index.js';
import { formatCidrNetwork, parseAddress } from '../../../src/resources/cidr.js';

describe('parseCidr', () => {
  it.each([
    ['10.244.0.0/16', '10.244.0.0/16'],
    ['10.244.1.7/16', '10.244.0.0/16'],
    ['0.0.0.0/0', '0.0.0.0/0'],
    ['fd00:10:244::/48', 'fd00:10:244::/48'],
    ['FD00:0:0:0:0:0:0:1/64', 'fd00::/64'],
    ['2001:db8::1:0:0:1/128', '2001:db8::1:0:0:1/128'],
    ['::ffff:10.1.2.3/128', '::ffff:a01:203/128'],
    ['1:0:0:2:0:0:0:3/128', '1:0:0:2::3/128'],
  ])('%s → network %s', (text, network) => {
    const cidr = parseCidr(text);
    expect(cidr).not.toBeNull();
    expect(formatCidrNetwork(cidr!)).toBe(network);
  });

  it.each([
    '10.244.0.0',
    '10.244.0.0/33',
    '10.244.0/16',
    '10.244.0.0/016',
    'fd00::/129',
    'fe80::1%eth0/64',
    'x/1',
    '/8',
  ])('refuses %s', (text) => {
    expect(parseCidr(text)).toBeNull();
  });

  it('keeps the written address apart from the network', () => {
    const cidr = parseCidr('10.244.1.7/24')!;
    expect(cidr.addr).not.toBe(cidr.network);
    expect(parseAddress('10.244.1.7')).toEqual({ family: 4, addr: cidr.addr });
  });
});

describe('cidrsOverlap', () => {
  const c = (t: string) => parseCidr(t)!;
  it.each([
    ['10.244.0.0/16', '10.244.128.0/17', true],
    ['10.244.128.0/17', '10.244.0.0/16', true],
    ['10.244.0.0/17', '10.244.128.0/17', false],
    ['10.0.0.0/8', '10.255.255.255/32', true],
    ['0.0.0.0/0', 'fd00::/8', false],
    ['fd00::/8', 'fd12::/16', true],
    ['fd00::/16', 'fd01::/16', false],
  ] as Array<[string, string, boolean]>)('%s and %s → %s', (a, b, expected) => {
    expect(cidrsOverlap(c(a), c(b))).toBe(expected);
  });
});
