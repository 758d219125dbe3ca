/**
 * An HTTP proxy in front of moto_server that shows a test every AWS JSON-protocol call its code under test makes
 * (the `x-amz-target` operation, the request and response bodies), over a real socket. Point the service's
 * `AWS_ENDPOINT_URL_<SERVICE>` at `url`. Observers: EventRecorder (what EventBridge accepted) and DynamoDbCallLog
 * (which table calls a poll makes: the cost model's write and read units).
 *
 * `atomicItems` makes the DynamoDB behind it behave as DynamoDB does where moto_server does not: writes to one item
 * take effect one after the other. moto_server answers requests on threads and checks a write's condition without a
 * lock, so two conditional PutItems on one key at the same instant can both succeed there (measured: 5 of 200 rounds
 * of 8 simultaneous `attribute_not_exists(pk)` puts on a quiet machine had two winners). Host slots and leases rely on
 * exactly one winner; a test that races them runs its table calls through this proxy.
 */
import { Agent, createServer, type IncomingHttpHeaders, request, type Server } from 'node:http';

export interface ProxiedCall {
  /** The operation, e.g. `DynamoDB_20120810.PutItem`, `AWSEvents.PutEvents`. */
  readonly target: string;
  readonly request: string;
  readonly response: string;
  readonly ok: boolean;
}

export interface AwsProxyOptions {
  /** DynamoDB writes to one item (table and `pk`) are forwarded one at a time, as DynamoDB applies them. */
  readonly atomicItems?: boolean;
}

export class AwsProxy {
  private constructor(
    private readonly server: Server,
    private readonly agent: Agent,
    readonly url: string,
  ) {}

  static async start(
    upstream: string,
    observe: (call: ProxiedCall) => void,
    options: AwsProxyOptions = {},
  ): Promise<AwsProxy> {
    const items = new ItemQueues();
    // Connections to moto_server are kept and reused (fetch's machinery cost several times this per call).
    const agent = new Agent({ keepAlive: true });
    const server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', async () => {
        const body = Buffer.concat(chunks);
        const item = options.atomicItems ? writtenItem(req.headers['x-amz-target'], body) : undefined;
        const done = item === undefined ? undefined : await items.enter(item);
        try {
          const answer = await forward(
            agent,
            new URL(req.url ?? '/', upstream),
            req.method ?? 'POST',
            req.headers,
            body,
          );
          const text = answer.body.toString();
          const ok = answer.status >= 200 && answer.status < 300;
          const target = req.headers['x-amz-target'];
          if (typeof target === 'string') observe({ target, request: body.toString(), response: text, ok });
          res.writeHead(answer.status, { 'content-type': answer.contentType ?? 'application/json' });
          res.end(text);
        } catch (err) {
          res.writeHead(502);
          res.end(String(err));
        } finally {
          done?.();
        }
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
    return new AwsProxy(server, agent, `http://127.0.0.1:${(server.address() as { port: number }).port}`);
  }

  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
    this.agent.destroy();
  }
}

/** One request upstream with the client's headers (but its own `host`, `connection` and length); the whole answer. */
function forward(
  agent: Agent,
  url: URL,
  method: string,
  incoming: IncomingHttpHeaders,
  body: Buffer,
): Promise<{ status: number; contentType?: string; body: Buffer }> {
  const headers: Record<string, string> = {};
  for (const [k, v] of Object.entries(incoming)) {
    if (typeof v === 'string' && !HOP_HEADERS.has(k)) headers[k] = v;
  }
  if (body.length) headers['content-length'] = String(body.length);
  return new Promise((resolve, reject) => {
    const out = request(url, { method, headers, agent }, (answer) => {
      const chunks: Buffer[] = [];
      answer.on('data', (c: Buffer) => chunks.push(c));
      answer.on('error', reject);
      answer.on('end', () =>
        resolve({
          status: answer.statusCode ?? 502,
          ...(answer.headers['content-type'] ? { contentType: answer.headers['content-type'] } : {}),
          body: Buffer.concat(chunks),
        }),
      );
    });
    out.on('error', reject);
    out.end(body.length ? body : undefined);
  });
}

