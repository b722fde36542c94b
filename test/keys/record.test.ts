// The TXT records keys need, checked by BIND's own zone parser (named-checkzone).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { generateKeyPair } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describeKey as describeKey, generateKey, type KeyMaterial } from '../../src/keys/key-material.ts';
import { DEFAULT_TTL, splitValue, txtRecord, txtValue, zoneLines, type RecordSource, type TxtRecord } from '../../src/keys/record.ts';
import { tempDir } from '../helpers/tmp.ts';
import { requireTool } from '../helpers/tools.ts';

const ZONE = 'example.com';

// RSA-4096 is slow to make: start it at once, off the main thread, and make it only once.
const rsa4096: Promise<KeyMaterial> = new Promise((resolve, reject) => {
  generateKeyPair('rsa', { modulusLength: 4096 }, (err, _publicKey, privateKey) => (err ? reject(err) : resolve(describeKey(privateKey))));
});

function source(material: KeyMaterial, selector: string, state = 'active'): RecordSource {
  return { domain: ZONE, selector, algorithm: material.algorithm, publicData: material.publicData, state };
}

function octets(text: string): number {
  return Buffer.byteLength(text, 'utf8');
}

/** Every string of a record is at most 255 octets, none is empty, and together they are the value. */
function assertWellSplit(record: TxtRecord): void {
  for (const s of record.strings) {
    assert.ok(octets(s) <= 255, `${record.name}: a string of ${octets(s)} octets (RFC 6376 §3.6.2.2 allows 255)`);
    assert.ok(s.length > 0, `${record.name}: an empty string`);
  }
  assert.equal(record.strings.join(''), record.value, `${record.name}: the strings do not join into the value`);
}

/** Runs named-checkzone (the tests that call it check first that it is there: requireTool). */
function namedCheckzone(args: string[]): { status: number | null; stdout: string; stderr: string } {
  const run = spawnSync('named-checkzone', args, { encoding: 'utf8' });
  if (run.error) assert.fail(`named-checkzone could not run: ${run.error.message}`);
  return { status: run.status, stdout: run.stdout, stderr: run.stderr };
}

function zoneFile(body: string): string {
  const file = join(tempDir(), `${ZONE}.zone`);
  writeFileSync(
    file,
    [
      `$ORIGIN ${ZONE}.`,
      '$TTL 3600',
      `@ IN SOA ns1.${ZONE}. hostmaster.${ZONE}. ( 1 7200 3600 1209600 3600 )`,
      `@ IN NS ns1.${ZONE}.`,
      'ns1 IN A 192.0.2.1',
      body,
      '',
    ].join('\n'),
  );
  return file;
}

/** The TXT records of a `named-checkzone -D` dump: owner name → the strings, re-joined. */
function dumpedTxt(dump: string): Map<string, string> {
  const found = new Map<string, string>();
  for (const line of dump.split('\n')) {
    const match = /^(\S+)\s+\d+\s+IN\s+TXT\s+(.*)$/.exec(line);
    if (!match) continue;
    const strings = [...match[2]!.matchAll(/"((?:[^"\\]|\\.)*)"/g)].map((m) => m[1]!);
    found.set(match[1]!, strings.join(''));
  }
  return found;
}

test('txtValue: v=DKIM1; k=<algorithm>; p=<key>, with an empty p= once revoked', () => {
  const rsa = generateKey('rsa', 1024);
  const ed = generateKey('ed25519');
  for (const state of ['pending', 'active', 'retiring']) {
    assert.equal(txtValue(source(rsa, 's1', state)), `v=DKIM1; k=rsa; p=${rsa.publicData}`);
    assert.equal(txtValue(source(ed, 's2', state)), `v=DKIM1; k=ed25519; p=${ed.publicData}`);
  }
  assert.equal(txtValue(source(rsa, 's1', 'revoked')), 'v=DKIM1; k=rsa; p=');
  assert.equal(txtValue(source(ed, 's2', 'revoked')), 'v=DKIM1; k=ed25519; p=');
  assert.equal(Buffer.from(ed.publicData, 'base64').length, 32, 'an Ed25519 p= is the bare 32-byte key');

  const record = txtRecord(source(ed, 's2'));
  assert.deepEqual(
    { name: record.name, type: record.type, ttl: record.ttl, state: record.state, strings: record.strings },
    { name: 's2._domainkey.example.com', type: 'TXT', ttl: DEFAULT_TTL, state: 'active', strings: ['v=DKIM1; k=ed25519; ', `p=${ed.publicData}`] },
  );
  assert.equal(txtRecord(source(ed, 's2'), 300).ttl, 300);
  assert.equal(zoneLines(record), `s2._domainkey.example.com. ${DEFAULT_TTL} IN TXT ( "v=DKIM1; k=ed25519; "\n\t"p=${ed.publicData}" )`);
});

