// The CNI spec side of the plugin (src/cni/spec.ts) and its names (src/cni/names.ts): configuration,
// environment and CNI_ARGS parsing with the spec's error codes, results per version, chaining, names.

import { describe, expect, it } from 'vitest';
import { CNI_VERSIONS, CniError, ERRORS, parseCniArgs, parseEnv, SUPPORTED_VERSIONS } from '../../../src/cni/spec.js';
import {
  formatError,
  formatResult,
  formatVersionInfo,
  mergeResults,
  parseResult,
  type CniResult,
} from '../../../src/cni/result.js';
import { parseNetConf, parseVersionField } from '../../../src/cni/netconf.js';
import { handleId, hostVethName, podMac } from '../../../src/cni/names.js';
import { workloadEndpointName } from '../../../src/resources/workload-names.js';
import { workloadInterfaceName } from '../../../felix/interface-names.js';

/** The CniError `fn` throws (fails the test when it does not throw one). */
function refusal(fn: () => unknown): CniError {
  try {
    fn();
  } catch (err) {
    if (err instanceof CniError) return err;
    throw new Error(`expected a CniError, got ${String(err)}`);
  }
  throw new Error('expected a CniError, nothing was thrown');
}

const BASE = { cniVersion: '1.0.0', name: 'k8s-pod-network', type: 'tortie' };
const conf = (extra: Record<string, unknown> = {}): string => JSON.stringify({ ...BASE, ...extra });

