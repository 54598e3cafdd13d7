// NetworkPolicy semantics case by case, each rule of the Kubernetes documentation with a case that allows
// and one that denies: isolation per direction, rules adding up, peers ORed / ANDed, ipBlock except,
// numeric / named / range ports, the empty cases, the node's own traffic, both sides needed.

import { describe, expect, it } from 'vitest';
import { applyDefaults, type NetworkPolicySpec, type Resource } from '../../../src/resources/index.js';
import {
  buildWorld,
  compileEndpoints,
  decide,
  labelSelectorMatches,
  type PolicyEndpoint,
  type PolicyWorld,
} from '../../../src/policy/semantics.js';
import { ipBlockRanges } from '../../../src/policy/semantics.js';
import { formatRange, mergeRanges, subtractRanges, ipv4Range } from '../../../src/policy/ranges.js';

function policy(namespace: string, name: string, spec: NetworkPolicySpec): Resource<'NetworkPolicy'> {
  return applyDefaults({
    apiVersion: 'networking.k8s.io/v1',
    kind: 'NetworkPolicy',
    metadata: { name, namespace },
    spec,
  });
}

interface PodDef {
  ns: string;
  pod: string;
  ip: string;
  labels?: Record<string, string>;
  node?: string;
  ports?: Array<{ name: string; port: number; protocol?: 'TCP' | 'UDP' | 'SCTP' }>;
}

const PODS: PodDef[] = [
  { ns: 'prod', pod: 'web', ip: '10.244.1.2', labels: { app: 'web' }, ports: [{ name: 'http', port: 8080 }] },
  { ns: 'prod', pod: 'db', ip: '10.244.1.3', labels: { app: 'db' }, ports: [{ name: 'pg', port: 5432 }] },
  { ns: 'prod', pod: 'cache', ip: '10.244.2.4', labels: { app: 'cache', tier: 'back' }, node: 'node-2' },
  {
    ns: 'dev',
    pod: 'web',
    ip: '10.244.2.5',
    labels: { app: 'web' },
    node: 'node-2',
    ports: [{ name: 'http', port: 9090 }],
  },
  { ns: 'mon', pod: 'prom', ip: '10.244.2.6', labels: { app: 'prom' }, node: 'node-2' },
];

function world(
  policies: Array<Resource<'NetworkPolicy'>>,
  namespaces: Record<string, Record<string, string>> = {
    prod: { env: 'prod' },
    dev: { env: 'dev' },
    mon: { team: 'ops' },
  },
): PolicyWorld {
  return buildWorld({
    policies,
    namespaces: Object.entries(namespaces).map(([name, labels]) => ({
      apiVersion: 'v1',
      kind: 'Namespace',
      metadata: { name, labels },
      spec: {},
    })),
    workloadEndpoints: PODS.map((p) => ({
      apiVersion: 'projectcalico.org/v3',
      kind: 'WorkloadEndpoint',
      metadata: { name: `${p.node ?? 'node-1'}-k8s-${p.pod}-eth0`, namespace: p.ns, labels: p.labels ?? {} },
      spec: {
        node: p.node ?? 'node-1',
        pod: p.pod,
        interfaceName: `cali${p.ns}${p.pod}`.slice(0, 15),
        ipNetworks: [`${p.ip}/32`],
        ...(p.ports ? { ports: p.ports } : {}),
      },
    })),
    nodes: [
      {
        apiVersion: 'projectcalico.org/v3',
        kind: 'Node',
        metadata: { name: 'node-1' },
        spec: { bgp: { ipv4Address: '198.18.0.1/24' } },
      },
      {
        apiVersion: 'projectcalico.org/v3',
        kind: 'Node',
        metadata: { name: 'node-2' },
        spec: { bgp: { ipv4Address: '198.18.0.2/24' } },
      },
    ],
  });
}

function ep(w: PolicyWorld, name: string): PolicyEndpoint {
  const [ns, pod] = name.split('/');
  const found = w.endpoints.find((e) => e.namespace === ns && e.pod === pod);
  if (!found) throw new Error(`no pod ${name}`);
  return found;
}

