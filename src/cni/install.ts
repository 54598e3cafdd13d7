// `tortie cni install`: what Calico's install-cni init container does, for tortie — puts the plugin where
// the container runtime looks for plugins and a network configuration where it looks for networks:
//
//   $CNI_BIN_DIR/tortie                  (default /opt/cni/bin) a shell wrapper that execs Node on this
//                                        package's dist/src/cli/main.js ("tortie" acts as the plugin
//                                        when CNI_COMMAND is set)
//   $CNI_NET_DIR/$CNI_CONF_NAME          (default /etc/cni/net.d/10-tortie.conflist) one network,
//                                        k8s-pod-network, one plugin: tortie, with the agent's datastore
//                                        settings (DATASTORE_TYPE, ETCD_ENDPOINTS, ETCD_*_FILE, KUBECONFIG)
//   $CNI_NET_DIR/tortie-tls/etcd-*       copies of the etcd TLS files (the agent's paths are inside its
//                                        container; the plugin runs on the host)
//   $CNI_NET_DIR/tortie-kubeconfig       kubernetes datastore: a copy of KUBECONFIG, or one made from the
//                                        pod's service account (token + CA) when running in the cluster
//
// When TORTIE_CNI_LIB_DIR is set (a hostPath in the DaemonSet, e.g. /opt/cni/tortie), the package
// (package.json, dist/, node_modules/) and the Node binary are copied there first and the wrapper points
// at the copies: the host cannot see files inside the agent's container image. Unset, the wrapper points
// at this package where it is (tortie installed on the host itself).
//
// CNI_MTU (optional) is written as the plugin's `mtu`; unset, the plugin chooses per ADD (host default-
// route MTU minus the encapsulation overhead, see plugin.ts chooseMtu). Every file is written to a
// temporary name and renamed, so a runtime never execs or reads a half-written file.
//
// Why this is hard: the runtime may call the plugin at any moment, including while we replace it.

import { chmod, copyFile, cp, mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { DatastoreConfig } from '../datastore/config.js';

export const INSTALL_USAGE = `usage: tortie cni install

Installs the tortie CNI plugin and its network configuration (what Calico's install-cni does).

environment:
  CNI_BIN_DIR          where the runtime finds plugins            (default /opt/cni/bin)
  CNI_NET_DIR          where the runtime finds networks           (default /etc/cni/net.d)
  CNI_CONF_NAME        the network configuration file name        (default 10-tortie.conflist)
  CNI_MTU              the pods' MTU                              (default: chosen per pod)
  TORTIE_CNI_LIB_DIR   copy the package and Node here first       (default: use them in place)
  TORTIE_CNI_SERVICE_ACCOUNT  in a pod, kubernetes datastore: the plugin's kubeconfig gets a bound token
                       of this ServiceAccount (TokenRequest) instead of the pod's own token
  DATASTORE_TYPE, ETCD_ENDPOINTS, ETCD_CA_CERT_FILE, ETCD_CERT_FILE, ETCD_KEY_FILE, KUBECONFIG:
                       the datastore, as for 'tortie node run'
`;

export const NETWORK_NAME = 'k8s-pod-network';
export const DEFAULTS = { binDir: '/opt/cni/bin', netDir: '/etc/cni/net.d', confName: '10-tortie.conflist' } as const;
const SERVICE_ACCOUNT_DIR = '/var/run/secrets/kubernetes.io/serviceaccount';

export class InstallError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'InstallError';
  }
}

/** The plugin entry of the conflist (pure): datastore fields as the plugin reads them. */
export interface PluginEntry {
  datastore_type: 'etcdv3' | 'kubernetes';
  etcd_endpoints?: string;
  etcd_ca_cert_file?: string;
  etcd_cert_file?: string;
  etcd_key_file?: string;
  kubeconfig?: string;
  mtu?: number;
}

/** The network configuration list (pure). */
export function conflistFor(entry: PluginEntry): Record<string, unknown> {
  return {
    name: NETWORK_NAME,
    cniVersion: '1.0.0',
    // CNI 1.1 runtimes pick the highest listed version they support (and may then use STATUS and GC).
    cniVersions: ['1.0.0', '1.1.0'],
    plugins: [{ type: 'tortie', log_level: 'info', ...entry, ipam: { type: 'tortie-ipam' } }],
  };
}

