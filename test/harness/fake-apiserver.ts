// A fake Kubernetes API server for testing the kubernetes datastore backend with the real
// @kubernetes/client-node client. It serves only what the backend calls, but serves it honestly:
// - cluster-scoped Calico CRD objects under /apis/crd.projectcalico.org/v1/<plural>[/<name>],
//   core Nodes (/api/v1/nodes), Secrets (/api/v1/namespaces/<ns>/secrets[/<name>]), Pods (/api/v1/pods, /api/v1/namespaces/<ns>/pods[/<name>]), Namespaces
//   (/api/v1/namespaces[/<name>]) and NetworkPolicies (/apis/networking.k8s.io/v1/networkpolicies,
//   /apis/networking.k8s.io/v1/namespaces/<ns>/networkpolicies[/<name>]), Services (/api/v1/services,
//   /api/v1/namespaces/<ns>/services[/<name>]) and EndpointSlices (/apis/discovery.k8s.io/v1/endpointslices,
//   /apis/discovery.k8s.io/v1/namespaces/<ns>/endpointslices[/<name>]);
// - one global resourceVersion counter, bumped by every write; lists carry it in metadata.resourceVersion,
//   and `limit` + `continue` serve a list in pages of one consistent snapshot;
// - POST of an existing name → 409 AlreadyExists; PUT with a stale metadata.resourceVersion → 409 Conflict;
//   PUT of a custom object without metadata.resourceVersion → 422 Invalid (custom resources do not allow
//   unconditional update); DELETE with a stale preconditions.resourceVersion → 409 Conflict; missing → 404;
//   invalid names (not a DNS-1123 subdomain) → 422; PATCH takes a JSON merge patch (RFC 7386) whose
//   metadata.resourceVersion, when given, must be the current one (409 otherwise). Errors are Kubernetes
//   `Status` objects.
// - `?watch=true&resourceVersion=N` streams JSON lines (ADDED/MODIFIED/DELETED) for every change after N,
//   then live ones; without N (or N=0) it first sends ADDED for every current object. When N is older than
//   the kept history it sends one ERROR event carrying a Status with code 410 (Expired) and ends the stream,
//   as kube-apiserver does. The history window is configurable and `compact()` drops it all, so tests can
//   force 410 Gone; `dropWatches()` closes every open watch stream (cleanly or by destroying the socket).
//
// Every request is recorded as an RBAC-style call (verb + resource, and who made it), so tests can compare
// what the backend does with the RBAC rules it declares.
//
// Authentication and RBAC, as kube-apiserver does them for ServiceAccounts: the token of the kubeconfig
// this server writes (`fake-token`) is an administrator, allowed everything. TokenRequest
// (POST /api/v1/namespaces/<ns>/serviceaccounts/<sa>/token) mints a bound token for a ServiceAccount
// declared with `serviceAccount()`, with status.expirationTimestamp = now + spec.expirationSeconds (at
// least 600 s, as the API server requires); a request with that token acts as
// system:serviceaccount:<ns>:<sa> until it expires (then 401), and is allowed only what `setGrants()`
// gave that ServiceAccount (403 Forbidden otherwise; `grantsFromManifests()` reads them from Roles,
// ClusterRoles and their bindings). An unknown token is 401. PATCH of pods/<name>/status takes a merge
// patch of metadata and status (the spec is kept), as the status subresource does.
//
// Why this is hard: watch semantics. A real API server's watch cache replays exactly the events after N,
// in order, once, and refuses (410) when it can no longer do so; a fake that silently replays "whatever it
// has" would let a backend that loses events pass. Here history is an explicit list with an explicit
// compaction point.

import { randomUUID } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export type KubeObject = {
  apiVersion?: string;
  kind?: string;
  metadata: {
    name: string;
    namespace?: string;
    resourceVersion?: string;
    uid?: string;
    creationTimestamp?: string;
    [key: string]: unknown;
  };
  [key: string]: unknown;
};

export interface ApiCall {
  /** RBAC verb: get, list, watch, create, update, delete, patch. */
  verb: string;
  /** RBAC resource: `nodes`, `pods`, or `<plural>.crd.projectcalico.org`. */
  resource: string;
  /** The HTTP status answered (200 for a watch stream, even one that then reports 410). */
  status?: number;
  /** Who: `admin` (the kubeconfig's fake-token) or `system:serviceaccount:<ns>:<name>`. */
  user?: string;
}

/** One RBAC permission: `verb` on `resource` (`pods`, `pods/status`, `<plural>.<group>`), optionally limited. */
export interface Grant {
  verb: string;
  resource: string;
  /** Only in this namespace (a Role); absent: every namespace and cluster-scoped objects (a ClusterRole). */
  namespace?: string;
  resourceNames?: string[];
}

