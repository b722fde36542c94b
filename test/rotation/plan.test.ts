// The rotation planner over whole rotations, with an injected clock.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { configSchema } from '../../src/config/schema.ts';
import { nextSelector } from '../../src/common/names.ts';
import { delegatedName } from '../../src/dns/delegation.ts';
import { GONE_AFTER_MS, SILENT_AFTER_MS } from '../../src/keys/heartbeat.ts';
import { plan, when } from '../../src/rotation/plan.ts';
import { policyFor } from '../../src/rotation/policy.ts';
import { DAY, HOUR, MINUTE, POLICY, Simulation, summary } from './simulation.ts';

const START = '2026-08-01T03:15:00.000Z';

test('a whole rotation: create, wait for DNS everywhere, activate, hold revocation for queued mail, revoke, remove', () => {
  const sim = new Simulation(START);
  const old = sim.addKey('example.com', 'rsa', 'active', 89 * DAY, 's202605a');

  // Not due yet: the next step is shown with its time.
  assert.deepEqual(sim.step(), []);
  assert.deepEqual(sim.plan().next, [
    { keyId: old.id, domain: 'example.com', selector: 's202605a', step: 'rotate', at: '2026-08-02T03:15:00.000Z', text: 'rotates 2026-08-02 03:15 UTC' },
  ]);

  // Due: a pending key of the same algorithm and size, with a fresh selector.
  sim.advance(DAY);
  const [create] = sim.plan().actions;
  assert.deepEqual(create, {
    kind: 'create',
    domain: 'example.com',
    algorithm: 'rsa',
    bits: 2048,
    selector: nextSelector(new Set(['s202605a']), sim.now),
    replaces: old.id,
    why: 's202605a has signed since 2026-05-04 03:15 UTC, longer than 90d',
  });
  assert.deepEqual(summary(sim.step()), ['create:s202608a']);
  const fresh = sim.key('s202608a');
  assert.equal(fresh.state, 'pending');

  // DNS does not serve it: it stays pending, and after stuckAfter someone is told once, with the record.
  sim.dnsEverywhere(fresh, 'missing');
  assert.deepEqual(sim.step(), []);
  assert.match(sim.plan().next.find((n) => n.selector === 's202608a')!.text, /served by 0 of 3 servers \(ns1: missing, ns2: missing, resolver: missing\)/);
  sim.advance(7 * DAY - MINUTE).dnsEverywhere(fresh, 'missing');
  assert.deepEqual(sim.step(), []);
  sim.advance(MINUTE).dnsEverywhere(fresh, 'missing');
  const stuck = sim.step();
  assert.deepEqual(summary(stuck), ['notify:stuck:s202608a']);
  assert.equal(stuck[0]!.kind === 'notify' && stuck[0]!.records[0]!.name, 's202608a._domainkey.example.com');
  assert.equal(stuck[0]!.kind === 'notify' && stuck[0]!.records[0]!.value, 'v=DKIM1; k=rsa; p=pub2');
  assert.match(stuck[0]!.why, /has waited for DNS since 2026-08-02 03:15 UTC/);
  sim.advance(HOUR).dnsEverywhere(fresh, 'missing');
  assert.deepEqual(sim.step(), [], 'the notice is not repeated');

  // Served by some servers only: still pending, however long.
  const servedFrom = sim.advance(HOUR).now;
  sim.dnsEverywhere(fresh, { ns1: 'match', ns2: 'match', resolver: 'missing' });
  sim.advance(3 * DAY).dnsEverywhere(fresh, { ns1: 'match', ns2: 'match', resolver: 'mismatch' });
  assert.deepEqual(sim.step(), []);
  assert.equal(sim.key('s202608a').state, 'pending');
  assert.match(sim.plan().next.find((n) => n.selector === 's202608a')!.text, /served by 2 of 3 servers \(resolver: mismatch\)/);
  assert.ok(Date.parse(sim.observations.get(`${fresh.id}@ns1`)!.firstSeenMatching!) === servedFrom.getTime());

  // Served everywhere: activates publishFor after the last server began serving it, by itself, so the stuck notice is over.
  const everywhere = sim.advance(HOUR).now.getTime();
  sim.dnsEverywhere(fresh, 'match');
  assert.deepEqual(sim.plan().resolved, ['stuck:2'], 'the stuck notice is over');
  assert.deepEqual(sim.step(), []);
  const waiting = sim.plan().next.find((n) => n.selector === 's202608a')!;
  assert.equal(waiting.at, new Date(everywhere + 48 * HOUR).toISOString());
  assert.match(waiting.text, /^activates \d{4}-\d\d-\d\d \d\d:\d\d UTC if DNS keeps serving it$/);
  for (let checks = 0; checks < 47; checks++) sim.advance(HOUR).dnsEverywhere(fresh, 'match');
  assert.deepEqual(sim.step(), [], '47h is not 48h');
  sim.advance(HOUR).dnsEverywhere(fresh, 'match');
  const activation = sim.plan();
  assert.deepEqual(summary(activation.actions), ['activate:s202608a']);
  const act = activation.actions[0]!;
  assert.ok(act.kind === 'activate');
  assert.deepEqual(
    act.transitions.map((t) => [t.selector, t.from, t.to, t.by]),
    [
      ['s202605a', 'active', 'retiring', 'scheduler'],
      ['s202608a', 'pending', 'active', 'scheduler'],
    ],
  );
  assert.match(act.why, /every DNS server asked \(3\) has served its record for 2d/);
  sim.step();
  assert.deepEqual([sim.key('s202605a').state, sim.key('s202608a').state], ['retiring', 'active']);
  const retiredAt = sim.now.getTime();

  // Mail signed by the old key still queued holds its revocation past retireAfter.
  sim.queued.set(old.id, new Date(retiredAt - HOUR));
  sim.advance(7 * DAY);
  assert.deepEqual(sim.step(), []);
  const held = sim.plan().next.find((n) => n.selector === 's202605a')!;
  assert.equal(held.at, null);
  assert.match(held.text, /revoked once the queued mail it signed \(oldest .* UTC\) is delivered/);
  sim.advance(DAY);
  assert.deepEqual(sim.step(), []);
  sim.queued.delete(old.id);
  const revoke = sim.step();
  assert.deepEqual(summary(revoke), ['revoke:s202605a']);
  assert.equal(sim.key('s202605a').state, 'revoked');

  // Removed removeAfter after revocation, with the record to withdraw.
  sim.advance(30 * DAY - MINUTE);
  assert.deepEqual(sim.step(), []);
  assert.equal(sim.plan().next.find((n) => n.selector === 's202605a')!.step, 'remove');
  sim.advance(MINUTE);
  const remove = sim.step();
  assert.deepEqual(summary(remove), ['remove:s202605a']);
  assert.equal(remove[0]!.kind === 'remove' && remove[0]!.record.name, 's202605a._domainkey.example.com');
  assert.equal(sim.key('s202605a').state, 'removed');
  assert.deepEqual(sim.step(), []);

  // The audit trail holds every step, each with its time and actor.
  assert.deepEqual(
    sim.events.map((e) => `${e.selector} ${e.from ?? 'new'}→${e.to}`),
    ['s202608a new→pending', 's202605a active→retiring', 's202608a pending→active', 's202605a retiring→revoked', 's202605a revoked→removed'],
  );
  // And the new key's own rotation is next.
  assert.deepEqual(
    sim.plan().next.map((n) => [n.selector, n.step, n.at]),
    [['s202608a', 'rotate', new Date(retiredAt + 90 * DAY).toISOString()]],
  );
});

