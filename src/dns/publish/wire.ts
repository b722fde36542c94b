// The few pieces of DNS wire format (RFC 1035 §3.1, §4.1) that the UPDATE
// message and its TSIG need and that dns-packet does not offer in its typed
// interface: canonical names, and the offset of a message's last record.

/** A domain name as labels, lower case and uncompressed: the canonical form TSIG signs (RFC 4034 §6.2). */
export function encodeName(name: string): Buffer {
  const labels = name
    .replace(/\.$/, '')
    .toLowerCase()
    .split('.')
    .filter((l) => l.length > 0);
  const parts: Buffer[] = [];
  for (const label of labels) {
    const bytes = Buffer.from(label, 'latin1');
    if (bytes.length > 63) throw new Error(`label "${label}" is longer than 63 octets`);
    parts.push(Buffer.from([bytes.length]), bytes);
  }
  parts.push(Buffer.from([0]));
  const wire = Buffer.concat(parts);
  if (wire.length > 255) throw new Error(`name ${name} is longer than 255 octets`);
  return wire;
}

/** An uncompressed name at `at` (names in the RDATA of TSIG are never compressed, RFC 3597 §4). */
export function readName(buf: Buffer, at: number): { name: string; end: number } {
  const labels: string[] = [];
  for (let i = 0; i < 128; i++) {
    const length = byte(buf, at);
    if (length === 0) return { name: labels.join('.').toLowerCase(), end: at + 1 };
    if (length > 63) throw new Error('compressed or malformed name');
    if (at + 1 + length > buf.length) throw new Error('name runs past the message');
    labels.push(buf.toString('latin1', at + 1, at + 1 + length));
    at += 1 + length;
  }
  throw new Error('name with too many labels');
}

/** Where the name at `at` ends: after its zero label, or after a compression pointer (RFC 1035 §4.1.4). */
function skipName(buf: Buffer, at: number): number {
  for (let i = 0; i < 128; i++) {
    const length = byte(buf, at);
    if (length === 0) return at + 1;
    if ((length & 0xc0) === 0xc0) return at + 2;
    at += 1 + length;
  }
  throw new Error('name with too many labels');
}

/** The offset of the last resource record of a message (where a TSIG record sits, RFC 8945 §4.2). */
export function lastRecordStart(msg: Buffer): number {
  if (msg.length < 12) throw new Error('message shorter than its header');
  const questions = msg.readUInt16BE(4);
  const records = msg.readUInt16BE(6) + msg.readUInt16BE(8) + msg.readUInt16BE(10);
  if (records === 0) throw new Error('message without records');
  let at = 12;
  for (let q = 0; q < questions; q++) at = skipName(msg, at) + 4;
  let start = at;
  for (let r = 0; r < records; r++) {
    start = at;
    at = skipName(msg, at);
    if (at + 10 > msg.length) throw new Error('record runs past the message');
    at += 10 + msg.readUInt16BE(at + 8);
  }
  if (at !== msg.length) throw new Error('octets after the last record');
  return start;
}

function byte(buf: Buffer, at: number): number {
  const value = buf[at];
  if (value === undefined) throw new Error('name runs past the message');
  return value;
}
