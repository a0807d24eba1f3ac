// Load generator for the real-gRPC management benchmark (bench/mgmt-grpc.ts). Runs as its own process
// (forked with IPC) and speaks NetBird's management protocol like real clients do: GetServerKey, Login
// in the NaCl envelope (setup key for new peers, none for known ones), then one Sync stream per peer.
// Thousands of peers share a few HTTP/2 connections; per peer it keeps only keys and a few numbers, and
// each update is decrypted into one scratch buffer and scanned in place (serial, remote peer count,
// firewall-rule ports) instead of being decoded into objects.
import * as grpc from '@grpc/grpc-js';
import sodium from 'sodium-native';
import { boxSharedKey, formatKey, generateKeyPair, parseKey, sealMessageWithKey } from '../src/crypto/index.js';
import { management } from '../src/proto/index.js';
import { GRPC_OK, closeAllSessions, serverStream } from './h2-sync-stream.js';

/**
 * Who sees whom. mesh: every peer sees every other (the default "All" policy). teams: the first
 * `infra` peers (servers everybody reaches) see everybody; the others are in teams of `teamSize`
 * and see their team and the infra peers. Each kind registers with its own setup key (auto groups).
 */
export type Topology =
  | { kind: 'mesh'; setupKey: string }
  | { kind: 'teams'; infra: number; teamSize: number; infraKey: string; teamKeys: string[] };

export type LoadCommand =
  | { cmd: 'init'; target: string; topology: Topology; streamsPerChannel: number; loginDeadlineMs: number; syncClient: SyncClient }
  | { cmd: 'register'; count: number; concurrency: number; timeoutMs: number }
  | { cmd: 'pause' }
  | { cmd: 'connect'; login: boolean; spreadMs: number; timeoutMs: number }
  | { cmd: 'watchPort'; port: number }
  | { cmd: 'awaitPort'; port: number; t0: number; timeoutMs: number }
  | { cmd: 'join'; timeoutMs: number }
  | { cmd: 'stats' }
  | { cmd: 'stop' };

export interface LoadStats {
  bytes: number;
  messages: number;
  streamsUp: number;
  streamDrops: number;
  syncRejected: number;
  loginAttempts: number;
  loginFailures: number;
  peersWithFailedLogin: number;
  lastError: string;
  /** Errors by call and gRPC status, e.g. "login DEADLINE_EXCEEDED": 3. */
  errors: Record<string, number>;
  heapMb: number;
  rssMb: number;
  cpuMs: number;
  scanMismatches: number;
}

/**
 * How Sync streams are read: h2 (bench/h2-sync-stream.ts, node:http2 with gRPC framing by hand) or
 * grpc-js (its client, several times the CPU per message). Login and GetServerKey always use grpc-js.
 */
export type SyncClient = 'h2' | 'grpc-js';

export type LoadReply =
  | { ok: true; cmd: string; ms?: number; loginMs?: number; done?: number; of?: number; timedOut?: boolean; latencies?: number[]; failed?: number; stats: LoadStats }
  | { ok: false; cmd: string; error: string };

const SVC = '/management.ManagementService/';
const raw = (b: Buffer): Buffer => b;
const serializeEnc = (m: management.EncryptedMessage): Buffer => Buffer.from(management.EncryptedMessage.encode(m).finish());

/** One simulated peer: its keys, the shared box key with the server, and what its last map said. */
interface SimPeer {
  index: number;
  /** -1: sees everybody (mesh peer or infra peer); else its team. */
  team: number;
  priv: Buffer;
  pubText: string;
  boxKey?: Buffer;
  registered: boolean;
  channel: number;
  call?: { cancel(): void };
  up: boolean;
  serial: number;
  remotePeers: number;
  /** Time (epoch ms) the first map with the watched firewall port arrived, 0 = not yet. */
  portSeenAt: number;
  backoff: number;
  timer?: NodeJS.Timeout;
  failedLogin: boolean;
}

