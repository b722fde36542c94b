// The counting sink every signer under test delivers to: it takes any mail,
// counts it with its arrival time, keeps a few messages for the signature
// spot-check, and notes when each latency probe arrived. Message content is
// drained, not kept, so the sink stays cheap beside the signers it measures.
// It answers a pipelined command group in one write, as Postfix's smtpd does.
import { SMTPServer } from 'smtp-server';
import { batchPipelinedReplies } from '../src/relay/smtp-server-internals.ts';
import { PROBE_HEADER, PROBE_SENDER } from './probe.ts';
import { now, sleep } from './stats.ts';

/** The most a latency run waits for its paced load to be running; the load is made that much longer. */
export const SETTLE_SECONDS = 3;

export class CountingSink {
  count = 0;
  lastAt = NaN;
  /** The latest arrival of anything, never reset: a queueing peer may still deliver the previous run's mail. */
  lastAnyAt = NaN;
  /** Messages whose DATA began: the sample is chosen on arrival, while several are in flight. */
  private arrived = 0;
  /** Arrival time of each probe by its number. */
  readonly probes = new Map<number, number>();
  samples: Buffer[] = [];
  private keepEvery = 0;
  private keepAtMost = 0;
  private readonly server: SMTPServer;
  readonly port: number;

  private constructor(server: SMTPServer, port: number) {
    this.server = server;
    this.port = port;
  }

  static async start(): Promise<CountingSink> {
    // As Postfix's smtpd does (and the relay's listener): the replies to a pipelined MAIL, RCPT and DATA leave in
    // one write, so each signer's smart-host client reads them at once, as it would from a production upstream.
    batchPipelinedReplies();
    let sink!: CountingSink;
    const server = new SMTPServer({
      authOptional: true,
      disabledCommands: ['STARTTLS', 'AUTH'],
      size: 64 * 1024 * 1024,
      maxClients: 500,
      closeTimeout: 500,
      logger: false,
      onData(stream, session, callback) {
        const probe = session.envelope.mailFrom && session.envelope.mailFrom.address === PROBE_SENDER;
        const keep = !probe && sink.wantsSample();
        const chunks: Buffer[] = [];
        if (probe || keep) stream.on('data', (c: Buffer) => chunks.push(c));
        else stream.resume();
        stream.on('end', () => {
          const at = now();
          sink.lastAnyAt = at;
          if (probe) {
            const id = new RegExp(`^${PROBE_HEADER}: (\\d+)`, 'mi').exec(Buffer.concat(chunks).toString('latin1'));
            if (id) sink.probes.set(Number(id[1]), at);
          } else {
            sink.count++;
            sink.lastAt = at;
            if (keep) sink.samples.push(Buffer.concat(chunks));
          }
          callback(null, 'Ok: counted');
        });
      },
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    sink = new CountingSink(server, (server.server.address() as { port: number }).port);
    return sink;
  }

  /** Resolves once nothing has arrived for `quietMs` (at most `maxMs`), so that a new count starts clean. */
  async drain(quietMs = 1000, maxMs = 60_000): Promise<void> {
    const until = now() + maxMs;
    while (now() - this.lastAnyAt < quietMs && now() < until) await sleep(100);
  }

  /**
   * Resolves once a second's worth of a paced load of `rate` msg/s (probes aside) has been counted
   * since the reset, or after SETTLE_SECONDS: latency is probed at the load's steady rate, not while
   * its generator starts (a Node.js process booting, its sessions opening).
   */
  async settled(rate: number): Promise<void> {
    const until = now() + SETTLE_SECONDS * 1000;
    while (this.count < Math.ceil(rate) && now() < until) await sleep(10);
  }

  /** Starts a new count; keeps every `every`-th message, at most `atMost` of them, for the spot-check. */
  reset(every = 0, atMost = 0): void {
    this.count = 0;
    this.arrived = 0;
    this.lastAt = NaN;
    this.probes.clear();
    this.samples = [];
    this.keepEvery = every;
    this.keepAtMost = atMost;
  }

  private wantsSample(): boolean {
    this.arrived++;
    return this.keepEvery > 0 && this.arrived % this.keepEvery === 0 && this.arrived / this.keepEvery <= this.keepAtMost;
  }

  close(): Promise<void> {
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}
