// From text to typed resources: multi-document YAML (or JSON, which is YAML) → plain documents →
// Resource objects, strictly: apiVersion projectcalico.org/v3, a known kind, and no field tortie does not
// know (calicoctl is strict too, and a typo like `ipipmode` silently ignored would change routing).
//
// Why this is hard: people paste whole `kubectl get -o yaml` / `calicoctl get -o yaml` output, so a
// `kind: List` (or `IPPoolList`) with items must be flattened, Kubernetes bookkeeping in metadata
// (generation, managedFields...) must be accepted and dropped, and every error must say which document of
// which file it is about.

import { parseAllDocuments, Scalar, visit } from 'yaml';
import { kindOf, KIND_INFO } from './kinds.js';
import { ResourceError, show, type Problem } from './problems.js';
import { calicoctlStrings, checkShape, SPEC_SHAPES, type Shape } from './schema.js';
import { API_VERSION, apiVersionOf, KINDS, type AnyResource, type ObjectMeta } from './types.js';
import { resolvePlainScalar } from './yaml11.js';

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/**
 * Splits `text` into documents (YAML `---` separated, or one JSON value) and flattens lists
 * (`kind: List` or `kind: <Kind>List` with `items`). Empty documents are skipped. A syntax error throws
 * an Error naming the source, the document number (1-based, by position in the file) and the line.
 */
export function parseDocuments(text: string, source: string): unknown[] {
  const docs = parseAllDocuments(text, { prettyErrors: false });
  const list = Array.isArray(docs) ? docs : [docs];
  const out: unknown[] = [];
  list.forEach((doc, i) => {
    const error = doc.errors[0];
    if (error !== undefined) {
      const offset = error.pos[0];
      const line = offset >= 0 ? text.slice(0, offset).split('\n').length : undefined;
      const reason = error.message.split('\n')[0]!.replace(/ at line \d+, column \d+:?$/, '');
      throw new Error(
        `${source}: document ${i + 1}${line === undefined ? '' : `, line ${line}`}: YAML syntax error: ${reason}`,
      );
    }
    // YAML 1.1 scalars, as Calico's Go decoder reads them (./yaml11.ts): an unquoted, untagged `yes` is true.
    visit(doc, {
      Scalar(_, node) {
        if (node.type === Scalar.PLAIN && node.tag === undefined && typeof node.source === 'string')
          node.value = resolvePlainScalar(node.source);
      },
    });
    let value: unknown;
    try {
      value = doc.toJS({ maxAliasCount: 100 });
    } catch (error) {
      // The yaml package throws ReferenceError for an alias with no anchor before it, or for too many
      // aliases (a "billion laughs" document): a property of the input, reported like a syntax error.
      const reason = error instanceof Error ? error.message.split('\n')[0]! : String(error);
      throw new Error(`${source}: document ${i + 1}: YAML error: ${reason}`);
    }
    if (value === null || value === undefined) return;
    out.push(...flattenList(value).map(calicoctlDocument));
  });
  return out;
}

const METADATA_STRINGS: Shape = {
  type: 'object',
  fields: {
    name: { type: 'string' },
    namespace: { type: 'string' },
    labels: { type: 'map', values: { type: 'string' } },
    annotations: { type: 'map', values: { type: 'string' } },
  },
};

/**
 * A document read from text gets what calicoctl's YAML → JSON step gives it (./yaml11.ts): booleans and
 * numbers in its string fields (metadata and spec) become Go's formatting. Objects that do not come from
 * text (datastore values, the API server's JSON) skip this and are judged strictly by toResource.
 */
function calicoctlDocument(doc: unknown): unknown {
  if (!isPlainObject(doc)) return doc;
  const kind = kindOf(doc.kind);
  const out: Record<string, unknown> = { ...doc };
  if (isPlainObject(doc.metadata)) out.metadata = calicoctlStrings(doc.metadata, METADATA_STRINGS);
  if (kind !== null && doc.spec !== undefined) out.spec = calicoctlStrings(doc.spec, SPEC_SHAPES[kind]);
  return out;
}

function flattenList(value: unknown): unknown[] {
  if (
    isPlainObject(value) &&
    typeof value.kind === 'string' &&
    value.kind.endsWith('List') &&
    Array.isArray(value.items)
  ) {
    return value.items;
  }
  return [value];
}

