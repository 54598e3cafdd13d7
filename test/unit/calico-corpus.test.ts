// Calico's own golden corpus as a conformance test (#17). Calico keeps, in confd/tests/ of
// projectcalico/calico, YAML inputs and the BIRD configuration its confd renders for node kube-master.
// test/fixtures/calico-confd/ holds those inputs and the facts extract.ts read from the BIRD files
// (expected.json): the IPv4 BGP sessions, the blackholed blocks and what the export filter lets out.
//
// Each case goes through tortie's own path: parseDocuments → toResource → applyDefaults → validateResource
// (what `tortie apply` does), then the peering planner (planPeers, mapped as the agent maps a DesiredPeer to
// the Speaker's PeerSpec) and the advertiser (affineBlocks for felix's blackholes, originatedPrefixes for
// what goes to peers; serviceRoutes for the service routes, from the case's kubectl-input.yaml — Calico's
// BIRD has them as static blackhole routes, which it keeps out of the kernel). A case is `same`, `differs: <what>` or `refused: <fields tortie refuses>`.
//
// It is a ratchet: status.json (committed) must equal what this run finds, so a regression fails and so does
// an improvement until status.json is updated (UPDATE_CALICO_CORPUS=1 rewrites it). Differences that are
// design choices the README documents are listed in DELIBERATE_DIFFERENCES and do not count.

import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

import { formatPrefix, parsePrefix, prefixContains, parseIpv4 } from '../../bgp/ip.js';
import { needsBlackhole } from '../../felix/route-calc.js';
import { affineBlocks, originatedPrefixes } from '../../src/agent/advertise.js';
import { planPeers } from '../../src/agent/planner.js';
import { serviceRoutes, type EndpointSliceObject, type ServiceObject } from '../../src/agent/service-routes.js';
import type { DesiredPeer, PeeringPlan } from '../../src/agent/types.js';
import {
  applyDefaults,
  parseDocuments,
  ResourceError,
  toResource,
  validateResource,
  type AnyResource,
  type Resource,
} from '../../src/resources/index.js';
import type { Expected, ExpectedSession } from '../fixtures/calico-confd/extract.js';

const DIR = join(process.cwd(), 'test/fixtures/calico-confd');
const NODE = 'kube-master';

/**
 * Differences that are tortie's design, as README.md documents them; each a field and why. A difference in
 * such a field is reported, not counted.
 */
const DELIBERATE_DIFFERENCES: ReadonlyArray<{ field: keyof Session; reason: string }> = [
  {
    field: 'thirdPartyNextHop',
    reason:
      "README \"tortie bgp speaker\": eBGP peers on the node's own subnet get other nodes' next hops unchanged (RFC 4271 §5.1.3 (2)); Calico's sessions are all multihop (nextHopMode: Self gives Calico's behaviour)",
  },
];

/**
 * The block affinities confd's test driver (confd/tests/helpers_test.go, standardBlockAffinities) creates
 * for kube-master before every case. State "" is Calico's "implicitly confirmed"; tortie's BlockAffinity
 * says `confirmed`. tortie also needs the IPAMBlock document (affinity host:<node>), which confd does not
 * read: the harness writes one per affinity.
 */
const STANDARD_AFFINITIES: ReadonlyArray<{ cidr: string; state: 'confirmed' | 'pending' }> = [
  { cidr: '10.0.0.0/30', state: 'confirmed' },
  { cidr: '10.1.0.0/24', state: 'confirmed' },
  { cidr: '10.2.0.1/32', state: 'confirmed' },
  { cidr: '192.168.221.192/26', state: 'confirmed' },
  { cidr: '192.168.221.64/26', state: 'confirmed' },
  { cidr: '192.168.221.0/26', state: 'pending' },
];

/** One session, as compared: Calico's expected.json fields plus what only tortie can do differently. */
type Session = Omit<ExpectedSession, 'type'> & { type: string; thirdPartyNextHop: boolean };

const COMPARED: ReadonlyArray<keyof Session> = [
  'name',
  'type',
  'asNumber',
  'localAs',
  'passive',
  'rrClient',
  'clusterId',
  'nextHop',
  'restartTime',
  'passwordSet',
  'ttlSecurity',
  'sourceAddress',
  'allowLocalAs',
  'bgpFilters',
  'thirdPartyNextHop',
];

