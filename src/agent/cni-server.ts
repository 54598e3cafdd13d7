// The agent's CNI socket: the plugin's ADD, DEL and CHECK done inside the agent (src/cni/client.ts is the
// other end and describes the protocol). The agent already holds an open datastore connection and has the
// plugin's modules loaded; a plugin process that only forwards its request saves their ~40 ms per pod.
//
// The work is the plugin's own code (src/cni/plugin.ts runPlugin) on the plugin's environment and stdin:
// the same checks, the same IPAM (compare-and-swap on the datastore, under the same host lock as plugin
// processes), the same dataplane and records, the same result JSON and exit code. What differs: the
// datastore is the agent's (closing it is a no-op), the host's default-route MTU is remembered per host
// namespace (refreshed in the background after MTU_CACHE_MS: an `ip` process less per ADD), a
// TORTIE_CNI_HOST_NETNS that is the agent's own namespace is dropped, and the log lines go back to the plugin
// (its stderr or `log_file_path`), so a runtime sees what it saw before.
//
// The agent does the work only when it is the plugin's own: same datastore (type, endpoints, TLS files) and
// same node (the plugin's node name, resolved as the plugin does). Otherwise — and for a configuration the
// agent cannot read, a kubernetes datastore (the plugin's Pod annotations use the plugin's own credentials),
// an agent that is stopping or too busy — it answers {"fallback": why} and the plugin does the work itself.
//
// Why this is hard:
// - Nothing handed out twice, nothing lost: the agent can die mid-ADD (the plugin then redoes the ADD, which
//   finds its handle's address), so every step here is the plugin's idempotent step, never a shortcut
//   through agent memory. The block cache the agent's IPAM reads is the datastore's revisioned data.
// - Bounded like the control socket (./control.ts): request line size, time to send it, connections (over
//   the cap new requests are told to fall back: an in-flight ADD is never dropped for a newer one), time
//   to produce the answer (past it the plugin gets CNI error 11, "try again later", not silence).
// - Nothing a client sends escapes as an exception: a bad request is a fallback answer, a failure inside is
//   the plugin's error JSON (runPlugin never rejects), and anything else closes the connection.
// - On stop, requests in flight are finished (bounded) before the socket closes: a plugin that fell back
//   while the agent still worked on its pod would race it.

import net from 'node:net';
import { chmod, lstat, mkdir, rename, stat, unlink } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import type { DatastoreConfig } from '../datastore/config.js';
import type { Datastore } from '../datastore/types.js';
import type { Logger } from '../../bgp/index.js';
import { AGENT_COMMANDS, cniSocketPath, FORWARDED_ENV, MAX_CNI_REQUEST_BYTES } from '../cni/client.js';
import type { Network, PluginIo } from '../cni/plugin.js';
import type { NetConf } from '../cni/netconf.js';
import { inspectExisting } from './control.js';

export interface CniRequest {
  env: Record<string, string>;
  stdin: string;
}

export interface CniServerLimits {
  /** A client that has not sent its request line within this is disconnected. */
  requestTimeoutMs: number;
  /** An accepted request must be answered within this; past it the plugin gets error 11. */
  answerTimeoutMs: number;
  /** Requests at once; one more is told to fall back. */
  maxConnections: number;
  /** On close, how long requests in flight may still take. */
  drainTimeoutMs: number;
}

export const CNI_SERVER_LIMITS: Readonly<CniServerLimits> = {
  requestTimeoutMs: 2000,
  answerTimeoutMs: 120_000,
  maxConnections: 64,
  drainTimeoutMs: 15_000,
};

/** How long the host's default-route MTU is remembered (it changes when an admin changes the uplink). */
export const MTU_CACHE_MS = 10_000;
/** sun_path is 108 bytes on Linux, one of them the terminating NUL. */
const MAX_SOCKET_PATH_BYTES = 107;
let temporaryCount = 0;

/** TORTIE_CNI_SOCKET for the agent: the path, or null for `off` (the plugin's own rule, src/cni/client.ts). */
export { cniSocketPath };

