import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { formatKey, generateKeyPair } from '../src/crypto/index.js';
import {
  AccountManager,
  NetbirdConfigBuilder,
  Store,
  UpdateHub,
  emptyPeerMeta,
  encodeNetworkMap,
  forwarderPort,
  boxBeforeNm,
  sealFrameInPlace,
  type Peer,
} from '../src/management/index.js';
import { management } from '../src/proto/index.js';
import { type TopologyKind, benchManagementGrpc } from './mgmt-grpc.js';

/**
 * Management benchmark: for N = 100, 1,000, 5,000 peers in one account with realistic groups and
 * policies (teams of 25 talking among themselves, 20 shared servers reachable on tcp/22,443,8000-8100
 * from everybody, 10 admins reaching everything), measure
 *  - the time to compute + encode every peer's network map (cold and warm fragment cache), against a
 *    reference: plain ts-proto encoding of the same maps from message objects;
 *  - the time from one policy change to the last of the N connected Sync streams having its new
 *    (sealed) message;
 *  - heap per connected peer.
 * Delivery is measured in-process at the Sync-stream layer (UpdateHub -> SyncSink, which seals each
 * message with the peer's key exactly like the gRPC layer does), because 5,000 real HTTP/2 streams and
 * clients would measure the 2-core machine's gRPC client side more than the server. The grpc mode
 * (bench/mgmt-grpc.ts, `--mode grpc`) measures the whole path instead: a real netbird-server process
 * and a load generator process with real Sync streams.
 */

const TEAM_SIZE = 25;
const SERVERS = 20;
const ADMINS = 10;

interface Fixture {
  store: Store;
  manager: AccountManager;
  accountId: string;
  adminPolicyId: string;
  adminGroupId: string;
  allGroupId: string;
  dir: string;
  peerKeys: Map<string, Buffer>;
}

function ms(ns: bigint): number {
  return Number(ns) / 1e6;
}

function gc(): void {
  (globalThis as { gc?: () => void }).gc?.();
}

function peerId(i: number): string {
  return `p${String(i).padStart(19, '0')}`;
}

