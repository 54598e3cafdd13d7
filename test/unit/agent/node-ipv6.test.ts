// The node's IPv6 side: IP6 / IP6_AUTODETECTION_METHOD, CALICO_IPV6POOL_* (the default IPv6 pool only when
// its CIDR is set, as calico-node), autodetection over interface addresses (no link-local, no loopback),
// and the startup step writing Node.spec.bgp.ipv6Address, creating the pool and claiming a /122.

import { describe, expect, it } from 'vitest';
import { parseAgentConfig } from '../../../src/agent/config.js';
import { bootstrapIpv6, findAddress6, interfaceAddresses6, selectAddress6 } from '../../../src/agent/node-ipv6.js';
import type { BootstrapContext } from '../../../src/agent/bootstrap.js';
import { MemoryDatastore } from '../../../src/datastore/memory.js';
import { Ipam } from '../../../src/ipam/index.js';
import { API_VERSION } from '../../../src/resources/types.js';

const ADDRESSES = [
  { iface: 'lo', address: '::1', prefixLength: 128 },
  { iface: 'eth0', address: 'fe80::1', prefixLength: 64 },
  { iface: 'docker0', address: 'fd00:99::1', prefixLength: 64 },
  { iface: 'eth0', address: 'fd00:54::11', prefixLength: 64 },
  { iface: 'eth1', address: '2001:db8:1::5', prefixLength: 48 },
];

describe('IP6 and the default IPv6 pool (agent configuration)', () => {
  it('IPv6 is off unless IP6 is set; no IPv6 pool unless CALICO_IPV6POOL_CIDR is set', () => {
    const config = parseAgentConfig({}, 'host-a');
    expect(config.ip6).toBeUndefined();
    expect(config.defaultPool6).toBeUndefined();
    expect(parseAgentConfig({ IP6: 'none' }, 'host-a').ip6).toBeUndefined();
  });

  it('reads IP6 (autodetect with a method, or an address) and CALICO_IPV6POOL_* with Calico’s defaults', () => {
    const config = parseAgentConfig(
      { IP6: 'autodetect', IP6_AUTODETECTION_METHOD: 'cidr=fd00:54::/64', CALICO_IPV6POOL_CIDR: 'fd00:10:244::/48' },
      'host-a',
    );
    expect(config.ip6).toEqual({ mode: 'autodetect', method: { kind: 'cidr', cidrs: ['fd00:54::/64'] } });
    expect(config.defaultPool6).toEqual({
      name: 'default-ipv6-ippool',
      cidr: 'fd00:10:244::/48',
      blockSize: 122,
      natOutgoing: false,
      vxlanMode: 'Never',
    });
    expect(parseAgentConfig({ IP6: 'fd00:54:0::11/64' }, 'h').ip6).toEqual({
      mode: 'fixed',
      address: 'fd00:54::11',
      prefixLength: 64,
    });
  });

  it('refuses wrong values naming the variable', () => {
    expect(() => parseAgentConfig({ IP6: '10.0.0.1' }, 'h')).toThrow(
      /IP6="10.0.0.1" is not "none", "autodetect" or an IPv6 address/,
    );
    expect(() => parseAgentConfig({ CALICO_IPV6POOL_CIDR: 'fd00:10:244::1/48' }, 'h')).toThrow(
      /CALICO_IPV6POOL_CIDR="fd00:10:244::1\/48" is not an IPv6 network CIDR/,
    );
    expect(() =>
      parseAgentConfig({ CALICO_IPV6POOL_CIDR: 'fd00:10:244::/48', CALICO_IPV6POOL_BLOCK_SIZE: '64' }, 'h'),
    ).toThrow(/CALICO_IPV6POOL_BLOCK_SIZE="64" is not an integer 116..128/);
    expect(() => parseAgentConfig({ IP6: 'autodetect', IP6_AUTODETECTION_METHOD: 'can-reach=10.0.0.1' }, 'h')).toThrow(
      /is not an IPv6 address/,
    );
  });
});

