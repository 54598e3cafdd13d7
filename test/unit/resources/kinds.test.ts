// resolveKind (every name calicoctl users type) and resourceKey.

import { describe, expect, it } from 'vitest';
import { KINDS, resolveKind, resourceKey, type Kind } from '../../../src/resources/index.js';

const NAMES: Array<[string, Kind]> = [
  ['ippool', 'IPPool'],
  ['ippools', 'IPPool'],
  ['IPPool', 'IPPool'],
  ['pool', 'IPPool'],
  ['pools', 'IPPool'],
  ['bgppeer', 'BGPPeer'],
  ['BGPPeers', 'BGPPeer'],
  ['bgpfilter', 'BGPFilter'],
  ['bgpfilters', 'BGPFilter'],
  ['BGPFilter', 'BGPFilter'],
  ['bgpconfig', 'BGPConfiguration'],
  ['bgpconfiguration', 'BGPConfiguration'],
  ['bgpconfigurations', 'BGPConfiguration'],
  ['node', 'Node'],
  ['nodes', 'Node'],
  ['Node', 'Node'],
  ['workloadendpoint', 'WorkloadEndpoint'],
  ['workloadendpoints', 'WorkloadEndpoint'],
  ['wep', 'WorkloadEndpoint'],
  ['weps', 'WorkloadEndpoint'],
  ['ipamblock', 'IPAMBlock'],
  ['ipamblocks', 'IPAMBlock'],
  ['blockaffinity', 'BlockAffinity'],
  ['blockaffinities', 'BlockAffinity'],
  ['ipamhandle', 'IPAMHandle'],
  ['ipamhandles', 'IPAMHandle'],
  ['networkpolicy', 'NetworkPolicy'],
  ['networkpolicies', 'NetworkPolicy'],
  ['netpol', 'NetworkPolicy'],
  ['knp', 'NetworkPolicy'],
  ['namespace', 'Namespace'],
  ['namespaces', 'Namespace'],
  ['ns', 'Namespace'],
];

describe('resolveKind', () => {
  it('knows a name for every kind', () => {
    expect(new Set(NAMES.map(([, k]) => k))).toEqual(new Set(KINDS));
  });

  it.each(NAMES)('%s → %s', (text, kind) => {
    expect(resolveKind(text)).toBe(kind);
  });

  it('refuses an unknown name, listing the accepted ones', () => {
    expect(() => resolveKind('globalnetworkpolicy')).toThrow(
      /^resource kind "globalnetworkpolicy" is not known; accepted \(case-insensitive\): ippool\|ippools\|pool.*wep/,
    );
  });
});

describe('resourceKey', () => {
  it('is Kind/name, or Kind/namespace/name for WorkloadEndpoints', () => {
    expect(resourceKey({ kind: 'IPPool', metadata: { name: 'p1' } })).toBe('IPPool/p1');
    expect(resourceKey({ kind: 'WorkloadEndpoint', metadata: { name: 'w', namespace: 'ns' } })).toBe(
      'WorkloadEndpoint/ns/w',
    );
    expect(resourceKey({ kind: 'WorkloadEndpoint', metadata: { name: 'w' } })).toBe('WorkloadEndpoint/default/w');
  });
});
