// The layers, as a test (DESIGN.md "Dependency direction", STYLE.md lesson 1): every relative import of
// every source file is read (static `from '...'` and dynamic `import('...')`) and checked against the rules:
//   bgp/    imports nothing outside bgp/ (the BGP library knows no Kubernetes, datastore or kernel);
//   ipip/   nothing from felix/ or src/; of bgp/ only its basics: ip.ts, types.ts (IPv4 helpers, the Prefix
//           type), clock.ts and log.ts (the project's one Clock and one Logger interface);
//   felix/  nothing from src/; of bgp/ only its basics; ipip/ freely;
//   src/    its folders form no cycle (src/ipam ↔ src/datastore was one, through ipam/names.ts);
//           it uses bgp/, felix/ and ipip/ only through their front doors, bgp/index.ts, felix/index.ts and
//           ipip/index.ts (STYLE.md lesson 11) — except the CNI plugin (CNI_BY_PATH below).

import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';

const ROOT = join(import.meta.dirname, '..', '..');
const LAYERS = ['bgp', 'felix', 'ipip', 'src'];
/** What of bgp/ felix/ and ipip/ may use: IPv4 helpers, the Prefix type, the one Clock and the one Logger. */
const BGP_BASICS = ['bgp/ip.ts', 'bgp/types.ts', 'bgp/clock.ts', 'bgp/log.ts'];
/** The library front doors src/ imports from. */
const FRONT_DOORS = ['bgp/index.ts', 'felix/index.ts', 'ipip/index.ts'];
/**
 * The named exception: the CNI plugin (src/cni/) runs as one process per pod ADD/DEL, so its start-up time
 * is every pod's. felix/index.ts loads the whole dataplane (measured: 125–175 ms to load the plugin through
 * it, 50 ms through these modules), so the plugin imports by path the few pure modules it needs, and only these.
 */
const CNI_BY_PATH = [
  'bgp/ip.ts',
  'bgp/log.ts',
  'felix/command.ts',
  'felix/iproute2.ts',
  'felix/programs.ts',
  'felix/interface-names.ts',
];

function* sourceFiles(dir: string): Generator<string> {
  for (const entry of readdirSync(dir)) {
    const path = join(dir, entry);
    if (statSync(path).isDirectory()) yield* sourceFiles(path);
    else if (entry.endsWith('.ts') && !entry.endsWith('.d.ts')) yield path;
  }
}

interface Edge {
  /** Repository paths, `.ts`. */
  from: string;
  to: string;
}

/** Every relative import of the project's source, resolved to a repository path. */
function importEdges(): Edge[] {
  const edges: Edge[] = [];
  const specifier = /(?:\bfrom\s*|\bimport\s*\(\s*)'(\.{1,2}\/[^']+)'/g;
  for (const layer of LAYERS) {
    for (const file of sourceFiles(join(ROOT, layer))) {
      const text = readFileSync(file, 'utf8');
      for (const match of text.matchAll(specifier)) {
        const target = resolve(dirname(file), match[1]!).replace(/\.js$/, '.ts');
        edges.push({ from: relative(ROOT, file), to: relative(ROOT, target) });
      }
    }
  }
  return edges;
}

/** What a rule allows `from` (a repository path) to import; null when allowed. */
function violation(edge: Edge): string | null {
  const [fromTop] = edge.from.split('/');
  const [toTop] = edge.to.split('/');
  const bgpBasics = BGP_BASICS.includes(edge.to);
  if (fromTop === 'bgp' && toTop !== 'bgp') return 'bgp/ imports nothing outside bgp/';
  if (fromTop === 'ipip' && (toTop === 'felix' || toTop === 'src' || (toTop === 'bgp' && !bgpBasics)))
    return `ipip/ imports only ipip/ and ${BGP_BASICS.join(', ')}`;
  if (fromTop === 'felix' && (toTop === 'src' || (toTop === 'bgp' && !bgpBasics)))
    return `felix/ imports no src/, and of bgp/ only ${BGP_BASICS.join(', ')}`;
  if (
    fromTop === 'src' &&
    (toTop === 'bgp' || toTop === 'felix' || toTop === 'ipip') &&
    !FRONT_DOORS.includes(edge.to)
  ) {
    if (edge.from.startsWith('src/cni/') && CNI_BY_PATH.includes(edge.to)) return null;
    return `src/ imports ${toTop}/ only through ${toTop}/index.ts`;
  }
  if (toTop !== undefined && !LAYERS.includes(toTop) && toTop !== 'package.json')
    return `${toTop}/ is not a source folder`;
  return null;
}

