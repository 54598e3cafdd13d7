// IPv6 on one node, end to end with real parts: real etcd, the built CNI plugin (as the lab runs it:
// outside the node's namespace, TORTIE_CNI_HOST_NETNS) giving two pods both families from an IPv4 and an
// IPv6 pool, and felix's IPv6 side (felix/ipv6-dataplane.ts, fed from the datastore by
// src/agent/dataplane-input6.ts) programming the node namespace's kernel: blackhole for the node's /122,
// /128 per pod on its cali*, another node's /122 via that node's Node.spec.bgp.ipv6Address (static input
// from the block affinities: cross-node IPv6 over BGP is the BGP side's work), forwarding on, and
// natOutgoing in table ip6 tortie-nat6. Then `ping -6` from one pod to the other, through the node.
// Addresses (block 54): underlay 198.18.54.0/24 and fd00:54::/64, pools 10.54.0.0/16 and fd00:10:54::/64.

import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { Etcd3 } from 'etcd3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ipRunner6, Ipv6Dataplane, procSysWriter } from '../../felix/ipv6-dataplane.js';
import { Nft } from '../../felix/nft.js';
import { workloadInterfaceName } from '../../felix/interface-names.js';
import { dataplaneInput6 } from '../../src/agent/dataplane-input6.js';
import type { CacheView } from '../../src/agent/dataplane-input.js';
import { runCniPlugin, type CniOutcome } from '../../src/cni/index.js';
import { openEtcd } from '../../src/datastore/etcd.js';
import type { Datastore } from '../../src/datastore/types.js';
import { Ipam } from '../../src/ipam/index.js';
import { API_VERSION, type Kind, type Resource } from '../../src/resources/types.js';
import { requireEtcd, startEtcd, type EtcdInstance } from '../harness/etcd.js';
import { createNetns, destroyAllNetns, netnsUnavailableReason, type Netns } from '../harness/netns.js';
import { makeTempDir, removeTempDir, stopAll, waitFor } from '../harness/process.js';

const unavailable = netnsUnavailableReason();
if (unavailable && process.env.CI === 'true') throw new Error(`IPv6 node tests cannot run: ${unavailable}`);
const haveEtcd = unavailable === null && requireEtcd();
const MAIN_JS = join(process.cwd(), 'dist', 'src', 'cli', 'main.js');
const built = existsSync(MAIN_JS);
if (!built && process.env.CI === 'true') throw new Error(`${MAIN_JS} is missing: run npm run build first`);

const NODE = 'v6-node-a';
const OTHER = 'v6-node-b';

