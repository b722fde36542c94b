import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SqliteKeyStore } from '../src/keys/store.ts';
import { storeResolver } from '../src/keys/resolver.ts';
import { signMessageAsync } from '../src/signing/signer.ts';
import { inThreadCrypto } from '../src/signing/crypto-pool.ts';
import { mailauthVerifyHeader } from '../src/signing/mailauth-internals.ts';
import { DEFAULT_SIGNED_HEADERS, DEFAULT_OVERSIGNED_HEADERS } from '../src/config/schema.ts';
import { benchMessage } from './message.ts';
const store = SqliteKeyStore.open(mkdtempSync(join(tmpdir(), 'mh-')));
store.generate({ domain: 'example.com', algorithm: 'rsa', activate: true });
const keys = store.activeKeys('example.com');
const msg = benchMessage(4096, 'Received: from client.example (client.example [127.0.0.1])\r\n\tby relay.bench with ESMTP id x; Mon, 7 Dec 2026 10:00:00 +0000\r\n');
const sig = await signMessageAsync(msg, keys, { headerCanonicalization: 'relaxed', bodyCanonicalization: 'relaxed', headers: DEFAULT_SIGNED_HEADERS, oversign: DEFAULT_OVERSIGNED_HEADERS }, { crypto: inThreadCrypto });
const full = Buffer.concat([Buffer.from(sig, 'latin1'), msg]);
const header = full.subarray(0, full.indexOf('\r\n\r\n') + 4);
const resolver = storeResolver(store);
const N = Number(process.argv[2] ?? 20000);
for (let r = 0; r < 4; r++) {
  const t = process.hrtime.bigint();
  for (let i = 0; i < N; i++) await mailauthVerifyHeader(header, resolver, 1024);
  console.log(`${(Number(process.hrtime.bigint() - t) / N / 1000).toFixed(1)} µs a header`);
}
console.log(header.length, 'octets of header');
