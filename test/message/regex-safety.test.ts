// No regular expression in src/ can backtrack super-linearly: a pattern like
// /[ \t]+$/ on a header name followed by 100 KB of spaces held the event loop
// for seconds, and every session with it. recheck (a ReDoS checker that
// proves a pattern safe or builds an attack string for it) judges every
// /literal/ and every RegExp(...) built from literals in the sources.
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { describe, test } from 'node:test';
import { check } from 'recheck';
import { regexesIn } from '../helpers/regex-literals.ts';

const ROOT = new URL('../../', import.meta.url).pathname;
const SRC = join(ROOT, 'src');

/**
 * Patterns that may stay although recheck calls them vulnerable, each with the
 * reason it only ever sees short text the relay made itself. Keyed by
 * "file:source". Empty, and it should stay so: rewrite a pattern before
 * adding it here.
 */
const ALLOWED = new Map<string, string>([]);

/**
 * recheck proves most patterns safe from their automaton; the rest it fuzzes,
 * and by default its fuzzing stops at time limits, which a busy machine
 * reaches sooner: one by one, its fuzzing phases limited by step counts
 * alone (and a fixed seed, the default), every run gives the same verdicts.
 * The recall validation keeps its default (null turns it off, and then
 * /[ \t]+$/ passes as safe). The whole check of one pattern has a time
 * limit far above what a safe pattern takes (all of src/ takes seconds); a
 * pattern that reaches it is reported, not passed.
 */
const DETERMINISTIC = { timeout: 60_000, incubationTimeout: null, attackTimeout: null, seedingTimeout: null, randomSeed: 0 };

function sourceFiles(): string[] {
  return readdirSync(SRC, { recursive: true })
    .map(String)
    .filter((f) => f.endsWith('.ts'))
    .sort()
    .map((f) => join(SRC, f));
}

describe('regular expressions in src/', () => {
  test('the scanner finds literals, RegExp(...) and only those', () => {
    const { found, unresolved } = regexesIn(
      [
        '#!/usr/bin/env node',
        "const A = '[a-z]';",
        'const x: number = 4 / 2 / 1; // /not a regex/',
        'const s = \'/not/\' + "/either/" + `/${x / 2}/`; /* /nor this/ */',
        'const r = /a[/\\]]b/gi.test(s) ? x : (y) / 2;',
        'function f() { if (x) return /^c$/.exec(s); }',
        "const t = new RegExp(`^${A}+$`, 'u');",
        'const u = RegExp(variable);',
        'const v = [1].map((n) => n / 2)[0]! / 3;',
      ].join('\n'),
    );
    assert.deepEqual(found, [
      { line: 5, source: 'a[/\\]]b', flags: 'gi' },
      { line: 6, source: '^c$', flags: '' },
      { line: 7, source: '^[a-z]+$', flags: 'u' },
    ]);
    assert.deepEqual(
      unresolved.map((u) => u.line),
      [8],
    );
  });

  test('recheck proves every one safe', { timeout: 1_800_000 }, async () => {
    const problems: string[] = [];
    let count = 0;
    for (const file of sourceFiles()) {
      const where = relative(ROOT, file);
      const { found, unresolved } = regexesIn(readFileSync(file, 'utf8'));
      for (const u of unresolved) problems.push(`${where}:${u.line}: a RegExp built from something other than literals cannot be checked: ${u.text}`);
      for (const regex of found) {
        count++;
        const result = await check(regex.source, regex.flags, DETERMINISTIC);
        const at = `${where}:${regex.line}: /${regex.source}/${regex.flags}`;
        if (result.status === 'safe' || ALLOWED.has(`${where}:${regex.source}`)) continue;
        if (result.status === 'vulnerable') {
          const attack = result.attack.pattern.length > 80 ? `${result.attack.pattern.slice(0, 77)}...` : result.attack.pattern;
          problems.push(`${at} is ${result.complexity.summary} (attack: ${attack})`);
        } else {
          problems.push(`${at} could not be proved safe (${result.error.kind})`);
        }
      }
    }
    assert.ok(count > 100, `only ${count} regular expressions found: is the scanner broken?`);
    assert.deepEqual(problems.sort(), []);
  });
});