/** allowed?(from "ns/pod" or an IP, to "ns/pod", "port/PROTO") */
function allowed(w: PolicyWorld, from: string, to: string, port = '80/TCP'): boolean {
  const [n, proto] = port.split('/') as [string, 'TCP' | 'UDP' | 'SCTP'];
  const source = from.includes('/') ? { endpoint: ep(w, from) } : { ip: from };
  return decide(w, source, ep(w, to), Number(n), proto).allowed;
}

describe('label selectors', () => {
  const labels = { app: 'web', tier: 'front' };
  it.each([
    [{}, true],
    [{ matchLabels: { app: 'web' } }, true],
    [{ matchLabels: { app: 'db' } }, false],
    [{ matchLabels: { app: 'web', tier: 'back' } }, false],
    [{ matchExpressions: [{ key: 'app', operator: 'In' as const, values: ['web', 'db'] }] }, true],
    [{ matchExpressions: [{ key: 'app', operator: 'In' as const, values: ['db'] }] }, false],
    [{ matchExpressions: [{ key: 'app', operator: 'NotIn' as const, values: ['db'] }] }, true],
    [{ matchExpressions: [{ key: 'zone', operator: 'NotIn' as const, values: ['a'] }] }, true],
    [{ matchExpressions: [{ key: 'app', operator: 'NotIn' as const, values: ['web'] }] }, false],
    [{ matchExpressions: [{ key: 'tier', operator: 'Exists' as const }] }, true],
    [{ matchExpressions: [{ key: 'zone', operator: 'Exists' as const }] }, false],
    [{ matchExpressions: [{ key: 'zone', operator: 'DoesNotExist' as const }] }, true],
    [{ matchExpressions: [{ key: 'app', operator: 'DoesNotExist' as const }] }, false],
    [
      { matchLabels: { app: 'web' }, matchExpressions: [{ key: 'tier', operator: 'In' as const, values: ['back'] }] },
      false,
    ],
  ])('%j → %s', (selector, expected) => {
    expect(labelSelectorMatches(selector, labels)).toBe(expected);
  });
});

describe('isolation', () => {
  it('no policy: everything is allowed', () => {
    const w = world([]);
    expect(allowed(w, 'dev/web', 'prod/db')).toBe(true);
    expect(decide(w, { endpoint: ep(w, 'dev/web') }, ep(w, 'prod/db'), 80, 'TCP').ingress.reason).toBe(
      'prod/db is not isolated for ingress (no policy with Ingress in policyTypes selects it)',
    );
  });

  it('default-deny ingress (podSelector {} and no rules) isolates every pod of its namespace, and only those', () => {
    const w = world([policy('prod', 'deny', { podSelector: {} })]);
    expect(allowed(w, 'dev/web', 'prod/db')).toBe(false);
    expect(allowed(w, 'prod/web', 'prod/db')).toBe(false);
    expect(allowed(w, 'prod/db', 'dev/web')).toBe(true); // egress of prod is not isolated; dev is not
    const d = decide(w, { endpoint: ep(w, 'dev/web') }, ep(w, 'prod/db'), 80, 'TCP');
    expect(d.ingress).toEqual({
      direction: 'ingress',
      allowed: false,
      isolatedBy: ['prod/deny'],
      reason: 'prod/db is isolated for ingress by prod/deny and no ingress rule allows dev/web on port 80/TCP',
    });
  });

  it('a policy with only egress rules isolates both directions (policyTypes default Ingress + Egress)', () => {
    const w = world([
      policy('prod', 'eg', {
        podSelector: { matchLabels: { app: 'web' } },
        egress: [{ to: [{ podSelector: { matchLabels: { app: 'db' } } }] }],
      }),
    ]);
    expect(allowed(w, 'prod/web', 'prod/db')).toBe(true);
    expect(allowed(w, 'prod/web', 'dev/web')).toBe(false);
    expect(allowed(w, 'prod/db', 'prod/web')).toBe(false); // web's ingress is isolated too
  });

  it('policyTypes [Egress] alone leaves ingress open', () => {
    const w = world([policy('prod', 'eg', { podSelector: {}, policyTypes: ['Egress'] })]);
    expect(allowed(w, 'dev/web', 'prod/db')).toBe(true);
    expect(allowed(w, 'prod/db', 'dev/web')).toBe(false);
  });

  it('an empty rule {} allows everything in its direction', () => {
    const w = world([policy('prod', 'all', { podSelector: {}, ingress: [{}] })]);
    expect(allowed(w, 'dev/web', 'prod/db', '1234/UDP')).toBe(true);
    expect(allowed(w, '203.0.113.9', 'prod/db', '22/SCTP')).toBe(true);
  });

  it('rules add up across policies (order does not matter): deny-all plus allow-web', () => {
    const deny = policy('prod', 'a-deny', { podSelector: {} });
    const allow = policy('prod', 'b-allow', {
      podSelector: { matchLabels: { app: 'db' } },
      ingress: [{ from: [{ podSelector: { matchLabels: { app: 'web' } } }] }],
    });
    for (const w of [world([deny, allow]), world([allow, deny])]) {
      expect(allowed(w, 'prod/web', 'prod/db')).toBe(true);
      expect(allowed(w, 'prod/cache', 'prod/db')).toBe(false);
      const d = decide(w, { endpoint: ep(w, 'prod/web') }, ep(w, 'prod/db'), 80, 'TCP');
      expect(d.ingress.policy).toBe('prod/b-allow');
      expect(d.ingress.rule).toBe(0);
      expect(d.ingress.isolatedBy).toEqual(['prod/a-deny', 'prod/b-allow']);
    }
  });
});

