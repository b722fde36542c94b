// Why the relay refused a message, as one word of a fixed list: the label of
// dkim_relay_messages_refused_total. A metric label must come from a bounded
// set, and the reply text quotes parts of the message, so the reason is read
// from the reply's enhanced status code (RFC 3463) and its fixed opening words,
// never from the quoted parts.

export const REFUSAL_REASONS = [
  /** Header over headers.maxSize, maxLines or maxCount (5.3.4). */
  'too-large',
  /** A header that does not parse. */
  'malformed-header',
  /** From: (or Sender:) that cannot be read safely, or names no single domain. */
  'unusable-from',
  /** A second copy of a single-instance field. */
  'duplicate-header',
  /** The client may not send as this From: domain (`clients`). */
  'sender-not-allowed',
  /** No active key and signing.unknownDomain is reject or tempfail. */
  'no-key',
  /** The domain's active key file cannot be used (4xx until mended). */
  'key-unavailable',
  /** The relay's own signature did not verify (selfCheck.onFailure tempfail or reject). */
  'self-check',
  /** The content cannot be made to survive transit (normalize refuses, or must wait for the upstream's extensions). */
  'content',
  /** More Received: fields than headers.maxHops: the message is looping (5.4.6). */
  'mail-loop',
  /** Anything else; a new reply text that lands here needs a reason of its own. */
  'other',
] as const;

export type RefusalReason = (typeof REFUSAL_REASONS)[number];

/** The reason of a refusal made by processMessage, from its reply code and text. */
export function refusalReason(code: number, text: string): RefusalReason {
  const status = /^([245]\.\d{1,3}\.\d{1,3})\s/.exec(text)?.[1]?.slice(2);
  const words = text.slice(text.indexOf(' ') + 1);
  if (status === '3.4') return 'too-large';
  if (status === '4.6') return 'mail-loop';
  if (status === '7.5') return 'self-check';
  if (status === '6.0' && words.startsWith('Malformed header')) return 'malformed-header';
  if (status === '6.0' && words.startsWith('Cannot sign:')) return 'unusable-from';
  if (status === '6.0' && words.startsWith('The message has ')) return 'duplicate-header';
  if (status === '7.1') return words.startsWith('no active DKIM key') ? 'no-key' : 'sender-not-allowed';
  if (status === '3.0' && words.startsWith('The DKIM key of ')) return 'key-unavailable';
  if (status?.startsWith('6.') || (status === '3.0' && code === 451)) return 'content';
  return 'other';
}
