// FRR's bgpd as a test peer, standalone: no zebra (-Z), listening only on its own address (-l), its own
// pid file and vty socket dir, no TCP vty (-P 0), no privilege drop (-S). vtysh talks to it with
// `--vty_socket <dir> -d bgpd`; routes() and sessions() read its JSON output.
//
// Config choices (FRR 8 defaults that would otherwise stop a loopback test):
// - `no bgp ebgp-requires-policy` (RFC 8212 default would drop everything on eBGP) and, besides, explicit
//   permit-all route-maps in and out;
// - `no bgp network import-check` (without zebra no route would ever be "in the RIB");
// - eBGP neighbors get `disable-connected-check` (or ebgp-multihop when asked), all get update-source;
// - announced routes are `network` statements; the outbound route-map sets each one's next hop (FRR
//   would send its own 127.x address, which FRR and GoBGP peers then refuse);
// - short timers: connect retry 1 s, advertisement interval 0, coalesce-time 10 ms (with the default,
//   a withdraw sent within about a second of the session coming up was lost: seen toward iBGP BIRD 2).

import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { PEER_BINARIES } from './binaries.js';
import { DaemonHandle, daemonDir, unixSocketAnswers } from './daemon.js';
import {
  gracefulRestartOf,
  runCli,
  type PeerDaemon,
  type PeerOptions,
  type PeerRoute,
  type PeerSessionInfo,
  type SessionState,
} from './peer.js';

/** Announced prefix → its index in the T-EXPORT route-map (sequence number and prefix-list name). */
type AnnounceTable = Map<string, { nextHop: string; seq: number }>;

function exportEntry(prefix: string, nextHop: string, seq: number): string[] {
  return [
    `ip prefix-list T-ANN-${seq} seq 5 permit ${prefix}`,
    `route-map T-EXPORT permit ${seq}`,
    ` match ip address prefix-list T-ANN-${seq}`,
    ` set ip next-hop ${nextHop}`,
    'exit',
  ];
}

/** The whole bgpd.conf. Pure. */
export function frrConfig(options: PeerOptions, announced: AnnounceTable): string {
  const lines = ['frr defaults traditional', `hostname t-frr-${options.address}`, 'log stdout informational', '!'];
  for (const [prefix, { nextHop, seq }] of announced) lines.push(...exportEntry(prefix, nextHop, seq));
  lines.push('route-map T-EXPORT permit 65000', 'exit', 'route-map T-IMPORT permit 10', 'exit', '!');
  lines.push(`router bgp ${options.as}`, ` bgp router-id ${options.routerId ?? options.address}`);
  lines.push(
    ' no bgp ebgp-requires-policy',
    ' no bgp network import-check',
    ' bgp log-neighbor-changes',
    ' coalesce-time 10',
  );
  if (options.clusterId) lines.push(` bgp cluster-id ${options.clusterId}`);
  const anyGr = options.neighbors.map((n) => gracefulRestartOf(options, n)).find((gr) => gr !== undefined);
  if (anyGr) lines.push(' bgp graceful-restart', ` bgp graceful-restart restart-time ${anyGr.restartTime}`);
  for (const n of options.neighbors) {
    const ebgp = n.as !== options.as;
    lines.push(` neighbor ${n.address} remote-as ${n.as}`, ` neighbor ${n.address} update-source ${options.address}`);
    if (n.port !== undefined && n.port !== 179) lines.push(` neighbor ${n.address} port ${n.port}`);
    if (n.ttlSecurity !== undefined) lines.push(` neighbor ${n.address} ttl-security hops ${n.ttlSecurity}`);
    else if (ebgp)
      lines.push(
        n.multihop ? ` neighbor ${n.address} ebgp-multihop 255` : ` neighbor ${n.address} disable-connected-check`,
      );
    if (n.password !== undefined) lines.push(` neighbor ${n.address} password ${n.password}`);
    if (n.passive) lines.push(` neighbor ${n.address} passive`);
    if (n.holdTime !== undefined)
      lines.push(` neighbor ${n.address} timers ${Math.floor(n.holdTime / 3)} ${n.holdTime}`);
    lines.push(` neighbor ${n.address} timers connect 1`, ` neighbor ${n.address} advertisement-interval 0`);
    if (gracefulRestartOf(options, n) === undefined && anyGr)
      lines.push(` neighbor ${n.address} graceful-restart-disable`);
  }
  lines.push(' address-family ipv4 unicast');
  for (const prefix of announced.keys()) lines.push(`  network ${prefix}`);
  for (const n of options.neighbors) {
    lines.push(
      `  neighbor ${n.address} activate`,
      `  neighbor ${n.address} route-map T-IMPORT in`,
      `  neighbor ${n.address} route-map T-EXPORT out`,
    );
    if (n.rrClient) lines.push(`  neighbor ${n.address} route-reflector-client`);
  }
  lines.push(' exit-address-family', 'exit', '!');
  return lines.join('\n') + '\n';
}

