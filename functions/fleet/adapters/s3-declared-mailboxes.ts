/**
 * The mailboxes declared in cdk.json (an S3 asset written at deploy time), read only when its ETag changed since
 * this container last read it: a conditional GET costs one request and no transfer while nothing changed.
 */
import { GetObjectCommand, type GetObjectCommandOutput, type S3Client } from '@aws-sdk/client-s3';
import type { DeclaredMailboxesFile } from '../../poller/contract/fleet.js';
import { ConfigurationError } from '../../poller/errors.js';
import { declaredFileProblems } from '../core/registry.js';

/** The file is small (a few hundred bytes per mailbox); anything larger is refused. */
export const MAX_DECLARED_FILE_BYTES = 16 * 1024 * 1024;

export class S3DeclaredMailboxes {
  private etag: string | undefined;

  constructor(
    private readonly client: S3Client,
    private readonly bucket: string,
    private readonly key: string,
  ) {}

  /** The file when it changed since the last successful read (or on the first), else undefined. */
  async readIfChanged(): Promise<{ file: DeclaredMailboxesFile; etag: string } | undefined> {
    let res: GetObjectCommandOutput;
    try {
      res = await this.client.send(
        new GetObjectCommand({ Bucket: this.bucket, Key: this.key, ...(this.etag ? { IfNoneMatch: this.etag } : {}) }),
      );
    } catch (err) {
      const status = (err as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
      if (status === 304 || (err as Error)?.name === 'NotModified') return undefined;
      throw new ConfigurationError(
        `The declared-mailboxes file s3://${this.bucket}/${this.key} cannot be read (${(err as Error)?.name ?? 'Error'}).`,
        {
          cause: err,
          retryable: true,
          hint: 'the fleet construct uploads it at deploy time; redeploy, and grant the dispatcher s3:GetObject on it.',
        },
      );
    }
    const etag = res.ETag ?? '';
    if (etag && etag === this.etag) return undefined;
    if ((res.ContentLength ?? 0) > MAX_DECLARED_FILE_BYTES) {
      throw new ConfigurationError(`The declared-mailboxes file is larger than ${MAX_DECLARED_FILE_BYTES} bytes.`, {
        hint: 'declare fewer mailboxes in cdk.json and add the rest with `imap-event-source mailbox add`.',
      });
    }
    const text = (await res.Body?.transformToString()) ?? '';
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch (err) {
      throw new ConfigurationError('The declared-mailboxes file is not valid JSON.', {
        cause: err,
        hint: 'redeploy the stack.',
      });
    }
    // The worker enforces the secret prefix (and the CDK app checks it at synth); here the shape and rules only.
    const problems = declaredFileProblems(value, '');
    if (problems.length > 0) {
      throw new ConfigurationError(`The declared-mailboxes file is invalid: ${problems.slice(0, 10).join('; ')}.`, {
        hint: 'fix the mailboxes in cdk.json (`cdk synth` names the problems) and redeploy.',
      });
    }
    return { file: value as DeclaredMailboxesFile, etag };
  }

  /** Remembers the ETag once the registry matches the file (a failed sync is retried next cycle). */
  markSynced(etag: string): void {
    this.etag = etag;
  }
}
