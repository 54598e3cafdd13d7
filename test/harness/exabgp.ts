import type { PeerDaemon, PeerOptions } from './peer.js';
export async function startExabgp(_options: PeerOptions): Promise<PeerDaemon> {
  throw new Error('todo');
}
