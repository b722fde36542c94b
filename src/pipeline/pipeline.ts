// One message's way from "received" to "ready to deliver":
// normalize → choose the key → sign → self-check. The relay and the `sign`
// command both call processMessage, so they cannot drift apart.
import { replyText, smtpReply, type SmtpReply } from '../smtp/reply.ts';
import { setImmediate as yieldToEventLoop } from 'node:timers/promises';
import type { Config } from '../config/schema.ts';
import { KeyFileError } from '../keys/key-file.ts';
import type { ActiveKey } from '../keys/store.ts';
import type { KeyStore } from '../keys/key-store.ts';
import { fieldsNamed, HeaderSyntaxError, oversizedField, parseHeader, type HeaderField } from '../message/header.ts';
import { headerFields, messageFromBuffer, type IncomingMessage } from '../message/incoming.ts';
import { bufferOctets, joinOctets, type Octets } from '../message/octets.ts';
import { CryptoUnavailable } from '../signing/crypto-pool.ts';
import { hashOctets, signHashed } from '../signing/signer.ts';
import type { ClientChain } from '../access/sender-authorization.ts';
import { findAuthor } from './author.ts';
import { normalizeIncoming } from './normalize-incoming.ts';
import { MERGEABLE_FIELDS } from './normalize/merge-duplicates.ts';
import { selfCheck } from './self-check.ts';
import { signOptionsFor } from './signing-policy.ts';

/** What the next hop can take: a hop that must convert 8-bit data after signing breaks the signature (RFC 6376 §5.3). */
export interface UpstreamTraits {
  dualSign: boolean;
  /** 8BITMIME (RFC 6152). 'auto' where nothing could be learned (the `sign` command): taken as 7-bit, which every hop carries. */
  eightBitMime: boolean | 'auto';
  /** SMTPUTF8 (RFC 6531): 8-bit header text and addresses go as they are. Unset: as eightBitMime. */
  smtpUtf8?: boolean;
  /** The extensions are still a guess (the upstream has not answered yet): refuse nothing permanently on their account. */
  provisional?: boolean;
}

export interface PipelineContext {
  store: KeyStore;
  config: Pick<Config, 'signing' | 'selfCheck' | 'headers' | 'normalize'>;
  upstream: UpstreamTraits;
  /** Name used in the optional trace header. */
  hostname: string;
  /** `sign --domain D`: sign as D whatever From: says. */
  domain?: string;
  /** listen.maxMessageSize: a message re-encoded past it is refused. Unset: no limit (the `sign` command, the relay's own notices). */
  maxMessageSize?: number;
  /** Whether this client may send as this From: (or, with `field`, Sender:) domain: null when it may, else why not. */
  senderRefusal?: (domain: string, field?: 'Sender:') => string | null;
  /** The client signs with a chain of keys of its own (clients[].keys: own); unset: the domain's keys. */
  chain?: ClientChain;
}

export interface Report {
  fromDomain?: string;
  /** d=/s=/a= of each signature added. */
  signatures: { domain: string; selector: string; algorithm: string }[];
  selfCheck: 'pass' | 'fail' | 'unsigned';
  detail: string;
  /** Changes made to the message before signing. */
  changes: string[];
}

export type PipelineOutcome = ({ action: 'deliver'; message: Octets } & Report) | ({ action: 'refuse'; reply: SmtpReply } & Report);

/**
 * A Buffer is a whole message in memory; an IncomingMessage may have its
 * body in a file. The outcome's message may read from that file: discard
 * the incoming message only once the outcome's octets are spooled or sent.
 */
