// A hostile but lawful intermediary: what real relays, gateways and mailbox
// providers do to a message in transit, restricted to changes that relaxed
// canonicalization (RFC 6376 §3.4.2, §3.4.4) is designed to absorb:
//   - header names change case;
//   - header fields are unfolded and refolded at other points (always at
//     white space, so no white space appears or disappears between tokens);
//   - runs of white space in header values change (spaces ↔ tabs, longer or
//     shorter), white space appears after the colon and at the end of values,
//     and white space before the colon (`To : x`) goes;
//   - trace headers are added on top (Received, Authentication-Results,
//     X-Forwarded-For/-To), which no signature covers;
//   - body lines get trailing spaces/tabs, and trailing blank lines are dropped.
// It never adds white space between two non-space characters, never touches
// the white space inside body lines, and never puts white space before a colon
// (dkimpy cannot parse that).
// Messages go in and come out with CRLF line endings.

/** Deterministic choices from a seed (mulberry32). */
function chooser(seed: number): (n: number) => number {
  let a = seed >>> 0;
  return (n: number) => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) % n;
  };
}

const RUNS = [' ', '  ', '\t', ' \t ', '\t\t', '   '];

function recase(name: string, pick: (n: number) => number): string {
  switch (pick(3)) {
    case 0:
      return name.toUpperCase();
    case 1:
      return name.toLowerCase();
    default:
      return [...name].map((c) => (pick(2) ? c.toUpperCase() : c.toLowerCase())).join('');
  }
}

/**
 * One header field rewritten: new name case, new white space, new folds.
 * `field` is the whole field (folded lines joined by CRLF), no final CRLF.
 */
export function rewriteField(field: string, pick: (n: number) => number): string {
  const colon = field.indexOf(':');
  const name = field.slice(0, colon).replace(/[ \t]+$/, '');
  const unfolded = field.slice(colon + 1).replace(/\r\n(?=[ \t])/g, '');
  // Tokens: alternating non-WSP words and WSP runs; each run gets a new shape.
  const parts = unfolded.split(/([ \t]+)/);
  const lead = pick(2) ? ' ' : '\t ';
  const pieces: string[] = [];
  for (let i = 0; i < parts.length; i++) {
    const part = parts[i]!;
    if (i % 2 === 0) pieces.push(part);
    else pieces.push(RUNS[pick(RUNS.length)]!);
  }
  // Leading white space after the colon: always some (a fold may go there).
  if (pieces[0] === '' && pieces.length > 1) pieces.splice(0, 2);
  const words = pieces.filter((_, i) => i % 2 === 0);
  const runs = pieces.filter((_, i) => i % 2 === 1);
  // Refold: before a run when the line is longer than a limit that differs per field.
  const limit = 20 + pick(50);
  let out = recase(name, pick) + ':';
  let lineLength = out.length;
  const first = words[0] ?? '';
  if (first !== '') {
    const gap = pick(4) === 0 ? '\r\n' + lead : lead; // sometimes fold right after the colon
    out += gap + first;
    lineLength = (gap.startsWith('\r\n') ? lead.length : out.length) + first.length;
  }
  for (let i = 1; i < words.length; i++) {
    const run = runs[i - 1]!;
    const word = words[i]!;
    if (word === '') {
      // The value ended in white space: keep some, never as a line of its own.
      out += run;
      continue;
    }
    if (lineLength + run.length + word.length > limit) {
      out += '\r\n' + run + word;
      lineLength = run.length + word.length;
    } else {
      out += run + word;
      lineLength += run.length + word.length;
    }
  }
  // Trailing white space at the end of the value.
  if (pick(2) && first !== '') out += pick(2) ? ' ' : '\t';
  return out;
}

export interface IntermediaryOptions {
  /** Varies every choice; the same seed gives the same output. */
  seed?: number;
  /** Name in the added Received: header. */
  hostname?: string;
}

/** The message as it might arrive after a hostile-but-lawful hop or two. */
export function hostileIntermediary(message: Buffer, options: IntermediaryOptions = {}): Buffer {
  const pick = chooser(options.seed ?? 1);
  const host = options.hostname ?? 'mx2.forwarder.example';
  const text = message.toString('latin1');
  const split = text.indexOf('\r\n\r\n');
  if (split < 0) throw new Error('intermediary: message without a header/body separator');
  const header = text.slice(0, split + 2);
  const body = text.slice(split + 4);

  const fields = header.slice(0, -2).split(/\r\n(?![ \t])/);
  const rewritten = fields.map((f) => rewriteField(f, pick));
  const trace = [
    `Received: from relay.test (relay.test [127.0.0.1])\r\n\tby ${host} (Postfix) with ESMTPS id 4Xyz1234\r\n\tfor <bob@example.net>; Tue, 24 Nov 2026 10:00:00 +0000 (UTC)`,
    `Authentication-Results: ${host};\r\n\tdkim=pass header.d=example.com;\r\n\tspf=none smtp.mailfrom=example.com`,
    'X-Forwarded-To: bob@forwarded.example',
    'X-Forwarded-For: bob@example.net bob@forwarded.example',
    `Received: by ${host} (Postfix, from userid 0) id 5Abc; Tue, 24 Nov 2026 10:00:01 +0000 (UTC)`,
  ];

  // Body: drop trailing blank lines, then give some lines trailing white space.
  let lines = body === '' ? [] : body.split('\r\n');
  if (lines.at(-1) === '') lines.pop(); // the final CRLF
  while (lines.length > 0 && lines.at(-1) === '') lines.pop();
  lines = lines.map((line) => {
    switch (pick(4)) {
      case 0:
        return line + ' ';
      case 1:
        return line + '\t \t';
      case 2:
        return line.replace(/[ \t]+$/, '  ');
      default:
        return line;
    }
  });
  const newBody = lines.length ? lines.join('\r\n') + '\r\n' : '';
  return Buffer.from([...trace, ...rewritten].join('\r\n') + '\r\n\r\n' + newBody, 'latin1');
}

/**
 * RFC 6376 §3.4.2 relaxed header canonicalization of one field, written from
 * the RFC for this harness (not the relay's code): used to check that the
 * intermediary only makes changes relaxed canonicalization absorbs.
 */
export function relaxedField(field: string): string {
  const colon = field.indexOf(':');
  const name = field
    .slice(0, colon)
    .replace(/[ \t]+$/, '')
    .toLowerCase();
  const value = field
    .slice(colon + 1)
    .replace(/\r\n(?=[ \t])/g, '')
    .replace(/[ \t]+/g, ' ')
    .replace(/^ | $/g, '');
  return `${name}:${value}`;
}

/** RFC 6376 §3.4.4 relaxed body canonicalization, for the same check. */
export function relaxedBody(body: string): string {
  const lines = body.split('\r\n');
  if (lines.at(-1) === '') lines.pop();
  const canon = lines.map((l) => l.replace(/[ \t]+/g, ' ').replace(/ $/, ''));
  while (canon.length > 0 && canon.at(-1) === '') canon.pop();
  return canon.length ? canon.join('\r\n') + '\r\n' : '';
}

/** A message's header fields (folded lines joined) and body, as latin1 strings. */
export function fieldsAndBody(message: Buffer): { fields: string[]; body: string } {
  const text = message.toString('latin1');
  const split = text.indexOf('\r\n\r\n');
  return { fields: text.slice(0, split).split(/\r\n(?![ \t])/), body: text.slice(split + 4) };
}

/** The trace fields hostileIntermediary puts on top. */
export const ADDED_TRACE_FIELDS = 5;
