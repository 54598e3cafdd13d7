// IP autodetection over an injected interface list: every method, Calico's first-found skip list, and the
// prefix length kept from the interface.

import { describe, expect, it } from 'vitest';
import { FakeClock } from '../../../bgp/clock.js';
import {
  autodetectIpv4,
  interfaceAddresses,
  localAddressToward,
  prefixLengthOf,
  selectAddress,
  type InterfaceAddress,
} from '../../../src/agent/autodetect.js';
import { FIRST_FOUND_SKIP, parseAutodetectMethod } from '../../../src/agent/config.js';

const MACHINE: InterfaceAddress[] = [
  { iface: 'lo', address: '127.0.0.1', prefixLength: 8 },
  { iface: 'docker0', address: '172.17.0.1', prefixLength: 16 },
  { iface: 'cali1234567890a', address: '10.244.1.1', prefixLength: 32 },
  { iface: 'tunl0', address: '10.244.1.0', prefixLength: 32 },
  { iface: 'br-f00', address: '172.18.0.1', prefixLength: 16 },
  { iface: 'vxlan.calico', address: '10.244.9.0', prefixLength: 32 },
  { iface: 'eth0', address: '198.18.0.11', prefixLength: 24 },
  { iface: 'eth1', address: '198.19.5.7', prefixLength: 20 },
];

function method(text: string) {
  const problems: string[] = [];
  const m = parseAutodetectMethod(text, problems);
  expect(problems).toEqual([]);
  return m;
}

describe('selectAddress', () => {
  it('first-found skips Calico, Docker, tunnel and loopback interfaces and keeps the prefix length', () => {
    expect(FIRST_FOUND_SKIP.length).toBeGreaterThan(0);
    expect(selectAddress(method('first-found'), MACHINE)).toEqual({
      iface: 'eth0',
      address: '198.18.0.11',
      prefixLength: 24,
      method: 'first-found',
    });
  });

  it('first-found never picks a 127/8 or 169.254/16 address on an ordinary interface', () => {
    const list = [
      { iface: 'eth9', address: '169.254.3.3', prefixLength: 16 },
      { iface: 'dummy-x', address: '127.0.5.5', prefixLength: 8 },
      { iface: 'ens3', address: '198.18.1.1', prefixLength: 25 },
    ];
    expect(selectAddress(method('first-found'), list)?.address).toBe('198.18.1.1');
  });

  it('interface= tries the patterns in order', () => {
    expect(selectAddress(method('interface=eth1,eth0'), MACHINE)?.address).toBe('198.19.5.7');
    expect(selectAddress(method('interface=nomatch.*,eth.*'), MACHINE)?.iface).toBe('eth0');
    expect(selectAddress(method('interface=wlan.*'), MACHINE)).toBeNull();
  });

  it('skip-interface= skips the patterns given (and only those)', () => {
    expect(selectAddress(method('skip-interface=docker.*,cali.*,tunl.*,br-.*,vxlan.*,eth0'), MACHINE)?.address).toBe(
      '198.19.5.7',
    );
  });

  it('cidr= takes the first address inside the first matching CIDR, with its own prefix length', () => {
    expect(selectAddress(method('cidr=198.19.0.0/16'), MACHINE)).toMatchObject({
      address: '198.19.5.7',
      prefixLength: 20,
    });
    expect(selectAddress(method('cidr=192.0.2.0/24,198.18.0.0/24'), MACHINE)).toMatchObject({
      address: '198.18.0.11',
      prefixLength: 24,
    });
  });

  it('can-reach= takes the interface holding the local address of the route', () => {
    expect(selectAddress(method('can-reach=198.19.8.8'), MACHINE, '198.19.5.7')).toMatchObject({
      iface: 'eth1',
      prefixLength: 20,
    });
    expect(selectAddress(method('can-reach=198.19.8.8'), MACHINE, '203.0.113.9')).toBeNull();
  });
});

describe('interfaceAddresses / prefixLengthOf', () => {
  it('reads os.networkInterfaces() shapes, IPv4 only, with the length from cidr', () => {
    const list = interfaceAddresses({
      eth0: [
        {
          address: '198.18.0.11',
          netmask: '255.255.255.0',
          family: 'IPv4',
          mac: '00:00:00:00:00:01',
          internal: false,
          cidr: '198.18.0.11/24',
        },
        {
          address: 'fe80::1',
          netmask: 'ffff:ffff:ffff:ffff::',
          family: 'IPv6',
          mac: '00:00:00:00:00:01',
          internal: false,
          cidr: 'fe80::1/64',
          scopeid: 2,
        },
      ],
    });
    expect(list).toEqual([{ iface: 'eth0', address: '198.18.0.11', prefixLength: 24 }]);
    expect(prefixLengthOf('198.18.0.11', list)).toBe(24);
    expect(prefixLengthOf('198.18.0.12', list)).toBeNull();
  });
});

describe('autodetectIpv4', () => {
  it('uses the injected route lookup for can-reach', async () => {
    const asked: string[] = [];
    const found = await autodetectIpv4(method('can-reach=198.19.8.8'), {
      interfaces: () => MACHINE,
      localAddressToward: async (target) => {
        asked.push(target);
        return '198.19.5.7';
      },
    });
    expect(asked).toEqual(['198.19.8.8']);
    expect(found).toMatchObject({
      iface: 'eth1',
      address: '198.19.5.7',
      prefixLength: 20,
      method: 'can-reach=198.19.8.8',
    });
  });

  it('fails naming the method and the addresses it saw', async () => {
    await expect(autodetectIpv4(method('interface=wlan0'), { interfaces: () => MACHINE.slice(6, 7) })).rejects.toThrow(
      'IP_AUTODETECTION_METHOD=interface=wlan0 found no IPv4 address; addresses seen: eth0 198.18.0.11/24; set IP=<address/len> or another method',
    );
  });
});

describe('can-reach route lookup time bound (fake clock)', () => {
  it('gives up after timeoutMs on the injected clock, naming the target and the bound', async () => {
    const clock = new FakeClock();
    // 127.0.0.1: connect() on UDP only looks the route up, nothing is sent. The fake clock is advanced
    // synchronously, before the lookup's answer can arrive, so the time bound decides.
    const lookup = localAddressToward('127.0.0.1', 2000, clock);
    expect(clock.pending).toBe(1);
    clock.advance(1999);
    expect(clock.pending).toBe(1);
    clock.advance(1);
    expect(clock.pending).toBe(0);
    await expect(lookup).rejects.toThrow('can-reach=127.0.0.1: no route lookup answer within 2000 ms');
  });

  it('an answer in time clears the timer', async () => {
    const clock = new FakeClock();
    await expect(localAddressToward('127.0.0.1', 2000, clock)).resolves.toBe('127.0.0.1');
    expect(clock.pending).toBe(0);
  });
});
