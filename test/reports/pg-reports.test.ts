// Reports in a fleet's shared PostgreSQL key store: two relays importing the
// same reports at the same moment store each once; `reports --json` and
// `status --json` read them through the same interface as from keys.db, with
// the same numbers; the read-only store cannot write.
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { configSchema } from '../../src/config/schema.ts';
import type { KeyStore } from '../../src/keys/key-store.ts';
import { openKeyStore } from '../../src/keys/open-store.ts';
import type { StatusReport } from '../../src/observability/status-report.ts';
import { readEvidence } from '../../src/reports/evidence.ts';
import { importContext, importReport } from '../../src/reports/import.ts';
import { openReportStore } from '../../src/reports/open-report-store.ts';
import { relayKeysOf, summarise, type DomainSummary } from '../../src/reports/summary.ts';
import { dkimRelay } from '../cli/support.ts';
import { postgresOrSkip, startPgCluster, type PgCluster } from '../keys/postgres/pg-cluster.ts';
import { kekFile } from '../keys/postgres/support.ts';
import { tempDir } from '../helpers/tmp.ts';
import { EXPECTED, FOREIGN, GOOGLE, receiverMessages, reportXml } from './support.ts';

const pgSkip = postgresOrSkip();
const REPORTS = configSchema.parse({}).reports;

describe('DMARC reports in a shared PostgreSQL key store', { skip: pgSkip.skip }, () => {
  let cluster: PgCluster;
  before(async () => {
    cluster = await startPgCluster();
  });
  after(async () => {
    await cluster?.stop();
  });

  test('two relays import the same reports at once: each stored once, summed up exactly, read by reports and status', async () => {
    const url = await cluster.createDatabase('reports');
    const dirs = [tempDir(), tempDir()];
    const kek = kekFile(dirs[0]!);
    const keys = (dir: string) => ({ dir: join(dir, 'keys'), database: url, encryptionKeyFile: kek }) as Parameters<typeof openKeyStore>[0];
    const relays: KeyStore[] = [];
    try {
      for (const dir of dirs) relays.push(await openKeyStore(keys(dir), { refreshMs: 0 }));
      await relays[0]!.generate({ domain: 'example.com', selector: 'relay1', algorithm: 'ed25519', activate: true });
      for (const r of relays) await (r as KeyStore & { refresh(): Promise<void> }).refresh();

      const stores = await Promise.all(relays.map((r) => openReportStore(r)));
      try {
        const contexts = relays.map((r, i) => importContext(stores[i]!, r, REPORTS));
        const messages = [...(await receiverMessages()).map((m) => m.message), Buffer.from(reportXml(FOREIGN))];
        // Both relays take each report at the same moment, as two relays reading one mailbox might.
        const results = await Promise.all(messages.flatMap((m) => contexts.map((ctx) => importReport(m, ctx))));
        const statuses = results.map((r) => r.status);
        // Each report imported by one relay and found stored by the other; the foreign one ignored by both.
        const count = (status: string) => statuses.filter((s) => s === status).length;
        assert.deepEqual([count('imported'), count('duplicate')], [4, 4], statuses.join(' '));
        assert.equal(count('ignored'), 2);

        const relayKeys = relayKeysOf([{ domain: 'example.com', selector: 'relay1', client: null }]);
        for (const reports of stores) {
          const [d] = summarise(await reports.records(0), await reports.reportCounts(0), relayKeys);
          assert.deepEqual(
            {
              reports: d!.reports,
              messages: d!.messages,
              dmarcPass: d!.dmarcPass,
              failing: d!.relaySignedFailing.messages,
              unsigned: d!.notRelaySigned.messages,
            },
            {
              reports: EXPECTED.reports,
              messages: EXPECTED.messages,
              dmarcPass: EXPECTED.dmarcPass,
              failing: EXPECTED.relaySignedFailing,
              unsigned: EXPECTED.notRelaySigned,
            },
          );
        }
        assert.equal((await cluster.psql('reports', 'SELECT count(*) FROM dmarc_reports')).trim(), '4');
      } finally {
        for (const s of stores) await s.close();
      }

      // Read-only, as status and the status page open it: reads the same, and cannot write.
      const readOnly = await openReportStore(relays[1]!, 'read-only');
      try {
        const evidence = (await readEvidence(readOnly, relays[1]!, 14, Date.now())).get('example.com')!;
        assert.equal(evidence.messages, EXPECTED.messages);
        await assert.rejects(
          importReport(Buffer.from(reportXml({ ...GOOGLE, reportId: 'written-by-status' })), importContext(readOnly, relays[1]!, REPORTS)),
          /read-only transaction/,
        );
      } finally {
        await readOnly.close();
      }
    } finally {
      for (const r of relays) await r.close();
    }

    // The real commands on a relay of this fleet: the same numbers.
    const dir = dirs[1]!;
    const config = join(dir, 'dkim-relay.yaml');
    writeFileSync(
      config,
      `keys: {dir: ${join(dir, 'keys')}, database: "${url}", encryptionKeyFile: ${kek}}\nqueue: {dir: ${join(dir, 'spool')}}\nmetrics: {enabled: false}\n`,
    );
    const again = join(dir, 'google.xml');
    writeFileSync(again, reportXml(GOOGLE));
    const imported = await dkimRelay(['reports', 'import', '--config', config, again], dir);
    assert.equal(imported.code, 0, imported.stderr);
    assert.match(imported.stdout, /report 13658716391290476873 from google\.com for example\.com was imported before; nothing changed/);
    const reports = await dkimRelay(['reports', '--json', '--days', '14', '--config', config], dir);
    assert.equal(reports.code, 0, reports.stderr);
    const [d] = (JSON.parse(reports.stdout) as { domains: DomainSummary[] }).domains;
    assert.deepEqual([d!.reports, d!.messages, d!.dmarcPass], [EXPECTED.reports, EXPECTED.messages, EXPECTED.dmarcPass]);
    const status = await dkimRelay(['status', '--json', '--no-dns', '--config', config], dir);
    assert.ok([0, 1].includes(status.code ?? -1), status.stderr);
    const e = (JSON.parse(status.stdout) as StatusReport).domains.find((x) => x.domain === 'example.com')!.receivers!.evidence!;
    assert.deepEqual(
      [e.reports, e.messages, e.dmarcPass, e.relaySignedFailing.messages],
      [d!.reports, d!.messages, d!.dmarcPass, d!.relaySignedFailing.messages],
    );
  });
});
