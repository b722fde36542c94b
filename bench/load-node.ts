// The bundled load generator, for machines without Postfix's smtp-source:
// `node bench/load-node.ts '{"port":…,"sessions":20,"count":1000,"file":"m.eml","seconds":60,"rate":0}'`
// sends `count` copies of the message in `file` over `sessions` pipelining
// connections, at most `rate` messages a second in all (0: as fast as the
// server takes them), for at most `seconds`; prints one JSON line of totals.
import { readFileSync } from 'node:fs';
import { RECIPIENT, SENDER } from './message.ts';
import { SmtpSession } from './smtp-client.ts';
import { now, sleep } from './stats.ts';

interface Options {
  port: number;
  sessions: number;
  count: number;
  file: string;
  seconds: number;
  rate: number;
}

const options = JSON.parse(process.argv[2] ?? '{}') as Options;
const content = readFileSync(options.file);
const start = now();
const deadline = start + options.seconds * 1000;
let next = 0;
const totals = { accepted: 0, refused: 0, errors: [] as string[] };

async function session(): Promise<void> {
  const smtp = await SmtpSession.open(options.port);
  try {
    for (let k = next++; k < options.count && now() < deadline; k = next++) {
      // Paced: message k leaves no earlier than k/rate seconds after the start.
      if (options.rate > 0) await sleep(start + (k * 1000) / options.rate - now());
      const { code } = await smtp.send(SENDER, RECIPIENT, content);
      if (code >= 200 && code < 300) totals.accepted++;
      else totals.refused++;
    }
  } finally {
    await smtp.close();
  }
}

const results = await Promise.allSettled(Array.from({ length: options.sessions }, session));
for (const r of results) if (r.status === 'rejected') totals.errors.push(String((r.reason as Error).message));
process.stdout.write(`${JSON.stringify({ ...totals, seconds: (now() - start) / 1000 })}\n`);