export async function processMessage(input: Buffer | IncomingMessage, ctx: PipelineContext): Promise<PipelineOutcome> {
  const incoming = Buffer.isBuffer(input) ? messageFromBuffer(input) : input;
  const changes: string[] = [];
  if (incoming.crlfFixed) changes.push('line endings normalised to CRLF');
  const report: Report = { signatures: [], selfCheck: 'unsigned', detail: '', changes };
  const refuse = (code: number, text: string): PipelineOutcome => ({ action: 'refuse', reply: smtpReply(code, text), ...report, detail: text });

  const header = headerFields(incoming.header);
  const limits = ctx.config.headers;
  if (incoming.headerCut) return refuse(552, `5.3.4 Header too large: more than ${limits.maxSize} octets`);
  if (header.length > limits.maxSize) return refuse(552, `5.3.4 Header too large: ${header.length} octets, at most ${limits.maxSize}`);
  // Checked before anything parses the header: mailauth's verifier joins folded lines in quadratic time.
  const lines = countLines(header);
  if (lines > limits.maxLines) return refuse(552, `5.3.4 Header too long: ${lines} lines, at most ${limits.maxLines}`);
  const oversized = oversizedField(header, limits.maxFieldSize);
  if (oversized) return refuse(552, `5.3.4 Header field too large: ${oversized.name} is ${oversized.size} octets, at most ${limits.maxFieldSize}`);
  let fields;
  try {
    fields = parseHeader(header);
  } catch (err) {
    if (err instanceof HeaderSyntaxError) return refuse(554, `5.6.0 Malformed header: ${err.message}`);
    throw err;
  }
  if (fields.length > limits.maxCount) return refuse(552, `5.3.4 Too many header fields: ${fields.length}, at most ${limits.maxCount}`);
  // RFC 5321 §6.3: counting Received: fields finds loops between mail systems (a smart host that
  // routes the domain back here); each pass would sign and queue the message again, for ever.
  const hops = fieldsNamed(fields, 'Received').length;
  if (hops > limits.maxHops) return refuse(554, `5.4.6 Mail loop: the message has passed ${hops} mail systems (Received: fields), at most ${limits.maxHops}`);
  const author = findAuthor(fields, limits);
  if (!author.ok) return refuse(550, `5.6.0 Cannot sign: ${author.problem}`);
  report.fromDomain = author.domain;
  // Copies of the address lists are merged by normalize() instead (headers.mergeDuplicates).
  const mergeable = limits.mergeDuplicates ? MERGEABLE_FIELDS.map((n) => n.toLowerCase()) : [];
  const duplicate = limits.rejectDuplicates
    ? findDuplicate(
        fields,
        limits.singleInstance.filter((n) => !mergeable.includes(n.toLowerCase())),
      )
    : null;
  if (duplicate) {
    return refuse(
      550,
      `5.6.0 The message has ${duplicate.count} ${duplicate.name}: headers; RFC 5322 allows one, and a second copy can forge a signed message`,
    );
  }
  // Sender: is shown to readers as who sent the mail on the author's behalf: held to the same domains as From:.
  const senderRefusal = ctx.senderRefusal?.(author.domain) ?? (author.senderDomains ?? []).map((d) => ctx.senderRefusal?.(d, 'Sender:')).find((r) => r);
  if (senderRefusal) return refuse(550, `5.7.1 ${senderRefusal}`);

  // Each step below may read up to headers.maxSize of header text: other sessions get their turn between them.
  await yieldToEventLoop();
  const found = findKeys(ctx, author.domain);
  // The store has logged which file and how to mend it; the client only learns to retry.
  if ('unavailable' in found) return refuse(451, `4.3.0 The DKIM key of ${found.unavailable} is unavailable, try again later`);
  const keys = chooseKeys(found.active, ctx.upstream);
  const why = `no active DKIM key ${found.client ? `of client ${found.client} ` : ''}for ${ctx.domain ?? author.domain}`;
  if (keys.length === 0 && ctx.config.signing.unknownDomain === 'reject') return refuse(550, `5.7.1 ${why}`);
  if (keys.length === 0 && ctx.config.signing.unknownDomain === 'tempfail') return refuse(451, `4.7.1 ${why}, try again later`);

  // Make the message survive transit first, then sign exactly that: the signature covers what leaves.
  const eightBitMime = ctx.upstream.eightBitMime === true;
  const normalized = await normalizeIncoming(incoming, {
    ...ctx.config.normalize,
    mergeDuplicates: limits.mergeDuplicates,
    eightBitMime,
    smtpUtf8: ctx.upstream.smtpUtf8 ?? eightBitMime,
    messageIdDomain: keys[0]?.domain ?? author.domain,
  });
  if (!normalized.ok && ctx.upstream.provisional && normalized.reply.enhanced === '5.6.7') {
    return refuse(451, '4.3.0 Whether the upstream takes SMTPUTF8 is not known yet, try again later');
  }
  if (!normalized.ok) return { action: 'refuse', reply: normalized.reply, ...report, detail: replyText(normalized.reply) };
  report.changes.push(...normalized.changes);
  const { body } = normalized;
  // Encoding 8-bit header text and refolding long lines add lines, and the self-check's
  // verifier (mailauth) joins folded lines in quadratic time: the input's bound holds for the output.
  const linesOut = normalized.header === incoming.header ? lines : countLines(normalized.header);
  if (linesOut > limits.maxLines)
    return refuse(552, `5.3.4 Header too long once refolded or encoded for the upstream: ${linesOut} lines, at most ${limits.maxLines}`);
  // Re-encoding for a 7-bit upstream makes a message larger: it must still be a size the relay takes, and hands on.
  const size = normalized.header.length + body.size;
  const { maxMessageSize } = ctx;
  if (maxMessageSize !== undefined && body !== incoming.body && size > maxMessageSize) {
    return refuse(
      552,
      `5.3.4 Message exceeds the maximum size of ${maxMessageSize} octets once re-encoded for the upstream (${size} octets): send large attachments 8-bit-free (base64) or smaller`,
    );
  }
  await yieldToEventLoop();
  if (keys.length === 0)
    return { action: 'deliver', message: joinOctets(bufferOctets(normalized.header), body), ...report, detail: `${why}: forwarded unsigned` };

  let signedHeader: Buffer;
  let check;
  try {
    // The fields parsed above still describe the header when normalize() left it as it was.
    const finalFields = normalized.header === incoming.header ? fields : parseHeader(headerFields(normalized.header));
    const options = signOptionsFor(ctx.config.signing, keys[0]!.domain);
    const hashed = await hashOctets(body, options.bodyCanonicalization);
    const signatureFields = await signHashed({ fields: finalFields, ...hashed }, keys, options);
    signedHeader = Buffer.concat([Buffer.from(signatureFields, 'latin1'), normalized.header]);
    report.signatures = keys.map((k) => ({ domain: k.domain, selector: k.selector, algorithm: k.algorithm === 'rsa' ? 'rsa-sha256' : 'ed25519-sha256' }));
    await yieldToEventLoop();
    check = await selfCheck({ header: signedHeader, body }, keys, ctx.store, ctx.config.selfCheck.alignment);
  } catch (err) {
    if (err instanceof CryptoUnavailable) return refuse(451, '4.3.0 Signing is unavailable for a moment, try again later');
    throw err;
  }
  report.selfCheck = check.pass ? 'pass' : 'fail';
  report.detail = check.detail;
  if (!check.pass) {
    const { onFailure } = ctx.config.selfCheck;
    if (onFailure === 'tempfail') return refuse(451, `4.7.5 DKIM self-check failed (${check.detail}), try again later`);
    if (onFailure === 'reject') return refuse(554, `5.7.5 DKIM self-check failed (${check.detail})`);
  }
  const trace = ctx.config.selfCheck.traceHeader
    ? Buffer.from(`X-DKIM-Relay-Check: ${ctx.hostname}; ${check.pass ? 'pass' : 'fail'}; ${check.detail}\r\n`, 'latin1')
    : null;
  return { action: 'deliver', message: joinOctets(bufferOctets(trace ? Buffer.concat([trace, signedHeader]) : signedHeader), body), ...report };
}

