// The `mx` upstream: delivery straight to each recipient domain's mail
// exchangers, for sites without a smart host (RFC 5321 §5.1).
//
// Per domain: look up MX (no MX: the domain's own addresses, the implicit
// MX; a null MX: refused at once, RFC 7505), try the hosts by preference and
// each host's addresses in turn. A recipient answered temporarily is tried
// again on the next host; an acceptance or a permanent refusal is final.
//
// The next hop is unknown when the message is signed, so the traits say
// 7-bit: the pipeline encodes 8-bit content before signing and no hop has a
// reason to change it afterwards (RFC 6376 §5.3).
import { networkInterfaces, hostname as osHostname } from 'node:os';
import type { UpstreamConfig } from '../config/schema.ts';
import { hasEightBit, type Octets } from '../message/octets.ts';
import type { Logger } from '../common/logger.ts';
import type { UpstreamTraits } from '../pipeline/pipeline.ts';
import { NetworkList } from '../common/networks.ts';
import { DestinationLimits } from './destination-limits.ts';
import { MxLookup } from './mx-lookup.ts';
import { status } from './mx-reply.ts';
import { combinedReply, replyLine, type RecipientReply, type SmtpReply } from '../smtp/reply.ts';
import { destination, groupByDomain, orderExchanges } from './mx-route.ts';
import { end, runSession, type OpenSession, type SessionMessage, type SessionResult, type SessionTarget } from './mx-session.ts';
import { sameKey, SessionCache, type Kept, type SessionKey } from './session-cache.ts';
import { targetVerdict, type RelaySelf } from './mx-targets.ts';
import type { Envelope, EnvelopeDsn, Upstream, UpstreamReply } from './upstream.ts';

export type MxConfig = Extract<UpstreamConfig, { type: 'mx' }>;

/** Connections tried for one domain of one message, over all its hosts and addresses. */
export const MAX_ATTEMPTS_PER_DOMAIN = 10;

export interface MxOptions {
  /** Shuffles MX records of equal preference. */
  random?: () => number;
  /**
   * The relay's own names (listen.hostname) and listeners, read at each
   * delivery (a port 0 is known once listening): an MX among them is a loop.
   */
  relay?: () => { names: string[]; listeners: RelaySelf['listeners'] };
  /** This host's interface addresses; the machine's by default. */
  localAddresses?: () => string[];
  /** The clock of the session cache's reuse limits. */
  now?: () => number;
}

/** A session handed, with its slot, to a connection waiting for the same domain. */
interface Handed {
  key: SessionKey;
  kept: Kept<OpenSession>;
}

/** The addresses of this machine's network interfaces, without an IPv6 zone ("fe80::1%eth0"). */
function interfaceAddresses(): string[] {
  return Object.values(networkInterfaces()).flatMap((list) => (list ?? []).map((i) => i.address.split('%', 1)[0]!));
}

/** The hosts (or a literal address) to try for one domain, or the reply every recipient gets. */
type Route = { ok: true; hosts: { name: string; address?: string }[] } | { ok: false; reply: SmtpReply };

export class MxUpstream implements Upstream {
  readonly name: string;
  readonly traits: UpstreamTraits;
  private readonly config: MxConfig;
  private readonly logger: Logger;
  private readonly lookup: MxLookup;
  private readonly limits: DestinationLimits<Handed>;
  private readonly sessions: SessionCache<OpenSession>;
  private readonly now: () => number;
  private readonly heloName: string;
  private readonly random: () => number;
  private readonly allowed: NetworkList;
  private readonly relay: NonNullable<MxOptions['relay']>;
  private readonly localAddresses: () => string[];
  private closed = false;

