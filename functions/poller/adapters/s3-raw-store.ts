import { S3Client } from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { RawStorageError } from '../errors';
import type { RawMessageStore } from '../ports';

/**
 * The original RFC 822 message, streamed to S3 with a multipart upload (bounded memory: a few 5 MB parts,
 * never the whole message). Keys are deterministic, so a retry overwrites instead of duplicating.
 */
export class S3RawMessageStore implements RawMessageStore {
  constructor(
    private readonly client: S3Client,
    private readonly bucket: string,
  ) {}

  async put(key: string, body: NodeJS.ReadableStream, size: number): Promise<{ bucket: string; key: string; size: number }> {
    let bytes = 0;
    body.on('data', (chunk: Buffer) => (bytes += chunk.length));
    try {
      const upload = new Upload({
        client: this.client,
        params: { Bucket: this.bucket, Key: key, Body: body as never, ContentType: 'message/rfc822' },
        queueSize: 2,
        partSize: 5 * 1024 * 1024,
        leavePartsOnError: false,
      });
      await upload.done();
    } catch (err) {
      throw new RawStorageError(`Storing the raw message in bucket "${this.bucket}" failed (${(err as Error)?.name ?? 'Error'}).`, {
        cause: err,
        hint: 'check that the bucket exists and the function may s3:PutObject to it; the next poll retries.',
      });
    }
    return { bucket: this.bucket, key, size: bytes || size };
  }
}

/** `<mailboxId>/<uidValidity>/<uid>.eml`: one object per message, stable across retries. */
export function rawMessageKey(mailboxId: string, uidValidity: string, uid: number): string {
  return `${mailboxId}/${uidValidity}/${uid}.eml`;
}
