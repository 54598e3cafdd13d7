import { describe, expect, it } from 'vitest';
import { calculateRoutes } from '../../../felix/route-calc.js';
import { interfaceNameProblem, workloadInterfaceName } from '../../../felix/interface-names.js';
import { type CalcInput, type CalcPool } from '../../../felix/calc-types.js';
import { describeRoute, FELIX_ROUTE_PROTOCOL, type DesiredRoute } from '../../../felix/routes.js';

// The node of the issue's examples: 192.168.31.201/24 on eth0, block 10.244.196.128/26.
function input(over: Partial<CalcInput> = {}): CalcInput {
  return {
    node: { ip: '192.168.31.201/24', hostInterface: 'eth0' },
    pools: [{ cidr: '10.244.0.0/16', ipipMode: 'Always' }],
    localBlocks: [],
    workloads: [],
    bgpRoutes: [],
    tunnelUsable: true,
    ...over,
  };
}

/** The routes as `ip route` prints them: the expectations read like the issue. */
function shown(routes: DesiredRoute[]): string[] {
  return routes.map(describeRoute);
}

describe('workloadInterfaceName', () => {
  // Golden values computed outside this code: `printf %s default.nginx | sha1sum` → c440f455693b69cd...
  const GOLDEN: Array<[string, string, string]> = [
    ['default', 'nginx', 'calic440f455693'],
    ['kube-system', 'coredns-5d78c9869d-abcde', 'cali4d5f75c480c'],
  ];
  it.each(GOLDEN)('%s/%s → %s', (ns, pod, name) => {
    expect(GOLDEN.length).toBeGreaterThan(0);
    expect(workloadInterfaceName(ns, pod)).toBe(name);
    expect(interfaceNameProblem(name)).toBeNull();
  });

  it('spots names Linux refuses', () => {
    expect(interfaceNameProblem('')).toMatch(/empty/);
    expect(interfaceNameProblem('cali0123456789abc')).toMatch(/17 bytes long \(Linux allows at most 15\)/);
    expect(interfaceNameProblem('eth0:1')).toMatch(/":"/);
    expect(interfaceNameProblem('..')).toMatch(/"\."/);
    expect(interfaceNameProblem('eth0')).toBeNull();
  });
});

describe('calculateRoutes: local blocks and workloads', () => {
  it("produces the issue's blackhole and workload routes, proto 80", () => {
    const result = calculateRoutes(
      input({
        localBlocks: ['10.244.196.128/26'],
        workloads: [
          { ip: '10.244.196.129', interfaceName: 'calie8e9a5cf531', namespace: 'default', pod: 'a' },
          { ip: '10.244.196.130/32', namespace: 'default', pod: 'nginx' },
        ],
      }),
    );
    expect(shown(result.routes)).toEqual([
      'blackhole 10.244.196.128/26 proto 80',
      '10.244.196.129 dev calie8e9a5cf531 proto 80 scope link',
      '10.244.196.130 dev calic440f455693 proto 80 scope link',
    ]);
    expect(result.routes.map((r) => r.class)).toEqual(['blackhole', 'workload', 'workload']);
    expect(result.routes[1]).toEqual({
      dst: '10.244.196.129/32',
      type: 'unicast',
      dev: 'calie8e9a5cf531',
      scope: 'link',
      proto: 80,
      class: 'workload',
    });
    expect(result.warnings).toEqual([]);
  });

  it('a /32 block gets no blackhole (as Calico renders it): its one address is a workload route or nothing', () => {
    const result = calculateRoutes(
      input({
        localBlocks: ['10.244.196.128/26', '10.2.0.1/32'],
        workloads: [{ ip: '10.2.0.1', namespace: 'default', pod: 'a' }],
      }),
    );
    expect(shown(result.routes).filter((r) => r.startsWith('blackhole'))).toEqual([
      'blackhole 10.244.196.128/26 proto 80',
    ]);
    expect(shown(result.routes).some((r) => /^10\.2\.0\.1 dev cali[0-9a-f]{11} proto 80 scope link$/.test(r))).toBe(
      true,
    );
  });

  it('keeps blackholes for blocks of vxlan, disabled or deleted pools (they do not depend on encapsulation)', () => {
    const result = calculateRoutes(
      input({
        pools: [
          { cidr: '10.244.0.0/16', ipipMode: 'Never', vxlanMode: 'Always' },
          { cidr: '10.245.0.0/16', ipipMode: 'Always', disabled: true },
        ],
        localBlocks: ['10.244.1.0/26', '10.245.1.0/26', '10.99.0.0/26'],
      }),
    );
    expect(shown(result.routes)).toEqual([
      'blackhole 10.99.0.0/26 proto 80',
      'blackhole 10.244.1.0/26 proto 80',
      'blackhole 10.245.1.0/26 proto 80',
    ]);
  });

  it('skips malformed blocks and workloads with a warning naming the value', () => {
    const result = calculateRoutes(
      input({
        localBlocks: ['10.244.196.129/26', 'ten/26'],
        workloads: [
          { ip: '10.244.196.129/24', namespace: 'ns', pod: 'p1' },
          { ip: '10.244.196.130', interfaceName: 'a-very-long-interface-name', namespace: 'ns', pod: 'p2' },
        ],
      }),
    );
    expect(result.routes).toEqual([]);
    expect(result.warnings).toHaveLength(4);
    expect(result.warnings.join('\n')).toContain(
      'local block "10.244.196.129/26" has host bits set (did you mean 10.244.196.128/26?)',
    );
    expect(result.warnings.join('\n')).toContain('"ten" is not a dotted-quad');
    expect(result.warnings.join('\n')).toContain(
      'workload ns/p1: ip "10.244.196.129/24" is not an IPv4 address or a /32',
    );
    expect(result.warnings.join('\n')).toContain(
      'workload ns/p2: interfaceName "a-very-long-interface-name" is 26 bytes long',
    );
  });
});