async function buildFixture(n: number): Promise<Fixture> {
  const dir = mkdtempSync(join(tmpdir(), 'nbmg-bench-'));
  const store = await Store.open({ kind: 'sqlite', path: join(dir, 'management.db') });
  let manager = await AccountManager.open({ store });
  const acc = await manager.createAccount({ network: '100.64.0.0/16' });
  const teams = Math.max(1, Math.ceil(n / TEAM_SIZE));
  const teamGroups: string[] = [];
  for (let t = 0; t < teams; t++) teamGroups.push((await manager.createGroup(acc.id, { name: `team-${t}` })).id);
  const servers = (await manager.createGroup(acc.id, { name: 'servers' })).id;
  const admins = (await manager.createGroup(acc.id, { name: 'admins' })).id;
  const allGroupId = manager.listGroups(acc.id).find((g) => g.name === 'All')!.id;
  manager.close();

  // Peers go straight into the store in one transaction (registering 5,000 peers one by one would
  // time fsyncs, not map computation), then the manager loads them like after a restart.
  const now = Date.now();
  const peers: Peer[] = [];
  const peerKeys = new Map<string, Buffer>();
  const members = new Map<string, string[]>([[allGroupId, []], [servers, []], [admins, []]]);
  for (const g of teamGroups) members.set(g, []);
  const serverStride = Math.max(1, Math.floor(n / SERVERS));
  const adminStride = Math.max(1, Math.floor(n / ADMINS));
  for (let i = 0; i < n; i++) {
    const kp = generateKeyPair();
    const id = peerId(i);
    peerKeys.set(id, kp.publicKey);
    const ip = `100.64.${Math.floor((i + 1) / 256)}.${(i + 1) % 256}`;
    peers.push({
      id,
      accountId: acc.id,
      key: formatKey(kp.publicKey),
      ip,
      dnsLabel: `host-${i}`,
      extraDnsLabels: [],
      name: `host-${i}`,
      sshKey: `ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI${randomBytes(24).toString('base64')} host-${i}`,
      sshEnabled: false,
      meta: { ...emptyPeerMeta(), hostname: `host-${i}`, goOS: 'linux', netbirdVersion: '0.60.2', capabilities: [1] },
      userId: '',
      setupKeyId: '',
      ephemeral: false,
      loginExpirationEnabled: false,
      inactivityExpirationEnabled: false,
      approvalRequired: false,
      connected: false,
      lastSeen: now,
      lastLogin: now,
      createdAt: now + i,
    });
    members.get(allGroupId)!.push(id);
    members.get(teamGroups[Math.floor(i / TEAM_SIZE)]!)!.push(id);
    // Realistic shape: a fixed handful of shared servers and admins, not a fraction of everybody.
    if (i % serverStride === 7 % serverStride && members.get(servers)!.length < SERVERS) members.get(servers)!.push(id);
    if (i % adminStride === 3 % adminStride && members.get(admins)!.length < ADMINS) members.get(admins)!.push(id);
  }
  await store.transaction(async (q) => {
    await q.insertPeers(peers);
    for (const [g, ids] of members) await q.addGroupPeers(acc.id, g, ids);
  });

  manager = await AccountManager.open({ store });
  const def = manager.listPolicies(acc.id)[0]!;
  await manager.deletePolicy(acc.id, def.id);
  await manager.createPolicy(acc.id, {
    name: 'teams',
    rules: teamGroups.map((g, i) => ({ name: `team-${i}`, sources: [g], destinations: [g], bidirectional: true })),
  });
  await manager.createPolicy(acc.id, {
    name: 'servers',
    rules: [{ name: 'web+ssh', sources: [allGroupId], destinations: [servers], protocol: 'tcp', ports: ['22', '443'], portRanges: [{ start: 8000, end: 8100 }] }],
  });
  const adminPolicy = await manager.createPolicy(acc.id, {
    name: 'admins',
    rules: [{ name: 'admin-all', sources: [admins], destinations: [allGroupId], bidirectional: true }],
  });
  return { store, manager, accountId: acc.id, adminPolicyId: adminPolicy.id, adminGroupId: admins, allGroupId, dir, peerKeys };
}

