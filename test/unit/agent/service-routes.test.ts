// Service IP advertisement (src/agent/service-routes.ts): Calico's rules as a pure function of the default
// BGPConfiguration, this node and the Services/EndpointSlices; felix never programs a learned service
// route (src/agent/dataplane-input.ts → felix's route calculation); the export filter passes what a node
// originates and, on a reflector, its clients' service routes.

import { describe, expect, it } from 'vitest';
import { parsePrefix } from '../../../bgp/ip.js';
import { calculateRoutes } from '../../../felix/route-calc.js';
import { calicoExportFilter } from '../../../src/agent/advertise.js';
import type { CachedKind } from '../../../src/agent/cache.js';
import { dataplaneInput, type CacheView } from '../../../src/agent/dataplane-input.js';
import { buildImportContext, judgeImport } from '../../../src/agent/import-guard.js';
import {
  EXCLUDE_FROM_LOAD_BALANCERS_LABEL,
  serviceExportRanges,
  serviceRoutes,
  type EndpointSliceObject,
  type ServiceObject,
  type ServiceRoutesInput,
} from '../../../src/agent/service-routes.js';
import type { BGPConfigurationSpec, Resource } from '../../../src/resources/index.js';

const API = 'projectcalico.org/v3' as const;

function bgpConfig(spec: BGPConfigurationSpec, name = 'default'): Resource<'BGPConfiguration'> {
  return { apiVersion: API, kind: 'BGPConfiguration', metadata: { name }, spec };
}

const CIDRS = bgpConfig({
  serviceClusterIPs: [{ cidr: '10.96.0.0/12' }, { cidr: 'fd00:96::/108' }],
  serviceExternalIPs: [{ cidr: '203.0.113.0/24' }, { cidr: '198.51.100.7/32' }],
  serviceLoadBalancerIPs: [{ cidr: '192.0.2.0/25' }, { cidr: '192.0.2.200/32' }],
});
const GLOBAL = ['10.96.0.0/12', '192.0.2.0/25', '203.0.113.0/24'];

function service(name: string, spec: ServiceObject['spec'], ingress: string[] = [], namespace = 'shop'): ServiceObject {
  return {
    metadata: { name, namespace },
    spec: { ipFamilies: ['IPv4'], ...spec },
    ...(ingress.length > 0 ? { status: { loadBalancer: { ingress: ingress.map((ip) => ({ ip })) } } } : {}),
  };
}

function slice(
  name: string,
  svc: string,
  endpoints: Array<{ node: string; ready?: boolean }>,
  options: { namespace?: string; addressType?: string } = {},
): EndpointSliceObject {
  return {
    metadata: { name, namespace: options.namespace ?? 'shop', labels: { 'kubernetes.io/service-name': svc } },
    addressType: options.addressType ?? 'IPv4',
    endpoints: endpoints.map((e, i) => ({
      addresses: [`10.244.0.${10 + i}`],
      nodeName: e.node,
      ...(e.ready !== undefined ? { conditions: { ready: e.ready } } : {}),
    })),
  };
}

function routes(parts: Partial<ServiceRoutesInput>): string[] {
  return serviceRoutes({
    nodeName: 'node-2',
    nodeLabels: {},
    bgpConfigurations: [CIDRS],
    services: [],
    endpointSlices: [],
    ...parts,
  }).prefixes;
}

const LOCAL_LB = service(
  'web',
  {
    type: 'LoadBalancer',
    clusterIP: '10.96.0.10',
    clusterIPs: ['10.96.0.10'],
    externalTrafficPolicy: 'Local',
    externalIPs: ['203.0.113.9', '100.64.0.1'],
  },
  ['192.0.2.5', '192.0.2.130'],
);

