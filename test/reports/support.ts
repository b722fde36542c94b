// Aggregate reports as the large receivers send them, written here: the XML
// (RFC 7489 appendix C, or DMARCbis with its namespace), gzip or zip around
// it, and the mail message that carries it.
import { constants, crc32, deflateRawSync, gzipSync } from 'node:zlib';
import MailComposer from 'nodemailer/lib/mail-composer/index.js';

export interface RowSpec {
  ip: string;
  count: number;
  dkim: 'pass' | 'fail';
  spf: 'pass' | 'fail';
  disposition?: string;
  headerFrom?: string;
  signatures: { d: string; s?: string; result: string }[];
  spfDomain?: string;
}

export interface ReportSpec {
  org: string;
  email: string;
  reportId: string;
  domain: string;
  begin: number;
  end: number;
  rows: RowSpec[];
  /** DMARCbis (RFC 9990): the dmarc-2.0 namespace, generator, np, testing, discovery_method; no pct and no version. */
  bis?: boolean;
  /** Microsoft writes xsd/xsi declarations and envelope_to. */
  microsoft?: boolean;
}

export function reportXml(r: ReportSpec): string {
  const root = r.bis
    ? '<feedback xmlns="urn:ietf:params:xml:ns:dmarc-2.0">'
    : r.microsoft
      ? '<feedback xmlns:xsd="http://www.w3.org/2001/XMLSchema" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">'
      : '<feedback>';
  const records = r.rows
    .map(
      (row) => `  <record>
    <row>
      <source_ip>${row.ip}</source_ip>
      <count>${row.count}</count>
      <policy_evaluated>
        <disposition>${row.disposition ?? 'none'}</disposition>
        <dkim>${row.dkim}</dkim>
        <spf>${row.spf}</spf>
      </policy_evaluated>
    </row>
    <identifiers>
${r.microsoft ? `      <envelope_to>recipient.example</envelope_to>\n` : ''}${r.bis ? `      <envelope_from>${row.headerFrom ?? r.domain}</envelope_from>\n` : ''}      <header_from>${row.headerFrom ?? r.domain}</header_from>
    </identifiers>
    <auth_results>
${row.signatures.map((s) => `      <dkim>\n        <domain>${s.d}</domain>\n${s.s ? `        <selector>${s.s}</selector>\n` : ''}        <result>${s.result}</result>\n      </dkim>\n`).join('')}      <spf>
        <domain>${row.spfDomain ?? r.domain}</domain>
        ${r.bis ? '<scope>mfrom</scope>' : ''}
        <result>${row.spf === 'pass' ? 'pass' : 'softfail'}</result>
      </spf>
    </auth_results>
  </record>`,
    )
    .join('\n');
  const policy = r.bis
    ? `<domain>${r.domain}</domain><discovery_method>treewalk</discovery_method><p>none</p><sp>none</sp><np>reject</np><fo>1</fo><adkim>r</adkim><aspf>r</aspf><testing>n</testing>`
    : `<domain>${r.domain}</domain><adkim>r</adkim><aspf>r</aspf><p>none</p><sp>none</sp><pct>100</pct>`;
  return `<?xml version="1.0" encoding="UTF-8" ?>
${root}
${r.bis ? '' : '  <version>1.0</version>\n'}  <report_metadata>
    <org_name>${r.org}</org_name>
    <email>${r.email}</email>
${r.bis ? '    <generator>Example Reporter 3.1</generator>\n' : ''}    <report_id>${r.reportId}</report_id>
    <date_range>
      <begin>${r.begin}</begin>
      <end>${r.end}</end>
    </date_range>
  </report_metadata>
  <policy_published>${policy}</policy_published>
${records}
</feedback>
`;
}

export interface ZipMember {
  name: string;
  data: Buffer;
  /** Deflated already (a bomb is built so); else deflated here. */
  deflated?: Buffer;
  /** What the headers claim; default the true size. */
  declaredSize?: number;
}

