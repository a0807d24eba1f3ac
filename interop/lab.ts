// An interop lab: one management server (ours or the official combined server) on the lab's internet,
// and clients (ours or official) behind NATs. REST calls go through curl inside the server's namespace,
// the same calls against either server.
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Lab, run, sleep, waitUntil, type LabProcess, type NatHost, type NatType } from '../test/lab/index.js';
import type { PeerStatusJson } from '../src/client/status.js';
import { OfficialClient, type LabClient } from './official.js';
import { OurClient } from './ours.js';

export interface Binaries {
  /** The official `netbird` client. */
  client: string;
  /** The official combined server (`combined/` in netbirdio/netbird). */
  server: string;
}

export type Kind = 'ours' | 'official';

const NODE = process.execPath;
const OUR_SERVER = ['--import', 'tsx', 'test/server/run-cli.ts'];
export const PORT = 33073;
export const ADMIN = { email: 'admin@example.com', password: 'interop-password-1', name: 'Admin' };

export interface ServerOptions {
  /** Serve TLS with a self-signed certificate for the server's address (clients get NB_ skip-verify off: trusted CA file). */
  tls?: boolean;
  /** Extra flags for our server. */
  args?: string[];
}

export class InteropLab {
  server!: LabProcess;
  srv!: NatHost;
  token = '';
  setupKey = '';
  readonly clients: LabClient[] = [];
  private readonly etcDirs: string[] = [];
  private dataDir = '';
  private tlsFiles: { cert: string; key: string } | undefined;

  private constructor(
    readonly lab: Lab,
    readonly serverKind: Kind,
    readonly bins: Binaries,
    private readonly opts: ServerOptions,
  ) {}

  static async create(serverKind: Kind, bins: Binaries, opts: ServerOptions = {}): Promise<InteropLab> {
    const m = new InteropLab(await Lab.create({ prefix: 'nbio' }), serverKind, bins, opts);
    try {
      m.srv = await m.lab.natHost('srv', 'none');
      m.dataDir = m.lab.tmpdir();
      if (opts.tls) m.tlsFiles = await m.makeCert();
      await m.startServer();
      await m.bootstrap();
    } catch (e) {
      await m.cleanup();
      throw e;
    }
    return m;
  }

  get url(): string {
    return `${this.opts.tls ? 'https' : 'http'}://${this.srv.ip}:${PORT}`;
  }

  /** A CA-signed certificate for the server's IP; the CA goes into the system store clients read (SSL_CERT_FILE). */
  private async makeCert(): Promise<{ cert: string; key: string }> {
    const d = this.lab.tmpdir();
    const ip = this.srv.ip;
    const sh = (cmd: string): Promise<unknown> => run('sh', ['-c', cmd], { timeoutMs: 30_000 });
    await sh(`cd ${d} && openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 2 -subj /CN=interop-ca 2>/dev/null`);
    await sh(`cd ${d} && openssl req -newkey rsa:2048 -nodes -keyout srv.key -out srv.csr -subj /CN=${ip} 2>/dev/null`);
    writeFileSync(join(d, 'ext'), `subjectAltName=IP:${ip}\nextendedKeyUsage=serverAuth\n`);
    await sh(`cd ${d} && openssl x509 -req -in srv.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out srv.pem -days 2 -extfile ext 2>/dev/null`);
    this.caFile = join(d, 'ca.pem');
    return { cert: join(d, 'srv.pem'), key: join(d, 'srv.key') };
  }

  caFile = '';

  async startServer(): Promise<void> {
    if (this.serverKind === 'ours') {
      const tls = this.tlsFiles ? ['--tls-cert', this.tlsFiles.cert, '--tls-key', this.tlsFiles.key] : [];
      this.server = this.srv.host.spawn(NODE, [
        ...OUR_SERVER, '--data-dir', this.dataDir, '--listen', `0.0.0.0:${PORT}`, '--exposed-address', this.tlsFiles ? `https://${this.srv.ip}:${PORT}` : this.srv.ip,
        '--stun-port', '3478', ...tls, ...(this.opts.args ?? []),
      ]);
      await this.server.waitFor(/listening on/, 60_000);
      return;
    }
    // The official combined server reads YAML; JSON is YAML.
    const config = {
      server: {
        listenAddress: `:${PORT}`,
        exposedAddress: this.url,
        stunPorts: [3478],
        metricsPort: 19090,
        healthcheckAddress: ':19000',
        logLevel: 'debug',
        logFile: 'console',
        authSecret: randomBytes(16).toString('hex'),
        dataDir: this.dataDir,
        disableAnonymousMetrics: true,
        disableGeoliteUpdate: true,
        tls: this.tlsFiles ? { certFile: this.tlsFiles.cert, keyFile: this.tlsFiles.key } : {},
        auth: {
          issuer: `${this.url}/oauth2`,
          dashboardRedirectURIs: [`${this.url}/nb-auth`, `${this.url}/nb-silent-auth`],
          cliRedirectURIs: ['http://localhost:53000/'],
        },
        store: { engine: 'sqlite' },
      },
    };
    const file = join(this.dataDir, 'config.yaml');
    writeFileSync(file, JSON.stringify(config, null, 2));
    // Geolocation would download MaxMind databases at start (the lab has no internet); setup PATs are opt-in there.
    this.server = this.srv.host.spawn(this.bins.server, ['--config', file], { env: { ...process.env, NB_DISABLE_GEOLOCATION: 'true', NB_SETUP_PAT_ENABLED: 'true' } });
    const ok = await waitUntil(async () => (await this.srv.host.exec('curl', ['-sk', '-o', '/dev/null', '-w', '%{http_code}', `${this.url}/api/instance`], { check: false })).stdout === '200', 60_000, 250);
    if (!ok) throw new Error(`official server did not answer /api/instance:\n${this.server.output()}`);
  }

