// CNI GC (spec 1.1: the runtime passes `cni.dev/valid-attachments`, the plugin releases what it holds for
// any other attachment) must release only what belongs to the node it runs on. A block is not a node's
// alone: a node whose pools have no free block left borrows addresses from another node's block
// (src/ipam/index.ts assign), and after `tortie delete node` blocks stay, without affinity, while other
// nodes' pods use them. So GC on node A must not go by the block's affinity: it goes by each allocation's
// `node` attribute (Calico's IPAMBlock attributes[].secondary), never touches a tunnel address, and keeps
// allocations written without attributes (by tortie before it recorded them), saying so once in its log —
// unless this node's WorkloadEndpoint of the same container names the address: GC deletes that endpoint,
// so it releases the address with it (else nothing would point at it until the node is deleted).
//
// Real etcd; the built plugin run as a runtime runs it (runCniPlugin: CNI_* environment, configuration on
// stdin, JSON on stdout), in the lab's mode (TORTIE_CNI_HOST_NETNS: each node is a network namespace this
// file creates, each pod another one; etcd on 127.0.0.1 stays reachable). No underlay addresses needed:
// the configuration sets the MTU, so no default route is looked at.
//
// The pool is one /29 block of 8 addresses, claimed by node A with its first pod; node B finds no block
// left to claim and borrows from A's block. Then GC on A (runtime knows only a1) and GC on B (knows b1):
//   a1 kept (valid) · a2 released (A's, stale) · a3 released (unattributed, but A's endpoint of a3 names
//   it: before, GC deleted that endpoint and kept the address, pointed at by nothing) · a4 kept
//   (unattributed, its endpoint already gone: nothing proves it A's; logged once) · A's tunnel kept ·
//   b1 kept (B's pod in A's block — the bug released it) · b2 released by B's GC (B's, stale, in A's block)
// and afterwards new pods get only the freed addresses: no address is ever held by two live pods. Before
// GC, the attributes ADD recorded are checked where calicoctl reads them (the etcd value) and in
// `tortie get ipamblocks -o yaml`.

import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCniPlugin, type CniInvocation, type CniOutcome } from '../../src/cni/index.js';
import { openEtcd } from '../../src/datastore/etcd.js';
import type { Datastore } from '../../src/datastore/types.js';
import * as blocks from '../../src/ipam/block.js';
import { Ipam, ipipTunnelHandle } from '../../src/ipam/index.js';
import { API_VERSION } from '../../src/resources/types.js';
import { requireEtcd, startEtcd, type EtcdInstance } from '../harness/etcd.js';
import { createNetns, destroyAllNetns, netnsUnavailableReason, type Netns } from '../harness/netns.js';
import { makeTempDir, removeTempDir } from '../harness/process.js';

const unavailable = netnsUnavailableReason();
if (unavailable && process.env.CI === 'true') throw new Error(`CNI GC tests cannot run: ${unavailable}`);
const haveEtcd = unavailable === null && requireEtcd();
const MAIN_JS = join(process.cwd(), 'dist', 'src', 'cli', 'main.js');
const built = existsSync(MAIN_JS);
if (!built && process.env.CI === 'true') throw new Error(`${MAIN_JS} is missing: run npm run build first`);

const NETWORK = 'k8s-pod-network';
const POOL_CIDR = '10.73.0.0/29';
const NODE_A = 'gc-node-a';
const NODE_B = 'gc-node-b';

