// The CLI parsers and the capture tools, on real output saved from the daemons (test/harness/fixtures/,
// from a BIRD 2 route reflector with FRR, BIRD 1.6, GoBGP and ExaBGP clients; GoBGP's route carries
// communities, MED 50 and ORIGIN EGP). Runs without root or daemons.

import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { addressBlock, ADDRESS_BLOCKS } from './addresses.js';
import { birdConfig, parseBirdProtocols, parseBirdRoutes } from './bird.js';
import { describeMessage, openHasFourOctetAs, type CaptureEntry } from './capture.js';
import { replayExabgp } from './exabgp.js';
import { frrConfig, parseFrrNeighbors, parseFrrPrefixDetail } from './frr.js';
import { gobgpConfig, parseGobgpNeighbors, parseGobgpRib } from './gobgp.js';
import { BgpStreamSplitter } from './relay.js';

const here = new URL('.', import.meta.url).pathname;
const fixture = (name: string) => readFileSync(join(here, 'fixtures', name), 'utf8');
const capturesDir = join(here, '..', 'fixtures', 'captures');

const REFLECTED_FROM_GOBGP = {
  prefix: '10.150.3.0/24',
  nextHop: '198.18.50.4',
  asPath: [],
  origin: 'egp',
  med: 50,
  localPref: 100,
  communities: ['65000:100', '65000:200'],
  originatorId: '10.60.0.4',
  clusterList: ['10.255.0.1'],
  best: true,
  fromPeer: '127.0.10.60',
};

describe('BIRD parsers', () => {
  it('parses BGP routes from BIRD 1.6 show route all, skipping static ones', () => {
    const routes = parseBirdRoutes(fixture('bird1-show-route-all.txt'));
    expect(routes.map((r) => r.prefix).sort()).toEqual(['10.150.1.0/24', '10.150.3.0/24']);
    expect(routes.find((r) => r.prefix === '10.150.3.0/24')).toEqual(REFLECTED_FROM_GOBGP);
  });

  it('parses BIRD 2 show route all and names the neighbor by protocol when "from" is absent', () => {
    const text = fixture('bird2-show-route-all.txt');
    const routes = parseBirdRoutes(text, (p) => (p === 't_n3' ? '127.0.10.63' : undefined));
    expect(routes.length).toBeGreaterThan(0);
    const fromGobgp = routes.find((r) => r.prefix === '10.150.3.0/24');
    expect(fromGobgp).toMatchObject({
      nextHop: '198.18.50.4',
      med: 50,
      communities: ['65000:100', '65000:200'],
      best: true,
      fromPeer: '127.0.10.63',
    });
  });

  it('parses show protocols all into one session per BGP protocol with its state', () => {
    const bird2 = parseBirdProtocols(fixture('bird2-show-protocols-all.txt'));
    expect(bird2.length).toBe(5);
    expect(bird2.filter((s) => s.state === 'Established').map((s) => s.neighbor)).toEqual([
      '127.0.10.61',
      '127.0.10.62',
      '127.0.10.63',
      '127.0.10.64',
    ]);
    expect(bird2.find((s) => s.neighbor === '127.0.10.69')?.state).toBe('Active');
    expect(parseBirdProtocols(fixture('bird1-show-protocols-all.txt'))).toEqual([
      { neighbor: '127.0.10.60', state: 'Established' },
    ]);
  });

  it('writes the dialect differences: listen address for 1.6, local port + strict bind for 2', () => {
    const options = {
      address: '127.0.10.1',
      as: 64512,
      neighbors: [{ address: '127.0.10.2', as: 65001, passive: true }],
    };
    const routes = new Map([['10.1.0.0/24', '198.18.0.1']]);
    const one = birdConfig('bird1', options, routes);
    const two = birdConfig('bird2', options, routes);
    expect(one).toContain('listen bgp address 127.0.10.1 port 179;');
    expect(one).not.toContain('strict bind');
    expect(two).toContain('local 127.0.10.1 port 179 as 64512;');
    expect(two).toContain('strict bind yes;');
    for (const text of [one, two]) {
      expect(text).toContain('if net = 10.1.0.0/24 then bgp_next_hop = 198.18.0.1;');
      expect(text).toContain('passive on;');
    }
  });
});