let target = '';
let topology: Topology = { kind: 'mesh', setupKey: '' };
/** Peers per team (index -1 = infra / mesh peers). */
const teamCounts = new Map<number, number>();
let streamsPerChannel = 500;
let loginDeadlineMs = 10_000;
let syncClient: SyncClient = 'h2';
/** HTTP/2 flow-control window of the generator's connections and streams. */
const WINDOW_BYTES = 16 * 1024 * 1024;
const streamClients: grpc.Client[] = [];
const unaryClients: grpc.Client[] = [];
const peers: SimPeer[] = [];
let serverPub: Buffer | undefined;
let paused = false;
let watchedPort = '';
/** The same as bytes, compared in place (no string per scanned rule). */
let watchedPortBytes = Buffer.alloc(0);
let watchedPortNum = -1;
let scratch = Buffer.alloc(1 << 20);
const stats: LoadStats = { bytes: 0, messages: 0, streamsUp: 0, streamDrops: 0, syncRejected: 0, loginAttempts: 0, loginFailures: 0, peersWithFailedLogin: 0, lastError: '', errors: {}, heapMb: 0, rssMb: 0, cpuMs: 0, scanMismatches: 0 };
/** Woken whenever some peer's state changed; waits re-check their condition. */
let wake: () => void = () => {};

function snapshot(): LoadStats {
  const m = process.memoryUsage();
  const cpu = process.cpuUsage();
  return { ...stats, heapMb: Math.round(m.heapUsed / 1048576), rssMb: Math.round(m.rss / 1048576), cpuMs: Math.round((cpu.user + cpu.system) / 1000) };
}

/**
 * The gRPC client of a channel. Unary calls (GetServerKey, Login) get connections of their own: a
 * real peer has its own connection, so its Login answer never waits behind other peers' maps, as it
 * would behind the megabytes queued on a shared stream connection here.
 */
function clientFor(channel: number, kind: 'stream' | 'unary' = 'stream'): grpc.Client {
  const clients = kind === 'stream' ? streamClients : unaryClients;
  while (clients.length <= channel) {
    // A local subchannel pool per client gives each its own HTTP/2 connection (the global pool would
    // put every stream on one connection and hit the server's concurrent-stream limit).
    clients.push(
      new grpc.Client(target, grpc.credentials.createInsecure(), {
        'grpc.use_local_subchannel_pool': 1,
        'grpc.max_receive_message_length': 512 * 1024 * 1024,
        'grpc.keepalive_time_ms': 30_000,
        'grpc.keepalive_timeout_ms': 10_000,
        'grpc.keepalive_permit_without_calls': 1,
        'grpc.initial_reconnect_backoff_ms': 200,
        'grpc.max_reconnect_backoff_ms': 2000,
        // NetBird's Go clients grow their HTTP/2 windows by bandwidth-delay estimation (to 16 MiB);
        // grpc-js keeps 64 KiB unless told, which would make the generator, not the server, the
        // bottleneck when a 300 KB map is pushed to a thousand streams at once.
        'grpc-node.flow_control_window': WINDOW_BYTES,
      }),
    );
  }
  return clients[channel]!;
}

function meta(i: number): management.PeerSystemMeta {
  return management.PeerSystemMeta.fromPartial({
    hostname: `bench-${i}`,
    goOS: 'linux',
    kernel: 'Linux',
    platform: 'x86_64',
    OS: 'Ubuntu',
    OSVersion: '24.04',
    kernelVersion: '6.8.0',
    netbirdVersion: '0.77.1',
    capabilities: [management.PeerCapability.PeerCapabilitySourcePrefixes],
  });
}

function unary(channel: number, method: string, arg: Buffer | management.EncryptedMessage, deadlineMs: number): Promise<Buffer> {
  const c = clientFor(channel, 'unary');
  return new Promise((resolve, reject) => {
    if (Buffer.isBuffer(arg)) {
      c.makeUnaryRequest(SVC + method, raw, raw, arg, new grpc.Metadata(), { deadline: Date.now() + deadlineMs }, (err, r) => (err ? reject(err) : resolve(r!)));
    } else {
      c.makeUnaryRequest(SVC + method, serializeEnc, raw, arg, new grpc.Metadata(), { deadline: Date.now() + deadlineMs }, (err, r) => (err ? reject(err) : resolve(r!)));
    }
  });
}

async function getServerKey(channel: number): Promise<Buffer> {
  const resp = management.ServerKeyResponse.decode(await unary(channel, 'GetServerKey', Buffer.alloc(0), 15_000));
  const key = parseKey(resp.key, 'management server key');
  if (!serverPub || !serverPub.equals(key)) {
    serverPub = key;
    for (const p of peers) p.boxKey = undefined;
  }
  return key;
}

