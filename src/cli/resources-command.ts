// `tortie apply|create|replace|delete -f FILE|-`, `tortie delete KIND NAME...` and
// `tortie get KIND [NAME] [-o table|wide|yaml|json]`: calicoctl's resource commands on projectcalico.org/v3
// YAML. Argument parsing, planning and formatting are pure; only runResourceCommand touches the datastore
// (given to it), so every rule here is unit-tested against MemoryDatastore.
//
// Why this is hard: "one bad document writes nothing". So a write runs in two phases: first every document
// is parsed, defaulted and validated — including overlap with stored pools AND with the other pools of the
// same input, duplicates in the input, and create/replace preconditions — and only when nothing at all is
// wrong are the writes made. A write can still lose a race with another writer after the checks; apply
// then re-reads and retries (bounded), and any failure says how many resources were already written.
// Deleting a Node or an IPPool also releases its IPAM state, a Node its own BGP configuration too
// (./delete-ipam.ts says what, and what refuses).

import { notInEffect } from '../resources/effect.js';
import { parseArgs } from 'node:util';
import { UsageError } from './usage-error.js';
import {
  applyDefaults,
  parseDocuments,
  resolveKind,
  resourceKey,
  toResource,
  validateAgainst,
  validateResource,
  ResourceError,
  KIND_INFO,
  type Problem,
} from '../resources/index.js';
import { type AnyResource, type Kind, type Resource } from '../resources/types.js';
import { AlreadyExistsError, ConflictError, NotFoundError, type Datastore } from '../datastore/types.js';
import type { TeardownOptions } from '../ipam/teardown.js';
import { formatResources, type OutputFormat } from './resource-columns.js';
import {
  deleteIpPool,
  deleteNode,
  deleteRefusals as refusalsOf,
  NodeDeletionError,
  nodesWithStateLeft,
} from './delete-ipam.js';

export type WriteVerb = 'apply' | 'create' | 'replace' | 'delete';
export type { OutputFormat } from './resource-columns.js';
export { formatResources };
const OUTPUT_FORMATS: readonly OutputFormat[] = ['table', 'wide', 'yaml', 'json'];

export type ResourceArgs =
  | { command: 'write'; verb: WriteVerb; file: string; config?: string }
  | { command: 'delete-named'; kind: Kind; names: string[]; namespace: string; config?: string }
  | {
      command: 'get';
      kind: Kind;
      name?: string;
      output: OutputFormat;
      namespace: string;
      allNamespaces: boolean;
      config?: string;
    };

/** What the commands need from the outside world; main.ts gives the real ones, tests fakes. */
export interface CommandContext {
  out(text: string): void;
  /** Warnings (a field stored but not in effect): standard error; `out` when absent. */
  warn?(text: string): void;
  /** Reads FILE, or standard input for "-". */
  readInput(file: string): Promise<string>;
  openDatastore(): Promise<Datastore>;
  /** How deleting a Node or an IPPool waits before calling an address leaked (tests shorten it). */
  teardown?: TeardownOptions;
}

/** Kinds tortie's IPAM owns: readable with get, never written by hand (that could double-own a block). */
const IPAM_KINDS: readonly Kind[] = ['IPAMBlock', 'BlockAffinity', 'IPAMHandle'];

/** How many times apply re-reads and retries after losing a race with another writer. */
const APPLY_ATTEMPTS = 5;

const DEFAULT_NAMESPACE = 'default';

function isNamespaced(kind: Kind): boolean {
  return KIND_INFO[kind].namespaced;
}

