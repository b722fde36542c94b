// DSNs as a receiver reads them: parsed by Python's email package, their
// fields read back one by one, their signature checked by python3-dkim.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { buildDsn, type DsnRecipient, type DsnRequest } from '../../src/bounce/dsn.ts';
import { signMessage } from '../../src/signing/signer.ts';
import { verifyWithDkimpy, verifyWithMailDkim } from '../helpers/independent-verify.ts';
import { ed25519Key, recordsOf, rsaKey } from '../signing/support.ts';
import { assertWireSafe, flat, has, only, parseWithPython } from './support.ts';

const ARRIVAL = new Date('2026-11-23T09:28:00Z');
const NOW = new Date('2026-11-23T10:00:00Z');
const UNTIL = new Date('2026-11-28T09:28:00Z');

const ORIGINAL = Buffer.from(
  [
    'Received: from app.example.com ([192.0.2.7]) by relay.example.net',
    'From: Alice <alice@example.com>',
    'To: bob@example.net, carol@example.org',
    'Subject: Quarterly figures',
    'Date: Mon, 23 Nov 2026 09:27:00 +0000',
    'Message-ID: <q4@example.com>',
    '',
    'Dear Bob, dear Carol,',
    'the figures are attached in spirit.',
    '',
  ].join('\r\n'),
);

const BOB: DsnRecipient = {
  address: 'bob@example.net',
  originalRecipient: 'rfc822;Bob.Original@example.net',
  reply: { code: 550, enhanced: '5.1.1', text: '<bob@example.net>: Recipient address rejected: User unknown in virtual mailbox table' },
  remoteMta: 'mx1.example.net',
  lastAttempt: new Date('2026-11-23T09:59:00Z'),
};
const CAROL: DsnRecipient = {
  address: 'carol@example.org',
  reply: { code: 552, enhanced: '5.2.2', text: 'Mailbox full\nTry again later' },
  remoteMta: 'mx.example.org',
  lastAttempt: new Date('2026-11-23T09:58:00Z'),
};

function request(over: Partial<DsnRequest> = {}, envelope: Partial<DsnRequest['envelope']> = {}): DsnRequest {
  return {
    action: 'failed',
    recipients: [BOB, CAROL],
    original: ORIGINAL,
    envelope: { sender: 'alice@example.com', envid: 'QQ314159', ret: 'FULL', arrival: ARRIVAL, ...envelope },
    reportingMta: 'relay.example.net',
    from: 'mailer-daemon@relay.example.net',
    returnContentLimit: 100 * 1024,
    date: NOW,
    ...over,
  };
}

