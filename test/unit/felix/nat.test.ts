// felix/nat.ts, table-tested: which pools are masqueraded from (enabled natOutgoing ones), which are pod
// destinations (every pool), no table when nothing wants NAT, overlapping pools folded, bad CIDRs and IPv6
// pools reported; and the rendered script, checked against hand-written expected text.

import { describe, expect, it } from 'vitest';
import { MASQUERADE_RULE, natTableFor, type NatPool } from '../../../felix/nat.js';
import { renderTableScript } from '../../../felix/nft-table.js';

const cases: Array<{
  name: string;
  pools: NatPool[];
  nat: string[];
  all: string[];
  table: boolean;
  warnings?: RegExp[];
}> = [
  { name: 'no pools: no table', pools: [], nat: [], all: [], table: false },
  {
    name: 'one natOutgoing pool',
    pools: [{ cidr: '10.244.0.0/16', natOutgoing: true }],
    nat: ['10.244.0.0/16'],
    all: ['10.244.0.0/16'],
    table: true,
  },
  {
    name: 'a pool without the flag: no NAT, no table, but it is still a pool',
    pools: [{ cidr: '10.244.0.0/16' }, { cidr: '10.245.0.0/16', natOutgoing: false }],
    nat: [],
    all: ['10.244.0.0/16', '10.245.0.0/16'],
    table: false,
  },
  {
    name: 'a disabled natOutgoing pool is not masqueraded from, but stays a pod destination',
    pools: [
      { cidr: '10.244.0.0/16', natOutgoing: true },
      { cidr: '10.96.0.0/20', natOutgoing: true, disabled: true },
    ],
    nat: ['10.244.0.0/16'],
    all: ['10.96.0.0/20', '10.244.0.0/16'],
    table: true,
  },
  {
    name: 'the only natOutgoing pool disabled: no table',
    pools: [{ cidr: '10.244.0.0/16', natOutgoing: true, disabled: true }],
    nat: [],
    all: ['10.244.0.0/16'],
    table: false,
  },
  {
    name: 'mixed pools: NAT pools sorted by address, every pool in all-pools',
    pools: [
      { cidr: '192.168.0.0/16', natOutgoing: true },
      { cidr: '10.244.0.0/16', natOutgoing: false },
      { cidr: '172.16.0.0/20', natOutgoing: true },
    ],
    nat: ['172.16.0.0/20', '192.168.0.0/16'],
    all: ['10.244.0.0/16', '172.16.0.0/20', '192.168.0.0/16'],
    table: true,
  },
  {
    name: 'a pool inside another is folded into it (nft refuses overlapping intervals)',
    pools: [
      { cidr: '10.244.0.0/16', natOutgoing: true },
      { cidr: '10.244.8.0/24', natOutgoing: true },
      { cidr: '10.244.0.0/16' },
    ],
    nat: ['10.244.0.0/16'],
    all: ['10.244.0.0/16'],
    table: true,
  },
  {
    name: 'host bits are cleared',
    pools: [{ cidr: '10.244.1.7/16', natOutgoing: true }],
    nat: ['10.244.0.0/16'],
    all: ['10.244.0.0/16'],
    table: true,
  },
  {
    name: 'a /32 pool',
    pools: [{ cidr: '10.1.2.3/32', natOutgoing: true }],
    nat: ['10.1.2.3/32'],
    all: ['10.1.2.3/32'],
    table: true,
  },
  {
    name: 'a CIDR that does not parse is reported and left out',
    pools: [
      { cidr: '10.244.0.0/33', natOutgoing: true },
      { cidr: '10.245.0.0/16', natOutgoing: true },
    ],
    nat: ['10.245.0.0/16'],
    all: ['10.245.0.0/16'],
    table: true,
    warnings: [/IPPool cidr "10\.244\.0\.0\/33".*prefix length "33".*left out of natOutgoing/],
  },
  {
    name: 'an IPv6 natOutgoing pool is reported, not programmed',
    pools: [{ cidr: 'fd00::/48', natOutgoing: true }, { cidr: 'fd01::/48' }],
    nat: [],
    all: [],
    table: false,
    warnings: [/IPPool fd00::\/48: natOutgoing is not done for IPv6 pools/],
  },
];

describe('natTableFor', () => {
  for (const c of cases) {
    it(c.name, () => {
      const result = natTableFor(c.pools);
      expect(result.natPools).toEqual(c.nat);
      expect(result.allPools).toEqual(c.all);
      expect(result.table !== null).toBe(c.table);
      if (result.table !== null) {
        expect(result.table.sets.map((s) => [s.name, [...s.elements]])).toEqual([
          ['nat-pools', c.nat],
          ['all-pools', c.all],
        ]);
        expect(result.table.chains[0]?.rules).toEqual([MASQUERADE_RULE]);
      }
      expect(result.warnings.length).toBe(c.warnings?.length ?? 0);
      for (const [i, re] of (c.warnings ?? []).entries()) expect(result.warnings[i]).toMatch(re);
    });
  }

  it('is a function of the pools only (same input, same table; order of pools does not matter)', () => {
    const pools: NatPool[] = [{ cidr: '10.2.0.0/16', natOutgoing: true }, { cidr: '10.1.0.0/16' }];
    expect(natTableFor(pools)).toEqual(natTableFor([...pools].reverse()));
  });

  it('renders the script felix writes', () => {
    const { table } = natTableFor([{ cidr: '10.244.0.0/16', natOutgoing: true }, { cidr: '10.96.0.0/20' }]);
    expect(table).not.toBeNull();
    expect(renderTableScript(table!)).toBe(
      [
        'add table ip tortie-nat',
        'delete table ip tortie-nat',
        'table ip tortie-nat {',
        '  comment "tortie felix: natOutgoing (only tortie writes this table)"',
        '  set nat-pools {',
        '    type ipv4_addr',
        '    flags interval',
        '    elements = { 10.244.0.0/16 }',
        '  }',
        '  set all-pools {',
        '    type ipv4_addr',
        '    flags interval',
        '    elements = { 10.96.0.0/20, 10.244.0.0/16 }',
        '  }',
        '  chain postrouting {',
        '    type nat hook postrouting priority 100; policy accept;',
        '    ip saddr @nat-pools ip daddr != @all-pools masquerade comment "tortie natOutgoing"',
        '  }',
        '}',
        '',
      ].join('\n'),
    );
  });
});
