/**
 * A small TCP proxy on 127.0.0.1 for fault injection in integration tests: put it in front of
 * Dovecot (point the secret's `port` at it) or in front of moto_server (point `AWS_ENDPOINT_URL`
 * at `proxy.url`), then switch faults while the code under test talks through it.
 *
 *   const proxy = await TcpProxy.start({ port: imap.imapsPort! });
 *   await proxy.setFault({ kind: 'dropAfter', bytes: 50_000, once: true });  // mid-FETCH of a large message
 *   await proxy.setFault({ kind: 'silent' });                                // nothing moves, nothing closes
 *   proxy.dropAll();                                                          // RST every live connection now
 *   await proxy.setFault({ kind: 'pass' });
 *   proxy.stats;                                                              // connections, drops, bytes
 *   await proxy.close();
 *
 * Faults (one at a time; `setFault` applies to live and new connections):
 * - `pass`: forward both ways.
 * - `refuse`: `reset` accepts and resets new connections at once (ECONNRESET); `close` stops
 *   listening (ECONNREFUSED) until the next `setFault`. Live connections are kept (use `dropAll`).
 * - `silent`: forward nothing in either direction and close nothing (a hung server or network);
 *   held data flows on when the fault is lifted. With `afterBytes`, each connection goes silent once
 *   that many more bytes came from upstream (e.g. in the middle of a FETCH response).
 * - `delay`: forward each chunk `ms` later (order kept).
 * - `dropAfter`: reset a connection once `bytes` more bytes came from the upstream side (the server)
 *   since the fault was set (or since the connection opened, if later); the bytes up to that point
 *   are delivered. `once` reverts to `pass` after the first drop.
 *
 * The proxy sets no timeouts of its own (a held connection stays held until the fault changes or a
 * side closes it); its only timers are the `delay` ones and a 20 ms pause before a `dropAfter` reset.
 */
import { createConnection, createServer, type Server, type Socket } from 'node:net';

export type Fault =
  | { readonly kind: 'pass' }
  | { readonly kind: 'refuse'; readonly mode?: 'reset' | 'close' }
  | { readonly kind: 'silent'; readonly afterBytes?: number }
  | { readonly kind: 'delay'; readonly ms: number }
  | { readonly kind: 'dropAfter'; readonly bytes: number; readonly once?: boolean };

export interface TcpProxyOptions {
  /** Upstream port (on `host`). */
  readonly port: number;
  /** @default '127.0.0.1' */
  readonly host?: string;
  /** For messages only. */
  readonly name?: string;
}

export interface TcpProxyStats {
  /** Connections accepted and forwarded (or held). */
  accepted: number;
  /** Connections reset on arrival (`refuse`/`reset`). */
  refused: number;
  /** Live connections reset by `dropAll` or `dropAfter`. */
  dropped: number;
  /** Bytes forwarded from upstream to clients. */
  bytesDown: number;
  /** Bytes forwarded from clients to upstream. */
  bytesUp: number;
  /** Most client connections open at the same time (a connection counts until its client side closed it). */
  peakLive: number;
}

type Direction = 'up' | 'down';

/** One proxied connection: a client socket and its upstream socket, with a held queue per direction. */
class Link {
  /** Data held back (silent fault) per direction. */
  private readonly held: Record<Direction, Buffer[]> = { up: [], down: [] };
  /** Delay fault: chunks scheduled per direction. */
  private readonly timers: Record<Direction, Set<NodeJS.Timeout>> = { up: new Set(), down: new Set() };
  /** Delay fault: when the last scheduled chunk of each direction leaves (keeps the order). */
  private readonly nextAt: Record<Direction, number> = { up: 0, down: 0 };
  /** The source of a direction ended (FIN) or closed cleanly: end its target once its data is delivered. */
  private readonly ended: Record<Direction, boolean> = { up: false, down: false };
  private readonly endSent: Record<Direction, boolean> = { up: false, down: false };
  /** Bytes from upstream counted towards a `dropAfter` or `silent.afterBytes` fault. */
  private downSinceArmed = 0;
  /** A `silent` fault with `afterBytes` reached its limit on this connection. */
  private silenced = false;
  /** A `dropAfter` fired: the last bytes are being written, then the connection is reset. */
  private dropping = false;
  closed = false;

  constructor(
    private readonly proxy: TcpProxy,
    readonly client: Socket,
    readonly upstream: Socket,
  ) {
    client.on('data', (chunk: Buffer) => this.onData('up', chunk));
    upstream.on('data', (chunk: Buffer) => this.onData('down', chunk));
    client.on('end', () => this.onEnd('up'));
    upstream.on('end', () => this.onEnd('down'));
    client.on('close', (hadError: boolean) => this.onClose('up', hadError));
    upstream.on('close', (hadError: boolean) => this.onClose('down', hadError));
    for (const s of [client, upstream]) s.on('error', () => this.destroy(false));
  }

