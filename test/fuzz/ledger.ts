// The fuzzer's bookkeeping: what each session saw (replies, 250s after DATA)
// against what the sink received, tied together by the recipient tags.
// "Never lies": a 250 after DATA means exactly one message reached the sink;
// a refusal means none did; a session that read every reply has exactly as
// many messages at the sink as 250s; every reply line is well-formed.
import { domainToASCII } from 'node:url';
import type { Received } from '../helpers/relay-harness.ts';
import { isAcceptAfterData, tagOf, type SessionRecord } from './sessions.ts';

/** The invariants, by the name failures are reported under. */
export const INVARIANT = {
  acceptText: 'a 2xx after DATA is the relay accepting a delivered message',
  recipients: 'a delivered message goes to exactly the accepted recipients',
  refusedNotDelivered: 'a refused message is not delivered',
  accepted250: 'every 250 after DATA corresponds to a message at the sink',
  attributed: 'every delivered message was sent by a session',
  wellFormed: 'every reply is a well-formed SMTP reply line',
  memory: 'memory does not grow without bound',
  descriptors: 'no descriptor leak',
  internalError: 'no internal error (exception in the pipeline)',
  noUncaught: 'no uncaught exception or unhandled rejection',
  once: 'one transaction is delivered at most once',
  fuzzer: 'the fuzz client itself works',
  answersInTime: 'the relay answers every command in time',
  alive: 'the relay keeps answering a fresh valid session',
  selfCheck: 'the relay signs what it accepts so that its own check passes',
  loopStall: 'no message stalls the event loop (every other session waits meanwhile)',
} as const;

export interface Failure {
  invariant: string;
  /** The case to replay with FUZZ_ONLY (absent for run-wide failures). */
  index?: number;
  detail: string;
  /** The session's log, trimmed. */
  log?: string[];
}

interface TxnSummary {
  txn: number;
  tracked: boolean;
  final: { code: number; text: string } | null | undefined;
  accepted: string[];
  steps?: string[];
  head?: string;
}

interface CaseSummary {
  index: number;
  kind: string;
  accept250: number;
  complete: boolean;
  aborted: boolean;
  txns: TxnSummary[];
}

export interface Stats {
  sessions: number;
  replies: number;
  accepted250: number;
  sinkMessages: number;
  /** Final replies to DATA by code and text (ids stripped), for the summary. */
  finals: Map<string, number>;
  /** The slowest replies to the end of DATA (ms, what), slowest first. */
  slowest: [number, string][];
}

/** The address as the sink would spell it, for comparing recipient sets. */
function normalizeAddress(address: string): string {
  const at = address.lastIndexOf('@');
  if (at < 0) return address.toLowerCase();
  return `${address.slice(0, at).toLowerCase()}@${domainToASCII(address.slice(at + 1).toLowerCase()) || address.slice(at + 1).toLowerCase()}`;
}

/** Invariants reported as pipeline findings rather than failures. */
const FINDINGS = new Set<string>([INVARIANT.internalError, INVARIANT.selfCheck]);

/** Failures kept in full per invariant; the rest are only counted. */
const KEPT_PER_INVARIANT = 25;

function trimLog(log: string[]): string[] {
  return log.length > 60 ? [...log.slice(0, 25), `… ${log.length - 50} more steps …`, ...log.slice(-25)] : log;
}

export class Ledger {
  /** Failures kept in full (at most KEPT_PER_INVARIANT per invariant; `counts` has them all). */
  readonly failures: Failure[] = [];
  /** Replies that said "internal error" or "self-check failed": bugs in the pipeline, kept apart. */
  readonly findings: Failure[] = [];
  /** How many failures and findings each invariant had, kept or not. */
  readonly counts = new Map<string, number>();
  readonly stats: Stats = { sessions: 0, replies: 0, accepted250: 0, sinkMessages: 0, finals: new Map(), slowest: [] };
  #seen = new Set<string>();
  /** case → txn → recipient lists of the messages delivered for it (open cases only). */
  #delivered = new Map<number, Map<number, string[][]>>();
  #summaries = new Map<number, CaseSummary>();
  #logs = new Map<number, string[]>();
  /** Cases accounted for and forgotten: a delivery for one of them came too late to be checked. */
  #closedBelow = -1;
  #closed = new Set<number>();
  /** Slow DATA replies with their wall-clock window, to name the message behind an event-loop stall. */
  #slowWindows: { start: number; end: number; size: number; what: string }[] = [];

