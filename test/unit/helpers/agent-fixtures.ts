// Small fixtures for node agent tests: the host interfaces, agents stopped after each test, a resource
// with Calico's defaults, and a bounded wait.

import pino from 'pino';
import { afterEach } from 'vitest';
import { Agent, type AgentDeps, type SpeakerLike } from '../../../src/agent/agent.js';
import { parseAgentConfig } from '../../../src/agent/config.js';
import { MemoryDatastore } from '../../../src/datastore/memory.js';
import type { Datastore } from '../../../src/datastore/types.js';
import { API_VERSION, applyDefaults, type AnyResource } from '../../../src/resources/index.js';
import { FakeSpeaker } from './fake-speaker.js';
import { waitFor } from '../../harness/wait.js';

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
  return applyDefaults({
    apiVersion: API_VERSION,
    kind,
    metadata: { name, ...(namespace ? { namespace } : {}) },
    spec,
  } as AnyResource);
}

/** Polls `probe` every 5 ms (for at most 5 s: the harness's waitFor) until it gives a value; throws naming `what`. */
export function until<T>(
  probe: () => T | undefined | false,
  what: string,
): Promise<Exclude<T, undefined | null | false>> {
  return waitFor(probe, { what, timeoutMs: 5_000, intervalMs: 5 });
}

/**
 * An Agent for node-1 (IP from `env`, no dataplane, no health server, no control socket) on `ds` with fake
 * Speakers, stopped after the test. `deps` adds to or replaces what it is given (a logger, secrets, metrics).
 */
export function testAgent(
  env: Record<string, string>,
  ds: Datastore = new MemoryDatastore(),
  deps: Partial<AgentDeps> = {},
) {
  const speakers: FakeSpeaker[] = [];
  const config = parseAgentConfig(
    { NODENAME: 'node-1', TORTIE_DATAPLANE: 'none', TORTIE_HEALTH_PORT: '0', ...env },
    'unused',
  );
  const agent = new Agent(config, {
    datastore: ds,
    logger: pino({ level: 'silent' }),
    createSpeaker: (c) => {
      const s = new FakeSpeaker(c);
      speakers.push(s);
      return s as unknown as SpeakerLike;
    },
    interfaces: () => INTERFACES,
    serveControl: null,
    startHealth: null,
    coalesceMs: 1,
    version: 'test',
    ...deps,
  });
  running.push(agent);
  return { agent, ds, speakers, last: () => speakers[speakers.length - 1]! };
}