/** Parses and validates one request line; throws an Error saying what would be accepted. */
export function parseCniRequest(line: string): CniRequest {
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch {
    throw new Error(`request ${JSON.stringify(line.slice(0, 80))} is not JSON; send {"env":{...},"stdin":"..."}`);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value))
    throw new Error('request is not a JSON object; send {"env":{...},"stdin":"..."}');
  const { env, stdin } = value as { env?: unknown; stdin?: unknown };
  if (typeof stdin !== 'string') throw new Error(`"stdin" is ${JSON.stringify(stdin ?? null)}; send a string`);
  if (typeof env !== 'object' || env === null || Array.isArray(env))
    throw new Error('"env" is not an object of strings');
  const out: Record<string, string> = {};
  for (const [key, v] of Object.entries(env)) {
    if (!FORWARDED_ENV.includes(key))
      throw new Error(`"env" names ${JSON.stringify(key.slice(0, 40))}; only ${FORWARDED_ENV.join(', ')}`);
    if (typeof v !== 'string') throw new Error(`"env.${key}" is not a string`);
    out[key] = v;
  }
  const command = out.CNI_COMMAND ?? '';
  if (!AGENT_COMMANDS.includes(command))
    throw new Error(`CNI_COMMAND ${JSON.stringify(command)} is not done by the agent (${AGENT_COMMANDS.join(', ')})`);
  return { env: out, stdin };
}

/** "http://127.0.0.1:2379/" and "http://127.0.0.1:2379" are one endpoint. */
function endpointKey(endpoints: readonly string[]): string {
  return [...endpoints]
    .map((e) => e.trim().replace(/\/+$/, ''))
    .sort()
    .join(',');
}

/** Whether a plugin configuration names the agent's own datastore (pure); the reason when not. */
export function sameDatastore(
  plugin: Pick<DatastoreConfig, 'datastoreType' | 'etcdEndpoints' | 'etcdCACertFile' | 'etcdCertFile' | 'etcdKeyFile'>,
  agent: Pick<DatastoreConfig, 'datastoreType' | 'etcdEndpoints' | 'etcdCACertFile' | 'etcdCertFile' | 'etcdKeyFile'>,
): string | null {
  if (plugin.datastoreType !== 'etcdv3')
    return `datastore_type ${plugin.datastoreType}: the plugin annotates Pods with its own credentials`;
  if (agent.datastoreType !== plugin.datastoreType) return `the agent uses the ${agent.datastoreType} datastore`;
  if (endpointKey(plugin.etcdEndpoints) !== endpointKey(agent.etcdEndpoints))
    return `etcd_endpoints ${plugin.etcdEndpoints.join(',')} are not the agent's (${agent.etcdEndpoints.join(',')})`;
  for (const key of ['etcdCACertFile', 'etcdCertFile', 'etcdKeyFile'] as const)
    if ((plugin[key] ?? '') !== (agent[key] ?? '')) return `${key} differs from the agent's`;
  return null;
}

/** The agent's datastore for one plugin command: every call goes through, close() does nothing. */
function borrowed(ds: Datastore): Datastore {
  return new Proxy(ds, {
    get(target, property) {
      if (property === 'close') return () => Promise.resolve();
      const value: unknown = Reflect.get(target, property, target);
      return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value;
    },
  });
}

export interface CniServerOptions {
  path: string;
  nodeName: string;
  datastore: Datastore;
  datastoreConfig: DatastoreConfig;
  log: Pick<Logger, 'info' | 'warn'>;
  limits?: Partial<CniServerLimits>;
  /** Time for the MTU cache (default Date.now). */
  now?: () => number;
}

export interface CniServer {
  readonly path: string;
  /** Requests being worked on now. */
  inFlight(): number;
  close(): Promise<void>;
}

type Decision = { serve: true; io: PluginIo; conf: NetConf; log: string[] } | { serve: false; reason: string };