type RbacRule = { apiGroups?: string[]; resources?: string[]; verbs?: string[]; resourceNames?: string[] };
type RbacDoc = {
  kind?: string;
  metadata?: { name?: string; namespace?: string };
  rules?: RbacRule[];
  roleRef?: { kind?: string; name?: string };
  subjects?: Array<{ kind?: string; name?: string; namespace?: string }>;
};

/** `system:serviceaccount:<ns>:<name>` → what its RoleBindings and ClusterRoleBindings in `docs` grant. */
export function grantsFromManifests(docs: readonly RbacDoc[]): Map<string, Grant[]> {
  const out = new Map<string, Grant[]>();
  for (const binding of docs.filter((d) => d.kind === 'RoleBinding' || d.kind === 'ClusterRoleBinding')) {
    const role = docs.find(
      (d) =>
        d.kind === binding.roleRef?.kind &&
        d.metadata?.name === binding.roleRef?.name &&
        (d.kind === 'ClusterRole' || d.metadata?.namespace === binding.metadata?.namespace),
    );
    if (!role)
      throw new Error(
        `${binding.kind} ${binding.metadata?.name ?? ''}: no ${binding.roleRef?.kind ?? ''} ${binding.roleRef?.name ?? ''}`,
      );
    const namespace = binding.kind === 'RoleBinding' ? binding.metadata?.namespace : undefined;
    const grants = (role.rules ?? []).flatMap((r) =>
      (r.apiGroups ?? []).flatMap((g) =>
        (r.resources ?? []).flatMap((res) =>
          (r.verbs ?? []).map((verb): Grant => ({
            verb,
            resource: g === '' ? res : `${res.split('/')[0]!}.${g}${res.includes('/') ? `/${res.split('/')[1]!}` : ''}`,
            ...(namespace ? { namespace } : {}),
            ...(r.resourceNames ? { resourceNames: r.resourceNames } : {}),
          })),
        ),
      ),
    );
    for (const s of binding.subjects ?? []) {
      if (s.kind !== 'ServiceAccount') continue;
      const user = `system:serviceaccount:${s.namespace ?? binding.metadata?.namespace ?? ''}:${s.name ?? ''}`;
      out.set(user, [...(out.get(user) ?? []), ...grants]);
    }
  }
  return out;
}

export interface FakeApiServer {
  /** http://127.0.0.1:<port> */
  readonly url: string;
  /** A kubeconfig file whose current context points at this server. */
  readonly kubeconfigPath: string;
  /** Every request served, in order. */
  readonly calls: ApiCall[];
  /** Keep only the last `events` changes for watch replay (older resourceVersions get 410 Gone). */
  setHistoryWindow(events: number): void;
  /** Forget all history: every watch from an older resourceVersion now gets 410 Gone. */
  compact(): void;
  /** Close every open watch stream: `abrupt` destroys the sockets instead of ending the responses. */
  dropWatches(options?: { abrupt?: boolean }): number;
  /** An outage: while down, every open connection is reset and new ones are reset on arrival. */
  setDown(down: boolean): void;
  /** Number of watch streams open right now. */
  openWatches(): number;
  /** The current global resourceVersion. */
  revision(): number;
  /** Create or replace an object directly (as a kubelet or the scheduler would); returns what is stored. */
  put(path: CollectionPath, object: KubeObject): KubeObject;
  /** The stored object, as the API server keeps it (not recorded as a call). */
  object(path: CollectionPath, name: string, namespace?: string): KubeObject | undefined;
  /** Delete an object directly; returns whether it existed. */
  remove(path: CollectionPath, name: string, namespace?: string): boolean;
  /** Declares a ServiceAccount (TokenRequest answers 404 for any other). */
  serviceAccount(namespace: string, name: string): void;
  /** What each user (`system:serviceaccount:<ns>:<name>`) may do; replaces earlier grants. */
  setGrants(grants: Map<string, Grant[]>): void;
  /** Mints a token as TokenRequest would (not recorded as a call). */
  issueToken(namespace: string, name: string, expirationSeconds?: number): { token: string; expiresAt: number };
  /** A kubeconfig file for this server with `token` as its credential. */
  kubeconfigWithToken(token: string): Promise<string>;
  stop(): Promise<void>;
}

/** Which collection: a Calico CRD plural, or the core `nodes` / `pods`. */
export type CollectionPath = { crd: string } | { core: CoreCollection };

type CoreCollection = 'nodes' | 'pods' | 'namespaces' | 'networkpolicies' | 'services' | 'endpointslices' | 'secrets';

const CRD_GROUP = 'crd.projectcalico.org';
const CRD_PLURALS: Readonly<Record<string, string>> = {
  ippools: 'IPPool',
  bgpconfigurations: 'BGPConfiguration',
  bgppeers: 'BGPPeer',
  bgpfilters: 'BGPFilter',
  ipamblocks: 'IPAMBlock',
  blockaffinities: 'BlockAffinity',
  ipamhandles: 'IPAMHandle',
};
const CORE: Readonly<Record<CoreCollection, { kind: string; namespaced: boolean; group?: string }>> = {
  nodes: { kind: 'Node', namespaced: false },
  secrets: { kind: 'Secret', namespaced: true },
  pods: { kind: 'Pod', namespaced: true },
  namespaces: { kind: 'Namespace', namespaced: false },
  networkpolicies: { kind: 'NetworkPolicy', namespaced: true, group: 'networking.k8s.io' },
  services: { kind: 'Service', namespaced: true },
  endpointslices: { kind: 'EndpointSlice', namespaced: true, group: 'discovery.k8s.io' },
};

