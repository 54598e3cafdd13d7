// src/cni/ — the tortie CNI plugin: a container runtime (containerd, CRI-O, via the kubelet) runs
// `/opt/cni/bin/tortie` for every pod; it gives the pod a veth, an address from this node's IPAM block and
// a WorkloadEndpoint, so felix routes to it and BGP already advertises its block. Calico's `calico`
// plugin does the same job; names, annotations and the pod-side layout are Calico's.
//
// Files (each opens with what it owns):
//   spec.ts       the CNI spec: versions (0.3.0 … 1.1.0), commands, error codes, parsing CNI_* — pure
//   netconf.ts    the network configuration (stdin) → NetConf: the FIELDS table, refused Calico keys — pure
//   result.ts     result / error / version JSON per spec version, prevResult, chaining — pure
//   names.ts      IPAM handle, WorkloadEndpoint name, cali* host veth name, pod MAC — pure
//   dataplane.ts  the veth pair, addresses, routes and sysctls with iproute2 (`ip -batch`, `nsenter`)
//   endpoint.ts   recording the workload: a WorkloadEndpoint (etcd) or Pod annotations (Kubernetes)
//   datastore.ts  the datastore named by the configuration (the agent's rules and backends)
//   plugin.ts     ADD, DEL, CHECK, STATUS, GC, VERSION on injected I/O
//   main.ts       the process: stdin/env → stdout/exit code (src/cli/main.ts hands over to it)
//   install.ts    `tortie cni install` (binary wrapper + conflist, like Calico's install-cni)
//   index.ts      this header, and runCniPlugin(): how the lab (or anything) calls the built plugin
//
// How it is called — exactly what a runtime does (CNI spec): execute the plugin with no arguments,
//   CNI_COMMAND=ADD|DEL|CHECK|VERSION|STATUS|GC
//   CNI_CONTAINERID=<sandbox id>  CNI_NETNS=/var/run/netns/NAME or /proc/PID/ns/net  CNI_IFNAME=eth0
//   CNI_ARGS=K8S_POD_NAMESPACE=<ns>;K8S_POD_NAME=<pod>   (optional: without them the workload is a bare
//            container, orchestrator "cni", host veth cali + 11 characters of the container id)
//   CNI_PATH=/opt/cni/bin                                  (not used: tortie delegates nothing)
// and the network configuration on stdin, e.g. (what `tortie cni install` writes, one plugin entry):
//   {"cniVersion":"1.0.0","name":"k8s-pod-network","type":"tortie","datastore_type":"etcdv3",
//    "etcd_endpoints":"http://127.0.0.1:2379","ipam":{"type":"tortie-ipam"}}
// Fields: datastore_type (etcdv3 | kubernetes), etcd_endpoints, etcd_ca_cert_file, etcd_cert_file,
// etcd_key_file, kubeconfig (or Calico's "kubernetes": {"kubeconfig"}), nodename, nodename_file, mtu,
// ipam.type (tortie-ipam | calico-ipam), ipam.ipv4_pools (names or CIDRs, tried in order), log_level,
// log_file_path; prevResult when chained; Calico's `policy` is accepted and ignored. Anything else is
// refused with code 2 naming the field.
// ADD prints the result (cniVersion of the configuration): interfaces [cali… (host), eth0 (sandbox)],
// ips [{address: "10.244.1.5/32", interface: 1}], routes [0.0.0.0/0 via 169.254.1.1]; failures print
// {"code", "msg"} and exit 1 — 1 version, 2 unsupported field, 3 no such netns, 4 bad CNI_* variable,
// 6 not JSON, 7 bad field, 11 datastore unreachable (retry), 50 STATUS not ready, 100 no address,
// 101 ip/sysctl failed, 102 datastore refused, 103 CHECK found a difference.
//
// Node name: `nodename`, else NODENAME, else the file `nodename_file` (default /var/run/tortie/nodename,
// written by the agent at start), else the hostname. MTU: `mtu`, else the MTU of the host's default-route
// interface (1500 without one) minus 50 if an enabled IPPool uses VXLAN, else minus 20 if one uses
// IP-in-IP (Calico felix's auto-MTU rule). TORTIE_CNI_HOST_NETNS=<path> runs the host side inside that
// namespace instead of the plugin's own (the lab's nodes are namespaces; etcd stays reachable).
//
// Start-up: the runtime starts a new Node process per call, so start-up is part of every pod's latency.
// src/cli/main.ts hands over before loading anything else, and the plugin imports the datastore backend,
// IPAM and the Kubernetes client only in the commands that need them. etcd is reached over its HTTP/JSON
// gateway (src/datastore/etcd-gateway.ts; gRPC's client alone took ~200 ms to load), falling back to gRPC
// with a warning when the gateway cannot serve; TORTIE_CNI_ETCD_TRANSPORT=grpc forces gRPC.
// test/bench/cni.ts measures it (test/bench/README.md, "cni").

