// Base64 comes from libbase64, where it used to come from nodemailer's copy.
// Normalized messages are signed, so the octets must not change: the
// functions are compared with nodemailer's on random input, and any
// difference fails.
import assert from 'node:assert/strict';
import { randomBytes, randomInt } from 'node:crypto';
import { test } from 'node:test';
import * as libbase64 from 'libbase64';
import * as nodemailerBase64 from 'nodemailer/lib/base64';

const ROUNDS = 2000;

test('base64: libbase64 encodes and wraps as nodemailer did', () => {
  for (let i = 0; i < ROUNDS; i++) {
    const data = randomBytes(randomInt(600));
    const encoded = nodemailerBase64.encode(data);
    assert.equal(libbase64.encode(data), encoded, `encode ${data.toString('hex')}`);
    for (const line of [76, 10]) assert.equal(libbase64.wrap(encoded, line), nodemailerBase64.wrap(encoded, line), `wrap ${line} ${encoded}`);
  }
});