/** The plugin's modules, loaded once on the first request (not at agent start-up). */
async function pluginModules() {
  const [plugin, main, spec, netconf, result, datastore, config] = await Promise.all([
    import('../cni/plugin.js'),
    import('../cni/main.js'),
    import('../cni/spec.js'),
    import('../cni/netconf.js'),
    import('../cni/result.js'),
    import('../cni/datastore.js'),
    import('../datastore/config.js'),
  ]);
  return { plugin, main, spec, netconf, result, datastore, config };
}

class CniWorker {
  private readonly mtus = new Map<string, { at: number; value: Promise<{ dev: string; mtu: number } | null> }>();
  private modules: ReturnType<typeof pluginModules> | undefined;
  private readonly now: () => number;

  constructor(private readonly options: CniServerOptions) {
    this.now = options.now ?? Date.now;
  }

  loadModules(): ReturnType<typeof pluginModules> {
    this.modules ??= pluginModules();
    return this.modules;
  }

  /**
   * The host's default-route MTU for `hostNetns`: looked up on first use, then the remembered value is
   * answered at once and looked up again in the background when older than MTU_CACHE_MS (no `ip` process
   * on an ADD's path). A failed lookup is forgotten.
   */
  private cachedMtu(key: string, lookup: () => Promise<{ dev: string; mtu: number } | null>) {
    const hit = this.mtus.get(key);
    if (hit === undefined) {
      const value = lookup();
      this.mtus.set(key, { at: this.now(), value });
      value.catch(() => this.mtus.delete(key));
      return value;
    }
    if (this.now() - hit.at >= MTU_CACHE_MS) {
      hit.at = this.now();
      const fresh = lookup();
      fresh.then(
        () => this.mtus.set(key, { at: this.now(), value: fresh }),
        () => undefined,
      );
    }
    return hit.value;
  }

  /** Whether this agent does `request`, and the I/O it does it with. */
  async decide(request: CniRequest): Promise<Decision> {
    const { plugin, main, netconf, datastore, config } = await this.loadModules();
    let conf: NetConf;
    try {
      conf = netconf.parseNetConf(request.stdin);
    } catch (error) {
      return { serve: false, reason: `the configuration: ${error instanceof Error ? error.message : String(error)}` };
    }
    let pluginConfig: DatastoreConfig;
    try {
      pluginConfig = config.configFromEnv(datastore.datastoreEnv(conf));
    } catch (error) {
      return { serve: false, reason: `the configuration: ${error instanceof Error ? error.message : String(error)}` };
    }
    const other = sameDatastore(pluginConfig, this.options.datastoreConfig);
    if (other !== null) return { serve: false, reason: other };
    // TORTIE_CNI_HOST_NETNS naming the agent's own namespace (the lab: the agent runs in the node's) is
    // dropped: the host side then needs no nsenter, and the sysctls are file writes.
    const env = (await isOwnNetns(request.env.TORTIE_CNI_HOST_NETNS))
      ? Object.fromEntries(Object.entries(request.env).filter(([k]) => k !== 'TORTIE_CNI_HOST_NETNS'))
      : request.env;
    const base = main.processIo(env);
    const lines: string[] = [];
    const io: PluginIo = {
      ...base,
      openDatastore: () => Promise.resolve(borrowed(this.options.datastore)),
      network: (c) => {
        const network = base.network(c);
        const key = env.TORTIE_CNI_HOST_NETNS ?? '';
        const cached: Network = {
          setup: (p) => network.setup(p),
          removeHostVeth: (i) => network.removeHostVeth(i),
          removePodInterface: (n, i) => network.removePodInterface(n, i),
          check: (p) => network.check(p),
          defaultRouteMtu: () => this.cachedMtu(key, () => network.defaultRouteMtu()),
        };
        return cached;
      },
      logFor: (c) => main.createCniLog(c?.logLevel ?? 'warning', undefined, (line) => lines.push(line)),
    };
    // The agent's container may not see the runtime's namespace paths (/proc/PID/ns/net needs hostPID,
    // /var/run/netns a mount): then the plugin, which does, does the work.
    const netns = request.env.CNI_NETNS;
    if (netns !== undefined && netns !== '' && !(await base.pathExists(netns)))
      return { serve: false, reason: `the agent cannot see CNI_NETNS ${netns}` };
    const node = await plugin.resolveNodeName(conf, io, io.logFor(conf));
    if (node !== this.options.nodeName) return { serve: false, reason: `node "${node}" is not this agent's` };
    return { serve: true, io, conf, log: lines };
  }