test('a server that stops serving the record starts its clock again', () => {
  const sim = new Simulation(START);
  sim.addKey('example.com', 'rsa', 'active', 10 * DAY, 'old');
  const key = sim.addKey('example.com', 'rsa', 'pending', HOUR, 'new');
  sim.dnsEverywhere(key, 'match');
  sim.advance(24 * HOUR).dnsEverywhere(key, 'match');
  sim.advance(HOUR).dnsEverywhere(key, { ns1: 'match', ns2: 'mismatch', resolver: 'match' });
  sim.advance(HOUR).dnsEverywhere(key, 'match');
  const back = sim.now.getTime();
  sim.advance(22 * HOUR).dnsEverywhere(key, 'match'); // 48h since the first match everywhere
  assert.deepEqual(sim.step(), []);
  assert.equal(sim.plan().next.find((n) => n.selector === 'new')!.at, new Date(back + 48 * HOUR).toISOString());
  // An unanswered check breaks the run too: nobody saw what it served.
  sim.advance(HOUR).dnsEverywhere(key, { ns1: 'match', ns2: 'match', resolver: 'unreachable' });
  sim.advance(HOUR).dnsEverywhere(key, 'match');
  const again = sim.now.getTime();
  sim.advance(48 * HOUR - MINUTE).dnsEverywhere(key, 'match');
  assert.deepEqual(sim.step(), []);
  sim.advance(MINUTE).dnsEverywhere(key, 'match');
  assert.deepEqual(summary(sim.step()), ['activate:new']);
  assert.equal(sim.now.getTime(), again + 48 * HOUR);
});

