// Password guessing in parallel over real SMTP sessions: the failure is
// reserved before scrypt runs, so a burst of AUTH on many connections from
// one address gets no more checks than sequential tries would, and fresh
// addresses are bounded by listen.maxAuthFailuresPerMinute. The checks are
// counted where they happen, in crypto.scrypt, not by timing.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { hashPassword } from '../../src/access/passwords.ts';
import { RawSmtpClient } from '../fuzz/smtp-client.ts';
import { countScrypt } from '../helpers/scrypt-count.ts';
import { startTestRelay, type TestRelay } from '../helpers/relay-harness.ts';

const plainAuth = (user: string, pass: string) => `AUTH PLAIN ${Buffer.from(`\0${user}\0${pass}`).toString('base64')}`;

/** Sessions greeted and past EHLO, from `addresses` (one session each). */
async function sessions(port: number, addresses: string[]): Promise<RawSmtpClient[]> {
  return Promise.all(
    addresses.map(async (localAddress) => {
      const c = await RawSmtpClient.connect({ port, localAddress });
      assert.equal((await c.readReply(5000))?.code, 220, `greeting for ${localAddress}`);
      assert.equal((await c.command('EHLO attacker.example', 5000))?.code, 250);
      return c;
    }),
  );
}

describe('AUTH in parallel', () => {
  let userHash: string;
  const relays: TestRelay[] = [];
  const start = async (listen: Record<string, unknown>) => {
    const relay = await startTestRelay({
      listen: { maxClients: 50, maxClientsPerIp: 25, maxUnadmittedClients: 50, maxUnadmittedClientsPerIp: 25, ...listen },
      // In clear, so the figure is AUTH alone: TLS adds nothing to the race.
      access: { networks: ['127.0.0.1/32'], users: [{ name: 'exchange', password: userHash }], allowInsecureAuth: true },
    });
    relays.push(relay);
    return relay;
  };
  before(async () => {
    userHash = await hashPassword('correct horse');
  });
  after(async () => {
    for (const relay of relays) await relay.close();
  });

  test('20 connections from one address guessing at once, round after round: maxAuthFailures passwords checked, the rest 454 or 421 unchecked', async () => {
    const relay = await start({ maxAuthFailures: 3, authPenaltySeconds: 300 });
    const clients = await sessions(
      relay.port,
      Array.from({ length: 20 }, () => '127.0.0.2'),
    );
    const scrypt = countScrypt();
    const codes: number[] = [];
    try {
      for (let round = 0; round < 4; round++) {
        // A 421 reply comes just before the close: wait for each closing session to end.
        await Promise.all(clients.filter((c) => /^421 /.test(c.replies.at(-1)?.raw ?? '')).map((c) => c.waitClosed(5000)));
        const open = clients.filter((c) => !c.closed && !c.serverEnded); // 421 closes a session
        const replies = await Promise.all(open.map((c, i) => c.command(plainAuth('exchange', `guess ${round}.${i}`), 15_000)));
        codes.push(...replies.map((r) => r?.code ?? 0));
      }
    } finally {
      scrypt.stop();
      for (const c of clients) await c.destroy();
    }
    const tally = (code: number) => codes.filter((c) => c === code).length;
    assert.equal(scrypt.count(), 3, `passwords checked; replies ${JSON.stringify({ 535: tally(535), 421: tally(421), 454: tally(454) })}`);
    assert.equal(tally(535), 2, 'two wrong passwords answered 535, the third closes with 421');
    assert.equal(tally(535) + tally(421) + tally(454), codes.length, `only 535, 421 and 454: ${JSON.stringify(codes)}`);
    assert.equal(codes.filter((c) => c === 235).length, 0);
  });

  test('the right password from the same address while its guesses are being answered still logs in once the address is free', async () => {
    const relay = await start({ maxAuthFailures: 3 });
    const [guesser, owner] = await sessions(relay.port, ['127.0.0.3', '127.0.0.3']);
    const wrong = guesser!.command(plainAuth('exchange', 'wrong'), 10_000);
    await new Promise((r) => setImmediate(r));
    // While the wrong password is checked and its answer held, the address gets no other check.
    const busy = await owner!.command(plainAuth('exchange', 'correct horse'), 10_000);
    assert.match(busy?.raw ?? '(none)', /^454 4\.7\.0 A login from 127\.0\.0\.3 is still being checked, try again in \d+ s/);
    assert.equal((await wrong)?.code, 535);
    assert.equal((await owner!.command(plainAuth('exchange', 'correct horse'), 10_000))?.code, 235);
    await guesser!.destroy();
    await owner!.destroy();
  });

  test('a fresh address per guess: at most listen.maxAuthFailuresPerMinute passwords are checked, the rest are told 454', async () => {
    const relay = await start({ maxAuthFailuresPerMinute: 5 });
    const addresses = Array.from({ length: 20 }, (_, i) => `127.0.1.${i + 1}`);
    const clients = await sessions(relay.port, addresses);
    const scrypt = countScrypt();
    let replies;
    try {
      replies = await Promise.all(clients.map((c, i) => c.command(plainAuth('exchange', `guess ${i}`), 15_000)));
    } finally {
      scrypt.stop();
      for (const c of clients) await c.destroy();
    }
    assert.equal(scrypt.count(), 5);
    assert.equal(replies.filter((r) => r?.code === 535).length, 5);
    const refused = replies.filter((r) => r?.code === 454);
    assert.equal(refused.length, 15);
    assert.match(refused[0]!.raw, /^454 4\.7\.0 Too many failed logins on this relay, try again in \d+ s/);
  });
});