test('a failure notice is a multipart/report of three parts with every RFC 3464 field', async () => {
  const dsn = buildDsn(request());
  assert.equal(dsn.mailFrom, '', 'the notice goes out with the null sender');
  assert.equal(dsn.rcptTo, 'alice@example.com');
  assert.equal(dsn.smtpUtf8, false);
  assert.equal(dsn.returned, 'message');
  assertWireSafe(dsn.message);

  const m = await parseWithPython(dsn.message);
  assert.deepEqual(m.defects, []);
  assert.equal(m.type, 'multipart/report');
  assert.equal(m.params['report-type'], 'delivery-status');
  assert.deepEqual(
    m.parts.map((p) => p.type),
    ['text/plain', 'message/delivery-status', 'message/rfc822'],
  );
  for (const p of m.parts) assert.deepEqual(p.defects, [], `${p.type} parsed without defects`);

  assert.equal(only(m.fields, 'From'), 'Mail Delivery System <mailer-daemon@relay.example.net>');
  assert.equal(only(m.fields, 'To'), 'alice@example.com');
  assert.equal(only(m.fields, 'Subject'), 'Undelivered Mail Returned to Sender');
  assert.equal(only(m.fields, 'Date'), 'Mon, 23 Nov 2026 10:00:00 +0000');
  assert.match(only(m.fields, 'Message-ID'), /^<[0-9a-f-]{36}@relay\.example\.net>$/);
  assert.equal(only(m.fields, 'MIME-Version'), '1.0');
  assert.equal(only(m.fields, 'Auto-Submitted'), 'auto-replied');

  const blocks = m.parts[1]!.blocks!;
  assert.equal(blocks.length, 3, 'one per-message block and one block per recipient');
  const [perMessage, bob, carol] = blocks as [(typeof blocks)[0], (typeof blocks)[0], (typeof blocks)[0]];
  assert.deepEqual(perMessage, [
    ['Reporting-MTA', 'dns; relay.example.net'],
    ['Original-Envelope-Id', 'QQ314159'],
    ['Arrival-Date', 'Mon, 23 Nov 2026 09:28:00 +0000'],
  ]);
  assert.deepEqual(bob, [
    ['Original-Recipient', 'rfc822; Bob.Original@example.net'],
    ['Final-Recipient', 'rfc822; bob@example.net'],
    ['Action', 'failed'],
    ['Status', '5.1.1'],
    ['Remote-MTA', 'dns; mx1.example.net'],
    ['Diagnostic-Code', 'smtp; 550 5.1.1 <bob@example.net>: Recipient address rejected: User unknown in virtual mailbox table'],
    ['Last-Attempt-Date', 'Mon, 23 Nov 2026 09:59:00 +0000'],
  ]);
  assert.equal(has(carol, 'Original-Recipient'), false, 'no ORCPT, no Original-Recipient');
  assert.equal(only(carol, 'Status'), '5.2.2');
  assert.equal(only(carol, 'Diagnostic-Code'), 'smtp; 552 5.2.2 Mailbox full Try again later', 'a multi-line reply on one logical line');
  assert.equal(has(carol, 'Will-Retry-Until'), false, 'a failure is not retried');

  const text = flat(m.parts[0]!.text!);
  assert.match(text, /could not be delivered/);
  assert.match(
    text,
    /<bob@example\.net> The receiving server mx1\.example\.net answered: 550 5\.1\.1 <bob@example\.net>: Recipient address rejected: User unknown/,
  );
  assert.match(text, /What you can do: check the address for typing mistakes/);
  assert.match(text, /552 5\.2\.2-Mailbox full 552 5\.2\.2 Try again later/, 'a multi-line reply keeps its lines');
  assert.match(text, /mailbox is full/);
  assert.match(text, /Your message is attached below/);

  const returned = m.parts[2]!.message!;
  assert.equal(only(returned.fields, 'Subject'), 'Quarterly figures');
  assert.equal(only(returned.fields, 'Message-ID'), '<q4@example.com>');
  assert.match(returned.body, /^Dear Bob, dear Carol,\r?\nthe figures are attached in spirit\./);
  // Octet for octet, final CRLF included, so the original's own DKIM signature still verifies inside.
  const boundary = m.params['boundary']!;
  assert.ok(dsn.message.includes(Buffer.concat([Buffer.from('7bit\r\n\r\n'), ORIGINAL, Buffer.from(`\r\n--${boundary}--\r\n`)])));
});

test('RET=HDRS returns the header only, as text/rfc822-headers', async () => {
  const dsn = buildDsn(request({}, { ret: 'HDRS' }));
  assert.equal(dsn.returned, 'headers');
  const m = await parseWithPython(dsn.message);
  const part = m.parts[2]!;
  assert.equal(part.type, 'text/rfc822-headers');
  assert.match(part.text!, /^Received: from app\.example\.com/);
  assert.match(part.text!, /Subject: Quarterly figures\r?\nDate: Mon, 23 Nov 2026 09:27:00 \+0000\r?\nMessage-ID: <q4@example\.com>/);
  assert.doesNotMatch(part.text!, /Dear Bob/, 'no body');
  assert.match(flat(m.parts[0]!.text!), /you asked for headers only/);
});