export const RESOURCES_USAGE = `usage:
  tortie apply   -f FILE|-   create or update every resource in FILE (multi-document YAML or JSON)
  tortie create  -f FILE|-   create them; fails if any exists
  tortie replace -f FILE|-   update them; fails if any does not exist
  tortie delete  -f FILE|-   delete the resources the documents name
  tortie delete  KIND NAME...
  tortie get     KIND [NAME] [-o table|wide|yaml|json]

options:
  -f, --filename FILE   the input; "-" reads standard input
  -o, --output FORMAT   get: table (default), wide, yaml or json
  -n, --namespace NS    WorkloadEndpoint namespace (default "default")
  -A, --all-namespaces  get: WorkloadEndpoints of every namespace
  -c, --config FILE     datastore configuration (default /etc/tortie/tortie.cfg, else the environment:
                        DATASTORE_TYPE, ETCD_ENDPOINTS, ETCD_CA_CERT_FILE, ETCD_CERT_FILE, ETCD_KEY_FILE,
                        KUBECONFIG)

KIND: ippool(s), bgpconfig(uration)(s), bgppeer(s), node(s), workloadendpoint(s)/wep,
      ipamblock(s), blockaffinity/blockaffinities, ipamhandle(s)
Nothing is written unless every document is valid; errors name the document number and field.
Deleting a Node also releases its IPAM state (its tunnel address, its pods' and leaked addresses, its
blocks and affinities) and deletes its own BGPPeers (spec.node) and BGPConfiguration node.NAME, and says
what; on the kubernetes datastore run it after "kubectl delete node".
Deleting an IPPool is refused while pods hold addresses from it; otherwise its blocks go with it.
`;

function kindArg(text: string): Kind {
  try {
    return resolveKind(text);
  } catch (error) {
    throw new UsageError(error instanceof Error ? error.message : String(error));
  }
}

/** `tortie <verb> ...` arguments (verb already taken off). Throws UsageError naming the bad flag. */
export function parseResourceArgs(verb: WriteVerb | 'get', argv: string[]): ResourceArgs {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      strict: true,
      options: {
        filename: { type: 'string', short: 'f' },
        output: { type: 'string', short: 'o' },
        namespace: { type: 'string', short: 'n' },
        'all-namespaces': { type: 'boolean', short: 'A' },
        config: { type: 'string', short: 'c' },
      },
    });
  } catch (error) {
    throw new UsageError(`${verb}: ${error instanceof Error ? error.message : String(error)}\n\n${RESOURCES_USAGE}`);
  }
  const { values, positionals } = parsed;
  const config = values.config !== undefined ? { config: values.config } : {};
  const namespace = values.namespace ?? DEFAULT_NAMESPACE;
  if (verb === 'get') {
    if (values.filename !== undefined) throw new UsageError('get: -f is not accepted; give KIND [NAME]');
    const [kindText, name, ...extra] = positionals;
    if (kindText === undefined) throw new UsageError(`get: KIND is missing\n\n${RESOURCES_USAGE}`);
    if (extra.length > 0) throw new UsageError(`get: unexpected argument "${extra[0]}"; give KIND [NAME]`);
    const output = values.output ?? 'table';
    if (!(OUTPUT_FORMATS as readonly string[]).includes(output)) {
      throw new UsageError(`get: -o "${output}" is not an output format; use ${OUTPUT_FORMATS.join(', ')}`);
    }
    return {
      command: 'get',
      kind: kindArg(kindText),
      ...(name !== undefined ? { name } : {}),
      output: output as OutputFormat,
      namespace,
      allNamespaces: values['all-namespaces'] === true,
      ...config,
    };
  }
  if (values.output !== undefined) throw new UsageError(`${verb}: -o is only for get`);
  if (values['all-namespaces'] === true) throw new UsageError(`${verb}: -A is only for get`);
  if (values.filename !== undefined) {
    if (positionals.length > 0)
      throw new UsageError(`${verb}: give either -f FILE or KIND NAME, not both (found "${positionals.join(' ')}")`);
    return { command: 'write', verb, file: values.filename, ...config };
  }
  if (verb === 'delete' && positionals.length >= 2) {
    const [kindText, ...names] = positionals as [string, ...string[]];
    return { command: 'delete-named', kind: kindArg(kindText), names, namespace, ...config };
  }
  throw new UsageError(
    `${verb}: -f FILE is required${verb === 'delete' ? ' (or KIND NAME...)' : ''}\n\n${RESOURCES_USAGE}`,
  );
}

