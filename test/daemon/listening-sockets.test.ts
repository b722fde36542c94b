// The listening sockets a reload passes from relay to relay: the newest holder
// is given the connections, one that lets go gives them back, the last one
// closes the socket, and the port is never free in between.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { connect, createServer, type Socket } from 'node:net';
import { join } from 'node:path';
import { test } from 'node:test';
import { holdSocket, type Holder } from '../../src/daemon/listening-sockets.ts';
import { isolatedNode, NEEDS_ROOT } from '../helpers/no-route.ts';

/** A holder that greets each connection with its name and closes it. */
function named(name: string): Holder & { failures: Error[] } {
  const failures: Error[] = [];
  return { take: (socket: Socket) => socket.end(`${name}\r\n`), failed: (err) => failures.push(err), failures };
}

/** What the holder that takes a connection to `port` says. */
function whoAnswers(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
    let text = '';
    socket.setEncoding('latin1');
    socket.on('data', (d: string) => (text += d));
    socket.once('close', () => resolve(text.trim()));
    socket.once('error', reject);
  });
}

/** Whether another socket can bind `port` now. */
function isFree(port: number): Promise<boolean> {
  const server = createServer();
  return new Promise((resolve) => {
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
}

test('the newest holder takes the connections, a release hands them back, and the last one closes the port', async () => {
  const first = await holdSocket('127.0.0.1', 0, named('first'));
  const { port } = first;
  assert.ok(port > 0);
  assert.equal(await whoAnswers(port), 'first');

  // A reload names the port the first relay was given: the same socket, taken over.
  const second = await holdSocket('127.0.0.1', port, named('second'));
  assert.equal(second.port, port);
  assert.equal(await whoAnswers(port), 'second');
  assert.equal(await isFree(port), false);

  // The new relay failed to start: the connections go back to the one before.
  second.release();
  assert.equal(await whoAnswers(port), 'first');
  second.release(); // twice is once
  assert.equal(await whoAnswers(port), 'first');

  const third = await holdSocket('127.0.0.1', port, named('third'));
  first.release();
  assert.equal(await whoAnswers(port), 'third', 'the old relay let go: the new one has the port, never free meanwhile');
  assert.ok(third.listening());
  third.release();
  assert.equal(third.listening(), false);
  assert.equal(await isFree(port), true, 'the last holder let go: the socket is closed');
});

test('a port 0 is a socket of its own each time', async () => {
  const a = await holdSocket('127.0.0.1', 0, named('a'));
  const b = await holdSocket('127.0.0.1', 0, named('b'));
  try {
    assert.notEqual(a.port, b.port);
    assert.equal(await whoAnswers(a.port), 'a');
    assert.equal(await whoAnswers(b.port), 'b');
  } finally {
    a.release();
    b.release();
  }
});

test('a port another process holds is refused with EADDRINUSE', async () => {
  const other = createServer();
  await new Promise<void>((resolve) => other.listen(0, '127.0.0.1', resolve));
  try {
    const port = (other.address() as { port: number }).port;
    await assert.rejects(holdSocket('127.0.0.1', port, named('x')), { code: 'EADDRINUSE' });
  } finally {
    other.close();
  }
});

test(
  'a reload that moves the listener to the wildcard address on the same port closes the old socket and binds the new one',
  { skip: NEEDS_ROOT },
  async () => {
    // 0.0.0.0 is bound only in a network namespace of its own (loopback only).
    const script = `
      import { holdSocket } from ${JSON.stringify(join(import.meta.dirname, '..', '..', 'src', 'daemon', 'listening-sockets.ts'))};
      import { connect } from 'node:net';
      const holder = (name) => ({ take: (s) => s.end(name + '\\r\\n'), failed: () => {} });
      const ask = (port) => new Promise((resolve) => { let t = ''; const s = connect(port, '127.0.0.1'); s.on('data', (d) => (t += d)); s.on('close', () => resolve(t.trim())); });
      const old = await holdSocket('127.0.0.1', 0, holder('old'));
      const moved = await holdSocket('0.0.0.0', old.port, holder('moved'));
      const oldListening = old.listening();
      const answer = await ask(old.port);
      old.release();
      const after = await ask(old.port);
      moved.release();
      console.log(JSON.stringify({ same: moved.port === old.port, answer, after, oldListening }));
    `;
    const output = await new Promise<string>((resolve, reject) =>
      execFile(isolatedNode(), ['--input-type=module', '-e', script], { timeout: 30_000 }, (err, stdout, stderr) =>
        err ? reject(new Error(`${err.message}\n${stderr}`)) : resolve(stdout),
      ),
    );
    assert.deepEqual(JSON.parse(output), { same: true, answer: 'moved', after: 'moved', oldListening: false });
  },
);
