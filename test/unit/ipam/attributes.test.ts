// Per-allocation attributes (src/ipam/attributes.ts) and what Ipam writes with them; the datastore calls
// one assign and one releaseByHandle make (each write a compare-and-swap on what was read, a lost race
// read again), counted on the in-memory datastore.

import { describe, expect, it } from 'vitest';
import { MemoryDatastore } from '../../../src/datastore/memory.js';
import { ConflictError, type Datastore } from '../../../src/datastore/types.js';
import {
  allocationNode,
  assignmentAttributes,
  attributesAt,
  calicoTimestamp,
  tunnelAttributeType,
  TUNNEL_ATTRIBUTE_TYPES,
} from '../../../src/ipam/attributes.js';
import { Ipam } from '../../../src/ipam/index.js';
import { TUNNEL_HANDLE_PREFIXES } from '../../../src/resources/ipam-names.js';
import { API_VERSION, type Resource } from '../../../src/resources/types.js';

const POOL: Resource<'IPPool'> = {
  apiVersion: API_VERSION,
  kind: 'IPPool',
  metadata: { name: 'p' },
  spec: { cidr: '10.244.0.0/24', blockSize: 26, nodeSelector: 'all()' },
};

describe('attributes', () => {
  it("formats timestamps as Go's time.Time String() in UTC (Calico's plugin)", () => {
    expect(calicoTimestamp(new Date(Date.UTC(2026, 10, 22, 10, 4, 5, 120)))).toBe('2026-11-22 10:04:05.12 +0000 UTC');
    expect(calicoTimestamp(new Date(Date.UTC(2026, 0, 2, 3, 4, 5, 7)))).toBe('2026-01-02 03:04:05.007 +0000 UTC');
    expect(calicoTimestamp(new Date(Date.UTC(2026, 0, 2, 3, 4, 5, 0)))).toBe('2026-01-02 03:04:05 +0000 UTC');
    // Not the local time zone: the same instant gives the same text wherever it runs.
    expect(calicoTimestamp(new Date('2026-06-30T23:59:59.999-02:00'))).toBe('2026-07-01 01:59:59.999 +0000 UTC');
  });

  it("has a tunnel type for every tunnel handle prefix, and none for a pod's handle", () => {
    expect(TUNNEL_HANDLE_PREFIXES.length).toBeGreaterThan(0);
    for (const prefix of TUNNEL_HANDLE_PREFIXES)
      expect(tunnelAttributeType(`${prefix}node-a`)).toBe(TUNNEL_ATTRIBUTE_TYPES[prefix]);
    expect(tunnelAttributeType('ipip-tunnel-addr-node-a')).toBe('ipipTunnelAddress');
    expect(tunnelAttributeType('ipip-tunnel-addr-')).toBeNull();
    expect(tunnelAttributeType('k8s-pod-network.3f69')).toBeNull();
  });

  it('always records the node assigned for, which extra attributes cannot override', () => {
    expect(
      assignmentAttributes('n1', 'k8s-pod-network.c1', { pod: 'web-0', namespace: 'default', node: 'forged' }),
    ).toEqual({ pod: 'web-0', namespace: 'default', node: 'n1' });
    expect(assignmentAttributes('n1', 'ipip-tunnel-addr-n1')).toEqual({ type: 'ipipTunnelAddress', node: 'n1' });
  });
});

describe('Ipam writes attributes', () => {
  it("records node (and a tunnel's type) on every assignment, and the caller's pod, namespace and timestamp", async () => {
    const ds = new MemoryDatastore();
    await ds.create(POOL);
    const ipam = new Ipam(ds);
    await ipam.assign('n1', 'k8s-pod-network.c1', {
      attributes: { namespace: 'default', pod: 'web-0', timestamp: '2026-11-22 10:04:05 +0000 UTC' },
    });
    await ipam.assign('n1', 'ipip-tunnel-addr-n1', { use: 'Tunnel' });
    await ipam.assign('n1', 'plain');
    const block = (await ds.get('IPAMBlock', '10-244-0-0-26'))!.spec;
    expect(block.attributes).toEqual([
      {
        handle_id: 'k8s-pod-network.c1',
        secondary: { namespace: 'default', pod: 'web-0', timestamp: '2026-11-22 10:04:05 +0000 UTC', node: 'n1' },
      },
      { handle_id: 'ipip-tunnel-addr-n1', secondary: { type: 'ipipTunnelAddress', node: 'n1' } },
      { handle_id: 'plain', secondary: { node: 'n1' } },
    ]);
    expect([0, 1, 2, 3].map((o) => allocationNode(block, o))).toEqual(['n1', 'n1', 'n1', null]);
    expect(attributesAt(block, 3)).toBeNull();
  });

  it("an address borrowed from another node's block says the borrower's node", async () => {
    const ds = new MemoryDatastore();
    await ds.create({ ...POOL, spec: { ...POOL.spec, cidr: '10.244.0.0/30', blockSize: 30 } });
    const ipam = new Ipam(ds);
    await ipam.assign('n1', 'a');
    expect(await ipam.assign('n2', 'b')).toEqual(['10.244.0.1']);
    const block = (await ds.get('IPAMBlock', '10-244-0-0-30'))!.spec;
    expect(block.affinity).toBe('host:n1');
    expect(allocationNode(block, 1)).toBe('n2');
  });

  it('releaseAllocations with a node frees only while the allocation still names that node', async () => {
    const ds = new MemoryDatastore();
    await ds.create(POOL);
    const ipam = new Ipam(ds);
    await ipam.assign('n1', 'h');
    expect(await ipam.releaseAllocations('10.244.0.0/26', [{ ordinal: 0, handle: 'h', node: 'n2' }])).toEqual([]);
    expect(await ipam.releaseAllocations('10.244.0.0/26', [{ ordinal: 0, handle: 'h', node: 'n1' }])).toEqual([
      { ip: '10.244.0.0', handle: 'h' },
    ]);
    expect(await ds.get('IPAMHandle', 'h')).toBeNull();
  });
});

