// ipip/tunl0.ts without a kernel: the error table, JSON parsing (captured from real `ip` runs), the pure
// plan, and ensureTunl0/checkIpip against a small fake of `ip` that keeps a table of devices.

import { describe, expect, it } from 'vitest';
import {
  IP_ERRORS,
  Tunl0Error,
  Tunl0Keeper,
  checkIpip,
  classifyIpError,
  clearTunl0Addresses,
  describeStep,
  ensureTunl0,
  ipipSupported,
  normalizeTunnelAddress,
  parseTunl0Json,
  planTunl0,
  stepArgs,
  tunl0Mtu,
  type ObservedTunl0,
} from '../../../ipip/tunl0.js';
import { ipCommand } from '../../../felix/ip-command.js';
import { fakeIp } from '../helpers/fake-ip.js';

// Captured: `ip -n p1 -details -json addr show dev tunl0` inside the Debian 6.1 VM (real ipip, after
// `link set tunl0 mtu 1440 up` and `addr add 10.244.1.1/32`).
const REAL_IPIP_JSON =
  '[{"ifindex":2,"link":null,"ifname":"tunl0","flags":["NOARP","UP","LOWER_UP"],"mtu":1440,"qdisc":"noqueue","operstate":"UNKNOWN","group":"default","txqlen":1000,"link_type":"ipip","address":"0.0.0.0","broadcast":"0.0.0.0","promiscuity":0,"allmulti":0,"min_mtu":0,"max_mtu":0,"linkinfo":{"info_kind":"ipip","info_data":{"proto":"any","remote":"any","local":"any","ttl":0,"pmtudisc":false}},"num_tx_queues":1,"num_rx_queues":1,"gso_max_size":65536,"gso_max_segs":65535,"tso_max_size":65536,"tso_max_segs":65535,"gro_max_size":65536,"addr_info":[{"family":"inet","local":"10.244.1.1","prefixlen":32,"scope":"global","label":"tunl0","valid_life_time":4294967295,"preferred_life_time":4294967295}]}]';
// Captured on this machine: a veth named tunl0 standing in, down, MTU 1500, no address.
const VETH_STANDIN_JSON =
  '[{"ifindex":3,"link":"tunl0p","ifname":"tunl0","flags":["BROADCAST","MULTICAST","M-DOWN"],"mtu":1500,"qdisc":"noop","operstate":"DOWN","linkmode":"DEFAULT","group":"default","txqlen":1000,"link_type":"ether","address":"52:a8:20:48:97:45","broadcast":"ff:ff:ff:ff:ff:ff","promiscuity":0,"allmulti":0,"min_mtu":68,"max_mtu":65535,"linkinfo":{"info_kind":"veth"},"addr_info":[]}]';

describe('IP_ERRORS', () => {
  it('has rows, and every row classifies its own example as its kind', () => {
    expect(IP_ERRORS.length).toBeGreaterThan(0);
    for (const row of IP_ERRORS) expect(classifyIpError(row.example)).toBe(row.kind);
  });

  it('reads the answers this machine and the VM really gave', () => {
    expect(classifyIpError('Error: Unknown device type.\n')).toBe('no-ipip');
    expect(classifyIpError('RTNETLINK answers: File exists\n')).toBe('exists');
    expect(classifyIpError('Device "tunl0" does not exist.\n')).toBe('no-device');
    expect(classifyIpError('something new\n')).toBe('other');
  });
});