// ---------------------------------------------------------------------------------------------------
// Phase 1: read and check everything (pure).

export interface InputResource {
  /** 1-based document number in the input (after List flattening). */
  index: number;
  resource: AnyResource;
}

/** Several documents are wrong: each ResourceError, and a message listing them all. */
export class InputError extends Error {
  readonly errors: ResourceError[];
  constructor(errors: ResourceError[], total: number) {
    const head = errors.length === 1 ? '' : `${errors.length} of ${total} documents have problems:\n`;
    super(`${head}${errors.map((e) => e.message).join('\n')}\nnothing was written`);
    this.name = 'InputError';
    this.errors = errors;
  }
}

function asResourceError(error: unknown, index: number): ResourceError {
  if (error instanceof ResourceError) return error;
  const message = error instanceof Error ? error.message : String(error);
  return new ResourceError('document', [{ path: '', value: undefined, message }], index);
}

/**
 * The documents of one input as resources: parsed, and for writes defaulted and validated on their own.
 * Throws InputError naming every bad document (by number and field) and ResourceError for bad YAML.
 */
export function readResources(text: string, source: string, verb: WriteVerb): InputResource[] {
  const docs = parseDocuments(text, source);
  if (docs.length === 0) throw new Error(`${source}: no resources found; expected projectcalico.org/v3 documents`);
  const errors: ResourceError[] = [];
  const out: InputResource[] = [];
  docs.forEach((doc, i) => {
    const index = i + 1;
    try {
      const parsed = toResource(doc, i);
      const resource = verb === 'delete' ? parsed : applyDefaults(parsed);
      const problems = verb === 'delete' ? [] : validateResource(resource);
      if (problems.length > 0) throw new ResourceError(resourceKey(resource), problems, index);
      out.push({ index, resource });
    } catch (error) {
      errors.push(asResourceError(error, index));
    }
  });
  if (errors.length > 0) throw new InputError(errors, docs.length);
  return out;
}

export type WriteOp =
  | { action: 'create'; index: number; resource: AnyResource }
  | { action: 'update'; index: number; resource: AnyResource; retry: boolean }
  | { action: 'delete'; index: number; resource: AnyResource };

/** What is stored now, as far as the plan needs it. */
export interface StoredState {
  /** The stored object for each input key (resourceKey), null when absent. */
  byKey: ReadonlyMap<string, AnyResource | null>;
  /** Every stored IPPool (for overlap checks). */
  ipPools: Array<Resource<'IPPool'>>;
  /** Nodes with no Node resource but IPAM state or their own BGP configuration left: deleting them removes that. */
  leftoverNodes?: ReadonlySet<string>;
  /** Why deleting a resource (by resourceKey) is refused now: a Kubernetes Node, a pool in use. */
  deleteRefusals?: ReadonlyMap<string, string>;
}

function problemFor(resource: AnyResource, index: number, problem: Problem): ResourceError {
  return new ResourceError(resourceKey(resource), [problem], index);
}

/** Metadata the datastore owns: taken from the stored object, never from the input. */
function withStoredMeta<R extends AnyResource>(resource: R, stored: AnyResource | null, keepVersion: boolean): R {
  const { resourceVersion, uid: _uid, creationTimestamp: _created, ...meta } = resource.metadata;
  const metadata = { ...meta } as R['metadata'];
  if (stored?.metadata.uid !== undefined) metadata.uid = stored.metadata.uid;
  if (stored?.metadata.creationTimestamp !== undefined) metadata.creationTimestamp = stored.metadata.creationTimestamp;
  const version = keepVersion && resourceVersion !== undefined ? resourceVersion : stored?.metadata.resourceVersion;
  if (version !== undefined && stored !== null) metadata.resourceVersion = version;
  return { ...resource, metadata };
}