describe('network configuration', () => {
  it('reads every field tortie knows', () => {
    const c = parseNetConf(
      conf({
        datastore_type: 'etcdv3',
        etcd_endpoints: 'https://10.0.0.1:2379',
        etcd_ca_cert_file: '/ca.pem',
        etcd_cert_file: '/c.pem',
        etcd_key_file: '/k.pem',
        nodename: 'node-1',
        nodename_file: '/run/n',
        mtu: 1440,
        log_level: 'DEBUG',
        log_file_path: '/var/log/tortie/cni.log',
        ipam: { type: 'calico-ipam', ipv4_pools: ['default-ipv4-ippool', '10.9.0.0/16'], assign_ipv4: 'true' },
        policy: { type: 'k8s' },
        runtimeConfig: {},
        capabilities: { portMappings: true },
      }),
    );
    expect(c).toMatchObject({
      cniVersion: '1.0.0',
      name: 'k8s-pod-network',
      datastoreType: 'etcdv3',
      etcdEndpoints: 'https://10.0.0.1:2379',
      etcdCaCertFile: '/ca.pem',
      nodename: 'node-1',
      nodenameFile: '/run/n',
      mtu: 1440,
      logLevel: 'debug',
      logFile: '/var/log/tortie/cni.log',
      ipv4Pools: ['default-ipv4-ippool', '10.9.0.0/16'],
    });
  });

  it("takes Calico's kubernetes.kubeconfig spelling, and defaults to etcdv3, warning level, auto MTU", () => {
    const c = parseNetConf(
      conf({ datastore_type: 'kubernetes', kubernetes: { kubeconfig: '/etc/cni/net.d/k' }, mtu: 0 }),
    );
    expect(c.kubeconfig).toBe('/etc/cni/net.d/k');
    expect(c.mtu).toBeUndefined();
    const d = parseNetConf(conf());
    expect(d).toMatchObject({ datastoreType: 'etcdv3', logLevel: 'warning', ipv4Pools: [] });
    expect(d.mtu).toBeUndefined();
  });

  // One row per refusal: the input, the spec code, and words the message must contain.
  const REFUSALS: Array<{ stdin: string; code: number; says: RegExp }> = [
    { stdin: '', code: 6, says: /no network configuration on stdin/ },
    { stdin: '{"cniVersion": "1.0.0",', code: 6, says: /not JSON/ },
    { stdin: '[1,2]', code: 6, says: /expected a JSON object, found a list/ },
    {
      stdin: JSON.stringify({ name: 'n', type: 'tortie' }),
      code: 7,
      says: /cniVersion is required; tortie supports 0\.3\.0, 0\.3\.1, 0\.4\.0, 1\.0\.0, 1\.1\.0/,
    },
    { stdin: conf({ cniVersion: 1 }), code: 7, says: /cniVersion: expected a string/ },
    { stdin: conf({ cniVersion: '0.2.0' }), code: 1, says: /cniVersion "0\.2\.0" is not supported/ },
    { stdin: conf({ cniVersion: '9.9.9' }), code: 1, says: /"9\.9\.9".*supports 0\.3\.0/ },
    { stdin: conf({ name: 'bad name' }), code: 7, says: /name: string "bad name" is not a network name/ },
    {
      stdin: conf({ datastore_type: 'consul' }),
      code: 7,
      says: /datastore_type: "consul" is not a datastore type; use "etcdv3" or "kubernetes"/,
    },
    { stdin: conf({ mtu: 70000 }), code: 7, says: /mtu: 70000 is not an MTU; use an integer 68\.\.65535/ },
    { stdin: conf({ mtu: '__CNI_MTU__' }), code: 7, says: /mtu: "__CNI_MTU__" is not an MTU/ },
    {
      stdin: conf({ etcd_endpoints: 42 }),
      code: 7,
      says: /etcd_endpoints: expected a non-empty string .* found number 42/,
    },
    {
      stdin: conf({ log_level: 'loud' }),
      code: 7,
      says: /log_level: "loud" is not a log level; use debug, info, warning, error/,
    },
    {
      stdin: conf({ etcd_endpoint: 'x' }),
      code: 2,
      says: /etcd_endpoint is not a tortie network configuration field; accepted: .*etcd_endpoints/,
    },
    {
      stdin: conf({ etcd_cert: 'PEM' }),
      code: 2,
      says: /etcd_cert is not supported by tortie; put the certificate in a file and set etcd_cert_file/,
    },
    { stdin: conf({ container_settings: {} }), code: 2, says: /container_settings is not supported/ },
    {
      stdin: conf({ kubernetes: { k8s_api_root: 'https://x' } }),
      code: 2,
      says: /kubernetes\.k8s_api_root is not supported by tortie; set the API server .* in a kubeconfig/,
    },
    {
      stdin: conf({ ipam: { type: 'host-local' } }),
      code: 2,
      says: /ipam\.type: "host-local" is not supported; .*"tortie-ipam"/,
    },
    {
      stdin: conf({ ipam: { type: 'tortie-ipam', subnet: '10.0.0.0/8' } }),
      code: 2,
      says: /ipam\.subnet is not supported; the ipam section accepts type, ipv4_pools/,
    },
    { stdin: conf({ ipam: { assign_ipv6: 'true' } }), code: 2, says: /does not assign IPv6/ },
    {
      stdin: conf({ ipam: { ipv4_pools: 'p1' } }),
      code: 7,
      says: /ipam\.ipv4_pools: expected a list of IPPool names or CIDRs/,
    },
    {
      stdin: conf({ datastore_type: 'kubernetes', etcd_endpoints: 'http://127.0.0.1:2379' }),
      code: 7,
      says: /"kubernetes" but etcd_\* fields are set/,
    },
    { stdin: conf({ prevResult: { ips: 'x' } }), code: 7, says: /prevResult\.ips: expected a list/ },
    {
      stdin: conf({ prevResult: { ips: [{ interface: 0 }] } }),
      code: 7,
      says: /prevResult\.ips\[0\]\.address is required/,
    },
  ];

  it('has refusal rows', () => expect(REFUSALS.length).toBeGreaterThan(20));

  for (const row of REFUSALS) {
    it(`refuses ${row.stdin.slice(0, 70) || '(empty)'} with code ${row.code}`, () => {
      const err = refusal(() => parseNetConf(row.stdin));
      expect(err.code).toBe(row.code);
      expect(err.message).toMatch(row.says);
    });
  }

  it('reads prevResult of every version into one shape', () => {
    const old = parseResult(
      {
        cniVersion: '0.3.1',
        interfaces: [{ name: 'lo', mac: '00:00:00:00:00:00', sandbox: '/var/run/netns/x' }],
        ips: [{ version: '4', address: '127.0.0.1/8', interface: 0 }],
        dns: {},
      },
      'prevResult',
    );
    expect(old).toEqual({
      interfaces: [{ name: 'lo', mac: '00:00:00:00:00:00', sandbox: '/var/run/netns/x' }],
      ips: [{ address: '127.0.0.1/8', interface: 0 }],
      routes: [],
      dns: {},
    });
  });

  it('reads GC attachments under both spellings', () => {
    expect(
      parseNetConf(conf({ cniVersion: '1.1.0', 'cni.dev/valid-attachments': [{ containerID: 'a', ifname: 'eth0' }] }))
        .validAttachments,
    ).toEqual([{ containerId: 'a', ifname: 'eth0' }]);
    expect(
      parseNetConf(conf({ cniVersion: '1.1.0', 'cni.dev/attachments': [{ containerID: 'b' }] })).validAttachments,
    ).toEqual([{ containerId: 'b' }]);
    expect(refusal(() => parseNetConf(conf({ 'cni.dev/valid-attachments': {} }))).code).toBe(7);
  });

  it('finds the cniVersion of any text for error replies', () => {
    expect(parseVersionField('{"cniVersion":"0.4.0"}')).toBe('0.4.0');
    expect(parseVersionField('not json')).toBeUndefined();
    expect(parseVersionField('{"cniVersion":4}')).toBeUndefined();
  });
});