describe('parseTunl0Json', () => {
  it('reads a real ipip tunl0', () => {
    expect(parseTunl0Json(REAL_IPIP_JSON)).toEqual({ kind: 'ipip', mtu: 1440, up: true, addresses: ['10.244.1.1/32'] });
  });

  it('reads a veth stand-in (UP flag absent, no addresses)', () => {
    expect(parseTunl0Json(VETH_STANDIN_JSON)).toEqual({ kind: 'veth', mtu: 1500, up: false, addresses: [] });
  });

  it('keeps IPv4 only, with their prefix lengths', () => {
    const json = JSON.stringify([
      {
        ifname: 'tunl0',
        flags: ['UP'],
        mtu: 1480,
        linkinfo: { info_kind: 'ipip' },
        addr_info: [
          { family: 'inet', local: '10.0.0.1', prefixlen: 24 },
          { family: 'inet6', local: 'fe80::1', prefixlen: 64 },
          { family: 'inet', local: '10.244.1.1', prefixlen: 32 },
        ],
      },
    ]);
    expect(parseTunl0Json(json)?.addresses).toEqual(['10.0.0.1/24', '10.244.1.1/32']);
  });

  it('answers null when tunl0 is not in the list, and refuses non-JSON', () => {
    expect(parseTunl0Json('[]')).toBeNull();
    expect(() => parseTunl0Json('Device "tunl0" does not exist.')).toThrow(/not JSON/);
  });
});

describe('desired state', () => {
  it('normalizes the tunnel address to /32 and names the value when refusing', () => {
    expect(normalizeTunnelAddress('10.244.1.1')).toBe('10.244.1.1/32');
    expect(normalizeTunnelAddress('10.244.1.1/32')).toBe('10.244.1.1/32');
    expect(() => normalizeTunnelAddress('10.244.1.1/26')).toThrow(/"10.244.1.1\/26".*\/26.*10.244.1.1\/32/);
    expect(() => normalizeTunnelAddress('10.244.1')).toThrow(/"10.244.1" is not an IPv4 address/);
  });

  it('takes FELIX_IPINIPMTU first, else host MTU − 20, else leaves the MTU alone', () => {
    expect(tunl0Mtu({ mtu: 1440, hostMtu: 9000 })).toBe(1440);
    expect(tunl0Mtu({ hostMtu: 1500 })).toBe(1480);
    expect(tunl0Mtu({ hostMtu: 9001 })).toBe(8981);
    expect(tunl0Mtu({})).toBeUndefined();
    expect(() => tunl0Mtu({ mtu: 40 })).toThrow(/mtu \(FELIX_IPINIPMTU\) = 40 .*68\.\.65535/);
    expect(() => tunl0Mtu({ hostMtu: 80 })).toThrow(/hostMtu 80 − 20 = 60/);
    expect(() => tunl0Mtu({ mtu: 1480.5 })).toThrow(/whole number/);
  });
});

describe('planTunl0', () => {
  const good: ObservedTunl0 = { kind: 'ipip', mtu: 1480, up: true, addresses: ['10.244.1.1/32'] };

  it('plans nothing when nothing differs', () => {
    expect(planTunl0(good, { address: '10.244.1.1/32', mtu: 1480 })).toEqual([]);
    expect(planTunl0(good, { address: undefined, mtu: undefined })).toEqual([]);
  });

  it('removes strays first, then MTU, then our address, then up', () => {
    const drifted: ObservedTunl0 = {
      kind: 'ipip',
      mtu: 1500,
      up: false,
      addresses: ['10.244.9.9/32', '10.244.1.1/24'],
    };
    const steps = planTunl0(drifted, { address: '10.244.1.1/32', mtu: 1480 });
    expect(steps).toEqual([
      { op: 'del-address', address: '10.244.9.9/32' },
      { op: 'del-address', address: '10.244.1.1/24' },
      { op: 'set-mtu', mtu: 1480, from: 1500 },
      { op: 'add-address', address: '10.244.1.1/32' },
      { op: 'set-up' },
    ]);
    expect(steps.map(describeStep)).toEqual([
      'removed address 10.244.9.9/32',
      'removed address 10.244.1.1/24',
      'MTU 1500 → 1480',
      'added address 10.244.1.1/32',
      'set up',
    ]);
    expect(steps.map(stepArgs)).toEqual([
      ['addr', 'del', '10.244.9.9/32', 'dev', 'tunl0'],
      ['addr', 'del', '10.244.1.1/24', 'dev', 'tunl0'],
      ['link', 'set', 'dev', 'tunl0', 'mtu', '1480'],
      ['addr', 'add', '10.244.1.1/32', 'dev', 'tunl0'],
      ['link', 'set', 'dev', 'tunl0', 'up'],
    ]);
  });

  it('address undefined leaves addresses alone; null removes every IPv4 address', () => {
    const withTwo: ObservedTunl0 = { ...good, addresses: ['10.244.1.1/32', '10.0.0.7/32'] };
    expect(planTunl0(withTwo, { address: undefined, mtu: undefined })).toEqual([]);
    expect(planTunl0(withTwo, { address: null, mtu: undefined })).toEqual([
      { op: 'del-address', address: '10.244.1.1/32' },
      { op: 'del-address', address: '10.0.0.7/32' },
    ]);
  });
});

