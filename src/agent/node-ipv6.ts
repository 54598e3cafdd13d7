// The node's IPv6 side, as calico-node configures it:
//   IP6                       unset or "none": no IPv6 address; "autodetect"; or an address[/len]
//   IP6_AUTODETECTION_METHOD  first-found (default), interface=, skip-interface=, cidr=, can-reach=
//   CALICO_IPV6POOL_CIDR      the default IPv6 pool `default-ipv6-ippool`, created only when this is set
//                             (CALICO_IPV6POOL_BLOCK_SIZE default 122, CALICO_IPV6POOL_NAT_OUTGOING default
//                             false, CALICO_IPV6POOL_VXLAN default Never; never IPIP: IPv6 has none)
// The address found is written to Node.spec.bgp.ipv6Address with its prefix length; felix routes other
// nodes' IPv6 blocks via it (felix/route-calc6.ts).
//
// Why this is hard: an interface has several IPv6 addresses, and most are not a node address: link-local
// fe80::/10 (every interface has one), loopback ::1, and deprecated/temporary ones. first-found skips the
// first two (Calico's autodetection skips link-local too), as it skips docker*, cali*, … interfaces.

import { createSocket } from 'node:dgram';
import { networkInterfaces, type NetworkInterfaceInfo } from 'node:os';
import { formatAddress, parseAddress, parseCidr } from '../resources/cidr.js';
import { FIRST_FOUND_SKIP, parseAutodetectMethod, type AutodetectMethod } from './config.js';
import { AlreadyExistsError, ConflictError } from '../datastore/types.js';
import { applyDefaults } from '../resources/defaults.js';
import { API_VERSION } from '../resources/types.js';
import type { InterfaceAddress, DetectedAddress } from './autodetect.js';
import type { BootstrapContext } from './bootstrap.js';
import { errorText } from './error-text.js';

type Env = Readonly<Record<string, string | undefined>>;

export type Ip6Setting =
  { mode: 'autodetect'; method: AutodetectMethod } | { mode: 'fixed'; address: string; prefixLength?: number };

export interface DefaultPool6Config {
  name: 'default-ipv6-ippool';
  cidr: string;
  blockSize: number;
  natOutgoing: boolean;
  vxlanMode: 'Never' | 'Always' | 'CrossSubnet';
}

/** IP6 / IP6_AUTODETECTION_METHOD; null when IPv6 is off (IP6 unset or "none", as calico-node). */
export function parseIp6(env: Env, problems: string[]): Ip6Setting | null {
  const raw = env.IP6;
  const text = (raw ?? '').trim();
  if (text === '' || text.toLowerCase() === 'none') return null;
  if (text.toLowerCase() === 'autodetect') {
    // The methods are IP_AUTODETECTION_METHOD's; cidr= and can-reach= take IPv6 values here.
    const methodRaw = env.IP6_AUTODETECTION_METHOD ?? '';
    const method = parseAutodetectMethod(
      methodRaw.replace(/^(cidr|can-reach)=.*$/, 'first-found'),
      problems,
      'IP6_AUTODETECTION_METHOD',
    );
    const arg = methodRaw
      .trim()
      .slice(methodRaw.trim().indexOf('=') + 1)
      .trim();
    if (/^cidr=/.test(methodRaw.trim())) {
      const cidrs = arg.split(',').map((s) => s.trim());
      const bad = cidrs.filter((c) => parseCidr(c)?.family !== 6);
      if (bad.length > 0)
        problems.push(
          `IP6_AUTODETECTION_METHOD="${methodRaw}": ${bad.join(', ')} is not an IPv6 CIDR (like fd00:54::/64)`,
        );
      return { mode: 'autodetect', method: { kind: 'cidr', cidrs } };
    }
    if (/^can-reach=/.test(methodRaw.trim())) {
      if (parseAddress(arg)?.family !== 6) {
        problems.push(
          `IP6_AUTODETECTION_METHOD="${methodRaw}": "${arg}" is not an IPv6 address (like can-reach=fd00:54::1)`,
        );
      }
      return { mode: 'autodetect', method: { kind: 'can-reach', address: arg } };
    }
    return { mode: 'autodetect', method };
  }
  const slash = text.indexOf('/');
  const addressText = slash < 0 ? text : text.slice(0, slash);
  const parsed = parseAddress(addressText);
  if (parsed?.family !== 6) {
    problems.push(
      `IP6="${raw}" is not "none", "autodetect" or an IPv6 address with optional prefix length (like fd00:54::11/64)`,
    );
    return null;
  }
  const address = formatAddress(6, parsed.addr);
  if (slash < 0) return { mode: 'fixed', address };
  const lenText = text.slice(slash + 1);
  if (!/^(0|[1-9][0-9]{0,2})$/.test(lenText) || Number(lenText) > 128) {
    problems.push(`IP6="${raw}": prefix length "${lenText}" is not 0..128`);
    return { mode: 'fixed', address };
  }
  return { mode: 'fixed', address, prefixLength: Number(lenText) };
}