describe('environment', () => {
  const ADD = { CNI_COMMAND: 'ADD', CNI_CONTAINERID: 'abc123', CNI_NETNS: '/var/run/netns/p', CNI_IFNAME: 'eth0' };

  it('reads ADD with a Kubernetes pod', () => {
    const env = parseEnv({
      ...ADD,
      CNI_ARGS:
        'IgnoreUnknown=1;K8S_POD_NAMESPACE=kube-system;K8S_POD_NAME=coredns-1;K8S_POD_INFRA_CONTAINER_ID=abc123',
    });
    expect(env).toEqual({
      command: 'ADD',
      containerId: 'abc123',
      netns: '/var/run/netns/p',
      ifname: 'eth0',
      args: {
        IgnoreUnknown: '1',
        K8S_POD_NAMESPACE: 'kube-system',
        K8S_POD_NAME: 'coredns-1',
        K8S_POD_INFRA_CONTAINER_ID: 'abc123',
      },
      pod: { namespace: 'kube-system', name: 'coredns-1' },
    });
  });

  it('lets DEL go without CNI_NETNS, and VERSION without anything', () => {
    expect(
      parseEnv({ CNI_COMMAND: 'DEL', CNI_CONTAINERID: 'abc', CNI_IFNAME: 'eth0', CNI_NETNS: '' }).netns,
    ).toBeUndefined();
    expect(parseEnv({ CNI_COMMAND: 'VERSION' }).command).toBe('VERSION');
    expect(parseEnv({ CNI_COMMAND: 'GC' }).command).toBe('GC');
  });

  const REFUSALS: Array<{ env: Record<string, string>; says: RegExp }> = [
    { env: {}, says: /CNI_COMMAND: "" is not a CNI command; expected one of ADD, DEL, CHECK, VERSION, STATUS, GC/ },
    { env: { ...ADD, CNI_COMMAND: 'add' }, says: /CNI_COMMAND: "add"/ },
    {
      env: { ...ADD, CNI_NETNS: '' },
      says: /CNI_NETNS is not set: ADD needs the path of the container's network namespace/,
    },
    { env: { ...ADD, CNI_CONTAINERID: '' }, says: /CNI_CONTAINERID is not set/ },
    { env: { ...ADD, CNI_IFNAME: '' }, says: /CNI_IFNAME is not set/ },
    { env: { ...ADD, CNI_COMMAND: 'CHECK', CNI_NETNS: '' }, says: /CNI_NETNS is not set: CHECK/ },
    { env: { ...ADD, CNI_CONTAINERID: '-abc' }, says: /CNI_CONTAINERID: "-abc" is not a container id/ },
    { env: { ...ADD, CNI_CONTAINERID: 'a/b' }, says: /"a\/b" is not a container id/ },
    { env: { ...ADD, CNI_NETNS: 'netns-1' }, says: /CNI_NETNS: "netns-1" is not an absolute path/ },
    {
      env: { ...ADD, CNI_IFNAME: 'averyveryverylongname' },
      says: /CNI_IFNAME: "averyveryverylongname" is 21 bytes long/,
    },
    { env: { ...ADD, CNI_IFNAME: 'eth:0' }, says: /CNI_IFNAME: "eth:0" contains/ },
    { env: { ...ADD, CNI_ARGS: 'K8S_POD_NAME' }, says: /CNI_ARGS: "K8S_POD_NAME" is not KEY=VALUE/ },
    { env: { ...ADD, CNI_ARGS: 'K8S_POD_NAME=web' }, says: /K8S_POD_NAME is set but K8S_POD_NAMESPACE is not/ },
  ];
  it('has refusal rows', () => expect(REFUSALS.length).toBeGreaterThan(10));
  for (const row of REFUSALS) {
    it(`refuses ${JSON.stringify(row.env).slice(0, 90)} with code 4`, () => {
      const err = refusal(() => parseEnv(row.env));
      expect(err.code).toBe(ERRORS.invalidEnvironment.code);
      expect(err.message).toMatch(row.says);
    });
  }

  it('splits CNI_ARGS on ";" and the first "="', () => {
    expect(parseCniArgs('A=1;;B=x=y')).toEqual({ A: '1', B: 'x=y' });
    expect(parseCniArgs('')).toEqual({});
  });
});

