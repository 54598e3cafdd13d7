// FelixDataplane's natOutgoing and kernel-settings parts, on an in-memory kernel, a fake nft and a fake
// /proc/sys (nothing of the host is touched): the pools' natOutgoing reaches `table ip tortie-nat`, a
// change of pools rewrites it and "no NAT pool" removes it, nft monitor events about our table (or one
// nft cannot place) trigger a check while other tables' do not, a table that cannot be written is a status
// warning naming the pools, kernel-settings warnings reach status and are logged once, ip_forward is set
// and logged, and without nft/sysctl given nothing of the kind is attempted.

import { describe, expect, it } from 'vitest';
import { FelixDataplane, type DataplaneInput } from '../../../felix/dataplane.js';
import type { SysctlIo } from '../../../felix/kernel-settings.js';
import { MemoryKernel } from '../../../felix/memory-kernel.js';
import type { NftEvent, NftMonitor } from '../../../felix/nft.js';
import type { NftLike } from '../../../felix/nft-table.js';

class FakeNft implements NftLike {
  scripts: string[] = [];
  lists = 0;
  table: string | null = null;
  fail: string | null = null;
  onEvent: ((e: NftEvent) => void) | null = null;
  monitorStopped = false;
  async apply(script: string): Promise<void> {
    await Promise.resolve();
    if (this.fail !== null) throw new Error(this.fail);
    this.scripts.push(script);
    this.table = script.includes('{') ? script : null;
  }
  async listTable(): Promise<unknown[] | null> {
    this.lists++;
    await Promise.resolve();
    if (this.fail !== null) throw new Error(this.fail);
    return this.table === null ? null : [{ table: { family: 'ip', name: 'tortie-nat' } }]; // never equal: every check writes
  }
  monitor(onEvent: (e: NftEvent) => void): NftMonitor {
    this.onEvent = onEvent;
    return { stop: () => (this.monitorStopped = true) };
  }
}

class FakeProcSys implements SysctlIo {
  writes: string[] = [];
  constructor(public values: Record<string, string>) {}
  async read(): Promise<Record<string, string>> {
    return { ...this.values };
  }
  async write(path: string, value: string): Promise<void> {
    this.writes.push(`${path}=${value}`);
    this.values[path] = value;
  }
}

function recordingLog(): {
  lines: Array<{ level: string; msg: string; fields: Record<string, unknown> }>;
  info: (f: Record<string, unknown>, m: string) => void;
  warn: (f: Record<string, unknown>, m: string) => void;
  error: (f: Record<string, unknown>, m: string) => void;
} {
  const lines: Array<{ level: string; msg: string; fields: Record<string, unknown> }> = [];
  return {
    lines,
    info: (fields, msg) => lines.push({ level: 'info', msg, fields }),
    warn: (fields, msg) => lines.push({ level: 'warn', msg, fields }),
    error: (fields, msg) => lines.push({ level: 'error', msg, fields }),
  };
}

async function flush(): Promise<void> {
  for (let i = 0; i < 50; i++) await new Promise((r) => setImmediate(r));
}

const input = (pools: DataplaneInput['pools']): DataplaneInput => ({
  node: { ip: '198.18.0.11/24', hostInterface: 'eth0' },
  pools,
  localBlocks: [],
  workloads: [],
  bgpRoutes: [],
  tunnel: {},
});

const NAT_POOL = { cidr: '10.244.0.0/16', ipipMode: 'Never' as const, natOutgoing: true };
const PLAIN_POOL = { cidr: '10.96.0.0/16', ipipMode: 'Never' as const };
const HEALTHY = { ip_forward: '1', 'conf/all/rp_filter': '0', 'conf/eth0/rp_filter': '2', 'conf/eth0/forwarding': '1' };

function make(options: { nft?: FakeNft; sysctl?: FakeProcSys } = {}): {
  dp: FelixDataplane;
  log: ReturnType<typeof recordingLog>;
} {
  const log = recordingLog();
  const dp = new FelixDataplane({
    kernel: new MemoryKernel({ links: ['lo', 'eth0'] }),
    log,
    debounceMs: 1,
    retryMs: 60_000,
    ...(options.nft ? { nft: options.nft } : {}),
    ...(options.sysctl ? { sysctl: options.sysctl } : {}),
  });
  return { dp, log };
}

