/**
 * Wire constants and default timer values of the WireGuard protocol
 * (whitepaper section 5 and 6; names follow wireguard-go).
 */

export const CONSTRUCTION = 'Noise_IKpsk2_25519_ChaChaPoly_BLAKE2s';
export const IDENTIFIER = 'WireGuard v1 zx2c4 Jason@zx2c4.com';
export const LABEL_MAC1 = 'mac1----';
export const LABEL_COOKIE = 'cookie--';

export const MSG_INITIATION = 1;
export const MSG_RESPONSE = 2;
export const MSG_COOKIE_REPLY = 3;
export const MSG_TRANSPORT = 4;

export const KEY_LEN = 32;
export const TAG_LEN = 16;
export const MAC_LEN = 16;
export const TIMESTAMP_LEN = 12;
export const COOKIE_NONCE_LEN = 24;

/** type(4) sender(4) ephemeral(32) static(32+16) timestamp(12+16) mac1(16) mac2(16) */
export const INITIATION_LEN = 148;
/** type(4) sender(4) receiver(4) ephemeral(32) empty(0+16) mac1(16) mac2(16) */
export const RESPONSE_LEN = 92;
/** type(4) receiver(4) nonce(24) cookie(16+16) */
export const COOKIE_REPLY_LEN = 64;
/** type(4) receiver(4) counter(8) */
export const TRANSPORT_HEADER_LEN = 16;
/** Header plus the authentication tag of an empty (keepalive) payload. */
export const TRANSPORT_MIN_LEN = TRANSPORT_HEADER_LEN + TAG_LEN;
/** Offset of mac1 in an initiation / response (mac2 follows 16 bytes later). */
export const INITIATION_MAC1_OFF = 116;
export const RESPONSE_MAC1_OFF = 60;

export const PADDING_MULTIPLE = 16;

/**
 * Protocol timers and limits. Times are milliseconds. Every value can be
 * overridden through `DeviceOptions.timers` so tests can run a rekey in a
 * second instead of two minutes.
 */
export interface TimerConfig {
  rekeyAfterMessages: number;
  rejectAfterMessages: number;
  rekeyAfterTime: number;
  rejectAfterTime: number;
  rekeyAttemptTime: number;
  rekeyTimeout: number;
  /** Random extra delay added to handshake retransmissions (0..jitter ms). */
  rekeyTimeoutJitter: number;
  keepaliveTimeout: number;
  cookieRefreshTime: number;
  /** Minimum gap between two initiations accepted from the same peer (flood guard). */
  handshakeInitiationRate: number;
  /** How often the device's single timer wheel ticks. */
  tickInterval: number;
  /**
   * Handshake messages per second above which the device considers itself
   * under load and demands cookies (MAC2) before doing any Diffie-Hellman.
   */
  underLoadThreshold: number;
  /** How long the device stays "under load" after the rate fell back. */
  underLoadAfterTime: number;
  /** Per-source handshake token bucket while under load: rate (per s) and burst. */
  ratelimitPerSecond: number;
  ratelimitBurst: number;
  /** Packets staged per peer while a handshake is pending. */
  maxStagedPackets: number;
}

export const DEFAULT_TIMERS: Readonly<TimerConfig> = Object.freeze({
  rekeyAfterMessages: 2 ** 60,
  // 2^64 - 2^13 - 1 does not fit a double exactly; counters above 2^53 are refused anyway.
  rejectAfterMessages: 2 ** 64 - 2 ** 13 - 1,
  rekeyAfterTime: 120_000,
  rejectAfterTime: 180_000,
  rekeyAttemptTime: 90_000,
  rekeyTimeout: 5_000,
  rekeyTimeoutJitter: 334,
  keepaliveTimeout: 10_000,
  cookieRefreshTime: 120_000,
  handshakeInitiationRate: 20,
  tickInterval: 100,
  underLoadThreshold: 256,
  underLoadAfterTime: 1_000,
  ratelimitPerSecond: 20,
  ratelimitBurst: 5,
  maxStagedPackets: 128,
});

export function resolveTimers(partial?: Partial<TimerConfig>): TimerConfig {
  return { ...DEFAULT_TIMERS, ...(partial ?? {}) };
}
