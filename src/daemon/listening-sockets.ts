// Listening sockets on fixed addresses, held across a configuration reload.
//
// A reload starts a new relay while the old one drains. Were the old one to
// close its port before the new one binds it, the port would be free for that
// moment: clients would be refused, and another process could take it and
// leave the relay with nowhere to listen. So each relay that listens on an
// address holds the one server there: the newest holder is given the
// connections, one that lets go gives them back to the holder before it (a
// reload that failed), and the server closes when the last one lets go.
// A port 0 asks for a server of its own on any free port. The SMTP ports hold
// a plain socket server (holdSocket); the metrics listener its HTTP server.
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';

export interface HeldServer {
  /** The port bound: for a port 0, the one the system chose. */
  port: number;
  listening(): boolean;
  /** Connections go back to the holder before; with the last holder the server closes (settles once it has). */
  release(): Promise<void>;
}

/** A server to bind, asking `current()` for the holder to serve each connection, and how it closes. */
export interface Bindable {
  server: Server;
  close(): Promise<void>;
}

interface Shared<H> extends Bindable {
  port: number;
  holders: { holder: H }[];
}

/** The servers of one kind of listener, by "host:port" (the port bound, for a port 0). */
export class HeldServers<H> {
  readonly #byAddress = new Map<string, Shared<H>>();

  /** Holds the server on host:port, binding one made by `create` unless a relay before holds it already. Rejects with the errno error of listen(). */
  async hold(host: string, port: number, holder: H, create: (current: () => H | undefined) => Bindable): Promise<HeldServer> {
    let shared = port !== 0 ? this.#byAddress.get(`${host}:${port}`) : undefined;
    if (!shared) {
      shared = await this.#bindFreeing(host, port, create);
      // Known by the port it got: a reload that names the port a port 0 was given takes it over.
      this.#byAddress.set(`${host}:${shared.port}`, shared);
    }
    const bound = shared;
    const address = `${host}:${bound.port}`;
    const entry = { holder }; // each hold is its own entry, even for one holder held twice
    bound.holders.push(entry);
    let held = true;
    return {
      port: bound.port,
      listening: () => held && bound.server.listening,
      release: async () => {
        if (!held) return;
        held = false;
        bound.holders.splice(bound.holders.indexOf(entry), 1);
        if (bound.holders.length > 0) return;
        if (this.#byAddress.get(address) === bound) this.#byAddress.delete(address);
        await bound.close();
      },
    };
  }

  /**
   * Binds host:port. A reload that moves a listener to another address on the
   * same port (127.0.0.1:25 to 0.0.0.0:25) conflicts with the server the old
   * relay holds: that one is closed then (the port is briefly free, as the
   * move cannot avoid) and the bind tried again.
   */
  async #bindFreeing(host: string, port: number, create: (current: () => H | undefined) => Bindable): Promise<Shared<H>> {
    try {
      return await bind(host, port, create);
    } catch (err) {
      const samePort = [...this.#byAddress].filter(([, shared]) => shared.port === port);
      if ((err as NodeJS.ErrnoException).code !== 'EADDRINUSE' || port === 0 || samePort.length === 0) throw err;
      for (const [address, shared] of samePort) {
        this.#byAddress.delete(address);
        void shared.close(); // frees the port at once
      }
      return bind(host, port, create);
    }
  }
}

function bind<H>(host: string, port: number, create: (current: () => H | undefined) => Bindable): Promise<Shared<H>> {
  const holders: { holder: H }[] = [];
  const { server, close } = create(() => holders.at(-1)?.holder);
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve({ server, close, holders, port: (server.address() as AddressInfo).port });
    });
  });
}

/** What serves the connections an SMTP port accepts. */
export interface Holder {
  /** A connection the socket accepted. */
  take(socket: Socket): void;
  /** The socket could not accept (out of file descriptors, say); it goes on listening. */
  failed(err: Error): void;
}

const sockets = new HeldServers<Holder>();

/** Holds the plain listening socket on host:port for `holder`. */
export function holdSocket(host: string, port: number, holder: Holder): Promise<HeldServer> {
  return sockets.hold(host, port, holder, (current) => {
    const server = createServer((socket) => {
      const holding = current();
      if (holding) holding.take(socket);
      else socket.destroy();
    });
    // Out of descriptors, libuv accepts and closes what waits, saying nothing; an accept
    // error it cannot deal with so comes here. Unheard, it would end the process.
    server.on('error', (err) => current()?.failed(err));
    return {
      server,
      // The connections it accepted stay with their holders.
      close: () => (server.close(), Promise.resolve()),
    };
  });
}