// Remote blocks: pool mode × where the remote node is → the route the issue asks for.
// [pool mode, next hop, expected route or null (none), class]
const NODE_2_SAME_SUBNET = '192.168.31.202';
const NODE_3_OTHER_SUBNET = '192.168.40.7';
const REMOTE_CASES: Array<[CalcPool['ipipMode'], string, string, DesiredRoute['class']]> = [
  ['Always', NODE_2_SAME_SUBNET, '10.244.140.64/26 via 192.168.31.202 dev tunl0 proto 80 onlink', 'tunnel'],
  ['Always', NODE_3_OTHER_SUBNET, '10.244.140.64/26 via 192.168.40.7 dev tunl0 proto 80 onlink', 'tunnel'],
  ['Never', NODE_2_SAME_SUBNET, '10.244.140.64/26 via 192.168.31.202 dev eth0 proto 80 onlink', 'direct'],
  ['Never', NODE_3_OTHER_SUBNET, '10.244.140.64/26 via 192.168.40.7 dev eth0 proto 80 onlink', 'direct'],
  ['CrossSubnet', NODE_2_SAME_SUBNET, '10.244.140.64/26 via 192.168.31.202 dev eth0 proto 80 onlink', 'direct'],
  ['CrossSubnet', NODE_3_OTHER_SUBNET, '10.244.140.64/26 via 192.168.40.7 dev tunl0 proto 80 onlink', 'tunnel'],
];

describe('calculateRoutes: remote blocks by ipipMode', () => {
  it('covers every mode and both subnets', () => {
    expect(REMOTE_CASES.length).toBe(6);
  });

  it.each(REMOTE_CASES)('%s, next hop %s → %s', (mode, nextHop, expected, cls) => {
    const result = calculateRoutes(
      input({
        pools: [{ cidr: '10.244.0.0/16', ipipMode: mode }],
        bgpRoutes: [{ prefix: '10.244.140.64/26', nextHop }],
      }),
    );
    expect(shown(result.routes)).toEqual([expected]);
    expect(result.routes[0]?.class).toBe(cls);
    expect(result.warnings).toEqual([]);
  });

  it('CrossSubnet with nodes in two subnets: one route each way', () => {
    const result = calculateRoutes(
      input({
        pools: [{ cidr: '10.244.0.0/16', ipipMode: 'CrossSubnet' }],
        localBlocks: ['10.244.196.128/26'],
        bgpRoutes: [
          { prefix: '10.244.140.64/26', nextHop: NODE_2_SAME_SUBNET },
          { prefix: '10.244.7.0/26', nextHop: NODE_3_OTHER_SUBNET },
          { prefix: '10.244.7.64/26', nextHop: NODE_3_OTHER_SUBNET },
        ],
      }),
    );
    expect(shown(result.routes)).toEqual([
      '10.244.7.0/26 via 192.168.40.7 dev tunl0 proto 80 onlink',
      '10.244.7.64/26 via 192.168.40.7 dev tunl0 proto 80 onlink',
      '10.244.140.64/26 via 192.168.31.202 dev eth0 proto 80 onlink',
      'blackhole 10.244.196.128/26 proto 80',
    ]);
  });

  it("routes a disabled pool's remote blocks as usual (disabled only stops new assignments)", () => {
    const result = calculateRoutes(
      input({
        pools: [{ cidr: '10.244.0.0/16', ipipMode: 'Never', disabled: true }],
        bgpRoutes: [{ prefix: '10.244.140.64/26', nextHop: NODE_2_SAME_SUBNET }],
      }),
    );
    expect(shown(result.routes)).toEqual(['10.244.140.64/26 via 192.168.31.202 dev eth0 proto 80 onlink']);
  });

  it('a /32 BGP route for a borrowed address inside a pool follows the pool too', () => {
    const result = calculateRoutes(
      input({ bgpRoutes: [{ prefix: '10.244.196.140/32', nextHop: NODE_3_OTHER_SUBNET }] }),
    );
    expect(shown(result.routes)).toEqual(['10.244.196.140 via 192.168.40.7 dev tunl0 proto 80 onlink']);
  });

  it('uses the most specific pool when pools overlap', () => {
    const result = calculateRoutes(
      input({
        pools: [
          { cidr: '10.244.0.0/16', ipipMode: 'Always' },
          { cidr: '10.244.128.0/17', ipipMode: 'Never' },
        ],
        bgpRoutes: [
          { prefix: '10.244.140.64/26', nextHop: NODE_3_OTHER_SUBNET },
          { prefix: '10.244.1.0/26', nextHop: NODE_3_OTHER_SUBNET },
        ],
      }),
    );
    expect(shown(result.routes)).toEqual([
      '10.244.1.0/26 via 192.168.40.7 dev tunl0 proto 80 onlink',
      '10.244.140.64/26 via 192.168.40.7 dev eth0 proto 80 onlink',
    ]);
  });
});

