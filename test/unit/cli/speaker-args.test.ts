import { describe, expect, it } from 'vitest';
import { parseAnnounce, parsePeer, parseSpeakerArgs } from '../../../src/cli/speaker-args.js';
import { UsageError } from '../../../src/cli/usage-error.js';

const base = ['--router-id', '127.0.0.9', '--as', '64512'];

describe('tortie bgp speaker flags', () => {
  it('parses the example from the issue', () => {
    const options = parseSpeakerArgs([
      ...base,
      '--listen',
      '127.0.0.9:179',
      '--peer',
      '127.0.0.2,as=65001,port=1179,passive,hold=9',
      '--announce',
      '10.244.1.0/26,nexthop=198.18.0.9',
      '--json',
    ]);
    expect(options.routerId).toBe(0x7f000009);
    expect(options.asn).toBe(64512);
    expect(options.listen).toEqual({ address: '127.0.0.9', port: 179 });
    expect(options.peers).toEqual([{ address: '127.0.0.2', asn: 65001, port: 1179, passive: true, holdTime: 9 }]);
    expect(options.announce).toEqual([{ prefix: { addr: 0x0af40100, len: 26 }, nextHop: 0xc6120009 }]);
    expect(options.json).toBe(true);
  });

  it('listens on the router id, port 179, by default; --no-listen turns it off', () => {
    expect(parseSpeakerArgs(base).listen).toEqual({ address: '127.0.0.9', port: 179 });
    expect(parseSpeakerArgs([...base, '--no-listen']).listen).toBeNull();
  });

  it('accepts asdot and 4-octet AS numbers', () => {
    expect(parseSpeakerArgs(['--router-id', '1.1.1.1', '--as', '1.10']).asn).toBe(65546);
    expect(parsePeer('127.0.0.2,as=4200000000').asn).toBe(4200000000);
  });

  it('parses announce attributes', () => {
    expect(parseAnnounce('10.0.0.0/8,med=5,local-pref=200,community=65001:100+65001:200')).toEqual({
      prefix: { addr: 0x0a000000, len: 8 },
      med: 5,
      localPref: 200,
      communities: [65001 * 65536 + 100, 65001 * 65536 + 200],
    });
  });

  it('parses the routing-core options: cluster id, graceful restart, rr-client, next-hop, allow-own-as', () => {
    const options = parseSpeakerArgs([
      ...base,
      '--cluster-id',
      '244.0.0.1',
      '--graceful-restart',
      '--peer',
      '127.0.0.2,as=64512,rr-client,next-hop=self,allow-own-as=2',
    ]);
    expect(options.clusterId).toBe(0xf4000001);
    expect(options.gracefulRestart).toBe(120);
    expect(options.peers[0]).toMatchObject({ rrClient: true, nextHop: 'self', allowOwnAs: 2 });
    expect(parseSpeakerArgs([...base, '--graceful-restart=30']).gracefulRestart).toBe(30);
    expect(parseSpeakerArgs([...base, '--cluster-id', '7']).clusterId).toBe(7);
    expect(parseSpeakerArgs([...base, '--peer', '127.0.0.2,as=65001,subnet=127.0.30.33/27']).peers[0]).toMatchObject({
      asn: 65001,
      subnet: '127.0.30.33/27',
    });
  });

  it('parses the limits: max-prefixes per peer and by default, prefix restart delay, minimum hold time, send queue bound', () => {
    const options = parseSpeakerArgs([
      ...base,
      '--max-prefixes',
      '1000',
      '--prefix-restart',
      '10',
      '--min-hold',
      '9',
      '--send-queue-max',
      '1048576',
      '--peer',
      '127.0.0.2,as=65001,max-prefixes=3',
    ]);
    expect(options).toMatchObject({
      maxPrefixes: 1000,
      prefixRestartSeconds: 10,
      minHoldTime: 9,
      maxSendQueueBytes: 1048576,
    });
    expect(options.peers[0]).toMatchObject({ maxPrefixes: 3 });
    expect(parseSpeakerArgs(base).maxPrefixes).toBeUndefined();
  });

  const refusals: Array<[string[], RegExp]> = [
    [[...base, '--peer', '127.0.0.2,as=1,max-prefixes=0'], /max-prefixes: 0 is outside 1\.\.4294967295/],
    [[...base, '--min-hold', '2'], /--min-hold: 2 is outside 3\.\.65535/],
    [[...base, '--send-queue-max', '1000'], /--send-queue-max: 1000 is outside 65536/],
    [[...base, '--peer', '127.0.0.2,as=1,next-hop=there'], /next-hop: "there" is not one of auto, self, keep/],
    [[...base, '--peer', '127.0.0.2,as=1,rr-client=yes'], /"rr-client" takes no value/],
    [
      [...base, '--peer', '127.0.0.2,as=1,subnet=127.0.30.33'],
      /subnet: "127.0.30.33" is not an IPv4 address with prefix length/,
    ],
    [[...base, '--peer', '127.0.0.2,as=1,subnet=127.0.30.33/33'], /subnet: "127.0.30.33\/33"/],
    [[...base, '--cluster-id', '0.0.0.0'], /--cluster-id: "0.0.0.0"/],
    [[...base, '--graceful-restart=5000'], /--graceful-restart: 5000 is outside 1\.\.4095/],
    [['--as', '64512'], /--router-id is required/],
    [['--router-id', '127.0.0.9'], /--as is required/],
    [['--router-id', '0.0.0.0', '--as', '1'], /not a non-zero IPv4/],
    [['--router-id', '127.0.0.300', '--as', '1'], /"127.0.0.300"/],
    [[...base.slice(0, 2), '--as', '0'], /outside 1\.\.4294967295/],
    [[...base.slice(0, 2), '--as', 'sixty'], /"sixty" is not a number/],
    [[...base, '--hold', '2'], /hold time 2 is not allowed/],
    [[...base, '--peer', '127.0.0.2'], /AS is missing/],
    [[...base, '--peer', '127.0.0.2,as=1,color=red'], /unknown option "color"/],
    [[...base, '--peer', '127.0.0.2,as=1,as=2'], /given twice/],
    [[...base, '--peer', '127.0.0.2,as=1', '--peer', '127.0.0.2,as=2'], /same neighbour is given twice/],
    [[...base, '--peer', '127.0.0.2,as=1,port=0'], /outside 1\.\.65535/],
    [[...base, '--announce', '10.244.1.1/26'], /host bits set \(did you mean 10\.244\.1\.0\/26\?\)/],
    [[...base, '--announce', '10.244.1.0/33'], /prefix length "33"/],
    [[...base, '--announce', '10.0.0.0/8,community=70000:1'], /community "70000:1"/],
    [[...base, '--listen', '127.0.0.9', '--no-listen'], /cannot both/],
    [[...base, '--frobnicate'], /frobnicate/],
  ];
  for (const [argv, message] of refusals) {
    it(`refuses ${argv.slice(-2).join(' ')} with a message naming it`, () => {
      expect(() => parseSpeakerArgs(argv)).toThrow(UsageError);
      expect(() => parseSpeakerArgs(argv)).toThrow(message);
    });
  }
});

describe('--peer password-file and ttl-security', () => {
  it('takes a password file and a GTSM hop count; never a password on the command line', () => {
    expect(parsePeer('127.0.0.2,as=65001,password-file=/run/secrets/office,ttl-security=1')).toMatchObject({
      passwordFile: '/run/secrets/office',
      ttlSecurity: 1,
    });
    expect(() => parsePeer('127.0.0.2,as=65001,password=hunter2')).toThrow(
      /never taken on the command line.*password-file=PATH/,
    );
    expect(() => parsePeer('127.0.0.2,as=65001,password=hunter2')).not.toThrow(/hunter2/);
    expect(() => parsePeer('127.0.0.2,as=65001,ttl-security=0')).toThrow(UsageError);
    expect(() => parsePeer('127.0.0.2,as=65001,ttl-security=256')).toThrow(UsageError);
  });
});
