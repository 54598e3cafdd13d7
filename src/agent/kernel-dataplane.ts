// The agent's kernel dataplane (TORTIE_DATAPLANE=kernel): felix (felix/dataplane.ts) over `ip` in this
// network namespace, and NetworkPolicy's nftables enforcer (src/policy/enforcer.ts) beside it — or the
// ones a test injects. What felix is told is ./dataplane-input.ts.

import {
  FelixDataplane,
  type DataplaneOptions,
  Iproute2Kernel,
  procSysIo,
  Nft,
  PolicyDataplane,
  missingPrograms,
  vxlanRunner,
  vxlanWatch,
} from '../../felix/index.js';
import type { Clock } from '../../bgp/index.js';
import { PolicyEnforcer } from '../policy/enforcer.js';
import type { Logger } from '../log.js';
import type { AgentConfig } from './config.js';

/** The part of felix's dataplane driver the agent uses. */
export type DataplaneLike = Pick<FelixDataplane, 'start' | 'stop' | 'update' | 'bgpSettled' | 'status' | 'programmed'>;

export interface KernelDataplaneDeps {
  /**
   * The kernel dataplane. Default: felix over `ip` in this process's network namespace. Tests pass one over
   * a MemoryKernel or another namespace.
   */
  createDataplane?: (options: Pick<DataplaneOptions, 'log' | 'resyncMs' | 'tunl0' | 'clock'>) => DataplaneLike;
  /** NetworkPolicy's nftables driver. Default: table inet tortie-filter here, unless createDataplane is injected. */
  createPolicyDataplane?: () => Pick<PolicyDataplane, 'apply' | 'resync'> | null;
}

/**
 * felix, started, and the policy enforcer (null when there is no policy driver); null without
 * TORTIE_DATAPLANE=kernel. felix's timers (route resync, debounce, tunl0/VXLAN repair) and the
 * enforcer's run on `clock`.
 */
export function startKernelDataplane(
  config: Pick<AgentConfig, 'dataplane' | 'routeRefreshMs' | 'tunl0StandIn' | 'nodeName'>,
  deps: KernelDataplaneDeps,
  log: Logger,
  clock: Clock,
): { dataplane: DataplaneLike; policy: PolicyEnforcer | null } | null {
  if (config.dataplane !== 'kernel') return null;
  const options = {
    log: log.child({ component: 'felix' }),
    resyncMs: config.routeRefreshMs,
    tunl0: { standIn: config.tunl0StandIn },
    clock,
  };
  // A missing program is named with its package once at startup (felix's own errors say it again per run).
  if (!deps.createDataplane) {
    for (const problem of missingPrograms(['ip', 'bridge', 'nft', 'sh']))
      log.error({ problem }, `felix cannot program the kernel: ${problem}`);
  }
  const dataplane = deps.createDataplane
    ? deps.createDataplane(options)
    : new FelixDataplane({
        ...options,
        kernel: new Iproute2Kernel(),
        reconnect: () => new Iproute2Kernel(),
        nft: new Nft(),
        sysctl: procSysIo(),
        vxlan: { run: vxlanRunner(), watch: vxlanWatch() },
      });
  dataplane.start();
  const policyDataplane = deps.createPolicyDataplane
    ? deps.createPolicyDataplane()
    : deps.createDataplane
      ? null
      : new PolicyDataplane(new Nft());
  const policy =
    policyDataplane !== null
      ? new PolicyEnforcer({
          dataplane: policyDataplane,
          node: config.nodeName,
          log: log.child({ component: 'policy' }),
          resyncMs: config.routeRefreshMs,
          timers: clock,
        })
      : null;
  return { dataplane, policy };
}
