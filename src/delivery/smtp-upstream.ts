// The `smtp` upstream: a smart host, over connections kept and reused
// (connection-pool.ts), each transaction written in one go with the message's
// octets as they are (transaction.ts).
//
// What the host takes (8BITMIME, SMTPUTF8) is learned from its EHLO: a probe
// at start-up, again when the answer is older than REFRESH_MS (started by a
// message, never waited for by it), from every new delivery connection, and
// after a refusal that reads as a missing extension. Messages are signed for
// what was learned; what a message is sent as is decided again on the very
// connection that carries it, before MAIL FROM: the signed octets as they
// are when that connection takes them, else re-encoded and signed again for
// it, else deferred (see hop-form.ts).
import { isIP } from 'node:net';
import type { UpstreamConfig } from '../config/schema.ts';
import type { Octets } from '../message/octets.ts';
import type { Logger } from '../common/logger.ts';
import type { UpstreamTraits } from '../pipeline/pipeline.ts';
import { ConnectionPool } from './connection-pool.ts';
import { probeExtensions, type ProbeTarget } from './extension-probe.ts';
import type { HopExtensions } from './hop-form.ts';
import { MessageForms, type Prepared, type PreparationDeps } from './hop-preparation.ts';
import { failureReply, plainReply, type FailureReply, type SendError, type UpstreamSide } from './failure-reply.ts';
import { extensionsOf, LearnedExtensions, type Extensions } from './learned-extensions.ts';
import { announcedExtensions, connectionSocket, envelopeAddress, SMTPConnection } from '../smtp/nodemailer-internals.ts';
import { Supervisor } from '../common/supervisor.ts';
import { combinedReply, parseReply, replyLine, replyText, type RemoteHost, type SmtpReply } from '../smtp/reply.ts';
import { sendTransaction } from './transaction.ts';
import { forAll, type Envelope, type OwnSignature, type Upstream, type UpstreamReply } from './upstream.ts';

type SmtpConfig = Extract<UpstreamConfig, { type: 'smtp' }>;

/** How long an EHLO answer is trusted, and how soon a failed probe is tried again. */
export const REFRESH_MS = 5 * 60_000;
export const RETRY_MS = 30_000;
/** Messages arriving before the first answer wait for it at most this long. */
const FIRST_ANSWER_WAIT_MS = 10_000;
const NON_ASCII = /[^\x00-\x7f]/;

export class SmtpUpstream implements Upstream {
  readonly name;
  private readonly pool: ConnectionPool;
  private readonly connectionOptions: ConstructorParameters<typeof SMTPConnection>[0];
  private readonly side: UpstreamSide;
  private readonly probeTarget: ProbeTarget;
  private readonly learned: LearnedExtensions;
  private probing: Promise<void> | null = null;
  private readonly firstAnswer: Promise<void>;
  private closed = false;
  private readonly config: SmtpConfig;
  private readonly logger: Logger;
  private readonly now: () => number;
  private readonly preparation: PreparationDeps | null;
  private readonly supervisor: Supervisor;

  /**
   * `preparation`: what signing a message again takes; without it a message that needs it is deferred.
   * `supervisor`: where the extension probe reports its failures.
   */
  constructor(
    config: SmtpConfig,
    logger: Logger,
    options: { preparation?: PreparationDeps | undefined; now?: () => number; supervisor?: Supervisor | undefined } = {},
  ) {
    this.config = config;
    this.logger = logger;
    this.now = options.now ?? Date.now;
    this.preparation = options.preparation ?? null;
    this.supervisor = options.supervisor ?? new Supervisor({ logger });
    this.name = `smtp ${config.host}:${config.port}`;
    const timeout = config.timeoutSeconds * 1000;
    // RFC 6066 §3: SNI carries host names only; nodemailer leaves it out for an address.
    const tls = { rejectUnauthorized: config.rejectUnauthorized, ...(isIP(config.host) ? {} : { servername: config.host }) };
    this.side = {
      host: config.host,
      port: config.port,
      user: config.auth?.user,
      requireTLS: config.requireTLS,
      secure: config.secure,
      name: config.name ?? 'this host',
    };
    this.probeTarget = {
      host: config.host,
      port: config.port,
      secure: config.secure,
      requireTLS: config.requireTLS,
      name: config.name,
      tls,
      timeoutMs: timeout,
    };
    this.connectionOptions = {
      host: config.host,
      port: config.port,
      secure: config.secure,
      requireTLS: config.requireTLS,
      name: config.name,
      tls,
      connectionTimeout: timeout,
      greetingTimeout: timeout,
      // Also how long a kept connection may stay idle before it is closed.
      socketTimeout: timeout,
      logger: false,
    };
    this.pool = new ConnectionPool(() => this.open(), config.maxConnections);
    this.learned = new LearnedExtensions(REFRESH_MS, RETRY_MS);
    const first = this.probe();
    this.firstAnswer = Promise.race([first, new Promise<void>((resolve) => setTimeout(resolve, FIRST_ANSWER_WAIT_MS).unref())]);
  }

