import * as grpc from '@grpc/grpc-js';
import { type IncomingMessage, type ServerResponse, createServer as createHttpServer, type Server as HttpServer } from 'node:http';
import { type AddressInfo, type Server as NetServer, type Socket, createServer as createNetServer } from 'node:net';
import { networkInterfaces } from 'node:os';
import type { Duplex } from 'node:stream';
import { TLSSocket, createSecureContext } from 'node:tls';
import { WebSocketServer, createWebSocketStream } from 'ws';
import { type Api, IDP_SECRET_FILE, type OidcIssuerConfig, createApi } from '../api/index.js';
import { type InfraConfig, Management } from '../management/index.js';
import { RelayServer } from '../relay/index.js';
import { createSignalServer, type SignalServer } from '../signal/index.js';
import { type StunServerHandle, startStunServer } from '../stun/index.js';
import { type AdmissionLimits, ConnectionAdmission, DEFAULT_ADMISSION, markActive, markHandshaken, shareAdmission } from './admission.js';
import { writePidFile } from './backup.js';
import { preparePrivateDataDir } from './datadir.js';
import { FlowCollector } from './flow.js';
import { serveHttpOverGrpcHttp2 } from './http2-routing.js';
import { Observability } from './observability.js';
import { loadOrCreateSecret } from './secrets.js';
import { createDashboard } from './static.js';

/**
 * `netbird-server`: Management gRPC, Signal gRPC, the relay WebSocket (/relay) and the REST API
 * (/api, with the embedded identity provider at /oauth2) on ONE TCP port, plus optional STUN on UDP.
 *
 * Every accepted connection is peeked: a connection that starts with the HTTP/2 client preface
 * ("PRI * HTTP/2.0...", what gRPC clients send over h2c) is injected into grpc-js through
 * `createConnectionInjector`; anything else is handed to a node HTTP/1.1 server, which serves the
 * relay WebSocket upgrade ('upgrade' events stay on this server) and hands every plain request to
 * the Fastify REST app through `app.routing` (Fastify never owns a socket, so the relay is untouched). With TLS the decision uses ALPN instead:
 * "h2" goes to gRPC, "http/1.1" to the HTTP server.
 */

export interface ServerOptions {
  dataDir: string;
  /** Listen address; default 127.0.0.1:33073. */
  host?: string;
  port?: number;
  /** Host name/IP peers use to reach this server (advertised Signal/Relay/STUN); default derived from host. */
  publicHost?: string;
  /** Port peers use (behind a reverse proxy or port forward); default the listen port. */
  publicPort?: number;
  /** Peers reach us over TLS although we listen in plaintext (TLS terminated by a proxy); default `tls` set. */
  publicTls?: boolean;
  /** Traffic-event collector on this port (default true); peers use it when their account enables it. */
  flow?: boolean;
  /** FlowConfig interval: how often peers send aggregated events (default 60 s). */
  flowIntervalSeconds?: number;
  /** Time a new connection has to make its first request (TLS handshake included); default IDENTIFY_TIMEOUT_MS. */
  identifyTimeoutMs?: number;
  /** Limits on connections that have not made a request yet (see admission.ts); defaults DEFAULT_ADMISSION. */
  admission?: Partial<Omit<AdmissionLimits, 'timeoutMs'>>;
  /** HTTP/1.1 header and whole-request timeouts; defaults HTTP_HEADERS_TIMEOUT_MS, HTTP_REQUEST_TIMEOUT_MS. */
  httpTimeouts?: { headersMs?: number; requestMs?: number };
  /** PostgreSQL DSN instead of the SQLite file in dataDir. */
  postgresDsn?: string;
  /** DNS domain of new accounts (default netbird.cloud). */
  dnsDomain?: string;
  /** UDP port for the embedded STUN server; undefined = no STUN. */
  stunPort?: number;
  /** TURN servers to advertise (e.g. a coturn with use-auth-secret). */
  turn?: InfraConfig['turn'];
  /** PEM certificate and key: serve TLS (ALPN h2 for gRPC, http/1.1 for HTTP). */
  tls?: { cert: string; key: string };
  ephemeralTimeoutMs?: number;
  /** REST seam: handler for plain HTTP requests (default: the REST API of src/api). */
  onHttpRequest?: (req: IncomingMessage, res: ServerResponse) => void;
  /** External OIDC issuers whose JWTs the REST API and peer logins accept. */
  oidc?: OidcIssuerConfig[];
  /** Reverse proxies (addresses/CIDRs) whose X-Forwarded-For names the client, for per-client limits. */
  trustedProxies?: string[];
  /** Serve the embedded identity provider at /oauth2 (default true). */
  embeddedIdp?: boolean;
  /** POST /api/setup may return a PAT (default: env NB_SETUP_PAT_ENABLED, else true). */
  setupPatEnabled?: boolean;
  log?: (msg: string) => void;
}

