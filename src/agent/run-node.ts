// `tortie node run`: the node agent as a process — configuration from the environment, the datastore
// (opened with WAIT_FOR_DATASTORE), the Secrets for BGP passwords, the control plane's addresses for import
// protection, the crash path (src/fatal.ts) and the signals; the Agent (./agent.ts) in the foreground.

import { hostname } from 'node:os';
import { systemClock } from '../../bgp/index.js';
import type { DatastoreConfig } from '../datastore/config.js';
import type { Datastore } from '../datastore/types.js';
import type { Logger } from '../log.js';
import { setCrashPath } from '../fatal.js';
import { Agent } from './agent.js';
import { waitForDatastore } from './bootstrap.js';
import { parseAgentConfig, type AgentConfig } from './config.js';
import { errorText } from './error-text.js';
import type { SecretSource } from './secrets.js';
import type { ServiceApi } from './service-watch.js';

/**
 * The control plane's IPv4 addresses for import protection: the etcd endpoints (etcdv3) or the Kubernetes
 * API server of the kubeconfig (kubernetes), plus KUBERNETES_SERVICE_HOST; host names resolved once, here.
 * A name that does not resolve is logged and left out (the agent still starts).
 */
async function controlPlaneAddresses(config: DatastoreConfig, env: NodeJS.ProcessEnv, log: Logger): Promise<string[]> {
  const urls = [...(config.datastoreType === 'etcdv3' ? config.etcdEndpoints : [])];
  if (config.datastoreType === 'kubernetes') {
    try {
      const { kubeClient } = await import('../datastore/kube-client.js');
      urls.push(kubeClient(config.kubeconfig, config.timeoutMs).server);
    } catch (error) {
      log.warn({ err: errorText(error) }, 'import protection: the Kubernetes API server address is unknown');
    }
  }
  const hosts = urls.map((url) => {
    try {
      return new URL(url).hostname.replace(/^\[|\]$/g, '');
    } catch {
      return '';
    }
  });
  if (env.KUBERNETES_SERVICE_HOST) hosts.push(env.KUBERNETES_SERVICE_HOST.trim());
  const { lookup } = await import('node:dns/promises');
  const out = new Set<string>();
  for (const host of hosts) {
    if (host === '' || host.includes(':')) continue;
    if (/^[0-9.]+$/.test(host)) {
      out.add(host);
      continue;
    }
    try {
      for (const found of await lookup(host, { all: true, family: 4 })) out.add(found.address);
    } catch (error) {
      log.warn(
        { host, err: errorText(error) },
        'import protection: a control-plane host name does not resolve; routes to it are not guarded',
      );
    }
  }
  return [...out];
}

/**
 * Where Services and EndpointSlices come from (service IP advertisement, ./service-watch.ts): the Kubernetes
 * API of the kubeconfig on the kubernetes datastore, and on etcd when a kubeconfig is given (as Calico's
 * confd); else none — only the service CIDRs are advertised and node status says so.
 */
async function serviceApiFor(config: DatastoreConfig, log: Logger): Promise<ServiceApi | null> {
  if (config.datastoreType !== 'kubernetes' && config.kubeconfig === undefined) return null;
  try {
    const { kubeServiceApi } = await import('./service-watch.js');
    return kubeServiceApi(config.kubeconfig, config.timeoutMs);
  } catch (error) {
    log.warn(
      { err: errorText(error) },
      'service advertisement: no Kubernetes API for Services; only the service CIDRs are advertised',
    );
    return null;
  }
}

/**
 * `tortie node run`: configuration from `env`, the datastore, the agent in the foreground until SIGTERM or
 * SIGINT. Resolves to the exit status: 0 after a clean stop, 1 when configuration or startup fails.
 */