describe('FRR parsers', () => {
  it('parses the detailed prefix JSON, including FRR 8.4 locPrf and reflection attributes', () => {
    expect(parseFrrPrefixDetail(fixture('frr-show-bgp-prefix-10.150.3.0.json'))).toEqual([REFLECTED_FROM_GOBGP]);
    const fromBird1 = parseFrrPrefixDetail(fixture('frr-show-bgp-prefix-10.150.1.0.json'));
    // FRR's own network statement is not a learned route.
    expect(fromBird1).toEqual([]);
  });

  it("parses neighbors, ignoring FRR's startup note as an error", () => {
    expect(parseFrrNeighbors(fixture('frr-show-bgp-neighbors.json'))).toEqual([
      { neighbor: '127.0.10.60', state: 'Established' },
    ]);
  });

  it('config: eBGP on loopback needs disable-connected-check; RFC 8212 policy off; next hop per prefix', () => {
    const text = frrConfig(
      { address: '127.0.10.1', as: 64512, neighbors: [{ address: '127.0.10.2', as: 65001 }] },
      new Map([['10.1.0.0/24', { nextHop: '198.18.0.1', seq: 10 }]]),
    );
    for (const line of [
      'no bgp ebgp-requires-policy',
      'neighbor 127.0.10.2 disable-connected-check',
      ' set ip next-hop 198.18.0.1',
      '  network 10.1.0.0/24',
    ]) {
      expect(text).toContain(line);
    }
  });
});

describe('GoBGP parsers', () => {
  it('parses global rib JSON, keeping learned paths only', () => {
    const routes = parseGobgpRib(fixture('gobgp-global-rib.json'));
    expect(routes.map((r) => r.prefix).sort()).toEqual(['10.150.1.0/24', '10.150.2.0/24']);
    expect(routes.find((r) => r.prefix === '10.150.1.0/24')).toMatchObject({
      nextHop: '198.18.50.2',
      originatorId: '10.60.0.2',
      clusterList: ['10.255.0.1'],
      localPref: 100,
      med: 0,
      best: true,
      fromPeer: '127.0.10.60',
    });
  });

  it('parses neighbor JSON states', () => {
    expect(parseGobgpNeighbors(fixture('gobgp-neighbor.json'))).toEqual([
      { neighbor: '127.0.10.60', state: 'Established' },
    ]);
  });

  it('config: API and listen address are per instance', () => {
    const text = gobgpConfig({
      address: '127.0.10.1',
      as: 64512,
      neighbors: [{ address: '127.0.10.2', as: 64512, passive: true, rrClient: true }],
      clusterId: '10.255.0.1',
    });
    expect(text).toContain('local-address-list = ["127.0.10.1"]');
    expect(text).toContain('passive-mode = true');
    expect(text).toContain('route-reflector-cluster-id = "10.255.0.1"');
  });
});

describe('ExaBGP replay', () => {
  it('replays received UPDATEs into routes and state messages into sessions', () => {
    const { routes, sessions } = replayExabgp(fixture('exabgp-received.jsonl'), 64512);
    expect(routes.find((r) => r.prefix === '10.150.3.0/24')).toEqual(REFLECTED_FROM_GOBGP);
    expect(sessions).toEqual([{ neighbor: '127.0.10.60', state: 'Established' }]);
  });

  it('drops a route whose AS path holds our own AS, and forgets routes when the session goes down', () => {
    const update = (asPath: number[]) =>
      JSON.stringify({
        type: 'update',
        neighbor: {
          address: { peer: '127.0.0.9' },
          message: {
            update: {
              attribute: { 'as-path': asPath },
              announce: { 'ipv4 unicast': { '198.18.0.1': [{ nlri: '10.9.0.0/24' }] } },
            },
          },
        },
      });
    expect(replayExabgp(update([65001]), 64512).routes).toHaveLength(1);
    expect(replayExabgp(update([65001, 64512]), 64512).routes).toHaveLength(0);
    const down = JSON.stringify({
      type: 'state',
      neighbor: { address: { peer: '127.0.0.9' }, state: 'down', reason: 'peer reset' },
    });
    const after = replayExabgp(`${update([65001])}\n${down}\n`, 64512);
    expect(after.routes).toHaveLength(0);
    expect(after.sessions).toEqual([{ neighbor: '127.0.0.9', state: 'Idle', lastError: 'peer reset' }]);
  });
});