describe.skipIf(unavailable !== null || !haveEtcd || !built)(
  'IPv6 on a node: CNI dual stack and felix IPv6 routes',
  () => {
    let etcd: EtcdInstance;
    let ds: Datastore;
    let dir: string;
    let host: Netns;
    const pods: Array<{ ns: Netns; containerId: string; name: string; v4: string; v6: string }> = [];

    beforeAll(async () => {
      etcd = await startEtcd();
      ds = await openEtcd({ endpoints: [etcd.endpoint] });
      dir = makeTempDir('ipv6-node');
      const pool = (name: string, cidr: string, extra: Partial<Resource<'IPPool'>['spec']>): Resource<'IPPool'> => ({
        apiVersion: API_VERSION,
        kind: 'IPPool',
        metadata: { name },
        spec: { cidr, ipipMode: 'Never', nodeSelector: 'all()', ...extra },
      });
      await ds.create(pool('v4', '10.54.0.0/16', { blockSize: 26 }));
      await ds.create(pool('v6', 'fd00:10:54::/64', { blockSize: 122, natOutgoing: true }));
      for (const [name, v4, v6] of [
        [NODE, '198.18.54.11/24', 'fd00:54::11/64'],
        [OTHER, '198.18.54.12/24', 'fd00:54::12/64'],
      ] as const) {
        await ds.create({
          apiVersion: API_VERSION,
          kind: 'Node',
          metadata: { name },
          spec: { bgp: { ipv4Address: v4, ipv6Address: v6 } },
        });
      }
      host = await createNetns('v6node');
      await host.addVeth('eth0', 'eth0-peer');
      await host.ip('addr', 'add', '198.18.54.11/24', 'dev', 'eth0');
      await host.ip('-6', 'addr', 'add', 'fd00:54::11/64', 'dev', 'eth0', 'nodad');
    }, 60_000);

    afterAll(async () => {
      await ds?.close();
      await destroyAllNetns();
      await etcd?.stop();
      await stopAll();
      if (dir) removeTempDir(dir);
    });

    function add(ns: Netns, containerId: string, name: string): Promise<CniOutcome> {
      return runCniPlugin({
        command: 'ADD',
        containerId,
        netns: `/var/run/netns/${ns.name}`,
        pod: { namespace: 'default', name },
        hostNetns: `/var/run/netns/${host.name}`,
        executable: [process.execPath, MAIN_JS],
        config: {
          cniVersion: '1.0.0',
          name: 'k8s-pod-network',
          type: 'tortie',
          datastore_type: 'etcdv3',
          etcd_endpoints: etcd.endpoint,
          nodename: NODE,
          nodename_file: join(dir, 'nodename'),
          mtu: 1500,
          ipam: { type: 'calico-ipam', assign_ipv4: 'true', assign_ipv6: 'true' },
        },
      });
    }

    /** The node's IPv6 routes with felix's protocol (80), as "dst [via gw] [dev d]" or "blackhole dst", sorted. */
    async function felixRoutes(): Promise<string[]> {
      const list = JSON.parse(await host.ip('-6', '-json', 'route', 'show', 'table', 'main', 'proto', '80')) as Array<
        Record<string, unknown>
      >;
      return list
        .map((r) =>
          r.type === 'blackhole'
            ? `blackhole ${String(r.dst)}`
            : [String(r.dst), r.gateway ? `via ${String(r.gateway)}` : '', r.dev ? `dev ${String(r.dev)}` : '']
                .filter((x) => x !== '')
                .join(' '),
        )
        .sort();
    }

    async function cacheView(): Promise<CacheView> {
      const kinds: Kind[] = ['IPPool', 'IPAMBlock', 'BlockAffinity', 'WorkloadEndpoint', 'Node'];
      const lists = new Map<Kind, unknown[]>();
      for (const kind of kinds) lists.set(kind, (await ds.list(kind)).items);
      return { list: ((kind: Kind) => lists.get(kind) ?? []) as CacheView['list'] };
    }

    it('the CNI plugin gives each pod an IPv4 and an IPv6 address, with the IPv6 default route via fe80::ecee:eeff:feee:eeee', async () => {
      for (const name of ['web-1', 'web-2']) {
        const ns = await createNetns(`v6${name.replace('-', '')}`);
        const containerId = `v6${process.pid}${name}`;
        const out = await add(ns, containerId, name);
        expect(out.exitCode, `${out.stdout} ${out.stderr}`).toBe(0);
        const ips = (out.json?.ips as Array<{ address: string }>).map((i) => i.address);
        expect(ips).toHaveLength(2);
        const [v4, v6] = ips.map((a) => a.split('/')[0]!);
        expect(ips[1]).toMatch(/^fd00:10:54::[0-9a-f]*\/128$/);
        pods.push({ ns, containerId, name, v4: v4!, v6: v6! });
        const routes = JSON.parse(await ns.ip('-6', '-json', 'route', 'show', 'default')) as Array<
          Record<string, unknown>
        >;
        expect(routes).toContainEqual(expect.objectContaining({ gateway: 'fe80::ecee:eeff:feee:eeee', dev: 'eth0' }));
        const addrs = await ns.ip('-6', 'addr', 'show', 'dev', 'eth0');
        expect(addrs).toContain(`inet6 ${v6}/128`);
        const hostIf = workloadInterfaceName('default', name);
        expect((await host.exec('cat', [`/proc/sys/net/ipv6/conf/${hostIf}/proxy_ndp`])).trim()).toBe('1');
        const wep = (await ds.list('WorkloadEndpoint')).items.find((w) => w.spec.pod === name);
        expect(wep?.spec.ipNetworks).toEqual([`${v4}/32`, `${v6}/128`]);
      }
      // One /122 of node-a's, both pods in it; IPAM's etcd keys as Calico's (…/ipv6/block/…).
      expect((await new Ipam(ds).blocksOf(NODE)).filter((b) => b.includes(':'))).toEqual(['fd00:10:54::/122']);
      const client = new Etcd3({ hosts: etcd.endpoint });
      const keys = (await client.getAll().prefix('/calico/ipam/v2/').keys()).filter((k) => k.includes('ipv6')).sort();
      client.close();
      expect(keys).toEqual([
        '/calico/ipam/v2/assignment/ipv6/block/fd00:10:54::-122',
        `/calico/ipam/v2/host/${NODE}/ipv6/block/fd00:10:54::-122`,
      ]);
    }, 90_000);

    it('felix programs the node’s IPv6 routes, forwarding and ip6 NAT; one pod pings the other over IPv6', async () => {
      // Another node's block, claimed in the datastore: routed via its ipv6Address.
      expect(await new Ipam(ds).claimBlock(OTHER, { family: 6 })).toBe('fd00:10:54::40/122');
      const felix = new Ipv6Dataplane({
        ip: ipRunner6({ netns: host.name }),
        writeSysctl: procSysWriter({ netns: host.name }),
        nft: new Nft({ netns: host.name }),
      });
      const input = dataplaneInput6(NODE, 'eth0', await cacheView());
      expect(input).not.toBeNull();
      await felix.update(input!);
      expect(felix.status()).toMatchObject({ lastError: null, warnings: [] });
      const [p1, p2] = pods;
      const routes = await felixRoutes();
      expect(routes).toEqual(
        [
          'blackhole fd00:10:54::/122',
          `${p1!.v6} dev ${workloadInterfaceName('default', 'web-1')}`,
          `${p2!.v6} dev ${workloadInterfaceName('default', 'web-2')}`,
          'fd00:10:54::40/122 via fd00:54::12 dev eth0',
        ].sort(),
      );
      expect((await host.exec('cat', ['/proc/sys/net/ipv6/conf/all/forwarding'])).trim()).toBe('1');
      expect(await host.ip('-6', 'route', 'show', 'table', 'main')).not.toContain('proto boot');
      const nat = await host.exec('nft', ['list', 'table', 'ip6', 'tortie-nat6']);
      expect(nat).toContain('ip6 saddr @nat-pools ip6 daddr != @all-pools masquerade');
      // Pod to pod over IPv6, through the node (the link-local gateway, the /128 routes).
      await waitFor(
        async () => {
          try {
            await p1!.ns.exec('ping', ['-6', '-c', '1', '-W', '1', p2!.v6]);
            return true;
          } catch {
            return false;
          }
        },
        { timeoutMs: 15_000, what: `ping -6 ${p2!.v6} from web-1` },
      );
      const out = await p1!.ns.exec('ping', ['-6', '-c', '3', '-i', '0.2', '-W', '2', p2!.v6]);
      expect(out).toMatch(/3 packets transmitted, 3 received/);
      // A second update with nothing changed writes nothing and keeps the routes.
      await felix.resync();
      expect(await felixRoutes()).toEqual(routes);
    }, 90_000);
  },
);
