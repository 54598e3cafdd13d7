// GoBGP (gobgpd 3.x) as a test peer: a TOML config, its gRPC API on <address>:50051 (one per instance, so
// several run at once), pprof off. routes() and sessions() read `gobgp ... -j` JSON; announce() and
// withdraw() use `gobgp global rib add|del`, and restart() adds the announced routes again (GoBGP's
// config file has no static routes).
//
// Next hops: GoBGP keeps the given next hop toward iBGP neighbors but puts its own address toward eBGP
// ones; for eBGP neighbors an export policy per announced prefix sets the next hop back (one prefix-set,
// statement and policy per prefix, added through the CLI).

import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { PEER_BINARIES } from './binaries.js';
import { DaemonHandle, daemonDir, tcpAnswers } from './daemon.js';
import {
  gracefulRestartOf,
  runCli,
  type PeerDaemon,
  type PeerOptions,
  type PeerRoute,
  type PeerSessionInfo,
  type SessionState,
} from './peer.js';

export const GOBGP_API_PORT = 50051;

/** The whole gobgpd.toml. Pure. */
export function gobgpConfig(options: PeerOptions): string {
  const routerId = options.routerId ?? options.address;
  const lines = [
    '[global.config]',
    `  as = ${options.as}`,
    `  router-id = "${routerId}"`,
    `  port = ${options.port ?? 179}`,
    `  local-address-list = ["${options.address}"]`,
  ];
  for (const n of options.neighbors) {
    const gr = gracefulRestartOf(options, n);
    lines.push(
      '[[neighbors]]',
      '  [neighbors.config]',
      `    neighbor-address = "${n.address}"`,
      `    peer-as = ${n.as}`,
    );
    lines.push('  [neighbors.transport.config]', `    local-address = "${options.address}"`);
    if (n.passive) lines.push('    passive-mode = true');
    if (n.port !== undefined) lines.push(`    remote-port = ${n.port}`);
    lines.push('  [neighbors.timers.config]', '    connect-retry = 1', '    idle-hold-time-after-reset = 1');
    if (n.holdTime !== undefined)
      lines.push(
        `    hold-time = ${n.holdTime}`,
        `    keepalive-interval = ${Math.max(1, Math.floor(n.holdTime / 3))}`,
      );
    if (n.multihop) lines.push('  [neighbors.ebgp-multihop.config]', '    enabled = true', '    multihop-ttl = 255');
    if (n.rrClient) {
      lines.push('  [neighbors.route-reflector.config]', '    route-reflector-client = true');
      lines.push(`    route-reflector-cluster-id = "${options.clusterId ?? routerId}"`);
    }
    if (gr)
      lines.push('  [neighbors.graceful-restart.config]', '    enabled = true', `    restart-time = ${gr.restartTime}`);
    lines.push('  [[neighbors.afi-safis]]', '    [neighbors.afi-safis.config]', '      afi-safi-name = "ipv4-unicast"');
    if (gr) lines.push('    [neighbors.afi-safis.mp-graceful-restart.config]', '      enabled = true');
  }
  return lines.join('\n') + '\n';
}

/** GoBGP's session_state enum (api.PeerState.SessionState), by number and by name. */
const GOBGP_STATES: Readonly<Record<string, SessionState>> = {
  '1': 'Idle',
  '2': 'Connect',
  '3': 'Active',
  '4': 'OpenSent',
  '5': 'OpenConfirm',
  '6': 'Established',
  IDLE: 'Idle',
  CONNECT: 'Connect',
  ACTIVE: 'Active',
  OPENSENT: 'OpenSent',
  OPENCONFIRM: 'OpenConfirm',
  ESTABLISHED: 'Established',
};

/** Parses `gobgp neighbor -j`. Pure. */
export function parseGobgpNeighbors(json: string): PeerSessionInfo[] {
  const data = JSON.parse(json) as {
    conf?: { neighbor_address?: string };
    state?: { session_state?: number | string; neighbor_address?: string };
  }[];
  return data.map((n) => ({
    neighbor: n.conf?.neighbor_address ?? n.state?.neighbor_address ?? '',
    state: GOBGP_STATES[String(n.state?.session_state ?? 1).toUpperCase()] ?? 'Idle',
  }));
}

interface GobgpAttr {
  type: number;
  value?: unknown;
  nexthop?: string;
  metric?: number;
  as_paths?: { asns?: number[] }[];
  communities?: number[];
}

/** Path attribute type code → how it lands in a PeerRoute. One table (RFC 4271 §5 type codes). */
const GOBGP_ATTRS: Readonly<Record<number, (a: GobgpAttr, r: Record<string, unknown>) => void>> = {
  1: (a, r) => (r.origin = ['igp', 'egp', 'incomplete'][Number(a.value)]),
  2: (a, r) => (r.asPath = (a.as_paths ?? []).flatMap((s) => s.asns ?? [])),
  3: (a, r) => (r.nextHop = a.nexthop),
  4: (a, r) => (r.med = a.metric ?? Number(a.value)),
  5: (a, r) => (r.localPref = Number(a.value)),
  8: (a, r) => (r.communities = (a.communities ?? []).map((c) => `${Math.floor(c / 65536)}:${c % 65536}`)),
  9: (a, r) => (r.originatorId = String(a.value)),
  10: (a, r) => (r.clusterList = (a.value as string[] | undefined) ?? []),
};

