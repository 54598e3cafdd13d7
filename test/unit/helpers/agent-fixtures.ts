// Small fixtures for node agent tests: a resource with Calico's defaults, and a bounded wait.

import { API_VERSION, applyDefaults, type AnyResource } from '../../../src/resources/index.js';

/** A resource of `kind` with Calico's defaults applied (namespaced when `namespace` is given). */
export function res(kind: AnyResource['kind'], name: string, spec: object, namespace?: string): AnyResource {
  return applyDefaults({ apiVersion: API_VERSION, kind, metadata: { name, ...(namespace ? { namespace } : {}) }, spec } as AnyResource);
}

/** Polls `probe` every 5 ms, at most 400 times (2 s), until it gives a value; throws naming `what`. */
export async function until<T>(probe: () => T | undefined | false, what: string): Promise<T> {
  for (let i = 0; i < 400; i++) {
    const value = probe();
    if (value !== undefined && value !== false) return value;
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
  throw new Error(`timed out waiting for ${what}`);
}
