// `tortie policy explain`: its arguments (every refusal names the flag and value) and its answer on a
// memory datastore written the way `tortie apply` writes it.

import { describe, expect, it } from 'vitest';
import { formatExplain, parsePolicyArgs, runPolicyExplain } from '../../../src/cli/policy-command.js';
import { MemoryDatastore } from '../../../src/datastore/memory.js';
import { applyDefaults, parseDocuments, toResource, type AnyResource } from '../../../src/resources/index.js';

const YAML = `
apiVersion: v1
kind: Namespace
metadata: {name: prod, labels: {env: prod}}
---
apiVersion: v1
kind: Namespace
metadata: {name: dev, labels: {env: dev}}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: db-from-web, namespace: prod}
spec:
  podSelector: {matchLabels: {app: db}}
  ingress:
    - from: [{podSelector: {matchLabels: {app: web}}}]
      ports: [{port: 5432}]
---
apiVersion: projectcalico.org/v3
kind: WorkloadEndpoint
metadata: {name: node--1-k8s-web-eth0, namespace: prod, labels: {app: web}}
spec: {node: node-1, pod: web, interfaceName: cali1111111111a, ipNetworks: [10.244.1.2/32]}
---
apiVersion: projectcalico.org/v3
kind: WorkloadEndpoint
metadata: {name: node--1-k8s-db-eth0, namespace: prod, labels: {app: db}}
spec: {node: node-1, pod: db, interfaceName: cali1111111111b, ipNetworks: [10.244.1.3/32]}
---
apiVersion: projectcalico.org/v3
kind: WorkloadEndpoint
metadata: {name: node--1-k8s-web-eth0, namespace: dev, labels: {app: web}}
spec: {node: node-1, pod: web, interfaceName: cali1111111111c, ipNetworks: [10.244.1.4/32]}
`;

async function store(): Promise<MemoryDatastore> {
  const ds = new MemoryDatastore();
  for (const [i, doc] of parseDocuments(YAML, 'test.yaml').entries())
    await ds.create(applyDefaults(toResource(doc, i)) as AnyResource);
  return ds;
}

async function explain(argv: string[]): Promise<{ code: number; text: string }> {
  const ds = await store();
  let text = '';
  const code = await runPolicyExplain(parsePolicyArgs(['explain', ...argv]), {
    out: (t) => (text += t),
    openDatastore: async () => ds,
  });
  return { code, text };
}

describe('policy explain arguments', () => {
  it('reads pods, addresses, ports with and without protocol', () => {
    expect(parsePolicyArgs(['explain', '--from', 'prod/web', '--to', 'prod/db', '--port', '5432'])).toEqual({
      from: { namespace: 'prod', pod: 'web' },
      to: { namespace: 'prod', pod: 'db' },
      port: 5432,
      protocol: 'TCP',
      output: 'text',
    });
    expect(
      parsePolicyArgs(['explain', '--from', '10.0.0.1', '--to', 'prod/db', '--port', '53/udp', '-o', 'json']).from,
    ).toEqual({ ip: '10.0.0.1' });
  });
  it.each([
    [['explain', '--to', 'prod/db', '--port', '80'], 'policy explain: --from is required'],
    [
      ['explain', '--from', 'web', '--to', 'prod/db', '--port', '80'],
      'policy explain: --from "web" is not <namespace>/<pod> (like prod/web-0)',
    ],
    [
      ['explain', '--from', 'prod/web', '--to', 'prod/db', '--port', '80/ICMP'],
      'policy explain: --port "80/ICMP" is not <port>[/protocol] with a port in 1..65535 and protocol TCP, UDP or SCTP (like 8080/TCP)',
    ],
    [['explain', '--from', 'prod/web', '--to', 'prod/db', '--port', '0'], 'policy explain: --port "0" is not'],
    [['check'], 'policy: unknown subcommand "check"; use "policy explain"'],
  ])('%j refused', (argv, message) => {
    expect(() => parsePolicyArgs(argv)).toThrow(message);
  });
});

describe('policy explain', () => {
  it('allowed: names the ingress policy and rule, egress not isolated; exit 0', async () => {
    const { code, text } = await explain(['--from', 'prod/web', '--to', 'prod/db', '--port', '5432/TCP']);
    expect(code).toBe(0);
    expect(text).toBe(
      'prod/web -> prod/db 5432/TCP: ALLOWED\n' +
        '  egress (source): allowed\n    prod/web is not isolated for egress (no policy with Egress in policyTypes selects it)\n' +
        '  ingress (destination): allowed  policy prod/db-from-web, ingress rule 0\n    allowed by prod/db-from-web ingress rule 0\n    isolated by: prod/db-from-web\n',
    );
  });
  it('denied from another namespace and on another port; exit 3', async () => {
    const other = await explain(['--from', 'dev/web', '--to', 'prod/db', '--port', '5432']);
    expect(other.code).toBe(3);
    expect(other.text).toContain('DENIED');
    expect(other.text).toContain(
      'prod/db is isolated for ingress by prod/db-from-web and no ingress rule allows dev/web on port 5432/TCP',
    );
    expect((await explain(['--from', 'prod/web', '--to', 'prod/db', '--port', '80'])).code).toBe(3);
  });
  it('an address that is a pod is that pod; json output', async () => {
    const { code, text } = await explain(['--from', '10.244.1.2', '--to', 'prod/db', '--port', '5432', '-o', 'json']);
    expect(code).toBe(0);
    expect(JSON.parse(text)).toMatchObject({ allowed: true, ingress: { policy: 'prod/db-from-web', rule: 0 } });
  });
  it('an unknown pod is named', async () => {
    await expect(explain(['--from', 'prod/web', '--to', 'prod/nope', '--port', '80'])).rejects.toThrow(
      '--to prod/nope: no such pod (no WorkloadEndpoint in namespace "prod" for pod "nope")',
    );
  });
  it('formatExplain shows the deny side', () => {
    const text = formatExplain(parsePolicyArgs(['explain', '--from', '1.2.3.4', '--to', 'a/b', '--port', '1']), {
      allowed: false,
      egress: { direction: 'egress', allowed: true, isolatedBy: [], reason: 'r1' },
      ingress: { direction: 'ingress', allowed: false, isolatedBy: ['a/p'], reason: 'r2' },
    });
    expect(text).toBe(
      '1.2.3.4 -> a/b 1/TCP: DENIED\n  egress (source): allowed\n    r1\n  ingress (destination): denied\n    r2\n    isolated by: a/p\n',
    );
  });
});
