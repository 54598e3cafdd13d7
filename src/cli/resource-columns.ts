// `tortie get` output: the columns per kind (one table; -o wide adds the ones marked wide) and the yaml/json
// forms (calicoctl's `<Kind>List`, which apply reads back). Pure; ./resources-command.ts prints it.

import { stringify as toYaml } from 'yaml';
import { resourceKey } from '../resources/index.js';
import { API_VERSION, type AnyResource, type Kind, type Resource } from '../resources/types.js';
import { columnTable } from '../format/table.js';

export type OutputFormat = 'table' | 'wide' | 'yaml' | 'json';

interface Column<K extends Kind> {
  header: string;
  /** Only with -o wide. */
  wide?: boolean;
  value(r: Resource<K>): string;
}

const text = (value: unknown): string => (value === undefined || value === null ? '' : String(value));

/** The columns `get` prints per kind; -o wide adds the ones marked wide. */
const COLUMNS: { readonly [K in Kind]: ReadonlyArray<Column<K>> } = {
  IPPool: [
    { header: 'NAME', value: (r) => r.metadata.name },
    { header: 'CIDR', value: (r) => r.spec.cidr },
    { header: 'BLOCKSIZE', wide: true, value: (r) => text(r.spec.blockSize) },
    { header: 'IPIPMODE', wide: true, value: (r) => text(r.spec.ipipMode) },
    { header: 'VXLANMODE', wide: true, value: (r) => text(r.spec.vxlanMode) },
    { header: 'NATOUTGOING', wide: true, value: (r) => text(r.spec.natOutgoing ?? false) },
    { header: 'DISABLED', wide: true, value: (r) => text(r.spec.disabled ?? false) },
    { header: 'DISABLEBGPEXPORT', wide: true, value: (r) => text(r.spec.disableBGPExport ?? false) },
    { header: 'SELECTOR', value: (r) => text(r.spec.nodeSelector) },
  ],
  BGPFilter: [
    { header: 'NAME', value: (r) => r.metadata.name },
    { header: 'EXPORTV4', value: (r) => text(r.spec.exportV4?.length ?? 0) },
    { header: 'IMPORTV4', value: (r) => text(r.spec.importV4?.length ?? 0) },
    { header: 'EXPORTV6', wide: true, value: (r) => text(r.spec.exportV6?.length ?? 0) },
    { header: 'IMPORTV6', wide: true, value: (r) => text(r.spec.importV6?.length ?? 0) },
  ],
  BGPConfiguration: [
    { header: 'NAME', value: (r) => r.metadata.name },
    { header: 'LOGSEVERITY', value: (r) => text(r.spec.logSeverityScreen) },
    { header: 'MESHENABLED', value: (r) => text(r.spec.nodeToNodeMeshEnabled) },
    { header: 'ASNUMBER', value: (r) => text(r.spec.asNumber) },
    { header: 'LISTENPORT', wide: true, value: (r) => text(r.spec.listenPort) },
    { header: 'BINDMODE', wide: true, value: (r) => text(r.spec.bindMode) },
    {
      header: 'SERVICECLUSTERIPS',
      wide: true,
      value: (r) => (r.spec.serviceClusterIPs ?? []).map((c) => c.cidr).join(','),
    },
  ],
  BGPPeer: [
    { header: 'NAME', value: (r) => r.metadata.name },
    {
      header: 'PEERIP',
      value: (r) => r.spec.peerIP ?? (r.spec.peerSelector !== undefined ? `(${r.spec.peerSelector})` : ''),
    },
    {
      header: 'NODE',
      value: (r) => r.spec.node ?? (r.spec.nodeSelector !== undefined ? `(${r.spec.nodeSelector})` : '(global)'),
    },
    { header: 'ASN', value: (r) => text(r.spec.asNumber) },
    { header: 'NEXTHOPMODE', wide: true, value: (r) => text(r.spec.nextHopMode) },
    { header: 'SOURCEADDRESS', wide: true, value: (r) => text(r.spec.sourceAddress) },
    { header: 'KEEPALIVETIME', wide: true, value: (r) => text(r.spec.keepaliveTime) },
    { header: 'MAXRESTARTTIME', wide: true, value: (r) => text(r.spec.maxRestartTime) },
  ],
  Node: [
    { header: 'NAME', value: (r) => r.metadata.name },
    { header: 'ASN', value: (r) => (r.spec.bgp?.asNumber !== undefined ? String(r.spec.bgp.asNumber) : '(global)') },
    { header: 'IPV4', value: (r) => text(r.spec.bgp?.ipv4Address) },
    { header: 'IPV4TUNNELADDR', wide: true, value: (r) => text(r.spec.bgp?.ipv4IPIPTunnelAddr) },
    { header: 'RRCLUSTERID', wide: true, value: (r) => text(r.spec.bgp?.routeReflectorClusterID) },
    { header: 'LABELS', wide: true, value: (r) => labels(r.metadata.labels) },
  ],
  WorkloadEndpoint: [
    { header: 'NAMESPACE', value: (r) => text(r.metadata.namespace) },
    { header: 'NAME', value: (r) => r.metadata.name },
    { header: 'NODE', value: (r) => r.spec.node },
    { header: 'NETWORKS', value: (r) => r.spec.ipNetworks.join(',') },
    { header: 'INTERFACE', value: (r) => r.spec.interfaceName },
    { header: 'POD', wide: true, value: (r) => text(r.spec.pod) },
    { header: 'MAC', wide: true, value: (r) => text(r.spec.mac) },
    { header: 'PROFILES', wide: true, value: (r) => (r.spec.profiles ?? []).join(',') },
  ],
  IPAMBlock: [
    { header: 'NAME', value: (r) => r.metadata.name },
    { header: 'CIDR', value: (r) => r.spec.cidr },
    { header: 'AFFINITY', value: (r) => text(r.spec.affinity) },
    {
      header: 'IN USE',
      value: (r) => `${r.spec.allocations.filter((a) => a !== null).length}/${r.spec.allocations.length}`,
    },
    { header: 'STRICTAFFINITY', wide: true, value: (r) => text(r.spec.strictAffinity ?? false) },
    { header: 'SEQUENCENUMBER', wide: true, value: (r) => text(r.spec.sequenceNumber) },
  ],
  BlockAffinity: [
    { header: 'NAME', value: (r) => r.metadata.name },
    { header: 'NODE', value: (r) => r.spec.node },
    { header: 'CIDR', value: (r) => r.spec.cidr },
    { header: 'STATE', value: (r) => r.spec.state },
  ],
  IPAMHandle: [
    { header: 'NAME', value: (r) => r.metadata.name },
    { header: 'HANDLEID', value: (r) => r.spec.handleID },
    {
      header: 'BLOCKS',
      value: (r) =>
        Object.entries(r.spec.block)
          .map(([cidr, n]) => `${cidr}=${n}`)
          .join(','),
    },
  ],
  NetworkPolicy: [
    { header: 'NAMESPACE', value: (r) => text(r.metadata.namespace) },
    { header: 'NAME', value: (r) => r.metadata.name },
    {
      header: 'POD-SELECTOR',
      value: (r) =>
        labels(r.spec.podSelector?.matchLabels) ||
        (r.spec.podSelector?.matchExpressions?.length ? '(expressions)' : '<none>'),
    },
    { header: 'POLICYTYPES', wide: true, value: (r) => (r.spec.policyTypes ?? []).join(',') },
  ],
  Namespace: [
    { header: 'NAME', value: (r) => r.metadata.name },
    { header: 'LABELS', value: (r) => labels(r.metadata.labels) },
  ],
};

