// A file of the relay user's elsewhere, 0600, that a planted link points at:
// a test proves the relay neither wrote through the link nor changed its mode.
import assert from 'node:assert/strict';
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tempDir } from './tmp.ts';

export function victim(content = 'do not touch\n'): { path: string; unchanged(): void } {
  const path = join(tempDir('victim-'), 'secret');
  writeFileSync(path, content, { mode: 0o600 });
  return {
    path,
    unchanged() {
      assert.equal(readFileSync(path, 'utf8'), content, 'the target keeps its content');
      assert.equal(statSync(path).mode & 0o777, 0o600, 'the target keeps its mode');
    },
  };
}
