// Which loopback addresses each test file may use, so test files can run in parallel without two
// daemons fighting over the same 127.x.y.z:179.
//
// Every test file that starts daemons owns one /24: 127.0.<block>.0/24. The table below is the only place
// blocks are handed out; a file asks for its block by its own path and gets an error if it is not listed.
// Everything binds to its own 127.x address and port 179 (tests run as root): never 0.0.0.0.
// Blocks 0..9 are left alone (127.0.0.1 is the ordinary loopback other tools use).

/** block number → the file that owns 127.0.<block>.0/24. Add a line here for every new test file. */
export const ADDRESS_BLOCKS: Readonly<Record<number, string>> = {
  10: 'test/integration/harness.test.ts',
  11: 'test/harness/capture.ts',
  20: 'test/integration/interop-bird1.test.ts',
  21: 'test/integration/interop-bird2.test.ts',
  22: 'test/integration/interop-frr.test.ts',
  23: 'test/integration/interop-gobgp.test.ts',
  24: 'test/integration/interop-exabgp.test.ts',
  25: 'test/integration/interop-rr.test.ts',
  26: 'test/integration/interop-restart.test.ts',
  27: 'test/integration/speaker-process.test.ts',
  28: 'test/integration/node-agent.test.ts',
  29: 'test/integration/cli.test.ts',
  30: 'test/integration/interop-topologies.test.ts',
  31: 'test/integration/interop-communities.test.ts',
  32: 'test/integration/interop-gtsm.test.ts', // no loopback use: 198.18.36.0/24 inside its own namespaces
  33: 'test/integration/felix-bgp-guard.test.ts', // no loopback use: 198.18.37.0/24 inside its own namespaces
  34: 'test/integration/node-agent-md5.test.ts',
  35: 'test/integration/interop-md5.test.ts',
  36: 'test/integration/agent-crash.test.ts',
  37: 'test/integration/import-guard.test.ts',
  38: 'test/integration/bgp-limits.test.ts',
  39: 'test/integration/speaker-containment.test.ts',
  53: 'test/integration/bgp-filter.test.ts',
  51: 'test/integration/interop-ipv6.test.ts',
  40: 'test/bench/routing-receive.ts',
  41: 'test/bench/routing-rr.ts',
  42: 'test/bench/routing-nodes.ts',
  43: 'test/integration/kubernetes-agent-rbac.test.ts',
  44: 'test/integration/calico-peering-live.test.ts', // no loopback use: 198.18.44.0/24 inside its own namespaces
  47: 'test/integration/service-advertisement.test.ts',
  49: 'test/integration/peer-ports.test.ts',
  // Its reflectors on 127.0.50.x; its 1,000 clients need more than a /24, so block 50 also owns
  // 127.50.0.0/16 (no other file may use 127.50.x.y).
  50: 'test/bench/routing-clients.ts',
  60: 'test/bench/agent-convergence.ts',
  61: 'test/bench/felix-routes.ts', // no loopback use: its underlay 198.18.61.0/24, inside its own namespaces
  66: 'test/integration/felix-nat.test.ts', // no loopback use: its underlay 198.18.66.0/24, inside its own namespaces
};

/** One test file's /24 of loopback addresses. */
export interface AddressBlock {
  readonly block: number;
  readonly owner: string;
  /** 127.0.<block>.<hostNumber>; hostNumber is 1..254. */
  host(hostNumber: number): string;
  /** "127.0.<block>.0/24", for messages. */
  readonly cidr: string;
}

function normalizeOwner(path: string): string {
  const slashed = path.replace(/\\/g, '/');
  const at = slashed.lastIndexOf('test/');
  return at >= 0 ? slashed.slice(at) : slashed;
}

/**
 * The block owned by `owner` (a path ending in the test file's repository path; `import.meta.url` or
 * `__filename` work, as do the dist/ .js equivalents).
 */
export function addressBlock(owner: string): AddressBlock {
  const wanted = normalizeOwner(owner)
    .replace(/^file:\/\//, '')
    .replace(/\.js$/, '.ts');
  for (const [blockText, file] of Object.entries(ADDRESS_BLOCKS)) {
    if (wanted === file || wanted.endsWith(`/${file}`)) return makeBlock(Number(blockText), file);
  }
  const listed = Object.values(ADDRESS_BLOCKS).join(', ');
  throw new Error(
    `address block owner "${owner}" is not registered in test/harness/addresses.ts ADDRESS_BLOCKS ` +
      `(registered: ${listed}); add a line with an unused block number for it`,
  );
}

function makeBlock(block: number, owner: string): AddressBlock {
  return {
    block,
    owner,
    cidr: `127.0.${block}.0/24`,
    host(hostNumber: number): string {
      if (!Number.isInteger(hostNumber) || hostNumber < 1 || hostNumber > 254) {
        throw new Error(`host number ${hostNumber} in 127.0.${block}.0/24 is not an integer 1..254`);
      }
      return `127.0.${block}.${hostNumber}`;
    },
  };
}
