// contrib/grafana/dkim-relay.json and contrib/prometheus/alerts.yml are built on
// the relay's metric names: every name they use must be registered, or the
// panel stays empty and the alert never fires.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { parse } from 'yaml';
import { metrics } from '../../src/observability/metrics.ts';

const ROOT = join(import.meta.dirname, '..', '..');
/** Series Prometheus itself adds, not the relay. */
const PROMETHEUS_OWN = new Set(['up']);
/** PromQL words that look like names. */
const PROMQL = new Set([
  'sum',
  'max',
  'min',
  'avg',
  'count',
  'rate',
  'increase',
  'irate',
  'by',
  'without',
  'on',
  'ignoring',
  'group_left',
  'group_right',
  'and',
  'or',
  'unless',
  'histogram_quantile',
  'bool',
  'offset',
]);

/** Metric names in a PromQL expression: identifiers outside {…} label matchers and […] ranges, and not followed by "(". */
function metricNames(expr: string): string[] {
  const bare = expr
    .replace(/\{[^}]*\}/g, ' ')
    .replace(/\[[^\]]*\]/g, ' ')
    .replace(/"[^"]*"/g, ' ');
  const names: string[] = [];
  for (const match of bare.matchAll(/([A-Za-z_:][A-Za-z0-9_:]*)(\s*\()?/g)) {
    const [, name, call] = match;
    if (call || PROMQL.has(name!) || /^\d/.test(name!)) continue;
    // The identifiers inside by (…) / on (…) are labels.
    const before = bare.slice(0, match.index).trimEnd();
    if (/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*$/.test(before)) continue;
    names.push(name!);
  }
  return names;
}

/** Registered names, and the series a histogram adds. */
function registered(): Set<string> {
  const names = new Set<string>(PROMETHEUS_OWN);
  for (const metric of metrics.registry.getMetricsAsArray()) {
    names.add(metric.name);
    if (String(metric.type) === 'histogram') for (const suffix of ['_bucket', '_sum', '_count']) names.add(`${metric.name}${suffix}`);
  }
  return names;
}

test('the expression reader finds metric names and skips functions, labels and keywords', () => {
  assert.deepEqual(metricNames('histogram_quantile(0.95, sum by (le) (rate(dkim_relay_delivery_seconds_bucket{instance=~"$instance"}[$__rate_interval])))'), [
    'dkim_relay_delivery_seconds_bucket',
  ]);
  assert.deepEqual(metricNames('max by (domain, selector) (a_metric{state=~"x|y"} == 1) and on (domain) b_metric > 3600'), ['a_metric', 'b_metric']);
});

test('every metric the Grafana dashboard queries is registered, and each relay metric family is on it', () => {
  const dashboard = JSON.parse(readFileSync(join(ROOT, 'contrib', 'grafana', 'dkim-relay.json'), 'utf8')) as {
    panels: { title: string; targets?: { expr: string }[] }[];
  };
  const known = registered();
  const used = new Set<string>();
  for (const panel of dashboard.panels) {
    for (const target of panel.targets ?? []) {
      const names = metricNames(target.expr);
      assert.ok(names.length > 0, `panel "${panel.title}" queries no metric: ${target.expr}`);
      for (const name of names) {
        assert.ok(known.has(name), `panel "${panel.title}" uses ${name}, which the relay does not export`);
        used.add(name);
      }
    }
  }
  const shown = [
    'dkim_relay_messages_received_total',
    'dkim_relay_messages_signed_total',
    'dkim_relay_self_check_failures_total',
    'dkim_relay_messages_refused_total',
    'dkim_relay_messages_delivered_total',
    'dkim_relay_messages_deferred_total',
    'dkim_relay_messages_bounced_total',
    'dkim_relay_queue_messages',
    'dkim_relay_queue_oldest_message_age_seconds',
    'dkim_relay_key_state',
    'dkim_relay_key_next_step_seconds',
    'dkim_relay_dns_state',
    'dkim_relay_dmarc_state',
  ];
  for (const name of shown) assert.ok(used.has(name), `the dashboard shows ${name}`);
});

test('every metric the alert rules use is registered, and each rule says what to do', () => {
  const rules = parse(readFileSync(join(ROOT, 'contrib', 'prometheus', 'alerts.yml'), 'utf8')) as {
    groups: { rules: { alert: string; expr: string; annotations: Record<string, string> }[] }[];
  };
  const known = registered();
  const alerts = rules.groups.flatMap((g) => g.rules);
  assert.deepEqual(alerts.map((r) => r.alert).sort(), [
    'DkimRelayBackgroundTaskFailing',
    'DkimRelayDnsMismatch',
    'DkimRelayDown',
    'DkimRelayKeyStuckPending',
    'DkimRelayKeyUnusable',
    'DkimRelayQueueOld',
    'DkimRelayRotationOverdue',
    'DkimRelaySelfCheckFailures',
    'DkimRelayUpstreamFailing',
  ]);
  for (const rule of alerts) {
    const names = metricNames(rule.expr);
    assert.ok(names.length > 0, `${rule.alert} uses no metric`);
    for (const name of names) assert.ok(known.has(name), `${rule.alert} uses ${name}, which the relay does not export`);
    assert.ok(rule.annotations.summary && rule.annotations.description, `${rule.alert} has a summary and a description`);
  }
});