test('a pending key past stuckAfter that every server now serves needs nobody: it waits out publishFor and activates', () => {
  const sim = new Simulation(START);
  const key = sim.addKey('example.com', 'rsa', 'pending', 10 * DAY, 'late');
  sim.dnsEverywhere(key, 'match');
  assert.deepEqual(sim.step(), [], 'no stuck notice');
  assert.match(sim.plan().next[0]!.text, /^activates 2026-08-03 03:15 UTC if DNS keeps serving it$/);
  sim.advance(48 * HOUR).dnsEverywhere(key, 'match');
  assert.deepEqual(summary(sim.step()), ['activate:late']);
});

test('a record DNS served long ago counts only up to its last check', () => {
  const sim = new Simulation(START);
  const key = sim.addKey('example.com', 'ed25519', 'pending', HOUR, 'new');
  sim.dnsEverywhere(key, 'match');
  sim.advance(10 * DAY); // no check since: the checker was down
  assert.deepEqual(summary(sim.step()), ['notify:stuck:new'], 'no activation on a record nobody has looked at for 10 days');
  assert.match(sim.plan().next[0]!.text, /activates at the next DNS check if every server still serves it/);
  sim.dnsEverywhere(key, 'match');
  assert.deepEqual(summary(sim.step()), ['activate:new'], 'the first key of a domain activates too, once DNS has served it throughout');
});

test('a pending key is never activated without DNS servers to ask, nor when older than the active key', () => {
  const sim = new Simulation(
    START,
    () => POLICY,
    () => [],
  );
  const key = sim.addKey('example.com', 'rsa', 'pending', 30 * DAY, 'lonely');
  assert.deepEqual(summary(sim.step()), ['notify:stuck:lonely']);
  assert.match(sim.plan().next[0]!.text, /no DNS server is known to ask/);

  const dns = new Simulation(START);
  const stale = dns.addKey('example.com', 'rsa', 'pending', 20 * DAY, 'stale');
  dns.addKey('example.com', 'rsa', 'active', 10 * DAY, 'current');
  dns
    .dnsEverywhere(stale, 'match')
    .advance(3 * DAY)
    .dnsEverywhere(stale, 'match');
  assert.deepEqual(summary(dns.step()), ['notify:stuck:stale']);
  assert.match(dns.plan().next.find((n) => n.selector === 'stale')!.text, /older than the active key current/);
  assert.equal(key.state, 'pending');
});

test('when several pending keys qualify, the newest activates and the others stay pending', () => {
  const sim = new Simulation(START);
  const a = sim.addKey('example.com', 'rsa', 'pending', 2 * HOUR, 'a');
  const b = sim.addKey('example.com', 'rsa', 'pending', HOUR, 'b');
  sim
    .dnsEverywhere(a, 'match')
    .dnsEverywhere(b, 'match')
    .advance(2 * DAY)
    .dnsEverywhere(a, 'match')
    .dnsEverywhere(b, 'match');
  assert.deepEqual(summary(sim.step()), ['activate:b']);
  sim.advance(HOUR).dnsEverywhere(a, 'match');
  assert.deepEqual(sim.step(), [], 'the older one does not displace it');
  assert.deepEqual([sim.key('a').state, sim.key('b').state], ['pending', 'active']);
});

