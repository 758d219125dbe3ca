/** Alarms, dashboard, outputs, alarm topic, archive and schema registry of the synthesized stack. */
import { Ajv } from 'ajv';
import { describe, expect, it } from 'vitest';
import { ConfigError } from '../../lib/config.js';
import { DASHBOARD_QUERIES } from '../../lib/dashboard.js';
import { DRAFT4, DRAFT4_KEYWORDS } from '../../lib/event-schemas.js';
import { type AlarmProperties, alarmState, firstAlarm, type Sample } from '../support/alarm-evaluator.js';
import { prng } from '../unit/fakes.js';
import { logicalId, SUPPORT, synth } from './synth.js';

const SCHEDULES = [
  { id: 'every-minute', schedule: 'rate(1 minute)', minutes: 1 },
  { id: 'quarter-hour', schedule: 'rate(15 minutes)', minutes: 15 },
  { id: 'cron-five', schedule: 'cron(0/5 * * * ? *)', minutes: 5 },
  { id: 'office-hours', schedule: 'cron(0/15 8-17 ? * MON-FRI *)', alarmIntervalMinutes: 960, minutes: 960 },
];
const CONFIG = {
  mailboxes: SCHEDULES.map(({ id, schedule, alarmIntervalMinutes }) => ({
    id,
    secretName: `imap/${id}`,
    schedule,
    ...(alarmIntervalMinutes ? { alarmIntervalMinutes } : {}),
  })),
};

function alarms(config: unknown) {
  const s = synth(config);
  const resources = s.template.findResources('AWS::CloudWatch::Alarm');
  return {
    s,
    of(id: string) {
      const poller = s.stack.mailboxes.get(id)!;
      return {
        stale: resources[logicalId(s.stack, poller.staleAlarm)]!.Properties as AlarmProperties &
          Record<string, unknown>,
        failure: resources[logicalId(s.stack, poller.failureAlarm)]!.Properties as AlarmProperties &
          Record<string, unknown>,
        poller,
      };
    },
  };
}

/**
 * Samples of a poller that runs every `minutes`, each landing up to `jitter` seconds after its nominal time.
 * 110 s is the worst case (a minute of invocation delay plus a run near its 50 s timeout); a scheduled rule
 * fires at a steady second of the minute, so 45 s (run times from 1 to 45 s) is the realistic case.
 */
function heartbeats(minutes: number, from: number, to: number, seed = 1, jitter = 110): Sample[] {
  const random = prng(seed);
  const out: Sample[] = [];
  for (let t = from; t < to; t += minutes * 60) out.push({ t: t + Math.floor(random() * jitter), value: 1 });
  return out;
}

const DAY = 86_400;
const START = 1_800_000_000 - (1_800_000_000 % DAY); // midnight UTC, far from the epoch

