// Messages for the fuzzer: a few valid seeds (plain, multipart, 8-bit, folded
// headers) and mutators that break them in the ways real senders and hostile
// clients do. Everything is bytes: what the server should receive after
// dot-unstuffing (the session code does the stuffing, or deliberately not).
import type { Rng } from './prng.ts';

const CRLF = '\r\n';

/** The From: domains the seeds use: signed (example.com and a subdomain), unsigned (example.org), IDN. */
export const FROM_DOMAINS = ['example.com', 'example.com', 'sub.example.com', 'EXAMPLE.COM', 'example.org', 'bücher.example', 'xn--bcher-kva.example'];

function date(rng: Rng): string {
  const d = new Date(Date.UTC(2020 + rng.int(8), rng.int(12), 1 + rng.int(28), rng.int(24), rng.int(60), rng.int(60)));
  return d.toUTCString().replace('GMT', '+0000');
}

function lines(...ls: string[]): string {
  return ls.join(CRLF) + CRLF;
}

function commonHeaders(rng: Rng, from: string): string[] {
  return [
    `From: ${rng.pick(['App', '"Fuzz, Tester"', '=?utf-8?q?F=C3=BCzz?=', ''])} <${from}>`.replace('From:  <', 'From: <'),
    `To: <dest${rng.int(100)}@example.net>`,
    `Subject: fuzz ${rng.alnum(8)}`,
    `Date: ${date(rng)}`,
    `Message-ID: <${rng.alnum(16)}@${from.slice(from.indexOf('@') + 1)}>`,
  ];
}

function base64Lines(data: Buffer): string {
  return (data.toString('base64').match(/.{1,76}/g) ?? []).join(CRLF);
}

export type SeedName = 'plain' | 'multipart' | 'eightbit' | 'folded' | 'minimal' | 'large';

export function seedMessage(rng: Rng, name: SeedName, from = `app${rng.int(10)}@${rng.pick(FROM_DOMAINS)}`): Buffer {
  switch (name) {
    case 'minimal':
      return Buffer.from(lines(`From: ${from}`, '', 'x'), 'latin1');
    case 'plain':
      return Buffer.from(
        lines(
          ...commonHeaders(rng, from),
          'MIME-Version: 1.0',
          'Content-Type: text/plain; charset=us-ascii',
          '',
          'Hello,',
          '',
          'this is a plain message.',
          '.leading dot',
          '..two dots',
          '',
          '-- ',
          'sig',
        ),
        'latin1',
      );
    case 'multipart': {
      const b = `b1_${rng.alnum(12)}`;
      const alt = `alt_${rng.alnum(6)}`;
      return Buffer.from(
        lines(
          ...commonHeaders(rng, from),
          'MIME-Version: 1.0',
          `Content-Type: multipart/mixed; boundary="${b}"`,
          '',
          'This is a multi-part message in MIME format.',
          `--${b}`,
          `Content-Type: multipart/alternative; boundary=${alt}`,
          '',
          `--${alt}`,
          'Content-Type: text/plain; charset=utf-8',
          'Content-Transfer-Encoding: quoted-printable',
          '',
          'Gr=C3=BC=C3=9Fe, soft break=',
          'here',
          `--${alt}`,
          'Content-Type: text/html; charset=utf-8',
          '',
          '<p>Hello <b>there</b></p>',
          `--${alt}--`,
          `--${b}`,
          'Content-Type: application/octet-stream; name="blob.bin"',
          'Content-Disposition: attachment; filename="blob.bin"',
          'Content-Transfer-Encoding: base64',
          '',
          base64Lines(rng.bytes(rng.range(0, 3000))),
          `--${b}--`,
          'epilogue',
        ),
        'latin1',
      );
    }
    case 'eightbit': {
      const utf8 = Buffer.from('Grüße aus Köln — ✉ 日本語 ', 'utf8').toString('latin1');
      return Buffer.from(
        lines(
          `From: Jürgen <${from}>`.replace('ü', '\xc3\xbc'),
          'To: <b@example.net>',
          `Subject: ${utf8}`,
          `Date: ${date(rng)}`,
          'MIME-Version: 1.0',
          'Content-Type: text/plain; charset=utf-8',
          'Content-Transfer-Encoding: 8bit',
          '',
          utf8,
          'latin1: \xe9\xe8\xfc \xff\xfe',
          utf8.repeat(rng.range(1, 40)),
        ),
        'latin1',
      );
    }
    case 'folded':
      return Buffer.from(
        lines(
          `From:\r\n  "Folded Name"\r\n\t<${from}>`,
          'To: a@example.net,\r\n b@example.net,\r\n\tc@example.net',
          'Subject: a subject that is folded\r\n   over three\r\n\t\tlines   with   odd   spacing   ',
          `References: ${Array.from({ length: rng.range(1, 30) }, () => `<${rng.alnum(20)}@example.com>`).join('\r\n ')}`,
          `Date: ${date(rng)}`,
          'X-Empty:',
          'X-Spaces:    ',
          'X-Tab-Name\t: value',
          '',
          'body with trailing spaces   ',
          'and\ttabs\t\t',
          '',
          '',
          '',
        ),
        'latin1',
      );
    case 'large': {
      // Near maxMessageSize (256 KiB): some over, some under.
      const target = rng.range(200, 320) * 1024;
      const head = lines(...commonHeaders(rng, from), '');
      const line = 'x'.repeat(rng.range(60, 990)) + CRLF;
      return Buffer.from(head + line.repeat(Math.max(1, Math.floor((target - head.length) / line.length))), 'latin1');
    }
  }
}