describe('calculateRoutes: the /32 node address trap', () => {
  it('tunnels CrossSubnet routes and says so, with the address, the count and the fix', () => {
    const result = calculateRoutes(
      input({
        node: { ip: '192.168.31.201/32', hostInterface: 'eth0' },
        pools: [{ cidr: '10.244.0.0/16', ipipMode: 'CrossSubnet' }],
        bgpRoutes: [
          { prefix: '10.244.140.64/26', nextHop: NODE_2_SAME_SUBNET },
          { prefix: '10.244.7.0/26', nextHop: NODE_3_OTHER_SUBNET },
        ],
      }),
    );
    expect(result.routes.map((r) => r.dev)).toEqual(['tunl0', 'tunl0']);
    expect(result.warnings).toHaveLength(1);
    expect(result.warnings[0]).toMatch(/node\.ip "192\.168\.31\.201\/32" has no useful prefix length \(\/32\)/);
    expect(result.warnings[0]).toMatch(/CrossSubnet pool 10\.244\.0\.0\/16/);
    expect(result.warnings[0]).toMatch(/all 2 remote route\(s\) in it go through tunl0/);
    expect(result.warnings[0]).toMatch(/IP=addr\/len/);
  });

  it('warns even before any remote block exists, and about a missing length', () => {
    const result = calculateRoutes(
      input({
        node: { ip: '192.168.31.201', hostInterface: 'eth0' },
        pools: [{ cidr: '10.244.0.0/16', ipipMode: 'CrossSubnet' }],
      }),
    );
    expect(result.warnings).toHaveLength(2);
    expect(result.warnings[0]).toMatch(/node\.ip "192\.168\.31\.201" has no prefix length; taken as \/32/);
    expect(result.warnings[1]).toMatch(/all 0 remote route\(s\)/);
  });

  it('says nothing for a /32 node when no pool is CrossSubnet', () => {
    const result = calculateRoutes(
      input({
        node: { ip: '192.168.31.201/32', hostInterface: 'eth0' },
        pools: [{ cidr: '10.244.0.0/16', ipipMode: 'Never' }],
        bgpRoutes: [{ prefix: '10.244.7.0/26', nextHop: NODE_2_SAME_SUBNET }],
      }),
    );
    expect(shown(result.routes)).toEqual(['10.244.7.0/26 via 192.168.31.202 dev eth0 proto 80 onlink']);
    expect(result.warnings).toEqual([]);
  });
});

describe('calculateRoutes: tunl0 unusable', () => {
  it('skips tunnel routes with one warning listing them, keeps everything else', () => {
    const bgpRoutes = Array.from({ length: 7 }, (_, i) => ({
      prefix: `10.244.${i}.0/26`,
      nextHop: NODE_3_OTHER_SUBNET,
    }));
    bgpRoutes.push({ prefix: '10.244.140.64/26', nextHop: NODE_2_SAME_SUBNET });
    const result = calculateRoutes(
      input({
        pools: [{ cidr: '10.244.0.0/16', ipipMode: 'CrossSubnet' }],
        localBlocks: ['10.244.196.128/26'],
        workloads: [{ ip: '10.244.196.130', namespace: 'default', pod: 'nginx' }],
        bgpRoutes,
        tunnelUsable: false,
      }),
    );
    expect(shown(result.routes)).toEqual([
      '10.244.140.64/26 via 192.168.31.202 dev eth0 proto 80 onlink',
      'blackhole 10.244.196.128/26 proto 80',
      '10.244.196.130 dev calic440f455693 proto 80 scope link',
    ]);
    expect(result.warnings).toHaveLength(1);
    expect(result.warnings[0]).toMatch(
      /^tunl0 is not usable .*: 7 route\(s\) that need it are not programmed: 10\.244\.0\.0\/26 via 192\.168\.40\.7, /,
    );
    expect(result.warnings[0]).toMatch(/\(and 2 more\)$/);
  });
});

