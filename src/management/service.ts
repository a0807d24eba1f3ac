import { join } from 'node:path';
import { type KeyPair, formatKey } from '../crypto/index.js';
import { type InfraConfig, NetbirdConfigBuilder } from './config.js';
import { createManagementService } from './grpc.js';
import { AccountManager } from './manager.js';
import { loadOrCreateServerKey } from './serverkey.js';
import { Store } from './store/store.js';
import { type FrameSealer, WorkerSealer } from './seal-worker.js';
import { UpdateHub } from './updates.js';
import type { management } from '../proto/index.js';

/** Everything the management service needs, wired together: store, accounts, live updates, gRPC. */
export interface ManagementOptions {
  /** Data directory: SQLite file `management.db` and the server key live here. */
  dataDir: string;
  /** PostgreSQL DSN; when set the store is PostgreSQL instead of SQLite. */
  postgresDsn?: string;
  /** DNS domain of new accounts (default netbird.cloud). */
  dnsDomain?: string;
  ephemeralTimeoutMs?: number;
  expirationCheckMs?: number;
  /** Signal/relay/STUN/TURN advertised to peers. */
  infra?: InfraConfig;
  /** Update coalescing (protocol.md §4.5): quiet period and cap, ms. */
  debounceMs?: number;
  maxDelayMs?: number;
  resolveJwtUser?: (token: string) => Promise<string>;
  /**
   * OAuth2 device-flow client settings handed to peers (GetDeviceAuthorizationFlow); undefined or
   * returning undefined = no device flow here (NotFound, clients then try PKCE or give up on SSO).
   */
  deviceAuthorizationFlow?: () => management.ProviderConfig | undefined;
  /** The same for GetPKCEAuthorizationFlow. */
  pkceAuthorizationFlow?: () => management.ProviderConfig | undefined;
  /** Concurrent Sync handshakes before RESOURCE_EXHAUSTED (default 1000). */
  maxSyncHandshakes?: number;
  log?: (msg: string) => void;
}

export const SQLITE_FILE = 'management.db';

export class Management {
  private constructor(
    readonly store: Store,
    readonly manager: AccountManager,
    readonly hub: UpdateHub,
    readonly infra: NetbirdConfigBuilder,
    readonly serverKey: KeyPair,
    private readonly sealer: FrameSealer,
    private readonly options: ManagementOptions,
  ) {}

  static async open(options: ManagementOptions): Promise<Management> {
    const serverKey = loadOrCreateServerKey(options.dataDir);
    const store = await Store.open(
      options.postgresDsn ? { kind: 'postgres', dsn: options.postgresDsn } : { kind: 'sqlite', path: join(options.dataDir, SQLITE_FILE) },
    );
    try {
      const manager = await AccountManager.open({
        store,
        dnsDomain: options.dnsDomain,
        ephemeralTimeoutMs: options.ephemeralTimeoutMs,
        expirationCheckMs: options.expirationCheckMs,
      });
      const infra = new NetbirdConfigBuilder(options.infra ?? {});
      // Frames in shared memory: the WorkerSealer encrypts map pushes off the main thread.
      const hub = new UpdateHub(manager, infra, { debounceMs: options.debounceMs, maxDelayMs: options.maxDelayMs, sharedFrames: true });
      const sealer = new WorkerSealer(formatKey(serverKey.publicKey));
      return new Management(store, manager, hub, infra, serverKey, sealer, options);
    } catch (err) {
      await store.close();
      throw err;
    }
  }

  /** grpc-js service definition and implementation, for `server.addService(service, implementation)`. */
  grpcService(): { service: typeof management.ManagementServiceService; implementation: management.ManagementServiceServer } {
    return createManagementService({
      manager: this.manager,
      hub: this.hub,
      infra: this.infra,
      serverKey: this.serverKey,
      resolveJwtUser: this.options.resolveJwtUser,
      deviceAuthorizationFlow: this.options.deviceAuthorizationFlow,
      pkceAuthorizationFlow: this.options.pkceAuthorizationFlow,
      maxSyncHandshakes: this.options.maxSyncHandshakes,
      sealer: this.sealer,
      log: this.options.log,
    });
  }

  /** Ends all Sync streams, stops timers and closes the store. */
  async close(): Promise<void> {
    this.hub.shutdown();
    await this.manager.flushStatus().catch(() => undefined);
    this.manager.close();
    await this.sealer.close();
    await this.store.close();
  }
}
