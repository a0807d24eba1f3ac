/**
 * ICE connectivity-check messages (RFC 8445 §7): STUN Binding requests with
 * USERNAME "remoteUfrag:localUfrag", PRIORITY, ICE-CONTROLLING/ICE-CONTROLLED
 * (64-bit tie-breaker), optional USE-CANDIDATE, MESSAGE-INTEGRITY keyed with
 * the receiver's password, FINGERPRINT; and the answers to them.
 */
import {
  StunAttr,
  StunClass,
  StunMethod,
  checkFingerprint,
  checkIntegrity,
  decodeErrorCode,
  decodeStun,
  decodeXorAddress,
  encodeErrorCode,
  encodeStun,
  encodeXorAddress,
  getAttr,
  type StunAttribute,
  type TransportAddress,
} from '../stun/index.js';

export interface CheckRequestParams {
  transactionId: Buffer;
  localUfrag: string;
  remoteUfrag: string;
  /** The remote agent's password: it keys MESSAGE-INTEGRITY of requests we send it. */
  remotePwd: string;
  /** PRIORITY: the priority a peer-reflexive candidate learned from this check would get. */
  priority: number;
  controlling: boolean;
  tieBreaker: bigint;
  useCandidate?: boolean;
}

function u32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n >>> 0, 0);
  return b;
}

function u64(n: bigint): Buffer {
  const b = Buffer.alloc(8);
  b.writeBigUInt64BE(n, 0);
  return b;
}

export function buildCheckRequest(p: CheckRequestParams): Buffer {
  const attributes: StunAttribute[] = [
    { type: StunAttr.Username, value: Buffer.from(`${p.remoteUfrag}:${p.localUfrag}`) },
    { type: p.controlling ? StunAttr.IceControlling : StunAttr.IceControlled, value: u64(p.tieBreaker) },
    { type: StunAttr.Priority, value: u32(p.priority) },
  ];
  if (p.useCandidate) attributes.push({ type: StunAttr.UseCandidate, value: Buffer.alloc(0) });
  return encodeStun(
    { method: StunMethod.Binding, cls: StunClass.Request, transactionId: p.transactionId, attributes },
    { integrityKey: Buffer.from(p.remotePwd), fingerprint: true },
  );
}

/** Success answer: XOR-MAPPED-ADDRESS = where the request came from, keyed with our own password. */
export function buildCheckSuccess(transactionId: Buffer, from: { address: string; port: number }, localPwd: string): Buffer {
  return encodeStun(
    {
      method: StunMethod.Binding,
      cls: StunClass.SuccessResponse,
      transactionId,
      attributes: [{ type: StunAttr.XorMappedAddress, value: encodeXorAddress(from, transactionId) }],
    },
    { integrityKey: Buffer.from(localPwd), fingerprint: true },
  );
}

/** Error answer (487 Role Conflict, 400 Bad Request), keyed with our password when we know the sender. */
export function buildCheckError(transactionId: Buffer, code: number, reason: string, localPwd?: string): Buffer {
  return encodeStun(
    {
      method: StunMethod.Binding,
      cls: StunClass.ErrorResponse,
      transactionId,
      attributes: [{ type: StunAttr.ErrorCode, value: encodeErrorCode(code, reason) }],
    },
    localPwd !== undefined ? { integrityKey: Buffer.from(localPwd), fingerprint: true } : { fingerprint: true },
  );
}

/** Binding indication (RFC 8445 §11 keepalive without an answer). */
export function buildBindingIndication(transactionId: Buffer): Buffer {
  return encodeStun({ method: StunMethod.Binding, cls: StunClass.Indication, transactionId, attributes: [] }, { fingerprint: true });
}

export interface ParsedCheckRequest {
  transactionId: Buffer;
  remoteUfrag: string;
  priority: number;
  useCandidate: boolean;
  /** Tie-breaker of a sender claiming the controlling role. */
  controlling?: bigint;
  /** Tie-breaker of a sender claiming the controlled role. */
  controlled?: bigint;
}

export type CheckRequestResult =
  | { ok: true; request: ParsedCheckRequest }
  | { ok: false; reason: string; transactionId?: Buffer; answerWith?: number };

/**
 * Validates a Binding request addressed to us (RFC 8445 §7.3, RFC 5389 §10.1.2): FINGERPRINT,
 * USERNAME "<localUfrag>:<remote>", MESSAGE-INTEGRITY with our password, PRIORITY present.
 */