/** A zip file (APPNOTE 4.3): local headers, data, central directory. The CRC is the data's when it is given. */
export function zipFile(members: ZipMember[]): Buffer {
  const locals: Buffer[] = [];
  const centrals: Buffer[] = [];
  let offset = 0;
  for (const m of members) {
    const name = Buffer.from(m.name);
    const body = m.deflated ?? deflateRawSync(m.data);
    const size = m.declaredSize ?? m.data.length;
    const crc = m.deflated ? 0 : crc32(m.data);
    const local = Buffer.alloc(30);
    local.writeUInt32LE(0x04034b50, 0);
    local.writeUInt16LE(20, 4);
    local.writeUInt16LE(8, 8);
    local.writeUInt32LE(crc, 14);
    local.writeUInt32LE(body.length, 18);
    local.writeUInt32LE(size, 22);
    local.writeUInt16LE(name.length, 26);
    const central = Buffer.alloc(46);
    central.writeUInt32LE(0x02014b50, 0);
    central.writeUInt16LE(20, 4);
    central.writeUInt16LE(20, 6);
    central.writeUInt16LE(8, 10);
    central.writeUInt32LE(crc, 16);
    central.writeUInt32LE(body.length, 20);
    central.writeUInt32LE(size, 24);
    central.writeUInt16LE(name.length, 28);
    central.writeUInt32LE(offset, 42);
    locals.push(local, name, body);
    centrals.push(central, name);
    offset += local.length + name.length + body.length;
  }
  const directory = Buffer.concat(centrals);
  const end = Buffer.alloc(22);
  end.writeUInt32LE(0x06054b50, 0);
  end.writeUInt16LE(members.length, 8);
  end.writeUInt16LE(members.length, 10);
  end.writeUInt32LE(directory.length, 12);
  end.writeUInt32LE(offset, 16);
  return Buffer.concat([...locals, directory, end]);
}

export const gzip = (xml: string): Buffer => gzipSync(Buffer.from(xml));

/** The report as the attachment of a message, as receivers mail it to the rua= address. */
export async function reportMessage(
  from: string,
  subject: string,
  attachment: { filename: string; content: Buffer | string; contentType: string },
): Promise<Buffer> {
  const composer = new MailComposer({
    from,
    to: 'dmarc-reports@example.com',
    subject,
    text: 'This is an aggregate report from a receiver.',
    attachments: [attachment],
  });
  return composer.compile().build();
}

const now = Math.floor(Date.now() / 1000);
const DAY = 86_400;

/** The relay's key for example.com signs with selector "relay1"; esp.example signs for a newsletter. */
export const GOOGLE: ReportSpec = {
  org: 'google.com',
  email: 'noreply-dmarc-support@google.com',
  reportId: '13658716391290476873',
  domain: 'example.com',
  begin: now - 2 * DAY,
  end: now - DAY - 1,
  rows: [
    { ip: '192.0.2.10', count: 100, dkim: 'pass', spf: 'pass', signatures: [{ d: 'example.com', s: 'relay1', result: 'pass' }] },
    { ip: '192.0.2.10', count: 3, dkim: 'fail', spf: 'fail', signatures: [{ d: 'example.com', s: 'relay1', result: 'fail' }] },
    { ip: '198.51.100.7', count: 20, dkim: 'fail', spf: 'pass', signatures: [] },
  ],
};

export const MICROSOFT: ReportSpec = {
  org: 'Enterprise Outlook',
  email: 'dmarcreport@microsoft.com',
  reportId: '5d4c8e2a6f0b4b1e9a3c7d2e1f0a9b8c',
  domain: 'example.com',
  begin: now - 2 * DAY,
  end: now - DAY,
  microsoft: true,
  rows: [
    { ip: '192.0.2.10', count: 50, dkim: 'pass', spf: 'pass', signatures: [{ d: 'example.com', s: 'relay1', result: 'pass' }] },
    { ip: '203.0.113.5', count: 7, dkim: 'fail', spf: 'fail', disposition: 'none', signatures: [{ d: 'thirdparty.example', s: 's1', result: 'pass' }] },
  ],
};

export const YAHOO: ReportSpec = {
  org: 'Yahoo',
  email: 'dmarchelp@yahooinc.com',
  reportId: '1733356800.786291',
  domain: 'example.com',
  begin: now - DAY,
  end: now - 60,
  rows: [
    { ip: '192.0.2.10', count: 30, dkim: 'pass', spf: 'pass', signatures: [{ d: 'example.com', s: 'relay1', result: 'pass' }] },
    { ip: '192.0.2.10', count: 2, dkim: 'fail', spf: 'fail', signatures: [{ d: 'example.com', s: 'relay1', result: 'fail' }] },
  ],
};

