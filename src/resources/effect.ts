// Fields tortie accepts (so users' Calico YAML applies unchanged) but that change nothing yet: one table,
// so no field is a silent no-op. `tortie apply` prints a warning for each such field a resource sets, and
// the node agent lists them in `tortie node status`. test/unit/resources/effect.test.ts walks every field
// of the schema (./schema.ts) and fails for one that is neither here nor has a named test of its effect.
//
// A row leaves this table in the change that makes the field work, together with its effect test.

import type { AnyResource, Kind } from './types.js';

export interface NotInEffect {
  readonly kind: Kind;
  /** The field, as the schema walk names it: `spec.serviceClusterIPs`, `spec.bgp.ipv6Address`. */
  readonly path: string;
  /** Why, and what the user gets instead. */
  readonly reason: string;
}

export const NOT_IN_EFFECT: readonly NotInEffect[] = [
  {
    kind: 'BGPConfiguration',
    path: 'spec.programClusterRoutes',
    reason:
      'it chooses which routes to other nodes’ blocks Calico’s BIRD programs, the rest being left to felix (FelixConfiguration.programClusterRoutes, a kind tortie does not have); tortie has one route agent, felix, which programs all of them (proto 80) whatever its value — what a consistent pair of Calico settings gives',
  },
  {
    kind: 'BGPFilter',
    path: 'spec.importV6',
    reason: 'tortie’s BGP carries IPv4 unicast only: the IPv6 rules have no route to act on',
  },
  {
    kind: 'BGPFilter',
    path: 'spec.exportV6',
    reason: 'tortie’s BGP carries IPv4 unicast only: the IPv6 rules have no route to act on',
  },
  // Inside the rule lists (a list of objects is one field for the schema walk; these name one field of every item).
  ...(['importV4', 'exportV4'] as const).flatMap((list) => [
    {
      kind: 'BGPFilter' as const,
      path: `spec.${list}[].priority`,
      reason:
        'no route here carries a kernel priority (felix programs one metric): a rule matching on it matches nothing',
    },
    {
      kind: 'BGPFilter' as const,
      path: `spec.${list}[].operations[].setPriority`,
      reason: 'felix programs every BGP route with one metric: the priority set here is not used',
    },
  ]),
  {
    kind: 'Node',
    path: 'spec.orchRefs',
    reason: 'informational: tortie matches a Node to its Kubernetes node by name',
  },
  {
    kind: 'Node',
    path: 'spec.bgp.ipv6Address',
    reason: 'IPv6 BGP is not implemented yet: no IPv6 session is planned and no IPv6 block is advertised',
  },
  {
    kind: 'Node',
    path: 'spec.addresses',
    reason: 'informational: tortie takes the node address from spec.bgp.ipv4Address (IP autodetection fills it)',
  },
];

/** A field counts as set when present and not an empty list, map or string. */
function isSet(value: unknown): boolean {
  if (value === undefined || value === null || value === '') return false;
  if (Array.isArray(value)) return value.length > 0;
  if (typeof value === 'object') return Object.keys(value).length > 0;
  return true;
}

/** Every value at `path`; a part ending in `[]` steps into each item of that list. */
function valuesAt(resource: AnyResource, path: string): unknown[] {
  let values: unknown[] = [resource];
  for (const part of path.split('.')) {
    const list = part.endsWith('[]');
    const name = list ? part.slice(0, -2) : part;
    values = values.flatMap((value) => {
      if (typeof value !== 'object' || value === null) return [];
      const next = (value as Record<string, unknown>)[name];
      if (!list) return [next];
      return Array.isArray(next) ? next : [];
    });
  }
  return values;
}

/** The not-in-effect fields `resource` sets, each as `Kind/name: spec.x is stored but not in effect: why`. */
export function notInEffect(resource: AnyResource): string[] {
  return NOT_IN_EFFECT.filter((row) => row.kind === resource.kind && valuesAt(resource, row.path).some(isSet)).map(
    (row) =>
      `${resource.kind}/${resource.metadata.name}: ${row.path} is stored but not in effect in tortie: ${row.reason}`,
  );
}
