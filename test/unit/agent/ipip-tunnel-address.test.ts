// The node's IPIP tunnel address (src/agent/bootstrap.ts ensureTunnelAddress), as Calico's allocateip keeps
// it: assigned from an IPIP pool selecting the node (handle ipip-tunnel-addr-<node>), exchanged when it sits
// in a pool that is no IPIP pool any more, released (handle and Node field) when no IPIP pool selects the
// node — so a pool switched live IPIP → VXLAN → IPIP never leaves the node holding two tunnel addresses.

import { describe, expect, it } from 'vitest';
import { ensureTunnelAddress, ipipTunnelNeedsWork } from '../../../src/agent/bootstrap.js';
import { reconcileVxlanTunnel } from '../../../src/agent/vxlan-tunnel.js';
import { MemoryDatastore } from '../../../src/datastore/memory.js';
import { Ipam, ipipTunnelHandle, vxlanTunnelHandle } from '../../../src/ipam/index.js';
import type { Resource } from '../../../src/resources/types.js';
import { node, pool } from '../ipam/fixtures.js';

const quiet = { info: (): void => undefined, warn: (): void => undefined };

async function setup(): Promise<{ ds: MemoryDatastore; ipam: Ipam; ctx: Parameters<typeof ensureTunnelAddress>[0] }> {
  const ds = new MemoryDatastore();
  await ds.create(node('node-a'));
  const ipam = new Ipam(ds);
  const ctx = {
    ds,
    ipam,
    config: { nodeName: 'node-a' },
    log: quiet,
    warnings: new Set<string>(),
  } as unknown as Parameters<typeof ensureTunnelAddress>[0];
  return { ds, ipam, ctx };
}

