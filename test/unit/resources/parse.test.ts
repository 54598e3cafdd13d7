// parseDocuments and toResource: multi-document YAML and JSON, lists flattened, syntax errors located,
// strict fields (unknown ones named), metadata bookkeeping dropped, AS numbers normalized.

import { describe, expect, it } from 'vitest';
import { parseDocuments, ResourceError, toResource } from '../../../src/resources/index.js';

const POOL = (name: string, extra = ''): string =>
  `apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata:\n  name: ${name}\nspec:\n  cidr: 10.1.0.0/16\n${extra}`;

function refusal(doc: unknown, index = 0): ResourceError {
  try {
    toResource(doc, index);
  } catch (error) {
    if (error instanceof ResourceError) return error;
    throw error;
  }
  throw new Error('toResource accepted the document');
}

describe('parseDocuments', () => {
  it('splits multi-document YAML and skips empty documents', () => {
    const docs = parseDocuments(`---\n${POOL('a')}---\n---\n${POOL('b')}`, 'x.yaml');
    expect(docs.map((d) => (d as { metadata: { name: string } }).metadata.name)).toEqual(['a', 'b']);
  });

  it('reads JSON', () => {
    const docs = parseDocuments(
      JSON.stringify({
        apiVersion: 'projectcalico.org/v3',
        kind: 'IPPool',
        metadata: { name: 'j' },
        spec: { cidr: '10.1.0.0/16' },
      }),
      'x.json',
    );
    expect(docs).toHaveLength(1);
    expect(toResource(docs[0], 0).metadata.name).toBe('j');
  });

  it('flattens kind: List and <Kind>List', () => {
    const list = `apiVersion: v1\nkind: List\nitems:\n- ${POOL('a').replaceAll('\n', '\n  ')}\n- ${POOL('b').replaceAll('\n', '\n  ')}`;
    expect(parseDocuments(list, 'l.yaml')).toHaveLength(2);
    const json = JSON.stringify({ kind: 'BGPPeerList', items: [{ a: 1 }, { b: 2 }, { c: 3 }] });
    expect(parseDocuments(json, 'l.json')).toHaveLength(3);
  });

  it('names the source, document and line of a syntax error', () => {
    const text = `${POOL('a')}---\napiVersion: projectcalico.org/v3\nkind: [IPPool\n---\n${POOL('c')}`;
    expect(() => parseDocuments(text, 'pools.yaml')).toThrow(
      /^pools\.yaml: document 2, line 10: YAML syntax error: Flow sequence/,
    );
  });
});

