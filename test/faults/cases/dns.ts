// Resolvers that fail while the rotation scheduler asks them every second
// (DNS observation and DMARC readiness) and mail flows: each failure is a
// temporary error naming the server (`unreachable`), never the end of the relay.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startDnsServer } from '../../helpers/dns-server.ts';
import { runLoad } from '../support/load.ts';
import { describeReplies, everyAcceptedDelivered, relayAndHost, stillUp, type CaseContext } from '../support/kit.ts';
import { eventually, metricLines, metricsText, ports } from '../support/relay.ts';
import type { Served } from '../../cli/support.ts';

const EVERY_SECOND = '{check: "* * * * * *"}';
const LOAD = { count: 50, sessions: 5 };

/** Load while the scheduler runs its passes against `server`; the server must be named unreachable. */
async function underLoad(ctx: CaseContext, extra: Record<string, string>, server: string): Promise<{ relay: Served; detail: string }> {
  const { relay, host } = await relayAndHost(ctx, { rotation: EVERY_SECOND, ...extra });
  const load = runLoad({ port: relay.port(), tag: 'dns', ...LOAD });
  // Each pass observes the demo key at every resolver; a failed lookup is "unreachable" for that server.
  await eventually(
    `dkim_relay_dns_state for ${server} unreachable`,
    30_000,
    async () => metricLines(await metricsText(relay), 'dkim_relay_dns_state', `server="${server}"`, 'state="unreachable"').some((l) => l.endsWith(' 1')),
    relay,
  );
  const outcomes = await load;
  stillUp(relay);
  await everyAcceptedDelivered(ctx, host, outcomes);
  stillUp(relay);
  ctx.row.sees = describeReplies(outcomes);
  const status = await statusDetail(relay, server);
  assert.ok(status, `the status page shows ${server} unreachable`);
  const detail = `\`unreachable\` in \`dkim_relay_dns_state\` and on the status page: "${status.replaceAll(server, 'the server').replace(/^the server unreachable /, '')}"`;
  return { relay, detail };
}

/** What the status page says about the server: "<server> unreachable <why>", its badge and the detail after it, as text. */
async function statusDetail(relay: Served, server: string): Promise<string | undefined> {
  const page = await (await fetch(`http://127.0.0.1:${ports(relay).metrics}/`)).text();
  const at = page.indexOf(`${server} unreachable`);
  if (at < 0) return undefined;
  const end = page.indexOf('</span>', page.indexOf('muted', at));
  return page
    .slice(at, end)
    .replace(/<[^>]+>/g, '')
    .replace(/\s+/g, ' ')
    .trim();
}

export async function noRoute(ctx: CaseContext): Promise<void> {
  // The system resolver is one this namespace has no route to (as an IPv6 resolver on an IPv4-only host).
  const resolvConf = join(ctx.dir, 'resolv.conf');
  writeFileSync(resolvConf, 'nameserver 192.0.2.53\n');
  execFileSync('mount', ['--bind', resolvConf, '/etc/resolv.conf']);
  ctx.cleanup.push(() => execFileSync('umount', ['/etc/resolv.conf']));
  const { detail } = await underLoad(ctx, {}, '192.0.2.53:53');
  ctx.row.does = `keeps running; the resolver is ${detail}`;
}

export async function silent(ctx: CaseContext): Promise<void> {
  const dns = await startDnsServer();
  dns.mode = 'silent';
  ctx.cleanup.push(() => dns.close());
  const { detail } = await underLoad(ctx, { dns: `{timeoutSeconds: 1, resolvers: ["${dns.address}"]}` }, dns.address);
  ctx.row.does = `keeps running; after \`dns.timeoutSeconds\` the resolver is ${detail}`;
}

/** A UDP server that answers every query with `answer(query)`; nothing listens on its TCP port. */
async function udpServer(ctx: CaseContext, answer: (query: Buffer) => Buffer): Promise<string> {
  const socket = createSocket('udp4');
  await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
  socket.on('message', (query, peer) => socket.send(answer(query), peer.port, peer.address));
  ctx.cleanup.push(() => socket.close());
  return `127.0.0.1:${socket.address().port}`;
}

export async function garbage(ctx: CaseContext): Promise<void> {
  // The query's id, then bytes that are no DNS message.
  const server = await udpServer(ctx, (query) =>
    Buffer.concat([query.subarray(0, 2), Buffer.from([0x81, 0x80, 0xff, 0xff, 0, 9]), Buffer.from('garbage, not a DNS answer')]),
  );
  const { detail } = await underLoad(ctx, { dns: `{timeoutSeconds: 1, resolvers: ["${server}"]}` }, server);
  ctx.row.does = `keeps running; the resolver is ${detail}`;
}

export async function truncated(ctx: CaseContext): Promise<void> {
  // The question back with QR and TC set and no answers: "ask again over TCP", where nothing listens.
  const server = await udpServer(ctx, (query) => {
    const reply = Buffer.from(query);
    reply.writeUInt16BE(0x8000 | 0x0200 | (query.readUInt16BE(2) & 0x0100), 2);
    return reply;
  });
  const { detail } = await underLoad(ctx, { dns: `{timeoutSeconds: 1, resolvers: ["${server}"]}` }, server);
  ctx.row.does = `keeps running; the resolver is ${detail}`;
}