// ---------------------------------------------------------------------------------------------------
// A fake `ip`: a table of devices, answering exactly the commands tunl0.ts issues, with ip's own words.

describe('ensureTunl0', () => {
  it('reports a kernel without IPIP as unsupported, clearly, without throwing', async () => {
    const fake = fakeIp({ ipip: false });
    const status = await ensureTunl0({ address: '10.244.1.1', hostMtu: 1500 }, { ip: fake.ip });
    expect(status.supported).toBe(false);
    if (status.supported) return;
    expect(status.reason).toMatch(
      /kernel has no IPIP support.*Unknown device type.*modprobe ipip.*tunnel routes are skipped/,
    );
    expect(fake.calls).toEqual(['-details -json addr show dev tunl0', 'link add tunl0 type ipip']);
  });

  it('creates tunl0 and sets address, MTU (host − 20) and up', async () => {
    const fake = fakeIp({ ipip: true });
    const status = await ensureTunl0({ address: '10.244.1.1', hostMtu: 9000 }, { ip: fake.ip });
    expect(status).toEqual({
      supported: true,
      standIn: false,
      created: true,
      repaired: ['MTU 1480 → 8980', 'added address 10.244.1.1/32', 'set up'],
      device: { kind: 'ipip', mtu: 8980, up: true, addresses: ['10.244.1.1/32'] },
    });
  });

  it('treats "File exists" from a kernel that made the fallback tunl0 itself as success', async () => {
    const fake = fakeIp({ ipip: true, fallbackTunl0: true });
    const status = await ensureTunl0({ address: '10.244.1.1/32' }, { ip: fake.ip });
    expect(status.supported && status.created).toBe(false);
    expect(status.supported && status.device).toEqual({
      kind: 'ipip',
      mtu: 1480,
      up: true,
      addresses: ['10.244.1.1/32'],
    });
  });

  it('repairs drift on a second call and changes nothing on a third', async () => {
    const fake = fakeIp({ ipip: true });
    await ensureTunl0({ address: '10.244.1.1', mtu: 1440 }, { ip: fake.ip });
    const tunl0 = fake.devices.get('tunl0');
    if (!tunl0) throw new Error('fake has no tunl0');
    tunl0.mtu = 1500;
    tunl0.up = false;
    tunl0.addresses = ['10.244.7.7/32'];
    const repaired = await ensureTunl0({ address: '10.244.1.1', mtu: 1440 }, { ip: fake.ip });
    expect(repaired.supported && repaired.repaired).toEqual([
      'removed address 10.244.7.7/32',
      'MTU 1500 → 1440',
      'added address 10.244.1.1/32',
      'set up',
    ]);
    fake.calls.length = 0;
    const again = await ensureTunl0({ address: '10.244.1.1', mtu: 1440 }, { ip: fake.ip });
    expect(again.supported && again.repaired).toEqual([]);
    expect(fake.calls).toEqual(['-details -json addr show dev tunl0']);
  });

  it('refuses a stand-in tunl0 by default and manages it when asked', async () => {
    const fake = fakeIp({ ipip: false });
    fake.devices.set('tunl0', { kind: 'veth', mtu: 1500, up: false, addresses: [] });
    const refused = await ensureTunl0({ address: '10.244.1.1', hostMtu: 1500 }, { ip: fake.ip });
    expect(refused.supported).toBe(false);
    expect(!refused.supported && refused.reason).toMatch(/"veth" device, not an IPIP tunnel/);
    expect(fake.devices.get('tunl0')).toEqual({ kind: 'veth', mtu: 1500, up: false, addresses: [] });

    const managed = await ensureTunl0({ address: '10.244.1.1', hostMtu: 1500, standIn: 'manage' }, { ip: fake.ip });
    expect(managed.supported && managed.standIn).toBe(true);
    expect(fake.devices.get('tunl0')).toEqual({ kind: 'veth', mtu: 1480, up: true, addresses: ['10.244.1.1/32'] });
  });

  it('throws a Tunl0Error naming the command when ip fails for another reason', async () => {
    const fake = fakeIp({
      ipip: true,
      failNext: { code: 1, stdout: '', stderr: 'Cannot open network namespace "gone": No such file or directory\n' },
    });
    const attempt = ensureTunl0({}, { ip: fake.ip });
    await expect(attempt).rejects.toBeInstanceOf(Tunl0Error);
    await expect(attempt).rejects.toThrow(
      /"ip -details -json addr show dev tunl0" failed \(exit 1\): Cannot open network namespace.*does not exist/,
    );
  });

  it('throws when the kernel does not keep a change (verified by reading back)', async () => {
    const fake = fakeIp({ ipip: true, ignoreMtu: true });
    await expect(ensureTunl0({ mtu: 1400 }, { ip: fake.ip })).rejects.toThrow(
      /still differs after repair: MTU 1480 → 1400 still needed/,
    );
  });

  it('refuses bad options before touching anything', async () => {
    const fake = fakeIp({ ipip: true });
    await expect(ensureTunl0({ address: '10.244.1.0/26' }, { ip: fake.ip })).rejects.toThrow(/prefix length \/26/);
    expect(fake.calls).toEqual([]);
    expect(() => ipCommand({ netns: '-bad' })).toThrow(/netns "-bad" is not a network namespace name/);
  });
});

