// The key store's directory becomes unreadable while the relay runs (chmod
// 000). Root reads through any mode, so the relay runs as root without the
// capabilities that override file modes (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH),
// as a service user would meet the same mode.
import assert from 'node:assert/strict';
import { chmodSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { NODE } from '../../cli/support.ts';
import { runLoad } from '../support/load.ts';
import { describeReplies, everyAcceptedDelivered, stillUp, unsigned, type CaseContext } from '../support/kit.ts';
import { eventually, healthz, startRelay, writeConfig } from '../support/relay.ts';
import { startSmartHost } from '../support/smart-host.ts';

const LOAD = { count: 50, sessions: 5 };
const WITHOUT_DAC = '-dac_override,-dac_read_search';

export async function unreadable(ctx: CaseContext): Promise<void> {
  const node = join(ctx.dir, 'node-without-dac');
  writeFileSync(node, `#!/bin/sh\nexec setpriv --bounding-set=${WITHOUT_DAC} --inh-caps=${WITHOUT_DAC} ${NODE} "$@"\n`, { mode: 0o755 });
  const host = await startSmartHost();
  ctx.cleanup.push(() => host.close());
  const config = join(ctx.dir, 'relay.yaml');
  writeConfig(config, { dir: ctx.dir, upstreamPort: host.port });
  const relay = await startRelay(config, ctx.dir, { node });
  ctx.relays.push(relay);
  ctx.cleanup.push(() => relay.kill());
  const keys = join(ctx.dir, 'keys');
  ctx.cleanup.push(() => chmodSync(keys, 0o700));

  chmodSync(keys, 0o000);
  const during = await runLoad({ port: relay.port(), tag: 'unreadable', ...LOAD });
  assert.ok(
    during.every((o) => !/^5/.test(o.reply)),
    `a key store the relay cannot read is never a permanent refusal: ${describeReplies(during)}`,
  );
  const health = await eventually(
    '/healthz to name the key store',
    20_000,
    async () => {
      const h = await healthz(relay);
      return h.status === 503 && h.body.failed?.some((f) => f === 'key-store' || f === 'signing-keys') ? h : undefined;
    },
    relay,
  );
  const failed = health.body.checks!.filter((c) => !c.ok);
  stillUp(relay);

  chmodSync(keys, 0o700);
  await eventually('/healthz to pass again', 20_000, async () => (await healthz(relay)).status === 200, relay);
  const after = await runLoad({ port: relay.port(), tag: 'readable', ...LOAD });
  assert.deepEqual(
    after.filter((o) => !o.reply.startsWith('250')),
    [],
    'every message is taken once the store is readable',
  );
  await everyAcceptedDelivered(ctx, host, [...during, ...after]);
  assert.deepEqual(unsigned(host), [], 'every message delivered is signed');
  stillUp(relay);
  ctx.row.does = `signs with the keys it holds; \`/healthz\` fails ${failed.map((c) => `\`${c.name}\``).join(', ')}; passes again once readable`;
  ctx.row.sees = `unreadable: ${describeReplies(during)}; readable again: ${describeReplies(after)}`;
}
