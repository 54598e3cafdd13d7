// The lab's topology as a pure function of its options: namespace and interface names, underlay
// addresses, which node sits on which bridge, the workloads, and the Calico resources that make the
// requested BGP design. `lab.ts` carries the plan out; tests check the plan without a kernel.
//
// Shapes:
//   --subnets 1  one bridge namespace (<name>-lan1, bridge br0) with every node's eth0 on 198.19.1.0/24;
//                --mode mesh: Calico's node-to-node mesh; --mode rr: mesh off, nodes 1 (and 2, with 4 or
//                more nodes) are route reflectors (label route-reflector=true, cluster id 244.0.0.1) and
//                every node peers with them (BGPPeer nodeSelector all(), peerSelector route-reflector).
//                An office router (--office-router bird|frr) is one more namespace on the bridge, .1,
//                AS 65001, a global BGPPeer of every node.
//   --subnets 2  two bridges (198.19.1.0/24, 198.19.2.0/24) joined by a router namespace (.1 on each).
//                With an office router there, nodes peer with it only (mesh off, like Calico's "one AS,
//                peering with the top-of-rack router" design): a mesh or a reflector would hand a node
//                routes whose next hop sits on the other subnet, unreachable without encapsulation. The
//                router passes routes between nodes of the same AS, so its BGPPeers allow our own AS once
//                in the path (numAllowedLocalASNumbers: 1).
//                Without one (--office-router none) the router only forwards (plain routing, static
//                routes on the nodes to the other subnet) and the nodes mesh or use reflectors as on one
//                subnet — which works only with encapsulation, IPIP or VXLAN (Always or CrossSubnet): a
//                packet for a pod on the other subnet is sent to that node's address inside a tunl0 (or
//                UDP 4789 vxlan.calico) packet, routed by the router.
// Names stay short: Linux allows 15 bytes per interface name.

import type { EncapMode } from '../resources/types.js';

export type LabMode = 'mesh' | 'rr';
export type OfficeRouter = 'bird' | 'frr' | 'none';
/** The lab pool's ipipMode: the resource's own type. */
export type LabIpipMode = EncapMode;

export interface LabOptions {
  /** Prefix of every namespace this lab makes (default "tlab"). */
  name: string;
  nodes: number;
  mode: LabMode;
  subnets: 1 | 2;
  officeRouter: OfficeRouter;
  ipipMode: LabIpipMode;
  /** The lab pool's vxlanMode (--vxlan); at most one of ipipMode and vxlanMode is not Never. */
  vxlanMode: LabIpipMode;
  /** The agents' CALICO_NETWORKING_BACKEND (--backend): `vxlan` runs no BGP at all. */
  backend: 'bird' | 'vxlan';
  workloadsPerNode: number;
  poolCidr: string;
}

export const LAB_DEFAULTS: LabOptions = {
  name: 'tlab',
  nodes: 3,
  mode: 'mesh',
  subnets: 1,
  officeRouter: 'none',
  ipipMode: 'Never',
  vxlanMode: 'Never',
  backend: 'bird',
  workloadsPerNode: 1,
  poolCidr: '10.244.0.0/16',
};

export const LAB_AS = 64512;
export const OFFICE_AS = 65001;
const CLUSTER_ID = '244.0.0.1';

export interface LabLan {
  subnet: number;
  ns: string;
  cidr: string;
  /** The router's (or office router's) address on this subnet. */
  gateway: string;
}

export interface LabNode {
  name: string;
  ns: string;
  subnet: number;
  ip: string;
  prefixLength: number;
  /** The node end of its link is `eth0`; the bridge end, in the lan namespace, is this. */
  lanPort: string;
  routeReflector: boolean;
  /** Routes the node needs besides its own subnet (to the other subnet through a plain router). */
  staticRoutes: string[];
}

export interface LabWorkload {
  node: string;
  ns: string;
  /** Kubernetes namespace and pod name the CNI plugin is told. */
  namespace: string;
  pod: string;
  containerId: string;
}

