// Octets allocated a message on the JavaScript heap, from a sampling heap
// profile (bench/allocation-sampler.ts), charged to the nearest function of
// a script: a builtin (String.prototype.replace, Array.prototype.map) or a
// Node.js internal is charged to the code that called it.
//
//   node bench/allocation-summary.ts PROFILE.heapprofile messages [rows]
import { readFileSync } from 'node:fs';

interface SamplingNode {
  callFrame: { functionName: string; url: string; lineNumber: number };
  selfSize: number;
  children: SamplingNode[];
}

const [file, messagesArg, rowsArg] = process.argv.slice(2);
if (!file || !messagesArg) {
  console.error('usage: node bench/allocation-summary.ts PROFILE.heapprofile messages [rows]');
  process.exit(2);
}
const head = (JSON.parse(readFileSync(file, 'utf8')) as { head: SamplingNode }).head;
const messages = Number(messagesArg);

const name = ({ functionName, url, lineNumber }: SamplingNode['callFrame']) =>
  `${functionName || '(anonymous)'} ${url.replace(/.*node_modules\//, '').replace(/.*\/src\//, 'src/')}:${lineNumber + 1}`;
const isScript = (frame: SamplingNode['callFrame']) => frame.url !== '' && !frame.url.startsWith('node:');

const charged = new Map<string, number>();
let total = 0;
const stack: SamplingNode['callFrame'][] = [];
const walk = (node: SamplingNode) => {
  stack.push(node.callFrame);
  if (node.selfSize > 0) {
    const owner = name(stack.findLast(isScript) ?? node.callFrame);
    charged.set(owner, (charged.get(owner) ?? 0) + node.selfSize);
    total += node.selfSize;
  }
  for (const child of node.children) walk(child);
  stack.pop();
};
walk(head);

const kib = (octets: number) => (octets / messages / 1024).toFixed(2);
console.log(`${kib(total)} KiB a message in all`);
for (const [who, octets] of [...charged].sort((a, b) => b[1] - a[1]).slice(0, Number(rowsArg ?? 30))) {
  console.log(`${kib(octets).padStart(8)} KiB  ${((octets / total) * 100).toFixed(1).padStart(4)} %  ${who}`);
}
