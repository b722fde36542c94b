// Signatures per second over a SHA-256 digest: a key in memory (the crypto
// pool's operation, in this thread) against the same kind of key in a SoftHSM
// token (C_Sign on the libuv pool, up to four sessions at once).
// Run: SOFTHSM2_CONF=... node bench/token-signing.ts PINFILE [TOKEN]
import { createHash, generateKeyPairSync } from 'node:crypto';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { signDigest } from '../src/signing/digest-signature.ts';
import { Pkcs11Token } from '../src/keys/pkcs11-token.ts';

const [pinFile, label = 'dkim'] = process.argv.slice(2);
if (!pinFile) throw new Error('usage: node bench/token-signing.ts PINFILE [TOKEN]');
const token = Pkcs11Token.connectLater({ module: '/usr/lib/softhsm/libsofthsm2.so', token: label, pinFile, newKeys: false });
const digest = createHash('sha256').update('bench').digest();
const N = Number(process.env.N ?? 500);

for (const algorithm of ['rsa', 'ed25519'] as const) {
  const file = algorithm === 'rsa' ? generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey : generateKeyPairSync('ed25519').privateKey;
  let start = performance.now();
  for (let i = 0; i < N; i++) signDigest(algorithm, digest, file);
  const fileRate = N / ((performance.now() - start) / 1000);

  const made = await token.generate(algorithm, 2048, `bench ${algorithm}`);
  const key = token.signingKey(made.ref, algorithm, made.bits, 'bench');
  for (const parallel of [1, 4]) {
    const delay = monitorEventLoopDelay({ resolution: 1 });
    delay.enable();
    start = performance.now();
    let next = 0;
    await Promise.all(
      Array.from({ length: parallel }, async () => {
        while (next++ < N) await key.sign(digest);
      }),
    );
    const tokenRate = N / ((performance.now() - start) / 1000);
    delay.disable();
    console.log(
      `${algorithm}: file key ${fileRate.toFixed(0)}/s in-thread; token ${tokenRate.toFixed(0)}/s with ${parallel} in flight, event-loop delay max ${(delay.max / 1e6).toFixed(1)} ms`,
    );
  }
  token.destroy(made.ref);
}
// Key generation in the token (the rotation scheduler's): on the libuv pool, so the event loop stays free.
const delay = monitorEventLoopDelay({ resolution: 1 });
delay.enable();
const start = performance.now();
const G = 5;
for (let i = 0; i < G; i++) token.destroy((await token.generate('rsa', 2048, `bench generate ${i}`)).ref);
delay.disable();
console.log(
  `rsa-2048 generation in the token: ${((performance.now() - start) / G).toFixed(0)} ms each, event-loop delay max ${(delay.max / 1e6).toFixed(1)} ms`,
);
token.close();
