// A small fake of `ip` (iproute2) for tunl0 tests: a table of devices, the commands ensureTunl0 runs, and
// a kernel that has IPIP or not ("Unknown device type."), optionally made the fallback tunl0 itself.

import type { IpCommand, IpResult } from '../../../ipip/tunl0.js';

export interface FakeDevice {
  kind: string;
  mtu: number;
  up: boolean;
  addresses: string[];
}

export interface FakeIp {
  ip: IpCommand;
  devices: Map<string, FakeDevice>;
  calls: string[];
}

export function fakeIp(kernel: {
  ipip: boolean;
  fallbackTunl0?: boolean;
  ignoreMtu?: boolean;
  failNext?: IpResult;
}): FakeIp {
  const devices = new Map<string, FakeDevice>();
  const calls: string[] = [];
  const ok = (stdout = ''): IpResult => ({ code: 0, stdout, stderr: '' });
  const err = (stderr: string, code = 2): IpResult => ({ code, stdout: '', stderr: `${stderr}\n` });
  let failNext = kernel.failNext;
  const ip: IpCommand = async (args) => {
    calls.push(args.join(' '));
    if (failNext) {
      const result = failNext;
      failNext = undefined;
      return result;
    }
    const [object, verb] = args[0] === '-details' ? [args[2], args[3]] : [args[0], args[1]];
    const dev = (name: string | undefined) => devices.get(name ?? '');
    if (object === 'addr' && verb === 'show') {
      const name = args[5] ?? '';
      const d = dev(name);
      if (!d) return err(`Device "${name}" does not exist.`, 1);
      return ok(
        JSON.stringify([
          {
            ifname: name,
            flags: d.up ? ['NOARP', 'UP', 'LOWER_UP'] : ['NOARP'],
            mtu: d.mtu,
            linkinfo: { info_kind: d.kind },
            addr_info: d.addresses.map((a) => ({
              family: 'inet',
              local: a.split('/')[0],
              prefixlen: Number(a.split('/')[1]),
            })),
          },
        ]),
      );
    }
    if (object === 'link' && verb === 'add') {
      const name = args[2] ?? '';
      if (args[4] === 'ipip' && !kernel.ipip) return err('Error: Unknown device type.');
      if (devices.has(name)) return err('RTNETLINK answers: File exists');
      if (args[4] === 'ipip' && kernel.fallbackTunl0) {
        // Loading the module made the fallback tunl0; an any-to-any twin is refused.
        devices.set('tunl0', { kind: 'ipip', mtu: 1480, up: false, addresses: [] });
        return err('RTNETLINK answers: File exists');
      }
      devices.set(name, { kind: args[4] ?? '', mtu: 1480, up: false, addresses: [] });
      return ok();
    }
    if (object === 'link' && verb === 'del') {
      return devices.delete(args[2] ?? '') ? ok() : err(`Cannot find device "${args[2]}"`, 1);
    }
    if (object === 'link' && verb === 'set') {
      const d = dev(args[3]);
      if (!d) return err(`Cannot find device "${args[3]}"`, 1);
      if (args[4] === 'mtu' && !kernel.ignoreMtu) d.mtu = Number(args[5]);
      if (args[4] === 'up') d.up = true;
      return ok();
    }
    if (object === 'addr' && (verb === 'add' || verb === 'del')) {
      const d = dev(args[4]);
      const address = args[2] ?? '';
      if (!d) return err(`Cannot find device "${args[4]}"`, 1);
      if (verb === 'add') {
        if (d.addresses.includes(address)) return err('RTNETLINK answers: File exists');
        d.addresses.push(address);
      } else {
        if (!d.addresses.includes(address)) return err('RTNETLINK answers: Cannot assign requested address');
        d.addresses = d.addresses.filter((a) => a !== address);
      }
      return ok();
    }
    return err(`fake ip: unexpected command "${args.join(' ')}"`, 255);
  };
  return { ip, devices, calls };
}
