// The live encapsulation switch (issue #21): one IPPool moved through `tortie apply` from IPIP CrossSubnet
// (the lab it runs in) to Never → VXLAN Always → IPIP Always → VXLAN CrossSubnet, with two continuous pings
// (every 50 ms) between workloads on different nodes, in the crosssubnet lab of ipip-checks.ts (4 nodes on
// two subnets joined by a plain router, real agents, real etcd). After each switch, once the routes have
// moved, it reads:
//   routes    every remote block: tunl0 (`via <node> dev tunl0 onlink`), VXLAN (`via <the Node's VXLAN
//             tunnel address> dev vxlan.calico onlink`) or direct (`via <node> dev eth0 onlink`), as the mode
//             says; no route left through a device the mode does not use (stale)
//   devices   VXLAN: vxlan.calico carries the Node's ipv4VXLANTunnelAddr/32 and vxlanTunnelMACAddr, with one
//             permanent neighbour and FDB entry per other node's VTEP and none stale; otherwise no vxlan.calico.
//             IPIP: tunl0 carries the Node's ipv4IPIPTunnelAddr/32; otherwise tunl0 has no address
//   IPAM      the Node records (and IPAM holds, by handle) the tunnel address of the mode only: IPIP's
//             `ipip-tunnel-addr-<node>` and VXLAN's `vxlan-tunnel-addr-<node>` are released when it goes
//   traffic   2 s of the streams: tunl0 counts them in IPIP only, vxlan.calico counts them in VXLAN
//   loss      per switch and stream, the echoes lost between this switch and the next (observe.ts
//             lossesBySwitch), against IN_FLIGHT below.
//
// The streams: "same" joins two nodes of one subnet (it must flow in every mode), "cross" joins the two
// subnets (it cannot flow in Never: no router knows the pods, so its losses across the Never phase are
// reported, not judged; it is judged on the switches between modes that carry it).

import type { Datastore } from '../../src/datastore/types.js';
import type { LabIpipMode, LabNode, LabWorkload } from '../../src/lab/plan.js';
import {
  counterDelta,
  highestReply,
  lossesBySwitch,
  parseFdbEntries,
  parseLink,
  parseLinkNames,
  parseNeighbourEntries,
  routesThrough,
  describeRoute,
  vxlanEntryProblems,
  VXLAN_DEVICE,
  type LinkObservation,
  type RemotePath,
  type VtepFacts,
} from './observe.js';
import {
  applyPool,
  check,
  continuousPing,
  ipJson,
  openLabDatastore,
  routePaths,
  routesOf,
  sh,
  sleep,
  SLOW,
  waitFor,
  type LabFacts,
} from './lab-harness.js';

/**
 * The loss allowed per switch and stream: echoes in flight, at most 2 at PING_INTERVAL_S. A switch changes
 * the path at two nodes, the sender's and the receiver's, each at its own moment; at each, the one packet
 * on the old path when it is replaced (the echo at the sender's node, the reply at the receiver's) may be
 * lost — the old device (tunl0's address, vxlan.calico) stays until the new path is in place, so nothing
 * else is. With round trips far below the 50 ms interval, no more than one echo is ever on the wire.
 */
export const IN_FLIGHT = 2;
const PING_INTERVAL_S = 0.05;

interface Step {
  name: string;
  modes: { ipipMode: LabIpipMode; vxlanMode: LabIpipMode };
  path: (from: LabNode, to: LabNode) => RemotePath;
  ipip: boolean;
  vxlan: boolean;
  /** Whether pods on different subnets reach each other in this mode. */
  crossFlows: boolean;
}

