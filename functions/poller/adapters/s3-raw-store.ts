import type { Readable } from 'node:stream';
import type { S3Client } from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { RawStorageError } from '../errors.js';
import type { CallOptions, RawMessageStore } from '../ports.js';

/**
 * The original RFC 822 message, streamed to S3 with a multipart upload (bounded memory: 5 MiB parts, one in
 * flight, never the whole message). Keys are deterministic, so a retry overwrites instead of duplicating.
 */
export class S3RawMessageStore implements RawMessageStore {
  constructor(
    private readonly client: S3Client,
    private readonly bucket: string,
  ) {}

  async put(
    key: string,
    body: NodeJS.ReadableStream,
    size: number,
    options: CallOptions = {},
  ): Promise<{ bucket: string; key: string; size: number }> {
    let bytes = 0;
    body.on('data', (chunk: Buffer) => (bytes += chunk.length));
    try {
      const upload = new Upload({
        client: this.client,
        params: { Bucket: this.bucket, Key: key, Body: body as never, ContentType: 'message/rfc822' },
        // One part in flight, of S3's minimum part size. With two, the peak RSS for a 50 MB message spread wider
        // (bench/large-message.ts, 24 runs each: 132-159 MB, 5 runs over the 150 MB target; with one: 124-144 MB);
        // the upload is rarely the slower side anyway: the IMAP download fetches 64 KB chunks one after another.
        queueSize: 1,
        partSize: 5 * 1024 * 1024,
        leavePartsOnError: false,
      });
      // The run gave up on this upload: stop it (and its multipart parts) instead of leaving it running.
      const abort = (): void => void upload.abort().catch(() => {});
      options.signal?.addEventListener('abort', abort, { once: true });
      try {
        if (options.signal?.aborted) abort();
        await upload.done();
      } finally {
        options.signal?.removeEventListener('abort', abort);
      }
    } catch (err) {
      // Release the IMAP download that fed the upload (it would wait for a reader until the session closes).
      (body as Partial<Readable>).destroy?.();
      throw new RawStorageError(
        `Storing the raw message in bucket "${this.bucket}" failed (${(err as Error)?.name ?? 'Error'}).`,
        {
          cause: err,
          hint: 'check that the bucket exists and the function may s3:PutObject to it; the next poll retries.',
        },
      );
    }
    return { bucket: this.bucket, key, size: bytes || size };
  }
}
