// Mail signed by RSA and Ed25519 keys in a SoftHSM token, relayed by the real
// `serve`, verified by dkimpy, Mail::DKIM and OpenDKIM, each fetching the
// public keys from a real authoritative DNS server (knotd) serving the zone
// `keys dns` prints.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { serve } from '../../cli/support.ts';
import { verifyWithDkimpyDns, verifyWithMailDkimDns } from '../../helpers/dns-verify.ts';
import { startKnot } from '../../helpers/knot.ts';
import { verifyWithOpenDkimDns } from '../../helpers/opendkim-verify.ts';
import { skipWithout } from '../../helpers/tools.ts';
import { ok, outbox, relay, setup, stop } from './support.ts';

const results = (verdicts: { result: string }[]) => verdicts.map((v) => v.result);

describe('token signatures verified over DNS', { skip: skipWithout('softhsm2-util', 'knotd', 'dkimpy', 'Mail::DKIM', 'opendkim') }, () => {
  test('RSA and Ed25519 keys in the token: dkimpy, Mail::DKIM and OpenDKIM verify against knotd; an altered copy fails with each', async () => {
    const s = setup();
    await ok(s, ['keys', 'generate', '--domain', 'example.com', '--selector', 'hsmrsa', '--in-token', '--activate']);
    await ok(s, ['keys', 'generate', '--domain', 'example.com', '--selector', 'hsmed', '--algorithm', 'ed25519', '--in-token', '--activate']);
    const running = await serve(['--config', s.config], s.dir, { env: s.env });
    try {
      const reply = await relay(running.port());
      assert.ok(reply.ok, reply.response);
    } finally {
      await stop(running);
    }
    const [signed] = outbox(s);
    assert.ok(signed, 'nothing delivered');
    const records = await ok(s, ['keys', 'dns', '--format', 'zone']);
    const knot = await startKnot({
      'example.com': [
        '$ORIGIN example.com.',
        '$TTL 300',
        '@ SOA ns1.example.com. hostmaster.example.com. 1 3600 600 86400 300',
        '@ NS ns1.example.com.',
        'ns1 A 127.0.0.1',
        records,
        '',
      ].join('\n'),
    });
    try {
      // The RSA signature is added last, so it is the first field (RFC 6376 §5.6).
      const order = [...signed.toString('latin1').matchAll(/^DKIM-Signature:[^]*?\bs=([a-z0-9]+)/gim)].map((m) => m[1]);
      assert.deepEqual(order.toSorted(), ['hsmed', 'hsmrsa']);
      const rsa = order.indexOf('hsmrsa');
      assert.deepEqual(results(await verifyWithDkimpyDns(signed, knot.address)), ['pass', 'pass']);
      assert.equal(results(await verifyWithMailDkimDns(signed, knot.address))[rsa], 'pass', 'Mail::DKIM (Debian 12: RSA only)');
      assert.deepEqual(results(await verifyWithOpenDkimDns(signed, knot.address, ['example.com'])), ['pass', 'pass']);

      const altered = Buffer.from(signed.toString('latin1').replace('signed in an HSM', 'signed in an HSN'), 'latin1');
      assert.deepEqual(results(await verifyWithDkimpyDns(altered, knot.address)), ['fail', 'fail']);
      assert.equal(results(await verifyWithMailDkimDns(altered, knot.address))[rsa], 'fail');
      assert.deepEqual(results(await verifyWithOpenDkimDns(altered, knot.address, ['example.com'])), ['fail', 'fail']);
    } finally {
      await knot.stop();
    }
  });
});