/** The wrapper the runtime executes (pure). Paths are single-quoted for sh. */
export function wrapperScript(nodePath: string, mainJs: string): string {
  const quote = (s: string): string => `'${s.replace(/'/g, `'\\''`)}'`;
  return [
    '#!/bin/sh',
    '# The tortie CNI plugin, written by `tortie cni install`: the tortie command acts as the plugin',
    '# when CNI_COMMAND is set (see src/cni/index.ts).',
    `exec ${quote(nodePath)} ${quote(mainJs)} "$@"`,
    '',
  ].join('\n');
}

/** A kubeconfig for the plugin from the pod's service account (pure; YAML). */
export function serviceAccountKubeconfig(server: string, caData: string, token: string): string {
  return [
    'apiVersion: v1',
    'kind: Config',
    'clusters:',
    '- name: local',
    '  cluster:',
    `    server: ${JSON.stringify(server)}`,
    // A plain-http server (tests' fake API server) has no certificate to check; client-node then wants this said.
    caData === '' && server.startsWith('http:')
      ? '    insecure-skip-tls-verify: true'
      : `    certificate-authority-data: ${JSON.stringify(caData)}`,
    'users:',
    '- name: tortie-cni',
    '  user:',
    `    token: ${JSON.stringify(token)}`,
    'contexts:',
    '- name: tortie-cni-context',
    '  context:',
    '    cluster: local',
    '    user: tortie-cni',
    'current-context: tortie-cni-context',
    '',
  ].join('\n');
}

export interface InstallIo {
  readFile(path: string): Promise<Buffer>;
  /** Writes `data` to `path` atomically (temporary name, then rename). */
  writeFileAtomic(path: string, data: string | Buffer, mode: number): Promise<void>;
  mkdir(path: string): Promise<void>;
  /** Copies a file to `to` atomically with `mode`. */
  copyFileAtomic(from: string, to: string, mode: number): Promise<void>;
  /** Replaces directory `to` with a copy of the listed entries of `fromDir` (atomically swapped in). */
  copyPackage(fromDir: string, entries: string[], to: string): Promise<void>;
  /** The Node binary running now. */
  nodePath: string;
  /** This package's root (where package.json is). */
  packageRoot: string;
  /**
   * A bound token of ServiceAccount `name` in this pod's namespace (TokenRequest, with this pod's own
   * credentials). Absent (tests): TORTIE_CNI_SERVICE_ACCOUNT is refused.
   */
  requestToken?(name: string, expirationSeconds: number): Promise<string>;
}

export const realInstallIo = (): InstallIo => ({
  readFile: (path) => readFile(path),
  async writeFileAtomic(path, data, mode) {
    const tmp = `${path}.tmp-${process.pid}`;
    await writeFile(tmp, data, { mode });
    await chmod(tmp, mode);
    await rename(tmp, path);
  },
  mkdir: (path) => mkdir(path, { recursive: true }).then(() => undefined),
  async copyPackage(fromDir, entries, to) {
    const next = `${to}.new-${process.pid}`;
    const old = `${to}.old-${process.pid}`;
    await rm(next, { recursive: true, force: true });
    await mkdir(next, { recursive: true });
    for (const entry of entries)
      await cp(join(fromDir, entry), join(next, entry), { recursive: true, dereference: true });
    await rename(to, old).catch((e: unknown) => {
      if ((e as { code?: unknown }).code !== 'ENOENT') throw e;
    });
    await rename(next, to);
    await rm(old, { recursive: true, force: true });
  },
  async copyFileAtomic(from, to, mode) {
    const tmp = `${to}.tmp-${process.pid}`;
    await copyFile(from, tmp);
    await chmod(tmp, mode);
    await rename(tmp, to);
  },
  nodePath: process.execPath,
  packageRoot: join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..'),
  async requestToken(name, expirationSeconds) {
    const { kubeTokenRequester } = await import('../datastore/kube-token.js');
    // This pod's namespace: POD_NAMESPACE, else its service account's.
    const namespace =
      process.env.POD_NAMESPACE?.trim() || (await readFile(`${SERVICE_ACCOUNT_DIR}/namespace`, 'utf8')).trim();
    const request = await kubeTokenRequester(undefined, 10_000, namespace, name);
    return (await request(expirationSeconds)).token;
  },
});

function setting(env: Readonly<Record<string, string | undefined>>, name: string): string | undefined {
  const v = env[name]?.trim();
  return v === undefined || v === '' ? undefined : v;
}

/** Installs; returns one line per thing done, for the log. Refusals are InstallErrors naming the variable. */
export async function installCni(env: Readonly<Record<string, string | undefined>>, io: InstallIo): Promise<string[]> {
  const done: string[] = [];
  const binDir = setting(env, 'CNI_BIN_DIR') ?? DEFAULTS.binDir;
  const netDir = setting(env, 'CNI_NET_DIR') ?? DEFAULTS.netDir;
  const confName = setting(env, 'CNI_CONF_NAME') ?? DEFAULTS.confName;
  if (!/^[\w.-]+\.conflist$/.test(confName))
    throw new InstallError(
      `CNI_CONF_NAME: "${confName}" is not a file name ending in .conflist (like 10-tortie.conflist)`,
    );
  const mtuText = setting(env, 'CNI_MTU');
  let mtu: number | undefined;
  if (mtuText !== undefined) {
    mtu = Number(mtuText);
    if (!Number.isInteger(mtu) || mtu < 68 || mtu > 65535)
      throw new InstallError(
        `CNI_MTU: "${mtuText}" is not an MTU; use an integer 68..65535, or leave it unset to have the plugin choose`,
      );
  }
  const datastore = await datastoreFromEnv(env);

  // 1. The plugin.
  await io.mkdir(binDir);
  let nodePath = io.nodePath;
  let root = io.packageRoot;
  const libDir = setting(env, 'TORTIE_CNI_LIB_DIR');
  if (libDir !== undefined) {
    await io.mkdir(dirname(libDir));
    await io.copyPackage(root, ['package.json', 'dist', 'node_modules'], libDir);
    const copiedNode = join(libDir, 'node');
    await io.copyFileAtomic(io.nodePath, copiedNode, 0o755);
    nodePath = copiedNode;
    root = libDir;
    done.push(`copied the package and ${io.nodePath} to ${libDir}`);
  }
  const wrapper = join(binDir, 'tortie');
  await io.writeFileAtomic(wrapper, wrapperScript(nodePath, join(root, 'dist', 'src', 'cli', 'main.js')), 0o755);
  done.push(`wrote ${wrapper}`);

  // 2. Files the configuration names, copied where the host can read them.
  await io.mkdir(netDir);
  const entry: PluginEntry = { datastore_type: datastore.datastoreType };
  if (datastore.datastoreType === 'etcdv3') {
    entry.etcd_endpoints = datastore.etcdEndpoints.join(',');
    const tlsDir = join(netDir, 'tortie-tls');
    const files = [
      ['ETCD_CA_CERT_FILE', datastore.etcdCACertFile, 'etcd-ca', 'etcd_ca_cert_file'],
      ['ETCD_CERT_FILE', datastore.etcdCertFile, 'etcd-cert', 'etcd_cert_file'],
      ['ETCD_KEY_FILE', datastore.etcdKeyFile, 'etcd-key', 'etcd_key_file'],
    ] as const;
    for (const [variable, from, name, field] of files) {
      if (from === undefined) continue;
      await io.mkdir(tlsDir);
      const to = join(tlsDir, name);
      await io.writeFileAtomic(to, await readOrRefuse(io, from, variable), 0o600);
      entry[field] = to;
      done.push(`copied ${from} to ${to}`);
    }
  } else {
    const to = join(netDir, 'tortie-kubeconfig');
    if (datastore.kubeconfig !== undefined) {
      await io.writeFileAtomic(to, await readOrRefuse(io, datastore.kubeconfig, 'KUBECONFIG'), 0o600);
      done.push(`copied ${datastore.kubeconfig} to ${to}`);
    } else {
      const host = setting(env, 'KUBERNETES_SERVICE_HOST');
      const port = setting(env, 'KUBERNETES_SERVICE_PORT') ?? '443';
      if (host === undefined) {
        throw new InstallError(
          'DATASTORE_TYPE is kubernetes but KUBECONFIG is not set and this is not a pod (no KUBERNETES_SERVICE_HOST): set KUBECONFIG to a kubeconfig file the plugin may use',
        );
      }
      const ca = (await readOrRefuse(io, `${SERVICE_ACCOUNT_DIR}/ca.crt`, 'the service account CA')).toString('base64');
      const server = host.includes(':') ? `https://[${host}]:${port}` : `https://${host}:${port}`;
      // TORTIE_CNI_SERVICE_ACCOUNT: the plugin's own ServiceAccount (least privilege), a bound token the
      // agent then refreshes (TORTIE_CNI_KUBECONFIG, src/agent/cni-token.ts). Unset: this pod's own token.
      const account = setting(env, 'TORTIE_CNI_SERVICE_ACCOUNT');
      if (account !== undefined) {
        if (!io.requestToken)
          throw new InstallError('TORTIE_CNI_SERVICE_ACCOUNT is set but no TokenRequest client is available');
        let token: string;
        try {
          token = await io.requestToken(account, 3600);
        } catch (err) {
          throw new InstallError(
            `TORTIE_CNI_SERVICE_ACCOUNT=${account}: ${err instanceof Error ? err.message : String(err)}`,
          );
        }
        await io.writeFileAtomic(to, serviceAccountKubeconfig(server, ca, token), 0o600);
        done.push(`wrote ${to} for ${server} with a token of ServiceAccount ${account}`);
      } else {
        const token = (await readOrRefuse(io, `${SERVICE_ACCOUNT_DIR}/token`, 'the service account token'))
          .toString('utf8')
          .trim();
        await io.writeFileAtomic(to, serviceAccountKubeconfig(server, ca, token), 0o600);
        done.push(`wrote ${to} for ${server} from the pod's service account`);
      }
    }
    entry.kubeconfig = to;
  }
  if (mtu !== undefined) entry.mtu = mtu;

  // 3. The network configuration, last: once it exists the runtime starts using the plugin.
  const conflist = join(netDir, confName);
  await io.writeFileAtomic(conflist, JSON.stringify(conflistFor(entry), null, 2) + '\n', 0o644);
  done.push(`wrote ${conflist}`);
  return done;
}

