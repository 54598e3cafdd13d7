// A Calico v3 resource for a test to store, with Calico's defaults applied (what `tortie apply` would store).

import { API_VERSION, applyDefaults, type AnyResource } from '../../src/resources/index.js';

export function calicoResource(
  kind: AnyResource['kind'],
  name: string,
  spec: object,
  labels?: Record<string, string>,
): AnyResource {
  return applyDefaults({
    apiVersion: API_VERSION,
    kind,
    metadata: { name, ...(labels ? { labels } : {}) },
    spec,
  } as AnyResource);
}