function ipamDocuments(): unknown[] {
  const docs: unknown[] = [];
  for (const a of STANDARD_AFFINITIES) {
    const name = a.cidr.replace(/[./]/g, '-');
    const size = 2 ** (32 - Number(a.cidr.split('/')[1]));
    docs.push({
      apiVersion: 'projectcalico.org/v3',
      kind: 'IPAMBlock',
      metadata: { name },
      spec: {
        cidr: a.cidr,
        affinity: `host:${NODE}`,
        strictAffinity: false,
        allocations: new Array(size).fill(null),
        unallocated: [...Array(size).keys()],
        attributes: [],
        deleted: false,
      },
    });
    docs.push({
      apiVersion: 'projectcalico.org/v3',
      kind: 'BlockAffinity',
      metadata: { name: `${NODE}-${name}` },
      spec: { state: a.state, node: NODE, cidr: a.cidr, deleted: false },
    });
  }
  return docs;
}

interface Loaded {
  resources: AnyResource[];
  /** `Kind.field` tortie refuses, each once. */
  refused: string[];
}

/** A case's documents: a step (…/step2) is a delta applied on top of its base case, as confd's driver does. */
function caseDocuments(name: string): Array<{ doc: unknown; source: string }> {
  const read = (c: string): Array<{ doc: unknown; source: string }> =>
    parseDocuments(readFileSync(join(DIR, c, 'input.yaml'), 'utf8'), `${c}/input.yaml`).map((doc) => ({
      doc,
      source: c,
    }));
  const step = /^(.+)\/step\d+$/.exec(name);
  if (step === null) return read(name);
  const out = read(step[1]!);
  for (const d of read(name)) {
    const key = (x: unknown): string => {
      const r = x as { kind?: unknown; metadata?: { name?: unknown } };
      return `${String(r.kind)}/${String(r.metadata?.name)}`;
    };
    const at = out.findIndex((o) => key(o.doc) === key(d.doc));
    if (at >= 0) out[at] = d;
    else out.push(d);
  }
  return out;
}

/** Deletes `path` (like `spec.bgp.ipv6Address`) from a parsed document; false when there is no such field. */
function deletePath(doc: unknown, path: string): boolean {
  const parts = path.split('.');
  let at: unknown = doc;
  for (const part of parts.slice(0, -1)) {
    if (typeof at !== 'object' || at === null) return false;
    at = (at as Record<string, unknown>)[part];
  }
  const last = parts[parts.length - 1]!;
  if (typeof at !== 'object' || at === null || !(last in at)) return false;
  delete (at as Record<string, unknown>)[last];
  return true;
}

/**
 * The case's resources as tortie reads them, and the fields it refuses. A refused document is left out;
 * with `strip`, each refused field is deleted from its document instead and the document read again (a
 * document still refused — an unknown kind, a required field missing — is left out): what tortie would
 * plan if the user removed what it refuses. The standard IPAM documents are added either way.
 */
function load(name: string, strip: boolean): Loaded {
  const resources: AnyResource[] = [];
  const refused = new Set<string>();
  const kindOf = (doc: unknown): string => String((doc as { kind?: unknown }).kind);
  caseDocuments(name).forEach(({ doc: original }, i) => {
    const doc = structuredClone(original);
    for (let attempt = 0; attempt < 10; attempt++) {
      let problems: Array<{ path: string }>;
      let resource: AnyResource | null = null;
      try {
        resource = applyDefaults(toResource(doc, i));
        problems = validateResource(resource);
      } catch (err) {
        if (!(err instanceof ResourceError)) throw err;
        problems = err.problems;
      }
      for (const p of problems) refused.add(`${resource?.kind ?? kindOf(doc)}.${p.path}`);
      if (problems.length === 0 && resource !== null) {
        resources.push(resource);
        return;
      }
      if (!strip || resource !== null || !problems.every((p) => deletePath(doc, p.path))) return;
    }
  });
  ipamDocuments().forEach((doc, i) => resources.push(applyDefaults(toResource(doc, i))));
  return { resources, refused: [...refused].sort() };
}

function ofKind<K extends AnyResource['kind']>(resources: AnyResource[], kind: K): Resource<K>[] {
  return resources.filter((r) => r.kind === kind) as Resource<K>[];
}

/** A field of DesiredPeer another change may add (passwords, GTSM): read by name, so the test follows it. */
function fieldLike(peer: DesiredPeer, pattern: RegExp): unknown {
  for (const [key, value] of Object.entries(peer))
    if (pattern.test(key) && value !== undefined && value !== null && value !== false && value !== '') return value;
  return undefined;
}

