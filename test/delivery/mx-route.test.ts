// The pure decisions of direct delivery: MX order, destinations, DNS error
// classes, connection limits and replies.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { DestinationLimits } from '../../src/delivery/destination-limits.ts';
import { dnsFailure } from '../../src/delivery/mx-lookup.ts';
import { hostReply, type Hop } from '../../src/delivery/mx-reply.ts';
import { failureReply, plainReply, type SendError } from '../../src/delivery/failure-reply.ts';
import { combinedReply, parseReply, type RecipientReply } from '../../src/smtp/reply.ts';
import { destination, groupByDomain, orderExchanges } from '../../src/delivery/mx-route.ts';

const rec = (priority: number, exchange: string) => ({ priority, exchange });

describe('orderExchanges', () => {
  test('lower preference first; names lower-cased, trailing dot dropped, duplicates once', () => {
    assert.deepEqual(orderExchanges([rec(30, 'C.example.'), rec(10, 'a.example'), rec(20, 'b.example'), rec(40, 'a.example')], []), {
      kind: 'hosts',
      hosts: ['a.example', 'b.example', 'c.example'],
      skipped: [],
    });
  });

  test('equal preferences in the order the random source gives, unequal ones never swapped', () => {
    const order = (values: number[]) => {
      const result = orderExchanges([rec(10, 'x.example'), rec(10, 'y.example'), rec(5, 'first.example')], [], () => values.shift()!);
      return result.kind === 'hosts' ? result.hosts : [];
    };
    assert.deepEqual(order([0.2, 0.8, 0.9]), ['first.example', 'x.example', 'y.example']);
    assert.deepEqual(order([0.8, 0.2, 0.9]), ['first.example', 'y.example', 'x.example']);
  });

  test('a null MX: one record, preference 0, the root (RFC 7505)', () => {
    assert.deepEqual(orderExchanges([rec(0, '')], []), { kind: 'null' });
    assert.deepEqual(orderExchanges([rec(0, '.')], []), { kind: 'null' });
  });

  test('"." among other MX records, or with another preference, is no null MX: it is skipped', () => {
    const mixed = orderExchanges([rec(0, ''), rec(10, 'mx.example')], []);
    assert.equal(mixed.kind, 'hosts');
    assert.deepEqual(mixed.kind === 'hosts' && mixed.hosts, ['mx.example']);
    assert.equal(orderExchanges([rec(10, '')], []).kind, 'unusable');
  });

  test('an address in the MX data is skipped (RFC 5321 §5.1 wants a name)', () => {
    const result = orderExchanges([rec(5, '192.0.2.1'), rec(6, '[192.0.2.2]'), rec(7, '2001:db8::1'), rec(10, 'mx.example')], []);
    assert.equal(result.kind, 'hosts');
    assert.deepEqual(result.kind === 'hosts' && [result.hosts, result.skipped.length], [['mx.example'], 3]);
    assert.equal(orderExchanges([rec(5, '192.0.2.1')], []).kind, 'unusable');
  });

  test('our own name drops itself and every less preferred host; as the best MX it is a loop', () => {
    const records = [rec(10, 'mx1.example'), rec(20, 'Relay.Example'), rec(20, 'peer.example'), rec(30, 'mx3.example')];
    assert.deepEqual(orderExchanges(records, ['relay.example']), { kind: 'hosts', hosts: ['mx1.example'], skipped: [] });
    assert.deepEqual(orderExchanges([rec(10, 'relay.example.'), rec(20, 'mx2.example')], ['relay.example']), { kind: 'loop', host: 'relay.example' });
  });
});

describe('destination', () => {
  test('domains, internationalized domains, address literals, and what cannot be routed', () => {
    assert.deepEqual(destination('a@Example.COM'), { kind: 'domain', domain: 'example.com', ascii: 'example.com' });
    assert.deepEqual(destination('a@bücher.example'), { kind: 'domain', domain: 'bücher.example', ascii: 'xn--bcher-kva.example' });
    assert.deepEqual(destination('a@[192.0.2.1]'), { kind: 'literal', domain: '[192.0.2.1]', address: '192.0.2.1' });
    assert.deepEqual(destination('a@[IPv6:2001:db8::1]'), { kind: 'literal', domain: '[ipv6:2001:db8::1]', address: '2001:db8::1' });
    assert.equal(destination('a@[2001:db8::1]').kind, 'invalid', 'RFC 5321 §4.1.3: an IPv6 literal needs its tag');
    assert.equal(destination('postmaster').kind, 'invalid');
    assert.equal(destination('a@localhost').kind, 'invalid');
    assert.equal(destination('a@192.0.2.1').kind, 'invalid');
  });

  test('recipients grouped by domain, case aside, in order of appearance', () => {
    assert.deepEqual(
      [...groupByDomain(['a@x.example', 'b@y.example', 'c@X.Example'])],
      [
        ['x.example', ['a@x.example', 'c@X.Example']],
        ['y.example', ['b@y.example']],
      ],
    );
  });
});

describe('dnsFailure', () => {
  test('NXDOMAIN and NODATA are answers; SERVFAIL, timeouts and refusals are temporary', () => {
    assert.deepEqual(
      ['ENOTFOUND', 'ENODATA', 'ESERVFAIL', 'ETIMEOUT', 'EREFUSED', 'ECONNREFUSED', 'EBADRESP'].map((code) => dnsFailure(code).outcome),
      ['nxdomain', 'nodata', 'temporary', 'temporary', 'temporary', 'temporary', 'temporary'],
    );
  });
});

