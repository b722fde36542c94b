// A relay over loopback whose log lines the test can read: the same start-up
// as the shared harness, with a pino logger writing into memory.
import { Writable } from 'node:stream';
import { join } from 'node:path';
import { pino } from 'pino';
import { configSchema } from '../../src/config/schema.ts';
import { txtValue } from '../../src/keys/record.ts';
import { SqliteKeyStore } from '../../src/keys/store.ts';
import type { KeyStore } from '../../src/keys/key-store.ts';
import { startRelay } from '../../src/daemon/daemon.ts';
import type { TxtRecords } from '../helpers/independent-verify.ts';
import { tempDir } from '../helpers/relay-harness.ts';

export interface LoggedRelay {
  port: number;
  store: KeyStore;
  /** Every JSON log line so far. */
  logs: Record<string, unknown>[];
  /** The log line of the message whose reply carried this id. */
  messageLog(id: string): Record<string, unknown> | undefined;
  records(): TxtRecords;
  close(): Promise<void>;
}

/** example.com has an active RSA-2048 key, so Mail::DKIM can judge every signature. */
export async function startLoggedRelay(config: Record<string, unknown>): Promise<LoggedRelay> {
  const dir = tempDir();
  const merged = configSchema.parse({
    ...config,
    rotation: { check: 'off', ...(config.rotation as object) }, // no scheduler pass asks the machine's resolver
    // Sync: these tests read the pipeline's reply and its 'message' log line per DATA.
    delivery: { mode: 'sync', ...(config.delivery as object) },
    keys: { dir: join(dir.path, 'keys') },
    listen: { port: 0, hostname: 'relay.test', ...(config.listen as object) },
    metrics: { listen: '127.0.0.1:0' },
  });
  const setup = SqliteKeyStore.open(merged.keys.dir);
  try {
    setup.generate({ domain: 'example.com', algorithm: 'rsa', bits: 2048, activate: true });
  } finally {
    setup.close();
  }
  const logs: Record<string, unknown>[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const line of chunk.toString().split('\n')) if (line.startsWith('{')) logs.push(JSON.parse(line) as Record<string, unknown>);
      done();
    },
  });
  const relay = await startRelay({ config: merged, path: 'test' }, pino({ level: 'info' }, sink));
  return {
    port: relay.ports.plain,
    store: relay.store,
    logs,
    messageLog: (id) => logs.find((l) => l.msg === 'message' && l.id === id),
    records: () => Object.fromEntries(relay.store.list().map((k) => [`${k.selector}._domainkey.${k.domain}`, txtValue(k)])),
    close: async () => {
      await relay.stop();
      dir.remove();
    },
  };
}

/** The log id the relay appends to an accepted reply: "250 … [0123456789ab]". */
export function replyId(response: string): string {
  const id = /\[([0-9a-f]{12})\]\s*$/.exec(response)?.[1];
  if (!id) throw new Error(`no message id in the reply ${JSON.stringify(response)}`);
  return id;
}
