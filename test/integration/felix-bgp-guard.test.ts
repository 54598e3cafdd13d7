// No pod speaks BGP as its node, for real in network namespaces this file creates: node A (felix's
// FelixDataplane with real nft, natOutgoing on) with a pod behind a cali* veth, and node B on the same
// network; TCP listeners on both nodes' port 179 (and 180, for control) say who connected.
//
//   pod 10.37.0.5 ──cali── node A 198.18.37.1/24 ──eth0── node B 198.18.37.2/24
//
// Checked: the pod cannot reach node B's port 179 (it would arrive masqueraded as node A) nor its own
// node's; it does reach port 180 of B (routing and NAT work); node A reaches node B's 179 (node-to-node
// sessions are unaffected); with the guard off (TORTIE_BGP_PORT_GUARD=false → bgpGuard null) the table
// goes and the pod's connection arrives at B from A's address — the hole the guard closes.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import pino from 'pino';
import { FelixDataplane, type DataplaneInput } from '../../felix/dataplane.js';
import { Iproute2Kernel } from '../../felix/iproute2.js';
import { procSysIo } from '../../felix/kernel-settings.js';
import { Nft } from '../../felix/nft.js';
import { addressBlock } from '../harness/addresses.js';
import { createNetns, destroyAllNetns, netnsUnavailableReason, runCommand, type Netns } from '../harness/netns.js';
import { makeTempDir, startProcess, stopAll, waitFor, type ManagedProcess } from '../harness/process.js';

const unavailable = netnsUnavailableReason();
if (unavailable && process.env.CI === 'true') throw new Error(`BGP port guard tests cannot run: ${unavailable}`);

const BLOCK = addressBlock(import.meta.url).block; // 37
const A = `198.18.${BLOCK}.1`;
const B = `198.18.${BLOCK}.2`;
const POD = `10.${BLOCK}.0.5`;

/** A TCP listener in a namespace that logs "from <address>" per connection. */
function listen(ns: Netns, address: string, ports: number[], dir: string): ManagedProcess {
  const script = `const net=require('net');for(const p of ${JSON.stringify(ports)})net.createServer(s=>{console.log('from '+s.remoteAddress+' to '+p);s.end()}).listen(p,${JSON.stringify(address)},()=>console.log('listening '+p));`;
  return startProcess({
    name: `listen-${ns.name}`,
    command: 'ip',
    args: ['netns', 'exec', ns.name, process.execPath, '-e', script],
    dir,
  });
}

/** A TCP connect from a namespace, bounded at 1.5 s: "connected" or the error code. */
async function connect(ns: Netns, address: string, port: number): Promise<string> {
  const script = `const s=require('net').connect({host:${JSON.stringify(address)},port:${port}});s.setTimeout(1500,()=>{console.log('timeout');process.exit(0)});s.on('connect',()=>{console.log('connected');s.destroy();process.exit(0)});s.on('error',e=>{console.log(e.code);process.exit(0)});`;
  const result = await runCommand('ip', ['netns', 'exec', ns.name, process.execPath, '-e', script], undefined, 10_000);
  return result.stdout.trim();
}

