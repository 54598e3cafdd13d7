// BGP security end to end in the lab (issue 16), as root: `tortie lab up` with 2 nodes in a mesh and the
// BIRD 2 office router (AS 65001), real etcd, `tortie node run` per node namespace (TORTIE_DATAPLANE=kernel).
//
// (a) Passwords on etcd, the mounted-Secret form: each node gets its own node-specific BGPPeer to the router
//     with `password.secretKeyRef` (secret office-router-<node>, key password), resolved from the lab's
//     TORTIE_BGP_SECRETS_DIR (<lab dir>/bgp-secrets/<secret>/<key>); BIRD is configured with the same
//     passwords (`password "..."`, TCP-MD5). Both sessions reach Established. Then BIRD's password for
//     node-2 changes: that session drops and stays down while our side signs with the old key; the Secret
//     file is replaced (temp + rename, as the kubelet swaps a Secret volume) with the new password: the
//     session comes back — re-keyed by the agent alone — while node-1's router session and the mesh session
//     never restart (same since, Established throughout).
// (b) No pod speaks BGP as its node: with natOutgoing on (the pool is switched to it), from a workload
//     namespace on node-1 a raw TCP connect to node-2's port 179 times out, and tcpdump on node-2 sees no
//     SYN for port 179; the same connect to a port of node-2 where a test listener waits succeeds, its SYN
//     seen arriving from node-1's address (masqueraded): the path works, only BGP's port is closed. The
//     node-to-node session stays Established.
// The lab is taken down (and its namespaces checked gone) even when a test fails.

import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { PeerStatusRow } from '../../src/agent/types.js';
import { labDown, labSecretsDir, labUp, nodeStatus, type LabState } from '../../src/lab/lab.js';
import { LAB_AS, LAB_DEFAULTS } from '../../src/lab/plan.js';
import { netnsUnavailableReason, runCommand } from '../harness/netns.js';

const CLI = resolve('dist/src/cli/main.js');
const BIRD2_ROOT = process.env.TORTIE_BIRD2_ROOT ?? '/opt/tortie/bird2';
const BIRDC = `${BIRD2_ROOT}/usr/sbin/birdc`;
const unavailable =
  netnsUnavailableReason() ??
  (existsSync(CLI) ? null : `${CLI} is not built (npm run build)`) ??
  (existsSync('/usr/bin/etcd') ? null : 'etcd-server is not installed') ??
  (existsSync(BIRDC) ? null : `BIRD 2 is not unpacked at ${BIRD2_ROOT}`) ??
  (existsSync('/usr/bin/tcpdump') || existsSync('/usr/sbin/tcpdump') ? null : 'tcpdump is not installed');
if (unavailable && process.env.CI === 'true') throw new Error(`lab BGP security test cannot run: ${unavailable}`);

const root = mkdtempSync(join(tmpdir(), 'tortie-lab-sec-'));
const name = `sec${(process.pid % 46656).toString(36)}`.slice(0, 6);
const io = { progress: () => undefined };
const children: ChildProcess[] = [];
const PASSWORDS = { 'node-1': 'alpha-one-1', 'node-2': 'bravo-two-2' } as Record<string, string>;
const LISTEN_PORT = 7179;

