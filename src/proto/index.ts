/**
 * Generated protobuf code (ts-proto) for NetBird's wire protocol. Sources: proto/*.proto;
 * regenerate with `npm run proto` (also run by `npm ci` and `npm run build`).
 *
 * Each namespace holds the message codecs (encode/decode/fromPartial), enums and the grpc-js
 * service definition and client of one package.
 */
export * as management from './gen/management.js';
export * as signalexchange from './gen/signalexchange.js';
export * as flow from './gen/flow.js';
export { Timestamp } from './gen/google/protobuf/timestamp.js';
export { Duration } from './gen/google/protobuf/duration.js';
