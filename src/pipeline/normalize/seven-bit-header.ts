// 8-bit octets in a header field, made 7-bit for an upstream without SMTPUTF8:
// text becomes RFC 2047 encoded-words, MIME parameters RFC 2231 values. An
// address cannot be encoded (RFC 6532 is the only way to carry it), nor can
// identifiers, dates or trace fields: those are refused.
import type { HeaderField } from '../../message/header.ts';
import { encodedWords, extendedParameter } from './encoded-words.ts';
import { has8bitText, tokenize, wordText, type Token } from './header-tokens.ts';
import { fieldLabel, Refusal } from './refusal.ts';

const ADDRESS_FIELDS = new Set([
  'from',
  'sender',
  'reply-to',
  'to',
  'cc',
  'bcc',
  'resent-from',
  'resent-sender',
  'resent-to',
  'resent-cc',
  'resent-bcc',
  'disposition-notification-to',
  'return-receipt-to',
  'errors-to',
  'mail-followup-to',
  'mail-reply-to',
  'list-id',
]);
const PARAMETER_FIELDS = new Set(['content-type', 'content-disposition']);
/** Structured fields with no place for an encoded-word. Anything unknown is unstructured (RFC 5322 §3.6.8). */
const OPAQUE_FIELDS = new Set([
  'date',
  'message-id',
  'in-reply-to',
  'references',
  'resent-date',
  'resent-message-id',
  'received',
  'return-path',
  'mime-version',
  'content-transfer-encoding',
  'content-id',
  'content-md5',
  'content-language',
  'content-location',
  'content-base',
  'dkim-signature',
  'domainkey-signature',
  'arc-seal',
  'arc-message-signature',
  'arc-authentication-results',
  'authentication-results',
  'received-spf',
  'list-unsubscribe',
  'list-unsubscribe-post',
  'list-post',
  'list-help',
  'list-subscribe',
  'list-archive',
  'list-owner',
  'original-message-id',
]);

interface Edit {
  start: number;
  end: number;
  text: string;
}

/** The field with its 8-bit text encoded, and what was encoded; throws a Refusal when it cannot be. */
export function sevenBitField(field: HeaderField): { raw: string; what: string } {
  const colon = field.raw.indexOf(':') + 1;
  const value = field.raw.slice(colon);
  const unsmtputf8 = (what: string): Refusal =>
    new Refusal(554, `5.6.7 ${what} in the ${fieldLabel(field.name)}: header holds 8-bit octets; it needs an SMTPUTF8 upstream`);
  let edits: Edit[];
  let what: string;
  if (ADDRESS_FIELDS.has(field.key)) {
    edits = phraseEdits(value, 'addresses', () => unsmtputf8('An address'));
    what = 'display names';
  } else if (field.key === 'keywords') {
    edits = phraseEdits(value, 'phrases', () => unsmtputf8('A keyword'));
    what = 'keywords';
  } else if (PARAMETER_FIELDS.has(field.key)) {
    edits = parameterEdits(value, (why) => unsmtputf8(why));
    what = 'parameters';
  } else if (OPAQUE_FIELDS.has(field.key)) {
    throw unsmtputf8('The value');
  } else {
    edits = [textEdit(value)];
    what = 'text';
  }
  return { raw: field.raw.slice(0, colon) + applyEdits(value, edits), what };
}

function applyEdits(value: string, edits: Edit[]): string {
  let out = '';
  let at = 0;
  for (const e of [...edits].sort((a, b) => a.start - b.start)) {
    out += value.slice(at, e.start) + e.text;
    at = e.end;
  }
  return out + value.slice(at);
}

const octets = (text: string): Buffer => Buffer.from(text.replace(/\r\n/g, ''), 'latin1');
const isSpace = (c: string | undefined): boolean => c === ' ' || c === '\t' || c === '\r' || c === '\n';
const ENCODED_WORD = /^=\?[^?\s]+\?[bBqQ]\?[^?\s]*\?=$/;

/**
 * Unstructured text: one run of encoded-words from the start of the first word
 * with 8-bit octets to the end of the last. Whitespace between two encoded-words
 * vanishes when decoded, so a neighbouring encoded-word pulls the space into ours.
 */
function textEdit(value: string): Edit {
  let first = -1;
  let last = -1;
  for (let i = 0; i < value.length; i++) {
    if (value.charCodeAt(i) < 0x80) continue;
    if (first < 0) first = i;
    last = i;
  }
  let start = first;
  while (start > 0 && !isSpace(value[start - 1])) start--;
  let end = last + 1;
  while (end < value.length && !isSpace(value[end])) end++;
  // pull in the whitespace towards a neighbouring encoded-word, and keep one space as separator
  let before = start;
  while (before > 0 && isSpace(value[before - 1])) before--;
  let wordStart = before;
  while (wordStart > 0 && !isSpace(value[wordStart - 1])) wordStart--;
  const pullBefore = before < start && ENCODED_WORD.test(value.slice(wordStart, before));
  let after = end;
  while (after < value.length && isSpace(value[after])) after++;
  let wordEnd = after;
  while (wordEnd < value.length && !isSpace(value[wordEnd])) wordEnd++;
  const pullAfter = after > end && ENCODED_WORD.test(value.slice(after, wordEnd));
  if (pullBefore) start = before;
  if (pullAfter) end = after;
  const words = encodedWords(octets(value.slice(start, end)));
  return { start, end, text: (pullBefore ? ' ' : '') + words + (pullAfter ? ' ' : '') };
}