describe('clearTunl0Addresses (no IPIP pool any more)', () => {
  it('takes every IPv4 address off a real ipip tunl0 and leaves the device', async () => {
    const fake = fakeIp({ ipip: true });
    await ensureTunl0({ address: '10.244.1.1', mtu: 1440 }, { ip: fake.ip });
    fake.devices.get('tunl0')!.addresses.push('10.244.9.9/32');
    expect(await clearTunl0Addresses(undefined, { ip: fake.ip })).toEqual(['10.244.1.1/32', '10.244.9.9/32']);
    expect(fake.devices.get('tunl0')).toMatchObject({ kind: 'ipip', mtu: 1440, up: true, addresses: [] });
    expect(await clearTunl0Addresses(undefined, { ip: fake.ip })).toEqual([]);
  });

  it('creates nothing, and never touches a stand-in that is not an ipip device', async () => {
    const none = fakeIp({ ipip: true });
    expect(await clearTunl0Addresses(undefined, { ip: none.ip })).toEqual([]);
    expect(none.devices.has('tunl0')).toBe(false);
    const standIn = fakeIp({ ipip: false });
    standIn.devices.set('tunl0', { kind: 'veth', mtu: 1500, up: true, addresses: ['10.244.1.1/32'] });
    expect(await clearTunl0Addresses(undefined, { ip: standIn.ip })).toEqual([]);
    expect(standIn.devices.get('tunl0')!.addresses).toEqual(['10.244.1.1/32']);
  });

  it('the keeper forgets its status and logs what went', async () => {
    const fake = fakeIp({ ipip: true });
    const lines: string[] = [];
    const keeper = new Tunl0Keeper(
      { address: '10.244.1.1' },
      { info: (_f, m) => lines.push(String(m)), warn: () => undefined },
      {
        ip: fake.ip,
      },
    );
    await keeper.ensure();
    expect(keeper.status?.supported).toBe(true);
    await keeper.clear();
    expect(keeper.status).toBeUndefined();
    expect(fake.devices.get('tunl0')!.addresses).toEqual([]);
    expect(lines.at(-1)).toMatch(/no IPIP pool any more, addresses removed/);
  });
});

