// The strict RFC 5322 mailbox grammar, and findAuthor's use of it: what a
// reader is shown is what is signed.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { shownAddressDomains } from '../../src/message/display-address.ts';
import { decodeEncodedWords } from '../../src/message/encoded-word.ts';
import { parseHeader } from '../../src/message/header.ts';
import { parseMailboxList } from '../../src/message/mailbox-list.ts';
import { findAuthor, type AuthorOptions } from '../../src/pipeline/author.ts';

/** findAuthor on a real header block (UTF-8 on the wire, as the relay gets it). */
const author = (header: string, options?: AuthorOptions) => findAuthor(parseHeader(Buffer.from(`${header}\r\nTo: b@example.net\r\n`, 'utf8')), options);

describe('parseMailboxList accepts', () => {
  const cases: [string, { displayName: string; localPart: string; domain: string; address: string }[]][] = [
    ['p@scan.example.com', [{ displayName: '', localPart: 'p', domain: 'scan.example.com', address: 'p@scan.example.com' }]],
    [
      '"Scanner, 2nd floor" <p@scan.example.com>',
      [{ displayName: 'Scanner, 2nd floor', localPart: 'p', domain: 'scan.example.com', address: 'p@scan.example.com' }],
    ],
    ['John Q. Public <jqp@example.com>', [{ displayName: 'John Q. Public', localPart: 'jqp', domain: 'example.com', address: 'jqp@example.com' }]],
    [
      '"a \\"quoted\\" \\\\ name" (a (nested) comment) < x.y+z@example.com >',
      [{ displayName: 'a "quoted" \\ name', localPart: 'x.y+z', domain: 'example.com', address: 'x.y+z@example.com' }],
    ],
    ['"john doe"@example.com (John)', [{ displayName: '', localPart: 'john doe', domain: 'example.com', address: '"john doe"@example.com' }]],
    ['Jörg Müller <jörg@bücher.example>', [{ displayName: 'Jörg Müller', localPart: 'jörg', domain: 'bücher.example', address: 'jörg@bücher.example' }]],
    ['=?utf-8?q?J=C3=B6rg?= <j@example.com>', [{ displayName: '=?utf-8?q?J=C3=B6rg?=', localPart: 'j', domain: 'example.com', address: 'j@example.com' }]],
    [
      'a@example.com, B <b@example.com>',
      [
        { displayName: '', localPart: 'a', domain: 'example.com', address: 'a@example.com' },
        { displayName: 'B', localPart: 'b', domain: 'example.com', address: 'b@example.com' },
      ],
    ],
  ];
  for (const [value, mailboxes] of cases) {
    test(value, () => {
      const parsed = parseMailboxList(value);
      assert.deepEqual(parsed.ok && parsed.mailboxes, mailboxes);
    });
  }

  test('comments are kept, nested ones and quoted-pairs undone', () => {
    const parsed = parseMailboxList('(one) a@example.com (two (three) \\) )');
    assert.equal(parsed.ok, true);
    assert.deepEqual(parsed.ok && parsed.comments, ['one', 'two (three) ) ']);
  });
});

describe('parseMailboxList refuses, saying why', () => {
  const cases: [string, RegExp][] = [
    ['ceo@example.com <p@scan.example.com>', /text after the address "ceo@example.com": "<p@scan.example.com>"/],
    ['ceo@example.com <p@scan.example.com', /text after the address "ceo@example.com"/],
    ['ceo@example.com>p@scan.example.com', /a ">" with no "<" before it/],
    ['ceo@example.com <p@scan.example.com>, x', /text after the address "ceo@example.com"/],
    ['ceo@example.com\x00<p@scan.example.com>', /a control character \(U\+0000\)/],
    ['a@example.com\u202e', /a control character \(U\+202E\)/],
    ['Name <a@example.com', /a "<" that is never closed/],
    ['"Name <a@example.com>', /a '"' that is never closed/],
    ['(Name <a@example.com>', /a "\(" that is never closed/],
    ['Name <a@example.com>)', /a "\)" with no "\(" before it/],
    ['a@example.com, x', /"x" is not an address/],
    ['Scanner', /"Scanner" is not an address/],
    ['a@example.com,', /an empty entry/],
    ['a@example.com,,b@example.com', /an empty entry/],
    ['Team: a@example.com;', /a group .* is not allowed/],
    ['<@relay.example:a@example.com>', /a source route/],
    ['a@[192.0.2.1]', /a domain literal/],
    ['a..b@example.com', /an empty label in the local part/],
    ['a@example..com', /an empty label in the domain/],
    ['a @ example.com', /is not an address/],
    ['"ceo@example.com"@scan.example.com', /a quoted local part holding "@"/],
    ['Q.<p@example.com>', /a "\." right before "<"/],
    ['=?utf-8?b?Y2Vv@ZXhhbXBsZS5jb20=?= <p@scan.example.com>', /an encoded-word that spans spaces or specials/],
    ['<>', /an empty address/],
  ];
  for (const [value, reason] of cases) {
    test(JSON.stringify(value), () => {
      const parsed = parseMailboxList(value);
      assert.equal(parsed.ok, false);
      assert.match(!parsed.ok ? parsed.problem : '', reason);
      assert.match(!parsed.ok ? parsed.problem : '', /^[\x20-\x7e]+$/, 'one printable line');
    });
  }

  test('a deeply nested comment or a long run of dots costs no stack and little time', () => {
    assert.equal(parseMailboxList(`${'('.repeat(200_000)}a@example.com`).ok, false);
    assert.equal(parseMailboxList(`a@${'.'.repeat(200_000)}`).ok, false);
    assert.equal(parseMailboxList('=?'.repeat(100_000)).ok, false);
  });
});

