/** STUN: binding server, binding client and message coding (RFC 5389), shared with ICE/TURN. */
export { startStunServer } from './server.js';
export type { StunServerOptions, StunServerHandle } from './server.js';
export { stunBinding } from './client.js';
export type { StunBindingOptions, StunBindingResult } from './client.js';
export {
  MAGIC_COOKIE,
  StunAttr,
  StunClass,
  StunMethod,
  StunError,
  messageType,
  isStunMessage,
  decodeStun,
  encodeStun,
  getAttr,
  checkFingerprint,
  checkIntegrity,
  encodeAddress,
  decodeAddress,
  encodeXorAddress,
  decodeXorAddress,
  encodeErrorCode,
  decodeErrorCode,
} from './message.js';
export type { StunMessage, StunAttribute, StunClassValue, TransportAddress, EncodeOptions } from './message.js';
export { TurnClient } from './turn.js';
export type { TurnClientOptions, ChannelDataHandler } from './turn.js';