describe('alarms at any schedule', () => {
  const synthesized = alarms(CONFIG);

  it.each(SCHEDULES)(
    '$schedule: staleness alarm on the heartbeat, one period per interval, missing data breaching',
    ({ id, minutes }) => {
      const { stale } = synthesized.of(id);
      expect(stale).toMatchObject({
        Namespace: 'ImapEventSource',
        MetricName: 'PollSucceeded',
        Dimensions: expect.arrayContaining([
          { Name: 'service', Value: 'imap-event-source' },
          { Name: 'mailboxId', Value: id },
        ]),
        Statistic: 'Sum',
        Period: minutes * 60,
        EvaluationPeriods: 3,
        DatapointsToAlarm: 3,
        Threshold: 1,
        ComparisonOperator: 'LessThanThreshold',
        TreatMissingData: 'breaching',
      });
      expect(stale.AlarmDescription).toContain(`mailbox ${id}`);
      expect(stale.AlarmDescription).toContain('docs/operations.md');
    },
  );

  it.each(SCHEDULES)(
    '$schedule: failure alarm on Lambda Errors, 3 failed of 4 intervals, missing data not breaching',
    ({ id, minutes }) => {
      const { failure, poller } = synthesized.of(id);
      expect(failure).toMatchObject({
        Namespace: 'AWS/Lambda',
        MetricName: 'Errors',
        Dimensions: [{ Name: 'FunctionName', Value: { Ref: logicalId(synthesized.s.stack, poller.function) } }],
        Statistic: 'Sum',
        Period: minutes * 60,
        EvaluationPeriods: 4,
        DatapointsToAlarm: 3,
        Threshold: 1,
        ComparisonOperator: 'GreaterThanOrEqualToThreshold',
        TreatMissingData: 'notBreaching',
      });
    },
  );

  it.each(SCHEDULES.slice(0, 3))(
    '$schedule: a healthy poller never alarms; a stopped one alarms after 3 to 4 intervals',
    ({ id, minutes }) => {
      const { stale } = synthesized.of(id);
      const healthy = heartbeats(minutes, START, START + 2 * DAY, minutes);
      expect(firstAlarm(stale, healthy, START + 10 * minutes * 60, START + 2 * DAY - minutes * 60)).toBeUndefined();

      const stopAt = START + DAY;
      const beats = healthy.filter((s) => s.t < stopAt);
      const last = beats.at(-1)!.t;
      const fired = firstAlarm(stale, beats, stopAt - 60 * minutes, stopAt + 10 * minutes * 60)!;
      expect(fired).toBeDefined();
      expect(fired - last).toBeGreaterThanOrEqual(3 * minutes * 60);
      expect(fired - last).toBeLessThanOrEqual(5 * minutes * 60); // N..N+1 intervals, plus the partial period in which it is evaluated
    },
  );

  it.each(SCHEDULES.slice(0, 3))(
    '$schedule: persistent failures fire the failure alarm, a single one does not',
    ({ id, minutes }) => {
      const { failure } = synthesized.of(id);
      const runs = heartbeats(minutes, START + 13, START + 2 * DAY, 7, 45);
      const half = Math.floor(runs.length / 2);
      // One failed run, or two in a row, which the next runs repair: no alarm.
      expect(firstAlarm(failure, [runs[20]!], START, START + 2 * DAY)).toBeUndefined();
      expect(firstAlarm(failure, [runs[20]!, runs[21]!], START, START + 2 * DAY)).toBeUndefined();
      const from = runs[half]!.t;
      const failing = runs.slice(half);
      const fired = firstAlarm(failure, failing, START, START + 2 * DAY)!;
      expect(fired).toBeDefined();
      expect(fired - from).toBeLessThanOrEqual(5 * minutes * 60);
      // And while every run fails, no heartbeat: the staleness alarm fires as well.
      const { stale } = synthesized.of(id);
      expect(alarmState(stale, runs.slice(0, half), fired + 2 * minutes * 60)).toBe('ALARM');
    },
  );

  it('an irregular cron needs an explicit interval, named in the error', () => {
    expect(() => synth({ mailboxes: [{ ...SUPPORT, schedule: 'cron(0/15 8-17 ? * MON-FRI *)' }] })).toThrow(
      ConfigError,
    );
    try {
      synth({ mailboxes: [{ ...SUPPORT, schedule: 'cron(0/15 8-17 * * ? *)' }] });
    } catch (err) {
      expect((err as ConfigError).problems).toEqual([
        'mailbox "support".alarmIntervalMinutes: required: cron(0/15 8-17 * * ? *) runs at uneven gaps (15 to 855 minutes), so the alarms cannot derive an interval; give the longest gap between two runs the alarms should accept, in minutes',
      ]);
    }
  });

  it('the counts are configurable; windows beyond CloudWatch limits are rejected at synth', () => {
    const s = alarms({ mailboxes: [SUPPORT], alarms: { staleAfterIntervals: 5, failingAfterRuns: 2 } });
    expect(s.of('support').stale).toMatchObject({ EvaluationPeriods: 5, DatapointsToAlarm: 5, Period: 60 });
    expect(s.of('support').failure).toMatchObject({ EvaluationPeriods: 3, DatapointsToAlarm: 2, Period: 60 });
    expect(() => synth({ mailboxes: [{ ...SUPPORT, schedule: 'rate(3 days)' }] })).toThrow(/too long for the alarms/);
    expect(() => synth({ mailboxes: [SUPPORT], alarms: { staleAfterIntervals: 1 } })).toThrow(
      /staleAfterIntervals: must be an integer from 2/,
    );
  });

  it('passes the staleness limit to the poller, for `status`', () => {
    const { s } = synthesized;
    const fn =
      s.template.findResources('AWS::Lambda::Function')[
        logicalId(s.stack, s.stack.mailboxes.get('quarter-hour')!.function)
      ]!;
    expect(fn.Properties.Environment.Variables.STALE_AFTER_SECONDS).toBe(String(3 * 15 * 60));
  });
});