function labels(map: Record<string, string> | undefined): string {
  return Object.entries(map ?? {})
    .map(([k, v]) => `${k}=${v}`)
    .join(',');
}

function sortResources(items: AnyResource[]): AnyResource[] {
  return [...items].sort((a, b) => resourceKey(a).localeCompare(resourceKey(b)));
}

/**
 * `get` output. `single` is the object asked for by name (printed as itself in yaml/json); otherwise a
 * List of `items` at `revision` (calicoctl's `IPPoolList` form, which apply reads back).
 */
export function formatResources<K extends Kind>(
  kind: K,
  items: Array<Resource<K>>,
  output: OutputFormat,
  options: { single?: boolean; revision?: string } = {},
): string {
  const sorted = sortResources(items as AnyResource[]) as Array<Resource<K>>;
  if (output === 'yaml' || output === 'json') {
    const value =
      options.single === true && sorted.length === 1
        ? sorted[0]
        : {
            apiVersion: API_VERSION,
            kind: `${kind}List`,
            metadata: options.revision !== undefined ? { resourceVersion: options.revision } : {},
            items: sorted,
          };
    return output === 'json' ? `${JSON.stringify(value, null, 2)}\n` : toYaml(value);
  }
  const columns = (COLUMNS[kind] as ReadonlyArray<Column<K>>).filter((c) => output === 'wide' || c.wide !== true);
  return columnTable(
    columns.map((c) => c.header),
    sorted.map((r) => columns.map((c) => c.value(r))),
  );
}
