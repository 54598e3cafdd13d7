// The CNI plugin's credentials, kept fresh by the agent (kubernetes datastore).
//
// The plugin runs on the host, started by the container runtime, with the kubeconfig the network
// configuration names (/etc/cni/net.d/tortie-kubeconfig). It has its own ServiceAccount (tortie-cni)
// whose ClusterRole grants only what ADD/DEL/GC need (src/cni/api-calls.ts), not the agent's rights. Its
// token is a bound ServiceAccount token asked for with the TokenRequest API:
//
//   POST /api/v1/namespaces/<ns>/serviceaccounts/<sa>/token   {spec: {expirationSeconds}}
//     → {status: {token, expirationTimestamp}}
//
// which the agent's Role allows for that one ServiceAccount (resourceNames). Such a token expires, so the
// agent writes it into the kubeconfig (a temporary file renamed over the old one, mode 0600: the runtime may
// start the plugin at any moment, and it must read a whole file) and asks for the next one at 80 % of the
// lifetime the API server granted (it may shorten or lengthen what was asked); a failed request is retried
// with a doubling delay (1 s .. 60 s). With 20 % of an hour left when refreshing starts, that is about 17
// attempts before the current token expires; after that the retries go on, the plugin's calls fail (401)
// until one succeeds, and each failure is logged saying so.
//
// Why this is hard: time. The refresh point comes from the server's expirationTimestamp (wall clock) seen
// through the agent's clock; every delay here is on the injected Clock, so tests run hours in milliseconds.

import { chmod, rename, rm, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { systemClock, type Clock, type TimerHandle } from '../../bgp/index.js';
import { serviceAccountKubeconfig } from '../cni/install.js';

export const DEFAULT_CNI_SERVICE_ACCOUNT = 'tortie-cni';
/** What the agent asks for: one hour (the API server may grant a different lifetime; its answer rules). */
export const DEFAULT_TOKEN_SECONDS = 3600;
/** The shortest lifetime the Kubernetes API accepts in a TokenRequest. */
export const MIN_TOKEN_SECONDS = 600;
/** Refresh when this share of the granted lifetime has passed. */
export const REFRESH_AT = 0.8;
const FIRST_RETRY_MS = 1000;
const MAX_RETRY_MS = 60_000;

import { kubeTokenRequester, type IssuedToken, type TokenRequester } from '../datastore/kube-token.js';

export { kubeTokenRequester, type IssuedToken, type TokenRequester };

export interface CniTokenOptions {
  /** The kubeconfig file the CNI network configuration names. */
  kubeconfigPath: string;
  /** The API server as the host sees it, and its CA (base64 PEM) for the kubeconfig. */
  server: string;
  caData: string;
  request: TokenRequester;
  /** Asked-for lifetime in seconds (default 3600, at least 600). */
  expirationSeconds?: number;
  clock?: Clock;
  /** Writes `text` to `path` atomically with mode 0600 (default: temp file + rename). */
  writeFileAtomic?: (path: string, text: string) => Promise<void>;
  log?: (level: 'info' | 'warn', message: string, fields?: Record<string, unknown>) => void;
}

/** Temporary file in the same directory, mode 0600 from the start, then rename over the target. */
export async function writePrivateFileAtomic(path: string, text: string): Promise<void> {
  const temp = join(dirname(path), `.${randomBytes(6).toString('hex')}.tmp`);
  try {
    await writeFile(temp, text, { mode: 0o600 });
    await chmod(temp, 0o600);
    await rename(temp, path);
  } catch (err) {
    await rm(temp, { force: true });
    throw err;
  }
}

/** The delay before the next TokenRequest after one that succeeded at `now` (pure). */
export function refreshDelay(now: number, issuedAt: number, expiresAt: number): number {
  const lifetime = Math.max(0, expiresAt - issuedAt);
  return Math.max(0, issuedAt + lifetime * REFRESH_AT - now);
}

/** The delay before retry `attempt` (1, 2, ...) after failures: 1 s doubling to 60 s (pure). */
export function retryDelay(attempt: number): number {
  return Math.min(MAX_RETRY_MS, FIRST_RETRY_MS * 2 ** Math.max(0, attempt - 1));
}

/**
 * Writes the CNI kubeconfig with a fresh token and keeps it fresh. `start()` resolves after the first
 * attempt (written or not: a failure is retried in the background); `stop()` cancels the timer.
 */
export class CniTokenRefresher {
  private readonly clock: Clock;
  private readonly seconds: number;
  private timer: TimerHandle | null = null;
  private stopped = false;
  private failures = 0;
  private current: IssuedToken | null = null;
  /** Number of kubeconfigs written (for status and tests). */
  written = 0;
  lastError: string | null = null;

  constructor(private readonly options: CniTokenOptions) {
    this.clock = options.clock ?? systemClock;
    this.seconds = Math.max(MIN_TOKEN_SECONDS, Math.floor(options.expirationSeconds ?? DEFAULT_TOKEN_SECONDS));
  }

  /** When the token in the kubeconfig expires; null before the first one is written. */
  get expiresAt(): number | null {
    return this.current?.expiresAt ?? null;
  }

  async start(): Promise<void> {
    await this.refresh();
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) this.clock.clearTimeout(this.timer);
    this.timer = null;
  }

  private schedule(ms: number): void {
    if (this.stopped) return;
    if (this.timer) this.clock.clearTimeout(this.timer);
    this.timer = this.clock.setTimeout(() => {
      this.timer = null;
      void this.refresh();
    }, ms);
  }

  private async refresh(): Promise<void> {
    if (this.stopped) return;
    const issuedAt = this.clock.now();
    try {
      const issued = await this.options.request(this.seconds);
      if (this.stopped) return;
      await (this.options.writeFileAtomic ?? writePrivateFileAtomic)(
        this.options.kubeconfigPath,
        serviceAccountKubeconfig(this.options.server, this.options.caData, issued.token),
      );
      this.current = issued;
      this.written += 1;
      this.failures = 0;
      this.lastError = null;
      // The expiry is the API server's clock; ours may differ. An expiry already past (or further than we
      // asked) by our clock means the clocks disagree: then the lifetime we asked for is the measure.
      const granted = issued.expiresAt - issuedAt;
      const skewed = granted <= 0 || granted > this.seconds * 1000 * 2;
      if (skewed)
        this.options.log?.(
          'warn',
          "CNI plugin token: its expiry does not fit this host's clock; refreshing by the lifetime asked for",
          { expires: new Date(issued.expiresAt).toISOString() },
        );
      const delay = refreshDelay(
        this.clock.now(),
        issuedAt,
        skewed ? issuedAt + this.seconds * 1000 : issued.expiresAt,
      );
      this.options.log?.('info', 'CNI plugin token written', {
        kubeconfig: this.options.kubeconfigPath,
        expires: new Date(issued.expiresAt).toISOString(),
        refreshInMs: delay,
      });
      this.schedule(delay);
    } catch (err) {
      if (this.stopped) return;
      this.failures += 1;
      this.lastError = err instanceof Error ? err.message : String(err);
      const delay = retryDelay(this.failures);
      const expired = this.current !== null && this.current.expiresAt <= this.clock.now();
      this.options.log?.(
        'warn',
        `CNI plugin token: the TokenRequest or the write failed; retrying${expired ? " (the plugin's current token has expired: pod networking fails until this succeeds)" : ''}`,
        {
          kubeconfig: this.options.kubeconfigPath,
          error: this.lastError,
          attempt: this.failures,
          retryInMs: delay,
        },
      );
      this.schedule(delay);
    }
  }
}

