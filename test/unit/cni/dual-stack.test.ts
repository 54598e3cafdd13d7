// The pod's IPv6 plumbing as lines and sysctls (src/cni/dual-stack.ts, src/cni/dataplane.ts): Calico's
// link-local gateway (the EUI-64 address of the host end's ee:ee:ee:ee:ee:ee), the /128 host route, and
// the host end's IPv6 sysctls. The kernel side: test/integration/ipv6-node.test.ts.

import { describe, expect, it } from 'vitest';
import { hostSetupLines, PodNetwork, podSetupLines, type VethPlan } from '../../../src/cni/dataplane.js';
import { hostSysctls6, macToIpv6LinkLocal, POD_GATEWAY_V6 } from '../../../src/cni/dual-stack.js';

const PLAN: VethPlan = {
  hostIf: 'cali0123456789a',
  podIf: 'eth0',
  netns: '/var/run/netns/p',
  address: '10.244.0.1',
  address6: 'fd00:10:244::1',
  mtu: 1500,
  podMac: '02:00:00:00:00:01',
};

describe('dual-stack pod plumbing', () => {
  it('the IPv6 gateway is the host end’s EUI-64 link-local address (Calico: fe80::ecee:eeff:feee:eeee)', () => {
    expect(POD_GATEWAY_V6).toBe('fe80::ecee:eeff:feee:eeee');
    expect(macToIpv6LinkLocal('52:54:00:12:34:56')).toBe('fe80::5054:ff:fe12:3456');
    expect(() => macToIpv6LinkLocal('ee:ee')).toThrow(/not a MAC address/);
  });

  it('host: the /128 route beside the /32; pod: the address without DAD, the default route and the gateway’s MAC', () => {
    expect(hostSetupLines(PLAN).slice(2)).toEqual([
      'route replace 10.244.0.1/32 dev cali0123456789a scope link',
      'route replace fd00:10:244::1/128 dev cali0123456789a scope link',
    ]);
    expect(podSetupLines(PLAN).slice(5)).toEqual([
      'addr add fd00:10:244::1/128 dev eth0 nodad',
      'route add ::/0 via fe80::ecee:eeff:feee:eeee dev eth0',
      'neigh replace fe80::ecee:eeff:feee:eeee lladdr ee:ee:ee:ee:ee:ee dev eth0 nud permanent',
    ]);
    const { address6: _, ...v4only } = PLAN;
    expect(podSetupLines(v4only).join('\n')).not.toContain('fd00');
  });

  it('host end sysctls as Calico’s configureSysctls: no DAD, IPv6 on, proxy NDP, forwarding, no RAs', () => {
    expect(hostSysctls6('cali1').map((e) => `${e.path}=${e.value}`)).toEqual([
      '/proc/sys/net/ipv6/conf/cali1/accept_dad=0',
      '/proc/sys/net/ipv6/conf/cali1/disable_ipv6=0',
      '/proc/sys/net/ipv6/conf/cali1/proxy_ndp=1',
      '/proc/sys/net/ipv6/conf/cali1/forwarding=1',
      '/proc/sys/net/ipv6/conf/cali1/accept_ra=0',
    ]);
  });

  it('with IPv6, the host end’s sysctls (DAD off) finish before the pod end comes up (its carrier would start DAD)', async () => {
    const events: string[] = [];
    let releaseSysctl: () => void = () => undefined;
    const network = new PodNetwork({
      hostNetns: '/var/run/netns/node-1',
      run: async (argv) => {
        const what = argv.includes('sysctl') ? 'sysctl' : argv.includes('--net=/var/run/netns/p') ? 'pod' : 'host';
        events.push(`${what} start`);
        if (what === 'sysctl') await new Promise<void>((resolve) => (releaseSysctl = resolve));
        events.push(`${what} end`);
        return { code: 0, stdout: '', stderr: '' };
      },
    });
    const setup = network.setup(PLAN);
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(events).toEqual(['host start', 'host end', 'sysctl start']);
    releaseSysctl();
    await setup;
    expect(events).toEqual(['host start', 'host end', 'sysctl start', 'sysctl end', 'pod start', 'pod end']);
  });
});
