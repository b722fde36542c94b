// The fleet as `status` shows it, decided with the clock passed in.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  CATCH_UP_MS,
  FORGET_AFTER_MS,
  fleetAttention,
  fleetStatus,
  forgottenNodes,
  GONE_AFTER_MS,
  renderFleet,
  SILENT_AFTER_MS,
} from '../../src/observability/fleet-status.ts';
import { fleetSection } from '../../src/observability/status-page.ts';

const now = new Date('2026-12-06T05:00:00.000Z');
const node = (name: string, generation: number, lastContactMsAgo: number) => ({
  name,
  version: '1.0.0',
  address: `192.0.2.1:25`,
  generation,
  loadedAt: '2026-12-06T04:00:00.000Z',
  lastContact: new Date(now.getTime() - lastContactMsAgo).toISOString(),
  oldestQueued: {},
});

test('a relay on an older key generation is outdated, one not heard from for three heartbeats is silent', () => {
  const fleet = fleetStatus({
    nodes: [node('a', 7, 1000), node('b', 6, 1000), node('c', 7, SILENT_AFTER_MS + 1)],
    generation: 7,
    unreachableSince: null,
    now,
  });
  assert.deepEqual(
    fleet.nodes.map((n) => [n.name, n.state]),
    [
      ['a', 'current'],
      ['b', 'outdated'],
      ['c', 'silent'],
    ],
  );
  assert.equal(fleetAttention(fleet), 2);
  const text = renderFleet(fleet);
  assert.match(text, /^fleet \(key generation 7\)$/m);
  assert.match(text, /^ {2}a {2}192\.0\.2\.1:25 {2}1\.0\.0 {2}key generation 7 loaded /m);
  assert.match(text, /^! b .*key generation 6 \(outdated\)/m);
  assert.match(text, /^! c .*not heard from since /m);
});

test('the newest generation is the highest any relay holds, even above the reporting relay’s; the store away needs a person', () => {
  const fleet = fleetStatus({ nodes: [node('a', 8, 0)], generation: 7, unreachableSince: '2026-12-06T04:59:00.000Z', now });
  assert.equal(fleet.generation, 8);
  assert.equal(fleetAttention(fleet), 1);
  assert.match(renderFleet(fleet), /^! the key store has not answered since .*signing with the keys held, rotation paused$/m);
});

test('a relay silent for a week is taken for decommissioned: listed, no longer a failure', () => {
  const fleet = fleetStatus({
    nodes: [node('a', 7, 1000), node('old', 5, GONE_AFTER_MS + 1), node('down', 7, GONE_AFTER_MS - 1)],
    generation: 7,
    unreachableSince: null,
    now,
  });
  assert.deepEqual(
    fleet.nodes.map((n) => [n.name, n.state]),
    [
      ['a', 'current'],
      ['old', 'gone'],
      ['down', 'silent'],
    ],
  );
  assert.equal(fleetAttention(fleet), 1, 'only the relay down for less than a week needs a person');
  assert.match(renderFleet(fleet), /^ {2}old .*taken for decommissioned \(forgotten 2026-12-13 04:59 UTC, or at once by keys fleet forget old\)$/m);
});

test('a relay heard from just after a new key set appeared is catching up, not outdated', () => {
  const fresh = { ...node('a', 8, 0), loadedAt: new Date(now.getTime() - 2_000).toISOString() };
  const fleet = fleetStatus({ nodes: [fresh, node('b', 7, 1_000), node('c', 7, 0)], generation: 8, unreachableSince: null, now });
  // b last wrote 1 s after generation 8 appeared: it had no time to load it. c wrote now, 2 s after: still within one look.
  assert.deepEqual(
    fleet.nodes.map((n) => n.state),
    ['current', 'catching-up', 'catching-up'],
  );
  assert.equal(fleetAttention(fleet), 0, 'catching up needs nobody');
  assert.match(renderFleet(fleet), /^ {2}b .*key generation 7 loaded .*, catching up with generation 8$/m);
  const later = new Date(now.getTime() + CATCH_UP_MS);
  const behind = fleetStatus({ nodes: [fresh, { ...node('c', 7, 0), lastContact: later.toISOString() }], generation: 8, unreachableSince: null, now: later });
  assert.deepEqual(
    behind.nodes.map((n) => n.state),
    ['current', 'outdated'],
  );
});

test('a heartbeat silent for two weeks is forgotten: a week flagged, a week listed as gone', () => {
  const nodes = [node('a', 7, 1000), node('gone', 7, GONE_AFTER_MS + 1), node('old', 5, FORGET_AFTER_MS + 1)];
  assert.deepEqual(
    forgottenNodes(nodes, now).map((n) => n.name),
    ['old'],
  );
  const later = new Date(now.getTime() + GONE_AFTER_MS);
  assert.deepEqual(
    forgottenNodes(nodes, later).map((n) => n.name),
    ['gone', 'old'],
  );
  assert.deepEqual(forgottenNodes(nodes, new Date(now.getTime() - 1000)), [], 'nothing forgotten early');
});

test("the status page's fleet table says what each relay holds queued: the oldest mail and how many keys signed it, none, or not told", () => {
  const fleet = fleetStatus({
    nodes: [
      { ...node('a', 7, 1000), address: '192.0.2.1:25', oldestQueued: { 3: '2026-12-06T01:00:00.000Z', 4: '2026-12-05T23:30:00.000Z' } },
      { ...node('b', 7, 1000), address: '192.0.2.2:25', oldestQueued: {} },
      { ...node('c', 7, 1000), address: '192.0.2.3:25', oldestQueued: null },
    ],
    generation: 7,
    unreachableSince: null,
    now,
  });
  const page = fleetSection(fleet).text;
  const row = (address: string) => new RegExp(`<tr data-relay="[^"]+" data-address="${address.replace(/\./g, '\\.')}"[^>]*>(.*?)</tr>`).exec(page)?.[1] ?? '';
  assert.match(page, /<th>queued mail<\/th>/);
  assert.match(row('192.0.2.1:25'), /<td>since 2026-12-05 23:30 UTC <span class="muted">\(signed with 2 keys\)<\/span><\/td>/);
  assert.match(row('192.0.2.2:25'), /<td>none<\/td>/);
  assert.match(row('192.0.2.3:25'), /<td><span class="muted">not told<\/span><\/td>/);
});