function insideSubnet(subnet: string, address: string): boolean {
  try {
    return prefixContains(parsePrefix(subnet), parseIpv4(address));
  } catch {
    return false;
  }
}

/** DesiredPeer → the compared fields, as src/agent/speaker-keeper.ts's toPeerSpec hands it to the Speaker. */
function tortieSession(peer: DesiredPeer, plan: PeeringPlan, nodeSubnet: string | undefined): Session {
  const ttl = fieldLike(peer, /^ttl/i);
  return {
    name: peer.name,
    type: peer.type,
    neighbor: peer.address,
    port: peer.port,
    asNumber: peer.asNumber,
    localAs: peer.localAsNumber,
    passive: peer.passive,
    rrClient: peer.rrClient,
    // The Speaker's cluster id applies to its clients; Calico writes `rr cluster id` on each client's protocol.
    clusterId: peer.rrClient ? (plan.clusterId ?? plan.routerId) : null,
    nextHop: peer.nextHopMode.toLowerCase() as Session['nextHop'],
    restartTime: peer.restartTime ?? null,
    passwordSet: fieldLike(peer, /password/i) !== undefined,
    ttlSecurity: typeof ttl === 'number' ? ttl : null,
    sourceAddress: peer.sourceAddress ?? null,
    allowLocalAs: peer.allowOwnAs,
    bgpFilters: false,
    thirdPartyNextHop:
      nodeSubnet !== undefined && peer.asNumber !== peer.localAsNumber && insideSubnet(nodeSubnet, peer.address),
  };
}

interface CaseResult {
  name: string;
  status: string;
  calicoSessions: number;
  /** Calico's sessions tortie has with every compared field equal (refused cases: none). */
  matchedSessions: number;
  /** The same, for refused cases compared without the fields tortie refuses. */
  matchedWithoutRefused: number;
  /** Sessions alone all the same / advertising alone the same (refused cases: without the refused fields). */
  sessionsSame: boolean;
  advertisingSame: boolean;
  deliberate: string[];
}

function show(v: unknown): string {
  return v === null ? 'none' : String(v);
}

function sortedPrefixes(list: string[]): string[] {
  return [...new Set(list.map((c) => formatPrefix(parsePrefix(c))))].sort((a, b) => {
    const x = parsePrefix(a);
    const y = parsePrefix(b);
    return x.addr - y.addr || x.len - y.len;
  });
}

function setDifference(label: string, calico: string[], tortie: string[]): string | null {
  const c = sortedPrefixes(calico);
  const t = sortedPrefixes(tortie);
  const missing = c.filter((p) => !t.includes(p));
  const extra = t.filter((p) => !c.includes(p));
  if (missing.length === 0 && extra.length === 0) return null;
  return `${label} ${[...missing.map((p) => `-${p}`), ...extra.map((p) => `+${p}`)].join(' ')}`;
}

interface Comparison {
  differences: string[];
  /** How many of the differences are about sessions (the rest: blackholes, exported, static routes). */
  sessionDifferences: number;
  matched: number;
  deliberate: string[];
}

/**
 * The Services and EndpointSlices a case applies with kubectl (a step: its base case's), without `status`:
 * the API server drops it on create (Calico's driver notes its LoadBalancer ingress IPs never arrive).
 */
function kubernetesObjects(name: string): { services: ServiceObject[]; endpointSlices: EndpointSliceObject[] } {
  const path = join(DIR, name.replace(/\/step\d+$/, ''), 'kubectl-input.yaml');
  const docs = existsSync(path)
    ? (parseDocuments(readFileSync(path, 'utf8'), path) as Array<{ kind?: string; status?: unknown }>)
    : [];
  const services = docs.filter((d) => d.kind === 'Service').map(({ status: _dropped, ...svc }) => svc as ServiceObject);
  return { services, endpointSlices: docs.filter((d) => d.kind === 'EndpointSlice') as EndpointSliceObject[] };
}