  /** The plugin's answer for an accepted request (runPlugin never rejects). */
  async run(request: CniRequest, decision: Extract<Decision, { serve: true }>): Promise<string> {
    const { plugin } = await this.loadModules();
    const out = await plugin.runPlugin(request.stdin, decision.io);
    return encodeAnswer({
      exitCode: out.exitCode,
      stdout: out.stdout,
      log: decision.log.join(''),
      ...(decision.conf.logFile !== undefined ? { logFile: decision.conf.logFile } : {}),
    });
  }

  /** CNI error 11 for a request the agent could not finish in time. */
  async timedOut(request: CniRequest, ms: number): Promise<string> {
    const { spec, netconf, result } = await this.loadModules();
    const version = netconf.parseVersionField(request.stdin) ?? spec.LATEST_VERSION;
    const known = Object.hasOwn(spec.CNI_VERSIONS, version) ? version : spec.LATEST_VERSION;
    const error = new spec.CniError(
      'tryAgainLater',
      `the node agent did not finish ${request.env.CNI_COMMAND} in ${ms} ms`,
    );
    return encodeAnswer({ exitCode: 1, stdout: JSON.stringify(result.formatError(known, error)) + '\n', log: '' });
  }
}

/** Whether `path` is this process's own network namespace (same namespace inode). */
async function isOwnNetns(path: string | undefined): Promise<boolean> {
  if (path === undefined || path === '') return false;
  try {
    const [theirs, ours] = await Promise.all([stat(path), stat('/proc/self/ns/net')]);
    return theirs.ino === ours.ino && theirs.dev === ours.dev;
  } catch {
    return false;
  }
}

function encodeAnswer(answer: { exitCode: number; stdout: string; log: string; logFile?: string }): string {
  return `${JSON.stringify(answer)}\n`;
}

function handleConnection(
  socket: net.Socket,
  worker: CniWorker,
  limits: CniServerLimits,
  track: (work: Promise<unknown>) => void,
  log: CniServerOptions['log'],
): void {
  let buffered = '';
  let done = false;
  socket.setEncoding('utf8');
  socket.setTimeout(limits.requestTimeoutMs, () => socket.destroy());
  socket.on('error', () => socket.destroy());
  const fallback = (reason: string): void => {
    socket.end(`${JSON.stringify({ fallback: reason })}\n`);
  };
  socket.on('data', (chunk: string) => {
    if (done) return;
    buffered += chunk;
    const newline = buffered.indexOf('\n');
    if (newline < 0 && buffered.length <= MAX_CNI_REQUEST_BYTES) return;
    done = true;
    socket.setTimeout(0);
    if (newline < 0 || newline > MAX_CNI_REQUEST_BYTES) {
      buffered = '';
      fallback(`request longer than ${MAX_CNI_REQUEST_BYTES} bytes`);
      return;
    }
    const line = buffered.slice(0, newline);
    buffered = '';
    let request: CniRequest;
    try {
      request = parseCniRequest(line);
    } catch (error) {
      fallback(error instanceof Error ? error.message : String(error));
      return;
    }
    const work = (async () => {
      const decision = await worker.decide(request);
      if (!decision.serve) {
        fallback(decision.reason);
        return;
      }
      if (socket.destroyed) return; // the plugin gave up waiting: it does the work itself
      socket.write(`${JSON.stringify({ accepted: true })}\n`);
      let timer: NodeJS.Timeout | undefined;
      const bound = new Promise<string>((resolve) => {
        timer = setTimeout(() => resolve(worker.timedOut(request, limits.answerTimeoutMs)), limits.answerTimeoutMs);
      });
      const answer = await Promise.race([worker.run(request, decision), bound]);
      clearTimeout(timer);
      socket.end(answer);
    })().catch((error: unknown) => {
      log.warn({ err: error instanceof Error ? error.message : String(error) }, 'CNI socket: a request failed');
      socket.destroy();
    });
    track(work);
  });
}