const FRR_STATES: Readonly<Record<string, SessionState>> = {
  Idle: 'Idle',
  Connect: 'Connect',
  Active: 'Active',
  OpenSent: 'OpenSent',
  OpenConfirm: 'OpenConfirm',
  Established: 'Established',
  Clearing: 'Idle',
  Deleted: 'Idle',
};

/** Parses `show bgp neighbors json`. Pure. */
export function parseFrrNeighbors(json: string): PeerSessionInfo[] {
  const data = JSON.parse(json) as Record<string, Record<string, unknown>>;
  return Object.entries(data)
    .filter(([address]) => /^\d+\.\d+\.\d+\.\d+$/.test(address))
    .map(([neighbor, info]) => {
      // lastResetDueTo keeps FRR's own startup note ("No AFI/SAFI activated for peer") forever: not an error.
      const reset = info.lastResetDueTo === 'No AFI/SAFI activated for peer' ? undefined : info.lastResetDueTo;
      const reason = info.lastNotificationReason ?? reset;
      return {
        neighbor,
        state: FRR_STATES[String(info.bgpState)] ?? 'Idle',
        ...(typeof reason === 'string' && reason !== '' ? { lastError: reason } : {}),
      };
    });
}

interface FrrPath {
  aspath?: { string?: string; segments?: { list?: number[] }[] };
  origin?: string;
  med?: number;
  metric?: number;
  localpref?: number;
  /** FRR 8.4 spells LOCAL_PREF this way in the detailed JSON. */
  locPrf?: number;
  community?: { string?: string };
  originatorId?: string;
  clusterList?: { list?: string[] };
  nexthops?: { ip?: string }[];
  peer?: { peerId?: string };
  bestpath?: { overall?: boolean };
}

/** Parses `show bgp ipv4 unicast <prefix> json` (the detailed form). Learned paths only. Pure. */
export function parseFrrPrefixDetail(json: string): PeerRoute[] {
  const data = JSON.parse(json) as { prefix?: string; paths?: FrrPath[] };
  if (!data.prefix || !data.paths) return [];
  const prefix = data.prefix;
  return data.paths
    .filter((p) => p.peer?.peerId && p.peer.peerId !== '0.0.0.0' && /^\d+\.\d+\.\d+\.\d+$/.test(p.peer.peerId))
    .map((p) => {
      const asPath =
        p.aspath?.segments?.flatMap((s) => s.list ?? []) ?? (p.aspath?.string?.match(/\d+/g) ?? []).map(Number);
      const origin = p.origin?.toLowerCase();
      return {
        prefix,
        nextHop: p.nexthops?.[0]?.ip ?? '',
        asPath,
        ...(origin === 'igp' || origin === 'egp' || origin === 'incomplete' ? { origin } : {}),
        ...(p.originatorId ? { originatorId: p.originatorId } : {}),
        ...(p.clusterList?.list ? { clusterList: p.clusterList.list } : {}),
        ...((p.localpref ?? p.locPrf) !== undefined ? { localPref: p.localpref ?? p.locPrf } : {}),
        ...((p.med ?? p.metric) !== undefined ? { med: p.med ?? p.metric } : {}),
        ...(p.community?.string ? { communities: p.community.string.split(/\s+/) } : {}),
        best: p.bestpath?.overall === true,
        ...(p.peer?.peerId ? { fromPeer: p.peer.peerId } : {}),
      };
    });
}

