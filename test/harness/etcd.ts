// A real etcd (Debian's etcd-server, 3.4) for integration tests: one member on 127.0.0.1 with free client
// and peer ports and its own temp data dir. Stopped by PID (never by name); the data dir is removed on
// stop(). restart() keeps the data dir and the ports, so clients reconnect to the same endpoint.
//
// Why this is hard: a free port found by binding port 0 may be taken again before etcd binds it, so a
// start that dies early is retried (bounded) on new ports; readiness is polled on /health, bounded in time.

import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { get as httpsGet } from 'node:https';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { findBinary, requireBinary } from './binaries.js';
import { makeTempDir, removeTempDir, startProcess, waitFor, type ManagedProcess } from './process.js';

export const ETCD_BINARY = '/usr/bin/etcd';

export interface EtcdInstance {
  /** "http://127.0.0.1:<client port>" */
  readonly endpoint: string;
  pid(): number | undefined;
  /** SIGTERM (then SIGKILL), wait for exit, remove the data dir. */
  stop(): Promise<void>;
  /** Stop (keeping the data), start again on the same ports, wait until it answers. */
  restart(): Promise<void>;
  /** SIGKILL, keep the data dir (restart() brings it back). */
  kill9(): Promise<void>;
}

/** True when etcd is installed; in CI a missing etcd throws (see binaries.ts). */
export function requireEtcd(): boolean {
  return requireBinary(
    findBinary(ETCD_BINARY) !== null ? ETCD_BINARY : 'etcd',
    'an etcd datastore test (package etcd-server)',
  );
}

/** A port on 127.0.0.1 that was free a moment ago. */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address !== null ? address.port : 0;
      server.close(() => (port > 0 ? resolve(port) : reject(new Error('could not find a free port on 127.0.0.1'))));
    });
  });
}

/** PEM files for an etcd with TLS: a CA, a server certificate for 127.0.0.1, a client certificate. */
export interface EtcdTlsFiles {
  caFile: string;
  serverCertFile: string;
  serverKeyFile: string;
  clientCertFile: string;
  clientKeyFile: string;
}

/** Makes a throwaway CA and certificates with openssl in `dir` (EC P-256, valid one day). */
export function makeTestCertificates(dir: string): EtcdTlsFiles {
  const file = (name: string): string => join(dir, name);
  const openssl = (...args: string[]): void => {
    execFileSync('openssl', args, { stdio: 'pipe', timeout: 10_000 });
  };
  openssl(
    'req',
    '-x509',
    '-newkey',
    'ec',
    '-pkeyopt',
    'ec_paramgen_curve:prime256v1',
    '-nodes',
    '-days',
    '1',
    '-subj',
    '/CN=tortie test CA',
    '-keyout',
    file('ca.key'),
    '-out',
    file('ca.pem'),
  );
  const extensions = {
    server: ['subjectAltName=IP:127.0.0.1', 'extendedKeyUsage=serverAuth'],
    client: ['extendedKeyUsage=clientAuth'],
  };
  for (const [name, lines] of Object.entries(extensions)) {
    writeFileSync(file(`${name}.ext`), `${lines.join('\n')}\n`);
    openssl(
      'req',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:prime256v1',
      '-nodes',
      '-subj',
      `/CN=tortie ${name}`,
      '-keyout',
      file(`${name}.key`),
      '-out',
      file(`${name}.csr`),
    );
    openssl(
      'x509',
      '-req',
      '-in',
      file(`${name}.csr`),
      '-CA',
      file('ca.pem'),
      '-CAkey',
      file('ca.key'),
      '-CAcreateserial',
      '-days',
      '1',
      '-extfile',
      file(`${name}.ext`),
      '-out',
      file(`${name}.pem`),
    );
  }
  return {
    caFile: file('ca.pem'),
    serverCertFile: file('server.pem'),
    serverKeyFile: file('server.key'),
    clientCertFile: file('client.pem'),
    clientKeyFile: file('client.key'),
  };
}

