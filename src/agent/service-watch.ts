// The Kubernetes Services and EndpointSlices (discovery.k8s.io/v1) the node agent advertises service
// routes from (./service-routes.ts), kept in memory: list, then watch from the list's resourceVersion,
// as the datastore's watches do. On the kubernetes datastore they come through the same kubeconfig; on etcd
// only when a kubeconfig is given (Calico's confd does the same), else service /32s are not in effect.
//
// Why this is hard: the same as any Kubernetes watch. A stream may end at any moment (re-open from the
// last resourceVersion seen), may answer 410 Gone when that version is too old (re-list: the new list
// replaces the whole set), and the server may be away (retry, backing off up to 5 s, and say so). Events
// of an abandoned stream must stay quiet, so each stream carries a generation.

import { CoreV1Api, DiscoveryV1Api, Watch } from '@kubernetes/client-node';
import type { Clock, TimerHandle } from '../../bgp/index.js';
import { kubeClient } from '../datastore/kube-client.js';
import type { EndpointSliceObject, ServiceObject } from './service-routes.js';

/** Objects per list request (larger collections are read in pages of one consistent snapshot). */
const PAGE_SIZE = 500;
/** A bound on pages of one list: a server that never stops sending `continue` is an error. */
const MAX_PAGES = 10_000;
/** The longest wait between attempts to list or re-open a watch. */
const MAX_RETRY_MS = 5000;

type Meta = { name?: string; namespace?: string; resourceVersion?: string };
type KubeItem = { metadata?: Meta };

export interface ListPage<T> {
  items: T[];
  revision: string | undefined;
  next: string | undefined;
}

/** What the watch needs of the API server (tests may pass their own). */
export interface ServiceApi {
  /** The API server's URL, for messages. */
  readonly server: string;
  listServices(page: { limit: number; _continue?: string }): Promise<ListPage<ServiceObject>>;
  listEndpointSlices(page: { limit: number; _continue?: string }): Promise<ListPage<EndpointSliceObject>>;
  /** A watch stream on `path` from `resourceVersion`: one call of onLine per event, onDone when it ends. */
  watch(
    path: string,
    resourceVersion: string,
    onLine: (type: string, obj: unknown) => void,
    onDone: (err: unknown) => void,
  ): Promise<AbortController>;
}

export const SERVICES_PATH = '/api/v1/services';
export const ENDPOINT_SLICES_PATH = '/apis/discovery.k8s.io/v1/endpointslices';

/** The API of the kubeconfig's cluster (`kubeconfig` undefined: the client's defaults), a deadline per request. */
export function kubeServiceApi(kubeconfig: string | undefined, timeoutMs: number): ServiceApi {
  const { kc, server, configuration } = kubeClient(kubeconfig, timeoutMs);
  const core = new CoreV1Api(configuration);
  const discovery = new DiscoveryV1Api(configuration);
  const watcher = new Watch(kc);
  return {
    server,
    listServices: async (page) => {
      const r = await core.listServiceForAllNamespaces(page);
      return { items: r.items as ServiceObject[], revision: r.metadata?.resourceVersion, next: r.metadata?._continue };
    },
    listEndpointSlices: async (page) => {
      const r = await discovery.listEndpointSliceForAllNamespaces(page);
      return {
        items: r.items as EndpointSliceObject[],
        revision: r.metadata?.resourceVersion,
        next: r.metadata?._continue,
      };
    },
    watch: (path, resourceVersion, onLine, onDone) =>
      watcher.watch(
        path,
        { allowWatchBookmarks: false, ...(resourceVersion !== '' ? { resourceVersion } : {}) },
        onLine,
        onDone,
      ),
  };
}

function describeError(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  const code = (err as { code?: unknown }).code;
  if (err.name === 'AbortError' || err.name === 'TimeoutError') return 'no answer in time';
  if (typeof code === 'number')
    return `the API server answered ${code}${err.message ? `: ${err.message.split('\n')[0]}` : ''}`;
  return typeof code === 'string' ? `${code}: ${err.message}` : err.message;
}

function keyOf(item: KubeItem): string {
  return `${item.metadata?.namespace ?? ''}/${item.metadata?.name ?? ''}`;
}

interface CollectionOptions<T> {
  what: string;
  path: string;
  list: (page: { limit: number; _continue?: string }) => Promise<ListPage<T>>;
  api: ServiceApi;
  clock: Clock;
  retryMs: number;
  onChange: () => void;
  onError: (what: string, message: string) => void;
}

/** One collection: list, watch from the list's version, re-open on end, re-list on 410 Gone. */
class Collection<T extends KubeItem> {
  items = new Map<string, T>();
  synced = false;
  private revision = '';
  private generation = 0;
  private stopped = false;
  private controller: AbortController | undefined;
  private timer: TimerHandle | undefined;
  private delayMs: number;

  constructor(private readonly o: CollectionOptions<T>) {
    this.delayMs = o.retryMs;
  }

  start(): void {
    void this.relist();
  }

  stop(): void {
    this.stopped = true;
    this.abandon();
    if (this.timer !== undefined) this.o.clock.clearTimeout(this.timer);
    this.timer = undefined;
  }