test('an original over the size limit goes back as its header; without RET one within it goes back whole', async () => {
  const over = buildDsn(request({ returnContentLimit: ORIGINAL.length - 1 }));
  assert.equal(over.returned, 'headers');
  const m = await parseWithPython(over.message);
  assert.equal(m.parts[2]!.type, 'text/rfc822-headers');
  assert.doesNotMatch(m.parts[2]!.text!, /Dear Bob/);
  assert.match(flat(m.parts[0]!.text!), new RegExp(`larger than ${ORIGINAL.length - 1} octets`));

  const within = buildDsn(request({ returnContentLimit: ORIGINAL.length }, { ret: null }));
  assert.equal(within.returned, 'message');
  assert.equal((await parseWithPython(within.message)).parts[2]!.type, 'message/rfc822');
});

test('without ENVID and ORCPT the notice has no Original-Envelope-Id nor Original-Recipient', async () => {
  const dsn = buildDsn(request({ recipients: [{ ...BOB, originalRecipient: undefined }] }, { envid: null }));
  const [perMessage, bob] = (await parseWithPython(dsn.message)).parts[1]!.blocks!;
  assert.equal(has(perMessage!, 'Original-Envelope-Id'), false);
  assert.equal(has(bob!, 'Original-Recipient'), false);
  assert.equal(only(bob!, 'Final-Recipient'), 'rfc822; bob@example.net');
});

test('an ENVID outside printable ASCII is carried back in xtext', async () => {
  const dsn = buildDsn(request({}, { envid: 'id+1=2 x' }));
  const [perMessage] = (await parseWithPython(dsn.message)).parts[1]!.blocks!;
  assert.equal(only(perMessage!, 'Original-Envelope-Id'), 'id+2B1+3D2+20x');
});

test('a delay notice says until when the relay keeps trying, and returns the header only', async () => {
  const waiting: DsnRecipient = {
    address: 'bob@example.net',
    reply: { code: 451, enhanced: '4.7.1', text: 'Greylisted, try again later' },
    remoteMta: 'mx1.example.net',
    lastAttempt: new Date('2026-11-23T09:59:00Z'),
  };
  const dsn = buildDsn(request({ action: 'delayed', recipients: [waiting], willRetryUntil: UNTIL }));
  assert.equal(dsn.returned, 'headers');
  assertWireSafe(dsn.message);
  const m = await parseWithPython(dsn.message);
  assert.equal(only(m.fields, 'Subject'), 'Delivery Status Notification (Delay)');
  const bob = m.parts[1]!.blocks![1]!;
  assert.equal(only(bob, 'Action'), 'delayed');
  assert.equal(only(bob, 'Status'), '4.7.1');
  assert.equal(only(bob, 'Will-Retry-Until'), 'Sat, 28 Nov 2026 09:28:00 +0000');
  assert.equal(only(bob, 'Diagnostic-Code'), 'smtp; 451 4.7.1 Greylisted, try again later');
  const text = flat(m.parts[0]!.text!);
  assert.match(text, /has not yet been delivered/);
  assert.match(text, /keeps trying until Sat, 28 Nov 2026 09:28:00 \+0000/);
  assert.match(text, /You need not send the message again/);
  assert.equal(m.parts[2]!.type, 'text/rfc822-headers');
  assert.throws(() => buildDsn(request({ action: 'delayed', recipients: [waiting] })), /willRetryUntil/);
});

