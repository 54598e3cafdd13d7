// tortie ipam check: flags, the text report (calicoctl's "Found N ..." lines and a boxed problem table),
// --show-problem-ips / --show-all-ips, the JSON report of -o, and the exit status (0 clean, 1 problems),
// with the real checker (src/ipam/check.ts) over MemoryDatastore built through the real Ipam.

import { describe, expect, it } from 'vitest';
import { parseIpamCommand, runIpamCheck, type IpamCheckArgs } from '../../../src/cli/ipam-command.js';
import { UsageError } from '../../../src/cli/usage-error.js';
import { MemoryDatastore } from '../../../src/datastore/memory.js';
import { checkIpam, readCheckSnapshot } from '../../../src/ipam/check.js';
import { Ipam, ipipTunnelHandle } from '../../../src/ipam/index.js';
import { API_VERSION } from '../../../src/resources/types.js';

describe('parseIpamCommand check', () => {
  it('reads --show-all-ips, --show-problem-ips, -o and -c', () => {
    expect(parseIpamCommand(['check'])).toEqual({ sub: 'check', showAllIps: false, showProblemIps: false });
    expect(parseIpamCommand(['check', '--show-all-ips', '--show-problem-ips', '-o', 'r.json', '-c', '/x.cfg'])).toEqual(
      {
        sub: 'check',
        showAllIps: true,
        showProblemIps: true,
        outputFile: 'r.json',
        config: '/x.cfg',
      },
    );
    expect(parseIpamCommand(['show', '--show-blocks'])).toEqual({ sub: 'show', showBlocks: true, output: 'table' });
  });

  const refusals: Array<[string[], RegExp]> = [
    [['check', '--show-blocks'], /^ipam check: Unknown option '--show-blocks'/],
    [['check', '-o'], /^ipam check: Option '-o, --output <value>' argument missing/],
    [['check', '-o', ''], /^ipam check: -o needs a file name/],
    [['check', 'extra'], /^ipam check: Unexpected argument 'extra'/],
    [['checks'], /^ipam: unknown subcommand "checks"; use "ipam show" or "ipam check"/],
  ];
  it.each(refusals)('%j is a usage error', (argv, message) => {
    expect(refusals.length).toBeGreaterThan(0);
    expect(() => parseIpamCommand(argv)).toThrow(UsageError);
    expect(() => parseIpamCommand(argv)).toThrow(message);
  });
});

async function cluster(): Promise<MemoryDatastore> {
  const ds = new MemoryDatastore();
  await ds.create({
    apiVersion: API_VERSION,
    kind: 'IPPool',
    metadata: { name: 'pool-a' },
    spec: { cidr: '10.244.0.0/24', blockSize: 26, nodeSelector: 'all()' },
  });
  const ipam = new Ipam(ds);
  const [tunnel] = await ipam.assign('node-1', ipipTunnelHandle('node-1'), { use: 'Tunnel' });
  await ds.create({
    apiVersion: API_VERSION,
    kind: 'Node',
    metadata: { name: 'node-1' },
    spec: { bgp: { ipv4Address: '198.18.0.1/24', ipv4IPIPTunnelAddr: tunnel! } },
  });
  const [ip] = await ipam.assign('node-1', 'k8s-pod-network.web', { attributes: { namespace: 'default', pod: 'web' } });
  await ds.create({
    apiVersion: API_VERSION,
    kind: 'WorkloadEndpoint',
    metadata: { name: 'node-1-k8s-web-eth0', namespace: 'default' },
    spec: { node: 'node-1', pod: 'web', interfaceName: 'cali0', ipNetworks: [`${ip!}/32`] },
  });
  return ds;
}

async function run(
  ds: MemoryDatastore,
  args: Partial<IpamCheckArgs> = {},
): Promise<{ code: number; out: string; files: Map<string, string>; closed: boolean }> {
  let out = '';
  let closed = false;
  const files = new Map<string, string>();
  const handle = Object.assign(Object.create(ds) as MemoryDatastore, { close: async () => void (closed = true) });
  const code = await runIpamCheck(
    { showAllIps: false, showProblemIps: false, ...args },
    {
      out: (t) => (out += t),
      openDatastore: async () => handle,
      check: async (d) => checkIpam(await readCheckSnapshot(d)),
      writeFile: async (path, text) => void files.set(path, text),
      now: () => new Date('2026-01-02T03:04:05Z'),
    },
  );
  return { code, out, files, closed };
}

