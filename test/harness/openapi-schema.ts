// The part of OpenAPI v3 that Kubernetes CRD schemas use (apiextensions.k8s.io/v1 `openAPIV3Schema`), as a
// validator for tests: does the API server accept this object? Two functions:
// - structuralProblems(schema): is the schema one Kubernetes accepts — "structural" (a `type` on every
//   node, no `additionalProperties` beside `properties`, no `additionalProperties: false`, `items` on every
//   array, `metadata` restricted to nothing) — and written only with keywords this validator implements?
//   A keyword it does not know is refused, because a schema relying on it would look checked here and not
//   be: the test would pass and prove nothing.
// - validate(value, schema): the problems Kubernetes would report for `value`, each with the field path
//   (spec.blockSize, spec.allocations[3], spec.block["10.244.1.0/26"]).
//
// Unknown fields are problems, as with kubectl's default strict field validation (the API server itself
// would prune them with a warning; either way the field is not stored). `metadata` at the top is the API
// server's own (ObjectMeta) and is not descended into. `pattern` is searched, not anchored, as in JSON
// Schema; patterns Go's RE2 cannot run (lookaround, back-references) are refused by structuralProblems.
//
// Why this is hard: the schema is data that the API server interprets with rules of its own (pruning,
// nullable, structural restrictions). The rules implemented here are the ones these manifests rely on; the
// refusal of every other keyword keeps that claim honest.

export type Schema = { [keyword: string]: unknown };

export interface SchemaProblem {
  /** The field, like spec.blockSize; '' for the object itself. */
  path: string;
  message: string;
}

const TYPES = ['object', 'array', 'string', 'integer', 'number', 'boolean'] as const;
type SchemaType = (typeof TYPES)[number];

/** Every keyword validate() implements (or that carries no rule: description, format of integers). */
const KEYWORDS = new Set([
  'type',
  'description',
  'properties',
  'required',
  'additionalProperties',
  'items',
  'enum',
  'minimum',
  'maximum',
  'minLength',
  'maxLength',
  'minItems',
  'maxItems',
  'pattern',
  'nullable',
  'format',
]);
/** Formats that add nothing for the types they are allowed on here. */
const FORMATS: Readonly<Record<string, SchemaType>> = {
  int32: 'integer',
  int64: 'integer',
  double: 'number',
  float: 'number',
};

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function child(path: string, key: string): string {
  if (/^[A-Za-z_][A-Za-z0-9_]*$/.test(key)) return path === '' ? key : `${path}.${key}`;
  return `${path}[${JSON.stringify(key)}]`;
}

function typeOf(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'array';
  if (typeof value === 'number') return Number.isInteger(value) ? 'integer' : 'number';
  return typeof value;
}

function matchesType(value: unknown, type: SchemaType): boolean {
  switch (type) {
    case 'object':
      return isObject(value);
    case 'array':
      return Array.isArray(value);
    case 'string':
      return typeof value === 'string';
    case 'integer':
      return typeof value === 'number' && Number.isSafeInteger(value);
    case 'number':
      return typeof value === 'number' && Number.isFinite(value);
    case 'boolean':
      return typeof value === 'boolean';
  }
}

/**
 * Why `schema` would be refused by Kubernetes as a CRD's openAPIV3Schema, or relies on a keyword this
 * validator does not implement. Empty when it is fine.
 */
