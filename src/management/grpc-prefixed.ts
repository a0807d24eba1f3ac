import * as grpcInterceptors from '@grpc/grpc-js/build/src/server-interceptors.js';
import { GRPC_PREFIX_LENGTH } from './wire.js';

/**
 * A server message whose bytes already carry gRPC's 5-byte prefix. grpc-js copies every message
 * into a new buffer to put the prefix in front (BaseServerInterceptingCall.serializeMessage); for
 * map pushes (tens of KiB to MiB each, thousands per policy change) that copy and its garbage cost
 * about a tenth of the fan-out. installPrefixedPassThrough teaches grpc-js to send these as they are.
 * Without it (a grpc-js whose internals moved) the service serializer unwraps them and grpc-js
 * copies as before: slower, never wrong.
 */
export class PrefixedMessage {
  constructor(readonly framed: Buffer) {}
  /** The message without its prefix (what a serializer returns). */
  get message(): Buffer {
    return this.framed.subarray(GRPC_PREFIX_LENGTH);
  }
}

type SerializeMessage = (this: unknown, value: unknown) => Buffer;
interface PatchableCall {
  serializeMessage?: SerializeMessage;
}

let installed: boolean | undefined;

/** Installs the pass-through once per process; returns whether grpc-js now sends PrefixedMessage bytes uncopied. */
export function installPrefixedPassThrough(): boolean {
  if (installed !== undefined) return installed;
  const base = (grpcInterceptors as unknown as { BaseServerInterceptingCall?: { prototype: PatchableCall } }).BaseServerInterceptingCall;
  const original = base?.prototype.serializeMessage;
  if (!base || typeof original !== 'function') return (installed = false);
  base.prototype.serializeMessage = function (this: unknown, value: unknown): Buffer {
    return value instanceof PrefixedMessage ? value.framed : original.call(this, value);
  };
  return (installed = true);
}
