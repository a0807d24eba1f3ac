/**
 * Flow collector auth tokens. NetBird leaves the collector's check unspecified (protocol.md §11.1); we use
 * the relay token scheme of §7.6: payload = decimal expiry, signature = base64 HMAC-SHA256(SHA-256(secret),
 * payload). Management hands both strings to peers in FlowConfig; the client sends
 * `authorization: Bearer <signature>.<payload>`.
 */
import { issueRelayToken, relayTokenBinary, verifyRelayToken } from '../crypto/index.js';
import type { RelayToken, RelayTokenCheck } from '../crypto/index.js';

export type FlowToken = RelayToken;
export type FlowTokenCheck = RelayTokenCheck;

/** Issues a collector token valid for `ttlSeconds` (for Management's FlowConfig.tokenPayload/tokenSignature). */
export function issueFlowToken(secret: string, ttlSeconds: number, nowSeconds?: number): FlowToken {
  return issueRelayToken(secret, ttlSeconds, nowSeconds);
}

/** The authorization metadata value a client sends. */
export function flowAuthorizationValue(token: FlowToken): string {
  return `Bearer ${token.signature}.${token.payload}`;
}

/** Splits "Bearer <signature>.<payload>"; undefined when malformed. Base64 has no '.', so the first one splits. */
export function parseFlowAuthorization(value: string): FlowToken | undefined {
  const m = /^Bearer\s+([^.\s]+)\.(\S+)$/i.exec(value.trim());
  if (!m) return undefined;
  return { signature: m[1]!, payload: m[2]! };
}

/** Checks an authorization metadata value against the shared secret. */
export function verifyFlowAuthorization(secret: string, value: string | undefined, nowSeconds?: number): FlowTokenCheck {
  if (value === undefined || value === '') return { ok: false, reason: 'missing authorization metadata' };
  const token = parseFlowAuthorization(value);
  if (!token) return { ok: false, reason: 'authorization must be "Bearer <signature>.<payload>"' };
  let bin: Buffer;
  try {
    bin = relayTokenBinary(token);
  } catch {
    return { ok: false, reason: 'token signature is not a 32-byte base64 value' };
  }
  return verifyRelayToken(secret, bin, nowSeconds);
}
