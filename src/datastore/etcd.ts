// The etcd v3 datastore, with Calico's key layout and JSON values, so a cluster can share etcd with Calico
// tools (calicoctl get sees what tortie wrote, and the other way round).
//
//   v3 resources  /calico/resources/v3/projectcalico.org/<plural>/<name>   (WorkloadEndpoint: <plural>/<ns>/<name>)
//                 value: the v3 object as JSON, without metadata.resourceVersion (that is the key's mod_revision)
//   IPAMBlock     /calico/ipam/v2/assignment/ipv4/block/10.244.1.0-26      value: model.AllocationBlock JSON
//   BlockAffinity /calico/ipam/v2/host/<node>/ipv4/block/10.244.1.0-26     value: {"state":…,"deleted":…}
//   IPAMHandle    /calico/ipam/v2/handle/<id>                              value: {"block":{…},"deleted":…}
//   NetworkPolicy /calico/resources/v3/projectcalico.org/kubernetesnetworkpolicies/<ns>/<name>
//                 (networking.k8s.io/v1 objects as JSON. Calico's etcd backend has no key for Kubernetes
//                 NetworkPolicies — with etcd, kube-controllers converts them to Calico policies — so this is
//                 tortie's own key, under the plural of Calico's KubernetesNetworkPolicy kind)
//   Namespace     /calico/resources/v3/projectcalico.org/namespaces/<name>   (v1 objects; tortie's own key:
//                 Calico keeps no Namespace in etcd, only the kns.<ns> Profiles kube-controllers derives)
//
// This module is the gRPC transport (package `etcd3`) and openEtcd(); the layout is ./etcd-keys.ts, what each
// call means (compare-and-swap, watches that resume and re-list) is ./etcd-store.ts, shared with the HTTP/JSON
// gateway transport (./etcd-gateway.ts) that the CNI plugin uses because loading grpc-js costs it ~200 ms.
//
// Why this is hard here: an unreachable etcd must not hang callers: every unary call carries a gRPC
// deadline, and the etcd3 client's retry/circuit-breaker policies are replaced by pass-through ones (a
// broken circuit would refuse calls for seconds after etcd came back).

import { readFile } from 'node:fs/promises';
import {
  Etcd3,
  EtcdAuthenticationFailedError,
  EtcdInvalidAuthTokenError,
  EtcdPermissionDeniedError,
  GRPCFailedPreconditionError,
  GRPCInvalidArgumentError,
  GRPCNotImplementedError,
  GRPCOutOfRangeError,
  GRPCResourceExhastedError,
  GRPCUnauthenticatedError,
  type IOptions,
  type IWatchResponse,
} from 'etcd3';
import {
  EtcdStore,
  type EtcdTransport,
  type RangeRequest,
  type RangeResponse,
  type TxnRequest,
  type TxnResponse,
  type WatchCreateRequest,
  type WatchHandlers,
  type WatchStreamHandle,
} from './etcd-store.js';
import type { Datastore } from './types.js';
import type { Clock } from '../../bgp/index.js';

export { etcdKeyOf, etcdPrefixOf } from './etcd-keys.js';

export interface EtcdOptions {
  endpoints: string[];
  caFile?: string;
  certFile?: string;
  keyFile?: string;
  /** Deadline of each call and of the connection check in openEtcd (default 5000 ms). */
  timeoutMs?: number;
  /** Time for the watch re-open backoff (default: the system clock). */
  clock?: Clock;
}

/** Errors that are etcd's answer, not a failure to reach it. */
const REFUSALS: ReadonlyArray<abstract new (...args: never[]) => Error> = [
  EtcdPermissionDeniedError,
  EtcdAuthenticationFailedError,
  EtcdInvalidAuthTokenError,
  GRPCUnauthenticatedError,
  GRPCInvalidArgumentError,
  GRPCResourceExhastedError,
  GRPCFailedPreconditionError,
  GRPCOutOfRangeError,
  GRPCNotImplementedError,
];