// ---- mutators ---------------------------------------------------------------

export interface Mutated {
  data: Buffer;
  /** What was done, for the failure report. */
  steps: string[];
}

type Mutator = (rng: Rng, msg: Buffer) => Buffer;

function headerEnd(msg: Buffer): number {
  const at = msg.indexOf('\r\n\r\n');
  return at < 0 ? msg.length : at + 2;
}

function headerLines(msg: Buffer): string[] {
  return msg
    .subarray(0, headerEnd(msg))
    .toString('latin1')
    .split(CRLF)
    .filter((l) => l !== '');
}

function withHeader(msg: Buffer, header: string): Buffer {
  const end = headerEnd(msg);
  return Buffer.concat([msg.subarray(0, end), Buffer.from(header, 'latin1'), msg.subarray(end)]);
}

function replaceFrom(msg: Buffer, from: string | null): Buffer {
  const text = msg.toString('latin1');
  const end = headerEnd(msg);
  const header = text.slice(0, end).replace(/^From:.*(\r\n[ \t].*)*\r\n/im, from === null ? '' : `From: ${from}\r\n`);
  return Buffer.from(header + text.slice(end), 'latin1');
}

function junkString(rng: Rng, n: number): string {
  return rng.bytes(n).toString('latin1');
}

export const FROM_VARIANTS: ((rng: Rng) => string | null)[] = [
  () => null, // no From at all
  () => '',
  () => 'app@example.com, other@example.org',
  () => 'app@example.com, second@example.com',
  () => 'Team: a@example.com, b@sub.example.com;',
  () => 'undisclosed-recipients:;',
  () => 'app@',
  () => 'app',
  () => '<@example.com>',
  () => '<>',
  () => '@',
  () => 'app@bücher.example',
  () => Buffer.from('app@bücher.example', 'utf8').toString('latin1'),
  () => 'app@xn--bcher-kva.example',
  () => 'app@example.com.',
  () => 'APP@EXAMPLE.COM',
  () => '"a@b" <"quoted@local"@example.com>',
  () => '(comment) app@example.com (another (nested) comment)',
  () => '=?utf-8?b?w7w=?= <app@example.com>',
  () => '=?utf-8?b?!!!not base64?= <app@example.com>',
  () => '"unterminated <app@example.com>',
  () => '<app@example.com',
  () => 'app@example.com>',
  () => '<<<<app@example.com>>>>',
  () => 'a@[127.0.0.1]',
  () => 'a@[IPv6:::1]',
  (rng) => `app@${'a'.repeat(rng.range(64, 300))}.example.com`,
  (rng) => `app@${'sub.'.repeat(rng.range(20, 200))}example.com`,
  (rng) => `app@${'a.'.repeat(rng.range(500, 2500))}example.com`,
  (rng) => `app@example.com${'.'.repeat(rng.range(500, 2500))}`,
  (rng) => `app@${Array.from({ length: rng.range(100, 1000) }, (_, i) => `l${i}`).join('.')}.example.com`,
  (rng) => `${'x'.repeat(rng.range(100, 5000))}@example.com`,
  (rng) => Array.from({ length: rng.range(50, 1500) }, (_, i) => `u${i}@example.com`).join(', '),
  (rng) => '<'.repeat(rng.range(100, 20000)) + 'app@example.com',
  (rng) => '"'.repeat(rng.range(100, 20000)) + 'app@example.com',
  (rng) => '('.repeat(rng.range(100, 20000)) + 'app@example.com',
  (rng) => junkString(rng, rng.range(1, 200)).replace(/[\r\n]/g, ' '),
  (rng) => `app@${junkString(rng, rng.range(1, 30)).replace(/[\r\n]/g, 'x')}`,
  () => 'app@example.com\r\nFrom: second@example.org',
  () => 'app@-bad-.example',
  () => 'app@exa mple.com',
  () => 'app@example..com',
  () => 'app@.example.com',
  () => 'app@127.0.0.1',
];

