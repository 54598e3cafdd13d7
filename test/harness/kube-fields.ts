// Strict field check of Kubernetes objects (DaemonSet, ClusterRole, CustomResourceDefinition, ...) without
// an API server: every field must exist in the Kubernetes API, at that place, with the right JSON type —
// what `kubectl apply` with strict field validation refuses. The API's shape comes from
// @kubernetes/client-node's generated models (each class has an `attributeTypeMap`: JSON field name, type),
// a production dependency already, so the check follows the Kubernetes version of that package.
//
// Catches what a manifest typo does silently in YAML: `priorityClass:` for `priorityClassName:`, a probe
// nested one level too deep, an env value written as a YAML boolean, `defaultMode: "0400"` as a string.
// It does not check required fields or value ranges (the models do not carry them), nor what is inside a
// CRD's openAPIV3Schema beyond its keywords' types (test/harness/openapi-schema.ts does that).
//
// Why this is hard: the model types are strings (`Array<V1Container>`, `{ [key: string]: string; }`,
// `IntOrString`, `any`), resolved here into checks; an unknown one is an error rather than a pass.

import * as k8s from '@kubernetes/client-node';

interface Attribute {
  name: string;
  baseName: string;
  type: string;
  format: string;
}

type Model = { attributeTypeMap?: Attribute[] };
const MODELS = k8s as unknown as Record<string, Model | undefined>;

/** apiVersion/kind → the client-node model of that object. */
const KIND_MODELS: Readonly<Record<string, string>> = {
  'v1/Namespace': 'V1Namespace',
  'v1/ServiceAccount': 'V1ServiceAccount',
  'v1/ConfigMap': 'V1ConfigMap',
  'v1/Secret': 'V1Secret',
  'apps/v1/DaemonSet': 'V1DaemonSet',
  'rbac.authorization.k8s.io/v1/ClusterRole': 'V1ClusterRole',
  'rbac.authorization.k8s.io/v1/ClusterRoleBinding': 'V1ClusterRoleBinding',
  'rbac.authorization.k8s.io/v1/Role': 'V1Role',
  'rbac.authorization.k8s.io/v1/RoleBinding': 'V1RoleBinding',
  'apiextensions.k8s.io/v1/CustomResourceDefinition': 'V1CustomResourceDefinition',
};

export const CHECKED_KINDS: readonly string[] = Object.keys(KIND_MODELS);

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function show(value: unknown): string {
  return JSON.stringify(value) ?? String(value);
}

function check(value: unknown, type: string, format: string, path: string, out: string[]): void {
  const wrong = (expected: string): void => {
    out.push(`${path}: ${show(value)} is not ${expected}`);
  };
  if (value === null || value === undefined) return; // null = unset, as the API server reads it
  const array = /^Array<(.+)>$/.exec(type);
  const map = /^\{ \[key: string\]: (.+); \}$/.exec(type);
  if (array) {
    if (!Array.isArray(value)) return wrong(`a list (${type})`);
    value.forEach((item, i) => check(item, array[1]!, '', `${path}[${i}]`, out));
    return;
  }
  if (map) {
    if (!isObject(value)) return wrong(`a map (${type})`);
    for (const [k, v] of Object.entries(value)) check(v, map[1]!, '', `${path}[${JSON.stringify(k)}]`, out);
    return;
  }
  switch (type) {
    case 'string':
    case 'Date':
      if (typeof value !== 'string') wrong('a string');
      return;
    case 'boolean':
      if (typeof value !== 'boolean') wrong('true or false');
      return;
    case 'number':
      if (typeof value !== 'number') wrong('a number');
      else if ((format === 'int32' || format === 'int64') && !Number.isInteger(value)) wrong('an integer');
      return;
    case 'IntOrString':
      if (!(typeof value === 'string' || (typeof value === 'number' && Number.isInteger(value))))
        wrong('an integer or a string');
      return;
    case 'any':
      return;
  }
  const model = MODELS[type]?.attributeTypeMap;
  if (!model) {
    out.push(`${path}: no client-node model "${type}" to check against (kube-fields.ts cannot resolve it)`);
    return;
  }
  if (!isObject(value)) return wrong(`a map of fields (${type})`);
  const fields = new Map(model.map((a) => [a.baseName, a]));
  for (const [key, field] of Object.entries(value)) {
    const attribute = fields.get(key);
    const at = path === '' ? key : `${path}.${key}`;
    if (!attribute) {
      out.push(`${at}: unknown field "${key}" in ${type} (known: ${[...fields.keys()].join(', ')})`);
      continue;
    }
    check(field, attribute.type, attribute.format, at, out);
  }
}

/** Every unknown field and wrongly typed value of a Kubernetes object; [] when it is fine. */
export function kubeFieldProblems(object: unknown): string[] {
  if (!isObject(object)) return [`the document is not a map: ${show(object)}`];
  const key = `${String(object.apiVersion)}/${String(object.kind)}`;
  const modelName = KIND_MODELS[key];
  if (!modelName) return [`${key} is not a kind kube-fields.ts checks (checked: ${CHECKED_KINDS.join(', ')})`];
  const out: string[] = [];
  check(object, modelName, '', '', out);
  return out;
}
