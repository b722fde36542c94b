// The form a message takes for one next hop, decided from what that hop
// announced in its EHLO on the very connection that will carry the message:
// a message signed for a host that announced 8BITMIME may meet one that no
// longer does, and 8-bit octets sent there are mangled (RFC 6152 §3), which
// breaks the signature (RFC 6376 §5.3). Pure: the looking and the re-encoding
// are done elsewhere (hop-preparation.ts).
import type { SmtpReply } from '../smtp/reply.ts';

/** What a next hop takes, as its EHLO announced it (with any configured override applied). */
export interface HopExtensions {
  eightBitMime: boolean;
  smtpUtf8: boolean;
}

export interface MessageFacts {
  /** The first envelope address that is not ASCII, or null. */
  internationalAddress: string | null;
  /** The header block holds 8-bit octets (UTF-8 header text, RFC 6532). */
  headerEightBit: boolean;
  /** The message holds 8-bit octets anywhere; true also where it was not looked for (a hop with 8BITMIME takes them anyway). */
  eightBit: boolean;
}

export type HopForm =
  /** As it is; `eightBit` asks for BODY=8BITMIME (RFC 6152 §2). */
  | { action: 'send'; eightBit: boolean }
  /** Made transfer-safe for a hop with these extensions, then signed again. */
  | { action: 'reencode'; hop: HopExtensions }
  /** Not now: the reply every recipient gets. */
  | { action: 'defer'; reply: SmtpReply };

/** The host as replies name it, e.g. "Upstream relay.example.net". */
export function formForHop(facts: MessageFacts, announced: HopExtensions, host: string): HopForm {
  // RFC 6531 §3.1: SMTPUTF8 builds on 8BITMIME; a host announcing one without the other gets neither.
  const hop = { eightBitMime: announced.eightBitMime, smtpUtf8: announced.smtpUtf8 && announced.eightBitMime };
  if (facts.internationalAddress !== null && !hop.smtpUtf8) {
    // RFC 6531 §3.4: such an address cannot be given to the host at all. Deferred rather than returned:
    // the host may announce SMTPUTF8 again; at queue.maxAge it is returned with 5.6.7 (RFC 6531 §3.5).
    return { action: 'defer', reply: needsSmtpUtf8(host, `<${facts.internationalAddress}>`) };
  }
  const headerFits = !facts.headerEightBit || hop.smtpUtf8;
  const bodyFits = !facts.eightBit || hop.eightBitMime;
  if (headerFits && bodyFits) return { action: 'send', eightBit: facts.eightBit && hop.eightBitMime };
  return { action: 'reencode', hop };
}

/** The deferral of mail that needs SMTPUTF8 from a host that does not announce it. */
export function needsSmtpUtf8(host: string, what: string): SmtpReply {
  return { code: 451, enhanced: '4.6.7', text: `${host} does not announce SMTPUTF8, which ${what} needs (RFC 6531)` };
}

/** The deferral of mail that could not be made fit for the hop: `why` says what stood in the way. */
export function cannotPrepare(host: string, hop: HopExtensions, why: string): SmtpReply {
  const lacking = [hop.eightBitMime ? null : '8BITMIME', hop.smtpUtf8 ? null : 'SMTPUTF8'].filter(Boolean).join(' or ');
  return {
    code: 451,
    enhanced: '4.3.0',
    text: `${host} does not announce ${lacking}, and the message could not be re-encoded and signed again for it: ${why}`,
  };
}