  /** Failures (not findings), kept or only counted. */
  get failureCount(): number {
    let n = 0;
    for (const [invariant, count] of this.counts) if (!FINDINGS.has(invariant)) n += count;
    return n;
  }

  /** Findings, kept or only counted. */
  get findingCount(): number {
    let n = 0;
    for (const [invariant, count] of this.counts) if (FINDINGS.has(invariant)) n += count;
    return n;
  }

  fail(failure: Failure, list: Failure[] = this.failures): void {
    const key = `${failure.invariant}|${failure.index ?? ''}|${failure.detail}`;
    if (this.#seen.has(key)) return;
    const count = (this.counts.get(failure.invariant) ?? 0) + 1;
    this.counts.set(failure.invariant, count);
    if (count > KEPT_PER_INVARIANT) return; // counted, not kept: a long run stays within bounded memory
    this.#seen.add(key);
    list.push(failure);
  }

  /** Takes the sink's new messages into account and empties its list (the sink would otherwise keep every message). */
  ingestSink(received: Received[]): void {
    for (const message of received.splice(0, received.length)) {
      this.stats.sinkMessages++;
      const tags = message.to.map(tagOf).filter((t) => t !== null);
      if (tags.length === 0) {
        this.fail({
          invariant: INVARIANT.attributed,
          detail: `the sink got a message for ${JSON.stringify(message.to)} from ${JSON.stringify(message.from)} that no session tagged`,
        });
        continue;
      }
      // A client that ignores a 503 to its MAIL adds its RCPTs to the transaction still open,
      // so one message may carry several transactions' tags: it belongs to the latest,
      // the one whose DATA it answered.
      const index = tags[0]!.index;
      const txn = Math.max(...tags.map((t) => t.txn));
      if (tags.some((t) => t.index !== index)) {
        this.fail({ invariant: INVARIANT.attributed, index, detail: `one message carries recipients of several sessions: ${JSON.stringify(message.to)}` });
      }
      if (index <= this.#closedBelow || this.#closed.has(index)) {
        this.fail({
          invariant: INVARIANT.refusedNotDelivered,
          index,
          detail: `a message for t${txn} reached the sink long after its session ended and was accounted for (two batches later)`,
        });
        continue;
      }
      let byTxn = this.#delivered.get(index);
      if (!byTxn) this.#delivered.set(index, (byTxn = new Map()));
      const list = byTxn.get(txn) ?? [];
      list.push(message.to);
      byTxn.set(txn, list);
    }
  }

  /** Checks what can be checked from the session alone, and keeps a compact summary for the accounting. */
  addSession(record: SessionRecord): void {
    this.stats.sessions++;
    this.stats.replies += record.replies.length;
    const log = trimLog(record.log);
    const accept250 = record.replies.filter(isAcceptAfterData).length;
    this.stats.accepted250 += accept250;
    for (const line of record.malformed) this.fail({ invariant: INVARIANT.wellFormed, index: record.index, detail: line, log });
    for (const problem of record.problems)
      this.fail({ invariant: record.kind === 'probe' ? INVARIANT.alive : INVARIANT.answersInTime, index: record.index, detail: problem, log });
    for (const reply of record.replies) {
      const last = reply.raw.split('\n').at(-1) ?? '';
      if (reply.code === 421 && /timeout/i.test(last) && !record.idleExpected) {
        this.fail({
          invariant: INVARIANT.answersInTime,
          index: record.index,
          detail: `the relay hit its idle timeout (${last}) while the client was waiting for a reply: it stopped reading or answering commands`,
          log,
        });
      }
      if (/Local error while processing/.test(last)) {
        this.fail({ invariant: INVARIANT.internalError, index: record.index, detail: last, log }, this.findings);
      }
      if (/self-check failed/.test(last)) {
        this.fail({ invariant: INVARIANT.selfCheck, index: record.index, detail: last, log }, this.findings);
      }
    }
    const txns: TxnSummary[] = record.txns.map((t) => {
      const txn = tagOf(t.tag)!.txn;
      const final = t.final ? { code: t.final.code, text: t.final.raw.split('\n').at(-1) ?? '' } : t.final;
      if (t.tracked && final) {
        const key = `${final.code} ${final.text
          .slice(4)
          .replace(/\[[0-9a-f]{12}\]$/, '[id]')
          .replace(/\d+ octets/, 'N octets')
          .replace(/(Malformed header|Cannot sign|not send as|DKIM key for|Header too large|Too many header fields).*/, '$1 …')
          .slice(0, 90)}`;
        const bucket = this.stats.finals.has(key) || this.stats.finals.size < 200 ? key : '(other replies)';
        this.stats.finals.set(bucket, (this.stats.finals.get(bucket) ?? 0) + 1);
        const ms = t.ms ?? 0;
        if (ms >= 300 && t.endedAt !== undefined) {
          this.#slowWindows.push({
            start: t.endedAt - ms,
            end: t.endedAt,
            size: t.message?.length ?? 0,
            what: `case ${record.index} t${txn}: ${t.steps?.join('+')} (${t.message?.length ?? '?'} bytes) → ${final.text.slice(0, 60)}`,
          });
          if (this.#slowWindows.length > 2000) this.#slowWindows.splice(0, 1000);
        }
        const slowest = this.stats.slowest;
        if (slowest.length < 5 || ms > slowest[slowest.length - 1]![0]) {
          slowest.push([ms, `case ${record.index}: ${t.steps?.join('+')} (${t.message?.length ?? '?'} bytes) → ${final.text.slice(0, 70)}`]);
          slowest.sort((a, b) => b[0] - a[0]);
          slowest.length = Math.min(slowest.length, 5);
        }
        if (final.code >= 200 && final.code < 300 && !isAcceptAfterData(t.final!)) {
          this.fail({ invariant: INVARIANT.acceptText, index: record.index, detail: `unexpected 2xx after DATA: ${final.text}`, log });
        }
      }
      return {
        txn,
        tracked: t.tracked,
        final,
        accepted: t.accepted,
        steps: t.steps,
        head: t.message ? JSON.stringify(t.message.subarray(0, 160).toString('latin1')) : undefined,
      };
    });
    const summary: CaseSummary = { index: record.index, kind: record.kind, accept250, complete: record.complete, aborted: record.aborted, txns };
    this.#summaries.set(record.index, summary);
    this.#logs.set(record.index, log);
    if (record.kind === 'probe') {
      const ok = txns.length === 1 && txns[0]!.final && isAcceptAfterData({ code: txns[0]!.final.code, lines: [], raw: txns[0]!.final.text });
      if (!ok)
        this.fail({
          invariant: INVARIANT.alive,
          index: record.index,
          detail: `probe got ${txns[0]?.final ? txns[0].final.text : 'no final reply'}${record.connectError ? ` (connect: ${record.connectError})` : ''}`,
          log,
        });
    }
  }