describe('serviceRoutes: the ranges every node advertises', () => {
  it('serviceClusterIPs and the non-single external and LoadBalancer CIDRs, from every node (IPv6 left out)', () => {
    expect(routes({})).toEqual(GLOBAL);
    expect(routes({ nodeName: 'node-9', services: null })).toEqual(GLOBAL);
  });

  it('only the BGPConfiguration named default counts; none configured → nothing, and not configured', () => {
    const other = bgpConfig({ serviceClusterIPs: [{ cidr: '10.96.0.0/12' }] }, 'node.node-2');
    expect(
      serviceRoutes({
        nodeName: 'node-2',
        nodeLabels: {},
        bgpConfigurations: [other],
        services: [LOCAL_LB],
        endpointSlices: [slice('web-1', 'web', [{ node: 'node-2' }])],
      }),
    ).toEqual({
      prefixes: [],
      perService: [],
      configured: false,
    });
  });

  it('a node labelled exclude-from-external-load-balancers advertises no service route at all', () => {
    const labels = { [EXCLUDE_FROM_LOAD_BALANCERS_LABEL]: 'true' };
    expect(
      routes({
        nodeLabels: labels,
        services: [LOCAL_LB],
        endpointSlices: [slice('web-1', 'web', [{ node: 'node-2' }])],
      }),
    ).toEqual([]);
    expect(routes({ nodeLabels: { [EXCLUDE_FROM_LOAD_BALANCERS_LABEL]: 'false' } })).toEqual(GLOBAL);
  });
});

describe('serviceRoutes: externalTrafficPolicy Local', () => {
  const endpoints = (...nodes: Array<{ node: string; ready?: boolean }>): EndpointSliceObject[] => [
    slice('web-abc', 'web', nodes),
  ];

  it('with a ready endpoint on this node: cluster IP, external IPs inside serviceExternalIPs, ingress IPs inside serviceLoadBalancerIPs, as /32s', () => {
    const out = serviceRoutes({
      nodeName: 'node-2',
      nodeLabels: {},
      bgpConfigurations: [CIDRS],
      services: [LOCAL_LB],
      endpointSlices: endpoints({ node: 'node-2' }),
    });
    // 100.64.0.1 is outside serviceExternalIPs, 192.0.2.130 outside serviceLoadBalancerIPs: not advertised.
    expect(out.perService).toEqual(['10.96.0.10/32', '192.0.2.5/32', '203.0.113.9/32']);
    expect(out.prefixes).toEqual([
      '10.96.0.0/12',
      '10.96.0.10/32',
      '192.0.2.0/25',
      '192.0.2.5/32',
      '203.0.113.0/24',
      '203.0.113.9/32',
    ]);
  });

  it('without one: only the ranges — endpoints elsewhere, not ready, in another namespace or of another address family do not count', () => {
    expect(routes({ services: [LOCAL_LB], endpointSlices: endpoints({ node: 'node-3' }) })).toEqual(GLOBAL);
    expect(routes({ services: [LOCAL_LB], endpointSlices: endpoints({ node: 'node-2', ready: false }) })).toEqual(
      GLOBAL,
    );
    expect(
      routes({
        services: [LOCAL_LB],
        endpointSlices: [slice('web-abc', 'web', [{ node: 'node-2' }], { namespace: 'other' })],
      }),
    ).toEqual(GLOBAL);
    expect(
      routes({
        services: [LOCAL_LB],
        endpointSlices: [slice('web-abc', 'web', [{ node: 'node-2' }], { addressType: 'IPv6' })],
      }),
    ).toEqual(GLOBAL);
    expect(routes({ services: [LOCAL_LB], endpointSlices: [] })).toEqual(GLOBAL);
  });

  it('conditions.ready absent counts as ready; any of the Service’s slices may hold the local endpoint', () => {
    expect(routes({ services: [LOCAL_LB], endpointSlices: endpoints({ node: 'node-2' }) })).toContain('10.96.0.10/32');
    const two = [
      slice('web-a', 'web', [{ node: 'node-2', ready: false }]),
      slice('web-b', 'web', [{ node: 'node-3' }, { node: 'node-2', ready: true }]),
    ];
    expect(routes({ services: [LOCAL_LB], endpointSlices: two })).toContain('10.96.0.10/32');
  });

  it('the endpoint moving to another node moves the /32 with it', () => {
    const slices = endpoints({ node: 'node-3' });
    expect(routes({ nodeName: 'node-2', services: [LOCAL_LB], endpointSlices: slices })).not.toContain('10.96.0.10/32');
    expect(routes({ nodeName: 'node-3', services: [LOCAL_LB], endpointSlices: slices })).toContain('10.96.0.10/32');
  });

  it('cluster IPs only when serviceClusterIPs is configured; headless, ExternalName and IPv6 addresses never', () => {
    const noCluster = bgpConfig({ serviceExternalIPs: [{ cidr: '203.0.113.0/24' }] });
    expect(
      routes({ bgpConfigurations: [noCluster], services: [LOCAL_LB], endpointSlices: endpoints({ node: 'node-2' }) }),
    ).toEqual(['203.0.113.0/24', '203.0.113.9/32']);
    const headless = service('web', {
      clusterIP: 'None',
      externalTrafficPolicy: 'Local',
      externalIPs: ['203.0.113.9'],
    });
    expect(routes({ services: [headless], endpointSlices: endpoints({ node: 'node-2' }) })).toEqual(GLOBAL);
    const external = service('web', { type: 'ExternalName', clusterIP: '10.96.0.10', externalTrafficPolicy: 'Local' });
    expect(routes({ services: [external], endpointSlices: endpoints({ node: 'node-2' }) })).toEqual(GLOBAL);
    const dual = service('web', {
      type: 'NodePort',
      clusterIP: '10.96.0.10',
      clusterIPs: ['10.96.0.10', 'fd00:96::10'],
      ipFamilies: ['IPv4', 'IPv6'],
      externalTrafficPolicy: 'Local',
    });
    expect(routes({ services: [dual], endpointSlices: endpoints({ node: 'node-2' }) })).toEqual([
      '10.96.0.0/12',
      '10.96.0.10/32',
      '192.0.2.0/25',
      '203.0.113.0/24',
    ]);
  });

  it('internalTrafficPolicy plays no part (Calico reads only externalTrafficPolicy)', () => {
    const itp = service('web', { clusterIP: '10.96.0.10', internalTrafficPolicy: 'Local' });
    expect(routes({ services: [itp], endpointSlices: endpoints({ node: 'node-2' }) })).toEqual(GLOBAL);
  });
});