  constructor(config: MxConfig, logger: Logger, options: MxOptions = {}) {
    this.config = config;
    this.logger = logger;
    this.random = options.random ?? Math.random;
    this.heloName = config.heloName ?? osHostname();
    this.allowed = new NetworkList(config.allowNetworks, 'delivery.upstream.allowNetworks');
    this.relay = options.relay ?? (() => ({ names: [], listeners: [] }));
    this.localAddresses = options.localAddresses ?? interfaceAddresses;
    this.lookup = new MxLookup(config.resolver);
    this.limits = new DestinationLimits(config.maxConnections, config.maxConnectionsPerDomain);
    this.now = options.now ?? Date.now;
    this.sessions = new SessionCache((session) => end(session.connection, true), this.now);
    this.name = `mx port ${config.port}`;
    this.traits = { dualSign: config.dualSign, eightBitMime: false, smtpUtf8: false };
  }

  async ready(): Promise<void> {}

  async deliver(envelope: Envelope, octets: Octets): Promise<UpstreamReply> {
    const message: SessionMessage = { octets, eightBit: await hasEightBit(octets) };
    const byDomain = groupByDomain(envelope.to);
    const answered = new Map<string, RecipientReply>();
    await Promise.all(
      [...byDomain].map(async ([domain, recipients]) => {
        for (const reply of await this.deliverDomain(domain, recipients, envelope.from, message, envelope.dsn)) answered.set(reply.address, reply);
      }),
    );
    const recipients = envelope.to.map((recipient) => answered.get(recipient)!);
    return { ...combinedReply(recipients), recipients };
  }

  async close(): Promise<void> {
    this.closed = true;
    await this.sessions.close();
  }

  /**
   * A session kept for `key`, or a connection slot for `domain`: free now,
   * freed by ending an idle session, handed over (with its session, used when
   * it was made for the same key) or the first to come free in time.
   */
  private async slot(key: SessionKey): Promise<{ release: () => void; kept?: Kept<OpenSession> } | null> {
    const { domain } = key;
    const kept = this.sessions.take(key);
    if (kept) return { release: kept.release, kept };
    const now = this.limits.tryAcquire(domain);
    if (now) return { release: now };
    this.sessions.freeSlotFor(domain, this.limits.open(domain) >= this.config.maxConnectionsPerDomain);
    const granted = await this.limits.acquire(domain, this.config.timeoutSeconds * 1000);
    if (!granted) return null;
    const { release, handed } = granted;
    if (handed && sameKey(handed.key, key)) return { release, kept: { ...handed.kept, release } };
    // Made for another host or TLS policy of the same domain: ended, and its slot is ours.
    if (handed) await end(handed.kept.session.connection, true);
    return { release };
  }

  /** After a session: handed to a connection waiting for its domain, kept for the next message, or ended and its slot freed. */
  private afterSession(
    key: SessionKey,
    session: OpenSession | undefined,
    { release, kept }: { release: () => void; kept?: Kept<OpenSession> | undefined },
  ): void {
    if (!session) return release();
    const next = kept && session === kept.session ? { ...kept, uses: kept.uses + 1 } : { session, release, openedAt: this.now(), uses: 1 };
    if (this.closed || !this.sessions.reusable(next)) return void end(session.connection, true).finally(release);
    if (this.limits.handOver(key.domain, release, { key, kept: next })) return;
    // Connections wait for other domains: the slot is theirs.
    if (this.limits.contended) return void end(session.connection, true).finally(release);
    this.sessions.park(key, next);
  }

  /** Every name this relay goes by: an MX or a greeting with one of them is the relay itself. */
  private ownNames(): string[] {
    return [...new Set([this.heloName, osHostname(), ...this.relay().names])];
  }

  private self(): RelaySelf {
    return { listeners: this.relay().listeners, localAddresses: this.localAddresses() };
  }

