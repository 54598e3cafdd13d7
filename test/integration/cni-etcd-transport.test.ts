// How the built CNI plugin reaches etcd (src/cni/main.ts TORTIE_CNI_ETCD_TRANSPORT, src/datastore/index.ts):
// over etcd's HTTP/JSON gateway by default — shown by an etcd reachable only through an HTTP/1.1 proxy,
// which the gateway client passes and gRPC (HTTP/2) cannot — over gRPC when asked, and over gRPC with a
// warning in the plugin's log when the gateway cannot serve (TLS with a server certificate that lacks the
// clientAuth usage, the harness's). STATUS is the command: it opens the datastore and lists the pools,
// and needs no network namespace.

import { existsSync, readFileSync } from 'node:fs';
import { createServer, request, type Server } from 'node:http';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCniPlugin, type CniOutcome } from '../../src/cni/index.js';
import { openEtcd } from '../../src/datastore/etcd.js';
import { API_VERSION, type Resource } from '../../src/resources/types.js';
import { requireEtcd, startEtcd, type EtcdInstance } from '../harness/etcd.js';
import { makeTempDir, removeTempDir } from '../harness/process.js';

const MAIN_JS = join(process.cwd(), 'dist', 'src', 'cli', 'main.js');
const built = existsSync(MAIN_JS);
if (!built && process.env.CI === 'true') throw new Error(`${MAIN_JS} is missing: run npm run build first`);

const POOL: Resource<'IPPool'> = {
  apiVersion: API_VERSION,
  kind: 'IPPool',
  metadata: { name: 'transport-pods' },
  spec: { cidr: '10.71.0.0/16', blockSize: 26, ipipMode: 'Never', nodeSelector: 'all()' },
};

function status(config: Record<string, unknown>, env: Record<string, string> = {}): Promise<CniOutcome> {
  return runCniPlugin({
    command: 'STATUS',
    config: {
      cniVersion: '1.1.0',
      name: 'k8s-pod-network',
      type: 'tortie',
      datastore_type: 'etcdv3',
      ipam: { type: 'tortie-ipam' },
      ...config,
    },
    env: { TORTIE_DATASTORE_TIMEOUT_MS: '2000', ...env },
    executable: [process.execPath, MAIN_JS],
    timeoutMs: 30_000,
  });
}

/** An HTTP/1.1 reverse proxy to `target` on 127.0.0.1: what the gateway passes and gRPC (HTTP/2) does not. */
async function http1Proxy(target: string): Promise<{ endpoint: string; close(): Promise<void> }> {
  const upstream = new URL(target);
  const server: Server = createServer((req, res) => {
    const forward = request(
      { host: upstream.hostname, port: upstream.port, method: req.method, path: req.url, headers: req.headers },
      (answer) => {
        res.writeHead(answer.statusCode ?? 502, answer.headers);
        answer.pipe(res);
      },
    );
    forward.on('error', () => res.destroy());
    req.pipe(forward);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  const port = typeof address === 'object' && address !== null ? address.port : 0;
  return {
    endpoint: `http://127.0.0.1:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

describe.skipIf(!requireEtcd() || !built)("the CNI plugin's etcd transport", () => {
  let etcd: EtcdInstance;
  let proxy: Awaited<ReturnType<typeof http1Proxy>>;

  beforeAll(async () => {
    etcd = await startEtcd();
    const ds = await openEtcd({ endpoints: [etcd.endpoint] });
    await ds.create(POOL);
    await ds.close();
    proxy = await http1Proxy(etcd.endpoint);
  });
  afterAll(async () => {
    await proxy?.close();
    await etcd?.stop();
  });

  it('is the JSON gateway by default (it works through an HTTP/1.1 proxy); TORTIE_CNI_ETCD_TRANSPORT=grpc is gRPC (which cannot)', async () => {
    const viaGateway = await status({ etcd_endpoints: proxy.endpoint });
    expect(viaGateway.exitCode, viaGateway.stdout + viaGateway.stderr).toBe(0);
    expect((await status({ etcd_endpoints: proxy.endpoint }, { TORTIE_CNI_ETCD_TRANSPORT: 'http' })).exitCode).toBe(0);
    const viaGrpc = await status({ etcd_endpoints: proxy.endpoint }, { TORTIE_CNI_ETCD_TRANSPORT: 'grpc' });
    expect(viaGrpc.exitCode).toBe(1);
    expect(viaGrpc.json?.code).toBe(50); // STATUS: not available (the datastore did not answer)
    expect(String(viaGrpc.json?.msg)).toContain(proxy.endpoint);
    // Straight to etcd, both work.
    expect((await status({ etcd_endpoints: etcd.endpoint }, { TORTIE_CNI_ETCD_TRANSPORT: 'grpc' })).exitCode).toBe(0);
  }, 60_000);

  it('refuses a TORTIE_CNI_ETCD_TRANSPORT it does not know, naming the variable and what it takes', async () => {
    const out = await status({ etcd_endpoints: etcd.endpoint }, { TORTIE_CNI_ETCD_TRANSPORT: 'h2' });
    expect(out.exitCode).toBe(1);
    expect(String(out.json?.msg)).toMatch(/TORTIE_CNI_ETCD_TRANSPORT: "h2" is not a transport; use http or grpc/);
  });

  it('with TLS whose server certificate lacks clientAuth, falls back to gRPC and logs a warning saying why', async () => {
    const tlsEtcd = await startEtcd({ tls: true });
    const dir = makeTempDir('cni-transport');
    try {
      const ds = await openEtcd({
        endpoints: [tlsEtcd.endpoint],
        caFile: tlsEtcd.tls.caFile,
        certFile: tlsEtcd.tls.clientCertFile,
        keyFile: tlsEtcd.tls.clientKeyFile,
      });
      await ds.create(POOL);
      await ds.close();
      const logFile = join(dir, 'cni.log');
      const config = {
        etcd_endpoints: tlsEtcd.endpoint,
        etcd_ca_cert_file: tlsEtcd.tls.caFile,
        etcd_cert_file: tlsEtcd.tls.clientCertFile,
        etcd_key_file: tlsEtcd.tls.clientKeyFile,
        log_level: 'warning',
        log_file_path: logFile,
      };
      const out = await status(config);
      expect(out.exitCode, out.stdout + out.stderr).toBe(0);
      const warnings = readFileSync(logFile, 'utf8')
        .trim()
        .split('\n')
        .map((line) => JSON.parse(line) as { level: string; msg: string });
      expect(warnings).toEqual([
        expect.objectContaining({
          level: 'warning',
          msg: expect.stringMatching(
            new RegExp(
              `etcd at ${tlsEtcd.endpoint} answered, but its HTTP/JSON gateway cannot serve this client: .*; using gRPC`,
            ),
          ),
        }),
      ]);
      // Asked for gRPC: the same answer, nothing to warn about.
      const direct = await status(
        { ...config, log_file_path: join(dir, 'grpc.log') },
        { TORTIE_CNI_ETCD_TRANSPORT: 'grpc' },
      );
      expect(direct.exitCode).toBe(0);
      expect(existsSync(join(dir, 'grpc.log'))).toBe(false);
    } finally {
      await tlsEtcd.stop();
      removeTempDir(dir);
    }
  }, 60_000);
});