describe.skipIf(unavailable !== null || !haveEtcd || !built)("CNI GC releases only this node's stale pods", () => {
  let etcd: EtcdInstance;
  let ds: Datastore;
  let dir: string;
  const nodes = new Map<string, Netns>();
  let podCounter = 0;

  beforeAll(async () => {
    etcd = await startEtcd();
    ds = await openEtcd({ endpoints: [etcd.endpoint] });
    await ds.create({
      apiVersion: API_VERSION,
      kind: 'IPPool',
      metadata: { name: 'gc-pods' },
      spec: { cidr: POOL_CIDR, blockSize: 29, ipipMode: 'Always', nodeSelector: 'all()' },
    });
    dir = makeTempDir('cnigc');
    for (const node of [NODE_A, NODE_B]) nodes.set(node, await createNetns(`cnigc${node.slice(-1)}`));
  }, 60_000);

  afterAll(async () => {
    await ds?.close();
    await destroyAllNetns();
    await etcd?.stop();
    if (dir) removeTempDir(dir);
  });

  function config(node: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
    return {
      cniVersion: '1.1.0',
      name: NETWORK,
      type: 'tortie',
      datastore_type: 'etcdv3',
      etcd_endpoints: etcd.endpoint,
      nodename: node,
      nodename_file: join(dir, `nodename-${node}`),
      mtu: 1400,
      log_level: 'info',
      log_file_path: join(dir, `${node}.log`),
      ipam: { type: 'tortie-ipam' },
      ...extra,
    };
  }

  interface Pod {
    node: string;
    containerId: string;
    pod: { namespace: string; name: string };
    netns: string;
  }

  function invocation(p: Pod, command: CniInvocation['command']): CniInvocation {
    return {
      command,
      containerId: p.containerId,
      netns: p.netns,
      pod: p.pod,
      hostNetns: `/var/run/netns/${nodes.get(p.node)!.name}`,
      config: config(p.node),
      executable: [process.execPath, MAIN_JS],
      timeoutMs: 30_000,
    };
  }

  async function newPod(node: string): Promise<Pod> {
    const n = ++podCounter;
    const ns = await createNetns(`cnigcpod${n}`);
    return {
      node,
      containerId: `gc${process.pid}x${n}`,
      pod: { namespace: 'default', name: `gc-${n}` },
      netns: `/var/run/netns/${ns.name}`,
    };
  }

  function addressOf(out: CniOutcome): string {
    const ips = out.json?.ips as Array<{ address: string }> | undefined;
    const address = ips?.at(-1)?.address;
    if (out.exitCode !== 0 || !address)
      throw new Error(`ADD failed (exit ${out.exitCode}): ${out.stdout} ${out.stderr.slice(-500)}`);
    return address.split('/')[0]!;
  }

  async function add(node: string): Promise<Pod & { ip: string }> {
    const p = await newPod(node);
    return { ...p, ip: addressOf(await runCniPlugin(invocation(p, 'ADD'))) };
  }

  async function gc(node: string, valid: Pod[]): Promise<CniOutcome> {
    return runCniPlugin({
      command: 'GC',
      config: config(node, {
        'cni.dev/valid-attachments': valid.map((p) => ({ containerID: p.containerId, ifname: 'eth0' })),
      }),
      executable: [process.execPath, MAIN_JS],
      timeoutMs: 30_000,
    });
  }

  /** handle → addresses, from the blocks (the truth about who holds what). */
  async function holders(): Promise<Map<string, string[]>> {
    const out = new Map<string, string[]>();
    for (const block of (await ds.list('IPAMBlock')).items) {
      block.spec.allocations.forEach((attr, ordinal) => {
        if (attr === null) return;
        const handle = blocks.handleAt(block.spec, ordinal) ?? '(none)';
        out.set(handle, [...(out.get(handle) ?? []), blocks.addressOf(block.spec, ordinal)]);
      });
    }
    return out;
  }

  const handle = (p: Pod): string => `${NETWORK}.${p.containerId}`;

  /** `tortie ARGS` against the test's etcd; its stdout (rejects on a non-zero exit). */
  function tortie(args: string[]): Promise<string> {
    return new Promise((resolve, reject) => {
      const child = spawn(process.execPath, [MAIN_JS, ...args], {
        env: { PATH: process.env.PATH ?? '', DATASTORE_TYPE: 'etcdv3', ETCD_ENDPOINTS: etcd.endpoint },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let out = '';
      let err = '';
      const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
      child.stdout.on('data', (b: Buffer) => (out += b.toString()));
      child.stderr.on('data', (b: Buffer) => (err += b.toString()));
      child.on('error', reject);
      child.on('close', (code) => {
        clearTimeout(timer);
        if (code === 0) resolve(out);
        else reject(new Error(`tortie ${args.join(' ')} exited ${code}: ${err}`));
      });
    });
  }

  /** The JSON value etcd holds at `key` (through its JSON gateway: what any client, calicoctl too, reads). */
  async function etcdValue(key: string): Promise<unknown> {
    const body = JSON.stringify({ key: Buffer.from(key).toString('base64') });
    const answer = (await (
      await fetch(`${etcd.endpoint}/v3/kv/range`, { method: 'POST', body, signal: AbortSignal.timeout(5000) })
    ).json()) as { kvs?: Array<{ value: string }> };
    const value = answer.kvs?.[0]?.value;
    if (value === undefined) throw new Error(`etcd has no key ${key}`);
    return JSON.parse(Buffer.from(value, 'base64').toString('utf8'));
  }

  /** The messages of the plugin's log file on `node` (JSON lines). */
  function logged(node: string): string[] {
    const text = readFileSync(join(dir, `${node}.log`), 'utf8');
    return text
      .split('\n')
      .filter((l) => l.trim() !== '')
      .map((l) => String((JSON.parse(l) as { msg?: unknown }).msg));
  }

  /** Rewrites the allocation of `ip` as tortie wrote it before it recorded attributes: no `secondary`. */
  async function stripAttributes(ip: string): Promise<void> {
    const [block] = (await ds.list('IPAMBlock')).items;
    const ordinal = blocks.ordinalOf(block!.spec, ip)!;
    const attr = block!.spec.allocations[ordinal]!;
    const attributes = block!.spec.attributes.map((a, i) =>
      i === attr ? { handle_id: a.handle_id ?? null, secondary: null } : a,
    );
    await ds.update({ ...block!, spec: { ...block!.spec, attributes } });
  }

  it("GC on node A keeps node B's pods in A's block, the tunnel address and unattributed allocations nothing proves A's; GC on B releases B's stale pod there", async () => {
    const ipam = new Ipam(ds);
    const a1 = await add(NODE_A); // claims the pool's only block for A
    const [tunnel] = await ipam.assign(NODE_A, ipipTunnelHandle(NODE_A), { use: 'Tunnel' });
    const a2 = await add(NODE_A);
    const a3 = await add(NODE_A);
    const a4 = await add(NODE_A);
    const b1 = await add(NODE_B); // no block left to claim: borrowed from A's
    const b2 = await add(NODE_B);
    // The premise: one block, A's, holding both nodes' pods.
    const all = (await ds.list('IPAMBlock')).items;
    expect(all.map((b) => [b.spec.cidr, blocks.affineNode(b.spec)])).toEqual([[POOL_CIDR, NODE_A]]);
    expect(
      (await ds.list('WorkloadEndpoint')).items
        .filter((w) => w.spec.node === NODE_B)
        .map((w) => w.spec.containerID)
        .sort(),
    ).toEqual([b1.containerId, b2.containerId].sort());
    // Who each address is for, as Calico's plugin records it, in the etcd value calicoctl reads.
    const raw = await etcdValue(`/calico/ipam/v2/assignment/ipv4/block/${POOL_CIDR.replace('/', '-')}`);
    const attrs = (raw as { attributes: Array<{ handle_id?: string; secondary?: Record<string, string> }> }).attributes;
    expect(attrs.find((a) => a.handle_id === handle(b1))?.secondary).toEqual({
      namespace: 'default',
      pod: b1.pod.name,
      timestamp: expect.stringMatching(/^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(\.\d{1,3})? \+0000 UTC$/),
      node: NODE_B,
    });
    expect(attrs.find((a) => a.handle_id === ipipTunnelHandle(NODE_A))?.secondary).toEqual({
      type: 'ipipTunnelAddress',
      node: NODE_A,
    });
    const yaml = await tortie(['get', 'ipamblocks', '-o', 'yaml']);
    expect(yaml).toMatch(
      new RegExp(`handle_id: ${handle(b1)}\\n\\s+secondary:\\n(\\s+\\w+: .*\\n)*?\\s+node: ${NODE_B}\\n`),
    );
    expect(yaml).toContain('type: ipipTunnelAddress');
    await stripAttributes(a3.ip);
    await stripAttributes(a4.ip);
    // a4's record is gone already (a DEL that stopped after removing it): nothing names its address.
    const a4Wep = (await ds.list('WorkloadEndpoint')).items.find((w) => w.spec.containerID === a4.containerId)!;
    await ds.delete('WorkloadEndpoint', a4Wep.metadata.name, { namespace: a4Wep.metadata.namespace ?? 'default' });

    const a3Wep = (await ds.list('WorkloadEndpoint')).items.find((w) => w.spec.containerID === a3.containerId)!.metadata
      .name;
    const onA = await gc(NODE_A, [a1]);
    expect(onA.exitCode, `${onA.stdout} ${onA.stderr}`).toBe(0);
    let held = await holders();
    expect(held.get(handle(b1))).toEqual([b1.ip]); // B's pods: not A's to release
    expect(held.get(handle(b2))).toEqual([b2.ip]);
    expect(held.get(handle(a1))).toEqual([a1.ip]);
    expect(held.get(handle(a2))).toBeUndefined(); // A's stale pod: released
    expect(held.get(handle(a3))).toBeUndefined(); // unattributed, but A's endpoint of a3 named it: released
    expect(await ds.get('IPAMHandle', handle(a3))).toBeNull();
    expect(held.get(handle(a4))).toEqual([a4.ip]); // unattributed, nothing names it: kept
    expect(held.get(ipipTunnelHandle(NODE_A))).toEqual([tunnel]);
    expect(await ds.get('IPAMHandle', handle(a2))).toBeNull();
    expect(await ds.get('IPAMHandle', handle(b1))).not.toBeNull();
    // B's WorkloadEndpoints are not A's either; A's stale ones are gone (an endpoint names its node).
    const weps = (await ds.list('WorkloadEndpoint')).items.map((w) => w.spec.containerID).sort();
    expect(weps).toEqual([a1.containerId, b1.containerId, b2.containerId].sort());
    // The kept unattributed allocation is said once, naming the handle; the proven one is said released.
    const logA = logged(NODE_A);
    const kept = logA.filter((l) => /^GC kept .*no "node" attribute/.test(l));
    expect(kept).toHaveLength(1);
    expect(kept[0]).toContain(handle(a4));
    expect(kept[0]).not.toContain(handle(a3));
    expect(logA).toContain(
      `GC released ${a3.ip} of ${handle(a3)} (no "node" attribute; WorkloadEndpoint default/${a3Wep} of this node and the same container named it)`,
    );

    const onB = await gc(NODE_B, [b1]);
    expect(onB.exitCode, `${onB.stdout} ${onB.stderr}`).toBe(0);
    held = await holders();
    expect(held.get(handle(b2))).toBeUndefined(); // B's stale pod, in A's block: released by B
    expect(held.get(handle(b1))).toEqual([b1.ip]);
    expect(held.get(handle(a1))).toEqual([a1.ip]);
    expect(held.get(handle(a4))).toEqual([a4.ip]); // B's GC does not release A's unattributed one either
    expect(held.get(ipipTunnelHandle(NODE_A))).toEqual([tunnel]);

    // New pods get only free addresses: 8 − (a1, a4, tunnel, b1) = 4, then the pool is full (code 100).
    const live = [a1.ip, a4.ip, tunnel!, b1.ip];
    for (let i = 0; i < 4; i++) live.push((await add(i % 2 === 0 ? NODE_A : NODE_B)).ip);
    expect(new Set(live).size).toBe(live.length);
    const full = await runCniPlugin(invocation(await newPod(NODE_A), 'ADD'));
    expect(full.json?.code, full.stdout).toBe(100);
  }, 120_000);
});