  get traits(): UpstreamTraits {
    return { dualSign: this.config.dualSign, ...this.withOverride(this.learned.extensions), provisional: !this.learned.known };
  }

  /** Resolves once the upstream's extensions are known (or the first probe gave up, or waited long enough). */
  ready(): Promise<void> {
    return this.firstAnswer;
  }

  async deliver(envelope: Envelope, message: Octets, signedBy?: readonly OwnSignature[]): Promise<UpstreamReply> {
    this.probeIfDue();
    const forms = new MessageForms(this.preparation, { envelope, octets: message, signedBy, dualSign: this.config.dualSign });
    // The addresses as RCPT TO names them, which refusals name too.
    const to = envelope.to.map(sentAddress);
    const sent: Envelope = { ...envelope, from: sentAddress(envelope.from), to, ...sentDsn(envelope) };
    try {
      // A kept connection the host closed before it took anything of the message: another one takes it.
      for (let attempt = 1; ; attempt++) {
        let lease;
        try {
          lease = await this.pool.acquire();
        } catch (caught) {
          const err = caught as SendError;
          return forAll(envelope, this.failed([failureReply(err, { kind: 'smart-host', side: this.side })], err));
        }
        const { connection, reused } = lease;
        const address = connectionSocket(connection)?.remoteAddress;
        /** The host as the connection that carries the message reached it: where its replies come from. */
        const remote: RemoteHost | undefined = address ? { host: this.config.host, address } : undefined;
        const prepared = await this.forConnection(connection, forms);
        if (!prepared.ok) {
          this.pool.release(connection, true);
          return forAll(envelope, prepared.reply);
        }
        const outcome = await sendTransaction(connection, sent, { octets: prepared.octets, eightBit: prepared.eightBit });
        if (outcome.ok) {
          this.pool.release(connection, true);
          const { info } = outcome;
          const ok = parseReply(info.response, { remote, command: info.command }) ?? { code: 250, enhanced: '2.0.0', text: 'Ok' };
          if (info.rejectedErrors.length === 0) return { ...ok, recipients: envelope.to.map((address) => ({ address, reply: ok })) };
          return this.refused(envelope, to, info.rejectedErrors, ok, remote);
        }
        const { err } = outcome;
        this.releaseAfter(connection, err);
        if (reused && outcome.unanswered && attempt === 1 && closedByHost(err)) continue;
        if (err.rejectedErrors?.length) return this.refused(envelope, to, err.rejectedErrors, null, remote);
        return forAll(envelope, this.failed([failureReply(err, { kind: 'smart-host', side: this.side, remote })], err));
      }
    } finally {
      await forms.release();
    }
  }

  /** A connection ready for MAIL FROM: greeted, TLS as configured, logged in; its EHLO answer learned. */
  private open(): Promise<SMTPConnection> {
    return new Promise((resolve, reject) => {
      const connection = new SMTPConnection(this.connectionOptions);
      let settled = false;
      const settle = (err: Error | null): void => {
        if (settled) return;
        settled = true;
        if (!err) {
          this.record(announcedExtensions(connection), 'delivery connection');
          return resolve(connection);
        }
        connection.close();
        reject(err);
      };
      // Once it is open, a failure goes to the transaction under way, if any; an idle one is dropped from the pool.
      connection.on('error', (err: Error) => settle(err));
      connection.once('end', () => settle(Object.assign(new Error('Connection closed unexpectedly'), { code: 'ECONNECTION', command: 'CONN' })));
      connection.connect((err) => {
        if (err) return settle(err);
        const auth = this.config.auth;
        // Always, when configured: a host that does not offer AUTH is not sent to unauthenticated.
        if (!auth) return settle(null);
        connection.login({ user: auth.user, credentials: { user: auth.user, pass: auth.pass } } as never, (loginErr) => settle(loginErr ?? null));
      });
    });
  }

  /** After a failed transaction: a refusal leaves the session usable once reset; anything else ends it. */
  private releaseAfter(connection: SMTPConnection, err: SendError): void {
    const refused = (err.code === 'EENVELOPE' || err.code === 'EMESSAGE') && err.responseCode !== 421 && !connection.destroyed;
    if (!refused) return this.pool.release(connection, false);
    connection.reset((resetErr) => this.pool.release(connection, !resetErr));
  }