function rfc2047Junk(rng: Rng): string {
  return rng.pick([
    '=?utf-8?B?!!!?=',
    '=?x-unknown?Q?=ZZ=?=',
    '=?utf-8?Q?unterminated',
    '=??B??=',
    '=?utf-8?B?' + 'A'.repeat(rng.range(1, 5000)) + '?=',
    '=?utf-8*en?q?lang?= =?utf-8?b?8J+YgA==?==?utf-8?b??=',
    '=?utf-8?q?' + '=FF'.repeat(rng.range(1, 2000)) + '?=',
    Array.from({ length: rng.range(2, 300) }, () => '=?iso-8859-1?q?=E9?=').join(' '),
    '=?utf-7?B?K0FHRS0=?=',
    '=?utf-16?B?2D3eAA==?=',
  ]);
}

function multipartBody(rng: Rng, depth: number, boundaries: string[]): string {
  const b = boundaries[depth % boundaries.length]!;
  if (depth === 0) return lines('Content-Type: text/plain', '', 'leaf');
  return lines(`Content-Type: multipart/mixed; boundary="${b}"`, '', `--${b}`) + multipartBody(rng, depth - 1, boundaries) + lines(`--${b}--`);
}

const ODD_BOUNDARIES = ['', ' ', '--', 'a"b', "'", '=_?', 'x'.repeat(200), '\xff\xfe', 'same', 'same', 'b\tc', '--==--', '.'];