describe('alarm notifications', () => {
  it('no action unless configured', () => {
    const { stale, failure } = alarms({ mailboxes: [SUPPORT] }).of('support');
    expect(stale.AlarmActions).toBeUndefined();
    expect(failure.AlarmActions).toBeUndefined();
  });

  it('createTopic: a TLS-only topic, alarm and OK actions on both alarms, its ARN as an output', () => {
    const a = alarms({ mailboxes: [SUPPORT], alarms: { createTopic: true } });
    const topic = { Ref: logicalId(a.s.stack, a.s.stack.alarmTopic as never) };
    for (const alarm of [a.of('support').stale, a.of('support').failure]) {
      expect(alarm.AlarmActions).toEqual([topic]);
      expect(alarm.OKActions).toEqual([topic]);
    }
    a.s.template.resourceCountIs('AWS::SNS::Topic', 1);
    const policy = Object.values(a.s.template.findResources('AWS::SNS::TopicPolicy'))[0]!;
    expect(policy.Properties.PolicyDocument.Statement).toEqual([
      expect.objectContaining({ Effect: 'Deny', Condition: { Bool: { 'aws:SecureTransport': 'false' } } }),
    ]);
    expect(a.s.template.findOutputs('AlarmTopicArn').AlarmTopicArn!.Value).toEqual(topic);
  });

  it('topicArn: an existing topic', () => {
    const arn = 'arn:aws:sns:eu-central-1:123456789012:ops-pager';
    const a = alarms({ mailboxes: [SUPPORT], alarms: { topicArn: arn } });
    expect(a.of('support').stale.AlarmActions).toEqual([arn]);
    a.s.template.resourceCountIs('AWS::SNS::Topic', 0);
  });
});

