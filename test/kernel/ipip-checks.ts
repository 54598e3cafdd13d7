// IPIP for real (issue #10): tortie labs in a kernel that has IPIP, with the real agents, etcd and CNI
// plugin started by the lab code (src/lab/lab.ts), and traffic that must cross tunl0 — or must not.
//
//   npm run test:kernel                         # builds, then runs this inside the VM (scripts/vm/test-kernel.sh)
//   node dist/test/kernel/ipip-checks.js        # directly, as root, on a machine whose kernel has IPIP
//
// Prints one PASS/FAIL line per check with the numbers behind it (tunl0 packet counters, route shapes,
// ping losses, times), and exits 1 when any check failed or could not run. TORTIE_KERNEL_ONLY=always or
// =crosssubnet runs one lab only.
//
//   lab "always": ipipMode Always, 3 nodes on one subnet
//     tunl0      every node: an ipip device, up, carrying its Node's ipv4IPIPTunnelAddr as a /32 (inside
//                one of its blocks), MTU = eth0's − 20
//     routes     every node: each other node's block `via <node> dev tunl0 onlink`, its own a blackhole
//     traffic    every workload pings every other (3 echoes each); every node's tunl0 RX and TX packet
//                counters grow by at least the echoes and replies that crossed it
//     mtu        DF set: 1400 bytes and exactly the tunnel MTU (payload MTU − 28) pass; one byte more fails
//                at once with "Frag needed" / "message too long", not a timeout
//     repair     tunl0 broken by hand (MTU 1300, address gone, down) while the agent is dead: the restarted
//                agent puts MTU, address and up back, and pods reach each other again
//     switch     the live IPPool through `tortie apply`: Always → Never → Always → CrossSubnet, with two
//                continuous pings (20/s) running: every route moves to the shape of the mode, the echoes
//                follow (tunl0 counts them in Always, nothing in Never/CrossSubnet), and no stream loses
//                more than one echo per switch (the one in flight)
//   lab "crosssubnet": ipipMode CrossSubnet, 4 nodes on two subnets joined by a plain router (no BGP)
//     routes     same-subnet blocks `via <node> dev eth0 onlink`, other-subnet blocks via tunl0
//     same       pings between same-subnet workloads pass and leave every tunl0 counter unchanged
//     cross      pings between the subnets pass, and every node's tunl0 counts them
//     matrix     the lab's own ping matrix: every workload reaches every other
//     switch     the live pool → Never → VXLAN Always → IPIP Always → VXLAN CrossSubnet with two pings every
//                50 ms: routes, vxlan.calico / tunl0, neighbour and FDB entries, the Nodes' tunnel addresses and
//                their IPAM handles follow each mode with nothing stale; per switch and stream at most the
//                echoes in flight are lost (encap-switch.ts says which and why)
//
// The shared machinery (processes, the report, lab facts, withLab) is in lab-harness.ts.
//
// Why this is hard: an IPIP setup can have every route right and carry nothing (no tunnel address, wrong
// MTU, rp_filter, an onlink next hop that is not on the underlay), and a check that reads the wrong device
// passes forever. So every claim is measured on the traffic itself (counters before/after, echoes by
// sequence number) and every reader is unit-tested (observe.test.ts). Everything is bounded in time; the
// labs are taken down in `finally`.

import { readFileSync } from 'node:fs';
import { ipCommand } from '../../felix/ip-command.js';
import { checkIpip } from '../../ipip/tunl0.js';
import { labPing, killAgent, nodeStatus, startAgent } from '../../src/lab/lab.js';
import type { LabIpipMode, LabWorkload } from '../../src/lab/plan.js';
import { encapSwitchCheck, SWITCH_CHECK } from './encap-switch.js';
import { counterDelta, largestEchoPayload, type RemotePath } from './observe.js';
import {
  allPairs,
  applyPool,
  check,
  continuousPing,
  counters,
  inCidr,
  link,
  ipJson,
  ping,
  pingPairs,
  results,
  routePaths,
  routesOf,
  running,
  since,
  sh,
  sleep,
  SLOW,
  suffix,
  tunnelAddresses,
  waitFor,
  withLab,
} from './lab-harness.js';

