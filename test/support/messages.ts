/** A tiny builder for RFC 822 test messages (CRLF line ends). */
import { randomBytes } from 'node:crypto';

export interface MessageSpec {
  from?: string;
  to?: string;
  cc?: string;
  subject?: string;
  /** With angle brackets; a unique one is generated when omitted. */
  messageId?: string;
  inReplyTo?: string;
  date?: Date;
  body?: string;
  /** Extra header lines, e.g. `{ 'Content-Type': 'text/html; charset=utf-8' }`. */
  headers?: Record<string, string>;
}

/** RFC 2047 encoded-word for non-ASCII header text. */
function encodeHeader(value: string): string {
  return /^[\p{ASCII}]*$/u.test(value) ? value : `=?UTF-8?B?${Buffer.from(value, 'utf8').toString('base64')}?=`;
}

export function buildMessage(spec: MessageSpec = {}): Buffer {
  const headers: Record<string, string> = {
    From: spec.from ?? 'Alice Example <alice@example.com>',
    To: spec.to ?? 'Support <support@example.com>',
    ...(spec.cc ? { Cc: spec.cc } : {}),
    Subject: encodeHeader(spec.subject ?? 'Test message'),
    'Message-ID': spec.messageId ?? `<${randomBytes(8).toString('hex')}@test.example.com>`,
    ...(spec.inReplyTo ? { 'In-Reply-To': spec.inReplyTo } : {}),
    Date: (spec.date ?? new Date()).toUTCString().replace('GMT', '+0000'),
    'MIME-Version': '1.0',
    'Content-Type': 'text/plain; charset=utf-8',
    'Content-Transfer-Encoding': '8bit',
    ...spec.headers,
  };
  const head = Object.entries(headers)
    .map(([k, v]) => `${k}: ${v}`)
    .join('\r\n');
  const body = (spec.body ?? 'Hello.\n').replace(/\r?\n/g, '\r\n');
  return Buffer.from(`${head}\r\n\r\n${body}`, 'utf8');
}
