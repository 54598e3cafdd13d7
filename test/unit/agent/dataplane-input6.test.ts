// felix's IPv6 input from the cache (src/agent/dataplane-input6.ts): IPv6 pools, this node's confirmed
// IPv6 blocks, its workloads' IPv6 addresses, other nodes' IPv6 blocks and their Node.spec.bgp.ipv6Address.

import { describe, expect, it } from 'vitest';
import { dataplaneInput6 } from '../../../src/agent/dataplane-input6.js';
import type { CacheView } from '../../../src/agent/dataplane-input.js';
import { calculateRoutes6 } from '../../../felix/route-calc6.js';
import { newBlock } from '../../../src/ipam/block.js';
import { API_VERSION, type Kind, type Resource } from '../../../src/resources/types.js';

function cacheOf(resources: Array<Resource<Kind>>): CacheView {
  return { list: ((kind: Kind) => resources.filter((r) => r.kind === kind)) as CacheView['list'] };
}

const r = <K extends Kind>(kind: K, name: string, spec: Resource<K>['spec'], namespace?: string): Resource<K> =>
  ({ apiVersion: API_VERSION, kind, metadata: { name, ...(namespace ? { namespace } : {}) }, spec }) as Resource<K>;

describe('dataplaneInput6', () => {
  it("Node.spec.bgp.ipv6Address: other nodes' IPv6 blocks are routed via it", () => {
    const cache = cacheOf([
      r('IPPool', 'v4', { cidr: '10.244.0.0/16' }),
      r('IPPool', 'v6', { cidr: 'fd00:10:244::/64', natOutgoing: true }),
      r('IPAMBlock', 'a', newBlock('fd00:10:244::/122', 'node-a')),
      r('IPAMBlock', 'b', newBlock('fd00:10:244::40/122', 'node-b')),
      r('IPAMBlock', 'v4', newBlock('10.244.0.0/26', 'node-b')),
      r('BlockAffinity', 'a', { state: 'confirmed', node: 'node-a', cidr: 'fd00:10:244::/122' }),
      r('Node', 'node-a', { bgp: { ipv4Address: '198.18.54.11/24', ipv6Address: 'fd00:54::11/64' } }),
      r('Node', 'node-b', { bgp: { ipv4Address: '198.18.54.12/24', ipv6Address: 'fd00:54::12/64' } }),
      r(
        'WorkloadEndpoint',
        'node--a-k8s-web-eth0',
        { node: 'node-a', pod: 'web', interfaceName: 'cali123', ipNetworks: ['10.244.0.1/32', 'fd00:10:244::1/128'] },
        'default',
      ),
    ]);
    const input = dataplaneInput6('node-a', 'eth0', cache);
    expect(input).toMatchObject({
      pools: [{ cidr: 'fd00:10:244::/64', natOutgoing: true }],
      localBlocks: ['fd00:10:244::/122'],
      remoteBlocks: [{ cidr: 'fd00:10:244::40/122', node: 'node-b' }],
      workloads: [{ ip: 'fd00:10:244::1/128', interfaceName: 'cali123', namespace: 'default', pod: 'web' }],
    });
    expect(calculateRoutes6(input!).routes.find((x) => x.dst === 'fd00:10:244::40/122')).toMatchObject({
      via: 'fd00:54::12',
      dev: 'eth0',
    });
    expect(dataplaneInput6('node-a', 'eth0', cacheOf([r('IPPool', 'v4', { cidr: '10.244.0.0/16' })]))).toBeNull();
  });
});