describe('runIpamCheck', () => {
  it('a clean cluster: the counts, no table, exit 0, the datastore closed', async () => {
    const r = await run(await cluster());
    expect(r.code).toBe(0);
    expect(r.closed).toBe(true);
    expect(r.out).toContain(
      'Found 1 active IP pools (0 disabled).\nFound 1 IPAM blocks; they record 2 allocations.\nFound 1 nodes and 1 node tunnel IPs.\nFound 1 workload IPs.\nWorkloads and nodes are using 2 IPs.\n',
    );
    expect(r.out).toContain('Found 0 IPs that are allocated in IPAM but not in use by a workload or node (leaked).\n');
    expect(r.out).not.toContain('+--');
    expect(r.out.endsWith('\nCheck complete; found 0 problems.\n')).toBe(true);
  });

  it('a leaked address and an orphan affinity: exit 1; the address only with --show-problem-ips', async () => {
    const ds = await cluster();
    await ds.delete('WorkloadEndpoint', 'node-1-k8s-web-eth0', { namespace: 'default' });
    await ds.create({
      apiVersion: API_VERSION,
      kind: 'BlockAffinity',
      metadata: { name: 'gone-10-244-0-192-26' },
      spec: { state: 'confirmed', node: 'gone', cidr: '10.244.0.192/26' },
    });
    const plain = await run(ds);
    expect(plain.code).toBe(1);
    expect(plain.out).toContain(
      'Found 1 IPs that are allocated in IPAM but not in use by a workload or node (leaked).\n',
    );
    expect(plain.out).toContain('Found 1 BlockAffinities without their block.\n');
    const rows = plain.out.split('\n').filter((l) => l.startsWith('| '));
    expect(
      rows[0]!
        .split('|')
        .map((c) => c.trim())
        .slice(1, -1),
    ).toEqual(['#', 'PROBLEM', 'OBJECT', 'ADDRESS/HANDLE', 'DETAIL']);
    expect(
      rows.slice(1).map((r) =>
        r
          .split('|')
          .map((c) => c.trim())
          .slice(1, 4),
      ),
    ).toEqual([['1', 'affinity without block', 'BlockAffinity gone-10-244-0-192-26']]);
    expect(plain.out).toContain(
      'What to do:\n  1: node gone no longer exists: `tortie delete node gone` releases what it left\n',
    );
    expect(plain.out).toContain('1 problem IP(s) not listed: run with --show-problem-ips');
    expect(plain.out).toContain('Check complete; found 2 problems.\n');

    const shown = await run(ds, { showProblemIps: true });
    expect(shown.code).toBe(1);
    const cells = shown.out
      .split('\n')
      .filter((l) => /^\| +1 \| leaked/.test(l))[0]!
      .split('|')
      .map((c) => c.trim());
    expect(cells.slice(2, 6)).toEqual([
      'leaked',
      'IPAMBlock 10.244.0.0/26',
      '10.244.0.1',
      'assigned on node node-1 for pod default/web; no workload endpoint holds it',
    ]);
    expect(shown.out).toMatch(
      /\n {2}1: a pod being created has its address before its endpoint: run again; .*\n {2}2: node gone no longer exists/,
    );
    expect(shown.out).not.toContain('not listed');
  });

  it('--show-all-ips lists every address with its allocation and owner', async () => {
    const r = await run(await cluster(), { showAllIps: true });
    const rows = r.out
      .split('\n')
      .filter((l) => /^\| 10\./.test(l))
      .map((l) =>
        l
          .split('|')
          .map((c) => c.trim())
          .slice(1, -1),
      );
    expect(rows).toEqual([
      ['10.244.0.0', '10.244.0.0/26', 'ipip-tunnel-addr-node-1', 'node=node-1 type=ipipTunnelAddress', 'Node(node-1)'],
      [
        '10.244.0.1',
        '10.244.0.0/26',
        'k8s-pod-network.web',
        'node=node-1 pod=default/web',
        'Workload(default/node-1-k8s-web-eth0)',
      ],
    ]);
  });

  it('-o FILE writes the report as JSON (and still prints the text)', async () => {
    const ds = await cluster();
    await ds.delete('WorkloadEndpoint', 'node-1-k8s-web-eth0', { namespace: 'default' });
    const r = await run(ds, { outputFile: '/tmp/r.json' });
    expect(r.code).toBe(1);
    expect(r.out).toContain('Report written to /tmp/r.json.\n');
    const json = JSON.parse(r.files.get('/tmp/r.json')!) as {
      checkedAt: string;
      problems: number;
      findings: Array<{ kind: string; address: string }>;
      allocations: Record<string, Array<{ inUse: boolean; handle: string }>>;
    };
    expect(json.checkedAt).toBe('2026-01-02T03:04:05.000Z');
    expect(json.problems).toBe(1);
    expect(json.findings.map((f) => [f.kind, f.address])).toEqual([['leaked-address', '10.244.0.1']]);
    expect(Object.keys(json.allocations)).toEqual(['10.244.0.0', '10.244.0.1']);
    expect(json.allocations['10.244.0.1']![0]).toMatchObject({ inUse: false, handle: 'k8s-pod-network.web' });
  });

  it('a report that cannot be written is an error naming the file', async () => {
    let out = '';
    const ds = await cluster();
    await expect(
      runIpamCheck(
        { showAllIps: false, showProblemIps: false, outputFile: '/nope/r.json' },
        {
          out: (t) => (out += t),
          openDatastore: async () => ds,
          check: async (d) => checkIpam(await readCheckSnapshot(d)),
          writeFile: async () => Promise.reject(new Error('ENOENT')),
          now: () => new Date(),
        },
      ),
    ).rejects.toThrow('ipam check: could not write the report to -o "/nope/r.json": ENOENT');
    expect(out).toContain('Check complete');
  });
});
