// Open SMTP connections to one host, kept for the next message: a new
// connection costs a greeting the host may hold back on purpose (smtp-server
// holds it 100 ms, Postfix's postscreen longer), paid by whichever message
// meets it. At most `max` are open or opening; a message finds a kept one
// first, else opens one, else waits for one. A kept connection lives until
// the host closes it or it has been idle for the socket timeout.
import type { SMTPConnection } from '../smtp/nodemailer-internals.ts';

export interface Lease {
  connection: SMTPConnection;
  /** It carried a message before: the host may have closed it meanwhile. */
  reused: boolean;
}

export class ConnectionPool {
  readonly #open: () => Promise<SMTPConnection>;
  readonly #max: number;
  readonly #live = new Set<SMTPConnection>();
  /** Kept connections, the one used last at the end. */
  readonly #idle: SMTPConnection[] = [];
  #opening = 0;
  readonly #waiting: (() => void)[] = [];
  #closed = false;

  /** `open`: a connection ready for MAIL FROM (greeted, TLS, logged in), or the error that stopped it. */
  constructor(open: () => Promise<SMTPConnection>, max: number) {
    this.#open = open;
    this.#max = max;
  }

  async acquire(): Promise<Lease> {
    for (;;) {
      if (this.#closed) throw new Error('the upstream is closed');
      const kept = this.#takeIdle();
      if (kept) return { connection: kept, reused: true };
      if (this.#live.size + this.#opening < this.#max) return { connection: await this.#openOne(), reused: false };
      await new Promise<void>((resolve) => this.#waiting.push(resolve));
    }
  }

  /** `keep`: the session is ready for another transaction; else it is closed. */
  release(connection: SMTPConnection, keep: boolean): void {
    if (keep && !this.#closed && usable(connection)) this.#idle.push(connection);
    else connection.close();
    this.#wake();
  }

  close(): void {
    this.#closed = true;
    for (const connection of this.#live) connection.close();
    this.#idle.length = 0;
    this.#waiting.splice(0).forEach((resume) => resume());
  }

  /** How many connections are open now. */
  get size(): number {
    return this.#live.size;
  }

  #takeIdle(): SMTPConnection | undefined {
    for (let connection = this.#idle.pop(); connection; connection = this.#idle.pop()) if (usable(connection)) return connection;
    return undefined;
  }

  async #openOne(): Promise<SMTPConnection> {
    this.#opening++;
    let connection: SMTPConnection;
    try {
      connection = await this.#open();
    } catch (err) {
      this.#wake();
      throw err;
    } finally {
      this.#opening--;
    }
    if (this.#closed) {
      connection.close();
      throw new Error('the upstream is closed');
    }
    this.#live.add(connection);
    connection.once('end', () => {
      this.#live.delete(connection);
      const at = this.#idle.indexOf(connection);
      if (at >= 0) this.#idle.splice(at, 1);
      this.#wake();
    });
    return connection;
  }

  /** One waiting message tries again: a connection was kept, or a slot freed. */
  #wake(): void {
    this.#waiting.shift()?.();
  }
}

function usable(connection: SMTPConnection): boolean {
  return !connection.destroyed;
}