describe('peers', () => {
  it('podSelector alone means pods of the policy namespace (allow-same-namespace)', () => {
    const w = world([policy('prod', 'same', { podSelector: {}, ingress: [{ from: [{ podSelector: {} }] }] })]);
    expect(allowed(w, 'prod/web', 'prod/db')).toBe(true);
    expect(allowed(w, 'dev/web', 'prod/db')).toBe(false);
  });

  it('namespaceSelector alone: every pod of the selected namespaces', () => {
    const w = world([
      policy('prod', 'ops', {
        podSelector: {},
        ingress: [{ from: [{ namespaceSelector: { matchLabels: { team: 'ops' } } }] }],
      }),
    ]);
    expect(allowed(w, 'mon/prom', 'prod/db')).toBe(true);
    expect(allowed(w, 'dev/web', 'prod/db')).toBe(false);
    expect(allowed(w, 'prod/web', 'prod/db')).toBe(false); // its own namespace is not selected
  });

  it('namespaceSelector by name (kubernetes.io/metadata.name), also for a namespace with no object', () => {
    const w = world(
      [
        policy('prod', 'n', {
          podSelector: {},
          ingress: [{ from: [{ namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'dev' } } }] }],
        }),
      ],
      {},
    );
    expect(allowed(w, 'dev/web', 'prod/db')).toBe(true);
    expect(allowed(w, 'mon/prom', 'prod/db')).toBe(false);
  });

  it('namespaceSelector AND podSelector in one entry; the same as two entries is OR', () => {
    const and = world([
      policy('prod', 'and', {
        podSelector: {},
        ingress: [
          {
            from: [
              { namespaceSelector: { matchLabels: { env: 'dev' } }, podSelector: { matchLabels: { app: 'web' } } },
            ],
          },
        ],
      }),
    ]);
    expect(allowed(and, 'dev/web', 'prod/db')).toBe(true);
    expect(allowed(and, 'prod/web', 'prod/db')).toBe(false); // app=web but not in env=dev
    expect(allowed(and, 'mon/prom', 'prod/db')).toBe(false);
    const or = world([
      policy('prod', 'or', {
        podSelector: {},
        ingress: [
          {
            from: [
              { namespaceSelector: { matchLabels: { env: 'dev' } } },
              { podSelector: { matchLabels: { app: 'web' } } },
            ],
          },
        ],
      }),
    ]);
    expect(allowed(or, 'dev/web', 'prod/db')).toBe(true);
    expect(allowed(or, 'prod/web', 'prod/db')).toBe(true);
    expect(allowed(or, 'mon/prom', 'prod/db')).toBe(false);
  });

  it('ipBlock with except, for addresses and for pods', () => {
    const w = world([
      policy('prod', 'ip', {
        podSelector: {},
        ingress: [
          {
            from: [
              { ipBlock: { cidr: '10.244.0.0/16', except: ['10.244.2.0/24'] } },
              { ipBlock: { cidr: '203.0.113.0/24' } },
            ],
          },
        ],
      }),
    ]);
    expect(allowed(w, '10.244.9.9', 'prod/db')).toBe(true);
    expect(allowed(w, '10.244.2.200', 'prod/db')).toBe(false);
    expect(allowed(w, '203.0.113.7', 'prod/db')).toBe(true);
    expect(allowed(w, '192.0.2.1', 'prod/db')).toBe(false);
    expect(allowed(w, 'prod/web', 'prod/db')).toBe(true); // 10.244.1.2
    expect(allowed(w, 'dev/web', 'prod/db')).toBe(false); // 10.244.2.5, in the except
  });

  it('a selector matching no pod matches nothing; an address is matched only by ipBlock', () => {
    const w = world([
      policy('prod', 'none', {
        podSelector: {},
        ingress: [{ from: [{ podSelector: { matchLabels: { app: 'nope' } } }] }],
      }),
    ]);
    expect(allowed(w, 'prod/web', 'prod/db')).toBe(false);
    const s = world([policy('prod', 'sel', { podSelector: {}, ingress: [{ from: [{ namespaceSelector: {} }] }] })]);
    expect(allowed(s, 'dev/web', 'prod/db')).toBe(true);
    expect(allowed(s, '203.0.113.7', 'prod/db')).toBe(false);
  });

  it('an address that is a pod is that pod', () => {
    const w = world([policy('prod', 'same', { podSelector: {}, ingress: [{ from: [{ podSelector: {} }] }] })]);
    expect(allowed(w, '10.244.1.2', 'prod/db')).toBe(true);
    expect(allowed(w, '10.244.2.5', 'prod/db')).toBe(false);
  });
});