async function benchN(n: number): Promise<{ n: number; deliverCpuMs: number; cachePerPeer: number; computeMs: number; warmMs: number; refMs: number; deliverMs: number; bytesPerPeer: number; heapPerPeer: number; avgPeers: number; delivered: number; renameMs: number; renameGot: number; renameExpected: number }> {
  const fx = await buildFixture(n);
  try {
    const state = fx.manager.accountState(fx.accountId);
    const peers = [...state.peers.values()];
    const fwd = forwarderPort(state);
    const now = Date.now();

    // 1. Compute + encode every map, cold cache (as after a restart), then warm.
    state.peerCache.clear();
    let t0 = process.hrtime.bigint();
    let bytes = 0;
    let remote = 0;
    for (const p of peers) {
      const m = encodeNetworkMap(state, p, now, fwd);
      bytes += m.body.length;
      remote += m.remotePeerCount;
    }
    const computeMs = ms(process.hrtime.bigint() - t0);
    // Bytes held by the per-peer fragment caches the encoder keeps (connected or not).
    let cacheBytes = 0;
    for (const f of state.peerCache.values()) {
      cacheBytes += f.remote.bytes.length + f.offline.bytes.length + f.dns.bytes.length + f.ownConfigField.length + f.fwPeer.length + f.fwPeerWithPrefix.length;
      for (const c of f.fw.values()) cacheBytes += c.bytes.length;
    }
    const cachePerPeer = cacheBytes / n;
    t0 = process.hrtime.bigint();
    for (const p of peers) void encodeNetworkMap(state, p, now, fwd).body;
    const warmMs = ms(process.hrtime.bigint() - t0);

    // Reference: encode the very same maps with ts-proto from message objects (one at a time, so
    // memory stays flat; only the encode call is timed).
    let refNs = 0n;
    for (const p of peers) {
      const obj = management.NetworkMap.decode(encodeNetworkMap(state, p, now, fwd).body);
      const r0 = process.hrtime.bigint();
      management.NetworkMap.encode(obj).finish();
      refNs += process.hrtime.bigint() - r0;
    }
    const refMs = ms(refNs);

    // 2. N connected Sync streams (in-process sinks that seal like the gRPC layer).
    const hub = new UpdateHub(fx.manager, new NetbirdConfigBuilder({ signal: { uri: '127.0.0.1:10000', tls: false }, relay: { urls: ['rel://127.0.0.1:1'], secret: 's' } }), { debounceMs: 1000 });
    const serverKey = generateKeyPair();
    const serverPubText = formatKey(serverKey.publicKey);
    let received = 0;
    let target = Infinity;
    let done: () => void = () => {};
    gc();
    const heapBefore = process.memoryUsage().heapUsed;
    for (const p of peers) {
      const boxKey = boxBeforeNm(fx.peerKeys.get(p.id)!, serverKey.privateKey);
      hub.open(
        { state, peer: p },
        {
          send: (frame, written) => {
            sealFrameInPlace(frame, boxKey, serverPubText);
            written();
            received++;
            if (received >= target) done();
          },
          end: () => {},
        },
      );
    }
    gc();
    const heapPerPeer = (process.memoryUsage().heapUsed - heapBefore) / n;

    // 3. A policy change that affects everybody (admins: tcp only, then all protocols again), three
    //    rounds spaced beyond the coalescing window; the median is reported.
    const rounds: number[] = [];
    const cpuRounds: number[] = [];
    let got = 0;
    for (let round = 0; round < 3; round++) {
      received = 0;
      target = n;
      const delivered = new Promise<void>((resolve) => (done = resolve));
      t0 = process.hrtime.bigint();
      const cpu0 = process.cpuUsage();
      await fx.manager.updatePolicy(fx.accountId, fx.adminPolicyId, {
        name: 'admins',
        rules: [{ name: 'admin-all', sources: [fx.adminGroupId], destinations: [fx.allGroupId], bidirectional: true, protocol: round % 2 === 0 ? 'tcp' : 'all' }],
      });
      await Promise.race([delivered, new Promise<void>((resolve) => setTimeout(resolve, 60_000).unref())]);
      rounds.push(ms(process.hrtime.bigint() - t0));
      const cpu = process.cpuUsage(cpu0);
      cpuRounds.push((cpu.user + cpu.system) / 1000);
      got = received;
      await new Promise((r) => setTimeout(r, 1100));
    }
    rounds.sort((a, b) => a - b);
    cpuRounds.sort((a, b) => a - b);
    const deliverMs = rounds[1]!;
    const deliverCpuMs = cpuRounds[1]!;

    // 4. A change only some peers see (one ordinary peer renamed): exactly the peers that see it get a map.
    received = 0;
    target = Infinity;
    const plain = peers.find((p) => !state.peerGroups.get(p.id)!.has(fx.adminGroupId) && state.visiblePeers(p.id).size < 100)!;
    const expected = state.visiblePeers(plain.id).size + 1;
    t0 = process.hrtime.bigint();
    await fx.manager.updatePeer(fx.accountId, plain.id, { name: 'renamed-peer' });
    await new Promise((r) => setImmediate(r));
    const renameMs = ms(process.hrtime.bigint() - t0);
    await new Promise((r) => setTimeout(r, 200));
    const renameGot = received;
    hub.shutdown();
    return { n, computeMs, warmMs, refMs, deliverMs, deliverCpuMs, cachePerPeer, bytesPerPeer: bytes / n, heapPerPeer, avgPeers: remote / n, delivered: got, renameMs, renameGot, renameExpected: expected };
  } finally {
    fx.manager.close();
    await fx.store.close();
    rmSync(fx.dir, { recursive: true, force: true });
  }
}