describe('DestinationLimits', () => {
  test('a slot only while both limits allow it; a release frees it once', () => {
    const limits = new DestinationLimits(3, 2);
    const first = limits.tryAcquire('a.example')!;
    assert.ok(limits.tryAcquire('a.example'));
    assert.equal(limits.tryAcquire('a.example'), null, 'per domain');
    assert.ok(limits.tryAcquire('b.example'));
    assert.equal(limits.tryAcquire('c.example'), null, 'in all');
    first();
    first();
    assert.deepEqual([limits.open(), limits.open('a.example')], [2, 1]);
    assert.ok(limits.tryAcquire('c.example'));
    assert.equal(limits.tryAcquire('c.example'), null);
  });

  test('waiters are served in order, and one whose domain is full does not hold up another domain', async () => {
    const limits = new DestinationLimits(2, 1);
    const a1 = limits.tryAcquire('a.example')!;
    const b1 = limits.tryAcquire('b.example')!;
    const served: string[] = [];
    const a2 = limits.acquire('a.example', 5000).then((r) => (served.push('a2'), r));
    const c1 = limits.acquire('c.example', 5000).then((r) => (served.push('c1'), r));
    b1();
    (await c1)!.release();
    assert.deepEqual(served, ['c1'], 'c.example got the free slot; a.example is still at its limit');
    a1();
    assert.ok(await a2);
    assert.deepEqual(served, ['c1', 'a2']);
  });

  test('a wait gives up after its time, with null', async () => {
    const limits = new DestinationLimits(1, 1);
    limits.tryAcquire('a.example');
    assert.equal(await limits.acquire('a.example', 20), null);
    assert.equal(limits.open(), 1);
  });
});

describe('replies', () => {
  test("parseReply keeps the host's enhanced code when its class agrees, else none", () => {
    assert.deepEqual(parseReply('550-5.1.1 No such\r\n550 5.1.1 user'), { code: 550, enhanced: '5.1.1', text: 'No such user' });
    assert.deepEqual(parseReply('451 Greylisted'), { code: 451, text: 'Greylisted' });
    assert.deepEqual(parseReply('550 4.1.1 contradiction'), { code: 550, text: '4.1.1 contradiction' });
    assert.equal(parseReply('garbage'), null);
  });

  const hop = { domain: 'a.example', host: 'mx.a.example', address: '192.0.2.1', port: 25 };
  /** A failure before any recipient was answered, as a session reports it. */
  const sessionFailure = (err: SendError, at: Hop, requireTLS: boolean) => {
    const failure = failureReply(err, { kind: 'mx', hop: at, requireTLS, transaction: false });
    return { reply: plainReply(failure), tlsFailed: failure.tlsFailed };
  };
  test('hostReply: the class alone when the host gave no enhanced code that agrees, and where the reply came from', () => {
    const from = { remote: { host: 'mx.a.example', address: '192.0.2.1' }, command: 'RCPT TO' };
    assert.deepEqual(hostReply('451 Greylisted', hop, 'RCPT TO'), { code: 451, enhanced: '4.0.0', text: 'Greylisted', ...from });
    assert.deepEqual(hostReply('550 4.1.1 contradiction', hop, 'RCPT TO'), { code: 550, enhanced: '5.0.0', text: '4.1.1 contradiction', ...from });
  });
  test('connection trouble is a temporary 451 with the reason', () => {
    assert.deepEqual(sessionFailure({ code: 'ESOCKET', command: 'CONN', originalCode: 'ECONNREFUSED', message: 'connect ECONNREFUSED' }, hop, false), {
      reply: { code: 451, enhanced: '4.4.1', text: 'mx.a.example [192.0.2.1]:25 refused the connection' },
      tlsFailed: false,
    });
    assert.deepEqual(sessionFailure({ code: 'EPROTOCOL', command: 'CONN', responseCode: 554, response: '554 go away' }, hop, false).reply, {
      code: 451,
      enhanced: '4.4.1',
      text: 'mx.a.example [192.0.2.1]:25 refused the session: "554 go away"',
    });
    assert.equal(sessionFailure({ code: 'ETLS', command: 'STARTTLS', message: 'Error initiating TLS - wrong version number' }, hop, false).tlsFailed, true);
  });

  const r = (address: string, _status: 'accepted' | 'refused', code: number, enhanced: string, text: string): RecipientReply => ({
    address,
    reply: { code, enhanced, text },
  });
  test('combinedReply: 250 when all were accepted; else the first temporary refusal, naming who was accepted', () => {
    const whole = (reply: { code: number; enhanced?: string; text: string }) => ({ code: reply.code, enhanced: reply.enhanced, text: reply.text });
    assert.deepEqual(whole(combinedReply([r('a@x', 'accepted', 250, '2.0.0', 'Ok')])), { code: 250, enhanced: '2.0.0', text: 'Ok' });
    const recipients = [r('a@x', 'accepted', 250, '2.0.0', 'Ok'), r('b@y', 'refused', 550, '5.1.1', 'No'), r('c@z', 'refused', 451, '4.4.1', 'Down')];
    const mixed = combinedReply(recipients);
    assert.deepEqual(whole(mixed), { code: 451, enhanced: '4.4.1', text: 'Down (for <c@z>) (already accepted for a@x)' });
  });
});
