/** Small, plausible RFC 822 messages for the demo mailbox. */

const CUSTOMERS = [
  ['Ada Lovelace', 'ada@customer-a.example'],
  ['Grace Hopper', 'grace@customer-b.example'],
  ['Alan Turing', 'alan@customer-c.example'],
  ['Katherine Johnson', 'katherine@customer-d.example'],
  ['Edsger Dijkstra', 'edsger@customer-e.example'],
] as const;

const TOPICS = [
  ['Order {n}: delivery date?', 'Hello,\r\n\r\ncould you tell me when order {n} will be delivered?\r\n\r\nThanks'],
  [
    'Invoice {n} attached',
    'Hi team,\r\n\r\nplease find the details of invoice {n} below.\r\nAmount: 1,234.56 EUR\r\n\r\nBest regards',
  ],
  [
    'Question about my contract ({n})',
    'Good morning,\r\n\r\nI would like to change the billing address of contract {n}.\r\n\r\nKind regards',
  ],
  ['Complaint: ticket {n}', 'Hello,\r\n\r\nthe replacement part for ticket {n} has still not arrived.\r\n\r\nRegards'],
] as const;

/** The n-th demo message (1-based): deterministic, so repeated runs look alike. */
export function demoMessage(n: number, date = new Date()): string {
  const [name, address] = CUSTOMERS[(n - 1) % CUSTOMERS.length]!;
  const [subject, body] = TOPICS[(n - 1) % TOPICS.length]!;
  const ref = String(1000 + n);
  return [
    `From: ${name} <${address}>`,
    'To: Customer Service <service@firma.example>',
    `Subject: ${subject.replace('{n}', ref)}`,
    `Date: ${date.toUTCString().replace('GMT', '+0000')}`,
    `Message-ID: <demo-${ref}-${date.getTime()}@customer.example>`,
    'MIME-Version: 1.0',
    'Content-Type: text/plain; charset=utf-8',
    '',
    `${body.replace('{n}', ref)}\r\n${name}`,
    '',
  ].join('\r\n');
}