export const DEFAULT_LISTEN_HOST = '127.0.0.1';
export const DEFAULT_LISTEN_PORT = 33073;
export const RELAY_SECRET_FILE = 'relay.secret';
export const WS_PROXY_MANAGEMENT = '/ws-proxy/management';
export const WS_PROXY_SIGNAL = '/ws-proxy/signal';
/** A new connection must make its first request (gRPC call, HTTP request or upgrade) within this time. */
export const IDENTIFY_TIMEOUT_MS = DEFAULT_ADMISSION.timeoutMs;
/** HTTP/1.1: all headers of a request within this time (Node answers 408 and closes). */
export const HTTP_HEADERS_TIMEOUT_MS = 15_000;
/** HTTP/1.1: a whole request, body included, within this time. */
export const HTTP_REQUEST_TIMEOUT_MS = 60_000;

const H2_PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n');

/** The relay auth secret shared by our Management and relay, generated once and kept in the data dir. */
export function loadOrCreateRelaySecret(dataDir: string): string {
  return loadOrCreateSecret(dataDir, RELAY_SECRET_FILE);
}

function defaultPublicHost(host: string): string {
  if (host !== '0.0.0.0' && host !== '::' && host !== '') return host;
  for (const list of Object.values(networkInterfaces())) {
    for (const a of list ?? []) if (a.family === 'IPv4' && !a.internal) return a.address;
  }
  return '127.0.0.1';
}

function hostPort(host: string, port: number): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}

export class NetbirdServer {
  private constructor(
    readonly management: Management,
    readonly signal: SignalServer,
    readonly relay: RelayServer,
    readonly stun: StunServerHandle | undefined,
    readonly grpcServer: grpc.Server,
    /** HTTP/1.1 server receiving non-gRPC connections (relay upgrades; REST later). */
    readonly http: HttpServer,
    private readonly listener: NetServer,
    readonly host: string,
    readonly port: number,
    readonly publicHost: string,
    readonly tls: boolean,
    private readonly sockets: Set<Socket>,
    /** The REST API (undefined when `onHttpRequest` replaced it). */
    readonly api: Api | undefined,
    readonly observability: Observability,
    /** The traffic-event collector, unless disabled. */
    readonly flow: FlowCollector | undefined,
    private readonly publicPort: number,
    private readonly publicTls: boolean,
    /** Admission control of the listener (connections that have not made a request yet). */
    readonly admission: ConnectionAdmission,
    private readonly removePidFile: () => void,
  ) {}