  private target(dir: Direction): Socket {
    return dir === 'up' ? this.upstream : this.client;
  }

  private source(dir: Direction): Socket {
    return dir === 'up' ? this.client : this.upstream;
  }

  /** Whether nothing may flow on this connection now. */
  isSilent(): boolean {
    const fault = this.proxy.fault;
    return fault.kind === 'silent' && (fault.afterBytes === undefined || this.silenced);
  }

  private pending(dir: Direction): boolean {
    return this.held[dir].length > 0 || this.timers[dir].size > 0;
  }

  private onData(dir: Direction, chunk: Buffer): void {
    if (this.closed || this.dropping) return;
    const fault = this.proxy.fault;
    if (this.isSilent() || this.held[dir].length > 0) {
      this.held[dir].push(chunk);
      if (this.isSilent()) this.source(dir).pause();
      return;
    }
    if (fault.kind === 'silent' && dir === 'down') {
      const left = (fault.afterBytes ?? 0) - this.downSinceArmed;
      if (chunk.length >= left) {
        if (left > 0) this.write(dir, chunk.subarray(0, left));
        this.silenced = true;
        if (chunk.length > left) this.held[dir].push(chunk.subarray(Math.max(0, left)));
        this.client.pause();
        this.upstream.pause();
        return;
      }
      this.downSinceArmed += chunk.length;
    }
    if (fault.kind === 'dropAfter' && dir === 'down') {
      const left = fault.bytes - this.downSinceArmed;
      if (chunk.length >= left) {
        // Deliver the bytes up to the limit, then reset. (A reset issued from the write callback itself
        // goes out as a FIN: give the socket a moment.)
        this.proxy.noteDrop(fault);
        const part = chunk.subarray(0, Math.max(0, left));
        this.dropping = true;
        this.proxy.stats.bytesDown += part.length;
        this.client.write(part, () => setTimeout(() => this.destroy(true), 20));
        return;
      }
      this.downSinceArmed += chunk.length;
    }
    if (fault.kind === 'delay') {
      const at = Math.max(Date.now() + fault.ms, this.nextAt[dir]);
      this.nextAt[dir] = at;
      const timer = setTimeout(() => {
        this.timers[dir].delete(timer);
        this.write(dir, chunk);
        this.flushEnd(dir);
      }, at - Date.now());
      this.timers[dir].add(timer);
      return;
    }
    this.write(dir, chunk);
  }

  private write(dir: Direction, chunk: Buffer): void {
    if (this.closed) return;
    const target = this.target(dir);
    if (dir === 'up') this.proxy.stats.bytesUp += chunk.length;
    else this.proxy.stats.bytesDown += chunk.length;
    if (!target.write(chunk)) {
      const source = this.source(dir);
      source.pause();
      target.once('drain', () => {
        if (!this.isSilent()) source.resume();
      });
    }
  }

  private onEnd(dir: Direction): void {
    this.ended[dir] = true;
    this.flushEnd(dir);
  }

  /** A side closed: abruptly (error) = the whole link goes; cleanly = deliver what is pending, then end. */
  private onClose(dir: Direction, hadError: boolean): void {
    if (hadError) {
      this.destroy(false);
      return;
    }
    this.ended[dir] = true;
    this.flushEnd(dir);
  }

  /** Ends the target of `dir` once the source ended and everything of that direction was delivered. */
  private flushEnd(dir: Direction): void {
    if (this.closed || !this.ended[dir] || this.endSent[dir] || this.pending(dir)) return;
    this.endSent[dir] = true;
    const target = this.target(dir);
    // Both sides done (or the source is gone for good): close the link once the FIN is out.
    target.end(() => {
      if (this.source(dir).destroyed || this.endSent.up === this.endSent.down) this.destroy(false);
    });
  }

  /** The fault changed: release held data unless still silent; re-arm byte counting. */
  faultChanged(): void {
    if (this.closed || this.dropping) return;
    this.downSinceArmed = 0;
    this.silenced = false;
    if (this.isSilent()) {
      this.client.pause();
      this.upstream.pause();
      return;
    }
    for (const dir of ['up', 'down'] as const) {
      const held = this.held[dir].splice(0);
      for (const chunk of held) this.onData(dir, chunk);
      if (!this.closed && this.held[dir].length === 0) this.source(dir).resume();
      this.flushEnd(dir);
    }
  }

