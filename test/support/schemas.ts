/** The shipped JSON Schemas compiled once with Ajv 2020 + formats, for tests that validate event details. */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Ajv2020 } from 'ajv/dist/2020.js';
import addFormatsModule from 'ajv-formats';
import type { MailboxResetDetail, MessageReceivedDetail } from '../../types/index.js';

// ajv-formats is CommonJS with `exports.default`: under NodeNext the default import is the module object.
const addFormats = addFormatsModule as unknown as typeof addFormatsModule.default;

const ajv = new Ajv2020({ allErrors: true, strict: true });
addFormats(ajv);

function load(name: string): object {
  return JSON.parse(readFileSync(join(import.meta.dirname, '../../schema', `${name}.schema.json`), 'utf8')) as object;
}

export const validateMessageDetail = ajv.compile<MessageReceivedDetail>(load('message-received'));
export const validateResetDetail = ajv.compile<MailboxResetDetail>(load('mailbox-reset'));
