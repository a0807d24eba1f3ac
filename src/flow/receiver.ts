/**
 * The flow collector's gRPC side: FlowService.Events. Authenticates the stream with the collector token,
 * sends response headers at once (NetBird clients wait for them), answers the initiator message, and acks
 * each event after the store has it. Duplicates are harmless: the store ignores an event_id it already has.
 */
import * as grpc from '@grpc/grpc-js';
import { flow } from '../proto/index.js';
import type { FlowLogger } from './log.js';
import { silentFlowLogger } from './log.js';
import { FlowEventInvalidError, flowEventToRecord } from './model.js';
import type { FlowReporterIdentity } from './model.js';
import type { FlowStore } from './store.js';
import { verifyFlowAuthorization } from './token.js';

export interface FlowReceiverOptions {
  /** Shared secret the collector tokens are signed with (see issueFlowToken). */
  readonly secret: string;
  readonly store: FlowStore;
  readonly logger?: FlowLogger;
  /** Maps a reporter's base64 WireGuard key to its peer/account/user (e.g. from Management's store). */
  readonly resolveReporter?: (publicKey: string) => FlowReporterIdentity | undefined | Promise<FlowReporterIdentity | undefined>;
  /** Events of one stream being stored at once before the stream stops reading (HTTP/2 flow control). Default 1000. */
  readonly maxInFlightPerStream?: number;
  readonly now?: () => number;
}

export interface FlowReceiverStats {
  readonly activeStreams: number;
  readonly acked: number;
  readonly invalid: number;
  readonly storeErrors: number;
  readonly unauthenticated: number;
}

export interface FlowReceiver {
  /** For grpc.Server.addService(service, implementation). */
  readonly service: typeof flow.FlowServiceService;
  readonly implementation: flow.FlowServiceServer;
  stats(): FlowReceiverStats;
  /** Ends every open stream (UNAVAILABLE, so clients reconnect elsewhere/later) and refuses new ones. */
  close(): void;
}

type EventsCall = grpc.ServerDuplexStream<flow.FlowEvent, flow.FlowEventAck>;

function statusError(code: grpc.status, details: string): Partial<grpc.StatusObject> & Error {
  return Object.assign(new Error(details), { code, details });
}

export function createFlowReceiver(opts: FlowReceiverOptions): FlowReceiver {
  const log = opts.logger ?? silentFlowLogger;
  const now = opts.now ?? Date.now;
  const maxInFlight = Math.max(1, opts.maxInFlightPerStream ?? 1000);
  const active = new Set<EventsCall>();
  let closed = false;
  const counters = { acked: 0, invalid: 0, storeErrors: 0, unauthenticated: 0 };

  const events = (call: EventsCall): void => {
    if (closed) {
      call.emit('error', statusError(grpc.status.UNAVAILABLE, 'flow receiver is shutting down'));
      return;
    }
    const auth = call.metadata.get('authorization')[0];
    const check = verifyFlowAuthorization(opts.secret, typeof auth === 'string' ? auth : undefined, Math.floor(now() / 1000));
    if (!check.ok) {
      counters.unauthenticated++;
      log.warn({ peer: call.getPeer(), reason: check.reason }, 'flow stream refused');
      call.emit('error', statusError(grpc.status.UNAUTHENTICATED, `flow token rejected: ${check.reason}`));
      return;
    }
    // Headers now: the client's stream setup waits for them before it sends any event.
    call.sendMetadata(new grpc.Metadata());
    active.add(call);

    let inFlight = 0;
    let paused = false;
    let writeBlocked = false;
    let clientDone = false;
    let finished = false;
    const identities = new Map<string, Promise<FlowReporterIdentity | undefined>>();

    const finish = (): void => {
      if (finished) return;
      finished = true;
      active.delete(call);
    };
    const maybeEnd = (): void => {
      // The client half-closed: answer what is still being stored, then close our side.
      if (clientDone && inFlight === 0 && !finished) {
        finish();
        call.end();
      }
    };
    // Stop reading (HTTP/2 flow control then stops the client) while too many events are being stored
    // or while the client does not read its acks; resume with some hysteresis.
    const flowControl = (): void => {
      if (finished) return;
      if (!paused && (inFlight >= maxInFlight || writeBlocked)) {
        paused = true;
        call.pause();
      } else if (paused && inFlight <= maxInFlight / 2 && !writeBlocked) {
        paused = false;
        call.resume();
      }
    };
    const reply = (ack: flow.FlowEventAck): void => {
      if (!call.write(ack) && !writeBlocked) {
        writeBlocked = true;
        call.once('drain', () => {
          writeBlocked = false;
          flowControl();
        });
      }
      flowControl();
    };
    const identify = (key: string): Promise<FlowReporterIdentity | undefined> => {
      let p = identities.get(key);
      if (!p) {
        p = Promise.resolve(opts.resolveReporter ? opts.resolveReporter(key) : undefined);
        if (identities.size < 16) identities.set(key, p);
      }
      return p;
    };
    const handle = async (ev: flow.FlowEvent): Promise<boolean> => {
      const receivedAt = now();
      let who: FlowReporterIdentity | undefined;
      if (ev.publicKey.length === 32) who = await identify(ev.publicKey.toString('base64'));
      let record;
      try {
        record = flowEventToRecord(ev, receivedAt, who);
      } catch (err) {
        if (!(err instanceof FlowEventInvalidError)) throw err;
        // Acked anyway: it can never be stored, and an unacked event would be re-sent forever.
        counters.invalid++;
        log.warn({ err: err.message }, 'invalid flow event dropped');
        return true;
      }
      await opts.store.add(record);
      return true;
    };

    call.on('data', (ev: flow.FlowEvent) => {
      if (ev.isInitiator) {
        reply({ eventId: Buffer.alloc(0), isInitiator: true });
        return;
      }
      inFlight++;
      flowControl();
      handle(ev)
        .then(
          () => {
            if (finished) return;
            counters.acked++;
            reply({ eventId: ev.eventId, isInitiator: false });
          },
          (err: unknown) => {
            // Not acked: the client keeps the event and sends it again.
            counters.storeErrors++;
            log.error({ err: err instanceof Error ? err.message : String(err) }, 'storing flow event failed');
          },
        )
        .finally(() => {
          inFlight--;
          flowControl();
          maybeEnd();
        });
    });
    call.on('end', () => {
      clientDone = true;
      maybeEnd();
    });
    call.on('cancelled', finish);
    call.on('close', finish);
    call.on('error', (err: Error) => {
      log.debug({ err: err.message }, 'flow stream error');
      finish();
    });
  };

  return {
    service: flow.FlowServiceService,
    implementation: { events },
    stats: () => ({ activeStreams: active.size, ...counters }),
    close(): void {
      closed = true;
      for (const call of [...active]) {
        active.delete(call);
        call.emit('error', statusError(grpc.status.UNAVAILABLE, 'flow receiver is shutting down'));
      }
    },
  };
}
