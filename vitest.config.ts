import { defineConfig } from 'vitest/config';

// Integration tests start real daemons (BIRD, FRR, GoBGP, etcd) on their own 127.0.0.x addresses, so files
// may run in parallel; each test file owns a distinct address range (see test/harness/addresses.ts).
export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 30_000,
    hookTimeout: 30_000,
    pool: 'forks',
    poolOptions: { forks: { maxForks: 2, minForks: 1 } },
    reporters: ['default'],
  },
});
