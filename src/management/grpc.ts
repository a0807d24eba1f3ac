import * as grpc from '@grpc/grpc-js';
import { EnvelopeError, type KeyPair, formatKey, openMessageWithKey, parseKey, sealMessageWithKey } from '../crypto/index.js';
import { geoDatabase, isPublicAddress } from '../geo/index.js';
import { management } from '../proto/index.js';
import type { NetbirdConfigBuilder } from './config.js';
import type { AccountManager } from './manager.js';
import { peerConfigOf, sessionExpiresAt } from './networkmap.js';
import type { PeerLocation, PeerMeta } from './types.js';
import { ManagementError, emptyPeerMeta } from './types.js';
import { type FrameSealer, InlineSealer } from './seal-worker.js';
import { boxBeforeNm, withGrpcPrefix } from './wire.js';
import { PrefixedMessage, installPrefixedPassThrough } from './grpc-prefixed.js';
import { type UpdateHub, flowSwitchFor } from './updates.js';
import { unmapIPv4 } from '../shared/index.js';

/**
 * The gRPC face of the management service (protocol.md §3-4): envelope decryption of every request,
 * Login / Sync / SyncMeta / Logout / GetServerKey / isHealthy, and UNIMPLEMENTED for the rest.
 */

export interface ManagementGrpcOptions {
  manager: AccountManager;
  hub: UpdateHub;
  infra: NetbirdConfigBuilder;
  serverKey: KeyPair;
  /**
   * Resolves a JWT from LoginRequest.jwtToken to the id of a known user; undefined = SSO not
   * supported by this server (such logins answer InvalidArgument).
   */
  resolveJwtUser?: (token: string) => Promise<string>;
  /**
   * OAuth2 device-flow client settings handed to peers (GetDeviceAuthorizationFlow); undefined or
   * returning undefined = no device flow here (NotFound, clients then try PKCE or give up on SSO).
   */
  deviceAuthorizationFlow?: () => management.ProviderConfig | undefined;
  /** The same for GetPKCEAuthorizationFlow (absent: UNIMPLEMENTED, as before SSO existed here). */
  pkceAuthorizationFlow?: () => management.ProviderConfig | undefined;
  /** Sync streams allowed between request and initial map at once (reference: 1000); more get RESOURCE_EXHAUSTED. */
  maxSyncHandshakes?: number;
  /** Encrypts map pushes (default: on this thread; Management passes a WorkerSealer). */
  sealer?: FrameSealer;
  /** Place of a public address (default: the shipped geolocation database; null: none). */
  locate?: ((ip: string) => Omit<PeerLocation, 'connectionIp'> | undefined) | null;
  log?: (msg: string) => void;
}

/**
 * The public address a login came from: the connection's, or, when that is a private one (a
 * reverse proxy in front of us), the proxy's X-Real-IP / first X-Forwarded-For.
 */
export function loginAddress(peer: string, metadata: grpc.Metadata): string {
  if (peer === 'unknown') return forwardedAddress(metadata);
  const m = /^(?:ipv[46]:)?\[?([^\]]+?)\]?(?::\d+)?$/.exec(peer);
  let ip = unmapIPv4(m?.[1] ?? '');
  if (!isPublicAddress(ip)) ip = forwardedAddress(metadata) || ip;
  return ip;
}

function forwardedAddress(metadata: grpc.Metadata): string {
  return String(metadata.get('x-real-ip')[0] ?? metadata.get('x-forwarded-for')[0] ?? '').split(',')[0]!.trim();
}

/**
 * call.getPeer(), or for connections netbird-server hands to grpc-js as a JS stream (cleartext
 * HTTP/2 after sniffing the preface) the address of that stream: Node wraps such streams in a
 * socket without an address, so grpc-js answers "unknown"; the wrapper keeps the stream as `.stream`.
 */
