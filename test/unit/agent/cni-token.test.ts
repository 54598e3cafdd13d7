// The CNI plugin's token (src/agent/cni-token.ts), on fake time against the fake API server's honest
// TokenRequest (test/harness/fake-apiserver.ts: bound tokens that expire, RBAC from manifests/tortie.yaml):
// - the agent, with its own ServiceAccount's rights, gets a token of tortie-cni and writes the kubeconfig
//   atomically, mode 0600; that kubeconfig can do what ClusterRole tortie-cni grants and nothing else;
// - the next token is asked for at 80 % of the granted lifetime, not before; the old one still works
//   until it expires, then 401 while the new one works;
// - a failed TokenRequest (API server down) is retried 1 s, 2 s, 4 s ... apart, and the kubeconfig is
//   written as soon as one succeeds;
// - the agent cannot mint a token of any other ServiceAccount.

import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { FakeClock } from '../../../bgp/clock.js';
import {
  CniTokenRefresher,
  kubeTokenRequester,
  refreshDelay,
  retryDelay,
  writePrivateFileAtomic,
} from '../../../src/agent/cni-token.js';
import { openPodApi } from '../../../src/cni/endpoint.js';
import { grantsFromManifests, startFakeApiServer, type FakeApiServer } from '../../harness/fake-apiserver.js';
import { loadKubeDocuments, MANIFEST_DIR } from '../../harness/manifests.js';

const NS = 'tortie-system';
const HOUR = 3600_000;

describe('refresh arithmetic (pure)', () => {
  it('refreshes at 80 % of the lifetime the server granted, counted from the request', () => {
    expect(refreshDelay(1000, 1000, 1000 + HOUR)).toBe(0.8 * HOUR);
    expect(refreshDelay(1500, 1000, 1000 + HOUR)).toBe(0.8 * HOUR - 500);
    expect(refreshDelay(5 * HOUR, 0, HOUR)).toBe(0);
  });
  it('retries 1 s, 2 s, 4 s ... up to 60 s', () => {
    expect([1, 2, 3, 4, 5, 6, 7, 8, 20].map(retryDelay)).toEqual([
      1000, 2000, 4000, 8000, 16000, 32000, 60000, 60000, 60000,
    ]);
  });
});

