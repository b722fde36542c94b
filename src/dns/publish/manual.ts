// Publishing by hand, the default: nothing is sent, and the caller shows a
// person the records to publish (the scheduler prints and notifies them).
import type { Publisher } from './change.ts';

export const manualPublisher: Publisher = {
  method: 'manual',
  publish: async () => ({ status: 'manual' }),
};