  /**
   * Some recipients refused at RCPT TO (all of them when `accepted` is null):
   * each keeps its own refusal, the others what the transaction got.
   */
  private refused(envelope: Envelope, to: string[], rejected: SendError[], accepted: SmtpReply | null, remote: RemoteHost | undefined): UpstreamReply {
    const refusals = new Map<string, FailureReply>();
    for (const r of rejected) {
      const via = { kind: 'smart-host' as const, side: this.side, remote };
      const reply = r.response
        ? failureReply({ ...r, command: r.command ?? 'RCPT TO', responseCode: r.responseCode ?? parseReply(r.response)?.code }, via)
        : failureReply(r, via);
      refusals.set((r as { recipient?: string }).recipient ?? '', reply);
    }
    this.failed([...refusals.values()], rejected[0]!);
    const own = (address: string): SmtpReply | undefined => {
      const reply = refusals.get(address);
      return reply && plainReply(reply);
    };
    const fallback = accepted ?? combinedReply([...refusals].map(([address, reply]) => ({ address, reply: plainReply(reply) })));
    const recipients = envelope.to.map((address, at) => ({ address, reply: own(to[at]!) ?? fallback }));
    return { ...combinedReply(recipients), recipients };
  }

  /** What goes out on this connection, decided from its own EHLO answer, before MAIL FROM. */
  private async forConnection(connection: SMTPConnection, forms: MessageForms): Promise<Prepared> {
    const hop = this.withOverride(extensionsOf(announcedExtensions(connection)));
    const prepared = await forms.form(hop, `Upstream ${this.config.host}`);
    if (!prepared.ok) {
      this.logger.warn(
        { upstream: this.name, ...hop, reply: replyLine(prepared.reply) },
        'message deferred: it does not fit what this upstream connection announced',
      );
    } else if (prepared.reencoded) {
      this.logger.info(
        { upstream: this.name, ...hop, signatures: prepared.signatures, changes: prepared.changes },
        're-encoded and signed again for this upstream connection',
      );
    }
    return prepared;
  }

  /** What the host takes: as announced, with delivery.upstream.eightBitMime's override. */
  private withOverride(announced: Extensions): HopExtensions {
    const override = this.config.eightBitMime;
    const eightBitMime = override === 'auto' ? announced.eightBitMime : override;
    // RFC 6531 §3.1: SMTPUTF8 builds on 8BITMIME; without it, header text is made 7-bit too.
    return { eightBitMime, smtpUtf8: announced.smtpUtf8 && eightBitMime };
  }

  async close(): Promise<void> {
    this.closed = true;
    this.pool.close();
  }

  /** Learns the extensions again when a refusal asks for it; logs a failure on the relay's side once. */
  private failed(replies: FailureReply[], err: SendError): SmtpReply {
    if (replies.some((r) => r.relearn)) this.learned.relearn();
    const relaySide = replies.find((r) => r.relaySide);
    if (relaySide) {
      this.logger.error(
        { upstream: this.name, err: err.message, command: err.command, response: err.response, reply: replyLine(relaySide) },
        "upstream delivery failed on the relay's side",
      );
    }
    return plainReply(replies[0]!);
  }

  private probeIfDue(): void {
    if (!this.probing && !this.closed && this.learned.due(this.now())) void this.probe();
  }

  /** One probe at a time; never throws: a failure goes to the supervisor, once per cause. */
  private probe(): Promise<void> {
    this.probing ??= this.supervisor
      .run('extension-probe', async () => {
        let extensions: string[];
        try {
          extensions = await probeExtensions(this.probeTarget);
        } catch (err) {
          this.learned.failure(this.now());
          const why = failureReply(err as SendError, { kind: 'smart-host', side: this.side });
          throw new Error(`could not learn the extensions of ${this.name} (${replyText(why)}); assuming 7-bit and no SMTPUTF8 until it answers`);
        }
        this.record(extensions, 'probe');
      })
      .then(() => undefined)
      .finally(() => {
        this.probing = null;
      });
    return this.probing;
  }

  private record(extensions: string[], source: string): void {
    const first = !this.learned.known;
    const changed = this.learned.answer(extensions, this.now());
    if (first || changed) {
      const { eightBitMime, smtpUtf8 } = this.learned.extensions;
      this.logger.info(
        { upstream: this.name, source, eightBitMime, smtpUtf8, override: this.config.eightBitMime === 'auto' ? undefined : this.config.eightBitMime },
        changed ? 'upstream extensions changed' : 'upstream extensions learned',
      );
    }
  }
}

/**
 * The address as RCPT TO names it: an internationalized domain after an ASCII
 * local part goes as its A-labels, as it always has to the smart host.
 */
function sentAddress(address: string): string {
  return NON_ASCII.test(address) ? envelopeAddress(address) : address;
}

/** Each recipient's NOTIFY and ORCPT, by the address its RCPT TO will name. */
function sentDsn(envelope: Envelope): Pick<Envelope, 'dsn'> {
  const { dsn } = envelope;
  if (!dsn?.recipients) return {};
  return { dsn: { ...dsn, recipients: new Map([...dsn.recipients].map(([address, own]) => [sentAddress(address), own])) } };
}

/** The host closed the connection (or said it would, 421) before answering for the message. */
function closedByHost(err: SendError): boolean {
  return err.responseCode === 421 || (!err.responseCode && (err.code === 'ECONNECTION' || err.code === 'ESOCKET'));
}