test('a published record that disappears is notified once, and again after it came back and went again', () => {
  const sim = new Simulation(START);
  const key = sim.addKey('example.com', 'rsa', 'active', 10 * DAY, 'live');
  sim.dnsEverywhere(key, 'match');
  assert.deepEqual(sim.step(), []);
  sim.advance(HOUR).dns(key, 'ns2', 'missing');
  const lost = sim.step();
  assert.deepEqual(summary(lost), ['notify:lost:live']);
  assert.match(lost[0]!.why, /live\._domainkey\.example\.com \(active\) is not served by ns2 \(missing: record missing\)/);
  assert.equal(lost[0]!.kind === 'notify' && lost[0]!.records[0]!.value, 'v=DKIM1; k=rsa; p=pub1');
  sim.advance(HOUR).dns(key, 'ns2', 'missing');
  assert.deepEqual(sim.step(), []);
  sim.advance(HOUR).dns(key, 'ns2', 'match');
  assert.deepEqual(sim.plan().resolved, ['lost:1']);
  assert.deepEqual(sim.step(), []);
  sim.advance(HOUR).dns(key, 'ns1', 'mismatch');
  assert.deepEqual(summary(sim.step()), ['notify:lost:live']);
  // An unreachable server says nothing about the record.
  const quiet = new Simulation(START);
  const k = quiet.addKey('example.com', 'rsa', 'retiring', DAY, 'r');
  quiet.dnsEverywhere(k, 'unreachable');
  assert.deepEqual(quiet.step(), []);
});

test('two domains rotate on their own intervals', () => {
  const config = configSchema.parse({ rotation: { interval: '90d', domains: { 'example.org': { interval: '30d' }, 'example.net': { interval: 'off' } } } });
  const sim = new Simulation(START, (domain) => policyFor(config.rotation, domain));
  sim.addKey('example.com', 'rsa', 'active', 0, 'com');
  sim.addKey('example.org', 'rsa', 'active', 0, 'org');
  sim.addKey('example.net', 'rsa', 'active', 0, 'net');
  assert.deepEqual(
    sim.plan().next.map((n) => `${n.selector} ${n.at}`),
    ['com 2026-10-30T03:15:00.000Z', 'org 2026-08-31T03:15:00.000Z'],
  );
  sim.advance(30 * DAY);
  assert.deepEqual(
    sim.step().map((a) => a.domain),
    ['example.org'],
  );
  sim.advance(59 * DAY);
  assert.deepEqual(summary(sim.step()), ['notify:stuck:s202608a'], 'example.org is in progress (and stuck); example.com not due');
  sim.advance(DAY);
  assert.deepEqual(
    sim.step().map((a) => `${a.kind} ${a.domain}`),
    ['create example.com'],
  );
  sim.advance(365 * DAY);
  assert.deepEqual(
    sim.step().filter((a) => a.kind === 'create'),
    [],
    'example.net never rotates; the others wait for DNS',
  );
});

test('a dual RSA and Ed25519 domain rotates each algorithm on its own', () => {
  const sim = new Simulation(START);
  const rsa = sim.addKey('example.com', 'rsa', 'active', 91 * DAY, 'rsa1');
  const ed = sim.addKey('example.com', 'ed25519', 'active', 30 * DAY, 'ed1');
  const first = sim.step();
  assert.deepEqual(
    first.map((a) => a.kind === 'create' && [a.algorithm, a.bits, a.replaces]),
    [['rsa', 2048, rsa.id]],
  );

  const rsa2 = sim.keys.at(-1)!;
  sim
    .dnsEverywhere(rsa2, 'match')
    .advance(2 * DAY)
    .dnsEverywhere(rsa2, 'match');
  const activation = sim.step();
  assert.ok(activation[0]!.kind === 'activate');
  assert.deepEqual(
    activation[0]!.transitions.map((t) => t.keyId),
    [rsa.id, rsa2.id],
    'the Ed25519 key keeps signing',
  );
  assert.equal(sim.key('ed1').state, 'active');

  sim.advance(60 * DAY); // ed1 has signed 92 days, rsa2 only 60
  const created = sim.step().filter((a) => a.kind === 'create');
  assert.deepEqual(
    created.map((a) => a.kind === 'create' && [a.algorithm, a.bits, a.replaces]),
    [['ed25519', 256, ed.id]],
  );
  sim.advance(30 * DAY); // rsa2 is due; the Ed25519 rotation is still in progress
  const later = sim.step().filter((a) => a.kind === 'create');
  assert.deepEqual(
    later.map((a) => a.kind === 'create' && a.algorithm),
    ['rsa'],
  );
  const selectors = sim.keys.map((k) => k.selector);
  assert.equal(new Set(selectors).size, selectors.length, 'every created key has a selector of its own');
});

