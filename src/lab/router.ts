// The office router of the lab: its configuration text (BIRD 2 or FRR, one eBGP neighbor per node), starting
// it in the router namespace, and asking it for its routes.

import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { LAB_AS, type LabPlan } from './plan.js';
import { must, run, spawnDetached } from './processes.js';
import type { LabState } from './state.js';

export const BIRD2 = process.env.TORTIE_BIRD2_ROOT
  ? `${process.env.TORTIE_BIRD2_ROOT}/usr/sbin/bird`
  : '/opt/tortie/bird2/usr/sbin/bird';
export const BIRD2_CLIENT = BIRD2.replace(/bird$/, 'birdc');

export function birdConfig(plan: LabPlan): string {
  const router = plan.router!;
  const lines = [
    `router id ${router.legs[0]!.ip};`,
    'protocol device { }',
    ...(router.forwards ? ['protocol kernel { ipv4 { export all; }; }'] : []),
  ];
  for (const node of plan.nodes) {
    const leg = router.legs.find((l) => l.subnet === node.subnet)!;
    lines.push(
      `protocol bgp ${node.name.replace('-', '_')} {`,
      `  local ${leg.ip} as ${router.asNumber};`,
      `  neighbor ${node.ip} as ${LAB_AS};`,
      '  ipv4 { import all; export all; };',
      '}',
    );
  }
  return `${lines.join('\n')}\n`;
}

/** FRR's configuration for the office router: one eBGP neighbor per node. */
export function frrConfig(plan: LabPlan): string {
  const router = plan.router!;
  const lines = [
    `frr defaults traditional`,
    `router bgp ${router.asNumber}`,
    ` bgp router-id ${router.legs[0]!.ip}`,
    ' no bgp ebgp-requires-policy',
  ];
  for (const node of plan.nodes) lines.push(` neighbor ${node.ip} remote-as ${LAB_AS}`);
  return `${lines.join('\n')}\n`;
}

export function startRouter(state: LabState, step: (text: string) => void): void {
  const router = state.plan.router;
  if (!router) return;
  if (router.kind === 'plain') {
    step(`router ${router.ns}: plain forwarding between ${state.plan.lans.map((l) => l.cidr).join(' and ')}, no BGP`);
    return;
  }
  if (router.kind === 'bird') {
    const config = join(state.dir, 'bird.conf');
    const socket = join(state.dir, 'bird.ctl');
    writeFileSync(config, birdConfig(state.plan));
    spawnDetached(state, 'office-router', config, 'ip', [
      'netns',
      'exec',
      router.ns,
      BIRD2,
      '-f',
      '-c',
      config,
      '-s',
      socket,
    ]);
    step(`office router: BIRD 2 in ${router.ns}, AS ${router.asNumber} (birdc -s ${socket} show route)`);
    return;
  }
  const config = join(state.dir, 'frr.conf');
  writeFileSync(config, frrConfig(state.plan));
  const vty = join(state.dir, 'frr');
  mkdirSync(vty, { recursive: true });
  if (router.forwards) {
    // zebra installs bgpd's routes in the router namespace's kernel (forwarding between the subnets). It
    // has no "skip run-as": it runs as FRR's own user, so its directory is that user's.
    must('chown', ['frr:frr', vty]);
    spawnDetached(state, 'office-router-zebra', vty, 'ip', [
      'netns',
      'exec',
      router.ns,
      '/usr/lib/frr/zebra',
      '-P',
      '0',
      '-f',
      config,
      '-i',
      join(vty, 'zebra.pid'),
      '--vty_socket',
      vty,
      '-z',
      join(vty, 'zserv.api'),
    ]);
    const zserv = join(vty, 'zserv.api');
    for (let i = 0; i < 100 && !existsSync(zserv); i++)
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 50); // 50 ms, blocking
  }
  // -S: no user switching (we are root in a namespace); -P 0: no vty TCP port.
  spawnDetached(state, 'office-router', config, 'ip', [
    'netns',
    'exec',
    router.ns,
    '/usr/lib/frr/bgpd',
    '-S',
    '-P',
    '0',
    '-f',
    config,
    '-i',
    join(vty, 'bgpd.pid'),
    '--vty_socket',
    vty,
    ...(router.forwards ? ['-z', join(vty, 'zserv.api')] : ['-Z']),
  ]);
  step(
    `office router: FRR in ${router.ns}, AS ${router.asNumber} (vtysh --vty_socket ${vty} -c 'show bgp ipv4 unicast')`,
  );
}

/** The office router's own view of the routes (`birdc show route` / `vtysh -c 'show bgp ipv4 unicast'`). */
export function officeRouterRoutes(state: LabState): string {
  const router = state.plan.router;
  if (router === null || router.kind === 'plain') return '';
  const result =
    router.kind === 'bird'
      ? run(BIRD2_CLIENT, ['-s', join(state.dir, 'bird.ctl'), 'show', 'route'])
      : run('vtysh', ['--vty_socket', join(state.dir, 'frr'), '-c', 'show bgp ipv4 unicast']);
  return result.code === 0 ? result.stdout : `(the office router did not answer: ${result.stderr.trim()})\n`;
}
