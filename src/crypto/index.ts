/** Keys and crypto of netbird-ts, in one place. */
export { KEY_LENGTH, KeyFormatError, formatKey, generateKeyPair, isValidKey, keyPairFromPrivate, parseKey, publicKeyFromPrivate } from './keys.js';
export type { KeyPair } from './keys.js';
export { ENVELOPE_OVERHEAD, EnvelopeError, NONCE_LENGTH, TAG_LENGTH, boxSharedKey, openEnvelope, openEnvelopeWithKey, openMessage, openMessageWithKey, sealEnvelope, sealEnvelopeWithKey, sealMessage, sealMessageWithKey } from './envelope.js';
export type { MessageCodec } from './envelope.js';
export { RELAY_PEER_ID_LENGTH, RELAY_TOKEN_ALGORITHM_HMAC_SHA256, issueRelayToken, relayPeerId, relayPeerIdString, relayTokenBinary, verifyRelayToken } from './relay.js';
export type { RelayToken, RelayTokenCheck } from './relay.js';
export { turnCredentials } from './turn.js';
export type { TurnCredentials } from './turn.js';