/**
 * The writes for `verb`, or InputError listing everything that stops it. Checks, in input order: IPAM kinds
 * refused, duplicates in the input, create/replace/delete preconditions, overlapping pools (stored ones
 * not being replaced, and earlier pools of the same input), a changed pool cidr or blockSize.
 */
export function planWrite(verb: WriteVerb, input: InputResource[], stored: StoredState): WriteOp[] {
  const errors: ResourceError[] = [];
  const ops: WriteOp[] = [];
  const seen = new Map<string, number>();
  const inputKeys = new Set(input.map(({ resource }) => resourceKey(resource)));
  const acceptedPools: Array<Resource<'IPPool'>> = [];
  for (const { index, resource } of input) {
    const key = resourceKey(resource);
    const current = stored.byKey.get(key) ?? null;
    const fail = (path: string, value: unknown, message: string) =>
      errors.push(problemFor(resource, index, { path, value, message }));
    const before = errors.length;
    if (IPAM_KINDS.includes(resource.kind)) {
      // Deleting an allocation block by hand frees addresses pods still use: the next claim hands them out again.
      fail(
        'kind',
        resource.kind,
        `${resource.kind} is IPAM state kept by tortie's IPAM; it is read with "tortie get" and "tortie ipam show", not ${verb === 'delete' ? 'deleted' : 'written'} by hand`,
      );
    }
    const earlier = seen.get(key);
    if (earlier !== undefined)
      fail('metadata.name', resource.metadata.name, `${key} is also document ${earlier}; give each resource once`);
    seen.set(key, index);
    if (verb === 'create' && current !== null)
      fail('metadata.name', resource.metadata.name, `${key} already exists; use apply or replace to change it`);
    const leftover =
      verb === 'delete' && resource.kind === 'Node' && stored.leftoverNodes?.has(resource.metadata.name) === true;
    if ((verb === 'replace' || verb === 'delete') && current === null && !leftover)
      fail('metadata.name', resource.metadata.name, `resource does not exist: ${describeKey(resource)}`);
    const refusal = verb === 'delete' ? stored.deleteRefusals?.get(key) : undefined;
    if (refusal !== undefined) fail('metadata.name', resource.metadata.name, refusal);
    if (verb === 'create' && resource.metadata.resourceVersion !== undefined) {
      fail(
        'metadata.resourceVersion',
        resource.metadata.resourceVersion,
        'must not be set when creating; remove it, or use apply',
      );
    }
    if (verb !== 'delete' && resource.kind === 'IPPool') {
      // The stored pool of the same name is passed too: validateAgainst refuses a changed cidr/blockSize.
      // Stored pools that other documents replace are not; the pools of earlier documents are.
      const others = [
        ...stored.ipPools.filter((p) => resourceKey(p) === key || !inputKeys.has(resourceKey(p))),
        ...acceptedPools,
      ];
      for (const problem of validateAgainst(resource, { ipPools: others }))
        errors.push(problemFor(resource, index, problem));
      acceptedPools.push(resource);
    }
    if (errors.length > before) continue;
    if (verb === 'delete') ops.push({ action: 'delete', index, resource });
    else if (current === null) ops.push({ action: 'create', index, resource: withStoredMeta(resource, null, false) });
    else {
      const own = resource.metadata.resourceVersion !== undefined;
      // Without a resourceVersion in the input: update what is stored now (retrying a lost race). With
      // one (e.g. from `get -o yaml`): compare-and-swap on it, no retry — someone changed it since.
      ops.push({ action: 'update', index, resource: withStoredMeta(resource, current, own), retry: !own });
    }
  }
  if (errors.length > 0) throw new InputError(errors, input.length);
  return ops;
}

// ---------------------------------------------------------------------------------------------------
// Phase 2: write.