  private async relist(): Promise<void> {
    if (this.stopped) return;
    this.abandon();
    const generation = this.generation;
    try {
      const items: T[] = [];
      let revision: string | undefined;
      let next: string | undefined;
      for (let pages = 0; ; pages++) {
        if (pages === MAX_PAGES) throw new Error(`the list did not end after ${MAX_PAGES} pages`);
        const page = await this.o.list({ limit: PAGE_SIZE, ...(next !== undefined ? { _continue: next } : {}) });
        items.push(...page.items);
        revision ??= page.revision;
        next = page.next || undefined;
        if (next === undefined) break;
      }
      if (this.stopped || generation !== this.generation) return;
      this.items = new Map(items.map((item) => [keyOf(item), item]));
      this.revision = revision ?? '';
      this.synced = true;
      this.delayMs = this.o.retryMs;
      this.o.onChange();
      this.open();
    } catch (err) {
      if (this.stopped || generation !== this.generation) return;
      this.o.onError(this.o.what, `listing ${this.o.what} on ${this.o.api.server}: ${describeError(err)}`);
      this.retry(() => void this.relist());
    }
  }

  private open(): void {
    if (this.stopped) return;
    const generation = ++this.generation;
    const current = (): boolean => !this.stopped && generation === this.generation;
    this.o.api
      .watch(
        this.o.path,
        this.revision,
        (type, obj) => {
          if (current()) this.onLine(type, obj);
        },
        (err) => {
          if (!current()) return;
          this.controller = undefined;
          if (err)
            this.o.onError(this.o.what, `watch of ${this.o.what} on ${this.o.api.server}: ${describeError(err)}`);
          else this.delayMs = this.o.retryMs; // the server ended the stream: re-open from where we are
          this.retry(() => this.open());
        },
      )
      .then((controller) => {
        if (current()) this.controller = controller;
        else controller.abort();
      })
      .catch((err: unknown) => {
        if (!current()) return;
        this.o.onError(this.o.what, `watch of ${this.o.what} on ${this.o.api.server}: ${describeError(err)}`);
        this.retry(() => this.open());
      });
  }

  private onLine(type: string, obj: unknown): void {
    if (type === 'ERROR') {
      const status = (obj ?? {}) as { code?: number; message?: string };
      this.abandon();
      if (status.code === 410) {
        // 410 Gone: our resourceVersion is older than the server keeps. Re-list; the list replaces the set.
        void this.relist();
        return;
      }
      this.o.onError(
        this.o.what,
        `watch of ${this.o.what} on ${this.o.api.server}: ${status.message ?? JSON.stringify(obj)}`,
      );
      this.retry(() => this.open());
      return;
    }
    const item = obj as T | null;
    if (item === null || typeof item !== 'object') return;
    const revision = item.metadata?.resourceVersion;
    if (revision !== undefined && revision !== '') this.revision = revision;
    this.delayMs = this.o.retryMs;
    if (type === 'ADDED' || type === 'MODIFIED') this.items.set(keyOf(item), item);
    else if (type === 'DELETED') this.items.delete(keyOf(item));
    else return; // BOOKMARK: only the version moves
    this.o.onChange();
  }

  /** Stops the current stream without stopping the collection. */
  private abandon(): void {
    this.generation++;
    this.controller?.abort();
    this.controller = undefined;
  }

  private retry(action: () => void): void {
    if (this.stopped) return;
    if (this.timer !== undefined) this.o.clock.clearTimeout(this.timer);
    const delay = this.delayMs;
    this.delayMs = Math.min(this.delayMs * 2, MAX_RETRY_MS);
    this.timer = this.o.clock.setTimeout(() => {
      this.timer = undefined;
      action();
    }, delay);
    (this.timer as { unref?: () => void }).unref?.();
  }
}

export interface ServiceWatchOptions {
  clock: Clock;
  /** A change in either collection (the agent re-plans, coalesced). */
  onChange: () => void;
  /** A list or watch failed (it is retried by itself). */
  onError?: (message: string) => void;
  /** First retry delay, ms (default 200, doubling up to 5 s). */
  retryMs?: number;
}

/** Services and EndpointSlices, listed and watched until stop(). */
export class ServiceWatch {
  private readonly services: Collection<ServiceObject>;
  private readonly slices: Collection<EndpointSliceObject>;
  private readonly errors = new Map<string, string>();

  constructor(api: ServiceApi, options: ServiceWatchOptions) {
    const shared = {
      api,
      clock: options.clock,
      retryMs: options.retryMs ?? 200,
      onChange: () => options.onChange(),
      onError: (what: string, message: string) => {
        this.errors.set(what, message);
        options.onError?.(message);
      },
    };
    const changed = (what: string) => () => {
      this.errors.delete(what);
      options.onChange();
    };
    this.services = new Collection<ServiceObject>({
      ...shared,
      what: 'services',
      path: SERVICES_PATH,
      list: (page) => api.listServices(page),
      onChange: changed('services'),
    });
    this.slices = new Collection<EndpointSliceObject>({
      ...shared,
      what: 'endpointslices',
      path: ENDPOINT_SLICES_PATH,
      list: (page) => api.listEndpointSlices(page),
      onChange: changed('endpointslices'),
    });
  }

  start(): void {
    this.services.start();
    this.slices.start();
  }

  stop(): void {
    this.services.stop();
    this.slices.stop();
  }

  /** Both collections have been listed once. */
  get synced(): boolean {
    return this.services.synced && this.slices.synced;
  }

  /** The latest failure of a collection not yet recovered, or undefined. */
  get lastError(): string | undefined {
    return [...this.errors.values()][0];
  }

  snapshot(): { services: ServiceObject[]; endpointSlices: EndpointSliceObject[] } {
    return { services: [...this.services.items.values()], endpointSlices: [...this.slices.items.values()] };
  }
}
