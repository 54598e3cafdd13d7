// How `tortie bgp speaker` shows what happens: one JSON object per line (--json), or one readable line.
// The JSON shapes are a contract (tests and scripts parse them):
//   {"event":"state","peer":"127.0.0.2","from":"OpenConfirm","to":"Established"}
//   {"event":"update","peer":"127.0.0.2","announce":[{"prefix":"10.2.0.0/26","nextHop":"198.18.0.2",
//     "asPath":[65001],"origin":"igp"}],"withdraw":["10.2.1.0/26"]}
//   {"event":"notification","peer":"127.0.0.2","direction":"sent","code":2,"subcode":2,"reason":"Bad Peer AS"}
//   {"event":"end-of-rib","peer":"127.0.0.2"}   {"event":"listening","address":"127.0.0.9","port":179}

import {
  formatLargeCommunities,
  formatIpv4,
  formatPrefix,
  AsPathSegmentType,
  type PathAttributes,
  type Prefix,
} from '../../bgp/index.js';

const ORIGIN_NAMES = ['igp', 'egp', 'incomplete'] as const;

export interface RouteJson {
  prefix: string;
  nextHop?: string;
  /** AS_SEQUENCE members flattened in order; an AS_SET appears as a nested array. */
  asPath: Array<number | number[]>;
  origin?: (typeof ORIGIN_NAMES)[number];
  med?: number;
  localPref?: number;
  communities?: string[];
  /** RFC 8092: `global:local1:local2`. */
  largeCommunities?: string[];
  atomicAggregate?: true;
  aggregator?: { asn: number; address: string };
  originatorId?: string;
  clusterList?: string[];
}

export function routeToJson(prefix: Prefix, attrs: PathAttributes): RouteJson {
  const asPath: Array<number | number[]> = [];
  for (const segment of attrs.asPath ?? []) {
    if (segment.type === AsPathSegmentType.AS_SEQUENCE || segment.type === AsPathSegmentType.AS_CONFED_SEQUENCE)
      asPath.push(...segment.asns);
    else asPath.push([...segment.asns]);
  }
  const json: RouteJson = { prefix: formatPrefix(prefix), asPath };
  if (attrs.nextHop !== undefined) json.nextHop = formatIpv4(attrs.nextHop);
  if (attrs.origin !== undefined) json.origin = ORIGIN_NAMES[attrs.origin];
  if (attrs.med !== undefined) json.med = attrs.med;
  if (attrs.localPref !== undefined) json.localPref = attrs.localPref;
  if (attrs.communities?.length)
    json.communities = attrs.communities.map((c) => `${Math.floor(c / 65536)}:${c % 65536}`);
  if (attrs.largeCommunities?.length) json.largeCommunities = formatLargeCommunities(attrs.largeCommunities);
  if (attrs.atomicAggregate) json.atomicAggregate = true;
  if (attrs.aggregator) json.aggregator = { asn: attrs.aggregator.asn, address: formatIpv4(attrs.aggregator.address) };
  if (attrs.originatorId !== undefined) json.originatorId = formatIpv4(attrs.originatorId);
  if (attrs.clusterList?.length) json.clusterList = attrs.clusterList.map(formatIpv4);
  return json;
}

export type SpeakerEventJson =
  | { event: 'listening'; address: string; port: number }
  | { event: 'state'; peer: string; from: string; to: string; reason?: string }
  | { event: 'update'; peer: string; announce: RouteJson[]; withdraw: string[] }
  | {
      event: 'notification';
      peer: string;
      direction: 'sent' | 'received';
      code: number;
      subcode: number;
      reason: string;
      detail?: string;
      data?: string;
    }
  | { event: 'end-of-rib'; peer: string }
  | { event: 'rib'; routes: Array<RouteJson & { from: string; stale?: true }> }
  | { event: 'error'; peer?: string; message: string };

/** One readable line per event, for people watching a terminal. */
export function formatEventLine(event: SpeakerEventJson, now: Date = new Date()): string {
  const time = now.toISOString().slice(11, 23);
  switch (event.event) {
    case 'listening':
      return `${time} listening on ${event.address}:${event.port}`;
    case 'state':
      return `${time} ${event.peer} ${event.from} → ${event.to}${event.reason ? ` (${event.reason})` : ''}`;
    case 'update': {
      const parts: string[] = [];
      for (const route of event.announce) {
        const path = route.asPath.map((a) => (Array.isArray(a) ? `{${a.join(',')}}` : String(a))).join(' ');
        parts.push(`+ ${route.prefix} via ${route.nextHop ?? '-'} path [${path}] ${route.origin ?? ''}`.trimEnd());
      }
      for (const prefix of event.withdraw) parts.push(`- ${prefix}`);
      return `${time} ${event.peer} update ${parts.join('; ')}`;
    }
    case 'notification':
      return `${time} ${event.peer} NOTIFICATION ${event.direction} ${event.code}/${event.subcode} ${event.reason}${event.detail ? `: ${event.detail}` : ''}`;
    case 'end-of-rib':
      return `${time} ${event.peer} End-of-RIB`;
    case 'rib':
      return [
        `${time} Loc-RIB: ${event.routes.length} routes`,
        ...event.routes.map(
          (r) =>
            `  ${r.prefix} via ${r.nextHop ?? '-'} path [${r.asPath.join(' ')}] from ${r.from}${r.stale ? ' (stale)' : ''}`,
        ),
      ].join('\n');
    case 'error':
      return `${time} ${event.peer ?? ''} error: ${event.message}`.replace('  ', ' ');
  }
}
