// nodemailer's undocumented helpers are reached through one module of ours,
// so a nodemailer upgrade that changes them breaks that module and this test.
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { test } from 'node:test';
import * as internals from '../../src/smtp/nodemailer-internals.ts';

const ROOT = join(import.meta.dirname, '..', '..');

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? sources(join(dir, e.name)) : e.name.endsWith('.ts') ? [join(dir, e.name)] : [],
  );
}

test('nothing in src/ imports nodemailer internals except src/smtp/nodemailer-internals.ts', () => {
  const own = sources(join(ROOT, 'src'));
  assert.ok(own.length > 20, 'the source files were found');
  const offenders = own
    .filter((file) => relative(ROOT, file) !== join('src', 'smtp', 'nodemailer-internals.ts'))
    .filter((file) => /from ['"]nodemailer\/lib\//.test(readFileSync(file, 'utf8')))
    .map((file) => relative(ROOT, file));
  assert.deepEqual(offenders, []);
});

test('each re-exported helper still does what we rely on', () => {
  assert.equal(internals.qpEncode(Buffer.from('a=b\u00e9')), 'a=3Db=C3=A9');
  assert.match(internals.qpWrap('x'.repeat(100), 76), /^x{75}=\r\nx{25}$/);
  // A hyphen that starts a line stays as it is (libqp would write "=2D").
  assert.equal(internals.qpWrap(internals.qpEncode(Buffer.from('-- \r\n-x')), 76), '--=20\r\n-x');
  assert.equal(internals.encodeWord(Buffer.from('\u00e9t\u00e9'), 'B', 60), '=?UTF-8?B?w6l0w6k=?=');
  assert.equal(internals.encodeWord(Buffer.from('-\u00e9'), 'Q', 60), '=?UTF-8?Q?-=C3=A9?=');
  const parsed = internals.parseHeaderValue('text/plain; charset="utf-8" (comment)', { stripComments: true });
  assert.equal(parsed.value, 'text/plain');
  assert.equal(parsed.params.charset, 'utf-8');
  assert.equal(typeof internals.SMTPConnection, 'function');
  assert.deepEqual(internals.announcedExtensions(Object.assign(Object.create(internals.SMTPConnection.prototype), { _supportedExtensions: ['8BITMIME'] })), [
    '8BITMIME',
  ]);
});

test("RCPT TO gets each recipient's own NOTIFY and ORCPT, and only from a host that announces DSN", () => {
  const own = new Map([
    ['a@example.net', { notify: ['SUCCESS', 'FAILURE'], orcpt: 'rfc822;o+x@example.org' }],
    ['b@example.net', { notify: ['NEVER'] }],
  ]);
  const connection = (to: string, extensions: string[]) =>
    Object.assign(Object.create(internals.SMTPConnection.prototype), {
      _envelope: { [internals.RCPT_DSN]: own },
      _recipientQueue: ['earlier@example.net', to],
      _supportedExtensions: extensions,
    }) as { _getDsnRcptToArgs(): string };
  assert.equal(connection('a@example.net', ['DSN'])._getDsnRcptToArgs(), ' NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;o+2Bx@example.org');
  assert.equal(connection('b@example.net', ['DSN'])._getDsnRcptToArgs(), ' NOTIFY=NEVER');
  assert.equal(connection('c@example.net', ['DSN'])._getDsnRcptToArgs(), '');
  assert.equal(connection('a@example.net', [])._getDsnRcptToArgs(), '');
  assert.equal(internals.envelopeAddress('safe@jõgeva.ee'), 'safe@xn--jgeva-dua.ee');
  assert.equal(internals.envelopeAddress('plain@example.net'), 'plain@example.net');
});

test('CHUNKING, which nodemailer does not read, is read from the EHLO answer', () => {
  const connection = Object.assign(Object.create(internals.SMTPConnection.prototype), { _supportedExtensions: [], _supportedAuth: [] }) as {
    _parseEhloExtensions(reply: string): void;
  };
  connection._parseEhloExtensions('250-mx.example.net\r\n250-PIPELINING\r\n250-CHUNKING\r\n250 8BITMIME');
  assert.deepEqual(internals.announcedExtensions(connection as never).sort(), ['8BITMIME', 'CHUNKING', 'PIPELINING']);
});

test('sendPipelined: one transaction after another on the same connection, replies read as send() reads them', async () => {
  const { SMTPServer } = await import('smtp-server');
  const commands: string[] = [];
  const bodies: string[] = [];
  const server = new SMTPServer({
    authOptional: true,
    disabledCommands: ['STARTTLS', 'AUTH'],
    logger: false,
    size: 1_000_000, // announces SIZE, so MAIL FROM carries the message's size
    onMailFrom(address, _session, callback) {
      commands.push(`MAIL ${address.address} ${JSON.stringify(address.args)}`);
      callback();
    },
    onRcptTo(address, _session, callback) {
      callback(address.address.startsWith('no') ? Object.assign(new Error('No such user'), { responseCode: 550 }) : undefined);
    },
    onData(stream, _session, callback) {
      const chunks: Buffer[] = [];
      stream.on('data', (c: Buffer) => chunks.push(c));
      stream.on('end', () => {
        bodies.push(Buffer.concat(chunks).toString());
        callback();
      });
    },
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.server.address() as { port: number }).port;
  const connection = new internals.SMTPConnection({ host: '127.0.0.1', port, logger: false });
  try {
    await new Promise<void>((resolve, reject) => connection.connect((err) => (err ? reject(err) : resolve())));
    assert.ok(internals.announcedExtensions(connection).includes('PIPELINING'));
    const body = 'Subject: x\r\n\r\nbody\r\n';
    const send = (to: string[]) =>
      new Promise<{ err: Error | null; info?: internals.PipelinedInfo }>((resolve) =>
        internals.sendPipelined(
          connection,
          { from: 'a@example.com', to, size: body.length, use8BitMime: true },
          false,
          async (socket) => void socket.write(`${body}.\r\n`),
          (err, info) => resolve({ err, info }),
        ),
      );
    const first = await send(['b@example.net', 'nobody@example.net']);
    assert.equal(first.err, null);
    assert.deepEqual(first.info!.accepted, ['b@example.net']);
    assert.match(first.info!.response, /^250 /);
    assert.deepEqual(
      first.info!.rejectedErrors!.map((e) => [(e as { recipient?: string }).recipient, (e as { command?: string }).command]),
      [['nobody@example.net', 'RCPT TO']],
    );
    assert.match(commands[0]!, /"BODY":"8BITMIME"/);
    assert.match(commands[0]!, new RegExp(`"SIZE":"${body.length}"`));
    const refused = await send(['nobody@example.net']);
    assert.equal((refused.err as { code?: string }).code, 'EENVELOPE');
    assert.equal((refused.err as { rejectedErrors?: unknown[] }).rejectedErrors?.length, 1);
    await new Promise<void>((resolve, reject) => connection.reset((err) => (err ? reject(err) : resolve())));
    const third = await send(['c@example.net']);
    assert.equal(third.err, null);
    assert.deepEqual(bodies, [body, body], 'the refused transaction sent no message');
  } finally {
    connection.close();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
});