export function callPeer(call: { getPeer(): string }): string {
  const peer = call.getPeer();
  if (peer !== 'unknown') return peer;
  let c: unknown = call;
  for (let i = 0; i < 4 && c && typeof c === 'object'; i++) {
    const o = c as { stream?: { session?: { socket?: { stream?: { remoteAddress?: unknown; remotePort?: unknown } } } }; call?: unknown; nextCall?: unknown };
    const inner = o.stream?.session?.socket?.stream;
    if (inner && typeof inner.remoteAddress === 'string') {
      const a = inner.remoteAddress.includes(':') ? `[${inner.remoteAddress}]` : inner.remoteAddress;
      return typeof inner.remotePort === 'number' ? `${a}:${inner.remotePort}` : a;
    }
    c = o.call ?? o.nextCall;
  }
  return peer;
}

const CODE: Record<ManagementError['kind'], grpc.status> = {
  not_found: grpc.status.NOT_FOUND,
  invalid_argument: grpc.status.INVALID_ARGUMENT,
  permission_denied: grpc.status.PERMISSION_DENIED,
  failed_precondition: grpc.status.FAILED_PRECONDITION,
  already_exists: grpc.status.ALREADY_EXISTS,
  unprocessable: grpc.status.INVALID_ARGUMENT,
  unauthenticated: grpc.status.UNAUTHENTICATED,
  internal: grpc.status.INTERNAL,
};

function statusError(code: grpc.status, details: string): Partial<grpc.StatusObject> & Error {
  return Object.assign(new Error(details), { code, details, metadata: new grpc.Metadata() });
}

/** Maps any error to a gRPC status; unknown errors become INTERNAL without leaking details. */
export function toGrpcError(err: unknown, log?: (m: string) => void): Partial<grpc.StatusObject> & Error {
  if (err instanceof ManagementError) return statusError(CODE[err.kind], err.message);
  if (err instanceof EnvelopeError) return statusError(grpc.status.INVALID_ARGUMENT, 'invalid request message');
  log?.(`management: internal error: ${(err as Error)?.stack ?? String(err)}`);
  return statusError(grpc.status.INTERNAL, 'failed handling request');
}

/**
 * Bounds of what a peer may say about itself. Its meta is stored, shown in the API and (hostname,
 * version) copied into every other peer's map, so one peer must not be able to bloat them all. Real
 * clients stay far below these.
 */
export const PEER_META_LIMITS = { string: 256, path: 4096, networkAddresses: 256, capabilities: 64, files: 256 } as const;

const CONTROL_CHARS = /[\u0000-\u001f\u007f]/;

function checkMetaString(field: string, v: string, max: number = PEER_META_LIMITS.string): string {
  if (v.length > max) throw new ManagementError('invalid_argument', `meta.${field}: ${v.length} characters, at most ${max}`);
  if (CONTROL_CHARS.test(v)) throw new ManagementError('invalid_argument', `meta.${field}: must not contain control characters`);
  return v;
}

function checkMetaCount(field: string, n: number, max: number): void {
  if (n > max) throw new ManagementError('invalid_argument', `meta.${field}: ${n} entries, at most ${max}`);
}

