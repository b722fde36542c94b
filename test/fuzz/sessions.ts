// SMTP session generators for the fuzzer. A case is one TCP session: either a
// well-behaved session carrying mutated messages, or a "chaos" session made
// of random actions (garbage, over-long lines, odd parameters, pipelined
// bursts, aborted DATA, half-closed sockets, slow senders…).
//
// Each transaction's recipients carry a tag (fz<case>t<n>q) so the checker can
// tie what the sink received back to the session and transaction that sent
// it. As long as the session is "aligned" (each command's reply read before
// the next command went out), the reply to the end of DATA is known exactly;
// after a burst, an over-long line or a timeout the client can no longer tell
// which reply answers what, and only session-wide counts are checked.
import { TLSSocket } from 'node:tls';
import { dotStuff, mutatedMessage, seedMessage, terminatorFor } from './messages.ts';
import type { Rng } from './prng.ts';
import { RawSmtpClient, type Reply } from './smtp-client.ts';

export interface Txn {
  tag: string;
  /** Recipients the relay accepted with 2xx at RCPT (aligned sessions only). */
  accepted: string[];
  /** The reply to the end of DATA when it is known for sure; null when none came. */
  final?: Reply | null;
  /** Whether `final` was read in an aligned session (so it surely answers this DATA). */
  tracked: boolean;
  /** The final "." went out (or may have, in a burst). */
  terminatorSent: boolean;
  /** The message sent, and how it was made. */
  message?: Buffer;
  steps?: string[];
  /** How long the final reply took (ms), and when it came (Date.now()). */
  ms?: number;
  endedAt?: number;
}

export interface SessionRecord {
  index: number;
  kind: 'message' | 'chaos' | 'probe';
  localAddress: string;
  /** What the session did, in order: enough to rebuild it by hand. */
  log: string[];
  txns: Txn[];
  replies: Reply[];
  malformed: string[];
  /** Every reply was read: the session ended with QUIT → 221 → server close, nothing aborted. */
  complete: boolean;
  /** The client aborted (destroy) or half-closed: a reply may have been lost on the way. */
  aborted: boolean;
  /** The client went quiet on purpose (idle, half-closed without QUIT): a 421 idle timeout is expected. */
  idleExpected: boolean;
  connectError?: string;
  /** Anything the session itself found wrong (a reply that never came when one was due…). */
  problems: string[];
  ms: number;
}

export interface SessionContext {
  port: number;
  index: number;
  rng: Rng;
  /** Upper bound for any one wait for a reply. */
  replyTimeoutMs: number;
}

/** 250 after DATA from the relay: "250 <upstream text> [<12 hex id>]". */
export const ACCEPTED_AFTER_DATA = /^250 .*\[[0-9a-f]{12}\]$/;

export function isAcceptAfterData(reply: Reply): boolean {
  return reply.code === 250 && ACCEPTED_AFTER_DATA.test(reply.raw.split('\n').at(-1) ?? '');
}

/** How long the relay must stay silent before a drain stops listening. */
const QUIET_MS = 150;

const TAG = /fz(\d+)t(\d+)q/;

function oneLine(reply: Reply): string {
  return reply.raw.replace(/\n/g, ' | ');
}

/** UTF-8 bytes as a latin1 string, to go on the wire unchanged. */
function utf8(text: string): string {
  return Buffer.from(text, 'utf8').toString('latin1');
}

/** The (case, transaction) a recipient address belongs to, if it carries a tag. */
export function tagOf(address: string): { index: number; txn: number; tag: string } | null {
  const m = TAG.exec(address);
  return m ? { index: Number(m[1]), txn: Number(m[2]), tag: m[0] } : null;
}

/** 127.0.0.1 is held by a `clients` rule to example.com/example.org; .2 is free; .3 is outside access.networks (relays only after AUTH). */
export const LOCAL_ADDRESSES = ['127.0.0.1', '127.0.0.2', '127.0.0.3'] as const;

/** The one AUTH account of the relay under test. */
export const FUZZ_USER = { name: 'fuzz', password: 'fuzz password' } as const;

const base64 = (text: string) => Buffer.from(text, 'latin1').toString('base64');

class Session {
  readonly ctx: SessionContext;
  readonly rng: Rng;
  readonly record: SessionRecord;
  client!: RawSmtpClient;
  aligned = true;
  #txn = 0;
  #started = Date.now();

