/** The poll queue (SQS): one message per mailbox to poll now (contract `PollRequest`). */
import {
  GetQueueAttributesCommand,
  SendMessageBatchCommand,
  SendMessageCommand,
  type SQSClient,
} from '@aws-sdk/client-sqs';
import type { PollRequest } from '../../poller/contract/fleet.js';

/** SendMessageBatch takes at most 10 entries. */
export const SQS_BATCH = 10;
/** SQS's longest message delay. */
export const MAX_DELAY_SECONDS = 900;

export class SqsPollQueue {
  constructor(
    private readonly client: SQSClient,
    private readonly queueUrl: string,
  ) {}

  /** Sends the requests, 10 per call; returns the mailbox ids whose message SQS did not take. */
  async sendAll(requests: readonly PollRequest[]): Promise<string[]> {
    const failed: string[] = [];
    for (let i = 0; i < requests.length; i += SQS_BATCH) {
      const chunk = requests.slice(i, i + SQS_BATCH);
      try {
        const res = await this.client.send(
          new SendMessageBatchCommand({
            QueueUrl: this.queueUrl,
            Entries: chunk.map((r, j) => ({ Id: String(j), MessageBody: JSON.stringify(r) })),
          }),
        );
        for (const f of res.Failed ?? []) failed.push(chunk[Number(f.Id)]!.mailboxId);
      } catch {
        // The whole call failed after the SDK's retries: none of these went out.
        failed.push(...chunk.map((r) => r.mailboxId));
      }
    }
    return failed;
  }

  /**
   * Requests waiting to be received (ApproximateNumberOfMessages: visible ones; not those in flight or delayed), for
   * the dispatcher's backlog guard. Undefined when SQS does not say (the cycle then goes on without the guard).
   */
  async backlog(): Promise<number | undefined> {
    try {
      const res = await this.client.send(
        new GetQueueAttributesCommand({ QueueUrl: this.queueUrl, AttributeNames: ['ApproximateNumberOfMessages'] }),
      );
      const value = res.Attributes?.ApproximateNumberOfMessages;
      const n = value !== undefined && /^\d+$/.test(value) ? Number(value) : Number.NaN;
      return Number.isSafeInteger(n) ? n : undefined;
    } catch {
      return undefined;
    }
  }

  /** Sends one request, delivered after `delaySeconds` (at most 15 min). */
  async send(request: PollRequest, delaySeconds = 0): Promise<void> {
    await this.client.send(
      new SendMessageCommand({
        QueueUrl: this.queueUrl,
        MessageBody: JSON.stringify(request),
        DelaySeconds: Math.max(0, Math.min(MAX_DELAY_SECONDS, Math.round(delaySeconds))),
      }),
    );
  }
}

/** A message body as the dispatcher wrote it, validated (the queue is ours, but trust nothing); undefined if not one. */
export function parsePollRequest(body: string): PollRequest | undefined {
  let value: unknown;
  try {
    value = JSON.parse(body);
  } catch {
    return undefined;
  }
  const r = value as Partial<PollRequest> | null;
  if (typeof r?.mailboxId !== 'string' || typeof r.sentAt !== 'number' || !Number.isFinite(r.sentAt)) return undefined;
  return { mailboxId: r.mailboxId, sentAt: r.sentAt };
}