/** PeerSystemMeta (wire) -> stored meta, within PEER_META_LIMITS. Only `true` flags are kept, to keep rows small. */
export function metaFromProto(m: management.PeerSystemMeta): PeerMeta {
  for (const f of ['hostname', 'goOS', 'kernel', 'core', 'platform', 'OS', 'netbirdVersion', 'uiVersion', 'kernelVersion', 'OSVersion', 'sysSerialNumber', 'sysProductName', 'sysManufacturer'] as const) {
    checkMetaString(f, m[f]);
  }
  checkMetaCount('networkAddresses', m.networkAddresses.length, PEER_META_LIMITS.networkAddresses);
  for (const a of m.networkAddresses) {
    checkMetaString('networkAddresses.netIP', a.netIP);
    checkMetaString('networkAddresses.mac', a.mac);
  }
  checkMetaCount('capabilities', m.capabilities.length, PEER_META_LIMITS.capabilities);
  checkMetaCount('files', m.files.length, PEER_META_LIMITS.files);
  for (const f of m.files) checkMetaString('files.path', f.path, PEER_META_LIMITS.path);
  if (m.environment) {
    checkMetaString('environment.cloud', m.environment.cloud);
    checkMetaString('environment.platform', m.environment.platform);
  }
  const flags: Record<string, boolean> = {};
  if (m.flags) for (const [k, v] of Object.entries(m.flags)) if (v === true) flags[k] = true;
  return {
    ...emptyPeerMeta(),
    hostname: m.hostname,
    goOS: m.goOS,
    kernel: m.kernel,
    core: m.core,
    platform: m.platform,
    OS: m.OS,
    netbirdVersion: m.netbirdVersion,
    uiVersion: m.uiVersion,
    kernelVersion: m.kernelVersion,
    OSVersion: m.OSVersion || m.core,
    networkAddresses: m.networkAddresses.map((a) => ({ netIP: a.netIP, mac: a.mac })),
    sysSerialNumber: m.sysSerialNumber,
    sysProductName: m.sysProductName,
    sysManufacturer: m.sysManufacturer,
    environment: { cloud: m.environment?.cloud ?? '', platform: m.environment?.platform ?? '' },
    flags,
    capabilities: m.capabilities.filter((c) => c > 0),
  };
}

const unimplemented = (name: string) =>
  (_call: unknown, callback: grpc.sendUnaryData<never>): void => callback(statusError(grpc.status.UNIMPLEMENTED, `${name} is not implemented by this server`));

