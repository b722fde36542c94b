// The pieces of an end-to-end test: a real upstream (an smtp-server sink on
// loopback), the relay started in-process on a free port with its own key
// store in a temp folder, and a real SMTP client (nodemailer).
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import nodemailer from 'nodemailer';
import { pino } from 'pino';
import { SMTPServer, type SMTPServerAddress } from 'smtp-server';
import { configSchema } from '../../src/config/schema.ts';
import { txtValue } from '../../src/keys/record.ts';
import type { KeyStore } from '../../src/keys/key-store.ts';
import { startRelay, type RunningRelay, type StartOptions } from '../../src/daemon/daemon.ts';
import type { TxtRecords } from './independent-verify.ts';

export function tempDir(prefix = 'dkim-relay-test-'): { path: string; remove(): void } {
  const path = mkdtempSync(join(tmpdir(), prefix));
  return { path, remove: () => rmSync(path, { recursive: true, force: true }) };
}

export interface Received {
  from: string;
  to: string[];
  raw: Buffer;
  /** MAIL FROM parameters (RET, ENVID …) and each recipient's (NOTIFY, ORCPT …), as the sink got them. */
  mailArgs?: Record<string, unknown>;
  rcptArgs?: Record<string, unknown>[];
}

export interface Sink {
  port: number;
  received: Received[];
  close(): Promise<void>;
}

/** Answers for the sink to give: by recipient at RCPT, or for every DATA. */
export interface SinkBehaviour {
  rcpt?: Record<string, { code: number; text: string }>;
  data?: { code: number; text: string };
  /** The answer to the end of DATA comes this much later: a slow next hop. */
  dataReplyDelayMs?: number;
}

const failure = (code: number, text: string) => Object.assign(new Error(text), { responseCode: code });

/** `port`: 0 for a free one; a sink stopped and started again on its old port is an upstream that was down. */
export async function startSink(behaviour: SinkBehaviour = {}, port = 0): Promise<Sink> {
  const received: Received[] = [];
  const server = new SMTPServer({
    authOptional: true,
    disabledCommands: ['STARTTLS', 'AUTH'],
    closeTimeout: 500, // the relay's pooled connection would hold close() for 30 s
    hideDSN: false, // announces DSN, so a relay passes RET, ENVID, NOTIFY and ORCPT on
    logger: false,
    onRcptTo(address: SMTPServerAddress, _session, callback) {
      const answer = behaviour.rcpt?.[address.address];
      callback(answer ? failure(answer.code, answer.text) : undefined);
    },
    onData(stream, session, callback) {
      // Taken now: by 'end' a pipelining client may have started the next transaction.
      const from = session.envelope.mailFrom ? session.envelope.mailFrom.address : '';
      const to = session.envelope.rcptTo.map((r) => r.address);
      const mailArgs = (session.envelope.mailFrom && session.envelope.mailFrom.args) || {};
      const rcptArgs = session.envelope.rcptTo.map((r) => r.args || {});
      const chunks: Buffer[] = [];
      stream.on('data', (c: Buffer) => chunks.push(c));
      stream.on('end', () => {
        if (behaviour.data) return callback(failure(behaviour.data.code, behaviour.data.text));
        received.push({ from, to, raw: Buffer.concat(chunks), mailArgs, rcptArgs });
        if (behaviour.dataReplyDelayMs) setTimeout(() => callback(null, 'Ok: queued as SINK1'), behaviour.dataReplyDelayMs);
        else callback(null, 'Ok: queued as SINK1');
      });
    },
  });
  // A client killed mid-session (the crash tests) resets its connection: no reason to stop the sink.
  server.on('error', () => undefined);
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  const bound = (server.server.address() as { port: number }).port;
  return { port: bound, received, close: () => new Promise((resolve) => server.close(() => resolve())) };
}