/** src/ folder → the src/ folders it imports (files directly in src/ count as folder "src"). */
function srcFolderGraph(edges: Edge[]): Map<string, Set<string>> {
  const folder = (path: string): string => {
    const parts = path.split('/');
    return parts.length > 2 ? `src/${parts[1]}` : 'src';
  };
  const graph = new Map<string, Set<string>>();
  for (const e of edges) {
    if (!e.from.startsWith('src/') || !e.to.startsWith('src/')) continue;
    const a = folder(e.from);
    const b = folder(e.to);
    if (a === b) continue;
    if (!graph.has(a)) graph.set(a, new Set());
    graph.get(a)!.add(b);
  }
  return graph;
}

/** Every cycle of folders, each once, as `a → b → a` (bounded: at most one per start folder). */
function cycles(graph: Map<string, Set<string>>): string[] {
  const found = new Set<string>();
  for (const start of graph.keys()) {
    const stack: Array<{ node: string; path: string[] }> = [{ node: start, path: [start] }];
    const seen = new Set<string>();
    for (let steps = 0; stack.length > 0 && steps < 100_000; steps++) {
      const { node, path } = stack.pop()!;
      for (const next of graph.get(node) ?? []) {
        if (next === start) {
          const ring = [...path];
          const smallest = ring.indexOf([...ring].sort()[0]!);
          found.add([...ring.slice(smallest), ...ring.slice(0, smallest), ring[smallest]].join(' → '));
        } else if (!seen.has(next)) {
          seen.add(next);
          stack.push({ node: next, path: [...path, next] });
        }
      }
    }
  }
  return [...found].sort();
}

describe('dependency rules between the layers', () => {
  const edges = importEdges();

  it('reads the imports (a scan that finds nothing checks nothing)', () => {
    expect(edges.length).toBeGreaterThan(300);
    expect(edges.some((e) => e.from.startsWith('felix/') && e.to.startsWith('ipip/'))).toBe(true);
    expect(edges.some((e) => e.from.startsWith('src/') && e.to.startsWith('bgp/'))).toBe(true);
    expect(edges.some((e) => e.from.startsWith('src/') && e.to === 'felix/index.ts')).toBe(true);
  });

  it('bgp/, ipip/ and felix/ import only what their layer may; src/ uses them through their index.ts', () => {
    const broken = edges.flatMap((e) => {
      const why = violation(e);
      return why === null ? [] : [`${e.from} → ${e.to}: ${why}`];
    });
    expect(broken).toEqual([]);
  });

  it('src/ folders form no cycle', () => {
    expect(cycles(srcFolderGraph(edges))).toEqual([]);
  });

  it('the checks catch what they are for', () => {
    expect(violation({ from: 'bgp/speaker.ts', to: 'src/agent/agent.ts' })).not.toBeNull();
    expect(violation({ from: 'felix/dataplane.ts', to: 'bgp/speaker.ts' })).not.toBeNull();
    expect(violation({ from: 'ipip/tunl0.ts', to: 'felix/command.ts' })).not.toBeNull();
    expect(violation({ from: 'felix/routes.ts', to: 'bgp/types.ts' })).toBeNull();
    expect(violation({ from: 'src/agent/status.ts', to: 'bgp/speaker.ts' })).not.toBeNull();
    expect(violation({ from: 'src/agent/status.ts', to: 'bgp/index.ts' })).toBeNull();
    expect(violation({ from: 'src/lab/ping.ts', to: 'felix/command.ts' })).not.toBeNull();
    expect(violation({ from: 'src/cni/dataplane.ts', to: 'felix/command.ts' })).toBeNull();
    expect(violation({ from: 'src/cni/dataplane.ts', to: 'felix/dataplane.ts' })).not.toBeNull();
    const graph = new Map([
      ['src/ipam', new Set(['src/datastore'])],
      ['src/datastore', new Set(['src/ipam'])],
    ]);
    expect(cycles(graph)).toEqual(['src/datastore → src/ipam → src/datastore']);
  });
});
