// The pure decision: nodemailer's error → what the client hears.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { failureReply, type SendError, type UpstreamSide } from '../../src/delivery/failure-reply.ts';
import { combinedReply, replyText } from '../../src/smtp/reply.ts';

const SIDE: UpstreamSide = { host: 'relay.example.net', port: 587, user: 'relay@example.com', requireTLS: true, secure: false, name: 'dkim.example.com' };
/** The reply as the client reads it: code, text after the code, and the flags. */
const reply = (err: SendError, side: UpstreamSide = SIDE) => {
  const got = failureReply(err, { kind: 'smart-host', side });
  return { code: got.code, text: replyText(got), relaySide: got.relaySide, relearn: got.relearn };
};
const error = (code: string, command: string, response?: string, extra: Partial<SendError> = {}): SendError => ({
  code,
  command,
  response,
  responseCode: response ? Number(response.slice(0, 3)) : undefined,
  message: 'failed',
  ...extra,
});

test("a refusal of the message or a recipient is the upstream's own reply", () => {
  assert.deepEqual(reply(error('EMESSAGE', 'DATA', '554 5.7.1 Message rejected as spam')), {
    code: 554,
    text: '5.7.1 Message rejected as spam',
    relaySide: false,
    relearn: false,
  });
  assert.deepEqual(reply(error('EENVELOPE', 'RCPT TO', '550 5.1.1 <x@example.net>: no such user')), {
    code: 550,
    text: '5.1.1 <x@example.net>: no such user',
    relaySide: false,
    relearn: false,
  });
  assert.deepEqual(reply(error('EENVELOPE', 'MAIL FROM', '452 4.3.1 Insufficient system storage')).code, 452);
  const multi = reply(error('EMESSAGE', 'DATA', '552-5.3.4 Message too big\r\n552 5.3.4 for this host'));
  // RFC 2034 §4: the enhanced code each line repeats is said once.
  assert.deepEqual([multi.code, multi.text], [552, '5.3.4 Message too big for this host']);
});

test("an authentication-required or relay-denied refusal is the relay's configuration: 451", () => {
  const auth = reply(error('EENVELOPE', 'MAIL FROM', '530 5.7.0 Authentication required'), { ...SIDE, user: undefined });
  assert.deepEqual([auth.code, auth.relaySide], [451, true]);
  assert.match(auth.text, /^4\.7\.0 upstream relay\.example\.net requires a login .*530 5\.7\.0 Authentication required.*: set delivery\.upstream\.auth$/);
  const withUser = reply(error('EENVELOPE', 'MAIL FROM', '553 5.7.1 Sender address rejected: not logged in'));
  assert.match(withUser.text, /^4\.7\.0 .*delivery\.upstream\.auth for user relay@example\.com/);
  const relay = reply(error('EENVELOPE', 'RCPT TO', '554 5.7.1 <a@example.org>: Relay access denied'));
  assert.equal(relay.code, 451);
  assert.match(
    relay.text,
    /^4\.7\.1 upstream relay\.example\.net refused to relay for us .*Relay access denied.*user relay@example\.com of delivery\.upstream\.auth may not relay there$/,
  );
  assert.equal(reply(error('EENVELOPE', 'RCPT TO', '550 5.7.1 Unable to relay for a@example.org')).code, 451);
  assert.match(
    reply(error('EENVELOPE', 'MAIL FROM', '530 5.7.0 Must issue a STARTTLS command first')).text,
    /^4\.7\.0 .*requires TLS.*delivery\.upstream\.requireTLS/,
  );
});

test('a refusal that reads as a missing extension is temporary and asks to learn again', () => {
  const utf8 = reply(error('EENVELOPE', 'MAIL FROM', '553 5.6.7 SMTPUTF8 not supported'));
  assert.deepEqual([utf8.code, utf8.relaySide, utf8.relearn], [451, true, true]);
  assert.equal(reply(error('EMESSAGE', 'DATA', '554 5.6.1 8-bit data not accepted without BODY=8BITMIME')).relearn, true);
});