test('a message given up after temporary failures is failed with status 4.4.7 when the server named none', async () => {
  const expired: DsnRecipient = { address: 'dave@example.org', expired: true, problem: 'Connection refused by mx.example.org', lastAttempt: NOW };
  const dsn = buildDsn(request({ recipients: [expired] }));
  const m = await parseWithPython(dsn.message);
  const dave = m.parts[1]!.blocks![1]!;
  assert.equal(only(dave, 'Action'), 'failed');
  assert.equal(only(dave, 'Status'), '4.4.7');
  assert.equal(has(dave, 'Diagnostic-Code'), false, 'no server answered');
  assert.equal(has(dave, 'Remote-MTA'), false);
  assert.match(flat(m.parts[0]!.text!), /Connection refused by mx\.example\.org/);
  assert.match(flat(m.parts[0]!.text!), /has now given up/);
});

test('Remote-MTA of a server known by its address is an address literal (RFC 5321 §4.1.3)', async () => {
  const reply = { code: 550, enhanced: '5.1.1', text: 'No such user' };
  const byAddress: DsnRecipient[] = [
    { address: 'a@example.org', reply, remoteMta: '192.0.2.25', lastAttempt: NOW },
    { address: 'b@example.org', reply, remoteMta: '2001:db8::25', lastAttempt: NOW },
  ];
  const m = await parseWithPython(buildDsn(request({ recipients: byAddress })).message);
  assert.deepEqual(
    m.parts[1]!.blocks!.slice(1).map((block) => only(block, 'Remote-MTA')),
    ['dns; [192.0.2.25]', 'dns; [IPv6:2001:db8::25]'],
  );
});

test('internationalized addresses stay 7-bit in the report (RFC 6533 utf-8-addr-xtext) and readable in the notice', async () => {
  const jorg: DsnRecipient = {
    address: 'jörg+tag@bücher.example',
    originalRecipient: 'utf-8;j\\x{F6}rg+tag@b\\x{FC}cher.example',
    reply: { code: 550, enhanced: '5.1.1', text: 'Unbekannter Empfänger' },
    remoteMta: 'mx.xn--bcher-kva.example',
    lastAttempt: NOW,
  };
  const dsn = buildDsn(request({ recipients: [jorg] }, { sender: 'élodie@example.com' }));
  assert.equal(dsn.rcptTo, 'élodie@example.com');
  assert.equal(dsn.smtpUtf8, true, 'the notice goes to a UTF-8 address');
  // RFC 6532: the one 8-bit field is To:, which cannot be written otherwise.
  assertWireSafe(dsn.message, [/^To: <élodie@example\.com>$/]);
  const m = await parseWithPython(dsn.message);
  assert.equal(only(m.fields, 'To'), 'élodie@example.com');
  const block = m.parts[1]!.blocks![1]!;
  assert.equal(only(block, 'Final-Recipient'), 'utf-8; j\\x{F6}rg\\x{2B}tag@b\\x{FC}cher.example');
  assert.equal(only(block, 'Original-Recipient'), 'utf-8; j\\x{F6}rg\\x{2B}tag@b\\x{FC}cher.example', 'the ORCPT is not escaped twice');
  assert.equal(only(block, 'Diagnostic-Code'), 'smtp; 550 5.1.1 Unbekannter Empf?nger');
  assert.match(flat(m.parts[0]!.text!), /<jörg\+tag@bücher\.example>/);
  assert.match(flat(m.parts[0]!.text!), /Unbekannter Empfänger/);
});

test('an 8-bit original goes back as its header, quoted-printable, and decodes to the same octets', async () => {
  const original = Buffer.from('From: Zoë <zoe@example.com>\r\nSubject: Grüße\r\n\r\nMit freundlichen Grüßen\r\n', 'utf8');
  const dsn = buildDsn(request({ original }));
  assert.equal(dsn.returned, 'headers');
  assertWireSafe(dsn.message);
  const m = await parseWithPython(dsn.message);
  const part = m.parts[2]!;
  assert.equal(part.type, 'text/rfc822-headers');
  assert.equal(only(part.fields, 'Content-Transfer-Encoding'), 'quoted-printable');
  assert.equal(part.text!.replace(/\r?\n/g, '\r\n'), 'From: Zoë <zoe@example.com>\r\nSubject: Grüße\r\n');
  assert.match(flat(m.parts[0]!.text!), /holds 8-bit data/);
});

