/** Shared helpers of the flow tests: a real grpc-js server on loopback and event builders. */
import * as grpc from '@grpc/grpc-js';
import { randomBytes } from 'node:crypto';
import { flow } from '../../src/proto/index.js';
import type { FlowReceiver } from '../../src/flow/index.js';
import { msToTimestamp, newFlowUuid } from '../../src/flow/index.js';

export interface TestServer {
  readonly port: number;
  readonly url: string;
  stop(): Promise<void>;
}

/** A grpc-js server with the receiver's service on 127.0.0.1 (HTTP/2 cleartext). */
export async function startGrpcServer(receiver: Pick<FlowReceiver, 'service' | 'implementation'>, port = 0): Promise<TestServer> {
  const server = new grpc.Server();
  server.addService(receiver.service, receiver.implementation);
  const bound = await new Promise<number>((resolve, reject) =>
    server.bindAsync(`127.0.0.1:${port}`, grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
  );
  return {
    port: bound,
    url: `http://127.0.0.1:${bound}`,
    stop: () =>
      new Promise<void>((resolve) => {
        // forceShutdown: streams are long-lived; a graceful shutdown would wait for them.
        server.forceShutdown();
        resolve();
      }),
  };
}

export const TEST_KEY = randomBytes(32);

export function makeEvent(i = 0, key: Buffer = TEST_KEY): flow.FlowEvent {
  const now = Date.now();
  return flow.FlowEvent.fromPartial({
    eventId: newFlowUuid(),
    timestamp: msToTimestamp(now),
    publicKey: key,
    windowStart: msToTimestamp(now - 1000),
    windowEnd: msToTimestamp(now),
    flowFields: {
      flowId: newFlowUuid(),
      type: flow.Type.TYPE_START,
      direction: flow.Direction.EGRESS,
      protocol: 6,
      sourceIp: Buffer.from([100, 64, 0, 1]),
      destIp: Buffer.from([100, 64, 0, 2]),
      portInfo: { sourcePort: 40000 + (i % 20000), destPort: 443 },
      numOfStarts: 1,
    },
  });
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Polls `cond` every 10 ms until true or `ms` passed. */
export async function waitFor(cond: () => boolean, ms: number, what = 'condition'): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await sleep(10);
  }
}

import http2 from 'node:http2';

/** Splits gRPC length-prefixed messages out of a byte stream. */
export class GrpcFrameReader {
  private buf = Buffer.alloc(0);
  push(chunk: Buffer): Buffer[] {
    this.buf = Buffer.concat([this.buf, chunk]);
    const out: Buffer[] = [];
    while (this.buf.length >= 5) {
      const len = this.buf.readUInt32BE(1);
      if (this.buf.length < 5 + len) break;
      out.push(this.buf.subarray(5, 5 + len));
      this.buf = this.buf.subarray(5 + len);
    }
    return out;
  }
}

export function grpcFrame(msg: Uint8Array): Buffer {
  const h = Buffer.alloc(5);
  h.writeUInt32BE(msg.length, 1);
  return Buffer.concat([h, msg]);
}

export interface RawStreamCtx {
  /** 1-based stream number over the server's life. */
  readonly streamNo: number;
  /** 1-based HTTP/2 session (connection) number of this stream. */
  readonly sessionNo: number;
  readonly stream: http2.ServerHttp2Stream;
  ack(eventId: Buffer): void;
}

export interface RawServer {
  readonly url: string;
  readonly sessions: number;
  readonly streams: number;
  /** Every non-initiator event received, in order, with the time it arrived. */
  readonly received: Array<{ event: flow.FlowEvent; at: number; streamNo: number }>;
  stop(): Promise<void>;
}

/**
 * A hand-written gRPC server on node:http2, for what grpc-js servers cannot do (RST_STREAM with
 * PROTOCOL_ERROR, never answering). `respond` false: headers are never sent. `onEvent` decides per event.
 */
export async function startRawGrpcServer(opts: {
  respond?: (ctx: RawStreamCtx) => boolean;
  onEvent?: (ctx: RawStreamCtx, ev: flow.FlowEvent, nth: number) => void;
}): Promise<RawServer> {
  const server = http2.createServer();
  let sessions = 0;
  let streams = 0;
  const received: Array<{ event: flow.FlowEvent; at: number; streamNo: number }> = [];
  const sessionNos = new WeakMap<object, number>();
  const open = new Set<http2.ServerHttp2Session>();
  server.on('session', (s) => {
    sessionNos.set(s, ++sessions);
    open.add(s);
    s.on('close', () => open.delete(s));
    s.on('error', () => {});
  });
  server.on('stream', (stream) => {
    stream.on('error', () => {});
    const ctx: RawStreamCtx = {
      streamNo: ++streams,
      sessionNo: sessionNos.get(stream.session!) ?? 0,
      stream,
      ack(eventId: Buffer): void {
        if (!stream.destroyed && !stream.closed) stream.write(grpcFrame(flow.FlowEventAck.encode({ eventId, isInitiator: false }).finish()));
      },
    };
    if (opts.respond && !opts.respond(ctx)) return;
    stream.respond({ ':status': 200, 'content-type': 'application/grpc' });
    const reader = new GrpcFrameReader();
    let nth = 0;
    stream.on('data', (chunk: Buffer) => {
      for (const m of reader.push(chunk)) {
        const ev = flow.FlowEvent.decode(m);
        if (ev.isInitiator) continue;
        received.push({ event: ev, at: Date.now(), streamNo: ctx.streamNo });
        nth++;
        if (opts.onEvent) opts.onEvent(ctx, ev, nth);
        else ctx.ack(ev.eventId);
      }
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as { port: number }).port;
  return {
    url: `http://127.0.0.1:${port}`,
    get sessions() {
      return sessions;
    },
    get streams() {
      return streams;
    },
    received,
    stop: () =>
      new Promise<void>((resolve) => {
        for (const s of open) s.destroy();
        server.close(() => resolve());
      }),
  };
}
