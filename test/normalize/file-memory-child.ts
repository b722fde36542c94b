// Run by file-memory.test.ts in a process of its own:
// normalizeFile on the message in argv[2], with the live memory (heap and
// Buffers, after a collection) sampled at every 24th read of the input. Prints
// the peak growth over the memory before the call, and the result.
import fs from 'node:fs';
import { syncBuiltinESMExports } from 'node:module';
import { collectGarbage } from '../helpers/collect.ts';

const [inPath, outPath, optionsJson] = process.argv.slice(2) as [string, string, string];
const live = (): number => {
  collectGarbage();
  const m = process.memoryUsage();
  return m.heapUsed + m.arrayBuffers;
};

const readSync = fs.readSync;
let reads = 0;
let peak = 0;
// every import of readSync, the normalizer's too, now goes through this
fs.readSync = ((...args: Parameters<typeof readSync>) => {
  if (++reads % 24 === 0) peak = Math.max(peak, live());
  return readSync(...args);
}) as typeof readSync;
syncBuiltinESMExports();

const { normalizeFile } = await import('../../src/pipeline/normalize/index.ts');
const before = live();
peak = before;
const result = normalizeFile(inPath, outPath, JSON.parse(optionsJson));
peak = Math.max(peak, live());
process.stdout.write(JSON.stringify({ growth: peak - before, reads, result: { ...result, header: undefined } }));