const ALWAYS_CHECKS = [
  'always/tunl0',
  'always/routes',
  'always/traffic',
  'always/mtu',
  'always/repair',
  'always/switch',
] as const;
/** The live IPIP/VXLAN switch is opt-in (TORTIE_KERNEL_SWITCH=1): scripts/vm/README.md says why. */
const SWITCH_ON = process.env.TORTIE_KERNEL_SWITCH === '1';
const CROSS_CHECKS = [
  'crosssubnet/routes',
  'crosssubnet/same',
  'crosssubnet/cross',
  'crosssubnet/matrix',
  ...(SWITCH_ON ? [SWITCH_CHECK] : []),
];

async function alwaysLab(): Promise<void> {
  await withLab({ name: `ka${suffix}`, nodes: 3, ipipMode: 'Always' }, ALWAYS_CHECKS, async (f) => {
    const { plan } = f.state;
    const tunnel = await tunnelAddresses(f.state);

    await check(
      'always/tunl0: an ipip device on every node, up, with its tunnel address /32 and MTU eth0 − 20',
      async (c) => {
        for (const n of plan.nodes) {
          const t = await link(n.ns, 'tunl0');
          const eth0 = await link(n.ns, 'eth0');
          const address = tunnel.get(n.name);
          c.fact(
            `${n.name}: tunl0 kind ${t.kind || '?'}, ${t.up ? 'UP' : 'DOWN'}, MTU ${t.mtu} (eth0 ${eth0.mtu}), addresses ${t.addresses.join(' ') || 'none'}; Node ipv4IPIPTunnelAddr ${address ?? 'unset'}`,
          );
          c.expect(t.kind === 'ipip', `${n.name}: tunl0 is "${t.kind}", not an ipip tunnel`);
          c.expect(t.up, `${n.name}: tunl0 is not up`);
          c.expect(
            t.mtu === eth0.mtu - 20,
            `${n.name}: tunl0 MTU ${t.mtu}, wanted eth0's ${eth0.mtu} − 20 = ${eth0.mtu - 20}`,
          );
          if (c.expect(address !== undefined, `${n.name}: the Node has no spec.bgp.ipv4IPIPTunnelAddr`)) {
            c.expect(
              t.addresses.length === 1 && t.addresses[0] === `${address}/32`,
              `${n.name}: tunl0 carries [${t.addresses.join(', ')}], wanted exactly ${address}/32`,
            );
            c.expect(
              (f.blocks.get(n.name) ?? []).some((b) => inCidr(address!, b)),
              `${n.name}: tunnel address ${address} is in none of its blocks ${(f.blocks.get(n.name) ?? []).join(', ')}`,
            );
          }
        }
      },
    );

    await check(
      "always/routes: every other node's block via that node, dev tunl0 onlink; own block a blackhole",
      async (c) => {
        const { lines, wrong } = await routePaths(f, () => 'tunl0');
        lines.forEach((l) => c.fact(l));
        wrong.forEach((w) => c.expect(false, w));
        for (const n of plan.nodes) {
          const routes = await routesOf(n.ns);
          for (const block of f.blocks.get(n.name) ?? []) {
            c.expect(
              routes.some((r) => r.dst === block && r.type === 'blackhole'),
              `${n.name}: no blackhole for its own block ${block}`,
            );
          }
        }
      },
    );

    await check(
      'always/traffic: every workload pings every other through tunl0; each tunl0 counts the echoes and replies',
      async (c) => {
        const before = await counters(f);
        const echoes = 3;
        const { failures, crossing } = await pingPairs(
          f,
          allPairs(plan.workloads, () => true),
          echoes,
        );
        const after = await counters(f);
        failures.forEach((x) => c.expect(false, x));
        c.fact(
          `${plan.workloads.length * (plan.workloads.length - 1)} pairs × ${echoes} echoes, ${failures.length} failed`,
        );
        for (const n of plan.nodes) {
          const d = counterDelta(before.get(n.name)!, after.get(n.name)!);
          const want = crossing.get(n.name)!;
          c.fact(`${n.name}: tunl0 RX +${d.rx} TX +${d.tx} packets (at least ${want} each way)`);
          c.expect(want > 0, `${n.name}: no pair crossed between nodes (the lab has one node?)`);
          c.expect(
            d.rx >= want && d.tx >= want,
            `${n.name}: tunl0 counted RX +${d.rx} TX +${d.tx}, fewer than the ${want} packets each way that crossed it`,
          );
        }
      },
    );

    await check(
      'always/mtu: DF set — 1400 bytes and exactly the tunnel MTU pass, one byte more fails at once',
      async (c) => {
        const [a, b] = plan.workloads;
        const t = await link(f.node(a!.node).ns, 'tunl0');
        const fits = largestEchoPayload(t.mtu);
        const small = await ping(a!.ns, f.ip(b!), { count: 1, size: 1400 - 28, dontFragment: true });
        const exact = await ping(a!.ns, f.ip(b!), { count: 1, size: fits, dontFragment: true });
        // Refused at once by the forwarding node ("Frag needed", with the MTU) and then by the sender's own
        // path MTU cache ("message too long"); the evidence of a clean failure is those lines, not a time.
        const big = await ping(a!.ns, f.ip(b!), {
          count: 2,
          intervalS: 0.3,
          size: fits + 1,
          dontFragment: true,
          waitS: 1,
        });
        c.fact(
          `${a!.pod} → ${b!.pod}: -s ${1400 - 28} (1400 bytes) ${small.seen.replies.length}/1; -s ${fits} (${fits + 28} = tunl0 MTU ${t.mtu}) ${exact.seen.replies.length}/1; -s ${fits + 1} (${fits + 29}) exit ${big.code} in ${big.ms} ms: ${big.seen.tooBig.join(' | ') || big.output.trim().split('\n').slice(-3).join(' | ')}`,
        );
        c.expect(small.seen.replies.length === 1, `a 1400-byte echo with DF did not pass: ${small.output.trim()}`);
        c.expect(
          exact.seen.replies.length === 1,
          `a ${fits + 28}-byte echo (the tunnel MTU) with DF did not pass: ${exact.output.trim()}`,
        );
        c.expect(big.code !== 0 && big.seen.replies.length === 0, `a ${fits + 29}-byte echo with DF was answered`);
        c.expect(
          big.seen.tooBig.length > 0,
          `a ${fits + 29}-byte echo with DF failed without "Frag needed"/"message too long": ${big.output.trim()}`,
        );
        c.expect(
          big.seen.tooBig.some((l) => l.includes(String(t.mtu))),
          `the refusal does not name tunl0's MTU ${t.mtu}: ${big.seen.tooBig.join(' | ')}`,
        );
      },
    );

    await check(
      'always/repair: tunl0 broken while the agent is down (MTU 1300, no address, down) — the restarted agent repairs it',
      async (c) => {
        const n = plan.nodes[0]!;
        const address = tunnel.get(n.name);
        const wantMtu = (await link(n.ns, 'eth0')).mtu - 20;
        const old = f.state.processes.find((p) => p.role === `agent-${n.name}`)!.pid;
        await killAgent(f.state, n.name);
        // The old agent must really be gone, or it (not the restarted one) would answer for tunl0 below.
        // (Under emulation a SIGKILLed node can take seconds to finish exiting.)
        const gone = await waitFor(async () => !running(old) || undefined, 10_000 * SLOW);
        if (!c.expect(gone === true, `${n.name}: the agent (pid ${old}) still runs ${10 * SLOW} s after killAgent`)) {
          startAgent(f.state, n.name); // whatever happened, the next checks need an agent there
          return;
        }
        for (const args of [
          ['link', 'set', 'tunl0', 'mtu', '1300'],
          ['addr', 'flush', 'dev', 'tunl0'],
          ['link', 'set', 'tunl0', 'down'],
        ])
          await ipJson(n.ns, ...args);
        const broken = await link(n.ns, 'tunl0');
        c.fact(
          `${n.name}: broken by hand: MTU ${broken.mtu}, ${broken.up ? 'UP' : 'DOWN'}, addresses ${broken.addresses.join(' ') || 'none'}`,
        );
        const begun = Date.now();
        startAgent(f.state, n.name);
        const repaired = await waitFor(async () => {
          const t = await link(n.ns, 'tunl0');
          return t.up && t.mtu === wantMtu && t.addresses.join() === `${address}/32` ? t : undefined;
        }, 20_000 * SLOW);
        const now = await link(n.ns, 'tunl0');
        c.fact(
          `${n.name}: after the restart: MTU ${now.mtu}, ${now.up ? 'UP' : 'DOWN'}, addresses ${now.addresses.join(' ') || 'none'}${repaired ? ` (${((Date.now() - begun) / 1000).toFixed(1)} s after the start)` : ''}`,
        );
        c.expect(
          repaired !== undefined,
          `${n.name}: within ${20 * SLOW} s of the restart tunl0 is not back to MTU ${wantMtu}, UP, ${address}/32`,
        );
        const other = plan.workloads.find((w) => w.node !== n.name)!;
        const mine = plan.workloads.find((w) => w.node === n.name)!;
        const back = await waitFor(
          async () =>
            (await ping(other.ns, f.ip(mine), { count: 1, waitS: 2 })).seen.replies.length === 1 ? true : undefined,
          30_000 * SLOW,
          500,
        );
        c.expect(back === true, `${other.pod} cannot reach ${mine.pod} after the repair`);
        const fresh = f.state.processes.find((p) => p.role === `agent-${n.name}`)!.pid;
        c.expect(
          fresh !== old && running(fresh) && (await nodeStatus(f.state, n.name)) !== null,
          `${n.name}: the restarted agent (pid ${fresh}) is not running and answering`,
        );
      },
    );

    await check(
      'always/switch: the live pool Always → Never → Always → CrossSubnet moves every route, losing at most the echo in flight',
      async (c) => {
        const [w1, w2, w3] = plan.workloads;
        const streams = [
          { name: `${w1!.pod} → ${w2!.pod}`, run: continuousPing(w1!.ns, f.ip(w2!), 0.05) },
          { name: `${w3!.pod} → ${w1!.pod}`, run: continuousPing(w3!.ns, f.ip(w1!), 0.05) },
        ];
        await sleep(1000);
        const steps: Array<[LabIpipMode, RemotePath]> = [
          ['Never', 'direct'],
          ['Always', 'tunl0'],
          ['CrossSubnet', 'direct'], // one subnet: every node is in every other's subnet
        ];
        for (const [mode, path] of steps) {
          const begun = Date.now();
          const applied = await applyPool(f.state, { ipipMode: mode });
          if (
            !c.expect(
              applied.code === 0,
              `tortie apply (ipipMode ${mode}) failed, exit ${applied.code}: ${applied.stderr.trim() || applied.stdout.trim()}`,
            )
          )
            break;
          const moved = await waitFor(
            async () => ((await routePaths(f, () => path)).wrong.length === 0 ? true : undefined),
            20_000 * SLOW,
          );
          const { lines, wrong } = await routePaths(f, () => path);
          c.fact(
            `ipipMode ${mode}: tortie apply ${applied.ms} ms; routes ${moved ? `moved within ${((Date.now() - begun) / 1000).toFixed(1)} s of the apply` : `did NOT all move within ${20 * SLOW} s`}; e.g. ${lines[0] ?? '(none)'}`,
          );
          wrong.forEach((w) => c.expect(false, `ipipMode ${mode}: ${w}`));
          // The traffic follows the routes: over 2 s of the two streams (20 echoes/s each), tunl0 counts them
          // in Always and nothing otherwise. (300 ms first, so nothing sent before the switch is counted.)
          await sleep(300);
          const before = await counters(f);
          await sleep(2000);
          const after = await counters(f);
          const moved1 = plan.nodes.map((n) => ({
            n: n.name,
            d: counterDelta(before.get(n.name)!, after.get(n.name)!),
          }));
          c.fact(
            `ipipMode ${mode}: tunl0 packets over 2 s of pinging: ${moved1.map(({ n, d }) => `${n} RX +${d.rx} TX +${d.tx}`).join(', ')}`,
          );
          const senders = new Set([w1!.node, w3!.node]);
          for (const { n, d } of moved1) {
            if (path === 'tunl0' && senders.has(n))
              c.expect(
                d.tx >= 10 && d.rx >= 10,
                `ipipMode ${mode}: ${n}'s tunl0 counted RX +${d.rx} TX +${d.tx} while its pod pinged another node 20 times a second`,
              );
            if (path === 'direct')
              c.expect(
                d.rx === 0 && d.tx === 0,
                `ipipMode ${mode}: ${n}'s tunl0 counted RX +${d.rx} TX +${d.tx}, but its routes no longer use it`,
              );
          }
        }
        for (const s of streams) {
          const r = await s.run.stop();
          const replies = r.seen.replies.length;
          const lost = r.seen.lostBeforeLast;
          c.fact(
            `${s.name}: ${replies} replies over ${(r.ms / 1000).toFixed(1)} s, lost ${lost.length}${lost.length ? ` (icmp_seq ${lost.join(', ')}; longest gap ${r.seen.longestGap})` : ''}`,
          );
          c.expect(replies >= 20, `${s.name}: only ${replies} replies: the stream did not run`);
          c.expect(
            lost.length <= steps.length,
            `${s.name}: lost ${lost.length} echoes over ${steps.length} switches (allowed: ${steps.length}, one in flight per switch)`,
          );
        }
      },
    );
  });
}

