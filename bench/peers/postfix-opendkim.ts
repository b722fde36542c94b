// The peer dkim-relay is compared with: Postfix receiving on loopback, OpenDKIM
// signing through the milter interface with RSA-2048, and Postfix relaying to
// the same sink. Both run from a private temporary folder and are stopped by PID.
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from './free-port.ts';
import { startOpenDkim, type RunningOpenDkim } from './opendkim.ts';
import { startPostfix } from './postfix.ts';

export interface RunningPeer {
  name: string;
  port: number;
  /** Every process of the peer is one of these or below them. */
  pids(): number[];
  records: Record<string, string>;
  stop(): Promise<void>;
}

export async function startPostfixOpenDkim(sinkPort: number): Promise<RunningPeer> {
  const dir = mkdtempSync(join(tmpdir(), 'dkim-relay-bench-peer-'));
  // Postfix's and OpenDKIM's own users must reach their files below it.
  chmodSync(dir, 0o755);
  let opendkim: RunningOpenDkim | undefined;
  try {
    const milterPort = await freePort();
    opendkim = await startOpenDkim(dir, milterPort);
    const port = await freePort();
    const postfix = await startPostfix({ dir, port, milterPort, sinkPort });
    const dkim = opendkim;
    return {
      name: 'Postfix + OpenDKIM',
      port,
      pids: () => [postfix.masterPid, dkim.pid],
      records: dkim.records,
      async stop() {
        await postfix.stop();
        await dkim.stop();
        rmSync(dir, { recursive: true, force: true });
      },
    };
  } catch (err) {
    await opendkim?.stop();
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
}
