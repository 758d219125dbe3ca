/**
 * An HTTP proxy in front of moto_server's EventBridge API that records every entry EventBridge accepted (the
 * request's entry paired with the response's `EventId`). Point `AWS_ENDPOINT_URL_EVENTBRIDGE` at `url`. For counting
 * thousands of published events: moto's rule delivery to SQS costs ~180 ms per event, the recorder nothing.
 */
import { createServer, type Server } from 'node:http';

export interface RecordedEntry {
  readonly source: string;
  readonly detailType: string;
  readonly detail: Record<string, unknown>;
}

export class EventRecorder {
  readonly accepted: RecordedEntry[] = [];
  /** PutEvents calls seen. */
  calls = 0;

  private constructor(
    private readonly server: Server,
    readonly url: string,
  ) {}

  static async start(upstream: string): Promise<EventRecorder> {
    let recorder: EventRecorder | undefined;
    const server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', async () => {
        const body = Buffer.concat(chunks);
        try {
          const headers = Object.fromEntries(
            Object.entries(req.headers).filter(([k, v]) => typeof v === 'string' && k !== 'host' && k !== 'connection'),
          ) as Record<string, string>;
          const answer = await fetch(new URL(req.url ?? '/', upstream), {
            method: req.method ?? 'POST',
            headers,
            ...(body.length ? { body } : {}),
          });
          const text = await answer.text();
          if (req.headers['x-amz-target'] === 'AWSEvents.PutEvents' && answer.ok) recorder!.note(body.toString(), text);
          res.writeHead(answer.status, { 'content-type': answer.headers.get('content-type') ?? 'application/json' });
          res.end(text);
        } catch (err) {
          res.writeHead(502);
          res.end(String(err));
        }
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
    recorder = new EventRecorder(server, `http://127.0.0.1:${(server.address() as { port: number }).port}`);
    return recorder;
  }

  private note(request: string, response: string): void {
    this.calls++;
    const entries = (JSON.parse(request) as { Entries: { Source: string; DetailType: string; Detail: string }[] })
      .Entries;
    const results = (JSON.parse(response) as { Entries?: { EventId?: string }[] }).Entries ?? [];
    entries.forEach((e, i) => {
      if (results[i]?.EventId)
        this.accepted.push({ source: e.Source, detailType: e.DetailType, detail: JSON.parse(e.Detail) });
    });
  }

  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}