describe('calculateRoutes: vxlan and broken pools', () => {
  it('a BGP route inside a vxlan pool only stands in (direct) while the block has no route from its affinity', () => {
    const bgpRoutes = [
      { prefix: '10.244.140.64/26', nextHop: NODE_2_SAME_SUBNET },
      { prefix: '10.244.7.0/26', nextHop: NODE_3_OTHER_SUBNET },
    ];
    const pools: CalcPool[] = [{ cidr: '10.244.0.0/16', ipipMode: 'Never', vxlanMode: 'Always' }];
    // tunl0 not usable (no IPIP here): the stand-in is direct; usable (a pool switched live from IPIP):
    // toward the other subnet it goes through tunl0, which still carries IPIP.
    const standing = calculateRoutes(input({ pools, bgpRoutes, tunnelUsable: false }));
    expect(shown(standing.routes)).toEqual([
      '10.244.7.0/26 via 192.168.40.7 dev eth0 proto 80 onlink',
      '10.244.140.64/26 via 192.168.31.202 dev eth0 proto 80 onlink',
    ]);
    expect(standing.warnings).toEqual([]);
    expect(shown(calculateRoutes(input({ pools, bgpRoutes, tunnelUsable: true })).routes)).toEqual([
      '10.244.7.0/26 via 192.168.40.7 dev tunl0 proto 80 onlink',
      '10.244.140.64/26 via 192.168.31.202 dev eth0 proto 80 onlink',
    ]);
    // n3's VTEP is there: its block goes through vxlan.calico; n2 has none yet, its BGP route stays.
    const vxlan = {
      usable: true,
      remoteBlocks: [
        { cidr: '10.244.7.0/26', node: 'n3' },
        { cidr: '10.244.140.64/26', node: 'n2' },
      ],
      nodes: [
        { name: 'n3', ip: '192.168.40.7/24', tunnelAddress: '10.244.7.1', mac: '66:00:00:00:00:03' },
        { name: 'n2', ip: '192.168.31.202/24' },
      ],
    };
    const moving = calculateRoutes(input({ pools, bgpRoutes, vxlan }));
    expect(shown(moving.routes)).toEqual([
      '10.244.7.0/26 via 10.244.7.1 dev vxlan.calico proto 80 onlink',
      '10.244.140.64/26 via 192.168.31.202 dev eth0 proto 80 onlink',
    ]);
  });

  it('a pool with both ipipMode and vxlanMode on is left alone, the warning names both fields', () => {
    const result = calculateRoutes(
      input({
        pools: [{ cidr: '10.244.0.0/16', ipipMode: 'Always', vxlanMode: 'Always' }],
        bgpRoutes: [{ prefix: '10.244.140.64/26', nextHop: NODE_2_SAME_SUBNET }],
        vxlan: {
          usable: true,
          remoteBlocks: [{ cidr: '10.244.140.64/26', node: 'n2' }],
          nodes: [{ name: 'n2', ip: '192.168.31.202/24', tunnelAddress: '10.244.140.65', mac: '66:00:00:00:00:02' }],
        },
      }),
    );
    expect(result.routes).toEqual([]);
    expect(result.warnings).toEqual([
      'IPPool 10.244.0.0/16 has both ipipMode Always and vxlanMode Always: only one may be enabled (set spec.ipipMode or spec.vxlanMode to Never); remote blocks in it are left alone',
    ]);
  });

  it('an unknown ipipMode leaves the pool alone; a malformed pool cidr is ignored; both name the value', () => {
    const result = calculateRoutes(
      input({
        pools: [
          { cidr: '10.244.0.0/16', ipipMode: 'Sometimes' as CalcPool['ipipMode'] },
          { cidr: '10.245.1.0/8', ipipMode: 'Always' },
        ],
        bgpRoutes: [{ prefix: '10.244.140.64/26', nextHop: NODE_2_SAME_SUBNET }],
      }),
    );
    expect(result.routes).toEqual([]);
    expect(result.warnings).toEqual([
      'IPPool 10.244.0.0/16 has ipipMode "Sometimes", not one of Never, Always, CrossSubnet: remote blocks in it are left alone',
      'IPPool cidr "10.245.1.0/8" has host bits set (did you mean 10.0.0.0/8?): pool ignored, blocks in it are treated as outside every pool',
    ]);
  });
});

