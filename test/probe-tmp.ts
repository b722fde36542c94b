import { configSchema } from '../src/config/schema.ts';
import { KeyStore } from '../src/keys/store.ts';
import { processMessage } from '../src/pipeline/pipeline.ts';
import { tempDir } from './helpers/relay-harness.ts';
import { join } from 'node:path';
const dir = tempDir();
const store = KeyStore.open(join(dir.path, 'keys'));
store.generate({ domain: 'example.com', algorithm: 'ed25519', activate: true });
const config = configSchema.parse({ headers: { maxFieldSize: 1 << 20 }, keys: { dir: join(dir.path, 'keys') } });
const ctx = { store, config, upstream: { dualSign: false, eightBitMime: false }, hostname: 'relay.test' };
for (const c of ['.', '\0', '=?']) for (const n of [125000, 1000000, 125000, 1000000]) {
  const msg = Buffer.from(`From: a@example.com\r\nX-Attack${c.repeat(n / c.length)}: v\r\nTo: b@example.net\r\n\r\nbody\r\n`, 'latin1');
  const before = process.threadCpuUsage();
  const o = await processMessage(msg, ctx);
  const cpu = process.threadCpuUsage(before);
  console.log(JSON.stringify(c), n, ((cpu.user + cpu.system) / 1000).toFixed(1), 'ms', o.action === 'refuse' ? o.code + ' ' + o.text.slice(0, 60) : 'deliver');
}
store.close(); dir.remove();
