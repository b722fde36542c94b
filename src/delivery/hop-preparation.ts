// Preparing one message for the next hop that will carry it: looked at only
// as far as the hop's extensions require, sent as it is when it fits (the
// common case), else re-encoded to what the hop takes and signed again
// (formForHop decides). The spooled message is never changed: the re-encoded
// form is written beside the intake files and removed once the delivery is
// over.
//
// Re-encoding is the intake's own path, run on the message as signed minus
// the relay's own fields on top: receiveMessage (a large message goes to a
// file as it is read), then processMessage with the hop's extensions, which
// normalizes in the normalization thread, signs with the domain's active
// keys and self-checks. Memory stays bounded whatever the message size.
import { isAscii } from 'node:buffer';
import type { Config } from '../config/schema.ts';
import { parseTagList } from '../dns/tag-list.ts';
import type { KeyStore } from '../keys/key-store.ts';
import { fieldValue, HeaderSyntaxError, parseHeader, type HeaderField } from '../message/header.ts';
import { headerFields, readHeaderBlock, type IncomingMessage } from '../message/incoming.ts';
import { bufferOctets, hasEightBit, joinOctets, type Octets } from '../message/octets.ts';
import { processMessage } from '../pipeline/pipeline.ts';
import { intakeDir, receiveMessage } from '../message/intake.ts';
import { replyLine, type SmtpReply } from '../smtp/reply.ts';
import { cannotPrepare, formForHop, needsSmtpUtf8, type HopExtensions, type MessageFacts } from './hop-form.ts';
import type { Envelope, OwnSignature } from './upstream.ts';

export interface PreparationDeps {
  store: KeyStore;
  config: Pick<Config, 'signing' | 'selfCheck' | 'headers' | 'normalize' | 'queue'>;
  hostname: string;
}

export type Prepared =
  | { ok: true; octets: Octets; eightBit: boolean; reencoded: false }
  | { ok: true; octets: Octets; eightBit: boolean; reencoded: true; changes: string[]; signatures: string[] }
  | { ok: false; reply: SmtpReply };

/** Our Received:, the self-check trace field and our signatures sit above the message as signed; this much more header is read. */
const OWN_FIELDS_ALLOWANCE = 64 * 1024;
const NON_ASCII = /[^\x00-\x7f]/;

/**
 * One message on its way out: its form for each set of extensions is made
 * at most once (a message moved to another connection asks again).
 * `release()` removes what re-encoding wrote; call it once the delivery is over.
 */
export class MessageForms {
  readonly #deps: PreparationDeps | null;
  readonly #envelope: Envelope;
  readonly #octets: Octets;
  readonly #signedBy: readonly OwnSignature[] | undefined;
  readonly #dualSign: boolean;
  readonly #made = new Map<string, Promise<Prepared>>();
  readonly #files: IncomingMessage[] = [];
  #header: Promise<Buffer> | null = null;
  #eightBit: Promise<boolean> | null = null;

  /**
   * `deps`: null where nothing can be signed again (a message that needs it is deferred).
   * `signedBy`: the relay's own signatures on the message; undefined when not known.
   */
  constructor(deps: PreparationDeps | null, message: { envelope: Envelope; octets: Octets; signedBy: readonly OwnSignature[] | undefined; dualSign: boolean }) {
    this.#deps = deps;
    this.#envelope = message.envelope;
    this.#octets = message.octets;
    this.#signedBy = message.signedBy;
    this.#dualSign = message.dualSign;
  }

  /** The message as a hop with these extensions must get it; `host` names the hop in replies ("Upstream relay.example.net"). */
  form(hop: HopExtensions, host: string): Promise<Prepared> {
    const key = `${hop.eightBitMime} ${hop.smtpUtf8}`;
    let made = this.#made.get(key);
    if (!made) {
      made = this.#make(hop, host).catch((err: Error) => ({ ok: false as const, reply: cannotPrepare(host, hop, err.message) }));
      this.#made.set(key, made);
    }
    return made;
  }