type Call = string;

/** The datastore, counting calls as "verb Kind"; `failNextUpdate` makes the next block update lose a race. */
function counting(inner: Datastore): { ds: Datastore; calls: Call[]; failNextUpdate: { on: boolean } } {
  const calls: Call[] = [];
  const failNextUpdate = { on: false };
  const ds: Datastore = {
    type: inner.type,
    get: (k, n, ns) => (calls.push(`get ${k}`), inner.get(k, n, ns)),
    list: (k, o) => (calls.push(`list ${k}`), inner.list(k, o)),
    create: (r) => (calls.push(`create ${r.kind}`), inner.create(r)),
    update: (r) => {
      calls.push(`update ${r.kind}`);
      if (failNextUpdate.on && r.kind === 'IPAMBlock') {
        failNextUpdate.on = false;
        return Promise.reject(new ConflictError(`IPAMBlock ${r.metadata.name} was modified`));
      }
      return inner.update(r);
    },
    delete: (k, n, o) => (calls.push(`delete ${k}`), inner.delete(k, n, o)),
    watch: (k, r, f) => inner.watch(k, r, f),
    close: () => inner.close(),
  };
  return { ds, calls, failNextUpdate };
}

describe('round trips', () => {
  async function withBlock(): Promise<{ mem: MemoryDatastore; c: ReturnType<typeof counting>; ipam: Ipam }> {
    const mem = new MemoryDatastore();
    await mem.create(POOL);
    await new Ipam(mem).assign('n1', 'first'); // the node's block exists
    const c = counting(mem);
    return { mem, c, ipam: new Ipam(c.ds, { random: () => 0 }) };
  }

  it('assign: one block list, the pools and the Node, one block write, the handle created without a read', async () => {
    const { c, ipam } = await withBlock();
    expect(await ipam.assign('n1', 'pod')).toEqual(['10.244.0.1']);
    expect(c.calls).toEqual(['list IPAMBlock', 'list IPPool', 'get Node', 'update IPAMBlock', 'create IPAMHandle']);
    // Pools the caller listed are not listed again.
    c.calls.length = 0;
    await ipam.assign('n1', 'pod-2', { pools: [POOL] });
    expect(c.calls).toEqual(['list IPAMBlock', 'get Node', 'update IPAMBlock', 'create IPAMHandle']);
  });

  it('assign: a retried one only reads; a lost race reads the blocks again; a leftover handle is read after its create fails', async () => {
    const { mem, c, ipam } = await withBlock();
    expect(await ipam.assign('n1', 'first')).toEqual(['10.244.0.0']);
    expect(c.calls).toEqual(['list IPAMBlock']);
    c.calls.length = 0;
    c.failNextUpdate.on = true;
    expect(await ipam.assign('n1', 'raced')).toEqual(['10.244.0.1']);
    expect(c.calls).toEqual([
      'list IPAMBlock',
      'list IPPool',
      'get Node',
      'update IPAMBlock',
      'list IPAMBlock',
      'update IPAMBlock',
      'create IPAMHandle',
    ]);
    await mem.create({
      apiVersion: API_VERSION,
      kind: 'IPAMHandle',
      metadata: { name: 'leftover' },
      spec: { handleID: 'leftover', block: {} },
    });
    c.calls.length = 0;
    await ipam.assign('n1', 'leftover');
    expect(c.calls.slice(-3)).toEqual(['create IPAMHandle', 'get IPAMHandle', 'update IPAMHandle']);
    expect((await mem.get('IPAMHandle', 'leftover'))?.spec.block).toEqual({ '10.244.0.0/26': 1 });
  });

  it('releaseByHandle: one block list, one block write on the revision listed, the handle read and deleted', async () => {
    const { mem, c, ipam } = await withBlock();
    expect(await ipam.releaseByHandle('first')).toEqual(['10.244.0.0']);
    expect(c.calls).toEqual(['list IPAMBlock', 'update IPAMBlock', 'get IPAMHandle', 'delete IPAMHandle']);
    expect(await mem.get('IPAMHandle', 'first')).toBeNull();
    // A lost race: the block is read again and the release decided again.
    await ipam.assign('n1', 'second');
    c.calls.length = 0;
    c.failNextUpdate.on = true;
    expect(await ipam.releaseByHandle('second')).toEqual(['10.244.0.1']);
    expect(c.calls).toEqual([
      'list IPAMBlock',
      'update IPAMBlock',
      'get IPAMBlock',
      'update IPAMBlock',
      'get IPAMHandle',
      'delete IPAMHandle',
    ]);
    // Nothing held: the blocks and the handle are read, nothing written.
    c.calls.length = 0;
    expect(await ipam.releaseByHandle('second')).toEqual([]);
    expect(c.calls).toEqual(['list IPAMBlock', 'get IPAMHandle']);
  });
});
