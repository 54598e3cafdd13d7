// Small fixtures for node agent tests: the host interfaces, agents stopped after each test, a resource
// with Calico's defaults, and a bounded wait.

import { afterEach } from 'vitest';
import type { Agent } from '../../../src/agent/agent.js';
import { API_VERSION, applyDefaults, type AnyResource } from '../../../src/resources/index.js';

/** The host interfaces an agent test sees: loopback and eth0 holding the node address 198.18.0.11/24. */
export const INTERFACES = [
  { iface: 'lo', address: '127.0.0.1', prefixLength: 8 },
  { iface: 'eth0', address: '198.18.0.11', prefixLength: 24 },
];

/** Agents a test started: each is stopped after the test (register it with `running.push`). */
export const running: Agent[] = [];
afterEach(async () => {
  for (const a of running.splice(0)) await a.stop();
});

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