describe('ports', () => {
  const w = (ports: NonNullable<NetworkPolicySpec['ingress']>[number]['ports']) =>
    world([policy('prod', 'p', { podSelector: {}, ingress: [{ ports }] })]);
  it('single port: that port and protocol only', () => {
    const x = w([{ protocol: 'TCP', port: 5432 }]);
    expect(allowed(x, 'prod/web', 'prod/db', '5432/TCP')).toBe(true);
    expect(allowed(x, 'prod/web', 'prod/db', '5433/TCP')).toBe(false);
    expect(allowed(x, 'prod/web', 'prod/db', '5432/UDP')).toBe(false);
  });
  it('multiple ports and protocols are ORed; protocol defaults to TCP', () => {
    const x = w([{ port: 80 }, { protocol: 'UDP', port: 53 }, { protocol: 'SCTP' }]);
    expect(allowed(x, 'prod/web', 'prod/db', '80/TCP')).toBe(true);
    expect(allowed(x, 'prod/web', 'prod/db', '53/UDP')).toBe(true);
    expect(allowed(x, 'prod/web', 'prod/db', '53/TCP')).toBe(false);
    expect(allowed(x, 'prod/web', 'prod/db', '9999/SCTP')).toBe(true);
  });
  it('endPort: the whole range, inclusive', () => {
    const x = w([{ port: 32000, endPort: 32010 }]);
    expect(allowed(x, 'prod/web', 'prod/db', '32000/TCP')).toBe(true);
    expect(allowed(x, 'prod/web', 'prod/db', '32010/TCP')).toBe(true);
    expect(allowed(x, 'prod/web', 'prod/db', '32011/TCP')).toBe(false);
    expect(allowed(x, 'prod/web', 'prod/db', '31999/TCP')).toBe(false);
  });
  it('named ports resolve on the destination pod', () => {
    const x = world([
      policy('prod', 'p', { podSelector: {}, ingress: [{ ports: [{ port: 'http' }] }] }),
      policy('dev', 'p', { podSelector: {}, ingress: [{ ports: [{ port: 'http' }] }] }),
    ]);
    expect(allowed(x, 'prod/db', 'prod/web', '8080/TCP')).toBe(true);
    expect(allowed(x, 'prod/db', 'prod/web', '9090/TCP')).toBe(false);
    expect(allowed(x, 'prod/db', 'dev/web', '9090/TCP')).toBe(true);
    expect(allowed(x, 'prod/web', 'prod/db', '8080/TCP')).toBe(false); // db has no port named http
  });
  it('egress to port 53/UDP only', () => {
    const x = world([
      policy('prod', 'dns', {
        podSelector: { matchLabels: { app: 'web' } },
        policyTypes: ['Egress'],
        egress: [{ ports: [{ protocol: 'UDP', port: 53 }] }],
      }),
    ]);
    expect(allowed(x, 'prod/web', 'mon/prom', '53/UDP')).toBe(true);
    expect(allowed(x, 'prod/web', 'mon/prom', '53/TCP')).toBe(false);
    expect(allowed(x, 'prod/web', 'mon/prom', '80/TCP')).toBe(false);
    const d = decide(x, { endpoint: ep(x, 'prod/web') }, ep(x, 'mon/prom'), 80, 'TCP');
    expect(d.egress.reason).toBe(
      'prod/web is isolated for egress by prod/dns and no egress rule allows mon/prom port 80/TCP',
    );
    expect(d.ingress.allowed).toBe(true);
  });
});

