// File system requests made through libuv's thread pool while `run` runs,
// by async_hooks resource type: each is a wake of a pool thread and a
// callback on a later turn of the event loop.
import { createHook } from 'node:async_hooks';

export async function poolRequests(run: () => Promise<unknown>): Promise<string[]> {
  const kinds: string[] = [];
  const hook = createHook({
    init(_id, type) {
      if (type === 'FSREQPROMISE' || type === 'FSREQCALLBACK' || type === 'FILEHANDLE') kinds.push(type);
    },
  }).enable();
  try {
    await run();
  } finally {
    hook.disable();
  }
  return kinds;
}
