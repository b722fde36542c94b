// The published verifier suites this project is held to: the messages of
// Mail::DKIM's t/corpus with the DNS records of its t/FAKE_DNS.dat, and the
// RFC 6376/8463 example message of dkimpy's tests, each with the verdict its
// suite expects. The data files are theirs (see NOTICE); the expectations
// below are transcribed from Mail::DKIM's t/verifier.t and dkimpy's
// dkim/tests/test_dkim.py.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

export const HERE = import.meta.dirname;

/** A suite's verdict for a whole message: "invalid" is Mail::DKIM's word for permerror, neutral and temperror. */
export type Expected = 'pass' | 'fail' | 'invalid' | 'none';

export interface Case {
  file: string;
  expected: Expected;
  /** What the suite says the message tests. */
  about: string;
}

// Mail::DKIM t/verifier.t, in its order. The five good_ietf00 messages and bad_dk_3 are skipped there too.
export const MAIL_DKIM: Case[] = [
  ['mine_ietf01_1.txt', 'pass', ''],
  ['mine_ietf01_2.txt', 'pass', ''],
  ['mine_ietf01_3.txt', 'pass', ''],
  ['mine_ietf01_4.txt', 'pass', ''],
  ['mine_ietf05_1.txt', 'pass', ''],
  ['good_ietf01_1.txt', 'pass', ''],
  ['good_ietf01_2.txt', 'pass', ''],
  ['good_rfc4871_3.txt', 'pass', 'extra tags in the signature'],
  ['good_rfc4871_4.txt', 'pass', 'case-differing domain name'],
  ['good_1878523.txt', 'pass', ''],
  ['good_83176.txt', 'pass', ''],
  ['multiple_1.txt', 'pass', 'three signatures: invalid, pass, fail'],
  ['multiple_2.txt', 'pass', ''],
  ['good_qp_1.txt', 'pass', 'i= in quoted-printable'],
  ['good_qp_2.txt', 'pass', 'i= in quoted-printable'],
  ['good_qp_3.txt', 'pass', 'i= in quoted-printable'],
  ['bad_ietf01_1.txt', 'fail', 'body altered'],
  ['bad_ietf01_2.txt', 'fail', 'header altered'],
  ['bad_ietf01_3.txt', 'fail', 'RSA failure'],
  ['bad_1.txt', 'fail', 'a signature the crypto library cannot read'],
  ['bad_1878954.txt', 'fail', 'must not crash'],
  ['good_dk_gmail.txt', 'pass', 'DomainKeys'],
  ['good_dk_yahoo.txt', 'pass', 'DomainKeys'],
  ['good_dk_1.txt', 'pass', 'DomainKeys'],
  ['good_dk_2.txt', 'pass', 'DomainKeys'],
  ['good_dk_3.txt', 'pass', 'DomainKeys, key with g='],
  ['good_dk_4.txt', 'pass', 'DomainKeys, key with g= (Sender)'],
  ['good_dk_5.txt', 'pass', 'DomainKeys, key with empty g='],
  ['good_dk_6.txt', 'pass', 'DomainKeys, no h='],
  ['good_dk_7.txt', 'pass', 'DomainKeys, case-differing domain names'],
  ['dk_headers_1.txt', 'pass', 'DomainKeys'],
  ['dk_headers_2.txt', 'pass', 'DomainKeys'],
  ['bad_dk_1.txt', 'invalid', 'DomainKeys: signing domain is not the From: domain'],
  ['bad_dk_2.txt', 'invalid', 'DomainKeys: Sender added, no h='],
  ['bad_dk_4.txt', 'invalid', 'DomainKeys: empty q='],
  ['bad_dk_5.txt', 'invalid', 'DomainKeys: unknown q='],
  ['dk_multiple_1.txt', 'pass', 'DomainKeys, two signatures'],
  ['no_body_1.txt', 'pass', 'empty or missing body'],
  ['no_body_2.txt', 'pass', 'empty or missing body'],
  ['no_body_3.txt', 'pass', 'empty or missing body'],
  ['ignore_1.txt', 'invalid', 'unsupported v=5'],
  ['ignore_2.txt', 'invalid', 'unsupported a=rsa-md5'],
  ['ignore_3.txt', 'invalid', 'unsupported a=dsa-sha1'],
  ['ignore_4.txt', 'invalid', 'unsupported c=future'],
  ['ignore_5.txt', 'invalid', 'unsupported q=http'],
  ['ignore_6.txt', 'invalid', 'unsupported q=dns/special'],
  ['ignore_7.txt', 'invalid', 'expired signature'],
  ['ignore_8.txt', 'invalid', 'bad i= value'],
  ['goodkey_1.txt', 'pass', 'key with s=email'],
  ['goodkey_2.txt', 'pass', 'key with extra tags, h=, s='],
  ['goodkey_3.txt', 'pass', 'key with g=jl*g'],
  ['goodkey_4.txt', 'pass', 'key with implied g='],
  ['badkey_1.txt', 'invalid', 'key NXDOMAIN'],
  ['badkey_2.txt', 'invalid', 'key revoked'],
  ['badkey_3.txt', 'invalid', 'key with unsupported v='],
  ['badkey_4.txt', 'invalid', 'key syntax error'],
  ['badkey_5.txt', 'invalid', 'key with unsupported k='],
  ['badkey_6.txt', 'invalid', 'key with unsupported s='],
  ['badkey_7.txt', 'invalid', 'key with unsupported h='],
  ['badkey_8.txt', 'invalid', 'key g= does not match'],
  ['badkey_9.txt', 'invalid', 'key with empty g='],
  ['badkey_10.txt', 'invalid', 'key t=s: i= must equal d='],
  ['badkey_11.txt', 'invalid', 'key h= does not list the hash'],
  ['badkey_12.txt', 'invalid', 'key g= differs from i= by case'],
  ['badkey_13.txt', 'invalid', 'key g= matches From: but not i='],
  ['badkey_14.txt', 'invalid', 'DNS timeout'],
  ['badkey_15.txt', 'invalid', 'DNS SERVFAIL'],
  ['goodkey_ed25519.txt', 'pass', 'Ed25519'],
  ['badkey1_ed25519.txt', 'invalid', 'Ed25519 key of invalid length'],
  ['badkey2_ed25519.txt', 'fail', 'Ed25519, header modified'],
  ['badkey3_ed25519.txt', 'fail', 'Ed25519, body modified'],
  ['badkey4_ed25519.txt', 'invalid', 'Ed25519, missing key'],
  ['badkey5_ed25519.txt', 'invalid', 'Ed25519, empty key'],
].map(([file, expected, about]) => ({ file: file!, expected: expected as Expected, about: about! }));

