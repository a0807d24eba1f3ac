import { Worker } from 'node:worker_threads';
import type { SealBatch, SealReply } from './seal-worker-thread.js';
import { sealFrameInPlace } from './wire.js';

/**
 * Seals Sync frames (wire.ts sealFrameInPlace) for the gRPC layer. `done` gets the EncryptedMessage
 * view of each frame, in the order the frames were given, or undefined when the frame could not be
 * sealed (the stream should then end, so the peer reconnects and gets a fresh map).
 */
export interface FrameSealer {
  seal(frame: Buffer, boxKey: Buffer, done: (sealed: Buffer | undefined) => void): void;
  close(): Promise<void>;
}

/** Seals on the calling thread, at once. */
export class InlineSealer implements FrameSealer {
  constructor(private readonly serverPublicText: string) {}

  seal(frame: Buffer, boxKey: Buffer, done: (sealed: Buffer | undefined) => void): void {
    done(sealFrameInPlace(frame, boxKey, this.serverPublicText));
  }

  async close(): Promise<void> {}
}

export interface WorkerSealerOptions {
  /** Smaller frames are sealed on the calling thread when nothing waits for the worker (default 8 KiB). */
  minWorkerBytes?: number;
  /** A batch goes to the worker once it holds this many bytes, else at the end of the current task (default 1 MiB). */
  maxBatchBytes?: number;
}

interface Pending {
  frame: Buffer;
  done: (sealed: Buffer | undefined) => void;
  /** null while the worker has it; undefined when sealing failed. */
  sealed: Buffer | null | undefined;
}

interface Batch {
  items: Pending[];
  keys: Buffer[];
  bytes: number;
}

/**
 * Moves the encryption of map pushes to a worker thread: at 5,000 peers a policy change seals ~100
 * MiB, about a fifth of the main thread's work for it. Frames must live in SharedArrayBuffers
 * (FramePool with `shared`), which the worker encrypts in place; the main thread only posts one
 * message per batch and gets the sealed messages' offsets back. Callbacks keep the order of `seal`
 * calls across all frames, so each stream's messages keep theirs. Other frames, and everything
 * after the worker failed, are sealed on the calling thread (in order behind those still pending).
 */
export class WorkerSealer implements FrameSealer {
  private worker: Worker | undefined;
  private broken = false;
  private closing = false;
  private readonly queue: Array<Pending | undefined> = [];
  private head = 0;
  private batch: Batch | undefined;
  private readonly sent = new Map<number, Pending[]>();
  private nextId = 1;
  private readonly minWorkerBytes: number;
  private readonly maxBatchBytes: number;

  constructor(
    private readonly serverPublicText: string,
    options: WorkerSealerOptions = {},
  ) {
    this.minWorkerBytes = options.minWorkerBytes ?? 8 * 1024;
    this.maxBatchBytes = options.maxBatchBytes ?? 1024 * 1024;
  }

  seal(frame: Buffer, boxKey: Buffer, done: (sealed: Buffer | undefined) => void): void {
    const idle = this.head === this.queue.length;
    const shareable = frame.buffer instanceof SharedArrayBuffer && frame.byteOffset === 0;
    if (this.broken || !shareable || (idle && frame.length < this.minWorkerBytes)) {
      const sealed = sealFrameInPlace(frame, boxKey, this.serverPublicText);
      if (idle) done(sealed);
      else this.queue.push({ frame, done, sealed });
      return;
    }
    const item: Pending = { frame, done, sealed: null };
    this.queue.push(item);
    let b = this.batch;
    if (!b) {
      b = this.batch = { items: [], keys: [], bytes: 0 };
      queueMicrotask(() => this.flush(b!));
    }
    b.items.push(item);
    b.keys.push(boxKey);
    b.bytes += frame.length;
    if (b.bytes >= this.maxBatchBytes) this.flush(b);
  }

  async close(): Promise<void> {
    this.closing = true;
    const w = this.worker;
    this.worker = undefined;
    if (w) await w.terminate();
  }

  private flush(b: Batch): void {
    if (this.batch !== b) return; // already sent
    this.batch = undefined;
    if (this.broken) {
      for (let i = 0; i < b.items.length; i++) b.items[i]!.sealed = sealFrameInPlace(b.items[i]!.frame, b.keys[i]!, this.serverPublicText);
      this.drain();
      return;
    }
    const id = this.nextId++;
    const keys = new Uint8Array(32 * b.items.length);
    const lengths = new Int32Array(b.items.length);
    const frames: SharedArrayBuffer[] = [];
    for (let i = 0; i < b.items.length; i++) {
      const f = b.items[i]!.frame;
      keys.set(b.keys[i]!, 32 * i);
      lengths[i] = f.length;
      frames.push(f.buffer as SharedArrayBuffer);
    }
    this.sent.set(id, b.items);
    this.workerOrStart().postMessage({ id, frames, lengths, keys } satisfies SealBatch);
  }

  private workerOrStart(): Worker {
    if (this.worker) return this.worker;
    const workerData = { serverPublicText: this.serverPublicText };
    let w: Worker;
    if (import.meta.url.endsWith('.ts')) {
      // Run from the TypeScript sources under tsx (tests, benchmarks): a worker's entry module does not
      // go through the loader it inherits, so the worker registers tsx itself first.
      const entry = new URL('./seal-worker-thread.ts', import.meta.url).href;
      const tsx = import.meta.resolve('tsx/esm/api');
      w = new Worker(`import(${JSON.stringify(tsx)}).then((t) => { t.register(); return import(${JSON.stringify(entry)}); })`, { eval: true, workerData });
    } else {
      w = new Worker(new URL('./seal-worker-thread.js', import.meta.url), { workerData });
    }
    // Pending seals keep no process alive on their own: the streams waiting for them do.
    w.unref();
    w.on('message', (r: SealReply) => this.onReply(r));
    w.on('error', () => this.fail());
    w.on('exit', () => {
      if (!this.closing) this.fail();
    });
    this.worker = w;
    return w;
  }

  private onReply(r: SealReply): void {
    const items = this.sent.get(r.id);
    if (!items) return;
    this.sent.delete(r.id);
    for (let i = 0; i < items.length; i++) items[i]!.sealed = items[i]!.frame.subarray(r.starts[i]!);
    this.drain();
  }

  /** The worker is gone: what it held is lost (encrypted part-way, perhaps); the rest goes inline. */
  private fail(): void {
    if (this.broken) return;
    this.broken = true;
    this.worker = undefined;
    for (const items of this.sent.values()) for (const it of items) it.sealed = undefined;
    this.sent.clear();
    if (this.batch) this.flush(this.batch);
    this.drain();
  }

  /** Hands sealed frames to their callbacks, oldest first, up to the first one still in the worker. */
  private drain(): void {
    while (this.head < this.queue.length) {
      const it = this.queue[this.head]!;
      if (it.sealed === null) break;
      this.queue[this.head++] = undefined;
      it.done(it.sealed);
    }
    if (this.head === this.queue.length) {
      this.queue.length = 0;
      this.head = 0;
    } else if (this.head >= 4096) {
      this.queue.splice(0, this.head);
      this.head = 0;
    }
  }
}