describe('dashboard', () => {
  it('one per stack: alarm states, Logs Insights tables over every poller log group, heartbeat and Lambda graphs', () => {
    const s = synth(CONFIG);
    s.template.resourceCountIs('AWS::CloudWatch::Dashboard', 1);
    const dashboard = Object.values(s.template.findResources('AWS::CloudWatch::Dashboard'))[0]!;
    expect(dashboard.Properties.DashboardName).toBe('ImapEventSource');
    // The body is JSON inside a Fn::Join: undo the two levels of quoting to compare with the query text.
    const body = JSON.stringify(s.stack.resolve(dashboard.Properties.DashboardBody)).replace(/\\+"/g, '"');
    for (const poller of s.stack.mailboxes.values()) {
      expect(body).toContain(logicalId(s.stack, poller.logGroup)); // in the SOURCE of each query
      expect(body).toContain(logicalId(s.stack, poller.staleAlarm));
      expect(body).toContain(logicalId(s.stack, poller.failureAlarm));
    }
    for (const lines of Object.values(DASHBOARD_QUERIES)) {
      for (const line of lines) expect(body).toContain(line);
    }
    expect(body).toContain('PollSucceeded');
    expect(body).toContain('"AWS/Lambda","Duration"');
    expect(body).toContain('"AWS/Lambda","Errors"');
  });

  it('splits the Logs Insights widgets per 50 log groups', () => {
    const many = Array.from({ length: 51 }, (_, i) => ({ id: `m${i}`, secretName: `imap/m${i}` }));
    const s = synth({ mailboxes: many });
    const dashboard = Object.values(s.template.findResources('AWS::CloudWatch::Dashboard'))[0]!;
    const body = JSON.stringify(s.stack.resolve(dashboard.Properties.DashboardBody));
    expect(body).toContain('(part 1)');
    expect(body).toContain('(part 2)');
  });
});

describe('archive and schema registry (opt-in)', () => {
  it('neither by default', () => {
    const s = synth({ mailboxes: [SUPPORT] });
    s.template.resourceCountIs('AWS::Events::Archive', 0);
    s.template.resourceCountIs('AWS::EventSchemas::Registry', 0);
  });

  it('archive: this source on the bus, with the retention, and its name as an output', () => {
    const s = synth({ mailboxes: [SUPPORT], archive: { enabled: true, retentionDays: 90 }, eventSource: 'acme.mail' });
    s.template.hasResourceProperties('AWS::Events::Archive', {
      RetentionDays: 90,
      EventPattern: { source: ['acme.mail'] },
      SourceArn: { 'Fn::GetAtt': [logicalId(s.stack, s.stack.eventBus as never), 'Arn'] },
    });
    expect(Object.keys(s.template.findOutputs('EventArchiveName'))).toEqual(['EventArchiveName']);
  });

  it('registry: both schemas as JSONSchemaDraft4 documents of the whole event', () => {
    const s = synth({ mailboxes: [SUPPORT], schemaRegistry: { enabled: true, registryName: 'mail-events' } });
    s.template.hasResourceProperties('AWS::EventSchemas::Registry', { RegistryName: 'mail-events' });
    const schemas = Object.values(s.template.findResources('AWS::EventSchemas::Schema')).map((r) => r.Properties);
    expect(schemas.map((p) => [p.SchemaName, p.Type, p.RegistryName])).toEqual([
      ['imap-event-source@IMAPMessageReceived', 'JSONSchemaDraft4', 'mail-events'],
      ['imap-event-source@IMAPMailboxReset', 'JSONSchemaDraft4', 'mail-events'],
    ]);
    for (const p of schemas) {
      const content = JSON.parse(p.Content as string) as Record<string, unknown>;
      expect(content.$schema).toBe(DRAFT4);
      expect(keywordsOutsideDraft4(content)).toEqual([]);
    }

    // The Draft 4 document accepts a real reset event and rejects a wrong detail-type (Ajv: draft-07 keywords
    // are a superset of what the document uses; `id` becomes `$id`).
    const reset = JSON.parse(schemas[1]!.Content as string) as Record<string, unknown>;
    const { $schema: _s, id, ...rest } = reset;
    const validate = new Ajv({ strict: false }).compile({ $id: id as string, ...rest });
    const detail = {
      version: '1',
      eventId: 'support:42:reset:41',
      mailboxId: 'support',
      folder: 'INBOX',
      previousUidValidity: '41',
      uidValidity: '42',
      previousLastUid: 7,
      rescanSince: null,
      detectedAt: '2026-11-30T08:00:00.000Z',
    };
    const event = { 'detail-type': 'IMAP Mailbox Reset', source: 'imap-event-source', detail };
    expect(validate(event)).toBe(true);
    expect(validate({ ...event, 'detail-type': 'IMAP Message Received' })).toBe(false);
    expect(validate({ ...event, detail: { ...detail, version: '2' } })).toBe(false);
  });
});

/** Keys used as schema keywords that Draft 4 does not define (property names under properties/definitions excluded). */
function keywordsOutsideDraft4(node: unknown, isMap = false): string[] {
  if (Array.isArray(node)) return node.flatMap((n) => keywordsOutsideDraft4(n));
  if (typeof node !== 'object' || node === null) return [];
  return Object.entries(node).flatMap(([key, value]) => {
    if (isMap) return keywordsOutsideDraft4(value);
    const own = DRAFT4_KEYWORDS.has(key) ? [] : [key];
    if (key === 'enum') return own;
    return [...own, ...keywordsOutsideDraft4(value, key === 'properties' || key === 'definitions')];
  });
}