/** "IPPool(p1)" / "WorkloadEndpoint(ns/name)", as calicoctl names a resource in messages. */
export function describeKey(r: Pick<AnyResource, 'kind' | 'metadata'>): string {
  const key = resourceKey(r);
  return `${r.kind}(${key.slice(r.kind.length + 1)})`;
}

/** `IPPool "p1"`, as ResourceError names a document's resource. */
function labelOf(r: AnyResource): string {
  return `${r.kind} ${JSON.stringify(resourceKey(r).slice(r.kind.length + 1))}`;
}

function namespaceOf(r: AnyResource): { namespace?: string } {
  return r.metadata.namespace !== undefined ? { namespace: r.metadata.namespace } : {};
}

/**
 * Deletes one resource; a Node or an IPPool with its IPAM state. `deleted`: whether a resource was deleted
 * (a Node already gone had only IPAM state); `text`: what was released, line by line.
 */
async function deleteOne(
  ds: Datastore,
  target: AnyResource,
  teardown: TeardownOptions | undefined,
): Promise<{ deleted: boolean; text: string }> {
  if (target.kind === 'Node') return deleteNode(ds, target.metadata.name, teardown);
  if (target.kind === 'IPPool') return { deleted: true, text: await deleteIpPool(ds, target.metadata.name, teardown) };
  await ds.delete(target.kind, target.metadata.name, namespaceOf(target));
  return { deleted: true, text: '' };
}

async function applyOne(
  ds: Datastore,
  op: WriteOp,
  teardown?: TeardownOptions,
): Promise<{ deleted: boolean; text: string }> {
  if (op.action === 'delete') return deleteOne(ds, op.resource, teardown);
  await writeOne(ds, op);
  return { deleted: false, text: '' };
}

async function writeOne(ds: Datastore, op: Exclude<WriteOp, { action: 'delete' }>): Promise<void> {
  let resource = op.resource;
  let action: 'create' | 'update' = op.action;
  for (let attempt = 1; ; attempt++) {
    try {
      if (action === 'create') await ds.create(resource);
      else await ds.update(resource);
      return;
    } catch (error) {
      const lostRace = error instanceof ConflictError || (action === 'create' && error instanceof AlreadyExistsError);
      const retry = op.action === 'create' ? false : op.retry;
      if (!lostRace || !retry || attempt >= APPLY_ATTEMPTS) {
        if (lostRace && retry)
          throw new Error(`${(error as Error).message} (still changing after ${APPLY_ATTEMPTS} attempts; try again)`);
        throw error;
      }
      // Someone else wrote between our read and our write: read again and retry on the new revision.
      const current = (await ds.get(
        resource.kind,
        resource.metadata.name,
        resource.metadata.namespace,
      )) as AnyResource | null;
      action = current === null ? 'create' : 'update';
      resource = withStoredMeta(op.resource, current, false);
    }
  }
}

const PAST: Readonly<Record<WriteVerb, string>> = {
  apply: 'applied',
  create: 'created',
  replace: 'replaced',
  delete: 'deleted',
};

/** calicoctl's summary: `Successfully applied 3 'IPPool' resource(s)`, or without the kind when mixed. */
export function summary(verb: WriteVerb, resources: AnyResource[]): string {
  const kinds = new Set(resources.map((r) => r.kind));
  const kind = kinds.size === 1 ? ` '${[...kinds][0]}'` : '';
  return `Successfully ${PAST[verb]} ${resources.length}${kind} resource(s)\n`;
}

async function storedStateFor(ds: Datastore, input: InputResource[], verb: WriteVerb): Promise<StoredState> {
  const byKey = new Map<string, AnyResource | null>();
  for (const { resource } of input) {
    const key = resourceKey(resource);
    if (!byKey.has(key))
      byKey.set(
        key,
        (await ds.get(resource.kind, resource.metadata.name, resource.metadata.namespace)) as AnyResource | null,
      );
  }
  const needPools = verb !== 'delete' && input.some(({ resource }) => resource.kind === 'IPPool');
  const ipPools = needPools ? (await ds.list('IPPool')).items : [];
  if (verb !== 'delete') return { byKey, ipPools };
  return {
    byKey,
    ipPools,
    ...(await deletePreconditions(
      ds,
      input.map(({ resource }) => resource),
      byKey,
    )),
  };
}

