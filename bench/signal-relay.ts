/**
 * Signal and relay benchmark.
 *
 * - Signal: N client pairs (BENCH_SIGNAL_PAIRS, default 20) send encrypted Bodies through our signal
 *   server for BENCH_SECONDS (default 3); prints delivered messages/s and p50/p99 send->receive latency.
 * - Relay: throughput of 1280-byte packets from peer A to peer B through our relay server, and, in the
 *   same run, through coturn's TURN relay (ChannelData from a TURN client to a plain UDP peer). Prints
 *   both and the ratio ours / coturn.
 *
 * Servers run in a child process (like a real deployment, and so the clients' event loop does not
 * compete with the server's); coturn runs as its own process. Both are stopped by PID at the end.
 * Needs coturn (apt-get install -y coturn).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import { Server, ServerCredentials } from '@grpc/grpc-js';
import { formatKey, generateKeyPair, issueRelayToken, relayPeerId, relayTokenBinary } from '../src/crypto/index.js';
import { signalexchange } from '../src/proto/index.js';
import { RelayClient, RelayServer } from '../src/relay/index.js';
import { SignalClient, createSignalServer } from '../src/signal/index.js';
import { TurnClient } from '../src/stun/index.js';
import { startCoturn } from '../test/stun/coturn.js';

const SECRET = 'bench-relay-secret';
const PACKET = 1280;

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

/** Child-process role: run the relay and signal servers on loopback and report their ports. */
async function serveForBench(): Promise<void> {
  const relay = new RelayServer({ authSecret: SECRET, instanceUrl: 'rel://127.0.0.1', sendBufferLimit: 4 * 1024 * 1024 });
  const http = createServer((_q, r) => r.writeHead(404).end());
  http.on('upgrade', (req, sock, head) => relay.handleUpgrade(req, sock, head));
  await new Promise<void>((r) => http.listen(0, '127.0.0.1', r));
  const sig = createSignalServer();
  const grpc = new Server();
  grpc.addService(sig.service, sig.implementation);
  const signalPort = await new Promise<number>((res, rej) => grpc.bindAsync('127.0.0.1:0', ServerCredentials.createInsecure(), (e, p) => (e ? rej(e) : res(p))));
  process.stdout.write(JSON.stringify({ relayPort: (http.address() as AddressInfo).port, signalPort }) + '\n');
  const stop = async (): Promise<void> => {
    sig.close();
    grpc.forceShutdown();
    await relay.close();
    http.closeAllConnections();
    http.close();
    process.exit(0);
  };
  process.on('SIGTERM', () => void stop());
  process.stdin.on('end', () => void stop());
  process.stdin.resume();
}

async function startServers(): Promise<{ proc: ChildProcess; relayPort: number; signalPort: number }> {
  const self = fileURLToPath(import.meta.url);
  const proc = spawn(process.execPath, ['--import', 'tsx', self], { env: { ...process.env, NBSR_BENCH_ROLE: 'servers' }, stdio: ['pipe', 'pipe', 'inherit'] });
  const line = await new Promise<string>((resolve, reject) => {
    let buf = '';
    const t = setTimeout(() => reject(new Error('bench servers did not start')), 20_000);
    proc.stdout!.on('data', (d: Buffer) => {
      buf += d.toString();
      const nl = buf.indexOf('\n');
      if (nl >= 0) {
        clearTimeout(t);
        resolve(buf.slice(0, nl));
      }
    });
    proc.once('exit', (code) => reject(new Error(`bench servers exited (${code})`)));
  });
  const { relayPort, signalPort } = JSON.parse(line) as { relayPort: number; signalPort: number };
  return { proc, relayPort, signalPort };
}

async function stopChild(proc: ChildProcess): Promise<void> {
  if (proc.exitCode !== null || proc.signalCode !== null) return;
  const exited = new Promise<void>((r) => proc.once('exit', () => r()));
  proc.kill('SIGTERM');
  const t = setTimeout(() => proc.kill('SIGKILL'), 3000);
  await exited;
  clearTimeout(t);
}

async function benchSignal(signalPort: number, pairs: number, seconds: number): Promise<{ rate: number; p50: number; p99: number; delivered: number }> {
  const clients: SignalClient[] = [];
  try {
    for (let i = 0; i < pairs * 2; i++) clients.push(new SignalClient({ address: `127.0.0.1:${signalPort}`, privateKey: generateKeyPair().privateKey }));
    await Promise.all(clients.map((c) => c.connect()));
    const latencies: number[] = [];
    let delivered = 0;
    let measuring = false;
    for (let i = 0; i < pairs; i++) {
      clients[2 * i + 1]!.on('message', (_from, body) => {
        if (!measuring) return;
        delivered++;
        latencies.push(performance.now() - Number(body.payload));
      });
    }
    let running = true;
    const loops = Array.from({ length: pairs }, async (_, i) => {
      const a = clients[2 * i]!;
      const b = clients[2 * i + 1]!;
      while (running) await a.send(b.publicKey, { type: signalexchange.Body_Type.CANDIDATE, payload: String(performance.now()) });
    });
    await sleep(300); // warm-up
    measuring = true;
    const start = performance.now();
    await sleep(seconds * 1000);
    measuring = false;
    const elapsed = (performance.now() - start) / 1000;
    running = false;
    await Promise.all(loops);
    latencies.sort((x, y) => x - y);
    return { rate: delivered / elapsed, p50: percentile(latencies, 50), p99: percentile(latencies, 99), delivered };
  } finally {
    await Promise.all(clients.map((c) => c.close()));
  }
}

