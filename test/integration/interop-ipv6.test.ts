// IPv6 unicast (RFC 4760, RFC 2545) between tortie's Speaker and real peers, over an IPv4 session on
// 127.0.51.0/24: both sides add the Multiprotocol capability for AFI 2 / SAFI 1, IPv6 routes flow both
// ways with global next hops in the ULA fd00:51::/64, withdrawals (MP_UNREACH_NLRI) too, and the IPv4 routes
// of the same session are unaffected. Sessions over IPv6 transport are not covered yet (see bgp/README.md).
import { afterAll, describe, expect, it } from 'vitest';
import { parseIpv4, parsePrefix } from '../../bgp/ip.js';
import { parsePrefix6 } from '../../bgp/ip6.js';
import { Speaker } from '../../bgp/speaker.js';
import { Origin } from '../../bgp/types.js';
import { addressBlock } from '../harness/addresses.js';
import { requirePeers } from '../harness/binaries.js';
import { startPeer, stopAll, waitFor, waitForSession, type PeerDaemon } from '../harness/index.js';

const block = addressBlock(import.meta.url);
const TORTIE_AS = 64512;
const PEER_AS = 65001;
const running: Array<{ stop(): Promise<void> | void }> = [];
afterAll(async () => {
  for (const r of running.reverse()) await r.stop();
  await stopAll();
});

/** FRR's IPv6 unicast table: prefix → the global next hops of its paths. */
async function frrRoutes6(frr: PeerDaemon): Promise<Map<string, string[]>> {
  const table = JSON.parse(await frr.cli('show bgp ipv6 unicast json')) as {
    routes?: Record<string, Array<{ nexthops?: Array<{ ip?: string; scope?: string }> }>>;
  };
  const out = new Map<string, string[]>();
  for (const [prefix, paths] of Object.entries(table.routes ?? {}))
    out.set(
      prefix,
      paths.flatMap((p) => (p.nexthops ?? []).filter((n) => n.scope !== 'link-local').map((n) => n.ip ?? '?')),
    );
  return out;
}

describe('interop: IPv6 unicast over an IPv4 session', () => {
  it('FRR eBGP: IPv6 routes both ways with their global next hops, withdrawals, IPv4 alongside', async (ctx) => {
    if (!requirePeers('frr')) return ctx.skip();
    const tortieIp = block.host(1);
    const frrIp = block.host(2);
    const frr = await startPeer('frr', {
      address: frrIp,
      as: PEER_AS,
      neighbors: [{ address: tortieIp, as: TORTIE_AS }],
      announce: [{ prefix: '10.51.2.0/24', nextHop: '198.18.51.2' }],
    });
    running.push(frr);
    // IPv6 unicast for the neighbour, one network, and a global next hop in the ULA (FRR would otherwise send
    // an IPv4-mapped one: its update source is IPv4).
    await frr.cli(
      [
        'configure terminal',
        'route-map T6-OUT permit 10',
        'set ipv6 next-hop global fd00:51::2',
        'exit',
        `router bgp ${PEER_AS}`,
        'address-family ipv6 unicast',
        `neighbor ${tortieIp} activate`,
        `neighbor ${tortieIp} route-map T6-OUT out`,
        'network fd00:51:2::/64',
        'exit-address-family',
      ].join('\n'),
    );

    const speaker = new Speaker({
      routerId: parseIpv4(tortieIp),
      localAs: TORTIE_AS,
      listen: { address: tortieIp, port: 179 },
      address6: 'fd00:51::1',
      connectRetryMs: 1000,
    });
    running.push(speaker);
    await speaker.start();
    speaker.setOriginated([
      { prefix: parsePrefix('10.244.51.0/26'), attrs: { origin: Origin.IGP, nextHop: parseIpv4('198.18.51.1') } },
      { prefix: parsePrefix6('fd00:10:244:51::/122'), attrs: { origin: Origin.IGP } },
    ]);
    speaker.setPeers([{ address: frrIp, peerAs: PEER_AS, ipv6Unicast: true }]);
    await waitForSession(frr, tortieIp);

    // What FRR sent, as tortie's Loc-RIB has it (IPv6 and IPv4 apart).
    const learned6 = await waitFor(() => speaker.bestRoutes6().find((r) => r.text === 'fd00:51:2::/64'), {
      what: 'fd00:51:2::/64 from FRR in tortie',
      timeoutMs: 20_000,
    });
    expect(learned6.nextHop).toBe('fd00:51::2');
    expect(learned6.attrs.asPath).toEqual([{ type: 2, asns: [PEER_AS] }]);
    expect(learned6.from).toBe(frrIp);
    await waitFor(() => speaker.bestRoutes().find((r) => r.attrs.nextHop === parseIpv4('198.18.51.2')), {
      what: '10.51.2.0/24 from FRR (IPv4 on the same session)',
    });

    // What tortie sent, as FRR's own CLI shows it: our IPv6 next hop (eBGP, RFC 2545 §3).
    const atFrr = await waitFor(async () => (await frrRoutes6(frr)).get('fd00:10:244:51::/122'), {
      what: 'fd00:10:244:51::/122 at FRR',
      timeoutMs: 20_000,
    });
    expect(atFrr).toContain('fd00:51::1');

    // Withdrawals both ways (MP_UNREACH_NLRI).
    await frr.cli(
      ['configure terminal', `router bgp ${PEER_AS}`, 'address-family ipv6 unicast', 'no network fd00:51:2::/64'].join(
        '\n',
      ),
    );
    await waitFor(() => speaker.bestRoutes6().every((r) => r.text !== 'fd00:51:2::/64') || undefined, {
      what: 'the IPv6 withdrawal at tortie',
      timeoutMs: 20_000,
    });
    speaker.setOriginated([
      { prefix: parsePrefix('10.244.51.0/26'), attrs: { origin: Origin.IGP, nextHop: parseIpv4('198.18.51.1') } },
    ]);
    await waitFor(async () => !(await frrRoutes6(frr)).has('fd00:10:244:51::/122') || undefined, {
      what: 'the IPv6 withdrawal at FRR',
      timeoutMs: 20_000,
    });
    expect(speaker.bestRoutes().length).toBe(2); // the IPv4 routes stay
  });
});
