/** A small STUN binding client: learns the server-reflexive address of a UDP socket. */
import { randomBytes } from 'node:crypto';
import { createSocket, type RemoteInfo, type Socket } from 'node:dgram';
import { isIP } from 'node:net';
import { lookup } from 'node:dns/promises';
import {
  StunAttr,
  StunClass,
  StunError,
  StunMethod,
  checkFingerprint,
  decodeAddress,
  decodeErrorCode,
  decodeStun,
  decodeXorAddress,
  encodeStun,
  getAttr,
  isStunMessage,
  type TransportAddress,
} from './message.js';

export interface StunBindingOptions {
  host: string;
  port?: number;
  /** Socket to query from (its reflexive address is what you learn). A temporary one is used if absent. */
  socket?: Socket;
  /** First retransmission timeout; doubles each time (RFC 5389 uses 500 ms). Default 250 ms. */
  rtoMs?: number;
  /** Give up after this long. Default 3 s. */
  timeoutMs?: number;
}

export interface StunBindingResult extends TransportAddress {
  /** Round-trip time of the answered request in ms. */
  rttMs: number;
  /** SOFTWARE of the server, if sent. */
  software?: string;
}

/** Sends Binding requests (with retransmission) and returns the mapped address. */
export async function stunBinding(opts: StunBindingOptions): Promise<StunBindingResult> {
  const port = opts.port ?? 3478;
  const address = isIP(opts.host) ? opts.host : (await lookup(opts.host)).address;
  const own = opts.socket === undefined;
  const sock = opts.socket ?? createSocket(address.includes(':') ? 'udp6' : 'udp4');
  if (own) await new Promise<void>((r) => sock.bind(0, r));
  const transactionId = randomBytes(12);
  const request = encodeStun({ method: StunMethod.Binding, cls: StunClass.Request, transactionId, attributes: [] }, { fingerprint: true });
  const timeoutMs = opts.timeoutMs ?? 3000;
  try {
    return await new Promise<StunBindingResult>((resolve, reject) => {
      let rto = opts.rtoMs ?? 250;
      let sentAt = Date.now();
      let timer: NodeJS.Timeout;
      const deadline = setTimeout(() => finish(new StunError(`no STUN answer from ${address}:${port} within ${timeoutMs} ms`)), timeoutMs);
      const send = (): void => {
        sentAt = Date.now();
        sock.send(request, port, address);
        timer = setTimeout(send, rto);
        rto *= 2;
      };
      const finish = (err: Error | null, res?: StunBindingResult): void => {
        clearTimeout(timer);
        clearTimeout(deadline);
        sock.off('message', onMessage);
        if (err) reject(err);
        else resolve(res!);
      };
      const onMessage = (buf: Buffer, _rinfo: RemoteInfo): void => {
        if (!isStunMessage(buf)) return;
        const msg = decodeStun(buf);
        if (msg === null || !msg.transactionId.equals(transactionId) || !checkFingerprint(buf)) return;
        if (msg.cls === StunClass.ErrorResponse) {
          const e = decodeErrorCode(getAttr(msg, StunAttr.ErrorCode) ?? Buffer.alloc(0));
          finish(new StunError(`STUN error ${e?.code ?? '?'} ${e?.reason ?? ''}`.trim()));
          return;
        }
        if (msg.cls !== StunClass.SuccessResponse) return;
        const xor = getAttr(msg, StunAttr.XorMappedAddress);
        const plain = getAttr(msg, StunAttr.MappedAddress);
        const mapped = xor ? decodeXorAddress(xor, transactionId) : plain ? decodeAddress(plain) : null;
        if (mapped === null) {
          finish(new StunError('STUN answer without a mapped address'));
          return;
        }
        const sw = getAttr(msg, StunAttr.Software);
        finish(null, { ...mapped, rttMs: Date.now() - sentAt, ...(sw ? { software: sw.toString('utf8') } : {}) });
      };
      sock.on('message', onMessage);
      send();
    });
  } finally {
    if (own) sock.close();
  }
}