/** Headers that describe the client's connection to the proxy, not the request. */
const HOP_HEADERS = new Set(['host', 'connection', 'content-length', 'transfer-encoding', 'keep-alive']);

/** One queue per item: `enter` resolves when the writes before it on the same item are answered. */
class ItemQueues {
  private readonly tails = new Map<string, Promise<void>>();

  async enter(item: string): Promise<() => void> {
    const before = this.tails.get(item) ?? Promise.resolve();
    let done!: () => void;
    const mine = new Promise<void>((resolve) => {
      done = resolve;
    });
    const tail = before.then(() => mine);
    this.tails.set(item, tail);
    await before;
    return () => {
      done();
      if (this.tails.get(item) === tail) this.tails.delete(item);
    };
  }
}

/** The item a single-item DynamoDB write targets (`table pk`), or undefined for any other call. */
function writtenItem(target: string | string[] | undefined, body: Buffer): string | undefined {
  if (typeof target !== 'string' || !target.startsWith('DynamoDB_')) return undefined;
  if (!ITEM_WRITES.has(target.split('.')[1] ?? '')) return undefined;
  let request: { TableName?: string } & KeyOrItem;
  try {
    request = JSON.parse(body.toString());
  } catch {
    return undefined; // moto answers it with its own error
  }
  const pk = keyOf(request);
  return pk === undefined ? undefined : `${request.TableName} ${pk}`;
}

type KeyOrItem = { Key?: { pk?: { S?: string } }; Item?: { pk?: { S?: string } } };

function keyOf(request: KeyOrItem): string | undefined {
  return request.Key?.pk?.S ?? request.Item?.pk?.S;
}

const ITEM_WRITES = new Set(['PutItem', 'UpdateItem', 'DeleteItem']);

/** One DynamoDB call as the table sees it: the operation and the `pk` of the item it reads or writes. */
export interface TableCall {
  readonly operation: string;
  readonly pk?: string;
  /** The call's condition failed (a conditional write that still costs a write unit). */
  readonly conditionFailed: boolean;
  /** A strongly consistent read (a full read unit; eventually consistent ones cost half). */
  readonly consistent: boolean;
}

const WRITES = new Set(['PutItem', 'UpdateItem', 'DeleteItem', 'BatchWriteItem', 'TransactWriteItems']);

/** Every DynamoDB call made through the proxy, in order. */
export class DynamoDbCallLog {
  readonly calls: TableCall[] = [];

  private constructor(private readonly proxy: AwsProxy) {}

  static async start(upstream: string, options: AwsProxyOptions = {}): Promise<DynamoDbCallLog> {
    let log: DynamoDbCallLog | undefined;
    const proxy = await AwsProxy.start(
      upstream,
      (call) => {
        if (!call.target.startsWith('DynamoDB_')) return;
        const body = JSON.parse(call.request) as KeyOrItem & { ConsistentRead?: boolean };
        const pk = keyOf(body);
        log!.calls.push({
          operation: call.target.split('.')[1]!,
          ...(pk !== undefined ? { pk } : {}),
          conditionFailed: !call.ok && call.response.includes('ConditionalCheckFailed'),
          consistent: body.ConsistentRead === true,
        });
      },
      options,
    );
    log = new DynamoDbCallLog(proxy);
    return log;
  }

  get url(): string {
    return this.proxy.url;
  }

  /** The write calls (each at least one write unit), as `Operation pk-prefix` (the key up to its first `#`). */
  writes(): string[] {
    return this.calls.filter((c) => WRITES.has(c.operation)).map(describe);
  }

  /** The read calls, as `Operation pk-prefix`, and ` (consistent)` when strongly consistent. */
  reads(): string[] {
    return this.calls
      .filter((c) => !WRITES.has(c.operation))
      .map((c) => `${describe(c)}${c.consistent ? ' (consistent)' : ''}`);
  }

  clear(): void {
    this.calls.length = 0;
  }

  close(): Promise<void> {
    return this.proxy.close();
  }
}

function describe(call: TableCall): string {
  return `${call.operation} ${call.pk ? `${call.pk.split('#')[0]}#` : '(no key)'}`;
}