describe('display names and comments', () => {
  test('encoded-words decode (B and Q, other charsets), and an unknown charset is an error', () => {
    assert.deepEqual(decodeEncodedWords('=?utf-8?q?ceo=40example.com?= and =?UTF-8?B?SsO2cmc=?= =?gb2312?B?1cXI/Q==?='), {
      ok: true,
      text: 'ceo@example.com and Jörg 张三',
    });
    assert.equal(decodeEncodedWords('=?x-unheard-of?q?a?=').ok, false);
  });

  test('addresses shown in text are found, full-width and spaced-out ones too', () => {
    assert.deepEqual(shownAddressDomains('ceo@Example.COM'), ['example.com']);
    assert.deepEqual(shownAddressDomains('ceo＠ｅｘａｍｐｌｅ．com'), ['example.com']);
    assert.deepEqual(shownAddressDomains('ceo @ example .com'), ['example.com']);
    assert.deepEqual(shownAddressDomains('Meet @ home, 2nd floor'), []);
  });
});

describe('findAuthor', () => {
  test('the attacks: each is refused, saying why', () => {
    for (const from of [
      'ceo@example.com <p@scan.example.com>',
      'ceo@example.com <p@scan.example.com',
      'ceo@example.com>p@scan.example.com',
      'ceo@example.com <p@scan.example.com>, x',
      'ceo@example.com\x00<p@scan.example.com>',
    ]) {
      const found = author(`From: ${from}`);
      assert.equal(found.ok, false, from);
      assert.match(!found.ok ? found.problem : '', /^the From: header is ambiguous: /, from);
    }
  });

  test('a display name, comment or encoded-word showing an address of another domain is refused', () => {
    for (const from of [
      '"ceo@example.com" <p@scan.example.com>',
      '=?utf-8?q?ceo=40example.com?= <p@scan.example.com>',
      '=?utf-8?b?Y2VvQGV4YW1wbGUuY29t?= <p@scan.example.com>',
      '"ceo＠example.com" <p@scan.example.com>',
      'p@scan.example.com (ceo@example.com)',
    ]) {
      const found = author(`From: ${from}`);
      assert.deepEqual(
        found,
        {
          ok: false,
          problem:
            'the From: header shows an address at example.com in its display name or a comment, but the mailbox is at scan.example.com (headers.displayNameAddress)',
        },
        from,
      );
    }
  });

  test('headers.displayNameAddress: allow lets such a display name through; the grammar still holds', () => {
    assert.deepEqual(author('From: "ceo@example.com" <p@scan.example.com>', { displayNameAddress: 'allow' }), {
      ok: true,
      domain: 'scan.example.com',
      address: 'p@scan.example.com',
    });
    assert.equal(author('From: ceo@example.com <p@scan.example.com>', { displayNameAddress: 'allow' }).ok, false);
  });

  test('an encoded-word that decodes to a control character is refused', () => {
    assert.match(JSON.stringify(author('From: =?utf-8?q?a=00b?= <p@example.com>')), /decodes to a control character/);
  });

  test('ordinary names, its own address in the name, comments, folding and several mailboxes of one domain are accepted', () => {
    assert.deepEqual(author('From: "Scanner, 2nd floor" <p@scan.example.com>'), { ok: true, domain: 'scan.example.com', address: 'p@scan.example.com' });
    assert.deepEqual(author('From: "p@scan.example.com" <p@scan.example.com>'), { ok: true, domain: 'scan.example.com', address: 'p@scan.example.com' });
    assert.deepEqual(author('From: "Schmidt, Anna (Accounts)"\r\n\t<anna@example.com> (Accounts)'), {
      ok: true,
      domain: 'example.com',
      address: 'anna@example.com',
    });
    assert.deepEqual(author('From: Jörg <jörg@bücher.example>'), { ok: true, domain: 'xn--bcher-kva.example', address: 'jörg@bücher.example' });
    assert.deepEqual(author('From: a@example.com, B <b@example.com>'), { ok: true, domain: 'example.com', address: 'a@example.com' });
  });

  test('several domains, no address, an invalid domain or a group keep their own reasons', () => {
    assert.match(JSON.stringify(author('From: a@example.com, b@example.org')), /several domains/);
    assert.match(JSON.stringify(author('From: ')), /holds no address/);
    assert.match(JSON.stringify(author('From: a@localhost')), /no valid domain name/);
    assert.match(JSON.stringify(author('From: Team: a@example.com;')), /a group/);
  });

  test('Sender: is held to the same grammar and holds one mailbox', () => {
    assert.equal(author('From: a@example.com\r\nSender: Office <office@example.com>').ok, true);
    assert.match(JSON.stringify(author('From: a@example.com\r\nSender: ceo@example.com <p@scan.example.com>')), /the Sender: header is ambiguous/);
    assert.match(JSON.stringify(author('From: a@example.com\r\nSender: a@example.com, b@example.com')), /the Sender: header holds 2 addresses/);
  });
});