export async function startFrr(options: PeerOptions): Promise<PeerDaemon> {
  const { dir, ownsDir } = daemonDir('frr', options);
  const bin = PEER_BINARIES.frr;
  const configPath = join(dir, 'bgpd.conf');
  const announced: AnnounceTable = new Map();
  const seqOf = new Map<string, number>();
  let nextSeq = 10;
  for (const r of options.announce ?? []) {
    seqOf.set(r.prefix, nextSeq);
    announced.set(r.prefix, { nextHop: r.nextHop, seq: nextSeq++ });
  }
  const handle = new DaemonHandle({
    name: 'frr',
    dir,
    ownsDir,
    staleFiles: [join(dir, 'bgpd.pid'), join(dir, 'bgpd.vty')],
    prepare: () => {
      writeFileSync(configPath, frrConfig(options, announced));
      const args = ['-Z', '-S', '-l', options.address, '-p', String(options.port ?? 179), '-f', configPath];
      args.push('-i', join(dir, 'bgpd.pid'), '--vty_socket', dir, '-P', '0');
      return { command: bin.daemon(), args };
    },
    ready: async () =>
      (await unixSocketAnswers(join(dir, 'bgpd.vty'))) &&
      (await vtysh(['show bgp summary json']).catch(() => '')).includes('"as":'),
  });
  function vtysh(commands: string[]): Promise<string> {
    return runCli(bin.cli(), ['--vty_socket', dir, '-d', 'bgpd', ...commands.flatMap((c) => ['-c', c])]);
  }
  const configure = (commands: string[]) => vtysh(['configure terminal', ...commands]);
  await handle.start();
  return {
    kind: 'frr',
    address: options.address,
    as: options.as,
    routerId: options.routerId ?? options.address,
    dir,
    get startupMs() {
      return handle.startupMs;
    },
    pid: () => handle.pid(),
    routes: async () => {
      const table = JSON.parse(await vtysh(['show bgp ipv4 unicast json'])) as { routes?: Record<string, unknown> };
      const prefixes = Object.keys(table.routes ?? {});
      const details = await Promise.all(prefixes.map((p) => vtysh([`show bgp ipv4 unicast ${p} json`])));
      return details.flatMap(parseFrrPrefixDetail);
    },
    sessions: async () => parseFrrNeighbors(await vtysh(['show bgp neighbors json'])),
    announce: async (prefix, nextHop) => {
      // One route-map entry per prefix for the life of the daemon: removing entries while a withdraw is
      // still queued made FRR 8.4 lose the withdraw (seen toward an iBGP BIRD 2 peer).
      const seq = announced.get(prefix)?.seq ?? seqOf.get(prefix) ?? nextSeq++;
      seqOf.set(prefix, seq);
      announced.set(prefix, { nextHop, seq });
      // The route-map entry first, so the route goes out with its next hop from the first UPDATE.
      await configure([
        ...exportEntry(prefix, nextHop, seq),
        `router bgp ${options.as}`,
        'address-family ipv4 unicast',
        `network ${prefix}`,
      ]);
    },
    withdraw: async (prefix) => {
      if (!announced.delete(prefix)) return;
      await configure([`router bgp ${options.as}`, 'address-family ipv4 unicast', `no network ${prefix}`]);
    },
    cli: (command) => vtysh([command]),
    log: () => handle.log(),
    stop: () => handle.stop(),
    kill9: () => handle.kill9(),
    restart: () => handle.restart(),
  };
}
