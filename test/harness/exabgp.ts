// ExaBGP 4.2 as a minimal test peer: routes announced from its config and at runtime through its API,
// and what it received read back from the JSON its API hands to a helper process.
//
// One helper process (Python, which ExaBGP itself needs anyway) does both API directions: it appends every
// JSON message ExaBGP writes to its stdin to received.jsonl, and copies new lines of commands.txt to its
// stdout (ExaBGP reads them as API commands: "announce route ..."). It exits when its stdin closes, so
// it never outlives ExaBGP, even after a SIGKILL. It writes ready.marker when it starts: that is the
// readiness probe (ExaBGP starts its API processes after it has parsed the config).
// routes() replays the received UPDATEs (dropping AS-path loops); sessions() reads the last "state" message per neighbor.
// Env: no privilege drop, no CLI pipes in /run, foreground, bind only to our own address.

import { existsSync, readFileSync, appendFileSync, writeFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { PEER_BINARIES } from './binaries.js';
import { DaemonHandle, daemonDir } from './daemon.js';
import type { PeerDaemon, PeerOptions, PeerRoute, PeerSessionInfo, SessionState } from './peer.js';

const HELPER = `import os, select, sys
here = os.path.dirname(os.path.abspath(__file__))
commands = os.path.join(here, 'commands.txt')
received = open(os.path.join(here, 'received.jsonl'), 'ab', buffering=0)
open(os.path.join(here, 'ready.marker'), 'w').close()
stdin = sys.stdin.fileno()
sent = 0
for _ in range(10 ** 9):
    # Raw reads: a buffered readline would hide lines already read from the pipe from select().
    ready, _w, _x = select.select([stdin], [], [], 0.05)
    if ready:
        data = os.read(stdin, 65536)
        if not data:
            break
        received.write(data)
    try:
        with open(commands) as f:
            lines = f.read().split('\\n')[:-1]
    except FileNotFoundError:
        lines = []
    for cmd in lines[sent:]:
        sys.stdout.write(cmd + '\\n')
        sys.stdout.flush()
    sent = max(sent, len(lines))
`;

/** exabgp.conf. Pure. */
export function exabgpConfig(options: PeerOptions, dir: string, announced: ReadonlyMap<string, string>): string {
  const lines = ['process t-api {', `  run /usr/bin/python3 ${join(dir, 'api.py')};`, '  encoder json;', '}'];
  for (const n of options.neighbors) {
    lines.push(
      `neighbor ${n.address} {`,
      `  router-id ${options.routerId ?? options.address};`,
      `  local-address ${options.address};`,
      `  local-as ${options.as};`,
      `  peer-as ${n.as};`,
      ...(n.holdTime !== undefined ? [`  hold-time ${n.holdTime};`] : []),
      ...(n.passive ? ['  passive true;'] : []),
      ...(n.port !== undefined ? [`  peer-port ${n.port};`] : []),
      '  family { ipv4 unicast; }',
      '  api t-api-in {',
      '    processes [ t-api ];',
      '    neighbor-changes;',
      '    receive { parsed; update; notification; }',
      '  }',
      '  static {',
      ...[...announced].map(([prefix, nextHop]) => `    route ${prefix} next-hop ${nextHop};`),
      '  }',
      '}',
    );
  }
  return lines.join('\n') + '\n';
}

interface ExaMessage {
  type?: string;
  neighbor?: {
    address?: { peer?: string };
    state?: string;
    reason?: string;
    message?: {
      update?: {
        attribute?: Record<string, unknown>;
        announce?: Record<string, Record<string, { nlri?: string }[]>>;
        withdraw?: Record<string, { nlri?: string }[]>;
      };
      notification?: { code?: number; subcode?: number };
    };
  };
}

const EXA_STATES: Readonly<Record<string, SessionState>> = { up: 'Established', connected: 'OpenSent', down: 'Idle' };

/** Replays ExaBGP's received.jsonl into routes and sessions. Pure. */
export function replayExabgp(jsonl: string, ownAs?: number): { routes: PeerRoute[]; sessions: PeerSessionInfo[] } {
  const rib = new Map<string, PeerRoute>();
  const sessions = new Map<string, PeerSessionInfo>();
  for (const line of jsonl.split('\n')) {
    if (!line.trim().startsWith('{')) continue;
    let msg: ExaMessage;
    try {
      msg = JSON.parse(line) as ExaMessage;
    } catch {
      continue;
    }
    const peer = msg.neighbor?.address?.peer ?? '';
    if (msg.type === 'state' && msg.neighbor?.state) {
      const state = EXA_STATES[msg.neighbor.state] ?? 'Idle';
      sessions.set(peer, { neighbor: peer, state, ...(msg.neighbor.reason ? { lastError: msg.neighbor.reason } : {}) });
      if (state === 'Idle') for (const key of [...rib.keys()]) if (key.startsWith(`${peer} `)) rib.delete(key);
    }
    const update = msg.neighbor?.message?.update;
    if (msg.type !== 'update' || !update) continue;
    for (const list of Object.values(update.withdraw ?? {})) for (const w of list) rib.delete(`${peer} ${w.nlri}`);
    const a = update.attribute ?? {};
    for (const byNextHop of Object.values(update.announce ?? {})) {
      for (const [nextHop, list] of Object.entries(byNextHop)) {
        for (const n of list) {
          if (!n.nlri) continue;
          const asPath = ((a['as-path'] as unknown[] | undefined) ?? []).flat().map(Number);
          // RFC 4271 §9.1.2: a path holding our own AS is a loop and is not used. ExaBGP records it anyway
          // (FRR sends an eBGP route back to the peer it came from), so drop it here like a speaker would.
          if (ownAs !== undefined && asPath.includes(ownAs)) {
            rib.delete(`${peer} ${n.nlri}`);
            continue;
          }
          const origin = a.origin as PeerRoute['origin'] | undefined;
          rib.set(`${peer} ${n.nlri}`, {
            prefix: n.nlri,
            nextHop,
            asPath,
            ...(origin ? { origin } : {}),
            ...(a['local-preference'] !== undefined ? { localPref: Number(a['local-preference']) } : {}),
            ...(a.med !== undefined ? { med: Number(a.med) } : {}),
            ...(a['originator-id'] ? { originatorId: String(a['originator-id']) } : {}),
            ...(a['cluster-list'] ? { clusterList: (a['cluster-list'] as unknown[]).map(String) } : {}),
            ...(a.community ? { communities: (a.community as number[][]).map(([x, y]) => `${x}:${y}`) } : {}),
            best: true,
            fromPeer: peer,
          });
        }
      }
    }
  }
  return { routes: [...rib.values()], sessions: [...sessions.values()] };
}

export async function startExabgp(options: PeerOptions): Promise<PeerDaemon> {
  const { dir, ownsDir } = daemonDir('exabgp', options);
  const bin = PEER_BINARIES.exabgp;
  const configPath = join(dir, 'exabgp.conf');
  const receivedPath = join(dir, 'received.jsonl');
  const commandsPath = join(dir, 'commands.txt');
  const markerPath = join(dir, 'ready.marker');
  const announced = new Map<string, string>((options.announce ?? []).map((r) => [r.prefix, r.nextHop]));
  const handle = new DaemonHandle({
    name: 'exabgp',
    dir,
    ownsDir,
    staleFiles: [markerPath, receivedPath, commandsPath],
    readyTimeoutMs: 20_000,
    prepare: () => {
      writeFileSync(join(dir, 'api.py'), HELPER);
      writeFileSync(commandsPath, '');
      writeFileSync(configPath, exabgpConfig(options, dir, announced));
      return {
        command: bin.daemon(),
        args: [configPath],
        env: {
          'exabgp.tcp.bind': options.address,
          'exabgp.tcp.port': String(options.port ?? 179),
          'exabgp.daemon.user': 'root',
          'exabgp.daemon.drop': 'false',
          'exabgp.daemon.daemonize': 'false',
          'exabgp.api.cli': 'false',
          'exabgp.api.ack': 'false',
          'exabgp.log.destination': 'stdout',
          'exabgp.cache.attributes': 'false',
        },
      };
    },
    ready: async () => existsSync(markerPath),
  });
  const read = () => replayExabgp(existsSync(receivedPath) ? readFileSync(receivedPath, 'utf8') : '', options.as);
  const send = async (command: string) => {
    appendFileSync(commandsPath, `${command}\n`);
  };
  await handle.start();
  return {
    kind: 'exabgp',
    address: options.address,
    as: options.as,
    routerId: options.routerId ?? options.address,
    dir,
    get startupMs() {
      return handle.startupMs;
    },
    pid: () => handle.pid(),
    routes: async () => read().routes,
    sessions: async () => {
      const seen = read().sessions;
      // Neighbors ExaBGP has not reported on yet are Idle.
      return options.neighbors.map(
        (n) => seen.find((s) => s.neighbor === n.address) ?? { neighbor: n.address, state: 'Idle' as const },
      );
    },
    announce: async (prefix, nextHop) => {
      announced.set(prefix, nextHop);
      await send(`announce route ${prefix} next-hop ${nextHop}`);
    },
    withdraw: async (prefix) => {
      const nextHop = announced.get(prefix);
      if (nextHop === undefined) return;
      announced.delete(prefix);
      await send(`withdraw route ${prefix} next-hop ${nextHop}`);
    },
    /** Sends an API command ("announce route ..."); returns everything ExaBGP has reported so far. */
    cli: async (command) => {
      if (command.trim() !== '') await send(command.trim());
      return existsSync(receivedPath) ? readFileSync(receivedPath, 'utf8') : '';
    },
    log: () => handle.log(),
    stop: async () => {
      await handle.stop();
      if (!ownsDir) rmSync(markerPath, { force: true });
    },
    kill9: () => handle.kill9(),
    restart: () => handle.restart(),
  };
}
