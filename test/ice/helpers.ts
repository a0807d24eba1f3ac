/** Test helpers: an ICE agent pair wired to each other in-process (the test plays Signal). */
import { createUdpBind } from '../../src/tun/index.js';
import { IceAgent, IceMux, type IceAgentOptions, type SelectedPath, type IceState } from '../../src/ice/index.js';
import type { Endpoint, PacketBatch } from '../../src/wireguard/index.js';

export interface Side {
  mux: IceMux;
  agent: IceAgent;
  /** Non-STUN datagrams the "device" got: text + source endpoint key. */
  received: { text: string; from: Endpoint }[];
  selected: Promise<SelectedPath>;
  states: IceState[];
  close(): Promise<void>;
}

export async function openSide(opts: { netns?: string; host?: string; hostAddresses?: string[] } & Partial<IceAgentOptions>): Promise<Side> {
  const udp = await createUdpBind({ port: 0, host: opts.host ?? '0.0.0.0', ...(opts.netns ? { netns: opts.netns } : {}) });
  const mux = new IceMux(udp);
  const received: { text: string; from: Endpoint }[] = [];
  mux.setReceiveHandler((b: PacketBatch, from: readonly Endpoint[]) => {
    for (let i = 0; i < b.count; i++) received.push({ text: b.buf.toString('utf8', b.offsets[i]!, b.offsets[i]! + b.lengths[i]!), from: from[i]! });
  });
  const { netns: _n, host: _h, hostAddresses, ...rest } = opts;
  if (hostAddresses) (rest as Partial<IceAgentOptions>).hostAddresses = hostAddresses;
  const tag = opts.netns ?? String(udp.port);
  const logger = process.env.NBIC_DEBUG ? { debug: (m: string) => process.stderr.write(`[${tag}] ${m}\n`) } : undefined;
  const agent = new IceAgent({ mux, controlling: false, ...(logger ? { logger } : {}), ...rest, ...(opts.netns ? { netns: opts.netns } : {}) });
  const states: IceState[] = [];
  agent.on('state', (s) => states.push(s));
  const selected = new Promise<SelectedPath>((resolve) => agent.once('selected', resolve));
  return {
    mux, agent, received, selected, states,
    close: async () => {
      await agent.close();
      await mux.close();
    },
  };
}

/** Exchanges credentials and trickles candidates both ways, like two NetBird peers over Signal. */
export function wire(a: Side, b: Side): void {
  a.agent.on('candidate', (_c, text) => b.agent.addRemoteCandidate(text));
  b.agent.on('candidate', (_c, text) => a.agent.addRemoteCandidate(text));
}

export async function connect(a: Side, b: Side): Promise<void> {
  wire(a, b);
  a.agent.setRemoteCredentials(b.agent.localUfrag, b.agent.localPwd);
  b.agent.setRemoteCredentials(a.agent.localUfrag, a.agent.localPwd);
  await Promise.all([a.agent.gather(), b.agent.gather()]);
}

/** Sends one datagram to `ep` through its bind. */
export function sendText(ep: Endpoint, text: string): void {
  const buf = Buffer.from(text);
  ep.bind.send({ buf, offsets: Uint32Array.of(0), lengths: Uint32Array.of(buf.length), count: 1 }, [ep]);
}

export function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let t: NodeJS.Timeout;
  return Promise.race([p, new Promise<T>((_, rej) => (t = setTimeout(() => rej(new Error(`${what}: no result within ${ms} ms`)), ms)))]).finally(() => clearTimeout(t));
}