  /** Closes both sides; `reset` sends RST (an abrupt network failure) instead of FIN. */
  destroy(reset: boolean): void {
    if (this.closed) return;
    this.closed = true;
    for (const dir of ['up', 'down'] as const) {
      for (const timer of this.timers[dir]) clearTimeout(timer);
      this.timers[dir].clear();
    }
    for (const s of [this.client, this.upstream]) {
      if (reset && typeof s.resetAndDestroy === 'function' && !s.destroyed && !s.connecting) s.resetAndDestroy();
      else s.destroy();
    }
    this.proxy.forget(this);
  }
}

export class TcpProxy {
  readonly stats: TcpProxyStats = { accepted: 0, refused: 0, dropped: 0, bytesDown: 0, bytesUp: 0, peakLive: 0 };
  private current: Fault = { kind: 'pass' };
  private readonly links = new Set<Link>();
  /** Client sockets not closed yet (a link lives on until the upstream side closed too). */
  private openClients = 0;
  private server: Server;
  private listening = false;
  private closing = false;

  private constructor(
    private readonly options: TcpProxyOptions,
    readonly port: number,
  ) {
    this.server = this.createServer();
  }

  /** Starts a proxy on a free 127.0.0.1 port, forwarding to `host:port`. */
  static async start(options: TcpProxyOptions): Promise<TcpProxy> {
    const probe = createServer();
    const port = await new Promise<number>((resolve, reject) => {
      probe.once('error', reject);
      probe.listen(0, '127.0.0.1', () => resolve((probe.address() as { port: number }).port));
    });
    await new Promise<void>((resolve) => probe.close(() => resolve()));
    const proxy = new TcpProxy(options, port);
    await proxy.listen();
    return proxy;
  }

  readonly host = '127.0.0.1';

  /** `http://127.0.0.1:<port>`, for AWS_ENDPOINT_URL. */
  get url(): string {
    return `http://${this.host}:${this.port}`;
  }

  get fault(): Fault {
    return this.current;
  }

  /** Live connections. */
  get live(): number {
    return this.links.size;
  }

  /** Switches the fault for live and new connections. */
  async setFault(fault: Fault): Promise<void> {
    this.current = fault;
    for (const link of [...this.links]) link.faultChanged();
    if (fault.kind === 'refuse' && fault.mode === 'close') this.unlisten();
    else await this.listen();
  }

  /** Resets every live connection now (both sides see the connection die). */
  dropAll(): number {
    const n = this.links.size;
    for (const link of [...this.links]) link.destroy(true);
    this.stats.dropped += n;
    return n;
  }

  /** Stops listening and closes every live connection. */
  async close(): Promise<void> {
    this.closing = true;
    for (const link of [...this.links]) link.destroy(false);
    this.unlisten();
  }

  /** @internal */
  noteDrop(fault: Fault): void {
    this.stats.dropped++;
    if (fault.kind === 'dropAfter' && fault.once && this.current === fault) {
      this.current = { kind: 'pass' };
      for (const link of [...this.links]) link.faultChanged();
    }
  }

  /** @internal */
  forget(link: Link): void {
    this.links.delete(link);
  }

  private createServer(): Server {
    const server = createServer({ pauseOnConnect: true }, (client) => this.accept(client));
    server.on('error', () => {
      // listen errors surface through listen(); nothing else is expected here
    });
    return server;
  }

  private accept(client: Socket): void {
    client.on('error', () => {});
    if (this.closing) {
      client.destroy();
      return;
    }
    if (this.current.kind === 'refuse') {
      this.stats.refused++;
      client.resetAndDestroy();
      return;
    }
    this.stats.accepted++;
    const upstream = createConnection({ host: this.options.host ?? '127.0.0.1', port: this.options.port });
    upstream.setNoDelay(true);
    client.setNoDelay(true);
    const link = new Link(this, client, upstream);
    this.links.add(link);
    this.openClients++;
    this.stats.peakLive = Math.max(this.stats.peakLive, this.openClients);
    client.once('close', () => this.openClients--);
    if (link.isSilent()) {
      // Held: nothing flows until the fault is lifted (faultChanged resumes both sides).
      client.pause();
      upstream.pause();
      return;
    }
    client.resume();
  }

  private async listen(): Promise<void> {
    if (this.listening || this.closing) return;
    if (!this.server.listening) this.server = this.createServer();
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(this.port, '127.0.0.1', () => {
        this.server.off('error', reject);
        resolve();
      });
    });
    this.listening = true;
  }

  /** Frees the port at once (the server's 'close' event would wait for live connections). */
  private unlisten(): void {
    if (!this.listening) return;
    this.listening = false;
    this.server.close();
  }

  toString(): string {
    return `TcpProxy(${this.options.name ?? ''} 127.0.0.1:${this.port} -> ${this.options.host ?? '127.0.0.1'}:${this.options.port}, ${this.current.kind})`;
  }
}
