// NetworkPolicy's nftables driver against the real nft, in a network namespace of its own: the rendered
// filter is accepted by nft; a label change rewrites only the sets it touches (one atomic script, no
// chain rewritten); an unchanged world writes nothing; a rule and a set element deleted by hand come
// back on the resync; the table is all tortie touches.

import { afterAll, describe, expect, it } from 'vitest';
import { Nft } from '../../felix/nft.js';
import { PolicyDataplane } from '../../felix/policy-dataplane.js';
import { renderFilter, peerSetName } from '../../src/policy/render.js';
import { buildWorld, compileEndpoints } from '../../src/policy/semantics.js';
import type { NetworkPolicySpec, Resource } from '../../src/resources/index.js';
import { createNetns, destroyAllNetns, netnsUnavailableReason, runCommand } from '../harness/netns.js';

const unavailable = netnsUnavailableReason();
afterAll(() => destroyAllNetns());

function wep(
  ns: string,
  pod: string,
  ip: string,
  labels: Record<string, string>,
  node = 'node-1',
): Resource<'WorkloadEndpoint'> {
  return {
    apiVersion: 'projectcalico.org/v3',
    kind: 'WorkloadEndpoint',
    metadata: { name: `${node}-k8s-${pod}-eth0`, namespace: ns, labels },
    spec: {
      node,
      pod,
      interfaceName: `cali${pod}`.slice(0, 15),
      ipNetworks: [`${ip}/32`],
      ports: [{ name: 'http', port: 8080 }],
    },
  };
}
function pol(ns: string, name: string, spec: NetworkPolicySpec): Resource<'NetworkPolicy'> {
  return {
    apiVersion: 'networking.k8s.io/v1',
    kind: 'NetworkPolicy',
    metadata: { name, namespace: ns },
    spec: { policyTypes: spec.egress ? ['Ingress', 'Egress'] : ['Ingress'], ...spec },
  };
}

const POLICIES = [
  pol('prod', 'db', {
    podSelector: { matchLabels: { app: 'db' } },
    ingress: [
      {
        from: [
          { podSelector: { matchLabels: { app: 'web' } } },
          { ipBlock: { cidr: '192.168.0.0/16', except: ['192.168.9.0/24'] } },
        ],
        ports: [{ port: 5432 }, { protocol: 'UDP', port: 53, endPort: 60 }],
      },
    ],
  }),
  pol('prod', 'web', {
    podSelector: { matchLabels: { app: 'web' } },
    egress: [
      { to: [{ namespaceSelector: {} }], ports: [{ port: 'http' }] },
      { ports: [{ protocol: 'UDP', port: 53 }] },
    ],
  }),
];

function desired(labels: Record<string, string>) {
  const world = buildWorld({
    policies: POLICIES,
    namespaces: [],
    workloadEndpoints: [
      wep('prod', 'web', '10.244.1.2', labels),
      wep('prod', 'db', '10.244.1.3', { app: 'db' }),
      wep('prod', 'cache', '10.244.2.4', { app: 'cache' }, 'node-2'),
    ],
    nodes: [],
  });
  return { world, filter: renderFilter(compileEndpoints(world, 'node-1')) };
}

describe.skipIf(unavailable !== null)('policy nftables driver (real nft in a namespace)', () => {
  it('applies, changes incrementally, and repairs on resync', async () => {
    const ns = await createNetns('policy');
    const nft = new Nft({ netns: ns.name });
    const dp = new PolicyDataplane(nft);
    const first = desired({ app: 'web' });
    const stats = await dp.apply(first.filter);
    expect(stats.setsWritten).toBe(first.filter.sets.size);
    expect(stats.chainsWritten).toBe(first.filter.chains.size);
    const listed = (await runCommand('ip', ['netns', 'exec', ns.name, 'nft', 'list', 'table', 'inet', 'tortie-filter']))
      .stdout;
    expect(listed).toContain('ct state established,related accept');
    // Each isolated pod's chain is named by its content (pods with the same rules share one).
    expect(listed).toMatch(/iifname vmap \{ "caliweb" : jump egr-[0-9a-f]{16} \}/);
    expect(listed).toMatch(/oifname vmap \{ "calidb" : jump ing-[0-9a-f]{16}, "caliweb" : jump ing-[0-9a-f]{16} \}/);
    const dbChain = /"calidb" : jump (ing-[0-9a-f]{16})/.exec(listed)![1]!;
    expect(listed).toContain('192.168.0.0-192.168.8.255'); // ipBlock minus except
    expect(listed).toContain('192.168.10.0-192.168.255.255');
    expect(listed).toContain('udp dport 53-60');
    expect(listed).toContain('10.244.1.3 . tcp . 8080'); // web's egress named port, resolved on each destination

    // Nothing changed: nothing written.
    expect((await dp.apply(first.filter)).scriptLines).toBe(0);

    // web loses app=web: the db rule's peer set changes (web is no longer a peer), and web's chains go.
    const second = desired({ app: 'other' });
    const change = await dp.apply(second.filter);
    expect(change.setsWritten).toBe(1);
    expect(change.chainsDeleted).toBe(2);
    expect(change.setsDeleted).toBe(2); // web's egress rule 0: its peer set and its named-port set
    const dbRule = compileEndpoints(second.world, 'node-1').find((c) => c.endpoint.pod === 'db')!.ingress![0]!;
    const set = (
      await runCommand('ip', [
        'netns',
        'exec',
        ns.name,
        'nft',
        'list',
        'set',
        'inet',
        'tortie-filter',
        peerSetName(dbRule),
      ])
    ).stdout;
    expect(set).not.toContain('10.244.1.2');

    // Someone deletes the final drop of db's chain and a set element: the resync puts both back.
    const handles = (
      await runCommand('ip', ['netns', 'exec', ns.name, 'nft', '-a', 'list', 'chain', 'inet', 'tortie-filter', dbChain])
    ).stdout;
    const drop = /drop comment "tortie:[0-9a-f]+" # handle (\d+)/.exec(handles);
    expect(drop).not.toBeNull();
    await runCommand('ip', [
      'netns',
      'exec',
      ns.name,
      'nft',
      'delete',
      'rule',
      'inet',
      'tortie-filter',
      dbChain,
      'handle',
      drop![1]!,
    ]);
    await runCommand('ip', [
      'netns',
      'exec',
      ns.name,
      'nft',
      'delete',
      'element',
      'inet',
      'tortie-filter',
      peerSetName(dbRule),
      '{ 192.168.0.0-192.168.8.255 }',
    ]);
    expect((await dp.apply(second.filter)).scriptLines).toBe(0); // incremental apply trusts its memory
    const repaired = await dp.resync(second.filter);
    expect(repaired).toMatchObject({ setsWritten: 1, chainsWritten: 1, setsDeleted: 0, chainsDeleted: 0 });
    expect((await dp.resync(second.filter)).scriptLines).toBe(0);
    await ns.destroy();
  });
});
