// natOutgoing for real, in network namespaces this file creates (the host's nftables and sysctls are never
// read or written): a node namespace whose eth0 leads to an "outside" namespace (an address in no pool),
// pods behind cali* veths plumbed like the CNI plugin does, and felix's FelixDataplane — real iproute2,
// real nft, real /proc/sys in the node namespace — programming routes, `table ip tortie-nat` and
// ip_forward. UDP datagrams are sent from the pods; listeners print the source address they saw.
//
//   pod-nat (10.66.0.5, pool 10.66.0.0/16 natOutgoing) ──cali──┐
//   pod-plain (10.67.0.5, pool 10.67.0.0/16, no NAT)  ──cali──┤ node  eth0 198.18.66.1/24 ── outside 198.18.66.2/24
//   pod-off (10.68.0.5, pool 10.68.0.0/16 natOutgoing, disabled) ┘                            + 10.69.0.7 (a pod of
//                                                                                              pool 10.69.0.0/16 on
//                                                                                              "another node")
//
// Checked: pod-nat → outside arrives from the node's address (and the answer comes back through conntrack);
// pod-nat → pod-plain (same node, another pool) and → 10.69.0.7 (another node's pod) keep the pod address;
// pod-plain and pod-off → outside keep theirs; a rule or the table deleted by hand comes back (at once
// through `nft monitor`; on the resync without one); no write while nothing changes (measured); natOutgoing switched off removes the table; ip_forward
// set by felix and said in the log; strict rp_filter on eth0 reported in status.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import pino from 'pino';
import { FelixDataplane, type DataplaneInput } from '../../felix/dataplane.js';
import { Iproute2Kernel } from '../../felix/iproute2.js';
import { procSysIo } from '../../felix/kernel-settings.js';
import { Nft } from '../../felix/nft.js';
import { addressBlock } from '../harness/addresses.js';
import { createNetns, destroyAllNetns, netnsUnavailableReason, runCommand, type Netns } from '../harness/netns.js';
import { UdpListener, udpSend } from '../harness/udp-probe.js';
import { waitFor } from '../harness/wait.js';

const unavailable = netnsUnavailableReason();
if (unavailable && process.env.CI === 'true') throw new Error(`felix natOutgoing tests cannot run: ${unavailable}`);

const BLOCK = addressBlock(import.meta.url).block; // 66
const NODE_IP = `198.18.${BLOCK}.1`;
const OUTSIDE_IP = `198.18.${BLOCK}.2`;
const REMOTE_POD = '10.69.0.7';
const PORT = 7070;

interface Pod {
  ns: Netns;
  ip: string;
  cali: string;
}

/** Plumbing as src/cni/dataplane.ts does it: veth, /32, gateway 169.254.1.1 with a permanent neighbour. */
async function addPod(node: Netns, tag: string, ip: string, cali: string): Promise<Pod> {
  const ns = await createNetns(tag);
  await node.ip(
    'link',
    'add',
    cali,
    'address',
    'ee:ee:ee:ee:ee:ee',
    'type',
    'veth',
    'peer',
    'name',
    'eth0',
    'netns',
    ns.name,
  );
  await node.ip('link', 'set', cali, 'up');
  await node.exec('sysctl', ['-q', '-w', `net.ipv4.conf.${cali}.proxy_arp=1`, `net.ipv4.neigh.${cali}.proxy_delay=0`]);
  await ns.ip('link', 'set', 'eth0', 'up');
  await ns.ip('addr', 'add', `${ip}/32`, 'dev', 'eth0');
  await ns.ip('route', 'add', '169.254.1.1', 'dev', 'eth0', 'scope', 'link');
  await ns.ip('route', 'add', 'default', 'via', '169.254.1.1', 'dev', 'eth0');
  await ns.ip('neigh', 'replace', '169.254.1.1', 'lladdr', 'ee:ee:ee:ee:ee:ee', 'dev', 'eth0', 'nud', 'permanent');
  return { ns, ip, cali };
}

/** One datagram from a pod to `to`: its tag and the answer (the source address the listener saw), or null. */
function send(from: Pod, to: string): Promise<{ tag: string; answer: string | null }> {
  return udpSend(from.ns.name, to, PORT);
}

function recordingLog(): { lines: Array<{ msg: string; fields: Record<string, unknown> }>; logger: pino.Logger } {
  const lines: Array<{ msg: string; fields: Record<string, unknown> }> = [];
  const stream = {
    write: (s: string) => {
      const o = JSON.parse(s) as Record<string, unknown>;
      lines.push({ msg: String(o.msg), fields: o });
    },
  };
  return { lines, logger: pino({ level: 'info' }, stream) };
}