/** DNS-1123 subdomain, as Kubernetes requires for object names. */
const NAME_RE = /^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/;

interface Collection {
  /** Store key prefix, e.g. `ippools.crd.projectcalico.org` or `pods`. */
  resource: string;
  apiVersion: string;
  kind: string;
  namespaced: boolean;
  crd: boolean;
}

interface Target {
  collection: Collection;
  /** Namespace from the URL (pods only); undefined = all namespaces. */
  namespace?: string;
  name?: string;
}

interface HistoryEvent {
  rv: number;
  resource: string;
  namespace?: string;
  type: 'ADDED' | 'MODIFIED' | 'DELETED';
  object: KubeObject;
}

interface Snapshot {
  resource: string;
  rv: string;
  items: KubeObject[];
}

interface OpenWatch {
  target: Target;
  res: ServerResponse;
  socket: Socket;
}

function collectionOf(path: CollectionPath): Collection {
  if ('crd' in path) {
    const kind = CRD_PLURALS[path.crd];
    if (!kind)
      throw new Error(`fake-apiserver: CRD plural "${path.crd}" is not one of ${Object.keys(CRD_PLURALS).join(', ')}`);
    return { resource: `${path.crd}.${CRD_GROUP}`, apiVersion: `${CRD_GROUP}/v1`, kind, namespaced: false, crd: true };
  }
  const core = CORE[path.core];
  const resource = core.group ? `${path.core}.${core.group}` : path.core;
  return {
    resource,
    apiVersion: core.group ? `${core.group}/v1` : 'v1',
    kind: core.kind,
    namespaced: core.namespaced,
    crd: false,
  };
}

/** Parses a request path into the collection, namespace and name it addresses; null when not served. */
function route(pathname: string): Target | null {
  const parts = pathname
    .split('/')
    .filter((p) => p !== '')
    .map(decodeURIComponent);
  if (
    parts[0] === 'apis' &&
    parts[1] === CRD_GROUP &&
    parts[2] === 'v1' &&
    parts[3] &&
    CRD_PLURALS[parts[3]] &&
    parts.length <= 5
  ) {
    return { collection: collectionOf({ crd: parts[3] }), ...(parts[4] ? { name: parts[4] } : {}) };
  }
  if (parts[0] === 'api' && parts[1] === 'v1') {
    if (parts[2] === 'nodes' && parts.length <= 4)
      return { collection: collectionOf({ core: 'nodes' }), ...(parts[3] ? { name: parts[3] } : {}) };
    if (parts[2] === 'pods' && parts.length === 3) return { collection: collectionOf({ core: 'pods' }) };
    if (parts[2] === 'services' && parts.length === 3) return { collection: collectionOf({ core: 'services' }) };
    for (const core of ['pods', 'services'] as const) {
      if (parts[2] === 'namespaces' && parts[3] && parts[4] === core && parts.length <= 6) {
        return { collection: collectionOf({ core }), namespace: parts[3], ...(parts[5] ? { name: parts[5] } : {}) };
      }
    }
    if (parts[2] === 'namespaces' && parts[3] && parts[4] === 'secrets' && parts.length <= 6) {
      return {
        collection: collectionOf({ core: 'secrets' }),
        namespace: parts[3],
        ...(parts[5] ? { name: parts[5] } : {}),
      };
    }
    if (parts[2] === 'namespaces' && parts.length <= 4)
      return { collection: collectionOf({ core: 'namespaces' }), ...(parts[3] ? { name: parts[3] } : {}) };
  }
  if (parts[0] === 'apis' && parts[1] === 'discovery.k8s.io' && parts[2] === 'v1') {
    if (parts[3] === 'endpointslices' && parts.length === 4)
      return { collection: collectionOf({ core: 'endpointslices' }) };
    if (parts[3] === 'namespaces' && parts[4] && parts[5] === 'endpointslices' && parts.length <= 7) {
      return {
        collection: collectionOf({ core: 'endpointslices' }),
        namespace: parts[4],
        ...(parts[6] ? { name: parts[6] } : {}),
      };
    }
  }
  if (parts[0] === 'apis' && parts[1] === 'networking.k8s.io' && parts[2] === 'v1') {
    if (parts[3] === 'networkpolicies' && parts.length === 4)
      return { collection: collectionOf({ core: 'networkpolicies' }) };
    if (parts[3] === 'namespaces' && parts[4] && parts[5] === 'networkpolicies' && parts.length <= 7) {
      return {
        collection: collectionOf({ core: 'networkpolicies' }),
        namespace: parts[4],
        ...(parts[6] ? { name: parts[6] } : {}),
      };
    }
  }
  return null;
}