  async release(): Promise<void> {
    await Promise.all([...this.#made.values()]);
    await Promise.all(this.#files.splice(0).map((m) => m.discard()));
  }

  async #make(hop: HopExtensions, host: string): Promise<Prepared> {
    const form = formForHop(await this.#facts(hop), hop, host);
    if (form.action === 'send') return { ok: true, octets: this.#octets, eightBit: form.eightBit, reencoded: false };
    if (form.action === 'defer') return { ok: false, reply: form.reply };
    return this.#reencode(form.hop, host);
  }

  /** Only what the hop lacks is looked for: a hop with 8BITMIME takes 8-bit octets wherever they are. */
  async #facts(hop: HopExtensions): Promise<MessageFacts> {
    const { from, to } = this.#envelope;
    const internationalAddress = [from, ...to].find((address) => NON_ASCII.test(address)) ?? null;
    const headerEightBit = hop.smtpUtf8 && hop.eightBitMime ? false : !isAscii(await this.#headerBlock());
    const eightBit = hop.eightBitMime ? true : await (this.#eightBit ??= hasEightBit(this.#octets));
    return { internationalAddress, headerEightBit, eightBit };
  }

  #headerBlock(): Promise<Buffer> {
    const limit = (this.#deps?.config.headers.maxSize ?? 0) + OWN_FIELDS_ALLOWANCE;
    return (this.#header ??= readHeaderBlock(this.#octets, limit));
  }

  async #reencode(hop: HopExtensions, host: string): Promise<Prepared> {
    const fail = (why: string): Prepared => ({ ok: false, reply: cannotPrepare(host, hop, why) });
    const deps = this.#deps;
    if (!deps) return fail('this upstream cannot sign messages again');
    const signedBy = this.#signedBy;
    if (!signedBy) return fail("the relay's own signatures on it are not known");
    const header = await this.#headerBlock();
    // readHeaderBlock stops at the limit: a header that reaches it was cut.
    if (header.length >= deps.config.headers.maxSize + OWN_FIELDS_ALLOWANCE) return fail('its header is larger than headers.maxSize');
    let fields: HeaderField[];
    try {
      fields = parseHeader(headerFields(header));
    } catch (err) {
      if (err instanceof HeaderSyntaxError) return fail(`malformed header: ${err.message}`);
      throw err;
    }
    const own = ownFields(fields, signedBy);
    if (signedBy.length > 0 && own.signatures === 0) return fail("the relay's own DKIM-Signature is not at the top of it");
    const domain = signedBy[0]?.domain;

    // The message as it was signed, without our fields on top, read the way the intake reads a message.
    const received = await receiveMessage(withoutStart(this.#octets, own.length), {
      maxSize: Infinity,
      maxHeader: deps.config.headers.maxSize,
      dir: intakeDir(deps.config.queue.dir),
    });
    if (!received.ok) return fail('it could not be read');
    this.#files.push(received.message);
    const outcome = await processMessage(received.message, {
      store: deps.store,
      config: deps.config,
      upstream: { dualSign: this.#dualSign, eightBitMime: hop.eightBitMime, smtpUtf8: hop.smtpUtf8 },
      hostname: deps.hostname,
      domain,
    });
    if (outcome.action === 'refuse') {
      // An address in the header cannot be made 7-bit: the hop must announce SMTPUTF8 (RFC 6531 §3.5).
      if (outcome.reply.enhanced === '5.6.7') return { ok: false, reply: needsSmtpUtf8(host, 'an address in its header') };
      return fail(replyLine(outcome.reply));
    }
    // Never unsigned: a message the relay signed goes out signed, or not at all.
    if (domain !== undefined && outcome.signatures.length === 0) return fail(`no active DKIM key for ${domain} any more`);
    return {
      ok: true,
      octets: joinOctets(bufferOctets(own.trace), outcome.message),
      eightBit: hop.eightBitMime,
      reencoded: true,
      changes: outcome.changes,
      signatures: outcome.signatures.map((s) => `d=${s.domain} s=${s.selector} a=${s.algorithm}`),
    };
  }
}

/**
 * The relay's own fields at the top of a message it signed (RFC 5321 §4.4:
 * trace on top): its Received:, the self-check's X-DKIM-Relay-Check:, and its
 * DKIM-Signature: fields, those whose d= and s= are in `signedBy`. Foreign
 * signatures below them stay. `length`: the octets they take; `trace`: the
 * Received: fields among them, kept above the new signature.
 */
export function ownFields(fields: readonly HeaderField[], signedBy: readonly OwnSignature[]): { length: number; trace: Buffer; signatures: number } {
  const isOwnSignature = (field: HeaderField): boolean => {
    if (field.key !== 'dkim-signature') return false;
    const tags = parseTagList(fieldValue(field).replace(/\r\n/g, ''));
    if (!tags.ok) return false;
    const d = tags.tags.get('d')?.toLowerCase();
    const s = tags.tags.get('s');
    return signedBy.some((own) => own.domain.toLowerCase() === d && own.selector === s);
  };
  let end = 0;
  let signatures = 0;
  for (let at = 0; at < fields.length; at++) {
    const field = fields[at]!;
    if (isOwnSignature(field)) {
      signatures++;
      end = at + 1;
    } else if (field.key !== 'received' && field.key !== 'x-dkim-relay-check') break;
  }
  // Without a signature of ours there is nothing of ours to take off (the message went unsigned).
  const top = signatures > 0 ? fields.slice(0, end) : [];
  const length = top.reduce((sum, f) => sum + f.raw.length + 2, 0);
  const trace = top
    .filter((f) => f.key === 'received')
    .map((f) => `${f.raw}\r\n`)
    .join('');
  return { length, trace: Buffer.from(trace, 'latin1'), signatures };
}

/** The octets after the first `skip`, each chunk a copy (receiveMessage may keep them). */
async function* withoutStart(octets: Octets, skip: number): AsyncGenerator<Buffer> {
  let at = 0;
  for await (const chunk of octets.chunks()) {
    const from = Math.max(0, skip - at);
    at += chunk.length;
    if (from < chunk.length) yield Buffer.from(chunk.subarray(from));
  }
}