/** A pass-through fault policy: no retries, no circuit breaker (see the header). */
function passThroughPolicy(): NonNullable<NonNullable<IOptions['faultHandling']>['global']> {
  const noEvent = () => ({ dispose: () => undefined });
  return {
    onSuccess: noEvent,
    onFailure: noEvent,
    execute: async <T>(fn: (context: { signal: AbortSignal }) => PromiseLike<T> | T) =>
      fn({ signal: new AbortController().signal }),
  } as unknown as NonNullable<NonNullable<IOptions['faultHandling']>['global']>;
}

/** etcd's KV and Watch services through package etcd3's gRPC client. */
class GrpcTransport implements EtcdTransport {
  constructor(
    readonly client: Etcd3,
    readonly endpoints: readonly string[],
    readonly timeoutMs: number,
  ) {}

  async range(request: RangeRequest): Promise<RangeResponse> {
    const response = await this.client.kv.range(request);
    return { revision: String(response.header.revision), kvs: response.kvs };
  }

  async txn(request: TxnRequest): Promise<TxnResponse> {
    const response = await this.client.kv.txn(request);
    return { revision: String(response.header.revision), succeeded: response.succeeded, responses: response.responses };
  }

  watch(request: WatchCreateRequest, handlers: WatchHandlers): WatchStreamHandle {
    type Stream = Awaited<ReturnType<Etcd3['watchClient']['watch']>>;
    let cancelled = false;
    let broken = false;
    let stream: Stream | undefined;
    const cancel = (s: Stream): void => {
      // Our handlers ignore a cancelled stream; cancelling may emit an error.
      s.on('error', () => undefined);
      s.cancel();
    };
    const fail = (err: unknown): void => {
      if (cancelled || broken) return;
      broken = true;
      handlers.onBroken(err);
    };
    void this.client.watchClient
      .watch()
      .then((opened) => {
        if (cancelled) {
          cancel(opened);
          return;
        }
        stream = opened;
        opened.on('data', (response: IWatchResponse) => {
          if (!cancelled && !broken) handlers.onResponse(response);
        });
        opened.on('error', (err: Error) => fail(err));
        opened.on('end', () => fail(new Error('watch stream ended')));
        opened.write({ create_request: request });
      })
      .catch((err: unknown) => fail(err));
    return {
      cancel: () => {
        if (cancelled) return;
        cancelled = true;
        if (stream) cancel(stream);
      },
    };
  }

  isRefusal(error: unknown): boolean {
    return REFUSALS.some((type) => error instanceof type);
  }

  close(): void {
    this.client.close();
  }
}

/**
 * Connects to etcd and checks it answers within `timeoutMs` (default 5 s); rejects with
 * DatastoreUnavailableError naming the endpoints when it does not.
 */
export async function openEtcd(options: EtcdOptions): Promise<Datastore> {
  if (options.endpoints.length === 0)
    throw new Error('etcd endpoints: none given (expected e.g. ["http://127.0.0.1:2379"])');
  const timeoutMs = options.timeoutMs ?? 5000;
  const credentials = options.caFile
    ? {
        rootCertificate: await readFile(options.caFile),
        ...(options.keyFile ? { privateKey: await readFile(options.keyFile) } : {}),
        ...(options.certFile ? { certChain: await readFile(options.certFile) } : {}),
      }
    : undefined;
  const client = new Etcd3({
    hosts: options.endpoints,
    ...(credentials ? { credentials } : {}),
    defaultCallOptions: (context) => (context.isStream ? {} : { deadline: Date.now() + timeoutMs }),
    faultHandling: { host: () => passThroughPolicy(), global: passThroughPolicy() },
  });
  const ds = new EtcdStore(
    new GrpcTransport(client, options.endpoints, timeoutMs),
    options.clock !== undefined ? { clock: options.clock } : {},
  );
  try {
    await ds.check();
  } catch (err) {
    client.close();
    throw err;
  }
  return ds;
}