  constructor(ctx: SessionContext, kind: SessionRecord['kind'], localAddress: string) {
    this.ctx = ctx;
    this.rng = ctx.rng;
    this.record = {
      index: ctx.index,
      kind,
      localAddress,
      log: [],
      txns: [],
      replies: [],
      malformed: [],
      complete: false,
      aborted: false,
      idleExpected: false,
      problems: [],
      ms: 0,
    };
  }

  log(what: string): void {
    const text = what.length > 300 ? `${what.slice(0, 300)}… (${what.length} chars)` : what;
    this.record.log.push(`${String(Date.now() - this.#started).padStart(5)} ms ${text}`);
  }

  newTag(): string {
    return `fz${this.ctx.index}t${this.#txn++}q`;
  }

  async open(earlyTalk = false): Promise<boolean> {
    try {
      this.client = await RawSmtpClient.connect({ port: this.ctx.port, localAddress: this.record.localAddress, timeoutMs: 5000 });
    } catch (err) {
      this.record.connectError = (err as Error).message;
      this.record.problems.push(`connect failed: ${(err as Error).message}`);
      return false;
    }
    if (earlyTalk) {
      this.log('early talk: EHLO before the greeting');
      await this.client.write('EHLO early.example\r\n');
      this.aligned = false;
      return true;
    }
    const greeting = await this.client.readReply(this.ctx.replyTimeoutMs);
    this.log(`<- ${greeting ? oneLine(greeting) : '(no greeting)'}`);
    if (!greeting) {
      this.record.problems.push('no greeting');
      this.aligned = false;
    }
    return true;
  }

  /** One command, one reply (aligned), or just sent (unaligned). */
  /**
   * One command and its reply. A 354 that the caller does not handle (`opensData`) answers a DATA
   * sent as a step of its own, for a transaction an earlier step left open: the client is then
   * inside a message and sends one, as a real client would; otherwise the relay, rightly, waits
   * for the rest of the message until its idle timeout.
   */
  async cmd(line: string | Buffer, opensData = false): Promise<Reply | null> {
    this.log(`-> ${typeof line === 'string' ? line : JSON.stringify(line.toString('latin1'))}`);
    if (!this.aligned) {
      await this.client.write(Buffer.concat([typeof line === 'string' ? Buffer.from(line, 'latin1') : line, Buffer.from('\r\n')]));
      return null;
    }
    const reply = await this.client.command(line, this.ctx.replyTimeoutMs);
    if (!reply) {
      this.aligned = false; // a late reply would answer the wrong command from now on
      if (!this.client.closed && !this.client.serverEnded)
        this.record.problems.push(`no reply within ${this.ctx.replyTimeoutMs} ms to ${String(line).slice(0, 80)}`);
    }
    this.log(`<- ${reply ? oneLine(reply) : '(none)'}`);
    if (reply?.code === 354 && !opensData) {
      const txn: Txn = { tag: this.newTag(), accepted: [], tracked: false, terminatorSent: false };
      this.record.txns.push(txn);
      await this.sendMessage(txn, { data: seedMessage(this.rng, 'plain'), steps: ['seed:plain after a stray DATA'] }, {});
    }
    return reply;
  }

  /** Sends raw bytes with no reply expected in step: alignment is lost unless told otherwise. */
  async raw(data: Buffer, label: string, keepAlignment = false): Promise<void> {
    this.log(`-> [${label}] ${data.length} bytes: ${JSON.stringify(data.subarray(0, 120).toString('latin1'))}`);
    if (!keepAlignment) this.aligned = false;
    await this.client.write(data);
  }

  /** Reads what the relay says until it has been quiet for a while (after raw writes). */
  drain(maxMs: number): Promise<Reply[]> {
    return this.client.drain(QUIET_MS, maxMs);
  }

  /** STARTTLS and the handshake (aligned sessions only: a late 220 could not be told apart). */
  async starttls(): Promise<void> {
    if (!this.aligned || this.client.socket instanceof TLSSocket) return;
    const reply = await this.cmd('STARTTLS');
    if (!this.aligned || reply?.code !== 220) return;
    const ok = await this.client.startTls({}, 5000);
    this.log(ok ? '.. TLS up' : '.. TLS handshake failed');
    if (!ok) {
      this.record.problems.push(`STARTTLS handshake failed: ${this.client.error?.message ?? 'no answer'}`);
      this.aligned = false;
      this.record.aborted = true;
      await this.client.destroy();
    }
  }