describe('IPv6 autodetection', () => {
  it('first-found skips loopback, link-local and Calico’s skipped interfaces; cidr= and interface= pick theirs', () => {
    expect(selectAddress6({ kind: 'first-found' }, ADDRESSES)?.address).toBe('fd00:54::11');
    expect(selectAddress6({ kind: 'cidr', cidrs: ['2001:db8::/32'] }, ADDRESSES)?.address).toBe('2001:db8:1::5');
    expect(selectAddress6({ kind: 'interface', patterns: [/^eth1$/] }, ADDRESSES)?.address).toBe('2001:db8:1::5');
    expect(selectAddress6({ kind: 'can-reach', address: 'fd00:54::1' }, ADDRESSES, 'fd00:54::11')?.iface).toBe('eth0');
    expect(selectAddress6({ kind: 'cidr', cidrs: ['fd00:77::/64'] }, ADDRESSES)).toBeNull();
  });

  it('reads os.networkInterfaces() shapes: IPv6 only, link-local dropped', () => {
    const found = interfaceAddresses6({
      eth0: [
        {
          address: '198.18.54.11',
          netmask: '255.255.255.0',
          family: 'IPv4',
          mac: '',
          internal: false,
          cidr: '198.18.54.11/24',
        },
        {
          address: 'fe80::1',
          netmask: 'ffff:ffff:ffff:ffff::',
          family: 'IPv6',
          mac: '',
          internal: false,
          cidr: 'fe80::1/64',
          scopeid: 2,
        },
        {
          address: 'fd00:54::11',
          netmask: 'ffff:ffff:ffff:ffff::',
          family: 'IPv6',
          mac: '',
          internal: false,
          cidr: 'fd00:54::11/64',
          scopeid: 0,
        },
      ],
    });
    expect(found).toEqual([{ iface: 'eth0', address: 'fd00:54::11', prefixLength: 64 }]);
  });

  it('an address found nowhere names the method and what was seen', async () => {
    await expect(
      findAddress6(
        { mode: 'autodetect', method: { kind: 'cidr', cidrs: ['fd00:77::/64'] } },
        { interfaces: () => ADDRESSES },
      ),
    ).rejects.toThrow(
      /IP6_AUTODETECTION_METHOD=cidr found no global IPv6 address; addresses seen: .*eth0 fd00:54::11\/64/,
    );
  });
});

describe('bootstrapIpv6', () => {
  it('writes Node.spec.bgp.ipv6Address, creates default-ipv6-ippool and claims a /122 for the node', async () => {
    const ds = new MemoryDatastore();
    await ds.create({
      apiVersion: API_VERSION,
      kind: 'Node',
      metadata: { name: 'n1' },
      spec: { bgp: { ipv4Address: '198.18.54.11/24' } },
    });
    const warnings = new Set<string>();
    const config = parseAgentConfig({ IP6: 'fd00:54::11/64', CALICO_IPV6POOL_CIDR: 'fd00:10:244::/48' }, 'n1');
    const ctx = {
      ds,
      ipam: new Ipam(ds),
      config,
      warnings,
      log: { info: () => undefined },
    } as unknown as BootstrapContext;
    await bootstrapIpv6(ctx);
    expect(warnings).toEqual(new Set());
    expect((await ds.get('Node', 'n1'))?.spec.bgp).toEqual({
      ipv4Address: '198.18.54.11/24',
      ipv6Address: 'fd00:54::11/64',
    });
    expect((await ds.get('IPPool', 'default-ipv6-ippool'))?.spec).toMatchObject({
      cidr: 'fd00:10:244::/48',
      blockSize: 122,
      ipipMode: 'Never',
      natOutgoing: false,
    });
    expect(await new Ipam(ds).blocksOf('n1')).toEqual(['fd00:10:244::/122']);
    await bootstrapIpv6(ctx); // a restart claims nothing more
    expect(await new Ipam(ds).blocksOf('n1')).toEqual(['fd00:10:244::/122']);
  });
});
