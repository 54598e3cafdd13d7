// Every TCP connection a Speaker opens or accepts, tracked, so the agent's graceful restart of the Speaker
// (./speaker-keeper.ts) can drop them all at once without a NOTIFICATION — a crash, as peers see it, so
// they keep our routes (RFC 4724).

import { tcpAcceptor, tcpTransport, type Acceptor, type Connection, type Transport } from '../../bgp/index.js';

/** Every connection the Speaker opens or accepts, so a graceful restart can drop them without NOTIFICATION. */
export class ConnectionTracker {
  private readonly open = new Set<Connection>();
  readonly transport: Transport;
  readonly acceptor: Acceptor;

  constructor(inner: Transport = tcpTransport, innerAcceptor: Acceptor = tcpAcceptor) {
    this.transport = { connect: async (options) => this.track(await inner.connect(options)) };
    this.acceptor = (address, port, onConnection) =>
      innerAcceptor(address, port, (conn) => onConnection(this.track(conn)));
  }

  private track(conn: Connection): Connection {
    this.open.add(conn);
    conn.once('close', () => this.open.delete(conn));
    return conn;
  }

  /** Drops every connection at once (a crash, as peers see it). */
  dropAll(): void {
    for (const conn of this.open) conn.destroy();
    this.open.clear();
  }
}
