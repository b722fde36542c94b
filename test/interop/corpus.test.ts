// The corpus (test/corpus/) relayed over SMTP through a real relay to a sink,
// and every signature judged by two verifiers that share no code with ours —
// dkimpy (all algorithms) and Perl Mail::DKIM (RSA; Debian 12's cannot do
// Ed25519) — each fetching keys over UDP from a loopback DNS server loaded
// with the zone that `dkim-relay keys dns --format zone` prints.
// Then the same after a hostile-but-lawful intermediary, and the 8-bit cases
// again through a relay whose upstream has no 8BITMIME.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, test, type TestContext } from 'node:test';
import { txtRecord } from '../../src/keys/record.ts';
import { algorithmsOf, CORPUS, FOREIGN_RECORDS, KEY_SETS, loadCase, type CorpusCase, type KeySetName } from '../corpus/manifest.ts';
import { startDnsServer, type DnsServer, type TxtTable } from '../helpers/dns-server.ts';
import { verifyWithDkimpyDns, verifyWithMailDkimDns, type SignatureVerdict } from '../helpers/dns-verify.ts';
import { dkimFields, send, startSink, startTestRelay, type SendResult, type Sink, type TestRelay } from '../helpers/relay-harness.ts';
import { zoneTable } from '../helpers/zone.ts';
import { ADDED_TRACE_FIELDS, fieldsAndBody, hostileIntermediary, relaxedBody, relaxedField } from './intermediary.ts';
import { crlfOnly, mimeLeaves } from './mime-leaves.ts';
import { MAX_LINE_OCTETS } from '../../src/message/mime/scan.ts';
import { sendRaw } from './raw-smtp.ts';
import { skipWithout } from '../helpers/tools.ts';

/** Each case gets its own intermediary choices, the same on every run. */
const seedOf = (name: string): number => Number.parseInt(name, 10) * 7919 + name.length;
const started = performance.now();

interface Relayed {
  result: SendResult;
  /** What the sink received for this case (nothing, or one message). */
  arrived: { from: string; to: string[]; raw: Buffer }[];
  ms: number;
}

/** Per verifier line of the summary: signatures that passed, out of those judged. */
class Tally {
  pass = 0;
  total = 0;
  readonly known = new Set<string>();
  readonly failed: string[] = [];
  readonly cases = new Set<string>();
}
const tallies = new Map<string, Tally>();
const tally = (name: string): Tally => {
  let t = tallies.get(name);
  if (!t) tallies.set(name, (t = new Tally()));
  return t;
};
/** Ed25519 signatures Mail::DKIM could not judge, per stage. */
const ed25519Unjudged = new Map<string, number>();

function keySetup(store: TestRelay['store']): void {
  for (const [domain, keys] of Object.entries(KEY_SETS)) {
    for (const key of keys) store.generate({ domain, algorithm: key.algorithm, bits: 'bits' in key ? key.bits : undefined, activate: true });
  }
}

/** FOREIGN_RECORDS in the DNS table, cut into character-strings of at most 255 octets. */
function addForeign(table: TxtTable): TxtTable {
  for (const [name, value] of Object.entries(FOREIGN_RECORDS)) table.set(name, [value.match(/.{1,255}/gs) ?? []]);
  return table;
}

async function relayCase(c: CorpusCase, port: number, sink: Sink): Promise<Relayed> {
  const raw = loadCase(c);
  const before = sink.received.length;
  const t0 = performance.now();
  const result = c.transport === 'raw' ? await sendRaw({ port, ...c.envelope, raw }) : await send({ port, ...c.envelope, raw });
  return { result, arrived: sink.received.slice(before), ms: performance.now() - t0 };
}

function headerOf(raw: Buffer): string {
  const text = raw.toString('latin1');
  const at = text.indexOf('\r\n\r\n');
  return at < 0 ? text : text.slice(0, at + 2);
}

function tagsOf(field: string): Map<string, string> {
  const value = field.slice(field.indexOf(':') + 1).replace(/\s+/g, '');
  return new Map(
    value
      .split(';')
      .filter(Boolean)
      .map((t) => [t.slice(0, t.indexOf('=')), t.slice(t.indexOf('=') + 1)]),
  );
}

