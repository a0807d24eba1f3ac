/**
 * Signal server (protocol.md §5): a store-less forwarder of end-to-end
 * encrypted messages between peers registered by their WireGuard key.
 * Exposed as a grpc-js service definition + implementation so the combined
 * server can mount it next to Management on one port.
 */
import { Metadata, status, type ServerDuplexStream, type ServerUnaryCall, type sendUnaryData } from '@grpc/grpc-js';
import { signalexchange } from '../proto/index.js';

type EncryptedMessage = signalexchange.EncryptedMessage;

export const PEER_ID_HEADER = 'x-wiretrustee-peer-id';
export const PEER_REGISTERED_HEADER = 'x-wiretrustee-peer-registered';

export interface SignalServerOptions {
  /** How long Send waits for a recipient's stream to accept a message before dropping the recipient (default 10 s). */
  sendTimeoutMs?: number;
  log?: (level: 'debug' | 'info' | 'warn', msg: string, fields?: Record<string, unknown>) => void;
}

export interface SignalServerStats {
  peers: number;
  forwarded: number;
  dropped: number;
  /** Registrations removed because the recipient did not accept a message in time. */
  evicted: number;
}

export interface SignalServer {
  /** grpc-js service definition: server.addService(service, implementation). */
  readonly service: typeof signalexchange.SignalExchangeService;
  readonly implementation: signalexchange.SignalExchangeServer;
  /** Ends every registered stream (UNAVAILABLE) so clients reconnect elsewhere. */
  close(): void;
  /** Keys of the registered peers. */
  connectedPeers(): string[];
  stats(): SignalServerStats;
}

interface Registration {
  readonly key: string;
  readonly call: ServerDuplexStream<EncryptedMessage, EncryptedMessage>;
  ended: boolean;
  /** Senders waiting for the stream to drain (backpressure). */
  waiters: (() => void)[];
}

const EMPTY: EncryptedMessage = { key: '', remoteKey: '', body: Buffer.alloc(0) };

export function createSignalServer(opts: SignalServerOptions = {}): SignalServer {
  const sendTimeoutMs = opts.sendTimeoutMs ?? 10_000;
  const log = opts.log ?? ((): void => {});
  const peers = new Map<string, Registration>();
  const counters = { forwarded: 0, dropped: 0, evicted: 0 };

  const end = (reg: Registration, code: status, details: string): void => {
    if (reg.ended) return;
    reg.ended = true;
    if (peers.get(reg.key) === reg) peers.delete(reg.key);
    const waiters = reg.waiters;
    reg.waiters = [];
    for (const w of waiters) w();
    try {
      reg.call.emit('error', { code, details });
    } catch {
      // The call may already be gone (client cancelled); nothing to end.
    }
  };

  const connectStream = (call: ServerDuplexStream<EncryptedMessage, EncryptedMessage>): void => {
    const values = call.metadata.get(PEER_ID_HEADER);
    const key = typeof values[0] === 'string' ? values[0] : values[0] !== undefined ? values[0].toString() : '';
    if (key === '') {
      call.emit('error', { code: status.FAILED_PRECONDITION, details: `missing ${PEER_ID_HEADER} header with the peer's WireGuard public key` });
      return;
    }
    const reg: Registration = { key, call, ended: false, waiters: [] };
    const old = peers.get(key);
    peers.set(key, reg);
    if (old) end(old, status.UNKNOWN, 'peer registered again');
    const md = new Metadata();
    md.set(PEER_REGISTERED_HEADER, '1');
    call.sendMetadata(md);
    log('debug', 'signal peer registered', { peer: key });

    const gone = (): void => {
      if (reg.ended) return;
      reg.ended = true;
      if (peers.get(key) === reg) peers.delete(key);
      const waiters = reg.waiters;
      reg.waiters = [];
      for (const w of waiters) w();
      log('debug', 'signal peer gone', { peer: key });
    };
    call.on('cancelled', gone);
    call.on('close', gone);
    call.on('error', gone);
    call.on('drain', () => {
      const waiters = reg.waiters;
      reg.waiters = [];
      for (const w of waiters) w();
    });
    // The client side of the stream is never read (§5.2): all sending goes through Send.
  };

  const deliver = (reg: Registration, msg: EncryptedMessage): Promise<void> => {
    if (reg.call.write(msg)) return Promise.resolve();
    // Backpressure: the stream buffered the message but is above its high-water mark.
    // Wait for it to drain; a recipient that can't take messages for sendTimeoutMs is evicted.
    return new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        counters.evicted++;
        log('warn', 'signal recipient not accepting messages, dropping its registration', { peer: reg.key });
        end(reg, status.UNAVAILABLE, 'peer did not accept messages in time');
        resolve();
      }, sendTimeoutMs);
      reg.waiters.push(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  };

  const send = (call: ServerUnaryCall<EncryptedMessage, EncryptedMessage>, callback: sendUnaryData<EncryptedMessage>): void => {
    const msg = call.request;
    const reg = msg.remoteKey === 'dummy' ? undefined : peers.get(msg.remoteKey);
    if (reg === undefined || reg.ended) {
      counters.dropped++;
      callback(null, EMPTY);
      return;
    }
    counters.forwarded++;
    deliver(reg, msg).then(
      () => callback(null, EMPTY),
      () => callback(null, EMPTY),
    );
  };

  const implementation: signalexchange.SignalExchangeServer = { send, connectStream };

  return {
    service: signalexchange.SignalExchangeService,
    implementation,
    close(): void {
      for (const reg of [...peers.values()]) end(reg, status.UNAVAILABLE, 'signal server shutting down');
    },
    connectedPeers(): string[] {
      return [...peers.keys()];
    },
    stats(): SignalServerStats {
      return { peers: peers.size, ...counters };
    },
  };
}
