// tortie apply|create|replace|delete|get against MemoryDatastore: arguments, the all-or-nothing write plan,
// retries after a lost race, calicoctl-style summaries, and every output format of get.

import { describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { UsageError } from '../../../src/cli/usage-error.js';
import { columnTable as formatTable } from '../../../src/format/table.js';
import {
  formatResources,
  parseResourceArgs,
  runResourceCommand,
  type CommandContext,
  type ResourceArgs,
} from '../../../src/cli/resources-command.js';
import { MemoryDatastore } from '../../../src/datastore/memory.js';
import { ConflictError, type Datastore } from '../../../src/datastore/types.js';
import { parseDocuments, type AnyResource, type Resource } from '../../../src/resources/index.js';

const POOL = `apiVersion: projectcalico.org/v3
kind: IPPool
metadata:
  name: pool-a
spec:
  cidr: 10.244.0.0/16
  blockSize: 26
  ipipMode: Always
  natOutgoing: true
`;
const BGP_CONFIG = `apiVersion: projectcalico.org/v3
kind: BGPConfiguration
metadata:
  name: default
spec:
  nodeToNodeMeshEnabled: false
  asNumber: 64512
`;
const PEER = `apiVersion: projectcalico.org/v3
kind: BGPPeer
metadata:
  name: peer-with-route-reflectors
spec:
  nodeSelector: all()
  peerSelector: route-reflector == 'true'
`;
const NODE = `apiVersion: projectcalico.org/v3
kind: Node
metadata:
  name: node-1
  labels:
    route-reflector: 'true'
spec:
  bgp:
    ipv4Address: 198.18.0.11/24
    routeReflectorClusterID: 244.0.0.1
`;
const SEED = [POOL, BGP_CONFIG, PEER, NODE].join('---\n');

function pool(name: string, cidr: string, extra = ''): string {
  return `apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata:\n  name: ${name}\nspec:\n  cidr: ${cidr}\n${extra}`;
}

/** A command context over `ds`, with input files from `files` and output collected. */
function harness(ds: Datastore, files: Record<string, string> = {}) {
  let out = '';
  let opened = 0;
  const ctx: CommandContext = {
    out: (text) => (out += text),
    readInput: async (file) => {
      const text = files[file];
      if (text === undefined) throw Object.assign(new Error('ENOENT'), { code: 'ENOENT' });
      return text;
    },
    openDatastore: async () => {
      opened++;
      return { ...bind(ds), close: async () => undefined };
    },
  };
  const run = async (verb: Parameters<typeof parseResourceArgs>[0], ...argv: string[]) => {
    out = '';
    const code = await runResourceCommand(parseResourceArgs(verb, argv), ctx);
    return { code, out };
  };
  return { run, opened: () => opened, output: () => out };
}

/** The datastore's methods bound, so a spread copy still works. */
function bind(ds: Datastore): Datastore {
  return {
    type: ds.type,
    get: ds.get.bind(ds),
    list: ds.list.bind(ds),
    create: ds.create.bind(ds),
    update: ds.update.bind(ds),
    delete: ds.delete.bind(ds),
    watch: ds.watch.bind(ds),
    close: ds.close.bind(ds),
  };
}

async function names(ds: Datastore, kind: AnyResource['kind']): Promise<string[]> {
  return (await ds.list(kind)).items.map((r) => r.metadata.name).sort();
}

describe('parseResourceArgs', () => {
  it('reads -f, KIND NAME, -o, -n, -A and -c', () => {
    expect(parseResourceArgs('apply', ['-f', 'pools.yaml'])).toEqual({
      command: 'write',
      verb: 'apply',
      file: 'pools.yaml',
    });
    expect(parseResourceArgs('create', ['--filename=-', '-c', '/etc/x.cfg'])).toEqual({
      command: 'write',
      verb: 'create',
      file: '-',
      config: '/etc/x.cfg',
    });
    expect(parseResourceArgs('get', ['ippools'])).toEqual({
      command: 'get',
      kind: 'IPPool',
      output: 'table',
      namespace: 'default',
      allNamespaces: false,
    });
    expect(parseResourceArgs('get', ['bgpconfig', 'default', '-o', 'yaml'])).toMatchObject({
      kind: 'BGPConfiguration',
      name: 'default',
      output: 'yaml',
    });
    expect(parseResourceArgs('get', ['wep', '-A'])).toMatchObject({ kind: 'WorkloadEndpoint', allNamespaces: true });
    expect(parseResourceArgs('delete', ['BGPPeer', 'a', 'b'])).toEqual({
      command: 'delete-named',
      kind: 'BGPPeer',
      names: ['a', 'b'],
      namespace: 'default',
    });
  });

  const refusals: Array<[Parameters<typeof parseResourceArgs>[0], string[], RegExp]> = [
    ['apply', [], /^apply: -f FILE is required/],
    ['get', [], /^get: KIND is missing/],
    ['get', ['ippools', '-o', 'xml'], /^get: -o "xml" is not an output format; use table, wide, yaml, json$/],
    ['get', ['frobs'], /resource kind "frobs" is not known; accepted \(case-insensitive\): ippool\|ippools/],
    ['get', ['ippool', 'a', 'b'], /^get: unexpected argument "b"/],
    ['apply', ['-f', 'x', '-o', 'yaml'], /^apply: -o is only for get$/],
    ['apply', ['-f', 'x', 'ippool'], /^apply: give either -f FILE or KIND NAME, not both/],
    ['apply', ['--frob'], /^apply: Unknown option '--frob'/],
  ];
  it.each(refusals)('%s %j is a usage error', (verb, argv, message) => {
    expect(refusals.length).toBeGreaterThan(0);
    expect(() => parseResourceArgs(verb, argv)).toThrow(UsageError);
    expect(() => parseResourceArgs(verb, argv)).toThrow(message);
  });
});

describe('apply, create, replace, delete', () => {
  it('applies the seed examples, with Calico defaults filled in, and says so like calicoctl', async () => {
    const ds = new MemoryDatastore();
    const { run } = harness(ds, { 'seed.yaml': SEED });
    expect(await run('apply', '-f', 'seed.yaml')).toEqual({ code: 0, out: 'Successfully applied 4 resource(s)\n' });
    const stored = await ds.get('IPPool', 'pool-a');
    expect(stored?.spec).toEqual({
      cidr: '10.244.0.0/16',
      blockSize: 26,
      ipipMode: 'Always',
      vxlanMode: 'Never',
      natOutgoing: true,
      disabled: false,
      disableBGPExport: false,
      nodeSelector: 'all()',
      allowedUses: ['Workload', 'Tunnel'],
    });
    expect((await ds.get('BGPConfiguration', 'default'))?.spec).toMatchObject({
      nodeToNodeMeshEnabled: false,
      asNumber: 64512,
    });
    expect((await ds.get('BGPPeer', 'peer-with-route-reflectors'))?.spec).toMatchObject({
      nodeSelector: 'all()',
      peerSelector: "route-reflector == 'true'",
    });
    expect((await ds.get('Node', 'node-1'))?.spec.bgp?.routeReflectorClusterID).toBe('244.0.0.1');
  });

  it('apply again updates in place (same content, new revision); one kind is named in the summary', async () => {
    const ds = new MemoryDatastore();
    const { run } = harness(ds, { 'p.yaml': POOL });
    await run('apply', '-f', 'p.yaml');
    const first = await ds.get('IPPool', 'pool-a');
    expect((await run('apply', '-f', 'p.yaml')).out).toBe("Successfully applied 1 'IPPool' resource(s)\n");
    const second = await ds.get('IPPool', 'pool-a');
    expect(second?.spec).toEqual(first?.spec);
    expect(second?.metadata.uid).toBe(first?.metadata.uid);
    expect(second?.metadata.resourceVersion).not.toBe(first?.metadata.resourceVersion);
  });

  it('writes nothing when one document of many is bad, and names its number and field — without opening the datastore', async () => {
    const ds = new MemoryDatastore();
    const bad = [
      pool('p1', '10.1.0.0/16'),
      pool('p2', '10.2.0.0/16', '  blockSize: 19\n'),
      pool('p3', '10.3.0.0/16'),
    ].join('---\n');
    const h = harness(ds, { 'bad.yaml': bad });
    await expect(h.run('apply', '-f', 'bad.yaml')).rejects.toThrow(
      /^document 2 \(IPPool "p2"\): spec\.blockSize: 19 is not in 20\.\.32 \(IPv4\)\nnothing was written$/,
    );
    expect(h.opened()).toBe(0);
    expect(await names(ds, 'IPPool')).toEqual([]);
  });

  it('lists every bad document, not only the first', async () => {
    const ds = new MemoryDatastore();
    const bad = [
      pool('p1', '10.1.0.0/33'),
      pool('p2', '10.2.0.0/16'),
      pool('p3', '10.3.0.0/16', '  ipipmode: Always\n'),
    ].join('---\n');
    const error = await harness(ds, { 'bad.yaml': bad })
      .run('apply', '-f', 'bad.yaml')
      .catch((e: Error) => e);
    expect(String(error)).toMatch(
      /2 of 3 documents have problems:\ndocument 1 \(IPPool "p1"\): spec\.cidr[^\n]*\ndocument 3 \(IPPool "p3"\): [^\n]*ipipmode[^\n]*\nnothing was written$/,
    );
    expect(await names(ds, 'IPPool')).toEqual([]);
  });

  it('refuses pools overlapping another pool of the same input, and a stored pool, writing nothing', async () => {
    const ds = new MemoryDatastore();
    const h = harness(ds, {
      'twins.yaml': [pool('p1', '10.1.0.0/16'), pool('p2', '10.1.128.0/17')].join('---\n'),
      'stored.yaml': pool('old', '10.9.0.0/16'),
      'clash.yaml': [pool('p3', '10.3.0.0/16'), pool('p4', '10.9.64.0/18')].join('---\n'),
    });
    await expect(h.run('apply', '-f', 'twins.yaml')).rejects.toThrow(
      /^document 2 \(IPPool "p2"\): spec\.cidr: 10\.1\.128\.0\/17 overlaps IPPool "p1" \(10\.1\.0\.0\/16\)\nnothing was written$/,
    );
    await h.run('create', '-f', 'stored.yaml');
    await expect(h.run('apply', '-f', 'clash.yaml')).rejects.toThrow(
      /document 2 \(IPPool "p4"\): spec\.cidr: 10\.9\.64\.0\/18 overlaps IPPool "old" \(10\.9\.0\.0\/16\)/,
    );
    expect(await names(ds, 'IPPool')).toEqual(['old']);
  });

  it("refuses a changed pool cidr, but lets one input replace a stored pool's range by a pool of another name being deleted", async () => {
    const ds = new MemoryDatastore();
    const h = harness(ds, { 'a.yaml': pool('p1', '10.1.0.0/16'), 'moved.yaml': pool('p1', '10.2.0.0/16') });
    await h.run('apply', '-f', 'a.yaml');
    await expect(h.run('apply', '-f', 'moved.yaml')).rejects.toThrow(
      /document 1 \(IPPool "p1"\): spec\.cidr: 10\.2\.0\.0\/16: the cidr of IPPool "p1" cannot be changed \(it is 10\.1\.0\.0\/16\)/,
    );
    expect((await ds.get('IPPool', 'p1'))?.spec.cidr).toBe('10.1.0.0/16');
  });

  it('create refuses an existing resource and replace a missing one, before writing anything', async () => {
    const ds = new MemoryDatastore();
    const h = harness(ds, { 'p.yaml': POOL, 'seed.yaml': SEED, 'peer.yaml': PEER });
    await h.run('create', '-f', 'p.yaml');
    await expect(h.run('create', '-f', 'seed.yaml')).rejects.toThrow(
      /^document 1 \(IPPool "pool-a"\): metadata\.name: IPPool\/pool-a already exists; use apply or replace to change it\nnothing was written$/,
    );
    expect(await names(ds, 'BGPPeer')).toEqual([]);
    await expect(h.run('replace', '-f', 'peer.yaml')).rejects.toThrow(
      /resource does not exist: BGPPeer\(peer-with-route-reflectors\)/,
    );
    expect((await h.run('replace', '-f', 'p.yaml')).out).toBe("Successfully replaced 1 'IPPool' resource(s)\n");
  });

  it('refuses the same resource twice in one input, IPAM state written by hand, and resourceVersion on create', async () => {
    const ds = new MemoryDatastore();
    const block =
      'apiVersion: projectcalico.org/v3\nkind: BlockAffinity\nmetadata:\n  name: node-1-10-244-1-0-26\nspec:\n  state: confirmed\n  node: node-1\n  cidr: 10.244.1.0/26\n';
    const h = harness(ds, {
      'twice.yaml': [PEER, PEER].join('---\n'),
      'ipam.yaml': block,
      'rv.yaml': pool('p1', '10.1.0.0/16').replace('  name: p1\n', '  name: p1\n  resourceVersion: "7"\n'),
    });
    await expect(h.run('apply', '-f', 'twice.yaml')).rejects.toThrow(
      /document 2 \(BGPPeer "peer-with-route-reflectors"\): metadata\.name: BGPPeer\/peer-with-route-reflectors is also document 1/,
    );
    await expect(h.run('apply', '-f', 'ipam.yaml')).rejects.toThrow(
      /kind: BlockAffinity is IPAM state kept by tortie's IPAM/,
    );
    // Deleting IPAM state by hand would free addresses still in use: refused, by file and by name.
    await ds.create({
      apiVersion: 'projectcalico.org/v3',
      kind: 'BlockAffinity',
      metadata: { name: 'node-1-10-244-1-0-26' },
      spec: { state: 'confirmed', node: 'node-1', cidr: '10.244.1.0/26' },
    });
    await expect(h.run('delete', '-f', 'ipam.yaml')).rejects.toThrow(
      /BlockAffinity is IPAM state kept by tortie's IPAM.*not deleted by hand/,
    );
    await expect(h.run('delete', 'blockaffinity', 'node-1-10-244-1-0-26')).rejects.toThrow(
      /not deleted by hand; nothing was deleted/,
    );
    expect(await names(ds, 'BlockAffinity')).toEqual(['node-1-10-244-1-0-26']);
    await expect(h.run('create', '-f', 'rv.yaml')).rejects.toThrow(
      /^document 1 \(IPPool "p1"\): metadata\.resourceVersion: must not be set when creating; remove it, or use apply\nnothing was written$/,
    );
    expect(await names(ds, 'BGPPeer')).toEqual([]);
  });

  it('delete -f deletes what the documents name; a missing one deletes nothing; delete KIND NAME works too', async () => {
    const ds = new MemoryDatastore();
    const h = harness(ds, { 'seed.yaml': SEED, 'peer.yaml': PEER });
    await h.run('apply', '-f', 'seed.yaml');
    expect((await h.run('delete', '-f', 'peer.yaml')).out).toBe("Successfully deleted 1 'BGPPeer' resource(s)\n");
    await expect(h.run('delete', '-f', 'seed.yaml')).rejects.toThrow(
      /document 3 \(BGPPeer "peer-with-route-reflectors"\): metadata\.name: resource does not exist: BGPPeer\(peer-with-route-reflectors\)\nnothing was written/,
    );
    expect(await names(ds, 'IPPool')).toEqual(['pool-a']);
    await expect(h.run('delete', 'node', 'node-1', 'node-9')).rejects.toThrow(
      /^resource does not exist: Node\(node-9\); nothing was deleted$/,
    );
    expect((await h.run('delete', 'nodes', 'node-1')).out).toBe("Successfully deleted 1 'Node' resource(s)\n");
    expect(await names(ds, 'Node')).toEqual([]);
  });

  it('retries an update that lost a race (bounded), and says how far a failed write got', async () => {
    const ds = new MemoryDatastore();
    const h = harness(ds, { 'p.yaml': POOL, 'seed.yaml': SEED });
    await h.run('apply', '-f', 'p.yaml');
    // Another writer changes the pool between our read and our write, once.
    let races = 1;
    const racing: Datastore = {
      ...bind(ds),
      update: async (resource) => {
        if (races-- > 0) {
          const now = await ds.get('IPPool', 'pool-a');
          await ds.update({ ...now!, metadata: { ...now!.metadata, labels: { touched: 'yes' } } });
        }
        return ds.update(resource);
      },
    };
    const racer = harness(racing, { 'p.yaml': POOL });
    expect((await racer.run('apply', '-f', 'p.yaml')).code).toBe(0);
    races = 100;
    await expect(racer.run('apply', '-f', 'p.yaml')).rejects.toThrow(
      /^document 1 \(IPPool "pool-a"\): .*\(still changing after 5 attempts; try again\); nothing was written$/,
    );
    expect(races).toBe(95);

    let creates = 0;
    const failing: Datastore = {
      ...bind(ds),
      create: async (resource) => {
        if (++creates === 2) throw new ConflictError('etcd said no');
        return ds.create(resource);
      },
    };
    await expect(harness(failing, { 'seed.yaml': SEED }).run('apply', '-f', 'seed.yaml')).rejects.toThrow(
      /^document 3 \(BGPPeer "peer-with-route-reflectors"\): etcd said no; 2 of 4 resource\(s\) were applied before it$/,
    );
  });

  it('apply with a stale resourceVersion (from an old get -o yaml) is refused, not retried', async () => {
    const ds = new MemoryDatastore();
    const h = harness(ds, { 'p.yaml': POOL });
    await h.run('apply', '-f', 'p.yaml');
    const old = await h.run('get', 'ippool', 'pool-a', '-o', 'yaml');
    await h.run('apply', '-f', 'p.yaml');
    const stale = harness(ds, { 'old.yaml': old.out });
    const error = await stale.run('apply', '-f', 'old.yaml').catch((e: Error) => e);
    expect((error as Error).cause).toBeInstanceOf(ConflictError);
    expect(String(error)).toMatch(/^Error: document 1 \(IPPool "pool-a"\): .*; nothing was written$/);
  });

  it('names a file it cannot read', async () => {
    await expect(harness(new MemoryDatastore()).run('apply', '-f', 'missing.yaml')).rejects.toThrow(
      /^-f missing\.yaml: cannot read it \(ENOENT\)$/,
    );
  });
});

describe('a field stored but not in effect', () => {
  it('apply stores it and warns, naming the resource, the field and why (no silent no-op)', async () => {
    const ds = new MemoryDatastore();
    const warnings: string[] = [];
    const text =
      'apiVersion: projectcalico.org/v3\nkind: BGPConfiguration\nmetadata: {name: default}\nspec:\n  programClusterRoutes: Disabled\n';
    const code = await runResourceCommand(parseResourceArgs('apply', ['-f', 'c.yaml']), {
      out: () => undefined,
      warn: (line) => warnings.push(line),
      readInput: async () => text,
      openDatastore: async () => ({ ...bind(ds), close: async () => undefined }),
    });
    expect(code).toBe(0);
    expect((await ds.get('BGPConfiguration', 'default'))?.spec.programClusterRoutes).toBe('Disabled');
    expect(warnings).toEqual([
      expect.stringMatching(
        /^Warning: BGPConfiguration\/default: spec\.programClusterRoutes is stored but not in effect in tortie: \S.*\n$/,
      ),
    ]);
  });
});

describe('get', () => {
  async function seeded() {
    const ds = new MemoryDatastore();
    const h = harness(ds, {
      'seed.yaml': [SEED, pool('pool-b', '10.8.0.0/16', '  vxlanMode: CrossSubnet\n  disabled: true\n')].join('---\n'),
    });
    await h.run('apply', '-f', 'seed.yaml');
    return { ds, h };
  }

  it('prints a table per kind by default, and more columns with -o wide', async () => {
    const { h } = await seeded();
    expect((await h.run('get', 'ippools')).out).toBe(
      [
        'NAME     CIDR            SELECTOR',
        'pool-a   10.244.0.0/16   all()',
        'pool-b   10.8.0.0/16     all()',
        '',
      ].join('\n'),
    );
    const wide = (await h.run('get', 'ippool', '-o', 'wide')).out.split('\n');
    expect(wide[0]).toBe(
      'NAME     CIDR            BLOCKSIZE   IPIPMODE   VXLANMODE     NATOUTGOING   DISABLED   DISABLEBGPEXPORT   SELECTOR',
    );
    expect(wide[2]).toBe(
      'pool-b   10.8.0.0/16     26          Never      CrossSubnet   false         true       false              all()',
    );
    expect((await h.run('get', 'bgppeer')).out).toBe(
      [
        'NAME                         PEERIP                        NODE      ASN',
        "peer-with-route-reflectors   (route-reflector == 'true')   (all())",
        '',
      ].join('\n'),
    );
    expect((await h.run('get', 'bgpconfig')).out).toMatch(
      /^NAME\s+LOGSEVERITY\s+MESHENABLED\s+ASNUMBER\ndefault\s+\S*\s*false\s+64512\n$/,
    );
    expect((await h.run('get', 'nodes', '-o', 'wide')).out).toMatch(
      /^NAME\s+ASN\s+IPV4\s+IPV4TUNNELADDR\s+RRCLUSTERID\s+LABELS\nnode-1\s+\(global\)\s+198\.18\.0\.11\/24\s+244\.0\.0\.1\s+route-reflector=true\n$/,
    );
  });

  it('prints yaml and json: one object by name, a List without; the List applies back unchanged', async () => {
    const { ds, h } = await seeded();
    const one = parseYaml((await h.run('get', 'ippool', 'pool-a', '-o', 'yaml')).out) as Resource<'IPPool'>;
    expect(one).toEqual(await ds.get('IPPool', 'pool-a'));
    const list = JSON.parse((await h.run('get', 'ippools', '-o', 'json')).out) as {
      kind: string;
      apiVersion: string;
      metadata: { resourceVersion: string };
      items: unknown[];
    };
    expect(list.kind).toBe('IPPoolList');
    expect(list.apiVersion).toBe('projectcalico.org/v3');
    expect(list.items).toEqual((await ds.list('IPPool')).items);
    expect(list.metadata.resourceVersion).toBe((await ds.list('IPPool')).revision);

    const yamlList = (await h.run('get', 'ippools', '-o', 'yaml')).out;
    expect(parseDocuments(yamlList, 'get output')).toHaveLength(2);
    const before = (await ds.list('IPPool')).items.map((r) => r.spec);
    const again = harness(ds, { 'list.yaml': yamlList });
    expect((await again.run('apply', '-f', 'list.yaml')).out).toBe("Successfully applied 2 'IPPool' resource(s)\n");
    expect((await ds.list('IPPool')).items.map((r) => r.spec)).toEqual(before);
  });

  it('says a named resource does not exist, calicoctl style; an empty list is just the header', async () => {
    const { h } = await seeded();
    await expect(h.run('get', 'ippool', 'p9')).rejects.toThrow(/^resource does not exist: IPPool\(p9\)$/);
    await expect(h.run('get', 'wep', 'pod-1', '-n', 'kube-system')).rejects.toThrow(
      /^resource does not exist: WorkloadEndpoint\(kube-system\/pod-1\)$/,
    );
    expect((await h.run('get', 'workloadendpoints')).out).toBe('NAMESPACE   NAME   NODE   NETWORKS   INTERFACE\n');
  });

  it('formats tables with three spaces between left-aligned columns, no trailing blanks', () => {
    expect(
      formatTable(
        ['A', 'BBBB'],
        [
          ['xyz', ''],
          ['', 'q'],
        ],
      ),
    ).toBe('A     BBBB\nxyz\n      q\n');
    const table = formatResources('IPPool', [], 'table');
    expect(table).toBe('NAME   CIDR   SELECTOR\n');
  });
});

describe('the arguments are all it needs', () => {
  it('runs from a ResourceArgs value (what main.ts passes)', async () => {
    const ds = new MemoryDatastore();
    const args: ResourceArgs = { command: 'write', verb: 'apply', file: '-' };
    const h = harness(ds, { '-': POOL });
    let out = '';
    const code = await runResourceCommand(args, {
      out: (t) => (out += t),
      readInput: async () => POOL,
      openDatastore: async () => bind(ds),
    });
    expect(code).toBe(0);
    expect(out).toBe("Successfully applied 1 'IPPool' resource(s)\n");
    expect(h.opened()).toBe(0);
  });
});