/** Line-level shape of what went upstream: CRLF only, no line over 998 octets. */
function checkLines(raw: Buffer): string[] {
  const problems: string[] = [];
  let start = 0;
  let line = 1;
  for (let i = 0; i < raw.length; i++) {
    if (raw[i] === 0x0a) {
      if (raw[i - 1] !== 0x0d) problems.push(`bare LF at line ${line}`);
      const length = i - start - 1;
      if (length > MAX_LINE_OCTETS) problems.push(`line ${line} is ${length} octets`);
      start = i + 1;
      line++;
    } else if (raw[i] === 0x0d && raw[i + 1] !== 0x0a) {
      problems.push(`bare CR at line ${line}`);
    }
  }
  if (raw.length > 0 && start !== raw.length) problems.push('no final CRLF');
  return problems.slice(0, 5);
}

/**
 * Both verifiers over DNS on one message; every signature must pass except
 * known verifier limitations (the manifest names them) and Ed25519 under
 * Mail::DKIM, which Debian 12's version cannot verify (dkimpy alone decides).
 */
async function judge(t: TestContext, stage: string, c: CorpusCase, message: Buffer, nameserver: string, expectedCount: number): Promise<void> {
  const problems: string[] = [];
  const runs: [string, (m: Buffer, ns: string) => Promise<SignatureVerdict[]>][] = [
    ['dkimpy', verifyWithDkimpyDns],
    ['Mail::DKIM', verifyWithMailDkimDns],
  ];
  for (const [verifier, verify] of runs) {
    const verdicts = await verify(message, nameserver);
    assert.equal(verdicts.length, expectedCount, `${verifier} saw ${verdicts.length} signatures, expected ${expectedCount}`);
    for (const [i, v] of verdicts.entries()) {
      const where = `${verifier} signature ${i} (d=${v.domain} a=${v.algorithm})`;
      if (verifier === 'Mail::DKIM' && v.algorithm === 'ed25519-sha256') {
        ed25519Unjudged.set(stage, (ed25519Unjudged.get(stage) ?? 0) + 1);
        if (v.result !== 'pass') {
          assert.match(v.detail, /unsupported|algorithm/i, `${where}: expected "unsupported algorithm", got ${v.result} ${v.detail}`);
          t.diagnostic(`${where}: ${v.result} (${v.detail}): Debian 12's Mail::DKIM cannot verify Ed25519, dkimpy alone decides`);
        }
        continue;
      }
      const line = tally(`${stage}${verifier === 'Mail::DKIM' ? 'Mail::DKIM (RSA)' : 'dkimpy'}`);
      line.total++;
      line.cases.add(c.name);
      if (v.result === 'pass') {
        line.pass++;
        continue;
      }
      const known = c.knownIssues?.find((k) => k.verifier === verifier && k.detail.test(v.detail));
      if (known) {
        line.known.add(c.name);
        t.diagnostic(`${where}: ${v.result} — known ${verifier} limitation: ${known.why}`);
      } else {
        line.failed.push(`${c.name} #${i}`);
        problems.push(`${where}: ${v.result} ${v.detail}`);
      }
    }
  }
  assert.deepEqual(problems, [], `${stage || 'relayed'} ${c.name}`);
}

