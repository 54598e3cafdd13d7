// What every IPAM operation shares: the datastore, time and randomness (injected), the compare-and-swap
// retry loop, the pools that select a node, the block list, and the IPAMHandle bookkeeping. claim.ts,
// assign.ts, release.ts and usage.ts are functions over one IpamStore; ipam.ts is the class callers use.

import { systemClock, type Clock } from '../../bgp/index.js';
import { AlreadyExistsError, ConflictError, NotFoundError, type Datastore } from '../datastore/types.js';
// selector.js itself, not the resources index: the index pulls in `yaml`, which the CNI plugin's ADD
// (this module, in a fresh process per pod) does not need.
import { parseSelector } from '../resources/selector.js';
import { blockName } from '../resources/ipam-names.js';
import { API_VERSION, type IPAMBlockSpec, type Resource } from '../resources/types.js';
import { defaultBlockSize, familyOf, netContains, parseNet, type Family } from './prefix.js';
import type { Block, IpamOptions, IpUse, Pool, PoolList } from './types.js';

/** Attempts of one compare-and-swap loop before giving up; enough for a few hundred concurrent writers. */
export const MAX_ATTEMPTS = 400;

export function blockResource(spec: IPAMBlockSpec, revision?: string): Block {
  return {
    apiVersion: API_VERSION,
    kind: 'IPAMBlock',
    metadata: { name: blockName(spec.cidr), ...(revision ? { resourceVersion: revision } : {}) },
    spec,
  };
}

export function poolBlockSize(pool: Pool): number {
  return pool.spec.blockSize ?? defaultBlockSize(pool.spec.cidr);
}

/** True when block `cidr` lies inside the pool's range. */
export function blockInPool(cidr: string, pool: Pool): boolean {
  return netContains(parseNet(pool.spec.cidr, 'IPPool cidr'), parseNet(cidr, 'block CIDR'));
}

/** True when the pool's CIDR is of `family` (absent: any family). */
export function poolOfFamily(pool: Pool, family: Family | undefined): boolean {
  return family === undefined || familyOf(pool.spec.cidr) === family;
}

export class IpamStore {
  readonly clock: Clock;
  readonly strictAffinity: boolean;
  readonly random: () => number;
  /** Claims in flight per node in this process: concurrent assigns on one node share one claim. */
  readonly claiming = new Map<string, Promise<string>>();

  constructor(
    readonly ds: Datastore,
    options: IpamOptions = {},
  ) {
    this.clock = options.clock ?? systemClock;
    this.strictAffinity = options.strictAffinity ?? false;
    this.random = options.random ?? Math.random;
  }

  sleep(ms: number): Promise<void> {
    return new Promise((resolve) => this.clock.setTimeout(resolve, ms));
  }

  /** Runs `attempt` until it returns a value; ConflictError/AlreadyExists mean "someone else wrote, read again". */
  async retrying<T>(what: string, attempt: () => Promise<T | undefined>): Promise<T> {
    for (let i = 0; i < MAX_ATTEMPTS; i++) {
      try {
        const result = await attempt();
        if (result !== undefined) return result;
      } catch (err) {
        if (!(err instanceof ConflictError) && !(err instanceof AlreadyExistsError)) throw err;
      }
      await this.sleep(Math.floor(this.random() * Math.min(50, 2 + i * 2)));
    }
    throw new Error(`${what}: gave up after ${MAX_ATTEMPTS} attempts, every one lost a compare-and-swap race`);
  }

