// parseAgentConfig: Calico's variable names and defaults, and refusals that name the variable and value.

import { describe, expect, it } from 'vitest';
import {
  AgentConfigError,
  DEFAULT_POOL,
  levelOfSeverity,
  parseAgentConfig,
  parseAutodetectMethod,
  routerIdFor,
} from '../../../src/agent/config.js';
import { DEFAULT_CTL_SOCKET, DEFAULT_HEALTH_PORT } from '../../../src/agent/types.js';

const BASE = { TORTIE_DATAPLANE: 'none' };

function problemsOf(env: Record<string, string>): string[] {
  try {
    parseAgentConfig({ ...BASE, ...env }, 'host-a');
  } catch (error) {
    expect(error).toBeInstanceOf(AgentConfigError);
    return (error as AgentConfigError).problems;
  }
  throw new Error(`no problem reported for ${JSON.stringify(env)}`);
}

describe('parseAgentConfig', () => {
  it('defaults as calico-node: hostname, autodetect first-found, default pool, socket, health port', () => {
    const config = parseAgentConfig({}, 'host-a');
    expect(config).toMatchObject({
      nodeName: 'host-a',
      ip: { mode: 'autodetect', method: { kind: 'first-found' } },
      waitForDatastore: false,
      defaultPool: {
        name: DEFAULT_POOL.name,
        cidr: '192.168.0.0/16',
        blockSize: 26,
        ipipMode: 'Always',
        vxlanMode: 'Never',
        natOutgoing: true,
      },
      dataplane: 'kernel',
      routeRefreshMs: 90_000,
      tunl0StandIn: 'refuse',
      ctlSocket: DEFAULT_CTL_SOCKET,
      healthPort: DEFAULT_HEALTH_PORT,
    });
    expect(config.asNumber).toBeUndefined();
    expect(config.logLevel).toBeUndefined();
  });

  it('reads every variable it knows', () => {
    const config = parseAgentConfig(
      {
        NODENAME: 'node-1',
        IP: '198.18.0.11/24',
        AS: '64513',
        WAIT_FOR_DATASTORE: 'true',
        CALICO_IPV4POOL_CIDR: '10.244.0.0/16',
        CALICO_IPV4POOL_BLOCK_SIZE: '28',
        CALICO_IPV4POOL_IPIP: 'cross-subnet',
        CALICO_IPV4POOL_NAT_OUTGOING: 'false',
        TORTIE_DATAPLANE: 'none',
        FELIX_ROUTEREFRESHINTERVAL: '30',
        TORTIE_TUNL0_STANDIN: 'manage',
        TORTIE_CTL_SOCKET: '/tmp/x.ctl',
        TORTIE_HEALTH_PORT: '0',
        TORTIE_LOG_LEVEL: 'DEBUG',
        FELIX_IPINIPMTU: '1440',
      },
      'ignored',
    );
    expect(config).toEqual({
      nodeName: 'node-1',
      ip: { mode: 'fixed', address: '198.18.0.11', prefixLength: 24 },
      asNumber: 64513,
      waitForDatastore: true,
      defaultPool: {
        name: DEFAULT_POOL.name,
        cidr: '10.244.0.0/16',
        blockSize: 28,
        ipipMode: 'CrossSubnet',
        vxlanMode: 'Never',
        natOutgoing: false,
      },
      dataplane: 'none',
      routeRefreshMs: 30_000,
      tunl0StandIn: 'manage',
      ctlSocket: '/tmp/x.ctl',
      healthPort: 0,
      logLevel: 'debug',
      ipipMtu: 1440,
      networkingBackend: 'bird',
      bgpPortGuard: true,
    });
  });

  it('TORTIE_BGP_MAX_PREFIXES: the default prefix limit per BGP peer, a whole number 1..4294967295', () => {
    expect(parseAgentConfig({ ...BASE, TORTIE_BGP_MAX_PREFIXES: '20000' }, 'h').maxPrefixes).toBe(20_000);
    expect(parseAgentConfig(BASE, 'h').maxPrefixes).toBeUndefined();
    expect(() => parseAgentConfig({ ...BASE, TORTIE_BGP_MAX_PREFIXES: '0' }, 'h')).toThrow(
      'TORTIE_BGP_MAX_PREFIXES="0" is not an integer 1..4294967295',
    );
  });

  it('an address without /len is kept for the interface lookup; NO_DEFAULT_POOLS drops the pool; AS dotted', () => {
    const config = parseAgentConfig({ ...BASE, IP: '198.18.0.11', NO_DEFAULT_POOLS: 'true', AS: '1.10' }, 'h');
    expect(config.ip).toEqual({ mode: 'fixed', address: '198.18.0.11' });
    expect(config.defaultPool).toBeNull();
    expect(config.asNumber).toBe(65546);
  });

  it('maps every CALICO_IPV4POOL_IPIP spelling', () => {
    const cases: Array<[string, string]> = [
      ['Always', 'Always'],
      ['CrossSubnet', 'CrossSubnet'],
      ['cross-subnet', 'CrossSubnet'],
      ['Never', 'Never'],
      ['off', 'Never'],
    ];
    expect(cases.length).toBeGreaterThan(0);
    for (const [value, mode] of cases)
      expect(parseAgentConfig({ ...BASE, CALICO_IPV4POOL_IPIP: value }, 'h').defaultPool?.ipipMode).toBe(mode);
  });

  it('CALICO_IPV4POOL_VXLAN: the default pool uses VXLAN (IPIP then defaults to Never); both on is refused naming both', () => {
    expect(parseAgentConfig({ ...BASE, CALICO_IPV4POOL_VXLAN: 'Always' }, 'h').defaultPool).toMatchObject({
      ipipMode: 'Never',
      vxlanMode: 'Always',
    });
    expect(
      parseAgentConfig({ ...BASE, CALICO_IPV4POOL_VXLAN: 'cross-subnet', CALICO_IPV4POOL_IPIP: 'Never' }, 'h')
        .defaultPool,
    ).toMatchObject({ ipipMode: 'Never', vxlanMode: 'CrossSubnet' });
    expect(parseAgentConfig({ ...BASE, CALICO_IPV4POOL_VXLAN: 'Never' }, 'h').defaultPool).toMatchObject({
      ipipMode: 'Always',
      vxlanMode: 'Never',
    });
    expect(() =>
      parseAgentConfig({ ...BASE, CALICO_IPV4POOL_VXLAN: 'Always', CALICO_IPV4POOL_IPIP: 'Always' }, 'h'),
    ).toThrow(/CALICO_IPV4POOL_IPIP="Always" and CALICO_IPV4POOL_VXLAN="Always" cannot both be enabled/);
    expect(() => parseAgentConfig({ ...BASE, CALICO_IPV4POOL_VXLAN: 'sometimes' }, 'h')).toThrow(
      /CALICO_IPV4POOL_VXLAN="sometimes" is not one of/,
    );
    expect(() => parseAgentConfig({ ...BASE, CALICO_NETWORKING_BACKEND: 'flannel' }, 'h')).toThrow(
      /CALICO_NETWORKING_BACKEND="flannel" is not one of bird, vxlan/,
    );
    const config = parseAgentConfig({ ...BASE, CALICO_NETWORKING_BACKEND: 'vxlan', FELIX_VXLANMTU: '1400' }, 'h');
    expect(config.networkingBackend).toBe('vxlan');
    expect(config.vxlanMtu).toBe(1400);
  });

  it('refuses bad values naming the variable, the value and what is accepted', () => {
    const cases: Array<[Record<string, string>, RegExp]> = [
      [{ IP: '300.1.1.1' }, /IP="300.1.1.1".*IPv4 address/],
      [{ IP: '10.0.0.1/40' }, /IP="10.0.0.1\/40".*0\.\.32/],
      [{ AS: 'sixty' }, /AS="sixty"/],
      [
        { CALICO_IPV4POOL_IPIP: 'sometimes' },
        /CALICO_IPV4POOL_IPIP="sometimes" is not one of Always, CrossSubnet, cross-subnet, Never, off/,
      ],
      [{ CALICO_IPV4POOL_CIDR: '10.244.0.1/16' }, /CALICO_IPV4POOL_CIDR "10.244.0.1\/16" has host bits set/],
      [{ CALICO_IPV4POOL_BLOCK_SIZE: '19' }, /CALICO_IPV4POOL_BLOCK_SIZE="19" is not an integer 20\.\.32/],
      [
        { CALICO_IPV4POOL_CIDR: '10.244.0.0/24', CALICO_IPV4POOL_BLOCK_SIZE: '22' },
        /shorter than the pool's prefix length \/24/,
      ],
      [{ WAIT_FOR_DATASTORE: 'maybe' }, /WAIT_FOR_DATASTORE="maybe" is not a boolean/],
      [{ FELIX_ROUTEREFRESHINTERVAL: '0' }, /FELIX_ROUTEREFRESHINTERVAL="0" is not an integer 1\.\.86400/],
      [{ TORTIE_TUNL0_STANDIN: 'yes' }, /TORTIE_TUNL0_STANDIN="yes" is not one of manage, refuse/],
      [{ TORTIE_DATAPLANE: 'ebpf' }, /TORTIE_DATAPLANE="ebpf" is not one of kernel, none/],
      [{ TORTIE_HEALTH_PORT: '70000' }, /TORTIE_HEALTH_PORT="70000" is not an integer 0\.\.65535/],
      [{ TORTIE_LOG_LEVEL: 'loud' }, /TORTIE_LOG_LEVEL="loud" is not one of trace/],
      [{ NODENAME: 'Node_1' }, /NODENAME="Node_1" is not a valid node name/],
      [
        { IP_AUTODETECTION_METHOD: 'magic' },
        /IP_AUTODETECTION_METHOD="magic" is not a valid method; valid methods: first-found, interface=/,
      ],
    ];
    expect(cases.length).toBeGreaterThan(0);
    for (const [env, pattern] of cases) {
      const problems = problemsOf(env);
      expect(problems, JSON.stringify(env)).toHaveLength(1);
      expect(problems[0]).toMatch(pattern);
    }
  });

  it('lists every problem at once', () => {
    const problems = problemsOf({ AS: 'x', TORTIE_HEALTH_PORT: 'y', CALICO_IPV4POOL_IPIP: 'z' });
    expect(problems).toHaveLength(3);
    expect(() => parseAgentConfig({ AS: 'x', TORTIE_HEALTH_PORT: 'y' }, 'h')).toThrow(/2 problems in the environment/);
  });
});

