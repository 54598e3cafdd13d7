// NetworkPolicy (networking.k8s.io/v1) and Namespace (v1) as resources: strict parsing with their own
// apiVersion, Kubernetes' defaults (policyTypes, protocol TCP, the namespace's name label), and validation
// whose every problem names the field and the value.

import { describe, expect, it } from 'vitest';
import {
  applyDefaults,
  formatProblem,
  parseDocuments,
  toResource,
  validateResource,
  type AnyResource,
} from '../../../src/resources/index.js';

function load(yaml: string): AnyResource {
  return applyDefaults(toResource(parseDocuments(yaml, 'test.yaml')[0], 0));
}
function problems(yaml: string): string[] {
  return validateResource(load(yaml)).map(formatProblem);
}
const policy = (spec: string, ns = 'prod'): string => `apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: p1, namespace: ${ns}}
spec:
${spec}`;

describe('NetworkPolicy parsing', () => {
  it('reads the Kubernetes documentation example, with its own apiVersion', () => {
    const r = load(
      policy(`  podSelector: {matchLabels: {role: db}}
  policyTypes: [Ingress, Egress]
  ingress:
    - from:
        - ipBlock: {cidr: 172.17.0.0/16, except: [172.17.1.0/24]}
        - namespaceSelector: {matchLabels: {project: myproject}}
        - podSelector: {matchLabels: {role: frontend}}
      ports: [{protocol: TCP, port: 6379}]
  egress:
    - to: [{ipBlock: {cidr: 10.0.0.0/24}}]
      ports: [{protocol: TCP, port: 5978}]`),
    );
    expect(r.kind).toBe('NetworkPolicy');
    expect(r.apiVersion).toBe('networking.k8s.io/v1');
    expect(r.metadata.namespace).toBe('prod');
    expect(validateResource(r)).toEqual([]);
  });

  it('refuses projectcalico.org/v3 as its apiVersion, naming the right one', () => {
    const yaml = policy('  podSelector: {}').replace('networking.k8s.io/v1', 'projectcalico.org/v3');
    expect(() => load(yaml)).toThrow(
      'apiVersion: "projectcalico.org/v3" is not networking.k8s.io/v1 (the API version of NetworkPolicy)',
    );
  });

  it('refuses an unknown field with its path', () => {
    expect(() => load(policy('  podSelector: {matchLabel: {a: b}}'))).toThrow(
      /spec\.podSelector\.matchLabel: unknown field "matchLabel"/,
    );
  });

  it('reads ports as numbers or names, and refuses other types', () => {
    const r = load(policy('  podSelector: {}\n  ingress: [{ports: [{port: 80}, {port: http}]}]'));
    expect(r.kind === 'NetworkPolicy' && r.spec.ingress?.[0]?.ports).toEqual([
      { port: 80, protocol: 'TCP' },
      { port: 'http', protocol: 'TCP' },
    ]);
    expect(() => load(policy('  podSelector: {}\n  ingress: [{ports: [{port: true}]}]'))).toThrow(
      'spec.ingress[0].ports[0].port: true is not a port number or a port name',
    );
  });
});

describe('NetworkPolicy defaults', () => {
  it.each([
    ['no rules', '  podSelector: {}', ['Ingress']],
    ['ingress only', '  podSelector: {}\n  ingress: [{}]', ['Ingress']],
    ['egress rules', '  podSelector: {}\n  egress: [{}]', ['Ingress', 'Egress']],
    ['empty egress list', '  podSelector: {}\n  egress: []', ['Ingress']],
    ['explicit Egress only', '  podSelector: {}\n  policyTypes: [Egress]', ['Egress']],
  ])('policyTypes with %s', (_what, spec, types) => {
    const r = load(policy(spec));
    expect(r.kind === 'NetworkPolicy' && r.spec.policyTypes).toEqual(types);
  });

  it('namespace defaults to default', () => {
    const r = load(
      'apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: p}\nspec: {podSelector: {}}',
    );
    expect(r.metadata.namespace).toBe('default');
  });
});