  async stopServer(): Promise<void> {
    await this.server.kill(5000);
  }

  /** Owner with a PAT (POST /api/setup, the same on both servers) and a reusable setup key. */
  private async bootstrap(): Promise<void> {
    const r = await this.api<{ personal_access_token?: string }>('POST', '/api/setup', { ...ADMIN, create_pat: true, pat_expire_in: 1 }, false);
    if (!r.personal_access_token) throw new Error('POST /api/setup returned no personal_access_token');
    this.token = r.personal_access_token;
    const k = await this.api<{ key: string }>('POST', '/api/setup-keys', { name: 'interop', type: 'reusable', expires_in: 86400, auto_groups: [], usage_limit: 0 });
    this.setupKey = k.key;
  }

  /** A REST call from inside the server's namespace. */
  async api<T>(method: string, path: string, body?: unknown, auth = true): Promise<T> {
    return this.srv.host.restJson<T>(method, `${this.url}${path}`, { body, token: auth ? this.token : undefined, insecure: true });
  }


  async addClient(kind: Kind, name: string, nat: NatType, opts: { env?: NodeJS.ProcessEnv; privateKey?: string } = {}): Promise<LabClient> {
    const env = opts.env ?? {};
    const host = await this.lab.natHost(name, nat);
    const dir = this.lab.tmpdir();
    const caEnv: NodeJS.ProcessEnv = this.caFile ? { SSL_CERT_FILE: this.caFile, NODE_EXTRA_CA_CERTS: this.caFile } : {};
    const c: LabClient = kind === 'official'
      ? new OfficialClient(name, host, this.bins.client, dir, { ...caEnv, ...env })
      : new OurClient(name, host, dir, { ...caEnv, ...env });
    if (c instanceof OurClient) {
      this.etcDirs.push(`/etc/netns/${host.host.name}`);
      if (opts.privateKey) c.setPrivateKey(opts.privateKey, this.url);
    }
    await c.start();
    this.clients.push(c);
    return c;
  }

  /** `netbird up` with the lab's setup key. */
  async up(c: LabClient, extra: string[] = []): Promise<void> {
    await c.up({ managementUrl: this.url, setupKey: this.setupKey, extra });
  }

  logs(): string {
    return [`--- server (${this.serverKind})\n${this.server.output()}`, ...this.clients.map((c) => `--- ${c.name} (${c.kind})\n${c.logs()}`)].join('\n');
  }

  async cleanup(): Promise<void> {
    for (const c of this.clients) {
      if (c instanceof OfficialClient) await c.down().catch(() => undefined);
    }
    await this.lab.cleanup();
    const { rmSync } = await import('node:fs');
    for (const d of this.etcDirs) rmSync(d, { recursive: true, force: true });
  }
}

/** The status line `a` has for `b`, or undefined. */
export async function peerStatus(a: LabClient, b: LabClient): Promise<PeerStatusJson | undefined> {
  const key = (await b.status()).publicKey;
  return (await a.status()).peers.details.find((p) => p.publicKey === key);
}

/** Waits until a and b see each other Connected (with the given type, if any); returns ms taken or -1. */
export async function waitConnection(a: LabClient, b: LabClient, type: '' | 'P2P' | 'Relayed', timeoutMs: number): Promise<number> {
  const t0 = Date.now();
  const ok = await waitUntil(async () => {
    try {
      const [ab, ba] = await Promise.all([peerStatus(a, b), peerStatus(b, a)]);
      const good = (p: PeerStatusJson | undefined): boolean => p?.status === 'Connected' && (type === '' || p.connectionType === type);
      return good(ab) && good(ba);
    } catch {
      return false;
    }
  }, timeoutMs, 250);
  return ok ? Date.now() - t0 : -1;
}

/** Overlay IPv4 of a client (no prefix length). */
export async function overlayIp(c: LabClient): Promise<string> {
  return (await c.status()).netbirdIp.split('/')[0]!;
}

/** True when `from` gets an answer to ping `to` within timeoutMs. */
export async function pings(from: LabClient, to: string, timeoutMs = 10_000): Promise<boolean> {
  return waitUntil(async () => (await from.exec('ping', ['-c1', '-W1', to], { check: false })).code === 0, timeoutMs, 200);
}

/** True when a TCP connection from `from` to host:port is accepted within timeoutMs. */
export async function tcpConnects(from: LabClient, host: string, port: number, timeoutMs = 3000): Promise<boolean> {
  const r = await from.exec('nc', ['-z', '-w', String(Math.ceil(timeoutMs / 1000)), host, String(port)], { check: false, timeoutMs: timeoutMs + 5000 });
  return r.code === 0;
}

export { sleep, waitUntil };

/** Headless Chromium whose network is the namespace `ns` (a wrapper enters it; playwright talks over pipes). */
export async function browserIn(lab: InteropLab, ns: string): Promise<import('playwright-core').BrowserContext> {
  const { launchChromium, CHROMIUM } = await import('../test/web/helpers.js');
  const { chmodSync } = await import('node:fs');
  const dir = lab.lab.tmpdir();
  const wrapper = join(dir, 'chromium-in-ns');
  writeFileSync(wrapper, `#!/bin/sh\nexec ip netns exec ${ns} ${CHROMIUM} "$@"\n`);
  chmodSync(wrapper, 0o755);
  return launchChromium(join(dir, 'profile'), { executablePath: wrapper, ignoreHTTPSErrors: true });
}