import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { startCommand, type CommandResult } from '../../felix/command.js';

export type { CniResult } from './result.js';

/** One plugin invocation, as a runtime makes it. */
export interface CniInvocation {
  command: 'ADD' | 'DEL' | 'CHECK' | 'VERSION' | 'STATUS' | 'GC';
  containerId?: string;
  /** CNI_NETNS: a path. */
  netns?: string;
  /** CNI_IFNAME (default eth0). */
  ifname?: string;
  pod?: { namespace: string; name: string };
  /** The network configuration (one plugin entry, with cniVersion and name). */
  config: Record<string, unknown>;
  /** stdin as given, instead of `config` as JSON (to test what the plugin does with malformed input). */
  rawStdin?: string;
  /** TORTIE_CNI_HOST_NETNS: the node's network namespace (a path), for the lab. */
  hostNetns?: string;
  /** More environment (NODENAME, TORTIE_DATASTORE_TIMEOUT_MS...). PATH is passed through. */
  env?: Record<string, string>;
  /** The executable and leading arguments; default: this Node on this package's dist/src/cli/main.js. */
  executable?: string[];
  /** Kill the plugin after this long (default 30 s). */
  timeoutMs?: number;
}

export interface CniOutcome {
  exitCode: number | null;
  stdout: string;
  stderr: string;
  /** stdout parsed (the result, the version info, or the error); undefined when empty or not JSON. */
  json: Record<string, unknown> | undefined;
  /** Wall-clock time of the whole call, process start to exit. */
  ms: number;
}

/** The built plugin: dist/src/cli/main.js next to this module (dist/src/cni/index.js). */
export function defaultPluginCommand(): string[] {
  return [process.execPath, fileURLToPath(new URL('../cli/main.js', import.meta.url))];
}

/** The environment a runtime gives the plugin for `invocation` (pure). */
export function pluginEnv(
  invocation: CniInvocation,
  base: Readonly<Record<string, string | undefined>> = process.env,
): Record<string, string> {
  const env: Record<string, string> = {
    PATH: base.PATH ?? '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
    CNI_COMMAND: invocation.command,
    CNI_PATH: '/opt/cni/bin',
  };
  if (invocation.containerId !== undefined) env.CNI_CONTAINERID = invocation.containerId;
  if (invocation.netns !== undefined) env.CNI_NETNS = invocation.netns;
  env.CNI_IFNAME = invocation.ifname ?? 'eth0';
  if (invocation.pod)
    env.CNI_ARGS = `IgnoreUnknown=1;K8S_POD_NAMESPACE=${invocation.pod.namespace};K8S_POD_NAME=${invocation.pod.name}`;
  if (invocation.hostNetns !== undefined) env.TORTIE_CNI_HOST_NETNS = invocation.hostNetns;
  return { ...env, ...(invocation.env ?? {}) };
}

