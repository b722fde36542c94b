// The `file` upstream: each message lands in a folder as one .eml file,
// written under a temporary name and renamed, so a reader never sees half.
// The folder is made 0700 and each file 0600, whatever the umask: the
// messages are the organisation's mail. Files are created without following
// a link (src/common/file-create.ts).
import { randomBytes } from 'node:crypto';
import { rename, rm } from 'node:fs/promises';
import { createFile, makeDirectory } from '../common/file-create.ts';
import { join } from 'node:path';
import type { UpstreamConfig } from '../config/schema.ts';
import type { Octets } from '../message/octets.ts';
import { smtpReply } from '../smtp/reply.ts';
import { forAll, type Envelope, type Upstream, type UpstreamReply } from './upstream.ts';

type FileConfig = Extract<UpstreamConfig, { type: 'file' }>;

const CONTROL = /[\x00-\x1f\x7f]/;

export class FileUpstream implements Upstream {
  readonly traits;
  readonly name;
  private readonly dir: string;

  constructor(config: FileConfig) {
    this.dir = config.dir;
    // A file takes 8-bit data and UTF-8 addresses as they are (RFC 6532).
    this.traits = { dualSign: config.dualSign, eightBitMime: config.eightBitMime, smtpUtf8: config.eightBitMime };
    this.name = `file ${config.dir}`;
  }

  async ready(): Promise<void> {}

  async deliver(envelope: Envelope, message: Octets): Promise<UpstreamReply> {
    // A line break in an address would start a header line of its own in the file.
    const broken = [envelope.from, ...envelope.to].find((address) => CONTROL.test(address));
    if (broken !== undefined) return forAll(envelope, smtpReply(553, `5.1.3 The address ${JSON.stringify(broken)} contains control characters`));
    const id = `${new Date().toISOString().replace(/[-:]/g, '').replace(/\..*/, '')}-${randomBytes(6).toString('hex')}`;
    const tmp = join(this.dir, `.${id}.tmp`);
    try {
      makeDirectory(this.dir, 0o700);
      // The envelope is kept as Return-Path and Delivered-To lines, as a mail
      // store would add them: above the signature, which they do not touch.
      const envelopeLines = `Return-Path: <${envelope.from}>\r\n` + envelope.to.map((to) => `Delivered-To: <${to}>\r\n`).join('');
      const file = await createFile(tmp, 0o600);
      try {
        // SMTPUTF8 addresses are UTF-8 (RFC 6531 §3.3); latin1 would cut U+010D to a bare CR.
        await file.write(Buffer.from(envelopeLines, 'utf8'));
        for await (const chunk of message.chunks()) await file.write(chunk);
        await file.sync();
      } finally {
        await file.close();
      }
      await rename(tmp, join(this.dir, `${id}.eml`));
    } catch (err) {
      const { code, syscall } = err as NodeJS.ErrnoException;
      // Only a system call's failure is the folder's; anything else (Node.js's own ERR_… codes included) is a bug.
      if (syscall === undefined || code === undefined) throw err;
      await rm(tmp, { force: true }).catch(() => {});
      // The folder is this upstream's mailbox: why it cannot take the message is its reply, for queue show and the log.
      const full = code === 'ENOSPC' || code === 'EDQUOT';
      return forAll(envelope, smtpReply(451, `${full ? '4.3.1' : '4.3.0'} Cannot write the message into ${this.dir}: ${code}, try again later`));
    }
    return forAll(envelope, smtpReply(250, `2.0.0 Ok: written to ${join(this.dir, `${id}.eml`)}`));
  }

  async close(): Promise<void> {}
}
