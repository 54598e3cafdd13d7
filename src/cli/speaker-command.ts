// `tortie bgp speaker`: a standalone BGP-4 speaker for people and tests. Runs until SIGINT/SIGTERM,
// then sends Cease (Administrative Shutdown) to every peer and exits 0.

import { readFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import {
  formatIpv4,
  formatPrefix,
  prefixKey,
  notificationReason,
  nativeSocketOptions,
  Speaker,
  type OriginatedRoute,
  Origin,
  type PathAttributes,
} from '../../bgp/index.js';
import { createLogger } from '../log.js';
import { setCrashPath } from '../fatal.js';
import { parseAnnounce, type AnnounceOption, type PeerOption, type SpeakerOptions } from './speaker-args.js';
import { UsageError } from './usage-error.js';
import { formatEventLine, routeToJson, type SpeakerEventJson } from './speaker-events.js';

function toOriginated(option: AnnounceOption): OriginatedRoute {
  const attrs: PathAttributes = { origin: Origin.IGP };
  if (option.nextHop !== undefined) attrs.nextHop = option.nextHop;
  if (option.med !== undefined) attrs.med = option.med;
  if (option.localPref !== undefined) attrs.localPref = option.localPref;
  if (option.communities) attrs.communities = option.communities;
  if (option.largeCommunities) attrs.largeCommunities = option.largeCommunities;
  return { prefix: option.prefix, attrs };
}

/**
 * The password in `password-file=PATH`: the file's bytes less one trailing newline (what `echo` adds).
 * Throws a UsageError naming the file (never the password) when it cannot be read or is empty.
 */
export function readPasswordFile(peer: PeerOption): string | undefined {
  if (peer.passwordFile === undefined) return undefined;
  let text: string;
  try {
    text = readFileSync(peer.passwordFile, 'utf8');
  } catch (error) {
    throw new UsageError(
      `--peer ${peer.address} password-file: cannot read ${peer.passwordFile} (${(error as NodeJS.ErrnoException).code ?? String(error)})`,
    );
  }
  const password = text.replace(/\r?\n$/, '');
  if (password === '') throw new UsageError(`--peer ${peer.address} password-file: ${peer.passwordFile} is empty`);
  return password;
}

export async function runSpeaker(options: SpeakerOptions): Promise<number> {
  const passwords = new Map<string, string>();
  try {
    for (const peer of options.peers) {
      const password = readPasswordFile(peer);
      if (password !== undefined) passwords.set(peer.address, password);
    }
  } catch (error) {
    process.stderr.write(`tortie: ${(error as Error).message}\n`);
    return 2;
  }
  const logger = createLogger();
  // A fatal error (src/fatal.ts): logged, then exit 1 — the sockets close with no Cease sent (a crash, to
  // the peers: graceful-restart helpers keep our routes), not SIGTERM's Cease to every peer.
  setCrashPath({ log: logger, shutdown: async () => undefined });
  const emit = (event: SpeakerEventJson): void => {
    process.stdout.write(options.json ? `${JSON.stringify(event)}\n` : `${formatEventLine(event)}\n`);
  };

  const speaker = new Speaker({
    routerId: options.routerId,
    localAs: options.asn,
    listen: options.listen,
    holdTime: options.holdTime,
    connectRetryMs: options.connectRetrySeconds * 1000,
    ...(options.clusterId !== undefined ? { clusterId: options.clusterId } : {}),
    ...(options.gracefulRestart !== undefined
      ? { gracefulRestart: { restartTime: options.gracefulRestart, restarting: true } }
      : {}),
    ...(options.maxPrefixes !== undefined ? { maxPrefixes: options.maxPrefixes } : {}),
    ...(options.prefixRestartSeconds !== undefined
      ? { prefixLimitRestartMs: options.prefixRestartSeconds * 1000 }
      : {}),
    ...(options.minHoldTime !== undefined ? { minHoldTime: options.minHoldTime } : {}),
    ...(options.maxSendQueueBytes !== undefined ? { maxSendQueueBytes: options.maxSendQueueBytes } : {}),
    logger,
  });
  speaker.on('state', (e) =>
    emit({ event: 'state', peer: e.peer, from: e.from, to: e.to, ...(e.reason ? { reason: e.reason } : {}) }),
  );
  speaker.on('update', (e) =>
    emit({
      event: 'update',
      peer: e.peer,
      announce: e.announced.map((r) => routeToJson(r.prefix, r.attrs)),
      withdraw: e.withdrawn.map(formatPrefix),
    }),
  );
  speaker.on('endOfRib', (e) => emit({ event: 'end-of-rib', peer: e.peer }));
  speaker.on('notification', (e) =>
    emit({
      event: 'notification',
      peer: e.peer,
      direction: e.direction,
      code: e.code,
      subcode: e.subcode,
      // `reason` is the RFC's name for the code/subcode; `detail` says what exactly was wrong.
      reason: notificationReason(e.code, e.subcode),
      ...(e.reason && e.reason !== notificationReason(e.code, e.subcode) ? { detail: e.reason } : {}),
      ...(e.data.length ? { data: Buffer.from(e.data).toString('hex') } : {}),
    }),
  );

  const originated = new Map<number, OriginatedRoute>();
  for (const option of options.announce) originated.set(prefixKey(option.prefix), toOriginated(option));

  try {
    await speaker.start();
  } catch (error) {
    process.stderr.write(`tortie: ${(error as Error).message}\n`);
    return 1;
  }
  if (options.listen) emit({ event: 'listening', address: options.listen.address, port: options.listen.port });
  const native = nativeSocketOptions();
  if (!native.available) {
    for (const peer of options.peers) {
      if (peer.passwordFile === undefined && peer.ttlSecurity === undefined) continue;
      // Loudly, and never unsigned: the speaker refuses every connection with this peer.
      const message = `peer ${peer.address}: TCP-MD5/GTSM cannot be set here, so this peer is never connected: ${native.reason}`;
      process.stderr.write(`tortie: ${message}\n`);
      emit({ event: 'error', message });
    }
  }
  speaker.setOriginated([...originated.values()]);
  speaker.setPeers(
    options.peers.map((peer) => ({
      address: peer.address,
      port: peer.port,
      peerAs: peer.asn,
      passive: peer.passive,
      ...(peer.holdTime !== undefined ? { holdTime: peer.holdTime } : {}),
      ...(peer.keepaliveTime !== undefined ? { keepaliveTime: peer.keepaliveTime } : {}),
      ...(peer.localAddress !== undefined ? { localAddress: peer.localAddress } : {}),
      ...(peer.rrClient ? { rrClient: true } : {}),
      ...(peer.nextHop !== undefined ? { nextHop: peer.nextHop } : {}),
      ...(peer.subnet !== undefined ? { subnet: peer.subnet } : {}),
      ...(peer.allowOwnAs !== undefined ? { allowOwnAs: peer.allowOwnAs } : {}),
      ...(peer.maxPrefixes !== undefined ? { maxPrefixes: peer.maxPrefixes } : {}),
      ...(passwords.has(peer.address) ? { password: passwords.get(peer.address)! } : {}),
      ...(peer.ttlSecurity !== undefined ? { ttlSecurity: peer.ttlSecurity } : {}),
    })),
  );

  let lines: ReturnType<typeof createInterface> | null = null;
  if (options.stdin) {
    lines = createInterface({ input: process.stdin });
    lines.on('line', (line) => {
      const text = line.trim();
      if (text === '' || text.startsWith('#')) return;
      const [verb, argument = ''] = text.split(/\s+/, 2);
      try {
        if (verb === 'announce') {
          const route = toOriginated(parseAnnounce(argument));
          originated.set(prefixKey(route.prefix), route);
        } else if (verb === 'rib') {
          emit({
            event: 'rib',
            routes: speaker.bestRoutes().map((r) => ({
              ...routeToJson(r.prefix, r.attrs),
              from: r.from ?? 'local',
              ...(r.stale ? { stale: true } : {}),
            })),
          });
          return;
        } else if (verb === 'refresh') {
          if (!speaker.refresh(argument))
            throw new UsageError(`refresh ${argument}: no Established peer ${argument} that supports ROUTE-REFRESH`);
          return;
        } else if (verb === 'withdraw') {
          const route = parseAnnounce(argument);
          if (!originated.delete(prefixKey(route.prefix))) throw new UsageError(`withdraw ${argument}: not announced`);
        } else {
          throw new UsageError(
            `unknown command "${verb}" (accepted: announce PREFIX[,...], withdraw PREFIX, rib, refresh PEER)`,
          );
        }
        speaker.setOriginated([...originated.values()]);
      } catch (error) {
        emit({ event: 'error', message: (error as Error).message });
      }
    });
  }

  return new Promise<number>((resolve) => {
    let stopping = false;
    const shutdown = (signal: string): void => {
      if (stopping) return;
      stopping = true;
      // Stop reading commands so only the sessions' sockets keep the process alive while Cease is flushed.
      lines?.close();
      process.stdin.destroy();
      // Bounded: a peer that never closes its side must not keep us running.
      setTimeout(() => process.exit(0), 3000).unref();
      logger.info({ signal, routerId: formatIpv4(options.routerId) }, 'stopping: sending Cease to every peer');
      speaker.stop().then(
        () => resolve(0),
        (error: unknown) => {
          logger.error({ err: error }, 'stop failed');
          resolve(1);
        },
      );
    };
    process.once('SIGINT', () => shutdown('SIGINT'));
    process.once('SIGTERM', () => shutdown('SIGTERM'));
  });
}
