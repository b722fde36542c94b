// The `mx` upstream against a DNS server and receiving hosts on loopback:
// routing by MX preference, fallbacks, DNS failures, per-recipient replies.
import assert from 'node:assert/strict';
import { replyText } from '../../src/smtp/reply.ts';
import { describe, test } from 'node:test';
import { a, mx, PLAIN_MESSAGE, withMxWorld } from './mx-world.ts';
import { bufferOctets } from '../../src/message/octets.ts';

const FROM = 'payroll@example.com';

const replies = (report: { recipients: { address: string; reply: { code: number; enhanced?: string | undefined } }[] }) =>
  report.recipients.map((r) => `${r.address} ${r.reply.code < 400 ? 'accepted' : 'refused'} ${r.reply.code} ${r.reply.enhanced}`);

describe('routing by MX', () => {
  test('the most preferred MX gets the mail; the less preferred is not contacted', () =>
    withMxWorld(
      { 'a.test': [mx(20, 'mx2.a.test'), mx(10, 'mx1.a.test')], 'mx1.a.test': [a('127.0.0.2')], 'mx2.a.test': [a('127.0.0.3')] },
      [{ address: '127.0.0.2' }, { address: '127.0.0.3' }],
      async ({ upstream, sinks }) => {
        const report = await upstream.deliver({ from: FROM, to: ['alice@a.test'] }, bufferOctets(PLAIN_MESSAGE));
        assert.deepEqual(replies(report), ['alice@a.test accepted 250 2.0.0']);
        assert.equal(report.code, 250);
        assert.match(replyText(report), /^2\.0\.0 Delivered to mx1\.a\.test \[127\.0\.0\.2\]: Ok: queued at 127\.0\.0\.2/);
        assert.deepEqual(
          sinks.sinks.get('127.0.0.2')!.received.map((r) => r.to),
          [['alice@a.test']],
        );
        assert.equal(sinks.sinks.get('127.0.0.3')!.connections, 0);
        assert.ok(sinks.sinks.get('127.0.0.2')!.received[0]!.raw.equals(PLAIN_MESSAGE), 'the bytes arrive unchanged');
      },
    ));

  test('a primary that is down: the secondary gets the mail', () =>
    withMxWorld(
      // Nothing listens on 127.0.0.9: the connection is refused.
      { 'a.test': [mx(10, 'mx1.a.test'), mx(20, 'mx2.a.test')], 'mx1.a.test': [a('127.0.0.9')], 'mx2.a.test': [a('127.0.0.3')] },
      [{ address: '127.0.0.3' }],
      async ({ upstream, sinks, lines }) => {
        const report = await upstream.deliver({ from: FROM, to: ['alice@a.test'] }, bufferOctets(PLAIN_MESSAGE));
        assert.deepEqual(replies(report), ['alice@a.test accepted 250 2.0.0']);
        assert.equal(sinks.sinks.get('127.0.0.3')!.received.length, 1);
        assert.ok(
          lines.some((l) => l.msg === 'mx session failed' && l.host === 'mx1.a.test' && /refused the connection/.test(String(l.reason))),
          JSON.stringify(lines),
        );
      },
    ));

  test('each address of a host is tried in turn', () =>
    withMxWorld(
      { 'a.test': [mx(10, 'mx1.a.test')], 'mx1.a.test': [a('127.0.0.9'), a('127.0.0.2')] },
      [{ address: '127.0.0.2' }],
      async ({ upstream, sinks }) => {
        const report = await upstream.deliver({ from: FROM, to: ['alice@a.test'] }, bufferOctets(PLAIN_MESSAGE));
        assert.deepEqual(replies(report), ['alice@a.test accepted 250 2.0.0']);
        assert.equal(sinks.sinks.get('127.0.0.2')!.received.length, 1);
      },
    ));

  test('every host down: a temporary 451 4.4.1 naming the last one tried', () =>
    withMxWorld(
      { 'a.test': [mx(10, 'mx1.a.test'), mx(20, 'mx2.a.test')], 'mx1.a.test': [a('127.0.0.8')], 'mx2.a.test': [a('127.0.0.9')] },
      [{ address: '127.0.0.2' }],
      async ({ upstream }) => {
        const report = await upstream.deliver({ from: FROM, to: ['alice@a.test'] }, bufferOctets(PLAIN_MESSAGE));
        assert.equal(report.code, 451);
        assert.match(replyText(report), /^4\.4\.1 mx2\.a\.test \[127\.0\.0\.9\]:\d+ refused the connection$/);
      },
    ));

  test('equal preferences are shuffled: the random source decides which is first', async () => {
    const records = { 'a.test': [mx(10, 'mx1.a.test'), mx(10, 'mx2.a.test')], 'mx1.a.test': [a('127.0.0.2')], 'mx2.a.test': [a('127.0.0.3')] };
    const sinks = [{ address: '127.0.0.2' }, { address: '127.0.0.3' }];
    const firstOf = async (values: number[]): Promise<string> => {
      let got = '';
      await withMxWorld(
        records,
        sinks,
        async ({ upstream, sinks: started }) => {
          await upstream.deliver({ from: FROM, to: ['alice@a.test'] }, bufferOctets(PLAIN_MESSAGE));
          got = [...started.sinks.values()]
            .filter((s) => s.received.length > 0)
            .map((s) => s.address)
            .join();
        },
        {},
        { random: () => values.shift() ?? 0.5 },
      );
      return got;
    };
    assert.equal(await firstOf([0.1, 0.9]), '127.0.0.2');
    assert.equal(await firstOf([0.9, 0.1]), '127.0.0.3');
  });

  test("no MX record: the domain's own address is the implicit MX", () =>
    withMxWorld({ 'a.test': [a('127.0.0.4')] }, [{ address: '127.0.0.4' }], async ({ upstream, sinks }) => {
      const report = await upstream.deliver({ from: FROM, to: ['alice@a.test'] }, bufferOctets(PLAIN_MESSAGE));
      assert.deepEqual(replies(report), ['alice@a.test accepted 250 2.0.0']);
      assert.equal(sinks.sinks.get('127.0.0.4')!.received.length, 1);
    }));

  test('an MX naming a CNAME is followed to its address', () =>
    withMxWorld(
      { 'a.test': [mx(10, 'alias.a.test')], 'alias.a.test': [{ type: 'CNAME', data: 'real.a.test' }], 'real.a.test': [a('127.0.0.2')] },
      [{ address: '127.0.0.2' }],
      async ({ upstream, sinks }) => {
        assert.deepEqual(replies(await upstream.deliver({ from: FROM, to: ['alice@a.test'] }, bufferOctets(PLAIN_MESSAGE))), [
          'alice@a.test accepted 250 2.0.0',
        ]);
        assert.equal(sinks.sinks.get('127.0.0.2')!.received.length, 1);
      },
    ));

  test('an MX holding an address instead of a name is skipped; with nothing else: 550 5.4.4', () =>
    withMxWorld(
      { 'a.test': [mx(5, '127.0.0.3'), mx(10, 'mx1.a.test')], 'mx1.a.test': [a('127.0.0.2')], 'b.test': [mx(10, '127.0.0.3')] },
      [{ address: '127.0.0.2' }, { address: '127.0.0.3' }],
      async ({ upstream, sinks }) => {
        const report = await upstream.deliver({ from: FROM, to: ['alice@a.test', 'bob@b.test'] }, bufferOctets(PLAIN_MESSAGE));
        assert.deepEqual(replies(report), ['alice@a.test accepted 250 2.0.0', 'bob@b.test refused 550 5.4.4']);
        assert.match(report.recipients[1]!.reply.text, /127\.0\.0\.3 \(an address, where RFC 5321 §5\.1 wants a host name\)/);
        assert.equal(sinks.sinks.get('127.0.0.3')!.connections, 0);
      },
    ));

  test('a recipient at an address literal goes to that address, without DNS', () =>
    withMxWorld({}, [{ address: '127.0.0.5' }], async ({ upstream, sinks, dns }) => {
      const report = await upstream.deliver({ from: FROM, to: ['alice@[127.0.0.5]'] }, bufferOctets(PLAIN_MESSAGE));
      assert.deepEqual(replies(report), ['alice@[127.0.0.5] accepted 250 2.0.0']);
      assert.equal(sinks.sinks.get('127.0.0.5')!.received.length, 1);
      assert.deepEqual(dns.queries, []);
    }));

  test('two domains in one message: each to its own MX, with its own recipients', () =>
    withMxWorld(
      { 'a.test': [mx(10, 'mx.a.test')], 'mx.a.test': [a('127.0.0.2')], 'b.test': [mx(10, 'mx.b.test')], 'mx.b.test': [a('127.0.0.3')] },
      [{ address: '127.0.0.2' }, { address: '127.0.0.3' }],
      async ({ upstream, sinks }) => {
        const report = await upstream.deliver({ from: FROM, to: ['alice@a.test', 'bob@b.test', 'carol@A.test'] }, bufferOctets(PLAIN_MESSAGE));
        assert.deepEqual(replies(report), ['alice@a.test accepted 250 2.0.0', 'bob@b.test accepted 250 2.0.0', 'carol@A.test accepted 250 2.0.0']);
        assert.deepEqual(
          sinks.sinks.get('127.0.0.2')!.received.map((r) => r.to),
          [['alice@a.test', 'carol@A.test']],
        );
        assert.deepEqual(
          sinks.sinks.get('127.0.0.3')!.received.map((r) => r.to),
          [['bob@b.test']],
        );
      },
    ));
});

