// The bash completion the Debian package ships is written out, not asked
// from the program: it must name every command and sub-command --help lists.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { dkimRelay, ROOT } from '../cli/support.ts';
import { tempDir } from '../helpers/tmp.ts';

const completion = readFileSync(join(ROOT, 'packaging', 'deb', 'dkim-relay.bash-completion'), 'utf8');

/** The words completed after `dkim-relay [group]`: the compgen -W list on the line of that case. */
function completed(group: string): string[] {
  const line = completion.split('\n').find((l) => l.trimStart().startsWith(`${group})`) && l.includes('compgen -W'));
  assert.ok(line, `the completion has no case for ${group}`);
  return /compgen -W "([^"]+)"/.exec(line)![1]!.split(' ');
}

/** The commands `dkim-relay [group] --help` lists. */
async function listed(group: string | undefined, cwd: string): Promise<string[]> {
  const r = await dkimRelay([...(group ? [group] : []), '--help'], cwd);
  assert.equal(r.code, 0, r.stderr);
  const prefix = group ? `dkim-relay ${group} ` : 'dkim-relay ';
  const commands = r.stdout.split('Commands:\n')[1]?.split('\n\n')[0] ?? '';
  return [...commands.matchAll(new RegExp(`^  ${prefix}([a-z]+)`, 'gm'))].map((m) => m[1]!);
}

test('bash completion names every command and sub-command', async () => {
  const cwd = tempDir();
  assert.deepEqual(completed('""').sort(), (await listed(undefined, cwd)).sort());
  for (const group of ['keys', 'dns', 'config', 'queue', 'reports']) assert.deepEqual(completed(group).sort(), (await listed(group, cwd)).sort(), group);
});