/**
 * `tortie node run` on the kubernetes datastore with TORTIE_CNI_KUBECONFIG set (the DaemonSet sets it to
 * /etc/cni/net.d/tortie-kubeconfig): starts the refresher for ServiceAccount TORTIE_CNI_SERVICE_ACCOUNT
 * (default tortie-cni) in the agent's namespace, tokens of TORTIE_CNI_TOKEN_SECONDS (default 3600). The
 * kubeconfig names the API server and CA the agent itself uses. Null when not asked for.
 */
export async function startCniToken(
  datastore: { datastoreType: string; kubeconfig?: string; timeoutMs: number },
  env: NodeJS.ProcessEnv,
  log: (level: 'info' | 'warn', message: string, fields?: Record<string, unknown>) => void,
  clock: Clock = systemClock,
): Promise<CniTokenRefresher | null> {
  const kubeconfigPath = (env.TORTIE_CNI_KUBECONFIG ?? '').trim();
  if (datastore.datastoreType !== 'kubernetes' || kubeconfigPath === '') return null;
  const seconds = Number(env.TORTIE_CNI_TOKEN_SECONDS ?? DEFAULT_TOKEN_SECONDS);
  if (!Number.isInteger(seconds) || seconds < MIN_TOKEN_SECONDS) {
    throw new Error(
      `TORTIE_CNI_TOKEN_SECONDS="${env.TORTIE_CNI_TOKEN_SECONDS ?? ''}" is not a whole number of seconds of at least ${MIN_TOKEN_SECONDS}`,
    );
  }
  const serviceAccount = (env.TORTIE_CNI_SERVICE_ACCOUNT ?? '').trim() || DEFAULT_CNI_SERVICE_ACCOUNT;
  const [{ agentNamespace }, { kubeClient }, { readFile }] = await Promise.all([
    import('./secrets.js'),
    import('../datastore/kube-client.js'),
    import('node:fs/promises'),
  ]);
  const namespace = await agentNamespace(env);
  const cluster = kubeClient(datastore.kubeconfig, datastore.timeoutMs).kc.getCurrentCluster()!;
  const caData = cluster.caData ?? (cluster.caFile ? (await readFile(cluster.caFile)).toString('base64') : '');
  const refresher = new CniTokenRefresher({
    kubeconfigPath,
    server: cluster.server,
    caData,
    request: await kubeTokenRequester(datastore.kubeconfig, datastore.timeoutMs, namespace, serviceAccount),
    expirationSeconds: seconds,
    clock,
    log,
  });
  await refresher.start();
  return refresher;
}