function statusBody(
  code: number,
  reason: string,
  message: string,
  details?: Record<string, unknown>,
): Record<string, unknown> {
  return {
    kind: 'Status',
    apiVersion: 'v1',
    metadata: {},
    status: 'Failure',
    message,
    reason,
    ...(details ? { details } : {}),
    code,
  };
}

class HttpStatus extends Error {
  constructor(
    readonly code: number,
    readonly reason: string,
    message: string,
    readonly details?: Record<string, unknown>,
  ) {
    super(message);
  }
}

function storeKey(resource: string, namespace: string | undefined, name: string): string {
  return `${resource}|${namespace ?? ''}|${name}`;
}

function clone<T>(value: T): T {
  return JSON.parse(JSON.stringify(value)) as T;
}

/** RFC 7386 §2: objects merge key by key, null removes a key, anything else replaces. */
function mergePatch(target: unknown, patch: unknown): unknown {
  if (patch === null || typeof patch !== 'object' || Array.isArray(patch)) return patch;
  const out: Record<string, unknown> =
    target !== null && typeof target === 'object' && !Array.isArray(target)
      ? { ...(target as Record<string, unknown>) }
      : {};
  for (const [k, v] of Object.entries(patch as Record<string, unknown>)) {
    if (v === null) delete out[k];
    else out[k] = mergePatch(out[k], v);
  }
  return out;
}

async function readBody(req: IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  const text = Buffer.concat(chunks).toString('utf8');
  if (text.trim() === '') return undefined;
  try {
    return JSON.parse(text);
  } catch {
    throw new HttpStatus(400, 'BadRequest', `the request body is not JSON: ${text.slice(0, 80)}`);
  }
}

/** The smallest expirationSeconds kube-apiserver accepts in a TokenRequest. */
const MIN_TOKEN_SECONDS = 600;