describe('DSN parameters', () => {
  test("one transaction per domain; RET and ENVID on MAIL FROM, each recipient's own NOTIFY and ORCPT on its RCPT TO", () =>
    withMxWorld(
      { 'a.test': [mx(10, 'mx.a.test')], 'mx.a.test': [a('127.0.0.2')], 'b.test': [mx(10, 'mx.b.test')], 'mx.b.test': [a('127.0.0.3')] },
      [{ address: '127.0.0.2' }, { address: '127.0.0.3' }],
      async ({ upstream, sinks }) => {
        const recipients = new Map([
          ['alice@a.test', { notify: ['SUCCESS', 'FAILURE'], orcpt: 'rfc822;alice@example.org' }],
          ['carol@a.test', { notify: ['NEVER'] }],
          ['bob@b.test', { orcpt: 'rfc822;bob+x@example.org' }],
        ]);
        const to = ['alice@a.test', 'bob@b.test', 'carol@a.test', 'dave@a.test'];
        const report = await upstream.deliver({ from: FROM, to, dsn: { ret: 'HDRS', envid: 'E-1', recipients } }, bufferOctets(PLAIN_MESSAGE));
        assert.equal(report.code, 250, report.text);
        const [atA] = sinks.sinks.get('127.0.0.2')!.received;
        const [atB] = sinks.sinks.get('127.0.0.3')!.received;
        assert.equal(sinks.sinks.get('127.0.0.2')!.received.length, 1);
        assert.deepEqual([atA!.mailArgs.RET, atA!.mailArgs.ENVID, atB!.mailArgs.RET], ['HDRS', 'E-1', 'HDRS']);
        assert.deepEqual(atA!.to, ['alice@a.test', 'carol@a.test', 'dave@a.test']);
        assert.deepEqual(atA!.rcptArgs, [{ NOTIFY: 'SUCCESS,FAILURE', ORCPT: 'rfc822;alice@example.org' }, { NOTIFY: 'NEVER' }, {}]);
        assert.deepEqual(atB!.rcptArgs, [{ ORCPT: 'rfc822;bob+x@example.org' }]);
      },
    ));
});

