// The `tortie` command as a person runs it: exit codes and messages for bad flags and unusable addresses.

import { spawnSync } from 'node:child_process';
import { createServer, type Server } from 'node:net';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { addressBlock } from '../harness/addresses.js';

const HERE = fileURLToPath(import.meta.url);
const CLI = `${HERE.slice(0, HERE.lastIndexOf('/test/')).replace(/\/dist$/, '')}/dist/src/cli/main.js`;
const block = addressBlock(import.meta.url);

function tortie(...args: string[]) {
  const result = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', timeout: 15_000 });
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

describe('tortie CLI', () => {
  const servers: Server[] = [];
  afterAll(() => servers.forEach((s) => s.close()));

  it('prints usage and exits 2 with no command; --help exits 0', () => {
    expect(tortie().status).toBe(2);
    const help = tortie('--help');
    expect(help.status).toBe(0);
    expect(help.stdout).toContain('bgp speaker');
    const speakerHelp = tortie('bgp', 'speaker', '--help');
    expect(speakerHelp.status).toBe(0);
    expect(speakerHelp.stdout).toContain('--peer ADDR,as=ASN');
  });

  it('names the flag and the value of a bad flag, and exits 2', () => {
    const bad = tortie('bgp', 'speaker', '--router-id', '127.0.0.9', '--as', '64512', '--peer', '127.0.0.2,as=seventy');
    expect(bad.status).toBe(2);
    expect(bad.stderr).toMatch(/--peer 127\.0\.0\.2 as: AS "seventy" is not a number/);
    const unknown = tortie('frobnicate');
    expect(unknown.status).toBe(2);
    expect(unknown.stderr).toContain('unknown command "frobnicate"');
  });

  it('says why it cannot listen, and exits 1', async () => {
    const address = block.host(1);
    const server = createServer();
    servers.push(server);
    await new Promise<void>((resolve) => server.listen(1790, address, resolve));
    const busy = tortie('bgp', 'speaker', '--router-id', address, '--as', '64512', '--listen', `${address}:1790`);
    expect(busy.status).toBe(1);
    expect(busy.stderr).toContain(`cannot listen for BGP on ${address}:1790: EADDRINUSE`);
    // 198.18.0.0/15 is not on any interface of this machine: nothing is sent, the bind just fails.
    const absent = tortie('bgp', 'speaker', '--router-id', '198.18.255.254', '--as', '64512');
    expect(absent.status).toBe(1);
    expect(absent.stderr).toMatch(
      /cannot listen for BGP on 198\.18\.255\.254:179: EADDRNOTAVAIL \(no interface on this machine has that address\)/,
    );
  });

  it('prints its version', () => {
    const version = tortie('version');
    expect(version.status).toBe(0);
    expect(version.stdout).toMatch(/^tortie \d+\.\d+\.\d+/);
  });
});
