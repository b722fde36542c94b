// Decompression that stops at a limit. The output is counted as it is
// inflated, whatever size a gzip trailer or a zip directory declares, so a
// "bomb" that expands to gigabytes costs at most `limit` octets of memory
// before it is refused.
import { Readable } from 'node:stream';
import { createGunzip } from 'node:zlib';
import yauzl from 'yauzl';
import type { Checked } from './report-model.ts';
import { refused } from './report-model.ts';

export function tooLarge(what: string, limit: number): string {
  return `${what} expands past ${limit} octets (reports.maxBytes); refused without reading further`;
}

/** Collects a stream's octets until it ends, or refuses as soon as they pass `limit`. */
export function collectBounded(stream: Readable, limit: number, what: string): Promise<Checked<Buffer>> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let settled = false;
    const settle = (outcome: Checked<Buffer>) => {
      if (settled) return;
      settled = true;
      stream.removeAllListeners('data');
      stream.destroy();
      resolve(outcome);
    };
    stream.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) return settle(refused(tooLarge(what, limit)));
      chunks.push(chunk);
    });
    stream.once('end', () => settle({ ok: true, value: Buffer.concat(chunks, size) }));
    stream.once('error', (err: Error) => settle(refused(`${what} is damaged: ${err.message}`)));
  });
}

/** A gzip file (RFC 1952), every member of it. */
export function gunzipBounded(data: Buffer, limit: number): Promise<Checked<Buffer>> {
  // Small output chunks: the count is checked after each, so the overshoot is at most one chunk.
  const gunzip = createGunzip({ chunkSize: 64 * 1024 });
  const result = collectBounded(gunzip, limit, 'the gzip file');
  gunzip.end(data);
  return result;
}

/** The first .xml member of a zip file (Yahoo and others send the report so). */
export function unzipBounded(data: Buffer, limit: number): Promise<Checked<Buffer>> {
  return new Promise((resolve) => {
    // validateEntrySizes: a member that inflates to more than its declared size is an error, not more data.
    yauzl.fromBuffer(data, { lazyEntries: true, validateEntrySizes: true, decodeStrings: true }, (err, zip) => {
      if (err || !zip) return resolve(refused(`not a readable zip file: ${err?.message ?? 'no archive'}`));
      let done = false;
      const finish = (outcome: Checked<Buffer>) => {
        if (done) return;
        done = true;
        try {
          zip.close();
        } catch {
          // already closed by yauzl at its end
        }
        resolve(outcome);
      };
      zip.on('error', (e: Error) => finish(refused(`the zip file is damaged: ${e.message}`)));
      zip.on('end', () => finish(refused('the zip file holds no .xml report')));
      zip.on('entry', (entry: yauzl.Entry) => {
        if (!entry.fileName.toLowerCase().endsWith('.xml') || entry.fileName.endsWith('/')) return zip.readEntry();
        zip.openReadStream(entry, (e, stream) => {
          if (e || !stream) return finish(refused(`the zip member ${entry.fileName} cannot be read: ${e?.message ?? 'no stream'}`));
          void collectBounded(stream, limit, `the zip member ${entry.fileName}`).then(finish);
        });
      });
      zip.readEntry();
    });
  });
}
