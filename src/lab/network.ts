// The lab's network: namespaces for nodes, bridges (one per subnet), the router's legs and the nodes' eth0,
// all inside namespaces the lab makes (nothing on the host); and reading a namespace's kernel routes.

import { must, run } from './processes.js';
import type { LabState } from './state.js';

function ipIn(ns: string, ...args: string[]): string {
  return must('ip', ['-n', ns, ...args]);
}

function sysctlIn(ns: string, key: string, value: string): void {
  must('ip', ['netns', 'exec', ns, 'sysctl', '-q', '-w', `${key}=${value}`]);
}

export function existingNamespaces(): string[] {
  const out = run('ip', ['netns', 'list']);
  return out.stdout
    .split('\n')
    .map((line) => line.split(' ')[0] ?? '')
    .filter((name) => name !== '');
}

export function buildNetwork(state: LabState, step: (text: string) => void): void {
  const { plan } = state;
  for (const ns of plan.namespaces) {
    must('ip', ['netns', 'add', ns]);
    ipIn(ns, 'link', 'set', 'lo', 'up');
  }
  for (const lan of plan.lans) {
    ipIn(lan.ns, 'link', 'add', 'br0', 'type', 'bridge');
    ipIn(lan.ns, 'link', 'set', 'br0', 'up');
  }
  const lanOf = (subnet: number) => plan.lans.find((l) => l.subnet === subnet)!;
  if (plan.router) {
    for (const leg of plan.router.legs) {
      const lan = lanOf(leg.subnet);
      ipIn(plan.router.ns, 'link', 'add', leg.device, 'type', 'veth', 'peer', 'name', leg.lanPort, 'netns', lan.ns);
      ipIn(plan.router.ns, 'addr', 'add', `${leg.ip}/${leg.prefixLength}`, 'dev', leg.device);
      ipIn(plan.router.ns, 'link', 'set', leg.device, 'up');
      ipIn(lan.ns, 'link', 'set', leg.lanPort, 'master', 'br0', 'up');
    }
    if (plan.router.forwards) sysctlIn(plan.router.ns, 'net.ipv4.ip_forward', '1');
  }
  for (const node of plan.nodes) {
    const lan = lanOf(node.subnet);
    ipIn(node.ns, 'link', 'add', 'eth0', 'type', 'veth', 'peer', 'name', node.lanPort, 'netns', lan.ns);
    ipIn(node.ns, 'addr', 'add', `${node.ip}/${node.prefixLength}`, 'dev', 'eth0');
    ipIn(node.ns, 'link', 'set', 'eth0', 'up');
    ipIn(lan.ns, 'link', 'set', node.lanPort, 'master', 'br0', 'up');
    for (const route of node.staticRoutes) ipIn(node.ns, 'route', 'add', ...route.split(' '));
    // A node routes for its pods (felix checks it too).
    sysctlIn(node.ns, 'net.ipv4.ip_forward', '1');
  }
  step(
    `network: ${plan.lans.length} subnet(s) ${plan.lans.map((l) => l.cidr).join(', ')}, ${plan.nodes.length} node namespaces${plan.router ? `, router ${plan.router.ns}` : ''}`,
  );
}

/** The destinations in a namespace's main table, each as a CIDR (a host route as /32). */
export function kernelDestinations(ns: string): string[] {
  const out = run('ip', ['-n', ns, '-4', '-json', 'route', 'show', 'table', 'main']);
  if (out.code !== 0) return [];
  const routes = JSON.parse(out.stdout || '[]') as Array<{ dst: string }>;
  return routes.map((r) => (r.dst.includes('/') || r.dst === 'default' ? r.dst : `${r.dst}/32`));
}

/** For `lab status` on a lab whose state file names a namespace that is gone (someone deleted it). */
export function missingNamespaces(state: LabState): string[] {
  const have = new Set(existingNamespaces());
  return state.plan.namespaces.filter((ns) => !have.has(ns));
}
