// The BGP port guard's table as a pure function of pools and node addresses (felix/bgp-guard.ts).
import { describe, expect, it } from 'vitest';
import { bgpGuardTableFor, GUARD_RULE, LOCAL_PEER_RULE } from '../../../felix/bgp-guard.js';
import { parseAgentConfig } from '../../../src/agent/config.js';

describe('bgpGuardTableFor', () => {
  it('every IPv4 pool as workloads, every node address as a /32, one drop rule in forward and input', () => {
    const { table, warnings } = bgpGuardTableFor({
      pools: [{ cidr: '10.244.0.0/16' }, { cidr: '10.244.8.0/24' }, { cidr: '192.168.0.0/24' }, { cidr: 'fd00::/64' }],
      nodeAddresses: ['198.18.0.12/24', '198.18.0.11/24', '198.18.0.11'],
    });
    expect(warnings).toEqual([]);
    expect(table?.sets).toEqual([
      { name: 'workloads', type: 'ipv4_addr', flags: ['interval'], elements: ['10.244.0.0/16', '192.168.0.0/24'] },
      { name: 'nodes', type: 'ipv4_addr', flags: ['interval'], elements: ['198.18.0.11/32', '198.18.0.12/32'] },
    ]);
    expect(table?.chains.map((c) => [c.name, c.hook, c.type, c.priority, c.policy, c.rules])).toEqual([
      ['forward', 'forward', 'filter', -10, 'accept', [GUARD_RULE]],
      ['input', 'input', 'filter', -10, 'accept', [GUARD_RULE]],
    ]);
    expect(GUARD_RULE.text).toBe(
      'ip saddr @workloads ip daddr @nodes tcp dport 179 drop comment "tortie: no pod speaks BGP as its node"',
    );
  });

  it("local workload BGP peers (BGPPeer localWorkloadSelector) may reach this node's port 179: an accept before the drop, input only", () => {
    const { table } = bgpGuardTableFor({
      pools: [{ cidr: '10.244.0.0/16' }],
      nodeAddresses: ['198.18.0.11/24'],
      localPeers: ['10.244.0.5', '10.244.0.3', '10.244.0.5'],
    });
    expect(table?.sets.find((s) => s.name === 'localpeers')?.elements).toEqual(['10.244.0.3/32', '10.244.0.5/32']);
    expect(table?.chains.map((c) => [c.name, c.rules])).toEqual([
      ['forward', [GUARD_RULE]],
      ['input', [LOCAL_PEER_RULE, GUARD_RULE]],
    ]);
    expect(LOCAL_PEER_RULE.text).toBe(
      'ip saddr @localpeers ip daddr @nodes tcp dport 179 accept comment "tortie: a local workload BGP peer of this node"',
    );
    // None planned: no set, no exception.
    const none = bgpGuardTableFor({
      pools: [{ cidr: '10.244.0.0/16' }],
      nodeAddresses: ['198.18.0.11'],
      localPeers: [],
    });
    expect(none.table?.sets.map((s) => s.name)).toEqual(['workloads', 'nodes']);
  });

  it('no pool or no node address: no table; a bad address is reported and left out', () => {
    expect(bgpGuardTableFor({ pools: [], nodeAddresses: ['198.18.0.11/24'] }).table).toBeNull();
    expect(bgpGuardTableFor({ pools: [{ cidr: '10.0.0.0/8' }], nodeAddresses: [] }).table).toBeNull();
    expect(bgpGuardTableFor({ pools: [{ cidr: '10.0.0.0/8' }], nodeAddresses: ['fe80::1'] }).warnings[0]).toMatch(
      /"fe80::1" is not IPv4/,
    );
  });

  it('TORTIE_BGP_PORT_GUARD: on by default, false turns it off, nonsense is refused', () => {
    const base = { NODENAME: 'n', IP: '198.18.0.11/24' };
    expect(parseAgentConfig(base, 'h').bgpPortGuard).toBe(true);
    expect(parseAgentConfig({ ...base, TORTIE_BGP_PORT_GUARD: 'false' }, 'h').bgpPortGuard).toBe(false);
    expect(() => parseAgentConfig({ ...base, TORTIE_BGP_PORT_GUARD: 'maybe' }, 'h')).toThrow(/TORTIE_BGP_PORT_GUARD/);
  });
});
