// Measures how fast one attacker can try passwords over SMTP AUTH (not a test):
//   node_modules/.bin/node test/relay/measure-auth-rate.ts [seconds]
// It starts the relay in-process (AUTH allowed in clear, so the figure is AUTH
// alone, not TLS), then for each scenario counts the passwords the relay
// actually checked (535 replies) per second.
import { hashPassword } from '../../src/access/passwords.ts';
import { RawSmtpClient } from '../fuzz/smtp-client.ts';
import { startTestRelay } from '../helpers/relay-harness.ts';

const seconds = Number(process.argv[2] ?? 10);
const relay = await startTestRelay({
  listen: { maxClientsPerIp: 50, maxUnadmittedClients: 50, maxUnadmittedClientsPerIp: 50, maxClients: 50 },
  access: { networks: ['127.0.0.1/32'], users: [{ name: 'exchange', password: await hashPassword('secret') }], allowInsecureAuth: true },
});
const guess = (n: number) => `AUTH PLAIN ${Buffer.from(`\0exchange\0guess${n}`).toString('base64')}`;

async function attacker(localAddress: string, until: number, counts: { tried: number; refused: number }): Promise<void> {
  let n = 0;
  while (Date.now() < until) {
    let c: RawSmtpClient;
    try {
      c = await RawSmtpClient.connect({ port: relay.port, localAddress });
    } catch {
      await new Promise((r) => setTimeout(r, 50));
      continue;
    }
    const greeting = await c.readReply(2000);
    if (greeting?.code === 220 && (await c.command('EHLO attacker.example', 2000))?.code === 250) {
      while (Date.now() < until && !c.closed) {
        const reply = await c.command(guess(n++), Math.max(1, until - Date.now()));
        if (reply?.code === 535) counts.tried++;
        else if (reply?.code === 421) counts.refused++;
        else break;
      }
    }
    await c.destroy();
  }
}

for (const [name, addresses] of [
  ['1 connection', ['127.0.0.2']],
  ['20 connections, one address', Array.from({ length: 20 }, () => '127.0.0.3')],
  ['20 connections, 20 addresses', Array.from({ length: 20 }, (_, i) => `127.0.1.${i + 1}`)],
] as const) {
  const counts = { tried: 0, refused: 0 };
  const until = Date.now() + seconds * 1000;
  await Promise.all(addresses.map((a) => attacker(a, until, counts)));
  console.log(`${name}: ${(counts.tried / seconds).toFixed(2)} passwords checked/s (${counts.tried} in ${seconds} s; ${counts.refused} × 421)`);
}
await relay.close();
