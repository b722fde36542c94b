// The `smtp` upstream: a smart host reached through a pooled nodemailer
// transport (smtp-server holds each new connection's greeting 100 ms, so
// pooling is what makes throughput). The signed bytes go out unchanged.
//
// What the host takes (8BITMIME, SMTPUTF8) is learned from its EHLO: a probe
// at start-up, again when the answer is older than REFRESH_MS (started by a
// message, never waited for by it), from every new delivery connection, and
// after a refusal that reads as a missing extension.
import { isIP } from 'node:net';
import nodemailer, { type Transporter } from 'nodemailer';
import type { UpstreamConfig } from '../config/schema.ts';
import { octetStream, type Octets } from '../message/octets.ts';
import type { Logger } from '../observability/logger.ts';
import type { UpstreamTraits } from '../pipeline/pipeline.ts';
import { probeExtensions, type ProbeTarget } from './extension-probe.ts';
import { failureReply, partialRefusal, splitReply, type FailureReply, type SendError, type UpstreamSide } from './failure-reply.ts';
import { LearnedExtensions } from './learned-extensions.ts';
import { announcedExtensions, pooledConnections, type SMTPConnection } from '../nodemailer-internals.ts';
import { Supervisor } from '../relay/supervisor.ts';
import { smtpReply, type SmtpReply } from '../smtp/reply.ts';
import { forAll, type Envelope, type Upstream, type UpstreamReply } from './upstream.ts';

type SmtpConfig = Extract<UpstreamConfig, { type: 'smtp' }>;

/** How long an EHLO answer is trusted, and how soon a failed probe is tried again. */
export const REFRESH_MS = 5 * 60_000;
export const RETRY_MS = 30_000;
/** Messages arriving before the first answer wait for it at most this long. */
const FIRST_ANSWER_WAIT_MS = 10_000;