export async function runNode(
  env: NodeJS.ProcessEnv,
  options: { logger?: Logger; signals?: boolean } = {},
): Promise<number> {
  const { createLogger } = await import('../log.js');
  let config: AgentConfig;
  try {
    config = parseAgentConfig(env, hostname());
  } catch (error) {
    process.stderr.write(`tortie node run: ${errorText(error)}\n`);
    return 1;
  }
  const log = options.logger ?? createLogger({ level: config.logLevel ?? 'info' });
  // A fatal error before the agent exists has nothing to stop (src/fatal.ts logs it and exits 1).
  if (options.signals !== false) setCrashPath({ log, shutdown: async () => undefined });
  const { loadDatastoreConfig, openDatastore, describeDatastore } = await import('../datastore/index.js');
  let ds: Datastore;
  let secrets: SecretSource | null = null;
  let where = 'the datastore';
  let dsConfig: DatastoreConfig;
  try {
    dsConfig = await loadDatastoreConfig(env);
    // BGP passwords: Secrets through the API (kubernetes) or mounted Secret files (etcd; src/agent/secrets.ts).
    const { secretSourceFor } = await import('./secrets.js');
    secrets = await secretSourceFor(dsConfig, env).catch((error: unknown) => {
      log.warn({ err: errorText(error) }, 'BGP passwords: no source of Secrets; peers with a password are not started');
      return null;
    });
    where = describeDatastore(dsConfig);
    // WAIT_FOR_DATASTORE: keep trying to open it too (the agent's own wait, ./bootstrap.ts).
    const opening = dsConfig;
    ds = await waitForDatastore(() => openDatastore(opening), {
      wait: config.waitForDatastore,
      clock: systemClock,
      log,
    });
  } catch (error) {
    const message = errorText(error);
    process.stderr.write(`tortie node run: ${message.includes(where) ? '' : `${where}: `}${message}\n`);
    return 1;
  }
  let stopSignal: (graceful: boolean) => void = () => undefined;
  const stopped = new Promise<boolean>((resolve) => (stopSignal = resolve));
  const controlPlane = await controlPlaneAddresses(dsConfig, env, log);
  const serviceApi = await serviceApiFor(dsConfig, log);
  const agent = new Agent(config, {
    datastore: ds,
    logger: log,
    secrets,
    onStopRequest: (graceful) => stopSignal(graceful),
    controlPlane,
    serviceApi,
  });
  // A fatal error (an unhandled rejection or exception, src/fatal.ts): the graceful stop, not SIGTERM's
  // Cease — peers keep our routes and the kernel keeps its routes until the agent is back.
  if (options.signals !== false) {
    setCrashPath({
      log,
      shutdown: async () => {
        await agent.stop({ graceful: true });
        await ds.close().catch(() => undefined);
      },
    });
  }
  const onSignal = (signal: string): void => {
    log.info({ signal }, 'stopping');
    stopSignal(false);
  };
  if (options.signals !== false) {
    process.once('SIGTERM', () => onSignal('SIGTERM'));
    process.once('SIGINT', () => onSignal('SIGINT'));
  }
  try {
    await agent.start();
  } catch (error) {
    process.stderr.write(`tortie node run: ${errorText(error)}\n`);
    await ds.close().catch(() => undefined);
    return 1;
  }
  // The CNI plugin's own token (TORTIE_CNI_KUBECONFIG, kubernetes datastore), refreshed before it expires.
  const { startCniToken } = await import('./cni-token.js');
  const cniToken = await startCniToken(dsConfig, env, (level, message, fields) =>
    log[level](fields ?? {}, message),
  ).catch((error: unknown) => {
    log.error({ err: errorText(error) }, 'CNI plugin token: not managed');
    return null;
  });
  // The CNI plugin's ADD/DEL/CHECK done here (./cni-server.ts); without it the plugin does them itself.
  const cniServer = await startCniServer(env, config.nodeName, ds, dsConfig, log);
  const graceful = await stopped;
  await cniServer?.close();
  cniToken?.stop();
  await agent.stop({ graceful });
  await ds.close().catch(() => undefined);
  log.info('stopped');
  return 0;
}

/** The CNI socket (TORTIE_CNI_SOCKET, `off` for none); a failure is logged and the plugin works alone. */
async function startCniServer(
  env: Record<string, string | undefined>,
  nodeName: string,
  ds: Datastore,
  datastoreConfig: DatastoreConfig,
  log: Logger,
): Promise<{ close(): Promise<void> } | null> {
  const { cniSocketPath, serveCni } = await import('./cni-server.js');
  const path = cniSocketPath(env);
  if (path === null) return null;
  return serveCni({ path, nodeName, datastore: ds, datastoreConfig, log: log.child({ component: 'cni' }) }).catch(
    (error: unknown) => {
      log.warn({ err: errorText(error) }, 'CNI socket: not served; the plugin does its work itself');
      return null;
    },
  );
}