const STEPS: readonly Step[] = [
  {
    name: 'Never',
    modes: { ipipMode: 'Never', vxlanMode: 'Never' },
    path: () => 'direct',
    ipip: false,
    vxlan: false,
    crossFlows: false,
  },
  {
    name: 'VXLAN Always',
    modes: { ipipMode: 'Never', vxlanMode: 'Always' },
    path: () => 'vxlan',
    ipip: false,
    vxlan: true,
    crossFlows: true,
  },
  {
    name: 'IPIP Always',
    modes: { ipipMode: 'Always', vxlanMode: 'Never' },
    path: () => 'tunl0',
    ipip: true,
    vxlan: false,
    crossFlows: true,
  },
  {
    name: 'VXLAN CrossSubnet',
    modes: { ipipMode: 'Never', vxlanMode: 'CrossSubnet' },
    path: (from, to) => (from.subnet === to.subnet ? 'direct' : 'vxlan'),
    ipip: false,
    vxlan: true,
    crossFlows: true,
  },
];
/** The lab's own mode before the first switch (the crosssubnet lab): IPIP CrossSubnet carries both streams. */
const START_CROSS_FLOWS = true;

export const SWITCH_CHECK = 'crosssubnet/switch';

interface NodeTunnels {
  ipip?: string;
  vxlan?: string;
  mac?: string;
  nodeIp: string;
}

/** Every node's tunnel fields and how many addresses each tunnel handle holds in IPAM. */
async function tunnelFacts(
  f: LabFacts,
  ds: Datastore,
): Promise<{ nodes: Map<string, NodeTunnels>; handles: Map<string, number> }> {
  const nodes = new Map<string, NodeTunnels>();
  for (const n of f.state.plan.nodes) {
    const spec = (await ds.get('Node', n.name))?.spec;
    nodes.set(n.name, {
      nodeIp: n.ip,
      ...(spec?.bgp?.ipv4IPIPTunnelAddr !== undefined ? { ipip: spec.bgp.ipv4IPIPTunnelAddr } : {}),
      ...(spec?.ipv4VXLANTunnelAddr !== undefined ? { vxlan: spec.ipv4VXLANTunnelAddr } : {}),
      ...(spec?.vxlanTunnelMACAddr !== undefined ? { mac: spec.vxlanTunnelMACAddr } : {}),
    });
  }
  const handles = new Map<string, number>();
  for (const block of (await ds.list('IPAMBlock')).items)
    for (const slot of block.spec.allocations) {
      const handle = slot === null || slot === undefined ? undefined : block.spec.attributes[slot]?.handle_id;
      if (typeof handle === 'string' && /^(ipip|vxlan)-tunnel-addr-/.test(handle))
        handles.set(handle, (handles.get(handle) ?? 0) + 1);
    }
  return { nodes, handles };
}