const NON_ASCII = /[^\x00-\x7f]/;

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
  private readonly supervisor: Supervisor;

  constructor(config: SmtpConfig, logger: Logger, now: () => number = Date.now, supervisor = new Supervisor({ logger })) {
    this.config = config;
    this.logger = logger;
    this.now = now;
    this.supervisor = supervisor;
    this.name = `smtp ${config.host}:${config.port}`;
    const timeout = config.timeoutSeconds * 1000;
    // RFC 6066 §3: SNI carries host names only; nodemailer leaves it out for an address.
    const tls = { rejectUnauthorized: config.rejectUnauthorized, ...(isIP(config.host) ? {} : { servername: config.host }) };
    this.side = { host: config.host, port: config.port, user: config.auth?.user, requireTLS: config.requireTLS, secure: config.secure, name: config.name ?? 'this host' };
    this.probeTarget = { host: config.host, port: config.port, secure: config.secure, requireTLS: config.requireTLS, name: config.name, tls, timeoutMs: timeout };
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
    this.transport.on('error', (err) => logger.warn({ err: err.message, upstream: this.name }, 'upstream pool error'));
    this.learned = new LearnedExtensions(REFRESH_MS, RETRY_MS);
    const first = this.probe();
    this.firstAnswer = Promise.race([first, new Promise<void>((resolve) => setTimeout(resolve, FIRST_ANSWER_WAIT_MS).unref())]);
  }

  get traits(): UpstreamTraits {
    const { eightBitMime, smtpUtf8 } = this.learned.extensions;
    const override = this.config.eightBitMime;
    const eightBit = override === 'auto' ? eightBitMime : override;
    return {
      dualSign: this.config.dualSign,
      eightBitMime: eightBit,
      // RFC 6531 §3.1: SMTPUTF8 builds on 8BITMIME; without it, header text is made 7-bit too.
      smtpUtf8: smtpUtf8 && eightBit,
      provisional: !this.learned.known,
    };
  }

  /** Resolves once the upstream's extensions are known (or the first probe gave up, or waited long enough). */
  ready(): Promise<void> {
    return this.firstAnswer;
  }

  async deliver(envelope: Envelope, message: Octets): Promise<UpstreamReply> {
    this.probeIfDue();
    const traits = this.traits;
    const international = [envelope.from, ...envelope.to].find((address) => NON_ASCII.test(address));
    if (international !== undefined && !traits.smtpUtf8) {
      // RFC 6531 §3.4: without SMTPUTF8 such an address cannot be given to the host at all.
      if (traits.provisional) return forAll(envelope, smtpReply(451, `4.4.3 Whether upstream ${this.config.host} takes SMTPUTF8 is not known yet, try again later`));
      return forAll(envelope, smtpReply(553, `5.6.7 Upstream ${this.config.host} does not announce SMTPUTF8, so <${international}> cannot be delivered through it`));
    }
    try {
      const info = await this.transport.sendMail({
        envelope: { from: envelope.from, to: envelope.to, size: message.size, use8BitMime: traits.eightBitMime === true } as never,
        raw: octetStream(message),
        // nodemailer sends these only when the host announces DSN (RFC 3461 §4).
        ...(envelope.dsn ? { dsn: envelope.dsn } : {}),
      });
      this.learnFromConnections();
      const rejected = (info.rejectedErrors ?? []) as SendError[];
      const ok = replyOf(splitReply(info.response) ?? { code: 250, text: '2.0.0 Ok' });
      const overall = rejected.length > 0 ? this.failed(partialRefusal(rejected, info.accepted as string[], this.side), rejected[0]!) : ok;
      return { ...overall, recipients: this.perRecipient(envelope, rejected, ok) };
    } catch (caught) {
      this.learnFromConnections();
      const err = caught as SendError;
      if (err.rejectedErrors?.length) {
        const overall = this.failed(partialRefusal(err.rejectedErrors, [], this.side), err);
        return { ...overall, recipients: this.perRecipient(envelope, err.rejectedErrors, overall) };
      }
      return forAll(envelope, this.failed(failureReply(err, this.side), err));
    }
  }

  /** Each recipient's own reply: its refusal at RCPT TO, else what the transaction got. */
  private perRecipient(envelope: Envelope, rejected: SendError[], otherwise: SmtpReply): UpstreamReply['recipients'] {
    const refusals = new Map<string, SmtpReply>();
    for (const r of rejected) {
      const address = (r as { recipient?: string }).recipient;
      if (address === undefined) continue;
      const reply = r.response
        ? failureReply({ ...r, command: r.command ?? 'RCPT TO', responseCode: r.responseCode ?? splitReply(r.response)?.code }, this.side)
        : failureReply(r, this.side);
      refusals.set(address, replyOf(reply));
    }
    return envelope.to.map((address) => ({ address, reply: refusals.get(address) ?? otherwise }));
  }

  async close(): Promise<void> {
    this.closed = true;
    this.transport.close();
  }

  private failed(reply: FailureReply, err: SendError): SmtpReply {
    if (reply.relearn) this.learned.relearn();
    if (reply.relaySide) {
      this.logger.error({ upstream: this.name, err: err.message, command: err.command, response: err.response, reply: `${reply.code} ${reply.text}` }, 'upstream delivery failed on the relay\'s side');
    }
    return replyOf(reply);
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
          const why = failureReply(err as SendError, this.side);
          throw new Error(`could not learn the extensions of ${this.name} (${why.text}); assuming 7-bit and no SMTPUTF8 until it answers`);
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
    for (const connection of pooledConnections(this.transport)) {
      if (this.seen.has(connection)) continue;
      this.seen.add(connection);
      this.record(announcedExtensions(connection), 'delivery connection');
    }
  }

  private record(extensions: string[], source: string): void {
    const first = !this.learned.known;
    const changed = this.learned.answer(extensions, this.now());
    if (first || changed) {
      const { eightBitMime, smtpUtf8 } = this.learned.extensions;
      this.logger.info({ upstream: this.name, source, eightBitMime, smtpUtf8, override: this.config.eightBitMime === 'auto' ? undefined : this.config.eightBitMime }, changed ? 'upstream extensions changed' : 'upstream extensions learned');
    }
  }
}

function replyOf(reply: { code: number; text: string }): SmtpReply {
  return smtpReply(reply.code, reply.text);
}