function compare(expected: Expected, resources: AnyResource[], kube: ReturnType<typeof kubernetesObjects>): Comparison {
  const differences: string[] = [];
  const deliberate: string[] = [];
  let matchedSessions = 0;

  // Sessions.
  const nodes = ofKind(resources, 'Node');
  let plan: PeeringPlan | null = null;
  try {
    plan = planPeers({
      nodeName: NODE,
      nodes,
      bgpConfigurations: ofKind(resources, 'BGPConfiguration'),
      bgpPeers: ofKind(resources, 'BGPPeer'),
    });
  } catch (err) {
    differences.push(`planner: ${(err as Error).message.split(' (')[0]}`);
  }
  if (plan !== null) {
    const subnet = nodes.find((n) => n.metadata.name === NODE)?.spec.bgp?.ipv4Address;
    const ours = new Map(
      plan.peers.map((p) => [
        `${p.address}:${p.port}`,
        tortieSession(p, plan!, subnet?.includes('/') ? subnet : undefined),
      ]),
    );
    const theirs = new Map(
      expected.sessions.map((s) => [`${s.neighbor}:${s.port}`, { ...s, thirdPartyNextHop: false } as Session]),
    );
    for (const [key, calico] of theirs) {
      const tortie = ours.get(key);
      if (tortie === undefined) {
        differences.push(`${calico.name} missing`);
        continue;
      }
      const fields: string[] = [];
      for (const field of COMPARED) {
        if (calico[field] === tortie[field]) continue;
        const what = `${field} ${show(calico[field])}/${show(tortie[field])}`;
        if (DELIBERATE_DIFFERENCES.some((d) => d.field === field)) deliberate.push(`${calico.name} ${what}`);
        else fields.push(what);
      }
      if (fields.length === 0) matchedSessions++;
      else differences.push(`${calico.name} ${fields.join(', ')}`);
    }
    for (const [key, tortie] of ours) if (!theirs.has(key)) differences.push(`${tortie.name} extra`);
  }

  const sessionDifferences = differences.length;

  // Advertising: felix's blackholes and the originated prefixes, from the standard affinities and the pools.
  const advertise = {
    nodeName: NODE,
    pools: ofKind(resources, 'IPPool'),
    blocks: ofKind(resources, 'IPAMBlock'),
    affinities: ofKind(resources, 'BlockAffinity'),
    workloads: ofKind(resources, 'WorkloadEndpoint'),
  };
  const node = ofKind(resources, 'Node').find((n) => n.metadata.name === NODE);
  const services = serviceRoutes({
    nodeName: NODE,
    nodeLabels: node?.metadata.labels ?? {},
    bgpConfigurations: ofKind(resources, 'BGPConfiguration'),
    ...kube,
  }).prefixes;
  const blackholes = setDifference('blackholes', expected.blackholes, [
    ...affineBlocks(advertise).filter(needsBlackhole).map(formatPrefix),
    ...services,
  ]);
  if (blackholes !== null) differences.push(blackholes);
  // Deliberate (README "Differences from Calico"): a block outside every IPPool is not advertised. Calico's
  // calico_aggr() accepts every affine block, in a pool or not (a pool deleted while its blocks remain).
  const pools = advertise.pools.flatMap((p) => (p.spec.cidr.includes('.') ? [parsePrefix(p.spec.cidr)] : []));
  const inSomePool = (cidr: string): boolean =>
    pools.some((pool) => {
      const b = parsePrefix(cidr);
      return b.len >= pool.len && prefixContains(pool, b.addr);
    });
  const advertised = (cidr: string): boolean => inSomePool(cidr) || services.includes(cidr);
  const outside = expected.exported.filter((cidr) => !advertised(cidr));
  for (const cidr of outside) deliberate.push(`exported ${cidr} (outside every pool)`);
  const exported = setDifference('exported', expected.exported.filter(advertised), [
    ...originatedPrefixes(advertise),
    ...services,
  ]);
  if (exported !== null) differences.push(exported);
  // Calico's static `<peer>/32 via <reachableBy>` routes: felix's peer routes, from the planned peers.
  const peerRoutes =
    plan === null ? [] : plan.peers.flatMap((p) => (p.reachableBy !== undefined ? [`${p.address}/32`] : []));
  const statics = setDifference('static routes', expected.staticRoutes, peerRoutes);
  if (statics !== null) differences.push(statics);

  return { differences, sessionDifferences, matched: matchedSessions, deliberate };
}

function parts(c: Comparison): Pick<CaseResult, 'sessionsSame' | 'advertisingSame'> {
  return { sessionsSame: c.sessionDifferences === 0, advertisingSame: c.differences.length === c.sessionDifferences };
}

