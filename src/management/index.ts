/**
 * Management service: store (SQLite/PostgreSQL), accounts and peers, network maps, live updates and
 * the gRPC ManagementService. The REST layer drives admin changes through `AccountManager`; each
 * change pushes new maps to the affected connected peers by itself.
 */
export { Management, SQLITE_FILE } from './service.js';
export type { ManagementOptions } from './service.js';
export {
  AccountManager,
  DEFAULT_DNS_DOMAIN,
  DEFAULT_EPHEMERAL_TIMEOUT_MS,
  USER_ROLES,
  hashPersonalAccessToken,
  isWellFormedPat,
  newPersonalAccessToken,
  setupKeyState,
} from './manager.js';
export type {
  AccountManagerOptions,
  Affected,
  ChangeListener,
  DnsRecordInput,
  DnsZoneInput,
  LoginInput,
  NameserverGroupInput,
  NetworkResourceInput,
  NetworkRouterInput,
  PeerRef,
  PeerUpdateInput,
  PolicyInput,
  PolicyRuleInput,
  RouteInput,
  SetupKeyInput,
  UserUpdateInput,
} from './manager.js';
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
export { SYNC_HEADROOM, boxBeforeNm, sealFrameInPlace } from './wire.js';
export type { AccountState } from './state.js';
export { hashSetupKey, dnsLabelFromHostname } from './util.js';
export * from './types.js';
