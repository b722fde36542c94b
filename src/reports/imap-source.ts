// The mailbox a domain's rua= address delivers to, read over IMAP (RFC 9051).
// Each message is imported and then marked processed: moved to doneFolder, or
// flagged \Seen when there is none (then only unseen messages are read). A
// message is marked only after its import ended, refused or not, so a relay
// that stops half-way reads it again and the (org, report id) key makes that
// harmless; a database failure leaves it unmarked for the next poll.
import type { ImapFlow } from 'imapflow';
import { readPasswordFile } from '../config/imap-password-file.ts';
import type { Config } from '../config/schema.ts';
import type { ImportResult } from './import.ts';

export type ImapSettings = NonNullable<Config['reports']['imap']>;

/** Bounds on each step, so a server that stops answering ends the poll, not the relay. */
const TIMEOUTS = { connectionTimeout: 15_000, greetingTimeout: 15_000, socketTimeout: 60_000 };

export interface Polled {
  uid: number;
  result: ImportResult;
}

export async function imapClient(settings: ImapSettings, password: string): Promise<ImapFlow> {
  // Loaded by the first poll: about 18 MiB that a relay without reports.imap never needs.
  const { ImapFlow } = await import('imapflow');
  const implicit = settings.tls === 'implicit';
  return new ImapFlow({
    host: settings.host,
    port: settings.port ?? (implicit ? 993 : 143),
    secure: implicit,
    // starttls: the password never crosses without TLS; none: never upgraded (loopback only, the schema checks).
    doSTARTTLS: settings.tls === 'starttls' ? true : settings.tls === 'none' ? false : undefined,
    auth: { user: settings.user, pass: password },
    logger: false,
    disableAutoIdle: true,
    ...TIMEOUTS,
  });
}

/** Why a wait for news ended: the server told of new mail, or the time ran out. */
export type News = 'news' | 'timeout';

/**
 * A connection to the report folder: looks at it, and between looks waits in
 * IDLE (RFC 2177) where the server offers it, so a report is imported as it
 * arrives. The connection dropping rejects what waits on it, with one line.
 */
export class MailboxSession {
  readonly #client: ImapFlow;
  readonly #settings: ImapSettings;
  /** New mail announced (EXISTS grew) since the last look began. */
  #news = false;
  #lost: Error | undefined;
  #closed = false;
  readonly #ended: Promise<never>;