/** What differs from the step's devices, entries, Node fields and IPAM handles; empty when all agree. */
async function deviceProblems(f: LabFacts, ds: Datastore, step: Step): Promise<string[]> {
  const problems: string[] = [];
  const { nodes, handles } = await tunnelFacts(f, ds);
  for (const n of f.state.plan.nodes) {
    const t = nodes.get(n.name)!;
    const say = (text: string): number => problems.push(`${n.name}: ${text}`);
    if (step.ipip !== (t.ipip !== undefined))
      say(`Node ipv4IPIPTunnelAddr ${t.ipip ?? 'unset'} (${step.ipip ? 'wanted' : 'not wanted'} in ${step.name})`);
    if (step.vxlan !== (t.vxlan !== undefined && t.mac !== undefined))
      say(
        `Node ipv4VXLANTunnelAddr ${t.vxlan ?? 'unset'}, vxlanTunnelMACAddr ${t.mac ?? 'unset'} (${step.vxlan ? 'wanted' : 'not wanted'})`,
      );
    for (const [kind, on] of [
      ['ipip', step.ipip],
      ['vxlan', step.vxlan],
    ] as const) {
      const held = handles.get(`${kind}-tunnel-addr-${n.name}`) ?? 0;
      if (held !== (on ? 1 : 0))
        say(`IPAM handle ${kind}-tunnel-addr-${n.name} holds ${held} addresses, wanted ${on ? 1 : 0}`);
    }
    const links = parseLinkNames(await ipJson(n.ns, '-j', 'link', 'show'));
    const routes = await routesOf(n.ns);
    const tunl0 = links.includes('tunl0')
      ? parseLink(await ipJson(n.ns, '-s', '-d', '-j', 'addr', 'show', 'dev', 'tunl0'), 'tunl0')
      : null;
    if (step.ipip) {
      if (tunl0 === null || !tunl0.up || tunl0.addresses.join() !== `${t.ipip}/32`)
        say(
          `tunl0 ${tunl0 ? `${tunl0.up ? 'UP' : 'DOWN'} [${tunl0.addresses.join(', ')}]` : 'missing'}, wanted UP with ${t.ipip}/32`,
        );
    } else {
      if (tunl0 !== null && tunl0.addresses.length > 0) say(`tunl0 still carries ${tunl0.addresses.join(', ')}`);
      for (const r of routesThrough(routes, 'tunl0')) say(`stale route ${describeRoute(r)}`);
    }
    if (step.vxlan) {
      if (!links.includes(VXLAN_DEVICE)) {
        say(`no ${VXLAN_DEVICE}`);
        continue;
      }
      const dev = parseLink(await ipJson(n.ns, '-s', '-d', '-j', 'addr', 'show', 'dev', VXLAN_DEVICE), VXLAN_DEVICE);
      const mac = JSON.parse(await ipJson(n.ns, '-j', 'link', 'show', 'dev', VXLAN_DEVICE)) as Array<{
        address?: string;
      }>;
      if (dev.kind !== 'vxlan' || !dev.up || dev.addresses.join() !== `${t.vxlan}/32`)
        say(
          `${VXLAN_DEVICE} ${dev.kind} ${dev.up ? 'UP' : 'DOWN'} [${dev.addresses.join(', ')}], wanted vxlan UP with ${t.vxlan}/32`,
        );
      if (mac[0]?.address?.toLowerCase() !== t.mac?.toLowerCase())
        say(`${VXLAN_DEVICE} MAC ${mac[0]?.address ?? 'none'}, the Node records ${t.mac ?? 'none'}`);
      const vteps: VtepFacts[] = [];
      for (const o of f.state.plan.nodes) {
        const ot = nodes.get(o.name)!;
        if (o.name !== n.name && ot.vxlan !== undefined && ot.mac !== undefined)
          vteps.push({ node: o.name, nodeIp: o.ip, tunnelAddress: ot.vxlan, mac: ot.mac });
      }
      if (vteps.length !== f.state.plan.nodes.length - 1)
        say(`only ${vteps.length} other nodes have a VTEP in the datastore`);
      const neigh = parseNeighbourEntries(await ipJson(n.ns, '-j', 'neigh', 'show', 'dev', VXLAN_DEVICE));
      const fdb = await sh('bridge', ['-n', n.ns, '-j', 'fdb', 'show', 'dev', VXLAN_DEVICE]);
      if (fdb.code !== 0) say(`bridge fdb show failed: ${fdb.stderr.trim()}`);
      for (const p of vxlanEntryProblems(neigh, parseFdbEntries(fdb.stdout), vteps)) say(p);
    } else {
      if (links.includes(VXLAN_DEVICE)) say(`${VXLAN_DEVICE} still exists`);
      for (const r of routesThrough(routes, VXLAN_DEVICE)) say(`stale route ${describeRoute(r)}`);
    }
  }
  return problems;
}

async function vteps(f: LabFacts, ds: Datastore): Promise<Map<string, string | undefined>> {
  const { nodes } = await tunnelFacts(f, ds);
  return new Map([...nodes].map(([name, t]) => [name, t.vxlan]));
}

/** Counters of `dev` on every node that has it (a node without it: absent from the map). */
async function countersIfPresent(f: LabFacts, dev: string): Promise<Map<string, LinkObservation>> {
  const out = new Map<string, LinkObservation>();
  for (const n of f.state.plan.nodes) {
    if (!parseLinkNames(await ipJson(n.ns, '-j', 'link', 'show')).includes(dev)) continue;
    out.set(n.name, parseLink(await ipJson(n.ns, '-s', '-d', '-j', 'addr', 'show', 'dev', dev), dev));
  }
  return out;
}

