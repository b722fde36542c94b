// The interop corpus: every message the relay must handle, how it reaches
// the relay, which keys sign it and what must come out. Small messages are
// files in this folder (bytes exactly as a sender would emit them: CRLF, or
// deliberately not); big ones are made by generate.ts at test time.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { generate, type GeneratorName } from './generate.ts';

/** The signing domains of the test relay and their keys. */
export const KEY_SETS = {
  /** Dual-signed: RSA-2048 and Ed25519. */
  'example.com': [{ algorithm: 'rsa', bits: 2048 }, { algorithm: 'ed25519' }],
  'rsa1024.example': [{ algorithm: 'rsa', bits: 1024 }],
  'ed.example': [{ algorithm: 'ed25519' }],
  /** RSA alone, for the 25 MB message (each verification of it costs seconds). */
  'rsa2048.example': [{ algorithm: 'rsa', bits: 2048 }],
} as const satisfies Record<string, readonly ({ algorithm: 'rsa'; bits: number } | { algorithm: 'ed25519' })[]>;

export type KeySetName = keyof typeof KEY_SETS;

/** The a= each key set's signatures carry, top to bottom (RSA first when dual-signing). */
export function algorithmsOf(set: KeySetName): string[] {
  return KEY_SETS[set].map((k) => (k.algorithm === 'rsa' ? 'rsa-sha256' : 'ed25519-sha256'));
}

/**
 * Keys of third parties whose signatures are already in a corpus message:
 * they are published next to ours so the test can check those signatures
 * arrive untouched (they still verify). The private half was thrown away.
 */
export const FOREIGN_RECORDS: Record<string, string> = {
  'p2026._domainkey.partner.example':
    'v=DKIM1; k=rsa; p=MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAlgsPndSk1UNkroqCNE9r/RPPt1GlsRaazzlufVDQC+X2GOdjIDQ9isZAxPesTJIgsjYTdTmEtMn8ZLXcFA9sLlgFHO9LgzQ7+Vyt4W1kc74SrLhULnBZ2F3fRI52nshuCr+Bea4yf6YElzvsC/TwwHeLhSiW1dFQEh1iNRmuWi3fBP4cokF3AgH2MW1uADH+mJWUJ3XOHHvyJqhljPas0ze3PU4VDm/ptbLaKITmt1TOdX05w2Lfex4OJNz1IwIsRGFdjbnCuorGVengSZmYCnZAVEewSVoUWRKBV6PiQRy1b3CTOlm/2bz0hY/581fLPajA/0VW+CJCU02z4L2iXwIDAQAB',
};

export type Expected =
  /** Our signatures (those of `signer`) are added and verify. */
  | { outcome: 'signed'; signer: KeySetName }
  /** The client gets this reply code and the upstream nothing. */
  | { outcome: 'refused'; code: number }
  /** Arrives with no DKIM-Signature of ours. */
  | { outcome: 'forwarded-unsigned' };

/** Extra checks on the message as it arrives upstream. */
export type Check =
  | 'date-added'
  | 'message-id-added'
  | 'foreign-signature-kept'
  | 'long-line-reencoded'
  /** To an upstream with 8BITMIME the 8-bit body goes as it is (re-encoding is only for 7-bit upstreams). */
  | '8bit-kept';

export interface KnownIssue {
  verifier: 'dkimpy' | 'Mail::DKIM';
  /** Matches the verifier's detail for the signature(s) concerned. */
  detail: RegExp;
  why: string;
}

export interface CorpusCase {
  name: string;
  source: { file: string } | { generator: GeneratorName };
  about: string;
  envelope: { from: string; to: string[] };
  expect: Expected;
  /**
   * nodemailer: the `send` helper (it turns bare CR/LF into CRLF and adds a
   * final CRLF); raw: our own SMTP client, which sends the bytes as they are
   * (dot-stuffed, and ending in CRLF . CRLF as SMTP requires).
   */
  transport: 'nodemailer' | 'raw';
  /** 8-bit content: also relayed to an upstream without 8BITMIME, which must get 7-bit only. */
  eightBit?: boolean;
  /** The outcome through an upstream without 8BITMIME, when it differs from `expect`. */
  sevenBitUpstream?: Expected;
  /** Signatures already in the message before the relay (all must still verify). */
  foreignSignatures?: number;
  checks?: Check[];
  knownIssues?: KnownIssue[];
}