test('two algorithms due in the same plan get two distinct fresh selectors', () => {
  const sim = new Simulation(START);
  sim.addKey('example.com', 'rsa', 'active', 100 * DAY, 's202604a');
  sim.addKey('example.com', 'ed25519', 'active', 100 * DAY, 's202604b');
  assert.deepEqual(summary(sim.step()), ['create:s202608a', 'create:s202608b']);
});

test('delegated selectors alternate, and a selector is reused only once its key is removed', () => {
  const delegated = { ...POLICY, interval: 20 * DAY, delegation: { zone: 'keys.relay.example.', selectors: ['sel1', 'sel2'] } };
  const sim = new Simulation(START, () => delegated);
  sim.addKey('example.com', 'rsa', 'active', 20 * DAY, 'sel1');
  const live = () => sim.keys.filter((k) => k.state !== 'removed').map((k) => `${k.selector}:${k.state}`);
  const serve = () => {
    const pending = sim.keys.find((k) => k.state === 'pending')!;
    sim
      .dnsEverywhere(pending, 'match')
      .advance(2 * DAY)
      .dnsEverywhere(pending, 'match');
  };

  assert.deepEqual(summary(sim.step()), ['create:sel2']);
  serve();
  assert.deepEqual(summary(sim.step()), ['activate:sel2']);
  assert.deepEqual(live(), ['sel1:retiring', 'sel2:active']);

  // Due again after 20 days, but sel1 is still held by the old key (revoked after 7d, removed after 30 more).
  sim.advance(20 * DAY);
  assert.deepEqual(summary(sim.step()), ['revoke:sel1'], 'due to rotate, but only the old key moves on');
  assert.deepEqual(live(), ['sel1:revoked', 'sel2:active']);
  sim.advance(DAY);
  assert.deepEqual(sim.step(), []);
  const waiting = sim.plan().next.find((n) => n.step === 'rotate')!;
  assert.equal(waiting.at, null);
  assert.match(waiting.text, /waits until a delegated selector is free \(sel1 is revoked, sel2 is active\)/);

  sim.advance(29 * DAY);
  const removal = sim.step();
  assert.deepEqual(summary(removal), ['remove:sel1', 'create:sel1'], 'the removal frees sel1 for the rotation in the same plan');
  assert.equal(removal[0]!.kind === 'remove' && removal[0]!.record.name, 'sel1.example-com.keys.relay.example', 'the record lives in the delegated zone');
  serve();
  assert.deepEqual(summary(sim.step()), ['activate:sel1']);
  assert.deepEqual(live(), ['sel2:retiring', 'sel1:active']);
  assert.equal(sim.keys.filter((k) => k.selector === 'sel1').length, 2, 'the removed key stays in the history');
});

test('the same inputs give the same plan', () => {
  const sim = new Simulation(START);
  sim.addKey('example.org', 'rsa', 'active', 100 * DAY, 'a');
  sim.addKey('example.com', 'ed25519', 'retiring', 8 * DAY, 'b').retiredAt = new Date(Date.parse(START) - 8 * DAY).toISOString();
  sim.addKey('example.com', 'rsa', 'pending', 8 * DAY, 'c');
  const input = { now: sim.now, keys: sim.keys, policy: () => POLICY, servers: () => ['ns1'], observations: [] };
  const one = plan(input);
  assert.deepEqual(summary(one.actions), ['revoke:b', 'notify:stuck:c', 'create:s202608a']);
  assert.deepEqual(plan({ ...input, keys: [...sim.keys].reverse() }), one, 'the order of the keys does not matter');
});

