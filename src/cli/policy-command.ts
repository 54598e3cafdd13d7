// `tortie policy explain --from <ns>/<pod>|<ip> --to <ns>/<pod> --port 8080/TCP [-o text|json]`: would a
// new connection be allowed by Kubernetes NetworkPolicy, and which policy and rule decide it — on the
// source's egress side and the destination's ingress side (a connection needs both). It reads the
// datastore (NetworkPolicies, Namespaces, WorkloadEndpoints, Nodes) and asks src/policy/semantics.ts;
// arguments and output are pure functions here. Exit status: 0 allowed, 3 denied, 1 failure, 2 usage.

import { parseArgs } from 'node:util';
import { UsageError } from './usage-error.js';
import type { Datastore } from '../datastore/types.js';
import type { PolicyProtocol } from '../resources/types.js';
import type { Decision, SideDecision } from '../policy/semantics.js';

export const POLICY_USAGE = `usage: tortie policy explain --from <ns>/<pod>|<ip> --to <ns>/<pod> --port <port>[/TCP|UDP|SCTP] [-o text|json] [-c FILE]

  Says whether Kubernetes NetworkPolicy allows a new connection, and names the policy and rule that decide
  it on both sides: the source pod's egress and the destination pod's ingress.

  --from     the source: a pod (namespace/name) or an address (a pod's address stands for that pod)
  --to       the destination pod (namespace/name)
  --port     the destination port and protocol (default TCP), like 8080/TCP or 53/UDP
  -o         text (default) or json
  -c FILE    datastore configuration (as for tortie get)

  Exit status: 0 allowed, 3 denied, 1 failed, 2 bad command line.
`;

export interface ExplainArgs {
  from: { namespace: string; pod: string } | { ip: string };
  to: { namespace: string; pod: string };
  port: number;
  protocol: PolicyProtocol;
  output: 'text' | 'json';
  config?: string;
}

const PROTOCOLS: readonly PolicyProtocol[] = ['TCP', 'UDP', 'SCTP'];

function parsePod(flag: string, text: string): { namespace: string; pod: string } {
  const m = /^([a-z0-9]([-a-z0-9]*[a-z0-9])?)\/([a-z0-9]([-a-z0-9.]*[a-z0-9])?)$/.exec(text);
  if (!m)
    throw new UsageError(`policy explain: ${flag} ${JSON.stringify(text)} is not <namespace>/<pod> (like prod/web-0)`);
  return { namespace: m[1]!, pod: m[3]! };
}

/** `tortie policy ...` arguments (after "policy"). Throws UsageError naming the bad flag and value. */
export function parsePolicyArgs(argv: string[]): ExplainArgs {
  const [sub, ...rest] = argv;
  if (sub !== 'explain')
    throw new UsageError(
      `policy: unknown subcommand ${JSON.stringify(sub ?? '')}; use "policy explain"\n\n${POLICY_USAGE}`,
    );
  let values;
  try {
    ({ values } = parseArgs({
      args: rest,
      strict: true,
      allowPositionals: false,
      options: {
        from: { type: 'string' },
        to: { type: 'string' },
        port: { type: 'string' },
        output: { type: 'string', short: 'o' },
        config: { type: 'string', short: 'c' },
      },
    }));
  } catch (error) {
    throw new UsageError(
      `policy explain: ${error instanceof Error ? error.message : String(error)}\n\n${POLICY_USAGE}`,
    );
  }
  for (const flag of ['from', 'to', 'port'] as const) {
    if (values[flag] === undefined) throw new UsageError(`policy explain: --${flag} is required\n\n${POLICY_USAGE}`);
  }
  const fromText = values.from!;
  const from = /^\d{1,3}(\.\d{1,3}){3}$/.test(fromText) ? { ip: fromText } : parsePod('--from', fromText);
  const to = parsePod('--to', values.to!);
  const pm = /^(\d{1,5})(?:\/([A-Za-z]+))?$/.exec(values.port!);
  const port = pm ? Number(pm[1]) : NaN;
  const protocol = (pm?.[2] ?? 'TCP').toUpperCase() as PolicyProtocol;
  if (!pm || port < 1 || port > 65535 || !PROTOCOLS.includes(protocol)) {
    throw new UsageError(
      `policy explain: --port ${JSON.stringify(values.port)} is not <port>[/protocol] with a port in 1..65535 and protocol TCP, UDP or SCTP (like 8080/TCP)`,
    );
  }
  const output = values.output ?? 'text';
  if (output !== 'text' && output !== 'json')
    throw new UsageError(`policy explain: -o ${JSON.stringify(output)} is not an output format; use text or json`);
  return { from, to, port, protocol, output, ...(values.config !== undefined ? { config: values.config } : {}) };
}

function side(label: string, d: SideDecision): string {
  const verdict = d.allowed ? 'allowed' : 'denied';
  const by = d.policy !== undefined ? `  policy ${d.policy}, ${d.direction} rule ${d.rule}` : '';
  const isolated = d.isolatedBy.length > 0 ? `\n    isolated by: ${d.isolatedBy.join(', ')}` : '';
  return `  ${label}: ${verdict}${by}\n    ${d.reason}${isolated}\n`;
}

/** The text answer: the verdict, then each side with what decides it. */
export function formatExplain(args: ExplainArgs, decision: Decision): string {
  const from = 'ip' in args.from ? args.from.ip : `${args.from.namespace}/${args.from.pod}`;
  const head = `${from} -> ${args.to.namespace}/${args.to.pod} ${args.port}/${args.protocol}: ${decision.allowed ? 'ALLOWED' : 'DENIED'}\n`;
  return head + side('egress (source)', decision.egress) + side('ingress (destination)', decision.ingress);
}

export interface PolicyIo {
  out(text: string): void;
  openDatastore(): Promise<Datastore>;
}

export async function runPolicyExplain(args: ExplainArgs, io: PolicyIo): Promise<number> {
  const { buildWorld, decide } = await import('../policy/semantics.js');
  const ds = await io.openDatastore();
  try {
    const [policies, namespaces, workloadEndpoints, nodes] = await Promise.all([
      ds.list('NetworkPolicy'),
      ds.list('Namespace'),
      ds.list('WorkloadEndpoint'),
      ds.list('Node'),
    ]);
    const world = buildWorld({
      policies: policies.items,
      namespaces: namespaces.items,
      workloadEndpoints: workloadEndpoints.items,
      nodes: nodes.items,
    });
    const find = (p: { namespace: string; pod: string }, flag: string) => {
      const ep = world.endpoints.find((e) => e.namespace === p.namespace && e.pod === p.pod);
      if (!ep)
        throw new Error(
          `${flag} ${p.namespace}/${p.pod}: no such pod (no WorkloadEndpoint in namespace ${JSON.stringify(p.namespace)} for pod ${JSON.stringify(p.pod)})`,
        );
      return ep;
    };
    const to = find(args.to, '--to');
    const from = 'ip' in args.from ? { ip: args.from.ip } : { endpoint: find(args.from, '--from') };
    const decision = decide(world, from, to, args.port, args.protocol);
    io.out(args.output === 'json' ? `${JSON.stringify(decision, null, 2)}\n` : formatExplain(args, decision));
    return decision.allowed ? 0 : 3;
  } finally {
    await ds.close();
  }
}
