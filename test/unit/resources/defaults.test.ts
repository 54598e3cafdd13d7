// applyDefaults: Calico's defaults where a field is unset, nothing overwritten, the input not mutated.

import { describe, expect, it } from 'vitest';
import { applyDefaults, type Resource } from '../../../src/resources/index.js';

const meta = (name: string) => ({ apiVersion: 'projectcalico.org/v3' as const, metadata: { name } });

describe('applyDefaults', () => {
  it('fills an IPv4 IPPool as Calico does', () => {
    const pool: Resource<'IPPool'> = { ...meta('p'), kind: 'IPPool', spec: { cidr: '10.244.0.0/16' } };
    expect(applyDefaults(pool).spec).toEqual({
      cidr: '10.244.0.0/16',
      blockSize: 26,
      ipipMode: 'Never',
      vxlanMode: 'Never',
      nodeSelector: 'all()',
      natOutgoing: false,
      disabled: false,
      disableBGPExport: false,
      allowedUses: ['Workload', 'Tunnel'],
    });
  });

  it('uses blockSize 122 for an IPv6 pool', () => {
    const pool: Resource<'IPPool'> = { ...meta('p6'), kind: 'IPPool', spec: { cidr: 'fd00:10:244::/48' } };
    expect(applyDefaults(pool).spec.blockSize).toBe(122);
  });

  it('keeps what the user set, and treats an empty nodeSelector as unset', () => {
    const pool: Resource<'IPPool'> = {
      ...meta('p'),
      kind: 'IPPool',
      spec: {
        cidr: '10.244.0.0/16',
        blockSize: 28,
        ipipMode: 'Always',
        natOutgoing: true,
        nodeSelector: ' ',
        allowedUses: [],
      },
    };
    expect(applyDefaults(pool).spec).toMatchObject({
      blockSize: 28,
      ipipMode: 'Always',
      natOutgoing: true,
      nodeSelector: 'all()',
      allowedUses: ['Workload', 'Tunnel'],
    });
  });

  it('does not change its argument', () => {
    const pool: Resource<'IPPool'> = { ...meta('p'), kind: 'IPPool', spec: { cidr: '10.244.0.0/16' } };
    applyDefaults(pool);
    expect(pool.spec).toEqual({ cidr: '10.244.0.0/16' });
  });

  it('fills the default BGPConfiguration with mesh on, AS 64512, port 179', () => {
    expect(applyDefaults({ ...meta('default'), kind: 'BGPConfiguration', spec: {} }).spec).toEqual({
      nodeToNodeMeshEnabled: true,
      asNumber: 64512,
      listenPort: 179,
      logSeverityScreen: 'Info',
    });
    expect(
      applyDefaults({
        ...meta('default'),
        kind: 'BGPConfiguration',
        spec: { nodeToNodeMeshEnabled: false, asNumber: 65000 },
      }).spec,
    ).toMatchObject({ nodeToNodeMeshEnabled: false, asNumber: 65000 });
  });

  it('leaves node.<name> BGPConfigurations alone (they only override)', () => {
    expect(
      applyDefaults({ ...meta('node.node-1'), kind: 'BGPConfiguration', spec: { logSeverityScreen: 'Debug' } }).spec,
    ).toEqual({ logSeverityScreen: 'Debug' });
  });

  it('puts a WorkloadEndpoint without a namespace in default', () => {
    const wep: Resource<'WorkloadEndpoint'> = {
      ...meta('w'),
      kind: 'WorkloadEndpoint',
      spec: { node: 'n', interfaceName: 'cali1', ipNetworks: ['10.244.1.5/32'] },
    };
    expect(applyDefaults(wep).metadata.namespace).toBe('default');
  });

  it('adds nothing to a BGPPeer or Node', () => {
    const peer: Resource<'BGPPeer'> = {
      ...meta('p'),
      kind: 'BGPPeer',
      spec: { peerIP: '198.18.0.1', asNumber: 64513 },
    };
    expect(applyDefaults(peer)).toEqual(peer);
    const node: Resource<'Node'> = { ...meta('n'), kind: 'Node', spec: {} };
    expect(applyDefaults(node)).toEqual(node);
  });
});
