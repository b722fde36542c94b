// docs/configuration.md is generated from the schema (npm run docs:config):
// it must say what the schema says, and every key must say what it is for.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { REFERENCE_END, REFERENCE_FILE, REFERENCE_START, referenceSections, renderReference, replaceReference } from '../../src/config/reference.ts';

const sections = referenceSections();
const rows = sections.flatMap((s) => s.rows);
const row = (path: string, variant?: string) => rows.find((r) => r.path === path && (variant === undefined ? !r.variants : r.variants?.includes(variant)));

test('docs/configuration.md holds the reference the schema renders (run npm run docs:config)', () => {
  const document = readFileSync(REFERENCE_FILE, 'utf8');
  assert.equal(document, replaceReference(document, renderReference(sections)), 'docs/configuration.md is stale: run npm run docs:config');
});

test('every key and every section of the schema has a description', () => {
  const undescribed = rows.filter((r) => r.description.trim() === '').map((r) => r.path);
  assert.deepEqual(undescribed, []);
  // A section that is one key (clients) is described in its row; the others above their table.
  assert.deepEqual(
    sections.filter((s) => s.rows[0]?.path !== s.key && s.description === '').map((s) => s.key),
    [],
  );
});

test('types and defaults come from the schema, including defaults under a refinement', () => {
  assert.deepEqual(row('queue.retryAfter'), { path: 'queue.retryAfter', type: 'duration', default: '`1m`', description: row('queue.retryAfter')!.description });
  assert.equal(row('listen.port')!.type, 'integer 0–65535');
  assert.equal(row('listen.hostname')!.default, 'unset');
  assert.equal(row('dns.publish')!.default, '`[]`');
  assert.equal(row('access.users[].password')!.default, 'required');
  assert.equal(row('signing.domains.*.canonicalization')!.default, 'unset');
});

test('keys of a union are marked with the alternatives they belong to, once where they mean the same in all', () => {
  assert.equal(row('delivery.upstream.type')!.type, '`smtp` | `file` | `mx`');
  assert.equal(row('delivery.upstream.type')!.default, '`file`');
  assert.deepEqual(row('delivery.upstream.host', 'smtp')!.variants, ['smtp']);
  assert.deepEqual(row('delivery.upstream.maxConnections', 'mx')!.default, '`20`');
  assert.ok(row('delivery.upstream.dualSign'), 'dualSign means the same for every upstream: one row');
  assert.equal(rows.filter((r) => r.path === 'dns.publish[].zone').length, 1);
});

test('replacing the generated part keeps the text around it, and needs the markers', () => {
  const document = `# x\nbefore\n${REFERENCE_START}\nold\n${REFERENCE_END}\nafter\n`;
  const written = replaceReference(document, 'new');
  assert.equal(written, `# x\nbefore\n${REFERENCE_START}\n\nnew\n\n${REFERENCE_END}\nafter\n`);
  assert.throws(() => replaceReference('# no markers\n', 'new'), /has no/);
});
