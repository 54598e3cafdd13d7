// ipip/tunl0.ts against the real kernel, inside network namespaces this file creates and always removes.
//
// What the kernel is able to do decides what must happen, and we learn that from the kernel's build
// configuration (not from the code under test): on these machines CONFIG_NET_IPIP is not set, so
// ensureTunl0 must say "no IPIP" clearly and leave nothing behind. Drift repair is checked on a stand-in
// device named tunl0 (dummy or veth, from test/harness/netns.ts), which ensureTunl0 manages only when
// told `standIn: 'manage'`. On a kernel with IPIP (the VM of scripts/vm/, npm run test:kernel) the real tunl0 is checked instead.

import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { gunzipSync } from 'node:zlib';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { ipCommand } from '../../felix/ip-command.js';
import {
  Tunl0Error,
  checkIpip,
  ensureTunl0,
  ipipSupported,
  type Tunl0Deps,
  type Tunl0Options,
} from '../../ipip/tunl0.js';
import { createNetns, destroyAllNetns, netnsUnavailableReason, type Netns } from '../harness/netns.js';

const unavailable = netnsUnavailableReason();
if (unavailable !== null) {
  if (process.env.CI === 'true') throw new Error(`ipip-tunl0 tests: ${unavailable} (CI=true: a failure, not a skip)`);
  console.warn(`SKIPPING ipip-tunl0 tests: ${unavailable}`);
}

/** Does this kernel have IPIP, by its build configuration? undefined when nothing says. */
function kernelHasIpip(): boolean | undefined {
  if (existsSync('/sys/module/ipip')) return true;
  try {
    const config = gunzipSync(readFileSync('/proc/config.gz')).toString('utf8');
    const line = /^CONFIG_NET_IPIP=([ym])$|^# CONFIG_NET_IPIP is not set$/m.exec(config);
    if (line) return line[1] !== undefined;
  } catch {
    // no /proc/config.gz: look for the module file instead
  }
  try {
    const release = execFileSync('uname', ['-r'], { encoding: 'utf8', timeout: 5000 }).trim();
    if (existsSync(`/lib/modules/${release}/kernel/net/ipv4/ipip.ko`)) return true;
    if (existsSync(`/lib/modules/${release}/kernel/net/ipv4/ipip.ko.xz`)) return true;
  } catch {
    // nothing more to ask
  }
  return undefined;
}

const hasIpip = kernelHasIpip();

/** The real `ip` in `netns` (ipip/ runs no program itself). */
const ipIn = (netns: string): Tunl0Deps => ({ ip: ipCommand({ netns }) });

interface Tunl0Json {
  mtu: number;
  flags: string[];
  linkinfo?: { info_kind?: string };
  addr_info: Array<{ family: string; local: string; prefixlen: number }>;
}

/** tunl0 as `ip` itself shows it (read here with the harness, not with the code under test). */
async function readTunl0(ns: Netns): Promise<{ kind: string; mtu: number; up: boolean; addresses: string[] }> {
  const parsed = JSON.parse(await ns.ip('-details', '-json', 'addr', 'show', 'dev', 'tunl0')) as Tunl0Json[];
  const link = parsed[0];
  if (!link) throw new Error(`no tunl0 in ${ns.name}`);
  return {
    kind: link.linkinfo?.info_kind ?? '',
    mtu: link.mtu,
    up: link.flags.includes('UP'),
    addresses: link.addr_info.filter((a) => a.family === 'inet').map((a) => `${a.local}/${a.prefixlen}`),
  };
}

