// The shared Datastore contract suite (test/unit/datastore/contract.ts) against openEtcd on a real etcd.

import { afterAll, beforeAll, describe } from 'vitest';
import { openEtcd } from '../../src/datastore/etcd.js';
import { datastoreContract } from '../unit/datastore/contract.js';
import { requireEtcd, startEtcd, type EtcdInstance } from '../harness/etcd.js';

describe.skipIf(!requireEtcd())('etcd backend', () => {
  let etcd: EtcdInstance;
  beforeAll(async () => {
    etcd = await startEtcd();
  });
  afterAll(async () => {
    await etcd?.stop();
  });
  datastoreContract('etcd', async () => {
    const ds = await openEtcd({ endpoints: [etcd.endpoint], timeoutMs: 3000 });
    return { ds, cleanup: () => ds.close() };
  });
});