const TOP_LEVEL = ['apiVersion', 'kind', 'metadata', 'spec'];
/** Top-level fields Calico's YAML may carry that tortie accepts and drops. */
const TOP_LEVEL_DROPPED = ['status'];
const METADATA = ['name', 'namespace', 'labels', 'annotations', 'resourceVersion', 'uid', 'creationTimestamp'];
/** Kubernetes ObjectMeta bookkeeping found in exported YAML: accepted and dropped. */
const METADATA_DROPPED = [
  'generation',
  'managedFields',
  'selfLink',
  'finalizers',
  'ownerReferences',
  'deletionTimestamp',
  'deletionGracePeriodSeconds',
  'generateName',
];

/**
 * Turns one parsed document into a typed resource, or throws ResourceError listing every problem found.
 * `index` is the document's 0-based position in parseDocuments' result; messages show it 1-based
 * ("document 2" is index 1), and ResourceError.index carries it 1-based too.
 */
export function toResource(doc: unknown, index: number): AnyResource {
  const number = index + 1;
  if (!isPlainObject(doc)) {
    throw new ResourceError(
      'document',
      [
        {
          path: '',
          value: doc,
          message: `expected a map with apiVersion, kind, metadata and spec, found ${show(doc)}`,
        },
      ],
      number,
    );
  }
  const problems: Problem[] = [];
  const kind = kindOf(doc.kind);
  const meta = isPlainObject(doc.metadata) ? doc.metadata : null;
  const name = meta !== null && typeof meta.name === 'string' ? meta.name : '';
  const label = `${kind ?? (typeof doc.kind === 'string' ? doc.kind : 'document')}/${KIND_INFO[kind ?? 'IPPool'].namespaced && typeof meta?.namespace === 'string' ? `${meta.namespace}/` : ''}${name || '(no name)'}`;

  const apiVersion = kind === null ? API_VERSION : apiVersionOf(kind);
  if (doc.apiVersion !== apiVersion) {
    const why =
      kind === null || apiVersion === API_VERSION ? 'the only API version tortie reads' : `the API version of ${kind}`;
    problems.push({
      path: 'apiVersion',
      value: doc.apiVersion,
      message: `${show(doc.apiVersion)} is not ${apiVersion} (${why})`,
    });
  }
  if (kind === null) {
    problems.push({
      path: 'kind',
      value: doc.kind,
      message: `${show(doc.kind)} is not a known kind (accepted: ${KINDS.join(', ')})`,
    });
  }
  for (const key of Object.keys(doc)) {
    if (!TOP_LEVEL.includes(key) && !TOP_LEVEL_DROPPED.includes(key)) {
      problems.push({
        path: key,
        value: doc[key],
        message: `unknown top-level field "${key}" (known: ${TOP_LEVEL.join(', ')})`,
      });
    }
  }
  const metadata = meta === null ? null : readMetadata(meta, problems);
  if (meta === null)
    problems.push({
      path: 'metadata',
      value: doc.metadata,
      message: `is required: a map with at least a name, found ${show(doc.metadata)}`,
    });
  else if (name === '')
    problems.push({
      path: 'metadata.name',
      value: meta.name,
      message: `${show(meta.name)} is not a name: metadata.name is required (a non-empty string)`,
    });

  const spec = kind === null ? undefined : checkShape(doc.spec ?? {}, SPEC_SHAPES[kind], 'spec', problems);
  if (problems.length > 0 || kind === null || metadata === null) throw new ResourceError(label, problems, number);
  return { apiVersion, kind, metadata, spec } as AnyResource;
}

function readMetadata(meta: Record<string, unknown>, problems: Problem[]): ObjectMeta {
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(meta)) {
    const path = `metadata.${key}`;
    if (METADATA_DROPPED.includes(key) || value === null || value === undefined) continue;
    if (!METADATA.includes(key)) {
      problems.push({
        path,
        value,
        message: `unknown field "${key}" (known fields of metadata: ${METADATA.join(', ')})`,
      });
    } else if (key === 'labels' || key === 'annotations') {
      out[key] = checkShape(value, { type: 'map', values: { type: 'string' } }, path, problems);
    } else if (key === 'name') {
      // Checked by the caller, which reports a missing or non-string name once.
      if (typeof value === 'string') out[key] = value;
    } else if (key === 'resourceVersion' && typeof value === 'number') {
      out[key] = String(value);
    } else {
      out[key] = checkShape(value, { type: 'string' }, path, problems);
    }
  }
  return out as unknown as ObjectMeta;
}