/** Every address a handle holds, read from the IPAM blocks (not from the code under test). */
async function heldBy(ds: MemoryDatastore, handle: string): Promise<string[]> {
  const out: string[] = [];
  for (const block of (await ds.list('IPAMBlock')).items) {
    const base = block.spec.cidr.split('/')[0]!.split('.').map(Number);
    block.spec.allocations.forEach((slot, ordinal) => {
      if (slot === null || slot === undefined) return;
      if (block.spec.attributes[slot]?.handle_id !== handle) return;
      const n = ((base[0]! << 24) | (base[1]! << 16) | (base[2]! << 8) | base[3]!) + ordinal;
      out.push([n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.'));
    });
  }
  return out;
}

async function setMode(ds: MemoryDatastore, name: string, spec: Partial<Resource<'IPPool'>['spec']>): Promise<void> {
  const current = (await ds.get('IPPool', name))!;
  await ds.update({ ...current, spec: { ...current.spec, ipipMode: 'Never', vxlanMode: 'Never', ...spec } });
}

describe('ipipTunnelNeedsWork (pure)', () => {
  const pools = [
    pool('ipip', '10.1.0.0/16', { ipipMode: 'Always' }),
    pool('vx', '10.2.0.0/16', { vxlanMode: 'Always' }),
    pool('ipip-r2', '10.3.0.0/16', { ipipMode: 'CrossSubnet', nodeSelector: "rack == 'r2'" }),
  ];
  it('says yes when the field disagrees with the pools, and no when it agrees', () => {
    const cases: Array<[Resource<'Node'>['spec'], Array<Resource<'IPPool'>>, Record<string, string>, boolean]> = [
      [{ bgp: {} }, pools, {}, true], // wanted, missing
      [{ bgp: { ipv4IPIPTunnelAddr: '10.1.0.1' } }, pools, {}, false],
      [{ bgp: { ipv4IPIPTunnelAddr: '10.2.0.1' } }, pools, {}, true], // in the VXLAN pool
      [{ bgp: { ipv4IPIPTunnelAddr: '10.3.0.1' } }, pools, {}, true], // a pool that does not select us
      [{ bgp: { ipv4IPIPTunnelAddr: '10.3.0.1' } }, pools, { rack: 'r2' }, false],
      [{ bgp: { ipv4IPIPTunnelAddr: '10.1.0.1' } }, [pools[1]!], {}, true], // no IPIP pool: release
      [{ bgp: {} }, [pools[1]!], {}, false],
      [{}, [], {}, false],
    ];
    expect(cases.length).toBeGreaterThan(0);
    for (const [spec, list, labels, want] of cases)
      expect(ipipTunnelNeedsWork(spec, list, labels), JSON.stringify([spec, list.length, labels])).toBe(want);
  });
});

describe('ensureTunnelAddress: assign, exchange, release', () => {
  it('a pool switched live IPIP → VXLAN → IPIP: each tunnel address is released when its encapsulation goes', async () => {
    const { ds, ipam, ctx } = await setup();
    await ds.create(pool('default', '10.244.0.0/16', { ipipMode: 'Always' }));
    const vxlanDeps = { ds, ipam, nodeName: 'node-a', log: quiet };
    const ipipHandle = ipipTunnelHandle('node-a');
    const vxHandle = vxlanTunnelHandle('node-a');

    await ensureTunnelAddress(ctx);
    const first = (await ds.get('Node', 'node-a'))!.spec.bgp?.ipv4IPIPTunnelAddr;
    expect(first).toMatch(/^10\.244\./);
    expect(await heldBy(ds, ipipHandle)).toEqual([first]);
    expect(ctx.warnings.size).toBe(0);
    await ensureTunnelAddress(ctx); // nothing to do: same address, nothing released
    expect(await heldBy(ds, ipipHandle)).toEqual([first]);

    await setMode(ds, 'default', { vxlanMode: 'Always' });
    await ensureTunnelAddress(ctx);
    await reconcileVxlanTunnel(vxlanDeps);
    const afterVx = (await ds.get('Node', 'node-a'))!.spec;
    expect(afterVx.bgp?.ipv4IPIPTunnelAddr).toBeUndefined();
    expect(await heldBy(ds, ipipHandle)).toEqual([]);
    expect(await ds.get('IPAMHandle', ipipHandle)).toBeNull();
    expect(await heldBy(ds, vxHandle)).toEqual([afterVx.ipv4VXLANTunnelAddr]);

    await setMode(ds, 'default', { ipipMode: 'Always' });
    await reconcileVxlanTunnel(vxlanDeps);
    await ensureTunnelAddress(ctx);
    const back = (await ds.get('Node', 'node-a'))!.spec;
    expect(back.ipv4VXLANTunnelAddr).toBeUndefined();
    expect(await heldBy(ds, vxHandle)).toEqual([]);
    expect(back.bgp?.ipv4IPIPTunnelAddr).toMatch(/^10\.244\./);
    expect(await heldBy(ds, ipipHandle)).toEqual([back.bgp?.ipv4IPIPTunnelAddr]);
    expect(back.bgp?.ipv4Address).toBe('198.18.0.1/24'); // the rest of spec.bgp is kept
  });

  it('an address held in a pool that is no IPIP pool any more is exchanged for one from an IPIP pool', async () => {
    const { ds, ctx } = await setup();
    await ds.create(pool('old', '10.1.0.0/16', { ipipMode: 'Always' }));
    await ensureTunnelAddress(ctx);
    const old = (await ds.get('Node', 'node-a'))!.spec.bgp?.ipv4IPIPTunnelAddr;
    expect(old).toMatch(/^10\.1\./);
    await setMode(ds, 'old', {});
    await ds.create(pool('new', '10.9.0.0/16', { ipipMode: 'CrossSubnet' }));
    await ensureTunnelAddress(ctx);
    const now = (await ds.get('Node', 'node-a'))!.spec.bgp?.ipv4IPIPTunnelAddr;
    expect(now).toMatch(/^10\.9\./);
    expect(await heldBy(ds, ipipTunnelHandle('node-a'))).toEqual([now]);
  });

  it('releases an address the handle holds although the Node records none (a crash between assign and write)', async () => {
    const { ds, ipam, ctx } = await setup();
    await ds.create(pool('p', '10.1.0.0/16', { ipipMode: 'Always' }));
    const [held] = await ipam.assign('node-a', ipipTunnelHandle('node-a'), { pool: 'p', use: 'Tunnel' });
    expect(await heldBy(ds, ipipTunnelHandle('node-a'))).toEqual([held]);
    await setMode(ds, 'p', {});
    await ensureTunnelAddress(ctx);
    expect(await heldBy(ds, ipipTunnelHandle('node-a'))).toEqual([]);
    expect((await ds.get('Node', 'node-a'))!.spec.bgp?.ipv4IPIPTunnelAddr).toBeUndefined();
  });
});