async function eventually<T>(
  what: string,
  check: () => Promise<T | null | undefined | false>,
  ms = 60_000,
): Promise<T> {
  const until = Date.now() + ms;
  let last: T | null | undefined | false = null;
  while (Date.now() < until) {
    last = await check();
    if (last) return last;
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(`timed out after ${ms} ms waiting for ${what}`);
}

describe.skipIf(unavailable !== null)(
  'BGP security in the lab: passwords from mounted Secrets, no pod on port 179',
  () => {
    let state: LabState;
    let routerIp: string;

    const etcdEnv = (): string[] => ['DATASTORE_TYPE=etcdv3', `ETCD_ENDPOINTS=http://127.0.0.1:${state.etcdPort}`];

    async function tortie(args: string[], document?: unknown): Promise<void> {
      const extra: string[] = [];
      if (document !== undefined) {
        const file = join(root, `doc-${Date.now()}-${Math.random().toString(36).slice(2)}.json`);
        writeFileSync(file, JSON.stringify(document));
        extra.push('-f', file);
      }
      const result = await runCommand(
        'env',
        [...etcdEnv(), process.execPath, CLI, ...args, ...extra],
        undefined,
        30_000,
      );
      expect(result.code, `tortie ${args.join(' ')}: ${result.stderr}`).toBe(0);
    }

    /** A Secret volume's update: the new file is renamed over the old one. */
    function writeSecret(secret: string, value: string): void {
      const dir = join(labSecretsDir(state), secret);
      mkdirSync(dir, { recursive: true });
      const temp = join(dir, '.password.tmp');
      writeFileSync(temp, value, { mode: 0o400 });
      renameSync(temp, join(dir, 'password'));
    }

    /** BIRD 2's configuration as the lab writes it, with a TCP-MD5 password per node, then `birdc configure`. */
    async function configureBird(passwords: Record<string, string>): Promise<void> {
      const router = state.plan.router!;
      const leg = router.legs[0]!;
      const lines = [`router id ${leg.ip};`, 'protocol device { }'];
      for (const node of state.plan.nodes) {
        lines.push(
          `protocol bgp ${node.name.replace('-', '_')} {`,
          `  local ${leg.ip} as ${router.asNumber};`,
          `  neighbor ${node.ip} as ${LAB_AS};`,
          `  password "${passwords[node.name]!}";`,
          '  ipv4 { import all; export all; };',
          '}',
        );
      }
      writeFileSync(join(state.dir, 'bird.conf'), `${lines.join('\n')}\n`);
      const result = await runCommand(BIRDC, ['-s', join(state.dir, 'bird.ctl'), 'configure'], undefined, 10_000);
      expect(result.stdout, result.stderr).toMatch(/Reconfigur/);
    }

    async function peers(node: string): Promise<PeerStatusRow[]> {
      return (await nodeStatus(state, node))?.peers ?? [];
    }
    async function peer(node: string, address: string): Promise<PeerStatusRow | undefined> {
      return (await peers(node)).find((p) => p.address === address);
    }
    const established = async (node: string, address: string): Promise<PeerStatusRow | false> => {
      const p = await peer(node, address);
      return p?.bgpState === 'Established' ? p : false;
    };

    beforeAll(async () => {
      process.env.TORTIE_LAB_ROOT = root;
      state = await labUp({ ...LAB_DEFAULTS, name, nodes: 2, officeRouter: 'bird', workloadsPerNode: 1 }, io, [
        process.execPath,
        CLI,
      ]);
      routerIp = state.plan.router!.legs[0]!.ip;
      for (const node of state.plan.nodes)
        await eventually(`${node.name} Established with the router`, () => established(node.name, routerIp));
    }, 240_000);

    afterAll(async () => {
      for (const child of children) if (child.exitCode === null) child.kill('SIGKILL');
      if (state) await labDown(name, io);
      const left = (await runCommand('ip', ['netns', 'list'])).stdout
        .split('\n')
        .filter((l) => l.startsWith(`${name}-`));
      rmSync(root, { recursive: true, force: true });
      expect(left).toEqual([]);
    }, 120_000);

    it('(a) BGPPeer password.secretKeyRef from mounted Secret files: Established with BIRD; a changed Secret re-keys that session only', async () => {
      const [n1, n2] = state.plan.nodes as [(typeof state.plan.nodes)[0], (typeof state.plan.nodes)[0]];
      // Passwords on both sides: Secret files, BIRD's config, then node-specific peers that name the Secrets.
      for (const node of state.plan.nodes) writeSecret(`office-router-${node.name}`, PASSWORDS[node.name]!);
      await configureBird(PASSWORDS);
      await tortie(['delete', 'bgppeer', 'office-router']);
      for (const node of state.plan.nodes) {
        await tortie(['apply'], {
          apiVersion: 'projectcalico.org/v3',
          kind: 'BGPPeer',
          metadata: { name: `office-router-${node.name}` },
          spec: {
            node: node.name,
            peerIP: routerIp,
            asNumber: state.plan.router!.asNumber,
            password: { secretKeyRef: { name: `office-router-${node.name}`, key: 'password' } },
          },
        });
      }
      const r1 = await eventually('node-1 Established with the router, signed', async () => {
        const p = await established(n1.name, routerIp);
        return p && p.type === 'node specific' ? p : false;
      });
      await eventually('node-2 Established with the router, signed', async () => {
        const p = await established(n2.name, routerIp);
        return p && p.type === 'node specific' ? p : false;
      });
      // BIRD's own view: both protocols up with their passwords.
      const birdUp = await runCommand(
        BIRDC,
        ['-s', join(state.dir, 'bird.ctl'), 'show', 'protocols'],
        undefined,
        10_000,
      );
      expect(birdUp.stdout).toMatch(/node_1\s+BGP\s+---\s+up/);
      expect(birdUp.stdout).toMatch(/node_2\s+BGP\s+---\s+up/);
      const mesh1 = (await established(n1.name, n2.ip)) as PeerStatusRow;
      const mesh2 = (await established(n2.name, n1.ip)) as PeerStatusRow;
      expect(mesh1 && mesh2).toBeTruthy();

      // BIRD's password for node-2 changes: the session drops and cannot come back while we sign with the old key.
      await configureBird({ ...PASSWORDS, 'node-2': 'charlie-three-3' });
      await eventually(
        'node-2 session with the router down (wrong key)',
        async () => ((await peer(n2.name, routerIp))?.bgpState !== 'Established' ? true : false),
        30_000,
      );
      await new Promise((r) => setTimeout(r, 3000));
      expect((await peer(n2.name, routerIp))?.bgpState).not.toBe('Established');

      // The Secret file changes: the agent re-keys that session alone.
      writeSecret(`office-router-${n2.name}`, 'charlie-three-3');
      await eventually('node-2 Established again with the new key', () => established(n2.name, routerIp), 60_000);

      // Nothing else restarted: node-1's router session and the mesh session on both ends keep their since.
      const after1 = await established(n1.name, routerIp);
      expect(after1 && after1.sinceIso).toBe(r1.sinceIso);
      const afterMesh1 = await established(n1.name, n2.ip);
      const afterMesh2 = await established(n2.name, n1.ip);
      expect(afterMesh1 && afterMesh1.sinceIso).toBe(mesh1.sinceIso);
      expect(afterMesh2 && afterMesh2.sinceIso).toBe(mesh2.sinceIso);
      // Passwords never appear in status.
      const text = JSON.stringify([await nodeStatus(state, n1.name), await nodeStatus(state, n2.name)]);
      for (const secret of [...Object.values(PASSWORDS), 'charlie-three-3']) expect(text).not.toContain(secret);
    }, 240_000);

    it("(b) from a workload, a TCP connect to another node's port 179 never reaches it; other ports do; node-to-node stays Established", async () => {
      const [n1, n2] = state.plan.nodes as [(typeof state.plan.nodes)[0], (typeof state.plan.nodes)[0]];
      const workload = state.plan.workloads.find((w) => w.node === n1.name)!;
      // The case the guard is for: natOutgoing on, so a pod's packets to a node leave masqueraded as its node.
      await tortie(['apply'], {
        apiVersion: 'projectcalico.org/v3',
        kind: 'IPPool',
        metadata: { name: 'lab-pool' },
        spec: {
          cidr: LAB_DEFAULTS.poolCidr,
          blockSize: 26,
          ipipMode: 'Never',
          natOutgoing: true,
          nodeSelector: 'all()',
        },
      });
      await eventually(
        'table ip tortie-nat on node-1',
        async () =>
          (await runCommand('ip', ['netns', 'exec', n1.ns, 'nft', 'list', 'table', 'ip', 'tortie-nat'])).code === 0,
        30_000,
      );
      const meshBefore = await eventually('the mesh session Established', () => established(n1.name, n2.ip));
      // A listener on node-2 (the control), and tcpdump on node-2 for SYNs to either port.
      const listener = spawn(
        'ip',
        [
          'netns',
          'exec',
          n2.ns,
          process.execPath,
          '-e',
          `require('net').createServer((s) => s.end()).listen(${LISTEN_PORT}, '0.0.0.0')`,
        ],
        { stdio: 'ignore' },
      );
      children.push(listener);
      const dump = spawn(
        'ip',
        [
          'netns',
          'exec',
          n2.ns,
          'tcpdump',
          '-i',
          'any',
          '-nn',
          '-l',
          '--immediate-mode',
          `tcp[tcpflags] & tcp-syn != 0 and tcp[tcpflags] & tcp-ack == 0 and (dst port 179 or dst port ${LISTEN_PORT})`,
        ],
        {
          stdio: ['ignore', 'pipe', 'pipe'],
        },
      );
      children.push(dump);
      const seen: string[] = [];
      let dumpErr = '';
      dump.stdout!.on('data', (chunk: Buffer) =>
        seen.push(
          ...chunk
            .toString('utf8')
            .split('\n')
            .filter((l) => l.trim() !== ''),
        ),
      );
      dump.stderr!.on('data', (chunk: Buffer) => (dumpErr += chunk.toString('utf8')));
      await eventually('tcpdump listening', async () => dumpErr.includes('listening on'), 10_000);

      const connect = (port: number) =>
        runCommand(
          'ip',
          ['netns', 'exec', workload.ns, 'timeout', '4', 'bash', '-c', `exec 3<>/dev/tcp/${n2.ip}/${port}`],
          undefined,
          10_000,
        );
      // The control: the path from the workload to node-2 works (retried while the listener starts).
      await eventually(
        `a TCP connect from ${workload.ns} to ${n2.ip}:${LISTEN_PORT}`,
        async () => (await connect(LISTEN_PORT)).code === 0,
        15_000,
      );
      // BGP's port: timeout (124), not refused, not connected.
      const bgp = await connect(179);
      expect(bgp.code, `connect to ${n2.ip}:179 from ${workload.ns}: ${bgp.stderr}`).toBe(124);
      await new Promise((r) => setTimeout(r, 500));
      // The control arrived masqueraded as node-1: what a pod's BGP connection would look like unguarded.
      expect(seen.filter((l) => l.includes(`${n2.ip}.${LISTEN_PORT}:`)).some((l) => l.includes(` ${n1.ip}.`))).toBe(
        true,
      );
      // No SYN for port 179 at all — not the pod's, nor one masqueraded as node-1 (the mesh session was up
      // throughout, as its since below shows, so node-1 itself sent none either).
      expect(seen.filter((l) => l.includes(`${n2.ip}.179:`))).toEqual([]);
      // Node to node: still the same session.
      const meshAfter = await established(n1.name, n2.ip);
      expect(meshAfter && meshAfter.sinceIso).toBe(meshBefore.sinceIso);
    }, 120_000);
  },
);