/** The default IPv6 pool, only when CALICO_IPV6POOL_CIDR is set (and NO_DEFAULT_POOLS is not). */
export function parseDefaultPool6(env: Env, noDefaultPools: boolean, problems: string[]): DefaultPool6Config | null {
  const raw = (env.CALICO_IPV6POOL_CIDR ?? '').trim();
  if (raw === '' || raw === 'none') return null;
  if (noDefaultPools) {
    problems.push(
      `NO_DEFAULT_POOLS is true and CALICO_IPV6POOL_CIDR="${raw}" is set: unset one of them (calico-node refuses this too)`,
    );
    return null;
  }
  const cidr = parseCidr(raw);
  if (cidr?.family !== 6 || cidr.addr !== cidr.network) {
    problems.push(`CALICO_IPV6POOL_CIDR="${raw}" is not an IPv6 network CIDR (like fd00:10:244::/48)`);
    return null;
  }
  let blockSize = 122;
  const sizeRaw = (env.CALICO_IPV6POOL_BLOCK_SIZE ?? '').trim();
  if (sizeRaw !== '') {
    const n = Number(sizeRaw);
    if (!/^[0-9]+$/.test(sizeRaw) || n < 116 || n > 128 || n < cidr.len) {
      problems.push(`CALICO_IPV6POOL_BLOCK_SIZE="${sizeRaw}" is not an integer ${Math.max(116, cidr.len)}..128`);
    } else blockSize = n;
  }
  const natRaw = (env.CALICO_IPV6POOL_NAT_OUTGOING ?? '').trim().toLowerCase();
  if (natRaw !== '' && natRaw !== 'true' && natRaw !== 'false') {
    problems.push(`CALICO_IPV6POOL_NAT_OUTGOING="${env.CALICO_IPV6POOL_NAT_OUTGOING}" is not true or false`);
  }
  const vxlanRaw = (env.CALICO_IPV6POOL_VXLAN ?? '').trim();
  const vxlanMode = ({ '': 'Never', never: 'Never', always: 'Always', crosssubnet: 'CrossSubnet' } as const)[
    vxlanRaw.toLowerCase() as '' | 'never' | 'always' | 'crosssubnet'
  ];
  if (vxlanMode === undefined) {
    problems.push(`CALICO_IPV6POOL_VXLAN="${vxlanRaw}" is not Never, Always or CrossSubnet`);
  }
  return {
    name: 'default-ipv6-ippool',
    cidr: `${formatAddress(6, cidr.network)}/${cidr.len}`,
    blockSize,
    natOutgoing: natRaw === 'true',
    vxlanMode: vxlanMode ?? 'Never',
  };
}

