// Listening sockets on fixed addresses, held across a configuration reload.
//
// A reload starts a new relay while the old one drains. Were the old one to
// close its port before the new one binds it, the port would be free for that
// moment: clients would be refused, and another process could take it and
// leave the relay with nowhere to listen. So each relay that listens on an
// address holds the one socket there: the newest holder is given the
// connections, one that lets go gives them back to the holder before it (a
// reload that failed), and the socket closes when the last one lets go.
// A port 0 asks for a socket of its own on any free port.
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';

export interface Holder {
  /** A connection the socket accepted. */
  take(socket: Socket): void;
  /** The socket could not accept (out of file descriptors, say); it goes on listening. */
  failed(err: Error): void;
}

export interface HeldSocket {
  /** The port bound: for a port 0, the one the system chose. */
  port: number;
  listening(): boolean;
  /** Connections go back to the holder before, or the socket closes with the last holder. */
  release(): void;
}

interface Shared {
  port: number;
  server: Server;
  holders: Holder[];
}

const byAddress = new Map<string, Shared>();

/** Holds the socket on host:port, binding it unless a relay before holds it already. Rejects with the errno error of listen(). */
export async function holdSocket(host: string, port: number, holder: Holder): Promise<HeldSocket> {
  let shared = port !== 0 ? byAddress.get(`${host}:${port}`) : undefined;
  if (!shared) {
    shared = await bindFreeing(host, port);
    // Known by the port it got: a reload that names the port a port 0 was given takes it over.
    byAddress.set(`${host}:${shared.port}`, shared);
  }
  const address = `${host}:${shared.port}`;
  const { server, holders } = shared;
  // Each hold is its own entry, even for one holder held twice.
  const own: Holder = { take: (socket) => holder.take(socket), failed: (err) => holder.failed(err) };
  holders.push(own);
  let held = true;
  return {
    port: shared.port,
    listening: () => held && server.listening,
    release() {
      if (!held) return;
      held = false;
      holders.splice(holders.indexOf(own), 1);
      if (holders.length > 0) return;
      if (byAddress.get(address) === shared) byAddress.delete(address);
      server.close(); // the connections it accepted stay with their holders
    },
  };
}

/**
 * Binds host:port. A reload that moves a listener to another address on the
 * same port (127.0.0.1:25 to 0.0.0.0:25) conflicts with the socket the old
 * relay holds: that one is closed then (the port is briefly free, as the
 * move cannot avoid) and the bind tried again.
 */
async function bindFreeing(host: string, port: number): Promise<Shared> {
  try {
    return await bind(host, port);
  } catch (err) {
    const samePort = [...byAddress].filter(([, shared]) => shared.port === port);
    if ((err as NodeJS.ErrnoException).code !== 'EADDRINUSE' || port === 0 || samePort.length === 0) throw err;
    for (const [address, { server }] of samePort) {
      byAddress.delete(address);
      server.close(); // frees the port at once; the connections it accepted stay with their holders
    }
    return bind(host, port);
  }
}

function bind(host: string, port: number): Promise<Shared> {
  const shared: Shared = {
    port, // until bound
    server: createServer((socket) => {
      const current = shared.holders.at(-1);
      if (current) current.take(socket);
      else socket.destroy();
    }),
    holders: [],
  };
  const { server } = shared;
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      shared.port = (server.address() as AddressInfo).port;
      // Out of descriptors, libuv accepts and closes what waits, saying nothing; an accept
      // error it cannot deal with so comes here. Unheard, it would end the process.
      server.on('error', (err) => shared.holders.at(-1)?.failed(err));
      resolve(shared);
    });
  });
}
