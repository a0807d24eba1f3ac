// Entry of the seal worker (seal-worker.ts): encrypts batches of Sync frames in place, in the
// SharedArrayBuffers the main thread built them in, and answers where each sealed message starts.
import { parentPort, workerData } from 'node:worker_threads';
import { sealFrameInPlace } from './wire.js';

export interface SealBatch {
  id: number;
  frames: SharedArrayBuffer[];
  lengths: Int32Array;
  /** 32 bytes of box key per frame. */
  keys: Uint8Array;
}

export interface SealReply {
  id: number;
  /** Byte offset of each frame's EncryptedMessage (what sealFrameInPlace returns a view from). */
  starts: Int32Array;
}

const serverPublicText = (workerData as { serverPublicText: string }).serverPublicText;

parentPort!.on('message', (b: SealBatch) => {
  const starts = new Int32Array(b.frames.length);
  for (let i = 0; i < b.frames.length; i++) {
    const frame = Buffer.from(b.frames[i]!, 0, b.lengths[i]!);
    const key = Buffer.from(b.keys.buffer, b.keys.byteOffset + 32 * i, 32);
    starts[i] = sealFrameInPlace(frame, key, serverPublicText).byteOffset;
  }
  parentPort!.postMessage({ id: b.id, starts } satisfies SealReply);
});
