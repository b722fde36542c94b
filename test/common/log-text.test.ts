// One pino JSON line as the human line of log.format: text.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { textLine } from '../../src/common/log-text.ts';

test('time, level, message, then each field; values with spaces, quotes or = quoted as JSON; objects as JSON', () => {
  const line = textLine(
    JSON.stringify({
      level: 'warn',
      time: '2026-12-06T01:02:03.456Z',
      service: 'dkim-relay',
      client: '192.0.2.1',
      reply: '451 4.4.1 try "later"',
      n: 3,
      ok: false,
      kept: ['queue.dir (a=b)'],
      msg: 'AUTH failed',
    }),
  );
  assert.equal(line, '2026-12-06T01:02:03.456Z WARN  AUTH failed client=192.0.2.1 reply="451 4.4.1 try \\"later\\"" n=3 ok=false kept=["queue.dir (a=b)"]\n');
});

test('a line that is not JSON is passed on as it is, one line', () => {
  assert.equal(textLine('not json'), 'not json\n');
});
