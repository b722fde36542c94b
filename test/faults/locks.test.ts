// Fault cases: another process holds the relay's databases (see cases/locks.ts).
import { test } from 'node:test';
import { canRun, casesOf, runCase } from './support/namespace.ts';

for (const c of casesOf('locks')) test(c.fault, { skip: canRun === true ? false : canRun }, (t) => runCase(c.id, t));
