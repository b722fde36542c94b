// What a fault case works with: its folder, its row, and the common ending
// (every message answered 250 delivered exactly once).
import assert from 'node:assert/strict';
import { join } from 'node:path';
import type { Served } from '../../cli/support.ts';
import { tempDir } from '../../helpers/tmp.ts';
import { replyCounts, type Outcome } from './load.ts';
import { settle, startRelay, writeConfig, type RelaySetup } from './relay.ts';
import type { FaultRow } from './rows.ts';
import { startSmartHost, type HostBehaviour, type SmartHost } from './smart-host.ts';

export interface CaseContext {
  dir: string;
  row: Pick<FaultRow, 'does' | 'sees' | 'accepted' | 'lost' | 'duplicates'>;
  /** Things to stop at the end, last first. */
  cleanup: (() => unknown)[];
  /** Every relay the case started, for the report of a failure. */
  relays: Served[];
}

export function newContext(): CaseContext {
  return { dir: tempDir('dkim-relay-fault-'), row: { does: '', sees: '', accepted: null, lost: null, duplicates: null }, cleanup: [], relays: [] };
}

/** A smart host and the relay in front of it, both stopped at the end of the case. */
export async function relayAndHost(
  ctx: CaseContext,
  extra: RelaySetup['extra'] = {},
  behaviour: HostBehaviour = 'accept',
): Promise<{ relay: Served; host: SmartHost; config: string }> {
  const host = await startSmartHost('127.0.0.1', behaviour);
  ctx.cleanup.push(() => host.close());
  const config = join(ctx.dir, 'relay.yaml');
  writeConfig(config, { dir: ctx.dir, upstreamPort: host.port, extra });
  const relay = await startRelay(config, ctx.dir);
  ctx.relays.push(relay);
  ctx.cleanup.push(() => relay.kill());
  return { relay, host, config };
}

/** "250 ×47, 452 ×3" */
export function describeReplies(outcomes: Outcome[]): string {
  return Object.entries(replyCounts(outcomes))
    .map(([code, n]) => `${code === 'none' ? 'no reply' : code} ×${n}`)
    .join(', ');
}

/** The first full reply text with this code, e.g. "452 4.3.1 Insufficient system storage, try again later". */
export function replyText(outcomes: Outcome[], code: string): string | undefined {
  return outcomes
    .find((o) => o.reply.startsWith(code))
    ?.reply.split('\n')
    .at(-1);
}

/**
 * Every message answered 250 reaches the host exactly once: waits for them
 * (at most `ms`), writes the counts into the row, fails on any loss.
 */
export async function everyAcceptedDelivered(ctx: CaseContext, host: SmartHost, outcomes: Outcome[], ms = 30_000): Promise<void> {
  const tally = await settle(host, outcomes, ms);
  ctx.row.accepted = tally.accepted;
  ctx.row.lost = tally.lost.length;
  ctx.row.duplicates = tally.duplicates;
  assert.deepEqual(tally.lost, [], `${tally.lost.length} of ${tally.accepted} messages answered 250 never reached the smart host`);
}

/** Messages the host received without a DKIM-Signature of example.com (the demo domain every load writes as). */
export function unsigned(host: SmartHost): string[] {
  const header = (raw: Buffer) => raw.toString('latin1').split('\r\n\r\n')[0]!;
  return host.received.filter((m) => !/^DKIM-Signature:[^]*?\bd=example\.com;/im.test(header(m.raw))).map((m) => m.messageId);
}

/** The process is still running. */
export function stillUp(relay: Served): void {
  assert.equal(relay.child.exitCode, null, `the relay exited (${relay.child.exitCode}):\n${relay.output().slice(-3000)}`);
  assert.equal(relay.child.signalCode, null, `the relay was killed by ${relay.child.signalCode}`);
}

/** The relay's JSON log lines whose message contains `text`. */
export function logLines(relay: Served, text: string): Record<string, unknown>[] {
  return relay
    .output()
    .split('\n')
    .filter((l) => l.startsWith('{') && l.includes(text))
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}