/** Global IPv6 addresses of os.networkInterfaces()-shaped data: no link-local (fe80::/10), no loopback. */
export function interfaceAddresses6(interfaces: NodeJS.Dict<NetworkInterfaceInfo[]>): InterfaceAddress[] {
  const out: InterfaceAddress[] = [];
  for (const [iface, infos] of Object.entries(interfaces)) {
    for (const info of infos ?? []) {
      if (info.family !== 'IPv6' || !usable6(info.address)) continue;
      const len = Number((info.cidr ?? '').split('/')[1] ?? NaN);
      out.push({ iface, address: info.address, prefixLength: Number.isInteger(len) ? len : 128 });
    }
  }
  return out;
}

function usable6(address: string): boolean {
  const parsed = parseAddress(address);
  if (parsed?.family !== 6 || parsed.addr === 1n || parsed.addr === 0n) return false;
  return parsed.addr >> 118n !== 0x3fan; // fe80::/10
}

// Built on first use: config.ts imports this module, so its FIRST_FOUND_SKIP is not there yet at load time.
let firstFoundPatterns: RegExp[] | undefined;
const skippedByFirstFound = (iface: string): boolean =>
  (firstFoundPatterns ??= FIRST_FOUND_SKIP.map((p) => new RegExp(p))).some((p) => p.test(iface));

/** The IPv6 address `method` picks (can-reach needs the kernel's local address toward the target). */
export function selectAddress6(
  method: AutodetectMethod,
  addresses: readonly InterfaceAddress[],
  reachLocal?: string,
): DetectedAddress | null {
  const ok = addresses.filter((a) => usable6(a.address));
  let found: InterfaceAddress | undefined;
  switch (method.kind) {
    case 'first-found':
      found = ok.find((a) => !skippedByFirstFound(a.iface));
      break;
    case 'interface':
      for (const pattern of method.patterns) {
        found = ok.find((a) => pattern.test(a.iface));
        if (found) break;
      }
      break;
    case 'skip-interface':
      found = ok.find((a) => !method.patterns.some((p) => p.test(a.iface)));
      break;
    case 'cidr':
      for (const text of method.cidrs) {
        const cidr = parseCidr(text);
        found = ok.find((a) => {
          const addr = parseAddress(a.address);
          return cidr !== null && addr !== null && parseCidr(`${a.address}/${cidr.len}`)?.network === cidr.network;
        });
        if (found) break;
      }
      break;
    case 'can-reach': {
      const local = reachLocal === undefined ? null : parseAddress(reachLocal);
      found = ok.find((a) => local !== null && parseAddress(a.address)?.addr === local.addr);
      break;
    }
  }
  return found ? { ...found, method: method.kind } : null;
}

/** The local IPv6 address the kernel would use toward `target`: a connected UDP socket, nothing sent. */
export function localAddressToward6(target: string, timeoutMs = 2000): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = createSocket('udp6');
    const timer = setTimeout(() => {
      socket.close();
      reject(new Error(`can-reach=${target}: no route lookup answer within ${timeoutMs} ms`));
    }, timeoutMs);
    socket.once('error', (error) => {
      clearTimeout(timer);
      socket.close();
      reject(new Error(`can-reach=${target}: ${error.message} (is there an IPv6 route to it?)`));
    });
    socket.connect(9, target, () => {
      clearTimeout(timer);
      const local = socket.address().address;
      socket.close();
      resolve(local);
    });
  });
}