async function nftRules(node: Netns): Promise<string> {
  const result = await runCommand('ip', ['netns', 'exec', node.name, 'nft', '-a', 'list', 'table', 'ip', 'tortie-nat']);
  return result.code === 0 ? result.stdout : '';
}

/** Polls `check` every 50 ms for at most `ms` (the harness's waitFor), naming `what` on timeout. */
async function eventually(what: string, check: () => Promise<boolean>, ms: number): Promise<void> {
  await waitFor(check, { what, timeoutMs: ms, intervalMs: 50 });
}

describe.skipIf(unavailable !== null)('felix natOutgoing in network namespaces', () => {
  let node: Netns;
  let outside: Netns;
  let podNat: Pod;
  let podPlain: Pod;
  let podOff: Pod;
  let dataplane: FelixDataplane;
  let log: ReturnType<typeof recordingLog>;
  const listeners: UdpListener[] = [];
  let outsideListener: UdpListener;
  let remotePodListener: UdpListener;
  let plainPodListener: UdpListener;
  let input: DataplaneInput;
  /** Long: a repair within seconds below is the nft monitor's doing, not the resync's. */
  const RESYNC_MS = 60_000;

  const pools = (natOn: boolean): DataplaneInput['pools'] => [
    { cidr: '10.66.0.0/16', ipipMode: 'Never', natOutgoing: natOn },
    { cidr: '10.67.0.0/16', ipipMode: 'Never', natOutgoing: false },
    { cidr: '10.68.0.0/16', ipipMode: 'Never', natOutgoing: true, disabled: true },
    { cidr: '10.69.0.0/16', ipipMode: 'Never' },
  ];

  beforeAll(async () => {
    node = await createNetns('natnode');
    outside = await createNetns('natout');
    await node.ip('link', 'add', 'eth0', 'type', 'veth', 'peer', 'name', 'eth0', 'netns', outside.name);
    await node.ip('addr', 'add', `${NODE_IP}/24`, 'dev', 'eth0');
    await node.ip('link', 'set', 'eth0', 'up');
    await outside.ip('addr', 'add', `${OUTSIDE_IP}/24`, 'dev', 'eth0');
    await outside.ip('link', 'set', 'eth0', 'up');
    // The outside also stands for another node holding a pod of pool 10.69.0.0/16, and knows our pods'
    // pools by route (as a node would over BGP) — so an un-NATed pod address could be answered too.
    await outside.ip('addr', 'add', `${REMOTE_POD}/32`, 'dev', 'lo');
    await outside.ip('route', 'add', '10.66.0.0/16', 'via', NODE_IP);
    await outside.ip('route', 'add', '10.67.0.0/16', 'via', NODE_IP);
    await outside.ip('route', 'add', '10.68.0.0/16', 'via', NODE_IP);
    podNat = await addPod(node, 'natpod', '10.66.0.5', 'cali66000000005');
    podPlain = await addPod(node, 'plainpod', '10.67.0.5', 'cali67000000005');
    podOff = await addPod(node, 'offpod', '10.68.0.5', 'cali68000000005');
    expect((await node.exec('cat', ['/proc/sys/net/ipv4/ip_forward'])).trim()).toBe('0'); // felix must set it

    outsideListener = new UdpListener(outside.name, OUTSIDE_IP, PORT);
    remotePodListener = new UdpListener(outside.name, REMOTE_POD, PORT);
    plainPodListener = new UdpListener(podPlain.ns.name, podPlain.ip, PORT);
    listeners.push(outsideListener, remotePodListener, plainPodListener);
    await Promise.all(listeners.map((l) => l.ready));

    log = recordingLog();
    dataplane = new FelixDataplane({
      kernel: new Iproute2Kernel({ netns: node.name }),
      reconnect: () => new Iproute2Kernel({ netns: node.name }),
      nft: new Nft({ netns: node.name }),
      sysctl: procSysIo({ netns: node.name }),
      log: log.logger,
      resyncMs: RESYNC_MS,
      debounceMs: 1,
      tunl0: { netns: node.name },
    });
    input = {
      node: { ip: `${NODE_IP}/24`, hostInterface: 'eth0' },
      pools: pools(true),
      localBlocks: ['10.66.0.0/26', '10.67.0.0/26', '10.68.0.0/26'],
      workloads: [
        { ip: podNat.ip, interfaceName: podNat.cali, namespace: 'default', pod: 'nat' },
        { ip: podPlain.ip, interfaceName: podPlain.cali, namespace: 'default', pod: 'plain' },
        { ip: podOff.ip, interfaceName: podOff.cali, namespace: 'default', pod: 'off' },
      ],
      bgpRoutes: [{ prefix: '10.69.0.0/26', nextHop: OUTSIDE_IP }],
      tunnel: {},
    };
    dataplane.update(input);
    dataplane.start();
    dataplane.bgpSettled();
    await dataplane.settle();
    await dataplane.settleNat();
    await dataplane.checkKernelSettings();
  }, 60_000);

  afterAll(async () => {
    for (const l of listeners) l.stop();
    await dataplane?.stop();
    await destroyAllNetns();
  });

  it('felix set ip_forward=1 in the node namespace and said so in the log', async () => {
    expect((await node.exec('cat', ['/proc/sys/net/ipv4/ip_forward'])).trim()).toBe('1');
    expect(log.lines.some((l) => /^net\.ipv4\.ip_forward was 0: .*felix set it to 1$/.test(l.msg))).toBe(true);
    expect(dataplane.status().kernelSettings.warnings).toEqual([]);
  });

  it('programs table ip tortie-nat with the NAT pools and all pools', async () => {
    const text = await nftRules(node);
    expect(text).toMatch(/set nat-pools \{[^}]*elements = \{ 10\.66\.0\.0\/16 \}/s);
    expect(text).toMatch(
      /set all-pools \{[^}]*elements = \{ 10\.66\.0\.0\/16, 10\.67\.0\.0\/16,\s*10\.68\.0\.0\/16, 10\.69\.0\.0\/16 \}/s,
    );
    expect(text).toMatch(/ip saddr @nat-pools ip daddr != @all-pools masquerade comment "tortie natOutgoing"/);
    expect(dataplane.status().nat).toMatchObject({
      managed: true,
      inSync: true,
      natPools: ['10.66.0.0/16'],
      writes: 1,
    });
  });

  it('a pod in a natOutgoing pool reaches the outside with the node address as source, and gets the answer', async () => {
    const { tag, answer } = await send(podNat, OUTSIDE_IP);
    expect(await outsideListener.sourceOf(tag)).toBe(NODE_IP);
    expect(answer).toBe(NODE_IP); // the answer came back to the pod through conntrack's reverse NAT
  });

  it('pod to pod keeps the pod address: another pool on this node, and a pod of another node', async () => {
    const local = await send(podNat, podPlain.ip);
    expect(await plainPodListener.sourceOf(local.tag)).toBe(podNat.ip);
    const remote = await send(podNat, REMOTE_POD);
    expect(await remotePodListener.sourceOf(remote.tag)).toBe(podNat.ip);
  });

  it('a pool without natOutgoing, and a disabled natOutgoing pool: not masqueraded', async () => {
    const plain = await send(podPlain, OUTSIDE_IP);
    expect(await outsideListener.sourceOf(plain.tag)).toBe(podPlain.ip);
    const off = await send(podOff, OUTSIDE_IP);
    expect(await outsideListener.sourceOf(off.tag)).toBe(podOff.ip);
  });

  it('no write while nothing changes (measured), and a rule deleted by hand comes back on a check (or the monitor)', async () => {
    const before = dataplane.status().nat.writes;
    const rounds = 20;
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < rounds; i++) expect((await dataplane.settleNat()).wrote).toBe(false);
    const noopMs = Number(process.hrtime.bigint() - t0) / 1e6 / rounds;
    expect(dataplane.status().nat.writes).toBe(before);

    const handle = /masquerade comment "tortie natOutgoing" # handle (\d+)/.exec(await nftRules(node))?.[1];
    expect(handle).toBeDefined();
    await node.exec('nft', ['delete', 'rule', 'ip', 'tortie-nat', 'postrouting', 'handle', handle!]); // gone (the monitor may already be repairing it)
    const t1 = process.hrtime.bigint();
    await dataplane.settleNat(); // the monitor may have been first: either way, one write repaired it
    const repairMs = Number(process.hrtime.bigint() - t1) / 1e6;
    expect(await nftRules(node)).toMatch(/masquerade/);
    expect(dataplane.status().nat).toMatchObject({
      writes: before + 1,
      lastDifference: expect.stringMatching(/rule 1 is missing/),
    });
    const { tag } = await send(podNat, OUTSIDE_IP);
    expect(await outsideListener.sourceOf(tag)).toBe(NODE_IP);
    process.stdout.write(
      `felix-nat: no-op check ${noopMs.toFixed(1)} ms (nft -j list + compare, mean of ${rounds}); repair (list + write + read back, or waiting for the monitor's) ${repairMs.toFixed(1)} ms\n`,
    );
  });

  it('a rule or the table deleted by hand comes back by itself at once (nft monitor), long before the resync', async () => {
    const writes = dataplane.status().nat.writes;
    const handle = /masquerade comment "tortie natOutgoing" # handle (\d+)/.exec(await nftRules(node))?.[1];
    await node.exec('nft', ['delete', 'rule', 'ip', 'tortie-nat', 'postrouting', 'handle', handle!]);
    const t0 = Date.now();
    await eventually('the masquerade rule back', async () => /masquerade/.test(await nftRules(node)), 5_000);
    const ruleMs = Date.now() - t0;
    await node.exec('nft', ['delete', 'table', 'ip', 'tortie-nat']);
    const t1 = Date.now();
    await eventually('the masquerade rule back', async () => /masquerade/.test(await nftRules(node)), 5_000);
    const tableMs = Date.now() - t1;
    // nft's change is visible to another process a moment before our apply() returns and counts it.
    await eventually('two NAT table writes counted', async () => dataplane.status().nat.writes === writes + 2, 5_000);
    // Our own writes are monitor events too: they lead to checks, never to another write.
    await new Promise((r) => setTimeout(r, 500));
    expect(dataplane.status().nat.writes).toBe(writes + 2);
    process.stdout.write(
      `felix-nat: deleted by hand → back in the kernel after ${ruleMs} ms (rule), ${tableMs} ms (table), resync ${RESYNC_MS} ms\n`,
    );
  });

  it('without a monitor, the periodic resync brings a deleted rule back', async () => {
    const other = await createNetns('natresync');
    const nft = new Nft({ netns: other.name });
    const plain = {
      apply: (s: string) => nft.apply(s),
      listTable: (f: 'ip' | 'inet', n: string) => nft.listTable(f, n),
    }; // no monitor()
    const dp = new FelixDataplane({
      kernel: new Iproute2Kernel({ netns: other.name }),
      nft: plain,
      log: pino({ level: 'silent' }),
      resyncMs: 1_000,
      tunl0: { netns: other.name },
    });
    try {
      dp.update({ ...input, localBlocks: [], workloads: [], bgpRoutes: [] });
      dp.start();
      await eventually('the masquerade rule', async () => /masquerade/.test(await nftRules(other)), 5_000);
      const handle = /masquerade comment "tortie natOutgoing" # handle (\d+)/.exec(await nftRules(other))?.[1];
      await other.exec('nft', ['delete', 'rule', 'ip', 'tortie-nat', 'postrouting', 'handle', handle!]);
      expect(await nftRules(other)).not.toMatch(/masquerade/);
      await eventually('the masquerade rule', async () => /masquerade/.test(await nftRules(other)), 5_000);
      await eventually('two NAT table writes counted', async () => dp.status().nat.writes === 2, 5_000);
    } finally {
      await dp.stop();
      await other.destroy();
    }
  });

  it('strict rp_filter on eth0 is reported in status warnings and logged once', async () => {
    await node.exec('sysctl', ['-q', '-w', 'net.ipv4.conf.eth0.rp_filter=1']);
    try {
      await dataplane.checkKernelSettings();
      await dataplane.checkKernelSettings();
      const warnings = dataplane.status().warnings.filter((w) => w.startsWith('rp_filter is 1'));
      expect(warnings).toEqual([
        expect.stringMatching(
          /on the host interface eth0, wanted 0 or 2 \(loose\).*fix: sysctl -w net\.ipv4\.conf\.eth0\.rp_filter=2/,
        ),
      ]);
      expect(log.lines.filter((l) => l.fields.warning === warnings[0]).length).toBe(1);
    } finally {
      await node.exec('sysctl', ['-q', '-w', 'net.ipv4.conf.eth0.rp_filter=0']);
    }
    await dataplane.checkKernelSettings();
    expect(dataplane.status().kernelSettings.warnings).toEqual([]);
  });

  it('natOutgoing switched off: the table is removed and the pod leaves with its own address', async () => {
    dataplane.update({ ...input, pools: pools(false) });
    await dataplane.settleNat();
    expect(await nftRules(node)).toBe('');
    const { tag } = await send(podNat, OUTSIDE_IP);
    expect(await outsideListener.sourceOf(tag)).toBe(podNat.ip);
    dataplane.update(input);
    await dataplane.settleNat();
    const again = await send(podNat, OUTSIDE_IP);
    expect(await outsideListener.sourceOf(again.tag)).toBe(NODE_IP);
  });
});