  private constructor(client: ImapFlow, settings: ImapSettings) {
    this.#client = client;
    this.#settings = settings;
    // A dropped connection is also an 'error' event; unhandled, it would end the process.
    client.on('error', (err: Error) => (this.#lost = err));
    client.on('exists', ({ count, prevCount }: { count: number; prevCount: number }) => {
      if (count > prevCount) this.#news = true;
    });
    this.#ended = new Promise<never>((_, reject) => {
      client.once('close', () => {
        this.#closed = true;
        reject(imapProblem(settings, this.#lost ?? new Error('the server closed the connection')));
      });
    });
    this.#ended.catch(() => {}); // observed by whoever waits; a session nobody waits on may end quietly
  }

  /** Connects, logs in and selects the folder; `signal` closes the connection (a stalled server does not hold a stop up). */
  static async open(settings: ImapSettings, signal?: AbortSignal): Promise<MailboxSession> {
    const session = new MailboxSession(await imapClient(settings, readPasswordFile(settings.passwordFile)), settings);
    const client = session.#client;
    if (signal?.aborted) throw imapProblem(settings, new Error('stopped'));
    const abort = () => client.close();
    signal?.addEventListener('abort', abort, { once: true });
    client.once('close', () => signal?.removeEventListener('abort', abort));
    try {
      await client.connect();
      if (settings.doneFolder) await ensureFolder(client, settings.doneFolder);
      await client.mailboxOpen(settings.folder);
    } catch (err) {
      client.close();
      throw imapProblem(settings, session.#lost ?? err);
    }
    return session;
  }

  /** Whether the server offers IDLE (RFC 2177 §3); without it the folder is polled. */
  get idles(): boolean {
    return this.#client.capabilities.has('IDLE');
  }

  /**
   * Every message not yet processed is fetched (those larger than `maxBytes`
   * are refused by their size, unread), imported, and marked processed.
   */
  async look(maxBytes: number, importMessage: (data: Buffer) => Promise<ImportResult>): Promise<Polled[]> {
    const { doneFolder, folder } = this.#settings;
    const client = this.#client;
    const polled: Polled[] = [];
    this.#news = false;
    try {
      const lock = await client.getMailboxLock(folder);
      try {
        const uids = (await client.search(doneFolder ? { all: true } : { seen: false }, { uid: true })) || [];
        for (const uid of uids) {
          const result = await fetchAndImport(client, uid, maxBytes, importMessage);
          if (result === 'gone') continue; // taken by another relay reading this mailbox since the search: its work, not a refusal
          polled.push({ uid, result });
          if (doneFolder) await client.messageMove(String(uid), doneFolder, { uid: true });
          else await client.messageFlagsAdd(String(uid), ['\\Seen'], { uid: true });
        }
      } finally {
        lock.release();
      }
    } catch (err) {
      client.close();
      if (err instanceof StoreFailed) throw err.reason;
      throw imapProblem(this.#settings, this.#lost ?? err);
    }
    return polled;
  }

  /** Waits in IDLE until the server announces new mail or `ms` pass; rejects when the connection ends. */
  async waitForNews(ms: number): Promise<News> {
    if (this.#closed) return this.#ended;
    if (this.#news) return 'news';
    const client = this.#client;
    let waiting = true;
    let timer: NodeJS.Timeout | undefined;
    let onExists: (() => void) | undefined;
    // IDLE ends when a command breaks it: the next look's, or the client's own NOOP probing a quiet
    // connection (socketTimeout); while this wait lasts, it is entered again.
    const idle = (): void => {
      if (waiting && !this.#closed) void client.idle().then(idle, () => {});
    };
    try {
      idle();
      return await Promise.race([
        this.#ended,
        new Promise<News>((resolve) => {
          onExists = () => this.#news && resolve('news');
          client.on('exists', onExists);
          timer = setTimeout(() => resolve('timeout'), ms);
        }),
      ]);
    } finally {
      waiting = false;
      clearTimeout(timer);
      if (onExists) client.off('exists', onExists);
    }
  }

  async logout(): Promise<void> {
    if (this.#closed) return;
    try {
      await this.#client.logout();
    } catch {
      this.#client.close(); // the look's work is done; a logout the server does not answer changes nothing
    }
  }

  close(): void {
    this.#client.close();
  }
}

/** One look at the folder on a connection of its own: connect, look, log out. */
export async function pollMailbox(
  settings: ImapSettings,
  maxBytes: number,
  importMessage: (data: Buffer) => Promise<ImportResult>,
  signal?: AbortSignal,
): Promise<Polled[]> {
  const session = await MailboxSession.open(settings, signal);
  const polled = await session.look(maxBytes, importMessage);
  await session.logout();
  return polled;
}

/** 'gone': the message is no longer in the folder (RFC 9051 §6.4.9: a UID that no longer exists is ignored, so the FETCH answers nothing). */
async function fetchAndImport(
  client: ImapFlow,
  uid: number,
  maxBytes: number,
  importMessage: (data: Buffer) => Promise<ImportResult>,
): Promise<ImportResult | 'gone'> {
  const head = await client.fetchOne(String(uid), { size: true }, { uid: true });
  if (!head) return 'gone';
  const size = head.size ?? 0;
  if (size > maxBytes) return { status: 'refused', reason: `message of ${size} octets, more than ${maxBytes} (reports.maxBytes); not fetched` };
  const message = await client.fetchOne(String(uid), { source: true }, { uid: true });
  if (!message) return 'gone';
  if (!message.source) return { status: 'refused', reason: 'the server sent no message text' };
  try {
    return await importMessage(message.source);
  } catch (err) {
    throw new StoreFailed(err);
  }
}

/** The import's own failure (the database), told apart from the server's. */
class StoreFailed extends Error {
  readonly reason: unknown;
  constructor(reason: unknown) {
    super('storing a report failed');
    this.reason = reason;
  }
}

async function ensureFolder(client: ImapFlow, folder: string): Promise<void> {
  const existing = await client.list();
  if (!existing.some((m) => m.path === folder)) await client.mailboxCreate(folder);
}

/** One line naming the server and what went wrong; never the password. */
function imapProblem(settings: ImapSettings, err: unknown): Error {
  const e = err as { message?: string; code?: string; responseText?: string; authenticationFailed?: boolean };
  const what = e.authenticationFailed ? `login as ${settings.user} refused` : (e.responseText ?? e.code ?? e.message ?? String(err));
  return new Error(`IMAP ${settings.host}:${settings.port ?? (settings.tls === 'implicit' ? 993 : 143)} folder ${settings.folder}: ${what}`);
}