  /** AUTH PLAIN or LOGIN with the right, a wrong or a malformed credential. */
  async auth(right = false): Promise<void> {
    const rng = this.rng;
    const user = right
      ? FUZZ_USER.name
      : rng.weighted<string>([
          [4, FUZZ_USER.name],
          [1, 'nobody'],
          [1, utf8('bücher')],
          [1, ''],
        ]);
    const pass = right
      ? FUZZ_USER.password
      : rng.weighted<string>([
          [3, FUZZ_USER.password],
          [3, 'wrong'],
          [1, ''],
          [1, 'x'.repeat(rng.range(100, 600))],
        ]);
    const form = right
      ? 'plain'
      : rng.weighted<string>([
          [5, 'plain'],
          [3, 'login'],
          [2, 'odd'],
        ]);
    if (form === 'plain') {
      await this.cmd(`AUTH PLAIN ${base64(`\0${user}\0${pass}`)}`);
    } else if (form === 'login') {
      if ((await this.cmd('AUTH LOGIN'))?.code !== 334) return;
      if ((await this.cmd(base64(user)))?.code !== 334) return;
      await this.cmd(base64(pass));
    } else {
      const line = rng.pick([
        'AUTH PLAIN',
        'AUTH PLAIN =',
        'AUTH PLAIN !!!',
        `AUTH LOGIN ${base64(user)}`,
        'AUTH XOAUTH2 abc',
        'AUTH CRAM-MD5',
        `AUTH PLAIN ${base64(`${user}\0${pass}`)}`,
      ]);
      const reply = await this.cmd(line);
      if (reply?.code === 334) await this.cmd(rng.pick(['*', '', '!!!', base64(`\0${user}\0${pass}`)]));
    }
  }

  async sleep(ms: number): Promise<void> {
    this.log(`.. sleep ${ms} ms`);
    await new Promise((resolve) => setTimeout(resolve, ms));
  }

  async ehlo(): Promise<void> {
    const rng = this.rng;
    const line = rng.weighted<string>([
      [10, 'EHLO client.example'],
      [2, 'HELO client.example'],
      [1, 'ehlo [127.0.0.1]'],
      [1, 'EHLO'],
      [1, `EHLO ${'h'.repeat(rng.range(250, 400))}`],
      [1, 'EHLO bad_host!name'],
      [1, 'EHLO \xff\xfe'],
      [1, 'LHLO client.example'],
    ]);
    await this.cmd(line);
  }

  /** MAIL FROM with a sender that may be odd; params may be odd too. */
  mailLine(odd: boolean): string {
    const rng = this.rng;
    const sender = odd
      ? rng.pick([
          '<>',
          '<app@example.com>',
          'app@example.com',
          '< app@example.com >',
          '<@relay.example:app@example.com>',
          '<"quoted local"@example.com>',
          `<${utf8('bücher@bücher.example')}>`,
          '<b\xfccher@example.com>',
          `<${'l'.repeat(300)}@example.com>`,
          '<app@[127.0.0.1]>',
          '<app>',
          '<app@>',
          '<',
          '',
        ])
      : rng.pick(['<app@example.com>', '<bounce@example.org>', '<>', '<App@Sub.Example.Com>']);
    const params = odd
      ? rng.pick([
          '',
          ' SIZE=abc',
          ' SIZE=99999999999999999999',
          ' SIZE=-1',
          ` SIZE=${256 * 1024 + 1}`,
          ' SIZE=',
          ' SIZE',
          ' BODY=BINARYMIME',
          ' BODY=8BITMIME',
          ' BODY=7BIT',
          ' BODY=nonsense',
          ' FOO=bar',
          ' SMTPUTF8',
          ' SMTPUTF8=yes',
          ' RET=HDRS ENVID=abc',
          ' AUTH=<>',
          ' SIZE=10 SIZE=20',
          ' =',
          ' x'.repeat(200),
          ' REQUIRETLS',
        ])
      : rng.pick(['', ' SIZE=1000', ' BODY=8BITMIME', ' SMTPUTF8']);
    const verb = odd
      ? rng.pick(['MAIL FROM:', 'mail from:', 'MAIL FROM: ', 'MAIL  FROM:', 'Mail From:', 'MAIL FROM :', 'MAIL TO:'])
      : rng.pick(['MAIL FROM:', 'mail from:', 'Mail From:']);
    return `${verb}${sender}${params}`;
  }

