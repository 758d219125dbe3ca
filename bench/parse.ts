/**
 * Benchmark: CPU time and RSS of parsing hostile 2 MiB inputs (the download bound) with parseMessageContent.
 * The parser's work grows with lines and nesting, not only bytes; MAX_PARSE_LINES and the nesting limits bound it.
 *   node --import tsx bench/parse.ts
 */
import { parseMessageContent } from '../functions/poller/core/message-content.js';

const head = 'From: a@example.com\r\nTo: b@example.com\r\nSubject: x\r\nMIME-Version: 1.0\r\n';
const base64Line = `${'QUJD'.repeat(19)}\r\n`;
const cases: Record<string, string> = {
  'base64 attachment (the normal case)': `${head}Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nHello\r\n--b\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\n${base64Line.repeat(40_000)}--b--\r\n`,
  'empty lines, text/plain': `${head}Content-Type: text/plain\r\n\r\n${'\r\n'.repeat(1024 * 1024)}`,
  'one-character lines in a multipart': `${head}Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\n${'a\r\n'.repeat(700_000)}--b--\r\n`,
  'message/rfc822 nested 20,000 deep': `${`${head}Content-Type: message/rfc822\r\n\r\n`.repeat(20_000)}body\r\n`,
};
for (const [name, text] of Object.entries(cases)) {
  const bytes = new Uint8Array(Buffer.from(text).subarray(0, 2 * 1024 * 1024));
  const cpu = process.cpuUsage();
  const t0 = performance.now();
  const content = await parseMessageContent(bytes, { partial: false });
  const used = process.cpuUsage(cpu);
  console.log(
    `${name}: ${(bytes.length / 1024 / 1024).toFixed(1)} MiB in ${(performance.now() - t0).toFixed(0)} ms ` +
      `(CPU ${((used.user + used.system) / 1000).toFixed(0)} ms), partial=${content.partial}, attachments=${content.attachments.length}, ` +
      `RSS ${(process.memoryUsage().rss / 1024 / 1024).toFixed(0)} MB`,
  );
}
