// What the node agent (./agent.ts) is given: the datastore and logger, and every piece of I/O and time it
// would otherwise reach for itself (the Speaker, interfaces, servers, clock, secrets, /proc/net/netstat, the
// Kubernetes API for Services), so tests replace them. Each default is named where it is declared.

import type { Clock, SpeakerConfig } from '../../bgp/index.js';
import type { Datastore } from '../datastore/types.js';
import type { Logger } from '../log.js';
import type { InterfaceAddress } from './autodetect.js';
import type { KernelDataplaneDeps } from './kernel-dataplane.js';
import type { AgentMetrics } from './metrics.js';
import type { SecretSource } from './secrets.js';
import type { ServiceApi } from './service-watch.js';
import type { ServeControl, StartHealth } from './servers.js';
import type { SpeakerLike } from './speaker-keeper.js';

export interface AgentDeps extends KernelDataplaneDeps {
  datastore: Datastore;
  logger: Logger;
  /** Default: a real Speaker over TCP. */
  createSpeaker?: (config: SpeakerConfig) => SpeakerLike;
  /** Default: os.networkInterfaces(). */
  interfaces?: () => InterfaceAddress[];
  localAddressToward?: (target: string) => Promise<string>;
  /** Control socket and health server (default: ./control.ts serveControl, ./health.ts startHealthServer; null = none). */
  serveControl?: ServeControl | null;
  /** `tortie node stop` arrived on the control socket: the owner stops the agent (runNode). Default: stop() itself. */
  onStopRequest?: (graceful: boolean) => void;
  startHealth?: StartHealth | null;
  metrics?: AgentMetrics;
  /** MTU of an interface (tunl0's auto MTU); default /sys/class/net/<name>/mtu. */
  interfaceMtu?: (name: string) => number | undefined;
  /** Time: status times, the datastore wait, the Speaker's retry and settle timers, the cache, the Speaker. Default: the system clock. */
  clock?: Clock;
  /** Cache burst coalescing (ms). */
  coalesceMs?: number;
  /** Speaker connect retry (ms, default 2000). */
  connectRetryMs?: number;
  version?: string;
  /**
   * Addresses of the control plane (etcd endpoints, the Kubernetes API server), IPv4 text: no BGP route
   * containing one is accepted (import protection). runNode fills it from the datastore configuration.
   */
  controlPlane?: readonly string[];
  /** Where BGP passwords come from (src/agent/secrets.ts); absent: a peer with a password is not started. */
  secrets?: SecretSource | null;
  /** The text of /proc/net/netstat (TCP-MD5/GTSM drop counters for node status); default: read it. */
  readNetstat?: () => string | null;
  /**
   * The Kubernetes API that Services and EndpointSlices are read from (./service-watch.ts) for service IP
   * advertisement; null or absent: none (etcd without a kubeconfig) — only the service CIDRs are advertised.
   */
  serviceApi?: ServiceApi | null;
}