  /**
   * RCPT TO for a tagged recipient. `line` is bytes as a latin1 string (UTF-8 already encoded);
   * `address` is what the server should make of it (invalid UTF-8 decodes to U+FFFD).
   */
  rcptLine(tag: string, n: number, odd: boolean): { line: string; address: string } {
    const rng = this.rng;
    const domain = odd
      ? rng.pick(['example.net', 'EXAMPLE.NET', utf8('bücher.example'), 'b\xfccher.example', 'xn--bcher-kva.example'])
      : rng.pick(['example.net', 'example.com', 'EXAMPLE.NET', utf8('bücher.example')]);
    const address = `${tag}${n}@${domain}`;
    const decoded = Buffer.from(address, 'latin1').toString('utf8');
    if (!odd) return { line: `RCPT TO:<${address}>`, address: decoded };
    const quoted = `"${tag}${n} x"@example.net`;
    const forms: [string, string][] = [
      [`<${address}>`, decoded],
      [address, decoded],
      [`< ${address} >`, decoded],
      [`<@hop.example:${address}>`, decoded],
      [`<${quoted}>`, quoted],
      [`<${address}> NOTIFY=NEVER`, decoded],
      [`<${address}> ORCPT=rfc822;x@y`, decoded],
      [`<${address}> FOO=bar`, decoded],
      [`<${address}> SIZE=1`, decoded],
      [`<${tag}${n}>`, `${tag}${n}`],
      [`<${address}`, decoded],
    ];
    const [form, expected] = rng.pick(forms);
    return { line: `${rng.pick(['RCPT TO:', 'rcpt to:', 'RCPT TO: ', 'RCPT  TO:'])}${form}`, address: expected };
  }

  /** MAIL, RCPT×n, DATA and a message: the final reply is tracked while aligned. */
  async transaction(options: {
    odd: boolean;
    message?: { data: Buffer; steps: string[] };
    recipients?: number;
    slow?: boolean;
    stuffing?: 'ok' | 'none';
  }): Promise<Txn> {
    const rng = this.rng;
    const txn: Txn = { tag: this.newTag(), accepted: [], tracked: false, terminatorSent: false };
    this.record.txns.push(txn);
    const mail = await this.cmd(this.mailLine(options.odd));
    const mailOk = !!mail && mail.code < 300;
    const count =
      options.recipients ??
      rng.weighted([
        [8, 1],
        [3, 2],
        [1, rng.range(3, 20)],
        [0.5, rng.range(21, 30)],
      ]);
    for (let i = 0; i < count; i++) {
      const { line, address } = this.rcptLine(txn.tag, i, options.odd && rng.chance(0.3));
      const reply = await this.cmd(line);
      if (reply && reply.code < 300) txn.accepted.push(address);
    }
    const data = await this.cmd('DATA', true);
    if (this.aligned && data && data.code !== 354) {
      // DATA refused (no MAIL/RCPT, or relaying denied): the client must not send the message.
      return txn;
    }
    await this.sendMessage(txn, options.message ?? mutatedMessage(rng), options);
    return txn;
  }

  /** The message after a 354, and its final reply while aligned. */
  async sendMessage(txn: Txn, message: { data: Buffer; steps: string[] }, options: { slow?: boolean; stuffing?: 'ok' | 'none' }): Promise<void> {
    const rng = this.rng;
    txn.message = message.data;
    txn.steps = message.steps;
    const stuffed = options.stuffing === 'none' ? message.data : dotStuff(message.data);
    const payload = Buffer.concat([stuffed, terminatorFor(stuffed)]);
    const wasAligned = this.aligned;
    const started = Date.now();
    if (options.slow) {
      const pieces = rng.range(2, 8);
      const size = Math.ceil(payload.length / pieces);
      for (let at = 0; at < payload.length; at += size) {
        await this.raw(payload.subarray(at, at + size), `slow piece at ${at}`, true);
        await this.sleep(rng.range(10, 120));
      }
    } else {
      await this.raw(payload, `message ${message.steps.join('+')}${options.stuffing === 'none' ? ' (not dot-stuffed)' : ''}`, true);
    }
    txn.terminatorSent = true;
    if (options.stuffing === 'none' && /(^|\r\n)\.\r\n/.test(message.data.toString('latin1'))) this.aligned = false; // a lone "." line ends DATA early
    if (wasAligned && this.aligned) {
      // The relay signs, self-checks and delivers before answering: allow for a slow pipeline.
      const final = await this.client.readReply(Math.max(this.ctx.replyTimeoutMs, 20_000));
      txn.final = final;
      txn.tracked = true;
      txn.endedAt = Date.now();
      txn.ms = txn.endedAt - started;
      this.log(`<- ${final ? oneLine(final) : '(no reply to the end of DATA)'} (${txn.ms} ms)`);
      if (!final) {
        this.aligned = false;
        if (!this.client.closed && !this.client.serverEnded) this.record.problems.push(`no reply to the end of DATA within 20 s (${message.steps.join('+')})`);
      }
    }
  }

