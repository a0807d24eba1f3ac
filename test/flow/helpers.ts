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
