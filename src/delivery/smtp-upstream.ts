// The `smtp` upstream: a smart host reached through a pooled nodemailer
// transport (smtp-server holds each new connection's greeting 100 ms, so
// pooling is what makes throughput).
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
import nodemailer, { type Transporter } from 'nodemailer';
import type { UpstreamConfig } from '../config/schema.ts';
import { Readable } from 'node:stream';
import { octetStream, type Octets } from '../message/octets.ts';
import type { Logger } from '../common/logger.ts';
import type { UpstreamTraits } from '../pipeline/pipeline.ts';
import { probeExtensions, type ProbeTarget } from './extension-probe.ts';
import type { HopExtensions } from './hop-form.ts';
import { MessageForms, type PreparationDeps } from './hop-preparation.ts';
import { failureReply, plainReply, type FailureReply, type SendError, type UpstreamSide } from './failure-reply.ts';
import { extensionsOf, LearnedExtensions, type Extensions } from './learned-extensions.ts';
import {
  announcedExtensions,
  choosePerConnection,
  connectionSocket,
  envelopeAddress,
  pooledConnections,
  RCPT_DSN,
  type ConnectionMessage,
  type RcptDsn,
  type SMTPConnection,
} from '../smtp/nodemailer-internals.ts';
import { Supervisor } from '../common/supervisor.ts';
import { combinedReply, parseReply, replyLine, replyText, type RemoteHost, type SmtpReply } from '../smtp/reply.ts';
import { forAll, type Envelope, type OwnSignature, type Upstream, type UpstreamReply } from './upstream.ts';

type SmtpConfig = Extract<UpstreamConfig, { type: 'smtp' }>;

/** How long an EHLO answer is trusted, and how soon a failed probe is tried again. */
export const REFRESH_MS = 5 * 60_000;
export const RETRY_MS = 30_000;
/** Messages arriving before the first answer wait for it at most this long. */
const FIRST_ANSWER_WAIT_MS = 10_000;

/** Why a send failed before anything of it reached the host: the message does not fit this connection now. */
class NotForThisConnection extends Error {
  readonly reply: SmtpReply;
  constructor(reply: SmtpReply) {
    super(reply.text);
    this.reply = reply;
  }
}

export class SmtpUpstream implements Upstream {
  readonly name;
  private readonly transport: Transporter;
  private readonly side: UpstreamSide;
  private readonly probeTarget: ProbeTarget;
  private readonly learned: LearnedExtensions;
  private readonly seen = new WeakSet<SMTPConnection>();
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
    this.transport = nodemailer.createTransport({
      host: config.host,
      port: config.port,
      secure: config.secure,
      requireTLS: config.requireTLS,
      auth: config.auth,
      // Without it nodemailer skips a login the host does not offer and sends unauthenticated.
      forceAuth: config.auth !== undefined,
      name: config.name,
      pool: true,
      maxConnections: config.maxConnections,
      // nodemailer closes a pooled connection after 100 messages by default; the message that
      // meets the new one waits for its greeting (smtp-server holds it 100 ms, Postfix's
      // postscreen longer). Connections are kept instead, as Postfix's smtp reuses its own;
      // one the host closes is opened again when needed.
      maxMessages: Infinity,
      tls,
      connectionTimeout: timeout,
      greetingTimeout: timeout,
      socketTimeout: timeout,
      logger: false,
    });
    choosePerConnection(this.transport);
    this.transport.on('error', (err) => logger.warn({ err: err.message, upstream: this.name }, 'upstream pool error'));
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
    /** The host as the connection that carries the message reached it: where its replies come from. */
    let remote: RemoteHost | undefined;
    try {
      const info = await this.transport.sendMail({
        envelope: { from: envelope.from, to: envelope.to, ...rcptDsn(envelope) },
        raw: UNPREPARED(),
        forConnection: (connection: SMTPConnection) => {
          const address = connectionSocket(connection)?.remoteAddress;
          remote = address ? { host: this.config.host, address } : undefined;
          return this.forConnection(connection, forms);
        },
        // nodemailer sends these only when the host announces DSN (RFC 3461 §4).
        ...(envelope.dsn ? { dsn: { ret: envelope.dsn.ret, envid: envelope.dsn.envid } } : {}),
      } as never);
      this.learnFromConnections();
      const ok = parseReply(info.response, { remote, command: 'DATA' }) ?? { code: 250, enhanced: '2.0.0', text: 'Ok' };
      const rejected = (info.rejectedErrors ?? []) as SendError[];
      if (rejected.length === 0) return { ...ok, recipients: envelope.to.map((address) => ({ address, reply: ok })) };
      return this.refused(envelope, rejected, ok, remote);
    } catch (caught) {
      this.learnFromConnections();
      if (caught instanceof NotForThisConnection) return forAll(envelope, caught.reply);
      const err = caught as SendError;
      if (err.rejectedErrors?.length) return this.refused(envelope, err.rejectedErrors, null, remote);
      return forAll(envelope, this.failed([failureReply(err, { kind: 'smart-host', side: this.side, remote })], err));
    } finally {
      await forms.release();
    }
  }

  /**
   * Some recipients refused at RCPT TO (all of them when `accepted` is null):
   * each keeps its own refusal, the others what the transaction got.
   */
  private refused(envelope: Envelope, rejected: SendError[], accepted: SmtpReply | null, remote: RemoteHost | undefined): UpstreamReply {
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
    const recipients = envelope.to.map((address) => ({ address, reply: own(address) ?? fallback }));
    return { ...combinedReply(recipients), recipients };
  }

  /** What goes out on this connection, decided from its own EHLO answer, before MAIL FROM. */
  private async forConnection(connection: SMTPConnection, forms: MessageForms): Promise<ConnectionMessage | Error> {
    this.learnFrom(connection);
    const hop = this.withOverride(extensionsOf(announcedExtensions(connection)));
    const prepared = await forms.form(hop, `Upstream ${this.config.host}`);
    if (!prepared.ok) {
      this.logger.warn(
        { upstream: this.name, ...hop, reply: replyLine(prepared.reply) },
        'message deferred: it does not fit what this upstream connection announced',
      );
      return new NotForThisConnection(prepared.reply);
    }
    if (prepared.reencoded) {
      this.logger.info(
        { upstream: this.name, ...hop, signatures: prepared.signatures, changes: prepared.changes },
        're-encoded and signed again for this upstream connection',
      );
    }
    return { raw: octetStream(prepared.octets), size: prepared.octets.size, use8BitMime: prepared.eightBit };
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
    this.transport.close();
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

  /** A delivery connection opened since we last looked has a fresh EHLO answer. */
  private learnFromConnections(): void {
    for (const connection of pooledConnections(this.transport)) this.learnFrom(connection);
  }

  private learnFrom(connection: SMTPConnection): void {
    if (this.seen.has(connection)) return;
    this.seen.add(connection);
    this.record(announcedExtensions(connection), 'delivery connection');
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

/** Each recipient's NOTIFY and ORCPT, by the address its RCPT TO will name. */
function rcptDsn(envelope: Envelope): { [RCPT_DSN]?: Map<string, RcptDsn> } {
  const own = envelope.dsn?.recipients;
  if (!own) return {};
  return { [RCPT_DSN]: new Map([...own].map(([address, dsn]) => [envelopeAddress(address), dsn])) };
}

/** What nodemailer is given to send until the connection's own form replaces it: read without that, it fails the send. */
const UNPREPARED = (): Readable =>
  new Readable({
    read() {
      this.destroy(new Error('the message was not prepared for the upstream connection'));
    },
  });