/**
 * Serves the plugin on a Unix socket at `path` (mode 0600, bound under a temporary name and renamed into
 * place, as ./control.ts does). Replaces a stale socket; refuses when another agent answers on it.
 */
export async function serveCni(options: CniServerOptions): Promise<CniServer> {
  const { path } = options;
  const limits: CniServerLimits = { ...CNI_SERVER_LIMITS, ...options.limits };
  await mkdir(dirname(path), { recursive: true, mode: 0o755 });
  const existing = await inspectExisting(path, { socket: 'CNI socket', variable: 'TORTIE_CNI_SOCKET' });
  if (existing === 'live')
    throw new Error(`another process answers on the CNI socket ${path}; set TORTIE_CNI_SOCKET to another path`);
  if (existing === 'stale') await unlink(path).catch(() => undefined);
  const temporary = join(dirname(path), `.${basename(path)}.${process.pid}.${temporaryCount++}`);
  if (Buffer.byteLength(temporary) > MAX_SOCKET_PATH_BYTES)
    throw new Error(`CNI socket path ${path} is too long for a Unix socket; choose a shorter TORTIE_CNI_SOCKET`);

  const worker = new CniWorker(options);
  const inFlight = new Set<Promise<unknown>>();
  const connections = new Set<net.Socket>();
  const track = (work: Promise<unknown>): void => {
    inFlight.add(work);
    void work.finally(() => inFlight.delete(work));
  };
  const server = net.createServer((socket) => {
    const busy = connections.size >= limits.maxConnections;
    connections.add(socket);
    socket.once('close', () => connections.delete(socket));
    if (busy) {
      socket.on('error', () => socket.destroy());
      socket.setTimeout(limits.requestTimeoutMs, () => socket.destroy());
      socket.resume(); // read and drop: the client's end then closes it
      socket.end(
        `${JSON.stringify({ fallback: `the agent is doing ${connections.size - 1} CNI requests already` })}\n`,
      );
      return;
    }
    handleConnection(socket, worker, limits, track, options.log);
  });
  let inode: number;
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(temporary, () => {
        server.off('error', reject);
        resolve();
      });
    });
    server.on('error', (error: Error) => options.log.warn({ err: error.message }, 'CNI socket error'));
    await chmod(temporary, 0o600);
    await rename(temporary, path);
    inode = (await lstat(path)).ino;
  } catch (error) {
    if (server.listening) await new Promise<void>((resolve) => server.close(() => resolve()));
    await unlink(temporary).catch(() => undefined);
    throw new Error(`cannot create the CNI socket ${path}: ${error instanceof Error ? error.message : String(error)}`);
  }
  // Loaded now, in the background: the first pod's ADD should not pay for it.
  worker
    .loadModules()
    .catch((error: unknown) =>
      options.log.warn({ err: error instanceof Error ? error.message : String(error) }, 'CNI socket: plugin modules'),
    );
  options.log.info({ path }, 'CNI socket listening');

  let closed: Promise<void> | null = null;
  return {
    path,
    inFlight: () => inFlight.size,
    close() {
      closed ??= (async () => {
        const stopped = new Promise<void>((resolve) => server.close(() => resolve()));
        // Requests in flight finish (bounded): a plugin told nothing would redo its pod beside us.
        let timer: NodeJS.Timeout | undefined;
        await Promise.race([
          Promise.allSettled([...inFlight]),
          new Promise<void>((resolve) => (timer = setTimeout(resolve, limits.drainTimeoutMs))),
        ]);
        clearTimeout(timer);
        for (const socket of connections) socket.destroy();
        await stopped;
        const now = await lstat(path).catch(() => null);
        if (now && now.ino === inode) await unlink(path).catch(() => undefined);
      })();
      return closed;
    },
  };
}
