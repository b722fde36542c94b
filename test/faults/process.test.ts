// Fault cases: a second process, SIGKILL and reloads (see cases/process.ts).
import { test } from 'node:test';
import { canRun, casesOf, runCase } from './support/namespace.ts';

for (const c of casesOf('process')) test(c.fault, { skip: canRun === true ? false : canRun }, (t) => runCase(c.id, t));
