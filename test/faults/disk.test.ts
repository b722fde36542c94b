// Fault cases: the spool's file system fills up (see cases/disk.ts).
import { test } from 'node:test';
import { canRun, casesOf, runCase } from './support/namespace.ts';

for (const c of casesOf('disk')) test(c.fault, { skip: canRun === true ? false : canRun }, (t) => runCase(c.id, t));
