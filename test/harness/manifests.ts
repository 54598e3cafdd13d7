// Reading manifests/ and the Dockerfile the way their consumers do, for the tests that check them
// (test/unit/manifests.test.ts, test/integration/manifests-apply.test.ts). Pure apart from reading files.
//
// - Kubernetes YAML is read as kubectl reads it: YAML 1.1 (sigs.k8s.io/yaml → go-yaml v2), where
//   `defaultMode: 0400` is octal 256 and an unquoted `on`/`yes` is a boolean. The `yaml` package's default
//   (1.2) would read 0400 as four hundred and pass a wrong manifest.
// - A container's environment is resolved as the kubelet resolves it: `value`, `configMapKeyRef` into a
//   ConfigMap of the same file (a missing key is an error, as a non-optional ref is for the kubelet),
//   `fieldRef` from the values given (spec.nodeName → the node's name).
// - The Dockerfile is split into instructions (continuation lines joined, comments dropped), with JSON-form
//   arguments parsed.

import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseAllDocuments } from 'yaml';

export const ROOT = resolve(import.meta.dirname, '../..').replace(/\/dist$/, '');
export const MANIFEST_DIR = join(ROOT, 'manifests');

export type KubeDoc = {
  apiVersion?: string;
  kind?: string;
  metadata?: { name?: string; namespace?: string; [k: string]: unknown };
  [k: string]: unknown;
};

/** Every document of a Kubernetes manifest, parsed as YAML 1.1; a syntax error or warning throws naming file and document. */
export function loadKubeDocuments(path: string): KubeDoc[] {
  const text = readFileSync(path, 'utf8');
  const docs = parseAllDocuments(text, { version: '1.1', prettyErrors: false });
  const list = Array.isArray(docs) ? docs : [docs];
  const out: KubeDoc[] = [];
  list.forEach((doc, i) => {
    const trouble = [...doc.errors, ...doc.warnings][0];
    if (trouble) throw new Error(`${path}: document ${i + 1}: ${trouble.message.split('\n')[0]}`);
    const value: unknown = doc.toJS({ maxAliasCount: 0 });
    if (value === null || value === undefined) return;
    if (typeof value !== 'object' || Array.isArray(value)) throw new Error(`${path}: document ${i + 1} is not a map`);
    out.push(value as KubeDoc);
  });
  return out;
}

/** The one document of `kind` (and `name`, when given); throws when there is none or more than one. */
export function findOne(docs: KubeDoc[], kind: string, name?: string): KubeDoc {
  const found = docs.filter((d) => d.kind === kind && (name === undefined || d.metadata?.name === name));
  if (found.length !== 1) throw new Error(`expected one ${kind}${name ? ` "${name}"` : ''}, found ${found.length}`);
  return found[0]!;
}

export interface EnvVar {
  name: string;
  value?: string;
  valueFrom?: {
    fieldRef?: { fieldPath: string };
    configMapKeyRef?: { name: string; key: string; optional?: boolean };
    secretKeyRef?: { name: string; key: string };
  };
}

export interface Container {
  name: string;
  image: string;
  command?: string[];
  args?: string[];
  env?: EnvVar[];
  volumeMounts?: Array<{ name: string; mountPath: string; readOnly?: boolean }>;
  securityContext?: { privileged?: boolean };
  lifecycle?: { preStop?: { exec?: { command: string[] } } };
  livenessProbe?: Probe;
  readinessProbe?: Probe;
  startupProbe?: Probe;
}

export interface Probe {
  httpGet?: { host?: string; path: string; port: number | string };
}

export interface Volume {
  name: string;
  hostPath?: { path: string; type?: string };
  secret?: { secretName: string; defaultMode?: number };
}

export interface PodSpec {
  hostNetwork?: boolean;
  priorityClassName?: string;
  serviceAccountName?: string;
  automountServiceAccountToken?: boolean;
  terminationGracePeriodSeconds?: number;
  tolerations?: Array<Record<string, unknown>>;
  initContainers?: Container[];
  containers: Container[];
  volumes?: Volume[];
}

/** The pod template's spec of a DaemonSet. */
export function podSpecOf(daemonSet: KubeDoc): PodSpec {
  const spec = (daemonSet.spec as { template?: { spec?: PodSpec } } | undefined)?.template?.spec;
  if (!spec) throw new Error(`DaemonSet ${daemonSet.metadata?.name}: no spec.template.spec`);
  return spec;
}

/** The environment a container gets: name → value. `fields` gives fieldRef values (spec.nodeName → ...). */
export function resolveEnv(
  container: Container,
  configMaps: KubeDoc[],
  fields: Record<string, string>,
): Record<string, string> {
  const env: Record<string, string> = {};
  for (const v of container.env ?? []) {
    if (v.value !== undefined) env[v.name] = v.value;
    else if (v.valueFrom?.fieldRef) {
      const value = fields[v.valueFrom.fieldRef.fieldPath];
      if (value === undefined)
        throw new Error(
          `${container.name}: ${v.name} refers to field ${v.valueFrom.fieldRef.fieldPath}, which the test did not give`,
        );
      env[v.name] = value;
    } else if (v.valueFrom?.configMapKeyRef) {
      const ref = v.valueFrom.configMapKeyRef;
      const map = configMaps.find((c) => c.metadata?.name === ref.name);
      const data = (map?.data ?? {}) as Record<string, unknown>;
      if (!map)
        throw new Error(`${container.name}: ${v.name} refers to ConfigMap "${ref.name}", which is not in the manifest`);
      if (typeof data[ref.key] !== 'string')
        throw new Error(
          `${container.name}: ${v.name} refers to key "${ref.key}" of ConfigMap "${ref.name}", which has no such key`,
        );
      env[v.name] = data[ref.key] as string;
    } else {
      throw new Error(`${container.name}: ${v.name} has neither value nor a valueFrom this test resolves`);
    }
  }
  return env;
}

export interface DockerInstruction {
  /** Upper-case: FROM, RUN, COPY, ... */
  op: string;
  /** The rest of the line, continuation lines joined with a space. */
  text: string;
  /** The JSON-array form's elements (ENTRYPOINT ["tortie"]), when written that way. */
  json?: string[];
}

/** A Dockerfile's instructions, in order. */
export function parseDockerfile(text: string): DockerInstruction[] {
  const out: DockerInstruction[] = [];
  let pending = '';
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (pending === '' && (line === '' || line.startsWith('#'))) continue;
    if (line.startsWith('#')) continue; // a comment inside a continued instruction
    if (line.endsWith('\\')) {
      pending += `${line.slice(0, -1).trim()} `;
      continue;
    }
    const whole = (pending + line).trim();
    pending = '';
    if (whole === '') continue;
    const space = whole.search(/\s/);
    const op = (space < 0 ? whole : whole.slice(0, space)).toUpperCase();
    const rest = space < 0 ? '' : whole.slice(space + 1).trim();
    const instruction: DockerInstruction = { op, text: rest };
    if (rest.startsWith('[')) {
      const parsed: unknown = JSON.parse(rest);
      if (!Array.isArray(parsed) || !parsed.every((s) => typeof s === 'string'))
        throw new Error(`Dockerfile: ${op} ${rest}: not a JSON list of strings`);
      instruction.json = parsed as string[];
    }
    out.push(instruction);
  }
  if (pending !== '') throw new Error('Dockerfile: the last instruction ends with a continuation backslash');
  return out;
}