describe('FelixDataplane: natOutgoing', () => {
  it('programs the table from the pools, rewrites it on a change, removes it when no pool wants NAT', async () => {
    const nft = new FakeNft();
    const { dp } = make({ nft });
    dp.update(input([NAT_POOL, PLAIN_POOL]));
    dp.start();
    await flush();
    expect(nft.table).toMatch(/set nat-pools \{[^}]*elements = \{ 10\.244\.0\.0\/16 \}/s);
    expect(nft.table).toMatch(/set all-pools \{[^}]*elements = \{ 10\.96\.0\.0\/16, 10\.244\.0\.0\/16 \}/s);
    expect(dp.status().nat).toMatchObject({
      table: 'ip tortie-nat',
      managed: true,
      natPools: ['10.244.0.0/16'],
      allPools: ['10.96.0.0/16', '10.244.0.0/16'],
    });
    dp.update(input([NAT_POOL, { ...PLAIN_POOL, natOutgoing: true }]));
    await flush();
    expect(nft.table).toMatch(/set nat-pools \{[^}]*elements = \{ 10\.96\.0\.0\/16, 10\.244\.0\.0\/16 \}/s);
    dp.update(input([{ ...NAT_POOL, natOutgoing: false }, PLAIN_POOL]));
    await flush();
    expect(nft.table).toBeNull();
    expect(nft.scripts[nft.scripts.length - 1]).toBe('add table ip tortie-nat\ndelete table ip tortie-nat\n');
    await dp.stop();
    expect(nft.monitorStopped).toBe(true);
  });

  it('monitor events about our table, or unplaceable ones, trigger a check; other tables do not', async () => {
    const nft = new FakeNft();
    const { dp } = make({ nft });
    dp.update(input([NAT_POOL]));
    dp.start();
    await flush();
    const lists = nft.lists;
    nft.onEvent?.({ action: 'add', kind: 'rule', family: 'inet', table: 'tortie-filter', raw: '' });
    nft.onEvent?.({ action: 'add', kind: 'rule', family: 'inet', table: 'tortie-nat', raw: '' }); // another family's table of that name
    await flush();
    expect(nft.lists).toBe(lists);
    nft.onEvent?.({ action: 'delete', kind: 'rule', family: 'ip', table: 'tortie-nat', raw: '' });
    await flush();
    expect(nft.lists).toBeGreaterThan(lists);
    const after = nft.lists;
    nft.onEvent?.({
      action: 'unknown',
      kind: 'unknown',
      family: null,
      table: null,
      raw: 'W: Received event for an unknown set.',
    });
    await flush();
    expect(nft.lists).toBeGreaterThan(after);
    await dp.stop();
  });

  it('a table that cannot be written is a status warning naming the pools', async () => {
    const nft = new FakeNft();
    nft.fail = 'nft refused the script, nothing applied: line 9: ...';
    const { dp } = make({ nft });
    dp.update(input([NAT_POOL]));
    dp.start();
    await flush();
    expect(dp.status().warnings).toContainEqual(
      expect.stringMatching(
        /^natOutgoing: table ip tortie-nat could not be programmed \(nft refused .*\): pods in 10\.244\.0\.0\/16 cannot reach addresses outside the pools$/,
      ),
    );
    expect(dp.status().nat.inSync).toBe(false);
    await dp.stop();
  });

  it('natOutgoing warnings (an IPv6 pool) reach status', async () => {
    const nft = new FakeNft();
    const { dp } = make({ nft });
    dp.update(input([NAT_POOL, { cidr: 'fd00::/48', ipipMode: 'Never', natOutgoing: true }]));
    dp.start();
    await flush();
    expect(dp.status().warnings).toContainEqual(
      expect.stringMatching(/^IPPool fd00::\/48: natOutgoing is not done for IPv6 pools/),
    );
    await dp.stop();
  });

  it('without nft nothing is attempted, and status says natOutgoing is not managed', async () => {
    const { dp } = make();
    dp.update(input([NAT_POOL]));
    dp.start();
    await flush();
    expect(dp.status().nat).toMatchObject({ managed: false, natPools: ['10.244.0.0/16'] });
    await expect(dp.settleNat()).rejects.toThrow(/not managed/);
    await dp.stop();
  });
});

describe('FelixDataplane: kernel settings', () => {
  it('sets ip_forward at start and logs it; a later problem is a status warning, logged once', async () => {
    const sysctl = new FakeProcSys({ ...HEALTHY, ip_forward: '0' });
    const { dp, log } = make({ sysctl });
    dp.update(input([PLAIN_POOL]));
    dp.start();
    await flush();
    expect(sysctl.writes).toEqual(['ip_forward=1']);
    expect(log.lines.filter((l) => /ip_forward was 0: .*felix set it to 1/.test(l.msg)).length).toBe(1);
    expect(dp.status().kernelSettings.warnings).toEqual([]);
    expect(dp.status().kernelSettings.checkedAt).not.toBeNull();

    sysctl.values['conf/eth0/rp_filter'] = '1';
    await dp.checkKernelSettings();
    await dp.checkKernelSettings();
    const warning = dp.status().warnings.find((w) => w.startsWith('rp_filter is 1'));
    expect(warning).toMatch(/host interface eth0/);
    expect(log.lines.filter((l) => l.fields.warning === warning).length).toBe(1);
    sysctl.values['conf/eth0/rp_filter'] = '2';
    await dp.checkKernelSettings();
    expect(dp.status().warnings.filter((w) => w.startsWith('rp_filter'))).toEqual([]);
    await dp.stop();
  });

  it('waits for the first update (it needs the host interface) when started before one', async () => {
    const sysctl = new FakeProcSys({ ...HEALTHY });
    const reads: number[] = [];
    const read = sysctl.read.bind(sysctl);
    sysctl.read = async () => {
      reads.push(1);
      return read();
    };
    const { dp } = make({ sysctl });
    dp.start();
    await flush();
    expect(reads.length).toBe(0);
    dp.update(input([PLAIN_POOL]));
    await flush();
    expect(reads.length).toBe(1);
    await dp.stop();
  });
});