function boxKeyOf(p: SimPeer): Buffer {
  if (!p.boxKey) p.boxKey = boxSharedKey(serverPub!, p.priv);
  return p.boxKey;
}

/** Keeps the last error and counts errors by call and gRPC status. */
function noteError(call: string, err: unknown): void {
  const e = err as Partial<grpc.ServiceError>;
  const kind = `${call} ${e.code !== undefined ? (grpc.status[e.code] ?? e.code) : 'error'}`;
  stats.errors[kind] = (stats.errors[kind] ?? 0) + 1;
  stats.lastError = `${call}: ${(err as Error).message}`;
}

/** GetServerKey + Login (with the setup key the first time). Counts a failure on error or deadline. */
async function login(p: SimPeer): Promise<void> {
  await getServerKey(p.channel);
  const req = management.LoginRequest.fromPartial({
    setupKey: p.registered ? '' : setupKeyOf(p),
    meta: meta(p.index),
    peerKeys: { sshPubKey: Buffer.alloc(0), wgPubKey: Buffer.from(p.pubText, 'ascii') },
  });
  stats.loginAttempts++;
  try {
    await unary(p.channel, 'Login', { wgPubKey: p.pubText, body: sealMessageWithKey(management.LoginRequest, req, boxKeyOf(p)), version: 0 }, loginDeadlineMs);
  } catch (err) {
    stats.loginFailures++;
    if (!p.failedLogin) stats.peersWithFailedLogin++;
    p.failedLogin = true;
    noteError('login', err);
    throw err;
  }
  p.registered = true;
}

// ---- lazy protobuf scanning of a decrypted SyncResponse ----

let pos = 0;
function varint(b: Buffer): number {
  let r = 0;
  let mul = 1;
  for (;;) {
    const x = b[pos++]!;
    r += (x & 0x7f) * mul;
    if (x < 0x80) return r;
    mul *= 128;
  }
}
function skip(b: Buffer, wire: number): void {
  if (wire === 0) varint(b);
  else if (wire === 2) {
    // Not `pos += varint(b)`: that adds to the position from before the length was read.
    const len = varint(b);
    pos += len;
  }
  else if (wire === 1) pos += 8;
  else if (wire === 5) pos += 4;
  else throw new Error(`unsupported wire type ${wire}`);
}

/** Does this FirewallRule (b[start,end)) name the watched port (Port text or PortInfo.port)? */
function ruleHasPort(b: Buffer, end: number): boolean {
  let hit = false;
  while (pos < end) {
    const tag = varint(b);
    const field = tag >>> 3;
    const wire = tag & 7;
    if (field === 5 && wire === 2) {
      const len = varint(b);
      if (len === watchedPortBytes.length && b.compare(watchedPortBytes, 0, len, pos, pos + len) === 0) hit = true;
      pos += len;
    } else if (field === 6 && wire === 2) {
      const len = varint(b);
      const e = pos + len;
      while (pos < e) {
        const t = varint(b);
        if (t >>> 3 === 1 && (t & 7) === 0) {
          if (varint(b) === watchedPortNum) hit = true;
        } else skip(b, t & 7);
      }
    } else skip(b, wire);
  }
  return hit;
}

/** Scans SyncResponse.NetworkMap: serial, number of remote peers, and whether the watched port is in a rule. */
function scanSync(b: Buffer, len: number): { serial: number; remote: number; port: boolean } | undefined {
  pos = 0;
  while (pos < len) {
    const tag = varint(b);
    if (tag >>> 3 !== 5 || (tag & 7) !== 2) {
      skip(b, tag & 7);
      continue;
    }
    const mlen = varint(b);
    const end = pos + mlen;
    let serial = 0;
    let remote = 0;
    let port = false;
    while (pos < end) {
      const t = varint(b);
      const field = t >>> 3;
      const wire = t & 7;
      if (field === 1 && wire === 0) serial = varint(b);
      else if (field === 3 && wire === 2) {
        remote++;
        const len = varint(b);
        pos += len;
      } else if (field === 8 && wire === 2 && watchedPort !== '') {
        const rl = varint(b);
        const re = pos + rl;
        if (!port && ruleHasPort(b, re)) port = true;
        pos = re;
      } else skip(b, wire);
    }
    return { serial, remote, port };
  }
  return undefined;
}

