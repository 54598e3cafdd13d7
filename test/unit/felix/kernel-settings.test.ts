// felix/kernel-settings.ts, table-tested on readings as `grep -H .` prints them: what is reported, what
// felix writes itself (ip_forward only), effective values (rp_filter: the larger of all and the interface;
// proxy_arp: either), many cali* folded into one warning; ensureKernelSettings on a fake /proc/sys: the
// write, the re-read, a failed write and an unreadable /proc/sys become warnings, never exceptions.

import { describe, expect, it } from 'vitest';
import {
  checkKernelSettings,
  ensureKernelSettings,
  interfacesIn,
  parseSysctlLines,
  type SysctlIo,
} from '../../../felix/kernel-settings.js';

/** A healthy node: ip_forward on, loose rp_filter, cali* set up as the CNI plugin does. */
function healthy(extra: Record<string, string> = {}): Record<string, string> {
  return {
    ip_forward: '1',
    'conf/all/forwarding': '1',
    'conf/all/rp_filter': '0',
    'conf/all/proxy_arp': '0',
    'conf/default/rp_filter': '1',
    'conf/eth0/forwarding': '1',
    'conf/eth0/rp_filter': '2',
    'conf/eth0/proxy_arp': '0',
    'conf/lo/rp_filter': '1',
    'conf/cali1234567890a/forwarding': '1',
    'conf/cali1234567890a/rp_filter': '1',
    'conf/cali1234567890a/proxy_arp': '1',
    ...extra,
  };
}

const input = { hostInterface: 'eth0' };

describe('checkKernelSettings', () => {
  const cases: Array<{
    name: string;
    values: Record<string, string>;
    warnings: RegExp[];
    writes?: string[];
    hostInterface?: string;
  }> = [
    { name: 'a healthy node: nothing', values: healthy(), warnings: [] },
    {
      name: 'strict rp_filter on cali* is compatible with the /32 routes: nothing',
      values: healthy({ 'conf/cali1234567890a/rp_filter': '1', 'conf/all/rp_filter': '0' }),
      warnings: [],
    },
    {
      name: 'ip_forward 0: felix writes it, no warning',
      values: healthy({ ip_forward: '0' }),
      warnings: [],
      writes: ['ip_forward=1'],
    },
    {
      name: 'strict rp_filter on the host interface',
      values: healthy({ 'conf/eth0/rp_filter': '1' }),
      warnings: [
        /^rp_filter is 1 \(the larger of conf\/all and the interface's own\) on the host interface eth0, wanted 0 or 2 \(loose\): strict .*\(fix: sysctl -w net\.ipv4\.conf\.eth0\.rp_filter=2\)$/,
      ],
    },
    {
      name: 'strict through conf/all although the interface says 0',
      values: healthy({ 'conf/eth0/rp_filter': '0', 'conf/all/rp_filter': '1' }),
      warnings: [/^rp_filter is 1 .* on the host interface eth0/],
    },
    {
      name: 'conf/all 1 but the interface loose: the larger (2) wins, fine',
      values: healthy({ 'conf/all/rp_filter': '1', 'conf/eth0/rp_filter': '2' }),
      warnings: [],
    },
    {
      name: 'tunl0 is checked like the host interface when it exists',
      values: healthy({ 'conf/tunl0/rp_filter': '1', 'conf/tunl0/forwarding': '1' }),
      warnings: [/^rp_filter is 1 .* on the host interface tunl0/],
    },
    {
      name: 'forwarding off on the host interface',
      values: healthy({ 'conf/eth0/forwarding': '0' }),
      warnings: [
        /^forwarding is 0 on the host interface eth0, wanted 1: .*not forwarded \(fix: sysctl -w net\.ipv4\.conf\.eth0\.forwarding=1\)$/,
      ],
    },
    {
      name: 'proxy_arp off on a cali*',
      values: healthy({ 'conf/cali1234567890a/proxy_arp': '0' }),
      warnings: [
        /^proxy_arp is 0 \(conf\/all or the interface's own\) on workload interface cali1234567890a, wanted 1: .*permanent neighbour entry.*\(fix: sysctl -w net\.ipv4\.conf\.cali1234567890a\.proxy_arp=1\)$/,
      ],
    },
    {
      name: 'proxy_arp off on the cali* but on in conf/all: fine',
      values: healthy({ 'conf/cali1234567890a/proxy_arp': '0', 'conf/all/proxy_arp': '1' }),
      warnings: [],
    },
    {
      name: 'many cali* without proxy_arp: one warning listing five and the count of the rest',
      values: healthy(
        Object.fromEntries(Array.from({ length: 8 }, (_, i) => [`conf/cali00000000${i}0/proxy_arp`, '0'])),
      ),
      warnings: [
        /^proxy_arp is 0 .* on workload interfaces cali0000000000, cali0000000010, cali0000000020, cali0000000030, cali0000000040 \(and 3 more\), wanted 1/,
      ],
    },
    {
      name: 'forwarding off on a cali*',
      values: healthy({ 'conf/cali1234567890a/forwarding': '0' }),
      warnings: [
        /^forwarding is 0 on workload interface cali1234567890a, wanted 1: the pods' packets are not forwarded/,
      ],
    },
    {
      name: 'a dotted (VLAN) host interface gets the slash form of the sysctl key',
      hostInterface: 'eth0.100',
      values: healthy({ 'conf/eth0.100/rp_filter': '1', 'conf/eth0.100/forwarding': '1' }),
      warnings: [/\(fix: sysctl -w net\/ipv4\/conf\/eth0\.100\/rp_filter=2\)$/],
    },
    {
      name: 'a host interface that is not there',
      hostInterface: 'ens9',
      values: healthy(),
      warnings: [/^host interface ens9: \/proc\/sys\/net\/ipv4\/conf\/ens9 does not exist in this network namespace/],
    },
    {
      name: 'ip_forward unreadable',
      values: (() => {
        const v = healthy();
        delete v.ip_forward;
        return v;
      })(),
      warnings: [/^net\.ipv4\.ip_forward could not be read/],
    },
    {
      name: 'several problems at once, in table order',
      values: healthy({ ip_forward: '0', 'conf/eth0/rp_filter': '1', 'conf/cali1234567890a/proxy_arp': '0' }),
      warnings: [/^rp_filter is 1/, /^proxy_arp is 0/],
      writes: ['ip_forward=1'],
    },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const result = checkKernelSettings(c.values, { hostInterface: c.hostInterface ?? 'eth0' });
      expect(result.warnings.length, result.warnings.join('\n')).toBe(c.warnings.length);
      for (const [i, re] of c.warnings.entries()) expect(result.warnings[i]).toMatch(re);
      expect(result.writes.map((w) => `${w.path}=${w.value}`)).toEqual(c.writes ?? []);
    });
  }
});

