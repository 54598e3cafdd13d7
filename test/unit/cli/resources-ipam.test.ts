// tortie ipam show: calicoctl's boxed usage table, blocks under their pool in address order with node
// affinity, and the numbers coming from the real Ipam over MemoryDatastore.

import { describe, expect, it } from 'vitest';
import { boxTable } from '../../../src/format/table.js';
import { formatIpamUsage, parseIpamArgs, runIpamShow, type IpamUsageView } from '../../../src/cli/ipam-command.js';
import { UsageError } from '../../../src/cli/usage-error.js';
import { MemoryDatastore } from '../../../src/datastore/memory.js';
import { Ipam } from '../../../src/ipam/index.js';

describe('parseIpamArgs', () => {
  it('reads show, --show-blocks, -o and -c', () => {
    expect(parseIpamArgs(['show'])).toEqual({ showBlocks: false, output: 'table' });
    expect(parseIpamArgs(['show', '--show-blocks', '-o', 'json', '-c', '/x.cfg'])).toEqual({
      showBlocks: true,
      output: 'json',
      config: '/x.cfg',
    });
  });

  const refusals: Array<[string[], RegExp]> = [
    [[], /^ipam: unknown subcommand ""; use "ipam show"/],
    [['release'], /^ipam: unknown subcommand "release"/],
    [['show', '-o', 'wide'], /^ipam show: -o "wide" is not an output format; use table or json$/],
    [['show', '--blocks'], /^ipam show: Unknown option '--blocks'/],
  ];
  it.each(refusals)('%j is a usage error', (argv, message) => {
    expect(refusals.length).toBeGreaterThan(0);
    expect(() => parseIpamArgs(argv)).toThrow(UsageError);
    expect(() => parseIpamArgs(argv)).toThrow(message);
  });
});

const USAGE: IpamUsageView = {
  pools: [
    { name: 'b', cidr: '10.250.0.0/24', size: 256, allocated: 0, blocks: 0 },
    { name: 'a', cidr: '10.244.0.0/16', size: 65536, allocated: 5, blocks: 3 },
  ],
  blocks: [
    { cidr: '10.244.10.0/26', node: 'node-2', size: 64, allocated: 1, pool: 'a' },
    { cidr: '10.244.2.0/26', node: 'node-1', size: 64, allocated: 4, pool: 'a' },
    { cidr: '10.244.3.0/26', node: null, size: 64, allocated: 0, pool: 'a' },
    { cidr: '10.99.0.0/26', node: 'node-9', size: 64, allocated: 64, pool: 'gone' },
  ],
};

describe('formatIpamUsage', () => {
  it('prints pool usage like calicoctl ipam show', () => {
    expect(formatIpamUsage(USAGE, false)).toBe(
      [
        '+----------+---------------+-----------+------------+--------------+',
        '| GROUPING |     CIDR      | IPS TOTAL | IPS IN USE |   IPS FREE   |',
        '+----------+---------------+-----------+------------+--------------+',
        '| IP Pool  | 10.244.0.0/16 |     65536 | 5 (0%)     | 65531 (100%) |',
        '| IP Pool  | 10.250.0.0/24 |       256 | 0 (0%)     | 256 (100%)   |',
        '+----------+---------------+-----------+------------+--------------+',
        '',
      ].join('\n'),
    );
  });

  it('with --show-blocks lists each pool’s blocks in address order with their node, and orphaned blocks last', () => {
    const lines = formatIpamUsage(USAGE, true).split('\n');
    expect(lines[1]).toBe('|    GROUPING     |      CIDR      |  NODE  | IPS TOTAL | IPS IN USE |   IPS FREE   |');
    expect(lines.slice(3, 9)).toEqual([
      '| IP Pool         | 10.244.0.0/16  |        |     65536 | 5 (0%)     | 65531 (100%) |',
      '| Block           | 10.244.2.0/26  | node-1 |        64 | 4 (6%)     | 60 (94%)     |',
      '| Block           | 10.244.3.0/26  | (none) |        64 | 0 (0%)     | 64 (100%)    |',
      '| Block           | 10.244.10.0/26 | node-2 |        64 | 1 (2%)     | 63 (98%)     |',
      '| IP Pool         | 10.250.0.0/24  |        |       256 | 0 (0%)     | 256 (100%)   |',
      '| Block (no pool) | 10.99.0.0/26   | node-9 |        64 | 64 (100%)  | 0 (0%)       |',
    ]);
  });

  it('says there are no pools instead of an empty box', () => {
    expect(formatIpamUsage({ pools: [], blocks: [] }, true)).toBe(
      'No IP pools; create one with "tortie apply -f pool.yaml"\n',
    );
  });

  it('centres headers and aligns cells as told', () => {
    expect(
      boxTable(
        ['AB', 'C'],
        [
          ['x', '10'],
          ['long', '7'],
        ],
        ['left', 'right'],
      ),
    ).toBe('+------+----+\n|  AB  | C  |\n+------+----+\n| x    | 10 |\n| long |  7 |\n+------+----+\n');
  });
});

describe('runIpamShow with the real Ipam', () => {
  it('shows blocks claimed by two nodes and the IPs assigned in them', async () => {
    const ds = new MemoryDatastore();
    await ds.create({
      apiVersion: 'projectcalico.org/v3',
      kind: 'IPPool',
      metadata: { name: 'pool-a' },
      spec: { cidr: '10.244.0.0/24', blockSize: 26, nodeSelector: 'all()' },
    });
    const ipam = new Ipam(ds);
    await ipam.claimBlock('node-1');
    await ipam.claimBlock('node-2');
    await ipam.assign('node-1', 'pod-a', { count: 3 });
    let out = '';
    const ctx = { out: (t: string) => (out += t), openDatastore: async () => ds, usage: () => new Ipam(ds).usage() };
    expect(await runIpamShow({ showBlocks: true, output: 'table' }, ctx)).toBe(0);
    const rows = out.split('\n').filter((l) => l.startsWith('| Block') || l.startsWith('| IP Pool'));
    expect(rows).toHaveLength(3);
    expect(rows[0]).toMatch(/^\| IP Pool\s+\| 10\.244\.0\.0\/24\s+\|\s+\|\s+256 \| 3 \(1%\)\s+\| 253 \(99%\)\s+\|$/);
    expect(
      rows.slice(1).map((r) =>
        r
          .split('|')
          .map((c) => c.trim())
          .slice(1, 6),
      ),
    ).toEqual([
      ['Block', '10.244.0.0/26', 'node-1', '64', '3 (5%)'],
      ['Block', '10.244.0.64/26', 'node-2', '64', '0 (0%)'],
    ]);
    out = '';
    await runIpamShow({ showBlocks: false, output: 'json' }, ctx);
    const json = JSON.parse(out) as IpamUsageView;
    expect(json.pools).toEqual([{ name: 'pool-a', cidr: '10.244.0.0/24', size: 256, allocated: 3, blocks: 2 }]);
  });
});
