// A lean client of one gRPC server-streaming call over node:http2, for the management load generator
// (bench/mgmt-load.ts). It frames the request and splits the response into gRPC messages by the
// 5-byte length prefix, nothing more: no per-message stream objects, filters or retries. Thousands
// of simulated peers share one core with the server under test, and grpc-js's client path cost the
// generator about as much CPU per map as the server spent making it.
import http2 from 'node:http2';
import { FramePool } from '../src/management/frame-pool.js';

/** gRPC status codes the generator tells apart. */
export const GRPC_OK = 0;
export const GRPC_CANCELLED = 1;
export const GRPC_UNKNOWN = 2;
export const GRPC_UNAVAILABLE = 14;

export interface StreamEnd {
  /** gRPC status from the trailers; UNAVAILABLE when the stream broke without any, CANCELLED after cancel(). */
  code: number;
  details: string;
}

export interface ServerStream {
  cancel(): void;
}

const sessions = new Map<string, http2.ClientHttp2Session>();
/** Buffers for messages that arrive in several chunks, reused (fewer GCs of a process sharing the cores). */
const assembly = new FramePool(64 * 1024 * 1024);

/** One HTTP/2 connection per key (the generator's channel), reopened once it has closed. */
function sessionFor(key: string, authority: string, windowBytes: number): http2.ClientHttp2Session {
  const s = sessions.get(key);
  if (s && !s.closed && !s.destroyed) return s;
  const session = http2.connect(`http://${authority}`, { settings: { initialWindowSize: windowBytes, maxFrameSize: 16 * 1024 * 1024 - 1 } });
  session.on('connect', () => session.setLocalWindowSize(windowBytes));
  session.on('error', () => {}); // its streams end with UNAVAILABLE
  session.on('close', () => {
    if (sessions.get(key) === session) sessions.delete(key);
  });
  sessions.set(key, session);
  return session;
}

/** Closes every connection (generator shutdown). */
export function closeAllSessions(): void {
  for (const s of sessions.values()) s.destroy();
  sessions.clear();
}

/**
 * Calls `path` with one request message (already serialized) on the connection `key`; every response
 * message reaches `onMessage` as a Buffer valid during the call, and `onEnd` runs once at the end.
 */
export function serverStream(
  key: string,
  authority: string,
  path: string,
  request: Uint8Array,
  windowBytes: number,
  onMessage: (msg: Buffer) => void,
  onEnd: (end: StreamEnd) => void,
): ServerStream {
  let ended = false;
  let cancelled = false;
  let status: StreamEnd | undefined;
  const finish = (end: StreamEnd): void => {
    if (ended) return;
    ended = true;
    onEnd(end);
  };
  const readStatus = (h: http2.IncomingHttpHeaders): void => {
    const code = h['grpc-status'];
    if (code === undefined) return;
    const msg = h['grpc-message'];
    status = { code: Number(code), details: typeof msg === 'string' ? decodeURIComponent(msg) : '' };
  };
  let stream: http2.ClientHttp2Stream;
  try {
    stream = sessionFor(key, authority, windowBytes).request({
      ':method': 'POST',
      ':path': path,
      'content-type': 'application/grpc',
      te: 'trailers',
    });
  } catch (err) {
    queueMicrotask(() => finish({ code: GRPC_UNAVAILABLE, details: (err as Error).message }));
    return { cancel() {} };
  }
  const framed = Buffer.allocUnsafe(5 + request.length);
  framed[0] = 0;
  framed.writeUInt32BE(request.length, 1);
  framed.set(request, 5);
  stream.end(framed);

  // A message split over chunks is assembled in a pooled buffer (`asm`, `asmLen` of `want` bytes with
  // the prefix); a prefix split over chunks waits in `pre`.
  let asm: Buffer | undefined;
  let asmLen = 0;
  let want = 0;
  const pre = Buffer.alloc(5);
  let preLen = 0;
  const deliver = (m: Buffer): boolean => {
    if (m[0] !== 0) {
      stream.close(http2.constants.NGHTTP2_CANCEL);
      finish({ code: GRPC_UNKNOWN, details: 'compressed message, not asked for' });
      return false;
    }
    onMessage(m.subarray(5));
    return !ended;
  };
  const startAssembly = (len: number): void => {
    want = 5 + len;
    asm = assembly.take(want);
    asmLen = 0;
  };
  /** Hands on the assembled message and returns its buffer to the pool; false once the stream ended. */
  const finishAssembly = (): boolean => {
    const m = asm!;
    asm = undefined;
    const more = deliver(m);
    assembly.give(m);
    return more;
  };
  const take = (chunk: Buffer): void => {
    let pos = 0;
    while (pos < chunk.length) {
      if (asm) {
        const n = Math.min(chunk.length - pos, want - asmLen);
        chunk.copy(asm, asmLen, pos, pos + n);
        asmLen += n;
        pos += n;
        if (asmLen < want) return;
        if (!finishAssembly()) return;
        continue;
      }
      if (preLen > 0 || chunk.length - pos < 5) {
        const n = Math.min(5 - preLen, chunk.length - pos);
        chunk.copy(pre, preLen, pos, pos + n);
        preLen += n;
        pos += n;
        if (preLen < 5) return;
        preLen = 0;
        startAssembly(pre.readUInt32BE(1));
        pre.copy(asm!, 0);
        asmLen = 5;
        // An empty message is complete with its prefix.
        if (asmLen === want && !finishAssembly()) return;
        continue;
      }
      const len = chunk.readUInt32BE(pos + 1);
      if (chunk.length - pos >= 5 + len) {
        if (!deliver(chunk.subarray(pos, pos + 5 + len))) return;
        pos += 5 + len;
        continue;
      }
      startAssembly(len);
    }
  };
  stream.on('response', readStatus); // trailers-only answer (an error before any message)
  stream.on('trailers', readStatus);
  stream.on('data', take);
  stream.on('error', () => {});
  stream.on('close', () => {
    if (cancelled) finish({ code: GRPC_CANCELLED, details: 'cancelled' });
    else finish(status ?? { code: GRPC_UNAVAILABLE, details: `stream closed without status (HTTP/2 code ${stream.rstCode})` });
  });
  return {
    cancel() {
      if (ended || cancelled) return;
      cancelled = true;
      stream.close(http2.constants.NGHTTP2_CANCEL);
    },
  };
}
