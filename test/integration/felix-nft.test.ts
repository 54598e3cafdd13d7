// felix/nft.ts against the real nft, inside network namespaces this file creates (the host's ruleset is
// never read or written): a script applied and listed back as JSON, a missing table is null, a script
// with one bad line changes nothing (nft's transaction) and the error names that line, and two
// namespaces keep separate rulesets; `nft -j monitor` reports changes made by another process, by table.

import { afterAll, describe, expect, it } from 'vitest';
import { Nft, NftError, type NftEvent } from '../../felix/nft.js';
import { createNetns, destroyAllNetns, netnsUnavailableReason } from '../harness/netns.js';
import { waitFor } from '../harness/wait.js';

const unavailable = netnsUnavailableReason();
if (unavailable && process.env.CI === 'true') throw new Error(`nft tests cannot run: ${unavailable}`);

const TABLE = [
  'table ip nfttest {',
  '  set pools {',
  '    type ipv4_addr',
  '    flags interval',
  '    elements = { 10.244.0.0/16, 10.96.0.0/26 }',
  '  }',
  '  chain post {',
  '    type nat hook postrouting priority srcnat; policy accept;',
  '    ip saddr @pools ip daddr != @pools masquerade comment "test"',
  '  }',
  '}',
  '',
].join('\n');

function kinds(list: unknown[]): string[] {
  return list.map((o) => Object.keys(o as object)[0] ?? '?');
}

describe.skipIf(unavailable !== null)('felix/nft in a network namespace', () => {
  afterAll(() => destroyAllNetns());

  it('applies a script, lists it back as JSON, and returns null for a missing table', async () => {
    const ns = await createNetns('nft');
    const nft = new Nft({ netns: ns.name });
    expect(await nft.listTable('ip', 'nfttest')).toBeNull();
    await nft.apply(TABLE);
    const list = await nft.listTable('ip', 'nfttest');
    expect(list).not.toBeNull();
    expect(kinds(list!)).toEqual(['metainfo', 'table', 'set', 'chain', 'rule']);
    const set = (list![2] as { set: { name: string; elem: unknown[] } }).set;
    expect(set.name).toBe('pools');
    expect(set.elem).toEqual([{ prefix: { addr: '10.96.0.0', len: 26 } }, { prefix: { addr: '10.244.0.0', len: 16 } }]); // nft lists intervals by address
    const rule = (list![4] as { rule: { comment: string; expr: unknown[] } }).rule;
    expect(rule.comment).toBe('test');
    expect(rule.expr).toContainEqual({ masquerade: null });
    expect(await nft.listTable('inet', 'nfttest')).toBeNull(); // another family is another table
  });

  it('a script with one bad line applies nothing, and the error names that line', async () => {
    const ns = await createNetns('nft');
    const nft = new Nft({ netns: ns.name });
    await nft.apply(TABLE);
    const before = await nft.listTable('ip', 'nfttest');
    const script = [
      'flush table ip nfttest',
      'add rule ip nfttest post ip saddr 10.1.0.0/16 masquerade',
      'add rule ip nfttest nochain accept',
      '',
    ].join('\n');
    const err = await nft.apply(script).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(NftError);
    const { lines, problems } = err as NftError;
    expect(problems.map((p) => p.line)).toContain(3);
    expect(lines.join('\n')).toMatch(/line 3: add rule ip nfttest nochain accept: .*No such file or directory/);
    // The flush and the first rule were part of the refused transaction: the table is as it was.
    const after = await nft.listTable('ip', 'nfttest');
    expect(after).toEqual(before);
  });

  it('keeps namespaces apart', async () => {
    const a = await createNetns('nft');
    const b = await createNetns('nft');
    await new Nft({ netns: a.name }).apply(TABLE);
    expect(await new Nft({ netns: a.name }).listTable('ip', 'nfttest')).not.toBeNull();
    expect(await new Nft({ netns: b.name }).listTable('ip', 'nfttest')).toBeNull();
  });

  it('monitor: a change by another process arrives as events naming the table; stop() ends it', async () => {
    const ns = await createNetns('nft');
    const nft = new Nft({ netns: ns.name });
    await nft.apply(TABLE);
    const events: NftEvent[] = [];
    const lost: string[] = [];
    const monitor = nft.monitor(
      (e) => events.push(e),
      (r) => lost.push(r),
    );
    try {
      // The monitor has subscribed once it sees a change: poke until the first event (bounded).
      let probes = 0;
      await waitFor(
        async () => {
          if (events.length > 0) return true;
          await nft.apply(`add table ip probe${probes++}\n`);
          return false;
        },
        { what: 'a first nft monitor event', timeoutMs: 5_000, intervalMs: 50 },
      );
      events.length = 0;
      await ns.exec('nft', ['flush', 'chain', 'ip', 'nfttest', 'post']);
      await waitFor(() => events.some((e) => e.kind === 'rule'), {
        what: 'a rule event after the flush',
        timeoutMs: 5_000,
        intervalMs: 20,
      });
      expect(events).toContainEqual(
        expect.objectContaining({ action: 'delete', kind: 'rule', family: 'ip', table: 'nfttest' }),
      );
    } finally {
      monitor.stop();
    }
    expect(lost).toEqual([]); // stop() is not "lost"
  });

  it('monitor: a monitor that cannot run reports it once through onLost', async () => {
    const nft = new Nft({ netns: `tortie-test-${process.pid}-no-such-ns` });
    const lost = await new Promise<string>((resolve) => nft.monitor(() => undefined, resolve));
    expect(lost).toMatch(/nft monitor in netns .* ended \(.*\)[\s\S]*exited with status [1-9]\d*/);
  });

  it('a namespace that does not exist is an error, not a missing table', async () => {
    const nft = new Nft({ netns: `tortie-test-${process.pid}-no-such-ns` });
    await expect(nft.listTable('ip', 'nfttest')).rejects.toThrow(NftError);
  });
});