export function parseCheckRequest(buf: Buffer, localUfrag: string, localPwd: string): CheckRequestResult {
  const msg = decodeStun(buf);
  if (msg === null || msg.method !== StunMethod.Binding || msg.cls !== StunClass.Request) return { ok: false, reason: 'not a Binding request' };
  const tid = msg.transactionId;
  if (getAttr(msg, StunAttr.Fingerprint) === undefined || !checkFingerprint(buf)) return { ok: false, reason: 'missing or bad FINGERPRINT', transactionId: tid };
  const user = getAttr(msg, StunAttr.Username)?.toString('utf8');
  if (user === undefined) return { ok: false, reason: 'no USERNAME', transactionId: tid, answerWith: 400 };
  const colon = user.indexOf(':');
  if (colon < 0 || user.slice(0, colon) !== localUfrag) return { ok: false, reason: `USERNAME "${user}" is not for ufrag ${localUfrag}`, transactionId: tid, answerWith: 401 };
  if (!checkIntegrity(buf, Buffer.from(localPwd))) return { ok: false, reason: 'bad MESSAGE-INTEGRITY', transactionId: tid, answerWith: 401 };
  const prio = getAttr(msg, StunAttr.Priority);
  if (prio === undefined || prio.length !== 4) return { ok: false, reason: 'no PRIORITY', transactionId: tid, answerWith: 400 };
  const request: ParsedCheckRequest = {
    transactionId: tid,
    remoteUfrag: user.slice(colon + 1),
    priority: prio.readUInt32BE(0),
    useCandidate: getAttr(msg, StunAttr.UseCandidate) !== undefined,
  };
  const ctl = getAttr(msg, StunAttr.IceControlling);
  const ctd = getAttr(msg, StunAttr.IceControlled);
  if (ctl?.length === 8) request.controlling = ctl.readBigUInt64BE(0);
  if (ctd?.length === 8) request.controlled = ctd.readBigUInt64BE(0);
  return { ok: true, request };
}

export type CheckResponse =
  | { kind: 'success'; transactionId: Buffer; mapped: TransportAddress }
  | { kind: 'error'; transactionId: Buffer; code: number; reason: string };

/**
 * Validates the answer to one of our checks; keyed with the remote password. Returns null for
 * anything not to be trusted (no/bad integrity or fingerprint, no mapped address).
 */
export function parseCheckResponse(buf: Buffer, remotePwd: string): CheckResponse | null {
  const msg = decodeStun(buf);
  if (msg === null || msg.method !== StunMethod.Binding) return null;
  if (msg.cls !== StunClass.SuccessResponse && msg.cls !== StunClass.ErrorResponse) return null;
  if (!checkFingerprint(buf)) return null;
  if (!checkIntegrity(buf, Buffer.from(remotePwd))) return null;
  if (msg.cls === StunClass.ErrorResponse) {
    const e = decodeErrorCode(getAttr(msg, StunAttr.ErrorCode) ?? Buffer.alloc(0));
    return { kind: 'error', transactionId: msg.transactionId, code: e?.code ?? 0, reason: e?.reason ?? '' };
  }
  const x = getAttr(msg, StunAttr.XorMappedAddress);
  const mapped = x ? decodeXorAddress(x, msg.transactionId) : null;
  if (mapped === null) return null;
  return { kind: 'success', transactionId: msg.transactionId, mapped };
}

/** Transaction ID of any STUN message (bytes 8..20), as a map key; '' if too short. */
export function transactionKey(buf: Uint8Array, offset = 0, length = buf.length - offset): string {
  if (length < 20) return '';
  return Buffer.from(buf.buffer, buf.byteOffset + offset + 8, 12).toString('hex');
}

/** STUN class bits of a raw message (0 request, 0x10 indication, 0x100 success, 0x110 error). */
export function stunClassOf(buf: Uint8Array, offset = 0): number {
  return ((buf[offset]! << 8) | buf[offset + 1]!) & 0x0110;
}

/** USERNAME of a raw request (for routing requests to the agent owning the ufrag), or ''. */
export function usernameOf(buf: Buffer): string {
  const msg = decodeStun(buf);
  if (msg === null) return '';
  return getAttr(msg, StunAttr.Username)?.toString('utf8') ?? '';
}
