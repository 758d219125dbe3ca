/**
 * A scriptable OAuth2 authorization server on 127.0.0.1 for the OAuth2 tests: the token endpoints of the
 * three flows the poller speaks, and the token introspection endpoint Dovecot's oauth2 passdb asks.
 *
 *   POST /<tenant>/oauth2/v2.0/token   Microsoft client credentials (client secret or client assertion with x5t)
 *   POST /google/token                 Google JWT bearer grant: RS256 signature, iss, sub, scope, aud, iat/exp checked
 *   POST /refresh/token                refresh_token grant with rotation: a refresh token works once
 *   POST /introspect/<user>            RFC 7662 for Dovecot: active when the token exists, is unexpired and grants <user>
 *
 * Refusals use the providers' real codes (AADSTS7000215, AADSTS700016, invalid_grant, unauthorized_client).
 * Every token request is counted per flow; faults (`failNext`) and token lifetimes are settable.
 */
import { execFile } from 'node:child_process';
import { createHash, createPublicKey, generateKeyPairSync, randomBytes, verify, X509Certificate } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

export const MICROSOFT_SCOPE = 'https://outlook.office365.com/.default';
export const GOOGLE_SCOPE = 'https://mail.google.com/';

export interface MicrosoftApp {
  tenantId: string;
  clientId: string;
  clientSecret?: string;
  /** PEM of the certificate uploaded to the app registration (certificate credential). */
  certificate?: string;
  /** Mailboxes granted with Add-MailboxPermission. */
  mailboxes: Set<string>;
}

export interface GoogleServiceAccount {
  clientEmail: string;
  /** PEM public key (or certificate) the signature is checked with. */
  publicKey: string;
  /** Scopes granted by domain-wide delegation. */
  delegatedScopes: Set<string>;
  /** Users of the Workspace domain; others get invalid_grant. */
  domainUsers: Set<string>;
}

export interface RefreshClient {
  clientId: string;
  clientSecret?: string;
  /** The user the refresh tokens of this client act for. */
  user: string;
  /** Rotate on every use (the old one is dead afterwards). @default true */
  rotate?: boolean;
}

/** An RSA key pair in PEM (PKCS#8 private, SPKI public), like a Google service account key. */
export function rsaKeyPair(): { privateKey: string; publicKey: string } {
  return generateKeyPairSync('rsa', {
    modulusLength: 2048,
    privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
    publicKeyEncoding: { type: 'spki', format: 'pem' },
  });
}