describe('serviceRoutes: externalTrafficPolicy Cluster', () => {
  it('no /32 when the ranges cover the addresses (LoadBalancer aggregation, Calico’s default)', () => {
    const lb = service(
      'web',
      { type: 'LoadBalancer', clusterIP: '10.96.0.10', externalTrafficPolicy: 'Cluster', externalIPs: ['203.0.113.9'] },
      ['192.0.2.5'],
    );
    expect(routes({ services: [lb], endpointSlices: [slice('web-abc', 'web', [{ node: 'node-2' }])] })).toEqual(GLOBAL);
  });

  it('a LoadBalancer ingress IP in a single-address serviceLoadBalancerIPs entry: its /32s from every node, endpoints or not', () => {
    const lb = service('web', { type: 'LoadBalancer', clusterIP: '10.96.0.10', externalTrafficPolicy: 'Cluster' }, [
      '192.0.2.200',
    ]);
    for (const nodeName of ['node-1', 'node-2'])
      expect(routes({ nodeName, services: [lb] })).toEqual([
        '10.96.0.0/12',
        '10.96.0.10/32',
        '192.0.2.0/25',
        '192.0.2.200/32',
        '203.0.113.0/24',
      ]);
    // Outside every serviceLoadBalancerIPs entry: not advertised.
    const outside = service(
      'web',
      { type: 'LoadBalancer', clusterIP: '10.96.0.10', externalTrafficPolicy: 'Cluster' },
      ['192.0.2.250'],
    );
    expect(routes({ services: [outside] })).toEqual(GLOBAL);
  });

  it('an external IP in a single-address serviceExternalIPs entry: its /32s from every node', () => {
    const np = service('web', {
      type: 'NodePort',
      clusterIP: '10.96.0.10',
      externalTrafficPolicy: 'Cluster',
      externalIPs: ['198.51.100.7'],
    });
    expect(routes({ nodeName: 'node-7', services: [np] })).toEqual([
      '10.96.0.0/12',
      '10.96.0.10/32',
      '192.0.2.0/25',
      '198.51.100.7/32',
      '203.0.113.0/24',
    ]);
  });

  it('a single-address entry is never a global range', () => {
    const only = bgpConfig({
      serviceExternalIPs: [{ cidr: '198.51.100.7/32' }],
      serviceLoadBalancerIPs: [{ cidr: '192.0.2.200/32' }],
    });
    expect(
      serviceRoutes({
        nodeName: 'node-2',
        nodeLabels: {},
        bgpConfigurations: [only],
        services: [],
        endpointSlices: [],
      }),
    ).toEqual({ prefixes: [], perService: [], configured: true });
  });
});

