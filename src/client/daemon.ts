import * as grpc from '@grpc/grpc-js';
import { chmodSync, mkdirSync, rmSync } from 'node:fs';
import * as http from 'node:http';
import { dirname } from 'node:path';
import { keyPairFromPrivate, parseKey, type KeyPair } from '../crypto/index.js';
import type { management } from '../proto/index.js';
import { VERSION } from '../shared/index.js';
import { loadOrCreateConfig, saveConfig, type ClientConfig } from './config.js';
import { ManagementClient, ManagementError } from './management.js';
import type { StatusJson } from './status.js';
import { systemMeta } from './system.js';

/** What a running engine reports; the daemon adds versions and its own state. */
export type EngineStatus = Omit<StatusJson, 'cliVersion' | 'daemonVersion' | 'daemonStatus'>;

export interface EngineHandle {
  status(): EngineStatus;
  stop(): Promise<void>;
}

export interface EngineStartArgs {
  config: ClientConfig;
  keys: KeyPair;
  management: ManagementClient;
  login: management.LoginResponse;
  meta: () => management.PeerSystemMeta;
  /** Called when management says the peer must log in again (PermissionDenied). */
  onNeedsLogin(reason: string): void;
}

export type EngineFactory = (args: EngineStartArgs) => Promise<EngineHandle>;

export interface UpRequest {
  setupKey?: string;
  managementUrl?: string;
  hostname?: string;
  interfaceName?: string;
  wireguardPort?: number;
}

export type DaemonState = 'Idle' | 'NeedsLogin' | 'Connecting' | 'Connected' | 'LoginFailed';

/** A daemon error carries an HTTP status for the control API and a message telling the user what to do. */
export class DaemonError extends Error {
  override readonly name = 'DaemonError';
  constructor(
    readonly httpStatus: number,
    message: string,
  ) {
    super(message);
  }
}

function emptyStatus(cfg: ClientConfig, keys: KeyPair): EngineStatus {
  return {
    peers: { total: 0, connected: 0, details: [] },
    management: { url: cfg.managementUrl, connected: false, error: '' },
    signal: { url: '', connected: false, error: '' },
    relays: { total: 0, available: 0, details: [] },
    netbirdIp: '',
    publicKey: keys.publicKey.toString('base64'),
    usesKernelInterface: false,
    fqdn: '',
    quantumResistance: false,
    networks: [],
    dnsServers: [],
  };
}

