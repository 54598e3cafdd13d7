// BGPFilter validation: Calico's CRD rules (cidr and matchOperator together, prefixLength only with a cidr,
// operations only on Accept) and its validator (interface names, prefix lengths per family, one community
// per match), one case per rule, each giving exactly the problem expected; Calico's own examples pass.

import { describe, expect, it } from 'vitest';
import {
  formatProblem,
  validateResource,
  type BGPFilterRule,
  type BGPFilterSpec,
  type Resource,
} from '../../../src/resources/index.js';

const filter = (spec: BGPFilterSpec, name = 'office'): Resource<'BGPFilter'> => ({
  apiVersion: 'projectcalico.org/v3',
  kind: 'BGPFilter',
  metadata: { name },
  spec,
});
const problems = (spec: BGPFilterSpec): string[] => validateResource(filter(spec)).map(formatProblem);
const v4 = (rule: Partial<BGPFilterRule>): BGPFilterSpec => ({ importV4: [{ action: 'Accept', ...rule }] });

describe('BGPFilter validation', () => {
  it('accepts Calico’s full example (every match field and every operation) and its minimal one', () => {
    expect(
      problems({
        importV4: [
          {
            cidr: '10.244.0.0/16',
            matchOperator: 'In',
            prefixLength: { min: 24, max: 28 },
            peerType: 'iBGP',
            communities: { values: ['65000:100'] },
            asPathPrefix: [65000],
            priority: 512,
            interface: 'eth0',
            action: 'Accept',
            operations: [
              { setPriority: { value: 256 } },
              { addCommunity: { value: '65000:200' } },
              { prependASPath: { prefix: [65001, 65002] } },
            ],
          },
          {
            cidr: '10.244.0.0/16',
            matchOperator: 'In',
            peerType: 'eBGP',
            communities: { values: ['65000:100:999'] },
            asPathPrefix: [65000, 65001],
            priority: 100,
            action: 'Accept',
            operations: [{ setPriority: { value: 1024 } }],
          },
          { action: 'Reject' },
        ],
        exportV4: [
          {
            cidr: '192.168.0.0/16',
            matchOperator: 'Equal',
            source: 'RemotePeers',
            interface: 'eth*',
            action: 'Accept',
          },
        ],
        exportV6: [{ cidr: 'fd00::/8', matchOperator: 'NotIn', prefixLength: { max: 64 }, action: 'Reject' }],
      }),
    ).toEqual([]);
  });

  const BAD: Array<[string, BGPFilterSpec, string]> = [
    [
      'cidr without matchOperator',
      v4({ cidr: '10.0.0.0/8' }),
      'spec.importV4[0].matchOperator: cidr and matchOperator must both be set or both be empty (matchOperator is missing)',
    ],
    [
      'matchOperator without cidr',
      v4({ matchOperator: 'In' }),
      'spec.importV4[0].cidr: cidr and matchOperator must both be set or both be empty (cidr is missing)',
    ],
    [
      'an IPv6 cidr in a V4 list',
      v4({ cidr: 'fd00::/8', matchOperator: 'In' }),
      'spec.importV4[0].cidr: "fd00::/8" is not an IPv4 CIDR (like 10.244.0.0/16)',
    ],
    [
      'an IPv4 cidr in a V6 list',
      { exportV6: [{ cidr: '10.0.0.0/8', matchOperator: 'In', action: 'Accept' }] },
      'spec.exportV6[0].cidr: "10.0.0.0/8" is not an IPv6 CIDR (like fd00:10:244::/48)',
    ],
    [
      'prefixLength without cidr',
      v4({ prefixLength: { min: 24 } }),
      'spec.importV4[0].prefixLength: cidr is required when prefixLength is set',
    ],
    [
      'prefixLength over 32',
      v4({ cidr: '10.0.0.0/8', matchOperator: 'In', prefixLength: { max: 33 } }),
      'spec.importV4[0].prefixLength.max: 33 is not a prefix length in 0..32',
    ],
    [
      'prefixLength min above max',
      v4({ cidr: '10.0.0.0/8', matchOperator: 'In', prefixLength: { min: 28, max: 24 } }),
      'spec.importV4[0].prefixLength: min 28 is greater than max 24: the rule could match nothing',
    ],
    [
      'interface with a slash',
      v4({ interface: 'eth0/1' }),
      'spec.importV4[0].interface: "eth0/1" is not an interface name (1..15 of letters, digits, "_", ".", "-", and "*" as a wildcard)',
    ],
    [
      'two communities',
      v4({ communities: { values: ['65000:1', '65000:2'] } }),
      'spec.importV4[0].communities.values: needs exactly one community (Calico matches one value per rule); it has 2',
    ],
    [
      'a community part out of range',
      v4({ communities: { values: ['65536:1'] } }),
      'spec.importV4[0].communities.values[0]: "65536:1" is not a community (standard "65001:100", each part 0..65535, or large "65001:100:200", each part 0..4294967295)',
    ],
    [
      'AS 0 in asPathPrefix',
      v4({ asPathPrefix: [0] }),
      'spec.importV4[0].asPathPrefix[0]: 0 is not an AS number in 1..4294967295 (asdot like "1.10" is accepted too)',
    ],
    ['priority 0', v4({ priority: 0 }), 'spec.importV4[0].priority: 0 is not a priority in 1..2147483646'],
    [
      'operations on Reject',
      v4({ action: 'Reject', operations: [{ addCommunity: { value: '65000:1' } }] }),
      'spec.importV4[0].operations: operations may only be used with action Accept (the action is "Reject")',
    ],
    [
      'an operation setting two fields',
      v4({ operations: [{ addCommunity: { value: '65000:1' }, setPriority: { value: 5 } }] }),
      'spec.importV4[0].operations[0]: sets addCommunity and setPriority: each operation sets exactly one of addCommunity, prependASPath, setPriority',
    ],
    [
      'an empty operation',
      v4({ operations: [{}] }),
      'spec.importV4[0].operations[0]: sets no field: each operation sets exactly one of addCommunity, prependASPath, setPriority',
    ],
    [
      'a bad community to add',
      v4({ operations: [{ addCommunity: { value: 'office' } }] }),
      'spec.importV4[0].operations[0].addCommunity.value: "office" is not a community (standard "65001:100", each part 0..65535, or large "65001:100:200", each part 0..4294967295)',
    ],
    [
      'an empty prepend',
      v4({ operations: [{ prependASPath: { prefix: [] } }] }),
      'spec.importV4[0].operations[0].prependASPath.prefix: has 0 AS numbers; 1..10 are allowed',
    ],
    [
      'setPriority out of range',
      v4({ operations: [{ setPriority: { value: 2147483647 } }] }),
      'spec.importV4[0].operations[0].setPriority.value: 2147483647 is not a priority in 1..2147483646',
    ],
  ];
  it.each(BAD)('%s', (_what, spec, expected) => {
    expect(problems(spec)).toEqual([expected]);
  });

  it('refuses a rule without an action and an unknown match field, naming them', () => {
    expect(problems({ importV4: [{} as BGPFilterRule] })).toEqual([
      'spec.importV4[0].action: action is required: Accept or Reject',
    ]);
    expect(problems({ importV4: [{ action: 'Accept', nextHop: '1.2.3.4' } as unknown as BGPFilterRule] })[0]).toMatch(
      /^spec\.importV4\[0\]\.nextHop: unknown field "nextHop"/,
    );
  });
});
