import { createHmac } from 'node:crypto';

/** Time-limited TURN REST credentials (protocol.md §9.2), compatible with coturn's use-auth-secret. */
export interface TurnCredentials {
  readonly user: string;
  readonly password: string;
}

export function turnCredentials(secret: string, ttlSeconds: number, nowSeconds = Math.floor(Date.now() / 1000)): TurnCredentials {
  const user = String(Math.floor(nowSeconds + ttlSeconds));
  // Keyed with the raw secret (not hashed), HMAC-SHA1: unlike the relay token.
  const password = createHmac('sha1', Buffer.from(secret, 'utf8')).update(user, 'ascii').digest('base64');
  return { user, password };
}