  /** The sink-side accounting of the given cases (all when omitted); the logs of checked cases are dropped. */
  account(indexes?: Iterable<number>): void {
    for (const index of indexes ?? [...this.#summaries.keys()]) {
      const summary = this.#summaries.get(index);
      if (!summary) continue;
      const log = this.#logs.get(index);
      const byTxn = this.#delivered.get(index) ?? new Map<number, string[][]>();
      let delivered = 0;
      for (const [txn, list] of byTxn) {
        delivered += list.length;
        if (list.length > 1) this.fail({ invariant: INVARIANT.once, index, detail: `transaction t${txn} reached the sink ${list.length} times`, log });
      }
      if (summary.accept250 > delivered) {
        this.fail({ invariant: INVARIANT.accepted250, index, detail: `${summary.accept250} × 250 after DATA, but ${delivered} message(s) at the sink`, log });
      }
      if (summary.complete && delivered > summary.accept250) {
        this.fail({
          invariant: INVARIANT.refusedNotDelivered,
          index,
          detail: `every reply was read and there were ${summary.accept250} × 250 after DATA, but ${delivered} message(s) at the sink`,
          log,
        });
      }
      // A transaction whose own MAIL and RCPTs were refused can still have its DATA
      // accepted, for the transaction an earlier step left open (a MAIL, then RCPTs
      // sent as steps of their own): that message carries only earlier tags, and
      // belongs to this DATA.
      const acceptedTxns = new Set(
        summary.txns.filter((t) => t.tracked && t.final && isAcceptAfterData({ code: t.final.code, lines: [], raw: t.final.text })).map((t) => t.txn),
      );
      // Only tags of no transaction of their own (RCPTs sent as steps): a refused transaction's message stays a failure.
      const ownTxns = new Set(summary.txns.map((t) => t.txn));
      const borrowed = new Set<number>();
      const unclaimed = (before: number) => [...byTxn.keys()].filter((k) => k < before && !ownTxns.has(k) && !borrowed.has(k)).sort((a, b) => b - a)[0];
      for (const t of summary.txns) {
        if (!t.tracked || !t.final) continue;
        let got = byTxn.get(t.txn) ?? [];
        const earlier = got.length === 0 && acceptedTxns.has(t.txn) ? unclaimed(t.txn) : undefined;
        if (earlier !== undefined) {
          got = byTxn.get(earlier)!;
          borrowed.add(earlier);
        }
        const what = `t${t.txn} (${t.steps?.join('+') ?? ''}), answered "${t.final.text}"`;
        if (isAcceptAfterData({ code: t.final.code, lines: [], raw: t.final.text })) {
          if (got.length !== 1) this.fail({ invariant: INVARIANT.accepted250, index, detail: `${what}: ${got.length} message(s) at the sink`, log });
          else {
            const want = [...new Set(t.accepted.map(normalizeAddress))].sort();
            // Recipients of this session's earlier transactions that were still open are part of it too.
            const own = got[0]!.filter((address) => (tagOf(address)?.txn ?? t.txn) >= t.txn);
            const have = [...new Set(own.map(normalizeAddress))].sort();
            if (want.join(',') !== have.join(',')) {
              this.fail({
                invariant: INVARIANT.recipients,
                index,
                detail: `${what}: RCPT accepted ${JSON.stringify(want)}, the sink got ${JSON.stringify(have)}`,
                log,
              });
            }
          }
        } else if (got.length > 0) {
          this.fail({ invariant: INVARIANT.refusedNotDelivered, index, detail: `${what}, yet it reached the sink; message starts ${t.head ?? '?'}`, log });
        }
      }
    }
  }

  /** Forgets cases for good once accounted for (again): a delivery for them later is itself a failure. */
  close(indexes: Iterable<number>): void {
    for (const index of indexes) {
      this.#summaries.delete(index);
      this.#logs.delete(index);
      this.#delivered.delete(index);
      this.#closed.add(index);
    }
    // Cases run in order, so the closed set collapses into a watermark.
    while (this.#closed.has(this.#closedBelow + 1)) this.#closed.delete(++this.#closedBelow);
  }

  /** The slow DATA transactions that were under way across [start, end], largest message first: the stall's likely cause among them. */
  suspectsOf(start: number, end: number): string[] {
    return this.#slowWindows
      .filter((w) => w.start <= start + 50 && w.end >= end - 50)
      .sort((a, b) => b.size - a.size)
      .slice(0, 4)
      .map((w) => w.what);
  }
}
