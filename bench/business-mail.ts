/**
 * Typical German business mail for benchmarks: 2-5 KB, quoted-printable UTF-8, a third of it
 * multipart/alternative (text + HTML, as Outlook sends it), a reply thread now and then.
 * Deterministic for a seed, so BEFORE and AFTER runs drain the same backlog.
 */
import { prng } from '../test/support/prng.js';

const NAMES = [
  ['Jürgen', 'Müller'],
  ['Sabine', 'Schäfer'],
  ['Özlem', 'Yılmaz'],
  ['Björn', 'Weiß'],
  ['Käthe', 'Groß'],
  ['Uwe', 'Schröder'],
  ['Anja', 'Köhler'],
  ['Lukas', 'Bäcker'],
] as const;
const COMPANIES = ['Müller & Söhne GmbH', 'Bäckerei Groß KG', 'Schröder Logistik AG', 'Weiß Maschinenbau GmbH'];
const SUBJECTS = [
  'Rückfrage zu Ihrer Bestellung',
  'Angebot für die Wartung im März',
  'Lieferverzögerung – neue Termine',
  'Rechnungskorrektur Nr.',
  'Bitte um Rückruf wegen Reklamation',
  'Änderung der Lieferadresse',
  'Terminbestätigung Schulung Qualitätssicherung',
];
const SENTENCES = [
  'vielen Dank für Ihre Nachricht und die ausführliche Beschreibung des Problems.',
  'Wir haben den Vorgang geprüft und können Ihnen heute folgende Lösung anbieten.',
  'Die Lieferung verzögert sich leider um etwa zwei Wochen, da unser Zulieferer Engpässe meldet.',
  'Bitte senden Sie uns die Rechnung mit der korrigierten Umsatzsteuer-Identifikationsnummer erneut zu.',
  'Für Rückfragen stehe ich Ihnen selbstverständlich jederzeit gern zur Verfügung.',
  'Gemäß unserem Gespräch vom Dienstag übersende ich Ihnen anbei die überarbeiteten Unterlagen.',
  'Die Maßnahmen zur Qualitätssicherung werden ab dem nächsten Quartal schrittweise eingeführt.',
  'Könnten Sie uns bitte mitteilen, ob der Termin am Donnerstag um 14:00 Uhr für Sie passt?',
  'Die Gewährleistung umfasst sämtliche Bauteile, ausgenommen Verschleißteile wie Dichtungen und Filter.',
  'Unser Außendienstmitarbeiter wird sich in den nächsten Tagen telefonisch bei Ihnen melden.',
];

/** Quoted-printable (RFC 2045) of UTF-8 text: CRLF line ends, soft breaks at 76 characters. */
export function quotedPrintable(text: string): string {
  const out: string[] = [];
  for (const line of text.split(/\r?\n/)) {
    let encoded = '';
    for (const byte of Buffer.from(line, 'utf8')) {
      encoded +=
        (byte >= 33 && byte <= 126 && byte !== 61) || byte === 32
          ? String.fromCharCode(byte)
          : `=${byte.toString(16).toUpperCase().padStart(2, '0')}`;
    }
    if (encoded.endsWith(' ')) encoded = `${encoded.slice(0, -1)}=20`;
    while (encoded.length > 76) {
      let cut = 75;
      // never split an =XX escape
      if (encoded[cut - 1] === '=') cut -= 1;
      else if (encoded[cut - 2] === '=') cut -= 2;
      out.push(`${encoded.slice(0, cut)}=`);
      encoded = encoded.slice(cut);
    }
    out.push(encoded);
  }
  return out.join('\r\n');
}

function encodedWord(value: string): string {
  return /^[\x20-\x7e]*$/.test(value)
    ? value
    : `=?UTF-8?Q?${quotedPrintable(value)
        .replace(/[ ?_]/g, (c) => (c === ' ' ? '_' : `=${c.charCodeAt(0).toString(16).toUpperCase()}`))
        .replace(/=\r\n/g, '')}?=`;
}

/** Message `index` of the backlog (1-based), as RFC 822 bytes. */
export function businessMail(index: number, seed = 11): Buffer {
  const rnd = prng(seed * 1_000_003 + index);
  const pick = <T>(list: readonly T[]): T => list[Math.floor(rnd() * list.length)]!;
  const [first, last] = pick(NAMES);
  const company = pick(COMPANIES);
  const subject = `${index % 5 === 0 ? 'AW: ' : ''}${pick(SUBJECTS)} ${10_000 + index}`;
  const paragraphs: string[] = [];
  const target = 700 + Math.floor(rnd() * 1_300); // body text; with headers and HTML 2-5 KB
  let length = 0;
  while (length < target) {
    const paragraph = Array.from({ length: 2 + Math.floor(rnd() * 3) }, () => pick(SENTENCES)).join(' ');
    paragraphs.push(paragraph);
    length += paragraph.length;
  }
  const text = `Sehr geehrte Damen und Herren,\n\n${paragraphs.join('\n\n')}\n\nMit freundlichen Grüßen\n${first} ${last}\n${company}\nTel. +49 30 1234567-${index % 100}`;
  const date = new Date(Date.UTC(2026, 10, 2, 8, 0, 0) + index * 61_000);
  const headers = [
    `From: ${encodedWord(`${first} ${last}`)} <${ascii(first)}.${ascii(last)}@${ascii(company.split(' ')[0]!)}.example>`,
    'To: Kundenbetreuung <kundenbetreuung@firma.example>',
    ...(index % 7 === 0 ? ['Cc: Vertrieb <vertrieb@firma.example>'] : []),
    `Subject: ${encodedWord(subject)}`,
    `Date: ${date.toUTCString().replace('GMT', '+0000')}`,
    `Message-ID: <${index}.${seed}.backlog@mail.example>`,
    ...(index % 5 === 0 ? [`In-Reply-To: <${index - 1}.${seed}.backlog@mail.example>`] : []),
    'MIME-Version: 1.0',
  ];
  let body: string;
  if (index % 3 === 0) {
    const html = `<html><head><meta charset="utf-8"></head><body><p>${text
      .split('\n\n')
      .map((p) => p.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/\n/g, '<br>'))
      .join('</p>\n<p>')}</p></body></html>`;
    const boundary = `----=_Part_${index}_${seed}`;
    headers.push(`Content-Type: multipart/alternative; boundary="${boundary}"`);
    body = [
      `--${boundary}`,
      'Content-Type: text/plain; charset=utf-8',
      'Content-Transfer-Encoding: quoted-printable',
      '',
      quotedPrintable(text),
      `--${boundary}`,
      'Content-Type: text/html; charset=utf-8',
      'Content-Transfer-Encoding: quoted-printable',
      '',
      quotedPrintable(html),
      `--${boundary}--`,
      '',
    ].join('\r\n');
  } else {
    headers.push('Content-Type: text/plain; charset=utf-8', 'Content-Transfer-Encoding: quoted-printable');
    body = `${quotedPrintable(text)}\r\n`;
  }
  return Buffer.from(`${headers.join('\r\n')}\r\n\r\n${body}`, 'latin1');
}

function ascii(value: string): string {
  return value
    .normalize('NFD')
    .replace(/[^a-zA-Z]/g, '')
    .toLowerCase();
}