describe('checkIpip / ipipSupported', () => {
  it('says no, with the reason, on a kernel without IPIP, and leaves no probe device', async () => {
    const fake = fakeIp({ ipip: false });
    const support = await checkIpip(undefined, { ip: fake.ip });
    expect(support.supported).toBe(false);
    expect(!support.supported && support.reason).toMatch(/no IPIP support.*Unknown device type/);
    expect(await ipipSupported(undefined, { ip: fake.ip })).toBe(false);
    expect([...fake.devices.keys()]).toEqual([]);
  });

  it('says yes when an ipip tunl0 is there, when the fallback device answers "File exists", and after a probe', async () => {
    const existing = fakeIp({ ipip: true });
    existing.devices.set('tunl0', { kind: 'ipip', mtu: 1480, up: false, addresses: [] });
    expect(await ipipSupported(undefined, { ip: existing.ip })).toBe(true);
    expect(existing.calls).toEqual(['-details -json addr show dev tunl0']);

    const fallback = fakeIp({ ipip: true, fallbackTunl0: true });
    expect(await ipipSupported(undefined, { ip: fallback.ip })).toBe(true);

    const probe = fakeIp({ ipip: true });
    expect(await ipipSupported(undefined, { ip: probe.ip })).toBe(true);
    expect(probe.calls).toContain('link del tortie-ipipchk');
    expect([...probe.devices.keys()]).toEqual([]);
  });

  it('a stand-in tunl0 does not make the kernel IPIP-capable', async () => {
    const fake = fakeIp({ ipip: false });
    fake.devices.set('tunl0', { kind: 'veth', mtu: 1500, up: false, addresses: [] });
    expect(await ipipSupported(undefined, { ip: fake.ip })).toBe(false);
  });
});

describe('Tunl0Keeper', () => {
  function recordingLog(): {
    lines: string[];
    log: { info(f: object, m: string): void; warn(f: object, m: string): void };
  } {
    const lines: string[] = [];
    return {
      lines,
      log: {
        info: (_f, m) => lines.push(`info ${m}`),
        warn: (_f, m) => lines.push(`warn ${m}`),
      },
    };
  }

  it('logs "no IPIP" once however often it is asked, and keeps the status', async () => {
    const fake = fakeIp({ ipip: false });
    const { lines, log } = recordingLog();
    const keeper = new Tunl0Keeper({ address: '10.244.1.1' }, log, { ip: fake.ip });
    expect(keeper.status).toBeUndefined();
    for (let i = 0; i < 3; i++) await keeper.ensure();
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^warn the kernel has no IPIP support/);
    expect(keeper.status?.supported).toBe(false);
  });

  it('logs each repair, nothing when nothing drifted, and applies updates', async () => {
    const fake = fakeIp({ ipip: true });
    const { lines, log } = recordingLog();
    const keeper = new Tunl0Keeper({ address: '10.244.1.1', mtu: 1440 }, log, { ip: fake.ip });
    await keeper.ensure();
    await keeper.ensure();
    keeper.update({ address: '10.244.1.65' });
    await keeper.ensure();
    expect(lines).toEqual([
      'info tunl0 created: MTU 1480 → 1440, added address 10.244.1.1/32, set up',
      'info tunl0 repaired: removed address 10.244.1.1/32, added address 10.244.1.65/32',
    ]);
    expect(keeper.status?.supported && keeper.status.device.addresses).toEqual(['10.244.1.65/32']);
  });

  it('logs and rethrows a real failure', async () => {
    const fake = fakeIp({
      ipip: true,
      failNext: { code: 2, stdout: '', stderr: 'RTNETLINK answers: Operation not permitted\n' },
    });
    const { lines, log } = recordingLog();
    const keeper = new Tunl0Keeper({}, log, { ip: fake.ip });
    await expect(keeper.ensure()).rejects.toBeInstanceOf(Tunl0Error);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^warn tunl0: .*Operation not permitted — not allowed: run as root/);
  });
});