/** Parses `gobgp global rib -a ipv4 -j`, keeping paths learned from neighbors. Pure. */
export function parseGobgpRib(json: string): PeerRoute[] {
  const data = JSON.parse(json) as Record<
    string,
    { nlri?: { prefix?: string }; best?: boolean; attrs?: GobgpAttr[]; 'neighbor-ip'?: string }[]
  >;
  const routes: PeerRoute[] = [];
  for (const [prefix, paths] of Object.entries(data)) {
    for (const path of paths) {
      const from = path['neighbor-ip'];
      if (!from || from === '<nil>' || from === '0.0.0.0') continue;
      const r: Record<string, unknown> = {
        prefix: path.nlri?.prefix ?? prefix,
        asPath: [],
        best: path.best === true,
        fromPeer: from,
      };
      for (const attr of path.attrs ?? []) GOBGP_ATTRS[attr.type]?.(attr, r);
      routes.push({ nextHop: '', ...r } as unknown as PeerRoute);
    }
  }
  return routes;
}

export async function startGobgp(options: PeerOptions): Promise<PeerDaemon> {
  const { dir, ownsDir } = daemonDir('gobgp', options);
  const bin = PEER_BINARIES.gobgp;
  const configPath = join(dir, 'gobgpd.toml');
  const announced = new Map<string, string>((options.announce ?? []).map((r) => [r.prefix, r.nextHop]));
  const ebgpNeighbors = options.neighbors.filter((n) => n.as !== options.as);
  const gobgp = (args: string[]) => runCli(bin.cli(), ['-u', options.address, '-p', String(GOBGP_API_PORT), ...args]);
  let policySeq = 0;
  const policyOf = new Map<string, string>();

  async function addRoute(prefix: string, nextHop: string): Promise<void> {
    if (ebgpNeighbors.length > 0) {
      const name = `t-ann-${++policySeq}`;
      policyOf.set(prefix, name);
      await gobgp(['policy', 'prefix', 'add', name, prefix]);
      await gobgp(['policy', 'statement', 'add', name]);
      await gobgp(['policy', 'statement', name, 'add', 'condition', 'prefix', name]);
      await gobgp(['policy', 'statement', name, 'add', 'action', 'next-hop', nextHop]);
      await gobgp(['policy', 'add', name, name]);
      await gobgp(['global', 'policy', 'export', 'add', name]);
    }
    await gobgp(['global', 'rib', 'add', '-a', 'ipv4', prefix, 'nexthop', nextHop]);
  }

  async function removeRoute(prefix: string): Promise<void> {
    await gobgp(['global', 'rib', 'del', '-a', 'ipv4', prefix]);
    const name = policyOf.get(prefix);
    if (name) {
      policyOf.delete(prefix);
      await gobgp(['global', 'policy', 'export', 'del', name]);
      await gobgp(['policy', 'del', name]);
      await gobgp(['policy', 'statement', 'del', name]);
      await gobgp(['policy', 'prefix', 'del', name]);
    }
  }

  const handle = new DaemonHandle({
    name: 'gobgp',
    dir,
    ownsDir,
    prepare: () => {
      writeFileSync(configPath, gobgpConfig(options));
      return {
        command: bin.daemon(),
        args: [
          '-f',
          configPath,
          '-t',
          'toml',
          '--pprof-disable',
          '--api-hosts',
          `${options.address}:${GOBGP_API_PORT}`,
          '-l',
          'info',
        ],
      };
    },
    ready: async () =>
      (await tcpAnswers(options.address, GOBGP_API_PORT)) &&
      (await gobgp(['global', '-j']).then(
        () => true,
        () => false,
      )),
  });
  const start = async () => {
    await handle.start();
    policyOf.clear();
    for (const [prefix, nextHop] of announced) await addRoute(prefix, nextHop);
  };
  await start();
  return {
    kind: 'gobgp',
    address: options.address,
    as: options.as,
    routerId: options.routerId ?? options.address,
    dir,
    get startupMs() {
      return handle.startupMs;
    },
    pid: () => handle.pid(),
    routes: async () => parseGobgpRib(await gobgp(['global', 'rib', '-a', 'ipv4', '-j'])),
    sessions: async () => parseGobgpNeighbors(await gobgp(['neighbor', '-j'])),
    announce: async (prefix, nextHop) => {
      if (announced.has(prefix)) await removeRoute(prefix);
      announced.set(prefix, nextHop);
      await addRoute(prefix, nextHop);
    },
    withdraw: async (prefix) => {
      if (!announced.delete(prefix)) return;
      await removeRoute(prefix);
    },
    cli: (command) => gobgp(command.split(/\s+/).filter(Boolean)),
    log: () => handle.log(),
    stop: () => handle.stop(),
    kill9: () => handle.kill9(),
    restart: async () => {
      await handle.halt();
      await start();
    },
  };
}