describe('parseAutodetectMethod', () => {
  it('parses every method', () => {
    const problems: string[] = [];
    expect(parseAutodetectMethod('first-found', problems)).toEqual({ kind: 'first-found' });
    const iface = parseAutodetectMethod('interface=eth.*,ens[0-9]+', problems);
    expect(iface.kind === 'interface' && iface.patterns.map((p) => p.source)).toEqual(['eth.*', 'ens[0-9]+']);
    expect(parseAutodetectMethod('skip-interface=docker.*', problems).kind).toBe('skip-interface');
    expect(parseAutodetectMethod('cidr=10.0.0.0/8, 198.18.0.0/15', problems)).toEqual({
      kind: 'cidr',
      cidrs: ['10.0.0.0/8', '198.18.0.0/15'],
    });
    expect(parseAutodetectMethod('can-reach=198.18.0.1', problems)).toEqual({
      kind: 'can-reach',
      address: '198.18.0.1',
    });
    expect(problems).toEqual([]);
  });

  it('refuses broken arguments', () => {
    const cases: Array<[string, RegExp]> = [
      ['interface=', /needs a value/],
      ['interface=(', /"\(" is not a regular expression/],
      ['cidr=10.0.0.0', /no prefix length/],
      ['can-reach=example.org', /"example.org" is not a dotted-quad IPv4 address/],
      ['interface', /not a valid method/],
    ];
    expect(cases.length).toBeGreaterThan(0);
    for (const [raw, pattern] of cases) {
      const problems: string[] = [];
      parseAutodetectMethod(raw, problems);
      expect(problems.join('\n'), raw).toMatch(pattern);
    }
  });
});