export async function startFakeApiServer(
  options: { historyWindow?: number; now?: () => number } = {},
): Promise<FakeApiServer> {
  const now = options.now ?? Date.now;
  const serviceAccounts = new Set<string>();
  const tokens = new Map<string, { user: string; expiresAt: number }>();
  let grants = new Map<string, Grant[]>();
  const objects = new Map<string, KubeObject>();
  let history: HistoryEvent[] = [];
  let window = options.historyWindow ?? 1000;
  /** The highest resourceVersion whose event is no longer kept: watches from below it get 410. */
  let compactedThrough = 0;
  let rv = 1;
  const watches = new Set<OpenWatch>();
  /** Lists being read page by page, by continue-token id. */
  const snapshots = new Map<string, Snapshot>();
  const calls: ApiCall[] = [];
  const sockets = new Set<Socket>();

  function trim(): void {
    while (history.length > window) {
      const dropped = history.shift();
      if (dropped) compactedThrough = dropped.rv;
    }
  }

  function matches(target: Target, resource: string, namespace: string | undefined): boolean {
    return (
      target.collection.resource === resource && (target.namespace === undefined || target.namespace === namespace)
    );
  }

  function record(type: HistoryEvent['type'], collection: Collection, object: KubeObject): void {
    const event: HistoryEvent = { rv, resource: collection.resource, type, object: clone(object) };
    if (object.metadata.namespace !== undefined) event.namespace = object.metadata.namespace;
    history.push(event);
    trim();
    for (const w of watches) {
      if (matches(w.target, event.resource, event.namespace))
        w.res.write(`${JSON.stringify({ type, object: event.object })}\n`);
    }
  }

  function stamp(collection: Collection, object: KubeObject, previous?: KubeObject): KubeObject {
    const stored = clone(object);
    stored.apiVersion = collection.apiVersion;
    stored.kind = collection.kind;
    rv += 1;
    stored.metadata.resourceVersion = String(rv);
    stored.metadata.uid = previous?.metadata.uid ?? randomUUID();
    stored.metadata.creationTimestamp =
      previous?.metadata.creationTimestamp ?? new Date().toISOString().replace(/\.\d+Z$/, 'Z');
    return stored;
  }

  function notFound(collection: Collection, name: string): HttpStatus {
    const [plural] = collection.resource.split('.');
    return new HttpStatus(404, 'NotFound', `${collection.resource} "${name}" not found`, {
      name,
      kind: plural,
      ...(collection.crd ? { group: CRD_GROUP } : {}),
    });
  }

  function conflict(collection: Collection, name: string): HttpStatus {
    return new HttpStatus(
      409,
      'Conflict',
      `Operation cannot be fulfilled on ${collection.resource} "${name}": the object has been modified; please apply your changes to the latest version and try again`,
      { name, kind: collection.resource.split('.')[0] },
    );
  }

  function checkName(collection: Collection, name: unknown): string {
    if (typeof name !== 'string' || name === '') {
      throw new HttpStatus(
        422,
        'Invalid',
        `${collection.kind} "" is invalid: metadata.name: Required value: name or generateName is required`,
      );
    }
    if (name.length > 253 || !NAME_RE.test(name)) {
      throw new HttpStatus(
        422,
        'Invalid',
        `${collection.kind} "${name}" is invalid: metadata.name: Invalid value: "${name}": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character`,
      );
    }
    return name;
  }

  function listObjects(target: Target): KubeObject[] {
    const out: KubeObject[] = [];
    for (const [key, obj] of objects) {
      if (
        key.startsWith(`${target.collection.resource}|`) &&
        (target.namespace === undefined || obj.metadata.namespace === target.namespace)
      )
        out.push(clone(obj));
    }
    return out.sort((a, b) =>
      storeKey('', a.metadata.namespace, a.metadata.name).localeCompare(
        storeKey('', b.metadata.namespace, b.metadata.name),
      ),
    );
  }

  /**
   * A list, or one page of it with `limit`: every page of one list is the snapshot taken for its first page
   * (the same resourceVersion), as kube-apiserver serves `continue`.
   */
  function listPage(target: Target, params: URLSearchParams): Record<string, unknown> {
    const { collection } = target;
    const token = params.get('continue');
    let snapshot: Snapshot;
    let offset = 0;
    if (token) {
      const [id, at] = token.split(':');
      const found = snapshots.get(id ?? '');
      if (!found || found.resource !== collection.resource)
        throw new HttpStatus(
          410,
          'Expired',
          'The provided continue parameter is too old to display a consistent list result.',
        );
      snapshot = found;
      offset = Number(at);
    } else {
      snapshot = { resource: collection.resource, rv: String(rv), items: listObjects(target) };
    }
    const limit = Number(params.get('limit') ?? '0');
    const items = limit > 0 ? snapshot.items.slice(offset, offset + limit) : snapshot.items.slice(offset);
    const metadata: Record<string, unknown> = { resourceVersion: snapshot.rv };
    if (limit > 0 && offset + limit < snapshot.items.length) {
      const id = token?.split(':')[0] ?? randomUUID();
      snapshots.set(id, snapshot);
      metadata.continue = `${id}:${offset + limit}`;
      metadata.remainingItemCount = snapshot.items.length - offset - limit;
    } else if (token) {
      snapshots.delete(token.split(':')[0] ?? '');
    }
    return { apiVersion: collection.apiVersion, kind: `${collection.kind}List`, metadata, items };
  }

  function create(target: Target, body: KubeObject): KubeObject {
    const { collection } = target;
    const name = checkName(collection, body?.metadata?.name);
    const namespace = collection.namespaced ? (target.namespace ?? body.metadata.namespace) : undefined;
    if (collection.namespaced && !namespace)
      throw new HttpStatus(400, 'BadRequest', `${collection.kind} "${name}": a namespace is required`);
    const key = storeKey(collection.resource, namespace, name);
    if (objects.has(key)) {
      throw new HttpStatus(409, 'AlreadyExists', `${collection.resource} "${name}" already exists`, {
        name,
        kind: collection.resource.split('.')[0],
      });
    }
    const input = clone(body);
    delete input.metadata.resourceVersion;
    if (namespace !== undefined) input.metadata.namespace = namespace;
    const stored = stamp(collection, input);
    objects.set(key, stored);
    record('ADDED', collection, stored);
    return clone(stored);
  }

  function replace(target: Target, name: string, body: KubeObject): KubeObject {
    const { collection } = target;
    if (body?.metadata?.name !== name) {
      throw new HttpStatus(
        400,
        'BadRequest',
        `the name of the object (${String(body?.metadata?.name)}) does not match the name on the URL (${name})`,
      );
    }
    const key = storeKey(collection.resource, target.namespace, name);
    const current = objects.get(key);
    if (!current) throw notFound(collection, name);
    const wanted = body.metadata.resourceVersion;
    if (wanted === undefined || wanted === '') {
      // Custom resources refuse unconditional update; core Nodes and Pods allow it.
      if (collection.crd) {
        throw new HttpStatus(
          422,
          'Invalid',
          `${collection.kind}.${CRD_GROUP} "${name}" is invalid: metadata.resourceVersion: Invalid value: 0x0: must be specified for an update`,
        );
      }
    } else if (wanted !== current.metadata.resourceVersion) {
      throw conflict(collection, name);
    }
    const input = clone(body);
    if (target.namespace !== undefined) input.metadata.namespace = target.namespace;
    const stored = stamp(collection, input, current);
    objects.set(key, stored);
    record('MODIFIED', collection, stored);
    return clone(stored);
  }

  /** PATCH with a JSON merge patch (RFC 7386); a metadata.resourceVersion in the patch is a precondition. */
  function patch(target: Target, name: string, contentType: string | undefined, body: unknown): KubeObject {
    const { collection } = target;
    if ((contentType ?? '').split(';')[0]?.trim() !== 'application/merge-patch+json') {
      throw new HttpStatus(
        415,
        'UnsupportedMediaType',
        `the body of the request was in an unknown format - accepted media types by this fake include: application/merge-patch+json (got ${String(contentType)})`,
      );
    }
    const key = storeKey(collection.resource, target.namespace, name);
    const current = objects.get(key);
    if (!current) throw notFound(collection, name);
    const merged = mergePatch(clone(current), body) as KubeObject;
    if (merged?.metadata?.name !== name)
      throw new HttpStatus(400, 'BadRequest', `a patch may not change metadata.name (${name})`);
    if (merged.metadata.resourceVersion !== current.metadata.resourceVersion) throw conflict(collection, name);
    const stored = stamp(collection, merged, current);
    objects.set(key, stored);
    record('MODIFIED', collection, stored);
    return clone(stored);
  }

  function remove(target: Target, name: string, body: unknown): KubeObject {
    const { collection } = target;
    const key = storeKey(collection.resource, target.namespace, name);
    const current = objects.get(key);
    if (!current) throw notFound(collection, name);
    const preconditions = (body as { preconditions?: { resourceVersion?: string; uid?: string } } | undefined)
      ?.preconditions;
    if (
      preconditions?.resourceVersion !== undefined &&
      preconditions.resourceVersion !== current.metadata.resourceVersion
    ) {
      throw conflict(collection, name);
    }
    if (preconditions?.uid !== undefined && preconditions.uid !== current.metadata.uid) {
      throw new HttpStatus(
        409,
        'Conflict',
        `Precondition failed: UID in precondition: ${preconditions.uid}, UID in object meta: ${String(current.metadata.uid)}`,
      );
    }
    objects.delete(key);
    rv += 1;
    const deleted = clone(current);
    deleted.metadata.resourceVersion = String(rv);
    record('DELETED', collection, deleted);
    return deleted;
  }

  function startWatch(target: Target, fromRv: string | null, req: IncomingMessage, res: ServerResponse): void {
    res.writeHead(200, { 'Content-Type': 'application/json', 'Transfer-Encoding': 'chunked' });
    // kube-apiserver sends the headers at once; without this the client would wait for the first event.
    res.flushHeaders();
    const send = (type: string, object: unknown): void => {
      res.write(`${JSON.stringify({ type, object })}\n`);
    };
    if (fromRv === null || fromRv === '' || fromRv === '0') {
      for (const obj of listObjects(target)) send('ADDED', obj);
    } else {
      const from = Number(fromRv);
      if (!Number.isInteger(from) || from < compactedThrough) {
        // kube-apiserver: 200, then one ERROR event whose Status says 410 Expired.
        send('ERROR', statusBody(410, 'Expired', `too old resource version: ${fromRv} (${compactedThrough + 1})`));
        res.end();
        return;
      }
      for (const e of history) {
        if (e.rv > from && matches(target, e.resource, e.namespace)) send(e.type, e.object);
      }
    }
    const w: OpenWatch = { target, res, socket: req.socket };
    watches.add(w);
    res.on('close', () => watches.delete(w));
  }

  function issueToken(namespace: string, name: string, expirationSeconds = 3600): { token: string; expiresAt: number } {
    const token = `sa-${randomUUID()}`;
    const expiresAt = Math.floor(now() / 1000) * 1000 + Math.max(MIN_TOKEN_SECONDS, expirationSeconds) * 1000;
    tokens.set(token, { user: `system:serviceaccount:${namespace}:${name}`, expiresAt });
    return { token, expiresAt };
  }

  /** Who sent `req`: admin (fake-token), a ServiceAccount (a token this server minted), or 401. */
  function authenticate(req: IncomingMessage): string {
    const header = req.headers.authorization ?? '';
    const token = header.startsWith('Bearer ') ? header.slice(7).trim() : '';
    if (token === 'fake-token') return 'admin';
    const known = tokens.get(token);
    if (!known || known.expiresAt <= now()) throw new HttpStatus(401, 'Unauthorized', 'Unauthorized');
    return known.user;
  }

  /** RBAC: 403 unless one of the user's grants covers verb, resource, namespace and name. */
  function authorize(
    user: string,
    verb: string,
    resource: string,
    namespace: string | undefined,
    name: string | undefined,
  ): void {
    if (user === 'admin') return;
    const allowed = (grants.get(user) ?? []).some(
      (g) =>
        g.verb === verb &&
        g.resource === resource &&
        (g.namespace === undefined || g.namespace === namespace) &&
        (g.resourceNames === undefined || (name !== undefined && g.resourceNames.includes(name))),
    );
    if (allowed) return;
    const [plural, ...group] = resource.split('/')[0]!.split('.');
    const sub = resource.includes('/') ? `/${resource.split('/')[1]!}` : '';
    throw new HttpStatus(
      403,
      'Forbidden',
      `${resource}${name ? ` "${name}"` : ''} is forbidden: User "${user}" cannot ${verb} resource "${plural!}${sub}" in API group "${group.join('.')}"${namespace ? ` in the namespace "${namespace}"` : ' at the cluster scope'}`,
    );
  }

  async function tokenRequest(
    namespace: string,
    name: string,
    req: IncomingMessage,
    res: ServerResponse,
  ): Promise<void> {
    if (!serviceAccounts.has(`${namespace}/${name}`))
      throw new HttpStatus(404, 'NotFound', `serviceaccounts "${name}" not found`, { name, kind: 'serviceaccounts' });
    const body = (await readBody(req)) as { spec?: { expirationSeconds?: number } } | undefined;
    const asked = body?.spec?.expirationSeconds ?? 3600;
    if (!Number.isInteger(asked) || asked < MIN_TOKEN_SECONDS) {
      throw new HttpStatus(
        422,
        'Invalid',
        `TokenRequest.authentication.k8s.io "${name}" is invalid: spec.expirationSeconds: Invalid value: ${String(asked)}: may not specify a duration less than 10 minutes`,
      );
    }
    const issued = issueToken(namespace, name, asked);
    sendJson(res, 201, {
      apiVersion: 'authentication.k8s.io/v1',
      kind: 'TokenRequest',
      metadata: { name, namespace, creationTimestamp: new Date(now()).toISOString().replace(/\.\d+Z$/, 'Z') },
      spec: { audiences: [], expirationSeconds: asked },
      status: {
        token: issued.token,
        expirationTimestamp: new Date(issued.expiresAt).toISOString().replace(/\.\d+Z$/, 'Z'),
      },
    });
  }

  /** PATCH pods/<name>/status: a merge patch whose spec part is ignored (the status subresource keeps the spec). */
  function patchPodStatus(namespace: string, name: string, contentType: string | undefined, body: unknown): KubeObject {
    const { spec: _ignored, ...rest } = (body ?? {}) as Record<string, unknown>;
    return patch({ collection: collectionOf({ core: 'pods' }), namespace }, name, contentType, rest);
  }

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://127.0.0.1');
    const method = req.method ?? 'GET';
    const user = authenticate(req);
    const parts = url.pathname
      .split('/')
      .filter((p) => p !== '')
      .map(decodeURIComponent);
    // Subresources: /api/v1/namespaces/<ns>/serviceaccounts/<sa>/token and /api/v1/namespaces/<ns>/pods/<name>/status.
    if (parts.length === 7 && parts[0] === 'api' && parts[1] === 'v1' && parts[2] === 'namespaces') {
      const [, , , namespace, plural, name, sub] = parts as [string, string, string, string, string, string, string];
      const resource = `${plural}/${sub}`;
      const verb = method === 'POST' ? 'create' : method === 'PATCH' ? 'patch' : method.toLowerCase();
      const call: ApiCall = { verb, resource, user };
      calls.push(call);
      res.on('finish', () => (call.status = res.statusCode));
      authorize(user, verb, resource, namespace, name);
      if (resource === 'serviceaccounts/token' && method === 'POST') return tokenRequest(namespace, name, req, res);
      if (resource === 'pods/status' && method === 'PATCH') {
        sendJson(res, 200, patchPodStatus(namespace, name, req.headers['content-type'], await readBody(req)));
        return;
      }
      throw new HttpStatus(
        405,
        'MethodNotAllowed',
        `${method} is not supported on ${url.pathname} by this fake API server`,
      );
    }
    const target = route(url.pathname);
    if (!target)
      throw new HttpStatus(
        404,
        'NotFound',
        `the server could not find the requested resource (${method} ${url.pathname})`,
      );
    const { collection } = target;
    const verbOf: Record<string, string> = {
      GET: target.name ? 'get' : url.searchParams.get('watch') === 'true' ? 'watch' : 'list',
      POST: 'create',
      PUT: 'update',
      DELETE: 'delete',
      PATCH: 'patch',
    };
    const call: ApiCall = { verb: verbOf[method] ?? method.toLowerCase(), resource: collection.resource, user };
    calls.push(call);
    res.on('finish', () => (call.status = res.statusCode));
    if (url.searchParams.get('watch') === 'true') call.status = 200;
    authorize(user, call.verb, collection.resource, target.namespace, target.name);

    if (method === 'GET' && !target.name) {
      if (url.searchParams.get('watch') === 'true') {
        startWatch(target, url.searchParams.get('resourceVersion'), req, res);
        return;
      }
      sendJson(res, 200, listPage(target, url.searchParams));
      return;
    }
    if (method === 'GET' && target.name) {
      const obj = objects.get(storeKey(collection.resource, target.namespace, target.name));
      if (!obj) throw notFound(collection, target.name);
      sendJson(res, 200, obj);
      return;
    }
    if (method === 'POST' && !target.name) {
      sendJson(res, 201, create(target, (await readBody(req)) as KubeObject));
      return;
    }
    if (method === 'PUT' && target.name) {
      sendJson(res, 200, replace(target, target.name, (await readBody(req)) as KubeObject));
      return;
    }
    if (method === 'DELETE' && target.name) {
      sendJson(res, 200, remove(target, target.name, await readBody(req)));
      return;
    }
    if (method === 'PATCH' && target.name) {
      sendJson(res, 200, patch(target, target.name, req.headers['content-type'], await readBody(req)));
      return;
    }
    throw new HttpStatus(
      405,
      'MethodNotAllowed',
      `${method} is not supported on ${url.pathname} by this fake API server`,
    );
  }

  function sendJson(res: ServerResponse, code: number, body: unknown): void {
    const text = JSON.stringify(body);
    res.writeHead(code, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(text) });
    res.end(text);
  }

  const server: Server = createServer((req, res) => {
    handle(req, res).catch((err: unknown) => {
      if (res.headersSent) {
        res.destroy();
        return;
      }
      if (err instanceof HttpStatus)
        sendJson(res, err.code, statusBody(err.code, err.reason, err.message, err.details));
      else sendJson(res, 500, statusBody(500, 'InternalError', err instanceof Error ? err.message : String(err)));
    });
  });
  let down = false;
  server.on('connection', (socket) => {
    if (down) {
      socket.destroy();
      return;
    }
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  const url = `http://127.0.0.1:${port}`;
  const dir = await mkdtemp(join(tmpdir(), 'tortie-fake-apiserver-'));
  const kubeconfigPath = join(dir, 'kubeconfig');
  const kubeconfigText = (token: string): string =>
    [
      'apiVersion: v1',
      'kind: Config',
      'clusters:',
      '- name: fake',
      '  cluster:',
      `    server: ${url}`,
      // client-node refuses plain http unless TLS verification is explicitly off.
      '    insecure-skip-tls-verify: true',
      'users:',
      '- name: tortie',
      '  user:',
      `    token: ${token}`,
      'contexts:',
      '- name: fake',
      '  context:',
      '    cluster: fake',
      '    user: tortie',
      'current-context: fake',
      '',
    ].join('\n');
  await writeFile(kubeconfigPath, kubeconfigText('fake-token'));
  let kubeconfigs = 0;

  return {
    url,
    kubeconfigPath,
    calls,
    setHistoryWindow(events: number) {
      window = events;
      trim();
    },
    compact() {
      if (history.length > 0) compactedThrough = history[history.length - 1]!.rv;
      compactedThrough = Math.max(compactedThrough, rv);
      history = [];
    },
    dropWatches(opts: { abrupt?: boolean } = {}) {
      const n = watches.size;
      for (const w of [...watches]) {
        if (opts.abrupt) w.socket.destroy();
        else w.res.end();
        watches.delete(w);
      }
      return n;
    },
    setDown(value: boolean) {
      down = value;
      if (down) {
        watches.clear();
        for (const socket of sockets) socket.destroy();
      }
    },
    openWatches: () => watches.size,
    revision: () => rv,
    put(path: CollectionPath, object: KubeObject) {
      const collection = collectionOf(path);
      const namespace = collection.namespaced ? (object.metadata.namespace ?? 'default') : undefined;
      const name = checkName(collection, object.metadata.name);
      const key = storeKey(collection.resource, namespace, name);
      const previous = objects.get(key);
      const input = clone(object);
      if (namespace !== undefined) input.metadata.namespace = namespace;
      const stored = stamp(collection, input, previous);
      objects.set(key, stored);
      record(previous ? 'MODIFIED' : 'ADDED', collection, stored);
      return clone(stored);
    },
    object(path: CollectionPath, name: string, namespace?: string) {
      const collection = collectionOf(path);
      const obj = objects.get(
        storeKey(collection.resource, collection.namespaced ? (namespace ?? 'default') : undefined, name),
      );
      return obj ? clone(obj) : undefined;
    },
    remove(path: CollectionPath, name: string, namespace?: string) {
      const collection = collectionOf(path);
      const ns = collection.namespaced ? (namespace ?? 'default') : undefined;
      if (!objects.has(storeKey(collection.resource, ns, name))) return false;
      remove({ collection, ...(ns !== undefined ? { namespace: ns } : {}) }, name, undefined);
      return true;
    },
    serviceAccount(namespace: string, name: string) {
      serviceAccounts.add(`${namespace}/${name}`);
    },
    setGrants(value: Map<string, Grant[]>) {
      grants = new Map(value);
    },
    issueToken,
    async kubeconfigWithToken(token: string) {
      kubeconfigs += 1;
      const path = join(dir, `kubeconfig-${kubeconfigs}`);
      await writeFile(path, kubeconfigText(token));
      return path;
    },
    async stop() {
      for (const w of watches) w.res.end();
      watches.clear();
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await rm(dir, { recursive: true, force: true });
    },
  };
}