/** Received-side counter that only counts while a measurement window is open. */
interface Meter {
  measuring: boolean;
  bytes: number;
  packets: number;
}

function newMeter(): Meter {
  return { measuring: false, bytes: 0, packets: 0 };
}

function count(m: Meter, len: number): void {
  if (!m.measuring) return;
  m.bytes += len;
  m.packets++;
}

/**
 * Runs `burst` in a loop (yielding between bursts so the receiver in this process runs), warms up for
 * 300 ms, then measures what `meter` counts for `seconds`.
 */
async function pumpAndMeasure(meter: Meter, seconds: number, burst: () => void): Promise<{ mbps: number; pps: number }> {
  let running = true;
  const pump = (async (): Promise<void> => {
    while (running) {
      burst();
      await new Promise((r) => setImmediate(r));
    }
  })();
  await sleep(300);
  meter.measuring = true;
  const start = performance.now();
  await sleep(seconds * 1000);
  meter.measuring = false;
  const elapsed = (performance.now() - start) / 1000;
  running = false;
  await pump;
  return { mbps: (meter.bytes * 8) / elapsed / 1e6, pps: meter.packets / elapsed };
}

async function benchOurRelay(relayPort: number, seconds: number): Promise<{ mbps: number; pps: number }> {
  const token = relayTokenBinary(issueRelayToken(SECRET, 3600));
  const ka = formatKey(generateKeyPair().publicKey);
  const kb = formatKey(generateKeyPair().publicKey);
  const a = new RelayClient({ url: `rel://127.0.0.1:${relayPort}`, publicKey: ka, token });
  const b = new RelayClient({ url: `rel://127.0.0.1:${relayPort}`, publicKey: kb, token });
  try {
    await Promise.all([a.connect(), b.connect()]);
    await a.waitForPeer(relayPeerId(kb), 5000);
    const meter = newMeter();
    b.onTransport((_src, payload) => count(meter, payload.length));
    const dst = relayPeerId(kb);
    const payload = Buffer.alloc(PACKET, 0xab);
    // Fill the socket until the client's backlog limit, then let the loop breathe.
    return await pumpAndMeasure(meter, seconds, () => {
      for (let i = 0; i < 256; i++) if (!a.send(dst, payload)) break;
    });
  } finally {
    await Promise.all([a.close(), b.close()]);
  }
}

async function benchCoturn(seconds: number): Promise<{ mbps: number; pps: number }> {
  const turn = await startCoturn();
  const peer = createSocket({ type: 'udp4', recvBufferSize: 4 * 1024 * 1024 });
  const client = new TurnClient({ host: '127.0.0.1', port: turn.port, username: turn.username, password: turn.password });
  try {
    await new Promise<void>((r) => peer.bind(0, '127.0.0.1', r));
    await client.allocate();
    client.socket.setSendBufferSize(4 * 1024 * 1024);
    await client.channelBind(0x4000, { address: '127.0.0.1', port: peer.address().port });
    const meter = newMeter();
    peer.on('message', (m: Buffer) => count(meter, m.length));
    const payload = Buffer.alloc(PACKET, 0xab);
    // UDP has no backpressure: send bursts and yield so the receiver (same process) can run.
    return await pumpAndMeasure(meter, seconds, () => {
      for (let i = 0; i < 64; i++) client.sendChannelData(0x4000, payload);
    });
  } finally {
    await client.close();
    peer.close();
    await turn.stop();
  }
}

export async function benchSignalRelay(): Promise<void> {
  const seconds = Number(process.env.BENCH_SECONDS ?? 3);
  const pairs = Number(process.env.BENCH_SIGNAL_PAIRS ?? 20);
  const servers = await startServers();
  try {
    const s = await benchSignal(servers.signalPort, pairs, seconds);
    console.log(`signal: ${pairs} pairs, ${s.rate.toFixed(0)} msg/s delivered (${s.delivered} in ${seconds} s), latency p50 ${s.p50.toFixed(2)} ms, p99 ${s.p99.toFixed(2)} ms`);
    const ours = await benchOurRelay(servers.relayPort, seconds);
    const coturn = await benchCoturn(seconds);
    console.log(`relay (${PACKET}-byte packets, A -> relay -> B, loopback):`);
    console.log(`  ours (WebSocket relay): ${ours.mbps.toFixed(0)} Mbit/s, ${ours.pps.toFixed(0)} packets/s`);
    console.log(`  coturn (TURN ChannelData): ${coturn.mbps.toFixed(0)} Mbit/s, ${coturn.pps.toFixed(0)} packets/s`);
    console.log(`  ratio ours / coturn: ${(ours.mbps / coturn.mbps).toFixed(2)}`);
  } finally {
    await stopChild(servers.proc);
  }
}

if (process.env.NBSR_BENCH_ROLE === 'servers') {
  await serveForBench();
} else if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1]) {
  await benchSignalRelay();
}