// dkimpy test_double_previous_verifies: the RFC 8463 example, signed Ed25519 and RSA.
export const DKIMPY: Case[] = [{ file: 'rfc6376.signed.msg', expected: 'pass', about: 'RFC 8463 example: ed25519-sha256 and rsa-sha256' }];

export function readCase(suite: 'mail-dkim' | 'dkimpy', file: string): Buffer {
  return readFileSync(join(HERE, suite, file));
}

/** Name → TXT value, from Mail::DKIM's FAKE_DNS.dat and dkimpy's records; "NXDOMAIN" and "~~error~~" entries apart. */
export function suiteRecords(): { txt: Map<string, string>; failing: string[] } {
  const txt = new Map<string, string>();
  const failing: string[] = [];
  for (const line of readFileSync(join(HERE, 'mail-dkim', 'FAKE_DNS.dat'), 'latin1').split('\n')) {
    if (/^\s*([#;]|$)/.test(line)) continue;
    const [name, value] = [line.slice(0, line.search(/\s/)), line.slice(line.search(/\s/)).trim()];
    if (value === 'NXDOMAIN') continue;
    if (value.startsWith('~~')) failing.push(name.toLowerCase());
    else txt.set(name.toLowerCase(), value === '""' ? '' : value);
  }
  txt.set('test._domainkey.football.example.com', readFileSync(join(HERE, 'dkimpy', 'test.txt'), 'latin1').trim());
  // RFC 8463 Appendix A.2, as dkimpy's tests serve it.
  txt.set('brisbane._domainkey.football.example.com', 'v=DKIM1; k=ed25519; p=11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=');
  return { txt, failing };
}