describe('calculateRoutes: static routes to BGP peers (reachableBy)', () => {
  it("reachableBy: the peer's /32 via the gateway on the host interface, winning over the same /32 learned over BGP", () => {
    const result = calculateRoutes(
      input({
        peerRoutes: [
          { address: '10.225.0.5', gateway: '192.168.31.1' },
          { address: '10.225.0.4', gateway: '192.168.31.1' },
        ],
        bgpRoutes: [{ prefix: '10.225.0.4/32', nextHop: '192.168.31.7' }],
      }),
    );
    expect(shown(result.routes)).toEqual([
      '10.225.0.4 via 192.168.31.1 dev eth0 proto 80 onlink',
      '10.225.0.5 via 192.168.31.1 dev eth0 proto 80 onlink',
    ]);
    expect(result.routes.map((r) => r.class)).toEqual(['peer', 'peer']);
    expect(result.warnings).toEqual([
      expect.stringMatching(/^10\.225\.0\.4\/32 is wanted by more than one source: kept peer .*dropped bgp/),
    ]);
  });

  it('a gateway that is not IPv4, or no host interface: no static route, and why', () => {
    expect(calculateRoutes(input({ peerRoutes: [{ address: '10.225.0.4', gateway: 'fe80::1' }] })).warnings).toEqual([
      'BGP peer 10.225.0.4: reachableBy "fe80::1" (or the peer address) is not an IPv4 address: no static route to the peer',
    ]);
    const noIf = calculateRoutes(
      input({
        node: { ip: '192.168.31.201/24', hostInterface: '' },
        peerRoutes: [{ address: '10.225.0.4', gateway: '192.168.31.1' }],
      }),
    );
    expect(noIf.routes).toEqual([]);
    expect(noIf.warnings).toContain(
      'no host interface: the static routes to BGP peers (reachableBy) are not programmed',
    );
  });
});

describe('calculateRoutes: BGP routes outside every pool', () => {
  it('goes via the next hop on the host interface, class bgp', () => {
    const result = calculateRoutes(input({ bgpRoutes: [{ prefix: '172.16.0.0/16', nextHop: '192.168.31.1' }] }));
    expect(result.routes).toEqual([
      {
        dst: '172.16.0.0/16',
        type: 'unicast',
        via: '192.168.31.1',
        dev: 'eth0',
        onlink: true,
        proto: 80,
        class: 'bgp',
      },
    ]);
    expect(result.warnings).toEqual([]);
  });

  it('a supernet of a pool is outside it (longest match keeps the block routes)', () => {
    const result = calculateRoutes(input({ bgpRoutes: [{ prefix: '10.0.0.0/8', nextHop: '192.168.31.1' }] }));
    expect(result.routes[0]?.class).toBe('bgp');
  });

  it('warns once per next hop outside the node subnet', () => {
    const result = calculateRoutes(
      input({
        bgpRoutes: [
          { prefix: '172.16.0.0/16', nextHop: '10.9.9.9' },
          { prefix: '172.17.0.0/16', nextHop: '10.9.9.9' },
        ],
      }),
    );
    expect(result.routes).toHaveLength(2);
    expect(result.warnings).toEqual([
      "BGP next hop 10.9.9.9 (2 route(s) outside every pool) is outside this node's subnet 192.168.31.0/24: programmed onlink on eth0, so it must be reachable on that link",
    ]);
  });

  // [prefix, next hop, warning pattern or null for a silent skip]
  const REFUSED: Array<[string, string, RegExp | null]> = [
    [
      '0.0.0.0/0',
      '192.168.31.1',
      /BGP route 0\.0\.0\.0\/0 via 192\.168\.31\.1 is not programmed: it would replace this host's own default route/,
    ],
    [
      '192.168.31.0/24',
      '192.168.31.1',
      /BGP route 192\.168\.31\.0\/24 via 192\.168\.31\.1 is not programmed: it is this node's own subnet/,
    ],
    ['172.16.0.0/16', '127.0.0.2', /next hop 127\.0\.0\.2 is a loopback address/],
    ['172.16.0.0/16', 'router-1', /next hop "router-1" is not a dotted-quad/],
    ['172.16.0.0', '192.168.31.1', /BGP route prefix "172\.16\.0\.0" has no prefix length/],
    ['10.244.196.128/26', '192.168.31.201', null], // our own block, back from the Loc-RIB
    ['10.244.196.128/26', '0.0.0.0', null], // locally originated, no next hop
  ];
  it.each(REFUSED)('refuses %s via %s', (prefix, nextHop, warning) => {
    expect(REFUSED.length).toBeGreaterThan(0);
    const result = calculateRoutes(input({ bgpRoutes: [{ prefix, nextHop }] }));
    expect(result.routes).toEqual([]);
    if (warning === null) expect(result.warnings).toEqual([]);
    else {
      expect(result.warnings).toHaveLength(1);
      expect(result.warnings[0]).toMatch(warning);
    }
  });

  it('an unusable host interface skips direct and bgp routes but not tunnels', () => {
    const result = calculateRoutes(
      input({
        node: { ip: '192.168.31.201/24', hostInterface: '' },
        pools: [{ cidr: '10.244.0.0/16', ipipMode: 'CrossSubnet' }],
        bgpRoutes: [
          { prefix: '10.244.140.64/26', nextHop: NODE_2_SAME_SUBNET },
          { prefix: '10.244.7.0/26', nextHop: NODE_3_OTHER_SUBNET },
          { prefix: '172.16.0.0/16', nextHop: '192.168.31.1' },
        ],
      }),
    );
    expect(shown(result.routes)).toEqual(['10.244.7.0/26 via 192.168.40.7 dev tunl0 proto 80 onlink']);
    expect(result.warnings).toHaveLength(2);
    expect(result.warnings[0]).toMatch(/node\.hostInterface "" is empty/);
    expect(result.warnings[1]).toMatch(/2 route\(s\) via the host interface are not programmed/);
  });

  it('a malformed node address programs no remote routes, keeps local ones, and says why', () => {
    const result = calculateRoutes(
      input({
        node: { ip: 'node-1', hostInterface: 'eth0' },
        localBlocks: ['10.244.196.128/26'],
        bgpRoutes: [{ prefix: '10.244.7.0/26', nextHop: NODE_3_OTHER_SUBNET }],
      }),
    );
    expect(shown(result.routes)).toEqual(['blackhole 10.244.196.128/26 proto 80']);
    expect(result.warnings).toEqual([
      'node.ip "node-1" is not an IPv4 address with prefix length (like 192.168.31.201/24): no routes to remote nodes are programmed until it is fixed',
    ]);
  });
});