const to = ['bob@example.net'];
const anna = { from: 'anna@example.com', to };
const signedBy = (signer: KeySetName): Expected => ({ outcome: 'signed', signer });
const dual = signedBy('example.com');

export const CORPUS: CorpusCase[] = [
  { name: '01-plain-ascii', source: { file: '01-plain-ascii.eml' }, about: 'baseline: plain 7-bit text', envelope: anna, expect: dual, transport: 'nodemailer' },
  { name: '02-folded-headers', source: { file: '02-folded-headers.eml' }, about: 'From/To/Subject/Message-ID folded with tabs and runs of spaces', envelope: anna, expect: dual, transport: 'nodemailer' },
  { name: '03-subject-over-998', source: { file: '03-subject-over-998.eml' }, about: 'a Subject of ~1190 octets on one line: refolded before signing', envelope: anna, expect: dual, transport: 'nodemailer' },
  { name: '04-to-5000-folded', source: { file: '04-to-5000-folded.eml' }, about: 'a To: of over 5000 octets, folded after each address', envelope: anna, expect: dual, transport: 'nodemailer' },
  { name: '05-mixed-case-names', source: { file: '05-mixed-case-names.eml' }, about: '`from:`, `TO:`, `SUBJECT:`, no space or many spaces/tabs after the colon', envelope: anna, expect: dual, transport: 'nodemailer' },
  {
    name: '06-wsp-before-colon', source: { file: '06-wsp-before-colon.eml' }, about: '`To : x` and `Subject\\t: y`: the space before the colon is removed before signing (dkimpy cannot parse it)',
    envelope: anna, expect: dual, transport: 'nodemailer',
  },
  { name: '07-trailing-ws-body', source: { file: '07-trailing-ws-body.eml' }, about: 'trailing spaces and tabs on body lines, inner runs of WSP', envelope: anna, expect: dual, transport: 'nodemailer' },
  { name: '08-empty-body', source: { file: '08-empty-body.eml' }, about: 'header, blank line, nothing else', envelope: anna, expect: dual, transport: 'nodemailer' },
  { name: '09-only-blank-lines', source: { file: '09-only-blank-lines.eml' }, about: 'a body of only empty lines', envelope: anna, expect: dual, transport: 'nodemailer' },
  { name: '10-no-final-crlf', source: { file: '10-no-final-crlf.eml' }, about: 'the last body line has no CRLF', envelope: anna, expect: dual, transport: 'raw' },
  { name: '11-bare-lf', source: { file: '11-bare-lf.eml' }, about: 'LF line endings everywhere, a leading dot after a bare LF', envelope: anna, expect: dual, transport: 'raw' },
  { name: '12-bare-cr', source: { file: '12-bare-cr.eml' }, about: 'bare CR inside body lines and at a line end', envelope: anna, expect: dual, transport: 'raw' },
  { name: '13-leading-dots', source: { file: '13-leading-dots.eml' }, about: 'body lines `.`, `..`, `.x`, `...three`, `. x` (dot-stuffing both ways)', envelope: anna, expect: dual, transport: 'nodemailer' },
  { name: '14-utf8-body-no-mime', source: { file: '14-utf8-body-no-mime.eml' }, about: '8-bit UTF-8 body, no MIME headers at all', envelope: anna, expect: dual, transport: 'nodemailer', eightBit: true, checks: ['8bit-kept'] },
  {
    name: '15-smtputf8-address', source: { file: '15-smtputf8-address.eml' }, about: 'jörg@example.com in envelope and From:, zoë@example.net as recipient (SMTPUTF8)',
    envelope: { from: 'jörg@example.com', to: ['zoë@example.net'] }, expect: dual, transport: 'nodemailer',
    // An address cannot be made 7-bit, and SMTPUTF8 needs 8BITMIME (RFC 6531 §3.1): 554 5.6.7.
    eightBit: true, sevenBitUpstream: { outcome: 'refused', code: 554 },
  },
  { name: '16-rfc2047-utf8-b', source: { file: '16-rfc2047-utf8-b.eml' }, about: 'RFC 2047 B-encoded UTF-8 Subject and From display name', envelope: { from: 'joerg@example.com', to }, expect: dual, transport: 'nodemailer' },
  { name: '17-rfc2047-utf8-q', source: { file: '17-rfc2047-utf8-q.eml' }, about: 'RFC 2047 Q-encoded UTF-8 Subject in two folded encoded-words', envelope: anna, expect: dual, transport: 'nodemailer' },
  { name: '18-rfc2047-gb2312', source: { file: '18-rfc2047-gb2312.eml' }, about: 'GB2312 encoded-words in Subject and To, GB2312 base64 body', envelope: anna, expect: dual, transport: 'nodemailer' },
  { name: '19-multipart-alternative', source: { file: '19-multipart-alternative.eml' }, about: 'multipart/alternative: text and HTML, both quoted-printable', envelope: anna, expect: dual, transport: 'nodemailer' },
  { name: '20-pdf-2mb', source: { generator: 'pdf-2mb' }, about: 'multipart/mixed with a ~2 MB base64 PDF (generated bytes)', envelope: { from: 'ap@example.com', to: ['billing@supplier.example.net'] }, expect: dual, transport: 'nodemailer' },
  {
    name: '21-attachment-25mb', source: { generator: 'attachment-25mb' }, about: 'a 25 000 000-octet attachment (~34 MB as base64), one RSA-2048 signature',
    envelope: { from: 'backup@rsa2048.example', to: ['archive@example.net'] }, expect: signedBy('rsa2048.example'), transport: 'nodemailer',
  },
  { name: '22-tnef-winmail', source: { file: '22-tnef-winmail.eml' }, about: 'application/ms-tnef winmail.dat attachment', envelope: anna, expect: dual, transport: 'nodemailer' },
  { name: '23-exchange-headers', source: { file: '23-exchange-headers.eml' }, about: 'Thread-Topic, Thread-Index, X-MS-Exchange-*, X-MS-Has-Attach, Content-Language, accept-language; Latin-1 QP body', envelope: anna, expect: dual, transport: 'nodemailer' },
  { name: '24-missing-date', source: { file: '24-missing-date.eml' }, about: 'no Date: (a scanner): the relay adds one before signing', envelope: { from: 'scanner@example.com', to }, expect: dual, transport: 'nodemailer', checks: ['date-added'] },
  { name: '25-missing-message-id', source: { file: '25-missing-message-id.eml' }, about: 'no Message-ID: (an ERP): the relay adds one before signing', envelope: { from: 'erp@example.com', to }, expect: dual, transport: 'nodemailer', checks: ['message-id-added'] },
  { name: '26-subdomain-from', source: { file: '26-subdomain-from.eml' }, about: 'From: scanner@branch.example.com, signed d=example.com', envelope: { from: 'scanner@branch.example.com', to }, expect: dual, transport: 'nodemailer' },
  { name: '27-unknown-domain', source: { file: '27-unknown-domain.eml' }, about: 'From: domain with no key (unknownDomain: forward)', envelope: { from: 'someone@unknown.test', to }, expect: { outcome: 'forwarded-unsigned' }, transport: 'nodemailer' },
  { name: '28-nul-byte-body', source: { file: '28-nul-byte-body.eml' }, about: 'a NUL octet inside a body line', envelope: anna, expect: dual, transport: 'nodemailer' },
  { name: '29-headers-500', source: { generator: 'headers-500' }, about: '500 header fields (90 folded Received:, X- fields)', envelope: anna, expect: dual, transport: 'nodemailer' },
  { name: '30-long-body-line', source: { file: '30-long-body-line.eml' }, about: 'a 3000-octet body line in 7bit text: re-encoded (QP/base64) before signing', envelope: anna, expect: dual, transport: 'nodemailer', checks: ['long-line-reencoded'] },
  { name: '31-ndr-empty-sender', source: { file: '31-ndr-empty-sender.eml' }, about: 'NDR from postmaster: empty envelope sender, multipart/report delivery-status', envelope: { from: '', to: ['anna@example.com'] }, expect: dual, transport: 'nodemailer' },
  { name: '32-oof-auto-replied', source: { file: '32-oof-auto-replied.eml' }, about: 'Exchange out-of-office: empty envelope sender, Auto-Submitted: auto-replied', envelope: { from: '', to }, expect: dual, transport: 'nodemailer' },
  { name: '33-read-receipt', source: { file: '33-read-receipt.eml' }, about: 'read receipt: multipart/report; report-type=disposition-notification, empty envelope sender', envelope: { from: '', to }, expect: dual, transport: 'nodemailer' },
  { name: '34-two-from', source: { file: '34-two-from.eml' }, about: 'two From: headers', envelope: anna, expect: { outcome: 'refused', code: 550 }, transport: 'nodemailer' },
  { name: '35-two-subject', source: { file: '35-two-subject.eml' }, about: 'two Subject: headers', envelope: anna, expect: { outcome: 'refused', code: 550 }, transport: 'nodemailer' },
  { name: '36-no-from', source: { file: '36-no-from.eml' }, about: 'no From: header (only Sender:)', envelope: anna, expect: { outcome: 'refused', code: 550 }, transport: 'nodemailer' },
  {
    name: '37-foreign-dkim-signature', source: { file: '37-foreign-dkim-signature.eml' }, about: 'already signed d=partner.example (relaxed): kept byte for byte, ours added on top',
    envelope: anna, expect: dual, transport: 'nodemailer', foreignSignatures: 1, checks: ['foreign-signature-kept'],
  },
  { name: '38-quoted-printable', source: { file: '38-quoted-printable.eml' }, about: 'quoted-printable body: soft breaks, =20 and =09 at line ends', envelope: anna, expect: dual, transport: 'nodemailer' },
  { name: '39-wsp-only-line', source: { file: '39-wsp-only-line.eml' }, about: 'body lines of only spaces and tabs, one as the last line', envelope: anna, expect: dual, transport: 'nodemailer' },
  { name: '40-long-references', source: { file: '40-long-references.eml' }, about: 'References: with 60 message IDs (~3000 octets, folded)', envelope: anna, expect: dual, transport: 'nodemailer' },
  { name: '41-list-unsubscribe', source: { file: '41-list-unsubscribe.eml' }, about: 'List-Id, List-Unsubscribe (folded), List-Unsubscribe-Post: one-click', envelope: { from: 'news@example.com', to }, expect: dual, transport: 'nodemailer' },
  { name: '42-ed25519-only', source: { file: '42-ed25519-only.eml' }, about: 'From: ed.example, which has only an Ed25519 key', envelope: { from: 'ed@ed.example', to }, expect: signedBy('ed.example'), transport: 'nodemailer' },
  { name: '43-rsa1024', source: { file: '43-rsa1024.eml' }, about: 'From: rsa1024.example, an RSA-1024 key', envelope: { from: 'erp@rsa1024.example', to }, expect: signedBy('rsa1024.example'), transport: 'nodemailer' },
  { name: '44-utf8-8bit-multipart', source: { file: '44-utf8-8bit-multipart.eml' }, about: 'multipart/alternative, both parts Content-Transfer-Encoding: 8bit UTF-8', envelope: anna, expect: dual, transport: 'nodemailer', eightBit: true, checks: ['8bit-kept'] },
  { name: '45-latin1-8bit', source: { file: '45-latin1-8bit.eml' }, about: 'ISO-8859-1 text sent as 8bit', envelope: anna, expect: dual, transport: 'nodemailer', eightBit: true, checks: ['8bit-kept'] },
  { name: '46-fold-after-colon', source: { file: '46-fold-after-colon.eml' }, about: 'From/To/Subject folded right after the colon (a known canonicalization trap)', envelope: anna, expect: dual, transport: 'nodemailer' },
  {
    name: '47-8bit-long-line', source: { file: '47-8bit-long-line.eml' }, about: 'an 8-bit UTF-8 body line of 2400 octets: re-encoded before signing',
    envelope: anna, expect: dual, transport: 'nodemailer', eightBit: true, checks: ['long-line-reencoded'],
  },
  { name: '48-oof-tnef-empty-sender', source: { file: '48-oof-tnef-empty-sender.eml' }, about: 'Exchange OOF as a bare TNEF body (application/ms-tnef), empty envelope sender', envelope: { from: '', to: ['anna@example.net'] }, expect: dual, transport: 'nodemailer' },
];

const HERE = import.meta.dirname;

/** The message bytes of a case, exactly as the sender emits them. */
export function loadCase(c: CorpusCase): Buffer {
  return 'file' in c.source ? readFileSync(join(HERE, c.source.file)) : generate(c.source.generator);
}
