/**
 * The event schemas (schema/*.schema.json, JSON Schema 2020-12, describing the `detail`) as EventBridge
 * schema-registry documents. The registry accepts `OpenApi3` or `JSONSchemaDraft4`; Draft 4 is the closer
 * fit, so each detail schema is rewritten into a Draft 4 schema of the whole event (envelope + detail):
 * `$id` -> `id`, `const` -> one-value `enum`, `$defs` -> `definitions` (with the `$ref`s), and any keyword
 * Draft 4 does not know is an error here, at synth time, rather than a failed deploy.
 */
import { existsSync, readFileSync } from 'node:fs';
import { DETAIL_TYPE_MESSAGE, DETAIL_TYPE_RESET } from '../functions/poller/core/types.js';

export const DRAFT4 = 'http://json-schema.org/draft-04/schema#';

/** The Draft 4 vocabulary (validation, metadata, format) the rewritten schemas may use. */
export const DRAFT4_KEYWORDS = new Set([
  '$schema',
  'id',
  '$ref',
  'title',
  'description',
  'default',
  'type',
  'enum',
  'properties',
  'patternProperties',
  'additionalProperties',
  'required',
  'items',
  'additionalItems',
  'minItems',
  'maxItems',
  'uniqueItems',
  'minLength',
  'maxLength',
  'pattern',
  'format',
  'minimum',
  'maximum',
  'exclusiveMinimum',
  'exclusiveMaximum',
  'multipleOf',
  'minProperties',
  'maxProperties',
  'dependencies',
  'allOf',
  'anyOf',
  'oneOf',
  'not',
  'definitions',
]);

/** Keywords whose value is a map of property names (not schema keywords) to schemas. */
const SCHEMA_MAPS = new Set(['properties', 'patternProperties', 'definitions']);

export interface RegistrySchema {
  /** Schema name in the registry: `<source>@<DetailType without spaces>`, as EventBridge names discovered schemas. */
  readonly name: string;
  readonly detailType: string;
  readonly description: string;
  /** JSON text, type JSONSchemaDraft4. */
  readonly content: string;
}

const SCHEMAS = [
  { file: 'message-received', detailType: DETAIL_TYPE_MESSAGE },
  { file: 'mailbox-reset', detailType: DETAIL_TYPE_RESET },
] as const;

/** Reads schema/*.schema.json and returns one registry document per detail type, for events of `source`. */
export function registrySchemas(source: string): RegistrySchema[] {
  return SCHEMAS.map(({ file, detailType }) => {
    const detail = JSON.parse(readFileSync(schemaFile(file), 'utf8')) as Record<string, unknown>;
    return {
      name: `${source}@${detailType.replace(/\s+/g, '')}`,
      detailType,
      description: `${detailType} events of ${source} (detail schema version 1)`,
      content: JSON.stringify(eventSchemaDraft4(detail, { source, detailType })),
    };
  });
}

/** schema/<name>.schema.json from the sources (lib/) or from the compiled package (dist/lib/). */
function schemaFile(name: string): URL {
  const candidates = [`../schema/${name}.schema.json`, `../../schema/${name}.schema.json`].map(
    (path) => new URL(path, import.meta.url),
  );
  return candidates.find((url) => existsSync(url)) ?? candidates[0]!;
}

/** The Draft 4 schema of a whole event whose `detail` follows the given 2020-12 schema. */
export function eventSchemaDraft4(
  detail: Record<string, unknown>,
  event: { source: string; detailType: string },
): Record<string, unknown> {
  const { $schema: _s, $id, $defs, title, ...rest } = detail;
  const converted = toDraft4(rest, 'detail') as Record<string, unknown>;
  return {
    $schema: DRAFT4,
    ...(typeof $id === 'string' ? { id: $id } : {}),
    title: event.detailType,
    type: 'object',
    required: ['detail-type', 'source', 'detail'],
    properties: {
      version: { type: 'string' },
      id: { type: 'string' },
      'detail-type': { type: 'string', enum: [event.detailType] },
      source: { type: 'string', enum: [event.source] },
      account: { type: 'string' },
      time: { type: 'string', format: 'date-time' },
      region: { type: 'string' },
      resources: { type: 'array', items: { type: 'string' } },
      detail: { ...(typeof title === 'string' ? { title } : {}), ...converted },
    },
    ...($defs ? { definitions: toDraft4($defs, 'definitions', true) } : {}),
  };
}

function toDraft4(node: unknown, path: string, isMap = false): unknown {
  if (Array.isArray(node)) return node.map((item, i) => toDraft4(item, `${path}[${i}]`));
  if (typeof node !== 'object' || node === null) return node;
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(node)) {
    if (isMap) {
      out[key] = toDraft4(value, `${path}.${key}`);
      continue;
    }
    if (key === 'const') {
      out.enum = [value];
    } else if (key === '$ref' && typeof value === 'string') {
      out.$ref = value.replace(/^#\/\$defs\//, '#/definitions/');
    } else if (!DRAFT4_KEYWORDS.has(key)) {
      throw new Error(`event schema ${path}: keyword "${key}" has no JSON Schema Draft 4 equivalent`);
    } else if (key === 'items' || key === 'additionalProperties' || key === 'not' || key.endsWith('Of')) {
      out[key] = toDraft4(value, `${path}.${key}`);
    } else {
      out[key] = SCHEMA_MAPS.has(key) ? toDraft4(value, `${path}.${key}`, true) : value;
    }
  }
  return out;
}