describe('service routes on the way out and in', () => {
  const pools: Array<Resource<'IPPool'>> = [
    { apiVersion: API, kind: 'IPPool', metadata: { name: 'default' }, spec: { cidr: '10.244.0.0/16', blockSize: 26 } },
    {
      apiVersion: API,
      kind: 'IPPool',
      metadata: { name: 'quiet' },
      spec: { cidr: '10.245.0.0/16', blockSize: 26, disableBGPExport: true },
    },
  ];

  it('export: what this node originates passes (a service /32 too); another node’s service route passes only on a reflector', () => {
    const node = calicoExportFilter(pools, serviceExportRanges([CIDRS], false));
    expect(node(parsePrefix('10.96.0.10/32'), true)).toBe(true);
    expect(node(parsePrefix('10.96.0.10/32'), false)).toBe(false);
    expect(node(parsePrefix('10.245.1.0/26'), true)).toBe(false); // a disableBGPExport pool refuses even our own
    const reflector = calicoExportFilter(pools, serviceExportRanges([CIDRS], true));
    expect(reflector(parsePrefix('10.96.0.10/32'), false)).toBe(true);
    expect(reflector(parsePrefix('192.0.2.200/32'), false)).toBe(true);
    expect(reflector(parsePrefix('100.64.0.1/32'), false)).toBe(false);
  });

  it('import: a service route from a peer is refused by a node and taken by a reflector', () => {
    const context = (reflector: boolean) =>
      buildImportContext({
        nodeName: 'node-1',
        subnet: '198.18.0.11/24',
        ownBlocks: [],
        pools,
        blocks: [],
        affinities: [],
        nodes: [],
        bgpConfigurations: [CIDRS],
        controlPlane: [],
        reflector,
      });
    const route = { prefix: parsePrefix('10.96.0.10/32'), nextHop: 0xc612000c };
    expect(judgeImport(route, 'node', context(false))).toBe('service-range');
    expect(judgeImport(route, 'node', context(true))).toBeNull();
  });

  it('felix never programs a learned route inside a service CIDR (a reflector’s Loc-RIB holds them)', () => {
    const lists: Partial<{ [K in CachedKind]: Array<Resource<K>> }> = { IPPool: pools, BGPConfiguration: [CIDRS] };
    const cache: CacheView = { list: ((kind: CachedKind) => lists[kind] ?? []) as CacheView['list'] };
    const input = dataplaneInput({
      nodeName: 'node-1',
      node: { address: '198.18.0.11', prefixLength: 24, hostInterface: 'eth0' },
      cache,
      bgpRoutes: [
        { prefix: '10.96.0.0/12', nextHop: '198.18.0.12', from: '198.18.0.12' },
        { prefix: '10.96.0.10/32', nextHop: '198.18.0.12', from: '198.18.0.12' },
        { prefix: '192.0.2.200/32', nextHop: '198.18.0.12', from: '198.18.0.12' },
        { prefix: '203.0.113.0/24', nextHop: '198.18.0.12', from: '198.18.0.12' },
        { prefix: '10.244.1.0/26', nextHop: '198.18.0.12', from: '198.18.0.12' },
        { prefix: '100.64.0.0/24', nextHop: '198.18.0.1', from: '198.18.0.1' },
      ],
      bgpPortGuard: false,
      interfaceMtu: () => 1500,
    });
    expect(input.bgpRoutes.map((r) => r.prefix)).toEqual(['10.244.1.0/26', '100.64.0.0/24']);
    const { vxlan: _vxlan, ...calcInput } = input; // no VXLAN pool here
    const kernel = calculateRoutes({ ...calcInput, tunnelUsable: false }).routes.map((r) => r.dst);
    expect(kernel).toContain('10.244.1.0/26');
    expect(kernel).toContain('100.64.0.0/24');
    for (const service of ['10.96.0.0/12', '10.96.0.10/32', '192.0.2.200/32', '203.0.113.0/24'])
      expect(kernel).not.toContain(service);
  });
});