export interface LabRouter {
  /** `plain`: forwards between the subnets, no BGP. */
  kind: Exclude<OfficeRouter, 'none'> | 'plain';
  ns: string;
  asNumber: number;
  /** One leg per subnet: `eth<subnet>` in the router namespace, `r<subnet>` on the bridge. */
  legs: Array<{ subnet: number; device: string; lanPort: string; ip: string; prefixLength: number }>;
  forwards: boolean;
}

export interface LabPlan {
  options: LabOptions;
  lans: LabLan[];
  nodes: LabNode[];
  workloads: LabWorkload[];
  router: LabRouter | null;
  /** projectcalico.org/v3 objects to store before the agents start. */
  resources: Array<{
    kind: string;
    metadata: { name: string; labels?: Record<string, string> };
    spec: Record<string, unknown>;
  }>;
  /** Every namespace, in creation order (removed in reverse). */
  namespaces: string[];
}

export class LabOptionError extends Error {}

const NAME = /^[a-z][a-z0-9]{0,5}$/;

/** Checks the options; every refusal names the option, the value and what is accepted. */
export function validateLabOptions(options: LabOptions): void {
  const problems: string[] = [];
  if (!NAME.test(options.name))
    problems.push(
      `--name "${options.name}": 1 to 6 lower-case letters or digits, starting with a letter (namespace and interface names are built from it)`,
    );
  if (!Number.isInteger(options.nodes) || options.nodes < 2 || options.nodes > 20)
    problems.push(`--nodes ${options.nodes}: a lab has 2 to 20 nodes`);
  if (!Number.isInteger(options.workloadsPerNode) || options.workloadsPerNode < 1 || options.workloadsPerNode > 8) {
    problems.push(`--workloads ${options.workloadsPerNode}: 1 to 8 workloads per node`);
  }
  if (options.ipipMode !== 'Never' && options.vxlanMode !== 'Never') {
    problems.push(
      `--ipip ${options.ipipMode} with --vxlan ${options.vxlanMode}: a pool uses one encapsulation (Calico refuses ipipMode and vxlanMode both on); set one to Never`,
    );
  }
  if (options.backend === 'vxlan' && (options.vxlanMode === 'Never' || options.officeRouter !== 'none')) {
    problems.push(
      `--backend vxlan (no BGP at all) needs --vxlan Always or CrossSubnet and --office-router none (got --vxlan ${options.vxlanMode}, --office-router ${options.officeRouter})`,
    );
  }
  if (options.subnets === 2) {
    if (options.officeRouter === 'none' && options.ipipMode === 'Never' && options.vxlanMode === 'Never') {
      problems.push(
        '--subnets 2 with --office-router none needs --ipip or --vxlan Always or CrossSubnet: without BGP on the router, a node reaches pods on the other subnet only through a tunnel (or add --office-router bird|frr)',
      );
    }
    if (options.officeRouter !== 'none' && options.mode === 'rr') {
      problems.push(
        '--subnets 2 with an office router and --mode rr: a reflector would give nodes next hops on the other subnet, unreachable without encapsulation; with two subnets and an office router every node peers with the router',
      );
    }
    if (options.nodes < 4)
      problems.push(`--subnets 2 with --nodes ${options.nodes}: two subnets need at least 4 nodes (two on each)`);
  }
  if (problems.length > 0) throw new LabOptionError(problems.join('\n'));
}