describe('levelOfSeverity', () => {
  it("maps Calico's logSeverityScreen to pino levels", () => {
    expect(levelOfSeverity('Warning')).toBe('warn');
    expect(levelOfSeverity('Debug')).toBe('debug');
    expect(levelOfSeverity('Trace')).toBe('trace');
    expect(levelOfSeverity(undefined)).toBe('info');
    expect(levelOfSeverity('bogus')).toBe('info');
  });
});

describe('CALICO_ROUTER_ID', () => {
  it('hash: the first four bytes of sha256(node name), a first byte over 223 less 32 (as calico-node)', () => {
    // sha256("kube-master") = 194fd408…, sha256("node-18") = f5c28be3… (sha256sum)
    expect(routerIdFor('hash', 'kube-master', '10.0.0.1')).toBe('25.79.212.8');
    expect(routerIdFor('hash', 'node-18', '10.0.0.1')).toBe('213.194.139.227');
  });

  it('an address is used as it is; unset is the node address', () => {
    expect(routerIdFor('192.168.1.1', 'kube-master', '10.0.0.1')).toBe('192.168.1.1');
    expect(routerIdFor(undefined, 'kube-master', '10.0.0.1')).toBe('10.0.0.1');
  });

  it('is read from the environment, and anything else is refused naming the value', () => {
    expect(parseAgentConfig({ NODENAME: 'n', CALICO_ROUTER_ID: 'hash' }, 'x').routerId).toBe('hash');
    expect(parseAgentConfig({ NODENAME: 'n', CALICO_ROUTER_ID: '192.168.1.1' }, 'x').routerId).toBe('192.168.1.1');
    expect(() => parseAgentConfig({ NODENAME: 'n', CALICO_ROUTER_ID: 'fnv' }, 'x')).toThrow(
      /CALICO_ROUTER_ID="fnv" is neither "hash" nor a non-zero IPv4 address/,
    );
  });
});
