// Every benchmark `npm run bench` knows. Add yours here; `--only <name>` selects by `Bench.name`.
import { agentConvergenceBench } from './agent-convergence.js';
import type { Bench } from './bench.js';
import { cniBench } from './cni.js';
import { codecBench } from './codec.js';
import { felixRoutesBench } from './felix-routes.js';
import { policyBench } from './policy.js';
import { routingClientsBench } from './routing-clients.js';
import { routingNodesBench } from './routing-nodes.js';
import { routingReceiveBench } from './routing-receive.js';
import { routingRrBench } from './routing-rr.js';

export const BENCHES: readonly Bench[] = [
  codecBench,
  routingReceiveBench,
  routingRrBench,
  routingNodesBench,
  routingClientsBench,
  agentConvergenceBench,
  felixRoutesBench,
  cniBench,
  policyBench,
];
