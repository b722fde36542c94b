// From what arrived (a file or a fetched message) to the report's XML text.
// The octets decide what it is: gzip and zip by their magic numbers, XML by
// its first markup, anything that reads as a header block as a mail message
// whose attachment is then unpacked the same way. A declared type that the
// octets contradict is refused, as is anything past `limit` octets, counted
// before parsing and while inflating.
import { gunzipBounded, tooLarge, unzipBounded } from './bounded-inflate.ts';
import { REPORT_TYPES, reportAttachment } from './report-message.ts';
import type { Checked } from './report-model.ts';
import { refused } from './report-model.ts';

export type Kind = 'gzip' | 'zip' | 'xml' | 'message';

/** What the octets are, by their first ones. */
export function sniff(data: Buffer): Kind | undefined {
  if (data.length >= 2 && data[0] === 0x1f && data[1] === 0x8b) return 'gzip';
  if (data.length >= 4 && data.readUInt32LE(0) === 0x04034b50) return 'zip';
  const start = data
    .subarray(0, 512)
    .toString('latin1')
    .replace(/^\uFEFF|^\xEF\xBB\xBF/, '')
    .trimStart();
  if (start.startsWith('<')) return 'xml';
  // A header field (RFC 5322 §2.2): a name of printable ASCII but colon, then a colon.
  if (/^[!-9;-~]+:/.test(start)) return 'message';
  return undefined;
}

/** The XML of the report in `data`; `declared` is the Content-Type an attachment came with. */
export async function unpackReport(data: Buffer, limit: number, declared?: string, depth = 0): Promise<Checked<string>> {
  if (data.length > limit) return refused(`${data.length} octets, more than ${limit} (reports.maxBytes); refused before parsing`);
  const kind = sniff(data);
  if (!kind) return refused('neither XML, gzip, zip nor a mail message');
  const expected = declared && Object.hasOwn(REPORT_TYPES, declared) ? REPORT_TYPES[declared] : undefined;
  if (expected && expected !== kind) return refused(`declared ${declared} but the content is ${kind}`);
  switch (kind) {
    case 'xml':
      return { ok: true, value: new TextDecoder('utf-8').decode(data) };
    case 'gzip':
    case 'zip': {
      const inflated = kind === 'gzip' ? await gunzipBounded(data, limit) : await unzipBounded(data, limit);
      if (!inflated.ok) return inflated;
      if (sniff(inflated.value) !== 'xml') return refused(`the ${kind} file does not hold XML`);
      return { ok: true, value: new TextDecoder('utf-8').decode(inflated.value) };
    }
    case 'message': {
      if (depth > 0) return refused('a message inside a report attachment');
      const attachment = reportAttachment(data);
      if (!attachment.ok) return attachment;
      const { contentType, data: content } = attachment.value;
      if (content.length > limit) return refused(tooLarge('the attachment', limit));
      return unpackReport(content, limit, contentType, depth + 1);
    }
  }
}
