/**
 * A STUN binding server (RFC 5389, the part NetBird's embedded STUN serves):
 * answers Binding requests with XOR-MAPPED-ADDRESS (+ MAPPED-ADDRESS for
 * RFC 3489 clients), SOFTWARE and FINGERPRINT; drops everything else.
 */
import { createSocket, type RemoteInfo, type Socket } from 'node:dgram';
import {
  StunAttr,
  StunClass,
  StunMethod,
  checkFingerprint,
  decodeStun,
  encodeAddress,
  encodeErrorCode,
  encodeStun,
  encodeXorAddress,
  isComprehensionRequired,
  type StunAttribute,
} from './message.js';

export interface StunServerOptions {
  /** Address to bind; "::" gives a dual-stack socket (IPv4 clients are answered with IPv4 addresses). Default "0.0.0.0". */
  host?: string;
  /** UDP port; 0 picks a free one. Default 3478. */
  port?: number;
  /** SOFTWARE attribute value. */
  software?: string;
}

export interface StunServerHandle {
  readonly port: number;
  readonly address: string;
  /** Requests answered / datagrams dropped so far. */
  stats(): { answered: number; dropped: number };
  close(): Promise<void>;
}

/** Attributes this server understands in a Binding request (others below 0x8000 get a 420). */
const KNOWN = new Set<number>([StunAttr.Username, StunAttr.MessageIntegrity, StunAttr.Fingerprint, StunAttr.Priority, StunAttr.UseCandidate, StunAttr.ChangeRequest]);

export async function startStunServer(opts: StunServerOptions = {}): Promise<StunServerHandle> {
  const host = opts.host ?? '0.0.0.0';
  const software = Buffer.from(opts.software ?? 'netbird-ts stun');
  const sock: Socket = createSocket({ type: host.includes(':') ? 'udp6' : 'udp4', reuseAddr: false });
  let answered = 0;
  let dropped = 0;

  sock.on('message', (buf: Buffer, rinfo: RemoteInfo) => {
    const reply = answer(buf, rinfo, software);
    if (reply === null) {
      dropped++;
      return;
    }
    answered++;
    sock.send(reply, rinfo.port, rinfo.address);
  });
  // ICMP port-unreachable and the like surface as errors on UDP sockets; they must not kill the server.
  sock.on('error', () => {});

  await new Promise<void>((resolve, reject) => {
    sock.once('error', reject);
    sock.bind(opts.port ?? 3478, host, () => {
      sock.off('error', reject);
      resolve();
    });
  });
  const bound = sock.address();
  return {
    port: bound.port,
    address: bound.address,
    stats: () => ({ answered, dropped }),
    close: () => new Promise<void>((resolve) => sock.close(() => resolve())),
  };
}

/** Builds the answer to one datagram, or null to drop it. Exported for tests. */
export function answer(buf: Buffer, rinfo: { address: string; port: number }, software: Buffer): Buffer | null {
  const msg = decodeStun(buf);
  if (msg === null || msg.method !== StunMethod.Binding || msg.cls !== StunClass.Request) return null;
  if (!checkFingerprint(buf)) return null;
  const legacy = msg.transactionId.length === 16;
  const unknown: number[] = [];
  for (const a of msg.attributes) if (isComprehensionRequired(a.type) && !KNOWN.has(a.type)) unknown.push(a.type);
  if (unknown.length > 0 && !legacy) {
    const list = Buffer.alloc(unknown.length * 2);
    unknown.forEach((u, i) => list.writeUInt16BE(u, i * 2));
    return encodeStun(
      {
        method: StunMethod.Binding,
        cls: StunClass.ErrorResponse,
        transactionId: msg.transactionId,
        attributes: [
          { type: StunAttr.ErrorCode, value: encodeErrorCode(420, 'Unknown Attribute') },
          { type: StunAttr.UnknownAttributes, value: list },
          { type: StunAttr.Software, value: software },
        ],
      },
      { fingerprint: true },
    );
  }
  const from = { address: rinfo.address, port: rinfo.port };
  const attributes: StunAttribute[] = legacy
    ? [{ type: StunAttr.MappedAddress, value: encodeAddress(from) }]
    : [
        { type: StunAttr.XorMappedAddress, value: encodeXorAddress(from, msg.transactionId) },
        { type: StunAttr.MappedAddress, value: encodeAddress(from) },
        { type: StunAttr.Software, value: software },
      ];
  return encodeStun({ method: StunMethod.Binding, cls: StunClass.SuccessResponse, transactionId: msg.transactionId, attributes }, { fingerprint: !legacy });
}