test("every failure on the relay's side of the connection is a 451 naming the setting", () => {
  const cases: [SendError, RegExp][] = [
    [
      error('ETLS', 'STARTTLS', '500 Error: command not recognized'),
      /^4\.7\.10 delivery\.upstream\.requireTLS is set but relay\.example\.net offers no STARTTLS \(it answered "500 Error: command not recognized"\)/,
    ],
    [
      error('EAUTH', 'AUTH PLAIN', '535 5.7.8 bad creds'),
      /^4\.7\.8 upstream relay\.example\.net refused delivery\.upstream\.auth for user relay@example\.com: 535 5\.7\.8 bad creds$/,
    ],
    [error('EAUTH', 'AUTH LOGIN', '454 4.7.0 Temporary authentication failure'), /^4\.7\.0 .*could not check delivery\.upstream\.auth/],
    [
      error('EAUTH', 'AUTH PLAIN', '502 5.5.1 Error: command not implemented'),
      /^4\.7\.0 upstream relay\.example\.net offers no AUTH, but delivery\.upstream\.auth for user relay@example\.com is set/,
    ],
    [error('EAUTH', 'AUTH PLAIN', '538 5.7.11 Encryption required'), /^4\.7\.0 .*wants TLS/],
    [error('EPROTOCOL', 'CONN', '554 5.7.1 Your IP is not allowed'), /^4\.4\.1 upstream relay\.example\.net refused the session .*554 5\.7\.1/],
    [error('EPROTOCOL', 'CONN', '421 4.3.2 Service shutting down'), /^4\.4\.1 upstream relay\.example\.net refused the session/],
    [
      error('EPROTOCOL', 'HELO', '550 5.7.1 Bad HELO'),
      /^4\.5\.0 upstream relay\.example\.net did not accept HELO dkim\.example\.com .*delivery\.upstream\.name/,
    ],
    [error('ECONNECTION', 'EHLO', '421 4.7.0 Too many connections'), /^4\.5\.0 upstream relay\.example\.net did not accept EHLO/],
    [
      { code: 'ESOCKET', command: 'CONN', message: 'connect ECONNREFUSED 127.0.0.1:587', originalCode: 'ECONNREFUSED' },
      /^4\.4\.1 Upstream unavailable: connection refused \(delivery\.upstream\.host relay\.example\.net, port 587\)$/,
    ],
    [
      { code: 'EDNS', command: 'CONN', message: 'getaddrinfo ENOTFOUND relay.example.net', originalCode: 'ENOTFOUND' },
      /^4\.4\.1 Upstream unavailable: its name does not resolve/,
    ],
    [{ code: 'ETIMEDOUT', command: 'CONN', message: 'Greeting never received' }, /^4\.4\.1 Upstream unavailable: timed out/],
    [
      { code: 'ESOCKET', command: 'CONN', message: 'self-signed certificate' },
      /^4\.7\.5 the TLS certificate of upstream relay\.example\.net was not accepted \(self-signed certificate\): .*delivery\.upstream\.rejectUnauthorized: false$/,
    ],
    [
      {
        code: 'ETLS',
        command: 'STARTTLS',
        message: "Error initiating TLS - Hostname/IP does not match certificate's altnames: IP: 127.0.0.1 is not in the cert's list: ",
      },
      /^4\.7\.5 the TLS certificate .*altnames/,
    ],
    [
      { code: 'ESOCKET', command: 'CONN', message: 'ssl3_get_record:wrong version number' },
      /^4\.7\.5 TLS with upstream relay\.example\.net:587 failed \(ssl3_get_record:wrong version number\)/,
    ],
  ];
  for (const [err, text] of cases) {
    const got = reply(err);
    assert.equal(got.code, 451, `${err.command} ${err.response ?? err.message}`);
    assert.equal(got.relaySide, true);
    assert.match(got.text, text);
  }
});

test("STARTTLS refused without requireTLS still names TLS, never the upstream's code", () => {
  const got = reply(error('ETLS', 'STARTTLS', '454 4.7.0 TLS not available'), { ...SIDE, requireTLS: false });
  assert.equal(got.code, 451);
  assert.match(got.text, /^4\.7\.\d+ upstream relay\.example\.net announced STARTTLS but refused it/);
});

test("nodemailer's own size check against the announced SIZE is about the message", () => {
  const got = reply({ code: 'EMESSAGE', command: 'MAIL FROM', message: 'Message size larger than allowed 1000' });
  assert.deepEqual([got.code, got.relaySide], [552, false]);
});

test('a partial refusal passes on the temporary one first, and a relay-denied recipient is 451', () => {
  const rcpt = (response: string): SendError => ({ code: 'EENVELOPE', command: 'RCPT TO', response, responseCode: Number(response.slice(0, 3)) });
  const ok = { address: 'ok@example.net', reply: { code: 250, text: 'Ok' } };
  const mixed = combinedReply([
    ok,
    { address: 'gone@example.net', reply: failureReply(rcpt('550 5.1.1 no such user'), { kind: 'smart-host', side: SIDE }) },
    { address: 'later@example.net', reply: failureReply(rcpt('451 4.2.0 try later'), { kind: 'smart-host', side: SIDE }) },
  ]);
  assert.deepEqual([mixed.code, replyText(mixed)], [451, '4.2.0 try later (for <later@example.net>) (already accepted for ok@example.net)']);
  const denied = combinedReply([{ address: 'a@example.org', reply: failureReply(rcpt('554 5.7.1 Relay access denied'), { kind: 'smart-host', side: SIDE }) }]);
  assert.equal(denied.code, 451);
});