  async quit(): Promise<void> {
    if (this.aligned) {
      // After a 334 the server reads the next line as AUTH data, QUIT included: cancel first (RFC 4954 §4).
      if (this.client.replies.at(-1)?.code === 334) await this.cmd('*');
      const reply = await this.cmd('QUIT');
      const closed = await this.client.waitClosed(3000);
      this.record.complete = !!reply && reply.code === 221 && closed && !this.record.aborted;
      if (!closed) {
        this.record.problems.push('the server did not close the connection within 3 s of QUIT');
        await this.client.destroy();
      }
    } else {
      // Out of step: end any partial line, end DATA if it is open (a message may go out: it is
      // accounted for like any other), then QUIT. Without this the relay would wait for its idle timeout.
      await this.raw(Buffer.from('\r\n.\r\nQUIT\r\n'), 'CRLF . QUIT');
      const closedByServer = await this.drainToClose(8000);
      this.record.complete = closedByServer && this.client.replies.at(-1)?.code === 221 && !this.record.aborted;
    }
  }

  /** Reads everything until the server closes (or the time is up, then destroys). */
  async drainToClose(ms: number): Promise<boolean> {
    const closed = await this.client.waitClosed(ms);
    if (!closed) {
      this.log(`.. server still open after ${ms} ms: destroy`);
      this.record.aborted = true;
      await this.client.destroy();
    }
    return closed;
  }

  finish(): SessionRecord {
    if (this.client) {
      this.record.replies = this.client.replies;
      this.record.malformed = this.client.malformed;
    }
    this.record.ms = Date.now() - this.#started;
    return this.record;
  }
}

function pickLocal(rng: Rng): string {
  const [restricted, free, outside] = LOCAL_ADDRESSES;
  return rng.weighted<string>([
    [6, restricted],
    [3, free],
    [1, outside],
  ]);
}

// ---- (b) mutated messages through a valid session ---------------------------

async function messageSession(ctx: SessionContext): Promise<SessionRecord> {
  const s = new Session(ctx, 'message', pickLocal(ctx.rng));
  if (await s.open()) {
    await s.ehlo();
    if (ctx.rng.chance(s.record.localAddress === LOCAL_ADDRESSES[2] ? 0.8 : 0.1)) {
      // Log in over STARTTLS, as a client from outside access.networks must.
      await s.starttls();
      await s.cmd('EHLO client.example');
      await s.auth(true);
    }
    const count = ctx.rng.weighted([
      [6, 1],
      [3, 2],
      [1, 4],
    ]);
    for (let i = 0; i < count && s.aligned; i++) {
      await s.transaction({ odd: false, slow: ctx.rng.chance(0.03) });
      if (ctx.rng.chance(0.2)) await s.cmd(ctx.rng.pick(['RSET', 'NOOP']));
    }
    await s.quit();
  }
  return s.finish();
}

// ---- (a) random and mutated SMTP sessions ----------------------------------

const MISC_COMMANDS = [
  'RSET',
  'NOOP',
  'NOOP with an argument',
  'HELP',
  'HELP MAIL',
  'VRFY postmaster',
  'VRFY',
  'EXPN staff',
  'ETRN example.com',
  'TURN',
  'STARTTLS',
  'AUTH PLAIN AHVzZXIAcGFzcw==',
  'AUTH LOGIN',
  'AUTH CRAM-MD5',
  'AUTH',
  'BDAT 10 LAST',
  'XCLIENT ADDR=1.2.3.4',
  'XFORWARD NAME=x',
  'SEND FROM:<a@b>',
  'SAML FROM:<a@b>',
  'SOML FROM:<a@b>',
  'MAIL FROM:<second@example.com>',
  'DATA',
  'QUIT now',
  'EHLO again.example',
  'HELO',
  '',
];