/** The daemon: owns the config, logs in, runs one engine at a time. */
export class Daemon {
  private state: DaemonState = 'Idle';
  private lastError = '';
  private engine: EngineHandle | undefined;
  private mgmt: ManagementClient | undefined;
  private busy: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly configPath: string,
    private readonly startEngine: EngineFactory,
  ) {}

  private config(): ClientConfig {
    return loadOrCreateConfig(this.configPath);
  }

  /** Serializes control operations (two `up`s at once must not start two engines). */
  private exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.busy.then(fn, fn);
    this.busy = run.catch(() => undefined);
    return run;
  }

  private applyFlags(req: UpRequest): ClientConfig {
    const cfg = this.config();
    let changed = false;
    if (req.managementUrl && req.managementUrl !== cfg.managementUrl) {
      new URL(req.managementUrl);
      cfg.managementUrl = req.managementUrl.replace(/\/+$/, '');
      changed = true;
    }
    if (req.interfaceName && req.interfaceName !== cfg.interfaceName) {
      cfg.interfaceName = req.interfaceName;
      changed = true;
    }
    if (req.wireguardPort !== undefined && req.wireguardPort !== cfg.wireguardPort) {
      cfg.wireguardPort = req.wireguardPort;
      changed = true;
    }
    if (req.hostname && req.hostname !== cfg.hostname) {
      cfg.hostname = req.hostname;
      changed = true;
    }
    if (changed) saveConfig(this.configPath, cfg);
    return cfg;
  }

  /** Login (registering with the setup key when the peer is unknown). */
  private async loginWith(cfg: ClientConfig, keys: KeyPair, setupKey: string | undefined): Promise<{ client: ManagementClient; login: management.LoginResponse }> {
    const client = new ManagementClient(cfg.managementUrl, keys);
    const meta = systemMeta(cfg.hostname ? { hostname: cfg.hostname } : {});
    try {
      try {
        return { client, login: await client.login({ meta }) };
      } catch (e) {
        const needsRegistration = e instanceof ManagementError && (e.code === grpc.status.PERMISSION_DENIED || e.code === grpc.status.INVALID_ARGUMENT);
        if (!needsRegistration || !setupKey) throw e;
      }
      return { client, login: await client.login({ meta, setupKey: setupKey.trim() }) };
    } catch (e) {
      client.close();
      if (e instanceof ManagementError) {
        if (e.code === grpc.status.PERMISSION_DENIED) {
          this.state = 'NeedsLogin';
          throw new DaemonError(412, `this peer is not registered with ${cfg.managementUrl}: run "netbird up --setup-key <KEY>" (${e.message})`);
        }
        if (e.code === grpc.status.NOT_FOUND) {
          this.state = 'LoginFailed';
          throw new DaemonError(403, `the setup key was refused by ${cfg.managementUrl} (unknown, expired, revoked or used up): create a new key in the dashboard or with "netbird-server setup-keys create"`);
        }
        if (e.code === grpc.status.UNAVAILABLE || e.code === grpc.status.DEADLINE_EXCEEDED) {
          this.state = 'LoginFailed';
          throw new DaemonError(503, `cannot reach management at ${cfg.managementUrl}: check the URL (--management-url) and that the server is running (${e.message})`);
        }
      }
      this.state = 'LoginFailed';
      throw new DaemonError(500, `login failed: ${(e as Error).message}`);
    }
  }

  async up(req: UpRequest): Promise<void> {
    return this.exclusive(async () => {
      if (this.engine && this.state === 'Connected' && !req.setupKey && !req.managementUrl) return;
      await this.stopEngine();
      const cfg = this.applyFlags(req);
      const keys = keyPairFromPrivate(parseKey(cfg.privateKey, 'private key'));
      this.state = 'Connecting';
      this.lastError = '';
      const { client, login } = await this.loginWith(cfg, keys, req.setupKey);
      try {
        this.engine = await this.startEngine({
          config: cfg,
          keys,
          management: client,
          login,
          meta: () => systemMeta(cfg.hostname ? { hostname: cfg.hostname } : {}),
          onNeedsLogin: (reason) => {
            this.state = 'NeedsLogin';
            this.lastError = reason;
            void this.exclusive(() => this.stopEngine(true));
          },
        });
        this.mgmt = client;
        this.state = 'Connected';
        if (!cfg.connectOnStart) saveConfig(this.configPath, { ...cfg, connectOnStart: true });
      } catch (e) {
        client.close();
        this.state = 'Idle';
        this.lastError = (e as Error).message;
        throw new DaemonError(500, `could not start the network engine: ${(e as Error).message}`);
      }
    });
  }

  async login(req: UpRequest): Promise<void> {
    return this.exclusive(async () => {
      const cfg = this.applyFlags(req);
      const keys = keyPairFromPrivate(parseKey(cfg.privateKey, 'private key'));
      const { client } = await this.loginWith(cfg, keys, req.setupKey);
      client.close();
      if (!this.engine) this.state = 'Idle';
    });
  }

  private async stopEngine(keepState = false): Promise<void> {
    const e = this.engine;
    this.engine = undefined;
    if (e) await e.stop();
    this.mgmt?.close();
    this.mgmt = undefined;
    if (!keepState) this.state = 'Idle';
  }

  async down(): Promise<void> {
    return this.exclusive(async () => {
      await this.stopEngine();
      const cfg = this.config();
      if (cfg.connectOnStart) saveConfig(this.configPath, { ...cfg, connectOnStart: false });
    });
  }

  /** On daemon start: reconnect if the user left the peer up. */
  async resume(): Promise<void> {
    if (this.config().connectOnStart) await this.up({});
  }

  /** Deregisters this peer on the server (it must register again with a setup key). */
  async logout(): Promise<void> {
    return this.exclusive(async () => {
      await this.stopEngine();
      const cfg = this.config();
      const client = new ManagementClient(cfg.managementUrl, keyPairFromPrivate(parseKey(cfg.privateKey)));
      try {
        await client.logout();
      } catch (e) {
        if (!(e instanceof ManagementError && e.code === grpc.status.NOT_FOUND)) {
          throw new DaemonError(503, `logout failed: ${(e as Error).message}`);
        }
      } finally {
        client.close();
      }
      this.state = 'NeedsLogin';
    });
  }

  status(): StatusJson {
    const cfg = this.config();
    const keys = keyPairFromPrivate(parseKey(cfg.privateKey));
    const base = this.engine ? this.engine.status() : emptyStatus(cfg, keys);
    if (!this.engine && this.lastError) base.management.error = this.lastError;
    return { ...base, cliVersion: VERSION, daemonVersion: VERSION, daemonStatus: this.state };
  }

  /** Stops the engine but keeps connectOnStart, so a restarted daemon reconnects. */
  async close(): Promise<void> {
    await this.exclusive(() => this.stopEngine());
  }
}

