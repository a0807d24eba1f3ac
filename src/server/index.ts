/**
 * `netbird-server`: management + signal gRPC, relay WebSocket and (later) REST on one TCP port,
 * optional STUN on UDP. `main` is the CLI entry used by bin/netbird-server.
 */
export { NetbirdServer, DEFAULT_LISTEN_HOST, DEFAULT_LISTEN_PORT, RELAY_SECRET_FILE, WS_PROXY_MANAGEMENT, WS_PROXY_SIGNAL, loadOrCreateRelaySecret } from './server.js';
export type { ServerOptions } from './server.js';
export { main } from './cli.js';
