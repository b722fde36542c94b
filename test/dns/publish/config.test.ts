// The dns.publish and dns.delegation settings, read from real YAML text, and
// the publishers they make: which zone, and which method, a record goes to.
import assert from 'node:assert/strict';
import { chmodSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { parseConfig } from '../../../src/config/load.ts';
import type { RecordChange } from '../../../src/dns/publish/change.ts';
import { createPublishers } from '../../../src/dns/publish/factory.ts';
import { zoneOf } from '../../../src/dns/publish/zones.ts';
import { expectUserError } from '../../keys/support.ts';
import { tempDir } from '../../helpers/tmp.ts';

const txt = (name: string): RecordChange => ({ action: 'add', name, type: 'TXT', ttl: 3600, value: 'v=DKIM1; p=', strings: ['v=DKIM1; p='] });

describe('dns configuration', () => {
  test('by default nothing is published automatically and no selector is delegated', () => {
    assert.deepEqual(parseConfig('', 'empty.yaml').dns, { resolvers: [], timeoutSeconds: 3, publish: [] });
  });

  test('the example configuration documents every key, at its default', () => {
    const text = readFileSync(new URL('../../../config/dkim-relay.example.yaml', import.meta.url), 'utf8');
    assert.deepEqual(parseConfig(text, 'example').dns, parseConfig('', 'empty').dns);
    for (const key of [
      'publish',
      'zone',
      'method',
      'server',
      'tsig',
      'name',
      'algorithm',
      'secretFile',
      'timeoutSeconds',
      'command',
      'delegation',
      'selectors',
      'domains',
    ]) {
      assert.match(text, new RegExp(`^ *#? *-? ?${key}:`, 'm'), `${key} is not in the example`);
    }
  });

  test('each method with its settings and defaults; names lower case without the final dot', () => {
    const { dns } = parseConfig(
      [
        'dns:',
        '  publish:',
        '    - { zone: Example.COM., method: rfc2136, server: "192.0.2.53:5353", tsig: { name: dkim-relay., secretFile: /etc/dkim-relay/tsig.key } }',
        '    - { zone: example.org, method: command, command: [/usr/local/bin/publish, --zone] }',
        '    - { zone: old.example.com, method: manual }',
        '  delegation: { zone: dkim.relay.example.net }',
      ].join('\n'),
      'test.yaml',
    );
    assert.deepEqual(dns.publish, [
      {
        zone: 'example.com',
        method: 'rfc2136',
        server: '192.0.2.53:5353',
        tsig: { name: 'dkim-relay', algorithm: 'hmac-sha256', secretFile: '/etc/dkim-relay/tsig.key' },
        timeoutSeconds: 10,
      },
      { zone: 'example.org', method: 'command', command: ['/usr/local/bin/publish', '--zone'], timeoutSeconds: 60 },
      { zone: 'old.example.com', method: 'manual' },
    ]);
    assert.deepEqual(dns.delegation, { zone: 'dkim.relay.example.net', selectors: ['sel1', 'sel2'] });
  });

  test('wrong settings are refused with one line naming the key', () => {
    const cases: [string, RegExp][] = [
      ['dns: { publish: [{ zone: example.com, method: nsupdate }] }', /^bad\.yaml: dns\.publish\.0\.method: /],
      [
        'dns: { publish: [{ zone: example.com, method: rfc2136, server: ns1.example.com, tsig: { name: k, secretFile: f } }] }',
        /dns\.publish\.0\.server: must be the primary server as IP or IP:PORT/,
      ],
      [
        'dns: { publish: [{ zone: example.com, method: rfc2136, server: "192.0.2.1:99999", tsig: { name: k, secretFile: f } }] }',
        /dns\.publish\.0\.server: must be/,
      ],
      [
        'dns: { publish: [{ zone: example.com, method: rfc2136, server: 192.0.2.1, tsig: { name: k, algorithm: hmac-md5, secretFile: f } }] }',
        /dns\.publish\.0\.tsig\.algorithm: /,
      ],
      [
        'dns: { publish: [{ zone: example.com, method: rfc2136, server: 192.0.2.1, tsig: { name: k, secretFile: f, secret: abc } }] }',
        /unknown key dns\.publish\.0\.tsig\.secret/,
      ],
      ['dns: { publish: [{ zone: example.com, method: command, command: [] }] }', /dns\.publish\.0\.command: /],
      ['dns: { publish: [{ zone: example.com, method: manual }, { zone: EXAMPLE.com., method: manual }] }', /dns\.publish: lists a zone twice/],
      ['dns: { publish: [{ zone: "not a zone", method: manual }] }', /dns\.publish\.0\.zone: must be a domain name/],
      ['dns: { delegation: { zone: dkim.relay.example.net, selectors: [sel1] } }', /dns\.delegation\.selectors: /],
      ['dns: { delegation: { zone: dkim.relay.example.net, selectors: [sel1, sel1] } }', /dns\.delegation\.selectors: lists a selector twice/],
      ['dns: { delegation: { zone: dkim.relay.example.net, selectors: [Sel_1, sel2] } }', /dns\.delegation\.selectors\.0: must be a selector/],
    ];
    for (const [yaml, message] of cases) {
      const err = expectUserError(() => parseConfig(yaml, 'bad.yaml'), message);
      assert.doesNotMatch(err.toLine(), /\n/);
    }
  });

  test('IPv6 primaries, with and without a port', () => {
    for (const server of ['2001:db8::53', '"[2001:db8::53]:5353"', '192.0.2.53']) {
      const { dns } = parseConfig(`dns: { publish: [{ zone: example.com, method: rfc2136, server: ${server}, tsig: { name: k, secretFile: f } }] }`, 't.yaml');
      assert.equal(dns.publish.length, 1);
    }
  });
});

describe('zones and publishers', () => {
  test('a record belongs to the longest configured zone containing its name', () => {
    const zones = ['example.com', 'dkim.example.com', 'example.org'];
    assert.equal(zoneOf('s1._domainkey.example.com', zones), 'example.com');
    assert.equal(zoneOf('sel1.example-com.dkim.example.com', zones), 'dkim.example.com');
    assert.equal(zoneOf('DKIM.Example.COM.', zones), 'dkim.example.com');
    assert.equal(zoneOf('s1._domainkey.notexample.com', zones), undefined);
    assert.equal(zoneOf('s1._domainkey.example.net', zones), undefined);
  });

  test('changes go to the publisher of their zone, one publish per zone; names in no zone are manual', async () => {
    const dir = tempDir();
    const out = join(dir, 'calls.jsonl');
    const recorder = join(dir, 'record.sh');
    writeFileSync(recorder, `#!/bin/sh\n{ cat; echo; } >> ${out}\n`);
    chmodSync(recorder, 0o700);
    const { dns } = parseConfig(
      ['dns:', '  publish:', `    - { zone: example.com, method: command, command: [${recorder}] }`, '    - { zone: legacy.example.com, method: manual }'].join(
        '\n',
      ),
      't.yaml',
    );
    const publishers = createPublishers(dns.publish);
    assert.equal(publishers.forName('a._domainkey.legacy.example.com').publisher.method, 'manual');
    assert.equal(publishers.forName('a._domainkey.example.com').publisher.method, 'command');
    const changes = [txt('a._domainkey.example.com'), txt('b._domainkey.legacy.example.com'), txt('c._domainkey.example.net'), txt('d._domainkey.example.com')];
    const results = await publishers.publish(changes);
    assert.deepEqual(results, [
      { zone: 'example.com', changes: [changes[0], changes[3]], result: { status: 'published' } },
      { zone: 'legacy.example.com', changes: [changes[1]], result: { status: 'manual' } },
      { zone: undefined, changes: [changes[2]], result: { status: 'manual' } },
    ]);
    const calls = readFileSync(out, 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    assert.deepEqual(calls, [{ zone: 'example.com', changes: [changes[0], changes[3]] }]);
  });

  test('a TSIG secret file others can read stops the start with one line', () => {
    const dir = tempDir();
    const file = join(dir, 'tsig.key');
    writeFileSync(file, Buffer.alloc(32, 1).toString('base64'));
    chmodSync(file, 0o644);
    const { dns } = parseConfig(
      `dns: { publish: [{ zone: example.com, method: rfc2136, server: 127.0.0.1, tsig: { name: k, secretFile: ${file} } }] }`,
      't.yaml',
    );
    expectUserError(() => createPublishers(dns.publish), /TSIG secret file .* is readable by others \(mode 0644\)/, /chmod 600/);
    chmodSync(file, 0o600);
    assert.equal(createPublishers(dns.publish).forName('x.example.com').publisher.method, 'rfc2136');
  });
});