describe('both sides, and the node', () => {
  it('a connection needs the source egress and the destination ingress', () => {
    const egressOnly = policy('dev', 'out', {
      podSelector: {},
      egress: [{ to: [{ namespaceSelector: { matchLabels: { env: 'prod' } } }] }],
      policyTypes: ['Egress'],
    });
    const ingressDeny = policy('prod', 'in', { podSelector: { matchLabels: { app: 'db' } } });
    const w = world([egressOnly, ingressDeny]);
    expect(allowed(w, 'dev/web', 'prod/web')).toBe(true);
    const d = decide(w, { endpoint: ep(w, 'dev/web') }, ep(w, 'prod/db'), 80, 'TCP');
    expect(d.egress).toMatchObject({ allowed: true, policy: 'dev/out', rule: 0 });
    expect(d.ingress).toMatchObject({ allowed: false, isolatedBy: ['prod/in'] });
    expect(d.allowed).toBe(false);
    expect(allowed(w, 'dev/web', 'mon/prom')).toBe(false);
  });

  it("traffic from the pod's own node is always allowed; another node's is not", () => {
    const w = world([policy('prod', 'deny', { podSelector: {} })]);
    expect(allowed(w, '198.18.0.1', 'prod/db')).toBe(true);
    expect(allowed(w, '198.18.0.2', 'prod/db')).toBe(false);
  });
});

describe('compiled form', () => {
  it('peer sets are merged ranges; ipBlock except is subtracted; named ports resolve per pod', () => {
    const w = world([
      policy('prod', 'p', {
        podSelector: { matchLabels: { app: 'web' } },
        ingress: [
          {
            from: [{ ipBlock: { cidr: '10.0.0.0/8', except: ['10.1.0.0/16'] } }, { podSelector: {} }],
            ports: [{ port: 'http' }, { protocol: 'UDP', port: 53 }],
          },
        ],
        egress: [{ to: [{ namespaceSelector: {} }], ports: [{ port: 'http' }] }],
      }),
    ]);
    const [web] = compileEndpoints(w, 'node-1').filter((c) => c.endpoint.pod === 'web');
    const rule = web!.ingress![0]!;
    expect(rule.peers!.map(formatRange)).toEqual(['10.0.0.0-10.0.255.255', '10.2.0.0-10.255.255.255']);
    expect(rule.ports).toEqual([
      { protocol: 'TCP', first: 8080, last: 8080 },
      { protocol: 'UDP', first: 53, last: 53 },
    ]);
    const eg = web!.egress![0]!;
    expect(eg.ports).toEqual([]);
    expect(eg.namedTargets.map((t) => `${formatRange([t.ip, t.ip])}:${t.port}/${t.protocol}`)).toEqual([
      '10.244.1.2:8080/TCP',
      '10.244.2.5:9090/TCP',
    ]);
    const db = compileEndpoints(w, 'node-1').find((c) => c.endpoint.pod === 'db')!;
    expect(db.ingress).toBeNull();
  });

  it('ranges: merge and subtract', () => {
    expect(
      mergeRanges([ipv4Range('10.0.0.0/25')!, ipv4Range('10.0.0.128/25')!, ipv4Range('10.0.0.5')!]).map(formatRange),
    ).toEqual(['10.0.0.0-10.0.0.255']);
    expect(subtractRanges(ipv4Range('10.0.0.0/24')!, [ipv4Range('10.0.0.0/25')!]).map(formatRange)).toEqual([
      '10.0.0.128-10.0.0.255',
    ]);
    expect(ipBlockRanges({ cidr: '10.0.0.0/24', except: ['10.0.0.0/24'] })).toEqual([]);
  });
});