describe('parsing', () => {
  it('parses grep -H output, interface names with dots included', () => {
    const values = parseSysctlLines('ip_forward:1\nconf/eth0.100/rp_filter:2\nconf/cali1/proxy_arp:1\n\nnot a line\n');
    expect(values).toEqual({ ip_forward: '1', 'conf/eth0.100/rp_filter': '2', 'conf/cali1/proxy_arp': '1' });
    expect(interfacesIn({ ...values, 'conf/all/rp_filter': '0', 'conf/default/rp_filter': '1' })).toEqual([
      'cali1',
      'eth0.100',
    ]);
  });
});

class FakeProcSys implements SysctlIo {
  writes: string[] = [];
  failWrite = false;
  ignoreWrite = false;
  failRead = false;
  constructor(public values: Record<string, string>) {}
  async read(): Promise<Record<string, string>> {
    if (this.failRead) throw new Error('cannot read /proc/sys/net/ipv4 (exit 2): permission denied');
    return { ...this.values };
  }
  async write(path: string, value: string): Promise<void> {
    if (this.failWrite)
      throw new Error(`writing ${value} to /proc/sys/net/ipv4/${path} failed (exit 1): Read-only file system`);
    this.writes.push(`${path}=${value}`);
    if (this.ignoreWrite) return;
    this.values[path] = value;
    // Like the kernel: ip_forward=1 turns on every interface's forwarding.
    if (path === 'ip_forward')
      for (const k of Object.keys(this.values)) if (k.endsWith('/forwarding')) this.values[k] = value;
  }
}

function recordingLog(): {
  lines: string[];
  info: (f: Record<string, unknown>, m: string) => void;
  warn: (f: Record<string, unknown>, m: string) => void;
} {
  const lines: string[] = [];
  return { lines, info: (_f, m) => lines.push(m), warn: (_f, m) => lines.push(m) };
}

describe('ensureKernelSettings', () => {
  it('sets ip_forward, says so in the log, and reads again (forwarding followed it)', async () => {
    const io = new FakeProcSys(
      healthy({ ip_forward: '0', 'conf/eth0/forwarding': '0', 'conf/cali1234567890a/forwarding': '0' }),
    );
    const log = recordingLog();
    expect(await ensureKernelSettings(io, input, log)).toEqual([]);
    expect(io.writes).toEqual(['ip_forward=1']);
    expect(log.lines).toEqual([expect.stringMatching(/^net\.ipv4\.ip_forward was 0: .*; felix set it to 1$/)]);
  });

  it('nothing to write on a healthy node', async () => {
    const io = new FakeProcSys(healthy());
    const log = recordingLog();
    expect(await ensureKernelSettings(io, input, log)).toEqual([]);
    expect(io.writes).toEqual([]);
    expect(log.lines).toEqual([]);
  });

  it('a failed write is a warning naming the setting and the error', async () => {
    const io = new FakeProcSys(healthy({ ip_forward: '0' }));
    io.failWrite = true;
    const warnings = await ensureKernelSettings(io, input, recordingLog());
    expect(warnings).toEqual([
      expect.stringMatching(
        /^net\.ipv4\.ip_forward was 0: .*, and felix could not set it to 1: .*Read-only file system$/,
      ),
    ]);
  });

  it('a write that does not take is a warning', async () => {
    const io = new FakeProcSys(healthy({ ip_forward: '0' }));
    io.ignoreWrite = true;
    const warnings = await ensureKernelSettings(io, input, recordingLog());
    expect(warnings).toEqual([expect.stringMatching(/felix wrote 1 but it reads back unchanged$/)]);
  });

  it('an unreadable /proc/sys is a warning, not an exception', async () => {
    const io = new FakeProcSys(healthy());
    io.failRead = true;
    expect(await ensureKernelSettings(io, input, recordingLog())).toEqual([
      expect.stringMatching(/^kernel settings .* could not be checked: cannot read/),
    ]);
  });
});
