// The folders of src/ are layers: each imports only the folders above it in
// LAYERS, never one below or beside it, and no file takes part in an import
// cycle. A reader can then learn the tree top to bottom, and a change low in
// it cannot be broken by something built on top. Type-only imports count:
// they tie the folders together just the same.
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { test } from 'node:test';

const SRC = resolve(import.meta.dirname, '..', '..', 'src');

/** Top to bottom. Folders on one line are siblings that may not import each other. */
export const LAYERS: readonly (readonly string[])[] = [
  ['common'],
  ['smtp'],
  ['message'],
  ['keys'],
  ['dns'],
  ['config'],
  ['signing'],
  ['access'],
  ['pipeline'],
  ['delivery'],
  ['bounce'],
  ['rotation'],
  ['observability'],
  ['reports'],
  ['queue'],
  ['relay'],
  ['daemon'],
  ['cli'],
];

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? sources(join(dir, e.name)) : /\.(ts|js)$/.test(e.name) && !e.name.endsWith('.d.ts') ? [join(dir, e.name)] : [],
  );
}

// Static imports and re-exports (`import x from`, `import type`, `export … from`, bare `import '…'`) and import().
const SPECIFIER =
  /(?:^|\n)\s*(?:import|export)\b[^'";]*?['"](\.{1,2}\/[^'"]+)['"]|\bimport\(\s*['"](\.{1,2}\/[^'"]+)['"]\s*\)|new URL\(\s*['"](\.{1,2}\/[^'"]+)['"]/g;

function importsOf(file: string): string[] {
  const text = readFileSync(file, 'utf8');
  return [...text.matchAll(SPECIFIER)].map((m) => resolve(dirname(file), (m[1] ?? m[2] ?? m[3])!));
}

const folderOf = (file: string): string => relative(SRC, file).split(sep)[0]!;
const rankOf = (folder: string): number => LAYERS.findIndex((line) => line.includes(folder));

const files = sources(SRC);
const graph = new Map(files.map((f) => [f, importsOf(f)]));

test('every file of src/ lives in a declared layer', () => {
  assert.ok(files.length > 100, 'the source files were found');
  const stray = files.filter((f) => rankOf(folderOf(f)) < 0).map((f) => relative(SRC, f));
  assert.deepEqual(stray, [], 'a file outside every folder of LAYERS (add its folder in its place, or move it)');
});

test('each folder imports only folders above it', () => {
  const wrong: string[] = [];
  for (const [file, targets] of graph) {
    const from = folderOf(file);
    for (const target of targets) {
      const to = folderOf(target);
      if (to !== from && rankOf(to) >= rankOf(from)) wrong.push(`${relative(SRC, file)} imports ${relative(SRC, target)} (${to} is not above ${from})`);
    }
  }
  assert.deepEqual(wrong, []);
});

test('every relative import names a file that exists', () => {
  const missing = [...graph].flatMap(([file, targets]) => targets.filter((t) => !graph.has(t)).map((t) => `${relative(SRC, file)} → ${relative(SRC, t)}`));
  assert.deepEqual(missing, []);
});

/** Strongly connected groups of more than one file (Tarjan), each sorted. */
function cycles(): string[][] {
  let next = 0;
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const found: string[][] = [];
  const visit = (v: string): void => {
    index.set(v, next);
    low.set(v, next++);
    stack.push(v);
    onStack.add(v);
    for (const w of graph.get(v) ?? []) {
      if (!graph.has(w)) continue;
      if (!index.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (onStack.has(w)) low.set(v, Math.min(low.get(v)!, index.get(w)!));
    }
    if (low.get(v) !== index.get(v)) return;
    const group: string[] = [];
    let w: string;
    do {
      w = stack.pop()!;
      onStack.delete(w);
      group.push(relative(SRC, w));
    } while (w !== v);
    if (group.length > 1) found.push(group.sort());
  };
  for (const f of files) if (!index.has(f)) visit(f);
  return found;
}

test('no file takes part in an import cycle', () => {
  assert.deepEqual(cycles(), []);
});