describe('results', () => {
  const ours: CniResult = {
    interfaces: [
      { name: 'cali0123456789a', mac: 'ee:ee:ee:ee:ee:ee' },
      { name: 'eth0', mac: '02:00:00:00:00:01', sandbox: '/var/run/netns/p', mtu: 1480 },
    ],
    ips: [{ address: '10.244.1.5/32', interface: 1 }],
    routes: [{ dst: '0.0.0.0/0', gw: '169.254.1.1' }],
    dns: {},
  };

  it('has a version row for every supported version', () => {
    expect(SUPPORTED_VERSIONS).toEqual(Object.keys(CNI_VERSIONS));
    expect(SUPPORTED_VERSIONS.length).toBe(5);
  });

  it('writes "version": "4" on IPs before 1.0.0 only, interface mtu from 1.1.0', () => {
    const v031 = formatResult('0.3.1', ours) as { ips: unknown[]; interfaces: unknown[] };
    expect(v031.ips).toEqual([{ version: '4', address: '10.244.1.5/32', interface: 1 }]);
    expect(v031.interfaces[1]).toEqual({ name: 'eth0', mac: '02:00:00:00:00:01', sandbox: '/var/run/netns/p' });
    const v100 = formatResult('1.0.0', ours);
    expect(v100).toEqual({
      cniVersion: '1.0.0',
      interfaces: [
        { name: 'cali0123456789a', mac: 'ee:ee:ee:ee:ee:ee' },
        { name: 'eth0', mac: '02:00:00:00:00:01', sandbox: '/var/run/netns/p' },
      ],
      ips: [{ address: '10.244.1.5/32', interface: 1 }],
      routes: [{ dst: '0.0.0.0/0', gw: '169.254.1.1' }],
      dns: {},
    });
    expect((formatResult('1.1.0', ours) as { interfaces: unknown[] }).interfaces[1]).toEqual({
      name: 'eth0',
      mac: '02:00:00:00:00:01',
      mtu: 1480,
      sandbox: '/var/run/netns/p',
    });
  });

  it('appends to a chained prevResult, shifting our interface indexes', () => {
    const loopback = parseResult(
      {
        interfaces: [{ name: 'lo', mac: '00:00:00:00:00:00', sandbox: '/var/run/netns/p' }],
        ips: [
          { address: '127.0.0.1/8', interface: 0 },
          { address: '::1/128', interface: 0 },
        ],
        dns: {},
      },
      'prevResult',
    );
    const merged = mergeResults(loopback, ours);
    expect(merged.interfaces.map((i) => i.name)).toEqual(['lo', 'cali0123456789a', 'eth0']);
    expect(merged.ips).toEqual([
      { address: '127.0.0.1/8', interface: 0 },
      { address: '::1/128', interface: 0 },
      { address: '10.244.1.5/32', interface: 2 },
    ]);
    expect(mergeResults(undefined, ours)).toBe(ours);
  });

  it('writes the error and version JSON of the spec', () => {
    expect(formatError('0.4.0', new CniError('tryAgainLater', 'etcd is down', 'ECONNREFUSED'))).toEqual({
      cniVersion: '0.4.0',
      code: 11,
      msg: 'etcd is down',
      details: 'ECONNREFUSED',
    });
    expect(formatVersionInfo()).toEqual({
      cniVersion: '1.1.0',
      supportedVersions: ['0.3.0', '0.3.1', '0.4.0', '1.0.0', '1.1.0'],
    });
  });

  it('numbers errors as the spec does (1-11, 50) and ours from 100', () => {
    const codes = Object.values(ERRORS).map((e) => e.code);
    expect(new Set(codes).size).toBe(codes.length);
    expect(ERRORS.incompatibleVersion.code).toBe(1);
    expect(ERRORS.decode.code).toBe(6);
    expect(ERRORS.invalidConfig.code).toBe(7);
    expect(ERRORS.tryAgainLater.code).toBe(11);
    for (const [kind, { code }] of Object.entries(ERRORS)) {
      if (
        ![
          'incompatibleVersion',
          'unsupportedField',
          'unknownContainer',
          'invalidEnvironment',
          'io',
          'decode',
          'invalidConfig',
          'tryAgainLater',
          'notAvailable',
        ].includes(kind)
      )
        expect(code).toBeGreaterThanOrEqual(100);
    }
  });
});