/** Opens one EncryptedMessage (raw wire bytes) with the peer's precomputed box key into `scratch`. */
function openFrame(p: SimPeer, frame: Buffer): number {
  // EncryptedMessage: 1 = wgPubKey (string), 2 = body (bytes), 3 = version.
  pos = 0;
  let bodyStart = -1;
  let bodyLen = 0;
  while (pos < frame.length) {
    const tag = varint(frame);
    if (tag >>> 3 === 2 && (tag & 7) === 2) {
      bodyLen = varint(frame);
      bodyStart = pos;
      pos += bodyLen;
    } else skip(frame, tag & 7);
  }
  if (bodyStart < 0 || bodyLen < 40) throw new Error('sync message without an encrypted body');
  const plainLen = bodyLen - 40;
  if (scratch.length < plainLen) scratch = Buffer.alloc(Math.max(plainLen, scratch.length * 2));
  const out = scratch.subarray(0, plainLen);
  const ok = sodium.crypto_secretbox_open_easy(out, frame.subarray(bodyStart + 24, bodyStart + bodyLen), frame.subarray(bodyStart, bodyStart + 24), boxKeyOf(p));
  if (!ok) throw new Error('cannot decrypt sync message (server key changed?)');
  return plainLen;
}

function onFrame(p: SimPeer, frame: Buffer): void {
  stats.bytes += frame.length;
  stats.messages++;
  const n = openFrame(p, frame);
  const r = scanSync(scratch, n);
  // Every 500th message is also fully decoded, to keep the in-place scanner honest.
  if (stats.messages % 500 === 1) checkScan(scratch.subarray(0, n), r);
  if (!r) return;
  if (r.serial < p.serial) return; // clients drop older maps
  p.serial = r.serial;
  p.remotePeers = r.remote;
  if (r.port && p.portSeenAt === 0) p.portSeenAt = Date.now();
  wakeSoon();
}

/**
 * Wakes a waiting `until` once per event-loop turn, not per frame: its condition scans every peer,
 * and thousands of frames arrive per turn (per-frame scans made the generator the bottleneck).
 */
let wakeQueued = false;
function wakeSoon(): void {
  if (wakeQueued) return;
  wakeQueued = true;
  setImmediate(() => {
    wakeQueued = false;
    wake();
  });
}

function checkScan(plain: Buffer, r: { serial: number; remote: number; port: boolean } | undefined): void {
  const m = management.SyncResponse.decode(plain).NetworkMap;
  const want = m && {
    serial: Number(m.Serial),
    remote: m.remotePeers.length,
    port: watchedPort !== '' && m.FirewallRules.some((f) => f.Port === watchedPort || f.PortInfo?.port === watchedPortNum),
  };
  if (JSON.stringify(want) !== JSON.stringify(r)) {
    stats.scanMismatches++;
    stats.lastError = `scanner mismatch: decoded ${JSON.stringify(want)}, scanned ${JSON.stringify(r)}`;
  }
}

function setDown(p: SimPeer): void {
  if (p.up) {
    p.up = false;
    stats.streamsUp--;
  }
  p.call = undefined;
}

function scheduleReconnect(p: SimPeer, withLogin: boolean): void {
  if (paused || p.timer) return;
  p.backoff = p.backoff === 0 ? 800 : Math.min(p.backoff * 1.7, 10_000);
  const delay = Math.round(p.backoff * (0.75 + Math.random() * 0.5));
  p.timer = setTimeout(() => {
    p.timer = undefined;
    void openPeer(p, withLogin);
  }, delay);
}