export const MUTATORS: Record<string, Mutator> = {
  byteFlips(rng, msg) {
    const out = Buffer.from(msg);
    const n = rng.range(1, 1 + Math.min(64, out.length));
    for (let i = 0; i < n && out.length; i++) out[rng.int(out.length)] = rng.int(256);
    return out;
  },
  headerByteFlips(rng, msg) {
    const out = Buffer.from(msg);
    const end = Math.max(1, headerEnd(out));
    for (let i = rng.range(1, 8); i > 0; i--) out[rng.int(end)] = rng.int(256);
    return out;
  },
  deleteRange(rng, msg) {
    if (msg.length === 0) return msg;
    const at = rng.int(msg.length);
    const len = rng.range(1, Math.min(msg.length - at, rng.pick([1, 4, 64, 4096])));
    return Buffer.concat([msg.subarray(0, at), msg.subarray(at + len)]);
  },
  truncate(rng, msg) {
    return msg.subarray(0, rng.int(msg.length + 1));
  },
  duplicateHeaderLine(rng, msg) {
    const hs = headerLines(msg);
    if (hs.length === 0) return msg;
    const pick = rng.chance(0.5) ? (hs.find((h) => /^(From|Subject|To|Date|Message-ID):/i.test(h)) ?? rng.pick(hs)) : rng.pick(hs);
    const copies = rng.chance(0.8) ? 1 : rng.range(2, 100);
    return withHeader(msg, (pick + CRLF).repeat(copies));
  },
  removeSeparator(_rng, msg) {
    const at = msg.indexOf('\r\n\r\n');
    return at < 0 ? msg : Buffer.concat([msg.subarray(0, at + 2), msg.subarray(at + 4)]);
  },
  nulBytes(rng, msg) {
    const out = [msg];
    for (let i = rng.range(1, 5); i > 0; i--) {
      const at = rng.int(out[0]!.length + 1);
      out[0] = Buffer.concat([out[0]!.subarray(0, at), Buffer.alloc(rng.range(1, 3)), out[0]!.subarray(at)]);
    }
    return out[0]!;
  },
  bareCrLf(rng, msg) {
    const text = msg.toString('latin1');
    const mode = rng.pick(['lf', 'cr', 'mixed', 'insert']);
    if (mode === 'lf') return Buffer.from(text.replace(/\r\n/g, '\n'), 'latin1');
    if (mode === 'cr') return Buffer.from(text.replace(/\r\n/g, '\r'), 'latin1');
    if (mode === 'mixed')
      return Buffer.from(
        text.replace(/\r\n/g, () => rng.pick(['\r\n', '\n', '\r', '\n\r'])),
        'latin1',
      );
    const at = rng.int(text.length + 1);
    return Buffer.from(text.slice(0, at) + rng.pick(['\r', '\n', '\r\r\n', '\n\n']) + text.slice(at), 'latin1');
  },
  giantHeaderLine(rng, msg) {
    const n = rng.pick([999, 1000, 4096, 70_000, rng.range(1000, 200_000)]);
    const value = rng.chance(0.5) ? 'v'.repeat(n) : Array.from({ length: Math.ceil(n / 8) }, () => 'word123').join(' ');
    return withHeader(msg, `${rng.pick(['X-Giant', 'Subject', 'To', 'References'])}: ${value}${CRLF}`);
  },
  giantHeaderName(rng, msg) {
    return withHeader(msg, `X-${'N'.repeat(rng.range(100, 50_000))}: v${CRLF}`);
  },
  manyHeaders(rng, msg) {
    const n = rng.pick([999, 1000, 1001, rng.range(500, 6000)]);
    let extra = '';
    for (let i = 0; i < n; i++) extra += `X-H${i}: ${i}${CRLF}`;
    return withHeader(msg, extra);
  },
  manyFoldedLines(rng, msg) {
    const n = rng.weighted([
      [3, rng.range(100, 2000)],
      [2, rng.range(2000, 20_000)],
      [1, rng.range(20_000, 30_000)],
    ]);
    return withHeader(msg, 'X-Folded: start' + `${CRLF} x`.repeat(n) + CRLF);
  },
  deepMultipart(rng, msg) {
    const depth = rng.pick([2, 10, 100, rng.range(100, 2000)]);
    const boundaries = rng.chance(0.5) ? [rng.pick(ODD_BOUNDARIES)] : Array.from({ length: rng.range(1, 5) }, () => rng.pick(ODD_BOUNDARIES));
    const end = headerEnd(msg);
    const header = msg
      .subarray(0, end)
      .toString('latin1')
      .replace(/^Content-Type:.*(\r\n[ \t].*)*\r\n/gim, '');
    const body = multipartBody(rng, depth, boundaries);
    // multipartBody starts with its own Content-Type line: the top one goes into the header.
    const firstBreak = body.indexOf(CRLF);
    return Buffer.from(header + body.slice(0, firstBreak + 2) + 'MIME-Version: 1.0' + CRLF + body.slice(firstBreak + 2), 'latin1');
  },
  unclosedMultipart(rng, msg) {
    const b = rng.pick(ODD_BOUNDARIES);
    return withHeader(msg, `Content-Type: multipart/mixed; boundary="${b}"${CRLF}`);
  },
  rfc2047(rng, msg) {
    return withHeader(msg, `${rng.pick(['Subject', 'X-Encoded', 'Comments'])}: ${rfc2047Junk(rng)}${CRLF}`);
  },
  fromVariation(rng, msg) {
    return replaceFrom(msg, rng.pick(FROM_VARIANTS)(rng));
  },
  secondFrom(rng, msg) {
    return withHeader(msg, `${rng.pick(['From', 'from', 'FROM', 'From ', 'From\t'])}: ${rng.pick(['other@example.org', 'app@example.com', ''])}${CRLF}`);
  },
  oddHeaderSyntax(rng, msg) {
    const odd = rng.pick([
      'no colon at all',
      ': empty name',
      ' continuation-where-it-should-not-be',
      'Bad Name: space in name',
      'X-8bit-\xe9: value',
      'X-Ctl\x01: value',
      'Subject:\x00nul',
      'X-Long-Name-' + 'a'.repeat(998) + ': v',
      '\t',
      ' ',
      'DKIM-Signature: v=1; a=rsa-sha256; d=example.com; s=x; b=; bh=;',
      'DKIM-Signature: garbage',
      'Received: from evil by example.com',
    ]);
    if (rng.chance(0.3)) return Buffer.concat([Buffer.from(odd + CRLF, 'latin1'), msg]);
    return withHeader(msg, odd + CRLF);
  },
  longBodyLines(rng, msg) {
    const n = rng.pick([998, 999, 1000, 10_000, rng.range(999, 200_000)]);
    return Buffer.concat([msg, Buffer.from(rng.pick(['y', ' ', '=', '.']).repeat(n) + (rng.chance(0.7) ? CRLF : ''), 'latin1')]);
  },
  dotLines(rng, msg) {
    const extra = rng.pick(['.', '..', '...', '. ', '.\t', '.\r', '.x', '\r\n.\r\n', '.\n.\n']);
    const at = msg.indexOf('\r\n\r\n');
    const pos = at < 0 ? msg.length : rng.range(at + 4, msg.length);
    // insert at a line start if possible
    const lineStart = msg.lastIndexOf('\n', pos - 1) + 1;
    return Buffer.concat([msg.subarray(0, lineStart), Buffer.from(extra + CRLF, 'latin1'), msg.subarray(lineStart)]);
  },
  whitespaceOnly(rng) {
    return Buffer.from(rng.pick(['', CRLF, CRLF + CRLF, ' ', '\t\r\n', '\r\n\r\nbody only', 'From: a@example.com', 'From: a@example.com\r\n']), 'latin1');
  },
  randomBinary(rng) {
    return rng.bytes(rng.skewed(20_000));
  },
  eightBitHeaders(rng, msg) {
    return withHeader(msg, `X-Raw: ${junkString(rng, rng.range(1, 300)).replace(/[\r\n]/g, '\xff')}${CRLF}`);
  },
  spliceSelf(rng, msg) {
    if (msg.length === 0) return msg;
    const a = rng.int(msg.length);
    const b = rng.int(msg.length);
    const len = rng.range(1, Math.min(4096, msg.length - a));
    return Buffer.concat([msg.subarray(0, b), msg.subarray(a, a + len), msg.subarray(b)]);
  },
  trailingWhitespaceHeaders(_rng, msg) {
    const end = headerEnd(msg);
    const header = msg.subarray(0, end).toString('latin1').replace(/\r\n/g, ' \t \r\n');
    return Buffer.concat([Buffer.from(header, 'latin1'), msg.subarray(end)]);
  },
};

