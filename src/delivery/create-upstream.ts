// The upstream delivery.upstream.type names.
import { hostname as osHostname } from 'node:os';
import type { UpstreamConfig } from '../config/schema.ts';
import type { Logger } from '../common/logger.ts';
import type { Supervisor } from '../common/supervisor.ts';
import { FileUpstream } from './file-upstream.ts';
import type { PreparationDeps } from './hop-preparation.ts';
import { MxUpstream, type MxOptions } from './mx-upstream.ts';
import { SmtpUpstream } from './smtp-upstream.ts';
import type { Upstream } from './upstream.ts';

/**
 * `mx`: how the relay itself is reached, so that no MX leads back to it.
 * `preparation`: what the smart host needs to sign a message again when its
 * connection takes less than it was signed for.
 * `supervisor`: where the smtp upstream's extension probe reports its failures.
 */
export function createUpstream(
  config: UpstreamConfig,
  logger: Logger,
  options: { mx?: MxOptions; preparation?: PreparationDeps; supervisor?: Supervisor } = {},
): Upstream {
  if (config.type === 'mx') return new MxUpstream(config, logger, options.mx ?? {});
  if (config.type === 'file') return new FileUpstream(config);
  // Unset, EHLO gives the relay's own name (listen.hostname, else the machine's), never nodemailer's
  // "[127.0.0.1]" that it falls back to for a host name without a dot.
  const name = config.name ?? options.mx?.relay?.().names[0] ?? osHostname();
  return new SmtpUpstream({ ...config, name }, logger, { preparation: options.preparation, supervisor: options.supervisor });
}
