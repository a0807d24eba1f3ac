import type * as grpc from '@grpc/grpc-js';
import { Http2ServerRequest, Http2ServerResponse, type Http2Session, type IncomingHttpHeaders, type ServerHttp2Stream } from 'node:http2';
import type { IncomingMessage, ServerResponse } from 'node:http';

export type HttpHandler = (req: IncomingMessage, res: ServerResponse) => void;

/** The one grpc-js internal this relies on: its per-stream content-type gate (grpc-js 1.x). */
interface ContentTypeGate {
  _verifyContentType(stream: ServerHttp2Stream, headers: IncomingHttpHeaders): boolean;
}

/**
 * Every HTTP/2 connection on our port goes to grpc-js, which answers any stream that is not gRPC with
 * 415. But browsers and Go's HTTP client negotiate HTTP/2 too (ALPN "h2" over TLS, or h2c with prior
 * knowledge) for /api, /oauth2, the dashboard and /health. Those streams are taken at grpc-js's
 * content-type gate and served by the HTTP handler through Node's HTTP/2 compatibility objects, as
 * NetBird's Go server routes by content type on one listener. `onStream` hears of every stream
 * (gRPC or not) first: the connection has made a request.
 */
export function serveHttpOverGrpcHttp2(server: grpc.Server, handler: HttpHandler, onStream?: (session: Http2Session) => void): void {
  const gate = server as unknown as ContentTypeGate;
  if (typeof gate._verifyContentType !== 'function') {
    throw new Error('@grpc/grpc-js changed: no _verifyContentType to route HTTP/2 requests; pin a 1.x version that has it');
  }
  const isGrpc = gate._verifyContentType.bind(server);
  gate._verifyContentType = (stream, headers) => {
    if (onStream && stream.session) onStream(stream.session);
    const type = headers['content-type'];
    if (typeof type === 'string' && type.startsWith('application/grpc')) return isGrpc(stream, headers);
    const raw: string[] = [];
    for (const [k, v] of Object.entries(headers)) {
      if (Array.isArray(v)) for (const x of v) raw.push(k, x);
      else if (v !== undefined) raw.push(k, String(v));
    }
    const req = new Http2ServerRequest(stream, headers, {}, raw);
    const res = new Http2ServerResponse(stream);
    handler(req as unknown as IncomingMessage, res as unknown as ServerResponse);
    return false;
  };
}
