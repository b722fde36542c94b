// Who may send, and what MAIL FROM and RCPT TO may carry: the parameters we
// honour (SIZE, BODY=8BITMIME, SMTPUTF8, AUTH=; RFC 3461 DSN parameters in
// queue mode), addresses that are valid UTF-8, and the envelope a DATA takes
// with it.
import type { SMTPServerOptions, SMTPServerSession } from 'smtp-server';
import type { SenderAuthorization } from '../access/sender-authorization.ts';
import type { Logger } from '../common/logger.ts';
import type { NetworkList } from '../common/networks.ts';
import { dsnProblem } from './dsn-parameters.ts';
import { later, reply } from './handler-reply.ts';
import type { IntakeEnvelope } from './relay-message.ts';

/** MAIL FROM parameters we honour (AUTH=: RFC 4954 §5); smtp-server passes unknown ones through silently. */
const MAIL_PARAMETERS = new Set(['SIZE', 'BODY', 'SMTPUTF8', 'AUTH']);
/** RFC 3461 parameters, honoured in queue mode, where the relay itself may have to report on delivery. */
const DSN_MAIL_PARAMETERS = ['RET', 'ENVID'];
const DSN_RCPT_PARAMETERS = new Set(['NOTIFY', 'ORCPT']);

/** smtp-server decodes command lines as UTF-8; octets that are not UTF-8 become U+FFFD. */
const UNDECODABLE = '\ufffd';

export interface EnvelopePolicyOptions {
  /** access.networks: clients that relay without AUTH. */
  networks: NetworkList;
  /** Whether access.users lists anyone, so a refused client can be told to authenticate. */
  hasUsers: boolean;
  senders: SenderAuthorization;
  logger: Logger;
  /** Queue mode: the RFC 3461 parameters are taken, since only the queue can honour them (RFC 3461 §4). */
  dsn: boolean;
}

export function envelopePolicy(options: EnvelopePolicyOptions): Required<Pick<SMTPServerOptions, 'onMailFrom' | 'onRcptTo'>> {
  const { networks, logger } = options;
  const mailParameters = options.dsn ? new Set([...MAIL_PARAMETERS, ...DSN_MAIL_PARAMETERS]) : MAIL_PARAMETERS;
  return {
    onMailFrom(address, session, callback) {
      const unknown = Object.keys(address.args || {}).find((name) => !mailParameters.has(name.toUpperCase()));
      if (unknown) return later(callback, reply(555, `5.5.4 MAIL FROM parameter ${unknown} is not supported`));
      const badDsn = options.dsn && dsnProblem(address.args || {});
      if (badDsn) return later(callback, reply(501, `5.5.4 ${badDsn}`));
      if (address.address.includes(UNDECODABLE)) return later(callback, reply(553, '5.1.7 The sender address is not valid UTF-8'));
      if (session.user || networks.includes(session.remoteAddress)) {
        const refusal = options.senders.envelopeRefusal({ address: session.remoteAddress, user: session.user as string | undefined }, address.address);
        if (refusal)
          logger.warn(
            { client: session.remoteAddress, user: session.user, from: address.address },
            "envelope sender refused: not in the client's clients[].domains",
          );
        return later(callback, refusal ? reply(550, `5.7.1 ${refusal}`) : undefined);
      }
      logger.warn({ client: session.remoteAddress, from: address.address }, 'relay refused');
      if (options.hasUsers) return later(callback, reply(530, '5.7.0 Authentication required'));
      later(callback, reply(550, `5.7.1 Relaying denied: ${session.remoteAddress} is not an allowed network`));
    },

    onRcptTo(address, _session, callback) {
      const unknown = Object.keys(address.args || {}).find((name) => !(options.dsn && DSN_RCPT_PARAMETERS.has(name.toUpperCase())));
      if (unknown) return later(callback, reply(555, `5.5.4 RCPT TO parameter ${unknown} is not supported`));
      const badDsn = options.dsn && dsnProblem(address.args || {});
      if (badDsn) return later(callback, reply(501, `5.5.4 ${badDsn}`));
      if (address.address.includes(UNDECODABLE)) return later(callback, reply(553, '5.1.3 The recipient address is not valid UTF-8'));
      later(callback);
    },
  };
}

/**
 * The envelope of the message a DATA begins, with its RFC 3461 parameters.
 * Taken when DATA begins, not at its end: a client that pipelines the next
 * transaction right after the final dot changes session.envelope before then.
 */
export function intakeEnvelope(session: SMTPServerSession): IntakeEnvelope {
  const dsn = session.envelope.dsn;
  return {
    from: session.envelope.mailFrom ? session.envelope.mailFrom.address : '',
    to: session.envelope.rcptTo.map((r) => r.address),
    ret: dsn?.ret === 'FULL' || dsn?.ret === 'HDRS' ? dsn.ret : undefined,
    envid: dsn?.envid ?? undefined,
    recipients: session.envelope.rcptTo.map((r) => ({ address: r.address, notify: r.dsn?.notify, orcpt: r.dsn?.orcpt })),
  };
}
