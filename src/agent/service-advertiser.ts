// Service IP advertisement for the node agent: the default BGPConfiguration's service CIDRs, and the
// Services and EndpointSlices (per-Service /32 routes), watched (./service-watch.ts) only while a CIDR is
// configured, as Calico's route generator. The routes themselves are ./service-routes.ts (pure); this keeps
// the watch and the node-status warnings about it.

import type { Clock } from '../../bgp/index.js';
import type { Logger } from '../log.js';
import type { Resource } from '../resources/index.js';
import { serviceRoutes } from './service-routes.js';
import { ServiceWatch, type ServiceApi } from './service-watch.js';

export interface ServiceAdvertiserDeps {
  nodeName: string;
  /** Where Services and EndpointSlices are read from; null: only the service CIDRs are advertised. */
  api: ServiceApi | null;
  clock: Clock;
  log: Logger;
  /** Node status warnings (the agent's set): this keeps the `service advertisement: ` ones. */
  warnings: Set<string>;
  /** A Service or EndpointSlice changed: the agent re-plans. */
  onChange: () => void;
  stopping: () => boolean;
}

export class ServiceAdvertiser {
  private watch: ServiceWatch | null = null;

  constructor(private readonly deps: ServiceAdvertiserDeps) {}

  /** The service prefixes to originate; starts or stops the watch as the service CIDRs come and go. */
  routes(nodeLabels: Record<string, string>, bgpConfigurations: Array<Resource<'BGPConfiguration'>>): string[] {
    const api = this.deps.api;
    const first = serviceRoutes({
      nodeName: this.deps.nodeName,
      nodeLabels: nodeLabels,
      bgpConfigurations,
      services: [],
      endpointSlices: [],
    });
    if (first.configured && api !== null && this.watch === null && !this.deps.stopping()) {
      this.watch = new ServiceWatch(api, {
        clock: this.deps.clock,
        onChange: this.deps.onChange,
        onError: (message) =>
          this.deps.log.warn({ err: message }, 'service advertisement: Kubernetes watch failed; retrying'),
      });
      this.watch.start();
    } else if (!first.configured && this.watch !== null) {
      this.watch.stop();
      this.watch = null;
    }
    for (const w of [...this.deps.warnings]) if (w.startsWith('service advertisement: ')) this.deps.warnings.delete(w);
    if (first.configured && api === null) {
      this.deps.warnings.add(
        'service advertisement: per-Service /32 routes (externalTrafficPolicy Local, single-address entries) are not in effect: no Kubernetes API to read Services from (etcd datastore without KUBECONFIG); only the service CIDRs are advertised',
      );
    }
    const watchError = this.watch?.lastError;
    if (watchError !== undefined) this.deps.warnings.add(`service advertisement: ${watchError}`);
    if (this.watch === null) return first.prefixes;
    const snapshot = this.watch.snapshot();
    return serviceRoutes({
      nodeName: this.deps.nodeName,
      nodeLabels: nodeLabels,
      bgpConfigurations,
      services: snapshot.services,
      endpointSlices: snapshot.endpointSlices,
    }).prefixes;
  }

  stop(): void {
    this.watch?.stop();
    this.watch = null;
  }
}
