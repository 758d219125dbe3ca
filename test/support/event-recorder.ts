/**
 * Records every entry EventBridge accepted (the request's entry paired with the response's `EventId`), through an
 * AwsProxy in front of moto_server's EventBridge API. Point `AWS_ENDPOINT_URL_EVENTBRIDGE` at `url`. For counting
 * thousands of published events: moto's rule delivery to SQS costs ~180 ms per event, the recorder nothing.
 */
import { AwsProxy, type ProxiedCall } from './aws-proxy.js';

export interface RecordedEntry {
  readonly source: string;
  readonly detailType: string;
  readonly detail: Record<string, unknown>;
}

export class EventRecorder {
  readonly accepted: RecordedEntry[] = [];
  /** PutEvents calls seen. */
  calls = 0;
  private proxy!: AwsProxy;

  static async start(upstream: string): Promise<EventRecorder> {
    const recorder = new EventRecorder();
    recorder.proxy = await AwsProxy.start(upstream, (call) => recorder.note(call));
    return recorder;
  }

  get url(): string {
    return this.proxy.url;
  }

  private note(call: ProxiedCall): void {
    if (call.target !== 'AWSEvents.PutEvents' || !call.ok) return;
    this.calls++;
    const entries = (JSON.parse(call.request) as { Entries: { Source: string; DetailType: string; Detail: string }[] })
      .Entries;
    const results = (JSON.parse(call.response) as { Entries?: { EventId?: string }[] }).Entries ?? [];
    entries.forEach((e, i) => {
      if (results[i]?.EventId)
        this.accepted.push({ source: e.Source, detailType: e.DetailType, detail: JSON.parse(e.Detail) });
    });
  }

  close(): Promise<void> {
    return this.proxy.close();
  }
}