function garbageLine(rng: Rng): Buffer {
  return rng.weighted<() => Buffer>([
    [3, () => Buffer.from(rng.token(rng.range(1, 80)), 'latin1')],
    [2, () => Buffer.from(rng.bytes(rng.range(1, 200)).map((b) => (b === 0x0d || b === 0x0a ? 0x20 : b)))],
    [1, () => Buffer.from(`${rng.pick(['MAIL', 'RCPT', 'DATA', 'EHLO'])}${rng.token(rng.range(0, 40))}`, 'latin1')],
    [1, () => Buffer.from('\x00\x00\x00', 'latin1')],
    [1, () => Buffer.from(' ', 'latin1')],
    [1, () => Buffer.from('\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03', 'latin1')], // a TLS ClientHello's first bytes
    [1, () => Buffer.from('GET / HTTP/1.1', 'latin1')],
  ])();
}

type Action = (s: Session) => Promise<void>;

const ACTIONS: [number, string, Action][] = [
  [6, 'transaction', (s) => s.transaction({ odd: s.rng.chance(0.5) }).then(() => undefined)],
  [2, 'transaction-slow', (s) => s.transaction({ odd: false, slow: true }).then(() => undefined)],
  [
    2,
    'transaction-unstuffed',
    (s) => s.transaction({ odd: false, stuffing: 'none', message: { data: seedMessage(s.rng, 'plain'), steps: ['seed:plain'] } }).then(() => undefined),
  ],
  [1, 'too-many-recipients', (s) => s.transaction({ odd: false, recipients: s.rng.range(21, 30) }).then(() => undefined)],
  [3, 'ehlo', (s) => s.ehlo()],
  [3, 'mail', (s) => s.cmd(s.mailLine(true)).then(() => undefined)],
  [3, 'rcpt', (s) => s.cmd(s.rcptLine(s.newTag(), 0, true).line).then(() => undefined)],
  [
    4,
    'misc',
    (s) => {
      const command = s.rng.pick(MISC_COMMANDS);
      // A 220 to STARTTLS starts a TLS handshake (RFC 3207): only an aligned session can tell it came, and shake hands.
      return command === 'STARTTLS' ? s.starttls() : s.cmd(command).then(() => undefined);
    },
  ],
  [4, 'garbage', (s) => s.cmd(garbageLine(s.rng)).then(() => undefined)],
  [
    1,
    'data-without-rcpt',
    async (s) => {
      await s.cmd('RSET');
      await s.cmd('MAIL FROM:<app@example.com>');
      await s.cmd('DATA');
    },
  ],
  [
    1,
    'data-blind',
    async (s) => {
      // DATA and the message in one write, without waiting for 354: if DATA is refused, the message lines become commands.
      await s.cmd('RSET');
      const msg = seedMessage(s.rng, 'plain');
      await s.raw(Buffer.concat([Buffer.from('DATA\r\n'), dotStuff(msg), terminatorFor(msg)]), 'DATA and message blind');
      await s.drain(8000);
    },
  ],
  [
    2,
    'long-line',
    async (s) => {
      const n = s.rng.pick([2049, s.rng.range(2049, 4000), 16 * 1024, 16 * 1024 + 1, s.rng.range(16 * 1024 + 1, 70_000)]);
      const body = s.rng.pick(['MAIL FROM:<', 'NOOP ', 'X', 'RCPT TO:<']) + 'a'.repeat(n);
      const withEnd = s.rng.chance(0.8);
      await s.raw(Buffer.from(body + (withEnd ? '\r\n' : ''), 'latin1'), `line of ${n} bytes${withEnd ? '' : ' without CRLF'}`);
      await s.drain(6000);
    },
  ],
  [
    2,
    'bad-line-end',
    async (s) => {
      const end = s.rng.pick(['\n', '\r', '\n\r', '\r\r\n', '']);
      await s.raw(
        Buffer.from(`${s.rng.pick(['NOOP', 'RSET', 'EHLO x.example', 'MAIL FROM:<a@example.com>'])}${end}`, 'latin1'),
        `command ending ${JSON.stringify(end)}`,
      );
      await s.drain(3000);
    },
  ],
  [
    2,
    'burst',
    async (s) => {
      const lines: string[] = [];
      for (let i = s.rng.range(2, 40); i > 0; i--)
        lines.push(
          s.rng.pick(['NOOP', 'RSET', 'HELP', 'VRFY x', s.mailLine(s.rng.chance(0.5)), s.rcptLine(s.newTag(), 0, false).line, 'DATA', 'EHLO burst.example']),
        );
      await s.raw(Buffer.from(lines.join('\r\n') + '\r\n', 'latin1'), `burst of ${lines.length} commands`);
      await s.drain(8000);
    },
  ],
  [
    2,
    'pipelined-transaction',
    async (s) => {
      // A whole transaction in one write, as a PIPELINING client sends it (RFC 2920), message included.
      const txn: Txn = { tag: s.newTag(), accepted: [], tracked: false, terminatorSent: true };
      s.record.txns.push(txn);
      const msg = mutatedMessage(s.rng);
      txn.message = msg.data;
      txn.steps = msg.steps;
      const head =
        ['RSET', s.mailLine(false), ...Array.from({ length: s.rng.range(1, 3) }, (_, i) => s.rcptLine(txn.tag, i, false).line), 'DATA'].join('\r\n') + '\r\n';
      const stuffed = dotStuff(msg.data);
      await s.raw(Buffer.concat([Buffer.from(head, 'latin1'), stuffed, terminatorFor(stuffed)]), `pipelined transaction ${msg.steps.join('+')}`);
      await s.drain(20_000);
    },
  ],
  [
    1,
    'binary-burst',
    async (s) => {
      await s.raw(s.rng.bytes(s.rng.range(1, 5000)), 'random bytes');
      await s.drain(4000);
    },
  ],
  [1, 'sleep', (s) => s.sleep(s.rng.range(5, 150))],
  [2, 'starttls', (s) => s.starttls()],
  [2, 'auth', (s) => s.auth()],
  [
    1,
    'starttls-auth',
    async (s) => {
      await s.starttls();
      await s.ehlo();
      await s.auth(s.rng.chance(0.5));
    },
  ],
  [
    1,
    'oversized-data',
    async (s) => {
      const txn: Txn = { tag: s.newTag(), accepted: [], tracked: false, terminatorSent: false };
      s.record.txns.push(txn);
      await s.cmd('RSET');
      await s.cmd('MAIL FROM:<app@example.com>');
      const r = await s.cmd(`RCPT TO:<${txn.tag}0@example.net>`);
      if (r && r.code < 300) txn.accepted.push(`${txn.tag}0@example.net`);
      const d = await s.cmd('DATA', true);
      if (s.aligned && d?.code !== 354) return;
      const size = s.rng.range(257, 2048) * 1024;
      const line = 'o'.repeat(76) + '\r\n';
      const msg = Buffer.from('From: <app@example.com>\r\nSubject: big\r\n\r\n' + line.repeat(Math.ceil(size / line.length)), 'latin1');
      txn.message = msg.subarray(0, 200);
      txn.steps = [`oversized ${size} bytes`];
      const wasAligned = s.aligned;
      await s.raw(Buffer.concat([msg, Buffer.from('.\r\n')]), `oversized message of ${msg.length} bytes`, true);
      txn.terminatorSent = true;
      if (wasAligned) {
        txn.final = await s.client.readReply(20_000);
        txn.tracked = true;
        s.log(`<- ${txn.final ? oneLine(txn.final) : '(none)'}`);
        if (!txn.final) s.aligned = false;
        else if (txn.final.code !== 552) s.record.problems.push(`a ${msg.length}-byte message (limit 256 KiB) was answered ${txn.final.raw}, not 552`);
      }
    },
  ],
];

