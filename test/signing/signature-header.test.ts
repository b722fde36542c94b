import assert from 'node:assert/strict';
import { test } from 'node:test';
import { FOLD_AT } from '../../src/message/mime/fold.ts';
import { completeSignatureField, signatureFieldPrefix, type SignatureTags } from '../../src/signing/signature-header.ts';

const BASE: SignatureTags = {
  algorithm: 'rsa-sha256',
  canonicalization: 'relaxed/relaxed',
  domain: 'mail.a-rather-long-subdomain.example-organisation.co.uk',
  selector: 'selector-2025-01',
  timestamp: 1_700_000_000,
  expiration: 1_700_086_400,
  bodyLength: 123456,
  headers: [
    'From',
    'From',
    'To',
    'Cc',
    'Subject',
    'Subject',
    'Date',
    'Message-ID',
    'MIME-Version',
    'Content-Type',
    'Content-Transfer-Encoding',
    'Reply-To',
    'Reply-To',
    'In-Reply-To',
    'References',
    'List-Unsubscribe',
    'List-Unsubscribe-Post',
  ],
  bodyHash: '47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=',
};
const SIG = Buffer.alloc(512, 0xa5).toString('base64'); // an RSA-4096-sized b=

function unfold(field: string): string {
  return field.replace(/\r\n(?=[ \t])/g, '');
}

test('tags come in order, b= last, and the prefix is exactly the signed text', () => {
  const prefix = signatureFieldPrefix(BASE);
  const field = completeSignatureField(prefix, SIG);
  assert.ok(prefix.endsWith('b='));
  assert.ok(field.startsWith(prefix), 'appending b= must not refold what was signed');
  const value = unfold(field).slice('DKIM-Signature:'.length);
  const tags = value.split(';').map((t) => t.trim().split('=')[0]);
  assert.deepEqual(tags, ['v', 'a', 'c', 'd', 's', 't', 'x', 'l', 'h', 'bh', 'b']);
  assert.match(unfold(field).replace(/ /g, ''), /;h=From:From:To:Cc:Subject:Subject:Date:Message-ID:MIME-Version:/);
  assert.equal(unfold(field).replace(/^.*b=/, '').replace(/ /g, ''), SIG);
});

test('no line exceeds 78 octets and folds sit only at safe places', () => {
  for (const sig of [SIG, SIG.slice(0, 88), SIG.slice(0, 344)]) {
    for (const tags of [BASE, { ...BASE, expiration: undefined, bodyLength: undefined, domain: 'example.com', headers: ['From'] }]) {
      const field = completeSignatureField(signatureFieldPrefix(tags), sig);
      const lines = field.split('\r\n');
      for (const line of lines) assert.ok(line.length <= FOLD_AT, `line of ${line.length}: ${line}`);
      for (let i = 0; i < lines.length - 1; i++) {
        const before = lines[i]!;
        const after = lines[i + 1]!;
        assert.ok(after.startsWith(' ') && !after.startsWith('  '), 'continuation lines start with one SP');
        assert.ok(!/\s$/.test(before), 'no trailing whitespace before a fold');
        const atTag = before.endsWith(';') && /^ [a-z]+=/.test(after);
        const inH = before.endsWith(':') && !before.endsWith('DKIM-Signature:');
        const inBase64 = /(^| )(bh|b)=[A-Za-z0-9+/=]*$|^ [A-Za-z0-9+/=]+$/.test(before) && /^ [A-Za-z0-9+/=]+;?$/.test(after);
        assert.ok(atTag || inH || inBase64, `unexpected fold between ${JSON.stringify(before)} and ${JSON.stringify(after)}`);
      }
    }
  }
});

test('a name that could smuggle tags or folds is rejected', () => {
  assert.throws(() => signatureFieldPrefix({ ...BASE, domain: 'example.com; x=1' }), /d=/);
  assert.throws(() => signatureFieldPrefix({ ...BASE, selector: 'a\r\n b' }), /s=/);
  assert.throws(() => signatureFieldPrefix({ ...BASE, headers: [] }), /h=/);
});