test('splitValue: strings of at most 255 octets that join into the value, at every length around the limit', () => {
  for (const length of [0, 1, 252, 253, 254, 255, 256, 257, 508, 509, 510, 511, 512, 765, 766, 1000]) {
    const value = `v=DKIM1; k=rsa; p=${'A'.repeat(length)}`;
    const strings = splitValue(value);
    assert.equal(strings.join(''), value, `p= of ${length}: the strings do not join into the value`);
    assert.equal(strings[0], 'v=DKIM1; k=rsa; ', 'the tags belong in the first string');
    for (const s of strings) {
      assert.ok(octets(s) <= 255, `p= of ${length}: a string of ${octets(s)} octets`);
      assert.ok(s.length > 0, `p= of ${length}: an empty string`);
    }
    assert.equal(strings.length, 1 + Math.ceil((length + 2) / 255), `p= of ${length}: more strings than needed`);
  }
});

test('RSA 1024, 2048, 4096 and Ed25519 records pass named-checkzone, and its dump re-joins to the value', async (t) => {
  if (!requireTool(t, 'named-checkzone')) return;
  const keys: Array<[string, KeyMaterial]> = [
    ['rsa1024', generateKey('rsa', 1024)],
    ['rsa2048', generateKey('rsa', 2048)],
    ['rsa4096', await rsa4096],
    ['ed25519', generateKey('ed25519')],
  ];
  const records = keys.map(([selector, material]) => txtRecord(source(material, selector)));
  records.push(txtRecord(source(keys[0]![1], 'revoked', 'revoked')));
  for (const record of records) assertWellSplit(record);
  const long = records.find((r) => r.name.startsWith('rsa4096.'))!;
  assert.ok(long.strings.length >= 4 && octets(long.value) > 510, 'the RSA-4096 record should need several strings');

  const file = zoneFile(records.map((r) => zoneLines(r)).join('\n'));
  const check = namedCheckzone([ZONE, file]);
  assert.equal(check.status, 0, `named-checkzone refused the records:\n${check.stdout}${check.stderr}`);

  const dump = namedCheckzone(['-D', '-o', '-', ZONE, file]);
  assert.equal(dump.status, 0, `named-checkzone -D failed:\n${dump.stdout}${dump.stderr}`);
  const published = dumpedTxt(dump.stdout);
  assert.equal(published.size, records.length, `the dump holds ${published.size} TXT records, not ${records.length}`);
  for (const record of records) {
    assert.equal(published.get(`${record.name}.`), record.value, `${record.name}: BIND reads another value than the one meant`);
  }
  assert.equal(published.get('revoked._domainkey.example.com.'), 'v=DKIM1; k=rsa; p=');
});

test('the named-checkzone harness is not a rubber stamp: a 256-octet string is refused', (t) => {
  if (!requireTool(t, 'named-checkzone')) return;
  const check = namedCheckzone([ZONE, zoneFile(`toolong._domainkey IN TXT "p=${'A'.repeat(254)}"`)]);
  assert.notEqual(check.status, 0, 'named-checkzone accepted a 256-octet string');
  const fits = namedCheckzone([ZONE, zoneFile(`fits._domainkey IN TXT "p=${'A'.repeat(253)}"`)]);
  assert.equal(fits.status, 0, `named-checkzone refused a 255-octet string:\n${fits.stdout}${fits.stderr}`);
});