/** (Login, then) GetServerKey and one Sync stream; on failure retries with the client's backoff. */
async function openPeer(p: SimPeer, withLogin: boolean): Promise<void> {
  if (paused) return;
  try {
    if (withLogin || !p.registered) await login(p);
    await getServerKey(p.channel);
    if (paused) return;
    const req: management.EncryptedMessage = { wgPubKey: p.pubText, body: sealMessageWithKey(management.SyncRequest, { meta: meta(p.index) }, boxKeyOf(p)), version: 0 };
    let gone = false;
    let call: { cancel(): void } | undefined;
    const fail = (err?: { code: number; message: string }): void => {
      if (gone) return;
      gone = true;
      const wasUp = p.up;
      if (p.call === call) setDown(p);
      if (err?.code === grpc.status.RESOURCE_EXHAUSTED) stats.syncRejected++;
      else if (wasUp) stats.streamDrops++;
      if (err && err.code !== grpc.status.CANCELLED) noteError('sync', err);
      // A stream the server dropped comes back without a new Login, as the real client's Sync retry does.
      if (p.call === undefined || p.call === call) scheduleReconnect(p, false);
    };
    const onData = (frame: Buffer): void => {
      if (!p.up) {
        p.up = true;
        p.backoff = 0;
        stats.streamsUp++;
      }
      try {
        onFrame(p, frame);
      } catch (err) {
        stats.lastError = `sync frame: ${(err as Error).message}`;
        call?.cancel();
      }
    };
    if (syncClient === 'h2') {
      call = serverStream(`sync-${p.channel}`, target, SVC + 'Sync', management.EncryptedMessage.encode(req).finish(), WINDOW_BYTES, onData, (end) =>
        fail(end.code === GRPC_OK ? undefined : { code: end.code, message: `${grpc.status[end.code] ?? end.code}: ${end.details}` }),
      );
    } else {
      const c = clientFor(p.channel).makeServerStreamRequest(SVC + 'Sync', serializeEnc, raw, req, new grpc.Metadata(), {});
      call = c;
      c.on('data', onData);
      c.on('error', (err: grpc.ServiceError) => fail(err));
      c.on('end', () => fail());
    }
    p.call = call;
  } catch (err) {
    noteError(withLogin ? 'login' : 'sync', err);
    scheduleReconnect(p, withLogin || !p.registered);
  }
}

function setupKeyOf(p: SimPeer): string {
  if (topology.kind === 'mesh') return topology.setupKey;
  return p.team < 0 ? topology.infraKey : topology.teamKeys[p.team]!;
}

/** The team a new peer with this index goes to (teams topology: infra first, then team by team). */
function teamOf(index: number): number {
  if (topology.kind === 'mesh' || index < topology.infra) return -1;
  return Math.min(Math.floor((index - topology.infra) / topology.teamSize), topology.teamKeys.length - 1);
}

/** Does a peer of team `a` see a peer of team `b`? */
function sees(a: number, b: number): boolean {
  return a < 0 || b < 0 || a === b;
}

/** How many remote peers `p`'s map lists once every registered peer is connected. */
function expectedPeers(p: SimPeer): number {
  if (p.team < 0) return peers.length - 1;
  const infra = teamCounts.get(-1) ?? 0;
  return infra + (teamCounts.get(p.team) ?? 0) - 1;
}

function newPeer(team = teamOf(peers.length)): SimPeer {
  const kp = generateKeyPair();
  const index = peers.length;
  teamCounts.set(team, (teamCounts.get(team) ?? 0) + 1);
  const p: SimPeer = { index, team, priv: kp.privateKey, pubText: formatKey(kp.publicKey), registered: false, channel: Math.floor(index / streamsPerChannel), up: false, serial: 0, remotePeers: -1, portSeenAt: 0, backoff: 0, failedLogin: false };
  peers.push(p);
  return p;
}

/** Resolves when `done()` holds, or after timeoutMs (then timedOut). Re-checks on every update. */
async function until(done: () => boolean, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (!done()) {
    const left = deadline - Date.now();
    if (left <= 0) return false;
    await new Promise<void>((resolve) => {
      const t = setTimeout(resolve, Math.min(left, 100));
      wake = () => {
        clearTimeout(t);
        resolve();
      };
    });
    wake = () => {};
  }
  return true;
}

function countMeshed(): number {
  let n = 0;
  for (const p of peers) if (p.up && p.remotePeers === expectedPeers(p)) n++;
  return n;
}