describe('addresses', () => {
  it('gives each registered file its own /24 and refuses unregistered ones', () => {
    const blocks = Object.keys(ADDRESS_BLOCKS).map(Number);
    expect(blocks.length).toBeGreaterThan(0);
    expect(new Set(Object.values(ADDRESS_BLOCKS)).size).toBe(blocks.length);
    expect(blocks.every((b) => b >= 10 && b <= 255)).toBe(true);
    expect(addressBlock('/work/main/test/integration/harness.test.ts').host(7)).toBe('127.0.10.7');
    expect(() => addressBlock('test/integration/nobody.test.ts')).toThrow(/not registered/);
    expect(() => addressBlock('test/integration/harness.test.ts').host(255)).toThrow(/1\.\.254/);
  });
});

describe('golden captures and the relay splitter', () => {
  const index = JSON.parse(readFileSync(join(capturesDir, 'index.json'), 'utf8')) as CaptureEntry[];
  const hexFiles = readdirSync(capturesDir).filter((f) => f.endsWith('.hex'));

  it('index.json lists every .hex file, and every peer kind has each message type', () => {
    expect(index.length).toBeGreaterThan(0);
    expect(index.map((e) => e.file).sort()).toEqual(hexFiles.sort());
    for (const peer of ['bird1', 'bird2', 'frr', 'gobgp']) {
      const types = new Set(index.filter((e) => e.peer === peer).map((e) => e.type));
      expect([...types].sort(), peer).toEqual(['keepalive', 'notification', 'open', 'update']);
      expect(index.filter((e) => e.peer === peer && e.type === 'update').length, peer).toBeGreaterThanOrEqual(2);
      expect(
        index.some((e) => e.peer === peer && e.type === 'notification' && e.description.includes('code 2 subcode 2')),
        peer,
      ).toBe(true);
    }
  });

  it('each capture is one whole message whose header matches its type; OPENs carry 4-octet AS', () => {
    const codes = { open: 1, update: 2, notification: 3, keepalive: 4, 'route-refresh': 5 } as const;
    for (const entry of index) {
      const bytes = Buffer.from(readFileSync(join(capturesDir, entry.file), 'utf8').trim(), 'hex');
      expect(
        bytes.subarray(0, 16).every((b) => b === 0xff),
        entry.file,
      ).toBe(true);
      expect(bytes.readUInt16BE(16), entry.file).toBe(bytes.length);
      expect(bytes[18], entry.file).toBe(codes[entry.type]);
      if (entry.type === 'open') expect(openHasFourOctetAs(bytes), entry.file).toBe(entry.fourOctetAs);
    }
  });

  it('splits a stream of all captures at every offset into the same messages', () => {
    const messages = index.map((e) => Buffer.from(readFileSync(join(capturesDir, e.file), 'utf8').trim(), 'hex'));
    expect(messages.length).toBeGreaterThan(0);
    const stream = Buffer.concat(messages.slice(0, 12));
    for (let cut = 0; cut <= stream.length; cut++) {
      const splitter = new BgpStreamSplitter();
      const out = [...splitter.push(stream.subarray(0, cut)), ...splitter.push(stream.subarray(cut))];
      expect(out.length).toBe(12);
      expect(Buffer.concat(out).equals(stream)).toBe(true);
    }
  });

  it('stops recording on a length outside 19..4096 (RFC 4271 §4.1)', () => {
    const bad = Buffer.alloc(19, 0xff);
    bad.writeUInt16BE(18, 16);
    expect(new BgpStreamSplitter().push(bad)).toEqual([]);
  });

  it('describes UPDATEs by content', () => {
    const eor = Buffer.from('ffffffffffffffffffffffffffffffff001702' + '00000000', 'hex');
    expect(describeMessage(eor)).toMatch(/End-of-RIB/);
    const withdraw = Buffer.from('ffffffffffffffffffffffffffffffff001b02' + '0004180a0100' + '0000', 'hex');
    expect(describeMessage(withdraw)).toBe('UPDATE withdraws 10.1.0.0/24');
  });
});