export function structuralProblems(schema: unknown, path = 'openAPIV3Schema', atRoot = true): string[] {
  const out: string[] = [];
  if (!isObject(schema)) return [`${path}: a schema must be a map, found ${typeOf(schema)}`];
  for (const keyword of Object.keys(schema)) {
    if (!KEYWORDS.has(keyword))
      out.push(
        `${path}: keyword "${keyword}" is not implemented by test/harness/openapi-schema.ts (it would go unchecked)`,
      );
  }
  const type = schema.type;
  if (!(TYPES as readonly unknown[]).includes(type)) {
    out.push(
      `${path}: type ${JSON.stringify(type)} is required and must be one of ${TYPES.join(', ')} (structural schema)`,
    );
    return out;
  }
  if (schema.format !== undefined && FORMATS[String(schema.format)] !== type)
    out.push(`${path}: format ${JSON.stringify(schema.format)} does not fit type ${String(type)}`);
  if (schema.nullable !== undefined && typeof schema.nullable !== 'boolean')
    out.push(`${path}: nullable must be true or false`);
  if (schema.description !== undefined && typeof schema.description !== 'string')
    out.push(`${path}: description must be a string`);
  const has = (k: string): boolean => schema[k] !== undefined;
  const only = (types: SchemaType[], keywords: string[]): void => {
    for (const k of keywords)
      if (has(k) && !types.includes(type as SchemaType))
        out.push(`${path}: ${k} is for ${types.join('/')} only, not ${String(type)}`);
  };
  only(['object'], ['properties', 'required', 'additionalProperties']);
  only(['array'], ['items', 'minItems', 'maxItems']);
  only(['string'], ['pattern', 'minLength', 'maxLength']);
  only(['integer', 'number'], ['minimum', 'maximum']);
  for (const k of ['minimum', 'maximum', 'minLength', 'maxLength', 'minItems', 'maxItems']) {
    if (has(k) && typeof schema[k] !== 'number') out.push(`${path}: ${k} must be a number`);
  }
  if (typeof schema.minimum === 'number' && typeof schema.maximum === 'number' && schema.minimum > schema.maximum)
    out.push(`${path}: minimum > maximum`);
  if (has('enum')) {
    if (!Array.isArray(schema.enum) || schema.enum.length === 0) out.push(`${path}: enum must be a non-empty list`);
    else
      for (const v of schema.enum)
        if (!matchesType(v, type as SchemaType))
          out.push(`${path}: enum value ${JSON.stringify(v)} is not of type ${String(type)}`);
  }
  if (has('pattern')) {
    const pattern = schema.pattern;
    if (typeof pattern !== 'string') out.push(`${path}: pattern must be a string`);
    else {
      try {
        new RegExp(pattern, 'u');
      } catch (error) {
        out.push(`${path}: pattern ${JSON.stringify(pattern)} does not compile: ${(error as Error).message}`);
      }
      // Kubernetes runs patterns with Go's RE2: no lookaround, no back-references.
      if (/\(\?[=!<]|\\[1-9]/.test(pattern))
        out.push(
          `${path}: pattern ${JSON.stringify(pattern)} uses lookaround or a back-reference, which Go's RE2 cannot run`,
        );
    }
  }
  if (type === 'array' && !has('items')) out.push(`${path}: an array needs items (structural schema)`);
  if (has('items')) out.push(...structuralProblems(schema.items, `${path}.items`, false));
  if (has('properties') && has('additionalProperties'))
    out.push(`${path}: properties and additionalProperties cannot both be set (structural schema)`);
  if (has('additionalProperties')) {
    if (!isObject(schema.additionalProperties))
      out.push(`${path}: additionalProperties must be a schema (false is not allowed in a CRD)`);
    else out.push(...structuralProblems(schema.additionalProperties, `${path}.additionalProperties`, false));
  }
  if (has('properties')) {
    if (!isObject(schema.properties)) out.push(`${path}: properties must be a map`);
    else {
      for (const [name, sub] of Object.entries(schema.properties)) {
        if (atRoot && name === 'metadata') {
          // The API server owns metadata; a CRD may only say it is an object.
          if (
            !isObject(sub) ||
            sub.type !== 'object' ||
            Object.keys(sub).some((k) => k !== 'type' && k !== 'description')
          ) {
            out.push(
              `${path}.properties.metadata: must be just {type: object} (only name restrictions are allowed, and none are used here)`,
            );
          }
          continue;
        }
        out.push(...structuralProblems(sub, `${path}.properties.${name}`, false));
      }
    }
  }
  if (has('required')) {
    if (!Array.isArray(schema.required) || !schema.required.every((r) => typeof r === 'string'))
      out.push(`${path}: required must be a list of field names`);
    else {
      const props = isObject(schema.properties) ? schema.properties : {};
      for (const r of schema.required as string[])
        if (!Object.hasOwn(props, r)) out.push(`${path}: required field "${r}" is not in properties`);
    }
  }
  return out;
}

/** The problems Kubernetes would find in `value` under `schema` (assumed structural). */
export function validate(value: unknown, schema: Schema, path = '', atRoot = true): SchemaProblem[] {
  const out: SchemaProblem[] = [];
  const problem = (message: string): void => {
    out.push({ path, message });
  };
  if (value === null) {
    if (schema.nullable !== true) problem(`null is not allowed (expected ${String(schema.type)})`);
    return out;
  }
  const type = schema.type as SchemaType;
  if (!matchesType(value, type)) {
    problem(`${JSON.stringify(value)} is ${typeOf(value)}, expected ${type}`);
    return out;
  }
  if (Array.isArray(schema.enum) && !schema.enum.includes(value))
    problem(`${JSON.stringify(value)} is not one of ${schema.enum.map((v) => JSON.stringify(v)).join(', ')}`);
  if (typeof value === 'number') {
    if (typeof schema.minimum === 'number' && value < schema.minimum)
      problem(`${value} is less than the minimum ${schema.minimum}`);
    if (typeof schema.maximum === 'number' && value > schema.maximum)
      problem(`${value} is more than the maximum ${schema.maximum}`);
  }
  if (typeof value === 'string') {
    const length = [...value].length;
    if (typeof schema.minLength === 'number' && length < schema.minLength)
      problem(`"${value}" is shorter than ${schema.minLength}`);
    if (typeof schema.maxLength === 'number' && length > schema.maxLength)
      problem(`"${value}" is longer than ${schema.maxLength}`);
    if (typeof schema.pattern === 'string' && !new RegExp(schema.pattern, 'u').test(value))
      problem(`"${value}" does not match ${schema.pattern}`);
  }
  if (Array.isArray(value)) {
    if (typeof schema.minItems === 'number' && value.length < schema.minItems)
      problem(`has ${value.length} items, fewer than ${schema.minItems}`);
    if (typeof schema.maxItems === 'number' && value.length > schema.maxItems)
      problem(`has ${value.length} items, more than ${schema.maxItems}`);
    value.forEach((item, i) => out.push(...validate(item, schema.items as Schema, `${path}[${i}]`, false)));
  }
  if (isObject(value)) {
    const properties = isObject(schema.properties) ? (schema.properties as Record<string, Schema>) : undefined;
    const additional = isObject(schema.additionalProperties) ? (schema.additionalProperties as Schema) : undefined;
    for (const name of Array.isArray(schema.required) ? (schema.required as string[]) : []) {
      if (value[name] === undefined) out.push({ path: child(path, name), message: `is required` });
    }
    for (const [key, field] of Object.entries(value)) {
      const at = child(path, key);
      if (atRoot && key === 'metadata') continue;
      const sub = properties?.[key] ?? additional;
      if (sub === undefined) {
        out.push({
          path: at,
          message: `unknown field "${key}"${properties ? ` (known: ${Object.keys(properties).join(', ')})` : ''}`,
        });
        continue;
      }
      if (field === undefined) continue;
      out.push(...validate(field, sub, at, false));
    }
  }
  return out;
}