describe('calculateRoutes: conflicts for one prefix', () => {
  it("a remote route beats this node's blackhole for the same block (the block is moving), reported", () => {
    const result = calculateRoutes(
      input({ localBlocks: ['10.244.7.0/26'], bgpRoutes: [{ prefix: '10.244.7.0/26', nextHop: NODE_3_OTHER_SUBNET }] }),
    );
    expect(shown(result.routes)).toEqual(['10.244.7.0/26 via 192.168.40.7 dev tunl0 proto 80 onlink']);
    expect(result.warnings).toHaveLength(1);
    expect(result.warnings[0]).toMatch(
      /^10\.244\.7\.0\/26 is wanted by more than one source: kept tunnel .* dropped blackhole "blackhole 10\.244\.7\.0\/26 proto 80"/,
    );
    expect(result.warnings[0]).toMatch(/workload < direct < tunnel < peer < vxlan < bgp < blackhole/);
  });

  it('a local workload beats a remote /32 for its address', () => {
    const result = calculateRoutes(
      input({
        workloads: [{ ip: '10.244.7.5', namespace: 'default', pod: 'nginx' }],
        bgpRoutes: [{ prefix: '10.244.7.5/32', nextHop: NODE_3_OTHER_SUBNET }],
      }),
    );
    expect(shown(result.routes)).toEqual(['10.244.7.5 dev calic440f455693 proto 80 scope link']);
    expect(result.warnings[0]).toMatch(/kept workload/);
  });

  it('two workloads with one address: the first by namespace/pod wins, whatever the input order', () => {
    const a = { ip: '10.244.7.5', namespace: 'a', pod: 'x', interfaceName: 'cali-a' };
    const b = { ip: '10.244.7.5', namespace: 'b', pod: 'y', interfaceName: 'cali-b' };
    const one = calculateRoutes(input({ workloads: [a, b] }));
    const two = calculateRoutes(input({ workloads: [b, a] }));
    expect(one).toEqual(two);
    expect(one.routes.map((r) => r.dev)).toEqual(['cali-a']);
    expect(one.warnings).toHaveLength(1);
  });

  it('duplicates that agree are folded silently', () => {
    const result = calculateRoutes(input({ localBlocks: ['10.244.7.0/26', '10.244.7.0/26'] }));
    expect(result.routes).toHaveLength(1);
    expect(result.warnings).toEqual([]);
  });
});