export function createManagementService(opts: ManagementGrpcOptions): {
  service: typeof management.ManagementServiceService;
  implementation: management.ManagementServiceServer;
} {
  const { manager, hub, infra, serverKey, log } = opts;
  const serverPub = formatKey(serverKey.publicKey);
  installPrefixedPassThrough();
  const maxHandshakes = opts.maxSyncHandshakes ?? 1000;
  const sealer = opts.sealer ?? new InlineSealer(serverPub);
  const locate = opts.locate === null ? undefined : (opts.locate ?? ((ip: string) => geoDatabase().lookup(ip)));
  let handshakes = 0;

  /**
   * Box keys of the peers that proved they hold their key, by peer key: a restart storm costs one
   * X25519 per peer instead of one per message (Login, its answer, Sync, the stream). Only keys that
   * opened a message are kept, so made-up keys cannot push real ones out; bounded, oldest out first.
   */
  const boxKeys = new Map<string, Buffer>();
  const BOX_KEYS_MAX = 200_000;

  /** Authenticates a request: parses the sender key and opens the envelope. */
  function open<T>(codec: { encode(m: T): { finish(): Uint8Array }; decode(b: Uint8Array): T }, req: management.EncryptedMessage): { peerKey: string; boxKey: Buffer; msg: T } {
    let peerPub: Buffer;
    try {
      peerPub = parseKey(req.wgPubKey, 'peer public key');
    } catch (err) {
      throw new ManagementError('invalid_argument', (err as Error).message);
    }
    const peerKey = formatKey(peerPub);
    const known = boxKeys.get(peerKey);
    const boxKey = known ?? boxBeforeNm(peerPub, serverKey.privateKey);
    const msg = openMessageWithKey(codec, req.body, boxKey);
    if (!known) {
      if (boxKeys.size >= BOX_KEYS_MAX) boxKeys.delete(boxKeys.keys().next().value!);
      boxKeys.set(peerKey, boxKey);
    }
    return { peerKey, boxKey, msg };
  }

  function seal<T>(codec: { encode(m: T): { finish(): Uint8Array }; decode(b: Uint8Array): T }, msg: T, boxKey: Buffer): management.EncryptedMessage {
    return { wgPubKey: serverPub, body: sealMessageWithKey(codec, msg, boxKey), version: 0 };
  }

  const implementation: management.ManagementServiceServer = {
    getServerKey(_call, callback) {
      const expires = Math.floor(Date.now() / 1000) + 24 * 3600;
      callback(null, { key: serverPub, expiresAt: { seconds: expires, nanos: 0 }, version: 0 });
    },

    isHealthy(_call, callback) {
      callback(null, {});
    },

    login(call, callback) {
      void (async () => {
        const { peerKey, boxKey, msg } = open(management.LoginRequest, call.request);
        if (!msg.meta) throw new ManagementError('failed_precondition', 'peer system meta has to be provided to log in');
        let jwtUserId: string | undefined;
        if (msg.jwtToken) {
          if (!opts.resolveJwtUser) throw new ManagementError('invalid_argument', 'SSO login is not configured on this server; use a setup key');
          jwtUserId = await opts.resolveJwtUser(msg.jwtToken);
        }
        const connectionIp = loginAddress(callPeer(call), call.metadata);
        const place = connectionIp && locate ? locate(connectionIp) : undefined;
        const ref = await manager.loginPeer({
          location: connectionIp ? { connectionIp, countryCode: place?.countryCode ?? '', cityName: place?.cityName ?? '', geonameId: place?.geonameId ?? 0 } : undefined,
          peerKey,
          setupKey: jwtUserId ? undefined : msg.setupKey,
          jwtUserId,
          meta: metaFromProto(msg.meta),
          sshKey: msg.peerKeys ? Buffer.from(msg.peerKeys.sshPubKey).toString('utf8') : undefined,
          dnsLabels: msg.dnsLabels,
        });
        const resp: management.LoginResponse = {
          netbirdConfig: infra.full(false, flowSwitchFor(ref.state, ref.peer)),
          peerConfig: peerConfigOf(ref.state, ref.peer),
          Checks: [],
          sessionExpiresAt: sessionExpiresAt(ref.state, ref.peer),
        };
        return seal(management.LoginResponse, resp, boxKey);
      })().then(
        (res) => callback(null, res),
        (err) => callback(toGrpcError(err, log)),
      );
    },

    sync(call) {
      let session: ReturnType<UpdateHub['open']> | undefined;
      let ended = false;
      let peerKey = '';
      const finish = (): void => {
        if (ended) return;
        ended = true;
        if (session && hub.close(session)) manager.peerDisconnected(peerKey).catch((e) => log?.(`management: ${String(e)}`));
      };
      call.on('cancelled', finish);
      call.on('close', finish);
      call.on('error', finish);
      if (handshakes >= maxHandshakes) {
        ended = true;
        call.emit('error', statusError(grpc.status.RESOURCE_EXHAUSTED, 'too many concurrent Sync handshakes; retry with backoff'));
        return;
      }
      handshakes++;
      void (async () => {
        const opened = open(management.SyncRequest, call.request);
        peerKey = opened.peerKey;
        const meta = opened.msg.meta ? metaFromProto(opened.msg.meta) : undefined;
        const ref = await manager.syncPeer(peerKey, meta);
        if (ended || call.cancelled) {
          await manager.peerDisconnected(peerKey);
          return;
        }
        const boxKey = opened.boxKey;
        session = hub.open(ref, {
          // grpc-js hands the frame's own bytes to HTTP/2 (or copies them without the hook) and calls
          // back once the socket write completed; nothing references the frame after that.
          recyclesFrames: true,
          send: (frame, written) => {
            if (ended) return;
            sealer.seal(frame, boxKey, (sealed) => {
              if (ended) return;
              if (!sealed) {
                // The 'error' handler (finish) closes the session.
                call.emit('error', statusError(grpc.status.INTERNAL, 'could not encrypt the network map; reconnect'));
                return;
              }
              // Already the EncryptedMessage wire bytes behind gRPC's prefix (grpc-prefixed.ts).
              // The callback fires once HTTP/2 took the frame (within the peer's flow-control window).
              call.write(new PrefixedMessage(withGrpcPrefix(sealed)) as unknown as management.EncryptedMessage, written);
            });
          },
          end: (error) => {
            if (ended) return;
            ended = true;
            if (error) call.emit('error', toGrpcError(error));
            else call.end();
            // A newer stream of the same peer replaced this one: the peer is still online.
            if (!hub.isConnected(ref.peer.id)) manager.peerDisconnected(peerKey).catch((e) => log?.(`management: ${String(e)}`));
          },
        });
      })()
        .catch((err) => {
          if (ended) return;
          ended = true;
          call.emit('error', toGrpcError(err, log));
        })
        .finally(() => handshakes--);
    },

    syncMeta(call, callback) {
      void (async () => {
        const { peerKey, msg } = open(management.SyncMetaRequest, call.request);
        if (!msg.meta) throw new ManagementError('failed_precondition', 'peer system meta has to be provided');
        await manager.syncMeta(peerKey, metaFromProto(msg.meta));
        return {};
      })().then(
        (res) => callback(null, res),
        (err) => callback(toGrpcError(err, log)),
      );
    },

    logout(call, callback) {
      void (async () => {
        const { peerKey } = open(management.Empty, call.request);
        await manager.logoutPeer(peerKey);
        return {};
      })().then(
        (res) => callback(null, res),
        (err) => callback(toGrpcError(err, log)),
      );
    },

    getDeviceAuthorizationFlow(call, callback) {
      void (async () => {
        const { boxKey } = open(management.DeviceAuthorizationFlowRequest, call.request);
        const cfg = opts.deviceAuthorizationFlow?.();
        if (!cfg) throw new ManagementError('not_found', 'no device authorization flow is configured on this server');
        return seal(management.DeviceAuthorizationFlow, { Provider: management.DeviceAuthorizationFlow_provider.HOSTED, ProviderConfig: cfg }, boxKey);
      })().then(
        (res) => callback(null, res),
        (err) => callback(toGrpcError(err, log)),
      );
    },
    getPkceAuthorizationFlow: opts.pkceAuthorizationFlow
      ? (call, callback) => {
          void (async () => {
            const { boxKey } = open(management.PKCEAuthorizationFlowRequest, call.request);
            const cfg = opts.pkceAuthorizationFlow?.();
            if (!cfg) throw new ManagementError('not_found', 'no PKCE authorization flow is configured on this server');
            return seal(management.PKCEAuthorizationFlow, { ProviderConfig: cfg }, boxKey);
          })().then(
            (res) => callback(null, res),
            (err) => callback(toGrpcError(err, log)),
          );
        }
      : unimplemented('GetPKCEAuthorizationFlow'),
    job(call) {
      call.emit('error', statusError(grpc.status.UNIMPLEMENTED, 'Job is not implemented by this server'));
    },
    extendAuthSession: unimplemented('ExtendAuthSession'),
    createExpose: unimplemented('CreateExpose'),
    renewExpose: unimplemented('RenewExpose'),
    stopExpose: unimplemented('StopExpose'),
  };
  return { service: MANAGEMENT_SERVICE, implementation };
}

/**
 * ManagementService with a Sync serializer that passes pre-encoded EncryptedMessage bytes through
 * (map pushes are sealed in place, wire.ts) and encodes message objects as usual.
 */
const MANAGEMENT_SERVICE: typeof management.ManagementServiceService = {
  ...management.ManagementServiceService,
  sync: {
    ...management.ManagementServiceService.sync,
    responseSerialize: (value: management.EncryptedMessage): Buffer =>
      value instanceof PrefixedMessage ? value.message : Buffer.from(management.EncryptedMessage.encode(value).finish()),
  },
};