async function handle(c: LoadCommand): Promise<LoadReply> {
  switch (c.cmd) {
    case 'init':
      target = c.target;
      topology = c.topology;
      streamsPerChannel = c.streamsPerChannel;
      loginDeadlineMs = c.loginDeadlineMs;
      syncClient = c.syncClient;
      return { ok: true, cmd: c.cmd, stats: snapshot() };
    case 'register': {
      // Registration is set-up, not a measured herd: a bounded number of Logins in flight.
      const t0 = Date.now();
      const todo: SimPeer[] = [];
      for (let i = 0; i < c.count; i++) todo.push(newPeer());
      let next = 0;
      let failed = 0;
      const deadline = t0 + c.timeoutMs;
      const worker = async (): Promise<void> => {
        while (next < todo.length && Date.now() < deadline) {
          const p = todo[next++]!;
          for (let attempt = 0; attempt < 5 && !p.registered && Date.now() < deadline; attempt++) {
            try {
              await login(p);
            } catch {
              failed++;
              await new Promise((r) => setTimeout(r, 500 * (attempt + 1)));
            }
          }
        }
      };
      await Promise.all(Array.from({ length: c.concurrency }, worker));
      const done = todo.filter((p) => p.registered).length;
      return { ok: true, cmd: c.cmd, ms: Date.now() - t0, done, of: c.count, failed, timedOut: done < c.count, stats: snapshot() };
    }
    case 'pause':
      paused = true;
      for (const p of peers) {
        if (p.timer) clearTimeout(p.timer);
        p.timer = undefined;
        p.backoff = 0;
        p.call?.cancel();
        setDown(p);
      }
      return { ok: true, cmd: c.cmd, stats: snapshot() };
    case 'connect': {
      // Every registered peer comes back within spreadMs (a herd), logging in first when asked.
      paused = false;
      stats.loginAttempts = 0;
      stats.loginFailures = 0;
      stats.peersWithFailedLogin = 0;
      stats.syncRejected = 0;
      for (const p of peers) p.failedLogin = false;
      const t0 = Date.now();
      for (const p of peers) {
        if (!p.registered || p.up) continue;
        p.timer = setTimeout(() => {
          p.timer = undefined;
          void openPeer(p, c.login);
        }, Math.random() * c.spreadMs);
      }
      const ok = await until(() => countMeshed() === peers.length, c.timeoutMs);
      return { ok: true, cmd: c.cmd, ms: Date.now() - t0, done: countMeshed(), of: peers.length, timedOut: !ok, stats: snapshot() };
    }
    case 'watchPort':
      watchedPort = String(c.port);
      watchedPortBytes = Buffer.from(watchedPort, 'latin1');
      watchedPortNum = c.port;
      for (const p of peers) p.portSeenAt = 0;
      return { ok: true, cmd: c.cmd, stats: snapshot() };
    case 'awaitPort': {
      const seen = (): number => peers.reduce((n, p) => n + (p.portSeenAt > 0 ? 1 : 0), 0);
      const ok = await until(() => seen() === peers.length, c.timeoutMs);
      const latencies = peers.filter((p) => p.portSeenAt > 0).map((p) => p.portSeenAt - c.t0);
      return { ok: true, cmd: c.cmd, done: latencies.length, of: peers.length, timedOut: !ok, latencies, stats: snapshot() };
    }
    case 'join': {
      // One new peer registers with a setup key (team 0 in the teams topology) and opens its stream;
      // every stream that should see it must list it.
      const p = newPeer(topology.kind === 'mesh' ? -1 : 0);
      const others = peers.filter((o) => o !== p && o.up && sees(o.team, p.team));
      const t0 = Date.now();
      const failed0 = stats.loginFailures;
      // The first Login is timed on its own (it registers the peer); a failed one is retried with backoff.
      let loginMs = NaN;
      try {
        await login(p);
        loginMs = Date.now() - t0;
        await openPeer(p, false);
      } catch {
        scheduleReconnect(p, true);
      }
      const seen = (): number => others.filter((o) => o.remotePeers >= expectedPeers(o)).length;
      const ok = await until(() => seen() === others.length, c.timeoutMs);
      return { ok: true, cmd: c.cmd, ms: Date.now() - t0, loginMs, failed: stats.loginFailures - failed0, done: seen(), of: others.length, timedOut: !ok, stats: snapshot() };
    }
    case 'stats':
      return { ok: true, cmd: c.cmd, stats: snapshot() };
    case 'stop':
      paused = true;
      for (const p of peers) {
        if (p.timer) clearTimeout(p.timer);
        p.call?.cancel();
      }
      for (const cl of [...streamClients, ...unaryClients]) cl.close();
      closeAllSessions();
      setImmediate(() => process.exit(0));
      return { ok: true, cmd: c.cmd, stats: snapshot() };
  }
}

if (process.send) {
  process.on('message', (c: LoadCommand) => {
    handle(c).then(
      (r) => process.send!(r),
      (err: unknown) => process.send!({ ok: false, cmd: c.cmd, error: (err as Error)?.stack ?? String(err) } satisfies LoadReply),
    );
  });
  process.on('disconnect', () => process.exit(0));
}
