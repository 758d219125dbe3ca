/**
 * A small evaluator of CloudWatch metric alarms (static threshold, one metric), to feed the synthesized
 * alarms synthetic datapoints: periods aligned to multiples of `Period` since the epoch, one value per period
 * (the statistic applied to the samples in it, absent when there are none), the last `EvaluationPeriods`
 * complete periods evaluated, ALARM when at least `DatapointsToAlarm` of them breach. Missing periods count
 * as breaching or not per `TreatMissingData`; `missing` and `ignore` (which look further back) are not modelled.
 */

export interface AlarmProperties {
  readonly Period: number;
  readonly EvaluationPeriods: number;
  readonly DatapointsToAlarm?: number;
  readonly Threshold: number;
  readonly ComparisonOperator: string;
  readonly TreatMissingData?: string;
  readonly Statistic?: string;
}

/** A metric sample: epoch seconds and value (what one PutMetricData / EMF line contributes). */
export interface Sample {
  readonly t: number;
  readonly value: number;
}

export function compare(operator: string, value: number, threshold: number): boolean {
  switch (operator) {
    case 'GreaterThanOrEqualToThreshold':
      return value >= threshold;
    case 'GreaterThanThreshold':
      return value > threshold;
    case 'LessThanThreshold':
      return value < threshold;
    case 'LessThanOrEqualToThreshold':
      return value <= threshold;
    default:
      throw new Error(`comparison ${operator} is not modelled`);
  }
}

/** The alarm state at time `now` (epoch seconds), from all samples so far. */
export function alarmState(alarm: AlarmProperties, samples: readonly Sample[], now: number): 'ALARM' | 'OK' {
  if (alarm.Statistic !== undefined && alarm.Statistic !== 'Sum') throw new Error('only Sum is modelled');
  const missing = alarm.TreatMissingData ?? 'missing';
  if (missing !== 'breaching' && missing !== 'notBreaching')
    throw new Error(`TreatMissingData ${missing} is not modelled`);
  const lastComplete = Math.floor(now / alarm.Period) - 1;
  let breaching = 0;
  for (let p = lastComplete - alarm.EvaluationPeriods + 1; p <= lastComplete; p++) {
    const inPeriod = samples.filter((s) => Math.floor(s.t / alarm.Period) === p);
    if (inPeriod.length === 0) {
      if (missing === 'breaching') breaching++;
      continue;
    }
    const sum = inPeriod.reduce((a, s) => a + s.value, 0);
    if (compare(alarm.ComparisonOperator, sum, alarm.Threshold)) breaching++;
  }
  return breaching >= (alarm.DatapointsToAlarm ?? alarm.EvaluationPeriods) ? 'ALARM' : 'OK';
}

/** The first evaluation time (stepping by one minute from `from` to `to`) at which the alarm is in ALARM. */
export function firstAlarm(
  alarm: AlarmProperties,
  samples: readonly Sample[],
  from: number,
  to: number,
): number | undefined {
  for (let now = from; now <= to; now += 60) if (alarmState(alarm, samples, now) === 'ALARM') return now;
  return undefined;
}