describe('interop corpus: relay → sink, verified by dkimpy and Mail::DKIM over DNS', { concurrency: 2, skip: skipWithout('dkimpy', 'Mail::DKIM') }, () => {
  let sink: Sink;
  let sink7: Sink;
  let relay: TestRelay;
  let relay7: TestRelay;
  let dns: DnsServer;
  let dns7: DnsServer;
  const relayed = new Map<string, Relayed>();
  const relayed7 = new Map<string, Relayed>();

  before(async () => {
    [sink, sink7] = await Promise.all([startSink(), startSink()]);
    const upstream = (port: number, eightBitMime: boolean) => ({
      listen: { maxMessageSize: 48 * 1024 * 1024 },
      delivery: { mode: 'sync', upstream: { type: 'smtp', host: '127.0.0.1', port, eightBitMime } },
    });
    relay = await startTestRelay(upstream(sink.port, true), keySetup);
    relay7 = await startTestRelay(upstream(sink7.port, false), keySetup);
    // Each relay has its own key store (same domains, different keys): one DNS server each.
    dns = await startDnsServer(addForeign(await zoneTable(join(relay.dir, 'keys'))));
    dns7 = await startDnsServer(addForeign(await zoneTable(join(relay7.dir, 'keys'))));
    for (const c of CORPUS) relayed.set(c.name, await relayCase(c, relay.port, sink));
    for (const c of CORPUS.filter((c) => c.eightBit)) relayed7.set(c.name, await relayCase(c, relay7.port, sink7));
  });
  after(async () => {
    await Promise.all([relay?.close(), relay7?.close()]);
    await Promise.all([sink?.close(), sink7?.close(), dns?.close(), dns7?.close()]);
  });

  test('the DNS server serves the zone the CLI printed: every key, split into strings of at most 255 octets', () => {
    for (const key of relay.store.list()) {
      const records = dns.records.get(`${key.selector}._domainkey.${key.domain}`);
      assert.equal(records?.length, 1, `${key.selector}._domainkey.${key.domain}`);
      assert.deepEqual(records[0], txtRecord(key).strings, 'the character-strings as printed');
      assert.ok(records[0]!.every((s) => s.length <= 255));
      assert.match(records[0]!.join(''), new RegExp(`^v=DKIM1; k=${key.algorithm}; p=[A-Za-z0-9+/=]+$`));
    }
    assert.equal(relay.store.list().length, Object.values(KEY_SETS).flat().length);
    assert.ok(
      [...dns.records.values()].some((r) => r[0]!.length > 2),
      'an RSA-2048 record spans several strings',
    );
  });

  test('harness: the raw transport delivers the bytes as written (only the CRLF that ends SMTP data is added)', async () => {
    for (const c of CORPUS.filter((c) => c.transport === 'raw')) {
      const raw = loadCase(c);
      const direct = await sendRaw({ port: sink7.port, ...c.envelope, raw });
      assert.equal(direct.ok, true, JSON.stringify(direct));
      const got = sink7.received.pop()!.raw;
      const expected = raw.subarray(-2).equals(Buffer.from('\r\n'))
        ? raw
        : raw.at(-1) === 0x0a
          ? Buffer.concat([raw.subarray(0, -1), Buffer.from('\r\n')])
          : Buffer.concat([raw, Buffer.from('\r\n')]);
      assert.ok(got.equals(expected), `${c.name}: the sink got other bytes than the file holds`);
    }
  });

  test('harness: the verifiers fail closed — with no key in DNS nothing passes', async () => {
    const got = relayed.get('01-plain-ascii')?.arrived[0];
    assert.ok(got);
    const empty = await startDnsServer();
    try {
      for (const verify of [verifyWithDkimpyDns, verifyWithMailDkimDns]) {
        const verdicts = await verify(got.raw, empty.address);
        assert.equal(verdicts.length, 2);
        assert.ok(
          verdicts.every((v) => v.result !== 'pass'),
          JSON.stringify(verdicts),
        );
      }
    } finally {
      await empty.close();
    }
  });

  for (const c of CORPUS) {
    const label = c.expect.outcome === 'refused' ? `refused ${c.expect.code}` : c.expect.outcome;
    test(`${c.name} → ${label}: ${c.about}`, async (t) => {
      const r = relayed.get(c.name);
      assert.ok(r, 'relayed in before()');
      t.diagnostic(`relayed in ${Math.round(r.ms)} ms over ${c.transport}: ${r.result.ok ? 'accepted' : `${r.result.code} ${r.result.response}`}`);
      const expect = c.expect;
      if (expect.outcome === 'refused') {
        assert.equal(r.result.ok, false, 'the client must get a refusal');
        assert.equal(!r.result.ok && r.result.code, expect.code, r.result.response);
        assert.equal(r.arrived.length, 0, 'the upstream must get nothing');
        return;
      }
      assert.equal(r.result.ok, true, JSON.stringify(r.result));
      assert.equal(r.arrived.length, 1, 'exactly one message upstream');
      const got = r.arrived[0]!;
      assert.deepEqual([got.from, got.to], [c.envelope.from, c.envelope.to], 'envelope passed on');
      const fields = dkimFields(got.raw);
      const foreign = c.foreignSignatures ?? 0;
      if (expect.outcome === 'forwarded-unsigned') {
        assert.equal(fields.length, foreign, 'no DKIM-Signature of ours');
        assert.deepEqual(checkLines(got.raw), [], 'CRLF only, no line over 998 octets');
        return;
      }
      // The verifiers first, so the summary counts every signed message; then the shape checks.
      await judge(t, '', c, got.raw, dns.address, algorithmsOf(expect.signer).length + foreign);
      assert.deepEqual(checkLines(got.raw), [], 'CRLF only, no line over 998 octets');
      await checkSigned(t, c, expect.signer, got.raw, fields, foreign);
    });
  }

  async function checkSigned(
    t: TestContext,
    c: CorpusCase,
    signer: KeySetName,
    raw: Buffer,
    fields: string[],
    foreign: number,
    sevenBitUpstream = false,
  ): Promise<void> {
    const wanted = algorithmsOf(signer);
    assert.equal(fields.length, wanted.length + foreign, 'our signatures plus those already there');
    const ours = fields.slice(0, wanted.length).map(tagsOf);
    assert.deepEqual(
      ours.map((tags) => [tags.get('d'), tags.get('a')]),
      wanted.map((a) => [signer, a]),
      'ours on top: d= and a=',
    );
    const header = headerOf(raw);
    assert.match(header, /^Received: from .*\r\n(?:\t.*\r\n)*DKIM-Signature:/i, 'our Received: first, then the signatures');
    const original = loadCase(c);
    // Whatever the relay re-encoded, each part still decodes to what the sender wrote.
    const leaves = mimeLeaves(raw);
    const sent = mimeLeaves(crlfOnly(original));
    assert.equal(leaves.length, sent.length, 'as many MIME leaf parts as were sent');
    for (const [i, leaf] of leaves.entries()) assert.ok(leaf.equals(sent[i]!), `MIME part ${i} decodes to other content than was sent`);
    for (const check of c.checks ?? []) {
      if (check === 'date-added') {
        assert.doesNotMatch(headerOf(original), /^date:/im);
        assert.match(header, /^Date:/im, 'Date: added');
        assert.ok(
          ours.every((tags) => /(^|:)date(:|$)/i.test(tags.get('h') ?? '')),
          'the added Date: is signed',
        );
      } else if (check === 'message-id-added') {
        assert.doesNotMatch(headerOf(original), /^message-id:/im);
        assert.match(header, /^Message-ID:[ \t]*<[^>]+@[^>]+>/im, 'Message-ID: added');
        assert.ok(
          ours.every((tags) => /(^|:)message-id(:|$)/i.test(tags.get('h') ?? '')),
          'the added Message-ID: is signed',
        );
      } else if (check === 'foreign-signature-kept') {
        const before = dkimFields(original);
        assert.deepEqual(fields.slice(wanted.length), before, 'the earlier DKIM-Signature arrives byte for byte');
      } else if (check === '8bit-kept') {
        if (!sevenBitUpstream)
          assert.ok(
            raw.subarray(header.length).some((b) => b >= 0x80),
            'the 8-bit body reaches an 8BITMIME upstream as it is',
          );
      } else if (check === 'long-line-reencoded') {
        assert.match(header, /^Content-Transfer-Encoding:[ \t]*(quoted-printable|base64)/im, 're-encoded as QP or base64');
      }
    }
    t.diagnostic(`signed: ${ours.map((tags) => `d=${tags.get('d')} s=${tags.get('s')} a=${tags.get('a')}`).join(', ')}`);
  }

  test('harness: the intermediary changes only what relaxed canonicalization absorbs, and does change it', () => {
    let refolded = 0;
    let recased = 0;
    for (const c of CORPUS.filter((c) => c.expect.outcome === 'signed' && c.name !== '21-attachment-25mb')) {
      const got = relayed.get(c.name)?.arrived[0];
      if (!got) continue; // reported by the case's own test
      const before = fieldsAndBody(got.raw);
      const after = fieldsAndBody(hostileIntermediary(got.raw, { seed: seedOf(c.name) }));
      const kept = after.fields.slice(ADDED_TRACE_FIELDS);
      assert.deepEqual(kept.map(relaxedField), before.fields.map(relaxedField), `${c.name}: header fields`);
      assert.equal(relaxedBody(after.body), relaxedBody(before.body), `${c.name}: body`);
      const folds = (f: string) =>
        f
          .split('\r\n')
          .map((l) =>
            l
              .trim()
              .replace(/[ \t]+/g, ' ')
              .toLowerCase(),
          )
          .join('|');
      refolded += kept.filter((f, i) => folds(f) !== folds(before.fields[i]!)).length;
      recased += kept.filter((f, i) => f.slice(0, f.indexOf(':')) !== before.fields[i]!.slice(0, before.fields[i]!.indexOf(':'))).length;
    }
    assert.ok(refolded > 100 && recased > 100, `refolded ${refolded}, recased ${recased}`);
  });

  for (const c of CORPUS.filter((c) => c.expect.outcome === 'signed')) {
    test(`after intermediary: ${c.name}`, async (t) => {
      const got = relayed.get(c.name)?.arrived[0];
      assert.ok(got, 'the message arrived in the first place');
      const mangled = hostileIntermediary(got.raw, { seed: seedOf(c.name) });
      assert.ok(!mangled.equals(got.raw), 'the intermediary changed something');
      const foreign = c.foreignSignatures ?? 0;
      const signer = (c.expect as { signer: KeySetName }).signer;
      await judge(t, 'after intermediary: ', c, mangled, dns.address, algorithmsOf(signer).length + foreign);
    });
  }

  for (const c of CORPUS.filter((c) => c.eightBit)) {
    const expect = c.sevenBitUpstream ?? c.expect;
    const label = expect.outcome === 'refused' ? `refused ${expect.code}` : expect.outcome;
    test(`7-bit upstream (eightBitMime: false): ${c.name} → ${label}`, async (t) => {
      const r = relayed7.get(c.name);
      assert.ok(r);
      if (expect.outcome === 'refused') {
        t.diagnostic(`${r.result.ok ? 'accepted' : `${r.result.code} ${r.result.response}`}`);
        assert.equal(!r.result.ok && r.result.code, expect.code, r.result.response);
        assert.equal(r.arrived.length, 0, 'the upstream must get nothing');
        return;
      }
      assert.equal(r.result.ok, true, JSON.stringify(r.result));
      assert.equal(r.arrived.length, 1);
      const got = r.arrived[0]!;
      const signer = (expect as { signer: KeySetName }).signer;
      await judge(t, '7-bit upstream: ', c, got.raw, dns7.address, algorithmsOf(signer).length + (c.foreignSignatures ?? 0));
      const high = got.raw.findIndex((b) => b >= 0x80);
      assert.equal(high, -1, `an 8-bit octet at ${high}: ${JSON.stringify(got.raw.subarray(Math.max(0, high - 40), high + 20).toString('latin1'))}`);
      assert.deepEqual(checkLines(got.raw), [], 'CRLF only, no line over 998 octets');
      await checkSigned(t, c, signer, got.raw, dkimFields(got.raw), c.foreignSignatures ?? 0, true);
    });
  }
});

test('summary', (t) => {
  for (const [name, line] of tallies) {
    const failedKnown = line.total - line.pass - line.failed.length;
    const extra = [
      failedKnown ? `${failedKnown} known verifier limitation(s) in ${[...line.known].join(', ')}` : '',
      line.failed.length ? `FAILED: ${line.failed.join(', ')}` : '',
    ]
      .filter(Boolean)
      .join('; ');
    t.diagnostic(`${name}: ${line.pass}/${line.total} pass (signatures, ${line.cases.size} cases)${extra ? ` — ${extra}` : ''}`);
  }
  for (const [stage, n] of ed25519Unjudged)
    t.diagnostic(`${stage}Mail::DKIM: ${n} Ed25519 signatures not judged (unsupported in Debian 12's Mail::DKIM); dkimpy alone decided them`);
  t.diagnostic(`corpus: ${CORPUS.length} cases; whole file ${((performance.now() - started) / 1000).toFixed(1)} s`);
});