function healthyTls(endpoint: string, tls: EtcdTlsFiles): Promise<boolean> {
  return new Promise((resolve) => {
    const request = httpsGet(
      `${endpoint}/health`,
      {
        ca: readFileSync(tls.caFile),
        cert: readFileSync(tls.clientCertFile),
        key: readFileSync(tls.clientKeyFile),
        timeout: 1000,
      },
      (response) => {
        let body = '';
        response.on('data', (chunk: Buffer) => (body += chunk.toString()));
        response.on('end', () => resolve(body.includes('"health":"true"')));
      },
    );
    request.on('error', () => resolve(false));
    request.on('timeout', () => request.destroy());
  });
}

async function healthy(endpoint: string, tls: EtcdTlsFiles | undefined): Promise<boolean> {
  if (tls) return healthyTls(endpoint, tls);
  try {
    const response = await fetch(`${endpoint}/health`, { signal: AbortSignal.timeout(1000) });
    const body = (await response.json()) as { health?: string };
    return body.health === 'true';
  } catch {
    return false;
  }
}

function etcdArgs(dir: string, clientPort: number, peerPort: number, tls: EtcdTlsFiles | undefined): string[] {
  const client = `${tls ? 'https' : 'http'}://127.0.0.1:${clientPort}`;
  const peer = `http://127.0.0.1:${peerPort}`;
  return [
    '--name',
    'default',
    '--data-dir',
    `${dir}/data`,
    '--listen-client-urls',
    client,
    '--advertise-client-urls',
    client,
    '--listen-peer-urls',
    peer,
    '--initial-advertise-peer-urls',
    peer,
    '--initial-cluster',
    `default=${peer}`,
    '--initial-cluster-state',
    'new',
    '--log-level',
    'warn',
    '--logger',
    'zap',
    ...(tls
      ? [
          '--cert-file',
          tls.serverCertFile,
          '--key-file',
          tls.serverKeyFile,
          '--trusted-ca-file',
          tls.caFile,
          '--client-cert-auth',
        ]
      : []),
  ];
}

const START_ATTEMPTS = 3;
const READY_TIMEOUT_MS = 15_000;

/**
 * Starts etcd and resolves once /health answers true. With `tls: true` clients must use https and a
 * client certificate (see `tls` on the result for the files).
 */
export async function startEtcd(): Promise<EtcdInstance>;
export async function startEtcd(options: { tls: true }): Promise<EtcdInstance & { tls: EtcdTlsFiles }>;
export async function startEtcd(options: { tls?: boolean } = {}): Promise<EtcdInstance & { tls?: EtcdTlsFiles }> {
  const binary = findBinary(ETCD_BINARY) ?? findBinary('etcd');
  if (binary === null) throw new Error(`etcd is not installed at ${ETCD_BINARY} or on PATH (package etcd-server)`);
  const dir = makeTempDir('etcd');
  const tls = options.tls ? makeTestCertificates(dir) : undefined;
  let clientPort = 0;
  let peerPort = 0;
  let proc: ManagedProcess | undefined;
  let endpoint = '';

  async function launch(): Promise<void> {
    proc = startProcess({
      name: 'etcd',
      command: binary as string,
      args: etcdArgs(dir, clientPort, peerPort, tls),
      dir,
    });
    const started = proc;
    await waitFor(
      async () => {
        if (!started.isRunning()) throw new Error(`etcd exited early; log:\n${started.log().slice(-2000)}`);
        return healthy(endpoint, tls);
      },
      { timeoutMs: READY_TIMEOUT_MS, intervalMs: 50, what: `etcd healthy at ${endpoint}` },
    );
  }

  let lastError: unknown;
  for (let attempt = 0; attempt < START_ATTEMPTS; attempt++) {
    clientPort = await freePort();
    peerPort = await freePort();
    endpoint = `${tls ? 'https' : 'http'}://127.0.0.1:${clientPort}`;
    try {
      await launch();
      lastError = undefined;
      break;
    } catch (err) {
      lastError = err;
      await proc?.kill9().catch(() => undefined);
    }
  }
  if (lastError !== undefined) {
    removeTempDir(dir);
    throw lastError instanceof Error ? lastError : new Error(String(lastError));
  }

  return {
    endpoint,
    ...(tls ? { tls } : {}),
    pid: () => (proc?.isRunning() ? proc.pid : undefined),
    async stop() {
      await proc?.stop();
      removeTempDir(dir);
    },
    async restart() {
      await proc?.stop();
      await launch();
    },
    async kill9() {
      await proc?.kill9();
    },
  };
}