describe('calculateRoutes: invariants', () => {
  const big = input({
    pools: [
      { cidr: '10.244.0.0/16', ipipMode: 'CrossSubnet' },
      { cidr: '10.250.0.0/16', ipipMode: 'Never', vxlanMode: 'Always' },
      { cidr: '10.251.0.0/16', ipipMode: 'Sometimes' as CalcPool['ipipMode'] },
      { cidr: '10.252.0.1/16', ipipMode: 'Always' },
    ],
    localBlocks: ['10.244.196.128/26', '10.244.196.192/26', 'bad'],
    workloads: Array.from({ length: 20 }, (_, i) => ({
      ip: `10.244.196.${129 + i}`,
      namespace: 'ns',
      pod: `pod-${i}`,
    })),
    bgpRoutes: [
      ...Array.from({ length: 30 }, (_, i) => ({
        prefix: `10.244.${i}.0/26`,
        nextHop: i % 2 === 0 ? NODE_2_SAME_SUBNET : NODE_3_OTHER_SUBNET,
      })),
      { prefix: '10.250.1.0/26', nextHop: NODE_2_SAME_SUBNET },
      { prefix: '172.16.0.0/12', nextHop: '192.168.31.1' },
    ],
    vxlan: {
      usable: true,
      remoteBlocks: [
        { cidr: '10.250.1.0/26', node: 'n2' },
        { cidr: '10.250.2.0/26', node: 'n3' },
        { cidr: '10.250.3.0/26', node: 'no-vtep' },
      ],
      nodes: [
        { name: 'n2', ip: '192.168.31.202/24', tunnelAddress: '10.250.1.1', mac: '66:00:00:00:00:02' },
        { name: 'n3', ip: '192.168.40.7/24', tunnelAddress: '10.250.2.1', mac: '66:00:00:00:00:03' },
        { name: 'no-vtep', ip: '192.168.40.8/24' },
      ],
    },
  });

  it('every route is proto 80, one per destination, sorted, classes as expected', () => {
    const { routes } = calculateRoutes(big);
    expect(routes.length).toBe(2 + 20 + 30 + 1 + 2);
    expect(routes.every((r) => r.proto === FELIX_ROUTE_PROTOCOL)).toBe(true);
    expect(new Set(routes.map((r) => r.dst)).size).toBe(routes.length);
    const counts: Record<string, number> = {};
    for (const r of routes) counts[r.class] = (counts[r.class] ?? 0) + 1;
    expect(counts).toEqual({ blackhole: 2, workload: 20, direct: 15, tunnel: 15, bgp: 1, vxlan: 2 });
  });

  it('does not depend on input order (warnings included)', () => {
    expect(calculateRoutes(big).warnings.length).toBeGreaterThanOrEqual(4);
    const reversed: CalcInput = {
      ...big,
      vxlan: {
        ...big.vxlan!,
        remoteBlocks: [...big.vxlan!.remoteBlocks].reverse(),
        nodes: [...big.vxlan!.nodes].reverse(),
      },
      pools: [...big.pools].reverse(),
      localBlocks: [...big.localBlocks].reverse(),
      workloads: [...big.workloads].reverse(),
      bgpRoutes: [...big.bgpRoutes].reverse(),
    };
    expect(calculateRoutes(reversed)).toEqual(calculateRoutes(big));
  });

  it('does not modify its input', () => {
    const copy = structuredClone(big);
    calculateRoutes(big);
    expect(big).toEqual(copy);
  });
});

// VXLAN routes from block affinities and VTEPs (Calico felix's VXLAN route classes). This node is
// 192.168.31.201/24; n2 shares its subnet, n3 does not.
const VX_NODES = [
  { name: 'n2', ip: '192.168.31.202/24', tunnelAddress: '10.244.140.64', mac: '66:00:00:00:00:02' },
  { name: 'n3', ip: '192.168.40.7/24', tunnelAddress: '10.244.7.1', mac: '66:00:00:00:00:03' },
];
const VXLAN_CASES: Array<[string, CalcPool['ipipMode'], string, string, DesiredRoute['class']]> = [
  [
    'Always, same subnet',
    'Always',
    'n2',
    '10.244.140.64/26 via 10.244.140.64 dev vxlan.calico proto 80 onlink',
    'vxlan',
  ],
  ['Always, other subnet', 'Always', 'n3', '10.244.7.0/26 via 10.244.7.1 dev vxlan.calico proto 80 onlink', 'vxlan'],
  [
    'CrossSubnet, same subnet: direct',
    'CrossSubnet',
    'n2',
    '10.244.140.64/26 via 192.168.31.202 dev eth0 proto 80 onlink',
    'direct',
  ],
  [
    'CrossSubnet, other subnet',
    'CrossSubnet',
    'n3',
    '10.244.7.0/26 via 10.244.7.1 dev vxlan.calico proto 80 onlink',
    'vxlan',
  ],
];