  static async start(opts: ServerOptions): Promise<NetbirdServer> {
    const host = opts.host ?? DEFAULT_LISTEN_HOST;
    const log = opts.log ?? ((): void => {});
    const publicHost = opts.publicHost ?? defaultPublicHost(host);
    const tls = opts.tls !== undefined;
    preparePrivateDataDir(opts.dataDir, log);

    // Bind first so that port 0 resolves before the advertised addresses are built.
    const sockets = new Set<Socket>();
    const admission = new ConnectionAdmission({ ...DEFAULT_ADMISSION, ...opts.admission, timeoutMs: opts.identifyTimeoutMs ?? IDENTIFY_TIMEOUT_MS });
    let dispatch: (s: Socket) => void = (s) => s.destroy();
    // One plain TCP listener for both modes: with TLS the handshake happens on the accepted socket,
    // so connections that never finish it are pending (bounded, with a deadline) like any other.
    const onSocket = (s: Socket): void => {
      sockets.add(s);
      s.on('error', () => s.destroy());
      s.once('close', () => {
        sockets.delete(s);
        admission.release(s);
      });
      admission.admit(s, s.remoteAddress, () => s.destroy());
      dispatch(s);
    };
    const listener: NetServer = createNetServer(onSocket);
    const secureContext = tls ? createSecureContext({ cert: opts.tls!.cert, key: opts.tls!.key }) : undefined;
    await new Promise<void>((resolve, reject) => {
      listener.once('error', reject);
      listener.listen(opts.port ?? DEFAULT_LISTEN_PORT, host, () => {
        listener.off('error', reject);
        resolve();
      });
    });
    const port = (listener.address() as AddressInfo).port;
    const publicPort = opts.publicPort ?? port;
    const publicTls = opts.publicTls ?? tls;
    const pub = hostPort(publicHost, publicPort);

    let stun: StunServerHandle | undefined;
    let management: Management | undefined;
    let api: Api | undefined;
    let flow: FlowCollector | undefined;
    // The API's JWT validator is created after Management; peer logins reach it through this.
    let resolveJwt: ((token: string) => Promise<string>) | undefined;
    try {
      if (opts.stunPort !== undefined) stun = await startStunServer({ host: host === '::' ? '::' : host, port: opts.stunPort });
      const relaySecret = loadOrCreateRelaySecret(opts.dataDir);
      const relayUrl = `${publicTls ? 'rels' : 'rel'}://${pub}`;
      const relay = new RelayServer({ authSecret: relaySecret, instanceUrl: relayUrl });
      const signal = createSignalServer();
      if (opts.flow !== false) {
        flow = await FlowCollector.start({
          dataDir: opts.dataDir,
          postgresDsn: opts.postgresDsn,
          url: `${publicTls ? 'https' : 'http'}://${pub}`,
          intervalSeconds: opts.flowIntervalSeconds,
          manager: () => management?.manager,
          log,
        });
      }
      const infra: InfraConfig = {
        signal: { uri: pub, tls: publicTls },
        relay: { urls: [relayUrl], secret: relaySecret },
        stuns: stun ? [`stun:${hostPort(publicHost, stun.port)}`] : [],
        turn: opts.turn,
        flow: flow?.infra,
      };
      management = await Management.open({
        dataDir: opts.dataDir,
        postgresDsn: opts.postgresDsn,
        dnsDomain: opts.dnsDomain,
        ephemeralTimeoutMs: opts.ephemeralTimeoutMs,
        infra,
        log,
        resolveJwtUser: (token) => {
          if (!resolveJwt) return Promise.reject(new Error('SSO login is not available on this server'));
          return resolveJwt(token);
        },
        deviceAuthorizationFlow: () => {
          const f = api?.deviceFlow();
          if (!f) return undefined;
          return {
            ClientID: f.clientId,
            ClientSecret: '',
            Domain: '',
            Audience: f.audience,
            DeviceAuthEndpoint: f.deviceAuthEndpoint,
            TokenEndpoint: f.tokenEndpoint,
            Scope: f.scope,
            UseIDToken: false,
            AuthorizationEndpoint: '',
            RedirectURLs: [],
            DisablePromptLogin: false,
            LoginFlag: 0,
          };
        },
        pkceAuthorizationFlow: () => {
          const f = api?.pkceFlow();
          if (!f) return undefined;
          return {
            ClientID: f.clientId,
            ClientSecret: '',
            Domain: '',
            Audience: f.audience,
            DeviceAuthEndpoint: '',
            TokenEndpoint: f.tokenEndpoint,
            Scope: f.scope,
            UseIDToken: false,
            AuthorizationEndpoint: f.authorizationEndpoint,
            RedirectURLs: f.redirectUrls,
            DisablePromptLogin: false,
            LoginFlag: 0,
          };
        },
      });
      if (!opts.onHttpRequest) {
        api = await createApi({
          manager: management.manager,
          publicUrl: `${publicTls ? 'https' : 'http'}://${pub}`,
          oidc: opts.oidc,
          embeddedIdp: opts.embeddedIdp,
          idpKeyEncryptionKey: opts.embeddedIdp === false ? undefined : Buffer.from(loadOrCreateSecret(opts.dataDir, IDP_SECRET_FILE), 'base64'),
          setupPatEnabled: opts.setupPatEnabled,
          trustedProxies: opts.trustedProxies,
          flowStore: flow?.store,
          log,
        });
        const a = api;
        resolveJwt = (token) => a.resolvePeerJwt(token);
      }

      const grpcServer = new grpc.Server({
        'grpc.keepalive_time_ms': 30_000,
        'grpc.keepalive_timeout_ms': 10_000,
        'grpc.keepalive_permit_without_calls': 1,
        'grpc.max_receive_message_length': 16 * 1024 * 1024,
      });
      const mgmtSvc = management.grpcService();
      grpcServer.addService(mgmtSvc.service, mgmtSvc.implementation);
      grpcServer.addService(signal.service, signal.implementation);
      if (flow) grpcServer.addService(flow.receiver.service, flow.receiver.implementation);
      // TLS is terminated by our listener, so grpc-js always sees cleartext HTTP/2.
      const injector = grpcServer.createConnectionInjector(grpc.ServerCredentials.createInsecure());

      const mgmt = management;
      const observability = new Observability({
        syncStreams: () => mgmt.hub.connectedCount,
        syncStats: () => mgmt.hub.stats,
        signalStats: () => signal.stats(),
        relayStats: () => relay.stats(),
        stunStats: () => stun?.stats(),
        admissionStats: () => admission.stats(),
        storeHealthy: async () => (await mgmt.store.getInstanceValue('health-probe'), true),
      });
      const restHandler = opts.onHttpRequest ?? api!.handle;
      // The web dashboard (web/dist) answers every GET outside /api, /oauth2, /relay, /health, /metrics.
      const dashboard = opts.onHttpRequest ? undefined : createDashboard(undefined, { oidc: opts.oidc });
      const onRequest = (req: IncomingMessage, res: ServerResponse): void => {
        if (!observability.handle(req, res) && !dashboard?.handle(req, res)) restHandler(req, res);
      };
      // Slow or silent HTTP clients must not hold sockets forever: Node enforces these timeouts from
      // a periodic check that it only starts when the server listens, and this server never listens
      // itself (our listener hands it connections), so 'listening' is emitted to start that check.
      const http = createHttpServer(
        {
          headersTimeout: opts.httpTimeouts?.headersMs ?? HTTP_HEADERS_TIMEOUT_MS,
          requestTimeout: opts.httpTimeouts?.requestMs ?? HTTP_REQUEST_TIMEOUT_MS,
          connectionsCheckingInterval: 1000,
        },
        onRequest,
      );
      http.emit('listening');
      // A complete request (or upgrade, or HTTP/2 stream) ends a connection's pending time.
      http.on('request', (req: IncomingMessage) => markActive(req.socket));
      serveHttpOverGrpcHttp2(grpcServer, onRequest, (session) => {
        try {
          markActive(session.socket);
        } catch {
          // the session lost its socket already
        }
      });
      // gRPC over WebSocket (protocol.md §2.2, for browser/WASM clients): the WebSocket carries the raw
      // bytes of a cleartext HTTP/2 connection, which goes into grpc-js like any other connection.
      const wsProxy = new WebSocketServer({ noServer: true, perMessageDeflate: false });
      http.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
        markActive(socket);
        const path = (req.url ?? '/').split('?')[0];
        if (path === WS_PROXY_MANAGEMENT || path === WS_PROXY_SIGNAL) {
          wsProxy.handleUpgrade(req, socket, head, (ws) => injector.injectConnection(createWebSocketStream(ws)));
          return;
        }
        relay.handleUpgrade(req, socket, head);
      });