  private async deliverDomain(
    domain: string,
    recipients: string[],
    from: string,
    message: SessionMessage,
    dsn: EnvelopeDsn | undefined,
  ): Promise<RecipientReply[]> {
    const route = await this.route(recipients[0]!);
    if (!route.ok) {
      this.logger.warn({ upstream: 'mx', domain, recipients, reply: replyLine(route.reply) }, 'mx delivery not attempted');
      return recipients.map((recipient) => refused(recipient, route.reply));
    }
    const final = new Map<string, RecipientReply>();
    let pending = recipients;
    /** The reply pending recipients get when no host answers for them. */
    let last: SmtpReply | null = null;
    let permanentMiss: SmtpReply | null = null;
    /** Set when a host leads back to this relay: nothing more is tried (RFC 5321 §5.1). */
    let loop: SmtpReply | null = null;
    let attempts = 0;
    hosts: for (const host of route.hosts) {
      if (pending.length === 0) break;
      const found = host.address ? { ok: true as const, addresses: [host.address] } : await this.lookup.addresses(host.name);
      if (!found.ok) {
        const reply = status(found.temporary ? 451 : 550, found.temporary ? '4.4.3' : '5.4.4', `Cannot reach ${domain}: ${found.reason}`);
        if (found.temporary) last = reply;
        else permanentMiss = reply;
        this.logger.warn({ upstream: 'mx', domain, host: host.name, reason: found.reason }, 'mx host skipped');
        continue;
      }
      const self = this.self();
      const refused: string[] = [];
      let itself: string | null = null;
      const addresses = found.addresses.filter((address) => {
        const verdict = targetVerdict(address, this.config.port, self, this.allowed);
        if (verdict.ok) return true;
        if (verdict.kind === 'loop') itself ??= `${host.name} [${address}]: ${verdict.reason}`;
        refused.push(verdict.reason);
        return false;
      });
      if (itself) {
        // RFC 5321 §5.1: this relay and every less preferred host are dropped. As the best
        // host it is a loop; behind better ones it only ends the list, and their replies stand.
        if (host === route.hosts[0]) loop = status(550, '5.4.6', `Mail for ${domain} loops back to this relay: ${itself}`);
        else this.logger.warn({ upstream: 'mx', domain, host: host.name, reason: itself }, 'mx host is this relay: it and the hosts after it are not tried');
        break hosts;
      }
      if (addresses.length === 0) {
        // RFC 3463 X.4.4: no route the relay may take; a policy of ours, so said as such.
        permanentMiss = status(
          550,
          '5.4.4',
          `Not delivering to ${domain}: its host ${host.name} leads only inward (${refused.join('; ')}); delivery.upstream.allowNetworks can permit it`,
        );
        this.logger.warn({ upstream: 'mx', domain, host: host.name, refused }, 'mx host skipped: it leads inward');
        continue;
      }
      if (refused.length > 0) this.logger.warn({ upstream: 'mx', domain, host: host.name, refused }, 'mx host addresses skipped: they lead inward');
      for (const address of addresses) {
        let plaintext = false;
        for (;;) {
          if (attempts++ >= MAX_ATTEMPTS_PER_DOMAIN || this.closed) break hosts;
          const target: SessionTarget = {
            domain,
            host: host.name,
            address,
            port: this.config.port,
            heloName: this.heloName,
            ownNames: this.ownNames(),
            requireTLS: this.config.requireTLS,
            plaintext,
            timeoutMs: this.config.timeoutSeconds * 1000,
          };
          const key: SessionKey = { domain, host: host.name, address, port: target.port, requireTLS: target.requireTLS, plaintext };
          const slot = await this.slot(key);
          if (!slot) {
            last = status(
              451,
              '4.4.5',
              `Too many connections to ${domain} already (delivery.upstream.maxConnectionsPerDomain ${this.config.maxConnectionsPerDomain}, maxConnections ${this.config.maxConnections}), try again later`,
            );
            break hosts;
          }
          let result: SessionResult & { session?: OpenSession };
          try {
            result = await runSession(target, { from, to: pending, dsn }, message, { kept: slot.kept?.session, keep: !this.closed });
          } catch (err) {
            slot.release();
            throw err;
          }
          this.afterSession(key, result.session, slot);
          if (result.kind === 'failed') {
            this.logger.warn(
              { upstream: 'mx', domain, host: host.name, address, port: this.config.port, reason: replyLine(result.reply) },
              'mx session failed',
            );
            last = result.reply;
            if (result.loop) break hosts;
            // RFC 7435 §3: a host whose TLS fails still gets the mail, in plaintext, unless TLS is required.
            if (result.tlsFailed && !plaintext && !this.config.requireTLS) {
              plaintext = true;
              continue;
            }
            break;
          }
          const stillPending: string[] = [];
          for (const recipient of pending) {
            const reply = result.replies.get(recipient)!;
            if (reply.code >= 400 && reply.code < 500) {
              stillPending.push(recipient);
              last = reply;
            } else final.set(recipient, { address: recipient, reply });
          }
          this.logger.info(
            {
              upstream: 'mx',
              domain,
              host: host.name,
              address,
              port: this.config.port,
              tls: result.tls.protocol,
              cipher: result.tls.cipher,
              certificate: result.tls.verified === null ? undefined : result.tls.verified ? 'verified' : `not verified (${result.tls.verifyError})`,
              replies: Object.fromEntries(pending.map((r) => [r, replyLine(result.replies.get(r)!)])),
            },
            'mx delivery',
          );
          pending = stillPending;
          // The host answered: its other addresses would answer alike, so the next host is tried.
          continue hosts;
        }
      }
    }
    const leftover = loop ?? last ?? permanentMiss ?? status(451, '4.4.4', `No host of ${domain} could be tried`);
    for (const recipient of pending) final.set(recipient, refused(recipient, leftover));
    return recipients.map((recipient) => final.get(recipient)!);
  }

