// `tortie node run|status|routes`: run is the node agent in the foreground (src/agent/agent.ts, configured
// by the environment as calico-node is); status and routes ask a running agent over its control socket
// (src/cli/node-status-command.ts). Exit codes: 0 ok, 1 runtime failure, 2 usage error.

import { UsageError } from './usage-error.js';

export const NODE_USAGE = `usage: tortie node <command>

commands:
  run                  the node agent, in the foreground (stops cleanly on SIGTERM/SIGINT)
  status [-o table|json]  BGP peers of the local agent, as calicoctl node status shows them
  routes [-o table|json]  the local agent's Loc-RIB
  stop [--graceful]    stops the local agent; --graceful: peers keep its routes while it restarts

'tortie node run' is configured by environment variables, Calico's names where they exist:
  NODENAME (default: hostname)   IP (autodetect | address[/len])   IP_AUTODETECTION_METHOD
  (first-found | interface=REGEX,... | skip-interface=REGEX,... | cidr=CIDR,... | can-reach=ADDRESS)
  AS   WAIT_FOR_DATASTORE   DATASTORE_TYPE (etcdv3 | kubernetes)   ETCD_ENDPOINTS   KUBECONFIG
  CALICO_IPV4POOL_CIDR   CALICO_IPV4POOL_BLOCK_SIZE   CALICO_IPV4POOL_IPIP (Always | CrossSubnet | Never)
  CALICO_IPV4POOL_NAT_OUTGOING   NO_DEFAULT_POOLS   FELIX_IPINIPMTU   FELIX_ROUTEREFRESHINTERVAL
  (seconds, default 90)   TORTIE_DATAPLANE (kernel: program routes and tunl0, the default | none:
  compute only)   TORTIE_TUNL0_STANDIN (manage: a non-IPIP device named tunl0 stands in, tests only)
  TORTIE_CTL_SOCKET   TORTIE_HEALTH_PORT (default 9099, 0 = off)
  TORTIE_LOG_LEVEL (default: BGPConfiguration logSeverityScreen)
`;

/** Dispatches `tortie node <args>`; resolves to the exit status. */
export async function runNodeCommand(args: string[], env: NodeJS.ProcessEnv): Promise<number> {
  const [sub, ...rest] = args;
  if (sub === undefined || sub === '--help' || sub === '-h' || sub === 'help') {
    process.stdout.write(NODE_USAGE);
    return sub === undefined ? 2 : 0;
  }
  switch (sub) {
    case 'run': {
      if (rest.includes('--help') || rest.includes('-h')) {
        process.stdout.write(NODE_USAGE);
        return 0;
      }
      if (rest.length > 0)
        throw new UsageError(
          `tortie node run takes no arguments (got "${rest.join(' ')}"); it is configured by environment variables\n\n${NODE_USAGE}`,
        );
      // The etcd client's TLS sets SNI to an IP address; Node's DEP0123 warning about it says nothing useful.
      process.noDeprecation = true;
      const { runNode } = await import('../agent/run-node.js');
      return runNode(env);
    }
    case 'status': {
      const { runNodeStatus } = await import('./node-status-command.js');
      return runNodeStatus(rest, env);
    }
    case 'routes': {
      const { runNodeRoutes } = await import('./node-status-command.js');
      return runNodeRoutes(rest, env);
    }
    case 'stop': {
      const { runNodeStop } = await import('./node-status-command.js');
      return runNodeStop(rest, env);
    }
  }
  throw new UsageError(`unknown command "node ${sub}" (expected run, status, routes or stop)\n\n${NODE_USAGE}`);
}
