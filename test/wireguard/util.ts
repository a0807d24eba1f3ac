/** Shared helpers for the wireguard tests: packet builders and a two-device setup on a MemoryNetwork. */
import { Device, generatePrivateKey, publicKeyOf, keyToBase64, MemoryNetwork, MemoryTun, MemoryBind } from '../../src/wireguard/index.js';
import type { TimerConfig, DeviceOptions } from '../../src/wireguard/index.js';
import { parsePrefix } from '../../src/wireguard/index.js';

export function ipv4(src: string, dst: string, payload: Buffer | string = 'hello'): Buffer {
  const body = typeof payload === 'string' ? Buffer.from(payload) : payload;
  const p = Buffer.alloc(20 + body.length);
  p[0] = 0x45;
  p.writeUInt16BE(p.length, 2);
  p[8] = 64;
  p[9] = 17;
  Buffer.from(parsePrefix(src).addr).copy(p, 12);
  Buffer.from(parsePrefix(dst).addr).copy(p, 16);
  body.copy(p, 20);
  return p;
}

export function ipv6(src: string, dst: string, payload: Buffer | string = 'hello6'): Buffer {
  const body = typeof payload === 'string' ? Buffer.from(payload) : payload;
  const p = Buffer.alloc(40 + body.length);
  p[0] = 0x60;
  p.writeUInt16BE(body.length, 4);
  p[6] = 17;
  p[7] = 64;
  Buffer.from(parsePrefix(src).addr).copy(p, 8);
  Buffer.from(parsePrefix(dst).addr).copy(p, 24);
  body.copy(p, 40);
  return p;
}

export interface Side {
  dev: Device;
  tun: MemoryTun;
  bind: MemoryBind;
  priv: Buffer;
  pub: string;
  addr: string;
}

export interface Pair {
  net: MemoryNetwork;
  a: Side;
  b: Side;
  close(): Promise<void>;
}

/**
 * Two devices: A (10.0.0.1, fd00::1, network address "A") and B (10.0.0.2,
 * fd00::2, address "B"). A knows B's endpoint; B learns A's from the handshake.
 */
export function pair(opts: { timers?: Partial<TimerConfig>; pskA?: Buffer; pskB?: Buffer; keepalive?: number; extra?: Partial<DeviceOptions> } = {}): Pair {
  const net = new MemoryNetwork();
  const mk = (addr: string): Side => {
    const priv = generatePrivateKey();
    const tun = new MemoryTun(`tun${addr}`, 1420);
    const bind = net.bind(addr);
    const dev = new Device({ privateKey: priv, tun, binds: [bind], timers: opts.timers, ...(opts.extra ?? {}) });
    return { dev, tun, bind, priv, pub: keyToBase64(publicKeyOf(priv)), addr };
  };
  const a = mk('A');
  const b = mk('B');
  a.dev.setPeer({
    publicKey: b.pub, allowedIps: ['10.0.0.2/32', 'fd00::2/128'], endpoint: a.bind.endpoint('B'),
    presharedKey: opts.pskA, persistentKeepalive: opts.keepalive,
  });
  b.dev.setPeer({ publicKey: a.pub, allowedIps: ['10.0.0.1/32', 'fd00::1/128'], presharedKey: opts.pskB });
  return {
    net, a, b,
    async close() {
      await a.dev.close();
      await b.dev.close();
    },
  };
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Polls `cond` until true or throws after `ms`. */
export async function until(cond: () => boolean, ms = 5000, what = 'condition'): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timeout waiting for ${what}`);
    await sleep(5);
  }
}

export interface VirtualPair extends Pair {
  /** Current virtual monotonic time (ms). */
  now(): number;
  /** Lets the in-memory network deliver everything in flight. */
  settle(): Promise<void>;
  /** Moves virtual time forward in steps, ticking both devices' timers after each. */
  advance(ms: number, step?: number): Promise<void>;
}

/** A pair on a virtual clock: timers only move when the test calls advance(). */
export function virtualPair(opts: Parameters<typeof pair>[0] = {}): VirtualPair {
  let now = 1000;
  const p = pair({ ...opts, extra: { ...(opts.extra ?? {}), now: () => now, wallClock: () => 1_700_000_000_000 + now, manualTick: true } });
  const settle = async (): Promise<void> => {
    for (let i = 0; i < 8; i++) await new Promise((r) => setImmediate(r));
  };
  return {
    ...p,
    now: () => now,
    settle,
    async advance(ms: number, step = 100) {
      for (let t = 0; t < ms; t += step) {
        now += step;
        p.a.dev.tick();
        p.b.dev.tick();
        await settle();
      }
    },
  };
}

/** Message type of a WireGuard datagram. */
export function msgType(pkt: Buffer): number {
  return pkt.length >= 4 ? pkt.readUInt32LE(0) : -1;
}