export const BIS: ReportSpec = {
  org: 'mail.example.net',
  email: 'dmarc-reports@mail.example.net',
  reportId: 'example.com.1733356800.bis',
  domain: 'example.com',
  begin: now - DAY,
  end: now - 120,
  bis: true,
  rows: [
    {
      ip: '2001:db8::25',
      count: 10,
      dkim: 'pass',
      spf: 'pass',
      signatures: [
        { d: 'example.com', s: 'relay1', result: 'pass' },
        { d: 'esp.example', s: 'k1', result: 'pass' },
      ],
    },
    { ip: '198.51.100.7', count: 5, dkim: 'fail', spf: 'fail', signatures: [] },
  ],
};

/** A report about a domain the relay holds no key for. */
export const FOREIGN: ReportSpec = {
  ...GOOGLE,
  reportId: '999',
  domain: 'other.example',
  rows: [{ ip: '192.0.2.99', count: 4, dkim: 'pass', spf: 'pass', headerFrom: 'other.example', signatures: [{ d: 'other.example', s: 'x', result: 'pass' }] }],
};

/** What every report above adds up to, as `reports --json` must show it for example.com. */
export const EXPECTED = {
  reports: 4,
  messages: 100 + 3 + 20 + 50 + 7 + 30 + 2 + 10 + 5,
  dmarcPass: 100 + 20 + 50 + 30 + 10,
  relaySignedFailing: 3 + 2,
  notRelaySigned: 20 + 7 + 5,
};

/** The four receivers' messages, each in its usual shape. */
export async function receiverMessages(): Promise<{ name: string; message: Buffer }[]> {
  return [
    {
      name: 'google',
      message: await reportMessage('noreply-dmarc-support@google.com', `Report domain: example.com Submitter: google.com Report-ID: ${GOOGLE.reportId}`, {
        filename: `google.com!example.com!${GOOGLE.begin}!${GOOGLE.end}.xml.gz`,
        content: gzip(reportXml(GOOGLE)),
        contentType: 'application/gzip',
      }),
    },
    {
      name: 'microsoft',
      message: await reportMessage(
        'dmarcreport@microsoft.com',
        `Report Domain: example.com Submitter: enterprise.protection.outlook.com Report-ID: <${MICROSOFT.reportId}>`,
        {
          filename: `enterprise.protection.outlook.com!example.com!${MICROSOFT.begin}!${MICROSOFT.end}.xml.gz`,
          content: gzip(reportXml(MICROSOFT)),
          contentType: 'application/gzip',
        },
      ),
    },
    {
      name: 'yahoo',
      message: await reportMessage('noreply@dmarc.yahoo.com', `Report Domain: example.com Submitter: yahoo.com Report-ID: <${YAHOO.reportId}>`, {
        filename: `yahoo.com!example.com!${YAHOO.begin}!${YAHOO.end}.zip`,
        content: zipFile([{ name: `yahoo.com!example.com!${YAHOO.begin}!${YAHOO.end}.xml`, data: Buffer.from(reportXml(YAHOO)) }]),
        contentType: 'application/zip',
      }),
    },
    {
      name: 'dmarcbis',
      message: await reportMessage('dmarc-reports@mail.example.net', `Report Domain: example.com Submitter: mail.example.net Report-ID: ${BIS.reportId}`, {
        filename: `mail.example.net!example.com!${BIS.begin}!${BIS.end}.xml`,
        content: reportXml(BIS),
        contentType: 'application/xml',
      }),
    },
  ];
}

const MiB = 1024 * 1024;
export const GiB = 1024 * MiB;

/** 1 GiB of "<" and spaces as gzip members of 16 MiB each: a few hundred kilobytes that inflate to a gigabyte. */
export function gzipBomb(): Buffer {
  const piece = Buffer.alloc(16 * MiB, 0x20);
  piece[0] = 0x3c;
  const member = gzipSync(piece, { level: 9 });
  return Buffer.concat(Array.from({ length: GiB / piece.length }, () => member));
}

/** One raw deflate stream of 1 GiB: non-final blocks of 16 MiB, byte-aligned by a full flush, then an empty final block. */
export function deflateBomb(): Buffer {
  const piece = Buffer.alloc(16 * MiB, 0x20);
  piece[0] = 0x3c;
  const block = deflateRawSync(piece, { level: 9, finishFlush: constants.Z_FULL_FLUSH });
  return Buffer.concat([...Array.from({ length: GiB / piece.length }, () => block), deflateRawSync(Buffer.alloc(0))]);
}
