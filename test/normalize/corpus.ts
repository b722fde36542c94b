// Generated messages for comparing normalizeFile with normalize: MIME trees
// with every kind of body that needs work, and variants that put boundaries,
// CRLFs and line ends on the borders of the 64 KiB windows a file is read in.
// A seeded generator, so a failing case can be made again from its name.

export const WINDOW = 64 * 1024;

export interface Case {
  name: string;
  message: Buffer;
}

/** xorshift32: a small, seeded source of numbers. */
export class Random {
  private state: number;
  constructor(seed: number) {
    this.state = (Math.imul(seed, 2654435761) ^ 0x9e3779b9) >>> 0 || 1;
    // small seeds start with small numbers; these draws spread them
    for (let i = 0; i < 8; i++) this.next();
  }

  next(): number {
    let x = this.state;
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    this.state = x >>> 0;
    return this.state / 0x100000000;
  }

  int(max: number): number {
    return Math.floor(this.next() * max);
  }

  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)]!;
  }
}

const WORDS = ['Grüße', 'a', 'line', 'of', 'text', 'café', '=', '==', 'x=3D', ' ', '\t', 'end.', 'Köln,', '€', 'naïve', '--', 'q?', '.'];

/** Text of `length` octets (about): words, with 8-bit ones when asked. */
function words(r: Random, length: number, eightBit: boolean): Buffer {
  const out: Buffer[] = [];
  let n = 0;
  while (n < length) {
    let w = r.pick(WORDS);
    if (!eightBit) w = w.replace(/[^\x00-\x7f]/g, 'u');
    const b = Buffer.from(w + (r.int(4) === 0 ? '' : ' '));
    out.push(b);
    n += b.length;
  }
  return Buffer.concat(out).subarray(0, length);
}

/** Line lengths that matter: short, at the limit, just over it, far over it. */
const LENGTHS = [0, 1, 40, 75, 76, 77, 997, 998, 999, 1000, 3000, 70_000];

/** A body of lines: long ones, trailing whitespace, stray CR/LF, NUL, 8-bit. */
export function textBody(r: Random, lines: number, opts: { eightBit: boolean; nul: boolean; long: boolean; loneBreaks: boolean }): Buffer {
  const out: Buffer[] = [];
  for (let i = 0; i < lines; i++) {
    const length = opts.long ? r.pick(LENGTHS) : r.pick(LENGTHS.slice(0, 6));
    let line = words(r, length, opts.eightBit);
    if (opts.nul && r.int(5) === 0) line = Buffer.concat([line, Buffer.from([0]), line.subarray(0, 3)]);
    if (opts.loneBreaks && r.int(6) === 0) line = Buffer.concat([line, Buffer.from(r.pick(['\r', '\n', ' \r', '\t\n', '\r\r'])), Buffer.from('z')]);
    if (r.int(5) === 0) line = Buffer.concat([line, Buffer.from(r.pick([' ', '\t', '  ', ' \t ']))]);
    out.push(line, Buffer.from('\r\n'));
  }
  // the last line sometimes has no CRLF
  if (r.int(4) === 0) out.pop();
  return Buffer.concat(out);
}

/** A QP body as a sloppy encoder writes it: escapes, soft breaks now and then, lines of any length. */
export function sloppyQp(r: Random, content: Buffer): Buffer {
  let text = '';
  let line = 0;
  for (const c of content) {
    if (c === 0x0d || c === 0x0a) {
      text += String.fromCharCode(c);
      line = 0;
      continue;
    }
    const esc = c === 0x3d || c >= 0x80 || c === 0 || r.int(50) === 0;
    const s = esc ? '=' + c.toString(16).toUpperCase().padStart(2, '0') : String.fromCharCode(c);
    text += s;
    line += s.length;
    if (r.int(40) === 0) {
      text += r.pick(['=\r\n', '= \r\n', '=\t\r\n', '=']);
      line = 0;
    }
  }
  return Buffer.from(text, 'latin1');
}

export function base64Body(r: Random, size: number, lineLength: number): Buffer {
  const data = Buffer.alloc(size);
  for (let i = 0; i < size; i++) data[i] = r.int(256);
  let text = data.toString('base64');
  if (lineLength > 0) text = text.replace(new RegExp(`.{${lineLength}}`, 'g'), '$&\r\n').replace(/\r\n$/, '');
  if (r.int(3) === 0) text = text.slice(0, 10) + '\u00e9' + text.slice(10);
  return Buffer.from(text, 'latin1');
}

const TYPES = ['text/plain; charset=utf-8', 'text/html', 'application/octet-stream', 'message/rfc822', 'image/png', ''];