export interface TestRelay {
  relay: RunningRelay;
  store: KeyStore;
  port: number;
  dir: string;
  /** The relay's log lines (level info and up), parsed, as they come: what a test waits for instead of time. */
  logs: Record<string, unknown>[];
  /** The TXT records the store would publish, for independent verifiers. */
  records(): TxtRecords;
  close(): Promise<void>;
}

/**
 * Starts the relay with `config` (YAML-shaped, validated by the real schema)
 * on a free port; `prepare` may add keys to the store before it starts. Its
 * rotation scheduler is off (`rotation.check: off`) unless `config.rotation`
 * says otherwise, so a test never asks the machine's resolver about DNS.
 */
export async function startTestRelay(config: Record<string, unknown>, prepare?: (store: KeyStore) => void, options: StartOptions = {}): Promise<TestRelay> {
  const dir = tempDir();
  const merged = configSchema.parse({
    ...config,
    rotation: { check: 'off', ...(config.rotation as object) },
    // Sync unless a test asks for the queue: most tests read the upstream's answer in the client's reply.
    delivery: { mode: 'sync', ...(config.delivery as object) },
    queue: { dir: join(dir.path, 'spool'), ...(config.queue as object) },
    keys: { dir: join(dir.path, 'keys') },
    listen: { port: 0, hostname: 'relay.test', ...(config.listen as object) },
    metrics: { listen: '127.0.0.1:0', ...(config.metrics as object) },
  });
  if (prepare) {
    const { SqliteKeyStore } = await import('../../src/keys/store.ts');
    const store = SqliteKeyStore.open(merged.keys.dir);
    try {
      prepare(store);
    } finally {
      store.close();
    }
  }
  const logs: Record<string, unknown>[] = [];
  const lines = new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const line of chunk.toString().split('\n')) if (line.startsWith('{')) logs.push(JSON.parse(line) as Record<string, unknown>);
      done();
    },
  });
  const relay = await startRelay({ config: merged, path: 'test' }, pino({ level: 'info' }, lines), options);
  return {
    relay,
    logs,
    store: relay.store,
    port: relay.ports.plain,
    dir: dir.path,
    records: () => Object.fromEntries(relay.store.list().map((k) => [`${k.selector}._domainkey.${k.domain}`, txtValue(k)])),
    close: async () => {
      await relay.stop();
      dir.remove();
    },
  };
}

export interface SendOptions {
  port: number;
  from: string;
  to: string[];
  raw: string | Buffer;
  tls?: boolean;
  auth?: { user: string; pass: string };
}

export type SendResult = { ok: true; response: string } | { ok: false; code: number | undefined; response: string };

/** One message over a fresh SMTP connection; resolves with the final reply either way. */
export async function send(options: SendOptions): Promise<SendResult> {
  const transport = nodemailer.createTransport({
    host: '127.0.0.1',
    port: options.port,
    secure: false,
    ignoreTLS: !options.tls,
    requireTLS: options.tls ?? false,
    tls: { rejectUnauthorized: false },
    auth: options.auth,
    logger: false,
  });
  try {
    const info = await transport.sendMail({ envelope: { from: options.from, to: options.to }, raw: options.raw });
    return { ok: true, response: info.response };
  } catch (err) {
    const e = err as { responseCode?: number; response?: string; message: string };
    return { ok: false, code: e.responseCode, response: e.response ?? e.message };
  } finally {
    transport.close();
  }
}

/** A self-signed certificate for 127.0.0.1, made with openssl, in `dir`. */
export function selfSignedCert(dir: string): { key: string; cert: string } {
  const key = join(dir, 'tls.key');
  const cert = join(dir, 'tls.crt');
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', cert, '-days', '2', '-subj', '/CN=relay.test'], {
    stdio: 'ignore',
  });
  readFileSync(cert); // throws if openssl made nothing
  return { key, cert };
}

/** Splits a message into its DKIM-Signature fields and the rest. */
export function dkimFields(raw: Buffer): string[] {
  const header = raw.toString('latin1').split('\r\n\r\n')[0]!;
  return header.split(/\r\n(?![ \t])/).filter((f) => /^dkim-signature:/i.test(f));
}
