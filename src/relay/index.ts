/** Relay server and client (protocol.md §7). */
export { RelayServer } from './server.js';
export type { RelayServerOptions, RelayServerStats, RelayLogger, RelayLogLevel } from './server.js';
export { RelayClient, RelayConnectError, connectHomeRelay } from './client.js';
export type { RelayClientOptions, RelayClientEvents, TransportHandler, TokenSource } from './client.js';
export {
  RELAY_VERSION,
  MsgType as RelayMsgType,
  PEER_ID_LENGTH,
  MAX_AUTH_MESSAGE,
  MAX_MESSAGE,
  MAX_TRANSPORT_PAYLOAD,
  MAX_PEERS_PER_MESSAGE,
  RelayProtocolError,
  encodeAuth,
  decodeAuth,
  encodeAuthResponse,
  decodeAuthResponse,
  encodeTransport,
  encodePeerList,
  decodePeerList,
  relayWebSocketUrl,
} from './codec.js';
export type { AuthFields, MsgTypeValue as RelayMsgTypeValue } from './codec.js';
export { RelayBind, RelayEndpoint } from './bind.js';
export type { RelayBindOptions } from './bind.js';