describe('names', () => {
  it('spells WorkloadEndpoint names as Calico does, dashes doubled inside parts', () => {
    expect(workloadEndpointName('node-1', 'web-0', 'eth0', 'k8s')).toBe('node--1-k8s-web--0-eth0');
    expect(workloadEndpointName('n1', 'c-1', 'eth0', 'cni')).toBe('n1-cni-c--1-eth0');
  });

  it('names the host veth as felix does for pods, by container id otherwise', () => {
    expect(hostVethName({ containerId: 'x', pod: { namespace: 'default', name: 'web-0' } })).toBe(
      workloadInterfaceName('default', 'web-0'),
    );
    expect(hostVethName({ containerId: 'x', pod: { namespace: 'default', name: 'web-0' } })).toMatch(
      /^cali[0-9a-f]{11}$/,
    );
    expect(hostVethName({ containerId: '3f6940ab5ab43bc5225' })).toBe('cali3f6940ab5ab');
  });

  it('keys IPAM handles by network and container, as Calico', () => {
    expect(handleId('k8s-pod-network', '3f69')).toBe('k8s-pod-network.3f69');
  });

  it('makes locally administered unicast MACs', () => {
    expect(podMac(Uint8Array.from([0xff, 1, 2, 3, 4, 5]))).toBe('fe:01:02:03:04:05');
    expect(podMac(Uint8Array.from([0x01, 0xab, 0, 0, 0, 0xff]))).toBe('02:ab:00:00:00:ff');
    expect(() => podMac(new Uint8Array(3))).toThrow(/6 random bytes/);
  });
});
