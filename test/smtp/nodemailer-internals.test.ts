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

test('choosePerConnection: the message is chosen on the pooled connection after its EHLO, before MAIL FROM; an Error sends nothing and frees the connection', async () => {
  const { SMTPServer } = await import('smtp-server');
  const nodemailer = (await import('nodemailer')).default;
  const { Readable } = await import('node:stream');
  const commands: string[] = [];
  const bodies: string[] = [];
  let connections = 0;
  const server = new SMTPServer({
    authOptional: true,
    disabledCommands: ['STARTTLS', 'AUTH'],
    logger: false,
    size: 1_000_000, // announces SIZE, so MAIL FROM carries the chosen message's size
    onConnect(_session, callback) {
      connections++;
      callback();
    },
    onMailFrom(address, _session, callback) {
      commands.push(`MAIL ${address.address} ${JSON.stringify(address.args)}`);
      callback();
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
  const transport = nodemailer.createTransport({ host: '127.0.0.1', port, pool: true, maxConnections: 1, logger: false });
  internals.choosePerConnection(transport);
  try {
    const seen: string[][] = [];
    const message = 'Subject: chosen\r\n\r\nbody\r\n';
    const forConnection: internals.ForConnection = async (connection) => {
      seen.push(internals.announcedExtensions(connection));
      return { raw: Readable.from([Buffer.from(message)]), size: message.length, use8BitMime: true };
    };
    await transport.sendMail({ envelope: { from: 'a@example.com', to: ['b@example.net'] }, raw: 'never sent\r\n', forConnection } as never);
    assert.ok(seen[0]!.includes('8BITMIME'), 'the connection had answered EHLO');
    assert.deepEqual(bodies, [message]);
    assert.match(commands[0]!, /"BODY":"8BITMIME"/);
    assert.match(commands[0]!, new RegExp(`"SIZE":"${message.length}"`));

    const refusal = new Error('not for this connection');
    await assert.rejects(
      transport.sendMail({ envelope: { from: 'c@example.com', to: ['d@example.net'] }, raw: 'x\r\n', forConnection: async () => refusal } as never),
      (err) => err === refusal,
    );
    assert.equal(commands.length, 1, 'no MAIL FROM for the refused message');

    await transport.sendMail({ envelope: { from: 'e@example.com', to: ['f@example.net'] }, raw: 'x\r\n', forConnection } as never);
    assert.deepEqual([bodies.length, connections], [2, 1], 'the same connection carries the next message');
  } finally {
    transport.close();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
});
