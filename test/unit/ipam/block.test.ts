// The pure block functions (src/ipam/block.ts) and IPAM names (src/ipam/names.ts).

import { describe, expect, it } from 'vitest';
import * as blocks from '../../../src/ipam/block.js';
import {
  affinityName,
  blockName,
  cidrKeyPart,
  cidrOfBlockName,
  parseAffinityName,
} from '../../../src/resources/ipam-names.js';

describe('IPAM names', () => {
  it('maps block CIDRs to Calico CRD names and back', () => {
    expect(blockName('10.244.1.0/26')).toBe('10-244-1-0-26');
    expect(cidrOfBlockName('10-244-1-0-26')).toBe('10.244.1.0/26');
    expect(cidrOfBlockName('10.244.1.0-26')).toBe('10.244.1.0/26');
    expect(cidrKeyPart('10.244.1.64/26')).toBe('10.244.1.64-26');
    expect(() => cidrOfBlockName('10-244-1-26')).toThrow(/"10-244-1-26" is not a block/);
    expect(() => blockName('10.244.1.1/26')).toThrow(/host bits set/);
  });

  it('keeps dashes in node names when parsing affinity names', () => {
    expect(affinityName('node-a-1', '10.244.1.0/26')).toBe('node-a-1-10-244-1-0-26');
    expect(parseAffinityName('node-a-1-10-244-1-0-26')).toEqual({ node: 'node-a-1', cidr: '10.244.1.0/26' });
    expect(() => parseAffinityName('10-244-1-0-26')).toThrow(/<node>-<block>/);
  });
});

describe('allocation block', () => {
  it('a new /26 has 64 free ordinals and Calico affinity', () => {
    const b = blocks.newBlock('10.244.1.0/26', 'node-a');
    expect(b.allocations).toHaveLength(64);
    expect(b.unallocated).toEqual(Array.from({ length: 64 }, (_, i) => i));
    expect(b.affinity).toBe('host:node-a');
    expect(blocks.affineNode(b)).toBe('node-a');
    expect(blocks.affineNode(blocks.newBlock('10.244.1.0/26', null))).toBeNull();
  });

  it('allocates in unallocated order, shares one attribute per handle, does not change its input', () => {
    const empty = blocks.newBlock('10.244.1.0/30', 'n');
    const a = blocks.allocate(empty, 2, 'h1');
    expect(a.ordinals).toEqual([0, 1]);
    expect(empty.unallocated).toEqual([0, 1, 2, 3]);
    const b = blocks.allocate(a.block, 1, 'h1');
    expect(b.block.attributes).toEqual([{ handle_id: 'h1', secondary: null }]);
    expect(b.block.allocations).toEqual([0, 0, 0, null]);
    const c = blocks.allocate(b.block, 5, 'h2');
    expect(c.ordinals).toEqual([3]);
    expect(blocks.freeCount(c.block)).toBe(0);
    expect(blocks.allocate(c.block, 1, 'h3').ordinals).toEqual([]);
    expect(blocks.addressOf(c.block, 3)).toBe('10.244.1.3');
    expect(blocks.ordinalsOfHandle(c.block, 'h1')).toEqual([0, 1, 2]);
    expect(c.block.sequenceNumber).toBe(3);
  });

  it('release frees ordinals, counts per handle, drops unused attributes and renumbers the rest', () => {
    let b = blocks.newBlock('10.244.1.0/29', 'n');
    b = blocks.allocate(b, 2, 'h1').block;
    b = blocks.allocate(b, 2, 'h2').block;
    const r = blocks.release(b, [0, 1, 1, 7]);
    expect(r.freed).toEqual([0, 1]);
    expect([...r.byHandle]).toEqual([['h1', 2]]);
    expect(r.block.attributes).toEqual([{ handle_id: 'h2', secondary: null }]);
    expect(r.block.allocations.slice(0, 4)).toEqual([null, null, 0, 0]);
    expect(blocks.allocatedCount(r.block)).toBe(2);
    expect(r.block.unallocated).toContain(0);
    expect(blocks.ordinalOf(r.block, '10.244.1.3')).toBe(3);
    expect(blocks.ordinalOf(r.block, '10.244.2.3')).toBeNull();
  });

  it('lists the aligned blocks of a pool, lowest first', () => {
    const all = [...blocks.blocksOfPool('10.244.0.0/24', 26)];
    expect(all).toEqual(['10.244.0.0/26', '10.244.0.64/26', '10.244.0.128/26', '10.244.0.192/26']);
    expect(() => [...blocks.blocksOfPool('10.244.0.0/24', 20)]).toThrow(
      /blockSize 20 does not fit pool 10.244.0.0\/24 \(expected 24..32\)/,
    );
  });
});