test('delegatedName gives distinct domains distinct names, each label a valid one of at most 63 octets', () => {
  const zone = 'dkim.relay.example.net';
  assert.equal(delegatedName('sel1', 'example.com', zone), 'sel1.example-com.dkim.relay.example.net');
  assert.equal(delegatedName('sel1', 'a-b.com', zone), 'sel1.a--b-com.dkim.relay.example.net');
  assert.equal(delegatedName('sel1', 'a.b.com', zone), 'sel1.a-b-com.dkim.relay.example.net');
  assert.equal(delegatedName('sel1', 'example.com', `${zone}.`), delegatedName('sel1', 'example.com', zone), 'a final dot on the zone changes nothing');

  // Every domain built from these labels, two to four deep, and long ones that need the digest.
  const labels = ['a', 'b', 'a-b', 'a--b', 'b-a', 'xn--bcher-kva', 'ab', 'a-b-c'];
  const domains = new Set<string>();
  for (const x of labels)
    for (const y of labels) {
      domains.add(`${x}.${y}`);
      for (const z of ['com', 'co-uk', 'c']) {
        domains.add(`${x}.${y}.${z}`);
        domains.add(`${x}.${y}.b.${z}`);
      }
    }
  const long = 'k'.repeat(55);
  for (const tail of ['example.com', 'example-com', 'example.org', 'exa.mple.com']) {
    domains.add(`${long}.${tail}`);
    domains.add(`${long}-${tail}`);
    domains.add(`${'x'.repeat(63)}.${'y'.repeat(63)}.${tail}`);
  }
  const byName = new Map<string, string>();
  for (const domain of domains) {
    const name = delegatedName('sel1', domain, zone);
    const label = name.split('.')[1]!;
    assert.ok(label.length <= 63, `${domain}: label of ${label.length} octets`);
    assert.match(label, /^[a-z0-9](?:[a-z0-9-]*[a-z0-9])?$/, `${domain}: ${label} is no valid label`);
    assert.equal(byName.get(name), undefined, `${domain} and ${byName.get(name)} share ${name}`);
    byName.set(name, domain);
  }
  assert.equal(byName.size, domains.size);
  const hashed = delegatedName('sel1', `${long}.example.com`, zone).split('.')[1]!;
  assert.match(hashed, /^k+---[0-9a-f]{32}$/, 'a long domain keeps a readable prefix and a digest');
});

test("each chain rotates on its own: a client's chain gets its own fresh selector and DNS gate, the domain's chain and other clients' are untouched", () => {
  const sim = new Simulation(START);
  const own = sim.addKey('example.com', 'rsa', 'active', 10 * DAY, 's202607a');
  const scanner = sim.addKey('example.com', 'rsa', 'active', 90 * DAY, 'scanner-202605a', 'scanner');
  sim.addKey('example.com', 'rsa', 'active', 30 * DAY, 'crm-202607a', 'crm');

  // Only the scanner's key has signed for the interval: only its chain rotates, with a selector of its own.
  const [create, ...rest] = sim.plan().actions;
  assert.deepEqual(rest, []);
  assert.deepEqual(create, {
    kind: 'create',
    domain: 'example.com',
    client: 'scanner',
    algorithm: 'rsa',
    bits: 2048,
    selector: 'scanner-202608a',
    replaces: scanner.id,
    why: 'scanner-202605a has signed since 2026-05-03 03:15 UTC, longer than 90d',
  });
  assert.deepEqual(summary(sim.step()), ['create:scanner-202608a']);
  const fresh = sim.key('scanner-202608a');
  assert.equal(fresh.client, 'scanner');

  // DNS-gated like any other key; activating it retires the scanner's old key only.
  sim.dnsEverywhere(fresh, 'match');
  for (let checks = 0; checks < 48; checks++) sim.advance(HOUR).dnsEverywhere(fresh, 'match');
  assert.deepEqual(summary(sim.step()), ['activate:scanner-202608a']);
  assert.equal(sim.key('scanner-202605a').state, 'retiring');
  assert.equal(sim.key('s202607a').state, 'active');
  assert.equal(sim.key('crm-202607a').state, 'active');
  assert.equal(own.state, 'active');
});

