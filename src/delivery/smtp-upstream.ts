// The `smtp` upstream: a smart host reached through a pooled nodemailer
// transport (smtp-server holds each new connection's greeting 100 ms, so
// pooling is what makes throughput). The signed bytes go out unchanged.
import nodemailer, { type Transporter } from 'nodemailer';
import type { UpstreamConfig } from '../config/schema.ts';
import type { Logger } from '../observability/logger.ts';
import type { Envelope, Upstream, UpstreamReply } from './upstream.ts';

type SmtpConfig = Extract<UpstreamConfig, { type: 'smtp' }>;

interface SendFailure {
  code?: string;
  responseCode?: number;
  response?: string;
  message?: string;
  rejectedErrors?: { recipient?: string; responseCode?: number; response?: string }[];
}

export class SmtpUpstream implements Upstream {
  readonly traits;
  readonly name;
  private readonly transport: Transporter;

  constructor(config: SmtpConfig, logger: Logger) {
    this.traits = { dualSign: config.dualSign, eightBitMime: config.eightBitMime };
    this.name = `smtp ${config.host}:${config.port}`;
    const timeout = config.timeoutSeconds * 1000;
    this.transport = nodemailer.createTransport({
      host: config.host,
      port: config.port,
      secure: config.secure,
      requireTLS: config.requireTLS,
      auth: config.auth,
      name: config.name,
      pool: true,
      maxConnections: config.maxConnections,
      tls: { rejectUnauthorized: config.rejectUnauthorized, servername: config.host },
      connectionTimeout: timeout,
      greetingTimeout: timeout,
      socketTimeout: timeout,
      logger: false,
    });
    this.transport.on('error', (err) => logger.warn({ err: err.message, upstream: this.name }, 'upstream pool error'));
  }

  async deliver(envelope: Envelope, message: Buffer): Promise<UpstreamReply> {
    try {
      const info = await this.transport.sendMail({
        envelope: { from: envelope.from, to: envelope.to, size: message.length, use8BitMime: this.traits.eightBitMime } as never,
        raw: message,
      });
      const rejected = (info.rejectedErrors ?? []) as SendFailure[];
      if (rejected.length > 0) return partialRefusal(rejected, info.accepted as string[]);
      return split(info.response) ?? { code: 250, text: '2.0.0 Ok' };
    } catch (err) {
      return refusal(err as SendFailure);
    }
  }

  async close(): Promise<void> {
    this.transport.close();
  }
}

/** "250 2.0.0 Ok" → {250, "2.0.0 Ok"} */
function split(response: string | undefined): UpstreamReply | null {
  const match = /^(\d{3})[ -](.*)$/s.exec(response?.trim() ?? '');
  return match ? { code: Number(match[1]), text: match[2]!.replace(/\r?\n\d{3}[ -]/g, ' ') } : null;
}

/** An upstream refusal as the client should see it; no reply at all is a temporary failure. */
function refusal(err: SendFailure): UpstreamReply {
  const reply = split(err.response);
  if (reply && reply.code >= 400) return reply;
  if (err.rejectedErrors?.length) return partialRefusal(err.rejectedErrors, []);
  return { code: 451, text: `4.4.1 Upstream unavailable: ${err.message ?? err.code ?? 'unknown error'}` };
}

/**
 * Plain SMTP has one reply after DATA. When the upstream refused some
 * recipients, answering 250 would drop them silently; so the worst refusal is
 * passed on (a retry may duplicate the copies already accepted: never lost).
 */
function partialRefusal(rejected: SendFailure[], accepted: string[]): UpstreamReply {
  const replies = rejected.map((r) => split(r.response) ?? { code: r.responseCode ?? 451, text: r.message ?? 'refused' });
  const worst = replies.find((r) => r.code < 500) ?? replies[0]!;
  const already = accepted.length ? ` (already accepted for ${accepted.join(', ')})` : '';
  return { code: worst.code, text: worst.text + already };
}