describe('calculateRoutes: VXLAN pools (routes from block affinities and VTEPs)', () => {
  it.each(VXLAN_CASES)('%s', (_name, mode, owner, route, cls) => {
    expect(VXLAN_CASES.length).toBeGreaterThan(0);
    const cidr = owner === 'n2' ? '10.244.140.64/26' : '10.244.7.0/26';
    const result = calculateRoutes(
      input({
        pools: [{ cidr: '10.244.0.0/16', ipipMode: 'Never', vxlanMode: mode }],
        // BGP's route for the same block only stands in: the affinity decides.
        bgpRoutes: [{ prefix: cidr, nextHop: '192.168.31.250' }],
        vxlan: { usable: true, remoteBlocks: [{ cidr, node: owner }], nodes: VX_NODES },
      }),
    );
    expect(shown(result.routes)).toEqual([route]);
    expect(result.routes.map((r) => r.class)).toEqual([cls]);
    expect(result.warnings).toEqual([]);
  });

  it('an address borrowed from our block by another node: a /32 through VXLAN beside our blackhole', () => {
    const result = calculateRoutes(
      input({
        pools: [{ cidr: '10.244.0.0/16', ipipMode: 'Never', vxlanMode: 'Always' }],
        localBlocks: ['10.244.196.128/26'],
        vxlan: { usable: true, remoteBlocks: [{ cidr: '10.244.196.130/32', node: 'n3' }], nodes: VX_NODES },
      }),
    );
    expect(shown(result.routes)).toEqual([
      'blackhole 10.244.196.128/26 proto 80',
      '10.244.196.130 via 10.244.7.1 dev vxlan.calico proto 80 onlink',
    ]);
  });

  it('a VTEP whose neighbour and FDB entries are not in the kernel yet carries no route (the BGP stand-in stays)', () => {
    const pools: CalcPool[] = [{ cidr: '10.244.0.0/16', ipipMode: 'Never', vxlanMode: 'Always' }];
    const vxlan = { usable: true, remoteBlocks: [{ cidr: '10.244.7.0/26', node: 'n3' }], nodes: VX_NODES };
    const bgpRoutes = [{ prefix: '10.244.7.0/26', nextHop: NODE_3_OTHER_SUBNET }];
    expect(
      shown(
        calculateRoutes(
          input({ pools, bgpRoutes, tunnelUsable: false, vxlan: { ...vxlan, programmed: new Set<string>() } }),
        ).routes,
      ),
    ).toEqual(['10.244.7.0/26 via 192.168.40.7 dev eth0 proto 80 onlink']);
    expect(
      shown(
        calculateRoutes(input({ pools, bgpRoutes, vxlan: { ...vxlan, programmed: new Set(['10.244.7.1']) } })).routes,
      ),
    ).toEqual(['10.244.7.0/26 via 10.244.7.1 dev vxlan.calico proto 80 onlink']);
  });

  it('a node without a VTEP, an unusable vxlan.calico, a node without address: no route, one warning each', () => {
    const result = calculateRoutes(
      input({
        pools: [{ cidr: '10.244.0.0/16', ipipMode: 'Never', vxlanMode: 'Always' }],
        vxlan: {
          usable: false,
          remoteBlocks: [
            { cidr: '10.244.7.0/26', node: 'n3' },
            { cidr: '10.244.8.0/26', node: 'bare' },
            { cidr: '10.244.9.0/26', node: 'gone' },
          ],
          nodes: [...VX_NODES, { name: 'bare', ip: '192.168.40.9/24' }],
        },
      }),
    );
    expect(result.routes).toEqual([]);
    expect(result.warnings).toEqual([
      '1 VXLAN block(s) belong to nodes without a known IPv4 address: not programmed: 10.244.9.0/26 (node gone)',
      '1 VXLAN block(s) belong to nodes without a VTEP yet (Node.spec.ipv4VXLANTunnelAddr / vxlanTunnelMACAddr): not programmed: 10.244.8.0/26 (node bare)',
      'vxlan.calico is not usable yet: 1 route(s) that need it are not programmed: 10.244.7.0/26 via 10.244.7.1',
    ]);
  });

  it("blocks outside VXLAN pools and this node's own blocks get no VXLAN route; the local blackhole stays", () => {
    const result = calculateRoutes(
      input({
        pools: [
          { cidr: '10.244.0.0/16', ipipMode: 'Never', vxlanMode: 'Always' },
          { cidr: '10.245.0.0/16', ipipMode: 'Never' },
        ],
        localBlocks: ['10.244.196.128/26'],
        vxlan: {
          usable: true,
          remoteBlocks: [
            { cidr: '10.245.1.0/26', node: 'n3' },
            { cidr: '10.244.196.128/26', node: 'me' },
          ],
          nodes: [
            ...VX_NODES,
            { name: 'me', ip: '192.168.31.201/24', tunnelAddress: '10.244.196.129', mac: '66:00:00:00:00:01' },
          ],
        },
      }),
    );
    expect(shown(result.routes)).toEqual(['blackhole 10.244.196.128/26 proto 80']);
  });
});