type Ending = (s: Session) => Promise<void>;

const ENDINGS: [number, string, Ending][] = [
  [10, 'quit', (s) => s.quit()],
  [
    2,
    'destroy',
    async (s) => {
      s.log('.. destroy');
      s.record.aborted = true;
      await s.client.destroy();
    },
  ],
  [
    0.5,
    'half-close',
    async (s) => {
      s.log('.. half-close');
      s.record.aborted = true;
      s.record.idleExpected = true;
      s.client.halfClose();
      await s.drainToClose(7000);
    },
  ],
  [
    3,
    'abort-mid-data',
    async (s) => {
      await s.cmd('RSET');
      const tag = s.newTag();
      await s.cmd('MAIL FROM:<app@example.com>');
      await s.cmd(`RCPT TO:<${tag}0@example.net>`);
      const d = await s.cmd('DATA', true);
      const msg = dotStuff(mutatedMessage(s.rng).data);
      const cut = msg.subarray(0, s.rng.int(msg.length + 1));
      await s.raw(cut, `first ${cut.length} of ${msg.length} message bytes (DATA said ${d?.code ?? '?'})`);
      s.record.aborted = true;
      if (s.rng.chance(0.8)) {
        s.log('.. destroy mid-DATA');
        await s.client.destroy();
      } else {
        s.log('.. half-close mid-DATA');
        s.record.idleExpected = true;
        s.client.halfClose();
        await s.drainToClose(7000);
      }
    },
  ],
  [
    1,
    'terminator-then-destroy',
    async (s) => {
      // The whole message and its "." go out, and the client leaves before the reply: delivered or not, never twice.
      const txn: Txn = { tag: s.newTag(), accepted: [], tracked: false, terminatorSent: false };
      s.record.txns.push(txn);
      await s.cmd('RSET');
      await s.cmd('MAIL FROM:<app@example.com>');
      await s.cmd(`RCPT TO:<${txn.tag}0@example.net>`);
      const d = await s.cmd('DATA', true);
      if (s.aligned && d?.code !== 354) return s.quit();
      const msg = seedMessage(s.rng, 'plain');
      await s.raw(Buffer.concat([dotStuff(msg), terminatorFor(msg)]), 'message and terminator');
      txn.terminatorSent = true;
      s.record.aborted = true;
      if (s.rng.chance(0.5)) await s.sleep(s.rng.range(0, 30));
      s.log('.. destroy before the reply');
      await s.client.destroy();
    },
  ],
];

