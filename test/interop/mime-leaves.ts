// The decoded content of every leaf MIME part of a message, written for this
// harness (it shares no code with the relay's normalizer): when the relay
// re-encodes a part (8bit → quoted-printable, a long line → QP/base64), the
// decoded content must be what the sender wrote, octet for octet.

/** Bare CR and bare LF made CRLF and a final CRLF added: what the relay does first (and documents). */
export function crlfOnly(raw: Buffer): Buffer {
  const text = raw.toString('latin1').replace(/\r\n|\r|\n/g, '\r\n');
  return Buffer.from(text.length === 0 || text.endsWith('\r\n') ? text : text + '\r\n', 'latin1');
}

function split(entity: string): { header: string; body: string } {
  if (entity.startsWith('\r\n')) return { header: '', body: entity.slice(2) };
  const at = entity.indexOf('\r\n\r\n');
  return at < 0 ? { header: entity, body: '' } : { header: entity.slice(0, at + 2), body: entity.slice(at + 4) };
}

function field(header: string, name: string): string | undefined {
  for (const f of header.split(/\r\n(?![ \t])/)) {
    const colon = f.indexOf(':');
    if (colon > 0 && f.slice(0, colon).trim().toLowerCase() === name)
      return f
        .slice(colon + 1)
        .replace(/\r\n/g, '')
        .trim();
  }
  return undefined;
}

function decode(body: string, encoding: string): Buffer {
  if (encoding === 'base64') return Buffer.from(body.replace(/[^A-Za-z0-9+/=]/g, ''), 'base64');
  if (encoding === 'quoted-printable') {
    const text = body
      .replace(/[ \t]+(?=\r\n|$)/g, '') // RFC 2045 §6.7 (3): trailing white space is padding
      .replace(/=\r\n/g, '')
      .replace(/=([0-9A-Fa-f]{2})/g, (_, hex: string) => String.fromCharCode(Number.parseInt(hex, 16)));
    return Buffer.from(text, 'latin1');
  }
  return Buffer.from(body, 'latin1');
}

function parts(body: string, boundary: string): string[] {
  const delimiter = '--' + boundary;
  const found: string[] = [];
  let current: string[] | null = null;
  for (const line of body.split('\r\n')) {
    const bare = line.replace(/[ \t]+$/, '');
    if (bare === delimiter || bare === delimiter + '--') {
      if (current) found.push(current.join('\r\n'));
      current = bare === delimiter ? [] : null;
      if (!current) break;
    } else if (current) {
      current.push(line);
    }
  }
  return found;
}

function leavesOf(entity: string, depth: number): Buffer[] {
  const { header, body } = split(entity);
  const type = field(header, 'content-type') ?? 'text/plain';
  const encoding = (field(header, 'content-transfer-encoding') ?? '7bit').toLowerCase();
  const boundary = /boundary\s*=\s*(?:"([^"]+)"|([^;\s]+))/i.exec(type);
  if (/^multipart\//i.test(type) && boundary && depth < 20) {
    return parts(body, boundary[1] ?? boundary[2]!).flatMap((p) => leavesOf(p, depth + 1));
  }
  return [decode(body, encoding)];
}

/** Decoded content of each leaf part, in order (a single-part message is one leaf). */
export function mimeLeaves(message: Buffer): Buffer[] {
  return leavesOf(message.toString('latin1'), 0);
}