/** For deletions: Nodes that are gone but left state, and the refusals (Kubernetes Nodes, pools in use). */
async function deletePreconditions(
  ds: Datastore,
  targets: AnyResource[],
  stored: ReadonlyMap<string, AnyResource | null>,
): Promise<Pick<StoredState, 'leftoverNodes' | 'deleteRefusals'>> {
  const nodes = targets.filter((t) => t.kind === 'Node');
  const pools = targets.filter((t) => t.kind === 'IPPool');
  if (nodes.length === 0 && pools.length === 0) return {};
  const gone = nodes.filter((n) => (stored.get(resourceKey(n)) ?? null) === null).map((n) => n.metadata.name);
  const leftoverNodes = await nodesWithStateLeft(ds, gone);
  const deleteRefusals = await refusalsOf(
    ds,
    [...nodes, ...pools].flatMap((t) => stored.get(resourceKey(t)) ?? []),
  );
  return { leftoverNodes, deleteRefusals };
}

/**
 * Deleting an IPPool writes before the pool itself goes (it is disabled, then its addresses, blocks and
 * affinities are released), so a failure can leave part of that done: say so, and how to finish.
 */
function poolPartlyDeleted(resource: AnyResource): string {
  if (resource.kind !== 'IPPool') return '';
  const name = resource.metadata.name;
  return `. Deleting IPPool ${name} first disables it and releases its IPAM state, so it may be disabled and partly released now: run "tortie delete ippool ${name}" again to finish (or set disabled: false to keep it)`;
}

async function runWrite(ds: Datastore, verb: WriteVerb, input: InputResource[], ctx: CommandContext): Promise<number> {
  const ops = planWrite(verb, input, await storedStateFor(ds, input, verb));
  let written = 0;
  const done: AnyResource[] = [];
  for (const op of ops) {
    try {
      const result = await applyOne(ds, op, ctx.teardown);
      if (result.text !== '') ctx.out(result.text);
      if (op.action !== 'delete' || result.deleted) done.push(op.resource);
    } catch (error) {
      const reason = error instanceof Error ? error.message : String(error);
      if (error instanceof NodeDeletionError && error.text !== '') ctx.out(error.text);
      const partly = op.action === 'delete' ? poolPartlyDeleted(op.resource) : '';
      const done =
        written === 0 && partly === '' && !(error instanceof NodeDeletionError)
          ? 'nothing was written'
          : `${written} of ${ops.length} resource(s) were ${PAST[verb]} before it`;
      throw new Error(`document ${op.index} (${labelOf(op.resource)}): ${reason}; ${done}${partly}`, { cause: error });
    }
    written++;
  }
  if (done.length > 0) ctx.out(summary(verb, done));
  // No silent no-op: a field accepted for compatibility that changes nothing yet is named (./effect.ts).
  if (verb !== 'delete') {
    for (const line of done.flatMap((r) => notInEffect(r))) (ctx.warn ?? ctx.out)(`Warning: ${line}\n`);
  }
  return 0;
}

