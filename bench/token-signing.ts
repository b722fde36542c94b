// Signatures per second over a SHA-256 digest: a key in memory (the crypto
// pool's operation, here in this thread) against the same kind of key in a
// SoftHSM token, and where the token's time goes: SoftHSM's own C_Sign called
// synchronously in this thread, then the relay's path (a session from the
// pool, C_Sign on the libuv thread pool) with 1 and 4 signatures in flight,
// with the event-loop delay each leaves. Then key generation in the token.
//
// Run: node bench/token-signing.ts           (a SoftHSM token of its own, in a temporary directory)
//      SOFTHSM2_CONF=... node bench/token-signing.ts PINFILE [TOKEN]   (an existing token)
// N (500) signatures per measurement, G (5) generated RSA-2048 pairs.
import { execFileSync } from 'node:child_process';
import { createHash, generateKeyPairSync } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import type * as Pkcs11Module from 'pkcs11js';
import { CKM_EC_EDWARDS_KEY_PAIR_GEN, CKM_EDDSA, ED25519_PARAMS, newObjectId } from '../src/keys/pkcs11-objects.ts';
import { Pkcs11Token } from '../src/keys/pkcs11-token.ts';
import { signDigest } from '../src/signing/digest-signature.ts';
import { load1, machine } from './machine.ts';

const MODULE = '/usr/lib/softhsm/libsofthsm2.so';
const PIN = '246810';
const N = Number(process.env.N ?? 500);
const G = Number(process.env.G ?? 5);

let [pinFile, label = 'dkim'] = process.argv.slice(2);
let scratch: string | undefined;
if (!pinFile) {
  scratch = mkdtempSync(join(tmpdir(), 'dkim-relay-bench-hsm-'));
  process.env.SOFTHSM2_CONF = join(scratch, 'softhsm2.conf');
  mkdirSync(join(scratch, 'tokens'));
  writeFileSync(process.env.SOFTHSM2_CONF, `directories.tokendir = ${join(scratch, 'tokens')}\nobjectstore.backend = file\nlog.level = ERROR\n`);
  execFileSync('softhsm2-util', ['--init-token', '--free', '--label', label, '--pin', PIN, '--so-pin', '135791'], { stdio: 'ignore' });
  pinFile = join(scratch, 'pin');
  writeFileSync(pinFile, `${PIN}\n`, { mode: 0o600 });
}

const m = machine();
console.log(`${m.cpu}, ${m.cores} cores, Node.js ${process.version}; load average ${load1().toFixed(1)} before; N=${N}`);
const digest = createHash('sha256').update('bench').digest();
const rate = (count: number, ms: number) => (count / (ms / 1000)).toFixed(0);
// First SoftHSM alone (its own library instance, finalized before the relay's opens the module).
const raw = rawSoftHsm();
const token = Pkcs11Token.connectLater({ module: MODULE, token: label, pinFile, newKeys: false });

for (const algorithm of ['rsa', 'ed25519'] as const) {
  const file = algorithm === 'rsa' ? generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey : generateKeyPairSync('ed25519').privateKey;
  let start = performance.now();
  for (let i = 0; i < N; i++) signDigest(algorithm, digest, file);
  console.log(`${algorithm}: file key, node:crypto in this thread: ${rate(N, performance.now() - start)}/s`);
  const { id, ms } = raw.get(algorithm)!;
  console.log(`${algorithm}: SoftHSM C_SignInit + C_Sign, synchronous in this thread: ${rate(N, ms)}/s`);
  const key = token.signingKey({ token: label, id }, algorithm, algorithm === 'rsa' ? 2048 : 256, 'bench');
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
    const took = performance.now() - start;
    delay.disable();
    console.log(
      `${algorithm}: token through the session pool, C_Sign on the libuv pool, ${parallel} in flight: ${rate(N, took)}/s; event-loop delay p99 ${(delay.percentile(99) / 1e6).toFixed(1)} ms, max ${(delay.max / 1e6).toFixed(1)} ms`,
    );
  }
  token.destroy({ token: label, id });
}

// Key generation in the token (the rotation scheduler's): on the libuv pool, so the event loop stays free.
const delay = monitorEventLoopDelay({ resolution: 1 });
delay.enable();
const start = performance.now();
for (let i = 0; i < G; i++) token.destroy((await token.generate('rsa', 2048, `bench generate ${i}`)).ref);
delay.disable();
console.log(
  `rsa-2048 generation in the token: ${((performance.now() - start) / G).toFixed(0)} ms each; event-loop delay p99 ${(delay.percentile(99) / 1e6).toFixed(1)} ms, max ${(delay.max / 1e6).toFixed(1)} ms`,
);
token.close();
console.log(`load average ${load1().toFixed(1)} after`);
if (scratch) rmSync(scratch, { recursive: true, force: true });

/** SoftHSM's own signing time, per algorithm: a key pair made for it, then C_SignInit and C_Sign synchronously, N times (ms). */
function rawSoftHsm(): Map<'rsa' | 'ed25519', { id: string; ms: number }> {
  const p = createRequire(import.meta.url)('pkcs11js') as typeof Pkcs11Module;
  const lib = new p.PKCS11();
  lib.load(MODULE);
  lib.C_Initialize({ flags: p.CKF_OS_LOCKING_OK });
  try {
    const slot = lib.C_GetSlotList(true).find((s) => lib.C_GetTokenInfo(s).label.trim() === label)!;
    const session = lib.C_OpenSession(slot, p.CKF_SERIAL_SESSION | p.CKF_RW_SESSION);
    lib.C_Login(session, p.CKU_USER, readFileSync(pinFile!, 'utf8').trim());
    const out = new Map<'rsa' | 'ed25519', { id: string; ms: number }>();
    for (const algorithm of ['rsa', 'ed25519'] as const) {
      const id = newObjectId();
      const common = [
        { type: p.CKA_TOKEN, value: true },
        { type: p.CKA_ID, value: Buffer.from(id, 'hex') },
      ];
      const pub =
        algorithm === 'rsa'
          ? [...common, { type: p.CKA_MODULUS_BITS, value: 2048 }, { type: p.CKA_PUBLIC_EXPONENT, value: Buffer.from([1, 0, 1]) }]
          : [...common, { type: p.CKA_EC_PARAMS, value: ED25519_PARAMS }];
      const priv = [...common, { type: p.CKA_PRIVATE, value: true }, { type: p.CKA_SENSITIVE, value: true }, { type: p.CKA_SIGN, value: true }];
      const mechanism = algorithm === 'rsa' ? p.CKM_RSA_PKCS_KEY_PAIR_GEN : CKM_EC_EDWARDS_KEY_PAIR_GEN;
      const { privateKey } = lib.C_GenerateKeyPair(session, { mechanism, parameter: undefined }, pub, priv);
      const data = algorithm === 'rsa' ? Buffer.concat([Buffer.from('3031300d060960864801650304020105000420', 'hex'), digest]) : digest;
      const start = performance.now();
      for (let i = 0; i < N; i++) {
        lib.C_SignInit(session, { mechanism: algorithm === 'rsa' ? p.CKM_RSA_PKCS : CKM_EDDSA, parameter: undefined }, privateKey);
        lib.C_Sign(session, data, Buffer.alloc(512));
      }
      out.set(algorithm, { id, ms: performance.now() - start });
    }
    return out;
  } finally {
    lib.C_Finalize();
  }
}
