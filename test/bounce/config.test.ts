// The bounce section of the configuration, read from real YAML text.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { parseConfig } from '../../src/config/load.ts';
import { bounceFromAddress } from '../../src/bounce/settings.ts';
import { expectUserError } from '../keys/support.ts';

test('notices come from mailer-daemon at listen.hostname unless bounce.from says otherwise', () => {
  const { bounce } = parseConfig('', 'empty.yaml');
  assert.deepEqual(bounce, { returnContentLimit: 102400, maxPerAddress: 20, addressWindow: '1h' });
  assert.equal(bounceFromAddress(bounce, 'relay.example.net'), 'mailer-daemon@relay.example.net');
  assert.equal(bounceFromAddress(bounce, 'relay.example.net.'), 'mailer-daemon@relay.example.net');
  const set = parseConfig('bounce: { from: postmaster@example.com, returnContentLimit: 0 }', 'test.yaml').bounce;
  assert.equal(bounceFromAddress(set, 'relay.example.net'), 'postmaster@example.com');
  assert.equal(set.returnContentLimit, 0);
});

test('the example configuration documents every bounce key at its default', () => {
  const text = readFileSync(new URL('../../config/dkim-relay.example.yaml', import.meta.url), 'utf8');
  assert.deepEqual(parseConfig(text, 'example').bounce, parseConfig('', 'empty').bounce);
  for (const key of ['from', 'returnContentLimit', 'maxPerAddress', 'addressWindow'])
    assert.match(text, new RegExp(`^  #? ?${key}:`, 'm'), `bounce.${key} is not in the example`);
});

test('wrong bounce settings are refused with one line saying which key and why', () => {
  expectUserError(() => parseConfig('bounce: { from: mailer-daemon }', 'test.yaml'), /bounce\.from: must be a mail address/);
  expectUserError(() => parseConfig('bounce: { returnContentLimit: -1 }', 'test.yaml'), /bounce\.returnContentLimit/);
  expectUserError(() => parseConfig('bounce: { returnContent: 10 }', 'test.yaml'), /unknown key bounce\.returnContent/);
  expectUserError(() => parseConfig('bounce: { maxPerAddress: 0 }', 'test.yaml'), /bounce\.maxPerAddress/);
  expectUserError(() => parseConfig('bounce: { addressWindow: soon }', 'test.yaml'), /bounce\.addressWindow/);
});