/** IP6 against this machine: the address with its prefix length, or an Error naming what was seen. */
export async function findAddress6(
  setting: Ip6Setting,
  deps: { interfaces?: () => InterfaceAddress[]; localAddressToward?: (target: string) => Promise<string> } = {},
): Promise<{ address: string; prefixLength: number; iface: string | null }> {
  const addresses = (deps.interfaces ?? (() => interfaceAddresses6(networkInterfaces())))();
  if (setting.mode === 'fixed') {
    const holder = addresses.find((a) => parseAddress(a.address)?.addr === parseAddress(setting.address)?.addr);
    return {
      address: setting.address,
      prefixLength: setting.prefixLength ?? holder?.prefixLength ?? 128,
      iface: holder?.iface ?? null,
    };
  }
  const method = setting.method;
  const reachLocal =
    method.kind === 'can-reach' ? await (deps.localAddressToward ?? localAddressToward6)(method.address) : undefined;
  const found = selectAddress6(method, addresses, reachLocal);
  if (found === null) {
    const seen = addresses.map((a) => `${a.iface} ${a.address}/${a.prefixLength}`).join(', ') || 'none';
    throw new Error(
      `IP6_AUTODETECTION_METHOD=${method.kind} found no global IPv6 address; addresses seen: ${seen}; set IP6=<address/len> or another method`,
    );
  }
  return {
    address: formatAddress(6, parseAddress(found.address)!.addr),
    prefixLength: found.prefixLength,
    iface: found.iface,
  };
}

/**
 * Startup, after the Node is registered: IP6 found and written to Node.spec.bgp.ipv6Address (with its
 * prefix length), the default IPv6 pool created when CALICO_IPV6POOL_CIDR asks for it and no IPv6 pool
 * exists, and an IPv6 block claimed when an IPv6 pool selects this node. Each failure is a warning in
 * `node status`, never a failed start: IPv4 works without IPv6.
 */
export async function bootstrapIpv6(ctx: BootstrapContext): Promise<void> {
  const name = ctx.config.nodeName;
  const setting = ctx.config.ip6;
  if (setting !== undefined) {
    try {
      const found = await findAddress6(setting);
      const address = `${found.address}/${found.prefixLength}`;
      for (let attempt = 0; attempt < 10; attempt++) {
        const node = await ctx.ds.get('Node', name);
        if (!node || node.spec.bgp?.ipv6Address === address) break;
        try {
          await ctx.ds.update({
            ...node,
            spec: { ...node.spec, bgp: { ...(node.spec.bgp ?? {}), ipv6Address: address } },
          });
          ctx.log.info({ node: name, ipv6Address: address, iface: found.iface }, 'node IPv6 address');
          break;
        } catch (error) {
          if (!(error instanceof ConflictError)) throw error;
        }
      }
    } catch (error) {
      ctx.warnings.add(`no IPv6 node address (IP6): ${errorText(error)}`);
    }
  }
  const pool = ctx.config.defaultPool6;
  try {
    if (pool !== undefined && !(await ctx.ds.list('IPPool')).items.some((p) => p.spec.cidr.includes(':'))) {
      await ctx.ds
        .create(
          applyDefaults({
            apiVersion: API_VERSION,
            kind: 'IPPool',
            metadata: { name: pool.name },
            spec: {
              cidr: pool.cidr,
              blockSize: pool.blockSize,
              ipipMode: 'Never',
              vxlanMode: pool.vxlanMode,
              natOutgoing: pool.natOutgoing,
              nodeSelector: 'all()',
            },
          }),
        )
        .then(() => ctx.log.info({ pool: pool.name, cidr: pool.cidr }, 'created the default IPv6 pool'))
        .catch((error: unknown) => {
          if (!(error instanceof AlreadyExistsError)) throw error;
        });
    }
    const pools = (await ctx.ds.list('IPPool')).items.filter((p) => p.spec.cidr.includes(':') && !p.spec.disabled);
    if (pools.length === 0) return;
    const owned = (await ctx.ipam.blocksOf(name)).filter((cidr) => cidr.includes(':'));
    if (owned.length === 0) {
      const cidr = await ctx.ipam.claimBlock(name, { family: 6 });
      ctx.log.info({ block: cidr }, 'claimed an IPv6 IPAM block');
    }
  } catch (error) {
    ctx.warnings.add(`no IPv6 IPAM block for this node: ${errorText(error)}`);
  }
}
