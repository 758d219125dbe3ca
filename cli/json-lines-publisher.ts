/**
 * EventPublisher that prints events instead of sending them: one JSON object per line on stdout, shaped
 * like the event an EventBridge rule target receives (`source`, `detail-type`, `time`, `detail`), so the
 * output can be piped into `jq` or a consumer's test.
 */
import type { EventEntry } from '../functions/poller/core/types.js';
import type { EventPublisher, PublishResult } from '../functions/poller/ports.js';

/** Where the lines go; `callback` is called once a line is written (process.stdout does). */
export interface LineSink {
  write(text: string, callback: (err?: Error | null) => void): unknown;
}

export class JsonLinesPublisher implements EventPublisher {
  constructor(
    private readonly out: LineSink,
    private readonly options: { now: () => Date; pretty?: boolean },
  ) {}

  async publish(entries: readonly EventEntry[]): Promise<PublishResult> {
    for (const entry of entries) {
      const event = {
        source: entry.Source,
        'detail-type': entry.DetailType,
        time: this.options.now().toISOString(),
        detail: JSON.parse(entry.Detail) as unknown,
      };
      const text = this.options.pretty ? JSON.stringify(event, null, 2) : JSON.stringify(event);
      // Wait for each write: a poll's checkpoint must not pass an event that never left the process.
      await new Promise<void>((resolve, reject) =>
        this.out.write(`${text}\n`, (err) => (err ? reject(err) : resolve())),
      );
    }
    return { accepted: new Set(entries.map((_, i) => i)), failed: new Map() };
  }
}