async function crossSubnetLab(): Promise<void> {
  await withLab(
    { name: `kb${suffix}`, nodes: 4, subnets: 2, officeRouter: 'none', ipipMode: 'CrossSubnet' },
    CROSS_CHECKS,
    async (f) => {
      const { plan } = f.state;
      const subnetOf = (w: LabWorkload): number => f.node(w.node).subnet;

      await check(
        'crosssubnet/routes: same-subnet blocks via the node on eth0, other-subnet blocks via tunl0 (all onlink)',
        async (c) => {
          const { lines, wrong } = await routePaths(f, (from, to) => (from.subnet === to.subnet ? 'direct' : 'tunl0'));
          lines.forEach((l) => c.fact(l));
          wrong.forEach((w) => c.expect(false, w));
          for (const n of plan.nodes) {
            const t = await link(n.ns, 'tunl0');
            c.expect(
              t.kind === 'ipip' && t.up && t.addresses.length === 1,
              `${n.name}: tunl0 ${t.kind} ${t.up ? 'UP' : 'DOWN'} [${t.addresses.join(', ')}], wanted an ipip device, up, with one /32`,
            );
          }
        },
      );

      await check(
        'crosssubnet/same: same-subnet pairs ping each other directly — no tunl0 counter moves',
        async (c) => {
          const pairs = allPairs(plan.workloads, (a, b) => a.node !== b.node && subnetOf(a) === subnetOf(b));
          c.expect(pairs.length > 0, 'no same-subnet pair of nodes in the lab');
          const before = await counters(f);
          const { failures } = await pingPairs(f, pairs, 3);
          const after = await counters(f);
          c.fact(
            `${pairs.length} pairs (${pairs.map(([a, b]) => `${a.pod}→${b.pod}`).join(', ')}) × 3 echoes, ${failures.length} failed`,
          );
          failures.forEach((x) => c.expect(false, x));
          for (const n of plan.nodes) {
            const d = counterDelta(before.get(n.name)!, after.get(n.name)!);
            c.fact(`${n.name}: tunl0 RX +${d.rx} TX +${d.tx}`);
            c.expect(
              d.rx === 0 && d.tx === 0,
              `${n.name}: tunl0 counted RX +${d.rx} TX +${d.tx} while only same-subnet pairs talked`,
            );
          }
        },
      );

      await check(
        'crosssubnet/cross: pairs across the subnets ping each other through tunl0 — every tunl0 counts them',
        async (c) => {
          const pairs = allPairs(plan.workloads, (a, b) => subnetOf(a) !== subnetOf(b));
          const before = await counters(f);
          const { failures, crossing } = await pingPairs(f, pairs, 3);
          const after = await counters(f);
          c.fact(`${pairs.length} pairs × 3 echoes, ${failures.length} failed`);
          failures.forEach((x) => c.expect(false, x));
          for (const n of plan.nodes) {
            const d = counterDelta(before.get(n.name)!, after.get(n.name)!);
            const want = crossing.get(n.name)!;
            c.fact(`${n.name}: tunl0 RX +${d.rx} TX +${d.tx} (at least ${want} each way)`);
            c.expect(
              d.rx >= want && d.tx >= want,
              `${n.name}: tunl0 counted RX +${d.rx} TX +${d.tx}, fewer than the ${want} packets each way that crossed it`,
            );
          }
        },
      );

      await check("crosssubnet/matrix: the lab's ping matrix — every workload reaches every other", async (c) => {
        const matrix = await labPing(f.state);
        const total = matrix.pods.length * (matrix.pods.length - 1);
        c.fact(`${total - matrix.failures.length}/${total} pairs`);
        matrix.failures.forEach((x) => c.expect(false, x));
      });

      // Last: it leaves the pool in VXLAN CrossSubnet (encap-switch.ts).
      if (SWITCH_ON) await encapSwitchCheck(f);
    },
  );
}