const USAGE = `management benchmark options (after "--"):
  --mode M            inproc (UpdateHub in this process), grpc (real server + load generator
                      processes) or all (default); env NBMG_BENCH_MODE
  --peers N,N,...     peer counts of the grpc mode (default 1000,5000,10000); env NBMG_BENCH_PEERS
  --backends B,B      sqlite and/or postgres (default both); env NBMG_BENCH_BACKENDS
  --topology T,T      teams (infra servers everybody reaches + teams that reach themselves; the
                      policy that changes is All -> infra) and/or mesh (All <-> All: every map lists
                      every peer, N maps of N peers per change); default teams,mesh; env NBMG_BENCH_TOPOLOGY
  --team-size S       peers per team (default 50)   --infra-peers I   infra servers (default 20)
  --phase-timeout S   bound of every grpc phase in seconds (default max(60, 0.06 x N))
  --policy-rounds R   policy changes measured per N (default 3)
  --server-node-args="A B"  extra node flags for the server, e.g. --server-node-args="--cpu-prof --cpu-prof-dir=/tmp/p"
                      (then the server's temp dir is kept); env NBMG_BENCH_SERVER_NODE_ARGS
                      (the load generator's: env NBMG_BENCH_LOAD_NODE_ARGS)
  --streams-per-connection S   Sync streams sharing one HTTP/2 connection of the generator (default
                      500; 1 = a connection per peer, like real clients, but costly at large N);
                      GetServerKey and Login go over connections of their own, as a real peer's
                      answers never wait behind other peers' maps
  --sync-client C     how the generator reads Sync streams: h2 (default; node:http2 with gRPC's
                      framing by hand, bench/h2-sync-stream.ts) or grpc-js (its full client,
                      which costs the generator several times the CPU per map on the shared cores)
  --inproc-sizes N,N  peer counts of the inproc mode (default 100,1000,5000); env NBMG_BENCH_SIZES
`;

function parseList(what: string, v: string): number[] {
  const out = v.split(',').map((x) => Number(x.trim()));
  if (out.length === 0 || out.some((x) => !Number.isInteger(x) || x < 2)) throw new Error(`${what}: expected a comma-separated list of peer counts >= 2, got ${JSON.stringify(v)}`);
  return out;
}