describe('NetworkPolicy validation', () => {
  it.each([
    [
      'no podSelector',
      '  ingress: [{}]',
      'spec.podSelector is required (the pods the policy applies to; podSelector: {} selects every pod in the namespace)',
    ],
    [
      'In without values',
      '  podSelector: {matchExpressions: [{key: app, operator: In}]}',
      'spec.podSelector.matchExpressions[0].values must be non-empty when the operator is In (like values: [frontend])',
    ],
    [
      'Exists with values',
      '  podSelector: {matchExpressions: [{key: app, operator: Exists, values: [x]}]}',
      'spec.podSelector.matchExpressions[0].values must be empty when the operator is Exists (found ["x"])',
    ],
    [
      'bad label key',
      '  podSelector: {matchLabels: {"-bad": x}}',
      'spec.podSelector.matchLabels: "-bad" is not a label key (an optional DNS prefix and "/", then 1..63 letters, digits, "-", "_" or ".", starting and ending with a letter or digit)',
    ],
    [
      'empty peer',
      '  podSelector: {}\n  ingress: [{from: [{}]}]',
      'spec.ingress[0].from[0] is empty: set podSelector, namespaceSelector (both = AND) or ipBlock',
    ],
    [
      'ipBlock with selector',
      '  podSelector: {}\n  ingress: [{from: [{ipBlock: {cidr: 10.0.0.0/8}, podSelector: {}}]}]',
      'spec.ingress[0].from[0].ipBlock cannot be combined with podSelector or namespaceSelector in one entry; write them as two entries (entries are ORed)',
    ],
    [
      'bad cidr',
      '  podSelector: {}\n  egress: [{to: [{ipBlock: {cidr: 10.0.0.0/33}}]}]',
      'spec.egress[0].to[0].ipBlock.cidr: "10.0.0.0/33" is not a CIDR (like 10.244.0.0/16)',
    ],
    [
      'except outside',
      '  podSelector: {}\n  egress: [{to: [{ipBlock: {cidr: 10.0.0.0/8, except: [11.0.0.0/16]}}]}]',
      'spec.egress[0].to[0].ipBlock.except[0]: "11.0.0.0/16" is not strictly inside ipBlock.cidr 10.0.0.0/8 (an except must be a smaller range within it)',
    ],
    [
      'except equal',
      '  podSelector: {}\n  egress: [{to: [{ipBlock: {cidr: 10.0.0.0/8, except: [10.0.0.0/8]}}]}]',
      'spec.egress[0].to[0].ipBlock.except[0]: "10.0.0.0/8" is not strictly inside ipBlock.cidr 10.0.0.0/8 (an except must be a smaller range within it)',
    ],
    [
      'port 0',
      '  podSelector: {}\n  ingress: [{ports: [{port: 0}]}]',
      'spec.ingress[0].ports[0].port: 0 is not a port in 1..65535 (or a container port name like "http")',
    ],
    [
      'bad port name',
      '  podSelector: {}\n  ingress: [{ports: [{port: HTTP}]}]',
      'spec.ingress[0].ports[0].port: "HTTP" is not a port name (1..15 lowercase letters, digits and "-", with at least one letter) or a number',
    ],
    [
      'endPort with a name',
      '  podSelector: {}\n  ingress: [{ports: [{port: http, endPort: 90}]}]',
      'spec.ingress[0].ports[0].endPort needs a numeric spec.ingress[0].ports[0].port (found "http"): a range is port..endPort',
    ],
    [
      'endPort below port',
      '  podSelector: {}\n  ingress: [{ports: [{port: 90, endPort: 80}]}]',
      'spec.ingress[0].ports[0].endPort: 80 is not a port in 90..65535 (endPort must be at least port 90)',
    ],
    ['bad protocol', '  podSelector: {}\n  ingress: [{ports: [{protocol: ICMP}]}]', null],
  ])('%s', (_what, spec, message) => {
    if (message === null) {
      expect(() => load(policy(spec))).toThrow(
        'spec.ingress[0].ports[0].protocol: "ICMP" is not one of TCP, UDP, SCTP',
      );
      return;
    }
    expect(problems(policy(spec))).toEqual([message]);
  });

  it('accepts a port range and every operator', () => {
    expect(
      problems(
        policy(`  podSelector: {matchExpressions: [{key: a, operator: In, values: [x]}, {key: b, operator: NotIn, values: [y]}, {key: c, operator: Exists}, {key: d, operator: DoesNotExist}]}
  egress: [{ports: [{protocol: UDP, port: 32000, endPort: 32768}]}]`),
      ),
    ).toEqual([]);
  });
});

describe('Namespace', () => {
  it('is v1, cluster-scoped, and labelled with its own name as Kubernetes does', () => {
    const r = load(
      'apiVersion: v1\nkind: Namespace\nmetadata: {name: prod, labels: {team: a}}\nstatus: {phase: Active}',
    );
    expect(r.apiVersion).toBe('v1');
    expect(r.metadata.labels).toEqual({ team: 'a', 'kubernetes.io/metadata.name': 'prod' });
    expect(validateResource(r)).toEqual([]);
  });

  it('refuses a name that is not a DNS label', () => {
    expect(problems('apiVersion: v1\nkind: Namespace\nmetadata: {name: Prod.x}')).toContain(
      'metadata.name: "Prod.x" is not a namespace name (lowercase letters, digits and "-", at most 63 characters)',
    );
  });
});