  /**
   * Enabled pools selecting `node` (its Node labels) whose allowedUses include `use` (Calico's default: both
   * uses), optionally only the one named. `listed`: the IPPools as the caller already listed them (pools
   * are only read here, never written, so a list read a moment ago serves as well as a new one).
   */
  async poolsFor(
    node: string,
    poolName: string | undefined,
    use: IpUse = 'Workload',
    listed?: PoolList,
    family?: Family,
  ): Promise<Pool[]> {
    const [all, nodeResource] = await Promise.all([
      listed ?? this.ds.list('IPPool').then((l) => l.items),
      this.ds.get('Node', node),
    ]);
    const labels = nodeResource?.metadata.labels ?? {};
    if (poolName !== undefined && !all.some((p) => p.metadata.name === poolName)) {
      throw new Error(
        `pool "${poolName}" does not exist (pools: ${all.map((p) => p.metadata.name).join(', ') || 'none'})`,
      );
    }
    return all.filter(
      (p) =>
        (poolName === undefined || p.metadata.name === poolName) &&
        // assignmentMode Manual: only a request that names the pool gets addresses from it (Calico).
        (poolName !== undefined || p.spec.assignmentMode !== 'Manual') &&
        !p.spec.disabled &&
        poolOfFamily(p, family) &&
        (p.spec.allowedUses === undefined || p.spec.allowedUses.includes(use)) &&
        parseSelector(p.spec.nodeSelector ?? 'all()').matches(labels),
    );
  }

  /**
   * IPPool namespaceSelector, as Calico's IPAM: a pool with one serves only pods whose Namespace's labels
   * match (against no labels when there is no namespace, or no Namespace resource of that name); a pool the
   * request names is used whatever its selector. The Namespace (Kubernetes API, or the Namespace resources
   * stored in etcd) is read only when a candidate pool has a selector. Blocks are claimed ahead
   * (claimBlock) without it: a block serves whichever namespaces its pool selects.
   */
  async forNamespace(pools: Pool[], poolName: string | undefined, namespace: string | undefined): Promise<Pool[]> {
    if (poolName !== undefined || !pools.some((p) => (p.spec.namespaceSelector ?? '') !== '')) return pools;
    const labels = namespace === undefined ? {} : ((await this.ds.get('Namespace', namespace))?.metadata.labels ?? {});
    return pools.filter((p) => parseSelector(p.spec.namespaceSelector || 'all()').matches(labels));
  }

  async allBlocks(): Promise<Block[]> {
    return (await this.ds.list('IPAMBlock')).items.filter((b) => !b.spec.deleted);
  }

  /** Deletes `resource` if it is unchanged since read (compare-and-swap); gone already is fine. */
  async deleteIfUnchanged(resource: Resource<'BlockAffinity'> | Resource<'IPAMHandle'>): Promise<void> {
    try {
      await this.ds.delete(resource.kind, resource.metadata.name, {
        revision: resource.metadata.resourceVersion ?? '',
      });
    } catch (err) {
      if (!(err instanceof NotFoundError)) throw err;
    }
  }

  /**
   * Adds `delta` to the handle's count for `cidr`; deletes the handle when nothing is left. `createFirst`
   * (delta > 0, the handle is probably new): try creating it before reading; AlreadyExists means read it.
   */
  async adjustHandle(
    handleId: string,
    cidr: string,
    delta: number,
    options: { createFirst?: boolean } = {},
  ): Promise<void> {
    if (options.createFirst === true && delta > 0) {
      try {
        await this.ds.create({
          apiVersion: API_VERSION,
          kind: 'IPAMHandle',
          metadata: { name: handleId },
          spec: { handleID: handleId, block: { [cidr]: delta } },
        });
        return;
      } catch (err) {
        if (!(err instanceof AlreadyExistsError)) throw err;
      }
    }
    await this.retrying(`update IPAMHandle ${handleId}`, async () => {
      const current = await this.ds.get('IPAMHandle', handleId);
      if (!current) {
        if (delta <= 0) return true;
        await this.ds.create({
          apiVersion: API_VERSION,
          kind: 'IPAMHandle',
          metadata: { name: handleId },
          spec: { handleID: handleId, block: { [cidr]: delta } },
        });
        return true;
      }
      const counts = { ...current.spec.block };
      const n = (counts[cidr] ?? 0) + delta;
      if (n > 0) counts[cidr] = n;
      else delete counts[cidr];
      if (Object.keys(counts).length === 0) {
        await this.ds.delete('IPAMHandle', handleId, { revision: current.metadata.resourceVersion ?? '' });
      } else {
        await this.ds.update({ ...current, spec: { ...current.spec, block: counts } });
      }
      return true;
    });
  }
}