export async function benchManagement(args: string[] = []): Promise<void> {
  const { values } = parseArgs({
    args,
    options: {
      mode: { type: 'string' },
      peers: { type: 'string' },
      backends: { type: 'string' },
      topology: { type: 'string' },
      'team-size': { type: 'string' },
      'infra-peers': { type: 'string' },
      'phase-timeout': { type: 'string' },
      'policy-rounds': { type: 'string' },
      'server-node-args': { type: 'string' },
      'inproc-sizes': { type: 'string' },
      'streams-per-connection': { type: 'string' },
      'sync-client': { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
    strict: true,
  });
  if (values.help) {
    console.log(USAGE);
    return;
  }
  const mode = values.mode ?? process.env.NBMG_BENCH_MODE ?? 'all';
  if (!['inproc', 'grpc', 'all'].includes(mode)) throw new Error(`--mode: expected inproc, grpc or all, got ${JSON.stringify(mode)}\n${USAGE}`);
  const backends = (values.backends ?? process.env.NBMG_BENCH_BACKENDS ?? 'sqlite,postgres').split(',').map((b) => b.trim());
  for (const b of backends) if (b !== 'sqlite' && b !== 'postgres') throw new Error(`--backends: expected sqlite and/or postgres, got ${JSON.stringify(b)}`);
  const topologies = (values.topology ?? process.env.NBMG_BENCH_TOPOLOGY ?? 'teams,mesh').split(',').map((b) => b.trim());
  for (const t of topologies) if (t !== 'teams' && t !== 'mesh') throw new Error(`--topology: expected teams and/or mesh, got ${JSON.stringify(t)}`);
  const teamSize = Number(values['team-size'] ?? 50);
  if (!Number.isInteger(teamSize) || teamSize < 2) throw new Error('--team-size: expected an integer >= 2');
  const infraPeers = Number(values['infra-peers'] ?? 20);
  if (!Number.isInteger(infraPeers) || infraPeers < 1) throw new Error('--infra-peers: expected an integer >= 1');
  const timeout = values['phase-timeout'] !== undefined ? Number(values['phase-timeout']) : undefined;
  if (timeout !== undefined && !(timeout > 0)) throw new Error('--phase-timeout: expected seconds > 0');
  const rounds = Number(values['policy-rounds'] ?? 3);
  if (!Number.isInteger(rounds) || rounds < 1) throw new Error('--policy-rounds: expected an integer >= 1');
  const perConn = Number(values['streams-per-connection'] ?? 500);
  if (!Number.isInteger(perConn) || perConn < 1) throw new Error('--streams-per-connection: expected an integer >= 1');
  const syncClient = values['sync-client'] ?? 'h2';
  if (syncClient !== 'h2' && syncClient !== 'grpc-js') throw new Error('--sync-client: expected h2 or grpc-js');
  const nodeArgs = (values['server-node-args'] ?? process.env.NBMG_BENCH_SERVER_NODE_ARGS ?? '').split(' ').filter(Boolean);
  // Every option is checked before anything runs.
  const inprocSizes = parseList('--inproc-sizes', values['inproc-sizes'] ?? process.env.NBMG_BENCH_SIZES ?? '100,1000,5000');
  const peers = parseList('--peers', values.peers ?? process.env.NBMG_BENCH_PEERS ?? '1000,5000,10000');
  if (mode !== 'grpc') await benchInProcess(inprocSizes);
  if (mode === 'inproc') return;
  await benchManagementGrpc({
    peers,
    backends: backends as Array<'sqlite' | 'postgres'>,
    topologies: topologies as TopologyKind[],
    teamSize,
    infraPeers,
    phaseTimeoutMs: timeout !== undefined ? timeout * 1000 : undefined,
    policyRounds: rounds,
    serverNodeArgs: nodeArgs,
    streamsPerChannel: perConn,
    syncClient,
  });
}

async function benchInProcess(sizes: number[]): Promise<void> {
  console.log('--- in-process (UpdateHub -> sealed frames, no gRPC) ---');
  const rows = [];
  for (const n of sizes) {
    const r = await benchN(n);
    rows.push(r);
    console.log(
      `N=${String(n).padStart(5)}: avg ${r.avgPeers.toFixed(0)} remote peers/map, ${(r.bytesPerPeer / 1024).toFixed(1)} KiB/map | ` +
        `all maps: ${r.computeMs.toFixed(0)} ms cold, ${r.warmMs.toFixed(0)} ms warm (ts-proto reference encode only: ${r.refMs.toFixed(0)} ms, ratio ${(r.refMs / r.warmMs).toFixed(2)}x) | ` +
        `policy change -> ${r.delivered}/${n} streams in ${r.deliverMs.toFixed(0)} ms wall, ${r.deliverCpuMs.toFixed(0)} ms CPU (median of 3) | ` +
        `peer rename -> ${r.renameGot} maps sent (${r.renameExpected} peers see it) in ${r.renameMs.toFixed(1)} ms | memory ${(r.heapPerPeer / 1024).toFixed(1)} KiB/connected peer + ${(r.cachePerPeer / 1024).toFixed(1)} KiB/peer of cached fragments`,
    );
  }
  for (let i = 1; i < rows.length; i++) {
    const a = rows[i - 1]!;
    const b = rows[i]!;
    console.log(
      `growth N ${a.n} -> ${b.n} (x${b.n / a.n}): compute x${(b.computeMs / a.computeMs).toFixed(1)}, delivery x${(b.deliverMs / a.deliverMs).toFixed(1)}, map size x${(b.bytesPerPeer / a.bytesPerPeer).toFixed(1)}`,
    );
  }
  const big = rows.at(-1)!;
  console.log(
    `target: a change reaching ${big.n} connected peers in < 1000 ms -> ${big.deliverMs.toFixed(0)} ms wall (${big.deliverMs < 1000 ? 'met' : 'NOT met'}), ` +
      `${big.deliverCpuMs.toFixed(0)} ms of this process's CPU (wall minus CPU = time the machine gave to others; load average ${loadavg()[0]!.toFixed(1)})`,
  );
  console.log('(delivery measured in-process at the Sync-stream layer, each message sealed with the peer key; gc ' + ((globalThis as { gc?: unknown }).gc ? 'forced' : 'not exposed: heap figures are noisy, run node with --expose-gc') + ')');
}

if (process.argv[1] && import.meta.url.endsWith(process.argv[1].split('/').pop()!)) {
  await benchManagement(process.argv.slice(2));
}