/**
 * Display names (before "<", or a group name before ":") and comments are
 * encoded; an 8-bit octet anywhere else is part of an address. In "phrases"
 * mode (Keywords:) every comma-separated item is a phrase.
 */
function phraseEdits(value: string, mode: 'addresses' | 'phrases', refuse: () => Refusal): Edit[] {
  const edits: Edit[] = [];
  const commentEdits: Edit[] = [];
  let segment: Token[] = [];
  const isSeparator = (t: Token): string | null => {
    if (t.kind !== 'special') return null;
    const c = value[t.start]!;
    return c === ',' || c === ';' || (c === ':' && mode === 'addresses') ? c : null;
  };
  const finish = (separator: string | null): void => {
    const words = segment.filter((t) => t.kind !== 'comment');
    const angle = words.findIndex((t) => t.kind === 'angle');
    const phraseEnd = mode === 'phrases' || separator === ':' ? words.length : angle;
    const phrase = phraseEnd > 0 ? words.slice(0, phraseEnd) : [];
    for (const t of words.slice(Math.max(phraseEnd, 0))) {
      if (has8bitText(value.slice(t.start, t.end))) throw refuse();
    }
    if (phrase.some((t) => has8bitText(value.slice(t.start, t.end)))) edits.push(phraseEdit(value, phrase, segment));
    segment = [];
  };
  for (const t of tokenize(value)) {
    const separator = isSeparator(t);
    if (separator) {
      finish(separator);
      continue;
    }
    if (t.kind === 'comment' && has8bitText(value.slice(t.start, t.end))) commentEdits.push(commentEdit(value, t));
    segment.push(t);
  }
  finish(null);
  // a comment inside a display name moved along with it (phraseEdit)
  return [...edits, ...commentEdits.filter((c) => !edits.some((e) => e.start <= c.start && c.end <= e.end))];
}

/** The words of a phrase, replaced by encoded-words; comments among them move behind. */
function phraseEdit(value: string, phrase: Token[], segment: Token[]): Edit {
  const start = phrase[0]!.start;
  const end = phrase[phrase.length - 1]!.end;
  const comments = segment.filter((t) => t.kind === 'comment' && t.start > start && t.end < end);
  const moved = comments.map((t) => ' ' + (has8bitText(value.slice(t.start, t.end)) ? commentEdit(value, t).text : value.slice(t.start, t.end)));
  return { start, end, text: encodedWords(octets(joinWords(value, phrase))) + moved.join('') };
}

/** The words' text, one space where the original had whitespace (or a comment) between them. */
function joinWords(value: string, words: Token[]): string {
  let text = '';
  words.forEach((t, i) => {
    if (i > 0 && t.start > words[i - 1]!.end) text += ' ';
    text += wordText(value, t);
  });
  return text;
}

function commentEdit(value: string, t: Token): Edit {
  const closed = value[t.end - 1] === ')' && t.end - t.start > 1;
  const inner = value.slice(t.start + 1, closed ? t.end - 1 : t.end);
  return { start: t.start, end: t.end, text: `(${encodedWords(octets(inner.replace(/\\(.)/gs, '$1')))})` };
}

/**
 * Content-Type / Content-Disposition: a parameter value with 8-bit octets
 * becomes an RFC 2231 extended value. The type itself, a parameter name, or the
 * boundary (which must match the delimiter lines in the body) cannot change.
 */
function parameterEdits(value: string, refuse: (why: string) => Refusal): Edit[] {
  const edits: Edit[] = [];
  const parameterEdit = (param: Token[]): void => {
    const text = param.map((t) => value.slice(t.start, t.end)).join('');
    if (!has8bitText(text)) return;
    const eq = param.findIndex((t) => isSpecial(value, t, '='));
    const name =
      eq > 0
        ? param
            .slice(0, eq)
            .map((t) => value.slice(t.start, t.end))
            .join('')
        : '';
    if (!/^[A-Za-z0-9!#$&+\-.^_`{|}~]+$/.test(name) || name.includes('*')) throw refuse('A parameter');
    if (name.toLowerCase() === 'boundary') throw refuse('The boundary parameter');
    const val = joinWords(value, param.slice(eq + 1));
    edits.push({ start: param[0]!.start, end: param[param.length - 1]!.end, text: extendedParameter(name, octets(val)) });
  };
  // The words of the parameter being read, comments left out; null in the type, before the first ";".
  let param: Token[] | null = null;
  for (const t of tokenize(value)) {
    if (isSpecial(value, t, ';')) {
      if (param) parameterEdit(param);
      param = [];
    } else if (!param) {
      if (has8bitText(value.slice(t.start, t.end))) throw refuse('The media type');
    } else if (t.kind !== 'comment') {
      param.push(t);
    }
  }
  if (param) parameterEdit(param);
  return edits;
}

const isSpecial = (value: string, t: Token, c: string): boolean => t.kind === 'special' && value[t.start] === c;