test('an overlong reply and recipient list stay within 998 octets a line', async () => {
  const words = Array.from({ length: 300 }, (_, i) => `word${i}`).join(' ');
  const token = 'x'.repeat(1500);
  const recipients: DsnRecipient[] = Array.from({ length: 50 }, (_, i) => ({
    address: `user${i}@example.net`,
    reply: { code: 554, enhanced: '5.7.1', text: i === 0 ? `${words} ${token}` : 'Rejected by policy' },
    lastAttempt: NOW,
  }));
  const dsn = buildDsn(request({ recipients }));
  assertWireSafe(dsn.message);
  const m = await parseWithPython(dsn.message);
  const blocks = m.parts[1]!.blocks!;
  assert.equal(blocks.length, 51, 'every recipient of the pass in one notice');
  const diagnostic = only(blocks[1]!, 'Diagnostic-Code');
  assert.ok(diagnostic.startsWith(`smtp; 554 5.7.1 ${words.slice(0, 200)}`), 'the reply unfolds to its words');
  assert.ok(diagnostic.length < 998, 'cut to fit a line');
  assert.match(flat(m.parts[0]!.text!), /refused the message by its policy/);
});

test('a reply whose enhanced code contradicts its reply code reports the reply class', async () => {
  const odd: DsnRecipient = { address: 'bob@example.net', reply: { code: 550, enhanced: '4.2.0', text: 'Confused' }, lastAttempt: NOW };
  const broken: DsnRecipient = { address: 'carol@example.org', reply: { code: 550, enhanced: '5.1', text: 'Truncated' }, lastAttempt: NOW };
  const blocks = (await parseWithPython(buildDsn(request({ recipients: [odd, broken] })).message)).parts[1]!.blocks!;
  assert.equal(only(blocks[1]!, 'Status'), '5.0.0');
  assert.equal(only(blocks[1]!, 'Diagnostic-Code'), 'smtp; 550 4.2.0 Confused', "the server's own words");
  assert.equal(only(blocks[2]!, 'Status'), '5.0.0');
  assert.equal(only(blocks[2]!, 'Diagnostic-Code'), 'smtp; 550 Truncated', 'a malformed enhanced code is left out');
});

test('a notice is never built for the null sender nor without recipients', () => {
  assert.throws(() => buildDsn(request({}, { sender: '' })), /null sender/);
  assert.throws(() => buildDsn(request({}, { sender: '<>' })), /null sender/);
  assert.throws(() => buildDsn(request({ recipients: [] })), /at least one recipient/);
});

test('the notice signed by our signer verifies with python3-dkim (RSA and Ed25519) and Mail::DKIM', async () => {
  const rsa = rsaKey('bounce-rsa', 2048);
  const ed = ed25519Key('bounce-ed');
  const records = recordsOf([rsa, ed]);
  for (const ret of ['FULL', 'HDRS'] as const) {
    const dsn = buildDsn(request({ from: 'mailer-daemon@example.com' }, { ret }));
    const signatures = signMessage(dsn.message, [rsa.key, ed.key], {
      headerCanonicalization: 'relaxed',
      bodyCanonicalization: 'relaxed',
      headers: ['From', 'To', 'Subject', 'Date', 'Message-ID', 'MIME-Version', 'Content-Type', 'Content-Transfer-Encoding', 'Auto-Submitted'],
      oversign: ['From', 'Subject'],
      signTime: NOW,
    });
    const signed = Buffer.concat([Buffer.from(signatures, 'latin1'), dsn.message]);
    assert.deepEqual(await verifyWithDkimpy(signed, records), [true, true], `RET=${ret}`);
    assert.deepEqual((await verifyWithMailDkim(signed, records))[0], 'pass', `RET=${ret}, RSA`);
  }
});