      dispatch = (s: Socket): void => {
        if (secureContext) {
          const t = new TLSSocket(s, { isServer: true, secureContext, ALPNProtocols: ['h2', 'http/1.1'] });
          shareAdmission(s, t);
          t.on('error', () => t.destroy());
          t.once('secure', () => {
            // What tls.Server does on 'secure' (HTTP/2 waits for 'secureConnect' while this is set).
            (t as TLSSocket & { secureConnecting: boolean }).secureConnecting = false;
            markHandshaken(s);
            if (t.alpnProtocol === 'h2') injector.injectConnection(t);
            else http.emit('connection', t);
          });
          return;
        }
        // Peek enough bytes to tell the HTTP/2 preface from an HTTP/1 request line (for HTTP/2 the
        // whole preface, which counts as a handshake for admission).
        const chunks: Buffer[] = [];
        let len = 0;
        const onData = (c: Buffer): void => {
          chunks.push(c);
          len += c.length;
          const head = chunks.length === 1 ? c : Buffer.concat(chunks, len);
          const n = Math.min(head.length, H2_PREFACE.length);
          const h2 = head.subarray(0, n).equals(H2_PREFACE.subarray(0, n));
          if (h2 && n < H2_PREFACE.length) return; // need more
          s.off('data', onData);
          s.pause();
          if (h2) {
            markHandshaken(s);
            // The peeked bytes go back into the socket's read buffer; Node's HTTP/2 session feeds
            // what a socket has buffered to its parser before it reads from the handle, so gRPC gets
            // the socket itself (no JS stream hop on every Sync write).
            s.unshift(head);
            injector.injectConnection(s);
          } else {
            s.unshift(head);
            http.emit('connection', s);
            s.resume();
          }
        };
        s.on('data', onData);
      };
      return new NetbirdServer(management, signal, relay, stun, grpcServer, http, listener, host, port, publicHost, tls, sockets, api, observability, flow, publicPort, publicTls, admission, writePidFile(opts.dataDir));
    } catch (err) {
      await api?.close();
      await flow?.close();
      await management?.close();
      await stun?.close();
      admission.close();
      listener.close();
      throw err;
    }
  }

  /** URL peers use as --management-url. */
  get managementUrl(): string {
    return `${this.publicTls ? 'https' : 'http'}://${hostPort(this.publicHost, this.publicPort)}`;
  }

  /**
   * Graceful shutdown: stop accepting, end Sync and signal streams (clients see a clean end and
   * reconnect with backoff), send relay Close to every peer, let gRPC drain for a moment, then cut
   * what is left and close the store last so every committed change is flushed.
   */
  async close(graceMs = 3000): Promise<void> {
    const stopped = new Promise<void>((resolve) => this.listener.close(() => resolve()));
    this.management.hub.shutdown();
    this.signal.close();
    await this.relay.close();
    await new Promise<void>((resolve) => {
      const t = setTimeout(() => {
        this.grpcServer.forceShutdown();
        resolve();
      }, graceMs);
      this.grpcServer.tryShutdown(() => {
        clearTimeout(t);
        resolve();
      });
    });
    for (const s of this.sockets) s.destroy();
    await stopped;
    this.admission.close();
    await this.stun?.close();
    this.http.close();
    await this.api?.close();
    await this.flow?.close();
    await this.management.close();
    this.removePidFile();
  }

}