describe('writePrivateFileAtomic', () => {
  it('replaces the file whole, mode 0600 even over a 0644 file, and leaves no temporary file', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tortie-cni-token-'));
    try {
      const path = join(dir, 'tortie-kubeconfig');
      writeFileSync(path, 'old', { mode: 0o644 });
      await writePrivateFileAtomic(path, 'new contents');
      expect(readFileSync(path, 'utf8')).toBe('new contents');
      expect(statSync(path).mode & 0o777).toBe(0o600);
      expect(readdirSync(dir)).toEqual(['tortie-kubeconfig']);
      await expect(writePrivateFileAtomic(join(dir, 'missing', 'x'), 'y')).rejects.toThrow(/ENOENT/);
      expect(readdirSync(dir)).toEqual(['tortie-kubeconfig']);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('CniTokenRefresher against the fake API server (fake time)', () => {
  let clock: FakeClock;
  let api: FakeApiServer;
  let dir: string;
  let agentKubeconfig: string;
  let refresher: CniTokenRefresher | null = null;

  beforeEach(async () => {
    clock = new FakeClock(Date.UTC(2026, 0, 1));
    api = await startFakeApiServer({ now: () => clock.now() });
    api.serviceAccount(NS, 'tortie-node');
    api.serviceAccount(NS, 'tortie-cni');
    api.serviceAccount(NS, 'other');
    api.setGrants(grantsFromManifests(loadKubeDocuments(join(MANIFEST_DIR, 'tortie.yaml'))));
    // The agent acts as its own ServiceAccount, as in the DaemonSet: only its roles apply.
    agentKubeconfig = await api.kubeconfigWithToken(api.issueToken(NS, 'tortie-node', 24 * 3600).token);
    dir = mkdtempSync(join(tmpdir(), 'tortie-cni-token-'));
  });
  afterEach(async () => {
    refresher?.stop();
    refresher = null;
    await api.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  const tokenRequests = (): number => api.calls.filter((c) => c.resource === 'serviceaccounts/token').length;
  const tokenIn = (path: string): string => /token: "?([^"\s]+)"?/.exec(readFileSync(path, 'utf8'))![1]!;

  async function start(): Promise<{ path: string; refresher: CniTokenRefresher }> {
    const path = join(dir, 'tortie-kubeconfig');
    refresher = new CniTokenRefresher({
      kubeconfigPath: path,
      server: api.url,
      caData: '',
      request: await kubeTokenRequester(agentKubeconfig, 2000, NS, 'tortie-cni'),
      clock,
    });
    await refresher.start();
    return { path, refresher };
  }

  /** What the plugin can do with the kubeconfig: read a Pod (granted), list Nodes (not granted). */
  async function pluginCan(path: string): Promise<{ readPod: boolean | number; listNodes: number }> {
    const pods = await openPodApi({ kubeconfig: path }, 2000);
    let readPod: boolean | number;
    try {
      readPod = (await pods.annotations('default', 'p1')) !== null;
    } catch (err) {
      readPod = Number(
        /HTTP-Code: (\d+)|"code":(\d+)/
          .exec(String((err as Error).message))
          ?.slice(1)
          .find(Boolean) ?? -1,
      );
    }
    const { default: http } = await import('node:http');
    const listNodes = await new Promise<number>((resolve, reject) => {
      http
        .get(`${api.url}/api/v1/nodes`, { headers: { authorization: `Bearer ${tokenIn(path)}` } }, (res) => {
          res.resume();
          resolve(res.statusCode ?? 0);
        })
        .on('error', reject);
    });
    return { readPod, listNodes };
  }

  it("writes a kubeconfig (0600) whose token is tortie-cni's: what ClusterRole tortie-cni grants works, nothing else", async () => {
    api.put({ core: 'pods' }, { metadata: { name: 'p1', namespace: 'default' } });
    const { path, refresher: r } = await start();
    expect(r.written).toBe(1);
    expect(statSync(path).mode & 0o777).toBe(0o600);
    expect(r.expiresAt).toBe(Math.floor(clock.now() / 1000) * 1000 + HOUR);
    expect(await pluginCan(path)).toEqual({ readPod: true, listNodes: 403 });
    const byCni = api.calls.filter((c) => c.user === `system:serviceaccount:${NS}:tortie-cni`);
    expect(byCni.map((c) => `${c.verb} ${c.resource} ${c.status}`)).toEqual(['get pods 200', 'list nodes 403']);
    // The request was made with the agent's own rights and allowed by its Role.
    expect(api.calls.filter((c) => c.resource === 'serviceaccounts/token').map((c) => [c.user, c.status])).toEqual([
      [`system:serviceaccount:${NS}:tortie-node`, 201],
    ]);
  });

  it('asks for the next token at 80 % of the lifetime, not before; the old token works until it expires', async () => {
    api.put({ core: 'pods' }, { metadata: { name: 'p1', namespace: 'default' } });
    const { path, refresher: r } = await start();
    const first = tokenIn(path);
    clock.advance(0.8 * HOUR - 1000);
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(tokenRequests()).toBe(1);
    clock.advance(1000);
    await vi.waitFor(() => expect(r.written).toBe(2), { timeout: 3000 });
    expect(tokenRequests()).toBe(2);
    const second = tokenIn(path);
    expect(second).not.toBe(first);
    // Before the first expires both work; after, only the new one.
    const oldKubeconfig = await api.kubeconfigWithToken(first);
    expect((await pluginCan(oldKubeconfig)).readPod).toBe(true);
    clock.advance(0.2 * HOUR);
    expect((await pluginCan(oldKubeconfig)).readPod).toBe(401);
    expect((await pluginCan(path)).readPod).toBe(true);
    // And so on: the third at 80 % of the second's lifetime.
    await vi.waitFor(() => expect(tokenRequests()).toBe(2));
    clock.advance(0.6 * HOUR);
    await vi.waitFor(() => expect(r.written).toBe(3), { timeout: 3000 });
  });

  it('retries a failed TokenRequest with a doubling delay, and writes once the API server answers', async () => {
    const { path, refresher: r } = await start();
    const first = tokenIn(path);
    api.setDown(true);
    clock.advance(0.8 * HOUR);
    await vi.waitFor(() => expect(r.lastError).not.toBeNull(), { timeout: 5000 });
    // Attempts at +0, +1 s, +3 s, +7 s (1, 2, 4 s apart): nothing between.
    for (const [wait, failuresAfter] of [
      [999, 1],
      [1, 2],
      [1999, 2],
      [1, 3],
      [3999, 3],
      [1, 4],
    ] as const) {
      clock.advance(wait);
      await new Promise((resolve) => setTimeout(resolve, 30));
      await vi.waitFor(() => expect((r as unknown as { failures: number }).failures).toBe(failuresAfter), {
        timeout: 5000,
      });
    }
    expect(tokenIn(path)).toBe(first);
    api.setDown(false);
    clock.advance(8000);
    await vi.waitFor(() => expect(r.written).toBe(2), { timeout: 5000 });
    expect(r.lastError).toBeNull();
    expect(tokenIn(path)).not.toBe(first);
  });

  it("an expiry that does not fit the host's clock (skew): written, and refreshed at 80 % of the lifetime asked for", async () => {
    const path = join(dir, 'tortie-kubeconfig');
    let n = 0;
    // The API server's clock is two hours behind ours: its expiry is already past by our clock.
    const request = async (seconds: number) => ({
      token: `t${++n}`,
      expiresAt: clock.now() - 2 * HOUR + seconds * 1000,
    });
    const warnings: string[] = [];
    refresher = new CniTokenRefresher({
      kubeconfigPath: path,
      server: api.url,
      caData: '',
      request,
      clock,
      log: (level, message) => level === 'warn' && warnings.push(message),
    });
    await refresher.start();
    expect(tokenIn(path)).toBe('t1');
    expect(warnings.join()).toMatch(/does not fit this host's clock/);
    clock.advance(0.8 * HOUR - 1);
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(n).toBe(1);
    clock.advance(1);
    await vi.waitFor(() => expect(tokenIn(path)).toBe('t2'), { timeout: 3000 });
  });

  it('stop() cancels the next refresh', async () => {
    const { refresher: r } = await start();
    r.stop();
    clock.advance(2 * HOUR);
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(tokenRequests()).toBe(1);
  });

  it('the agent cannot mint a token of another ServiceAccount (Role tortie-node names tortie-cni only)', async () => {
    const request = await kubeTokenRequester(agentKubeconfig, 2000, NS, 'other');
    await expect(request(3600)).rejects.toThrow(/ServiceAccount tortie-system\/other .*\(HTTP 403\)/);
    // With an administrator's kubeconfig it exists: the refusal is RBAC's, not a missing account.
    await expect((await kubeTokenRequester(api.kubeconfigPath, 2000, NS, 'other'))(3600)).resolves.toMatchObject({
      token: expect.any(String),
    });
  });
});
