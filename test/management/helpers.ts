import * as grpc from '@grpc/grpc-js';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type KeyPair, formatKey, generateKeyPair, openMessage, parseKey, sealMessage } from '../../src/crypto/index.js';
import { Management, type ManagementOptions } from '../../src/management/index.js';
import { management } from '../../src/proto/index.js';

/** Shared test helpers: a management gRPC server on loopback and a scripted peer built from our protos. */

export function tempDir(): { dir: string; remove(): void } {
  const dir = mkdtempSync(join(tmpdir(), 'nbmg-'));
  return { dir, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

export interface TestServer {
  mgmt: Management;
  address: string;
  close(): Promise<void>;
}

export async function startServer(opts: Partial<ManagementOptions> & { dataDir: string }): Promise<TestServer> {
  const mgmt = await Management.open({ debounceMs: 50, maxDelayMs: 500, ...opts });
  const server = new grpc.Server();
  const { service, implementation } = mgmt.grpcService();
  server.addService(service, implementation);
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
  );
  return {
    mgmt,
    address: `127.0.0.1:${port}`,
    async close() {
      await mgmt.close();
      server.forceShutdown();
    },
  };
}

export function meta(hostname: string, extra: Partial<management.PeerSystemMeta> = {}): management.PeerSystemMeta {
  return management.PeerSystemMeta.fromPartial({
    hostname,
    goOS: 'linux',
    OS: 'Debian',
    netbirdVersion: '0.60.2',
    capabilities: [management.PeerCapability.PeerCapabilitySourcePrefixes],
    ...extra,
  });
}

type Codec<T> = { encode(m: T): { finish(): Uint8Array }; decode(b: Uint8Array): T };

/** Waits for items pushed by a stream, with a timeout. */
export class Inbox<T> {
  private items: T[] = [];
  private waiters: Array<{ resolve: (v: T) => void; reject: (e: unknown) => void }> = [];
  ended: grpc.StatusObject | Error | undefined;
  private endWaiters: Array<() => void> = [];

  push(v: T): void {
    const w = this.waiters.shift();
    if (w) w.resolve(v);
    else this.items.push(v);
  }

  end(status: grpc.StatusObject | Error): void {
    if (!this.ended) this.ended = status;
    for (const w of this.endWaiters.splice(0)) w();
    // Readers waiting for a message get the stream's end instead (errors carry the gRPC code).
    for (const w of this.waiters.splice(0)) w.reject(status);
  }

  get size(): number {
    return this.items.length;
  }

  next(timeoutMs = 5000): Promise<T> {
    const v = this.items.shift();
    if (v !== undefined) return Promise.resolve(v);
    if (this.ended) return Promise.reject(this.ended);
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w !== waiter);
        reject(new Error(`no message within ${timeoutMs} ms`));
      }, timeoutMs);
      const waiter = {
        resolve: (x: T): void => {
          clearTimeout(t);
          resolve(x);
        },
        reject: (e: unknown): void => {
          clearTimeout(t);
          reject(e);
        },
      };
      this.waiters.push(waiter);
    });
  }

  /** Resolves true if nothing arrives within `ms`. */
  async quiet(ms: number): Promise<boolean> {
    await new Promise((r) => setTimeout(r, ms));
    return this.items.length === 0;
  }

  waitEnd(timeoutMs = 5000): Promise<grpc.StatusObject | Error> {
    if (this.ended) return Promise.resolve(this.ended);
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error('stream did not end')), timeoutMs);
      this.endWaiters.push(() => {
        clearTimeout(t);
        resolve(this.ended!);
      });
    });
  }
}

export class TestPeer {
  readonly keys: KeyPair = generateKeyPair();
  readonly client: management.ManagementServiceClient;
  private serverPub: Buffer | undefined;
  private streams: grpc.ClientReadableStream<management.EncryptedMessage>[] = [];

  constructor(
    address: string,
    readonly hostname: string,
    readonly metaOverrides: Partial<management.PeerSystemMeta> = {},
  ) {
    this.client = new management.ManagementServiceClient(address, grpc.credentials.createInsecure(), {
      'grpc.max_receive_message_length': 16 * 1024 * 1024,
    });
  }

  get publicKey(): string {
    return formatKey(this.keys.publicKey);
  }

  async serverKey(): Promise<Buffer> {
    const r = await new Promise<management.ServerKeyResponse>((resolve, reject) =>
      this.client.getServerKey({}, (err, res) => (err ? reject(err) : resolve(res!))),
    );
    this.serverPub = parseKey(r.key);
    return this.serverPub;
  }

  encrypt<T>(codec: Codec<T>, msg: T): management.EncryptedMessage {
    return { wgPubKey: this.publicKey, body: sealMessage(codec, msg, this.serverPub!, this.keys.privateKey), version: 0 };
  }

  async login(setupKey = '', extra: Partial<management.LoginRequest> = {}): Promise<management.LoginResponse> {
    await this.serverKey();
    const req = this.encrypt(management.LoginRequest, {
      setupKey,
      meta: meta(this.hostname, this.metaOverrides),
      jwtToken: '',
      peerKeys: { sshPubKey: Buffer.from('ssh-ed25519 AAAATEST ' + this.hostname), wgPubKey: Buffer.from(this.publicKey) },
      dnsLabels: [],
      ...extra,
    });
    return this.rawLogin(req);
  }

  async rawLogin(req: management.EncryptedMessage): Promise<management.LoginResponse> {
    const res = await new Promise<management.EncryptedMessage>((resolve, reject) =>
      this.client.login(req, (err, r) => (err ? reject(err) : resolve(r!))),
    );
    return openMessage(management.LoginResponse, res.body, parseKey(res.wgPubKey), this.keys.privateKey);
  }

  /** Opens Sync; every decrypted SyncResponse lands in the returned inbox. */
  async sync(): Promise<Inbox<management.SyncResponse>> {
    await this.serverKey();
    const inbox = new Inbox<management.SyncResponse>();
    const call = this.client.sync(this.encrypt(management.SyncRequest, { meta: meta(this.hostname, this.metaOverrides) }));
    this.streams.push(call);
    call.on('data', (m: management.EncryptedMessage) => {
      inbox.push(openMessage(management.SyncResponse, m.body, parseKey(m.wgPubKey), this.keys.privateKey));
    });
    call.on('error', (e) => inbox.end(e));
    call.on('status', (s) => inbox.end(s));
    return inbox;
  }

  close(): void {
    for (const s of this.streams) s.cancel();
    this.client.close();
  }
}

/** The gRPC status code of a rejected call. */
export async function codeOf(p: Promise<unknown>): Promise<number> {
  try {
    await p;
  } catch (err) {
    return (err as grpc.ServiceError).code;
  }
  return grpc.status.OK;
}

export const keyOf = (r: management.RemotePeerConfig): string => r.wgPubKey;