async function runDeleteNamed(
  ds: Datastore,
  args: Extract<ResourceArgs, { command: 'delete-named' }>,
  ctx: CommandContext,
): Promise<number> {
  if (IPAM_KINDS.includes(args.kind)) {
    // Deleting an allocation block by hand frees addresses pods still use: the next claim hands them out again.
    throw new Error(
      `${args.kind} is IPAM state kept by tortie's IPAM; it is read with "tortie get" and "tortie ipam show", not deleted by hand; nothing was deleted`,
    );
  }
  const namespace = isNamespaced(args.kind) ? { namespace: args.namespace } : {};
  const targets = args.names.map((name) => ({ kind: args.kind, metadata: { name, ...namespace } }) as AnyResource);
  const stored = new Map<string, AnyResource | null>();
  for (const target of targets)
    stored.set(
      resourceKey(target),
      (await ds.get(target.kind, target.metadata.name, target.metadata.namespace)) as AnyResource | null,
    );
  const { leftoverNodes, deleteRefusals } = await deletePreconditions(ds, targets, stored);
  const missing = targets.filter(
    (t) => stored.get(resourceKey(t)) === null && !(t.kind === 'Node' && leftoverNodes?.has(t.metadata.name) === true),
  );
  if (missing.length > 0)
    throw new Error(`resource does not exist: ${missing.map(describeKey).join(', ')}; nothing was deleted`);
  const refused = targets.flatMap((t) => deleteRefusals?.get(resourceKey(t)) ?? []);
  if (refused.length > 0) throw new Error(`${refused.join('\n')}; nothing was deleted`);
  let deleted = 0;
  const done: AnyResource[] = [];
  for (const target of targets) {
    try {
      const result = await deleteOne(ds, target, ctx.teardown);
      if (result.text !== '') ctx.out(result.text);
      if (result.deleted) done.push(target);
    } catch (error) {
      if (error instanceof NodeDeletionError && error.text !== '') ctx.out(error.text);
      const what =
        error instanceof NotFoundError
          ? `resource does not exist: ${describeKey(target)}`
          : error instanceof Error
            ? error.message
            : String(error);
      const partly = error instanceof NotFoundError ? '' : poolPartlyDeleted(target);
      throw new Error(`${what}; ${deleted} of ${targets.length} resource(s) were deleted before it${partly}`, {
        cause: error,
      });
    }
    deleted++;
  }
  if (done.length > 0) ctx.out(summary('delete', done));
  return 0;
}

async function runGet(
  ds: Datastore,
  args: Extract<ResourceArgs, { command: 'get' }>,
  ctx: CommandContext,
): Promise<number> {
  const namespaced = isNamespaced(args.kind);
  if (args.name !== undefined) {
    const found = await ds.get(args.kind, args.name, namespaced ? args.namespace : undefined);
    if (found === null) {
      throw new Error(
        `resource does not exist: ${describeKey({ kind: args.kind, metadata: { name: args.name, ...(namespaced ? { namespace: args.namespace } : {}) } } as AnyResource)}`,
      );
    }
    ctx.out(formatResources(args.kind, [found], args.output, { single: true }));
    return 0;
  }
  const listed = await ds.list(args.kind, namespaced && !args.allNamespaces ? { namespace: args.namespace } : {});
  ctx.out(formatResources(args.kind, listed.items, args.output, { revision: listed.revision }));
  return 0;
}

/** Runs one parsed resource command; the datastore is opened only after the input checked out. */
export async function runResourceCommand(args: ResourceArgs, ctx: CommandContext): Promise<number> {
  let input: InputResource[] = [];
  if (args.command === 'write') {
    const source = args.file === '-' ? 'standard input' : args.file;
    let textIn: string;
    try {
      textIn = await ctx.readInput(args.file);
    } catch (error) {
      const code =
        typeof error === 'object' && error !== null && 'code' in error
          ? String((error as { code: unknown }).code)
          : String(error);
      throw new Error(`-f ${args.file}: cannot read it (${code})`, { cause: error });
    }
    input = readResources(textIn, source, args.verb);
  }
  const ds = await ctx.openDatastore();
  try {
    if (args.command === 'write') return await runWrite(ds, args.verb, input, ctx);
    if (args.command === 'delete-named') return await runDeleteNamed(ds, args, ctx);
    return await runGet(ds, args, ctx);
  } finally {
    await ds.close().catch(() => undefined);
  }
}