export async function encapSwitchCheck(f: LabFacts): Promise<void> {
  await check(
    `${SWITCH_CHECK}: the live pool IPIP CrossSubnet → Never → VXLAN Always → IPIP Always → VXLAN CrossSubnet with two pings every 50 ms: routes, devices, entries and tunnel addresses follow, each switch loses at most ${IN_FLIGHT} echoes per stream`,
    async (c) => {
      const { plan } = f.state;
      const subnet = (w: LabWorkload): number => f.node(w.node).subnet;
      const same = plan.workloads.find((a) =>
        plan.workloads.some((b) => b.node !== a.node && subnet(b) === subnet(a)),
      )!;
      const sameTo = plan.workloads.find((b) => b.node !== same.node && subnet(b) === subnet(same))!;
      const cross = plan.workloads.find((a) => a.node !== same.node && a.node !== sameTo.node)!;
      const crossTo = plan.workloads.find((b) => subnet(b) !== subnet(cross) && b.node !== cross.node)!;
      const streams = [
        {
          name: `same ${same.pod} → ${sameTo.pod}`,
          from: same,
          flows: (_: Step | null) => true,
          run: continuousPing(same.ns, f.ip(sameTo), PING_INTERVAL_S),
        },
        {
          name: `cross ${cross.pod} → ${crossTo.pod}`,
          from: cross,
          flows: (s: Step | null) => (s === null ? START_CROSS_FLOWS : s.crossFlows),
          run: continuousPing(cross.ns, f.ip(crossTo), PING_INTERVAL_S),
        },
      ];
      await sleep(1000);
      const marks: number[][] = streams.map(() => []);
      const stepTimes: string[] = [];
      const ds = await openLabDatastore(f.state);
      try {
        for (const step of STEPS) {
          streams.forEach((s, i) => marks[i]!.push(highestReply(s.run.peek())));
          const begun = Date.now();
          const applied = await applyPool(f.state, step.modes);
          if (
            !c.expect(
              applied.code === 0,
              `${step.name}: tortie apply failed, exit ${applied.code}: ${applied.stderr.trim() || applied.stdout.trim()}`,
            )
          )
            return;
          // Settled: every route has the mode's shape and every device, entry and tunnel address agrees.
          const settled = await waitFor(
            async () =>
              (await routePaths(f, step.path, await vteps(f, ds))).wrong.length === 0 &&
              (await deviceProblems(f, ds, step)).length === 0
                ? true
                : undefined,
            30_000 * SLOW,
            500,
          );
          const took = ((Date.now() - begun) / 1000).toFixed(1);
          stepTimes.push(`${step.name} ${settled ? `${took} s` : 'never'}`);
          const { lines, wrong } = await routePaths(f, step.path, await vteps(f, ds));
          const problems = await deviceProblems(f, ds, step);
          c.fact(
            `${step.name}: apply ${applied.ms} ms; ${settled ? `settled ${took} s after the apply` : `NOT settled within ${30 * SLOW} s`}; e.g. ${lines[0] ?? '(no route)'}${lines.length > 1 ? ` | ${lines[lines.length - 1]}` : ''}`,
          );
          wrong.forEach((w) => c.expect(false, `${step.name}: ${w}`));
          problems.forEach((p) => c.expect(false, `${step.name}: ${p}`));
          // The traffic follows: 2 s of both streams (20 echoes/s each), 300 ms after settling.
          await sleep(300);
          const tBefore = await countersIfPresent(f, 'tunl0');
          const vBefore = await countersIfPresent(f, VXLAN_DEVICE);
          await sleep(2000);
          const tAfter = await countersIfPresent(f, 'tunl0');
          const vAfter = await countersIfPresent(f, VXLAN_DEVICE);
          const delta = (a: Map<string, LinkObservation>, b: Map<string, LinkObservation>, node: string) =>
            a.has(node) && b.has(node) ? counterDelta(a.get(node)!, b.get(node)!) : null;
          const shown: string[] = [];
          for (const n of plan.nodes) {
            const t = delta(tBefore, tAfter, n.name);
            const v = delta(vBefore, vAfter, n.name);
            shown.push(`${n.name} tunl0 ${t ? `+${t.rx}/+${t.tx}` : '-'} vxlan ${v ? `+${v.rx}/+${v.tx}` : '-'}`);
            if (!step.ipip && t !== null)
              c.expect(
                t.rx === 0 && t.tx === 0,
                `${step.name}: ${n.name}'s tunl0 counted RX +${t.rx} TX +${t.tx}, but no route uses it`,
              );
          }
          c.fact(`${step.name}: packets RX/TX over 2 s: ${shown.join(', ')}`);
          for (const s of streams) {
            const to = f.node(s === streams[0] ? sameTo.node : crossTo.node);
            const path = step.path(f.node(s.from.node), to);
            if (!s.flows(step) || path === 'direct') continue;
            const d = delta(path === 'tunl0' ? tBefore : vBefore, path === 'tunl0' ? tAfter : vAfter, s.from.node);
            c.expect(
              d !== null && d.tx >= 10 && d.rx >= 10,
              `${step.name}: ${s.name} goes ${path}, but ${s.from.node}'s ${path === 'tunl0' ? 'tunl0' : VXLAN_DEVICE} counted ${d ? `RX +${d.rx} TX +${d.tx}` : 'nothing (no device)'} over 2 s of 20 echoes/s`,
            );
          }
        }
      } finally {
        for (let i = 0; i < streams.length; i++) {
          const s = streams[i]!;
          const r = await s.run.stop();
          const { before, windows } = lossesBySwitch(r.seen, marks[i]!);
          const judged: string[] = [];
          windows.forEach((lost, k) => {
            const from = k === 0 ? null : STEPS[k - 1]!;
            const to = STEPS[k]!;
            const fair = s.flows(from) && s.flows(to);
            judged.push(
              `${from?.name ?? 'IPIP CrossSubnet'} → ${to.name}: ${lost.length}${fair ? '' : ' (not judged: a mode that cannot carry it)'}`,
            );
            if (fair)
              c.expect(
                lost.length <= IN_FLIGHT,
                `${s.name}: the switch to ${to.name} lost ${lost.length} echoes (icmp_seq ${lost.join(', ')}), more than the ${IN_FLIGHT} in flight`,
              );
          });
          c.fact(
            `${s.name}: ${r.seen.replies.length} replies over ${(r.ms / 1000).toFixed(1)} s; lost per switch: ${judged.join('; ')}${before.length > 0 ? `; ${before.length} before the first switch` : ''}`,
          );
          c.expect(
            r.endedEarly !== true,
            `${s.name}: ping ended by itself (exit ${r.code}) before the check stopped it: ${r.output.trim().split('\n').slice(-3).join(' | ')}`,
          );
          c.expect(
            r.seen.replies.length >= 20,
            `${s.name}: only ${r.seen.replies.length} replies: the stream did not run`,
          );
          c.expect(
            before.length === 0,
            `${s.name}: lost ${before.length} echoes before any switch (icmp_seq ${before.join(', ')})`,
          );
          // A stream dead after the last switch shows no loss in the windows: it must answer at the end.
          const last = marks[i]![marks[i]!.length - 1] ?? 0;
          c.expect(
            highestReply(r.seen) > last + 20,
            `${s.name}: no more than 20 replies after the last switch (highest icmp_seq ${highestReply(r.seen)}, ${last} at the switch)`,
          );
        }
        c.fact(`settled: ${stepTimes.join(', ')}`);
        await ds.close();
      }
    },
  );
}
