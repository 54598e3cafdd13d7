// One kind's watch on the Kubernetes API (the Datastore's `watch`): a stream from the last resourceVersion
// seen, re-opened when it ends (backing off up to 5 s), re-listed with a `sync` event on 410 Gone.

import type { Clock, TimerHandle } from '../../bgp/index.js';
import type { Kind, Resource } from '../resources/types.js';
import { describeCause, type StatusBody } from './kube-errors.js';
import { convertWatched, podToWorkloadEndpoint, type KubeMeta, type PodLike } from './kube-mapping.js';
import { DatastoreError, type ListResult, type WatchEvent } from './types.js';

/** The longest wait between attempts to re-open a watch. */
const MAX_WATCH_RETRY_MS = 5000;

/** What a watch needs of the datastore: its streams, a list for 410 Gone, error translation, time. */
export interface WatchSource {
  readonly server: string;
  readonly clock: Clock;
  /** First delay before re-opening a failed stream. */
  readonly retryMs: number;
  openStream(
    kind: Kind,
    resourceVersion: string,
    onLine: (type: string, obj: unknown) => void,
    onDone: (err: unknown) => void,
  ): Promise<AbortController>;
  list(kind: Kind): Promise<ListResult<Kind>>;
  fail(err: unknown, what: string): Error;
}

/**
 * One kind's watch: a stream from the last resourceVersion seen, re-opened when it ends, re-listed (with a
 * `sync` event) on 410 Gone. `generation` tells callbacks of an abandoned stream to stay quiet.
 * client-node's Watch hands out its AbortController only once the response headers have arrived, so a
 * stream abandoned before that is aborted the moment they do.
 */
export class KindWatch {
  private revision: string;
  private generation = 0;
  private stopped = false;
  private controller: AbortController | undefined;
  private timer: TimerHandle | undefined;
  private delayMs: number;

  constructor(
    private readonly ds: WatchSource,
    private readonly kind: Kind,
    fromRevision: string,
    private readonly onEvent: (event: WatchEvent<Kind>) => void,
  ) {
    this.revision = fromRevision;
    this.delayMs = ds.retryMs;
  }

  /**
   * Hands one event to the consumer. client-node's Watch calls us inside a try that ignores what is thrown,
   * so a consumer that throws would lose the event without a word: it gets an error event instead (the
   * agent's cache re-lists the kind on one).
   */
  private emit(event: WatchEvent<Kind>): void {
    if (this.stopped) return;
    try {
      this.onEvent(event);
    } catch (err) {
      if (event.type !== 'error')
        this.emit({
          type: 'error',
          error: new DatastoreError(
            `watch of ${this.kind} on ${this.ds.server}: a ${event.type} event could not be handled: ${describeCause(err)}`,
          ),
        });
    }
  }

  start(): void {
    if (this.stopped) return;
    const generation = ++this.generation;
    const current = (): boolean => !this.stopped && generation === this.generation;
    this.ds
      .openStream(
        this.kind,
        this.revision,
        (type, obj) => {
          if (!current()) return;
          try {
            this.onLine(type, obj);
          } catch (err) {
            this.emit({
              type: 'error',
              error: new DatastoreError(
                `watch of ${this.kind} on ${this.ds.server}: cannot read a ${type} event: ${describeCause(err)}`,
              ),
            });
          }
        },
        (err) => {
          if (!current()) return;
          this.controller = undefined;
          if (err) this.report(err);
          else this.delayMs = this.ds.retryMs; // a clean end: the server closed the stream; re-open soon.
          this.retry(() => this.start());
        },
      )
      .then((controller) => {
        if (current()) this.controller = controller;
        else controller.abort();
      })
      .catch((err: unknown) => {
        if (!current()) return;
        this.report(err);
        this.retry(() => this.start());
      });
  }

  private onLine(type: string, obj: unknown): void {
    if (type === 'ERROR') {
      const status = (obj ?? {}) as StatusBody;
      this.abandon();
      if (status.code === 410) {
        // Kubernetes 410 Gone: our resourceVersion is older than the server keeps. Re-list and start over.
        void this.relist();
        return;
      }
      this.emit({
        type: 'error',
        error: new DatastoreError(
          `watch of ${this.kind} on ${this.ds.server}: ${status.message ?? JSON.stringify(obj)}`,
        ),
      });
      this.retry(() => this.start());
      return;
    }
    const meta = (obj as { metadata?: KubeMeta } | null)?.metadata;
    const revision = meta?.resourceVersion ?? this.revision;
    this.revision = revision;
    this.delayMs = this.ds.retryMs;
    let resource: Resource | null;
    try {
      resource = convertWatched(this.kind, obj);
    } catch (err) {
      this.emit({
        type: 'error',
        error: new DatastoreError(
          `watch of ${this.kind} on ${this.ds.server}: cannot read ${meta?.name ?? 'an object'}: ${describeCause(err)}`,
        ),
      });
      return;
    }
    if (type === 'ADDED' && resource) this.emit({ type: 'added', resource, revision });
    else if (type === 'MODIFIED' && resource) this.emit({ type: 'modified', resource, revision });
    else if (type === 'DELETED' && resource) this.emit({ type: 'deleted', resource, revision });
    else if (type === 'MODIFIED' && this.kind === 'WorkloadEndpoint') {
      // A Pod that lost its endpoint (finished, or lost its IP): its WorkloadEndpoint is gone.
      const gone = podToWorkloadEndpoint({ ...(obj as PodLike), status: { podIP: '0.0.0.0', phase: 'Running' } });
      if (gone) this.emit({ type: 'deleted', resource: { ...gone, spec: { ...gone.spec, ipNetworks: [] } }, revision });
    }
  }

  private async relist(): Promise<void> {
    if (this.stopped) return;
    const generation = this.generation;
    try {
      const list = await this.ds.list(this.kind);
      if (this.stopped || generation !== this.generation) return;
      this.revision = list.revision;
      this.emit({ type: 'sync', items: list.items, revision: list.revision });
      this.start();
    } catch (err) {
      if (this.stopped || generation !== this.generation) return;
      this.report(err);
      this.retry(() => void this.relist());
    }
  }

  private report(err: unknown): void {
    const error = err instanceof DatastoreError ? err : this.ds.fail(err, `watch of ${this.kind}`);
    this.emit({ type: 'error', error });
  }

  /** Stops the current stream without stopping the watch. */
  private abandon(): void {
    this.generation++;
    this.controller?.abort();
    this.controller = undefined;
  }

  private retry(action: () => void): void {
    if (this.stopped) return;
    this.cancelTimer();
    const delay = this.delayMs;
    this.delayMs = Math.min(this.delayMs * 2, MAX_WATCH_RETRY_MS);
    this.timer = this.ds.clock.setTimeout(() => {
      this.timer = undefined;
      action();
    }, delay);
  }

  private cancelTimer(): void {
    if (this.timer) this.ds.clock.clearTimeout(this.timer);
    this.timer = undefined;
  }

  stop(): void {
    this.stopped = true;
    this.cancelTimer();
    this.abandon();
  }
}