/** One leaf: header lines and body. */
function leaf(r: Random): { head: string[]; body: Buffer } {
  const type = r.pick(TYPES.filter((t) => t !== 'message/rfc822'));
  const head: string[] = [];
  if (type) head.push(`Content-Type: ${type}`);
  if (r.int(4) === 0) head.push('X-Note: caf\u00e9 au lait');
  const kind = r.int(6);
  const text = (): Buffer => textBody(r, 1 + r.int(12), { eightBit: r.int(2) === 0, nul: r.int(5) === 0, long: r.int(2) === 0, loneBreaks: r.int(4) === 0 });
  if (kind === 0) {
    head.push('Content-Transfer-Encoding: base64');
    return { head, body: Buffer.concat([base64Body(r, r.pick([0, 10, 57, 3000, 60_000]), r.pick([0, 76, 1200])), Buffer.from(r.int(2) ? '\r\n' : '')]) };
  }
  if (kind === 1) {
    head.push('Content-Transfer-Encoding: quoted-printable');
    return { head, body: sloppyQp(r, text()) };
  }
  const cte = r.pick(['', '7bit', '8bit', 'binary']);
  if (cte) head.push(`Content-Transfer-Encoding: ${cte}`);
  return { head, body: text() };
}

/** An entity: a leaf, a multipart of entities, or a message/rfc822 around one. */
function entity(r: Random, depth: number): { head: string[]; body: Buffer } {
  const roll = depth >= 3 ? 9 : r.int(10);
  if (roll < 3) {
    const boundary = r.pick(['b', '=_part_1', 'XYZ', `nest${depth}`]);
    const children = 1 + r.int(4);
    const out: Buffer[] = [];
    if (r.int(2)) out.push(Buffer.from('This is a multi-part message in MIME format.\r\n'));
    for (let i = 0; i < children; i++) {
      const child = entity(r, depth + 1);
      const pad = r.int(4) === 0 ? ' \t' : '';
      out.push(Buffer.from(`--${boundary}${pad}\r\n${child.head.map((h) => h + '\r\n').join('')}\r\n`, 'latin1'), child.body, Buffer.from('\r\n'));
    }
    out.push(Buffer.from(`--${boundary}--\r\n`));
    if (r.int(3) === 0) out.push(Buffer.from('epilogue\r\n'));
    return {
      head: [
        `Content-Type: multipart/${r.pick(['mixed', 'alternative', 'digest'])}; boundary="${boundary}"`,
        ...(r.int(3) === 0 ? ['Content-Transfer-Encoding: 8bit'] : []),
      ],
      body: Buffer.concat(out),
    };
  }
  if (roll === 3) {
    const inner = entity(r, depth + 1);
    const head = ['From: inner@example.com', ...inner.head];
    return {
      head: ['Content-Type: message/rfc822', ...(r.int(2) ? ['Content-Transfer-Encoding: 8bit'] : [])],
      body: Buffer.concat([Buffer.from(head.map((h) => h + '\r\n').join('') + '\r\n'), inner.body]),
    };
  }
  return leaf(r);
}

export function randomMessage(seed: number): Buffer {
  const r = new Random(seed);
  const top = entity(r, 0);
  const head = [
    'From: a@example.com',
    'To: b@example.org',
    ...(r.int(3) === 0 ? ['Subject: Gr\u00fc\u00dfe'] : []),
    ...(r.int(2) ? ['MIME-Version: 1.0'] : []),
    ...top.head,
  ];
  return Buffer.concat([Buffer.from(head.map((h) => h + '\r\n').join('') + '\r\n', 'utf8'), top.body]);
}

/**
 * The message with filler fields put on top of its header, so that the octet
 * at `offset` moves to `shift` octets before a window border.
 */
export function shiftToBorder(message: Buffer, offset: number, shift: number): Buffer {
  const total = Math.ceil((offset + 40) / WINDOW) * WINDOW - shift - offset;
  const fields = Math.ceil(total / 900);
  const each = Math.floor(total / fields);
  const lines: string[] = [];
  for (let i = 0; i < fields; i++) {
    const length = i === fields - 1 ? total - each * (fields - 1) : each;
    lines.push(`X-F: ${'f'.repeat(length - 7)}\r\n`);
  }
  return Buffer.concat([Buffer.from(lines.join('')), message]);
}

/** Offsets of every occurrence of `needle`. */
export function occurrences(message: Buffer, needle: string): number[] {
  const at: number[] = [];
  for (let i = message.indexOf(needle); i >= 0; i = message.indexOf(needle, i + 1)) at.push(i);
  return at;
}
