// The mail that tells a person what a rotation step needs from them: a plain
// text message saying what to publish, withdraw or fix, with each record in
// the three forms people paste (zone-file lines, one value, JSON).
import { zoneLines, type TxtRecord } from '../keys/record.ts';

export interface RotationNotice {
  /** rotation.notify */
  to: string;
  /** One line: what happened or what is wrong. */
  subject: string;
  /** What to do, in a few sentences. */
  text: string;
  /** Records to publish (or, with `withdraw`, to delete). */
  records: readonly TxtRecord[];
  withdraw?: boolean;
}

/**
 * The message as the relay receives it from a client: the pipeline then adds
 * Date and Message-ID, signs it and self-checks it like any other. From: is
 * the notify address itself, a domain the relay signs for in a normal set-up.
 */
export function noticeMessage(notice: RotationNotice): Buffer {
  const lines = [notice.text, ''];
  if (notice.records.length > 0) {
    lines.push(notice.withdraw ? 'Delete these records from DNS:' : 'These records must be in DNS:', '');
    lines.push('Zone-file lines (BIND, Knot, most DNS hosting):', '', ...notice.records.map(zoneLines), '');
    lines.push('Name and value (web panels that split long values themselves):', '', ...notice.records.map((r) => `${r.name}\n${r.value}`), '');
    lines.push(
      'JSON (provider APIs):',
      '',
      JSON.stringify(
        notice.records.map(({ name, type, ttl, value, strings }) => ({ name, type, ttl, value, strings })),
        null,
        2,
      ),
      '',
    );
  }
  lines.push('-- ', 'dkim-relay key rotation (rotation.notify)');
  const body = lines.join('\n').split('\n').flatMap(wrapLong).join('\r\n');
  const header = [
    `From: dkim-relay <${notice.to}>`,
    `To: <${notice.to}>`,
    `Subject: [dkim-relay] ${notice.subject.replace(/[\r\n]+/g, ' ')}`,
    'MIME-Version: 1.0',
    'Content-Type: text/plain; charset=utf-8',
    'Content-Transfer-Encoding: 8bit',
    'Auto-Submitted: auto-generated',
  ];
  return Buffer.from(`${header.join('\r\n')}\r\n\r\n${body}\r\n`, 'utf8');
}

/** RFC 5322 §2.1.1: at most 998 octets per line; base64 keys have no spaces to break at, so cut them. */
function wrapLong(line: string): string[] {
  const out = [line.slice(0, 900)];
  for (let rest = line.slice(900); rest.length > 0; rest = rest.slice(900)) out.push(rest.slice(0, 900));
  return out;
}
