// Shared helpers for the key store tests.
import assert from 'node:assert/strict';
import { UserError } from '../../src/common/errors.ts';

/** The PEM armour of private keys; spelt in two parts so no output of ours ever holds it whole. */
export const PRIVATE_ARMOUR = ['PRIVATE', 'KEY'].join(' ');

/** Hides anything that looks like private key material before it goes into an assertion message. */
export function redact(text: string): string {
  return text
    .replace(/-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?(-----END [A-Z ]*PRIVATE KEY-----|$)/g, '[key material redacted]')
    .replaceAll(PRIVATE_ARMOUR, '[redacted]');
}

/**
 * Runs `fn`, which must throw a UserError: a line saying what is wrong and how
 * to mend it, and never any private key material.
 */
export function expectUserError(fn: () => unknown, what: RegExp, how?: RegExp): UserError {
  let thrown: unknown;
  try {
    fn();
  } catch (err) {
    thrown = err;
  }
  if (thrown === undefined) assert.fail('expected a UserError, but nothing was thrown');
  if (!(thrown instanceof UserError)) {
    const shown = thrown instanceof Error ? `${thrown.name}: ${redact(thrown.message)}` : redact(String(thrown));
    assert.fail(`expected a UserError, got ${shown}`);
  }
  const line = thrown.toLine();
  assert.ok(!line.includes(PRIVATE_ARMOUR), `the error message carries key material: ${redact(line)}`);
  assert.match(thrown.message, what);
  assert.ok(thrown.hint, `the UserError "${thrown.message}" does not say how to mend it`);
  if (how) assert.match(thrown.hint, how);
  return thrown;
}
