// The keystrokes of a password typed without echo, one at a time.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { applyKey } from '../../src/cli/hidden-input.ts';

function typed(keys: string): string | 'done' | 'abort' {
  let line = '';
  for (const key of keys) {
    const next = applyKey(line, key);
    if (next === 'done' || next === 'abort') return next === 'done' ? line : next;
    line = next;
  }
  return line;
}

test('Enter ends the line; Backspace and DEL erase a character (a whole one, not half of it); Ctrl-U erases the line', () => {
  assert.equal(typed('secret\r'), 'secret');
  assert.equal(typed('secrex\x7ft\n'), 'secret');
  assert.equal(typed('geheimé\bnis\r'), 'geheimnis');
  assert.equal(typed('wrong\x15right\r'), 'right');
  assert.equal(typed('tab\there\r'), 'tabhere', 'other control keys are dropped');
});

test('Ctrl-C aborts, and Ctrl-D on an empty line is end of input; Ctrl-D after text is ignored', () => {
  assert.equal(typed('abc\x03'), 'abort');
  assert.equal(typed('\x04'), 'abort');
  assert.equal(typed('abc\x04d\r'), 'abcd');
});