test('a fleet: a retiring key is not revoked while another relay holds mail it signed, or while a relay is silent', () => {
  const sim = new Simulation(START);
  const old = sim.addKey('example.com', 'rsa', 'retiring', 8 * DAY, 'old');
  old.retiredAt = new Date(Date.parse(START) - 8 * DAY).toISOString();
  sim.addKey('example.com', 'rsa', 'active', DAY, 'new');
  const now = sim.now.getTime();
  const input = { now: sim.now, keys: sim.keys, policy: () => POLICY, servers: () => ['ns1'], observations: [] };
  const heard = (msAgo: number) => new Date(now - msAgo).toISOString();
  const relay = (name: string, msAgo: number, oldestQueued: Record<string, string> | null) => ({
    name,
    address: `${name}:25`,
    lastContact: heard(msAgo),
    oldestQueued,
  });
  const revoke = (peers: ReturnType<typeof relay>[]) => plan({ ...input, peers });
  const held = (peers: ReturnType<typeof relay>[]) => revoke(peers).next.find((n) => n.selector === 'old')!;

  // Every relay heard from, none holding its mail: revoked, as with one relay.
  assert.deepEqual(summary(revoke([relay('a', 1000, {}), relay('b', 2000, { 999: heard(DAY) })]).actions), ['revoke:old']);

  // Relay b still holds mail it signed: held, and the plan names the oldest and where it waits.
  const signedAt = now - 3 * DAY;
  const queued = revoke([relay('a', 1000, {}), relay('b', 2000, { [old.id]: new Date(signedAt).toISOString() })]);
  assert.deepEqual(summary(queued.actions), []);
  assert.equal(
    queued.next.find((n) => n.selector === 'old')!.text,
    `revoked once the queued mail it signed (oldest ${when(signedAt)} on relay b (b:25)) is delivered`,
  );
  // This relay's own queue counts as before, the older of the two shown.
  const both = plan({ ...input, oldestQueued: () => new Date(signedAt - HOUR), peers: [relay('b', 2000, { [old.id]: new Date(signedAt).toISOString() })] });
  assert.equal(both.next.find((n) => n.selector === 'old')!.text, `revoked once the queued mail it signed (oldest ${when(signedAt - HOUR)}) is delivered`);

  // A relay silent past SILENT_AFTER_MS: its queue is unknown, the revocation is held and says why.
  const silent = held([relay('a', 1000, {}), relay('c', SILENT_AFTER_MS + 1, {})]);
  assert.equal(silent.at, null);
  assert.equal(
    silent.text,
    `revocation held: relay c (c:25) has not been heard from since ${when(now - SILENT_AFTER_MS - 1)}; its queue may hold mail signed with this key ` +
      `(until it is back, taken for gone ${when(now - SILENT_AFTER_MS - 1 + GONE_AFTER_MS)}, or forgotten (keys fleet forget c))`,
  );
  assert.deepEqual(summary(revoke([relay('c', SILENT_AFTER_MS + 1, {})]).actions), []);
  // Heard from within the silent period: it counts as what it says.
  assert.deepEqual(summary(revoke([relay('c', SILENT_AFTER_MS, {})]).actions), ['revoke:old']);
  // Gone (silent past GONE_AFTER_MS): taken for decommissioned, it holds nothing back; forgotten, it is not listed at all.
  assert.deepEqual(summary(revoke([relay('a', 1000, {}), relay('c', GONE_AFTER_MS + 1, { [old.id]: heard(GONE_AFTER_MS + DAY) })]).actions), ['revoke:old']);
  assert.deepEqual(summary(revoke([relay('a', 1000, {})]).actions), ['revoke:old']);
  // A relay that does not report its queue (an older version, or its queue unreadable) holds it too.
  assert.match(held([relay('d', 1000, null)]).text, /^revocation held: relay d \(d:25\) does not report what it holds queued/);

  // Not due yet: the time is shown, with the condition when mail waits somewhere.
  old.retiredAt = new Date(now - 6 * DAY).toISOString();
  const early = held([relay('b', 2000, { [old.id]: heard(DAY) })]);
  assert.equal(early.at, new Date(now + DAY).toISOString());
  assert.equal(early.text, `revoked ${when(now + DAY)} if no mail it signed is still queued`);
});