describe.skipIf(unavailable !== null)('felix BGP port guard (table ip tortie-bgp-guard)', () => {
  let nodeA: Netns;
  let nodeB: Netns;
  let pod: Netns;
  let dataplane: FelixDataplane;
  let input: DataplaneInput;
  let atB: ManagedProcess;

  beforeAll(async () => {
    const dir = makeTempDir('bgp-guard');
    nodeA = await createNetns('guarda');
    nodeB = await createNetns('guardb');
    pod = await createNetns('guardpod');
    await nodeA.ip('link', 'add', 'eth0', 'type', 'veth', 'peer', 'name', 'eth0', 'netns', nodeB.name);
    await nodeA.ip('addr', 'add', `${A}/24`, 'dev', 'eth0');
    await nodeA.ip('link', 'set', 'eth0', 'up');
    await nodeB.ip('addr', 'add', `${B}/24`, 'dev', 'eth0');
    await nodeB.ip('link', 'set', 'eth0', 'up');
    // The pod, plumbed as the CNI plugin does.
    const cali = 'cali37000000005';
    await nodeA.ip(
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
      pod.name,
    );
    await nodeA.ip('link', 'set', cali, 'up');
    await nodeA.exec('sysctl', [
      '-q',
      '-w',
      `net.ipv4.conf.${cali}.proxy_arp=1`,
      `net.ipv4.neigh.${cali}.proxy_delay=0`,
    ]);
    await pod.ip('link', 'set', 'eth0', 'up');
    await pod.ip('addr', 'add', `${POD}/32`, 'dev', 'eth0');
    await pod.ip('route', 'add', '169.254.1.1', 'dev', 'eth0', 'scope', 'link');
    await pod.ip('route', 'add', 'default', 'via', '169.254.1.1', 'dev', 'eth0');
    await pod.ip('neigh', 'replace', '169.254.1.1', 'lladdr', 'ee:ee:ee:ee:ee:ee', 'dev', 'eth0', 'nud', 'permanent');

    atB = listen(nodeB, B, [179, 180], dir);
    const atA = listen(nodeA, A, [179], dir);
    await waitFor(() => atB.log().includes('listening 180') && atA.log().includes('listening 179'), {
      what: 'the listeners',
    });

    dataplane = new FelixDataplane({
      kernel: new Iproute2Kernel({ netns: nodeA.name }),
      reconnect: () => new Iproute2Kernel({ netns: nodeA.name }),
      nft: new Nft({ netns: nodeA.name }),
      sysctl: procSysIo({ netns: nodeA.name }),
      log: pino({ level: 'silent' }),
      resyncMs: 60_000,
      debounceMs: 1,
      tunl0: { netns: nodeA.name },
    });
    input = {
      node: { ip: `${A}/24`, hostInterface: 'eth0' },
      pools: [{ cidr: `10.${BLOCK}.0.0/16`, ipipMode: 'Never', natOutgoing: true }],
      localBlocks: [`10.${BLOCK}.0.0/26`],
      workloads: [{ ip: POD, interfaceName: cali, namespace: 'default', pod: 'p' }],
      bgpRoutes: [],
      bgpGuard: { nodeAddresses: [`${A}/24`, `${B}/24`] },
      tunnel: {},
    };
    dataplane.update(input);
    dataplane.start();
    dataplane.bgpSettled();
    await dataplane.settle();
    await dataplane.settleNat();
    await dataplane.settleBgpGuard();
    await dataplane.checkKernelSettings();
  }, 60_000);

  afterAll(async () => {
    await dataplane?.stop();
    await stopAll();
    await destroyAllNetns();
  });

  it('programs table ip tortie-bgp-guard: pools, node addresses, a drop for TCP port 179 in forward and input', async () => {
    const text = await nodeA.exec('nft', ['list', 'table', 'ip', 'tortie-bgp-guard']);
    expect(text).toContain(`10.${BLOCK}.0.0/16`);
    expect(text).toMatch(new RegExp(`elements = \\{ ${A.replace(/\./g, '\\.')}, ${B.replace(/\./g, '\\.')} \\}`));
    expect(text.match(/ip saddr @workloads ip daddr @nodes tcp dport 179 drop/g)).toHaveLength(2);
  });

  it("the pod reaches node B on another port (masqueraded as A), but neither node's port 179", async () => {
    expect(await connect(pod, B, 180)).toBe('connected');
    await waitFor(() => atB.log().includes(`from ${A} to 180`), { what: 'the control connection at B' });
    expect(await connect(pod, B, 179)).toBe('timeout');
    expect(await connect(pod, A, 179)).toBe('timeout');
    expect(atB.log()).not.toContain('to 179');
  });

  it("node-to-node: A reaches B's port 179", async () => {
    expect(await connect(nodeA, B, 179)).toBe('connected');
    await waitFor(() => atB.log().includes(`from ${A} to 179`), { what: 'the node connection at B' });
  });

  it('opt-out (bgpGuard null): the table goes, and the pod gets through to B:179 as node A — the hole it closes', async () => {
    const before = atB.log().split(`from ${A} to 179`).length;
    dataplane.update({ ...input, bgpGuard: null });
    await dataplane.settleBgpGuard();
    expect(
      (await runCommand('ip', ['netns', 'exec', nodeA.name, 'nft', 'list', 'table', 'ip', 'tortie-bgp-guard'])).code,
    ).not.toBe(0);
    expect(await connect(pod, B, 179)).toBe('connected');
    await waitFor(() => atB.log().split(`from ${A} to 179`).length > before, {
      what: "the pod's connection at B, from A's address",
    });
    dataplane.update(input);
    await dataplane.settleBgpGuard();
    expect(await connect(pod, B, 179)).toBe('timeout');
  });
});
