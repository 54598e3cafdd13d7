// Inputs the fuzzers (test/fuzz/) found that made a parser throw an untyped error (TypeError,
// ReferenceError) instead of its module's own refusal. Each must now be refused in words.
import { describe, expect, it } from 'vitest';
import { healthReply, type HealthOptions } from '../../src/agent/health.js';
import { CniError, parseEnv } from '../../src/cni/spec.js';
import { parseNetConf } from '../../src/cni/netconf.js';
import { layoutOf } from '../../src/datastore/etcd-keys.js';
import { EtcdStore, type EtcdTransport } from '../../src/datastore/etcd-store.js';
import { parseDocuments } from '../../src/resources/index.js';

function thrown(fn: () => unknown): unknown {
  try {
    fn();
  } catch (error) {
    return error;
  }
  throw new Error('nothing was thrown');
}

describe('resources: YAML the yaml package refuses while building values', () => {
  it('an alias with no anchor before it is a YAML error naming the file and document, not a ReferenceError', () => {
    const error = thrown(() => parseDocuments('apiVersion: projectcalico.org/v3\nkind: *a\n', 'pool.yaml'));
    expect(error).not.toBeInstanceOf(ReferenceError);
    expect(String(error)).toMatch(/^Error: pool\.yaml: document 1: YAML error: Unresolved alias/);
  });
  it('too many aliases (a "billion laughs" document) likewise', () => {
    const lines = ['a: &a [x, x, x, x, x, x, x, x, x, x]'];
    for (let i = 0; i < 6; i++)
      lines.push(
        `${String.fromCharCode(98 + i)}: &${String.fromCharCode(98 + i)} [${Array(10)
          .fill(`*${String.fromCharCode(97 + i)}`)
          .join(', ')}]`,
      );
    const error = thrown(() => parseDocuments(lines.join('\n'), 'laughs.yaml'));
    expect(error).not.toBeInstanceOf(ReferenceError);
    expect(String(error)).toMatch(/laughs\.yaml: document 1: YAML error: Excessive alias count/);
  });
});

describe('CNI: names every object has are not commands or versions', () => {
  for (const name of ['toString', '__proto__', 'hasOwnProperty', 'constructor']) {
    it(`CNI_COMMAND=${name} is refused with CniError`, () => {
      const error = thrown(() =>
        parseEnv({
          CNI_COMMAND: name,
          CNI_CONTAINERID: 'abc',
          CNI_NETNS: '/x',
          CNI_IFNAME: 'eth0',
          CNI_PATH: '/opt/cni/bin',
        }),
      );
      expect(error).toBeInstanceOf(CniError);
      expect((error as CniError).code).toBe(4);
    });
    it(`cniVersion "${name}" is refused as incompatible`, () => {
      const error = thrown(() =>
        parseNetConf(JSON.stringify({ cniVersion: name, name: 'k8s-pod-network', type: 'tortie' })),
      );
      expect(error).toBeInstanceOf(CniError);
      expect((error as CniError).code).toBe(1);
    });
  }
});

describe('health: a request target that is not a URL path', () => {
  const options = {
    port: 0,
    readiness: () => ({ ready: true }),
    liveness: () => true,
    metrics: { render: async () => '', contentType: 'text/plain' },
  } as unknown as HealthOptions;
  for (const url of ['//', '//a b', '//? metrics']) {
    it(`${JSON.stringify(url)} → a 4xx answer (400 not a path, 404 no such path), not a thrown TypeError`, async () => {
      const reply = await healthReply('GET', url, options);
      expect([400, 404]).toContain(reply.status);
      expect(reply.body).toMatch(/bad request target|not found/);
    });
  }
});

describe('etcd: values that are not the JSON object a key should hold', () => {
  const etcd = new EtcdStore({
    endpoints: ['e'],
    timeoutMs: 1,
    isRefusal: () => false,
    close: () => {},
  } as unknown as EtcdTransport);
  const kv = (key: string, value: string) => ({
    key: Buffer.from(key),
    value: Buffer.from(value),
    mod_revision: '7',
    create_revision: '5',
  });
  it('null, a number, a list: refused naming the key', () => {
    const key = layoutOf('Namespace').key({ name: 'default' });
    for (const value of ['null', '42', '[1]', '"x"']) {
      const error = thrown(() => etcd.decodeKv('Namespace', kv(key, value)));
      expect(error).not.toBeInstanceOf(TypeError);
      expect(String(error)).toMatch(
        /etcd key \/calico\/resources\/v3\/projectcalico\.org\/namespaces\/default \(Namespace\) holds .*, not a JSON object/,
      );
    }
  });
  it('an IPAM block whose attributes is not a list: refused naming the block and the field', () => {
    const key = layoutOf('IPAMBlock').key({ name: '10-244-1-0-26' });
    const error = thrown(() =>
      etcd.decodeKv('IPAMBlock', kv(key, JSON.stringify({ cidr: '10.244.1.0/26', attributes: '10.0.0.0/8' }))),
    );
    expect(error).not.toBeInstanceOf(TypeError);
    expect(String(error)).toMatch(/IPAM block 10-244-1-0-26: attributes is "10\.0\.0\.0\/8", not a list/);
    // A null entry in the list is read as an attribute with nothing in it.
    const ok = etcd.decodeKv('IPAMBlock', kv(key, JSON.stringify({ cidr: '10.244.1.0/26', attributes: [null] })));
    expect(ok?.spec).toMatchObject({ attributes: [{ handle_id: null, secondary: null }] });
  });
});