// ---- main ------------------------------------------------------------------------------------------------------

async function main(): Promise<number> {
  if (process.getuid?.() !== 0) {
    process.stderr.write(
      'kernel checks: need root (network namespaces); run them with npm run test:kernel (inside the VM)\n',
    );
    return 1;
  }
  process.env.TORTIE_LAB_ROOT ??= '/run/tortie-kernel-checks';
  // Asked in a namespace of our own (where the kernel has ipip as a module, asking loads it).
  const probe = `kchk${process.pid}`;
  await sh('ip', ['netns', 'add', probe]);
  const support = await checkIpip(probe, { ip: ipCommand({ netns: probe }) }).finally(() =>
    sh('ip', ['netns', 'del', probe]),
  );
  if (!support.supported) {
    process.stdout.write(
      `FAIL  this kernel has no IPIP, so nothing here can be checked: ${support.reason}\n      run them in the VM: npm run test:kernel (scripts/vm/test-kernel.sh)\n`,
    );
    return 1;
  }
  const release = readFileSync('/proc/sys/kernel/osrelease', 'utf8').trim();
  process.stdout.write(`kernel checks on Linux ${release}, node ${process.version}\n`);
  const only = process.env.TORTIE_KERNEL_ONLY;
  if (only !== undefined && only !== 'always' && only !== 'crosssubnet') {
    process.stderr.write(`TORTIE_KERNEL_ONLY="${only}": always or crosssubnet (or unset for both)\n`);
    return 2;
  }
  if (only !== 'crosssubnet') await alwaysLab();
  if (only !== 'always') await crossSubnetLab();
  const failed = results.filter((r) => !r.ok);
  process.stdout.write(
    `kernel checks: ${results.length - failed.length} passed, ${failed.length} failed (${since()})\n`,
  );
  return failed.length === 0 && results.length > 0 ? 0 : 1;
}

main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    process.stderr.write(`kernel checks: ${(error as Error).stack ?? String(error)}\n`);
    process.exit(1);
  },
);
