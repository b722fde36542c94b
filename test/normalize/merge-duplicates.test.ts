// headers.mergeDuplicates: copies of To, Cc, Bcc and Reply-To become one field
// each, addresses in order and without repeats, folded at 78 columns.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { normalize } from '../../src/pipeline/normalize/index.ts';
import { parseAddressList } from '../../src/pipeline/normalize/address-list.ts';
import { crlf, ok, options, refused, split } from './support.ts';

const merging = options({ mergeDuplicates: true });

/** The raw lines of every field of this name. */
function fieldsOf(message: Buffer, name: string): string[] {
  const { header } = split(message);
  return header.split(/\r\n(?![ \t])/).filter((f) => f.toLowerCase().startsWith(`${name.toLowerCase()}:`));
}

test('two To: and two Cc: fields become one each, in place, repeats removed case-insensitively', () => {
  const msg = crlf([
    'From: scanner@example.com',
    'To: Alice <alice@example.net>, bob@example.net',
    'Cc: carol@example.org',
    'Subject: scan',
    'To: "Smith, Dave" <dave@example.net>, BOB@Example.NET',
    'Cc: Carol <CAROL@example.org> (again)',
    '',
    'body',
  ]);
  const { message, changes } = ok(normalize(msg, merging));
  assert.deepEqual(changes, ['merged 2 To: fields into one, 1 repeated address removed', 'merged 2 Cc: fields into one, 1 repeated address removed']);
  assert.equal(
    split(message).header,
    'From: scanner@example.com\r\nTo: Alice <alice@example.net>, bob@example.net,\r\n "Smith, Dave" <dave@example.net>\r\nCc: carol@example.org\r\nSubject: scan\r\n',
  );
  assert.equal(split(message).body, 'body\r\n');
});

test('a long merged list is folded with CRLF SP between addresses, no line over 78', () => {
  const first = Array.from({ length: 8 }, (_, i) => `Person Number ${i} <person${i}@example.net>`);
  const second = Array.from({ length: 8 }, (_, i) => `other${i}@example.org`);
  const msg = crlf(['From: erp@example.com', `To: ${first.join(', ')}`, `To: ${second.join(',\r\n ')}`, '', 'x']);
  const { message } = ok(normalize(msg, merging));
  const [to, ...more] = fieldsOf(message, 'To');
  assert.equal(more.length, 0);
  const lines = to!.split('\r\n');
  assert.ok(lines.length > 3);
  for (const line of lines) assert.ok(line.length <= 78, `line of ${line.length}: ${line}`);
  for (const line of lines.slice(1)) assert.match(line, /^ \S/, 'continuations start with one SP');
  const unfolded = to!.replace(/\r\n /g, ' ');
  assert.equal(unfolded, `To: ${[...first, ...second].join(', ')}`);
});

test('groups: same-named groups merge, empty placeholders go when real addresses remain', () => {
  const msg = crlf([
    'From: a@example.com',
    'To: undisclosed-recipients:;',
    'To: Team: x@example.net, y@example.net;, z@example.net',
    'To: team: y@example.net, w@example.net;',
    '',
    'x',
  ]);
  const { message, changes } = ok(normalize(msg, merging));
  assert.deepEqual(fieldsOf(message, 'To'), ['To: Team: x@example.net, y@example.net, w@example.net;, z@example.net']);
  assert.deepEqual(changes, ['merged 3 To: fields into one, 1 repeated address removed']);
  const placeholders = crlf(['From: a@example.com', 'Bcc: undisclosed-recipients:;', 'Bcc: Undisclosed-Recipients: ;', '', 'x']);
  assert.deepEqual(fieldsOf(ok(normalize(placeholders, merging)).message, 'Bcc'), ['Bcc: undisclosed-recipients:;']);
});

test('Reply-To is merged; From, Subject and the rest are left to the duplicate check', () => {
  const msg = crlf(['From: a@example.com', 'Reply-To: r@example.com', 'Reply-To: r@example.com', 'Subject: one', 'Subject: two', '', 'x']);
  const { message, changes } = ok(normalize(msg, merging));
  assert.deepEqual(changes, ['merged 2 Reply-To: fields into one, 1 repeated address removed']);
  assert.deepEqual(fieldsOf(message, 'Reply-To'), ['Reply-To: r@example.com']);
  assert.equal(fieldsOf(message, 'Subject').length, 2);
});

test('a copy that is no address list is refused 550; mergeDuplicates off changes nothing', () => {
  const bad = crlf(['From: a@example.com', 'To: a@example.net', 'To: "unterminated <b@example.net>', '', 'x']);
  const { code, text } = refused(normalize(bad, merging));
  assert.equal(code, 550);
  assert.match(text, /^5\.6\.0 The message has 2 To: headers and one cannot be merged \(an unterminated quoted\)/);
  const two = crlf(['From: a@example.com', 'To: a@example.net', 'To: b@example.net', '', 'x']);
  assert.equal(ok(normalize(two, options({ mergeDuplicates: false }))).message, two);
});

test('the address-list reader keeps each mailbox as written and keys it by addr-spec', () => {
  const items = parseAddressList(' "Doe, J." <J.Doe@Example.COM>, =?utf-8?Q?J=C3=B6rg?= <jorg@example.org> (work),\r\n\tplain@example.net');
  assert.ok(Array.isArray(items));
  assert.deepEqual(
    items.map((i) => i.kind === 'mailbox' && [i.text, i.key]),
    [
      ['"Doe, J." <J.Doe@Example.COM>', 'j.doe@example.com'],
      ['=?utf-8?Q?J=C3=B6rg?= <jorg@example.org> (work)', 'jorg@example.org'],
      ['plain@example.net', 'plain@example.net'],
    ],
  );
  assert.equal(parseAddressList('a: b: c@x;;'), 'a group inside a group');
  assert.equal(parseAddressList('a@x; b@y'), 'a ";" outside a group');
});
