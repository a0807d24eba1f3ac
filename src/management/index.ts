/**
 * Management service: store (SQLite/PostgreSQL), accounts and peers, network maps, live updates and
 * the gRPC ManagementService. The REST layer drives admin changes through `AccountManager`; each
 * change pushes new maps to the affected connected peers by itself.
 */
export { Management, SQLITE_FILE } from './service.js';
export type { ManagementOptions } from './service.js';
export { AccountManager } from './manager.js';
export { DEFAULT_DNS_DOMAIN, DEFAULT_EPHEMERAL_TIMEOUT_MS } from './core.js';
export type { AccountManagerOptions, Affected, ChangeListener, PeerRef } from './core.js';
export { ACT } from './audit.js';
export { USER_ROLES } from './users.js';
export type { UserUpdateInput } from './users.js';
export { hashPersonalAccessToken, isWellFormedPat, newPersonalAccessToken } from './pat.js';
export { setupKeyState } from './setup-keys.js';
export type { SetupKeyInput } from './setup-keys.js';
export type { LoginInput, PeerUpdateInput } from './peers.js';
export type { PolicyInput, PolicyRuleInput } from './policies.js';
export type { RouteInput } from './routes.js';
export type { NetworkResourceInput, NetworkRouterInput } from './networks.js';
export type { DnsRecordInput, DnsZoneInput, NameserverGroupInput } from './dns.js';
export { AccountObjectsState, accountObjects, passesPostureChecks, peerCustomZones, peerNameServerGroups, peerRoutes, postureCheckFailure } from './objects.js';
export { NetbirdConfigBuilder, DEFAULT_CREDENTIAL_TTL_SECONDS } from './config.js';
export type { InfraConfig } from './config.js';
export { UpdateHub } from './updates.js';
export type { SyncSink, UpdateHubOptions, UpdateHubStats } from './updates.js';
export { createManagementService, metaFromProto, toGrpcError } from './grpc.js';
export type { ManagementGrpcOptions } from './grpc.js';
export { Store } from './store/store.js';
export type { AccountData, AccountObjects, LocalCredential, StoreOptions } from './store/store.js';
export { loadOrCreateServerKey, SERVER_KEY_FILE } from './serverkey.js';
export { encodeNetworkMap, encodeSyncResponse, forwarderPort, isListedOffline, isLoginExpired } from './networkmap.js';
export type { EncodedMap } from './networkmap.js';
export { SYNC_HEADROOM, boxBeforeNm, sealFrameInPlace, withGrpcPrefix } from './wire.js';
export { PrefixedMessage, installPrefixedPassThrough } from './grpc-prefixed.js';
export type { AccountState } from './state.js';
export { hashSetupKey, dnsLabelFromHostname } from './util.js';
export * from './types.js';