describe('DNS answers that stop delivery', () => {
  test('a null MX (RFC 7505): 556 5.1.10 at once, no host contacted', () =>
    withMxWorld({ 'a.test': [mx(0, '')] }, [{ address: '127.0.0.2' }], async ({ upstream, sinks, dns }) => {
      const report = await upstream.deliver({ from: FROM, to: ['alice@a.test'] }, bufferOctets(PLAIN_MESSAGE));
      assert.equal(report.code, 556);
      assert.equal(replyText(report), '5.1.10 The domain a.test accepts no mail (null MX, RFC 7505)');
      assert.deepEqual(replies(report), ['alice@a.test refused 556 5.1.10']);
      assert.deepEqual(dns.queries, ['a.test MX'], 'not even an address lookup');
      assert.equal(sinks.sinks.get('127.0.0.2')!.connections, 0);
    }));

  test('a domain that does not exist (NXDOMAIN): permanent 550 5.1.2', () =>
    withMxWorld({}, [{ address: '127.0.0.2' }], async ({ upstream }) => {
      const report = await upstream.deliver({ from: FROM, to: ['alice@nowhere.test'] }, bufferOctets(PLAIN_MESSAGE));
      assert.equal(report.code, 550);
      assert.match(replyText(report), /^5\.1\.2 The domain nowhere\.test does not exist \(MX lookup of nowhere\.test: no such domain \(NXDOMAIN\)/);
    }));

  test('a DNS server failure (SERVFAIL): temporary 451 4.4.3, and the other domain is still delivered', () =>
    withMxWorld({ 'b.test': [a('127.0.0.2')] }, [{ address: '127.0.0.2' }], async ({ upstream, dns, sinks }) => {
      dns.failures.set('a.test', 'servfail');
      const report = await upstream.deliver({ from: FROM, to: ['alice@a.test', 'bob@b.test'] }, bufferOctets(PLAIN_MESSAGE));
      assert.deepEqual(replies(report), ['alice@a.test refused 451 4.4.3', 'bob@b.test accepted 250 2.0.0']);
      assert.match(report.recipients[0]!.reply.text, /server failure \(SERVFAIL\)/);
      assert.equal(report.code, 451);
      assert.match(replyText(report), /\(for <alice@a\.test>\) \(already accepted for bob@b\.test\)$/);
      assert.equal(sinks.sinks.get('127.0.0.2')!.received.length, 1);
    }));

  test('an MX host whose address lookup fails temporarily: 451 4.4.3', () =>
    withMxWorld({ 'a.test': [mx(10, 'mx1.a.test')], 'mx1.a.test': [a('127.0.0.2')] }, [{ address: '127.0.0.2' }], async ({ upstream, dns }) => {
      dns.failures.set('mx1.a.test', 'servfail');
      const report = await upstream.deliver({ from: FROM, to: ['alice@a.test'] }, bufferOctets(PLAIN_MESSAGE));
      assert.deepEqual(replies(report), ['alice@a.test refused 451 4.4.3']);
    }));

  test('MX hosts that do not exist: permanent 550 5.4.4', () =>
    withMxWorld({ 'a.test': [mx(10, 'gone.a.test')] }, [{ address: '127.0.0.2' }], async ({ upstream }) => {
      const report = await upstream.deliver({ from: FROM, to: ['alice@a.test'] }, bufferOctets(PLAIN_MESSAGE));
      assert.deepEqual(replies(report), ['alice@a.test refused 550 5.4.4']);
      assert.match(report.text, /no such host \(NXDOMAIN\)/);
    }));
});

describe('replies of the receiving host', () => {
  test('a permanent refusal of one recipient is kept as the host gave it, and not tried elsewhere', () =>
    withMxWorld(
      { 'a.test': [mx(10, 'mx1.a.test'), mx(20, 'mx2.a.test')], 'mx1.a.test': [a('127.0.0.2')], 'mx2.a.test': [a('127.0.0.3')] },
      [{ address: '127.0.0.2', rcpt: { 'nobody@a.test': { code: 550, text: '5.1.1 No such user here' } } }, { address: '127.0.0.3' }],
      async ({ upstream, sinks }) => {
        const report = await upstream.deliver({ from: FROM, to: ['alice@a.test', 'nobody@a.test'] }, bufferOctets(PLAIN_MESSAGE));
        assert.deepEqual(report.recipients[1], {
          address: 'nobody@a.test',
          reply: { code: 550, enhanced: '5.1.1', text: 'No such user here', remote: { host: 'mx1.a.test', address: '127.0.0.2' }, command: 'RCPT TO' },
        });
        assert.deepEqual([report.code, replyText(report)], [550, '5.1.1 No such user here (for <nobody@a.test>) (already accepted for alice@a.test)']);
        assert.deepEqual(sinks.sinks.get('127.0.0.3')!.offered, []);
      },
    ));

  test('a temporary refusal on the primary: that recipient is tried on the secondary', () =>
    withMxWorld(
      { 'a.test': [mx(10, 'mx1.a.test'), mx(20, 'mx2.a.test')], 'mx1.a.test': [a('127.0.0.2')], 'mx2.a.test': [a('127.0.0.3')] },
      [{ address: '127.0.0.2', rcpt: { 'bob@a.test': { code: 451, text: '4.7.1 Greylisted, try later' } } }, { address: '127.0.0.3' }],
      async ({ upstream, sinks }) => {
        const report = await upstream.deliver({ from: FROM, to: ['alice@a.test', 'bob@a.test'] }, bufferOctets(PLAIN_MESSAGE));
        assert.deepEqual(replies(report), ['alice@a.test accepted 250 2.0.0', 'bob@a.test accepted 250 2.0.0']);
        assert.deepEqual(
          sinks.sinks.get('127.0.0.2')!.received.map((r) => r.to),
          [['alice@a.test']],
        );
        assert.deepEqual(
          sinks.sinks.get('127.0.0.3')!.received.map((r) => r.to),
          [['bob@a.test']],
        );
      },
    ));

  test('an 8-bit address to a host without SMTPUTF8: 553 5.6.7 for that recipient, the others delivered', () =>
    withMxWorld(
      { 'a.test': [mx(10, 'mx1.a.test')], 'mx1.a.test': [a('127.0.0.2')] },
      [{ address: '127.0.0.2', options: { hideSMTPUTF8: true } }],
      async ({ upstream, sinks }) => {
        const report = await upstream.deliver({ from: FROM, to: ['jörg@a.test', 'bob@a.test'] }, bufferOctets(PLAIN_MESSAGE));
        assert.deepEqual(replies(report), ['jörg@a.test refused 553 5.6.7', 'bob@a.test accepted 250 2.0.0']);
        assert.equal(report.recipients[0]!.reply.text, 'mx1.a.test does not announce SMTPUTF8, so <jörg@a.test> cannot be delivered to it');
        assert.deepEqual(sinks.sinks.get('127.0.0.2')!.offered, ['bob@a.test']);
      },
    ));

  test('an 8-bit address to a host with SMTPUTF8 goes through with SMTPUTF8', () =>
    withMxWorld({ 'a.test': [mx(10, 'mx1.a.test')], 'mx1.a.test': [a('127.0.0.2')] }, [{ address: '127.0.0.2' }], async ({ upstream, sinks }) => {
      const report = await upstream.deliver({ from: FROM, to: ['jörg@a.test'] }, bufferOctets(PLAIN_MESSAGE));
      assert.deepEqual(replies(report), ['jörg@a.test accepted 250 2.0.0']);
      assert.deepEqual(
        sinks.sinks.get('127.0.0.2')!.received.map((r) => [r.to, r.smtpUtf8]),
        [[['jörg@a.test'], true]],
      );
    }));
});

describe('loops back to this relay', () => {
  test('a host that greets with our own name gets nothing: 550 5.4.6, no other host tried', () =>
    withMxWorld(
      { 'a.test': [mx(10, 'mx1.a.test'), mx(20, 'mx2.a.test')], 'mx1.a.test': [a('127.0.0.2')], 'mx2.a.test': [a('127.0.0.3')] },
      [{ address: '127.0.0.2', options: { name: 'relay.test' } }, { address: '127.0.0.3' }],
      async ({ upstream, sinks }) => {
        const report = await upstream.deliver({ from: FROM, to: ['alice@a.test'] }, bufferOctets(PLAIN_MESSAGE));
        assert.deepEqual(replies(report), ['alice@a.test refused 550 5.4.6']);
        assert.match(report.text, /loops back to this relay: mx1\.a\.test \[127\.0\.0\.2\]:\d+ greets as relay\.test/);
        assert.deepEqual(sinks.sinks.get('127.0.0.2')!.offered, []);
        assert.equal(sinks.sinks.get('127.0.0.3')!.connections, 0);
      },
    ));

  test('our own name as the best MX: 550 5.4.6 without a connection; as a lesser MX it and those after it are dropped', () =>
    withMxWorld(
      {
        'a.test': [mx(10, 'relay.test'), mx(20, 'mx2.a.test')],
        'b.test': [mx(10, 'mx2.a.test'), mx(20, 'relay.test'), mx(30, 'mx3.a.test')],
        'relay.test': [a('127.0.0.2')],
        'mx2.a.test': [a('127.0.0.9')],
        'mx3.a.test': [a('127.0.0.3')],
      },
      [{ address: '127.0.0.2' }, { address: '127.0.0.3' }],
      async ({ upstream, sinks }) => {
        const report = await upstream.deliver({ from: FROM, to: ['alice@a.test', 'bob@b.test'] }, bufferOctets(PLAIN_MESSAGE));
        assert.deepEqual(replies(report), ['alice@a.test refused 550 5.4.6', 'bob@b.test refused 451 4.4.1']);
        assert.equal(sinks.sinks.get('127.0.0.2')!.connections + sinks.sinks.get('127.0.0.3')!.connections, 0);
      },
    ));
});

describe('targets inside the network', () => {
  test('address literals pointing inward: 550 5.7.1 saying why, no connection; allowNetworks lets them through', () =>
    withMxWorld(
      {},
      [{ address: '127.0.0.5' }],
      async ({ upstream, sinks }) => {
        const to = ['a@[10.9.9.9]', 'b@[169.254.169.254]', 'c@[127.0.0.5]', 'd@[IPv6:::ffff:127.0.0.5]', 'e@[IPv6:fe80::1]'];
        const report = await upstream.deliver({ from: FROM, to }, bufferOctets(PLAIN_MESSAGE));
        assert.deepEqual(
          replies(report),
          to.map((r) => `${r} refused 550 5.7.1`),
        );
        assert.deepEqual(
          report.recipients.map((r) => r.reply.text),
          [
            'Not delivering to [10.9.9.9]: 10.9.9.9 is a private address (RFC 1918); delivery.upstream.allowNetworks can permit it',
            'Not delivering to [169.254.169.254]: 169.254.169.254 is a link-local address; delivery.upstream.allowNetworks can permit it',
            'Not delivering to [127.0.0.5]: 127.0.0.5 is a loopback address; delivery.upstream.allowNetworks can permit it',
            'Not delivering to [ipv6:::ffff:127.0.0.5]: 127.0.0.5 is a loopback address; delivery.upstream.allowNetworks can permit it',
            'Not delivering to [ipv6:fe80::1]: fe80::1 is a link-local address; delivery.upstream.allowNetworks can permit it',
          ],
        );
        assert.equal(sinks.sinks.get('127.0.0.5')!.connections, 0);
      },
      { allowNetworks: [] },
    ).then(() =>
      withMxWorld(
        {},
        [{ address: '127.0.0.5' }],
        async ({ upstream, sinks }) => {
          const report = await upstream.deliver({ from: FROM, to: ['c@[127.0.0.5]'] }, bufferOctets(PLAIN_MESSAGE));
          assert.deepEqual(replies(report), ['c@[127.0.0.5] accepted 250 2.0.0']);
          assert.equal(sinks.sinks.get('127.0.0.5')!.received.length, 1);
        },
        { allowNetworks: ['127.0.0.5/32'] },
      ),
    ));

  test('MX and A answers pointing inward: 550 5.4.4 saying why, no connection; allowNetworks lets them through', () => {
    const records = {
      'a.test': [mx(10, 'mx.a.test')],
      'mx.a.test': [a('127.0.0.2')],
      'b.test': [mx(10, 'mx.b.test')],
      'mx.b.test': [a('10.9.9.9'), a('169.254.169.254')],
      'c.test': [a('127.0.0.2')], // no MX: the implicit MX, its own address
    };
    return withMxWorld(
      records,
      [{ address: '127.0.0.2' }],
      async ({ upstream, sinks, lines }) => {
        const report = await upstream.deliver({ from: FROM, to: ['alice@a.test', 'bob@b.test', 'carol@c.test'] }, bufferOctets(PLAIN_MESSAGE));
        assert.deepEqual(replies(report), ['alice@a.test refused 550 5.4.4', 'bob@b.test refused 550 5.4.4', 'carol@c.test refused 550 5.4.4']);
        assert.deepEqual(
          report.recipients.map((r) => r.reply.text),
          [
            'Not delivering to a.test: its host mx.a.test leads only inward (127.0.0.2 is a loopback address); delivery.upstream.allowNetworks can permit it',
            'Not delivering to b.test: its host mx.b.test leads only inward (10.9.9.9 is a private address (RFC 1918); 169.254.169.254 is a link-local address); delivery.upstream.allowNetworks can permit it',
            'Not delivering to c.test: its host c.test leads only inward (127.0.0.2 is a loopback address); delivery.upstream.allowNetworks can permit it',
          ],
        );
        assert.equal(sinks.sinks.get('127.0.0.2')!.connections, 0);
        assert.ok(lines.some((l) => l.msg === 'mx host skipped: it leads inward' && l.host === 'mx.b.test'));
      },
      { allowNetworks: [] },
    ).then(() =>
      withMxWorld(
        records,
        [{ address: '127.0.0.2' }],
        async ({ upstream, sinks }) => {
          const report = await upstream.deliver({ from: FROM, to: ['alice@a.test', 'carol@c.test'] }, bufferOctets(PLAIN_MESSAGE));
          assert.deepEqual(replies(report), ['alice@a.test accepted 250 2.0.0', 'carol@c.test accepted 250 2.0.0']);
          assert.equal(sinks.sinks.get('127.0.0.2')!.received.length, 2);
        },
        { allowNetworks: ['127.0.0.2'] },
      ),
    );
  });

  test('a host with inward and allowed addresses: only the allowed are tried', () =>
    withMxWorld(
      { 'a.test': [mx(10, 'mx.a.test')], 'mx.a.test': [a('127.0.0.9'), a('127.0.0.2')] },
      [{ address: '127.0.0.2' }],
      async ({ upstream, sinks, lines }) => {
        const report = await upstream.deliver({ from: FROM, to: ['alice@a.test'] }, bufferOctets(PLAIN_MESSAGE));
        assert.deepEqual(replies(report), ['alice@a.test accepted 250 2.0.0']);
        assert.equal(sinks.sinks.get('127.0.0.2')!.received.length, 1);
        assert.deepEqual(lines.find((l) => l.msg === 'mx host addresses skipped: they lead inward')?.refused, ['127.0.0.9 is a loopback address']);
      },
      { allowNetworks: ['127.0.0.2/32'] },
    ));
});

describe('an MX that is this relay', () => {
  const records = { 'a.test': [mx(10, 'mx.a.test'), mx(20, 'mx2.a.test')], 'mx.a.test': [a('127.0.0.2')], 'mx2.a.test': [a('127.0.0.3')] };

  test("an MX address that is the relay's own listener (address and port): 550 5.4.6, nothing sent, no other host tried", () =>
    withMxWorld(
      records,
      [{ address: '127.0.0.2' }, { address: '127.0.0.3' }],
      async ({ upstream, sinks }) => {
        const report = await upstream.deliver({ from: FROM, to: ['alice@a.test'] }, bufferOctets(PLAIN_MESSAGE));
        assert.deepEqual(replies(report), ['alice@a.test refused 550 5.4.6']);
        assert.match(
          report.recipients[0]!.reply.text,
          /^Mail for a\.test loops back to this relay: mx\.a\.test \[127\.0\.0\.2\]: 127\.0\.0\.2 port \d+ is this relay's own listener$/,
        );
        assert.equal(sinks.sinks.get('127.0.0.2')!.connections + sinks.sinks.get('127.0.0.3')!.connections, 0);
      },
      {},
      (sinks) => ({ relay: () => ({ names: [], listeners: [{ host: '127.0.0.2', port: sinks.port }] }) }),
    ));

  test("the relay as a less preferred MX (by address): it and those after it are dropped, the better host's reply stands", () =>
    withMxWorld(
      {
        'a.test': [mx(10, 'mx1.a.test'), mx(20, 'mx2.a.test'), mx(30, 'mx3.a.test')],
        'mx1.a.test': [a('127.0.0.3')],
        'mx2.a.test': [a('127.0.0.2')],
        'mx3.a.test': [a('127.0.0.4')],
      },
      [{ address: '127.0.0.2' }, { address: '127.0.0.4' }],
      async ({ upstream, sinks }) => {
        const report = await upstream.deliver({ from: FROM, to: ['alice@a.test'] }, bufferOctets(PLAIN_MESSAGE));
        assert.deepEqual(replies(report), ['alice@a.test refused 451 4.4.1']);
        assert.equal(sinks.sinks.get('127.0.0.2')!.connections + sinks.sinks.get('127.0.0.4')!.connections, 0);
      },
      {},
      (sinks) => ({ relay: () => ({ names: [], listeners: [{ host: '127.0.0.2', port: sinks.port }] }) }),
    ));

  test('a relay listening on 0.0.0.0: any address of this host on its port is a loop', () =>
    withMxWorld(
      records,
      [{ address: '127.0.0.2' }, { address: '127.0.0.3' }],
      async ({ upstream, sinks }) => {
        const report = await upstream.deliver({ from: FROM, to: ['alice@a.test'] }, bufferOctets(PLAIN_MESSAGE));
        assert.deepEqual(replies(report), ['alice@a.test refused 550 5.4.6']);
        assert.equal(sinks.sinks.get('127.0.0.2')!.connections, 0);
      },
      {},
      (sinks) => ({ relay: () => ({ names: [], listeners: [{ host: '0.0.0.0', port: sinks.port }] }) }),
    ));

  test('listen.hostname, not heloName, as the MX or in the greeting: 550 5.4.6', () =>
    withMxWorld(
      { ...records, 'b.test': [mx(10, 'in.relay.test')], 'in.relay.test': [a('127.0.0.3')] },
      [{ address: '127.0.0.2', options: { name: 'in.relay.test' } }, { address: '127.0.0.3' }],
      async ({ upstream, sinks }) => {
        const report = await upstream.deliver({ from: FROM, to: ['alice@a.test', 'bob@b.test'] }, bufferOctets(PLAIN_MESSAGE));
        assert.deepEqual(replies(report), ['alice@a.test refused 550 5.4.6', 'bob@b.test refused 550 5.4.6']);
        assert.match(report.recipients[0]!.reply.text, /mx\.a\.test \[127\.0\.0\.2\]:\d+ greets as in\.relay\.test, this relay's own name/);
        assert.equal(report.recipients[1]!.reply.text, "Mail for b.test loops back to this relay: its best MX in.relay.test is one of this relay's names");
        assert.deepEqual(sinks.sinks.get('127.0.0.2')!.offered, []);
        assert.equal(sinks.sinks.get('127.0.0.3')!.connections, 0);
      },
      {},
      { relay: () => ({ names: ['in.relay.test'], listeners: [] }) },
    ));
});