function runCase(name: string): CaseResult {
  const expected = JSON.parse(readFileSync(join(DIR, name, 'expected.json'), 'utf8')) as Expected;
  const calicoSessions = expected.sessions.length;
  const summary = (c: Comparison): string =>
    c.differences.length === 0 ? 'same' : `differs: ${c.differences.join('; ')}`;
  const loaded = load(name, false);
  if (loaded.refused.length === 0) {
    const c = compare(expected, loaded.resources, kubernetesObjects(name));
    return {
      name,
      status: summary(c),
      calicoSessions,
      matchedSessions: c.matched,
      matchedWithoutRefused: c.matched,
      deliberate: c.deliberate,
      ...parts(c),
    };
  }
  const c = compare(expected, load(name, true).resources, kubernetesObjects(name));
  return {
    name,
    status: `refused: ${loaded.refused.join(', ')} (without them: ${summary(c)})`,
    calicoSessions,
    matchedSessions: 0,
    matchedWithoutRefused: c.matched,
    deliberate: c.deliberate,
    ...parts(c),
  };
}

describe("Calico's confd golden corpus (test/fixtures/calico-confd)", () => {
  const source = JSON.parse(readFileSync(join(DIR, 'source.json'), 'utf8')) as { commit: string; cases: string[] };
  const results = source.cases.map(runCase);

  it('has its cases, each with an input and the facts read from Calico', () => {
    expect(source.cases.length).toBeGreaterThanOrEqual(30);
    for (const c of source.cases) {
      expect(existsSync(join(DIR, c, 'input.yaml')), c).toBe(true);
      expect(existsSync(join(DIR, c, 'expected.json')), c).toBe(true);
    }
    // Not an empty comparison: Calico's cases hold many IPv4 sessions.
    expect(results.reduce((n, r) => n + r.calicoSessions, 0)).toBeGreaterThanOrEqual(50);
  });

  it('finds what status.json says, case by case (a ratchet: update status.json on an improvement)', () => {
    const found = Object.fromEntries(results.map((r) => [r.name, r.status]));
    const statusPath = join(DIR, 'status.json');
    if (process.env.UPDATE_CALICO_CORPUS === '1') writeFileSync(statusPath, `${JSON.stringify(found, null, 2)}\n`);
    const committed = JSON.parse(readFileSync(statusPath, 'utf8')) as Record<string, string>;
    const changes: string[] = [];
    for (const name of new Set([...Object.keys(committed), ...Object.keys(found)])) {
      if (committed[name] !== found[name])
        changes.push(
          `${name}\n    status.json: ${committed[name] ?? '(absent)'}\n    this run:    ${found[name] ?? '(absent)'}`,
        );
    }
    const same = results.filter((r) => r.status === 'same').length;
    const refused = results.filter((r) => r.status.startsWith('refused')).length;
    const total = results.reduce((n, r) => n + r.calicoSessions, 0);
    const matched = results.reduce((n, r) => n + r.matchedSessions, 0);
    const matchedWithout = results.reduce((n, r) => n + r.matchedWithoutRefused, 0);
    const deliberate = results.flatMap((r) => r.deliberate.map((d) => `${r.name}: ${d}`));
    console.info(
      [
        `Calico confd corpus (${source.commit.slice(0, 12)}): ${results.length} cases — ${same} same, ${results.length - same - refused} differ, ${refused} refused;`,
        `IPv4 sessions matched ${matched}/${total} (${matchedWithout}/${total} with refused fields removed); deliberate differences (README): ${deliberate.length}`,
        `sessions alone the same in ${results.filter((r) => r.sessionsSame).length}/${results.length} cases, advertising alone in ${results.filter((r) => r.advertisingSame).length}/${results.length} (refused cases counted without the refused fields)`,
        ...deliberate.map((d) => `  deliberate: ${d}`),
      ].join('\n'),
    );
    expect(
      changes,
      `the corpus result changed from status.json. A regression is a bug; an improvement needs ` +
        `test/fixtures/calico-confd/status.json updated (UPDATE_CALICO_CORPUS=1 npx vitest run test/unit/calico-corpus.test.ts):\n  ${changes.join('\n  ')}`,
    ).toEqual([]);
  });

  it('lists only deliberate differences the README documents', () => {
    const readme = readFileSync(join(process.cwd(), 'README.md'), 'utf8');
    expect(readme).toContain('set `nextHopMode: Self` on the');
    for (const d of DELIBERATE_DIFFERENCES) expect(COMPARED).toContain(d.field);
  });
});