/** "unix:///var/run/netbird.sock" -> "/var/run/netbird.sock". */
export function socketPathOf(daemonAddr: string): string {
  if (!daemonAddr.startsWith('unix://')) throw new Error(`unsupported --daemon-addr ${JSON.stringify(daemonAddr)}: use unix:///path/to.sock`);
  const path = daemonAddr.slice('unix://'.length);
  if (!path.startsWith('/')) throw new Error(`--daemon-addr needs an absolute path: unix:///var/run/netbird.sock`);
  return path;
}

async function readJson(req: http.IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const c of req) {
    size += (c as Buffer).length;
    if (size > 64 * 1024) throw new DaemonError(413, 'request too large');
    chunks.push(c as Buffer);
  }
  if (size === 0) return {};
  try {
    return JSON.parse(Buffer.concat(chunks).toString('utf8'));
  } catch {
    throw new DaemonError(400, 'request body is not JSON');
  }
}

function upRequestOf(body: unknown): UpRequest {
  const b = (body ?? {}) as Record<string, unknown>;
  const out: UpRequest = {};
  for (const k of ['setupKey', 'managementUrl', 'hostname', 'interfaceName'] as const) {
    if (b[k] === undefined) continue;
    if (typeof b[k] !== 'string') throw new DaemonError(400, `${k} must be a string`);
    out[k] = b[k] as string;
  }
  if (b.wireguardPort !== undefined) {
    if (typeof b.wireguardPort !== 'number' || !Number.isInteger(b.wireguardPort) || b.wireguardPort < 0 || b.wireguardPort > 65535) {
      throw new DaemonError(400, 'wireguardPort must be an integer 0-65535');
    }
    out.wireguardPort = b.wireguardPort;
  }
  return out;
}

/** Serves the daemon's control API (JSON over HTTP) on a unix socket readable by root only. */
export async function serveControl(daemon: Daemon, socketPath: string): Promise<http.Server> {
  mkdirSync(dirname(socketPath), { recursive: true });
  rmSync(socketPath, { force: true });
  const server = http.createServer((req, res) => {
    const send = (status: number, body: unknown): void => {
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(JSON.stringify(body));
    };
    void (async () => {
      try {
        const route = `${req.method} ${req.url}`;
        switch (route) {
          case 'GET /v1/status':
            return send(200, daemon.status());
          case 'POST /v1/up':
            await daemon.up(upRequestOf(await readJson(req)));
            return send(200, daemon.status());
          case 'POST /v1/login':
            await daemon.login(upRequestOf(await readJson(req)));
            return send(200, daemon.status());
          case 'POST /v1/down':
            await daemon.down();
            return send(200, daemon.status());
          case 'POST /v1/logout':
            await daemon.logout();
            return send(200, daemon.status());
          default:
            return send(404, { error: `no such control endpoint ${route}` });
        }
      } catch (e) {
        const status = e instanceof DaemonError ? e.httpStatus : 500;
        send(status, { error: (e as Error).message });
      }
    })();
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(socketPath, () => resolve());
  });
  chmodSync(socketPath, 0o600);
  return server;
}

/** The CLI side of the control API. */
export async function callDaemon<T>(socketPath: string, method: 'GET' | 'POST', path: string, body?: unknown, timeoutMs = 120_000): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const req = http.request({ socketPath, method, path, headers: { 'content-type': 'application/json' }, timeout: timeoutMs }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        let parsed: unknown;
        try {
          parsed = JSON.parse(Buffer.concat(chunks).toString('utf8'));
        } catch {
          reject(new Error(`daemon answered with invalid JSON (HTTP ${res.statusCode})`));
          return;
        }
        if ((res.statusCode ?? 500) >= 400) reject(new DaemonError(res.statusCode ?? 500, (parsed as { error?: string }).error ?? 'daemon error'));
        else resolve(parsed as T);
      });
    });
    req.on('timeout', () => req.destroy(new Error('timed out waiting for the daemon')));
    req.on('error', (e: NodeJS.ErrnoException) => {
      if (e.code === 'ENOENT' || e.code === 'ECONNREFUSED') {
        reject(new Error(`the netbird daemon is not running (no socket at ${socketPath}): start it with "netbird service install && netbird service start", or run "netbird service run" in another terminal, or use "netbird up --foreground-mode"`));
      } else reject(e);
    });
    if (body !== undefined) req.write(JSON.stringify(body));
    req.end();
  });
}
