import { describe, expect, it } from 'vitest';
import {
  encapsulationFor,
  IPIP_MODES,
  isIpipMode,
  subnetOf,
  subnetRelation,
  type Encapsulation,
  type IpipMode,
} from '../../../ipip/encap.js';

// mode, this node's address with length, the remote node, expected encapsulation, why
const CASES: Array<[IpipMode, string, string, Encapsulation, string]> = [
  ['Always', '192.168.31.201/24', '192.168.31.202', 'tunnel', 'Always tunnels even within the subnet'],
  ['Always', '192.168.31.201/24', '192.168.32.7', 'tunnel', 'Always tunnels across subnets'],
  ['Never', '192.168.31.201/24', '192.168.31.202', 'direct', 'Never is direct within the subnet'],
  ['Never', '192.168.31.201/24', '10.0.0.1', 'direct', 'Never is direct across subnets (the network routes it)'],
  ['CrossSubnet', '192.168.31.201/24', '192.168.31.202', 'direct', 'same /24'],
  ['CrossSubnet', '192.168.31.201/24', '192.168.31.255', 'direct', 'broadcast address still inside the /24'],
  ['CrossSubnet', '192.168.31.201/24', '192.168.32.1', 'tunnel', 'next /24'],
  ['CrossSubnet', '192.168.31.201/24', '192.168.30.255', 'tunnel', 'previous /24'],
  ['CrossSubnet', '10.1.2.3/16', '10.1.200.9', 'direct', 'same /16'],
  ['CrossSubnet', '10.1.2.3/16', '10.2.0.1', 'tunnel', 'other /16'],
  ['CrossSubnet', '198.18.0.0/31', '198.18.0.1', 'direct', 'a /31 point-to-point link (RFC 3021) is a useful subnet'],
  ['CrossSubnet', '198.18.0.0/31', '198.18.0.2', 'tunnel', 'outside the /31'],
  [
    'CrossSubnet',
    '192.168.31.201/32',
    '192.168.31.202',
    'tunnel',
    'a /32 places nobody in my subnet: tunnel, the safe choice',
  ],
  ['CrossSubnet', '192.168.31.201', '192.168.31.202', 'tunnel', 'no length means /32'],
  [
    'CrossSubnet',
    '192.168.31.201/0',
    '8.8.8.8',
    'tunnel',
    'a /0 would make everything "same subnet": treated like /32',
  ],
  ['Never', '192.168.31.201/32', '192.168.31.202', 'direct', 'the /32 trap does not touch Never'],
  ['Always', '192.168.31.201/32', '192.168.31.202', 'tunnel', 'nor Always'],
];

describe('encapsulationFor', () => {
  it('has cases for every mode', () => {
    expect(CASES.length).toBeGreaterThan(0);
    expect(new Set(CASES.map((c) => c[0]))).toEqual(new Set(Object.keys(IPIP_MODES)));
  });

  it.each(CASES)('%s from %s to %s → %s (%s)', (mode, local, remote, expected) => {
    expect(encapsulationFor(mode, local, remote)).toBe(expected);
  });

  it('refuses an unknown mode, naming it and the accepted ones', () => {
    expect(() => encapsulationFor('Sometimes' as IpipMode, '192.168.31.201/24', '192.168.31.202')).toThrow(
      /ipipMode "Sometimes" is not one of Never, Always, CrossSubnet/,
    );
  });

  it('refuses malformed addresses, naming the value', () => {
    expect(() => encapsulationFor('CrossSubnet', '192.168.31/24', '192.168.31.202')).toThrow(
      /node address "192.168.31\/24"/,
    );
    expect(() => encapsulationFor('CrossSubnet', '192.168.31.201/33', '192.168.31.202')).toThrow(
      /prefix length "33" is not 0..32/,
    );
    expect(() => encapsulationFor('CrossSubnet', '192.168.31.201/24', 'node-2')).toThrow(
      /remote node address "node-2"/,
    );
  });
});

describe('subnetOf', () => {
  it('keeps the address and derives the subnet', () => {
    const s = subnetOf('192.168.31.201/24');
    expect(s).toEqual({ addr: 0xc0a81fc9, subnet: { addr: 0xc0a81f00, len: 24 }, useful: true });
  });

  it('calls /32 and /0 not useful, /1../31 useful', () => {
    expect(subnetOf('10.0.0.5/32').useful).toBe(false);
    expect(subnetOf('10.0.0.5').useful).toBe(false);
    expect(subnetOf('10.0.0.5/0').useful).toBe(false);
    for (let len = 1; len <= 31; len++) expect(subnetOf(`10.0.0.5/${len}`).useful).toBe(true);
  });

  it('relates remote addresses', () => {
    const s = subnetOf('192.168.31.201/24');
    expect(subnetRelation(s, 0xc0a81f01)).toBe('same');
    expect(subnetRelation(s, 0xc0a82001)).toBe('other');
    expect(subnetRelation(subnetOf('192.168.31.201/32'), 0xc0a81f01)).toBe('unknown');
  });

  it('knows its modes', () => {
    expect(isIpipMode('CrossSubnet')).toBe(true);
    expect(isIpipMode('crosssubnet')).toBe(false);
    expect(isIpipMode('toString')).toBe(false);
  });
});