function countLines(header: Buffer): number {
  let lines = 0;
  for (let at = header.indexOf(0x0a); at >= 0; at = header.indexOf(0x0a, at + 1)) lines++;
  return lines;
}

function findDuplicate(fields: HeaderField[], singleInstance: string[]): { name: string; count: number } | null {
  for (const name of singleInstance) {
    const count = fieldsNamed(fields, name).length;
    if (count > 1) return { name, count };
  }
  return null;
}

interface FoundKeys {
  active: ActiveKey[];
  /** The client whose chain they are; unset: the domain's own chain. */
  client?: string;
}

/**
 * The active keys that sign mail from `fromDomain`: a client with a chain of
 * its own signs with it; when that chain has no active key (none yet, or
 * revoked) the domain's keys sign only if the client's whenNoKey says so,
 * else signing.unknownDomain applies. A key that cannot be loaded makes its
 * chain's mail wait: `unavailable` names the domain.
 */
function findKeys(ctx: PipelineContext, fromDomain: string): FoundKeys | { unavailable: string } {
  const { chain } = ctx;
  if (chain) {
    const domain = ctx.domain ?? ctx.store.signingDomainFor(fromDomain, chain.client);
    const active = domain ? loadActive(ctx.store, domain, chain.client) : [];
    if (!Array.isArray(active)) return active;
    if (active.length > 0 || chain.whenNoKey === 'unknownDomain') return { active, client: chain.client };
  }
  const domain = ctx.domain ?? ctx.store.signingDomainFor(fromDomain);
  const active = domain ? loadActive(ctx.store, domain) : [];
  return Array.isArray(active) ? { active } : active;
}

function loadActive(store: KeyStore, domain: string, client?: string): ActiveKey[] | { unavailable: string } {
  try {
    return store.activeKeys(domain, client);
  } catch (err) {
    if (err instanceof KeyFileError) return { unavailable: domain };
    throw err;
  }
}

/** Newest active key per algorithm; RSA alone when the upstream takes only one signature. */
function chooseKeys(active: ActiveKey[], upstream: UpstreamTraits): ActiveKey[] {
  const rsa = active.find((k) => k.algorithm === 'rsa');
  const ed25519 = active.find((k) => k.algorithm === 'ed25519');
  if (!upstream.dualSign) return [rsa ?? ed25519].filter((k): k is ActiveKey => k !== undefined);
  return [rsa, ed25519].filter((k): k is ActiveKey => k !== undefined);
}