describe('toResource', () => {
  it('builds a typed resource', () => {
    const r = toResource(parseDocuments(POOL('a', '  blockSize: 27\n  ipipMode: CrossSubnet\n'), 'x')[0], 0);
    expect(r).toEqual({
      apiVersion: 'projectcalico.org/v3',
      kind: 'IPPool',
      metadata: { name: 'a' },
      spec: { cidr: '10.1.0.0/16', blockSize: 27, ipipMode: 'CrossSubnet' },
    });
  });

  it('refuses another apiVersion, naming the one accepted', () => {
    const e = refusal(
      {
        apiVersion: 'crd.projectcalico.org/v1',
        kind: 'IPPool',
        metadata: { name: 'a' },
        spec: { cidr: '10.1.0.0/16' },
      },
      2,
    );
    expect(e.message).toBe(
      'document 3 (IPPool "a"): apiVersion: "crd.projectcalico.org/v1" is not projectcalico.org/v3 (the only API version tortie reads)',
    );
    expect(e.index).toBe(3);
    expect(e.resource).toBe('IPPool/a');
  });

  it('refuses an unknown kind, listing the known ones', () => {
    const e = refusal({ apiVersion: 'projectcalico.org/v3', kind: 'GlobalNetworkPolicy', metadata: { name: 'a' } });
    expect(e.problems).toEqual([expect.objectContaining({ path: 'kind', value: 'GlobalNetworkPolicy' })]);
    expect(e.message).toContain('accepted: IPPool, BGPConfiguration, BGPPeer');
  });

  it('refuses unknown spec, nested, metadata and top-level fields, naming each', () => {
    const e = refusal({
      apiVersion: 'projectcalico.org/v3',
      kind: 'Node',
      metadata: { name: 'n', colour: 'red' },
      extra: 1,
      spec: { bgp: { ipv4address: '1.2.3.4/24' }, foo: true },
    });
    expect(e.problems.map((p) => p.path).sort()).toEqual([
      'extra',
      'metadata.colour',
      'spec.bgp.ipv4address',
      'spec.foo',
    ]);
    expect(e.message).toMatch(/^document 1 \(Node "n"\): 4 problems:\n {2}- /);
    expect(e.message).toContain(
      'unknown field "ipv4address" (known fields of spec.bgp: ipv4Address, asNumber, ipv4IPIPTunnelAddr, routeReflectorClusterID, ipv6Address)',
    );
  });

  it('refuses wrong types with the path and the value', () => {
    const e = refusal({
      apiVersion: 'projectcalico.org/v3',
      kind: 'IPPool',
      metadata: { name: 'a', labels: { on: true } },
      spec: { cidr: '10.1.0.0/16', blockSize: '26', natOutgoing: 'yes', ipipMode: 'always' },
    });
    expect(e.problems).toEqual([
      { path: 'metadata.labels.on', value: true, message: 'true is not a string' },
      { path: 'spec.blockSize', value: '26', message: '"26" is not an integer' },
      { path: 'spec.ipipMode', value: 'always', message: '"always" is not one of Never, Always, CrossSubnet' },
      { path: 'spec.natOutgoing', value: 'yes', message: '"yes" is not true or false' },
    ]);
  });

  it('requires a map, metadata and a name', () => {
    expect(refusal('just text').message).toBe(
      'document 1 (document): expected a map with apiVersion, kind, metadata and spec, found "just text"',
    );
    expect(
      refusal({ apiVersion: 'projectcalico.org/v3', kind: 'IPPool', spec: {} }).problems.map((p) => p.path),
    ).toEqual(['metadata']);
    expect(
      refusal({ apiVersion: 'projectcalico.org/v3', kind: 'IPPool', metadata: {}, spec: {} }).problems.map(
        (p) => p.path,
      ),
    ).toEqual(['metadata.name']);
    expect(
      refusal({
        apiVersion: 'projectcalico.org/v3',
        kind: 'IPPool',
        metadata: { name: 5 },
        spec: { cidr: '10.1.0.0/16' },
      }).problems,
    ).toEqual([
      { path: 'metadata.name', value: 5, message: '5 is not a name: metadata.name is required (a non-empty string)' },
    ]);
  });

  it('drops status and Kubernetes bookkeeping in metadata, keeps the rest', () => {
    const r = toResource(
      {
        apiVersion: 'projectcalico.org/v3',
        kind: 'IPPool',
        status: { conditions: [] },
        metadata: {
          name: 'a',
          generation: 3,
          managedFields: [],
          resourceVersion: 12,
          uid: 'u',
          annotations: { x: 'y' },
        },
        spec: { cidr: '10.1.0.0/16' },
      },
      0,
    );
    expect(r.metadata).toEqual({ name: 'a', resourceVersion: '12', uid: 'u', annotations: { x: 'y' } });
    expect(r).not.toHaveProperty('status');
  });

  it('reads AS numbers as numbers, strings and asdot', () => {
    const peer = (asNumber: unknown): unknown => ({
      apiVersion: 'projectcalico.org/v3',
      kind: 'BGPPeer',
      metadata: { name: 'p' },
      spec: { peerIP: '198.18.0.1', asNumber },
    });
    expect(toResource(peer(64512), 0).spec).toMatchObject({ asNumber: 64512 });
    expect(toResource(peer('64512'), 0).spec).toMatchObject({ asNumber: 64512 });
    expect(toResource(peer('1.10'), 0).spec).toMatchObject({ asNumber: 65546 });
    expect(refusal(peer(1.1)).problems[0]?.message).toBe(
      '1.1 is not an AS number (write asdot in quotes, like "1.10")',
    );
    expect(refusal(peer('1.65536')).problems[0]?.message).toBe(
      '"1.65536" is not an AS number (like 64512 or asdot "1.10")',
    );
  });

  it('keeps null where Calico stores null (IPAM allocations, affinity) and drops an empty YAML value elsewhere', () => {
    const block = toResource(
      {
        apiVersion: 'projectcalico.org/v3',
        kind: 'IPAMBlock',
        metadata: { name: '10-1-0-0-30' },
        spec: {
          cidr: '10.1.0.0/30',
          affinity: null,
          allocations: [0, null, null, null],
          unallocated: [1, 2, 3],
          attributes: [{ handle_id: 'h', secondary: null }],
        },
      },
      0,
    );
    expect(block.spec).toMatchObject({
      affinity: null,
      allocations: [0, null, null, null],
      attributes: [{ handle_id: 'h', secondary: null }],
    });
    const pool = toResource(parseDocuments(POOL('a', '  natOutgoing:\n'), 'x')[0], 0);
    expect(pool.spec).not.toHaveProperty('natOutgoing');
  });
});
