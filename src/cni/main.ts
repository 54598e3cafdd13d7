// The process side of the plugin: `tortie` run by a container runtime with CNI_COMMAND set
// (src/cli/main.ts hands over before loading anything else). Reads stdin, wires the real I/O into
// ./plugin.ts, writes the result or error JSON to stdout and returns the exit code.
//
// Start-up time is part of every pod's ADD latency, so this module and what it loads up front are small:
// the datastore backend, IPAM and the Kubernetes client are imported only by the commands that use them
// (VERSION loads none of them), and logs are plain JSON lines, not pino.
//
// Environment beyond the spec's CNI_* variables:
//   NODENAME                   the node, when the configuration has no `nodename` (see plugin.ts nodeName)
//   TORTIE_CNI_HOST_NETNS      run the host side in this network namespace (path) instead of the
//                              plugin's own — for the lab, whose nodes are namespaces, and for tests
//   TORTIE_DATASTORE_TIMEOUT_MS  deadline of each datastore call (default 5000), as for the agent
//   TORTIE_CNI_ETCD_TRANSPORT  `http` (default): etcd's JSON gateway, gRPC when the gateway cannot serve
//                              (logged as a warning); `grpc`: always gRPC (package etcd3, ~200 ms more)

import { appendFileSync } from 'node:fs';
import { access, readFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { randomBytes } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { openConfiguredDatastore } from './datastore.js';
import { PodNetwork, spawnCommand } from './dataplane.js';
import { runPlugin, type CniLog, type PluginIo } from './plugin.js';
import { CniError } from './spec.js';
import { LOG_LEVELS, type LogLevel, type NetConf } from './netconf.js';
import type { EtcdTransportName } from '../datastore/index.js';

/** The values TORTIE_CNI_ETCD_TRANSPORT takes (src/datastore/index.ts OpenOptions.etcdTransport). */
const ETCD_TRANSPORT_NAMES: readonly EtcdTransportName[] = ['http', 'grpc'];

/** A JSON-lines logger at `level` and above, to `file` (appended) or stderr. */
export function createCniLog(level: LogLevel, file: string | undefined, write?: (line: string) => void): CniLog {
  const threshold = LOG_LEVELS.indexOf(level);
  const sink =
    write ??
    (file !== undefined ? (line: string) => appendFileSync(file, line) : (line: string) => process.stderr.write(line));
  const at = (lineLevel: LogLevel) => (fields: object, message?: string) => {
    if (LOG_LEVELS.indexOf(lineLevel) < threshold) return;
    try {
      sink(
        JSON.stringify({
          time: new Date().toISOString(),
          level: lineLevel,
          plugin: 'tortie',
          pid: process.pid,
          msg: message,
          ...fields,
        }) + '\n',
      );
    } catch {
      // a log file that cannot be written must not fail the pod's network setup
    }
  };
  // The Logger's methods, as CNI's log levels (the JSON says "warning", as the CNI plugins' logs do).
  return { debug: at('debug'), info: at('info'), warn: at('warning'), error: at('error') };
}

/** All of stdin (empty when it is a terminal: a person ran `tortie` with CNI_COMMAND set). */
async function readStdin(): Promise<string> {
  if (process.stdin.isTTY) return '';
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

/** TORTIE_CNI_ETCD_TRANSPORT, checked; the default is the gateway. */
export function etcdTransportFromEnv(env: Readonly<Record<string, string | undefined>>): EtcdTransportName {
  const raw = env.TORTIE_CNI_ETCD_TRANSPORT;
  if (raw === undefined || raw === '') return 'http';
  if ((ETCD_TRANSPORT_NAMES as readonly string[]).includes(raw)) return raw as EtcdTransportName;
  throw new CniError(
    'invalidEnvironment',
    `TORTIE_CNI_ETCD_TRANSPORT: "${raw}" is not a transport; use ${ETCD_TRANSPORT_NAMES.join(' or ')}`,
  );
}

function timeoutFromEnv(env: NodeJS.ProcessEnv): number | undefined {
  const raw = env.TORTIE_DATASTORE_TIMEOUT_MS;
  return raw !== undefined && /^\d+$/.test(raw) ? Number(raw) : undefined;
}

/** The real I/O of one invocation. */
export function processIo(env: NodeJS.ProcessEnv): PluginIo {
  const run = spawnCommand();
  const hostNetns =
    env.TORTIE_CNI_HOST_NETNS !== undefined && env.TORTIE_CNI_HOST_NETNS !== '' ? env.TORTIE_CNI_HOST_NETNS : undefined;
  const timeoutMs = timeoutFromEnv(env);
  return {
    env,
    openDatastore: async (conf: NetConf) =>
      openConfiguredDatastore(conf, timeoutMs, {
        etcdTransport: etcdTransportFromEnv(env),
        onTransportFallback: (reason) => createCniLog(conf.logLevel, conf.logFile).warn({}, reason),
      }),
    async openRecorder(conf, ds) {
      const endpoint = await import('./endpoint.js');
      if (conf.datastoreType === 'kubernetes')
        return new endpoint.PodAnnotationRecorder(await endpoint.openPodApi(conf, timeoutMs ?? 5000));
      return new endpoint.WorkloadEndpointRecorder(ds);
    },
    network: () => new PodNetwork({ run, ...(hostNetns !== undefined ? { hostNetns } : {}) }),
    readFile: (path) => readFile(path, 'utf8'),
    pathExists: (path) =>
      access(path).then(
        () => true,
        () => false,
      ),
    hostname: () => hostname(),
    randomBytes: (n) => randomBytes(n),
    now: () => performance.now(),
    wallClock: () => new Date(),
    logFor: (conf) => createCniLog(conf?.logLevel ?? 'warning', conf?.logFile),
  };
}

/** Runs the plugin for this process: stdin and environment in, stdout out. Resolves to the exit code. */
export async function cniMain(env: NodeJS.ProcessEnv = process.env): Promise<number> {
  const stdin = await readStdin();
  const out = await runPlugin(stdin, processIo(env));
  await new Promise<void>((resolve) => process.stdout.write(out.stdout, () => resolve()));
  return out.exitCode;
}
