// NetworkPolicy enforced for real, end to end, as root: a 2-node lab (real etcd, `tortie node run` in each
// node namespace with the kernel dataplane), four extra workloads made by the CNI plugin in Kubernetes
// namespaces prod, dev and mon (their labels set on the WorkloadEndpoints, as the kubernetes datastore
// derives them from Pods), Namespaces and NetworkPolicies written to etcd as `tortie apply` writes them,
// and real TCP/UDP connections between workload namespaces: every case once allowed (connects / gets the
// UDP echo) and once denied (times out: dropped). Each check is retried, bounded, until the agents have
// applied the policies; a denied check also needs the allowed one of the same step to pass first.

import { spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { openEtcd } from '../../src/datastore/etcd.js';
import type { Datastore } from '../../src/datastore/types.js';
import { labDown, labUp, nodeStatus, runCni, type LabState } from '../../src/lab/lab.js';
import { formatNodeStatus } from '../../src/agent/status-format.js';
import { LAB_DEFAULTS, type LabWorkload } from '../../src/lab/plan.js';
import { applyDefaults, type NetworkPolicySpec, type Resource } from '../../src/resources/index.js';
import { netnsUnavailableReason, runCommand } from '../harness/netns.js';
import { waitFor } from '../harness/wait.js';

const CLI = resolve('dist/src/cli/main.js');
const unavailable =
  netnsUnavailableReason() ??
  (existsSync(CLI) ? null : `${CLI} is not built (npm run build)`) ??
  (existsSync('/usr/bin/etcd') ? null : 'etcd-server is not installed') ??
  (existsSync('/usr/sbin/nft') ? null : 'nftables is not installed');

const root = mkdtempSync(join(tmpdir(), 'tortie-policy-lab-'));
chmodSync(root, 0o755);
const io = { progress: () => undefined };
const name = `np${(process.pid % 1296).toString(36)}`.slice(0, 5);
const extraNs: string[] = [];
const children: ChildProcess[] = [];
let state: LabState | null = null;
let ds: Datastore | null = null;
const added: LabWorkload[] = [];

afterAll(async () => {
  for (const child of children)
    if (child.exitCode === null && child.pid !== undefined) process.kill(child.pid, 'SIGKILL');
  if (state !== null)
    for (const w of added) {
      try {
        runCni(state, w, 'DEL');
      } catch {
        // the lab's etcd may already be gone
      }
    }
  await ds?.close();
  for (const ns of extraNs) await runCommand('ip', ['netns', 'del', ns]);
  await labDown(name, io);
  delete process.env.TORTIE_LAB_ROOT;
  rmSync(root, { recursive: true, force: true });
}, 60_000);

const LISTENER = `
import socket, threading, sys
def tcp(port):
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(('0.0.0.0', port)); s.listen(64)
    while True:
        c, _ = s.accept(); c.close()
def udp(port):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(('0.0.0.0', port))
    while True:
        d, a = s.recvfrom(100); s.sendto(d, a)
for p in (8080, 9090): threading.Thread(target=tcp, args=(p,), daemon=True).start()
threading.Thread(target=udp, args=(53,), daemon=True).start()
print('ready', flush=True)
threading.Event().wait(600)
`;

const CLIENT = `
import socket, sys
host, port, proto = sys.argv[1], int(sys.argv[2]), sys.argv[3]
try:
    if proto == 'TCP':
        socket.create_connection((host, port), timeout=1.0).close()
    else:
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(1.0); s.sendto(b'x', (host, port)); s.recvfrom(10)
    print('ok')
except socket.timeout:
    print('timeout')
except ConnectionRefusedError:
    print('refused')
`;

interface Pod {
  namespace: string;
  pod: string;
  node: number;
  labels: Record<string, string>;
}
const PODS: Pod[] = [
  { namespace: 'prod', pod: 'web', node: 0, labels: { app: 'web' } },
  { namespace: 'prod', pod: 'db', node: 1, labels: { app: 'db' } },
  { namespace: 'dev', pod: 'client', node: 0, labels: { app: 'client' } },
  { namespace: 'mon', pod: 'prom', node: 1, labels: { app: 'prom' } },
];
const ips: Record<string, string> = {};
const netnsOf: Record<string, string> = {};

async function connect(from: string, to: string, port: number, proto: 'TCP' | 'UDP'): Promise<string> {
  const r = await runCommand(
    'ip',
    ['netns', 'exec', netnsOf[from]!, 'python3', '-c', CLIENT, ips[to]!, String(port), proto],
    undefined,
    5000,
  );
  return r.stdout.trim();
}

/** Retries (the harness's waitFor, at most 2 minutes) until the connection gives `want`; the timeout says what it gave last. */
async function eventually(
  from: string,
  to: string,
  port: number,
  proto: 'TCP' | 'UDP',
  want: 'ok' | 'timeout',
): Promise<string> {
  return waitFor(
    async () => {
      const got = await connect(from, to, port, proto);
      if (got !== want) throw new Error(`got ${got}`);
      return got;
    },
    { what: `${from} → ${to}:${port}/${proto}: ${want}`, timeoutMs: 120_000, intervalMs: 250 },
  );
}

async function setPolicies(policies: Array<{ ns: string; name: string; spec: NetworkPolicySpec }>): Promise<void> {
  for (const old of (await ds!.list('NetworkPolicy')).items)
    await ds!.delete('NetworkPolicy', old.metadata.name, { namespace: old.metadata.namespace! });
  for (const p of policies) {
    await ds!.create(
      applyDefaults({
        apiVersion: 'networking.k8s.io/v1',
        kind: 'NetworkPolicy',
        metadata: { name: p.name, namespace: p.ns },
        spec: p.spec,
      } as Resource<'NetworkPolicy'>),
    );
  }
}

async function expectBoth(
  allowed: [string, string, number, 'TCP' | 'UDP'],
  denied: [string, string, number, 'TCP' | 'UDP'],
): Promise<void> {
  expect(await eventually(...allowed, 'ok'), `${allowed.join(' ')} should connect`).toBe('ok');
  expect(await eventually(...denied, 'timeout'), `${denied.join(' ')} should time out`).toBe('timeout');
  // Once converged, the allowed one still connects (the deny did not come from a half-written filter).
  expect(await connect(...allowed)).toBe('ok');
}

const DENY_ALL = { ns: 'prod', name: 'deny-all', spec: { podSelector: {} } };

describe.skipIf(unavailable !== null)('NetworkPolicy in the lab (real TCP/UDP between workload namespaces)', () => {
  it('enforces every case both ways', async () => {
    process.env.TORTIE_LAB_ROOT = root;
    state = await labUp({ ...LAB_DEFAULTS, name, nodes: 2 }, io, [process.execPath, CLI]);
    ds = await openEtcd({ endpoints: [`http://127.0.0.1:${state.etcdPort}`] });
    for (const [ns, labels] of [
      ['prod', { env: 'prod' }],
      ['dev', { env: 'dev' }],
      ['mon', { team: 'ops' }],
    ] as const) {
      await ds.create(
        applyDefaults({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: ns, labels: { ...labels } }, spec: {} }),
      );
    }
    for (const [i, p] of PODS.entries()) {
      const netns = `${name}-x${i}`;
      await runCommand('ip', ['netns', 'add', netns]);
      extraNs.push(netns);
      const w: LabWorkload = {
        node: state.plan.nodes[p.node]!.name,
        ns: netns,
        namespace: p.namespace,
        pod: p.pod,
        containerId: `${name}-x${i}`,
      };
      const answer = runCni(state, w, 'ADD');
      added.push(w);
      ips[p.pod] = String((answer.ips as Array<{ address: string }>)[0]!.address).split('/')[0]!;
      netnsOf[p.pod] = netns;
      const wep = (await ds.list('WorkloadEndpoint', { namespace: p.namespace })).items.find(
        (e) => e.spec.pod === p.pod,
      )!;
      await ds.update({
        ...wep,
        metadata: { ...wep.metadata, labels: { ...(wep.metadata.labels ?? {}), ...p.labels } },
      });
    }
    const listener = spawn('ip', ['netns', 'exec', netnsOf.db!, 'python3', '-c', LISTENER], {
      stdio: ['ignore', 'pipe', 'ignore'],
    });
    children.push(listener);
    await new Promise<void>((ok, fail) => {
      const t = setTimeout(() => fail(new Error('listener did not start')), 10_000);
      listener.stdout!.once('data', () => (clearTimeout(t), ok()));
    });

    // No policy: everything connects (pods on both nodes, both protocols).
    expect(await eventually('client', 'db', 8080, 'TCP', 'ok')).toBe('ok');
    expect(await eventually('web', 'db', 53, 'UDP', 'ok')).toBe('ok');

    // default-deny: nothing reaches db; web's egress is untouched (client in dev is not isolated).
    await setPolicies([DENY_ALL]);
    expect(await eventually('client', 'db', 8080, 'TCP', 'timeout')).toBe('timeout');
    await setPolicies([]);
    expect(await eventually('client', 'db', 8080, 'TCP', 'ok')).toBe('ok');

    // allow-same-namespace.
    await setPolicies([
      DENY_ALL,
      { ns: 'prod', name: 'same-ns', spec: { podSelector: {}, ingress: [{ from: [{ podSelector: {} }] }] } },
    ]);
    await expectBoth(['web', 'db', 8080, 'TCP'], ['client', 'db', 8080, 'TCP']);

    // namespace-selector.
    await setPolicies([
      {
        ns: 'prod',
        name: 'ops',
        spec: {
          podSelector: { matchLabels: { app: 'db' } },
          ingress: [{ from: [{ namespaceSelector: { matchLabels: { team: 'ops' } } }] }],
        },
      },
    ]);
    await expectBoth(['prom', 'db', 8080, 'TCP'], ['client', 'db', 8080, 'TCP']);

    // ipBlock with except: the pool, except the client's address.
    await setPolicies([
      {
        ns: 'prod',
        name: 'ipb',
        spec: {
          podSelector: { matchLabels: { app: 'db' } },
          ingress: [{ from: [{ ipBlock: { cidr: '10.244.0.0/16', except: [`${ips.client}/32`] } }] }],
        },
      },
    ]);
    await expectBoth(['prom', 'db', 8080, 'TCP'], ['client', 'db', 8080, 'TCP']);

    // single port, then multiple ports and protocols.
    await setPolicies([
      {
        ns: 'prod',
        name: 'one',
        spec: { podSelector: { matchLabels: { app: 'db' } }, ingress: [{ ports: [{ protocol: 'TCP', port: 8080 }] }] },
      },
    ]);
    await expectBoth(['web', 'db', 8080, 'TCP'], ['web', 'db', 9090, 'TCP']);
    await setPolicies([
      {
        ns: 'prod',
        name: 'multi',
        spec: {
          podSelector: { matchLabels: { app: 'db' } },
          ingress: [{ ports: [{ port: 8080 }, { protocol: 'UDP', port: 53 }] }],
        },
      },
    ]);
    await expectBoth(['web', 'db', 53, 'UDP'], ['web', 'db', 9090, 'TCP']);
    expect(await connect('web', 'db', 8080, 'TCP')).toBe('ok');

    // egress to port 53/UDP only (isolates the client's egress).
    await setPolicies([
      {
        ns: 'dev',
        name: 'dns-only',
        spec: {
          podSelector: { matchLabels: { app: 'client' } },
          policyTypes: ['Egress'],
          egress: [{ ports: [{ protocol: 'UDP', port: 53 }] }],
        },
      },
    ]);
    await expectBoth(['client', 'db', 53, 'UDP'], ['client', 'db', 8080, 'TCP']);

    // podSelector AND namespaceSelector in one entry.
    await setPolicies([
      {
        ns: 'prod',
        name: 'and',
        spec: {
          podSelector: { matchLabels: { app: 'db' } },
          ingress: [
            {
              from: [
                { namespaceSelector: { matchLabels: { env: 'dev' } }, podSelector: { matchLabels: { app: 'client' } } },
              ],
            },
          ],
        },
      },
    ]);
    await expectBoth(['client', 'db', 8080, 'TCP'], ['web', 'db', 8080, 'TCP']);
    expect(await eventually('prom', 'db', 8080, 'TCP', 'timeout')).toBe('timeout');

    // A label change alone moves a pod out: the client loses app=client and is denied.
    const client = (await ds.list('WorkloadEndpoint', { namespace: 'dev' })).items.find(
      (e) => e.spec.pod === 'client',
    )!;
    await ds.update({
      ...client,
      metadata: { ...client.metadata, labels: { ...client.metadata.labels, app: 'other' } },
    });
    expect(await eventually('client', 'db', 8080, 'TCP', 'timeout')).toBe('timeout');

    // `tortie node status` on db's node says what it enforces: one policy, db isolated for ingress only.
    const dbNode = state!.plan.nodes[1]!.name;
    const line = await waitFor(
      async () => {
        const status = await nodeStatus(state!, dbNode);
        const said = status
          ? (formatNodeStatus(status)
              .split('\n')
              .find((l) => l.startsWith('Network policy:')) ?? '')
          : '';
        if (!said.includes('in nftables')) throw new Error(`node status says: ${JSON.stringify(said)}`);
        return said;
      },
      { what: `${dbNode}'s node status: policy in nftables`, timeoutMs: 10_000, intervalMs: 250 },
    );
    expect(line).toMatch(
      /^Network policy: 1 NetworkPolicy; \d+ local workloads, 1 isolated for ingress, 0 for egress; in nftables \(table inet tortie-filter\)$/,
    );
  }, 600_000);
});
