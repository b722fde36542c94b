// The name the relay gives in EHLO to the smart host: delivery.upstream.name,
// else listen.hostname, else the machine's host name — never nodemailer's
// "[127.0.0.1]" fallback. Checked with the real `serve` against a host that
// records each EHLO line.
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { tempDir } from '../helpers/tmp.ts';
import { serve } from '../cli/support.ts';
import { startScriptedUpstream } from './upstreams.ts';

/** Starts the relay against a host that records EHLO; resolves with the first EHLO line (the start-up probe). */
async function firstEhlo(yaml: string): Promise<string> {
  let seen: (line: string) => void = () => {};
  const ehlo = new Promise<string>((resolve) => (seen = resolve));
  const host = await startScriptedUpstream('220 host.test ESMTP', (line) => {
    if (/^EHLO /i.test(line)) {
      seen(line);
      return '250-host.test\r\n250 8BITMIME';
    }
    return null;
  });
  const dir = tempDir();
  const config = join(dir, 'relay.yaml');
  writeFileSync(
    config,
    `keys: {dir: ${join(dir, 'keys')}}\nmetrics: {listen: "127.0.0.1:0"}\nrotation: {check: "off"}\n` +
      `delivery: {mode: sync, upstream: {type: smtp, host: 127.0.0.1, port: ${host.port}${yaml}}}\n` +
      `listen: {port: 0, hostname: relay.example.test}\n`,
  );
  const relay = await serve(['--config', config], dir);
  try {
    let timer: NodeJS.Timeout | undefined;
    const line = await Promise.race([
      ehlo,
      new Promise<string>((_, reject) => (timer = setTimeout(() => reject(new Error(`no EHLO within 15 s:\n${relay.output()}`)), 15_000))),
    ]);
    clearTimeout(timer);
    return line;
  } finally {
    relay.kill();
    await relay.exited;
    await host.close();
  }
}

test('EHLO to the smart host gives delivery.upstream.name', async () => {
  assert.equal(await firstEhlo(', name: out.example.test'), 'EHLO out.example.test');
});

test('without delivery.upstream.name, EHLO gives listen.hostname, not [127.0.0.1]', async () => {
  assert.equal(await firstEhlo(''), 'EHLO relay.example.test');
});
