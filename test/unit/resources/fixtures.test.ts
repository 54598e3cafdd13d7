// The YAML fixtures other parts test with (test/fixtures/resources): every good one parses, defaults and
// validates; the seed examples of issue 4 keep the values users wrote; bad-middle.yaml fails on document 2.

import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  applyDefaults,
  parseDocuments,
  ResourceError,
  toResource,
  validateAgainst,
  validateResource,
  type AnyResource,
} from '../../../src/resources/index.js';

const DIR = join(import.meta.dirname, '../../fixtures/resources');
const GOOD = readdirSync(DIR).filter((f) => f.endsWith('.yaml') && !f.startsWith('bad-'));

function load(file: string): AnyResource[] {
  return parseDocuments(readFileSync(join(DIR, file), 'utf8'), file).map((doc, i) => applyDefaults(toResource(doc, i)));
}

describe('resource fixtures', () => {
  it('has fixtures to check', () => {
    expect(GOOD.length).toBeGreaterThanOrEqual(7);
  });

  it.each(GOOD)('%s parses, defaults and validates with no problem', (file) => {
    const resources = load(file);
    expect(resources.length).toBeGreaterThan(0);
    for (const r of resources) expect(validateResource(r)).toEqual([]);
    const pools = resources.filter((r): r is AnyResource & { kind: 'IPPool' } => r.kind === 'IPPool');
    for (const r of pools) expect(validateAgainst(r, { ipPools: pools })).toEqual([]);
  });

  it('keeps the seed examples as written and fills Calico defaults', () => {
    const [pool, config, peer, node] = load('seed.yaml');
    expect(pool).toMatchObject({
      kind: 'IPPool',
      metadata: { name: 'default-ipv4-ippool' },
      spec: {
        cidr: '10.244.0.0/16',
        blockSize: 26,
        ipipMode: 'Always',
        natOutgoing: true,
        vxlanMode: 'Never',
        nodeSelector: 'all()',
      },
    });
    expect(config).toMatchObject({
      kind: 'BGPConfiguration',
      metadata: { name: 'default' },
      spec: { nodeToNodeMeshEnabled: false, asNumber: 64512, listenPort: 179 },
    });
    expect(peer).toMatchObject({
      kind: 'BGPPeer',
      spec: { nodeSelector: 'all()', peerSelector: "route-reflector == 'true'" },
    });
    expect(node).toMatchObject({
      kind: 'Node',
      metadata: { labels: { 'route-reflector': 'true' } },
      spec: { bgp: { routeReflectorClusterID: '244.0.0.1', ipv4Address: '198.18.0.11/24' } },
    });
  });

  it('bad-middle.yaml: document 2 is refused, naming its index and field', () => {
    const docs = parseDocuments(readFileSync(join(DIR, 'bad-middle.yaml'), 'utf8'), 'bad-middle.yaml');
    expect(docs).toHaveLength(3);
    const outcomes = docs.map((doc, i) => {
      const problems = validateResource(applyDefaults(toResource(doc, i)));
      return problems.length === 0
        ? null
        : new ResourceError(`IPPool/${(doc as { metadata: { name: string } }).metadata.name}`, problems, i + 1);
    });
    expect(outcomes[0]).toBeNull();
    expect(outcomes[2]).toBeNull();
    expect(outcomes[1]?.message).toBe('document 2 (IPPool "p1"): spec.blockSize: 19 is not in 20..32 (IPv4)');
  });
});