const MUTATOR_NAMES = Object.keys(MUTATORS);

/** A seed with 0–4 mutations (0 now and then, so valid mail keeps flowing). */
export function mutatedMessage(rng: Rng): Mutated {
  const seed = rng.weighted<SeedName>([
    [4, 'plain'],
    [3, 'multipart'],
    [2, 'eightbit'],
    [2, 'folded'],
    [1, 'minimal'],
    [0.5, 'large'],
  ]);
  let data = seedMessage(rng, seed);
  const steps = [`seed:${seed}`];
  const n = rng.weighted([
    [2, 0],
    [5, 1],
    [3, 2],
    [1, 3],
    [1, 4],
  ]);
  for (let i = 0; i < n; i++) {
    const name = rng.pick(MUTATOR_NAMES);
    data = MUTATORS[name]!(rng, data);
    steps.push(name);
  }
  // Keep well under the relay's 256 KiB limit except on purpose: the mutators can grow messages.
  if (data.length > 400 * 1024) {
    data = data.subarray(0, 400 * 1024);
    steps.push('cut:400KiB');
  }
  return { data, steps };
}

/** Dot-stuffs for DATA: a "." at the start of a line (after CRLF) gets another. */
export function dotStuff(msg: Buffer): Buffer {
  const text = msg.toString('latin1');
  return Buffer.from((text.startsWith('.') ? '.' : '') + text.replace(/\r\n\./g, '\r\n..'), 'latin1');
}

/** The bytes that end DATA after `msg`: "." on a line of its own. */
export function terminatorFor(msg: Buffer): Buffer {
  const endsWithCrlf = msg.length >= 2 && msg[msg.length - 2] === 0x0d && msg[msg.length - 1] === 0x0a;
  return Buffer.from(msg.length === 0 || endsWithCrlf ? '.\r\n' : '\r\n.\r\n', 'latin1');
}
