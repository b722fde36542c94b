// Smart hosts that misbehave while the relay has mail for them: the relay
// takes the load (queue mode), defers what the host did not take, and
// delivers it once the host behaves.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { verifyWithDkimpy } from '../../helpers/independent-verify.ts';
import { runLoad, type Outcome } from '../support/load.ts';
import { describeReplies, everyAcceptedDelivered, logLines, relayAndHost, stillUp, type CaseContext } from '../support/kit.ts';
import { cli, eventually, metricsText, metricValue } from '../support/relay.ts';
import type { Served } from '../../cli/support.ts';
import { queuedMessages } from '../../helpers/queued.ts';

const LOAD = { count: 50, sessions: 5 };
const DEFERRED = 'dkim_relay_messages_deferred_total{domain="example.com"}';

/** The reply of the first deferral the relay logged, e.g. "451 4.4.1 Upstream unavailable: read ECONNRESET (…)". */
async function deferralNamed(relay: Served, pattern: RegExp): Promise<string> {
  const replies = () => logLines(relay, '"recipient deferred"').map((l) => String(l.reply));
  const reply = await eventually(`a deferral whose reply matches ${pattern}`, 30_000, () => replies().find((r) => pattern.test(r)), relay).catch(
    (err: Error) => {
      throw new Error(`${err.message}; deferrals: ${replies().slice(0, 3).join(' | ')}`);
    },
  );
  assert.ok(metricValue(await metricsText(relay), DEFERRED) > 0, 'the deferrals are counted in dkim_relay_messages_deferred_total');
  return reply.replace(/ \(delivery\.upstream[^)]*\)/, '');
}

/** The common course: load while the host misbehaves, wait for `faults` of its faults, then let it behave. */
async function misbehaveThenRecover(ctx: CaseContext, behaviour: 'reset-after-dot' | 'silent' | 'greet-421' | 'slow', faults: number, reason: RegExp) {
  const { relay, host } = await relayAndHost(ctx, {}, behaviour);
  const outcomes = await runLoad({ port: relay.port(), tag: behaviour, ...LOAD });
  await host.until(() => host.counts.faults >= faults, 60_000, `${faults} faults of the smart host`);
  const reply = await deferralNamed(relay, reason);
  stillUp(relay);
  host.behaviour = 'accept';
  host.dropAll();
  await everyAcceptedDelivered(ctx, host, outcomes);
  stillUp(relay);
  return { relay, host, outcomes, reply };
}

export async function resetAfterDot(ctx: CaseContext): Promise<void> {
  const { host, outcomes, reply } = await misbehaveThenRecover(ctx, 'reset-after-dot', 10, /ECONNRESET/);
  ctx.row.does = `defers each message whose reply never came (\`${reply}\`), sends it again later (${host.counts.faults} resets)`;
  ctx.row.sees = describeReplies(outcomes);
}

export async function neverGreets(ctx: CaseContext): Promise<void> {
  const { outcomes, reply } = await misbehaveThenRecover(ctx, 'silent', 3, /timeout|timed out|greeting/i);
  ctx.row.does = `gives up after \`delivery.upstream.timeoutSeconds\` and defers (\`${reply}\`)`;
  ctx.row.sees = describeReplies(outcomes);
}

export async function greets421(ctx: CaseContext): Promise<void> {
  const { outcomes, reply } = await misbehaveThenRecover(ctx, 'greet-421', 3, /421/);
  ctx.row.does = `defers (\`${reply}\`) and retries`;
  ctx.row.sees = describeReplies(outcomes);
}

export async function oneByteASecond(ctx: CaseContext): Promise<void> {
  const { outcomes, reply } = await misbehaveThenRecover(ctx, 'slow', 1, /timeout|timed out|greeting/i);
  ctx.row.does = `intake goes on; the trickled session runs out of \`delivery.upstream.timeoutSeconds\` and the message is deferred (\`${reply}\`)`;
  ctx.row.sees = describeReplies(outcomes);
}

const hasEightBit = (raw: Buffer) => raw.some((b) => b > 0x7f);

export async function drops8BitMime(ctx: CaseContext): Promise<void> {
  // The host announces 8BITMIME at intake and holds the mail (451 at MAIL) …
  const { relay, host, config } = await relayAndHost(ctx, {}, 'defer');
  host.eightBitMime = true;
  const outcomes: Outcome[] = await runLoad({ port: relay.port(), tag: '8bit', eightBit: true, ...LOAD });
  await host.until(() => host.counts.connections >= 2, 30_000, 'a delivery attempt');
  const spooled = queuedMessages(join(ctx.dir, 'spool'));
  assert.ok(spooled.length > 0 && spooled.every((m) => hasEightBit(m.octets)), 'the queue holds the mail 8-bit, as signed for a host with 8BITMIME');
  // … then comes back without it.
  host.eightBitMime = false;
  host.behaviour = 'accept';
  host.dropAll();
  await everyAcceptedDelivered(ctx, host, outcomes);
  stillUp(relay);
  const eightBit = host.received.filter((m) => hasEightBit(m.raw) || m.body === '8BITMIME');
  assert.equal(
    eightBit.length,
    0,
    `${eightBit.length} of ${host.received.length} messages were sent 8-bit to a host that did not announce 8BITMIME (RFC 6152)`,
  );
  const dns = await cli(['keys', 'dns', '--format', 'json'], config, ctx.dir);
  const records = Object.fromEntries((JSON.parse(dns.stdout) as { name: string; value: string }[]).map((r) => [r.name.replace(/\.$/, ''), r.value]));
  for (const m of host.received.slice(0, 5))
    assert.ok((await verifyWithDkimpy(m.raw, records)).every(Boolean), `dkimpy verifies the re-encoded ${m.messageId}`);
  ctx.row.does = 'mail queued 8-bit (the host announced 8BITMIME at intake) is re-encoded to 7-bit and signed again at delivery; dkimpy verifies what arrives';
  ctx.row.sees = describeReplies(outcomes);
}