/** Runs the plugin as a runtime does (environment + stdin → stdout JSON) and returns what it said. */
export function runCniPlugin(invocation: CniInvocation): Promise<CniOutcome> {
  const [command, ...args] = invocation.executable ?? defaultPluginCommand();
  const timeoutMs = invocation.timeoutMs ?? 30_000;
  const started = performance.now();
  // Through the one runner (felix/command.ts): output bounded, killed by PID after timeoutMs. A plugin killed
  // for its time is an outcome (exit null, as a runtime sees it), not a failure to run.
  const running = startCommand({
    command: command!,
    args,
    timeoutMs,
    env: pluginEnv(invocation),
    maxOutputBytes: 16 * 1024 * 1024,
    makeError: (m) => new Error(`cannot run the CNI plugin: ${m}`),
  });
  const ended = running
    .end(invocation.rawStdin ?? JSON.stringify(invocation.config))
    .catch((error: unknown): CommandResult => {
      if (!running.timedOut) throw error;
      return { code: null, signal: 'SIGKILL', stdout: running.stdoutSoFar(), stderr: (error as Error).message };
    });
  return ended.then((result) => {
    const stdout = result.stdout.toString('utf8');
    let json: Record<string, unknown> | undefined;
    try {
      const parsed: unknown = stdout.trim() === '' ? undefined : JSON.parse(stdout);
      if (typeof parsed === 'object' && parsed !== null) json = parsed as Record<string, unknown>;
    } catch {
      json = undefined;
    }
    return { exitCode: result.code, stdout, stderr: result.stderr, json, ms: performance.now() - started };
  });
}

/** The plugin refused (its error JSON's code and msg). */
export class CniPluginError extends Error {
  constructor(
    readonly code: number | undefined,
    message: string,
    readonly outcome: CniOutcome,
  ) {
    super(message);
    this.name = 'CniPluginError';
  }
}

/** ADD a pod's network and return its address and interfaces; rejects with CniPluginError on refusal. */
export async function addPodNetwork(invocation: Omit<CniInvocation, 'command'>): Promise<{
  address: string;
  hostInterface: string;
  podInterface: string;
  mac: string;
  result: Record<string, unknown>;
}> {
  const outcome = await runCniPlugin({ ...invocation, command: 'ADD' });
  const result = outcome.json;
  if (outcome.exitCode !== 0 || !result) {
    throw new CniPluginError(
      typeof result?.code === 'number' ? result.code : undefined,
      `CNI ADD failed (exit ${outcome.exitCode}): ${String(result?.msg ?? (outcome.stdout.trim() || outcome.stderr.trim()))}`,
      outcome,
    );
  }
  const interfaces = (result.interfaces ?? []) as Array<{ name: string; mac?: string; sandbox?: string }>;
  const ips = (result.ips ?? []) as Array<{ address: string; interface?: number }>;
  const ip = ips[ips.length - 1];
  const pod = ip?.interface !== undefined ? interfaces[ip.interface] : undefined;
  const host = interfaces.find((i) => i.sandbox === undefined && i.name.startsWith('cali'));
  if (!ip || !pod || !host)
    throw new CniPluginError(undefined, `CNI ADD returned an unexpected result: ${outcome.stdout.trim()}`, outcome);
  return {
    address: ip.address.split('/')[0]!,
    hostInterface: host.name,
    podInterface: pod.name,
    mac: pod.mac ?? '',
    result,
  };
}

/** DEL a pod's network; rejects with CniPluginError on refusal. */
export async function deletePodNetwork(invocation: Omit<CniInvocation, 'command'>): Promise<void> {
  const outcome = await runCniPlugin({ ...invocation, command: 'DEL' });
  if (outcome.exitCode !== 0) {
    const code = outcome.json?.code;
    throw new CniPluginError(
      typeof code === 'number' ? code : undefined,
      `CNI DEL failed (exit ${outcome.exitCode}): ${String(outcome.json?.msg ?? outcome.stdout.trim())}`,
      outcome,
    );
  }
}
