// Loaded into every test process (`node --test --import`). A test file's
// process sends its verdicts to the runner through a pipe, and
// --test-force-exit ends it with process.exit(), which drops whatever the
// pipe has not taken yet: the runner then reports fewer tests than ran, and
// can lose a failure's name (Node.js issue #64833). With blocking writes
// nothing is left behind when the process exits.
const stdout = process.stdout as unknown as { _handle?: { setBlocking?(blocking: boolean): unknown } };
stdout._handle?.setBlocking?.(true);