export function planLab(options: LabOptions): LabPlan {
  validateLabOptions(options);
  const { name } = options;
  const lans: LabLan[] = [];
  for (let subnet = 1; subnet <= options.subnets; subnet++) {
    lans.push({ subnet, ns: `${name}-lan${subnet}`, cidr: `198.19.${subnet}.0/24`, gateway: `198.19.${subnet}.1` });
  }
  const perSubnet = Math.ceil(options.nodes / options.subnets);
  const reflectors = options.mode === 'rr' ? (options.nodes >= 4 ? 2 : 1) : 0;
  const plainRouter = options.subnets === 2 && options.officeRouter === 'none';
  const nodes: LabNode[] = [];
  for (let i = 1; i <= options.nodes; i++) {
    const subnet = Math.min(options.subnets, Math.ceil(i / perSubnet));
    const staticRoutes = plainRouter
      ? lans.filter((l) => l.subnet !== subnet).map((l) => `${l.cidr} via 198.19.${subnet}.1`)
      : [];
    nodes.push({
      staticRoutes,
      name: `node-${i}`,
      ns: `${name}-n${i}`,
      subnet,
      ip: `198.19.${subnet}.${10 + i}`,
      prefixLength: 24,
      lanPort: `n${i}`,
      routeReflector: i <= reflectors,
    });
  }
  const workloads: LabWorkload[] = [];
  for (const node of nodes) {
    for (let w = 0; w < options.workloadsPerNode; w++) {
      const letter = String.fromCharCode(97 + w);
      const index = node.name.slice('node-'.length);
      workloads.push({
        node: node.name,
        ns: `${name}-w${index}${letter}`,
        namespace: 'lab',
        pod: `pod-${index}${letter}`,
        containerId: `${name}-${index}${letter}`,
      });
    }
  }
  const routerKind = options.officeRouter === 'none' ? (options.subnets === 2 ? 'plain' : null) : options.officeRouter;
  const router: LabRouter | null =
    routerKind === null
      ? null
      : {
          kind: routerKind,
          ns: `${name}-rtr`,
          asNumber: OFFICE_AS,
          legs: lans.map((lan) => ({
            subnet: lan.subnet,
            device: `eth${lan.subnet}`,
            lanPort: `r${lan.subnet}`,
            ip: lan.gateway,
            prefixLength: 24,
          })),
          forwards: options.subnets === 2,
        };

  const resources: LabPlan['resources'] = [
    {
      kind: 'IPPool',
      metadata: { name: 'lab-pool' },
      spec: {
        cidr: options.poolCidr,
        blockSize: 26,
        ipipMode: options.ipipMode,
        vxlanMode: options.vxlanMode,
        natOutgoing: false,
        nodeSelector: 'all()',
      },
    },
    {
      kind: 'BGPConfiguration',
      metadata: { name: 'default' },
      spec: {
        asNumber: LAB_AS,
        nodeToNodeMeshEnabled: options.mode === 'mesh' && (options.subnets === 1 || plainRouter),
        logSeverityScreen: 'Info',
      },
    },
  ];
  for (const node of nodes) {
    const labels: Record<string, string> = { 'lab-subnet': String(node.subnet) };
    if (node.routeReflector) labels['route-reflector'] = 'true';
    resources.push({
      kind: 'Node',
      metadata: { name: node.name, labels },
      spec: {
        bgp: {
          ipv4Address: `${node.ip}/${node.prefixLength}`,
          ...(node.routeReflector ? { routeReflectorClusterID: CLUSTER_ID } : {}),
        },
      },
    });
  }
  if (reflectors > 0) {
    resources.push({
      kind: 'BGPPeer',
      metadata: { name: 'peer-with-route-reflectors' },
      spec: { nodeSelector: 'all()', peerSelector: "route-reflector == 'true'" },
    });
  }
  if (router !== null && router.kind !== 'plain') {
    for (const leg of router.legs) {
      resources.push({
        kind: 'BGPPeer',
        metadata: { name: options.subnets === 1 ? 'office-router' : `office-router-subnet-${leg.subnet}` },
        spec: {
          ...(options.subnets === 1
            ? {}
            : { nodeSelector: `lab-subnet == '${leg.subnet}'`, numAllowedLocalASNumbers: 1 }),
          peerIP: leg.ip,
          asNumber: router.asNumber,
        },
      });
    }
  }
  const namespaces = [
    ...lans.map((l) => l.ns),
    ...(router ? [router.ns] : []),
    ...nodes.map((n) => n.ns),
    ...workloads.map((w) => w.ns),
  ];
  return { options, lans, nodes, workloads, router, resources, namespaces };
}

/**
 * Whether traffic from `from`'s pods to `to`'s block goes through tunl0 under the lab's pool: always with
 * ipipMode Always, across subnets with CrossSubnet, never with Never. (Where the kernel has no IPIP those
 * routes cannot be programmed, and the lab does not wait for them.)
 */
export function needsTunnel(plan: LabPlan, from: LabNode, to: LabNode): boolean {
  const mode = plan.options.ipipMode;
  return mode === 'Always' || (mode === 'CrossSubnet' && from.subnet !== to.subnet);
}