/** The agent's datastore variables, checked as the agent checks them (src/datastore/config.ts). */
async function datastoreFromEnv(env: Readonly<Record<string, string | undefined>>): Promise<DatastoreConfig> {
  const { configFromEnv, ConfigError } = await import('../datastore/config.js');
  try {
    return configFromEnv(env);
  } catch (err) {
    if (err instanceof ConfigError) throw new InstallError(err.message);
    throw err;
  }
}

async function readOrRefuse(io: InstallIo, path: string, what: string): Promise<Buffer> {
  try {
    return await io.readFile(path);
  } catch (err) {
    throw new InstallError(`${what}: ${path} cannot be read (${String((err as { code?: unknown }).code ?? err)})`);
  }
}

/** `tortie cni <sub>`; returns the exit code (0 done, 1 refused or failed, 2 usage). */
export async function runCniCommand(
  args: string[],
  env: NodeJS.ProcessEnv,
  out: (text: string) => void = (t) => process.stdout.write(t),
): Promise<number> {
  const [sub, ...rest] = args;
  if (sub === undefined || sub === '--help' || sub === '-h' || rest.includes('--help') || rest.includes('-h')) {
    out(INSTALL_USAGE);
    return sub === undefined ? 2 : 0;
  }
  if (sub !== 'install' || rest.length > 0) {
    process.stderr.write(`tortie: unknown command "cni ${args.join(' ')}"\n\n${INSTALL_USAGE}`);
    return 2;
  }
  try {
    for (const line of await installCni(env, realInstallIo())) out(`${line}\n`);
    return 0;
  } catch (err) {
    process.stderr.write(`tortie cni install: ${err instanceof Error ? err.message : String(err)}\n`);
    return 1;
  }
}
