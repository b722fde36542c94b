// Property: every From: we accept, an independent RFC 5322 parser (Python's
// email package, policy.default) reads as the same address(es). Python may
// accept more than we do; it must never read what we accept differently.
// FROM_SEED and FROM_CASES replay or widen a run.
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { domainToASCII } from 'node:url';
import type { HeaderField } from '../../src/message/header.ts';
import { parseMailboxList } from '../../src/message/mailbox-list.ts';
import { findAuthor } from '../../src/pipeline/author.ts';
import { caseSeed, parseSeed, Rng } from '../fuzz/prng.ts';
import { generateField, type FieldKind } from './from-fields.ts';
import { PythonAddressReader, type PythonReading } from './python-reader.ts';

const SEED = parseSeed(process.env.FROM_SEED ?? '20261122');
const CASES = Math.min(Number.parseInt(process.env.FROM_CASES ?? '3000', 10), 100_000);
const BATCH = 250;

const python = new PythonAddressReader();
after(() => python.close());

const fromField = (value: string): HeaderField => ({ name: 'From', key: 'from', raw: `From: ${Buffer.from(value, 'utf8').toString('latin1')}` });

/** Why Python's reading differs from ours, or null when it agrees. */
function disagreement(value: string, py: PythonReading): string | null {
  const ours = parseMailboxList(value);
  if (!ours.ok) return null;
  const author = findAuthor([fromField(value)]);
  // Refused after parsing (a display name showing another domain, say): Python may refuse it too.
  if (!py.ok) return author.ok ? `python refuses it: ${py.error}` : null;
  if (py.groups > 0) return 'python reads a group';
  const mine = ours.mailboxes.map((m) => [m.localPart, m.domain.toLowerCase()]);
  const theirs = py.mailboxes.map(([user, domain]) => [user, domain.toLowerCase()]);
  if (JSON.stringify(mine) !== JSON.stringify(theirs)) return `we read ${JSON.stringify(mine)}, python ${JSON.stringify(theirs)}`;
  if (author.ok && author.domain !== domainToASCII(theirs[0]![1]!)) return `author domain ${author.domain}, python ${theirs[0]![1]}`;
  return null;
}

test(`generated From: fields we accept read the same in Python (seed ${SEED}, ${CASES} cases)`, { timeout: 120_000 }, async () => {
  const tally: Record<FieldKind, { accepted: number; refused: number }> = {
    ordinary: { accepted: 0, refused: 0 },
    hostile: { accepted: 0, refused: 0 },
    mutated: { accepted: 0, refused: 0 },
  };
  const failures: string[] = [];
  for (let start = 0; start < CASES; start += BATCH) {
    const cases = [];
    for (let i = start; i < Math.min(CASES, start + BATCH); i++) cases.push({ index: i, ...generateField(new Rng(caseSeed(SEED, i))) });
    const readings = await Promise.all(cases.map((c) => python.read(c.value)));
    cases.forEach((c, n) => {
      const accepted = findAuthor([fromField(c.value)]).ok;
      tally[c.kind][accepted ? 'accepted' : 'refused']++;
      if (c.kind === 'hostile' && accepted) failures.push(`case ${c.index}: hostile ${JSON.stringify(c.value)} was accepted`);
      const why = disagreement(c.value, readings[n]!);
      if (why) failures.push(`case ${c.index}: ${JSON.stringify(c.value)}: ${why}`);
    });
  }
  assert.deepEqual(failures.slice(0, 20), [], `${failures.length} failures (FROM_SEED=${SEED})`);
  // The generator must exercise both sides, or the property says nothing.
  assert.ok(tally.ordinary.accepted > tally.ordinary.refused, JSON.stringify(tally));
  assert.ok(tally.mutated.accepted > CASES / 50 && tally.mutated.refused > CASES / 50, JSON.stringify(tally));
  assert.ok(tally.hostile.refused > CASES / 20, JSON.stringify(tally));
});