describe.skipIf(unavailable !== null)('tunl0 in a network namespace', () => {
  let ns: Netns | undefined;
  afterEach(async () => {
    await ns?.destroy();
    ns = undefined;
  });
  afterAll(() => destroyAllNetns());

  it.skipIf(hasIpip !== false)(
    'reports this kernel (no IPIP) as unsupported, clearly, every time, and leaves no device',
    async () => {
      ns = await createNetns('tunl0none');
      const options: Tunl0Options = { netns: ns.name, address: '10.244.1.1', hostMtu: 1500 };
      const first = await ensureTunl0(options, ipIn(ns.name));
      const second = await ensureTunl0(options, ipIn(ns.name));
      for (const status of [first, second]) {
        expect(status.supported).toBe(false);
        if (status.supported) continue;
        expect(status.reason).toContain(`the kernel has no IPIP support in netns ${ns.name}`);
        expect(status.reason).toMatch(
          /"ip link add tunl0 type ipip" answered "(Error: Unknown device type\.|RTNETLINK answers: Operation not supported)"/,
        );
      }
      const check = await checkIpip(ns.name, ipIn(ns.name));
      expect(check.supported).toBe(false);
      expect(!check.supported && check.reason).toMatch(/no IPIP support/);
      expect(await ipipSupported(ns.name, ipIn(ns.name))).toBe(false);
      const links = JSON.parse(await ns.ip('-json', 'link', 'show')) as Array<{ ifname: string }>;
      expect(links.map((l) => l.ifname)).toEqual(['lo']);
    },
  );

  it.skipIf(hasIpip !== true)('creates and repairs the real tunl0 on a kernel with IPIP', async () => {
    ns = await createNetns('tunl0real');
    const options: Tunl0Options = { netns: ns.name, address: '10.244.1.1', hostMtu: 1500 };
    const first = await ensureTunl0(options, ipIn(ns.name));
    expect(first.supported && first.standIn).toBe(false);
    expect(await readTunl0(ns)).toEqual({ kind: 'ipip', mtu: 1480, up: true, addresses: ['10.244.1.1/32'] });
    await ns.ip('link', 'set', 'tunl0', 'down', 'mtu', '1300');
    const repaired = await ensureTunl0(options, ipIn(ns.name));
    expect(repaired.supported && repaired.repaired).toEqual(['MTU 1300 → 1480', 'set up']);
    expect(await ipipSupported(ns.name, ipIn(ns.name))).toBe(true);
  });

  describe.skipIf(hasIpip === true)('on a stand-in tunl0', () => {
    it('leaves a tunl0 that is not IPIP alone unless told to manage it', async () => {
      ns = await createNetns('tunl0refuse');
      await ns.addStandInTunl0();
      await ns.ip('link', 'set', 'tunl0', 'down');
      const before = await readTunl0(ns);
      const status = await ensureTunl0({ netns: ns.name, address: '10.244.1.1', hostMtu: 1500 }, ipIn(ns.name));
      expect(status.supported).toBe(false);
      expect(!status.supported && status.reason).toMatch(
        new RegExp(`tunl0 in netns ${ns.name} exists but is a "(dummy|veth)" device, not an IPIP tunnel`),
      );
      expect(await readTunl0(ns)).toEqual(before);
      // A stand-in does not make the kernel able to encapsulate.
      if (hasIpip === false) expect(await ipipSupported(ns.name, ipIn(ns.name))).toBe(false);
    });

    it('sets address, MTU and up, repairs every kind of drift, then changes nothing', async () => {
      ns = await createNetns('tunl0drift');
      const kind = await ns.addStandInTunl0();
      const options: Tunl0Options = { netns: ns.name, address: '10.244.1.1', hostMtu: 1500, standIn: 'manage' };

      const first = await ensureTunl0(options, ipIn(ns.name));
      expect(first.supported).toBe(true);
      if (!first.supported) return;
      expect(first.standIn).toBe(true);
      expect(first.created).toBe(false);
      expect(first.repaired).toEqual(['MTU 1500 → 1480', 'added address 10.244.1.1/32']);
      expect(await readTunl0(ns)).toEqual({ kind, mtu: 1480, up: true, addresses: ['10.244.1.1/32'] });

      // Someone else's hand: down, another MTU, our address gone, a stray one added.
      await ns.ip('link', 'set', 'tunl0', 'down');
      await ns.ip('link', 'set', 'tunl0', 'mtu', '1400');
      await ns.ip('addr', 'del', '10.244.1.1/32', 'dev', 'tunl0');
      await ns.ip('addr', 'add', '10.9.9.9/24', 'dev', 'tunl0');
      const repaired = await ensureTunl0(options, ipIn(ns.name));
      expect(repaired.supported && repaired.repaired).toEqual([
        'removed address 10.9.9.9/24',
        'MTU 1400 → 1480',
        'added address 10.244.1.1/32',
        'set up',
      ]);
      expect(await readTunl0(ns)).toEqual({ kind, mtu: 1480, up: true, addresses: ['10.244.1.1/32'] });

      const quiet = await ensureTunl0(options, ipIn(ns.name));
      expect(quiet.supported && quiet.repaired).toEqual([]);
    });

    it('moves to a new tunnel address, honours FELIX_IPINIPMTU, and clears addresses when the node has none', async () => {
      ns = await createNetns('tunl0addr');
      await ns.addStandInTunl0();
      await ensureTunl0({ netns: ns.name, address: '10.244.1.1/32', standIn: 'manage' }, ipIn(ns.name));
      const moved = await ensureTunl0(
        { netns: ns.name, address: '10.244.1.65', mtu: 1440, hostMtu: 9000, standIn: 'manage' },
        ipIn(ns.name),
      );
      expect(moved.supported && moved.repaired).toEqual([
        'removed address 10.244.1.1/32',
        'MTU 1500 → 1440',
        'added address 10.244.1.65/32',
      ]);
      expect((await readTunl0(ns)).addresses).toEqual(['10.244.1.65/32']);

      await ensureTunl0({ netns: ns.name, standIn: 'manage' }, ipIn(ns.name));
      expect((await readTunl0(ns)).addresses).toEqual(['10.244.1.65/32']);
      await ensureTunl0({ netns: ns.name, address: null, standIn: 'manage' }, ipIn(ns.name));
      expect((await readTunl0(ns)).addresses).toEqual([]);
    });
  });

  it('throws a Tunl0Error naming the namespace when it does not exist', async () => {
    const missing = `tortie-test-${process.pid}-missing`;
    const attempt = ensureTunl0({ netns: missing }, ipIn(missing));
    await expect(attempt).rejects.toBeInstanceOf(Tunl0Error);
    await expect(attempt).rejects.toThrow(
      new RegExp(`in netns ${missing} failed .*the network namespace does not exist`),
    );
  });
});