/** A self-signed RSA certificate and its key in PEM, like one uploaded to a Microsoft app registration. */
export async function rsaCertificate(): Promise<{ certificate: string; privateKey: string }> {
  const dir = await mkdtemp(join(tmpdir(), 'ies-app-cert-'));
  try {
    await promisify(execFile)(
      'openssl',
      [
        'req',
        '-x509',
        '-newkey',
        'rsa:2048',
        '-nodes',
        '-keyout',
        'k.pem',
        '-out',
        'c.pem',
        '-days',
        '2',
        '-subj',
        '/CN=poller-app',
      ],
      { cwd: dir },
    );
    return {
      certificate: await readFile(join(dir, 'c.pem'), 'utf8'),
      privateKey: await readFile(join(dir, 'k.pem'), 'utf8'),
    };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

export type Flow = 'microsoft' | 'google' | 'refresh-token';

interface IssuedToken {
  mailboxes: ReadonlySet<string> | 'sub';
  sub?: string;
  expiresAt: number;
}

export class FakeOAuth2Server {
  readonly requests: Record<Flow, number> = { microsoft: 0, google: 0, 'refresh-token': 0 };
  introspections = 0;
  /** Token lifetime for new tokens, seconds. */
  expiresIn = 3600;
  /** The next token request of any flow fails like this (then it is cleared). */
  failNext?: { status: number; body?: unknown } | 'hang' | 'close' | 'garbage' | 'huge';
  /** The last assertion claims seen (Google), for tests. */
  lastGoogleClaims?: Record<string, unknown>;
  readonly microsoftApps: MicrosoftApp[] = [];
  readonly googleAccounts: GoogleServiceAccount[] = [];
  readonly refreshClients: RefreshClient[] = [];
  /** Users whose mailbox refuses every token (e.g. IMAP turned off for them in the admin console). */
  readonly imapDisabled = new Set<string>();
  private readonly tokens = new Map<string, IssuedToken>();
  /** refresh token -> client id, for the live ones. */
  private readonly refreshTokens = new Map<string, string>();
  private readonly sockets = new Set<import('node:net').Socket>();

  private constructor(
    private readonly server: Server,
    readonly port: number,
  ) {}

  static async start(): Promise<FakeOAuth2Server> {
    let self: FakeOAuth2Server | undefined;
    const server = createServer((req, res) => {
      self!.handle(req, res).catch((err) => {
        res.writeHead(500, { 'content-type': 'text/plain' }).end(String(err));
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    self = new FakeOAuth2Server(server, (server.address() as { port: number }).port);
    server.on('connection', (s) => {
      self!.sockets.add(s);
      s.once('close', () => self!.sockets.delete(s));
    });
    return self;
  }

  get baseUrl(): string {
    return `http://127.0.0.1:${this.port}`;
  }
  microsoftTokenUrl(tenantId: string): string {
    return `${this.baseUrl}/${tenantId}/oauth2/v2.0/token`;
  }
  get googleTokenUrl(): string {
    return `${this.baseUrl}/google/token`;
  }
  get refreshTokenUrl(): string {
    return `${this.baseUrl}/refresh/token`;
  }
  get introspectionBaseUrl(): string {
    return `${this.baseUrl}/introspect`;
  }

  /** A new refresh token for a registered client (what a user's consent would give). */
  issueRefreshToken(clientId: string): string {
    const token = `rt-${randomBytes(18).toString('base64url')}`;
    this.refreshTokens.set(token, clientId);
    return token;
  }

  /** Revokes every access token issued so far (an admin revoking sessions). */
  revokeAll(): void {
    this.tokens.clear();
  }

  totalRequests(): number {
    return this.requests.microsoft + this.requests.google + this.requests['refresh-token'];
  }

  async stop(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', this.baseUrl);
    const form = new URLSearchParams(await readBody(req));
    const json = (status: number, body: unknown): void => {
      res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
    };

    const intro = /^\/introspect\/([^/]+)$/.exec(url.pathname);
    if (intro) {
      this.introspections++;
      const user = decodeURIComponent(intro[1]!);
      const t = this.tokens.get(form.get('token') ?? '');
      const grants =
        !this.imapDisabled.has(user) &&
        t &&
        t.expiresAt > Date.now() &&
        (t.mailboxes === 'sub' ? t.sub === user : t.mailboxes.has(user));
      return json(200, grants ? { active: true, username: user } : { active: false });
    }

    const flow: Flow | undefined =
      url.pathname === '/google/token'
        ? 'google'
        : url.pathname === '/refresh/token'
          ? 'refresh-token'
          : /^\/[^/]+\/oauth2\/v2\.0\/token$/.test(url.pathname)
            ? 'microsoft'
            : undefined;
    if (!flow || req.method !== 'POST') return json(404, { message: 'not found' });
    this.requests[flow]++;

    const fault = this.failNext;
    this.failNext = undefined;
    if (fault === 'hang') return; // never answers: the client's timeout must end it
    if (fault === 'close') {
      req.socket.destroy();
      return;
    }
    if (fault === 'garbage') return json(200, { access_token: 'x y', token_type: 'mac', expires_in: -1 });
    if (fault === 'huge') {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(`{"pad":"${'x'.repeat(1024 * 1024)}"}`);
      return;
    }
    if (fault) return json(fault.status, fault.body ?? {});

    const result =
      flow === 'microsoft'
        ? this.microsoft(url, form)
        : flow === 'google'
          ? this.google(url, form)
          : this.refresh(form);
    return json(result.status, result.body);
  }

  private issue(mailboxes: ReadonlySet<string> | 'sub', sub?: string, extra: Record<string, unknown> = {}) {
    const token = `at-${randomBytes(24).toString('base64url')}`;
    this.tokens.set(token, { mailboxes, sub, expiresAt: Date.now() + this.expiresIn * 1000 });
    return {
      status: 200,
      body: { token_type: 'Bearer', expires_in: this.expiresIn, access_token: token, ...extra },
    };
  }

  private microsoft(url: URL, form: URLSearchParams): { status: number; body: unknown } {
    const tenant = url.pathname.split('/')[1];
    const aad = (status: number, error: string, code: number) => ({
      status,
      body: {
        error,
        error_description: `AADSTS${code}: fake description. Trace ID: ${randomBytes(4).toString('hex')}`,
        error_codes: [code],
      },
    });
    if (!this.microsoftApps.some((a) => a.tenantId === tenant)) return aad(400, 'invalid_request', 90002);
    const app = this.microsoftApps.find((a) => a.tenantId === tenant && a.clientId === form.get('client_id'));
    if (!app) return aad(400, 'unauthorized_client', 700016);
    if (form.get('grant_type') !== 'client_credentials') return aad(400, 'unsupported_grant_type', 70003);
    if (form.get('scope') !== MICROSOFT_SCOPE) return aad(400, 'invalid_scope', 1002012);
    const assertion = form.get('client_assertion');
    if (assertion !== null) {
      if (form.get('client_assertion_type') !== 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer') {
        return aad(400, 'invalid_request', 700023);
      }
      if (!app.certificate) return aad(401, 'invalid_client', 700027);
      const cert = new X509Certificate(app.certificate);
      const jwt = verifyJwt(assertion, createPublicKey(cert.publicKey.export({ type: 'spki', format: 'pem' })));
      const x5t = createHash('sha1').update(cert.raw).digest('base64url');
      const now = Date.now() / 1000;
      if (
        !jwt ||
        jwt.header.x5t !== x5t ||
        jwt.claims.iss !== app.clientId ||
        jwt.claims.sub !== app.clientId ||
        jwt.claims.aud !== url.href.split('?')[0] ||
        typeof jwt.claims.jti !== 'string' ||
        !(Number(jwt.claims.exp) > now && Number(jwt.claims.nbf) <= now + 60)
      ) {
        return aad(401, 'invalid_client', 700027);
      }
    } else if (form.get('client_secret') !== app.clientSecret || !app.clientSecret) {
      return aad(401, 'invalid_client', 7000215);
    }
    return this.issue(app.mailboxes);
  }

  private google(url: URL, form: URLSearchParams): { status: number; body: unknown } {
    const err = (error: string, description: string) => ({
      status: 400,
      body: { error, error_description: description },
    });
    if (form.get('grant_type') !== 'urn:ietf:params:oauth:grant-type:jwt-bearer') {
      return err('unsupported_grant_type', 'Invalid grant_type');
    }
    const assertion = form.get('assertion') ?? '';
    const unverified = decodeJwt(assertion);
    const account = this.googleAccounts.find((a) => a.clientEmail === unverified?.claims.iss);
    if (!account) return err('invalid_client', 'The OAuth client was not found.');
    const jwt = verifyJwt(assertion, createPublicKey(account.publicKey));
    if (!jwt) return err('invalid_grant', 'Invalid JWT Signature.');
    this.lastGoogleClaims = jwt.claims;
    const c = jwt.claims;
    const now = Date.now() / 1000;
    if (c.aud !== url.href.split('?')[0]) return err('invalid_grant', 'Invalid JWT: audience');
    if (!(typeof c.iat === 'number' && typeof c.exp === 'number' && c.exp > now && c.iat <= now + 60)) {
      return err('invalid_grant', 'Invalid JWT: Token must be a short-lived token and in a reasonable timeframe.');
    }
    if (c.exp - c.iat > 3600) return err('invalid_grant', 'Invalid JWT: lifetime over 1 hour');
    if (typeof c.scope !== 'string' || !account.delegatedScopes.has(c.scope)) {
      return err('unauthorized_client', 'Client is unauthorized to retrieve access tokens using this method.');
    }
    if (typeof c.sub !== 'string' || !account.domainUsers.has(c.sub)) {
      return err('invalid_grant', 'Invalid email or User ID');
    }
    return this.issue('sub', c.sub);
  }

  private refresh(form: URLSearchParams): { status: number; body: unknown } {
    const client = this.refreshClients.find((c) => c.clientId === form.get('client_id'));
    if (!client || (client.clientSecret !== undefined && client.clientSecret !== form.get('client_secret'))) {
      return { status: 401, body: { error: 'invalid_client', error_description: 'Client authentication failed' } };
    }
    if (form.get('grant_type') !== 'refresh_token') return { status: 400, body: { error: 'unsupported_grant_type' } };
    const presented = form.get('refresh_token') ?? '';
    if (this.refreshTokens.get(presented) !== client.clientId) {
      return { status: 400, body: { error: 'invalid_grant', error_description: 'Token has been expired or revoked.' } };
    }
    let extra: Record<string, unknown> = {};
    if (client.rotate ?? true) {
      this.refreshTokens.delete(presented); // used once: dead from now on
      extra = { refresh_token: this.issueRefreshToken(client.clientId) };
    }
    return this.issue(new Set([client.user]), undefined, extra);
  }
}

async function readBody(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

interface DecodedJwt {
  header: Record<string, unknown>;
  claims: Record<string, unknown>;
}

function decodeJwt(jwt: string): DecodedJwt | undefined {
  const [h, c] = jwt.split('.');
  try {
    return {
      header: JSON.parse(Buffer.from(h!, 'base64url').toString()) as Record<string, unknown>,
      claims: JSON.parse(Buffer.from(c!, 'base64url').toString()) as Record<string, unknown>,
    };
  } catch {
    return undefined;
  }
}

/** The decoded JWT when it is RS256 and its signature verifies with `key`. */
function verifyJwt(jwt: string, key: ReturnType<typeof createPublicKey>): DecodedJwt | undefined {
  const parts = jwt.split('.');
  if (parts.length !== 3) return undefined;
  const decoded = decodeJwt(jwt);
  if (decoded?.header.alg !== 'RS256' || decoded.header.typ !== 'JWT') return undefined;
  const ok = verify('sha256', Buffer.from(`${parts[0]}.${parts[1]}`), key, Buffer.from(parts[2]!, 'base64url'));
  return ok ? decoded : undefined;
}