  /** Where one recipient's domain leads: MX hosts, the implicit MX, or a literal address. */
  private async route(recipient: string): Promise<Route> {
    const where = destination(recipient);
    if (where.kind === 'invalid') return { ok: false, reply: status(550, '5.1.2', `The domain of <${recipient}> is not a domain mail can be routed to`) };
    if (where.kind === 'literal') {
      const verdict = targetVerdict(where.address, this.config.port, this.self(), this.allowed);
      if (verdict.ok) return { ok: true, hosts: [{ name: `[${where.address}]`, address: where.address }] };
      if (verdict.kind === 'loop') return { ok: false, reply: status(550, '5.4.6', `Mail for ${where.domain} loops back to this relay: ${verdict.reason}`) };
      // RFC 3463 X.7.1: delivery not authorized; the sender chose the address, the relay's policy refuses it.
      return { ok: false, reply: status(550, '5.7.1', `Not delivering to ${where.domain}: ${verdict.reason}; delivery.upstream.allowNetworks can permit it`) };
    }
    const mx = await this.lookup.mx(where.ascii);
    if (!mx.ok && mx.outcome === 'nxdomain') return { ok: false, reply: status(550, '5.1.2', `The domain ${where.domain} does not exist (${mx.reason})`) };
    if (!mx.ok && mx.outcome === 'temporary') return { ok: false, reply: status(451, '4.4.3', `Cannot route mail for ${where.domain} now: ${mx.reason}`) };
    // RFC 5321 §5.1: no MX records, the domain itself is the implicit MX, preference 0.
    const records = mx.ok && mx.records.length > 0 ? mx.records : [{ exchange: where.ascii, priority: 0 }];
    const exchanges = orderExchanges(records, this.ownNames(), this.random);
    switch (exchanges.kind) {
      case 'null':
        return { ok: false, reply: status(556, '5.1.10', `The domain ${where.domain} accepts no mail (null MX, RFC 7505)`) };
      case 'unusable':
        return { ok: false, reply: status(550, '5.4.4', `The MX records of ${where.domain} name no usable host: ${exchanges.skipped.join('; ')}`) };
      case 'loop':
        // RFC 3463 X.4.6 routing loop, as Postfix's "mail for X loops back to myself": retrying would only loop again.
        return {
          ok: false,
          reply: status(550, '5.4.6', `Mail for ${where.domain} loops back to this relay: its best MX ${exchanges.host} is one of this relay's names`),
        };
      case 'hosts':
        if (exchanges.skipped.length > 0) this.logger.warn({ upstream: 'mx', domain: where.domain, skipped: exchanges.skipped }, 'unusable MX records ignored');
        return { ok: true, hosts: exchanges.hosts.map((name) => ({ name })) };
    }
  }
}

function refused(recipient: string, reply: SmtpReply): RecipientReply {
  return { address: recipient, reply };
}
