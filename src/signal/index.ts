/** Signal server and client (protocol.md §5). */
export { createSignalServer, PEER_ID_HEADER, PEER_REGISTERED_HEADER } from './server.js';
export type { SignalServer, SignalServerOptions, SignalServerStats } from './server.js';
export { SignalClient, SignalError } from './client.js';
export type { SignalClientOptions, SignalClientEvents, SignalBody, SignalBodyInit } from './client.js';