async function chaosSession(ctx: SessionContext): Promise<SessionRecord> {
  const rng = ctx.rng;
  const s = new Session(ctx, 'chaos', pickLocal(rng));
  const earlyTalk = rng.chance(0.02);
  if (!(await s.open(earlyTalk))) return s.finish();
  if (earlyTalk) {
    await s.drain(3000);
    await s.drainToClose(3000);
    return s.finish();
  }
  if (rng.chance(0.001)) {
    // Idle past socketTimeoutSeconds (5 s): the relay must say 421 and hang up by itself.
    s.log('.. idle 7 s');
    s.record.idleExpected = true;
    const closed = await s.client.waitClosed(7000);
    if (!closed) {
      s.record.problems.push('idle session not closed by the relay within 7 s (socketTimeoutSeconds is 5)');
      await s.client.destroy();
    }
    return s.finish();
  }
  if (rng.chance(0.9)) await s.ehlo();
  const count = rng.range(1, 12);
  for (let i = 0; i < count && !s.client.closed; i++) {
    const [, name, action] = rng.weighted(ACTIONS.map((a) => [a[0], a] as const));
    s.log(`== ${name}`);
    await action(s);
  }
  if (s.client.closed) {
    s.log('.. the server closed the connection');
    return s.finish();
  }
  const [, name, ending] = rng.weighted(ENDINGS.map((e) => [e[0], e] as const));
  s.log(`== end: ${name}`);
  await ending(s);
  return s.finish();
}

/** One fuzz case: ~45 % mutated-message sessions, ~55 % chaos sessions. */
export function runCase(ctx: SessionContext): Promise<SessionRecord> {
  return ctx.rng.chance(0.45) ? messageSession(ctx) : chaosSession(ctx);
}

/** A plain valid session that must succeed: the liveness probe run after every batch. */
export async function probeSession(port: number, index: number, rng: Rng): Promise<SessionRecord> {
  const s = new Session({ port, index, rng, replyTimeoutMs: 10_000 }, 'probe', '127.0.0.2');
  if (await s.open()) {
    await s.cmd('EHLO probe.example');
    await s.transaction({ odd: false, recipients: 1, message: { data: seedMessage(rng, 'plain', 'probe@example.com'), steps: ['probe'] } });
    await s.quit();
  }
  return s.finish();
}
